"""Storing validated tracking messages: identities, traits, seen times and events, set-based.

A batch of N messages costs a constant number of statements in the common case (known
profiles): one to drop replayed messageIds, three to resolve ids, a COPY (PostgreSQL) or an
executemany (SQLite) for the events, one to lock the profiles in id order and one to widen
seen times. Creating profiles, merging them and applying traits add work only for the
messages that need it. Hot statements are hand-written SQL because the ORM's per-row
preparation cost more than the database work (see bench/ingest.py).

Two short transactions (profiles and identities, then events, traits and seen times) are
retried together on a unique violation, deadlock or vanished profile; profile and identity
inserts use ON CONFLICT DO NOTHING and re-read, which is how concurrent requests creating the
same profile stay safe (decisions 13).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from dataclasses import dataclass, field

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from customers.models import Customer, CustomerIdentity, Event, Source
from customers.tracking.parsing import EVENT_TYPES, Message

from .attributes import custom_types
from .identity import MergeConflict, customer_merge, traits_split
from .ingest_sql import (
    insert_customers,
    insert_events,
    insert_identities,
    lock_customers,
    rows_where_in,
    widen_seen,
)
from .profiles import PROFILE_FIELDS, customer_apply_values, normalize_values

logger = logging.getLogger(__name__)

ATTEMPTS = 8


@dataclass
class IngestResult:
    accepted: int = 0
    warnings: list[dict] = field(default_factory=list)  # {"index", "field", "message"}
    customer_ids: set[int] = field(default_factory=set)
    event_names: set[str] = field(default_factory=set)
    changed_ids: set[int] = field(default_factory=set)


def messages_ingest(*, source: Source, messages: list[Message], received_at: dt.datetime) -> IngestResult:
    """Store accepted messages of one request; signals go out after commit.

    Replayed messageIds are dropped silently (the first payload wins, decisions 19).
    """
    for attempt in range(ATTEMPTS):
        try:
            result = _ingest(source=source, messages=messages, received_at=received_at)
            break
        except (IntegrityError, OperationalError, MergeConflict) as exc:
            # A concurrent request created or merged the same profile; everything is re-read.
            if attempt == ATTEMPTS - 1:
                raise
            logger.info("tracking ingest retry %s: %s", attempt + 1, exc)
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
    _send_signals(result)
    return result


def _send_signals(result: IngestResult) -> None:
    from customers.signals import events_ingested, profile_changed

    customer_ids = sorted(result.customer_ids)
    names = sorted(result.event_names)
    changed = sorted(result.changed_ids)

    def send():
        # Merged-away profiles no longer exist; listeners only get live ids.
        live = {row[0] for row in rows_where_in(Customer, "id", "id", customer_ids)}
        if names:
            events_ingested.send(sender=Event, customer_ids=[c for c in customer_ids if c in live], event_names=names)
        if changed:
            profile_changed.send(
                sender=Customer, customer_ids=[c for c in changed if c in live], reason="profile_change"
            )

    transaction.on_commit(send)


def _unique_messages(source: Source, messages: list[Message]) -> list[Message]:
    """Drop messageIds already stored for this source or repeated in this request."""
    ids = sorted({m.message_id for m in messages if m.message_id is not None and m.type in EVENT_TYPES})
    seen = {
        row[0]
        for row in rows_where_in(Event, "message_id", "message_id", ids, where="source_id = %s", params=[source.pk])
    }
    out = []
    for m in messages:
        if m.message_id is not None:
            if m.message_id in seen:
                continue
            seen.add(m.message_id)
        out.append(m)
    return out


class _Resolver:
    """In-memory identity maps for one batch, backed by bulk reads and writes."""

    def __init__(self, messages: list[Message]):
        now = timezone.now()
        self.now = now
        self.redirect: dict[int, int] = {}
        self.changed: set[int] = set()
        user_ids = {m.user_id for m in messages if m.user_id}
        anon_ids = {m.anonymous_id for m in messages if m.anonymous_id}
        previous = {m.previous_id for m in messages if m.previous_id}
        self.by_user = dict(rows_where_in(Customer, "external_id, id", "external_id", user_ids | previous))
        # One query per kind so the (kind, value) unique index serves both lookups.
        for value, customer_id in rows_where_in(
            CustomerIdentity, "value, customer_id", "value", user_ids | previous, where="kind = %s", params=["alias"]
        ):
            self.by_user.setdefault(value, customer_id)
        self.by_anon: dict[str, int] = dict(
            rows_where_in(
                CustomerIdentity,
                "value, customer_id",
                "value",
                anon_ids | previous,
                where="kind = %s",
                params=["anonymous"],
            )
        )
        anon_customers = set(self.by_anon.values())
        self.external = dict(rows_where_in(Customer, "id, external_id", "id", anon_customers))
        self.external.update({pk: ext for ext, pk in self.by_user.items()})

    def final(self, pk: int) -> int:
        while pk in self.redirect:
            pk = self.redirect[pk]
        return pk

    def user(self, user_id: str) -> int:
        return self.final(self.by_user[user_id])

    def merge(self, *, survivor: int, merged: int) -> None:
        survivor, merged = self.final(survivor), self.final(merged)
        if survivor == merged:
            return
        if customer_merge(survivor_id=survivor, merged_id=merged):
            self.changed.add(survivor)
        self.redirect[merged] = survivor

    def create_users(self, messages: list[Message]) -> None:
        """Profiles for unknown userIds; a first login claims its anonymous profile instead."""
        missing = {m.user_id: None for m in messages if m.user_id and m.user_id not in self.by_user}
        if not missing:
            return
        claimed = set()
        for m in messages:
            uid, aid = m.user_id, m.anonymous_id
            if not uid or not aid or uid in self.by_user or aid not in self.by_anon:
                continue
            pk = self.final(self.by_anon[aid])
            if self.external.get(pk) is None and pk not in claimed:
                # Promoting the anonymous profile equals creating the user and merging into it.
                if Customer.objects.filter(pk=pk, external_id__isnull=True).update(external_id=uid) != 1:
                    raise MergeConflict(f"anonymous customer {pk} changed concurrently")
                claimed.add(pk)
                self.by_user[uid] = pk
                self.external[pk] = uid
        new = [uid for uid in sorted(missing) if uid not in self.by_user]
        if not new:
            return
        # ON CONFLICT DO NOTHING: a concurrent request creating the same user makes this insert
        # wait for its commit and skip the row instead of failing the whole batch.
        insert_customers(external_ids=new, now=self.now)
        for uid, pk in rows_where_in(Customer, "external_id, id", "external_id", new):
            self.by_user[uid] = pk
            self.external[pk] = uid
        if any(uid not in self.by_user for uid in new):
            raise MergeConflict("a new user vanished concurrently")

    def link_anonymous(self, messages: list[Message]) -> None:
        """Attach or merge anonymous ids seen together with a userId (decisions 13)."""
        pending: dict[str, int] = {}
        for m in messages:
            uid, aid = m.user_id, m.anonymous_id
            if uid and aid and aid not in self.by_anon and aid not in pending:
                pending[aid] = self.user(uid)
        self._insert_identities(pending)
        merges = []
        for m in messages:
            uid, aid = m.user_id, m.anonymous_id
            if not uid or not aid:
                continue
            target, current = self.user(uid), self.final(self.by_anon[aid])
            # Two identified profiles never merge through an anonymous id, only through alias.
            if current != target and self.external.get(current) is None:
                merges.append((target, current))
        self.merge_all(merges)

    def merge_all(self, pairs: list[tuple[int, int]]) -> None:
        """Merge (survivor, merged) pairs after locking every profile involved in id order, so
        concurrent logins merging the same profiles in different orders cannot deadlock."""
        if not pairs:
            return
        pks = sorted({pk for pair in pairs for pk in pair})
        list(Customer.objects.select_for_update().filter(pk__in=pks).order_by("pk").values_list("pk", flat=True))
        for survivor, merged in pairs:
            self.merge(survivor=survivor, merged=merged)

    def _insert_identities(self, wanted: dict[str, int]) -> dict[str, int]:
        """Anonymous identities {value: customer}; a concurrent writer's row wins. Returns the
        values that ended up elsewhere."""
        if not wanted:
            return {}
        insert_identities(wanted, now=self.now)
        actual = dict(
            rows_where_in(
                CustomerIdentity, "value, customer_id", "value", wanted, where="kind = %s", params=["anonymous"]
            )
        )
        lost = {aid: pk for aid, pk in actual.items() if pk != wanted[aid]}
        if lost:
            self.external.update(Customer.objects.filter(pk__in=set(lost.values())).values_list("pk", "external_id"))
        self.by_anon.update(actual)
        return lost

    def apply_aliases(self, messages: list[Message]) -> None:
        merges = []
        for m in messages:
            if m.type != "alias":
                continue
            target = self.user(m.user_id)
            prev = self.by_user.get(m.previous_id)
            if prev is None:
                prev = self.by_anon.get(m.previous_id)
            if prev is None:
                CustomerIdentity.objects.get_or_create(
                    kind="alias", value=m.previous_id, defaults={"customer_id": target}
                )
                self.by_user[m.previous_id] = target
                continue
            merges.append((target, prev))
        self.merge_all(merges)

    def create_anonymous(self, messages: list[Message]) -> None:
        missing = sorted({m.anonymous_id for m in messages if not m.user_id and m.anonymous_id not in self.by_anon})
        if not missing:
            return
        # Anonymous profiles are identical empty rows, so any new id can take any anonymous id.
        created = insert_customers(external_ids=[None] * len(missing), now=self.now)
        for pk in created:
            self.external[pk] = None
        lost = self._insert_identities(dict(zip(missing, created, strict=True)))
        if lost:
            # A concurrent request created these visitors first; drop our empty duplicates.
            ours = [pk for aid, pk in zip(missing, created, strict=True) if aid in lost]
            Customer.objects.filter(pk__in=ours).delete()

    def customer_of(self, m: Message) -> int:
        if m.user_id:
            return self.user(m.user_id)
        return self.final(self.by_anon[m.anonymous_id])


def _apply_traits(messages: list[Message], owners: dict[int, int], result: IngestResult) -> set[int]:
    """Identify traits in arrival order (decisions 15); bad values are dropped with a warning."""
    identifies = [m for m in messages if m.type == "identify" and m.traits]
    if not identifies:
        return set()
    pks = sorted({owners[m.index] for m in identifies})
    customers = {c.pk: c for c in Customer.objects.select_for_update(no_key=True).filter(pk__in=pks).order_by("pk")}
    types = custom_types()
    changed = set()
    for m in identifies:
        customer = customers[owners[m.index]]
        profile, custom = traits_split(m.traits)
        clean_profile, clean_custom, problems = normalize_values(
            profile=profile, custom=custom, strict=False, types=types
        )
        if any(key not in types for key in clean_custom):
            types = custom_types()
        for key, message in problems.items():
            result.warnings.append({"index": m.index, "field": f"traits.{key}", "message": message})
        if customer_apply_values(customer, profile=clean_profile, custom=clean_custom):
            changed.add(customer.pk)
    if changed:
        Customer.objects.bulk_update(
            [customers[pk] for pk in sorted(changed)], [*PROFILE_FIELDS, "custom", "updated_at"]
        )
    return changed


def _ingest(*, source: Source, messages: list[Message], received_at: dt.datetime) -> IngestResult:
    """Two short transactions: profiles and identities first, then events, traits and seen times.

    Committing new profiles early means a concurrent batch that needs the same new user waits
    for a few statements, not for our whole event insert. If the second step fails (or a merge
    removed a profile in between), the retry re-resolves; the first step is idempotent.
    """
    result = IngestResult(accepted=len(messages))
    with transaction.atomic():
        messages = _unique_messages(source, messages)
        if not messages:
            return result
        resolver = _Resolver(messages)
        resolver.create_users(messages)
        resolver.link_anonymous(messages)
        resolver.apply_aliases(messages)
        resolver.create_anonymous(messages)
    with transaction.atomic():
        _store(source=source, messages=messages, received_at=received_at, resolver=resolver, result=result)
    return result


def _store(
    *, source: Source, messages: list[Message], received_at: dt.datetime, resolver: _Resolver, result: IngestResult
) -> None:
    owners = {m.index: resolver.customer_of(m) for m in messages}

    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    pg = connection.vendor == "postgresql"
    adapt = (lambda value: value) if pg else connection.ops.adapt_datetimefield_value
    received = adapt(received_at)
    events = [
        (
            owners[m.index],
            source.pk,
            m.event,
            adapt(m.timestamp),
            received if m.received_at is None else adapt(m.received_at),
            m.properties if isinstance(m.properties, str) else dumps(m.properties),
            m.context if isinstance(m.context, str) else dumps(m.context),
            m.message_id,
        )
        for m in messages
        if m.type in EVENT_TYPES
    ]
    insert_events(events)

    # Row locks on profiles come last and in id order, so concurrent batches sharing profiles
    # hold them only for the final statements and cannot deadlock on each other.
    times: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for m in messages:
        pk = owners[m.index]
        low, high = times.get(pk, (m.timestamp, m.timestamp))
        times[pk] = (min(low, m.timestamp), max(high, m.timestamp))
    lock_customers(sorted(times))
    changed = _apply_traits(messages, owners, result) | resolver.changed
    widen_seen(times)
    result.customer_ids = {resolver.final(pk) for pk in owners.values()}
    result.event_names = {m.event for m in messages if m.type in EVENT_TYPES}
    result.changed_ids = {resolver.final(pk) for pk in changed}
