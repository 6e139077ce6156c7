"""Scenarios for policies/us_reg_f.policy, drawn from Regulation F's text.

Each scenario names the section it exercises. Times are built in the
consumer's local zone and `until` is compared to the second. The calendar
week used throughout is Monday 2 June 2025 .. Sunday 8 June 2025 (US daylight
time: Chicago is UTC-5, New York UTC-4, Los Angeles UTC-7).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import policydsl
from policydsl import Contact, Decision
from policydsl.checker import check
from policydsl.loader import load_file, load_text

POLICY = Path(__file__).resolve().parents[2] / "policies" / "us_reg_f.policy"
CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
ACTIONS = ("call", "sms", "email", "letter", "legal_action")
TELECOM = ("call", "sms", "email")


@pytest.fixture(scope="module")
def policy() -> policydsl.Policy:
    return policydsl.load_policy(POLICY)


def rule_at(snippet: str) -> str:
    """`file:line` of the one rule whose line starts with `snippet`."""
    lines = POLICY.read_text(encoding="utf-8").splitlines()
    hits = [number for number, line in enumerate(lines, 1) if line.lstrip().startswith(snippet)]
    assert len(hits) == 1, f"{snippet!r} starts {len(hits)} lines"
    return f"{POLICY.name}:{hits[0]}"  # decisions cite files relative to the policy's directory


WINDOW = rule_at("window call, sms, email 08:00-21:00")
SEVEN_IN_SEVEN = rule_at("limit call 7 per 7 days")
AFTER_CONVERSATION = rule_at('quiet call for 7 days after "conversation"')
OPTED_OUT = rule_at("forbid call, sms, email, letter when action in opted_out")
CEASE = rule_at('forbid call, sms, email when "cease_communication"')
ATTORNEY = rule_at('forbid call, sms, email, letter when "attorney_represented"')
DISPUTE = rule_at('forbid all when "dispute_pending"')
TIME_BARRED = rule_at('forbid legal_action when "time_barred"')
BANKRUPTCY = rule_at('forbid all when "bankruptcy"')
DECEASED = rule_at('forbid all when "deceased"')


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=zone)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def account(**values: str) -> dict[str, str]:
    return {"id": "C1", "timezone": "America/Chicago", **values}


def calls(*instants: dt.datetime, outcome: str = "no_answer", action: str = "call") -> list[Contact]:
    return [Contact("C1", action, instant, outcome) for instant in instants]


def kinds(decision: Decision, action: str) -> dict[str, str]:
    """kind -> rule location of every reason `action` is blocked."""
    return {entry.kind: entry.rule.location for entry in decision.reasons(action)}


def assert_allowed(decision: Decision, *actions: str) -> None:
    assert decision.error is None
    for action in actions:
        assert action in decision.allowed, decision.reasons(action)


# ---------------------------------------------------------------- the files themselves


def test_policy_checks_clean_no_errors_no_warnings() -> None:
    _, diagnostics = check(load_file(POLICY))
    assert diagnostics == []


def test_every_rule_has_because_and_cite() -> None:
    """Every restriction says why and cites Regulation F (the bankruptcy rule
    cites the automatic stay, which is outside part 1006)."""
    model, _ = check(load_file(POLICY))
    assert len(model.restrictions) == 10
    for rule in model.restrictions:
        assert rule.reason.because, rule.text
        assert rule.reason.cite, rule.text
        assert rule.reason.cite.startswith(("12 CFR 1006.", "11 U.S.C. 362")), rule.reason.cite


def test_standalone_allows_everything_and_has_no_stage(policy: policydsl.Policy) -> None:
    decision = policy.evaluate(account(), now=at(CHICAGO, 2025, 6, 4, 12))
    assert decision.stage is None
    assert decision.allowed == ACTIONS
    assert decision.blocked == ()


# ---------------------------------------------------------------- 1006.6(b)(1)(i): time of day


@pytest.mark.parametrize(
    ("local", "until"),
    [
        pytest.param((7, 59, 59), "2025-06-04T13:00:00Z", id="1006.6(b)(1)(i)-07:59:59-blocked"),
        pytest.param((8, 0, 0), None, id="1006.6(b)(1)(i)-08:00:00-allowed"),
        pytest.param((20, 59, 59), None, id="1006.6(b)(1)(i)-20:59:59-allowed"),
        pytest.param((21, 0, 0), "2025-06-05T13:00:00Z", id="1006.6(b)(1)(i)-21:00:00-blocked"),
        pytest.param((23, 30, 0), "2025-06-05T13:00:00Z", id="1006.6(b)(1)(i)-23:30-blocked"),
    ],
)
def test_window_edges(policy: policydsl.Policy, local: tuple[int, int, int], until: str | None) -> None:
    """Before 8:00 a.m. and from 9:00 p.m. local time is inconvenient; 08:00
    itself is allowed, the end is exclusive."""
    decision = policy.evaluate(account(), now=at(CHICAGO, 2025, 6, 4, *local))
    assert_allowed(decision, "letter", "legal_action")  # letters are not time-restricted in this model
    for action in TELECOM:
        if until is None:
            assert action in decision.allowed
        else:
            assert kinds(decision, action) == {"window": WINDOW}
            assert decision.until(action) == utc(until)
            assert "[12 CFR 1006.6(b)(1)(i)]" in decision.reasons(action)[0].reason
    if until is not None:
        assert decision.to_dict()["blocked"][0] == {
            "action": "call",
            "kind": "window",
            "reason": decision.reasons("call")[0].reason,
            "rule": WINDOW,
            "rule_id": decision.reasons("call")[0].rule.id,
            "until": until,
        }


def test_window_on_the_spring_forward_day(policy: policydsl.Policy) -> None:
    """1006.6(b)(1)(i): on 9 March 2025 Chicago moves to UTC-5 at 02:00; 08:00
    local that day is 13:00Z, not 14:00Z."""
    decision = policy.evaluate(account(), now=at(CHICAGO, 2025, 3, 9, 1, 30))
    assert decision.until("call") == utc("2025-03-09T13:00:00Z")


@pytest.mark.parametrize(
    ("now", "until", "outside"),
    [
        pytest.param(at(NEW_YORK, 2025, 6, 4, 9, 0), "2025-06-04T15:00:00Z", "America/Los_Angeles",
                     id="1006.6(b)(1)(i)-two-zones-09:00-New-York-is-06:00-Los-Angeles"),
        pytest.param(at(NEW_YORK, 2025, 6, 4, 11, 0), None, None,
                     id="1006.6(b)(1)(i)-two-zones-11:00-New-York-is-08:00-Los-Angeles"),
        pytest.param(at(LOS_ANGELES, 2025, 6, 4, 17, 59, 59), None, None,
                     id="1006.6(b)(1)(i)-two-zones-17:59:59-Los-Angeles-is-20:59:59-New-York"),
        pytest.param(at(LOS_ANGELES, 2025, 6, 4, 18, 0), "2025-06-05T15:00:00Z", "America/New_York",
                     id="1006.6(b)(1)(i)-two-zones-18:00-Los-Angeles-is-21:00-New-York"),
        pytest.param(at(LOS_ANGELES, 2025, 6, 4, 23, 30), "2025-06-05T15:00:00Z", "America/New_York",
                     id="1006.6(b)(1)(i)-two-zones-23:30-Los-Angeles-outside-in-both"),
    ],
)
def test_consumer_in_two_zones(policy: policydsl.Policy, now: dt.datetime, until: str | None,
                               outside: str | None) -> None:
    """Conflicting location information: contact only when it is convenient
    in every candidate zone, i.e. 08:00 Los Angeles .. 21:00 New York; the
    next opening is 08:00 Los Angeles = 11:00 New York = 15:00Z."""
    decision = policy.evaluate(account(timezone="America/New_York;America/Los_Angeles"), now=now)
    if until is None:
        assert_allowed(decision, *TELECOM)
        return
    assert kinds(decision, "call") == {"window": WINDOW}
    assert decision.until("call") == utc(until)
    assert f"in {outside}" in decision.reasons("call")[0].reason


@pytest.mark.parametrize(
    ("now", "until"),
    [
        pytest.param(at(NEW_YORK, 2025, 1, 15, 12, 59, 59), "2025-01-15T18:00:00Z",
                     id="1006.6(b)(1)(i)-no-zone-winter-12:59:59-Eastern-is-07:59:59-Honolulu"),
        pytest.param(at(NEW_YORK, 2025, 1, 15, 13, 0), None,
                     id="1006.6(b)(1)(i)-no-zone-winter-13:00-Eastern-allowed"),
        pytest.param(at(NEW_YORK, 2025, 1, 15, 20, 59, 59), None,
                     id="1006.6(b)(1)(i)-no-zone-winter-20:59:59-Eastern-allowed"),
        pytest.param(at(NEW_YORK, 2025, 1, 15, 21, 0), "2025-01-16T18:00:00Z",
                     id="1006.6(b)(1)(i)-no-zone-winter-21:00-Eastern-blocked"),
        pytest.param(at(NEW_YORK, 2025, 6, 4, 13, 30), "2025-06-04T18:00:00Z",
                     id="1006.6(b)(1)(i)-no-zone-summer-13:30-Eastern-blocked-until-14:00"),
    ],
)
def test_account_without_zone_gets_every_us_zone(policy: policydsl.Policy, now: dt.datetime, until: str | None) -> None:
    """The default candidate zones are those of the 50 states and DC, so an
    account with no zone is contacted only when it is 08:00-21:00 everywhere:
    08:00 Honolulu .. 21:00 New York."""
    decision = policy.evaluate({"id": "C1", "timezone": ""}, now=now)
    assert decision.error is None
    assert_allowed(decision, "letter", "legal_action")
    if until is None:
        assert_allowed(decision, *TELECOM)
    else:
        assert kinds(decision, "sms") == {"window": WINDOW}
        assert decision.until("sms") == utc(until)


# ---------------------------------------------------------------- 1006.14(b)(2)(i)(A): 7 calls in 7 days

MON, TUE, WED, THU, FRI, SAT, SUN, NEXT_MON, NEXT_TUE = range(2, 11)  # June 2025


def test_seven_calls_monday_to_sunday_block_until_next_monday_0800(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A): one call a day Monday..Sunday is 7 within 7
    consecutive days; an 8th call is presumed a violation until Monday's call
    leaves the 7-day span, i.e. from next Monday, and then the window opens
    at 08:00 local: 2025-06-09T13:00:00Z exactly."""
    history = calls(*(at(CHICAGO, 2025, 6, day, 10) for day in range(MON, SUN + 1)))
    decision = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, SUN, 10, 30))
    assert kinds(decision, "call") == {"limit": SEVEN_IN_SEVEN}
    assert decision.until("call") == utc("2025-06-09T13:00:00Z")
    assert "[12 CFR 1006.14(b)(2)(i)(A), (b)(3)]" in decision.reasons("call")[0].reason
    assert_allowed(decision, "sms", "email", "letter", "legal_action")  # the cap is on calls only
    assert decision.to_dict()["blocked"][0]["until"] == "2025-06-09T13:00:00Z"


def test_seven_calls_in_seven_days_late_sunday_window_and_cap_agree(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A) and 1006.6(b)(1)(i) at once: Sunday 22:00 both
    block, and both are lifted at the same instant, Monday 08:00 local."""
    history = calls(*(at(CHICAGO, 2025, 6, day, 10) for day in range(MON, SUN + 1)))
    decision = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, SUN, 22))
    assert kinds(decision, "call") == {"window": WINDOW, "limit": SEVEN_IN_SEVEN}
    assert decision.until("call") == utc("2025-06-09T13:00:00Z")


def test_seven_calls_free_at_next_monday_0800_exactly(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A): on next Monday the 7-day span is Tuesday..Monday,
    holding 6 calls, so the 8th call is allowed as soon as the window opens."""
    history = calls(*(at(CHICAGO, 2025, 6, day, 10) for day in range(MON, SUN + 1)))
    before = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, NEXT_MON, 7, 59, 59))
    assert kinds(before, "call") == {"window": WINDOW}
    assert before.until("call") == utc("2025-06-09T13:00:00Z")
    assert_allowed(policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, NEXT_MON, 8)), "call")


def test_the_span_rolls_an_eighth_call_on_monday_blocks_until_tuesday(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A): after a call on next Monday, Tuesday..Monday again
    holds 7 calls; the next call is allowed on next Tuesday at 08:00."""
    history = calls(*(at(CHICAGO, 2025, 6, day, 10) for day in range(MON, NEXT_MON + 1)))
    decision = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, NEXT_MON, 10, 1))
    assert kinds(decision, "call") == {"limit": SEVEN_IN_SEVEN}
    assert decision.until("call") == utc("2025-06-10T13:00:00Z")


def test_seven_calls_on_one_day_block_for_seven_days(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A): seven calls on Tuesday; any call through next
    Monday would be the 8th within 7 consecutive days."""
    history = calls(*(at(CHICAGO, 2025, 6, TUE, hour) for hour in range(9, 16)))
    decision = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, TUE, 16))
    assert kinds(decision, "call") == {"limit": SEVEN_IN_SEVEN}
    assert decision.until("call") == utc("2025-06-10T13:00:00Z")
    late = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, NEXT_MON, 20, 59, 59))
    assert kinds(late, "call") == {"limit": SEVEN_IN_SEVEN}


def test_six_calls_in_seven_days_allowed(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A): the presumption is about more than seven calls;
    after six the seventh may be placed."""
    history = calls(*(at(CHICAGO, 2025, 6, day, 10) for day in range(MON, SAT + 1)))
    assert_allowed(policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, SUN, 10)), "call")


def test_calls_not_connected_to_the_dialed_number_are_not_counted(policy: policydsl.Policy) -> None:
    """1006.14(b)(3): a call that does not connect to the dialed number does
    not count toward the 7 calls; six counted + any number not connected."""
    counted = calls(*(at(CHICAGO, 2025, 6, day, 10) for day in range(MON, SAT + 1)))
    dropped = calls(*(at(CHICAGO, 2025, 6, day, 11) for day in range(MON, SUN + 1)), outcome="not_connected")
    decision = policy.evaluate(account(), counted + dropped, now=at(CHICAGO, 2025, 6, SUN, 12))
    assert_allowed(decision, "call")
    # one more connected call makes seven that count
    decision = policy.evaluate(account(), [*counted, *dropped, *calls(at(CHICAGO, 2025, 6, SUN, 11, 30))],
                               now=at(CHICAGO, 2025, 6, SUN, 12))
    assert kinds(decision, "call") == {"limit": SEVEN_IN_SEVEN}


def test_inbound_calls_are_not_calls_placed(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A) counts calls the debt collector places: six placed
    calls and three inbound calls (no conversation) leave room for a 7th."""
    placed = calls(*(at(CHICAGO, 2025, 6, day, 10) for day in range(MON, SAT + 1)))
    inbound = calls(*(at(CHICAGO, 2025, 6, day, 15) for day in (TUE, WED, THU)), action="inbound_call",
                    outcome="voicemail")
    assert_allowed(policy.evaluate(account(), placed + inbound, now=at(CHICAGO, 2025, 6, SUN, 10)), "call")


# ---------------------------------------------------------------- 1006.14(b)(2)(i)(B): after a conversation


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(at(CHICAGO, 2025, 6, MON, 10, 20), id="1006.14(b)(2)(i)(B)-day-1-after-the-conversation"),
        pytest.param(at(CHICAGO, 2025, 6, THU, 12), id="1006.14(b)(2)(i)(B)-day-4"),
        pytest.param(at(CHICAGO, 2025, 6, SUN, 20, 59, 59), id="1006.14(b)(2)(i)(B)-day-7-last-second-of-window"),
    ],
)
def test_conversation_on_day_one_blocks_calls_through_day_seven(policy: policydsl.Policy, now: dt.datetime) -> None:
    """1006.14(b)(2)(i)(B): a telephone conversation on Monday (day 1) bars
    calls through Sunday (day 7); calls resume on day 8, Monday 08:00 local."""
    history = calls(at(CHICAGO, 2025, 6, MON, 10, 15), outcome="conversation")
    decision = policy.evaluate(account(), history, now=now)
    assert kinds(decision, "call") == {"quiet": AFTER_CONVERSATION}
    assert decision.until("call") == utc("2025-06-09T13:00:00Z")
    assert "[12 CFR 1006.14(b)(2)(i)(B)]" in decision.reasons("call")[0].reason
    assert_allowed(decision, "sms", "email", "letter", "legal_action")  # the bar is on calls only


def test_conversation_day_eight_allowed_at_0800(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(B): on day 8 only the window remains, until 08:00:00."""
    history = calls(at(CHICAGO, 2025, 6, MON, 10, 15), outcome="conversation")
    before = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, NEXT_MON, 7, 59, 59))
    assert kinds(before, "call") == {"window": WINDOW}
    assert_allowed(policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, NEXT_MON, 8)), "call")


def test_inbound_conversation_triggers_the_seven_day_bar(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(B): "having had a telephone conversation" covers a
    call the consumer placed; Wednesday evening is day 1, next Wednesday 08:00
    local (13:00Z) is the first instant a call may be placed."""
    history = calls(at(CHICAGO, 2025, 6, WED, 19, 45), action="inbound_call", outcome="conversation")
    decision = policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, FRI, 9))
    assert kinds(decision, "call") == {"quiet": AFTER_CONVERSATION}
    assert decision.until("call") == utc("2025-06-11T13:00:00Z")
    assert "inbound_call" in decision.reasons("call")[0].reason  # the reason names the triggering event


def test_inbound_call_without_conversation_does_not_bar_calls(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(B) needs a conversation; a hang-up does not count."""
    history = calls(at(CHICAGO, 2025, 6, WED, 19, 45), action="inbound_call", outcome="hangup")
    assert_allowed(policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, FRI, 9)), "call")


def test_unanswered_call_is_not_a_conversation(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(B): a placed call that reached voicemail is a call,
    not a conversation."""
    history = calls(at(CHICAGO, 2025, 6, WED, 10), outcome="voicemail")
    assert_allowed(policy.evaluate(account(), history, now=at(CHICAGO, 2025, 6, WED, 10, 5)), "call")


def test_conversation_day_counted_in_every_candidate_zone(policy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(B) with two candidate zones: a conversation at 01:00
    Tuesday New York time is still Monday 22:00 in Los Angeles. Day 1 is
    Tuesday in New York, so the bar lasts through next Monday there; the call
    may be placed next Tuesday once it is 08:00 in Los Angeles (11:00 New York):
    2025-06-10T15:00:00Z."""
    history = calls(at(NEW_YORK, 2025, 6, TUE, 1, 0), action="inbound_call", outcome="conversation")
    two_zones = account(timezone="America/New_York;America/Los_Angeles")
    # next Monday noon New York: day 8 in Los Angeles, but day 7 in New York
    decision = policy.evaluate(two_zones, history, now=at(NEW_YORK, 2025, 6, NEXT_MON, 12))
    assert kinds(decision, "call") == {"quiet": AFTER_CONVERSATION}
    assert decision.until("call") == utc("2025-06-10T15:00:00Z")
    after = policy.evaluate(two_zones, history, now=utc("2025-06-10T15:00:00Z"))
    assert_allowed(after, "call")


# ---------------------------------------------------------------- 1006.14(h): media the consumer opted out of


def test_opted_out_sms_is_forbidden(policy: policydsl.Policy) -> None:
    """1006.14(h)(1): the consumer asked us not to text; sms is forbidden (no
    `until`: time does not lift it) and the other media stay available."""
    decision = policy.evaluate(account(opted_out="sms"), now=at(CHICAGO, 2025, 6, WED, 12))
    assert kinds(decision, "sms") == {"forbidden": OPTED_OUT}
    assert decision.until("sms") is None
    assert decision.reasons("sms")[0].reason.endswith(
        "the consumer asked us not to use this medium of communication [12 CFR 1006.14(h)(1)]")
    assert_allowed(decision, "call", "email", "letter", "legal_action")


def test_opted_out_several_media_and_outside_the_window(policy: policydsl.Policy) -> None:
    """1006.14(h)(1) with 1006.6(b)(1)(i): at 22:00 the opted-out call is
    forbidden and outside the window; a forbid means no `until` at all."""
    decision = policy.evaluate(account(opted_out="call;letter"), now=at(CHICAGO, 2025, 6, WED, 22))
    assert kinds(decision, "call") == {"forbidden": OPTED_OUT, "window": WINDOW}
    assert decision.until("call") is None
    assert kinds(decision, "letter") == {"forbidden": OPTED_OUT}
    assert decision.until("sms") == utc("2025-06-05T13:00:00Z")
    assert_allowed(decision, "legal_action")


# ---------------------------------------------------------------- account flags

FLAG_CASES = [
    pytest.param("cease_communication", TELECOM, CEASE, "12 CFR 1006.6(c)(1)", id="1006.6(c)-cease-communication"),
    pytest.param("attorney_represented", ("call", "sms", "email", "letter"), ATTORNEY, "12 CFR 1006.6(b)(2)",
                 id="1006.6(b)(2)-attorney-represented"),
    pytest.param("dispute_pending", ACTIONS, DISPUTE, "12 CFR 1006.38(d)(2)", id="1006.38(d)(2)-dispute-pending"),
    pytest.param("time_barred", ("legal_action",), TIME_BARRED, "12 CFR 1006.26(b)", id="1006.26(b)-time-barred"),
    pytest.param("bankruptcy", ACTIONS, BANKRUPTCY, "11 U.S.C. 362(a)(6)", id="11-USC-362-bankruptcy-stay"),
    pytest.param("deceased", ACTIONS, DECEASED, "12 CFR 1006.2(e), 1006.6(a)(4)", id="1006.6(a)(4)-deceased"),
]


@pytest.mark.parametrize(("flag", "blocked", "rule", "cite"), FLAG_CASES)
def test_flag_blocks_exactly_its_actions(policy: policydsl.Policy, flag: str, blocked: tuple[str, ...],
                                         rule: str, cite: str) -> None:
    decision = policy.evaluate(account(flags=flag), now=at(CHICAGO, 2025, 6, WED, 12))
    for action in ACTIONS:
        if action in blocked:
            assert kinds(decision, action) == {"forbidden": rule}
            assert decision.until(action) is None
            assert decision.reasons(action)[0].reason.endswith(f"[{cite}]")
        else:
            assert action in decision.allowed, (flag, action, decision.reasons(action))


def test_flags_combine_and_every_reason_is_listed(policy: policydsl.Policy) -> None:
    """1006.6(c) and 1006.26(b) together: each blocked action lists each rule."""
    decision = policy.evaluate(account(flags="cease_communication;time_barred"), now=at(CHICAGO, 2025, 6, WED, 12))
    assert decision.allowed == ("letter",)
    assert kinds(decision, "call") == {"forbidden": CEASE}
    assert kinds(decision, "legal_action") == {"forbidden": TIME_BARRED}


def test_unknown_flag_changes_nothing(policy: policydsl.Policy) -> None:
    decision = policy.evaluate(account(flags="vip"), now=at(CHICAGO, 2025, 6, WED, 12))
    assert decision.allowed == ACTIONS


def test_bad_zone_is_an_error_decision_not_a_guess(policy: policydsl.Policy) -> None:
    decision = policy.evaluate(account(timezone="Mars/Olympus"), now=at(CHICAGO, 2025, 6, WED, 12))
    assert decision.error is not None and "timezone" in decision.error
    assert decision.allowed == ()


# ---------------------------------------------------------------- included by a strategy

STRATEGY_PATH = POLICY.with_name("_test_us_strategy.policy")  # compiled from text, never written
STRATEGY = """
policy "us_test_strategy" version "1"
include "us_reg_f.policy" with { call = agent_call, ivr  sms = text }
account { id : text  timezone : zone }
actions { agent_call, ivr, text }
allow all
"""


@pytest.fixture(scope="module")
def strategy() -> policydsl.Policy:
    return policydsl.compile_policy(STRATEGY, str(STRATEGY_PATH))


def test_strategy_including_with_a_mapping_checks_clean() -> None:
    model, diagnostics = check(load_text(STRATEGY, str(STRATEGY_PATH)))
    assert diagnostics == []
    assert model.actions == ["email", "letter", "legal_action", "agent_call", "ivr", "text"]


def test_included_window_applies_to_mapped_actions(strategy: policydsl.Policy) -> None:
    """1006.6(b)(1)(i) carried into a strategy: its mapped actions are held to
    the window, which is cited at its line in us_reg_f.policy."""
    decision = strategy.evaluate({"id": "C1", "timezone": "America/Chicago"}, now=at(CHICAGO, 2025, 6, 4, 21))
    for action in ("agent_call", "ivr", "text", "email"):
        assert kinds(decision, action) == {"window": WINDOW}
        assert decision.until(action) == utc("2025-06-05T13:00:00Z")
    assert_allowed(decision, "letter", "legal_action")


def test_included_call_rules_count_every_action_mapped_from_call(strategy: policydsl.Policy) -> None:
    """1006.14(b)(2)(i)(A) and (B) carried into a strategy: agent and IVR
    calls are all telephone calls; together they make the 7, and an inbound
    conversation bars both."""
    history = [Contact("C1", "agent_call" if day % 2 else "ivr", at(CHICAGO, 2025, 6, day, 10), "no_answer")
               for day in range(MON, SUN + 1)]
    decision = strategy.evaluate({"id": "C1", "timezone": "America/Chicago"}, history,
                                 now=at(CHICAGO, 2025, 6, SUN, 11))
    for action in ("agent_call", "ivr"):
        assert kinds(decision, action) == {"limit": SEVEN_IN_SEVEN}
        assert decision.until(action) == utc("2025-06-09T13:00:00Z")
    assert_allowed(decision, "text", "email")
    talked = calls(at(CHICAGO, 2025, 6, MON, 10), action="inbound_call", outcome="conversation")
    decision = strategy.evaluate({"id": "C1", "timezone": "America/Chicago"}, talked, now=at(CHICAGO, 2025, 6, WED, 12))
    for action in ("agent_call", "ivr"):
        assert kinds(decision, action) == {"quiet": AFTER_CONVERSATION}


def test_included_forbids_apply_to_mapped_actions(strategy: policydsl.Policy) -> None:
    """1006.6(c) and 1006.14(h) carried into a strategy; `opted_out` holds the
    strategy's own action names."""
    account_values = {"id": "C1", "timezone": "America/Chicago"}
    ceased = strategy.evaluate({**account_values, "flags": "cease_communication"}, now=at(CHICAGO, 2025, 6, WED, 12))
    assert ceased.allowed == ("letter", "legal_action")
    assert kinds(ceased, "ivr") == {"forbidden": CEASE}
    opted = strategy.evaluate({**account_values, "opted_out": "text"}, now=at(CHICAGO, 2025, 6, WED, 12))
    assert kinds(opted, "text") == {"forbidden": OPTED_OUT}
    assert_allowed(opted, "agent_call", "ivr", "email")


# ---------------------------------------------------------------- end to end through the CLI


def test_cli_run_jsonl(tmp_path: Path) -> None:
    """`policy run` over CSV files gives the same decisions as the API
    (1006.14(b)(2)(i)(A) and 1006.14(h)(1) scenarios)."""
    pytest.importorskip("policydsl.cli")
    accounts = tmp_path / "accounts.csv"
    contacts = tmp_path / "contacts.csv"
    out = tmp_path / "decisions.jsonl"
    with accounts.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "timezone", "days_past_due", "flags", "opted_out"])
        writer.writerow(["A1", "America/Chicago", "40", "", ""])
        writer.writerow(["A2", "America/Chicago", "40", "", "sms"])
    with contacts.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "action", "at", "outcome"])
        for day in range(MON, SUN + 1):
            writer.writerow(["A1", "call", at(CHICAGO, 2025, 6, day, 10).isoformat(), "no_answer"])
    script = Path(sys.executable).with_name("policy")
    result = subprocess.run(
        [str(script), "run", str(POLICY), str(accounts), "--history", str(contacts),
         "--now", "2025-06-08T10:30:00-05:00", "--format", "jsonl", "-o", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["account_id"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    [entry] = rows["A1"]["blocked"]
    assert entry["action"] == "call"
    assert entry["rule"] == SEVEN_IN_SEVEN
    assert entry["until"] == "2025-06-09T13:00:00Z"
    assert entry["reason"].endswith("[12 CFR 1006.14(b)(2)(i)(A), (b)(3)]")
    assert [entry["action"] for entry in rows["A2"]["blocked"]] == ["sms"]
    assert rows["A2"]["blocked"][0]["rule"] == OPTED_OUT
    assert rows["A2"]["allowed"] == ["call", "email", "letter", "legal_action"]
