"""µs per decision: policydsl vs the peer engines vs hand-written Python, on one workload, in one run.

    python benchmarks/bench_engines.py --quick      # ~1 min: N=5,000, 3 rounds, slow variants bounded
    python benchmarks/bench_engines.py              # the peers' protocol: N=100,000, 5 rounds

Adapted from ../shared/benchmarks/peers/bench_peers.py (same protocol, same adapters, same
population, so the figures compare with its results.md):

  * population: workload.generate(N, seed): the peers' records, unchanged, plus for our
    evaluator each account's zone and contact history (workload.py says how they match);
  * phase 1, per adapter: load/compile (timed), then one verification run (also the warm-up):
    every output is reduced to stage + allowed set + per-channel reason kinds and compared with
    the peers' hand-written function; our evaluator's `until` instants are compared with the
    hand-written function that has the same inputs;
  * phase 2: rounds round-robin over all adapters (gc.collect() before each run), accounts
    streamed through run() in chunks of 1,000 whose outputs are dropped before the next chunk,
    population and references frozen with gc.freeze(); figure = median wall time / accounts.

Peer engines are optional: one whose package is not installed is listed as "not installed"
(install them with benchmarks/requirements.txt; see benchmarks/README.md).
"""

from __future__ import annotations

import os

# RUST_BACKTRACE=1 may be set in the environment; drop it before any Rust extension is loaded so
# error paths do not capture backtraces (as the peers' harness does).
_RUST_BT = os.environ.pop("RUST_BACKTRACE", None)

import argparse  # noqa: E402
import collections  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "peers")]

import engines  # noqa: E402
import gen_policies  # noqa: E402
import hand_written  # noqa: E402
import workload  # noqa: E402
from workload import CHANNELS, NOW, canonical  # noqa: E402

from policydsl import Contact, load_policy  # noqa: E402

POLICY = os.path.join(HERE, "policies", "contact.policy")
CHUNK = 1000
TIMED_KINDS = ("window", "limit", "quiet")


# ---------------------------------------------------------------- our adapters

def _kinds(blocked) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for entry in blocked:
        kinds.setdefault(entry[0], []).append(entry[1])
    return kinds


class PolicyDsl(engines.Adapter):
    name = "policydsl: compiled contact.policy, Policy.evaluate(account, history, now=)"
    engine_name = "policydsl (ours)"
    dist = "policydsl"
    main = True
    input = "raw"
    notes = ("1 evaluate/account from the account's zone and contact history (no precomputed fields); "
             "full Decision: stage, allowed, one Blocked per reason with rule, kind and until")

    def load(self):
        self.policy = load_policy(POLICY)

    def run(self, items):
        evaluate, now = self.policy.evaluate, NOW
        return [evaluate(account, history, now=now) for account, history in items]

    def canon(self, decision):
        if decision.error:
            raise AssertionError(f"{decision.account_id}: {decision.error}")
        c = canonical(decision.stage, _kinds((b.action, b.kind) for b in decision.blocked))
        assert c[1] == frozenset(decision.allowed), decision
        return c

    def detail(self, decision):
        return tuple(sorted((b.action, b.kind, b.until) for b in decision.blocked))


class HandWrittenFull(engines.Adapter):
    name = "hand-written Python, same inputs and output as ours (zone + history + now; reasons, until)"
    engine_name = "hand-written Python"
    input = "raw"
    notes = "hand_written.decide_full: 1 call/account, specialised to this policy"

    def load(self):
        self.fn = hand_written.decide_full

    def run(self, items):
        fn, now = self.fn, NOW
        return [fn(account, history, now) for account, history in items]

    def canon(self, raw):
        stage, allowed, blocked = raw
        c = canonical(stage, _kinds(blocked))
        assert c[1] == frozenset(allowed), raw
        return c

    def detail(self, raw):
        return tuple(sorted((action, kind, until) for action, kind, _, until in raw[2]))


class DeriveGlue(engines.Adapter):
    name = "glue a peer engine needs: local_hour, calls_last_7d, days_since_conversation from zone + history"
    engine_name = "(glue, not an engine)"
    input = "raw"
    kind = "glue"
    notes = "hand_written.derive: add it to a peer's figure for the same inputs as ours"

    def load(self):
        self.fn = hand_written.derive

    def run(self, items):
        fn, now = self.fn, NOW
        return [fn(account, history, now) for account, history in items]

    def canon(self, raw):
        return _record_key(raw)


def _record_key(record: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in record.items()))


ADAPTERS = [PolicyDsl, HandWrittenFull, DeriveGlue, *engines.ALL_ADAPTERS]
# the rows ratios are taken against
BASE_FULL, BASE_ALLOWED, BASE_SAME = "PlainPython", "PlainPythonAllowed", "HandWrittenFull"


# ---------------------------------------------------------------- helpers

def log(*args) -> None:
    print(*args, flush=True)


def installed(adapter) -> bool:
    return adapter.module is None or importlib.util.find_spec(adapter.module) is not None


def chunked(items: list, n: int) -> list[list]:
    size = min(CHUNK, n)
    return [items[i:i + size] for i in range(0, n - n % size, size)]


# ---------------------------------------------------------------- the run

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=5,000, 3 rounds, slow variants bounded")
    parser.add_argument("--n", type=int, help="accounts (default 100,000; 5,000 with --quick)")
    parser.add_argument("--runs", type=int, help="timed rounds (default 5; 3 with --quick)")
    parser.add_argument("--only", help="comma list of adapter class names (e.g. PolicyDsl,PlainPython,Zen)")
    parser.add_argument("--json", dest="json_path", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    n = args.n or (5_000 if args.quick else workload.N_DEFAULT)
    runs = args.runs or (3 if args.quick else 5)
    t0 = time.perf_counter()

    env = {"cpu_model": workload.cpu_model(), "nproc": os.cpu_count(), "python": sys.version.split()[0],
           "platform": platform.platform(), "population_n": n, "seed": workload.SEED, "runs": runs,
           "now": NOW.isoformat(), "quick": args.quick, "rust_backtrace_env_removed": _RUST_BT}
    try:
        with open("/proc/loadavg") as f:
            env["load_average"] = " ".join(f.read().split()[:3])
    except OSError:
        env["load_average"] = "?"
    log(f"machine: {env['cpu_model']}, {env['nproc']} CPU(s), Python {env['python']}, {env['platform']}, "
        f"load average {env['load_average']}")

    t = time.perf_counter()
    population = workload.generate(n)
    peer_pop = [a.peer for a in population]
    raw_pop = [(a.raw, tuple(Contact(a.raw["id"], e.action, e.at, e.outcome) for e in a.history))
               for a in population]
    contacts = sum(len(h) for _, h in raw_pop)
    del population
    env["population_gen_s"] = time.perf_counter() - t
    log(f"population: {n:,} accounts, {contacts:,} contacts ({contacts / n:.1f}/account), now {NOW.isoformat()}"
        f" ({env['population_gen_s']:.1f} s)")

    engines.POL = gen_policies.main(os.path.join(HERE, ".data", "peer_policies"))

    adapters = ADAPTERS
    if args.only:
        keep = set(args.only.split(","))
        adapters = [a for a in adapters if a.__name__ in keep or a.__name__ in (BASE_FULL, BASE_SAME)]

    imports = {}
    for module in dict.fromkeys(a.module for a in adapters if a.module):
        if importlib.util.find_spec(module) is None:
            continue
        t = time.perf_counter()
        importlib.import_module(module)
        imports[module] = time.perf_counter() - t
    env["import_s"] = imports

    # references: the peers' hand-written function on the peers' records
    ref_full = [canonical_from_peer(r) for r in map(hand_written.decide, peer_pop)]
    ref_allowed = [(c[0], c[1]) for c in ref_full]
    ref_glue = [_record_key(p) for p in peer_pop]
    env["stage_counts"] = dict(collections.Counter(c[0] for c in ref_full))
    env["channel_allowed_counts"] = {ch: sum(ch in c[1] for c in ref_full) for ch in CHANNELS}
    log("stages:", env["stage_counts"])
    log("allowed per channel:", env["channel_allowed_counts"])

    results, live, details = [], [], {}
    for cls in adapters:
        ad = cls()
        row = {"adapter": cls.__name__, "engine": ad.engine_name, "name": ad.name, "dist": ad.dist,
               "version": ad.version, "kind": ad.kind, "input": ad.input, "main": ad.main,
               "multi_thread": ad.multi_thread, "notes": ad.notes, "walls_s": [], "cpus_s": []}
        results.append(row)
        if not installed(ad):
            row["error"] = "not installed"
            log(f"== {cls.__name__}: not installed ({ad.dist})")
            continue
        inputs = raw_pop if ad.input == "raw" else peer_pop
        vn = min((ad.quick_verify_n if args.quick else None) or ad.verify_n or n, n)
        try:
            gc.collect()
            t = time.perf_counter()
            ad.load()
            row["load_s"] = time.perf_counter() - t
            t = time.perf_counter()
            raw = ad.run(inputs[:vn])
            row["verify_run_s"] = time.perf_counter() - t
            ref = {"full": ref_full, "allowed": ref_allowed, "glue": ref_glue}[ad.kind]
            canon = [ad.canon(r) for r in raw]
            mismatches = sum(1 for x, y in zip(canon, ref, strict=False) if x != y) + abs(len(canon) - vn)
            row["verify_n"], row["mismatches"] = vn, mismatches
            if mismatches:
                for x, y, p in zip(canon, ref, peer_pop, strict=False):
                    if x != y:
                        row["first_mismatch"] = {"account": p, "got": repr(x), "want": repr(y)}
                        break
            if hasattr(ad, "detail"):
                details[cls.__name__] = [ad.detail(r) for r in raw]
            del raw, canon
            log(f"== {cls.__name__}: load {row['load_s'] * 1e3:.1f} ms; verify: {mismatches} mismatches / {vn:,} "
                f"({row['verify_run_s'] / vn * 1e6:.1f} µs/account)")
            if mismatches:
                log("   first mismatch:", row["first_mismatch"])
            tn = min((ad.quick_timed_n if args.quick else None) or ad.timed_n or n, n)
            live.append((ad, row, chunked(inputs, tn)))
        except Exception as error:  # keep going; record the failure
            row["error"] = f"{type(error).__name__}: {error}"
            log(f"== {cls.__name__}: ERROR {row['error']}")

    # `until`: ours against the hand-written function with the same inputs, account by account
    if "PolicyDsl" in details and "HandWrittenFull" in details:
        ours, hand = details["PolicyDsl"], details["HandWrittenFull"]
        bad = [i for i, (x, y) in enumerate(zip(ours, hand, strict=True)) if x != y]
        env["until_checked"], env["until_mismatches"] = len(ours), len(bad)
        log(f"until: {len(bad)} mismatches / {len(ours):,} accounts (policydsl vs hand-written, every blocked entry)")
        if bad:
            log("   first:", peer_pop[bad[0]], ours[bad[0]], hand[bad[0]])
    details.clear()

    gc.collect()
    gc.freeze()  # population + references -> permanent generation (not re-scanned by the GC)
    for round_ in range(runs):
        log(f"-- timed round {round_ + 1}/{runs}")
        for ad, row, chunks in live:
            tn = sum(len(c) for c in chunks)
            run = ad.run
            gc.collect()
            c0, w0 = time.process_time(), time.perf_counter()
            for chunk in chunks:  # stream: a chunk's outputs are dropped before the next
                out = run(chunk)
            w1, c1 = time.perf_counter(), time.process_time()
            assert len(out) == len(chunks[-1])
            del out
            row["timed_n"] = tn
            row["walls_s"].append(w1 - w0)
            row["cpus_s"].append(c1 - c0)
            log(f"   {row['adapter']:22s} {tn:7,d} acct {(w1 - w0) / tn * 1e6:9.2f} µs/acct")
    gc.unfreeze()

    for _, row, _ in live:
        med = statistics.median(row["walls_s"])
        us = sorted(w / row["timed_n"] * 1e6 for w in row["walls_s"])
        row.update({"us_per_account": med / row["timed_n"] * 1e6, "best_us": us[0], "worst_us": us[-1],
                    "cpu_us_per_account": statistics.median(row["cpus_s"]) / row["timed_n"] * 1e6,
                    "accounts_per_s": row["timed_n"] / med,
                    "cpu_over_wall": statistics.median(row["cpus_s"]) / med})
    env["total_s"] = time.perf_counter() - t0
    report(env, results)
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=1, default=str)
    log(f"\ntotal {env['total_s']:.0f} s")
    failed = [r["adapter"] for r in results if r.get("mismatches") or (r.get("error") not in (None, "not installed"))]
    if env.get("until_mismatches"):
        failed.append("until")
    if failed:
        log("VERIFICATION FAILED:", ", ".join(failed))
        return 1
    return 0


def canonical_from_peer(out) -> tuple:
    stage, allowed, reasons = out
    c = workload.canonical_from_reasons(stage, reasons)
    assert c[1] == frozenset(allowed)
    return c


# ---------------------------------------------------------------- report

def report(env: dict, results: list[dict]) -> None:
    us = {r["adapter"]: r["us_per_account"] for r in results if "us_per_account" in r}
    cpu = {r["adapter"]: r["cpu_us_per_account"] for r in results if "us_per_account" in r}
    base = {"full": us.get(BASE_FULL), "allowed": us.get(BASE_ALLOWED), "glue": us.get(BASE_FULL)}
    same = us.get(BASE_SAME)

    def ratio(value: float | None, to: float | None) -> str:
        return f"{value / to:.1f}×" if value and to else "–"

    log(f"\n## µs per decision — N={env['population_n']:,}, median of {env['runs']} rounds, "
        f"{env['cpu_model']} ({env['nproc']} CPU), Python {env['python']}, load average at start "
        f"{env['load_average']}\n")
    log("× hand-written: ÷ the peers' hand-written function of the same output kind (their results.md column);")
    log("× same inputs: ÷ the hand-written function that, like ours, starts from zone + history + now and "
        "returns reasons and until.\n")
    header = ("| engine | version | variant | output | µs/decision (median) | best–worst | CPU µs | × hand-written "
              "| × same inputs | load ms | verified (mismatch / N) | timed N |")
    log(header)
    log("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        output = {"full": "stage+reasons" + (" +until" if r["adapter"] in ("PolicyDsl", BASE_SAME) else ""),
                  "allowed": "allowed only", "glue": "peer inputs"}[r["kind"]]
        if r["multi_thread"]:
            output += " ⚠ multi-threaded"
        name = ("**" + r["engine"] + "**") if r["main"] else r["engine"]
        variant = r["name"]
        if "us_per_account" not in r:
            log(f"| {name} | {r['version']} | {variant} | {output} | {r.get('error', '?')} | | | | | | | |")
            continue
        log(f"| {name} | {r['version']} | {variant} | {output} | {r['us_per_account']:.1f} | "
            f"{r['best_us']:.1f}–{r['worst_us']:.1f} | {r['cpu_us_per_account']:.1f} | "
            f"{ratio(r['us_per_account'], base[r['kind']])} | "
            f"{ratio(r['us_per_account'], same)} | {r['load_s'] * 1e3:.1f} | {r['mismatches']} / {r['verify_n']:,} | "
            f"{r['timed_n']:,} |")

    ours = us.get("PolicyDsl")
    peers = [r for r in results if "us_per_account" in r and r["dist"] not in (None, "policydsl")
             and r["kind"] == "full" and not r["multi_thread"]]
    fastest = min(peers, key=lambda r: r["us_per_account"], default=None)
    log("\n## targets (ratios from this run; informative, not asserted)\n")
    log("| target | measured | met |")
    log("|---|---:|---|")
    ours_cpu = cpu.get("PolicyDsl")
    if ours and us.get(BASE_FULL):
        value = ours / us[BASE_FULL]
        log(f"| policydsl ≤ 2× the peers' hand-written function (precomputed inputs, no until) "
            f"| {value:.1f}× ({ours_cpu / cpu[BASE_FULL]:.1f}× CPU) | {'yes' if value <= 2 else 'no'} |")
    if ours and same:
        value = ours / same
        log(f"| policydsl ≤ 1.0× the hand-written function with the same inputs and output (until) "
            f"| {value:.1f}× ({ours_cpu / cpu[BASE_SAME]:.1f}× CPU) | {'yes' if value <= 1 else 'no'} |")
    glue = us.get("DeriveGlue")
    if ours and fastest and glue:
        value = (fastest["us_per_account"] + glue) / ours
        log(f"| fastest single-threaded full-output peer ({fastest['name']}, {fastest['us_per_account']:.1f} µs) "
            f"plus the glue that feeds it from zone + history ({glue:.1f} µs) ≥ 2× policydsl | {value:.2f}× "
            f"| {'yes' if value >= 2 else 'no'} |")
    elif ours:
        log("| fastest peer + glue ≥ 2× policydsl | no peer engine installed | – |")
    if "until_checked" in env:
        log(f"\nuntil: {env['until_mismatches']} mismatches over {env['until_checked']:,} accounts "
            f"(policydsl vs hand-written, every blocked entry's action, kind and until)")
    imports = ", ".join(f"{k} {v * 1e3:.0f}" for k, v in env["import_s"].items())
    log(f"import ms: {imports}; population {env['population_gen_s']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
