"""`policy serve` over HTTP, under a bounded load, against in-process `Policy.evaluate` in the same run.

    python benchmarks/bench_serve.py --quick   # 2,000 single / 200 batch / 1,000 reserve requests per level (~2 min)
    python benchmarks/bench_serve.py           # 10,000 / 1,000 / 4,000 per level (~6-8 min on 2 cores)
    python benchmarks/bench_serve.py --no-postgres --concurrency 1,16 --batch-size 100 --json out.json

The real server (`policy serve ... --port 0`, the `policy` command of this Python environment) runs
in a subprocess on 127.0.0.1; this script is the client, in another process: an asyncio client
(uvloop when installed) on raw keep-alive HTTP/1.1 connections, one per concurrent worker, each
request written as prepared bytes and its answer read as the status line, the headers and exactly
Content-Length bytes. Each level sends a fixed number of requests (bounded load, not a rate),
after a warm-up of its own; every request's latency is taken with time.perf_counter_ns. A non-200
answer or a transport error counts as an error.

What is measured, at concurrency 1, 16 and 64 (`--concurrency`):

  * `/v1/decide`: the shipped policies/ecommerce_consumer_loan.policy, the 250 accounts of
    examples/accounts.csv as JSON bodies (numbers as numbers, empty cells left out, `flags` as
    arrays, true/false as booleans) at now = 2025-06-04T02:00:00Z, no history, no ledger;
  * `/v1/decide/batch`: the same accounts, `--batch-size` (100) per request;
  * `/v1/reserve`: policies/us_reg_f.policy, `"action": "call"` at now = 2025-06-03T19:00:00Z
    (15:00 in New York) for `{"id": <unique per request>, "timezone": "America/New_York"}`, so every
    reservation takes the ledger's per-account lock, is granted and writes; on a SQLite ledger (a
    temp dir) and on PostgreSQL (a throwaway server started here from initdb/pg_ctl, with its
    default durability: fsync on); plus one run where every request reserves for ONE account,
    which measures the lock's contention (every answer after the 7th is a refusal, a valid 200);
  * one row `/v1/decide` with `--decision-log` at concurrency 16 (the log's cost);
  * `GET /health` at each concurrency: the HTTP floor of this server and client.

Baseline, in this process, in the same run (before and after the HTTP runs; the mean is used):
`policy.evaluate(account, [], now=now)` over the same account dicts as the server reads from the
bodies (fractions as Decimals), in decisions/s, and the same followed by `decision.to_dict()` and
`json.dumps`, which is what the server does besides HTTP. Before timing, every account's
`/v1/decide` answer is checked equal to the in-process decision (the `decision_id` aside).

Also shown per level: the server's CPU time per request (from /proc/PID/stat) and the client's
CPU share, so one can see which process the time went to on a machine with few cores.

Targets (printed with met/missed, not asserted): batch decisions over HTTP >= 50 % of in-process
`Policy.evaluate` throughput; single decisions p99 < 10 ms at concurrency 16.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from workload import cpu_model  # noqa: E402

from policydsl import load_policy  # noqa: E402

ECOMMERCE = os.path.join(ROOT, "policies", "ecommerce_consumer_loan.policy")
REG_F = os.path.join(ROOT, "policies", "us_reg_f.policy")
ACCOUNTS = os.path.join(ROOT, "examples", "accounts.csv")
DECIDE_NOW = "2025-06-04T02:00:00Z"
RESERVE_NOW = "2025-06-03T19:00:00Z"
NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


# ------------------------------------------------------------------ environment

def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def process_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process so far (0 where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# ------------------------------------------------------------------ workload

def cell(name: str, text: str) -> Any:
    """A CSV cell as JSON: `flags` as an array, numbers as numbers, true/false as booleans."""
    if name == "flags":
        return [flag for flag in text.split(";") if flag]
    if name != "id" and NUMBER.fullmatch(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def csv_accounts(path: str = ACCOUNTS) -> list[dict[str, Any]]:
    """The rows of examples/accounts.csv as JSON-ready dicts (empty cells left out)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{name: cell(name, text) for name, text in row.items() if text != ""} for row in csv.DictReader(f)]


def as_server_reads(account: dict[str, Any]) -> dict[str, Any]:
    """The account as the server has it after parsing its body (fractions as exact Decimals)."""
    parsed: dict[str, Any] = json.loads(json.dumps(account), parse_float=Decimal)
    return parsed


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def request_bytes(method: str, path: str, port: int, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ------------------------------------------------------------------ in-process baseline

def in_process(accounts: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    """Decisions/s of Policy.evaluate over the accounts, and with to_dict + json.dumps too;
    each timed for about `seconds` (whole passes over the accounts), best of 3 rounds."""
    policy = load_policy(ECOMMERCE)
    now = instant(DECIDE_NOW)
    for account in accounts:  # warm-up (and the per-zone facts the policy keeps)
        policy.evaluate(account, [], now=now)

    def rate(encode: bool) -> tuple[float, float]:
        """(decisions per wall second, CPU µs per decision) of one round."""
        passes, started, cpu = 0, time.perf_counter(), time.process_time()
        while True:
            for account in accounts:
                decision = policy.evaluate(account, [], now=now)
                if encode:
                    json.dumps(decision.to_dict())
            passes += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                done = passes * len(accounts)
                return done / elapsed, (time.process_time() - cpu) / done * 1e6

    evaluate = [rate(False) for _ in range(3)]
    encoded = [rate(True) for _ in range(3)]
    return {"evaluate": max(r for r, _ in evaluate), "evaluate_json": max(r for r, _ in encoded),
            "evaluate_cpu_us": min(c for _, c in evaluate), "evaluate_json_cpu_us": min(c for _, c in encoded)}


# ------------------------------------------------------------------ the server

class Server:
    """`policy serve` in a subprocess; stopped with SIGTERM, which must exit 0."""

    def __init__(self, policies: list[str], workdir: str, *extra: str) -> None:
        script = os.path.join(os.path.dirname(sys.executable), "policy")
        command = [script] if os.path.exists(script) else [
            sys.executable, "-c", "import sys; sys.argv[0] = 'policy'; from policydsl.cli import program; program()"]
        self.stderr_path = os.path.join(workdir, f"serve-{time.monotonic_ns()}.log")
        self.stderr = open(self.stderr_path, "w+b")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([*command, "serve", *policies, "--port", "0", *extra],
                                        stdout=subprocess.DEVNULL, stderr=self.stderr, cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:
            with open(self.stderr_path, "rb") as f:
                found = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", f.read())
            if found:
                self.port = int(found.group(1))
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                with open(self.stderr_path, "rb") as f:
                    raise RuntimeError(f"policy serve did not start: {f.read().decode(errors='replace')}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.stderr.close()
        with open(self.stderr_path, "rb") as f:
            text = f.read().decode(errors="replace")
        if code != 0 or "incident" in text:
            log(f"policy serve exited {code}:\n{text}")


# ------------------------------------------------------------------ the client

@dataclass
class Level:
    """One measured level: its requests' latencies and what went wrong."""

    label: str
    concurrency: int
    requests: int
    wall_s: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    granted: int = 0
    decisions_per_request: int = 1
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    load: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6 if ordered else float("nan")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> tuple[int, bytes]:
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


async def _load(port: int, make: Any, count: int, concurrency: int, level: Level | None,
                check: Any = None) -> None:
    """Send `count` requests (make(i) -> bytes) over `concurrency` keep-alive connections."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        reader = writer = None
        while next_index < count:
            index = next_index
            next_index += 1
            data = make(index)
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                started = time.perf_counter_ns()
                status, body = await _exchange(reader, writer, data)
                took = time.perf_counter_ns() - started
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                if level is not None:
                    level.errors += 1
                    kind = type(error).__name__
                    level.error_kinds[kind] = level.error_kinds.get(kind, 0) + 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            if level is None:
                continue
            level.latencies_ns.append(took)
            if status != 200:
                level.errors += 1
                kind = f"HTTP {status}"
                level.error_kinds[kind] = level.error_kinds.get(kind, 0) + 1
            elif check is not None and check(body):
                level.granted += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def measure(server: Server, label: str, make: Any, count: int, concurrency: int, warmup: int,
            decisions_per_request: int = 1, check: Any = None) -> Level:
    """Warm up, then one bounded level; latencies, errors, CPU of both processes."""
    run = _runner()
    run(_load(server.port, lambda i: make(-1 - i), warmup, concurrency, None))
    level = Level(label, concurrency, count, decisions_per_request=decisions_per_request, load=load_average())
    server_cpu, client_cpu = process_cpu_s(server.pid), time.process_time()
    started = time.perf_counter()
    run(_load(server.port, make, count, concurrency, level, check))
    level.wall_s = time.perf_counter() - started
    level.server_cpu_s = process_cpu_s(server.pid) - server_cpu
    level.client_cpu_s = time.process_time() - client_cpu
    log(f"  {label} c{concurrency}: {level.rps:,.0f} req/s, p50 {level.pct(.5):.2f} ms, p99 {level.pct(.99):.2f} ms, "
        f"{level.errors} errors{' ' + str(level.error_kinds) if level.errors else ''}")
    return level


def _runner() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


async def _fetch(port: int, data: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _exchange(reader, writer, data)
    finally:
        writer.close()


# ------------------------------------------------------------------ PostgreSQL

def postgres_bin() -> str | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's place."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(directory, "initdb")) and os.path.exists(os.path.join(directory, "pg_ctl")):
            return directory
    return None


class Postgres:
    """A throwaway PostgreSQL server in a temp dir, default durability (fsync on), stopped by stop()."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.url: str | None = None
        bin_dir = postgres_bin()
        if bin_dir is None:
            self.reason = "PostgreSQL server binaries (initdb, pg_ctl) not found"
            return
        try:
            import psycopg  # noqa: F401
        except ImportError:
            self.reason = "psycopg is not installed (pip install '.[postgres]')"
            return
        prefix: list[str] = []
        self.base = tempfile.mkdtemp(prefix="bench-serve-pg-")
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                self.reason = "running as root without runuser: cannot start PostgreSQL as another user"
                return
            try:
                shutil.chown(self.base, "postgres", "postgres")
            except LookupError:
                self.reason = "running as root and there is no postgres user to run PostgreSQL as"
                return
            prefix = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.base, "data")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.pg_ctl = [*prefix, os.path.join(bin_dir, "pg_ctl"), "-D", data]
        try:
            subprocess.run([*prefix, os.path.join(bin_dir, "initdb"), "-D", data, "-A", "trust", "-U", "policydsl"],
                           check=True, capture_output=True)
            subprocess.run([*self.pg_ctl, "-w", "-l", os.path.join(self.base, "log"),
                            "-o", f"-h 127.0.0.1 -p {port} -k {self.base} -c max_connections=200", "start"],
                           check=True, capture_output=True)
        except subprocess.CalledProcessError as error:
            self.reason = f"PostgreSQL did not start: {error.stderr.decode(errors='replace').strip()[-300:]}"
            return
        self.url = f"postgresql://policydsl@127.0.0.1:{port}/postgres"
        self.version = subprocess.run([os.path.join(bin_dir, "pg_ctl"), "--version"], capture_output=True,
                                      text=True).stdout.strip()

    def stop(self) -> None:
        if self.url is not None:
            subprocess.run([*self.pg_ctl, "-m", "fast", "stop"], check=False, capture_output=True)
        if hasattr(self, "base"):
            shutil.rmtree(self.base, ignore_errors=True)


# ------------------------------------------------------------------ the runs

def verify(server: Server, accounts: list[dict[str, Any]]) -> int:
    """Every account's /v1/decide answer against the in-process decision; the number that differ."""
    policy = load_policy(ECOMMERCE)
    now = instant(DECIDE_NOW)
    run = _runner()
    mismatches = 0
    for account in accounts:
        body = dumps({"account": account, "now": DECIDE_NOW})
        status, answer = run(_fetch(server.port, request_bytes("POST", "/v1/decide", server.port, body)))
        expected = json.loads(json.dumps(policy.evaluate(as_server_reads(account), [], now=now).to_dict()))
        got = json.loads(answer) if status == 200 else {"status": status, "body": answer.decode(errors="replace")}
        got.pop("decision_id", None)
        if got != expected or expected.get("error"):
            mismatches += 1
            if mismatches <= 3:
                log(f"MISMATCH {account.get('id')}: server {str(got)[:300]}\n  in-process {str(expected)[:300]}")
    return mismatches


def decide_levels(server: Server, accounts: list[dict[str, Any]], args: argparse.Namespace,
                  levels: list[int], label: str = "/v1/decide") -> list[Level]:
    bodies = [request_bytes("POST", "/v1/decide", server.port, dumps({"account": a, "now": DECIDE_NOW}))
              for a in accounts]
    return [measure(server, label, lambda i: bodies[i % len(bodies)], args.single, c, args.warmup) for c in levels]


def batch_levels(server: Server, accounts: list[dict[str, Any]], args: argparse.Namespace) -> list[Level]:
    size = args.batch_size
    bodies = []
    for start in range(len(accounts)):  # every rotation of the accounts, `size` of them (wrapping)
        chosen = [accounts[(start + k) % len(accounts)] for k in range(size)]
        bodies.append(request_bytes("POST", "/v1/decide/batch", server.port,
                                    dumps({"accounts": chosen, "now": DECIDE_NOW})))
    warmup = max(5, args.warmup // 10)
    return [measure(server, "/v1/decide/batch", lambda i: bodies[(i * 37) % len(bodies)], args.batch, c, warmup,
                    decisions_per_request=size) for c in args.levels]


def granted(body: bytes) -> bool:
    return b'"granted":true' in body


def reserve_levels(server: Server, store: str, args: argparse.Namespace) -> list[Level]:
    port = server.port

    def unique(prefix: str) -> Any:
        def make(i: int) -> bytes:
            account = {"id": f"{prefix}-{i}", "timezone": "America/New_York"}
            return request_bytes("POST", "/v1/reserve", port,
                                 dumps({"account": account, "action": "call", "now": RESERVE_NOW}))
        return make

    levels = [measure(server, f"/v1/reserve {store}", unique(f"c{c}"), args.reserve, c, args.warmup, check=granted)
              for c in args.levels]
    hot = request_bytes("POST", "/v1/reserve", port, dumps({"account": {"id": "one-account", "timezone":
                                                             "America/New_York"}, "action": "call",
                                                             "now": RESERVE_NOW}))
    warm = unique("hot-warmup")
    levels.append(measure(server, f"/v1/reserve {store}, ONE account", lambda i: hot if i >= 0 else warm(i),
                          args.reserve, args.hot_concurrency, args.warmup, check=granted))
    return levels


def health_levels(server: Server, args: argparse.Namespace) -> list[Level]:
    data = request_bytes("GET", "/health", server.port)
    return [measure(server, "GET /health", lambda i: data, args.single, c, args.warmup) for c in args.levels]


# ------------------------------------------------------------------ report

def table(title: str, levels: list[Level], baseline: dict[str, float] | None = None,
          reserve: bool = False) -> str:
    columns = ["concurrency", "requests", "req/s", "decisions/s", "p50 ms", "p99 ms", "max ms", "errors"]
    if baseline:
        columns += ["× in-process evaluate", "× evaluate + JSON"]
    if reserve:
        columns += ["granted"]
    columns += ["server CPU ms/req", "client CPU %", "load avg"]
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    for lv in levels:
        decisions = lv.rps * lv.decisions_per_request
        kinds = ", ".join(f"{kind}: {n}" for kind, n in lv.error_kinds.items())
        row = [str(lv.concurrency), f"{lv.requests:,}", f"{lv.rps:,.0f}", f"{decisions:,.0f}",
               f"{lv.pct(.5):.2f}", f"{lv.pct(.99):.2f}", f"{lv.pct(1):.2f}",
               f"{lv.errors} ({kinds})" if lv.errors else "0"]
        if baseline:
            row += [f"{decisions / baseline['evaluate']:.0%}", f"{decisions / baseline['evaluate_json']:.0%}"]
        if reserve:
            row += [f"{lv.granted:,}"]
        row += [f"{lv.server_cpu_s / lv.requests * 1e3:.2f}", f"{lv.client_cpu_s / lv.wall_s:.0%}", lv.load]
        if "ONE account" in lv.label:
            row[0] += " (ONE account)"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels (default 1,16,64)")
    parser.add_argument("--batch-size", type=int, default=100, help="accounts per /v1/decide/batch request")
    parser.add_argument("--single", type=int, help="requests per level for /v1/decide and /health")
    parser.add_argument("--batch", type=int, help="requests per level for /v1/decide/batch")
    parser.add_argument("--reserve", type=int, help="requests per level for /v1/reserve")
    parser.add_argument("--warmup", type=int, default=100, help="requests before each level (batch: a tenth)")
    parser.add_argument("--hot-concurrency", type=int, default=64, help="concurrency of the ONE-account run")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL ledger")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",")]
    args.single = args.single or (2_000 if args.quick else 10_000)
    args.batch = args.batch or (200 if args.quick else 1_000)
    args.reserve = args.reserve or (1_000 if args.quick else 4_000)
    try:
        import uvloop
        client_loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        client_loop = "asyncio"

    env = {"cpu_model": cpu_model(), "nproc": os.cpu_count(), "python": sys.version.split()[0],
           "platform": platform.platform(), "load_average_start": load_average(), "client_loop": client_loop,
           "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "wrk": shutil.which("wrk")}
    log(f"machine: {env['cpu_model']}, {env['nproc']} CPU(s), Python {env['python']}, {env['platform']}, "
        f"load average {env['load_average_start']}; client loop {client_loop}")
    if env["wrk"] is None:
        log("wrk: not on PATH (only the Python client's figures)")

    raw = csv_accounts()
    typed = [as_server_reads(a) for a in raw]
    seconds = 0.5 if args.quick else 2.0
    log(f"in-process baseline: {len(typed)} accounts, best of 3 rounds of ~{seconds:g} s")
    before = in_process(typed, seconds)
    log(f"  evaluate {before['evaluate']:,.0f}/s, evaluate + to_dict + json.dumps {before['evaluate_json']:,.0f}/s")

    tables: list[str] = []
    results: dict[str, list[Level]] = {}
    workdir = tempfile.mkdtemp(prefix="bench-serve-")
    postgres: Postgres | None = None
    status = 0
    try:
        server = Server([ECOMMERCE], workdir)
        try:
            mismatches = verify(server, raw)
            log(f"verified: {mismatches} of {len(raw)} /v1/decide answers differ from in-process")
            if mismatches:
                status = 1
            results["health"] = health_levels(server, args)
            results["decide"] = decide_levels(server, raw, args, args.levels)
            results["batch"] = batch_levels(server, raw, args)
        finally:
            server.stop()
        logged = Server([ECOMMERCE], workdir, "--decision-log", os.path.join(workdir, "decisions.jsonl"))
        try:
            results["decide_log"] = decide_levels(logged, raw, args, [16], "/v1/decide --decision-log")
        finally:
            logged.stop()
        log_mb = os.path.getsize(os.path.join(workdir, "decisions.jsonl")) / 1e6

        sqlite = Server([REG_F], workdir, "--ledger", f"sqlite:///{os.path.join(workdir, 'ledger.db')}")
        try:
            results["reserve_sqlite"] = reserve_levels(sqlite, "SQLite", args)
        finally:
            sqlite.stop()
        if args.no_postgres:
            postgres_note = "PostgreSQL skipped: --no-postgres"
        else:
            postgres = Postgres()
            if postgres.url is None:
                postgres_note = f"PostgreSQL skipped: {postgres.reason}"
            else:
                postgres_note = f"PostgreSQL: {postgres.version}, default settings (fsync on), max_connections=200"
                pg = Server([REG_F], workdir, "--ledger", postgres.url)
                try:
                    results["reserve_postgres"] = reserve_levels(pg, "PostgreSQL", args)
                finally:
                    pg.stop()
        log(postgres_note)
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    after = in_process(typed, seconds)
    baseline = {key: (before[key] + after[key]) / 2 for key in before}
    env["load_average_end"] = load_average()

    print(f"## `policy serve` under load ({env['date']})\n")
    print(f"{env['cpu_model']} ({env['nproc']} CPU), Python {env['python']}, {env['platform']}; load average "
          f"{env['load_average_start']} at start, {env['load_average_end']} at end; client: this script "
          f"({client_loop}, one keep-alive connection per worker); wrk: "
          f"{'on PATH, not used' if env['wrk'] else 'not on PATH'}. {postgres_note}.\n")
    print("### In-process baseline (same run, same accounts; mean of before and after the HTTP runs)\n")
    print("| | before | after | used |\n|---|---:|---:|---:|")
    print(f"| `policy.evaluate(account, [], now=now)` decisions/s | {before['evaluate']:,.0f} | "
          f"{after['evaluate']:,.0f} | {baseline['evaluate']:,.0f} |")
    print(f"| the same + `decision.to_dict()` + `json.dumps` decisions/s | {before['evaluate_json']:,.0f} | "
          f"{after['evaluate_json']:,.0f} | {baseline['evaluate_json']:,.0f} |")
    print(f"| CPU µs per decision, evaluate / + JSON | {before['evaluate_cpu_us']:.0f} / "
          f"{before['evaluate_json_cpu_us']:.0f} | {after['evaluate_cpu_us']:.0f} / "
          f"{after['evaluate_json_cpu_us']:.0f} | "
          f"{baseline['evaluate_cpu_us']:.0f} / {baseline['evaluate_json_cpu_us']:.0f} |\n")
    tables.append(table(f"`POST /v1/decide` (e-commerce policy, {len(raw)} accounts, no ledger, no log)",
                        results["decide"], baseline))
    tables.append(table(f"`POST /v1/decide` with `--decision-log` ({log_mb:,.0f} MB written)",
                        results["decide_log"], baseline))
    tables.append(table(f"`POST /v1/decide/batch` ({args.batch_size} accounts per request)", results["batch"],
                        baseline))
    tables.append(table("`POST /v1/reserve`, SQLite ledger (unique account per request; then ONE account)",
                        results["reserve_sqlite"], reserve=True))
    if "reserve_postgres" in results:
        tables.append(table("`POST /v1/reserve`, PostgreSQL ledger (unique account per request; then ONE account)",
                            results["reserve_postgres"], reserve=True))
    tables.append(table("`GET /health` (the HTTP floor: no body, no policy)", results["health"]))
    print("\n".join(tables))

    batch_best = max(results["batch"], key=lambda lv: lv.rps)
    share = batch_best.rps * batch_best.decisions_per_request / baseline["evaluate"]
    share_json = batch_best.rps * batch_best.decisions_per_request / baseline["evaluate_json"]
    print(f"batch over HTTP: {share:.0%} of in-process (target >= 50%): {'met' if share >= .5 else 'MISSED'} "
          f"(best level c{batch_best.concurrency}; {share_json:.0%} of in-process evaluate + to_dict + json.dumps)")
    server_us = batch_best.server_cpu_s / (batch_best.requests * batch_best.decisions_per_request) * 1e6
    print(f"  by CPU time, which a busy machine disturbs less: the server spent {server_us:.0f} µs per batch "
          f"decision, in-process evaluate {baseline['evaluate_cpu_us']:.0f} µs "
          f"({baseline['evaluate_cpu_us'] / server_us:.0%}), with to_dict + json.dumps "
          f"{baseline['evaluate_json_cpu_us']:.0f} µs ({baseline['evaluate_json_cpu_us'] / server_us:.0%})")
    c16 = [lv for lv in results["decide"] if lv.concurrency == 16]
    if c16:
        p99 = c16[0].pct(.99)
        health16 = [lv for lv in results["health"] if lv.concurrency == 16]
        floor = (f"; GET /health at c16: p99 {health16[0].pct(.99):.2f} ms, {health16[0].rps:,.0f} req/s"
                 if health16 else "")
        print(f"single decide p99 at c16: {p99:.2f} ms (target < 10 ms): {'met' if p99 < 10 else 'MISSED'}{floor}")
    else:
        print("single decide p99 at c16: not measured (16 is not among --concurrency)")
    errors = sum(lv.errors for levels in results.values() for lv in levels)
    print(f"errors: {errors} in all")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "baseline": {"before": before, "after": after, "used": baseline},
                       "levels": {name: [{"label": lv.label, "concurrency": lv.concurrency, "requests": lv.requests,
                                          "rps": lv.rps, "decisions_per_s": lv.rps * lv.decisions_per_request,
                                          "p50_ms": lv.pct(.5), "p99_ms": lv.pct(.99), "max_ms": lv.pct(1),
                                          "errors": lv.errors,
                                          "error_kinds": lv.error_kinds, "granted": lv.granted,
                                          "server_cpu_s": lv.server_cpu_s, "client_cpu_s": lv.client_cpu_s,
                                          "wall_s": lv.wall_s, "load": lv.load}
                                         for lv in levels] for name, levels in results.items()}}, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
