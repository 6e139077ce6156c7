"""Concrete cases on which the random-policy differential test once found
the engines disagreeing, kept small: each asserts that both engines give
the same decision and that it is the one docs/language.md prescribes."""

from __future__ import annotations

import datetime as dt

import pytest

from policydsl import Contact, Policy, ReferencePolicy
from policydsl.checker import check
from policydsl.loader import load_text

UTC = dt.UTC


def _decisions(text: str, account: dict[str, object], now: dt.datetime) -> tuple[dict, dict]:
    model, diagnostics = check(load_text(text, "regression.policy"))
    assert not [d for d in diagnostics if d.severity == "error"]
    return (Policy(model).evaluate(account, [], now=now).to_dict(),
            ReferencePolicy(model).evaluate(account, [], now=now).to_dict())


DURATION_POLICY = """policy "r" version "1"
account {
    id : text
    last_pay : datetime = 2025-03-01T12:00:00Z
    tz : zone = "UTC"
}
actions { email }
allow email when CONDITION
"""


# A comparison of durations that reads time (`now - last_pay`) is linear in
# time, so `until` is exact: the compiled engine used to find no crossing for
# durations (only for instants, dates and numbers) and answered null.
@pytest.mark.parametrize(("condition", "until"), [
    ("now - last_pay == 25 days", "2026-01-18T20:30:00Z"),
    ("now - last_pay >= 25 days", "2026-01-18T20:30:00Z"),
    ("now - last_pay > 25 days", "2026-01-18T20:30:01Z"),  # a microsecond later, rounded up to the second
    ("25 days <= now - last_pay", "2026-01-18T20:30:00Z"),
])
def test_until_of_an_allow_comparing_a_duration_that_reads_time(condition: str, until: str) -> None:
    account = {"id": "A1", "last_pay": dt.datetime(2025, 12, 24, 20, 30, tzinfo=UTC)}
    now = dt.datetime(2025, 12, 25, 20, 30, tzinfo=UTC)
    compiled, reference = _decisions(DURATION_POLICY.replace("CONDITION", condition), account, now)
    assert compiled == reference
    assert compiled["allowed"] == []
    [entry] = compiled["blocked"]
    assert entry["action"] == "email" and entry["kind"] == "not_allowed"
    assert entry["until"] == until


CLOCK_POLICY = """policy "r" version "1"
account {
    id : text
}
actions { email }
allow all
forbid all when CONDITION
"""


# `local_time()` counts whole seconds, so `local_time() == 00:00` holds for
# the whole first second of the day and `> 09:00` starts a second after
# 09:00: the compiled engine tried only the crossing and a microsecond after
# it, found nothing later in the day, and answered null ("never").
@pytest.mark.parametrize(("condition", "now", "until"), [
    ("local_time() == 00:00", dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "2024-01-01T00:00:01Z"),
    ("local_time() == 00:00", dt.datetime(2024, 1, 1, 0, 0, 0, 999999, tzinfo=UTC), "2024-01-01T00:00:01Z"),
    ("local_time() <= 09:00", dt.datetime(2024, 1, 1, 8, 0, tzinfo=UTC), "2024-01-01T09:00:01Z"),
    ("local_time() < 09:00", dt.datetime(2024, 1, 1, 8, 0, tzinfo=UTC), "2024-01-01T09:00:00Z"),
])
def test_until_of_a_forbid_on_the_clock_counts_whole_seconds(condition: str, now: dt.datetime, until: str) -> None:
    compiled, reference = _decisions(CLOCK_POLICY.replace("CONDITION", condition), {"id": "A1"}, now)
    assert compiled == reference
    [entry] = compiled["blocked"]
    assert entry["action"] == "email" and entry["kind"] == "forbidden"
    assert entry["until"] == until


# A day with a clock change can be 25 hours long: in America/Santiago the
# local date at 2025-04-05T03:00:00.000001Z and 24 hours later is the same, so
# the compiled engine's line through two samples of `today()` never crossed
# and `until` was null; the samples are now taken over a day without a change.
@pytest.mark.parametrize("now", [
    dt.datetime(2025, 4, 5, 3, 0, 0, 1, tzinfo=UTC),  # the day before Santiago's clocks go back
    dt.datetime(2025, 4, 5, 12, 0, tzinfo=UTC),
    dt.datetime(2026, 10, 31, 3, 0, 0, 1, tzinfo=UTC),
])
def test_until_of_a_date_comparison_sampled_across_a_clock_change(now: dt.datetime) -> None:
    text = ('policy "r" version "1"\naccount {\n    id : text\n    tz : zone = "America/Santiago"\n}\n'
            "actions { email }\nallow all\nforbid all when today() != 2026-11-01\n")
    compiled, reference = _decisions(text, {"id": "A1"}, now)
    assert compiled == reference
    [entry] = compiled["blocked"]
    assert entry["until"] == "2026-11-01T03:00:00Z"  # local midnight, UTC-3 in the southern summer


def test_until_of_a_date_comparison_when_the_clock_changes_exactly_a_day_later() -> None:
    """Santiago's clocks go back at 2025-04-06T03:00Z, exactly 24 hours after
    `now`: the offset is the same just before that instant, so a search for a
    change inside the day found none and the samples were still a day apart."""
    text = ('policy "r" version "1"\naccount {\n    id : text\n    tz : zone = "America/Santiago"\n}\n'
            "actions { email }\nallow all\nforbid all when today() != 2025-11-02\n")
    compiled, reference = _decisions(text, {"id": "A1"}, dt.datetime(2025, 4, 5, 3, 0, tzinfo=UTC))
    assert compiled == reference
    assert compiled["blocked"][0]["until"] == "2025-11-02T03:00:00Z"


QUIET_CLOCK_POLICY = """policy "r" version "1"
account {
    id : text
    vip : bool = false
    tz : zone
}
actions { call, sms }
allow all
forbid all when not vip and not local_time() == 00:30
quiet all for 7 days after "conversation" on all
"""


# The reference engine tries a week of candidate instants at a time and looks
# for a clock condition flipping between two candidates; the stretch from a
# week's last candidate to the week's end was never looked at. Here the quiet
# period ends at local midnight on 7 January and the forbid lifts for one
# second at 00:30: the week ended (19:00 local on the 7th) after that midnight,
# the next candidate was the next midnight, and the reference answered a day
# late, an instant at which its own decision says the call is allowed.
@pytest.mark.parametrize(("hour", "until"), [(0, "2024-01-07T05:30:00Z"), (12, "2024-01-08T05:30:00Z")])
def test_until_when_a_clock_condition_flips_at_the_end_of_a_week_of_candidates(hour: int, until: str) -> None:
    model, diagnostics = check(load_text(QUIET_CLOCK_POLICY, "regression.policy"))
    assert not [d for d in diagnostics if d.severity == "error"]
    account = {"id": "A1", "tz": "America/New_York"}
    now = dt.datetime(2024, 1, 1, hour, tzinfo=UTC)
    history = [Contact("A1", "call", now, "conversation")]
    compiled = Policy(model).evaluate(account, history, now=now).to_dict()
    reference = ReferencePolicy(model).evaluate(account, history, now=now).to_dict()
    assert compiled == reference
    assert {entry["until"] for entry in compiled["blocked"]} == {until}
    lifted = dt.datetime.fromisoformat(until)
    assert ReferencePolicy(model).evaluate(account, history, now=lifted).allowed == ("call", "sms")
    assert Policy(model).evaluate(account, history, now=lifted - dt.timedelta(seconds=1)).allowed == ()
