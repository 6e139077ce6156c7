"""Champion/challenger: accounts split into test groups by a stable hash.

    experiment dialer_2026q4 salt "dialer-2026q4" {
        challenger 10%
        champion   rest
    }

Each group becomes a segment of its name, so rules use it as any segment
(`allow agent_call when challenger`) and every decision lists the group its
account is in, under `segments`.

Why a hash of the id, and which one: an account must land in the same group
in every run, on every machine and in every language that reimplements the
split (a data warehouse joining outcomes to groups), so the bucket is
SHA-256 (hashlib; never Python's `hash()`, which is salted per process) of
the UTF-8 bytes of `salt`, one zero byte, and the normalised id; its first
8 bytes as an unsigned big-endian integer, modulo 10,000: a bucket from 0
to 9,999, one per hundredth of a percent. A new salt reshuffles everyone:
that is how a new experiment starts from fresh groups.

Why slots: a ramp (challenger from 10% to 20%) must only *add* accounts to
the group that grows, never move an account from one group to another that
did not shrink. With the groups laid end to end, growing the first would
push the second along. So the n groups with a share each own a fixed slot
of the buckets, `[i * 10000 // n, (i + 1) * 10000 // n)`, and take its first
`share * 100` buckets: a group grows inside its own slot, and no share may
exceed its slot (the checker says so, E119). The `rest` group takes every
bucket no other group does, so it is the one that shrinks. Adding or
removing a group changes the slots: that is a new experiment, with a new
salt.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from . import nodes as n

BUCKETS = 10_000  # one per hundredth of a percent


def bucket(account_id: str, salt: str) -> int:
    """The account's bucket, 0 to 9,999, for this salt (see the module docstring)."""
    digest = hashlib.sha256(salt.encode("utf-8", "surrogatepass") + b"\0" +
                            account_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def slot(index: int, count: int) -> tuple[int, int]:
    """The buckets [start, end) the index-th of `count` sharing groups may grow into."""
    return index * BUCKETS // count, (index + 1) * BUCKETS // count


def problems(experiment: n.Experiment) -> list[tuple[str, n.Span]]:
    """What makes an experiment's groups unusable (E119), each with where."""
    found: list[tuple[str, n.Span]] = []
    if not experiment.salt.strip():
        found.append(("an experiment needs a salt: the accounts' groups are a hash of it and their id",
                      experiment.span))
    rests = [group for group in experiment.groups if group.share is None]
    for extra in rests[1:]:
        found.append((f"experiment {experiment.name!r} has two `rest` groups ({rests[0].name!r} and "
                      f"{extra.name!r}); one group takes the rest", extra.span))
    shared = [group for group in experiment.groups if group.share is not None]
    for index, group in enumerate(shared):
        assert group.share is not None
        start, end = slot(index, len(shared))
        if group.share <= 0 or group.share != group.share.quantize(Decimal("0.01")):
            found.append((f"group {group.name!r}: a share is more than 0% and at most two decimals "
                          "(hundredths of a percent)", group.span))
        elif group.share * 100 > end - start:
            found.append((f"group {group.name!r}: {_percent(group.share)} is more than the "
                          f"{_percent(Decimal(end - start) / 100)} each of {len(shared)} groups with a share may "
                          "take, so that growing one never moves another's accounts; give this group a new "
                          "experiment, or fewer groups", group.span))
    total = sum((group.share for group in shared if group.share is not None), Decimal(0))
    if total > 100:
        found.append((f"the shares of experiment {experiment.name!r} add up to {_percent(total)}", experiment.span))
    return found


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f}%"


def group_segments(experiment: n.Experiment) -> list[n.Segment]:
    """The experiment's groups as segments, in declaration order, `rest`
    last: a sharing group's condition is `bucket(id, salt)` inside its part
    of its slot; the rest's, that the account is in none of the others."""
    shared = [group for group in experiment.groups if group.share is not None]
    segments = []
    condition: n.Expr
    for index, group in enumerate(shared):
        assert group.share is not None
        start, _ = slot(index, len(shared))
        end = start + int(group.share * 100)
        drawn = n.Call("bucket", (n.Ref("id", group.span), n.Literal(experiment.salt, "text", group.span)),
                       group.span)
        condition = n.BoolOp("and", (n.Compare(">=", drawn, n.Literal(start, "int", group.span), group.span),
                                     n.Compare("<", drawn, n.Literal(end, "int", group.span), group.span)), group.span)
        segments.append(n.Segment(group.name, condition, group.span))
    for group in experiment.groups:
        if group.share is None:
            others = tuple(n.Not(n.Ref(other.name, group.span), group.span) for other in shared)
            condition = (n.BoolOp("and", others, group.span) if len(others) > 1 else others[0]) if others \
                else n.Literal(True, "bool", group.span)
            segments.append(n.Segment(group.name, condition, group.span))
            break
    return segments
