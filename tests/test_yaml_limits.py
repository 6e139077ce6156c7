"""Hostile YAML test files (issue 11 item 14): an alias bomb, nesting deep
enough for a RecursionError and an integer too long for `int()` are each a
test-file error with the line and column, found while composing the document
(nothing is expanded, printed or recursed into first)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policydsl.cli import main
from policydsl.testing import MAX_YAML_DEPTH, TestFileError, parse_test_file

HEAD = "policy: p.policy\nnow: 2025-06-04T02:00:00Z\n"
POSITION = re.compile(r"line (\d+), column (\d+)")


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs: `width ** levels` items from a few hundred bytes."""
    lines = [HEAD + 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    lines.append(f"cases:\n  - name: boom\n    account: {{ id: *a{levels - 1} }}\n    expect: {{}}")
    return "\n".join(lines) + "\n"


def _deep(depth: int = 5000) -> str:
    return HEAD + "cases: " + "[" * depth + "]" * depth + "\n"


def _long_integer(digits: int = 5000) -> str:
    return HEAD + f"cases:\n  - name: big\n    account: {{ id: A1, days: {'7' * digits} }}\n    expect: {{}}\n"


def _position(error: TestFileError) -> tuple[int, int]:
    found = POSITION.search(str(error))
    assert found, str(error)
    return int(found.group(1)), int(found.group(2))


def test_nesting_deeper_than_the_limit_is_positioned_not_a_recursion_error() -> None:
    with pytest.raises(TestFileError) as caught:
        parse_test_file(_deep(), "deep.test.yaml")
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in str(caught.value)
    assert _position(caught.value) == (3, 8 + MAX_YAML_DEPTH - 1)  # the bracket that opens level 101


def test_a_5000_digit_integer_is_positioned_not_a_value_error() -> None:
    with pytest.raises(TestFileError) as caught:
        parse_test_file(_long_integer(), "big.test.yaml")
    assert "an integer longer than 1000 characters" in str(caught.value)
    assert _position(caught.value) == (5, 30)  # where the digits begin


def test_an_alias_bomb_is_refused_while_composing() -> None:
    with pytest.raises(TestFileError) as caught:
        parse_test_file(_alias_bomb(), "bomb.test.yaml")
    assert "aliases expand this to more than 1,000,000 nodes" in str(caught.value)
    line, _ = _position(caught.value)
    assert line == 9  # a7: 9 ** 7 items, the first level beyond the budget


def test_aliases_within_the_budget_still_work(tmp_path: Path) -> None:
    text = (HEAD + "defaults: &base { id: A1 }\ncases:\n  - name: one\n    account: *base\n"
            "    expect: { stage: late }\n")
    scenarios = parse_test_file(text, "fine.test.yaml")
    assert scenarios.cases[0].account == {"id": "A1"}


def _limited_memory() -> None:
    """A regression must fail the test, not exhaust a shared machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bomb", _alias_bomb(), "aliases expand this to more than"),
    ("deep", _deep(), "nested deeper than"),
    ("big", _long_integer(), "an integer longer than"),
])
def test_policy_test_reports_each_as_an_unusable_file_in_one_line(tmp_path: Path, name: str, text: str,
                                                                   message: str) -> None:
    path = tmp_path / f"{name}.test.yaml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "policydsl", "test", str(path)], capture_output=True, text=True,
                          timeout=60, preexec_fn=_limited_memory, check=False,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot be used:" in done.stdout and message in done.stdout
    assert POSITION.search(done.stdout), done.stdout
    assert CliRunner().invoke(main, ["test", str(path)]).exit_code == 2
