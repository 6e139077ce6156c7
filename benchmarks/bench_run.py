"""`policy run` end to end, against the I/O floor measured in the same run, with peak memory.

    python benchmarks/bench_run.py --quick     # 4,000 and 40,000 accounts, 2 runs each
    python benchmarks/bench_run.py             # 100,000 and 1,000,000 accounts, 3 runs each

For each size the workload generator writes accounts.csv and contacts.csv (cached in
benchmarks/.data/, keyed by size, seed and generator version), then, in alternation:

  * `policy run benchmarks/policies/contact.policy accounts.csv --history contacts.csv
    --now <workload NOW> -o decisions.jsonl -q` as a child process (the installed `policy` command
    of this Python environment);
  * the I/O floor (io_floor.py) as a child process: the same two CSVs read with the csv module
    and the same JSONL written (the decisions just produced), atomically as `policy run -o`
    does, no evaluation.

Figures: median wall time of the runs (process start to exit, interpreter start-up and policy
compile included for `policy run`), µs per account, ratio to the floor, and each child's peak
resident memory (ru_maxrss of that child alone, from wait4). One extra `policy run` without
--history per size separates the memory the streamed accounts take from what the in-memory
history index takes.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workload  # noqa: E402

POLICY = os.path.join(HERE, "policies", "contact.policy")
DATA = os.path.join(HERE, ".data")


def log(*args) -> None:
    print(*args, flush=True)


def policy_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "policy")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-c", "import sys; sys.argv[0] = 'policy'; from policydsl.cli import main; main()"]


def measure(command: list[str]) -> tuple[float, float, int, int, str]:
    """(wall s, CPU s, peak RSS in bytes, exit code, stderr) of one child process, spawned by the
    small measure_child.py launcher so that this process's memory is not counted as the child's."""
    launcher = [sys.executable, "-I", "-S", os.path.join(HERE, "measure_child.py")]
    done = subprocess.run([*launcher, *command], capture_output=True, check=True)
    figures = json.loads(done.stdout)
    return (figures["wall_s"], figures["cpu_s"], figures["max_rss"], figures["exit"],
            done.stderr.decode(errors="replace"))


def dataset(n: int, seed: int) -> tuple[str, str, int, float]:
    """accounts.csv and contacts.csv for n accounts, generated once and cached."""
    with open(workload.__file__, "rb") as f:
        version = hashlib.sha1(f.read()).hexdigest()[:10]
    directory = os.path.join(DATA, f"run-{n}-{seed}-{version}")
    stamp = os.path.join(directory, "complete")
    if os.path.exists(stamp):
        with open(stamp) as f:
            rows, seconds = f.read().split()
        return (os.path.join(directory, "accounts.csv"), os.path.join(directory, "contacts.csv"), int(rows),
                -float(seconds))
    started = time.perf_counter()
    # in a child process: this one stays small (see measure())
    subprocess.run([sys.executable, workload.__file__, "--n", str(n), "--seed", str(seed), "--out", directory],
                   check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    accounts, contacts = os.path.join(directory, "accounts.csv"), os.path.join(directory, "contacts.csv")
    rows = count_lines(contacts) - 1
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


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    return f"{size / 1e6:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4,000 and 40,000 accounts, 2 runs each")
    parser.add_argument("--sizes", help="comma list of account counts (default 100000,1000000)")
    parser.add_argument("--runs", type=int, help="timed runs of each command per size (default 3; 2 with --quick)")
    parser.add_argument("--seed", type=int, default=workload.SEED)
    parser.add_argument("--keep", action="store_true", help="keep the generated data and outputs")
    parser.add_argument("--shuffled-history", action="store_true",
                        help="also run with the history rows in random order (not sorted by account id)")
    args = parser.parse_args(argv)
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [4_000, 40_000] if args.quick else [100_000, 1_000_000])
    args.runs = args.runs or (2 if args.quick else 3)
    t0 = time.perf_counter()
    policy = policy_command()
    now = workload.NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
    except OSError:
        load = ["?"]
    bare = measure([sys.executable, "-c", "pass"])
    log(f"machine: {cpu_model()}, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, "
        f"load average {' '.join(load)}; a bare interpreter peaks at {bare[2] / 1e6:.0f} MB")
    log(f"policy command: {' '.join(policy)}")

    rows_out = []
    failed = False
    for n in sizes:
        accounts, contacts, history_rows, gen_s = dataset(n, args.seed)
        log(f"\n== {n:,} accounts: {accounts} ({mb(os.path.getsize(accounts))}), {history_rows:,} contacts "
            f"({mb(os.path.getsize(contacts))}); " + (f"generated in {gen_s:.1f} s" if gen_s >= 0 else "cached"))
        directory = os.path.dirname(accounts)
        out = os.path.join(directory, "decisions.jsonl")
        floor_out = os.path.join(directory, "floor.jsonl")
        run_cmd = [*policy, "run", POLICY, accounts, "--history", contacts, "--now", now, "-o", out, "-q"]
        floor_cmd = [sys.executable, os.path.join(HERE, "io_floor.py"), accounts, contacts, out, floor_out]
        runs, floors = [], []
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
            wall_f, cpu_f, rss_f, code_f, err_f = measure(floor_cmd)
            if code_f != 0:
                log(f"   floor exited {code_f}: {err_f.strip()[:2000]}")
                failed = True
                break
            floors.append((wall_f, cpu_f, rss_f))
            log(f"   run {i + 1}: policy run {wall:7.2f} s (CPU {cpu:6.2f} s), {rss / 1e6:7,.0f} MB peak | "
                f"floor {wall_f:6.2f} s (CPU {cpu_f:5.2f} s), {rss_f / 1e6:5,.0f} MB peak")
        if not runs or not floors:
            continue
        same = filecmp.cmp(out, floor_out, shallow=False)
        ref_read = read_alone(out)
        wall_nh, _, rss_nh, code_nh, err_nh = measure(
            [*policy, "run", POLICY, accounts, "--now", now, "-o", os.path.join(directory, "no_history.jsonl"), "-q"])
        if code_nh != 0:
            log(f"   policy run without --history exited {code_nh}: {err_nh.strip()[:500]}")
        log(f"   without --history: {wall_nh:.2f} s, {rss_nh / 1e6:,.0f} MB peak; floor output identical: {same}; "
            f"reading the reference alone: {ref_read:.2f} s")
        shuffled = None
        if args.shuffled_history:
            shuffled_out = os.path.join(directory, "shuffled.jsonl")
            wall_sh, _, rss_sh, code_sh, err_sh = measure(
                [*policy, "run", POLICY, accounts, "--history", shuffled_copy(contacts, args.seed), "--now", now,
                 "-o", shuffled_out, "-q"])
            if code_sh != 0:
                log(f"   policy run with the shuffled history exited {code_sh}: {err_sh.strip()[:500]}")
                failed = True
            else:
                same_sh = filecmp.cmp(out, shuffled_out, shallow=False)
                failed = failed or not same_sh
                shuffled = (wall_sh, rss_sh, same_sh)
                log(f"   shuffled history: {wall_sh:.2f} s, {rss_sh / 1e6:,.0f} MB peak; same decisions: {same_sh}")
        run_s = statistics.median(r[0] for r in runs)
        floor_s = statistics.median(f[0] for f in floors)
        rows_out.append({
            "n": n, "contacts": history_rows, "in_bytes": os.path.getsize(accounts) + os.path.getsize(contacts),
            "out_bytes": os.path.getsize(out), "run_s": run_s, "run_best": min(r[0] for r in runs),
            "run_worst": max(r[0] for r in runs), "floor_s": floor_s, "run_rss": max(r[2] for r in runs),
            "run_cpu": statistics.median(r[1] for r in runs), "floor_cpu": statistics.median(f[1] for f in floors),
            "floor_rss": max(f[2] for f in floors), "nohist_s": wall_nh, "nohist_rss": rss_nh,
            "ref_read_s": ref_read, "floor_identical": same, "shuffled": shuffled,
        })
        if not args.keep:
            for path in (out, floor_out, os.path.join(directory, "no_history.jsonl"),
                         os.path.join(directory, "shuffled.jsonl")):
                if os.path.exists(path):
                    os.remove(path)

    report(rows_out, args.runs)
    log(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


def report(rows: list[dict], runs: int) -> None:
    if not rows:
        return
    log(f"\n## policy run vs the I/O floor — median of {runs} runs (process start to exit)\n")
    log("| accounts | contacts | input | output | policy run s (best–worst) | µs/account | I/O floor s | "
        "µs/account | × floor (wall) | × floor (CPU) | peak RSS policy run | peak RSS floor | "
        "without --history: s, peak RSS |")
    log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        log(f"| {r['n']:,} | {r['contacts']:,} | {mb(r['in_bytes'])} | {mb(r['out_bytes'])} | "
            f"{r['run_s']:.2f} ({r['run_best']:.2f}–{r['run_worst']:.2f}) | {r['run_s'] / r['n'] * 1e6:.1f} | "
            f"{r['floor_s']:.2f} | {r['floor_s'] / r['n'] * 1e6:.1f} | {r['run_s'] / r['floor_s']:.1f}× | "
            f"{r['run_cpu'] / r['floor_cpu']:.1f}× | {r['run_rss'] / 1e6:,.0f} MB | {r['floor_rss'] / 1e6:,.0f} MB | "
            f"{r['nohist_s']:.2f} s, {r['nohist_rss'] / 1e6:,.0f} MB |")
    log("\n## targets (ratios from this run; informative, not asserted)\n")
    log("| target | measured | met |")
    log("|---|---:|---|")
    for r in rows:
        ratio = r["run_s"] / r["floor_s"]
        log(f"| policy run ≤ 2.5× the I/O floor at {r['n']:,} accounts | {ratio:.1f}× wall "
            f"({r['run_cpu'] / r['floor_cpu']:.1f}× CPU) | {'yes' if ratio <= 2.5 else 'no'} |")
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        growth = large["run_rss"] / small["run_rss"]
        log(f"| peak memory does not grow with accounts ({small['n']:,} → {large['n']:,}) | "
            f"{small['run_rss'] / 1e6:,.0f} → {large['run_rss'] / 1e6:,.0f} MB ({growth:.1f}×) | "
            f"{'yes' if growth <= 1.25 else 'no'} |")
        growth_nh = large["nohist_rss"] / small["nohist_rss"]
        log(f"| … the same without --history (streamed accounts alone) | "
            f"{small['nohist_rss'] / 1e6:,.0f} → {large['nohist_rss'] / 1e6:,.0f} MB ({growth_nh:.1f}×) | "
            f"{'yes' if growth_nh <= 1.25 else 'no'} |")
        if small["shuffled"] and large["shuffled"]:
            rss_small, rss_large = small["shuffled"][1], large["shuffled"][1]
            log(f"| … the same with the history shuffled (not sorted by account id) | "
                f"{rss_small / 1e6:,.0f} → {rss_large / 1e6:,.0f} MB ({rss_large / rss_small:.1f}×) | "
                f"{'yes' if rss_large / rss_small <= 1.25 else 'no'} |")
    log("\n(The floor also reads the decisions it copies from the page cache; reading them alone took "
        + ", ".join(f"{r['ref_read_s']:.2f} s at {r['n']:,}" for r in rows) + ".)")


if __name__ == "__main__":
    sys.exit(main())
