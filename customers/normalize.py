"""Value normalisation shared by every input boundary (tracking, REST, CSV, admin).

One set of rules (decisions 3, 4, 11, 15, 21):
- text is NFC-normalised and trimmed of Unicode whitespace; whitespace-only is unknown (None);
- NUL characters and unpaired surrogates are refused everywhere;
- email is trimmed, lower-cased and validated; country becomes ISO 3166-1 alpha-2 from alpha-2,
  alpha-3 or an English name; gender comes from a synonym table;
- custom attribute types are inferred from values and values are coerced to the registered type.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation

import pycountry
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

NUMERIC_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")
CUSTOM_KEY_RE = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
CUSTOM_KEY_MAX = 64

GENDER_SYNONYMS = {
    "female": "female", "f": "female", "woman": "female", "w": "female", "girl": "female",
    "kobieta": "female", "k": "female",
    "male": "male", "m": "male", "man": "male", "boy": "male", "mężczyzna": "male",
    "other": "other", "o": "other", "non-binary": "other", "nonbinary": "other", "diverse": "other",
    "x": "other",
}  # fmt: skip
COUNTRY_SYNONYMS = {"uk": "GB", "great britain": "GB", "england": "GB", "usa": "US", "america": "US"}


class NormalizationError(ValueError):
    """A value that cannot be accepted; the message is for a person."""


def sql_lower(value):
    """SQLite LOWER() replacement with Python's Unicode case folding (see customers.apps)."""
    return value.lower() if isinstance(value, str) else value


def check_clean(value: str) -> str:
    """Refuse NUL characters and unpaired surrogates (decisions 21)."""
    if "\x00" in value:
        raise NormalizationError("Text may not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NormalizationError("Text contains an unpaired surrogate (invalid Unicode).") from exc
    return value


def check_clean_deep(value):
    """check_clean every string (keys included) inside JSON-like data."""
    if isinstance(value, str):
        check_clean(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_clean_deep(k)
            check_clean_deep(v)
    elif isinstance(value, list):
        for v in value:
            check_clean_deep(v)
    return value


def normalize_text(value) -> str | None:
    """NFC, trimmed; empty or whitespace-only becomes None."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if value.isascii():
        # ASCII text is already NFC and cannot hold a surrogate; only NUL needs refusing.
        if "\x00" in value:
            check_clean(value)
        return value.strip() or None
    check_clean(value)
    value = unicodedata.normalize("NFC", value).strip()
    return value or None


def fold(value: str | None) -> str | None:
    """The comparison form of text: normalised and lower-cased as Python does."""
    value = normalize_text(value)
    return value.lower() if value is not None else None


# A plain subset of what Django's EmailValidator accepts (dot-atom local part, LDH labels, a
# letters-only TLD), checked in one regex; anything else goes through the validator itself, so the
# accepted set is exactly Django's (tests/customers/test_normalize_email.py proves the subset).
_EMAIL_LOCAL = r"[-!#$%&'*+/=?^_`{}|~0-9a-z]+"
_EMAIL_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
EMAIL_FAST_RE = re.compile(rf"{_EMAIL_LOCAL}(?:\.{_EMAIL_LOCAL})*@(?:{_EMAIL_LABEL}\.)+[a-z]{{2,63}}")
EMAIL_MAX = 320  # RFC 3696, as Django checks


def is_plain_email(value: str) -> bool:
    """True for lower-case emails the fast regex accepts (all of which Django accepts too)."""
    return len(value) <= EMAIL_MAX and EMAIL_FAST_RE.fullmatch(value) is not None


def normalize_email(value) -> str | None:
    value = normalize_text(value)
    if value is None:
        return None
    value = value.lower()
    if is_plain_email(value):
        return value
    try:
        validate_email(value)
    except ValidationError as exc:
        raise NormalizationError(f"“{value}” is not a valid email address.") from exc
    return value


_COUNTRY_CACHE: dict[str, str] = {}  # accepted spellings -> alpha-2; bounded below
_COUNTRY_CACHE_MAX = 4096


def normalize_country(value) -> str | None:
    value = normalize_text(value)
    if value is None:
        return None
    hit = _COUNTRY_CACHE.get(value)
    if hit is not None:
        return hit
    code = _lookup_country(value)
    if len(_COUNTRY_CACHE) < _COUNTRY_CACHE_MAX:
        _COUNTRY_CACHE[value] = code
    return code


def _lookup_country(value: str) -> str:
    key = value.lower()
    if key in COUNTRY_SYNONYMS:
        return COUNTRY_SYNONYMS[key]
    found = None
    if len(value) == 2:
        found = pycountry.countries.get(alpha_2=value.upper())
    elif len(value) == 3:
        found = pycountry.countries.get(alpha_3=value.upper())
    if found is None:
        for country in pycountry.countries:
            names = {country.name.lower(), getattr(country, "common_name", "").lower()}
            names.add(getattr(country, "official_name", "").lower())
            if key in names:
                found = country
                break
    if found is None:
        raise NormalizationError(f"“{value}” is not a known country (use an ISO code such as PL or GB).")
    return found.alpha_2


def is_country_code(value: str) -> bool:
    return isinstance(value, str) and len(value) == 2 and pycountry.countries.get(alpha_2=value.upper()) is not None


def normalize_gender(value) -> str | None:
    """Gender from a synonym table; an unrecognised value is unknown (None)."""
    value = normalize_text(value)
    if value is None:
        return None
    return GENDER_SYNONYMS.get(value.lower())


def parse_date(value) -> dt.date | None:
    if value is None or isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    text = normalize_text(value)
    if text is None:
        return None
    head = text[:10]
    if not DATE_RE.fullmatch(head) or (len(text) > 10 and text[10] not in "T "):
        raise NormalizationError(f"“{text}” is not a date (use YYYY-MM-DD).")
    try:
        return dt.date.fromisoformat(head)
    except ValueError as exc:
        raise NormalizationError(f"“{text}” is not a valid date.") from exc


def parse_datetime(value) -> dt.datetime | None:
    """ISO 8601 datetime; without an offset it is UTC (decisions 6). Returns an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = normalize_text(value)
        if text is None:
            return None
        try:
            parsed = dt.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError as exc:
            raise NormalizationError(f"“{text}” is not an ISO 8601 date and time.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    """Fixed-width UTC form used inside JSON, so text order is time order."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_numeric_string(value) -> bool:
    return isinstance(value, str) and NUMERIC_RE.fullmatch(value) is not None


def to_decimal(value) -> Decimal | None:
    """A JSON number or numeric string as a Decimal; anything else is None (unknown)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    if is_numeric_string(value):
        return Decimal(value)
    return None


def infer_type(value) -> str | None:
    """The registry type of a first-seen custom value (segment-definitions.md); None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        text = normalize_text(value)
        if text is None:
            return None
        if text.lower() in ("true", "false"):
            return "boolean"
        if is_numeric_string(text):
            return "number"
        if DATE_RE.fullmatch(text):
            try:
                dt.date.fromisoformat(text)
                return "date"
            except ValueError:
                return "string"
        if DATETIME_RE.fullmatch(text):
            try:
                parse_datetime(text)
                return "datetime"
            except NormalizationError:
                return "string"
    return "string"


def infer_column_type(values) -> str | None:
    """The type for a whole column of values (CSV): the one type that fits every value."""
    return column_type({t for t in (infer_type(v) for v in values) if t is not None})


def column_type(types: set[str]) -> str | None:
    """The one type that fits values of all these (inferred) types."""
    if not types:
        return None
    if len(types) == 1:
        return next(iter(types))
    if types <= {"date", "datetime"}:
        return "datetime"
    return "string"


def coerce(value, type_: str):
    """Coerce a value to a registered type, returning its JSON storage form.

    None and empty text are unknown (None). Raises NormalizationError when the value does not fit.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = normalize_text(value)
        if value is None:
            return None
    if type_ == "string":
        if isinstance(value, dict | list):
            raise NormalizationError("expected text, got a structured value")
        if isinstance(value, bool):
            return "true" if value else "false"
        return normalize_text(value)
    if type_ == "number":
        d = to_decimal(value)
        if d is None:
            raise NormalizationError(f"“{value}” is not a number")
        return int(d) if d == d.to_integral_value() and abs(d) < 2**53 else float(d)
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise NormalizationError(f"“{value}” is not true or false")
    if type_ == "date":
        if isinstance(value, str) and len(value) > 10:
            raise NormalizationError(f"“{value}” is not a date (use YYYY-MM-DD)")
        return parse_date(value).isoformat()
    if type_ == "datetime":
        if isinstance(value, str) and DATE_RE.fullmatch(value):
            value = value + "T00:00:00"
        return format_datetime(parse_datetime(value))
    if type_ == "list":
        if isinstance(value, list):
            return [check_clean_deep(v) for v in value]
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        raise NormalizationError("expected a list")
    raise NormalizationError(f"unknown type {type_}")


def validate_custom_key(key: str) -> str:
    if len(key) > CUSTOM_KEY_MAX or not CUSTOM_KEY_RE.fullmatch(key):
        raise NormalizationError(
            f"“{key}” is not a valid custom attribute key (letters, digits and _ joined by dots, at most 64)."
        )
    return key


def flatten(data: dict, prefix: str = "") -> dict:
    """Nested objects become dotted keys (decisions 15)."""
    out = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{full}."))
        else:
            out[full] = value
    return out
