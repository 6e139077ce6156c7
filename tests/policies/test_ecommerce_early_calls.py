"""The e-commerce policy's early human intervention, end to end through
`policy run` (a real subprocess, real files): warned accounts in the
high-risk tier (risk_score >= 0.7) may get an agent call before the due date;
other warned current accounts get reminders only; unwarned ones nothing. The
China baseline's hours and the policy's quiet periods still apply.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

POLICY = Path(__file__).resolve().parents[2] / "policies" / "ecommerce_consumer_loan.policy"


def line_of(fragment: str) -> str:
    lines = POLICY.read_text(encoding="utf-8").splitlines()
    [number] = [index for index, text in enumerate(lines, 1) if fragment in text.split("#", 1)[0]]
    return f"{POLICY.name}:{number}"


def run(tmp_path: Path, now: str, accounts: list[dict[str, str]], contacts: list[list[str]]
        ) -> dict[str, dict[str, Any]]:
    accounts_path, contacts_path = tmp_path / "accounts.csv", tmp_path / "contacts.csv"
    out = tmp_path / "decisions.jsonl"
    columns = ["id", "days_past_due", "balance", "risk_score", "failed_payments", "broken_promises"]
    with accounts_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        writer.writerows(accounts)
    with contacts_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account_id", "action", "at", "outcome"])
        writer.writerows(contacts)
    script = Path(sys.executable).with_name("policy")
    result = subprocess.run(
        [str(script), "run", str(POLICY), str(accounts_path), "--history", str(contacts_path), "--now", now,
         "--format", "jsonl", "-o", str(out)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return {row["account_id"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}


ACCOUNTS = [
    {"id": "HIGH", "days_past_due": "0", "balance": "800", "risk_score": "0.7"},
    {"id": "WARNED", "days_past_due": "-3", "balance": "800", "risk_score": "0.69"},
    {"id": "PROMISES", "days_past_due": "0", "balance": "800", "failed_payments": "2", "broken_promises": "2"},
    {"id": "CALM", "days_past_due": "0", "balance": "800", "broken_promises": "2"},
    {"id": "QUIET", "days_past_due": "0", "balance": "800", "risk_score": "0.9"},
]
# QUIET promised to pay on an agent call on Tuesday 3 June at 15:00 Shanghai
CONTACTS = [["QUIET", "agent_call", "2025-06-03T15:00:00+08:00", "promise_to_pay"]]


def test_warned_high_risk_current_accounts_get_an_agent_call_first(tmp_path: Path) -> None:
    rows = run(tmp_path, "2025-06-04T10:00:00+08:00", ACCOUNTS, CONTACTS)
    assert rows["HIGH"]["stage"] == "current"
    assert rows["HIGH"]["allowed"] == ["agent_call", "app_push", "sms", "ivr"]
    assert rows["HIGH"]["next_action"] == "agent_call"
    for warned in ("WARNED", "PROMISES"):  # warned, but risk_score under 0.7: reminders only
        assert rows[warned]["allowed"] == ["app_push", "sms", "ivr"]
        [agent] = [entry for entry in rows[warned]["blocked"] if entry["action"] == "agent_call"]
        assert agent["rule"] == line_of("allow agent_call when early_warning and risk_score >= 0.7")
        assert agent["until"] is None
    assert rows["CALM"]["allowed"] == []  # high_risk by broken promises, but no warning signal
    # the promise to pay gets three days of quiet (3, 4 and 5 June), then the day begins at 08:00
    assert rows["QUIET"]["allowed"] == ["app_push", "sms"]
    quiet = {(entry["action"], entry["until"]) for entry in rows["QUIET"]["blocked"]
             if "promise to pay gets three days of quiet" in entry["reason"]}
    assert quiet == {("agent_call", "2025-06-06T00:00:00Z"), ("ivr", "2025-06-06T00:00:00Z"),
                     ("senior_agent_call", None)}  # not allowed in this stage at all: no until


def test_an_early_agent_call_keeps_the_baselines_hours(tmp_path: Path) -> None:
    rows = run(tmp_path, "2025-06-04T21:30:00+08:00", ACCOUNTS[:1], [])
    assert rows["HIGH"]["allowed"] == []
    [agent] = [entry for entry in rows["HIGH"]["blocked"] if entry["action"] == "agent_call"]
    assert agent["until"] == "2025-06-05T00:00:00Z"  # 08:00 Thursday in Shanghai
    assert "cn_collection_baseline.policy" in agent["rule"]
