"""Did-you-mean: the one place that picks the name a user probably meant.

`policy check` (unknown fields, segments, actions, groups, stages, outcomes,
functions) and `policy test` (unknown keys, kinds and names in test files)
both suggest a name; they share this module so a typo gets the same
suggestion, found the same way, wherever it is made.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The known name nearest to `name`, or None when none is near enough
    (difflib's ratio of the case-folded spellings at least `cutoff`). A name
    that differs only in case wins outright: `Balance` is `balance`
    mistyped, whatever else is close."""
    candidates = sorted(set(known))
    folded = {candidate.casefold(): candidate for candidate in reversed(candidates)}
    same = folded.get(name.casefold())
    if same is not None:
        return same if same != name else None
    matches = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=cutoff)
    return folded[matches[0]] if matches else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` to end a message, or "" when nothing is close."""
    match = closest(name, known)
    return f"; did you mean {match!r}?" if match is not None else ""


def did_you_mean_aside(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the middle of a message, or ""."""
    match = closest(name, known)
    return f" (did you mean {match!r}?)" if match is not None else ""
