"""Writes for segments. Import from the submodules or from here."""

from .errors import DefinitionProblems, SegmentConflict, SegmentError, SegmentInvalid
from .incremental import segment_recompute_customers
from .members import (
    customers_resolve,
    members_jobs_reap,
    segment_members_add,
    segment_members_job_create,
    segment_members_job_run,
    segment_members_remove,
)
from .recompute import (
    segment_recompute,
    segment_recompute_start,
    segment_request_recompute,
    segments_recompute_many,
    segments_sweep,
    segments_sync_dependencies,
    segments_watchdog,
)
from .segments import segment_copy, segment_create, segment_delete, segment_key_from_name, segment_update

__all__ = [
    "DefinitionProblems",
    "SegmentConflict",
    "SegmentError",
    "SegmentInvalid",
    "customers_resolve",
    "segment_copy",
    "segment_create",
    "segment_delete",
    "segment_key_from_name",
    "members_jobs_reap",
    "segment_members_add",
    "segment_members_job_create",
    "segment_members_job_run",
    "segment_members_remove",
    "segment_recompute",
    "segment_recompute_customers",
    "segment_recompute_start",
    "segment_request_recompute",
    "segment_update",
    "segments_recompute_many",
    "segments_sweep",
    "segments_sync_dependencies",
    "segments_watchdog",
]
