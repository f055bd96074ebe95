"""The file's header and the import's result: which attributes a file sets and how to read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from customers.attributes import SYSTEM_ATTRIBUTES
from customers.models import Customer, Tag
from customers.normalize import NormalizationError, validate_custom_key

from ..attributes import custom_types
from ..csvio import CsvFileError
from ..profiles import PROFILE_FIELDS, PROFILE_NORMALIZERS

MAX_REPORTED_ROWS = 1000
KEY = "external_id"
TAGS = "tags"
# Columns an export produces that an import cannot set (decisions 37): the system attributes
# (computed, except tags which a file may set) and the export's own bookkeeping columns.
READ_ONLY_COLUMNS = frozenset({key for key, *_ in SYSTEM_ATTRIBUTES if key != TAGS} | {"id", "entered_at", "change"})
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
class Columns:
    """What the header says: where each attribute is and how to read it."""

    index: dict[str, int]  # attribute key -> cell index
    width: int
    profile: list[str]  # profile fields present (not external_id)
    custom: dict[str, str | None]  # custom key -> type (None: no value anywhere in the column)
    new_custom: set[str]  # custom keys not registered yet
    has_tags: bool


class RowErrors:
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


def read_header(header: list[str], result: ImportResult) -> Columns:
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
    return Columns(
        index=index,
        width=len(header),
        profile=[f for f in PROFILE_FIELDS if f in index],
        custom=custom,
        new_custom={k for k, t in custom.items() if t is None},
        has_tags=TAGS in index,
    )
