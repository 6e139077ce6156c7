"""The value types of the language and how account values are read into them.

A field's type decides how a CSV cell or an API value becomes a Python value:
money and numbers are `Decimal` (never float), zones are tuples of `ZoneInfo`
(an account may have several candidate zones), sets are frozensets.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NUMERIC = ("int", "number", "money")

_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}


class ValueProblem(ValueError):
    """A value that does not fit its type; the message says what was expected."""


# The most digits a whole number may have, from a CSV cell or the API alike:
# Python itself refuses to turn longer ints into text (for messages, JSON).
MAX_DIGITS = 4300


_TOO_BIG = 10 ** MAX_DIGITS


def _bounded(value: int) -> int:
    if -_TOO_BIG < value < _TOO_BIG:
        return value
    raise ValueProblem(f"a whole number of at most {MAX_DIGITS} digits")


def widest(left: str, right: str) -> str:
    """Result type of arithmetic on two numeric types: money wins, then number."""
    for kind in ("money", "number"):
        if kind in (left, right):
            return kind
    return "int"


def read_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueProblem("a whole number")
    if isinstance(value, int):
        return _bounded(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        try:
            return int(value)
        except ValueError:  # more digits than int() converts
            raise ValueProblem(f"a whole number of at most {MAX_DIGITS} digits") from None
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return _bounded(int(value))
    raise ValueProblem("a whole number")


def read_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueProblem("a decimal number such as 12.50")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueProblem("a finite decimal number")
        return value
    if isinstance(value, int):
        return Decimal(_bounded(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueProblem("a finite decimal number")
        return Decimal(repr(value))
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            pass
    raise ValueProblem("a decimal number such as 12.50")


def read_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueProblem("true or false")


def read_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueProblem("text")


def read_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueProblem("a date such as 2025-06-01")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueProblem("a date such as 2025-06-01")


def read_datetime(value: Any) -> dt.datetime:
    parsed: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    if parsed is not None and parsed.tzinfo is dt.UTC:  # `Z` or +00:00, the usual export: already the instant
        return parsed
    if parsed is None or parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueProblem("an ISO-8601 instant with an offset, such as 2025-06-01T08:00:00+08:00")
    # In UTC: Python adds to and compares datetimes of one ZoneInfo by wall clock,
    # so `paid_at + 24 hours` would not be 24 elapsed hours across a DST change.
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before the first instant Python has
        raise ValueProblem("an instant between the years 1 and 9999 in UTC") from None


@lru_cache(maxsize=1024)
def zone_named(name: str) -> ZoneInfo:
    """A zone by IANA name; cached because ZoneInfo construction is slow."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueProblem(f"an IANA time zone such as Asia/Shanghai, not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueProblem(f"an IANA time zone such as Asia/Shanghai, not {name!r}") from None


def read_zones(value: Any) -> tuple[ZoneInfo, ...]:
    """One or more candidate zones: 'A;B' text, a ZoneInfo, or a sequence."""
    if isinstance(value, ZoneInfo):
        return (value,)
    if isinstance(value, str):
        return _zones_in_text(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return _distinct_zones([str(part).strip() for part in value])
    raise ValueProblem("an IANA time zone such as Asia/Shanghai")


@lru_cache(maxsize=4096)
def _zones_in_text(value: str) -> tuple[ZoneInfo, ...]:
    """Cached: a portfolio repeats a handful of zone cells millions of times."""
    return _distinct_zones([part.strip() for part in value.split(";") if part.strip()])


def _distinct_zones(names: list[str]) -> tuple[ZoneInfo, ...]:
    if not names:
        raise ValueProblem("an IANA time zone such as Asia/Shanghai")
    zones: list[ZoneInfo] = []
    for name in names:
        zone = zone_named(name)
        if zone not in zones:
            zones.append(zone)
    return tuple(zones)


def read_text_set(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(";") if part.strip())
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise ValueProblem("a ;-separated list of text")


def read_int_set(value: Any) -> frozenset[int]:
    if isinstance(value, str):
        return frozenset(read_int(part) for part in value.split(";") if part.strip())
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(read_int(item) for item in value)
    raise ValueProblem("a ;-separated list of whole numbers")


def enum_reader(members: tuple[str, ...]) -> Callable[[Any], str]:
    allowed = frozenset(members)
    expected = "one of " + ", ".join(members)

    def read(value: Any) -> str:
        if isinstance(value, str) and value.strip() in allowed:
            return value.strip()
        raise ValueProblem(expected)
    return read


def reader_for(kind: str, element: str | None = None, members: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    """The function that turns an input value into a value of this type."""
    if kind == "set":
        return read_int_set if element == "int" else read_text_set
    if kind == "enum":
        return enum_reader(members)
    return {
        "int": read_int,
        "number": read_decimal,
        "money": read_decimal,
        "bool": read_bool,
        "text": read_text,
        "date": read_date,
        "datetime": read_datetime,
        "zone": read_zones,
    }[kind]


def default_value(default: Any) -> Any:
    """The raw value of a default (a `nodes.Literal` or `nodes.SetLiteral`),
    ready for the field's reader."""
    elements = getattr(default, "elements", None)
    if elements is not None:
        return [element.value for element in elements]
    return default.value
