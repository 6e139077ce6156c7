"""Conditional restrictions (`when` on window, limit and quiet; `include ...
when`) and day-specific window hours (`window sms { mon..fri 08:00-21:00 ... }`):
syntax and its errors, checking, both engines, lints, formatter, highlighter.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import PolicySpec, Scenario, conditions, policies, scenarios
from test_differential import assert_same
from test_highlight import _expected_class, _lark, _tm_scopes

from policydsl import Contact, Decision, Policy, ReferencePolicy
from policydsl.checker import check
from policydsl.cli import main
from policydsl.clock import WindowSpec
from policydsl.errors import Diagnostic, PolicyError
from policydsl.formatter import format_source
from policydsl.highlight import PolicyLexer
from policydsl.loader import load_text
from policydsl.parser import parse

UTC = dt.UTC
HEAD = '''policy "t" version "1"
account {
    id       : text
    timezone : zone = "America/New_York"
    state    : text = ""
    dpd      : int = 0
}
actions { call, sms, email }
'''


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def checked(text: str, directory: Path | None = None, name: str = "t.policy") -> tuple[Any, list[Diagnostic]]:
    path = str((directory or Path(tempfile.gettempdir())) / name)
    return check(load_text(text, path))


def engines(text: str, directory: Path | None = None) -> tuple[Policy, ReferencePolicy]:
    model, diagnostics = checked(text, directory)
    errors = [str(d) for d in diagnostics if d.severity == "error"]
    assert not errors, errors
    return Policy(model), ReferencePolicy(model)


def decide(text: str, account: dict[str, Any], history: list[Contact], now: dt.datetime,
           directory: Path | None = None) -> Decision:
    """The compiled decision, after checking that the reference agrees."""
    compiled, reference = engines(text, directory)
    fast = compiled.evaluate(account, history, now=now)
    assert fast.to_dict() == reference.evaluate(account, history, now=now).to_dict()
    return fast


def codes(text: str, directory: Path | None = None, name: str = "t.policy") -> list[str]:
    return [d.code for d in checked(text, directory, name)[1]]


def syntax_error(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse(text, "t.policy")
    return str(caught.value)


# ---------------------------------------------------------------- syntax


def test_restrictions_take_a_when_before_their_reason() -> None:
    policy = parse(HEAD + '''
window sms 08:00-21:00 on mon..fri except holidays "US" when state == "MA" because "b" cite "c"
limit call 2 per 7 days of call, sms where outcome not in {"not_connected"} when state == "MA" because "b"
quiet call for 1 day after "refused" on call when dpd > 30
''', "t.policy")
    window, limit, quiet = policy.rules
    for rule in (window, limit, quiet):
        assert len(rule.applies) == 1
    assert window.reason.cite == "c" and limit.reason.because == "b"
    assert window.holidays is not None


def test_a_window_table_gives_each_day_its_hours() -> None:
    policy = parse(HEAD + '''
window sms {
    mon..fri 08:00-21:00
    sat      09:00-12:00, 13:00-17:00
    sun      closed
    holidays "US" closed
} when state == "MA" because "b"
''', "t.policy")
    window = policy.rules[0]
    assert [len(line.ranges) for line in window.table] == [1, 2, 0]
    assert window.ranges == () and window.days == () and window.holiday_ranges == ()
    assert window.holidays.value == "US"  # type: ignore[union-attr]


@pytest.mark.parametrize(("rule", "says"), [
    ('limit call 2 per 7 days because "x" when state == "MA"', "a limit's `when` goes after its period"),
    ('window sms when state == "MA" 08:00-21:00', "a window's `when` goes after its hours"),
    ('window sms { mon 08:00-09:00 } because "x" when state == "MA"', "a window's `when` goes after its hours"),
    ('quiet call for 1 day when state == "MA" after "x" on call', "a quiet period's `when` goes after `on`"),
    ('forbid call because "x" when state == "MA"', "a forbid's `when` goes right after its actions"),
    ('limit call 1 per day when state == "MA" when dpd > 1', "a rule takes one `when`; join conditions with `and`"),
    ('include "b.policy" when state == "MA" with { call = call }', "`with { ... }` comes before its `when`"),
])
def test_a_misplaced_when_says_where_it_goes(rule: str, says: str) -> None:
    message = syntax_error(HEAD + rule + "\n")
    assert "t.policy:9:" in message and says in message


def test_a_window_table_has_days_and_at_most_one_holidays_line() -> None:
    assert "needs a line of days" in syntax_error(HEAD + 'window sms { holidays "US" closed }\n')
    message = syntax_error(HEAD + 'window sms { mon 08:00-09:00 holidays "US" closed holidays "CN" closed }\n')
    assert "one `holidays` line" in message and "t.policy:9:60" in message


def test_closed_and_holidays_stay_usable_as_field_names() -> None:
    text = HEAD.replace("dpd      : int = 0", "closed : bool = false\n    holidays : int = 0") + (
        "allow all\nwindow sms { mon closed tue 08:00-09:00 } when closed or holidays > 2\n")
    assert codes(text) == []


# ---------------------------------------------------------------- checking


@pytest.mark.parametrize(("condition", "code"), [
    ("dpd + 1", "E114"), ("nowhere > 1", "E101"), ('action == "call"', "E112"), ('state == 3', "E105"),
])
def test_a_restriction_condition_is_checked_as_a_condition_on_the_account(condition: str, code: str) -> None:
    for rule in (f"limit call 1 per day when {condition}", f"window sms 08:00-09:00 when {condition}",
                 f'quiet call for 1 day after "x" on call when {condition}',
                 f"window sms {{ mon 08:00-09:00 }} when {condition}"):
        assert code in codes(HEAD + "allow all\n" + rule + "\n"), rule


BASELINE = '''policy "base" version "1"
account {
    id       : text
    timezone : zone = "America/New_York"
    flags    : set<text> = {}
}
actions { call, sms }
allow all
window call, sms 09:00-17:00 because "base hours"
limit call 1 per day because "base cap"
forbid sms when "no_sms" in flags because "base forbid"
'''


def with_baseline(tmp_path: Path, includer: str) -> str:
    (tmp_path / "base.policy").write_text(BASELINE, encoding="utf-8")
    return includer


def test_a_conditional_include_applies_the_whole_baseline_only_where_it_holds(tmp_path: Path) -> None:
    text = with_baseline(tmp_path, '''policy "outer" version "1"
include "base.policy" when state == "MA"
account { state : text = "" }
allow all
''')
    history = [Contact("A", "call", utc(2025, 6, 4, 14), "")]
    now = utc(2025, 6, 4, 23)  # 19:00 in New York: outside the baseline's hours
    outside = decide(text, {"id": "A", "state": "NY", "flags": "no_sms"}, history, now, tmp_path)
    assert outside.allowed == ("call", "sms") and outside.blocked == ()
    inside = decide(text, {"id": "A", "state": "MA", "flags": "no_sms"}, history, now, tmp_path)
    assert inside.allowed == ()
    kinds = [(entry.action, entry.kind) for entry in inside.blocked]
    assert kinds == [("call", "window"), ("call", "limit"), ("sms", "forbidden"), ("sms", "window")]
    assert all('(applies where state == "MA")' in entry.reason for entry in inside.blocked)
    assert inside.until("call") == utc(2025, 6, 5, 13)  # 09:00 New York the next day: cap and window free
    assert "state" in inside.blocked[0].rule.reads


def test_an_include_condition_is_checked_at_the_include(tmp_path: Path) -> None:
    text = with_baseline(tmp_path, '''policy "outer" version "1"
include "base.policy" when state + 1
account { state : text = "" }
allow all
''')
    found = [(d.code, d.span.line) for d in checked(text, tmp_path, "outer.policy")[1] if d.severity == "error"]
    assert found == [("E105", 2)]


def test_a_baseline_that_also_arrives_unconditionally_applies_everywhere(tmp_path: Path) -> None:
    (tmp_path / "middle.policy").write_text('policy "middle" version "1"\ninclude "base.policy"\n'
                                            "account { id : text }\nallow all\n", encoding="utf-8")
    text = with_baseline(tmp_path, '''policy "outer" version "1"
include "base.policy" when state == "MA"
include "middle.policy"
account { state : text = "" }
allow all
''')
    now = utc(2025, 6, 4, 23)
    decision = decide(text, {"id": "A", "state": "NY"}, [], now, tmp_path)
    assert [entry.kind for entry in decision.blocked] == ["window", "window"]
    assert "applies where" not in decision.blocked[0].reason


def test_nested_conditional_includes_need_every_condition(tmp_path: Path) -> None:
    (tmp_path / "middle.policy").write_text('policy "middle" version "1"\ninclude "base.policy" when dpd > 30\n'
                                            "account { id : text\n dpd : int = 0 }\nallow all\n", encoding="utf-8")
    text = with_baseline(tmp_path, '''policy "outer" version "1"
include "middle.policy" when state == "MA" or state == "NH"
account { state : text = "" }
allow all
''')
    now = utc(2025, 6, 4, 23)
    assert decide(text, {"id": "A", "state": "MA", "dpd": "10"}, [], now, tmp_path).blocked == ()
    blocked = decide(text, {"id": "A", "state": "NH", "dpd": "31"}, [], now, tmp_path).blocked
    assert blocked and '(applies where (state == "MA" or state == "NH") and dpd > 30)' in blocked[0].reason


# ---------------------------------------------------------------- evaluation

MA = HEAD + '''allow all
limit call, sms 2 per 7 days where outcome not in {"not_connected"} when state == "MA" because "MA cap" cite "c"
'''


def test_a_conditional_limit_counts_only_for_accounts_it_applies_to() -> None:
    history = [Contact("A", "call", utc(2025, 6, 2, 15), "no_answer"), Contact("A", "sms", utc(2025, 6, 3, 15))]
    now = utc(2025, 6, 4, 15)
    assert decide(MA, {"id": "A", "state": "NY"}, history, now).allowed == ("call", "sms", "email")
    blocked = decide(MA, {"id": "A", "state": "MA"}, history, now)
    assert blocked.allowed == ("email",)
    assert blocked.reasons("call")[0].reason == (
        'cap of 2 per 7 days reached for call, sms (calendar days in America/New_York) '
        '(applies where state == "MA"): MA cap [c]')
    assert blocked.until("call") == utc(2025, 6, 9, 4)  # local midnight 7 days after the 2 June call


def test_the_explanation_shows_the_condition_and_the_value_it_read() -> None:
    history = [Contact("A", "call", utc(2025, 6, 2, 15)), Contact("A", "call", utc(2025, 6, 3, 15))]
    text = decide(MA, {"id": "A", "state": "MA"}, history, utc(2025, 6, 4, 15)).explain()
    assert '(applies where state == "MA")' in text and 'read: state = "MA"' in text


TABLE = HEAD + '''allow all
window sms {
    mon..fri 08:00-21:00
    sat      09:00-17:00
    sun      closed
    holidays "US" 10:00-14:00
}
'''


@pytest.mark.parametrize(("now", "allowed", "until"), [
    (utc(2025, 6, 6, 20), True, None),  # Fri 16:00 New York
    (utc(2025, 6, 7, 1, 30), False, utc(2025, 6, 7, 13)),  # Fri 21:30: Saturday 09:00
    (utc(2025, 6, 7, 21, 0, 1), False, utc(2025, 6, 9, 12)),  # Sat 17:00:01: Sunday closed, Monday 08:00
    (utc(2025, 7, 4, 12), False, utc(2025, 7, 4, 14)),  # Independence Day (Fri) 08:00: holiday hours 10:00
    (utc(2025, 7, 4, 18), False, utc(2025, 7, 5, 13)),  # Independence Day 14:00: Saturday 09:00
])
def test_a_window_table_opens_each_day_at_its_own_hours(now: dt.datetime, allowed: bool,
                                                        until: dt.datetime | None) -> None:
    decision = decide(TABLE, {"id": "A"}, [], now)
    assert decision.is_allowed("sms") is allowed
    assert decision.until("sms") == until


def test_a_window_table_says_its_hours() -> None:
    decision = decide(TABLE, {"id": "A"}, [], utc(2025, 7, 4, 18))
    assert decision.reasons("sms")[0].reason == (
        "outside contact hours 08:00-21:00 on mon, tue, wed, thu, fri; 09:00-17:00 on sat; "
        "10:00-14:00 on US public holidays (now Fri 14:00 in America/New_York (a public holiday))")


def test_the_one_line_form_still_says_its_hours_as_before() -> None:
    text = HEAD + 'allow all\nwindow sms 08:00-21:00 on mon..fri except holidays "US"\n'
    decision = decide(text, {"id": "A"}, [], utc(2025, 7, 4, 18))
    assert decision.reasons("sms")[0].reason == (
        "outside contact hours 08:00-21:00 on mon, tue, wed, thu, fri, not on US public holidays "
        "(now Fri 14:00 in America/New_York (a public holiday))")


def test_table_lines_naming_the_same_day_add_up_and_rules_intersect() -> None:
    text = HEAD + '''allow all
window sms { mon..fri 08:00-12:00  mon 18:00-20:00 }
window sms 11:00-19:00
'''
    monday_five = utc(2025, 6, 9, 21)  # Mon 17:00 New York: outside both table ranges
    assert decide(text, {"id": "A"}, [], monday_five).until("sms") == utc(2025, 6, 9, 22)  # Mon 18:00
    tuesday_noon = utc(2025, 6, 10, 16)  # Tue 12:00: table closed until Wednesday 08:00, rule 2 from 11:00
    assert decide(text, {"id": "A"}, [], tuesday_noon).until("sms") == utc(2025, 6, 11, 15)


@st.composite
def day_specs(draw: st.DrawFn) -> WindowSpec:
    """Day-specific hours: whole quarter hours, some days closed, and
    holiday hours of their own."""
    def ranges() -> tuple[tuple[int, int], ...]:
        quarters = sorted(draw(st.sets(st.integers(0, 96), max_size=4)))
        return tuple((a * 900, b * 900) for a, b in zip(quarters[::2], quarters[1::2], strict=False))

    by_day = tuple(ranges() for _ in range(7))
    return WindowSpec((), frozenset(), by_day, ranges())


@settings(max_examples=80, deadline=None)
@given(day_specs(), st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]),
       st.sampled_from([None, "US", "GB"]), st.integers(0, 400 * 24 * 4))
def test_next_open_through_day_specific_hours_is_the_first_instant_inside(
        spec: WindowSpec, zone_name: str, country: str | None, quarter: int) -> None:
    zone = ZoneInfo(zone_name)
    instant = utc(2025, 1, 1) + dt.timedelta(minutes=15 * quarter + 7)
    found = spec.next_open(instant, zone, country)
    if found is None:
        assert not any(spec.by_day) and (country is None or not spec.holiday_ranges)
        return
    assert found >= instant and spec.inside(found, zone, country)
    probe = instant
    while probe < found:  # every edge falls on a whole minute
        assert not spec.inside(probe, zone, country), (probe, found)
        probe = (probe + dt.timedelta(minutes=1)).replace(second=0)


# ---------------------------------------------------------------- both engines on random policies


@pytest.fixture(scope="module")
def include_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


@st.composite
def conditional_includes(draw: st.DrawFn) -> tuple[PolicySpec, str, list[Scenario]]:
    """A random policy as a baseline, included under a random condition."""
    spec = draw(policies())
    condition = draw(conditions([], False, spec.actions, timeless=True))
    includer = f'policy "outer" version "1"\ninclude "generated.policy" when {condition}\nallow all\n'
    return spec, includer, draw(st.lists(scenarios(spec), min_size=1, max_size=3))


def _check_include(include_dir: Path, case: tuple[PolicySpec, str, list[Scenario]]) -> None:
    spec, includer, drawn = case
    (include_dir / "generated.policy").write_text(spec.text, encoding="utf-8")
    model, diagnostics = check(load_text(includer, str(include_dir / "outer.policy")))
    assert not [d for d in diagnostics if d.severity == "error"], spec.text
    compiled, reference = Policy(model), ReferencePolicy(model)
    for scenario in drawn:
        assert_same(compiled, reference, scenario.account, scenario.history, scenario.now, includer + spec.text)


PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@PROPERTY
@given(conditional_includes())
def test_engines_agree_on_conditional_includes(include_dir: Path,
                                               case: tuple[PolicySpec, str, list[Scenario]]) -> None:
    _check_include(include_dir, case)


@pytest.mark.slow
@settings(PROPERTY, max_examples=1000)
@given(conditional_includes())
def test_engines_agree_on_conditional_includes_many_examples(include_dir: Path,
                                                             case: tuple[PolicySpec, str, list[Scenario]]) -> None:
    _check_include(include_dir, case)


# ---------------------------------------------------------------- lints

DISJOINT = HEAD + '''allow all
window sms 08:00-21:00 on mon..fri
window sms 10:00-18:00 on sat, sun
'''


def test_windows_never_open_together_are_reported_naming_the_action() -> None:
    found = [d for d in checked(DISJOINT)[1] if d.code == "W309"]
    assert len(found) == 1 and found[0].span.line == 11
    assert found[0].message.startswith("the windows for sms are never open together at any moment of a week")


def test_the_weekday_weekend_pair_fails_check_strict(tmp_path: Path) -> None:
    path = tmp_path / "pair.policy"
    path.write_text(DISJOINT, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--strict", str(path)])
    assert result.exit_code == 1
    assert "W309" in result.output and "windows for sms are never open together" in result.output
    assert CliRunner().invoke(main, ["check", str(path)]).exit_code == 0  # a warning, without --strict


@pytest.mark.parametrize("rules", [
    "window sms 08:00-21:00 on mon..fri\nwindow sms 10:00-18:00 on fri..sun",  # they meet on Friday
    'window sms 08:00-21:00 on mon..fri when state == "MA"\nwindow sms 10:00-18:00 on sat when state == "NY"',
    "window sms { mon..fri 08:00-21:00 sat 09:00-12:00 }\nwindow sms 10:00-18:00 on sat, sun",
    'window sms 08:00-21:00 on mon\nwindow sms { tue 08:00-09:00 holidays "US" 08:00-09:00 }',
])
def test_windows_that_can_be_open_together_are_not_reported(rules: str) -> None:
    assert "W309" not in codes(HEAD + "allow all\n" + rules + "\n")


def test_a_window_table_with_every_day_closed_is_never_open() -> None:
    found = [d.message for d in checked(HEAD + "allow all\nwindow call, sms { mon..sun closed }\n")[1]
             if d.code == "W309"]
    assert found == ["the window for call, sms is never open: call, sms is always blocked and `until` is null"]


def test_a_conditional_baseline_window_does_not_make_an_unconditional_one_wider(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text(BASELINE.replace("window call, sms 09:00-17:00",
                                                           'window call, sms 09:00-17:00 when "x" in flags'),
                                          encoding="utf-8")
    outer = 'policy "outer" version "1"\ninclude "base.policy"\nallow all\nwindow call 08:00-20:00\n'
    assert "W307" not in codes(outer, tmp_path, "outer.policy")
    wider = outer.replace("window call 08:00-20:00", 'window call 08:00-20:00 when "x" in flags')
    assert "W307" in codes(wider, tmp_path, "outer.policy")
    (tmp_path / "base.policy").write_text(BASELINE, encoding="utf-8")
    assert "W307" in codes(outer, tmp_path, "outer.policy")


def test_a_conditional_forbid_from_an_include_does_not_make_an_allow_useless(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text(BASELINE.replace('forbid sms when "no_sms" in flags', "forbid sms"),
                                          encoding="utf-8")
    outer = 'policy "outer" version "1"\ninclude "base.policy" when state == "MA"\naccount { state : text = "" }\n' \
            "allow sms\n"
    assert "W303" not in codes(outer, tmp_path, "outer.policy")
    assert "W303" in codes(outer.replace(' when state == "MA"', ""), tmp_path, "outer.policy")


def test_a_restriction_whose_condition_cannot_hold_where_its_actions_are_allowed() -> None:
    text = HEAD.replace("actions {", "stages on dpd { early .. 30  late 31 .. }\nactions {") + '''
stage early { allow call }
limit call 1 per day when dpd > 60
'''
    found = [d.message for d in checked(text)[1] if d.code == "W305"]
    assert found == ["this limit applies only where dpd > 60, and no stage allows call there"]
    assert "W305" not in codes(text.replace("dpd > 60", "dpd > 10"))


def test_a_constant_restriction_condition_is_reported() -> None:
    text = HEAD.replace("actions {", "stages on dpd { early .. 30  late 31 .. }\nactions {") + '''
allow all
stage early { limit call 1 per day when dpd > 60 }
'''
    assert "W304" in codes(text)


def test_a_segment_used_only_in_a_restriction_condition_is_used() -> None:
    text = HEAD + 'segment ma when state == "MA"\nallow all\nlimit call 1 per day when ma\n'
    assert "W301" not in codes(text)


# ---------------------------------------------------------------- formatter and highlighters

MESSY = HEAD + '''include "b.policy" with { call = call } when   state == "MA"
allow all
window sms {  # hours
      mon..fri 08:00-21:00
  sat 09:00-12:00, 13:00-17:00   # Saturday
    sun closed
    holidays "US" 10:00-14:00
} when state == "MA" because "x" cite "y"
stage x { window call 08:00-20:00 on mon..fri except holidays "US" when dpd>3 }
limit call, sms 2 per 7 days where outcome not in {"not_connected"} when state == "MA" or state == "NY" \
or state == "NH" because "b"
quiet call for 7 days after "conversation" on call when dpd > 1
'''


def test_the_formatter_lays_out_conditions_and_hours_tables() -> None:
    text = format_source(MESSY, "t.policy")
    assert format_source(text, "t.policy") == text
    assert '''window sms {  # hours
    mon..fri 08:00-21:00
    sat      09:00-12:00, 13:00-17:00  # Saturday
    sun      closed
    holidays "US" 10:00-14:00
} when state == "MA" because "x" cite "y"
''' in text
    assert 'include "b.policy" with {\n    call = call\n} when state == "MA"\n' in text
    assert "    window call 08:00-20:00 on mon..fri except holidays \"US\" when dpd > 3\n" in text
    assert ('limit call, sms 2 per 7 days\n    where outcome not in {"not_connected"}\n'
            '    when state == "MA" or state == "NY" or state == "NH"\n    because "b"\n') in text


def test_the_lexer_and_textmate_grammar_read_the_new_constructs_as_the_grammar_does() -> None:
    source = MESSY.replace('include "b.policy" with { call = call } when   state == "MA"\n', "")
    lexer = PolicyLexer(stripnl=False, ensurenl=False)
    lexed = {start: kind for start, kind, _ in lexer.get_tokens_unprocessed(source)}
    words = 0
    for token in _lark().parse_interactive(source).iter_parse():
        if token.type != "$END":
            assert lexed[token.start_pos] in _expected_class(token), token
            words += str(token) in ("closed", "holidays", "when")
    assert words == 7  # closed, the holidays line, except holidays, four when
    import json
    grammar = json.loads((Path(__file__).parent.parent / "editors/vscode/syntaxes/policy.tmLanguage.json")
                         .read_text(encoding="utf-8"))
    for line, word in (("    sun      closed", "closed"), ('    holidays "US" 10:00-14:00', "holidays"),
                       ("    holidays country closed", "holidays"), ("    holidays country closed", "closed")):
        start = line.index(word)
        scopes = _tm_scopes(line, grammar)[start:start + len(word)]
        assert all(scope.startswith("keyword.other") for scope in scopes), (line, scopes)


def test_windows_under_the_same_condition_on_different_lines_are_judged_together() -> None:
    """Conditions were compared with their positions, so the same `when`
    written on two lines never formed a set and W309 kept quiet."""
    rules = 'window sms 09:00-12:00 when state == "MA"\nwindow sms 13:00-17:00 when state == "MA"\n'
    found = [d for d in checked(HEAD + "allow all\n" + rules)[1] if d.code == "W309"]
    assert len(found) == 1 and found[0].span.line == HEAD.count("\n") + 3, found
    assert found[0].message.startswith("the windows for sms are never open together at any moment of a week")
