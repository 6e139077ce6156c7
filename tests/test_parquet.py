"""`policy run` on Parquet (issue 14): the same decisions as on CSV, error
rows for what cannot be read, typed columns, and the output as Arrow lists
and structs, written atomically."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install 'policydsl[parquet]'")
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from policydsl import compile_policy  # noqa: E402
from policydsl.arrow import canonical, decision_dicts, decision_schema  # noqa: E402
from policydsl.batch import decide_row  # noqa: E402
from policydsl.cli import main  # noqa: E402
from policydsl.io import read_accounts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "policies" / "ecommerce_consumer_loan.policy"
ACCOUNTS = ROOT / "examples" / "accounts.csv"
CONTACTS = ROOT / "examples" / "contacts.csv"
NOW = "2025-06-04T02:00:00Z"  # Wednesday 10:00 in Shanghai

POLICY = """\
policy "parquet" version "1"
account {
    id         : text
    dpd        : int
    balance    : money = 0
    flags      : set<text> = {}
    opened     : date = 2020-01-01
    promised   : datetime = 2000-01-01T00:00:00Z
    vip        : bool = false
    timezone   : zone = "Asia/Shanghai"
}
actions { sms, agent_call, legal }
allow sms, agent_call
allow legal when dpd > 90 and balance > 1000 and not vip
forbid all when "deceased" in flags because "hand to the estate team"
quiet agent_call for 7 days after "conversation" on agent_call
window agent_call 09:00-20:00
"""


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def parquet_decisions(path: Path) -> list[dict[str, Any]]:
    return decision_dicts(pq.read_table(path))


def to_parquet(csv_path: Path, target: Path, row_group_size: int = 64, **read: Any) -> Path:
    """The CSV as Parquet with the types Arrow infers (int64, double, bool, timestamps)."""
    table = pa_csv.read_csv(csv_path, **read)
    pq.write_table(table, target, row_group_size=row_group_size, write_page_checksum=True)
    return target


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "p.policy"
    path.write_text(POLICY, encoding="utf-8")
    return path


def test_shipped_example_decides_the_same_from_parquet_as_from_csv(tmp_path: Path) -> None:
    """Parquet in (accounts and history, typed by Arrow's inference) and
    Parquet out give exactly the CSV run's JSONL decisions."""
    accounts = to_parquet(ACCOUNTS, tmp_path / "accounts.parquet")
    contacts = to_parquet(CONTACTS, tmp_path / "contacts.parquet")
    assert pq.read_schema(accounts).field("days_past_due").type == pa.int64()
    assert pa.types.is_timestamp(pq.read_schema(contacts).field("at").type)
    from_csv = invoke("run", SEED, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "-o", tmp_path / "csv.jsonl", "-q")
    from_parquet = invoke("run", SEED, accounts, "--history", contacts, "--now", NOW,
                          "-o", tmp_path / "out.parquet", "-q")
    assert from_csv.exit_code == from_parquet.exit_code == 0, from_parquet.output
    expected = jsonl(tmp_path / "csv.jsonl")
    assert len(expected) == 250
    assert parquet_decisions(tmp_path / "out.parquet") == expected


def test_output_columns_are_arrow_lists_structs_and_utc_timestamps(tmp_path: Path) -> None:
    result = invoke("run", SEED, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "-o", tmp_path / "d.parquet", "-q")
    assert result.exit_code == 0, result.output
    schema = pq.read_schema(tmp_path / "d.parquet")
    assert schema.remove_metadata() == decision_schema("timestamp")
    assert schema.field("now").type == pa.timestamp("us", tz="UTC")
    blocked = schema.field("blocked").type
    assert pa.types.is_list(blocked) and pa.types.is_struct(blocked.value_type)
    table = pq.read_table(tmp_path / "d.parquet")
    untils = [entry["until"] for row in table.column("blocked").to_pylist() for entry in row if entry["until"]]
    assert untils and all(until.tzinfo is not None and until.microsecond == 0 for until in untils)
    assert table.column("now").to_pylist()[0] == dt.datetime(2025, 6, 4, 2, tzinfo=dt.UTC)


def test_format_by_name_or_option_and_stdout_is_a_pipe(tmp_path: Path) -> None:
    """`-o x.parquet` picks Parquet; `--format parquet` writes it to a pipe;
    `--input-format parquet` reads a file whatever its name."""
    renamed = to_parquet(ACCOUNTS, tmp_path / "accounts.data")
    result = subprocess.run([sys.executable, "-m", "policydsl", "run", str(SEED), str(renamed), "--input-format",
                             "parquet", "--now", NOW, "--format", "parquet", "-q"], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout[:4] == b"PAR1" and result.stdout[-4:] == b"PAR1"
    (tmp_path / "piped.parquet").write_bytes(result.stdout)
    by_name = invoke("run", SEED, ACCOUNTS, "--now", NOW, "-o", tmp_path / "named.parquet", "-q")
    assert by_name.exit_code == 0
    assert parquet_decisions(tmp_path / "piped.parquet") == parquet_decisions(tmp_path / "named.parquet")


def test_bad_rows_become_error_rows_naming_row_and_field(policy: Path, tmp_path: Path) -> None:
    """A value the field cannot take, a null in a required field (the id
    too): every row gets its decision or its error, in order."""
    table = pa.table({
        "id": ["A1", "A2", "A3", None, "A5"],
        "dpd": ["10", "abc", None, "5", "120"],
        "balance": pa.array([Decimal("1.00")] * 5, pa.decimal128(10, 2)),
    })
    pq.write_table(table, tmp_path / "a.parquet")
    result = invoke("run", policy, tmp_path / "a.parquet", "--now", NOW, "-o", tmp_path / "d.jsonl", "-q",
                    "--errors", tmp_path / "rejected.csv")
    assert result.exit_code == 1, result.output  # some rows could not be decided
    decisions = jsonl(tmp_path / "d.jsonl")
    assert [d["account_id"] for d in decisions] == ["A1", "A2", "A3", None, "A5"]
    assert decisions[0]["error"] is None and decisions[4]["error"] is None
    assert decisions[1]["error"].startswith("row 2: field 'dpd': 'abc'")
    assert decisions[2]["error"].startswith("row 3: field 'dpd'") and "no default" in decisions[2]["error"]
    rejected = list(csv.reader((tmp_path / "rejected.csv").open(encoding="utf-8")))
    assert rejected[0] == ["row", "reason", "id", "dpd", "balance"]
    assert decisions[3]["error"].startswith("row 4: field 'id'")
    assert [row[0] for row in rejected[1:]] == ["2", "3", "4"]
    assert rejected[1][2:4] == ["A2", "abc"]


def test_typed_columns_decide_as_their_text_does(policy: Path, tmp_path: Path) -> None:
    """int64, decimal, bool, date, timestamp with a zone and list<string>
    columns give the decisions that their text in a CSV gives."""
    text = ("id,dpd,balance,flags,opened,promised,vip\n"
            "A1,120,2500.50,,2021-03-04,2025-06-01T00:00:00Z,false\n"
            "A2,120,2500.50,deceased,2021-03-04,2025-06-01T00:00:00Z,true\n"
            "A3,3,10.00,,2021-03-04,2025-06-01T08:00:00+08:00,false\n")
    (tmp_path / "a.csv").write_text(text, encoding="utf-8")
    typed = pa.table({
        "id": pa.array(["A1", "A2", "A3"]),
        "dpd": pa.array([120, 120, 3], pa.int64()),
        "balance": pa.array([Decimal("2500.50"), Decimal("2500.50"), Decimal("10.00")], pa.decimal128(12, 2)),
        "flags": pa.array([[], ["deceased"], None], pa.list_(pa.string())),
        "opened": pa.array([dt.date(2021, 3, 4)] * 3, pa.date32()),
        "promised": pa.array([dt.datetime(2025, 6, 1, tzinfo=dt.UTC)] * 3, pa.timestamp("ns", tz="Asia/Shanghai")),
        "vip": pa.array([False, True, False]),
    })
    pq.write_table(typed, tmp_path / "a.parquet")
    assert invoke("run", policy, tmp_path / "a.csv", "--now", NOW, "-o", tmp_path / "c.jsonl", "-q").exit_code == 0
    result = invoke("run", policy, tmp_path / "a.parquet", "--now", NOW, "-o", tmp_path / "p.jsonl", "-q")
    assert result.exit_code == 0, result.output
    assert jsonl(tmp_path / "p.jsonl") == jsonl(tmp_path / "c.jsonl")
    assert jsonl(tmp_path / "p.jsonl")[0]["allowed"] == ["sms", "agent_call", "legal"]


def test_an_int_id_column_is_text_and_joins_a_text_history(policy: Path, tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": pa.array([7, 8], pa.int64()), "dpd": [1, 1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"account_id": ["7"], "action": ["agent_call"],
                             "at": ["2025-06-03T03:00:00Z"], "outcome": ["conversation"]}), tmp_path / "h.parquet")
    result = invoke("run", policy, tmp_path / "a.parquet", "--history", tmp_path / "h.parquet", "--now", NOW,
                    "-o", tmp_path / "d.jsonl", "-q")
    assert result.exit_code == 0, result.output
    first, second = jsonl(tmp_path / "d.jsonl")
    assert (first["account_id"], second["account_id"]) == ("7", "8")
    assert "agent_call" not in first["allowed"] and "agent_call" in second["allowed"]


def test_a_history_instant_without_a_zone_breaks_its_account_only(policy: Path, tmp_path: Path) -> None:
    """A timestamp column without a time zone is refused as a CSV instant
    without an offset is: its account gets an error naming the file and row."""
    pq.write_table(pa.table({"id": ["A1", "A2"], "dpd": [1, 1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"account_id": ["A1", "A2"], "action": ["sms", "sms"],
                             "at": pa.array([dt.datetime(2025, 6, 3, 3), None], pa.timestamp("us"))}),
                   tmp_path / "h.parquet")
    result = invoke("run", policy, tmp_path / "a.parquet", "--history", tmp_path / "h.parquet", "--now", NOW,
                    "-o", tmp_path / "d.jsonl")
    assert result.exit_code == 1
    first, second = jsonl(tmp_path / "d.jsonl")
    assert first["error"] == (f"row 1: contact history: unreadable row {tmp_path / 'h.parquet'}: row 1: field 'at': "
                              "2025-06-03T03:00:00 (no time zone); expected an ISO-8601 instant with an offset, "
                              "such as 2025-06-01T08:00:00+08:00")
    assert second["error"].startswith("row 2: contact history: unreadable row ") and "row 2: field 'at': ''" in \
        second["error"]
    assert "history:" in result.output and "h.parquet: row 1: field 'at'" in result.output


def test_unknown_columns_are_reported_and_strict_refuses(policy: Path, tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["A1"], "dpd": [1], "dayz": [3]}), tmp_path / "a.parquet")
    result = invoke("run", policy, tmp_path / "a.parquet", "--now", NOW, "-o", tmp_path / "d.jsonl")
    assert result.exit_code == 0
    assert "column 'dayz' is not a field of the policy and is ignored" in result.output
    strict = invoke("run", policy, tmp_path / "a.parquet", "--now", NOW, "-o", tmp_path / "s.jsonl", "--strict")
    assert strict.exit_code == 2 and "nothing decided" in strict.output
    assert not (tmp_path / "s.jsonl").exists()


def test_missing_column_duplicate_column_and_a_file_that_is_no_parquet(policy: Path, tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["A1"]}), tmp_path / "nodpd.parquet")
    result = invoke("run", policy, tmp_path / "nodpd.parquet", "--now", NOW)
    assert result.exit_code == 2 and "missing column(s) dpd" in result.output
    duplicated = pa.Table.from_arrays([pa.array(["A1"]), pa.array([1]), pa.array([2])], names=["id", "dpd", "dpd"])
    pq.write_table(duplicated, tmp_path / "twice.parquet")
    result = invoke("run", policy, tmp_path / "twice.parquet", "--now", NOW)
    assert result.exit_code == 2 and "column 'dpd' appears twice (columns 2 and 3)" in result.output
    (tmp_path / "fake.parquet").write_text("id,dpd\nA1,1\n", encoding="utf-8")
    result = invoke("run", policy, tmp_path / "fake.parquet", "--now", NOW)
    assert result.exit_code == 2 and "not a readable Parquet file" in result.output
    assert "Traceback" not in result.output


def _damage_row_group(path: Path, group: int, column: int) -> None:
    """Overwrite bytes inside one column chunk's compressed pages, which
    the page checksum then refuses."""
    chunk = pq.read_metadata(path).row_group(group).column(column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    at = start + chunk.total_compressed_size - 40
    data[at:at + 16] = b"\0" * 16
    path.write_bytes(bytes(data))


def test_a_damaged_row_group_gives_an_error_row_per_row_it_held(policy: Path, tmp_path: Path) -> None:
    rows = 3000
    table = pa.table({"id": [f"A{i:05d}" for i in range(rows)], "dpd": [i * 7919 % 100003 for i in range(rows)]})
    path = tmp_path / "a.parquet"
    pq.write_table(table, path, row_group_size=1000, compression="zstd", write_page_checksum=True)
    _damage_row_group(path, 1, 1)
    result = invoke("run", policy, path, "--now", NOW, "-o", tmp_path / "d.jsonl", "-q")
    assert result.exit_code == 1
    decisions = jsonl(tmp_path / "d.jsonl")
    assert len(decisions) == rows
    errors = [number for number, d in enumerate(decisions, 1) if d["error"]]
    assert errors == list(range(1001, 2001))
    assert decisions[1000]["error"].startswith(f"row 1001: row group 2 of {path} cannot be read: ")
    assert "checksum" in decisions[1000]["error"]
    assert decisions[2000]["error"] is None and decisions[2000]["account_id"] == "A02000"


def test_a_damaged_history_row_group_decides_none_of_its_accounts(policy: Path, tmp_path: Path) -> None:
    """The damaged rows' accounts, read from the id column alone, get an
    error; the others are decided on their whole history."""
    ids = [f"A{i:05d}" for i in range(2000)]
    pq.write_table(pa.table({"id": ids, "dpd": [1] * 2000}), tmp_path / "a.parquet")
    history = pa.table({"account_id": ids, "action": ["sms"] * 2000,
                        "at": [f"2025-06-0{1 + i % 3}T0{i % 10}:00:00Z" for i in range(2000)],
                        "outcome": [f"delivered-{i * 7919 % 100003}" for i in range(2000)]})
    path = tmp_path / "h.parquet"
    pq.write_table(history, path, row_group_size=1000, compression="zstd", write_page_checksum=True)
    _damage_row_group(path, 0, 3)
    result = invoke("run", policy, tmp_path / "a.parquet", "--history", path, "--now", NOW,
                    "-o", tmp_path / "d.jsonl", "-q")
    assert result.exit_code == 1, result.output
    decisions = jsonl(tmp_path / "d.jsonl")
    assert [bool(d["error"]) for d in decisions] == [True] * 1000 + [False] * 1000
    assert "contact history: unreadable row" in decisions[0]["error"] and "row group 1" in decisions[0]["error"]


def test_jobs_and_actionable_blocked_entries(tmp_path: Path) -> None:
    accounts = to_parquet(ACCOUNTS, tmp_path / "accounts.parquet")
    one = invoke("run", SEED, accounts, "--history", CONTACTS, "--now", NOW, "-o", tmp_path / "one.parquet", "-q")
    two = invoke("run", SEED, accounts, "--history", CONTACTS, "--now", NOW, "-o", tmp_path / "two.parquet", "-q",
                 "--jobs", "2")
    assert one.exit_code == two.exit_code == 0
    assert parquet_decisions(tmp_path / "one.parquet") == parquet_decisions(tmp_path / "two.parquet")
    lines = invoke("run", SEED, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "--blocked", "actionable", "-q",
                   "-o", tmp_path / "a.jsonl")
    table = invoke("run", SEED, ACCOUNTS, "--history", CONTACTS, "--now", NOW, "--blocked", "actionable", "-q",
                   "-o", tmp_path / "a.parquet")
    assert lines.exit_code == table.exit_code == 0
    assert parquet_decisions(tmp_path / "a.parquet") == jsonl(tmp_path / "a.jsonl")


def test_sorted_parquet_history_is_joined_and_unsorted_indexed(tmp_path: Path) -> None:
    accounts = to_parquet(ACCOUNTS, tmp_path / "accounts.parquet")
    contacts = to_parquet(CONTACTS, tmp_path / "contacts.parquet")
    shuffled = pq.read_table(contacts)
    shuffled = shuffled.take(list(range(shuffled.num_rows - 1, -1, -1)))
    pq.write_table(shuffled, tmp_path / "reversed.parquet")
    joined = invoke("run", SEED, accounts, "--history", contacts, "--now", NOW, "-o", tmp_path / "j.jsonl")
    indexed = invoke("run", SEED, accounts, "--history", tmp_path / "reversed.parquet", "--now", NOW,
                     "-o", tmp_path / "i.jsonl")
    assert "joined in order" in joined.output
    assert "indexed on disk (history not sorted by account id)" in indexed.output
    # the same contacts, in reverse file order for each account: ties in time aside, the same decisions
    assert [canonical(d) for d in jsonl(tmp_path / "j.jsonl")] == [canonical(d) for d in jsonl(tmp_path / "i.jsonl")]


def test_a_failed_run_leaves_the_previous_parquet_output(policy: Path, tmp_path: Path) -> None:
    """Ids that cannot be read at all in a damaged history row group stop
    the run (no account could be known to have its whole history) and the
    output already there is untouched."""
    ids = [f"A{i:05d}" for i in range(2000)]
    pq.write_table(pa.table({"id": ids, "dpd": [1] * 2000}), tmp_path / "a.parquet")
    history = pa.table({"account_id": [f"{i * 7919 % 100003:08d}" for i in range(2000)],
                        "action": ["sms"] * 2000, "at": ["2025-06-01T00:00:00Z"] * 2000})
    path = tmp_path / "h.parquet"
    pq.write_table(history, path, row_group_size=1000, compression="zstd", write_page_checksum=True)
    _damage_row_group(path, 1, 0)
    target = tmp_path / "d.parquet"
    target.write_bytes(b"previous")
    result = invoke("run", policy, tmp_path / "a.parquet", "--history", path, "--now", NOW, "-o", target)
    assert result.exit_code == 2, result.output
    assert "not even its account ids can be read" in result.output
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".policy-")] == []


_ids = st.text(alphabet="AB12 -", min_size=1, max_size=5).filter(lambda text: text.strip() != "")
_instants = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2026, 1, 1),
                         timezones=st.sampled_from([dt.UTC, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")]))
_accounts = st.lists(st.fixed_dictionaries({
    "id": _ids,
    "dpd": st.integers(-5, 400),
    "balance": st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False),
    "flags": st.none() | st.lists(st.sampled_from(["deceased", "disputed"]), max_size=2, unique=True),
    "opened": st.dates(dt.date(2000, 1, 1), dt.date(2025, 1, 1)),
    "promised": _instants,
    "vip": st.none() | st.booleans(),
}), min_size=1, max_size=30)


def _csv_text(rows: list[dict[str, Any]]) -> str:
    """The rows as a CSV export writes them: every value as its text."""
    out = ["id,dpd,balance,flags,opened,promised,vip"]
    for row in rows:
        flags = "" if row["flags"] is None else ";".join(row["flags"])
        vip = "" if row["vip"] is None else str(row["vip"]).lower()
        out.append(",".join([row["id"], str(row["dpd"]), str(row["balance"]), flags, row["opened"].isoformat(),
                             row["promised"].isoformat(), vip]))
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None)
@given(rows=_accounts)
def test_typed_parquet_and_its_csv_text_decide_alike(rows: list[dict[str, Any]]) -> None:
    """Property: a table of typed values in Parquet and the same values as
    CSV text give the same decisions, row for row (the readers take a type
    as they take its text)."""
    policy = compile_policy(POLICY)
    now = dt.datetime(2025, 6, 4, 2, tzinfo=dt.UTC)
    table = pa.table({
        "id": pa.array([row["id"] for row in rows]),
        "dpd": pa.array([row["dpd"] for row in rows], pa.int32()),
        "balance": pa.array([row["balance"] for row in rows], pa.decimal128(12, 2)),
        "flags": pa.array([row["flags"] for row in rows], pa.list_(pa.string())),
        "opened": pa.array([row["opened"] for row in rows], pa.date32()),
        "promised": pa.array([row["promised"].astimezone(dt.UTC) for row in rows], pa.timestamp("us", tz="UTC")),
        "vip": pa.array([row["vip"] for row in rows], pa.bool_()),
    })
    with tempfile.TemporaryDirectory() as directory:
        parquet_path, csv_path = Path(directory, "a.parquet"), Path(directory, "a.csv")
        pq.write_table(table, parquet_path, row_group_size=7)
        csv_path.write_text(_csv_text(rows), encoding="utf-8")
        decided = [[canonical(decide_row(policy, row, [], None, now).to_dict())
                    for row in read_accounts(str(path), policy.required_fields(), set(policy.model.fields))]
                   for path in (parquet_path, csv_path)]
    assert decided[0] == decided[1]
    assert len(decided[0]) == len(rows)
