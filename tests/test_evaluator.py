"""Evaluation: precedence (independent of rule order), priority order,
stages and segments, every operator and library function, value types, and
bad input (a Decision with an error, never an exception)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import Contact, Decision, Policy, compile_policy, load_policy

UTC = dt.UTC
# Tuesday 2025-06-10, 12:00 UTC (also 12:00 in the default zone UTC)
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=UTC)

ACCOUNT = """\
policy "eval" version "1"
account {
    id       : text
    dpd      : int
    balance  : money = 0
    score    : number = 0
    tz       : zone = "UTC"
    band     : enum(low, mid, high) = low
    flags    : set<text> = {}
    codes    : set<int> = {}
    vip      : bool = false
    name     : text = ""
    due      : date = 2025-01-01
    paid_at  : datetime = 2025-01-01T00:00Z
    country  : text = "US"
}
actions {
    message : push, sms, email
    call    : ivr, agent
    legal
}
events { inbound_call }
"""
STAGES = "stages on dpd {\n    early .. 0\n    M1 1 .. 30\n    M2 31 ..\n}\n"


def make(rules: str, stages: str = "") -> Policy:
    return compile_policy(ACCOUNT + stages + rules)


def decide(policy: Policy, now: dt.datetime = NOW, history: tuple[Contact, ...] = (), **account: Any) -> Decision:
    row: dict[str, Any] = {"id": "A1", "dpd": 10}
    row.update(account)
    decision = policy.evaluate(row, history, now=now)
    assert decision.error is None, decision.error
    return decision


def kinds(decision: Decision, action: str) -> list[str]:
    return sorted(entry.kind for entry in decision.reasons(action))


def contact(action: str, at: dt.datetime, outcome: str = "") -> Contact:
    return Contact("A1", action, at, outcome)


# ---------------------------------------------------------------- precedence


def test_allowed_needs_an_allow() -> None:
    decision = decide(make("allow sms\n"))
    assert decision.allowed == ("sms",)
    assert set(decision.evidence.allowed_by) == {"sms"}
    for action in ("push", "email", "ivr", "agent", "legal"):
        assert kinds(decision, action) == ["not_allowed"]
        assert decision.until(action) is None


@pytest.mark.parametrize("order", ["allow first", "forbid first"])
def test_forbid_beats_allow_in_either_order(order: str) -> None:
    allow, forbid = "allow all\n", 'forbid sms, call because "no"\n'
    policy = make(allow + forbid if order == "allow first" else forbid + allow)
    decision = decide(policy)
    assert decision.allowed == ("push", "email", "legal")
    for action in ("sms", "ivr", "agent"):
        (entry,) = decision.reasons(action)
        assert entry.kind == "forbidden" and entry.until is None
        assert "no" in entry.reason


def test_forbid_condition_is_evaluated_per_account() -> None:
    policy = make('allow all\nforbid call when "cease" in flags because "asked us to stop" cite "Reg F"\n')
    assert "agent" in decide(policy).allowed
    decision = decide(policy, flags="cease;other")
    assert "agent" not in decision.allowed and "sms" in decision.allowed
    (entry,) = decision.reasons("agent")
    assert entry.rule.cite == "Reg F" and entry.rule.line == ACCOUNT.count("\n") + 2
    assert "asked us to stop" in entry.reason and "[Reg F]" in entry.reason


@pytest.mark.parametrize("restriction", [
    "window sms 08:00-09:00",  # 12:00 is outside
    'limit sms 1 per day',
    'quiet sms for 1 day after "conversation" on sms',
])
@pytest.mark.parametrize("allow_first", [True, False])
def test_window_limit_and_quiet_beat_allow_in_either_order(restriction: str, allow_first: bool) -> None:
    rules = ["allow sms, email", restriction]
    policy = make("\n".join(rules if allow_first else rules[::-1]) + "\n")
    history = (contact("sms", NOW - dt.timedelta(hours=1), "conversation"),)
    decision = decide(policy, history=history)
    assert decision.allowed == ("email",)
    (entry,) = decision.reasons("sms")
    assert entry.kind == restriction.split()[0]
    assert entry.until is not None and entry.until > NOW


def test_forbidden_and_timed_reasons_are_all_listed_and_until_is_null() -> None:
    policy = make('allow all\nforbid sms because "no"\nwindow sms 08:00-09:00\nlimit sms 1 per day\n'
                  'quiet sms for 2 days after "dispute" on sms\n')
    history = (contact("sms", NOW - dt.timedelta(hours=2), "dispute"),)
    decision = decide(policy, history=history)
    assert kinds(decision, "sms") == ["forbidden", "limit", "quiet", "window"]
    assert {entry.until for entry in decision.reasons("sms")} == {None}


def test_not_allowed_action_still_lists_its_timed_reasons_with_null_until() -> None:
    policy = make("allow email\nwindow sms, email 08:00-09:00\n")
    decision = decide(policy)
    assert kinds(decision, "sms") == ["not_allowed", "window"]
    assert kinds(decision, "email") == ["window"]
    assert decision.until("sms") is None
    assert decision.until("email") == dt.datetime(2025, 6, 11, 8, tzinfo=UTC)


def test_until_is_the_same_on_every_entry_of_an_action() -> None:
    policy = make("allow all\nwindow sms 08:00-09:00\nwindow sms 07:00-10:00\nlimit sms 1 per day\n")
    history = (contact("sms", NOW - dt.timedelta(hours=1)),)
    decision = decide(policy, history=history)
    entries = decision.reasons("sms")
    assert [entry.kind for entry in entries].count("window") == 2 and len(entries) == 3
    assert {entry.until for entry in entries} == {dt.datetime(2025, 6, 11, 8, tzinfo=UTC)}


def test_allowed_only_when_condition_holds() -> None:
    policy = make("allow legal when balance >= ¥500\nallow sms\n")
    assert decide(policy, balance="499.99").allowed == ("sms",)
    (entry,) = decide(policy, balance="499.99").reasons("legal")
    assert entry.kind == "not_allowed" and "balance >= ¥500" in entry.reason
    assert decide(policy, balance="500").allowed == ("legal", "sms")


RULES = [
    "allow sms, push, email when not vip",
    "allow ivr when dpd > 5",
    "allow agent, legal",
    'forbid legal when balance < ¥100 because "small"',
    'forbid push when "no_push" in flags because "opted out"',
    "window call, message 08:00-20:00",
    "window sms 09:00-12:00, 13:00-18:00 on mon..fri",
    'limit call 2 per day where outcome not in {"not_connected"}',
    "limit message 3 per 24 hours of message, inbound_call",
    'quiet call for 2 days after "conversation" on call, inbound_call',
    'quiet email for 6 hours after "bounced" on email',
]
SCENARIOS: list[tuple[dict[str, Any], dt.datetime, tuple[Contact, ...]]] = [
    ({"dpd": 10}, NOW, ()),
    ({"dpd": 3, "vip": "yes", "balance": "50"}, NOW, ()),
    ({"dpd": 40, "flags": "no_push", "balance": "900"}, dt.datetime(2025, 6, 10, 12, 30, tzinfo=UTC), (
        contact("agent", NOW - dt.timedelta(hours=3), "conversation"),
        contact("email", NOW - dt.timedelta(hours=2), "bounced"))),
    ({"dpd": 7}, dt.datetime(2025, 6, 14, 21, 0, tzinfo=UTC), (  # a Saturday evening
        contact("ivr", dt.datetime(2025, 6, 14, 9, tzinfo=UTC), "not_connected"),
        contact("ivr", dt.datetime(2025, 6, 14, 10, tzinfo=UTC), "connected"),
        contact("agent", dt.datetime(2025, 6, 14, 11, tzinfo=UTC), "connected"),
        contact("sms", dt.datetime(2025, 6, 14, 12, tzinfo=UTC)),
        contact("inbound_call", dt.datetime(2025, 6, 14, 13, tzinfo=UTC), "x"),
        contact("push", dt.datetime(2025, 6, 14, 14, tzinfo=UTC)))),
    ({"dpd": 12}, dt.datetime(2025, 6, 12, 7, 59, 59, tzinfo=UTC), (
        contact("inbound_call", dt.datetime(2025, 6, 11, 7, tzinfo=UTC), "conversation"),)),
]


def _summary(decision: Decision) -> tuple[tuple[str, ...], list[tuple[str, str, dt.datetime | None]]]:
    return decision.allowed, sorted((e.action, e.kind, e.until) for e in decision.blocked)


def _outcomes(rules: list[str]) -> list[Any]:
    policy = make("\n".join(rules) + "\n")
    return [_summary(policy.evaluate({"id": "A1", **account}, history, now=now))
            for account, now, history in SCENARIOS]


REFERENCE = _outcomes(RULES)


def test_scenarios_exercise_every_kind_of_reason() -> None:
    seen = {kind for _, blocked in REFERENCE for _, kind, _ in blocked}
    assert seen == {"not_allowed", "forbidden", "window", "limit", "quiet"}
    assert all(allowed for allowed, _ in REFERENCE[:3])


@settings(max_examples=60, deadline=None)
@given(st.permutations(RULES))
def test_decisions_do_not_depend_on_rule_order(order: list[str]) -> None:
    # Restrictions move freely among the allows; the allows keep their
    # relative order, which is the priority order.
    allows = iter([rule for rule in RULES if rule.startswith("allow")])
    shuffled = [next(allows) if rule.startswith("allow") else rule for rule in order]
    assert _outcomes(shuffled) == REFERENCE


@settings(max_examples=30, deadline=None)
@given(st.permutations(RULES))
def test_allowed_set_does_not_depend_on_any_order(order: list[str]) -> None:
    outcomes = _outcomes(list(order))
    assert [(set(allowed), blocked) for allowed, blocked in outcomes] == \
           [(set(allowed), blocked) for allowed, blocked in REFERENCE]


def test_stage_block_rules_apply_only_in_their_stage() -> None:
    policy = make('allow all\nstage M1 { forbid legal because "too early"  window sms 08:00-09:00 }\n', STAGES)
    m1, m2 = decide(policy, dpd=10), decide(policy, dpd=40)
    assert (m1.stage, m2.stage) == ("M1", "M2")
    assert kinds(m1, "legal") == ["forbidden"] and kinds(m1, "sms") == ["window"]
    assert "legal" in m2.allowed and "sms" in m2.allowed


# ---------------------------------------------------------------- priority order


PRIORITY = """\
allow ivr
stage M1 {
    allow sms, push
    allow agent when vip
    allow email
}
stage M2 { allow legal, call }
allow agent, sms
allow legal
"""


def test_priority_stage_blocks_first_then_top_level_in_written_order() -> None:
    policy = make(PRIORITY, STAGES)
    assert decide(policy, dpd=10, vip=True).allowed == ("sms", "push", "agent", "email", "ivr", "legal")
    # agent's stage entry does not hold: it comes with the top-level entry
    assert decide(policy, dpd=10).allowed == ("sms", "push", "email", "ivr", "agent", "legal")
    assert decide(policy, dpd=10).next_action == "sms"
    # a group expands in its declared order, after the names written before it
    assert decide(policy, dpd=40).allowed == ("legal", "ivr", "agent", "sms")
    assert decide(policy, dpd=0).allowed == ("ivr", "agent", "sms", "legal")


def test_within_an_entry_the_written_order_wins_over_the_declared_order() -> None:
    policy = make("allow legal, email, agent, push\n")
    assert decide(policy).allowed == ("legal", "email", "agent", "push")
    assert decide(make("allow all\n")).allowed == ("push", "sms", "email", "ivr", "agent", "legal")


def test_allowed_by_names_the_entry_that_admitted_the_action() -> None:
    policy = make(PRIORITY, STAGES)
    decision = decide(policy, dpd=10)
    assert decision.evidence.allowed_by["agent"].line == ACCOUNT.count("\n") + STAGES.count("\n") + 8
    assert decision.evidence.allowed_by["sms"].text == "allow sms, push"


def test_no_action_allowed_gives_no_next_action() -> None:
    decision = decide(make('allow all\nforbid all because "closed"\n'))
    assert decision.allowed == () and decision.next_action is None
    assert len(decision.blocked) == 6


# ---------------------------------------------------------------- stages and segments


def test_stage_ranges_are_inclusive_and_open_ended() -> None:
    policy = make("allow all\n", STAGES)
    assert [decide(policy, dpd=value).stage for value in (-1000, 0, 1, 30, 31, 10**9)] == \
           ["early", "early", "M1", "M1", "M2", "M2"]


def test_value_outside_every_stage_allows_only_top_level() -> None:
    policy = make("stage M1 { allow sms }\nallow email\n", "stages on dpd {\n    M1 1 .. 30\n}\n")
    decision = decide(policy, dpd=31)
    assert decision.stage is None and decision.allowed == ("email",)
    assert kinds(decision, "sms") == ["not_allowed"]
    assert decide(policy, dpd=30).allowed == ("sms", "email")


def test_nothing_allowed_outside_every_stage_says_so() -> None:
    policy = make("stage M1 { allow sms }\n", "stages on dpd {\n    M1 1 .. 30\n}\n")
    decision = decide(policy, dpd=0)
    assert decision.stage is None and decision.allowed == ()
    assert "in no stage" in decision.reasons("sms")[0].reason


def test_several_segments_at_once_in_declared_order() -> None:
    policy = make("segment risky when score >= 0.7 or dpd > 60\n"
                  "segment rich when balance > ¥10000\n"
                  "segment risky_and_rich when risky and rich\n"
                  "segment calm when not risky\n"
                  "allow sms when risky_and_rich\nallow email when calm\n")
    decision = decide(policy, score="0.7", balance="20000")
    assert decision.segments == ("risky", "rich", "risky_and_rich")
    assert decision.allowed == ("sms",)
    decision = decide(policy, score="0.69", balance="20000")
    assert decision.segments == ("rich", "calm") and decision.allowed == ("email",)
    assert decide(policy, dpd=61, balance=1).segments == ("risky",)


# ---------------------------------------------------------------- expressions

# (condition, account values, expected); every operator and function has a
# true and a false case.
EXPRESSIONS: list[tuple[str, dict[str, Any], bool]] = [
    ("dpd == 10", {}, True), ("dpd == 11", {}, False),
    ("dpd != 11", {}, True), ("dpd != 10", {}, False),
    ("dpd < 11", {}, True), ("dpd < 10", {}, False),
    ("dpd <= 10", {}, True), ("dpd <= 9", {}, False),
    ("dpd > 9", {}, True), ("dpd > 10", {}, False),
    ("dpd >= 10", {}, True), ("dpd >= 11", {}, False),
    ("dpd * 2 + 1 == 21", {}, True), ("dpd * 2 + 1 == 20", {}, False),
    ("dpd - 30 == -20", {}, True), ("30 - dpd - 10 == 10", {}, True), ("30 - (dpd - 10) == 30", {}, True),
    ("dpd / 4 == 2.5", {}, True), ("dpd / 4 == 2", {}, False),
    ("-dpd == -10", {}, True), ("-dpd == 10", {}, False),
    ("1 + 2 * 3 == 7", {}, True), ("(1 + 2) * 3 == 9", {}, True),
    ("score + 0.2 == 0.3", {"score": "0.1"}, True),  # decimal, not float
    ("score + 0.2 == 0.3", {"score": 0.1}, True),
    ("score * 3 == 0.3", {"score": "0.1"}, True),
    ("balance * 2 == ¥201", {"balance": "100.50"}, True),
    ("balance / 2 > ¥50", {"balance": "100.50"}, True), ("balance / 2 > ¥50.25", {"balance": "100.50"}, False),
    ("balance >= ¥500", {"balance": "500.00"}, True), ("balance >= ¥500", {"balance": Decimal("499.99")}, False),
    ("balance >= ¥500", {"balance": 500}, True), ("balance >= ¥500", {"balance": 499.99}, False),
    ("balance > score", {"balance": "1", "score": "0.5"}, True),
    ("vip and dpd > 5", {"vip": "yes"}, True), ("vip and dpd > 5", {"vip": "no"}, False),
    ("vip or dpd > 50", {"vip": False}, False), ("vip or dpd > 5", {"vip": False}, True),
    ("not vip", {"vip": "false"}, True), ("not vip", {"vip": "true"}, False),
    ("not not vip", {"vip": True}, True),
    ("vip or dpd > 5 and dpd > 50", {}, False), ("(vip or dpd > 5) and dpd < 50", {}, True),
    ("dpd > 1 and dpd > 2 and dpd > 3 and dpd > 20", {}, False),
    ("dpd > 50 or dpd > 40 or dpd > 9", {}, True),
    ('"cease" in flags', {"flags": "cease; dispute"}, True), ('"cease" in flags', {"flags": ["dispute"]}, False),
    ('"cease" not in flags', {"flags": frozenset({"dispute"})}, True),
    ('"cease" not in flags', {"flags": "cease"}, False),
    ("3 in codes", {"codes": "1;3"}, True), ("3 in codes", {"codes": [1, 2]}, False),
    ("4 not in codes", {"codes": (1, 2)}, True),
    ('"bc" in name', {"name": "abcd"}, True), ('"xy" in name', {"name": "abcd"}, False),
    ('"bc" not in name', {"name": "abcd"}, False),
    ("dpd in {5, 10}", {}, True), ("dpd in {5, 11}", {}, False),
    ('band == "high"', {"band": "high"}, True), ('band == "high"', {"band": "mid"}, False),
    ('band != "low"', {"band": " mid "}, True), ('band != "low"', {}, False),
    ('band in {"mid", "high"}', {"band": "high"}, True), ('band in {"mid", "high"}', {}, False),
    ('name == "Zoë"', {"name": "Zoë"}, True),
    ("days_since(due) == 9", {"due": "2025-06-01"}, True), ("days_since(due) == 9", {"due": "2025-06-02"}, False),
    ("days_since(paid_at) == 0", {"paid_at": "2025-06-09T13:00:00+00:00"}, True),
    ("days_since(paid_at) == 2", {"paid_at": "2025-06-08T12:00:00Z"}, True),
    ("days_until(due) == 5", {"due": dt.date(2025, 6, 15)}, True),
    ("days_until(due) == -9", {"due": dt.date(2025, 6, 1)}, True),
    ("days_until(paid_at) == 1", {"paid_at": "2025-06-11T12:00:00+00:00"}, True),
    ("hours_since(paid_at) == 2.5", {"paid_at": "2025-06-10T09:30:00Z"}, True),
    ("hours_since(paid_at) > 2.5", {"paid_at": "2025-06-10T09:30:00Z"}, False),
    ("len(name) == 3", {"name": "abc"}, True), ("len(name) == 0", {}, True),
    ("len(flags) == 2", {"flags": "a;b;;a"}, True), ("len(codes) == 0", {}, True),
    ("abs(score) == 0.5", {"score": "-0.5"}, True), ("abs(dpd - 20) == 10", {}, True),
    ("min(balance, ¥100) == ¥50.5", {"balance": "50.5"}, True),
    ("max(balance, ¥100) == ¥100", {"balance": "50.5"}, True),
    ("max(dpd, 3) == 10", {}, True), ("min(dpd, score) == 0", {}, True),
    ('lower(name) == "abc"', {"name": "AbC"}, True), ('lower(name) == "AbC"', {"name": "AbC"}, False),
    ('lower(band) == "high"', {"band": "high"}, True),
    ("today() == 2025-06-10", {}, True), ("today() == 2025-06-11", {"tz": "Asia/Tokyo"}, False),
    ("today() == 2025-06-10", {"tz": "America/Los_Angeles"}, True),
    ("local_time() >= 12:00 and local_time() < 12:01", {}, True),
    ("local_time() == 21:00", {"tz": "Asia/Tokyo"}, True),
    ("local_time() == 17:30", {"tz": "Asia/Kolkata"}, True),
    ('weekday() == "tue"', {}, True), ('weekday() == "wed"', {}, False),
    ("now > paid_at", {}, True), ("now < paid_at", {}, False),
    ("now == 2025-06-10T12:00Z", {}, True), ("now == 2025-06-10T20:00+08:00", {}, True),
    ("now - paid_at > 36 hours", {"paid_at": "2025-06-08T23:00:00Z"}, True),
    ("now - paid_at > 36 hours", {"paid_at": "2025-06-09T00:00:00Z"}, False),
    ("paid_at + 2 days < now", {"paid_at": "2025-06-08T11:59:00Z"}, True),
    ("paid_at + 2 days < now", {"paid_at": "2025-06-08T12:00:00Z"}, False),
    ("now - 1 day - 12 hours == 2025-06-09T00:00Z", {}, True),
    ("now - paid_at == 1 hour", {"paid_at": "2025-06-10T11:00:00Z"}, True),
    ("due + 10 == today()", {"due": "2025-05-31"}, True),
    ("today() - due == 9", {"due": "2025-06-01"}, True),
    ("due - 1 == 2025-05-31", {"due": "2025-06-01"}, True),
    ("due < 2025-06-02", {"due": "2025-06-01"}, True), ("due > 2025-06-02", {"due": "2025-06-01"}, False),
]


@pytest.mark.parametrize(("condition", "values", "expected"), EXPRESSIONS,
                         ids=[f"{c} {v}" for c, v, _ in EXPRESSIONS])
def test_expression(condition: str, values: dict[str, Any], expected: bool) -> None:
    policy = make(f"segment s when {condition}\nallow sms when s\n")
    decision = decide(policy, **values)
    assert ("s" in decision.segments) is expected
    assert decision.is_allowed("sms") is expected


def test_days_since_counts_days_in_the_accounts_zone() -> None:
    policy = make("segment s when days_since(due) == 10\nallow sms when s\n")
    late_evening_utc = dt.datetime(2025, 6, 10, 16, 0, tzinfo=UTC)  # already June 11 in Tokyo
    assert decide(policy, late_evening_utc, due="2025-06-01", tz="Asia/Tokyo").segments == ("s",)
    assert decide(policy, late_evening_utc, due="2025-06-01", tz="UTC").segments == ()


def test_action_in_allow_and_forbid_conditions() -> None:
    policy = make('allow all when action != "legal"\nforbid message when action == "sms" because "no texts"\n')
    decision = decide(policy)
    assert decision.allowed == ("push", "email", "ivr", "agent")
    assert kinds(decision, "sms") == ["forbidden"] and kinds(decision, "legal") == ["not_allowed"]


def test_and_or_short_circuit() -> None:
    policy = make("allow sms when vip and dpd / 0 > 1\nallow email when not vip or dpd / 0 > 1\n")
    assert decide(policy, vip=False).allowed == ("email",)
    decision = policy.evaluate({"id": "A1", "dpd": 1, "vip": True}, now=NOW)
    assert decision.error is not None and "cannot evaluate" in decision.error
    assert decision.allowed == () and decision.account_id == "A1"


def test_defaults_fill_missing_and_blank_values() -> None:
    policy = make('segment s when band == "low" and balance == 0 and len(flags) == 0\nallow sms when s\n')
    assert decide(policy).segments == ("s",)
    assert decide(policy, band="", balance="  ", flags=None).segments == ("s",)
    assert decide(policy, band="mid").segments == ()


# ---------------------------------------------------------------- value types


@pytest.mark.parametrize("zone", ["Asia/Shanghai", ZoneInfo("Asia/Shanghai"), ["Asia/Shanghai"], " Asia/Shanghai ;"])
def test_zone_values(zone: Any) -> None:
    policy = make("allow sms\nwindow sms 08:00-21:00\n")
    at_9_shanghai = dt.datetime(2025, 6, 10, 1, 0, tzinfo=UTC)
    assert decide(policy, at_9_shanghai, tz=zone).allowed == ("sms",)
    assert decide(policy, at_9_shanghai).allowed == ()  # 01:00 in UTC


@pytest.mark.parametrize(("field", "value"), [
    ("due", dt.date(2025, 6, 1)), ("due", "2025-06-01"),
    ("paid_at", dt.datetime(2025, 6, 1, 8, tzinfo=ZoneInfo("Asia/Shanghai"))), ("paid_at", "2025-06-01T00:00:00Z"),
    ("paid_at", "2025-06-01T08:00:00+08:00"),
])
def test_date_and_datetime_values(field: str, value: Any) -> None:
    condition = "due == 2025-06-01" if field == "due" else "paid_at == 2025-06-01T00:00Z"
    policy = make(f"segment s when {condition}\nallow sms\n")
    assert decide(policy, **{field: value}).segments == ("s",)


@pytest.mark.parametrize("paid_at", [
    dt.datetime(2025, 3, 8, 12, tzinfo=ZoneInfo("America/New_York")),  # a zone with DST
    "2025-03-08T12:00:00-05:00",
    "2025-03-08T17:00:00+00:00",
])
def test_datetime_arithmetic_is_elapsed_time_whatever_zone_the_value_came_in(paid_at: Any) -> None:
    # 17:00 UTC March 8; `now` 23 h 30 min later, across the spring-forward night in New York
    policy = make("segment day_passed when paid_at + 24 hours < now\n"
                  "segment recent when now - paid_at < 1 day\n"
                  "segment before when paid_at < 2025-03-08T12:30-05:00\n"
                  "allow sms\n")
    now = dt.datetime(2025, 3, 9, 12, 30, tzinfo=ZoneInfo("America/New_York"))
    assert decide(policy, now, paid_at=paid_at).segments == ("recent", "before")
    later = dt.datetime(2025, 3, 9, 17, 0, 1, tzinfo=UTC)
    assert decide(policy, later, paid_at=paid_at).segments == ("day_passed", "before")


def test_datetimes_in_the_repeated_hour_compare_as_instants() -> None:
    policy = make("segment paid_after_contact when paid_at > now\nallow sms\n")
    ny = ZoneInfo("America/New_York")
    first_0130 = dt.datetime(2025, 11, 2, 1, 30, tzinfo=ny)  # EDT, 05:30 UTC
    second_0110 = dt.datetime(2025, 11, 2, 1, 10, tzinfo=ny, fold=1)  # EST, 06:10 UTC
    assert decide(policy, first_0130, paid_at=second_0110).segments == ("paid_after_contact",)
    assert decide(policy, second_0110, paid_at=first_0130).segments == ()


@pytest.mark.parametrize(("raw", "expected"), [
    ("yes", True), ("Y", True), ("1", True), ("true", True), (True, True),
    ("no", False), ("0", False), ("False", False), (False, False),
])
def test_bool_values(raw: Any, expected: bool) -> None:
    policy = make("segment s when vip\nallow sms\n")
    assert (decide(policy, vip=raw).segments == ("s",)) is expected


def test_decimal_values_stay_exact() -> None:
    policy = make("segment s when balance == ¥0.30\nallow sms\n")
    assert decide(policy, balance=Decimal("0.1") + Decimal("0.2")).segments == ("s",)
    assert decide(policy, balance=0.1 + 0.2).segments == ()  # the float 0.30000000000000004
    assert decide(policy, balance="0.3").segments == ("s",)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("field", "value", "words"), [
    ("dpd", None, "missing"),
    ("dpd", "ten", "a whole number"),
    ("dpd", "1.5", "a whole number"),
    ("dpd", 1.0, "a whole number"),
    ("dpd", True, "a whole number"),
    ("dpd", "9" * 5000, "whole number"),
    ("balance", "¥500", "a decimal number"),
    ("balance", "1e3", "a decimal number"),
    ("balance", float("nan"), "finite"),
    ("balance", float("inf"), "finite"),
    ("balance", Decimal("NaN"), "finite"),
    ("balance", [], "a decimal number"),
    ("score", "NaN", "a decimal number"),
    ("vip", "maybe", "true or false"),
    ("vip", 2, "true or false"),
    ("name", 42, "text"),
    ("due", "2025-02-30", "a date"),
    ("due", dt.datetime(2025, 6, 1, tzinfo=UTC), "a date"),
    ("paid_at", "2025-06-01T08:00:00", "with an offset"),
    ("paid_at", dt.datetime(2025, 6, 1), "with an offset"),
    ("paid_at", "yesterday", "with an offset"),
    ("tz", "Mars/Olympus", "IANA time zone"),
    ("tz", "../../etc/passwd", "IANA time zone"),
    ("tz", "Asia/Shanghai;Nowhere/Land", "IANA time zone"),
    ("tz", 8, "IANA time zone"),
    ("band", "extreme", "one of low, mid, high"),
    ("band", 1, "one of low, mid, high"),
    ("flags", [1, 2], "list of text"),
    ("flags", 7, "list of text"),
    ("codes", "1;x", "whole number"),
    ("codes", 3, "whole numbers"),
])
def test_bad_account_value_gives_an_error_decision_naming_the_field(field: str, value: Any, words: str) -> None:
    policy = make("allow all\nwindow sms 08:00-21:00\n")
    row: dict[str, Any] = {"id": "A7", "dpd": 10, field: value}
    decision = policy.evaluate(row, (), now=NOW)
    assert decision.error is not None
    assert f"field {field!r}" in decision.error and words in decision.error
    assert decision.account_id == "A7"
    assert decision.allowed == () and decision.blocked == () and decision.stage is None
    assert decision.to_dict()["error"] == decision.error


def test_missing_id_still_gives_a_decision() -> None:
    decision = make("allow all\n").evaluate({"dpd": 1}, now=NOW)
    assert decision.account_id is None and "field 'id'" in (decision.error or "")


def test_unknown_holiday_country_in_the_account_names_the_field() -> None:
    policy = make("allow all\nwindow sms 08:00-21:00 except holidays country\n")
    decision = policy.evaluate({"id": "A1", "dpd": 1, "country": "Atlantis"}, now=NOW)
    assert decision.error is not None and "field 'country'" in decision.error
    assert decide(policy, country="CN").allowed[:1] == ("push",)


def test_arithmetic_errors_give_an_error_decision() -> None:
    policy = make("allow sms when today() + dpd > due\n")
    decision = policy.evaluate({"id": "A1", "dpd": 10**12}, now=NOW)
    assert decision.error is not None and decision.error.startswith("cannot evaluate")
    assert decision.allowed == ()


def test_naive_now_is_a_value_error() -> None:
    policy = make("allow all\n")
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.evaluate({"id": "A1", "dpd": 1}, now=dt.datetime(2025, 6, 10, 12))


def test_naive_contact_time_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no offset"):
        Contact("A1", "sms", dt.datetime(2025, 6, 10, 12))


def test_now_in_any_offset_is_the_same_instant() -> None:
    policy = make("allow all\nwindow sms 08:00-12:30\nlimit call 1 per day\n")
    history = (contact("agent", dt.datetime(2025, 6, 10, 1, tzinfo=UTC)),)
    in_utc = decide(policy, NOW, history)
    in_tokyo = decide(policy, NOW.astimezone(ZoneInfo("Asia/Tokyo")), history)
    assert in_utc == in_tokyo
    assert in_utc.until("agent") == dt.datetime(2025, 6, 11, tzinfo=UTC)


def test_events_after_now_are_ignored() -> None:
    policy = make("allow all\nlimit sms 1 per day\n")
    later = (contact("sms", NOW + dt.timedelta(seconds=1)),)
    assert decide(policy, history=later).is_allowed("sms")
    at_now = (contact("sms", NOW),)
    assert not decide(policy, history=at_now).is_allowed("sms")


def test_history_of_undeclared_actions_is_ignored() -> None:
    policy = make("allow all\nlimit all 1 per day\n")
    history = (contact("fax", NOW - dt.timedelta(hours=1)), contact("letter", NOW - dt.timedelta(hours=2)))
    assert len(decide(policy, history=history).allowed) == 6


def test_evaluation_is_repeatable_and_history_may_be_any_iterable() -> None:
    policy = make("allow all\nlimit sms 1 per day\n")
    history = [contact("sms", NOW - dt.timedelta(hours=1))]
    first = decide(policy, history=tuple(history))
    assert policy.evaluate({"id": "A1", "dpd": 10}, iter(history), now=NOW) == first
    assert decide(policy, history=tuple(history)) == first


def test_to_dict_contract() -> None:
    policy = make('allow sms, email\nforbid email because "no"\nlimit sms 1 per 1 hour\n')
    history = (contact("sms", dt.datetime(2025, 6, 10, 11, 30, 0, 250_000, tzinfo=UTC)),)
    data = decide(policy, history=history).to_dict()
    assert set(data) == {"account_id", "stage", "segments", "allowed", "next_action", "blocked", "error", "now",
                         "policy"}
    assert data["allowed"] == [] and data["next_action"] is None and data["error"] is None
    by_action = {entry["action"]: entry for entry in data["blocked"]}
    assert by_action["sms"]["until"] == "2025-06-10T12:30:01Z"  # rounded up to the second
    assert by_action["email"]["until"] is None
    assert by_action["email"]["rule"] == f"<policy>:{ACCOUNT.count(chr(10)) + 2}"


# ---------------------------------------------------------------- includes


def test_baseline_restrictions_apply_through_the_mapping_but_not_its_allows(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text(
        'policy "base" version "1"\naccount {\n    id : text\n    tz : zone = "UTC"\n}\n'
        "actions { voice, message }\nallow all\nwindow voice, message 08:00-21:00\nlimit voice 1 per day\n"
        'forbid message when "stop" in flags because "stop"\naccount { flags : set<text> = {} }\n',
        encoding="utf-8")
    (tmp_path / "main.policy").write_text(
        'policy "main" version "1"\ninclude "base.policy" with {\n    voice = ivr, agent\n    message = sms\n}\n'
        "account { dpd : int = 0 }\nactions { ivr, agent, sms, email }\nallow ivr, agent, sms\n", encoding="utf-8")
    policy = load_policy(tmp_path / "main.policy")
    assert policy.actions == ("ivr", "agent", "sms", "email")
    night = dt.datetime(2025, 6, 10, 22, 0, tzinfo=UTC)
    decision = policy.evaluate({"id": "A1"}, now=night)
    assert decision.allowed == ()
    assert kinds(decision, "ivr") == ["window"] and kinds(decision, "email") == ["not_allowed"]
    history = (contact("agent", NOW - dt.timedelta(hours=1)),)
    decision = policy.evaluate({"id": "A1", "flags": "stop"}, history, now=NOW)
    assert decision.allowed == ()
    assert kinds(decision, "ivr") == ["limit"] and kinds(decision, "sms") == ["forbidden"]
