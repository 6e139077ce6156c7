"""The fixed library of functions a policy may call.

The library is closed on purpose: a policy cannot define functions or reach
Python, so every evaluation terminates. Each entry states its signature for
the checker and its implementation for the evaluators.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Any

from .experiments import bucket
from .nodes import WEEKDAYS
from .values import NUMERIC, widest

# Decimal arithmetic never follows the caller's thread-local context (an embedding application may have set
# `getcontext().prec = 3`), and never rounds silently: `+ - *`, negation and `abs` are exact up to
# ARITHMETIC_DIGITS significant digits, and a result that would need more raises `Inexact`, which the
# engines turn into an error decision. Only a quotient is rounded, by a fixed rule: half-even to
# DIVISION_DIGITS significant digits (IEEE 754 decimal128), because most quotients have no finite expansion.
ARITHMETIC_DIGITS = 1000
DIVISION_DIGITS = 34
_TRAPS = [InvalidOperation, DivisionByZero, Overflow]
ARITHMETIC = Context(prec=ARITHMETIC_DIGITS, traps=[*_TRAPS, Inexact])
DIVISION = Context(prec=DIVISION_DIGITS, traps=_TRAPS)
_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)


def arithmetic_problem(problem: ArithmeticError) -> str:
    """Words for a failed calculation (the decimal module's own text is a list of class names)."""
    if isinstance(problem, DivisionByZero) or (isinstance(problem, InvalidOperation) and "Division" in str(problem)):
        return "division by zero"
    if isinstance(problem, Overflow):  # before Inexact: decimal's Overflow is also Inexact
        return "a number is too large"
    if isinstance(problem, Inexact):
        return f"a calculation needs more than {ARITHMETIC_DIGITS} significant digits"
    return str(problem)


def divide(left: int | Decimal, right: int | Decimal) -> Decimal:
    """`left / right` by the division rule, whatever the caller's context."""
    return DIVISION.divide(Decimal(left), Decimal(right))


def add(left: Any, right: Any) -> Any:
    """`+`: a date plus a whole number of days is a date; anything else is Python's `+`."""
    if isinstance(left, dt.date) and not isinstance(left, dt.datetime) and isinstance(right, int):
        return left + dt.timedelta(days=right)
    return left + right


def subtract(left: Any, right: Any) -> Any:
    """`-`: a date minus days is a date, a date minus a date a number of days."""
    if isinstance(left, dt.date) and not isinstance(left, dt.datetime):
        if isinstance(right, int):
            return left - dt.timedelta(days=right)
        return (left - right).days
    return left - right


class Clock:
    """What the functions may know of time: the evaluation instant `now` and
    the account's local date and time of day (first candidate zone)."""

    __slots__ = ("now", "seconds_of_day", "today")

    def __init__(self, now: dt.datetime, local: dt.datetime) -> None:
        self.now = now
        self.today = local.date()
        self.seconds_of_day = local.hour * 3600 + local.minute * 60 + local.second


@dataclass(frozen=True)
class Function:
    arity: int
    signature: str  # shown in error messages
    result: Callable[[list[str]], str | None]  # argument types -> result type or None
    run: Callable[..., Any]  # (clock, *args) -> value


def _days_since(clock: Clock, value: dt.date) -> int:
    if isinstance(value, dt.datetime):
        return (clock.now - value).days
    return (clock.today - value).days


def _days_until(clock: Clock, value: dt.date) -> int:
    return -_days_since(clock, value)




def _hours_since(clock: Clock, value: dt.datetime) -> Decimal:
    """Whole microseconds (exact, unlike a float of seconds) divided by the division rule."""
    return divide((clock.now - value) // dt.timedelta(microseconds=1), _MICROSECONDS_PER_HOUR)


def _one(*accepted: str, result: str | None = None) -> Callable[[list[str]], str | None]:
    def check(args: list[str]) -> str | None:
        if args[0] not in accepted:
            return None
        return result or args[0]
    return check


def _numeric_pair(args: list[str]) -> str | None:
    if args[0] in NUMERIC and args[1] in NUMERIC:
        return widest(args[0], args[1])
    return None


def _sized(args: list[str]) -> str | None:
    return "int" if args[0] == "text" or args[0].startswith("set<") else None


FUNCTIONS: dict[str, Function] = {
    "days_since": Function(1, "days_since(date or datetime) -> int",
                           _one("date", "datetime", result="int"), _days_since),
    "days_until": Function(1, "days_until(date or datetime) -> int",
                           _one("date", "datetime", result="int"), _days_until),
    "hours_since": Function(1, "hours_since(datetime) -> number",
                            _one("datetime", result="number"), _hours_since),
    "len": Function(1, "len(text or set) -> int", _sized, lambda clock, value: len(value)),
    "abs": Function(1, "abs(number) -> number", _one(*NUMERIC), lambda clock, value: abs(value)),
    "min": Function(2, "min(number, number) -> number", _numeric_pair, lambda clock, a, b: min(a, b)),
    "max": Function(2, "max(number, number) -> number", _numeric_pair, lambda clock, a, b: max(a, b)),
    "lower": Function(1, "lower(text) -> text", _one("text"), lambda clock, value: value.lower()),
    "today": Function(0, "today() -> date", lambda args: "date", lambda clock: clock.today),
    "local_time": Function(0, "local_time() -> time", lambda args: "time",
                           lambda clock: clock.seconds_of_day),
    "bucket": Function(2, "bucket(text id, text salt) -> int (0 .. 9999, the account's test-group bucket)",
                       lambda args: "int" if args == ["text", "text"] else None,
                       lambda clock, account_id, salt: bucket(account_id, salt)),
    "weekday": Function(0, "weekday() -> text (mon .. sun)", lambda args: "text",
                        lambda clock: WEEKDAYS[clock.today.weekday()]),
}
