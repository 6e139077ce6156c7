"""Provenance and kinds (issue 9, point 7): every decision says which policy
(name, version, digest of its canonical sources) and which instant decided
it, and every blocked entry has a machine-readable kind; `policy run` output
validates against docs/decision.schema.json."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import jsonschema
from test_cli import ACCOUNTS, CONTACTS, NOW, POLICY, ROOT, invoke, jsonl, run_example

from policydsl import compile_policy, load_policy
from policydsl.formatter import format_source

SCHEMA = json.loads((ROOT / "docs" / "decision.schema.json").read_text(encoding="utf-8"))
KINDS = {"not_allowed", "forbidden", "window", "limit", "quiet"}
SOURCE = '''policy "prov" version "3"
account {
    id  : text
    tz  : zone = "UTC"
    dpd : int
}
actions { sms, call }
allow sms
window sms 08:00-21:00
'''


def digest_of(text: str, path: str = "prov.policy") -> str:
    return compile_policy(text, path).digest


def test_every_line_of_policy_run_on_the_example_validates_and_carries_provenance_and_kinds() -> None:
    result = run_example()
    assert result.exit_code == 0, result.stderr
    validator = jsonschema.Draft202012Validator(SCHEMA)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    policy = load_policy(POLICY)
    decisions = jsonl(result.stdout)
    assert len(decisions) == 250
    for decision in decisions:
        assert list(validator.iter_errors(decision)) == []
        assert decision["now"] == NOW
        assert decision["policy"] == {"name": "ecommerce-consumer-loan", "version": policy.version,
                                      "digest": policy.digest}
        assert all(entry["kind"] in KINDS and entry["rule_id"] for entry in decision["blocked"])
    assert {entry["kind"] for decision in decisions for entry in decision["blocked"]} == KINDS


def test_the_schema_is_strict_about_the_new_fields() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    decision = compile_policy(SOURCE).evaluate({"id": "A", "dpd": 1}, now=dt.datetime(2025, 6, 4, 22, tzinfo=dt.UTC))
    good = decision.to_dict()
    assert list(validator.iter_errors(good)) == []
    entry = good["blocked"][0]
    for bad in ({**good, "now": "2025-06-04T22:00:00+00:00"}, {**good, "policy": {**good["policy"], "extra": 1}},
                {**good, "policy": {**good["policy"], "digest": "md5:0"}},
                {**good, "blocked": [{**entry, "kind": "Window"}]}, {**good, "blocked": [{**entry, "rule_id": ""}]},
                {key: value for key, value in good.items() if key != "now"}):
        assert list(validator.iter_errors(bad)), bad


def test_the_digest_ignores_layout_and_comments_and_sees_every_change(tmp_path: Path) -> None:
    digest = digest_of(SOURCE)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    commented = "# a new first line\n" + SOURCE.replace("allow sms\n", "allow   sms   # reformatted\n\n")
    assert digest_of(commented) == digest
    assert digest_of(format_source(commented)) == digest
    assert digest_of(SOURCE, "elsewhere/other.policy") == digest, "where the file lies is no part of it"
    assert digest_of(SOURCE.replace("21:00", "20:00")) != digest
    assert digest_of(SOURCE.replace('version "3"', 'version "4"')) != digest
    assert digest_of(SOURCE + "forbid call\n") != digest


def test_the_digest_covers_the_included_files(tmp_path: Path) -> None:
    base = tmp_path / "base.policy"
    base.write_text('policy "base" version "1"\naccount { id : text  tz : zone = "UTC" }\nactions { call }\n'
                    "window call 08:00-21:00\n", encoding="utf-8")
    main = tmp_path / "main.policy"
    main.write_text('policy "main" version "1"\ninclude "base.policy"\nallow call\n', encoding="utf-8")
    first = load_policy(main).digest
    base.write_text(base.read_text(encoding="utf-8") + "# only a comment\n", encoding="utf-8")
    assert load_policy(main).digest == first
    base.write_text(base.read_text(encoding="utf-8").replace("21:00", "20:00"), encoding="utf-8")
    assert load_policy(main).digest != first


def test_both_engines_and_error_decisions_carry_now_and_the_policy() -> None:
    now = dt.datetime(2025, 6, 4, 10, 0, 0, 360_000, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    for engine in ("compiled", "reference"):
        policy = compile_policy(SOURCE, engine=engine)
        good = policy.evaluate({"id": "A", "dpd": 1}, now=now).to_dict()
        bad = policy.evaluate({"id": "B", "dpd": "many"}, now=now).to_dict()
        assert bad["error"] and good["error"] is None
        for data in (good, bad):
            assert data["now"] == "2025-06-04T02:00:00.360000Z"
            assert data["policy"] == {"name": "prov", "version": "3", "digest": policy.digest}


def test_error_rows_of_policy_run_carry_provenance_too(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,days_past_due,balance\nA1,x,100\n", encoding="utf-8")
    result = invoke("run", POLICY, accounts, "--now", NOW, "-q")
    (decision,) = jsonl(result.stdout)
    assert decision["error"] and decision["now"] == NOW and decision["policy"]["digest"].startswith("sha256:")


def test_run_without_now_prints_the_instant_it_used_and_the_decisions_carry_it() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = invoke("run", POLICY, ACCOUNTS, "--history", CONTACTS)
    after = dt.datetime.now(dt.UTC)
    assert result.exit_code == 0, result.stderr
    match = re.search(r"decided at (\S+Z) \(the current instant; pass --now", result.stderr)
    assert match, result.stderr
    used = dt.datetime.fromisoformat(match.group(1))
    assert before <= used <= after
    assert {decision["now"] for decision in jsonl(result.stdout)} == {match.group(1)}
    quiet = run_example("-q")
    assert "decided at" not in quiet.stderr + invoke("run", POLICY, ACCOUNTS, "--now", NOW).stderr


def test_explain_shows_the_policy_name_version_digest_and_rule_ids() -> None:
    result = invoke("explain", POLICY, "--account", "id=A1,days_past_due=35,balance=100", "--now", NOW, width=200)
    assert result.exit_code == 0, result.stderr
    digest = load_policy(POLICY).digest
    assert f"decided by policy 'ecommerce-consumer-loan' version '{load_policy(POLICY).version}' ({digest})" \
        in result.stdout
    assert "ecommerce_consumer_loan.policy:50 [stage-M1]" in result.stdout
    text = compile_policy(SOURCE).evaluate({"id": "A", "dpd": 1}, now=dt.datetime(2025, 6, 4, 22, tzinfo=dt.UTC)
                                           ).explain()
    assert "decided by policy 'prov' version '3' (sha256:" in text
    assert re.search(r"<policy>:9 \[window-[0-9a-f]{8}\]: window sms 08:00-21:00", text)
