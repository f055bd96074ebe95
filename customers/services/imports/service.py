"""customer_import: the one path every CSV import takes (admin, command, API job, dry run)."""

from __future__ import annotations

import contextlib
import gc
import itertools
import time
from array import array
from collections.abc import Callable

from django.db import connection, transaction

from customers.normalize import column_type
from customers.signals import profile_changed_send

from ..attributes import attribute_register
from ..csvio import CsvFileError, CsvSource, csv_rows
from . import parallel
from .header import MAX_REPORTED_ROWS, Columns, ImportResult, RowErrors, read_header
from .indexes import rebuild_pays
from .rows import CHUNK_ROWS, RowValidator, infer_types, set_inferred_types
from .staging import DuplicateKeys, Staging

PROGRESS_EVERY = 0.5  # seconds between progress callbacks
GC_THRESHOLD = 50_000  # allocations between young-generation collections while validating


def customer_import(
    *,
    path_or_file,
    dry_run: bool,
    delimiter: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    source: str | None = None,
) -> ImportResult:
    """Validate a customer CSV and, unless `dry_run` or any row is bad, import it.

    `path_or_file`: a path or a binary file object. `delimiter`: `,` or `;` (sniffed from the
    header when None). `progress(done_lines, total_lines)` is called while validating.
    `source`: the `source` attribute given to profiles this file creates when it has no
    `source` column (e.g. "csv:customers.csv"); existing profiles keep theirs.
    A file with any bad row writes nothing; see ImportResult.
    """
    result = ImportResult(dry_run=dry_run)
    csv_source = CsvSource(path_or_file)
    count = parallel.helpers_wanted(csv_source, connection.vendor)
    # Started first: each helper loads Django while this process reads the header.
    with parallel.Helpers(count) if count else contextlib.nullcontext() as helpers:
        _import(result, csv_source, helpers, dry_run=dry_run, delimiter=delimiter, progress=progress, source=source)
    return result


def _import(result: ImportResult, csv_source: CsvSource, helpers, *, dry_run, delimiter, progress, source) -> None:
    staging = None
    try:
        with csv_source.open() as fh:
            header, result.delimiter, _ = csv_rows(fh, delimiter=delimiter)
        columns = read_header(header, result)
        guessed = False
        if columns.new_custom:
            guessed = helpers is not None and parallel.guess_types(
                csv_source=csv_source, helpers=helpers, columns=columns, delimiter=result.delimiter
            )
            if not guessed:
                infer_types(csv_source, columns, delimiter=result.delimiter)
        total_lines = csv_source.count_lines() if progress else 0
        with fewer_collections():
            while True:
                staging = Staging.create(profile=columns.profile, custom=columns.custom, has_tags=columns.has_tags)
                errors = RowErrors()
                validator = RowValidator(columns)
                if helpers is None:
                    with csv_source.open() as fh:
                        _, _, rows = csv_rows(fh, delimiter=result.delimiter)
                        staged = _validate(rows, validator, errors, staging, progress=progress, total=total_lines)
                    break
                staged, found = parallel.validate_in_segments(
                    csv_source=csv_source,
                    helpers=helpers,
                    delimiter=result.delimiter,
                    validator=validator,
                    staging=staging,
                    errors=errors,
                    progress=progress,
                    total=total_lines,
                    every=PROGRESS_EVERY,
                    infer=guessed,
                )
                if not guessed or all(column_type(found[key]) == columns.custom[key] for key in found):
                    break
                # A value after the first segment changes a new column's type: validate again
                # with the types of the whole file (decisions 37).
                set_inferred_types(columns, found)
                guessed = False
                staging.drop()
        for key in sorted(columns.new_custom):
            if columns.custom[key] is None:
                result.notices.append(f"Column custom.{key} has no values; it was not registered.")
            else:
                result.new_attributes[key] = columns.custom[key]
                result.notices.append(f"New attribute custom.{key} will be registered as {columns.custom[key]}.")
        result.rows = staged + errors.total
        if not result.rows:
            result.notices.append("The file has a header but no rows.")
        # Written unless the checks find errors: a file of new profiles can leave its duplicate
        # external_ids to the unique index (Staging.analyse).
        staging.analyse(tag_names=validator.tag_names, defer_duplicates=not dry_run and not errors.total)
        sql_total = _merge_sql_errors(staging, errors)
        result.created, result.updated, result.unchanged = staging.counts(errors=sql_total)
        if progress:
            progress(total_lines, total_lines)
        if not errors.total and not dry_run:
            try:
                touched = _write(
                    staging,
                    columns,
                    validator.tag_names,
                    source=source,
                    new_attributes=result.new_attributes,
                    created=result.created,
                )
            except DuplicateKeys:
                # Rolled back. Only a file of new profiles without other errors gets here, so the
                # duplicates are its only errors: the report a dry run gives.
                staging.find_duplicate_keys()
                _merge_sql_errors(staging, errors)
            else:
                transaction.on_commit(lambda: profile_changed_send(touched, reason="import"))
        result.rejected = result.error_total = errors.total
        result.errors = errors.items
        if not result.ok and not dry_run:  # nothing was written; a dry run keeps the preview of the good rows
            result.created = result.updated = result.unchanged = 0
    except CsvFileError as exc:
        result.file_error = str(exc)
        result.errors = [{"line": exc.line, "column": None, "message": str(exc)}]
        result.error_total = 1
    finally:
        if staging is not None:
            staging.drop()
        csv_source.close()


@contextlib.contextmanager
def fewer_collections():
    """Run the cyclic garbage collector less often while rows are validated.

    Every chunk allocates a few hundred thousand short-lived tuples, lists and strings, none of
    them in reference cycles; at the default threshold (700 allocations) the collector runs after
    every few rows and, every tenth run, walks everything the process holds. That cost a third of
    the validation time. Refcounting still frees every row at once; cycles are still collected.
    """
    before = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _validate(rows, validator: RowValidator, errors: RowErrors, staging: Staging, *, progress, total) -> int:
    """Validate every row a chunk at a time; stage the good ones. Returns the number of rows staged.

    The staging loader stays open across chunks and is closed only to report progress (the
    progress callback writes through the same connection). A file error met while reading is
    raised after the loader has closed cleanly, so an enclosing transaction stays usable.
    """
    staged = 0
    chunks = iter(lambda: list(itertools.islice(rows, CHUNK_ROWS)), [])
    last_progress = time.monotonic()
    while True:
        report = None
        failure = None
        with staging.loader(validator) as stage:
            try:
                for chunk in chunks:
                    count, bad = stage(chunk)
                    for line, problems in bad:
                        errors.add_row(line, problems)
                    staged += count
                    if progress and time.monotonic() - last_progress > PROGRESS_EVERY:
                        report = chunk[-1][0]
                        break
            except CsvFileError as exc:
                failure = exc
        if failure is not None:
            raise failure
        if report is None:
            return staged
        progress(min(report, total), total)
        last_progress = time.monotonic()


def _merge_sql_errors(staging: Staging, errors: RowErrors) -> int:
    """Merge the errors the SQL checks have recorded into `errors`; returns how many rows have one."""
    items, total = staging.row_errors(limit=MAX_REPORTED_ROWS)
    errors.merge(items, total)
    return total


def _write(staging: Staging, columns: Columns, tag_names: dict, *, source, new_attributes, created: int) -> array:
    """The one short transaction: registry, tags, profiles. Returns the touched customer ids."""
    rebuild = rebuild_pays(table=staging.customers, new_rows=created)
    with transaction.atomic():
        for key, type_ in new_attributes.items():
            registered = attribute_register(key=key, type_=type_)
            if registered.type != type_:
                # Registered by someone else since validation: values were checked against our type.
                raise CsvFileError(
                    f"custom.{key} was registered as {registered.type} while the file was being checked; "
                    "import the file again."
                )
        staging.apply(
            tag_names=tag_names,
            default_source=source if "source" not in columns.profile else None,
            rebuild_indexes=rebuild,
        )
        return staging.touched_ids()
