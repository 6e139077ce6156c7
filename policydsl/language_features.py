"""What the language server knows about a policy, as pure functions.

`policy lsp` (lsp.py) is only the wiring between an editor and these
functions, so that every feature can be tested without a server. They reuse
the project's own pipeline, never a second parser: the loader (with the
document's path, so its includes resolve as `policy check` resolves them),
the checker and lints for diagnostics, the `Model` and the nodes' spans for
hover, definitions, references and symbols, the formatter for formatting and
`suggest.closest` (through the checker's messages) for the did-you-mean fixes.

The one thing added here is a lexical scan of a file's names (`_tokens`:
identifiers and strings outside comments), which the spans of the nodes do
not give one by one: an `actions` line has one span for all its names, a
rule one for its whole text. Which name a token is comes from the `Model`.

Positions here are the editor's: 0-based lines and characters (the nodes'
spans are 1-based; `span_range` converts).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from . import nodes as n
from .checker import CODES, check
from .errors import Diagnostic, PolicyError, PolicySyntaxError
from .formatter import format_source
from .functions import FUNCTIONS
from .loader import load_text
from .model import Model, all_files
from .parser import parse

LINTS_DOC = Path(__file__).resolve().parent.parent / "docs" / "lints.md"
LINTS_URL = "https://github.com/policydsl/policydsl/blob/main/docs/lints.md"

KEYWORDS_TOP = ("policy", "include", "account", "actions", "events", "outcomes", "stages", "segment", "stage",
                "experiment", "allow", "forbid", "window", "limit", "quiet")
KEYWORDS_RULE = ("allow", "forbid", "window", "limit", "quiet")
KEYWORDS_EXPR = ("and", "or", "not", "in", "now", "action", "true", "false", "count", "outcome")
KEYWORDS_TAIL = ("when", "because", "cite", "per", "where", "after", "for", "on", "except", "holidays", "with")
TYPES = ("int", "number", "money", "bool", "text", "date", "datetime", "zone", "set<text>", "set<int>", "enum()")


@dataclass(frozen=True)
class Range:
    """0-based, end exclusive, as LSP has it."""

    start_line: int
    start_character: int
    end_line: int
    end_character: int

    def contains(self, line: int, character: int) -> bool:
        return (self.start_line, self.start_character) <= (line, character) <= (self.end_line, self.end_character)


@dataclass(frozen=True)
class Location:
    path: str
    range: Range


@dataclass(frozen=True)
class Token:
    text: str  # a name, or a string's content
    quoted: bool
    range: Range


@dataclass
class Analysis:
    """One check of a document's text: what every feature reads."""

    path: str
    text: str
    diagnostics: list[Diagnostic]  # all files; `own_diagnostics` for this one
    model: Model | None = None
    tree: n.PolicyFile | None = None
    tokens: dict[str, list[Token]] = field(default_factory=dict)  # by file path

    # a diagnostic of an included file, shown on the include that reaches it: where it really is
    lifted: dict[Diagnostic, n.Span] = field(default_factory=dict)

    @property
    def own_diagnostics(self) -> list[Diagnostic]:
        """The diagnostics of this file, and those of the files it includes
        on the include line that reaches them (an editor shows a document's
        own diagnostics only, and a broken baseline must not look clean)."""
        out = []
        for diagnostic in self.diagnostics:
            if _same_file(diagnostic.span.file, self.path):
                out.append(diagnostic)
                continue
            include = self._include_reaching(diagnostic.span.file)
            if include is None:
                continue
            where = diagnostic.span
            shown = Diagnostic(diagnostic.code, diagnostic.severity,
                               f"in {include.path} ({Path(where.file).name}:{where.line}:{where.column}): "
                               f"{diagnostic.message}", include.span)
            self.lifted[shown] = where
            out.append(shown)
        return out

    def _include_reaching(self, path: str) -> n.Include | None:
        tree = self.tree
        if tree is None:  # the included file did not parse: this one may
            try:
                tree = parse(self.text, self.path)
            except PolicyError:
                return None
            beside = Path(self.path).parent
            for include in tree.includes:
                if not include.path.startswith("policydsl:") and _same_file(str(beside / include.path), path):
                    return include
            return tree.includes[0] if tree.includes else None
        for include, included in zip(tree.includes, tree.included, strict=False):
            if any(_same_file(source.path, path) for source in all_files(included)):
                return include
        return None

    def file_tokens(self, path: str) -> list[Token]:
        if path not in self.tokens:
            source = self.model.sources.get(path, "") if self.model else ""
            self.tokens[path] = list(_tokens(self.text if _same_file(path, self.path) else source))
        return self.tokens[path]


def _same_file(a: str, b: str) -> bool:
    return a == b or Path(a).resolve() == Path(b).resolve()


def span_range(span: n.Span) -> Range:
    return Range(span.line - 1, span.column - 1, span.end_line - 1, max(span.end_column - 1, 0))


# ---------------------------------------------------------------- analysis


def analyze(text: str, path: str) -> Analysis:
    """Load `text` as the file at `path` (includes resolve beside it) and
    check it: errors and lints, or the one syntax or include error that
    stops the reading."""
    try:
        tree = load_text(text, path)
    except PolicySyntaxError as error:
        return Analysis(path, text, [error.diagnostic])
    model, diagnostics = check(tree)
    return Analysis(path, text, diagnostics, model, tree)


def diagnostics_for(text: str, path: str) -> list[Diagnostic]:
    """The diagnostics an editor shows for the document: those in its file."""
    return analyze(text, path).own_diagnostics


def code_title(code: str) -> str:
    return CODES.get(code, "")


def related(analysis: Analysis, diagnostic: Diagnostic) -> list[tuple[Location, str]]:
    """Other places a diagnostic is about: the other stage of a gap or an
    overlap, the first declaration of a duplicate."""
    model = analysis.model
    lifted = analysis.lifted.get(diagnostic)
    if lifted is not None:
        return [(Location(lifted.file, span_range(lifted)), diagnostic.message.split(": ", 1)[-1])]
    if model is None:
        return []
    out: list[tuple[Location, str]] = []
    if diagnostic.code in ("E107", "E108"):
        names = re.findall(r"'([^']+)'", diagnostic.message)[:2]
        for name in names:
            stage = model.stage_named(name)
            if stage is not None and stage.span != diagnostic.span:
                out.append((Location(stage.span.file, span_range(stage.span)), f"stage {name!r}"))
    elif diagnostic.code == "E106":
        names = re.findall(r"'([^']+)'", diagnostic.message)[:1]
        for name in names:
            for location in declarations(analysis, name):
                if location.range != span_range(diagnostic.span):
                    out.append((location, f"{name!r} first declared here"))
                    break
    return out


@lru_cache(maxsize=1)
def _lint_sections() -> dict[str, str]:
    try:
        text = LINTS_DOC.read_text(encoding="utf-8")
    except OSError:
        return {}
    sections: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        head, _, body = part.partition("\n")
        if re.fullmatch(r"[EW]\d{3}", head.strip()):
            sections[head.strip()] = body.strip()
    return sections


def lint_doc(code: str) -> str:
    """The documentation of a diagnostic code (docs/lints.md's section, or its title)."""
    body = _lint_sections().get(code)
    if body is None:
        return f"**{code}**: {code_title(code)}" if code in CODES else ""
    return f"### {code}\n\n{body}"


def lint_url(code: str) -> str:
    anchor = "#" + code.lower()
    if LINTS_DOC.is_file():
        return LINTS_DOC.as_uri() + anchor
    return LINTS_URL + anchor


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"?|[A-Za-z_][A-Za-z0-9_]*')


def _tokens(text: str) -> Iterator[Token]:
    """Names and strings outside comments, with where they are."""
    for number, line in enumerate(text.split("\n")):
        for match in _TOKEN.finditer(line):
            word = match.group()
            if word.startswith("#"):
                continue
            quoted = word.startswith('"')
            content = word.strip('"') if quoted else word
            start = match.start() + (1 if quoted else 0)
            yield Token(content, quoted, Range(number, start, number, start + len(content)))


def token_at(analysis: Analysis, line: int, character: int) -> Token | None:
    for token in analysis.file_tokens(analysis.path):
        if token.range.start_line == line and token.range.start_character <= character <= token.range.end_character:
            return token
    return None


def kind_of(model: Model, token: Token) -> str | None:
    """What a token names in the model: field, segment, action, event,
    group, stage or outcome (outcomes are written quoted in rules)."""
    name = token.text
    if token.quoted:
        return "outcome" if name in model.outcomes else None
    if name in model.fields:
        return "field"
    if any(segment.name == name for segment in model.segments):
        return "segment"
    if name in model.groups:
        return "group"
    if name in model.actions:
        return "action"
    if name in model.events:
        return "event"
    if model.stage_named(name) is not None:
        return "stage"
    if name in model.outcomes:
        return "outcome"
    return None


# ---------------------------------------------------------------- definitions and references


def _name_in(analysis: Analysis, path: str, span: n.Span, name: str, quoted: bool | None = False) -> Range:
    """The range of `name` inside `span` of file `path` (the span itself when not found)."""
    whole = span_range(span)
    for token in analysis.file_tokens(path):
        if token.text == name and (quoted is None or token.quoted == quoted) and \
                whole.contains(token.range.start_line, token.range.start_character):
            return token.range
    return whole


def _declaration_spans(source: n.PolicyFile, name: str) -> Iterator[n.Span]:
    for fld in source.fields:
        if fld.name == name:
            yield fld.span
    for group in source.actions:
        if group.group == name or name in group.members:
            yield group.span
    for events in source.events:
        if name in events.names:
            yield events.span
    for stages in source.stages:
        for stage in stages.ranges:
            if stage.name == name:
                yield stage.span
    for segment in source.segments:
        if segment.name == name:
            yield segment.span
    for experiment in source.experiments:
        for group_ in experiment.groups:
            if group_.name == name:
                yield group_.span
    for outcomes in source.outcomes:
        if name in outcomes.names:
            yield outcomes.span


def declarations(analysis: Analysis, name: str) -> list[Location]:
    """Where `name` is declared: this file first, then its includes."""
    if analysis.model is None:
        return []
    found = []
    for source in all_files(analysis.model.policy):
        for span in _declaration_spans(source, name):
            found.append(Location(source.path, _name_in(analysis, source.path, span, name)))
    return found


def definition_at(analysis: Analysis, line: int, character: int) -> list[Location]:
    """Where the name under the cursor is declared; on an include's path, the included file."""
    token = token_at(analysis, line, character)
    tree = analysis.tree
    if token is not None and token.quoted and tree is not None:
        for include, included in zip(tree.includes, tree.included, strict=False):
            if include.path == token.text and span_range(include.span).contains(line, character):
                return [Location(included.path, Range(0, 0, 0, 0))]
    if token is None or analysis.model is None or kind_of(analysis.model, token) is None:
        return []
    return declarations(analysis, token.text)


def references_at(analysis: Analysis, line: int, character: int, include_declaration: bool = True) -> list[Location]:
    """Every place the name under the cursor is written, in the policy and its includes."""
    token = token_at(analysis, line, character)
    model = analysis.model
    if token is None or model is None:
        return []
    kind = kind_of(model, token)
    if kind is None:
        return []
    declared = set(declarations(analysis, token.text))
    found: list[Location] = []
    for source in all_files(model.policy):
        for other in analysis.file_tokens(source.path):
            if other.text == token.text and kind_of(model, other) == kind:
                location = Location(source.path, other.range)
                if include_declaration or location not in declared:
                    found.append(location)
    return found


# ---------------------------------------------------------------- hover


def _rules(model: Model) -> Iterator[n.Rule]:
    yield from model.allows
    yield from model.restrictions


def _literal_text(model: Model, node: n.Literal | n.SetLiteral | None) -> str | None:
    return None if node is None else model.source_text(node.span)


def hover_at(analysis: Analysis, line: int, character: int) -> str | None:
    """Markdown for what is under the cursor: a name (field type and
    default, an action's groups, a group's members, a segment's condition,
    a stage's range), a rule (its because and cite), a diagnostic code."""
    parts: list[str] = []
    token = token_at(analysis, line, character)
    if token is None:
        code = _code_at(analysis.text, line, character)
        if code:
            return lint_doc(code)
    model = analysis.model
    if token is not None and re.fullmatch(r"[EW]\d{3}", token.text) and token.text in CODES:
        return lint_doc(token.text)
    if model is not None and token is not None:
        parts.extend(_name_hover(model, token))
    if model is not None and not parts:
        rule = _rule_at(model, analysis.path, line, character)
        if rule is not None:
            parts.append(_rule_hover(model, rule))
    for diagnostic in analysis.own_diagnostics:
        if span_range(diagnostic.span).contains(line, character):
            parts.append(f"**{diagnostic.severity}[{diagnostic.code}]** {diagnostic.message}\n\n"
                         f"{code_title(diagnostic.code)} — [docs]({lint_url(diagnostic.code)})")
    return "\n\n---\n\n".join(parts) or None


def _code_at(text: str, line: int, character: int) -> str | None:
    lines = text.split("\n")
    if line >= len(lines):
        return None
    for match in re.finditer(r"[EW]\d{3}", lines[line]):
        if match.start() <= character <= match.end() and match.group() in CODES:
            return match.group()
    return None


def _name_hover(model: Model, token: Token) -> list[str]:
    kind = kind_of(model, token)
    name = token.text
    if kind == "field":
        fld = model.fields[name]
        default = _literal_text(model, fld.default)
        where = model.cited_path(fld.span.file)
        return [f"```policy\n{name} : {fld.type}" + (f" = {default}" if default is not None else "")
                + f"\n```\nfield of `account` ({where}:{fld.span.line})"
                + ("" if default is not None else "; required (no default)")
                + (" — the stage field" if name == model.stage_field else "")
                + (" — the time zone field" if name == model.zone_field else "")]
    if kind == "action":
        groups = [group for group, members in model.groups.items() if name in members]
        return [f"action `{name}`" + (f" — in groups: {', '.join(f'`{g}`' for g in groups)}" if groups
                                      else " — in no group")]
    if kind == "event":
        return [f"history event `{name}` (counted by limits and quiet periods, never decided)"]
    if kind == "group":
        return [f"group `{name}`: " + ", ".join(f"`{member}`" for member in model.groups[name])]
    if kind == "segment":
        segment = next(s for s in model.segments if s.name == name)
        return [f"segment `{name}`\n```policy\nwhen {model.source_text(segment.condition.span)}\n```"]
    if kind == "stage":
        stage = model.stage_named(name)
        assert stage is not None
        return [f"stage `{name}`: {model.stage_field} {stage.describe()}"]
    if kind == "outcome":
        return [f"outcome `\"{name}\"`" + (" (declared in `outcomes`)" if model.outcomes_declared else "")]
    return []


def _rule_at(model: Model, path: str, line: int, character: int) -> n.Rule | None:
    best: n.Rule | None = None
    for rule in _rules(model):
        if _same_file(rule.span.file, path) and span_range(rule.span).contains(line, character) and \
                (best is None or rule.span.line >= best.span.line):
            best = rule
    return best


def _rule_hover(model: Model, rule: n.Rule) -> str:
    lines = [f"**{type(rule).__name__.lower()}** rule `{model.ids.get(rule.span, '')}`"]
    if rule.stage:
        lines.append(f"in stage `{rule.stage}`")
    reason = getattr(rule, "reason", None)
    if reason is not None:
        lines.append(f"because: {reason.because}" if reason.because else "because: *(none given)*")
        if reason.cite:
            lines.append(f"cite: {reason.cite}")
    return "\n\n".join(lines)


# ---------------------------------------------------------------- symbols and folding


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # header, block, field, action, stage, segment, rule, experiment
    range: Range
    children: tuple[Symbol, ...] = ()


def _rule_label(rule: n.Rule) -> str:
    label = rule.text.split("\n")[0]
    return (rule.name + ": " if rule.name else "") + (label if len(label) <= 60 else label[:59] + "…")


def symbols(tree: n.PolicyFile) -> list[Symbol]:
    """The outline of one file: header, account fields, actions, stages,
    segments, experiments, stage blocks with their rules, top-level rules."""
    out = [Symbol(f"policy {tree.header.name} {tree.header.version}", "header", span_range(tree.header.span))]
    if tree.fields:
        children = tuple(Symbol(f.name, "field", span_range(f.span)) for f in tree.fields)
        out.append(Symbol("account", "block", _cover(children), children))
    if tree.actions:
        children = tuple(Symbol(g.group or ", ".join(g.members), "action", span_range(g.span)) for g in tree.actions)
        out.append(Symbol("actions", "block", _cover(children), children))
    for stages in tree.stages:
        children = tuple(Symbol(s.name, "stage", span_range(s.span)) for s in stages.ranges)
        out.append(Symbol(f"stages on {stages.field}", "block", span_range(stages.span), children))
    out.extend(Symbol(s.name, "segment", span_range(s.span)) for s in tree.segments)
    out.extend(Symbol(e.name, "experiment", span_range(e.span)) for e in tree.experiments)
    for block in tree.stage_blocks:
        children = tuple(Symbol(_rule_label(r), "rule", span_range(r.span)) for r in block.rules)
        out.append(Symbol(f"stage {block.name}", "stage", span_range(block.span), children))
    out.extend(Symbol(_rule_label(r), "rule", span_range(r.span)) for r in tree.rules)
    return out


def _cover(children: tuple[Symbol, ...]) -> Range:
    first, last = children[0].range, children[-1].range
    return Range(first.start_line, first.start_character, last.end_line, last.end_character)


def folding(text: str, tree: n.PolicyFile | None) -> list[tuple[int, int]]:
    """(start line, end line) of `{ … }` blocks, multi-line rules and
    segments, and runs of comment lines."""
    ranges: set[tuple[int, int]] = set()
    opened: list[int] = []
    comment_start: int | None = None
    lines = text.split("\n")
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            comment_start = number if comment_start is None else comment_start
        else:
            if comment_start is not None and number - 1 > comment_start:
                ranges.add((comment_start, number - 1))
            comment_start = None
        code = re.sub(r'"(?:[^"\\]|\\.)*"|#.*', "", line)
        for char in code:
            if char == "{":
                opened.append(number)
            elif char == "}" and opened:
                start = opened.pop()
                if number > start:
                    ranges.add((start, number))
    if comment_start is not None and len(lines) - 1 > comment_start:
        ranges.add((comment_start, len(lines) - 1))
    if tree is not None:
        for node in (*tree.segments, *tree.rules, *(r for b in tree.stage_blocks for r in b.rules)):
            if node.span.end_line > node.span.line:
                ranges.add((node.span.line - 1, node.span.end_line - 1))
    return sorted(ranges)


# ---------------------------------------------------------------- completion


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # keyword, field, segment, action, group, stage, outcome, function, zone, calendar, type
    detail: str = ""


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@lru_cache(maxsize=1)
def calendar_codes() -> tuple[str, ...]:
    import holidays

    return tuple(sorted(holidays.list_supported_countries()))


def completions_at(analysis: Analysis, line: int, character: int, model: Model | None = None) -> list[Completion]:
    """What may be written at the cursor, from the line before it: zone names
    and calendars inside strings, types after a field's `:`, actions and
    groups after a rule keyword, stage names after `stage`, keywords at the
    start of a line, and otherwise names and functions of conditions.
    `model` is one to take names from when the text does not check now
    (the last one that did)."""
    model = analysis.model or model
    lines = analysis.text.split("\n")
    before = lines[line][:character] if line < len(lines) else ""
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', before.split("#")[0] if before.count('"') % 2 == 0 else before)
    if before.count('"') % 2 == 1:  # inside a string
        if re.search(r"holidays\s+\"[^\"]*$", before):
            return [Completion(c, "calendar", "holiday calendar") for c in calendar_codes()]
        if model is not None and re.search(r"outcome|outcomes|\{", before):
            found = [Completion(o, "outcome", "outcome") for o in model.outcomes]
            if found and "zone" not in before:
                return found
        return [Completion(z, "zone", "IANA time zone") for z in zone_names()]
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[^\sA-Za-z0-9_]", code)
    if words and re.fullmatch(r"\w+", words[-1]) and not code[-1:].isspace():
        words = words[:-1]  # the word being typed: what comes before it decides
    previous = words[-1] if words else ""
    at_start = not words
    if model is not None:
        targets = [Completion(a, "action", "action") for a in model.actions] + \
            [Completion(g, "group", "group of " + ", ".join(m)) for g, m in model.groups.items()]
        conditions = [Completion(f, "field", str(d.type)) for f, d in model.fields.items()] + \
            [Completion(s.name, "segment", "segment") for s in model.segments]
        stages = [Completion(s.name, "stage", s.describe()) for s in model.stages]
    else:
        targets, conditions, stages = [], [], []
    functions = [Completion(name, "function", "function") for name in sorted(FUNCTIONS)]
    if previous == ":" and re.match(r"\s+\w+\s*:", code):
        return [Completion(t, "type", "type") for t in TYPES]
    if previous in KEYWORDS_RULE or (previous == "," and words and words[0] in KEYWORDS_RULE and \
            "when" not in words):
        return [*targets, Completion("all", "keyword")]
    if previous == "stage":
        return stages
    if previous == "count" or (previous == "after" and model is not None):
        return [*targets, *[Completion(e, "action", "event") for e in (model.events if model else [])]]
    if at_start:
        inside_stage = _inside_block(lines, line, "stage")
        keywords = KEYWORDS_RULE if inside_stage else KEYWORDS_TOP
        return [Completion(k, "keyword") for k in keywords]
    if previous in ("when", "and", "or", "not", "(", "==", "!=", "<", ">", "<=", ">=", "=", "+", "-", "in", "where"):
        return [*conditions, *functions, *(Completion(k, "keyword") for k in KEYWORDS_EXPR)]
    names = [*conditions, *targets, *stages, *functions]
    return [*names, *(Completion(k, "keyword") for k in (*KEYWORDS_TAIL, *KEYWORDS_EXPR))]


def _inside_block(lines: list[str], line: int, keyword: str) -> bool:
    depth = 0
    for number in range(line - 1, -1, -1):
        code = re.sub(r'"(?:[^"\\]|\\.)*"|#.*', "", lines[number])
        depth += code.count("}") - code.count("{")
        if depth < 0:
            return code.strip().startswith(keyword + " ")
    return False


# ---------------------------------------------------------------- formatting and code actions


@dataclass(frozen=True)
class Edit:
    range: Range
    new_text: str


def formatting(text: str, path: str) -> list[Edit] | None:
    """One edit replacing the document with what `policy fmt` writes; None
    when the text does not parse (broken text is never formatted), [] when
    it is formatted already."""
    try:
        formatted = format_source(text, path)
    except PolicyError:
        return None
    if formatted == text:
        return []
    lines = text.split("\n")
    return [Edit(Range(0, 0, len(lines) - 1, len(lines[-1])), formatted)]


@dataclass(frozen=True)
class Action:
    title: str
    edits: tuple[Edit, ...]
    diagnostic: Diagnostic | None = None
    preferred: bool = False


def code_actions(analysis: Analysis, selection: Range) -> list[Action]:
    """Quick fixes for the diagnostics touching `selection`: the checker's
    did-you-mean, closing a stage gap, adding a missing `because`."""
    lines = analysis.text.split("\n")
    out: list[Action] = []
    for diagnostic in analysis.own_diagnostics:
        where = span_range(diagnostic.span)
        if where.end_line < selection.start_line or where.start_line > selection.end_line:
            continue
        if diagnostic.code == "W203":
            fix = _add_because(analysis, diagnostic, lines)
        elif diagnostic.code == "E107":
            fix = _close_gap(analysis, diagnostic, lines)
        else:
            fix = _did_you_mean(analysis, diagnostic)
        if fix is not None:
            out.append(fix)
    return out


def _did_you_mean(analysis: Analysis, diagnostic: Diagnostic) -> Action | None:
    match = re.search(r"did you mean '([^']+)'\?", diagnostic.message)
    wrong = re.search(r"'([^']+)'", diagnostic.message)
    if match is None or wrong is None or wrong.group(1) == match.group(1):
        return None
    name, fixed = wrong.group(1), match.group(1)
    where = span_range(diagnostic.span)
    for token in analysis.file_tokens(analysis.path):
        if token.text == name and not token.quoted and where.contains(token.range.start_line,
                                                                       token.range.start_character):
            return Action(f"Change {name!r} to {fixed!r}", (Edit(token.range, fixed),), diagnostic, True)
    return None


def _close_gap(analysis: Analysis, diagnostic: Diagnostic, lines: list[str]) -> Action | None:
    names = re.findall(r"'([^']+)'", diagnostic.message)
    if analysis.model is None or len(names) < 2:
        return None
    before, after = analysis.model.stage_named(names[0]), analysis.model.stage_named(names[1])
    if before is None or after is None or before.high is None or after.low is None:
        return None
    where = span_range(after.span)
    text = lines[where.start_line]
    number = re.compile(r"(?<![\w.])-?\d+(?![\w])")
    found = number.search(text, where.start_character + len(after.name))
    if found is None:
        return None
    new_low = before.high + 1
    edit = Edit(Range(where.start_line, found.start(), where.start_line, found.end()), str(new_low))
    return Action(f"Start stage {after.name!r} at {new_low} (close the gap after {before.name!r})", (edit,),
                  diagnostic, True)


def _add_because(analysis: Analysis, diagnostic: Diagnostic, lines: list[str]) -> Action | None:
    rule = next((r for r in _rules(analysis.model) if r.span == diagnostic.span), None) \
        if analysis.model is not None else None
    span = rule.span if rule is not None else diagnostic.span
    where = span_range(span)
    indent = len(lines[where.start_line]) - len(lines[where.start_line].lstrip())
    edit = Edit(Range(where.end_line, where.end_character, where.end_line, where.end_character),
                "\n" + " " * (indent + 4) + 'because "TODO: why this is forbidden"')
    return Action("Add a `because` to this forbid", (edit,), diagnostic, False)


# ---------------------------------------------------------------- the Explain code lens


@dataclass(frozen=True)
class Lens:
    range: Range
    title: str
    account_id: str | None


MAX_LENS_ACCOUNTS = 5


def explain_lenses(analysis: Analysis, accounts: str = "accounts.csv", history: str | None = "contacts.csv",
                   now: dt.datetime | None = None, limit: int = MAX_LENS_ACCOUNTS) -> list[Lens]:
    """One lens on the policy line per account of the accounts file beside
    the policy (`accounts`, relative to its directory), with the decision
    under the document's text as it is now: stage, next action, allowed and
    blocked actions. The contact history beside it (`history`) is used when
    it exists. Nothing when the text does not check or there is no such file;
    a line saying why when the file cannot be read."""
    from .compiler import Policy
    from .io import InputError, Vocabulary, read_accounts, read_history

    model, tree = analysis.model, analysis.tree
    if model is None or tree is None or any(d.severity == "error" for d in analysis.diagnostics):
        return []
    base = Path(analysis.path).parent
    accounts_path = base / accounts
    if not accounts_path.is_file():
        return []
    where = span_range(tree.header.span)
    at = now or dt.datetime.now(dt.UTC)
    try:
        policy = Policy(model)
        contacts = read_history(str(base / history), Vocabulary.of(model)) \
            if history and (base / history).is_file() else None
        lenses = []
        for row in read_accounts(str(accounts_path), set(), set(model.fields)):
            if row.values is None:
                continue
            account_id = row.values.get("id")
            decision = policy.evaluate(row.values, contacts.for_account(account_id) if contacts else [], now=at)
            if decision.error:
                title = f"Explain {account_id}: cannot be evaluated: {decision.error}"
            else:
                title = (f"Explain {account_id}: stage {decision.stage or '-'}, next {decision.next_action or 'none'}"
                         f"; allowed {', '.join(decision.allowed) or 'none'}"
                         f"; blocked {len(decision.blocked)}")
            lenses.append(Lens(where, title, account_id))
            if len(lenses) >= limit:
                break
        return lenses
    except (PolicyError, InputError, OSError, ValueError) as error:
        return [Lens(where, f"Explain: {accounts_path.name}: {error}", None)]
