"""Customer CSV import: one set of validation rules, a set-based write (decisions 14, 15, 21, 37-39).

How a file goes in:
1. The header is checked: columns are attribute keys; read-only export columns are ignored with
   a notice; anything else unknown is a file-level error.
2. If the file has custom.* columns that are not registered yet, one streamed pass infers each
   column's type from all its non-empty values (customers.normalize.infer_column_type).
3. One streamed pass validates every row in Python with the shared normalisers and loads the
   normalised rows into a temporary staging table (COPY on PostgreSQL, executemany on SQLite).
   Memory stays flat: only the first 1,000 bad rows are kept.
4. Set-based checks on the staging table: duplicate keys in the file, ambiguous emails, two rows
   updating one profile. Then each row is matched to its profile and compared with it, which
   gives the preview (created / updated / unchanged).
5. With no bad row and not a dry run: one short atomic() registers new custom attributes,
   creates tags and writes everything with a few INSERT ... SELECT / UPDATE ... FROM statements.
   `profile_changed` is sent after commit for the touched profiles, in batches.

The staging table is matched again only inside step 4, not in step 5: a tracking write landing
on the same profile between the two is overwritten by the file, which is what an import means.

Modules: header (columns, result, type inference), rows (chunked validation), staging (the
temporary table, its checks and the write), service (customer_import), jobs (uploads, Job, task).
"""

from .header import MAX_REPORTED_ROWS, ImportResult
from .jobs import customer_import_run, customer_import_start, import_upload_store
from .service import customer_import, profile_changed_send
from .staging import Staging

__all__ = [
    "MAX_REPORTED_ROWS",
    "ImportResult",
    "Staging",
    "customer_import",
    "customer_import_run",
    "customer_import_start",
    "import_upload_store",
    "profile_changed_send",
]
