"""Hypothesis strategies: random well-typed policies and what to run them on.

`policies()` draws the TEXT of a policy that checks without errors (warnings
are fine): a fixed account schema, random actions, groups and events, random
stages on `dpd`, segments, stage blocks and top-level allow, forbid, window,
limit and quiet rules with random conditions. `scenarios(spec)` draws an
account, a contact history and an instant for it. Instants favour the hard
places: daylight-saving days in America/New_York, Europe/London,
Australia/Lord_Howe (whose clock moves by 30 minutes), America/Santiago and
America/Havana (which change theirs at midnight); the clock changes
themselves, local midnight, 08:00 and window ends, public holidays, now and
then a fraction of a second past. History events favour exact period
boundaries (`now - 24 hours`, local midnights). Instants come as UTC, as a
fixed offset or as a ZoneInfo, since Python's arithmetic differs between them.
`clock_change_cases()` draws small policies and instants right around clock
changes, where window openings are easiest to get wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from policydsl import Contact

UTC = dt.UTC
# Lord Howe moves its clock by 30 minutes; Santiago and Havana change theirs at midnight (a day with no
# 00:00, a midnight that happens twice), which is where caps and quiet periods of days expire.
DST_ZONES = ("America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago", "America/Havana")
ZONES = (*DST_ZONES, "Asia/Shanghai", "Asia/Kolkata", "UTC")
# Local days on which each DST zone's clock changes (checked by tests/test_differential.py).
DST_DAYS = {
    "America/New_York": ("2025-03-09", "2025-11-02", "2026-03-08", "2026-11-01"),
    "Europe/London": ("2025-03-30", "2025-10-26", "2026-03-29", "2026-10-25"),
    "Australia/Lord_Howe": ("2025-04-06", "2025-10-05", "2026-04-05", "2026-10-04"),
    "America/Santiago": ("2025-04-05", "2025-09-07", "2026-04-04", "2026-09-06"),
    "America/Havana": ("2025-03-09", "2025-11-02", "2026-03-08", "2026-11-01"),
}
OTHER_DAYS = ("2025-01-01", "2025-07-04", "2025-10-01", "2025-12-25", "2025-12-31", "2026-02-17", "2026-05-01")
COUNTRIES = ("US", "GB", "AU", "CN")
ACTION_POOL = ("call", "sms", "email", "push", "ivr", "visit", "letter", "referral")
GROUP_POOL = ("voice", "message", "escalation")
EVENT_POOL = ("inbound", "payment")
OUTCOMES = ("conversation", "no_answer", "promise_to_pay", "not_connected", "delivered", "refused")
FLAGS = ("deceased", "vip", "dispute", "cease")
CLOCK_TIMES = ("00:00", "00:30", "01:00", "01:15", "01:30", "01:45", "02:00", "02:15", "02:30", "03:00", "06:00",
               "08:00", "09:00", "12:00", "13:30", "17:00", "20:00", "21:00", "22:00", "23:00", "23:30", "24:00")
OPS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass
class PolicySpec:
    """A drawn policy: its text and what the input strategies need to know."""

    text: str
    actions: list[str]
    events: list[str]
    zone_default: bool  # the zone field has a default (so an account may omit it)
    has_zone: bool
    default_zones: list[str] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  # stage boundaries on dpd
    wall_times: list[str] = field(default_factory=list)  # window starts and ends used
    hours: list[int] = field(default_factory=list)  # periods of `per H hours` and `for H hours` rules
    days: list[int] = field(default_factory=list)  # periods in days
    timeless_segments: list[str] = field(default_factory=list)  # segments time alone does not change


def _seconds(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60


# ------------------------------------------------------------ expressions

# Atoms of a condition over the fixed schema: each draws only what it needs.
ATOMS: list[Callable[[st.DrawFn, str], str]] = [
    lambda draw, op: "vip",
    lambda draw, op: draw(st.sampled_from(["true", "false"])),
    lambda draw, op: f"dpd {op} {draw(st.integers(-2, 120))}",
    lambda draw, op: f"balance {op} ${draw(st.integers(0, 5000))}",
    lambda draw, op: f"score {op} 0.{draw(st.integers(0, 99)):02d}",
    lambda draw, op: f'"{draw(st.sampled_from(FLAGS))}" {draw(st.sampled_from(["in", "not in"]))} flags',
    lambda draw, op: f"{draw(st.integers(1, 4))} in codes",
    lambda draw, op: (f'tier {draw(st.sampled_from(["==", "!="]))} '
                      f'"{draw(st.sampled_from(["gold", "silver", "bronze"]))}"'),
    lambda draw, op: f'country == "{draw(st.sampled_from(COUNTRIES))}"',
    lambda draw, op: f"len(flags) {op} {draw(st.integers(0, 2))}",
    lambda draw, op: "abs(score - 0.5) < 0.25",
    lambda draw, op: f"min(dpd, 30) == {draw(st.sampled_from([30, 0]))}",
    lambda draw, op: "max(balance, $10) > $100",
    lambda draw, op: 'lower(id) == "a1"',
    lambda draw, op: f"balance / dpd > {draw(st.integers(1, 100))}",  # dpd = 0: both engines must fail alike
    lambda draw, op: f"dpd * 2 + 1 {op} 41",
    lambda draw, op: "-dpd < -5",
]
# Atoms that time alone can change: allowed in allow, forbid and segment
# conditions, never in a window's, limit's, quiet period's or include's (E117).
TIME_ATOMS: list[Callable[[st.DrawFn, str], str]] = [
    lambda draw, op: f"days_since(opened) {op} {draw(st.integers(0, 900))}",
    lambda draw, op: f"days_until(last_pay) {op} {draw(st.integers(-60, 5))}",
    lambda draw, op: f"days_since(last_pay) {op} {draw(st.integers(0, 60))}",
    lambda draw, op: f"hours_since(last_pay) {op} {draw(st.integers(0, 200))}.5",
    lambda draw, op: f"local_time() {op} {draw(st.sampled_from(CLOCK_TIMES[:-1]))}",
    lambda draw, op: f'weekday() {draw(st.sampled_from(["==", "!="]))} "{draw(st.sampled_from(["mon", "sat"]))}"',
    lambda draw, op: f"today() {op} {draw(st.sampled_from(DST_DAYS['America/New_York'] + OTHER_DAYS))}",
    lambda draw, op: f"now {op} 2025-11-02T06:00:00Z",
    lambda draw, op: f"now - last_pay {op} {draw(st.integers(1, 30))} {draw(st.sampled_from(['days', 'hours']))}",
    lambda draw, op: f"last_pay + {draw(st.integers(1, 30))} days < now",
    lambda draw, op: f"opened + {draw(st.integers(0, 400))} < today()",
    lambda draw, op: f"today() - opened > {draw(st.integers(0, 700))}",
]


@st.composite
def conditions(draw: st.DrawFn, segments: list[str], with_action: bool, actions: list[str], depth: int = 0,
               timeless: bool = False) -> str:
    """A boolean expression over the fixed schema, earlier segments and (in
    allow and forbid conditions) `action`; `timeless`: none of it reads time
    (the caller passes only segments that do not either)."""
    atoms = ATOMS if timeless else ATOMS + TIME_ATOMS
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["and", "or", "not", "paren"]))
        inner = conditions(segments, with_action, actions, depth + 1, timeless)
        if kind == "not":
            return f"not {draw(inner)}"
        if kind == "paren":
            return f"({draw(inner)})"
        return f"{draw(inner)} {kind} {draw(inner)}"
    if draw(st.integers(0, 5)) == 0:
        return draw(history_aggregates(actions, timeless))
    kinds = len(atoms) + len(segments) + (3 if with_action else 0)
    index = draw(st.integers(0, kinds - 1))
    if index < len(atoms):
        return atoms[index](draw, draw(st.sampled_from(OPS)))
    if index < len(atoms) + len(segments):
        return segments[index - len(atoms)]
    index -= len(atoms) + len(segments)
    if index == 0:
        return f'action == "{draw(st.sampled_from(actions))}"'
    if index == 1:
        names = draw(st.lists(st.sampled_from(actions), min_size=1, max_size=3, unique=True))
        return "action in {" + ", ".join(f'"{name}"' for name in names) + "}"
    return "action in flags"


@st.composite
def history_aggregates(draw: st.DrawFn, actions: list[str], timeless: bool = False) -> str:
    """A comparison of a history aggregate: counts over calendar days and
    rolling hours, streaks, and the time since the last event (infinite
    when there is none), with and without outcome filters; `timeless`: a
    streak, the one aggregate time alone does not change."""
    names = "all" if draw(st.integers(0, 5)) == 0 else ", ".join(
        draw(st.lists(st.sampled_from(actions), min_size=1, max_size=2, unique=True)))
    where = ""
    if draw(st.booleans()):
        outcomes = draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2, unique=True))
        negation = "not " if draw(st.integers(0, 3)) == 0 else ""
        where = f" where outcome {negation}in {{" + ", ".join(f'"{o}"' for o in outcomes) + "}"
    op = draw(st.sampled_from(OPS))
    kind = 2 if timeless else draw(st.integers(0, 4))
    if kind == 0:
        amount, unit = draw(st.integers(1, 3)), "days"
        return f"count({names} in {amount} {unit}{where}) {op} {draw(st.integers(0, 3))}"
    if kind == 1:
        return f"count({names} in {draw(st.sampled_from([1, 2, 24, 25]))} hours{where}) {op} {draw(st.integers(0, 3))}"
    if kind == 2:
        return f"streak({names}{where}) {op} {draw(st.integers(0, 3))}"
    if kind == 3:
        return f"days_since_last({names}{where}) {op} {draw(st.integers(0, 3))}"
    return f"hours_since_last({names}{where}) {op} {draw(st.sampled_from(['1', '24', '2.5', '48']))}"


# ------------------------------------------------------------ rules


@st.composite
def targets(draw: st.DrawFn, names: list[str]) -> str:
    if draw(st.integers(0, 6)) == 0:
        return "all"
    return ", ".join(draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)))


@st.composite
def reasons(draw: st.DrawFn) -> str:
    text = ""
    if draw(st.booleans()):
        text += f' because "reason {draw(st.integers(0, 99))}"'
    if draw(st.booleans()):
        text += f' cite "rule {draw(st.integers(0, 99))}"'
    return text


@st.composite
def time_ranges(draw: st.DrawFn) -> list[tuple[str, str]]:
    kind = draw(st.integers(0, 11))
    if kind < 4:  # the common wide ones, so that windows of one action usually meet
        return [draw(st.sampled_from([("08:00", "21:00"), ("00:00", "24:00"), ("06:00", "23:30"),
                                      ("08:00", "20:00"), ("01:00", "22:00")]))]
    if kind < 7:  # around the clock changes: in, across and after the repeated hour and the gap
        start = draw(st.sampled_from(["00:30", "01:00", "01:15", "01:30", "01:45", "02:00", "02:15", "02:30"]))
        end = draw(st.sampled_from([clock for clock in CLOCK_TIMES if _seconds(start) < _seconds(clock) <= 10800]
                                   + ["09:00"]))
        return [(start, end)]
    ranges = []
    for _ in range(draw(st.integers(1, 2))):
        start, end = sorted(draw(st.lists(st.sampled_from(CLOCK_TIMES), min_size=2, max_size=2, unique=True)),
                            key=_seconds)
        if draw(st.integers(0, 4)) == 0:  # an arbitrary quarter hour too
            start = f"{draw(st.integers(0, 22)):02d}:{draw(st.sampled_from(['00', '15', '30', '45']))}"
            end = f"{draw(st.integers(int(start[:2]) + 1, 24)):02d}:00"
        ranges.append((start, end))
    return ranges


@st.composite
def rules(draw: st.DrawFn, kinds: list[str], names: list[str], counted: list[str], actions: list[str],
          segments: list[str], spec: PolicySpec) -> str:
    kind = draw(st.sampled_from(kinds))
    if kind == "allow":
        when = f" when {draw(conditions(segments, True, actions))}" if draw(st.integers(0, 2)) == 0 else ""
        return f"allow {draw(targets(names))}{when}"
    if kind == "forbid":
        when = f" when {draw(conditions(segments, True, actions))}" if draw(st.integers(0, 9)) else ""
        return f"forbid {draw(targets(names))}{when}{draw(reasons())}"
    if kind == "window" and draw(st.integers(0, 2)) == 0:
        table = draw(hours_table(spec))
        return f"window {draw(targets(names))} {table}{draw(applies(spec.timeless_segments, actions))}" \
            + draw(reasons())
    if kind == "window":
        ranges = draw(time_ranges())
        spec.wall_times.extend(clock for pair in ranges for clock in pair)
        text = f"window {draw(targets(names))} " + ", ".join(f"{a}-{b}" for a, b in ranges)
        if draw(st.integers(0, 2)) == 0:
            text += " on " + draw(day_specs())
        holidays = draw(st.integers(0, 5))
        if holidays == 0:
            text += f' except holidays "{draw(st.sampled_from(COUNTRIES))}"'
        elif holidays == 1:
            text += " except holidays country"
        return text + draw(applies(spec.timeless_segments, actions)) + draw(reasons())
    if kind == "limit":
        unit = draw(st.sampled_from(["days", "hours"]))
        amount = draw(st.sampled_from([1, 1, 2, 3, 7] if unit == "days" else [1, 2, 3, 24, 48]))
        (spec.hours if unit == "hours" else spec.days).append(amount)
        period = f"{unit[:-1]}" if amount == 1 and draw(st.booleans()) else f"{amount} {unit}"
        text = f"limit {draw(targets(names))} {draw(st.integers(1, 3))} per {period}"
        if draw(st.integers(0, 2)) == 0:
            text += f" of {draw(targets(counted))}"
        if draw(st.integers(0, 2)) == 0:
            outcomes = draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2, unique=True))
            negated = draw(st.sampled_from(["", "not "]))
            text += f" where outcome {negated}in {{" + ", ".join(f'"{o}"' for o in outcomes) + "}"
        return text + draw(applies(spec.timeless_segments, actions)) + draw(reasons())
    unit = draw(st.sampled_from(["days", "hours"]))
    amount = draw(st.sampled_from([1, 2, 3, 7] if unit == "days" else [1, 3, 24, 36]))
    (spec.hours if unit == "hours" else spec.days).append(amount)
    outcomes = draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2, unique=True))
    return (f"quiet {draw(targets(names))} for {amount} {unit} after " + ", ".join(f'"{o}"' for o in outcomes)
            + f" on {draw(targets(counted))}{draw(applies(spec.timeless_segments, actions))}{draw(reasons())}")


@st.composite
def applies(draw: st.DrawFn, segments: list[str], actions: list[str]) -> str:
    """A restriction's own `when` (a condition on the account that time
    alone does not change: only the segments given, which do not read time)."""
    return f" when {draw(conditions(segments, False, actions, timeless=True))}" \
        if draw(st.integers(0, 2)) == 0 else ""


@st.composite
def day_specs(draw: st.DrawFn) -> str:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return ", ".join(f"{draw(st.sampled_from(days))}..{draw(st.sampled_from(days))}" if draw(st.booleans())
                     else draw(st.sampled_from(days)) for _ in range(draw(st.integers(1, 2))))


@st.composite
def hours_table(draw: st.DrawFn, spec: PolicySpec) -> str:
    """`{ day lines [holidays line] }`: day-specific hours, some days named
    twice (their ranges add up), some closed."""
    def hours() -> str:
        if draw(st.integers(0, 4)) == 0:
            return "closed"
        ranges = draw(time_ranges())
        spec.wall_times.extend(clock for pair in ranges for clock in pair)
        return ", ".join(f"{a}-{b}" for a, b in ranges)

    lines = [f"{draw(day_specs())} {hours()}" for _ in range(draw(st.integers(1, 3)))]
    calendar = draw(st.integers(0, 3))
    if calendar == 0:
        lines.append(f'holidays "{draw(st.sampled_from(COUNTRIES))}" {hours()}')
    elif calendar == 1:
        lines.append(f"holidays country {hours()}")
    return "{ " + " ".join(lines) + " }"


# ------------------------------------------------------------ policies


@st.composite
def policies(draw: st.DrawFn) -> PolicySpec:
    actions = draw(st.lists(st.sampled_from(ACTION_POOL), min_size=1, max_size=5, unique=True))
    events = draw(st.lists(st.sampled_from(EVENT_POOL), max_size=2, unique=True))
    has_zone = draw(st.integers(0, 7)) > 0
    zone_default = draw(st.booleans())
    spec = PolicySpec("", actions, events, zone_default, has_zone)
    lines = ['policy "generated" version "1"', "", "account {",
             "    id : text", "    dpd : int", "    balance : money = 0", "    score : number = 0.5",
             "    flags : set<text> = {}", "    codes : set<int> = {}", "    vip : bool = false",
             "    tier : enum(gold, silver, bronze) = silver", '    country : text = "US"',
             "    opened : date = 2024-01-15", "    last_pay : datetime = 2025-03-01T12:00:00Z"]
    if has_zone:
        spec.default_zones = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True))
        default = f' = "{";".join(spec.default_zones)}"'
        lines.append("    tz : zone" + (default if zone_default else ""))
    lines.append("}")
    # actions: some of them in groups
    groups: dict[str, list[str]] = {}
    plain = []
    for action in actions:
        group = draw(st.sampled_from([None, None, *GROUP_POOL]))
        if group is None:
            plain.append(action)
        else:
            groups.setdefault(group, []).append(action)
    lines.append("actions {")
    lines.extend(f"    {group} : {', '.join(members)}" for group, members in groups.items())
    if plain:
        lines.append(f"    {', '.join(plain)}")
    lines.append("}")
    if events:
        lines.append(f"events {{ {', '.join(events)} }}")
    names = actions + list(groups)
    counted = names + events
    # stages: consecutive ranges over dpd, the outer ends open or closed
    stage_names: list[str] = []
    if draw(st.integers(0, 4)):
        cuts = sorted(draw(st.lists(st.integers(-1, 100), min_size=2, max_size=5, unique=True)))
        spec.cuts = cuts
        stage_names = [f"S{index}" for index in range(len(cuts) - 1)]
        lines.append("stages on dpd {")
        for index, name in enumerate(stage_names):
            low = "" if index == 0 and draw(st.booleans()) else str(cuts[index])
            high = "" if index == len(stage_names) - 1 and draw(st.booleans()) else str(cuts[index + 1] - 1)
            if not low and not high:  # `..` alone is not a range
                high = str(cuts[index + 1] - 1)
            lines.append(f"    {name} {low} .. {high}")
        lines.append("}")
    segments: list[str] = []
    for index in range(draw(st.integers(0, 3))):
        timeless = draw(st.booleans())  # only these may serve in a restriction's `when`
        visible = spec.timeless_segments if timeless else segments
        lines.append(f"segment seg{index} when {draw(conditions(visible, False, actions, timeless=timeless))}")
        segments.append(f"seg{index}")
        if timeless:
            spec.timeless_segments.append(f"seg{index}")
    kinds = ["allow", "forbid", "limit", "limit", "quiet", "quiet"] + (["window"] * 3 if has_zone else [])
    for stage in stage_names:
        if draw(st.integers(0, 3)):
            body = [draw(rules([*kinds, "allow"], names, counted, actions, segments, spec))
                    for _ in range(draw(st.integers(0, 4)))]
            lines.append(f"stage {stage} {{")
            lines.extend(f"    {rule}" for rule in body)
            lines.append("}")
    if draw(st.booleans()):  # often everything is allowed, so that windows, caps and quiet periods decide
        lines.append("allow all")
    elif draw(st.integers(0, 2)):
        lines.append(f"allow {draw(targets(names))}")
    for index in range(draw(st.integers(0, 6))):
        label = f"rule{index}: " if draw(st.booleans()) else ""  # a named rule's id is its name
        lines.append(label + draw(rules(kinds, names, counted, actions, segments, spec)))
    spec.text = "\n".join(lines) + "\n"
    return spec


# ------------------------------------------------------------ instants


@st.composite
def instants(draw: st.DrawFn, wall_times: tuple[str, ...] = (), zones: tuple[str, ...] = ()) -> dt.datetime:
    """An aware instant, often a hard one: a wall time on a DST day (either
    fold), a clock change itself, local midnight, 08:00, a window's start or
    end, a second either side; sometimes anywhere in 2024-2027. The day and
    wall time are mostly those of one of `zones` (the account's)."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        seconds = draw(st.integers(0, 4 * 365 * 86400))
        return dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=seconds)
    zone_name = draw(st.sampled_from(zones if zones and draw(st.integers(0, 3)) else ZONES))
    zone = ZoneInfo(zone_name)
    days = DST_DAYS.get(zone_name, OTHER_DAYS) + (OTHER_DAYS if draw(st.integers(0, 3)) == 0 else ())
    shift = dt.timedelta(days=draw(st.sampled_from([0, 0, 0, -1, 1])))
    day = dt.date.fromisoformat(draw(st.sampled_from(days))) + shift
    if kind == 1:  # the clock change itself
        change = _clock_change(zone, day)
        if change is not None:
            return change + dt.timedelta(seconds=draw(st.sampled_from([0, 0, -1, 1])))
    if kind == 2 and zone_name in DST_ZONES:  # inside the wall time a fall-back repeats, either time round
        change = _clock_change(zone, dt.date.fromisoformat(draw(st.sampled_from(DST_DAYS[zone_name]))))
        assert change is not None
        before = (change - dt.timedelta(seconds=1)).astimezone(zone).utcoffset()
        after = change.astimezone(zone).utcoffset()
        assert before is not None and after is not None
        if after < before:  # the clock went back by `before - after`: that much wall time comes round twice
            repeat = before - after
            into = dt.timedelta(minutes=5 * draw(st.integers(0, repeat // dt.timedelta(minutes=5) - 1)))
            first_time_round = draw(st.booleans())
            return (change - repeat if first_time_round else change) + into
    if wall_times and draw(st.booleans()):  # a window's start or end
        clock = draw(st.sampled_from(wall_times))
    else:
        clock = draw(st.sampled_from(("00:00", "08:00", "01:30", "02:00", "02:30", "21:00", "24:00")))
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=_seconds(clock))
    wall += dt.timedelta(seconds=draw(st.sampled_from([0, 0, 0, -1, 1, 59, 900, -3600, 1800])))
    return wall.replace(tzinfo=zone, fold=draw(st.integers(0, 1))).astimezone(UTC)


def _clock_change(zone: ZoneInfo, day: dt.date) -> dt.datetime | None:
    """The instant the zone's offset changes during the UTC day `day` ± 1, if any (by scanning minutes)."""
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tzinfo=UTC)
    previous = start.astimezone(zone).utcoffset()
    for minute in range(0, 3 * 24 * 60, 15):
        instant = start + dt.timedelta(minutes=minute)
        if instant.astimezone(zone).utcoffset() != previous:
            return instant
    return None


def shown_in(instant: dt.datetime, how: int, zone: ZoneInfo) -> dt.datetime:
    """The same instant as an input may carry it: UTC, a fixed offset, or a ZoneInfo."""
    if how == 1:
        return instant.astimezone(dt.timezone(dt.timedelta(hours=8)))
    if how == 2:
        return instant.astimezone(zone)
    return instant


# ------------------------------------------------------------ accounts and history


@dataclass
class Scenario:
    account: dict[str, Any]
    history: list[Contact]
    now: dt.datetime


@st.composite
def accounts(draw: st.DrawFn, spec: PolicySpec, now: dt.datetime, zones: list[str]) -> dict[str, Any]:
    account: dict[str, Any] = {"id": draw(st.sampled_from(["A1", "a1", "B-7"]))}
    dpd_values = [-3, 0, 1, 30, 31, 61, 95, 130] + [cut + delta for cut in spec.cuts for delta in (-1, 0)]
    dpd = draw(st.sampled_from(dpd_values))
    account["dpd"] = draw(st.sampled_from([dpd, str(dpd), str(dpd), "12x" if draw(st.integers(0, 30)) == 0 else dpd]))
    optional: dict[str, Any] = {
        "balance": draw(st.sampled_from([Decimal("0"), Decimal("99.50"), "250.00", "5000", Decimal("12000.01")])),
        "score": draw(st.sampled_from(["0.1", Decimal("0.5"), "0.75", 0.9, "0.999"])),
        "flags": draw(st.sampled_from(["", "vip", "dispute;vip", frozenset({"deceased"}), ["cease"],
                                       "sms;call", "call"])),
        "codes": draw(st.sampled_from(["", "1;2", "3", [4]])),
        "vip": draw(st.sampled_from([True, False, "yes", "no"])),
        "tier": draw(st.sampled_from(["gold", "silver", "bronze", "platinum" if draw(st.integers(0, 30)) == 0
                                      else "gold"])),
        "country": draw(st.sampled_from([*COUNTRIES, "XX" if draw(st.integers(0, 20)) == 0 else "US"])),
        "opened": draw(st.sampled_from(["2024-01-15", dt.date(2025, 3, 9), "2023-11-05", dt.date(2025, 10, 26)])),
        "last_pay": shown_in(now - dt.timedelta(hours=draw(st.sampled_from([0, 1, 23, 24, 25, 72, 30 * 24, 24 * 200]))),
                             draw(st.integers(0, 2)), ZoneInfo(draw(st.sampled_from(ZONES)))),
    }
    if spec.has_zone:
        optional["tz"] = draw(st.sampled_from([";".join(zones), ";".join(zones), tuple(zones),
                                               "Mars/Olympus" if draw(st.integers(0, 30)) == 0 else zones[0]]))
    for name, value in optional.items():
        if draw(st.integers(0, 3)) or (name == "tz" and not spec.zone_default):
            account[name] = value
    return account


@st.composite
def histories(draw: st.DrawFn, spec: PolicySpec, now: dt.datetime, account_id: str) -> list[Contact]:
    """Contacts around `now`: exactly one of the policy's periods before it
    (or a second either side), at the local midnight of `now` or of a period
    of days before it in some zone, at random earlier times, and a few after
    `now` (which must be ignored)."""
    names = spec.actions + spec.events + ["unknown_action"]
    contacts = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 5))
        if kind == 4:  # within the longest `hours` period, so that caps fill up
            at = now - dt.timedelta(minutes=draw(st.integers(0, 60 * max([3, *spec.hours]))))
        elif kind == 0:  # exactly a period before `now`, or a second either side
            hours = draw(st.sampled_from([0, 1, 24, 72, *spec.hours, *spec.hours, *(24 * d for d in spec.days)]))
            at = now - dt.timedelta(hours=hours, seconds=draw(st.sampled_from([0, 0, -1, 1])))
        elif kind == 1:
            zone = ZoneInfo(draw(st.sampled_from(ZONES)))
            back = draw(st.sampled_from([0, 1, 2, 7, *spec.days, *spec.days]))
            local_day = now.astimezone(zone).date() - dt.timedelta(days=back)
            wall = dt.datetime.combine(local_day, dt.time()) + dt.timedelta(seconds=draw(st.sampled_from([0, -1, 1])))
            at = wall.replace(tzinfo=zone).astimezone(UTC)
        elif kind == 2:
            at = now + dt.timedelta(minutes=draw(st.integers(1, 3000)))  # in the future: ignored
        else:
            at = now - dt.timedelta(minutes=draw(st.integers(0, 14 * 24 * 60)))
        if draw(st.integers(0, 7)) == 0:
            at += dt.timedelta(microseconds=draw(st.integers(1, 999_999)))
        at = shown_in(at, draw(st.integers(0, 2)), ZoneInfo(draw(st.sampled_from(ZONES))))
        contacts.append(Contact(account_id, draw(st.sampled_from(names)), at, draw(st.sampled_from(OUTCOMES))))
    return contacts


@st.composite
def scenarios(draw: st.DrawFn, spec: PolicySpec) -> Scenario:
    zones = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=draw(st.sampled_from([1, 2, 2, 3])),
                          unique=True))
    instant = draw(instants(tuple(spec.wall_times), tuple(zones + spec.default_zones if spec.has_zone else ())))
    if draw(st.integers(0, 7)) == 0:  # `until` is rounded up to the second
        instant += dt.timedelta(microseconds=draw(st.sampled_from([1, 500_000, 999_999])))
    now = shown_in(instant, draw(st.integers(0, 2)), ZoneInfo(draw(st.sampled_from(ZONES))))
    account = draw(accounts(spec, instant, zones))
    history = draw(histories(spec, instant, str(account["id"])))
    return Scenario(account, history, now)


# ------------------------------------------------------------ around clock changes


@st.composite
def clock_change_cases(draw: st.DrawFn) -> tuple[str, Scenario]:
    """A small policy (one action, allowed; one or two windows whose ranges
    start and end in, across and after the hour a clock change skips or
    repeats; perhaps a rolling cap or a quiet period in hours) and a scenario
    within four hours of a clock change in one of the account's zones: where
    window openings are easiest to get wrong."""
    zone_name = draw(st.sampled_from(DST_ZONES))
    zone = ZoneInfo(zone_name)
    near = ["00:00", "00:30", "01:00", "01:15", "01:30", "01:45", "02:00", "02:15", "02:30", "02:45", "03:00",
            "03:30", "04:00"]
    lines = ['policy "clock" version "1"', "account { id : text  tz : zone }", "actions { a }", "allow a"]
    for _ in range(draw(st.integers(1, 2))):
        ranges = []
        for _ in range(draw(st.integers(1, 2))):
            start, end = sorted(draw(st.lists(st.sampled_from([*near, "09:00", "24:00"]), min_size=2, max_size=2,
                                              unique=True)), key=_seconds)
            ranges.append(f"{start}-{end}")
        days = draw(st.sampled_from(["", "", " on sun", " on sat..mon", " on mon..sat"]))
        lines.append(f"window a {', '.join(ranges)}{days}")
    extra = draw(st.integers(0, 4))
    unit = draw(st.sampled_from(["hours", "days"]))
    amount = draw(st.sampled_from([1, 2, 24] if unit == "hours" else [1, 2]))
    if extra == 1:
        lines.append(f"limit a {draw(st.integers(1, 2))} per {amount} {unit}")
    elif extra == 2:
        lines.append(f'quiet a for {amount} {unit} after "c" on a')
    change = _clock_change(zone, dt.date.fromisoformat(draw(st.sampled_from(DST_DAYS[zone_name]))))
    assert change is not None
    instant = change + dt.timedelta(minutes=draw(st.integers(-240, 240)), seconds=draw(st.sampled_from([0, 0, 1, 59])))
    zones = [zone_name, *draw(st.lists(st.sampled_from(ZONES), max_size=1))]
    history = [Contact("A", "a", shown_in(instant - dt.timedelta(minutes=draw(st.integers(0, 48 * 60))),
                                          draw(st.integers(0, 2)), zone), "c")
               for _ in range(draw(st.integers(0, 2)))]
    now = shown_in(instant, draw(st.integers(0, 2)), zone)
    return "\n".join(lines) + "\n", Scenario({"id": "A", "tz": ";".join(dict.fromkeys(zones))}, history, now)
