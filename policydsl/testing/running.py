"""Running test files: each case decided and compared with what it expects.

Each case is decided by the compiled engine (`load_policy`), the one
services embed; `compare` lists every way the decision differs from the
case's expectations. `Runner` runs files, compiling each policy once and,
with coverage on, tracing every case for it (coverage.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import load_policy
from ..compiler import Policy
from ..decision import Blocked, Contact, Decision, format_instant
from ..errors import PolicyError
from .binding import _resolved, check_against_policy
from .coverage import PolicyCoverage
from .format import _UNSET, BlockedSpec, Case, ReasonSpec, ScenarioFile, TestFileError, load_test_file


@dataclass(frozen=True)
class Mismatch:
    key: str
    expected: str
    actual: str


@dataclass
class CaseResult:
    case: Case
    decision: Decision
    mismatches: list[Mismatch]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass
class FileResult:
    path: str
    policy_path: str | None = None
    results: list[CaseResult] = field(default_factory=list)
    error: str | None = None  # the file could not be used at all
    seconds: float = 0.0

    @property
    def failed(self) -> list[CaseResult]:
        return [result for result in self.results if not result.passed]


def account_values(case: Case, policy: Policy) -> dict[str, Any]:
    """The case's account as `evaluate` takes it. YAML reads `id: 1001` as a
    number; a text or enum field gets the digits, as a CSV would give them."""
    values = dict(case.account)
    for name, value in values.items():
        fld = policy.model.fields.get(name)
        if fld is not None and fld.type.kind in ("text", "enum") and isinstance(value, int) \
                and not isinstance(value, bool):
            values[name] = str(value)
    return values


def contacts(case: Case, account: dict[str, Any]) -> list[Contact]:
    account_id = account.get("id")
    shown = "" if account_id is None else str(account_id)
    return [Contact(shown, action, at, outcome) for action, at, outcome in case.history]


def compare(case: Case, decision: Decision, policy: Policy) -> list[Mismatch]:
    """Every way `decision` differs from what the case expects."""
    expect = case.expect
    if expect.error_contains is not None:
        if decision.error is None:
            return [Mismatch("error_contains", f"an error containing {expect.error_contains!r}", "no error")]
        if expect.error_contains not in decision.error:
            return [Mismatch("error_contains", f"an error containing {expect.error_contains!r}", decision.error)]
        return []
    if decision.error is not None:
        return [Mismatch("error", "a decision", f"error: {decision.error}")]
    out: list[Mismatch] = []
    if expect.stage is not _UNSET and decision.stage != expect.stage:
        out.append(Mismatch("stage", _name(expect.stage), _name(decision.stage)))
    if expect.segments is not None and set(decision.segments) != set(expect.segments):
        order = [segment.name for segment in policy.model.segments]
        wanted = sorted(expect.segments, key=order.index)
        out.append(Mismatch("segments", _names(wanted), _names(decision.segments)))
    if expect.allowed is not None and tuple(decision.allowed) != expect.allowed:
        out.append(Mismatch("allowed", _names(expect.allowed), _names(decision.allowed)))
    missing = [action for action in expect.allowed_includes if action not in decision.allowed]
    if missing:
        out.append(Mismatch("allowed_includes", f"{_names(expect.allowed_includes)} among the allowed",
                            f"{_names(decision.allowed)} (missing {', '.join(missing)})"))
    if expect.next_action is not _UNSET and decision.next_action != expect.next_action:
        out.append(Mismatch("next_action", _name(expect.next_action), _name(decision.next_action)))
    for spec in expect.blocked:
        out.extend(_compare_blocked(spec, decision, policy))
    for action in expect.not_blocked:
        if decision.reasons(action):
            out.append(Mismatch(f"not_blocked.{action}", "not blocked",
                                "blocked: " + "; ".join(describe_reason(entry) for entry in decision.reasons(action))))
    return out


def _compare_blocked(spec: BlockedSpec, decision: Decision, policy: Policy) -> list[Mismatch]:
    key = f"blocked.{spec.action}"
    reasons = decision.reasons(spec.action)
    wanted = "; ".join(reason.describe() for reason in spec.reasons)
    if not reasons:
        return [Mismatch(key, f"blocked ({wanted})", "allowed" if spec.action in decision.allowed else "not decided")]
    out: list[Mismatch] = []
    actual = "; ".join(describe_reason(entry) for entry in reasons)
    if spec.exact:
        if len(reasons) != len(spec.reasons) or not _matching(list(spec.reasons), list(reasons), policy):
            out.append(Mismatch(key, f"exactly {len(spec.reasons)} reason(s): {wanted}",
                                f"{len(reasons)} reason(s): {actual}"))
    else:
        for reason in spec.reasons:
            if not any(_matches(reason, entry, policy) for entry in reasons):
                out.append(Mismatch(key, f"a reason with {reason.describe()}", actual))
    for reason in spec.reasons:
        if reason.until is not _UNSET:
            expected, got = format_instant(reason.until), format_instant(decision.until(spec.action))
            if expected != got:
                out.append(Mismatch(f"{key}.until", expected or "null (time alone will not lift it)",
                                    got or "null (time alone will not lift it)"))
            break
    return out


def _matches(spec: ReasonSpec, entry: Blocked, policy: Policy) -> bool:
    if spec.kind is not None and entry.kind != spec.kind:
        return False
    if spec.reason_contains is not None and spec.reason_contains not in entry.reason:
        return False
    if spec.rule is not None:
        base = os.path.dirname(policy.path)
        file = policy.path if spec.rule.file is None else os.path.join(base, spec.rule.file)
        if spec.rule.id is not None:
            return entry.rule.id == spec.rule.id
        if entry.rule.line != spec.rule.line or _resolved(os.path.join(base, entry.rule.file)) != _resolved(file):
            return False
    return True


def _matching(specs: list[ReasonSpec], entries: list[Blocked], policy: Policy) -> bool:
    """Whether each spec can be given its own entry (a small bipartite match)."""
    if not specs:
        return True
    first, rest = specs[0], specs[1:]
    return any(_matches(first, entry, policy) and _matching(rest, entries[:i] + entries[i + 1:], policy)
               for i, entry in enumerate(entries))


def describe_reason(entry: Blocked) -> str:
    return f"{entry.kind} by {entry.rule.id} at {entry.rule.location} ({entry.reason})"


def _name(value: str | None) -> str:
    return "null" if value is None else value


def _names(values: Iterable[str]) -> str:
    return "[" + ", ".join(values) + "]"


class Runner:
    """Runs test files; compiles each policy once and, with `coverage`,
    accumulates one `PolicyCoverage` per policy over every file that tests it."""

    def __init__(self, include_roots: Sequence[str | os.PathLike[str]] = (), coverage: bool = False) -> None:
        self.include_roots = tuple(include_roots)
        self.with_coverage = coverage
        self.policies: dict[str, Policy] = {}
        self.coverage: dict[str, PolicyCoverage] = {}  # by the policy's resolved path
        self.traced: dict[str, Policy] = {}  # the same policies compiled with tracing, for coverage

    def policy(self, path: str) -> Policy:
        key = _resolved(path)
        if key not in self.policies:
            self.policies[key] = load_policy(path, self.include_roots)
        return self.policies[key]

    def run_path(self, path: str) -> FileResult:
        """One test file; a file or policy that cannot be used gives a result
        with `error` set rather than an exception."""
        started = time.perf_counter()
        try:
            scenarios = load_test_file(path)
        except TestFileError as error:
            return FileResult(path, error=str(error))
        try:
            policy = self.policy(scenarios.policy_path)
        except PolicyError as error:
            return FileResult(path, scenarios.policy_path,
                              error=f"policy {scenarios.policy_path} cannot be loaded:\n{error}")
        try:
            result = self.run(scenarios, policy)
        except TestFileError as error:
            return FileResult(path, policy.path, error=str(error))
        result.seconds = time.perf_counter() - started
        return result

    def run(self, scenarios: ScenarioFile, policy: Policy) -> FileResult:
        check_against_policy(scenarios, policy)
        coverage: PolicyCoverage | None = None
        traced: Policy | None = None
        if self.with_coverage:
            key = _resolved(policy.path)
            if key not in self.coverage:
                self.coverage[key] = PolicyCoverage(policy.model)
                self.traced[key] = Policy(policy.model, trace=True)
            coverage, traced = self.coverage[key], self.traced[key]
        out = FileResult(scenarios.path, policy.path)
        for case in scenarios.cases:
            account = account_values(case, policy)
            history = contacts(case, account)
            started = time.perf_counter()
            if coverage is not None and traced is not None:
                decision, trace = traced.trace(account, history, now=case.now)
                coverage.record(trace)
            else:
                decision = policy.evaluate(account, history, now=case.now)
            seconds = time.perf_counter() - started
            out.results.append(CaseResult(case, decision, compare(case, decision, policy), seconds))
        return out


def failure_text(result: CaseResult) -> str:
    """A failed case: each mismatch, expected against actual, then the
    decision's explanation."""
    lines = []
    for mismatch in result.mismatches:
        lines.append(f"{mismatch.key}:")
        lines.append(f"    expected: {mismatch.expected}")
        lines.append(f"    actual:   {mismatch.actual}")
    lines.append("explanation:")
    lines.extend("    " + line for line in result.decision.explain().splitlines())
    return "\n".join(lines)
