"""Row validation for the customer import: the shared normalisers, applied a chunk at a time.

A chunk of rows is turned into columns and each column is read by one reader. Columns whose
cells repeat (country, gender, city, plan, tags, ...) are normalised once per distinct cell and
remembered (bounded), so most cells cost a dict lookup; columns of mostly distinct cells (ids,
email, phone) go through the normaliser cell by cell. The rules are the shared ones of
customers.normalize (decisions 15, 21), unchanged: this module only decides how often they run.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import partial

from customers.csvformat import unescape_injection
from customers.normalize import DATE_RE, NUMERIC_RE, NormalizationError, coerce, normalize_text, parse_date

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
    """Reads one column of a chunk: (values, [(row index, problem), ...])."""

    def __init__(self, read, *, memo: bool):
        self._read = read
        self.memo = memo
        self.values: dict[str, object] = {}
        self.problems: dict[str, str] = {}

    def read(self, cells) -> tuple[list, list[tuple[int, str]]]:
        if not self.memo:
            return self._read_each(cells)
        cache, bad = self.values, self.problems
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
        values = [cache[raw] for raw in cells]
        if bad and not bad.keys().isdisjoint(distinct):
            return values, [(i, bad[raw]) for i, raw in enumerate(cells) if raw in bad]
        return values, []

    def _read_each(self, cells) -> tuple[list, list[tuple[int, str]]]:
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


class _NumberColumnReader(_ColumnReader):
    """A custom number column: plain numbers (most cells) skip the reader's layers.

    A cell matching NUMERIC_RE has no injection prefix, no spaces and no sign other than `-`, so
    unescape_injection would leave it as it is and _number_fragment takes its first branch.
    """

    def __init__(self, read, *, key_json: str):
        super().__init__(read, memo=False)
        self._key_json = key_json

    def _read_each(self, cells) -> tuple[list, list[tuple[int, str]]]:
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


class RowValidator:
    """Validates chunks of (line, cells) and gives the staged rows and the bad ones.

    `staged_columns` names the staging-table columns of each staged row, in order.
    `tag_names` collects lower-cased name -> first spelling of every tag of a good row.
    """

    def __init__(self, columns: Columns):
        idx = columns.index
        self.width = columns.width
        self.tag_names: dict[str, str] = {}
        self.staged_columns = ["line"]
        # (staged column(s), problem column, cell index, reader)
        self._readers: list[tuple[str, str, int, _ColumnReader]] = []
        self._key_slot = self._email_slot = None
        if KEY in idx:
            self._key_slot = self._add(KEY, KEY, idx[KEY], _cell_reader(normalize_text, max_length=MAX_LENGTHS[KEY]))
        for name in columns.profile:
            normalize = _staged_date if name == "birth_date" else PROFILE_NORMALIZERS[name]
            read = _cell_reader(normalize, max_length=MAX_LENGTHS.get(name))
            slot = self._add(name, name, idx[name], read)
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
        lines, rows = [], []
        width = self.width
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
        seen = set()
        for i, value in enumerate(staged):
            if value is None or i in problems or id(value) in seen:
                continue
            seen.add(id(value))
            for tag in value[1]:
                names.setdefault(tag.lower(), tag)


_COPY_NULL = "\\N"
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_column(values: list) -> list[str]:
    """One staged text column as COPY fields: backslash and control characters escaped, NULL as \\N.

    The column is scanned once as a whole; cells are escaped one by one only in a column that
    needs it (a tab or newline inside a quoted cell, a backslash).
    """
    if _COPY_SPECIAL.search("".join(filter(None, values))):
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
