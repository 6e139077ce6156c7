"""The test-file format: reading, bounded YAML and shape checks.

A test file is YAML (read with a bounded `yaml.SafeLoader` only: no tag can
build a Python object, and an alias bomb, deep nesting or a huge integer is
a positioned error) naming a policy and listing cases: an account, its contact
history, an instant, and what the decision must say. The format is documented
in docs/testing.md; `load_test_file` checks a file's shape (nothing about its
policy yet) into a `ScenarioFile` of `Case`s, and every problem is a
`TestFileError` that names the file, the case and the key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..decision import format_instant
from ..errors import PolicyError
from ..suggest import did_you_mean_aside

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
