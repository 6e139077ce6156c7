"""Explanations: for each action, why it is allowed or blocked.

Built only when asked for (`Decision.explain()`, `policy explain`), never on
the evaluation path. Each line cites the rule's file and line, its text, its
`because`/`cite`, and the account values it read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .decision import Decision, HistoryFact, RuleInfo, format_exact_instant, format_instant


@dataclass(frozen=True)
class Step:
    """One cited rule in an explanation."""

    verdict: str  # "allowed by", "stage", or a Blocked kind
    message: str
    rule: RuleInfo
    values: str  # "days_past_due = 47; high_risk = true"


@dataclass(frozen=True)
class ActionExplanation:
    action: str
    allowed: bool
    until: str | None
    steps: tuple[Step, ...]


def show_value(value: Any) -> str:
    """A value as a policy author would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (frozenset, set)):
        return "{" + ", ".join(sorted(f'"{v}"' if isinstance(v, str) else str(v) for v in value)) + "}"
    if isinstance(value, tuple) and value and isinstance(value[0], ZoneInfo):
        return ";".join(zone.key for zone in value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (Decimal, int, dt.date)):
        return str(value)
    return repr(value)


def _values(decision: Decision, reads: tuple[str, ...]) -> str:
    """What a rule read: account values, segments (with the history
    aggregates a segment read, since they explain it), and aggregates with
    the events they counted."""
    evidence = decision.evidence
    shown = []
    for name in reads:
        if name in evidence.values:
            shown.append(f"{name} = {show_value(evidence.values[name])}")
        elif name in evidence.segment_rules:
            shown.append(f"{name} = {show_value(name in decision.segments)}")
            shown.extend(_fact(read, evidence.history[read]) for read in evidence.segment_rules[name].reads
                         if read in evidence.history)
        elif name in evidence.history:
            shown.append(_fact(name, evidence.history[name]))
    return "; ".join(dict.fromkeys(shown))


def _fact(text: str, fact: HistoryFact) -> str:
    """`streak(voice ...) = 3 (voice no_answer 2025-06-04T01:00:00Z, ...)`:
    an aggregate, its value, and the events it counted, newest first."""
    value = "never" if isinstance(fact.value, Decimal) and fact.value.is_infinite() else show_value(fact.value)
    events = ", ".join(f"{event.action} {event.outcome or '(no outcome)'} {format_instant(event.at)}"
                       for event in fact.events)
    return f"{text} = {value}" + (f" ({events})" if events else "")


def explanation(decision: Decision, actions: tuple[str, ...]) -> list[ActionExplanation]:
    """Structured explanation of every action, in the given order."""
    evidence = decision.evidence
    out = []
    for action in actions:
        blocked = decision.reasons(action)
        steps: list[Step] = []
        if not blocked and action in evidence.allowed_by:
            rule = evidence.allowed_by[action]
            steps.append(Step("allowed by", rule.text, rule, _values(decision, rule.reads)))
        for entry in blocked:
            message = entry.reason.removeprefix(f"{entry.kind}: ")
            steps.append(Step(entry.kind, message, entry.rule, _values(decision, entry.rule.reads)))
        until = format_instant(blocked[0].until) if blocked else None
        out.append(ActionExplanation(action, not blocked, until, tuple(steps)))
    return sorted(out, key=_most_useful_first)


def _most_useful_first(item: ActionExplanation) -> tuple[int, str]:
    """Allowed actions (in the given order), then those time will free
    (soonest first), then the rest."""
    if item.allowed:
        return 0, ""
    return (1, item.until) if item.until else (2, "")


def overview(decision: Decision) -> list[Step]:
    """The account-level facts: its stage and the segments it is in."""
    evidence = decision.evidence
    steps = []
    if evidence.stage_rule is not None:
        message = f"stage {decision.stage}" if decision.stage else "in no stage"
        steps.append(Step("stage", message, evidence.stage_rule, _values(decision, evidence.stage_rule.reads)))
    for name in decision.segments:
        rule = evidence.segment_rules[name]
        steps.append(Step("segment", name, rule, _values(decision, rule.reads)))
    return steps


def explain_text(decision: Decision) -> str:
    """Plain-text explanation (the CLI renders the same data with rich)."""
    if decision.error:
        return f"account {decision.account_id}: cannot be evaluated: {decision.error}"
    actions = tuple(decision.allowed) + tuple(dict.fromkeys(entry.action for entry in decision.blocked))
    lines = [f"account {decision.account_id}: stage {decision.stage or '(none)'}; "
             f"segments {', '.join(decision.segments) or '(none)'}; next action {decision.next_action or '(none)'}"]
    if decision.policy is not None:
        lines.append(f"decided by {provenance_text(decision)}")
    for step in overview(decision):
        lines.extend(_step_lines(step))
    for item in explanation(decision, actions):
        status = "ALLOWED" if item.allowed else "BLOCKED"
        if not item.allowed:
            status += f" until {item.until}" if item.until else " (time alone will not lift it)"
        lines.append(f"{item.action}: {status}")
        for step in item.steps:
            lines.extend(_step_lines(step))
    return "\n".join(lines)


def provenance_text(decision: Decision) -> str:
    """Which policy decided and when: name, version, digest and the instant,
    as an auditor needs them to reproduce the decision."""
    policy = decision.policy
    assert policy is not None
    return (f"policy {policy.name!r} version {policy.version!r} ({policy.digest}) "
            f"at {format_exact_instant(decision.now)}")


def _step_lines(step: Step) -> list[str]:
    lines = [f"  {step.verdict}: {step.message}", f"    {step.rule.location} [{step.rule.id}]: {step.rule.head}"]
    if step.values:
        lines.append(f"    read: {step.values}")
    return lines
