"""`policy fmt`: the canonical layout (golden tests), comments kept where they
were, idempotence and round trip on the shipped policies, the command, and
properties over generated policies: formatting is idempotent, keeps the
syntax tree and keeps every comment."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import lark
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policydsl
from policydsl.cli import main
from policydsl.errors import PolicySyntaxError
from policydsl.formatter import comment_texts, format_source, syntax_shape
from policydsl.parser import parse

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "policies").glob("*.policy"))
HEAD = 'policy "p" version "1"\n'
LEXEMES = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[ \t\f\r\n]+')  # strings, comments, whitespace


def fmt(source: str) -> str:
    return format_source(source, "t.policy")


_FOUND: list[str] = []
_COMMENT_PARSER = lark.Lark(
    Path(policydsl.__file__).with_name("grammar.lark").read_text(encoding="utf-8"),
    parser="lalr", lexer_callbacks={"COMMENT": lambda token: _FOUND.append(str(token))},
)


def lark_comments(source: str) -> list[str]:
    """The comments Lark's own lexer sees: an oracle independent of the
    formatter's scanner."""
    _FOUND.clear()
    _COMMENT_PARSER.parse(source)
    return [text.rstrip() for text in _FOUND]


def same_tree(before: str, after: str) -> bool:
    return bool(syntax_shape(parse(before, "t.policy")) == syntax_shape(parse(after, "t.policy")))


def assert_formats(source: str, expected: str) -> None:
    """`source` formats to exactly `expected`, which is a fixed point."""
    assert fmt(source) == expected
    assert fmt(expected) == expected
    assert same_tree(source, expected)


# ---------------------------------------------------------------- golden


def test_a_whole_policy_in_canonical_layout() -> None:
    source = (
        'policy   "collections"\nversion "2026.1"\n'
        'include "base.policy" with { voice = ivr, agent_call message=sms }\n'
        "account{id:text dpd : int balance:money=¥0 zones : zone = \"Asia/Shanghai\" "
        "kind : enum(a,b)=a tags:set<text>={\"x\",\"y\"}}\n"
        "actions { message : sms, app_push  human_call:agent_call letter }\n"
        "events {inbound_call,  walk_in}\n"
        "stages on dpd { current ..0 M0 1..30 M1 31..60 M3plus 91.. }\n"
        "segment big when balance>=¥5000\n"
        "stage M0 { allow sms,app_push   limit sms 1 per 1 day }\n"
        "stage M1 {}\n"
        "window message 08:00-12:00,13:00-21:00 on mon..fri,sat..sat except holidays \"CN\" because \"hours\"\n"
        "quiet human_call for 1 days after \"refused\",\"promise\" on agent_call because \"q\" cite \"c\"\n"
    )
    assert_formats(source, (
        'policy "collections" version "2026.1"\n'
        "\n"
        'include "base.policy" with {\n'
        "    voice   = ivr, agent_call\n"
        "    message = sms\n"
        "}\n"
        "\n"
        "account {\n"
        "    id      : text\n"
        "    dpd     : int\n"
        "    balance : money = ¥0\n"
        '    zones   : zone = "Asia/Shanghai"\n'
        "    kind    : enum(a, b) = a\n"
        '    tags    : set<text> = {"x", "y"}\n'
        "}\n"
        "\n"
        "actions {\n"
        "    message    : sms, app_push\n"
        "    human_call : agent_call\n"
        "    letter\n"
        "}\n"
        "\n"
        "events { inbound_call, walk_in }\n"
        "\n"
        "stages on dpd {\n"
        "    current    .. 0\n"
        "    M0       1 .. 30\n"
        "    M1      31 .. 60\n"
        "    M3plus  91 ..\n"
        "}\n"
        "\n"
        "segment big when balance >= ¥5000\n"
        "\n"
        "stage M0 {\n"
        "    allow sms, app_push\n"
        "    limit sms 1 per day\n"
        "}\n"
        "\n"
        "stage M1 {}\n"
        "\n"
        'window message 08:00-12:00, 13:00-21:00 on mon..fri, sat except holidays "CN" because "hours"\n'
        'quiet human_call for 1 day after "refused", "promise" on agent_call because "q" cite "c"\n'
    ))


@pytest.mark.parametrize(("written", "canonical"), [
    ("(a or b) and c", "(a or b) and c"),
    ("a or (b and c)", "a or b and c"),
    ("(a and b) and c", "(a and b) and c"),  # a nested operator is its own node
    ("a and b and c", "a and b and c"),
    ("not (a == b)", "not a == b"),
    ("(not a) == b", "(not a) == b"),
    ("not (a and b)", "not (a and b)"),
    ("not not a", "not not a"),
    ("(a - b) - c", "a - b - c"),
    ("a - (b - c)", "a - (b - c)"),
    ("a*(b+c)", "a * (b + c)"),
    ("(a*b)+c", "a * b + c"),
    ("a / (b * c)", "a / (b * c)"),
    ("-(x + 1) * 2", "-(x + 1) * 2"),
    ("- - x", "--x"),
    ("a - -5", "a - -5"),
    ("(a == b) == c", "(a == b) == c"),
    ("x in (y + z)", "x in y + z"),
    ("(x in y) == true", "(x in y) == true"),
    ("x not in{1,-2,3}", "x not in {1, -2, 3}"),
    ("((((a))))", "a"),
    ("len( flags )>=max(1,(2))", "len(flags) >= max(1, 2)"),
    ("f()", "f()"),
    ("action in opted_out", "action in opted_out"),
    ("now > 2025-06-01T08:00Z", "now > 2025-06-01T08:00Z"),
    ("x == 2025-06-01T08:00:30+08:00", "x == 2025-06-01T08:00:30+08:00"),
    ("d >= 2025-06-01 and t < 08:30", "d >= 2025-06-01 and t < 08:30"),
    ("days_since(d) > 007", "days_since(d) > 7"),
    ("score >= 0.50", "score >= 0.50"),
    ("b > $5.50 or b > €3 or b > £0.01 or b > ¥500", "b > $5.50 or b > €3 or b > £0.01 or b > ¥500"),
    ("age > 1 days or age > 24 hours or age > 2 day or age > 1 hours",
     "age > 1 day or age > 24 hours or age > 2 days or age > 1 hour"),
    ('s == "say \\"hi\\" \\\\ # not a comment\\n\\x"', 's == "say \\"hi\\" \\\\ # not a comment\\nx"'),
    ("flag == true or flag == false", "flag == true or flag == false"),
    ("{} == {{1}}", "{} == {{1}}"),
])
def test_expressions_canonical_spacing_and_fewest_brackets(written: str, canonical: str) -> None:
    assert_formats(f"{HEAD}segment s when {written}\n", f"{HEAD}\nsegment s when {canonical}\n")


def test_constants_keep_their_values() -> None:
    source = HEAD + "account { a : int = -3 b : number = -0.25 c : set<int> = {-1, 2} d : money = $10.00 }\n"
    assert_formats(source, HEAD + (
        "\naccount {\n"
        "    a : int = -3\n"
        "    b : number = -0.25\n"
        "    c : set<int> = {-1, 2}\n"
        "    d : money = $10.00\n"
        "}\n"
    ))


def test_long_condition_breaks_before_each_operator() -> None:
    condition = " or ".join(f"score_{i} >= 0.{i}" for i in range(1, 9))
    assert_formats(f"{HEAD}segment risky when {condition}\n", HEAD + "\n" + (
        "segment risky when score_1 >= 0.1\n"
        + "".join(f"    or score_{i} >= 0.{i}\n" for i in range(2, 9))
    ))


def test_long_nested_and_breaks_one_step_deeper() -> None:
    left = " and ".join(f"first_condition_{i} > 10" for i in range(4))
    right = " and ".join(f"second_condition_{i} > 10" for i in range(4))
    source = f"{HEAD}stage M0 {{ forbid sms when {left} or {right} because \"no\" }}\n"
    assert_formats(source, HEAD + "\n" + (
        "stage M0 {\n"
        "    forbid sms when first_condition_0 > 10\n"
        "            and first_condition_1 > 10\n"
        "            and first_condition_2 > 10\n"
        "            and first_condition_3 > 10\n"
        "        or second_condition_0 > 10\n"
        "            and second_condition_1 > 10\n"
        "            and second_condition_2 > 10\n"
        "            and second_condition_3 > 10\n"
        '        because "no"\n'
        "}\n"
    ))


def test_long_bracketed_operand_breaks_inside_its_brackets() -> None:
    source = HEAD + (
        'stage M1 { forbid agent_call, senior_agent_call when ("deceased" in flags or "bankruptcy" in flags '
        'or "complaint_open" in flags) and balance > ¥500 because "x" }\n'
    )
    assert_formats(source, HEAD + "\n" + (
        "stage M1 {\n"
        '    forbid agent_call, senior_agent_call when ("deceased" in flags\n'
        '            or "bankruptcy" in flags\n'
        '            or "complaint_open" in flags)\n'
        "        and balance > ¥500\n"
        '        because "x"\n'
        "}\n"
    ))


def test_because_and_cite_go_to_continuation_lines_only_when_too_long() -> None:
    short = 'forbid threaten because "no threats" cite "art. 16"\n'
    reason = "x" * 70
    long = f'forbid threaten when "a" in flags because "{reason}" cite "art. 16"\n'
    assert_formats(HEAD + short + long, HEAD + "\n" + short + (
        'forbid threaten when "a" in flags\n'
        f'    because "{reason}"\n'
        '    cite "art. 16"\n'
    ))


def test_long_window_limit_and_quiet_clauses_break() -> None:
    names = ", ".join(f"channel_number_{i}" for i in range(4))
    source = (
        HEAD
        + f"window {names} 08:00-12:00, 13:00-21:00 on mon..fri except holidays calendar_name\n"
        + f'limit {names} 3 per 7 days of {names} where outcome in {{"connected"}}\n'
        + f'quiet {names} for 2 days after "promise_to_pay" on {names}\n'
    )
    assert_formats(source, HEAD + "\n" + (
        f"window {names} 08:00-12:00, 13:00-21:00\n"
        "    on mon..fri\n"
        "    except holidays calendar_name\n"
        f"limit {names} 3 per 7 days\n"
        f"    of {names}\n"
        '    where outcome in {"connected"}\n'
        f'quiet {names} for 2 days after "promise_to_pay"\n'
        f"    on {names}\n"
    ))


def test_blank_lines_between_sections_and_author_groups_kept_once() -> None:
    source = (
        HEAD + "actions {a\n\n\n\nb}\n"
        "allow a\nallow b\n\n\n\nforbid a\n"
        "segment s when a\nsegment t when b\n"
    )
    assert_formats(source, HEAD + (
        "\nactions {\n    a\n\n    b\n}\n"
        "\nallow a\nallow b\n\nforbid a\n"
        "\nsegment s when a\nsegment t when b\n"
    ))


def test_strings_are_re_escaped() -> None:
    source = HEAD + 'forbid a because "tab\there, quote \\" and \\\\" cite "line\\nbreak"\n'
    out = fmt(source)
    assert 'because "tab\\there, quote \\" and \\\\" cite "line\\nbreak"' in out
    assert parse(out).rules[0].reason.because == 'tab\there, quote " and \\'


def test_empty_include_mapping_and_day_spans_canonical() -> None:
    assert_formats(HEAD + 'include "a.policy" with {}\nwindow x 08:00-24:00 on sun..sun\n',
                   HEAD + '\ninclude "a.policy"\n\nwindow x 08:00-24:00 on sun\n')


def test_crlf_and_tabs_become_the_canonical_text() -> None:
    source = HEAD.replace("\n", "\r\n") + "account {\r\n\tid : text\t# the id\r\n}\r\n"
    assert fmt(source) == HEAD + "\naccount {\n    id : text  # the id\n}\n"


def test_a_syntax_error_propagates() -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        fmt(HEAD + "allow when x\n")
    assert caught.value.span.line == 2


# ---------------------------------------------------------------- comments


def test_own_line_and_trailing_comments_inside_blocks() -> None:
    source = (
        "# file header\n\n\n"
        "# about the policy\n"
        'policy "p" version "1"   # the header\n'
        "account {   # fields\n"
        "  # the key\n"
        "  id:text # trailing\n"
        "  very_long_name : int=0      # aligned\n"
        "\n"
        "\n"
        "  # before the closing brace\n"
        "}\n"
        "# at the end\n"
    )
    assert_formats(source, (
        "# file header\n"
        "\n"
        "# about the policy\n"
        'policy "p" version "1"  # the header\n'
        "\n"
        "account {  # fields\n"
        "    # the key\n"
        "    id             : text     # trailing\n"
        "    very_long_name : int = 0  # aligned\n"
        "\n"
        "    # before the closing brace\n"
        "}\n"
        "# at the end\n"
    ))


def test_comments_inside_a_stage_block_and_an_empty_block() -> None:
    source = HEAD + (
        "stage M0 {\n"
        "    # the first rule\n"
        "    allow sms   # trailing\n"
        "    limit sms 1 per day\n"
        "        because \"one\" # on the reason\n"
        "    # closing\n"
        "}\n"
        "stage M1 { # open\n"
        "    # to do\n"
        "}\n"
        "stage M2 {}\n"
    )
    assert_formats(source, HEAD + (
        "\n"
        "stage M0 {\n"
        "    # the first rule\n"
        "    allow sms                          # trailing\n"
        '    limit sms 1 per day because "one"  # on the reason\n'
        "    # closing\n"
        "}\n"
        "\n"
        "stage M1 {  # open\n"
        "    # to do\n"
        "}\n"
        "\n"
        "stage M2 {}\n"
    ))


def test_comments_inside_a_joined_expression() -> None:
    source = HEAD + (
        "segment s when a   # first\n"
        "    # own line inside the condition\n"
        "    or b    # second\n"
        "    or c\n"
        "allow x\n"
    )
    out = fmt(source)
    assert out == HEAD + (
        "\n"
        "segment s when a or b or c  # first\n"
        "\n"
        "# own line inside the condition\n"
        "# second\n"
        "allow x\n"
    )
    assert fmt(out) == out
    assert comment_texts(out) == comment_texts(source)


def test_comment_in_a_dropped_bracket_and_string_with_hash() -> None:
    source = HEAD + 'segment s when (  # why\n  a == "#1")\n# tail'
    out = fmt(source)
    assert out == HEAD + '\nsegment s when a == "#1"  # why\n# tail\n'
    assert fmt(out) == out


def test_comments_are_never_merged() -> None:
    source = HEAD + "events { a,  # one\n b,  # two\n c }  # three\nallow a\n"
    out = fmt(source)
    assert out == HEAD + "\nevents { a, b, c }  # one\n\n# two\n# three\nallow a\n"
    assert fmt(out) == out


# ---------------------------------------------------------------- shipped policies


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_is_formatted_and_round_trips(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    out = format_source(source, str(path))
    assert out == source, f"{path.name} is not formatted: run `policy fmt policies/`"
    assert fmt(out) == out
    assert same_tree(source, out)
    assert lark_comments(out) == lark_comments(source)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_from_a_squashed_layout(path: Path) -> None:
    """All code on one line, each comment on a line of its own: the
    formatter restores a layout with the same tree and comments."""

    def squash(match: re.Match[str]) -> str:
        text = match.group()
        return f"\n{text}\n" if text.startswith("#") else text if text.startswith('"') else " "

    text = LEXEMES.sub(squash, path.read_text(encoding="utf-8"))
    out = format_source(text, str(path))
    assert fmt(out) == out
    assert same_tree(text, out)
    assert lark_comments(out) == lark_comments(text)


# ---------------------------------------------------------------- the command


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_fmt_check_names_files_and_writes_nothing(tmp_path: Path) -> None:
    messy = write(tmp_path, "sub/messy.policy", HEAD + "allow  a\n")
    tidy = write(tmp_path, "tidy.policy", HEAD + "\nallow a\n")
    result = CliRunner().invoke(main, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert str(messy) in result.output and str(tidy) not in result.output
    assert messy.read_text(encoding="utf-8") == HEAD + "allow  a\n"
    assert CliRunner().invoke(main, ["fmt", "--check", str(tidy)]).exit_code == 0


def test_fmt_diff_prints_a_unified_diff_and_writes_nothing(tmp_path: Path) -> None:
    messy = write(tmp_path, "messy.policy", HEAD + "allow  a")
    result = CliRunner().invoke(main, ["fmt", "--diff", str(messy)])
    assert result.exit_code == 0
    assert f"--- {messy}\n+++ {messy}\n" in result.output
    assert "-allow  a\n\\ No newline at end of file\n+\n+allow a\n" in result.output
    assert messy.read_text(encoding="utf-8") == HEAD + "allow  a"


def test_fmt_rewrites_in_place_keeping_permissions(tmp_path: Path) -> None:
    messy = write(tmp_path, "messy.policy", HEAD + "allow  a # why\n")
    os.chmod(messy, 0o640)
    result = CliRunner().invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert messy.read_text(encoding="utf-8") == HEAD + "\nallow a  # why\n"
    assert stat.S_IMODE(os.stat(messy).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["messy.policy"]  # no temporary file left
    again = CliRunner().invoke(main, ["fmt", "--check", str(messy)])
    assert again.exit_code == 0


def test_fmt_syntax_error_is_positioned_and_exits_2(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.policy", HEAD + "allow a when\n")
    fine = write(tmp_path, "fine.policy", HEAD + "allow  a\n")
    result = CliRunner().invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{broken}:2:13: error[E001]" in result.output
    assert "^" in result.output
    assert broken.read_text(encoding="utf-8") == HEAD + "allow a when\n"  # broken text is never formatted
    assert fine.read_text(encoding="utf-8") == HEAD + "\nallow a\n"  # the others still are


# ---------------------------------------------------------------- properties

KEYWORDS = {
    "policy", "version", "include", "with", "account", "set", "enum", "int", "number", "money", "bool", "text",
    "date", "datetime", "zone", "actions", "events", "stages", "on", "segment", "when", "stage", "allow",
    "forbid", "window", "limit", "quiet", "because", "cite", "all", "except", "holidays", "per", "of", "where",
    "outcome", "not", "in", "and", "or", "action", "now", "true", "false", "for", "after", "day", "days",
    "hour", "hours",
}
LONG_NAMES = ["days_past_due", "contact_changes_90d", "emergency_contact_disclose_debt", "risk_score"]
names = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in KEYWORDS),
    st.sampled_from(LONG_NAMES),
)
Tokens = list[str]


def string_literal() -> st.SearchStrategy[str]:
    piece = st.one_of(
        st.text(st.characters(blacklist_characters='"\\\n', blacklist_categories=("Cs",)), max_size=6),
        st.sampled_from(['\\"', "\\\\", "\\n", "\\t", "\\x", "#", " # "]),
    )
    return st.lists(piece, max_size=4).map(lambda parts: '"' + "".join(parts) + '"')


def time_of_day(draw: st.DrawFn, low: int = 0, high: int = 23 * 60 + 59) -> tuple[int, str]:
    minutes = draw(st.integers(low, high))
    return minutes, f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def literal(draw: st.DrawFn, depth: int = 0) -> Tokens:
    kind = draw(st.sampled_from(["int", "decimal", "money", "string", "date", "datetime", "time", "duration",
                                 "bool", "set"]))
    if kind == "int":
        return [draw(st.from_regex(r"[0-9]{1,6}", fullmatch=True))]
    if kind == "decimal":
        return [draw(st.from_regex(r"[0-9]{1,4}\.[0-9]{1,4}", fullmatch=True))]
    if kind == "money":
        return [draw(st.from_regex(r"[$¥€£][0-9]{1,5}(\.[0-9]{1,2})?", fullmatch=True))]
    if kind == "string":
        return [draw(string_literal())]
    if kind == "date":
        return [draw(st.dates()).isoformat()]
    if kind == "datetime":
        day = draw(st.dates()).isoformat()
        _, clock = time_of_day(draw)
        seconds = draw(st.sampled_from(["", ":00", ":59"]))
        zone = draw(st.sampled_from(["Z", "+08:00", "-05:30"]))
        return [f"{day}T{clock}{seconds}{zone}"]
    if kind == "time":
        return [time_of_day(draw)[1]]
    if kind == "duration":
        return [str(draw(st.integers(0, 99))), draw(st.sampled_from(["day", "days", "hour", "hours"]))]
    if kind == "bool":
        return [draw(st.sampled_from(["true", "false"]))]
    if depth > 1:
        return ["{", "}"]
    elements = draw(st.lists(const(depth + 1), max_size=3))
    return ["{", *joined(elements, ","), "}"]


@st.composite
def const(draw: st.DrawFn, depth: int = 0) -> Tokens:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return ["-", draw(st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,2})?", fullmatch=True))]
    if choice == 1:
        return [draw(names)]
    return draw(literal(depth))


def joined(parts: list[Tokens], separator: str) -> Tokens:
    out: Tokens = []
    for index, part in enumerate(parts):
        if index:
            out.append(separator)
        out.extend(part)
    return out


@st.composite
def expression(draw: st.DrawFn, depth: int = 0) -> Tokens:
    """Text of the `expr` rule, level by level, with brackets both needed and not."""
    wide = 3 if depth < 2 else 1
    return joined([draw(conjunction(depth, wide)) for _ in range(draw(st.integers(1, wide)))], "or")


@st.composite
def conjunction(draw: st.DrawFn, depth: int, wide: int) -> Tokens:
    return joined([draw(negation(depth)) for _ in range(draw(st.integers(1, wide)))], "and")


@st.composite
def negation(draw: st.DrawFn, depth: int) -> Tokens:
    if draw(st.integers(0, 5)) == 0:
        return ["not", *draw(negation(depth + 1))]
    left = draw(arithmetic(depth))
    form = draw(st.sampled_from(["", "", "==", "!=", "<", "<=", ">", ">=", "in", "not in"]))
    if not form:
        return left
    return [*left, *form.split(), *draw(arithmetic(depth))]


@st.composite
def arithmetic(draw: st.DrawFn, depth: int) -> Tokens:
    terms = [draw(unary(depth)) for _ in range(draw(st.integers(1, 2)))]
    out: Tokens = []
    for index, term in enumerate(terms):
        if index:
            out.append(draw(st.sampled_from(["+", "-", "*", "/"])))
        out.extend(term)
    return out


@st.composite
def unary(draw: st.DrawFn, depth: int) -> Tokens:
    if draw(st.integers(0, 7)) == 0:
        return ["-", *draw(unary(depth + 1))]
    return draw(atom(depth))


@st.composite
def atom(draw: st.DrawFn, depth: int) -> Tokens:
    choice = draw(st.integers(0, 9 if depth < 3 else 5))
    if choice <= 1:
        return draw(literal())
    if choice <= 4:
        return [draw(names)]
    if choice == 5:
        return [draw(st.sampled_from(["action", "now"]))]
    if choice <= 7:
        args = [draw(expression(depth + 1)) for _ in range(draw(st.integers(0, 2)))]
        return [draw(names), "(", *joined(args, ","), ")"]
    return ["(", *draw(expression(depth + 1)), ")"]


def name_list(draw: st.DrawFn, most: int = 4) -> Tokens:
    return joined([[name] for name in draw(st.lists(names, min_size=1, max_size=most))], ",")


def targets(draw: st.DrawFn) -> Tokens:
    return ["all"] if draw(st.integers(0, 4)) == 0 else name_list(draw)


def reason(draw: st.DrawFn) -> Tokens:
    out: Tokens = []
    if draw(st.booleans()):
        out += ["because", draw(string_literal())]
    if draw(st.booleans()):
        out += ["cite", draw(string_literal())]
    return out


def period(draw: st.DrawFn) -> Tokens:
    unit = draw(st.sampled_from(["day", "days", "hour", "hours"]))
    return [unit] if draw(st.booleans()) else [str(draw(st.integers(0, 30))), unit]


@st.composite
def rule(draw: st.DrawFn) -> Tokens:
    kind = draw(st.sampled_from(["allow", "forbid", "window", "limit", "quiet"]))
    out = [kind, *targets(draw)]
    if kind in ("allow", "forbid") and draw(st.booleans()):
        out += ["when", *draw(expression())]
    if kind == "window":
        ranges = []
        for _ in range(draw(st.integers(1, 2))):
            start, start_text = time_of_day(draw, 0, 23 * 60)
            ranges.append([start_text, "-", time_of_day(draw, start + 1, 24 * 60)[1]])
        out += joined(ranges, ",")
        if draw(st.booleans()):
            day_names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            specs = [[draw(st.sampled_from(day_names))] + (["..", draw(st.sampled_from(day_names))]
                                                            if draw(st.booleans()) else [])
                     for _ in range(draw(st.integers(1, 3)))]
            out += ["on", *joined(specs, ",")]
        if draw(st.booleans()):
            out += ["except", "holidays", draw(st.one_of(string_literal(), names))]
    if kind == "limit":
        out += [str(draw(st.integers(0, 50))), "per", *period(draw)]
        if draw(st.booleans()):
            out += ["of", *targets(draw)]
        if draw(st.booleans()):
            strings = [[s] for s in draw(st.lists(string_literal(), min_size=1, max_size=3))]
            out += ["where", "outcome", *(["not"] if draw(st.booleans()) else []), "in", "{",
                    *joined(strings, ","), "}"]
    if kind == "quiet":
        strings = [[s] for s in draw(st.lists(string_literal(), min_size=1, max_size=3))]
        out += ["for", str(draw(st.integers(0, 30))), draw(st.sampled_from(["day", "days", "hour", "hours"])),
                "after", *joined(strings, ","), "on", *targets(draw)]
    if kind != "allow":
        out += reason(draw)
    return out


@st.composite
def item(draw: st.DrawFn) -> Tokens:
    kind = draw(st.sampled_from(["include", "account", "actions", "events", "stages", "segment", "stage",
                                 "rule", "rule"]))
    if kind == "include":
        out = ["include", draw(string_literal())]
        if draw(st.booleans()):
            out += ["with", "{"]
            for _ in range(draw(st.integers(0, 3))):
                out += [draw(names), "=", *name_list(draw)]
            out += ["}"]
        return out
    if kind == "account":
        out = ["account", "{"]
        for _ in range(draw(st.integers(0, 4))):
            field_type = draw(st.sampled_from(["int", "number", "money", "bool", "text", "date", "datetime",
                                               "zone", "set<text>", "set<int>", "enum"]))
            if field_type == "enum":
                type_tokens = ["enum", "(", *name_list(draw, 3), ")"]
            elif field_type.startswith("set"):
                type_tokens = ["set", "<", field_type[4:-1], ">"]
            else:
                type_tokens = [field_type]
            out += [draw(names), ":", *type_tokens]
            if draw(st.booleans()):
                out += ["=", *draw(const())]
        return [*out, "}"]
    if kind == "actions":
        out = ["actions", "{"]
        for _ in range(draw(st.integers(0, 4))):
            out += ([draw(names), ":"] if draw(st.booleans()) else []) + name_list(draw)
        return [*out, "}"]
    if kind == "events":
        return ["events", "{", *name_list(draw), "}"]
    if kind == "stages":
        out = ["stages", "on", draw(names), "{"]
        for _ in range(draw(st.integers(0, 4))):
            bound = st.integers(-40, 400).map(lambda v: ["-", str(-v)] if v < 0 else [str(v)])
            form = draw(st.integers(0, 2))
            low = draw(bound) if form != 2 else []
            high = draw(bound) if form != 1 else []
            out += [draw(names), *low, "..", *high]
        return [*out, "}"]
    if kind == "segment":
        return ["segment", draw(names), "when", *draw(expression())]
    if kind == "stage":
        out = ["stage", draw(names), "{"]
        for _ in range(draw(st.integers(0, 3))):
            out += draw(rule())
        return [*out, "}"]
    return draw(rule())


comment = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=12).map(
    lambda text: "#" + text)
separator = st.one_of(
    st.sampled_from([" ", " ", " ", " ", "  ", "\n", "\n", "\n\n", "\n\n\n", "\t", "\r\n", "\n    "]),
    st.tuples(st.sampled_from(["", " ", "\n", "\n\n"]), comment, st.sampled_from(["\n", "\n\n", "\n  "])).map(
        "".join),
)


@st.composite
def policy_text(draw: st.DrawFn) -> str:
    tokens = ["policy", draw(string_literal()), "version", draw(string_literal())]
    for _ in range(draw(st.integers(0, 7))):
        tokens += draw(item())
    gaps = draw(st.lists(separator, min_size=len(tokens) - 1, max_size=len(tokens) - 1))
    text = tokens[0] + "".join(gap + token for gap, token in zip(gaps, tokens[1:], strict=True))
    lead = draw(st.sampled_from(["", "\n", "# lead\n", "#\n\n# lead 2\n\n"]))
    tail = draw(st.sampled_from(["", "\n", "\n\n", " # tail", "\n# tail\n", "\n\n# tail\n\n\n"]))
    return lead + text + tail


# A modest run by default (a few seconds); thousands of examples with `pytest -m slow`.
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPERTY = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_idempotent_same_tree_same_comments(source: str) -> None:
    out = fmt(source)
    assert fmt(out) == out
    assert same_tree(source, out)
    comments = lark_comments(source)
    assert lark_comments(out) == comments  # the same comments, in the same order
    assert comment_texts(out) == comments
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert "\n\n\n" not in out
    for line in out.split("\n"):
        assert line == line.rstrip(" \t"), "trailing whitespace"


def check_layout_independent_of_source_layout(source: str) -> None:
    """Without comments, the same code on one line or one token a line
    formats alike (spacing and line breaks are the formatter's alone)."""

    def drop_comments(match: re.Match[str]) -> str:
        return "" if match.group().startswith("#") else match.group()

    bare = LEXEMES.sub(drop_comments, source)

    def respaced(whitespace: str) -> str:
        return LEXEMES.sub(lambda m: m.group() if m.group().startswith('"') else whitespace, bare)

    assert fmt(respaced(" ")) == fmt(respaced("\n"))


@PROPERTY
@given(policy_text())
def test_formatting_is_idempotent_and_keeps_tree_and_comments(source: str) -> None:
    check_idempotent_same_tree_same_comments(source)


@PROPERTY
@given(policy_text())
def test_layout_does_not_depend_on_the_source_layout(source: str) -> None:
    check_layout_independent_of_source_layout(source)


@pytest.mark.slow
@SLOW_PROPERTY
@given(policy_text())
def test_formatting_properties_many_examples(source: str) -> None:
    check_idempotent_same_tree_same_comments(source)
    check_layout_independent_of_source_layout(source)
