# ruff: noqa: E501, RUF007, B905  (copied from the peers unchanged but for the output directory)
"""Generate every engine's policy artifact from ONE rule table.

Copied from ../shared/benchmarks/peers/gen_policies.py; only the output directory changed
(an argument, default benchmarks/.data/peer_policies, so the source tree is never written to).
The rule table, and so every artifact, is byte-for-byte the peers' one.

The rule table below is the whole policy.  Each rule is a *block*: when its
condition holds, every channel in its scope is blocked with `reason`.
A channel is allowed iff no rule blocks it.  Stage is a separate classifier.

Run:  python benchmarks/peers/gen_policies.py [OUT_DIR]
"""
from __future__ import annotations

import json
import os
import re
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), ".data", "peer_policies")

CHANNELS = ("sms", "app_push", "email", "agent_call", "field_visit", "legal")
ALL = CHANNELS
DIGITAL = ("sms", "app_push", "email")
FIELD_LEGAL = ("field_visit", "legal")
CALL = ("agent_call",)

# Stage classifier (first match wins, evaluated on days_past_due)
STAGES = (
    ("current", "< 1"),
    ("M0", "[1..30]"),
    ("M1", "[31..60]"),
    ("M2", "[61..90]"),
    ("M3plus", "> 90"),
)

# (rule id / reason, channel scope, condition per engine dialect)
#   cel  : CEL over variable `a`
#   re   : rule-engine syntax over the account dict
#   cedar: Cedar `when` condition over `context`
#   zen  : (input field, unary test) for a zen decision-table cell
RULES = [
    dict(reason="stage", scope=DIGITAL,
         cel="a.days_past_due < 1", re="days_past_due < 1",
         cedar="context.days_past_due < 1", zen=("days_past_due", "< 1"), zx="days_past_due < 1"),
    dict(reason="stage", scope=CALL,
         cel="a.days_past_due < 31", re="days_past_due < 31",
         cedar="context.days_past_due < 31", zen=("days_past_due", "< 31"), zx="days_past_due < 31"),
    dict(reason="stage", scope=FIELD_LEGAL,
         cel="a.days_past_due <= 90", re="days_past_due <= 90",
         cedar="context.days_past_due <= 90", zen=("days_past_due", "<= 90"), zx="days_past_due <= 90"),
    dict(reason="balance", scope=FIELD_LEGAL,
         cel="a.balance < 5000.0", re="balance < 5000",
         cedar="context.balance_cents < 500000", zen=("balance", "< 5000"), zx="balance < 5000"),
    dict(reason="deceased", scope=ALL,
         cel='"deceased" in a.flags', re="'deceased' in flags",
         cedar='context.flags.contains("deceased")', zen=("flags", "'deceased' in $"), zx="'deceased' in flags"),
    dict(reason="bankrupt", scope=ALL,
         cel='"bankrupt" in a.flags', re="'bankrupt' in flags",
         cedar='context.flags.contains("bankrupt")', zen=("flags", "'bankrupt' in $"), zx="'bankrupt' in flags"),
    dict(reason="cease_and_desist", scope=ALL,
         cel='"cease_and_desist" in a.flags', re="'cease_and_desist' in flags",
         cedar='context.flags.contains("cease_and_desist")', zen=("flags", "'cease_and_desist' in $"), zx="'cease_and_desist' in flags"),
    dict(reason="disputed", scope=("sms", "app_push", "agent_call", "field_visit", "legal"),
         cel='"disputed" in a.flags', re="'disputed' in flags",
         cedar='context.flags.contains("disputed")', zen=("flags", "'disputed' in $"), zx="'disputed' in flags"),
    dict(reason="quiet_hours", scope=CALL,
         cel="a.local_hour < 8 || a.local_hour >= 21", re="local_hour < 8 or local_hour >= 21",
         cedar="context.local_hour < 8 || context.local_hour >= 21", zen=("local_hour", "< 8, >= 21"), zx="local_hour < 8 or local_hour >= 21"),
    dict(reason="call_cap", scope=CALL,
         cel="a.calls_last_7d >= 7", re="calls_last_7d >= 7",
         cedar="context.calls_last_7d >= 7", zen=("calls_last_7d", ">= 7"), zx="calls_last_7d >= 7"),
    dict(reason="recent_conversation", scope=CALL,
         cel="type(a.days_since_conversation) == int && a.days_since_conversation < 7",
         re="days_since_conversation != null and days_since_conversation < 7",
         cedar="context has days_since_conversation && context.days_since_conversation < 7",
         zen=("days_since_conversation", "$ != null and $ < 7"),
         zx="days_since_conversation != null and days_since_conversation < 7"),
]


# ----------------------------------------------------------------- CEL
def cel_stage() -> str:
    return ('a.days_past_due < 1 ? "current" : a.days_past_due <= 30 ? "M0" : '
            'a.days_past_due <= 60 ? "M1" : a.days_past_due <= 90 ? "M2" : "M3plus"')


def cel_channel_reasons(ch: str) -> str:
    terms = [f'({r["cel"]} ? ["{r["reason"]}"] : [])' for r in RULES if ch in r["scope"]]
    return " +\n".join(terms)


def cel_channel_allowed(ch: str) -> str:
    return "!(" + " ||\n  ".join(f"({r['cel']})" for r in RULES if ch in r["scope"]) + ")"


def cel_single_program() -> str:
    body = ",\n    ".join(f'"{ch}": ' + cel_channel_reasons(ch).replace("\n", "\n      ") for ch in CHANNELS)
    return '{\n  "stage": ' + cel_stage() + ',\n  "reasons": {\n    ' + body + "\n  }\n}"


def build_cel() -> dict:
    return {
        "variable": "a",
        "stage": cel_stage(),
        "channel_reasons": {ch: cel_channel_reasons(ch) for ch in CHANNELS},
        "channel_allowed": {ch: cel_channel_allowed(ch) for ch in CHANNELS},
        "single_program": cel_single_program(),
    }


# ----------------------------------------------------------- rule-engine
def build_rule_engine() -> dict:
    stage = ("days_past_due < 1 ? 'current' : (days_past_due <= 30 ? 'M0' : "
             "(days_past_due <= 60 ? 'M1' : (days_past_due <= 90 ? 'M2' : 'M3plus')))")
    return {
        "stage": stage,
        "rules": [{"reason": r["reason"], "channels": list(r["scope"]), "when": r["re"]} for r in RULES],
    }


# ----------------------------------------------------------------- Cedar
def _cedar_on_entity(cond: str) -> str:
    # account facts live on the resource entity; only the debtor's local hour stays in context
    cond = cond.replace("context has ", "resource has ")
    return re.sub(r"context\.(?!local_hour)", "resource.", cond)


def build_cedar(entity_mode: bool = False) -> str:
    def scope(chs):
        if tuple(chs) == ALL:
            return "action"
        if len(chs) == 1:
            return f'action == Action::"{chs[0]}"'
        return "action in [" + ", ".join(f'Action::"{c}"' for c in chs) + "]"

    where = ("Account facts are attributes of the resource entity; the debtor's local hour is request context"
             if entity_mode else "Account facts travel in the request context")
    lines = [
        "// Contact-channel policy for debt collection.",
        "// Principal: Collector::\"engine\"; action: Action::\"<channel>\"; resource: Account::\"<id>\".",
        f"// {where} (balance in cents: Cedar has no floats).",
        "// Default-permit every channel, then forbid with one annotated rule per block reason,",
        "// so a Deny's diagnostics.reasons name every rule that blocked it.",
        "",
        '@id("base_permit")',
        "permit(principal, action, resource);",
        "",
    ]
    for r in RULES:
        lines.append(f'@id("{r["reason"]}")')
        lines.append(f"forbid(principal, {scope(r['scope'])}, resource)")
        cond = _cedar_on_entity(r["cedar"]) if entity_mode else r["cedar"]
        lines.append(f"when {{ {cond} }};")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------- zen
def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "peers-bench/" + name))


def build_zen() -> dict:
    inp = {"id": _uid("input"), "type": "inputNode", "name": "account",
           "position": {"x": 0, "y": 100}, "content": {"schema": ""}}

    # Stage: first-hit decision table on days_past_due
    st_in = _uid("stage/in/dpd")
    st_out = _uid("stage/out/stage")
    stage_tbl = {
        "id": _uid("stage"), "type": "decisionTableNode", "name": "stage",
        "position": {"x": 250, "y": 100},
        "content": {
            "hitPolicy": "first", "passThrough": True, "inputField": None, "outputPath": None,
            "executionMode": "single",
            "inputs": [{"id": st_in, "name": "Days past due", "field": "days_past_due"}],
            "outputs": [{"id": st_out, "name": "Stage", "field": "stage"}],
            "rules": [{"_id": _uid(f"stage/r/{s}"), "_description": s, st_in: cond, st_out: json.dumps(s)}
                      for s, cond in STAGES],
        },
    }

    # Contact blocks: collect-hit decision table, one row per block rule
    fields = ["days_past_due", "balance", "flags", "local_hour", "calls_last_7d", "days_since_conversation"]
    in_ids = {f: _uid(f"blocks/in/{f}") for f in fields}
    out_ch, out_reason = _uid("blocks/out/channels"), _uid("blocks/out/reason")
    rows = []
    for i, r in enumerate(RULES):
        row = {"_id": _uid(f"blocks/r/{i}"), "_description": r["reason"]}
        for f in fields:
            row[in_ids[f]] = ""
        f, cell = r["zen"]
        row[in_ids[f]] = cell
        row[out_ch] = json.dumps(list(r["scope"]))
        row[out_reason] = json.dumps(r["reason"])
        rows.append(row)
    blocks_tbl = {
        "id": _uid("blocks"), "type": "decisionTableNode", "name": "contact_blocks",
        "position": {"x": 500, "y": 100},
        "content": {
            "hitPolicy": "collect", "passThrough": True, "inputField": None, "outputPath": "blocks",
            "executionMode": "single",
            "inputs": [{"id": in_ids[f], "name": f, "field": f} for f in fields],
            "outputs": [{"id": out_ch, "name": "Channels", "field": "channels"},
                        {"id": out_reason, "name": "Reason", "field": "reason"}],
            "rules": rows,
        },
    }

    # Shape the result: stage, reasons per channel, allowed list
    exprs = [{"id": _uid("decision/stage"), "key": "stage", "value": "stage"}]
    for ch in CHANNELS:
        exprs.append({"id": _uid(f"decision/reasons/{ch}"), "key": f"reasons.{ch}",
                      "value": f"map(filter(blocks, '{ch}' in #.channels), #.reason)"})
    exprs.append({"id": _uid("decision/allowed"), "key": "allowed",
                  "value": "filter(" + json.dumps(list(CHANNELS)).replace('"', "'")
                           + ", len($.reasons[#]) == 0)"})
    decision = {
        "id": _uid("decision"), "type": "expressionNode", "name": "decision",
        "position": {"x": 750, "y": 100},
        "content": {"expressions": exprs, "passThrough": False, "inputField": None,
                    "outputPath": None, "executionMode": "single"},
    }
    out = {"id": _uid("output"), "type": "outputNode", "name": "decision_out",
           "position": {"x": 1000, "y": 100}, "content": {"schema": ""}}
    nodes = [inp, stage_tbl, blocks_tbl, decision, out]
    edges = [{"id": _uid(f"edge/{a['id']}/{b['id']}"), "type": "edge", "sourceId": a["id"], "targetId": b["id"]}
             for a, b in zip(nodes, nodes[1:])]
    return {"contentType": "application/vnd.gorules.decision", "nodes": nodes, "edges": edges}


def build_zen_expression() -> str:
    """The same decision as ONE zen expression (no JDM graph), for compile_expression()."""
    stage = ("days_past_due < 1 ? 'current' : days_past_due <= 30 ? 'M0' : "
             "days_past_due <= 60 ? 'M1' : days_past_due <= 90 ? 'M2' : 'M3plus'")
    chans = []
    for ch in CHANNELS:
        pairs = ", ".join(f"[{r['zx']}, '{r['reason']}']" for r in RULES if ch in r["scope"])
        chans.append(f"    {ch}: map(filter([{pairs}], #[0]), #[1])")
    return "{\n  stage: " + stage + ",\n  reasons: {\n" + ",\n".join(chans) + "\n  }\n}\n"


def main(out: str | None = None) -> str:
    global OUT
    OUT = out or OUT
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "zen_contact_policy.json"), "w") as f:
        json.dump(build_zen(), f, indent=2)
    with open(os.path.join(OUT, "zen_contact_expression.zen"), "w") as f:
        f.write(build_zen_expression())
    with open(os.path.join(OUT, "cedar_contact_policy.cedar"), "w") as f:
        f.write(build_cedar())
    with open(os.path.join(OUT, "cedar_contact_policy_entities.cedar"), "w") as f:
        f.write(build_cedar(entity_mode=True))
    with open(os.path.join(OUT, "cel_contact_policy.json"), "w") as f:
        json.dump(build_cel(), f, indent=2)
    with open(os.path.join(OUT, "rule_engine_rules.json"), "w") as f:
        json.dump(build_rule_engine(), f, indent=2)
    return OUT


if __name__ == "__main__":
    import sys

    print("wrote", main(sys.argv[1] if len(sys.argv) > 1 else None))
