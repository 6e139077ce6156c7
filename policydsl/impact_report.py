"""How `policy diff` shows a change's impact: text (rich tables), one JSON
object, or one self-contained HTML page (no network, inline CSS, every
input text escaped). What is shown is counted by `policydsl.impact`; the
exhaustive comparison's verdict comes from `policydsl.equivalence`
(`compare(old, new) -> Verdict`) and is only read here, by attribute."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from .decision import Contact, Decision, Provenance, format_exact_instant, format_instant
from .impact import NEWLY_ALLOWED, NEWLY_BLOCKED, AccountChange, ActionChange, DiffSummary
from .io import visible

EQUIVALENT, STRICTER, LOOSENS, DIFFERS = "equivalent", "stricter", "loosens", "differs"
OUTCOME_TEXT = {EQUIVALENT: "equivalent", STRICTER: "NEW is stricter", LOOSENS: "NEW loosens",
                DIFFERS: "NEW differs (stricter somewhere, looser elsewhere, or only stages or segments)"}


@dataclass
class DiffReport:
    """Everything one `policy diff` shows: the two policies, the instant,
    the portfolio's summary (None without ACCOUNTS) and the exhaustive
    verdict (None without --exhaustive)."""

    old_path: str
    new_path: str
    old: Provenance | None
    new: Provenance | None
    now: dt.datetime
    summary: DiffSummary | None = None
    verdict: Any = None
    fail_on: str | None = None
    failed: bool = False


# ------------------------------------------------------------ failing CI


def verdict_loosens(verdict: Any) -> bool:
    """"loosens", or "differs" with a counterexample whose action NEW allows and OLD does not."""
    if verdict.outcome == LOOSENS:
        return True
    if verdict.outcome != DIFFERS:
        return False
    return any(example.action is not None and example.action in example.new.allowed
               and example.action not in example.old.allowed for example in verdict.counterexamples)


def fails(report: DiffReport, fail_on: str | None) -> bool:
    """Whether `--fail-on` (loosened or any) fails on what was found."""
    if fail_on is None:
        return False
    summary, verdict = report.summary, report.verdict
    if fail_on == "loosened":
        return bool((summary is not None and summary.loosened) or (verdict is not None and verdict_loosens(verdict)))
    return bool((summary is not None and summary.changed) or (verdict is not None and verdict.outcome != EQUIVALENT))


# ------------------------------------------------------------ JSON


def report_dict(report: DiffReport) -> dict[str, Any]:
    """The one JSON object of `--format json` (docs/impact.md)."""
    result: dict[str, Any] = {
        "old": {"path": report.old_path, **(report.old.to_dict() if report.old else {})},
        "new": {"path": report.new_path, **(report.new.to_dict() if report.new else {})},
        "now": format_exact_instant(report.now),
    }
    if report.summary is not None:
        result["summary"] = report.summary.to_dict()
        result["changes"] = [change.to_dict() for change in report.summary.examples]
        result["left_out"] = report.summary.left_out
    if report.verdict is not None:
        result["exhaustive"] = verdict_dict(report.verdict)
    result["fail_on"] = report.fail_on
    result["failed"] = report.failed
    return result


def report_json(report: DiffReport) -> str:
    return json.dumps(report_dict(report), ensure_ascii=False, indent=2) + "\n"


def verdict_dict(verdict: Any) -> dict[str, Any]:
    return {
        "outcome": verdict.outcome,
        "exact": bool(verdict.exact),
        "cases": verdict.cases,
        "sampled": verdict.sampled,
        "outside": list(verdict.outside),
        "counterexamples": [{
            "description": example.description,
            "action": example.action,
            "account": {key: plain(value) for key, value in example.account.items()},
            "history": [contact_dict(contact) for contact in example.history],
            "now": format_exact_instant(example.now),
            "old": example.old.to_dict(),
            "new": example.new.to_dict(),
        } for example in verdict.counterexamples],
    }


def plain(value: Any) -> Any:
    """An account value as JSON holds it: sets sorted, the rest as text (numbers and bools kept)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, set | frozenset | list | tuple):
        return sorted(str(item) for item in value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def contact_dict(contact: Contact) -> dict[str, str | None]:
    return {"account_id": contact.account_id, "action": contact.action, "at": format_exact_instant(contact.at),
            "outcome": contact.outcome}


# ------------------------------------------------------------ shared wording


def _policy_name(provenance: Provenance | None, path: str) -> str:
    if provenance is None:
        return path
    return f"{path} ({provenance.name} {provenance.version})"


def _until(instant: dt.datetime | None) -> str:
    return format_instant(instant) or "never by time"


def _action_text(change: ActionChange, account: AccountChange) -> str:
    """`+sms (allow-…; was limit-…)`, `−sms (limit-…)`, `~sms until A → B (limit-…)` (plain text)."""
    now_rules = ", ".join(change.new_rules) or _no_rules(change.new_declared, account.new)
    was = ", ".join(change.old_rules) or _no_rules(change.old_declared, account.old, "")
    if change.kind == NEWLY_ALLOWED:
        return f"+{change.action} ({now_rules}" + (f"; was {was})" if was else ")")
    if change.kind == NEWLY_BLOCKED:
        return f"−{change.action} ({now_rules}" + (f"; was {was})" if was else ")")
    return f"~{change.action} until {_until(change.old_until)} → {_until(change.new_until)} ({now_rules})"


def _no_rules(declared: bool, decision: Decision, otherwise: str = "-") -> str:
    if decision.error is not None:
        return "error"
    return otherwise if declared else "not declared"


def change_parts(change: AccountChange) -> list[str]:
    """One account's change as plain-text parts: stage, next action, errors, then each action."""
    parts = []
    old, new = change.old, change.new
    if change.stage_changed:
        parts.append(f"stage {change.old_stage} → {change.new_stage}")
    elif new.stage:
        parts.append(f"stage {new.stage}")
    if old.error is None and new.error is None and old.next_action != new.next_action:
        parts.append(f"next {old.next_action or '-'} → {new.next_action or '-'}")
    for side, decision in (("old", old), ("new", new)):
        if decision.error is not None and decision.error != (new.error if side == "old" else old.error):
            parts.append(f"error on {side}: {decision.error}")
    if not change.actions and old.allowed != new.allowed and old.error is None and new.error is None:
        parts.append("priority " + ", ".join(old.allowed) + " → " + ", ".join(new.allowed))
    parts.extend(_action_text(action, change) for action in change.actions)
    return parts


def _verdict_headline(verdict: Any) -> str:
    text = OUTCOME_TEXT.get(verdict.outcome, str(verdict.outcome))
    if verdict.exact:
        return f"{text} (exact: {verdict.cases:,} cases)"
    return f"{text} ({verdict.cases:,} cases enumerated, {verdict.sampled:,} sampled; not exact)"


def _decision_text(decision: Decision) -> str:
    if decision.error is not None:
        return f"error: {decision.error}"
    allowed = ", ".join(decision.allowed) or "nothing allowed"
    return f"stage {decision.stage or '-'}; allowed {allowed}"


def _account_text(account: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_joined(plain(value))}" for key, value in account.items())


def _joined(value: Any) -> str:
    return ";".join(value) if isinstance(value, list) else str(value)


def _history_text(history: Iterable[Contact]) -> str:
    shown = [f"{contact.action} at {format_exact_instant(contact.at)}"
             + (f" ({contact.outcome})" if contact.outcome else "") for contact in history]
    return "; ".join(shown) or "none"


# ------------------------------------------------------------ text


def _shown(text: str) -> str:
    return escape(visible(text))


def print_text(report: DiffReport, console: Console) -> None:
    """The summary tables first, then one line per changed account, then the exhaustive verdict."""
    console.print(f"[bold]OLD[/] {_shown(_policy_name(report.old, report.old_path))}\n"
                  f"[bold]NEW[/] {_shown(_policy_name(report.new, report.new_path))}")
    if report.summary is not None:
        console.print(f"decided at {format_exact_instant(report.now)}")
        _print_summary(report.summary, console)
    if report.verdict is not None:
        _print_verdict(report.verdict, console)
    if report.fail_on is not None:
        colour = "red" if report.failed else "green"
        verdict = "fails" if report.failed else "passes"
        console.print(f"[{colour}]--fail-on {report.fail_on}: {verdict}[/]")


def _print_summary(summary: DiffSummary, console: Console) -> None:
    colour = "yellow" if summary.changed else "green"
    console.print(f"[bold]{summary.accounts:,} accounts[/]: [{colour}]{summary.changed:,} changed[/], "
                  f"{summary.stage_changed:,} of them in stage; error rows: {summary.errors_old:,} under OLD, "
                  f"{summary.errors_new:,} under NEW")
    console.print(f"accounts with an action newly allowed: {_count(summary.accounts_newly_allowed, 'red')}, "
                  f"newly blocked: {_count(summary.accounts_newly_blocked, 'green')}")
    for side, actions in (("OLD", summary.actions_only_old), ("NEW", summary.actions_only_new)):
        if actions:
            console.print(f"[yellow]actions only in {side}:[/] {_shown(', '.join(actions))}")
    if not summary.changed:
        console.print("[green]no account changes[/]")
        return
    by_stage = Table("old stage", "new stage", Column("accounts", justify="right"), title="changed accounts by stage",
                     header_style="bold", box=box.SIMPLE)
    for (old, new), count in summary.by_stage.most_common():
        by_stage.add_row(_shown(old), _shown(new), f"{count:,}")
    console.print(by_stage)
    data = summary.to_dict()
    if data["by_action"]:
        by_action = Table("action", Column("newly allowed", justify="right"), Column("newly blocked", justify="right"),
                          Column("until changed", justify="right"), title="accounts by action",
                          header_style="bold", box=box.SIMPLE)
        for row in data["by_action"]:
            by_action.add_row(_shown(row["action"]), _count(row["newly_allowed"], "red"),
                              _count(row["newly_blocked"], "green"), _count(row["until_changed"], "yellow"))
        console.print(by_action)
    if data["rules"]:
        rules = Table("side", Column("rule_id", overflow="fold"), Column("rule", overflow="fold"),
                      Column("accounts", justify="right"), title="rules responsible", header_style="bold",
                      box=box.SIMPLE)
        for row in data["rules"]:
            rules.add_row(row["side"], _shown(row["rule_id"]), _shown(row["rule"]), f"{row['accounts']:,}")
        console.print(rules)
    console.print("[bold]changed accounts[/]")
    for change in summary.examples:
        # one line per account, never broken by the console (a terminal wraps it; grep finds it whole)
        console.print(f"[bold]{_shown(change.account_id or '?')}[/]  "
                      + "  ".join(_coloured(part) for part in change_parts(change)), soft_wrap=True)
    if summary.left_out:
        console.print(f"[dim]… and {summary.left_out:,} more changed accounts not shown (--limit "
                      f"{summary.limit:,})[/]")


def _count(count: int, colour: str) -> str:
    return f"[{colour}]{count:,}[/]" if count else "[dim]0[/]"


def _coloured(part: str) -> str:
    colour = {"+": "red", "−": "green", "~": "yellow"}.get(part[:1])
    if part.startswith("error"):
        colour = "magenta"
    return f"[{colour}]{_shown(part)}[/]" if colour else _shown(part)


def _print_verdict(verdict: Any, console: Console) -> None:
    colour = {EQUIVALENT: "green", STRICTER: "cyan", LOOSENS: "red"}.get(verdict.outcome, "yellow")
    console.print(f"[bold]exhaustive:[/] [{colour}]{_shown(_verdict_headline(verdict))}[/]")
    for condition in verdict.outside:
        console.print(f"[yellow]outside the exact fragment (sampled):[/] {_shown(condition)}")
    for number, example in enumerate(verdict.counterexamples, 1):
        action = " " + escape(f"[{visible(example.action)}]") if example.action else ""
        console.print(f"[bold]counterexample {number}{action}:[/] {_shown(example.description)}")
        console.print(f"  account: {_shown(_account_text(example.account))}")
        console.print(f"  history: {_shown(_history_text(example.history))}")
        console.print(f"  now:     {format_exact_instant(example.now)}")
        console.print(f"  old:     {_shown(_decision_text(example.old))}")
        console.print(f"  new:     {_shown(_decision_text(example.new))}")


# ------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}
.allowed{color:#b00020}.blocked{color:#1b5e20}.until{color:#8a6d00}.error{color:#6a1b9a}
code{font-family:ui-monospace,monospace}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(caption: str, head: list[str], rows: Iterable[list[str]]) -> str:
    """A table whose cells are already escaped HTML."""
    header = "".join(f"<th>{_e(name)}</th>" for name in head)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>\n" for row in rows)
    return f"<table><caption>{_e(caption)}</caption>\n<tr>{header}</tr>\n{body}</table>\n"


def _td(value: Any, css: str = "") -> str:
    return f'<td class="{css}">{_e(value)}</td>' if css else f"<td>{_e(value)}</td>"


def report_html(report: DiffReport) -> str:
    """One self-contained page: no script, no network, inline CSS, every text escaped."""
    parts = [f"<p><b>OLD</b> {_e(_policy_name(report.old, report.old_path))}<br>"
             f"<b>NEW</b> {_e(_policy_name(report.new, report.new_path))}<br>"
             f"decided at {_e(format_exact_instant(report.now))}</p>"]
    summary = report.summary
    if summary is not None:
        data = summary.to_dict()
        parts.append(f"<p>{data['accounts']:,} accounts: {data['changed']:,} changed ({data['stage_changed']:,} "
                     f"change stage; {data['accounts_newly_allowed']:,} with an action newly allowed, "
                     f"{data['accounts_newly_blocked']:,} with one newly blocked); error rows: "
                     f"{data['errors']['old']:,} under OLD, {data['errors']['new']:,} under NEW</p>")
        for side, actions in (("OLD", summary.actions_only_old), ("NEW", summary.actions_only_new)):
            if actions:
                parts.append(f"<p>actions only in {side}: {_e(', '.join(actions))}</p>")
        parts.append(_table("changed accounts by stage", ["old stage", "new stage", "accounts"],
                            ([_td(row["old"]), _td(row["new"]), _td(f"{row['accounts']:,}", "n")]
                             for row in data["by_stage"])))
        parts.append(_table("accounts by action", ["action", "newly allowed", "newly blocked", "until changed"],
                            ([_td(row["action"]), _td(row["newly_allowed"], "n"), _td(row["newly_blocked"], "n"),
                              _td(row["until_changed"], "n")] for row in data["by_action"])))
        parts.append(_table("rules responsible", ["side", "rule_id", "rule", "accounts"],
                            ([_td(row["side"]), _td(row["rule_id"]), _td(row["rule"]), _td(row["accounts"], "n")]
                             for row in data["rules"])))
        parts.append(_table("changed accounts", ["account", "row", "stage", "next action", "changes"],
                            (_change_row(change) for change in summary.examples)))
        if summary.left_out:
            parts.append(f"<p>… and {summary.left_out:,} more changed accounts not shown "
                         f"(--limit {summary.limit:,})</p>")
    if report.verdict is not None:
        parts.append(_verdict_html(report.verdict))
    if report.fail_on is not None:
        parts.append(f"<p>--fail-on {_e(report.fail_on)}: {'fails' if report.failed else 'passes'}</p>")
    title = f"policy diff: {report.old_path} → {report.new_path}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{_e(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")


def _change_row(change: AccountChange) -> list[str]:
    old, new = change.old, change.new
    stage = f"{change.old_stage} → {change.new_stage}" if change.stage_changed else change.new_stage
    nexts = f"{old.next_action or '-'} → {new.next_action or '-'}" if old.next_action != new.next_action \
        else (new.next_action or "-")
    css = {NEWLY_ALLOWED: "allowed", NEWLY_BLOCKED: "blocked"}
    items = [f'<span class="{css.get(action.kind, "until")}">{_e(_action_text(action, change))}</span>'
             for action in change.actions]
    for side, decision in (("old", old), ("new", new)):
        if decision.error is not None:
            items.insert(0, f'<span class="error">{_e(f"error on {side}: {decision.error}")}</span>')
    return [_td(change.account_id or "?"), _td(change.row, "n"), _td(stage), _td(nexts),
            "<td>" + "<br>".join(items) + "</td>"]


def _verdict_html(verdict: Any) -> str:
    parts = [f"<h2>exhaustive: {_e(_verdict_headline(verdict))}</h2>"]
    if verdict.outside:
        parts.append("<p>outside the exact fragment (checked by sampling):</p><ul>"
                     + "".join(f"<li><code>{_e(condition)}</code></li>" for condition in verdict.outside) + "</ul>")
    rows = ([_td(number), _td(example.action or ""), _td(example.description), _td(_account_text(example.account)),
             _td(_history_text(example.history)), _td(format_exact_instant(example.now)),
             _td(_decision_text(example.old)), _td(_decision_text(example.new))]
            for number, example in enumerate(verdict.counterexamples, 1))
    parts.append(_table("counterexamples", ["#", "action", "description", "account", "history", "now", "old", "new"],
                        rows))
    return "\n".join(parts)
