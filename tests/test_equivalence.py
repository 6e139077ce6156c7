"""`equivalence.compare`: exact over the finite part of two policies, sampled
beyond it, every counterexample replayed through both engines."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import PolicySpec, policies

from policydsl import Contact, Policy, ReferencePolicy, load_policy
from policydsl.checker import check
from policydsl.equivalence import (
    Counterexample,
    Verdict,
    _action_rules,
    _counter,
    _Reads,
    candidates,
    compare,
    minimal_histories,
    representative_dates,
    stage_candidates,
    time_points,
)
from policydsl.formatter import format_source
from policydsl.loader import load_text
from policydsl.model import Model

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.UTC
SHANGHAI = "Asia/Shanghai"

SMALL = """\
policy "small" version "1"

account {
    id       : text
    dpd      : int
    timezone : zone = "Asia/Shanghai"
    flags    : set<text> = {}
}

actions { agent_call, sms }

stages on dpd {
    early .. 30
    late 31 ..
}

allow agent_call, sms
forbid all when "deceased" in flags
window agent_call 09:00-20:00
limit sms 3 per 7 days
"""


def _policy(text: str, path: str = "p.policy") -> Policy:
    model, diagnostics = check(load_text(text, path))
    assert not [d for d in diagnostics if d.severity == "error"], diagnostics
    return Policy(model)


def _model(text: str) -> Model:
    return _policy(text).model


def assert_reproduces(example: Counterexample, old: Model, new: Model) -> None:
    """The counterexample decides as it says through BOTH engines of both policies."""
    for model, expected in ((old, example.old), (new, example.new)):
        for engine in (Policy(model), ReferencePolicy(model)):
            decision = engine.evaluate(example.account, example.history, now=example.now)
            assert decision.allowed == expected.allowed
            assert decision.stage == expected.stage and decision.segments == expected.segments
            if example.action is not None:
                assert (example.action in decision.allowed) == (example.action in expected.allowed)
    if example.action is not None:
        assert (example.action in example.old.allowed) != (example.action in example.new.allowed)


def assert_all_reproduce(verdict: Verdict, old: Policy, new: Policy) -> None:
    for example in verdict.counterexamples:
        assert_reproduces(example, old.model, new.model)


# ------------------------------------------------------------ acceptance


def _copy_shipped(tmp_path: Path) -> Path:
    for name in ("ecommerce_consumer_loan.policy", "cn_collection_baseline.policy"):
        shutil.copy(ROOT / "policies" / name, tmp_path / name)
    return tmp_path / "ecommerce_consumer_loan.policy"


def test_a_policy_and_its_formatted_text_with_other_comments_are_equivalent(tmp_path: Path) -> None:
    original = _copy_shipped(tmp_path)
    formatted = tmp_path / "formatted"
    formatted.mkdir()
    for name in ("ecommerce_consumer_loan.policy", "cn_collection_baseline.policy"):
        text = format_source((tmp_path / name).read_text(), name)
        changed = text.replace("# ", "# (reworded) ")
        assert changed != text
        (formatted / name).write_text(changed)
    old, new = load_policy(original), load_policy(formatted / "ecommerce_consumer_loan.policy")
    verdict = compare(old, new, samples=300)
    assert verdict.outcome == "equivalent", [e.description for e in verdict.counterexamples]
    assert verdict.counterexamples == []
    assert verdict.cases > 1000
    # the baseline's `debtor_lost` reads the history: said, and sampled
    assert any("streak(voice" in line and "history aggregate" in line for line in verdict.outside)
    assert verdict.exact is False and verdict.sampled == 300


def test_a_one_minute_window_change_loosens_with_a_counterexample_at_the_old_edge(tmp_path: Path) -> None:
    original = _copy_shipped(tmp_path)
    text = original.read_text() + "\nwindow agent_call 09:00-20:00\n"
    (tmp_path / "old.policy").write_text(text)
    (tmp_path / "new.policy").write_text(text.replace("09:00-20:00", "09:00-20:01"))
    old, new = load_policy(tmp_path / "old.policy"), load_policy(tmp_path / "new.policy")
    verdict = compare(old, new, samples=200)
    assert verdict.outcome == "loosens"
    example = next(e for e in verdict.counterexamples if e.action == "agent_call")
    local = example.now.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert (local.hour, local.minute) == (20, 0)
    assert "agent_call" not in example.old.allowed and "agent_call" in example.new.allowed
    assert example.description.startswith("agent_call: blocked by OLD (window-")
    assert_all_reproduce(verdict, old, new)
    reverse = compare(new, old, samples=200)
    assert reverse.outcome == "stricter"
    assert_all_reproduce(reverse, new, old)


def test_a_window_change_on_a_small_policy_is_decided_exactly() -> None:
    old, new = _policy(SMALL), _policy(SMALL.replace("09:00-20:00", "09:00-20:01"))
    verdict = compare(old, new)
    assert (verdict.outcome, verdict.exact, verdict.outside, verdict.sampled) == ("loosens", True, [], 0)
    [example] = verdict.counterexamples
    assert example.action == "agent_call"
    assert example.history == [] and example.account["flags"] == frozenset()
    assert_all_reproduce(verdict, old, new)


@pytest.mark.parametrize("period", ["7 days", "day", "24 hours"])
def test_a_cap_raised_from_3_to_4_loosens_and_lowered_is_stricter(period: str) -> None:
    text = SMALL.replace("3 per 7 days", f"3 per {period}")
    old, new = _policy(text), _policy(text.replace(f"3 per {period}", f"4 per {period}"))
    verdict = compare(old, new)
    assert (verdict.outcome, verdict.exact) == ("loosens", True)
    example = next(e for e in verdict.counterexamples if e.action == "sms")
    assert len(example.history) == 3  # minimal: exactly the old cap
    assert example.description.startswith("sms: blocked by OLD (limit-")
    assert_all_reproduce(verdict, old, new)
    reverse = compare(new, old)
    assert (reverse.outcome, reverse.exact) == ("stricter", True)
    assert any(e.action == "sms" and len(e.history) == 3 for e in reverse.counterexamples)
    assert_all_reproduce(reverse, new, old)


def test_a_cap_raised_on_the_shipped_policy_loosens(tmp_path: Path) -> None:
    original = _copy_shipped(tmp_path)
    text = original.read_text()
    assert "limit human_call 3 per day" in text
    (tmp_path / "new.policy").write_text(text.replace("limit human_call 3 per day", "limit human_call 4 per day"))
    old, new = load_policy(original), load_policy(tmp_path / "new.policy")
    verdict = compare(old, new, samples=100)
    # the baseline caps connected voice calls at 3 a day: only unanswered calls get through to the 4th
    assert verdict.outcome == "loosens"
    example = next(e for e in verdict.counterexamples if e.action in ("agent_call", "senior_agent_call"))
    assert len(example.history) == 3
    assert all(c.outcome not in ("connected", "conversation", "not_connected") for c in example.history)
    assert_all_reproduce(verdict, old, new)


def test_identical_policies_are_equivalent_and_exact() -> None:
    verdict = compare(_policy(SMALL), _policy(SMALL))
    assert (verdict.outcome, verdict.exact, verdict.counterexamples, verdict.sampled) == ("equivalent", True, [], 0)


def test_a_forbid_dropped_loosens_for_the_flag_it_tested() -> None:
    old = _policy(SMALL)
    new = _policy(SMALL.replace('forbid all when "deceased" in flags\n', ""))
    verdict = compare(old, new)
    assert verdict.outcome == "loosens" and verdict.exact
    assert {e.action for e in verdict.counterexamples} == {"agent_call", "sms"}
    for example in verdict.counterexamples:
        assert example.account["flags"] == frozenset({"deceased"})
    assert_all_reproduce(verdict, old, new)


def test_stricter_somewhere_and_looser_elsewhere_differs() -> None:
    old = _policy(SMALL)
    new = _policy(SMALL.replace("09:00-20:00", "09:01-20:01"))
    verdict = compare(old, new)
    assert verdict.outcome == "differs"
    assert {(e.action, "agent_call" in e.new.allowed) for e in verdict.counterexamples if e.action} == {
        ("agent_call", True), ("agent_call", False)}
    # where both block (08:59) they block until different instants: a consequence, not reported again
    assert all(e.action is not None for e in verdict.counterexamples)
    assert_all_reproduce(verdict, old, new)


def test_only_the_stage_differing_is_differs_with_no_action() -> None:
    old = _policy(SMALL)
    new = _policy(SMALL.replace("early .. 30\n    late 31 ..", "early .. 40\n    late 41 .."))
    verdict = compare(old, new)
    assert verdict.outcome == "differs"
    [example] = verdict.counterexamples
    assert example.action is None and example.description.startswith("stage: OLD late, NEW early")
    assert 31 <= example.account["dpd"] <= 40
    assert_all_reproduce(verdict, old, new)


def test_a_segment_no_rule_reads_is_still_compared() -> None:
    text = SMALL.replace("allow agent_call, sms", "segment rich when dpd > 100\nallow agent_call, sms")
    old, new = _policy(text), _policy(text.replace("dpd > 100", "dpd > 101"))
    verdict = compare(old, new)
    assert (verdict.outcome, verdict.exact) == ("differs", True)
    [example] = verdict.counterexamples
    assert example.action is None and example.account["dpd"] == 101
    assert example.description == "segments: OLD rich, NEW (none)"
    assert_all_reproduce(verdict, old, new)


def test_the_stage_field_is_split_at_the_constants_conditions_compare_it_with_too() -> None:
    text = SMALL.replace("allow agent_call, sms", "allow agent_call\nallow sms when dpd > 45")
    old, new = _policy(text), _policy(text.replace("dpd > 45", "dpd > 46"))
    verdict = compare(old, new)
    assert (verdict.outcome, verdict.exact) == ("stricter", True)
    [example] = verdict.counterexamples
    assert (example.action, example.account["dpd"]) == ("sms", 46)
    assert_all_reproduce(verdict, old, new)


# ------------------------------------------------------------ candidates


FIELDS = """\
policy "fields" version "1"

account {
    id     : text
    dpd    : int
    score  : number = 0.5
    amount : money = 0
    vip    : bool = false
    tier   : enum(gold, silver, bronze) = silver
    state  : text = "NY"
    flags  : set<text> = {}
}

actions { call }

allow call when dpd >= 10 and score < 0.75 and amount > ¥100 and not vip and tier == "gold"
forbid call when state in {"MA", "CA"} or "deceased" in flags or "vip" in flags or dpd == 3
"""


def _infos(text: str) -> _Reads:
    return _Reads([_model(text)])


def test_integer_candidates_split_each_constant_and_keep_one_per_distinct_outcome() -> None:
    values = candidates(_infos(FIELDS).fields["dpd"])
    # dpd >= 10 and dpd == 3: below 3 (and 4 .. 9, which look alike: zero stands for them), 3, 10 and above
    assert values == [0, 3, 10]
    assert candidates(_infos(FIELDS.replace("dpd == 3", "dpd == 30")).fields["dpd"]) == [0, 10, 30]  # 31 is like 10
    assert candidates(_infos(FIELDS.replace("dpd >= 10", "dpd >= -10")).fields["dpd"]) == [0, 3, -11]


def test_decimal_candidates_step_below_the_precision_of_the_constants() -> None:
    reads = _infos(FIELDS)
    assert reads.fields["score"].default == Decimal("0.5")
    assert candidates(reads.fields["score"]) == [Decimal("0.5"), Decimal("0.75")]
    assert candidates(reads.fields["amount"]) == [Decimal(0), Decimal("100.1")]
    text = FIELDS.replace("score < 0.75", "score <= 0.75")
    assert candidates(_infos(text).fields["score"]) == [Decimal("0.5"), Decimal("0.751")]


def test_enum_bool_text_and_set_candidates() -> None:
    reads = _infos(FIELDS)
    assert candidates(reads.fields["tier"]) == ["silver", "gold"]  # silver and bronze look alike
    assert candidates(reads.fields["vip"]) == [False, True]
    assert candidates(reads.fields["state"]) == ["NY", "MA"]  # NY stands for every other text
    sets = candidates(reads.fields["flags"])
    assert sets == [frozenset(), frozenset({"deceased"}), frozenset({"vip"}), frozenset({"deceased", "vip"})]


def test_stage_candidates_give_one_value_per_pair_of_stages() -> None:
    old, new = _model(SMALL), _model(SMALL.replace("early .. 30\n    late 31 ..", "early .. 40\n    late 41 .."))
    name, values = stage_candidates([old, new])
    assert name == "dpd"
    assert len(values) == 3  # early/early, late/early, late/late
    assert values[0] == 0


def test_time_points_are_window_edges_and_the_minute_before() -> None:
    model = _model(SMALL)
    rules = _action_rules([model], "agent_call", _Reads([model]))
    assert time_points(rules.windows, rules.counters) == sorted(
        {0, 12 * 3600, 9 * 3600, 9 * 3600 - 60, 20 * 3600, 20 * 3600 - 60})


def test_representative_dates_cover_weekdays_and_holidays_when_windows_read_them() -> None:
    from zoneinfo import ZoneInfo

    from policydsl.calendars import is_holiday

    text = SMALL.replace("window agent_call 09:00-20:00",
                         'window agent_call 09:00-20:00 on mon..fri except holidays "CN"')
    model = _model(text)
    rules = _action_rules([model], "agent_call", _Reads([model]))
    days = representative_dates(rules.windows, ["CN"], ZoneInfo(SHANGHAI))
    assert {day.weekday() for day in days} == set(range(7))
    assert any(is_holiday("CN", day) for day in days) and any(not is_holiday("CN", day) for day in days)
    assert len(representative_dates(_action_rules([_model(SMALL)], "agent_call", _Reads([_model(SMALL)])).windows,
                                    [], ZoneInfo(SHANGHAI))) == 1


def test_minimal_histories_reach_each_cap_exactly() -> None:
    from zoneinfo import ZoneInfo

    old, new = _model(SMALL), _model(SMALL.replace("3 per 7 days", "4 per 7 days"))
    counters = [_counter(side, model, rule) for side, model in enumerate((old, new))
                for rule in model.restrictions if rule.__class__.__name__ == "Limit"]
    now = dt.datetime(2026, 1, 7, 4, tzinfo=UTC)
    histories, cut_off = minimal_histories(counters, ["agent_call", "sms"], [], now, ZoneInfo(SHANGHAI), "A1")
    assert not cut_off
    assert [] in histories
    sizes = sorted(len(h) for h in histories)
    assert 3 in sizes and 4 in sizes
    assert all(c.action == "sms" and c.at <= now for h in histories for c in h)


# ------------------------------------------------------------ pruning


def test_each_action_reads_only_the_fields_of_its_own_rules() -> None:
    text = FIELDS.replace("actions { call }", "actions { call, letter }") + "allow letter when vip\n"
    model = _model(text)
    reads = _Reads([model])
    letter = _action_rules([model], "letter", reads)
    assert letter.g_fields == {"vip"}
    call = _action_rules([model], "call", reads)
    assert call.g_fields == {"dpd", "score", "amount", "vip", "tier", "state", "flags"}
    # the pools of a field are built from the atoms of the action's own conditions
    text = SMALL.replace("actions { agent_call, sms }", "actions { agent_call, sms, letter }") \
        + 'forbid letter when "x" in flags or "y" in flags\nallow letter\n'
    model = _model(text)
    reads = _Reads([model])
    sms = _action_rules([model], "sms", reads)
    assert len(candidates(reads.fields["flags"], sms.g_owners)) == 2
    assert len(candidates(reads.fields["flags"])) == 8


def test_restriction_conditions_are_a_context_not_a_field_product() -> None:
    text = SMALL.replace("    flags    : set<text> = {}", '    flags    : set<text> = {}\n    state    : text = "NY"') \
        + 'limit sms 1 per day when state == "MA"\n'
    model = _model(text)
    rules = _action_rules([model], "sms", _Reads([model]))
    assert rules.wh_fields == {"state"} and "state" not in rules.g_fields
    old, new = _policy(text), _policy(text.replace('state == "MA"', 'state == "CA"'))
    verdict = compare(old, new)
    assert verdict.outcome == "differs" and verdict.exact
    assert {e.account["state"] for e in verdict.counterexamples if e.action == "sms"} == {"MA", "CA"}
    assert_all_reproduce(verdict, old, new)


# ------------------------------------------------------------ outside the exact fragment


ARITHMETIC = """\
policy "arith" version "1"

account {
    id      : text
    balance : money = 0
    limit_  : money = 100
}

actions { sms }

allow sms
forbid sms when balance * 2 > ¥100
"""


def test_arithmetic_on_fields_is_outside_the_exact_fragment_and_sampled() -> None:
    old = _policy(ARITHMETIC, "arith.policy")
    verdict = compare(old, old, samples=150)
    assert verdict.outcome == "equivalent"
    assert verdict.exact is False and verdict.sampled == 150
    assert verdict.outside == ["arith.policy:12: balance * 2 > ¥100 (arithmetic on fields)"]


def test_sampling_finds_a_difference_the_enumeration_cannot_see() -> None:
    old = _policy(ARITHMETIC)
    new = _policy(ARITHMETIC.replace("balance * 2 > ¥100", "balance * 2 > ¥150"))
    verdict = compare(old, new, samples=2000, seed=1)
    assert verdict.outcome == "loosens" and not verdict.exact
    [example] = verdict.counterexamples
    assert Decimal(50) < example.account["balance"] <= Decimal(75)
    assert_all_reproduce(verdict, old, new)


def test_fields_compared_with_fields_and_functions_are_named_with_why() -> None:
    text = ARITHMETIC.replace("balance * 2 > ¥100", "balance > limit_ or abs(balance) > ¥3")
    verdict = compare(_policy(text, "f.policy"), _policy(text, "f.policy"), samples=20)
    assert verdict.outside == ["f.policy:12: balance > limit_ (compares fields with each other)",
                               "f.policy:12: abs(balance) > ¥3 (function abs() is not split exactly)"]


def test_history_aggregates_in_conditions_are_outside_and_sampled() -> None:
    text = SMALL + "forbid sms when count(sms in 2 days) >= 2\n"
    verdict = compare(_policy(text, "h.policy"), _policy(text, "h.policy"), samples=50)
    assert verdict.outcome == "equivalent" and not verdict.exact
    assert verdict.outside == ["h.policy:21: count(sms in 2 days) >= 2 (a history aggregate in a condition)"]


@pytest.mark.parametrize(("aggregate", "changed"), [
    ('streak(agent_call where outcome in {"no_answer"}) >= 3', ">= 2"),
    ("count(sms in 2 days) >= 2", ">= 3"),
    ("days_since_last(agent_call) >= 2", ">= 3"),
    ("hours_since_last(agent_call) < 4", "< 5"),
])
def test_a_changed_threshold_of_a_history_aggregate_is_found_at_the_threshold(aggregate: str, changed: str) -> None:
    text = SMALL + f"forbid sms when {aggregate}\n"
    old_text = aggregate.rsplit(" ", 2)[0]
    old, new = _policy(text), _policy(text.replace(aggregate, f"{old_text} {changed}"))
    verdict = compare(old, new, samples=0)
    assert not verdict.exact and verdict.outcome in ("stricter", "loosens")
    assert any(e.action == "sms" for e in verdict.counterexamples)
    assert_all_reproduce(verdict, old, new)


def test_a_history_of_another_instant_is_still_a_contact_of_the_account() -> None:
    old, new = _policy(SMALL), _policy(SMALL.replace("3 per 7 days", "4 per 7 days"))
    for example in compare(old, new).counterexamples:
        assert all(isinstance(c, Contact) and c.account_id == example.account["id"] for c in example.history)
        assert example.now.tzinfo is not None


# ------------------------------------------------------------ property


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policies())
def test_a_random_policy_is_equivalent_to_itself(spec: PolicySpec) -> None:
    from policydsl import equivalence

    policy = _policy(spec.text, "generated.policy")
    budget = equivalence.CASE_BUDGET
    equivalence.CASE_BUDGET = 3000  # some random windows never open together: each `until` then searches long
    try:
        verdict = compare(policy, policy, samples=30)
    finally:
        equivalence.CASE_BUDGET = budget
    assert verdict.outcome == "equivalent", [e.description for e in verdict.counterexamples]
    assert verdict.counterexamples == []
    assert verdict.exact == (verdict.outside == [])


def test_an_enumeration_over_its_budget_says_so_and_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    from policydsl import equivalence

    monkeypatch.setattr(equivalence, "CASE_BUDGET", 5)
    old, new = _policy(SMALL), _policy(SMALL.replace("09:00-20:00", "09:00-20:01"))
    verdict = compare(old, new, samples=400)
    assert not verdict.exact and verdict.cases == 5 and verdict.sampled == 400
    assert verdict.outside == ["the enumeration stopped at its budget of 5 cases (the rest sampled)"]
    assert_all_reproduce(verdict, old, new)
