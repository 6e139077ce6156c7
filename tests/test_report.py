"""`policy report`: the metrics on tiny hand-made data (exact numbers, the
Wilson interval against a known value), the retro-compliance audit flagging
exactly the contacts planted in violation, the command end to end on the
shipped example, and the page rendered in headless Chromium (skipped, saying
why, where no browser is installed)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from policydsl import Contact, compile_policy
from policydsl.cli import main
from policydsl.experiments import bucket
from policydsl.outcomes import (
    AccountOutcome,
    DecisionRow,
    Mean,
    Payment,
    Payments,
    account_outcomes,
    audit,
    build_report,
    channel_stats,
    promises_kept,
    read_decisions,
    read_payments,
    recovery_by,
    shifted_back,
    transitions,
    wilson,
)
from policydsl.report_html import render

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
POLICY = ROOT / "policies" / "ecommerce_consumer_loan.policy"
NOW = "2025-06-04T02:00:00Z"
UTC = dt.UTC
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """An instant in June 2025, Shanghai wall clock (2025-06-02 is a Monday)."""
    return dt.datetime(2025, 6, day, hour, minute, tzinfo=SHANGHAI)


# ------------------------------------------------------------ intervals


def test_wilson_interval_matches_the_published_value() -> None:
    # 8 of 10 at 95%: [0.4902, 0.9433] (Wilson 1927; statsmodels proportion_confint(8, 10, method="wilson"))
    low, high = wilson(8, 10)  # type: ignore[misc]
    assert round(low, 4) == 0.4902 and round(high, 4) == 0.9433
    low, high = wilson(0, 10)  # type: ignore[misc]
    assert low == 0.0 and round(high, 4) == 0.2775
    assert wilson(0, 0) is None


def test_mean_has_a_normal_interval_clipped_to_its_bounds() -> None:
    mean = Mean.of([0.0, 0.5, 1.0])
    half = 1.959963984540054 * 0.5 / 3 ** 0.5
    assert mean.mean == 0.5 and mean.low == pytest.approx(0.5 - half) and mean.high == pytest.approx(0.5 + half)
    clipped = Mean.of([0.0, 0.0, 0.3], (0.0, 1.0))
    assert clipped.low == 0.0 and clipped.high is not None and clipped.high < 1
    assert Mean.of([0.4]).low is None and Mean.of([]).mean is None


# ------------------------------------------------------------ contact metrics


def test_channel_stats_count_attempts_right_party_contacts_promises_and_deliveries() -> None:
    contacts = [Contact("A", "call", at(2, 10), "conversation"), Contact("A", "call", at(2, 11), "no_answer"),
                Contact("B", "call", at(2, 12), "promise_to_pay"), Contact("B", "call", at(2, 13), "refused"),
                Contact("B", "call", at(2, 14), ""), Contact("A", "sms", at(2, 10), "delivered"),
                Contact("A", "sms", at(3, 10), "failed"), Contact("C", "inbound_call", at(2, 10), "conversation")]
    stats = {s.action: s for s in channel_stats(contacts, lambda name: name == "inbound_call")}
    call = stats["call"].to_dict(portfolio=4)
    assert (call["contacts"], call["accounts"], call["contacts_per_account"]) == (5, 2, 1.25)
    assert call["right_party_rate"]["hits"] == 3 and call["right_party_rate"]["total"] == 4  # "" is no attempt
    assert call["promise_rate"]["hits"] == 1 and call["promise_rate"]["total"] == 3
    sms = stats["sms"].to_dict(portfolio=4)
    assert sms["delivery_rate"]["rate"] == 0.5 and sms["right_party_rate"]["rate"] is None
    assert stats["inbound_call"].event and not stats["call"].event


def test_a_promise_is_kept_by_a_payment_within_the_window_and_pending_while_it_is_open() -> None:
    contacts = [Contact("A", "call", at(1, 10), "promise_to_pay"), Contact("B", "call", at(1, 10), "promise_to_pay"),
                Contact("C", "call", at(20, 10), "promise_to_pay"), Contact("D", "call", at(1, 10), "conversation")]
    payments = {"A": [Payment("A", at(5, 9).astimezone(UTC), Decimal("10"))],
                "B": [Payment("B", at(12, 9).astimezone(UTC), Decimal("10"))],  # 11 days later: too late
                "D": [Payment("D", at(2, 9).astimezone(UTC), Decimal("10"))]}
    found = promises_kept(contacts, payments, days=7, horizon=at(22, 0).astimezone(UTC))
    assert (found.promises, found.kept, found.pending) == (3, 1, 1)  # C's window is still open
    assert found.rate.hits == 1 and found.rate.total == 2


# ------------------------------------------------------------ recovery and roll rates


def test_recovery_counts_payments_from_the_decision_instant_by_stage() -> None:
    since = at(4, 10).astimezone(UTC)
    decisions = [DecisionRow("A", "M1", "call", "champion", since, None),
                 DecisionRow("B", "M1", "sms", "challenger", since, None),
                 DecisionRow("C", "M2", "call", "champion", since, None),
                 DecisionRow("E", None, None, "all", since, "bad row")]  # errors are left out
    balances = {"A": Decimal("100"), "B": Decimal("200"), "C": Decimal("400"), "E": Decimal("50")}
    payments = {"A": [Payment("A", at(3, 10).astimezone(UTC), Decimal("99")),  # before: not recovery
                      Payment("A", at(5, 10).astimezone(UTC), Decimal("50"))],
                "C": [Payment("C", at(6, 10).astimezone(UTC), Decimal("500"))]}  # beyond the balance: capped at 1
    outcomes = account_outcomes(decisions, balances, payments, since)
    assert [(o.account_id, o.paid) for o in outcomes] == [("A", Decimal("50")), ("B", Decimal("0")),
                                                         ("C", Decimal("500"))]
    by_stage = {row["key"]: row for row in recovery_by(outcomes, lambda o: o.stage, ["M1", "M2"])}
    m1 = by_stage["M1"]
    assert (m1["accounts"], m1["balance"], m1["paid"]) == (2, "300", "50")
    assert m1["recovery_rate"] == round(50 / 300, 6) and m1["payer_rate"]["hits"] == 1
    assert m1["mean_recovery"]["mean"] == 0.25
    assert by_stage["M2"]["recovery_rate"] == 1.25 and by_stage["M2"]["mean_recovery"]["mean"] == 1.0
    groups = [row["key"] for row in recovery_by(outcomes, lambda o: o.group)]
    assert groups == ["challenger", "champion"]
    assert AccountOutcome("X", "M1", "call", "all", Decimal(3), Decimal(1)).recovery == pytest.approx(1 / 3)


def test_transition_matrix_and_roll_rates_between_snapshots() -> None:
    previous = {"A": "M0", "B": "M0", "C": "M1", "D": "M1", "E": "M1", "F": None, "G": "M0"}
    current = {"A": "M1", "B": "M0", "C": "M0", "D": "M2", "E": "M1", "F": "M0", "H": "M0"}
    result = transitions(previous, current, ["M0", "M1", "M2"])
    assert result["stages"] == ["M0", "M1", "M2", "(none)"]
    rows = {row["from"]: row["counts"] for row in result["matrix"]}
    assert rows == {"M0": [1, 1, 0, 0], "M1": [1, 1, 1, 0], "M2": [0, 0, 0, 0], "(none)": [1, 0, 0, 0]}
    rolls = {row["stage"]: row for row in result["roll_rates"]}
    assert rolls["M0"]["roll_forward"]["hits"] == 1 and rolls["M0"]["roll_forward"]["total"] == 2
    assert rolls["M1"]["roll_back"]["hits"] == 1 and rolls["M1"]["stay"]["hits"] == 1
    assert (result["accounts_in_both"], result["only_previous"], result["only_current"]) == (6, 1, 1)


def test_payments_and_decisions_are_read_with_their_problems() -> None:
    payments = read_payments(["account_id,paid_at,amount\n", " A1 ,2025-06-05T10:00:00+08:00,12.50\n",
                              "A2,2025-06-05T10:00:00,1\n", "A3,2025-06-05T10:00:00Z,x\n", "A4,1\n"], "p.csv")
    assert list(payments.by_account) == ["A1"] and payments.by_account["A1"][0].amount == Decimal("12.50")
    assert payments.by_account["A1"][0].paid_at == dt.datetime(2025, 6, 5, 2, tzinfo=UTC)
    assert [p.split(":")[1] for p in payments.problems] == ["3", "4", "5"]
    with pytest.raises(ValueError, match="amount"):
        read_payments(["account_id,paid_at\n"])
    rows, problems = read_decisions(['{"account_id": "A1", "stage": "M0", "next_action": "sms", '
                                     '"now": "2025-06-04T02:00:00Z", "segments": ["early", "challenger"]}\n',
                                     '{"account_id": "A2", "stage": null, "next_action": null}\n', "not json\n",
                                     "\n"], "d.jsonl", frozenset({"challenger", "champion"}))
    assert [(r.account_id, r.group) for r in rows] == [("A1", "challenger"), ("A2", "all")]
    assert rows[0].now == dt.datetime(2025, 6, 4, 2, tzinfo=UTC) and problems[0].startswith("d.jsonl:3:")


def test_days_past_due_shift_back_to_the_contact_day() -> None:
    as_of = dt.datetime(2025, 6, 4, 2, tzinfo=UTC)
    assert shifted_back({"days_past_due": "40"}, "days_past_due", as_of, as_of - dt.timedelta(days=10, hours=5)) \
        == {"days_past_due": "30"}
    assert shifted_back({"days_past_due": 5}, "days_past_due", as_of, as_of - dt.timedelta(days=10)) \
        == {"days_past_due": 0}  # never below 0
    assert shifted_back({"days_past_due": "-2"}, "days_past_due", as_of, as_of - dt.timedelta(days=10)) \
        == {"days_past_due": "-2"}  # current today: unknown before, left alone
    assert shifted_back({"days_past_due": "40"}, None, as_of, as_of - dt.timedelta(days=10)) == {"days_past_due": "40"}


# ------------------------------------------------------------ the audit

AUDIT_POLICY = """\
policy "audit-test" version "1"
account {
    id            : text
    days_past_due : int = 0
    timezone      : zone = "Asia/Shanghai"
    flags         : set<text> = {}
}
actions { call, sms }
events { inbound_call }
allow all
hours: window call, sms 08:00-21:00 because "contact hours"
weekly: limit call 3 per 7 days because "three calls a week"
ceased: forbid all when "cease_contact" in flags because "the debtor asked us to stop"
"""

ACCOUNTS = {"A": {"id": "A", "days_past_due": "20"}, "B": {"id": "B", "days_past_due": "20"},
            "C": {"id": "C", "days_past_due": "20", "flags": "cease_contact"}}


def clean_history() -> dict[str, list[Contact]]:
    return {"A": [Contact("A", "call", at(2, 10), "no_answer"), Contact("A", "call", at(3, 10), "conversation"),
                  Contact("A", "sms", at(3, 20, 30), "delivered"), Contact("A", "call", at(5, 9), "no_answer")],
            "B": [Contact("B", "sms", at(2, 8), "delivered"), Contact("B", "inbound_call", at(2, 23), "conversation"),
                  Contact("B", "call", at(4, 20, 59), "no_answer")],
            "C": [Contact("C", "inbound_call", at(3, 23, 30), "conversation")]}  # an event is never a violation


def planted_history() -> tuple[dict[str, list[Contact]], list[Contact]]:
    history = clean_history()
    night_call = Contact("B", "call", at(3, 23), "no_answer")  # 23:00 local
    fourth_call = Contact("A", "call", at(6, 11), "no_answer")  # a fourth call in 7 days, cap 3
    after_cease = Contact("C", "sms", at(4, 10), "delivered")  # the debtor asked us to stop
    history["B"].insert(2, night_call)
    history["A"].append(fourth_call)
    history["C"].append(after_cease)
    return history, [fourth_call, night_call, after_cease]


def test_the_audit_flags_nothing_on_a_clean_history() -> None:
    policy = compile_policy(AUDIT_POLICY)
    result = audit(policy, ACCOUNTS, clean_history(), dt.datetime(2025, 6, 7, tzinfo=UTC))
    assert result.violations == [] and result.errors == []
    assert (result.contacts, result.audited, result.events) == (8, 6, 2)


def test_the_audit_flags_exactly_the_planted_contacts_under_their_rules() -> None:
    policy = compile_policy(AUDIT_POLICY)
    history, planted = planted_history()
    result = audit(policy, ACCOUNTS, history, dt.datetime(2025, 6, 7, tzinfo=UTC))
    assert [v.contact for v in result.violations] == planted
    assert [[(rule_id, kind) for rule_id, kind, _, _ in v.entries] for v in result.violations] == \
        [[("weekly", "limit")], [("hours", "window")], [("ceased", "forbidden")]]
    summary = result.to_dict()
    assert summary["audited"] == 9 and summary["violations"] == 3
    assert {r["rule_id"]: r["contacts"] for r in summary["by_rule"]} == {"ceased": 1, "hours": 1, "weekly": 1}
    assert summary["by_rule"][0]["examples"][0]["account_id"] in {"A", "B", "C"}
    assert "the debtor asked us to stop" in next(r["reason"] for r in summary["by_rule"] if r["rule_id"] == "ceased")


def test_the_audit_judges_a_contact_on_the_history_strictly_before_it() -> None:
    policy = compile_policy(AUDIT_POLICY)
    same_instant = [Contact("A", "call", at(2, 10), ""), Contact("A", "call", at(2, 10, 1), ""),
                    Contact("A", "call", at(2, 10, 2), "")]
    result = audit(policy, ACCOUNTS, {"A": same_instant}, dt.datetime(2025, 6, 7, tzinfo=UTC))
    assert result.violations == []  # the third call is the third, not the fourth
    unknown = audit(policy, {}, {"Z": [Contact("Z", "call", at(2, 10), "")], "A": [Contact("A", "fax", at(2, 10))]},
                    dt.datetime(2025, 6, 7, tzinfo=UTC))
    assert (unknown.no_account, unknown.unknown_actions, unknown.audited) == (1, 1, 0)


def test_the_page_escapes_every_input_text_and_fetches_nothing() -> None:
    policy = compile_policy(AUDIT_POLICY)
    accounts = {"<b>x</b>": {"id": "<b>x</b>", "days_past_due": "3", "flags": "cease_contact", "balance": "10"}}
    history = {"<b>x</b>": [Contact("<b>x</b>", "call", at(2, 10), "<i>promise</i>")]}
    decisions = [DecisionRow("<b>x</b>", None, "call", "<script>", None, None)]
    page = render(build_report(policy, accounts, decisions, history, Payments(), at(4, 10).astimezone(UTC),
                               previous={"<b>x</b>": None}, notes=["<u>note</u>"]))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<script" not in page and "&lt;script&gt;" in page and "<u>" not in page
    lowered = page.lower()
    assert not any(token in lowered for token in ("src=", "href=", "@import", "url(", "https://"))
    assert page.count("<svg") >= 3


# ------------------------------------------------------------ the command, end to end


def report_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["report", str(POLICY), str(EXAMPLES / "accounts.csv"), "--history", str(EXAMPLES / "contacts.csv"),
            "--payments", str(EXAMPLES / "payments.csv"), "--previous", str(EXAMPLES / "accounts_previous.csv"),
            "-o", str(tmp_path / "report.html"), "--json", str(tmp_path / "report.json"), *extra]


@pytest.fixture(scope="module")
def shipped_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report on the shipped example, from the decisions `policy run` wrote."""
    tmp_path = tmp_path_factory.mktemp("report")
    runner = CliRunner()
    decided = runner.invoke(main, ["run", str(POLICY), str(EXAMPLES / "accounts.csv"), "--history",
                                   str(EXAMPLES / "contacts.csv"), "--now", NOW, "-q", "-o",
                                   str(tmp_path / "decisions.jsonl")])
    assert decided.exit_code == 0, decided.output
    result = runner.invoke(main, report_args(tmp_path, "--decisions", str(tmp_path / "decisions.jsonl")))
    assert result.exit_code == 0, result.output
    assert "past contacts audited" in result.output
    return tmp_path


def test_the_shipped_example_gives_html_and_json_whose_counts_agree(shipped_report: Path) -> None:
    numbers = json.loads((shipped_report / "report.json").read_text(encoding="utf-8"))
    page = (shipped_report / "report.html").read_text(encoding="utf-8")
    history_rows = sum(1 for _ in (EXAMPLES / "contacts.csv").open(encoding="utf-8")) - 1
    accounts = sum(1 for _ in (EXAMPLES / "accounts.csv").open(encoding="utf-8")) - 1
    assert numbers["as_of"] == NOW and numbers["portfolio"]["accounts"] == accounts == 250
    contacts = numbers["contacts"]
    assert contacts["history_rows"] == history_rows
    assert sum(c["contacts"] for c in contacts["channels"]) == history_rows
    assert contacts["totals"]["contacts"] == contacts["lender_contacts"] == \
        sum(c["contacts"] for c in contacts["channels"] if not c["event"])
    audit_numbers = numbers["audit"]
    assert audit_numbers["history_rows"] == history_rows
    assert audit_numbers["audited"] + audit_numbers["events_skipped"] + audit_numbers["unknown_actions_skipped"] \
        + audit_numbers["no_account_skipped"] + audit_numbers["not_evaluated"] == history_rows
    assert audit_numbers["audited"] == contacts["lender_contacts"]
    assert audit_numbers["violations"] == len(audit_numbers["all_violations"]) > 0
    assert sum(audit_numbers["by_action"].values()) == audit_numbers["violations"]
    top = audit_numbers["by_rule"][0]
    assert top["contacts"] > 5 and len({x["account_id"] for x in top["examples"]}) == 5  # from distinct accounts
    recovery = numbers["recovery"]
    for key in ("by_stage", "by_next_action", "by_group"):
        assert sum(row["accounts"] for row in recovery[key]) == recovery["overall"][0]["accounts"]
        assert sum(Decimal(row["paid"]) for row in recovery[key]) == Decimal(recovery["overall"][0]["paid"])
    assert [row["key"] for row in recovery["by_stage"]] == ["current", "M0", "M1", "M2", "M3plus"]
    assert [row["key"] for row in recovery["by_group"]] == ["all"]  # decisions without a group
    moves = numbers["transitions"]
    assert (moves["accounts_in_both"], moves["only_previous"], moves["only_current"]) == (245, 3, 5)
    assert sum(row["total"] for row in moves["matrix"]) == 245
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 8 and 'class="chart heatmap"' in page
    assert f"<b>{audit_numbers['violations']:,}</b> would have been blocked" in page


def test_the_report_decides_the_accounts_itself_without_decisions(shipped_report: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, report_args(tmp_path, "--as-of", NOW))
    assert result.exit_code == 0, result.output
    mine = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    theirs = json.loads((shipped_report / "report.json").read_text(encoding="utf-8"))
    for key in ("audit", "recovery", "transitions", "contacts", "promises"):
        assert mine[key] == theirs[key], key


def test_report_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, report_args(tmp_path)).exit_code == 2  # neither --decisions nor --as-of
    bad = tmp_path / "payments.csv"
    bad.write_text("account,when\n", encoding="utf-8")
    args = report_args(tmp_path, "--as-of", NOW)
    args[args.index("--payments") + 1] = str(bad)
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and "no column" in result.output
    assert not (tmp_path / "report.html").exists()


# ------------------------------------------------------------ headless Chromium


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _artifacts() -> Path:
    directory = Path(os.environ.get("PYTEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_the_page_renders_in_headless_chromium_without_console_errors(shipped_report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on PATH: apt-get install chromium")
    page = (shipped_report / "report.html").resolve().as_uri()
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--window-size=1280,2000"]
    screenshot = tmp_path / "report.png"
    shot = subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile-shot'}", f"--screenshot={screenshot}", page],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    shutil.copyfile(screenshot, _artifacts() / "report.png")
    dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile-dom'}", "--enable-logging=stderr", "--v=0",
                          "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # Console messages (script errors, refused loads under the page's Content-Security-Policy) are logged as
    # CONSOLE lines; the page has no script, so any one of them is a fault.
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert dom.stdout.count("<svg") >= 8 and 'class="chart heatmap"' in dom.stdout
    assert "Retro-compliance audit" in dom.stdout


def test_decisions_with_test_groups_and_another_policys_digest(tmp_path: Path) -> None:
    """A copy of the shipped policy with an experiment: `policy run` puts each
    account in its group (a segment), and the report reads the groups back
    from the decisions, as many accounts in each as the buckets say."""
    shutil.copy(ROOT / "policies" / "cn_collection_baseline.policy", tmp_path)
    policy = tmp_path / "ecommerce.policy"
    policy.write_text(POLICY.read_text(encoding="utf-8") + '\nexperiment offers salt "offers-v2" {\n'
                      "    challenger 30%\n    champion   rest\n}\n", encoding="utf-8")
    decided = CliRunner().invoke(main, ["run", str(policy), str(EXAMPLES / "accounts.csv"), "--history",
                                        str(EXAMPLES / "contacts.csv"), "--now", NOW, "-q",
                                        "-o", str(tmp_path / "decisions.jsonl")])
    assert decided.exit_code == 0, decided.output
    lines = (tmp_path / "decisions.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["policy"]["digest"] = "sha256:" + "0" * 64
    (tmp_path / "decisions.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    args = report_args(tmp_path, "--decisions", str(tmp_path / "decisions.jsonl"))
    args[1] = str(policy)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    numbers = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    groups = {row["key"]: row["accounts"] for row in numbers["recovery"]["by_group"]}
    ids = [json.loads(line)["account_id"] for line in lines]
    challengers = sum(1 for account_id in ids if bucket(account_id, "offers-v2") < 3000)
    assert groups == {"challenger": challengers, "champion": len(ids) - challengers}
    assert 0 < challengers < len(ids)
    assert any("1 decision made by another policy" in note for note in numbers["notes"])


def test_the_command_flags_exactly_the_contacts_planted_in_csv_files(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text(AUDIT_POLICY.replace("account {", "account {\n    balance : money = 0"),
                                       encoding="utf-8")
    (tmp_path / "accounts.csv").write_text("id,days_past_due,balance,flags\nA,20,100,\nB,20,200,\n"
                                           "C,20,300,cease_contact\n", encoding="utf-8")
    history, planted = planted_history()
    rows = [c for contacts in history.values() for c in contacts]
    (tmp_path / "contacts.csv").write_text(
        "account_id,action,at,outcome\n"
        + "".join(f"{c.account_id},{c.action},{c.at.astimezone(SHANGHAI).isoformat()},{c.outcome}\n" for c in rows),
        encoding="utf-8")
    (tmp_path / "payments.csv").write_text("account_id,paid_at,amount\nA,2025-06-08T10:00:00+08:00,25\n",
                                           encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "p.policy"), str(tmp_path / "accounts.csv"),
                                       "--history", str(tmp_path / "contacts.csv"), "--payments",
                                       str(tmp_path / "payments.csv"), "--as-of", "2025-06-07T00:00:00Z",
                                       "-o", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    numbers = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    flagged = [(v["account_id"], v["action"], v["at"]) for v in numbers["audit"]["all_violations"]]
    assert flagged == [(c.account_id, c.action, c.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                       for c in planted]
    assert numbers["recovery"]["overall"][0]["recovery_rate"] == round(25 / 600, 6)
    assert numbers["transitions"] is None
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No previous snapshot given" in page and "weekly" in page and "hours" in page and "ceased" in page
