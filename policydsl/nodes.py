"""The syntax tree of a policy file.

Every node is a frozen dataclass carrying the `Span` it came from, so that the
checker, the compiler and every explanation can point back at the policy line
that caused something. Nodes hold what was written, nothing derived: name
resolution and types belong to the checker, execution to the compiler.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, order=True)
class Span:
    """Where a node was written: 1-based line and column, inclusive start."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def location(self) -> str:
        """`file:line`, the form decisions use to cite a rule."""
        return f"{self.file}:{self.line}"


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal:
    """A constant. `kind` is its type name: int, number, money, text, bool,
    date, datetime, time, duration, enum (a bare member name)."""

    value: object
    kind: str
    span: Span


@dataclass(frozen=True)
class SetLiteral:
    elements: tuple[Literal, ...]
    span: Span


@dataclass(frozen=True)
class Ref:
    """A name: an account field or a segment."""

    name: str
    span: Span


@dataclass(frozen=True)
class ActionRef:
    """`action`: the name of the action being judged (only in allow/forbid)."""

    span: Span


@dataclass(frozen=True)
class NowRef:
    """`now`: the evaluation instant, an input, never the clock."""

    span: Span


@dataclass(frozen=True)
class Negate:
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Arithmetic:
    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Membership:
    """`item in container`, or `item not in container` when negated."""

    item: Expr
    container: Expr
    negated: bool
    span: Span


@dataclass(frozen=True)
class BoolOp:
    """`and` / `or` over two or more operands, evaluated left to right."""

    op: str
    operands: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Not:
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    """A call of one of the fixed library functions (see functions.py)."""

    name: str
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class History:
    """A history aggregate: what the account's contact history (events up to
    `now`) says about the events of `targets` whose outcome passes the
    filter (`outcomes`, or every outcome but those when `exclude`).

    `kind` is `count` (events in `period`: calendar days in the account's
    zone, today included, or rolling hours), `streak` (how many of the most
    recent events all pass the filter, counted back from the newest of
    `targets` to the first that does not), `days_since_last` (local calendar
    days since the newest passing event) or `hours_since_last` (elapsed
    hours since it). With no such event the last two are infinite, so every
    `>=` holds and every `<` fails: the functions are total."""

    kind: str
    targets: Targets
    outcomes: tuple[str, ...] | None
    exclude: bool
    period: Period | None
    span: Span
    text: str = ""  # as written, whitespace collapsed: how explanations name it


Expr = (
    Literal | SetLiteral | Ref | ActionRef | NowRef | Negate | Arithmetic | Compare
    | Membership | BoolOp | Not | Call | History
)


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of an expression, the expression first, operands in the
    order written: the one traversal the compiler, lints and coverage share."""
    yield expr
    for name in ("operand", "left", "right", "item", "container"):
        child = getattr(expr, name, None)
        if child is not None:
            yield from walk(child)
    for child in (*getattr(expr, "operands", ()), *getattr(expr, "args", ())):
        yield from walk(child)


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Header:
    name: str
    version: str
    span: Span


@dataclass(frozen=True)
class ActionMapping:
    """`call = agent_call, ivr` inside `include ... with { }`."""

    name: str
    targets: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Include:
    """`include "path" [with { ... }] [when condition]`: with a condition, the
    baseline's restrictions apply only to the accounts for which it holds."""

    path: str
    mappings: tuple[ActionMapping, ...]
    span: Span
    condition: Expr | None = None


@dataclass(frozen=True)
class FieldType:
    """`kind` is one of int, number, money, bool, text, date, datetime, zone,
    set (of `element`), enum (of `members`)."""

    kind: str
    span: Span
    element: str | None = None
    members: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "set":
            return f"set<{self.element}>"
        if self.kind == "enum":
            return f"enum({', '.join(self.members)})"
        return self.kind


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    default: Literal | SetLiteral | None
    span: Span


@dataclass(frozen=True)
class ActionGroup:
    """An `actions` line: `group: a, b` declares a group, `a, b` (group None)
    declares plain actions."""

    group: str | None
    members: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Events:
    """History-only action names (e.g. `inbound_call`): they may be counted
    by limits and quiet periods but are never decided."""

    names: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Outcomes:
    """`outcomes { conversation, no_answer }`: the history outcomes a policy
    knows. Once declared, a rule naming any other outcome is an error, and
    history naming one is reported rather than silently never matched."""

    names: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class StageRange:
    """An inclusive range of the stage field; None is an open end."""

    name: str
    low: int | None
    high: int | None
    span: Span

    def describe(self) -> str:
        low = "" if self.low is None else f"{self.low} "
        high = "" if self.high is None else f" {self.high}"
        return f"{low}..{high}"


@dataclass(frozen=True)
class Stages:
    field: str
    ranges: tuple[StageRange, ...]
    span: Span


@dataclass(frozen=True)
class Segment:
    name: str
    condition: Expr
    span: Span


# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class Targets:
    """The actions a rule is about: `all`, or names of actions and groups."""

    all: bool
    names: tuple[str, ...]
    span: Span

    def __str__(self) -> str:
        return "all" if self.all else ", ".join(self.names)


@dataclass(frozen=True)
class Reason:
    because: str | None
    cite: str | None


@dataclass(frozen=True)
class Allow:
    targets: Targets
    condition: Expr | None
    span: Span
    text: str
    stage: str | None = None
    name: str | None = None  # `name: rule`, the rule's stable id


@dataclass(frozen=True)
class Forbid:
    targets: Targets
    condition: Expr | None
    reason: Reason
    span: Span
    text: str
    stage: str | None = None
    # Conditions on the account that must all hold for the rule to exist:
    # those of the conditional includes it came through (outermost first).
    applies: tuple[Expr, ...] = ()
    name: str | None = None  # `name: rule`, the rule's stable id


@dataclass(frozen=True)
class TimeRange:
    """Local time of day, in seconds after midnight, start inclusive, end
    exclusive (`24:00` is allowed as an end)."""

    start: int
    end: int
    span: Span

    def __str__(self) -> str:
        return f"{hhmm(self.start)}-{hhmm(self.end)}"


def hhmm(seconds: int) -> str:
    """A time of day as the language writes it: `08:00` (`24:00` for the end of the day)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@dataclass(frozen=True)
class DaySpec:
    """One entry of `on mon..fri, sun`: a day name or an inclusive span."""

    first: str
    last: str
    span: Span

    def weekdays(self) -> tuple[int, ...]:
        """The days it covers, Monday 0: a span that passes Sunday wraps
        round (`fri..mon` is fri, sat, sun, mon), as the engines read it."""
        first, last = WEEKDAYS.index(self.first), WEEKDAYS.index(self.last)
        return tuple((first + step) % 7 for step in range((last - first) % 7 + 1))


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class DayHours:
    """One line of a window's hours table: the days it names and the ranges
    open on them (none: closed). Lines naming the same day add up."""

    days: tuple[DaySpec, ...]
    ranges: tuple[TimeRange, ...]
    span: Span


@dataclass(frozen=True)
class Window:
    """Contact hours. The one-line form has `ranges` on `days` (none: every
    day); the table form (`window sms { mon..fri 08:00-21:00 ... }`) has
    `table` instead, and no `ranges` or `days`. On a public holiday of the
    `holidays` calendar the hours are `holiday_ranges` (none: closed)."""

    targets: Targets
    ranges: tuple[TimeRange, ...]
    days: tuple[DaySpec, ...]
    holidays: Literal | Ref | None
    reason: Reason
    span: Span
    text: str
    stage: str | None = None
    # The rule's own `when`, after those of the conditional includes it
    # came through (outermost first): all must hold for the window to exist.
    applies: tuple[Expr, ...] = ()
    table: tuple[DayHours, ...] = ()
    holiday_ranges: tuple[TimeRange, ...] = ()
    name: str | None = None  # `name: rule`, the rule's stable id


@dataclass(frozen=True)
class Period:
    amount: int
    unit: str  # "days" or "hours"

    def __str__(self) -> str:
        unit = self.unit[:-1] if self.amount == 1 else self.unit
        return f"{self.amount} {unit}"


@dataclass(frozen=True)
class Limit:
    """At most `count` contacts per `period`. `counted` (default: the
    targets) says which history actions count; `outcomes` with `exclude`
    filters them by outcome."""

    targets: Targets
    count: int
    period: Period
    counted: Targets | None
    outcomes: tuple[str, ...] | None
    exclude: bool
    reason: Reason
    span: Span
    text: str
    stage: str | None = None
    applies: tuple[Expr, ...] = ()  # as for Window
    name: str | None = None  # `name: rule`, the rule's stable id


@dataclass(frozen=True)
class Quiet:
    """No `targets` for `period` after a history event whose outcome is one of
    `outcomes` on one of the `after` actions."""

    targets: Targets
    period: Period
    outcomes: tuple[str, ...]
    after: Targets
    reason: Reason
    span: Span
    text: str
    stage: str | None = None
    applies: tuple[Expr, ...] = ()  # as for Window
    name: str | None = None  # `name: rule`, the rule's stable id


Rule = Allow | Forbid | Window | Limit | Quiet
Restriction = Forbid | Window | Limit | Quiet


@dataclass(frozen=True)
class StageBlock:
    name: str
    rules: tuple[Rule, ...]
    span: Span


@dataclass(frozen=True)
class ExperimentGroup:
    """One group of an experiment: its share of accounts in percent (None:
    the rest, every account no other group of the experiment takes)."""

    name: str
    share: Decimal | None
    span: Span


@dataclass(frozen=True)
class Experiment:
    """`experiment NAME salt "..." { group 10%, ..., group rest }`: test
    groups by a stable hash of the account id (`policydsl.experiments`)."""

    name: str
    salt: str
    groups: tuple[ExperimentGroup, ...]
    span: Span


@dataclass(frozen=True)
class PolicyFile:
    """One parsed `.policy` file, before includes are merged."""

    path: str
    source: str
    header: Header
    includes: tuple[Include, ...] = ()
    fields: tuple[Field, ...] = ()
    actions: tuple[ActionGroup, ...] = ()
    events: tuple[Events, ...] = ()
    stages: tuple[Stages, ...] = ()
    segments: tuple[Segment, ...] = ()
    stage_blocks: tuple[StageBlock, ...] = ()
    rules: tuple[Rule, ...] = ()  # top level: apply in every stage
    included: tuple[PolicyFile, ...] = field(default=(), compare=False)
    outcomes: tuple[Outcomes, ...] = ()
    experiments: tuple[Experiment, ...] = ()

