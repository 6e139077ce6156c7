"""`policy test`: test files (loading, shape errors, every expectation kind),
coverage (what counts, short-circuiting, invariance under reformatting),
JUnit XML and the command itself, on small policies and on the shipped
policies' own test files."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from policydsl import Policy, PolicyError, load_policy
from policydsl import testing as t
from policydsl.cli import main
from policydsl.testing import format as test_format

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
SHIPPED_TESTS = POLICIES / "tests"
SHIPPED = ["ecommerce_consumer_loan", "us_reg_f", "cn_collection_baseline", "us_state_rules"]

# A small policy whose every item is known: 2 stages, 1 segment (2 operands),
# 3 allows (one with a `when` of 2 operands), a window and a forbid (with a `when`).
SMALL = """\
policy "small" version "1"
account {
    id       : text
    days     : int
    score    : number = 0
    flags    : set<text> = {}
    timezone : zone = "UTC"
}
actions { sms, call }
stages on days {
    early .. 30
    late 31 ..
}
segment risky when score >= 0.5 or "risky" in flags
stage early { allow sms }
stage late {
    allow call when risky and days > 60
    allow sms
}
window sms 08:00-20:00 because "daytime only"
forbid call when "stop" in flags because "asked to stop"
"""
SMALL_LINES = {"early": 11, "late": 12, "segment": 14, "allow_early": 15, "allow_call": 17, "allow_sms_late": 18,
               "window": 20, "forbid": 21}
HEADER = "policy: small.policy\nnow: 2025-06-04T12:00:00Z\ndefaults: {id: A1, days: 10}\n"


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture
def small(tmp_path: Path) -> Path:
    (tmp_path / "small.policy").write_text(SMALL, encoding="utf-8")
    return tmp_path


def write_cases(directory: Path, cases: str, header: str = HEADER, name: str = "small.test.yaml") -> Path:
    path = directory / name
    path.write_text(header + "cases:\n" + textwrap.indent(textwrap.dedent(cases), "  "), encoding="utf-8")
    return path


def run_one(directory: Path, cases: str, coverage: bool = False) -> tuple[t.FileResult, t.Runner]:
    runner = t.Runner(coverage=coverage)
    result = runner.run_path(str(write_cases(directory, cases)))
    return result, runner


# ------------------------------------------------------------ loading: safe YAML only


def test_the_loader_uses_safe_load_only() -> None:
    source = "".join(path.read_text(encoding="utf-8") for path in sorted(Path(t.__file__).parent.glob("*.py")))
    assert issubclass(test_format._BoundedLoader, yaml.SafeLoader)  # a SafeLoader with limits (test_yaml_limits.py)
    assert re.findall(r"Loader\s*=\s*(\w+)", source) == ["_BoundedLoader"]
    assert not re.search(r"yaml\.(safe_load|unsafe_load|full_load|load_all)\(|FullLoader|UnsafeLoader|yaml\.Loader\b",
                         source)


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.makedirs", "!!python/object:policydsl.testing.Case",
                                 "!!python/name:os.system"])
def test_python_tags_are_refused_not_executed(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.test.yaml"
    path.write_text(f"policy: x.policy\nnow: {tag} [{str(marker)!r}]\ncases: []\n", encoding="utf-8")
    with pytest.raises(t.TestFileError) as caught:
        t.load_test_file(path)
    assert str(path) in str(caught.value) and "safe loading" in str(caught.value)
    assert not marker.exists()
    assert isinstance(caught.value, PolicyError)


@pytest.mark.parametrize(("text", "fragments"), [
    ("- just a list\n", ["expected a mapping with the keys policy, now, defaults, cases"]),
    ("now: 2025-06-04T12:00:00Z\ncases: [{name: a, expect: {stage: x}}]\n", ["policy: missing"]),
    ("policy: p.policy\ncases: []\n", ["cases: expected a non-empty list of cases"]),
    ("policy: p.policy\ncase: []\n", ["unknown key 'case' (did you mean 'cases'?)"]),
    ("policy: p.policy\nnow: 2025-06-04T12:00:00\ncases: [{name: a, expect: {stage: x}}]\n",
     ["now: 2025-06-04T12:00:00 has no offset; write Z or +08:00"]),
    ("policy: p.policy\nnow: 2025-06-04\ncases: [{name: a, expect: {stage: x}}]\n", ["now: 2025-06-04 is not"]),
    ("policy: p.policy\ncases: [{name: a, expect: {stage: x}}]\n", ["case 1 'a': now: no instant"]),
    (HEADER + "cases: [{expect: {stage: x}}]\n", ["case 1: name: missing"]),
    (HEADER + "cases: [{name: a, expect: {stage: x}}, {name: a, expect: {stage: x}}]\n",
     ["case 2 'a': name: the name is already used by case 1"]),
    (HEADER + "cases: [{name: a}]\n", ["case 1 'a': expect: missing"]),
    (HEADER + "cases: [{name: a, expect: {}}]\n", ["case 1 'a': expect: expected a mapping with at least one"]),
    (HEADER + "cases: [{name: a, expected: {stage: x}}]\n", ["unknown key 'expected' (did you mean 'expect'?)"]),
    (HEADER + "cases: [{name: a, expect: {stages: x}}]\n",
     ["case 1 'a': expect.stages: unknown key 'stages' (did you mean 'stage'?)"]),
    (HEADER + "cases: [{name: a, expect: {allowed: sms}}]\n", ["expect.allowed: expected a list of names"]),
    (HEADER + "cases: [{name: a, expect: {allowed: [sms, sms]}}]\n", ["expect.allowed: 'sms' is listed twice"]),
    (HEADER + "cases: [{name: a, expect: {error_contains: x, stage: y}}]\n", ["give error_contains alone"]),
    (HEADER + "cases: [{name: a, expect: {blocked: {sms: {kind: limt}}}}]\n",
     ["expect.blocked.sms.kind: 'limt' is not a kind (did you mean 'limit'?)"]),
    (HEADER + "cases: [{name: a, expect: {blocked: {sms: {rule: line 5}}}}]\n",
     ["expect.blocked.sms.rule: 'line 5' is not a rule"]),
    (HEADER + "cases: [{name: a, expect: {blocked: {sms: {rule: 0}}}}]\n", ["expect.blocked.sms.rule: 0 is not"]),
    (HEADER + "cases: [{name: a, expect: {blocked: {sms: {because: x}}}}]\n",
     ["expect.blocked.sms.because: unknown key"]),
    (HEADER + "cases: [{name: a, expect: {blocked: {sms: []}}}]\n", ["expect.blocked.sms: expected one or more"]),
    (HEADER + "cases: [{name: a, expect: {blocked: {sms: [{until: null}, {until: 2025-06-05T00:00:00Z}]}}}]\n",
     ["expect.blocked.sms: `until` is the action's"]),
    (HEADER + "cases: [{name: a, expect: {blocked: {sms: {until: tomorrow}}}}]\n",
     ["expect.blocked.sms.until: 'tomorrow' is not an ISO-8601 instant"]),
    (HEADER + "cases: [{name: a, expect: {blocked: [sms], not_blocked: [sms]}}]\n",
     ["'sms' is expected both blocked and not"]),
    (HEADER + "cases: [{name: a, account: {flags: {a: 1}}, expect: {stage: x}}]\n",
     ["case 1 'a': account.flags: expected a value or a list of values; got a mapping"]),
    (HEADER + "cases: [{name: a, history: [{action: sms}], expect: {stage: x}}]\n",
     ["case 1 'a': history[0].at: missing"]),
    (HEADER + "cases: [{name: a, history: [{action: sms, at: 2025-06-04T09:00:00Z, result: ok}], "
     "expect: {stage: x}}]\n", ["history[0].result: unknown key 'result'"]),
    (HEADER + "cases: [{name: a, history: [{action: sms, at: 2025-06-04T09:00:00Z, outcome: 3}], "
     "expect: {stage: x}}]\n", ["history[0].outcome: expected text; got 3 (quote it)"]),
    ("policy: p.policy\ncases: [unclosed\n", ["not a YAML document", "line 2"]),
])
def test_shape_errors_name_file_case_and_key(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.test.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(t.TestFileError) as caught:
        t.load_test_file(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ")
    for fragment in fragments:
        assert fragment in message


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(t.TestFileError, match="cannot read test file"):
        t.load_test_file(tmp_path / "missing.test.yaml")
    latin = tmp_path / "latin.test.yaml"
    latin.write_bytes(b"policy: caf\xe9.policy\n")
    with pytest.raises(t.TestFileError, match="not UTF-8"):
        t.load_test_file(latin)


def test_a_good_file_parses_with_defaults_anchors_and_case_now(small: Path) -> None:
    path = write_cases(small, """\
        - name: first
          account: &acct {score: 0.7}
          history:
            - {action: sms, at: "2025-06-04T09:00:00+08:00"}
          expect: {stage: early}
        - name: second
          now: 2025-06-05T01:00:00+08:00
          account: *acct
          expect: {blocked: {sms: limit}, next_action: null}
        """)
    scenarios = t.load_test_file(path)
    first, second = scenarios.cases
    assert scenarios.policy_path == str(small / "small.policy")
    assert first.account == {"id": "A1", "days": 10, "score": 0.7}
    assert first.history[0][0] == "sms" and first.history[0][2] == ""
    assert first.now.isoformat() == "2025-06-04T12:00:00+00:00"
    assert second.now.utcoffset() is not None and second.now.hour == 1
    assert second.expect.next_action is None and second.expect.blocked[0].reasons[0].kind == "limit"


@pytest.mark.parametrize(("expect", "fragment"), [
    ("{not_blocked: [smss]}", "expect.not_blocked: the policy has no action 'smss'; did you mean 'sms'?"),
    ("{allowed: [sms, email]}", "expect.allowed: the policy has no action 'email'"),
    ("{stage: middle}", "expect.stage: the policy has no stage 'middle'"),
    ("{segments: [risk]}", "expect.segments: the policy has no segment 'risk'; did you mean 'risky'?"),
    ("{blocked: {sms: {rule: 19}}}", "expect.blocked.sms.rule: line 19 starts no rule, stage or allow a decision "
     "can cite; the nearest rule starts on line 18"),
    ("{blocked: {sms: [{rule: 'other.policy:3'}]}}", "expect.blocked.sms[0].rule: 'other.policy' is not one of the "
     "policy's files (small.policy"),
])
def test_names_and_lines_are_checked_against_the_policy(small: Path, expect: str, fragment: str) -> None:
    result, _ = run_one(small, f"- {{name: typo, expect: {expect}}}\n")
    assert result.error is not None and fragment in result.error
    assert "case 1 'typo'" in result.error


def test_unknown_account_fields_and_history_actions_are_errors(small: Path) -> None:
    result, _ = run_one(small, "- {name: a, account: {dayz: 3}, expect: {stage: early}}\n")
    assert result.error is not None and "account.dayz: the policy has no field 'dayz'; did you mean 'days'?" \
        in result.error
    result, _ = run_one(small, "- {name: a, history: [{action: email, at: 2025-06-04T09:00:00Z}], "
                               "expect: {stage: early}}\n")
    assert result.error is not None and "history[0].action: the policy has no action or event 'email'" in result.error


def test_a_policy_that_does_not_compile_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "small.policy").write_text(SMALL.replace("allow sms\n}", "allow smss\n}"), encoding="utf-8")
    result, _ = run_one(tmp_path, "- {name: a, expect: {stage: early}}\n")
    assert result.error is not None and "cannot be loaded" in result.error and "smss" in result.error
    missing = t.Runner().run_path(str(write_cases(tmp_path, "- {name: a, expect: {stage: x}}\n",
                                                  header="policy: nowhere.policy\nnow: 2025-06-04T12:00:00Z\n")))
    assert missing.error is not None and "nowhere.policy" in missing.error


# ------------------------------------------------------------ every expectation, passing and failing

# (expectations, None when they hold, else the key of the first mismatch) for
# an early account (days 10) at 12:00Z after one sms at 09:00Z: sms allowed,
# call not allowed in `early` (cited at the stage's line 11).
EXPECTATIONS = [
    ("{stage: early}", None),
    ("{stage: late}", "stage"),
    ("{stage: null}", "stage"),
    ("{segments: []}", None),
    ("{segments: [risky]}", "segments"),
    ("{allowed: [sms]}", None),
    ("{allowed: [sms, call]}", "allowed"),
    ("{allowed: []}", "allowed"),
    ("{allowed_includes: [sms]}", None),
    ("{allowed_includes: [call]}", "allowed_includes"),
    ("{next_action: sms}", None),
    ("{next_action: null}", "next_action"),
    ("{blocked: [call]}", None),
    ("{blocked: [sms]}", "blocked.sms"),
    ("{blocked: {call: not_allowed}}", None),
    ("{blocked: {call: forbidden}}", "blocked.call"),
    ("{blocked: {call: null}}", None),
    ("{blocked: {call: {kind: not_allowed, rule: 11, reason_contains: 'not allowed in stage early', until: null}}}",
     None),
    ("{blocked: {call: {rule: 12}}}", "blocked.call"),
    ("{blocked: {call: {rule: 'small.policy:11'}}}", None),
    ("{blocked: {call: {rule: './small.policy:12'}}}", "blocked.call"),
    ("{blocked: {call: {reason_contains: 'only when'}}}", "blocked.call"),
    ("{blocked: {call: {until: 2025-06-05T08:00:00Z}}}", "blocked.call.until"),
    ("{blocked: {call: [not_allowed]}}", None),
    ("{blocked: {call: [not_allowed, forbidden]}}", "blocked.call"),
    ("{not_blocked: [sms]}", None),
    ("{not_blocked: [call]}", "not_blocked.call"),
    ("{error_contains: days}", "error_contains"),
]


@pytest.mark.parametrize(("expect", "mismatch"), EXPECTATIONS, ids=[e for e, _ in EXPECTATIONS])
def test_each_expectation_passes_and_fails(small: Path, expect: str, mismatch: str | None) -> None:
    result, _ = run_one(small, f"""\
        - name: case
          history: [{{action: sms, at: 2025-06-04T09:00:00Z, outcome: sent}}]
          expect: {expect}
        """)
    assert result.error is None, result.error
    [case] = result.results
    assert [m.key for m in case.mismatches][:1] == ([] if mismatch is None else [mismatch])


TIMED = [  # at 21:00Z, an sms is outside the 08:00-20:00 window until 08:00Z tomorrow
    ("{blocked: {sms: {kind: window, rule: 20, reason_contains: daytime, until: 2025-06-05T08:00:00Z}}}", None),
    ("{blocked: {sms: {until: '2025-06-05T16:00:00+08:00'}}}", None),  # the same instant, another offset
    ("{blocked: {sms: {until: 2025-06-05T09:00:00Z}}}", "blocked.sms.until"),
    ("{blocked: {sms: {until: null}}}", "blocked.sms.until"),
    ("{blocked: {sms: [window]}}", None),
    ("{blocked: {sms: [window, window]}}", "blocked.sms"),
]


@pytest.mark.parametrize(("expect", "mismatch"), TIMED, ids=[e for e, _ in TIMED])
def test_until_and_exact_reason_lists(small: Path, expect: str, mismatch: str | None) -> None:
    result, _ = run_one(small, f"- {{name: night, now: 2025-06-04T21:00:00Z, expect: {expect}}}\n")
    assert result.error is None, result.error
    assert [m.key for m in result.results[0].mismatches][:1] == ([] if mismatch is None else [mismatch])


def test_error_decisions(small: Path) -> None:
    result, _ = run_one(small, """\
        - {name: bad days, account: {days: ten}, expect: {error_contains: "field 'days'"}}
        - {name: unexpected error, account: {days: ten}, expect: {stage: early}}
        - {name: yaml number as id, account: {id: 1001}, expect: {stage: early}}
        """)
    passed, unexpected, numeric_id = result.results
    assert passed.passed
    [mismatch] = unexpected.mismatches
    assert mismatch.key == "error" and "field 'days'" in mismatch.actual
    assert numeric_id.passed and numeric_id.decision.account_id == "1001"


def test_every_mismatch_of_a_case_is_reported_with_the_explanation(small: Path) -> None:
    result, _ = run_one(small, """\
        - name: wrong twice
          account: {days: 70, score: 0.9}
          expect: {stage: early, allowed: [sms], blocked: {call: forbidden}}
        """)
    [case] = result.results
    assert [m.key for m in case.mismatches] == ["stage", "allowed", "blocked.call"]
    assert case.mismatches[2].actual == "allowed"
    text = t.failure_text(case)
    assert "stage:\n    expected: early\n    actual:   late" in text
    assert "allowed:\n    expected: [sms]\n    actual:   [call, sms]" in text
    assert "explanation:" in text and "allowed by: allow call when risky and days > 60" in text
    assert "small.policy:17" in text  # cited relative to the policy's directory


def test_blocked_mismatch_lists_the_actual_reasons(small: Path) -> None:
    result, _ = run_one(small, "- {name: a, expect: {blocked: {call: {kind: forbidden, rule: 21}}}}\n")
    [mismatch] = result.results[0].mismatches
    assert mismatch.expected == "a reason with kind forbidden, rule 21"
    assert mismatch.actual.startswith("not_allowed by stage-early at small.policy:11 (call is not allowed in stage")


# ------------------------------------------------------------ coverage


def items(runner: t.Runner) -> dict[tuple[str, int], t.CoverageItem]:
    [coverage] = runner.coverage.values()
    return {(item.label, item.span.line) if item.label != "operand" else (item.text, item.span.line): item
            for item in coverage.items}


def test_coverage_items_of_a_small_policy(small: Path) -> None:
    result, runner = run_one(small, "- {name: noon, expect: {stage: early}}\n", coverage=True)
    assert result.results[0].passed
    [coverage] = runner.coverage.values()
    assert coverage.counts("stage") == (1, 2)
    assert coverage.counts("segment") == (0, 1)
    assert coverage.counts("rule") == (1, 5)  # allow sms in early, nothing else
    assert coverage.counts("condition") == (0, 6)  # 2 + 2 operands, 2 whens
    found = items(runner)
    assert found["stage", SMALL_LINES["early"]].covered and not found["stage", SMALL_LINES["late"]].covered
    assert found["allow", SMALL_LINES["allow_early"]].hits == 1
    assert not found["window", SMALL_LINES["window"]].covered  # noon: the window did not block
    assert found["window", SMALL_LINES["window"]].status() == "never blocked"
    assert not found["forbid", SMALL_LINES["forbid"]].covered
    assert found["when", SMALL_LINES["forbid"]].outcomes == {False}
    assert found["when", SMALL_LINES["forbid"]].status() == "never true"
    assert found["score >= 0.5", SMALL_LINES["segment"]].outcomes == {False}
    assert found['"risky" in flags', SMALL_LINES["segment"]].outcomes == {False}
    assert coverage.percent == pytest.approx(100 * 2 / 14)


def test_short_circuited_operands_are_not_evaluated(small: Path) -> None:
    _, runner = run_one(small, "- {name: risky by score, account: {score: 0.9}, expect: {segments: [risky]}}\n",
                        coverage=True)
    found = items(runner)
    assert found["score >= 0.5", SMALL_LINES["segment"]].outcomes == {True}
    second = found['"risky" in flags', SMALL_LINES["segment"]]
    assert second.outcomes == set() and second.status() == "never evaluated"


def test_full_coverage_needs_every_outcome(small: Path) -> None:
    cases = """\
        - {name: early noon, expect: {allowed: [sms]}}
        - {name: early night, now: 2025-06-04T22:00:00Z, expect: {blocked: {sms: window}}}
        - {name: late risky by flag, account: {days: 70, flags: [risky]}, expect: {allowed: [call, sms]}}
        - {name: late risky but recent, account: {days: 45, score: 0.9}, expect: {allowed: [sms]}}
        - {name: late calm, account: {days: 70}, expect: {allowed: [sms], segments: []}}
        - {name: late stopped, account: {days: 70, score: 0.9, flags: [stop]}, expect: {blocked: {call: forbidden}}}
        """
    result, runner = run_one(small, cases, coverage=True)
    assert all(case.passed for case in result.results)
    [coverage] = runner.coverage.values()
    assert [(item.label, item.text) for item in coverage.items if not item.covered] == []
    assert coverage.percent == 100.0 and coverage.meets(100)
    assert coverage.summary().startswith("100.0% (14/14: rules 5/5, stages 2/2, segments 1/1, conditions 6/6)")
    # without the stopped account the forbid never blocks and its `when` is never true
    result, runner = run_one(small, cases.rsplit("- {name: late stopped", 1)[0], coverage=True)
    [coverage] = runner.coverage.values()
    assert coverage.counts() == (12, 14)
    assert not coverage.meets(86) and coverage.meets(85.7)


def _strip_comments(source: str) -> str:
    return re.sub(r'("(?:[^"\\\n]|\\.)*")|#[^\n]*', lambda m: m.group(1) or "", source)


def _relayout(source: str, separator: str) -> str:
    """Every run of whitespace outside strings replaced by `separator`."""
    parts = re.split(r'("(?:[^"\\\n]|\\.)*")', _strip_comments(source))
    return "".join(part if index % 2 else re.sub(r"\s+", separator, part) for index, part in enumerate(parts))


def _coverage_of(policy_path: Path, cases: tuple[t.Case, ...]) -> t.PolicyCoverage:
    policy = load_policy(policy_path)
    coverage = t.PolicyCoverage(policy.model)
    traced = Policy(policy.model, trace=True)
    for case in cases:
        account = t.account_values(case, policy)
        coverage.record(traced.trace(account, t.contacts(case, account), now=case.now)[1])
    return coverage


def test_coverage_does_not_change_when_a_policy_is_reformatted(tmp_path: Path) -> None:
    from policydsl.formatter import format_source

    name = "ecommerce_consumer_loan.policy"
    source = (POLICIES / name).read_text(encoding="utf-8")
    cases = t.load_test_file(SHIPPED_TESTS / "ecommerce_consumer_loan.test.yaml").cases[::4]  # partial coverage
    layouts = {
        "shipped": source,
        "formatted": format_source(source, name),
        "one line": _relayout(source, " "),
        "a token a line": _relayout(source, "\n      "),
    }
    measured = {}
    for label, text in layouts.items():
        directory = tmp_path / label.replace(" ", "_")
        directory.mkdir()
        (directory / name).write_text(text, encoding="utf-8")
        (directory / "cn_collection_baseline.policy").write_text(
            (POLICIES / "cn_collection_baseline.policy").read_text(encoding="utf-8"), encoding="utf-8")
        coverage = _coverage_of(directory / name, cases)
        measured[label] = ([coverage.counts(category) for category in t.CATEGORIES], coverage.percent)
    assert len((tmp_path / "one_line" / name).read_text(encoding="utf-8").splitlines()) == 1
    assert 50 < measured["shipped"][1] < 100
    assert all(value == measured["shipped"] for value in measured.values()), measured


def test_the_traced_evaluator_decides_exactly_as_the_untraced_one_in_every_shipped_case() -> None:
    """Coverage observes the compiled evaluator itself, built with tracing:
    recording must change no decision."""
    for name in SHIPPED:
        scenarios = t.load_test_file(SHIPPED_TESTS / f"{name}.test.yaml")
        policy = load_policy(scenarios.policy_path)
        traced = Policy(policy.model, trace=True)
        for case in scenarios.cases:
            account = t.account_values(case, policy)
            history = t.contacts(case, account)
            decision, _ = traced.trace(account, history, now=case.now)
            assert decision.to_dict() == policy.evaluate(account, history, now=case.now).to_dict(), case.name


def test_the_shipped_suite_covers_what_it_covered_when_coverage_was_measured_by_a_separate_walk() -> None:
    """The figures the reference-based Tracer measured (2026-12-03), before
    coverage moved into the generated evaluator: the same items seen."""
    runner = t.Runner(coverage=True)
    for path in sorted(SHIPPED_TESTS.glob("*.test.yaml")):
        runner.run_path(str(path))
    measured = {Path(key).name: (coverage.cases, [coverage.counts(category) for category in t.CATEGORIES])
                for key, coverage in runner.coverage.items()}
    assert measured == {
        "cn_collection_baseline.policy": (29, [(10, 10), (0, 0), (1, 1), (5, 5)]),
        "ecommerce_consumer_loan.policy": (95, [(38, 39), (5, 5), (7, 7), (41, 41)]),
        "us_reg_f.policy": (49, [(11, 11), (0, 0), (0, 0), (7, 7)]),
        "us_state_rules.policy": (23, [(12, 12), (0, 0), (0, 0), (8, 8)]),
    }


def test_trace_needs_a_tracing_policy() -> None:
    policy = load_policy(POLICIES / "us_reg_f.policy")
    with pytest.raises(ValueError, match="trace=True"):
        policy.trace({"id": "A1"}, now=dt.datetime(2025, 6, 4, tzinfo=dt.UTC))


# ------------------------------------------------------------ the command


def test_discovery_takes_test_yaml_files_below_directories(tmp_path: Path) -> None:
    for name in ("a.test.yaml", "sub/b.test.yml", "c.yaml", "sub/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    found = t.find_test_files([str(tmp_path), str(tmp_path / "c.yaml")])
    assert found == [str(tmp_path / "a.test.yaml"), str(tmp_path / "sub" / "b.test.yml"), str(tmp_path / "c.yaml")]
    result = invoke("test", tmp_path / "sub" / "notes.txt")  # given explicitly, any name: but not a test file
    assert result.exit_code == 2 and "expected a mapping" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("test", empty)
    assert result.exit_code == 2 and "no *.test.yaml or *.test.yml files found" in result.output


def test_cli_reports_cases_failures_and_a_summary(small: Path) -> None:
    path = write_cases(small, """\
        - {name: holds, expect: {stage: early}}
        - {name: wrong stage, expect: {stage: late}}
        """)
    result = invoke("test", path)
    assert result.exit_code == 1
    out = result.stdout
    assert f"{path} → {small / 'small.policy'}" in out
    assert "  ✔ holds" in out and "  ✘ wrong stage (case 2)" in out
    assert "stage:\n          expected: late\n          actual:   early" in out
    assert "explanation:" in out and "account A1: stage early" in out
    assert "1 passed, 1 failed (1 test file(s)" in out


def test_cli_exit_2_on_a_bad_test_file_but_other_files_still_run(small: Path) -> None:
    good = write_cases(small, "- {name: holds, expect: {stage: early}}\n", name="good.test.yaml")
    bad = small / "bad.test.yaml"
    bad.write_text(HEADER + "cases: [{name: a, expect: {stag: early}}]\n", encoding="utf-8")
    result = invoke("test", small)
    assert result.exit_code == 2
    assert "✘ cannot be used:" in result.stdout and "expect.stag: unknown key 'stag'" in result.stdout
    assert "✔ holds" in result.stdout and "1 passed, 0 failed, 1 test file(s) could not be used" in result.stdout
    assert good.exists()


def test_cli_coverage_table_and_fail_under(small: Path) -> None:
    path = write_cases(small, """\
        - {name: early noon, expect: {allowed: [sms]}}
        - {name: early night, now: 2025-06-04T22:00:00Z, expect: {blocked: {sms: window}}}
        """)
    result = invoke("test", "--coverage", path)
    assert result.exit_code == 0
    out = result.stdout
    assert f"coverage of {small / 'small.policy'}: 21.4% (3/14: rules 2/5, stages 1/2, segments 0/1, " \
           "conditions 0/6) over 2 case(s)" in out
    assert re.search(r"│\s+20 │ window\s+│ window sms 08:00-20:00\s+│ ✔ blocked in 1 case\(s\)", out)
    assert re.search(r"│\s+21 │ forbid\s+│ forbid call when [^│]*│ ✘ never blocked", out)
    assert re.search(r"│\s+12 │ stage\s+│ stage late 31 \.\.\s+│ ✘ no case in it", out)
    assert "✘ risky: never evaluated" in out and '✘ "stop" in flags: never true' in out
    assert invoke("test", "--fail-under", "21.4", path).exit_code == 0
    under = invoke("test", "--fail-under", "21.5", path)
    assert under.exit_code == 1
    assert "is 21.4%, under --fail-under 21.5%" in under.stdout
    assert "┏" not in under.stdout  # --fail-under alone gives the summary, not the table
    assert invoke("test", "--fail-under", "101", path).exit_code == 2


def test_junit_xml_is_well_formed_with_a_suite_per_file(small: Path) -> None:
    write_cases(small, """\
        - {name: holds, expect: {stage: early}}
        - {name: "wrong <stage> & \\x01 more", expect: {stage: late}}
        """, name="one.test.yaml")
    write_cases(small, "- {name: also holds, expect: {allowed: [sms]}}\n", name="two.test.yaml")
    (small / "three.test.yaml").write_text("policy: [\n", encoding="utf-8")
    report = small / "out" / "junit.xml"
    report.parent.mkdir()
    result = invoke("test", "--coverage", "--junit", report, small)
    assert result.exit_code == 2  # three.test.yaml is not YAML
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    suites = {Path(suite.get("name", "")).name: suite for suite in root.iter("testsuite")}
    assert list(suites) == ["one.test.yaml", "three.test.yaml", "two.test.yaml"]
    one = suites["one.test.yaml"]
    assert (one.get("tests"), one.get("failures")) == ("2", "1")
    properties = {p.get("name"): p.get("value") for p in one.iter("property")}
    assert properties["policy"] == str(small / "small.policy") and float(properties["coverage"]) > 0
    failure = one.find("testcase[@name='wrong <stage> & \ufffd more']/failure")
    assert failure is not None and failure.get("message") == "mismatch in stage"
    assert "expected: late" in (failure.text or "") and "explanation:" in (failure.text or "")
    error = suites["three.test.yaml"].find("testcase/error")
    assert error is not None and "not a YAML document" in (error.text or "")
    assert sorted(p.name for p in report.parent.iterdir()) == ["junit.xml"]  # written atomically


# ------------------------------------------------------------ the shipped policies' test files


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_policy_has_a_test_file_reaching_90_percent(name: str) -> None:
    runner = t.Runner(coverage=True)
    result = runner.run_path(str(SHIPPED_TESTS / f"{name}.test.yaml"))
    assert result.error is None, result.error
    assert result.failed == [], [t.failure_text(case) for case in result.failed]
    [coverage] = runner.coverage.values()
    assert coverage.model.policy.path.endswith(f"{name}.policy")
    assert coverage.meets(90), coverage.summary()


def test_policy_test_passes_on_the_shipped_tests_through_the_cli(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    result = invoke("test", "--coverage", "--fail-under", "90", "--junit", report, SHIPPED_TESTS)
    assert result.exit_code == 0, result.output
    assert re.search(rf"\d+ passed, 0 failed \({len(SHIPPED)} test file\(s\)", result.stdout)
    for name in SHIPPED:
        assert re.search(rf"coverage of \S*{name}\.policy: (9\d|100)\.\d%", result.stdout), name
    root = ET.parse(report).getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0" and int(root.get("tests", "0")) > 100
