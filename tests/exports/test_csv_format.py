"""Cell formatting, quoting and CSV-injection escaping of export files (decisions 38, 39)."""

import csv
import io

import pytest

from segmentation.exports.csvwriter import encode_row


def parse(line: str, delimiter=","):
    return next(csv.reader(io.StringIO(line, newline=""), delimiter=delimiter))


@pytest.mark.parametrize(
    "cells",
    [
        ["plain", "with,comma", 'with "quotes"', "multi\nline", "cr\rinside", ""],
        ["a;b", "x"],
    ],
)
def test_quoting_round_trips_through_csv_reader(cells):
    for delimiter in (",", ";"):
        line = encode_row(cells, delimiter=delimiter)
        assert line.endswith("\r\n")
        assert parse(line, delimiter) == cells


def test_minimal_quoting():
    assert encode_row(["a", "b,c", 'd"e', ""], delimiter=",") == 'a,"b,c","d""e",\r\n'
    assert encode_row(["a,b", "c;d"], delimiter=";") == 'a,b;"c;d"\r\n'


def test_single_empty_column_is_quoted_so_no_row_is_lost():
    assert encode_row([""], delimiter=",") == '""\r\n'
    assert encode_row(["\\."], delimiter=",") == '"\\."\r\n'
