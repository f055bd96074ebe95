"""The chunked, memoised validation gives the same import as reading the file in one piece.

Chunk boundaries and memo evictions are forced small, so rows, errors and tag spellings cross
them; the result and what is written must not change.
"""

import io
import json
import re
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customers.models import Customer, Tag
from customers.normalize import NormalizationError, coerce, parse_date
from customers.services.imports import customer_import, rows
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

HEADER = "external_id,email,country,gender,birth_date,tags,custom.score,custom.plan"
LINES = [
    'u1,A1@Example.com,Poland,f,1990-01-02,"VIP, news",1.5,pro',
    "u2,a2@example.com,PL,m,,vip,2,free",
    "u3,not-an-email,Narnia,x,1990-13-01,,3,pro",
    'u4,a4@example.com,usa,,1991-02-03,"News,b2b",abc,team',
    "u5,a5@example.com,de,female,,,4,pro",
    'u6,a6@example.com,DEU,,,"B2B",5,',
    ",a7@example.com,gb,o,,vip,6,free",
    'u8,a8@example.com,PL,f,1990-01-02,"vip,news",7,pro',
    "u9,a9@example.com",
    "u1,dup@example.com,PL,,,,8,pro",
    ",,PL,,,,9,pro",
    "u12,ı@example.com,Germany,,,,10,pro",
]


def run(lines, *, dry_run):
    data = "\r\n".join([HEADER, *lines]) + "\r\n"
    return customer_import(path_or_file=io.BytesIO(data.encode()), dry_run=dry_run)


def written():
    return (
        list(Customer.objects.order_by("external_id", "email").values("external_id", "email", "country", "custom")),
        sorted(Tag.objects.values_list("name", flat=True)),
        sorted((c.external_id or "", sorted(t.name for t in c.tags.all())) for c in Customer.objects.all()),
    )


def test_small_chunks_and_memo_give_the_same_report(monkeypatch):
    whole = run(LINES, dry_run=True)
    monkeypatch.setattr(rows, "CHUNK_ROWS", 2)
    monkeypatch.setattr("customers.services.imports.service.CHUNK_ROWS", 2)
    monkeypatch.setattr(rows, "MEMO_LIMIT", 3)
    chunked = run(LINES, dry_run=True)
    assert chunked.as_dict() == whole.as_dict()
    assert [e["line"] for e in whole.errors] == sorted(e["line"] for e in whole.errors)
    assert {e["line"] for e in whole.errors} == {4, 10, 11, 12}  # abc only makes custom.score text


def test_columns_that_stop_remembering_mid_file_give_the_same_report(monkeypatch):
    whole = run(LINES, dry_run=True)
    monkeypatch.setattr("customers.services.imports.service.CHUNK_ROWS", 4)
    monkeypatch.setattr(rows, "MEMO_SAMPLE", 4)
    monkeypatch.setattr(rows, "MEMO_DISTINCT_SHARE", 0.8)
    readers = []
    original = rows._ColumnReader.__init__

    def init(self, read, *, memo, whole=None):
        original(self, read, memo=memo, whole=whole)
        readers.append((self, memo))

    monkeypatch.setattr(rows._ColumnReader, "__init__", init)
    mixed = run(LINES, dry_run=True)
    assert mixed.as_dict() == whole.as_dict()
    # Some memoised columns (chunks of all-distinct scores, dates, ...) stopped remembering.
    assert any(started and not reader.memo for reader, started in readers)
    assert any(started and reader.memo for reader, started in readers)  # repeating ones (plan) keep theirs


def test_small_chunks_write_the_same_profiles(monkeypatch):
    good = [line for i, line in enumerate(LINES) if i not in (2, 8, 9, 10)]
    first = run(good, dry_run=False)
    assert first.ok and first.created == len(good), first.errors
    whole = written()
    assert ("u8", ["VIP", "news"]) in whole[2]  # the first spelling in the file names the tag
    Customer.objects.all().delete()
    Tag.objects.all().delete()
    monkeypatch.setattr("customers.services.imports.service.CHUNK_ROWS", 2)
    monkeypatch.setattr(rows, "MEMO_LIMIT", 3)
    again = run(good, dry_run=False)  # the custom columns are registered by now
    assert (again.created, again.errors, again.rows) == (first.created, first.errors, first.rows)
    assert written() == whole


def test_tag_changes_are_detected_per_profile():
    Tag.objects.create(name="A")
    Tag.objects.create(name="b")
    CustomerFactory(external_id="same", tags=["A", "b"])
    CustomerFactory(external_id="new-tag", tags=["A"])
    CustomerFactory(external_id="fewer", tags=["A", "b"])
    CustomerFactory(external_id="none", tags=[])
    CustomerFactory(external_id="added", tags=[])
    CustomerFactory(external_id="cleared", tags=["A"])
    CustomerFactory(external_id="swapped", tags=["A"])
    data = [
        'same,"B, a"',
        'new-tag,"a, brand-new"',
        "fewer,a",
        "none,",
        "added,b",
        "cleared,",
        "swapped,b",
    ]
    text = "\r\n".join(["external_id,tags", *data]) + "\r\n"
    preview = customer_import(path_or_file=io.BytesIO(text.encode()), dry_run=True)
    assert (preview.updated, preview.unchanged) == (5, 2)
    result = customer_import(path_or_file=io.BytesIO(text.encode()), dry_run=False)
    assert (result.updated, result.unchanged) == (5, 2)
    tags = {c.external_id: sorted(t.name for t in c.tags.all()) for c in Customer.objects.all()}
    assert tags == {
        "same": ["A", "b"],
        "new-tag": ["A", "brand-new"],
        "fewer": ["A"],
        "none": [],
        "added": ["b"],
        "cleared": [],
        "swapped": ["b"],
    }
    again = customer_import(path_or_file=io.BytesIO(text.encode()), dry_run=True)
    assert (again.updated, again.unchanged) == (0, 7)


@settings(max_examples=300)
@given(
    st.from_regex(r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?", fullmatch=True)
    | st.sampled_from(["9007199254740992", "9007199254740993.000", "-0", "-0.0", "1.10", " 2 ", "1e3", "0x1"])
)
def test_number_cells_stage_the_json_of_the_shared_rule(text):
    try:
        value = coerce(text, "number")
    except NormalizationError:
        with pytest.raises(NormalizationError):  # not a number: the same rule refuses it
            rows._number_fragment(text, key_json='"n"')
        return
    assert rows._number_fragment(text, key_json='"n"') == f'"n": {json.dumps(value)}'


NUMBER_CELLS = st.from_regex(r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?", fullmatch=True) | st.sampled_from(
    ["9007199254740992", "-0", "1.10", " 2 ", "1e3", "0x1", "'-5", "abc", "", "+1", "٣"]
)


@settings(max_examples=100)
@given(st.lists(NUMBER_CELLS, min_size=1, max_size=30))
def test_number_column_reader_gives_what_the_generic_reader_gives(cells):
    generic = rows._ColumnReader(
        rows._cell_reader(partial(rows._number_fragment, key_json='"n"'), suffix=" (custom.n is number)."), memo=False
    )
    fast = rows._NumberColumnReader(generic._read, key_json='"n"')
    assert fast.read(cells) == generic.read(cells)


@settings(max_examples=300)
@given(
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True)
    | st.sampled_from(
        ["2024-02-29", "2023-02-29", "0000-01-01", "2024-1-01", " 2024-01-01", "2024-01-01T10:00", "٢٠٢٤-٠١-٠١"]
    )
)
def test_date_cells_stage_what_the_shared_rule_gives(text):
    try:
        value = parse_date(text)
    except NormalizationError as exc:
        with pytest.raises(NormalizationError, match=re.escape(str(exc))):
            rows._staged_date(text)
        return
    assert rows._staged_date(text) == value.isoformat()


# -- whole columns: the C-speed reads of plain columns give what the per-cell reads give ------------
TEXT_CELLS = st.text(alphabet=st.sampled_from(list("aZ09 .@-_'=+\t\r\n\x00\x1cé")), max_size=12) | st.sampled_from(
    ["", "'=x", "'abc", " a", "a ", "x" * 300, "Ann Smith", "\\N"]
)
PLAIN_TEXT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 .@-]{0,10}[A-Za-z0-9]|", fullmatch=True)
EMAIL_CELLS = st.from_regex(
    r"[A-Za-z0-9._%+'=-]{1,10}@[A-Za-z0-9-]{1,8}(\.[A-Za-z0-9-]{1,8})?\.[A-Za-z]{1,4}", fullmatch=True
)
DATE_CELLS = st.dates().map(str) | st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True)
CANONICAL_NUMBERS = st.from_regex(r"-?[1-9][0-9]{0,17}(\.[0-9]{0,9}[1-9])?|-?0\.[0-9]{0,6}[1-9]|-?0", fullmatch=True)


def _readers(name: str):
    """(the column's reader with its whole-column read, the same reader cell by cell)."""
    normalize = rows._staged_date if name == "birth_date" else rows.PROFILE_NORMALIZERS.get(name, rows.normalize_text)
    whole = rows._profile_reader(name, normalize)
    whole.memo = False
    return whole, rows._ColumnReader(whole._read, memo=False)


@settings(max_examples=150)
@given(st.lists(PLAIN_TEXT | TEXT_CELLS, min_size=1, max_size=20), st.sampled_from(["external_id", "phone", "city"]))
def test_whole_text_columns_read_as_cell_by_cell(cells, name):
    whole, each = _readers(name)
    assert whole.read(tuple(cells)) == each.read(tuple(cells))


@settings(max_examples=150)
@given(st.lists(EMAIL_CELLS | st.just("") | TEXT_CELLS, min_size=1, max_size=20))
def test_whole_email_columns_read_as_cell_by_cell(cells):
    whole, each = _readers("email")
    assert whole.read(tuple(cells)) == each.read(tuple(cells))


@settings(max_examples=150)
@given(st.lists(DATE_CELLS | st.sampled_from(["", "2024-02-29", "2023-02-29", "1900-02-29", "2000-02-29"]), min_size=1))
def test_whole_date_columns_read_as_cell_by_cell(cells):
    whole, each = _readers("birth_date")
    assert whole.read(tuple(cells)) == each.read(tuple(cells))


@settings(max_examples=150)
@given(st.lists(CANONICAL_NUMBERS | st.sampled_from(["", "0.0001", "0.00001", "1.50", "007"]), min_size=1, max_size=20))
def test_whole_number_columns_read_as_cell_by_cell(cells):
    generic = rows._ColumnReader(
        rows._cell_reader(partial(rows._number_fragment, key_json='"n"'), suffix=" (custom.n is number)."), memo=False
    )
    fast = rows._NumberColumnReader(generic._read, key_json='"n"')
    assert fast.read(tuple(cells)) == generic.read(tuple(cells))


@pytest.mark.parametrize(
    "cell",
    [
        "123456789.123456",  # 15 significant digits: the text is float's repr
        "1234567890.123456",
        "12345678901234567.5",
        "0.1234567890123456",
        "9007199254740993",
        "99999999999999999999",
        "0.0001",
        "0.00001",
        "-0.5",
        "-0",
        "100.10",
        "1e5",
    ],
)
def test_number_boundaries_read_as_cell_by_cell(cell):
    generic = rows._ColumnReader(rows._cell_reader(partial(rows._number_fragment, key_json='"n"')), memo=False)
    fast = rows._NumberColumnReader(generic._read, key_json='"n"')
    assert fast.read((cell, "1")) == generic.read((cell, "1"))


def test_typical_columns_take_the_whole_column_read():
    assert rows._plain_text_column(("bench-1", "", "x-2"), max_length=255) == ["bench-1", None, "x-2"]
    assert rows._plain_email_column(("Ann@Example.COM", ""), max_length=254) == ["ann@example.com", None]
    assert rows._plain_date_column(("2024-02-29", "", "1999-12-31")) == ["2024-02-29", None, "1999-12-31"]
    assert rows._plain_number_column(("12.5", "", "-3", "0.25"), prefix='"n": ') == [
        '"n": 12.5',
        None,
        '"n": -3',
        '"n": 0.25',
    ]
    # Not plain: a leading space, a non-ASCII letter, a quote that may be an escape, a day that does not exist.
    assert rows._plain_text_column((" a",), max_length=None) is None
    assert rows._plain_email_column(("zoé@example.com",), max_length=254) is None
    assert rows._plain_text_column(("'=1",), max_length=None) is None
    assert rows._plain_date_column(("2023-02-29",)) is None


def _read_copy_text(data: bytes) -> list[tuple]:
    escapes = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}

    def field(text):
        return None if text == "\\N" else re.sub(r"\\(.)", lambda m: escapes[m[1]], text)

    return [tuple(map(field, line.split("\t"))) for line in data.decode().split("\n")[:-1]]


@settings(max_examples=150)
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab \\\t\n\rNé'")), max_size=8), min_size=1, max_size=12))
def test_copy_text_reads_back_as_the_staged_rows(names):
    from customers.services.imports.header import Columns

    index = {"external_id": 0, "first_name": 1}
    columns = Columns(index=index, width=2, profile=["first_name"], custom={}, new_custom=set(), has_tags=False)
    validator = rows.RowValidator(columns)
    chunk = [(i + 2, [f"id{i}", name]) for i, name in enumerate(names)]
    staged, bad = validator.validate(chunk)
    data, count, bad_again = validator.validate_copy(chunk)
    assert bad_again == bad and count == len(staged)
    assert _read_copy_text(data) == [(str(line), *values) for line, *values in staged]
