"""Bulk loads into a (nearly) empty table: build its indexes after the rows, not row by row.

PostgreSQL's manual ("Populating a Database") gives the reason: building an index over rows that
are there is much cheaper than updating it for every row inserted. A first import of a million
profiles spent about 70 % of its write on index maintenance; with the indexes dropped before the
write and built again after it, in the same transaction, the write took 15 s instead of 25 s on
the benchmark machine (bench/RESULTS.md, session 6).

The price is a lock: dropping an index takes an ACCESS EXCLUSIVE lock on its table until the
transaction ends, so readers of the profiles wait for the write to commit. That is why it is
done only when the import creates at least TESSERA_IMPORT_INDEX_REBUILD_ROWS profiles and the
table holds at most a quarter as many as it creates (a first load, a migration from another
tool), never for routine imports into a populated table. The lock is asked for with a short
timeout; if a long reader holds the table, the import takes the usual path instead of waiting.

Everything happens inside the caller's transaction: a failure, including a unique index that
refuses the rows when it is built again, rolls the indexes back with the rows (NotRebuilt).
Indexes are recreated from their own definitions (pg_get_indexdef, pg_get_constraintdef), so
names, methods, predicates and options are kept; indexes that foreign keys of other tables rely
on (the profiles' primary key) and invalid ones are left alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection

LOCK_TIMEOUT = "2s"  # how long an import waits for readers to let go of the tables
TABLE_SHARE = 4  # the table may hold at most 1/4 as many rows as the import adds
LOCK_NOT_AVAILABLE = "55P03"


class NotRebuilt(Exception):
    """The tables could not be locked, or a unique index refused the rows; rolled back."""


@dataclass(frozen=True)
class Index:
    table: str
    name: str  # as the catalog quotes it
    definition: str  # CREATE INDEX ... or, for a constraint, its ALTER TABLE ... ADD clause
    constraint: str | None  # quoted constraint name when the index backs one

    def drop_sql(self) -> str:
        if self.constraint:
            return f"ALTER TABLE {self.table} DROP CONSTRAINT {self.constraint}"
        return f"DROP INDEX {self.name}"

    def create_sql(self) -> str:
        if self.constraint:
            return f"ALTER TABLE {self.table} ADD CONSTRAINT {self.constraint} {self.definition}"
        return self.definition


def rebuild_pays(*, table: str, new_rows: int) -> bool:
    """Whether an import adding `new_rows` rows to `table` should build its indexes afterwards."""
    least = settings.TESSERA_IMPORT_INDEX_REBUILD_ROWS
    if connection.vendor != "postgresql" or least <= 0 or new_rows < least:
        return False
    limit = new_rows // TABLE_SHARE
    with connection.cursor() as cursor:
        # Bounded: counts at most `limit` + 1 rows of a populated table.
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) AS s", [limit + 1])
        return cursor.fetchone()[0] <= limit


def droppable(table: str) -> list[Index]:
    """The indexes of `table` that can be dropped and built again; unique ones first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), "
            "quote_ident(con.conname), pg_get_constraintdef(con.oid) "
            "FROM pg_index AS i LEFT JOIN pg_constraint AS con ON con.conindid = i.indexrelid "
            "AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x') "
            "WHERE i.indrelid = %s::regclass AND i.indisvalid AND i.indisready "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint AS f WHERE f.contype = 'f' AND f.conindid = i.indexrelid) "
            "ORDER BY NOT i.indisunique, i.indexrelid::regclass::text",
            [table],
        )
        rows = cursor.fetchall()
    return [
        Index(table=table, name=name, definition=con_def or index_def, constraint=con_name)
        for name, index_def, con_name, con_def in rows
    ]


@contextlib.contextmanager
def rebuilt(tables: list[str]):
    """Lock `tables`, drop their indexes, and build them again when the block ends.

    Must run inside a savepoint the caller rolls back on NotRebuilt (transaction.atomic()).
    """
    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT current_setting('lock_timeout')")
            before = cursor.fetchone()[0]
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
            cursor.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise NotRebuilt("the tables are in use") from exc
            raise
        indexes = [index for table in tables for index in droppable(table)]
        for index in indexes:
            cursor.execute(index.drop_sql())
    yield
    with connection.cursor() as cursor:
        for index in indexes:
            try:
                cursor.execute(index.create_sql())
            except IntegrityError as exc:
                raise NotRebuilt(f"{index.name} refused the rows") from exc
