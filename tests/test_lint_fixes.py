"""W201, W303 and W307 say only what holds (issue 9 point 10), and the
checker and lints stay near-linear in the size of a policy (issue 11
item 16), measured in operations, never in time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

from policydsl import lints
from policydsl import nodes as n
from policydsl.checker import check
from policydsl.errors import Diagnostic
from policydsl.loader import load_file, load_text
from policydsl.model import Model

HEAD = 'policy "p" version "1"\naccount { id : text  dpd : int = 0  b : int = 0 }\n'


def codes(source: str) -> list[tuple[str, int]]:
    _, found = check(load_text(source, "t.policy"))
    return [(d.code, d.span.line) for d in found]


# ------------------------------------------------------------ W201


@pytest.mark.parametrize("reason", ['because "never threaten"', 'cite "Convention art. 13"'])
def test_w201_keeps_quiet_on_conduct_forbidden_on_purpose(reason: str) -> None:
    source = HEAD + "actions { sms, threaten }\nallow sms\nforbid threaten " + reason + "\n"
    assert "W201" not in [code for code, _ in codes(source)]


@pytest.mark.parametrize("forbid", [
    "forbid threaten\n",  # no reason: W203 too, and nothing says it is on purpose
    'forbid threaten when b > 1 because "x"\n',  # conditional: the other accounts are never allowed it either
    "",
])
def test_w201_still_reports_an_action_nothing_allows_and_nothing_forbids_on_purpose(forbid: str) -> None:
    source = HEAD + "actions { sms, threaten }\nallow sms\n" + forbid
    assert ("W201", 3) in codes(source)


def test_w201_keeps_quiet_on_conduct_a_stage_block_cannot_forbid_everywhere() -> None:
    source = HEAD + "actions { sms, threaten }\nstages on dpd { early .. 30  late 31 .. }\nallow sms\n" \
        'stage early { forbid threaten because "x" }\n'
    assert ("W201", 3) in codes(source)  # forbidden in one stage only: not conduct declared to forbid it


# ------------------------------------------------------------ W303


def test_w303_keeps_quiet_when_accounts_outside_every_stage_get_the_allow() -> None:
    source = HEAD + "actions { sms, call }\nstages on dpd { early 0 .. 30  late 31 .. }\nallow sms, call\n" \
        'stage early { forbid call because "x" }\nstage late { forbid call because "y" }\nallow call\n'
    found = codes(source)
    assert ("W202", 4) in found  # dpd below 0 is in no stage ...
    assert "W303" not in [code for code, _ in found]  # ... and there the top-level allow of call applies


def test_w303_still_fires_when_stages_cover_every_value_or_the_forbid_is_top_level() -> None:
    covered = HEAD + "actions { sms, call }\nstages on dpd { early .. 30  late 31 .. }\nallow sms\n" \
        'stage early { forbid call because "x" }\nstage late { forbid call because "y" }\nallow call\n'
    assert ("W303", 8) in codes(covered)
    top = HEAD + "actions { sms, call }\nstages on dpd { early 0 .. 30  late 31 .. }\nallow sms\nallow call\n" \
        'forbid call because "x"\n'
    _, found = check(load_text(top, "t.policy"))
    (w303,) = [d for d in found if d.code == "W303"]
    assert w303.message == "this allow can never take effect: always forbidden by t.policy:7"


def test_w303_judges_a_condition_on_the_stage_field_per_stage() -> None:
    source = HEAD + "actions { sms, call }\nstages on dpd { a .. 9  b 10 .. 19  c 20 .. }\nallow sms\n" \
        'allow call\nforbid call when dpd >= 10 because "x"\nforbid call when dpd < 10 because "y"\n'
    _, found = check(load_text(source, "t.policy"))
    (w303,) = [d for d in found if d.code == "W303"]
    assert w303.span.line == 6 and w303.message.endswith("t.policy:8")  # stage a is blocked by the second
    partial = source.replace("dpd < 10", "dpd < 5")
    assert "W303" not in [code for code, _ in codes(partial)]


# ------------------------------------------------------------ W307


def test_day_spans_wrap_past_sunday() -> None:
    span = n.Span("t", 1, 1, 1, 1)
    assert n.DaySpec("fri", "mon", span).weekdays() == (4, 5, 6, 0)
    assert n.DaySpec("mon", "fri", span).weekdays() == (0, 1, 2, 3, 4)
    assert n.DaySpec("sun", "sun", span).weekdays() == (6,)


def test_w307_reads_a_wrapping_day_span_as_the_days_it_covers(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text('policy "b" version "1"\naccount { id : text  tz : zone = "UTC" }\n'
                                          'actions { call }\nallow all\nwindow call 08:00-21:00 on mon..fri\n')
    (tmp_path / "main.policy").write_text('policy "m" version "1"\ninclude "base.policy"\nallow call\n'
                                          "window call 09:00-20:00 on fri..mon\n")
    _, found = check(load_file(tmp_path / "main.policy"))
    assert [d.code for d in found] == ["W307"]  # sat and sun are outside the baseline's days
    (tmp_path / "main.policy").write_text('policy "m" version "1"\ninclude "base.policy"\nallow call\n'
                                          "window call 09:00-20:00 on thu..fri\n")
    _, found = check(load_file(tmp_path / "main.policy"))
    assert found == []


# ------------------------------------------------------------ no quadratic work


class _Counter:
    def __init__(self) -> None:
        self.calls = 0


def _count_truth(monkeypatch: pytest.MonkeyPatch) -> _Counter:
    counter = _Counter()
    original = lints.truth

    def counting(*args: object) -> lints.Truth:
        counter.calls += 1
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(lints, "truth", counting)
    return counter


def _count_expand(monkeypatch: pytest.MonkeyPatch) -> _Counter:
    counter = _Counter()
    original = Model.expand

    def counting(self: Model, targets: n.Targets, with_events: bool = False) -> tuple[str, ...]:
        counter.calls += 1
        return original(self, targets, with_events)

    monkeypatch.setattr(Model, "expand", counting)
    return counter


def _issue_policy(stages: int, actions: int, forbids: int, condition: str) -> str:
    """Issue 11's worst case: every stage allows every action, and many
    forbids of all actions that never hold for every account."""
    lines = [HEAD + "actions { " + ", ".join(f"a{i}" for i in range(actions)) + " }", "stages on dpd {"]
    lines += [f"  s{i} {i * 10} .. {i * 10 + 9}" if i else "  s0 .. 9" for i in range(stages - 1)]
    lines += [f"  s{stages - 1} {(stages - 1) * 10} ..", "}", "allow all"]
    lines += [f"stage s{i} {{ allow all }}" for i in range(stages)]
    lines += [f'forbid all when {condition.format(i=i)} because "r{i}"' for i in range(forbids)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("condition", ["b > {i}", "dpd > {i} and b > 1", "dpd > {i}"])
@pytest.mark.parametrize("size", [150, 500])
def test_w303_does_linear_work_in_stages_actions_and_forbids(monkeypatch: pytest.MonkeyPatch, size: int,
                                                           condition: str) -> None:
    source = _issue_policy(size, size, size, condition)
    truths, expansions = _count_truth(monkeypatch), _count_expand(monkeypatch)
    _, found = check(load_text(source, "t.policy"))
    # `dpd > 0` holds in every stage but the first: their allows can never take effect
    assert sum(d.code == "W303" for d in found) == (size - 1 if condition == "dpd > {i}" else 0)
    # Before: every allow x action x stage asked every forbid (150: 3.4 million judgements).
    # A condition on the stage field: a few judgements per forbid around its constant; one that can never be
    # always true in a stage (`and b > 1`): none beyond the first.
    assert truths.calls < (10 if "and" in condition else 60) * size, truths.calls
    assert expansions.calls < 12 * size, expansions.calls


def test_w303_still_found_at_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    source = _issue_policy(300, 300, 300, "b > {i}") + 'forbid all when dpd >= 0 or dpd < 10 because "all"\n'
    truths = _count_truth(monkeypatch)
    _, found = check(load_text(source, "t.policy"))
    assert sum(d.code == "W303" for d in found) == 301  # the top-level allow and every stage's
    assert truths.calls < 60 * 300


def _diagnostics_of(source: str) -> list[Diagnostic]:
    return check(load_text(source, "t.policy"))[1]


@pytest.mark.parametrize("count", [1_000, 3_000])  # 3,000: near the size limit
def test_many_actions_groups_and_rules_take_work_in_proportion(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """A scan of every action per action, rule or group member made these
    quadratic (100,000 actions: minutes). Count the work of expand(), which
    every pass uses, by the names it returns."""
    returned = _Counter()
    original = Model.expand

    def counting(self: Model, targets: n.Targets, with_events: bool = False) -> tuple[str, ...]:
        result = original(self, targets, with_events)
        returned.calls += len(result) if not targets.all else 1
        return result

    monkeypatch.setattr(Model, "expand", counting)
    actions = ", ".join(f"g{i % 50} : a{i}" for i in range(count)).replace(", g", "\ng")
    rules = "\n".join(f'limit a{i} 2 per day because "x"' for i in range(count))
    source = HEAD + "actions {\n" + actions + "\n}\nallow all\n" + rules + "\n"
    found = _diagnostics_of(source)
    assert [d.code for d in found].count("W302") == count  # each group line: no rule names the group
    assert returned.calls < 20 * count, returned.calls


def _lines_run(action: Callable[[], object]) -> int:
    """How many lines of Python `action` runs: work measured without a clock."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        action()
    finally:
        sys.settrace(None)
    return count


def _many_rules(count: int) -> str:
    rules = "".join(f"forbid sms when dpd == {i % 7} or b > 1\n" for i in range(count))
    return HEAD + "actions { sms, call }\nallow all\n" + rules


def test_checking_and_rendering_many_rules_takes_work_in_proportion() -> None:
    """Each rule's id printed its rule with a printer that scanned the whole
    source for line starts, and identical rules searched `-2`, `-3`, ... from
    the start: 16,000 rules took minutes. Twice the rules, about twice the work."""
    def work(count: int) -> int:
        source = _many_rules(count)
        def run() -> None:
            _, found = check(load_text(source, "t.policy"))
            for diagnostic in found:
                diagnostic.render(source)
        return _lines_run(run)
    small, large = work(300), work(600)
    assert large < 2.5 * small, (small, large)
