"""Deciding a stream of account rows, in one process or in several, always
in input order.

With `jobs > 1`, rows travel to worker processes in batches; each worker
compiles the policy once. Only a bounded number of batches is in flight, so
memory stays independent of the portfolio's size, and results are yielded
in the order the rows were read.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import islice

from .compiler import Policy
from .io import AccountRow, History
from .reference import ReferencePolicy
from .runtime import Contact, Decision, Evidence

BATCH_ROWS = 256
BATCHES_PER_WORKER = 4  # in flight: enough to keep workers busy, bounded for memory

Engine = Policy | ReferencePolicy


@dataclass(frozen=True)
class PolicySpec:
    """How a worker process loads the same policy as the parent."""

    path: str
    include_paths: tuple[str, ...]
    engine: str


def decide_row(policy: Engine, row: AccountRow, contacts: list[Contact], broken: str | None,
               now: dt.datetime) -> Decision:
    """The decision for one row; every problem becomes an error decision
    naming the row (and line), never an exception."""
    where = f"row {row.number} (line {row.line})"
    if row.values is None:
        return policy.error_decision(row.account_id, row.problem or f"{where}: unreadable", now=now)
    if broken is not None:
        return policy.error_decision(row.account_id, f"{where}: contact history: {broken}", now=now)
    decision = policy.evaluate(row.values, contacts, now=now)
    if decision.error:
        return policy.error_decision(decision.account_id, f"{where}: {decision.error}", now=now)
    return decision


def decide_stream(policy: Engine, rows: Iterator[AccountRow], history: History, now: dt.datetime,
                  jobs: int = 1, spec: PolicySpec | None = None) -> Iterator[tuple[AccountRow, Decision]]:
    """(row, decision) for every row, in input order."""
    if jobs <= 1 or spec is None:
        for row in rows:
            account_id = row.account_id
            yield row, decide_row(policy, row, history.for_account(account_id),
                                  history.broken.get(account_id or ""), now)
        return
    yield from _in_parallel(rows, history, now, jobs, spec)


_Task = list[tuple[AccountRow, list[Contact], str | None]]
_worker_policy: Engine | None = None  # one per worker process, set by _start_worker


def _start_worker(spec: PolicySpec) -> None:
    from . import load_policy

    global _worker_policy
    compiled = load_policy(spec.path, spec.include_paths)
    _worker_policy = ReferencePolicy(compiled.model) if spec.engine == "reference" else compiled


def _decide_batch(task: _Task, now: dt.datetime) -> list[Decision]:
    assert _worker_policy is not None
    # explanations are rendered in the parent only on request: do not ship their evidence back
    return [replace(decide_row(_worker_policy, row, contacts, broken, now), evidence=Evidence())
            for row, contacts, broken in task]


def _in_parallel(rows: Iterator[AccountRow], history: History, now: dt.datetime, jobs: int,
                 spec: PolicySpec) -> Iterator[tuple[AccountRow, Decision]]:
    context = multiprocessing.get_context("spawn")  # no inherited locks or threads
    with context.Pool(jobs, initializer=_start_worker, initargs=(spec,)) as pool:
        pending: deque[tuple[_Task, multiprocessing.pool.AsyncResult[list[Decision]]]] = deque()
        while True:
            while len(pending) < jobs * BATCHES_PER_WORKER:
                batch = list(islice(rows, BATCH_ROWS))
                if not batch:
                    break
                task = [(row, history.for_account(row.account_id), history.broken.get(row.account_id or ""))
                        for row in batch]
                pending.append((task, pool.apply_async(_decide_batch, (task, now))))
            if not pending:
                return
            task, result = pending.popleft()
            for (row, _, _), decision in zip(task, result.get(), strict=True):
                yield row, decision
