"""When time alone changes a condition: the instants the compiled engine tries for `until`.

A condition that reads time (`now`, `today()`, `days_since`, `days_until`,
`hours_since`, `local_time()`, `weekday()`, or a history aggregate whose
events age out) can block an action now and let it through later. Its value
changes only at finitely many instants, of two sorts:

- *settling* instants, each passed once: where a comparison of a term that
  only grows with time (`days_since(d) >= 3`, `today() < due`, `now >
  promised_at + 2 days`, `hours_since_last(call) < 4`) flips, and where a
  counted event leaves a `count(...)` period. A comparison is treated as
  affine in time: its two sides are sampled a day apart, the crossing is
  solved for, and the local midnights and instants around it are tried
  (a term stepping once a day flips within a day of the affine crossing);
- *periodic* instants, which recur: local midnights, clock changes and,
  within each stretch of constant UTC offset, the crossings of comparisons
  of `local_time()`, for `weekday()` and `local_time()`.

Between two settling instants the settled part is constant and the periodic
part repeats within `clock.CYCLE`, so searching one CYCLE from each
settling instant (or only the settling instants, when nothing is periodic)
finds the first instant allowed, or proves there is none.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from . import nodes as n
from .clock import CYCLE, DAY, MICROSECOND, first_reached, local_midnight, offset_change, period_end
from .decision import Contact

_SETTLING_CALLS = frozenset({"today", "days_since", "days_until", "hours_since"})
_PERIODIC_CALLS = frozenset({"local_time", "weekday"})


def reads_time(expr: n.Expr) -> bool:
    """Whether time alone can change the value of `expr` (segments aside)."""
    return any(_time_term(node) for node in n.walk(expr))


def _time_term(node: n.Expr) -> bool:
    if isinstance(node, n.NowRef):
        return True
    if isinstance(node, n.Call):
        return node.name in _SETTLING_CALLS or node.name in _PERIODIC_CALLS
    return isinstance(node, n.History) and node.kind != "streak"


def _periodic(node: n.Expr) -> bool:
    return any(isinstance(part, n.Call) and part.name in _PERIODIC_CALLS for part in n.walk(node))


Side = Callable[[Any], Any]  # a compiled expression: context -> value


@dataclass(frozen=True)
class Timing:
    """How time can change one action's conditions, found at compile time:
    the comparisons (and memberships, one per set element) whose sides read
    time, split into settling and periodic ones, the `count` aggregates
    whose events age out, and whether weekdays or the clock matter."""

    settling: tuple[tuple[Side, Side], ...]
    periodic: tuple[tuple[Side, Side], ...]
    counts: tuple[n.History, ...]
    daily: bool  # weekday() or local_time(): every local midnight matters, forever


def timing(conditions: list[n.Expr], compile_side: Callable[[n.Expr], Side]) -> Timing | None:
    """The Timing of some conditions, or None when none of them reads time."""
    if not any(reads_time(condition) for condition in conditions):
        return None
    settling: list[tuple[Side, Side]] = []
    periodic: list[tuple[Side, Side]] = []
    counts: list[n.History] = []
    daily = False
    for condition in conditions:
        for node in n.walk(condition):
            if isinstance(node, n.History) and node.kind == "count":
                counts.append(node)
            daily = daily or (isinstance(node, n.Call) and node.name in _PERIODIC_CALLS)
            sides = _sides(node)
            if sides is None or not reads_time(node):
                continue
            bucket = periodic if _periodic(node) else settling
            bucket.append((compile_side(sides[0]), compile_side(sides[1])))
    return Timing(tuple(settling), tuple(periodic), tuple(counts), daily)


def _sides(node: n.Expr) -> tuple[n.Expr, n.Expr] | None:
    """The two sides whose difference crossing zero flips `node`."""
    if isinstance(node, n.Compare):
        return node.left, node.right
    if isinstance(node, n.Membership):
        return node.item, node.container  # the container's elements are tried one by one
    return None


def _difference(left: Any, right: Any) -> list[Decimal]:
    """`left - right` as numbers (a set on the right: against each element):
    microseconds for instants and durations, days for dates; nothing for
    values that are not ordered quantities (text, bool)."""
    rights = sorted(right, key=str) if isinstance(right, frozenset) else [right]
    out = []
    for value in rights:
        if isinstance(left, bool) or isinstance(value, bool):
            continue
        if isinstance(left, dt.datetime) and isinstance(value, dt.datetime):
            out.append(Decimal((left - value) // MICROSECOND))
        elif isinstance(left, dt.timedelta) and isinstance(value, dt.timedelta):  # `now - paid_at >= 25 days`
            out.append(Decimal(left // MICROSECOND - value // MICROSECOND))
        elif isinstance(left, dt.date) and isinstance(value, dt.date) and not isinstance(left, dt.datetime):
            out.append(Decimal((left - value).days))
        elif isinstance(left, (int, Decimal)) and isinstance(value, (int, Decimal)) \
                and Decimal(left).is_finite() and Decimal(value).is_finite():
            out.append(Decimal(left) - Decimal(value))
    return out


# Solving where a line through two values crosses zero rounds (a quotient
# rarely terminates): to more digits than any instant needs, and only to
# propose candidates, each of which is then judged exactly.
_SOLVING = Context(prec=60)


def crossings(sides: tuple[Side, Side], at: Callable[[dt.datetime], Any], low: dt.datetime,
              step: dt.timedelta, since: dt.datetime | None = None) -> list[dt.datetime]:
    """Where `left - right` crosses zero at or after `since` (default
    `low`), extrapolating the line through its values at `low` and
    `low + step`; the crossing instant and the one after."""
    left, right = sides
    here, there = at(low), at(low + step)
    found: list[dt.datetime] = []
    pairs = list(zip(_difference(left(here), right(here)), _difference(left(there), right(there)), strict=False))
    for start, end in pairs:
        with localcontext(_SOLVING):  # the policy's own arithmetic is exact or trapped; this solve rounds
            slope = (end - start) / Decimal(step // MICROSECOND)
            if slope == 0:
                continue
            offset = -start / slope
        if abs(offset) > Decimal(dt.timedelta.max // MICROSECOND) / 2:
            continue
        try:
            crossing = low + dt.timedelta(microseconds=int(offset.to_integral_value(rounding="ROUND_CEILING")))
        except OverflowError:
            continue
        if crossing >= (low if since is None else since):
            found.extend((crossing, crossing + MICROSECOND))
    return found


class Search:
    """The instants at which one action's conditions may change from
    `now` on, and the first of them at which they allow it.

    `at(instant)` builds a context for an instant; `allowed(context)` says
    whether the action's segments, allows and forbids let it through there.
    """

    def __init__(self, plan: Timing, now: dt.datetime, zone: ZoneInfo, events: list[Contact],
                 expand: Callable[[n.Targets], frozenset[str]], at: Callable[[dt.datetime], Any],
                 allowed: Callable[[Any], bool]) -> None:
        self.plan = plan
        self.now = now
        self.zone = zone
        self.at = at
        self.allowed = allowed
        self.points = sorted({point for point in self._settling(events, expand) if point > now})

    @property
    def settled(self) -> dt.datetime:
        """The instant after which only periodic terms still change."""
        return self.points[-1] if self.points else self.now

    def _settling(self, events: list[Contact], expand: Callable[[n.Targets], frozenset[str]]
                  ) -> Iterator[dt.datetime]:
        low = _steady_day(self.zone, self.now)
        for sides in self.plan.settling:
            for crossing in crossings(sides, self.at, low, DAY, since=self.now)[::2]:
                yield crossing
                yield crossing + MICROSECOND
                yield from self._steps(sides, crossing)
        for aggregate in self.plan.counts:
            period = aggregate.period
            assert period is not None
            actions = expand(aggregate.targets)
            for event in events:
                if event.action not in actions:
                    continue
                yield period_end(event.at, period, self.zone)

    def _steps(self, sides: tuple[Side, Side], crossing: dt.datetime) -> Iterator[dt.datetime]:
        """Where a term that steps once a day (`today()`, `days_since`)
        really flips: within a day or so of the line's crossing, found by
        bisection on the sign of `left - right` (first >= 0, first > 0)."""
        low, high = max(self.now, crossing - 2 * DAY), crossing + 2 * DAY
        elements = len(_difference(sides[0](self.at(low)), sides[1](self.at(low))))
        for index in range(elements):
            for strict in (False, True):
                def holds(instant: dt.datetime, index: int = index, strict: bool = strict) -> bool:
                    context = self.at(instant)
                    differences = _difference(sides[0](context), sides[1](context))
                    value = differences[index]
                    return value > 0 if strict else value >= 0
                first, last = holds(low), holds(high)
                if first != last:
                    yield first_reached(_reaches(holds, last), low, high)

    def first_allowed(self, instant: dt.datetime, end: dt.datetime) -> dt.datetime | None:
        """The first instant in [instant, end] at which the conditions allow."""
        for candidate in self._candidates(instant, end):
            if self.allowed(self.at(candidate)):
                return candidate
        return None

    def _candidates(self, instant: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        starts = [instant, *(point for point in self.points if instant < point <= end)]
        if not (self.plan.daily or self.plan.periodic):
            yield from starts
            return
        # From each settling instant one CYCLE of periodic instants, merged in order.
        streams = [self._periodic_points(start, min(end, start + CYCLE)) for start in starts]
        previous = None
        for candidate in heapq.merge(*streams):
            if candidate != previous:
                yield candidate
            previous = candidate

    def _periodic_points(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        yield start
        day = start.astimezone(self.zone).date()
        while True:
            low, high = local_midnight(self.zone, day), local_midnight(self.zone, day + DAY)
            if low > end:
                return
            points = {low, *self._clock_roots(low, high)}
            yield from sorted(point for point in points if start < point <= end)
            day += DAY

    def _clock_roots(self, low: dt.datetime, high: dt.datetime) -> list[dt.datetime]:
        """Crossings of `local_time()` comparisons in one local day, solved
        in each stretch of constant UTC offset."""
        if not self.plan.periodic:
            return []
        change = offset_change(self.zone, low, high)
        cuts = [low, *([] if change is None else [change]), high]
        found = []
        for piece_low, piece_high in itertools.pairwise(cuts):
            step = min(dt.timedelta(hours=1), (piece_high - piece_low) / 2)
            if step <= dt.timedelta():
                continue
            found.append(piece_low)
            for sides in self.plan.periodic:
                for crossing in crossings(sides, self.at, piece_low, step)[::2]:
                    # `local_time()` counts whole seconds: `==` and `>` flip a second on.
                    after = crossing.replace(microsecond=0) + dt.timedelta(seconds=1)
                    found.extend(t for t in (crossing, crossing + MICROSECOND, after) if t < piece_high)
        return found


def _steady_day(zone: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The first of `now`, a day later, ... whose 24 hours end with the UTC
    offset they start with: across a clock change a term that steps once a
    local day (`today()`, `days_since`) may not step at all in 24 hours
    (a 25-hour day), and the line through two such samples never crosses."""
    low = now
    for _ in range(3):
        if low.astimezone(zone).utcoffset() == (low + DAY).astimezone(zone).utcoffset():
            return low  # the same offset at both ends: no change between (zones change at most once a day)
        low += DAY
    return now


def _reaches(holds: Callable[[dt.datetime], bool], value: bool) -> Callable[[dt.datetime], bool]:
    return lambda instant: holds(instant) == value
