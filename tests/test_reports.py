"""`policy check` in its four formats, on mutated copies of the shipped
policies: a stage boundary moved to leave a gap or an overlap, an unknown
action, a contradictory condition. Each must be reported with its code, line
and column in text, JSON, SARIF (valid against the 2.1.0 schema) and GitHub
annotations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from policydsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
SEED = (POLICIES / "ecommerce_consumer_loan.policy").read_text(encoding="utf-8")

# (name, text to replace, replacement, expected code, the text the diagnostic points at)
MUTATIONS = [
    ("gap", "M1      31 .. 60", "M1      33 .. 60", "E107", "M1      33 .. 60"),
    ("overlap", "M2      61 .. 90", "M2      59 .. 90", "E108", "M2      59 .. 90"),
    ("unknown action", "allow senior_agent_call\n", "allow senior_agent_cal\n", "E102", "senior_agent_cal\n"),
    ("contradiction", "allow agent_call when high_risk", "allow agent_call when high_risk and days_past_due > 40",
     "W303", "high_risk and days_past_due > 40"),
]


def mutated(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    assert SEED.count(old) >= 1, old
    text = SEED.replace(old, new, 1)
    for baseline in POLICIES.glob("*.policy"):  # includes resolve beside the copy
        if baseline.name != "ecommerce_consumer_loan.policy":
            (tmp_path / baseline.name).write_text(baseline.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "ecommerce_consumer_loan.policy"
    path.write_text(text, encoding="utf-8")
    return path, text


def where(text: str, needle: str) -> tuple[int, int]:
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def check(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(("name", "old", "new", "code", "at"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_mutation_is_reported_in_every_format(tmp_path: Path, name: str, old: str, new: str, code: str,
                                              at: str) -> None:
    path, text = mutated(tmp_path, old, new)
    line, column = where(text, at)
    expected_exit = 1  # errors fail; the warning case fails under --strict
    strict = ["--strict"] if code.startswith("W") else []

    status, _, stderr = check(*strict, path)
    assert status == expected_exit
    assert f"{path}:{line}:{column}: " in stderr and f"[{code}]" in stderr
    assert "^" in stderr

    status, stdout, _ = check(*strict, "--format", "json", path)
    assert status == expected_exit
    found = [d for d in json.loads(stdout) if d["code"] == code]
    assert [(d["line"], d["column"]) for d in found] == [(line, column)]

    status, stdout, _ = check(*strict, "--format", "sarif", path)
    assert status == expected_exit
    log = json.loads(stdout)
    jsonschema.validate(log, SCHEMA)
    results = [r for r in log["runs"][0]["results"] if r["ruleId"] == code]
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (line, column)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert rules[results[0]["ruleIndex"]]["id"] == code

    status, stdout, _ = check(*strict, "--format", "github", path)
    assert status == expected_exit
    level = "error" if code.startswith("E") else "warning"
    assert re.search(rf"^::{level} file={re.escape(str(path))},line={line},col={column},title={code}::",
                     stdout, re.MULTILINE)


def test_clean_policies_give_an_empty_but_valid_sarif_log() -> None:
    status, stdout, _ = check("--format", "sarif", "--strict", POLICIES)
    assert status == 0
    log = json.loads(stdout)
    jsonschema.validate(log, SCHEMA)
    assert log["runs"][0]["results"] == []
    assert {rule["id"] for rule in log["runs"][0]["tool"]["driver"]["rules"]} >= {"E101", "E107", "W303"}
