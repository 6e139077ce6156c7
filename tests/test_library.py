"""Baselines as a library: `include "policydsl:NAME"` from anywhere,
`--include-path` as a search path that still bounds includes, and a wheel
that carries the baselines and the decision schema (built and installed into
a fresh venv, then used from an unrelated directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from policydsl import library
from policydsl.checker import check
from policydsl.cli import main
from policydsl.errors import PolicySyntaxError
from policydsl.loader import load_file

ROOT = Path(__file__).resolve().parents[1]
STRATEGY = """\
policy "strategy" version "1"
include "policydsl:us_reg_f" with { call = agent_call  sms = text  email = mail }
account { id : text }
actions { agent_call, text, mail, letter, legal_action }
allow all
"""


def test_the_installed_baselines_are_the_shipped_files() -> None:
    assert library.baseline_names() == sorted(path.stem for path in (ROOT / "policies").glob("*.policy"))
    found = library.baseline_path("policydsl:us_reg_f")
    assert found is not None and found.read_bytes() == (ROOT / "policies" / "us_reg_f.policy").read_bytes()
    assert library.baseline_path("policydsl:us_reg_f.policy") == found
    assert library.decision_schema()["$schema"].startswith("https://json-schema.org/")


def test_a_policy_anywhere_includes_a_baseline_by_name(tmp_path: Path) -> None:
    (tmp_path / "strategy.policy").write_text(STRATEGY, encoding="utf-8")
    model, found = check(load_file(tmp_path / "strategy.policy"))
    assert [d for d in found if d.severity == "error"] == []
    assert any("1006.6(b)(1)" in (rule.reason.cite or "") for rule in model.restrictions)


def test_a_library_baseline_includes_its_siblings(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text('policy "p" version "1"\ninclude "policydsl:ecommerce_consumer_loan"\n'
                                       "account { id : text }\n", encoding="utf-8")
    policy = load_file(tmp_path / "p.policy")
    assert [inner.header.name for inner in policy.included[0].included] == ["cn_collection_baseline"]


def test_an_unknown_library_name_lists_the_available_ones(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text('policy "p" version "1"\ninclude "policydsl:us_regf"\n', encoding="utf-8")
    with pytest.raises(PolicySyntaxError) as caught:
        load_file(tmp_path / "p.policy")
    assert caught.value.diagnostic.code == "E002"
    assert caught.value.diagnostic.message == (
        "no installed baseline 'policydsl:us_regf'; available: policydsl:cn_collection_baseline, "
        "policydsl:ecommerce_consumer_loan, policydsl:us_reg_f, policydsl:us_state_rules")


def _baseline(directory: Path, name: str, version: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "house.policy").write_text(f'policy "{name}" version "{version}"\naccount {{ id : text }}\n',
                                            encoding="utf-8")


def test_include_paths_are_searched_in_order_after_the_including_files_directory(tmp_path: Path) -> None:
    _baseline(tmp_path / "first", "first", "1")
    _baseline(tmp_path / "second", "second", "1")
    (tmp_path / "work").mkdir()
    main_policy = tmp_path / "work" / "main.policy"
    main_policy.write_text('policy "m" version "1"\ninclude "house.policy"\n', encoding="utf-8")
    roots = [tmp_path / "first", tmp_path / "second"]
    assert load_file(main_policy, roots).included[0].header.name == "first"
    assert load_file(main_policy, roots[::-1]).included[0].header.name == "second"
    _baseline(tmp_path / "work", "beside", "1")
    assert load_file(main_policy, roots).included[0].header.name == "beside"
    lone = _write(tmp_path / "lone" / "m.policy", 'policy "m" version "1"\ninclude "other.policy"\n')
    with pytest.raises(PolicySyntaxError, match="not found"):
        load_file(lone, roots)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_include_paths_still_bound_where_includes_may_go(tmp_path: Path) -> None:
    _baseline(tmp_path / "outside", "outside", "1")
    main_policy = _write(tmp_path / "work" / "main.policy",
                         'policy "m" version "1"\ninclude "../outside/house.policy"\n')
    with pytest.raises(PolicySyntaxError, match="leaves the policy's directory"):
        load_file(main_policy, [tmp_path / "elsewhere"])
    result = CliRunner().invoke(main, ["check", str(main_policy), "--include-path", str(tmp_path / "outside")])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_the_wheel_carries_the_baselines_and_schema_into_a_fresh_venv(tmp_path: Path) -> None:
    """Build the wheel, install it (no dependencies: they come from this
    environment's site-packages) into a new venv, and check a policy that
    includes Reg F by name from a directory that has nothing to do with the
    project."""
    if shutil.which("pip") is None and subprocess.run([sys.executable, "-m", "pip", "--version"],
                                                       capture_output=True).returncode:
        pytest.skip("pip is not available to build a wheel")
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip()[-300:]}")
    (wheel,) = wheels.glob("policydsl-*.whl")
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot create a venv here: {made.stderr.strip()[-300:]}")
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _write(elsewhere / "strategy.policy", STRATEGY)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    checked = subprocess.run([str(venv / "bin" / "policy"), "check", "strategy.policy"], cwd=elsewhere,
                             capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 error(s)" in checked.stderr
    where = subprocess.run([str(python), "-c", "import policydsl, policydsl.library as l; print(policydsl.__file__);"
                            "print(l.baseline_path('policydsl:us_reg_f')); print(l.decision_schema()['title'])"],
                           cwd=elsewhere, capture_output=True, text=True, env=env, check=True).stdout.split("\n")
    assert where[0].startswith(site) and where[1].startswith(site)  # the wheel's copy, not the checkout
    assert where[2]
