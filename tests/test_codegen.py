"""The generated evaluator: policy text never runs as Python, tracebacks
point at the policy, and `policy compile --emit-python` shows the source."""

from __future__ import annotations

import datetime as dt
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import functions, load_policy
from policydsl.cli import main
from policydsl.codegen import printable

NOW = dt.datetime(2025, 6, 4, 10, 0, tzinfo=dt.UTC)

HOSTILE_NAMES = ["__import__", "exec", "eval", "_U", "_k0", "c0", "S", "V", "C", "H",
                 "now", "blocked", "allowed", "p", "by", "segments", "stage_0", "_finish", "_window"]


def _write(tmp_path: Path, text: str, name: str = "hostile.policy") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_names_that_are_python_identifiers_of_the_generated_code_are_only_data(tmp_path: Path) -> None:
    """Fields, actions and segments named like the generated code's own
    locals, globals and builtins are looked up by their (quoted) name."""
    fields = "\n".join(f"    {name} : int = {index}" for index, name in enumerate(HOSTILE_NAMES))
    text = (f'policy "h" version "1"\naccount {{\n    id : text\n{fields}\n}}\n'
            "actions { __import__, exec, _U }\n"
            "segment __builtins__ when exec == 1\n"
            "allow all when __builtins__ and _U == 3\n"
            "forbid exec when __import__ == 0 and action == \"exec\"\n")
    policy = load_policy(str(_write(tmp_path, text)))
    decision = policy.evaluate({"id": "A1"}, now=NOW)
    assert decision.error is None
    assert decision.segments == ("__builtins__",)
    assert decision.allowed == ("__import__", "_U"), decision
    assert [(entry.action, entry.kind) for entry in decision.blocked] == [("exec", "forbidden")]
    assert "'__import__'" in policy.module.source and "__import__(" not in policy.module.source


@pytest.mark.parametrize("payload", [
    "'); __import__('os').system('touch pwned'); ('",
    '\\"); __import__(\\"os\\")  # ',
    "line\\nbreak __import__('os')",
    "\\u2028\\u0085\\r\\x0c __import__",
    "}}{{ {0} %s \\\\",
])
def test_strings_from_the_policy_are_literals_however_they_look(tmp_path: Path, payload: str) -> None:
    text = (f'policy "p{payload}" version "1{payload}"\naccount {{\n    id : text\n    note : text = "x"\n}}\n'
            "actions { sms }\nallow all\n"
            f'forbid sms when note == "{payload}" because "{payload}" cite "{payload}"\n')
    policy = load_policy(str(_write(tmp_path, text)))
    [forbid] = policy.model.restrictions
    written = forbid.condition.right.value  # type: ignore[union-attr]  # the literal as the language reads it
    hit = policy.evaluate({"id": "A1", "note": written}, now=NOW)
    miss = policy.evaluate({"id": "A1"}, now=NOW)
    assert [entry.kind for entry in hit.blocked] == ["forbidden"]
    assert miss.allowed == ("sms",)
    assert not (tmp_path / "pwned").exists()
    compile(policy.module.source, "check", "exec")  # the source itself is well-formed, comments included


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_a_comment_made_printable_is_one_line_of_ascii(text: str) -> None:
    shown = printable(text)
    assert shown.isascii() and shown.isprintable()
    compile(f"x = 1  # {shown}\n", "check", "exec")


def test_the_generated_module_has_no_builtins_beyond_what_it_uses(tmp_path: Path) -> None:
    policy = load_policy(str(_write(tmp_path, 'policy "b" version "1"\naccount { id : text }\n'
                                              "actions { sms }\nallow all\n")))
    stage = policy.module.functions["stage_0"]
    assert set(stage.__globals__["__builtins__"]) == {"bool", "len"}


def test_a_traceback_inside_generated_code_names_the_policy_file_and_line(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault that is no error of the data (here a library function that
    breaks) surfaces with the policy line in the traceback."""
    def broken(clock: functions.Clock, value: dt.date) -> int:
        raise RuntimeError("broken library function")

    monkeypatch.setitem(functions.FUNCTIONS, "days_since",
                        functions.FUNCTIONS["days_since"].__class__(
                            **{**functions.FUNCTIONS["days_since"].__dict__, "run": broken}))
    path = _write(tmp_path, 'policy "t" version "1"\naccount {\n    id : text\n    due : date\n}\n'
                            "actions { sms }\nallow all\n\n"
                            "forbid sms when days_since(due) > 3\n", name="traced.policy")
    policy = load_policy(str(path))
    with pytest.raises(RuntimeError) as caught:
        policy.evaluate({"id": "A1", "due": "2025-06-01"}, now=NOW)
    text = "".join(traceback.format_exception(caught.value))
    assert "traced.policy:9" in text
    assert "V['due']" in text  # the generated line itself is shown
    generated_line = caught.traceback[-2].lineno + 1
    assert policy.module.line_map[generated_line].endswith("traced.policy:9")


def test_emit_python_prints_source_that_compiles_and_cites_the_policy() -> None:
    result = CliRunner().invoke(main, ["compile", "--emit-python", "policies/us_reg_f.policy"])
    assert result.exit_code == 0, result.output
    compile(result.output, "emitted", "exec")
    assert "def stage_0(V, C, H, S, zones, events, K):" in result.output
    assert "us_reg_f.policy:" in result.output


def test_compile_without_emit_summarises_and_a_broken_policy_is_positioned(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["compile", "policies/us_reg_f.policy"])
    assert ok.exit_code == 0 and "lines of Python" in ok.output
    bad = _write(tmp_path, 'policy "x" version "1"\nactions { sms\n', name="bad.policy")
    broken = CliRunner().invoke(main, ["compile", "--emit-python", str(bad)])
    assert broken.exit_code == 2
    assert "bad.policy:" in broken.output and "Traceback" not in broken.output


def test_the_generated_source_is_released_with_its_policy(tmp_path: Path) -> None:
    import gc
    import linecache

    policy = load_policy(str(_write(tmp_path, 'policy "g" version "1"\naccount { id : text }\n'
                                              "actions { sms }\nallow all\n")))
    filename = policy.module.filename
    assert filename in linecache.cache
    del policy
    gc.collect()
    assert filename not in linecache.cache or sys.flags.dev_mode


def test_a_jsonl_line_is_the_decision_contract_key_for_key() -> None:
    """decision_json keeps the JSON of fixed entries between accounts; what
    it writes must stay `Decision.to_dict()`, key order included."""
    import csv
    import json

    from policydsl.io import decision_json

    policy = load_policy("policies/ecommerce_consumer_loan.policy")
    with open("examples/accounts.csv", newline="", encoding="utf-8") as handle:
        accounts = list(csv.DictReader(handle))
    decisions = [policy.evaluate(account, now=NOW) for account in accounts]
    decisions.append(policy.error_decision('a "quoted"\nid', "cannot evaluate: \u2028", now=NOW))
    for decision in decisions * 2:  # the second time from the kept JSON
        line = decision_json(decision)
        assert json.loads(line) == decision.to_dict()
        assert list(json.loads(line)) == list(decision.to_dict())
        assert line == json.dumps(decision.to_dict(), ensure_ascii=False, separators=(",", ":"))
