"""Local time: windows across DST (wall clock), half-hour zones, several
zones at once, calendar-day and rolling caps, quiet periods, holidays, and
`until`: exact, and a property that it is the first instant allowed."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policydsl import Contact, Decision, Policy, compile_policy
from policydsl.clock import WindowSpec, first_instant_at_or_after, local_midnight

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")
SECOND = dt.timedelta(seconds=1)

HEAD = """\
policy "time" version "1"
account {
    id      : text
    tz      : zone = "America/New_York"
    country : text = "CN"
}
actions { sms, call, push }
events { inbound_call }
allow all
"""


def make(rules: str) -> Policy:
    return compile_policy(HEAD + rules)


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=zone, fold=fold)  # type: ignore[misc]


def decide(policy: Policy, now: dt.datetime, history: tuple[Contact, ...] = (), **account: Any) -> Decision:
    row: dict[str, Any] = {"id": "A1"}
    row.update(account)
    decision = policy.evaluate(row, history, now=now)
    assert decision.error is None, decision.error
    return decision


def contact(action: str, at: dt.datetime, outcome: str = "") -> Contact:
    return Contact("A1", action, at, outcome)


def kinds(decision: Decision, action: str) -> list[str]:
    return sorted(entry.kind for entry in decision.reasons(action))


def assert_frees_at(policy: Policy, action: str, now: dt.datetime, until: dt.datetime,
                    history: tuple[Contact, ...] = (), **account: Any) -> None:
    """Blocked at `now` with exactly this `until`; still blocked one second
    before it and allowed at it."""
    decision = decide(policy, now, history, **account)
    assert not decision.is_allowed(action)
    assert decision.until(action) == until, (decision.until(action), until)
    assert until.astimezone(UTC).microsecond == 0
    just_before = until.astimezone(UTC) - SECOND  # elapsed time: arithmetic in UTC
    if just_before >= now:
        assert not decide(policy, just_before, history, **account).is_allowed(action)
    assert decide(policy, until, history, **account).is_allowed(action)


# ---------------------------------------------------------------- America/New_York DST


def test_spring_forward_window_keeps_wall_clock() -> None:
    policy = make("window sms 08:00-21:00\n")
    # the day before, 08:00 EST is 13:00 UTC; on 2025-03-09 08:00 EDT is 12:00 UTC
    assert_frees_at(policy, "sms", utc(2025, 3, 8, 6), utc(2025, 3, 8, 13))
    assert_frees_at(policy, "sms", utc(2025, 3, 9, 7, 30), utc(2025, 3, 9, 12))  # 03:30 EDT
    assert_frees_at(policy, "sms", utc(2025, 3, 9, 6, 59, 59), utc(2025, 3, 9, 12))  # 01:59:59 EST
    # closes at 21:00 EDT = 01:00 UTC the next day
    assert decide(policy, utc(2025, 3, 10, 0, 59, 59)).is_allowed("sms")
    assert_frees_at(policy, "sms", utc(2025, 3, 10, 1), utc(2025, 3, 10, 12))


def test_spring_forward_window_starting_in_the_skipped_hour_opens_at_the_jump() -> None:
    policy = make("window sms 02:30-04:00\n")
    # 02:30 does not exist on 2025-03-09: the window opens at 03:00 EDT (07:00 UTC)
    assert_frees_at(policy, "sms", utc(2025, 3, 9, 6), utc(2025, 3, 9, 7))
    assert decide(policy, utc(2025, 3, 9, 7, 59, 59)).is_allowed("sms")  # 03:59:59 EDT
    assert_frees_at(policy, "sms", utc(2025, 3, 9, 8), local(NY, 2025, 3, 10, 2, 30))


def test_fall_back_window_keeps_wall_clock() -> None:
    policy = make("window sms 08:00-21:00\n")
    assert_frees_at(policy, "sms", utc(2025, 11, 1, 4), utc(2025, 11, 1, 12))  # 08:00 EDT
    assert_frees_at(policy, "sms", utc(2025, 11, 2, 6, 30), utc(2025, 11, 2, 13))  # 08:00 EST
    assert decide(policy, utc(2025, 11, 3, 1, 59, 59)).is_allowed("sms")  # 20:59:59 EST
    assert not decide(policy, utc(2025, 11, 3, 2)).is_allowed("sms")


def test_fall_back_repeated_hour_is_inside_twice() -> None:
    policy = make("window sms 01:00-01:30\n")
    assert decide(policy, utc(2025, 11, 2, 5, 10)).is_allowed("sms")  # 01:10 EDT
    # 01:45 EDT: outside, but the wall clock reads 01:00 again at 06:00 UTC
    assert_frees_at(policy, "sms", utc(2025, 11, 2, 5, 45), utc(2025, 11, 2, 6))
    assert decide(policy, utc(2025, 11, 2, 6, 15)).is_allowed("sms")  # 01:15 EST
    assert_frees_at(policy, "sms", utc(2025, 11, 2, 6, 30), local(NY, 2025, 11, 3, 1))


def test_fall_back_jump_back_into_a_window() -> None:
    policy = make("window sms 00:00-01:30\n")
    # 01:45 EDT is outside; the clock change to 01:00 EST puts it back inside
    assert_frees_at(policy, "sms", utc(2025, 11, 2, 5, 45), utc(2025, 11, 2, 6))


def test_day_cap_on_the_23_and_25_hour_days() -> None:
    policy = make("limit sms 1 per day\n")
    spring = (contact("sms", utc(2025, 3, 9, 12)),)
    assert_frees_at(policy, "sms", utc(2025, 3, 9, 20), utc(2025, 3, 10, 4), spring)  # midnight EDT
    fall = (contact("sms", utc(2025, 11, 2, 4, 30)),)  # 00:30 EDT
    assert_frees_at(policy, "sms", utc(2025, 11, 2, 10), utc(2025, 11, 3, 5), fall)  # midnight EST


def test_quiet_days_across_spring_forward() -> None:
    policy = make('quiet call for 2 days after "conversation" on call\n')
    history = (contact("call", local(NY, 2025, 3, 8, 10), "conversation"),)
    # days 1 and 2 are March 8 and 9; frees at midnight EDT of March 10 (not 48 h later)
    assert_frees_at(policy, "call", local(NY, 2025, 3, 8, 11), utc(2025, 3, 10, 4), history)


def test_cap_frees_at_midnight_but_the_window_opens_at_eight() -> None:
    policy = make("window sms 08:00-21:00\nlimit sms 1 per day\n")
    history = (contact("sms", utc(2025, 3, 9, 14)),)
    decision = decide(policy, utc(2025, 3, 9, 20), history)
    assert kinds(decision, "sms") == ["limit"]
    assert_frees_at(policy, "sms", utc(2025, 3, 9, 20), utc(2025, 3, 10, 12), history)  # 08:00 EDT
    # and after 21:00 both block
    late = decide(policy, utc(2025, 3, 10, 2), history)
    assert kinds(late, "sms") == ["limit", "window"]
    assert {entry.until for entry in late.reasons("sms")} == {utc(2025, 3, 10, 12)}


# ---------------------------------------------------------------- half-hour zones


def test_lord_howe_half_hour_dst_start() -> None:
    policy = make("window sms 08:00-21:00\n")
    tz = "Australia/Lord_Howe"
    assert_frees_at(policy, "sms", utc(2025, 10, 3, 12), utc(2025, 10, 3, 21, 30), tz=tz)  # +10:30
    assert_frees_at(policy, "sms", utc(2025, 10, 4, 12), utc(2025, 10, 4, 21), tz=tz)  # +11 from Oct 5
    skipped = make("window sms 02:10-03:00\n")
    # 02:00 -> 02:30 at 15:30 UTC: the window opens exactly then, to the second
    assert_frees_at(skipped, "sms", utc(2025, 10, 4, 15), utc(2025, 10, 4, 15, 30), tz=tz)


def test_lord_howe_half_hour_dst_end_repeats_half_an_hour() -> None:
    policy = make("window sms 01:30-01:45\n")
    tz = "Australia/Lord_Howe"
    assert decide(policy, utc(2025, 4, 5, 14, 40), tz=tz).is_allowed("sms")  # 01:40 +11
    assert_frees_at(policy, "sms", utc(2025, 4, 5, 14, 50), utc(2025, 4, 5, 15), tz=tz)  # 01:30 +10:30


def test_lord_howe_day_cap_frees_at_local_midnight() -> None:
    policy = make("limit sms 1 per day\n")
    history = (contact("sms", local(LORD_HOWE, 2025, 10, 5, 0, 30)),)
    assert_frees_at(policy, "sms", local(LORD_HOWE, 2025, 10, 5, 10), local(LORD_HOWE, 2025, 10, 6),
                    history, tz="Australia/Lord_Howe")
    assert local(LORD_HOWE, 2025, 10, 6) == utc(2025, 10, 5, 13)


def test_kolkata_half_hour_offset() -> None:
    policy = make("window sms 08:00-21:00\nlimit call 1 per day\n")
    tz = "Asia/Kolkata"
    assert_frees_at(policy, "sms", utc(2025, 6, 10, 2, 29, 59), utc(2025, 6, 10, 2, 30), tz=tz)
    assert decide(policy, utc(2025, 6, 10, 15, 29, 59), tz=tz).is_allowed("sms")
    assert not decide(policy, utc(2025, 6, 10, 15, 30), tz=tz).is_allowed("sms")
    # 23:30 IST June 10 and 00:10 IST June 11 are the same UTC day but different local days
    history = (contact("call", utc(2025, 6, 10, 18)),)
    assert decide(policy, utc(2025, 6, 10, 18, 40), history, tz=tz).is_allowed("call")
    history = (contact("call", utc(2025, 6, 10, 18, 31)),)  # 00:01 IST June 11
    assert_frees_at(policy, "call", utc(2025, 6, 11, 18), utc(2025, 6, 11, 18, 30), history, tz=tz)


# ---------------------------------------------------------------- several zones


def test_several_zones_must_all_be_inside() -> None:
    policy = make("window sms 08:00-21:00\n")
    for zones in ("America/New_York;Europe/London", "Europe/London; America/New_York"):
        # June: London 07:00-20:00 UTC, New York 12:00-01:00 UTC; together 12:00-20:00 UTC
        early = decide(policy, utc(2025, 6, 10, 11, 59, 59), tz=zones)
        (entry,) = early.reasons("sms")
        assert entry.kind == "window" and "America/New_York" in entry.reason and "Europe/London" not in entry.reason
        assert_frees_at(policy, "sms", utc(2025, 6, 10, 11, 59, 59), utc(2025, 6, 10, 12), tz=zones)
        assert decide(policy, utc(2025, 6, 10, 19, 59, 59), tz=zones).is_allowed("sms")
        late = decide(policy, utc(2025, 6, 10, 20), tz=zones)
        assert "Europe/London" in late.reasons("sms")[0].reason
        assert_frees_at(policy, "sms", utc(2025, 6, 10, 20), utc(2025, 6, 11, 12), tz=zones)


def test_zones_whose_windows_never_meet_give_null_until() -> None:
    policy = make("window sms 08:00-12:00\n")
    # Tokyo 08:00-12:00 is 23:00-03:00 UTC, New York's is 12:00-16:00 UTC (13:00-17:00 in winter)
    for now in (utc(2025, 6, 10, 0), utc(2025, 6, 10, 13), utc(2025, 12, 1, 14)):
        decision = decide(policy, now, tz="Asia/Tokyo;America/New_York")
        assert kinds(decision, "sms") == ["window"] and decision.until("sms") is None
    assert decide(policy, utc(2025, 6, 10, 0), tz="Asia/Tokyo").is_allowed("sms")


def test_day_cap_counts_calendar_days_in_every_zone() -> None:
    policy = make("limit sms 1 per day\n")
    history = (contact("sms", utc(2025, 6, 10, 14)),)  # 23:00 June 10 in Tokyo, 07:00 June 10 in Los Angeles
    now = utc(2025, 6, 10, 16)  # 01:00 June 11 in Tokyo, 09:00 June 10 in Los Angeles
    assert decide(policy, now, history, tz="Asia/Tokyo").is_allowed("sms")
    assert_frees_at(policy, "sms", now, utc(2025, 6, 11, 7), history, tz="Asia/Tokyo;America/Los_Angeles")


def test_day_boundary_is_local_not_utc() -> None:
    policy = make("limit sms 1 per day\n")
    # Shanghai: 23:30 June 1 then 00:30 June 2 local, both June 1 in UTC
    history = (contact("sms", local(SHANGHAI, 2025, 6, 1, 23, 30)),)
    assert decide(policy, local(SHANGHAI, 2025, 6, 2, 0, 30), history, tz="Asia/Shanghai").is_allowed("sms")
    assert not decide(policy, local(SHANGHAI, 2025, 6, 2, 0, 30), history, tz="UTC").is_allowed("sms")
    # Los Angeles: 23:00 June 1 local is 06:00 June 2 UTC
    history = (contact("sms", utc(2025, 6, 2, 6)),)
    assert decide(policy, utc(2025, 6, 2, 8), history, tz="America/Los_Angeles").is_allowed("sms")
    assert not decide(policy, utc(2025, 6, 2, 8), history, tz="UTC").is_allowed("sms")


# ---------------------------------------------------------------- caps


CAP = 'limit call 3 per 7 days where outcome not in {"not_connected"}\n'


def shanghai_days(*days_and_outcomes: tuple[int, str]) -> tuple[Contact, ...]:
    return tuple(contact("call", local(SHANGHAI, 2025, 6, day, 10), outcome) for day, outcome in days_and_outcomes)


def test_cap_at_n_minus_one_and_n() -> None:
    policy = make(CAP)
    now = local(SHANGHAI, 2025, 6, 10, 12)  # day D = June 10
    tz = "Asia/Shanghai"
    assert decide(policy, now, shanghai_days((7, "x"), (9, "x")), tz=tz).is_allowed("call")
    # three in D-6 .. D: blocked until midnight of (third newest day + 7) = June 11
    three = shanghai_days((4, "x"), (7, "x"), (9, "x"))
    assert_frees_at(policy, "call", now, local(SHANGHAI, 2025, 6, 11), three, tz=tz)
    assert kinds(decide(policy, now, three, tz=tz), "call") == ["limit"]
    # D-7 is outside the period
    assert decide(policy, now, shanghai_days((3, "x"), (7, "x"), (9, "x")), tz=tz).is_allowed("call")


def test_cap_frees_when_the_nth_newest_leaves_the_period() -> None:
    policy = make(CAP)
    now = local(SHANGHAI, 2025, 6, 10, 12)
    history = shanghai_days((4, "x"), (5, "x"), (5, "x"), (10, "x"))
    assert_frees_at(policy, "call", now, local(SHANGHAI, 2025, 6, 12), history, tz="Asia/Shanghai")


def test_seven_per_seven_days_counts_today_and_six_before() -> None:
    policy = make("limit sms 7 per 7 days\n")
    now = local(SHANGHAI, 2025, 6, 10, 20)
    week = tuple(contact("sms", local(SHANGHAI, 2025, 6, day, 9)) for day in range(4, 11))  # D-6 .. D
    assert_frees_at(policy, "sms", now, local(SHANGHAI, 2025, 6, 11), week, tz="Asia/Shanghai")
    earlier = tuple(contact("sms", local(SHANGHAI, 2025, 6, day, 9)) for day in range(3, 10))  # D-7 .. D-1
    assert decide(policy, now, earlier, tz="Asia/Shanghai").is_allowed("sms")


def test_cap_outcome_filters() -> None:
    tz = "Asia/Shanghai"
    now = local(SHANGHAI, 2025, 6, 10, 12)
    history = shanghai_days((8, "connected"), (9, "not_connected"), (10, "conversation"))
    assert decide(make(CAP), now, history, tz=tz).is_allowed("call")
    connected = make('limit call 2 per 7 days where outcome in {"connected", "conversation"}\n')
    assert not decide(connected, now, history, tz=tz).is_allowed("call")
    only_conversation = make('limit call 2 per 7 days where outcome in {"conversation"}\n')
    assert decide(only_conversation, now, history, tz=tz).is_allowed("call")


def test_cap_of_other_actions_and_events() -> None:
    policy = make("limit call 2 per day of call, inbound_call\nlimit push 1 per day of sms\n")
    now = utc(2025, 6, 10, 15)
    history = (contact("inbound_call", utc(2025, 6, 10, 9), "conversation"), contact("call", utc(2025, 6, 10, 10)),
               contact("push", utc(2025, 6, 10, 11)))
    decision = decide(policy, now, history)
    assert kinds(decision, "call") == ["limit"]
    assert decision.is_allowed("push")  # only sms counts for push
    decision = decide(policy, now, (*history, contact("sms", utc(2025, 6, 10, 12))))
    assert kinds(decision, "push") == ["limit"] and decision.is_allowed("sms")


def test_rolling_hours_cap() -> None:
    policy = make("limit sms 2 per 24 hours\n")
    now = utc(2025, 6, 10, 12)
    history = (contact("sms", utc(2025, 6, 9, 12, 0, 1)), contact("sms", utc(2025, 6, 10, 11)))
    assert_frees_at(policy, "sms", now, utc(2025, 6, 10, 12, 0, 1), history)
    # (now - 24 h, now]: an event exactly 24 hours ago no longer counts
    history = (contact("sms", utc(2025, 6, 9, 12)), contact("sms", utc(2025, 6, 10, 11)))
    assert decide(policy, now, history).is_allowed("sms")
    # one hour, across the fall-back hour: rolling, not wall clock
    hourly = make("limit sms 1 per hour\n")
    history = (contact("sms", utc(2025, 11, 2, 5, 30)),)  # 01:30 EDT
    assert_frees_at(hourly, "sms", utc(2025, 11, 2, 6, 0), utc(2025, 11, 2, 6, 30), history)


def test_rolling_periods_are_elapsed_time_even_for_instants_given_in_a_dst_zone() -> None:
    # `now` and the history written in America/New_York: Python's arithmetic
    # on two datetimes of the same zone is wall-clock, the contract is not
    hourly = make("limit sms 1 per hour\nquiet call for 2 hours after \"dispute\" on call\n")
    first_0130 = local(NY, 2025, 11, 2, 1, 30, fold=0)  # 05:30 UTC
    second_0110 = local(NY, 2025, 11, 2, 1, 10, fold=1)  # 06:10 UTC, 40 minutes later
    history = (contact("sms", first_0130), contact("call", first_0130, "dispute"))
    decision = decide(hourly, second_0110, history)
    assert decision.until("sms") == utc(2025, 11, 2, 6, 30)
    assert decision.until("call") == utc(2025, 11, 2, 7, 30)
    spring_0130 = local(NY, 2025, 3, 9, 1, 30)  # EST, 06:30 UTC
    spring_0315 = local(NY, 2025, 3, 9, 3, 15)  # EDT, 07:15 UTC: 45 minutes later
    decision = decide(hourly, spring_0315, (contact("sms", spring_0130),))
    assert decision.until("sms") == utc(2025, 3, 9, 7, 30)
    assert decide(hourly, local(NY, 2025, 3, 9, 3, 30), (contact("sms", spring_0130),)).is_allowed("sms")


def test_cap_longer_than_the_search_horizon_still_has_an_until() -> None:
    policy = make("limit sms 1 per 1095 days\n")
    history = (contact("sms", utc(2025, 6, 9, 12)),)
    assert decide(policy, utc(2025, 6, 10, 12), history).until("sms") == local(NY, 2028, 6, 8)


# ---------------------------------------------------------------- quiet periods


QUIET = 'quiet call for 7 days after "conversation" on call, inbound_call\n'


@pytest.mark.parametrize("hour", [0, 10, 23])
def test_quiet_first_and_last_day(hour: int) -> None:
    policy = make(QUIET)
    tz = "Asia/Shanghai"
    history = (contact("call", local(SHANGHAI, 2025, 6, 1, hour, 0), "conversation"),)
    # day 1 is June 1 whatever the hour; blocked through day 7, June 7
    assert kinds(decide(policy, local(SHANGHAI, 2025, 6, 1, 23, 59, 59), history, tz=tz), "call") == ["quiet"]
    assert kinds(decide(policy, local(SHANGHAI, 2025, 6, 7, 23, 59, 59), history, tz=tz), "call") == ["quiet"]
    assert_frees_at(policy, "call", local(SHANGHAI, 2025, 6, 1, 23, 59, 59), local(SHANGHAI, 2025, 6, 8),
                    history, tz=tz)


def test_quiet_needs_a_matching_outcome_and_action() -> None:
    policy = make(QUIET)
    now = utc(2025, 6, 2)
    assert decide(policy, now, (contact("call", utc(2025, 6, 1), "no_answer"),)).is_allowed("call")
    assert decide(policy, now, (contact("sms", utc(2025, 6, 1), "conversation"),)).is_allowed("call")
    event = (contact("inbound_call", utc(2025, 6, 1), "conversation"),)
    assert kinds(decide(policy, now, event), "call") == ["quiet"]
    assert decide(policy, now, event).is_allowed("sms")


def test_quiet_uses_the_latest_matching_event() -> None:
    policy = make(QUIET)
    history = (contact("call", local(NY, 2025, 6, 1, 10), "conversation"),
               contact("call", local(NY, 2025, 6, 3, 10), "conversation"),
               contact("call", local(NY, 2025, 6, 4, 10), "no_answer"))
    assert_frees_at(policy, "call", local(NY, 2025, 6, 5), local(NY, 2025, 6, 10), history)


def test_quiet_hours_are_rolling() -> None:
    policy = make('quiet sms for 48 hours after "dispute" on sms\n')
    history = (contact("sms", utc(2025, 3, 8, 10, 17, 23), "dispute"),)
    assert_frees_at(policy, "sms", utc(2025, 3, 8, 11), utc(2025, 3, 10, 10, 17, 23), history)


def test_quiet_frees_inside_the_window_at_the_exact_instant() -> None:
    policy = make('window call 08:00-21:00\nquiet call for 3 hours after "dispute" on call\n')
    history = (contact("call", local(NY, 2025, 6, 10, 9, 15), "dispute"),)
    assert_frees_at(policy, "call", local(NY, 2025, 6, 10, 10), local(NY, 2025, 6, 10, 12, 15), history)
    late = (contact("call", local(NY, 2025, 6, 10, 19), "dispute"),)  # frees at 22:00, after hours
    assert_frees_at(policy, "call", local(NY, 2025, 6, 10, 20), local(NY, 2025, 6, 11, 8), late)


# ---------------------------------------------------------------- holidays


def test_cn_national_day() -> None:
    policy = make('window sms 08:00-21:00 on mon..fri except holidays "CN"\n'
                  'window push 08:00-21:00 except holidays "CN"\n')
    tz = "Asia/Shanghai"
    now = local(SHANGHAI, 2025, 10, 1, 10)  # a Wednesday
    decision = decide(policy, now, tz=tz)
    assert kinds(decision, "sms") == ["window"] and "public holiday" in decision.reasons("sms")[0].reason
    # Oct 1-3 and 6-8 are holidays, Oct 4-5 a weekend: first working day Thursday Oct 9
    assert_frees_at(policy, "sms", now, local(SHANGHAI, 2025, 10, 9, 8), tz=tz)
    # without the weekday restriction the weekend in between is open
    assert_frees_at(policy, "push", now, local(SHANGHAI, 2025, 10, 4, 8), tz=tz)
    assert decide(policy, local(SHANGHAI, 2025, 9, 30, 10), tz=tz).is_allowed("sms")


def test_holidays_from_an_account_field() -> None:
    policy = make("window sms 08:00-21:00 except holidays country\n")
    assert not decide(policy, local(NY, 2025, 7, 4, 10), country="US").is_allowed("sms")
    assert decide(policy, local(NY, 2025, 7, 4, 10), country="CN").is_allowed("sms")
    assert_frees_at(policy, "sms", local(NY, 2025, 7, 4, 10), local(NY, 2025, 7, 5, 8), country="US")


def test_weekday_span_wraps_around_the_week() -> None:
    policy = make("window sms 08:00-21:00 on fri..mon\n")
    tz = "Asia/Shanghai"
    assert decide(policy, local(SHANGHAI, 2025, 6, 9, 10), tz=tz).is_allowed("sms")  # Monday
    assert decide(policy, local(SHANGHAI, 2025, 6, 7, 10), tz=tz).is_allowed("sms")  # Saturday
    assert_frees_at(policy, "sms", local(SHANGHAI, 2025, 6, 10, 10), local(SHANGHAI, 2025, 6, 13, 8), tz=tz)


def test_window_ranges_in_any_order() -> None:
    policy = make("window sms 14:00-18:00, 08:00-12:00\n")
    assert_frees_at(policy, "sms", local(NY, 2025, 6, 10, 7), local(NY, 2025, 6, 10, 8))
    assert_frees_at(policy, "sms", local(NY, 2025, 6, 10, 12), local(NY, 2025, 6, 10, 14))
    assert_frees_at(policy, "sms", local(NY, 2025, 6, 10, 18), local(NY, 2025, 6, 11, 8))


def test_window_end_24_00_and_start_inclusive_end_exclusive() -> None:
    policy = make("window sms 00:00-08:00, 20:00-24:00\n")
    assert decide(policy, local(NY, 2025, 6, 10, 23, 59, 59)).is_allowed("sms")
    assert decide(policy, local(NY, 2025, 6, 11, 0, 0)).is_allowed("sms")
    assert_frees_at(policy, "sms", local(NY, 2025, 6, 11, 8), local(NY, 2025, 6, 11, 20))


# ---------------------------------------------------------------- clock helpers


def test_first_instant_at_or_after_in_gaps_and_folds() -> None:
    assert first_instant_at_or_after(NY, dt.date(2025, 3, 9), 2 * 3600 + 1800) == utc(2025, 3, 9, 7)
    assert first_instant_at_or_after(NY, dt.date(2025, 11, 2), 1 * 3600 + 1800) == utc(2025, 11, 2, 5, 30)
    assert first_instant_at_or_after(LORD_HOWE, dt.date(2025, 10, 5), 2 * 3600 + 7 * 60) == utc(2025, 10, 4, 15, 30)
    assert local_midnight(ZoneInfo("America/Havana"), dt.date(2025, 3, 9)) == utc(2025, 3, 9, 5)  # 00:00 skipped
    assert local_midnight(KOLKATA, dt.date(2025, 6, 11)) == utc(2025, 6, 10, 18, 30)


ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Shanghai",
         "America/Havana", "America/Santiago", "Pacific/Chatham", "UTC"]
TRANSITION_DAYS = [utc(2025, 3, 9, 7), utc(2025, 11, 2, 6), utc(2025, 10, 4, 15, 30), utc(2025, 4, 5, 15),
                   utc(2025, 3, 30, 1), utc(2025, 10, 26, 1), utc(2025, 3, 9, 5), utc(2025, 11, 2, 5),
                   utc(2025, 4, 6, 3), utc(2025, 9, 7, 4), utc(2025, 4, 5, 14), utc(2025, 9, 27, 14)]


@st.composite
def window_specs(draw: st.DrawFn) -> WindowSpec:
    minutes = sorted(draw(st.sets(st.integers(0, 48).map(lambda half_hours: half_hours * 30), min_size=2,
                                  max_size=6)))
    pairs = [(start * 60, end * 60) for start, end in zip(minutes[::2], minutes[1::2], strict=False)]
    ranges = draw(st.permutations(pairs))
    weekdays = draw(st.sets(st.integers(0, 6), min_size=1))
    return WindowSpec(tuple(ranges), frozenset(weekdays))


@settings(max_examples=80, deadline=None)
@given(window_specs(), st.sampled_from(ZONES), st.sampled_from(TRANSITION_DAYS),
       st.integers(-2 * 86400, 2 * 86400))
def test_next_open_is_the_first_instant_inside(spec: WindowSpec, zone_name: str, around: dt.datetime,
                                               offset: int) -> None:
    zone = ZoneInfo(zone_name)
    instant = around + dt.timedelta(seconds=offset)
    found = spec.next_open(instant, zone, None)
    assert found is not None  # some range on some weekday: it opens within a week
    assert found >= instant and spec.inside(found, zone, None)
    # brute force: every whole minute from `instant` up to `found` is outside
    # (window edges and clock changes all fall on whole minutes)
    probe = instant
    while probe < found:
        assert not spec.inside(probe, zone, None), (probe, found)
        probe = (probe + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)


# ---------------------------------------------------------------- the `until` property

PROPERTY_POLICY = make("""\
window sms, call 08:00-12:00, 13:00-21:00 on mon..sat
window push 01:30-02:30, 07:30-22:00
limit sms 2 per day
limit call 3 per 7 days where outcome not in {"not_connected"}
limit push 2 per 6 hours
quiet call for 2 days after "conversation" on call, inbound_call
quiet sms for 12 hours after "dispute" on sms, call
""")
PROPERTY_ZONES = ["America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Shanghai", "Europe/London",
                  "America/Havana", "America/New_York;Europe/London", "Asia/Tokyo;America/Los_Angeles",
                  "Australia/Lord_Howe;Asia/Kolkata"]
OUTCOMES = ["", "conversation", "dispute", "not_connected", "connected"]
TIMED = {"window", "limit", "quiet"}


# instants are handed to the evaluator in any of these zones
SHOWN_IN = [UTC, NY, LORD_HOWE, KOLKATA, dt.timezone(dt.timedelta(hours=-3))]


@st.composite
def situations(draw: st.DrawFn) -> tuple[str, dt.datetime, tuple[Contact, ...]]:
    zone = draw(st.sampled_from(PROPERTY_ZONES))
    now = draw(st.sampled_from(TRANSITION_DAYS)) + dt.timedelta(seconds=draw(st.integers(-3 * 86400, 3 * 86400)))
    events = draw(st.lists(st.tuples(st.sampled_from(["sms", "call", "push", "inbound_call"]),
                                     st.integers(0, 9 * 86400), st.sampled_from(OUTCOMES),
                                     st.sampled_from(SHOWN_IN)), max_size=10))
    history = tuple(contact(action, (now - dt.timedelta(seconds=ago)).astimezone(shown), outcome)
                    for action, ago, outcome, shown in events)
    return zone, now.astimezone(draw(st.sampled_from(SHOWN_IN))), history


def _timed_reasons(decision: Decision, action: str) -> set[str]:
    return {entry.kind for entry in decision.reasons(action)} & TIMED


def check_until(zone: str, now: dt.datetime, history: tuple[Contact, ...], samples: list[float]) -> int:
    decision = PROPERTY_POLICY.evaluate({"id": "A1", "tz": zone}, history, now=now)
    assert decision.error is None
    checked = 0
    for action in PROPERTY_POLICY.actions:
        if decision.is_allowed(action):
            assert decision.reasons(action) == ()
            continue
        untils = {entry.until for entry in decision.reasons(action)}
        assert len(untils) == 1
        until = untils.pop()
        if until is None:
            continue
        checked += 1
        assert until > now
        until = until.astimezone(UTC)  # elapsed-time arithmetic below
        at_until = PROPERTY_POLICY.evaluate({"id": "A1", "tz": zone}, history, now=until)
        assert at_until.is_allowed(action), (action, until, at_until.reasons(action))
        assert not _timed_reasons(at_until, action)
        for fraction in [0.0, *samples]:
            probe = now.astimezone(UTC) + (until - now) * fraction
            probe = min(probe, until - SECOND)
            if probe < now:
                continue
            before = PROPERTY_POLICY.evaluate({"id": "A1", "tz": zone}, history, now=probe)
            assert _timed_reasons(before, action), (action, probe, until)
    return checked


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(situations(), st.lists(st.floats(0, 1), max_size=3))
def test_until_is_the_first_instant_allowed(situation: tuple[str, dt.datetime, tuple[Contact, ...]],
                                            samples: list[float]) -> None:
    zone, now, history = situation
    check_until(zone, now, history, [*samples, 1.0])


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(situations(), st.lists(st.floats(0, 1), max_size=6))
def test_until_is_the_first_instant_allowed_many_examples(situation: tuple[str, dt.datetime, tuple[Contact, ...]],
                                                          samples: list[float]) -> None:
    zone, now, history = situation
    check_until(zone, now, history, [*samples, 1.0])


def test_the_until_property_checks_something() -> None:
    # a situation with every timed reason, so the property is not vacuous
    now = utc(2025, 11, 2, 5, 45)
    history = (contact("sms", now - dt.timedelta(hours=1), "dispute"), contact("sms", now - dt.timedelta(hours=2)),
               contact("call", now - dt.timedelta(hours=3), "conversation"),
               contact("push", now - dt.timedelta(hours=1)), contact("push", now - dt.timedelta(hours=4)))
    assert check_until("America/New_York", now, history, [0.5, 0.99]) == 3


@settings(max_examples=20, deadline=None)
@given(situations())
def test_evaluation_never_raises(situation: tuple[str, dt.datetime, tuple[Contact, ...]]) -> None:
    zone, now, history = situation
    assume(history)
    decision = PROPERTY_POLICY.evaluate({"id": "A1", "tz": zone}, history, now=now)
    assert decision.error is None
    assert set(decision.allowed) | {entry.action for entry in decision.blocked} == set(PROPERTY_POLICY.actions)
