"""Two policies compared exactly over the finite part of their inputs.

`compare(old, new)` answers whether NEW decides like OLD everywhere, is
stricter (blocks something OLD allows, never the reverse), loosens (allows
something OLD blocks) or differs (both, or only in stage, segments, priority
order or `until`). Each difference comes with a small counterexample that
has been replayed through both engines (`Policy` and `ReferencePolicy`) of
both policies. docs/equivalence.md says what is exact and what is sampled.

How it works, per decided action A:

- Fields are split at the constants either policy compares them with, and
  candidates that every atom (`field op constant`, `"x" in set`) sees alike
  are merged. The stage field is split at both policies' stage bounds.
- A's decision is `G and WH`: G (admitted by an allow, no forbid) reads
  account fields; WH (windows open, no cap or quiet period reached) reads
  the instant, the zone and the history. Every `Blocked` entry says which of
  the two blocked it (not_allowed/forbidden vs window/limit/quiet), so each
  factor is read off the engines' own decisions. The fields that windows,
  caps and quiet periods read in their `when` (and a holiday calendar held
  in a field) and the stage field are a context enumerated around both.
- The instants: each window edge and a minute before it, midnight and the
  times of day at which an `hours` period crosses a local midnight, on a
  date of each weekday (when a window's hours depend on it) and of each
  combination of the holiday calendars in use.
- Histories: caps and quiet periods only block more as events are added,
  so a difference in WH shows with a minimal history: exactly `count`
  events counted by one cap (one event for a quiet period) of one policy,
  chosen among event kinds (action, outcome, age relative to `now`) that
  count for as few of the other policy's caps as possible.

Conditions outside that fragment (arithmetic, functions, `now`, history
aggregates in conditions, fields compared with fields, products over the
budget) are listed in `Verdict.outside` and decided by random sampling.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from . import nodes as n
from .calendars import is_holiday, known_country
from .clock import local_midnight, period_end, window_spec
from .compiler import Policy
from .decision import Contact, Decision
from .model import Model
from .reference import ReferencePolicy
from .values import default_value, reader_for

__all__ = ["Counterexample", "ReplayError", "Verdict", "compare"]

CASE_BUDGET = 200_000  # evaluations of the exact part before the rest is left to sampling
FIELD_BUDGET = 20_000  # field combinations per action and context before sampling takes over
HISTORY_BUDGET = 400  # minimal histories per cap or quiet period before sampling takes over
SET_LITERALS = 10  # a set field tested against more constants than this is sampled
BASE_DATE = dt.date(2026, 1, 5)  # a Monday: dates are chosen from the year after it
# sampled only: zones that change their clocks, and accounts with several candidate zones
SAMPLED_ZONES = ("America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata",
                 "Asia/Shanghai;America/New_York", "Europe/London;Asia/Tokyo")
_OTHER_TEXT = "~other"
_OTHER_OUTCOME = ""


@dataclass(frozen=True)
class Counterexample:
    account: dict[str, Any]
    history: list[Contact]
    now: dt.datetime
    old: Decision
    new: Decision
    action: str | None
    description: str


@dataclass(frozen=True)
class Verdict:
    outcome: str
    counterexamples: list[Counterexample]
    exact: bool
    outside: list[str]
    cases: int
    sampled: int


class _OverBudget(Exception):
    """The enumeration reached CASE_BUDGET."""


class ReplayError(AssertionError):
    """A counterexample that did not reproduce through both engines: a bug here or in an engine."""


# ------------------------------------------------------------ what the policies read


@dataclass
class _FieldInfo:
    name: str
    kind: str
    element: str | None
    members: tuple[str, ...]
    default: Any  # typed, or None
    # (owner, ...): the id() of the segment or rule whose condition holds the atom
    atoms: list[tuple[int, Callable[[Any], Any]]] = field(default_factory=list)  # value -> what an atom sees
    constants: list[tuple[int, Any]] = field(default_factory=list)
    elements: list[tuple[int, Any]] = field(default_factory=list)  # set members tested with `in`


_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b), "!=": lambda a, b: bool(a != b), "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b), ">": lambda a, b: bool(a > b), ">=": lambda a, b: bool(a >= b)}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _contains(element: Any) -> Callable[[Any], Any]:
    return lambda value: element in value


def _member_of(members: tuple[Any, ...]) -> Callable[[Any], Any]:
    return lambda value: value in members


def _atom_test(op: str, constant: Any) -> Callable[[Any], Any]:
    compare = _ORDER_OPS[op]

    def test(value: Any) -> Any:
        try:
            return compare(value, constant)
        except TypeError:
            return None
    return test


class _Reads:
    """The fields, atoms and out-of-fragment conditions of both models."""

    def __init__(self, models: Sequence[Model]) -> None:
        self.models = models
        self.fields: dict[str, _FieldInfo] = {}
        self.outside: dict[str, None] = {}
        self.outside_nodes: set[int] = set()  # id() of conditions (segments, rules) holding such an atom
        self.action_names: list[str] = list(dict.fromkeys(a for m in models for a in m.actions))
        for model in models:
            for fld in model.fields.values():
                if fld.name not in self.fields:
                    read = reader_for(fld.type.kind, fld.type.element, fld.type.members)
                    default = read(default_value(fld.default)) if fld.default is not None else None
                    self.fields[fld.name] = _FieldInfo(fld.name, fld.type.kind, fld.type.element, fld.type.members,
                                                       default)
        self.owner = 0
        for model in models:
            for owner, expr in _conditions(model):
                self.owner = id(owner)
                if not self._scan(model, expr):
                    self.outside_nodes.add(id(owner))

    def _scan(self, model: Model, expr: n.Expr) -> bool:
        """Record the atoms of `expr`; False when some part is outside the exact fragment."""
        if isinstance(expr, n.BoolOp):
            return all([self._scan(model, operand) for operand in expr.operands])
        if isinstance(expr, n.Not):
            return self._scan(model, expr.operand)
        if isinstance(expr, n.Literal) and expr.kind == "bool":
            return True
        if isinstance(expr, n.Ref):
            if expr.name not in model.fields:
                return True  # a segment: its condition is scanned on its own
            if model.fields[expr.name].type.kind != "bool":
                return self._out(model, expr)
            self.fields[expr.name].atoms.append((self.owner, bool))
            return True
        if isinstance(expr, n.Compare):
            left, right, op = _literal(expr.left), _literal(expr.right), expr.op
            if isinstance(right, n.Ref) and isinstance(left, n.Literal):
                left, right, op = right, left, _FLIP[op]
            if isinstance(left, n.ActionRef) and isinstance(right, n.Literal):
                return True
            if isinstance(left, n.Ref) and left.name in model.fields and isinstance(right, n.Literal) \
                    and right.kind not in ("time", "duration"):
                info = self.fields[left.name]
                constant = self._typed(info, right.value)
                if constant is not None:
                    info.constants.append((self.owner, constant))
                    info.atoms.append((self.owner, _atom_test(op, constant)))
                    return True
            return self._out(model, expr)
        if isinstance(expr, n.Membership):
            item, container = expr.item, expr.container
            if isinstance(container, n.Ref) and container.name in model.fields \
                    and model.fields[container.name].type.kind == "set":
                info = self.fields[container.name]
                if isinstance(item, n.Literal):
                    element = item.value
                    info.elements.append((self.owner, element))
                    info.atoms.append((self.owner, _contains(element)))
                    return True
                if isinstance(item, n.ActionRef):
                    for action in self.action_names:
                        info.elements.append((self.owner, action))
                        info.atoms.append((self.owner, _contains(action)))
                    return True
            if isinstance(container, n.SetLiteral):
                if isinstance(item, n.ActionRef):
                    return True
                if isinstance(item, n.Ref) and item.name in model.fields:
                    info = self.fields[item.name]
                    members = [self._typed(info, element.value) for element in container.elements]
                    info.constants.extend((self.owner, m) for m in members if m is not None)
                    info.atoms.append((self.owner, _member_of(tuple(members))))
                    return True
            return self._out(model, expr)
        return self._out(model, expr)

    @staticmethod
    def _typed(info: _FieldInfo, value: Any) -> Any:
        if info.kind in ("int", "number", "money"):
            return value if isinstance(value, (int, Decimal)) and not isinstance(value, bool) else None
        if info.kind == "bool":
            return value if isinstance(value, bool) else None
        if info.kind in ("text", "enum"):
            return value if isinstance(value, str) else None
        if info.kind == "date":
            return value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else None
        if info.kind == "datetime":
            return value if isinstance(value, dt.datetime) else None
        return None

    def _out(self, model: Model, expr: n.Expr) -> bool:
        why = _why_outside(model, expr)
        span = expr.span
        self.outside[f"{model.cited_path(span.file)}:{span.line}: {model.source_text(span)} ({why})"] = None
        return False


def _literal(expr: n.Expr) -> n.Expr:
    """`-0.5` (a negated number) as the constant it is."""
    if isinstance(expr, n.Negate) and isinstance(expr.operand, n.Literal) \
            and isinstance(expr.operand.value, (int, Decimal)) and not isinstance(expr.operand.value, bool):
        return n.Literal(-expr.operand.value, expr.operand.kind, expr.span)
    return expr


def _why_outside(model: Model, expr: n.Expr) -> str:
    for node in n.walk(expr):
        if isinstance(node, n.History):
            return "a history aggregate in a condition"
        if isinstance(node, n.NowRef):
            return "reads now"
        if isinstance(node, n.Call):
            return f"function {node.name}() is not split exactly"
        if isinstance(node, (n.Arithmetic, n.Negate)):
            return "arithmetic on fields"
    refs = [node for node in n.walk(expr) if isinstance(node, n.Ref) and node.name in model.fields]
    if len(refs) > 1:
        return "compares fields with each other"
    return "not a comparison of a field with a constant"


def _conditions(model: Model) -> Iterator[tuple[Any, n.Expr]]:
    """(owner, condition) of every segment and rule, include conditions included."""
    for segment in model.segments:
        yield segment, segment.condition
    for allow in model.allows:
        if allow.condition is not None:
            yield allow, allow.condition
    for rule in model.restrictions:
        condition = getattr(rule, "condition", None)
        if condition is not None:
            yield rule, condition
        for test in rule.applies:
            yield rule, test


def _fields_read(model: Model, exprs: Iterable[n.Expr | None], seen: set[str] | None = None) -> set[str]:
    """Account fields the expressions read, through segments."""
    seen = set() if seen is None else seen
    found: set[str] = set()
    segments = {s.name: s for s in model.segments}
    for expr in exprs:
        if expr is None:
            continue
        for node in n.walk(expr):
            if isinstance(node, n.Ref):
                if node.name in model.fields:
                    found.add(node.name)
                elif node.name in segments and node.name not in seen:
                    seen.add(node.name)
                    found |= _fields_read(model, [segments[node.name].condition], seen)
    return found


def _segments_read(model: Model, exprs: Iterable[n.Expr | None]) -> list[n.Segment]:
    segments = {s.name: s for s in model.segments}
    found: dict[str, n.Segment] = {}
    todo = [e for e in exprs if e is not None]
    while todo:
        for node in n.walk(todo.pop()):
            if isinstance(node, n.Ref) and node.name in segments and node.name not in found:
                found[node.name] = segments[node.name]
                todo.append(segments[node.name].condition)
    return list(found.values())


@dataclass
class _ActionRules:
    """What decides one action, in both models."""

    action: str
    g_exprs: list[tuple[Model, Any, n.Expr]]  # (model, owner, condition) of allows and forbids
    windows: list[tuple[Model, n.Window]]
    counters: list[tuple[int, Model, n.Limit | n.Quiet]]  # (side, model, rule)
    g_fields: set[str]
    wh_fields: set[str]
    exact: bool  # G reads only fields within the fragment
    g_owners: set[int] = field(default_factory=set)  # id() of the rules and segments G reads
    wh_owners: set[int] = field(default_factory=set)  # and those the windows, caps and quiet periods read


def _action_rules(models: Sequence[Model], action: str, reads: _Reads,
                  stages: Sequence[str | None] | None = None) -> _ActionRules:
    """What decides `action` (in the stage each model has, when `stages` is given)."""
    def here(rule: Any, side: int) -> bool:
        return stages is None or rule.stage is None or rule.stage == stages[side]

    g_owners: set[int] = set()
    wh_owners: set[int] = set()
    g_exprs: list[tuple[Model, Any, n.Expr]] = []
    windows: list[tuple[Model, n.Window]] = []
    counters: list[tuple[int, Model, n.Limit | n.Quiet]] = []
    g_fields: set[str] = set()
    wh_fields: set[str] = set()
    exact = True
    for side, model in enumerate(models):
        g_of_model: list[tuple[Any, n.Expr]] = []
        for allow in model.allows:
            if action in model.expand_in_order(allow.targets) and allow.condition is not None and here(allow, side):
                g_of_model.append((allow, allow.condition))
        for rule in model.restrictions:
            if action not in model.expand(rule.targets) or not here(rule, side):
                continue
            if isinstance(rule, n.Forbid):
                g_of_model.extend((rule, e) for e in (*rule.applies, *([rule.condition] if rule.condition else [])))
                continue
            wh_fields |= _fields_read(model, rule.applies)
            wh_owners |= {id(rule), *(id(s) for s in _segments_read(model, rule.applies))}
            exact = exact and id(rule) not in reads.outside_nodes and not any(
                id(s) in reads.outside_nodes for s in _segments_read(model, rule.applies))
            if isinstance(rule, n.Window):
                windows.append((model, rule))
                if isinstance(rule.holidays, n.Ref):
                    wh_fields.add(rule.holidays.name)
            else:
                counters.append((side, model, rule))
        for owner, expr in g_of_model:
            g_exprs.append((model, owner, expr))
            g_fields |= _fields_read(model, [expr])
            g_owners |= {id(owner), *(id(s) for s in _segments_read(model, [expr]))}
            exact = exact and id(owner) not in reads.outside_nodes and not any(
                id(s) in reads.outside_nodes for s in _segments_read(model, [expr]))
    return _ActionRules(action, g_exprs, windows, counters, g_fields, wh_fields, exact, g_owners, wh_owners)


# ------------------------------------------------------------ candidates


def candidates(info: _FieldInfo, owners: set[int] | None = None) -> list[Any]:
    """Values of a field that tell apart every way the policies' atoms (those of
    the conditions of `owners`; None: all) can see it, the default first, then
    the smallest values."""
    if owners is not None:
        info = _FieldInfo(info.name, info.kind, info.element, info.members, info.default,
                          [a for a in info.atoms if a[0] in owners], [c for c in info.constants if c[0] in owners],
                          [e for e in info.elements if e[0] in owners])
    found: list[Any] = []
    kind = info.kind
    if kind == "bool":
        found = [False, True]
    elif kind == "enum":
        found = list(info.members)
    elif kind in ("int", "number", "money", "date", "datetime"):
        found = _ordered_candidates(kind, [c for _, c in info.constants])
    elif kind == "text":
        found = [*dict.fromkeys(c for _, c in info.constants), _OTHER_TEXT]
    elif kind == "set":
        elements = list(dict.fromkeys(e for _, e in info.elements))[:SET_LITERALS]
        found = [frozenset(chosen) for size in range(len(elements) + 1)
                 for chosen in itertools.combinations(elements, size)]
    elif kind == "zone":
        found = ["UTC"] if info.default is None or info.default[0].key != "UTC" else ["Asia/Shanghai"]
    if info.default is not None:
        default = info.default
        if kind == "zone":
            default = ";".join(zone.key for zone in default)
        found = [default, *(value for value in found if value != default)]
    if not found:
        found = [_filler(kind)]
    return _merge(info, found) if kind != "zone" else found


def _ordered_candidates(kind: str, constants: list[Any]) -> list[Any]:
    if not constants:
        return [_filler(kind)]
    step: Any
    if kind == "int":
        step = 1
    elif kind == "date":
        step = dt.timedelta(days=1)
    elif kind == "datetime":
        step = dt.timedelta(seconds=1)
    else:
        places = max(-Decimal(c).as_tuple().exponent for c in constants)  # type: ignore[operator]
        step = Decimal(1).scaleb(-(max(places, 0) + 1))
    values: set[Any] = set()
    for constant in constants:
        values |= {constant - step, constant, constant + step}
    ordered = sorted(values)
    found = [ordered[0] - step, *ordered, ordered[-1] + step]
    if kind in ("int", "number", "money"):  # the smallest magnitudes first: zero stands for its class
        return sorted({*found, Decimal(0) if kind != "int" else 0}, key=lambda v: (abs(v), v))
    return found


def _filler(kind: str) -> Any:
    return {"int": 0, "number": Decimal(0), "money": Decimal(0), "bool": False, "text": "x", "date": BASE_DATE,
            "datetime": dt.datetime(2026, 1, 5, tzinfo=dt.UTC), "set": frozenset(), "zone": "UTC"}.get(kind, "x")


def _merge(info: _FieldInfo, values: list[Any]) -> list[Any]:
    """One value per distinct way the atoms see it (the first in order)."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for value in values:
        signature = tuple(atom(value) for _, atom in info.atoms)
        if signature not in seen:
            seen.add(signature)
            kept.append(value)
    return kept


def stage_candidates(models: Sequence[Model]) -> tuple[str | None, list[Any]]:
    """The stage field and one value per combination of the two policies' stages."""
    names = {m.stage_field for m in models if m.stage_field}
    if not names:
        return None, [None]
    name = sorted(names)[0]
    bounds: set[int] = set()
    for model in models:
        for stage in model.stages:
            for bound in (stage.low, stage.high):
                if bound is not None:
                    bounds |= {bound - 1, bound, bound + 1}
    if not bounds:
        bounds = {0}
    values = sorted(bounds)
    values = [0, values[0] - 1, *values, values[-1] + 1]
    kept: dict[tuple[str | None, ...], int] = {}
    for value in sorted(values, key=lambda v: (abs(v), v)):  # the smallest value of each pair of stages
        key = tuple(_stage_name(m, value) if m.stage_field == name else None for m in models)
        kept.setdefault(key, value)
    return name, list(kept.values())


def _stage_name(model: Model, value: int) -> str | None:
    for stage in model.stages:
        if (stage.low is None or value >= stage.low) and (stage.high is None or value <= stage.high):
            return stage.name
    return None


# ------------------------------------------------------------ instants


def _countries(windows: list[tuple[Model, n.Window]], country_values: Iterable[str]) -> list[str]:
    found: list[str] = []
    for _, rule in windows:
        if isinstance(rule.holidays, n.Literal):
            found.append(str(rule.holidays.value))
    found.extend(value for value in country_values if isinstance(value, str) and known_country(value))
    return list(dict.fromkeys(found))


def representative_dates(windows: list[tuple[Model, n.Window]], countries: list[str], zone: ZoneInfo
                         ) -> list[dt.date]:
    """One date per (weekday, holiday in each calendar) the windows can tell apart,
    none a day on which `zone` changes its clock."""
    specs = [window_spec(rule) for _, rule in windows]
    by_weekday = any(len(set(spec.by_day)) > 1 for spec in specs)
    kept: dict[tuple[Any, ...], dt.date] = {}
    for offset in range(371):
        day = BASE_DATE + dt.timedelta(days=offset)
        start, end = local_midnight(zone, day), local_midnight(zone, day + dt.timedelta(days=1))
        if start.astimezone(zone).utcoffset() != end.astimezone(zone).utcoffset() \
                or (end - start) != dt.timedelta(days=1):
            continue
        key = (day.weekday() if by_weekday else None, tuple(is_holiday(c, day) for c in countries))
        kept.setdefault(key, day)
    return sorted(kept.values())


def time_points(windows: list[tuple[Model, n.Window]], counters: list[tuple[int, Model, n.Limit | n.Quiet]]
                ) -> list[int]:
    """Seconds after local midnight: each window edge and the minute before it,
    midnight, noon, and where an `hours` period reaches back across midnight."""
    seconds = {0, 12 * 3600}
    for _, rule in windows:
        spec = window_spec(rule)
        for ranges in (*spec.by_day, spec.holiday_ranges):
            for start, end in ranges:
                for edge in (start, end):
                    seconds |= {edge % 86400, (edge - 60) % 86400}
    for _, _, counter in counters:
        if counter.period.unit == "hours":
            cut = counter.period.amount * 3600 % 86400
            seconds |= {cut, (cut - 60) % 86400, (cut + 60) % 86400}
    return sorted(seconds)


# ------------------------------------------------------------ histories


@dataclass(frozen=True)
class _Counter:
    side: int
    actions: frozenset[str]
    outcomes: frozenset[str] | None
    exclude: bool
    count: int
    period: n.Period

    def counts(self, action: str, outcome: str) -> bool:
        if action not in self.actions:
            return False
        return self.outcomes is None or (outcome in self.outcomes) != self.exclude

    def in_period(self, at: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> bool:
        if self.period.unit == "hours":
            return at > now - dt.timedelta(hours=self.period.amount)
        return period_end(at, self.period, zone) > now


def _counter(side: int, model: Model, rule: n.Limit | n.Quiet) -> _Counter:
    if isinstance(rule, n.Limit):
        counted = rule.counted or rule.targets
        outcomes = frozenset(rule.outcomes) if rule.outcomes is not None else None
        return _Counter(side, frozenset(model.expand(counted, with_events=True)), outcomes, rule.exclude,
                        rule.count, rule.period)
    return _Counter(side, frozenset(model.expand(rule.after, with_events=True)), frozenset(rule.outcomes), False,
                    1, rule.period)


def minimal_histories(counters: Sequence[_Counter], names: Sequence[str], outcomes: Sequence[str],
                      now: dt.datetime, zone: ZoneInfo, account_id: str, budget: int = HISTORY_BUDGET
                      ) -> tuple[list[list[Contact]], bool]:
    """The empty history and, for each cap or quiet period, every way of just
    reaching it with events that count for as few of the OTHER policy's caps
    as possible (caps only block more as events are added, so these are all
    the histories that can show a difference). True when some were cut off."""
    if not counters:
        return [[]], False
    cuts: set[dt.datetime] = {now}
    for counter in counters:
        if counter.period.unit == "hours":
            cut = now - dt.timedelta(hours=counter.period.amount)
        else:
            today = now.astimezone(zone).date()
            cut = local_midnight(zone, today - dt.timedelta(days=counter.period.amount - 1))
        cuts |= {cut - dt.timedelta(seconds=1), cut, cut + dt.timedelta(seconds=1)}
    ages = sorted((cut for cut in cuts if cut <= now), reverse=True)
    ages.append(min(ages) - dt.timedelta(days=2))
    action_classes: dict[tuple[bool, ...], str] = {}
    for name in names:
        action_classes.setdefault(tuple(name in c.actions for c in counters), name)
    outcome_classes: dict[tuple[bool, ...], str] = {}
    for outcome in (*outcomes, _OTHER_OUTCOME):
        outcome_classes.setdefault(tuple(c.outcomes is None or (outcome in c.outcomes) != c.exclude
                                         for c in counters), outcome)
    cells: dict[frozenset[int], tuple[str, str, dt.datetime]] = {}
    for action in action_classes.values():
        for outcome in outcome_classes.values():
            for at in ages:
                signature = frozenset(i for i, c in enumerate(counters)
                                      if c.counts(action, outcome) and c.in_period(at, now, zone))
                if signature:
                    cells.setdefault(signature, (action, outcome, at))
    found: list[list[Contact]] = [[]]
    seen: set[tuple[tuple[str, str, dt.datetime], ...]] = set()
    cut_off = False
    for index, counter in enumerate(counters):
        others = frozenset(i for i, c in enumerate(counters) if c.side != counter.side)
        mine = [(signature & others, cell) for signature, cell in cells.items() if index in signature]
        minimal: dict[frozenset[int], tuple[str, str, dt.datetime]] = {}
        for projection, cell in sorted(mine, key=lambda item: len(item[0])):
            if not any(kept <= projection for kept in minimal):
                minimal[projection] = cell
        made = 0
        for chosen in itertools.combinations_with_replacement(list(minimal.values()), counter.count):
            if made >= budget:
                cut_off = True
                break
            key = tuple(sorted(chosen, key=lambda cell: (cell[2], cell[0], cell[1])))
            if key in seen:
                continue
            seen.add(key)
            made += 1
            found.append([Contact(account_id, action, at, outcome) for action, outcome, at in key])
    return found, cut_off


def _aggregates(model: Model, expr: n.Expr) -> Iterator[tuple[n.History, Any]]:
    """(aggregate, constant) of each comparison of a history aggregate with a constant in `expr`,
    through the segments it reads."""
    for condition in [expr, *(s.condition for s in _segments_read(model, [expr]))]:
        for node in n.walk(condition):
            if isinstance(node, n.Compare):
                sides = (_literal(node.left), _literal(node.right))
                for history, constant in (sides, sides[::-1]):
                    if isinstance(history, n.History) and isinstance(constant, n.Literal) \
                            and isinstance(constant.value, (int, Decimal)) and not isinstance(constant.value, bool):
                        yield history, constant.value


def threshold_histories(model: Model, history: n.History, constant: Any, now: dt.datetime, zone: ZoneInfo,
                        account_id: str) -> list[list[Contact]]:
    """Histories that put `history` at constant-1, constant and constant+1 (and the empty one)."""
    actions = model.expand(history.targets, with_events=True)
    if not actions:
        return [[]]
    action = actions[0]
    listed = history.outcomes or ()
    passing = _OTHER_OUTCOME if history.outcomes is None or history.exclude else listed[0]
    failing = (listed[0] if history.exclude else _OTHER_OUTCOME) if history.outcomes is not None else None
    found: list[list[Contact]] = [[]]
    second = dt.timedelta(seconds=1)
    if history.kind in ("count", "streak"):
        for k in sorted({max(0, int(constant) + step) for step in (-1, 0, 1)}):
            if k == 0 or k > 12:
                continue
            events = [Contact(account_id, action, now - second * (i + 1), passing) for i in range(k)]
            if history.kind == "streak" and failing is not None:
                events.append(Contact(account_id, action, now - second * (k + 2), failing))
            found.append(events)
            if history.kind == "count" and history.period is not None:  # the same, just out of the period
                if history.period.unit == "hours":
                    edge = now - dt.timedelta(hours=history.period.amount)
                else:
                    today = now.astimezone(zone).date()
                    edge = local_midnight(zone, today - dt.timedelta(days=history.period.amount - 1))
                found.append([Contact(account_id, action, edge - second * (i + 1), passing) for i in range(k)])
    elif history.kind == "days_since_last":
        today = now.astimezone(zone).date()
        for days in sorted({max(0, int(constant) + step) for step in (-1, 0, 1)}):
            at = now - second if days == 0 else _instant_at(zone, today - dt.timedelta(days=days), 12 * 3600)
            found.append([Contact(account_id, action, min(at, now - second), passing)])
    else:
        for minutes in (-1, 0, 1):
            at = now - dt.timedelta(hours=float(constant)) + dt.timedelta(minutes=minutes)
            if at <= now:
                found.append([Contact(account_id, action, at, passing)])
    return found


# ------------------------------------------------------------ comparing decisions


_G_KINDS = frozenset({"not_allowed", "forbidden"})
_WH_KINDS = frozenset({"window", "limit", "quiet"})


def _factors(decision: Decision, action: str) -> tuple[bool, bool]:
    """(G, WH): whether admitted and not forbidden, whether no window, cap or quiet period blocks."""
    if decision.error is not None or (decision.actions is not None and action not in decision.actions):
        return False, False
    kinds = {entry.kind for entry in decision.blocked if entry.action == action}
    return not (kinds & _G_KINDS), not (kinds & _WH_KINDS)


def _parts(decision: Decision, action: str) -> tuple[bool, bool, bool]:
    """(G, W, H): admitted and not forbidden, no window closed, no cap or quiet period reached."""
    if decision.error is not None or (decision.actions is not None and action not in decision.actions):
        return False, False, False
    kinds = {entry.kind for entry in decision.blocked if entry.action == action}
    return not (kinds & _G_KINDS), "window" not in kinds, not (kinds & {"limit", "quiet"})


def _pair(decisions: tuple[Decision, Decision], action: str, part: int) -> tuple[bool, bool]:
    return _parts(decisions[0], action)[part], _parts(decisions[1], action)[part]


def _allowed(decision: Decision, action: str) -> bool:
    return action in decision.allowed


def _until(decision: Decision, action: str) -> dt.datetime | None:
    return next((entry.until for entry in decision.blocked if entry.action == action), None)


def _summary(decision: Decision) -> tuple[Any, ...]:
    """What two engines must agree on (reasons cite lines, so they are left out)."""
    untils = tuple(sorted((entry.action, entry.until or dt.datetime.min.replace(tzinfo=dt.UTC))
                          for entry in decision.blocked))
    return decision.error is not None, decision.stage, decision.segments, decision.allowed, tuple(sorted(set(untils)))


def other_difference(old: Decision, new: Decision) -> str | None:
    """How two decisions differ beyond which actions are allowed, or None."""
    if old.allowed == new.allowed and old.stage == new.stage and old.segments == new.segments \
            and old.error == new.error and [(b.action, b.until) for b in old.blocked] \
            == [(b.action, b.until) for b in new.blocked]:
        return None  # the usual case, made quick
    if (old.error is None) != (new.error is None):
        return f"error: OLD {old.error or 'none'}, NEW {new.error or 'none'}"
    if old.stage != new.stage:
        return f"stage: OLD {old.stage}, NEW {new.stage}"
    if old.segments != new.segments:
        return f"segments: OLD {', '.join(old.segments) or '(none)'}, NEW {', '.join(new.segments) or '(none)'}"
    if set(old.allowed) != set(new.allowed):
        return None  # which actions are allowed differs: reported per action
    if old.allowed != new.allowed:
        return f"priority order: OLD {', '.join(old.allowed)}, NEW {', '.join(new.allowed)}"
    both = {entry.action for entry in old.blocked} & {entry.action for entry in new.blocked}
    for action in dict.fromkeys(entry.action for entry in old.blocked if entry.action in both):
        before, after = _until(old, action), _until(new, action)
        if before != after:
            return f"{action} until: OLD {_instant(before)}, NEW {_instant(after)}"
    return None


def _instant(value: dt.datetime | None) -> str:
    return "never by time alone" if value is None else value.astimezone(dt.UTC).isoformat()


def _rule_ids(decision: Decision, action: str) -> str:
    if decision.actions is not None and action not in decision.actions:
        return "not declared"
    if decision.error is not None:
        return f"error: {decision.error}"
    if action in decision.allowed:
        info = decision.evidence.allowed_by.get(action)
        return info.id if info is not None else "allowed"
    return ", ".join(dict.fromkeys(entry.rule.id for entry in decision.blocked if entry.action == action))


def describe(action: str | None, old: Decision, new: Decision) -> str:
    if action is None:
        return other_difference(old, new) or "no difference"
    old_word = "allowed" if _allowed(old, action) else "blocked"
    new_word = "allowed" if _allowed(new, action) else "blocked"
    return (f"{action}: {old_word} by OLD ({_rule_ids(old, action)}), "
            f"{new_word} by NEW ({_rule_ids(new, action)})")


# ------------------------------------------------------------ the comparison


_Key = tuple[str | None, str]  # (action, direction: "loosens", "stricter" or the other difference's kind)


@dataclass
class _Point:
    account: dict[str, Any]
    history: list[Contact]
    now: dt.datetime


class _Comparison:
    def __init__(self, old: Policy, new: Policy, samples: int, seed: int) -> None:
        self.policies = (old, new)
        self.models = (old.model, new.model)
        self.samples = samples
        self.random = random.Random(seed)
        self.reads = _Reads(self.models)
        self.outside: dict[str, None] = dict(self.reads.outside)
        self.cache: dict[Any, tuple[Decision, Decision]] = {}
        self.cases = 0
        self.sampled = 0
        self.enumerating = False
        self.found: dict[_Key, _Point] = {}
        self.pools = {name: candidates(info) for name, info in self.reads.fields.items()}
        self.zone_field = next((m.zone_field for m in self.models if m.zone_field), None)
        self.stage_field, self.stage_values = stage_candidates(self.models)
        if self.stage_field is not None:  # conditions may compare the stage field too: split at both
            info = self.reads.fields[self.stage_field]
            kept: dict[tuple[Any, ...], int] = {}
            for value in sorted({*self.stage_values, *candidates(info)}, key=lambda v: (abs(v), v)):
                key = (*(_stage_name(m, value) for m in self.models), *(atom(value) for _, atom in info.atoms))
                kept.setdefault(key, value)
            self.stage_values = list(kept.values())
            self.pools[self.stage_field] = self.stage_values
        self.names = list(dict.fromkeys([*self.reads.action_names, *(e for m in self.models for e in m.events)]))
        self.outcomes = list(dict.fromkeys(o for m in self.models for o in m.outcomes))
        self.wh_cache: dict[Any, dict[tuple[bool, bool], _Point]] = {}
        self.special = {f for f in ("id", self.zone_field, self.stage_field) if f}
        if "id" in self.pools and not self.reads.fields["id"].atoms:
            self.pools["id"] = ["A1"]  # what the histories are filed under
        for model in self.models:  # a holiday calendar held in a field: known countries only
            for rule in model.restrictions:
                if isinstance(rule, n.Window) and isinstance(rule.holidays, n.Ref):
                    name = rule.holidays.name
                    literal = [str(r.holidays.value) for m in self.models for r in m.restrictions
                               if isinstance(r, n.Window) and isinstance(r.holidays, n.Literal)]
                    pool = [v for v in dict.fromkeys([*self.pools[name], *literal, "US", "CN"])
                            if isinstance(v, str) and known_country(v)]
                    self.pools[name] = pool
                    self.special.add(name)

    # -- evaluation
    def defaults(self) -> dict[str, Any]:
        return {name: pool[0] for name, pool in self.pools.items()}

    def evaluate(self, point: _Point) -> tuple[Decision, Decision]:
        key = (tuple(sorted((k, _hashable(v)) for k, v in point.account.items())), point.now,
               tuple((c.action, c.at, c.outcome) for c in point.history))
        found = self.cache.get(key)
        if found is None:
            if self.enumerating and self.cases >= CASE_BUDGET:
                raise _OverBudget
            self.cases += 1
            old, new = self.policies
            found = (old.evaluate(point.account, point.history, now=point.now),
                     new.evaluate(point.account, point.history, now=point.now))
            if len(self.cache) > 200_000:
                self.cache.clear()
            self.cache[key] = found
        return found

    def record(self, point: _Point, decisions: tuple[Decision, Decision], actions: Iterable[str]) -> None:
        old, new = decisions
        for action in actions:
            before, after = _allowed(old, action), _allowed(new, action)
            if before != after:
                self.found.setdefault((action, "loosens" if after else "stricter"), point)
        other = other_difference(old, new)
        if other is not None:
            self.found.setdefault((None, other.split(":", 1)[0]), point)

    # -- the exact part
    def zones(self, account: dict[str, Any]) -> tuple[ZoneInfo, ...]:
        if self.zone_field is None:
            return (ZoneInfo("UTC"),)
        return tuple(reader_for("zone")(account[self.zone_field]))

    def pool(self, name: str, owners: set[int]) -> list[Any]:
        """The candidates of a field for the conditions of `owners`."""
        if name in self.special:
            return self.pools[name]
        return candidates(self.reads.fields[name], owners)

    def run_action(self, action: str) -> None:
        base = self.defaults()
        for stage_value in self.stage_values:
            stages = [_stage_name(m, stage_value) if stage_value is not None else None for m in self.models]
            rules = _action_rules(self.models, action, self.reads, stages)
            if not rules.exact:
                self.exact = False
            fixed = {f for f in (self.stage_field, self.zone_field) if f}
            context_fields = sorted(rules.wh_fields - fixed)
            g_fields = sorted(rules.g_fields - set(context_fields) - fixed)
            g_pools = [self.pool(f, rules.g_owners) for f in g_fields]
            context_pools = [self.pool(f, rules.g_owners | rules.wh_owners) for f in context_fields]
            g_product = _product_size(g_pools)
            if g_product > FIELD_BUDGET:
                self.outside[f"{action} (stage {'/'.join(str(s) for s in dict.fromkeys(stages))}): {g_product} "
                             f"combinations of {', '.join(g_fields)} (over the budget of {FIELD_BUDGET}; "
                             "sampled)"] = None
                self.exact = False
            for context in itertools.product(*context_pools):
                account = dict(base)
                if self.stage_field is not None:
                    account[self.stage_field] = stage_value
                account.update(zip(context_fields, context, strict=True))
                zones = self.zones(account)
                first_now = _instant_at(zones[0], BASE_DATE + dt.timedelta(days=2), 12 * 3600)
                g_classes: dict[tuple[bool, bool], dict[str, Any]] = {}
                for values in self._field_product(g_pools, g_product):
                    point = _Point({**account, **dict(zip(g_fields, values, strict=True))}, [], first_now)
                    decisions = self.evaluate(point)
                    self.record(point, decisions, [action])
                    g = tuple(_factors(d, action)[0] for d in decisions)
                    g_classes.setdefault((g[0], g[1]), point.account)
                aggregates = [(model, found) for model, _, expr in rules.g_exprs
                              for found in _aggregates(model, expr)]
                if aggregates:  # outside the exact fragment: histories at each threshold, on top of sampling
                    self.aggregate_sweep(action, aggregates, list(g_classes.values()), g_pools, g_fields, first_now,
                                         zones[0])
                if set(g_classes) == {(False, False)}:
                    continue  # blocked whatever the time and history
                key = (tuple(id(rule) for _, rule in rules.windows), tuple(id(rule) for *_, rule in rules.counters),
                       tuple(zip(context_fields, map(_hashable, context), strict=True)), stage_value)
                wh_classes = self.wh_cache.get(key)
                if wh_classes is None:
                    wh_classes = self.wh_cache[key] = self.wh_classes(action, rules, account)
                self.combine(action, g_classes, wh_classes, rules.exact)

    def aggregate_sweep(self, action: str, aggregates: list[tuple[Model, tuple[n.History, Any]]],
                        accounts: list[dict[str, Any]], pools: list[list[Any]], names: list[str],
                        now: dt.datetime, zone: ZoneInfo) -> None:
        """The history aggregates of an action's conditions at c-1, c and c+1 of each constant c
        they are compared with, for a few accounts: not exact (the aggregates are in `outside`),
        but where a changed threshold shows first."""
        for _ in range(5):
            accounts.append({**accounts[0], **{name: self.random.choice(pool)
                                               for name, pool in zip(names, pools, strict=True)}})
        options = [threshold_histories(model, history, constant, now, zone, str(accounts[0].get("id", "")))
                   for model, (history, constant) in aggregates]
        for index, chosen in enumerate(itertools.product(*options)):
            if index >= 100:
                break
            events = sorted({c for part in chosen for c in part}, key=lambda c: c.at, reverse=True)
            for account in accounts:
                point = _Point(account, events, now)
                self.record(point, self.evaluate(point), [action])

    def run_segments(self) -> None:
        """Each segment over the fields it reads, in every stage: a segment that no rule reads still
        shows in decisions, so its change is a difference the actions' enumeration would not meet."""
        by_name: dict[str, list[tuple[Model, n.Segment]]] = {}
        for model in self.models:
            for segment in model.segments:
                by_name.setdefault(segment.name, []).append((model, segment))
        base = self.defaults()
        for name, versions in by_name.items():
            owners: set[int] = set()
            fields: set[str] = set()
            for model, segment in versions:
                owners |= {id(segment), *(id(s) for s in _segments_read(model, [segment.condition]))}
                fields |= _fields_read(model, [segment.condition])
            names = sorted(fields - {self.zone_field})
            pools = [self.pool(f, owners) for f in names]
            size = _product_size(pools)
            if size > FIELD_BUDGET:
                self.outside[f"segment {name}: {size} combinations of {', '.join(names)} (over the budget of "
                             f"{FIELD_BUDGET}; sampled)"] = None
                self.exact = False
            zones = self.zones(base)
            now = _instant_at(zones[0], BASE_DATE + dt.timedelta(days=2), 12 * 3600)
            for values in self._field_product(pools, size):
                point = _Point({**base, **dict(zip(names, values, strict=True))}, [], now)
                self.record(point, self.evaluate(point), ())

    def wh_classes(self, action: str, rules: _ActionRules, account: dict[str, Any]
                   ) -> dict[tuple[bool, bool], _Point]:
        """(WH of OLD, WH of NEW) -> a point with them. At each time of day, the windows are tried on
        every representative date with no history and the caps on the minimal histories of one date
        (they see the time of day, not the date), and the pairs found are joined."""
        counters = [_counter(side, model, rule) for side, model, rule in rules.counters]
        minutes = time_points(rules.windows, rules.counters)
        zone_pool: list[Any] = self.pools[self.zone_field] if self.zone_field else [None]
        found: dict[tuple[bool, bool], _Point] = {}
        country_values = [account[f] for f in rules.wh_fields if f in account]
        account_id = str(account.get("id", ""))
        for zone_value in zone_pool:
            if self.zone_field is not None:
                account = {**account, self.zone_field: zone_value}
            zone = self.zones(account)[0]
            days = representative_dates(rules.windows, _countries(rules.windows, country_values), zone)
            for seconds in minutes:
                windows: dict[tuple[bool, bool], dt.date] = {}
                for day in days:
                    point = _Point(dict(account), [], _instant_at(zone, day, seconds))
                    decisions = self.evaluate(point)
                    self.record(point, decisions, [action])
                    windows.setdefault(_pair(decisions, action, 1), day)
                now = _instant_at(zone, days[0], seconds)
                histories, cut_off = minimal_histories(counters, self.names, self.outcomes, now, zone, account_id)
                if cut_off:
                    self.outside[f"{action}: histories reaching its caps exceed {HISTORY_BUDGET} "
                                 "per cap (sampled)"] = None
                    self.exact = False
                caps: dict[tuple[bool, bool], int] = {}
                for index, history in enumerate(histories):
                    point = _Point(dict(account), history, now)
                    decisions = self.evaluate(point)
                    self.record(point, decisions, [action])
                    caps.setdefault(_pair(decisions, action, 2), index)
                for window, day in windows.items():
                    for cap, index in caps.items():
                        key = (window[0] and cap[0], window[1] and cap[1])
                        if key not in found:
                            joined = self.joined(action, account, zone, day, seconds, counters, index, window, cap)
                            if joined is not None:
                                found[key] = joined
        return found

    def joined(self, action: str, account: dict[str, Any], zone: ZoneInfo, day: dt.date, seconds: int,
               counters: list[_Counter], index: int, window: tuple[bool, bool], cap: tuple[bool, bool]
               ) -> _Point | None:
        """A point on `day` with the windows' pair `window` and the caps' pair `cap`: the history
        made the same way as the one that gave `cap` on the first date (or any other that does)."""
        now = _instant_at(zone, day, seconds)
        histories, _ = minimal_histories(counters, self.names, self.outcomes, now, zone, str(account.get("id", "")))
        order = [index, *(i for i in range(len(histories)) if i != index)] if index < len(histories) else []
        for trial in order:
            point = _Point(dict(account), histories[trial], now)
            decisions = self.evaluate(point)
            if _pair(decisions, action, 1) == window and _pair(decisions, action, 2) == cap:
                return point
        self.outside[f"{action}: caps on {day} at {seconds // 3600:02d}:{seconds % 3600 // 60:02d} not as on "
                     "the first date (sampled)"] = None
        self.exact = False
        return None

    def combine(self, action: str, g_classes: dict[tuple[bool, bool], dict[str, Any]],
                wh_classes: dict[tuple[bool, bool], _Point], exact: bool) -> None:
        """A difference of `G and WH` between the policies from a G class and a WH class."""
        for (g_old, g_new), g_account in g_classes.items():
            for (wh_old, wh_new), wh_point in wh_classes.items():
                before, after = g_old and wh_old, g_new and wh_new
                if before == after:
                    continue
                key = (action, "loosens" if after else "stricter")
                if key in self.found:
                    continue
                account = dict(g_account)
                if self.zone_field is not None:
                    account[self.zone_field] = wh_point.account[self.zone_field]
                point = _Point(account, wh_point.history, wh_point.now)
                decisions = self.evaluate(point)
                if _allowed(decisions[0], action) == before and _allowed(decisions[1], action) == after:
                    self.found[key] = point
                elif exact:
                    raise ReplayError(f"{action}: the factors G={g_old, g_new} and WH={wh_old, wh_new} did not "
                                      f"combine at {point}")

    def _field_product(self, pools: list[list[Any]], size: int) -> Iterator[tuple[Any, ...]]:
        if size <= FIELD_BUDGET:
            yield from itertools.product(*pools)
            return
        yield tuple(pool[0] for pool in pools)
        for _ in range(FIELD_BUDGET):
            yield tuple(self.random.choice(pool) for pool in pools)

    # -- sampling
    def sample(self) -> None:
        for _ in range(self.samples):
            point = self.random_point()
            self.sampled += 1
            self.record(point, self.evaluate(point), self.reads.action_names)

    def random_point(self) -> _Point:
        account: dict[str, Any] = {}
        for name, info in self.reads.fields.items():
            pool = self.pools[name]
            value = self.random.choice(pool)
            if info.kind == "int" and self.random.random() < 0.3:
                value = self.random.randint(-5, 200)
            elif info.kind in ("number", "money") and self.random.random() < 0.3:
                value = Decimal(self.random.randint(-100, 10_000)) / 100
            elif info.kind == "date" and self.random.random() < 0.5:
                value = BASE_DATE + dt.timedelta(days=self.random.randint(-800, 400))
            elif info.kind == "datetime" and self.random.random() < 0.5:
                value = dt.datetime(2026, 1, 5, tzinfo=dt.UTC) + dt.timedelta(
                    minutes=self.random.randint(-800 * 1440, 400 * 1440))
            elif info.kind == "zone" and self.random.random() < 0.3:  # the zones the enumeration leaves out
                value = self.random.choice(SAMPLED_ZONES)
            account[name] = value
        if self.stage_field is not None and self.random.random() < 0.7:
            account[self.stage_field] = self.random.choice(self.stage_values)
        zone = self.zones(account)[0]
        day = BASE_DATE + dt.timedelta(days=self.random.randint(-400, 400))
        seconds = self.random.randrange(0, 86400, 60) if self.random.random() < 0.5 else self.random.choice(
            [0, 8 * 3600, 9 * 3600, 20 * 3600, 21 * 3600, 12 * 3600])
        now = _instant_at(zone, day, seconds)
        history = []
        for _ in range(self.random.choice([0, 0, 1, 2, 3, 4, 6, 8])):
            age = dt.timedelta(minutes=self.random.randint(0, 9 * 1440))
            history.append(Contact(str(account.get("id", "")), self.random.choice(self.names), now - age,
                                   self.random.choice([*self.outcomes, _OTHER_OUTCOME])))
        return _Point(account, history, now)

    # -- minimal, replayed counterexamples
    def still(self, key: _Key, point: _Point) -> bool:
        try:
            old, new = self.evaluate(point)
        except Exception:  # a shrunk value the engines refuse as an argument
            return False
        action, kind = key
        if action is not None:
            return _allowed(old, action) != _allowed(new, action) and (_allowed(new, action) == (kind == "loosens"))
        other = other_difference(old, new)
        return other is not None and other.split(":", 1)[0] == kind

    def shrink(self, key: _Key, point: _Point) -> _Point:
        for name in list(point.account):
            for value in self.pools.get(name, [])[:8]:
                if _hashable(value) == _hashable(point.account[name]):
                    break
                trial = _Point({**point.account, name: value}, point.history, point.now)
                if self.still(key, trial):
                    point = trial
                    break
        index = 0
        while index < len(point.history):
            trial = _Point(point.account, point.history[:index] + point.history[index + 1:], point.now)
            if self.still(key, trial):
                point = trial
            else:
                index += 1
        return point

    def replay(self, key: _Key, point: _Point) -> Counterexample:
        compiled = [Policy(model).evaluate(point.account, point.history, now=point.now) for model in self.models]
        reference = [ReferencePolicy(model).evaluate(point.account, point.history, now=point.now)
                     for model in self.models]
        for fast, slow in zip(compiled, reference, strict=True):
            if _summary(fast) != _summary(slow):
                raise ReplayError(f"the engines disagree at {point}: {fast} / {slow}")
        old, new = compiled
        action, kind = key
        if action is not None:
            if _allowed(old, action) == _allowed(new, action):
                raise ReplayError(f"{action}: the difference did not reproduce at {point}")
        elif other_difference(old, new) is None:
            raise ReplayError(f"{kind}: the difference did not reproduce at {point}")
        return Counterexample(dict(point.account), list(point.history), point.now, old, new, action,
                              describe(action, old, new))

    def run(self) -> Verdict:
        self.exact = not self.outside
        self.enumerating = True
        try:
            for action in self.reads.action_names:
                self.run_action(action)
            self.run_segments()
        except _OverBudget:
            self.outside[f"the enumeration stopped at its budget of {CASE_BUDGET} cases (the rest sampled)"] = None
        self.enumerating = False
        cases = self.cases
        if self.outside:
            self.exact = False
            self.sample()
        # an action blocked until different instants is allowed by one policy only at the earlier of
        # them: where that shows as a difference of the action, its `until` adds nothing
        for key in list(self.found):
            subject, kind = key
            if subject is None and kind.endswith(" until") and any(
                    (kind[:-len(" until")], direction) in self.found for direction in ("loosens", "stricter")):
                del self.found[key]
        examples = [self.replay(key, self.shrink(key, point)) for key, point in self.found.items()]
        examples.sort(key=lambda e: (e.action is None, e.action or "", e.description))
        # which actions are allowed decides; stage, segments, order and `until` alone make "differs"
        kinds = {kind for action, kind in self.found if action is not None}
        outcome = {frozenset(): "differs" if self.found else "equivalent", frozenset({"loosens"}): "loosens",
                   frozenset({"stricter"}): "stricter"}.get(frozenset(kinds), "differs")
        return Verdict(outcome, examples, self.exact, list(self.outside), cases, self.sampled)


def _product_size(pools: Iterable[list[Any]]) -> int:
    size = 1
    for pool in pools:
        size *= len(pool)
    return size


def _hashable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(value, key=repr))
    if isinstance(value, list):
        return tuple(value)
    return value


def _instant_at(zone: ZoneInfo, day: dt.date, seconds: int) -> dt.datetime:
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
    return wall.replace(tzinfo=zone).astimezone(dt.UTC)


def compare(old: Policy, new: Policy, *, samples: int = 2000, seed: int = 0) -> Verdict:
    """Compare NEW with OLD: exactly over the finite part of their inputs, by sampling beyond it."""
    return _Comparison(old, new, samples, seed).run()
