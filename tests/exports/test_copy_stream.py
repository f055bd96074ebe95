"""The COPY path's block writer: CRLF row endings without touching newlines inside values."""

import io

from segmentation.exports.pgcopy import _write_crlf


def _written(rows):
    block, ends = bytearray(), []
    for row in rows:
        block += row
        ends.append(len(block))
    out = io.BytesIO()
    _write_crlf(block, ends, out)
    return out.getvalue()


def test_plain_block_is_converted_at_once():
    assert _written([b"a,b\n", memoryview(b"c,d\n")]) == b"a,b\r\nc,d\r\n"


def test_newlines_inside_values_are_kept():
    rows = [b'a,"x\ny"\n', b'b,"p\r\nq"\n', b"c,z\n", b'"\n"\n']
    assert _written(rows) == b'a,"x\ny"\r\nb,"p\r\nq"\r\nc,z\r\n"\n"\r\n'


def test_empty_block_writes_nothing():
    assert _written([]) == b""
