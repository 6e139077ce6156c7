"""Did-you-mean in `policy check`: every unknown name a policy author can
mistype gets the nearest declared name, from the one shared helper."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from policydsl.checker import check
from policydsl.cli import main
from policydsl.loader import load_text
from policydsl.suggest import closest, did_you_mean, did_you_mean_aside

BASE = """\
policy "p" version "1"
account {
    id      : text
    tz      : zone = "Asia/Shanghai"
    dpd     : int = 0
    balance : money = 0
    country : text = "CN"
}
actions {
    sms, email
    phones : call
}
stages on dpd {
    early .. 30
    late  31 ..
}
segment risky when balance > 100
"""


def messages(source: str) -> list[str]:
    _, found = check(load_text(source, "t.policy"))
    return [f"{d.code}: {d.message}" for d in found if d.severity == "error"]


@pytest.mark.parametrize(("rule", "expected"), [
    ("allow sms when balnce > 1\n", "E101: unknown name 'balnce': not a field of `account` or a segment; "
                                    "did you mean 'balance'?"),
    ("allow sms when riskyy\n", "did you mean 'risky'?"),
    ("allow smss\n", "E102: unknown action or group 'smss'; did you mean 'sms'?"),
    ("allow phonse\n", "E102: unknown action or group 'phonse'; did you mean 'phones'?"),
    ("stage erly { allow sms }\n", "E103: unknown stage 'erly'; did you mean 'early'?"),
    ("allow sms when dayz_since(now) > 1\n", "E104: unknown function 'dayz_since' (did you mean 'days_since'?); "
                                             "the library has"),
    ("window sms 08:00-20:00 except holidays countri\n", "is not one; did you mean 'country'?"),
])
def test_check_suggests_the_name_meant(rule: str, expected: str) -> None:
    found = messages(BASE + rule)
    assert any(expected in message for message in found), found


def test_stage_field_and_mapping_names_are_suggested(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text('policy "b" version "1"\naccount { id : text }\nactions { call }\n')
    source = BASE.replace("stages on dpd", "stages on dpdd") \
        + 'include "base.policy" with { cal = call }\ninclude "base.policy" with { call = smss }\n'
    (tmp_path / "p.policy").write_text(source)
    result = CliRunner().invoke(main, ["check", str(tmp_path / "p.policy")])
    assert "unknown field 'dpdd'; did you mean 'dpd'?" in result.output
    assert "declares no action, group or event 'cal'; did you mean 'call'?" in result.output
    assert "unknown action or group 'smss'; did you mean 'sms'?" in result.output
    assert result.exit_code == 1


def test_nothing_is_suggested_when_nothing_is_close() -> None:
    assert messages(BASE + "allow sms when zzzzzz\n") == [
        "E101: unknown name 'zzzzzz': not a field of `account` or a segment"]


def test_a_case_variant_is_the_name_meant() -> None:
    assert closest("Balance", ["balanced", "balance"]) == "balance"
    assert closest("SMS", ["sms", "email"]) == "sms"
    assert did_you_mean("x", []) == "" and did_you_mean_aside("x", []) == ""
    assert did_you_mean_aside("smss", ["sms"]) == " (did you mean 'sms'?)"
