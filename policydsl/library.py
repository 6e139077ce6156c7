"""The baselines and the decision schema installed with the package.

The shipped baselines live in the repository's `policies/` directory and the
schema in `docs/`; the build maps both into the package (`policydsl.baselines`,
`policydsl.schemas`, see pyproject.toml), so they are found here through
`importlib.resources` wherever policydsl is installed, and a policy can
include a baseline by name, `include "policydsl:us_reg_f"`, without knowing
where the project was cloned or the package installed.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

PREFIX = "policydsl:"
SUFFIX = ".policy"


def is_library_name(include: str) -> bool:
    """Whether an include names an installed baseline rather than a file."""
    return include.startswith(PREFIX)


def baseline_names() -> list[str]:
    """The names of the installed baselines, sorted."""
    return sorted(path.name.removesuffix(SUFFIX) for path in _baseline_files())


def baseline_path(include: str) -> Path | None:
    """The file of `policydsl:NAME` (the `.policy` suffix may be written),
    or None when no installed baseline has that name."""
    name = include.removeprefix(PREFIX).removesuffix(SUFFIX)
    return next((path for path in _baseline_files() if path.name == name + SUFFIX), None)


def library_directory() -> Path | None:
    """Where the installed baselines are (includes between them stay inside)."""
    files = _baseline_files()
    return files[0].parent if files else None


def decision_schema() -> dict[str, Any]:
    """The JSON Schema every decision `policy run` writes validates against."""
    text = resources.files("policydsl.schemas").joinpath("decision.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _baseline_files() -> list[Path]:
    try:
        root = resources.files("policydsl.baselines")
    except ModuleNotFoundError:  # pragma: no cover - an installation without its data
        return []
    return sorted(Path(str(entry)) for entry in root.iterdir() if entry.name.endswith(SUFFIX) and entry.is_file())
