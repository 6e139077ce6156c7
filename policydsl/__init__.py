"""policydsl: a declarative policy language for debt collection.

    >>> from policydsl import load_policy, Contact
    >>> policy = load_policy("policies/ecommerce_consumer_loan.policy")
    >>> decision = policy.evaluate({"id": "A1", "days_past_due": 12, ...}, history, now=now)
    >>> decision.next_action, decision.to_dict(), decision.explain()

`load_policy` and `compile_policy` parse, check and compile; they raise
`PolicySyntaxError` or `PolicyCheckError` (both `PolicyError`) with file,
line and column. A compiled `Policy` is immutable and thread-safe.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .checker import Model, check
from .compiler import Policy
from .errors import AccountError, Diagnostic, HistoryError, PolicyCheckError, PolicyError, PolicySyntaxError
from .loader import load_file, load_text
from .runtime import Blocked, Contact, Decision, RuleInfo

__all__ = [
    "AccountError", "Blocked", "Contact", "Decision", "Diagnostic", "HistoryError", "Policy",
    "PolicyCheckError", "PolicyError", "PolicySyntaxError", "RuleInfo", "compile_policy", "load_policy",
]

__version__ = "0.1.0"


def load_policy(path: str | os.PathLike[str], include_roots: Sequence[str | os.PathLike[str]] = ()) -> Policy:
    """Read, check and compile the policy at `path` (and its includes)."""
    return _compiled(check(load_file(path, include_roots)))


def compile_policy(source: str, path: str = "<policy>",
                   include_roots: Sequence[str | os.PathLike[str]] = ()) -> Policy:
    """Check and compile policy text; includes resolve against `path`'s directory."""
    return _compiled(check(load_text(source, path, include_roots)))


def _compiled(checked: tuple[Model, list[Diagnostic]]) -> Policy:
    model, diagnostics = checked
    if any(d.severity == "error" for d in diagnostics):
        raise PolicyCheckError(diagnostics, model.sources)
    return Policy(model)
