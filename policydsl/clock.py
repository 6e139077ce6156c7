"""All the time arithmetic of the compiled engine, in one place.

Local time (the instant a wall clock reads a time, local midnights, clock
changes), contact windows in the debtor's local time (`WindowSpec`, built
from a window rule by `window_spec`), calendar-day and rolling caps and
quiet periods (when each frees), and the exact instant a blocked action
becomes allowed again (`next_allowed`). They work on instants and jump from
boundary to boundary; nothing steps through minutes. The constants of time
(`CYCLE`, `DAY`, `MICROSECOND`) have their one copy here; the day names are
the language's own (`nodes.WEEKDAYS`).

The reference interpreter (reference.py) implements windows, caps and
quiet periods again on its own, to cross-check these; it shares only the
constants and the wording of hours (`describe_hours`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from . import nodes as n
from .calendars import is_holiday
from .nodes import WEEKDAYS, hhmm

UTC = dt.UTC
DAY = dt.timedelta(days=1)
MICROSECOND = dt.timedelta(microseconds=1)
# The periodic part of time repeats within this: a week of weekdays in each
# of a year's daylight-saving states, and a year of public holidays. Once
# every non-periodic term of a decision (caps and quiet periods, events
# ageing out, dates compared with today) has settled, an action that is not
# allowed within one CYCLE is never allowed, so `until` is null.
CYCLE = dt.timedelta(days=366 + 7)


# ------------------------------------------------------------ local time


@lru_cache(maxsize=4096)
def first_instant_at_or_after(zone: ZoneInfo, day: dt.date, seconds: int) -> dt.datetime:
    """The first instant whose wall clock in `zone` reads `day` at `seconds`
    after midnight or later. On a spring-forward day a wall time that does
    not exist is reached at the transition itself."""
    wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if early.astimezone(zone).replace(tzinfo=None) == wall:
        return early
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(early, late), max(early, late)
    while high - low > dt.timedelta(seconds=1):  # the gap: find the transition, to the second
        middle = low + dt.timedelta(seconds=(high - low) // dt.timedelta(seconds=2))
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def local_midnight(zone: ZoneInfo, day: dt.date) -> dt.datetime:
    return first_instant_at_or_after(zone, day, 0)


# ------------------------------------------------------------ windows


Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class WindowSpec:
    """Contact hours: time-of-day ranges (seconds, end exclusive) on some
    weekdays (0 = Monday), optionally not on public holidays of a country.

    `ranges` on `weekdays` is the one-line form; `by_day` (seven entries,
    Monday first) gives each weekday its own hours instead. On a public
    holiday of the country the hours are `holiday_ranges` (none: closed)."""

    ranges: Ranges
    weekdays: frozenset[int]
    by_day: tuple[Ranges, ...] = ()
    holiday_ranges: Ranges = ()

    def __post_init__(self) -> None:
        if not self.by_day:
            object.__setattr__(self, "by_day", tuple(self.ranges if day in self.weekdays else ()
                                                     for day in range(7)))

    def hours_on(self, day: dt.date, country: str | None) -> Ranges:
        """The ranges open on local `day`."""
        if country is not None and is_holiday(country, day):
            return self.holiday_ranges
        return self.by_day[day.weekday()]

    def open_on(self, day: dt.date, country: str | None) -> bool:
        return bool(self.hours_on(day, country))

    def inside(self, instant: dt.datetime, zone: ZoneInfo, country: str | None) -> bool:
        local = instant.astimezone(zone)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return any(start <= seconds < end for start, end in self.hours_on(local.date(), country))

    def open_intervals(self, zone: ZoneInfo, country: str | None, start: dt.datetime, end: dt.datetime
                       ) -> list[tuple[dt.datetime, dt.datetime]]:
        """The instants of [start, end) inside the window in `zone`, as
        sorted disjoint [from, to) intervals. Within a stretch of constant
        UTC offset the wall clock only moves forward, so `inside` can change
        only where it reads a new day or a start or end of that day's own
        ranges (`hours_on`: its weekday's, or the holiday hours): those
        instants, and the offset changes, cut [start, end) into pieces that
        are wholly inside or wholly outside."""
        cuts = {start, end}
        for low, high, offset in _offset_pieces(zone, start, end):
            cuts.add(low)
            wall_low, wall_high = (low + offset).replace(tzinfo=None), (high + offset).replace(tzinfo=None)
            day = wall_low.date()
            while day <= wall_high.date():
                midnight = dt.datetime.combine(day, dt.time())
                for seconds in {0, *(edge for bounds in self.hours_on(day, country) for edge in bounds)}:
                    wall = midnight + dt.timedelta(seconds=seconds)
                    if wall_low < wall < wall_high:
                        cuts.add((wall - offset).replace(tzinfo=UTC))
                day += DAY
        ordered = sorted(cuts)
        intervals: list[tuple[dt.datetime, dt.datetime]] = []
        for low, high in itertools.pairwise(ordered):
            if not self.inside(low, zone, country):
                continue
            if intervals and intervals[-1][1] == low:
                intervals[-1] = (intervals[-1][0], high)
            else:
                intervals.append((low, high))
        return intervals

    def next_open(self, instant: dt.datetime, zone: ZoneInfo, country: str | None) -> dt.datetime | None:
        """The earliest instant >= `instant` inside the window in `zone`:
        day by day, each day's own ranges (within a CYCLE: a window that opens
        on no day never opens)."""
        if self.inside(instant, zone, country):
            return instant
        day = instant.astimezone(zone).date()
        for offset in range(CYCLE.days):
            candidate_day = day + dt.timedelta(days=offset)
            ranges = self.hours_on(candidate_day, country)
            if not ranges:
                continue
            # The window opens where the wall clock reaches a range's start (on
            # a fall-back day, its second occurrence too) or where a clock change
            # jumps into a range; the earliest of these that is inside wins.
            openings = _clock_changes(zone, candidate_day)
            for start, _end in ranges:
                wall = dt.datetime.combine(candidate_day, dt.time()) + dt.timedelta(seconds=start)
                openings.append(first_instant_at_or_after(zone, candidate_day, start))
                openings.append(wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
            found = [t for t in openings if t >= instant and self.inside(t, zone, country)]
            if found:
                return min(found)
        return None


def window_spec(rule: n.Window) -> WindowSpec:
    """The hours of a window rule, in either form. A table's lines that name
    the same weekday add their ranges up (in the order written)."""
    if not rule.table:
        return WindowSpec(tuple((r.start, r.end) for r in rule.ranges), _weekdays(rule.days))
    by_day: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for line in rule.table:
        for day in sorted(_weekdays(line.days)):
            by_day[day].extend((r.start, r.end) for r in line.ranges if (r.start, r.end) not in by_day[day])
    return WindowSpec((), frozenset(), tuple(tuple(ranges) for ranges in by_day),
                      tuple((r.start, r.end) for r in rule.holiday_ranges))


def _weekdays(days: tuple[n.DaySpec, ...]) -> frozenset[int]:
    """The weekdays (0 = Monday) `on mon..fri, sun` names (`fri..mon`
    wraps, `DaySpec.weekdays`); none named: all."""
    if not days:
        return frozenset(range(7))
    return frozenset(day for spec in days for day in spec.weekdays())


@lru_cache(maxsize=4096)  # the same windows, zones and instant recur for the accounts of one run
def first_common_opening(windows: tuple[tuple[WindowSpec, ZoneInfo, str | None], ...], instant: dt.datetime,
                         end: dt.datetime) -> dt.datetime | None:
    """The earliest instant in [instant, end] inside every window in its
    zone, or None. Day by day, the open intervals of each window are
    intersected with what is still common, so the work grows linearly with
    the number of windows and zones (and stops at the first that is closed
    all day), where jumping from one window's opening to the next could
    bounce between zones for every pair of them."""
    step = DAY
    low = instant
    while low <= end:
        high = low + step
        common = [(low, high)]
        for spec, zone, country in windows:
            common = _intersect(common, spec.open_intervals(zone, country, low, high))
            if not common:
                break
        if common:
            return common[0][0] if common[0][0] <= end else None
        low = high
    return None


def _intersect(first: list[tuple[dt.datetime, dt.datetime]], second: list[tuple[dt.datetime, dt.datetime]]
               ) -> list[tuple[dt.datetime, dt.datetime]]:
    """The intersection of two sorted lists of disjoint [from, to) intervals."""
    out = []
    i = j = 0
    while i < len(first) and j < len(second):
        low, high = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if low < high:
            out.append((low, high))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return out


def _offset_pieces(zone: ZoneInfo, start: dt.datetime, end: dt.datetime
                   ) -> list[tuple[dt.datetime, dt.datetime, dt.timedelta]]:
    """[start, end) (at most a day or so) cut where the UTC offset of `zone`
    changes, each piece with its offset."""
    pieces = []
    low = start
    while low < end:
        high = offset_change(zone, low, end) or end
        pieces.append((low, high, low.astimezone(zone).utcoffset() or dt.timedelta()))
        low = high
    return pieces


def _clock_changes(zone: ZoneInfo, day: dt.date) -> list[dt.datetime]:
    """The instant the UTC offset of `zone` changes during local `day`
    (its next midnight included), if it does."""
    low, high = local_midnight(zone, day), local_midnight(zone, day + dt.timedelta(days=1))
    change = offset_change(zone, low, high + MICROSECOND)
    return [] if change is None else [change]


def offset_change(zone: ZoneInfo, low: dt.datetime, high: dt.datetime) -> dt.datetime | None:
    """The instant within (low, high) at which the UTC offset of `zone`
    first differs from its offset at `low`, or None when it is the same
    just before `high`. Zone rules change offsets at whole seconds, so the
    bisection stops at a second and rounds down to it. Windows, clock-change
    openings and the compiled `until` search all cut time here."""
    before = low.astimezone(zone).utcoffset()
    if (high - MICROSECOND).astimezone(zone).utcoffset() == before:
        return None
    start = low
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    whole = high.replace(microsecond=0)
    return whole if whole > start else high


def first_reached(reached: Callable[[dt.datetime], bool], low: dt.datetime, high: dt.datetime) -> dt.datetime:
    """The first instant (to the microsecond) in (low, high] at which
    `reached` holds, given that it fails at `low` and holds at `high`: the
    search both engines use once they have bracketed a flip of a condition."""
    while high - low > MICROSECOND:
        middle = low + (high - low) // 2
        if reached(middle):
            high = middle
        else:
            low = middle
    return high


# ------------------------------------------------------------ caps and quiet periods


def local_day_cap_free_at(dates_newest_first: Sequence[dt.date], count: int, days: int, today: dt.date,
                          zone: ZoneInfo) -> dt.datetime | None:
    """For "at most `count` per `days` calendar days" (today included): None
    when under the cap today, else the local midnight it frees at."""
    first_out = today - dt.timedelta(days=days)
    if sum(day > first_out for day in dates_newest_first) < count:
        return None
    return local_midnight(zone, dates_newest_first[count - 1] + dt.timedelta(days=days))


def calendar_day_cap_free_at(instants_newest_first: Iterable[dt.datetime], count: int, days: int,
                             now: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    """For "at most `count` per `days` calendar days" in `zone` (today
    included), given the counted events' instants: None when under the cap
    today, else the local midnight it frees at."""
    today = now.astimezone(zone).date()
    # An event a day or more before the period's first midnight is on an earlier local day whatever the
    # clock changes (they shift the wall clock by less than a day): only the newer ones need a local date.
    try:
        recent = local_midnight(zone, today - dt.timedelta(days=days - 1)) - DAY
        instants = list(itertools.takewhile(lambda at: at >= recent, instants_newest_first))
    except OverflowError:  # a period reaching back past year 1: every event is recent
        instants = list(instants_newest_first)
    dates = [at.astimezone(zone).date() for at in instants]
    return local_day_cap_free_at(dates, count, days, today, zone)


def rolling_cap_free_at(instants_newest_first: Sequence[dt.datetime], count: int, hours: int,
                        now: dt.datetime) -> dt.datetime | None:
    """For "at most `count` per `hours` hours" over (now - hours, now]."""
    period = dt.timedelta(hours=hours)
    first_out = now - period
    if sum(at > first_out for at in instants_newest_first) < count:
        return None
    return instants_newest_first[count - 1] + period


def period_end(at: dt.datetime, period: n.Period, zone: ZoneInfo) -> dt.datetime:
    """When an event at `at` leaves a period after it: `period` hours later,
    or the local midnight in `zone` that many calendar days after its local
    day. A quiet period after the event frees then, and a `count(...)` over
    the period stops counting it."""
    if period.unit == "hours":
        return at + dt.timedelta(hours=period.amount)
    return local_midnight(zone, at.astimezone(zone).date() + dt.timedelta(days=period.amount))


def not_before(free_at: dt.datetime) -> Callable[[dt.datetime], dt.datetime | None]:
    """A cap or quiet period as a constraint of `next_allowed`: nothing before `free_at`."""
    return lambda instant: max(instant, free_at)


def next_allowed(now: dt.datetime, constraints: Iterable[Callable[[dt.datetime], dt.datetime | None]],
                 end: dt.datetime) -> dt.datetime | None:
    """The earliest instant in [now, end] at which every constraint allows.
    Each constraint maps an instant to the earliest instant >= it that it
    allows (or None: never). Moving to the latest answer and asking again
    reaches the common point, because each constraint's answer only moves
    forward."""
    rules = list(constraints)
    instant = now
    while instant <= end:
        answers = [rule(instant) for rule in rules]
        if any(answer is None for answer in answers):
            return None
        latest = max(answers, default=instant)  # type: ignore[type-var]
        if latest == instant:
            return instant
        instant = latest  # type: ignore[assignment]
    return None


def describe_hours(by_day: Sequence[Ranges], holiday_ranges: Ranges, country: str | None) -> str:
    """A window's hours as messages show them (both engines word them so):
    `08:00-21:00 on mon, tue, ...`, weekdays with the same hours together,
    `; ` between different hours, then what public holidays do."""
    groups: dict[Ranges, list[int]] = {}
    for day, ranges in enumerate(by_day):
        if ranges:
            groups.setdefault(tuple(ranges), []).append(day)
    text = "; ".join(describe_ranges(ranges) + describe_days(frozenset(days))
                     for ranges, days in groups.items()) or "never"
    if country and holiday_ranges:
        text += f"; {describe_ranges(holiday_ranges)} on {country} public holidays"
    elif country:
        text += f", not on {country} public holidays"
    return text


def describe_days(weekdays: frozenset[int]) -> str:
    if len(weekdays) == 7:
        return ""
    return " on " + ", ".join(WEEKDAYS[day] for day in sorted(weekdays))


def describe_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    return ", ".join(f"{hhmm(start)}-{hhmm(end)}" for start, end in ranges)
