"""Lark's parser tables are kept between processes in a private directory
of the user's, and a cache that is missing, shared or broken never stops a
parse (issue 12: the grammar was rebuilt in every process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from policydsl import parser

POLICY = 'policy "p" version "1"\naccount { id : text }\nactions { sms }\nallow sms\n'


def _check_in_a_new_process(cache_home: Path, policy: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    env.pop("POLICYDSL_NO_CACHE", None)
    return subprocess.run([sys.executable, "-m", "policydsl", "check", str(policy)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_tables_are_kept_for_the_next_process_and_a_broken_file_is_rebuilt(tmp_path: Path) -> None:
    policy = tmp_path / "p.policy"
    policy.write_text(POLICY)
    first = _check_in_a_new_process(tmp_path / "cache", policy)
    assert first.returncode == 0, first.stderr
    [kept] = (tmp_path / "cache" / "policydsl").iterdir()
    assert (tmp_path / "cache" / "policydsl").stat().st_mode & 0o777 == 0o700
    kept.write_bytes(kept.read_bytes()[:200])  # a process killed while writing it
    second = _check_in_a_new_process(tmp_path / "cache", policy)
    assert second.returncode == 0 and second.stderr.strip() == "1 file(s) checked: 0 error(s), 0 warning(s)"
    assert kept.stat().st_size > 200  # written whole again


def test_a_directory_others_can_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLICYDSL_NO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shared = tmp_path / "policydsl"
    shared.mkdir()
    shared.chmod(0o777)
    assert parser._cache_file() is None  # a pickle others can replace would run their code here
    shared.chmod(0o700)
    assert parser._cache_file() == shared / f"grammar-lark-{parser.lark.__version__}.cache"


def test_no_cache_when_asked_or_when_the_directory_cannot_be_made(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("POLICYDSL_NO_CACHE", "1")
    assert parser._cache_file() is None
    monkeypatch.delenv("POLICYDSL_NO_CACHE")
    (tmp_path / "policydsl").write_text("not a directory")
    assert parser._cache_file() is None
