from .attributes import AttributeDefinition
from .events import Event
from .jobs import AuditEntry, Job
from .profiles import Customer, CustomerIdentity, Source, Tag

__all__ = [
    "AttributeDefinition",
    "AuditEntry",
    "Customer",
    "CustomerIdentity",
    "Event",
    "Job",
    "Source",
    "Tag",
]
