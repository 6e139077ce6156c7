"""The adversarial run of benchmarks/adversarial.py at a small scale
(`pytest -m slow`): every kind of mutation it tries must keep its guarantee."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import adversarial  # benchmarks/ is not a package: found through sys.path above


@pytest.mark.slow
def test_a_small_adversarial_run_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every guarantee but speed: the script judges time, a test must not
    (a loaded machine is no regression; hangs still hit the subprocess timeouts)."""
    monkeypatch.setattr(adversarial, "TIME_LIMITS", False)
    kinds = adversarial.run(seed=7, scale=0.1)
    assert all(kind.tried for kind in kinds)
    assert [failure for kind in kinds for failure in kind.failures] == []
