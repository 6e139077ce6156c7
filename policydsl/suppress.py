"""Suppressing a warning on purpose, reviewably: `# policy: ignore[W303]`.

A comment naming one or more warning codes silences those warnings for the
item it sits on: written at the end of a line, the item (rule, segment,
field, action line, …) that holds that line; on a line of its own, the item
that starts on the next line of code. The whole item is covered, all its
continuation lines included, so the comment still applies after `policy fmt`
moves it to the end of a broken rule's last line.

Suppressed warnings are not shown and do not fail `--strict`, but they are
kept (`Model.suppressed`, `policy check --show-suppressed`), and a
suppression that silences nothing, names an unknown code or names an error
(errors cannot be silenced) is itself reported as W310, so a stale
suppression cannot hide the next, different problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from . import nodes as n
from .errors import Diagnostic

_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')
_IGNORE = re.compile(r"#\s*policy:\s*ignore\[([^\]]*)\]")


@dataclass(frozen=True)
class Suppression:
    """One `ignore[...]` comment: its codes, where it is written, and the
    lines of the item it covers."""

    codes: tuple[str, ...]
    span: n.Span
    first_line: int
    last_line: int

    def covers(self, diagnostic: Diagnostic) -> bool:
        span = diagnostic.span
        return diagnostic.code in self.codes and span.file == self.span.file \
            and self.first_line <= span.line <= self.last_line


def apply(policy: n.PolicyFile, diagnostics: list[Diagnostic], codes: dict[str, str],
          report_unused: bool) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """(the diagnostics still shown, those suppressed). Only warnings of the
    top-level file are suppressed: a baseline's are reported when it is
    checked on its own, with its own comments. W310 findings are added to
    the shown ones; unused suppressions only when `report_unused` (the
    lints did not run if there were errors, so nothing could be matched)."""
    found = list(suppressions(policy))
    shown: list[Diagnostic] = []
    suppressed: list[Diagnostic] = []
    used: set[tuple[Suppression, str]] = set()
    for diagnostic in diagnostics:
        matching = [s for s in found if diagnostic.severity == "warning" and s.covers(diagnostic)]
        used.update((s, diagnostic.code) for s in matching)
        (suppressed if matching else shown).append(diagnostic)
    for suppression in found:
        for code in suppression.codes:
            problem = _problem(code, codes) or (None if (suppression, code) in used or not report_unused
                                                else f"`ignore[{code}]` suppresses nothing here")
            if problem:
                shown.append(Diagnostic("W310", "warning", problem, suppression.span))
    return shown, suppressed


def _problem(code: str, codes: dict[str, str]) -> str | None:
    if code not in codes:
        return f"`ignore[{code}]`: there is no diagnostic {code!r}"
    if code.startswith("E"):
        return f"`ignore[{code}]`: errors cannot be suppressed, only warnings"
    return None


def suppressions(policy: n.PolicyFile) -> Iterator[Suppression]:
    """Every `# policy: ignore[...]` comment of the file, with what it covers."""
    lines = policy.source.split("\n")
    extents = sorted(_extents(policy))
    for number, line in enumerate(lines, 1):
        for match in _COMMENT.finditer(line):
            ignore = _IGNORE.match(match.group())
            if ignore is None:
                continue
            codes = tuple(code.strip() for code in ignore.group(1).split(",") if code.strip())
            own_line = not line[:match.start()].strip()
            target = _next_code_line(lines, number) if own_line else number
            first, last = _item_at(extents, target)
            span = n.Span(policy.path, number, match.start() + 1, number, match.end() + 1)
            yield Suppression(codes, span, first, last)


def _next_code_line(lines: list[str], number: int) -> int:
    for following in range(number + 1, len(lines) + 1):
        text = lines[following - 1].strip()
        if text and not text.startswith("#"):
            return following
    return number


def _item_at(extents: list[tuple[int, int]], line: int) -> tuple[int, int]:
    """The innermost item holding `line` (a rule rather than its stage block)."""
    holding = [(first, last) for first, last in extents if first <= line <= last]
    return min(holding, key=lambda extent: extent[1] - extent[0]) if holding else (line, line)


def _extents(policy: n.PolicyFile) -> Iterator[tuple[int, int]]:
    items: list[object] = [policy.header, *policy.includes, *policy.fields, *policy.actions, *policy.events,
                           *policy.outcomes, *policy.segments, *policy.rules]
    for stages in policy.stages:
        items.extend([stages, *stages.ranges])
    for block in policy.stage_blocks:
        items.extend([block, *block.rules])
    for item in items:
        span: n.Span = item.span  # type: ignore[attr-defined]
        yield span.line, span.end_line
