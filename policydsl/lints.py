"""Lints: warnings about a policy that is valid but probably not what its
author meant.

The checker proves a policy well-formed; the lints run on its `Model`
afterwards and point at rules that can never matter (an allow that is always
forbidden, a condition that cannot be true in its stage), declarations
nothing uses, duplicates, and windows wider than the baseline they sit on.
The reasoning is deliberately simple and sound: a lint fires only when the
fact holds for every account, never on a guess.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum

from . import nodes as n
from .clock import Ranges, WindowSpec, window_spec
from .errors import Diagnostic
from .formatter import syntax_shape
from .model import Model


class Truth(Enum):
    TRUE = "always true"
    FALSE = "always false"
    UNKNOWN = "depends on the account"


@dataclass(frozen=True)
class Interval:
    """A set of numbers: lower and upper bounds (None = unbounded), each
    inclusive or not."""

    low: Decimal | None = None
    low_closed: bool = True
    high: Decimal | None = None
    high_closed: bool = True

    def is_empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (self.low == self.high and not (self.low_closed and self.high_closed))

    def intersect(self, other: Interval) -> Interval:
        low, low_closed = _tighter_low((self.low, self.low_closed), (other.low, other.low_closed))
        high, high_closed = _tighter_high((self.high, self.high_closed), (other.high, other.high_closed))
        return Interval(low, low_closed, high, high_closed)

    def within(self, other: Interval) -> bool:
        return self.intersect(other) == self


def _tighter_low(a: tuple[Decimal | None, bool], b: tuple[Decimal | None, bool]) -> tuple[Decimal | None, bool]:
    if a[0] is None:
        return b
    if b[0] is None or a[0] > b[0]:
        return a
    if b[0] > a[0]:
        return b
    return a[0], a[1] and b[1]


def _tighter_high(a: tuple[Decimal | None, bool], b: tuple[Decimal | None, bool]) -> tuple[Decimal | None, bool]:
    if a[0] is None:
        return b
    if b[0] is None or a[0] < b[0]:
        return a
    if b[0] < a[0]:
        return b
    return a[0], a[1] and b[1]


EVERYTHING = Interval()
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _satisfying(op: str, value: Decimal) -> Interval | None:
    """Values v with `v op value`; None for != (not an interval)."""
    if op == "<":
        return Interval(high=value, high_closed=False)
    if op == "<=":
        return Interval(high=value)
    if op == ">":
        return Interval(low=value, low_closed=False)
    if op == ">=":
        return Interval(low=value)
    return Interval(value, True, value, True) if op == "==" else None


def _field_comparison(expr: n.Expr, numeric: set[str]) -> tuple[str, str, Decimal] | None:
    """(field, op, constant) for `field op number` or `number op field`."""
    if not isinstance(expr, n.Compare):
        return None
    left, right, op = expr.left, expr.right, expr.op
    if isinstance(right, n.Ref) and isinstance(left, n.Literal):
        left, right, op = right, left, _MIRROR[op]
    if isinstance(left, n.Ref) and left.name in numeric and isinstance(right, n.Literal) \
            and right.kind in ("int", "number", "money"):
        return left.name, op, Decimal(right.value)  # type: ignore[arg-type]
    return None


def truth(expr: n.Expr, domain: dict[str, Interval], numeric: set[str]) -> Truth:
    """Whether `expr` is constant for every account whose numeric fields lie
    in `domain` (fields not in it are unconstrained)."""
    if isinstance(expr, n.Literal) and expr.kind == "bool":
        return Truth.TRUE if expr.value else Truth.FALSE
    if isinstance(expr, n.Not):
        inner = truth(expr.operand, domain, numeric)
        return {Truth.TRUE: Truth.FALSE, Truth.FALSE: Truth.TRUE}.get(inner, Truth.UNKNOWN)
    if isinstance(expr, n.BoolOp):
        return _truth_of_bool(expr, domain, numeric)
    comparison = _field_comparison(expr, numeric)
    if comparison is None:
        return Truth.UNKNOWN
    name, op, value = comparison
    current = domain.get(name, EVERYTHING)
    if op == "!=":
        inverse = truth(n.Compare("==", expr.left, expr.right, expr.span), domain, numeric)  # type: ignore[union-attr]
        return {Truth.TRUE: Truth.FALSE, Truth.FALSE: Truth.TRUE}.get(inverse, Truth.UNKNOWN)
    satisfying = _satisfying(op, value)
    assert satisfying is not None
    if current.within(satisfying):
        return Truth.TRUE
    if current.intersect(satisfying).is_empty():
        return Truth.FALSE
    return Truth.UNKNOWN


def _truth_of_bool(expr: n.BoolOp, domain: dict[str, Interval], numeric: set[str]) -> Truth:
    results = []
    narrowed = dict(domain)
    for operand in expr.operands:
        result = truth(operand, narrowed, numeric)
        results.append(result)
        comparison = _field_comparison(operand, numeric)
        if expr.op == "and" and comparison is not None and comparison[1] != "!=":
            name, op, value = comparison
            satisfying = _satisfying(op, value)
            assert satisfying is not None
            narrowed[name] = narrowed.get(name, EVERYTHING).intersect(satisfying)
            if narrowed[name].is_empty():
                return Truth.FALSE
    decisive, other = (Truth.FALSE, Truth.TRUE) if expr.op == "and" else (Truth.TRUE, Truth.FALSE)
    if decisive in results:
        return decisive
    if all(result == other for result in results):
        return other
    return Truth.UNKNOWN


# ------------------------------------------------------------ the lints


def lint(model: Model) -> list[Diagnostic]:
    """Warnings for the top-level file of `model` (its baselines are linted
    when checked on their own)."""
    stages = _Stages(model)
    found = [*_constant_conditions(model, stages), *_unusable_allows(model, stages), *_unused_declarations(model),
             *_rules_on_unallowed_actions(model, stages), *_duplicates(model), *_wider_windows(model),
             *_disjoint_windows(model)]
    return sorted(found, key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))


def _own(model: Model, rule: n.Rule | n.Segment) -> bool:
    return rule.span.file == model.policy.path


def _numeric_fields(model: Model) -> set[str]:
    return {name for name, fld in model.fields.items() if fld.type.kind in ("int", "number", "money")}


class _Stages:
    """The stages in range order, looked up by name in constant time, and
    the stage field's domain over a stage or a run of adjacent stages (the
    lints judge conditions per stage; a scan per lookup made them quadratic)."""

    def __init__(self, model: Model) -> None:
        self.field = model.stage_field
        self.ordered = model.stages
        self.index = {stage.name: position for position, stage in enumerate(model.stages)}

    def domain(self, stage: str | None) -> dict[str, Interval]:
        position = self.index.get(stage) if stage is not None else None
        return {} if position is None else self.run_domain(position, position)

    def run_domain(self, first: int, last: int) -> dict[str, Interval]:
        """Stages `first`..`last` (indices) cover one interval: stages have no gaps (E107)."""
        if self.field is None:
            return {}
        low, high = self.ordered[first].low, self.ordered[last].high
        return {self.field: Interval(None if low is None else Decimal(low), True,
                                     None if high is None else Decimal(high), True)}

    def where(self, stage: str | None) -> str:
        position = self.index.get(stage) if stage is not None else None
        if position is None:
            return ""
        found = self.ordered[position]
        return f" in stage {found.name} ({self.field} {found.describe()})"

    def leave_values_outside(self) -> bool:
        """Whether some stage field values are in no stage (W202): accounts
        there get the top-level rules only."""
        return bool(self.ordered) and (self.ordered[0].low is not None or self.ordered[-1].high is not None)


def _constant_conditions(model: Model, stages: _Stages) -> Iterator[Diagnostic]:
    numeric = _numeric_fields(model)
    for segment in model.segments:
        result = truth(segment.condition, {}, numeric)
        if result is not Truth.UNKNOWN:
            yield Diagnostic("W304", "warning", f"segment {segment.name!r} is {result.value}", segment.condition.span)
    for rule, condition in _conditions(model):
        if not _own(model, rule):
            continue
        result = truth(condition, stages.domain(rule.stage), numeric)
        if result is Truth.UNKNOWN:
            continue
        if isinstance(rule, n.Allow) and result is Truth.FALSE:
            yield Diagnostic("W303", "warning", f"this allow can never take effect: its condition is always "
                             f"false{stages.where(rule.stage)}", condition.span)
        else:
            yield Diagnostic("W304", "warning", f"condition is {result.value}{stages.where(rule.stage)}",
                             condition.span)


def _conditions(model: Model) -> Iterator[tuple[n.Rule, n.Expr]]:
    """Every rule's conditions: an allow's or forbid's `when`, and those a
    restriction exists under (`applies`)."""
    for rule in [*model.allows, *model.restrictions]:
        condition = getattr(rule, "condition", None)
        if condition is not None:
            yield rule, condition
        for applies in getattr(rule, "applies", ()):
            yield rule, applies


class _Forbidden:
    """Which actions forbids block for every account of a stage (None: of
    no stage), for W303.

    Issue 11 item 16: asking, for every allow × action × stage, every forbid
    again took 36 s for 150 of each. Here each forbid is expanded and judged
    once: a condition that does not read the stage field once in all, one
    that does over runs of adjacent stages, split only where a constant it
    compares the stage field with falls inside the run (so `days_past_due >
    90` costs a few judgements however many stages there are). A stage's
    blocked set is then built once, when an allow first asks for it."""

    def __init__(self, model: Model, stages: _Stages) -> None:
        self.actions = len(model.actions)
        self.stages = stages
        self.numeric = _numeric_fields(model)
        # action -> a forbid blocking it: in every stage and outside them; in one stage (stage blocks)
        self.everywhere: dict[str, n.Forbid] = {}
        self.in_stage: dict[str, dict[str, n.Forbid]] = {}
        self.by_runs: list[tuple[list[tuple[int, int]], frozenset[str], n.Forbid]] = []  # reading the stage field
        self.blocked: dict[str | None, set[str]] = {}
        for rule in model.restrictions:
            if isinstance(rule, n.Forbid):
                self.add(rule, model.expand(rule.targets))

    def add(self, rule: n.Forbid, targets: tuple[str, ...]) -> None:
        if rule.applies:  # from a conditional include: it exists only where those conditions hold too
            conditions = (*rule.applies, *([rule.condition] if rule.condition is not None else []))
            rule = replace(rule, condition=n.BoolOp("and", conditions, conditions[0].span), applies=())
        if rule.stage is not None:
            if rule.condition is None or truth(rule.condition, self.stages.domain(rule.stage), self.numeric) \
                    is Truth.TRUE:
                blocked = self.in_stage.setdefault(rule.stage, {})
                for action in targets:
                    blocked.setdefault(action, rule)
            return
        if rule.condition is None or truth(rule.condition, {}, self.numeric) is Truth.TRUE:
            for action in targets:
                self.everywhere.setdefault(action, rule)
            return
        limits = self.stage_constants(rule.condition)
        if limits and self.stages.ordered and self.may_become(rule.condition, Truth.TRUE):
            runs = self.true_runs(rule.condition, limits, 0, len(self.stages.ordered) - 1)
            if runs:
                self.by_runs.append((runs, frozenset(targets), rule))

    def may_become(self, expr: n.Expr, wanted: Truth) -> bool:
        """Whether knowing the stage could make `expr` judged `wanted`: not
        when a part that must be, reads no stage field and stays unknown
        (`dpd > 30 and "x" in flags` is never always true in any stage, so
        its stages need not be searched)."""
        if isinstance(expr, n.Not):
            return self.may_become(expr.operand, Truth.FALSE if wanted is Truth.TRUE else Truth.TRUE)
        if isinstance(expr, n.BoolOp):
            every = (expr.op == "and") == (wanted is Truth.TRUE)  # and-TRUE, or-FALSE: every operand must be
            results = (self.may_become(operand, wanted) for operand in expr.operands)
            return all(results) if every else any(results)
        if self.stage_constants(expr):
            return True
        return truth(expr, {}, self.numeric) is wanted

    def stage_constants(self, condition: n.Expr) -> list[Decimal]:
        """The constants `condition` compares the stage field with, sorted."""
        numeric = self.numeric
        found = {comparison[2] for node in n.walk(condition)
                 if (comparison := _field_comparison(node, numeric)) is not None and comparison[0] == self.stages.field}
        return sorted(found)

    def true_runs(self, condition: n.Expr, limits: list[Decimal], first: int, last: int) -> list[tuple[int, int]]:
        """The runs of stages `first`..`last` in which `condition` always holds."""
        domain = self.stages.run_domain(first, last)
        result = truth(condition, domain, self.numeric)
        if result is Truth.TRUE:
            return [(first, last)]
        if result is Truth.FALSE or first == last or not _any_inside(limits, next(iter(domain.values()))):
            return []  # with no constant inside, narrower runs are judged the same
        middle = (first + last) // 2
        return self.true_runs(condition, limits, first, middle) + self.true_runs(condition, limits, middle + 1, last)

    def of(self, stage: str | None) -> set[str]:
        """The actions blocked for every account of `stage`."""
        if stage not in self.blocked:
            blocked = set(self.everywhere)
            position = self.stages.index.get(stage) if stage is not None else None
            if stage is not None and position is not None:
                blocked.update(self.in_stage.get(stage, ()))
                for runs, targets, _ in self.by_runs:
                    if len(blocked) == self.actions:
                        break
                    if _inside_runs(runs, position):
                        blocked.update(targets)
            self.blocked[stage] = blocked
        return self.blocked[stage]

    def blocker(self, action: str, stage: str | None) -> n.Forbid:
        """A forbid that blocks `action` for every account of `stage` (the one
        a W303 message cites), found without judging any condition again."""
        found = self.everywhere.get(action) or self.in_stage.get(stage or "", {}).get(action)
        position = self.stages.index.get(stage) if stage is not None else None
        if found is None and position is not None:
            found = next(rule for runs, targets, rule in self.by_runs
                         if action in targets and _inside_runs(runs, position))
        assert found is not None
        return found


def _inside_runs(runs: list[tuple[int, int]], position: int) -> bool:
    return any(first <= position <= last for first, last in runs)


def _any_inside(limits: list[Decimal], interval: Interval) -> bool:
    """Whether one of the sorted `limits` lies in `interval` (its bounds included)."""
    start = 0 if interval.low is None else bisect.bisect_left(limits, interval.low)
    return start < len(limits) and (interval.high is None or limits[start] <= interval.high)


def _unusable_allows(model: Model, stages: _Stages) -> Iterator[Diagnostic]:
    """W303 for an allow whose every action is forbidden for every account
    wherever the allow applies: in its stage, or (at top level) in every
    stage and, when some stage field values fall in no stage, there too."""
    everywhere: list[str | None] = [s.name for s in model.stages] or [None]
    if stages.leave_values_outside():
        everywhere.append(None)
    forbidden = _Forbidden(model, stages)
    for allow in model.allows:
        if not _own(model, allow):
            continue
        actions = model.expand(allow.targets)
        where: list[str | None] = [allow.stage] if allow.stage is not None else everywhere
        if actions and all(forbidden.of(stage).issuperset(actions) for stage in where):
            first = forbidden.blocker(actions[0], where[0])
            yield Diagnostic("W303", "warning", f"this allow can never take effect: always forbidden by "
                             f"{first.span.location}", allow.span)


def _referenced_names(model: Model) -> set[str]:
    conditions = [segment.condition for segment in model.segments]
    conditions.extend(condition for _, condition in _conditions(model))
    names = {node.name for condition in conditions for node in n.walk(condition) if isinstance(node, n.Ref)}
    names.update(name for condition in conditions for node in n.walk(condition) if isinstance(node, n.History)
                 for name in node.targets.names)  # a group counted by a history aggregate is named
    for rule in [*model.allows, *model.restrictions]:
        for targets in (rule.targets, getattr(rule, "counted", None), getattr(rule, "after", None)):
            if targets is not None:
                names.update(targets.names)
    return names


def _unused_declarations(model: Model) -> Iterator[Diagnostic]:
    used = _referenced_names(model)
    # a test group is used by being reported in decisions (champion/challenger), whether or not a rule names it
    grouped = {group.span for experiment in model.experiments for group in experiment.groups}
    for segment in model.segments:
        if segment.name not in used and _own(model, segment) and segment.span not in grouped:
            yield Diagnostic("W301", "warning", f"segment {segment.name!r} is not used by any rule "
                             "(it is only reported in decisions)", segment.span)
    for line in model.policy.actions:
        if line.group is not None and line.group not in used:
            yield Diagnostic("W302", "warning", f"group {line.group!r} is declared but no rule names it", line.span)


def _rules_on_unallowed_actions(model: Model, stages: _Stages) -> Iterator[Diagnostic]:
    """A window, cap or quiet period that can never block anything: no stage
    allows its actions, or none does where its conditions can hold."""
    allowed: set[str] = set()
    for allow in model.allows:
        allowed.update(model.expand(allow.targets))
    for rule in model.restrictions:
        if isinstance(rule, n.Forbid) or not _own(model, rule):
            continue
        actions = model.expand(rule.targets)
        kind = type(rule).__name__.lower()
        if actions and not allowed.intersection(actions):
            yield Diagnostic("W305", "warning", f"this {kind} applies only to actions no stage allows "
                             f"({', '.join(actions)})", rule.span)
        elif actions and rule.applies and not any(_allowed_where(model, stages, rule, action) for action in actions):
            yield Diagnostic("W305", "warning", f"this {kind} applies only where {model.applies_text(rule)}, "
                             f"and no stage allows {', '.join(actions)} there", rule.span)


def _allowed_where(model: Model, stages: _Stages, rule: n.Restriction, action: str) -> bool:
    """Whether some stage in which `rule` is in force allows `action` and
    leaves the rule's conditions able to hold."""
    numeric = _numeric_fields(model)
    names: list[str | None] = [rule.stage] if rule.stage is not None else [s.name for s in model.stages] or [None]
    for stage in names:
        admitted = any(action in model.expand(allow.targets) and allow.stage in (None, stage)
                       for allow in model.allows)
        domain = stages.domain(stage)
        if admitted and all(truth(c, domain, numeric) is not Truth.FALSE for c in rule.applies):
            return True
    return False


def _duplicates(model: Model) -> Iterator[Diagnostic]:
    seen: dict[tuple[str | None, str], n.Rule] = {}
    for rule in [*model.allows, *model.restrictions]:
        if not _own(model, rule):
            continue
        key = (rule.stage, rule.text)
        if key in seen:
            yield Diagnostic("W306", "warning", f"duplicate of the rule at {seen[key].span.location}", rule.span)
        else:
            seen[key] = rule


def _condition_texts(model: Model, rule: n.Restriction) -> set[str]:
    """A restriction's conditions as written: the same text in two files is
    the same condition (the fields are shared)."""
    return {model.source_text(condition.span) for condition in rule.applies}


def _covered(ranges: Ranges, by: Ranges) -> bool:
    return all(any(start >= b_start and end <= b_end for b_start, b_end in by) for start, end in ranges)


def _wider_windows(model: Model) -> Iterator[Diagnostic]:
    """A window opening hours the baseline's keeps closed, for accounts the
    baseline's window applies to whenever this one does (a baseline window
    that applies only under conditions this one lacks does not cover it)."""
    baseline = [r for r in model.restrictions if isinstance(r, n.Window) and not _own(model, r)]
    for window in model.restrictions:
        if not isinstance(window, n.Window) or not _own(model, window):
            continue
        actions = set(model.expand(window.targets))
        mine = window_spec(window).by_day
        for base in baseline:
            if not actions.intersection(model.expand(base.targets)) \
                    or not _condition_texts(model, base) <= _condition_texts(model, window):
                continue
            theirs = window_spec(base).by_day
            if any(not _covered(ranges, theirs[day]) for day, ranges in enumerate(mine)):
                yield Diagnostic("W307", "warning", f"window is wider than the baseline's at {base.span.location} "
                                 f"({base.text}); the baseline still applies, so the extra hours never do",
                                 window.span)
                break


def _disjoint_windows(model: Model) -> Iterator[Diagnostic]:
    """Windows on one action that are never open together at any moment of
    a week (say `mon..fri` and `sat, sun`): the action is always blocked and
    `until` is null. Judged per stage, for the unconditional windows with
    those that share one set of conditions."""
    stages: list[str | None] = [s.name for s in model.stages] or [None]
    reported: set[tuple[int, ...]] = set()
    for stage in stages:
        for action in model.actions:
            windows = [r for r in model.restrictions if isinstance(r, n.Window) and r.stage in (None, stage)
                       and action in model.expand(r.targets)]
            for together in _window_sets(windows):
                key = tuple(id(window) for window in together)
                if key in reported or not any(_own(model, window) for window in together):
                    continue
                if not _open_together([window_spec(window) for window in together],
                                      [window.holidays is not None for window in together]):
                    reported.add(key)
                    yield _disjoint_diagnostic(model, together)


def _window_sets(windows: list[n.Window]) -> Iterator[list[n.Window]]:
    """The windows that apply together to some account for certain: the
    unconditional ones, and each set of conditions with them."""
    unconditional = [window for window in windows if not window.applies]
    if unconditional:
        yield unconditional
    # Conditions compared as written (without positions): `when state == "MA"` on two lines is one condition.
    for applies in dict.fromkeys(syntax_shape(window.applies) for window in windows if window.applies):
        yield [window for window in windows if not window.applies or syntax_shape(window.applies) == applies]


def _open_together(specs: list[WindowSpec], holidays: list[bool]) -> bool:
    """Whether on some weekday, an ordinary one or a public holiday, every
    window has an open moment in common (the holiday of a window with no
    calendar is an ordinary day for it)."""
    for day in range(7):
        for holiday in (False, True):
            common: Ranges = ((0, 24 * 3600),)
            for spec, calendar in zip(specs, holidays, strict=True):
                hours = spec.holiday_ranges if holiday and calendar else spec.by_day[day]
                common = tuple((max(a, c), min(b, d)) for a, b in common for c, d in hours if max(a, c) < min(b, d))
            if common:
                return True
    return False


def _disjoint_diagnostic(model: Model, windows: list[n.Window]) -> Diagnostic:
    actions = [action for action in model.actions if all(action in model.expand(w.targets) for w in windows)]
    where = ", ".join(window.span.location for window in windows)
    own = [window for window in windows if _own(model, window)]
    if len(windows) == 1:
        message = f"the window for {', '.join(actions)} is never open"
    else:
        message = f"the windows for {', '.join(actions)} are never open together at any moment of a week ({where})"
    return Diagnostic("W309", "warning", f"{message}: {', '.join(actions)} is always blocked and `until` is null",
                      own[-1].span)
