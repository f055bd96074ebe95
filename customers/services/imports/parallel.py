"""Validating a large CSV file in segments, with helper processes alongside the importing one.

Validation is Python and runs on one core; while it runs, PostgreSQL only stores what it is given.
A file of at least two segments (settings.TESSERA_IMPORT_SEGMENT_BYTES, 4 MiB) is cut at record
boundaries (csvio.record_starts) and its segments are shared out: each helper process
(settings.TESSERA_IMPORT_HELPERS, `python -m customers.import_helper`) keeps up to
HELPER_DEPTH segments in hand, and the importing process validates the next one itself whenever
the helpers are supplied. Both run the same RowValidator on the same Columns, so the rules are
the same ones; a helper returns its staged rows as COPY text, which the importing process writes
into the staging table as it comes, and its errors and tag spellings, which are merged in file
order at the end, so the result is the one a single pass would give (tests compare them).

A cut can be wrong only in a file with a quote inside an unquoted field (see record_starts). The
segment before such a cut then ends inside a quoted field; from that segment on, the staged rows
are deleted and the rest of the file is validated in one pass by the importing process. A helper
that dies has its segments validated by the importing process instead. Helpers only read the file
and never touch the database.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from ..csvio import CsvFileError, CsvSource, CsvSyntaxError, csv_segment_rows, record_starts
from .header import MAX_REPORTED_ROWS, Columns, RowErrors
from .rows import CHUNK_ROWS, RowValidator, infer_rows, set_inferred_types

logger = logging.getLogger(__name__)

HELPER_DEPTH = 2  # segments a helper holds: one in work, one waiting
HELPER_MODULE = "customers.import_helper"
CLOSE_TIMEOUT = 5  # seconds a helper gets to exit before it is killed


@dataclass(frozen=True)
class Segment:
    index: int
    start: int  # byte offsets [start, end)
    end: int
    first_line: int

    def rows(self, fh, *, delimiter: str):
        return csv_segment_rows(fh, start=self.start, end=self.end, first_line=self.first_line, delimiter=delimiter)


@dataclass
class SegmentResult:
    index: int
    staged: int = 0  # rows written (by the importing process) or in `data` (by a helper)
    data: bytes = b""  # a helper's staged rows as COPY text
    errors: list = field(default_factory=list)  # (line, problems) of the first MAX_REPORTED_ROWS bad rows
    error_total: int = 0
    tag_names: dict = field(default_factory=dict)  # as RowValidator.tag_names, for this segment
    file_error: tuple | None = None  # (message, line, is a CSV syntax error)
    types: dict = field(default_factory=dict)  # of an inference: new custom key -> types found


def helpers_wanted(csv_source: CsvSource, vendor: str) -> int:
    """How many helper processes an import of this file should start (0: one process)."""
    wanted = settings.TESSERA_IMPORT_HELPERS
    if wanted <= 0 or vendor != "postgresql" or csv_source.path is None or not _settings_module():
        return 0
    return wanted if csv_source.size() >= 2 * settings.TESSERA_IMPORT_SEGMENT_BYTES else 0


def _settings_module() -> str | None:
    """The settings a helper loads: this process's (override_settings leaves SETTINGS_MODULE empty)."""
    return os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE


def file_segments(fh, size: int) -> list[Segment]:
    """The file cut at record starts about every TESSERA_IMPORT_SEGMENT_BYTES (the first has the header)."""
    starts = [(0, 1), *record_starts(fh, every=settings.TESSERA_IMPORT_SEGMENT_BYTES)]
    ends = [start for start, _ in starts[1:]] + [size]
    return [Segment(i, start, end, line) for i, ((start, line), end) in enumerate(zip(starts, ends, strict=True))]


def _file_error(exc: CsvFileError) -> tuple:
    return (str(exc), exc.line, isinstance(exc, CsvSyntaxError))


def infer_segment(fh, columns: Columns, segment: Segment, *, delimiter: str) -> SegmentResult:
    """The types found in the new custom columns of one segment (rows.infer_rows)."""
    result = SegmentResult(index=segment.index)
    rows = segment.rows(fh, delimiter=delimiter)
    try:
        result.types = infer_rows(rows, columns)
    except CsvFileError as exc:
        result.file_error = _file_error(exc)
    return result


def validate_segment(fh, validator: RowValidator, segment: Segment, *, delimiter: str, write: Callable, infer=False):
    """Validate one segment; `write(copy_text)` receives its staged rows a chunk at a time.

    With `infer`, the types of the new custom columns are also collected (rows.infer_rows), to
    check the types the validation assumed (see validate_in_segments).
    """
    result = SegmentResult(index=segment.index)
    if infer:
        result.types = {key: set() for key in validator.columns.new_custom}
    validator.tag_names = result.tag_names
    rows = segment.rows(fh, delimiter=delimiter)
    try:
        for chunk in iter(lambda: list(itertools.islice(rows, CHUNK_ROWS)), []):
            if infer:
                for key, types in infer_rows(iter(chunk), validator.columns).items():
                    result.types[key] |= types
            data, count, bad = validator.validate_copy(chunk)
            if count:
                write(data)
                result.staged += count
            result.error_total += len(bad)
            result.errors.extend(bad[: MAX_REPORTED_ROWS - len(result.errors)])
    except CsvFileError as exc:
        result.file_error = _file_error(exc)
    return result


class _Helper:
    """One helper process, its pipes, and the segments it holds."""

    def __init__(self, number: int, results: queue.Queue):
        self.number = number
        self.held: dict[int, Segment] = {}
        self.alive = True
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ, DJANGO_SETTINGS_MODULE=_settings_module())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(settings.BASE_DIR), env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", HELPER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=settings.BASE_DIR,
        )
        self._reader = threading.Thread(target=self._read, args=(results,), daemon=True, name=f"import-helper-{number}")
        self._reader.start()

    def _read(self, results: queue.Queue) -> None:
        """Pass each result on as it arrives (a thread, so a helper never waits for the importer)."""
        try:
            while True:
                results.put((self, pickle.load(self._process.stdout)))
        except Exception as exc:  # EOFError when the helper exits; anything else is reported the same way
            results.put((self, exc))

    def send(self, message) -> bool:
        try:
            pickle.dump(message, self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
        except OSError:  # it died; its reader reports that
            return False
        if isinstance(message, tuple):  # (kind, columns, segment)
            self.held[message[2].index] = message[2]
        return True

    def failure(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", "replace").strip()

    def close(self) -> None:
        try:
            self.send(None)
            self._process.stdin.close()
            self._process.wait(CLOSE_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        self._reader.join(CLOSE_TIMEOUT)
        self._process.stdout.close()
        self._stderr.close()


class Helpers:
    """The helper processes of one import. Start them early: each loads Django before it can work."""

    def __init__(self, count: int):
        self._results: queue.Queue = queue.Queue()
        self._segments: list[Segment] | None = None
        self._helpers = []
        for number in range(count):
            try:
                self._helpers.append(_Helper(number, self._results))
            except OSError:  # no process to be had: this process validates more itself
                logger.warning("Import helper %s could not start.", number, exc_info=True)

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, *exc) -> None:
        for helper in self._helpers:
            helper.close()

    def segments(self, csv_source: CsvSource, *, delimiter: str) -> list[Segment]:
        """The file's segments; the first call also tells the helpers which file to read."""
        if self._segments is None:
            with csv_source.open() as fh:
                self._segments = file_segments(fh, csv_source.size())
            job = {"path": str(csv_source.path), "delimiter": delimiter}
            for helper in self._helpers:
                helper.alive = helper.send(job)
        return self._segments

    def supply(self, todo: collections.deque, *, limit: int, kind: str, columns: Columns) -> None:
        """Hand segments (before `limit`) from the front of `todo` to helpers holding fewer than
        HELPER_DEPTH, to `kind` ("infer" or "validate") with these columns."""
        for helper in self._helpers:
            while todo and todo[0].index < limit and helper.alive and len(helper.held) < HELPER_DEPTH:
                if not helper.send((kind, columns, todo[0])):
                    helper.alive = False
                    break
                todo.popleft()

    @property
    def count(self) -> int:
        return len(self._helpers)

    @property
    def busy(self) -> bool:
        return any(helper.held for helper in self._helpers)

    def collect(self, *, wait: bool) -> tuple[list[SegmentResult], list[Segment]]:
        """(results that have arrived, segments of helpers that died); with `wait`, at least one."""
        arrived = []
        try:
            arrived.append(self._results.get(block=wait))
            while True:
                arrived.append(self._results.get_nowait())
        except queue.Empty:
            pass
        results, lost = [], []
        for helper, item in arrived:
            if isinstance(item, SegmentResult):
                helper.held.pop(item.index, None)
                results.append(item)
                continue
            if helper.alive or helper.held:
                logger.warning(
                    "Import helper %s stopped (%r); the importing process validates its segments. %s",
                    helper.number,
                    item,
                    helper.failure(),
                )
            helper.alive = False
            lost += helper.held.values()
            helper.held.clear()
        return results, lost


def guess_types(*, csv_source: CsvSource, helpers: Helpers, columns: Columns, delimiter: str) -> bool:
    """Type the new custom columns from the first segment only; False on a file error there.

    Decision 37 types a new column from all its values, which would take a pass over the file
    before validation. Instead validation assumes these types and collects the types of every
    segment as it goes (validate_in_segments with `infer`); the caller validates again in the rare
    file whose later values change a column's type.
    """
    segments = helpers.segments(csv_source, delimiter=delimiter)
    with csv_source.open() as fh:
        first = infer_segment(fh, columns, segments[0], delimiter=delimiter)
    if first.file_error is not None:
        return False
    set_inferred_types(columns, first.types)
    return True


def validate_in_segments(
    *,
    csv_source: CsvSource,
    helpers: Helpers,
    delimiter: str,
    validator: RowValidator,
    staging,
    errors: RowErrors,
    progress: Callable[[int, int], None] | None,
    total: int,
    every: float,
    infer: bool = False,
) -> tuple[int, dict | None]:
    """Validate the file with the helpers and stage the good rows.

    Returns (rows staged, with `infer` the types found in each new custom column of the file).
    Afterwards `errors` and `validator.tag_names` are what one pass in file order gives.
    """
    kind = "validate-infer" if infer else "validate"
    columns = validator.columns
    segments = helpers.segments(csv_source, delimiter=delimiter)
    todo = collections.deque(segments)
    results: dict[int, SegmentResult] = {}
    staged = lines_done = by_helpers = 0
    last_progress = time.monotonic()
    limit = len(segments)  # after a file error, only the segments before it are still started

    def accept(result: SegmentResult, write, *, from_helper: bool) -> None:
        nonlocal staged, lines_done, limit, by_helpers
        results[result.index] = result
        by_helpers += from_helper
        if result.file_error is not None:
            limit = min(limit, result.index)
        if not from_helper:
            staged += result.staged  # written chunk by chunk, an erring segment's rows too
        elif result.file_error is None:
            write(result.data)
            staged += result.staged
        result.data = b""
        segment = segments[result.index]
        following = segments[segment.index + 1].first_line if segment.index + 1 < len(segments) else total + 1
        lines_done += following - segment.first_line

    def startable() -> bool:
        return bool(todo) and todo[0].index < limit

    with csv_source.open() as fh:
        while startable() or helpers.busy:
            with staging.copy_writer(validator.staged_columns) as write:
                while startable() or helpers.busy:
                    helpers.supply(todo, limit=limit, kind=kind, columns=columns)
                    own = todo.popleft() if startable() else None
                    arrived, lost = helpers.collect(wait=own is None)
                    todo.extendleft(sorted(lost, key=lambda s: s.index, reverse=True))
                    for result in arrived:
                        accept(result, write, from_helper=True)
                    if own is not None:
                        result = validate_segment(fh, validator, own, delimiter=delimiter, write=write, infer=infer)
                        accept(result, write, from_helper=False)
                    if progress and time.monotonic() - last_progress > every:
                        break
            if progress:
                progress(min(lines_done, total), total)
                last_progress = time.monotonic()
        staged -= _resolve(
            fh, segments, results, validator=validator, staging=staging, delimiter=delimiter, infer=infer
        )
    for segment in segments:
        result = results.get(segment.index)
        if result is None:
            break
        for line, problems in result.errors:
            errors.add_row(line, problems)
        errors.total += result.error_total - len(result.errors)
    validator.tag_names = {}
    for segment in segments:
        if segment.index in results:
            for key, name in results[segment.index].tag_names.items():
                validator.tag_names.setdefault(key, name)
    logger.info(
        "Validated %s in %s segments, %s of them by %s helper processes.",
        csv_source.path,
        len(segments),
        by_helpers,
        helpers.count,
    )
    if not infer:
        return staged, None
    found: dict[str, set[str]] = {key: set() for key in columns.new_custom}
    for result in results.values():
        for key, types in result.types.items():
            found[key] |= types
    return staged, found


def _resolve(fh, segments: list[Segment], results: dict, *, validator, staging, delimiter: str, infer: bool) -> int:
    """Check the segments in file order: raise the first file error, or redo the file from a wrong
    cut in one pass. Returns how many staged rows were deleted (and written again, if any)."""
    for segment in segments:
        result = results[segment.index]
        if result.file_error is None:
            continue
        message, line, syntax = result.file_error
        if not syntax or segment.index == len(segments) - 1:
            raise CsvFileError(message, line=line)
        # Maybe a wrong cut (see the module docstring): everything from here on, in one pass.
        for later in segments[segment.index :]:
            results.pop(later.index, None)
        deleted = staging.delete_from_line(segment.first_line)
        rest = Segment(segment.index, segment.start, segments[-1].end, segment.first_line)
        with staging.copy_writer(validator.staged_columns) as write:
            redone = validate_segment(fh, validator, rest, delimiter=delimiter, write=write, infer=infer)
        results[segment.index] = redone
        if redone.file_error is not None:
            message, line, _ = redone.file_error
            raise CsvFileError(message, line=line)
        # The staged count of the deleted segments was counted in; the redone rows replace them.
        return deleted - redone.staged
    return 0
