"""Stable rule ids (issue 9, point 6): `name: rule`, else a digest of the
rule's canonical text; carried as `rule_id` by every blocked entry in both
engines, unchanged by moved lines, comments and `policy fmt`; `rule` paths
relative to the top-level policy's directory whatever the working directory."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pygments.token import Name
from test_highlight import TM_GRAMMAR, _load, _tm_scopes

from policydsl import PolicyCheckError, PolicySyntaxError, compile_policy, load_policy
from policydsl.formatter import format_source
from policydsl.highlight import PolicyLexer

NOW = dt.datetime(2025, 6, 4, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
GENERATED = re.compile(r"(allow|forbid|window|limit|quiet)-[0-9a-f]{8}(-[0-9]+)?")

POLICY = '''policy "ids" version "1"
account {
    id    : text
    dpd   : int
    tz    : zone = "Asia/Shanghai"
    flags : set<text> = {}
}
actions { sms, call }
stages on dpd {
    early .. 30
    late 31 ..
}
# the named rule keeps its id whatever happens to its text
no_calls_when_disputed: forbid call when "dispute" in flags because "disputed"
stage early {
    gentle: limit sms 1 per day  # one a day
    allow sms, call
}
stage late { allow call }
window sms, call 08:00-21:00 because "contact hours"
'''


def ids(policy_text: str, account: dict[str, object], path: str = "ids.policy") -> dict[tuple[str, str], str]:
    """(action, kind) -> rule_id, from both engines (which must agree)."""
    found = []
    for engine in ("compiled", "reference"):
        decision = compile_policy(policy_text, path, engine=engine).evaluate(account, now=NOW + dt.timedelta(hours=12))
        found.append({(entry.action, entry.kind): entry.rule.id for entry in decision.blocked})
    assert found[0] == found[1]
    return found[0]


def test_a_name_is_the_rule_id_and_an_unnamed_rule_gets_kind_and_digest() -> None:
    got = ids(POLICY, {"id": "A", "dpd": 40, "flags": "dispute"})
    assert got[("call", "forbidden")] == "no_calls_when_disputed"
    assert got[("sms", "not_allowed")] == "stage-late"
    assert GENERATED.fullmatch(got[("call", "window")])
    assert got[("sms", "window")] == got[("call", "window")], "one rule, one id"


def test_ids_survive_comments_moved_lines_reordering_and_fmt() -> None:
    account = {"id": "A", "dpd": 40, "flags": "dispute"}
    before = ids(POLICY, account)
    header, rest = POLICY.split("\n", 1)
    moved = header + "\n# a comment\n\n\n" + rest.replace('window sms, call 08:00-21:00 because "contact hours"\n', "")
    moved = moved.replace("actions { sms, call }\n", 'actions { sms, call }\nwindow  sms,call  08:00-21:00\n'
                          '    because   "contact hours"  # moved up, laid out badly\n')
    assert ids(moved, account) == before
    assert ids(format_source(moved, "ids.policy"), account) == before


def test_editing_a_rule_changes_its_digest_id_but_not_its_name() -> None:
    account = {"id": "A", "dpd": 40, "flags": "dispute"}
    before = ids(POLICY, account)
    edited = POLICY.replace('because "contact hours"', 'because "hours"').replace('because "disputed"', 'because "d"')
    after = ids(edited, account)
    assert after[("call", "window")] != before[("call", "window")]
    assert after[("call", "forbidden")] == "no_calls_when_disputed"


def test_identical_rules_get_numbered_ids_and_the_stage_tells_rules_apart() -> None:
    text = POLICY + "window sms 08:00-21:00\nwindow sms 08:00-21:00\nstage late { forbid sms }\n" \
        "stage early { forbid sms }\n"
    policy = compile_policy(text, "ids.policy")
    windows = [policy.model.ids[rule.span] for rule in policy.model.restrictions
               if rule.text == "window sms 08:00-21:00"]
    assert len(windows) == 2 and windows[1] == windows[0] + "-2"
    forbids = {rule.stage: policy.model.ids[rule.span] for rule in policy.model.restrictions
               if rule.text == "forbid sms"}
    assert forbids["late"] != forbids["early"] and not forbids["late"].endswith("-2")


def test_a_duplicate_rule_name_is_e106() -> None:
    text = POLICY + 'gentle: window call 09:00-20:00\n'
    with pytest.raises(PolicyCheckError) as raised:
        compile_policy(text, "ids.policy")
    [problem] = [d for d in raised.value.diagnostics if d.code == "E106"]
    assert "rule name 'gentle' is already the name of the rule at ids.policy:16" in problem.message
    assert problem.span.line == POLICY.count("\n") + 1


def test_a_baseline_rule_has_the_same_id_included_or_alone_and_names_are_unique_across_includes(
        tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.policy").write_text(
        'policy "base" version "1"\naccount {\n    id : text\n    tz : zone = "UTC"\n}\nactions { voice }\n'
        'allow voice\nwindow voice 08:00-21:00\nbase_cap: limit voice 1 per day\n', encoding="utf-8")
    main = tmp_path / "main.policy"
    main.write_text('policy "main" version "1"\ninclude "lib/base.policy" with { voice = call }\n'
                    "actions { call }\nallow call\nwindow call 08:00-21:00\n", encoding="utf-8")
    alone = load_policy(tmp_path / "lib" / "base.policy")
    included = load_policy(main)
    alone_ids = {rule.text: alone.model.ids[rule.span] for rule in alone.model.restrictions}
    included_ids = {(rule.span.file.endswith("base.policy"), rule.text): included.model.ids[rule.span]
                    for rule in included.model.restrictions}
    assert included_ids[(True, "window voice 08:00-21:00")] == alone_ids["window voice 08:00-21:00"]
    assert included_ids[(True, "limit voice 1 per day")] == "base_cap"
    assert included_ids[(False, "window call 08:00-21:00")] != alone_ids["window voice 08:00-21:00"]
    decision = included.evaluate({"id": "A"}, now=dt.datetime(2025, 6, 4, 22, tzinfo=dt.UTC))
    assert {entry.rule.location for entry in decision.blocked} == {"lib/base.policy:8", "main.policy:5"}
    main.write_text(main.read_text(encoding="utf-8") + "base_cap: limit call 2 per day\n", encoding="utf-8")
    with pytest.raises(PolicyCheckError, match="rule name 'base_cap' is already the name of the rule at"):
        load_policy(main)


def test_the_formatter_keeps_names_and_comments_and_is_idempotent() -> None:
    source = POLICY.replace("gentle: limit sms 1 per day", "gentle :limit   sms 1 per 1 day")
    formatted = format_source(source, "ids.policy")
    assert "no_calls_when_disputed: forbid call when \"dispute\" in flags because \"disputed\"" in formatted
    assert "    gentle: limit sms 1 per day  # one a day" in formatted
    assert "# the named rule keeps its id" in formatted
    assert format_source(formatted, "ids.policy") == formatted


def test_a_word_left_before_a_rule_is_reported_at_the_word() -> None:
    source = POLICY.replace('because "contact hours"', 'because "contact hours" oops')
    with pytest.raises(PolicySyntaxError) as raised:
        compile_policy(source, "ids.policy")
    span = raised.value.diagnostic.span
    line = source.splitlines()[span.line - 1]
    assert line[span.column - 1:].startswith("oops")
    assert "a name before a rule is followed by ':'" in raised.value.diagnostic.message


def test_the_highlighters_show_a_rule_name_as_a_label() -> None:
    line = 'no_threats: forbid threaten because "never"'
    tokens = [(kind, value) for kind, value in PolicyLexer().get_tokens(line) if value.strip()]
    assert tokens[:3] == [(Name.Label, "no_threats"), (tokens[1][0], ":"), (tokens[2][0], "forbid")]
    scopes = _tm_scopes(line, _load(TM_GRAMMAR))
    assert "entity.name.label.policy" in scopes[0]
    assert "keyword.control.rule.policy" in scopes[line.index("forbid")]
    field = _tm_scopes("    id : text", _load(TM_GRAMMAR))
    assert "variable.other.declaration.policy" in field[4], "a field is still a declaration"


def test_rule_paths_are_relative_to_the_policy_whatever_the_working_directory(tmp_path: Path) -> None:
    """Two jobs started from different directories write the same `rule`, so
    their decision logs join on it."""
    policies = tmp_path / "repo" / "policies"
    (policies / "lib").mkdir(parents=True)
    (policies / "lib" / "base.policy").write_text(
        'policy "base" version "1"\naccount { id : text  tz : zone = "UTC" }\nactions { sms }\n'
        "window sms 08:00-09:00\n", encoding="utf-8")
    (policies / "main.policy").write_text('policy "main" version "1"\ninclude "lib/base.policy"\nallow sms\n',
                                          encoding="utf-8")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id\nA1\n", encoding="utf-8")
    outputs = []
    for cwd, policy in ((tmp_path, "repo/policies/main.policy"), (policies / "lib", "../main.policy"),
                        (tmp_path / "repo", str(policies / "main.policy"))):
        result = subprocess.run(
            [sys.executable, "-m", "policydsl", "run", policy, str(accounts), "--now", "2025-06-04T12:00:00Z", "-q"],
            cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())}, check=False)
        assert result.returncode == 0, result.stderr
        outputs.append([(entry["rule"], entry["rule_id"]) for entry in json.loads(result.stdout)["blocked"]])
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0][0][0] == "lib/base.policy:4"
