"""The service's request reader (policydsl/wire.py), without a server:
each rule of what a request may hold, and the property that no body, however
broken, raises anything but a `Problem`."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import Contact, compile_policy
from policydsl.io import Vocabulary
from policydsl.wire import (
    Problem,
    a_history,
    an_account,
    an_action,
    an_instant,
    an_object,
    an_outcome,
    merged,
    parse_json,
)

POLICY = compile_policy('''policy "wire" version "1"
account {
    id            : text
    days_past_due : int
    balance       : money = 0
    flags         : set<text> = {}
}
actions { call, sms }
events { inbound_call }
outcomes { conversation, not_connected }
stages on days_past_due { early .. 30  late 31 .. }
stage early { allow sms }
stage late { allow call, sms }
''')
VOCABULARY = Vocabulary.of(POLICY.model)


def _refused(call: Any, field: str, *words: str) -> Problem:
    with pytest.raises(Problem) as caught:
        call()
    problem = caught.value
    assert problem.field == field and problem.status == 422, problem.document()
    for word in words:
        assert word in problem.detail
    return problem


def test_money_is_read_exactly_and_nan_is_refused() -> None:
    assert parse_json(b'{"balance": 0.1}') == {"balance": Decimal("0.1")}
    for body in (b'{"balance": NaN}', b'{"balance": Infinity}', b"{", b"\xff\xfe", b"[" * 100_000):
        with pytest.raises(Problem) as caught:
            parse_json(body)
        assert caught.value.status == 400


def test_an_object_refuses_unknown_and_missing_keys() -> None:
    assert an_object({"account": {}}, "", ("account", "now"), ("account",)) == {"account": {}}
    _refused(lambda: an_object({"acount": {}}, "", ("account",)), "acount", "did you mean 'account'?")
    _refused(lambda: an_object({}, "", ("account",), ("account",)), "account", "required")
    _refused(lambda: an_object([], "body", ("account",)), "body", "JSON object", "an array")


def test_an_account_is_read_by_the_policys_own_field_readers() -> None:
    account = an_account({"id": " A1\u00a0", "days_past_due": 3, "balance": Decimal("12.50")}, "account", POLICY)
    assert account["id"] == "A1"  # the one id rule
    _refused(lambda: an_account({"id": "A1", "days_past_due": "3 days"}, "account", POLICY),
             "account.days_past_due", "whole number")
    _refused(lambda: an_account({"id": "A1"}, "account", POLICY), "account.days_past_due", "required")
    _refused(lambda: an_account({"id": "A1", "days_past_due": 1, "flag": []}, "account", POLICY),
             "account.flag", "did you mean 'flags'?")
    _refused(lambda: an_account({"id": 7, "days_past_due": 1}, "account", POLICY), "account.id", "the number 7")
    _refused(lambda: an_account({"id": "  ", "days_past_due": 1}, "account", POLICY), "account.id")


def test_instants_need_an_offset_and_are_kept_in_utc() -> None:
    assert an_instant("2025-06-04T10:00:00+08:00", "now") == dt.datetime(2025, 6, 4, 2, tzinfo=dt.UTC)
    _refused(lambda: an_instant("2025-06-04T10:00:00", "now"), "now", "no offset")
    _refused(lambda: an_instant("0001-01-01T00:00:00+05:00", "now"), "now", "years 1-9999")
    _refused(lambda: an_instant(20250604, "now"), "now", "text")


def test_a_history_is_the_accounts_own_and_names_what_the_policy_knows() -> None:
    history = a_history([{"action": "inbound_call", "at": "2025-06-01T00:00:00Z", "outcome": "conversation"}],
                        "history", VOCABULARY, "A1", 10)
    assert history == [Contact("A1", "inbound_call", dt.datetime(2025, 6, 1, tzinfo=dt.UTC), "conversation")]
    _refused(lambda: a_history([{"account_id": "A2", "action": "sms", "at": "2025-06-01T00:00:00Z"}], "history",
                               VOCABULARY, "A1", 10), "history[0].account_id", "'A2'")
    _refused(lambda: a_history([{"action": "sms", "at": "x"}, {"action": "email", "at": "2025-06-01T00:00:00Z"}],
                               "history", VOCABULARY, "A1", 10), "history[0].at")
    _refused(lambda: a_history([{"action": "emial", "at": "2025-06-01T00:00:00Z"}], "history", VOCABULARY, "A1",
                               10), "history[0].action", "call, sms, inbound_call")
    _refused(lambda: a_history([{"action": "sms", "at": "2025-06-01T00:00:00Z", "outcome": "voicemail"}],
                               "history", VOCABULARY, "A1", 10), "history[0].outcome", "conversation")
    _refused(lambda: a_history([{"action": "sms", "at": "2025-06-01T00:00:00Z"}] * 3, "history", VOCABULARY, "A1",
                               2), "history", "at most 2")
    _refused(lambda: a_history([{"action": "sms", "at": "2025-06-01T00:00:00Z"}], "contacts", VOCABULARY, None,
                               2), "contacts[0].account_id", "required")


def test_actions_and_outcomes_are_the_policys() -> None:
    assert an_action("call", "action", POLICY) == "call"
    _refused(lambda: an_action("inbound_call", "action", POLICY), "action", "not an action")  # an event: never decided
    assert an_outcome("not_connected", "outcome", VOCABULARY) == "not_connected"
    _refused(lambda: an_outcome("not_conected", "outcome", VOCABULARY), "outcome", "did you mean 'not_connected'?")


def test_a_contact_the_ledger_holds_counts_once() -> None:
    at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    stored = [Contact("A1", "call", at, "conversation")]
    sent = [Contact("A1", "call", at, "conversation"), Contact("A1", "call", at, "not_connected")]
    assert merged(stored, sent) == [*stored, sent[1]]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=4), max_leaves=20)
KEYS = st.sampled_from(["id", "days_past_due", "balance", "flags", "action", "at", "outcome", "account_id", "x"])
ACCOUNTISH = st.dictionaries(KEYS, JSON, max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | JSON.map(lambda value: json.dumps(value).encode()))
def test_no_body_raises_anything_but_a_problem(body: bytes) -> None:
    try:
        parse_json(body)
    except Problem as problem:
        assert problem.status == 400


@settings(max_examples=300, deadline=None)
@given(ACCOUNTISH, st.lists(ACCOUNTISH, max_size=3))
def test_no_account_or_history_raises_anything_but_a_problem(account: dict[str, Any],
                                                             history: list[dict[str, Any]]) -> None:
    for read in (lambda: an_account(account, "account", POLICY),
                 lambda: a_history(history, "history", VOCABULARY, "A1", 10)):
        try:
            read()
        except Problem as problem:
            assert problem.status == 422 and problem.field
