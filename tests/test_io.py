"""Hostile CSV input through `policy run`.

Whatever the accounts file holds, every data row gets exactly one decision,
in order; a row that cannot be read becomes an error decision naming its row
number (and line) and the field at fault, and every other row is still
evaluated. Contact-history rows that cannot be read are reported with their
line, and the account they belong to gets an error decision rather than a
decision on a partial history.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from policydsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "policies" / "ecommerce_consumer_loan.policy"
NOW = "2025-06-04T02:00:00Z"  # Wednesday 10:00 in Shanghai

IO_POLICY = """\
policy "io-test" version "1"
account {
    id            : text
    days_past_due : int
    balance       : money
    due_date      : date = 2025-01-01
    promised_at   : datetime = 2025-01-01T00:00:00Z
    timezone      : zone = "Asia/Shanghai"
    flags         : set<text> = {}
    buckets       : set<int> = {}
    hardship      : bool = false
    risk_score    : number = 0
    tier          : enum(gold, silver) = silver
}
actions { sms, agent_call }
stages on days_past_due {
    current .. 0
    late    1 ..
}
segment overdue_long when days_since(due_date) > 30
segment promised when hours_since(promised_at) < 72
segment vip when tier == "gold" or 7 in buckets
stage late {
    allow agent_call when risk_score >= 0.5 or hardship or overdue_long
    allow sms when not promised and not vip
}
limit sms 1 per day because "one SMS a day"
forbid all when "deceased" in flags because "hand to the estate team"
"""


@dataclass
class Run:
    exit_code: int
    decisions: list[dict[str, Any]]
    stderr: str

    def errors(self) -> list[str]:
        return [d["error"] for d in self.decisions if d["error"]]

    def by_id(self, account_id: str) -> dict[str, Any]:
        (found,) = [d for d in self.decisions if d["account_id"] == account_id]
        return found


@pytest.fixture
def io_policy(tmp_path: Path) -> Path:
    path = tmp_path / "io.policy"
    path.write_text(IO_POLICY, encoding="utf-8")
    return path


def run(tmp_path: Path, policy: Path, accounts: bytes | str, history: bytes | str | None = None,
        *extra: str) -> Run:
    """`policy run` on these bytes; checks the one-decision-per-row contract."""
    accounts_path = tmp_path / "accounts.csv"
    accounts_path.write_bytes(accounts.encode("utf-8") if isinstance(accounts, str) else accounts)
    args = ["run", str(policy), str(accounts_path), "--now", NOW, "-o", str(tmp_path / "out.jsonl")]
    if history is not None:
        history_path = tmp_path / "contacts.csv"
        history_path.write_bytes(history.encode("utf-8") if isinstance(history, str) else history)
        args += ["--history", str(history_path)]
    result = CliRunner().invoke(main, [*args, *extra])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    out = tmp_path / "out.jsonl"
    decisions: list[dict[str, Any]] = []
    if result.exit_code != 2:
        raw = out.read_bytes()
        text = raw.decode("utf-8")  # always valid UTF-8, whatever came in
        decisions = [json.loads(line) for line in text.splitlines()]
        assert len(decisions) == records(accounts_path), "one decision per data row"
        match = re.search(r"([\d,]+) rows? read = ([\d,]+) decisions? \+ ([\d,]+) error rows?", result.stderr)
        if match:
            read, decided, failed = (int(group.replace(",", "")) for group in match.groups())
            assert read == len(decisions) == decided + failed
            assert failed == sum(1 for d in decisions if d["error"])
        expected = 1 if any(d["error"] for d in decisions) or re.search(r"^history:", result.stderr, re.M) else 0
        assert result.exit_code == expected, result.stderr
    return Run(result.exit_code, decisions, result.stderr)


def records(path: Path) -> int:
    """Physical data records of a CSV, blank lines excluded: as the csv module
    sees them, except that a quote left open at the end of the file swallows
    nothing (its record ends with its first line, the rest are records)."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        lines = handle.readlines()
    return _records_in(lines) - 1  # the header


def _records_in(lines: list[str]) -> int:
    reader = csv.reader(lines)
    count, start = 0, 1
    for row in reader:
        if row and row != [""]:
            count += 1
        if reader.line_num == len(lines) and start < len(lines) and _open_quote(lines[start - 1:]):
            return count + _records_in(lines[start:])
        start = reader.line_num + 1
    return count


def _open_quote(lines: list[str]) -> bool:
    try:
        list(csv.reader(lines, strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def assert_row_error(error: str | None, row: int, line: int, field: str | None = None) -> None:
    assert error is not None
    assert error.startswith(f"row {row} (line {line}):"), error
    if field is not None:
        assert f"'{field}'" in error, error


HEADER = "id,days_past_due,balance\n"


# ------------------------------------------------------------ shape of the file


def test_wrong_column_counts(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, HEADER + "A1,5,10\nA2,5\nA3,5,10,extra\nA4\nA5,5,10\n")
    assert result.exit_code == 1
    assert [d["account_id"] for d in result.decisions] == ["A1", "A2", "A3", "A4", "A5"]  # ids still readable
    errors = result.errors()
    assert_row_error(errors[0], 2, 3)
    assert "expected 3 fields, found 2" in errors[0]
    assert "expected 3 fields, found 4" in errors[1]
    assert "expected 3 fields, found 1" in errors[2]
    assert result.by_id("A1")["stage"] == result.by_id("A5")["stage"] == "late"


def test_blank_lines_are_skipped_and_rows_keep_their_numbers(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, HEADER + "\nB1,5,10\n\n\nB2,x,10\nB3,5,10\n\n")
    assert [d["account_id"] for d in result.decisions] == ["B1", "B2", "B3"]
    (error,) = result.errors()
    assert_row_error(error, 2, 6, "days_past_due")  # data row 2 sits on physical line 6


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path, io_policy: Path) -> None:
    plain = run(tmp_path, io_policy, HEADER + "C1,5,10\n").decisions
    with_bom = run(tmp_path, io_policy, b"\xef\xbb\xbf" + (HEADER + "C1,5,10\n").encode()).decisions
    assert with_bom == plain
    assert with_bom[0]["account_id"] == "C1" and with_bom[0]["error"] is None


def test_crlf_line_endings_change_nothing(tmp_path: Path, io_policy: Path) -> None:
    text = ("id,days_past_due,balance,flags\nD1,5,10,deceased\nD2,5,10,\nD3,oops,10,vip\n"
            "D4,5,10,\"a;\nb\"\nD5,5,x,\n")
    lf = run(tmp_path, io_policy, text).decisions
    crlf = run(tmp_path, io_policy, text.replace("\n", "\r\n")).decisions
    assert crlf == lf
    deceased = crlf[0]
    assert deceased["allowed"] == [] and {b["action"] for b in deceased["blocked"]} == {"sms", "agent_call"}
    assert "\r" not in json.dumps(crlf)
    assert_row_error(crlf[2]["error"], 3, 4, "days_past_due")
    assert_row_error(crlf[4]["error"], 5, 7, "balance")  # after a row spanning two lines


def test_quoted_newlines_stay_in_their_field_and_lines_are_counted(tmp_path: Path, io_policy: Path) -> None:
    text = ('id,days_past_due,balance,flags,notes\n'
            'E1,5,10,"vip;\ndeceased","first line\nsecond line\nthird line"\n'
            'E2,5,ten,,\n'
            '"E\n3",5,10,,"x"\n'
            'E4,5,10,,\n')
    result = run(tmp_path, io_policy, text)
    assert [d["account_id"] for d in result.decisions] == ["E1", "E2", "E\n3", "E4"]
    assert result.decisions[0]["allowed"] == []  # "deceased" after the quoted newline still counts
    assert_row_error(result.decisions[1]["error"], 2, 6, "balance")  # E1 spans lines 2-5
    assert result.decisions[2]["error"] is None and result.decisions[3]["error"] is None


def test_an_unterminated_quote_is_an_error_not_a_crash(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, HEADER + 'F1,5,10\nF2,5,"10\nF3,5,10\n')
    assert result.decisions[0]["error"] is None
    assert_row_error(result.decisions[1]["error"], 2, 3)
    assert "unterminated quote" in result.decisions[1]["error"]
    assert result.decisions[2]["account_id"] == "F3" and result.decisions[2]["error"] is None
    assert result.exit_code == 1


def test_bytes_that_are_not_utf8(tmp_path: Path, io_policy: Path) -> None:
    gbk_flag = "逾期".encode("gbk")
    data = (b"id,days_past_due,balance,flags\n"
            b"G1,5,10,\n"
            b"G2,5,10," + gbk_flag + b"\n"
            b"G\xe93,5,10,\n"
            b"G4,5,1\xff0,\n"
            b"G5,5,10,vip\n")
    result = run(tmp_path, io_policy, data)
    assert result.exit_code == 1
    assert len(result.decisions) == 5
    assert [d["error"] is None for d in result.decisions] == [True, False, False, False, True]
    assert_row_error(result.decisions[1]["error"], 2, 3, "flags")
    assert_row_error(result.decisions[2]["error"], 3, 4, "id")
    assert_row_error(result.decisions[3]["error"], 4, 5, "balance")
    assert all("UTF-8" in error for error in result.errors())


def test_a_latin1_header_does_not_crash_the_output(tmp_path: Path, io_policy: Path) -> None:
    """A column the policy does not read is ignored, whatever its bytes."""
    data = b"id,days_past_due,balance,caf\xe9\nH1,5,10,cr\xe8me\nH2,5,10,plain\n"
    result = run(tmp_path, io_policy, data)
    assert [d["account_id"] for d in result.decisions] == ["H1", "H2"]
    assert [d["error"] for d in result.decisions] == [None, None]


def test_bytes_that_are_not_utf8_in_a_read_column_are_a_row_error(tmp_path: Path, io_policy: Path) -> None:
    data = b"id,days_past_due,balance\nH1,5,1\xe90\nH2,5,10\n"
    result = run(tmp_path, io_policy, data)
    assert [d["account_id"] for d in result.decisions] == ["H1", "H2"]
    assert_row_error(result.decisions[0]["error"], 1, 2)
    assert "balance" in result.decisions[0]["error"] and result.decisions[1]["error"] is None


def test_very_long_fields(tmp_path: Path, io_policy: Path) -> None:
    megabyte = "x" * 1_000_000
    text = ("id,days_past_due,balance,flags,notes\n"
            f"L1,5,10,,{megabyte}\n"
            f"L2,5,10,{megabyte};deceased,\n"
            f"{megabyte},5,10,,\n"
            f"L4,{'9' * 1_000_000},10,,\n"
            f"L5,5,{'1' * 1_000_000},,\n"
            "L6,5,10,,\n")
    result = run(tmp_path, io_policy, text)
    ids = [d["account_id"] for d in result.decisions]
    assert ids[:2] == ["L1", "L2"] and ids[2] == megabyte and ids[3:] == ["L4", "L5", "L6"]
    assert result.decisions[0]["error"] is None and result.decisions[0]["allowed"] == ["agent_call", "sms"]
    assert result.decisions[1]["allowed"] == []  # the forbid still sees "deceased"
    assert result.decisions[2]["error"] is None
    assert_row_error(result.decisions[3]["error"], 4, 5, "days_past_due")
    assert result.decisions[4]["error"] is None, "a million-digit balance is still a decimal"
    assert result.decisions[5]["error"] is None


def test_duplicate_account_ids_each_get_their_own_decision(tmp_path: Path, io_policy: Path) -> None:
    # The contract is one decision per input row, in order; duplicates are not
    # merged or dropped, and both see the same contact history.
    history = "account_id,action,at,outcome\nK1,sms,2025-06-04T09:00:00+08:00,delivered\n"
    result = run(tmp_path, io_policy, HEADER + "K1,5,10\nK2,5,10\nK1,0,10\n", history)
    assert [d["account_id"] for d in result.decisions] == ["K1", "K2", "K1"]
    first, _, again = result.decisions
    assert first["stage"] == "late" and again["stage"] == "current"
    assert "sms" not in first["allowed"] and [b["action"] for b in first["blocked"]] == ["sms"]


# ------------------------------------------------------------ values


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Asia/Shanghai;Nowhere/Town", "../../etc/passwd",
                                  "+08:00", ";"])
def test_unknown_zones(tmp_path: Path, io_policy: Path, zone: str) -> None:
    result = run(tmp_path, io_policy, f'id,days_past_due,balance,timezone\nZ1,5,10,"{zone}"\nZ2,5,10,UTC\n')
    assert_row_error(result.decisions[0]["error"], 1, 2, "timezone")
    assert result.decisions[1]["error"] is None


def test_several_known_zones_are_accepted(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, 'id,days_past_due,balance,timezone\nZ1,5,10,Asia/Shanghai; Europe/London\n')
    assert result.decisions[0]["error"] is None


@pytest.mark.parametrize("field, value", [
    ("due_date", "2025-02-30"),
    ("due_date", "06/01/2025"),
    ("due_date", "yesterday"),
    ("due_date", "2025-06-01T08:00:00+08:00"),
    ("promised_at", "2025-06-01T08:00:00"),  # no offset: which zone's 08:00?
    ("promised_at", "2025-06-01"),
    ("promised_at", "2025-13-01T08:00:00Z"),
    ("days_past_due", "1.5"),
    ("days_past_due", "12 days"),
    ("days_past_due", "١٢"),  # Arabic-Indic digits
    ("balance", "1e5"),
    ("balance", "NaN"),
    ("balance", "Infinity"),
    ("balance", "1,000.00"),
    ("balance", "12.5.1"),
    ("balance", "¥500"),
    ("balance", "0x10"),
    ("risk_score", "--0.5"),
    ("hardship", "maybe"),
    ("tier", "platinum"),
    ("buckets", "1;two"),
])
def test_malformed_values(tmp_path: Path, io_policy: Path, field: str, value: str) -> None:
    columns = ["id", "days_past_due", "balance", field] if field not in ("days_past_due", "balance") \
        else ["id", "days_past_due", "balance"]
    good = {"id": "V1", "days_past_due": "5", "balance": "10"}
    bad = {**good, "id": "V2", field: value}
    lines = [",".join(columns)]
    for row in (good, bad, {**good, "id": "V3"}):
        lines.append(",".join(f'"{row.get(name, "")}"' for name in columns))
    result = run(tmp_path, io_policy, "\n".join(lines) + "\n")
    assert [d["account_id"] for d in result.decisions] == ["V1", "V2", "V3"]
    assert result.decisions[0]["error"] is None and result.decisions[2]["error"] is None
    error = result.decisions[1]["error"]
    assert_row_error(error, 2, 3, field)
    assert repr(value) in error or value in error, "the error shows the value"
    assert "expected" in error


@pytest.mark.parametrize("field, value", [
    ("days_past_due", " 7 "), ("days_past_due", "+7"), ("days_past_due", "-0"), ("balance", "10."),
    ("balance", ".5"), ("balance", " 1234.5678 "), ("hardship", "Yes"), ("hardship", "0"),
    ("due_date", "2025-06-01"), ("promised_at", "2025-06-01 08:00:00+08:00"), ("promised_at", "2025-06-01T00:00Z"),
    ("tier", " gold "), ("buckets", "1; 7 ;"), ("flags", ";;vip;"),
])
def test_well_formed_values_in_unusual_spellings(tmp_path: Path, io_policy: Path, field: str, value: str) -> None:
    columns = ["id", "days_past_due", "balance"] + ([field] if field not in ("days_past_due", "balance") else [])
    row = {"id": "W1", "days_past_due": "5", "balance": "10", field: value}
    text = ",".join(columns) + "\n" + ",".join(f'"{row[name]}"' for name in columns) + "\n"
    result = run(tmp_path, io_policy, text)
    assert result.decisions[0]["error"] is None, result.decisions[0]["error"]


# ------------------------------------------------------------ whole files


def test_an_empty_file_stops_the_run(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, b"")
    assert result.exit_code == 2
    assert "empty" in result.stderr and "accounts.csv" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_a_header_only_file_is_zero_rows(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, HEADER)
    assert result.exit_code == 0
    assert result.decisions == []
    assert (tmp_path / "out.jsonl").read_bytes() == b""
    assert "0 rows read = 0 decisions + 0 error rows" in result.stderr


def test_missing_required_column_stops_the_run(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, "id,balance,days past due\nM1,10,5\n")
    assert result.exit_code == 2
    assert "days_past_due" in result.stderr and "missing column" in result.stderr


def test_missing_optional_columns_take_their_defaults(tmp_path: Path, io_policy: Path) -> None:
    minimal = run(tmp_path, io_policy, HEADER + "N1,5,10\n").decisions
    explicit = run(tmp_path, io_policy,
                   "id,days_past_due,balance,due_date,promised_at,timezone,flags,buckets,hardship,risk_score,tier\n"
                   "N1,5,10,2025-01-01,2025-01-01T00:00:00Z,Asia/Shanghai,,,false,0,silver\n").decisions
    empty_cells = run(tmp_path, io_policy,
                      "id,days_past_due,balance,due_date,promised_at,timezone,flags,buckets,hardship,risk_score,tier\n"
                      "N1,5,10,,,,,,,,\n").decisions
    assert minimal == explicit == empty_cells
    assert minimal[0]["error"] is None
    assert minimal[0]["segments"] == ["overdue_long"]


def test_missing_optional_columns_on_the_seed_policy(tmp_path: Path) -> None:
    result = run(tmp_path, SEED, "id,days_past_due,balance\nS1,45,820.00\nS2,0,1\nS3,95,6000\n")
    assert result.exit_code == 0
    assert [d["stage"] for d in result.decisions] == ["M1", "current", "M3plus"]
    assert result.decisions[0]["next_action"] == "agent_call"


def test_extra_columns_are_ignored_and_headers_are_trimmed(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, " id , days_past_due ,balance,colour,days_past_due_old\nX1,5,10,red,99\n")
    assert result.decisions[0]["error"] is None and result.decisions[0]["stage"] == "late"


def test_the_seed_example_through_the_hostile_path_is_unchanged(tmp_path: Path) -> None:
    """The shipped example, re-encoded with BOM and CRLF, decides identically."""
    text = (ROOT / "examples" / "accounts.csv").read_text(encoding="utf-8")
    plain = run(tmp_path, SEED, text).decisions
    hostile = run(tmp_path, SEED, b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8")).decisions
    assert plain == hostile and len(plain) == 250


# ------------------------------------------------------------ contact history


GOOD_ACCOUNTS = HEADER + "P1,5,10\nP2,5,10\nP3,5,10\nP4,5,10\nP5,5,10\nP6,5,10\n"


def test_unreadable_history_rows_are_reported_and_their_accounts_not_decided(tmp_path: Path,
                                                                           io_policy: Path) -> None:
    history = ("account_id,action,at,outcome\n"
               "P1,sms,2025-06-04T09:00:00+08:00,delivered\n"        # line 2: fine
               "P2,sms,not a time,delivered\n"                       # line 3: bad instant
               "P3,sms,2025-06-04T09:00:00,delivered\n"              # line 4: no offset
               "P4,sms\n"                                            # line 5: too few fields
               ",sms,2025-06-04T09:00:00+08:00,delivered\n"          # line 6: no account id
               "P5,sms,2025-06-04T09:00:00+08:00,\"multi\nline\"\n"  # lines 7-8: fine
               "P6,sms,2025-06-31T09:00:00+08:00,delivered\n")       # line 9: no such day
    result = run(tmp_path, io_policy, GOOD_ACCOUNTS, history)
    assert result.exit_code == 1
    stderr = re.sub(r"\s+", " ", result.stderr)
    for line in (3, 4, 5, 6, 9):
        assert f"contacts.csv:{line}:" in stderr, (line, stderr)
    assert "contacts.csv:2:" not in stderr and "contacts.csv:7:" not in stderr
    decided = {d["account_id"]: d for d in result.decisions}
    assert decided["P1"]["error"] is None and "sms" not in decided["P1"]["allowed"]  # capped by the good row
    assert decided["P5"]["error"] is None and "sms" not in decided["P5"]["allowed"]
    for account_id, line in (("P2", 3), ("P3", 4), ("P4", 5), ("P6", 9)):
        error = decided[account_id]["error"]
        assert error is not None and "contact history" in error and f"contacts.csv:{line}" in error, error
        assert decided[account_id]["allowed"] == []
    assert "contact history: 7 rows, 5 unreadable" in stderr


def test_a_history_problem_for_an_unknown_account_still_fails_the_run(tmp_path: Path, io_policy: Path) -> None:
    history = "account_id,action,at,outcome\nNOBODY,sms,garbage,x\n"
    result = run(tmp_path, io_policy, GOOD_ACCOUNTS, history)
    assert result.exit_code == 1
    assert all(d["error"] is None for d in result.decisions)
    assert "contacts.csv:2:" in result.stderr


def test_history_with_bom_crlf_and_bad_bytes(tmp_path: Path, io_policy: Path) -> None:
    history = (b"\xef\xbb\xbfaccount_id,action,at,outcome\r\n"
               b"P1,sms,2025-06-04T09:00:00+08:00,delivered\r\n"
               b"P2,sms,2025-06-04T09:00:00+08:00,\xd2\xd1\xcb\xcd\r\n")  # GBK outcome
    result = run(tmp_path, io_policy, GOOD_ACCOUNTS, history)
    decided = {d["account_id"]: d for d in result.decisions}
    assert decided["P1"]["error"] is None and "sms" not in decided["P1"]["allowed"]
    assert "contacts.csv:3" in (decided["P2"]["error"] or "")
    assert "UTF-8" in (decided["P2"]["error"] or "")


def test_history_missing_a_column_or_empty_stops_the_run(tmp_path: Path, io_policy: Path) -> None:
    result = run(tmp_path, io_policy, GOOD_ACCOUNTS, "account_id,action,outcome\nP1,sms,ok\n")
    assert result.exit_code == 2 and "at" in result.stderr
    result = run(tmp_path, io_policy, GOOD_ACCOUNTS, b"")
    assert result.exit_code == 2 and "contacts.csv" in result.stderr
    result = run(tmp_path, io_policy, GOOD_ACCOUNTS, "account_id,action,at\n")  # header only: no contacts
    assert result.exit_code == 0 and all(d["allowed"] for d in result.decisions)


def test_history_after_now_is_ignored(tmp_path: Path, io_policy: Path) -> None:
    history = "account_id,action,at,outcome\nP1,sms,2025-06-04T10:00:01+08:00,delivered\n"
    result = run(tmp_path, io_policy, GOOD_ACCOUNTS, history)
    assert "sms" in result.by_id("P1")["allowed"]
