"""Set-based membership statements shared by full recomputes and copies.

Django has no INSERT ... SELECT, so these few statements are written in SQL around querysets
compiled by the ORM. They run unchanged on PostgreSQL and SQLite. The new member set is staged
in a temporary table first so the definition's query runs once per recompute, however many
statements then read it (entered ledger, insert, exited ledger, delete, size).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection

from segmentation.models import LedgerEntry, Membership

STAGE = "tessera_segment_stage"
RECOMPUTE_WORK_MEM = "128MB"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _prep(model, field: str, value):
    return model._meta.get_field(field).get_db_prep_save(value, connection)


def _tables() -> tuple[str, str]:
    return _q(Membership._meta.db_table), _q(LedgerEntry._meta.db_table)


def recompute_session() -> None:
    """Per-transaction settings for recompute statements (call inside the transaction).

    PostgreSQL's JIT compiles every query whose estimated cost passes `jit_above_cost`; at a
    million profiles nearly every segment query does, and compiling costs 0.1-0.5 s of CPU per
    query while the queries are I/O- and hash-bound (bench/RESULTS.md). A larger `work_mem`
    keeps per-customer grouping in memory; parallel query is off (below). `SET LOCAL` ends with
    the transaction.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SET LOCAL jit = off")
            # Grouping a million customers needs ~50-100 MB of hash table; with the default 4 MB
            # the HashAggregate spills to 16+ temporary-file partitions.
            cur.execute(f"SET LOCAL work_mem = '{RECOMPUTE_WORK_MEM}'")
            # Parallel plans of these queries build the same non-parallel HashAggregate in every
            # participant (loyal-customers: 1.15 s with 2 workers, 0.50 s without, at 1M / 10M),
            # and sweeps already keep the cores busy with one recompute per connection.
            cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")


def stage_members(queryset) -> int:
    """Stage the customer ids `queryset` selects (a Customer queryset) into the temporary table.

    Must run inside the caller's transaction: the table belongs to this connection only.
    Returns the number of staged customers.
    """
    sql, params = queryset.order_by().values_list("pk").query.sql_with_params()
    id_type = "bigint" if connection.vendor == "postgresql" else "integer"
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {STAGE}")
        cur.execute(f"CREATE TEMPORARY TABLE {STAGE} (customer_id {id_type} PRIMARY KEY)")
        cur.execute(f"INSERT INTO {STAGE} (customer_id) {sql}", params)
        staged = cur.rowcount
        if connection.vendor == "postgresql":
            # Temporary tables have no statistics; without them the anti-joins below plan badly.
            cur.execute(f"ANALYZE {STAGE}")
    return staged


def stage_replace(*, touched, matching) -> int:
    """Replace the staged verdict for the `touched` customers by `matching` (both Customer querysets).

    Returns the change in the number of staged customers."""
    touched_sql, touched_params = touched.order_by().values_list("pk").query.sql_with_params()
    matching_sql, matching_params = matching.order_by().values_list("pk").query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {STAGE} WHERE customer_id IN ({touched_sql})", touched_params)
        removed = cur.rowcount
        cur.execute(f"INSERT INTO {STAGE} (customer_id) {matching_sql}", matching_params)
        return cur.rowcount - removed


def stage_drop() -> None:
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {STAGE}")


def apply_staged(
    *, segment_id: int, at: dt.datetime, reason: str, detail: dict, snapshot_id: int, size: int | None = None
) -> dict:
    """Make the segment's membership equal to the staged set; ledger rows for every change.

    Returns {"entered", "exited", "size"}. The caller holds the segment's lock and transaction.
    `size` is the number of staged customers when the caller knows it (else it is counted).
    """
    membership, ledger = _tables()
    at_db = _prep(Membership, "entered_at", at)
    detail_db = _prep(LedgerEntry, "detail", detail)
    cols = "segment_id, customer_id, change, at, reason, detail, snapshot_id"
    not_member = f"NOT EXISTS (SELECT 1 FROM {membership} m WHERE m.segment_id = %s AND m.customer_id = s.customer_id)"
    not_staged = f"NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE s.customer_id = m.customer_id)"
    if connection.vendor == "postgresql":
        # One anti-join per direction: the membership change feeds its ledger rows (RETURNING).
        with connection.cursor() as cur:
            cur.execute(
                f"WITH new AS (INSERT INTO {membership} (segment_id, customer_id, entered_at) "
                f"SELECT %s, s.customer_id, %s FROM {STAGE} s WHERE {not_member} RETURNING customer_id) "
                f"INSERT INTO {ledger} ({cols}) SELECT %s, customer_id, 'entered', %s, %s, %s, %s FROM new",
                [segment_id, at_db, segment_id, segment_id, at_db, reason, detail_db, snapshot_id],
            )
            entered = cur.rowcount
            cur.execute(
                f"WITH gone AS (DELETE FROM {membership} m WHERE m.segment_id = %s AND {not_staged} "
                f"RETURNING customer_id) "
                f"INSERT INTO {ledger} ({cols}) SELECT %s, customer_id, 'exited', %s, %s, %s, %s FROM gone",
                [segment_id, segment_id, at_db, reason, detail_db, snapshot_id],
            )
            exited = cur.rowcount
            if size is None:
                cur.execute(f"SELECT COUNT(*) FROM {STAGE}")
                size = cur.fetchone()[0]
        return {"entered": entered, "exited": exited, "size": size}
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {ledger} ({cols}) SELECT %s, s.customer_id, 'entered', %s, %s, %s, %s "
            f"FROM {STAGE} s WHERE {not_member}",
            [segment_id, at_db, reason, detail_db, snapshot_id, segment_id],
        )
        entered = cur.rowcount
        if entered:
            cur.execute(
                f"INSERT INTO {membership} (segment_id, customer_id, entered_at) SELECT %s, s.customer_id, %s "
                f"FROM {STAGE} s WHERE {not_member}",
                [segment_id, at_db, segment_id],
            )
        cur.execute(
            f"INSERT INTO {ledger} ({cols}) SELECT m.segment_id, m.customer_id, 'exited', %s, %s, %s, %s "
            f"FROM {membership} m WHERE m.segment_id = %s AND {not_staged}",
            [at_db, reason, detail_db, snapshot_id, segment_id],
        )
        exited = cur.rowcount
        if exited:
            cur.execute(
                f"DELETE FROM {membership} WHERE segment_id = %s AND NOT EXISTS "
                f"(SELECT 1 FROM {STAGE} s WHERE s.customer_id = {membership}.customer_id)",
                [segment_id],
            )
        if size is None:
            cur.execute(f"SELECT COUNT(*) FROM {STAGE}")
            size = cur.fetchone()[0]
    return {"entered": entered, "exited": exited, "size": size}


def copy_members(*, source_id: int, target_id: int, at: dt.datetime, detail: dict, reason: str = "manual") -> int:
    """Copy one segment's members into another (empty) segment, with `entered` ledger rows."""
    membership, ledger = _tables()
    at_db = _prep(Membership, "entered_at", at)
    detail_db = _prep(LedgerEntry, "detail", detail)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {membership} (segment_id, customer_id, entered_at) SELECT %s, customer_id, %s "
            f"FROM {membership} WHERE segment_id = %s",
            [target_id, at_db, source_id],
        )
        copied = cur.rowcount
        cur.execute(
            f"INSERT INTO {ledger} (segment_id, customer_id, change, at, reason, detail) "
            f"SELECT %s, customer_id, 'entered', %s, %s, %s FROM {membership} WHERE segment_id = %s",
            [target_id, at_db, reason, detail_db, target_id],
        )
    return copied
