"""Interrupted and broken runs (issue 11 items 7 and 9, issue 17 item 1):
stop signals, dead or failing `--jobs` workers and edits on disk during a run
never leave a temporary file, never replace the previous output, never hang
and never print a traceback. Real `policy run` subprocesses on a generated
portfolio, so that the signal arrives mid-run."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from policydsl import load_policy
from policydsl.batch import PolicySpec, WorkerError, decide_stream
from policydsl.cli import main
from policydsl.io import History, read_accounts

NOW = "2025-06-04T02:00:00Z"
OLD_OUTPUT = "the previous run's output\n"
POLICY = """\
policy "small" version "1"
include "baseline.policy"
account {
    id            : text
    days_past_due : int
    balance       : money = 0
}
actions { sms, agent_call }
stages on days_past_due {
    current .. 0
    late    1 ..
}
stage late { allow agent_call, sms }
"""
BASELINE = """\
policy "baseline" version "1"
account { balance : money = 0 }
actions { agent_call }
forbid agent_call when balance > ¥100 because "large balances go to the legal team"
"""
DEADLINE = 60.0  # seconds for a run that must stop: only reached when it hangs


def _portfolio(directory: Path, rows: int) -> tuple[Path, Path]:
    (directory / "baseline.policy").write_text(BASELINE, encoding="utf-8")
    policy = directory / "small.policy"
    policy.write_text(POLICY, encoding="utf-8")
    accounts = directory / "accounts.csv"
    with accounts.open("w", encoding="utf-8") as out:
        out.write("id,days_past_due,balance\n")
        out.writelines(f"A{i},{i % 90},{i % 500}.50\n" for i in range(rows))
    return policy, accounts


def _policy_command() -> list[str]:
    return [sys.executable, "-m", "policydsl"]


def _start_run(directory: Path, *extra: str, env: dict[str, str] | None = None,
               rows: int = 100_000) -> tuple[subprocess.Popen[bytes], Path]:
    policy, accounts = _portfolio(directory, rows)
    output = directory / "out.jsonl"
    output.write_text(OLD_OUTPUT, encoding="utf-8")
    command = [*_policy_command(), "run", str(policy), str(accounts), "--now", NOW, "-o", str(output), "-q", *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                               env={**os.environ, "NO_COLOR": "1", **(env or {})})
    return process, output


def _temporary_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(".policy-*.tmp"))


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    """Poll until `condition`; fail (not hang) if the run ends first or never gets there."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}: "
                        f"{process.stderr.read().decode() if process.stderr else ''}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _workers(parent: int) -> list[int]:
    """Pids of the run's spawned worker processes (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"--multiprocessing-fork" in command and b"resource_tracker" not in command:
            found.append(int(entry.name))
    return found


def _finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("the run hung")
    return process.returncode, stderr.decode("utf-8", "replace")


def _assert_clean_stop(directory: Path, output: Path, stderr: str) -> None:
    assert output.read_text(encoding="utf-8") == OLD_OUTPUT, "the previous output was replaced"
    assert _temporary_files(directory) == [], "a temporary file was left beside the output"
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


# ------------------------------------------------------------ stop signals (issue 17.1)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_stop_signal_mid_run_removes_the_temporary_file_and_keeps_the_old_output(
        tmp_path: Path, signum: int, code: int) -> None:
    process, output = _start_run(tmp_path)
    _wait_for(lambda: bool(_temporary_files(tmp_path)), process, "the temporary output file appears")
    process.send_signal(signum)
    returncode, stderr = _finish(process)
    assert returncode == code, stderr
    assert f"interrupted by {signal.Signals(signum).name}" in stderr
    _assert_clean_stop(tmp_path, output, stderr)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_ctrl_c_with_jobs_prints_one_line_not_every_workers_traceback(tmp_path: Path, signum: int,
                                                                       code: int) -> None:
    """To the whole process group, as a terminal sends Ctrl-C or a hang-up
    and as a service manager stops a job: workers and multiprocessing's
    resource tracker get it too."""
    process, output = _start_run(tmp_path, "--jobs", "2")
    _wait_for(lambda: len(_workers(process.pid)) == 2 and bool(_temporary_files(tmp_path)), process,
              "two workers run")
    os.killpg(process.pid, signum)
    returncode, stderr = _finish(process)
    assert returncode == code, stderr
    _assert_clean_stop(tmp_path, output, stderr)


# ------------------------------------------------------------ dead and failing workers (issue 11.9)


def _deciding(directory: Path) -> bool:
    """Decisions have reached the temporary output: the workers are busy."""
    return any(path.stat().st_size > 0 for path in _temporary_files(directory))


def test_a_killed_worker_ends_the_run_with_one_line_and_exit_2(tmp_path: Path) -> None:
    """Killed while the workers are busy: the executor then terminates the
    other worker, which must not ignore that (a hang once, when workers
    ignored SIGTERM)."""
    process, output = _start_run(tmp_path, "--jobs", "2")
    _wait_for(lambda: len(_workers(process.pid)) == 2 and _deciding(tmp_path), process, "two workers decide")
    os.kill(_workers(process.pid)[0], signal.SIGKILL)  # what the out-of-memory killer does
    returncode, stderr = _finish(process)
    assert returncode == 2, stderr
    assert "worker process died" in stderr
    _assert_clean_stop(tmp_path, output, stderr)


def test_workers_that_cannot_start_end_the_run_without_respawning(tmp_path: Path) -> None:
    broken = tmp_path / "broken-site"
    broken.mkdir()  # every spawned worker exits at interpreter start-up, as with a broken environment
    (broken / "sitecustomize.py").write_text(
        "import os, sys\nif '--multiprocessing-fork' in sys.argv:\n    os._exit(3)\n", encoding="utf-8")
    process, output = _start_run(tmp_path, "--jobs", "2", rows=2_000,
                                 env={"PYTHONPATH": os.pathsep.join([str(broken), os.environ.get("PYTHONPATH", "")])})
    returncode, stderr = _finish(process)
    assert returncode == 2, stderr
    assert "worker process died" in stderr
    _assert_clean_stop(tmp_path, output, stderr)


# Every worker of the run loads this at start-up. The first one to send a
# result writes the message's length and half of its bytes, then dies as if
# the OOM killer struck mid-write: the executor's manager thread waits in
# recv() for the other half, and the other worker waits for the pipe's lock.
_DIES_MID_WRITE = """\
import os, signal, struct, sys
if "--multiprocessing-fork" in sys.argv:
    from multiprocessing import connection
    def _send_bytes(self, buf):
        try:
            os.close(os.open(FLAG, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return _original(self, buf)
        data = bytes(buf)
        self._send(struct.pack("!i", len(data)) + data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    _original = connection.Connection._send_bytes
    connection.Connection._send_bytes = _send_bytes
"""


def test_a_worker_killed_while_writing_a_result_ends_the_run_instead_of_hanging(tmp_path: Path) -> None:
    """The executor never notices this death by itself (a hang found by
    benchmarks/adversarial.py); the parent must."""
    site = tmp_path / "dies-mid-write"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"FLAG = {str(tmp_path / 'died')!r}\n{_DIES_MID_WRITE}", encoding="utf-8")
    process, output = _start_run(tmp_path, "--jobs", "2", rows=5_000,
                                 env={"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])})
    returncode, stderr = _finish(process)
    assert (tmp_path / "died").exists(), "no worker took the fault: the test tested nothing"
    assert returncode == 2, stderr
    assert "worker process died" in stderr
    _assert_clean_stop(tmp_path, output, stderr)


def test_a_worker_refuses_sources_that_do_not_match_their_digest(tmp_path: Path) -> None:
    policy_path, accounts = _portfolio(tmp_path, 10)
    policy = load_policy(policy_path)
    spec = PolicySpec(policy.model, "compiled", "0" * 64)
    rows = read_accounts(str(accounts), policy.required_fields())
    now = dt.datetime.fromisoformat(NOW)
    with pytest.raises(WorkerError, match="do not match their digest"):
        list(decide_stream(policy, rows, History(), now, jobs=2, spec=spec))


# ------------------------------------------------------------ workers never re-read the disk (issue 11.7)


def test_an_edit_during_a_run_with_jobs_changes_no_decision(tmp_path: Path) -> None:
    """The accounts file is a FIFO: the run has loaded the policy once it
    opens it, and only then are the policy and its include rewritten (one
    broken, one loosened) and the rows written. Workers must decide under the
    texts the parent loaded."""
    policy, _ = _portfolio(tmp_path, 0)
    fifo = tmp_path / "accounts.fifo"
    os.mkfifo(fifo)
    rows = "id,days_past_due,balance\n" + "".join(f"A{i},{1 + i % 90},{i}.00\n" for i in range(3_000))

    def feed() -> None:
        with fifo.open("w", encoding="utf-8") as out:  # returns once the run has opened the accounts
            (tmp_path / "baseline.policy").write_text(BASELINE.replace("¥100", "¥1000000"), encoding="utf-8")
            policy.write_text(POLICY + "this is not a policy\n", encoding="utf-8")
            out.write(rows)

    writer = threading.Thread(target=feed)
    writer.start()
    result = CliRunner().invoke(main, ["run", str(policy), str(fifo), "--now", NOW, "--jobs", "2", "-q"])
    writer.join(DEADLINE)
    assert result.exit_code == 0, result.output
    forbidden = sum("large balances go to the legal team" in line for line in result.stdout.splitlines())
    assert forbidden == sum(1 for i in range(3_000) if i > 100)  # the baseline as loaded: ¥100


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_stop_signal_after_the_output_is_replaced_comes_too_late(tmp_path: Path, jobs: str) -> None:
    """SIGTERM once the new output is in place (the run reporting, or the
    interpreter joining `--jobs` workers' threads on its way out) neither
    says the run stopped before replacing anything (143) nor kills it by the
    default action (-15, which CI's adversarial run once caught): the run
    ends with its own status."""
    process, output = _start_run(tmp_path, "--jobs", jobs, rows=60_000)
    while output.read_text(encoding="utf-8") == OLD_OUTPUT and process.poll() is None:
        time.sleep(0.001)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, stderr.decode()
    assert output.read_text(encoding="utf-8") != OLD_OUTPUT
    assert b"interrupted" not in stderr
