"""`# policy: ignore[CODE]`: a reviewable way to silence a warning. It
covers the item it is written on (or the one below it), survives `policy
fmt`, keeps the silenced warnings listable, and reports itself when it
silences nothing or names what cannot be silenced."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from policydsl.checker import check
from policydsl.cli import main
from policydsl.formatter import format_source
from policydsl.loader import load_text

HEAD = 'policy "p" version "1"\naccount { id : text  dpd : int = 0  b : int = 0 }\n'
SOURCE = HEAD + """\
actions {
    sms
    threaten_x  # policy: ignore[W201]
}
allow sms
# policy: ignore[W303]
allow sms when dpd > 5 and dpd < 3
forbid sms when b > 100000000000000000000000000000000000 and b > 100000000000000000000000000000000000000000 \
and b > 2  # policy: ignore[W203]
"""


def codes(source: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    model, found = check(load_text(source, "t.policy"))
    return [(d.code, d.span.line) for d in found], [(d.code, d.span.line) for d in model.suppressed]


def test_a_trailing_or_preceding_comment_silences_the_warning_of_its_item() -> None:
    shown, suppressed = codes(SOURCE)
    assert shown == []
    assert sorted(suppressed) == [("W201", 5), ("W203", 10), ("W303", 9)]  # W203: on the rule's last line


def test_without_the_comments_the_warnings_are_shown() -> None:
    shown, suppressed = codes(SOURCE.replace("# policy: ignore", "# note"))
    assert sorted(shown) == [("W201", 5), ("W203", 10), ("W303", 9)] and suppressed == []


def test_a_suppression_survives_policy_fmt_even_when_the_rule_is_broken_over_lines() -> None:
    formatted = format_source(SOURCE)
    assert "    and b > 2  # policy: ignore[W203]\n" in formatted  # moved to the rule's last line
    shown, suppressed = codes(formatted)
    assert shown == [] and len(suppressed) == 3


def test_a_comment_covers_only_its_own_item_and_code() -> None:
    source = HEAD + "actions { sms }\nallow sms\nforbid sms  # policy: ignore[W303]\nforbid sms when b > 1\n"
    shown, _ = codes(source)
    assert ("W203", 5) in shown and ("W203", 6) in shown  # W303 named, not W203
    assert ("W310", 5) in shown  # and the W303 it names is not there: reported


def test_unknown_codes_errors_and_stale_suppressions_are_reported() -> None:
    source = HEAD + "actions { sms }\nallow sms\nsegment s when b > 1  # policy: ignore[W301, E101, W999]\n" \
        "# policy: ignore[W306]\nallow sms when b > 3\n"
    model, found = check(load_text(source, "t.policy"))
    assert [(d.code, d.span.line, d.message) for d in found] == [
        ("W310", 5, "`ignore[E101]`: errors cannot be suppressed, only warnings"),
        ("W310", 5, "`ignore[W999]`: there is no diagnostic 'W999'"),
        ("W310", 6, "`ignore[W306]` suppresses nothing here"),
    ]
    assert [d.code for d in model.suppressed] == ["W301"]


def test_a_hash_inside_a_string_is_not_a_suppression() -> None:
    source = HEAD + 'actions { sms }\nallow sms\nforbid sms cite "# policy: ignore[W203]"\n'
    shown, _ = codes(source)
    assert ("W203", 5) in shown


def test_errors_are_never_suppressed_and_stale_ones_wait_for_them() -> None:
    source = HEAD + "actions { sms }\nallow smss  # policy: ignore[W303]\n"
    shown, _ = codes(source)
    assert "E102" in [code for code, _ in shown] and "W310" not in [code for code, _ in shown]  # lints did not run


def test_the_cli_hides_suppressed_warnings_from_strict_and_lists_them_on_request(tmp_path: Path) -> None:
    path = tmp_path / "p.policy"
    path.write_text(SOURCE, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["check", str(path), "--strict"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("1 file(s) checked: 0 error(s), 0 warning(s), 3 suppressed")
    listed = runner.invoke(main, ["check", str(path), "--show-suppressed"])
    assert "p.policy:5:5: suppressed[W201]: no stage allows 'threaten_x'" in listed.output
    assert "suppressed[W303]" in listed.output and "suppressed[W203]" in listed.output
    path.write_text(SOURCE.replace("ignore[W201]", "ignore[W202]"), encoding="utf-8")
    stale = runner.invoke(main, ["check", str(path), "--strict"])
    assert stale.exit_code == 1 and "warning[W310]: `ignore[W202]` suppresses nothing here" in stale.output
