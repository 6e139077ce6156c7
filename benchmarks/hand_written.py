"""Hand-written Python references for the contact workload.

decide(a), decide_allowed(a)
    The peers' functions (../shared/benchmarks/peers/plain_python.py), unchanged: they read the
    peers' precomputed fields (local_hour, calls_last_7d, days_since_conversation) and return the
    stage, the allowed channels and the reasons by name. The "× hand-written" ratios use these, so
    they mean what they mean in the peers' results.md.

decide_full(account, history, now)
    What a careful engineer would write by hand for the job our evaluator does: the same inputs
    (the account with its zone, the contact history, the instant) and the same output, i.e. stage,
    allowed channels in priority order, and one (action, kind, reason, until) entry per reason a
    channel is blocked, `until` being the instant the channel becomes allowed again (None when
    time alone cannot lift the block). Specialised to this one policy; no generality.

derive(account, history, now)
    The glue any peer engine needs in front of it in a real deployment: local_hour,
    calls_last_7d and days_since_conversation computed from the zone and the history.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

# ---------------------------------------------------------------- the peers' functions, unchanged

_ALL = ("sms", "app_push", "email", "agent_call", "field_visit", "legal")


def decide(a: dict):
    dpd = a["days_past_due"]
    if dpd < 1:
        stage = "current"
    elif dpd <= 30:
        stage = "M0"
    elif dpd <= 60:
        stage = "M1"
    elif dpd <= 90:
        stage = "M2"
    else:
        stage = "M3plus"

    flags = a["flags"]
    ban = []
    if "deceased" in flags:
        ban.append("deceased")
    if "bankrupt" in flags:
        ban.append("bankrupt")
    if "cease_and_desist" in flags:
        ban.append("cease_and_desist")
    disputed = "disputed" in flags

    # digital channels: sms, app_push, email (email survives a dispute)
    digital = ban + ["stage"] if dpd < 1 else list(ban)  # noqa: RUF005 (the peers' code, verbatim)
    if disputed:
        sms = digital + ["disputed"]  # noqa: RUF005
        app_push = list(sms)
    else:
        sms = digital
        app_push = list(digital)
    email = digital

    call = list(ban)
    if dpd < 31:
        call.append("stage")
    if disputed:
        call.append("disputed")
    h = a["local_hour"]
    if h < 8 or h >= 21:
        call.append("quiet_hours")
    if a["calls_last_7d"] >= 7:
        call.append("call_cap")
    dsc = a["days_since_conversation"]
    if dsc is not None and dsc < 7:
        call.append("recent_conversation")

    field = list(ban)
    if dpd <= 90:
        field.append("stage")
    if a["balance"] < 5000:
        field.append("balance")
    if disputed:
        field.append("disputed")

    reasons = {
        "sms": sms,
        "app_push": app_push,
        "email": email,
        "agent_call": call,
        "field_visit": field,
        "legal": list(field),
    }
    allowed = [ch for ch in _ALL if not reasons[ch]]
    return stage, allowed, reasons


def decide_allowed(a: dict):
    dpd = a["days_past_due"]
    if dpd < 1:
        return "current", []
    flags = a["flags"]
    if "deceased" in flags or "bankrupt" in flags or "cease_and_desist" in flags:
        stage = "M0" if dpd <= 30 else "M1" if dpd <= 60 else "M2" if dpd <= 90 else "M3plus"
        return stage, []
    disputed = "disputed" in flags
    allowed = ["email"] if disputed else ["sms", "app_push", "email"]
    if dpd <= 30:
        return "M0", allowed
    if not disputed:
        h = a["local_hour"]
        dsc = a["days_since_conversation"]
        if 8 <= h < 21 and a["calls_last_7d"] < 7 and (dsc is None or dsc >= 7):
            allowed.append("agent_call")
    if dpd <= 60:
        return "M1", allowed
    if dpd <= 90:
        return "M2", allowed
    if not disputed and a["balance"] >= 5000:
        allowed.append("field_visit")
        allowed.append("legal")
    return "M3plus", allowed


# ---------------------------------------------------------------- same inputs and output as ours

_ZONES: dict[str, ZoneInfo] = {}
_DAY = dt.timedelta(days=1)
_WEEK = dt.timedelta(days=7)
_OPEN, _CLOSE = 8 * 3600, 21 * 3600
_BANS = (("deceased", "debtor deceased"), ("bankrupt", "bankruptcy proceedings"),
         ("cease_and_desist", "cease and desist received"))
_DIGITAL = ("sms", "app_push", "email")
_ONSITE = ("field_visit", "legal")
_FIRST_STAGE = {"sms": "M0", "app_push": "M0", "email": "M0", "agent_call": "M1", "field_visit": "M3plus",
                "legal": "M3plus"}


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


def _midnight(zone: ZoneInfo, day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone)


def _next_open(instant: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first instant >= `instant` within 08:00-21:00 local (every day)."""
    local = instant.astimezone(zone)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    if _OPEN <= seconds < _CLOSE:
        return instant
    day = local.date() if seconds < _OPEN else local.date() + _DAY
    return dt.datetime(day.year, day.month, day.day, 8, tzinfo=zone)


def decide_full(account: dict, history, now: dt.datetime):
    """(stage, allowed, blocked): blocked holds (action, kind, reason, until) for every reason."""
    dpd = account["days_past_due"]
    stage = "current" if dpd < 1 else "M0" if dpd <= 30 else "M1" if dpd <= 60 else "M2" if dpd <= 90 else "M3plus"
    flags = account["flags"]
    zone = _zone(account["timezone"])
    local = now.astimezone(zone)
    today = local.date()

    # the history, once: agent-call days in the last 7 calendar days, the latest conversation
    call_days = []
    last_conversation = None
    for contact in history:
        at = contact.at
        if at > now:
            continue
        action = contact.action
        if action == "agent_call":
            day = at.astimezone(zone).date()
            if (today - day).days < 7:
                call_days.append(day)
        if contact.outcome == "conversation" and action in ("agent_call", "inbound_call") and (
                last_conversation is None or at > last_conversation):
            last_conversation = at

    common = [(kind, "forbidden", text) for kind, text in _BANS if kind in flags]
    disputed = "disputed" in flags
    reasons: dict[str, list[tuple[str, str]]] = {}
    for action in _ALL:
        found = []
        if dpd < 1 or (action == "agent_call" and dpd < 31) or (action in _ONSITE and dpd <= 90):
            found.append(("not_allowed", f"{action} is not allowed in stage {stage} (from {_FIRST_STAGE[action]})"))
        found.extend((kind, text) for _, kind, text in common)
        if action in _ONSITE and account["balance"] < 5000:
            found.append(("forbidden", "balance under 5000: no field visit or legal action"))
        if disputed and action != "email":
            found.append(("forbidden", "disputed debt: written (email) contact only"))
        reasons[action] = found

    # agent_call: hours in the debtor's zone, the 7-per-7 cap, the cool-down after a conversation
    call = reasons["agent_call"]
    free_at = now
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    if not _OPEN <= seconds < _CLOSE:
        call.append(("window", f"outside contact hours 08:00-21:00 (now {local:%a %H:%M} in {zone.key})"))
    if len(call_days) >= 7:
        call_days.sort(reverse=True)
        cap_free = _midnight(zone, call_days[6] + _WEEK)
        call.append(("limit", f"cap of 7 per 7 days reached ({len(call_days)} calls in {zone.key})"))
        free_at = max(free_at, cap_free)
    if last_conversation is not None:
        quiet_free = _midnight(zone, last_conversation.astimezone(zone).date() + _WEEK)
        if quiet_free > now:
            call.append(("quiet", f"quiet for 7 days after conversation at {last_conversation:%Y-%m-%d %H:%M}"))
            free_at = max(free_at, quiet_free)

    allowed = []
    blocked = []
    for action in _ALL:
        found = reasons[action]
        if not found:
            allowed.append(action)
            continue
        until = None
        if action == "agent_call" and all(kind in ("window", "limit", "quiet") for kind, _ in found):
            until = _next_open(free_at, zone)
        blocked.extend((action, kind, text, until) for kind, text in found)
    return stage, allowed, blocked


def derive(account: dict, history, now: dt.datetime) -> dict:
    """The peers' record, computed from the zone and the history: what a peer engine needs fed."""
    zone = _zone(account["timezone"])
    local = now.astimezone(zone)
    today = local.date()
    calls = 0
    last = None
    for contact in history:
        at = contact.at
        if at > now:
            continue
        if contact.action == "agent_call" and (today - at.astimezone(zone).date()).days < 7:
            calls += 1
        if contact.outcome == "conversation" and contact.action in ("agent_call", "inbound_call") and (
                last is None or at > last):
            last = at
    return {
        "id": account["id"],
        "days_past_due": account["days_past_due"],
        "balance": account["balance"],
        "risk_score": account["risk_score"],
        "flags": account["flags"],
        "local_hour": local.hour,
        "calls_last_7d": calls,
        "days_since_conversation": None if last is None else (today - last.astimezone(zone).date()).days,
    }
