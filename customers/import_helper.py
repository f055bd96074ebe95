"""A helper process of a CSV import: validates the segments it is sent (customers.services.imports.parallel).

Run as `python -m customers.import_helper` by the importing process (outside the services package,
whose import needs Django set up first), with pickled messages on stdin: a job (file path,
delimiter), then requests (kind, Columns, Segment), then None. The kind is "validate", or
"validate-infer" to also collect the types of the new custom columns. For each request it writes
one pickled SegmentResult to stdout. It reads the file only; it never opens a database
connection. Anything else printed goes to stderr, which the importer keeps for its log.
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
    validator = validating = None
    with open(job["path"], "rb") as fh, fewer_collections():
        while (request := pickle.load(commands)) is not None:
            kind, columns, segment = request
            if columns != validating:
                validator, validating = RowValidator(columns), columns
            parts: list[bytes] = []
            result = validate_segment(
                fh, validator, segment, delimiter=job["delimiter"], write=parts.append, infer=kind == "validate-infer"
            )
            result.data = b"".join(parts)
            pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()


if __name__ == "__main__":
    main()
