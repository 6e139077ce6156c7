"""The reference interpreter: a second, deliberately plain way to evaluate a policy.

`ReferencePolicy` answers exactly what the compiled `Policy` answers (the same
`Decision`: stage, segments, allowed actions in priority order, one blocked
entry per reason with the same wording and rule line, the same `until`), by
another road, so that each engine checks the other (tests/test_differential.py):

- nothing is prepared ahead of time: every evaluation walks the syntax tree
  (`eval_expr`) and, for every action, finds its rules in the `Model` again;
- time is judged from the wall clock only. An instant is inside a window when
  the local clock in every candidate zone reads a time in one of its ranges on
  an open day; a cap or quiet period counts the history again at that instant;
  and `until` is the first of all the instants at which an answer could change
  (range starts and midnights on the wall clock, clock changes, the moments
  an event leaves a rolling period) at which `allowed_at` says yes.

It shares with the compiled engine only the checker's `Model`, value reading,
holiday calendars, the `Decision` types, the constants of time (`CYCLE`,
`MICROSECOND` and the day names) and the wording of contact hours
(`describe_hours`) and of conditions (`Model.applies_text`). It is slow on purpose: obviousness is
its only job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from . import nodes as n
from .calendars import is_holiday, known_country
from .clock import CYCLE, MICROSECOND, UTC, describe_hours, first_reached
from .decision import Blocked, Contact, Decision, Evidence, HistoryFact, RuleInfo
from .engine import Engine
from .errors import AccountError
from .functions import ARITHMETIC, DIVISION
from .model import Model
from .values import ValueProblem, default_value, reader_for

# CYCLE (a week in each daylight-saving state of a year, a year of holidays), MICROSECOND and UTC are
# the constants of time, shared with the compiled engine; the arithmetic on them below is this module's own.
FIRST_LOOK = dt.timedelta(days=7)  # `until` tries the instants of this much time at a time
INFINITE = Decimal("Infinity")  # the time since an event that never happened
DAY_NAMES = n.WEEKDAYS
COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
           ">": operator.gt, ">=": operator.ge}


# ------------------------------------------------------------ expressions


@dataclass
class Env:
    """What an expression can see: account values, segments decided so far,
    the instant `now`, its wall clock in the account's first zone, and the
    action being judged (allow and forbid conditions only)."""

    values: dict[str, Any]
    now: dt.datetime
    local: dt.datetime
    segments: dict[str, bool] = field(default_factory=dict)
    action: str | None = None
    history: list[Contact] = field(default_factory=list)  # the events up to the evaluation's `now`
    model: Model | None = None  # how history aggregates expand their actions
    facts: dict[str, HistoryFact] = field(default_factory=dict)  # what each aggregate found, by its text


def eval_expr(node: n.Expr, env: Env) -> Any:
    """The value of `node`. The checker has proved names and types."""
    if isinstance(node, n.Literal):
        return node.value
    if isinstance(node, n.SetLiteral):
        return frozenset(element.value for element in node.elements)
    if isinstance(node, n.Ref):
        return env.values[node.name] if node.name in env.values else env.segments[node.name]
    if isinstance(node, n.ActionRef):
        return env.action
    if isinstance(node, n.NowRef):
        return env.now
    if isinstance(node, n.Not):
        return not eval_expr(node.operand, env)
    if isinstance(node, n.BoolOp):  # left to right, stopping as soon as the answer is known
        if node.op == "and":
            return all(eval_expr(operand, env) for operand in node.operands)
        return any(eval_expr(operand, env) for operand in node.operands)
    if isinstance(node, n.Negate):
        return negate(eval_expr(node.operand, env))
    if isinstance(node, n.Arithmetic):
        return arithmetic(node.op, eval_expr(node.left, env), eval_expr(node.right, env))
    if isinstance(node, n.Compare):
        return COMPARE[node.op](eval_expr(node.left, env), eval_expr(node.right, env))
    if isinstance(node, n.Membership):
        found = eval_expr(node.item, env) in eval_expr(node.container, env)
        return not found if node.negated else found
    if isinstance(node, n.History):
        fact = aggregate(node, env)
        env.facts[node.text] = fact
        return fact.value
    return call(node.name, [eval_expr(arg, env) for arg in node.args], env)


def aggregate(node: n.History, env: Env) -> HistoryFact:
    """A history aggregate over the events up to `env.now` that are not
    later than it (`env.history`), the account's first zone for days."""
    assert env.model is not None
    actions = env.model.expand(node.targets, with_events=True)
    zone = env.local.tzinfo
    mine = sorted((c for c in env.history if c.action in actions and c.at <= env.now),
                  key=lambda c: c.at, reverse=True)
    def passes(contact: Contact) -> bool:
        if node.outcomes is None:
            return True
        return contact.outcome not in node.outcomes if node.exclude else contact.outcome in node.outcomes

    if node.kind == "count":
        assert node.period is not None
        if node.period.unit == "hours":
            start = env.now - dt.timedelta(hours=node.period.amount)
            counted = [c for c in mine if passes(c) and start < c.at]
        else:
            first = env.local.date() - dt.timedelta(days=node.period.amount - 1)
            counted = [c for c in mine if passes(c) and first <= c.at.astimezone(zone).date()]
        return HistoryFact(len(counted), tuple(counted))
    if node.kind == "streak":
        run = list(itertools.takewhile(passes, mine))
        return HistoryFact(len(run), tuple(run))
    matching = [c for c in mine if passes(c)]
    if not matching:
        return HistoryFact(INFINITE, ())
    last = matching[0]
    if node.kind == "days_since_last":
        return HistoryFact((env.local.date() - last.at.astimezone(zone).date()).days, (last,))
    elapsed = env.now - last.at
    return HistoryFact(DIVISION.divide(Decimal(elapsed // MICROSECOND), Decimal(3_600_000_000)), (last,))


def arithmetic(op: str, left: Any, right: Any) -> Any:
    """Numbers, plus: date ± days, date - date (days), datetime ± duration,
    datetime - datetime (a duration), duration ± duration."""
    plain_date = isinstance(left, dt.date) and not isinstance(left, dt.datetime)
    if op == "+":
        if plain_date:
            return left + dt.timedelta(days=right)
        return ARITHMETIC.add(left, right) if _decimal(left, right) else left + right
    if op == "-":
        if plain_date and isinstance(right, int):
            return left - dt.timedelta(days=right)
        if plain_date:
            return (left - right).days
        return ARITHMETIC.subtract(left, right) if _decimal(left, right) else left - right
    if op == "*":
        return ARITHMETIC.multiply(left, right) if _decimal(left, right) else left * right
    return DIVISION.divide(Decimal(left), Decimal(right))


def _decimal(*operands: Any) -> bool:
    return any(isinstance(operand, Decimal) for operand in operands)


def negate(value: Any) -> Any:
    """`-value`: a decimal by the explicit ARITHMETIC context (exact or trapped), never the caller's."""
    return ARITHMETIC.minus(value) if isinstance(value, Decimal) else -value


def call(name: str, args: list[Any], env: Env) -> Any:
    """The library functions (see functions.py for their signatures)."""
    today = env.local.date()
    if name == "days_since":
        value = args[0]
        return (env.now - value).days if isinstance(value, dt.datetime) else (today - value).days
    if name == "days_until":
        return -call("days_since", args, env)
    if name == "hours_since":
        return DIVISION.divide(Decimal((env.now - args[0]) // dt.timedelta(microseconds=1)), Decimal(3_600_000_000))
    if name == "len":
        return len(args[0])
    if name == "abs":
        return ARITHMETIC.abs(args[0]) if _decimal(args[0]) else abs(args[0])
    if name == "min":
        return min(args[0], args[1])
    if name == "max":
        return max(args[0], args[1])
    if name == "lower":
        return args[0].lower()
    if name == "today":
        return today
    if name == "local_time":
        return env.local.hour * 3600 + env.local.minute * 60 + env.local.second
    if name == "weekday":
        return DAY_NAMES[today.weekday()]
    if name == "bucket":  # written out from docs/language.md (Experiments), not shared with the compiler
        data = hashlib.sha256(b"\0".join(text.encode("utf-8", "surrogatepass") for text in (args[1], args[0])))
        return int(data.hexdigest()[:16], 16) % 10_000
    raise ValueError(f"unknown function {name!r}")  # the checker rules this out


# ------------------------------------------------------------ time, from the wall clock


def days_named(specs: tuple[n.DaySpec, ...]) -> set[int]:
    """Days `on mon..fri, sun` names (0 = Monday), every day when none is
    named; a span walks forward, so fri..mon wraps."""
    if not specs:
        return set(range(7))
    days: set[int] = set()
    for spec in specs:
        day = DAY_NAMES.index(spec.first)
        days.add(day)
        while day != DAY_NAMES.index(spec.last):
            day = (day + 1) % 7
            days.add(day)
    return days


def weekday_hours(rule: n.Window, weekday: int) -> tuple[tuple[int, int], ...]:
    """The ranges a window opens on a weekday that is not a holiday: the
    one-line form's ranges on its days; in a table, those of every line
    naming the day, in the order written."""
    if not rule.table:
        return tuple((r.start, r.end) for r in rule.ranges) if weekday in days_named(rule.days) else ()
    found: list[tuple[int, int]] = []
    for line in rule.table:
        if weekday in days_named(line.days):
            found.extend((r.start, r.end) for r in line.ranges if (r.start, r.end) not in found)
    return tuple(found)


def hours_on(rule: n.Window, day: dt.date, country: str | None) -> tuple[tuple[int, int], ...]:
    """The ranges a window opens on local `day`: a holiday has its own."""
    if country is not None and is_holiday(country, day):
        return tuple((r.start, r.end) for r in rule.holiday_ranges)
    return weekday_hours(rule, day.weekday())


def inside_window(rule: n.Window, zone: ZoneInfo, instant: dt.datetime, country: str | None) -> bool:
    """Whether the wall clock in `zone` at `instant` reads a time in one of
    the ranges open on that local day (start inclusive, end exclusive)."""
    local = instant.astimezone(zone)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return any(start <= seconds < end for start, end in hours_on(rule, local.date(), country))


def counts_event(rule: n.Limit | n.Quiet, model: Model, contact: Contact) -> bool:
    """Whether a history event counts towards a cap or starts a quiet period."""
    if isinstance(rule, n.Quiet):
        return contact.action in model.expand(rule.after, with_events=True) and contact.outcome in rule.outcomes
    if contact.action not in model.expand(rule.counted or rule.targets, with_events=True):
        return False
    if rule.outcomes is None:
        return True
    if rule.exclude:
        return contact.outcome not in rule.outcomes
    return contact.outcome in rule.outcomes


def window_starts(rule: n.Window) -> set[int]:
    """Every time of day at which the window may open."""
    ranges = [*rule.ranges, *rule.holiday_ranges, *(r for line in rule.table for r in line.ranges)]
    return {time_range.start for time_range in ranges}


def counter_block(rule: n.Limit | n.Quiet, zone: ZoneInfo, instant: dt.datetime,
                  counted: list[Contact]) -> str | None:
    """Why a cap or quiet period blocks at `instant` in `zone`, or None.
    `counted` are the history events (none after `now`) that count for it."""
    amount = rule.period.amount
    if isinstance(rule, n.Quiet):
        if rule.period.unit == "hours":
            quiet = [c for c in counted if instant < c.at + dt.timedelta(hours=amount)]
        else:  # the event's local day is day 1 of `amount` days
            today = instant.astimezone(zone).date()
            quiet = [c for c in counted if today <= c.at.astimezone(zone).date() + dt.timedelta(days=amount - 1)]
        if not quiet:
            return None
        latest = max(counted, key=lambda c: c.at)
        return (f"quiet for {rule.period} after {latest.outcome} on {latest.action} at "
                f"{latest.at.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}")
    if rule.period.unit == "hours":  # rolling: (instant - amount hours, instant]
        start = instant - dt.timedelta(hours=amount)
        number = sum(1 for c in counted if start < c.at <= instant)
    else:  # `amount` consecutive calendar days in `zone`, today the last of them
        today = instant.astimezone(zone).date()
        first = today - dt.timedelta(days=amount - 1)
        number = sum(1 for c in counted if first <= c.at.astimezone(zone).date() <= today)
    if number < rule.count:
        return None
    message = f"cap of {rule.count} per {rule.period} reached for {rule.targets}"
    if rule.period.unit == "days":
        message += f" (calendar days in {zone.key})"
    return message


def walls(zone: ZoneInfo, day: dt.date, seconds: int) -> list[dt.datetime]:
    """Every instant at which the clock in `zone` reads `day` at `seconds`
    after midnight: none in a spring-forward gap, two in a fall-back repeat."""
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
    found = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return found


def utc_offset(zone: ZoneInfo, instant: dt.datetime) -> dt.timedelta | None:
    return instant.astimezone(zone).utcoffset()


def clock_changes(zone: ZoneInfo, low: dt.datetime, high: dt.datetime) -> list[dt.datetime]:
    """Instants in about [low, high] at which the UTC offset of `zone` changes:
    each UTC day is sampled at both ends and a change bisected to the second
    (zones change at most once a day)."""
    changes = []
    day = dt.datetime.combine(low.astimezone(UTC).date(), dt.time(), tzinfo=UTC)
    while day <= high:
        before, after = 0, 86400  # seconds into the day: offset(before) is the day's first, offset(after) not
        if utc_offset(zone, day) != utc_offset(zone, day + dt.timedelta(seconds=after)):
            while after - before > 1:
                middle = (before + after) // 2
                if utc_offset(zone, day + dt.timedelta(seconds=middle)) == utc_offset(zone, day):
                    before = middle
                else:
                    after = middle
            changes.append(day + dt.timedelta(seconds=after))
        day += dt.timedelta(days=1)
    return changes


def candidates(zones: Iterable[ZoneInfo], wall_times: set[int], expiries: Iterable[dt.datetime],
               low: dt.datetime, high: dt.datetime) -> list[dt.datetime]:
    """Every instant in [low, high] at which being allowed could begin: `low`
    itself; each time of `wall_times` (range starts and midnight) on each
    local day, in each zone; each clock change; each given expiry."""
    found = {low, *expiries}
    for zone in zones:
        found.update(clock_changes(zone, low, high))
        day = low.astimezone(zone).date() - dt.timedelta(days=1)
        while day <= high.astimezone(zone).date() + dt.timedelta(days=1):
            for seconds in wall_times | {0}:
                found.update(walls(zone, day, seconds))
            day += dt.timedelta(days=1)
    return sorted(t for t in found if low <= t <= high)


# ------------------------------------------------------------ the interpreter


class ReferencePolicy(Engine):
    """A checked policy, evaluated by walking its syntax tree. Same contract
    as `compiler.Policy`: `evaluate(account, history=(), *, now) -> Decision`."""

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        self.segment_rules = {s.name: model.info(s, model.source_text(s.span), names_in(s.condition))
                              for s in model.segments}

    def required_fields(self) -> set[str]:
        return {name for name, fld in self.model.fields.items() if fld.default is None}

    def read_account(self, account: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, fld in self.model.fields.items():
            read = reader_for(fld.type.kind, fld.type.element, fld.type.members)
            raw = account.get(name)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if fld.default is None:
                    raise AccountError(name, None, f"a value ({fld.type}); the field has no default")
                values[name] = read(default_value(fld.default))
                continue
            try:
                values[name] = read(raw)
            except ValueProblem as problem:
                raise AccountError(name, raw, str(problem)) from None
        return values

    # -- one account
    def decide(self, values: dict[str, Any], history: list[Contact], now: dt.datetime) -> Decision:
        model = self.model
        zones: tuple[ZoneInfo, ...] = values[model.zone_field] if model.zone_field else (ZoneInfo("UTC"),)
        # Instants in UTC, so that `+ 24 hours` is 24 elapsed hours whatever zone an input was given in
        # (Python adds to the wall clock when both sides carry the same ZoneInfo).
        now = now.astimezone(UTC)
        history = [Contact(c.account_id, c.action, c.at.astimezone(UTC), c.outcome) for c in history]
        past = [contact for contact in history if contact.at <= now]
        env = self.env(values, past, zones, now)
        stage = self.stage_of(values)
        stage_name = stage.name if stage else None
        placed: list[tuple[tuple[int, int], str]] = []
        allowed_by: dict[str, RuleInfo] = {}
        blocked: list[Blocked] = []
        for action in model.actions:
            admitted, reasons = self.judge(action, env, values, zones, past, stage)
            if admitted is not None and not reasons:
                placed.append((admitted[0], action))
                allowed_by[action] = info(model, admitted[1], admitted[1].condition)
                continue
            timed = not any(kind in ("not_allowed", "forbidden") for kind, _, _ in reasons)
            until = self.until(action, values, zones, past, stage, now, timed)
            blocked.extend(Blocked(action, kind, text, rule_info, until) for kind, text, rule_info in reasons)
        evidence = Evidence(values, self.stage_rule(stage), self.stage_field, allowed_by, self.segment_rules,
                            dict(env.facts))
        return Decision(str(values["id"]) if "id" in values else None, stage_name,
                        tuple(name for name in env.segments if env.segments[name]),
                        tuple(action for _, action in sorted(placed)), tuple(blocked), None, evidence,
                        self.actions, now, self.provenance)

    def env(self, values: dict[str, Any], past: list[Contact], zones: tuple[ZoneInfo, ...],
            instant: dt.datetime) -> Env:
        """What expressions see at `instant`, the segments decided there."""
        env = Env(values, instant, instant.astimezone(zones[0]), history=past, model=self.model)
        for segment in self.model.segments:
            env.segments[segment.name] = bool(eval_expr(segment.condition, env))
        return env

    def judge(self, action: str, env: Env, values: dict[str, Any], zones: tuple[ZoneInfo, ...],
              past: list[Contact], stage: n.StageRange | None
              ) -> tuple[tuple[tuple[int, int], n.Allow] | None, list[tuple[str, str, RuleInfo]]]:
        """The allow that admits `action` at `env.now` (if any) and every
        reason it is blocked there, in rule order."""
        model = self.model
        now = env.now
        stage_name = stage.name if stage else None
        env.action = action
        entries = self.allow_entries(action, stage_name)
        admitted = next(((key, allow) for key, allow in entries
                         if allow.condition is None or eval_expr(allow.condition, env)), None)
        reasons: list[tuple[str, str, RuleInfo]] = []
        if admitted is None:
            reasons.append(self.not_allowed(action, [allow for _, allow in entries], stage))
        rules = [rule for rule in self.rules_of(action, stage_name)
                 if all(eval_expr(condition, env) for condition in rule.applies)]
        for rule in rules:
            if isinstance(rule, n.Forbid) and (rule.condition is None or eval_expr(rule.condition, env)):
                reasons.append(("forbidden", with_reason("forbidden" + self.scope(rule), rule),
                                info(model, rule, *rule.applies, rule.condition)))
        for rule in rules:
            if isinstance(rule, n.Window):
                country = self.country(rule, values)
                outside = [zone for zone in zones if not inside_window(rule, zone, now, country)]
                if outside:
                    reasons.append(("window", window_message(rule, outside, now, country, self.scope(rule)),
                                    window_info(rule, model)))
        for rule in rules:
            if isinstance(rule, (n.Limit, n.Quiet)):
                counted = [c for c in past if counts_event(rule, model, c)]
                message = next((text for zone in zones if (text := counter_block(rule, zone, now, counted))), None)
                if message:
                    reasons.append((kind_of(rule), with_reason(message + self.scope(rule), rule),
                                    info(model, rule, *rule.applies)))
        return admitted, reasons

    def rules_of(self, action: str, stage_name: str | None) -> list[n.Restriction]:
        return [rule for rule in self.model.restrictions if applies(rule, stage_name)
                and action in self.model.expand(rule.targets)]

    def until(self, action: str, values: dict[str, Any], zones: tuple[ZoneInfo, ...], past: list[Contact],
              stage: n.StageRange | None, now: dt.datetime, timed: bool) -> dt.datetime | None:
        """The first instant from `now` at which the whole judgement of
        `action` (segments, allows, forbids, windows, caps, quiet periods)
        lets it through, trying every instant at which any part of it could
        change. Parts that settle (caps, events leaving a period, a date
        compared with today) change at finitely many instants, found by
        counting the history and by galloping and bisecting along each
        comparison; after each of them the rest repeats within CYCLE.
        `timed`: whether the block now is one time could lift even with
        the conditions fixed (not a refusal or a forbid)."""
        conditions = self.conditions_of(action, stage)
        if not timed and not any(reads_time(condition) for condition in conditions):
            return None

        def env_at(instant: dt.datetime) -> Env:
            env = self.env(values, past, zones, instant)
            env.action = action
            return env

        def allowed_at(instant: dt.datetime) -> bool:
            admitted, reasons = self.judge(action, env_at(instant), values, zones, past, stage)
            return admitted is not None and not reasons

        def holds(node: n.Expr) -> Callable[[dt.datetime], bool]:
            return lambda instant: bool(eval_expr(node, env_at(instant)))

        monotone = [part for condition in conditions for node in walk_all(condition)
                    if isinstance(node, (n.Compare, n.Membership)) and reads_time(node)
                    for part in monotone_parts(node, env_at(now))]
        points = {now, *self.leaving(action, stage, zones, past)}
        for part in monotone:
            if not periodic(part):
                points.update(gallop(holds(part), now))
        rules = self.rules_of(action, stage.name if stage else None)
        starts = {start for rule in rules if isinstance(rule, n.Window) for start in window_starts(rule)}
        expiries = {c.at + dt.timedelta(hours=rule.period.amount) for rule in rules
                    if isinstance(rule, (n.Limit, n.Quiet)) and rule.period.unit == "hours" for c in past}
        clocked = [holds(part) for part in monotone if periodic(part)]
        if not any(periodic(condition) for condition in conditions):
            if not starts:  # nothing recurs: the judgement changes only at the settling instants
                later = sorted(instant for instant in points | expiries if instant >= now)
                return next((instant for instant in later if allowed_at(instant)), None)
            # the conditions change only at the settling instants: search on from those where they allow
            points = {point for point in points if not any(
                kind in ("not_allowed", "forbidden")
                for kind, _, _ in self.judge(action, env_at(point), values, zones, past, stage)[1])}
        for low, high in merged((point, point + CYCLE) for point in points if point >= now):
            while low <= high:
                last = min(high, low + FIRST_LOOK)
                # the look's last instant too, so that a clock condition flipping after the last candidate,
                # before the next look begins, is found (a look ending between 00:00 and 00:30 missed 00:30)
                found = sorted({*candidates(zones, starts, expiries | points, low, last), last})
                found += [first_reached(test, before, after) for before, after in itertools.pairwise(found)
                          for test in clocked if test(before) != test(after - MICROSECOND)]
                for instant in sorted(set(found)):
                    if allowed_at(instant):
                        return instant
                low += FIRST_LOOK
        return None

    def conditions_of(self, action: str, stage: n.StageRange | None) -> list[n.Expr]:
        """The when-conditions deciding `action`, and all segment conditions."""
        stage_name = stage.name if stage else None
        found = [allow.condition for _, allow in self.allow_entries(action, stage_name) if allow.condition]
        found += [rule.condition for rule in self.rules_of(action, stage_name)
                  if isinstance(rule, n.Forbid) and rule.condition is not None]
        return found + [segment.condition for segment in self.model.segments]

    def leaving(self, action: str, stage: n.StageRange | None, zones: tuple[ZoneInfo, ...],
                past: list[Contact]) -> list[dt.datetime]:
        """Instants at which a history event stops counting: for caps and
        quiet periods, and for `count(...)` aggregates (local midnights of the
        account's first zone, or rolling hours)."""
        model = self.model
        found: list[dt.datetime] = []
        for rule in self.rules_of(action, stage.name if stage else None):
            if isinstance(rule, (n.Limit, n.Quiet)):
                for contact in past:
                    if counts_event(rule, model, contact):
                        found.extend(leaves(contact, rule.period, zone) for zone in zones)
        for condition in self.conditions_of(action, stage):
            for node in walk_all(condition):
                if isinstance(node, n.History) and node.period is not None:
                    for contact in past:
                        if contact.action in model.expand(node.targets, with_events=True):
                            found.append(leaves(contact, node.period, zones[0]))
        return found

    def stage_of(self, values: dict[str, Any]) -> n.StageRange | None:
        """The account's stage; None when there are stages and it is in none."""
        if not self.model.stages:
            return None
        value = values[self.model.stage_field]  # type: ignore[index]
        return next((stage for stage in self.model.stages
                     if (stage.low is None or stage.low <= value) and (stage.high is None or value <= stage.high)),
                    None)

    def allow_entries(self, action: str, stage_name: str | None) -> list[tuple[tuple[int, int], n.Allow]]:
        """The allow rules naming `action` in this stage, each with its
        priority: (the rule's place, the action's place in its list)."""
        entries = []
        for index, allow in enumerate(self.model.allows):
            named = self.model.expand_in_order(allow.targets) if applies(allow, stage_name) else ()
            if action in named:
                entries.append(((index, named.index(action)), allow))
        return entries

    def not_allowed(self, action: str, allows: list[n.Allow], stage: n.StageRange | None) -> tuple[str, str, RuleInfo]:
        model = self.model
        if allows:
            condition = allows[0].text.split(" when ", 1)[-1]
            return ("not_allowed", f"{action} is allowed only when {condition}",
                    info(model, allows[0], allows[0].condition))
        if not model.stages:
            return "not_allowed", f"no rule allows {action}", self.no_stage_rule()
        if stage is None:
            return ("not_allowed", f"{model.stage_field} is in no stage, and no rule outside the stage blocks "
                    f"allows {action}",
                    self.no_stage_rule())
        return ("not_allowed", f"{action} is not allowed in stage {stage.name} ({model.stage_field} "
                f"{stage.describe()})", self.stage_rule(stage) or self.no_stage_rule())

    def stage_rule(self, stage: n.StageRange | None) -> RuleInfo | None:
        if not self.model.stages:
            return None
        if stage is None:
            return self.no_stage_rule()
        return self.model.info(stage, f"{stage.name} {stage.describe()}", (self.model.stage_field or "",))

    def no_stage_rule(self) -> RuleInfo:
        policy = self.model.policy
        if policy.stages:
            block = policy.stages[0]
            return self.model.info(block, f"stages on {block.field}", (block.field,))
        return self.model.info(policy.header, self.model.cited_path(policy.header.span.file))

    def scope(self, rule: n.Restriction) -> str:
        """Which conditions made a restriction apply, as its block says it."""
        text = self.model.applies_text(rule)
        return f" (applies where {text})" if text else ""

    @staticmethod
    def country(rule: n.Window, values: dict[str, Any]) -> str | None:
        """The holiday calendar a window skips, if any; an account value that
        names no calendar is an account error."""
        if rule.holidays is None:
            return None
        code = rule.holidays.value if isinstance(rule.holidays, n.Literal) else values[rule.holidays.name]
        if not known_country(str(code)):
            field_name = rule.holidays.name if isinstance(rule.holidays, n.Ref) else "country"
            raise AccountError(field_name, code, "a country code with a holiday calendar, such as CN or US")
        return str(code)


# ------------------------------------------------------------ small helpers


def applies(rule: n.Rule, stage_name: str | None) -> bool:
    """Top-level rules apply in every stage (and outside them); a stage
    block's rules in that stage only."""
    return rule.stage is None or rule.stage == stage_name


def kind_of(rule: n.Limit | n.Quiet) -> str:
    return "quiet" if isinstance(rule, n.Quiet) else "limit"


def with_reason(message: str, rule: n.Restriction) -> str:
    """A block's message, then the rule's `because` and `cite`."""
    if rule.reason.because:
        message += f": {rule.reason.because}"
    if rule.reason.cite:
        message += f" [{rule.reason.cite}]"
    return message


def window_message(rule: n.Window, outside: list[ZoneInfo], now: dt.datetime, country: str | None,
                   scope: str) -> str:
    holiday_hours = tuple((r.start, r.end) for r in rule.holiday_ranges)
    places = []
    for zone in outside:
        local = now.astimezone(zone)
        place = f"{local:%a %H:%M} in {zone.key}"
        if country and weekday_hours(rule, local.weekday()) != holiday_hours and is_holiday(country, local.date()):
            place += " (a public holiday)"
        places.append(place)
    hours = describe_hours([weekday_hours(rule, day) for day in range(7)], holiday_hours, country)
    return with_reason(f"outside contact hours {hours} (now " + "; ".join(places) + ")" + scope, rule)


def info(model: Model, rule: n.Rule, *conditions: n.Expr | None) -> RuleInfo:
    reads = (name for condition in conditions for name in names_in(condition))
    return model.info(rule, reads=tuple(dict.fromkeys(reads)))


def window_info(rule: n.Window, model: Model) -> RuleInfo:
    reads = [*(name for condition in rule.applies for name in names_in(condition)), model.zone_field,
             rule.holidays.name if isinstance(rule.holidays, n.Ref) else None]
    return model.info(rule, reads=tuple(dict.fromkeys(name for name in reads if name)))


def names_in(expr: n.Expr | None) -> tuple[str, ...]:
    """Fields and segments an expression reads, in order of first use."""
    if expr is None:
        return ()
    if isinstance(expr, n.Ref):
        return (expr.name,)
    if isinstance(expr, n.History):
        return (expr.text,)
    return tuple(dict.fromkeys(name for child in _children(expr) for name in names_in(child)))


def _children(expr: n.Expr) -> list[n.Expr]:
    """The operands of an expression node, by hand (not `nodes.walk`)."""
    if isinstance(expr, (n.Not, n.Negate)):
        return [expr.operand]
    if isinstance(expr, (n.Arithmetic, n.Compare)):
        return [expr.left, expr.right]
    if isinstance(expr, n.Membership):
        return [expr.item, expr.container]
    if isinstance(expr, n.BoolOp):
        return list(expr.operands)
    if isinstance(expr, n.Call):
        return list(expr.args)
    return []


# ------------------------------------------------------------ time-dependent conditions


def walk_all(expr: n.Expr) -> Iterator[n.Expr]:
    """Every node of an expression, by hand (not `nodes.walk`)."""
    yield expr
    for child in _children(expr):
        yield from walk_all(child)


def reads_time(expr: n.Expr) -> bool:
    """Whether the value of `expr` can change with time alone."""
    for node in walk_all(expr):
        if isinstance(node, n.NowRef):
            return True
        if isinstance(node, n.Call) and node.name in ("today", "days_since", "days_until", "hours_since",
                                                      "local_time", "weekday"):
            return True
        if isinstance(node, n.History) and node.kind != "streak":
            return True
    return False


def periodic(expr: n.Expr) -> bool:
    """Whether `expr` reads the time of day or the weekday, which recur."""
    return any(isinstance(node, n.Call) and node.name in ("local_time", "weekday") for node in walk_all(expr))


def monotone_parts(node: n.Compare | n.Membership, env: Env) -> list[n.Compare]:
    """`left >= right` and `left > right` for a comparison (for a
    membership, the item against each element of the set): each changes at
    most once while its sides move one way, and together they change
    wherever the comparison does."""
    if isinstance(node, n.Compare):
        pairs = [(node.left, node.right)]
    else:
        container = eval_expr(node.container, env)
        if not isinstance(container, frozenset):
            return []
        pairs = [(node.item, n.Literal(element, "element", node.span)) for element in sorted(container, key=str)]
    return [n.Compare(op, left, right, node.span) for left, right in pairs for op in (">=", ">")]


def gallop(holds: Callable[[dt.datetime], bool], now: dt.datetime) -> list[dt.datetime]:
    """Where `holds` first changes after `now`, looking 1, 2, 4, ... hours
    ahead and bisecting the step in which it changed (the instant and the
    one after); nothing if it never changes before the calendar ends."""
    try:
        start = holds(now)
        step = dt.timedelta(hours=1)
        before = now
        while True:
            after = now + step
            if holds(after) != start:
                flip = first_reached(lambda instant: holds(instant) != start, before, after)
                return [flip, flip + MICROSECOND]
            before, step = after, step * 2
    except (OverflowError, ArithmeticError):
        return []


def leaves(contact: Contact, period: n.Period, zone: ZoneInfo) -> dt.datetime:
    """The instant a history event stops counting for a period: rolling
    hours after it, or the local midnight ending its last calendar day."""
    if period.unit == "hours":
        return contact.at + dt.timedelta(hours=period.amount)
    return walls_midnight(zone, contact.at.astimezone(zone).date() + dt.timedelta(days=period.amount))


def walls_midnight(zone: ZoneInfo, day: dt.date) -> dt.datetime:
    """The first instant of local `day` (a day without 00:00 starts when the
    clock jumps past it)."""
    found = walls(zone, day, 0)
    if found:
        return found[0]
    return min(change for change in clock_changes(zone, dt.datetime.combine(day, dt.time(), tzinfo=UTC)
                                                  - dt.timedelta(days=1),
                                                  dt.datetime.combine(day, dt.time(), tzinfo=UTC)
                                                  + dt.timedelta(days=1))
               if change.astimezone(zone).date() == day)


def merged(ranges: Iterable[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Overlapping ranges joined, in order."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out
