"""Change impact: what a policy change does to a portfolio (`policy diff`).

Both policies decide every account of the same rows, on the same contacts
and at the same instant; `compare_decisions` says what differs between the
two decisions of one account (`AccountChange`), and `DiffSummary` counts the
changes over the whole portfolio while keeping at most `limit` of them as
examples. `diff_portfolio` streams: each row's history is asked for once, in
row order (so the in-order join of `policydsl.history` works), and used for
both policies, and nothing but the counts and the kept examples outlives the
row.

What counts as a change: the stage, the allowed actions (their set or their
priority order, hence the next action), the `until` of any action, or an
error on one side only or a different error on each side. Segments and the
reasons an action stays blocked are not changes by themselves. An action one
policy does not declare is, on that side, not allowed; an error decision
allows nothing. No CLI code here: `cli.py` renders what this module counts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .batch import Engine, decide_row
from .decision import Decision, Evidence, format_instant
from .io import AccountRow, ContactLookup

NEWLY_ALLOWED, NEWLY_BLOCKED, UNTIL = "newly_allowed", "newly_blocked", "until"
ERROR_STAGE = "(error)"
NO_STAGE = "(no stage)"


@dataclass(frozen=True, slots=True)
class ActionChange:
    """One action whose verdict or `until` differs between the two policies:
    allowed on each side, the rule ids that decided it on each side (the
    allowing rule of an allowed action, the rules of the entries of a
    blocked one) and its `until` on each side."""

    action: str
    old_allowed: bool
    new_allowed: bool
    old_rules: tuple[str, ...]
    new_rules: tuple[str, ...]
    old_until: dt.datetime | None = None
    new_until: dt.datetime | None = None
    old_declared: bool = True
    new_declared: bool = True

    @property
    def kind(self) -> str:
        """newly_allowed, newly_blocked, or until (blocked on both sides, lifted at another instant)."""
        if self.new_allowed and not self.old_allowed:
            return NEWLY_ALLOWED
        if self.old_allowed and not self.new_allowed:
            return NEWLY_BLOCKED
        return UNTIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "change": self.kind,
            "allowed": {"old": self.old_allowed, "new": self.new_allowed},
            "rules": {"old": list(self.old_rules), "new": list(self.new_rules)},
            "until": {"old": format_instant(self.old_until), "new": format_instant(self.new_until)},
            "declared": {"old": self.old_declared, "new": self.new_declared},
        }


@dataclass(frozen=True, slots=True)
class AccountChange:
    """How one account's decision differs between OLD and NEW."""

    account_id: str | None
    old: Decision
    new: Decision
    actions: tuple[ActionChange, ...]
    row: int = 0  # the row's number in the accounts file (0: not known)
    old_stage_rule: str | None = None  # the rule id of the stage range that placed the account, on each side
    new_stage_rule: str | None = None

    @property
    def old_stage(self) -> str:
        return stage_label(self.old)

    @property
    def new_stage(self) -> str:
        return stage_label(self.new)

    @property
    def stage_changed(self) -> bool:
        return self.old_stage != self.new_stage

    @property
    def newly_allowed(self) -> tuple[ActionChange, ...]:
        return tuple(change for change in self.actions if change.kind == NEWLY_ALLOWED)

    @property
    def newly_blocked(self) -> tuple[ActionChange, ...]:
        return tuple(change for change in self.actions if change.kind == NEWLY_BLOCKED)

    def stage_rules(self) -> tuple[str | None, str | None]:
        """The rule ids of the stage ranges that placed the account on each side."""
        return self.old_stage_rule, self.new_stage_rule

    def slim(self) -> AccountChange:
        """This change as an example is kept: its decisions without their
        blocked entries and evidence, which the action changes summarise
        (a kept example then costs about a kilobyte, not tens)."""
        return replace(self, old=replace(self.old, blocked=(), evidence=Evidence()),
                       new=replace(self.new, blocked=(), evidence=Evidence()))

    def to_dict(self) -> dict[str, Any]:
        old_rule, new_rule = self.stage_rules()
        return {
            "account_id": self.account_id,
            "row": self.row,
            "stage": {"old": self.old.stage, "new": self.new.stage},
            "stage_rule": {"old": old_rule, "new": new_rule},
            "next_action": {"old": self.old.next_action, "new": self.new.next_action},
            "allowed": {"old": list(self.old.allowed), "new": list(self.new.allowed)},
            "error": {"old": self.old.error, "new": self.new.error},
            "actions": [change.to_dict() for change in self.actions],
        }


def stage_label(decision: Decision) -> str:
    if decision.error is not None:
        return ERROR_STAGE
    return decision.stage or NO_STAGE


def _stage_rule(decision: Decision) -> str | None:
    rule = decision.evidence.stage_rule
    return rule.id if rule is not None else None


def _declared(decision: Decision, fallback: Iterable[str]) -> tuple[str, ...]:
    if decision.actions is not None:
        return decision.actions
    return tuple(dict.fromkeys([*decision.allowed, *(entry.action for entry in decision.blocked), *fallback]))


def _side(decision: Decision, action: str) -> tuple[bool, tuple[str, ...], dt.datetime | None]:
    """Allowed, the deciding rule ids and `until` of `action` in `decision`."""
    if action in decision.allowed:
        rule = decision.evidence.allowed_by.get(action)
        return True, ((rule.id,) if rule is not None else ()), None
    entries = decision.reasons(action)
    rules = tuple(dict.fromkeys(entry.rule.id for entry in entries))
    return False, rules, entries[0].until if entries else None


def _untils(decision: Decision) -> dict[str, dt.datetime | None]:
    """Each blocked action's `until` (the same on all its entries)."""
    return {entry.action: entry.until for entry in decision.blocked}


def compare_decisions(old: Decision, new: Decision, row: int = 0) -> AccountChange | None:
    """What differs between one account's two decisions, or None when nothing
    does (see the module's docstring for what counts)."""
    if (old.error == new.error and old.allowed == new.allowed and old.stage == new.stage
            and _untils(old) == _untils(new)):
        return None  # the usual account of a portfolio: settled without comparing action by action
    old_actions = _declared(old, new.allowed if old.error else ())
    new_actions = _declared(new, old.allowed if new.error else ())
    old_known, new_known = set(old_actions), set(new_actions)
    changes = []
    for action in dict.fromkeys([*old_actions, *new_actions]):
        old_allowed, old_rules, old_until = _side(old, action)
        new_allowed, new_rules, new_until = _side(new, action)
        if old_allowed == new_allowed and (old_until == new_until or old.error or new.error):
            continue  # (an error decision allows nothing and lifts nothing: no `until` to compare)
        changes.append(ActionChange(action, old_allowed, new_allowed, old_rules, new_rules, old_until, new_until,
                                    action in old_known, action in new_known))
    if (not changes and old.error == new.error and old.allowed == new.allowed
            and (old.error is not None or old.stage == new.stage)):
        return None
    return AccountChange(new.account_id if new.account_id is not None else old.account_id, old, new,
                         tuple(changes), row, _stage_rule(old), _stage_rule(new))


@dataclass
class DiffSummary:
    """Counts over the whole portfolio and at most `limit` kept changes.
    Memory grows only with the distinct stages, actions and rules counted
    (and the kept examples), never with the number of accounts."""

    limit: int = 1000
    accounts: int = 0
    changed: int = 0
    stage_changed: int = 0
    errors_old: int = 0
    errors_new: int = 0
    error_changed: int = 0  # accounts whose error differs (on one side only, or another error)
    accounts_newly_allowed: int = 0  # accounts with at least one action newly allowed
    accounts_newly_blocked: int = 0
    by_stage: Counter[tuple[str, str]] = field(default_factory=Counter)  # changed accounts by (old, new) stage
    newly_allowed: Counter[str] = field(default_factory=Counter)  # accounts, by action
    newly_blocked: Counter[str] = field(default_factory=Counter)
    until_changed: Counter[str] = field(default_factory=Counter)
    rules_old: Counter[str] = field(default_factory=Counter)  # changed accounts, by responsible rule id
    rules_new: Counter[str] = field(default_factory=Counter)
    locations: dict[tuple[str, str], str] = field(default_factory=dict)  # (side, rule id) -> file:line
    actions_only_old: tuple[str, ...] = ()
    actions_only_new: tuple[str, ...] = ()
    examples: list[AccountChange] = field(default_factory=list)

    @property
    def left_out(self) -> int:
        """Changed accounts counted but not kept as examples."""
        return self.changed - len(self.examples)

    @property
    def loosened(self) -> bool:
        return self.accounts_newly_allowed > 0

    def declare(self, old_actions: Iterable[str], new_actions: Iterable[str]) -> None:
        """The actions each policy declares: those on one side only are reported."""
        old, new = tuple(old_actions), tuple(new_actions)
        self.actions_only_old = tuple(action for action in old if action not in new)
        self.actions_only_new = tuple(action for action in new if action not in old)

    def add(self, old: Decision, new: Decision, change: AccountChange | None) -> None:
        """Count one account: its two decisions and what `compare_decisions` found."""
        self.accounts += 1
        self.errors_old += old.error is not None
        self.errors_new += new.error is not None
        if change is None:
            return
        self.changed += 1
        self.stage_changed += change.stage_changed
        self.error_changed += old.error != new.error
        self.by_stage[change.old_stage, change.new_stage] += 1
        kinds = {NEWLY_ALLOWED: self.newly_allowed, NEWLY_BLOCKED: self.newly_blocked, UNTIL: self.until_changed}
        found = set()
        rules: dict[str, set[str]] = {"old": set(), "new": set()}
        for action in change.actions:
            kinds[action.kind][action.action] += 1
            found.add(action.kind)
            rules["old"].update(action.old_rules)
            rules["new"].update(action.new_rules)
        self.accounts_newly_allowed += NEWLY_ALLOWED in found
        self.accounts_newly_blocked += NEWLY_BLOCKED in found
        if change.stage_changed:
            for side, rule_id in zip(("old", "new"), change.stage_rules(), strict=True):
                if rule_id is not None:
                    rules[side].add(rule_id)
        for side, decision, counter in (("old", old, self.rules_old), ("new", new, self.rules_new)):
            counter.update(rules[side])
            for rule_id in rules[side]:
                if (side, rule_id) not in self.locations:
                    self.locations[side, rule_id] = _location(decision, rule_id)
        if len(self.examples) < self.limit:
            self.examples.append(change.slim())

    def to_dict(self) -> dict[str, Any]:
        actions = dict.fromkeys([*self.newly_allowed, *self.newly_blocked, *self.until_changed])
        return {
            "accounts": self.accounts,
            "changed": self.changed,
            "unchanged": self.accounts - self.changed,
            "stage_changed": self.stage_changed,
            "errors": {"old": self.errors_old, "new": self.errors_new, "changed": self.error_changed},
            "accounts_newly_allowed": self.accounts_newly_allowed,
            "accounts_newly_blocked": self.accounts_newly_blocked,
            "newly_allowed": sum(self.newly_allowed.values()),
            "newly_blocked": sum(self.newly_blocked.values()),
            "by_stage": [{"old": old, "new": new, "accounts": count}
                         for (old, new), count in self.by_stage.most_common()],
            "by_action": [{"action": action, "newly_allowed": self.newly_allowed[action],
                           "newly_blocked": self.newly_blocked[action], "until_changed": self.until_changed[action]}
                          for action in sorted(actions, key=self._action_order)],
            "rules": [{"side": side, "rule_id": rule_id, "rule": self.locations.get((side, rule_id), ""),
                       "accounts": count} for side, rule_id, count in self.rules()],
            "actions_only_in_old": list(self.actions_only_old),
            "actions_only_in_new": list(self.actions_only_new),
        }

    def rules(self) -> list[tuple[str, str, int]]:
        """(side, rule id, changed accounts) for every responsible rule, most accounts first."""
        found = [("old", rule_id, count) for rule_id, count in self.rules_old.items()]
        found += [("new", rule_id, count) for rule_id, count in self.rules_new.items()]
        return sorted(found, key=lambda item: (-item[2], item[0] != "old", item[1]))

    def _action_order(self, action: str) -> tuple[int, str]:
        return -(self.newly_allowed[action] + self.newly_blocked[action] + self.until_changed[action]), action


def _location(decision: Decision, rule_id: str) -> str:
    """The `file:line` of a rule the decision cites by id ("" if it cites none)."""
    evidence = decision.evidence
    if evidence.stage_rule is not None and evidence.stage_rule.id == rule_id:
        return evidence.stage_rule.location
    for rule in evidence.allowed_by.values():
        if rule.id == rule_id:
            return rule.location
    for entry in decision.blocked:
        if entry.rule.id == rule_id:
            return entry.rule.location
    return ""


def diff_portfolio(old_policy: Engine, new_policy: Engine, rows: Iterable[AccountRow], history: ContactLookup,
                   now: dt.datetime, summary: DiffSummary | None = None) -> Iterator[AccountChange]:
    """Every changed account of `rows`, in row order, with `summary` (when
    given) counting every account. Each row's contacts are asked of `history`
    once, in row order, and decide under both policies."""
    if summary is not None:
        summary.declare(old_policy.actions, new_policy.actions)
    for row in rows:
        account_id = row.account_id
        contacts = history.for_account(account_id)
        broken = history.broken.get(account_id or "")
        old = decide_row(old_policy, row, contacts, broken, now)
        new = decide_row(new_policy, row, contacts, broken, now)
        change = compare_decisions(old, new, row.number)
        if summary is not None:
            summary.add(old, new, change)
        if change is not None:
            yield change
