"""A helper process of a CSV import: validates the segments it is sent (customers.services.imports.parallel).

Run as `python -m customers.import_helper` by the importing process (outside the services package,
whose import needs Django set up first), with pickled
messages on stdin: a job (file path, delimiter, Columns), then Segments, then None. For each
segment it writes one pickled SegmentResult to stdout. It reads the file only; it never opens a
database connection. Anything else printed goes to stderr, which the importer keeps for its log.
"""

from __future__ import annotations

import os
import pickle
import sys


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the results
    commands = sys.stdin.buffer

    import django

    django.setup()

    from customers.services.imports.parallel import validate_segment
    from customers.services.imports.rows import RowValidator
    from customers.services.imports.service import fewer_collections

    job = pickle.load(commands)
    if job is None:
        return
    validator = RowValidator(job["columns"])
    with open(job["path"], "rb") as fh, fewer_collections():
        while (segment := pickle.load(commands)) is not None:
            parts: list[bytes] = []
            result = validate_segment(fh, validator, segment, delimiter=job["delimiter"], write=parts.append)
            result.data = b"".join(parts)
            pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()


if __name__ == "__main__":
    main()
