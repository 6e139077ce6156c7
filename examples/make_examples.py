"""Regenerate the example data sets used by policydsl's examples, docs and tests.

Why this exists
---------------
policydsl policies (stage routing, contact-frequency caps, quiet hours,
balance thresholds, do-not-contact flags, ...) need realistic input to run
against.  Hand-written CSVs drift and rarely cover the edge cases, so this
script produces them from a fixed seed using only the standard library:

* ``accounts.csv`` -- one row per e-commerce consumer-loan account, covering
  every collection stage (current, M0, M1, M2, M3plus) including the exact
  days-past-due boundaries, the M3plus balance thresholds (500 / 5000),
  high/low risk in every stage, multi-zone and missing time zones, and rare
  flags such as ``deceased`` or ``cease_contact``.
* ``contacts.csv`` -- a 30-day contact history for about 60% of the accounts,
  relative to the reference instant ``NOW`` (2025-06-04T02:00:00Z, i.e.
  10:00 in Shanghai).  It deliberately contains cases that frequency and
  timing rules must catch (3+ calls yesterday, an SMS already sent today,
  a recent conversation, 7+ calls in a week).

The output is byte-for-byte reproducible: re-run after changing this file and
commit the regenerated CSVs together with it::

    python examples/make_examples.py
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

SEED = 20250604
N_ACCOUNTS = 250
NOW = datetime(2025, 6, 4, 2, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)
DEFAULT_TZ: tzinfo = timezone(timedelta(hours=8))  # used when an account has no zone
OUT_DIR = Path(__file__).resolve().parent

ACCOUNT_COLUMNS = [
    "id",
    "days_past_due",
    "balance",
    "timezone",
    "risk_score",
    "flags",
    "failed_payments",
    "contact_changes_90d",
    "spending_change",
    "income_stability",
    "debt_to_income",
    "past_delinquencies",
    "broken_promises",
    "region_risk",
    "hardship",
    "debtor_unreachable",
]
CONTACT_COLUMNS = ["account_id", "action", "at", "outcome"]

STAGES = ["current", "M0", "M1", "M2", "M3plus"]
STAGE_SHARE = {"current": 0.20, "M0": 0.25, "M1": 0.20, "M2": 0.15, "M3plus": 0.20}
STAGE_DPD = {
    "current": (-5, 0),
    "M0": (1, 30),
    "M1": (31, 60),
    "M2": (61, 90),
    "M3plus": (91, 400),
}
BOUNDARY_DPD = {
    "current": [-3, 0],
    "M0": [1, 30],
    "M1": [31, 60],
    "M2": [61, 90],
    "M3plus": [91],
}
STAGE_RISK_BASE = {"current": 0.15, "M0": 0.30, "M1": 0.45, "M2": 0.60, "M3plus": 0.70}
HIGH_RISK = 0.70

ZONES = {  # single-zone weights
    "Asia/Shanghai": 70,
    "Asia/Hong_Kong": 5,
    "Asia/Singapore": 5,
    "Asia/Urumqi": 4,
    "Asia/Kolkata": 4,
    "America/New_York": 4,
    "Europe/London": 4,
    "Australia/Adelaide": 4,
}
MULTI_ZONES = [
    "Asia/Shanghai;America/Los_Angeles",
    "Asia/Hong_Kong;Europe/London",
    "Asia/Singapore;Australia/Sydney",
    "Asia/Shanghai;Asia/Tokyo",
    "Asia/Shanghai;America/New_York",
    "Asia/Kolkata;Asia/Singapore",
]

# flag -> (probability, minimum number of rows); written in this order
FLAGS = {
    "contact_unreachable": (0.06, 0),
    "spending_drop": (0.06, 0),
    "complaint_open": (0.04, 0),
    "dispute_pending": (0.04, 0),
    "hardship_reported": (0.05, 0),
    "vulnerable": (0.03, 0),
    "deceased": (0.01, 2),
    "bankruptcy": (0.02, 2),
    "cease_contact": (0.02, 2),
}
DO_NOT_CONTACT = {"deceased", "bankruptcy", "cease_contact"}

MESSAGES = ["app_push", "sms", "email"]
CALLS = ["ivr", "agent_call", "senior_agent_call", "inbound_call"]
OUTBOUND_BY_STAGE = {  # action -> weight
    "current": {"app_push": 5, "sms": 3, "email": 2},
    "M0": {"app_push": 3, "sms": 4, "email": 2, "ivr": 3},
    "M1": {"agent_call": 6, "sms": 2, "ivr": 1},
    "M2": {"senior_agent_call": 6, "sms": 1},
    "M3plus": {"senior_agent_call": 7, "sms": 1},
}
STAGE_CONTACTS = {
    "current": (1, 3),
    "M0": (2, 6),
    "M1": (3, 8),
    "M2": (3, 9),
    "M3plus": (3, 10),
}


@dataclass
class Account:
    id: str
    stage: str
    days_past_due: int = 0
    balance: float = 0.0
    timezone: str = ""
    risk_score: float = 0.0
    flags: list[str] = field(default_factory=list)
    failed_payments: int = 0
    contact_changes_90d: int = 0
    spending_change: float = 0.0
    income_stability: str = "stable"
    debt_to_income: float = 0.0
    past_delinquencies: int = 0
    broken_promises: int = 0
    region_risk: str = "low"
    hardship: bool = False

    def row(self) -> list[str]:
        flags = ";".join(f for f in FLAGS if f in self.flags)
        return [
            self.id,
            str(self.days_past_due),
            f"{self.balance:.2f}",
            self.timezone,
            f"{self.risk_score:.2f}",
            flags,
            str(self.failed_payments),
            str(self.contact_changes_90d),
            f"{self.spending_change:.2f}",
            self.income_stability,
            f"{self.debt_to_income:.2f}",
            str(self.past_delinquencies),
            str(self.broken_promises),
            self.region_risk,
            "true" if self.hardship else "false",
            "true" if self.debtor_unreachable else "false",
        ]

    @property
    def debtor_unreachable(self) -> bool:
        """Marked unreachable by the institution (the China baseline's field,
        Convention art. 14): its number is flagged unreachable and a month of
        collection has passed. Derived, so the random draws stay as they were."""
        return "contact_unreachable" in self.flags and self.days_past_due > 30


@dataclass(frozen=True)
class Contact:
    account_id: str
    action: str
    at: datetime
    outcome: str

    def row(self) -> list[str]:
        return [
            self.account_id,
            self.action,
            self.at.isoformat(timespec="seconds"),
            self.outcome,
        ]


def stage_of(dpd: int) -> str:
    """Collection stage for a days-past-due value (mirrors the example policy)."""
    if dpd <= 0:
        return "current"
    if dpd <= 30:
        return "M0"
    if dpd <= 60:
        return "M1"
    if dpd <= 90:
        return "M2"
    return "M3plus"


def clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def pick_int(rng: random.Random, weights: Sequence[float]) -> int:
    return rng.choices(range(len(weights)), weights=weights)[0]


def lognormal_balance(rng: random.Random, mu: float) -> float:
    """Lognormal draw, re-drawn (not clamped) until it falls in 50..80000."""
    while not 50.0 <= (x := rng.lognormvariate(mu, 1.2)) <= 80000.0:
        pass
    return x


def tier(risk: float) -> int:
    return 0 if risk < 0.4 else (1 if risk < HIGH_RISK else 2)


# --------------------------------------------------------------------------- accounts
def make_accounts(rng: random.Random, n: int = N_ACCOUNTS) -> list[Account]:
    """``n`` accounts (default: the shipped 250) drawn from ``rng``.

    ``n`` is a parameter so that benchmarks/workload.py can draw a large
    e-commerce book from the same generator; the forced roles (boundary
    days past due, risk tiers, M3plus balance bands) are a fixed number of
    rows per stage, so ``n`` must leave each stage at least 18 rows
    (``n`` >= 100 does)."""
    counts = {s: round(STAGE_SHARE[s] * n) for s in STAGES}
    counts["M0"] += n - sum(counts.values())
    stages = [s for s in STAGES for _ in range(counts[s])]
    rng.shuffle(stages)
    accounts = [Account(id=f"A{i + 1:04d}", stage=s) for i, s in enumerate(stages)]

    # Per-stage forced roles (boundary dpd, high/low risk, M3plus balance bands) on distinct rows.
    forced_dpd: dict[int, int] = {}
    forced_risk: dict[int, float] = {}
    forced_balance: dict[int, float] = {}
    for s in STAGES:
        idx = [i for i, a in enumerate(accounts) if a.stage == s]
        rng.shuffle(idx)
        for dpd in BOUNDARY_DPD[s]:
            forced_dpd[idx.pop()] = dpd
        for _ in range(4):
            forced_risk[idx.pop()] = rng.uniform(HIGH_RISK, 0.97)
            forced_risk[idx.pop()] = rng.uniform(0.05, 0.65)
        if s == "M3plus":
            for lo, hi in [(60.0, 499.0), (500.0, 4999.0), (5000.0, 60000.0)] * 3:
                forced_balance[idx.pop()] = rng.uniform(lo, hi)

    # Flags: exact counts (share of rows, with a floor for the rare ones); unreachable and
    # complaints lean towards later stages (weighted sampling without replacement).
    for flag, (p, minimum) in FLAGS.items():
        lean = flag in ("contact_unreachable", "complaint_open")
        keys = [
            rng.random() ** (1 / (1 + (STAGES.index(a.stage) if lean else 0)))
            for a in accounts
        ]
        top = sorted(range(n), key=lambda i: keys[i], reverse=True)
        for i in top[: max(minimum, round(p * n))]:
            accounts[i].flags.append(flag)

    for i, a in enumerate(accounts):
        lo, hi = STAGE_DPD[a.stage]
        if i in forced_dpd:
            a.days_past_due = forced_dpd[i]
        elif a.stage == "M3plus":
            a.days_past_due = min(hi, lo + int(rng.expovariate(1 / 80)))
        else:
            a.days_past_due = rng.randint(lo, hi)
        assert stage_of(a.days_past_due) == a.stage

        later = STAGES.index(a.stage) / 4  # 0 .. 1
        a.balance = forced_balance.get(i) or lognormal_balance(rng, 7.6 + 0.6 * later)
        a.balance = round(a.balance, 2)
        r = forced_risk.get(
            i, clamp(rng.gauss(STAGE_RISK_BASE[a.stage], 0.18), 0.01, 0.99)
        )
        a.risk_score = round(r, 2)
        t = tier(a.risk_score)

        a.failed_payments = pick_int(
            rng,
            [[88, 8, 3, 1, 0, 0], [55, 25, 12, 5, 2, 1], [22, 25, 22, 15, 10, 6]][t],
        )
        if a.stage == "current":
            a.failed_payments = min(a.failed_payments, 1)
        a.broken_promises = pick_int(
            rng, [[90, 8, 2, 0, 0], [60, 25, 10, 4, 1], [30, 30, 20, 12, 8]][t]
        )
        if a.stage in ("current", "M0"):
            a.broken_promises = min(a.broken_promises, 1)
        a.past_delinquencies = pick_int(
            rng,
            [
                [60, 25, 10, 3, 2, 0, 0],
                [35, 25, 18, 10, 6, 4, 2],
                [15, 18, 20, 17, 13, 10, 7],
            ][t],
        )
        a.contact_changes_90d = (
            rng.randint(1, 4)
            if "contact_unreachable" in a.flags
            else pick_int(rng, [80, 13, 5, 1.5, 0.5])
        )
        a.spending_change = round(
            rng.uniform(-0.9, -0.3)
            if "spending_drop" in a.flags
            else rng.uniform(0.15, 0.5)
            if rng.random() < 0.03
            else clamp(rng.gauss(0.0, 0.07), -0.25, 0.5),
            2,
        )
        a.income_stability = pick(
            rng,
            [
                {"stable": 75, "variable": 20, "unstable": 5},
                {"stable": 50, "variable": 35, "unstable": 15},
                {"stable": 30, "variable": 40, "unstable": 30},
            ][t],
        )
        a.debt_to_income = round(
            clamp(rng.gauss(0.3 + 0.55 * a.risk_score, 0.2), 0.02, 1.5), 2
        )
        a.region_risk = pick(
            rng, {"low": 50 - 10 * t, "medium": 35, "high": 15 + 10 * t}
        )
        a.hardship = "hardship_reported" in a.flags or rng.random() < (
            0.10 if a.income_stability == "unstable" else 0.03
        )
        a.timezone = pick(rng, ZONES)

    # ~3% two candidate zones, ~5% no zone (policy falls back to a default).
    special = rng.sample(
        range(n), round(0.03 * n) + round(0.05 * n)
    )
    for k, i in enumerate(special):
        accounts[i].timezone = (
            MULTI_ZONES[k % len(MULTI_ZONES)] if k < round(0.03 * n) else ""
        )
    return accounts


# --------------------------------------------------------------------------- contacts
def contact_zone(a: Account) -> tzinfo:
    return ZoneInfo(a.timezone.split(";")[0]) if a.timezone else DEFAULT_TZ


def local_instant(tz: tzinfo, day: date, hour: int, minute: int) -> datetime | None:
    """Local wall time on ``day`` in ``tz``, or None if outside [NOW - 30d, NOW)."""
    at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    if at.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != at.replace(
        tzinfo=None
    ):
        return None  # nonexistent wall time (DST gap)
    return at if NOW - WINDOW <= at < NOW else None


def local_today(tz: tzinfo) -> date:
    return NOW.astimezone(tz).date()


def outcome_for(rng: random.Random, a: Account, action: str) -> str:
    if action in MESSAGES:
        fail = 0.45 if "contact_unreachable" in a.flags else 0.07
        return "failed" if rng.random() < fail else "delivered"
    if action == "inbound_call":
        return pick(rng, {"conversation": 6, "promise_to_pay": 3, "refused": 1})
    w = {
        "conversation": 20,
        "voicemail": 12,
        "no_answer": 30,
        "not_connected": 12,
        "promise_to_pay": 16 - 8 * tier(a.risk_score),
        "refused": 4 + 5 * tier(a.risk_score),
    }
    if "contact_unreachable" in a.flags:
        w["not_connected"] += 40
        w["no_answer"] += 20
    return pick(rng, w)


class History:
    """Contacts for one account, unique per instant."""

    def __init__(self, rng: random.Random, a: Account) -> None:
        self.rng, self.a, self.tz = rng, a, contact_zone(a)
        self.items: dict[datetime, Contact] = {}

    def add(
        self,
        action: str,
        days_back: tuple[int, int],
        hours: tuple[int, int],
        outcome: str | None = None,
        after: datetime | None = None,
    ) -> None:
        for _ in range(200):
            day = local_today(self.tz) - timedelta(days=self.rng.randint(*days_back))
            at = local_instant(
                self.tz, day, self.rng.randint(*hours), self.rng.randrange(0, 60, 5)
            )
            if at is None or at in self.items or (after is not None and at < after):
                continue
            self.items[at] = Contact(
                self.a.id, action, at, outcome or outcome_for(self.rng, self.a, action)
            )
            return
        raise RuntimeError(f"could not place {action} for {self.a.id}")


def make_contacts(rng: random.Random, accounts: list[Account]) -> list[Contact]:
    chosen = sorted(rng.sample(range(len(accounts)), round(0.6 * len(accounts))))
    histories = {accounts[i].id: History(rng, accounts[i]) for i in chosen}

    for h in histories.values():
        lo, hi = STAGE_CONTACTS[h.a.stage]
        for _ in range(rng.randint(lo, hi)):
            action = (
                "inbound_call"
                if rng.random() < 0.06
                else pick(rng, OUTBOUND_BY_STAGE[h.a.stage])
            )
            hours = (
                (7, 7)
                if rng.random() < 0.005
                else ((21, 22) if rng.random() < 0.005 else (8, 20))
            )
            h.add(action, (0, 29), hours)

    # Deliberate cases for frequency / timing rules (disjoint accounts, none do-not-contact).
    pool = [h for h in histories.values() if not DO_NOT_CONTACT & set(h.a.flags)]
    rng.shuffle(pool)

    def take(n: int, ok: Callable[[History], bool]) -> list[History]:
        out = [h for h in pool if ok(h)][:n]
        for h in out:
            pool.remove(h)
        return out

    yesterday = date(2025, 6, 3)
    for h in take(
        6, lambda h: h.a.stage in ("M1", "M2", "M3plus")
    ):  # 3+ calls on 2025-06-03 local
        call = "agent_call" if h.a.stage == "M1" else "senior_agent_call"
        offset = (local_today(h.tz) - yesterday).days
        for _ in range(rng.randint(3, 4)):
            h.add(call, (offset, offset), (9, 20))
    for h in take(
        6,
        lambda h: (
            h.a.stage in ("current", "M0")  # sms already sent today (local 2025-06-04)
            and NOW.astimezone(h.tz).utcoffset() == timedelta(hours=8)
        ),
    ):
        h.add("sms", (0, 0), (8, 9), outcome="delivered")
    for h in take(6, lambda h: True):  # a conversation within the last 48 hours
        call = {"current": "inbound_call", "M0": "ivr", "M1": "agent_call"}.get(
            h.a.stage, "senior_agent_call"
        )
        h.add(
            call,
            (0, 2),
            (9, 20),
            outcome="conversation",
            after=NOW - timedelta(hours=48),
        )
    for h in take(
        4, lambda h: h.a.stage in ("M2", "M3plus")
    ):  # 7+ calls in the last 7 days
        for _ in range(rng.randint(7, 9)):
            h.add("senior_agent_call", (0, 6), (9, 20), after=NOW - timedelta(days=7))

    contacts = [c for h in histories.values() for c in h.items.values()]
    return sorted(contacts, key=lambda c: (c.account_id, c.at.astimezone(UTC)))


# --------------------------------------------------------------------------- output
def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def verify(accounts_path: Path, contacts_path: Path) -> dict[str, int]:
    """Re-read the CSVs and check structural invariants; return counts of the deliberate cases."""
    with accounts_path.open(newline="", encoding="utf-8") as f:
        arows = list(csv.reader(f))
    with contacts_path.open(newline="", encoding="utf-8") as f:
        crows = list(csv.reader(f))
    assert arows[0] == ACCOUNT_COLUMNS and crows[0] == CONTACT_COLUMNS
    assert all(len(r) == len(ACCOUNT_COLUMNS) for r in arows[1:])
    assert all(len(r) == len(CONTACT_COLUMNS) for r in crows[1:])
    zones = {r[0]: r[3] for r in arows[1:]}
    assert len(zones) == len(arows) - 1, "duplicate account ids"
    for z in zones.values():
        for name in filter(None, z.split(";")):
            ZoneInfo(name)
    dpds = [int(r[1]) for r in arows[1:]]
    assert all(b in dpds for bs in BOUNDARY_DPD.values() for b in bs)
    combos = Counter((stage_of(int(r[1])), float(r[4]) >= HIGH_RISK) for r in arows[1:])
    assert all(combos[(s, h)] >= 3 for s in STAGES for h in (True, False)), combos
    m3 = [float(r[2]) for r in arows[1:] if stage_of(int(r[1])) == "M3plus"]
    assert (
        any(b < 500 for b in m3)
        and any(500 <= b < 5000 for b in m3)
        and any(b >= 5000 for b in m3)
    )
    seen: Counter[str] = Counter()
    calls_by_acct: dict[str, list[datetime]] = {}
    prev: tuple[str, datetime] | None = None
    for acct, action, at_s, outcome in crows[1:]:
        assert acct in zones, acct
        at = datetime.fromisoformat(at_s)
        assert at.tzinfo is not None and NOW - WINDOW <= at < NOW, at_s
        assert outcome in (
            ("delivered", "failed")
            if action in MESSAGES
            else (
                "conversation",
                "voicemail",
                "no_answer",
                "not_connected",
                "promise_to_pay",
                "refused",
            )
        )
        assert prev is None or prev <= (acct, at), "contacts not sorted"
        prev = (acct, at)
        tz = ZoneInfo(zones[acct].split(";")[0]) if zones[acct] else DEFAULT_TZ
        local = at.astimezone(tz)
        if not 8 <= local.hour < 21:
            seen["outside_hours_contacts"] += 1
        if action in CALLS:
            calls_by_acct.setdefault(acct, []).append(at)
        if action == "sms" and local.date() == local_today(tz):
            seen[f"sms_today:{acct}"] = 1
        if outcome == "conversation" and at >= NOW - timedelta(hours=48):
            seen[f"conv_48h:{acct}"] = 1
    for acct, ats in calls_by_acct.items():
        tz = ZoneInfo(zones[acct].split(";")[0]) if zones[acct] else DEFAULT_TZ
        if sum(a.astimezone(tz).date() == date(2025, 6, 3) for a in ats) >= 3:
            seen["accounts_3plus_calls_2025-06-03"] += 1
        if sum(a >= NOW - timedelta(days=7) for a in ats) >= 7:
            seen["accounts_7plus_calls_7d"] += 1
    for key in ("sms_today", "conv_48h"):
        seen[f"accounts_{key}"] = sum(1 for k in list(seen) if k.startswith(key + ":"))
    result = {k: v for k, v in seen.items() if ":" not in k}
    assert result.get("accounts_3plus_calls_2025-06-03", 0) >= 5
    assert result.get("accounts_sms_today", 0) >= 5
    assert result.get("accounts_conv_48h", 0) >= 5
    assert result.get("accounts_7plus_calls_7d", 0) >= 3
    return result


def main() -> None:
    rng = random.Random(SEED)
    accounts = make_accounts(rng)
    contacts = make_contacts(rng, accounts)
    accounts_path, contacts_path = OUT_DIR / "accounts.csv", OUT_DIR / "contacts.csv"
    write_csv(accounts_path, ACCOUNT_COLUMNS, [a.row() for a in accounts])
    write_csv(contacts_path, CONTACT_COLUMNS, [c.row() for c in contacts])
    cases = verify(accounts_path, contacts_path)

    stage_mix = Counter(a.stage for a in accounts)
    high = Counter(a.stage for a in accounts if a.risk_score >= HIGH_RISK)
    print(f"wrote {accounts_path.name}: {len(accounts)} accounts")
    for s in STAGES:
        print(
            f"  {s:<8} {stage_mix[s]:>4}  ({stage_mix[s] / len(accounts):.0%}), high risk {high[s]}"
        )
    flags = Counter(f for a in accounts for f in a.flags)
    print("  flags:", ", ".join(f"{f}={flags[f]}" for f in FLAGS))
    print(
        f"  timezone empty={sum(not a.timezone for a in accounts)}, "
        f"multi={sum(';' in a.timezone for a in accounts)}, hardship={sum(a.hardship for a in accounts)}"
    )
    print(
        f"wrote {contacts_path.name}: {len(contacts)} contacts for "
        f"{len({c.account_id for c in contacts})} accounts"
    )
    print(
        "  actions:",
        ", ".join(
            f"{k}={v}" for k, v in sorted(Counter(c.action for c in contacts).items())
        ),
    )
    print("  cases:", ", ".join(f"{k}={v}" for k, v in sorted(cases.items())))


if __name__ == "__main__":
    main()
