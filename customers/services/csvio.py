"""Reading CSV files for the customer import: encoding, delimiter sniffing, streamed rows.

Files are read as UTF-8 (with or without BOM) in one streamed pass per call of `csv_rows`, so
memory does not grow with the file. Problems with the file as a whole raise CsvFileError with
a sentence for a person.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from customers.csvformat import DELIMITERS

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
READ_CHUNK = 1024 * 1024


class CsvFileError(ValueError):
    """The file cannot be imported at all (encoding, empty, header); nothing was written."""

    def __init__(self, message: str, *, line: int | None = None):
        self.line = line
        super().__init__(message)


class CsvSource:
    """A CSV file that can be read more than once (type inference, then validation).

    Accepts a path or a binary file object; an unseekable stream is spooled to a temporary file.
    """

    def __init__(self, path_or_file):
        self._tmp = None
        if isinstance(path_or_file, str | os.PathLike):
            self.path = Path(path_or_file)
            self.file = None
        elif hasattr(path_or_file, "seekable") and path_or_file.seekable():
            self.path = None
            self.file = path_or_file
        else:
            self._tmp = tempfile.NamedTemporaryFile(prefix="tessera-import-", suffix=".csv", delete=False)
            shutil.copyfileobj(path_or_file, self._tmp, READ_CHUNK)
            self._tmp.close()
            self.path = Path(self._tmp.name)
            self.file = None

    def close(self):
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp.name)

    @contextlib.contextmanager
    def open(self):
        if self.path is not None:
            with open(self.path, "rb") as fh:
                yield fh
        else:
            # The readers wrap it in _Prefixed, which never closes the caller's file.
            self.file.seek(0)
            yield self.file

    def size(self) -> int | None:
        if self.path is not None:
            return self.path.stat().st_size
        pos = self.file.seek(0, io.SEEK_END)
        self.file.seek(0)
        return pos

    def count_lines(self) -> int:
        """Physical lines (a cheap upper bound on rows, for progress)."""
        count = 0
        last = b""
        with self.open() as fh:
            while chunk := fh.read(READ_CHUNK):
                count += chunk.count(b"\n")
                last = chunk
        return count + (1 if last and not last.endswith(b"\n") else 0)


def sniff_delimiter(header_line: str) -> str:
    """`,` or `;`, whichever occurs more often outside quotes in the header line (`,` on a tie)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    return ";" if counts[";"] > counts[","] else ","


def _decode_error(line: int) -> CsvFileError:
    return CsvFileError(
        f"The file is not valid UTF-8 (first problem on line {line}). Save it as “CSV UTF-8” and upload it again.",
        line=line,
    )


def _decoded_blocks(fh):
    """Lists of lines (split at b"\n" only, ends kept), decoded a block at a time.

    The same lines as decoding the file line by line, without a Python step per line; an encoding
    error still names its physical line (counting from 1). The UTF-8 BOM is dropped.
    """
    number = 1
    rest = b""
    first = True
    while True:
        block = fh.read(READ_CHUNK)
        data = rest + block
        if block:
            cut = data.rfind(b"\n") + 1
            if not cut:
                rest = data
                continue
            data, rest = data[:cut], data[cut:]
        elif not data:
            return
        if first:
            first = False
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _decode_error(number + data.count(b"\n", 0, exc.start))
        parts = text.split("\n")
        if block:  # the block ends with a newline: the last part is the empty tail
            lines = [part + "\n" for part in parts[:-1]]
        else:  # the file's last line has no newline
            lines = [part + "\n" for part in parts[:-1]] + [parts[-1]]
        number += len(lines)
        yield lines
        if not block:
            return


def csv_rows(fh, *, delimiter: str | None = None) -> tuple[list[str], str, Iterator[tuple[int, list[str]]]]:
    """(header, delimiter, iterator of (line number, cells)) for a binary file object.

    Line numbers are physical lines of the file, counting the header as line 1, so they match
    what a spreadsheet or text editor shows. Blank lines are skipped.
    """
    head = fh.read(2)
    if head in UTF16_BOMS:
        raise CsvFileError("The file is UTF-16 encoded; save it as “CSV UTF-8” and upload it again.", line=1)
    lines = itertools.chain.from_iterable(_decoded_blocks(io.BufferedReader(_Prefixed(head, fh), READ_CHUNK)))
    skipped = 0
    first = next(lines, "")
    while first and not first.strip():
        skipped += 1
        first = next(lines, "")
    if not first:
        raise CsvFileError("The file is empty.")
    if delimiter is None:
        delimiter = sniff_delimiter(first)
    elif delimiter not in DELIMITERS:
        raise CsvFileError("The delimiter must be “,” or “;”.")

    # strict: a quote left open runs to the end of the file, which must be an error, not a row.
    reader = csv.reader(_chain_first(first, lines), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise CsvFileError(f"The header line cannot be read: {exc}.", line=skipped + 1)
    header = [h.strip() for h in header]
    if not any(header):
        raise CsvFileError("The file has no header line (the first line must name the columns).", line=skipped + 1)

    def rows():
        last = reader.line_num + skipped
        try:
            for cells in reader:
                start, last = last + 1, reader.line_num + skipped
                if cells and any(cells):
                    yield start, cells
        except csv.Error as exc:
            raise CsvFileError(f"Line {last + 1} cannot be read as CSV: {exc}.", line=last + 1)

    return header, delimiter, rows()


def _chain_first(first: str, text):
    yield first
    yield from text


class _Prefixed(io.RawIOBase):
    """A raw stream that replays bytes already read (the BOM probe) before the rest."""

    def __init__(self, prefix: bytes, raw):
        self._prefix = prefix
        self._raw = raw

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n
