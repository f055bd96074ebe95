"""Signals other apps listen to (segmentation re-evaluates affected customers).

`profile_changed(customer_ids, reason)`: attributes or tags changed.
`events_ingested(customer_ids, event_names)`: new events stored.
`customers_merged(survivor_id, merged_id)`: an anonymous profile merged into another.
Senders call them after their transaction commits where they hold one.
"""

import django.dispatch

profile_changed = django.dispatch.Signal()
events_ingested = django.dispatch.Signal()
customers_merged = django.dispatch.Signal()

# Receivers get bounded id lists; 10,000 ids is one incremental re-evaluation batch.
SIGNAL_BATCH = 10_000


def profile_changed_send(ids, *, reason: str) -> None:
    """Send profile_changed for many ids in bounded batches (call after commit)."""
    from customers.models import Customer

    for start in range(0, len(ids), SIGNAL_BATCH):
        profile_changed.send(sender=Customer, customer_ids=list(ids[start : start + SIGNAL_BATCH]), reason=reason)
