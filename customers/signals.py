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
