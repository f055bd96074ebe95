import io

import pytest

from customers.services.csvio import CsvFileError, CsvSource, csv_rows, sniff_delimiter


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("external_id,email\r\n", ","),
        ("external_id;email\r\n", ";"),
        ('"a;b",c\r\n', ","),
        ('"a,b";c;d\r\n', ";"),
        ("external_id\r\n", ","),
    ],
)
def test_sniff_delimiter_ignores_quoted_text(line, delimiter):
    assert sniff_delimiter(line) == delimiter


def rows_of(data: bytes, **kwargs):
    header, delimiter, rows = csv_rows(io.BytesIO(data), **kwargs)
    return header, delimiter, list(rows)


def test_rows_carry_physical_line_numbers_and_skip_blank_lines():
    header, delimiter, rows = rows_of(b'\r\n a ;b\r\n1;"x\r\ny"\r\n\r\n;\r\n2;z')
    assert (header, delimiter) == (["a", "b"], ";")
    assert rows == [(3, ["1", "x\r\ny"]), (7, ["2", "z"])]


def test_bom_is_dropped_from_the_first_header():
    header, _, _ = rows_of("\ufeffexternal_id,email\r\n".encode())
    assert header == ["external_id", "email"]


def test_decoding_errors_name_their_line():
    with pytest.raises(CsvFileError, match="line 3") as excinfo:
        rows_of(b"a\r\nok\r\n\xff\r\n")
    assert excinfo.value.line == 3


def test_unterminated_quote_is_a_file_error():
    with pytest.raises(CsvFileError, match="Line 2 cannot be read"):
        rows_of(b'a,b\r\n1,"open\r\n')


def test_delimiter_must_be_comma_or_semicolon():
    with pytest.raises(CsvFileError, match="delimiter"):
        rows_of(b"a\tb\r\n", delimiter="\t")


def test_unseekable_streams_are_spooled_and_read_twice():
    class Pipe(io.RawIOBase):
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, buffer):
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    source = CsvSource(Pipe(b"a\r\n1\r\n2\r\n"))
    try:
        for _ in range(2):
            with source.open() as fh:
                assert [cells for _, cells in csv_rows(fh)[2]] == [["1"], ["2"]]
        assert source.count_lines() == 3
        assert source.size() == 9
    finally:
        source.close()
    assert not source.path.exists()


def test_callers_file_stays_open():
    fh = io.BytesIO(b"a\r\n1\r\n")
    source = CsvSource(fh)
    with source.open() as opened:
        list(csv_rows(opened)[2])
    assert not fh.closed


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 1024 * 1024])
def test_block_decoding_gives_the_same_lines_whatever_the_block_size(monkeypatch, block):
    from customers.services import csvio

    data = '\ufeffa;b\r\nł;"x\r\ny"\r\n\r\nzé;€\n;\r\n2;ż'.encode()
    monkeypatch.setattr(csvio, "READ_CHUNK", block)
    assert rows_of(data) == (["a", "b"], ";", [(2, ["ł", "x\r\ny"]), (5, ["zé", "€"]), (7, ["2", "ż"])])
    bad = b"a,b\r\n1,2\r\nx,\xc5\x82\r\n3,\xff4\r\n"
    with pytest.raises(CsvFileError) as exc:
        rows_of(bad)
    assert exc.value.line == 4
