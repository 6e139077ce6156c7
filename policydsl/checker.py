"""Names, types and the stage partition: from a parsed policy to a `Model`.

The checker merges a policy with what it includes, resolves every name,
type-checks every expression against the `account` schema and proves the
stages partition the stage field. It reports `Diagnostic`s with stable codes
(documented in docs/lints.md) and returns a `Model`: the resolved form
that the compiler and the reference tools consume, so no later stage ever
has to resolve a name again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from . import nodes as n
from . import suppress
from .calendars import known_country
from .errors import Diagnostic, source_lines
from .experiments import group_segments
from .experiments import problems as experiment_problems
from .formatter import canonical_rule
from .functions import FUNCTIONS
from .lints import lint
from .model import Model, all_files
from .suggest import did_you_mean, did_you_mean_aside
from .timeline import reads_time
from .values import NUMERIC, ValueProblem, default_value, reader_for, widest

# Stable diagnostic codes. Never renumber: users suppress and grep by code.
# The longest period a rule or aggregate may name: a century is longer than any retention or statute of
# limitations, and short enough that no date arithmetic with it can leave the calendar.
MAX_PERIOD_DAYS = 36_500

CODES = {
    "E001": "syntax error",
    "E002": "include cannot be read",
    "E101": "unknown field or segment",
    "E102": "unknown action or group",
    "E103": "unknown stage",
    "E104": "unknown function or wrong number of arguments",
    "E105": "type mismatch",
    "E106": "duplicate declaration",
    "E107": "stages leave a gap",
    "E108": "stages overlap",
    "E109": "stage field is not an int field",
    "E110": "policy has no `id : text` field",
    "E111": "default does not fit the field's type",
    "E112": "`action` used where no action is being judged",
    "E113": "time zone field missing or ambiguous",
    "E114": "condition is not a boolean",
    "E115": "not a member of the enumeration",
    "E116": "segment refers to a later segment",
    "E117": "condition on a window, limit, quiet period or include reads time",
    "E118": "outcome not declared",
    "E119": "experiment groups that do not fit",
    "W201": "action that no stage allows",
    "W202": "stage field values outside every stage",
    "W203": "forbid without `because`",
    "W301": "segment not used by any rule",
    "W302": "group declared and never named",
    "W303": "allow that can never take effect",
    "W304": "condition constant given types and stage ranges",
    "W305": "window, limit or quiet period on actions no stage allows",
    "W306": "duplicate rule",
    "W307": "window wider than the baseline's",
    "W308": "part of an included policy that does not carry over or reaches nothing",
    "W309": "windows for one action never open together",
    "W310": "suppression that matches nothing or cannot apply",
}


def check(policy: n.PolicyFile) -> tuple[Model, list[Diagnostic]]:
    """Check a parsed policy (with its includes loaded). Diagnostics are
    sorted by file and position so output is stable."""
    checker = _Checker(policy)
    checker.run()
    clean = not any(d.severity == "error" for d in checker.diagnostics)
    if clean:
        checker.diagnostics.extend(lint(checker.model))
    shown, checker.model.suppressed = suppress.apply(policy, checker.diagnostics, CODES, report_unused=clean)
    diagnostics = sorted(shown, key=lambda d: (d.span.file, d.span.line, d.span.column, d.code))
    return checker.model, diagnostics


class _Checker:
    def __init__(self, policy: n.PolicyFile) -> None:
        self.model = Model(policy)
        self.diagnostics: list[Diagnostic] = []
        # outcomes named by history aggregates, with where: for Model.outcomes and the declared vocabulary
        self.history_outcomes: list[tuple[str, n.Span]] = []

    def report(self, code: str, message: str, span: n.Span, severity: str | None = None) -> None:
        level = severity or ("warning" if code.startswith("W") else "error")
        self.diagnostics.append(Diagnostic(code, level, message, span))

    # ------------------------------------------------------------ structure
    def run(self) -> None:
        policy = self.model.policy
        for source_file in all_files(policy):
            self.model.sources[source_file.path] = source_file.source
        baselines = list(_baselines(policy))
        for baseline, mapping in baselines:
            self.declare(baseline, mapping, own=False)
        self.declare(policy, {}, own=True)
        self.check_mappings(policy)
        self.check_schema()
        self.check_stages(policy)
        for baseline, mapping in baselines:
            self.check_segments(baseline, mapping)
        self.check_segments(policy, {})
        mappings = {baseline.path: mapping for baseline, mapping in baselines}
        self.check_include_conditions(policy, mappings)
        arrivals = _arrivals(policy, mappings)
        for baseline, mapping in baselines:
            first, *others = arrivals[baseline.path]
            for rule in baseline.rules:
                if not isinstance(rule, n.Allow):
                    mapped_in = {name for targets in mapping.values() for name in targets}
                    mapped = _mapped(rule, mapping)
                    self.add_restriction(mapped, reported=mapped_in, conditions=first)
                    self.model.restrictions.extend(replace(mapped, applies=(*conditions, *mapped.applies))
                                                   for conditions in others)
        declared_stages = {stage.name for stages in policy.stages for stage in stages.ranges}
        for block in policy.stage_blocks:
            if block.name not in declared_stages:
                self.report("E103", f"unknown stage {block.name!r}{did_you_mean(block.name, declared_stages)}",
                            block.span)
            for rule in block.rules:
                self.add_rule(rule)
        for rule in policy.rules:
            self.add_rule(rule)
        self.model.allows.sort(key=lambda allow: allow.stage is None)
        self.check_outcomes([*(baseline for baseline, _ in baselines), policy])
        self.check_unallowed_actions()
        for baseline, _ in baselines:
            self.check_dropped(baseline, _include_of(policy, baseline))
        self.assign_ids([baseline for baseline, _ in baselines] + [policy])

    def assign_ids(self, files: list[n.PolicyFile]) -> None:
        """Every citable node's id. A rule's is its name, else
        `<kind>-<8 hex>`: a digest of its stage and its canonical text, so it
        survives moved lines, comments and `policy fmt`; identical rules get
        `-2`, `-3`, ... in file order, baselines first (so a baseline's ids
        are the same included or not). Stage ranges are `stage-<name>`, the
        stages block `no-stage`, the header `no-allow`, segments
        `segment-<name>`; none of these can be a name, which has no `-`."""
        ids = self.model.ids
        root = self.model.policy
        ids[root.header.span] = "no-allow"
        for stages in root.stages:
            ids[stages.span] = "no-stage"
            ids.update((stage.span, f"stage-{stage.name}") for stage in stages.ranges)
        ids.update((segment.span, f"segment-{segment.name}") for segment in self.model.segments)
        named: dict[str, n.Span] = {}
        copies: Counter[str] = Counter()  # a base never ends in `-N`, so counting copies is enough
        for source in files:
            rules = [*source.rules, *(rule for block in source.stage_blocks for rule in block.rules)]
            for rule in sorted(rules, key=lambda rule: rule.span):
                if rule.name is not None:
                    if rule.name in named:
                        self.report("E106", f"rule name {rule.name!r} is already the name of the rule at "
                                    f"{named[rule.name].location}", rule.span)
                    named.setdefault(rule.name, rule.span)
                    ids[rule.span] = rule.name
                    continue
                text = f"{rule.stage or ''}\n{canonical_rule(rule, source)}"
                base = f"{type(rule).__name__.lower()}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
                copies[base] += 1
                ids[rule.span] = base if copies[base] == 1 else f"{base}-{copies[base]}"

    def declare(self, source: n.PolicyFile, mapping: dict[str, tuple[str, ...]], own: bool) -> None:
        """Fields, actions, groups and events of one file into the model.
        A baseline's names that the includer maps are not imported; a group
        declared in both gets the union of its members."""
        model = self.model
        for fld in source.fields:
            known = model.fields.get(fld.name)
            if known is None:
                model.fields[fld.name] = fld
            elif str(known.type) != str(fld.type):
                self.report("E106", f"field {fld.name!r} is declared as {known.type} in "
                            f"{known.span.location} and as {fld.type} here", fld.span)
            elif own and known.span.file == fld.span.file:
                self.report("E106", f"field {fld.name!r} declared twice (first at {known.span.location})",
                            fld.span)
            elif own and fld.default is not None and _default_text(known) != _default_text(fld):
                self.report("E106", f"field {fld.name!r} comes from {known.span.file}; an including policy "
                            "cannot change its default (that could loosen the baseline's rules)", fld.span)
            elif own and fld.default is None:
                model.fields[fld.name] = fld  # requiring a value only tightens the baseline
        plain_here: set[str] = set()
        declared = set(model.actions)  # membership in constant time: a list scan made 100,000 actions take minutes
        group_members = {group: set(members) for group, members in model.groups.items()}
        for line in source.actions:
            for member in line.members:
                if mapping.get(member, (member,)) != (member,):
                    continue  # mapped onto the includer's actions
                if member in model.groups:
                    self.report("E106", f"{member!r} is already a group", line.span)
                elif member not in declared:
                    model.actions.append(member)
                    declared.add(member)
                elif own and line.group is None and member in plain_here:
                    self.report("E106", f"action {member!r} declared twice", line.span)
                if line.group is None:
                    plain_here.add(member)
            if line.group is not None and mapping.get(line.group, (line.group,)) == (line.group,):
                if line.group in declared:
                    self.report("E106", f"{line.group!r} is already an action", line.span)
                    continue
                members = model.groups.setdefault(line.group, [])
                present = group_members.setdefault(line.group, set())
                for resolved in _apply_mapping(line.members, mapping):
                    if resolved not in present:
                        members.append(resolved)
                        present.add(resolved)
        for events in source.events:
            for name in events.names:
                if name in declared:
                    self.report("E106", f"{name!r} is declared both as an action and as an event", events.span)
                elif name not in model.events:
                    model.events.append(name)

    def check_outcomes(self, files: list[n.PolicyFile]) -> None:
        """Merge the `outcomes` declarations of the policy and its baselines
        (a union: an includer may add outcomes, never take one away, or the
        baseline's own rules would stop checking) and hold every rule to it.
        One declaration anywhere closes the vocabulary for every rule, the
        baselines' included, so a spelling such as "Conversation" that no
        history will ever carry is caught here, not in production."""
        model = self.model
        declared: dict[str, n.Span] = {}
        for source_file in files:
            here: set[str] = set()
            for block in source_file.outcomes:
                model.outcomes_declared = True
                for name in block.names:
                    if name in here:
                        self.report("E106", f"outcome {name!r} declared twice", block.span)
                    here.add(name)
                    declared.setdefault(name, block.span)
        named = dict.fromkeys([*(outcome for rule in model.restrictions for outcome in _outcomes_of(rule)),
                               *(outcome for outcome, _ in self.history_outcomes)])
        model.outcomes = list(declared) + [outcome for outcome in named if outcome not in declared]
        if not model.outcomes_declared:
            return
        where = ", ".join(dict.fromkeys(span.location for span in declared.values())) or "it is empty"
        written = [(outcome, self.outcome_span(rule, outcome))
                   for rule in model.restrictions for outcome in dict.fromkeys(_outcomes_of(rule))]
        for outcome, span in [*written, *self.history_outcomes]:
            if outcome not in declared:
                self.report("E118", f"outcome {outcome!r} is not declared in `outcomes` ({where})"
                            f"{did_you_mean(outcome, declared)}", span)

    def outcome_span(self, rule: n.Restriction, outcome: str) -> n.Span:
        """Where `"outcome"` is written inside `rule` (the rule when it cannot
        be found, e.g. written with escapes)."""
        lines = source_lines(self.model.sources.get(rule.span.file, ""))
        quoted = f'"{outcome}"'
        for number in range(rule.span.line, min(rule.span.end_line, len(lines)) + 1):
            text = lines[number - 1]
            start = text.find(quoted, rule.span.column - 1 if number == rule.span.line else 0)
            if start >= 0:
                return n.Span(rule.span.file, number, start + 1, number, start + 1 + len(quoted))
        return rule.span

    def check_mappings(self, policy: n.PolicyFile, seen: set[str] | None = None) -> None:
        """`with { name = ours }`: the left names must be the baseline's, the
        right ones the includer's; a typo would silently leave a baseline
        rule reaching nothing. Each file once (`seen`), however many
        includes reach it."""
        seen = set() if seen is None else seen
        if policy.path in seen:
            return
        seen.add(policy.path)
        for include, included in zip(policy.includes, policy.included, strict=True):
            theirs = _declared_names(included)
            for mapping in include.mappings:
                if mapping.name not in theirs:
                    self.report("E102", f"{include.path} declares no action, group or event "
                                f"{mapping.name!r}{did_you_mean(mapping.name, theirs)}", mapping.span)
                ours = {*self.model.actions, *self.model.groups, *self.model.events}
                for target in mapping.targets:
                    if target not in ours:
                        self.report("E102", f"unknown action or group {target!r}{did_you_mean(target, ours)}",
                                    mapping.span)
            self.check_mappings(included, seen)

    def check_dropped(self, baseline: n.PolicyFile, include: n.Include) -> None:
        """What an include does not carry over, said at the include."""
        for block in baseline.stage_blocks:
            self.report("W308", f"stage block {block.name!r} of {baseline.path} is not carried over "
                        "(only its top-level forbid, window, limit and quiet rules are)", include.span)
        root = self.model.policy
        reached = {member for line in root.actions for member in line.members} | _names_in_rules(root)
        for allow in self.model.allows:
            if allow.span.file == root.path:
                reached.update(self.model.expand(allow.targets))
        restricted = {action for rule in baseline.rules if not isinstance(rule, (n.Allow, n.Forbid))
                      for action in self.model.expand(rule.targets)}  # once, not once per action
        actions = set(self.model.actions)
        for line in baseline.actions:
            for member in line.members:
                if member in actions and member in restricted and member not in reached:
                    self.report("W308", f"{member!r} of {baseline.path} is restricted there but maps to none of "
                                f"this policy's actions: map it with `with {{ {member} = ... }}`",
                                include.span)

    def check_schema(self) -> None:
        model = self.model
        root = model.policy
        ident = model.fields.get("id")
        if ident is None or ident.type.kind != "text":
            self.report("E110", "the account block needs an `id : text` field (decisions are keyed by it)",
                        ident.span if ident else root.header.span)
        zones = [f for f in model.fields.values() if f.type.kind == "zone"]
        if len(zones) > 1:
            self.report("E113", "more than one zone field: " + ", ".join(f.name for f in zones)
                        + "; local time must come from exactly one", zones[1].span)
        model.zone_field = zones[0].name if zones else None
        for fld in model.fields.values():
            if fld.default is not None:
                self.check_default(fld)

    def check_default(self, fld: n.Field) -> None:
        assert fld.default is not None
        try:
            reader_for(fld.type.kind, fld.type.element, fld.type.members)(default_value(fld.default))
        except ValueProblem as problem:
            self.report("E111", f"default of {fld.name!r} does not fit {fld.type}: expected {problem}",
                        fld.default.span)

    def check_stages(self, policy: n.PolicyFile) -> None:
        if not policy.stages:
            return
        for extra in policy.stages[1:]:
            self.report("E106", "a policy has one `stages` block", extra.span)
        stages = policy.stages[0]
        fld = self.model.fields.get(stages.field)
        if fld is None:
            self.report("E101", f"unknown field {stages.field!r}{did_you_mean(stages.field, self.model.fields)}",
                        stages.span)
        elif fld.type.kind != "int":
            self.report("E109", f"stages need an int field; {stages.field!r} is {fld.type}", stages.span)
        self.model.stage_field = stages.field
        seen: dict[str, n.StageRange] = {}
        for stage in stages.ranges:
            if stage.name in seen:
                self.report("E106", f"stage {stage.name!r} declared twice", stage.span)
                continue
            if stage.low is not None and stage.high is not None and stage.low > stage.high:
                self.report("E108", f"stage {stage.name!r} is empty: {stage.low} > {stage.high}", stage.span)
                continue
            seen[stage.name] = stage
        ordered = sorted(seen.values(), key=lambda s: (s.low is not None, s.low if s.low is not None else 0,
                                                      s.high is None, s.high if s.high is not None else 0))
        self.model.stages = ordered
        for before, after in itertools.pairwise(ordered):
            self.check_adjacent(stages.field, before, after)
        if ordered and ordered[0].low is not None:
            self.report("W202", f"{stages.field} below {ordered[0].low} falls in no stage "
                        f"(write `{ordered[0].name} .. {ordered[0].high}` to open it)"
                        if ordered[0].high is not None else
                        f"{stages.field} below {ordered[0].low} falls in no stage", ordered[0].span)
        if ordered and ordered[-1].high is not None:
            self.report("W202", f"{stages.field} above {ordered[-1].high} falls in no stage", ordered[-1].span)

    def check_adjacent(self, name: str, before: n.StageRange, after: n.StageRange) -> None:
        if before.high is None or after.low is None or after.low <= before.high:
            overlap_low = after.low if after.low is not None else before.low
            overlap_high = before.high if after.high is None or (before.high is not None and
                                                                 before.high < after.high) else after.high
            shown = f"{overlap_low} .. {overlap_high}" if overlap_high is not None else f"{overlap_low} .."
            if overlap_low is None:  # both open below
                shown = f".. {overlap_high}"
            self.report("E108", f"stages {before.name!r} and {after.name!r} overlap on {name} {shown}",
                        after.span)
        elif after.low is not None and after.low > before.high + 1:
            gap_low, gap_high = before.high + 1, after.low - 1
            values = str(gap_low) if gap_low == gap_high else f"{gap_low} .. {gap_high}"
            self.report("E107", f"gap between stages {before.name!r} and {after.name!r}: "
                        f"{name} = {values} is in no stage", after.span)

    def check_segments(self, policy: n.PolicyFile, mapping: dict[str, tuple[str, ...]]) -> None:
        """A file's segments, in order; those of files it includes come
        first and are visible to it (with the includer's names for the
        actions their history aggregates count)."""
        defined = {segment.name for segment in self.model.segments}
        grouped = [segment for experiment in policy.experiments for segment in self.check_experiment(experiment)]
        names = defined | {segment.name for segment in (*grouped, *policy.segments)}
        for written in (*grouped, *policy.segments):
            segment = replace(written, condition=_map_expr(written.condition, mapping))
            if segment.name in defined or segment.name in self.model.fields:
                self.report("E106", f"{segment.name!r} is already declared", segment.span)
            self.expect_bool(segment.condition, scope=_Scope(defined, names, action=False))
            defined.add(segment.name)
            self.model.segments.append(segment)

    def check_experiment(self, experiment: n.Experiment) -> list[n.Segment]:
        """An experiment's groups as segments (E119 for shares that do not
        fit; its name, like a group's, is a name of its own)."""
        for message, span in experiment_problems(experiment):
            self.report("E119", message, span)
        known = {e.name for e in self.model.experiments}
        if experiment.name in known or experiment.name in self.model.fields:
            self.report("E106", f"{experiment.name!r} is already declared", experiment.span)
        seen: set[str] = set()
        for group in experiment.groups:
            if group.name in seen:
                self.report("E106", f"group {group.name!r} appears twice in experiment {experiment.name!r}", group.span)
            seen.add(group.name)
        self.model.experiments.append(experiment)
        return group_segments(experiment)

    # ------------------------------------------------------------ rules
    def add_rule(self, rule: n.Rule) -> None:
        if isinstance(rule, n.Allow):
            self.check_targets(rule.targets)
            if rule.condition is not None:
                self.expect_bool(rule.condition, self.rule_scope(action=True))
            self.model.allows.append(rule)
        else:
            self.add_restriction(rule)

    def check_include_conditions(self, policy: n.PolicyFile, mappings: dict[str, dict[str, tuple[str, ...]]]
                                 ) -> None:
        """An include's `when`, in every file, checked once at the include,
        in the including policy's names (`mappings`, as for `_arrivals`)."""
        for source_file in all_files(policy):
            for include in source_file.includes:
                if include.condition is not None:
                    condition = _map_expr(include.condition, mappings.get(source_file.path, {}))
                    self.expect_bool(condition, self.rule_scope(action=False))
                    self.expect_timeless(include.condition, "an include")

    def add_restriction(self, rule: n.Restriction, reported: set[str] | None = None,
                        conditions: tuple[n.Expr, ...] = ()) -> None:
        """`reported`: names an include mapping brought in, already checked
        at the mapping, so an unknown one is not reported again per rule.
        `conditions`: those of the conditional includes the rule came
        through (checked there); the rule exists only where they hold."""
        skip = reported or set()
        self.check_targets(rule.targets, skip=skip)
        for condition in rule.applies:  # a condition on the account: no `action` here
            self.expect_bool(condition, self.rule_scope(action=False))
            self.expect_timeless(condition, f"a {_KIND_NAMES.get(type(rule), 'rule')}")
        if conditions:
            rule = replace(rule, applies=(*conditions, *rule.applies))
        if isinstance(rule, n.Forbid):
            if rule.condition is not None:
                self.expect_bool(rule.condition, self.rule_scope(action=True))
            if not rule.reason.because:
                self.report("W203", "forbid without `because`: say why, it is shown to whoever is blocked",
                            rule.span)
        elif isinstance(rule, n.Window):
            if self.model.zone_field is None:
                self.report("E113", "a window needs the account's local time: declare a `zone` field",
                            rule.span)
            if isinstance(rule.holidays, n.Ref):
                fld = self.model.fields.get(rule.holidays.name)
                if fld is None or fld.type.kind not in ("text", "enum"):
                    texts = [name for name, f in self.model.fields.items() if f.type.kind in ("text", "enum")]
                    self.report("E101", f"holidays need a text field holding a country code; "
                                f"{rule.holidays.name!r} is not one{did_you_mean(rule.holidays.name, texts)}",
                                rule.holidays.span)
            elif isinstance(rule.holidays, n.Literal):
                self.check_country(rule.holidays)
        elif isinstance(rule, n.Limit):
            if rule.count < 1:
                self.report("E105", "a limit of 0 forbids the action: write `forbid` with a reason", rule.span)
            if rule.counted is not None:
                self.check_targets(rule.counted, with_events=True, skip=skip)
        elif isinstance(rule, n.Quiet):
            self.check_targets(rule.after, with_events=True, skip=skip)
        period = getattr(rule, "period", None)
        if period is not None:
            self.check_period(period, rule.span)
        self.model.restrictions.append(rule)

    def check_country(self, literal: n.Literal) -> None:
        if not known_country(str(literal.value)):
            self.report("E115", f"no holiday calendar for country {literal.value!r}", literal.span)

    def rule_scope(self, action: bool) -> _Scope:
        names = {segment.name for segment in self.model.segments}
        return _Scope(names, names, action=action)

    def check_targets(self, targets: n.Targets, with_events: bool = False, skip: set[str] | None = None) -> None:
        model = self.model
        for name in targets.names:
            if not (model.is_action(name) or name in model.groups or (with_events and model.is_event(name))
                    or name in (skip or ())):
                known = [*model.actions, *model.groups, *(model.events if with_events else ())]
                hint = " (it is a history event: it can be counted, not decided)" \
                    if name in self.model.events else did_you_mean(name, known)
                self.report("E102", f"unknown action or group {name!r}{hint}", targets.span)

    def check_unallowed_actions(self) -> None:
        if not self.model.actions:
            return
        allowed: set[str] = set()
        for allow in self.model.allows:
            allowed.update(self.model.expand(allow.targets))
        allowed.update(self.forbidden_on_purpose())
        own = [member for line in self.model.policy.actions for member in line.members]
        unallowed = [name for name in dict.fromkeys(own) if name not in allowed]
        if not unallowed:
            return
        actions, spans = set(self.model.actions), self.action_spans()
        for name in unallowed:
            if name in actions:
                self.report("W201", f"no stage allows {name!r}: it will always be blocked",
                            spans.get(name, self.model.policy.header.span))

    def forbidden_on_purpose(self) -> set[str]:
        """Actions forbidden everywhere, unconditionally, with a reason:
        conduct declared in order to forbid it (`threaten`, cited). That no
        stage allows them is the point, not a slip, so W201 keeps quiet."""
        deliberate: set[str] = set()
        for rule in self.model.restrictions:
            if isinstance(rule, n.Forbid) and rule.condition is None and rule.stage is None \
                    and (rule.reason.because or rule.reason.cite):
                deliberate.update(self.model.expand(rule.targets))
        return deliberate

    def action_spans(self) -> dict[str, n.Span]:
        """Where each action is first declared (one pass, not one per action)."""
        spans: dict[str, n.Span] = {}
        for source_file in all_files(self.model.policy):
            for line in source_file.actions:
                for member in line.members:
                    spans.setdefault(member, line.span)
        return spans

    def expect_timeless(self, condition: n.Expr, where: str) -> None:
        """E117 for a restriction's or include's `when` that time alone can
        change. Such a condition decides whether the rule exists at all, and
        `until` holds it fixed for the account; a block that comes and goes
        with time is what `forbid ... when` (or an allow's `when`) is for."""
        found = self.time_reader(condition)
        if found is None:
            return
        node, via = found
        what = f"segment {via!r}, which reads" if via else "it reads"
        self.report("E117", f"the `when` of {where} must not change with time, but {what} "
                    f"`{self.model.source_text(node.span)}`; test time in a `forbid ... when` "
                    "(or an allow's `when`), and keep this condition on account fields and segments of them",
                    condition.span)

    def time_reader(self, expr: n.Expr) -> tuple[n.Expr, str | None] | None:
        """The first part of `expr` whose value time alone can change (now,
        today(), days_since, local_time, a count or time since an event, ...)
        and the segment it is reached through, if any; None when there is none."""
        segments = {segment.name: segment.condition for segment in self.model.segments}
        for node in n.walk(expr):
            if isinstance(node, n.Ref) and node.name in segments:
                inner = self.time_reader(segments[node.name])
                if inner is not None:
                    return inner[0], inner[1] or node.name
            elif not isinstance(node, (n.BoolOp, n.Not)) and reads_time(node):
                return _innermost_time_term(node), None
        return None

    # ------------------------------------------------------------ expressions
    def expect_bool(self, expr: n.Expr, scope: _Scope) -> None:
        kind = self.type_of(expr, scope)
        if kind is not None and kind != "bool":
            self.report("E114", f"a condition must be true or false; this is {kind}", expr.span)

    def type_of(self, expr: n.Expr, scope: _Scope) -> str | None:
        """The type of `expr`, reporting what is wrong; None when unknown."""
        if isinstance(expr, n.Literal):
            if isinstance(expr.value, dt.timedelta) and expr.value > dt.timedelta(days=MAX_PERIOD_DAYS):
                self.report("E105", f"a duration must be at most {MAX_PERIOD_DAYS} days ({MAX_PERIOD_DAYS // 365} "
                            "years)", expr.span)
            return "text" if expr.kind == "enum" else expr.kind
        if isinstance(expr, n.SetLiteral):
            kinds = {self.type_of(element, scope) for element in expr.elements}
            if len(kinds) > 1:
                self.report("E105", "a set mixes types: " + ", ".join(sorted(str(k) for k in kinds)), expr.span)
                return None
            element = kinds.pop() if kinds else "text"
            return f"set<{'int' if element == 'int' else 'text'}>"
        if isinstance(expr, n.Ref):
            return self.ref_type(expr, scope)
        if isinstance(expr, n.ActionRef):
            if not scope.action:
                self.report("E112", "`action` means the action being judged; it is only known in "
                            "allow and forbid conditions", expr.span)
                return None
            return "text"
        if isinstance(expr, n.NowRef):
            return "datetime"
        if isinstance(expr, n.Not):
            self.expect_bool(expr.operand, scope)
            return "bool"
        if isinstance(expr, n.BoolOp):
            for operand in expr.operands:
                self.expect_bool(operand, scope)
            return "bool"
        if isinstance(expr, n.Negate):
            kind = self.type_of(expr.operand, scope)
            if kind is not None and kind not in (*NUMERIC, "duration"):
                self.report("E105", f"cannot negate {kind}", expr.span)
                return None
            return kind
        if isinstance(expr, n.Arithmetic):
            return self.arithmetic_type(expr, scope)
        if isinstance(expr, n.Compare):
            return self.compare_type(expr, scope)
        if isinstance(expr, n.Membership):
            return self.membership_type(expr, scope)
        if isinstance(expr, n.History):
            return self.history_type(expr)
        return self.call_type(expr, scope)

    def check_period(self, period: n.Period, span: n.Span) -> None:
        """At least 1, and at most MAX_PERIOD_DAYS: a period of a billion
        days passed the checker and then failed every account with Python's
        own words about date ranges."""
        hours = period.amount * (1 if period.unit == "hours" else 24)
        if period.amount < 1:
            self.report("E105", "a period must be at least 1", span)
        elif hours > MAX_PERIOD_DAYS * 24:
            self.report("E105", f"a period must be at most {MAX_PERIOD_DAYS} days ({MAX_PERIOD_DAYS * 24} hours, "
                        f"{MAX_PERIOD_DAYS // 365} years)", span)

    def history_type(self, expr: n.History) -> str:
        """A history aggregate: its actions are checked like a limit's (events
        count too), its outcomes join the policy's (`Model.outcomes`), as a
        limit's do; counts and streaks are ints, the times since an event
        numbers (infinite when there is none, which an int could not hold)."""
        self.check_targets(expr.targets, with_events=True)
        self.history_outcomes.extend((outcome, expr.span) for outcome in expr.outcomes or ())
        if expr.period is not None:
            self.check_period(expr.period, expr.span)
        return "int" if expr.kind in ("count", "streak") else "number"

    def ref_type(self, expr: n.Ref, scope: _Scope) -> str | None:
        fld = self.model.fields.get(expr.name)
        if fld is not None:
            if fld.type.kind == "enum":
                return "enum:" + ",".join(fld.type.members)
            return str(fld.type)
        if expr.name in scope.segments:
            return "bool"
        if expr.name in scope.later_segments:
            self.report("E116", f"segment {expr.name!r} is declared later; segments may only use "
                        "segments declared before them", expr.span)
            return None
        self.report("E101", f"unknown name {expr.name!r}: not a field of `account` or a segment"
                    f"{did_you_mean(expr.name, [*self.model.fields, *scope.segments])}", expr.span)
        return None

    def arithmetic_type(self, expr: n.Arithmetic, scope: _Scope) -> str | None:
        left, right = self.type_of(expr.left, scope), self.type_of(expr.right, scope)
        if left is None or right is None:
            return None
        if left in NUMERIC and right in NUMERIC:
            return "number" if expr.op == "/" and widest(left, right) == "int" else widest(left, right)
        combos = {
            ("date", "-", "date"): "int",
            ("date", "+", "int"): "date",
            ("date", "-", "int"): "date",
            ("datetime", "-", "datetime"): "duration",
            ("datetime", "+", "duration"): "datetime",
            ("datetime", "-", "duration"): "datetime",
            ("duration", "+", "duration"): "duration",
            ("duration", "-", "duration"): "duration",
        }
        result = combos.get((left, expr.op, right))
        if result is None:
            self.report("E105", f"cannot compute {left} {expr.op} {right}", expr.span)
        return result

    def compare_type(self, expr: n.Compare, scope: _Scope) -> str:
        left, right = self.type_of(expr.left, scope), self.type_of(expr.right, scope)
        if left is None or right is None:
            return "bool"
        if left.startswith("enum:") or right.startswith("enum:"):
            self.check_enum_pair(expr, left, right)
            return "bool"
        comparable = (left in NUMERIC and right in NUMERIC) or left == right
        unordered = left in ("bool", "text") or left.startswith("set<")
        if not comparable:
            self.report("E105", f"cannot compare {_shown(left)} with {_shown(right)}", expr.span)
        elif unordered and expr.op not in ("==", "!="):
            self.report("E105", f"{_shown(left)} values can only be compared with == and !=", expr.span)
        return "bool"

    def check_enum_pair(self, expr: n.Compare, left: str, right: str) -> None:
        enum_kind, other, other_expr = (left, right, expr.right) if left.startswith("enum:") \
            else (right, left, expr.left)
        if other == enum_kind:
            return
        if other != "text":
            self.report("E105", f"cannot compare {_shown(enum_kind)} with {_shown(other)}", expr.span)
            return
        if expr.op not in ("==", "!="):
            self.report("E105", "enumeration values can only be compared with == and !=", expr.span)
        members = enum_kind[5:].split(",")
        if isinstance(other_expr, n.Literal) and other_expr.value not in members:
            self.report("E115", f"{other_expr.value!r} is not one of {', '.join(members)}", other_expr.span)

    def membership_type(self, expr: n.Membership, scope: _Scope) -> str:
        item, container = self.type_of(expr.item, scope), self.type_of(expr.container, scope)
        if item is None or container is None:
            return "bool"
        if item.startswith("enum:"):
            members = item[5:].split(",")
            if container == "set<text>" and isinstance(expr.container, n.SetLiteral):
                for element in expr.container.elements:
                    if element.value not in members:
                        self.report("E115", f"{element.value!r} is not one of {', '.join(members)}", element.span)
            item = "text"
        ok = (container == "text" and item == "text") or container == f"set<{item}>"
        if not ok:
            self.report("E105", f"cannot test whether {_shown(item)} is in {_shown(container)}", expr.span)
        return "bool"

    def call_type(self, expr: n.Call, scope: _Scope) -> str | None:
        function = FUNCTIONS.get(expr.name)
        if function is None:
            self.report("E104", f"unknown function {expr.name!r}{did_you_mean_aside(expr.name, FUNCTIONS)}; "
                        "the library has "
                        + ", ".join(sorted(FUNCTIONS)), expr.span)
            return None
        if len(expr.args) != function.arity:
            self.report("E104", f"{function.signature} takes {function.arity} argument(s), "
                        f"got {len(expr.args)}", expr.span)
            return None
        kinds = [self.type_of(arg, scope) for arg in expr.args]
        if any(kind is None for kind in kinds):
            return None
        plain = ["text" if str(kind).startswith("enum:") else str(kind) for kind in kinds]
        result = function.result(plain)
        if result is None:
            self.report("E105", f"{expr.name} expects {function.signature}, got "
                        + ", ".join(_shown(k) for k in plain), expr.span)
        return result


@dataclass(frozen=True)
class _Scope:
    """What names an expression may use: segments declared so far (all of
    them for rules), and whether `action` is bound."""

    segments: set[str]
    all_segments: set[str]
    action: bool

    @property
    def later_segments(self) -> set[str]:
        return self.all_segments - self.segments


def _shown(kind: str) -> str:
    return "an enumeration" if kind.startswith("enum:") else kind


def _baselines(policy: n.PolicyFile) -> Iterable[tuple[n.PolicyFile, dict[str, tuple[str, ...]]]]:
    """Every included file (depth first, innermost first, each file once even
    when included twice) with the names its actions, groups and events stand
    for in the including policy, composed through the include chain."""
    return _all_baselines(policy, set())


def _all_baselines(policy: n.PolicyFile, seen: set[str]) -> Iterable[tuple[n.PolicyFile, dict[str, tuple[str, ...]]]]:
    """Depth first, innermost first. A file reached again is skipped with
    everything below it: all of that was yielded, with the resolution of its
    first path, when it was first reached (there are no cycles)."""
    for include, included in zip(policy.includes, policy.included, strict=True):
        if included.path in seen:
            continue
        mapping = {m.name: m.targets for m in include.mappings}
        resolution = _resolution(included, mapping)
        for inner, inner_resolution in _all_baselines(included, seen):
            outer = mapping | resolution
            yield inner, {name: _apply_mapping(names, outer) for name, names in inner_resolution.items()}
        seen.add(included.path)
        yield included, resolution


def _arrivals(policy: n.PolicyFile, mappings: dict[str, dict[str, tuple[str, ...]]]
              ) -> dict[str, list[tuple[n.Expr, ...]]]:
    """Per included file, the include conditions under which its rules
    apply: one tuple (all must hold) per distinct way it arrives. A file that
    also arrives unconditionally applies everywhere, whatever else includes
    it conditionally, so that no path can loosen it. `mappings`: per
    included file, what its names stand for in the policy (`_baselines`), so
    that a condition written in a baseline counts the includer's actions."""
    found: dict[str, list[tuple[n.Expr, ...]]] = {}
    for path, conditions in _include_conditions(policy, (), mappings):
        known = found.setdefault(path, [])
        if conditions not in known:
            known.append(conditions)
    return {path: [()] if () in known else known for path, known in found.items()}


def _include_conditions(policy: n.PolicyFile, outer: tuple[n.Expr, ...],
                        mappings: dict[str, dict[str, tuple[str, ...]]]
                        ) -> Iterator[tuple[str, tuple[n.Expr, ...]]]:
    mapping = mappings.get(policy.path, {})  # the top-level policy's names are its own
    for include, included in zip(policy.includes, policy.included, strict=True):
        conditions = outer if include.condition is None else (*outer, _map_expr(include.condition, mapping))
        yield from _include_conditions(included, conditions, mappings)
        yield included.path, conditions


def _include_of(policy: n.PolicyFile, baseline: n.PolicyFile) -> n.Include:
    """The top-level include through which `baseline` arrives."""
    for include, included in zip(policy.includes, policy.included, strict=True):
        if any(baseline is inner for inner in all_files(included)):
            return include
    raise LookupError(baseline.path)


def _declared_names(source: n.PolicyFile) -> set[str]:
    """Actions, groups and events a file declares, its includes' too."""
    names: set[str] = set()
    for each in all_files(source):
        names.update(member for line in each.actions for member in line.members)
        names.update(line.group for line in each.actions if line.group is not None)
        names.update(name for events in each.events for name in events.names)
    return names


def _names_in_rules(source: n.PolicyFile) -> set[str]:
    rules = [*source.rules, *(rule for block in source.stage_blocks for rule in block.rules)]
    names: set[str] = set()
    for rule in rules:
        for targets in (rule.targets, getattr(rule, "counted", None), getattr(rule, "after", None)):
            if targets is not None:
                names.update(targets.names)
    return names


def _outcomes_of(rule: n.Restriction) -> tuple[str, ...]:
    """The history outcomes a rule names: a limit's `where outcome` filter,
    a quiet period's `after` list."""
    if isinstance(rule, (n.Limit, n.Quiet)):
        return rule.outcomes or ()
    return ()


def _default_text(fld: n.Field) -> str:
    if fld.default is None:
        return ""
    if isinstance(fld.default, n.SetLiteral):
        return repr(sorted(str(element.value) for element in fld.default.elements))
    return repr(fld.default.value)


def _resolution(source: n.PolicyFile, mapping: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """What each name a baseline declares denotes in the includer. A mapped
    action becomes the includer's actions; a member of a mapped group becomes
    what the group is mapped to; a mapped group denotes what its members
    become (so its rules reach exactly them); anything unmapped keeps its
    name and is imported."""
    groups: dict[str, list[str]] = {}
    for line in source.actions:
        if line.group is not None:
            groups.setdefault(line.group, []).extend(line.members)
    resolved: dict[str, tuple[str, ...]] = {}
    for line in source.actions:
        for member in line.members:
            via = [group for group, members in groups.items() if member in members and group in mapping]
            if member in mapping:
                resolved[member] = mapping[member]
            elif via:
                resolved[member] = _apply_mapping(tuple(via), mapping)
            else:
                resolved[member] = (member,)
    for group, members in groups.items():
        resolved[group] = _apply_mapping(tuple(members), resolved) if group in mapping else (group,)
    for events in source.events:
        for name in events.names:
            resolved[name] = mapping.get(name, (name,))
    return resolved


def _apply_mapping(names: tuple[str, ...], mapping: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(mapped for name in names for mapped in mapping.get(name, (name,))))


def _map_targets(targets: n.Targets, mapping: dict[str, tuple[str, ...]]) -> n.Targets:
    if targets.all or not mapping:
        return targets
    return replace(targets, names=_apply_mapping(targets.names, mapping))


_KIND_NAMES: dict[type, str] = {n.Window: "window", n.Limit: "limit", n.Quiet: "quiet period",
                                n.Forbid: "forbid"}


def _innermost_time_term(node: n.Expr) -> n.Expr:
    """The smallest part of `node` that still reads time (`today()` in
    `today() - opened > 3`), which an E117 message quotes."""
    for child in n.walk(node):
        if child is not node and reads_time(child):
            return _innermost_time_term(child)
    return node


def _map_expr(expr: n.Expr, mapping: dict[str, tuple[str, ...]]) -> n.Expr:
    """An expression with the includer's names for the actions its history
    aggregates count (a baseline's `count(voice ...)` counts what `voice`
    is mapped to)."""
    if not mapping:
        return expr
    if isinstance(expr, n.History):
        return replace(expr, targets=_map_targets(expr.targets, mapping))
    changes: dict[str, object] = {}
    for name in ("operand", "left", "right", "item", "container"):
        child = getattr(expr, name, None)
        if child is not None:
            changes[name] = _map_expr(child, mapping)
    for name in ("operands", "args"):
        children = getattr(expr, name, None)
        if children is not None:
            changes[name] = tuple(_map_expr(child, mapping) for child in children)
    return replace(expr, **changes) if changes else expr  # type: ignore[arg-type]


def _mapped(rule: n.Restriction, mapping: dict[str, tuple[str, ...]]) -> n.Restriction:
    """A baseline rule with the includer's names for its actions, in its
    targets and in the history aggregates of its conditions (its own `when`
    too, so that `streak(voice)` there counts what `voice` is mapped to)."""
    mapped = replace(rule, targets=_map_targets(rule.targets, mapping),
                     applies=tuple(_map_expr(condition, mapping) for condition in rule.applies))
    if isinstance(mapped, n.Forbid) and mapped.condition is not None:
        mapped = replace(mapped, condition=_map_expr(mapped.condition, mapping))
    if isinstance(mapped, n.Limit) and mapped.counted is not None:
        mapped = replace(mapped, counted=_map_targets(mapped.counted, mapping))
    if isinstance(mapped, n.Quiet):
        mapped = replace(mapped, after=_map_targets(mapped.after, mapping))
    return mapped
