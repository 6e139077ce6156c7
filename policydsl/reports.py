"""Diagnostics in the formats CI systems read: JSON, SARIF 2.1.0 and GitHub
workflow commands. Text output, with colour and excerpts, lives in cli.py.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

from . import __version__
from .checker import CODES
from .errors import Diagnostic

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
DOCS = "https://github.com/policydsl/policydsl/blob/main/docs/lints.md"


def as_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([{
        "file": d.span.file, "line": d.span.line, "column": d.span.column,
        "end_line": d.span.end_line, "end_column": d.span.end_column,
        "code": d.code, "severity": d.severity, "message": d.message,
    } for d in diagnostics], indent=2, ensure_ascii=False)


def as_github(diagnostics: list[Diagnostic]) -> str:
    """Workflow commands: GitHub shows them as annotations on the diff."""
    lines = []
    for d in diagnostics:
        message = d.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        file = d.span.file.replace("%", "%25").replace(",", "%2C").replace(":", "%3A")
        lines.append(f"::{d.severity} file={file},line={d.span.line},col={d.span.column},title={d.code}::{message}")
    return "\n".join(lines)


def as_sarif(diagnostics: list[Diagnostic]) -> str:
    """One SARIF run; every code of the tool is a rule, so code scanning can
    show its description even for results not present in this run."""
    codes = sorted(CODES)
    rules = [{
        "id": code,
        "name": _rule_name(CODES[code]),
        "shortDescription": {"text": CODES[code]},
        "helpUri": f"{DOCS}#{code.lower()}",
        "defaultConfiguration": {"level": "error" if code.startswith("E") else "warning"},
    } for code in codes]
    results: list[dict[str, Any]] = [{
        "ruleId": d.code,
        "ruleIndex": codes.index(d.code) if d.code in CODES else -1,
        "level": "error" if d.severity == "error" else "warning",
        "message": {"text": d.message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": PurePath(d.span.file).as_posix()},
            "region": _region(d),
        }}],
    } for d in diagnostics]
    for result in results:
        if result["ruleIndex"] < 0:
            del result["ruleIndex"]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "policydsl", "version": __version__, "informationUri": DOCS,
                                "rules": rules}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(log, indent=2, ensure_ascii=False)


def _region(d: Diagnostic) -> dict[str, int]:
    """SARIF regions end after they start; a point span covers one column."""
    span = d.span
    end_line, end_column = span.end_line, span.end_column
    if (end_line, end_column) <= (span.line, span.column):
        end_line, end_column = span.line, span.column + 1
    return {"startLine": span.line, "startColumn": span.column, "endLine": end_line, "endColumn": end_column}


def _rule_name(description: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in description).split()
    return "".join(word[:1].upper() + word[1:] for word in words)
