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


class CsvSyntaxError(CsvFileError):
    """A line the CSV reader refuses (an unclosed quote, text after a closing quote)."""


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


def _decoded_blocks(fh, *, first_line: int = 1):
    """Lists of lines (split at b"\n" only, ends kept), decoded a block at a time.

    The same lines as decoding the file line by line, without a Python step per line; an encoding
    error still names its physical line (counting from `first_line`, the line `fh` starts on).
    The UTF-8 BOM is dropped at the start of the file.
    """
    number = first_line
    rest = b""
    first = first_line == 1
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

    return header, delimiter, _numbered(reader, before=skipped)


def csv_segment_rows(fh, *, start: int, end: int, first_line: int, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of the rows in bytes [start, end) of a seekable binary file.

    `start` must be 0 (the header is read and skipped) or where a line begins (after a newline),
    and `first_line` that line's number in the file. Read from the start of a record, the rows
    are exactly those a read of the whole file gives there, line numbers included. A segment
    ending inside a quoted field raises CsvSyntaxError, as a file ending there would (see
    record_starts).
    """
    fh.seek(start)
    window = io.BufferedReader(_Window(fh, end - start), READ_CHUNK)
    if start == 0:  # the first segment: after the header, as csv_rows reads it
        return csv_rows(window, delimiter=delimiter)[2]
    lines = itertools.chain.from_iterable(_decoded_blocks(window, first_line=first_line))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    return _numbered(reader, before=first_line - 1)


def _numbered(reader, *, before: int):
    """The reader's non-blank rows with their first physical line; `before` lines precede it."""
    last = reader.line_num + before
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num + before
            if cells and any(cells):
                yield start, cells
    except csv.Error as exc:
        raise CsvSyntaxError(f"Line {last + 1} cannot be read as CSV: {exc}.", line=last + 1)


def record_starts(fh, *, every: int) -> list[tuple[int, int]]:
    """About every `every` bytes, a (byte offset, line number) where a CSV record may begin.

    A candidate is the start of a line with an even number of quote characters before it: in a
    well-formed file, one outside any quoted field. A quote inside an unquoted field (`5" screen`,
    which the reader accepts) can make a candidate wrong; the segment before it then ends inside a
    quoted field and raises CsvSyntaxError, so callers check each segment's end before trusting
    the next one's start. One streamed pass, C-speed counting; nothing is decoded.
    """
    starts = []
    target = every
    pos = quotes = newlines = 0  # the block's offset and what the blocks before it hold
    fh.seek(0)
    while block := fh.read(READ_CHUNK):
        end = pos + len(block)
        scanned, scanned_quotes = 0, 0  # quote count of block[:scanned]
        while target < end:
            newline = block.find(b"\n", max(target - pos, scanned))
            if newline < 0:
                break  # the target carries over to the next block
            scanned_quotes += block.count(b'"', scanned, newline)
            scanned = newline
            if (quotes + scanned_quotes) % 2 == 0 and newline + 1 < len(block):
                starts.append((pos + newline + 1, newlines + block.count(b"\n", 0, newline + 1) + 1))
                target = pos + newline + 1 + every
            else:
                target = pos + newline + 1
        quotes += block.count(b'"')
        newlines += block.count(b"\n")
        pos = end
    return starts


def _chain_first(first: str, text):
    yield first
    yield from text


class _Window(io.RawIOBase):
    """The next `length` bytes of a binary file, as a raw stream (the file is not closed)."""

    def __init__(self, raw, length: int):
        self._raw = raw
        self._left = length

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self._raw.read(min(len(buffer), self._left))
        n = len(data)
        buffer[:n] = data
        self._left -= n
        return n


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
