"""Syntax highlighting: the Pygments lexer, its use in the CLI, the TextMate
grammar for editors, and the pre-commit hooks manifest.

The lexer is checked against the grammar itself: on the shipped policies and
on a policy that uses every construct, each token Lark reads must get the
matching Pygments class. The TextMate grammar is then checked against the
lexer with a small TextMate-style matcher (earliest match wins, ties go to
the first rule), so the editor and the terminal colour the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import lark
import pytest
import yaml
from click.testing import CliRunner
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
    _TokenType,
)
from rich.console import Console

import policydsl
from policydsl.cli import main
from policydsl.functions import FUNCTIONS
from policydsl.highlight import DATE, KEYWORDS, MONEY, TIME, PolicyLexer, highlight, highlight_fragment
from policydsl.parser import parse

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "policies").glob("*.policy"))
GRAMMAR = Path(policydsl.__file__).with_name("grammar.lark")
VSCODE = ROOT / "editors" / "vscode"
TM_GRAMMAR = VSCODE / "syntaxes" / "policy.tmLanguage.json"
HOOKS = ROOT / ".pre-commit-hooks.yaml"

# Every construct of the grammar, including keywords used as names (which
# the grammar allows: its keywords are contextual).
EVERY = r'''# Every construct of the grammar.
policy "every-construct" version "1.0"
include "base.policy" with { voice = call  message = sms, email }

account {
    id        : text
    due_date  : date
    opened_at : datetime = 2024-01-31T09:30:00+08:00
    version   : int = 3                      # a keyword as a field name
    days      : int = 2 days_left : int = 0
    score     : number = -0.5
    balance   : money = $12.50
    zone_     : zone = "Asia/Shanghai"
    tags      : set<int> = {1, 2}
    kind      : enum(a, b) = a
    note      : text = "say \"hi\""
}

actions { voice : call  message : sms, email  letter }
events { inbound_call }

stages on days_past {
    early  .. 0
    mid   1 .. 30
    late 31 ..
}

segment risky when days_since(due_date) > 7 and not (score < 0.1 or balance == ¥500)
segment soon when due_date <= 2025-06-01 or opened_at < 2025-06-01T00:00:00Z or version >= days

stage mid { allow call, sms when risky  forbid letter when action in tags because "x" }
stage late { allow all }

window call 08:00-12:00, 13:00-21:00 on mon..fri, sat except holidays "CN" because "hours" cite "rule 1"
limit sms 2 per day of message where outcome not in {"failed", "bounced"}
limit call 3 per 24 hours
quiet call for 7 days after "conversation" on call, inbound_call cite "1006.14"
forbid email when local_time() < 09:00 and weekday() == "sun" and hours_since(opened_at) < 1 * 2 + 3 / 4 - 1
'''

SOURCES = [pytest.param(path.read_text(encoding="utf-8"), id=path.name) for path in SHIPPED]
SOURCES.append(pytest.param(EVERY, id="every-construct"))


def tokens(source: str) -> list[tuple[_TokenType, str]]:
    lexer = PolicyLexer(stripnl=False, ensurenl=False)
    return [(kind, value) for kind, value in lexer.get_tokens(source) if kind not in Whitespace]


def token_of(source: str, value: str, occurrence: int = 0) -> _TokenType:
    found = [kind for kind, text in tokens(source) if text == value]
    assert len(found) > occurrence, f"{value!r} is not a token of {source!r}: {tokens(source)}"
    return found[occurrence]


# ------------------------------------------------------------ the lexer


def test_there_are_shipped_policies() -> None:
    assert len(SHIPPED) >= 3


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_every_shipped_policy_lexes_without_error_tokens(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    lexed = list(PolicyLexer().get_tokens(source))
    assert [(kind, value) for kind, value in lexed if kind in Error] == []
    assert "".join(value for _, value in lexed) == source  # nothing lost or added


def test_the_every_construct_policy_parses_and_lexes_cleanly() -> None:
    parse(EVERY, "every.policy")
    assert [token for token in tokens(EVERY) if token[0] in Error] == []


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        # keywords, by kind
        ('policy "p" version "1"', "policy", Keyword.Declaration),
        ('policy "p" version "1"', "version", Keyword.Declaration),
        ("allow sms when risky", "allow", Keyword),
        ("allow sms when risky", "when", Keyword),
        ("forbid all when x", "all", Keyword),
        ('forbid x because "r" cite "c"', "because", Keyword),
        ('forbid x because "r" cite "c"', "cite", Keyword),
        ("when a and not b or c in d", "and", Keyword),
        ("when a and not b or c in d", "not", Keyword),
        ("when a and not b or c in d", "in", Keyword),
        ("id : text", "text", Keyword.Type),
        ("tags : set<text>", "set", Keyword.Type),
        ("kind : enum(a, b)", "enum", Keyword.Type),
        ("x : bool = true", "true", Keyword.Constant),
        ("window a 08:00-21:00 on mon..sat", "mon", Keyword.Constant),
        ("window a 08:00-21:00 on mon..sat", "on", Keyword),
        ("forbid all when action in opted_out", "action", Keyword.Pseudo),
        ("when hours_since(now) > 2", "now", Keyword.Pseudo),
        ("limit sms 1 per day", "day", Keyword),
        ("limit call 7 per 7 days", "days", Keyword),
        ("quiet call for 3 hours after", "hours", Keyword),
        ('limit a 1 per day where outcome not in {"x"}', "outcome", Keyword),
        ('window a 08:00-21:00 except holidays "CN"', "holidays", Keyword),
        # keywords are contextual in the grammar: as names they are names
        ("days : int = 3", "days", Name.Variable),
        ("version : int", "version", Name.Variable),
        ("when version >= 2", "version", Name),
        ("when days_left > 3", "days_left", Name),
        ("when days > 3", "days", Name),
        # names
        ("allow agent_call when high_risk", "agent_call", Name),
        ("segment high_risk when x", "high_risk", Name.Class),
        ("stage M0 { }", "M0", Name.Class),
        ("when days_since(due) > 7", "days_since", Name.Builtin),
        # literals
        ("when balance >= ¥5000", "¥5000", MONEY),
        ("balance : money = $12.50", "$12.50", MONEY),
        ("when b > €3 or b > £4.5", "€3", MONEY),
        ("window call 08:00-21:00", "08:00", TIME),
        ("window call 08:00-21:00", "21:00", TIME),
        ("when local_time() < 09:30", "09:30", TIME),
        ("when due < 2025-06-01", "2025-06-01", DATE),
        ("when at < 2025-06-01T08:00:00Z", "2025-06-01T08:00:00Z", DATE),
        ("when at < 2025-06-01T08:00+08:00", "2025-06-01T08:00+08:00", DATE),
        ("when risk >= 0.7", "0.7", Number.Float),
        ("limit sms 2 per day", "2", Number.Integer),
        ('because "hand to the estate team"', "hand to the estate team", String.Double),
        ('because "say \\"hi\\""', '\\"', String.Escape),
        ("# contact hours, local time", "# contact hours, local time", Comment.Single),
        # operators and punctuation
        ("when a >= 1", ">=", Operator),
        ("when a != b", "!=", Operator),
        ("x : int = 1", "=", Operator),
        ("M1 31 .. 60", "..", Operator),
        ("window a 08:00-21:00", "-", Operator),
        ("tags : set<int>", "<", Punctuation),
        ("when a < 1", "<", Operator),
        ("actions { a, b }", "{", Punctuation),
        ("actions { a, b }", ",", Punctuation),
        ("id : text", ":", Punctuation),
    ],
)
def test_token_classes(source: str, value: str, expected: _TokenType) -> None:
    assert token_of(source, value) == expected


def test_money_time_and_date_fall_back_to_standard_pygments_types() -> None:
    assert MONEY in Number
    assert TIME in DATE
    assert all(kind in Keyword for kind in (Keyword.Declaration, Keyword.Type, Keyword.Constant, Keyword.Pseudo))


def test_a_comment_ends_at_the_line_and_a_hash_in_a_string_is_no_comment() -> None:
    source = 'forbid x because "item #4"   # note\nallow y'
    assert token_of(source, "item #4") in String
    assert token_of(source, "# note") == Comment.Single
    assert token_of(source, "allow") == Keyword


def test_an_unterminated_string_ends_at_the_line() -> None:
    source = 'because "oops\nallow sms'
    assert token_of(source, "oops") in String
    assert token_of(source, "allow") == Keyword


def _grammar_keywords() -> set[str]:
    text = GRAMMAR.read_text(encoding="utf-8")
    words = set(re.findall(r'"([a-z]+)"', text))
    for terminal in ("SIMPLE_TYPE", "UNIT"):
        definition = re.search(rf"^{terminal}(?:\.\d+)?:(.*)$", text, re.MULTILINE)
        assert definition, terminal
        words |= set(re.findall(r"[a-z]+", definition.group(1).split("\\b")[0]))
    return words


def test_the_lexer_knows_every_keyword_of_the_grammar() -> None:
    grammar_words = _grammar_keywords()
    assert {"policy", "allow", "forbid", "window", "limit", "quiet", "int", "zone", "days", "hour"} <= grammar_words
    assert grammar_words <= KEYWORDS
    listed = {
        "policy", "version", "include", "with", "account", "actions", "events", "stages", "on", "stage", "segment",
        "when", "allow", "forbid", "window", "limit", "per", "of", "where", "outcome", "quiet", "for", "after",
        "because", "cite", "except", "holidays", "all", "action", "now", "and", "or", "not", "in", "true", "false",
        "set", "enum", "int", "number", "money", "bool", "text", "date", "datetime", "zone", "day", "days", "hour",
        "hours", "mon", "tue", "wed", "thu", "fri", "sat", "sun",
    }
    assert listed <= KEYWORDS


@cache
def _lark() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr")


def _expected_class(token: lark.Token) -> _TokenType:
    """The Pygments class a Lark token should get."""
    by_type = {
        "STRING": String, "MONEY": MONEY, "INT": Number.Integer, "DECIMAL": Number.Float,
        "DATE": DATE, "DATETIME": DATE, "TIME": TIME, "UNIT": Keyword, "SIMPLE_TYPE": Keyword.Type,
        "NOT": Keyword, "COMP_OP": Operator, "ADD_OP": Operator, "MUL_OP": Operator, "MINUS": Operator,
        "EQUAL": Operator, "LESSTHAN": Punctuation, "MORETHAN": Punctuation,
        "COUNT": Name.Builtin, "LAST_FN": Name.Builtin,  # history aggregates read like the library's functions
    }
    if token.type in by_type:
        return by_type[token.type]
    if token.type == "NAME":
        return Keyword.Constant if str(token) in ("mon", "tue", "wed", "thu", "fri", "sat", "sun") else Name
    if str(token) == "..":
        return Operator
    if str(token) in "{}(),:":
        return Punctuation
    assert str(token).isalpha() and token.type == str(token).upper(), token
    return Keyword  # an anonymous keyword terminal: "policy", "allow", ...


@pytest.mark.parametrize("source", SOURCES)
def test_the_lexer_classifies_every_token_as_the_grammar_reads_it(source: str) -> None:
    lexed = {start: (kind, value) for start, kind, value in
             PolicyLexer(stripnl=False, ensurenl=False).get_tokens_unprocessed(source)}
    checked = 0
    for token in _lark().parse_interactive(source).iter_parse():
        if token.type == "$END":
            continue
        assert token.start_pos in lexed, f"the lexer splits differently at {token!r} (line {token.line})"
        kind, value = lexed[token.start_pos]
        expected = _expected_class(token)
        assert kind in expected, f"line {token.line}: {token.type} {str(token)!r} lexed as {kind}"
        if token.type != "STRING":  # strings are lexed as quote, text, quote
            assert value == str(token), f"line {token.line}: {str(token)!r} lexed as {value!r}"
        checked += 1
    assert checked > 20


def test_pygments_finds_the_lexer_through_the_entry_point() -> None:
    assert any(ep.name == "policy" and ep.value == "policydsl.highlight:PolicyLexer"
               for ep in entry_points(group="pygments.lexers"))
    assert type(get_lexer_by_name("policy")).__name__ == "PolicyLexer"
    assert type(get_lexer_for_filename("ecommerce_consumer_loan.policy")).__name__ == "PolicyLexer"


def test_pyproject_declares_pygments_and_the_entry_point() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"pygments>=2\.15"', text)
    assert '[project.entry-points."pygments.lexers"]\npolicy = "policydsl.highlight:PolicyLexer"' in text


# ------------------------------------------------------------ terminal colours


def _styles(text: Any) -> dict[str, str]:
    return {text.plain[span.start:span.end]: str(span.style) for span in text.spans}


def test_highlight_keeps_the_text_and_styles_tokens() -> None:
    rule = 'limit sms 1 per day where outcome not in {"x"} because "at most ¥5 at 08:00"  # note'
    text = highlight(rule)
    assert text.plain == rule
    styles = _styles(text)
    assert styles["limit"] == "bold magenta"
    assert styles["1"] == "cyan"
    assert "yellow" in styles["at most ¥5 at 08:00"]  # a string, whatever it holds
    assert styles["# note"] == "dim italic"


def test_highlight_money_time_and_date_differ_from_plain_names() -> None:
    styles = _styles(highlight("when b >= ¥500 and t < 08:00 and d < 2025-06-01 and x"))
    assert styles["¥500"] and styles["08:00"] and styles["2025-06-01"]
    assert "x" not in styles


def test_a_fragment_cut_inside_a_string_is_coloured_as_string() -> None:
    line = 'window voice 08:00-21:00 because "contact hours only and never on holidays" cite "art. 17"'
    fragment = "…hours only and never on holidays\" cite \"art…"
    text = highlight_fragment(fragment, line)
    assert text.plain == fragment
    styles = _styles(text)
    assert "yellow" in styles["hours only and never on holidays"]
    assert styles["cite"] == "bold magenta"
    assert highlight_fragment("allow x", "something else").plain == "allow x"


def _render(renderable: Any, terminal: bool) -> str:
    console = Console(force_terminal=terminal, color_system="standard" if terminal else None, width=200,
                      highlight=False)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def test_highlighted_text_is_plain_when_not_a_terminal() -> None:
    rule = "allow legal_review when balance >= ¥5000"
    assert _render(highlight(rule), terminal=False) == rule + "\n"
    coloured = _render(highlight(rule), terminal=True)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == rule + "\n"


EXPLAIN = ["explain", str(ROOT / "policies" / "ecommerce_consumer_loan.policy"), "--now", "2025-06-04T02:00:00Z",
           "--account", "id=A1,days_past_due=120,balance=8000.00"]
COLOUR = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": None, "COLUMNS": "200"}
PLAIN = {"FORCE_COLOR": None, "NO_COLOR": None, "COLUMNS": "200"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_explain_colours_the_quoted_rules_only_on_a_terminal() -> None:
    plain = CliRunner().invoke(main, EXPLAIN, env=PLAIN)
    assert plain.exit_code == 0, plain.output
    assert "\x1b" not in plain.stdout
    assert "allow legal_review when balance >= ¥5000" in plain.stdout
    coloured = CliRunner().invoke(main, EXPLAIN, env=COLOUR)
    assert coloured.exit_code == 0, coloured.output
    assert "\x1b[1;35mallow\x1b[0m" in coloured.stdout  # the keyword of the quoted rule
    assert ANSI.sub("", coloured.stdout) == plain.stdout  # colour is all that differs


def test_check_colours_the_excerpt_only_on_a_terminal(tmp_path: Path) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text('policy "b" version "1"\nactions { sms }\nallow sms when 3 >\n', encoding="utf-8")
    plain = CliRunner().invoke(main, ["check", str(broken)], env=PLAIN)
    assert plain.exit_code == 1
    assert "\x1b" not in plain.stderr
    assert "   3 | allow sms when 3 >" in plain.stderr
    coloured = CliRunner().invoke(main, ["check", str(broken)], env=COLOUR)
    assert coloured.exit_code == 1
    assert "\x1b[1;35mallow\x1b[0m" in coloured.stderr
    assert ANSI.sub("", coloured.stderr) == plain.stderr


# ------------------------------------------------------------ the TextMate grammar


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _regexes(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end", "while") and isinstance(value, str):
                yield key, value
            else:
                yield from _regexes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _regexes(item)


# Oniguruma syntax Python's `re` lacks: \G \h \H \K \R \X \z \y, \p{..}, \k<..>, \g<..>, (?<name>..), (?~..)
ONIGURUMA_ONLY = re.compile(r"\\[GhHKRXzy]|\\[pP]\{|\\[kg]<|\(\?<(?![=!])|\(\?~")


def test_the_textmate_grammar_loads_and_names_its_scope() -> None:
    grammar = _load(TM_GRAMMAR)
    assert grammar["scopeName"] == "source.policy"
    assert "policy" in grammar["fileTypes"]
    repository = grammar["repository"]
    includes = [value for key, value in _walk_items(grammar) if key == "include"]
    assert includes
    for include in includes:
        assert include.startswith("#") and include[1:] in repository, include
    names = [value for key, value in _walk_items(grammar) if key == "name" and isinstance(value, str)]
    assert names and all(name.endswith(".policy") for name in names if "." in name)


def _walk_items(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk_items(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_items(item)


def test_the_textmate_regexes_compile_with_python_re() -> None:
    regexes = list(_regexes(_load(TM_GRAMMAR)))
    assert len(regexes) > 20
    plain = [pattern for _, pattern in regexes if not ONIGURUMA_ONLY.search(pattern)]
    for pattern in plain:
        re.compile(pattern)
    assert len(plain) == len(regexes), "the grammar keeps to syntax both Oniguruma and Python read"


def test_the_textmate_grammar_lists_the_builtin_functions() -> None:
    rules = [value for key, value in _walk_items(_load(TM_GRAMMAR)) if key == "patterns"]
    (builtin,) = [rule for patterns in rules for rule in patterns
                  if rule.get("name", "").startswith("support.function.builtin.")]
    match = re.fullmatch(r"\\b\(\?:([a-z_|]+)\)\\b\(\?=\\s\*\\\(\)", builtin["match"])
    assert match, builtin["match"]
    assert set(match.group(1).split("|")) == set(FUNCTIONS)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _flatten(patterns: list[dict[str, Any]], repository: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for pattern in patterns:
        if "include" in pattern:
            entry = repository[pattern["include"][1:]]
            rules.extend(_flatten(entry["patterns"], repository) if "match" not in entry and "begin" not in entry
                         else [entry])
        else:
            rules.append(pattern)
    return rules


def _first_match(rules: list[dict[str, Any]], line: str, pos: int) -> tuple[dict[str, Any], re.Match[str]] | None:
    """TextMate's choice: the match that starts first; on a tie, the earlier rule."""
    best: tuple[dict[str, Any], re.Match[str]] | None = None
    for rule in rules:
        match = _compiled(rule.get("match") or rule["begin"]).search(line, pos)
        if match and (best is None or match.start() < best[1].start()):
            best = (rule, match)
    return best


def _tm_scopes(line: str, grammar: dict[str, Any]) -> list[str]:
    """The scopes of each character of one line, for grammars whose
    begin/end rules close on the line they open (this one's do)."""
    repository = grammar["repository"]
    rules = _flatten(grammar["patterns"], repository)
    scopes = [""] * len(line)

    def paint(start: int, end: int, name: str | None, captures: dict[str, Any], match: re.Match[str]) -> None:
        for index in range(start, end):
            scopes[index] = f"{scopes[index]} {name}".strip() if name else scopes[index]
        for group, capture in captures.items():
            if match.group(int(group)) is not None:
                for index in range(match.start(int(group)), match.end(int(group))):
                    scopes[index] = f"{scopes[index]} {capture['name']}".strip()

    pos = 0
    while pos < len(line):
        found = _first_match(rules, line, pos)
        if found is None:
            break
        rule, match = found
        if "match" in rule:
            paint(match.start(), match.end(), rule.get("name"), rule.get("captures", {}), match)
            pos = max(match.end(), match.start() + 1)
            continue
        paint(match.start(), match.end(), rule.get("name"), rule.get("beginCaptures", {}), match)
        inner = _flatten(rule.get("patterns", []), repository)
        pos = match.end()
        while True:
            end = _compiled(rule["end"]).search(line, pos)
            nested = _first_match(inner, line, pos)
            if nested and (end is None or nested[1].start() < end.start()):
                paint(pos, nested[1].end(), rule.get("name"), {}, nested[1])
                paint(nested[1].start(), nested[1].end(), nested[0].get("name"), nested[0].get("captures", {}),
                      nested[1])
                pos = max(nested[1].end(), pos + 1)
                continue
            stop = end.end() if end else len(line)
            paint(pos, stop, rule.get("name"), rule.get("endCaptures", {}), end) if end else \
                paint(pos, stop, rule.get("name"), {}, match)
            pos = max(stop, pos + 1)
            break
    return scopes


# Which TextMate scope each Pygments class corresponds to (most specific first).
SCOPE_OF = [
    (String.Escape, "constant.character.escape."), (Comment, "comment."), (String, "string."),
    (TIME, "constant.other.time."), (DATE, "constant.other.date"), (MONEY, "constant.numeric.money."),
    (Number.Float, "constant.numeric.decimal."), (Number.Integer, "constant.numeric.integer."),
    (Keyword.Type, "storage.type."), (Keyword.Constant, "constant.language."),
    (Keyword.Pseudo, "variable.language."), (Keyword.Declaration, "keyword.other.declaration."),
    (Keyword, "keyword."), (Name.Variable, "variable.other.declaration."), (Name.Class, "entity.name.type."),
    (Name.Builtin, "support.function."), (Name.Function, "entity.name.function."), (Name.Label, "entity.name.label."),
    (Name, "variable.other.policy"), (Operator, "keyword.operator."), (Punctuation, "punctuation."),
]


@pytest.mark.parametrize("source", SOURCES)
def test_the_textmate_grammar_colours_like_the_lexer(source: str) -> None:
    grammar = _load(TM_GRAMMAR)
    lexer = PolicyLexer(stripnl=False, ensurenl=False)
    compared = 0
    for number, line in enumerate(source.split("\n"), 1):
        scopes = _tm_scopes(line, grammar)
        for start, kind, value in lexer.get_tokens_unprocessed(line):
            if kind in Whitespace or not value.strip():
                continue
            expected = next(scope for token_class, scope in SCOPE_OF if kind in token_class)
            got = scopes[start].split()
            assert any(scope.startswith(expected) for scope in got), \
                f"line {number}: {value!r} is {kind} for Pygments but {got} in the TextMate grammar"
            compared += 1
    assert compared > 20


def test_the_vscode_extension_manifest_contributes_the_language_and_grammar() -> None:
    manifest = _load(VSCODE / "package.json")
    for key in ("name", "publisher", "version", "engines"):
        assert manifest[key], key
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "policy" and ".policy" in language["extensions"]
    assert (VSCODE / language["configuration"]).is_file()
    (grammar,) = manifest["contributes"]["grammars"]
    assert grammar["language"] == "policy" and grammar["scopeName"] == "source.policy"
    assert (VSCODE / grammar["path"]).resolve() == TM_GRAMMAR.resolve()
    for packaged in manifest.get("files", []):
        assert (VSCODE / packaged).exists(), packaged


def test_the_vscode_language_configuration() -> None:
    configuration = _load(VSCODE / "language-configuration.json")
    assert configuration["comments"]["lineComment"] == "#"
    assert ["{", "}"] in configuration["brackets"] and ["(", ")"] in configuration["brackets"]
    quote = next(pair for pair in configuration["autoClosingPairs"] if pair["open"] == '"')
    assert quote["close"] == '"' and "string" in quote["notIn"]
    increase = re.compile(configuration["indentationRules"]["increaseIndentPattern"])
    decrease = re.compile(configuration["indentationRules"]["decreaseIndentPattern"])
    assert increase.search("account {") and increase.search('include "b.policy" with {  # map')
    assert not increase.search("stage M0 { allow sms }")
    assert decrease.search("    }")


def test_editors_readme_covers_vscode_and_other_editors() -> None:
    text = (ROOT / "editors" / "README.md").read_text(encoding="utf-8")
    for word in ("VS Code", "Sublime", "TextMate", "Zed", "Helix", "JetBrains", "policy.tmLanguage.json"):
        assert word in text, word


# ------------------------------------------------------------ pre-commit


def test_the_pre_commit_hooks_load_and_name_existing_commands() -> None:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert [hook["id"] for hook in hooks] == ["policy-check", "policy-fmt"]
    for hook in hooks:
        assert hook["language"] == "python"
        assert hook["name"]
        files = re.compile(hook["files"])
        assert files.search("policies/us_reg_f.policy") and not files.search("policy.py")
        program, command, *options = hook["entry"].split()
        assert program == "policy"
        assert command in main.commands, f"{hook['id']}: no `policy {command}` command"
        declared = {flag for param in main.commands[command].params if isinstance(param, click.Option)
                    for flag in param.opts}
        assert set(options) <= declared, f"{hook['id']}: {options} not all options of `policy {command}`"
    entries = {hook["id"]: hook["entry"] for hook in hooks}
    assert entries == {"policy-check": "policy check --strict", "policy-fmt": "policy fmt --check"}
