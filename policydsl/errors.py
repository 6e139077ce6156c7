"""The project's own error types.

Every failure a user can cause (a broken policy, a bad account row, a bad
history file) is reported through `PolicyError` or one of its subclasses, with
a position where one exists, so no caller ever has to catch a Lark, csv or
zoneinfo exception.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from functools import lru_cache

from .nodes import Span


class PolicyError(Exception):
    """Base of every error policydsl raises on purpose."""


@dataclass(frozen=True)
class Diagnostic:
    """One finding of the parser or checker: a stable code, a severity
    ("error" or "warning"), where, and what in words."""

    code: str
    severity: str
    message: str
    span: Span

    def render(self, source: str | None = None) -> str:
        """`file:line:col: severity[code]: message`, then the line and a caret."""
        head = (
            f"{self.span.file}:{self.span.line}:{self.span.column}: "
            f"{self.severity}[{self.code}]: {self.message}"
        )
        if source is None:
            return head
        return head + "\n" + excerpt(source, self.span)


_EXCERPT_WIDTH = 100


@lru_cache(maxsize=8)
def source_lines(source: str) -> tuple[str, ...]:
    """The lines of a policy source, split once: excerpts, quoted rule texts
    and outcome positions are taken for every diagnostic and rule, and
    splitting the whole file for each made a large policy quadratic."""
    return tuple(source.split("\n"))


def excerpt(source: str, span: Span) -> str:
    """The source line of `span` with a caret under its first column (and
    tildes to its end when the span stays on that line)."""
    lines = source_lines(source)
    if not 1 <= span.line <= len(lines):
        return ""
    line = lines[span.line - 1].expandtabs(1)
    column = span.column
    if len(line) > _EXCERPT_WIDTH:  # keep a long line readable around the caret
        start = max(0, min(column - _EXCERPT_WIDTH // 2, len(line) - _EXCERPT_WIDTH))
        cut_end = start + _EXCERPT_WIDTH < len(line)
        line = ("…" if start else "") + line[start:start + _EXCERPT_WIDTH] + ("…" if cut_end else "")
        column = column - start + (1 if start else 0)
    gutter = f"{span.line:>4} | "
    width = 1
    if span.end_line == span.line and span.end_column > span.column:
        width = min(span.end_column - span.column, max(1, len(line) - column + 1))
    marker = " " * (len(gutter) - 2) + "| " + " " * (column - 1) + "^" + "~" * (width - 1)
    return f"{gutter}{line}\n{marker}"


class PolicySyntaxError(PolicyError):
    """The text is not a well-formed policy (or could not be read)."""

    def __init__(self, diagnostic: Diagnostic, source: str | None) -> None:
        self.diagnostic = diagnostic
        self.source = source
        super().__init__(diagnostic.render(source))

    @property
    def span(self) -> Span:
        return self.diagnostic.span


class PolicyCheckError(PolicyError):
    """The policy parsed but the checker found errors; all of them are kept."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str]) -> None:
        self.diagnostics = diagnostics
        self.sources = sources
        errors = [d for d in diagnostics if d.severity == "error"]
        text = "\n".join(d.render(sources.get(d.span.file)) for d in errors)
        super().__init__(text)


class AccountError(PolicyError):
    """An account value that does not fit the policy's schema."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        shown = "missing" if value is None else _shorten(shown_value(value))
        super().__init__(f"field {field!r}: {shown}; expected {expected}")


class HistoryError(PolicyError):
    """A contact-history record that cannot be read."""


def shown_value(value: object) -> str:
    """`repr(value)`, except for the values whose repr itself fails: Python
    refuses to turn an int of over 4,300 digits into text."""
    if isinstance(value, int) and value.bit_length() > 4000 * 3.33:
        return f"a whole number of about {int(value.bit_length() * 0.30103):,} digits"
    try:
        return repr(value)
    except ValueError:
        return f"a {type(value).__name__} too large to show"


def _shorten(text: str, limit: int = 80) -> str:
    """Bad values are echoed in errors; a 1 MB cell must not become a 1 MB message."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


class InputTypeError(PolicyError, TypeError):
    """An API argument of the wrong kind (a string for `now`, a tuple in the
    history). A `TypeError` too, so callers that caught Python's own error
    keep working."""


class InputValueError(PolicyError, ValueError):
    """An API argument of the right kind with a value the evaluator cannot use
    (a `now` or a contact time without an offset). A `ValueError` too, which
    is what these inputs raised before."""


class UnknownActionError(PolicyError, ValueError):
    """A decision asked about an action its policy does not declare: answering
    `False` or `None` would read as "blocked" or "not by time alone"."""

    def __init__(self, action: str, actions: tuple[str, ...]) -> None:
        self.action = action
        super().__init__(f"{action!r} is not an action of this policy (its actions: {', '.join(actions)})")


class PolicyNotFoundError(PolicySyntaxError, FileNotFoundError):
    """`load_policy` was given a path where there is no file. A
    `PolicySyntaxError` (E002, as the CLI prints it) and a `FileNotFoundError`,
    so callers can tell "no such file" from "a broken policy"."""

    def __init__(self, diagnostic: Diagnostic, source: str | None) -> None:
        super().__init__(diagnostic, source)
        self.errno = errno.ENOENT
        self.filename = diagnostic.span.file

    def __str__(self) -> str:
        return self.diagnostic.render(self.source)


class RefusedInputError(AccountError):
    """An account the API refuses as a whole (a key that is no field under
    `strict=True`, a contact of another account). An `AccountError`, so it
    becomes an error decision like any other bad account value."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        self.expected = message
        PolicyError.__init__(self, message)
