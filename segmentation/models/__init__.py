from .exports import Export, ExportedMember, ExportRun
from .segments import KEY_PATTERN, RESERVED_KEYS, LedgerEntry, Membership, Reason, Segment, Snapshot

__all__ = [
    "Export",
    "ExportRun",
    "ExportedMember",
    "KEY_PATTERN",
    "RESERVED_KEYS",
    "LedgerEntry",
    "Membership",
    "Reason",
    "Segment",
    "Snapshot",
]
