from .segments import KEY_PATTERN, RESERVED_KEYS, LedgerEntry, Membership, Reason, Segment, Snapshot

__all__ = ["KEY_PATTERN", "RESERVED_KEYS", "LedgerEntry", "Membership", "Reason", "Segment", "Snapshot"]
