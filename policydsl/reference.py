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
holiday calendars, the `Decision` types and the wording of contact hours
(`describe_ranges`, `describe_days`). It is slow on purpose: obviousness is
its only job.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from . import nodes as n
from .calendars import is_holiday, known_country
from .checker import Engine, Model
from .errors import AccountError
from .functions import ARITHMETIC, DIVISION, arithmetic_problem
from .runtime import Blocked, Contact, Decision, Evidence, RuleInfo, describe_days, describe_ranges
from .values import ValueProblem, default_value, reader_for

UTC = dt.UTC
HORIZON = dt.timedelta(days=800)  # how far ahead `until` looks, as in the compiled engine
FIRST_LOOK = dt.timedelta(days=7)  # `until` searches this much first, then the rest of the horizon
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
    return call(node.name, [eval_expr(arg, env) for arg in node.args], env)


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
    raise ValueError(f"unknown function {name!r}")  # the checker rules this out


# ------------------------------------------------------------ time, from the wall clock


def weekdays_of(rule: n.Window) -> set[int]:
    """Days a window is open (0 = Monday); a span walks forward, so fri..mon wraps."""
    if not rule.days:
        return set(range(7))
    days: set[int] = set()
    for spec in rule.days:
        day = DAY_NAMES.index(spec.first)
        days.add(day)
        while day != DAY_NAMES.index(spec.last):
            day = (day + 1) % 7
            days.add(day)
    return days


def inside_window(rule: n.Window, zone: ZoneInfo, instant: dt.datetime, country: str | None) -> bool:
    """Whether the wall clock in `zone` at `instant` reads an open day and a
    time in one of the window's ranges (start inclusive, end exclusive)."""
    local = instant.astimezone(zone)
    if local.weekday() not in weekdays_of(rule):
        return False
    if country is not None and is_holiday(country, local.date()):
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return any(time_range.start <= seconds < time_range.end for time_range in rule.ranges)


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
        self.segment_rules = {s.name: RuleInfo(s.span.file, s.span.line, model.source_text(s.span),
                                               reads=names_in(s.condition)) for s in model.segments}

    def required_fields(self) -> set[str]:
        return {name for name, fld in self.model.fields.items() if fld.default is None}

    def error_decision(self, account_id: Any, message: str) -> Decision:
        shown = None if account_id is None or account_id == "" else str(account_id)
        return Decision(shown, None, (), (), (), message)

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

    def evaluate(self, account: Mapping[str, Any], history: Iterable[Contact] = (), *,
                 now: dt.datetime) -> Decision:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware; the evaluator never guesses a zone")
        try:
            return self.decide(self.read_account(account), list(history), now)
        except AccountError as problem:
            return self.error_decision(account.get("id"), str(problem))
        except (ArithmeticError, OverflowError) as problem:
            return self.error_decision(account.get("id"), f"cannot evaluate: {arithmetic_problem(problem)}")

    # -- one account
    def decide(self, values: dict[str, Any], history: list[Contact], now: dt.datetime) -> Decision:
        model = self.model
        zones: tuple[ZoneInfo, ...] = values[model.zone_field] if model.zone_field else (ZoneInfo("UTC"),)
        # Instants in UTC, so that `+ 24 hours` is 24 elapsed hours whatever zone an input was given in
        # (Python adds to the wall clock when both sides carry the same ZoneInfo).
        now = now.astimezone(UTC)
        history = [Contact(c.account_id, c.action, c.at.astimezone(UTC), c.outcome) for c in history]
        env = Env(values, now, now.astimezone(zones[0]))
        for segment in model.segments:
            env.segments[segment.name] = bool(eval_expr(segment.condition, env))
        stage = self.stage_of(values)
        stage_name = stage.name if stage else None
        past = [contact for contact in history if contact.at <= now]
        placed: list[tuple[tuple[int, int], str]] = []
        allowed_by: dict[str, RuleInfo] = {}
        blocked: list[Blocked] = []
        for action in model.actions:
            env.action = action
            entries = self.allow_entries(action, stage_name)
            admitted = next(((key, allow) for key, allow in entries
                             if allow.condition is None or eval_expr(allow.condition, env)), None)
            reasons: list[tuple[str, str, RuleInfo]] = []
            if admitted is None:
                reasons.append(self.not_allowed(action, [allow for _, allow in entries], stage))
            rules = [rule for rule in model.restrictions if applies(rule, stage_name)
                     and action in model.expand(rule.targets)]
            for rule in rules:
                if isinstance(rule, n.Forbid) and (rule.condition is None or eval_expr(rule.condition, env)):
                    reasons.append(("forbidden", with_reason("forbidden", rule), info(rule, rule.condition)))
            windows = [(rule, self.country(rule, values)) for rule in rules if isinstance(rule, n.Window)]
            for rule, country in windows:
                outside = [zone for zone in zones if not inside_window(rule, zone, now, country)]
                if outside:
                    reasons.append(("window", window_message(rule, outside, now, country), window_info(rule, model)))
            counters = [(rule, [c for c in past if counts_event(rule, model, c)])
                        for rule in rules if isinstance(rule, (n.Limit, n.Quiet))]
            for rule, counted in counters:
                message = next((text for zone in zones if (text := counter_block(rule, zone, now, counted))), None)
                if message:
                    reasons.append((kind_of(rule), with_reason(message, rule), info(rule)))
            if admitted is not None and not reasons:
                placed.append((admitted[0], action))
                allowed_by[action] = info(admitted[1], admitted[1].condition)
                continue
            until = None
            if all(kind not in ("not_allowed", "forbidden") for kind, _, _ in reasons):
                until = self.until(zones, windows, counters, now)
            blocked.extend(Blocked(action, kind, text, rule_info, until) for kind, text, rule_info in reasons)
        evidence = Evidence(values, self.stage_rule(stage), self.stage_field, allowed_by, self.segment_rules)
        return Decision(str(values["id"]) if "id" in values else None, stage_name,
                        tuple(name for name in env.segments if env.segments[name]),
                        tuple(action for _, action in sorted(placed)), tuple(blocked), None, evidence)

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
            return "not_allowed", f"{action} is allowed only when {condition}", info(allows[0], allows[0].condition)
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
        return RuleInfo(stage.span.file, stage.span.line, f"{stage.name} {stage.describe()}",
                        reads=(self.model.stage_field or "",))

    def no_stage_rule(self) -> RuleInfo:
        policy = self.model.policy
        if policy.stages:
            block = policy.stages[0]
            return RuleInfo(block.span.file, block.span.line, f"stages on {block.field}", reads=(block.field,))
        return RuleInfo(policy.header.span.file, policy.header.span.line, policy.header.span.file)

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

    def until(self, zones: tuple[ZoneInfo, ...], windows: list[tuple[n.Window, str | None]],
              counters: list[tuple[n.Limit | n.Quiet, list[Contact]]], now: dt.datetime) -> dt.datetime | None:
        """The first instant from `now` within the horizon at which every
        window is open in every zone and no cap or quiet period blocks in any."""
        def allowed_at(instant: dt.datetime) -> bool:
            return (all(inside_window(rule, zone, instant, country) for rule, country in windows for zone in zones)
                    and all(counter_block(rule, zone, instant, counted) is None
                            for rule, counted in counters for zone in zones))

        starts = {time_range.start for rule, _ in windows for time_range in rule.ranges}
        expiries = [c.at + dt.timedelta(hours=rule.period.amount)
                    for rule, counted in counters if rule.period.unit == "hours" for c in counted]
        searched: dt.datetime | None = None
        for low, high in ((now, now + FIRST_LOOK), (now + FIRST_LOOK, now + HORIZON)):
            for instant in candidates(zones, starts, expiries, low, high):
                if (searched is None or instant > searched) and allowed_at(instant):
                    return instant
            searched = high
        return None


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


def window_message(rule: n.Window, outside: list[ZoneInfo], now: dt.datetime, country: str | None) -> str:
    places = []
    for zone in outside:
        local = now.astimezone(zone)
        place = f"{local:%a %H:%M} in {zone.key}"
        if country and local.weekday() in weekdays_of(rule) and is_holiday(country, local.date()):
            place += " (a public holiday)"
        places.append(place)
    hours = describe_ranges((r.start, r.end) for r in rule.ranges) + describe_days(frozenset(weekdays_of(rule)))
    if country:
        hours += f", not on {country} public holidays"
    return with_reason(f"outside contact hours {hours} (now " + "; ".join(places) + ")", rule)


def info(rule: n.Rule, condition: n.Expr | None = None) -> RuleInfo:
    reason = getattr(rule, "reason", None)
    return RuleInfo(rule.span.file, rule.span.line, rule.text, reason.because if reason else None,
                    reason.cite if reason else None, names_in(condition))


def window_info(rule: n.Window, model: Model) -> RuleInfo:
    reads = [model.zone_field, rule.holidays.name if isinstance(rule.holidays, n.Ref) else None]
    return RuleInfo(rule.span.file, rule.span.line, rule.text, rule.reason.because, rule.reason.cite,
                    tuple(name for name in reads if name))


def names_in(expr: n.Expr | None) -> tuple[str, ...]:
    """Fields and segments an expression reads, in order of first use."""
    if expr is None:
        return ()
    children: list[n.Expr] = []
    if isinstance(expr, n.Ref):
        return (expr.name,)
    if isinstance(expr, (n.Not, n.Negate)):
        children = [expr.operand]
    elif isinstance(expr, (n.Arithmetic, n.Compare)):
        children = [expr.left, expr.right]
    elif isinstance(expr, n.Membership):
        children = [expr.item, expr.container]
    elif isinstance(expr, n.BoolOp):
        children = list(expr.operands)
    elif isinstance(expr, n.Call):
        children = list(expr.args)
    return tuple(dict.fromkeys(name for child in children for name in names_in(child)))
