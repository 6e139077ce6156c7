"""End-to-end tests of the `policy` command: run, check and explain.

Most tests drive the click command in-process through CliRunner; a few run
the installed console script (and `python -m policydsl`) in a subprocess, as
a user or a CI job would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from policydsl import load_policy
from policydsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
POLICY = POLICIES / "ecommerce_consumer_loan.policy"
ACCOUNTS = ROOT / "examples" / "accounts.csv"
CONTACTS = ROOT / "examples" / "contacts.csv"
SCHEMA = json.loads((ROOT / "docs" / "decision.schema.json").read_text(encoding="utf-8"))
NOW = "2025-06-04T02:00:00Z"
CONTRACT_KEYS = {"account_id", "stage", "segments", "allowed", "next_action", "blocked", "error", "now", "policy"}
BLOCKED_KEYS = {"action", "kind", "reason", "rule", "rule_id", "until"}
CSV_HEADER = ["account_id", "stage", "segments", "next_action", "allowed", "error"]  # then 3 columns per action
SUMMARY = re.compile(r"([\d,]+) rows? read = ([\d,]+) decisions? \+ ([\d,]+) error rows?")


# ------------------------------------------------------------ helpers


def invoke(*args: Any, input: str | bytes | None = None, width: int | None = None) -> Result:
    """The command in-process; stderr is not a terminal, as in CI. `width`
    widens the console (explanations are trees that wrap at 80 columns)."""
    env = {"COLUMNS": str(width)} if width else None
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input, env=env)


def run_example(*extra: Any) -> Result:
    return invoke("run", POLICY, ACCOUNTS, "--history", CONTACTS, "--now", NOW, *extra)


def data_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    return [row for row in rows[1:] if row and row != [""]]


def jsonl(text: str) -> list[dict[str, Any]]:
    assert text == "" or text.endswith("\n"), "every JSONL record ends with a newline"
    return [json.loads(line) for line in text.splitlines()]


def summary_counts(stderr: str) -> tuple[int, int, int]:
    match = SUMMARY.search(stderr)
    assert match, f"no summary on stderr:\n{stderr}"
    rows, decided, errors = (int(group.replace(",", "")) for group in match.groups())
    return rows, decided, errors


def policy_script() -> list[str]:
    """The installed console script, or `python -m policydsl` beside it."""
    found = shutil.which("policy") or shutil.which("policy", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "policydsl"]


def run_process(args: list[Any], stdin: bytes | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "80", "NO_COLOR": "1"}
    return subprocess.run([str(arg) for arg in args], input=stdin, capture_output=True, cwd=cwd, env=env,
                          timeout=60, check=False)


def write_policy(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


SMALL_POLICY = """\
policy "small" version "1"
account {
    id            : text
    days_past_due : int
    balance       : money = 0
}
actions { sms, agent_call }
stages on days_past_due {
    current .. 0
    late    1 ..
}
stage late { allow agent_call, sms }
forbid agent_call when balance > ¥100000 because "large balances go to the legal team"
"""


# ------------------------------------------------------------ a tiny validator for docs/decision.schema.json

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "null": type(None), "boolean": bool,
}


def schema_errors(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Errors of `instance` against the JSON-schema constructs decision.schema.json
    uses: type (one or a list), required, properties, additionalProperties:
    false, items, uniqueItems, pattern, enum."""
    errors: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(isinstance(instance, _TYPES[name]) and not (name != "boolean" and isinstance(instance, bool))
                   for name in types):
            return [f"{where}: {instance!r} is not of type {types}"]
    unknown = set(schema) - {"$schema", "$id", "title", "description", "type", "required", "properties",
                             "additionalProperties", "items", "uniqueItems", "pattern", "enum"}
    assert not unknown, f"the test validator does not know {unknown}; extend it"
    if isinstance(instance, dict):
        for name in schema.get("required", []):
            if name not in instance:
                errors.append(f"{where}: missing {name!r}")
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            errors.extend(f"{where}: unexpected {name!r}" for name in instance if name not in properties)
        for name, sub in properties.items():
            if name in instance:
                errors.extend(schema_errors(instance[name], sub, f"{where}.{name}"))
    if isinstance(instance, list):
        if schema.get("uniqueItems") and len({json.dumps(item, sort_keys=True) for item in instance}) != len(instance):
            errors.append(f"{where}: items are not unique")
        for index, item in enumerate(instance):
            errors.extend(schema_errors(item, schema.get("items", {}), f"{where}[{index}]"))
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where}: {instance!r} is not one of {schema['enum']}")
    if isinstance(instance, str) and "pattern" in schema and not re.search(schema["pattern"], instance):
        errors.append(f"{where}: {instance!r} does not match {schema['pattern']}")
    return errors


def test_the_schema_validator_catches_violations() -> None:
    good = {"account_id": "A", "stage": None, "segments": [], "allowed": ["sms"], "next_action": "sms",
            "blocked": [{"action": "call", "kind": "window", "reason": "r", "rule": "p.policy:3",
                         "rule_id": "window-0123abcd", "until": "2025-06-04T00:00:00Z"}],
            "error": None, "now": "2025-06-04T00:00:00Z",
            "policy": {"name": "p", "version": "1", "digest": "sha256:" + "0" * 64}}
    assert schema_errors(good, SCHEMA) == []
    bad_cases = [
        {**good, "extra": 1},
        {key: value for key, value in good.items() if key != "error"},
        {**good, "allowed": ["sms", "sms"]},
        {**good, "segments": "a;b"},
        {**good, "blocked": [{**good["blocked"][0], "until": "2025-06-04 00:00"}]},
        {**good, "blocked": [{**good["blocked"][0], "rule": "no line"}]},
        {**good, "stage": False},
        {**good, "blocked": [{**good["blocked"][0], "kind": "banned"}]},
    ]
    for bad in bad_cases:
        assert schema_errors(bad, SCHEMA), bad


# ------------------------------------------------------------ policy run


def test_run_jsonl_on_the_example_follows_the_data_contract(tmp_path: Path) -> None:
    out = tmp_path / "decisions.jsonl"
    result = run_example("--format", "jsonl", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "", "with -o nothing goes to standard output"
    rows = data_rows(ACCOUNTS)
    text = out.read_text(encoding="utf-8")
    decisions = jsonl(text)
    assert len(decisions) == len(rows) == 250
    assert [d["account_id"] for d in decisions] == [row[0] for row in rows], "one decision per row, in order"
    for decision in decisions:
        assert set(decision) == CONTRACT_KEYS
        assert schema_errors(decision, SCHEMA) == []
        assert decision["error"] is None
        assert decision["next_action"] == (decision["allowed"][0] if decision["allowed"] else None)
        for entry in decision["blocked"]:
            assert set(entry) == BLOCKED_KEYS
            assert entry["action"] not in decision["allowed"]
        untils: dict[str, set[Any]] = {}
        for entry in decision["blocked"]:
            untils.setdefault(entry["action"], set()).add(entry["until"])
        assert all(len(values) == 1 for values in untils.values()), "until is the same on every entry of an action"
    assert summary_counts(result.stderr) == (250, 250, 0)


def test_run_to_stdout_by_default_and_the_summary_reconciles(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\nA1,12,100\nA2,x,100\n\nA3,45,-\nA4,95,900\nA5,3\n",
                        encoding="utf-8")
    result = invoke("run", POLICY, accounts, "--now", NOW)
    assert result.exit_code == 1, result.stderr
    decisions = jsonl(result.stdout)
    assert [d["account_id"] for d in decisions] == ["A1", "A2", "A3", "A4", "A5"]
    errors = [d for d in decisions if d["error"]]
    rows, decided, error_rows = summary_counts(result.stderr)
    assert rows == len(decisions) == decided + error_rows == 5
    assert error_rows == len(errors) == 3
    assert decided == sum(1 for d in decisions if d["error"] is None)
    assert "Traceback" not in result.stderr


def test_run_twice_gives_byte_identical_output(tmp_path: Path) -> None:
    for output_format in ("jsonl", "csv"):
        first, second = tmp_path / f"first.{output_format}", tmp_path / f"second.{output_format}"
        assert run_example("--format", output_format, "-o", first, "-q").exit_code == 0
        assert run_example("--format", output_format, "-o", second, "-q").exit_code == 0
        assert first.read_bytes() == second.read_bytes()
        assert first.stat().st_size > 10_000


def test_run_csv_format_carries_the_same_decisions_as_jsonl(tmp_path: Path) -> None:
    as_csv, as_jsonl = tmp_path / "d.csv", tmp_path / "d.jsonl"
    assert run_example("--format", "csv", "-o", as_csv, "-q").exit_code == 0
    assert run_example("-o", as_jsonl, "-q").exit_code == 0
    with as_csv.open(encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    actions = load_policy(POLICY).actions
    assert table[0] == CSV_HEADER + [f"{a}{s}" for a in actions for s in ("", "_until", "_reason")]
    decisions = jsonl(as_jsonl.read_text(encoding="utf-8"))
    assert len(table) - 1 == len(decisions) == 250
    for row, decision in zip(table[1:], decisions, strict=True):
        record = dict(zip(table[0], row, strict=True))
        assert record["account_id"] == decision["account_id"]
        assert record["stage"] == (decision["stage"] or "")
        assert record["segments"] == ";".join(decision["segments"])
        assert record["allowed"] == ";".join(decision["allowed"])
        assert record["next_action"] == (decision["next_action"] or "")
        assert record["error"] == (decision["error"] or "")
        for action in actions:
            entries = [entry for entry in decision["blocked"] if entry["action"] == action]
            assert (record[action] == "allowed") == (action in decision["allowed"])
            assert record[f"{action}_until"] == ((entries[0]["until"] or "") if entries else "")
            assert (record[f"{action}_reason"] != "") == bool(entries)
            assert not any(cell.startswith("[") for cell in row), "no JSON in cells"


def test_run_table_format_lists_every_account() -> None:
    result = run_example("--format", "table", "-q")
    assert result.exit_code == 0, result.stderr
    for heading in ("account", "stage", "segments", "next action", "allowed", "blocked"):
        assert heading in result.stdout
    ids = [row[0] for row in data_rows(ACCOUNTS)]
    shown = re.findall(r"A\d{4}", result.stdout)
    assert shown == ids, "every account once, in input order"
    assert "M3plus" in result.stdout and "senior_agent_call" in result.stdout


def test_run_table_format_shows_error_rows(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\nT1,12,100\nT2,soon,100\n", encoding="utf-8")
    result = invoke("run", POLICY, accounts, "--now", NOW, "--format", "table", "-q")
    assert result.exit_code == 1
    assert "T1" in result.stdout and "T2" in result.stdout
    assert "days_past_due" in result.stdout and "row 2" in result.stdout


def test_run_errors_file_holds_each_rejected_row_verbatim(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\nR1,12,100\nR2,twelve,100\nR3,40,1,extra\nR4,50,¥12\n"
                        "R5,60,100\n", encoding="utf-8")
    rejects, out = tmp_path / "rejects.csv", tmp_path / "out.jsonl"
    result = invoke("run", POLICY, accounts, "--now", NOW, "-o", out, "--errors", rejects)
    assert result.exit_code == 1
    decisions = jsonl(out.read_text(encoding="utf-8"))
    assert len(decisions) == 5
    assert [d["account_id"] for d in decisions if d["error"] is None] == ["R1", "R5"]
    with rejects.open(encoding="utf-8", newline="") as handle:
        rejected = list(csv.reader(handle))
    assert rejected[0][:2] == ["row", "reason"]
    assert [row[0] for row in rejected[1:]] == ["2", "3", "4"]
    assert rejected[1][2:] == ["R2", "twelve", "100"]
    assert rejected[2][2:] == ["R3", "40", "1", "extra"]
    assert rejected[3][2:] == ["R4", "50", "¥12"]
    assert "days_past_due" in rejected[1][1] and "balance" in rejected[3][1]
    errors = [d["error"] for d in decisions if d["error"]]
    assert [row[1] for row in rejected[1:]] == errors, "the reason is the decision's error"


def test_run_errors_file_is_written_even_when_nothing_is_rejected(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    assert run_example("-o", tmp_path / "out.jsonl", "--errors", rejects, "-q").exit_code == 0
    with rejects.open(encoding="utf-8", newline="") as handle:
        assert len(list(csv.reader(handle))) == 1  # the header only


def test_run_exit_2_when_a_required_column_is_missing(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,balance\nA1,100\n", encoding="utf-8")
    result = invoke("run", POLICY, accounts, "--now", NOW)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "days_past_due" in result.stderr and "missing column" in result.stderr
    assert "Traceback" not in result.stderr


BROKEN = """\
policy "broken" version "1"
account { id : text  days_past_due : int }
actions { sms }
stages on days_past_due { current .. 0  late 1 .. }
stage late { allow sms }
forbid sms when days_past_due > 1000 because "accounts this late go to the legal team" oops
"""


def assert_points_at(stderr: str, path: Path, source: str, line: int, column: int) -> None:
    """`file:line:col`, then the source line, then a caret under the column."""
    assert f"{path}:{line}:{column}:" in stderr, stderr
    text = source.splitlines()[line - 1]
    lines = stderr.splitlines()
    index = next(i for i, shown in enumerate(lines) if shown.endswith(text))
    caret = lines[index + 1]
    assert caret.index("^") == len(lines[index]) - len(text) + column - 1, f"{lines[index]}\n{caret}"


def test_run_exit_2_on_a_broken_policy_with_position_line_and_caret(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "broken.policy", BROKEN)
    column = BROKEN.splitlines()[5].index("oops") + 1
    result = invoke("run", policy, ACCOUNTS, "--now", NOW)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert_points_at(result.stderr, policy, BROKEN, 6, column)
    assert "Traceback" not in result.stderr


def test_run_exit_2_on_a_policy_that_does_not_check(tmp_path: Path) -> None:
    text = SMALL_POLICY.replace("stage late { allow agent_call, sms }", "stage late { allow agent_call, fax }")
    policy = write_policy(tmp_path, "unknown.policy", text)
    result = invoke("run", policy, ACCOUNTS, "--now", NOW)
    assert result.exit_code == 2
    line = next(i for i, shown in enumerate(text.splitlines(), 1) if "fax" in shown)
    assert f"{policy}:{line}:" in result.stderr
    assert "fax" in result.stderr and "^" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--now", "2025-06-04"], "offset"),
    (["--now", "yesterday"], "ISO-8601"),
    (["--format", "xml"], "xml"),
])
def test_run_exit_2_on_bad_usage(args: list[str], message: str) -> None:
    result = invoke("run", POLICY, ACCOUNTS, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_run_exit_2_on_missing_input_files(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.csv"
    result = invoke("run", POLICY, missing, "--now", NOW)
    assert result.exit_code == 2 and "nothere.csv" in result.stderr and "Traceback" not in result.stderr
    result = invoke("run", POLICY, ACCOUNTS, "--history", missing, "--now", NOW)
    assert result.exit_code == 2 and "nothere.csv" in result.stderr
    result = invoke("run", tmp_path / "nothere.policy", ACCOUNTS, "--now", NOW)
    assert result.exit_code == 2 and "nothere.policy" in result.stderr


def test_run_exit_2_when_the_output_cannot_be_written(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.jsonl"
    result = invoke("run", POLICY, ACCOUNTS, "--now", NOW, "-o", target)
    assert result.exit_code == 2, result.output
    assert "out.jsonl" in result.stderr and "cannot write" in result.stderr
    assert isinstance(result.exception, SystemExit), "a clean exit, not a traceback"
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    result = invoke("run", POLICY, ACCOUNTS, "--now", NOW, "-o", out, "--errors", target.with_name("rejects.csv"))
    assert result.exit_code == 2 and "rejects.csv" in result.stderr
    assert out.read_text(encoding="utf-8") == "previous\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jsonl"], "no temporary file left behind"


def test_output_is_atomic_the_previous_file_survives_a_failed_run(tmp_path: Path) -> None:
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.csv"
    out.write_text("previous decisions\n", encoding="utf-8")
    rejects.write_text("previous rejects\n", encoding="utf-8")
    broken = write_policy(tmp_path, "broken.policy", BROKEN)
    no_column = tmp_path / "accounts.csv"
    no_column.write_text("id,balance\nA1,100\n", encoding="utf-8")
    for args in ([broken, ACCOUNTS], [POLICY, no_column], [POLICY, tmp_path / "absent.csv"]):
        result = invoke("run", *args, "--now", NOW, "-o", out, "--errors", rejects)
        assert result.exit_code == 2
        assert out.read_text(encoding="utf-8") == "previous decisions\n"
        assert rejects.read_text(encoding="utf-8") == "previous rejects\n"
    leftovers = sorted(path.name for path in tmp_path.iterdir())
    assert leftovers == ["accounts.csv", "broken.policy", "out.jsonl", "rejects.csv"], "no temporary files left"
    assert run_example("-o", out, "--errors", rejects, "-q").exit_code == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 250


def test_run_a_policy_that_includes_a_baseline(tmp_path: Path) -> None:
    write_policy(tmp_path, "base.policy", """\
policy "base" version "1"
account { id : text  timezone : zone = "Asia/Shanghai" }
actions { voice }
window voice 08:00-21:00 because "contact hours" cite "baseline art. 1"
""")
    policy = write_policy(tmp_path, "main.policy", SMALL_POLICY.replace(
        'policy "small" version "1"\n',
        'policy "small" version "1"\ninclude "base.policy" with { voice = agent_call }\n'))
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\nI1,5,10\n", encoding="utf-8")
    result = invoke("run", policy, accounts, "--now", "2025-06-03T20:00:00Z", "-q")  # 04:00 in Shanghai
    assert result.exit_code == 0, result.stderr
    (decision,) = jsonl(result.stdout)
    assert decision["allowed"] == ["sms"]
    (entry,) = [e for e in decision["blocked"] if e["action"] == "agent_call"]
    assert entry["rule"] == "base.policy:4"  # relative to the policy's directory
    assert entry["until"] == "2025-06-04T00:00:00Z"
    assert "baseline art. 1" in entry["reason"]


# ------------------------------------------------------------ real processes


def test_console_script_reads_accounts_from_stdin() -> None:
    data = ACCOUNTS.read_bytes()
    done = run_process([*policy_script(), "run", POLICY, "-", "--history", CONTACTS, "--now", NOW], stdin=data)
    assert done.returncode == 0, done.stderr.decode()
    piped = jsonl(done.stdout.decode("utf-8"))
    from_file = jsonl(run_example("-q").stdout)
    assert piped == from_file
    assert summary_counts(done.stderr.decode("utf-8")) == (250, 250, 0)
    assert b"Traceback" not in done.stderr


def test_console_script_exit_codes_and_clean_errors(tmp_path: Path) -> None:
    broken = write_policy(tmp_path, "broken.policy", BROKEN)
    done = run_process([*policy_script(), "check", broken], cwd=tmp_path)
    assert done.returncode == 1
    stderr = done.stderr.decode("utf-8")
    assert_points_at(stderr, Path("broken.policy"), BROKEN, 6, BROKEN.splitlines()[5].index("oops") + 1)
    assert "Traceback" not in stderr
    done = run_process([*policy_script(), "run", broken, ACCOUNTS], cwd=tmp_path)
    assert done.returncode == 2 and b"Traceback" not in done.stderr and done.stdout == b""
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,days_past_due,balance\r\nX1,5,10\r\nX2,5,\xff\r\n")
    done = run_process([*policy_script(), "run", POLICY, bad, "--now", NOW, "-q"], cwd=tmp_path)
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert len(done.stdout.decode("utf-8").splitlines()) == 2


def test_python_dash_m_policydsl_works() -> None:
    done = run_process([sys.executable, "-m", "policydsl", "check", POLICY])
    assert done.returncode == 0, done.stderr.decode()
    assert b"1 file(s) checked: 0 error(s)" in done.stderr
    version = run_process([sys.executable, "-m", "policydsl", "--version"])
    assert version.returncode == 0 and b"0.1.0" in version.stdout


# ------------------------------------------------------------ policy check


def test_check_the_shipped_policies_directory() -> None:
    result = invoke("check", POLICIES)
    assert result.exit_code == 0, result.stderr
    count = len(list(POLICIES.rglob("*.policy")))
    assert f"{count} file(s) checked: 0 error(s)" in result.stderr


def test_check_syntax_error_exit_1_with_position_and_caret(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "broken.policy", BROKEN)
    result = invoke("check", policy)
    assert result.exit_code == 1
    assert_points_at(result.stderr, policy, BROKEN, 6, BROKEN.splitlines()[5].index("oops") + 1)
    assert "error[E001]" in result.stderr
    assert "1 file(s) checked: 1 error(s)" in result.stderr
    assert "Traceback" not in result.stderr


GAP = SMALL_POLICY.replace("    late    1 ..\n", "    late    4 ..\n")
OVERLAP = SMALL_POLICY.replace("    late    1 ..\n", "    late    0 ..\n")


def test_check_stage_gap_names_the_missing_values(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "gap.policy", GAP)
    result = invoke("check", policy)
    assert result.exit_code == 1
    assert "E107" in result.stderr
    assert "days_past_due = 1 .. 3" in result.stderr, "the values in no stage, exactly"
    line = GAP.splitlines().index("    late    4 ..") + 1
    assert f"{policy}:{line}:" in result.stderr


def test_check_stage_gap_of_one_value(tmp_path: Path) -> None:
    text = (POLICY.read_text(encoding="utf-8")
            .replace("M1      31 .. 60", "M1      32 .. 60"))
    for sibling in POLICIES.glob("*.policy"):  # keep any include resolvable
        if sibling.name != POLICY.name:
            shutil.copy(sibling, tmp_path / sibling.name)
    policy = write_policy(tmp_path, POLICY.name, text)
    result = invoke("check", policy)
    assert result.exit_code == 1
    assert "days_past_due = 31" in result.stderr
    assert "'M0'" in result.stderr and "'M1'" in result.stderr


def test_check_json_format(tmp_path: Path) -> None:
    gap = write_policy(tmp_path, "gap.policy", GAP)
    broken = write_policy(tmp_path, "broken.policy", BROKEN)
    result = invoke("check", "--format", "json", gap, broken)
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert {d["code"] for d in found} == {"E107", "E001"}
    for diagnostic in found:
        assert set(diagnostic) >= {"file", "line", "column", "end_line", "end_column", "code", "severity", "message"}
        assert diagnostic["severity"] == "error"
    (syntax,) = [d for d in found if d["code"] == "E001"]
    assert (syntax["file"], syntax["line"], syntax["column"]) == (str(broken), 6,
                                                                   BROKEN.splitlines()[5].index("oops") + 1)
    clean = invoke("check", "--format", "json", POLICY)
    assert clean.exit_code == 0 and isinstance(json.loads(clean.stdout), list)


def test_check_github_format(tmp_path: Path) -> None:
    gap = write_policy(tmp_path, "gap.policy", GAP)
    result = invoke("check", "--format", "github", gap)
    assert result.exit_code == 1
    line = GAP.splitlines().index("    late    4 ..") + 1
    (annotation,) = result.stdout.splitlines()
    assert re.fullmatch(rf"::error file={re.escape(str(gap))},line={line},col=\d+,title=E107::.+", annotation)


NO_BECAUSE = SMALL_POLICY.replace(' because "large balances go to the legal team"', "")


def test_check_strict_fails_on_warnings(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "warn.policy", NO_BECAUSE)
    relaxed = invoke("check", policy)
    assert relaxed.exit_code == 0, relaxed.stderr
    assert "W203" in relaxed.stderr and "0 error(s), 1 warning(s)" in relaxed.stderr
    strict = invoke("check", "--strict", policy)
    assert strict.exit_code == 1
    github = invoke("check", "--format", "github", policy)
    assert github.exit_code == 0
    assert github.stdout.startswith(f"::warning file={policy},line=13,")
    as_json = json.loads(invoke("check", "--format", "json", policy).stdout)
    assert [(d["code"], d["severity"]) for d in as_json] == [("W203", "warning")]


def test_check_directories_recursively(tmp_path: Path) -> None:
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    write_policy(tmp_path, "good.policy", SMALL_POLICY)
    write_policy(tmp_path / "nested", "gap.policy", GAP)
    write_policy(tmp_path / "nested" / "deeper", "broken.policy", BROKEN)
    write_policy(tmp_path, "notes.txt", "not a policy")
    result = invoke("check", tmp_path)
    assert result.exit_code == 1
    assert "3 file(s) checked: 2 error(s)" in result.stderr
    assert "gap.policy" in result.stderr and "broken.policy" in result.stderr
    good_only = invoke("check", "--strict", tmp_path / "good.policy")
    assert good_only.exit_code == 0


def test_check_an_empty_directory_is_bad_usage(tmp_path: Path) -> None:
    result = invoke("check", tmp_path)
    assert result.exit_code == 2
    assert "no .policy files" in result.stderr


def test_check_a_missing_file_is_reported_not_raised(tmp_path: Path) -> None:
    result = invoke("check", tmp_path / "absent.policy")
    assert result.exit_code == 1
    assert "absent.policy:1:1" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------ policy explain


def test_explain_an_account_given_on_the_command_line() -> None:
    result = invoke("explain", POLICY, "--account", "id=X1,days_past_due=45,balance=820.00",
                    "--account", "risk_score=0.2", "--now", NOW, width=400)
    assert result.exit_code == 0, result.output
    assert "account X1" in result.stdout
    assert "next action: agent_call" in result.stdout
    assert "stage M1" in result.stdout
    text = POLICY.read_text(encoding="utf-8").splitlines()
    m1 = next(i for i, line in enumerate(text, 1) if line.strip().startswith("M1 "))
    allow = next(i for i, line in enumerate(text, 1) if line.strip() == "allow agent_call, sms, app_push")
    flat = re.sub(r"\s+", " ", result.stdout)
    assert f"ecommerce_consumer_loan.policy:{m1}" in flat
    assert f"ecommerce_consumer_loan.policy:{allow}" in flat
    assert "days_past_due = 45" in flat


def test_explain_a_forbidden_account_cites_the_forbid() -> None:
    result = invoke("explain", POLICY, "--account", "id=X2,days_past_due=12,balance=100,flags=deceased;vip",
                    "--now", NOW, width=400)
    assert result.exit_code == 0
    flat = re.sub(r"\s+", " ", result.stdout)
    line = next(i for i, text in enumerate(POLICY.read_text(encoding="utf-8").splitlines(), 1)
                if '"deceased" in flags' in text)
    assert f"ecommerce_consumer_loan.policy:{line}" in flat
    assert "next action: none" in flat
    assert "debtor deceased" in flat
    assert "✔" not in flat, "nothing is allowed"
    assert flat.count("✘") == len(load_policy(POLICY).actions), "every action is explained as blocked"


def test_explain_an_account_of_a_file_agrees_with_run(tmp_path: Path) -> None:
    decisions = {d["account_id"]: d for d in jsonl(run_example("-q").stdout)}
    for account_id in ("A0013", "A0009", "A0011", "A0001"):
        result = invoke("explain", POLICY, ACCOUNTS, "--id", account_id, "--history", CONTACTS, "--now", NOW,
                        width=400)
        assert result.exit_code == 0, result.output
        decision = decisions[account_id]
        flat = re.sub(r"\s+", " ", result.stdout)
        assert f"account {account_id}" in flat
        assert f"next action: {decision['next_action'] or 'none'}" in flat
        for action in decision["allowed"]:
            assert f"✔ {action} allowed" in flat
        for entry in decision["blocked"]:
            when = f"until {entry['until']}" if entry["until"] else "time alone will not lift it"
            assert f"✘ {entry['action']} blocked ({when})" in flat
            assert entry["rule"].split("/")[-1] in flat


def test_explain_errors() -> None:
    unknown = invoke("explain", POLICY, ACCOUNTS, "--id", "NOPE", "--now", NOW)
    assert unknown.exit_code == 2 and "NOPE" in unknown.stderr
    neither = invoke("explain", POLICY, "--now", NOW)
    assert neither.exit_code == 2 and "--account" in neither.stderr
    malformed = invoke("explain", POLICY, "--account", "id=X,days_past_due", "--now", NOW)
    assert malformed.exit_code == 2 and "field=value" in malformed.stderr
    bad_value = invoke("explain", POLICY, "--account", "id=X,days_past_due=soon,balance=1", "--now", NOW)
    assert bad_value.exit_code == 1
    assert "days_past_due" in bad_value.stdout and "soon" in bad_value.stdout
    for result in (unknown, neither, malformed, bad_value):
        assert "Traceback" not in result.output


def test_explain_never_decides_on_a_partial_history(tmp_path: Path) -> None:
    """A promise to pay recorded on an unreadable row must not turn into "call now"."""
    history = tmp_path / "contacts.csv"
    history.write_text("account_id,action,at,outcome\n"
                       "Q1,agent_call,yesterday 9am,promise_to_pay\n"
                       "Q2,agent_call,2025-06-04T09:00:00+08:00,no_answer\n", encoding="utf-8")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\nQ1,45,100\nQ2,45,100\n", encoding="utf-8")
    ran = jsonl(invoke("run", POLICY, accounts, "--history", history, "--now", NOW, "-q").stdout)
    assert "contacts.csv:2" in ran[0]["error"] and ran[1]["error"] is None
    for args in (["--account", "id=Q1,days_past_due=45,balance=100"], [accounts, "--id", "Q1"]):
        result = invoke("explain", POLICY, *args, "--history", history, "--now", NOW, width=400)
        assert result.exit_code == 1, result.output
        assert "cannot be evaluated" in result.stdout and "contacts.csv:2" in result.stdout
        assert "next action: agent_call" not in result.stdout
    other = invoke("explain", POLICY, accounts, "--id", "Q2", "--history", history, "--now", NOW, width=400)
    assert other.exit_code == 0 and "next action: agent_call" in other.stdout


def test_help_and_version() -> None:
    assert invoke("--version").exit_code == 0
    for command in ("run", "check", "explain"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout


def test_jsonl_is_valid_utf8_with_non_ascii_ids(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\n账户一,12,100\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert invoke("run", POLICY, accounts, "--now", NOW, "-o", out, "-q").exit_code == 0
    (decision,) = jsonl(io.TextIOWrapper(io.BytesIO(out.read_bytes()), encoding="utf-8").read())
    assert decision["account_id"] == "账户一"


def test_run_with_several_jobs_gives_the_same_bytes_in_the_same_order(tmp_path: Path) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert run_example("-o", one, "-q").exit_code == 0
    result = run_example("-o", two, "-q", "--jobs", "2")
    assert result.exit_code == 0, result.stderr
    assert one.read_bytes() == two.read_bytes()


def test_run_with_several_jobs_keeps_error_rows_and_the_summary(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\nA1,12,100\nA2,x,100\nA3,45,7\n", encoding="utf-8")
    result = invoke("run", POLICY, accounts, "--now", NOW, "--jobs", "2")
    assert result.exit_code == 1
    assert [d["account_id"] for d in jsonl(result.stdout)] == ["A1", "A2", "A3"]
    assert summary_counts(result.stderr) == (3, 2, 1)
