"""`policy run` on Parquet against `policy run` on CSV, same data, measured in the same run.

    python benchmarks/bench_parquet.py --quick     # the peers' workload at 20,000 and 200,000 accounts, 2 runs
    python benchmarks/bench_parquet.py             # at 100,000 and 1,000,000 accounts, 3 runs

The peers' workload of bench_run.py (~9 contacts per account, history sorted by account id, so
both formats take the merge join) is written once as CSV (cached in benchmarks/.data/), then
converted to Parquet with Arrow's type inference (int64, double, UTC timestamps). Each command
runs as a child process, in alternation:

  * csv → jsonl: `policy run POLICY accounts.csv --history contacts.csv -o d.jsonl -q`, the baseline;
  * parquet → jsonl, and parquet → parquet (`-o d.parquet`).

Figures: median wall time, µs per account, the ratio to the CSV run, and each child's peak
resident memory, which should not grow with the number of accounts (row groups are read a batch
at a time and decisions written a row group at a time). The script exits non-zero when a Parquet
run's decisions differ from the CSV run's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_run  # noqa: E402
import workload  # noqa: E402


def to_parquet(csv_path: str) -> str:
    """The CSV beside itself as Parquet (row groups of 64k rows), once."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    target = csv_path[:-len(".csv")] + ".parquet"
    if not os.path.exists(target):
        table = pa_csv.read_csv(csv_path, convert_options=pa_csv.ConvertOptions(
            column_types={"id": "string", "account_id": "string", "flags": "string", "outcome": "string"}))
        pq.write_table(table, target + ".tmp", row_group_size=65536, compression="zstd", write_page_checksum=True)
        os.replace(target + ".tmp", target)
    return target


def same_decisions(jsonl_path: str, other: str) -> bool:
    import pyarrow.parquet as pq

    from policydsl.arrow import decision_dicts

    with open(jsonl_path, encoding="utf-8") as f:
        expected = [json.loads(line) for line in f]
    if other.endswith(".parquet"):
        found = decision_dicts(pq.read_table(other))
    else:
        with open(other, encoding="utf-8") as f:
            found = [json.loads(line) for line in f]
    return found == expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 and 200,000 accounts, 2 runs")
    parser.add_argument("--sizes", help="comma list of account counts")
    parser.add_argument("--runs", type=int)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")] if args.sizes else \
        ([20_000, 200_000] if args.quick else [100_000, 1_000_000])
    runs = args.runs or (2 if args.quick else 3)
    work = bench_run.WORKLOADS["peers"]
    policy = bench_run.policy_command()
    print(f"machine: {workload.cpu_model()}, {os.cpu_count()} cores; {runs} runs each, median\n")
    print("| accounts | history rows | input → output | wall s | µs/account | vs CSV | peak RSS MB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    failed = False
    for n in sizes:
        accounts, contacts, rows, _ = bench_run.dataset(work, n, work.seed)
        assert contacts is not None
        accounts_pq, contacts_pq = to_parquet(accounts), to_parquet(contacts)
        out = os.path.dirname(accounts)
        variants = {
            "csv → jsonl": [accounts, "--history", contacts, "-o", os.path.join(out, "d-csv.jsonl")],
            "parquet → jsonl": [accounts_pq, "--history", contacts_pq, "-o", os.path.join(out, "d-pq.jsonl")],
            "parquet → parquet": [accounts_pq, "--history", contacts_pq, "-o", os.path.join(out, "d.parquet")],
        }
        timings: dict[str, list[float]] = {name: [] for name in variants}
        memory: dict[str, int] = dict.fromkeys(variants, 0)
        for _ in range(runs):
            for name, tail in variants.items():
                wall, _, rss, code, err = bench_run.measure([*policy, "run", work.policy, *tail, "--now", work.now,
                                                             "-q"])
                if code not in (0, 1):
                    print(f"{name} failed ({code}): {err}", file=sys.stderr)
                    return 2
                timings[name].append(wall)
                memory[name] = max(memory[name], rss)
        baseline = statistics.median(timings["csv → jsonl"])
        for name, tail in variants.items():
            wall = statistics.median(timings[name])
            print(f"| {n:,} | {rows:,} | {name} | {wall:.2f} | {wall / n * 1e6:.1f} | {wall / baseline:.2f} | "
                  f"{memory[name] / 2**20:.0f} |")
            if name != "csv → jsonl" and not same_decisions(variants["csv → jsonl"][-1], tail[-1]):
                print(f"| | | {name}: DECISIONS DIFFER from the CSV run | | | | |")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
