"""Validation in segments with helper processes gives the import one pass gives.

Segments are forced small (TESSERA_IMPORT_SEGMENT_BYTES), so rows, quoted newlines, errors and tag
spellings fall into many segments, shared between a real helper process and the importing one.
"""

import csv
import io
import logging

import pytest
from django.db import connection
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from customers.models import Customer
from customers.services.csvio import csv_rows, csv_segment_rows, record_starts
from customers.services.imports import customer_import, parallel
from customers.services.imports.header import MAX_REPORTED_ROWS
from customers.services.imports.staging import Staging

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="helpers serve PostgreSQL imports")
SEGMENT = 512  # bytes: a few rows per segment


def write(tmp_path, text: str, name="customers.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return str(path)


def run(path, *, helpers, dry_run=True, **kwargs):
    with override_settings(TESSERA_IMPORT_HELPERS=helpers, TESSERA_IMPORT_SEGMENT_BYTES=SEGMENT):
        return customer_import(path_or_file=path, dry_run=dry_run, **kwargs)


def report(result):
    return (
        result.rows,
        result.created,
        result.updated,
        result.unchanged,
        result.error_total,
        result.errors,
        result.file_error,
        result.notices,
    )


def profiles():
    """What an import wrote, keyed by external id (ids and times differ between runs)."""
    return {
        c.external_id: (
            c.email,
            c.first_name,
            c.country,
            c.birth_date,
            c.custom,
            sorted(t.name for t in c.tags.all()),
        )
        for c in Customer.objects.prefetch_related("tags")
    }


def rows_file(count: int, *, bad_every: int = 0, late_text: bool = True) -> str:
    """A file whose rows cover quoted newlines, tabs, backslashes, tag spellings and (optionally) bad rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = ["external_id", "email", "first_name", "country", "birth_date", "tags", "custom.score", "custom.code"]
    writer.writerow(header)
    for i in range(count):
        bad = bad_every and i % bad_every == bad_every - 1
        writer.writerow(
            [
                f"p{i}",
                "not-an-email" if bad else f"User{i}@Example.com",
                ["Ann", 'Bo "B" \\ Tab\there', "Multi\nline, name", "Zoé", "\\N"][i % 5],
                ["PL", "Germany", "usa", ""][i % 4],
                "" if i % 3 else f"19{50 + i % 50}-0{1 + i % 9}-1{i % 10}",
                ["VIP, news", "vip", "News, B2B", ""][i % 4] if i < count // 2 else ["vip", "NEWS", "b2b"][i % 3],
                str(i * 1.5) if i % 7 else "",
                f"x{i}" if late_text and i == count - 10 else str(i),  # numbers until a late segment says text
            ]
        )
    return out.getvalue()


# -- cutting the file (no database) -------------------------------------------------------------
def test_record_starts_are_line_starts_outside_quotes():
    data = rows_file(200).encode()
    starts = record_starts(io.BytesIO(data), every=300)
    assert len(starts) > 10
    for offset, line in starts:
        assert data[offset - 1 : offset] == b"\n"
        assert data[:offset].count(b'"') % 2 == 0
        assert line == data[:offset].count(b"\n") + 1


CELLS = st.text(alphabet=st.sampled_from(list('ab,"\n\r\t é;')), max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(CELLS, min_size=2, max_size=2), max_size=40), st.integers(min_value=1, max_value=64))
def test_segments_read_the_rows_of_the_whole_file(table, every):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["a", "b"])
    writer.writerows(table)
    data = out.getvalue().encode()
    whole = list(csv_rows(io.BytesIO(data), delimiter=",")[2])
    fh = io.BytesIO(data)
    starts = [(0, 1), *record_starts(fh, every=every)]
    ends = [start for start, _ in starts[1:]] + [len(data)]
    pieces = []
    for (start, line), end in zip(starts, ends, strict=True):
        pieces += list(csv_segment_rows(fh, start=start, end=end, first_line=line, delimiter=","))
    assert pieces == whole


def test_no_helpers_on_sqlite_for_small_files_or_without_a_path(tmp_path):
    path = write(tmp_path, rows_file(300))
    with override_settings(TESSERA_IMPORT_HELPERS=1, TESSERA_IMPORT_SEGMENT_BYTES=SEGMENT):
        source = parallel.CsvSource(path)
        assert parallel.helpers_wanted(source, "sqlite") == 0
        assert parallel.helpers_wanted(parallel.CsvSource(io.BytesIO(b"a\n" * 1000)), "postgresql") == 0
        assert parallel.helpers_wanted(source, "postgresql") == 1
    with override_settings(TESSERA_IMPORT_HELPERS=1, TESSERA_IMPORT_SEGMENT_BYTES=10**9):
        assert parallel.helpers_wanted(source, "postgresql") == 0


# -- imports (PostgreSQL) -------------------------------------------------------------------------
@postgres_only
def test_helpers_give_the_report_and_profiles_of_one_pass(tmp_path, monkeypatch):
    path = write(tmp_path, rows_file(400))
    alone = run(path, helpers=0)
    own, passes = [], []
    validate_segment, validate_file = parallel.validate_segment, parallel.validate_in_segments
    monkeypatch.setattr(parallel, "validate_segment", lambda *a, **k: own.append(a[2]) or validate_segment(*a, **k))
    monkeypatch.setattr(parallel, "validate_in_segments", lambda **k: passes.append(k["infer"]) or validate_file(**k))
    together = run(path, helpers=1)
    with open(path, "rb") as fh, override_settings(TESSERA_IMPORT_SEGMENT_BYTES=SEGMENT):
        segments = parallel.file_segments(fh, len(open(path, "rb").read()))
    assert 0 < len(own) < 2 * len(segments), "the helper validated no segment"
    # custom.code looked like numbers in the first segment; a late "x390" makes it text, so the
    # file was validated again with the types of the whole file.
    assert passes == [True, False]
    assert report(together) == report(alone)
    assert together.ok and together.created == 400
    assert together.new_attributes == {"score": "number", "code": "string"}

    assert run(path, helpers=0, dry_run=False).ok
    expected = profiles()
    Customer.objects.all().delete()
    assert run(path, helpers=1, dry_run=False).ok
    assert profiles() == expected
    # Tags keep the spelling of the first row that has them, wherever the segments went.
    assert expected["p0"][5] == ["VIP", "news"]
    assert expected["p398"][5] == ["B2B"]
    # Cells COPY text must escape, and one that reads like its NULL marker.
    assert expected["p1"][1] == 'Bo "B" \\ Tab\there'
    assert expected["p2"][1] == "Multi\nline, name"
    assert expected["p4"][1] == "\\N"
    assert expected["p7"][4] == {"code": "7"} and expected["p8"][4] == {"score": 12.0, "code": "8"}


@postgres_only
def test_types_of_the_first_segment_that_hold_for_the_file_take_one_pass(tmp_path, monkeypatch):
    lines = ["external_id,custom.score,custom.since,custom.note"]
    lines += [f"p{i},{i % 50}.5,2024-01-{1 + i % 28:02d},{'' if i < 350 else 'late text'}" for i in range(400)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    passes = []
    validate_file = parallel.validate_in_segments
    monkeypatch.setattr(parallel, "validate_in_segments", lambda **k: passes.append(k["infer"]) or validate_file(**k))
    together = run(path, helpers=1)
    alone = run(path, helpers=0)
    # custom.note has no value in the first segment: typed only by the whole file.
    assert passes == [True, False]
    assert report(together) == report(alone)
    assert together.new_attributes == {"score": "number", "since": "date", "note": "string"}

    passes.clear()
    lines = [line.rsplit(",", 1)[0] for line in lines]
    path = write(tmp_path, "\n".join(lines) + "\n", name="typed.csv")
    together = run(path, helpers=1, dry_run=False)
    assert passes == [True]
    assert together.ok and together.new_attributes == {"score": "number", "since": "date"}
    assert Customer.objects.get(external_id="p3").custom == {"score": 3.5, "since": "2024-01-04"}


@postgres_only
def test_bad_rows_in_many_segments_are_reported_in_file_order(tmp_path):
    path = write(tmp_path, rows_file(MAX_REPORTED_ROWS * 2 + 500, bad_every=2))
    alone = run(path, helpers=0)
    together = run(path, helpers=1)
    assert together.error_total == alone.error_total == MAX_REPORTED_ROWS + 250
    assert together.errors == alone.errors
    assert len({e["line"] for e in together.errors}) == MAX_REPORTED_ROWS
    assert report(together) == report(alone)


@postgres_only
def test_a_wrong_cut_after_a_quote_in_an_unquoted_field_is_redone_in_one_pass(tmp_path, monkeypatch):
    # The stray quote flips the parity: the newlines inside the quoted names look like record
    # starts, so some segment ends inside a quoted field.
    lines = ["external_id,first_name,city", 'p0,Ann,5" screen']
    lines += [f'p{i},"two\nlines {i}",Berlin' for i in range(1, 300)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    deleted = []
    original = Staging.delete_from_line
    monkeypatch.setattr(Staging, "delete_from_line", lambda self, line: deleted.append(line) or original(self, line))
    together = run(path, helpers=1)
    assert deleted, "no segment ended inside a quoted field: the test no longer tests the redo"
    assert report(together) == report(run(path, helpers=0))
    assert together.ok and together.created == 300

    deleted.clear()
    assert run(path, helpers=1, dry_run=False).ok
    assert deleted
    assert Customer.objects.get(external_id="p0").city == '5" screen'
    assert Customer.objects.get(external_id="p299").first_name == "two\nlines 299"
    assert Customer.objects.count() == 300


@postgres_only
@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(b'p150,"closed" then text,Berlin,1\n', id="csv-syntax"),
        pytest.param(b"p150,caf\xe9,Berlin,1\n", id="not-utf-8"),
    ],
)
def test_a_file_error_in_a_later_segment_is_the_one_a_single_pass_reports(tmp_path, broken):
    # custom.n is new: the error is met while its type is inferred, and again while validating.
    good = [b"external_id,first_name,city,custom.n\n"] + [f"p{i},Ann {i},Berlin,{i}\n".encode() for i in range(150)]
    data = b"".join(good) + broken + b"".join(f"q{i},Bo,Paris,2\n".encode() for i in range(150))
    path = tmp_path / "broken.csv"
    path.write_bytes(data)
    alone = run(str(path), helpers=0)
    together = run(str(path), helpers=1)
    assert alone.file_error and "152" in alone.file_error
    assert report(together) == report(alone)
    assert not Customer.objects.exists()


@postgres_only
def test_a_helper_that_dies_leaves_its_segments_to_the_importer(tmp_path, monkeypatch, caplog):
    path = write(tmp_path, rows_file(300))
    monkeypatch.setattr(parallel, "HELPER_MODULE", "customers.no_such_helper")
    with caplog.at_level(logging.WARNING, logger=parallel.__name__):
        together = run(path, helpers=1)
    assert "stopped" in caplog.text and "No module named" in caplog.text
    assert report(together) == report(run(path, helpers=0))
    assert together.ok and together.created == 300


@postgres_only
def test_progress_reaches_the_last_line_with_helpers(tmp_path, monkeypatch):
    path = write(tmp_path, rows_file(600, late_text=False))
    monkeypatch.setattr("customers.services.imports.service.PROGRESS_EVERY", 0)
    seen = []
    result = run(path, helpers=1, progress=lambda done, total: seen.append((done, total)))
    assert result.ok
    assert len(seen) > 2
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1][0] == seen[-1][1] > 600
