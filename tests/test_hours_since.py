"""`hours_since` is exact: both engines compute it from whole microseconds,
so a threshold met at a sub-second gap is met in both (issue 9, point 11:
through a float, 0.36 s was just under 0.0001 hours in the compiled engine)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from test_differential import assert_same

from policydsl import Policy, ReferencePolicy, compile_policy

UTC = dt.UTC
NOW = dt.datetime(2025, 6, 4, 2, 0, tzinfo=UTC)
THRESHOLDS = ("0.0001", "0.0000001", "0.00025", "0.5", "1.0")


def _policy(threshold: str) -> tuple[Policy, ReferencePolicy]:
    source = ('policy "gap" version "1"\naccount {\n    id : text\n    paid_at : datetime\n}\n'
              f"actions {{ sms }}\nallow sms when hours_since(paid_at) >= {threshold}\n")
    return compile_policy(source), compile_policy(source, engine="reference")


def _account(gap: dt.timedelta) -> dict[str, str]:
    return {"id": "A1", "paid_at": (NOW - gap).isoformat()}


def test_a_gap_of_0_36_seconds_is_0_0001_hours_in_both_engines() -> None:
    compiled, reference = _policy("0.0001")
    account = _account(dt.timedelta(milliseconds=360))
    assert compiled.evaluate(account, now=NOW).allowed == ("sms",)
    assert reference.evaluate(account, now=NOW).allowed == ("sms",)
    just_under = _account(dt.timedelta(microseconds=359_999))
    assert compiled.evaluate(just_under, now=NOW).allowed == ()
    assert reference.evaluate(just_under, now=NOW).allowed == ()


POLICIES = {threshold: _policy(threshold) for threshold in THRESHOLDS}


@given(st.sampled_from(THRESHOLDS), st.integers(min_value=-2_000_000, max_value=4_000_000_000))
def test_the_engines_agree_to_the_microsecond(threshold: str, microseconds: int) -> None:
    compiled, reference = POLICIES[threshold]
    gap = dt.timedelta(microseconds=microseconds)
    assert_same(compiled, reference, _account(gap), [], NOW, f"gap {gap}, threshold {threshold}")
    expected = Decimal(microseconds) / Decimal(3_600_000_000) >= Decimal(threshold)
    assert compiled.evaluate(_account(gap), now=NOW).allowed == (("sms",) if expected else ())
