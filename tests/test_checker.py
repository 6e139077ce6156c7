"""The checker: every diagnostic code it can emit, with severity, line and
column; includes (E002) from files in tmp_path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from policydsl import PolicyCheckError, PolicySyntaxError, compile_policy, load_policy
from policydsl.checker import CODES, check
from policydsl.errors import Diagnostic
from policydsl.loader import MAX_INCLUDE_DEPTH, load_text

ACCOUNT = """\
policy "p" version "1"
account {
    id       : text
    tz       : zone = "Asia/Shanghai"
    dpd      : int = 0
    balance  : money = 0
    band     : enum(low, high) = low
    flags    : set<text> = {}
    country  : text = "CN"
    paid_at  : datetime = 2025-01-01T00:00Z
}
actions {
    sms, email
    call
}
events { inbound_call }
"""
NOW_UTC = dt.datetime(2025, 6, 4, 2, 0, tzinfo=dt.UTC)
STAGES = "stages on dpd {\n    M0 .. 30\n    M1 31 .. 60\n    M2 61 ..\n}\n"
ALLOW = "allow all\n"


def diagnostics(source: str) -> list[Diagnostic]:
    _, found = check(load_text(source, "t.policy"))
    return found


def position(source: str, needle: str, occurrence: int = 1, start: int = 0) -> tuple[int, int]:
    """1-based line and column of the `occurrence`-th `needle` in `source`
    (from offset `start`)."""
    offset = start - 1
    for _ in range(occurrence):
        offset = source.index(needle, offset + 1)
    return source.count("\n", 0, offset) + 1, offset - (source.rfind("\n", 0, offset) + 1) + 1


def only(found: list[Diagnostic], code: str) -> Diagnostic:
    matching = [d for d in found if d.code == code]
    assert len(matching) == 1, found
    return matching[0]


def assert_reported(source: str, code: str, needle: str, occurrence: int = 1, words: str = "",
                    start: int = 0) -> Diagnostic:
    """Exactly one `code` is reported, at `needle`, with the right severity;
    errors make compile_policy raise PolicyCheckError carrying it."""
    found = diagnostics(source)
    diagnostic = only(found, code)
    line, column = position(source, needle, occurrence, start)
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column), diagnostic
    assert diagnostic.span.file == "t.policy"
    assert diagnostic.severity == ("warning" if code.startswith("W") else "error")
    assert words in diagnostic.message
    if diagnostic.severity == "error":
        with pytest.raises(PolicyCheckError) as caught:
            compile_policy(source, path="t.policy")
        assert diagnostic in caught.value.diagnostics
        assert f"t.policy:{line}:{column}: error[{code}]: " in str(caught.value)
    return diagnostic


BASE = """\
policy "base" version "1"
account {
    id : text
    tz : zone = "Asia/Shanghai"
}
actions { voice, message }
allow all
window voice, message 08:00-21:00 because "hours"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_base_policy_is_clean() -> None:
    assert diagnostics(ACCOUNT + STAGES + ALLOW) == []
    compile_policy(ACCOUNT + STAGES + ALLOW)


# ---------------------------------------------------------------- one per code


def test_e101_unknown_name_in_a_condition() -> None:
    source = ACCOUNT + ALLOW + "forbid sms when ballance > ¥5 because \"x\"\n"
    assert_reported(source, "E101", "ballance", words="unknown name 'ballance'")


def test_e101_stages_on_an_unknown_field() -> None:
    source = ACCOUNT + ALLOW + "stages on days {\n    all_of_it 0 ..\n}\n"
    assert_reported(source, "E101", "stages on", words="unknown field 'days'")


def test_e101_holidays_from_a_field_that_is_not_text() -> None:
    source = ACCOUNT + ALLOW + "window sms 08:00-21:00 except holidays dpd\n"
    assert_reported(source, "E101", "dpd\n", words="holidays need a text field")


def test_e102_unknown_action() -> None:
    source = ACCOUNT + "allow sms, fax\n"
    diagnostic = assert_reported(source, "E102", "sms, fax", words="'fax'")
    assert diagnostic.span.end_column == position(source, "sms, fax")[1] + len("sms, fax")


def test_e102_an_event_cannot_be_decided() -> None:
    source = ACCOUNT + ALLOW + "limit inbound_call 1 per day\n"
    assert_reported(source, "E102", "inbound_call 1", words="history event")


def test_e102_unknown_action_in_quiet_after() -> None:
    source = ACCOUNT + ALLOW + 'quiet call for 1 day after "x" on call, letter\n'
    assert_reported(source, "E102", "call, letter", words="'letter'")


def test_e103_unknown_stage() -> None:
    source = ACCOUNT + STAGES + ALLOW + "stage M9 {\n    allow sms\n}\n"
    assert_reported(source, "E103", "stage M9", words="unknown stage 'M9'")


def test_e103_stage_block_without_any_stages() -> None:
    source = ACCOUNT + ALLOW + "stage M0 { allow sms }\n"
    assert_reported(source, "E103", "stage M0", words="'M0'")


@pytest.mark.parametrize(("condition", "needle", "words"), [
    ("frob(dpd) > 1", "frob(", "unknown function 'frob'"),
    ("len() > 1", "len()", "takes 1 argument(s), got 0"),
    ("max(dpd) > 1", "max(", "takes 2 argument(s), got 1"),
    ("today(dpd) > paid_at", "today(", "takes 0 argument(s), got 1"),
])
def test_e104_unknown_function_or_wrong_arity(condition: str, needle: str, words: str) -> None:
    source = ACCOUNT + f"allow sms when {condition}\n"
    assert_reported(source, "E104", needle, words=words)


@pytest.mark.parametrize(("condition", "needle", "words"), [
    ('dpd + "a" > 1', 'dpd + "a"', "cannot compute int + text"),
    ('dpd > "a"', 'dpd > "a"', "cannot compare int with text"),
    ('country < "DE"', 'country < "DE"', "only be compared with == and !="),
    ("-paid_at > now", "-paid_at", "cannot negate datetime"),
    ('dpd in {1, "a"}', '{1, "a"}', "a set mixes types"),
    ('dpd in flags', 'dpd in flags', "cannot test whether int is in set<text>"),
    ('days_since(dpd) > 1', 'days_since(', "days_since expects"),
    ('band < "high"', 'band < "high"', "enumeration values can only be compared with == and !="),
    ('paid_at > 2025-01-01', 'paid_at > 2025', "cannot compare datetime with date"),
    ('now - paid_at > 3', 'now - paid_at > 3', "cannot compare duration with int"),
])
def test_e105_type_mismatch(condition: str, needle: str, words: str) -> None:
    source = ACCOUNT + f"allow sms when {condition}\n"
    assert_reported(source, "E105", needle, words=words)


def test_e105_limit_of_zero() -> None:
    source = ACCOUNT + ALLOW + "limit sms 0 per day\n"
    assert_reported(source, "E105", "limit sms 0", words="a limit of 0 forbids the action")


def test_e105_period_of_zero() -> None:
    source = ACCOUNT + ALLOW + 'quiet sms for 0 days after "x" on sms\n'
    assert_reported(source, "E105", "quiet sms", words="a period must be at least 1")


@pytest.mark.parametrize(("extra", "needle", "occurrence", "words"), [
    ("account { dpd : int }\n", "dpd", 1, "'dpd' declared twice (first at t.policy:5)"),
    ("account { dpd : text }\n", "dpd", 1, "'dpd' is declared as int in t.policy:5 and as text here"),
    ("actions { letter, letter }\n", "actions", 1, "action 'letter' declared twice"),
    ("actions { sms : a }\n", "actions", 1, "'sms' is already an action"),
    ("actions {\n  grp : letter\n  grp\n}\n", "grp\n}", 1, "'grp' is already a group"),
    ("segment dpd when true\n", "segment dpd", 1, "'dpd' is already declared"),
    ("segment s when true\nsegment s when false\n", "segment s", 2, "'s' is already declared"),
    ("stages on dpd { X 0 .. }\n", "stages on dpd { X", 1, "one `stages` block"),
])
def test_e106_duplicate_declaration(extra: str, needle: str, occurrence: int, words: str) -> None:
    prefix = ACCOUNT + STAGES + ALLOW
    source = prefix + extra
    diagnostic = only(diagnostics(source), "E106")
    line, column = position(source, needle, occurrence, start=len(prefix))
    if needle == "actions":  # reported on the line of the `actions` block that declares it
        line, column = line, column + len("actions { ")
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column), diagnostic
    assert diagnostic.severity == "error"
    assert words in diagnostic.message


def test_e106_name_both_action_and_event() -> None:
    source = ACCOUNT + ALLOW + "actions { inbound_call }\n"
    assert_reported(source, "E106", "events {", words="'inbound_call' is declared both as an action and as an event")


def test_a_group_may_be_extended() -> None:
    source = ACCOUNT + "actions {\n  message : sms\n  message : email\n}\nallow message, call\n"
    assert diagnostics(source) == []
    assert compile_policy(source).model.groups["message"] == ["sms", "email"]


def test_e106_duplicate_stage() -> None:
    source = ACCOUNT + ALLOW + "stages on dpd {\n    M0 .. 30\n    M0 31 ..\n}\n"
    assert_reported(source, "E106", "M0 31", words="stage 'M0' declared twice")


@pytest.mark.parametrize(("ranges", "needle", "words"), [
    ("M0 .. 30\n    M1 41 ..", "M1 41", "dpd = 31 .. 40 is in no stage"),
    ("M0 .. 30\n    M1 32 ..", "M1 32", "dpd = 31 is in no stage"),
    ("M1 61 ..\n    M0 .. 59", "M1 61", "gap between stages 'M0' and 'M1': dpd = 60 is in no stage"),
])
def test_e107_gap_names_the_missing_values(ranges: str, needle: str, words: str) -> None:
    source = ACCOUNT + ALLOW + f"stages on dpd {{\n    {ranges}\n}}\n"
    assert_reported(source, "E107", needle, words=words)


@pytest.mark.parametrize(("ranges", "needle", "words"), [
    ("M0 .. 30\n    M1 30 ..", "M1 30", "'M0' and 'M1' overlap on dpd 30 .. 30"),
    ("M0 .. 30\n    M1 10 .. 20\n    M2 31 ..", "M1 10", "overlap on dpd 10 .. 20"),
    ("M0 0 ..\n    M1 50 ..", "M1 50", "overlap on dpd 50 .."),
    ("M0 .. 5\n    M1 .. 3\n    M2 6 ..", "M0 ..", "'M1' and 'M0' overlap on dpd .. 3"),
    ("M0 .. 0\n    M1 9 .. 1\n    M2 1 ..", "M1 9", "stage 'M1' is empty: 9 > 1"),
])
def test_e108_overlap(ranges: str, needle: str, words: str) -> None:
    source = ACCOUNT + ALLOW + f"stages on dpd {{\n    {ranges}\n}}\n"
    assert_reported(source, "E108", needle, words=words)


def test_e109_stage_field_not_int() -> None:
    source = ACCOUNT + ALLOW + "stages on balance {\n    all_of_it 0 ..\n}\n"
    assert_reported(source, "E109", "stages on", words="'balance' is money")


def test_e110_no_id_field() -> None:
    source = 'policy "p" version "1"\naccount { name : text }\nactions { sms }\nallow sms\n'
    assert_reported(source, "E110", 'policy "p"', words="`id : text`")


def test_e110_id_of_the_wrong_type() -> None:
    source = 'policy "p" version "1"\naccount {\n    id : int\n}\nactions { sms }\nallow sms\n'
    assert_reported(source, "E110", "id : int")


@pytest.mark.parametrize(("declaration", "needle"), [
    ('n : int = "seven"', '"seven"'),
    ("n : int = 1.5", "1.5"),
    ("n : money = true", "true"),
    ('z : zone = "Mars/Olympus"', '"Mars/Olympus"'),
    ("d : date = 2025-01-01T00:00Z", "2025-01-01T00:00Z"),
    ("e : enum(a, b) = c", "= c"),
    ('s : set<int> = {"x"}', '{"x"}'),
    ("b : bool = 3 days", "3 days"),
])
def test_e111_default_does_not_fit(declaration: str, needle: str) -> None:
    prefix = ACCOUNT + ALLOW
    source = prefix + f"account {{\n    {declaration}\n}}\n"
    if needle == "= c":
        line, column = position(source, needle, start=len(prefix))
        found = only(diagnostics(source), "E111")
        assert (found.span.line, found.span.column) == (line, column + 2)
        return
    assert_reported(source, "E111", needle, words="does not fit", start=len(prefix))


def test_e112_action_outside_allow_and_forbid() -> None:
    source = ACCOUNT + ALLOW + 'segment texting when action == "sms"\n'
    assert_reported(source, "E112", "action ==", words="`action` means the action being judged")


def test_action_is_fine_in_allow_and_forbid() -> None:
    source = ACCOUNT + 'allow all when action != "call"\nforbid all when action == "sms" because "x"\n'
    assert [d for d in diagnostics(source) if d.severity == "error"] == []


def test_e113_two_zone_fields() -> None:
    source = ACCOUNT + ALLOW + "account {\n    home_tz : zone\n}\n"
    assert_reported(source, "E113", "home_tz", words="more than one zone field: tz, home_tz")


def test_e113_window_without_a_zone_field() -> None:
    source = 'policy "p" version "1"\naccount { id : text }\nactions { sms }\nallow sms\n' \
             "window sms 08:00-21:00\n"
    assert_reported(source, "E113", "window sms", words="declare a `zone` field")


@pytest.mark.parametrize(("condition", "needle", "words"), [
    ("dpd + 1", "dpd + 1", "this is int"),
    ("country", "country", "this is text"),
    ("not dpd", "dpd\n", "this is int"),
    ("dpd > 1 and balance", "balance\n", "this is money"),
])
def test_e114_condition_not_boolean(condition: str, needle: str, words: str) -> None:
    source = ACCOUNT + f"allow sms when {condition}\n"
    assert_reported(source, "E114", needle, words=words, start=len(ACCOUNT))


@pytest.mark.parametrize(("rule", "needle", "words"), [
    ('allow sms when band == "medium"', '"medium"', "'medium' is not one of low, high"),
    ('allow sms when "hgh" == band', '"hgh"', "'hgh' is not one of low, high"),
    ('allow sms when band in {"low", "mid"}', '"mid"', "'mid' is not one of low, high"),
    ('window sms 08:00-21:00 except holidays "XX"', '"XX"', "no holiday calendar for country 'XX'"),
])
def test_e115_not_a_member(rule: str, needle: str, words: str) -> None:
    source = ACCOUNT + rule + "\nallow email, call\n"
    assert_reported(source, "E115", needle, words=words)


def test_e116_segment_refers_to_a_later_segment() -> None:
    source = ACCOUNT + ALLOW + "segment early when late and dpd > 1\nsegment late when dpd > 90\n"
    assert_reported(source, "E116", "late and", words="segment 'late' is declared later")


def test_e116_a_segment_cannot_refer_to_itself() -> None:
    source = ACCOUNT + ALLOW + "segment loop when loop or dpd > 1\n"
    assert_reported(source, "E116", "loop or")


def test_e117_a_restriction_condition_reads_time() -> None:
    source = ACCOUNT + ALLOW + "window sms 08:00-20:00 when days_since(opened) < 30\n"
    assert_reported(source, "E117", "days_since(opened) < 30", words="reads `days_since(opened)`")


def test_segments_may_use_earlier_segments_and_rules_any_segment() -> None:
    source = ACCOUNT + "segment a when dpd > 1\nsegment b when a and dpd < 9\nallow all when b or a\n"
    assert [d for d in diagnostics(source) if d.severity == "error"] == []


def test_w201_action_no_stage_allows() -> None:
    source = ACCOUNT + STAGES + "stage M0 { allow sms }\nallow email\n"
    found = diagnostics(source)
    warning = assert_reported(source, "W201", "call\n", words="no stage allows 'call'")
    assert [d.code for d in found] == ["W201"]
    compile_policy(source)  # warnings do not stop compilation
    assert warning.severity == "warning"


def test_w202_values_below_and_above_every_stage() -> None:
    source = ACCOUNT + ALLOW + "stages on dpd {\n    M0 1 .. 30\n    M1 31 .. 60\n}\n"
    found = [d for d in diagnostics(source) if d.code == "W202"]
    assert [(d.span.line, d.span.column, d.severity) for d in found] == [
        (*position(source, "M0 1"), "warning"), (*position(source, "M1 31"), "warning")]
    assert "dpd below 1 falls in no stage" in found[0].message
    assert "`M0 .. 30`" in found[0].message
    assert "dpd above 60 falls in no stage" in found[1].message
    compile_policy(source)


def test_w203_forbid_without_because() -> None:
    source = ACCOUNT + ALLOW + 'forbid sms cite "rule 1"\n'
    assert_reported(source, "W203", "forbid sms", words="forbid without `because`")
    compile_policy(source)


# ---------------------------------------------------------------- lints (run when there is no error)


def test_w301_segment_no_rule_uses() -> None:
    source = ACCOUNT + ALLOW + "segment used when dpd > 1\nsegment idle when dpd > 2\n" \
        'forbid sms when used because "x"\n'
    diagnostic = assert_reported(source, "W301", "segment idle", words="is not used by any rule")
    assert "idle" in diagnostic.message and "used when" not in diagnostic.message


def test_w302_group_never_named() -> None:
    source = ACCOUNT + ALLOW + "actions {\n    letters : letter, postcard\n}\n"
    diagnostic = assert_reported(source, "W302", "letters :", words="is declared but no rule names it")
    assert "letters" in diagnostic.message


def test_w302_not_when_a_rule_names_the_group() -> None:
    source = ACCOUNT + ALLOW + "actions {\n    letters : letter, postcard\n}\nlimit letters 1 per day\n"
    assert [d.code for d in diagnostics(source)] == []


def test_w303_allow_always_false_in_its_stage() -> None:
    source = ACCOUNT + STAGES + "stage M0 { allow sms when dpd > 45 }\nallow email, call\nallow sms\n"
    assert_reported(source, "W303", "dpd > 45", words="always false in stage M0 (dpd .. 30)")


def test_w303_allow_always_forbidden() -> None:
    source = ACCOUNT + ALLOW + "allow sms\nforbid sms because \"never\"\n"
    diagnostic = assert_reported(source, "W303", "allow sms", words="always forbidden by t.policy:")
    assert diagnostic.message.endswith(f"t.policy:{position(source, 'forbid sms')[0]}")


def test_w304_condition_always_true_in_its_stage() -> None:
    source = ACCOUNT + STAGES + ALLOW + "stage M2 { forbid call when dpd > 30 because \"late\" }\n"
    assert_reported(source, "W304", "dpd > 30", words="condition is always true in stage M2 (dpd 61 ..)")


def test_w304_constant_segment() -> None:
    source = ACCOUNT + "segment odd when dpd > 5 and dpd < 3\nallow all when not odd\n"
    diagnostic = assert_reported(source, "W304", "dpd > 5", words="is always false")
    assert "odd" in diagnostic.message


def test_w305_restriction_on_actions_nothing_allows() -> None:
    source = ACCOUNT + "allow sms, email\nlimit call 1 per day\n"
    found = diagnostics(source)
    assert_reported(source, "W305", "limit call", words="this limit applies only to actions no stage allows (call)")
    assert {d.code for d in found} == {"W201", "W305"}


def test_w306_duplicate_rule() -> None:
    source = ACCOUNT + ALLOW + "limit sms 1 per day\nlimit   sms 1 per day\n"
    assert_reported(source, "W306", "limit   sms", words="duplicate of the rule at t.policy:18")


def test_w307_window_wider_than_the_baseline(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASE)
    source = ('policy "main" version "1"\ninclude "base.policy"\nallow all\n'
              "window voice 07:00-22:00 because \"longer\"\nwindow message 09:00-20:00\n")
    main = write(tmp_path / "main.policy", source)
    _, found = check(load_text(source, str(main)))
    (wider,) = [d for d in found if d.code == "W307"]
    assert (wider.span.line, wider.span.column, wider.severity) == (4, 1, "warning")
    assert "window is wider than the baseline's at" in wider.message
    load_policy(main)  # a warning only


def test_w308_unmapped_baseline_channel_reaches_nothing(tmp_path: Path) -> None:
    """Without `with`, the baseline's `voice` stays an action of its own and
    its window reaches none of the strategy's actions: say so at the include."""
    write(tmp_path / "base.policy", BASE)
    source = 'policy "main" version "1"\ninclude "base.policy" with { message = sms }\n' \
             "actions { call, sms }\nallow call, sms\n"
    main = write(tmp_path / "main.policy", source)
    _, found = check(load_text(source, str(main)))
    (unmapped,) = [d for d in found if d.code == "W308"]
    assert (unmapped.span.line, unmapped.span.column, unmapped.severity) == (2, 1, "warning")
    assert "'voice'" in unmapped.message and "with { voice = ... }" in unmapped.message


def test_w308_stage_blocks_of_a_baseline_do_not_carry_over(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASE.replace("allow all\n", "stages on dpd { a .. }\nstage a { allow all }\n")
          .replace("    id : text\n", "    id : text\n    dpd : int = 0\n"))
    source = 'policy "main" version "1"\ninclude "base.policy" with { voice = call  message = sms }\n' \
             "actions { call, sms }\nallow call, sms\n"
    main = write(tmp_path / "main.policy", source)
    _, found = check(load_text(source, str(main)))
    assert [d.code for d in found] == ["W308"]
    assert "stage block 'a'" in found[0].message


def test_mapping_names_must_exist_on_both_sides(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASE)
    source = 'policy "main" version "1"\ninclude "base.policy" with { voise = call  message = smss }\n' \
             "actions { call, sms }\nallow call, sms\n"
    main = write(tmp_path / "main.policy", source)
    _, found = check(load_text(source, str(main)))
    errors = [(d.code, d.span.line, d.message) for d in found if d.severity == "error"]
    assert ("E102", 2, "base.policy declares no action, group or event 'voise'; did you mean 'voice'?") in errors
    assert ("E102", 2, "unknown action or group 'smss'; did you mean 'sms'?") in errors


def test_an_includer_cannot_change_a_baseline_default(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASE)
    source = 'policy "main" version "1"\ninclude "base.policy" with { voice = call  message = sms }\n' \
             'account { id : text  tz : zone = "UTC" }\nactions { call, sms }\nallow call, sms\n'
    main = write(tmp_path / "main.policy", source)
    _, found = check(load_text(source, str(main)))
    (changed,) = [d for d in found if d.code == "E106"]
    assert "cannot change its default" in changed.message and changed.span.line == 3


def test_a_baseline_included_twice_applies_once(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASE)
    write(tmp_path / "mid.policy", 'policy "mid" version "1"\ninclude "base.policy"\n')
    source = 'policy "main" version "1"\ninclude "base.policy" with { voice = call  message = sms }\n' \
             'include "mid.policy" with { voice = call  message = sms }\nactions { call, sms }\nallow call, sms\n'
    main = write(tmp_path / "main.policy", source)
    policy = load_policy(main)
    windows = [r for r in policy.model.restrictions if r.span.file.endswith("base.policy")]
    assert len(windows) == 1



def test_w309_windows_for_one_action_never_open_together() -> None:
    source = ACCOUNT + ALLOW + "window sms 08:00-21:00 on mon..fri\nwindow sms 10:00-18:00 on sat, sun\n"
    assert_reported(source, "W309", "window sms 10:00-18:00",
                    words="the windows for sms are never open together at any moment of a week")

def test_every_checker_code_has_a_test() -> None:
    tested = {name[5:9].upper() for name in globals()
              if name.startswith("test_") and name[5] in "ew" and name[6:9].isdigit()}
    assert tested | {"E001"} == set(CODES)  # E001 is the parser's (tests/test_parser.py)


def test_diagnostics_are_sorted_and_all_errors_are_kept() -> None:
    source = ACCOUNT + "allow fax\nallow sms when nope\nforbid sms\nallow call when dpd + 1\n"
    found = diagnostics(source)
    assert [(d.code, d.span.line) for d in found] == [("W201", 13), ("E102", 17), ("E101", 18), ("W203", 19),
                                                       ("E114", 20)]
    assert found == sorted(found, key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))
    with pytest.raises(PolicyCheckError) as caught:
        compile_policy(source, path="t.policy")
    rendered = str(caught.value)
    assert "error[E102]" in rendered and "error[E101]" in rendered and "error[E114]" in rendered
    assert "W203" not in rendered  # warnings are kept on the exception, not rendered as errors
    assert {d.code for d in caught.value.diagnostics} >= {"E102", "E101", "E114", "W203"}
    assert "   | allow fax" in rendered or "| allow fax" in rendered


# ---------------------------------------------------------------- includes (E002)

def include_error(path: Path) -> PolicySyntaxError:
    with pytest.raises(PolicySyntaxError) as caught:
        load_policy(path)
    assert caught.value.diagnostic.code == "E002"
    assert caught.value.diagnostic.severity == "error"
    return caught.value


def test_include_with_mapping_merges_the_baseline(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASE)
    main = write(tmp_path / "main.policy", 'policy "main" version "1"\ninclude "base.policy" with {\n'
                 "    voice = call\n    message = sms\n}\nactions { call, sms }\nallow call, sms\n")
    policy = load_policy(main)
    assert policy.actions == ("call", "sms")
    windows = [r for r in policy.model.restrictions if r.span.file.endswith("base.policy")]
    assert len(windows) == 1 and windows[0].targets.names == ("call", "sms")


def test_e002_missing_include(tmp_path: Path) -> None:
    main = write(tmp_path / "main.policy", 'policy "main" version "1"\n\ninclude "nowhere.policy"\n')
    error = include_error(main)
    assert (error.span.line, error.span.column) == (3, 1)
    assert "included file 'nowhere.policy' not found" in str(error)
    assert str(error).startswith(f"{main}:3:1: error[E002]: ")
    assert '   3 | include "nowhere.policy"' in str(error)


def test_e002_include_cycle_names_the_include_that_closes_it(tmp_path: Path) -> None:
    write(tmp_path / "a.policy", 'policy "a" version "1"\ninclude "sub/b.policy"\n')
    write(tmp_path / "sub" / "b.policy", 'policy "b" version "1"\n# back up\n  include "../a.policy"\n')
    error = include_error(tmp_path / "a.policy")
    assert "include cycle" in error.diagnostic.message and "'../a.policy'" in error.diagnostic.message
    assert error.span.file.endswith("b.policy")
    assert (error.span.line, error.span.column) == (3, 3)


def test_e002_a_file_including_itself(tmp_path: Path) -> None:
    main = write(tmp_path / "self.policy", 'policy "s" version "1"\ninclude "self.policy"\n')
    error = include_error(main)
    assert "include cycle" in error.diagnostic.message and (error.span.line, error.span.column) == (2, 1)


def test_e002_cycle_through_compile_policy_text(tmp_path: Path) -> None:
    write(tmp_path / "b.policy", 'policy "b" version "1"\ninclude "a.policy"\n')
    source = 'policy "a" version "1"\ninclude "b.policy"\n'
    write(tmp_path / "a.policy", source)
    with pytest.raises(PolicySyntaxError) as caught:
        compile_policy(source, path=str(tmp_path / "a.policy"))
    assert caught.value.diagnostic.code == "E002" and "include cycle" in str(caught.value)


def test_e002_include_leaving_the_directory(tmp_path: Path) -> None:
    write(tmp_path / "outside.policy", BASE)
    main = write(tmp_path / "inner" / "main.policy", 'policy "m" version "1"\ninclude "../outside.policy"\n')
    error = include_error(main)
    assert "leaves the policy's directory" in error.diagnostic.message
    assert (error.span.line, error.span.column) == (2, 1)
    # ... unless the caller names that directory as an include root
    policy = load_policy(main, include_roots=[tmp_path])
    assert policy.actions == ("voice", "message")


def test_e002_includes_nested_too_deep(tmp_path: Path) -> None:
    depth = MAX_INCLUDE_DEPTH + 2
    for index in range(depth):
        write(tmp_path / f"f{index}.policy", f'policy "f{index}" version "1"\ninclude "f{index + 1}.policy"\n')
    write(tmp_path / f"f{depth}.policy", BASE)
    error = include_error(tmp_path / "f0.policy")
    assert f"deeper than {MAX_INCLUDE_DEPTH}" in error.diagnostic.message


def test_e002_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    error = include_error(tmp_path / "absent.policy")
    assert "cannot read policy file" in error.diagnostic.message
    assert (error.span.line, error.span.column) == (1, 1)
    binary = tmp_path / "latin1.policy"
    binary.write_bytes('policy "caf\xe9" version "1"\n'.encode("latin-1"))
    error = include_error(binary)
    assert "not UTF-8 (byte 11)" in error.diagnostic.message


def test_e002_included_file_with_a_syntax_error_reports_that_file(tmp_path: Path) -> None:
    write(tmp_path / "broken.policy", 'policy "b" version "1"\nallow\n')
    main = write(tmp_path / "main.policy", 'policy "m" version "1"\ninclude "broken.policy"\n')
    with pytest.raises(PolicySyntaxError) as caught:
        load_policy(main)
    assert caught.value.diagnostic.code == "E001"
    assert caught.value.span.file.endswith("broken.policy")


def test_checker_diagnostics_in_an_included_file_point_into_it(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASE + "forbid voice when nope because \"x\"\n")
    main = write(tmp_path / "main.policy", 'policy "main" version "1"\ninclude "base.policy"\n')
    with pytest.raises(PolicyCheckError) as caught:
        load_policy(main)
    (error,) = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert error.code == "E101" and error.span.file.endswith("base.policy")
    assert (error.span.line, error.span.column) == (9, 19)


def test_a_baselines_segments_come_along_and_cannot_be_redeclared(tmp_path: Path) -> None:
    write(tmp_path / "seg.policy", 'policy "b" version "1"\naccount { id : text  score : number = 0 }\n'
          'actions { call }\nsegment risky when score > 0.5\nallow all\nforbid call when risky because "risky"\n')
    uses = write(tmp_path / "uses.policy", 'policy "s" version "1"\ninclude "seg.policy"\n'
                 "segment worse when risky and score > 0.9\nallow all\nforbid call when worse because \"worse\"\n")
    policy = load_policy(uses)
    decision = policy.evaluate({"id": "A", "score": "0.95"}, now=NOW_UTC)
    assert decision.segments == ("risky", "worse")
    assert {entry.rule.file for entry in decision.blocked} == {"seg.policy", "uses.policy"}
    clash = write(tmp_path / "clash.policy", 'policy "s" version "1"\ninclude "seg.policy"\n'
                  "segment risky when score > 0.9\nallow all\n")
    _, found = check(load_text(clash.read_text(encoding="utf-8"), str(clash)))
    assert [(d.code, d.span.line) for d in found if d.severity == "error"] == [("E106", 3)]


def test_e118_outcome_not_declared() -> None:
    source = ACCOUNT + ALLOW + 'outcomes { conversation }\nquiet sms for 1 day after "converstion" on call\n'
    assert_reported(source, "E118", '"converstion"', words="did you mean 'conversation'?")


def test_w310_suppression_that_matches_nothing() -> None:
    source = ACCOUNT + ALLOW + "forbid sms when dpd > 3  # policy: ignore[W306]\n"
    assert_reported(source, "W310", "# policy", words="`ignore[W306]` suppresses nothing here")


def test_e119_experiment_shares_that_do_not_fit() -> None:
    """Each of n groups with a share grows inside its own slot of 1/n of
    the buckets (so a ramp never moves another group's accounts)."""
    source = ACCOUNT + ALLOW + 'experiment x salt "s" {\n    a 40%\n    b 60%\n    c rest\n}\n'
    assert_reported(source, "E119", "b 60%", words="60% is more than the 50% each of 2 groups with a share may take")
