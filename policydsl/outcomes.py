"""What a collection cycle achieved, and whether its past contacts kept to the
policy: the numbers of `policy report` (docs/report.md defines each one).

Pure functions over streams of contacts, decisions, payments and account
rows; no HTML (report_html.py renders these numbers) and no files opened
here. Every rate carries its Wilson interval, every mean its normal one;
`build_report` gathers them into one JSON-able dict, which both the JSON
output and the HTML page are made from, so that the two never disagree.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .decision import Contact, Decision, format_exact_instant
from .engine import Engine
from .inputs import normalise_id
from .model import Model

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95% intervals

# How history outcomes count (docs/report.md, "Outcomes"). An outcome in no set
# still counts as a contact (intensity), never as an attempt or a delivery.
RIGHT_PARTY = frozenset({"conversation", "promise_to_pay", "refused", "connected"})  # the debtor was reached
NO_CONTACT = frozenset({"no_answer", "not_connected", "voicemail", "busy"})  # a call that reached nobody
PROMISE = frozenset({"promise_to_pay"})
DELIVERED = frozenset({"delivered"})
UNDELIVERED = frozenset({"failed", "undelivered", "bounced"})

ALL_GROUPS = "all"  # the test group of a decision without a `group` key
NO_STAGE = "(none)"


# ------------------------------------------------------------ intervals


def wilson(hits: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of hits/total (None when total is 0): unlike
    p ± z·√(p(1-p)/n) it stays inside [0, 1] and is not degenerate at 0 or n."""
    if total <= 0:
        return None
    p = hits / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """hits out of total, with its 95% Wilson interval."""

    hits: int
    total: int

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.hits, self.total)

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {"hits": self.hits, "total": self.total, "rate": _round(self.value),
                "ci95": [_round(interval[0]), _round(interval[1])] if interval else None}


@dataclass(frozen=True)
class Mean:
    """A sample mean with its 95% normal interval, mean ± z·s/√n (s the
    sample standard deviation; no interval under two values)."""

    n: int
    mean: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: Sequence[float], bounds: tuple[float, float] | None = None) -> Mean:
        """The mean of `values`; `bounds`: the interval is clipped to the range the values can take."""
        n = len(values)
        if n == 0:
            return cls(0, None, None, None)
        mean = math.fsum(values) / n
        if n < 2:
            return cls(n, mean, None, None)
        deviation = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (n - 1))
        half = Z95 * deviation / math.sqrt(n)
        low, high = mean - half, mean + half
        if bounds is not None:
            low, high = max(bounds[0], low), min(bounds[1], high)
        return cls(n, mean, low, high)

    def to_dict(self) -> dict[str, Any]:
        ci = [_round(self.low), _round(self.high)] if self.low is not None else None
        return {"n": self.n, "mean": _round(self.mean), "ci95": ci}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# ------------------------------------------------------------ inputs (streams of lines)


@dataclass(frozen=True)
class Payment:
    account_id: str
    paid_at: dt.datetime  # UTC
    amount: Decimal


@dataclass
class Payments:
    """Payments by account id, in file order, and the rows that could not be read."""

    by_account: dict[str, list[Payment]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def latest(self) -> dt.datetime | None:
        return max((p.paid_at for ps in self.by_account.values() for p in ps), default=None)


PAYMENT_COLUMNS = ("account_id", "paid_at", "amount")


def read_payments(lines: Iterable[str], name: str = "payments") -> Payments:
    """A payments CSV (`account_id,paid_at,amount`; other columns ignored):
    `paid_at` ISO-8601 with an offset, `amount` a decimal. A row that cannot
    be read is a problem (file and line) and counts for nothing. Raises
    ValueError when the header lacks a column."""
    reader = csv.reader(lines)
    header = [normalise_id(cell) for cell in next(reader, [])]
    missing = [column for column in PAYMENT_COLUMNS if column not in header]
    if missing:
        raise ValueError(f"{name}: no column {', '.join(map(repr, missing))} in the header "
                         f"(expected {','.join(PAYMENT_COLUMNS)})")
    index = {column: header.index(column) for column in PAYMENT_COLUMNS}
    payments = Payments()
    for cells in reader:
        line = reader.line_num
        if not cells:
            continue
        if len(cells) != len(header):
            payments.problems.append(f"{name}:{line}: expected {len(header)} fields, found {len(cells)}")
            continue
        account_id = normalise_id(cells[index["account_id"]])
        try:
            paid_at = dt.datetime.fromisoformat(cells[index["paid_at"]].strip())
            if paid_at.tzinfo is None:
                raise ValueError("no offset")
            amount = Decimal(cells[index["amount"]].strip())
            if not amount.is_finite():
                raise InvalidOperation
        except (ValueError, InvalidOperation):
            payments.problems.append(f"{name}:{line}: paid_at {cells[index['paid_at']]!r} or amount "
                                     f"{cells[index['amount']]!r} cannot be read (ISO-8601 with an offset; a "
                                     "decimal)")
            continue
        if not account_id:
            payments.problems.append(f"{name}:{line}: account_id is empty")
            continue
        payments.by_account.setdefault(account_id, []).append(Payment(account_id, paid_at.astimezone(dt.UTC),
                                                                      amount))
    return payments


@dataclass(frozen=True)
class DecisionRow:
    """What the report reads of one decision (a JSONL line of `policy run`)."""

    account_id: str
    stage: str | None
    next_action: str | None
    group: str
    now: dt.datetime | None
    error: str | None
    digest: str | None = None  # the deciding policy's digest, when the decision names it


def read_decisions(lines: Iterable[str], name: str = "decisions",
                   groups: frozenset[str] = frozenset()) -> tuple[list[DecisionRow], list[str]]:
    """Decisions JSONL: the rows, and the problems (lines that are no JSON
    object or have no account_id). A decision's test group is the segment
    it lists that is one of `groups` (the policy's experiment groups, see
    `group_of`); without one it is in group "all"."""
    rows: list[DecisionRow] = []
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{name}:{number}: not JSON ({error.msg})")
            continue
        if not isinstance(item, dict) or not isinstance(item.get("account_id"), str):
            problems.append(f"{name}:{number}: no account_id")
            continue
        rows.append(DecisionRow(normalise_id(item["account_id"]), _text(item.get("stage")),
                                _text(item.get("next_action")), group_of(item.get("segments"), groups),
                                _instant(item.get("now")), _text(item.get("error")),
                                _text((item.get("policy") or {}).get("digest")) if isinstance(item.get("policy"), dict)
                                else None))
    return rows, problems


def decision_row(decision: Decision, groups: frozenset[str] = frozenset()) -> DecisionRow:
    return DecisionRow(decision.account_id or "", decision.stage, decision.next_action,
                       group_of(decision.segments, groups), decision.now, decision.error,
                       decision.policy.digest if decision.policy else None)


def experiment_groups(model: Model) -> frozenset[str]:
    """The names of the policy's test groups (`experiment` blocks): each is a
    segment, so a decision lists its account's group among its segments."""
    return frozenset(group.name for experiment in model.experiments for group in experiment.groups)


def group_of(segments: Any, groups: frozenset[str]) -> str:
    """A decision's test group: its segments that are experiment groups
    (joined with `+` when the policy runs several experiments), else "all"."""
    if not isinstance(segments, list | tuple):
        return ALL_GROUPS
    return "+".join(name for name in segments if name in groups) or ALL_GROUPS


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant.astimezone(dt.UTC) if instant.tzinfo else None


# ------------------------------------------------------------ contact metrics


@dataclass
class ChannelStats:
    action: str
    event: bool  # a history-only name (an inbound call): not a contact the lender made
    contacts: int = 0
    accounts: int = 0
    attempts: int = 0  # outcomes in RIGHT_PARTY or NO_CONTACT
    right_party: int = 0
    promises: int = 0
    delivered: int = 0
    undelivered: int = 0

    def to_dict(self, portfolio: int) -> dict[str, Any]:
        return {"action": self.action, "event": self.event, "contacts": self.contacts, "accounts": self.accounts,
                "contacts_per_account": _round(self.contacts / portfolio) if portfolio else None,
                "contacts_per_contacted_account": _round(self.contacts / self.accounts) if self.accounts else None,
                "right_party_rate": Rate(self.right_party, self.attempts).to_dict(),
                "promise_rate": Rate(self.promises, self.right_party).to_dict(),
                "delivery_rate": Rate(self.delivered, self.delivered + self.undelivered).to_dict()}


def channel_stats(contacts: Iterable[Contact], is_event: Callable[[str], bool],
                  rank: Callable[[str], int] = lambda action: 0) -> list[ChannelStats]:
    """Per action (and event) of the history, by `rank` (the policy's order) and then first appearance."""
    stats: dict[str, ChannelStats] = {}
    accounts: dict[str, set[str]] = defaultdict(set)
    for contact in contacts:
        entry = stats.get(contact.action)
        if entry is None:
            entry = stats[contact.action] = ChannelStats(contact.action, is_event(contact.action))
        entry.contacts += 1
        accounts[contact.action].add(contact.account_id)
        outcome = contact.outcome
        if outcome in RIGHT_PARTY or outcome in NO_CONTACT:
            entry.attempts += 1
        entry.right_party += outcome in RIGHT_PARTY
        entry.promises += outcome in PROMISE
        entry.delivered += outcome in DELIVERED
        entry.undelivered += outcome in UNDELIVERED
    for action, entry in stats.items():
        entry.accounts = len(accounts[action])
    return [stats[action] for action in sorted(stats, key=lambda a: (rank(a), list(stats).index(a)))]


@dataclass(frozen=True)
class Promises:
    promises: int
    kept: int
    pending: int  # not kept, and the payments do not yet cover their whole window

    @property
    def rate(self) -> Rate:
        return Rate(self.kept, self.promises - self.pending)

    def to_dict(self) -> dict[str, Any]:
        return {"promises": self.promises, "kept": self.kept, "pending": self.pending,
                "kept_rate": self.rate.to_dict()}


def promises_kept(contacts: Iterable[Contact], payments: Mapping[str, Sequence[Payment]], days: int,
                  horizon: dt.datetime | None) -> Promises:
    """A promise to pay at t is kept when the account pays anything in
    [t, t + days]; one not kept whose window ends after `horizon` (the
    instant the payments are complete to) is pending, and not in the rate."""
    window = dt.timedelta(days=days)
    promises = kept = pending = 0
    for contact in contacts:
        if contact.outcome not in PROMISE:
            continue
        promises += 1
        end = contact.at + window
        if any(contact.at <= p.paid_at <= end for p in payments.get(contact.account_id, ())):
            kept += 1
        elif horizon is None or end > horizon:
            pending += 1
    return Promises(promises, kept, pending)


# ------------------------------------------------------------ recovery


@dataclass(frozen=True)
class AccountOutcome:
    account_id: str
    stage: str
    next_action: str
    group: str
    balance: Decimal
    paid: Decimal

    @property
    def recovery(self) -> float:
        """Paid over balance, capped at 1 (a payment of fees beyond the balance recovers it all)."""
        return min(1.0, float(self.paid / self.balance))


def account_outcomes(decisions: Iterable[DecisionRow], balances: Mapping[str, Decimal],
                     payments: Mapping[str, Sequence[Payment]], since: dt.datetime) -> list[AccountOutcome]:
    """One row per decided account with a positive balance: its stage,
    next action and group, and what it paid at or after `since` (the
    instant decided at). Decisions with an error are left out."""
    out = []
    for row in decisions:
        balance = balances.get(row.account_id)
        if row.error or balance is None or balance <= 0:
            continue
        paid = sum((p.amount for p in payments.get(row.account_id, ()) if p.paid_at >= since), Decimal(0))
        out.append(AccountOutcome(row.account_id, row.stage or NO_STAGE, row.next_action or "none", row.group,
                                  balance, paid))
    return out


def recovery_by(outcomes: Sequence[AccountOutcome], key: Callable[[AccountOutcome], str],
                order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per value of `key`: accounts, balance, paid, the recovery rate (paid /
    balance, over the group's sums), the payer rate (accounts that paid
    anything, Wilson) and the mean account recovery (normal interval)."""
    groups: dict[str, list[AccountOutcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[key(outcome)].append(outcome)
    ranked = {name: place for place, name in enumerate(order)}
    rows = []
    for name in sorted(groups, key=lambda g: (ranked.get(g, len(ranked)), g)):
        members = groups[name]
        balance = sum((m.balance for m in members), Decimal(0))
        paid = sum((m.paid for m in members), Decimal(0))
        rows.append({"key": name, "accounts": len(members), "balance": str(balance), "paid": str(paid),
                     "recovery_rate": _round(float(paid / balance)) if balance else None,
                     "payer_rate": Rate(sum(m.paid > 0 for m in members), len(members)).to_dict(),
                     "mean_recovery": Mean.of([m.recovery for m in members], (0.0, 1.0)).to_dict()})
    return rows


# ------------------------------------------------------------ roll rates


def transitions(previous: Mapping[str, str | None], current: Mapping[str, str | None],
                order: Sequence[str]) -> dict[str, Any]:
    """The stage transition matrix between two snapshots (accounts in both,
    by id), each row's shares, and per previous stage the roll-forward rate
    (to a later stage), the stay rate and the roll-back rate (to an earlier
    one: a cure when it is the first), each with its Wilson interval.
    Accounts outside every stage are `(none)`, ranked last."""
    stages = [*order, NO_STAGE]
    rank = {stage: place for place, stage in enumerate(stages)}
    counts: Counter[tuple[str, str]] = Counter()
    for account_id, before in previous.items():
        if account_id in current:
            counts[(before or NO_STAGE, current[account_id] or NO_STAGE)] += 1
    used = [s for s in stages if any(s in pair for pair in counts)]
    matrix = []
    rolls = []
    for before in used:
        row = [counts[(before, after)] for after in used]
        total = sum(row)
        matrix.append({"from": before, "counts": row, "total": total,
                       "shares": [_round(c / total) if total else None for c in row]})
        if before == NO_STAGE:
            continue
        forward = sum(c for (b, a), c in counts.items() if b == before and a != NO_STAGE and rank[a] > rank[before])
        back = sum(c for (b, a), c in counts.items() if b == before and a != NO_STAGE and rank[a] < rank[before])
        stay = counts[(before, before)]
        rolls.append({"stage": before, "accounts": total, "roll_forward": Rate(forward, total).to_dict(),
                      "stay": Rate(stay, total).to_dict(), "roll_back": Rate(back, total).to_dict()})
    return {"stages": used, "matrix": matrix, "roll_rates": rolls,
            "accounts_in_both": sum(counts.values()),
            "only_previous": sum(1 for a in previous if a not in current),
            "only_current": sum(1 for a in current if a not in previous)}


# ------------------------------------------------------------ retro-compliance audit


@dataclass(frozen=True)
class Violation:
    contact: Contact
    line: int  # the contact's place among its account's history rows (1-based, file order)
    entries: tuple[tuple[str, str, str, str], ...]  # (rule_id, kind, reason, file:line) blocking the action

    def to_dict(self) -> dict[str, Any]:
        c = self.contact
        return {"account_id": c.account_id, "action": c.action, "at": format_exact_instant(c.at),
                "outcome": c.outcome, "rules": [{"rule_id": r, "kind": k, "reason": why, "rule": where}
                                                for r, k, why, where in self.entries]}


@dataclass
class Audit:
    contacts: int = 0  # history rows read
    audited: int = 0  # lender contacts decided at their instant
    events: int = 0  # events (inbound calls): not contacts the lender made
    unknown_actions: int = 0  # names that are neither an action nor an event of the policy
    no_account: int = 0  # contacts of accounts not in the accounts file
    errors: list[str] = field(default_factory=list)  # contacts whose account could not be evaluated
    violations: list[Violation] = field(default_factory=list)

    def to_dict(self, examples: int = 5) -> dict[str, Any]:
        by_rule: dict[str, dict[str, Any]] = {}
        chosen: dict[str, list[Violation]] = defaultdict(list)
        kinds: Counter[str] = Counter()
        actions: Counter[str] = Counter()
        for violation in self.violations:
            actions[violation.contact.action] += 1
            for kind in {k for _, k, _, _ in violation.entries}:
                kinds[kind] += 1
            for rule_id, kind, reason, where in violation.entries:
                entry = by_rule.setdefault(rule_id, {"rule_id": rule_id, "kind": kind, "rule": where,
                                                     "reason": reason, "contacts": 0, "examples": []})
                entry["contacts"] += 1
                chosen[rule_id].append(violation)
        for rule_id, entry in by_rule.items():
            entry["share"] = Rate(entry["contacts"], self.audited).to_dict()
            # examples from as many accounts as there are, then the first of the rest, in history order
            first: dict[str, Violation] = {}
            for violation in chosen[rule_id]:
                first.setdefault(violation.contact.account_id, violation)
            picked = list(first.values())[:examples]
            picked += [v for v in chosen[rule_id] if v not in picked][:examples - len(picked)]
            order = {id(v): place for place, v in enumerate(chosen[rule_id])}
            entry["examples"] = [v.to_dict() for v in sorted(picked, key=lambda v: order[id(v)])]
        return {"history_rows": self.contacts, "audited": self.audited, "events_skipped": self.events,
                "unknown_actions_skipped": self.unknown_actions, "no_account_skipped": self.no_account,
                "not_evaluated": len(self.errors), "errors": self.errors[:examples],
                "violations": len(self.violations),
                "violation_rate": Rate(len(self.violations), self.audited).to_dict(),
                "by_rule": sorted(by_rule.values(), key=lambda e: (-e["contacts"], e["rule_id"])),
                "by_kind": dict(sorted(kinds.items())), "by_action": dict(sorted(actions.items())),
                "all_violations": [v.to_dict() for v in self.violations]}


def shifted_back(values: Mapping[str, Any], field_name: str | None, as_of: dt.datetime,
                 at: dt.datetime) -> dict[str, Any]:
    """The account values as they probably were at `at`: `field_name` (days
    past due) decreased by the whole days from `at` to `as_of` while the
    account is past due today, never below 0 (the file cannot say how long
    before its due date it was); left alone when it is 0 or less today (a
    current account may have been in arrears and cured: unknown) or not an
    integer."""
    out = dict(values)
    if field_name is None or field_name not in values:
        return out
    raw = values[field_name]
    try:
        days = int(raw.strip()) if isinstance(raw, str) else int(raw)
    except (TypeError, ValueError):
        return out
    if days <= 0:
        return out
    elapsed = max(0, (as_of - at) // dt.timedelta(days=1))
    shifted = max(0, days - elapsed)
    out[field_name] = str(shifted) if isinstance(raw, str) else shifted
    return out


def audit(policy: Engine, accounts: Mapping[str, Mapping[str, Any]], history: Mapping[str, Sequence[Contact]],
          as_of: dt.datetime, shift_field: str | None = "days_past_due") -> Audit:
    """Each past contact of `history` (per account, in file order) judged by
    `policy` at its own instant, on the history strictly before it: a
    violation when its action is not allowed then, attributed to the
    `blocked` entries of that action. The account values are today's, with
    days past due shifted back (`shifted_back`)."""
    model = policy.model
    result = Audit()
    field_name = shift_field if shift_field in model.fields and model.fields[shift_field].type.kind == "int" else None
    for account_id, contacts in history.items():
        values = accounts.get(account_id)
        by_time = sorted(contacts, key=lambda c: c.at)  # the history before each contact is a prefix of it
        instants = [c.at for c in by_time]
        for place, contact in enumerate(contacts, 1):
            result.contacts += 1
            if model.is_event(contact.action):
                result.events += 1
                continue
            if not model.is_action(contact.action):
                result.unknown_actions += 1
                continue
            if values is None:
                result.no_account += 1
                continue
            earlier = by_time[:bisect.bisect_left(instants, contact.at)]
            decision = policy.evaluate(shifted_back(values, field_name, as_of, contact.at), earlier, now=contact.at)
            if decision.error:
                result.errors.append(f"{account_id} at {format_exact_instant(contact.at)}: {decision.error}")
                continue
            result.audited += 1
            if contact.action in decision.allowed:
                continue
            entries = tuple((b.rule.id, b.kind, b.reason, b.rule.location) for b in decision.reasons(contact.action))
            result.violations.append(Violation(contact, place, entries))
    return result


# ------------------------------------------------------------ the whole report


def build_report(policy: Engine, accounts: Mapping[str, Mapping[str, Any]], decisions: Sequence[DecisionRow],
                 history: Mapping[str, Sequence[Contact]], payments: Payments, as_of: dt.datetime,
                 previous: Mapping[str, str | None] | None = None, promise_days: int = 7,
                 shift_field: str | None = "days_past_due", inputs: Mapping[str, str | None] | None = None,
                 notes: Sequence[str] = ()) -> dict[str, Any]:
    """Every number of the report as one JSON-able dict (docs/report.md)."""
    model = policy.model
    order = [stage.name for stage in model.stages]
    all_contacts = [c for contacts in history.values() for c in contacts]
    lender = [c for c in all_contacts if not model.is_event(c.action)]
    portfolio = len(accounts)
    names = [*model.actions, *model.events]
    channels = channel_stats(all_contacts, model.is_event,
                             lambda action: names.index(action) if action in names else len(names))
    totals = ChannelStats("all lender contacts", False)
    for entry in channels:
        if entry.event:
            continue
        for name in ("contacts", "attempts", "right_party", "promises", "delivered", "undelivered"):
            setattr(totals, name, getattr(totals, name) + getattr(entry, name))
    totals.accounts = len({c.account_id for c in lender})
    horizon = payments.latest
    balances = {}
    for account_id, values in accounts.items():
        try:
            balances[account_id] = Decimal(str(values.get("balance", "")).strip().lstrip("¥$€£"))
        except InvalidOperation:
            continue
    outcomes = account_outcomes(decisions, balances, payments.by_account, as_of)
    current = {row.account_id: row.stage for row in decisions if not row.error}
    first = min((c.at for c in all_contacts), default=None)
    last = max((c.at for c in all_contacts), default=None)
    return {
        "policy": {"name": policy.name, "version": policy.version, "digest": policy.digest, "path": policy.path},
        "as_of": format_exact_instant(as_of),
        "inputs": dict(inputs or {}),
        "notes": list(notes),
        "portfolio": {"accounts": portfolio, "decisions": len(decisions),
                      "decision_errors": sum(1 for row in decisions if row.error),
                      "stages": dict(Counter(row.stage or NO_STAGE for row in decisions if not row.error)),
                      "groups": dict(Counter(row.group for row in decisions))},
        "contacts": {"history_rows": len(all_contacts), "lender_contacts": len(lender),
                     "first": format_exact_instant(first), "last": format_exact_instant(last),
                     "totals": totals.to_dict(portfolio),
                     "channels": [entry.to_dict(portfolio) for entry in channels]},
        "promises": {"window_days": promise_days, "payments_complete_to": format_exact_instant(horizon),
                     **promises_kept(all_contacts, payments.by_account, promise_days, horizon).to_dict()},
        "recovery": {"since": format_exact_instant(as_of), "accounts": len(outcomes),
                     "payment_rows": sum(len(p) for p in payments.by_account.values()),
                     "payment_problems": payments.problems[:20],
                     "overall": recovery_by(outcomes, lambda o: "all"),
                     "by_stage": recovery_by(outcomes, lambda o: o.stage, order),
                     "by_next_action": recovery_by(outcomes, lambda o: o.next_action, model.actions),
                     "by_group": recovery_by(outcomes, lambda o: o.group)},
        "transitions": transitions(previous, current, order) if previous is not None else None,
        "audit": {"days_past_due_shifted": shift_field if shift_field in model.fields else None,
                  **audit(policy, accounts, history, as_of, shift_field).to_dict()},
    }
