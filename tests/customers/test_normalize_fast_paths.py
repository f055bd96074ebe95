"""The fast paths of customers.normalize give exactly what the plain rules give.

Each reference below is the rule as it was written before the fast path (Django's validator on
every email, NFC on every string, pycountry on every country).
"""

import string
import unicodedata

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from customers import normalize
from customers.normalize import (
    NormalizationError,
    check_clean,
    is_plain_email,
    normalize_country,
    normalize_email,
    normalize_text,
)


def reference_text(value):
    if value is None:
        return None
    check_clean(value)
    return unicodedata.normalize("NFC", value).strip() or None


def reference_email(value):
    value = reference_text(value)
    if value is None:
        return None
    value = value.lower()
    try:
        validate_email(value)
    except ValidationError as exc:
        raise NormalizationError(f"“{value}” is not a valid email address.") from exc
    return value


def reference_country(value):
    """The lookup itself (unchanged), without the cache in front of it."""
    value = reference_text(value)
    return None if value is None else normalize._lookup_country(value)


def outcome(fn, value):
    try:
        return ("ok", fn(value))
    except NormalizationError as exc:
        return ("error", str(exc))


# Characters that matter to the email rules: every class of the local part and of labels, the
# separators, case-folding oddities (ı ſ K match [A-Z] under IGNORECASE), IDN letters and junk.
EMAIL_CHARS = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.@[]:\"\\ \t" + "ıſKéü\u00a0\x00ß"
LABEL = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=70)
LOCAL = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.\"", min_size=0, max_size=70)
TLD = st.one_of(st.text(alphabet=string.ascii_letters + "-0", min_size=1, max_size=66), st.just("xn--p1ai"))
SHAPED = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}", LOCAL, st.lists(LABEL, max_size=4), TLD
)
EDGE_EMAILS = [
    "a@b.co", "A@B.CO", " a@b.co ", "a@localhost", "a@[127.0.0.1]", "a@[::1]", "a@[300.1.1.1]", "a..b@x.com",
    ".a@x.com", "a.@x.com", "a@-x.com", "a@x-.com", "a@x.c", "a@x.c0m", "a@x.xn--p1ai", "a@x.-com", "a@x.com.",
    '"a b"@x.com', '"a@b"@x.com', "a@b@x.com", "ı@x.com", "a@ıx.com", "a@x.ſom", "ñ@x.com", "a@münchen.de",
    "a@" + "x" * 63 + ".com", "a@" + "x" * 64 + ".com", "a@x." + "c" * 63, "a@x." + "c" * 64,
    "a" * 64 + "@" + ("x" * 60 + ".") * 4 + "com", "a" * 300 + "@x.com", "a" * 310 + "@x.com", "", "@", "a@",
    "@x.com", "a@x..com", "a@1.2.3.4", "a@x.123", "a\x00@x.com",
]  # fmt: skip


@settings(max_examples=400)
@given(st.one_of(st.text(alphabet=EMAIL_CHARS, max_size=40), SHAPED))
def test_email_fast_path_accepts_and_rejects_what_django_does(value):
    assert outcome(normalize_email, value) == outcome(reference_email, value)


@settings(max_examples=400)
@given(SHAPED.map(str.lower))
def test_every_plain_email_is_a_django_email(value):
    if is_plain_email(value):
        validate_email(value)


@pytest.mark.parametrize("value", EDGE_EMAILS)
def test_email_edge_cases_match_django(value):
    assert outcome(normalize_email, value) == outcome(reference_email, value)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from("é\u0301\u2003\u00a0ﬁ"), max_size=20))
@example("\x1c a \x1f")
@example("\x85a")
@example("a\x00")
def test_text_fast_path_matches_nfc_and_strip(value):
    assert outcome(normalize_text, value) == outcome(reference_text, value)


@pytest.mark.parametrize(
    "value", ["PL", "pl", " Poland ", "POL", "uk", "USA", "Germany", "Viet Nam", "Narnia", "", "xx", "P\u0301L"]
)
def test_country_cache_gives_the_lookup_result_every_time(value):
    first = outcome(normalize_country, value)
    assert first == outcome(reference_country, value)
    assert outcome(normalize_country, value) == first  # now from the cache
