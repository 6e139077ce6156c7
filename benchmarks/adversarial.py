"""An adversarial run against the fault guarantees of docs/reliability.md
(issue 11 items 7-9, 11, 12, 14, 16 and issue 17 items 1-2): seeded random
mutations of each kind, every outcome judged against what the guarantee
promises, and a table of what was tried and what broke.

    python benchmarks/adversarial.py [--seed 1] [--scale 1.0]

`--scale` multiplies every count (the default takes a few minutes on two
busy cores; tests/test_adversarial.py runs a small scale with `pytest -m
slow`). Exit status 1 when any case broke its guarantee.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import decimal
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from policydsl import PolicyError, compile_policy, load_policy
from policydsl import loader as loader_module
from policydsl.parser import MAX_SOURCE_BYTES
from policydsl.testing import TestFileError, parse_test_file

ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2025, 6, 4, 2, 0, tzinfo=dt.UTC)
CASE_SECONDS = 10.0  # a single case slower than this counts as a hang
# Whether a case that is too slow counts as a failure. The script judges time; tests (tests/test_adversarial.py)
# turn this off, because a test must not depend on wall-clock time (a loaded CI machine is not a regression).
TIME_LIMITS = True


@dataclass
class Kind:
    """One kind of mutation: how many cases were tried and which broke."""

    name: str
    tried: int = 0
    failures: list[str] = field(default_factory=list)

    def judge(self, case: str, problem: str | None) -> None:
        self.tried += 1
        if problem is not None:
            self.failures.append(f"{case}: {problem}")


def _timed(action: Callable[[], str | None]) -> str | None:
    """The action's problem, an unexpected exception, or too slow (a hang)."""
    started = time.perf_counter()
    try:
        problem = action()
    except Exception as exc:  # anything unexpected is the finding
        problem = f"raised {type(exc).__name__}: {str(exc)[:200]}"
    if problem is None and TIME_LIMITS and time.perf_counter() - started > CASE_SECONDS:
        problem = f"took {time.perf_counter() - started:.1f} s"
    return problem


# ------------------------------------------------------------ policy bytes and hostile files


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        where = rng.randrange(len(out) + 1)
        choice = rng.random()
        if choice < 0.3 and out:
            del out[where:where + rng.randint(1, 20)]
        elif choice < 0.6:
            out[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        else:
            out[where:where] = rng.choice([b"\0", b"\r", b"\xef\xbb\xbf", b"include \"x\0y\"\n", b'"', b"(" * 80,
                                           b"include \"" + b"n" * 300 + b"\"\n", b"not " * 150, b"9" * 5000])
    return bytes(out)


def policy_bytes(kind: Kind, rng: random.Random, count: int, work: Path) -> None:
    """Mutated shipped policies: only a positioned PolicyError, or a policy
    both engines evaluate identically."""
    sources = [path.read_bytes() for path in sorted((ROOT / "policies").glob("*.policy"))]
    for number in range(count):
        path = work / f"mutant{number}.policy"
        path.write_bytes(_mutate(rng.choice(sources), rng))
        for baseline in (ROOT / "policies").glob("*.policy"):
            (work / baseline.name).write_bytes(baseline.read_bytes())
        kind.judge(path.name, _timed(lambda path=path: _loads_or_positioned(path)))


def _loads_or_positioned(path: Path) -> str | None:
    try:
        compiled = load_policy(path)
    except PolicyError as error:
        text = str(error)
        return None if ":" in text.split("\n", 1)[0] and "error[" in text else f"unpositioned: {text[:120]}"
    reference = load_policy(path, engine="reference")
    account = {field: "1" for field in compiled.required_fields()} | {"id": "A1"}
    if compiled.evaluate(account, now=NOW).to_dict() != reference.evaluate(account, now=NOW).to_dict():
        return "the engines disagree"
    return None


def hostile_files(kind: Kind, work: Path) -> None:
    """Policies that are not regular files, or too large: E002, at once."""
    fifo = work / "fifo.policy"
    os.mkfifo(fifo)
    big = work / "big.policy"
    with big.open("wb") as out:
        out.truncate(10 * 1024 * 1024 * 1024)  # sparse: 10 GiB that cost nothing to make
    loop = work / "loop.policy"
    loop.symlink_to(loop)
    for target in ("/dev/zero", "/dev/urandom", str(fifo), str(work), str(big), str(loop),
                   str(work / "missing.policy"), "bad\0path.policy", "x" * 5000):
        kind.judge(target[:40], _timed(lambda target=target: _e002(target)))


def _e002(target: str) -> str | None:
    try:
        load_policy(target)
    except PolicyError as error:
        return None if "error[E002]" in str(error) else f"not E002: {str(error)[:120]}"
    return "loaded"


# ------------------------------------------------------------ include graphs


def include_graphs(kind: Kind, rng: random.Random, count: int, work: Path) -> None:
    """Random include DAGs (fan-out up to 4, up to 18 levels, sometimes a
    back edge or a missing file): a load reads each distinct file at most
    once and ends in a policy or an E002, quickly."""
    for number in range(count):
        directory = work / f"graph{number}"
        directory.mkdir()
        levels, width = rng.randint(2, 18), rng.randint(1, 4)
        back_edge = rng.random() < 0.2
        missing = rng.random() < 0.1
        for level in range(levels):
            for k in range(width):
                targets = [f"l{level + 1}_{j}.policy" for j in range(width) if rng.random() < 0.8] \
                    if level + 1 < levels else []
                if back_edge and level == levels - 1 and k == 0:
                    targets.append("l0_0.policy")
                if missing and level == levels // 2 and k == 0:
                    targets.append("absent.policy")
                includes = "".join(f'include "{target}"\n' for target in targets)
                (directory / f"l{level}_{k}.policy").write_text(
                    f'policy "l{level}_{k}" version "1"\n{includes}actions {{ a{level}_{k} }}\n'
                    f'forbid a{level}_{k} when false because "x"\n', encoding="utf-8")
        main = directory / "main.policy"
        main.write_text('policy "main" version "1"\n' + "".join(f'include "l0_{j}.policy"\n' for j in range(width))
                        + "account { id : text }\nactions { sms }\nallow sms\n", encoding="utf-8")
        kind.judge(f"{levels}x{width}{' cycle' if back_edge else ''}{' missing' if missing else ''}",
                   _timed(lambda main=main, files=1 + levels * width: _reads_once(main, files)))


def _reads_once(main: Path, files: int) -> str | None:
    reads: list[str] = []
    real = loader_module.read_source

    def counting(path: str | os.PathLike[str]) -> str:
        reads.append(str(Path(path).resolve()))
        return real(path)

    loader_module.read_source = counting  # type: ignore[assignment]
    try:
        load_policy(main)
    except PolicyError as error:
        if "error[E002]" not in str(error):
            return f"not E002: {str(error)[:120]}"
    finally:
        loader_module.read_source = real
    if len(reads) != len(set(reads)) or len(reads) > files:
        return f"{len(reads)} reads of {len(set(reads))} distinct files"
    return None


# ------------------------------------------------------------ YAML test files


def yaml_files(kind: Kind, rng: random.Random, count: int) -> None:
    """Alias bombs, deep nesting, long integers and byte mutations of the
    shipped test files: a TestFileError or a parsed file, quickly."""
    shipped = [path.read_text(encoding="utf-8") for path in sorted((ROOT / "policies" / "tests").glob("*.yaml"))]
    makers: list[Callable[[], str]] = [
        lambda: _bomb(rng.randint(2, 12), rng.randint(2, 12)),
        lambda: "policy: p.policy\ncases: " + "[" * rng.randint(50, 20000) + "\n",
        lambda: "policy: p.policy\ncases: " + "{a: " * rng.randint(50, 5000) + "1" + "}" * 10 + "\n",
        lambda: f"policy: p.policy\ncases:\n  - {{name: n, account: {{d: {rng.choice(['', '-', '0x'])}"
                f"{'9' * rng.randint(500, 50000)}}}, expect: {{}}}}\n",
        lambda: _mutate(rng.choice(shipped).encode(), rng).decode("utf-8", "replace"),
    ]
    for number in range(count):
        text = rng.choice(makers)()
        kind.judge(f"yaml{number}", _timed(lambda text=text: _test_file_error_or_parsed(text)))


def _bomb(levels: int, width: int) -> str:
    lines = ["policy: p.policy", "a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    lines.append(f"cases:\n  - name: boom\n    account: {{ id: *a{levels - 1} }}\n    expect: {{}}")
    return "\n".join(lines) + "\n"


def _test_file_error_or_parsed(text: str) -> str | None:
    """Any other exception (RecursionError, ValueError, MemoryError) is the finding, via `_timed`."""
    with contextlib.suppress(TestFileError):
        parse_test_file(text, "adversarial.test.yaml")
    return None


# ------------------------------------------------------------ decimal contexts


def decimal_contexts(kind: Kind, rng: random.Random, count: int) -> None:
    """Random caller contexts (precision, rounding, traps) around random
    decimal conditions: both engines give the decision of the default context."""
    roundings = [decimal.ROUND_UP, decimal.ROUND_DOWN, decimal.ROUND_HALF_UP, decimal.ROUND_FLOOR,
                 decimal.ROUND_CEILING, decimal.ROUND_05UP]
    for _ in range(count):
        operators = [rng.choice(["+", "-", "*", "/"]) for _ in range(3)]
        constants = [_decimal_text(rng) for _ in range(3)]
        condition = f"((x {operators[0]} {constants[0]}) {operators[1]} y) {operators[2]} {constants[1]} " \
                    f"{rng.choice(['>', '>=', '==', '<'])} {constants[2]}"
        source = (f'policy "d" version "1"\naccount {{ id : text\n x : number = 0\n y : number = 1 }}\n'
                  f"actions {{ sms }}\nsegment s when {condition}\nallow sms when s\n")
        account = {"id": "A1", "x": _decimal_text(rng), "y": _decimal_text(rng)}
        prec, rounding = rng.randint(1, 40), rng.choice(roundings)
        kind.judge(f"{condition} prec={prec}",
                   _timed(lambda source=source, account=account, prec=prec, rounding=rounding:
                          _context_free(source, account, prec, rounding)))


def _decimal_text(rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40)))
    point = rng.randint(0, len(digits))
    return f"{'-' if rng.random() < 0.3 else ''}{digits[:point] or '0'}.{digits[point:] or '0'}"


def _context_free(source: str, account: dict[str, str], prec: int, rounding: str) -> str | None:
    compiled, reference = compile_policy(source), compile_policy(source, engine="reference")
    expected = compiled.evaluate(account, now=NOW).to_dict()
    with decimal.localcontext() as context:
        context.prec, context.rounding = prec, rounding
        context.traps[decimal.Inexact] = prec % 2 == 0  # a caller that traps rounding must not see it either
        got = [engine.evaluate(account, now=NOW).to_dict() for engine in (compiled, reference)]
    if any(decision != expected for decision in got):
        return "a decision depends on the caller's decimal context or the engine"
    return None


# ------------------------------------------------------------ interrupted runs and dead workers


def interrupted_runs(kind: Kind, rng: random.Random, count: int, work: Path) -> None:
    """`policy run -o` on a generated portfolio, stopped by a random signal
    or a SIGKILLed worker at a random moment: the documented exit code, the
    old output intact, no temporary file, one line on stderr."""
    policy = work / "run.policy"
    policy.write_text('policy "r" version "1"\naccount { id : text\n dpd : int\n balance : money = 0 }\n'
                      "actions { sms, call }\nstages on dpd { current .. 0\n late 1 .. }\n"
                      "stage late { allow call, sms }\nforbid call when balance > 100 because \"big\"\n",
                      encoding="utf-8")
    accounts = work / "run.csv"
    with accounts.open("w", encoding="utf-8") as out:
        out.write("id,dpd,balance\n")
        out.writelines(f"A{i},{i % 90},{i % 500}.5\n" for i in range(60_000))
    for number in range(count):
        what = rng.choice(["SIGTERM", "SIGHUP", "SIGINT", "SIGINT-group", "SIGTERM-group", "SIGHUP-group",
                           "kill-worker"])
        jobs = "2" if what.endswith("-group") or what == "kill-worker" or rng.random() < 0.3 else "1"
        delay = rng.uniform(0, 1.5)
        kind.judge(f"{what} --jobs {jobs} after {delay:.2f} s",
                   _interrupted(work / f"out{number}", policy, accounts, what, jobs, delay))


def _interrupted(directory: Path, policy: Path, accounts: Path, what: str, jobs: str, delay: float) -> str | None:
    directory.mkdir()
    output = directory / "out.jsonl"
    output.write_text("old\n", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "policydsl", "run", str(policy), str(accounts), "--now",
                                NOW.isoformat(), "-o", str(output), "-q", "--jobs", jobs],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(directory.glob(".policy-*.tmp")) or (what == "kill-worker" and not _children(process.pid)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            return "the run ended before it could be interrupted"
        time.sleep(0.005)
    time.sleep(delay)
    finished_first = process.poll() is not None
    if what == "kill-worker":
        children = _children(process.pid)
        if children:
            os.kill(children[0], signal.SIGKILL)
    elif what.endswith("-group"):  # as a terminal or a service manager sends it: workers get it too
        os.killpg(process.pid, getattr(signal, what.removesuffix("-group")))
    else:
        process.send_signal(getattr(signal, what))
    try:
        _, stderr_bytes = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return "hung"
    stderr = stderr_bytes.decode("utf-8", "replace")
    leftovers = list(directory.glob(".policy-*.tmp"))
    if leftovers:
        return f"left {leftovers[0].name}"
    if finished_first or process.returncode == 0:
        return None if output.read_text(encoding="utf-8") != "old\n" else "exit 0 but the output was not written"
    expected = 2 if what == "kill-worker" else 128 + getattr(signal, what.removesuffix("-group"))
    if process.returncode != expected:
        return f"exit {process.returncode}, expected {expected}: {stderr[-200:]}"
    if output.read_text(encoding="utf-8") != "old\n":
        return "the old output was replaced"
    if "Traceback" in stderr or len(stderr.strip().splitlines()) != 1:
        return f"stderr is not one line: {stderr[:300]}"
    return None


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"--multiprocessing-fork" in command \
                    and b"resource_tracker" not in command:
                found.append(int(entry.name))
    return found


# ------------------------------------------------------------ policies near the size limit


CHECK_SECONDS = 5.0  # issue 11 item 16: `policy check` of any policy within the limits


def large_policies(kind: Kind, rng: random.Random, count: int, work: Path) -> None:
    """Random policies of half the size limit to all of it, built from the
    costliest shapes we know (long set literals, `or` chains, many distinct
    or identical rules, windows, caps): a real `policy check` finishes in
    CHECK_SECONDS, with exit 0 or 1 and no traceback."""
    for number in range(count):
        path = work / f"large{number}.policy"
        path.write_text(_large_policy(rng, rng.randint(MAX_SOURCE_BYTES // 2, MAX_SOURCE_BYTES)), encoding="utf-8")
        kind.judge(path.name, _checked_in_time(path))


def _large_policy(rng: random.Random, size: int) -> str:
    head = ('policy "large" version "1"\naccount {\n    id : text\n    dpd : int = 0\n    score : number = 0.5\n'
            '    tz : zone = "UTC"\n}\nactions { sms, call, email }\nallow all\n')
    shapes = [
        lambda i: f'forbid sms when dpd == {i} and score > 0.{i % 10}1 because "r{i}"\n',
        lambda i: "forbid call when " + " or ".join(f"dpd == {j}" for j in range(rng.randint(2, 40))) + "\n",
        lambda i: "forbid email when dpd in {" + ",".join(str(j % 97) for j in range(rng.randint(10, 5000))) + "}\n",
        lambda i: f"window sms {i % 12 + 8:02d}:00-{i % 12 + 9:02d}:00 when dpd > {i}\n",
        lambda i: f"limit call {i % 5 + 1} per {i % 7 + 1} days when dpd > {i}\n",
    ]
    weights = [rng.random() for _ in shapes]
    parts, length, number = [head], len(head), 0
    while True:
        rule = rng.choices(shapes, weights)[0](number)
        if length + len(rule) > size:
            return "".join(parts)
        parts.append(rule)
        length += len(rule)
        number += 1


def _checked_in_time(path: Path) -> str | None:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "policydsl", "check", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1) or "Traceback" in done.stderr:
        return f"exit {done.returncode}: {done.stderr[-200:]}"
    return f"took {elapsed:.1f} s" if TIME_LIMITS and elapsed > CHECK_SECONDS else None


# ------------------------------------------------------------ the run


def run(seed: int, scale: float) -> list[Kind]:
    rng = random.Random(seed)
    kinds = [Kind("policy byte mutations (both engines)"), Kind("non-regular / huge policy files"),
             Kind("include graphs (fan-out, depth, cycles)"), Kind("hostile YAML test files"),
             Kind("caller decimal contexts (both engines)"), Kind("interrupted runs and killed workers"),
             Kind("policies near the size limit (policy check time)")]
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        policy_bytes(kinds[0], rng, round(400 * scale), work)
        hostile_files(kinds[1], work)
        include_graphs(kinds[2], rng, round(60 * scale), work)
        yaml_files(kinds[3], rng, round(300 * scale))
        decimal_contexts(kinds[4], rng, round(400 * scale))
        interrupted_runs(kinds[5], rng, max(5, round(20 * scale)), work)
        large_policies(kinds[6], rng, max(2, round(20 * scale)), work)
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    started = time.perf_counter()
    kinds = run(args.seed, args.scale)
    print("| kind | tried | failures |\n|---|---:|---:|")
    for kind in kinds:
        print(f"| {kind.name} | {kind.tried} | {len(kind.failures)} |")
    print(f"\nseed {args.seed}, scale {args.scale:g}, {time.perf_counter() - started:.0f} s")
    for kind in kinds:
        for failure in kind.failures[:10]:
            print(f"- {kind.name}: {failure}")
    return 1 if any(kind.failures for kind in kinds) else 0


if __name__ == "__main__":
    sys.exit(main())
