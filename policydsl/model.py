"""The checked policy: a `Model`, every name resolved.

The checker (checker.py) builds it; lints read it; the compiler, the
reference interpreter and the test tools consume it, so that no later stage
ever has to resolve a name again. It also says how decisions cite a node
(`info`, with the stable ids the checker assigns) and digests the resolved
sources (`digest`, the decisions' provenance).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from . import nodes as n
from .decision import RuleInfo
from .errors import Diagnostic, source_lines
from .formatter import canonical_text


@dataclass
class Model:
    """A checked policy with every name resolved (the compiler's input)."""

    policy: n.PolicyFile
    fields: dict[str, n.Field] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)  # decided, in declared order
    events: list[str] = field(default_factory=list)  # history-only names
    # The history outcomes the policy knows: those its `outcomes` blocks
    # declare (all files, baselines first, in order), then any other that its
    # rules name (only possible when nothing is declared).
    outcomes: list[str] = field(default_factory=list)
    outcomes_declared: bool = False  # True when the policy lists its outcomes: then no other is valid
    groups: dict[str, list[str]] = field(default_factory=dict)
    stage_field: str | None = None
    stages: list[n.StageRange] = field(default_factory=list)  # sorted by range
    segments: list[n.Segment] = field(default_factory=list)  # an experiment's groups among them
    experiments: list[n.Experiment] = field(default_factory=list)
    allows: list[n.Allow] = field(default_factory=list)  # stage blocks' first, then top level
    restrictions: list[n.Restriction] = field(default_factory=list)
    zone_field: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # What decisions call each node they can cite (rules, stage ranges, the
    # stages block, segments, the header), by the node's span: see assign_ids.
    ids: dict[n.Span, str] = field(default_factory=dict)
    # warnings silenced by `# policy: ignore[CODE]` comments (see suppress.py)
    suppressed: list[Diagnostic] = field(default_factory=list)
    # expand()'s index of actions and events; rebuilt when either list grows
    _order: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict, repr=False, compare=False)

    def expand(self, targets: n.Targets, with_events: bool = False) -> tuple[str, ...]:
        """Action names a target list denotes, in declared order. It costs
        what it returns, not the number of actions: every rule is expanded by
        several checks and lints, so a scan of all actions per call made a
        policy with many actions and rules quadratic."""
        if targets.all:
            return tuple(self.actions + self.events) if with_events else tuple(self.actions)
        order = self._positions()
        chosen = {member for name in targets.names for member in self.groups.get(name, [name])
                  if member in order and (with_events or order[member] < len(self.actions))}
        return tuple(sorted(chosen, key=order.__getitem__))

    def is_action(self, name: str) -> bool:
        position = self._positions().get(name)
        return position is not None and position < len(self.actions)

    def is_event(self, name: str) -> bool:
        return self._positions().get(name, -1) >= len(self.actions)

    def _positions(self) -> dict[str, int]:
        """Actions then events, each with its place in that order."""
        key = (len(self.actions), len(self.events))
        if key not in self._order:
            self._order.clear()
            self._order[key] = {name: place for place, name in enumerate([*self.actions, *self.events])}
        return self._order[key]

    def expand_in_order(self, targets: n.Targets) -> tuple[str, ...]:
        """Decided actions a target list denotes, in the order written (for an
        allow list, that order is the priority order)."""
        names = self.actions if targets.all else targets.names
        out: list[str] = []
        for name in names:
            for member in self.groups.get(name, [name]):
                if member in self.actions and member not in out:
                    out.append(member)
        return tuple(out)

    def source_text(self, span: n.Span) -> str:
        """What a span covers in its file, whitespace collapsed (what
        explanations and coverage reports quote)."""
        lines = list(source_lines(self.sources.get(span.file, ""))[span.line - 1:span.end_line])
        if not lines:
            return ""
        lines[-1] = lines[-1][:span.end_column - 1]
        lines[0] = lines[0][span.column - 1:]
        return " ".join(" ".join(lines).split())

    def applies_text(self, rule: n.Rule) -> str | None:
        """The conditions a restriction exists under, as written and joined
        by `and` (None: it applies to every account); how blocks and lints
        name them."""
        conditions = getattr(rule, "applies", ())
        if not conditions:
            return None
        texts = [self.source_text(condition.span) for condition in conditions]
        if len(texts) == 1:
            return texts[0]
        return " and ".join(f"({text})" if isinstance(condition, n.BoolOp) and condition.op == "or" else text
                            for condition, text in zip(conditions, texts, strict=True))

    def stage_named(self, name: str) -> n.StageRange | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    def cited_path(self, file: str) -> str:
        """`file` relative to the top-level policy's directory, with `/`: the
        same whatever the working directory, so that decision logs of two
        jobs join on `rule`."""
        base = os.path.dirname(self.policy.path) or "."
        return PurePath(os.path.relpath(file, base)).as_posix()

    def info(self, node: Any, text: str | None = None, reads: tuple[str, ...] = ()) -> RuleInfo:
        """How decisions cite `node` (a rule, stage range, stages block,
        segment or the header): its file relative to the policy's directory,
        line, text (a rule's own by default), reason and stable id."""
        reason: n.Reason | None = getattr(node, "reason", None)
        return RuleInfo(self.cited_path(node.span.file), node.span.line, node.text if text is None else text,
                        reason.because if reason else None, reason.cite if reason else None, reads,
                        self.ids[node.span])

    def digest(self) -> str:
        """`sha256:<hex>` of the resolved sources: each file once, the policy
        first and then its includes depth first in include order, each in
        canonical form (formatted, without comments or blank lines) and
        preceded by its length in bytes. Reformatting and comments leave it
        alone; any change of a rule, declaration or include changes it."""
        digest = hashlib.sha256()
        seen: set[str] = set()
        for source in all_files(self.policy):
            if source.path in seen:
                continue
            seen.add(source.path)
            text = canonical_text(source).encode("utf-8", "surrogatepass")
            digest.update(b"%d\n" % len(text) + text)
        return "sha256:" + digest.hexdigest()


def all_files(policy: n.PolicyFile, seen: set[str] | None = None) -> Iterator[n.PolicyFile]:
    """The policy and every file it includes, each once (by path, as the
    loader shares one parsed file among all the includes that reach it), so
    that includes fanning out cost the number of files, not of paths."""
    seen = set() if seen is None else seen
    if policy.path in seen:
        return
    seen.add(policy.path)
    yield policy
    for included in policy.included:
        yield from all_files(included, seen)
