"""`policy test` names rules by id (issue 9, point 6): expectations survive
edits of the policy around the rule, and the shipped test files use ids, so
that a comment line at the top of every shipped policy and `policy fmt` leave
them passing and every `rule_id` of `policy run` unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_cli import ACCOUNTS, CONTACTS, NOW, invoke, jsonl
from test_testing import SMALL, run_one

from policydsl import load_policy
from policydsl import testing as t
from policydsl.formatter import format_source

ROOT = Path(__file__).resolve().parents[1]
NAMED = SMALL.replace('forbid call when "stop"', 'asked_to_stop: forbid call when "stop"')


def small_policy(directory: Path, text: str = NAMED) -> Path:
    (directory / "small.policy").write_text(text, encoding="utf-8")
    return directory


def rule_id(directory: Path, text: str) -> str:
    """The id of the rule of small.policy whose text starts with `text`."""
    model = load_policy(directory / "small.policy").model
    return next(model.ids[rule.span] for rule in [*model.allows, *model.restrictions] if rule.text.startswith(text))


def window_of(directory: Path) -> str:
    return rule_id(directory, "window")


def test_an_expectation_may_name_the_rule_by_name_digest_id_or_line(tmp_path: Path) -> None:
    directory = small_policy(tmp_path)
    result, _ = run_one(directory, f"""\
        - name: by ids
          now: 2025-06-04T21:00:00Z
          account: {{days: 40, flags: [stop]}}
          expect:
            blocked:
              call: [{{kind: not_allowed, rule: {rule_id(directory, "allow call")}}},
                     {{kind: forbidden, rule: asked_to_stop}}]
              sms: {{kind: window, rule: {window_of(directory)}}}
        - name: by line
          account: {{days: 40, flags: [stop]}}
          expect: {{blocked: {{call: {{kind: forbidden, rule: 21}}}}}}
        """)
    assert result.error is None
    assert all(case.passed for case in result.results), [t.failure_text(case) for case in result.results]


def test_a_wrong_id_fails_the_case_and_an_unknown_id_is_an_error_with_the_nearest(tmp_path: Path) -> None:
    directory = small_policy(tmp_path)
    result, _ = run_one(directory, f"""\
        - name: wrong rule
          account: {{days: 40, flags: [stop]}}
          expect: {{blocked: {{call: {{kind: forbidden, rule: {window_of(directory)}}}}}}}
        """)
    [mismatch] = result.results[0].mismatches
    assert mismatch.expected == f"a reason with kind forbidden, rule {window_of(directory)}"
    assert "forbidden by asked_to_stop at small.policy:21" in mismatch.actual
    unknown, _ = run_one(directory, """\
        - name: typo
          account: {days: 40}
          expect: {blocked: {call: {rule: asked_to_stpo}}}
        """)
    assert unknown.error is not None
    assert "expect.blocked.call.rule: the policy has no rule with id 'asked_to_stpo'; did you mean " \
           "'asked_to_stop'?" in unknown.error


def test_an_id_keeps_matching_when_lines_above_the_rule_change(tmp_path: Path) -> None:
    directory = small_policy(tmp_path)
    cases = f"""\
        - name: at night
          now: 2025-06-04T21:00:00Z
          account: {{days: 10}}
          expect: {{blocked: {{sms: {{kind: window, rule: {window_of(directory)}}}}}}}
        """
    assert run_one(directory, cases)[0].results[0].passed
    header, rest = NAMED.split("\n", 1)
    small_policy(directory, header + "\n# new\n# lines\n" + rest)
    assert run_one(directory, cases)[0].results[0].passed


def _rule_ids(decisions: list[dict[str, object]]) -> list[list[tuple[str, str]]]:
    return [[(entry["action"], entry["rule_id"]) for entry in decision["blocked"]]  # type: ignore[attr-defined]
            for decision in decisions]


def _case_ids(results: list[t.FileResult]) -> list[list[tuple[str, str]]]:
    return [[(entry.action, entry.rule.id) for entry in case.decision.blocked]
            for result in results for case in result.results]


def test_a_comment_on_top_and_policy_fmt_leave_the_shipped_tests_passing_and_every_rule_id(tmp_path: Path) -> None:
    copy = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", copy)
    tests = sorted(str(path) for path in (copy / "tests").glob("*.test.yaml"))
    policy = copy / "ecommerce_consumer_loan.policy"
    before_run = jsonl(invoke("run", policy, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "-q").stdout)
    before_cases = _case_ids([t.Runner().run_path(path) for path in tests])
    shipped = sorted(copy.glob("*.policy"))
    assert len(shipped) >= 3
    for path in shipped:
        edited = "# a comment line inserted above everything\n" + path.read_text(encoding="utf-8")
        path.write_text(format_source(edited, str(path)), encoding="utf-8")
    result = invoke("test", *tests)
    assert result.exit_code == 0, result.stdout
    assert "0 failed" in result.stdout
    after_run = jsonl(invoke("run", policy, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "-q").stdout)
    assert _rule_ids(after_run) == _rule_ids(before_run)
    assert _case_ids([t.Runner().run_path(path) for path in tests]) == before_cases
    moved = [(b["rule"], a["rule"]) for old, new in zip(before_run, after_run, strict=True)
             for b, a in zip(old["blocked"], new["blocked"], strict=True)]
    assert any(b != a for b, a in moved), "the lines did move: the test is not vacuous"
