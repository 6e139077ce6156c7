"""`policydsl.spark` on a real local Spark: every decision equal, in its
canonical form, to the one `policy run` writes in JSONL for the same row.

One SparkSession (local[2], session time zone UTC) serves the module; the
tests skip, saying why, without PySpark or Java. Spark rows come back in no
order, so decisions are matched by their row's unique id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from policydsl import InputTypeError, InputValueError, PolicyError, load_policy
from policydsl.batch import sources_digest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_NOT_INSTALLED = "pyspark or pyarrow is not installed: pip install 'policydsl[spark]'"
sql = pytest.importorskip("pyspark.sql", reason=_NOT_INSTALLED)
F = pytest.importorskip("pyspark.sql.functions", reason=_NOT_INSTALLED)
T = pytest.importorskip("pyspark.sql.types", reason=_NOT_INSTALLED)
arrow = pytest.importorskip("policydsl.arrow", reason=_NOT_INSTALLED)
policy_spark = pytest.importorskip("policydsl.spark", reason=_NOT_INSTALLED)
canonical, decision_dicts = arrow.canonical, arrow.decision_dicts

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "ecommerce_consumer_loan.policy"
ACCOUNTS = ROOT / "examples" / "accounts.csv"
CONTACTS = ROOT / "examples" / "contacts.csv"
NOW_TEXT = "2025-06-04T02:00:00Z"  # the examples' NOW (make_examples.py), as tests/test_cli.py and README use
NOW = dt.datetime(2025, 6, 4, 2, 0, tzinfo=dt.UTC)
PORTFOLIO = 50_000


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """A local Spark whose Python workers run this interpreter (where
    policydsl is installed), its session zone UTC."""
    if shutil.which("java") is None:
        pytest.skip("java is not on PATH: PySpark needs Java 17")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (sql.SparkSession.builder.master("local[2]").appName("policydsl-tests")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.host", "127.0.0.1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


# ------------------------------------------------------------ helpers


def cli_jsonl(accounts: Path, history: Path | None, out: Path) -> Path:
    """`policy run` in a subprocess, as a user runs it; exit 1 (some error rows) is fine."""
    command = [sys.executable, "-m", "policydsl", "run", str(POLICY), str(accounts),
               *(["--history", str(history)] if history else []), "--now", NOW_TEXT, "--format", "jsonl", "-q",
               "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode in (0, 1), result.stderr
    return out


def expected_by_id(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        decision = json.loads(line)
        found[decision["account_id"]] = canonical(decision)
    return found


def spark_by_id(frame: DataFrame, key: str = "id") -> dict[Any, str]:
    """The decisions, collected, by their key column, in canonical form."""
    found = {}
    for row in frame.collect():
        values = row.asDict(recursive=True)
        found_key = values.pop(key)  # before canonical(values): an assignment evaluates its right side first
        found[found_key] = canonical(values)
    return found


def assert_same(found: dict[Any, str], expected: dict[Any, str]) -> None:
    """Equal, or the first differing decision's differing keys shown."""
    assert found.keys() == expected.keys()
    for key in sorted(expected, key=str):
        if found[key] != expected[key]:
            mine, theirs = json.loads(found[key]), json.loads(expected[key])
            differing = {name: (mine.get(name), theirs.get(name)) for name in {*mine, *theirs}
                         if mine.get(name) != theirs.get(name)}
            raise AssertionError(f"{key}: (spark, policy run) differ in {differing}")


def read_csv(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.csv(str(path), header=True, inferSchema=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------ the shipped example


def test_the_shipped_example_decides_as_policy_run(spark: SparkSession, tmp_path: Path) -> None:
    expected = expected_by_id(cli_jsonl(ACCOUNTS, CONTACTS, tmp_path / "d.jsonl"))
    decided = policy_spark.decide(read_csv(spark, ACCOUNTS), POLICY, read_csv(spark, CONTACTS), now=NOW)
    found = spark_by_id(decided)
    assert len(found) == len(expected) == 250
    assert_same(found, expected)
    assert decided.columns[0] == "id" and decided.columns[1:] == policy_spark.decision_struct().names


def test_without_history_decides_as_policy_run(spark: SparkSession, tmp_path: Path) -> None:
    expected = expected_by_id(cli_jsonl(ACCOUNTS, None, tmp_path / "d.jsonl"))
    policy = load_policy(POLICY)
    assert_same(spark_by_id(policy_spark.decide(read_csv(spark, ACCOUNTS), policy, now=NOW)), expected)


def typed_accounts(spark: SparkSession) -> DataFrame:
    ints = ["days_past_due", "failed_payments", "contact_changes_90d", "past_delinquencies", "broken_promises"]
    doubles = ["balance", "risk_score", "spending_change", "debt_to_income"]
    frame = read_csv(spark, ACCOUNTS)
    for name in ints:
        frame = frame.withColumn(name, F.col(name).cast("int"))
    for name in doubles:
        frame = frame.withColumn(name, F.col(name).cast("double"))
    for name in ("hardship", "debtor_unreachable"):
        frame = frame.withColumn(name, F.col(name).cast("boolean"))
    return frame


def test_typed_columns_decide_as_their_text(spark: SparkSession, tmp_path: Path) -> None:
    """int, double and bool columns and a TimestampType `at` (as a data lake
    holds them) give the decisions their CSV text gives."""
    expected = expected_by_id(cli_jsonl(ACCOUNTS, CONTACTS, tmp_path / "d.jsonl"))
    accounts = typed_accounts(spark)
    assert dict(accounts.dtypes)["days_past_due"] == "int" and dict(accounts.dtypes)["hardship"] == "boolean"
    history = read_csv(spark, CONTACTS).withColumn("at", F.to_timestamp("at"))
    assert dict(history.dtypes)["at"] == "timestamp"
    assert_same(spark_by_id(policy_spark.decide(accounts, POLICY, history, now=NOW)), expected)


# ------------------------------------------------------------ a generated portfolio with bad rows


def _examples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "examples" / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_examples", module)
    spec.loader.exec_module(module)
    return module


BAD_ACCOUNTS = {10: "abc", 2000: "12x", 40000: "1.5"}  # row index -> days_past_due
BAD_AT = ["2025-05-20T10:00:00", "yesterday", "2025-13-01T10:00:00+08:00"]  # no offset, no date, no month 13


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """50,000 accounts with their history, from the examples' generators
    (seeded), with planted bad rows: accounts whose days_past_due cannot be
    read, history rows whose `at` cannot, a history row with no account id,
    one naming an action the policy does not know, and an id padded with a
    no-break space (normalised on both paths)."""
    examples = _examples()
    rng = random.Random(14)
    accounts = examples.make_accounts(rng, PORTFOLIO)
    contacts = examples.make_contacts(rng, accounts)
    account_rows = [account.row() for account in accounts]
    for index, value in BAD_ACCOUNTS.items():
        account_rows[index][1] = value
    contact_rows = [contact.row() for contact in contacts]
    by_account: dict[str, list[int]] = {}
    for index, row in enumerate(contact_rows):
        by_account.setdefault(row[0], []).append(index)
    with_history = sorted(by_account)
    broken = [with_history[7], with_history[1500], with_history[20000]]
    for account, bad in zip(broken, BAD_AT, strict=True):
        contact_rows[by_account[account][-1]][2] = bad
    padded = with_history[300]
    contact_rows[by_account[padded][0]][0] = f"\u00a0{padded} "
    contact_rows.append(["", "sms", "2025-06-01T09:00:00+08:00", "delivered"])
    contact_rows.append([with_history[400], "carrier_pigeon", "2025-06-01T09:00:00+08:00", "delivered"])
    base = tmp_path_factory.mktemp("portfolio")
    accounts_path, history_path = base / "accounts.csv", base / "contacts.csv"
    examples.write_csv(accounts_path, examples.ACCOUNT_COLUMNS, account_rows)
    examples.write_csv(history_path, examples.CONTACT_COLUMNS, contact_rows)
    started = time.perf_counter()
    out = cli_jsonl(accounts_path, history_path, base / "decisions.jsonl")
    expected = {}
    errors = {}
    with out.open(encoding="utf-8") as handle:
        for line in handle:
            decision = json.loads(line)
            expected[decision["account_id"]] = digest(canonical(decision))
            if decision["error"]:
                errors[decision["account_id"]] = canonical(decision)
    return {"accounts": accounts_path, "history": history_path, "expected": expected, "errors": errors,
            "broken": broken, "cli_seconds": time.perf_counter() - started, "rows": len(account_rows),
            "history_rows": len(contact_rows)}


def test_a_generated_portfolio_decides_as_policy_run(spark: SparkSession, portfolio: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """Row for row, error rows included; read back from Parquet in batches
    (the decisions are some 300 MB: collecting them would test the driver's memory)."""
    import pyarrow.parquet as pq

    accounts = read_csv(spark, portfolio["accounts"])
    history = read_csv(spark, portfolio["history"])
    decided = policy_spark.decide(accounts, POLICY, history, now=NOW)
    out = tmp_path / "decisions.parquet"
    decided.write.parquet(str(out))
    found: dict[str, str] = {}
    errors: dict[str, str] = {}
    for part in sorted(out.glob("*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=2048):
            for key, decision in zip(batch.column("id").to_pylist(), decision_dicts(batch), strict=True):
                assert key not in found
                found[key] = digest(canonical(decision))
                if decision["error"]:
                    errors[key] = canonical(decision)
    assert len(found) == portfolio["rows"] == PORTFOLIO
    assert errors == portfolio["errors"]
    assert len(errors) == len(BAD_ACCOUNTS) + len(BAD_AT)
    assert all("field 'at'" in errors[account] for account in portfolio["broken"])
    assert found == portfolio["expected"]


def test_history_problems_lists_the_planted_rows(spark: SparkSession, portfolio: dict[str, Any]) -> None:
    problems = policy_spark.history_problems(read_csv(spark, portfolio["history"]), POLICY).collect()
    shown = sorted((row["account_id"] or "", row["problem"]) for row in problems)
    assert len(shown) == len(BAD_AT) + 2, shown
    assert [problem for _, problem in shown if "field 'at'" in problem] and \
        sorted(account for account, problem in shown if "field 'at'" in problem) == sorted(portfolio["broken"])
    assert ("", "account_id is empty") in shown
    assert any("names action 'carrier_pigeon'" in problem for _, problem in shown)
    assert problems[0].asDict().keys() == {"account_id", "action", "at", "outcome", "problem"}


# ------------------------------------------------------------ rows, keys and instants


def test_every_row_comes_out_whatever_its_id(spark: SparkSession) -> None:
    """A null id, an id given twice and an int64 id column: one decision per
    row, the key column as it was; an int id finds its history given as text;
    history of ids no account has (groups of the join with no account) decides nothing."""
    rows = [(1, 10, "1000.00"), (1, 10, "1000.00"), (None, 10, "1000.00"), (2, 45, "250.00")]
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("days_past_due", T.LongType()),
                         T.StructField("balance", T.StringType())])
    accounts = spark.createDataFrame(rows, schema)
    orphans = [(str(number), "sms", "2025-06-04T09:00:00+08:00", "delivered") for number in range(900, 940)]
    history = spark.createDataFrame([(" 2 ", "sms", "2025-06-04T09:00:00+08:00", "delivered"),
                                     ("2", "sms", "2025-06-04T09:30:00+08:00", "delivered"), *orphans],
                                    "account_id string, action string, at string, outcome string")
    decided = policy_spark.decide(accounts, POLICY, history, now=NOW)
    assert dict(decided.dtypes)["id"] == "bigint"
    found = decided.collect()
    assert len(found) == len(rows)
    assert sorted((row["id"] is None, row["id"] or 0) for row in found) == [(False, 1), (False, 1), (False, 2),
                                                                            (True, 0)]
    by_id = {row["id"]: row for row in found}
    assert by_id[1]["account_id"] == "1" and by_id[1]["error"] is None
    assert by_id[None]["error"] and "id" in by_id[None]["error"]
    # account 2's two SMS today (one of them under a padded id) are its history: sms is capped for the day
    without = {row["id"]: row for row in policy_spark.decide(accounts, POLICY, now=NOW).collect()}
    assert by_id[2]["error"] is None and by_id[2]["blocked"] != without[2]["blocked"]


def test_an_instant_without_a_zone_gives_an_error_decision(spark: SparkSession) -> None:
    accounts = read_csv(spark, ACCOUNTS).limit(3)
    first = accounts.first()
    assert first is not None
    history = spark.createDataFrame([(first["id"], "sms", dt.datetime(2025, 6, 3, 9, 0), "delivered")],
                                    T.StructType([T.StructField("account_id", T.StringType()),
                                                T.StructField("action", T.StringType()),
                                                T.StructField("at", T.TimestampNTZType()),
                                                T.StructField("outcome", T.StringType())]))
    found = {row["id"]: row for row in policy_spark.decide(accounts, POLICY, history, now=NOW).collect()}
    assert len(found) == 3
    error = found[first["id"]]["error"]
    assert error is not None and "field 'at'" in error and "no time zone" in error
    assert all(row["error"] is None for key, row in found.items() if key != first["id"])
    problems = policy_spark.history_problems(history, POLICY).collect()
    assert len(problems) == 1 and "field 'at'" in problems[0]["problem"]


def test_the_policy_is_compiled_once_per_worker_process(spark: SparkSession) -> None:
    """Many small batches in many tasks, yet each Python worker compiles the policy once."""
    policy = load_policy(POLICY)
    wanted = sources_digest(policy.model.sources)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10")
    try:
        decided = policy_spark.decide(read_csv(spark, ACCOUNTS).repartition(8), policy, now=NOW)
        assert decided.count() == 250  # 8 tasks, 25 or more batches
        assert len(policy_spark.decide(read_csv(spark, ACCOUNTS).repartition(8), policy, now=NOW).collect()) == 250

        def probe(batches: Iterator[Any]) -> Iterator[Any]:
            import os

            import pyarrow

            from policydsl import spark as worker

            for _ in batches:
                yield pyarrow.RecordBatch.from_pydict({"pid": [os.getpid()],
                                                       "compiled": [worker.compilations[wanted]]})

        seen = spark.range(0, 64, numPartitions=16).mapInArrow(probe, "pid long, compiled long").collect()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous or "10000")
    per_process = {row["pid"]: row["compiled"] for row in seen}
    assert max(per_process.values()) == 1, per_process  # reused workers kept their dict, and compiled once


def test_now_must_carry_its_zone(spark: SparkSession) -> None:
    accounts = read_csv(spark, ACCOUNTS)
    with pytest.raises(InputValueError, match="timezone-aware"):
        policy_spark.decide(accounts, POLICY, now=dt.datetime(2025, 6, 4, 2, 0))
    with pytest.raises(InputTypeError):
        policy_spark.decide(accounts, POLICY, now=NOW_TEXT)  # type: ignore[arg-type]


def test_a_policy_that_does_not_compile_fails_on_the_driver(spark: SparkSession, tmp_path: Path) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text("policy broken\nstage nowhere when undefined_field > 3\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        policy_spark.decide(read_csv(spark, ACCOUNTS), broken, now=NOW)


def test_missing_columns_fail_on_the_driver(spark: SparkSession) -> None:
    accounts = read_csv(spark, ACCOUNTS)
    with pytest.raises(PolicyError, match="missing column"):
        policy_spark.decide(accounts.drop("days_past_due"), POLICY, now=NOW)
    with pytest.raises(PolicyError, match="no key column"):
        policy_spark.decide(accounts, POLICY, now=NOW, key="loan_no")
    with pytest.raises(PolicyError, match="missing at"):
        policy_spark.decide(accounts, POLICY, read_csv(spark, CONTACTS).drop("at"), now=NOW)


def test_a_key_of_several_columns_comes_first(spark: SparkSession) -> None:
    decided = policy_spark.decide(read_csv(spark, ACCOUNTS), POLICY, now=NOW, key=["id", "timezone"])
    assert decided.columns[:3] == ["id", "timezone", "account_id"]
    assert decided.where(F.col("id") != F.col("account_id")).count() == 0


def test_without_pyspark_the_import_says_what_to_install() -> None:
    """policydsl.spark is imported only by users of the extra; without it, the error names the extra."""
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "try:\n    import policydsl.spark\nexcept ImportError as error:\n    print(error)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'policydsl[spark]'" in result.stdout
