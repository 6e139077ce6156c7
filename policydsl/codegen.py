"""Compiled plans to Python source: one module per policy, compiled once.

The compiler (compiler.py) decides, per stage and action, which allows,
forbids, windows, caps and quiet periods apply; this module writes that down
as straight-line Python, Jinja2-style, and compiles it with `compile()`:

- `segments(V, C, H)`: every segment's value, in order;
- `stage_<i>(V, C, H, S, zones, events, K)`: one function per stage, one block
  per action, returning `(allowed, allowed_by, blocked)`;
- `admits_<i>(V, C, H, S)` and `side_<i>(V, C, H, S)`: whether an allow
  admits an action and no forbid blocks it, and the sides of comparisons that
  read time, for the `until` search (timeline.py).

`V` is the account's typed values, `C` the `functions.Clock`, `H` the history
view, `S` the segments. A condition that several actions share is computed
once per account, on first use (`cN := ...`), as the closures it replaces did:
the same conditions are evaluated in the same order, so the same error is met.

No policy text ever becomes Python code: strings and integers are written
with `repr` (which always gives a literal of the same value), every other
value (decimals, dates, sets, rule infos, fixed `Blocked` entries) is a
module constant `_kN`, and identifiers are generated (`c3`, `stage_2`),
never taken from the policy. Comments carry the policy location of each
line, escaped to printable ASCII; the source is registered with `linecache`
so that a traceback through generated code shows the line, and with it the
policy file and line it came from.
"""

from __future__ import annotations

import contextlib
import itertools
import linecache
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import nodes as n
from .functions import FUNCTIONS, add, divide, subtract

if TYPE_CHECKING:
    from .compiler import _ActionPlan, _Condition, _Counter, _Window

UNSET = object()  # a shared condition not computed yet for this account
_PLAIN = (str, int, bool)  # values whose repr is a literal of the same value and type
_OPERATORS = {"==", "!=", "<", "<=", ">", ">="}
# Expressions made only of these cannot raise (the checker proved the types): a condition built from them
# is computed up front, once per account, instead of on first use.
_CANNOT_RAISE = (n.Literal, n.SetLiteral, n.Ref, n.ActionRef, n.NowRef, n.Compare, n.Membership, n.BoolOp, n.Not)
_FILENAMES = itertools.count(1)


@dataclass
class Trace:
    """What one traced evaluation exercised, for coverage: the rules that
    decided something (node ids: the stage, the allow that admitted, each
    restriction that blocked) and (node id, truth) of every condition, segment
    and `and`/`or` operand evaluated."""

    fired: set[int] = field(default_factory=set)
    outcomes: set[tuple[int, bool]] = field(default_factory=set)


def record_outcome(trace: Trace | None, key: int, value: Any) -> bool:
    """`bool(value)`, recorded under `key` (`_o` in traced code; T is None
    where the `until` search evaluates segments)."""
    truth = bool(value)
    if trace is not None:
        trace.outcomes.add((key, truth))
    return truth


def record_fired(trace: Trace, key: int) -> None:
    """`_f` in traced code."""
    trace.fired.add(key)


@dataclass
class Module:
    """The generated source and, once compiled, its functions by name."""

    source: str
    filename: str
    functions: dict[str, Callable[..., Any]]
    line_map: dict[int, str]  # generated line -> policy location (file:line)


@dataclass
class _Lines:
    text: list[str] = field(default_factory=list)
    where: dict[int, str] = field(default_factory=dict)

    def add(self, depth: int, line: str, location: str = "") -> None:
        if location:
            self.where[len(self.text) + 1] = location
            line += f"  # {printable(location)}"
        self.text.append("    " * depth + line)

    def extend(self, other: _Lines) -> None:
        """`other`'s lines after these, their policy locations kept."""
        offset = len(self.text)
        self.text.extend(other.text)
        self.where.update({offset + line: where for line, where in other.where.items()})


def _truth(code: str, tests: tuple[n.Expr, ...]) -> str:
    """`code` as true or false: comparisons, memberships and `not` already
    are (one such test alone needs no `bool(...)` around it)."""
    if len(tests) == 1 and isinstance(tests[0], (n.Compare, n.Membership, n.Not, n.BoolOp)):
        return code
    return f"bool({code})"


def printable(text: str) -> str:
    """Text safe inside a Python comment: printable ASCII, no line breaks."""
    return text.encode("unicode_escape").decode("ascii")


class Generator:
    """Writes one policy's module. `fields` are the account's field names
    (a name is a field or a segment, never both: the checker proved it)."""

    def __init__(self, fields: Iterable[str], policy_name: str, locate: Callable[[n.Span], str],
                 trace: bool = False) -> None:
        self.fields = frozenset(fields)
        self.policy_name = policy_name
        self.locate = locate  # a span as the comments name it (file relative to the policy, line)
        self.trace = trace  # record what decided what into `T` (coverage); see `Trace`
        self.constants: dict[str, Any] = {"_U": UNSET, "_o": record_outcome, "_f": record_fired}
        self._constant_names: dict[int, str] = {}
        self.lines = _Lines()
        self._sides: dict[tuple[int, str | None], str] = {}
        self._side_lines = _Lines()  # written after the stages, though asked for while the plans are made
        self._memo_names: dict[int, str] = {}
        self._hoisted: dict[str, tuple[str, str]] = {}  # memo name -> (value, policy location)

    # -- values and expressions
    def constant(self, value: Any) -> str:
        """A module-level name for `value` (one per object)."""
        name = self._constant_names.get(id(value))
        if name is None:
            name = self._constant_names[id(value)] = f"_k{len(self._constant_names)}"
            self.constants[name] = value
        return name

    def literal(self, value: Any) -> str:
        if value is None:
            return "None"
        if type(value) in _PLAIN:
            return repr(value)
        return self.constant(value)

    def expr(self, expr: n.Expr, action: str | None) -> str:
        """Python for `expr`, with `action` (the action being judged) as a
        literal. Every operation is parenthesised; operands are evaluated
        left to right, as the language defines."""
        if isinstance(expr, n.Literal):
            return self.literal(expr.value)
        if isinstance(expr, n.SetLiteral):
            return self.constant(frozenset(element.value for element in expr.elements))
        if isinstance(expr, n.Ref):
            return f"{'V' if expr.name in self.fields else 'S'}[{expr.name!r}]"
        if isinstance(expr, n.ActionRef):
            return repr(action)
        if isinstance(expr, n.NowRef):
            return "C.now"
        if isinstance(expr, n.History):
            return f"H.value({self.constant(expr)})"
        if isinstance(expr, n.Not):
            return f"(not {self.expr(expr.operand, action)})"
        if isinstance(expr, n.Negate):
            return f"(-{self.expr(expr.operand, action)})"
        if isinstance(expr, n.BoolOp):
            joined = f" {expr.op} ".join(self._traced(operand, self.expr(operand, action))
                                         for operand in expr.operands)
            return f"bool({joined})"  # `and`/`or` give an operand; the language gives true or false
        if isinstance(expr, n.Arithmetic):
            left, right = self.expr(expr.left, action), self.expr(expr.right, action)
            if expr.op == "*":
                return f"({left} * {right})"
            helper = {"+": add, "-": subtract, "/": divide}[expr.op]
            return f"{self.constant(helper)}({left}, {right})"
        if isinstance(expr, n.Compare):
            assert expr.op in _OPERATORS
            return f"({self.expr(expr.left, action)} {expr.op} {self.expr(expr.right, action)})"
        if isinstance(expr, n.Membership):
            keyword = "not in" if expr.negated else "in"
            return f"({self.expr(expr.item, action)} {keyword} {self.expr(expr.container, action)})"
        run = self.constant(FUNCTIONS[expr.name].run)
        return f"{run}(C{''.join(', ' + self.expr(arg, action) for arg in expr.args)})"

    def test(self, condition: _Condition | None, action: str | None) -> str:
        """A condition's truth. One that does not read `action` has one value
        per account: it is computed on first use and kept in a local."""
        if condition is None or not condition.tests:
            return "True"
        value = _truth(" and ".join(self._traced(test, self.expr(test, action)) for test in condition.tests),
                       condition.tests)
        if condition.reads_action:
            return value
        memo = self._memo(condition)
        # (traced, a condition is computed only where the engine needs it: coverage counts what was evaluated)
        if not self.trace and all(isinstance(node, _CANNOT_RAISE) for test in condition.tests for node in n.walk(test)):
            self._hoisted.setdefault(memo, (value, condition.info.location))
            return memo
        return f"({memo} if {memo} is not _U else ({memo} := {value}))"

    def _traced(self, node: n.Expr | n.Segment, code: str) -> str:
        """`code`, its truth recorded under `node` when tracing."""
        return f"_o(T, {id(node)}, {code})" if self.trace else code

    def _fired(self, depth: int, key: int) -> None:
        """When tracing: the rule `key` decided something here."""
        if self.trace:
            self.lines.add(depth, f"_f(T, {key})")

    def _memo(self, thing: object) -> str:
        name = self._memo_names.get(id(thing))
        if name is None:
            name = self._memo_names[id(thing)] = f"c{len(self._memo_names)}"
        return name

    # -- functions
    def segments(self, segments: Iterable[n.Segment]) -> None:
        """`segments(V, C, H)`: each segment in order (one may read another)."""
        self.lines.add(0, f"def segments(V, C, H{', T' if self.trace else ''}):")
        self.lines.add(1, "S = {}")
        for segment in segments:
            value = self._traced(segment, _truth(self.expr(segment.condition, None), (segment.condition,)))
            self.lines.add(1, f"S[{segment.name!r}] = {value}", self.locate(segment.span))
        self.lines.add(1, "return S")

    def _start(self) -> None:
        """A new generated function: its own locals."""
        self._memo_names = {}
        self._hoisted = {}

    def _locals(self) -> None:
        """The first lines of a function: conditions computed up front, the
        others marked as not computed yet."""
        lazy = [name for name in self._memo_names.values() if name not in self._hoisted]
        if lazy:
            self.lines.add(1, " = ".join(lazy) + " = _U")
        for name, (value, location) in self._hoisted.items():
            self.lines.add(1, f"{name} = {value}", location)

    def stage(self, index: int, stage: str | None, plans: dict[str, _ActionPlan]) -> str:
        """`stage_<index>`: every action's block, in declaration order."""
        self._start()
        body = _Lines()
        outer, self.lines = self.lines, body
        for action, plan in plans.items():
            self._action(action, plan)
        self.lines = outer
        name = f"stage_{index}"
        self.lines.add(0, "")
        self.lines.add(0, f"def {name}(V, C, H, S, zones, events, K{', T' if self.trace else ''}):",
                       f"stage {stage}" if stage else "")
        self.lines.add(1, "now = C.now")
        self.lines.add(1, "allowed = []")
        self.lines.add(1, "allowed_by = {}")
        self.lines.add(1, "blocked = []")
        self._locals()
        self.lines.extend(body)
        self.lines.add(1, "return allowed, allowed_by, blocked")
        return name

    def _action(self, action: str, plan: _ActionPlan) -> None:
        emit = self.lines.add
        name = repr(action)
        emit(1, f"# {printable(action)}")
        admitted = self._allow_chain(action, plan)
        assert plan.not_allowed is not None
        not_allowed = self.constant(plan.not_allowed)
        allow = [(1, f"allowed.append((p, {name}))"), (1, f"allowed_by[{name}] = by")]
        if not plan.windows and not plan.counters and plan.timing is None:
            # every reason is a fixed Blocked built at compile time
            if admitted is None:
                emit(1, "mark = len(blocked)")
                emit(1, "if p is None:")
                emit(2, f"blocked.append({not_allowed})")
            elif not admitted:
                emit(1, f"blocked.append({not_allowed})")
            elif plan.forbids:
                emit(1, "mark = len(blocked)")
            for condition, entry in plan.forbids:
                emit(1, f"if {self.test(condition, action)}:", condition.info.location)
                emit(2, f"blocked.append({self.constant(entry)})")
                self._fired(2, condition.key)
            if admitted is not False:
                if plan.forbids or admitted is None:
                    emit(1, "if len(blocked) == mark:")
                    allow = [(2, line) for _, line in allow]
                for depth, line in allow:
                    emit(depth, line)
            return
        emit(1, {None: f"r = [] if p is not None else [{not_allowed}]", True: "r = []",
                 False: f"r = [{not_allowed}]"}[admitted])
        for condition, entry in plan.forbids:
            emit(1, f"if {self.test(condition, action)}:", condition.info.location)
            emit(2, f"r.append({self.constant(entry)})")
            self._fired(2, condition.key)
        emit(1, "untimed = bool(r)")
        emit(1, "w = []")
        for window in plan.windows:
            self._window(window)
        emit(1, "f = []")
        for counter in plan.counters:
            self._counter(counter)
        emit(1, "if not r:")
        for depth, line in allow:
            emit(depth + 1, line)
        emit(1, "else:")
        emit(2, f"blocked.extend(_finish({self.constant(plan)}, {name}, r, untimed, w, f, V, events, zones, now, K))")

    def _allow_chain(self, action: str, plan: _ActionPlan) -> bool | None:
        """`p`, `by`: the first allow that admits the action (p None: none).
        Whether an allow admits it is known here when the first allow has no
        condition (True) or there is none (False); else None."""
        emit = self.lines.add
        keyword = "if"
        for priority, condition in plan.allows:
            test = self.test(condition, action)
            set_admitted = f"p, by = {priority}, {self.constant(condition.info)}"
            if test == "True":
                if keyword == "if":
                    emit(1, set_admitted, condition.info.location)
                    self._fired(1, condition.key)
                    return True
                emit(1, "else:")
                emit(2, set_admitted, condition.info.location)
                self._fired(2, condition.key)
                return None
            emit(1, f"{keyword} {test}:", condition.info.location)
            emit(2, set_admitted)
            self._fired(2, condition.key)
            keyword = "elif"
        if keyword == "if":
            emit(1, "p = None")
            return False
        emit(1, "else:")
        emit(2, "p = None")
        return None

    def _scoped(self, applies: _Condition | None) -> int:
        """Opens `if <applies>:` for a rule that exists only where it holds; the depth to write at."""
        if applies is None:
            return 1
        self.lines.add(1, f"if {self.test(applies, None)}:", applies.info.location)
        return 2

    def _window(self, window: _Window) -> None:
        depth = self._scoped(window.applies)
        memo, rule = self._memo(window), self.constant(window)
        self.lines.add(depth, f"s = {memo} if {memo} is not _U else ({memo} := _window({rule}, V, zones, now))",
                       window.info.location)
        self.lines.add(depth, "if s[1]:")
        self.lines.add(depth + 1, f"r.append(('window', s[1], {self.constant(window.info)}))")
        self._fired(depth + 1, window.key)
        self.lines.add(depth, f"w.append(({rule}, s[0]))")

    def _counter(self, counter: _Counter) -> None:
        depth = self._scoped(counter.applies)
        memo, rule = self._memo(counter), self.constant(counter)
        self.lines.add(depth, f"b = {memo} if {memo} is not _U else ({memo} := _counter({rule}, zones, events, now))",
                       counter.info.location)
        self.lines.add(depth, "if b is not None:")
        self.lines.add(depth + 1, f"r.append(({counter.kind!r}, b[0], {self.constant(counter.info)}))")
        self.lines.add(depth + 1, "f.append(b[1])")
        self._fired(depth + 1, counter.key)

    def admits(self, index: int, action: str, plan: _ActionPlan) -> str:
        """`admits_<index>(V, C, H, S)`: an allow admits `action`, no forbid
        blocks it (never traced: coverage counts what decided `now`, not the
        instants the `until` search tries)."""
        self._start()
        with self._untraced():
            allows = " or ".join(self.test(condition, action) for _, condition in plan.allows) or "False"
            forbids = " or ".join(self.test(condition, action) for condition, _ in plan.forbids) or "False"
        name = f"admits_{index}"
        self.lines.add(0, "")
        self.lines.add(0, f"def {name}(V, C, H, S):", f"{action} (until)")
        self._locals()
        self.lines.add(1, f"return bool(({allows}) and not ({forbids}))")
        return name

    def side(self, expr: n.Expr, action: str | None) -> str:
        """`side_<i>(V, C, H, S)`: one side of a comparison that reads time."""
        key = (id(expr), action)
        name = self._sides.get(key)
        if name is None:
            name = self._sides[key] = f"side_{len(self._sides)}"
            with self._untraced():
                code = self.expr(expr, action)
            self._side_lines.add(0, "")
            self._side_lines.add(0, f"def {name}(V, C, H, S):", self.locate(expr.span))
            self._side_lines.add(1, f"return {code}")
        return name

    @contextlib.contextmanager
    def _untraced(self) -> Iterator[None]:
        tracing, self.trace = self.trace, False
        try:
            yield
        finally:
            self.trace = tracing

    # -- the module
    def compile(self, runtime: dict[str, Any]) -> Module:
        """Compile the module; `runtime` gives the hand-written helpers the
        stage functions call (`_window`, `_counter`, `_finish`)."""
        self.lines.extend(self._side_lines)
        self._side_lines = _Lines()
        header = f"# policy {printable(self.policy_name)}: generated by policydsl, do not edit\n"
        source = header + "\n".join(self.lines.text) + "\n"
        filename = f"<policy {printable(self.policy_name)} #{next(_FILENAMES)}>"
        code = compile(source, filename, "exec")
        namespace: dict[str, Any] = {"__builtins__": {"bool": bool, "len": len}, **self.constants, **runtime}
        exec(code, namespace)  # the source is ours: no policy text is code (see the module docstring)
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        functions = {name: value for name, value in namespace.items() if callable(value) and
                     name.startswith(("segments", "stage_", "admits_", "side_"))}
        return Module(source, filename, functions, {line + 1: where for line, where in self.lines.where.items()})
