"""Row validation for the customer import: the shared normalisers, applied a chunk at a time.

A chunk of rows is turned into columns and each column is read by one reader. Columns whose
cells repeat (country, gender, city, plan, tags, ...) are normalised once per distinct cell and
remembered (bounded), so most cells cost a dict lookup; columns of mostly distinct cells (ids,
email, phone) go through the normaliser cell by cell. The rules are the shared ones of
customers.normalize (decisions 15, 21), unchanged: this module only decides how often they run.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from functools import partial

from customers.csvformat import unescape_injection
from customers.normalize import (
    DATE_RE,
    EMAIL_FAST_RE,
    NUMERIC_RE,
    NormalizationError,
    coerce,
    column_type,
    infer_type,
    normalize_email,
    normalize_text,
    parse_date,
)

from ..csvio import csv_rows
from ..profiles import PROFILE_NORMALIZERS
from .header import KEY, MAX_LENGTHS, TAG_MAX, TAGS, Columns

CHUNK_ROWS = 10_000
# Columns whose values are mostly distinct: remembering them would only cost memory.
UNIQUE_COLUMNS = frozenset({KEY, "email", "phone"})
MEMO_LIMIT = 20_000  # distinct cells remembered per column
# A memoised column whose chunk of at least MEMO_SAMPLE cells is more than this share distinct
# stops remembering (see _ColumnReader.read).
MEMO_SAMPLE = 1_000
MEMO_DISTINCT_SHARE = 0.9
_encode = json.JSONEncoder().encode


def _cell_reader(normalize, *, max_length: int | None = None, suffix: str = ""):
    """raw cell -> (value, problem or None), through the shared normaliser."""

    def read(raw: str):
        try:
            value = normalize(unescape_injection(raw))
        except NormalizationError as exc:
            return None, f"{exc}{suffix}"
        if max_length and value is not None and len(value) > max_length:
            return None, f"Longer than {max_length} characters."
        return value, None

    return read


class _ColumnReader:
    """Reads one column of a chunk: (values, [(row index, problem), ...]).

    `whole(cells)`, if given, reads a whole column of cells that need no per-cell work in a few
    C-speed passes, or returns None (then each cell goes through `read`); see "whole columns".
    """

    def __init__(self, read, *, memo: bool, whole=None):
        self._read = read
        self._whole = whole
        self.memo = memo
        self.values: dict[str, object] = {}
        self.problems: dict[str, str] = {}

    def read(self, cells) -> tuple[list, list[tuple[int, str]]]:
        if not self.memo:
            return self._read_each(cells)
        cache, bad = self.values, self.problems
        try:  # every cell already known: the usual case after a column's first chunks
            values = list(map(cache.__getitem__, cells))
        except KeyError:
            pass
        else:
            if bad and not bad.keys().isdisjoint(cells):
                return values, [(i, bad[raw]) for i, raw in enumerate(cells) if raw in bad]
            return values, []
        distinct = dict.fromkeys(cells)
        if len(cells) >= MEMO_SAMPLE and len(distinct) > len(cells) * MEMO_DISTINCT_SHARE:
            # Mostly distinct after all (prices, birth dates, scores): the memo would cost more
            # than it saves, for the rest of the file too.
            self.memo = False
            cache.clear()
            bad.clear()
            return self._read_each(cells)
        missing = [raw for raw in distinct if raw not in cache]
        if missing:
            if len(cache) + len(missing) > MEMO_LIMIT:
                cache.clear()
                bad.clear()
                missing = list(distinct)
            for raw in missing:
                cache[raw], problem = self._read(raw)
                if problem:
                    bad[raw] = problem
        values = list(map(cache.__getitem__, cells))
        if bad and not bad.keys().isdisjoint(distinct):
            return values, [(i, bad[raw]) for i, raw in enumerate(cells) if raw in bad]
        return values, []

    def _read_each(self, cells) -> tuple[list, list[tuple[int, str]]]:
        if self._whole is not None and (values := self._whole(cells)) is not None:
            return values, []
        values, problems = [], []
        read = self._read
        for i, raw in enumerate(cells):
            value, problem = read(raw)
            values.append(value)
            if problem:
                problems.append((i, problem))
        return values, problems


def split_tags(text: str) -> list[str]:
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


def _staged_tags(text: str):
    """(lower-cased keys JSON as the staging table holds them, names)."""
    tags = split_tags(text)
    if not tags:
        return "[]", tags
    return _encode([t.lower() for t in tags]), tags


def _staged_date(text: str) -> str | None:
    if len(text) == 10 and text.isascii() and DATE_RE.fullmatch(text):
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            pass  # the shared rule below says why
        else:
            return text  # already the ISO form parse_date's value would be written in
    value = parse_date(text)
    return value.isoformat() if value is not None else None


def _custom_fragment(text: str, *, key_json: str, type_: str) -> str | None:
    """`"key": value` of the staged custom object, or None for an empty cell."""
    value = coerce(text, type_)
    return None if value is None else f"{key_json}: {_encode(value)}"


def _plain_number_fragment(text: str, key_json: str) -> str | None:
    """The fragment of a plain number (NUMERIC_RE) without Decimal (same JSON), else None."""
    whole, _, decimals = text.partition(".")
    if decimals.strip("0"):
        return f"{key_json}: {float(text)!r}"  # what float(Decimal(text)) gives: both round correctly
    number = int(whole)
    if abs(number) < 2**53:
        return f"{key_json}: {number}"
    return None


def _number_fragment(text: str, *, key_json: str) -> str | None:
    """_custom_fragment for a number column, without Decimal for plain numbers (same JSON)."""
    if NUMERIC_RE.fullmatch(text) and (fragment := _plain_number_fragment(text, key_json)) is not None:
        return fragment
    return _custom_fragment(text, key_json=key_json, type_="number")


# -- whole columns -------------------------------------------------------------------------------
# A chunk's column whose cells are all plain (ASCII, no NUL, no newline, and for text no space at
# either end and no leading quote that could be an injection escape) is read by C-speed passes
# over the joined column instead of a Python step per cell. Each function gives exactly what the
# per-cell reader gives for such a column (hypothesis tests in test_import_chunks.py), or None.
_ASCII_SPACES = "\t\x0b\x0c\r\x1c\x1d\x1e\x1f "  # what str.strip() removes in ASCII, but the newline
# The shared email regex with upper case allowed (the reader lower-cases), not after a leading quote.
_EMAIL = "(?!')" + EMAIL_FAST_RE.pattern.replace("a-z", "a-zA-Z")
_EMAIL_COLUMN_RE = re.compile(rf"(?:{_EMAIL})?(?:\n(?:{_EMAIL})?)*")
# Numbers whose text is already the JSON the shared rule writes: integers below 2**53, and decimals
# of at most 15 significant digits, no trailing zero, not below 1e-4, which float()'s shortest
# repr gives back digit for digit.
_CANONICAL_NUMBER = r"-?[1-9][0-9]{0,8}(?:\.[0-9]{0,5}[1-9])?|-?0\.(?!0000)[0-9]{0,5}[1-9]|0"
_NUMBER_COLUMN_RE = re.compile(rf"(?:{_CANONICAL_NUMBER})?(?:\n(?:{_CANONICAL_NUMBER})?)*")
# ISO dates that exist (year 1 to 9999, as date.fromisoformat): the 29th of February in leap years.
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_ISO_DATE = (
    r"(?!0000)[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    rf"|(?:0[13578]|1[02])-31)|{_LEAP_YEAR}-02-29"
)
_DATE_COLUMN_RE = re.compile(rf"(?:{_ISO_DATE})?(?:\n(?:{_ISO_DATE})?)*")


def _joined(cells) -> str | None:
    """The cells joined by newlines, if none holds a newline, a NUL or a non-ASCII character."""
    text = "\n".join(cells)
    if text.count("\n") != len(cells) - 1 or not text.isascii() or "\x00" in text:
        return None
    return text


def _has_edge_space(text: str) -> bool:
    for space in _ASCII_SPACES:
        if space in text and (
            text.startswith(space) or text.endswith(space) or f"\n{space}" in text or f"{space}\n" in text
        ):
            return True
    return False


def _plain_text_column(cells, *, max_length: int | None) -> list | None:
    """normalize_text and the length check: the cells themselves, empty ones as None."""
    text = _joined(cells)
    if (
        text is None
        or text.startswith("'")
        or "\n'" in text
        or _has_edge_space(text)
        or (max_length and max(map(len, cells)) > max_length)
    ):
        return None
    return [cell or None for cell in cells]


def _plain_email_column(cells, *, max_length: int) -> list | None:
    """normalize_email and the length check, for a column of emails the fast regex accepts."""
    text = _joined(cells)
    if text is None or not _EMAIL_COLUMN_RE.fullmatch(text) or max(map(len, cells)) > max_length:
        return None
    return [cell or None for cell in text.lower().split("\n")]


def _plain_date_column(cells) -> list | None:
    """_staged_date for a column of ISO dates: the cells themselves, empty ones as None."""
    text = _joined(cells)
    if text is None or not _DATE_COLUMN_RE.fullmatch(text):
        return None
    return [cell or None for cell in cells]


def _plain_number_column(cells, *, prefix: str) -> list | None:
    """The `"key": value` fragments of a column of canonical numbers (the text is the JSON)."""
    text = _joined(cells)
    if text is None or not _NUMBER_COLUMN_RE.fullmatch(text):
        return None
    return [prefix + cell if cell else None for cell in cells]


class _NumberColumnReader(_ColumnReader):
    """A custom number column: plain numbers (most cells) skip the reader's layers.

    A cell matching NUMERIC_RE has no injection prefix, no spaces and no sign other than `-`, so
    unescape_injection would leave it as it is and _number_fragment takes its first branch.
    """

    def __init__(self, read, *, key_json: str):
        super().__init__(read, memo=False, whole=partial(_plain_number_column, prefix=f"{key_json}: "))
        self._key_json = key_json

    def _read_each(self, cells) -> tuple[list, list[tuple[int, str]]]:
        if (values := self._whole(cells)) is not None:
            return values, []
        values, problems = [], []
        append, plain, key_json, read = values.append, NUMERIC_RE.fullmatch, self._key_json, self._read
        for i, raw in enumerate(cells):
            if plain(raw) and (fragment := _plain_number_fragment(raw, key_json)) is not None:
                append(fragment)
                continue
            value, problem = read(raw)
            append(value)
            if problem:
                problems.append((i, problem))
        return values, problems


def _profile_reader(name: str, normalize) -> _ColumnReader:
    max_length = MAX_LENGTHS.get(name)
    read = _cell_reader(normalize, max_length=max_length)
    whole = None
    if normalize is normalize_text:
        whole = partial(_plain_text_column, max_length=max_length)
    elif normalize is normalize_email:
        whole = partial(_plain_email_column, max_length=max_length)
    elif normalize is _staged_date:
        whole = _plain_date_column
    return _ColumnReader(read, memo=name not in UNIQUE_COLUMNS, whole=whole)


class RowValidator:
    """Validates chunks of (line, cells) and gives the staged rows and the bad ones.

    `staged_columns` names the staging-table columns of each staged row, in order.
    `tag_names` collects lower-cased name -> first spelling of every tag of a good row.
    """

    def __init__(self, columns: Columns):
        idx = columns.index
        self.columns = columns
        self.width = columns.width
        self.tag_names: dict[str, str] = {}
        self.staged_columns = ["line"]
        # (staged column(s), problem column, cell index, reader)
        self._readers: list[tuple[str, str, int, _ColumnReader]] = []
        self._key_slot = self._email_slot = None
        if KEY in idx:
            self._key_slot = self._add(KEY, KEY, idx[KEY], _profile_reader(KEY, normalize_text))
        for name in columns.profile:
            normalize = _staged_date if name == "birth_date" else PROFILE_NORMALIZERS[name]
            slot = self._add(name, name, idx[name], _profile_reader(name, normalize))
            if name == "email":
                self._email_slot = slot
        self._custom_slots = []
        for key, type_ in columns.custom.items():
            if type_ is None:
                continue
            key_json, suffix = _encode(key), f" (custom.{key} is {type_})."
            if type_ == "number":
                read = _cell_reader(partial(_number_fragment, key_json=key_json), suffix=suffix)
                reader = _NumberColumnReader(read, key_json=key_json)
            else:
                read = _cell_reader(partial(_custom_fragment, key_json=key_json, type_=type_), suffix=suffix)
                reader = _ColumnReader(read, memo=True)
            self._custom_slots.append(self._add(None, f"custom.{key}", idx[f"custom.{key}"], reader))
        self._tags_slot = None
        if columns.has_tags:
            self._tags_slot = self._add(None, TAGS, idx[TAGS], _cell_reader(_staged_tags))
            self.staged_columns.append("tag_keys")
        if self._custom_slots:
            self.staged_columns.append("custom")

    def _add(self, staged: str | None, column: str, pos: int, read) -> int:
        if staged is not None:
            self.staged_columns.append(staged)
        reader = read if isinstance(read, _ColumnReader) else _ColumnReader(read, memo=column not in UNIQUE_COLUMNS)
        self._readers.append((column, pos, reader))
        return len(self._readers) - 1

    def validate(self, chunk: list[tuple[int, list[str]]]) -> tuple[list[tuple], list[tuple[int, list]]]:
        """(staged rows, [(line, [(column, problem), ...]) of bad rows in line order])."""
        staged, problems, bad_rows = self._validate(chunk)
        if not staged:
            return [], bad_rows
        good = list(zip(*staged, strict=True))
        if problems:
            good = [row for i, row in enumerate(good) if i not in problems]
        return good, bad_rows

    def validate_copy(self, chunk: list[tuple[int, list[str]]]) -> tuple[bytes, int, list[tuple[int, list]]]:
        """Like validate(), with the staged rows as PostgreSQL COPY text: (data, row count, bad rows).

        For a helper process (imports.parallel): text crosses a pipe at no cost per row, and the
        importing process only forwards it.
        """
        staged, problems, bad_rows = self._validate(chunk)
        if not staged:
            return b"", 0, bad_rows
        columns = [list(map(str, staged[0])), *map(_copy_column, staged[1:])]  # line numbers, then text
        lines = map("\t".join, zip(*columns, strict=True))
        if problems:
            lines = [line for i, line in enumerate(lines) if i not in problems]
        else:
            lines = list(lines)
        return ("\n".join(lines) + "\n").encode() if lines else b"", len(lines), bad_rows

    def _validate(self, chunk) -> tuple[list[list], dict[int, list], list[tuple[int, list]]]:
        """(staged columns, {row index: problems} of bad rows among them, bad rows in line order)."""
        bad_rows = []
        width = self.width
        lines, rows = zip(*chunk, strict=True)
        if len(set(map(len, rows))) != 1 or len(rows[0]) != width:
            lines, rows = [], []
            for line, cells in chunk:
                if len(cells) != width:
                    bad_rows.append((line, [(None, f"The row has {len(cells)} cells; the header has {width}.")]))
                else:
                    lines.append(line)
                    rows.append(cells)
            if not rows:
                return [], {}, bad_rows
        columns = list(zip(*rows, strict=True))
        problems: dict[int, list] = {}
        values = []
        for column, pos, reader in self._readers:
            got, found = reader.read(columns[pos])
            values.append(got)
            for i, problem in found:
                problems.setdefault(i, []).append((column, problem))
        self._check_keys(values, problems, len(rows))
        staged = [lines]
        for slot, got in enumerate(values):
            if slot == self._tags_slot:
                staged.append([v[0] if v else None for v in got])
            elif slot not in self._custom_slots:
                staged.append(got)
        if self._custom_slots:
            staged.append(_custom_objects([values[slot] for slot in self._custom_slots]))
        if problems:
            bad_rows += [(lines[i], problems[i]) for i in problems]
            bad_rows.sort(key=lambda item: item[0])
        if self._tags_slot is not None:
            self._collect_tags(values[self._tags_slot], problems)
        return staged, problems, bad_rows

    def _check_keys(self, values: list, problems: dict, count: int) -> None:
        if self._key_slot is None:
            keyless = range(count)
        else:
            keyless = [i for i, v in enumerate(values[self._key_slot]) if v is None]
        emails = values[self._email_slot] if self._email_slot is not None else None
        for i in keyless:
            if i in problems:
                continue
            if emails is None:
                problems[i] = [(KEY, "The row has no external_id.")]
            elif emails[i] is None:
                problems[i] = [(KEY, "The row needs an external_id or an email to match a profile.")]

    def _collect_tags(self, staged: list, problems: dict) -> None:
        names = self.tag_names
        if problems:
            staged = [value for i, value in enumerate(staged) if i not in problems]
        # Memoised cells share one value: each distinct one once, in order of first appearance.
        distinct = dict(zip(map(id, staged), staged, strict=True))
        distinct.pop(id(None), None)
        for value in distinct.values():
            for tag in value[1]:
                names.setdefault(tag.lower(), tag)


_COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_column(values: list) -> list[str]:
    """One staged text column as COPY fields: backslash and control characters escaped, NULL as \\N.

    The column is scanned once as a whole; cells are escaped one by one only in a column that
    needs it (a tab or newline inside a quoted cell, a backslash).
    """
    text = "".join(filter(None, values))
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        values = [None if v is None else v.translate(_COPY_ESCAPES) for v in values]
    if None in values:
        values = [_COPY_NULL if v is None else v for v in values]
    return values


def _custom_objects(columns: list[list]) -> list[str]:
    """The staged custom JSON object of every row from its columns' `"key": value` fragments."""
    if len(columns) == 1:
        return ["{" + f + "}" if f is not None else "{}" for f in columns[0]]
    if not any(None in column for column in columns):  # no empty cell in the chunk: one format
        template = "{" + ", ".join(["%s"] * len(columns)) + "}"
        return [template % parts for parts in zip(*columns, strict=True)]
    return ["{" + ", ".join([f for f in parts if f is not None]) + "}" for parts in zip(*columns, strict=True)]


# -- type inference of new custom columns (decisions 37: from all their non-empty values) ----------
INFER_MEMO = 20_000  # distinct cells remembered per column while inferring
_NUMERIC_COLUMN_RE = re.compile(rf"(?:{NUMERIC_RE.pattern})?(?:\n(?:{NUMERIC_RE.pattern})?)*")


def infer_rows(rows, columns: Columns) -> dict[str, set[str]]:
    """The types (customers.normalize.infer_type) found in each new custom column of `rows`.

    A chunk at a time: a column whose cells are all plain numbers counts as "number" in one regex
    pass; otherwise each cell not seen before is typed. A column found to hold text is done with.
    Memory stays flat: a bounded set of cells already looked at per column.
    """
    found: dict[str, set[str]] = {key: set() for key in columns.new_custom}
    seen: dict[str, set] = {key: set() for key in found}
    positions = {key: columns.index[f"custom.{key}"] for key in found}
    open_keys = set(found)
    width = columns.width
    for chunk in iter(lambda: list(itertools.islice(rows, CHUNK_ROWS)), []):
        if not open_keys:
            break
        good = [cells for _, cells in chunk if len(cells) == width]
        for key in list(open_keys):
            column = [cells[positions[key]] for cells in good]
            types = found[key]
            text = _joined(column)
            if text is not None and _NUMERIC_COLUMN_RE.fullmatch(text):
                if any(column):
                    types.add("number")
                continue
            _infer_cells(column, types, seen[key])
            if "string" in types:
                open_keys.discard(key)  # the column can only be text now
    return found


def _infer_cells(column: list[str], types: set[str], done: set) -> None:
    for cell in column:
        if cell in done or ("number" in types and NUMERIC_RE.fullmatch(cell)):
            continue  # nothing new: a plain number cell infers as "number"
        if len(done) >= INFER_MEMO:
            done.clear()
        done.add(cell)
        try:
            type_ = infer_type(unescape_injection(cell))
        except NormalizationError:
            continue  # NUL or surrogate: reported as a row error later
        if type_ is not None:
            types.add(type_)
            if type_ == "string":
                return


def infer_types(csv_source, columns: Columns, *, delimiter: str) -> None:
    """Type every unregistered custom column from all its non-empty values (one streamed pass)."""
    with csv_source.open() as fh:
        _, _, rows = csv_rows(fh, delimiter=delimiter)
        found = infer_rows(rows, columns)
    set_inferred_types(columns, found)


def set_inferred_types(columns: Columns, found: dict[str, set[str]]) -> None:
    for key, types in found.items():
        columns.custom[key] = column_type(types)
