"""History aggregates in expressions (count, streak, days_since_last,
hours_since_last) and the exact `until` of conditions that read time, in
both engines; the China baseline's history rules end to end through
`policy run`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from policydsl import Contact, Decision, compile_policy
from policydsl.checker import check
from policydsl.cli import main
from policydsl.formatter import format_source
from policydsl.loader import load_text
from policydsl.reference import ReferencePolicy

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICIES = Path(__file__).resolve().parents[1] / "policies"
HEAD = """\
policy "h" version "1"
account {
    id         : text
    tz         : zone = "Asia/Shanghai"
    due        : date = 2025-06-10
    dispute_at : datetime = 2025-01-01T00:00Z
    grace      : int = 3
}
actions {
    voice : call, ivr
    sms, visit, letter
}
events { inbound }
allow all
"""


def engines(rules: str) -> tuple[Any, ReferencePolicy]:
    text = HEAD + rules
    model, diagnostics = check(load_text(text, "h.policy"))
    assert not [d for d in diagnostics if d.severity == "error"], diagnostics
    return compile_policy(text, "h.policy"), ReferencePolicy(model)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """Shanghai, June 2025 (the 4th is a Wednesday)."""
    return dt.datetime(2025, 6, day, hour, minute, second, tzinfo=SHANGHAI)


def event(action: str, instant: dt.datetime, outcome: str = "") -> Contact:
    return Contact("A", action, instant, outcome)


def both(rules: str, now: dt.datetime, history: list[Contact], **account: str) -> Decision:
    """The decision, the same from both engines."""
    compiled, reference = engines(rules)
    first = compiled.evaluate({"id": "A", **account}, history, now=now)
    second = reference.evaluate({"id": "A", **account}, history, now=now)
    assert first.error is None, first.error
    assert first == second
    return first


FAILED = '{"no_answer", "not_connected"}'


# ---------------------------------------------------------------- the aggregates


def test_count_over_calendar_days_includes_today_in_the_accounts_zone() -> None:
    rules = "forbid sms when count(voice in 2 days) >= 2 because \"x\"\n"
    history = [event("call", at(3, 0, 0)), event("ivr", at(4, 23, 59))]
    assert not both(rules, at(4, 23, 59, 59), history).is_allowed("sms")
    # June 3 00:00 Shanghai leaves the two-day period at June 5 00:00 Shanghai
    decision = both(rules, at(4, 12), [*history[:1], event("call", at(4, 9))])
    assert decision.until("sms") == at(5, 0).astimezone(dt.UTC)
    assert both(rules, at(5, 0), history).is_allowed("sms")


def test_count_over_rolling_hours_and_outcome_filters() -> None:
    rules = f"forbid sms when count(call in 24 hours where outcome in {FAILED}) >= 2 because \"x\"\n"
    history = [event("call", at(3, 12), "no_answer"), event("call", at(4, 9), "not_connected"),
               event("call", at(4, 10), "conversation")]
    decision = both(rules, at(4, 11), history)
    assert decision.until("sms") == at(4, 12).astimezone(dt.UTC)
    excluded = 'forbid sms when count(call in 24 hours where outcome not in {"conversation"}) >= 2 because "x"\n'
    assert both(excluded, at(4, 11), history).until("sms") == at(4, 12).astimezone(dt.UTC)


def test_streak_counts_back_from_the_newest_event_to_the_first_that_fails_the_filter() -> None:
    rules = f"forbid letter when streak(voice where outcome in {FAILED}) < 3 because \"x\"\n"
    failed = [event("call", at(4, 9), "no_answer"), event("ivr", at(4, 10), "not_connected"),
              event("call", at(4, 11), "no_answer")]
    assert both(rules, at(4, 12), failed).is_allowed("letter")
    broken = [*failed, event("call", at(4, 11, 30), "conversation")]
    decision = both(rules, at(4, 12), broken)
    assert decision.until("letter") is None  # a streak does not change with time
    # other actions do not break it, and an event after `now` is ignored
    assert both(rules, at(4, 12), [*failed, event("sms", at(4, 11, 30), "conversation"),
                                   event("call", at(4, 13), "conversation")]).is_allowed("letter")


def test_time_since_the_last_event_is_infinite_when_there_is_none() -> None:
    rules = ('forbid visit when days_since_last(call where outcome in {"conversation"}) < 3 because "x"\n'
             "forbid letter when hours_since_last(inbound) <= 4 because \"y\"\n")
    decision = both(rules, at(4, 12), [])
    assert decision.is_allowed("visit") and decision.is_allowed("letter")
    history = [event("call", at(2, 23, 59), "conversation"), event("inbound", at(4, 9, 30))]
    decision = both(rules, at(4, 12), history)
    assert decision.until("visit") == at(5, 0).astimezone(dt.UTC)  # local calendar days
    assert decision.until("letter") == (at(4, 13, 30) + dt.timedelta(microseconds=1)).astimezone(dt.UTC)
    assert decision.to_dict()["blocked"][1]["until"] == "2025-06-04T05:30:01Z"


def test_explanations_list_the_events_an_aggregate_counted() -> None:
    rules = f"forbid letter when streak(voice where outcome in {FAILED}) >= 2 because \"x\"\n"
    history = [event("call", at(4, 9), "no_answer"), event("ivr", at(4, 10), "not_connected")]
    compiled, reference = engines(rules)
    for engine in (compiled, reference):
        text = engine.evaluate({"id": "A"}, history, now=at(4, 12)).explain()
        assert (f'read: streak(voice where outcome in {FAILED}) = 2 (ivr not_connected 2025-06-04T02:00:00Z, '
                "call no_answer 2025-06-04T01:00:00Z)") in text


# ---------------------------------------------------------------- the checker and the formatter


@pytest.mark.parametrize(("rules", "code", "message"), [
    ("forbid sms when count(cal in 1 day) > 1\n", "E102", "unknown action or group 'cal'"),
    ("forbid sms when streak(voice) > \"x\"\n", "E105", "cannot compare int with text"),
    ("forbid sms when days_since_last(voice) + today() > 1\n", "E105", "cannot compute number + date"),
    ("forbid sms when count(voice in 0 days) > 1\n", "E105", "a period must be at least 1"),
])
def test_aggregates_are_checked_with_positioned_errors(rules: str, code: str, message: str) -> None:
    _, diagnostics = check(load_text(HEAD + rules, "h.policy"))
    found = [d for d in diagnostics if d.code == code]
    assert found and message in found[0].message, diagnostics
    assert found[0].span.line == HEAD.count("\n") + 1


def test_aggregates_count_events_and_join_the_policys_outcomes() -> None:
    """An event may be counted, a group counted is named (no W302), and the
    outcomes join `Model.outcomes`."""
    rules = 'segment s when count(voice, inbound in 1 day where outcome in {"x"}) > 0\nforbid sms when s because "y"\n'
    model, diagnostics = check(load_text(HEAD + rules, "h.policy"))
    assert diagnostics == []
    assert model.outcomes == ["x"]


def test_the_formatter_prints_aggregates_in_one_spelling() -> None:
    source = HEAD + ('forbid sms when count( voice,sms in day where outcome not in {"a","b"} ) > 1 and '
                     'streak(all) >= 2 because "x"\n')
    formatted = format_source(source, "h.policy")
    assert 'count(voice, sms in 1 day where outcome not in {"a", "b"}) > 1 and streak(all) >= 2' in formatted
    assert format_source(formatted, "h.policy") == formatted


# ---------------------------------------------------------------- exact until for conditions that read time


@pytest.mark.parametrize(("rule", "now", "until"), [
    ('forbid letter when today() < due because "x"', at(4, 12), at(10, 0)),
    ('forbid letter when days_since(due) < grace because "x"', at(11, 12), at(13, 0)),
    ('forbid letter when days_until(due) > 2 because "x"', at(4, 12), at(8, 0)),
    ('forbid letter when hours_since(dispute_at) < 48 because "x"', at(4, 12), at(5, 20)),
    ('forbid letter when now < dispute_at + 2 days because "x"', at(4, 12), at(5, 20)),
    ('forbid letter when local_time() >= 20:00 or weekday() in {"sat", "sun"} because "x"', at(6, 21), at(9, 0)),
    ('forbid letter when local_time() < 09:30 because "x"', at(5, 1), at(5, 9, 30)),
    ('allow letter when days_since(due) == 2\nforbid letter when not (days_since(due) == 2) because "x"',
     at(4, 12), at(12, 0)),
])
def test_until_is_the_exact_instant_a_time_dependent_condition_lets_the_action_through(
        rule: str, now: dt.datetime, until: dt.datetime) -> None:
    decision = both(rule + "\n", now, [], dispute_at="2025-06-03T12:00:00Z")
    assert decision.until("letter") == until.astimezone(dt.UTC), decision.blocked


def test_a_time_dependent_condition_that_never_lets_go_has_no_until() -> None:
    decision = both('forbid letter when today() > due or days_since(due) > -100 because "x"\n', at(4, 12), [])
    assert decision.until("letter") is None


def test_a_date_far_ahead_is_reached_without_walking_the_days() -> None:
    decision = both('forbid letter when today() < due because "x"\n', at(4, 12), [], due="9000-01-01")
    assert decision.until("letter") == dt.datetime(8999, 12, 31, 16, tzinfo=dt.UTC)


def test_a_condition_and_a_window_together() -> None:
    """Blocked by a window at 21:00; the next morning at 08:00 a forbid on
    the hour still holds until 09:30, which is the answer."""
    rules = ('window sms 08:00-21:00 because "w"\n'
             'forbid sms when local_time() < 09:30 because "x"\n')
    decision = both(rules, at(4, 21), [])
    assert decision.until("sms") == at(5, 9, 30).astimezone(dt.UTC)


# ---------------------------------------------------------------- the China baseline through `policy run`


CN = POLICIES / "cn_collection_baseline.policy"
STRATEGY = """\
policy "cn_strategy" version "1"
include "{baseline}" with {{
    voice   = ivr, agent_call
    message = sms
}}
account {{
    id       : text
    timezone : zone = "Asia/Shanghai"
}}
actions {{
    call : ivr, agent_call
    sms
}}
allow call, sms, emergency_contact_locate
"""


def write_inputs(tmp_path: Path, contacts: list[tuple[str, str, str, str]]) -> tuple[Path, Path]:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,debtor_unreachable\nD1,false\nD2,false\nD3,true\n", encoding="utf-8")
    history = tmp_path / "contacts.csv"
    history.write_text("account_id,action,at,outcome\n" + "".join(",".join(row) + "\n" for row in contacts),
                       encoding="utf-8")
    return accounts, history


def run_jsonl(args: list[str], out: Path) -> dict[str, dict[str, Any]]:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {row["account_id"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}


def until_of(row: dict[str, Any], action: str) -> str | None:
    entries = [entry for entry in row["blocked"] if entry["action"] == action]
    assert entries, (action, row)
    assert len({entry["until"] for entry in entries}) == 1
    return entries[0]["until"]  # type: ignore[no-any-return]


CN_HISTORY = [
    # D1: three failed voice calls on 4 June, no answer after them: lost from 5 June
    ("D1", "voice", "2025-06-04T09:00:00+08:00", "no_answer"),
    ("D1", "voice", "2025-06-04T10:00:00+08:00", "not_connected"),
    ("D1", "voice", "2025-06-04T11:00:00+08:00", "no_answer"),
    # D2: six unanswered attempts on 4 June; then answered, so not lost
    *(("D2", "voice", f"2025-06-04T{hour:02d}:00:00+08:00", "no_answer") for hour in range(9, 14)),
    ("D2", "voice", "2025-06-04T14:00:00+08:00", "conversation"),
    ("D2", "voice", "2025-06-04T15:00:00+08:00", "not_connected"),
]


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_cn_history_rules_through_policy_run(tmp_path: Path, engine: str) -> None:
    accounts, history = write_inputs(tmp_path, CN_HISTORY)
    out = tmp_path / "out.jsonl"
    base = ["run", str(CN), str(accounts), "--history", str(history), "--format", "jsonl", "-o", str(out),
            "--engine", engine]
    rows = run_jsonl([*base, "--now", "2025-06-04T16:00:00+08:00"], out)
    # D1 is not lost before the local day after its third failed call begins; 08:00 is contact hours
    assert until_of(rows["D1"], "emergency_contact_locate") == "2025-06-05T00:00:00Z"
    assert rows["D1"]["segments"] == []
    # D2: six unanswered attempts (the answered one between does not count): voice waits for 08:00
    assert until_of(rows["D2"], "voice") == "2025-06-05T00:00:00Z"
    assert until_of(rows["D2"], "emergency_contact_locate") is None  # answered: not lost
    assert "emergency_contact_locate" in rows["D3"]["allowed"]  # marked unreachable
    rows = run_jsonl([*base, "--now", "2025-06-05T08:00:00+08:00"], out)
    assert rows["D1"]["segments"] == ["debtor_lost"]
    assert "emergency_contact_locate" in rows["D1"]["allowed"]
    assert "voice" in rows["D2"]["allowed"]


def test_cn_rules_reach_an_includers_mapped_actions(tmp_path: Path) -> None:
    """The baseline's `streak(voice ...)` counts what the includer maps
    `voice` to, and its 6-attempt cap covers all those actions together."""
    strategy = tmp_path / "strategy.policy"
    strategy.write_text(STRATEGY.format(baseline=CN.as_posix()), encoding="utf-8")
    accounts, history = write_inputs(tmp_path, [
        ("D1", "ivr", "2025-06-04T09:00:00+08:00", "no_answer"),
        ("D1", "agent_call", "2025-06-04T10:00:00+08:00", "not_connected"),
        ("D1", "ivr", "2025-06-04T11:00:00+08:00", "no_answer"),
        *(("D2", "agent_call", f"2025-06-04T{hour:02d}:00:00+08:00", "no_answer") for hour in range(9, 15)),
    ])
    out = tmp_path / "out.jsonl"
    args = ["run", str(strategy), str(accounts), "--history", str(history), "--format", "jsonl", "-o", str(out),
            "--now", "2025-06-04T16:00:00+08:00", "--include-path", str(POLICIES)]
    rows = run_jsonl(args, out)
    assert until_of(rows["D1"], "emergency_contact_locate") == "2025-06-05T00:00:00Z"
    assert until_of(rows["D2"], "ivr") == until_of(rows["D2"], "agent_call") == "2025-06-05T00:00:00Z"
    assert "sms" in rows["D2"]["allowed"]


def test_cn_run_as_a_real_subprocess(tmp_path: Path) -> None:
    accounts, history = write_inputs(tmp_path, CN_HISTORY)
    out = tmp_path / "out.jsonl"
    completed = subprocess.run(
        [sys.executable, "-m", "policydsl", "run", str(CN), str(accounts), "--history", str(history),
         "--now", "2025-06-04T23:59:59+08:00", "--format", "jsonl", "-o", str(out)],
        capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    rows = {row["account_id"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert until_of(rows["D1"], "emergency_contact_locate") == "2025-06-05T00:00:00Z"


# ---------------------------------------------------------------- work per account, by number of zones


def test_until_over_zones_whose_windows_never_meet_grows_linearly_with_the_zones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17 item 3: zones whose contact hours never overlap made `until`
    bounce between zones. Counted in calls of `WindowSpec.inside`, not in
    seconds: the work for 25 zones is at most about 25/4 times that for 4."""
    from policydsl import clock

    calls = 0
    original = clock.WindowSpec.inside

    def counting(self: clock.WindowSpec, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args)

    monkeypatch.setattr(clock.WindowSpec, "inside", counting)
    policy = compile_policy(HEAD + 'window sms 08:00-09:00 because "w"\n', "h.policy")
    offsets = [f"Etc/GMT{sign}{hours}" for hours in range(1, 13) for sign in "+-"] + ["UTC"]

    def work(zones: int) -> int:
        nonlocal calls
        calls = 0
        decision = policy.evaluate({"id": "A", "tz": ";".join(offsets[:zones])}, now=at(4, 12))
        assert decision.until("sms") is None
        return calls

    assert work(25) <= 25 / 4 * work(4) * 1.5
