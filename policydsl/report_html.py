"""`policy report` as one self-contained HTML page: inline CSS, inline SVG
charts drawn here (horizontal bars with 95% interval whiskers, a heat-map
transition matrix), no JavaScript, nothing fetched (a Content-Security-Policy
forbids it). Every text from the inputs is escaped. The numbers are those of
`outcomes.build_report`, which the JSON output holds too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:0;color:#1d232b;
background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #d9dde3;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#5b6573}.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;margin:10px 0}
table{border-collapse:collapse;background:#fff;margin:8px 0 16px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#eef1f4}td.l,th.l{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}
figure{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:10px 10px 10px 0;padding:8px;
display:inline-block;vertical-align:top}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font:12px system-ui,sans-serif;fill:#1d232b}
code{background:#eef1f4;padding:0 3px;border-radius:3px}
.small{font-size:12px;color:#5b6573}
"""

_BAR = "#3b7dd8"
_WHISKER = "#1d232b"


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def _rate_text(rate: Mapping[str, Any]) -> str:
    if rate["rate"] is None:
        return "–"
    low, high = rate["ci95"]
    return f"{_pct(rate['rate'])} <span class=small>[{_pct(low)}, {_pct(high)}] · {rate['hits']}/{rate['total']}</span>"


def bar_chart(title: str, items: Sequence[tuple[str, float | None, float | None, float | None]],
              percent: bool = True, width: int = 560, full_scale: bool = True) -> str:
    """Horizontal bars, one per (label, value, low, high), with the 95%
    interval drawn as a whisker when low and high are given; percentages on
    a 0-100% axis (`full_scale`) or up to the largest value shown."""
    shown = [item for item in items if item[1] is not None]
    label_width, bar_height, gap, top = 170, 18, 8, 8
    height = top + len(shown) * (bar_height + gap) + 24
    plot = width - label_width - 70
    top_value = max([1.0 if percent and full_scale else 0.0] + [max(v or 0, h or 0) for _, v, _, h in shown]) or 1.0
    if percent:
        top_value = min(1.0, max(0.05, top_value))

    def x(value: float) -> float:
        return label_width + plot * max(0.0, min(value, top_value)) / top_value

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{_e(title)}</title>']
    for tick in range(5):
        mark = top_value * tick / 4
        tx = x(mark)
        parts.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{height - 20}" stroke="#e3e6ea"/>'
                     f'<text x="{tx:.1f}" y="{height - 6}" text-anchor="middle">'
                     f'{_e(_pct(mark) if percent else f"{mark:,.2f}")}</text>')
    for row, (label, shown_value, low, high) in enumerate(shown):
        value = shown_value or 0.0
        y = top + row * (bar_height + gap)
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">{_e(short)}</text>'
                     f'<rect x="{label_width}" y="{y}" width="{x(value) - label_width:.1f}" height="{bar_height}" '
                     f'fill="{_BAR}"><title>{_e(label)}: {_e(_pct(value) if percent else f"{value:,.2f}")}</title>'
                     '</rect>')
        if low is not None and high is not None:
            x1, x2, mid = x(low), x(high), y + bar_height / 2
            parts.append(f'<g class="ci" stroke="{_WHISKER}" stroke-width="1.5">'
                         f'<line x1="{x1:.1f}" y1="{mid}" x2="{x2:.1f}" y2="{mid}"/>'
                         f'<line x1="{x1:.1f}" y1="{y + 3}" x2="{x1:.1f}" y2="{y + bar_height - 3}"/>'
                         f'<line x1="{x2:.1f}" y1="{y + 3}" x2="{x2:.1f}" y2="{y + bar_height - 3}"/></g>')
        end = max(x(value), x(high) if high is not None else 0)
        parts.append(f'<text x="{end + 4:.1f}" y="{y + 13}">{_e(_pct(value) if percent else f"{value:,.2f}")}'
                     '</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{_e(title)}</figcaption>{''.join(parts)}</figure>"


def heatmap(title: str, stages: Sequence[str], matrix: Sequence[Mapping[str, Any]]) -> str:
    """The transition matrix: rows the previous stage, columns the current
    one, each cell shaded by its row share and labelled with its count."""
    cell, left, top = 64, 90, 40
    size = len(stages)
    width, height = left + size * cell + 10, top + size * cell + 28
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart heatmap" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{_e(title)}</title>'
             f'<text x="{left + size * cell / 2}" y="12" text-anchor="middle">current stage →</text>']
    for column, stage in enumerate(stages):
        parts.append(f'<text x="{left + column * cell + cell / 2}" y="{top - 8}" text-anchor="middle">'
                     f'{_e(stage)}</text>')
    for row_number, row in enumerate(matrix):
        y = top + row_number * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end">{_e(row["from"])}</text>')
        for column, (count, share) in enumerate(zip(row["counts"], row["shares"], strict=True)):
            strength = share or 0.0
            light = round(97 - 55 * strength)
            colour = f"hsl(214,70%,{light}%)"
            ink = "#fff" if strength > 0.55 else "#1d232b"
            x = left + column * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{colour}">'
                         f'<title>{_e(row["from"])} → {_e(stages[column])}: {count} ({_pct(share)})</title></rect>'
                         f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 - 2}" text-anchor="middle" '
                         f'style="fill:{ink}">{count}</text>'
                         f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 13}" text-anchor="middle" '
                         f'style="fill:{ink};font-size:10px">{_pct(share) if count else ""}</text>')
    parts.append(f'<text x="6" y="{height - 8}">↑ previous stage (rows; shares of each row)</text></svg>')
    return f"<figure><figcaption>{_e(title)}</figcaption>{''.join(parts)}</figure>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A table; cells are HTML already (escape before), the first `left` columns left-aligned."""
    head = "".join(f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _recovery_section(title: str, rows: Sequence[Mapping[str, Any]]) -> str:
    chart = bar_chart(f"Mean account recovery by {title} (95% normal interval)",
                      [(r["key"], r["mean_recovery"]["mean"], *(r["mean_recovery"]["ci95"] or (None, None)))
                       for r in rows])
    table = _table([_e(title), "accounts", "balance", "paid", "recovery rate", "payer rate", "mean recovery"],
                   [[_e(r["key"]), str(r["accounts"]), _e(f"{float(r['balance']):,.2f}"),
                     _e(f"{float(r['paid']):,.2f}"), _pct(r["recovery_rate"]), _rate_text(r["payer_rate"]),
                     _mean_text(r["mean_recovery"])] for r in rows])
    return f"<h3>By {_e(title)}</h3>{chart}{table}"


def _mean_text(mean: Mapping[str, Any]) -> str:
    if mean["mean"] is None:
        return "–"
    ci = mean["ci95"]
    interval = f" <span class=small>[{_pct(ci[0])}, {_pct(ci[1])}]</span>" if ci else ""
    return _pct(mean["mean"]) + interval


def render(report: Mapping[str, Any]) -> str:
    """The report page (UTF-8 HTML text)."""
    policy = report["policy"]
    contacts = report["contacts"]
    totals = contacts["totals"]
    promises = report["promises"]
    recovery = report["recovery"]
    audit = report["audit"]
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
           "img-src data:\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Collection report: {_e(policy['name'])} {_e(policy['version'])}</title>",
           f"<style>{_CSS}</style></head><body><main>",
           f"<h1>Collection report: {_e(policy['name'])} <span class=meta>version {_e(policy['version'])}</span></h1>",
           f"<p class=meta>as of {_e(report['as_of'])} · policy {_e(policy['path'])} "
           f"<code>{_e(policy['digest'][:19])}…</code> · inputs: "
           + ", ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in report["inputs"].items() if v) + "</p>"]
    for note in report["notes"]:
        out.append(f'<p class="note">{_e(note)}</p>')
    portfolio = report["portfolio"]
    cards = [("accounts", f"{portfolio['accounts']:,}"), ("lender contacts", f"{contacts['lender_contacts']:,}"),
             ("right-party contact rate", _pct(totals["right_party_rate"]["rate"])),
             ("promise-to-pay rate", _pct(totals["promise_rate"]["rate"])),
             ("promises kept", _pct(promises["kept_rate"]["rate"])),
             ("recovery rate", _pct(recovery["overall"][0]["recovery_rate"]) if recovery["overall"] else "–"),
             ("contacts the policy would block", _pct(audit["violation_rate"]["rate"]))]
    out.append('<div class="cards">' + "".join(f'<div class="card"><b>{v}</b>{_e(k)}</div>' for k, v in cards)
               + "</div>")

    out.append('<h2 id="contacts">Contacts</h2>')
    out.append(f"<p>History from {_e(contacts['first'])} to {_e(contacts['last'])}: {contacts['history_rows']:,} "
               f"rows, {contacts['lender_contacts']:,} of them contacts the lender made (events such as inbound calls "
               "are shown per channel but left out of the totals).</p>")
    channels = contacts["channels"]
    out.append(bar_chart("Contacts per account of the portfolio, by channel",
                         [(c["action"] + (" (event)" if c["event"] else ""), c["contacts_per_account"], None, None)
                          for c in channels], percent=False))
    out.append(bar_chart("Right-party contact rate by channel (95% Wilson interval)",
                         [(c["action"] + (" (event)" if c["event"] else ""), c["right_party_rate"]["rate"],
                           *(c["right_party_rate"]["ci95"] or (None, None))) for c in channels]))
    out.append(_table(["channel", "contacts", "accounts", "per account", "per contacted account",
                       "right-party contact rate", "promise-to-pay rate", "delivery rate"],
                      [[_e(c["action"]) + (" <span class=small>(event)</span>" if c["event"] else ""),
                        str(c["contacts"]), str(c["accounts"]), _number(c["contacts_per_account"]),
                        _number(c["contacts_per_contacted_account"]), _rate_text(c["right_party_rate"]),
                        _rate_text(c["promise_rate"]), _rate_text(c["delivery_rate"])]
                       for c in [*channels, totals]]))
    out.append(f"<h3>Promises to pay</h3><p>{promises['promises']:,} promises; kept (a payment within "
               f"{promises['window_days']} days): {_rate_text(promises['kept_rate'])}; {promises['pending']:,} "
               f"pending (their window ends after the payments' last instant, "
               f"{_e(promises['payments_complete_to'])}).</p>")

    out.append('<h2 id="recovery">Recovery</h2>')
    out.append(f"<p>Payments at or after {_e(recovery['since'])} (the decisions' instant) over the balance in the "
               f"accounts file; {recovery['accounts']:,} decided accounts with a positive balance, "
               f"{recovery['payment_rows']:,} payment rows.</p>")
    for problem in recovery["payment_problems"]:
        out.append(f'<p class="note">{_e(problem)}</p>')
    for title, key in (("stage", "by_stage"), ("next action", "by_next_action"), ("test group", "by_group")):
        out.append(_recovery_section(title, recovery[key]))

    transitions = report["transitions"]
    out.append('<h2 id="roll-rates">Roll rates</h2>')
    if transitions is None:
        out.append("<p>No previous snapshot given (<code>--previous</code>): no roll rates.</p>")
    else:
        out.append(f"<p>{transitions['accounts_in_both']:,} accounts in both snapshots; "
                   f"{transitions['only_previous']:,} only in the previous one, {transitions['only_current']:,} only "
                   "in the current one.</p>")
        out.append(heatmap("Stage transition matrix (previous → current)", transitions["stages"],
                           transitions["matrix"]))
        out.append(bar_chart("Roll-forward rate by previous stage (95% Wilson interval)",
                             [(r["stage"], r["roll_forward"]["rate"], *(r["roll_forward"]["ci95"] or (None, None)))
                              for r in transitions["roll_rates"]]))
        out.append(_table(["previous stage", "accounts", "roll forward", "stay", "roll back"],
                          [[_e(r["stage"]), str(r["accounts"]), _rate_text(r["roll_forward"]), _rate_text(r["stay"]),
                            _rate_text(r["roll_back"])] for r in transitions["roll_rates"]]))

    out.append('<h2 id="audit">Retro-compliance audit</h2>')
    out.append(f"<p>Each of the {audit['audited']:,} past lender contacts was decided again by the policy at the "
               "instant it was made, on the history before it. "
               f"<b>{audit['violations']:,}</b> would have been blocked: {_rate_text(audit['violation_rate'])}. "
               f"Skipped: {audit['events_skipped']:,} events, {audit['unknown_actions_skipped']:,} unknown actions, "
               f"{audit['no_account_skipped']:,} contacts of accounts not in the accounts file, "
               f"{audit['not_evaluated']:,} not evaluable.</p>")
    shifted = audit["days_past_due_shifted"]
    out.append('<p class="note">The account values are today\'s snapshot, not those at each contact: flags, '
               "balance and risk are as they are now"
               + (f"; <code>{_e(shifted)}</code> is shifted back by the whole days between the contact and the "
                  "report's instant (for accounts past due today, never below 0)" if shifted else "")
               + ". A contact flagged here may have been allowed with the values of its day.</p>")
    if audit["by_rule"]:
        out.append(bar_chart("Share of audited contacts blocked, by rule (95% Wilson interval)",
                             [(r["rule_id"], r["share"]["rate"], *(r["share"]["ci95"] or (None, None)))
                              for r in audit["by_rule"]], full_scale=False))
        out.append(_table(["rule id", "kind", "rule", "reason", "contacts", "share"],
                          [[f"<code>{_e(r['rule_id'])}</code>", _e(r["kind"]), _e(r["rule"]), _e(r["reason"]),
                            str(r["contacts"]), _rate_text(r["share"])] for r in audit["by_rule"]], left=4))
        out.append("<h3>Examples</h3>")
        for rule in audit["by_rule"]:
            out.append(f"<p><code>{_e(rule['rule_id'])}</code> ({_e(rule['rule'])})</p>")
            out.append(_table(["account", "action", "at (UTC)", "outcome", "reason"],
                              [[_e(x["account_id"]), _e(x["action"]), _e(x["at"]), _e(x["outcome"]),
                                _e(next((r["reason"] for r in x["rules"] if r["rule_id"] == rule["rule_id"]), ""))]
                               for x in rule["examples"]], left=5))
    else:
        out.append("<p>No past contact would have been blocked.</p>")
    for error in audit["errors"]:
        out.append(f'<p class="note">{_e(error)}</p>')
    out.append('<p class="small">Definitions: docs/report.md. Generated by policydsl <code>policy report</code>.</p>')
    out.append("</main></body></html>\n")
    return "\n".join(out)
