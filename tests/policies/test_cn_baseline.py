"""Scenarios for policies/cn_collection_baseline.policy, on its own and
included by a strategy that maps its channels onto the strategy's actions.

Each scenario names its source: the China Internet Finance Association's
2018 self-regulatory convention on overdue debt collection ("Convention",
by article) or the association's 2024 post-loan collection guideline ("NIFA
2024"). Asia/Shanghai is UTC+8 all year, so 08:00 local is 00:00Z.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import policydsl
from policydsl import Contact, Decision
from policydsl.checker import check
from policydsl.loader import load_file, load_text

POLICIES = Path(__file__).resolve().parents[2] / "policies"
BASELINE = POLICIES / "cn_collection_baseline.policy"
SHANGHAI = ZoneInfo("Asia/Shanghai")
CHANNELS = ("voice", "message")
PROHIBITED = ("third_party_contact", "threaten", "insult_or_harass", "emergency_contact_disclose_debt",
              "impersonate_authority")

# A small strategy, written as if it sat next to the baseline in policies/
# (it is compiled from text; no file is written).
STRATEGY_PATH = POLICIES / "_test_strategy.policy"
STRATEGY = """
policy "cn_test_strategy" version "1"

include "cn_collection_baseline.policy" with {
    voice   = ivr, agent_call, senior_agent_call
    message = app_push, sms, email
}

account {
    id            : text
    timezone      : zone = "Asia/Shanghai"
    days_past_due : int = 0
}

actions {
    call    : ivr, agent_call, senior_agent_call
    message : app_push, sms, email
    letter
}

allow call, message, letter, emergency_contact_locate
"""
VOICE = ("ivr", "agent_call", "senior_agent_call")
MESSAGE = ("app_push", "sms", "email")


def rule_at(snippet: str) -> str:
    """`file:line` of the one baseline rule whose line starts with `snippet`."""
    lines = BASELINE.read_text(encoding="utf-8").splitlines()
    hits = [number for number, line in enumerate(lines, 1) if line.lstrip().startswith(snippet)]
    assert len(hits) == 1, f"{snippet!r} starts {len(hits)} lines"
    return f"{BASELINE.name}:{hits[0]}"  # decisions cite files relative to the policy's directory


WINDOW = rule_at("window voice, message, emergency_contact_locate 08:00-21:00")
VOICE_CAP = rule_at("limit voice 3 per day")
LOCATE_ONLY = rule_at("forbid emergency_contact_locate when not (debtor_unreachable or debtor_lost)")
FORBIDS = {
    "emergency_contact_disclose_debt": (rule_at("forbid emergency_contact_disclose_debt"), "arts. 14, 18"),
    "third_party_contact": (rule_at("forbid third_party_contact"), "art. 13"),
    "threaten": (rule_at("forbid threaten"), "art. 16"),
    "insult_or_harass": (rule_at("forbid insult_or_harass"), "arts. 16, 17"),
    "impersonate_authority": (rule_at("forbid impersonate_authority"), "PRC Criminal Law art. 279"),
}


@pytest.fixture(scope="module")
def baseline() -> policydsl.Policy:
    return policydsl.load_policy(BASELINE)


@pytest.fixture(scope="module")
def strategy() -> policydsl.Policy:
    return policydsl.compile_policy(STRATEGY, str(STRATEGY_PATH))


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """An instant in Shanghai in June 2025 (4 June is a Wednesday)."""
    return dt.datetime(2025, 6, day, hour, minute, second, tzinfo=SHANGHAI)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def kinds(decision: Decision, action: str) -> dict[str, str]:
    return {entry.kind: entry.rule.location for entry in decision.reasons(action)}


def contacts(action: str, *instants: dt.datetime, outcome: str) -> list[Contact]:
    return [Contact("D1", action, instant, outcome) for instant in instants]


# ---------------------------------------------------------------- the file itself


def test_baseline_checks_clean_no_errors_no_warnings() -> None:
    _, diagnostics = check(load_file(BASELINE))
    assert diagnostics == []


def test_every_rule_has_because_and_cite_and_the_window_names_the_convention() -> None:
    model, _ = check(load_file(BASELINE))
    assert len(model.restrictions) == 9
    for rule in model.restrictions:
        assert rule.reason.because and rule.reason.cite, rule.text
    [window] = [rule for rule in model.restrictions if rule.text.startswith("window")]
    assert "China Internet Finance Association's 2018 self-regulatory convention on overdue debt collection" \
        in window.reason.because
    assert "互联网金融逾期债务催收自律公约（试行）(2018), art. 17" in window.reason.cite
    assert [str(r) for r in window.ranges] == ["08:00-21:00"]  # the contact_hours parameter


def test_standalone_allows_all_but_prohibited_conduct(baseline: policydsl.Policy) -> None:
    decision = baseline.evaluate({"id": "D1", "debtor_unreachable": "true"}, now=at(4, 12))
    assert decision.stage is None
    assert decision.allowed == ("voice", "message", "emergency_contact_locate")
    assert {entry.action for entry in decision.blocked} == set(PROHIBITED)


# ---------------------------------------------------------------- contact hours (Convention art. 17)


@pytest.mark.parametrize(
    ("local", "until"),
    [
        pytest.param((4, 7, 59, 59), "2025-06-04T00:00:00Z", id="Convention-art17-07:59:59-blocked"),
        pytest.param((4, 8, 0, 0), None, id="Convention-art17-08:00:00-allowed"),
        pytest.param((4, 20, 59, 59), None, id="Convention-art17-20:59:59-allowed"),
        pytest.param((4, 21, 0, 0), "2025-06-05T00:00:00Z", id="Convention-art17-21:00:00-blocked"),
        pytest.param((4, 23, 30, 0), "2025-06-05T00:00:00Z", id="Convention-art17-23:30-blocked"),
    ],
)
def test_contact_hours(baseline: policydsl.Policy, local: tuple[int, int, int, int], until: str | None) -> None:
    decision = baseline.evaluate({"id": "D1", "debtor_unreachable": "true"}, now=at(*local))
    for action in (*CHANNELS, "emergency_contact_locate"):
        if until is None:
            assert action in decision.allowed
        else:
            assert kinds(decision, action) == {"window": WINDOW}
            assert decision.until(action) == utc(until)
            assert "(2018), art. 17" in decision.reasons(action)[0].reason


def test_debtor_abroad_in_two_zones(baseline: policydsl.Policy) -> None:
    """Convention art. 17 for a debtor who may be in Shanghai or London
    (UTC+1 in June): 15:30 Shanghai is 08:30 London, 21:00 Shanghai closes."""
    account = {"id": "D1", "timezone": "Asia/Shanghai;Europe/London"}
    early = baseline.evaluate(account, now=at(4, 14, 59, 59))  # 07:59:59 London
    assert kinds(early, "voice") == {"window": WINDOW}
    assert early.until("voice") == utc("2025-06-04T07:00:00Z")  # 15:00 Shanghai = 08:00 London
    assert "voice" in baseline.evaluate(account, now=at(4, 15)).allowed


# ---------------------------------------------------------------- frequency (NIFA 2024, Convention art. 17)


def test_three_connected_voice_calls_today_block_voice_until_tomorrow_0800(baseline: policydsl.Policy) -> None:
    """NIFA 2024: at most 3 connected voice calls a day. After the third,
    voice is blocked until the next local day, when the window opens at
    08:00 Shanghai = 2025-06-05T00:00:00Z; messages are not capped."""
    history = contacts("voice", at(4, 9), at(4, 11), outcome="connected") \
        + contacts("voice", at(4, 14), outcome="conversation")
    decision = baseline.evaluate({"id": "D1"}, history, now=at(4, 15))
    assert kinds(decision, "voice") == {"limit": VOICE_CAP}
    assert decision.until("voice") == utc("2025-06-05T00:00:00Z")
    assert decision.reasons("voice")[0].reason.endswith("(2018), art. 17]")
    assert "message" in decision.allowed


def test_unanswered_voice_calls_are_not_counted(baseline: policydsl.Policy) -> None:
    """NIFA 2024 counts calls that get through: two connected calls and
    unanswered ones (five, under the CBA 2026 cap of six) leave room for a
    third."""
    history = contacts("voice", at(4, 9), at(4, 11), outcome="connected") \
        + contacts("voice", *(at(4, hour) for hour in range(12, 16)), outcome="no_answer") \
        + contacts("voice", at(4, 17), outcome="not_connected")
    assert "voice" in baseline.evaluate({"id": "D1"}, history, now=at(4, 18)).allowed


def test_yesterdays_calls_do_not_count_today(baseline: policydsl.Policy) -> None:
    """NIFA 2024 "per day" is the debtor's local calendar day."""
    history = contacts("voice", at(3, 18), at(3, 19), at(3, 20), outcome="connected")
    assert "voice" in baseline.evaluate({"id": "D1"}, history, now=at(4, 8)).allowed


# ---------------------------------------------------------------- third parties and conduct


@pytest.mark.parametrize("action", list(FORBIDS), ids=[f"forbidden-{a}" for a in FORBIDS])
def test_prohibited_conduct_is_always_forbidden(baseline: policydsl.Policy, action: str) -> None:
    """Convention arts. 13, 14, 16-18 (and, for impersonation, the CBA
    guideline and Criminal Law art. 279): forbidden whatever the account,
    with no `until`."""
    rule, cite = FORBIDS[action]
    decision = baseline.evaluate({"id": "D1", "debtor_unreachable": "true"}, now=at(4, 12))
    assert kinds(decision, action) == {"forbidden": rule}
    assert decision.until(action) is None
    assert cite in decision.reasons(action)[0].reason


def test_emergency_contact_only_when_the_debtor_cannot_be_reached(baseline: policydsl.Policy) -> None:
    """Convention art. 14: the pre-agreed contact person may be contacted
    only to restore contact with a debtor who cannot be reached."""
    reachable = baseline.evaluate({"id": "D1"}, now=at(4, 12))
    assert kinds(reachable, "emergency_contact_locate") == {"forbidden": LOCATE_ONLY}
    assert reachable.until("emergency_contact_locate") is None
    unreachable = baseline.evaluate({"id": "D1", "debtor_unreachable": "true"}, now=at(4, 12))
    assert "emergency_contact_locate" in unreachable.allowed
    # never to tell them about the debt (arts. 14, 18)
    assert kinds(unreachable, "emergency_contact_disclose_debt") == {
        "forbidden": FORBIDS["emergency_contact_disclose_debt"][0]}
    late = baseline.evaluate({"id": "D1", "debtor_unreachable": "true"}, now=at(4, 22))
    assert kinds(late, "emergency_contact_locate") == {"window": WINDOW}
    assert late.until("emergency_contact_locate") == utc("2025-06-05T00:00:00Z")


# ---------------------------------------------------------------- included by a strategy


def test_strategy_including_the_baseline_checks_with_only_the_expected_warnings() -> None:
    """The mapped channel names do not become actions of the strategy; the
    prohibited conduct does, and is never allowed. That is the baseline's
    intent, so it is no warning in the strategy: W201 is only for actions
    the strategy itself declares."""
    model, diagnostics = check(load_text(STRATEGY, str(STRATEGY_PATH)))
    assert not any(name in model.actions for name in CHANNELS)
    assert all(name in model.actions for name in PROHIBITED)
    assert diagnostics == []


@pytest.mark.parametrize(
    ("now", "until"),
    [
        pytest.param(at(4, 7, 59, 59), "2025-06-04T00:00:00Z", id="included-window-07:59:59-blocked"),
        pytest.param(at(4, 8), None, id="included-window-08:00-allowed"),
        pytest.param(at(4, 21), "2025-06-05T00:00:00Z", id="included-window-21:00-blocked"),
    ],
)
def test_included_window_applies_to_every_mapped_action(strategy: policydsl.Policy, now: dt.datetime,
                                                        until: str | None) -> None:
    decision = strategy.evaluate({"id": "D1"}, now=now)
    assert "letter" in decision.allowed  # not mapped, not windowed
    for action in (*VOICE, *MESSAGE):
        if until is None:
            assert action in decision.allowed
        else:
            assert kinds(decision, action) == {"window": WINDOW}  # cites the baseline file and line
            assert decision.until(action) == utc(until)
            [shown] = [entry for entry in decision.to_dict()["blocked"] if entry["action"] == action]
            assert shown["rule"] == WINDOW
            assert shown["until"] == until


def test_included_cap_counts_all_mapped_voice_actions_together(strategy: policydsl.Policy) -> None:
    """NIFA 2024: the 3 connected calls a day are per debtor, across the
    institution's channels: one each by ivr, agent_call and
    senior_agent_call block all three until tomorrow 08:00 local."""
    history = contacts("ivr", at(4, 9), outcome="connected") \
        + contacts("agent_call", at(4, 10), outcome="conversation") \
        + contacts("senior_agent_call", at(4, 11), outcome="connected")
    decision = strategy.evaluate({"id": "D1"}, history, now=at(4, 12))
    for action in VOICE:
        assert kinds(decision, action) == {"limit": VOICE_CAP}
        assert decision.until(action) == utc("2025-06-05T00:00:00Z")
    for action in (*MESSAGE, "letter"):
        assert action in decision.allowed


def test_included_forbids_carry_over(strategy: policydsl.Policy) -> None:
    """Convention arts. 13-18 bind the strategy: the conduct stays forbidden
    (and not allowed by the strategy), emergency contact follows art. 14."""
    decision = strategy.evaluate({"id": "D1"}, now=at(4, 12))
    for action, (rule, _) in FORBIDS.items():
        assert kinds(decision, action) == {"not_allowed": STRATEGY_PATH.name + ":2", "forbidden": rule}
    assert kinds(decision, "emergency_contact_locate") == {"forbidden": LOCATE_ONLY}
    located = strategy.evaluate({"id": "D1", "debtor_unreachable": "true"}, now=at(4, 12))
    assert "emergency_contact_locate" in located.allowed
