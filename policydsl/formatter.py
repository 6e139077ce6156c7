"""`policy fmt`: one canonical layout for policy files, comments kept.

The layout is printed from the syntax tree (plus the block boundaries the
tree does not keep), so two files that parse to the same tree format to the
same text, except for comments and for the blank lines an author put between
grouped items:

- 4-space indentation inside blocks; one field, action line, stage range,
  mapping or rule per line; the `:` of `account` fields and `actions` groups,
  the `=` of include mappings and the bounds of `stages` ranges aligned;
- a blank line between top-level sections; consecutive includes, segments
  and top-level rules stay grouped as the author grouped them (a blank line
  between two of them is kept, never more than one);
- canonical spacing (`a >= 1`, `f(a, b)`, `{"a", "b"}`, `mon..fri`,
  `08:00-21:00`) and the fewest parentheses that keep the tree;
- a rule longer than MAX_WIDTH is broken: a `when` condition before each
  `and`/`or` of its outermost operator (deeper for nested ones), the
  clauses of `window`/`limit`/`quiet` and then `because`/`cite` onto
  continuation lines indented one step more.

Comments are then put back. An own-line comment goes before the line that
holds the code that followed it in the source (inside a block: with the
block's indentation, also before a closing brace); a trailing comment goes at
the end of the line holding the code it followed, aligned with the other
trailing comments of the same block. Source and output are matched token by
token, so this holds whatever the source layout was. Blank lines between
comment groups are kept (at most one). No comment is lost, duplicated or
reordered, and `format_source` checks its own output: it must parse to the
same tree (see `syntax_shape`) and hold the same comments, or FormatterError
is raised and nothing is written.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import lark

from . import nodes as n
from .errors import PolicyError
from .parser import _lark, parse

MAX_WIDTH = 100
INDENT = 4
_ALIGN_LIMIT = 80  # a line longer than this does not push its block's trailing comments right

# A source scanner just precise enough to tell strings, comments and the other
# tokens apart (it mirrors grammar.lark's terminals; whitespace separates).
_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<comment>\#[^\n]*)
    | (?P<code>
        [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:Z|[+-][0-9]{2}:[0-9]{2})
        | [0-9]{4}-[0-9]{2}-[0-9]{2}
        | [0-9]{2}:[0-9]{2}
        | [$¥€£][0-9]+(?:\.[0-9]+)?
        | [0-9]+\.[0-9]+
        | [0-9]+
        | [A-Za-z_][A-Za-z0-9_]*
        | \.\. | == | != | <= | >=
        | [^ \t\f\r\n]
    )
    """,
    re.VERBOSE,
)
_SPACE = re.compile(r"[ \t\f\r\n]*")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})")
_MONEY = re.compile(r"([$¥€£])[0-9]+(\.[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_RULE_DATA = frozenset({"allow", "forbid", "window", "window_table", "limit", "quiet", "named_rule"})
# Top-level items of these kinds may follow one another without a blank line.
_GROUPABLE = frozenset({"include", "segment", "rule"})


class FormatterError(PolicyError):
    """The formatter would have changed the meaning of a policy or lost a
    comment (a bug in the formatter; the file is left alone)."""


def format_source(source: str, path: str = "<policy>") -> str:
    """The canonical text of a policy. Raises PolicySyntaxError for text that
    does not parse (broken text is never formatted)."""
    tree = parse(source, path)
    code, comments = _scan(source)
    outline = _lark().parse(source)  # block boundaries, which the nodes do not keep
    printer = _Printer(tree, source, code, comments)
    printer.print_file(outline)
    text = _Placer(source, code, comments, printer.lines).render()
    _verify(tree, comments, text, path)
    return text


def canonical_text(tree: n.PolicyFile) -> str:
    """What `policy fmt` prints for a parsed file, without its comments and
    blank lines: the form a policy digest hashes, so that layout and comments
    never change it while any change of meaning does."""
    printer = _Printer(tree, tree.source, [], [])
    printer.print_file(_lark().parse(tree.source))
    return "".join(" " * line.indent + line.code + "\n" for line in printer.lines)


def canonical_rule(rule: n.Rule, tree: n.PolicyFile) -> str:
    """One rule of `tree` as `policy fmt` prints it, on one line: what an
    unnamed rule's id is a digest of, so moving or reformatting it, or
    editing comments around it, keeps its id."""
    printer = _Printer(tree, tree.source, [], [])
    printer._rule(rule)
    return " ".join(line.code for line in printer.lines)


def syntax_shape(node: Any) -> Any:
    """A node as nested tuples without spans, rule `text`, file path and
    source: two policies mean the same iff their shapes are equal."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        skip = {"span", "text", "path", "source", "included"}
        return (type(node).__name__, *(
            (f.name, syntax_shape(getattr(node, f.name)))
            for f in dataclasses.fields(node) if f.name not in skip
        ))
    if isinstance(node, (tuple, list)):
        return tuple(syntax_shape(item) for item in node)
    if isinstance(node, Decimal):  # Decimal("1.0") == Decimal("1"); keep the written digits apart
        return ("Decimal", str(node))
    return node


def comment_texts(source: str) -> list[str]:
    """The `#` comments of a policy text in order (outside strings), without
    trailing whitespace."""
    return [comment.text for comment in _scan(source)[1]]


# ------------------------------------------------------------ scanning


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Comment:
    text: str  # without trailing whitespace
    start: int
    end: int
    own_line: bool  # nothing but whitespace before it on its line


def _scan(text: str) -> tuple[list[_Token], list[_Comment]]:
    code: list[_Token] = []
    comments: list[_Comment] = []
    position = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match is not None  # the last alternative takes any other character
        if match.lastgroup == "comment":
            line_start = text.rfind("\n", 0, position) + 1
            own_line = not text[line_start:position].strip(" \t\f\r")
            comments.append(_Comment(match.group().rstrip(), position, match.end(), own_line))
        else:
            code.append(_Token(match.group(), position, match.end()))
        position = _SPACE.match(text, match.end()).end()  # type: ignore[union-attr]
    return code, comments


# ------------------------------------------------------------ printing


@dataclass
class _Line:
    """One output line of code. `blank`: whether a blank line must, may (when
    the source had one) or never come before it; `kind`: an item, a
    continuation of the item above, or a closing brace; `group`: the block
    whose trailing comments are aligned together (None at top level)."""

    indent: int
    code: str
    blank: str = "never"  # "never" | "may" | "must"
    kind: str = "item"  # "item" | "cont" | "close"
    group: int | None = None


def _quote(text: str) -> str:
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def _decimal(value: Decimal) -> str:
    text = format(value, "f")
    return text if "." in text else text + ".0"


def _amount(amount: int, unit: str) -> str:
    """`1 day`, `7 days`, `1 hour`, `3 hours` (unit is "days" or "hours")."""
    return f"{amount} {unit[:-1] if amount == 1 else unit}"


def _history(expr: n.History) -> str:
    """`count(call, sms in 7 days where outcome in {"conversation"})`: one
    spelling of the aggregates, the period written out (`1 day`)."""
    parts = [_targets(expr.targets)]
    if expr.period is not None:
        parts.append(f"in {_amount(expr.period.amount, expr.period.unit)}")
    if expr.outcomes is not None:
        negation = "not " if expr.exclude else ""
        parts.append(f"where outcome {negation}in {{{', '.join(_quote(o) for o in expr.outcomes)}}}")
    return f"{expr.kind}({' '.join(parts)})"


def _level(expr: n.Expr) -> int:
    """Binding strength, loosest first: or < and < not < comparison and
    membership < + - < * / < unary minus < atoms."""
    if isinstance(expr, n.BoolOp):
        return 1 if expr.op == "or" else 2
    if isinstance(expr, n.Not):
        return 3
    if isinstance(expr, (n.Compare, n.Membership)):
        return 4
    if isinstance(expr, n.Arithmetic):
        return 5 if expr.op in "+-" else 6
    if isinstance(expr, n.Negate):
        return 7
    return 8


def _days(days: tuple[n.DaySpec, ...]) -> str:
    return ", ".join(d.first if d.first == d.last else f"{d.first}..{d.last}" for d in days)


def _hours(ranges: tuple[n.TimeRange, ...]) -> str:
    return ", ".join(str(r) for r in ranges) or "closed"


def _calendar(calendar: n.Literal | n.Ref) -> str:
    return calendar.name if isinstance(calendar, n.Ref) else _quote(str(calendar.value))


def _own_condition(rule: n.Window | n.Limit | n.Quiet) -> n.Expr | None:
    """A parsed restriction's `when` (only conditional includes add more,
    and those are the checker's)."""
    return rule.applies[-1] if rule.applies else None


def _targets(targets: n.Targets) -> str:
    return "all" if targets.all else ", ".join(targets.names)


@lru_cache(maxsize=8)
def _line_starts(source: str) -> list[int]:
    """The offset of every line of `source`, kept: a rule id prints each rule
    of a file on its own, and scanning the whole source for each one made
    checking a large policy quadratic (16,000 rules: minutes)."""
    return [0, *(match.end() for match in re.finditer("\n", source))]


class _Printer:
    """The syntax tree as `_Line`s, comments left out."""

    def __init__(self, tree: n.PolicyFile, source: str, code: list[_Token], comments: list[_Comment]) -> None:
        self.tree = tree
        self.source = source
        self.braces = [token.start for token in code if token.text == "{"]
        self.comment_starts = [comment.start for comment in comments]
        self.lines: list[_Line] = []
        self.groups = 0
        self.line_starts = _line_starts(source)

    # -- helpers
    def _emit(self, indent: int, code: str, blank: str = "never", kind: str = "item",
              group: int | None = None) -> None:
        self.lines.append(_Line(indent, code, blank, kind, group))

    def _new_group(self) -> int:
        self.groups += 1
        return self.groups

    def _span_text(self, span: n.Span) -> str:
        start = self.line_starts[span.line - 1] + span.column - 1
        end = self.line_starts[span.end_line - 1] + span.end_column - 1
        return self.source[start:end]

    def _inside(self, start: int, end: int) -> bool:
        """Whether a comment sits between the braces of the item at
        start..end (the first `{` in it is the block's own)."""
        index = bisect.bisect_left(self.braces, start)
        brace = self.braces[index] if index < len(self.braces) else end
        first = bisect.bisect_left(self.comment_starts, brace)
        return first < len(self.comment_starts) and self.comment_starts[first] < end

    # -- the file
    def print_file(self, outline: lark.Tree[lark.Token]) -> None:
        tree = self.tree
        queues: dict[str, Iterator[Any]] = {
            "include": iter(tree.includes), "events": iter(tree.events), "outcomes": iter(tree.outcomes),
            "stages": iter(tree.stages),
            "segment": iter(tree.segments), "stage_block": iter(tree.stage_blocks), "rule": iter(tree.rules),
            "experiment": iter(tree.experiments),
        }
        fields, actions = iter(tree.fields), iter(tree.actions)
        previous: str | None = None
        for child in outline.children:
            if not isinstance(child, lark.Tree):  # pragma: no cover - `start` holds only trees
                continue
            data = str(child.data)
            kind = "rule" if data in _RULE_DATA else data
            if previous is None:
                blank = "never"
            elif kind == previous and kind in _GROUPABLE:
                blank = "may"
            else:
                blank = "must"
            previous = kind
            inside = self._inside(child.meta.start_pos, child.meta.end_pos)
            if kind == "header":
                header = tree.header
                self._emit(0, f"policy {_quote(header.name)} version {_quote(header.version)}", blank)
            elif kind == "account":
                self._account([next(fields) for _ in child.children], blank, inside)
            elif kind == "actions":
                self._actions([next(actions) for _ in child.children], blank, inside)
            elif kind == "rule":
                self._rule(next(queues[kind]), 0, blank)
            elif kind in queues:
                getattr(self, "_" + kind)(next(queues[kind]), blank, inside)
            else:  # pragma: no cover - a grammar item this formatter does not know
                raise FormatterError(f"cannot format a {data!r} item")
        leftovers = [name for name, queue in {**queues, "fields": fields, "actions": actions}.items()
                     if next(queue, None) is not None]
        if leftovers:  # pragma: no cover - parser and outline disagree
            raise FormatterError(f"syntax tree and outline disagree on {', '.join(leftovers)}")

    def _block(self, opening: str, blank: str, rows: list[str], keep_open: bool, closing: str = "}") -> None:
        """`opening {` rows `}`; an empty block is `opening {}` unless comments
        sit inside it, which then stay inside. `closing` may carry more after
        the brace (an include's `when`)."""
        if not rows and not keep_open:
            self._emit(0, opening + " {" + closing, blank)
            return
        self._emit(0, opening + " {", blank)
        group = self._new_group()
        for index, row in enumerate(rows):
            self._emit(INDENT, row, "may" if index else "never", group=group)
        self._emit(0, closing, kind="close")

    def _include(self, include: n.Include, blank: str, inside: bool) -> None:
        head = f"include {_quote(include.path)}"
        if not include.mappings:
            self._rule_lines(0, head, include.condition, [], [], blank, None)
            return
        width = max(len(mapping.name) for mapping in include.mappings)
        rows = [f"{m.name.ljust(width)} = {', '.join(m.targets)}" for m in include.mappings]
        closing = "}" if include.condition is None else f"}} when {self._expr(include.condition)}"
        self._block(head + " with", blank, rows, False, closing)

    def _account(self, fields: list[n.Field], blank: str, keep_open: bool) -> None:
        width = max((len(field.name) for field in fields), default=0)
        rows = []
        for field in fields:
            row = f"{field.name.ljust(width)} : {field.type}"
            if field.default is not None:
                row += f" = {self._const(field.default)}"
            rows.append(row)
        self._block("account", blank, rows, keep_open)

    def _actions(self, groups: list[n.ActionGroup], blank: str, keep_open: bool) -> None:
        width = max((len(group.group) for group in groups if group.group), default=0)
        rows = [f"{group.group.ljust(width)} : {', '.join(group.members)}" if group.group
                else ", ".join(group.members) for group in groups]
        self._block("actions", blank, rows, keep_open)

    def _events(self, events: n.Events, blank: str, inside: bool) -> None:
        self._emit(0, f"events {{ {', '.join(events.names)} }}", blank)

    def _outcomes(self, outcomes: n.Outcomes, blank: str, inside: bool) -> None:
        """On one line when it fits and holds no comment, else one outcome
        per line (a long vocabulary reads, and diffs, better as a column)."""
        names = [name if _NAME.fullmatch(name) else _quote(name) for name in outcomes.names]
        line = f"outcomes {{ {', '.join(names)} }}" if names else "outcomes {}"
        if not inside and len(line) <= MAX_WIDTH:
            self._emit(0, line, blank)
            return
        rows = [name + ("," if index < len(names) - 1 else "") for index, name in enumerate(names)]
        self._block("outcomes", blank, rows, inside)

    def _stages(self, stages: n.Stages, blank: str, inside: bool) -> None:
        ranges = stages.ranges
        name_width = max((len(r.name) for r in ranges), default=0)
        low_width = max((len(str(r.low)) for r in ranges if r.low is not None), default=0)
        rows = []
        for stage_range in ranges:
            parts = [stage_range.name.ljust(name_width)]
            if low_width:
                parts.append("" if stage_range.low is None else str(stage_range.low))
                parts[-1] = parts[-1].rjust(low_width)
            parts.append("..")
            if stage_range.high is not None:
                parts.append(str(stage_range.high))
            rows.append(" ".join(parts))
        self._block(f"stages on {stages.field}", blank, rows, inside)

    def _segment(self, segment: n.Segment, blank: str, inside: bool) -> None:
        self._rule_lines(0, f"segment {segment.name}", segment.condition, [], [], blank, None)

    def _experiment(self, experiment: n.Experiment, blank: str, inside: bool) -> None:
        """Group names aligned, shares as written (`12.50%` stays, since a
        share's digits are what a reviewer compares)."""
        width = max(len(group.name) for group in experiment.groups)
        rows = [f"{group.name.ljust(width)} {'rest' if group.share is None else f'{group.share}%'}"
                for group in experiment.groups]
        self._block(f"experiment {experiment.name} salt {_quote(experiment.salt)}", blank, rows, inside)

    def _stage_block(self, block: n.StageBlock, blank: str, inside: bool) -> None:
        if not block.rules and not inside:
            self._emit(0, f"stage {block.name} {{}}", blank)
            return
        self._emit(0, f"stage {block.name} {{", blank)
        group = self._new_group()
        for index, rule in enumerate(block.rules):
            self._rule(rule, INDENT, "may" if index else "never", group)
        self._emit(0, "}", kind="close")

    # -- rules
    def _rule(self, rule: n.Rule, indent: int = 0, blank: str = "never", group: int | None = None) -> None:
        targets = _targets(rule.targets)
        label = f"{rule.name}: " if rule.name else ""
        if isinstance(rule, n.Allow):
            self._rule_lines(indent, f"{label}allow {targets}", rule.condition, [], [], blank, group)
        elif isinstance(rule, n.Forbid):
            self._rule_lines(indent, f"{label}forbid {targets}", rule.condition, [], self._reason(rule.reason),
                             blank, group)
        elif isinstance(rule, n.Window) and rule.table:
            self._window_table(rule, indent, blank, group)
        elif isinstance(rule, n.Window):
            head = f"{label}window {targets} {', '.join(str(r) for r in rule.ranges)}"
            clauses = []
            if rule.days:
                clauses.append(f"on {_days(rule.days)}")
            if rule.holidays is not None:
                clauses.append(f"except holidays {_calendar(rule.holidays)}")
            self._rule_lines(indent, head, None, clauses, self._reason(rule.reason), blank, group,
                             after=_own_condition(rule))
        elif isinstance(rule, n.Limit):
            period = rule.period
            per = period.unit[:-1] if period.amount == 1 else _amount(period.amount, period.unit)
            clauses = []
            if rule.counted is not None:
                clauses.append(f"of {_targets(rule.counted)}")
            if rule.outcomes is not None:
                negation = "not " if rule.exclude else ""
                clauses.append(f"where outcome {negation}in {{{', '.join(_quote(o) for o in rule.outcomes)}}}")
            self._rule_lines(indent, f"{label}limit {targets} {rule.count} per {per}", None, clauses,
                             self._reason(rule.reason), blank, group, after=_own_condition(rule))
        else:
            outcomes = ", ".join(_quote(outcome) for outcome in rule.outcomes)
            head = f"{label}quiet {targets} for {_amount(rule.period.amount, rule.period.unit)} after {outcomes}"
            self._rule_lines(indent, head, None, [f"on {_targets(rule.after)}"], self._reason(rule.reason),
                             blank, group, after=_own_condition(rule))

    def _window_table(self, rule: n.Window, indent: int, blank: str, group: int | None) -> None:
        """`window targets {`, one line per group of days (their day lists
        aligned) and the holidays line, then `}` with the `when` and reasons."""
        label = f"{rule.name}: " if rule.name else ""
        self._emit(indent, f"{label}window {_targets(rule.targets)} {{", blank, group=group)
        width = max(len(_days(line.days)) for line in rule.table)
        rows = [f"{_days(line.days).ljust(width)} {_hours(line.ranges)}" for line in rule.table]
        if rule.holidays is not None:
            rows.append(f"holidays {_calendar(rule.holidays)} {_hours(rule.holiday_ranges)}")
        inner = self._new_group()
        for row in rows:
            self._emit(indent + INDENT, row, group=inner)
        self._rule_lines(indent, "}", None, [], self._reason(rule.reason), "never", group,
                         after=_own_condition(rule), kind="close")

    def _reason(self, reason: n.Reason) -> list[str]:
        parts = []
        if reason.because is not None:
            parts.append(f"because {_quote(reason.because)}")
        if reason.cite is not None:
            parts.append(f"cite {_quote(reason.cite)}")
        return parts

    def _rule_lines(self, indent: int, head: str, condition: n.Expr | None, clauses: list[str],
                    reasons: list[str], blank: str, group: int | None, after: n.Expr | None = None,
                    kind: str = "item") -> None:
        """One line if it fits; else the condition or the clauses broken,
        then each reason part on a continuation line. `condition` follows
        the head (allow, forbid, segment); `after`, a restriction's `when`,
        follows the clauses."""
        first = head if condition is None else f"{head} when {self._expr(condition)}"
        if after is not None:
            clauses = [*clauses, f"when {self._expr(after)}"]
        single = " ".join([first, *clauses, *reasons])
        more = indent + INDENT
        lines: list[tuple[int, str]]
        if indent + len(single) <= MAX_WIDTH:
            lines = [(indent, single)]
        else:
            if condition is not None:
                lines = self._condition(indent, f"{head} when ", condition, more)
            elif indent + len(" ".join([first, *clauses])) <= MAX_WIDTH:
                lines = [(indent, " ".join([first, *clauses]))]
            else:
                lines = [(indent, first), *((more, clause) for clause in clauses[:len(clauses) - (after is not None)])]
                if after is not None:
                    lines.extend(self._condition(more, "when ", after, more + INDENT))
            lines.extend((more, reason) for reason in reasons)
        for index, (line_indent, code) in enumerate(lines):
            if index == 0:
                self._emit(line_indent, code, blank, kind=kind, group=group)
            else:
                self._emit(line_indent, code, kind="cont", group=group)

    def _condition(self, indent: int, prefix: str, expr: n.Expr, more: int, suffix: str = "") -> list[tuple[int, str]]:
        """`prefix expr suffix`, broken before each operand of an outermost
        and/or when it does not fit; a nested and/or breaks one step deeper
        (inside its brackets when it needs them)."""
        flat = prefix + self._expr(expr) + suffix
        if indent + len(flat) <= MAX_WIDTH or not isinstance(expr, n.BoolOp):
            return [(indent, flat)]
        level = _level(expr)
        last = len(expr.operands) - 1
        lines: list[tuple[int, str]] = []
        for index, operand in enumerate(expr.operands):
            head, at = (prefix, indent) if index == 0 else (f"{expr.op} ", more)
            tail = suffix if index == last else ""
            if isinstance(operand, n.BoolOp) and _level(operand) > level:  # `and` in `or`: no brackets
                lines.extend(self._condition(at, head, operand, more + INDENT, tail))
            elif isinstance(operand, n.BoolOp):
                lines.extend(self._condition(at, head + "(", operand, more + INDENT, ")" + tail))
            else:
                lines.append((at, head + self._wrap(operand, level + 1) + tail))
        return lines

    # -- expressions
    def _wrap(self, expr: n.Expr, level: int) -> str:
        text = self._expr(expr)
        return f"({text})" if _level(expr) < level else text

    def _expr(self, expr: n.Expr) -> str:
        if isinstance(expr, n.BoolOp):
            level = _level(expr)
            return f" {expr.op} ".join(self._wrap(operand, level + 1) for operand in expr.operands)
        if isinstance(expr, n.Not):
            return f"not {self._wrap(expr.operand, 3)}"
        if isinstance(expr, n.Compare):
            return f"{self._wrap(expr.left, 5)} {expr.op} {self._wrap(expr.right, 5)}"
        if isinstance(expr, n.Membership):
            operator = "not in" if expr.negated else "in"
            return f"{self._wrap(expr.item, 5)} {operator} {self._wrap(expr.container, 5)}"
        if isinstance(expr, n.Arithmetic):
            level = _level(expr)
            return f"{self._wrap(expr.left, level)} {expr.op} {self._wrap(expr.right, level + 1)}"
        if isinstance(expr, n.Negate):
            return f"-{self._wrap(expr.operand, 7)}"
        if isinstance(expr, n.Call):
            return f"{expr.name}({', '.join(self._expr(arg) for arg in expr.args)})"
        if isinstance(expr, n.History):
            return _history(expr)
        if isinstance(expr, n.Ref):
            return expr.name
        if isinstance(expr, n.ActionRef):
            return "action"
        if isinstance(expr, n.NowRef):
            return "now"
        return self._const(expr)

    def _const(self, const: n.Literal | n.SetLiteral) -> str:
        if isinstance(const, n.SetLiteral):
            return "{" + ", ".join(self._const(element) for element in const.elements) + "}"
        kind, value = const.kind, const.value
        if kind == "text":
            return _quote(str(value))
        if kind == "bool":
            return "true" if value else "false"
        if kind == "number" and isinstance(value, Decimal):
            return _decimal(value)
        if kind == "money" and isinstance(value, Decimal):
            # the node keeps the amount only; the currency symbol is in the source
            match = _MONEY.match(self._span_text(const.span))
            if match is None:  # pragma: no cover - a money literal's span starts with its symbol
                raise FormatterError(f"cannot find the currency of the amount at {const.span.location}")
            return match.group(1) + format(value, "f")
        if kind == "datetime" and isinstance(value, dt.datetime):
            written = self._span_text(const.span)
            return written if _DATETIME.fullmatch(written) else value.isoformat()
        if kind == "date" and isinstance(value, dt.date):
            return value.isoformat()
        if kind == "time" and isinstance(value, int):
            return n.hhmm(value)
        if kind == "duration" and isinstance(value, dt.timedelta):
            hours = int(value.total_seconds()) // 3600
            if self._span_text(const.span).rstrip().endswith(("day", "days")):
                return _amount(hours // 24, "days")
            return _amount(hours, "hours")
        if kind in ("int", "enum"):
            return str(value)
        raise FormatterError(f"cannot format a {kind} literal")  # pragma: no cover


# ------------------------------------------------------------ comments


class _Placer:
    """Puts the source's comments back into the printed lines."""

    def __init__(self, source: str, code: list[_Token], comments: list[_Comment], lines: list[_Line]) -> None:
        self.source = source
        self.code = code
        self.comments = comments
        self.lines = lines
        self.out_line: list[int] = []  # output token -> its line
        self.first_token: list[int] = []  # output line -> its first token
        out_texts: list[str] = []
        for index, line in enumerate(lines):
            self.first_token.append(len(out_texts))
            for token in _scan(line.code)[0]:
                out_texts.append(token.text)
                self.out_line.append(index)
        self.first_token.append(len(out_texts))
        self._match([token.text for token in code], out_texts)
        # every element (code token or comment) in source order, for blank-line lookups
        self.elements = sorted([(t.start, t.end) for t in code] + [(c.start, c.end) for c in comments])
        self.element_starts = [start for start, _ in self.elements]

    def _match(self, source: list[str], output: list[str]) -> None:
        """forward[k]/back[k]: the output token source token k maps to, or the
        next/previous one when it was dropped (e.g. a redundant bracket);
        inverse[j]: the source token of output token j, if any."""
        self.forward = [0] * len(source)
        self.back = [0] * len(source)
        self.inverse: list[int | None] = [None] * len(output)
        for tag, i1, i2, j1, j2 in _align(source, output):
            if tag in ("equal", "replace"):
                for k in range(i1, i2):
                    self.forward[k] = self.back[k] = j1 + min(k - i1, j2 - j1 - 1)
                for j in range(j1, j2):
                    self.inverse[j] = i1 + min(j - j1, i2 - i1 - 1)
            elif tag == "delete":
                for k in range(i1, i2):
                    self.forward[k], self.back[k] = j1, j1 - 1

    def _blank_before(self, position: int) -> bool:
        """Whether a blank line separates the element starting at `position`
        from the element before it in the source."""
        index = bisect.bisect_left(self.element_starts, position)
        if not index:
            return False
        return self.source.count("\n", self.elements[index - 1][1], position) >= 2

    def _slots(self) -> list[int]:
        """Where each comment goes: 2*L = on its own line before output line
        L (2*len(lines) = at the end), 2*L+1 = at the end of line L; kept in
        source order, one trailing comment per line."""
        end = 2 * len(self.lines)
        starts = [token.start for token in self.code]
        slots: list[int] = []
        previous = 0
        for comment in self.comments:
            following = bisect.bisect_left(starts, comment.start)
            if comment.own_line or following == 0:
                if following == len(self.code) or self.forward[following] >= len(self.out_line):
                    slot = end
                else:
                    slot = 2 * self.out_line[self.forward[following]]
            else:
                output = self.back[following - 1]
                slot = 2 * self.out_line[output] + 1 if output >= 0 else 0
            slot = max(slot, previous)
            if slot % 2 and slot == previous:  # that line has its trailing comment already
                slot += 1
            slots.append(slot)
            previous = slot
        return slots

    def render(self) -> str:
        slots = self._slots()
        before: dict[int, list[_Comment]] = {}
        trailing: dict[int, _Comment] = {}
        for comment, slot in zip(self.comments, slots, strict=True):
            if slot % 2:
                trailing[slot // 2] = comment
            else:
                before.setdefault(slot // 2, []).append(comment)
        columns = self._columns(trailing)
        out: list[str] = []

        def blank() -> None:
            if out and out[-1]:
                out.append("")

        for index, line in enumerate(self.lines):
            anchor = self._anchor_gap(self.first_token[index], self.first_token[index + 1])
            group = before.get(index, [])
            if group:
                may = line.blank == "may" or line.kind == "close"
                if line.blank == "must" or (may and self._blank_before(group[0].start)):
                    blank()
                indent = " " * (line.indent + (INDENT if line.kind == "close" else 0))
                self._comment_lines(group, indent, out, blank)
                if line.kind == "item" and anchor:
                    blank()
            elif line.blank == "must" or (line.blank == "may" and anchor):
                blank()
            text = " " * line.indent + line.code
            after = trailing.get(index)
            if after is not None:
                column = columns.get(line.group) if line.group is not None else None
                pad = column - len(text) if column is not None and len(text) <= _ALIGN_LIMIT else 2
                text += " " * max(pad, 2) + after.text
            out.append(text)
        group = before.get(len(self.lines), [])
        if group:
            if self._blank_before(group[0].start):
                blank()
            self._comment_lines(group, "", out, blank)
        return "\n".join(out) + "\n"

    def _comment_lines(self, group: list[_Comment], indent: str, out: list[str], blank: Any) -> None:
        for position, comment in enumerate(group):
            if position and self._blank_before(comment.start):
                blank()
            out.append(indent + comment.text)

    def _anchor_gap(self, first: int, end: int) -> bool:
        """Whether the source had a blank line before the code of an output
        line (tokens first..end; before the first that came from the source)."""
        for j in range(first, end):
            k = self.inverse[j]
            if k is not None:
                return self._blank_before(self.code[k].start)
        return False

    def _columns(self, trailing: dict[int, _Comment]) -> dict[int, int]:
        """Per block, the column its trailing comments align to."""
        widths: dict[int, int] = {}
        for index in trailing:
            line = self.lines[index]
            width = line.indent + len(line.code)
            if line.group is not None and width <= _ALIGN_LIMIT:
                widths[line.group] = max(widths.get(line.group, 0), width)
        return {group: width + 2 for group, width in widths.items()}


def _align(source: list[str], output: list[str], window: int = 40) -> Iterator[tuple[str, int, int, int, int]]:
    """difflib-style opcodes turning `source` into `output`, in linear time
    for what the formatter does to a token stream: it only drops tokens
    (redundant brackets, `1` of `per 1 day`, an empty `with {}`) and respells
    a few (literals, `days`/`day`). At a mismatch the cheapest resync within
    `window` tokens wins, dropping source tokens first."""
    i = j = 0
    while i < len(source) and j < len(output):
        start_i, start_j = i, j
        while i < len(source) and j < len(output) and source[i] == output[j]:
            i, j = i + 1, j + 1
        if i > start_i:
            yield "equal", start_i, i, start_j, j
        if i == len(source) or j == len(output):
            break
        skip = next(((a, cost - a) for cost in range(1, 2 * window + 1)
                     for a in range(min(cost, window), max(-1, cost - window - 1), -1)
                     if i + a < len(source) and j + cost - a < len(output)
                     and source[i + a] == output[j + cost - a]
                     and (a == 0 or a == cost or _respells(source, output, i, j, min(a, cost - a)))), (1, 1))
        a, b = skip
        tag = "replace" if a and b else "delete" if a else "insert"
        yield tag, i, i + a, j, j + b
        i, j = i + a, j + b
    if i < len(source):
        yield "delete", i, len(source), j, j
    elif j < len(output):
        yield "insert", i, i, j, len(output)


_UNITS = frozenset({"day", "days", "hour", "hours"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _respells(source: list[str], output: list[str], i: int, j: int, count: int) -> bool:
    """Whether the `count` tokens from source[i] may pair, one by one, with
    those from output[j] in a replacement. All of them, not only the first:
    `include "\\x" with { } account {` printed as `include "x" account {`
    would otherwise pair `with` with `account` (the string respelt, then the
    dropped `with { }` resynced on the next block's brace), and a comment in
    that block would follow the wrong brace."""
    return all(_respelling(source[i + k], output[j + k]) for k in range(count))


def _respelling(written: str, printed: str) -> bool:
    """Whether `printed` may be the formatter's spelling of `written`: a
    literal in canonical form or a unit's number, never one word for another
    (a dropped `with { }` must not pair `with` with the next item's keyword,
    which would carry comments into the wrong block)."""
    if written in _UNITS or printed in _UNITS:
        return written in _UNITS and printed in _UNITS
    return not _WORD.fullmatch(written) and not _WORD.fullmatch(printed)


def _verify(tree: n.PolicyFile, comments: list[_Comment], text: str, path: str) -> None:
    try:
        again = parse(text, path)
    except PolicyError as error:
        raise FormatterError(f"{path}: the formatted text does not parse ({error}); file left unchanged") from None
    if syntax_shape(again) != syntax_shape(tree):
        raise FormatterError(f"{path}: formatting would change the policy's meaning; file left unchanged")
    if comment_texts(text) != [comment.text for comment in comments]:
        raise FormatterError(f"{path}: formatting would lose or reorder comments; file left unchanged")
