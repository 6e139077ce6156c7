"""What evaluation produces: a `Decision` and the types it is made of.

`Decision` is the answer for one account; `Blocked` says why one action is
not allowed and until when; `RuleInfo` is how a decision cites a rule;
`Contact` is one event of the history it was decided on; `Evidence` and
`HistoryFact` are what explanations read. `to_dict` and the two instant
formats below are their JSON forms (docs/decision.schema.json).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InputTypeError, InputValueError, UnknownActionError


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
        if self.at.tzinfo is dt.UTC:  # as the file readers give it
            return
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise InputValueError(f"contact time {self.at.isoformat()} has no offset")
        # Kept in UTC: the same instant, and arithmetic on it is elapsed time
        # (Python adds wall-clock time to datetimes that share a ZoneInfo).
        try:
            object.__setattr__(self, "at", self.at.astimezone(dt.UTC))
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
    return second_allowed(instant).strftime("%Y-%m-%dT%H:%M:%SZ")


def second_allowed(instant: dt.datetime) -> dt.datetime:
    """`instant` in UTC rounded up to the second: how decisions show an
    `until` (text, or a timestamp column), at which the action is allowed."""
    instant = instant.astimezone(dt.UTC)
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + dt.timedelta(seconds=1)
    return instant


def format_exact_instant(instant: dt.datetime | None) -> str | None:
    """UTC with `Z`, to the microsecond when there is a fraction: the
    instant exactly, so that a decision can be reproduced with `--now`."""
    if instant is None:
        return None
    text = instant.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    return text + "Z"
