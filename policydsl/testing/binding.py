"""Binding a test file to its policy: every name it uses must exist.

`check_against_policy` checks a file's action, stage, segment and field
names and its rule ids and lines against the compiled policy it names, so a
typo is an error that names the file, the case and the key, never a vacuous
pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import nodes as n
from ..compiler import Policy
from ..suggest import did_you_mean
from .format import RuleRef, ScenarioFile, _Checker


@dataclass(frozen=True)
class _Target:
    """What a file's names must exist in: its compiled policy."""

    policy: Policy
    citable: dict[str, set[int]]  # resolved file -> lines a decision can cite
    ids: set[str] = field(default_factory=set)  # the ids of what a decision can cite

    @staticmethod
    def of(policy: Policy) -> _Target:
        model = policy.model
        citable: dict[str, set[int]] = {}

        ids: set[str] = set()

        def add(span: n.Span) -> None:
            citable.setdefault(_resolved(span.file), set()).add(span.line)
            ids.add(model.ids[span])

        add(model.policy.header.span)
        for stages in model.policy.stages:
            add(stages.span)
        for stage in model.stages:
            add(stage.span)
        for rule in [*model.allows, *model.restrictions]:
            add(rule.span)
        for path in model.sources:
            citable.setdefault(_resolved(path), set())
        return _Target(policy, citable, ids)


def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def check_against_policy(scenarios: ScenarioFile, policy: Policy) -> None:
    """Every name and rule line of the file must exist in the policy: a typo
    must fail loudly, not pass vacuously (`not_blocked: [smss]`)."""
    target = _Target.of(policy)
    model = policy.model
    actions = set(model.actions)
    stages = {stage.name for stage in model.stages}
    segments = {segment.name for segment in model.segments}
    counted = actions | set(model.events)
    for case in scenarios.cases:
        check = _Checker(scenarios.path, case.label)
        for name in case.account:
            _known(check, name, set(model.fields), "field", f"account.{name}")
        for index, (action, _, _) in enumerate(case.history):
            _known(check, action, counted, "action or event", f"history[{index}].action")
        expect = case.expect
        named = [("allowed", name) for name in expect.allowed or ()]
        named += [("allowed_includes", name) for name in expect.allowed_includes]
        named += [("not_blocked", name) for name in expect.not_blocked]
        named += [("blocked", spec.action) for spec in expect.blocked]
        if isinstance(expect.next_action, str):
            named.append(("next_action", expect.next_action))
        for key, name in named:
            _known(check, name, actions, "action", f"expect.{key}")
        if isinstance(expect.stage, str):
            _known(check, expect.stage, stages, "stage", "expect.stage")
        for name in expect.segments or ():
            _known(check, name, segments, "segment", "expect.segments")
        for spec in expect.blocked:
            for index, reason in enumerate(spec.reasons):
                if reason.rule is not None:
                    key = f"expect.blocked.{spec.action}" + (f"[{index}]" if spec.exact else "") + ".rule"
                    _rule_location(check, reason.rule, policy, target, key)


def _known(check: _Checker, name: str, known: set[str], what: str, key: str) -> None:
    if name not in known:
        raise check.error(f"the policy has no {what} {name!r}{did_you_mean(name, known)}", key)


def _rule_location(check: _Checker, rule: RuleRef, policy: Policy, target: _Target, key: str) -> None:
    """That the rule a reference names exists: its id, or its file and line."""
    if rule.id is not None:
        if rule.id not in target.ids:
            raise check.error(f"the policy has no rule with id {rule.id!r}{did_you_mean(rule.id, target.ids)} "
                              "(ids are shown by "
                              "`policy explain` and in every decision's `rule_id`)", key)
        return
    wanted = rule.line
    assert wanted is not None
    base = os.path.dirname(policy.path)
    file = _resolved(policy.path if rule.file is None else os.path.join(base, rule.file))
    if file not in target.citable:
        files = ", ".join(os.path.relpath(path, base or ".") for path in policy.model.sources)
        raise check.error(f"{rule.file!r} is not one of the policy's files ({files}; paths relative to the "
                          "policy's directory)", key)
    lines = target.citable[file]
    if wanted not in lines:
        nearest = min(lines, key=lambda line: (abs(line - wanted), line), default=None)
        hint = f"; the nearest rule starts on line {nearest}" if nearest else ""
        raise check.error(f"line {wanted} starts no rule, stage or allow a decision can cite{hint}", key)
