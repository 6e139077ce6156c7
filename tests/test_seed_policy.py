"""The shipped e-commerce consumer-loan policy, as a table of scenarios.

Each scenario is an account (and sometimes a contact history and an instant)
with the stage and the allowed actions, in priority order, the policy must
give. Rule lines are looked up in the policy text, never hard-coded, so the
file may gain lines (an include, comments) without breaking these tests.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from policydsl import Contact, Decision, Policy, load_policy
from policydsl import nodes as n
from policydsl.cli import main
from policydsl.parser import parse

ROOT = Path(__file__).resolve().parents[1]
POLICY_PATH = ROOT / "policies" / "ecommerce_consumer_loan.policy"
TEXT = POLICY_PATH.read_text(encoding="utf-8")
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2025, 6, 4, 10, 0, tzinfo=SHANGHAI)  # Wednesday 10:00 in Shanghai, 02:00Z

# Contact hours come from the China baseline the seed includes.
BASELINE_PATH = POLICY_PATH.with_name("cn_collection_baseline.policy")

MESSAGES = ("app_push", "sms", "email")
CALLS = ("agent_call", "senior_agent_call")
ESCALATIONS = ("agency_referral", "legal_review")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(POLICY_PATH)


def line_of(fragment: str) -> int:
    """The 1-based line of the one policy line containing `fragment`."""
    found = [number for number, line in enumerate(TEXT.splitlines(), 1)
             if fragment in line.split("#", 1)[0]]
    assert len(found) == 1, f"{fragment!r} is on lines {found}"
    return found[0]


def rule_at(fragment: str) -> str:
    return f"{POLICY_PATH.name}:{line_of(fragment)}"  # relative to the policy's directory


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def decide(policy: Policy, history: tuple[tuple[str, str, str], ...] = (), now: dt.datetime = NOW,
           **fields: Any) -> Decision:
    account = {"id": "T1", "days_past_due": 15, "balance": "1000.00", **fields}
    contacts = [Contact("T1", action, at(when), outcome) for action, when, outcome in history]
    decision = policy.evaluate(account, contacts, now=now)
    assert decision.error is None, decision.error
    return decision


def utc(decision_until: dt.datetime | None) -> str | None:
    return None if decision_until is None else decision_until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kinds(decision: Decision, action: str) -> set[str]:
    return {entry.kind for entry in decision.reasons(action)}


# ------------------------------------------------------------ stages and allowed actions

HARDSHIP = {"hardship": "true"}
SCENARIOS: list[tuple[str, dict[str, Any], str, list[str]]] = [
    # current: nothing unless the early-warning model fires, then reminders (and agents for high risk)
    ("current, no signals", {"days_past_due": 0}, "current", []),
    ("current, paid early", {"days_past_due": -7}, "current", []),
    ("current, spending drop", {"days_past_due": 0, "spending_change": "-0.5"}, "current", ["app_push", "sms", "ivr"]),
    ("current, spending just above", {"days_past_due": 0, "spending_change": "-0.49"}, "current", []),
    ("current, failed payments", {"days_past_due": 0, "failed_payments": 2}, "current", ["app_push", "sms", "ivr"]),
    ("current, one failed payment", {"days_past_due": 0, "failed_payments": 1}, "current", []),
    ("current, spending_drop flag", {"days_past_due": 0, "flags": "spending_drop"}, "current",
     ["app_push", "sms", "ivr"]),
    ("current, unreachable flag", {"days_past_due": 0, "flags": "contact_unreachable"}, "current",
     ["app_push", "sms", "ivr"]),
    ("current, risk 0.6", {"days_past_due": 0, "risk_score": "0.6"}, "current", ["app_push", "sms", "ivr"]),
    ("current, risk 0.59", {"days_past_due": 0, "risk_score": "0.59"}, "current", []),
    # warned and in the high-risk tier (risk_score >= 0.7): an early agent call first
    ("current, high risk", {"days_past_due": 0, "risk_score": "0.95"}, "current",
     ["agent_call", "app_push", "sms", "ivr"]),
    ("current, risk 0.7", {"days_past_due": 0, "risk_score": "0.7"}, "current",
     ["agent_call", "app_push", "sms", "ivr"]),
    ("current, high risk by broken promises only", {"days_past_due": 0, "failed_payments": 2,
                                                    "broken_promises": 2}, "current", ["app_push", "sms", "ivr"]),
    ("current, broken promises unwarned", {"days_past_due": 0, "broken_promises": 2}, "current", []),
    # M0: remind and guide; agents only for high risk, and then first
    ("M0 low risk", {"days_past_due": 15}, "M0", ["app_push", "sms", "email", "ivr"]),
    ("M0 risk 0.69", {"days_past_due": 15, "risk_score": "0.69"}, "M0", ["app_push", "sms", "email", "ivr"]),
    ("M0 high risk", {"days_past_due": 15, "risk_score": "0.7"}, "M0",
     ["agent_call", "app_push", "sms", "email", "ivr"]),
    ("M0 broken promises", {"days_past_due": 15, "broken_promises": 2}, "M0",
     ["agent_call", "app_push", "sms", "email", "ivr"]),
    ("M0 hardship gets no offer yet", {"days_past_due": 15, **HARDSHIP}, "M0", ["app_push", "sms", "email", "ivr"]),
    # M1: agents call; offers only for hardship with willingness to pay
    ("M1", {"days_past_due": 45}, "M1", ["agent_call", "sms", "app_push", "email"]),
    ("M1 hardship", {"days_past_due": 45, **HARDSHIP}, "M1",
     ["agent_call", "sms", "app_push", "offer_installment", "offer_extension", "email"]),
    ("M1 hardship reported", {"days_past_due": 45, "flags": "hardship_reported"}, "M1",
     ["agent_call", "sms", "app_push", "offer_installment", "offer_extension", "email"]),
    ("M1 unstable income", {"days_past_due": 45, "income_stability": "unstable"}, "M1",
     ["agent_call", "sms", "app_push", "offer_installment", "offer_extension", "email"]),
    ("M1 debt to income 0.6", {"days_past_due": 45, "debt_to_income": "0.6"}, "M1",
     ["agent_call", "sms", "app_push", "offer_installment", "offer_extension", "email"]),
    ("M1 debt to income 0.59", {"days_past_due": 45, "debt_to_income": "0.59"}, "M1",
     ["agent_call", "sms", "app_push", "email"]),
    ("M1 hardship, low willingness", {"days_past_due": 45, "past_delinquencies": 3, **HARDSHIP}, "M1",
     ["agent_call", "sms", "app_push", "email"]),
    ("M1 hardship, changed contacts", {"days_past_due": 45, "contact_changes_90d": 2, **HARDSHIP}, "M1",
     ["agent_call", "sms", "app_push", "email"]),
    ("M1 high risk", {"days_past_due": 45, "risk_score": "0.9"}, "M1", ["agent_call", "sms", "app_push", "email"]),
    # M2: senior agents
    ("M2", {"days_past_due": 75}, "M2", ["senior_agent_call", "sms", "app_push", "email"]),
    ("M2 hardship", {"days_past_due": 75, **HARDSHIP}, "M2",
     ["senior_agent_call", "offer_installment", "sms", "app_push", "email"]),
    ("M2 hardship, low willingness", {"days_past_due": 75, "past_delinquencies": 5, **HARDSHIP}, "M2",
     ["senior_agent_call", "offer_installment", "sms", "app_push", "email"]),
    ("M2 debtor unreachable", {"days_past_due": 75, "debtor_unreachable": "true"}, "M2",
     ["senior_agent_call", "sms", "app_push", "email", "emergency_contact_locate"]),
    ("M1 debtor unreachable: no emergency contact yet", {"days_past_due": 45, "debtor_unreachable": "true"}, "M1",
     ["agent_call", "sms", "app_push", "email"]),
    ("current, debtor unreachable", {"days_past_due": 0, "debtor_unreachable": "true"}, "current",
     ["app_push", "sms", "ivr"]),
    # M3plus: escalation thresholds on the balance
    ("M3plus debtor unreachable", {"days_past_due": 120, "balance": "100", "debtor_unreachable": "true"}, "M3plus",
     ["senior_agent_call", "sms", "emergency_contact_locate"]),
    ("M3plus ¥0", {"days_past_due": 120, "balance": "0"}, "M3plus", ["senior_agent_call", "sms"]),
    ("M3plus ¥499.99", {"days_past_due": 120, "balance": "499.99"}, "M3plus", ["senior_agent_call", "sms"]),
    ("M3plus ¥500", {"days_past_due": 120, "balance": "500"}, "M3plus",
     ["senior_agent_call", "agency_referral", "sms"]),
    ("M3plus ¥500.00", {"days_past_due": 120, "balance": "500.00"}, "M3plus",
     ["senior_agent_call", "agency_referral", "sms"]),
    ("M3plus ¥4999.99", {"days_past_due": 120, "balance": "4999.99"}, "M3plus",
     ["senior_agent_call", "agency_referral", "sms"]),
    ("M3plus ¥5000", {"days_past_due": 120, "balance": "5000"}, "M3plus",
     ["senior_agent_call", "legal_review", "agency_referral", "sms"]),
    ("M3plus ¥5000.001", {"days_past_due": 120, "balance": "5000.001"}, "M3plus",
     ["senior_agent_call", "legal_review", "agency_referral", "sms"]),
    ("M3plus hardship ¥6000", {"days_past_due": 120, "balance": "6000", **HARDSHIP}, "M3plus",
     ["senior_agent_call", "legal_review", "agency_referral", "offer_installment", "sms"]),
]


@pytest.mark.parametrize("fields, stage, allowed", [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_stage_and_allowed_actions(policy: Policy, fields: dict[str, Any], stage: str, allowed: list[str]) -> None:
    decision = decide(policy, **fields)
    assert decision.stage == stage
    assert list(decision.allowed) == allowed
    assert decision.next_action == (allowed[0] if allowed else None)
    for action in policy.actions:
        if action not in allowed:
            assert decision.reasons(action), f"{action} is neither allowed nor blocked"


BOUNDARIES = [(-1, "current"), (0, "current"), (1, "M0"), (30, "M0"), (31, "M1"), (60, "M1"), (61, "M2"),
              (90, "M2"), (91, "M3plus"), (3650, "M3plus")]


@pytest.mark.parametrize("days, stage", BOUNDARIES)
def test_stage_boundaries(policy: Policy, days: int, stage: str) -> None:
    assert decide(policy, days_past_due=days).stage == stage


def test_an_action_outside_its_stage_cites_the_stage_line(policy: Policy) -> None:
    decision = decide(policy, days_past_due=15)
    (entry,) = decision.reasons("senior_agent_call")
    assert entry.kind == "not_allowed" and entry.until is None
    assert entry.rule.location == rule_at("M0       1 .. 30")
    (entry,) = decision.reasons("agent_call")
    assert entry.kind == "not_allowed"
    assert entry.rule.location == rule_at("allow agent_call when high_risk")
    assert "high_risk" in entry.reason


def test_segments_are_reported_in_declaration_order(policy: Policy) -> None:
    decision = decide(policy, days_past_due=45, risk_score="0.9", flags="contact_unreachable",
                      income_stability="unstable", past_delinquencies=4)
    declared = re.findall(r"^segment (\w+)", TEXT, re.M)
    assert list(decision.segments) == [name for name in declared if name in decision.segments]
    assert {"early_warning", "high_risk", "weak_ability", "low_willingness", "financial_hardship"} <= set(
        decision.segments)


# ------------------------------------------------------------ forbids


@pytest.mark.parametrize("days, balance", [(0, "10"), (15, "1000"), (45, "1000"), (120, "60000")])
def test_deceased_blocks_everything_citing_the_rule(policy: Policy, days: int, balance: str) -> None:
    decision = decide(policy, days_past_due=days, balance=balance, flags="deceased", risk_score="0.9", **HARDSHIP)
    assert decision.allowed == () and decision.next_action is None
    rule = rule_at('"deceased" in flags')
    for action in policy.actions:
        forbidding = [entry for entry in decision.reasons(action) if entry.kind == "forbidden"]
        assert any(entry.rule.location == rule for entry in forbidding), action
        assert decision.until(action) is None, "time alone never lifts a forbid"
    entry = next(entry for entry in decision.blocked if entry.rule.location == rule)
    assert "debtor deceased: hand the account to the estate team" in entry.reason
    assert entry.to_dict()["rule"] == rule


def test_bankruptcy_blocks_everything(policy: Policy) -> None:
    decision = decide(policy, days_past_due=120, balance="60000", flags="bankruptcy;vip")
    assert decision.allowed == ()
    rule = rule_at('"bankruptcy" in flags')
    for action in policy.actions:
        assert any(entry.rule.location == rule for entry in decision.reasons(action)), action
    assert "bankruptcy proceedings" in decision.reasons("legal_review")[-1].reason


@pytest.mark.parametrize("flag, fields, allowed, forbidden", [
    ("cease_contact", {"days_past_due": 120, "balance": "6000", **HARDSHIP},
     ["legal_review", "agency_referral", "offer_installment"], ["senior_agent_call", "sms"]),
    ("cease_contact", {"days_past_due": 45, **HARDSHIP}, ["offer_installment", "offer_extension"],
     ["agent_call", "sms", "app_push", "email"]),
    ("complaint_open", {"days_past_due": 45}, ["sms", "app_push", "email"], ["agent_call"]),
    ("complaint_open", {"days_past_due": 120, "balance": "6000"}, ["sms"],
     ["senior_agent_call", "legal_review", "agency_referral"]),
    ("dispute_pending", {"days_past_due": 120, "balance": "6000"}, ["senior_agent_call", "sms"],
     ["legal_review", "agency_referral"]),
    ("vulnerable", {"days_past_due": 15}, ["app_push", "sms", "email"], ["ivr"]),
    ("vulnerable", {"days_past_due": 0, "risk_score": "0.8"}, ["agent_call", "app_push", "sms"], ["ivr"]),
    ("vulnerable", {"days_past_due": 120, "balance": "6000"}, ["senior_agent_call", "sms"],
     ["legal_review", "agency_referral"]),
])
def test_flags_forbid_their_actions(policy: Policy, flag: str, fields: dict[str, Any], allowed: list[str],
                                    forbidden: list[str]) -> None:
    decision = decide(policy, flags=f"{flag};other", **fields)
    assert list(decision.allowed) == allowed
    rule = rule_at(f'"{flag}" in flags')
    for action in forbidden:
        entries = [entry for entry in decision.reasons(action) if entry.rule.location == rule]
        assert entries and entries[0].kind == "forbidden", action
        assert decision.until(action) is None


# ------------------------------------------------------------ caps and quiet periods


def test_a_second_sms_the_same_local_day_is_blocked_in_m0(policy: Policy) -> None:
    decision = decide(policy, history=(("sms", "2025-06-04T09:00:00+08:00", "delivered"),))
    assert list(decision.allowed) == ["app_push", "email", "ivr"]
    (entry,) = decision.reasons("sms")
    assert entry.kind == "limit"
    assert entry.rule.location == rule_at("limit sms 1 per day")
    assert "at most one SMS a day" in entry.reason
    assert decision.until("sms") is not None
    # the cap frees at the next local day (00:00 Shanghai at the earliest)
    assert decision.until("sms") >= dt.datetime(2025, 6, 5, tzinfo=SHANGHAI)


def test_a_capped_sms_frees_when_the_next_local_days_window_opens(policy: Policy) -> None:
    decision = decide(policy, history=(("sms", "2025-06-04T09:00:00+08:00", "delivered"),))
    assert utc(decision.until("sms")) == "2025-06-05T00:00:00Z"  # 08:00 on Thursday in Shanghai


def test_the_sms_cap_counts_shanghai_days_not_utc_days(policy: Policy) -> None:
    # 00:30 on Wednesday in Shanghai is still Tuesday in UTC: it counts today
    early = decide(policy, history=(("sms", "2025-06-04T00:30:00+08:00", "delivered"),))
    assert "sms" not in early.allowed
    # 23:30 on Tuesday in Shanghai is less than 24 hours ago but yesterday
    late = decide(policy, history=(("sms", "2025-06-03T23:30:00+08:00", "delivered"),))
    assert "sms" in late.allowed


def test_the_message_cap_spans_channels(policy: Policy) -> None:
    history = (("sms", "2025-06-04T08:10:00+08:00", "delivered"), ("app_push", "2025-06-04T09:10:00+08:00", "sent"))
    decision = decide(policy, days_past_due=45, history=history)
    assert list(decision.allowed) == ["agent_call"]
    rule = rule_at("limit message 2 per day")
    for action in MESSAGES:
        assert any(entry.rule.location == rule and entry.kind == "limit" for entry in decision.reasons(action))


def test_ivr_at_most_twice_a_week_in_m0(policy: Policy) -> None:
    history = (("ivr", "2025-06-01T11:00:00+08:00", "no_answer"), ("ivr", "2025-06-03T11:00:00+08:00", "no_answer"))
    decision = decide(policy, history=history)
    assert "ivr" not in decision.allowed
    assert any(entry.rule.location == rule_at("limit ivr 2 per 7 days") for entry in decision.reasons("ivr"))
    assert decision.until("ivr") >= dt.datetime(2025, 6, 8, tzinfo=SHANGHAI)  # 7 local days from June 1st
    older = (("ivr", "2025-05-28T11:00:00+08:00", "no_answer"), ("ivr", "2025-06-03T11:00:00+08:00", "no_answer"))
    assert "ivr" in decide(policy, history=older).allowed


def test_connected_calls_are_capped_but_unconnected_attempts_are_not(policy: Policy) -> None:
    connected = tuple(("agent_call", f"2025-06-04T0{hour}:00:00+08:00", "conversation") for hour in (7, 8, 9))
    decision = decide(policy, days_past_due=45, history=connected)
    assert "agent_call" not in decision.allowed
    assert any(entry.rule.location == rule_at("limit human_call 3 per day") for entry in decision.reasons("agent_call"))
    attempts = tuple(("agent_call", f"2025-06-04T0{hour}:00:00+08:00", "not_connected") for hour in (7, 8, 9))
    assert decide(policy, days_past_due=45, history=attempts).next_action == "agent_call"


PROMISE = (("agent_call", "2025-06-03T10:00:00+08:00", "promise_to_pay"),)


def test_quiet_after_a_promise_to_pay(policy: Policy) -> None:
    decision = decide(policy, days_past_due=45, history=PROMISE)
    assert list(decision.allowed) == ["sms", "app_push", "email"]
    (entry,) = decision.reasons("agent_call")
    assert entry.kind == "quiet"
    assert entry.rule.location == rule_at('quiet human_call, robot for 3 days after "promise_to_pay"')
    assert "three days of quiet" in entry.reason
    # three local days counted from the day of the promise: free on Friday June 6th
    assert decision.until("agent_call") >= dt.datetime(2025, 6, 6, tzinfo=SHANGHAI)
    assert decision.until("agent_call") < dt.datetime(2025, 6, 6, 12, tzinfo=SHANGHAI)
    m0 = decide(policy, days_past_due=15, history=PROMISE)
    assert "ivr" not in m0.allowed and kinds(m0, "ivr") == {"quiet"}


def test_a_promise_by_inbound_call_also_brings_quiet(policy: Policy) -> None:
    decision = decide(policy, days_past_due=75, history=(("inbound_call", "2025-06-04T09:00:00+08:00",
                                                          "promise_to_pay"),))
    assert "senior_agent_call" not in decision.allowed and kinds(decision, "senior_agent_call") == {"quiet"}


def test_quiet_ends_after_three_local_days(policy: Policy) -> None:
    decision = decide(policy, days_past_due=45, history=(("agent_call", "2025-06-01T10:00:00+08:00",
                                                          "promise_to_pay"),))
    assert decision.next_action == "agent_call"


def test_a_refusal_means_no_more_calls_that_day(policy: Policy) -> None:
    today = decide(policy, days_past_due=45, history=(("agent_call", "2025-06-04T09:00:00+08:00", "refused"),))
    assert "agent_call" not in today.allowed
    assert any(entry.rule.location == rule_at('after "refused"') for entry in today.reasons("agent_call"))
    yesterday = decide(policy, days_past_due=45, history=(("agent_call", "2025-06-03T20:00:00+08:00", "refused"),))
    assert yesterday.next_action == "agent_call"


def test_quiet_after_a_promise_ends_when_the_window_opens(policy: Policy) -> None:
    decision = decide(policy, days_past_due=45, history=PROMISE)
    assert utc(decision.until("agent_call")) == "2025-06-06T00:00:00Z"  # 08:00 on Friday in Shanghai


# ------------------------------------------------------------ contact hours in Shanghai


@pytest.mark.parametrize("local, until", [
    ("2025-06-04T03:00:00+08:00", "2025-06-04T00:00:00Z"),
    ("2025-06-04T00:00:00+08:00", "2025-06-04T00:00:00Z"),
    ("2025-06-04T07:59:59+08:00", "2025-06-04T00:00:00Z"),
    ("2025-06-04T21:00:00+08:00", "2025-06-05T00:00:00Z"),
    ("2025-06-04T23:59:00+08:00", "2025-06-05T00:00:00Z"),
])
def test_night_time_in_shanghai_blocks_contact_until_eight(policy: Policy, local: str, until: str) -> None:
    decision = decide(policy, days_past_due=45, now=at(local))
    assert decision.stage == "M1"
    for action in ("agent_call", "sms", "app_push", "email"):
        assert action not in decision.allowed
        assert "window" in kinds(decision, action), action
        assert utc(decision.until(action)) == until, action
    assert decision.to_dict()["blocked"][0]["until"] in (until, None)


@pytest.mark.parametrize("local", ["2025-06-04T08:00:00+08:00", "2025-06-04T20:59:59+08:00"])
def test_inside_contact_hours_nothing_is_blocked_by_the_window(policy: Policy, local: str) -> None:
    decision = decide(policy, days_past_due=45, now=at(local))
    assert list(decision.allowed) == ["agent_call", "sms", "app_push", "email"]


def test_a_capped_sms_at_night_frees_at_eight_the_next_day(policy: Policy) -> None:
    decision = decide(policy, now=at("2025-06-04T22:00:00+08:00"),
                      history=(("sms", "2025-06-04T09:00:00+08:00", "delivered"),))
    assert kinds(decision, "sms") >= {"window", "limit"}
    assert utc(decision.until("sms")) == "2025-06-05T00:00:00Z"


def test_the_window_is_the_baselines_and_cites_it(policy: Policy) -> None:
    assert re.search(r'^include\s+"cn_collection_baseline\.policy"', TEXT, re.M), "the seed includes the baseline"
    decision = decide(policy, days_past_due=45, now=at("2025-06-04T03:00:00+08:00"))
    (entry,) = [entry for entry in decision.reasons("agent_call") if entry.kind == "window"]
    baseline = BASELINE_PATH.read_text(encoding="utf-8").splitlines()
    (line,) = [number for number, text in enumerate(baseline, 1) if text.startswith("window ")]
    assert entry.rule.file.endswith("cn_collection_baseline.policy") and entry.rule.line == line
    assert "08:00-21:00" in entry.reason and "Asia/Shanghai" in entry.reason
    assert "art. 17" in entry.reason, "the reason carries the baseline's citation"


def test_offers_and_escalations_are_not_held_to_contact_hours(policy: Policy) -> None:
    decision = decide(policy, days_past_due=120, balance="6000", now=at("2025-06-04T03:00:00+08:00"), **HARDSHIP)
    assert list(decision.allowed) == ["legal_review", "agency_referral", "offer_installment"]


# ------------------------------------------------------------ the policy text itself


def all_rules(policy_file: n.PolicyFile) -> list[Any]:
    rules = list(policy_file.rules)
    for block in policy_file.stage_blocks:
        rules.extend(block.rules)
    return rules


def test_every_forbid_says_why() -> None:
    parsed = parse(TEXT, str(POLICY_PATH))
    forbids = [rule for rule in all_rules(parsed) if isinstance(rule, n.Forbid)]
    assert len(forbids) >= 6
    for rule in forbids:
        assert rule.reason is not None and rule.reason.because, f"line {rule.span.line}: forbid without because"
        assert rule.reason.because.strip() == rule.reason.because and len(rule.reason.because) > 10


def test_every_limit_of_a_stage_says_why() -> None:
    parsed = parse(TEXT, str(POLICY_PATH))
    for block in parsed.stage_blocks:
        for rule in block.rules:
            if isinstance(rule, n.Limit):
                assert rule.reason.because, f"line {rule.span.line}"


def test_check_strict_passes() -> None:
    result = CliRunner().invoke(main, ["check", "--strict", str(POLICY_PATH)])
    assert result.exit_code == 0, result.stderr
    assert "0 error(s), 0 warning(s)" in result.stderr
