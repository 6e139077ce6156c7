"""Issue 12: `policy run --history` without memory growth. Both ways of
finding an account's contacts, the merge join (both files sorted by account
id) and the index on disk (anything else), give the same decisions and the
same report, and the summary says which way a run took."""

from __future__ import annotations

import datetime as dt
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import load_policy
from policydsl.cli import main
from policydsl.history import open_history
from policydsl.inputs import normalise_id
from policydsl.io import InputError, Vocabulary

NOW = "2025-06-04T02:00:00Z"
POLICY = """\
policy "paths" version "1"
account {
    id         : text
    dpd        : int
    balance    : money = 0
    risk_score : number = 0
    flags      : set<text> = {}
    timezone   : zone = "Asia/Shanghai"
}
actions { sms, agent_call, legal }
events { inbound_call }
allow sms, agent_call
limit sms 1 per day because "one SMS a day"
limit agent_call 2 per 7 days because "two calls a week"
quiet agent_call for 7 days after "conversation" on agent_call
forbid all when "deceased" in flags because "hand to the estate team"
"""
HISTORY_HEADER = "account_id,action,at,outcome\n"
ACCOUNTS_HEADER = "id,dpd,balance,risk_score,flags,timezone\n"
# Sorted by normalised id. " A2" and "A2" are one account, given twice; A3 has no history; A7's row
# cannot be read (two fields) but its id still claims its history; A8 has an empty id.
ACCOUNTS = [
    "A1,3,10,0,,UTC",
    '" A2",3,10,0,,UTC',
    "A2,5,10,0.5,,UTC",
    "A3,3,10,0,,UTC",
    "A4,3,10,0,,UTC",
    "A5,3,10,0,,UTC",
    "A6,9,10,0,deceased,UTC",
    "A7,3",
    ",3,10,0,,UTC",
]
# Sorted by normalised id (among the readable rows). A3x and the Z rows belong to no account of the
# run; A4 has an unreadable row; A5 names an action the policy does not know (refused by --strict).
HISTORY = [
    "A1,sms,2025-06-04T01:00:00Z,delivered",
    "A1,agent_call,2025-06-01T03:00:00Z,conversation",
    "A1,agent_call,2025-06-01T03:00:00Z,voicemail",
    '"A2 ",sms,2025-06-03T01:00:00Z,',
    "A2,agent_call,2025-06-02T03:00:00Z,no_answer",
    "A2,agent_call,2025-06-03T03:00:00Z,no_answer",
    "A3x,sms,2025-06-03T01:00:00Z,",
    "A4,sms,garbage,x",
    "A4,sms,2025-06-03T01:00:00Z,",
    "A5,Agent_Call,2025-06-03T03:00:00Z,Conversation",
    "A5,sms,2025-06-04T00:00:00Z,",
    "A6,inbound_call,2025-06-02T00:00:00Z,conversation",
    "A7,sms,2025-06-04T00:00:00Z,",
    "Z1,sms,2025-06-04T00:00:00Z,",
    "Z2,sms,2025-06-04T00:00:00Z,",
    "Z2,agent_call,2025-06-03T00:00:00Z,",
]
JOINED = "joined in order (both files sorted by account id)"
HOW = re.compile(r"; (joined in order|indexed on disk) \([^)]*\)")
SPEED = re.compile(r"  \([\d.]+ s, [\d,]+ rows/s\)")  # shown when a run takes half a second or more


def report(stderr: str) -> str:
    """What a run reports, less which way it took and how fast it went."""
    return SPEED.sub("", HOW.sub("", stderr))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    policy = write(tmp_path, "p.policy", POLICY)
    return policy, write(tmp_path, "a.csv", ACCOUNTS_HEADER + lines(ACCOUNTS)), \
        write(tmp_path, "h.csv", HISTORY_HEADER + lines(HISTORY))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def lines(rows: list[str]) -> str:
    return "".join(row + "\n" for row in rows)


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def flat(text: str) -> str:
    return " ".join(text.split())


def policy_process(*args: Any, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The command in a subprocess (standard input is then a real pipe)."""
    return subprocess.run([sys.executable, "-m", "policydsl", *(str(arg) for arg in args)], input=stdin,
                          capture_output=True, timeout=120, check=False)


@pytest.mark.parametrize("extra", [(), ("--strict",), ("--jobs", "2"), ("--format", "csv", "--strict")])
def test_the_join_and_the_index_decide_byte_for_byte_alike(files: tuple[Path, Path, Path],
                                                           extra: tuple[str, ...]) -> None:
    """The same two files: given by name, both sorted, they are joined; the
    accounts on standard input cannot be read twice, so the history is
    indexed. Decisions, report and exit code are the same."""
    policy, accounts, history = files
    base = ("run", policy, "--history", history, "--now", NOW, *extra)
    joined = policy_process(base[0], base[1], accounts, *base[2:])
    indexed = policy_process(base[0], base[1], "-", *base[2:], stdin=accounts.read_bytes())
    assert joined.stdout == indexed.stdout
    assert joined.returncode == indexed.returncode == 1  # the unreadable rows
    joined_err, indexed_err = joined.stderr.decode(), indexed.stderr.decode()
    assert JOINED in flat(joined_err)
    assert "indexed on disk (accounts not a regular file: order not checked)" in flat(indexed_err)
    assert report(joined_err) == report(indexed_err)
    summary = flat(joined_err)
    assert "contact history: 16 rows, 1 unreadable" in summary
    assert "4 rows for account ids that are not in the accounts file" in summary
    assert ("--strict: 1 account not decided" in summary) == ("--strict" in extra)


def test_shuffled_copies_give_the_same_decisions(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Either file out of order sends the run to the index; apart from where
    a row sits (its row and line numbers), nothing changes."""
    policy, accounts, history = files
    rng = random.Random(12)
    shuffled_accounts = write(tmp_path, "a-shuffled.csv", ACCOUNTS_HEADER + lines(rng.sample(ACCOUNTS, len(ACCOUNTS))))
    shuffled_history = write(tmp_path, "h-shuffled.csv", HISTORY_HEADER + lines(rng.sample(HISTORY, len(HISTORY))))
    for strict in ((), ("--strict",)):
        runs = {}
        for accounts_path, history_path in ((accounts, history), (shuffled_accounts, history),
                                            (accounts, shuffled_history), (shuffled_accounts, shuffled_history)):
            result = invoke("run", policy, accounts_path, "--history", history_path, "--now", NOW, *strict)
            assert result.exit_code == 1, result.output
            runs[accounts_path.name, history_path.name] = result
        assert JOINED in flat(runs["a.csv", "h.csv"].stderr)
        assert "indexed on disk (accounts not sorted by account id)" \
            in flat(runs["a-shuffled.csv", "h.csv"].stderr)
        assert "indexed on disk (history not sorted by account id)" \
            in flat(runs["a.csv", "h-shuffled.csv"].stderr)
        assert "indexed on disk (history not sorted by account id)" \
            in flat(runs["a-shuffled.csv", "h-shuffled.csv"].stderr)
        assert len({placeless(result.stdout) for result in runs.values()}) == 1
        assert len({placeless(report(result.stderr)) for result in runs.values()}) == 1
        # the history's order alone changes nothing at all where no row names a line of it
        assert without_history_lines(runs["a.csv", "h.csv"].stdout) \
            == without_history_lines(runs["a.csv", "h-shuffled.csv"].stdout)


def placeless(text: str) -> tuple[str, ...]:
    """The lines, sorted, with row and line numbers taken out."""
    text = re.sub(r"row \d+ \(line \d+\)", "row", text)
    text = re.sub(r"(h(-shuffled)?\.csv|line\(s\)):?[\d, ]+", "at", text)
    return tuple(sorted(text.splitlines()))


def without_history_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not re.search(r"h(-shuffled)?\.csv:", line)]


def test_a_file_that_changes_order_during_the_run_stops_it(files: tuple[Path, Path, Path]) -> None:
    """The join relies on the order the pre-pass saw; an account that comes
    back to an earlier id (the file was rewritten meanwhile) is an InputError,
    never a decision on the wrong contacts."""
    policy, accounts, history = files
    model = load_policy(str(policy)).model
    with open_history(str(history), Vocabulary.of(model), str(accounts)) as found:
        assert [contact.action for contact in found.for_account("A2")] == ["sms", "agent_call", "agent_call"]
        with pytest.raises(InputError, match="changed during the run"):
            found.for_account("A1")


# ------------------------------------------------------------ shuffling never changes a decision

START = dt.datetime(2025, 5, 28, tzinfo=dt.UTC)
QUARTER = dt.timedelta(minutes=15)
IDS = ["A1", " A1", "A2 ", "A2", "A3", "B1", "Z9"]  # padded ids are one account; Z9 has no account
CONTACTS = st.lists(
    st.tuples(st.sampled_from(IDS), st.integers(0, 7 * 24 * 4),
              st.sampled_from(["sms", "agent_call", "inbound_call", "legal", "letter"]),
              st.sampled_from(["", "conversation", "delivered", "voicemail"])),
    max_size=40,
    # one instant per account: contacts at the same instant keep their file order, which a shuffle may change
    unique_by=lambda contact: (normalise_id(contact[0]), contact[1]),
)


@settings(max_examples=30, deadline=None)
@given(contacts=CONTACTS, order=st.randoms(use_true_random=False))
def test_shuffling_the_history_never_changes_a_decision(tmp_path_factory: pytest.TempPathFactory,
                                                        contacts: list[tuple[str, int, str, str]],
                                                        order: random.Random) -> None:
    tmp_path = tmp_path_factory.mktemp("shuffle")
    policy = write(tmp_path, "p.policy", POLICY)
    accounts = write(tmp_path, "a.csv", ACCOUNTS_HEADER + lines([f"{account},3,10,0.5,,UTC" for account in
                                                                  ("A1", "A2", "A2", "A3", "B1", "C1")]))
    rows = [f'"{account}",{action},{(START + quarter * QUARTER).isoformat()},{outcome}'
            for account, quarter, action, outcome in contacts]
    sorted_rows = [row for _, row in sorted(zip(contacts, rows, strict=True),
                                            key=lambda pair: normalise_id(pair[0][0]))]
    shuffled_rows = order.sample(rows, len(rows))
    results = []
    for name, history_rows in (("sorted.csv", sorted_rows), ("shuffled.csv", shuffled_rows)):
        history = write(tmp_path, name, HISTORY_HEADER + lines(history_rows))
        results.append(invoke("run", policy, accounts, "--history", history, "--now", NOW))
    joined, shuffled = results
    assert joined.exit_code == shuffled.exit_code == 0, joined.output + shuffled.output
    assert joined.stdout == shuffled.stdout
    assert report(joined.stderr).replace("sorted.csv", "h") == report(shuffled.stderr).replace("shuffled.csv", "h")
    if rows:
        assert JOINED in flat(joined.stderr)


# ------------------------------------------------------------ the cheap order check

def test_an_unreadable_row_after_an_accounts_contacts_still_stops_its_decision(tmp_path: Path) -> None:
    """The join reads every row of an account, unreadable ones included,
    before deciding it: A2's bad row after its good one makes A2 an error,
    never a decision on part of its history."""
    policy = write(tmp_path, "p.policy", POLICY)
    accounts = write(tmp_path, "a.csv", ACCOUNTS_HEADER + lines(["A1,3,10,0,,UTC", "A2,3,10,0,,UTC",
                                                                 "A3,3,10,0,,UTC"]))
    history = write(tmp_path, "h.csv", HISTORY_HEADER + lines([
        "A1,sms,2025-06-04T01:00:00Z,", "A2,sms,2025-06-03T01:00:00Z,", "A2,sms,not-a-time,", "A3,sms,,"]))
    result = invoke("run", policy, accounts, "--history", history, "--now", NOW)
    assert result.exit_code == 1
    assert JOINED in flat(result.stderr)
    errors = {line.split('"account_id":"')[1].split('"')[0]: '"error":null' not in line
              for line in result.stdout.splitlines()}
    assert errors == {"A1": False, "A2": True, "A3": True}
    assert "h.csv:4" in result.stderr and "h.csv:5" in result.stderr


@pytest.mark.parametrize(("rows", "why"), [
    (['"A1",sms,2025-06-04T01:00:00Z,"two\nlines"', "A2,sms,2025-06-03T01:00:00Z,"], "does not read alone"),
    (["A1,sms,2025-06-04T01:00:00Z,", "\ufeffA2,sms,2025-06-03T01:00:00Z,"], "does not read alone"),
    (["A1,sms,2025-06-04T01:00:00Z,", "A3,sms", "A2,sms,2025-06-03T01:00:00Z,"], "history not sorted by account id"),
    (["A1,sms,2025-06-04T01:00:00Z,", "A3,sms,bad,", "A2,sms,2025-06-03T01:00:00Z,"],
     "history not sorted by account id"),
])
def test_rows_the_cheap_check_does_not_trust_send_the_run_to_the_index(tmp_path: Path, rows: list[str],
                                                                       why: str) -> None:
    policy = write(tmp_path, "p.policy", POLICY)
    accounts = write(tmp_path, "a.csv", ACCOUNTS_HEADER + lines(["A1,3,10,0,,UTC", "A2,3,10,0,,UTC"]))
    history = write(tmp_path, "h.csv", HISTORY_HEADER + lines(rows))
    result = invoke("run", policy, accounts, "--history", history, "--now", NOW)
    assert "indexed on disk" in flat(result.stderr) and why in flat(result.stderr)
