"""`policy test`: scenario files for policies, checked against the engine, with coverage.

A test file is YAML (read with a bounded `yaml.SafeLoader` only: no tag can
build a Python object, and an alias bomb, deep nesting or a huge integer is
a positioned error) naming a policy and listing cases: an account, its contact
history, an instant, and what the decision must say. The format is documented
in docs/testing.md; `load_test_file` checks a file's shape and `run_file`
checks it against the policy it names (action, stage, segment and field
names, rule lines), so a typo is an error that names the file, the case and
the key, never a vacuous pass.

Each case is decided by the compiled engine (`load_policy`), the one
services embed. With coverage on, the case is evaluated a second time by
`Tracer`, an instrumented walk built from the reference interpreter's pieces
(`reference.py`), which records which rules decided something and which
outcome each operand of every `and`/`or` had. Coverage items are syntax-tree
nodes, not lines, so reformatting a policy never changes its percentage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from . import load_policy
from . import nodes as n
from . import reference as ref
from .compiler import Policy
from .decision import Blocked, Contact, Decision, format_instant
from .errors import AccountError, PolicyError
from .model import Model
from .suggest import did_you_mean, did_you_mean_aside

KINDS = ("not_allowed", "forbidden", "window", "limit", "quiet")
TEST_SUFFIXES = (".test.yaml", ".test.yml")
MAX_TEST_FILE_BYTES = 5_000_000

_TOP_KEYS = ("policy", "now", "defaults", "cases")
_CASE_KEYS = ("name", "now", "account", "history", "expect")
_HISTORY_KEYS = ("action", "at", "outcome")
_EXPECT_KEYS = ("stage", "segments", "allowed", "allowed_includes", "next_action", "blocked", "not_blocked",
                "error_contains")
_REASON_KEYS = ("kind", "rule", "reason_contains", "until")
_SCALARS = (str, int, float, bool, dt.date)
_RULE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # a rule name or a generated id (Model.assign_ids)


class TestFileError(PolicyError):
    """A test file that cannot be used: unreadable, not YAML, not of the
    documented shape, or naming things its policy does not have. The message
    names the file, the case and the key."""

    __test__ = False  # not a pytest test class

    def __init__(self, path: str, message: str, case: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.case = case
        self.key = key
        where = path
        if case is not None:
            where += f": {case}"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}")


# ------------------------------------------------------------ the file's shape


_UNSET: Any = object()  # an expectation key that was not given (None is a value: `until: null`)


@dataclass(frozen=True)
class RuleRef:
    """`rule:` of a reason: the rule's stable id (`id`, the same `rule_id`
    decisions carry), or a line of the policy under test (`file` None) or
    `file:line` of an included file, the file relative to the policy's
    directory. Ids survive edits elsewhere in the policy; lines do not."""

    file: str | None
    line: int | None
    id: str | None = None

    def __str__(self) -> str:
        if self.id is not None:
            return self.id
        return str(self.line) if self.file is None else f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ReasonSpec:
    """One expected reason for a blocked action; every given key must match."""

    kind: str | None = None
    rule: RuleRef | None = None
    reason_contains: str | None = None
    until: Any = _UNSET  # an aware datetime, None (time alone will not lift it), or _UNSET

    def describe(self) -> str:
        parts = []
        if self.kind:
            parts.append(f"kind {self.kind}")
        if self.rule is not None:
            parts.append(f"rule {self.rule}")
        if self.reason_contains is not None:
            parts.append(f"reason containing {self.reason_contains!r}")
        return ", ".join(parts) or "any reason"


@dataclass(frozen=True)
class BlockedSpec:
    """What `blocked:` says about one action. `exact`: the action has exactly
    these reasons (the list form); otherwise each spec must match one of them."""

    action: str
    reasons: tuple[ReasonSpec, ...]
    exact: bool


@dataclass(frozen=True)
class Expect:
    stage: Any = _UNSET  # str or None (in no stage)
    segments: tuple[str, ...] | None = None
    allowed: tuple[str, ...] | None = None
    allowed_includes: tuple[str, ...] = ()
    next_action: Any = _UNSET  # str or None
    blocked: tuple[BlockedSpec, ...] = ()
    not_blocked: tuple[str, ...] = ()
    error_contains: str | None = None

    def blocked_actions(self) -> tuple[str, ...]:
        return tuple(spec.action for spec in self.blocked)


@dataclass(frozen=True)
class Case:
    name: str
    number: int  # 1-based position in the file
    now: dt.datetime
    account: dict[str, Any]
    history: tuple[tuple[str, dt.datetime, str], ...]  # (action, at, outcome)
    expect: Expect

    @property
    def label(self) -> str:
        return f"case {self.number} {self.name!r}"


@dataclass(frozen=True)
class ScenarioFile:
    """A parsed, shape-checked test file."""

    path: str
    policy_path: str  # resolved against the test file's directory
    cases: tuple[Case, ...]


def is_test_file(path: str | os.PathLike[str]) -> bool:
    return str(path).endswith(TEST_SUFFIXES)


def find_test_files(paths: Iterable[str]) -> list[str]:
    """Files as given (any name); directories: every `*.test.yaml` and
    `*.test.yml` below them, sorted."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and is_test_file(p)))
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def load_test_file(path: str | os.PathLike[str]) -> ScenarioFile:
    """Read and shape-check a test file (nothing about its policy yet)."""
    shown = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TestFileError(shown, f"cannot read test file: {exc.strerror or exc}") from None
    if len(data) > MAX_TEST_FILE_BYTES:
        raise TestFileError(shown, f"test file is larger than {MAX_TEST_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TestFileError(shown, f"test file is not UTF-8 (byte {exc.start})") from None
    return parse_test_file(text, shown)


MAX_YAML_NODES = 1_000_000  # nodes of the document with every alias expanded
MAX_YAML_DEPTH = 100  # nesting of sequences and mappings
MAX_YAML_INT_CHARS = 1000  # the written form of one integer


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (no tag can build a Python object) that refuses,
    with the line and column, what would otherwise exhaust memory or the
    stack long after reading: an alias bomb (a few lines whose aliases expand
    to billions of nodes, caught by counting each node's expanded size as it
    is composed), nesting deep enough for a RecursionError, and integers
    too long for `int()` (or for printing one in a message)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it stands for, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            alias = super().compose_node(parent, index)
            if id(alias) not in self._sizes:
                raise yaml.composer.ComposerError(None, None, "an alias to a node that contains it", mark)
            return alias
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1 + sum(self._sizes[id(child)] for child in _children(node))
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(None, None, f"aliases expand this to more than {MAX_YAML_NODES:,} "
                                              "nodes", mark)
        self._sizes[id(node)] = size
        return node

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_YAML_INT_CHARS:
            raise yaml.constructor.ConstructorError(None, None, f"an integer longer than {MAX_YAML_INT_CHARS} "
                                                    "characters", node.start_mark)
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _children(node: yaml.Node | None) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def parse_test_file(text: str, path: str = "<test>") -> ScenarioFile:
    """Shape-check test-file text. Only a SafeLoader: a `!!python/...` tag
    is refused, never executed; alias bombs, deep nesting and huge integers
    are refused with their position."""
    try:
        document = yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as exc:
        raise TestFileError(path, "not a YAML document safe loading accepts: " + " ".join(str(exc).split())) \
            from None
    top = _Checker(path)
    if not isinstance(document, dict):
        raise top.error(f"expected a mapping with the keys {', '.join(_TOP_KEYS)}; got {_kind(document)}")
    top.keys(document, _TOP_KEYS, required=("policy", "cases"))
    policy = document["policy"]
    if not isinstance(policy, str) or not policy.strip():
        raise top.error("expected the path of the policy file, relative to this file", "policy")
    policy_path = os.path.normpath(os.path.join(os.path.dirname(path), policy))
    now = top.instant(document["now"], "now") if document.get("now") is not None else None
    defaults = top.account(document.get("defaults") or {}, "defaults")
    cases_data = document["cases"]
    if not isinstance(cases_data, list) or not cases_data:
        raise top.error(f"expected a non-empty list of cases; got {_kind(cases_data)}", "cases")
    cases: list[Case] = []
    names: dict[str, int] = {}
    for number, raw in enumerate(cases_data, 1):
        case = _case(path, number, raw, now, defaults)
        if case.name in names:
            raise TestFileError(path, f"the name is already used by case {names[case.name]}", case.label, "name")
        names[case.name] = number
        cases.append(case)
    return ScenarioFile(path, policy_path, tuple(cases))


def _case(path: str, number: int, raw: Any, now: dt.datetime | None, defaults: dict[str, Any]) -> Case:
    label = f"case {number}"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"].strip():
        label = f"case {number} {raw['name']!r}"
    check = _Checker(path, label)
    if not isinstance(raw, dict):
        raise check.error(f"expected a mapping with the keys {', '.join(_CASE_KEYS)}; got {_kind(raw)}")
    check.keys(raw, _CASE_KEYS, required=("name", "expect"))
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise check.error("expected a non-empty text", "name")
    if raw.get("now") is not None:
        now = check.instant(raw["now"], "now")
    if now is None:
        raise check.error("no instant: give `now:` at the top of the file or in the case", "now")
    account = {**defaults, **check.account(raw.get("account") or {}, "account")}
    history_data = raw.get("history") or []
    if not isinstance(history_data, list):
        raise check.error(f"expected a list of contacts; got {_kind(history_data)}", "history")
    history = tuple(check.contact(entry, f"history[{index}]") for index, entry in enumerate(history_data))
    return Case(name, number, now, account, history, check.expect(raw["expect"]))


class _Checker:
    """Shape checks that say where: file, case and key."""

    def __init__(self, path: str, case: str | None = None) -> None:
        self.path = path
        self.case = case

    def error(self, message: str, key: str | None = None) -> TestFileError:
        return TestFileError(self.path, message, self.case, key)

    def keys(self, mapping: dict[Any, Any], allowed: Sequence[str], required: Sequence[str] = (),
             where: str | None = None) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean_aside(str(key), allowed)
                raise self.error(f"unknown key {key!r}{hint}; expected one of {', '.join(allowed)}",
                                 f"{where}.{key}" if where else str(key))
        for key in required:
            if key not in mapping:
                raise self.error("missing", f"{where}.{key}" if where else key)

    def instant(self, value: Any, key: str) -> dt.datetime:
        instant = parse_instant(value)
        if instant is not None:
            return instant
        naive = value if isinstance(value, dt.datetime) else None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                naive = dt.datetime.fromisoformat(value.strip())
        if naive is not None:
            raise self.error(f"{naive.isoformat()} has no offset; write Z or +08:00", key)
        raise self.error(f"{_show(value)} is not an ISO-8601 instant with an offset, "
                         "such as 2025-06-04T10:00:00+08:00 or 2025-06-04T02:00:00Z", key)

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(f"expected a name; got {_show(value)}", key)
        return value

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error(f"expected a list of names; got {_kind(value)}", key)
        names = tuple(self.text(item, f"{key}[{index}]") for index, item in enumerate(value))
        repeated = [name for name in dict.fromkeys(names) if names.count(name) > 1]
        if repeated:
            raise self.error(f"{repeated[0]!r} is listed twice", key)
        return names

    def account(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(f"expected a mapping of account fields; got {_kind(value)}", key)
        out: dict[str, Any] = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise self.error(f"field names are text; got {_show(name)}", key)
            ok = item is None or isinstance(item, _SCALARS) or (
                isinstance(item, list) and all(isinstance(part, _SCALARS) for part in item))
            if not ok:
                raise self.error(f"expected a value or a list of values; got {_kind(item)}", f"{key}.{name}")
            if isinstance(item, dt.datetime) and (item.tzinfo is None or item.utcoffset() is None):
                raise self.error(f"{item.isoformat()} has no offset; write Z or +08:00", f"{key}.{name}")
            out[name] = item
        return out

    def contact(self, value: Any, key: str) -> tuple[str, dt.datetime, str]:
        if not isinstance(value, dict):
            raise self.error(f"expected a mapping with the keys {', '.join(_HISTORY_KEYS)}; got {_kind(value)}", key)
        self.keys(value, _HISTORY_KEYS, required=("action", "at"), where=key)
        outcome = value.get("outcome", "")
        if outcome is None:
            outcome = ""
        if not isinstance(outcome, str):
            raise self.error(f"expected text; got {_show(outcome)} (quote it)", f"{key}.outcome")
        return self.text(value["action"], f"{key}.action"), self.instant(value["at"], f"{key}.at"), outcome

    def expect(self, value: Any) -> Expect:
        if not isinstance(value, dict) or not value:
            raise self.error(f"expected a mapping with at least one of {', '.join(_EXPECT_KEYS)}; "
                             f"got {_kind(value)}", "expect")
        self.keys(value, _EXPECT_KEYS, where="expect")
        if "error_contains" in value and len(value) > 1:
            raise self.error("an error decision decides nothing: give error_contains alone", "expect")
        got: dict[str, Any] = {}
        for key in ("stage", "next_action"):
            if key in value:
                if value[key] is not None:
                    self.text(value[key], f"expect.{key}")
                got[key] = value[key]
        for key in ("segments", "allowed", "allowed_includes", "not_blocked"):
            if key in value:
                got[key] = self.names(value[key], f"expect.{key}")
        if "blocked" in value:
            got["blocked"] = self.blocked(value["blocked"])
        if "error_contains" in value:
            if not isinstance(value["error_contains"], str) or not value["error_contains"]:
                raise self.error(f"expected text; got {_show(value['error_contains'])}", "expect.error_contains")
            got["error_contains"] = value["error_contains"]
        expect = Expect(**got)
        both = set(expect.blocked_actions()) & set(expect.not_blocked + (expect.allowed or ()))
        if both:
            raise self.error(f"{sorted(both)[0]!r} is expected both blocked and not", "expect.blocked")
        return expect

    def blocked(self, value: Any) -> tuple[BlockedSpec, ...]:
        key = "expect.blocked"
        if isinstance(value, list):  # blocked: [sms, ivr]: blocked, for whatever reason
            return tuple(BlockedSpec(action, (ReasonSpec(),), False) for action in self.names(value, key))
        if not isinstance(value, dict) or not value:
            raise self.error(f"expected a list of actions or a mapping of action to reason; got {_kind(value)}", key)
        specs = []
        for action, spec in value.items():
            where = f"{key}.{action}"
            self.text(action, key)
            if isinstance(spec, list):
                if not spec:
                    raise self.error("expected one or more reasons", where)
                reasons = tuple(self.reason(item, f"{where}[{index}]") for index, item in enumerate(spec))
                untils = {format_instant(r.until) for r in reasons if r.until is not _UNSET}
                if len(untils) > 1:
                    raise self.error("`until` is the action's, the same on every reason: give it once", where)
                specs.append(BlockedSpec(action, reasons, True))
            else:
                specs.append(BlockedSpec(action, (self.reason(spec, where),), False))
        return tuple(specs)

    def reason(self, value: Any, key: str) -> ReasonSpec:
        if value is None:
            return ReasonSpec()
        if isinstance(value, str):  # shorthand: the kind alone
            value = {"kind": value}
        if not isinstance(value, dict):
            raise self.error(f"expected a kind or a mapping with the keys {', '.join(_REASON_KEYS)}; "
                             f"got {_kind(value)}", key)
        self.keys(value, _REASON_KEYS, where=key)
        kind = value.get("kind")
        if kind is not None and kind not in KINDS:
            hint = did_you_mean_aside(str(kind), KINDS)
            raise self.error(f"{_show(kind)} is not a kind{hint}; expected one of {', '.join(KINDS)}", f"{key}.kind")
        rule = self.rule(value["rule"], f"{key}.rule") if value.get("rule") is not None else None
        contains = value.get("reason_contains")
        if contains is not None and (not isinstance(contains, str) or not contains):
            raise self.error(f"expected text; got {_show(contains)}", f"{key}.reason_contains")
        until: Any = _UNSET
        if "until" in value:
            until = None if value["until"] is None else self.instant(value["until"], f"{key}.until")
        return ReasonSpec(kind, rule, contains, until)

    def rule(self, value: Any, key: str) -> RuleRef:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return RuleRef(None, value)
        if isinstance(value, str):
            file, _, line = value.rpartition(":")
            if line.isdigit() and int(line) > 0:
                return RuleRef(file or None, int(line))
            if _RULE_ID.fullmatch(value):
                return RuleRef(None, None, value)
        raise self.error(f"{_show(value)} is not a rule: write its id (no_threats, window-1a2b3c4d), its line "
                         "number (79) or, for a rule of an included file, file:line "
                         "(cn_collection_baseline.policy:67)", key)


def parse_instant(value: Any) -> dt.datetime | None:
    """An aware datetime from YAML (a timestamp or ISO text), else None."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, dt.datetime) and value.tzinfo is not None and value.utcoffset() is not None:
        return value
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _show(value)


def _show(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "…"


# ------------------------------------------------------------ binding a file to its policy


@dataclass(frozen=True)
class _Target:
    """What a file's names must exist in: its compiled policy."""

    policy: Policy
    citable: dict[str, set[int]]  # resolved file -> lines a decision can cite
    ids: set[str] = field(default_factory=set)  # the ids of what a decision can cite

    @staticmethod
    def of(policy: Policy) -> _Target:
        model = policy.model
        citable: dict[str, set[int]] = {}

        ids: set[str] = set()

        def add(span: n.Span) -> None:
            citable.setdefault(_resolved(span.file), set()).add(span.line)
            ids.add(model.ids[span])

        add(model.policy.header.span)
        for stages in model.policy.stages:
            add(stages.span)
        for stage in model.stages:
            add(stage.span)
        for rule in [*model.allows, *model.restrictions]:
            add(rule.span)
        for path in model.sources:
            citable.setdefault(_resolved(path), set())
        return _Target(policy, citable, ids)


def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def check_against_policy(scenarios: ScenarioFile, policy: Policy) -> None:
    """Every name and rule line of the file must exist in the policy: a typo
    must fail loudly, not pass vacuously (`not_blocked: [smss]`)."""
    target = _Target.of(policy)
    model = policy.model
    actions = set(model.actions)
    stages = {stage.name for stage in model.stages}
    segments = {segment.name for segment in model.segments}
    counted = actions | set(model.events)
    for case in scenarios.cases:
        check = _Checker(scenarios.path, case.label)
        for name in case.account:
            _known(check, name, set(model.fields), "field", f"account.{name}")
        for index, (action, _, _) in enumerate(case.history):
            _known(check, action, counted, "action or event", f"history[{index}].action")
        expect = case.expect
        named = [("allowed", name) for name in expect.allowed or ()]
        named += [("allowed_includes", name) for name in expect.allowed_includes]
        named += [("not_blocked", name) for name in expect.not_blocked]
        named += [("blocked", spec.action) for spec in expect.blocked]
        if isinstance(expect.next_action, str):
            named.append(("next_action", expect.next_action))
        for key, name in named:
            _known(check, name, actions, "action", f"expect.{key}")
        if isinstance(expect.stage, str):
            _known(check, expect.stage, stages, "stage", "expect.stage")
        for name in expect.segments or ():
            _known(check, name, segments, "segment", "expect.segments")
        for spec in expect.blocked:
            for index, reason in enumerate(spec.reasons):
                if reason.rule is not None:
                    key = f"expect.blocked.{spec.action}" + (f"[{index}]" if spec.exact else "") + ".rule"
                    _rule_location(check, reason.rule, policy, target, key)


def _known(check: _Checker, name: str, known: set[str], what: str, key: str) -> None:
    if name not in known:
        raise check.error(f"the policy has no {what} {name!r}{did_you_mean(name, known)}", key)


def _rule_location(check: _Checker, rule: RuleRef, policy: Policy, target: _Target, key: str) -> None:
    """That the rule a reference names exists: its id, or its file and line."""
    if rule.id is not None:
        if rule.id not in target.ids:
            raise check.error(f"the policy has no rule with id {rule.id!r}{did_you_mean(rule.id, target.ids)} "
                              "(ids are shown by "
                              "`policy explain` and in every decision's `rule_id`)", key)
        return
    wanted = rule.line
    assert wanted is not None
    base = os.path.dirname(policy.path)
    file = _resolved(policy.path if rule.file is None else os.path.join(base, rule.file))
    if file not in target.citable:
        files = ", ".join(os.path.relpath(path, base or ".") for path in policy.model.sources)
        raise check.error(f"{rule.file!r} is not one of the policy's files ({files}; paths relative to the "
                          "policy's directory)", key)
    lines = target.citable[file]
    if wanted not in lines:
        nearest = min(lines, key=lambda line: (abs(line - wanted), line), default=None)
        hint = f"; the nearest rule starts on line {nearest}" if nearest else ""
        raise check.error(f"line {wanted} starts no rule, stage or allow a decision can cite{hint}", key)


# ------------------------------------------------------------ running and comparing


@dataclass(frozen=True)
class Mismatch:
    key: str
    expected: str
    actual: str


@dataclass
class CaseResult:
    case: Case
    decision: Decision
    mismatches: list[Mismatch]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass
class FileResult:
    path: str
    policy_path: str | None = None
    results: list[CaseResult] = field(default_factory=list)
    error: str | None = None  # the file could not be used at all
    seconds: float = 0.0

    @property
    def failed(self) -> list[CaseResult]:
        return [result for result in self.results if not result.passed]


def account_values(case: Case, policy: Policy) -> dict[str, Any]:
    """The case's account as `evaluate` takes it. YAML reads `id: 1001` as a
    number; a text or enum field gets the digits, as a CSV would give them."""
    values = dict(case.account)
    for name, value in values.items():
        fld = policy.model.fields.get(name)
        if fld is not None and fld.type.kind in ("text", "enum") and isinstance(value, int) \
                and not isinstance(value, bool):
            values[name] = str(value)
    return values


def contacts(case: Case, account: dict[str, Any]) -> list[Contact]:
    account_id = account.get("id")
    shown = "" if account_id is None else str(account_id)
    return [Contact(shown, action, at, outcome) for action, at, outcome in case.history]


def compare(case: Case, decision: Decision, policy: Policy) -> list[Mismatch]:
    """Every way `decision` differs from what the case expects."""
    expect = case.expect
    if expect.error_contains is not None:
        if decision.error is None:
            return [Mismatch("error_contains", f"an error containing {expect.error_contains!r}", "no error")]
        if expect.error_contains not in decision.error:
            return [Mismatch("error_contains", f"an error containing {expect.error_contains!r}", decision.error)]
        return []
    if decision.error is not None:
        return [Mismatch("error", "a decision", f"error: {decision.error}")]
    out: list[Mismatch] = []
    if expect.stage is not _UNSET and decision.stage != expect.stage:
        out.append(Mismatch("stage", _name(expect.stage), _name(decision.stage)))
    if expect.segments is not None and set(decision.segments) != set(expect.segments):
        order = [segment.name for segment in policy.model.segments]
        wanted = sorted(expect.segments, key=order.index)
        out.append(Mismatch("segments", _names(wanted), _names(decision.segments)))
    if expect.allowed is not None and tuple(decision.allowed) != expect.allowed:
        out.append(Mismatch("allowed", _names(expect.allowed), _names(decision.allowed)))
    missing = [action for action in expect.allowed_includes if action not in decision.allowed]
    if missing:
        out.append(Mismatch("allowed_includes", f"{_names(expect.allowed_includes)} among the allowed",
                            f"{_names(decision.allowed)} (missing {', '.join(missing)})"))
    if expect.next_action is not _UNSET and decision.next_action != expect.next_action:
        out.append(Mismatch("next_action", _name(expect.next_action), _name(decision.next_action)))
    for spec in expect.blocked:
        out.extend(_compare_blocked(spec, decision, policy))
    for action in expect.not_blocked:
        if decision.reasons(action):
            out.append(Mismatch(f"not_blocked.{action}", "not blocked",
                                "blocked: " + "; ".join(describe_reason(entry) for entry in decision.reasons(action))))
    return out


def _compare_blocked(spec: BlockedSpec, decision: Decision, policy: Policy) -> list[Mismatch]:
    key = f"blocked.{spec.action}"
    reasons = decision.reasons(spec.action)
    wanted = "; ".join(reason.describe() for reason in spec.reasons)
    if not reasons:
        return [Mismatch(key, f"blocked ({wanted})", "allowed" if spec.action in decision.allowed else "not decided")]
    out: list[Mismatch] = []
    actual = "; ".join(describe_reason(entry) for entry in reasons)
    if spec.exact:
        if len(reasons) != len(spec.reasons) or not _matching(list(spec.reasons), list(reasons), policy):
            out.append(Mismatch(key, f"exactly {len(spec.reasons)} reason(s): {wanted}",
                                f"{len(reasons)} reason(s): {actual}"))
    else:
        for reason in spec.reasons:
            if not any(_matches(reason, entry, policy) for entry in reasons):
                out.append(Mismatch(key, f"a reason with {reason.describe()}", actual))
    for reason in spec.reasons:
        if reason.until is not _UNSET:
            expected, got = format_instant(reason.until), format_instant(decision.until(spec.action))
            if expected != got:
                out.append(Mismatch(f"{key}.until", expected or "null (time alone will not lift it)",
                                    got or "null (time alone will not lift it)"))
            break
    return out


def _matches(spec: ReasonSpec, entry: Blocked, policy: Policy) -> bool:
    if spec.kind is not None and entry.kind != spec.kind:
        return False
    if spec.reason_contains is not None and spec.reason_contains not in entry.reason:
        return False
    if spec.rule is not None:
        base = os.path.dirname(policy.path)
        file = policy.path if spec.rule.file is None else os.path.join(base, spec.rule.file)
        if spec.rule.id is not None:
            return entry.rule.id == spec.rule.id
        if entry.rule.line != spec.rule.line or _resolved(os.path.join(base, entry.rule.file)) != _resolved(file):
            return False
    return True


def _matching(specs: list[ReasonSpec], entries: list[Blocked], policy: Policy) -> bool:
    """Whether each spec can be given its own entry (a small bipartite match)."""
    if not specs:
        return True
    first, rest = specs[0], specs[1:]
    return any(_matches(first, entry, policy) and _matching(rest, entries[:i] + entries[i + 1:], policy)
               for i, entry in enumerate(entries))


def describe_reason(entry: Blocked) -> str:
    return f"{entry.kind} by {entry.rule.id} at {entry.rule.location} ({entry.reason})"


def _name(value: str | None) -> str:
    return "null" if value is None else value


def _names(values: Iterable[str]) -> str:
    return "[" + ", ".join(values) + "]"


class Runner:
    """Runs test files; compiles each policy once and, with `coverage`,
    accumulates one `PolicyCoverage` per policy over every file that tests it."""

    def __init__(self, include_roots: Sequence[str | os.PathLike[str]] = (), coverage: bool = False) -> None:
        self.include_roots = tuple(include_roots)
        self.with_coverage = coverage
        self.policies: dict[str, Policy] = {}
        self.coverage: dict[str, PolicyCoverage] = {}  # by the policy's resolved path
        self.tracers: dict[str, Tracer] = {}

    def policy(self, path: str) -> Policy:
        key = _resolved(path)
        if key not in self.policies:
            self.policies[key] = load_policy(path, self.include_roots)
        return self.policies[key]

    def run_path(self, path: str) -> FileResult:
        """One test file; a file or policy that cannot be used gives a result
        with `error` set rather than an exception."""
        started = time.perf_counter()
        try:
            scenarios = load_test_file(path)
        except TestFileError as error:
            return FileResult(path, error=str(error))
        try:
            policy = self.policy(scenarios.policy_path)
        except PolicyError as error:
            return FileResult(path, scenarios.policy_path,
                              error=f"policy {scenarios.policy_path} cannot be loaded:\n{error}")
        try:
            result = self.run(scenarios, policy)
        except TestFileError as error:
            return FileResult(path, policy.path, error=str(error))
        result.seconds = time.perf_counter() - started
        return result

    def run(self, scenarios: ScenarioFile, policy: Policy) -> FileResult:
        check_against_policy(scenarios, policy)
        coverage: PolicyCoverage | None = None
        tracer: Tracer | None = None
        if self.with_coverage:
            key = _resolved(policy.path)
            if key not in self.coverage:
                self.coverage[key] = PolicyCoverage(policy.model)
                self.tracers[key] = Tracer(self.coverage[key])
            coverage, tracer = self.coverage[key], self.tracers[key]
        out = FileResult(scenarios.path, policy.path)
        for case in scenarios.cases:
            account = account_values(case, policy)
            history = contacts(case, account)
            started = time.perf_counter()
            decision = policy.evaluate(account, history, now=case.now)
            seconds = time.perf_counter() - started
            out.results.append(CaseResult(case, decision, compare(case, decision, policy), seconds))
            if coverage is not None and tracer is not None:
                coverage.record(tracer.trace(account, history, case.now))
        return out


def failure_text(result: CaseResult) -> str:
    """A failed case: each mismatch, expected against actual, then the
    decision's explanation."""
    lines = []
    for mismatch in result.mismatches:
        lines.append(f"{mismatch.key}:")
        lines.append(f"    expected: {mismatch.expected}")
        lines.append(f"    actual:   {mismatch.actual}")
    lines.append("explanation:")
    lines.extend("    " + line for line in result.decision.explain().splitlines())
    return "\n".join(lines)


# ------------------------------------------------------------ coverage


@dataclass
class CoverageItem:
    """One thing the cases should exercise. `both`: it needs to be seen true
    and false (conditions, operands, segments); otherwise once (`hits`)."""

    category: str  # rule, stage, segment, condition
    label: str  # allow, forbid, window, limit, quiet, stage, segment, when, operand
    span: n.Span
    text: str
    both: bool
    hits: int = 0  # cases in which it decided something (or fell in the stage)
    outcomes: set[bool] = field(default_factory=set)

    @property
    def covered(self) -> bool:
        return self.outcomes == {True, False} if self.both else self.hits > 0

    def status(self) -> str:
        """What was seen, in words."""
        if self.both:
            if self.covered:
                return "true and false"
            if not self.outcomes:
                return "never evaluated"
            return "never false" if True in self.outcomes else "never true"
        if self.label == "stage":
            return f"{self.hits} case(s)" if self.hits else "no case in it"
        verb = "admitted an action" if self.label == "allow" else "blocked"
        return f"{verb} in {self.hits} case(s)" if self.hits else f"never {verb}"


@dataclass
class CoverageRow:
    """A rule, stage or segment, with its condition's items."""

    item: CoverageItem
    conditions: list[CoverageItem] = field(default_factory=list)

    @property
    def items(self) -> list[CoverageItem]:
        return [self.item, *self.conditions]


CATEGORIES = ("rule", "stage", "segment", "condition")


class PolicyCoverage:
    """Coverage items of one checked policy, counted by syntax-tree node.

    - a stage range: some case falls in it;
    - a segment: some case is in it and some case is not;
    - an allow: it admitted some action in some case (it was the first entry
      whose condition held for that action in the case's stage);
    - a forbid: its condition held (or it has none) for an action it targets;
    - a window, limit or quiet period: it blocked an action;
    - the `when` of an allow, forbid, window, limit, quiet period or include
      (counted once, at its first rule), and every operand of every `and`/`or`
      (segments included): it evaluated to true in some evaluation and to
      false in another; an operand skipped by short-circuiting is not
      evaluated and counts for neither.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.rows: list[CoverageRow] = []
        self.by_node: dict[int, CoverageItem] = {}
        self.cases = 0
        for stage in model.stages:
            self._row(stage, "stage", "stage", f"stage {stage.name} {stage.describe()}", both=False)
        for segment in model.segments:
            row = self._row(segment, "segment", "segment", model.source_text(segment.span), both=True)
            row.conditions.extend(self._operands(segment.condition))
        for rule in [*model.allows, *model.restrictions]:
            label = type(rule).__name__.lower()
            row = self._row(rule, "rule", label, rule.text, both=False)
            condition = getattr(rule, "condition", None)
            for expr in [*getattr(rule, "applies", ()), *([condition] if condition is not None else [])]:
                if id(expr) not in self.by_node:  # an include's condition is shared by its rules
                    row.conditions.append(self._item(expr, "when", both=True))
                    row.conditions.extend(self._operands(expr))
        order = {path: index for index, path in enumerate(model.sources)}
        self.rows.sort(key=lambda row: (order.get(row.item.span.file, len(order)), row.item.span.line,
                                        row.item.span.column))

    def _row(self, node: Any, category: str, label: str, text: str, both: bool) -> CoverageRow:
        item = CoverageItem(category, label, node.span, text, both)
        self.by_node[id(node)] = item
        row = CoverageRow(item)
        self.rows.append(row)
        return row

    def _item(self, expr: n.Expr, label: str, both: bool) -> CoverageItem:
        item = CoverageItem("condition", label, expr.span, self.model.source_text(expr.span), both)
        self.by_node[id(expr)] = item
        return item

    def _operands(self, expr: n.Expr) -> list[CoverageItem]:
        found: list[CoverageItem] = []
        for node in n.walk(expr):
            if isinstance(node, n.BoolOp):
                found.extend(self._item(operand, "operand", both=True) for operand in node.operands)
        return found

    def record(self, trace: CaseTrace) -> None:
        self.cases += 1
        for key, value in trace.outcomes:
            item = self.by_node.get(key)
            if item is not None:
                item.outcomes.add(value)
        for key in trace.fired:
            item = self.by_node.get(key)
            if item is not None:
                item.hits += 1

    @property
    def items(self) -> list[CoverageItem]:
        return [item for row in self.rows for item in row.items]

    def counts(self, category: str | None = None) -> tuple[int, int]:
        """(covered, total) items, of one category or all."""
        chosen = [item for item in self.items if category is None or item.category == category]
        return sum(item.covered for item in chosen), len(chosen)

    @property
    def percent(self) -> float:
        covered, total = self.counts()
        return 100.0 if total == 0 else 100.0 * covered / total

    def meets(self, fail_under: float) -> bool:
        """Exact, so 89.99…% never rounds up to 90."""
        covered, total = self.counts()
        return total == 0 or covered * 100 >= fail_under * total

    def summary(self) -> str:
        parts = []
        for category in CATEGORIES:
            covered, total = self.counts(category)
            if total:
                parts.append(f"{category}s {covered}/{total}")
        covered, total = self.counts()
        return f"{self.percent:.1f}% ({covered}/{total}: {', '.join(parts)}) over {self.cases} case(s)"


@dataclass
class CaseTrace:
    """What one evaluation exercised: node ids that decided something, and
    (node id, outcome) of every condition and operand evaluated."""

    fired: set[int] = field(default_factory=set)
    outcomes: set[tuple[int, bool]] = field(default_factory=set)
    blocked: list[tuple[str, str, n.Span | None]] = field(default_factory=list)  # (action, kind, rule span)


class Tracer:
    """Evaluates a case again, walking the syntax tree as the reference
    interpreter does (its value, window and counting functions are reused)
    and recording what decided what. It leaves out `until`, which coverage
    does not need. Not a second engine: the decision tested is the compiled
    one; tests/test_testing.py checks both agree on every shipped case."""

    def __init__(self, coverage: PolicyCoverage) -> None:
        self.model = coverage.model
        self.reference = ref.ReferencePolicy(self.model)
        self.current = CaseTrace()

    def trace(self, account: dict[str, Any], history: Sequence[Contact], now: dt.datetime) -> CaseTrace:
        self.current = CaseTrace()
        try:
            values = self.reference.read_account(account)
            self._decide(values, history, now)
        except (AccountError, ArithmeticError, OverflowError):
            pass  # an error decision: what was evaluated before it still counts
        return self.current

    def _decide(self, values: dict[str, Any], history: Sequence[Contact], now: dt.datetime) -> None:
        model, trace = self.model, self.current
        zones: tuple[ZoneInfo, ...] = values[model.zone_field] if model.zone_field else (ZoneInfo("UTC"),)
        now = now.astimezone(dt.UTC)
        events = [Contact(c.account_id, c.action, c.at.astimezone(dt.UTC), c.outcome) for c in history]
        env = ref.Env(values, now, now.astimezone(zones[0]), history=[c for c in events if c.at <= now], model=model)
        for segment in model.segments:
            member = bool(self.eval(segment.condition, env))
            env.segments[segment.name] = member
            trace.outcomes.add((id(segment), member))
        stage = self.reference.stage_of(values)
        if stage is not None:
            trace.fired.add(id(stage))
        stage_name = stage.name if stage else None
        past = [Contact(c.account_id, c.action, c.at.astimezone(dt.UTC), c.outcome) for c in history]
        past = [contact for contact in past if contact.at <= now]
        for action in model.actions:
            env.action = action
            for _, allow in self.reference.allow_entries(action, stage_name):
                if allow.condition is None or self.condition(allow.condition, env):
                    trace.fired.add(id(allow))
                    break
            else:
                trace.blocked.append((action, "not_allowed", None))
            for rule in model.restrictions:
                if ref.applies(rule, stage_name) and action in model.expand(rule.targets) \
                        and all(self.condition(condition, env) for condition in rule.applies):
                    kind = self._blocks(rule, values, zones, now, past, env)
                    if kind:
                        trace.fired.add(id(rule))
                        trace.blocked.append((action, kind, rule.span))

    def _blocks(self, rule: n.Restriction, values: dict[str, Any], zones: tuple[ZoneInfo, ...], now: dt.datetime,
                past: list[Contact], env: ref.Env) -> str | None:
        if isinstance(rule, n.Forbid):
            held = rule.condition is None or self.condition(rule.condition, env)
            return "forbidden" if held else None
        if isinstance(rule, n.Window):
            country = self.reference.country(rule, values)
            outside = any(not ref.inside_window(rule, zone, now, country) for zone in zones)
            return "window" if outside else None
        counted = [contact for contact in past if ref.counts_event(rule, self.model, contact)]
        if any(ref.counter_block(rule, zone, now, counted) for zone in zones):
            return ref.kind_of(rule)
        return None

    def condition(self, expr: n.Expr, env: ref.Env) -> bool:
        """A `when`, its outcome recorded."""
        value = bool(self.eval(expr, env))
        self.current.outcomes.add((id(expr), value))
        return value

    def eval(self, node: n.Expr, env: ref.Env) -> Any:
        """`reference.eval_expr`, recording the outcome of every `and`/`or`
        operand it evaluates (left to right, stopping when the answer is known)."""
        if isinstance(node, n.BoolOp):
            stop = node.op == "or"  # `or` stops at the first true operand, `and` at the first false
            for operand in node.operands:
                value = bool(self.eval(operand, env))
                self.current.outcomes.add((id(operand), value))
                if value == stop:
                    return stop
            return not stop
        if isinstance(node, n.Not):
            return not self.eval(node.operand, env)
        if isinstance(node, n.Negate):
            return -self.eval(node.operand, env)
        if isinstance(node, n.Arithmetic):
            return ref.arithmetic(node.op, self.eval(node.left, env), self.eval(node.right, env))
        if isinstance(node, n.Compare):
            return ref.COMPARE[node.op](self.eval(node.left, env), self.eval(node.right, env))
        if isinstance(node, n.Membership):
            found = self.eval(node.item, env) in self.eval(node.container, env)
            return not found if node.negated else found
        if isinstance(node, n.Call):
            return ref.call(node.name, [self.eval(arg, env) for arg in node.args], env)
        return ref.eval_expr(node, env)  # literals, names, `action`, `now`: nothing to record


# ------------------------------------------------------------ JUnit XML

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)


def junit_xml(files: Sequence[FileResult], coverage: dict[str, PolicyCoverage] | None = None) -> str:
    """JUnit XML: one <testsuite> per test file, one <testcase> per case; a
    file that could not be used is a suite with one <error>."""
    suites = ET.Element("testsuites", name="policy test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for result in files:
        suite = ET.SubElement(suites, "testsuite", name=_xml_text(result.path))
        properties = ET.SubElement(suite, "properties")
        if result.policy_path:
            ET.SubElement(properties, "property", name="policy", value=_xml_text(result.policy_path))
            measured = (coverage or {}).get(_resolved(result.policy_path))
            if measured is not None:
                ET.SubElement(properties, "property", name="coverage", value=f"{measured.percent:.1f}")
        classname = _xml_text(Path(result.path).name)
        if result.error is not None:
            case = ET.SubElement(suite, "testcase", classname=classname, name="(load test file)", time="0.000")
            error = ET.SubElement(case, "error", message=_xml_text(result.error.splitlines()[0]),
                                  type="TestFileError")
            error.text = _xml_text(result.error)
            counts = {"tests": 1, "failures": 0, "errors": 1}
        else:
            for case_result in result.results:
                case = ET.SubElement(suite, "testcase", classname=classname, name=_xml_text(case_result.case.name),
                                     time=f"{case_result.seconds:.3f}")
                if not case_result.passed:
                    keys = ", ".join(dict.fromkeys(m.key for m in case_result.mismatches))
                    failure = ET.SubElement(case, "failure", message=_xml_text(f"mismatch in {keys}"),
                                            type="ExpectationMismatch")
                    failure.text = _xml_text(failure_text(case_result))
            counts = {"tests": len(result.results), "failures": len(result.failed), "errors": 0}
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("skipped", "0")
        suite.set("time", f"{result.seconds:.3f}")
        total_time += result.seconds
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
