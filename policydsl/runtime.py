"""What evaluation produces and the time arithmetic it needs.

`Decision` is the answer for one account; `Blocked` says why one action is
not allowed and until when. The functions below compute contact windows in
the debtor's local time, calendar-day and rolling caps and quiet periods,
and the exact instant a blocked action becomes allowed again. They work on
instants and jump from boundary to boundary; nothing steps through minutes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from .calendars import is_holiday
from .errors import InputTypeError, InputValueError, UnknownActionError

UTC = dt.UTC
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The periodic part of time repeats within this: a week of weekdays in each
# of a year's daylight-saving states, and a year of public holidays. Once
# every non-periodic term of a decision (caps and quiet periods, events
# ageing out, dates compared with today) has settled, an action that is not
# allowed within one CYCLE is never allowed, so `until` is null.
CYCLE = dt.timedelta(days=366 + 7)
_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class RuleInfo:
    """A rule as decisions cite it: where it is, what it says, and which
    account values it reads (for explanations)."""

    file: str
    line: int
    text: str
    because: str | None = None
    cite: str | None = None
    reads: tuple[str, ...] = ()
    id: str = ""  # stable across edits elsewhere in the policy (Model.assign_ids)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def head(self) -> str:
        """The rule without its `because`/`cite` text (shown separately)."""
        return _REASON_TAIL.split(self.text, maxsplit=1)[0]


_REASON_TAIL = re.compile(r' (?:because|cite) "')


@dataclass(frozen=True)
class Contact:
    """One event of contact history. `at` must carry an offset; `outcome` is
    free text (`conversation` marks a call in which the debtor was reached)."""

    account_id: str
    action: str
    at: dt.datetime
    outcome: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.at, dt.datetime):
            raise InputTypeError(f"contact time must be a datetime, not {type(self.at).__name__}")
        if self.at.tzinfo is UTC:  # as the file readers give it
            return
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise InputValueError(f"contact time {self.at.isoformat()} has no offset")
        # Kept in UTC: the same instant, and arithmetic on it is elapsed time
        # (Python adds wall-clock time to datetimes that share a ZoneInfo).
        try:
            object.__setattr__(self, "at", self.at.astimezone(UTC))
        except OverflowError:
            raise InputValueError(f"contact time {self.at.isoformat()} is outside the years 1-9999 in UTC") from None


@dataclass(frozen=True)
class Blocked:
    """One reason one action is not allowed now. `kind` is one of
    not_allowed, forbidden, window, limit, quiet. `until` is when the action
    as a whole becomes allowed (the same on every entry of that action), or
    None when time alone cannot lift the block."""

    action: str
    kind: str
    reason: str
    rule: RuleInfo
    until: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "reason": self.reason,
            "rule": self.rule.location,
            "rule_id": self.rule.id,
            "until": format_instant(self.until),
        }


@dataclass(frozen=True)
class Provenance:
    """Which policy decided: its header's name and version and the digest
    of its resolved sources (`Model.digest`)."""

    name: str
    version: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "digest": self.digest}


@dataclass(frozen=True)
class HistoryFact:
    """What one history aggregate found for an account: its value and the
    events it counted (newest first), which explanations list."""

    value: Any
    events: tuple[Contact, ...]


@dataclass(frozen=True)
class Evidence:
    """What explanations need beyond the decision itself: the account values
    read, the stage's range and which rule allowed each allowed action."""

    values: Mapping[str, Any] = field(default_factory=dict)
    stage_rule: RuleInfo | None = None
    stage_field: str | None = None
    allowed_by: Mapping[str, RuleInfo] = field(default_factory=dict)
    segment_rules: Mapping[str, RuleInfo] = field(default_factory=dict)
    history: Mapping[str, HistoryFact] = field(default_factory=dict)  # by the aggregate's text


@dataclass(frozen=True)
class Decision:
    """The answer for one account at one instant."""

    account_id: str | None
    stage: str | None
    segments: tuple[str, ...]
    allowed: tuple[str, ...]
    blocked: tuple[Blocked, ...]
    error: str | None = None
    evidence: Evidence = field(default_factory=Evidence, compare=False, repr=False)
    # The deciding policy's actions, so that asking about an action it does not
    # declare is an error rather than a plausible False/None (None: not known).
    actions: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    now: dt.datetime | None = None  # the instant decided at, in UTC
    policy: Provenance | None = None

    @property
    def next_action(self) -> str | None:
        """The first allowed action in priority order, or None."""
        return self.allowed[0] if self.allowed else None

    def is_allowed(self, action: str) -> bool:
        """Raises UnknownActionError for an action the policy does not declare."""
        self._known(action)
        return action in self.allowed

    def until(self, action: str) -> dt.datetime | None:
        """When a blocked `action` becomes allowed (None: not by time alone,
        or already allowed). Raises UnknownActionError for an undeclared action."""
        self._known(action)
        for entry in self.blocked:
            if entry.action == action:
                return entry.until
        return None

    def _known(self, action: str) -> None:
        if self.actions is not None and action not in self.actions:
            raise UnknownActionError(action, self.actions)

    def reasons(self, action: str) -> tuple[Blocked, ...]:
        return tuple(entry for entry in self.blocked if entry.action == action)

    def to_dict(self) -> dict[str, Any]:
        """The data contract's JSON object (docs/decision.schema.json)."""
        return {
            "account_id": self.account_id,
            "stage": self.stage,
            "segments": list(self.segments),
            "allowed": list(self.allowed),
            "next_action": self.next_action,
            "blocked": [entry.to_dict() for entry in self.blocked],
            "error": self.error,
            "now": format_exact_instant(self.now),
            "policy": self.policy.to_dict() if self.policy else None,
        }

    def explain(self) -> str:
        """Why each action is allowed or blocked, citing the policy lines."""
        from .explain import explain_text

        return explain_text(self)


def format_instant(instant: dt.datetime | None) -> str | None:
    """UTC, to the second, rounded up so that the action is allowed at the
    instant shown."""
    if instant is None:
        return None
    instant = instant.astimezone(UTC)
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + dt.timedelta(seconds=1)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_exact_instant(instant: dt.datetime | None) -> str | None:
    """UTC with `Z`, to the microsecond when there is a fraction: the
    instant exactly, so that a decision can be reproduced with `--now`."""
    if instant is None:
        return None
    text = instant.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


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
                day += dt.timedelta(days=1)
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


@lru_cache(maxsize=4096)  # the same windows, zones and instant recur for the accounts of one run
def first_common_opening(windows: tuple[tuple[WindowSpec, ZoneInfo, str | None], ...], instant: dt.datetime,
                         end: dt.datetime) -> dt.datetime | None:
    """The earliest instant in [instant, end] inside every window in its
    zone, or None. Day by day, the open intervals of each window are
    intersected with what is still common, so the work grows linearly with
    the number of windows and zones (and stops at the first that is closed
    all day), where jumping from one window's opening to the next could
    bounce between zones for every pair of them."""
    step = dt.timedelta(days=1)
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
    change = offset_change(zone, low, high + _MICROSECOND)
    return [] if change is None else [change]


def offset_change(zone: ZoneInfo, low: dt.datetime, high: dt.datetime) -> dt.datetime | None:
    """The instant within (low, high) at which the UTC offset of `zone`
    first differs from its offset at `low`, or None when it is the same
    just before `high`. Zone rules change offsets at whole seconds, so the
    bisection stops at a second and rounds down to it. Windows, clock-change
    openings and the compiled `until` search all cut time here."""
    before = low.astimezone(zone).utcoffset()
    if (high - _MICROSECOND).astimezone(zone).utcoffset() == before:
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
    while high - low > _MICROSECOND:
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
    in_period = [day for day in dates_newest_first if day > today - dt.timedelta(days=days)]
    if len(in_period) < count:
        return None
    return local_midnight(zone, dates_newest_first[count - 1] + dt.timedelta(days=days))


def rolling_cap_free_at(instants_newest_first: Sequence[dt.datetime], count: int, hours: int,
                        now: dt.datetime) -> dt.datetime | None:
    """For "at most `count` per `hours` hours" over (now - hours, now]."""
    period = dt.timedelta(hours=hours)
    in_period = [at for at in instants_newest_first if at > now - period]
    if len(in_period) < count:
        return None
    return instants_newest_first[count - 1] + period


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
    return " on " + ", ".join(DAY_NAMES[day] for day in sorted(weekdays))


def describe_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    return ", ".join(f"{_hhmm(start)}-{_hhmm(end)}" for start, end in ranges)


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"
