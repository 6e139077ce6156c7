"""Deterministic benchmark workload: the peers' population, with zones and real contact histories.

Adapted from ../shared/benchmarks/peers/population.py. `peer_records(n, seed)` is that file's
`generate()` unchanged, so for the same n and seed every peer engine receives exactly the
records it was measured on there (same values, same order). Each record is then given what our
language reads instead of the peers' precomputed fields:

* a time zone (IANA name) in which the wall clock at NOW shows the record's `local_hour`;
* a contact history (agent calls, inbound calls, messages, older calls) in which, at NOW and in
  that zone, exactly `calls_last_7d` agent calls fall on the last 7 calendar days (today
  included) and the latest conversation (outcome "conversation" on an agent or inbound call)
  was `days_since_conversation` calendar days ago (none at all when that field is None).

The zones and histories come from a second seeded generator, so the peer records stay
bit-identical to the peers' ones. Everything is a pure function of (n, seed): the first k
accounts of a population of n are the population of k.

    python benchmarks/workload.py --n 100000 --out DIR     # DIR/accounts.csv, DIR/contacts.csv
    python benchmarks/workload.py --workload ecommerce --n 100000 --out DIR    # DIR/accounts.csv

The second workload (`write_ecommerce_csv`) is the shipped e-commerce policy's: accounts drawn by
examples/make_examples.py's generator, no history.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import functools
import importlib.util
import os
import platform
import random
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from zoneinfo import ZoneInfo

# ---------------------------------------------------------------- the peers' population (verbatim)

CHANNELS = ("sms", "app_push", "email", "agent_call", "field_visit", "legal")
FLAGS = ("bankrupt", "deceased", "cease_and_desist", "disputed", "vulnerable")

# Per-flag independent probabilities (a realistic-ish collections book).
FLAG_P = {
    "bankrupt": 0.03,
    "deceased": 0.01,
    "cease_and_desist": 0.03,
    "disputed": 0.06,
    "vulnerable": 0.05,
}

# days_past_due is drawn per stage bucket (weights), uniform inside the bucket,
# over the full -10..400 range, so every stage / rule branch is well exercised.
DPD_BUCKETS = (
    ((-10, 0), 0.20),   # current
    ((1, 30), 0.25),    # M0
    ((31, 60), 0.20),   # M1
    ((61, 90), 0.15),   # M2
    ((91, 400), 0.20),  # M3plus
)

SEED = 20240601
N_DEFAULT = 100_000


def peer_records(n: int = N_DEFAULT, seed: int = SEED) -> list[dict]:
    """The peers' `population.generate()`: the records every peer engine receives."""
    return list(iter_peer_records(n, seed))


def iter_peer_records(n: int = N_DEFAULT, seed: int = SEED) -> Iterator[dict]:
    """The body of the peers' `generate()`, unchanged but for yielding each record instead of
    appending it to a list (same draws, same records; memory stays flat when streamed)."""
    rng = random.Random(seed)
    ranges = [b[0] for b in DPD_BUCKETS]
    weights = [b[1] for b in DPD_BUCKETS]
    for i in range(n):
        lo, hi = rng.choices(ranges, weights)[0]
        dpd = rng.randint(lo, hi)
        # lognormal balance, median ~1.8k, ~22% >= 5000; 2 decimal places
        balance = round(min(rng.lognormvariate(7.5, 1.2), 250_000.0), 2)
        risk = round(rng.random(), 4)
        flags = [f for f in FLAGS if rng.random() < FLAG_P[f]]
        local_hour = rng.randint(0, 23)
        calls = rng.randint(0, 10)
        dsc = None if rng.random() < 0.4 else rng.randint(0, 30)
        yield {
            "id": f"acc-{i:06d}",
            "days_past_due": dpd,
            "balance": float(balance),
            "risk_score": risk,
            "flags": flags,
            "local_hour": local_hour,
            "calls_last_7d": calls,
            "days_since_conversation": dsc,
        }


# ---------------------------------------------------------------- canonical comparison form

# Each of the peers' 11 block-rule reasons and the `Blocked.kind` our language gives it
# (benchmarks/policies/contact.policy says which rule expresses which).
KIND_OF_REASON = {
    "stage": "not_allowed",
    "balance": "forbidden",
    "deceased": "forbidden",
    "bankrupt": "forbidden",
    "cease_and_desist": "forbidden",
    "disputed": "forbidden",
    "quiet_hours": "window",
    "call_cap": "limit",
    "recent_conversation": "quiet",
}


def canonical(stage: str | None, kinds: Mapping[str, Iterable[str]]) -> tuple:
    """Engine-neutral key: (stage, allowed set, per channel the sorted reason kinds).

    Kinds are kept as a multiset (sorted tuple), so two forbids are not one."""
    per_channel = tuple((ch, tuple(sorted(kinds.get(ch, ())))) for ch in CHANNELS)
    allowed = frozenset(ch for ch, ks in per_channel if not ks)
    return (stage, allowed, per_channel)


def canonical_from_reasons(stage: str, reasons: Mapping[str, Iterable[str]]) -> tuple:
    """The key for an engine that names the peers' reasons (stage, balance, quiet_hours, ...)."""
    return canonical(stage, {ch: [KIND_OF_REASON[r] for r in rs] for ch, rs in reasons.items()})


def canonical_allowed(stage: str | None, allowed: Iterable[str]) -> tuple:
    """The key for engines/variants that only return the allowed channels."""
    return (stage, frozenset(allowed))


# ---------------------------------------------------------------- zones and histories

# Evaluation instant of the whole workload (a Wednesday). At this instant the zones below show
# every hour of the day, so each record's local_hour maps to real IANA zones (some on the
# previous or next calendar day, some on half or quarter hours).
NOW = dt.datetime(2025, 6, 4, 10, 37, tzinfo=dt.UTC)

ZONES = (
    "Pacific/Honolulu", "Pacific/Kiritimati", "Pacific/Marquesas", "America/Anchorage",
    "America/Los_Angeles", "America/Phoenix", "America/Denver", "America/Mexico_City",
    "America/Chicago", "America/Bogota", "America/Lima", "America/New_York", "America/Santiago",
    "America/Caracas", "America/Sao_Paulo", "America/Argentina/Buenos_Aires", "America/Halifax",
    "America/St_Johns", "America/Noronha", "Atlantic/Cape_Verde", "Atlantic/Azores", "Europe/London",
    "Africa/Lagos", "Europe/Berlin", "Europe/Madrid", "Africa/Johannesburg", "Europe/Moscow",
    "Europe/Istanbul", "Africa/Nairobi", "Asia/Riyadh", "Asia/Dubai", "Asia/Tehran", "Asia/Karachi",
    "Asia/Tashkent", "Asia/Kolkata", "Asia/Dhaka", "Asia/Kathmandu", "Asia/Jakarta", "Asia/Bangkok",
    "Asia/Ho_Chi_Minh", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Singapore", "Asia/Manila",
    "Australia/Perth", "Asia/Tokyo", "Asia/Seoul", "Australia/Sydney", "Australia/Adelaide",
    "Pacific/Guam", "Pacific/Noumea", "Pacific/Auckland", "Pacific/Fiji", "Pacific/Pago_Pago",
    "Pacific/Tongatapu",
)

CALL_OUTCOMES = ("no_answer", "no_answer", "not_connected", "voicemail", "busy", "refused")
MESSAGE_ACTIONS = ("sms", "sms", "app_push", "email")
MESSAGE_OUTCOMES = ("delivered", "delivered", "delivered", "read", "failed")


def _zones_by_hour(now: dt.datetime) -> dict[int, tuple[str, ...]]:
    by_hour: dict[int, list[str]] = collections.defaultdict(list)
    for name in ZONES:
        by_hour[now.astimezone(ZoneInfo(name)).hour].append(name)
    missing = sorted(set(range(24)) - set(by_hour))
    if missing:
        raise AssertionError(f"no zone shows hour(s) {missing} at {now}")
    return {hour: tuple(names) for hour, names in by_hour.items()}


@dataclass(frozen=True)
class Event:
    """One contact-history row (the fields of policydsl's Contact, without importing it)."""

    action: str
    at: dt.datetime  # UTC, whole seconds
    outcome: str


@dataclass(frozen=True)
class Account:
    peer: dict  # the peers' record, as the peer engines and the peers' hand-written function get it
    raw: dict  # what our policy reads: id, days_past_due, balance, timezone, risk_score, flags
    history: tuple[Event, ...]  # oldest first


def _instant(zone: ZoneInfo, day: dt.date, local_now: dt.datetime, rng: random.Random,
             hours: tuple[int, int]) -> dt.datetime:
    """A UTC instant on local `day` in `zone`: within `hours` (local) on past days, at or before
    now (local) today; never in a DST gap, never after now."""
    today = local_now.date()
    for _ in range(100):
        if day == today:
            limit = local_now.hour * 3600 + local_now.minute * 60 + local_now.second
            seconds = rng.randint(0, limit)
        else:
            seconds = rng.randrange(hours[0] * 3600, hours[1] * 3600)
        wall = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
        at = wall.replace(tzinfo=zone).astimezone(dt.UTC)
        if at.astimezone(zone).replace(tzinfo=None) == wall and at <= NOW:
            return at
    raise AssertionError(f"no instant on {day} in {zone.key}")


def _history(peer: dict, zone: ZoneInfo, rng: random.Random) -> list[Event]:
    local_now = NOW.astimezone(zone)
    today = local_now.date()
    calls = peer["calls_last_7d"]
    dsc = peer["days_since_conversation"]
    events: list[Event] = []

    def on(days_ago: int, hours: tuple[int, int] = (8, 21)) -> dt.datetime:
        return _instant(zone, today - dt.timedelta(days=days_ago), local_now, rng, hours)

    # the latest conversation: one of the recent calls (they count towards the cap), an inbound
    # call (an event: never counted), or an older agent call (outside the 7 counted days)
    conversation_is_recent_call = dsc is not None and dsc <= 6 and calls >= 1 and rng.random() < 0.8
    for k in range(calls):
        if conversation_is_recent_call and k == 0:
            events.append(Event("agent_call", on(dsc), "conversation"))
        else:
            events.append(Event("agent_call", on(rng.randint(0, 6)), rng.choice(CALL_OUTCOMES)))
    if dsc is not None and not conversation_is_recent_call:
        action = "inbound_call" if dsc <= 6 or rng.random() < 0.3 else "agent_call"
        events.append(Event(action, on(dsc, (7, 22)), "conversation"))
    # older calls (7 .. 45 days ago: outside the cap's 7 calendar days, never a conversation)
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        events.append(Event("agent_call", on(rng.randint(7, 45)), rng.choice(CALL_OUTCOMES)))
    # messages over the last 30 days (no rule of the workload counts them: volume, as in real data)
    for _ in range(rng.randint(0, 4)):
        events.append(Event(rng.choice(MESSAGE_ACTIONS), on(rng.randint(0, 29), (7, 22)),
                            rng.choice(MESSAGE_OUTCOMES)))
    events.sort(key=lambda e: e.at)
    return events


def iter_population(n: int = N_DEFAULT, seed: int = SEED) -> Iterator[Account]:
    """Accounts one by one (peer record, our input, history); memory stays flat when streamed."""
    by_hour = _zones_by_hour(NOW)
    rng = random.Random(seed * 1000 + 7)  # zones and histories; the peer records use `seed`
    zones = {name: ZoneInfo(name) for name in ZONES}
    for peer in iter_peer_records(n, seed):
        name = rng.choice(by_hour[peer["local_hour"]])
        history = _history(peer, zones[name], rng)
        raw = {
            "id": peer["id"],
            "days_past_due": peer["days_past_due"],
            "balance": peer["balance"],
            "timezone": name,
            "risk_score": peer["risk_score"],
            "flags": list(peer["flags"]),
        }
        yield Account(peer, raw, tuple(history))


def generate(n: int = N_DEFAULT, seed: int = SEED) -> list[Account]:
    return list(iter_population(n, seed))


# ---------------------------------------------------------------- self-check

def derive_peer_fields(timezone: str, history: Iterable[Event], now: dt.datetime = NOW) -> dict:
    """local_hour, calls_last_7d and days_since_conversation, computed from the zone and the
    history as contact.policy reads them (calendar days in the account's zone, today included)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    today = local.date()
    calls = 0
    last: dt.date | None = None
    for event in history:
        if event.at > now:
            continue
        day = event.at.astimezone(zone).date()
        if event.action == "agent_call" and (today - day).days < 7:
            calls += 1
        if event.outcome == "conversation" and event.action in ("agent_call", "inbound_call") and (
                last is None or day > last):
            last = day
    return {"local_hour": local.hour, "calls_last_7d": calls,
            "days_since_conversation": None if last is None else (today - last).days}


def check(accounts: Iterable[Account]) -> int:
    """Raise if any history disagrees with its peer record; returns the number checked."""
    count = 0
    for account in accounts:
        got = derive_peer_fields(account.raw["timezone"], account.history)
        want = {key: account.peer[key] for key in got}
        if got != want:
            raise AssertionError(f"{account.peer['id']}: history gives {got}, record says {want}")
        count += 1
    return count


# ---------------------------------------------------------------- CSV files for `policy run`

ACCOUNT_COLUMNS = ("id", "days_past_due", "balance", "timezone", "risk_score", "flags")
HISTORY_COLUMNS = ("account_id", "action", "at", "outcome")


def write_csv(n: int, directory: str, seed: int = SEED) -> tuple[str, str, int]:
    """DIR/accounts.csv and DIR/contacts.csv for n accounts (streamed: memory stays flat).
    Returns the two paths and the number of history rows. Files are written under temporary
    names and renamed, so a complete pair on disk is never a half-written one."""
    os.makedirs(directory, exist_ok=True)
    accounts_path = os.path.join(directory, "accounts.csv")
    contacts_path = os.path.join(directory, "contacts.csv")
    rows = 0
    with open(accounts_path + ".tmp", "w", newline="", encoding="utf-8") as af, \
            open(contacts_path + ".tmp", "w", newline="", encoding="utf-8") as cf:
        accounts_out = csv.writer(af, lineterminator="\n")
        contacts_out = csv.writer(cf, lineterminator="\n")
        accounts_out.writerow(ACCOUNT_COLUMNS)
        contacts_out.writerow(HISTORY_COLUMNS)
        for account in iter_population(n, seed):
            raw = account.raw
            accounts_out.writerow((raw["id"], raw["days_past_due"], f"{raw['balance']:.2f}", raw["timezone"],
                                   repr(raw["risk_score"]), ";".join(raw["flags"])))
            for event in account.history:
                contacts_out.writerow((raw["id"], event.action, event.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                       event.outcome))
            rows += len(account.history)
    os.replace(contacts_path + ".tmp", contacts_path)
    os.replace(accounts_path + ".tmp", accounts_path)
    return accounts_path, contacts_path, rows


# ---------------------------------------------------------------- the e-commerce workload

# policies/ecommerce_consumer_loan.policy (16 actions, the China baseline included) on N accounts
# drawn by examples/make_examples.py's own account generator: its seed, its NOW, its stage mix
# (every stage, the exact days-past-due boundaries, the M3plus balance bands), its flags (exact
# shares, the rare do-not-contact ones included), multi-zone and empty time zones. No history:
# the examples' contact generator places deliberate cases by hand and does not scale.
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
ECOMMERCE_POLICY = os.path.join(os.path.dirname(EXAMPLES), "policies", "ecommerce_consumer_loan.policy")


@functools.cache
def _make_examples() -> ModuleType:
    """examples/make_examples.py as a module (examples/ is not a package), loaded once."""
    spec = importlib.util.spec_from_file_location("make_examples", os.path.join(EXAMPLES, "make_examples.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_examples"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def ecommerce_seed() -> int:
    return int(_make_examples().SEED)


def ecommerce_now() -> dt.datetime:
    """The examples' evaluation instant (10:00 in Shanghai), which their accounts are drawn for."""
    now: dt.datetime = _make_examples().NOW
    return now


def write_ecommerce_csv(n: int, directory: str, seed: int | None = None) -> tuple[str, dict[str, int]]:
    """DIR/accounts.csv: n e-commerce accounts from the examples' generator (with the examples'
    seed by default, n = 250 gives the shipped examples/accounts.csv byte for byte). The generator
    holds the whole book in memory (it draws exact flag counts over all rows): ~0.5 KB per account.
    Returns the path and the stage mix."""
    examples = _make_examples()
    accounts = examples.make_accounts(random.Random(examples.SEED if seed is None else seed), n)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "accounts.csv")
    with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(examples.ACCOUNT_COLUMNS)
        out.writerows(account.row() for account in accounts)
    os.replace(path + ".tmp", path)
    return path, dict(collections.Counter(account.stage for account in accounts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=N_DEFAULT, help="number of accounts (default %(default)s)")
    parser.add_argument("--seed", type=int, help=f"default {SEED}; the examples' seed for --workload ecommerce")
    parser.add_argument("--out", help="write accounts.csv and contacts.csv to this directory")
    parser.add_argument("--check", action="store_true", help="re-derive every peer field from its history")
    parser.add_argument("--workload", choices=("peers", "ecommerce"), default="peers",
                        help="ecommerce: DIR/accounts.csv only, for policies/ecommerce_consumer_loan.policy")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.workload == "ecommerce":
        if not args.out:
            parser.error("--workload ecommerce needs --out")
        path, stages = write_ecommerce_csv(args.n, args.out, args.seed)
        print(f"wrote {path} ({args.n:,} e-commerce accounts; stages {stages}) "
              f"in {time.perf_counter() - started:.1f} s")
        return
    args.seed = SEED if args.seed is None else args.seed
    if args.out:
        accounts, contacts, rows = write_csv(args.n, args.out, args.seed)
        print(f"wrote {accounts} ({args.n:,} accounts) and {contacts} ({rows:,} contacts) "
              f"in {time.perf_counter() - started:.1f} s")
    if args.check or not args.out:
        population = generate(args.n, args.seed)
        checked = check(population)
        stages = collections.Counter(
            "current" if a.peer["days_past_due"] < 1 else "M0" if a.peer["days_past_due"] <= 30 else
            "M1" if a.peer["days_past_due"] <= 60 else "M2" if a.peer["days_past_due"] <= 90 else "M3plus"
            for a in population)
        events = sum(len(a.history) for a in population)
        print(f"{checked:,} accounts checked against their histories; {events:,} contacts "
              f"({events / max(checked, 1):.1f} per account); stages {dict(stages)}; "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()


def cpu_model() -> str:
    """The CPU's model name, for the machine line every benchmark prints."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "?"
