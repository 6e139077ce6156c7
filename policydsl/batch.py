"""Deciding a stream of account rows, in one process or in several, always
in input order.

With `jobs > 1`, rows travel to worker processes in batches; each worker
compiles, once, the checked model the parent loaded (never the files on disk,
which may have changed since). Only a bounded number of batches is in
flight, so memory stays independent of the portfolio's size, and results are
yielded in the order the rows were read. A worker that dies or cannot start
ends the run with a `WorkerError`, never a hang.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from itertools import islice
from typing import TypeVar

from .compiler import Policy
from .decision import Contact, Decision, Evidence
from .errors import PolicyError
from .io import AccountRow, ContactLookup, LineFormat, block_stop_signals, restore_signals
from .model import Model
from .reference import ReferencePolicy

BATCH_ROWS = 256
BATCHES_PER_WORKER = 4  # in flight: enough to keep workers busy, bounded for memory
_MANAGER_EXIT_SECONDS = 10.0  # an abandoned pool's manager thread normally ends in milliseconds
_LIVENESS_SECONDS = 0.5  # how often a parent waiting for a batch looks whether its workers still live

Engine = Policy | ReferencePolicy
_T = TypeVar("_T")


class WorkerError(PolicyError):
    """A `--jobs` worker process died, could not start, or was handed
    sources that do not match their digest: the run cannot finish."""


@dataclass(frozen=True)
class PolicySpec:
    """What a worker process compiles: the checked model the parent loaded
    (every source text inside it), never a path to read again, so an edit on
    disk during the run cannot change a decision. `digest` is computed by the
    parent and checked by the worker, so the two provably decide under the
    same texts."""

    model: Model
    engine: str
    digest: str

    @staticmethod
    def of(policy: Engine) -> PolicySpec:
        engine = "reference" if isinstance(policy, ReferencePolicy) else "compiled"
        return PolicySpec(policy.model, engine, sources_digest(policy.model.sources))


def sources_digest(sources: Mapping[str, str]) -> str:
    """sha256 over every (path, text) in path order, each length-prefixed so
    that no two different mappings give the same byte stream."""
    digest = hashlib.sha256()
    for path in sorted(sources):
        for part in (path, sources[path]):
            data = part.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def decide_row(policy: Engine, row: AccountRow, contacts: list[Contact], broken: str | None,
               now: dt.datetime) -> Decision:
    """The decision for one row; every problem becomes an error decision
    naming the row (and line), never an exception. Where the row is is put
    into words only for an error: this runs once per account."""
    if row.values is None:
        return policy.error_decision(row.account_id, row.problem or _located(row, "unreadable"), now=now)
    if broken is not None:
        return policy.error_decision(row.account_id, _located(row, f"contact history: {broken}"), now=now)
    decision = policy.evaluate(row.values, contacts, now=now)
    if decision.error:
        return policy.error_decision(decision.account_id, _located(row, decision.error), now=now)
    return decision


def _located(row: AccountRow, message: str) -> str:
    where = row.where
    return f"{where}: {message}" if where else message


@dataclass(frozen=True, slots=True)
class Rendered:
    """A decision as a `--jobs` worker sends it back when the output is
    lines: what the run's summary counts, and its line of output."""

    account_id: str | None
    stage: str | None
    next_action: str | None
    error: str | None
    line: str

    @staticmethod
    def of(decision: Decision, line_format: LineFormat) -> Rendered:
        return Rendered(decision.account_id, decision.stage, decision.next_action, decision.error,
                        line_format.line(decision))


def decide_stream(policy: Engine, rows: Iterator[AccountRow], history: ContactLookup, now: dt.datetime,
                  jobs: int = 1, spec: PolicySpec | None = None, line_format: LineFormat | None = None,
                  ) -> Iterator[tuple[AccountRow, Decision | Rendered]]:
    """(row, decision) for every row, in input order; each row's contacts
    are asked of `history` in that order too (also with `jobs > 1`, where
    the parent gathers them for each batch). With `jobs > 1` and a
    `line_format`, the workers render each decision: a `Rendered` comes back."""
    if jobs <= 1 or spec is None:
        for row in rows:
            account_id = row.account_id
            yield row, decide_row(policy, row, history.for_account(account_id),
                                  history.broken.get(account_id or ""), now)
        return
    yield from _in_parallel(rows, history, now, jobs, spec, line_format)


_Task = list[tuple[AccountRow, list[Contact], str | None]]
_worker_policy: Engine | None = None  # one per worker process, set by _start_worker
_worker_failure: str | None = None  # why _start_worker refused its sources, reported with every batch
# The parent owns the run: a terminal's Ctrl-C (SIGINT to the whole process group) is handled there once
# (io.interruptible), and the parent shuts the workers down, so workers ignore SIGINT (Python's default
# handler would print a KeyboardInterrupt traceback per worker). SIGTERM and SIGHUP keep their default
# action, which ends a worker silently: the executor itself terminates workers with SIGTERM when the pool
# breaks, and a worker that ignored it would hang the run.


def _start_worker(spec: PolicySpec) -> None:
    """Compile the parent's model once. A digest mismatch is not raised here
    (ProcessPoolExecutor would log a traceback and break the pool with a
    vaguer message): it is kept, and every batch reports it to the parent."""
    global _worker_policy, _worker_failure
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    restore_signals(set())  # the parent blocked the stop signals while spawning this process
    if sources_digest(spec.model.sources) != spec.digest:
        _worker_failure = "the policy sources a worker received do not match their digest"
        return
    _worker_policy = ReferencePolicy(spec.model) if spec.engine == "reference" else Policy(spec.model)


def _decide_batch(task: _Task, now: dt.datetime, line_format: LineFormat | None) -> list[Decision | Rendered]:
    if _worker_failure is not None:
        raise WorkerError(_worker_failure)
    policy = _worker_policy
    assert policy is not None  # set by _start_worker, which runs before any batch
    if line_format is not None:
        return [Rendered.of(decide_row(policy, row, contacts, broken, now), line_format)
                for row, contacts, broken in task]
    # explanations are rendered in the parent only on request: do not ship their evidence back
    return [replace(decide_row(policy, row, contacts, broken, now), evidence=Evidence())
            for row, contacts, broken in task]


def _in_parallel(rows: Iterator[AccountRow], history: ContactLookup, now: dt.datetime, jobs: int,
                 spec: PolicySpec, line_format: LineFormat | None) -> Iterator[tuple[AccountRow, Decision | Rendered]]:
    """ProcessPoolExecutor rather than multiprocessing.Pool: a worker that
    dies (the OOM killer's SIGKILL) breaks the pool and fails every pending
    batch instead of hanging the run, and a dead worker is never respawned."""
    context = multiprocessing.get_context("spawn")  # no inherited locks or threads
    try:
        pool = _spawning(functools.partial(ProcessPoolExecutor, jobs, mp_context=context,
                                           initializer=_start_worker, initargs=(spec,)))
    except OSError as exc:
        raise _cannot_start(exc) from None
    pending: deque[tuple[_Task, Future[list[Decision | Rendered]]]] = deque()
    finished = False
    try:
        while True:
            while len(pending) < jobs * BATCHES_PER_WORKER:
                batch = list(islice(rows, BATCH_ROWS))
                if not batch:
                    break
                task = [(row, history.for_account(row.account_id), history.broken.get(row.account_id or ""))
                        for row in batch]
                pending.append((task, _spawning(functools.partial(pool.submit, _decide_batch, task, now, line_format))))
            if not pending:
                finished = True
                return
            task, future = pending.popleft()
            decisions = _result(pool, future)
            for (row, _, _), decision in zip(task, decisions, strict=True):
                yield row, decision
    except BrokenProcessPool:
        raise WorkerError("a --jobs worker process died (killed by a signal such as the out-of-memory "
                          "killer's, or it crashed while starting)") from None
    except OSError as exc:
        raise _cannot_start(exc) from None
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _abandon(pool)


def _result(pool: ProcessPoolExecutor, future: Future[_T]) -> _T:
    """The batch's result, or BrokenProcessPool as soon as a worker is dead.
    The executor notices a dead worker by itself only when its manager
    thread is not inside `recv()`: a worker SIGKILLed in the middle of
    writing a result leaves a partial message there, the manager waits for
    the rest for ever, and so would `future.result()` (a hang found by
    benchmarks/adversarial.py, killing a worker during `--jobs 2`). Workers
    are never respawned (no `max_tasks_per_child`), so any exit code on a
    worker means the pool is broken."""
    while True:
        try:
            return future.result(timeout=_LIVENESS_SECONDS)
        except TimeoutError:
            if any(worker.exitcode is not None for worker in _workers(pool)):
                raise BrokenProcessPool("a worker process exited") from None


def _workers(pool: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    """The pool's worker processes, copied (the manager thread edits the
    mapping). The executor has no public handle on them."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _abandon(pool: ProcessPoolExecutor) -> None:
    """An interrupted, failed or abandoned run stops now instead of waiting
    for the batches in flight. The workers are killed, and the parent's end
    of the result pipe is closed: a worker killed in the middle of writing a
    result leaves a partial message that the executor's manager thread would
    otherwise wait for in `recv()` for ever, and interpreter exit joins that
    thread (a hang found by benchmarks/adversarial.py: SIGTERM to the process
    group during `--jobs 2`). That thread is then waited for, briefly, so
    that it has cleaned up before interpreter exit wakes it (the two race
    in Python 3.11 and print a traceback). The executor has no public
    handle on any of these, hence `_processes`, `_result_queue` and
    `_executor_manager_thread`."""
    workers = _workers(pool)
    results = getattr(pool, "_result_queue", None)
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.kill()
    for worker in workers:
        worker.join()
    if results is not None:
        results._writer.close()  # the manager thread's recv() now ends (EOF): the pool is broken, not hung
    if manager is not None:
        manager.join(_MANAGER_EXIT_SECONDS)


def _cannot_start(exc: OSError) -> WorkerError:
    """Spawning failed (no processes or semaphores left, EAGAIN, ENOMEM)."""
    return WorkerError(f"cannot start --jobs worker processes: {exc.strerror or exc}")


def _spawning(start: Callable[[], _T]) -> _T:
    """`start()` with the stop signals blocked. The processes it spawns
    inherit the mask: a worker (spawned inside `submit`) cannot get a Ctrl-C
    before `_start_worker` ignores SIGINT, and multiprocessing's resource
    tracker (started with the executor, and unblocking only SIGINT and
    SIGTERM, which it ignores) is not killed by a SIGHUP sent to the whole
    process group. A signal that arrives meanwhile reaches the parent when
    the mask is restored."""
    previous = block_stop_signals()
    try:
        return start()
    finally:
        restore_signals(previous)
