"""Accounts as JSON lines in `policy run` (issue 14: Parquet *as well as*
CSV and JSONL): the same decisions as the CSV, exact numbers, error rows
for lines that are no account, and the notes and `--strict` a CSV header
gets, learnt while reading."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from policydsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "policies" / "ecommerce_consumer_loan.policy"
ACCOUNTS = ROOT / "examples" / "accounts.csv"
CONTACTS = ROOT / "examples" / "contacts.csv"
NOW = "2025-06-04T02:00:00Z"
INTS = ("days_past_due", "failed_payments", "contact_changes_90d", "past_delinquencies", "broken_promises")
BOOLS = ("hardship", "debtor_unreachable")


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def decisions(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def as_json_lines(target: Path) -> Path:
    """The shipped accounts as a service would export them: typed values,
    numbers as JSON numbers written from their text, sets as lists, empty
    cells left out."""
    lines = []
    for row in csv.DictReader(ACCOUNTS.open(encoding="utf-8")):
        item: dict[str, Any] = {key: value for key, value in row.items() if value != ""}
        for key in INTS:
            if key in item:
                item[key] = int(item[key])
        for key in BOOLS:
            if key in item:
                item[key] = item[key] == "true"
        if "flags" in item:
            item["flags"] = item["flags"].split(";")
        text = json.dumps(item, ensure_ascii=False)
        for key in ("balance", "risk_score", "spending_change", "debt_to_income"):  # the CSV's digits, unquoted
            if row.get(key):
                text = text.replace(f'"{key}": "{row[key]}"', f'"{key}": {row[key]}')
        lines.append(text)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def test_the_shipped_example_decides_the_same_from_json_lines(tmp_path: Path) -> None:
    accounts = as_json_lines(tmp_path / "accounts.jsonl")
    assert '"balance": 12211.51,' in accounts.read_text(encoding="utf-8")
    from_csv = invoke("run", SEED, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "-o", tmp_path / "c.jsonl", "-q")
    from_json = invoke("run", SEED, accounts, "--history", CONTACTS, "--now", NOW, "-o", tmp_path / "j.jsonl")
    assert from_csv.exit_code == from_json.exit_code == 0, from_json.output
    assert decisions(tmp_path / "j.jsonl") == decisions(tmp_path / "c.jsonl")
    assert "joined in order" in from_json.output  # the history joined as with the CSV


def test_numbers_are_read_exactly(tmp_path: Path) -> None:
    """A JSON number is a Decimal, never a float: 4999.999999999999999 is
    below the ¥5000 threshold of legal review, where a float would round it
    up to 5000."""
    path = tmp_path / "a.data"
    path.write_text('{"id": "A1", "days_past_due": 120, "balance": 4999.999999999999999}\n'
                    '{"id": "A2", "days_past_due": 120, "balance": 5000}\n', encoding="utf-8")
    result = invoke("run", SEED, path, "--input-format", "jsonl", "--now", NOW, "-o", tmp_path / "d.jsonl", "-q")
    assert result.exit_code == 0, result.output
    below, at = decisions(tmp_path / "d.jsonl")
    assert "legal_review" not in below["allowed"] and "legal_review" in at["allowed"]


def test_lines_that_are_no_account_become_error_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "A1", "days_past_due": 40, "balance": 100}\n\n'
                    '{"id": "A2", "days_past_due": "abc", "balance": 1}\n'
                    '{"id": 3, "days_past_due": 1, "balance": 1}\n'
                    'not json\n[1, 2]\n{"id": "A6", "days_past_due": NaN, "balance": 1}\n'
                    '\ufeff{"id": "A7", "days_past_due": 1, "balance": 1}\n', encoding="utf-8")
    result = invoke("run", SEED, path, "--now", NOW, "-o", tmp_path / "d.jsonl", "--errors", tmp_path / "rej.csv")
    assert result.exit_code == 1, result.output
    found = decisions(tmp_path / "d.jsonl")
    assert [d["account_id"] for d in found] == ["A1", "A2", "3", None, None, None, "A7"]
    errors = [d["error"] for d in found]
    assert errors[0] is None and errors[2] is None and errors[6] is None
    assert errors[1] == "row 2 (line 3): field 'days_past_due': 'abc'; expected a whole number"
    assert errors[3].startswith("row 4 (line 5): not JSON (")
    assert errors[4] == "row 5 (line 6): a JSON object with the account's fields, not list"
    assert errors[5] == "row 6 (line 7): not JSON (NaN is not a number JSON has)"
    assert "7 rows read = 3 decisions + 4 error rows" in result.output
    assert "byte-order mark inside the file removed on line(s) 8" in result.output
    rejected = list(csv.reader((tmp_path / "rej.csv").open(encoding="utf-8")))
    assert rejected[0] == ["row", "reason", "json"]
    assert rejected[1][0] == "2" and json.loads(rejected[1][2])["days_past_due"] == "abc"
    assert [row[0] for row in rejected[1:]] == ["2", "4", "5", "6"]


def test_unknown_keys_are_reported_and_strict_refuses_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "A1", "days_past_due": 40, "balance": 100, "risk_scor": 0.9}\n'
                    '{"id": "A2", "days_past_due": 40, "balance": 100}\n', encoding="utf-8")
    result = invoke("run", SEED, path, "--now", NOW, "-o", tmp_path / "d.jsonl")
    assert result.exit_code == 0
    assert "key 'risk_scor' is not a field of the policy and is ignored (did you mean 'risk_score'?)" in result.output
    assert "defaulted field(s) are a key of no line" in result.output
    strict = invoke("run", SEED, path, "--now", NOW, "-o", tmp_path / "s.jsonl", "--strict")
    assert strict.exit_code == 1
    first, second = decisions(tmp_path / "s.jsonl")
    assert first["error"] == ("row 1 (line 1): key 'risk_scor' is not a field of the policy; --strict decides no "
                              "row with a key the policy does not read")
    assert first["account_id"] == "A1"
    assert second["error"].startswith("row 2 (line 2): no key for the defaulted field(s) broken_promises")
