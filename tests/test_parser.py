"""The parser: every construct to the right nodes, syntax errors an author can
act on, limits, and a property: no input makes `compile_policy` raise
anything but a `PolicyError`."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policydsl import PolicyCheckError, PolicyError, PolicySyntaxError, compile_policy
from policydsl import nodes as n
from policydsl.parser import MAX_NAME_LENGTH, MAX_NESTING, MAX_SOURCE_BYTES, parse

HEAD = 'policy "p" version "1"\n'
ACCOUNT = (
    "account {\n"
    "    id : text\n"
    '    tz : zone = "Asia/Shanghai"\n'
    "    dpd : int = 0\n"
    "    balance : money = 0\n"
    "    score : number = 0\n"
    "    flags : set<text> = {}\n"
    "    due : date = 2025-01-01\n"
    "    paid_at : datetime = 2025-01-01T00:00Z\n"
    "}\n"
    "actions { sms, call }\n"
)


def expr_of(text: str) -> n.Expr:
    """The syntax tree of one expression (as a segment condition)."""
    policy = parse(HEAD + ACCOUNT + f"segment s when {text}\n")
    return policy.segments[0].condition


def syntax_error(source: str, path: str = "t.policy") -> PolicySyntaxError:
    with pytest.raises(PolicySyntaxError) as caught:
        parse(source, path)
    return caught.value


def position(source: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first `needle` in `source`."""
    offset = source.index(needle)
    return source.count("\n", 0, offset) + 1, offset - (source.rfind("\n", 0, offset) + 1) + 1


# ---------------------------------------------------------------- declarations


def test_header_name_version_and_span() -> None:
    policy = parse('policy "collections" version "2026.11"\n', "a.policy")
    assert policy.header.name == "collections"
    assert policy.header.version == "2026.11"
    assert (policy.header.span.file, policy.header.span.line, policy.header.span.column) == ("a.policy", 1, 1)
    assert policy.path == "a.policy"
    assert policy.rules == () and policy.fields == () and policy.includes == ()


def test_include_with_and_without_action_mapping() -> None:
    policy = parse(HEAD + 'include "base.policy"\n'
                   'include "other.policy" with {\n  voice = ivr, agent_call\n  message = sms\n}\n')
    plain, mapped = policy.includes
    assert plain.path == "base.policy" and plain.mappings == ()
    assert mapped.path == "other.policy"
    assert [(m.name, m.targets) for m in mapped.mappings] == [("voice", ("ivr", "agent_call")), ("message", ("sms",))]
    assert mapped.mappings[0].span.line == 4


def test_field_types() -> None:
    policy = parse(HEAD + "account {\n a : int\n b : number\n c : money\n d : bool\n e : text\n f : date\n"
                   " g : datetime\n h : zone\n i : set<text>\n j : set<int>\n k : enum(low, mid, high)\n}\n")
    kinds = {f.name: (f.type.kind, f.type.element, f.type.members) for f in policy.fields}
    assert kinds == {
        "a": ("int", None, ()), "b": ("number", None, ()), "c": ("money", None, ()), "d": ("bool", None, ()),
        "e": ("text", None, ()), "f": ("date", None, ()), "g": ("datetime", None, ()), "h": ("zone", None, ()),
        "i": ("set", "text", ()), "j": ("set", "int", ()), "k": ("enum", None, ("low", "mid", "high")),
    }
    assert str(policy.fields[8].type) == "set<text>"
    assert str(policy.fields[10].type) == "enum(low, mid, high)"
    assert all(f.default is None for f in policy.fields)
    assert [f.span.line for f in policy.fields] == list(range(3, 14))


@pytest.mark.parametrize(("default", "value", "kind"), [
    ("7", 7, "int"),
    ("-7", -7, "int"),
    ("0.25", Decimal("0.25"), "number"),
    ("-0.25", Decimal("-0.25"), "number"),
    ("¥500", Decimal("500"), "money"),
    ("$12.50", Decimal("12.50"), "money"),
    ("€3", Decimal("3"), "money"),
    ("£4.1", Decimal("4.1"), "money"),
    ('"Asia/Shanghai"', "Asia/Shanghai", "text"),
    (r'"say \"hi\"\n"', 'say "hi"\n', "text"),
    ("true", True, "bool"),
    ("false", False, "bool"),
    ("2025-06-01", dt.date(2025, 6, 1), "date"),
    ("2025-06-01T08:30Z", dt.datetime(2025, 6, 1, 8, 30, tzinfo=dt.UTC), "datetime"),
    ("2025-06-01T08:30:15+08:00", dt.datetime(2025, 6, 1, 0, 30, 15, tzinfo=dt.UTC), "datetime"),
    ("09:30", 9 * 3600 + 30 * 60, "time"),
    ("stable", "stable", "enum"),
])
def test_field_default_literals(default: str, value: object, kind: str) -> None:
    policy = parse(HEAD + f"account {{ x : text = {default} }}\n")
    literal = policy.fields[0].default
    assert isinstance(literal, n.Literal)
    assert literal.kind == kind
    assert literal.value == value
    assert type(literal.value) is type(value)


def test_set_defaults() -> None:
    policy = parse(HEAD + 'account { a : set<text> = {}  b : set<text> = {"x", "y"}  c : set<int> = {1, -2} }\n')
    empty, texts, ints = (f.default for f in policy.fields)
    assert isinstance(empty, n.SetLiteral) and empty.elements == ()
    assert isinstance(texts, n.SetLiteral) and [e.value for e in texts.elements] == ["x", "y"]
    assert isinstance(ints, n.SetLiteral) and [e.value for e in ints.elements] == [1, -2]


def test_actions_groups_and_plain_lines_and_events() -> None:
    policy = parse(HEAD + "actions {\n  message : app_push, sms\n  ivr, letter\n  call : agent_call\n}\n"
                   "events { inbound_call, payment }\n")
    assert [(g.group, g.members) for g in policy.actions] == [
        ("message", ("app_push", "sms")), (None, ("ivr", "letter")), ("call", ("agent_call",))]
    assert [g.span.line for g in policy.actions] == [3, 4, 5]
    (events,) = policy.events
    assert events.names == ("inbound_call", "payment")


def test_stages_ranges_closed_open_and_negative() -> None:
    policy = parse(HEAD + "stages on dpd {\n  early .. -4\n  pre -3 .. 0\n  M1 1 .. 30\n  late 31 ..\n}\n")
    (stages,) = policy.stages
    assert stages.field == "dpd"
    assert [(s.name, s.low, s.high) for s in stages.ranges] == [
        ("early", None, -4), ("pre", -3, 0), ("M1", 1, 30), ("late", 31, None)]
    assert [s.describe() for s in stages.ranges] == [".. -4", "-3 .. 0", "1 .. 30", "31 .."]
    assert [s.span.line for s in stages.ranges] == [3, 4, 5, 6]


def test_segment_and_stage_block_rules_carry_their_stage() -> None:
    policy = parse(HEAD + "segment risky when dpd > 3\n"
                   "stage M1 {\n  allow sms\n  forbid call because \"x\"\n  limit sms 1 per day\n}\n"
                   "allow call\n")
    (segment,) = policy.segments
    assert segment.name == "risky" and isinstance(segment.condition, n.Compare)
    (block,) = policy.stage_blocks
    assert block.name == "M1"
    assert [type(rule) for rule in block.rules] == [n.Allow, n.Forbid, n.Limit]
    assert {rule.stage for rule in block.rules} == {"M1"}
    (top,) = policy.rules
    assert isinstance(top, n.Allow) and top.stage is None


def test_top_level_rules_keep_written_order() -> None:
    policy = parse(HEAD + 'forbid sms because "a"\nallow sms\nwindow sms 08:00-09:00\nallow call\n'
                   'quiet sms for 1 day after "x" on sms\nlimit call 2 per day\n')
    assert [type(rule) for rule in policy.rules] == [n.Forbid, n.Allow, n.Window, n.Allow, n.Quiet, n.Limit]
    assert [rule.span.line for rule in policy.rules] == [2, 3, 4, 5, 6, 7]


# ---------------------------------------------------------------- rules


def test_allow_targets_and_condition() -> None:
    policy = parse(HEAD + "allow sms, call when dpd > 3\nallow all\n")
    first, second = policy.rules
    assert isinstance(first, n.Allow) and isinstance(second, n.Allow)
    assert first.targets.names == ("sms", "call") and not first.targets.all
    assert isinstance(first.condition, n.Compare)
    assert second.targets.all and second.targets.names == () and second.condition is None
    assert str(second.targets) == "all" and str(first.targets) == "sms, call"


def test_rule_text_is_collapsed_and_comment_free() -> None:
    policy = parse(HEAD + "allow   sms,\n      call   # a comment\n   when dpd > 3\n")
    (rule,) = policy.rules
    assert rule.text == "allow sms, call when dpd > 3"
    assert (rule.span.line, rule.span.column, rule.span.end_line) == (2, 1, 4)


def test_rule_text_drops_comments_after_strings_but_keeps_hashes_in_strings() -> None:
    policy = parse(HEAD + 'forbid sms because "case #1"  # why\nallow sms when "x" in flags # note\n   and true\n')
    assert [rule.text for rule in policy.rules] == ['forbid sms because "case #1"',
                                                    'allow sms when "x" in flags and true']


def test_forbid_reasons() -> None:
    policy = parse(HEAD + 'forbid call when dpd > 90 because "too late" cite "Reg F 1006.6"\n'
                   'forbid sms because "never"\nforbid all cite "only a cite"\nforbid sms\n')
    full, because_only, cite_only, bare = policy.rules
    assert isinstance(full, n.Forbid)
    assert (full.reason.because, full.reason.cite) == ("too late", "Reg F 1006.6")
    assert isinstance(full.condition, n.Compare)
    assert (because_only.reason.because, because_only.reason.cite, because_only.condition) == ("never", None, None)
    assert cite_only.targets.all and (cite_only.reason.because, cite_only.reason.cite) == (None, "only a cite")
    assert (bare.reason.because, bare.reason.cite) == (None, None)


def test_window_ranges_days_and_holidays() -> None:
    policy = parse(HEAD + 'window call, sms 08:00-12:00, 13:30-24:00 on mon..fri, sun except holidays "CN" '
                   'because "hours"\nwindow sms 00:00-23:59 except holidays country\nwindow sms 09:00-10:00\n')
    full, by_field, plain = policy.rules
    assert isinstance(full, n.Window)
    assert full.targets.names == ("call", "sms")
    assert [(r.start, r.end) for r in full.ranges] == [(8 * 3600, 12 * 3600), (13 * 3600 + 1800, 24 * 3600)]
    assert [str(r) for r in full.ranges] == ["08:00-12:00", "13:30-24:00"]
    assert [(d.first, d.last) for d in full.days] == [("mon", "fri"), ("sun", "sun")]
    assert isinstance(full.holidays, n.Literal) and full.holidays.value == "CN" and full.holidays.kind == "text"
    assert full.reason.because == "hours"
    assert isinstance(by_field.holidays, n.Ref) and by_field.holidays.name == "country"
    assert by_field.ranges[0].end == 23 * 3600 + 59 * 60
    assert plain.days == () and plain.holidays is None and plain.reason == n.Reason(None, None)


@pytest.mark.parametrize(("period", "amount", "unit"), [
    ("day", 1, "days"), ("7 days", 7, "days"), ("1 day", 1, "days"),
    ("hour", 1, "hours"), ("24 hours", 24, "hours"), ("2 hour", 2, "hours"),
])
def test_limit_periods(period: str, amount: int, unit: str) -> None:
    (rule,) = parse(HEAD + f"limit sms 3 per {period}\n").rules
    assert isinstance(rule, n.Limit)
    assert rule.count == 3 and rule.period == n.Period(amount, unit)
    assert rule.counted is None and rule.outcomes is None and rule.exclude is False


def test_limit_counted_targets_and_outcome_filters() -> None:
    policy = parse(HEAD + 'limit call 7 per 7 days of call, inbound_call where outcome not in {"not_connected"} '
                   'because "cap" cite "law"\n'
                   'limit all 2 per day where outcome in {"connected", "conversation"}\n')
    first, second = policy.rules
    assert isinstance(first, n.Limit) and isinstance(second, n.Limit)
    assert first.counted is not None and first.counted.names == ("call", "inbound_call")
    assert first.outcomes == ("not_connected",) and first.exclude is True
    assert (first.reason.because, first.reason.cite) == ("cap", "law")
    assert second.targets.all and second.counted is None
    assert second.outcomes == ("connected", "conversation") and second.exclude is False
    assert str(first.period) == "7 days" and str(second.period) == "1 day"


def test_quiet_days_and_hours() -> None:
    policy = parse(HEAD + 'quiet call for 7 days after "conversation", "promise" on call, inbound_call '
                   'because "rest"\nquiet all for 48 hours after "dispute" on all\n')
    days, hours = policy.rules
    assert isinstance(days, n.Quiet) and isinstance(hours, n.Quiet)
    assert days.targets.names == ("call",) and days.period == n.Period(7, "days")
    assert days.outcomes == ("conversation", "promise")
    assert days.after.names == ("call", "inbound_call") and days.reason.because == "rest"
    assert hours.targets.all and hours.after.all and hours.period == n.Period(48, "hours")


def test_layout_and_comments_are_insignificant() -> None:
    spread = HEAD + ACCOUNT + "# comment\nallow\n  sms   # why\n  when\n dpd\n >\n 3  and  # more\n score < 0.5\n"
    dense = HEAD + ACCOUNT + "allow sms when dpd > 3 and score < 0.5"
    assert spread.count("\n") > dense.count("\n")
    (a,), (b,) = parse(spread).rules, parse(dense).rules
    assert a.text == b.text == "allow sms when dpd > 3 and score < 0.5"
    assert _shape(a) == _shape(b)


def _shape(node: object) -> object:
    """A node with every span removed, to compare structure."""
    if isinstance(node, tuple):
        return tuple(_shape(item) for item in node)
    if hasattr(node, "__dataclass_fields__"):
        fields = [name for name in node.__dataclass_fields__ if name not in ("span", "text")]
        return (type(node).__name__, *((name, _shape(getattr(node, name))) for name in fields))
    return node


# ---------------------------------------------------------------- expressions


def test_boolean_precedence_not_binds_tighter_than_and_than_or() -> None:
    expr = expr_of("dpd > 1 or dpd > 2 and not dpd > 3")
    assert isinstance(expr, n.BoolOp) and expr.op == "or"
    left, right = expr.operands
    assert isinstance(left, n.Compare)
    assert isinstance(right, n.BoolOp) and right.op == "and"
    assert isinstance(right.operands[1], n.Not) and isinstance(right.operands[1].operand, n.Compare)


def test_and_or_chains_are_flat() -> None:
    expr = expr_of("dpd > 1 and dpd > 2 and dpd > 3 and dpd > 4")
    assert isinstance(expr, n.BoolOp) and expr.op == "and" and len(expr.operands) == 4


def test_arithmetic_precedence_and_left_associativity() -> None:
    expr = expr_of("dpd - 2 - 3 * 4 / 5 + -dpd > 0")
    assert isinstance(expr, n.Compare) and expr.op == ">"
    plus = expr.left
    assert isinstance(plus, n.Arithmetic) and plus.op == "+"
    assert isinstance(plus.right, n.Negate) and isinstance(plus.right.operand, n.Ref)
    minus = plus.left
    assert isinstance(minus, n.Arithmetic) and minus.op == "-"
    assert isinstance(minus.left, n.Arithmetic) and minus.left.op == "-"  # (dpd - 2) - ...
    divide = minus.right
    assert isinstance(divide, n.Arithmetic) and divide.op == "/"
    assert isinstance(divide.left, n.Arithmetic) and divide.left.op == "*"


def test_parentheses_override_precedence() -> None:
    expr = expr_of("(dpd + 1) * 2 > 0")
    assert isinstance(expr, n.Compare)
    assert isinstance(expr.left, n.Arithmetic) and expr.left.op == "*"
    assert isinstance(expr.left.left, n.Arithmetic) and expr.left.left.op == "+"


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op: str) -> None:
    expr = expr_of(f"dpd {op} 3")
    assert isinstance(expr, n.Compare) and expr.op == op
    assert isinstance(expr.left, n.Ref) and expr.left.name == "dpd"
    assert isinstance(expr.right, n.Literal) and expr.right.value == 3


def test_membership_and_negated_membership() -> None:
    positive = expr_of('"vip" in flags')
    negative = expr_of('"vip" not in flags')
    assert isinstance(positive, n.Membership) and positive.negated is False
    assert isinstance(negative, n.Membership) and negative.negated is True
    assert isinstance(negative.container, n.Ref) and negative.container.name == "flags"
    in_literal = expr_of('dpd in {1, 2, 3}')
    assert isinstance(in_literal, n.Membership) and isinstance(in_literal.container, n.SetLiteral)
    assert [e.value for e in in_literal.container.elements] == [1, 2, 3]


def test_calls_action_and_now() -> None:
    expr = expr_of("days_since(due) > 3 and len(flags) == 0 and max(dpd, 1) > 0 and today() > due "
                   "and paid_at < now")
    assert isinstance(expr, n.BoolOp)
    calls = [op.left for op in expr.operands[:4]]
    assert [(c.name, len(c.args)) for c in calls] == [("days_since", 1), ("len", 1), ("max", 2), ("today", 0)]
    assert isinstance(expr.operands[4].right, n.NowRef)
    (rule,) = parse(HEAD + ACCOUNT + 'forbid all when action == "sms" because "x"\n').rules
    assert isinstance(rule.condition, n.Compare) and isinstance(rule.condition.left, n.ActionRef)


@pytest.mark.parametrize(("text", "value", "kind"), [
    ("42", 42, "int"),
    ("4.50", Decimal("4.50"), "number"),
    ("¥5000", Decimal("5000"), "money"),
    ('"text"', "text", "text"),
    ("2025-03-09", dt.date(2025, 3, 9), "date"),
    ("2025-03-09T07:00:00Z", dt.datetime(2025, 3, 9, 7, tzinfo=dt.UTC), "datetime"),
    ("21:00", 21 * 3600, "time"),
    ("3 days", dt.timedelta(days=3), "duration"),
    ("1 day", dt.timedelta(days=1), "duration"),
    ("36 hours", dt.timedelta(hours=36), "duration"),
    ("1 hour", dt.timedelta(hours=1), "duration"),
    ("true", True, "bool"),
    ("false", False, "bool"),
])
def test_expression_literals(text: str, value: object, kind: str) -> None:
    expr = expr_of(f"x == {text}")
    assert isinstance(expr, n.Compare)
    literal = expr.right
    assert isinstance(literal, n.Literal)
    assert (literal.value, literal.kind) == (value, kind)


def test_duration_literal_in_arithmetic_and_unit_names_still_work_as_names() -> None:
    # `3 days` after a number is a duration, but `days_left` and a field
    # called `hours` right after an int default are names.
    policy = parse(HEAD + "account { id : text  n : int = 0  hours : int = 1  days_left : int = 2 }\n"
                   "segment s when now - 3 days > paid_at and hours > days_left\n")
    assert [f.name for f in policy.fields] == ["id", "n", "hours", "days_left"]
    (segment,) = policy.segments
    first = segment.condition.operands[0]
    assert isinstance(first.left, n.Arithmetic)
    assert first.left.right == n.Literal(dt.timedelta(days=3), "duration", first.left.right.span)


def test_expression_spans_point_at_the_source() -> None:
    source = HEAD + ACCOUNT + "segment s when dpd >= 30 and balance > ¥100\n"
    (segment,) = parse(source).segments
    compare = segment.condition.operands[1]
    line, column = position(source, "balance > ¥100")
    assert (compare.span.line, compare.span.column) == (line, column)
    assert compare.span.end_column == column + len("balance > ¥100")


# ---------------------------------------------------------------- syntax errors


def _assert_rendered(error: PolicySyntaxError, source: str, path: str, line: int, column: int) -> list[str]:
    lines = str(error).splitlines()
    assert lines[0].startswith(f"{path}:{line}:{column}: error[E001]: "), lines[0]
    assert error.diagnostic.code == "E001" and error.diagnostic.severity == "error"
    assert (error.span.line, error.span.column) == (line, column)
    source_line = source.splitlines()[line - 1]
    assert lines[1] == f"{line:>4} | {source_line}"
    caret_row = lines[2]
    assert caret_row.startswith("     | ")
    assert caret_row.index("^") - len("     | ") == column - 1
    return lines


def test_stage_range_expected() -> None:
    source = HEAD + "account { id : text  dpd : int }\nstages on dpd {\n    M0 0 .. 30\n    M1 }\n"
    error = syntax_error(source)
    line, column = position(source, "M1 }")
    lines = _assert_rendered(error, source, "t.policy", line, column + 3)
    assert "unexpected '}'" in lines[0]
    assert "expected a stage range such as 31 .. 60" in lines[0]


def test_time_range_expected() -> None:
    source = HEAD + "actions { sms }\nwindow sms 8-21\n"
    lines = _assert_rendered(syntax_error(source), source, "t.policy", *position(source, "8-21"))
    assert "expected a time range such as 08:00-21:00" in lines[0]


def test_type_expected() -> None:
    source = HEAD + "account {\n    id : txt\n}\n"
    lines = _assert_rendered(syntax_error(source), source, "t.policy", *position(source, "txt"))
    assert "unexpected 'txt'" in lines[0] and "expected a type such as int, money" in lines[0]


def test_quoted_text_expected_for_header() -> None:
    source = 'policy p version "1"\n'
    lines = _assert_rendered(syntax_error(source), source, "t.policy", 1, 8)
    assert 'expected a quoted text such as "reason"' in lines[0]


def test_unexpected_character() -> None:
    source = HEAD + ACCOUNT + "allow sms when dpd > 3 @ 4\n"
    line, column = position(source, "@")
    lines = _assert_rendered(syntax_error(source), source, "t.policy", line, column)
    assert "unexpected character '@'" in lines[0]
    assert "a comparison (==, !=, <, <=, >, >=)" in lines[0]


def test_unexpected_end_of_file_points_after_the_last_character() -> None:
    source = HEAD + ACCOUNT + "allow sms when"
    lines = _assert_rendered(syntax_error(source), source, "t.policy", 13, len("allow sms when") + 1)
    assert "unexpected end of file" in lines[0]
    assert "'('" in lines[0] and "'now'" in lines[0]


def test_unexpected_keyword_lists_what_could_come() -> None:
    source = HEAD + "actions { sms }\nallow sms because \"x\"\n"
    lines = _assert_rendered(syntax_error(source), source, "t.policy", *position(source, "because"))
    assert "unexpected 'because'" in lines[0] and "one of: 'account', 'actions', 'allow'" in lines[0]


def test_empty_file() -> None:
    error = syntax_error("")
    assert str(error).startswith("t.policy:1:1: error[E001]: unexpected end of file; expected 'policy'")


def test_error_in_a_long_line_keeps_the_caret_under_the_column() -> None:
    source = HEAD + "actions { sms }\nallow sms when " + " or ".join(["true"] * 40) + " or ?\n"
    line, column = position(source, "?")
    error = syntax_error(source)
    excerpt, caret = str(error).splitlines()[1:3]
    assert "?" in excerpt
    assert excerpt[caret.index("^")] == "?"
    assert error.span.column == column and error.span.line == line


@pytest.mark.parametrize(("body", "needle", "message"), [
    ("window sms 25:00-26:00", "25:00", "not a time of day"),
    ("window sms 08:00-24:30", "24:30", "not a time of day"),
    ("window sms 08:61-09:00", "08:61", "not a time of day"),
    ("window sms 21:00-08:00", "08:00", "a window must end after it starts"),
    ("window sms 07:59-08:00, 08:00-08:00", "-08:00\n", "a window must end after it starts"),
    ("window sms 08:00-21:00 on funday", "funday", "unknown day 'funday'"),
    ("window sms 08:00-21:00 on mon..someday", "someday", "unknown day 'someday'"),
    ("allow sms when today() > 2025-02-30", "2025-02-30", "not a calendar date"),
    ("allow sms when now > 2025-02-30T08:00Z", "2025-02-30T08:00Z", "not a valid instant"),
    ("allow sms when local_time() > 25:00", "25:00", "not a time of day"),
    ("allow " + "x" * (MAX_NAME_LENGTH + 1), "x" * 10, f"longer than {MAX_NAME_LENGTH} characters"),
])
def test_values_the_grammar_accepts_but_the_parser_refuses(body: str, needle: str, message: str) -> None:
    source = HEAD + "actions { sms }\n" + body + "\n"
    line, column = position(source, needle)
    column += needle.startswith("-")  # the end time of a range
    error = syntax_error(source)
    assert (error.span.line, error.span.column) == (line, column)
    assert message in error.diagnostic.message
    assert str(error).startswith(f"t.policy:{line}:{column}: error[E001]: ")


def test_set_of_money_is_refused() -> None:
    source = HEAD + "account { id : text  s : set<money> }\n"
    error = syntax_error(source)
    assert "a set holds text or int, not money" in str(error)
    assert (error.span.line, error.span.column) == position(source, "money")


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize("condition", [
    "not " * 5000 + "true",
    "dpd > " + "- " * 5000 + "1",
    "dpd > " + " + ".join(["1"] * 5000),
    "dpd > " + " * ".join(["1"] * 5000),
    "dpd > " + "(" * 5000 + "1" + ")" * 5000,
    "dpd > " + "abs(" * 3000 + "1" + ")" * 3000,
    "dpd in " + "{" * 3000 + "}" * 3000,
    "not (" * 400 + "true" + ")" * 400,
    "dpd > " + "".join("(1 + " for _ in range(200)) + "1" + ")" * 200,
])
def test_huge_nesting_is_a_syntax_error_not_a_recursion_error(condition: str) -> None:
    source = HEAD + ACCOUNT + "allow sms when " + condition + "\n"
    with pytest.raises(PolicySyntaxError) as caught:
        compile_policy(source)
    assert caught.value.diagnostic.code == "E001"
    assert "nested" in caught.value.diagnostic.message


NESTING_SHAPES = {"not {}true": "not ", "dpd > {}1": "- ", "dpd > 1{}": " + 1"}


@pytest.mark.parametrize("shape", NESTING_SHAPES)
def test_every_nesting_depth_around_the_limit_compiles_or_is_a_syntax_error(shape: str) -> None:
    _nesting_sweep(shape, range(1, 130, 2))


@pytest.mark.slow
@pytest.mark.parametrize("shape", NESTING_SHAPES)
def test_every_nesting_depth_compiles_or_is_a_syntax_error(shape: str) -> None:
    # depth by depth: where Python's recursion limit is hit used to decide
    # whether a RecursionError was caught or leaked out as a lark VisitError
    _nesting_sweep(shape, range(1, 700))


def _nesting_sweep(shape: str, depths: range) -> None:
    piece = NESTING_SHAPES[shape]
    for depth in depths:
        source = HEAD + ACCOUNT + "allow sms when " + shape.format(piece * depth) + "\n"
        try:
            policy = compile_policy(source)
        except PolicySyntaxError as error:
            assert "nested too deeply" in error.diagnostic.message
            assert depth > 50
            continue
        decision = policy.evaluate({"id": "a", "dpd": 5}, now=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
        assert decision.error is None


def test_bracket_limit_is_reported_where_it_is_crossed() -> None:
    source = HEAD + ACCOUNT + "allow sms when dpd > " + "(" * (MAX_NESTING + 5) + "1" + ")" * (MAX_NESTING + 5) + "\n"
    error = syntax_error(source)
    line, column = position(source, "(")
    assert error.span.line == line and error.span.column == column + MAX_NESTING
    assert f"deeper than {MAX_NESTING}" in error.diagnostic.message


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    source = HEAD + ACCOUNT + "# " + "(" * 500 + "\nforbid sms because \"" + "{" * 500 + "\"\nallow sms\n"
    compile_policy(source)


def test_reasonable_nesting_compiles_and_evaluates() -> None:
    depth = 40
    condition = "dpd >= " + "".join("(1 + " for _ in range(depth)) + "0" + ")" * depth
    condition += " and " + "not " * 41 + "false"
    policy = compile_policy(HEAD + ACCOUNT + f"allow sms when {condition}\n")
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    assert policy.evaluate({"id": "a", "dpd": depth}, now=now).allowed == ("sms",)
    assert policy.evaluate({"id": "a", "dpd": depth - 1}, now=now).allowed == ()


@pytest.mark.parametrize("body", [
    "allow sms when dpd > " + "9" * 5000,
    "limit sms " + "9" * 5000 + " per day",
    "limit sms 1 per " + "9" * 5000 + " days",
    "stages on dpd { a " + "9" * 5000 + " .. }",
    "allow sms when now - 99999999999 days > paid_at",
    "allow sms when now - " + "9" * 30 + " hours > paid_at",
])
def test_numbers_out_of_range_are_syntax_errors(body: str) -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        compile_policy(HEAD + ACCOUNT + body + "\n")
    assert caught.value.diagnostic.code == "E001"
    assert caught.value.diagnostic.message == "number out of range"
    assert caught.value.span.line == 13


def test_file_size_limit() -> None:
    source = HEAD + "#" + "x" * MAX_SOURCE_BYTES + "\n"
    error = syntax_error(source)
    assert f"larger than {MAX_SOURCE_BYTES} bytes" in error.diagnostic.message


# ---------------------------------------------------------------- robustness property

VALID = HEAD + """\
account {
    id              : text
    days_past_due   : int
    balance         : money
    timezone        : zone = "Asia/Shanghai"
    risk_score      : number = 0
    country         : text = "CN"
    band            : enum(low, high) = low
    flags           : set<text> = {}
    promised        : date = 2025-01-01
}
actions {
    message    : app_push, sms
    call       : ivr, agent_call
    escalation : legal_review
}
events { inbound_call }
stages on days_past_due {
    pre_due   -3 .. 0
    M0         1 .. 30
    M1        31 ..
}
segment high_risk when risk_score >= 0.7 or band == "high"
segment stale when days_since(promised) > 30 and not high_risk
window call, message 08:00-12:00, 13:00-21:00 on mon..sat except holidays country because "hours"
limit call 7 per 7 days where outcome not in {"not_connected"}
limit message 3 per 24 hours of message, inbound_call
quiet call for 2 days after "conversation" on call, inbound_call
stage pre_due { allow app_push, sms when high_risk }
stage M0 { allow sms, ivr  limit sms 1 per day }
stage M1 {
    allow agent_call, sms when len(flags) < 3 and now - 3 days > 2025-01-01T00:00Z
    allow legal_review when balance >= ¥5000 * 2 and max(days_past_due, 1) > 60
}
forbid all when "deceased" in flags because "estate" cite "law"
forbid call when local_time() < 09:00 and weekday() == "sun" because "sunday mornings"
"""

ACCOUNT_ROW = {"id": "A1", "days_past_due": 45, "balance": "9000", "flags": "x"}
NOW = dt.datetime(2025, 6, 4, 2, 0, tzinfo=dt.UTC)

TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:[.:-][0-9]+)*|\.\.|[<>=!]=|\s+|.', re.S)
VOCABULARY = [
    "policy", "version", "include", "with", "account", "actions", "events", "stages", "on", "segment", "when",
    "stage", "allow", "forbid", "window", "limit", "quiet", "per", "of", "where", "outcome", "in", "not", "and",
    "or", "for", "after", "because", "cite", "except", "holidays", "all", "action", "now", "true", "false", "set",
    "enum", "int", "text", "zone", "money", "days", "hour", "{", "}", "(", ")", "<", ">", ",", ":", "=", "-", "+",
    "*", "/", "..", "==", ">=", '"x"', '"', "08:00", "25:99", "08:00-21:00", "0", "-1", "99999999999999999999",
    "2025-02-30", "2025-06-01T08:00Z", "¥5", "3.5", "mon..fri", "#", "\n", " ", "\\", "é", "\x00", "sms",
    "days_past_due", "high_risk", "M0", "len(", "today()",
]


def _outcome(source: str) -> None:
    """compile_policy either succeeds (and the policy evaluates without an
    exception) or raises a PolicyError; anything else fails the test."""
    try:
        policy = compile_policy(source)
    except (PolicySyntaxError, PolicyCheckError):
        return
    decision = policy.evaluate(ACCOUNT_ROW, now=NOW)
    assert decision.error is None or isinstance(decision.error, str)


def test_the_mutation_base_is_valid() -> None:
    policy = compile_policy(VALID)
    decision = policy.evaluate(ACCOUNT_ROW, now=NOW)
    assert decision.error is None and decision.stage == "M1"
    assert "".join(TOKEN.findall(VALID)) == VALID


@st.composite
def token_mutants(draw: st.DrawFn) -> str:
    tokens = TOKEN.findall(VALID)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "swap", "duplicate", "replace"]))
        index = draw(st.integers(0, len(tokens) - 1))
        if kind == "delete":
            del tokens[index]
        elif kind == "insert":
            tokens.insert(index, draw(st.sampled_from(VOCABULARY) | st.text(max_size=3)))
        elif kind == "swap":
            other = draw(st.integers(0, len(tokens) - 1))
            tokens[index], tokens[other] = tokens[other], tokens[index]
        elif kind == "duplicate":
            tokens.insert(index, tokens[index])
        else:
            tokens[index] = draw(st.sampled_from(VOCABULARY))
    return "".join(tokens)


@st.composite
def character_mutants(draw: st.DrawFn) -> str:
    chars = list(VALID)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["delete", "insert", "swap"]))
        index = draw(st.integers(0, len(chars) - 1))
        if kind == "delete":
            del chars[index]
        elif kind == "insert":
            chars.insert(index, draw(st.characters(codec="utf-8") | st.sampled_from('"{}()-.:#\n0')))
        else:
            other = draw(st.integers(0, len(chars) - 1))
            chars[index], chars[other] = chars[other], chars[index]
    return "".join(chars)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPERTY = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_policy_errors(text: str) -> None:
    _outcome(text)
    _outcome(HEAD + text)


@PROPERTY
@given(token_mutants())
def test_token_mutations_raise_only_policy_errors(source: str) -> None:
    _outcome(source)


@PROPERTY
@given(character_mutants())
def test_character_mutations_raise_only_policy_errors(source: str) -> None:
    _outcome(source)


@pytest.mark.slow
@SLOW_PROPERTY
@given(st.one_of(token_mutants(), character_mutants(), st.text(max_size=2000)))
def test_mutations_raise_only_policy_errors_many_examples(source: str) -> None:
    _outcome(source)


def test_policy_error_is_the_base_of_both() -> None:
    assert issubclass(PolicySyntaxError, PolicyError) and issubclass(PolicyCheckError, PolicyError)
