"""`policy diff`: what a policy change does to a portfolio (policydsl.impact,
policydsl.impact_report and the command), and `--exhaustive` against a fake
policydsl.equivalence."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import policies, scenarios

from policydsl import Contact, compile_policy, load_policy
from policydsl.cli import main
from policydsl.decision import Blocked, Decision, Evidence, RuleInfo
from policydsl.equivalence import ReplayError
from policydsl.impact import (
    NEWLY_ALLOWED,
    NEWLY_BLOCKED,
    UNTIL,
    AccountChange,
    DiffSummary,
    compare_decisions,
    diff_portfolio,
)
from policydsl.io import AccountRow

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "ecommerce_consumer_loan.policy"
BASELINE = ROOT / "policies" / "cn_collection_baseline.policy"
ACCOUNTS = ROOT / "examples" / "accounts.csv"
CONTACTS = ROOT / "examples" / "contacts.csv"
NOW = "2025-06-04T02:00:00Z"
UTC = dt.UTC

SMALL = """\
policy "small" version "1"
account {
    id  : text
    dpd : int
    tz  : zone = "UTC"
}
actions { sms, call }
stages on dpd {
    early .. 0
    late  1 ..
}
stage early { allow sms }
stage late { allow sms, call }
window sms 08:00-21:00
"""


def invoke(*args: Any, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args], env=env)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def edited_copy(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of the shipped e-commerce policy with `edits` (old, new text;
    each must occur once), next to a copy of the baseline it includes."""
    directory = tmp_path / name
    directory.mkdir()
    shutil.copy(BASELINE, directory / BASELINE.name)
    text = POLICY.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return write(directory / POLICY.name, text)


STAGE_35 = (("    M0       1 .. 30 ", "    M0       1 .. 34 "), ("    M1      31 .. 60 ", "    M1      35 .. 60 "))
NO_EMAIL_IN_M1 = (("    allow offer when financial_hardship and not low_willingness\n    allow email\n",
                   "    allow offer when financial_hardship and not low_willingness\n"),)


def diff_json(old: Path, new: Path, *extra: Any, accounts: Path = ACCOUNTS) -> tuple[int, dict[str, Any]]:
    result = invoke("diff", old, new, accounts, "--history", CONTACTS, "--now", NOW, "--format", "json", *extra)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def run_decisions(policy: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """`policy run`'s JSONL decisions, by account id: the independent oracle."""
    out = tmp_path / f"{policy.parent.name}-{policy.stem}.jsonl"
    result = invoke("run", policy, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    return {decision["account_id"]: decision for decision in map(json.loads, lines)}


@pytest.fixture(scope="module")
def stage_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return edited_copy(tmp_path_factory.mktemp("diff"), "stage35", *STAGE_35)


@pytest.fixture(scope="module")
def stricter_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return edited_copy(tmp_path_factory.mktemp("diff"), "no_email", *NO_EMAIL_IN_M1)


# ------------------------------------------------------------ the acceptance test


def test_diff_reports_exactly_the_accounts_whose_stage_changes(stage_copy: Path, tmp_path: Path) -> None:
    old, new = run_decisions(POLICY, tmp_path), run_decisions(stage_copy, tmp_path)
    assert old.keys() == new.keys()
    expected = {account for account in old if old[account]["stage"] != new[account]["stage"]}
    assert expected  # the examples hold accounts 31 .. 34 days past due
    code, report = diff_json(POLICY, stage_copy)
    assert code == 0  # no --fail-on
    stage_changes = {change["account_id"] for change in report["changes"]
                     if change["stage"]["old"] != change["stage"]["new"]}
    assert stage_changes == expected
    # only the stage bounds moved: every other account decides exactly as before
    assert {change["account_id"] for change in report["changes"]} == expected
    summary = report["summary"]
    assert summary["accounts"] == len(old)
    assert summary["changed"] == summary["stage_changed"] == len(expected)
    assert summary["by_stage"] == [{"old": "M1", "new": "M0", "accounts": len(expected)}]
    for change in report["changes"]:  # and each change agrees with the two runs
        account = change["account_id"]
        assert change["allowed"] == {"old": old[account]["allowed"], "new": new[account]["allowed"]}
        assert change["stage_rule"] == {"old": "stage-M1", "new": "stage-M0"}
    # the text report names the same accounts, one line each
    text = invoke("diff", POLICY, stage_copy, ACCOUNTS, "--history", CONTACTS, "--now", NOW,
                  env={"COLUMNS": "100"}).stdout
    listed = set(re.findall(r"^(A\d{4})  stage M1 → M0", text, re.MULTILINE))
    assert listed == expected


def newly_allowed_somewhere(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> bool:
    return any(set(new[account]["allowed"]) - set(old[account]["allowed"]) for account in old)


def test_fail_on_loosened_in_both_directions(stage_copy: Path, stricter_copy: Path, tmp_path: Path) -> None:
    shipped, stricter = run_decisions(POLICY, tmp_path), run_decisions(stricter_copy, tmp_path)
    assert not newly_allowed_somewhere(shipped, stricter) and newly_allowed_somewhere(stricter, shipped)
    common = ("--history", CONTACTS, "--now", NOW, "--fail-on")
    # only an allowed action removed: not a loosening, but a change
    assert invoke("diff", POLICY, stricter_copy, ACCOUNTS, *common, "loosened").exit_code == 0
    assert invoke("diff", POLICY, stricter_copy, ACCOUNTS, *common, "any").exit_code == 1
    # the way back allows email again
    back = invoke("diff", stricter_copy, POLICY, ACCOUNTS, *common, "loosened", "--format", "json")
    assert back.exit_code == 1
    assert json.loads(back.stdout)["summary"]["by_action"][0]["action"] == "email"
    # the moved stage boundary: whichever way, exit 1 exactly when the runs show an action newly allowed
    staged = run_decisions(stage_copy, tmp_path)
    for old, new, old_runs, new_runs in ((POLICY, stage_copy, shipped, staged), (stage_copy, POLICY, staged, shipped)):
        expected = 1 if newly_allowed_somewhere(old_runs, new_runs) else 0
        assert invoke("diff", old, new, ACCOUNTS, *common, "loosened").exit_code == expected
        assert invoke("diff", old, new, ACCOUNTS, *common, "any").exit_code == 1
    # without --fail-on, changes alone never fail
    assert invoke("diff", POLICY, stage_copy, ACCOUNTS, "--history", CONTACTS, "--now", NOW).exit_code == 0


def test_a_policy_against_itself_passes_every_fail_on() -> None:
    for fail_on in ("loosened", "any"):
        result = invoke("diff", POLICY, POLICY, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "--fail-on", fail_on)
        assert result.exit_code == 0, result.output
        assert "no account changes" in result.stdout


# ------------------------------------------------------------ the reports


def test_json_schema(stage_copy: Path) -> None:
    code, report = diff_json(POLICY, stage_copy, "--fail-on", "loosened")
    assert set(report) == {"old", "new", "now", "summary", "changes", "left_out", "fail_on", "failed"}
    assert report["old"]["path"] == str(POLICY) and report["old"]["digest"].startswith("sha256:")
    assert report["old"]["digest"] != report["new"]["digest"]
    assert report["now"] == NOW and report["fail_on"] == "loosened" and report["failed"] is (code == 1)
    summary = report["summary"]
    assert set(summary) == {"accounts", "changed", "unchanged", "stage_changed", "errors", "accounts_newly_allowed",
                            "accounts_newly_blocked", "newly_allowed", "newly_blocked", "by_stage", "by_action",
                            "rules", "actions_only_in_old", "actions_only_in_new"}
    assert summary["accounts"] == summary["changed"] + summary["unchanged"]
    assert set(summary["errors"]) == {"old", "new", "changed"}
    for row in summary["by_action"]:
        assert set(row) == {"action", "newly_allowed", "newly_blocked", "until_changed"}
    for row in summary["rules"]:
        assert set(row) == {"side", "rule_id", "rule", "accounts"} and row["side"] in ("old", "new")
        assert re.fullmatch(r".+\.policy:\d+", row["rule"])
    assert {"side": "new", "rule_id": "stage-M0", "rule": "ecommerce_consumer_loan.policy:49",
            "accounts": summary["stage_changed"]} in summary["rules"]
    assert report["left_out"] == 0 and len(report["changes"]) == summary["changed"]
    for change in report["changes"]:
        assert set(change) == {"account_id", "row", "stage", "stage_rule", "next_action", "allowed", "error",
                               "actions"}
        assert isinstance(change["row"], int) and change["row"] > 0
        for action in change["actions"]:
            assert set(action) == {"action", "change", "allowed", "rules", "until", "declared"}
            assert action["change"] in (NEWLY_ALLOWED, NEWLY_BLOCKED, UNTIL)
            assert action["rules"]["new"] or action["rules"]["old"]
            for side in ("old", "new"):
                assert action["until"][side] is None or action["until"][side].endswith("Z")
    newly = sum(1 for change in report["changes"] for action in change["actions"] if action["change"] == NEWLY_ALLOWED)
    assert newly == summary["newly_allowed"]


def test_limit_keeps_examples_and_counts_the_rest(stage_copy: Path) -> None:
    _, report = diff_json(POLICY, stage_copy, "--limit", "2")
    assert len(report["changes"]) == 2
    assert report["left_out"] == report["summary"]["changed"] - 2
    text = invoke("diff", POLICY, stage_copy, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "--limit", "2").stdout
    assert f"and {report['left_out']} more changed accounts not shown (--limit 2)" in text


def test_text_report_tables_first_then_one_line_per_account(stage_copy: Path) -> None:
    text = invoke("diff", POLICY, stage_copy, ACCOUNTS, "--history", CONTACTS, "--now", NOW,
                  env={"COLUMNS": "100"}).stdout
    order = [text.index(title) for title in ("changed accounts by stage", "accounts by action", "rules responsible",
                                             "changed accounts\n")]
    assert order == sorted(order)
    line = next(line for line in text.splitlines() if line.startswith("A0052"))
    assert "stage M1 → M0" in line and "+ivr (allow-" in line and "−agent_call (" in line


def small_accounts(tmp_path: Path, rows: list[str], header: str = "id,dpd") -> Path:
    return write(tmp_path / "accounts.csv", header + "\n" + "\n".join(rows) + "\n")


def test_html_has_the_tables_and_escapes_every_text(tmp_path: Path) -> None:
    old = write(tmp_path / "old.policy", SMALL)
    new = write(tmp_path / "new.policy", SMALL.replace("stage early { allow sms }", "stage early { allow sms, call }"))
    accounts = small_accounts(tmp_path, ['"<script>alert(1)</script>",0', "B2,5"])
    out = tmp_path / "report.html"
    result = invoke("diff", old, new, accounts, "--now", "2025-06-10T12:00:00Z", "--format", "html", "-o", out)
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for caption in ("changed accounts by stage", "accounts by action", "rules responsible", "changed accounts"):
        assert f"<caption>{caption}</caption>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "+call (" in page and "B2" not in page  # B2 decides alike under both


def test_output_is_written_atomically_and_may_not_be_an_input(tmp_path: Path, stage_copy: Path) -> None:
    out = tmp_path / "diff.json"
    write(out, "previous")
    assert invoke("diff", POLICY, stage_copy, ACCOUNTS, "--now", NOW, "--format", "json", "-o", out).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8"))["summary"]["accounts"] == 250
    assert [path.name for path in tmp_path.iterdir()] == ["diff.json"]  # no temporary file left
    refused = invoke("diff", POLICY, stage_copy, ACCOUNTS, "--now", NOW, "-o", stage_copy)
    assert refused.exit_code == 2 and "error" in refused.stderr


def test_unusable_input_exits_2(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.policy", SMALL.replace("allow sms, call", "allow sms, nope"))
    assert invoke("diff", POLICY, broken, ACCOUNTS, "--now", NOW).exit_code == 2
    assert invoke("diff", POLICY, POLICY, tmp_path / "missing.csv", "--now", NOW).exit_code == 2
    usage = invoke("diff", POLICY, POLICY)
    assert usage.exit_code == 2 and "--exhaustive" in usage.output


# ------------------------------------------------------------ what counts as a change


def test_an_error_on_one_side_is_a_change_and_the_same_error_on_both_is_not(tmp_path: Path) -> None:
    old = write(tmp_path / "old.policy", SMALL)
    new = write(tmp_path / "new.policy", SMALL.replace('    tz  : zone = "UTC"\n',
                                                       '    tz  : zone = "UTC"\n    score : number = 0\n'))
    accounts = small_accounts(tmp_path, ["A1,5,0.5", "A2,5,high", "A3,x,0.1"], header="id,dpd,score")
    result = invoke("diff", old, new, accounts, "--now", "2025-06-10T12:00:00Z", "--format", "json",
                    "--fail-on", "loosened")
    assert result.exit_code == 0, result.output  # an error allows nothing: not a loosening
    report = json.loads(result.stdout)
    assert [change["account_id"] for change in report["changes"]] == ["A2"]
    change = report["changes"][0]
    assert change["error"]["old"] is None and "score" in change["error"]["new"]
    assert change["stage"] == {"old": "late", "new": None}
    assert {action["action"]: action["change"] for action in change["actions"]} == {"sms": NEWLY_BLOCKED,
                                                                                    "call": NEWLY_BLOCKED}
    assert report["summary"]["errors"] == {"old": 1, "new": 2, "changed": 1}
    assert report["summary"]["by_stage"] == [{"old": "late", "new": "(error)", "accounts": 1}]
    assert invoke("diff", old, new, accounts, "--now", "2025-06-10T12:00:00Z", "--fail-on", "any").exit_code == 1
    back = invoke("diff", new, old, accounts, "--now", "2025-06-10T12:00:00Z", "--fail-on", "loosened")
    assert back.exit_code == 1  # decided where it could not be: sms and call now allowed
    assert "error on old:" in back.stdout
    # the side that erred lifts nothing: no `until` is compared with it, and its rules read "error"
    text = invoke("diff", old, new, accounts, "--now", "2025-06-10T02:00:00Z").stdout
    line = next(line for line in text.splitlines() if line.startswith("A2 "))
    assert "−call (error; was allow-" in line and "~sms" not in line


def test_a_change_of_until_alone_is_a_change(tmp_path: Path) -> None:
    old = write(tmp_path / "old.policy", SMALL)
    new = write(tmp_path / "new.policy", SMALL.replace("window sms 08:00-21:00", "window sms 09:00-21:00"))
    accounts = small_accounts(tmp_path, ["A1,5", "A2,0"])
    args = ("diff", old, new, accounts, "--now", "2025-06-10T02:00:00Z")
    result = invoke(*args, "--format", "json", "--fail-on", "loosened")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [change["account_id"] for change in report["changes"]] == ["A1", "A2"]
    for change in report["changes"]:
        assert change["allowed"]["old"] == change["allowed"]["new"] and change["stage"]["old"] == change["stage"]["new"]
        [action] = change["actions"]
        assert action == {"action": "sms", "change": UNTIL, "allowed": {"old": False, "new": False},
                          "rules": {"old": [action["rules"]["old"][0]], "new": [action["rules"]["new"][0]]},
                          "until": {"old": "2025-06-10T08:00:00Z", "new": "2025-06-10T09:00:00Z"},
                          "declared": {"old": True, "new": True}}
        assert action["rules"]["old"][0].startswith("window-")
    assert report["summary"]["by_action"] == [{"action": "sms", "newly_allowed": 0, "newly_blocked": 0,
                                               "until_changed": 2}]
    assert invoke(*args, "--fail-on", "any").exit_code == 1
    assert "~sms until 2025-06-10T08:00:00Z → 2025-06-10T09:00:00Z" in invoke(*args).stdout


def test_an_action_only_in_new_is_newly_allowed_where_allowed(tmp_path: Path) -> None:
    old = write(tmp_path / "old.policy", SMALL)
    new = write(tmp_path / "new.policy", SMALL.replace("actions { sms, call }", "actions { sms, call, email }")
                .replace("stage late { allow sms, call }", "stage late { allow sms, call, email }"))
    accounts = small_accounts(tmp_path, ["A1,5", "A2,0"])
    result = invoke("diff", old, new, accounts, "--now", "2025-06-10T12:00:00Z", "--format", "json",
                    "--fail-on", "loosened")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["summary"]["actions_only_in_new"] == ["email"] and report["summary"]["actions_only_in_old"] == []
    [change] = report["changes"]
    [action] = change["actions"]
    assert change["account_id"] == "A1" and action["action"] == "email" and action["change"] == NEWLY_ALLOWED
    assert action["declared"] == {"old": False, "new": True}
    back = invoke("diff", new, old, accounts, "--now", "2025-06-10T12:00:00Z", "--fail-on", "loosened")
    assert back.exit_code == 0 and "actions only in OLD: email" in back.stdout


# ------------------------------------------------------------ compare_decisions


def rule(rule_id: str) -> RuleInfo:
    return RuleInfo("p.policy", 1, rule_id, id=rule_id)


def decision(allowed: tuple[str, ...] = (), blocked: tuple[Blocked, ...] = (), stage: str | None = "M1",
             error: str | None = None) -> Decision:
    evidence = Evidence(stage_rule=rule(f"stage-{stage}"), allowed_by={action: rule(f"allow-{action}")
                                                                        for action in allowed})
    return Decision("A1", stage, (), allowed, blocked, error, evidence, ("sms", "call"))


def block(action: str, rule_id: str, until: dt.datetime | None = None, kind: str = "limit") -> Blocked:
    return Blocked(action, kind, "why", rule(rule_id), until)


def test_compare_decisions_unit() -> None:
    at = dt.datetime(2025, 6, 4, 8, tzinfo=UTC)
    same = decision(("sms",), (block("call", "limit-1", at),))
    assert compare_decisions(same, decision(("sms",), (block("call", "limit-1", at),))) is None
    # another reason for the same block, lifted at the same instant: not a change
    assert compare_decisions(same, decision(("sms",), (block("call", "quiet-2", at, "quiet"),))) is None
    loosened = compare_decisions(same, decision(("sms", "call")), row=7)
    assert isinstance(loosened, AccountChange) and loosened.row == 7 and not loosened.stage_changed
    [call] = loosened.actions
    assert (call.action, call.kind, call.old_rules, call.new_rules) == ("call", NEWLY_ALLOWED, ("limit-1",),
                                                                      ("allow-call",))
    assert (call.old_until, call.new_until) == (at, None)
    stricter = compare_decisions(same, decision((), (block("sms", "forbid-9", None, "forbidden"),
                                                    block("sms", "limit-3", None), block("call", "limit-1", at))))
    assert stricter is not None
    [sms] = stricter.actions
    assert sms.kind == NEWLY_BLOCKED and sms.old_rules == ("allow-sms",) and sms.new_rules == ("forbid-9", "limit-3")
    later = compare_decisions(same, decision(("sms",), (block("call", "limit-1", at + dt.timedelta(hours=1)),)))
    assert later is not None and [action.kind for action in later.actions] == [UNTIL]
    # the priority order alone (so the next action) is a change, with no action changed
    reordered = compare_decisions(decision(("sms", "call")), decision(("call", "sms")))
    assert reordered is not None and reordered.actions == ()
    # the stage alone is a change
    moved = compare_decisions(decision(("sms",), stage="M1"), decision(("sms",), stage="M2"))
    assert moved is not None and moved.stage_changed and moved.stage_rules() == ("stage-M1", "stage-M2")
    # errors: one side, two different errors, the same error
    failed = decision(stage=None, error="row 1: field 'dpd': 'x'; expected an int")
    one_side = compare_decisions(same, failed)
    assert one_side is not None and one_side.new_stage == "(error)" and one_side.newly_blocked[0].action == "sms"
    assert compare_decisions(failed, decision(stage=None, error="another")) is not None
    assert compare_decisions(failed, decision(stage=None, error=failed.error)) is None


class RecordingHistory:
    """A ContactLookup that records what it is asked."""

    def __init__(self, contacts: dict[str, list[Contact]], broken: dict[str, str] | None = None) -> None:
        self.contacts = contacts
        self.asked: list[str | None] = []
        self._broken = broken or {}

    @property
    def broken(self) -> dict[str, str]:
        return self._broken

    def for_account(self, account_id: str | None) -> list[Contact]:
        self.asked.append(account_id)
        return self.contacts.get(account_id or "", [])


def rows_of(accounts: list[dict[str, Any]]) -> Iterator[AccountRow]:
    for number, values in enumerate(accounts, 1):
        yield AccountRow(number, number + 1, values)


def test_history_is_asked_once_per_row_in_row_order_and_decides_both_sides() -> None:
    old = compile_policy(SMALL)
    new = compile_policy(SMALL.replace("stage late { allow sms, call }",
                                       "stage late { allow sms, call }\nlimit call 1 per day"))
    now = dt.datetime(2025, 6, 10, 12, tzinfo=UTC)
    called = Contact("B", "call", now - dt.timedelta(hours=1))
    history = RecordingHistory({"B": [called]}, broken={"C": "unreadable row x.csv:3"})
    accounts = [{"id": "B", "dpd": "5"}, {"id": "A", "dpd": "5"}, {"id": "C", "dpd": "5"}, {"id": "B", "dpd": "0"}]
    summary = DiffSummary(limit=10)
    changes = list(diff_portfolio(old, new, rows_of(accounts), history, now, summary))
    assert history.asked == ["B", "A", "C", "B"]
    assert [(change.account_id, change.row) for change in changes] == [("B", 1)]  # C errs alike on both sides
    assert changes[0].newly_blocked[0].action == "call"
    assert (summary.accounts, summary.changed, summary.errors_old, summary.errors_new) == (4, 1, 1, 1)
    assert summary.newly_blocked == {"call": 1} and not summary.loosened


def test_summary_memory_is_bounded_by_limit() -> None:
    policy, other = compile_policy(SMALL), compile_policy(SMALL.replace("stage early { allow sms }",
                                                                        "stage early { allow sms, call }"))
    now = dt.datetime(2025, 6, 10, 12, tzinfo=UTC)
    summary = DiffSummary(limit=3)
    accounts = ({"id": f"A{number}", "dpd": "0"} for number in range(500))
    changes = diff_portfolio(policy, other, rows_of(list(accounts)), RecordingHistory({}), now, summary)
    assert sum(1 for _ in changes) == 500
    assert len(summary.examples) == 3 and summary.left_out == 497 and summary.newly_allowed == {"call": 500}


# ------------------------------------------------------------ property


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_policy_diffed_with_itself_changes_nothing(data: st.DataObject) -> None:
    spec = data.draw(policies())
    first, second = compile_policy(spec.text), compile_policy(spec.text)
    cases = data.draw(st.lists(scenarios(spec), min_size=1, max_size=4))
    for case in cases:
        assert compare_decisions(first.evaluate(case.account, case.history, now=case.now),
                                 second.evaluate(case.account, case.history, now=case.now)) is None
    now = cases[0].now
    contacts: dict[str, list[Contact]] = {}
    for case in cases:
        contacts.setdefault(str(case.account["id"]), []).extend(case.history)
    summary = DiffSummary()
    accounts = [case.account for case in cases]
    assert list(diff_portfolio(first, second, rows_of(accounts), RecordingHistory(contacts), now, summary)) == []
    assert summary.accounts == len(cases) and summary.changed == 0 and not summary.by_stage


# ------------------------------------------------------------ --exhaustive, with a fake policydsl.equivalence


def fake_equivalence(monkeypatch: pytest.MonkeyPatch, outcome: str, counterexamples: list[Any] | None = None,
                     exact: bool = True) -> list[tuple[Any, Any]]:
    calls: list[tuple[Any, Any]] = []

    def compare(old: Any, new: Any) -> Any:
        calls.append((old, new))
        return types.SimpleNamespace(outcome=outcome, counterexamples=counterexamples or [], exact=exact,
                                     outside=[] if exact else ["p.policy:12: days_since(last_pay) > 3"],
                                     cases=1234, sampled=0 if exact else 500)

    fake = types.ModuleType("policydsl.equivalence")
    fake.compare = compare  # type: ignore[attr-defined]
    fake.ReplayError = ReplayError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "policydsl.equivalence", fake)
    return calls


def counterexample(action: str | None, old_allowed: tuple[str, ...], new_allowed: tuple[str, ...]) -> Any:
    policy = load_policy(POLICY)
    now = dt.datetime(2025, 6, 4, 2, tzinfo=UTC)
    account = {"id": "<X1>", "days_past_due": 33, "flags": frozenset({"vip"})}
    old = Decision("<X1>", "M1", (), old_allowed, (), policy=policy.provenance)
    new = Decision("<X1>", "M0", (), new_allowed, (), policy=policy.provenance)
    history = [Contact("<X1>", "sms", now - dt.timedelta(hours=3), "delivered")]
    return types.SimpleNamespace(account=account, history=history, now=now, old=old, new=new, action=action,
                                 description=f"days_past_due 33: {action} <changes>")


def test_exhaustive_equivalent(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_equivalence(monkeypatch, "equivalent")
    result = invoke("diff", POLICY, POLICY, "--exhaustive", "--fail-on", "any")
    assert result.exit_code == 0, result.output
    assert "equivalent (exact: 1,234 cases)" in result.stdout
    [(old, new)] = calls
    assert old.digest == new.digest == load_policy(POLICY).digest


def test_exhaustive_fail_on_and_counterexamples(monkeypatch: pytest.MonkeyPatch, stage_copy: Path) -> None:
    fake_equivalence(monkeypatch, "stricter", [counterexample("ivr", ("ivr", "sms"), ("sms",))])
    text = invoke("diff", POLICY, stage_copy, "--exhaustive", "--fail-on", "loosened")
    assert text.exit_code == 0, text.output
    assert "NEW is stricter" in text.stdout and "counterexample 1 [ivr]" in text.stdout
    assert "days_past_due=33" in text.stdout and "flags=vip" in text.stdout
    assert "history: sms at 2025-06-03T23:00:00Z (delivered)" in text.stdout
    assert invoke("diff", POLICY, stage_copy, "--exhaustive", "--fail-on", "any").exit_code == 1

    fake_equivalence(monkeypatch, "loosens", [counterexample("ivr", ("sms",), ("ivr", "sms"))], exact=False)
    loosens = invoke("diff", POLICY, stage_copy, "--exhaustive", "--fail-on", "loosened", "--format", "json")
    assert loosens.exit_code == 1
    verdict = json.loads(loosens.stdout)["exhaustive"]
    assert set(json.loads(loosens.stdout)) == {"old", "new", "now", "exhaustive", "fail_on", "failed"}
    assert verdict["outcome"] == "loosens" and verdict["exact"] is False and verdict["sampled"] == 500
    assert verdict["outside"] == ["p.policy:12: days_since(last_pay) > 3"]
    [example] = verdict["counterexamples"]
    assert example["account"] == {"id": "<X1>", "days_past_due": 33, "flags": ["vip"]}
    assert example["history"][0]["action"] == "sms" and example["new"]["allowed"] == ["ivr", "sms"]

    # differs: fails --fail-on loosened only when a counterexample newly allows its action
    fake_equivalence(monkeypatch, "differs", [counterexample("sms", ("sms",), ())])
    assert invoke("diff", POLICY, stage_copy, "--exhaustive", "--fail-on", "loosened").exit_code == 0
    fake_equivalence(monkeypatch, "differs", [counterexample("sms", ("sms",), ()),
                                              counterexample("ivr", (), ("ivr",))])
    html = invoke("diff", POLICY, stage_copy, "--exhaustive", "--fail-on", "loosened", "--format", "html")
    assert html.exit_code == 1
    assert "&lt;X1&gt;" in html.stdout and "<X1>" not in html.stdout
    assert "<caption>counterexamples</caption>" in html.stdout


def test_exhaustive_with_accounts_reports_both(monkeypatch: pytest.MonkeyPatch, stage_copy: Path) -> None:
    fake_equivalence(monkeypatch, "equivalent")
    result = invoke("diff", POLICY, stage_copy, ACCOUNTS, "--now", NOW, "--exhaustive", "--format", "json",
                    "--fail-on", "any")
    assert result.exit_code == 1  # the portfolio changed, whatever the (fake) verdict
    report = json.loads(result.stdout)
    assert report["exhaustive"]["outcome"] == "equivalent" and report["summary"]["changed"] > 0


def test_a_counterexample_that_does_not_reproduce_is_one_line_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def compare(old: Any, new: Any) -> Any:
        raise ReplayError("agent_call at 2026-01-05T00:00:00Z: OLD's engines disagree")

    fake = types.ModuleType("policydsl.equivalence")
    fake.compare = compare  # type: ignore[attr-defined]
    fake.ReplayError = ReplayError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "policydsl.equivalence", fake)
    result = invoke("diff", POLICY, POLICY, "--exhaustive")
    assert result.exit_code == 2
    assert "could not reproduce through both engines" in result.stderr and "OLD's engines disagree" in result.stderr
    assert "Traceback" not in result.output


# ------------------------------------------------------------ as a user runs it


def test_subprocess(stage_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "impact.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "policydsl", "diff", str(POLICY), str(stage_copy), str(ACCOUNTS), "--history",
         str(CONTACTS), "--now", NOW, "--format", "json", "-o", str(out), "--fail-on", "loosened"],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert completed.returncode == 1, completed.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["failed"] is True and report["summary"]["accounts_newly_allowed"] > 0
    assert completed.stdout == ""


def test_exhaustive_through_the_cli_with_the_real_comparison(tmp_path: Path) -> None:
    """`policy diff OLD NEW --exhaustive` end to end: a cap raised from 3 to
    4 connected calls a day loosens, the other way it is stricter, and each
    printed counterexample decides as printed when replayed through both
    policies (`compile_policy` of each side, from the JSON)."""
    shutil.copy(BASELINE, tmp_path)
    old = tmp_path / "old.policy"
    new = tmp_path / "new.policy"
    text = POLICY.read_text(encoding="utf-8")
    old.write_text(text, encoding="utf-8")
    assert "limit human_call 3 per day" in text
    new.write_text(text.replace("limit human_call 3 per day", "limit human_call 4 per day"), encoding="utf-8")
    loosened = invoke("diff", old, new, "--exhaustive", "--format", "json", "--fail-on", "loosened")
    assert loosened.exit_code == 1, loosened.output
    found = json.loads(loosened.stdout)["exhaustive"]
    assert found["outcome"] == "loosens" and found["counterexamples"]
    policies_by_side = {"old": load_policy(old), "new": load_policy(new)}
    for example in found["counterexamples"]:
        history = [Contact(example["account"]["id"], h["action"], dt.datetime.fromisoformat(h["at"]), h["outcome"])
                   for h in example["history"]]
        now = dt.datetime.fromisoformat(example["now"])
        for side, policy in policies_by_side.items():
            decision = policy.evaluate(example["account"], history, now=now)
            assert list(decision.allowed) == example[side]["allowed"], (side, example)
    stricter = invoke("diff", new, old, "--exhaustive", "--format", "json", "--fail-on", "loosened")
    assert stricter.exit_code == 0, stricter.output
    assert json.loads(stricter.stdout)["exhaustive"]["outcome"] == "stricter"
