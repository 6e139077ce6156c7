# ruff: noqa: E501, RUF059  (the peers' adapters, kept as they were)
"""Peer-engine adapters for bench_engines.py.

Copied from ../shared/benchmarks/peers/engines.py. Every adapter (load, run, timed
regions, the engine calls and their glue) is unchanged, so the figures stay comparable with
the peers' results.md. What changed:

  * the comparison key: `canon()` maps the peers' reason names to our `Blocked.kind`s
    (workload.canonical_from_reasons) so that every engine, ours included, is compared on
    stage + allowed set + per-channel reason kinds;
  * the policy artifacts are read from the directory gen_policies.main() wrote (POL);
  * a peer package that is not installed makes load() raise ImportError, reported as
    "not installed" by bench_engines.py, never a failure;
  * `quick_timed_n` / `quick_verify_n` bound the slow variants under --quick.

Each adapter:
  load()          parse/compile the engine's policy artifact (timed as load/compile)
  run(accounts)   evaluate every account, return a list of the engine's raw results (timed)
  canon(raw)      convert one raw result to the engine-neutral comparison key (NOT timed)

Everything an application needs to get a usable Python answer (stage, allowed channels,
reasons) out of the engine is inside run(): input conversion, the engine call(s), and
output glue. Canonicalisation for the equality check is outside the timed region.
"""
from __future__ import annotations

import json
import os
from importlib import metadata

import hand_written as plain_python
from workload import CHANNELS, canonical_allowed
from workload import canonical_from_reasons as canonical

HERE = os.path.dirname(os.path.abspath(__file__))
POL = os.path.join(os.path.dirname(HERE), ".data", "peer_policies")  # set by bench_engines.py


def _ver(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "n/a"


def _read(name: str) -> str:
    with open(os.path.join(POL, name)) as f:
        return f.read()


def _stage_py(dpd: int) -> str:
    # Used only by engines that cannot return a non-boolean value (Cedar).
    if dpd < 1:
        return "current"
    if dpd <= 30:
        return "M0"
    if dpd <= 60:
        return "M1"
    if dpd <= 90:
        return "M2"
    return "M3plus"


class Adapter:
    name = "?"
    engine_name = "?"
    dist = None
    module = None          # the import that needs the peer package (None: stdlib only)
    main = False           # the engine's idiomatic main form (the peers' **main** rows)
    input = "peer"         # "peer": the peers' records; "raw": account + history + now
    kind = "full"          # "full": stage+allowed+reasons; "allowed": stage+allowed only
    timed_n = None         # None = full population; else first N accounts in timed runs
    verify_n = None        # None = verify on full population; else first N accounts
    quick_timed_n = None   # the same two bounds under --quick
    quick_verify_n = None
    multi_thread = False   # True = engine uses worker threads (excluded from single-thread ranking)
    notes = ""

    @property
    def version(self):
        return _ver(self.dist) if self.dist else "-"

    def load(self):
        pass

    def run(self, accounts):
        raise NotImplementedError

    def canon(self, raw):
        raise NotImplementedError


# ---------------------------------------------------------------- plain Python
class PlainPython(Adapter):
    name = "plain Python (hand-written fn, with reasons)"
    engine_name = "hand-written Python"
    main = True
    notes = "1 function call/account; builds all reason lists"

    def load(self):
        self.fn = plain_python.decide

    def run(self, accounts):
        fn = self.fn
        return [fn(a) for a in accounts]

    def canon(self, raw):
        stage, allowed, reasons = raw
        c = canonical(stage, reasons)
        assert c[1] == frozenset(allowed)
        return c


class PlainPythonAllowed(Adapter):
    name = "plain Python (allowed-only, short-circuit)"
    engine_name = "hand-written Python"
    kind = "allowed"
    notes = "no reasons; early exits"

    def load(self):
        self.fn = plain_python.decide_allowed

    def run(self, accounts):
        fn = self.fn
        return [fn(a) for a in accounts]

    def canon(self, raw):
        return canonical_allowed(raw[0], raw[1])


# ------------------------------------------------------------------------ zen
class Zen(Adapter):
    name = "zen-engine JDM graph via ZenEngine.evaluate(key)"
    engine_name = "zen-engine"
    module = "zen"
    main = True
    dist = "zen-engine"
    notes = ("1 evaluate/account; graph = stage table (first-hit) -> 11-row collect table -> "
             "expression node shaping {stage, reasons, allowed}; static loader")
    KEY = "contact_policy"

    def load(self):
        import zen
        content = json.loads(_read("zen_contact_policy.json"))
        self.engine = zen.ZenEngine({"loader": {"type": "static", "content": {self.KEY: content}}})
        # the engine loads + compiles lazily on first use: include that in load time
        self.engine.evaluate(self.KEY, {"days_past_due": 0, "balance": 0.0, "flags": [], "local_hour": 12,
                                        "calls_last_7d": 0, "days_since_conversation": None})

    def run(self, accounts):
        ev, key = self.engine.evaluate, self.KEY
        return [ev(key, a)["result"] for a in accounts]

    def canon(self, raw):
        c = canonical(raw["stage"], raw["reasons"])
        assert c[1] == frozenset(raw["allowed"]), raw
        return c


class ZenDecisionObj(Zen):
    name = "zen-engine JDM graph via ZenDecision.evaluate"
    main = False
    quick_timed_n = 2_000
    timed_n = 20_000
    notes = ("same graph via create_decision(); the 2.x binding builds a new tokio Runtime per "
             "evaluate() call (bindings/python/src/decision.rs), hence the gap")

    def load(self):
        import zen
        self.engine = zen.ZenEngine()
        self.decision = self.engine.create_decision(_read("zen_contact_policy.json"))
        self.decision.evaluate({"days_past_due": 0, "balance": 0.0, "flags": [], "local_hour": 12,
                                "calls_last_7d": 0, "days_since_conversation": None})

    def run(self, accounts):
        ev = self.decision.evaluate
        return [ev(a)["result"] for a in accounts]


class ZenBatch(Zen):
    name = "zen-engine JDM graph via evaluate_batch (1,000/call)"
    main = False
    multi_thread = True
    notes = "NOT single-threaded: batch fans out to the binding's worker-thread pool"
    CHUNK = 1000

    def run(self, accounts):
        eb, key, out = self.engine.evaluate_batch, self.KEY, []
        for i in range(0, len(accounts), self.CHUNK):
            res = eb([{"key": key, "context": a} for a in accounts[i:i + self.CHUNK]])
            out.extend(r["data"]["result"] for r in res)
        return out


class ZenExpression(Adapter):
    name = "zen-engine single compiled expression (no JDM graph)"
    engine_name = "zen-engine"
    module = "zen"
    dist = "zen-engine"
    notes = "zen.compile_expression once; 1 Expression.evaluate(dict)/account returning {stage, reasons}"

    def load(self):
        import zen
        self.expr = zen.compile_expression(_read("zen_contact_expression.zen"))

    def run(self, accounts):
        ev = self.expr.evaluate
        out = []
        for a in accounts:
            r = ev(a)
            reasons = r["reasons"]
            out.append((r["stage"], [ch for ch in CHANNELS if not reasons[ch]], reasons))
        return out

    def canon(self, raw):
        return canonical(raw[0], raw[2])


# ---------------------------------------------------------------------- Cedar
_P = {"type": "Collector", "id": "engine"}
_ACT = {ch: {"type": "Action", "id": ch} for ch in CHANNELS}


def _cedar_context(a: dict) -> dict:
    ctx = {
        "days_past_due": a["days_past_due"],
        "balance_cents": round(a["balance"] * 100),      # Cedar has no float type
        "risk_score_bp": round(a["risk_score"] * 10000),
        "flags": a["flags"],
        "local_hour": a["local_hour"],
        "calls_last_7d": a["calls_last_7d"],
    }
    if a["days_since_conversation"] is not None:         # Cedar has no null: omit, test with `has`
        ctx["days_since_conversation"] = a["days_since_conversation"]
    return ctx


def _cedar_reasons(res):
    if res.allowed:
        return []
    return list(res.diagnostics.id_annotations_by_reason.values())


class CedarBatch(Adapter):
    name = "cedarpy is_authorized_batch (1,000 accts = 6,000 req/call)"
    engine_name = "cedarpy"
    module = "cedarpy"
    main = True
    quick_timed_n = 2_000
    dist = "cedarpy"
    timed_n = 20_000
    CHUNK = 1000
    notes = ("6 authz requests/account (one per channel); context JSON built once/account; "
             "stage computed in Python (Cedar returns only Allow/Deny)")

    def load(self):
        import cedarpy
        self.cedarpy = cedarpy
        self.ps = cedarpy.PolicySet.from_str(_read("cedar_contact_policy.cedar"))
        self.ents = cedarpy.Entities.from_json_str("[]")

    def run(self, accounts):
        batch = self.cedarpy.is_authorized_batch
        ps, ents, out = self.ps, self.ents, []
        for i in range(0, len(accounts), self.CHUNK):
            chunk = accounts[i:i + self.CHUNK]
            reqs = []
            for a in chunk:
                ctx = json.dumps(_cedar_context(a))
                res_ = {"type": "Account", "id": a["id"]}
                for ch in CHANNELS:
                    reqs.append({"principal": _P, "action": _ACT[ch], "resource": res_, "context": ctx})
            results = batch(reqs, ps, ents)
            k = 0
            for a in chunk:
                reasons = {}
                allowed = []
                for ch in CHANNELS:
                    r = results[k]
                    k += 1
                    rs = _cedar_reasons(r)
                    reasons[ch] = rs
                    if not rs:
                        allowed.append(ch)
                out.append((_stage_py(a["days_past_due"]), allowed, reasons))
        return out

    def canon(self, raw):
        stage, allowed, reasons = raw
        c = canonical(stage, reasons)
        assert c[1] == frozenset(allowed)
        return c


class CedarPerPair(CedarBatch):
    name = "cedarpy is_authorized (1 call per account x channel)"
    main = False
    quick_timed_n = 1_000
    timed_n = 10_000
    notes = "6 is_authorized calls/account; context JSON built once/account; stage in Python"

    def run(self, accounts):
        isa = self.cedarpy.is_authorized
        ps, ents, out = self.ps, self.ents, []
        for a in accounts:
            ctx = json.dumps(_cedar_context(a))
            res_ = {"type": "Account", "id": a["id"]}
            reasons, allowed = {}, []
            for ch in CHANNELS:
                r = isa({"principal": _P, "action": _ACT[ch], "resource": res_, "context": ctx}, ps, ents)
                rs = _cedar_reasons(r)
                reasons[ch] = rs
                if not rs:
                    allowed.append(ch)
            out.append((_stage_py(a["days_past_due"]), allowed, reasons))
        return out


class CedarEntities(CedarBatch):
    name = "cedarpy batch, account as resource entity (1,000 accts/call)"
    main = False
    quick_timed_n = 2_000
    timed_n = 20_000
    notes = ("account facts as Account entity attrs (parsed once per account, not per request), "
             "local_hour in context; 6 req/account; stage in Python")

    def load(self):
        import cedarpy
        self.cedarpy = cedarpy
        self.ps = cedarpy.PolicySet.from_str(_read("cedar_contact_policy_entities.cedar"))

    def run(self, accounts):
        cp = self.cedarpy
        batch = cp.is_authorized_batch
        ps, out = self.ps, []
        for i in range(0, len(accounts), self.CHUNK):
            chunk = accounts[i:i + self.CHUNK]
            ents_json, reqs = [], []
            for a in chunk:
                attrs = _cedar_context(a)
                hour = attrs.pop("local_hour")
                uid = {"type": "Account", "id": a["id"]}
                ents_json.append({"uid": uid, "attrs": attrs, "parents": []})
                ctx = {"local_hour": hour}
                for ch in CHANNELS:
                    reqs.append({"principal": _P, "action": _ACT[ch], "resource": uid, "context": ctx})
            ents = cp.Entities.from_json_str(json.dumps(ents_json))
            results = batch(reqs, ps, ents)
            k = 0
            for a in chunk:
                reasons, allowed = {}, []
                for ch in CHANNELS:
                    rs = _cedar_reasons(results[k])
                    k += 1
                    reasons[ch] = rs
                    if not rs:
                        allowed.append(ch)
                out.append((_stage_py(a["days_past_due"]), allowed, reasons))
        return out


# ------------------------------------------------------------ CEL (Rust, cel)
class CelRust(Adapter):
    name = "common-expression-language (Rust CEL): 1 stage + 6 channel programs"
    engine_name = "common-expression-language"
    module = "cel"
    main = True
    dist = "common-expression-language"
    notes = "7 Program.execute/account sharing one cel.Context built per account; each channel program returns its reason list"

    def load(self):
        import cel
        self.cel = cel
        spec = json.loads(_read("cel_contact_policy.json"))
        self.stage = cel.compile(spec["stage"])
        self.progs = [(ch, cel.compile(spec["channel_reasons"][ch])) for ch in CHANNELS]

    def run(self, accounts):
        Context = self.cel.Context
        stage_exec = self.stage.execute
        progs = [(ch, p.execute) for ch, p in self.progs]
        out = []
        for a in accounts:
            ctx = Context({"a": a})
            reasons = {ch: ex(ctx) for ch, ex in progs}
            out.append((stage_exec(ctx), [ch for ch in CHANNELS if not reasons[ch]], reasons))
        return out

    def canon(self, raw):
        stage, allowed, reasons = raw
        return canonical(stage, reasons)


class CelRustSingle(CelRust):
    name = "common-expression-language: 1 program -> {stage, reasons} map"
    main = False
    notes = "1 execute(dict)/account; whole decision as one CEL map expression"

    def load(self):
        import cel
        spec = json.loads(_read("cel_contact_policy.json"))
        self.prog = cel.compile(spec["single_program"])

    def run(self, accounts):
        ex = self.prog.execute
        out = []
        for a in accounts:
            r = ex({"a": a})
            reasons = r["reasons"]
            out.append((r["stage"], [ch for ch in CHANNELS if not reasons[ch]], reasons))
        return out


class CelRustBool(CelRust):
    name = "common-expression-language: 6 boolean channel programs (allowed-only)"
    main = False
    kind = "allowed"
    notes = "7 execute/account, shared Context; no reasons"

    def load(self):
        import cel
        self.cel = cel
        spec = json.loads(_read("cel_contact_policy.json"))
        self.stage = cel.compile(spec["stage"])
        self.progs = [(ch, cel.compile(spec["channel_allowed"][ch])) for ch in CHANNELS]

    def run(self, accounts):
        Context = self.cel.Context
        stage_exec = self.stage.execute
        progs = [(ch, p.execute) for ch, p in self.progs]
        out = []
        for a in accounts:
            ctx = Context({"a": a})
            out.append((stage_exec(ctx), [ch for ch, ex in progs if ex(ctx)]))
        return out

    def canon(self, raw):
        return canonical_allowed(raw[0], raw[1])


# --------------------------------------------------- CEL (pure Python, celpy)
class CelPython(Adapter):
    name = "cel-python (celpy, CompiledRunner): 1 stage + 6 channel programs"
    engine_name = "cel-python"
    module = "celpy"
    main = True
    quick_timed_n = 500
    quick_verify_n = 1_000
    dist = "cel-python"
    timed_n = 5_000
    runner = "CompiledRunner"
    notes = "json_to_cel once/account + 7 evaluate/account"

    def load(self):
        import celpy
        self.celpy = celpy
        spec = json.loads(_read("cel_contact_policy.json"))
        env = celpy.Environment(runner_class=getattr(celpy, self.runner))
        self.stage = env.program(env.compile(spec["stage"]))
        self.progs = [(ch, env.program(env.compile(spec["channel_reasons"][ch]))) for ch in CHANNELS]

    def run(self, accounts):
        j2c = self.celpy.json_to_cel
        stage_ev = self.stage.evaluate
        progs = [(ch, p.evaluate) for ch, p in self.progs]
        out = []
        for a in accounts:
            act = {"a": j2c(a)}
            reasons = {ch: [str(x) for x in ev(act)] for ch, ev in progs}
            out.append((str(stage_ev(act)), [ch for ch in CHANNELS if not reasons[ch]], reasons))
        return out

    def canon(self, raw):
        stage, allowed, reasons = raw
        return canonical(stage, reasons)


class CelPythonInterp(CelPython):
    name = "cel-python (celpy, default InterpretedRunner)"
    main = False
    quick_timed_n = 100
    quick_verify_n = 200
    timed_n = 1_000
    verify_n = 2_000
    runner = "InterpretedRunner"


# ------------------------------------------------------------- rule-engine
class RuleEngine(Adapter):
    name = "rule-engine: 11 named block rules + stage rule"
    engine_name = "rule-engine"
    module = "rule_engine"
    main = True
    quick_timed_n = 2_000
    dist = "rule-engine"
    timed_n = 20_000
    notes = "12 Rule evaluations/account (each rule once, mapped to its channels)"

    def load(self):
        import rule_engine
        spec = json.loads(_read("rule_engine_rules.json"))
        self.stage = rule_engine.Rule(spec["stage"])
        self.rules = [(r["reason"], tuple(r["channels"]), rule_engine.Rule(r["when"])) for r in spec["rules"]]

    def run(self, accounts):
        stage_ev = self.stage.evaluate
        rules = [(reason, chs, rule.matches) for reason, chs, rule in self.rules]
        out = []
        for a in accounts:
            reasons = {ch: [] for ch in CHANNELS}
            for reason, chs, m in rules:
                if m(a):
                    for ch in chs:
                        reasons[ch].append(reason)
            out.append((stage_ev(a), [ch for ch in CHANNELS if not reasons[ch]], reasons))
        return out

    def canon(self, raw):
        stage, allowed, reasons = raw
        return canonical(stage, reasons)


class RuleEnginePerChannel(RuleEngine):
    name = "rule-engine: rules per channel (34 matches/account)"
    main = False
    quick_timed_n = 1_000
    timed_n = 10_000
    notes = "each channel evaluates its own rule list (shared predicates re-evaluated per channel)"

    def run(self, accounts):
        stage_ev = self.stage.evaluate
        per_ch = [(ch, [(reason, rule.matches) for reason, chs, rule in self.rules if ch in chs]) for ch in CHANNELS]
        out = []
        for a in accounts:
            reasons = {ch: [reason for reason, m in rs if m(a)] for ch, rs in per_ch}
            out.append((stage_ev(a), [ch for ch in CHANNELS if not reasons[ch]], reasons))
        return out


ALL_ADAPTERS = [
    PlainPython, PlainPythonAllowed,
    Zen, ZenDecisionObj, ZenExpression, ZenBatch,
    CedarBatch, CedarPerPair, CedarEntities,
    CelRust, CelRustSingle, CelRustBool,
    CelPython, CelPythonInterp,
    RuleEngine, RuleEnginePerChannel,
]
