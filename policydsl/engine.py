"""What both evaluation engines share: the `Engine` base class.

The compiled `Policy` (compiler.py) and the `ReferencePolicy`
(reference.py) decide each in their own way; the checks of their inputs,
the error decisions and the provenance they stamp on every decision are
done once, here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import localcontext
from typing import Any

from . import nodes as n
from .decision import Contact, Decision, Provenance
from .errors import AccountError
from .functions import ARITHMETIC, arithmetic_problem
from .inputs import accept, check_now, refuse, shown_id
from .model import Model


def _shown_value(value: Any) -> str:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def _plain_operand(side: n.Expr, values: Mapping[str, Any], now: dt.datetime) -> Any:
    """The value of a field, `now` or a literal; None for anything else."""
    if isinstance(side, n.Ref):
        return values.get(side.name)
    if isinstance(side, n.NowRef):
        return now
    return side.value if isinstance(side, n.Literal) else None


class Engine:
    """What every evaluation engine says about the policy it runs (the
    compiled `Policy` and the `ReferencePolicy` share it)."""

    def __init__(self, model: Model) -> None:
        header = model.policy.header
        self.name = header.name
        self.version = header.version
        self.path = model.policy.path
        self.model = model
        self.actions: tuple[str, ...] = tuple(model.actions)
        self.stage_field = model.stage_field
        self.zone_field = model.zone_field
        self.field_names: tuple[str, ...] = tuple(model.fields)
        self.digest = model.digest()
        self.provenance = Provenance(self.name, self.version, self.digest)

    def evaluate(self, account: Mapping[str, Any], history: Iterable[Contact] = (), *,
                 now: dt.datetime, strict: bool = False) -> Decision:
        """Decide what may be done for `account` at `now`.

        `history` is this account's contact history; events after `now` are
        ignored. Bad account data gives a Decision with `error` set, never an
        exception: so does a contact of another account, and (`strict=True`)
        a key that is no field of the policy. Arguments of the wrong kind (a
        `now` that is no aware datetime, a history item that is no Contact)
        raise InputTypeError / InputValueError, both PolicyErrors."""
        now = check_now(now)
        account, contacts = accept(account, history)
        values: dict[str, Any] = {}
        try:
            refuse(account, contacts, self.field_names, strict)
            values = self.read_account(account)
            with localcontext(ARITHMETIC):  # `+ - *`, negation and abs exact or trapped, whatever the caller's context
                return self.decide(values, contacts, now)
        except AccountError as problem:
            return self.error_decision(account.get("id"), str(problem), now=now)
        except (ArithmeticError, OverflowError) as problem:
            where = self.calendar_overflow(values, now) if isinstance(problem, OverflowError) else None
            return self.error_decision(account.get("id"), f"cannot evaluate{where or ''}: "
                                       f"{arithmetic_problem(problem)}", now=now)

    def calendar_overflow(self, values: Mapping[str, Any], now: dt.datetime) -> str | None:
        """` `last_pay + 30 days` (p.policy:7:22; last_pay = ...)` for the first
        instant arithmetic of the policy, in source order, that leaves the
        calendar for these values: found here, once, for both engines, so the
        message names the same expression whichever engine ran into it first.
        Only `field`, `now` and literals as operands are tried; else None."""
        conditions = [*(segment.condition for segment in self.model.segments),
                      *(allow.condition for allow in self.model.allows),
                      *(getattr(rule, "condition", None) for rule in self.model.restrictions),
                      *(test for rule in self.model.restrictions for test in rule.applies)]
        arithmetic = sorted((node for condition in conditions if condition is not None for node in n.walk(condition)
                             if isinstance(node, n.Arithmetic) and node.op in "+-"), key=lambda node: node.span)
        for node in arithmetic:
            operands = [_plain_operand(side, values, now) for side in (node.left, node.right)]
            if None in operands or not any(isinstance(value, dt.timedelta) for value in operands):
                continue
            try:
                operands[0] + operands[1] if node.op == "+" else operands[0] - operands[1]
            except OverflowError:
                read = "; ".join(f"{side.name} = {_shown_value(values[side.name])}"
                                 for side in (node.left, node.right) if isinstance(side, n.Ref))
                return f" `{self.model.source_text(node.span)}` ({node.span.location}{'; ' + read if read else ''})"
        return None

    def error_decision(self, account_id: Any, message: str, *, now: dt.datetime) -> Decision:
        """The decision for an account that cannot be evaluated: no action
        allowed, its id (when it has one), why, and the same provenance as any
        other decision."""
        return Decision(shown_id(account_id), None, (), (), (), message, actions=self.actions,
                        now=now.astimezone(dt.UTC), policy=self.provenance)

    def read_account(self, account: Mapping[str, Any]) -> dict[str, Any]:
        """Typed values of an account, defaults filled in (each engine reads them its own way)."""
        raise NotImplementedError

    def decide(self, values: dict[str, Any], history: list[Contact], now: dt.datetime) -> Decision:
        """The decision for typed account values (each engine decides its own way)."""
        raise NotImplementedError
