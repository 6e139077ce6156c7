"""Installed as the package `policydsl.schemas` for `decision.schema.json`
only (pyproject.toml; see policydsl/library.py `decision_schema()`)."""
