"""What the decision service reads off the wire: JSON bodies checked into
accounts, contacts and instants, and the problem documents it answers with.

Why a module of its own: the service must never decide on a request it could
not read. Every shape or type mistake becomes a `Problem` naming the field
(`history[2].action`), which the service turns into an RFC 9457
`application/problem+json` answer. Account *values* are checked by the
policy's own field readers (`Policy.read_account`), so that the service and
`policy run` agree on what a valid account is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .compiler import Policy
from .decision import Contact
from .errors import AccountError
from .inputs import normalise_id
from .io import Vocabulary
from .suggest import did_you_mean_aside

PROBLEM_TYPES = "https://policydsl.dev/problems/"


class Problem(Exception):
    """A request the service refuses: the HTTP status, a short title, what
    was wrong in words and, when one field is to blame, its path."""

    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field

    def document(self) -> dict[str, Any]:
        slug = self.title.lower().replace(" ", "-")
        body: dict[str, Any] = {"type": PROBLEM_TYPES + slug, "title": self.title, "status": self.status,
                                "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        return body


def invalid(field: str, detail: str) -> Problem:
    """422: the body is JSON of the right size but a field is wrong."""
    return Problem(422, "Invalid request", f"{field}: {detail}", field)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """The body as JSON, numbers with a fraction as exact Decimals (money is
    never a float), NaN and Infinity refused."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise Problem(400, "Malformed JSON", "the body is not UTF-8 text") from None
    except RecursionError:
        raise Problem(400, "Malformed JSON", "the body nests too deeply") from None
    except ValueError as error:
        raise Problem(400, "Malformed JSON", f"the body is not JSON: {error}") from None


def an_object(value: Any, field: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict[str, Any]:
    """`value` as a JSON object holding only `allowed` keys and every
    `required` one: an unknown key is refused (with the key meant), never
    ignored, since a misspelt `histroy` would otherwise decide on no history."""
    if not isinstance(value, dict):
        raise invalid(field or "body", f"expected a JSON object, not {_json_kind(value)}")
    for key in value:
        if key not in allowed:
            where = f"{field}.{key}" if field else key
            raise invalid(where, "unknown field" + did_you_mean_aside(key, allowed)
                          + f"; expected one of {', '.join(allowed)}")
    for key in required:
        if key not in value:
            raise invalid(f"{field}.{key}" if field else key, "required")
    return value


def a_list(value: Any, field: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(field, f"expected a JSON array, not {_json_kind(value)}")
    if len(value) > limit:
        raise invalid(field, f"at most {limit:,} items in one request, not {len(value):,}")
    return value


def a_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, f"expected non-empty text, not {_json_kind(value)}")
    return value


def an_instant(value: Any, field: str) -> dt.datetime:
    """An ISO-8601 instant with an offset; the service never guesses a zone."""
    text = a_text(value, field)
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise invalid(field, f"{text!r} is not ISO-8601, e.g. 2025-06-04T02:00:00Z") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise invalid(field, f"{text!r} has no offset; write Z or +08:00")
    try:
        return instant.astimezone(dt.UTC)
    except OverflowError:
        raise invalid(field, f"{text!r} is outside the years 1-9999 in UTC") from None


def an_account(value: Any, field: str, policy: Policy) -> dict[str, Any]:
    """An account the policy can read: keys that are fields (a key that is
    not is refused with the field meant), values its readers accept, an id.
    Raises the Problem for the first field that is wrong."""
    account = an_object(value, field, tuple(policy.field_names))
    if "id" in policy.field_names:
        account_id = account.get("id")
        if not isinstance(account_id, str) or not normalise_id(account_id):
            raise invalid(f"{field}.id", f"expected the account's id as non-empty text, not {_json_kind(account_id)}")
        account = {**account, "id": normalise_id(account_id)}
    try:
        policy.read_account(account)
    except AccountError as problem:
        given = "required" if problem.field not in account else _json_kind(problem.value)
        raise invalid(f"{field}.{problem.field}", f"{given}; expected {problem.expected}") from None
    return account


CONTACT_FIELDS = ("account_id", "action", "at", "outcome")


def a_contact(value: Any, field: str, vocabulary: Vocabulary, account_id: str | None) -> Contact:
    """One contact of an account's history. `account_id` may be left out
    for the request's own account; a contact of another account is refused
    (it would count against this account's caps)."""
    item = an_object(value, field, CONTACT_FIELDS, ("action", "at"))
    owner = item.get("account_id", account_id)
    if owner is None:
        raise invalid(f"{field}.account_id", "required")
    owner = normalise_id(a_text(owner, f"{field}.account_id"))
    if account_id is not None and owner != account_id:
        raise invalid(f"{field}.account_id", f"this contact belongs to account {owner!r}, not {account_id!r}")
    action = a_text(item["action"], f"{field}.action")
    outcome = item.get("outcome", "")
    if not isinstance(outcome, str):
        raise invalid(f"{field}.outcome", f"expected text, not {_json_kind(outcome)}")
    _known_names(vocabulary, action, outcome, field)
    return Contact(owner, action, an_instant(item["at"], f"{field}.at"), outcome)


def an_outcome(value: Any, field: str, vocabulary: Vocabulary) -> str:
    """The outcome of a reserved contact, judged as a history row's is."""
    if not isinstance(value, str):
        raise invalid(field, f"expected text, not {_json_kind(value)}")
    _known_names(vocabulary, vocabulary.actions[0], value, field, outcome_field=field)
    return value


def _known_names(vocabulary: Vocabulary, action: str, outcome: str, field: str, outcome_field: str = "") -> None:
    """Refuse an action the policy does not know, and an outcome it would
    refuse under `policy run --strict` (a spelling variant of a known one, or
    any other when the policy declares its outcomes): the service is always strict."""
    unknown = vocabulary.unknown(action, outcome)
    if unknown is None:
        return
    what, name, meant, refused = unknown
    if refused:
        known = vocabulary.actions if what == "action" else vocabulary.outcomes
        aside = f" (did you mean {meant!r}?)" if meant else f"; expected one of {', '.join(known)}"
        raise invalid(outcome_field if what == "outcome" and outcome_field else f"{field}.{what}",
                      f"{name!r} is not an {what} this policy knows{aside}")


def a_history(value: Any, field: str, vocabulary: Vocabulary, account_id: str | None,
              limit: int) -> list[Contact]:
    return [a_contact(item, f"{field}[{number}]", vocabulary, account_id)
            for number, item in enumerate(a_list(value, field, limit))]


def an_action(value: Any, field: str, policy: Policy) -> str:
    action = a_text(value, field)
    if action not in policy.actions:
        raise invalid(field, f"{action!r} is not an action of this policy"
                      + did_you_mean_aside(action, policy.actions) + f"; expected one of {', '.join(policy.actions)}")
    return action


def contact_document(contact: Contact) -> dict[str, Any]:
    """A contact as the service answers with it and the decision log keeps it."""
    return {"account_id": contact.account_id, "action": contact.action,
            "at": contact.at.isoformat().replace("+00:00", "Z"), "outcome": contact.outcome}


def merged(stored: list[Contact], sent: list[Contact]) -> list[Contact]:
    """The ledger's history with what the request sent added: a contact
    sent that the ledger already holds (same action, instant and outcome) is
    counted once, so a caller that echoes what it recorded does not
    double-count it."""
    held = {(contact.action, contact.at, contact.outcome) for contact in stored}
    return [*stored, *(contact for contact in sent if (contact.action, contact.at, contact.outcome) not in held)]


def _json_kind(value: Any) -> str:
    """What a JSON value is, in the words of the JSON spec, with the value
    when it is short (never the whole of a long text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        text = str(value) if not isinstance(value, int) or value.bit_length() < 64 else "a huge number"
        return f"the number {text}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}" + ("…" if len(value) > 40 else "")
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
