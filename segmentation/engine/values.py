"""Condition values turned into comparison bounds, shared by the compiler and the evaluator.

Keeping one implementation of "what does `before 2026-01-31` mean" is what makes the SQL
compiler and the Python evaluator agree; both call these helpers with the same inputs.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import ROUND_HALF_UP, Decimal

from customers.models.events import NUMERIC_PATTERN_PG, NUMERIC_PATTERN_PY  # noqa: F401 - re-exported
from customers.normalize import DATE_RE, format_datetime, parse_datetime

ROUND_PLACES = Decimal("0.000001")
NUMERIC_RE = re.compile(NUMERIC_PATTERN_PY)


def is_date_only(value: str) -> bool:
    return isinstance(value, str) and DATE_RE.fullmatch(value.strip()) is not None


def to_date(value: str) -> dt.date:
    return dt.date.fromisoformat(value.strip())


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def instant(value: str) -> dt.datetime:
    """An ISO datetime as aware UTC (no offset = UTC, decisions 6)."""
    return parse_datetime(value)


def datetime_bounds(
    operator: str, value, *, now: dt.datetime
) -> tuple[dt.datetime | None, bool, dt.datetime | None, bool]:
    """(low, low_inclusive, high, high_inclusive) of the instants an operator accepts.

    A date-only value means the whole UTC day (spec "Dates"); None = unbounded.
    """
    if operator in ("before", "after", "on"):
        if is_date_only(value):
            start = day_start(to_date(value))
            end = start + dt.timedelta(days=1)
            if operator == "before":
                return None, False, start, False
            if operator == "after":
                return end, True, None, False
            return start, True, end, False
        moment = instant(value)
        if operator == "before":
            return None, False, moment, False
        if operator == "after":
            return moment, False, None, False
        start = day_start(moment.date())
        return start, True, start + dt.timedelta(days=1), False
    if operator == "between":
        low, high = value
        low_at = day_start(to_date(low)) if is_date_only(low) else instant(low)
        if is_date_only(high):
            return low_at, True, day_start(to_date(high)) + dt.timedelta(days=1), False
        return low_at, True, instant(high), True
    if operator == "less_than_days_ago":
        return now - dt.timedelta(days=value), False, None, False
    if operator == "more_than_days_ago":
        return None, False, now - dt.timedelta(days=value), False
    raise ValueError(f"not a datetime operator: {operator}")


def window_bounds(window: dict, *, now: dt.datetime) -> tuple[dt.datetime | None, bool, dt.datetime | None, bool]:
    """Bounds of an event window; the caller also applies timestamp <= now."""
    (kind, value), *_ = window.items()
    if kind == "last_days":
        return now - dt.timedelta(days=value), False, None, False
    if kind == "last_hours":
        return now - dt.timedelta(hours=value), False, None, False
    return datetime_bounds(kind, value, now=now)


def date_bounds(operator: str, value, *, now: dt.datetime) -> tuple[dt.date | None, bool, dt.date | None, bool]:
    """Bounds on a date attribute (birth_date, custom dates); values are date-only."""
    today = now.astimezone(dt.UTC).date()
    if operator in ("is", "on"):
        day = to_date(value)
        return day, True, day, True
    if operator == "before":
        return None, False, to_date(value), False
    if operator == "after":
        return to_date(value), False, None, False
    if operator == "between":
        return to_date(value[0]), True, to_date(value[1]), True
    if operator == "less_than_days_ago":
        return _shift_days(today, -value), False, None, False
    if operator == "more_than_days_ago":
        return None, False, _shift_days(today, -value), False
    raise ValueError(f"not a date operator: {operator}")


def _shift_days(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.min if days < 0 else dt.date.max


def in_bounds(value, bounds) -> bool:
    low, low_inc, high, high_inc = bounds
    if low is not None and (value < low or (value == low and not low_inc)):
        return False
    if high is not None and (value > high or (value == high and not high_inc)):
        return False
    return True


def fmt_instant(value: dt.datetime) -> str:
    """The fixed-width text form custom datetimes are stored in (Customer docstring)."""
    return format_datetime(value)


def stored_text_bounds(type_: str, operator: str, value, *, now: dt.datetime):
    """Bounds as stored text for custom dates ("YYYY-MM-DD") and datetimes (fixed-width UTC)."""
    if type_ == "date":
        low, low_inc, high, high_inc = date_bounds(operator, value, now=now)
        to_text = dt.date.isoformat
    else:
        low, low_inc, high, high_inc = datetime_bounds(operator, value, now=now)
        to_text = fmt_instant
    return (None if low is None else to_text(low), low_inc, None if high is None else to_text(high), high_inc)


def round6(value: Decimal) -> Decimal:
    return value.quantize(ROUND_PLACES, rounding=ROUND_HALF_UP)


def to_number(value) -> Decimal:
    """A validated condition number (int or float) as a Decimal."""
    return Decimal(str(value))


# ------------------------------------------------------------------------------
# age (decisions 6): age >= N  <=>  birth_date <= today - N years, 29 Feb counting as 1 Mar.
# ------------------------------------------------------------------------------
def age_of(birth: dt.date, today: dt.date) -> int:
    month_day = (birth.month, birth.day)
    if month_day == (2, 29) and not _is_leap(today.year):
        month_day = (3, 1)
    return today.year - birth.year - (1 if (today.month, today.day) < month_day else 0)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def age_at_least_bound(years: int, today: dt.date) -> dt.date | None | bool:
    """The latest birth date with age >= years; True = every date, False = none."""
    year = today.year - years
    if year > dt.MAXYEAR:
        return True
    if year < dt.MINYEAR:
        return False
    if (today.month, today.day) == (2, 29) and not _is_leap(year):
        return dt.date(year, 2, 28)
    return dt.date(year, today.month, today.day)


def age_ranges(operator: str, value) -> list[tuple[int | None, int | None]]:
    """Integer age intervals [low, high] (None = open) matched by a numeric operator.

    Age is a whole number, so `age more_than 20.5` is `age >= 21` and `age is 20.5` is never.
    """
    if operator == "between":
        low, high = to_number(value[0]), to_number(value[1])
        return [(math.ceil(low), math.floor(high))]
    number = to_number(value)
    if operator == "is":
        return [(int(number), int(number))] if number == number.to_integral_value() else []
    if operator == "at_least":
        return [(math.ceil(number), None)]
    if operator == "more_than":
        return [(math.floor(number) + 1, None)]
    if operator == "at_most":
        return [(None, math.floor(number))]
    if operator == "less_than":
        return [(None, math.ceil(number) - 1)]
    raise ValueError(f"not an age operator: {operator}")


def compare(operator: str, left: Decimal, value) -> bool:
    """NUM_OP comparison of a known number with a validated condition value."""
    if operator == "between":
        return to_number(value[0]) <= left <= to_number(value[1])
    right = to_number(value)
    return {
        "is": left == right,
        "is_not": left != right,
        "less_than": left < right,
        "more_than": left > right,
        "at_most": left <= right,
        "at_least": left >= right,
    }[operator]
