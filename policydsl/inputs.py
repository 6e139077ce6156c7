"""What the evaluator accepts: one rule for account ids, one check of the
keys and arguments a caller passes, used by both engines, the CLI and the
file readers alike.

Why one module: an id normalised in the accounts file but not in the history
(or in the CLI but not the API) silently gives an account an empty history,
so the rule lives here and everything that compares ids calls `normalise_id`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .decision import Contact
from .errors import InputTypeError, InputValueError, RefusedInputError, shown_value
from .suggest import did_you_mean_aside

# Characters that never belong to an id: surrounding whitespace (including
# the no-break space a spreadsheet may add) and a byte-order mark that a
# concatenated export left in the middle of a file.
_ID_STRIP = " \t\r\n\v\f\u00a0\ufeff"


def normalise_id(value: str) -> str:
    """The one id rule: surrounding whitespace (and stray byte-order marks)
    removed, nothing else changed (case and inner spaces are significant)."""
    return value.strip(_ID_STRIP)


def id_text(value: Any) -> Any:
    """An id as a typed source (Parquet, Spark, JSON) holds it, as text:
    normalised, an int as its digits (an int64 id column is common in a data
    lake), None for a null; a value of any other kind is returned as it is,
    for the id field's reader to refuse, naming the field."""
    if value is None or isinstance(value, str):
        return None if value is None else normalise_id(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def shown_id(value: Any) -> str | None:
    """An account's id as a decision reports it, even when it is no valid
    id (None when missing or empty; a huge int is not turned into text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return normalise_id(value) or None
    try:
        return str(value) or None
    except ValueError:  # an int of over 4,300 digits
        return None


def check_now(now: Any) -> dt.datetime:
    """`now` as the engines need it, or the project's error naming what was
    given: the evaluator never parses a string or guesses a zone."""
    if not isinstance(now, dt.datetime):
        raise InputTypeError(f"now must be a timezone-aware datetime, not {type(now).__name__} "
                             f"{_shorten(shown_value(now))}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise InputValueError(f"now must be timezone-aware; {now.isoformat()} has no offset "
                              "and the evaluator never guesses a zone")
    return now


def accept(account: Any, history: Iterable[Any]) -> tuple[Mapping[str, Any], list[Contact]]:
    """The account with its id normalised, and its history as a list of
    Contacts; InputTypeError (a programming error, raised) for arguments of
    the wrong kind."""
    if not isinstance(account, Mapping):
        raise InputTypeError(f"account must be a mapping of field names to values, not {type(account).__name__}")
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Iterable):
        raise InputTypeError(f"history must be an iterable of Contact, not {type(history).__name__}")
    raw_id = account.get("id")
    if isinstance(raw_id, str) and normalise_id(raw_id) != raw_id:
        account = {**account, "id": normalise_id(raw_id)}
    contacts = list(history)
    for number, contact in enumerate(contacts, 1):
        if not isinstance(contact, Contact):
            raise InputTypeError(f"history item {number} is a {type(contact).__name__}, not a Contact")
    return account, contacts


def refuse(account: Mapping[str, Any], contacts: list[Contact], fields: Sequence[str], strict: bool) -> None:
    """RefusedInputError (an AccountError: the engines turn it into an error
    decision) for a contact of another account or, when `strict`, for a key
    that is no field of the policy."""
    if strict:
        _refuse_unknown_keys(account, fields)
    _refuse_foreign_contacts(account.get("id"), contacts)


def _refuse_unknown_keys(account: Mapping[str, Any], fields: Sequence[str]) -> None:
    known = set(fields)
    for key in account:
        if key not in known:
            name = key if isinstance(key, str) else shown_value(key)
            raise RefusedInputError(name, account[key], f"{name!r} is not a field of this policy"
                                    + did_you_mean_aside(name, fields) + " (strict: unknown keys are refused)")


def _refuse_foreign_contacts(account_id: Any, contacts: list[Contact]) -> None:
    """A contact filed under another account would count against this one's
    caps and quiet periods; the history must be this account's alone."""
    if not isinstance(account_id, str):
        return  # the id itself is reported by the field check
    for number, contact in enumerate(contacts, 1):
        if contact.account_id != account_id and normalise_id(contact.account_id) != account_id:
            raise RefusedInputError("id", account_id, f"history item {number} belongs to account "
                                    f"{_shorten(repr(contact.account_id))}, not {account_id!r}")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
