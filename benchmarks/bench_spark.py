"""`policydsl.spark.decide` on a local Spark against `policy run --jobs 2`, on the same data.

    python benchmarks/bench_spark.py                 # 200,000 accounts with history (a few minutes on 2 cores)
    python benchmarks/bench_spark.py --n 50000 --runs 1

One portfolio for the shipped `policies/ecommerce_consumer_loan.policy`: accounts and a 30-day contact
history drawn by examples/make_examples.py's own generators (`make_accounts`, `make_contacts`; about
60 % of the accounts have 1 to 10 contacts) with the examples' seed, decided at the examples' NOW. The
CSVs are cached in benchmarks/.data/spark-N-SEED/.

Timed, alternating, `--runs` times each (median and best reported):

* `policy run POLICY accounts.csv --history contacts.csv --now NOW --jobs 2 --format jsonl -q -o FILE`,
  a subprocess, from process start to exit;
* Spark `local[2]` (session time zone UTC, shuffle partitions 4; Python workers on this interpreter):
  `spark.read.csv` (all-string columns) of both files, `decide(...)`, `.write.parquet(...)`; the
  session is started once, before the runs, and its start-up is printed apart.

Why Parquet for Spark and JSONL for `policy run`: each writes the format it is used with; both write
every decision in full. The Parquet row count is checked equal to the number of accounts, and so is
the JSONL's line count. The figures are accounts per second (wall time) and Spark's time over `policy
run`'s; both use the machine's two cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import workload  # noqa: E402

POLICY = os.path.join(ROOT, "policies", "ecommerce_consumer_loan.policy")


def write_portfolio(n: int, seed: int, directory: str) -> tuple[str, str, int]:
    """accounts.csv and contacts.csv for `n` accounts (cached); the number of contacts."""
    accounts, contacts = os.path.join(directory, "accounts.csv"), os.path.join(directory, "contacts.csv")
    if not (os.path.exists(accounts) and os.path.exists(contacts)):
        os.makedirs(directory, exist_ok=True)
        examples = workload._make_examples()
        rng = random.Random(seed)
        drawn = examples.make_accounts(rng, n)
        history = examples.make_contacts(rng, drawn)
        examples.write_csv(Path(accounts + ".tmp"), examples.ACCOUNT_COLUMNS, [a.row() for a in drawn])
        examples.write_csv(Path(contacts + ".tmp"), examples.CONTACT_COLUMNS, [c.row() for c in history])
        os.replace(accounts + ".tmp", accounts)
        os.replace(contacts + ".tmp", contacts)
    with open(contacts, encoding="utf-8") as handle:
        rows = sum(1 for _ in handle) - 1
    return accounts, contacts, rows


def run_cli(accounts: str, contacts: str, now: str, out: str) -> float:
    command = [sys.executable, "-m", "policydsl", "run", POLICY, accounts, "--history", contacts, "--now", now,
               "--jobs", "2", "--format", "jsonl", "-q", "-o", out]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):
        sys.exit(f"policy run failed ({result.returncode}): {result.stderr}")
    return elapsed


def start_spark() -> Any:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("policydsl-bench")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", "2g")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.host", "127.0.0.1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def run_spark(spark: Any, accounts: str, contacts: str, now: dt.datetime, out: str) -> float:
    from policydsl.spark import decide

    started = time.perf_counter()
    decided = decide(spark.read.csv(accounts, header=True, inferSchema=False), POLICY,
                     spark.read.csv(contacts, header=True, inferSchema=False), now=now)
    decided.write.mode("overwrite").parquet(out)
    return time.perf_counter() - started


def parquet_rows(directory: str) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(os.path.join(directory, name)).metadata.num_rows
               for name in os.listdir(directory) if name.endswith(".parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="accounts (default 200,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the examples')")
    args = parser.parse_args()
    seed = workload.ecommerce_seed() if args.seed is None else args.seed
    now = workload.ecommerce_now()
    now_text = now.strftime("%Y-%m-%dT%H:%M:%SZ")

    started = time.perf_counter()
    accounts, contacts, history_rows = write_portfolio(args.n, seed, os.path.join(HERE, ".data",
                                                                                  f"spark-{args.n}-{seed}"))
    print(f"data: {args.n:,} accounts, {history_rows:,} history rows ({time.perf_counter() - started:.1f} s, "
          "cached in benchmarks/.data/)")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    spark = start_spark()
    print(f"Spark {spark.version} local[2] session started in {time.perf_counter() - started:.1f} s")
    scratch = tempfile.mkdtemp(prefix="bench-spark-")
    cli_times, spark_times = [], []
    try:
        for run in range(args.runs):
            load = os.getloadavg()[0]
            jsonl = os.path.join(scratch, "decisions.jsonl")
            cli_times.append(run_cli(accounts, contacts, now_text, jsonl))
            with open(jsonl, encoding="utf-8") as handle:
                lines = sum(1 for _ in handle)
            os.unlink(jsonl)
            parquet = os.path.join(scratch, "decisions.parquet")
            spark_times.append(run_spark(spark, accounts, contacts, now, parquet))
            rows = parquet_rows(parquet)
            shutil.rmtree(parquet)
            if lines != args.n or rows != args.n:
                sys.exit(f"run {run + 1}: policy run wrote {lines:,} decisions, Spark {rows:,}; expected {args.n:,}")
            print(f"run {run + 1}: policy run --jobs 2 {cli_times[-1]:.1f} s, Spark {spark_times[-1]:.1f} s "
                  f"(load average before {load:.2f})")
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    cli, sparked = statistics.median(cli_times), statistics.median(spark_times)
    print()
    print(f"machine: {workload.cpu_model()}, {os.cpu_count()} CPUs, load average at end "
          f"{os.getloadavg()[0]:.2f}; Python {sys.version.split()[0]}; {dt.date.today().isoformat()}")
    print()
    print("| | median s (best) | accounts/s |")
    print("|---|---|---|")
    print(f"| `policy run --jobs 2` (JSONL) | {cli:.1f} ({min(cli_times):.1f}) | {args.n / cli:,.0f} |")
    print(f"| Spark local[2] `decide` (Parquet) | {sparked:.1f} ({min(spark_times):.1f}) | {args.n / sparked:,.0f} |")
    print()
    print(f"Spark / policy run (wall time): {sparked / cli:.2f}x")


if __name__ == "__main__":
    main()
