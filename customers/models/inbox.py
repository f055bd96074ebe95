from django.db import models

from .profiles import Source


class InboxBatch(models.Model):
    """Accepted event messages of one tracking request, stored before processing (decisions 23).

    A 200 means this row is committed. `inbox_drain` turns rows into profiles and events and
    deletes them in the same transaction, so each message is processed exactly once.
    `messages` is compact JSON (see `customers.services.inbox`), kept as text so storing it costs
    PostgreSQL no parsing on the hot path.
    """

    # Deleting a source drops what it sent but was not processed yet, like its events' origin.
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField()
    count = models.PositiveIntegerField()
    messages = models.TextField()
    # Set when the batch failed on its own (a bug, not a race); drains skip it from then on so
    # one bad batch cannot block the queue. Kept for inspection and replay.
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"inbox {self.pk}: {self.count} messages"
