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

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from . import nodes as n
from .checker import Model
from .compiler import window_spec
from .errors import Diagnostic
from .runtime import Ranges, WindowSpec


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
    return {
        "<": Interval(high=value, high_closed=False),
        "<=": Interval(high=value),
        ">": Interval(low=value, low_closed=False),
        ">=": Interval(low=value),
        "==": Interval(value, True, value, True),
    }.get(op)


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
    found = [*_constant_conditions(model), *_unusable_allows(model), *_unused_declarations(model),
             *_rules_on_unallowed_actions(model), *_duplicates(model), *_wider_windows(model),
             *_disjoint_windows(model)]
    return sorted(found, key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))


def _own(model: Model, rule: n.Rule | n.Segment) -> bool:
    return rule.span.file == model.policy.path


def _numeric_fields(model: Model) -> set[str]:
    return {name for name, fld in model.fields.items() if fld.type.kind in ("int", "number", "money")}


def _stage_domain(model: Model, stage: str | None) -> dict[str, Interval]:
    found = model.stage_named(stage) if stage else None
    if found is None or model.stage_field is None:
        return {}
    low = Decimal(found.low) if found.low is not None else None
    high = Decimal(found.high) if found.high is not None else None
    return {model.stage_field: Interval(low, True, high, True)}


def _where(model: Model, stage: str | None) -> str:
    found = model.stage_named(stage) if stage else None
    if found is None:
        return ""
    return f" in stage {found.name} ({model.stage_field} {found.describe()})"


def _constant_conditions(model: Model) -> Iterator[Diagnostic]:
    numeric = _numeric_fields(model)
    for segment in model.segments:
        result = truth(segment.condition, {}, numeric)
        if result is not Truth.UNKNOWN:
            yield Diagnostic("W304", "warning", f"segment {segment.name!r} is {result.value}", segment.condition.span)
    for rule, condition in _conditions(model):
        if not _own(model, rule):
            continue
        result = truth(condition, _stage_domain(model, rule.stage), numeric)
        if result is Truth.UNKNOWN:
            continue
        if isinstance(rule, n.Allow) and result is Truth.FALSE:
            yield Diagnostic("W303", "warning", f"this allow can never take effect: its condition is always "
                             f"false{_where(model, rule.stage)}", condition.span)
        else:
            yield Diagnostic("W304", "warning", f"condition is {result.value}{_where(model, rule.stage)}",
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


def _always_forbidden(model: Model, action: str, stage: str | None) -> n.Forbid | None:
    numeric = _numeric_fields(model)
    domain = _stage_domain(model, stage)
    for rule in model.restrictions:
        if not isinstance(rule, n.Forbid) or action not in model.expand(rule.targets):
            continue
        if rule.stage is not None and rule.stage != stage:
            continue
        conditions = [*rule.applies, *([rule.condition] if rule.condition is not None else [])]
        if all(truth(condition, domain, numeric) is Truth.TRUE for condition in conditions):
            return rule
    return None


def _unusable_allows(model: Model) -> Iterator[Diagnostic]:
    stages: list[str | None] = [s.name for s in model.stages] or [None]
    for allow in model.allows:
        if not _own(model, allow):
            continue
        actions = model.expand(allow.targets)
        where: list[str | None] = [allow.stage] if allow.stage is not None else stages
        blockers = [_always_forbidden(model, action, stage) for action in actions for stage in where]
        if actions and all(blockers):
            first = blockers[0]
            assert first is not None
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
    for segment in model.segments:
        if segment.name not in used and _own(model, segment):
            yield Diagnostic("W301", "warning", f"segment {segment.name!r} is not used by any rule "
                             "(it is only reported in decisions)", segment.span)
    for line in model.policy.actions:
        if line.group is not None and line.group not in used:
            yield Diagnostic("W302", "warning", f"group {line.group!r} is declared but no rule names it", line.span)


def _rules_on_unallowed_actions(model: Model) -> Iterator[Diagnostic]:
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
        elif actions and rule.applies and not any(_allowed_where(model, rule, action) for action in actions):
            yield Diagnostic("W305", "warning", f"this {kind} applies only where {model.applies_text(rule)}, "
                             f"and no stage allows {', '.join(actions)} there", rule.span)


def _allowed_where(model: Model, rule: n.Restriction, action: str) -> bool:
    """Whether some stage in which `rule` is in force allows `action` and
    leaves the rule's conditions able to hold."""
    numeric = _numeric_fields(model)
    stages: list[str | None] = [rule.stage] if rule.stage is not None else [s.name for s in model.stages] or [None]
    for stage in stages:
        admitted = any(action in model.expand(allow.targets) and allow.stage in (None, stage)
                       for allow in model.allows)
        domain = _stage_domain(model, stage)
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
    for applies in dict.fromkeys(window.applies for window in windows if window.applies):
        yield [window for window in windows if not window.applies or window.applies == applies]


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
