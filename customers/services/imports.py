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
"""

from __future__ import annotations

import json
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from customers.attributes import SYSTEM_ATTRIBUTES
from customers.csvformat import unescape_injection
from customers.models import Customer, Job, Tag
from customers.normalize import (
    NormalizationError,
    coerce,
    infer_column_type,
    infer_type,
    normalize_text,
    validate_custom_key,
)

from .attributes import attribute_register, custom_types
from .csvio import CsvFileError, CsvSource, csv_rows
from .profiles import PROFILE_FIELDS, PROFILE_NORMALIZERS

MAX_REPORTED_ROWS = 1000
SIGNAL_BATCH = 10_000
CHUNK_ROWS = 5_000
KEY = "external_id"
TAGS = "tags"
# Columns an export produces that an import cannot set (decisions 37): the system attributes
# (computed, except tags which a file may set) and the export's own bookkeeping columns.
READ_ONLY_COLUMNS = frozenset({key for key, *_ in SYSTEM_ATTRIBUTES if key != TAGS} | {"id", "entered_at", "change"})
# Columns whose values are mostly distinct: remembering them would only cost memory.
UNIQUE_COLUMNS = frozenset({"email", "phone"})
MEMO_LIMIT = 20_000  # distinct cells remembered per column
TAG_MAX = Tag._meta.get_field("name").max_length


def _max_lengths() -> dict[str, int]:
    out = {}
    for name in (KEY, *PROFILE_FIELDS):
        max_length = getattr(Customer._meta.get_field(name), "max_length", None)
        if max_length:
            out[name] = max_length
    return out


MAX_LENGTHS = _max_lengths()


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list = field(default_factory=list)  # [{"line", "column", "message"}], first 1,000 bad rows
    error_total: int = 0  # bad rows in the whole file
    notices: list = field(default_factory=list)
    dry_run: bool = False
    rows: int = 0
    file_error: str | None = None  # the file as a whole could not be imported
    new_attributes: dict = field(default_factory=dict)  # custom key -> inferred type
    delimiter: str | None = None

    @property
    def ok(self) -> bool:
        return self.file_error is None and self.rejected == 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Columns:
    """What the header says: where each attribute is and how to read it."""

    index: dict[str, int]  # attribute key -> cell index
    width: int
    profile: list[str]  # profile fields present (not external_id)
    custom: dict[str, str | None]  # custom key -> type (None: no value anywhere in the column)
    new_custom: set[str]  # custom keys not registered yet
    has_tags: bool


class _Errors:
    """Row errors in line order; keeps the first MAX_REPORTED_ROWS bad rows, counts them all."""

    def __init__(self):
        self.items: list[dict] = []
        self.lines: list[int] = []
        self.total = 0

    def add_row(self, line: int, problems: list[tuple[str | None, str]]):
        self.total += 1
        if len(self.lines) < MAX_REPORTED_ROWS:
            self.lines.append(line)
            self.items.extend({"line": line, "column": col, "message": msg} for col, msg in problems)

    def merge(self, items: list[dict], total: int):
        """Add errors found in SQL (other rows than the Python ones) keeping line order."""
        self.total += total
        lines = sorted(set(self.lines) | {e["line"] for e in items})[:MAX_REPORTED_ROWS]
        keep = set(lines)
        self.items = sorted((e for e in self.items + items if e["line"] in keep), key=lambda e: e["line"])
        self.lines = lines


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
    staging = None
    try:
        with csv_source.open() as fh:
            header, result.delimiter, _ = csv_rows(fh, delimiter=delimiter)
        columns = _read_header(header, result)
        if columns.new_custom:
            _infer_types(csv_source, columns, delimiter=result.delimiter)
            for key in sorted(columns.new_custom):
                if columns.custom[key] is None:
                    result.notices.append(f"Column custom.{key} has no values; it was not registered.")
                else:
                    result.new_attributes[key] = columns.custom[key]
                    result.notices.append(f"New attribute custom.{key} will be registered as {columns.custom[key]}.")
        total_lines = csv_source.count_lines() if progress else 0
        staging = Staging.create(profile=columns.profile, custom=columns.custom, has_tags=columns.has_tags)
        errors = _Errors()
        tag_names: dict[str, str] = {}
        with csv_source.open() as fh:
            _, _, rows = csv_rows(fh, delimiter=result.delimiter)
            staged = _validate(rows, columns, errors, tag_names, staging, progress=progress, total=total_lines)
        result.rows = staged + errors.total
        if not result.rows:
            result.notices.append("The file has a header but no rows.")
        staging.analyse(tag_names=tag_names)
        sql_errors, sql_total = staging.row_errors(limit=MAX_REPORTED_ROWS)
        errors.merge(sql_errors, sql_total)
        result.created, result.updated, result.unchanged = staging.counts()
        result.rejected = result.error_total = errors.total
        result.errors = errors.items
        if progress:
            progress(total_lines, total_lines)
        if not result.ok:
            if not dry_run:  # nothing was written; a dry run keeps the preview of the good rows
                result.created = result.updated = result.unchanged = 0
            return result
        if not dry_run:
            touched = _write(staging, columns, tag_names, source=source, new_attributes=result.new_attributes)
            transaction.on_commit(lambda: profile_changed_send(touched, reason="import"))
    except CsvFileError as exc:
        result.file_error = str(exc)
        result.errors = [{"line": exc.line, "column": None, "message": str(exc)}]
        result.error_total = 1
    finally:
        if staging is not None:
            staging.drop()
        csv_source.close()
    return result


def _read_header(header: list[str], result: ImportResult) -> _Columns:
    index: dict[str, int] = {}
    unknown, ignored, duplicates = [], [], []
    registered = custom_types()
    custom: dict[str, str | None] = {}
    for i, raw in enumerate(header):
        name = raw if raw.startswith("custom.") else raw.lower()
        if name in index or name in ignored:
            duplicates.append(raw)
            continue
        if name.startswith("custom."):
            key = name[len("custom.") :]
            try:
                validate_custom_key(key)
            except NormalizationError as exc:
                raise CsvFileError(f"Column “{raw}”: {exc}", line=1)
            custom[key] = registered.get(key)
        elif name in READ_ONLY_COLUMNS:
            ignored.append(name)
            continue
        elif name != KEY and name != TAGS and name not in PROFILE_NORMALIZERS:
            unknown.append(raw or f"(empty, column {i + 1})")
            continue
        index[name] = i
    if duplicates:
        raise CsvFileError(f"Columns appear more than once: {', '.join(duplicates)}.", line=1)
    if unknown:
        if not index:
            raise CsvFileError(
                "The first line is not a header of attribute keys (external_id, email, first_name, ..., custom.<key>).",
                line=1,
            )
        raise CsvFileError(
            f"Unknown columns: {', '.join(unknown)}. Use attribute keys such as external_id, email, "
            "first_name, tags or custom.<key>.",
            line=1,
        )
    if KEY not in index and "email" not in index:
        raise CsvFileError("The file needs an external_id or an email column to match profiles.", line=1)
    if ignored:
        result.notices.append(f"Read-only columns ignored: {', '.join(ignored)}.")
    return _Columns(
        index=index,
        width=len(header),
        profile=[f for f in PROFILE_FIELDS if f in index],
        custom=custom,
        new_custom={k for k, t in custom.items() if t is None},
        has_tags=TAGS in index,
    )


def _infer_types(csv_source: CsvSource, columns: _Columns, *, delimiter: str) -> None:
    """Type every unregistered custom column from all its non-empty values (one streamed pass).

    Memory stays flat: per column we keep one sample value of each type seen, which is all
    infer_column_type needs to decide.
    """
    samples: dict[str, dict[str, str]] = {key: {} for key in columns.new_custom}
    positions = {key: columns.index[f"custom.{key}"] for key in columns.new_custom}
    open_keys = set(samples)
    with csv_source.open() as fh:
        _, _, rows = csv_rows(fh, delimiter=delimiter)
        for _, cells in rows:
            if len(cells) != columns.width:
                continue
            for key in list(open_keys):
                raw = unescape_injection(cells[positions[key]])
                try:
                    type_ = infer_type(raw)
                except NormalizationError:
                    continue  # NUL or surrogate: reported as a row error later
                if type_ is not None and type_ not in samples[key]:
                    samples[key][type_] = raw
                    if type_ == "string":
                        open_keys.discard(key)  # the column can only be text now
            if not open_keys:
                break
    for key, seen in samples.items():
        columns.custom[key] = infer_column_type(seen.values())


def _reader(normalize, *, memo: bool, max_length: int | None = None, suffix: str = ""):
    """raw cell -> (value, problem or None), through the shared normaliser.

    With `memo`, results are remembered per distinct cell (bounded), which makes the repetitive
    columns of real files (country, gender, city, plan, ...) nearly free.
    """

    def read(raw: str):
        try:
            value = normalize(unescape_injection(raw))
        except NormalizationError as exc:
            return None, f"{exc}{suffix}"
        if max_length and value is not None and len(value) > max_length:
            return None, f"Longer than {max_length} characters."
        return value, None

    if not memo:
        return read
    cache: dict[str, tuple] = {}

    def cached(raw: str):
        hit = cache.get(raw)
        if hit is None:
            if len(cache) >= MEMO_LIMIT:
                cache.clear()
            hit = cache[raw] = read(raw)
        return hit

    return cached


def _validate(rows, columns: _Columns, errors: _Errors, tag_names: dict, staging: Staging, *, progress, total) -> int:
    """Validate every row; stage the good ones. Returns the number of rows staged."""
    idx = columns.index
    key_pos = idx.get(KEY)
    email_pos = idx.get("email")
    read_key = _reader(normalize_text, memo=False, max_length=MAX_LENGTHS[KEY])
    profile = [
        (
            name,
            idx[name],
            _reader(PROFILE_NORMALIZERS[name], memo=name not in UNIQUE_COLUMNS, max_length=MAX_LENGTHS.get(name)),
        )
        for name in columns.profile
    ]
    custom = [
        (
            key,
            idx[f"custom.{key}"],
            _reader(partial(coerce, type_=type_), memo=True, suffix=f" (custom.{key} is {type_})."),
        )
        for key, type_ in columns.custom.items()
        if type_ is not None
    ]
    tags_pos = idx.get(TAGS)
    read_tags = _reader(_split_tags, memo=True)
    staged = 0
    chunk = []
    last_progress = time.monotonic()
    for line, cells in rows:
        if len(cells) != columns.width:
            errors.add_row(line, [(None, f"The row has {len(cells)} cells; the header has {columns.width}.")])
            continue
        problems: list[tuple[str | None, str]] = []
        external_id = None
        if key_pos is not None:
            external_id, problem = read_key(cells[key_pos])
            if problem:
                problems.append((KEY, problem))
        values = {}
        for name, pos, read in profile:
            values[name], problem = read(cells[pos])
            if problem:
                problems.append((name, problem))
        custom_values = {}
        for key, pos, read in custom:
            value, problem = read(cells[pos])
            if problem:
                problems.append((f"custom.{key}", problem))
            elif value is not None:
                custom_values[key] = value
        tags = None
        if tags_pos is not None:
            tags, problem = read_tags(cells[tags_pos])
            if problem:
                problems.append((TAGS, problem))
        if external_id is None and not problems:
            if email_pos is None:
                problems.append((KEY, "The row has no external_id."))
            elif values.get("email") is None:
                problems.append((KEY, "The row needs an external_id or an email to match a profile."))
        if problems:
            errors.add_row(line, problems)
            continue
        if tags:
            for tag in tags:
                tag_names.setdefault(tag.lower(), tag)
        chunk.append((line, external_id, values, custom_values, tags))
        if len(chunk) >= CHUNK_ROWS:
            staging.load(chunk)
            staged += len(chunk)
            chunk = []
            if progress and time.monotonic() - last_progress > 0.5:
                progress(min(line, total), total)
                last_progress = time.monotonic()
    if chunk:
        staging.load(chunk)
        staged += len(chunk)
    return staged


def _split_tags(text: str) -> list[str]:
    """Tags from a comma-separated cell, de-duplicated regardless of case (decisions 12)."""
    tags, seen = [], set()
    for part in text.split(","):
        name = normalize_text(part)
        if name is None or name.lower() in seen:
            continue
        if len(name) > TAG_MAX:
            raise NormalizationError(f"Tag “{name[:20]}…” is longer than {TAG_MAX} characters.")
        seen.add(name.lower())
        tags.append(name)
    return tags


def _write(staging: Staging, columns: _Columns, tag_names: dict, *, source, new_attributes) -> array:
    """The one short transaction: registry, tags, profiles. Returns the touched customer ids."""
    with transaction.atomic():
        for key, type_ in new_attributes.items():
            registered = attribute_register(key=key, type_=type_)
            if registered.type != type_:
                # Registered by someone else since validation: values were checked against our type.
                raise CsvFileError(
                    f"custom.{key} was registered as {registered.type} while the file was being checked; "
                    "import the file again."
                )
        staging.apply(tag_names=tag_names, default_source=source if "source" not in columns.profile else None)
        return staging.touched_ids()


def profile_changed_send(ids, *, reason: str) -> None:
    """Send profile_changed for many ids in bounded batches (call after commit)."""
    from customers.signals import profile_changed

    for start in range(0, len(ids), SIGNAL_BATCH):
        profile_changed.send(sender=Customer, customer_ids=list(ids[start : start + SIGNAL_BATCH]), reason=reason)


# ------------------------------------------------------------------------------
# The staging table: set-based checks and writes. Raw SQL is deliberate here: this is a bulk
# writer (COPY + INSERT ... SELECT), not the segment compiler. Identifiers come from model
# metadata and uuid4 only; values always go through parameters.
# ------------------------------------------------------------------------------
STAGED_PROFILE = (KEY, *PROFILE_FIELDS)
# Before apply(): a row that matched no profile (and is not an ambiguous email).
IS_NEW = "(customer_id IS NULL AND coalesce(match_count, 0) = 0)"


class Staging:
    """A temporary table of validated rows, on the current connection."""

    def __init__(self, *, profile: list[str], custom: dict[str, str | None], has_tags: bool):
        self.pg = connection.vendor == "postgresql"
        self.table = f"tessera_import_{uuid.uuid4().hex[:12]}"
        self.profile = profile
        self.custom_keys = sorted(custom)
        self.has_tags = has_tags
        self.customers = Customer._meta.db_table
        self.tags_through = Customer.tags.through._meta.db_table

    @classmethod
    def create(cls, **kwargs) -> Staging:
        staging = cls(**kwargs)
        json_type = "jsonb" if staging.pg else "text"
        date_type = "date" if staging.pg else "text"
        profile = ", ".join(f"{f} {date_type if f == 'birth_date' else 'text'}" for f in STAGED_PROFILE)
        staging._run(
            f"CREATE TEMP TABLE {staging.table} (line integer PRIMARY KEY, {profile}, "
            f"custom {json_type}, tags {json_type}, tag_keys {json_type}, customer_id bigint, match_count integer, "
            "attrs_changed boolean NOT NULL DEFAULT false, "
            "tags_changed boolean NOT NULL DEFAULT false, new_id bigint)"
        )
        staging._run(f"CREATE TEMP TABLE {staging.table}_err (line integer, col text, msg text)")
        staging._run(f"CREATE TEMP TABLE {staging.table}_tags (key text PRIMARY KEY, tag_id bigint)")
        return staging

    # -- helpers ---------------------------------------------------------------
    def _run(self, sql: str, params=None):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def _all(self, sql: str, params=None) -> list:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _distinct(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}" if self.pg else f"{a} IS NOT {b}"

    def _json_key_differs(self, a: str, b: str, params: list, key: str) -> str:
        if self.pg:
            params.extend([key, key])
            return f"({a} -> %s) IS DISTINCT FROM ({b} -> %s)"
        path = f'$."{key}"'
        params.extend([path, path, path, path])
        # json_type tells 1 from true, json_extract compares the values themselves.
        return f"(json_type({a}, %s) IS NOT json_type({b}, %s) OR json_extract({a}, %s) IS NOT json_extract({b}, %s))"

    def _each(self, expr: str) -> str:
        return f"jsonb_array_elements_text({expr}) AS x(value)" if self.pg else f"json_each({expr}) AS x"

    def _json_len(self, expr: str) -> str:
        return f"jsonb_array_length({expr})" if self.pg else f"json_array_length({expr})"

    def _merge_custom(self, current: str, patch: str, params: list) -> str:
        """The stored custom object with every file column removed, then the row's values added."""
        if self.pg:
            params.append(self.custom_keys)
            return f"(({current} - %s::text[]) || {patch})"
        params.extend(f'$."{k}"' for k in self.custom_keys)
        return f"json_patch(json_remove({current}, {', '.join(['%s'] * len(self.custom_keys))}), {patch})"

    # -- load --------------------------------------------------------------------
    def load(self, chunk: list) -> None:
        dumps = json.JSONEncoder().encode
        rows = []
        for line, external_id, values, custom_values, tags in chunk:
            birth_date = values.get("birth_date")
            row = [line, external_id]
            row.extend(values.get(f) for f in PROFILE_FIELDS)
            row[2 + PROFILE_FIELDS.index("birth_date")] = birth_date.isoformat() if birth_date else None
            row.append(dumps(custom_values) if custom_values else "{}")
            if tags is None:
                row.extend([None, None])
            elif not tags:
                row.extend(["[]", "[]"])
            else:
                row.extend([dumps(tags), dumps([t.lower() for t in tags])])
            rows.append(row)
        columns = ", ".join(("line", *STAGED_PROFILE, "custom", "tags", "tag_keys"))
        with connection.cursor() as cursor:
            if self.pg:
                with cursor.cursor.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join(["?"] * (len(STAGED_PROFILE) + 4))
                sql = f"INSERT INTO {self.table} ({columns}) VALUES ({marks})"
                raw = connection.connection
                if connection.in_atomic_block:
                    raw.executemany(sql, rows)
                else:
                    # One deferred transaction per chunk instead of one per row. It writes only the
                    # temp database, so unlike Django's BEGIN IMMEDIATE it never blocks other writers.
                    raw.execute("BEGIN DEFERRED")
                    try:
                        raw.executemany(sql, rows)
                    except BaseException:
                        raw.execute("ROLLBACK")
                        raise
                    raw.execute("COMMIT")

    # -- checks and preview --------------------------------------------------------
    def analyse(self, *, tag_names: dict[str, str]) -> None:
        """Match rows to profiles, find in-file conflicts, and mark what would change."""
        t, c = self.table, self.customers
        if self.pg:
            # No indexes: PostgreSQL hash-joins the staging table, and each index would make the
            # updates below rewrite it too.
            self._run(f"ANALYZE {t}")
        else:
            self._run(f"CREATE INDEX {t}_ext ON {t} (external_id)")
            self._run(f"CREATE INDEX {t}_email ON {t} (email)")
        self._run(
            f"UPDATE {t} SET customer_id = c.id FROM {c} AS c "
            f"WHERE {t}.external_id IS NOT NULL AND c.external_id = {t}.external_id"
        )
        self._run(
            f"UPDATE {t} SET match_count = (SELECT count(*) FROM {c} AS c WHERE c.email = {t}.email) "
            f"WHERE {t}.external_id IS NULL"
        )
        self._run(
            f"UPDATE {t} SET customer_id = (SELECT min(c.id) FROM {c} AS c WHERE c.email = {t}.email) "
            f"WHERE {t}.external_id IS NULL AND match_count = 1"
        )
        if not self.pg:
            self._run(f"CREATE INDEX {t}_cust ON {t} (customer_id)")
        self._find_conflicts()
        if self.has_tags:
            self._map_tags(tag_names, create=False)
        self._mark_changes()

    def _find_conflicts(self) -> None:
        t, err = self.table, f"{self.table}_err"
        self._run(
            f"INSERT INTO {err} (line, col, msg) "
            f"SELECT s.line, 'external_id', 'Duplicate external_id “' || s.external_id || '” (first on line ' "
            f"|| CAST(f.first AS text) || ').' FROM {t} AS s JOIN (SELECT external_id, min(line) AS first FROM {t} "
            "WHERE external_id IS NOT NULL GROUP BY external_id HAVING count(*) > 1) AS f "
            "ON f.external_id = s.external_id WHERE s.line > f.first"
        )
        self._run(
            f"INSERT INTO {err} (line, col, msg) "
            f"SELECT s.line, 'email', 'Duplicate email “' || s.email || '” in rows without external_id (first on "
            f"line ' || CAST(f.first AS text) || ').' FROM {t} AS s JOIN (SELECT email, min(line) AS first FROM {t} "
            "WHERE external_id IS NULL GROUP BY email HAVING count(*) > 1) AS f "
            "ON f.email = s.email WHERE s.external_id IS NULL AND s.line > f.first"
        )
        self._run(
            f"INSERT INTO {err} (line, col, msg) "
            f"SELECT line, 'email', CAST(match_count AS text) || ' profiles have the email “' || email || "
            f"'”; add an external_id to choose one.' FROM {t} WHERE external_id IS NULL AND match_count > 1"
        )
        # Two rows that reach one profile by different keys (an external_id row and an email row).
        self._run(
            f"INSERT INTO {err} (line, col, msg) "
            f"SELECT s.line, CASE WHEN s.external_id IS NULL THEN 'email' ELSE 'external_id' END, "
            f"'Updates the same profile as line ' || CAST(f.first AS text) || '.' FROM {t} AS s "
            f"JOIN (SELECT customer_id, min(line) AS first FROM {t} WHERE customer_id IS NOT NULL "
            f"GROUP BY customer_id HAVING count(*) > 1) AS f ON f.customer_id = s.customer_id "
            f"JOIN {t} AS p ON p.line = f.first WHERE s.line > f.first "
            "AND NOT (s.external_id IS NOT NULL AND p.external_id IS NOT NULL AND s.external_id = p.external_id) "
            "AND NOT (s.external_id IS NULL AND p.external_id IS NULL AND s.email = p.email)"
        )

    def _mark_changes(self) -> None:
        t, c = self.table, self.customers
        params: list = []
        tests = [self._distinct(f"c.{f}", f"{t}.{f}") for f in self.profile]
        tests += [self._json_key_differs("c.custom", f"{t}.custom", params, key) for key in self.custom_keys]
        sets = [f"attrs_changed = ({' OR '.join(tests)})"] if tests else []
        if self.has_tags:
            sets.append(
                f"tags_changed = ((SELECT count(*) FROM {self.tags_through} AS ct WHERE ct.customer_id = c.id) "
                f"<> {self._json_len(f'{t}.tag_keys')} OR EXISTS (SELECT 1 FROM {self._each(f'{t}.tag_keys')} "
                f"WHERE NOT EXISTS (SELECT 1 FROM {self.tags_through} AS ct JOIN {t}_tags AS m "
                "ON m.tag_id = ct.tag_id WHERE ct.customer_id = c.id AND m.key = x.value)))"
            )
        if sets:
            self._run(f"UPDATE {t} SET {', '.join(sets)} FROM {c} AS c WHERE c.id = {t}.customer_id", params)

    def row_errors(self, *, limit: int) -> tuple[list[dict], int]:
        """Errors of the first `limit` rows found in SQL, and how many rows have one."""
        err = f"{self.table}_err"
        total = self._all(f"SELECT count(DISTINCT line) FROM {err}")[0][0]
        if not total:
            return [], 0
        rows = self._all(
            f"SELECT line, col, msg FROM {err} WHERE line IN "
            f"(SELECT DISTINCT line FROM {err} ORDER BY line LIMIT %s) ORDER BY line, col",
            [limit],
        )
        return [{"line": line, "column": col, "message": msg} for line, col, msg in rows], total

    def counts(self) -> tuple[int, int, int]:
        """(created, updated, unchanged) among the rows without errors."""
        t = self.table
        row = self._all(
            f"SELECT coalesce(sum(CASE WHEN {IS_NEW} THEN 1 END), 0), "
            "coalesce(sum(CASE WHEN customer_id IS NOT NULL AND (attrs_changed OR tags_changed) THEN 1 END), 0), "
            "coalesce(sum(CASE WHEN customer_id IS NOT NULL THEN 1 END), 0) "
            f"FROM {t} WHERE line NOT IN (SELECT line FROM {t}_err)"
        )[0]
        created, updated, matched = (int(v) for v in row)
        return created, updated, matched - updated

    # -- write ------------------------------------------------------------------
    def apply(self, *, tag_names: dict[str, str], default_source: str | None) -> None:
        """Write the staged rows; the caller holds the transaction."""
        t, c = self.table, self.customers
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        if self.has_tags:
            self._map_tags(tag_names, create=True)
        # Existing profiles that change.
        params: list = []
        sets = [f"{f} = {t}.{f}" for f in self.profile]
        if self.custom_keys:
            sets.append(f"custom = {self._merge_custom(f'{c}.custom', f'{t}.custom', params)}")
        sets.append("updated_at = %s")
        params.append(now)
        self._run(
            f"UPDATE {c} SET {', '.join(sets)} FROM {t} "
            f"WHERE {c}.id = {t}.customer_id AND ({t}.attrs_changed OR {t}.tags_changed)",
            params,
        )
        # New profiles, with ids taken up front so tags can follow without matching rows back.
        if self.pg:
            self._run(f"UPDATE {t} SET new_id = nextval(pg_get_serial_sequence(%s, 'id')) WHERE {IS_NEW}", [c])
        else:
            self._run(
                f"WITH n AS (SELECT line, row_number() OVER (ORDER BY line) AS rn FROM {t} WHERE {IS_NEW}) "
                f"UPDATE {t} SET new_id = n.rn + max(coalesce((SELECT max(id) FROM {c}), 0), "
                f"coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0)) FROM n WHERE n.line = {t}.line",
                [c],
            )
        columns = ["id", KEY, *self.profile]
        values = ["new_id", KEY, *self.profile]
        params = []
        if default_source is not None:
            columns.append("source")
            values.append("%s")
            params.append(default_source)
        columns += ["custom", "created_at", "updated_at"]
        values += ["custom", "%s", "%s"]
        params += [now, now]
        # A profile created by tracking since the checks is updated instead (same rules as above).
        conflict = [f"{f} = excluded.{f}" for f in self.profile]
        if self.custom_keys:
            conflict.append(f"custom = {self._merge_custom(f'{c}.custom', 'excluded.custom', params)}")
        conflict.append("updated_at = excluded.updated_at")
        self._run(
            f"INSERT INTO {c} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {t} WHERE new_id IS NOT NULL "
            f"ON CONFLICT (external_id) DO UPDATE SET {', '.join(conflict)}",
            params,
        )
        # From here a row's profile is coalesce(customer_id, new_id); the racing profile (if any)
        # replaces new_id, which was then never inserted.
        self._run(
            f"UPDATE {t} SET customer_id = c.id FROM {c} AS c WHERE {t}.new_id IS NOT NULL "
            f"AND {t}.external_id IS NOT NULL AND c.external_id = {t}.external_id AND c.id <> {t}.new_id"
        )
        if self.has_tags:
            self._replace_tags()

    def _map_tags(self, tag_names: dict[str, str], *, create: bool) -> None:
        """Fill {table}_tags (lower-cased name -> tag id) for the file's tags; create missing ones if asked."""
        mapped = {key for (key,) in self._all(f"SELECT key FROM {self.table}_tags")}
        wanted = [k for k in tag_names if k not in mapped]
        known: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            for name, pk in Tag.objects.annotate(lname=Lower("name")).filter(lname__in=part).values_list("name", "pk"):
                known[name.lower()] = pk
        missing = [tag_names[k] for k in wanted if k not in known]
        if create and missing:
            Tag.objects.bulk_create([Tag(name=name) for name in missing], ignore_conflicts=True)
            lowered = [m.lower() for m in missing]
            for name, pk in (
                Tag.objects.annotate(lname=Lower("name")).filter(lname__in=lowered).values_list("name", "pk")
            ):
                known[name.lower()] = pk
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {self.table}_tags (key, tag_id) VALUES (%s, %s)", list(known.items()))

    def _replace_tags(self) -> None:
        t, through = self.table, self.tags_through
        self._run(
            f"DELETE FROM {through} WHERE customer_id IN "
            f"(SELECT coalesce(customer_id, new_id) FROM {t} WHERE tags_changed OR new_id IS NOT NULL)"
        )
        self._run(
            f"INSERT INTO {through} (customer_id, tag_id) SELECT coalesce({t}.customer_id, {t}.new_id), m.tag_id "
            f"FROM {t}, {self._each(f'{t}.tag_keys')}, {t}_tags AS m "
            f"WHERE m.key = x.value AND ({t}.tags_changed OR {t}.new_id IS NOT NULL)"
        )

    def touched_ids(self) -> array:
        ids = array("q")
        # A server-side cursor on PostgreSQL, so a million ids stream instead of landing in one result.
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                f"SELECT coalesce(customer_id, new_id) AS id FROM {self.table} "
                "WHERE new_id IS NOT NULL OR attrs_changed OR tags_changed ORDER BY id"
            )
            while batch := cursor.fetchmany(SIGNAL_BATCH):
                ids.extend(row[0] for row in batch)
        return ids

    def drop(self) -> None:
        for suffix in ("", "_err", "_tags"):
            try:
                self._run(f"DROP TABLE IF EXISTS {self.table}{suffix}")
            except DatabaseError:  # the connection's transaction is broken; the table dies with it
                pass


# ------------------------------------------------------------------------------
# Background imports: uploads in storage, a Job, and the task's service.
# ------------------------------------------------------------------------------
def import_upload_store(*, file, max_bytes: int | None = None) -> str:
    """Stream an upload (any binary file object or Django UploadedFile) into storage; returns its path.

    Refuses files over TESSERA_IMPORT_MAX_BYTES (1 GB by default) without keeping a partial copy.
    """
    limit = max_bytes or getattr(settings, "TESSERA_IMPORT_MAX_BYTES", 1024**3)
    folder = Path(settings.MEDIA_ROOT) / "imports" / timezone.now().strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.csv"
    size = 0
    chunks = file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1024 * 1024), b"")
    try:
        with open(path, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise CsvFileError(f"The file is larger than the limit of {limit // (1024 * 1024)} MB.")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return str(path)


def customer_import_start(
    *, upload_path: str, user=None, dry_run: bool = False, delimiter: str | None = None, source: str | None = None
) -> Job:
    """Create an import Job and enqueue customer_import_task once the Job is committed."""
    job = Job.objects.create(
        kind="import",
        created_by=user if getattr(user, "pk", None) else None,
        params={"path": str(upload_path), "dry_run": dry_run, "delimiter": delimiter, "source": source},
    )
    from customers.tasks_import import customer_import_task

    transaction.on_commit(lambda: customer_import_task.delay(job.pk))
    return job


def customer_import_run(*, job_id: int) -> Job | None:
    """Run a queued import Job (the task's body): progress, result, errors and status on the Job.

    The Job is claimed by compare-and-set, so a redelivered task does not import twice.
    """
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    params = job.params

    def progress(done: int, total: int) -> None:
        Job.objects.filter(pk=job_id).update(progress=done, total=total)

    try:
        result = customer_import(
            path_or_file=params["path"],
            dry_run=bool(params.get("dry_run")),
            delimiter=params.get("delimiter"),
            source=params.get("source"),
            progress=progress,
        )
    except Exception as exc:
        Job.objects.filter(pk=job_id).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            errors=[{"line": None, "column": None, "message": f"The import stopped unexpectedly: {exc}"}],
        )
        raise
    summary = result.as_dict()
    errors = summary.pop("errors")
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.SUCCEEDED if result.ok else Job.Status.FAILED,
        finished_at=timezone.now(),
        result=summary,
        errors=errors,
    )
    job.refresh_from_db()
    return job
