"""Two engines, one answer: the compiled engine (compiler.py, clock.py) and
the tree-walking reference interpreter (reference.py) must return identical
decisions for random well-typed policies, accounts, histories and instants,
and for the shipped policies on the shipped portfolio.

The default run draws a modest number of examples; `pytest -m slow` draws
thousands.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import DST_DAYS, PolicySpec, Scenario, clock_change_cases, policies, scenarios

from policydsl import Contact, Decision, Policy, ReferencePolicy, compile_policy, load_policy
from policydsl.checker import check
from policydsl.cli import main
from policydsl.io import read_accounts, read_history
from policydsl.loader import load_text

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.UTC


def _engines(text: str) -> tuple[Policy, ReferencePolicy]:
    model, diagnostics = check(load_text(text, "generated.policy"))
    errors = [f"{d.span.line}: {d.code} {d.message}" for d in diagnostics if d.severity == "error"]
    assert not errors, "the strategy drew a policy that does not check:\n" + "\n".join(errors) + "\n" + text
    return Policy(model), ReferencePolicy(model)


def _as_data(decision: Decision) -> dict[str, Any]:
    data = decision.to_dict()
    data["kinds"] = [entry.kind for entry in decision.blocked]
    return data


def assert_same(compiled: Policy, reference: ReferencePolicy, account: dict[str, Any], history: list[Contact],
                now: dt.datetime, context: str = "") -> None:
    fast = _as_data(compiled.evaluate(account, history, now=now))
    plain = _as_data(reference.evaluate(account, history, now=now))
    if fast != plain:
        lines = [context, f"account = {account!r}", f"now = {now.isoformat()}", "history ="]
        lines.extend(f"    {contact!r}" for contact in history)
        for key in fast:
            if fast[key] != plain[key]:
                lines.append(f"{key}:\n  compiled  {fast[key]!r}\n  reference {plain[key]!r}")
        pytest.fail("the engines disagree\n" + "\n".join(lines))


@st.composite
def cases(draw: st.DrawFn) -> tuple[PolicySpec, list[Scenario]]:
    spec = draw(policies())
    return spec, draw(st.lists(scenarios(spec), min_size=1, max_size=4))


def _check_case(case: tuple[PolicySpec, list[Scenario]]) -> None:
    spec, drawn = case
    compiled, reference = _engines(spec.text)
    for scenario in drawn:
        assert_same(compiled, reference, scenario.account, scenario.history, scenario.now, spec.text)


# A modest run by default (well under half a minute); thousands with `pytest -m slow`.
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW_PROPERTY = settings(PROPERTY, max_examples=3000)


@PROPERTY
@given(cases())
def test_engines_agree_on_random_policies(case: tuple[PolicySpec, list[Scenario]]) -> None:
    _check_case(case)


@pytest.mark.slow
@SLOW_PROPERTY
@given(cases())
def test_engines_agree_on_random_policies_many_examples(case: tuple[PolicySpec, list[Scenario]]) -> None:
    _check_case(case)


@PROPERTY
@given(clock_change_cases())
def test_engines_agree_around_clock_changes(case: tuple[str, Scenario]) -> None:
    text, scenario = case
    compiled, reference = _engines(text)
    assert_same(compiled, reference, scenario.account, scenario.history, scenario.now, text)


@pytest.mark.slow
@SLOW_PROPERTY
@given(clock_change_cases())
def test_engines_agree_around_clock_changes_many_examples(case: tuple[str, Scenario]) -> None:
    text, scenario = case
    compiled, reference = _engines(text)
    assert_same(compiled, reference, scenario.account, scenario.history, scenario.now, text)


# ------------------------------------------------------------ the shipped policies and portfolio


INSTANTS = [  # the default run takes the first three
    "2025-06-04T02:00:00Z",  # README's example: 10:00 in Shanghai
    "2025-06-04T13:00:00Z",  # 21:00 in Shanghai: the window's end
    "2025-11-02T05:30:00Z",  # New York's repeated hour
    "2025-06-03T16:00:00Z",  # midnight in Shanghai
    "2025-06-04T00:00:00Z",  # 08:00 in Shanghai
    "2025-06-04T12:59:59Z",
    "2025-03-09T07:00:00Z",  # New York springs forward
    "2025-10-01T03:00:00Z",  # China's National Day
    "2025-06-10T20:00:00+08:00",
]
SHIPPED = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "policies").glob("*.policy"))


@pytest.fixture(scope="module")
def portfolio() -> tuple[list[dict[str, str]], Any]:
    rows = [row.values for row in read_accounts(str(ROOT / "examples" / "accounts.csv"), set())
            if row.values is not None]
    return rows, read_history(str(ROOT / "examples" / "contacts.csv"))


def _check_portfolio(policy_file: str, portfolio: tuple[list[dict[str, str]], Any], instants: list[str]) -> None:
    compiled = load_policy(ROOT / policy_file)
    reference = load_policy(ROOT / policy_file, engine="reference")
    assert isinstance(reference, ReferencePolicy)
    rows, history = portfolio
    assert len(rows) >= 200
    for now_text in instants:
        now = dt.datetime.fromisoformat(now_text)
        for row in rows:
            assert_same(compiled, reference, row, history.for_account(row["id"]), now, f"{policy_file} at {now_text}")


@pytest.mark.parametrize("policy_file", SHIPPED)
def test_engines_agree_on_the_shipped_portfolio(policy_file: str, portfolio: tuple[list[dict[str, str]], Any]
                                                ) -> None:
    _check_portfolio(policy_file, portfolio, INSTANTS[:3])


@pytest.mark.slow
@pytest.mark.parametrize("policy_file", SHIPPED)
def test_engines_agree_on_the_shipped_portfolio_at_every_instant(
        policy_file: str, portfolio: tuple[list[dict[str, str]], Any]) -> None:
    _check_portfolio(policy_file, portfolio, INSTANTS)


def test_cli_run_engines_write_the_same_output(tmp_path: Path) -> None:
    outputs = []
    for engine in ("compiled", "reference"):
        out = tmp_path / f"{engine}.jsonl"
        result = CliRunner().invoke(main, [
            "run", str(ROOT / "policies" / "ecommerce_consumer_loan.policy"), str(ROOT / "examples" / "accounts.csv"),
            "--history", str(ROOT / "examples" / "contacts.csv"), "--now", "2025-06-04T02:00:00Z", "-q",
            "--engine", engine, "-o", str(out)])
        assert result.exit_code in (0, 1), result.output
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == 250
    assert any(json.loads(line)["blocked"] for line in outputs[0].splitlines())


def test_cli_rejects_an_unknown_engine() -> None:
    result = CliRunner().invoke(main, ["run", str(ROOT / "policies" / "us_reg_f.policy"),
                                       str(ROOT / "examples" / "accounts.csv"), "--engine", "fast"])
    assert result.exit_code == 2


# ------------------------------------------------------------ the API and hand-picked cases


def test_api_selects_the_engine() -> None:
    text = 'policy "p" version "1"\naccount { id : text }\nactions { sms }\nallow sms\n'
    assert isinstance(compile_policy(text), Policy)
    assert isinstance(compile_policy(text, engine="compiled"), Policy)
    assert isinstance(compile_policy(text, engine="reference"), ReferencePolicy)
    with pytest.raises(ValueError, match="unknown engine"):
        compile_policy(text, engine="fast")


def test_reference_needs_an_aware_now() -> None:
    text = 'policy "p" version "1"\naccount { id : text }\nactions { sms }\nallow sms\n'
    with pytest.raises(ValueError, match="timezone-aware"):
        compile_policy(text, engine="reference").evaluate({"id": "A"}, now=dt.datetime(2025, 1, 1))


def test_reference_decisions_explain_themselves() -> None:
    reference = load_policy(ROOT / "policies" / "ecommerce_consumer_loan.policy", engine="reference")
    compiled = load_policy(ROOT / "policies" / "ecommerce_consumer_loan.policy")
    account = {"id": "A1", "days_past_due": 45, "balance": "820.00", "risk_score": "0.8", "hardship": "true"}
    now = dt.datetime(2025, 6, 4, 2, 0, tzinfo=UTC)
    history = [Contact("A1", "agent_call", dt.datetime(2025, 6, 3, 9, 30, tzinfo=UTC), "refused")]
    assert reference.evaluate(account, history, now=now).explain() == compiled.evaluate(account, history,
                                                                                         now=now).explain()


def test_dst_days_in_the_strategies_are_clock_change_days() -> None:
    for zone_name, days in DST_DAYS.items():
        zone = ZoneInfo(zone_name)
        for day in days:
            start = dt.datetime.fromisoformat(day).replace(tzinfo=zone)
            end = (dt.datetime.fromisoformat(day) + dt.timedelta(days=1)).replace(tzinfo=zone)
            assert start.utcoffset() != end.utcoffset(), (zone_name, day)


def test_contact_times_given_in_a_zoneinfo_count_elapsed_hours() -> None:
    """A contact at 12:00 EST the day before New York springs forward leaves
    `per 24 hours` 24 elapsed hours later, at 13:00 EDT, not at 12:00 EDT
    (Python's arithmetic on a ZoneInfo datetime is wall-clock arithmetic)."""
    new_york = ZoneInfo("America/New_York")
    history = [Contact("A", "a", dt.datetime(2025, 3, 8, 12, 0, tzinfo=new_york), "x")]
    for now in (dt.datetime(2025, 3, 9, 12, 30, tzinfo=new_york), dt.datetime(2025, 3, 9, 16, 30, tzinfo=UTC)):
        for engine in ("compiled", "reference"):
            decision = compile_policy(ONE_ACTION + "limit a 1 per 24 hours", engine=engine).evaluate(
                {"id": "A"}, history, now=now)
            assert decision.to_dict()["blocked"][0]["until"] == "2025-03-09T17:00:00Z", (engine, now)


HAND_PICKED = """
policy "hand" version "1"
account { id : text  tz : zone = "America/New_York" }
actions { call, sms, ivr }
allow all
window call 01:00-01:30                     # the repeated hour on a fall-back day
window sms 02:15-02:45, 12:00-13:00         # a range inside the spring-forward gap
window ivr 00:00-01:30 on sat..mon          # reopened by the clock going back; a wrapping day span
limit call 1 per 24 hours
quiet sms for 2 days after "conversation" on call, sms
"""


@pytest.mark.parametrize(("now_text", "zones"), [
    ("2025-11-02T05:45:00Z", "America/New_York"),  # 01:45 EDT: call reopens at 01:00 EST (06:00Z)
    ("2025-11-02T05:30:00Z", "America/New_York"),
    ("2025-03-09T06:59:59Z", "America/New_York"),  # a second before the gap
    ("2025-03-09T07:00:00Z", "America/New_York"),
    ("2025-10-05T15:29:59Z", "Australia/Lord_Howe"),  # Lord Howe's half-hour jump forward
    ("2025-04-05T14:45:00Z", "Australia/Lord_Howe;Europe/London"),
    ("2025-10-26T00:30:00Z", "Europe/London;America/New_York"),
])
def test_engines_agree_at_clock_changes(now_text: str, zones: str) -> None:
    compiled, reference = _engines(HAND_PICKED)
    now = dt.datetime.fromisoformat(now_text.replace("Z", "+00:00"))
    history = [Contact("A", "call", now - dt.timedelta(hours=23, minutes=59, seconds=59), "conversation"),
               Contact("A", "sms", now.astimezone(ZoneInfo("America/New_York")) - dt.timedelta(hours=30), "x")]
    for shown in (now, now.astimezone(ZoneInfo("America/New_York"))):
        assert_same(compiled, reference, {"id": "A", "tz": zones}, history, shown)


ONE_ACTION = 'policy "p" version "1"\naccount { id : text  tz : zone = "America/New_York" }\nactions { a }\nallow a\n'


@pytest.mark.parametrize(("rule", "now", "history", "zones", "until"), [
    # New York falls back: 01:00-01:30 comes round again at 01:00 EST
    ("window a 01:00-01:30", "2025-11-02T05:45:00Z", [], None, "2025-11-02T06:00:00Z"),
    # ... and 01:15-01:45 at the second 01:15, not at the clock change (01:00 EST)
    ("window a 01:15-01:45", "2025-11-02T05:50:00Z", [], None, "2025-11-02T06:15:00Z"),
    # 01:30 EDT is outside 00:00-01:30; going back to 01:00 EST reopens it
    ("window a 00:00-01:30", "2025-11-02T05:30:00Z", [], None, "2025-11-02T06:00:00Z"),
    # New York springs forward: 02:15-02:45 does not happen that day
    ("window a 02:15-02:45, 12:00-13:00", "2025-03-09T06:59:59Z", [], None, "2025-03-09T16:00:00Z"),
    # Lord Howe springs forward half an hour, 02:00 -> 02:30, into the window
    ("window a 02:00-03:00", "2025-10-04T15:00:00Z", [], "Australia/Lord_Howe", "2025-10-04T15:30:00Z"),
    # 09:00-10:00 in New York and in Shanghai never meet
    ("window a 09:00-10:00", "2025-06-01T12:00:00Z", [], "America/New_York;Asia/Shanghai", None),
    # rolling 24 hours are elapsed hours, across the clock change
    ("limit a 1 per 24 hours", "2025-03-09T12:00:00Z", [("2025-03-08T12:00:01Z", "x")], None, "2025-03-09T12:00:01Z"),
    # (now - 24 hours, now]: an event exactly 24 hours ago no longer counts
    ("limit a 2 per 24 hours", "2025-03-09T12:00:00Z", [("2025-03-08T12:00:00Z", "x"), ("2025-03-09T11:00:00Z", "x")],
     None, "allowed"),
    # a quiet period is over at the instant it ends
    ('quiet a for 3 hours after "c" on a', "2025-03-09T12:00:00Z", [("2025-03-09T09:00:00Z", "c")], None, "allowed"),
    ('quiet a for 1 day after "c" on a', "2025-03-09T05:00:00Z", [("2025-03-08T00:00:00-05:00", "c")], None,
     "allowed"),
    # the event's local day is day 1: frees at local midnight of day 3
    ('quiet a for 2 days after "c" on a', "2025-03-09T12:00:00Z", [("2025-03-08T23:30:00-05:00", "c")], None,
     "2025-03-10T04:00:00Z"),
    # 3 calendar days, today included: the 7th leaves on the 10th
    ("limit a 2 per 3 days", "2025-03-09T12:00:00Z",
     [("2025-03-07T23:59:59-05:00", "x"), ("2025-03-09T00:00:00-05:00", "x")], None, "2025-03-10T04:00:00Z"),
])
def test_both_engines_give_the_specified_until(rule: str, now: str, history: list[tuple[str, str]],
                                               zones: str | None, until: str | None) -> None:
    contacts = [Contact("A", "a", dt.datetime.fromisoformat(at), outcome) for at, outcome in history]
    account = {"id": "A"} if zones is None else {"id": "A", "tz": zones}
    for engine in ("compiled", "reference"):
        decision = compile_policy(ONE_ACTION + rule, engine=engine).evaluate(
            account, contacts, now=dt.datetime.fromisoformat(now))
        if until == "allowed":
            assert decision.allowed == ("a",), engine
        else:
            assert decision.allowed == () and decision.to_dict()["blocked"][0]["until"] == until, engine
