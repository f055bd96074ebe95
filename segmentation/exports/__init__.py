"""Segment exports (issue 6): definitions, runs, CSV writing, delivery and schedules.

services.py writes (create/update, claim and execute runs, reap, retention), selectors.py reads
(columns, preview counts, runs, the mandatory filter), csvwriter.py turns a run's member set into
canonical CSV with a byte-identical PostgreSQL COPY path in pgcopy.py, destinations.py delivers,
schedules.py keeps the django-celery-beat task of each export in step with it.

Choices the specs leave open (also listed for docs/decisions.md):
- Rows are in customer id order. Tags are joined in code point order. Profiles without an
  external_id are exported with an empty external_id cell.
- A delta export needs the external_id column; removed customers that still exist carry their
  current values, erased ones only external_id (decisions 40). An entry and exit between two runs
  is no change. A failed run is never a delta baseline, nor is a full run: only successful delta
  runs keep their member set, so a delta after a full run starts over (all added).
- A full run on PostgreSQL reads the membership in its one COPY statement (no snapshot copy); delta
  runs and SQLite runs copy the membership into ExportedMember first (decisions 48).
- To name erased customers once, the last successful run's member set (customer id, external_id,
  entered_at) is kept after the profile is erased, until the next successful run of that export.
  Stored files are kept until TESSERA_EXPORT_RETENTION_DAYS (decisions 44).
- A failed run keeps its (complete) internal file when only the delivery failed, so it can be
  downloaded; nothing partial ever reaches a destination.
- Attempts per run: TESSERA_EXPORT_ATTEMPTS (3), backoff TESSERA_EXPORT_RETRY_BACKOFF seconds (5)
  doubling; the reaper fails runs without a heartbeat for TESSERA_EXPORT_STALE_SECONDS (300) and
  queued runs never picked up within TESSERA_EXPORT_QUEUED_TIMEOUT (3600).
- Folders may be limited with TESSERA_EXPORT_FOLDER_ROOTS; webhooks are resolved and refused on
  private, loopback, link-local, reserved and multicast addresses unless TESSERA_WEBHOOK_ALLOW_PRIVATE.
- Deleting a segment used by an export is refused (PROTECT).
- CSV injection (decisions 39): spreadsheets do not execute exported cells because text starting with
  =, +, -, @, tab or CR gets a leading ' (numbers and phone numbers excepted); the import strips it.
"""
