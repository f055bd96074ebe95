import datetime as dt

import pytest

from customers.normalize import (
    NormalizationError,
    coerce,
    infer_column_type,
    infer_type,
    normalize_country,
    normalize_email,
    normalize_gender,
    normalize_text,
)


def test_text_is_nfc_trimmed_and_blank_is_unknown():
    assert normalize_text("  Cafe\u0301 \u2003") == "Café"
    assert normalize_text(" \u00a0 ") is None
    assert normalize_text(None) is None


@pytest.mark.parametrize("bad", ["a\x00b", "x\ud800y"])
def test_nul_and_lone_surrogates_refused(bad):
    with pytest.raises(NormalizationError):
        normalize_text(bad)


def test_email_lowercased_and_validated():
    assert normalize_email("  Ann@Example.COM ") == "ann@example.com"
    with pytest.raises(NormalizationError):
        normalize_email("not-an-email")


@pytest.mark.parametrize(
    ("raw", "code"), [("pl", "PL"), ("POL", "PL"), ("Poland", "PL"), ("UK", "GB"), ("united kingdom", "GB")]
)
def test_country_to_alpha2(raw, code):
    assert normalize_country(raw) == code


def test_unknown_country_refused():
    with pytest.raises(NormalizationError):
        normalize_country("Atlantis")


def test_gender_synonyms():
    assert normalize_gender("F") == "female"
    assert normalize_gender("woman") == "female"
    assert normalize_gender("M") == "male"
    assert normalize_gender("martian") is None


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        (True, "boolean"),
        ("false", "boolean"),
        (3, "number"),
        ("120.50", "number"),
        ("02134", "string"),
        ("2024-02-29", "date"),
        ("2024-02-29T10:00:00Z", "datetime"),
        ("hello", "string"),
        ([1, 2], "list"),
        (None, None),
    ],
)
def test_infer_type(value, type_):
    assert infer_type(value) == type_


def test_column_type_uses_every_value():
    assert infer_column_type(["1", "2.5", ""]) == "number"
    assert infer_column_type(["1", "abc"]) == "string"


def test_coerce_to_registered_type():
    assert coerce("120.50", "number") == 120.5
    assert coerce("7", "number") == 7
    assert coerce("TRUE", "boolean") is True
    assert coerce("2024-01-02T03:04:05+02:00", "datetime") == "2024-01-02T01:04:05.000000Z"
    assert coerce("2024-01-02", "date") == dt.date(2024, 1, 2).isoformat()
    with pytest.raises(NormalizationError):
        coerce("abc", "number")
