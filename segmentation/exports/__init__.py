"""Segment exports (issue 6): definitions, runs, CSV writing, delivery and schedules.

services.py writes (create/update, claim and execute runs), selectors.py reads (columns, preview
counts, runs), csvwriter.py turns a run's member set into canonical CSV (COPY on PostgreSQL, a
byte-identical Python path elsewhere), destinations.py delivers, schedules.py keeps the
django-celery-beat task of each export in step with it.
"""
