"""Scenarios for policies/us_state_rules.policy, drawn from the state rules'
text, and end to end through `policy run` (a real subprocess, real files).

Massachusetts, 209 CMR 18.16(1)(d): at most two calls or texts initiated by
the collector in each seven-day period, per debt; a call that reaches
voicemail counts with or without a message (Armata v. Target Corp., 480 Mass.
14 (2018)); a call that did not connect, an inbound call and an email do not.
The week is Monday 2 June .. Sunday 8 June 2025; Boston is UTC-4 then.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import policydsl
from policydsl import Contact, ReferencePolicy
from policydsl.checker import check
from policydsl.loader import load_file

POLICY = Path(__file__).resolve().parents[2] / "policies" / "us_state_rules.policy"
BOSTON = ZoneInfo("America/New_York")
EVERYTHING = ["call", "sms", "email", "letter", "legal_action"]


@pytest.fixture(scope="module")
def engines() -> tuple[policydsl.Policy, ReferencePolicy]:
    model, _ = check(load_file(POLICY))
    return policydsl.Policy(model), ReferencePolicy(model)


def boston(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, 6, day, hour, minute, tzinfo=BOSTON)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def decide(engines: tuple[policydsl.Policy, ReferencePolicy], state: str, history: list[tuple[str, dt.datetime, str]],
           now: dt.datetime) -> policydsl.Decision:
    account: dict[str, Any] = {"id": "C1", "timezone": "America/New_York", "state": state}
    contacts = [Contact("C1", action, at, outcome) for action, at, outcome in history]
    compiled, reference = engines
    decision = compiled.evaluate(account, contacts, now=now)
    assert decision.to_dict() == reference.evaluate(account, contacts, now=now).to_dict()
    return decision


def ma_rule() -> str:
    lines = POLICY.read_text(encoding="utf-8").splitlines()
    [line] = [number for number, text in enumerate(lines, 1) if text.startswith("limit call, sms 2 per 7 days")]
    return f"{POLICY.name}:{line}"


def test_the_policy_checks_clean_under_strict() -> None:
    _, diagnostics = check(load_file(POLICY))
    assert diagnostics == []


@pytest.mark.parametrize(("outcomes", "blocked"), [
    (("no_answer", "no_answer"), True),
    (("voicemail", "voicemail_message"), True),  # Armata: voicemail counts, with or without a message
    (("conversation_ended", "delivered"), True),
    (("not_connected", "no_answer"), False),  # a call that did not connect is no communication
    (("not_connected", "not_connected"), False),
])
def test_two_communications_in_seven_days_block_the_next_call_and_text(
        engines: tuple[policydsl.Policy, ReferencePolicy], outcomes: tuple[str, str], blocked: bool) -> None:
    history = [("call", boston(2, 10), outcomes[0]), ("call", boston(3, 10), outcomes[1])]
    decision = decide(engines, "MA", history, boston(4, 12))
    if not blocked:
        assert list(decision.allowed) == EVERYTHING
        return
    assert list(decision.allowed) == ["email", "letter", "legal_action"]
    for action in ("call", "sms"):
        [entry] = decision.reasons(action)
        assert (entry.kind, entry.rule.location) == ("limit", ma_rule())
        assert entry.until == utc("2025-06-09T12:00:00Z")  # day 8 begins; Reg F's window opens at 08:00
        assert '(applies where state == "MA")' in entry.reason


def test_texts_count_and_inbound_calls_and_emails_do_not(engines: tuple[policydsl.Policy, ReferencePolicy]) -> None:
    quiet = [("inbound_call", boston(2, 10), "no_answer"), ("email", boston(2, 11), ""),
             ("email", boston(3, 11), ""), ("sms", boston(3, 12), "delivered")]
    assert list(decide(engines, "MA", quiet, boston(4, 12)).allowed) == EVERYTHING
    texted = [*quiet, ("sms", boston(4, 9), "delivered")]
    assert list(decide(engines, "MA", texted, boston(4, 12)).allowed) == ["email", "letter", "legal_action"]


def test_the_seven_days_are_local_calendar_days_today_included(
        engines: tuple[policydsl.Policy, ReferencePolicy]) -> None:
    # 23:30 Monday in Boston is already Tuesday in UTC
    history = [("call", boston(2, 23, 30), "no_answer"), ("call", boston(4, 10), "no_answer")]
    assert decide(engines, "MA", history, boston(8, 20, 59)).until("call") == utc("2025-06-09T12:00:00Z")
    assert list(decide(engines, "MA", history, boston(9, 8)).allowed) == EVERYTHING


@pytest.mark.parametrize("state", ["NY", "", "ma"])
def test_other_states_and_an_unknown_state_get_regulation_f_only(
        engines: tuple[policydsl.Policy, ReferencePolicy], state: str) -> None:
    history = [("call", boston(2, 10), "no_answer"), ("call", boston(3, 10), "no_answer")]
    assert list(decide(engines, state, history, boston(4, 12)).allowed) == EVERYTHING


def test_the_explanation_says_the_state_condition_held(engines: tuple[policydsl.Policy, ReferencePolicy]) -> None:
    history = [("call", boston(2, 10), "no_answer"), ("sms", boston(3, 10), "delivered")]
    text = decide(engines, "MA", history, boston(4, 12)).explain()
    assert '(applies where state == "MA")' in text and 'read: state = "MA"' in text


def test_policy_run_end_to_end(tmp_path: Path) -> None:
    """Accounts and contacts CSV in, JSONL out: each account's history is its
    own debt's, and the Massachusetts cap blocks only the MA accounts."""
    accounts, contacts, out = tmp_path / "accounts.csv", tmp_path / "contacts.csv", tmp_path / "decisions.jsonl"
    rows = [("MA1", "MA"), ("MA2", "MA"), ("NY1", "NY"), ("UNK", ""), ("MA3", "MA")]
    with accounts.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "timezone", "state"])
        writer.writerows([identifier, "America/New_York", state] for identifier, state in rows)
    history = {
        "MA1": [("call", boston(2, 10), "voicemail"), ("sms", boston(5, 18), "delivered")],
        "MA2": [("call", boston(2, 10), "not_connected"), ("inbound_call", boston(5, 9), "no_answer"),
                ("email", boston(5, 10), ""), ("call", boston(6, 9), "no_answer")],
        "NY1": [("call", boston(2, 10), "voicemail"), ("sms", boston(5, 18), "delivered")],
        "UNK": [("call", boston(2, 10), "voicemail"), ("sms", boston(5, 18), "delivered")],
        "MA3": [("call", boston(7, 10), "no_answer"), ("call", boston(8, 9, 15), "voicemail_message")],
    }
    with contacts.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "action", "at", "outcome"])
        for identifier, events in history.items():
            writer.writerows([identifier, action, at.isoformat(), outcome] for action, at, outcome in events)
    script = Path(sys.executable).with_name("policy")
    result = subprocess.run(
        [str(script), "run", str(POLICY), str(accounts), "--history", str(contacts),
         "--now", "2025-06-08T10:30:00-04:00", "--format", "jsonl", "-o", str(out)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    decisions = {row["account_id"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert decisions["MA1"]["allowed"] == ["email", "letter", "legal_action"]
    assert [(e["action"], e["rule"], e["until"]) for e in decisions["MA1"]["blocked"]] == [
        ("call", ma_rule(), "2025-06-09T12:00:00Z"), ("sms", ma_rule(), "2025-06-09T12:00:00Z")]
    assert decisions["MA1"]["blocked"][0]["reason"].endswith(
        "[209 CMR 18.16(1)(d); Armata v. Target Corp., 480 Mass. 14 (2018)]")
    assert decisions["MA2"]["allowed"] == EVERYTHING  # one counted call: not_connected, inbound, email do not
    assert decisions["NY1"]["allowed"] == EVERYTHING and decisions["UNK"]["allowed"] == EVERYTHING
    # Saturday's and Sunday's calls leave the seven days at local midnight on 14 June
    assert {e["until"] for e in decisions["MA3"]["blocked"]} == {"2025-06-14T12:00:00Z"}
