"""Syntax highlighting for `.policy` files.

`PolicyLexer` is a Pygments lexer, registered under the `pygments.lexers`
entry point as `policy`, so Sphinx, MkDocs, `pygmentize -l policy` and
anything else built on Pygments can colour policies. `highlight()` turns
policy text into a `rich.text.Text` for the terminal (`policy explain`,
`policy check`); rich drops the colours by itself when the output is not a
terminal.

The lexer follows `grammar.lark` token for token (a test checks it against
Lark's own tokens on the shipped policies). The grammar's keywords are
contextual: a field may be called `version`, `outcome`, `outcomes` or
`days`. The lexer reads a word followed by `:` as a name (a field or
action-group declaration, or a rule's name when a rule keyword follows),
`day(s)`/`hour(s)` as a unit only after a number or `per`, and `version`,
`with`, `outcomes`, `outcome` and `holidays` as keywords only where the
grammar has them (`version "…"`, `with {`, `outcomes {`, `where outcome`,
`except holidays`, and the `holidays "CN" closed` line of a window's hours
table); any other keyword word is shown as a keyword wherever it stands.
"""

from __future__ import annotations

from typing import ClassVar

# No type stubs are required for Pygments (types-Pygments is optional).
from pygments.lexer import RegexLexer, bygroups, default, words  # type: ignore[import-untyped, unused-ignore]
from pygments.token import (  # type: ignore[import-untyped, unused-ignore]
    Comment,
    Error,
    Keyword,
    Literal,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
    _TokenType,
)
from rich.text import Text

from .functions import FUNCTIONS
from .nodes import WEEKDAYS

__all__ = [
    "DATE",
    "MONEY",
    "TIME",
    "PolicyLexer",
    "highlight",
    "highlight_fragment",
]

# Token types Pygments has no standard name for. Formatters and styles fall
# back to the parent (`Number`, `Literal.Date`) for them.
MONEY = Number.Money
DATE = Literal.Date  # dates and datetimes
TIME = Literal.Date.Time  # 08:00

DECLARATIONS = ("policy", "version", "include", "with", "account", "actions", "events", "stages", "stage",
                "segment", "outcomes", "experiment", "salt", "rest")
RULE_WORDS = ("allow", "forbid", "window", "limit", "quiet", "when", "on", "per", "of", "where", "outcome",
              "for", "after", "because", "cite", "except", "holidays", "all", "closed")
OPERATOR_WORDS = ("and", "or", "not", "in")
TYPES = ("int", "number", "money", "bool", "text", "date", "datetime", "zone", "set", "enum")
CONSTANTS = ("true", "false")
DAY_NAMES = WEEKDAYS
PSEUDO = ("action", "now")
UNITS = ("days", "day", "hours", "hour")
HISTORY = ("count", "streak", "days_since_last", "hours_since_last")  # aggregates, shown as built-ins before `(`
#: Every word the lexer shows as a keyword.
KEYWORDS = frozenset(DECLARATIONS + RULE_WORDS + OPERATOR_WORDS + TYPES + CONSTANTS + DAY_NAMES + PSEUDO + UNITS
                     + HISTORY)

# keywords in one place of the grammar only
_PLACED = ("version", "with", "outcome", "holidays", "outcomes", "salt", "rest")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_UNIT = r"(days|day|hours|hour)\b(?!\s*:)"  # as in grammar.lark: `days : int` declares a field
# `holidays` opening a line of a window's hours table: a calendar, then hours or `closed`
_HOLIDAY_LINE = r'holidays\b(?=\s*"|\s+' + _NAME + r'\s+(closed\b|[0-9]{2}:[0-9]{2}))'


class PolicyLexer(RegexLexer):  # type: ignore[misc, unused-ignore]
    """Lexer for policydsl `.policy` files (debt-collection policies)."""

    name = "Policy"
    aliases: ClassVar[list[str]] = ["policy", "policydsl"]
    filenames: ClassVar[list[str]] = ["*.policy"]
    mimetypes: ClassVar[list[str]] = ["text/x-policy"]

    tokens: ClassVar[dict[str, list[object]]] = {
        "root": [
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"', String.Double, "string"),
            # literals, longest first, as the grammar's terminal priorities order them
            (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})", DATE),
            (r"[0-9]{4}-[0-9]{2}-[0-9]{2}", DATE),
            (r"[0-9]{2}:[0-9]{2}", TIME),
            (r"[0-9]+(\.[0-9]+)?%", Number),  # an experiment group's share
            (r"[$¥€£][0-9]+(\.[0-9]+)?", MONEY),
            (r"[0-9]+\.[0-9]+", Number.Float),
            (r"([0-9]+)(\s*)" + _UNIT, bygroups(Number.Integer, Whitespace, Keyword)),
            (r"[0-9]+", Number.Integer),
            (r"(per)(\s+)" + _UNIT, bygroups(Keyword, Whitespace, Keyword)),
            # `set<text>`: the angle brackets are punctuation here, not comparisons
            (r"(set)(\s*)(<)(\s*)(" + _NAME + r")(\s*)(>)",
             bygroups(Keyword.Type, Whitespace, Punctuation, Whitespace, Keyword.Type, Whitespace, Punctuation)),
            # a word before `:` and a rule keyword names the rule (its stable id)
            (r"(" + _NAME + r")(\s*)(:)(?=\s*(?:allow|forbid|window|limit|quiet)\b)",
             bygroups(Name.Label, Whitespace, Punctuation)),
            # a word before `:` declares a field or an action group, whatever it is called
            (_NAME + r"(?=\s*:)", Name.Variable),
            (r"(segment|stage|experiment)(\s+)(" + _NAME + ")", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r'salt\b(?=\s*")', Keyword.Declaration),
            (r"(" + _NAME + r")(\s+)(rest)\b(?=\s*(?:#[^\n]*)?\n)",
             bygroups(Name.Class, Whitespace, Keyword.Declaration)),
            # keywords the grammar has only in one place, so that elsewhere they may be names
            (r'version\b(?=\s*")', Keyword.Declaration),
            (r"with\b(?=\s*\{)", Keyword.Declaration),
            (r"outcomes\b(?=\s*\{)", Keyword.Declaration),
            (r"(where)(\s+)(outcome)\b", bygroups(Keyword, Whitespace, Keyword)),
            (r"(except)(\s+)(holidays)\b", bygroups(Keyword, Whitespace, Keyword)),
            (_HOLIDAY_LINE, Keyword),
            (words(tuple(w for w in DECLARATIONS if w not in _PLACED), suffix=r"\b"), Keyword.Declaration),
            (words(TYPES, suffix=r"\b"), Keyword.Type),
            (words(CONSTANTS + DAY_NAMES, suffix=r"\b"), Keyword.Constant),
            (words(PSEUDO, suffix=r"\b"), Keyword.Pseudo),
            (words(tuple(w for w in RULE_WORDS + OPERATOR_WORDS if w not in _PLACED), suffix=r"\b"), Keyword),
            (words(tuple(FUNCTIONS) + HISTORY, suffix=r"(?=\s*\()"), Name.Builtin),
            (_NAME + r"(?=\s*\()", Name.Function),
            (_NAME, Name),
            (r"\.\.", Operator),
            (r"==|!=|<=|>=|<|>|=|\+|-|\*|/", Operator),
            (r"[{}(),:]", Punctuation),
        ],
        "string": [
            (r'[^"\\\n]+', String.Double),
            (r"\\.", String.Escape),
            (r'"', String.Double, "#pop"),
            default("#pop"),  # unterminated: the line ends the string
        ],
    }


# Colours for the terminal, in the terminal's own palette; a token type
# without an entry takes its parent's.
STYLES: dict[_TokenType, str] = {
    Comment: "dim italic",
    Keyword: "bold magenta",
    Keyword.Type: "bright_blue",
    Keyword.Constant: "magenta",
    Keyword.Pseudo: "italic magenta",
    Name.Builtin: "blue",
    Name.Function: "blue",
    Name.Class: "bold",
    Name.Label: "bold underline",
    String: "yellow",
    String.Escape: "bold yellow",
    Number: "cyan",
    MONEY: "bold cyan",
    Literal.Date: "bright_cyan",
    Operator: "bold",
    Error: "",
}


def _style(token_type: _TokenType) -> str:
    while token_type not in STYLES and token_type.parent is not None:
        token_type = token_type.parent
    return STYLES.get(token_type, "")


def highlight(source: str) -> Text:
    """`source` (policy text, possibly only a fragment of a line) as rich
    `Text`, coloured by token."""
    text = Text()
    for token_type, value in PolicyLexer(stripnl=False, ensurenl=False).get_tokens(source):
        text.append(value, style=_style(token_type) or None)
    return text


def highlight_fragment(fragment: str, line: str) -> Text:
    """`fragment`, a piece of the source `line`, coloured as it is in the
    whole line, so that a piece cut inside a string still reads as a string.
    An excerpt marks a cut with `…` at either end; a fragment not found in
    the line is highlighted on its own."""
    start = line.find(fragment)
    if start >= 0:
        return highlight(line)[start:start + len(fragment)]
    lead = fragment.startswith("…")
    trail = fragment.endswith("…") and len(fragment) > int(lead)
    core = fragment[int(lead):len(fragment) - int(trail)]
    start = line.find(core)
    if start < 0:
        return highlight(fragment)
    return Text.assemble("…" if lead else "", highlight(line)[start:start + len(core)], "…" if trail else "")
