from .attributes import AttributeDefinition
from .events import Event
from .inbox import InboxBatch
from .jobs import AuditEntry, Job
from .profiles import Customer, CustomerIdentity, Source, Tag

__all__ = [
    "AttributeDefinition",
    "AuditEntry",
    "Customer",
    "CustomerIdentity",
    "Event",
    "InboxBatch",
    "Job",
    "Source",
    "Tag",
]
