"""Model to executable `Policy`: everything decided once, ahead of time.

Expressions become closures; for every stage, the compiler works out per
action which allow entries, forbids, windows, caps and quiet periods apply,
so evaluating an account never walks the syntax tree or resolves a name.
Precedence is structural, not positional: an action is allowed only when an
allow entry admits it and no forbid, window, cap or quiet period blocks it,
whatever order the rules were written in.
"""

from __future__ import annotations

import datetime as dt
import linecache
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from . import nodes as n
from .calendars import is_holiday, known_country
from .clock import (
    CYCLE,
    WindowSpec,
    calendar_day_cap_free_at,
    describe_hours,
    first_common_opening,
    next_allowed,
    not_before,
    period_end,
    rolling_cap_free_at,
    window_spec,
)
from .codegen import Generator, Trace
from .decision import Blocked, Contact, Decision, Evidence, HistoryFact, RuleInfo
from .engine import Engine
from .errors import AccountError
from .functions import Clock, divide
from .model import Model
from .timeline import Search, Timing, timing
from .values import ValueProblem, default_value, reader_for

_MISSING = object()
_FACTS_KEPT = 4096  # per-zone and per-instant facts kept between accounts (clocks, window messages)
_UTC_ZONE = ZoneInfo("UTC")


class _Context:
    """The state at one instant that the `until` search evaluates the
    generated functions in (the account's values, clock, history view and
    segments)."""

    __slots__ = ("clock", "history", "segments", "values")

    def __init__(self, values: dict[str, Any], clock: Clock, history: _HistoryView, segments: dict[str, bool]
                 ) -> None:
        self.values = values
        self.clock = clock
        self.history = history
        self.segments = segments


class _Side:
    """A side of a comparison that reads time, as the `until` search calls
    it (timeline.Side); bound to its generated function once compiled."""

    __slots__ = ("function", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.function: Callable[..., Any] | None = None

    def __call__(self, ctx: _Context) -> Any:
        assert self.function is not None
        return self.function(ctx.values, ctx.clock, ctx.history, ctx.segments)


_INFINITE = Decimal("Infinity")


class _HistoryView:
    """The account's history as aggregates see it at one instant: its events
    up to `now`, newest first, the account's (first) zone for calendar days,
    and how a target list expands. Each aggregate is computed once, and what
    it found is kept for the explanation (`facts`, by the aggregate's text)."""

    __slots__ = ("clock", "events", "expand", "facts", "found", "zone")

    def __init__(self, events: list[Contact], zone: ZoneInfo, clock: Clock,
                 expand: Callable[[n.Targets], frozenset[str]]) -> None:
        self.events = events
        self.zone = zone
        self.clock = clock
        self.expand = expand
        self.found: dict[int, HistoryFact] = {}
        self.facts: dict[str, HistoryFact] = {}

    def value(self, expr: n.History) -> Any:
        fact = self.found.get(id(expr))
        if fact is None:
            fact = self.found[id(expr)] = self.facts[expr.text] = self._aggregate(expr)
        return fact.value

    def _aggregate(self, expr: n.History) -> HistoryFact:
        actions = self.expand(expr.targets)
        mine = [event for event in self.events if event.action in actions]
        outcomes = frozenset(expr.outcomes) if expr.outcomes is not None else None

        def passes(event: Contact) -> bool:
            return outcomes is None or (event.outcome in outcomes) != expr.exclude

        if expr.kind == "streak":
            streak = []
            for event in mine:
                if not passes(event):
                    break
                streak.append(event)
            return HistoryFact(len(streak), tuple(streak))
        if expr.kind == "count":
            assert expr.period is not None
            counted = tuple(event for event in mine if passes(event) and self._in_period(event, expr.period))
            return HistoryFact(len(counted), counted)
        last = next((event for event in mine if passes(event)), None)
        if last is None:
            return HistoryFact(_INFINITE, ())
        if expr.kind == "days_since_last":
            return HistoryFact((self.clock.today - last.at.astimezone(self.zone).date()).days, (last,))
        return HistoryFact(divide((self.clock.now - last.at) // dt.timedelta(microseconds=1), 3_600_000_000),
                           (last,))

    def _in_period(self, event: Contact, period: n.Period) -> bool:
        if period.unit == "hours":
            return event.at > self.clock.now - dt.timedelta(hours=period.amount)
        return event.at.astimezone(self.zone).date() > self.clock.today - dt.timedelta(days=period.amount)


def names_read(expr: n.Expr | None) -> tuple[str, ...]:
    """Fields and segments an expression reads, in order of first use."""
    if expr is None:
        return ()
    return tuple(dict.fromkeys(node.name if isinstance(node, n.Ref) else node.text for node in n.walk(expr)
                               if isinstance(node, (n.Ref, n.History))))


# ------------------------------------------------------------ compiled rules


@dataclass(frozen=True)
class _Condition:
    """A `when` (with, for a rule from a conditional include, the include's
    conditions before it): it holds when all `tests` do (none: always). One
    that does not read `action` has one value per account, which the
    generated code computes once."""

    tests: tuple[n.Expr, ...]
    info: RuleInfo
    reads_action: bool = False
    message: str = ""  # a forbid's reason, built once
    key: int = 0  # id() of its rule's node: what a traced evaluation reports as having decided (coverage)


@dataclass(frozen=True)
class _Window:
    spec: WindowSpec
    country: str | None  # a fixed country code
    country_field: str | None  # or the account field holding one
    info: RuleInfo
    applies: _Condition | None = None  # the window exists only where this holds
    scope: str = ""  # " (applies where ...)" in its messages
    key: int = 0  # id() of its rule's node (coverage)


@dataclass(frozen=True)
class _Counter:
    """A cap (`limit`) or a quiet period: both count history events."""

    kind: str  # "limit" or "quiet"
    actions: frozenset[str]
    outcomes: frozenset[str] | None
    exclude: bool
    count: int
    period: n.Period
    info: RuleInfo
    label: str  # what the rule is about, for messages
    applies: _Condition | None = None  # the cap or quiet period exists only where this holds
    scope: str = ""  # " (applies where ...)" in its messages
    key: int = 0  # id() of its rule's node (coverage)


@dataclass
class _ActionPlan:
    """Everything that decides one action in one stage."""

    allows: list[tuple[int, _Condition]] = field(default_factory=list)  # (priority, condition)
    forbids: list[tuple[_Condition, Blocked]] = field(default_factory=list)  # with the entry it gives
    windows: list[_Window] = field(default_factory=list)
    counters: list[_Counter] = field(default_factory=list)
    not_allowed: Blocked | None = None  # the entry when no allow admits the action
    timing: Timing | None = None  # how time alone can change its conditions (None: it cannot)
    admits: Callable[..., bool] | None = None  # generated: allowed by its conditions at a context (with timing)


# (kind, message, rule): a reason before its `until` is known
_Reason = tuple[str, str, RuleInfo]


@dataclass(frozen=True)
class _Stage:
    name: str | None
    low: int | None
    high: int | None
    info: RuleInfo | None
    key: int = 0  # id() of its node (coverage)


class Policy(Engine):
    """A compiled policy: its plans and the generated module. Free of I/O,
    and one instance may serve many threads: its only mutable state is
    bounded caches of facts that depend on the zone and the instant alone
    (local clocks, window messages), where a lost or repeated entry changes
    nothing but time.

    With `trace=True` the generated code also records what decided what
    (`trace()`, for `policy test --coverage`): the same evaluator, observed,
    never a second implementation. A tracing instance is for one thread."""

    def __init__(self, model: Model, *, trace: bool = False) -> None:
        super().__init__(model)
        self.tracing = trace
        self._current: Trace | None = None
        self._fields = model.fields
        self._schema = [self._field_reader(f) for f in model.fields.values()]
        self._stages = [_Stage(s.name, s.low, s.high, model.info(s, f"{s.name} {s.describe()}",
                                                                 (model.stage_field or "",)), id(s))
                        for s in model.stages]
        self._no_stage = self._no_stage_info(model)
        self._segment_names = tuple(s.name for s in model.segments)
        self._expanded: dict[n.Targets, frozenset[str]] = {}
        self._segment_infos = {s.name: model.info(s, model.source_text(s.span), names_read(s.condition))
                               for s in model.segments}
        stage_names: list[str | None] = [s.name for s in model.stages] or [None]
        if model.stages:
            stage_names.append(None)  # accounts outside every stage
        self._generator = Generator(model.fields, f"{self.name} {self.version} ({model.policy.path})",
                                    lambda span: f"{model.cited_path(span.file)}:{span.line}", trace)
        self._sides: list[_Side] = []
        self._plans = {stage: self._plan(stage) for stage in stage_names}
        self._clocks: dict[tuple[ZoneInfo, dt.datetime], Clock] = {}
        self._window_states: dict[tuple[int, tuple[ZoneInfo, ...], str | None, dt.datetime], str] = {}
        self._compile()

    # -- compile time
    def _field_reader(self, fld: n.Field) -> tuple[str, Callable[[Any], Any], Any, str]:
        read = reader_for(fld.type.kind, fld.type.element, fld.type.members)
        default: Any = _MISSING
        if fld.default is not None:
            default = read(default_value(fld.default))
        return fld.name, read, default, str(fld.type)

    @staticmethod
    def _no_stage_info(model: Model) -> RuleInfo:
        policy = model.policy
        if policy.stages:
            block = policy.stages[0]
            return model.info(block, f"stages on {block.field}", (block.field,))
        return model.info(policy.header, model.cited_path(policy.header.span.file))

    def _plan(self, stage: str | None) -> dict[str, _ActionPlan]:
        model = self.model
        plans = {action: _ActionPlan() for action in model.actions}
        priority = 0
        for allow in model.allows:
            if allow.stage is not None and allow.stage != stage:
                continue
            condition = _Condition(() if allow.condition is None else (allow.condition,),
                                   model.info(allow, reads=names_read(allow.condition)), _reads_action(allow.condition),
                                   key=id(allow))
            for action in model.expand_in_order(allow.targets):
                plans[action].allows.append((priority, condition))
                priority += 1
        for rule in model.restrictions:
            if rule.stage is not None and rule.stage != stage:
                continue
            compiled = self._restriction(rule)
            for action in model.expand(rule.targets):
                plan = plans[action]
                if isinstance(compiled, _Window):
                    plan.windows.append(compiled)
                elif isinstance(compiled, _Counter):
                    plan.counters.append(compiled)
                else:
                    plan.forbids.append((compiled, Blocked(action, "forbidden", compiled.message, compiled.info)))
        stage_of = {s.name: s for s in self._stages}
        where = stage_of.get(stage) if self._stages else _Stage(None, None, None, None)
        for action, plan in plans.items():
            plan.not_allowed = Blocked(action, *self._not_allowed(action, plan, where))
            plan.timing = timing(self._conditions_of(action, stage),
                                 lambda side, action=action: self._side(side, action))  # type: ignore[misc]
        return plans

    def _conditions_of(self, action: str, stage: str | None) -> list[n.Expr]:
        """The conditions that decide `action` in `stage` (its allows' and
        forbids') and those of the segments they read, however indirectly."""
        model = self.model
        found = [rule.condition for rule in [*model.allows, *model.restrictions]
                 if isinstance(rule, (n.Allow, n.Forbid)) and rule.condition is not None
                 and (rule.stage is None or rule.stage == stage) and action in model.expand(rule.targets)]
        segments = {segment.name: segment.condition for segment in model.segments}
        index = 0
        while index < len(found):
            for node in n.walk(found[index]):
                if isinstance(node, n.Ref) and node.name in segments:
                    found.append(segments.pop(node.name))
            index += 1
        return found

    def _history_actions(self, targets: n.Targets) -> frozenset[str]:
        """The actions and events a history aggregate counts (cached: the
        same few target lists are expanded for every account)."""
        found = self._expanded.get(targets)
        if found is None:
            found = self._expanded[targets] = frozenset(self.model.expand(targets, with_events=True))
        return found

    def _restriction(self, rule: n.Restriction) -> _Condition | _Window | _Counter:
        model = self.model
        scope = _scope_text(model.applies_text(rule))
        applies_reads = tuple(name for condition in rule.applies for name in names_read(condition))
        if isinstance(rule, n.Forbid):
            # from a conditional include, the forbid exists only where the include's conditions hold
            tests = (*rule.applies, *(() if rule.condition is None else (rule.condition,)))
            info = model.info(rule, reads=tuple(dict.fromkeys((*applies_reads, *names_read(rule.condition)))))
            return _Condition(tests, info, _reads_action(rule.condition), _with_reason("forbidden" + scope, info),
                              id(rule))
        applies = None
        if rule.applies:
            applies = _Condition(tuple(rule.applies), model.info(rule), key=id(rule))
        if isinstance(rule, n.Window):
            country = rule.holidays.value if isinstance(rule.holidays, n.Literal) else None
            country_field = rule.holidays.name if isinstance(rule.holidays, n.Ref) else None
            reads = tuple(dict.fromkeys(name for name in (*applies_reads, model.zone_field, country_field) if name))
            return _Window(window_spec(rule), country, country_field,  # type: ignore[arg-type]
                           model.info(rule, reads=reads), applies, scope, id(rule))
        if isinstance(rule, n.Limit):
            counted = rule.counted or rule.targets
            return _Counter("limit", frozenset(model.expand(counted, with_events=True)),
                            frozenset(rule.outcomes) if rule.outcomes is not None else None, rule.exclude,
                            rule.count, rule.period, model.info(rule, reads=applies_reads), str(rule.targets),
                            applies, scope, id(rule))
        return _Counter("quiet", frozenset(model.expand(rule.after, with_events=True)), frozenset(rule.outcomes),
                        False, 1, rule.period, model.info(rule, reads=applies_reads), "/".join(rule.outcomes),
                        applies, scope, id(rule))

    def required_fields(self) -> set[str]:
        """Fields an input must carry: those without a default."""
        return {name for name, _, default, _ in self._schema if default is _MISSING}

    # -- evaluation
    def read_account(self, account: Mapping[str, Any]) -> dict[str, Any]:
        """Typed values of an account, defaults filled in; raises
        AccountError naming the first field that does not fit."""
        values: dict[str, Any] = {}
        for name, read, default, type_name in self._schema:
            raw = account.get(name)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if default is _MISSING:
                    raise AccountError(name, None, f"a value ({type_name}); the field has no default")
                values[name] = default
                continue
            try:
                values[name] = read(raw)
            except ValueProblem as problem:
                raise AccountError(name, raw, str(problem)) from None
        return values

    def _side(self, expr: n.Expr, action: str) -> _Side:
        side = _Side(self._generator.side(expr, action))
        self._sides.append(side)
        return side

    def _compile(self) -> None:
        """Generate and compile the module: segments, one function per stage,
        and what the `until` search of a time-dependent action calls."""
        generator = self._generator
        generator.segments(self.model.segments)
        names = {stage: generator.stage(index, stage, plans)
                 for index, (stage, plans) in enumerate(self._plans.items())}
        timed = [(action, plan) for plans in self._plans.values() for action, plan in plans.items() if plan.timing]
        admits = [generator.admits(index, action, plan) for index, (action, plan) in enumerate(timed)]
        self.module = generator.compile({"_window": self._window_state, "_counter": _counter_block,
                                         "_finish": self._finish})
        functions = self.module.functions
        self._segments_of = functions["segments"]
        self._stage_code = {stage: functions[name] for stage, name in names.items()}
        for (_, plan), name in zip(timed, admits, strict=True):
            plan.admits = functions[name]
        for side in self._sides:
            side.function = functions[side.name]
        # the module's source stays readable in tracebacks while this policy lives
        weakref.finalize(self, linecache.cache.pop, self.module.filename, None)

    def decide(self, values: dict[str, Any], history: Iterable[Contact], now: dt.datetime) -> Decision:
        zones: tuple[ZoneInfo, ...] = values[self.zone_field] if self.zone_field else (_UTC_ZONE,)
        # Instants in UTC: with the same ZoneInfo on both sides Python adds and subtracts wall-clock
        # time, so `now - 24 hours` on a DST day would not be 24 elapsed hours.
        now = now.astimezone(dt.UTC)
        events = sorted((c for c in history if c.at <= now), key=_time_of, reverse=True)
        traced = (self._current,) if self.tracing else ()
        ctx = self._context(values, events, zones[0], now, traced)
        stage = self._stage_of(values)
        if traced and stage is not None and stage.key:
            self._current.fired.add(stage.key)  # type: ignore[union-attr]
        allowed, allowed_by, blocked = self._stage_code[stage.name if stage else None](
            values, ctx.clock, ctx.history, ctx.segments, zones, events, {}, *traced)
        evidence = Evidence(values, stage.info if stage else self._no_stage, self.stage_field, allowed_by,
                            self._segment_infos, dict(ctx.history.facts))
        return Decision(str(values["id"]) if "id" in values else None, stage.name if stage else None,
                        tuple(name for name in self._segment_names if ctx.segments[name]),
                        tuple(action for _, action in sorted(allowed)), tuple(blocked),
                        None, evidence, self.actions, now, self.provenance)

    def _clock(self, zone: ZoneInfo, now: dt.datetime) -> Clock:
        """Local date and time of day at `now` in `zone`: the same for every
        account of a run in that zone, so kept (a bounded cache)."""
        key = (zone, now)
        clock = self._clocks.get(key)
        if clock is None:
            if len(self._clocks) >= _FACTS_KEPT:
                self._clocks.clear()
            clock = self._clocks[key] = Clock(now, now.astimezone(zone))
        return clock

    def trace(self, account: Mapping[str, Any], history: Iterable[Contact] = (), *, now: dt.datetime
              ) -> tuple[Decision, Trace]:
        """`evaluate`, and what decided what (a tracing instance only). An
        error decision keeps what was evaluated before the error."""
        if not self.tracing:
            raise ValueError("trace() needs a Policy compiled with trace=True")
        self._current = trace = Trace()
        try:
            return self.evaluate(account, history, now=now), trace
        finally:
            self._current = None

    def _context(self, values: dict[str, Any], events: list[Contact], zone: ZoneInfo, now: dt.datetime,
                 traced: tuple[Trace | None, ...] = ()) -> _Context:
        """What the generated code reads at instant `now`, segments decided
        (recorded into `traced` when given: the instant decided, not the
        instants the `until` search tries)."""
        clock = self._clock(zone, now)
        history = _HistoryView(events, zone, clock, self._history_actions)
        if self.tracing and not traced:
            traced = (None,)
        return _Context(values, clock, history, self._segments_of(values, clock, history, *traced))

    def _finish(self, plan: _ActionPlan, action: str, reasons: list[Blocked | _Reason], untimed: bool,
                windows: list[tuple[_Window, str | None]], frees: list[dt.datetime], values: dict[str, Any],
                events: list[Contact], zones: tuple[ZoneInfo, ...], now: dt.datetime,
                contexts: dict[dt.datetime, _Context]) -> list[Blocked]:
        """The entries of a blocked action with a window, cap, quiet period
        or time-dependent condition: with their `until`, unless a reason
        beyond time (not admitted, forbidden) holds and time cannot change it.
        `contexts`: this account's states at the instants its `until`
        searches have tried, which the searches of its other actions reuse."""
        if untimed and plan.timing is None:  # time alone cannot lift it: until is null, fixed entries reused
            return [r if isinstance(r, Blocked) else Blocked(action, *r) for r in reasons]
        until = self._until(plan, now, zones, windows, frees, values, events, contexts)
        # each entry built directly (dataclasses.replace cost a tenth of an e-commerce decision)
        return [Blocked(r.action, r.kind, r.reason, r.rule, until) if isinstance(r, Blocked)
                else Blocked(action, *r, until) for r in reasons]

    def _until(self, plan: _ActionPlan, now: dt.datetime, zones: tuple[ZoneInfo, ...],
               windows: list[tuple[_Window, str | None]], frees: list[dt.datetime], values: dict[str, Any],
               events: list[Contact], contexts: dict[dt.datetime, _Context]) -> dt.datetime | None:
        """The first instant at which time alone lets the action through: every
        window open in every zone, every cap and quiet period over, and its
        conditions (when they read time) allowing it. Searched up to one
        CYCLE past the last instant at which a non-periodic term changes."""
        constraints: list[Callable[[dt.datetime], dt.datetime | None]] = []
        settled = max([now, *frees])
        if plan.timing is not None:
            admits = plan.admits
            assert admits is not None

            def context(instant: dt.datetime) -> _Context:
                found = contexts.get(instant)
                if found is None:
                    found = contexts[instant] = self._context(values, events, zones[0], instant)
                return found

            search = Search(plan.timing, now, zones[0], events, self._history_actions, context,
                            lambda ctx: admits(ctx.values, ctx.clock, ctx.history, ctx.segments))
            settled = max(settled, search.settled)
            constraints.append(lambda instant: search.first_allowed(instant, end))
        end = settled + CYCLE
        specs = tuple((window.spec, zone, country) for window, country in windows for zone in zones)
        if not constraints and not frees:  # windows alone: their first common opening (kept per zones and instant)
            return first_common_opening(specs, now, end) if specs else now
        if specs:
            constraints.append(lambda instant: first_common_opening(specs, instant, end))
        if frees:
            constraints.append(not_before(max(frees)))
        return next_allowed(now, constraints, end)

    def _stage_of(self, values: dict[str, Any]) -> _Stage | None:
        if not self._stages:
            return _Stage(None, None, None, None)
        value = values[self.stage_field]  # type: ignore[index]
        for stage in self._stages:
            if (stage.low is None or value >= stage.low) and (stage.high is None or value <= stage.high):
                return stage
        return None

    def _window_state(self, window: _Window, values: dict[str, Any], zones: tuple[ZoneInfo, ...],
                      now: dt.datetime) -> tuple[str | None, str]:
        """(holiday country, message) of a window: the message is empty when
        the window is open now in every zone. The message depends only on the
        zones, the country and the instant, so it is kept for the accounts
        that share them (a bounded cache)."""
        country = window.country  # a code written in the policy: the checker has proved it (E115)
        if window.country_field is not None:
            country = values[window.country_field]
            if country is not None and not known_country(str(country)):
                raise AccountError(window.country_field, country,
                                   "a country code with a holiday calendar, such as CN or US")
        key = (id(window), zones, country, now)
        message = self._window_states.get(key)
        if message is None:
            outside = [zone for zone in zones if not window.spec.inside(now, zone, country)]
            message = self._window_message(window, outside, now, country) if outside else ""
            if len(self._window_states) >= _FACTS_KEPT:
                self._window_states.clear()
            self._window_states[key] = message
        return country, message

    def _not_allowed(self, action: str, plan: _ActionPlan, stage: _Stage | None) -> _Reason:
        """Why no allow admits `action` in `stage`: fixed per stage, so worded
        at compile time."""
        if plan.allows:
            info = plan.allows[0][1].info
            condition_text = info.text.split(" when ", 1)[-1]
            return "not_allowed", f"{action} is allowed only when {condition_text}", info
        if stage is None:
            return ("not_allowed", f"{self.stage_field} is in no stage, and no rule outside the stage blocks "
                    f"allows {action}", self._no_stage)
        if stage.name is None or stage.info is None:
            return "not_allowed", f"no rule allows {action}", self._no_stage
        return ("not_allowed", f"{action} is not allowed in stage {stage.name} ({self.stage_field} "
                f"{stage.info.text.split(' ', 1)[1]})", stage.info)

    def _window_message(self, window: _Window, outside: list[ZoneInfo], now: dt.datetime,
                        country: str | None) -> str:
        spec = window.spec
        places = []
        for zone in outside:
            local = now.astimezone(zone)
            usual = spec.by_day[local.weekday()]  # a holiday is worth saying where it changes the hours
            holiday = country and usual != spec.holiday_ranges and is_holiday(country, local.date())
            places.append(f"{local:%a %H:%M} in {zone.key}" + (" (a public holiday)" if holiday else ""))
        hours = describe_hours(spec.by_day, spec.holiday_ranges, country)
        return _with_reason(f"outside contact hours {hours} (now " + "; ".join(places) + ")" + window.scope,
                            window.info)


def _time_of(contact: Contact) -> dt.datetime:
    return contact.at


def _scope_text(applies: str | None) -> str:
    """How a block says which condition made its rule apply."""
    return f" (applies where {applies})" if applies else ""


def _reads_action(expr: n.Expr | None) -> bool:
    """Whether a condition depends on the action being judged."""
    return expr is not None and any(isinstance(node, n.ActionRef) for node in n.walk(expr))


def _counter_block(counter: _Counter, zones: tuple[ZoneInfo, ...], events: list[Contact],
                   now: dt.datetime) -> tuple[str, dt.datetime] | None:
    """(message, free_at) when a cap or quiet period blocks in some zone (the
    message of the first such zone, the latest instant it frees at)."""
    actions, outcomes, exclude = counter.actions, counter.outcomes, counter.exclude
    if outcomes is None:
        counted = [event for event in events if event.action in actions]
    else:
        counted = [event for event in events if event.action in actions and (event.outcome in outcomes) != exclude]
    if len(counted) < counter.count:  # under the cap however the days fall (a quiet period counts 1)
        return None
    statuses = [_counter_status(counter, zone, counted, now) for zone in zones]
    frees = [free for _, free in statuses if free is not None]
    if not frees:
        return None
    message = next(text for text, free in statuses if free is not None)
    return _with_reason(message + counter.scope, counter.info), max(frees)


def _counter_status(counter: _Counter, zone: ZoneInfo, counted: list[Contact], now: dt.datetime
                    ) -> tuple[str, dt.datetime | None]:
    """(message, free_at) of a cap or quiet period in one zone, given the
    events it counts (newest first); free_at is None when it does not block
    now."""
    period = counter.period
    if counter.kind == "quiet":
        if not counted:
            return "", None
        last = counted[0]
        free = period_end(last.at, period, zone)
        if free <= now:
            return "", None
        local = last.at.astimezone(zone)
        return (f"quiet for {period} after {last.outcome} on {last.action} at {local:%Y-%m-%d %H:%M} "
                f"{zone.key}", free)
    capped: dt.datetime | None
    if period.unit == "hours":
        capped = rolling_cap_free_at([event.at for event in counted], counter.count, period.amount, now)
    else:
        capped = calendar_day_cap_free_at((event.at for event in counted), counter.count, period.amount, now, zone)
    if capped is None:
        return "", None
    message = f"cap of {counter.count} per {period} reached for {counter.label}"
    if period.unit == "days":
        message += f" (calendar days in {zone.key})"
    return message, capped


def _with_reason(message: str, info: RuleInfo) -> str:
    text = message
    if info.because:
        text += f": {info.because}"
    if info.cite:
        text += f" [{info.cite}]"
    return text
