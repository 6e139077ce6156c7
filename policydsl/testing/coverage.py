"""Coverage of a policy by its test cases.

With coverage on, the cases are decided by the compiled evaluator built
with tracing (`Policy(model, trace=True)`): the same generated code, which
also records which rules decided something and which outcome each condition,
segment and operand of every `and`/`or` had (`codegen.Trace`). What coverage
observes is therefore the evaluator that decides, not a copy of it.
`PolicyCoverage` counts its items by syntax-tree node, not by line, so
reformatting a policy never changes its percentage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import nodes as n
from ..codegen import Trace
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

    def record(self, trace: Trace) -> None:
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
