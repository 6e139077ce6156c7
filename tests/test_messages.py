"""Messages that say what is wrong (issue 17 item 6): a UTF-16 file, a
period or duration no calendar holds, an included directory or FIFO, and
old-Mac line ends."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from policydsl import PolicySyntaxError, compile_policy
from policydsl.checker import MAX_PERIOD_DAYS, check
from policydsl.cli import main
from policydsl.loader import load_file, load_text

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "policies" / "ecommerce_consumer_loan.policy"
HEAD = ('policy "m" version "1"\naccount {\n    id       : text\n    last_pay : datetime = 2024-01-01T00:00:00Z\n}\n'
        "actions { sms, call }\nallow all\n")


def _run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(("encoding", "said"), [
    ("utf-16", "UTF-16 (byte-order mark FF FE)"),
    ("utf-16-be", "UTF-16 or UTF-32 (its header holds NUL bytes)"),
    ("utf-32", "UTF-32 (byte-order mark FF FE 00 00)"),
])
@pytest.mark.parametrize("which", ["accounts", "history"])
def test_a_wide_encoding_is_named_not_reported_as_missing_columns(tmp_path: Path, encoding: str, said: str,
                                                                 which: str) -> None:
    wide = tmp_path / "wide.csv"
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due\nA1,3\n")
    if which == "accounts":
        wide.write_bytes("id,days_past_due\nA1,3\n".encode(encoding))
        code, stderr = _run("run", SEED, wide, "--now", "2025-06-04T02:00:00Z")
    else:
        wide.write_bytes("account_id,action,at,outcome\nA1,sms,2025-06-03T02:00:00Z,\n".encode(encoding))
        code, stderr = _run("run", SEED, accounts, "--history", wide, "--now", "2025-06-04T02:00:00Z")
    assert code == 2
    assert f"wide.csv: the file is {said}, not UTF-8" in stderr and "missing" not in stderr


@pytest.mark.parametrize("rule", [
    'quiet call for 1000000000 days after "conversation" on call',
    "limit sms 1 per 40000 days",
    "limit sms 1 per 900000 hours",
    "forbid sms when count(call in 36501 days) > 1",
])
def test_a_period_longer_than_a_century_is_a_positioned_error(rule: str) -> None:
    _, found = check(load_text(HEAD + rule + "\n", "m.policy"))
    [error] = [d for d in found if d.severity == "error"]
    assert error.code == "E105" and error.span.line == HEAD.count("\n") + 1
    assert error.message == f"a period must be at most {MAX_PERIOD_DAYS} days (876000 hours, 100 years)"


def test_a_century_itself_is_accepted_and_a_longer_duration_is_not() -> None:
    _, found = check(load_text(HEAD + "limit sms 1 per 36500 days\nforbid call when now > last_pay + 36500 days\n",
                               "m.policy"))
    assert [d for d in found if d.severity == "error"] == []
    _, found = check(load_text(HEAD + "forbid call when now > last_pay + 3000000 days\n", "m.policy"))
    [error] = [d for d in found if d.severity == "error"]
    assert (error.code, error.span.column) == ("E105", 35) and "a duration must be at most 36500 days" in error.message


@pytest.mark.parametrize(("make", "kind"), [
    (lambda path: path.mkdir(), "a directory"),
    (lambda path: os.mkfifo(path), "a FIFO (named pipe)"),
])
def test_an_included_directory_or_fifo_says_what_it_is(tmp_path: Path, make: object, kind: str) -> None:
    make(tmp_path / "inc.policy")  # type: ignore[operator]
    main_policy = tmp_path / "main.policy"
    main_policy.write_text('policy "m" version "1"\ninclude "inc.policy"\naccount { id : text }\nactions { sms }\n'
                           "allow sms\n")
    with pytest.raises(PolicySyntaxError) as caught:
        load_file(main_policy)
    assert caught.value.diagnostic.message == (f"cannot read included file 'inc.policy': it is {kind}, "
                                               "not a regular file")
    assert caught.value.span.line == 2


def test_old_mac_line_ends_give_the_right_lines_and_fmt_keeps_the_policy(tmp_path: Path) -> None:
    policy = tmp_path / "cr.policy"
    policy.write_bytes(b'policy "x" version "1"\raccount { id : text }\ractions { sms }\rallow smss\r')
    code, stderr = _run("check", policy)
    assert code == 1 and "cr.policy:4:7: error[E102]: unknown action or group 'smss'" in stderr
    policy.write_bytes(policy.read_bytes().replace(b"smss", b"sms"))
    assert _run("fmt", policy)[0] == 0
    assert policy.read_bytes() == (b'policy "x" version "1"\n\naccount {\n    id : text\n}\n\n'
                                   b"actions {\n    sms\n}\n\nallow sms\n")
    assert _run("check", policy)[0] == 0


def test_the_rejects_file_keeps_a_row_that_is_not_utf8_byte_for_byte(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_bytes(b"id,days_past_due,balance\nA1,3,1\nA\xff2,abc,1\nA3,4,1\n")
    rejects, out = tmp_path / "rejects.csv", tmp_path / "out.jsonl"
    code, _ = _run("run", SEED, accounts, "--now", "2025-06-04T02:00:00Z", "-q", "-o", out, "--errors", rejects)
    assert code == 1 and len(out.read_text().splitlines()) == 3
    [header, row] = rejects.read_bytes().splitlines()
    assert header == b"row,reason,id,days_past_due,balance"
    assert row.startswith(b"2,") and row.endswith(b",A\xff2,abc,1")  # the bytes as they were, so the fix is in place


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_a_date_leaving_the_calendar_names_the_expression_and_the_field(engine: str) -> None:
    policy = compile_policy(HEAD.replace("allow all\n", "allow sms when now < last_pay + 3 days\nallow call\n"),
                            path="m.policy", engine=engine)
    decision = policy.evaluate({"id": "A1", "last_pay": "9999-12-30T00:00:00Z"},
                               now=dt.datetime(2025, 6, 4, tzinfo=dt.UTC))
    assert decision.error == ("cannot evaluate `last_pay + 3 days` (m.policy:7; last_pay = 9999-12-30T00:00:00+00:00): "
                              "date value out of range")
