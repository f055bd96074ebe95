"""The tracking inbox (decisions 23): store accepted event messages durably, process them later.

A tracking request stores its event messages (track, page, screen, group) as one `InboxBatch`
row and answers 200; `inbox_drain` (the `customers.inbox_drain` task) processes the rows in id
order, several requests at a time, through the same set-based `messages_ingest` as synchronous
ingestion, and deletes them in the same transaction. A message is therefore stored exactly
once: a crash rolls back both the events and the delete. Bigger sets are the point: a profile
seen in ten requests is resolved, locked and has its seen times widened once, not ten times.

Rows are claimed with DELETE ... RETURNING (PostgreSQL: on rows picked FOR UPDATE SKIP LOCKED,
so concurrent drains take disjoint rows; SQLite: its IMMEDIATE transactions serialise drains).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection, transaction

from customers.models import InboxBatch, Source
from customers.tracking.parsing import EVENT_TYPES, Message

from .ingest import messages_ingest

logger = logging.getLogger(__name__)

# Rows per drain transaction: 100 requests of 100-500 events (~30,000 events in the benchmark,
# at most 50,000), which amortises the per-set statements (identity lookups, profile locks,
# seen-time update) over many requests; the seen-time update shrank with bigger sets, while 2
# drains gained only 10 % for 10 % more CPU (bench/RESULTS.md, event ingestion).
DRAIN_ROWS = 100
# A drain stops after this long and re-enqueues itself, so a busy inbox never runs into the
# task time limit and other tasks get a turn (style 12).
DRAIN_SECONDS = 60

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _encode(m: Message) -> list:
    # Properties and context are stored already serialised: the drain copies them into the
    # events table as they are, instead of parsing and re-encoding them in its serial loop.
    return [
        m.type,
        m.message_id,
        m.user_id,
        m.anonymous_id,
        m.event,
        m.timestamp.isoformat(),
        _dumps(m.properties),
        _dumps(m.context),
    ]


def _decode(text: str, *, received_at: dt.datetime, start: int) -> list[Message]:
    out = []
    for offset, (type_, message_id, user_id, anonymous_id, event, timestamp, properties, context) in enumerate(
        json.loads(text)
    ):
        out.append(
            Message(
                index=start + offset,
                type=type_,
                user_id=user_id,
                anonymous_id=anonymous_id,
                timestamp=dt.datetime.fromisoformat(timestamp),
                message_id=message_id,
                context=context,
                event=event,
                properties=properties,
                received_at=received_at,
            )
        )
    return out


def messages_accept(*, source: Source, messages: list[Message], received_at: dt.datetime) -> list[dict]:
    """Accept the validated messages of one request; returns trait warnings for the response.

    Event messages go to the inbox (one row, one INSERT). Identify and alias calls are processed
    right away: they are few, their trait warnings belong in the response (decisions 11, 15),
    and identity resolution does not depend on their order relative to queued events.
    """
    if not settings.TESSERA_TRACKING_INBOX:
        return messages_ingest(source=source, messages=messages, received_at=received_at).warnings
    events = [m for m in messages if m.type in EVENT_TYPES]
    # Encoded before anything is stored, so a message that cannot be encoded stores nothing.
    text = _dumps([_encode(m) for m in events]) if events else None
    warnings = []
    if len(events) < len(messages):
        identities = [m for m in messages if m.type not in EVENT_TYPES]
        warnings = messages_ingest(source=source, messages=identities, received_at=received_at).warnings
    if text is not None:
        InboxBatch.objects.create(source=source, received_at=received_at, count=len(events), messages=text)
        _schedule_drain()
    return warnings


# Set while a drain is enqueued but not started. With a shared cache (Redis) a request then
# needs one SET NX instead of publishing a task (~5 ms of CPU per request with kombu). The
# timeout only matters if a queued drain is lost: processing then resumes after it.
PENDING_TIMEOUT = 60


def _pending_key() -> str:
    # Per database, so deployments (or tests and a benchmark) sharing a Redis db stay apart.
    return f"tracking-inbox-drain-pending:{connection.settings_dict['NAME']}"


def _schedule_drain() -> None:
    from customers.tasks import inbox_drain_task

    if inbox_drain_task.app.conf.task_always_eager:
        # No broker (unit tests): drain now, in this transaction, which can see the new row.
        inbox_drain_task.delay()
    else:
        transaction.on_commit(_enqueue)


def _enqueue() -> None:
    from customers.tasks import inbox_drain_task

    # Only a shared cache can say that a drain is already on its way (the local-memory cache
    # of the embedded setup is per process): without one, every request enqueues.
    if not settings.REDIS_URL or cache.add(_pending_key(), 1, timeout=PENDING_TIMEOUT):
        inbox_drain_task.delay()


def _claim(limit: int) -> list[tuple]:
    table = connection.ops.quote_name(InboxBatch._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Materialised, so the LIMIT holds: as a plain IN subquery the planner may rerun it
            # per row of a nested loop, and with SKIP LOCKED every rerun picks fresh rows.
            cursor.execute(
                f"WITH picked AS MATERIALIZED (SELECT id FROM {table} WHERE error = '' ORDER BY id LIMIT %s "
                f"FOR UPDATE SKIP LOCKED) DELETE FROM {table} AS t USING picked WHERE t.id = picked.id "
                "RETURNING t.id, t.source_id, t.received_at, t.messages",
                [limit],
            )
        else:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE error = '' ORDER BY id LIMIT %s) "
                "RETURNING id, source_id, received_at, messages",
                [limit],
            )
        rows = sorted(cursor.fetchall())
    if connection.vendor != "postgresql":
        # SQLite hands back text; the converter the ORM would apply.
        convert = connection.ops.convert_datetimefield_value
        rows = [(pk, src, convert(at, None, connection), text) for pk, src, at, text in rows]
    return rows


def _process(rows: list[tuple]) -> int:
    """One set of claimed rows, grouped by source in id order (the first payload wins)."""
    by_source: dict[int, list[Message]] = {}
    for _pk, source_id, received_at, text in rows:
        messages = by_source.setdefault(source_id, [])
        messages += _decode(text, received_at=received_at, start=len(messages))
    sources = Source.objects.in_bulk(list(by_source))
    for source_id, messages in by_source.items():
        messages_ingest(source=sources[source_id], messages=messages, received_at=messages[0].received_at)
    return sum(len(m) for m in by_source.values())


class _RowFailed(Exception):
    def __init__(self, pk: int, exc: Exception):
        super().__init__(f"inbox row {pk}: {type(exc).__name__}: {exc}")
        self.pk = pk


def _drain_once(limit: int) -> tuple[int, int]:
    """Claim and process up to `limit` rows in one transaction; returns (rows, messages)."""
    try:
        with transaction.atomic():
            rows = _claim(limit)
            if not rows:
                return 0, 0
            try:
                return len(rows), _process(rows)
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                if limit == 1:
                    raise _RowFailed(rows[0][0], exc) from exc
                raise
    except (OperationalError, InterfaceError, _RowFailed):
        raise  # the database is unwell (the task fails and is retried), or see below
    except Exception:
        logger.exception("inbox: a set of up to %s rows failed; processing them one by one", limit)
    done = [0, 0]
    for _ in range(limit):
        try:
            rows, messages = _drain_once(1)
        except _RowFailed as exc:
            # A batch that fails on its own is a bug, not a race: set it aside so it stops
            # blocking the queue, and keep it for inspection and replay.
            logger.exception("inbox: setting a batch aside")
            InboxBatch.objects.filter(pk=exc.pk).update(error=str(exc)[:2000])
            continue
        if not rows:
            break
        done[0] += rows
        done[1] += messages
    return done[0], done[1]


def inbox_drain(*, rows_per_set: int = DRAIN_ROWS, max_seconds: float | None = DRAIN_SECONDS) -> int:
    """Process pending inbox rows until none are left (or `max_seconds` passed, after which a
    new drain is enqueued). Returns the number of messages processed."""
    started = time.monotonic()
    total = 0
    # Cleared before the first claim: a row committed after this is either seen by this drain or
    # its request finds the flag gone and enqueues another one.
    cache.delete(_pending_key())
    while True:
        rows, messages = _drain_once(rows_per_set)
        total += messages
        if not rows:
            return total
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            _schedule_drain()
            return total


def inbox_pending() -> int:
    """Messages accepted but not processed yet (failed rows excluded)."""
    from django.db.models import Sum

    return InboxBatch.objects.filter(error="").aggregate(n=Sum("count"))["n"] or 0
