"""Conditions that decide whether a window, limit, quiet period or included
baseline exists must not read time (E117): both engines hold them fixed for
the account, so one that time changes would make `until` wrong. And a
baseline's conditions count the includer's actions (include mappings)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_restrict import HEAD, checked, codes, decide, utc

from policydsl.cli import main
from policydsl.decision import Contact


@pytest.mark.parametrize(("condition", "quoted"), [
    ("days_since(opened) < 10", "days_since(opened)"),
    ("today() < 2025-07-01", "today()"),
    ("now > 2025-06-01T00:00:00Z", "now"),
    ("weekday() == \"sat\"", "weekday()"),
    ("local_time() > 12:00", "local_time()"),
    ("count(call in 7 days) >= 2", "count(call in 7 days)"),
    ("days_since_last(call) < 3", "days_since_last(call)"),
    ("hours_since_last(sms) < 4", "hours_since_last(sms)"),
])
def test_a_restriction_condition_that_reads_time_is_rejected_at_the_condition(condition: str, quoted: str) -> None:
    head = HEAD.replace("account {", "account {\n    opened : date = 2024-01-01")
    for rule in (f"limit call 1 per day when {condition}", f"window sms 08:00-09:00 when {condition}",
                 f'quiet call for 1 day after "x" on call when {condition}'):
        text = head + "allow all\n" + rule + "\n"
        _, diagnostics = checked(text)
        found = [d for d in diagnostics if d.code == "E117"]
        assert len(found) == 1, rule
        assert f"`{quoted}`" in found[0].message and "forbid" in found[0].message
        assert found[0].span.column == text.splitlines()[found[0].span.line - 1].index(condition) + 1


def test_account_conditions_and_streaks_are_accepted() -> None:
    assert "E117" not in codes(HEAD + 'allow all\nlimit call 1 per day when streak(call) >= 2 and state == "MA"\n')


def test_time_read_through_a_segment_is_rejected_naming_the_segment() -> None:
    text = HEAD + 'segment recent when count(call in 3 days) > 1\nsegment ma when state == "MA" and recent\n' \
        'allow all\nwindow sms 08:00-09:00 when ma\n'
    _, diagnostics = checked(text)
    [found] = [d for d in diagnostics if d.code == "E117"]
    assert "segment 'recent'" in found.message and "`count(call in 3 days)`" in found.message
    assert text.splitlines()[found.span.line - 1] == "window sms 08:00-09:00 when ma"


def test_an_include_condition_that_reads_time_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text('policy "b" version "1"\nactions { call }\nallow all\n', encoding="utf-8")
    text = 'policy "o" version "1"\ninclude "base.policy" when today() > 2025-01-01\naccount { id : text }\nallow all\n'
    assert "E117" in codes(text, tmp_path, "o.policy")
    (tmp_path / "o.policy").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(tmp_path / "o.policy")])
    assert result.exit_code != 0 and "error[E117]" in result.output and "Traceback" not in result.output
    assert "o.policy:2:28: error[E117]" in result.output


BASE = '''policy "base" version "1"
account {
    id       : text
    timezone : zone = "UTC"
}
actions { voice }
allow all
limit voice 1 per day when streak(voice) >= 2 because "after two calls in a row, one a day"
'''


def _streak_history() -> list[Contact]:
    return [Contact("A", "call", utc(2025, 6, 3, 10)), Contact("A", "call", utc(2025, 6, 4, 10))]


def test_a_baseline_restriction_condition_counts_the_includers_actions(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text(BASE, encoding="utf-8")
    text = 'policy "o" version "1"\ninclude "base.policy" with { voice = call }\nactions { call }\nallow all\n'
    decision = decide(text, {"id": "A"}, _streak_history(), utc(2025, 6, 4, 12), tmp_path)
    assert [(entry.action, entry.kind) for entry in decision.blocked] == [("call", "limit")]
    assert decision.until("call") == utc(2025, 6, 5)


def test_a_nested_include_condition_counts_the_includers_actions(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text(BASE.replace(" when streak(voice) >= 2", ""), encoding="utf-8")
    (tmp_path / "middle.policy").write_text(
        'policy "m" version "1"\ninclude "base.policy" when streak(voice) >= 2\nactions { voice }\nallow all\n',
        encoding="utf-8")
    text = 'policy "o" version "1"\ninclude "middle.policy" with { voice = call }\nactions { call }\nallow all\n'
    now = utc(2025, 6, 4, 12)
    decision = decide(text, {"id": "A"}, _streak_history(), now, tmp_path)
    assert [(entry.action, entry.kind) for entry in decision.blocked] == [("call", "limit")]
    calm = decide(text, {"id": "A"}, _streak_history()[1:], now + dt.timedelta(days=1), tmp_path)
    assert calm.allowed == ("call",)
