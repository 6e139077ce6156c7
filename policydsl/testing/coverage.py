"""Coverage of a policy by its test cases.

With coverage on, each case is evaluated a second time by `Tracer`, an
instrumented walk built from the reference interpreter's pieces
(`reference.py`), which records which rules decided something and which
outcome each operand of every `and`/`or` had. `PolicyCoverage` counts its
items by syntax-tree node, not by line, so reformatting a policy never
changes its percentage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from .. import nodes as n
from .. import reference as ref
from ..decision import Contact
from ..errors import AccountError
from ..model import Model


@dataclass
class CoverageItem:
    """One thing the cases should exercise. `both`: it needs to be seen true
    and false (conditions, operands, segments); otherwise once (`hits`)."""

    category: str  # rule, stage, segment, condition
    label: str  # allow, forbid, window, limit, quiet, stage, segment, when, operand
    span: n.Span
    text: str
    both: bool
    hits: int = 0  # cases in which it decided something (or fell in the stage)
    outcomes: set[bool] = field(default_factory=set)

    @property
    def covered(self) -> bool:
        return self.outcomes == {True, False} if self.both else self.hits > 0

    def status(self) -> str:
        """What was seen, in words."""
        if self.both:
            if self.covered:
                return "true and false"
            if not self.outcomes:
                return "never evaluated"
            return "never false" if True in self.outcomes else "never true"
        if self.label == "stage":
            return f"{self.hits} case(s)" if self.hits else "no case in it"
        verb = "admitted an action" if self.label == "allow" else "blocked"
        return f"{verb} in {self.hits} case(s)" if self.hits else f"never {verb}"


@dataclass
class CoverageRow:
    """A rule, stage or segment, with its condition's items."""

    item: CoverageItem
    conditions: list[CoverageItem] = field(default_factory=list)

    @property
    def items(self) -> list[CoverageItem]:
        return [self.item, *self.conditions]


CATEGORIES = ("rule", "stage", "segment", "condition")


class PolicyCoverage:
    """Coverage items of one checked policy, counted by syntax-tree node.

    - a stage range: some case falls in it;
    - a segment: some case is in it and some case is not;
    - an allow: it admitted some action in some case (it was the first entry
      whose condition held for that action in the case's stage);
    - a forbid: its condition held (or it has none) for an action it targets;
    - a window, limit or quiet period: it blocked an action;
    - the `when` of an allow, forbid, window, limit, quiet period or include
      (counted once, at its first rule), and every operand of every `and`/`or`
      (segments included): it evaluated to true in some evaluation and to
      false in another; an operand skipped by short-circuiting is not
      evaluated and counts for neither.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.rows: list[CoverageRow] = []
        self.by_node: dict[int, CoverageItem] = {}
        self.cases = 0
        for stage in model.stages:
            self._row(stage, "stage", "stage", f"stage {stage.name} {stage.describe()}", both=False)
        for segment in model.segments:
            row = self._row(segment, "segment", "segment", model.source_text(segment.span), both=True)
            row.conditions.extend(self._operands(segment.condition))
        for rule in [*model.allows, *model.restrictions]:
            label = type(rule).__name__.lower()
            row = self._row(rule, "rule", label, rule.text, both=False)
            condition = getattr(rule, "condition", None)
            for expr in [*getattr(rule, "applies", ()), *([condition] if condition is not None else [])]:
                if id(expr) not in self.by_node:  # an include's condition is shared by its rules
                    row.conditions.append(self._item(expr, "when", both=True))
                    row.conditions.extend(self._operands(expr))
        order = {path: index for index, path in enumerate(model.sources)}
        self.rows.sort(key=lambda row: (order.get(row.item.span.file, len(order)), row.item.span.line,
                                        row.item.span.column))

    def _row(self, node: Any, category: str, label: str, text: str, both: bool) -> CoverageRow:
        item = CoverageItem(category, label, node.span, text, both)
        self.by_node[id(node)] = item
        row = CoverageRow(item)
        self.rows.append(row)
        return row

    def _item(self, expr: n.Expr, label: str, both: bool) -> CoverageItem:
        item = CoverageItem("condition", label, expr.span, self.model.source_text(expr.span), both)
        self.by_node[id(expr)] = item
        return item

    def _operands(self, expr: n.Expr) -> list[CoverageItem]:
        found: list[CoverageItem] = []
        for node in n.walk(expr):
            if isinstance(node, n.BoolOp):
                found.extend(self._item(operand, "operand", both=True) for operand in node.operands)
        return found

    def record(self, trace: CaseTrace) -> None:
        self.cases += 1
        for key, value in trace.outcomes:
            item = self.by_node.get(key)
            if item is not None:
                item.outcomes.add(value)
        for key in trace.fired:
            item = self.by_node.get(key)
            if item is not None:
                item.hits += 1

    @property
    def items(self) -> list[CoverageItem]:
        return [item for row in self.rows for item in row.items]

    def counts(self, category: str | None = None) -> tuple[int, int]:
        """(covered, total) items, of one category or all."""
        chosen = [item for item in self.items if category is None or item.category == category]
        return sum(item.covered for item in chosen), len(chosen)

    @property
    def percent(self) -> float:
        covered, total = self.counts()
        return 100.0 if total == 0 else 100.0 * covered / total

    def meets(self, fail_under: float) -> bool:
        """Exact, so 89.99…% never rounds up to 90."""
        covered, total = self.counts()
        return total == 0 or covered * 100 >= fail_under * total

    def summary(self) -> str:
        parts = []
        for category in CATEGORIES:
            covered, total = self.counts(category)
            if total:
                parts.append(f"{category}s {covered}/{total}")
        covered, total = self.counts()
        return f"{self.percent:.1f}% ({covered}/{total}: {', '.join(parts)}) over {self.cases} case(s)"


@dataclass
class CaseTrace:
    """What one evaluation exercised: node ids that decided something, and
    (node id, outcome) of every condition and operand evaluated."""

    fired: set[int] = field(default_factory=set)
    outcomes: set[tuple[int, bool]] = field(default_factory=set)
    blocked: list[tuple[str, str, n.Span | None]] = field(default_factory=list)  # (action, kind, rule span)


class Tracer:
    """Evaluates a case again, walking the syntax tree as the reference
    interpreter does (its value, window and counting functions are reused)
    and recording what decided what. It leaves out `until`, which coverage
    does not need. Not a second engine: the decision tested is the compiled
    one; tests/test_testing.py checks both agree on every shipped case."""

    def __init__(self, coverage: PolicyCoverage) -> None:
        self.model = coverage.model
        self.reference = ref.ReferencePolicy(self.model)
        self.current = CaseTrace()

    def trace(self, account: dict[str, Any], history: Sequence[Contact], now: dt.datetime) -> CaseTrace:
        self.current = CaseTrace()
        try:
            values = self.reference.read_account(account)
            self._decide(values, history, now)
        except (AccountError, ArithmeticError, OverflowError):
            pass  # an error decision: what was evaluated before it still counts
        return self.current

    def _decide(self, values: dict[str, Any], history: Sequence[Contact], now: dt.datetime) -> None:
        model, trace = self.model, self.current
        zones: tuple[ZoneInfo, ...] = values[model.zone_field] if model.zone_field else (ZoneInfo("UTC"),)
        now = now.astimezone(dt.UTC)
        events = [Contact(c.account_id, c.action, c.at.astimezone(dt.UTC), c.outcome) for c in history]
        env = ref.Env(values, now, now.astimezone(zones[0]), history=[c for c in events if c.at <= now], model=model)
        for segment in model.segments:
            member = bool(self.eval(segment.condition, env))
            env.segments[segment.name] = member
            trace.outcomes.add((id(segment), member))
        stage = self.reference.stage_of(values)
        if stage is not None:
            trace.fired.add(id(stage))
        stage_name = stage.name if stage else None
        past = [Contact(c.account_id, c.action, c.at.astimezone(dt.UTC), c.outcome) for c in history]
        past = [contact for contact in past if contact.at <= now]
        for action in model.actions:
            env.action = action
            for _, allow in self.reference.allow_entries(action, stage_name):
                if allow.condition is None or self.condition(allow.condition, env):
                    trace.fired.add(id(allow))
                    break
            else:
                trace.blocked.append((action, "not_allowed", None))
            for rule in model.restrictions:
                if ref.applies(rule, stage_name) and action in model.expand(rule.targets) \
                        and all(self.condition(condition, env) for condition in rule.applies):
                    kind = self._blocks(rule, values, zones, now, past, env)
                    if kind:
                        trace.fired.add(id(rule))
                        trace.blocked.append((action, kind, rule.span))

    def _blocks(self, rule: n.Restriction, values: dict[str, Any], zones: tuple[ZoneInfo, ...], now: dt.datetime,
                past: list[Contact], env: ref.Env) -> str | None:
        if isinstance(rule, n.Forbid):
            held = rule.condition is None or self.condition(rule.condition, env)
            return "forbidden" if held else None
        if isinstance(rule, n.Window):
            country = self.reference.country(rule, values)
            outside = any(not ref.inside_window(rule, zone, now, country) for zone in zones)
            return "window" if outside else None
        counted = [contact for contact in past if ref.counts_event(rule, self.model, contact)]
        if any(ref.counter_block(rule, zone, now, counted) for zone in zones):
            return ref.kind_of(rule)
        return None

    def condition(self, expr: n.Expr, env: ref.Env) -> bool:
        """A `when`, its outcome recorded."""
        value = bool(self.eval(expr, env))
        self.current.outcomes.add((id(expr), value))
        return value

    def eval(self, node: n.Expr, env: ref.Env) -> Any:
        """`reference.eval_expr`, recording the outcome of every `and`/`or`
        operand it evaluates (left to right, stopping when the answer is known)."""
        if isinstance(node, n.BoolOp):
            stop = node.op == "or"  # `or` stops at the first true operand, `and` at the first false
            for operand in node.operands:
                value = bool(self.eval(operand, env))
                self.current.outcomes.add((id(operand), value))
                if value == stop:
                    return stop
            return not stop
        if isinstance(node, n.Not):
            return not self.eval(node.operand, env)
        if isinstance(node, n.Negate):
            return -self.eval(node.operand, env)
        if isinstance(node, n.Arithmetic):
            return ref.arithmetic(node.op, self.eval(node.left, env), self.eval(node.right, env))
        if isinstance(node, n.Compare):
            return ref.COMPARE[node.op](self.eval(node.left, env), self.eval(node.right, env))
        if isinstance(node, n.Membership):
            found = self.eval(node.item, env) in self.eval(node.container, env)
            return not found if node.negated else found
        if isinstance(node, n.Call):
            return ref.call(node.name, [self.eval(arg, env) for arg in node.args], env)
        return ref.eval_expr(node, env)  # literals, names, `action`, `now`: nothing to record
