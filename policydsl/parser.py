"""Text to syntax tree (`nodes.PolicyFile`), with errors a policy author can act on.

The grammar lives in `grammar.lark` (LALR). This module turns Lark's parse
tree into frozen nodes with spans, and Lark's exceptions into a
`PolicySyntaxError` that says, in words, what was expected at that point.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from . import nodes as n
from .errors import Diagnostic, PolicySyntaxError

# One policy file, and a policy with everything it includes: about 16 times the largest shipped policy with its
# baselines, and small enough that `policy check` of the costliest text within it (Lark's parse is most of the
# work) stays under 5 seconds on one core (docs/reliability.md).
MAX_SOURCE_BYTES = 150_000
MAX_NAME_LENGTH = 64
MAX_NESTING = 64
MAX_TREE_DEPTH = 100

DAY_NAMES = n.WEEKDAYS

# How expected tokens read to a policy author. Anything not listed is shown
# as its literal text in quotes.
_TOKEN_WORDS = {
    "NAME": "a name",
    "INT": "a whole number",
    "DECIMAL": "a decimal number",
    "MONEY": "an amount such as ¥500",
    "PERCENT": "a share such as 10%",
    "STRING": 'a quoted text such as "reason"',
    "DATE": "a date such as 2025-06-01",
    "DATETIME": "an instant such as 2025-06-01T08:00:00Z",
    "TIME": "a time such as 08:00",
    "UNIT": "a unit: day(s) or hour(s)",
    "SIMPLE_TYPE": "a type (int, number, money, bool, text, date, datetime, zone)",
    "COMP_OP": "a comparison (==, !=, <, <=, >, >=)",
    "ADD_OP": "+ or -",
    "MUL_OP": "* or /",
    "MINUS": "-",
    "NOT": "not",
    "$END": "the end of the file",
}

# Whole situations that deserve one phrase rather than a list of tokens.
_PHRASES = (
    ({"INT", "MINUS", "DOTDOT"}, "a stage range such as 31 .. 60"),
    ({"TIME"}, "a time range such as 08:00-21:00"),
    ({"PERCENT", "REST"}, "a share such as 10% or `rest`"),
    ({"SIMPLE_TYPE", "SET", "ENUM"}, "a type such as int, money, set<text> or enum(a, b)"),
)


@lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    """The LALR parser, built once per process and its tables kept between
    processes: building them is a fifth of a short `policy check`, and of
    every `--jobs` worker's start."""
    grammar = Path(__file__).with_name("grammar.lark").read_text(encoding="utf-8")
    cache = _cache_file()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                     cache=str(cache) if cache is not None else False)


def _cache_file() -> Path | None:
    """Where Lark may keep the parser tables: a directory of this user's,
    private to them (Lark's cache is a pickle, so a file others can write
    would let them run code here); None, and no cache, when there is none.
    Lark names the file by the grammar, its options and its own version,
    and rebuilds on any problem reading it."""
    if os.environ.get("POLICYDSL_NO_CACHE"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = base / "policydsl"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return directory / f"grammar-lark-{lark.__version__}.cache"


def parse(source: str, path: str = "<policy>") -> n.PolicyFile:
    """Parse one policy file (includes are not followed here, see loader)."""
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise _error(path, source, 1, 1, f"policy file is larger than {MAX_SOURCE_BYTES} bytes")
    _check_nesting(source, path)
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, path) from None
    _check_depth(tree, source, path)
    try:
        return _ToNodes(path, source).transform(tree)  # type: ignore[no-any-return]
    except VisitError as exc:
        if isinstance(exc.orig_exc, PolicySyntaxError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, (ValueError, OverflowError)):  # e.g. a 5000-digit number
            meta = getattr(exc.obj, "meta", None)
            line, column = (meta.line, meta.column) if meta is not None and not meta.empty else (1, 1)
            raise _error(path, source, line, column, "number out of range") from None
        if isinstance(exc.orig_exc, RecursionError):
            raise _error(path, source, 1, 1, "expression is nested too deeply") from None
        raise
    except RecursionError:
        raise _error(path, source, 1, 1, "expression is nested too deeply") from None


def _check_depth(tree: lark.Tree, source: str, path: str) -> None:  # type: ignore[type-arg]
    """Refuse a syntax tree deeper than MAX_TREE_DEPTH (`not not ... x`,
    `1 + 1 + ... + 1`), walking it without recursion, so that the transform,
    the checker, the compiler and evaluation (all recursive) stay far from
    Python's recursion limit."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            meta = node.meta
            line, column = (meta.line, meta.column) if not meta.empty else (1, 1)
            raise _error(path, source, line, column, "expression is nested too deeply")
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def _check_nesting(source: str, path: str) -> None:
    """Refuse absurd nesting before Lark or the tree walk could recurse on it."""
    depth = 0
    for match in re.finditer(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[(){}]|\bnot\b|-', source):
        token = match.group()
        if token in "({":
            depth += 1
        elif token in ")}":
            depth = max(0, depth - 1)
        elif token in ("not", "-"):
            # unary chains nest as deeply as brackets do; bounded loosely
            continue
        if depth > MAX_NESTING:
            line = source.count("\n", 0, match.start()) + 1
            column = match.start() - (source.rfind("\n", 0, match.start()) + 1) + 1
            raise _error(path, source, line, column, f"brackets nested deeper than {MAX_NESTING} levels")


def _error(path: str, source: str, line: int, column: int, message: str) -> PolicySyntaxError:
    span = n.Span(path, line, column, line, column + 1)
    return PolicySyntaxError(Diagnostic("E001", "error", message, span), source)


def _syntax_error(exc: UnexpectedInput, source: str, path: str) -> PolicySyntaxError:
    line, column = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        char = source[position] if position < len(source) else "?"
        allowed = getattr(exc, "allowed", None) or set()
        message = f"unexpected character {char!r}"
        if allowed:
            message += f"; expected {_describe_expected(allowed)}"
        return _error(path, source, line, column, message)
    expected = getattr(exc, "expected", None) or getattr(exc, "accepts", None) or set()
    stray = _stray_name(exc)
    if stray is not None and str(stray) in ("when", "with"):  # a clause misplaced, not a rule's name
        hint = _when_hint(source[:stray.start_pos or 0], str(stray))
        if hint:
            return _error(path, source, stray.line or 1, stray.column or 1, f"unexpected {str(stray)!r}: {hint}")
    if stray is not None:
        return _error(path, source, stray.line or 1, stray.column or 1,
                      f"unexpected {str(stray)!r}; expected a declaration or a rule (a name before a rule is "
                      f"followed by ':', as in `{stray}: forbid ...`)")
    if isinstance(exc, UnexpectedEOF):
        found = "end of file"
        lines = source.removesuffix("\n").split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    else:
        token = exc.token  # type: ignore[attr-defined]
        found = "end of file" if token.type == "$END" else repr(str(token))
        if token.type == "$END":
            lines = source.removesuffix("\n").split("\n")
            line, column = len(lines), len(lines[-1]) + 1
        elif str(token) in ("when", "with"):
            hint = _when_hint(source[:token.start_pos], str(token))
            if hint:
                return _error(path, source, line, column, f"unexpected {found}: {hint}")
    return _error(path, source, line, column, f"unexpected {found}; expected {_describe_expected(expected)}")


# Where a condition goes, by the item it was misplaced in.
_WHEN_PLACES = {
    "window": "a window's `when` goes after its hours (and any `on` days and `except holidays`), "
              "just before `because`/`cite`: window sms 08:00-21:00 when state == \"MA\" because \"...\"",
    "limit": "a limit's `when` goes after its period (and any `of` and `where outcome`), just before "
             "`because`/`cite`: limit call 2 per 7 days when state == \"MA\" because \"...\"",
    "quiet": "a quiet period's `when` goes after `on` and its actions, just before `because`/`cite`: "
             "quiet call for 7 days after \"conversation\" on call when state == \"MA\"",
    "include": "an include's `when` goes after the path and any `with { ... }`: "
               "include \"baseline.policy\" when state == \"MA\"",
    "forbid": "a forbid's `when` goes right after its actions, before `because`/`cite`",
    "allow": "an allow's `when` goes right after its actions",
}


def _when_hint(before: str, word: str) -> str | None:
    """What to say about a `when` (or an include's `with`) the grammar did
    not expect, from the item it stands in: the last item keyword before it,
    strings and comments aside. None: nothing better than the usual message."""
    code = re.sub(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*', '""', before)
    items = list(re.finditer(r"\b(window|limit|quiet|include|forbid|allow|segment|stage|account|actions)\b", code))
    item = items[-1].group() if items else None
    conditioned = item is not None and re.search(r"\bwhen\b", code[items[-1].end():]) is not None
    if word == "with":
        return "an include's `with { ... }` comes before its `when`" if item == "include" and conditioned else None
    if item not in _WHEN_PLACES:
        return "a condition belongs to a rule, a segment or an include"
    if conditioned:
        return "a rule takes one `when`; join conditions with `and`"
    return _WHEN_PLACES[item]
def _stray_name(exc: UnexpectedInput) -> Token | None:
    """The word just read when the parser can only go on with the `:` that
    would make it a rule's name (a word left over after a rule, a misspelt
    keyword): the error belongs at that word, not at whatever follows it."""
    parser = getattr(exc, "interactive_parser", None)
    if parser is None or set(getattr(exc, "expected", None) or ()) != {"COLON"}:
        return None
    last = parser.parser_state.value_stack[-1]
    if not isinstance(last, Token) or last.type != "NAME":
        return None
    probe = parser.copy()
    probe.feed_token(Token("COLON", ":"))
    return last if "ALLOW" in probe.accepts() else None


def _describe_expected(expected: set[str]) -> str:
    names = {_canonical(name) for name in expected}
    for needed, phrase in _PHRASES:
        if needed <= names and len(names - needed) <= 1:
            return phrase
    words = sorted({_TOKEN_WORDS.get(name) or _literal_text(name) for name in names})
    if len(words) > 8:
        words = [*words[:8], "…"]
    return ", ".join(words) if len(words) < 3 else "one of: " + ", ".join(words)


def _canonical(name: str) -> str:
    if name in _TOKEN_WORDS:
        return name
    text = _literal_text(name).strip("'")
    return {"..": "DOTDOT", "set": "SET", "enum": "ENUM"}.get(text, name)


def _literal_text(name: str) -> str:
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if isinstance(pattern, lark.lexer.PatternStr):
        return f"'{pattern.value}'"
    return name.lower()


# ------------------------------------------------------------ tree to nodes


def _unquote(token: Token) -> str:
    body = str(token)[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _seconds(token: Token) -> int | None:
    hours, minutes = (int(part) for part in str(token).split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 3600 + minutes * 60


@v_args(meta=True)
class _ToNodes(Transformer):  # type: ignore[type-arg]
    """Builds nodes bottom-up; every node gets its span from Lark's meta."""

    def __init__(self, path: str, source: str) -> None:
        super().__init__()
        self.path = path
        self.source = source

    # -- helpers
    def _span(self, meta: Any) -> n.Span:
        if getattr(meta, "empty", True):
            return n.Span(self.path, 1, 1, 1, 1)
        return n.Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, token: Token) -> n.Span:
        return n.Span(self.path, token.line or 1, token.column or 1,
                      token.end_line or token.line or 1, token.end_column or token.column or 1)

    def _text(self, meta: Any) -> str:
        """The rule as written, whitespace collapsed: what explanations quote."""
        raw = self.source[meta.start_pos:meta.end_pos]
        raw = re.sub(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*', lambda m: "" if m.group().startswith("#") else m.group(), raw)
        return " ".join(raw.split())

    def _fail(self, token: Token, message: str) -> None:
        span = self._tspan(token)
        raise PolicySyntaxError(Diagnostic("E001", "error", message, span), self.source)

    def _name(self, token: Token) -> str:
        if len(token) > MAX_NAME_LENGTH:
            self._fail(token, f"name is longer than {MAX_NAME_LENGTH} characters")
        return str(token)

    # -- file structure
    def start(self, meta: Any, children: list[Any]) -> n.PolicyFile:
        header, *items = children
        buckets: dict[type, list[Any]] = {}
        for item in items:
            buckets.setdefault(type(item), []).append(item)
        fields = [f for account in buckets.get(list, []) for f in account]
        rules = [item for item in items if isinstance(item, (n.Allow, n.Forbid, n.Window, n.Limit, n.Quiet))]
        return n.PolicyFile(
            path=self.path,
            source=self.source,
            header=header,
            includes=tuple(buckets.get(n.Include, [])),
            fields=tuple(fields),
            actions=tuple(g for lines in buckets.get(tuple, []) for g in lines),
            events=tuple(buckets.get(n.Events, [])),
            stages=tuple(buckets.get(n.Stages, [])),
            segments=tuple(buckets.get(n.Segment, [])),
            stage_blocks=tuple(buckets.get(n.StageBlock, [])),
            rules=tuple(rules),
            outcomes=tuple(buckets.get(n.Outcomes, [])),
            experiments=tuple(buckets.get(n.Experiment, [])),
        )

    def header(self, meta: Any, children: list[Token]) -> n.Header:
        return n.Header(_unquote(children[0]), _unquote(children[1]), self._span(meta))

    def include(self, meta: Any, children: list[Any]) -> n.Include:
        path, mappings, condition = children
        return n.Include(_unquote(path), tuple(mappings or ()), self._span(meta), condition)

    def include_map(self, meta: Any, children: list[n.ActionMapping]) -> list[n.ActionMapping]:
        return children

    def action_map(self, meta: Any, children: list[Any]) -> n.ActionMapping:
        return n.ActionMapping(self._name(children[0]), tuple(children[1]), self._span(meta))

    def account(self, meta: Any, children: list[n.Field]) -> list[n.Field]:
        return children

    def field(self, meta: Any, children: list[Any]) -> n.Field:
        name, ftype, default = children
        return n.Field(self._name(name), ftype, default, self._span(meta))

    def default(self, meta: Any, children: list[Any]) -> Any:
        return children[0]

    def simple_type(self, meta: Any, children: list[Token]) -> n.FieldType:
        return n.FieldType(str(children[0]), self._span(meta))

    def set_type(self, meta: Any, children: list[Token]) -> n.FieldType:
        element = str(children[0])
        if element not in ("text", "int"):
            self._fail(children[0], f"a set holds text or int, not {element}")
        return n.FieldType("set", self._span(meta), element=element)

    def enum_type(self, meta: Any, children: list[Any]) -> n.FieldType:
        return n.FieldType("enum", self._span(meta), members=tuple(children[0]))

    def actions(self, meta: Any, children: list[n.ActionGroup]) -> tuple[n.ActionGroup, ...]:
        return tuple(children)

    def action_group(self, meta: Any, children: list[Any]) -> n.ActionGroup:
        return n.ActionGroup(self._name(children[0]), tuple(children[1]), self._span(meta))

    def action_plain(self, meta: Any, children: list[Any]) -> n.ActionGroup:
        return n.ActionGroup(None, tuple(children[0]), self._span(meta))

    def events(self, meta: Any, children: list[Any]) -> n.Events:
        return n.Events(tuple(children[0]), self._span(meta))

    def outcomes(self, meta: Any, children: list[Any]) -> n.Outcomes:
        return n.Outcomes(tuple(children[0] or ()), self._span(meta))

    def outcome_list(self, meta: Any, children: list[Token]) -> list[str]:
        return [_unquote(token) if token.type == "STRING" else self._name(token) for token in children]

    def stages(self, meta: Any, children: list[Any]) -> n.Stages:
        field, *ranges = children
        return n.Stages(self._name(field), tuple(ranges), self._span(meta))

    def stage_range(self, meta: Any, children: list[Any]) -> n.StageRange:
        name, (low, high) = children
        return n.StageRange(self._name(name), low, high, self._span(meta))

    def closed_range(self, meta: Any, children: list[int]) -> tuple[int | None, int | None]:
        return children[0], children[1]

    def from_range(self, meta: Any, children: list[int]) -> tuple[int | None, int | None]:
        return children[0], None

    def upto_range(self, meta: Any, children: list[int]) -> tuple[int | None, int | None]:
        return None, children[0]

    def any_range(self, meta: Any, children: list[int]) -> tuple[int | None, int | None]:
        return None, None

    def signed_int(self, meta: Any, children: list[Token | None]) -> int:
        sign, digits = children
        return -int(digits) if sign is not None else int(digits)  # type: ignore[arg-type]

    def segment(self, meta: Any, children: list[Any]) -> n.Segment:
        return n.Segment(self._name(children[0]), children[1], self._span(meta))

    def experiment(self, meta: Any, children: list[Any]) -> n.Experiment:
        name, salt, *groups = children
        return n.Experiment(self._name(name), _unquote(salt), tuple(groups), self._span(meta))

    def share_group(self, meta: Any, children: list[Token]) -> n.ExperimentGroup:
        name, share = children
        return n.ExperimentGroup(self._name(name), Decimal(str(share)[:-1]), self._span(meta))

    def rest_group(self, meta: Any, children: list[Token]) -> n.ExperimentGroup:
        return n.ExperimentGroup(self._name(children[0]), None, self._span(meta))

    def stage_block(self, meta: Any, children: list[Any]) -> n.StageBlock:
        name, *rules = children
        stage = self._name(name)
        placed = tuple(_with_stage(rule, stage) for rule in rules)
        return n.StageBlock(stage, placed, self._span(meta))

    # -- rules
    def named_rule(self, meta: Any, children: list[Any]) -> n.Rule:
        label, rule = children
        return replace(rule, name=self._name(label))  # type: ignore[no-any-return]

    def allow(self, meta: Any, children: list[Any]) -> n.Allow:
        targets, condition = children
        return n.Allow(targets, condition, self._span(meta), self._text(meta))

    def forbid(self, meta: Any, children: list[Any]) -> n.Forbid:
        targets, condition, reason = children
        return n.Forbid(targets, condition, reason, self._span(meta), self._text(meta))

    def window(self, meta: Any, children: list[Any]) -> n.Window:
        targets, ranges, days, holidays, condition, reason = children
        return n.Window(targets, tuple(ranges), tuple(days or ()), holidays, reason,
                        self._span(meta), self._text(meta), applies=_applies(condition))

    def window_table(self, meta: Any, children: list[Any]) -> n.Window:
        """`window targets { lines } [when ...] reason`: the day lines become
        `table`; a `holidays` line (at most one) names the calendar and its hours."""
        targets, *lines, condition, reason = children
        table = tuple(line for line in lines if isinstance(line, n.DayHours))
        holiday_lines = [line for line in lines if not isinstance(line, n.DayHours)]
        if len(holiday_lines) > 1:
            self._fail(holiday_lines[1][2], "a window has one `holidays` line")
        if not table:
            self._fail(holiday_lines[0][2], "a window's hours table needs a line of days, "
                       "such as `mon..fri 08:00-21:00`")
        holidays, holiday_ranges = holiday_lines[0][:2] if holiday_lines else (None, ())
        return n.Window(targets, (), (), holidays, reason, self._span(meta), self._text(meta),
                        applies=_applies(condition), table=table, holiday_ranges=holiday_ranges)

    def day_hours(self, meta: Any, children: list[Any]) -> n.DayHours:
        *days, ranges = children
        return n.DayHours(tuple(days), tuple(ranges), self._span(meta))

    def holiday_hours(self, meta: Any, children: list[Any]) -> tuple[n.Literal | n.Ref, tuple[n.TimeRange, ...],
                                                                      Token]:
        """(calendar, hours, the token to point at): folded into the window."""
        token, ranges = children
        return self.holidays(meta, [token]), tuple(ranges), token

    def closed_hours(self, meta: Any, children: list[Any]) -> list[n.TimeRange]:
        return []

    def limit(self, meta: Any, children: list[Any]) -> n.Limit:
        targets, count, period, counted, outcome_filter, condition, reason = children
        outcomes, exclude = outcome_filter if outcome_filter else (None, False)
        return n.Limit(targets, int(count), period, counted, outcomes, exclude, reason,
                       self._span(meta), self._text(meta), applies=_applies(condition))

    def quiet(self, meta: Any, children: list[Any]) -> n.Quiet:
        targets, amount, unit, outcomes, after, condition, reason = children
        period = n.Period(int(amount), _unit(unit))
        return n.Quiet(targets, period, tuple(outcomes), after, reason, self._span(meta), self._text(meta),
                       applies=_applies(condition))

    def when(self, meta: Any, children: list[Any]) -> Any:
        return children[0]

    def reason(self, meta: Any, children: list[Any]) -> n.Reason:
        because, cite = children
        return n.Reason(because, cite)

    def because(self, meta: Any, children: list[Token]) -> str:
        return _unquote(children[0])

    def cite(self, meta: Any, children: list[Token]) -> str:
        return _unquote(children[0])

    def all_targets(self, meta: Any, children: list[Any]) -> n.Targets:
        return n.Targets(True, (), self._span(meta))

    def named_targets(self, meta: Any, children: list[Any]) -> n.Targets:
        return n.Targets(False, tuple(children[0]), self._span(meta))

    def time_ranges(self, meta: Any, children: list[n.TimeRange]) -> list[n.TimeRange]:
        return children

    def time_range(self, meta: Any, children: list[Token]) -> n.TimeRange:
        start_token, _, end_token = children
        start, end = _seconds(start_token), _seconds(end_token)
        if start is None or start >= 24 * 3600:
            self._fail(start_token, "not a time of day; expected 00:00 to 23:59")
        if end is None:
            self._fail(end_token, "not a time of day; expected 00:00 to 24:00")
        if end <= start:  # type: ignore[operator]
            self._fail(end_token, "a window must end after it starts (ranges cannot cross midnight; "
                       "write two ranges)")
        return n.TimeRange(start, end, self._span(meta))  # type: ignore[arg-type]

    def days(self, meta: Any, children: list[n.DaySpec]) -> list[n.DaySpec]:
        return children

    def day_single(self, meta: Any, children: list[Token]) -> n.DaySpec:
        self._day(children[0])
        return n.DaySpec(str(children[0]), str(children[0]), self._span(meta))

    def day_span(self, meta: Any, children: list[Token]) -> n.DaySpec:
        self._day(children[0])
        self._day(children[1])
        return n.DaySpec(str(children[0]), str(children[1]), self._span(meta))

    def _day(self, token: Token) -> None:
        if str(token) not in DAY_NAMES:
            self._fail(token, f"unknown day {str(token)!r}; expected one of {', '.join(DAY_NAMES)}")

    def holidays(self, meta: Any, children: list[Token]) -> n.Literal | n.Ref:
        token = children[0]
        if token.type == "STRING":
            return n.Literal(_unquote(token), "text", self._tspan(token))
        return n.Ref(self._name(token), self._tspan(token))

    def period_one(self, meta: Any, children: list[Token]) -> n.Period:
        return n.Period(1, _unit(children[0]))

    def period_n(self, meta: Any, children: list[Token]) -> n.Period:
        return n.Period(int(children[0]), _unit(children[1]))

    def count_of(self, meta: Any, children: list[n.Targets]) -> n.Targets:
        return children[0]

    def outcome_filter(self, meta: Any, children: list[Any]) -> tuple[tuple[str, ...], bool]:
        negation, outcomes = children
        return tuple(outcomes), negation is not None

    def name_list(self, meta: Any, children: list[Token]) -> list[str]:
        return [self._name(token) for token in children]

    def string_list(self, meta: Any, children: list[Token]) -> list[str]:
        return [_unquote(token) for token in children]

    # -- expressions
    def or_expr(self, meta: Any, children: list[Any]) -> n.BoolOp:
        return n.BoolOp("or", tuple(children), self._span(meta))

    def and_expr(self, meta: Any, children: list[Any]) -> n.BoolOp:
        return n.BoolOp("and", tuple(children), self._span(meta))

    def not_op(self, meta: Any, children: list[Any]) -> n.Not:
        return n.Not(children[1], self._span(meta))

    def compare(self, meta: Any, children: list[Any]) -> n.Compare:
        return n.Compare(str(children[1]), children[0], children[2], self._span(meta))

    def in_op(self, meta: Any, children: list[Any]) -> n.Membership:
        return n.Membership(children[0], children[1], False, self._span(meta))

    def not_in_op(self, meta: Any, children: list[Any]) -> n.Membership:
        return n.Membership(children[0], children[2], True, self._span(meta))

    def arith(self, meta: Any, children: list[Any]) -> n.Arithmetic:
        return n.Arithmetic(str(children[1]), children[0], children[2], self._span(meta))

    def neg(self, meta: Any, children: list[Any]) -> n.Negate:
        return n.Negate(children[1], self._span(meta))

    def ref(self, meta: Any, children: list[Token]) -> n.Ref:
        return n.Ref(self._name(children[0]), self._span(meta))

    def action_ref(self, meta: Any, children: list[Any]) -> n.ActionRef:
        return n.ActionRef(self._span(meta))

    def now_ref(self, meta: Any, children: list[Any]) -> n.NowRef:
        return n.NowRef(self._span(meta))

    def call(self, meta: Any, children: list[Any]) -> n.Call:
        name, *args = children
        return n.Call(self._name(name), tuple(a for a in args if a is not None), self._span(meta))

    def history_count(self, meta: Any, children: list[Any]) -> n.History:
        targets, period, outcome_filter = children
        outcomes, exclude = outcome_filter if outcome_filter else (None, False)
        return n.History("count", targets, outcomes, exclude, period, self._span(meta), self._text(meta))

    def history_last(self, meta: Any, children: list[Any]) -> n.History:
        kind, targets, outcome_filter = children
        outcomes, exclude = outcome_filter if outcome_filter else (None, False)
        return n.History(str(kind), targets, outcomes, exclude, None, self._span(meta), self._text(meta))

    def int_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        return n.Literal(int(children[0]), "int", self._span(meta))

    def neg_int_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        return n.Literal(-int(children[1]), "int", self._span(meta))

    def decimal_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        return n.Literal(Decimal(str(children[0])), "number", self._span(meta))

    def neg_decimal_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        # copy_negate is exact; unary minus would round to the caller's thread-local decimal context
        return n.Literal(Decimal(str(children[1])).copy_negate(), "number", self._span(meta))

    def money_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        return n.Literal(Decimal(str(children[0])[1:]), "money", self._span(meta))

    def text_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        return n.Literal(_unquote(children[0]), "text", self._span(meta))

    def enum_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        return n.Literal(str(children[0]), "enum", self._span(meta))

    def date_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        try:
            value = dt.date.fromisoformat(str(children[0]))
        except ValueError:
            self._fail(children[0], f"not a calendar date: {children[0]}")
        return n.Literal(value, "date", self._span(meta))

    def datetime_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        try:
            value = dt.datetime.fromisoformat(str(children[0]))
        except ValueError:
            self._fail(children[0], f"not a valid instant: {children[0]}")
        return n.Literal(value, "datetime", self._span(meta))

    def time_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        seconds = _seconds(children[0])
        if seconds is None or seconds >= 24 * 3600:
            self._fail(children[0], "not a time of day; expected 00:00 to 23:59")
        return n.Literal(seconds, "time", self._span(meta))

    def duration_lit(self, meta: Any, children: list[Token]) -> n.Literal:
        unit = _unit(children[1])
        hours = int(children[0]) * (24 if unit == "days" else 1)
        return n.Literal(dt.timedelta(hours=hours), "duration", self._span(meta))

    def true_lit(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(True, "bool", self._span(meta))

    def false_lit(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(False, "bool", self._span(meta))

    def set_lit(self, meta: Any, children: list[Any]) -> n.SetLiteral:
        return n.SetLiteral(tuple(c for c in children if c is not None), self._span(meta))


def _applies(condition: n.Expr | None) -> tuple[n.Expr, ...]:
    return () if condition is None else (condition,)


def _unit(token: Token) -> str:
    return "days" if str(token).startswith("day") else "hours"


def _with_stage(rule: Any, stage: str) -> Any:
    return replace(rule, stage=stage)
