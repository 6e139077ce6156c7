"""Champion/challenger test groups (issue 15): a stable hash of the id with
a salt, published vectors, ramps that only add accounts, both engines alike,
and the checker's and formatter's part."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import compile_policy
from policydsl.checker import check
from policydsl.experiments import BUCKETS, bucket, slot
from policydsl.formatter import format_source
from policydsl.loader import load_text

NOW = dt.datetime(2026, 1, 5, 3, tzinfo=dt.UTC)

# Published in docs/language.md (Experiments): anyone reimplementing the split must get these.
VECTORS = [
    ("dialer-2026q4", "A0001", 1229),
    ("dialer-2026q4", "A0002", 7537),
    ("dialer-2026q4", "A0003", 6537),
    ("dialer-2026q4", "账户-7", 1298),
    ("offers-v2", "A0001", 8480),
]


def policy_text(groups: str, salt: str = "dialer-2026q4") -> str:
    return (f'policy "exp" version "1"\naccount {{ id : text }}\nactions {{ sms, call }}\n'
            f'experiment dialer salt "{salt}" {{\n{groups}}}\nallow sms\nallow call when challenger\n')


def groups_of(source: str, ids: list[str], engine: str = "compiled") -> list[tuple[str, ...]]:
    policy = compile_policy(source, engine=engine)
    return [policy.evaluate({"id": account_id}, now=NOW).segments for account_id in ids]


@pytest.mark.parametrize(("salt", "account_id", "expected"), VECTORS)
def test_published_vectors(salt: str, account_id: str, expected: int) -> None:
    assert bucket(account_id, salt) == expected
    # the documented recipe, written out independently of the implementation
    digest = hashlib.sha256(salt.encode() + b"\x00" + account_id.encode()).digest()
    assert int.from_bytes(digest[:8], "big") % 10_000 == expected


def test_groups_in_decisions_and_rules() -> None:
    """A0001's bucket is 1229: champion at a challenger share of 10%,
    challenger at 12.5% (a ramp), and the rule on `challenger` follows."""
    at_ten = policy_text("    challenger 10%\n    champion rest\n")
    at_more = policy_text("    challenger 12.5%\n    champion rest\n")
    assert groups_of(at_ten, ["A0001", "A0002"]) == [("champion",), ("champion",)]
    assert groups_of(at_more, ["A0001"]) == [("challenger",)]
    decision = compile_policy(at_more).evaluate({"id": " A0001 "}, now=NOW)  # the id as normalised
    assert decision.allowed == ("sms", "call") and decision.segments == ("challenger",)
    assert decision.to_dict()["segments"] == ["challenger"]


def test_slots_keep_two_sharing_groups_apart() -> None:
    """Two groups with a share own half the buckets each: [0, 5000) and
    [5000, 10000); A0002 (7537) is in neither at 5%, in `pilot` at 30%."""
    assert slot(0, 2) == (0, 5000) and slot(1, 2) == (5000, 10000)
    source = policy_text("    challenger 10%\n    pilot 5%\n    champion rest\n")
    assert groups_of(source, ["A0001", "A0002", "A0003"]) == [("champion",)] * 3
    grown = policy_text("    challenger 10%\n    pilot 30%\n    champion rest\n")
    assert groups_of(grown, ["A0001", "A0002", "A0003"]) == [("champion",), ("pilot",), ("pilot",)]


def test_shares_are_met_on_many_accounts() -> None:
    counts: dict[tuple[str, ...], int] = {}
    for groups in groups_of(policy_text("    challenger 20%\n    champion rest\n"), [f"X{i}" for i in range(20_000)]):
        counts[groups] = counts.get(groups, 0) + 1
    assert abs(counts[("challenger",)] / 20_000 - 0.20) < 0.015
    assert sum(counts.values()) == 20_000 and set(counts) == {("challenger",), ("champion",)}


_shares = st.lists(st.integers(1, 3333), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(before=_shares, growth=st.lists(st.integers(0, 3333), min_size=3, max_size=3),
       ids=st.lists(st.text(min_size=1, max_size=8).filter(lambda text: text.strip() == text and text), max_size=40))
def test_a_ramp_only_adds_accounts_to_the_group_that_grows(before: list[int], growth: list[int],
                                                           ids: list[str]) -> None:
    """Property: raising any shares (within their slots) never moves an
    account out of a sharing group; only `rest` loses accounts."""
    limit = BUCKETS // len(before)
    after = [min(share + extra, limit) for share, extra in zip(before, growth, strict=False)]

    def text(shares: list[int]) -> str:
        lines = "".join(f"    g{index} {Decimal(share) / 100}%\n" for index, share in enumerate(shares))
        return policy_text(lines + "    champion rest\n").replace("when challenger", "when g0")

    old, new = groups_of(text(before), ids), groups_of(text(after), ids)
    for was, now in zip(old, new, strict=True):
        if was != ("champion",):
            assert now == was


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=30), share=st.integers(1, 9999))
def test_both_engines_put_an_account_in_the_same_group(ids: list[str], share: int) -> None:
    source = policy_text(f"    challenger {Decimal(share) / 100}%\n    champion rest\n")
    compiled = compile_policy(source)
    reference = compile_policy(source, engine="reference")
    for account_id in ids:
        assert compiled.evaluate({"id": account_id}, now=NOW) == reference.evaluate({"id": account_id}, now=NOW)


def test_the_salt_reshuffles() -> None:
    ids = [f"A{i:04d}" for i in range(200)]
    first = groups_of(policy_text("    challenger 50%\n    champion rest\n", "one"), ids)
    second = groups_of(policy_text("    challenger 50%\n    champion rest\n", "two"), ids)
    assert first != second


def test_bucket_is_a_library_function_too() -> None:
    source = ('policy "b" version "1"\naccount { id : text }\nactions { sms }\n'
              'segment pilot when bucket(id, "pilot-1") < 500\nallow sms when pilot\n')
    policy = compile_policy(source)
    pilot = [i for i in range(300) if policy.evaluate({"id": f"P{i}"}, now=NOW).segments == ("pilot",)]
    assert pilot == [i for i in range(300) if bucket(f"P{i}", "pilot-1") < 500]


@pytest.mark.parametrize(("groups", "words"), [
    ("    a 60%\n    b 10%\n    c rest\n", "60% is more than the 50% each of 2 groups with a share may take"),
    ("    a 0%\n    c rest\n", "a share is more than 0% and at most two decimals"),
    ("    a 1.005%\n    c rest\n", "a share is more than 0% and at most two decimals"),
    ("    a 10%\n    b rest\n    c rest\n", "has two `rest` groups ('b' and 'c')"),
])
def test_shares_that_do_not_fit_are_e119(groups: str, words: str) -> None:
    _, found = check(load_text(policy_text(groups), "p.policy"))
    assert any(d.code == "E119" and words in d.message for d in found), [d.message for d in found]


def test_names_that_clash_are_e106() -> None:
    clash = policy_text("    challenger 10%\n    challenger rest\n")
    _, found = check(load_text(clash, "p.policy"))
    assert any(d.code == "E106" and "appears twice" in d.message for d in found)
    segment = policy_text("    challenger 10%\n    champion rest\n") + "segment champion when true\n"
    _, found = check(load_text(segment, "p.policy"))
    assert any(d.code == "E106" and "'champion' is already declared" in d.message for d in found)


def test_an_unused_group_is_no_w301_and_fmt_keeps_the_block() -> None:
    source = policy_text("  challenger   12.5%   # ramping\n champion rest\n")
    _, found = check(load_text(source, "p.policy"))
    assert not [d for d in found if d.code == "W301"]
    formatted = format_source(source)
    assert 'experiment dialer salt "dialer-2026q4" {\n    challenger 12.5%  # ramping\n    champion   rest\n}' \
        in formatted
    assert format_source(formatted) == formatted


def test_the_salt_and_shares_are_in_the_digest() -> None:
    base = compile_policy(policy_text("    challenger 10%\n    champion rest\n")).provenance.digest
    assert compile_policy(policy_text("    challenger 10%\n    champion rest\n", "other")).provenance.digest != base
    assert compile_policy(policy_text("    challenger 11%\n    champion rest\n")).provenance.digest != base
