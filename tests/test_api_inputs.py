"""The API keeps its promise (issue 9 point 5, issue 11 item 15, issue 17
item 7): every bad input gives the project's own error type or an error
decision, the same in both engines, naming the input."""

from __future__ import annotations

import datetime as dt
import errno
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import (
    Contact,
    InputTypeError,
    InputValueError,
    PolicyError,
    PolicyNotFoundError,
    PolicySyntaxError,
    UnknownActionError,
    compile_policy,
    load_policy,
)
from policydsl.inputs import normalise_id
from policydsl.io import SPELLING_CUTOFF
from policydsl.suggest import closest

NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=dt.UTC)
SOURCE = """\
policy "api" version "1"
account {
    id      : text
    dpd     : int
    balance : money = 0
    label   : text = ""
}
actions { sms, call }
limit sms 1 per day
allow sms, call
"""
ACCOUNT = {"id": "A1", "dpd": 3}


@pytest.fixture(params=["compiled", "reference"])
def policy(request: pytest.FixtureRequest) -> Any:
    return compile_policy(SOURCE, engine=request.param)


def test_unknown_keys_are_refused_in_strict_mode_with_the_nearest_field(policy: Any) -> None:
    decision = policy.evaluate({**ACCOUNT, "balnce": "12"}, now=NOW, strict=True)
    assert decision.error is not None
    assert "'balnce' is not a field" in decision.error and "did you mean 'balance'" in decision.error
    assert decision.account_id == "A1" and decision.allowed == ()


def test_unknown_keys_are_still_accepted_without_strict(policy: Any) -> None:
    assert policy.evaluate({**ACCOUNT, "balnce": "12"}, now=NOW).error is None


def test_a_contact_of_another_account_gives_an_error_decision(policy: Any) -> None:
    decision = policy.evaluate(ACCOUNT, [Contact("A2", "sms", NOW - dt.timedelta(hours=1))], now=NOW)
    assert decision.error == "history item 1 belongs to account 'A2', not 'A1'"


def test_ids_follow_the_one_rule_in_the_api(policy: Any) -> None:
    """`"A1 "` and a contact filed under `" A1"` are the same account, so the
    second same-day SMS is blocked (issue 9 point 3)."""
    decision = policy.evaluate({**ACCOUNT, "id": "A1 "}, [Contact(" A1", "sms", NOW - dt.timedelta(hours=1))],
                               now=NOW)
    assert decision.error is None and decision.account_id == "A1"
    assert not decision.is_allowed("sms")


@pytest.mark.parametrize("now", ["2025-06-04T02:00:00Z", 1_749_000_000, None])
def test_now_of_the_wrong_kind_is_an_input_type_error(policy: Any, now: Any) -> None:
    with pytest.raises(InputTypeError, match="now must be a timezone-aware datetime, not") as caught:
        policy.evaluate(ACCOUNT, now=now)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, PolicyError)


def test_a_naive_now_is_an_input_value_error(policy: Any) -> None:
    with pytest.raises(InputValueError, match="has no offset") as caught:
        policy.evaluate(ACCOUNT, now=dt.datetime(2025, 6, 10, 12))
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("item", [("A1", "sms", NOW), {"account_id": "A1"}, None])
def test_history_items_that_are_not_contacts(policy: Any, item: Any) -> None:
    with pytest.raises(InputTypeError, match=f"history item 1 is a {type(item).__name__}, not a Contact"):
        policy.evaluate(ACCOUNT, [item], now=NOW)


@pytest.mark.parametrize("account", [None, "A1", ["id", "A1"]])
def test_an_account_that_is_not_a_mapping(policy: Any, account: Any) -> None:
    with pytest.raises(InputTypeError, match="account must be a mapping"):
        policy.evaluate(account, now=NOW)


def test_a_naive_contact_time_is_the_projects_value_error() -> None:
    with pytest.raises(InputValueError, match="has no offset") as caught:
        Contact("A1", "sms", dt.datetime(2025, 6, 10, 12))
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("at", ["2025-06-10T12:00:00Z", 1_749_000_000])
def test_a_contact_time_that_is_not_a_datetime(at: Any) -> None:
    with pytest.raises(InputTypeError, match="contact time must be a datetime"):
        Contact("A1", "sms", at)


def test_a_contact_time_near_the_calendar_limit_is_an_input_value_error() -> None:
    early = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    with pytest.raises(InputValueError, match="outside the years 1-9999"):
        Contact("A1", "sms", early)


def test_asking_about_an_undeclared_action_raises(policy: Any) -> None:
    decision = policy.evaluate(ACCOUNT, now=NOW)
    for ask in (decision.is_allowed, decision.until):
        with pytest.raises(UnknownActionError, match="'whatsapp' is not an action of this policy"):
            ask("whatsapp")
    assert decision.is_allowed("sms") and decision.until("call") is None


def test_error_decisions_know_the_actions_too(policy: Any) -> None:
    decision = policy.evaluate({"id": "A1", "dpd": "x"}, now=NOW)
    assert decision.error and decision.is_allowed("sms") is False
    with pytest.raises(UnknownActionError):
        decision.is_allowed("whatsapp")


def test_load_policy_on_a_missing_file_is_a_not_found_error(tmp_path: Any) -> None:
    with pytest.raises(PolicyNotFoundError) as caught:
        load_policy(tmp_path / "missing.policy")
    error = caught.value
    assert isinstance(error, FileNotFoundError) and isinstance(error, PolicySyntaxError)
    assert error.errno == errno.ENOENT
    assert "missing.policy:1:1: error[E002]: cannot read policy file: No such file or directory" in str(error)


@pytest.mark.parametrize("account", [
    {"id": "A1", "dpd": 10 ** 5000},
    {"id": "A1", "dpd": 3, "balance": 10 ** 5000},
    {"id": "A1", "dpd": 3, "label": 10 ** 5000},
    {"id": 10 ** 5000, "dpd": 3},
])
def test_a_huge_int_gives_an_error_decision(policy: Any, account: dict[str, Any]) -> None:
    decision = policy.evaluate(account, now=NOW)
    assert decision.error is not None and "about 5,000 digits" in decision.error


@settings(max_examples=60, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=4), max_size=3),
       account_id=st.text(alphabet=" \tA1\u00a0", min_size=1, max_size=5), strict=st.booleans())
def test_both_engines_accept_and_refuse_alike(extra: dict[str, str], account_id: str, strict: bool) -> None:
    """Refusals happen before either engine runs, so both answer the same."""
    account = {**extra, "id": account_id, "dpd": "3"}
    history = [Contact("A1", "sms", NOW - dt.timedelta(hours=2))]
    compiled = compile_policy(SOURCE).evaluate(account, history, now=NOW, strict=strict)
    reference = compile_policy(SOURCE, engine="reference").evaluate(account, history, now=NOW, strict=strict)
    assert compiled == reference


def test_normalise_id_strips_only_the_surroundings() -> None:
    assert normalise_id(" \ufeffA 2\u00a0\t") == "A 2"
    assert normalise_id("a2") == "a2"


def test_nearest_prefers_a_case_variant() -> None:
    assert closest("Agent_Call", ["agent_call", "agent_calls"], SPELLING_CUTOFF) == "agent_call"
    assert closest("balnce", ["balance", "dpd"], SPELLING_CUTOFF) == "balance"
    assert closest("zzz", ["balance"], SPELLING_CUTOFF) is None
