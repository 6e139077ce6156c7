"""`policy run` end to end, against two I/O floors measured in the same run, with peak memory.

    python benchmarks/bench_run.py --quick     # peers: 4,000 and 40,000 accounts; e-commerce: 20,000; 2 runs each
    python benchmarks/bench_run.py             # peers: 100,000 and 1,000,000; e-commerce: 100,000; 3 runs each

Two workloads (`--workload peers|ecommerce|both`, default both):

  * peers: `policy run benchmarks/policies/contact.policy accounts.csv --history contacts.csv
    --now <workload NOW> -o decisions.jsonl -q`, the peers' 6-action workload with ~9 contacts
    per account (workload.write_csv);
  * ecommerce: `policy run policies/ecommerce_consumer_loan.policy accounts.csv --now <the
    examples' NOW> -o decisions.jsonl -q`, the shipped 16-action policy (China baseline
    included) on accounts drawn by examples/make_examples.py's generator, no history.

For each workload and size the data is written once (cached in benchmarks/.data/, keyed by
workload, size, seed and generator version), then, in alternation, each as a child process:

  * `policy run` (the installed `policy` command of this Python environment);
  * the same-bytes floor (io_floor.py --reference): the same CSVs read with the csv module and
    the same JSONL written (the decisions just produced), atomically as `policy run -o` does;
  * the minimal-line floor (io_floor.py --minimal): the same CSVs read, `{"account_id":...}` per
    account written, so the ratio to it also charges `policy run` for the size of its output.

Figures: median wall time of the runs (process start to exit, interpreter start-up and policy
compile included for `policy run`), µs per account, ratios to both floors, and each child's peak
resident memory (ru_maxrss of that child alone, from wait4). One extra `policy run` without
--history per peers size separates the memory the streamed accounts take from what the history
takes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import hashlib
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workload  # noqa: E402

DATA = os.path.join(HERE, ".data")


@dataclass(frozen=True)
class Workload:
    """What one workload runs: its policy, its evaluation instant, its default sizes and seed."""

    name: str
    policy: str
    now: str  # ISO-8601, as --now takes it
    sizes: tuple[int, ...]
    quick_sizes: tuple[int, ...]
    seed: int
    history: bool  # whether it has a contacts.csv


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


WORKLOADS = {
    "peers": Workload("peers", os.path.join(HERE, "policies", "contact.policy"), _iso(workload.NOW),
                      (100_000, 1_000_000), (4_000, 40_000), workload.SEED, True),
    "ecommerce": Workload("ecommerce", workload.ECOMMERCE_POLICY, _iso(workload.ecommerce_now()),
                          (100_000,), (20_000,), workload.ecommerce_seed(), False),
}

# Issue 12's targets for `policy run`, as ratios of wall times measured in the same run.
SAME_BYTES_TARGET = 3.0
MINIMAL_TARGET = 6.0


def log(*args: object) -> None:
    print(*args, flush=True)


def policy_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "policy")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-c", "import sys; sys.argv[0] = 'policy'; from policydsl.cli import program; program()"]


def measure(command: list[str]) -> tuple[float, float, int, int, str]:
    """(wall s, CPU s, peak RSS in bytes, exit code, stderr) of one child process, spawned by the
    small measure_child.py launcher so that this process's memory is not counted as the child's."""
    launcher = [sys.executable, "-I", "-S", os.path.join(HERE, "measure_child.py")]
    done = subprocess.run([*launcher, *command], capture_output=True, check=True)
    figures = json.loads(done.stdout)
    return (figures["wall_s"], figures["cpu_s"], figures["max_rss"], figures["exit"],
            done.stderr.decode(errors="replace"))


def _version(*paths: str) -> str:
    digest = hashlib.sha1()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:10]


def dataset(work: Workload, n: int, seed: int) -> tuple[str, str | None, int, float]:
    """accounts.csv (and contacts.csv, None when the workload has no history) for n accounts,
    generated once and cached; also the number of history rows and the seconds generating took
    (negative: cached). The peers' directories keep their name (run-N-SEED-VERSION of workload.py);
    the e-commerce key also covers make_examples.py, its generator."""
    if work.history:
        directory = os.path.join(DATA, f"run-{n}-{seed}-{_version(workload.__file__)}")
    else:
        version = _version(workload.__file__, os.path.join(workload.EXAMPLES, "make_examples.py"))
        directory = os.path.join(DATA, f"{work.name}-{n}-{seed}-{version}")
    accounts = os.path.join(directory, "accounts.csv")
    contacts = os.path.join(directory, "contacts.csv") if work.history else None
    stamp = os.path.join(directory, "complete")
    if os.path.exists(stamp):
        with open(stamp) as f:
            cached_rows, cached_seconds = f.read().split()
        return accounts, contacts, int(cached_rows), -float(cached_seconds)
    started = time.perf_counter()
    # in a child process: this one stays small (see measure())
    subprocess.run([sys.executable, workload.__file__, "--workload", work.name, "--n", str(n), "--seed", str(seed),
                    "--out", directory], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    rows = count_lines(contacts) - 1 if contacts else 0
    with open(stamp, "w") as f:
        f.write(f"{rows} {seconds:.1f}")
    return accounts, contacts, rows, seconds


def shuffled_copy(contacts: str, seed: int) -> str:
    """contacts.csv with its data rows in random order, written once beside it. Shuffled through
    bucket files (each line to a random one of 32, each bucket shuffled in memory, the buckets
    concatenated): a uniform shuffle that holds a 32nd of the file at a time."""
    target = os.path.join(os.path.dirname(contacts), "contacts-shuffled.csv")
    if os.path.exists(target):
        return target
    rng = random.Random(seed)
    buckets = [f"{target}.{i}.tmp" for i in range(32)]
    with open(contacts, encoding="utf-8", newline="") as source:
        header = source.readline()
        handles = [open(path, "w", encoding="utf-8", newline="") for path in buckets]  # noqa: SIM115
        try:
            for line in source:
                handles[rng.randrange(len(handles))].write(line)
        finally:
            for handle in handles:
                handle.close()
    with open(target + ".tmp", "w", encoding="utf-8", newline="") as out:
        out.write(header)
        for path in buckets:
            with open(path, encoding="utf-8", newline="") as bucket:
                lines = bucket.readlines()
            rng.shuffle(lines)
            out.writelines(lines)
            os.remove(path)
    os.replace(target + ".tmp", target)
    return target


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def read_alone(path: str) -> float:
    """Seconds to read a text file line by line (what the floor spends on its reference)."""
    started = time.perf_counter()
    with open(path, encoding="utf-8", newline="") as f:
        for _line in f:
            pass
    return time.perf_counter() - started


def mb(size: float) -> str:
    return f"{size / 1e6:,.1f} MB" if size < 10e6 else f"{size / 1e6:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="peers at 4,000 and 40,000 accounts, e-commerce at 20,000; 2 runs each")
    parser.add_argument("--workload", choices=("peers", "ecommerce", "both"), default="both",
                        help="which workload(s) to run (default %(default)s)")
    parser.add_argument("--sizes", help="comma list of account counts, for every workload run "
                                        "(default: peers 100000,1000000; e-commerce 100000)")
    parser.add_argument("--runs", type=int, help="timed runs of each command per size (default 3; 2 with --quick)")
    parser.add_argument("--seed", type=int,
                        help=f"generator seed (default: peers {workload.SEED}, e-commerce the examples' "
                             f"{workload.ecommerce_seed()})")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and outputs")
    parser.add_argument("--shuffled-history", action="store_true",
                        help="also run with the history rows in random order (not sorted by account id)")
    args = parser.parse_args(argv)
    works = [WORKLOADS[name] for name in (("peers", "ecommerce") if args.workload == "both" else (args.workload,))]
    args.runs = args.runs or (2 if args.quick else 3)
    t0 = time.perf_counter()
    policy = policy_command()
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
    except OSError:
        load = ["?"]
    bare = measure([sys.executable, "-c", "pass"])
    log(f"machine: {workload.cpu_model()}, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, "
        f"load average {' '.join(load)}; a bare interpreter peaks at {bare[2] / 1e6:.0f} MB")
    log(f"policy command: {' '.join(policy)}")

    rows_out: list[dict[str, Any]] = []
    failed = False
    for work in works:
        sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
                 else work.quick_sizes if args.quick else work.sizes)
        for n in sizes:
            row, ok = bench_one(work, n, work.seed if args.seed is None else args.seed, args, policy)
            failed = failed or not ok
            if row is not None:
                rows_out.append(row)

    report(rows_out, args.runs)
    log(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


def same_ids(decisions: str, minimal: str) -> bool:
    """Whether the minimal floor wrote one line per decision, for the same account, in order: each
    decision line starts with the minimal line's `{"account_id":<id>` followed by a comma."""
    with open(decisions, encoding="utf-8", newline="") as full, open(minimal, encoding="utf-8", newline="") as ids:
        for line, short in itertools.zip_longest(full, ids):
            if line is None or short is None:
                return False
            head = short[:-2]  # without `}\n`
            if not line.startswith(head) or line[len(head):len(head) + 1] != ",":
                return False
    return True


def error_decisions(path: str) -> int:
    """Decisions whose `error` is not null (a rejected row is cheap to decide, and would flatter
    the ratios; the generated workloads have none). Decision lines put `"error"` right after the
    `blocked` list, so a substring test suffices."""
    with open(path, encoding="utf-8", newline="") as f:
        return sum('],"error":null,"now":' not in line for line in f)


def bench_one(work: Workload, n: int, seed: int, args: argparse.Namespace,
              policy: list[str]) -> tuple[dict[str, Any] | None, bool]:
    """One workload at one size: the alternation of `policy run` and the two floors, then the
    checks and the extra runs. Returns the table row (None when nothing could be measured) and
    whether everything succeeded."""
    accounts, contacts, history_rows, gen_s = dataset(work, n, seed)
    log(f"\n== {work.name}, {n:,} accounts: {accounts} ({mb(os.path.getsize(accounts))}), "
        + (f"{history_rows:,} contacts ({mb(os.path.getsize(contacts))}); " if contacts else "no history; ")
        + (f"generated in {gen_s:.1f} s" if gen_s >= 0 else "cached"))
    directory = os.path.dirname(accounts)
    out = os.path.join(directory, "decisions.jsonl")
    floor_out = os.path.join(directory, "floor.jsonl")
    minimal_out = os.path.join(directory, "minimal.jsonl")
    history = ["--history", contacts] if contacts else []
    run_cmd = [*policy, "run", work.policy, accounts, *history, "--now", work.now, "-o", out, "-q"]
    floor = [sys.executable, os.path.join(HERE, "io_floor.py"), accounts, *history]
    floor_cmd = [*floor, "--reference", out, floor_out]
    minimal_cmd = [*floor, "--minimal", minimal_out]
    failed = False
    runs: list[tuple[float, float, int]] = []
    floors: list[tuple[float, float, int]] = []
    minimals: list[tuple[float, float, int]] = []
    for i in range(args.runs):
        wall, cpu, rss, code, err = measure(run_cmd)
        if code != 0:
            log(f"   policy run exited {code}: {err.strip()[:2000]}")
            failed = True
            break
        runs.append((wall, cpu, rss))
        if i == 0:
            lines = count_lines(out)
            if lines != n:
                log(f"   policy run wrote {lines:,} decisions for {n:,} accounts")
                failed = True
                break
        figures = []
        for name, command, kept in (("floor", floor_cmd, floors), ("minimal floor", minimal_cmd, minimals)):
            wall_f, cpu_f, rss_f, code_f, err_f = measure(command)
            if code_f != 0:
                log(f"   {name} exited {code_f}: {err_f.strip()[:2000]}")
                failed = True
                break
            kept.append((wall_f, cpu_f, rss_f))
            figures.append(f"{name} {wall_f:6.2f} s (CPU {cpu_f:5.2f} s), {rss_f / 1e6:5,.0f} MB")
        if failed:
            break
        log(f"   run {i + 1}: policy run {wall:7.2f} s (CPU {cpu:6.2f} s), {rss / 1e6:7,.0f} MB peak | "
            + " | ".join(figures))
    if not runs or not floors or not minimals:
        return None, False
    same = filecmp.cmp(out, floor_out, shallow=False)
    ids = same_ids(out, minimal_out)
    errors = error_decisions(out)
    failed = failed or not same or not ids or errors > 0
    ref_read = read_alone(out)
    log(f"   floor output identical: {same}; minimal floor: same accounts in the same order: {ids}; "
        f"decisions with an error: {errors:,}; reading the reference alone: {ref_read:.2f} s")
    wall_nh = rss_nh = None
    if contacts:
        wall_nh, _, rss_nh, code_nh, err_nh = measure(
            [*policy, "run", work.policy, accounts, "--now", work.now,
             "-o", os.path.join(directory, "no_history.jsonl"), "-q"])
        if code_nh != 0:
            log(f"   policy run without --history exited {code_nh}: {err_nh.strip()[:500]}")
        log(f"   without --history: {wall_nh:.2f} s, {rss_nh / 1e6:,.0f} MB peak")
    shuffled = None
    if args.shuffled_history and contacts:
        shuffled_out = os.path.join(directory, "shuffled.jsonl")
        wall_sh, _, rss_sh, code_sh, err_sh = measure(
            [*policy, "run", work.policy, accounts, "--history", shuffled_copy(contacts, seed), "--now", work.now,
             "-o", shuffled_out, "-q"])
        if code_sh != 0:
            log(f"   policy run with the shuffled history exited {code_sh}: {err_sh.strip()[:500]}")
            failed = True
        else:
            same_sh = filecmp.cmp(out, shuffled_out, shallow=False)
            failed = failed or not same_sh
            shuffled = (wall_sh, rss_sh, same_sh)
            log(f"   shuffled history: {wall_sh:.2f} s, {rss_sh / 1e6:,.0f} MB peak; same decisions: {same_sh}")
    row = {
        "workload": work.name, "n": n, "contacts": history_rows,
        "in_bytes": os.path.getsize(accounts) + (os.path.getsize(contacts) if contacts else 0),
        "out_bytes": os.path.getsize(out), "minimal_bytes": os.path.getsize(minimal_out),
        "run_s": statistics.median(r[0] for r in runs), "run_best": min(r[0] for r in runs),
        "run_worst": max(r[0] for r in runs), "run_cpu": statistics.median(r[1] for r in runs),
        "run_rss": max(r[2] for r in runs),
        "floor_s": statistics.median(f[0] for f in floors), "floor_cpu": statistics.median(f[1] for f in floors),
        "floor_rss": max(f[2] for f in floors),
        "minimal_s": statistics.median(f[0] for f in minimals),
        "minimal_cpu": statistics.median(f[1] for f in minimals), "minimal_rss": max(f[2] for f in minimals),
        "nohist_s": wall_nh, "nohist_rss": rss_nh, "ref_read_s": ref_read, "floor_identical": same,
        "shuffled": shuffled,
    }
    if not args.keep:
        for path in (out, floor_out, minimal_out, os.path.join(directory, "no_history.jsonl"),
                     os.path.join(directory, "shuffled.jsonl")):
            if os.path.exists(path):
                os.remove(path)
    return row, not failed


def met(ok: bool) -> str:
    return "yes" if ok else "no"


def report(rows: list[dict[str, Any]], runs: int) -> None:
    if not rows:
        return
    log(f"\n## policy run vs the I/O floors — median of {runs} runs (process start to exit)\n")
    log("| workload | accounts | contacts | input | output | policy run s (best–worst) | µs/account | "
        "same-bytes floor s | × floor (wall) | × floor (CPU) | minimal floor s | × minimal floor (wall) | "
        "× minimal floor (CPU) | peak RSS policy run | peak RSS floor, minimal | without --history: s, peak RSS |")
    log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        without = "—" if r["nohist_s"] is None else f"{r['nohist_s']:.2f} s, {r['nohist_rss'] / 1e6:,.0f} MB"
        log(f"| {r['workload']} | {r['n']:,} | {r['contacts']:,} | {mb(r['in_bytes'])} | {mb(r['out_bytes'])} | "
            f"{r['run_s']:.2f} ({r['run_best']:.2f}–{r['run_worst']:.2f}) | {r['run_s'] / r['n'] * 1e6:.1f} | "
            f"{r['floor_s']:.2f} | {r['run_s'] / r['floor_s']:.1f}× | {r['run_cpu'] / r['floor_cpu']:.1f}× | "
            f"{r['minimal_s']:.2f} | {r['run_s'] / r['minimal_s']:.1f}× | {r['run_cpu'] / r['minimal_cpu']:.1f}× | "
            f"{r['run_rss'] / 1e6:,.0f} MB | {r['floor_rss'] / 1e6:,.0f} MB, {r['minimal_rss'] / 1e6:,.0f} MB | "
            f"{without} |")
    log("\n## targets (ratios of wall times from this run; informative, not asserted)\n")
    log("| target | measured | met |")
    log("|---|---:|---|")
    for r in rows:
        where = f"{r['workload']}, {r['n']:,} accounts" + (f", {r['contacts']:,} contacts" if r["contacts"] else "")
        ratio = r["run_s"] / r["floor_s"]
        log(f"| policy run ≤ {SAME_BYTES_TARGET:g}× the same-bytes floor — {where} | {ratio:.1f}× wall "
            f"({r['run_cpu'] / r['floor_cpu']:.1f}× CPU) | {met(ratio <= SAME_BYTES_TARGET)} |")
        ratio = r["run_s"] / r["minimal_s"]
        log(f"| policy run ≤ {MINIMAL_TARGET:g}× the minimal-line floor — {where} | {ratio:.1f}× wall "
            f"({r['run_cpu'] / r['minimal_cpu']:.1f}× CPU) | {met(ratio <= MINIMAL_TARGET)} |")
    for r in rows:
        if r["n"] >= 1_000_000:
            log(f"| {r['workload']}, {r['n']:,} accounts, {r['contacts']:,} contacts: wall time and peak RSS "
                f"reported | {r['run_s']:.1f} s, {r['run_rss'] / 1e6:,.0f} MB | yes |")
    for name in dict.fromkeys(r["workload"] for r in rows):
        mine = [r for r in rows if r["workload"] == name]
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        growth = large["run_rss"] / small["run_rss"]
        log(f"| peak memory does not grow with accounts — {name} ({small['n']:,} → {large['n']:,}) | "
            f"{small['run_rss'] / 1e6:,.0f} → {large['run_rss'] / 1e6:,.0f} MB ({growth:.1f}×) | "
            f"{met(growth <= 1.25)} |")
        if small["nohist_rss"] and large["nohist_rss"]:
            growth_nh = large["nohist_rss"] / small["nohist_rss"]
            log(f"| … the same without --history (streamed accounts alone) | "
                f"{small['nohist_rss'] / 1e6:,.0f} → {large['nohist_rss'] / 1e6:,.0f} MB ({growth_nh:.1f}×) | "
                f"{met(growth_nh <= 1.25)} |")
        if small["shuffled"] and large["shuffled"]:
            rss_small, rss_large = small["shuffled"][1], large["shuffled"][1]
            log(f"| … the same with the history shuffled (not sorted by account id) | "
                f"{rss_small / 1e6:,.0f} → {rss_large / 1e6:,.0f} MB ({rss_large / rss_small:.1f}×) | "
                f"{met(rss_large / rss_small <= 1.25)} |")
    log("\n(The same-bytes floor also reads the decisions it copies from the page cache; reading them alone took "
        + ", ".join(f"{r['ref_read_s']:.2f} s at {r['workload']} {r['n']:,}" for r in rows)
        + ". The minimal floor writes " + ", ".join(f"{mb(r['minimal_bytes'])} at {r['workload']} {r['n']:,}"
                                                    for r in rows) + ".)")


if __name__ == "__main__":
    sys.exit(main())
