"""Decimal arithmetic does not follow the caller's thread-local context
(issue 11.8): `+ - *`, negation and `abs` are exact (or the account is an
error decision), a quotient is rounded half-even to 34 significant digits,
and both engines agree whatever context the embedding application set."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import Policy, ReferencePolicy, compile_policy

ARITHMETIC_DIGITS, DIVISION_DIGITS = 1000, 34  # documented in docs/language.md
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=dt.UTC)
POLICY = """\
policy "decimals" version "1"
account {
    id    : text
    score : number = 0
    paid  : number = 1
    at    : datetime = 2025-01-01T00:00Z
}
actions { sms, email, call, legal, push }
segment high when score * 100 >= 70
segment third when score / 3 == 0.{threes}
segment cancels when score + -0.12345678901234567890123456789012345 == 0
segment minute when hours_since(at) == 0.0000000002777777777777777777777777777777778
allow sms when high
allow email when third
allow call when cancels
allow legal when abs(score) + paid * 2 > 2.0000000000000000000000000000001
allow push when minute
""".replace("{threes}", "3" * DIVISION_DIGITS)
ENGINES = pytest.mark.parametrize("engine", ["compiled", "reference"])


def _policy(engine: str) -> Policy | ReferencePolicy:
    return compile_policy(POLICY, engine=engine)


@contextmanager
def caller_context(prec: int, rounding: str = decimal.ROUND_HALF_UP) -> Iterator[None]:
    """What an embedding application may do to the thread-local context."""
    with decimal.localcontext() as context:
        context.prec = prec
        context.rounding = rounding
        yield


@ENGINES
def test_caller_precision_does_not_round_a_product(engine: str) -> None:
    policy = _policy(engine)
    with caller_context(3):
        decision = policy.evaluate({"id": "A1", "score": "0.6996"}, now=NOW)
    assert decision.error is None
    assert "high" not in decision.segments  # 69.96 < 70; prec 3 would round it up to 70.0
    assert "sms" not in decision.allowed


@ENGINES
def test_caller_precision_does_not_round_a_negative_literal_or_a_sum(engine: str) -> None:
    with caller_context(3):
        policy = _policy(engine)  # parsed under the caller's context too
        decision = policy.evaluate({"id": "A1", "score": "0.12345678901234567890123456789012345"}, now=NOW)
    assert "cancels" in decision.segments


@ENGINES
def test_a_quotient_has_34_digits_half_even(engine: str) -> None:
    with caller_context(5):
        decision = _policy(engine).evaluate({"id": "A1", "score": "1"}, now=NOW)
    assert "third" in decision.segments


@ENGINES
def test_hours_since_divides_whole_microseconds_by_the_division_rule(engine: str) -> None:
    with caller_context(4):
        decision = _policy(engine).evaluate({"id": "A1", "at": "2025-06-10T11:59:59.999999Z"}, now=NOW)
    assert "minute" in decision.segments


@ENGINES
def test_abs_and_small_sums_are_exact(engine: str) -> None:
    with caller_context(2, decimal.ROUND_UP):
        decision = _policy(engine).evaluate({"id": "A1", "score": "-0.0000000000000000000000000000001"}, now=NOW)
    assert "legal" not in decision.allowed  # 2.000…0001 is not > itself


@ENGINES
def test_a_result_beyond_the_digit_budget_is_an_error_decision_not_a_rounding(engine: str) -> None:
    huge = "1" + "0" * ARITHMETIC_DIGITS + ".5"
    decision = _policy(engine).evaluate({"id": "A1", "score": huge}, now=NOW)
    assert decision.error == f"cannot evaluate: a calculation needs more than {ARITHMETIC_DIGITS} significant digits"


@ENGINES
def test_division_by_zero_says_so(engine: str) -> None:
    policy = compile_policy(POLICY.replace("segment high when score * 100 >= 70",
                                           "segment high when score / (paid - 1) > 0"), engine=engine)
    decision = policy.evaluate({"id": "A1", "score": "1"}, now=NOW)
    assert decision.error == "cannot evaluate: division by zero"


_DIGITS = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=8, allow_nan=False,
                      allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(score=_DIGITS, paid=_DIGITS, prec=st.integers(1, 30),
       rounding=st.sampled_from([decimal.ROUND_UP, decimal.ROUND_DOWN, decimal.ROUND_HALF_UP,
                                 decimal.ROUND_FLOOR]))
def test_engines_agree_and_ignore_the_callers_context(score: Decimal, paid: Decimal, prec: int,
                                                      rounding: str) -> None:
    compiled, reference = _policy("compiled"), _policy("reference")
    account = {"id": "A1", "score": str(score), "paid": str(paid)}
    expected = compiled.evaluate(account, now=NOW).to_dict()
    with caller_context(prec, rounding):
        assert compiled.evaluate(account, now=NOW).to_dict() == expected
        assert reference.evaluate(account, now=NOW).to_dict() == expected
