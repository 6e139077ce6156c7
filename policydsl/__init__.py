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
from typing import Literal, overload

from .checker import check
from .compiler import Policy
from .decision import Blocked, Contact, Decision, RuleInfo
from .errors import (
    AccountError,
    Diagnostic,
    HistoryError,
    InputTypeError,
    InputValueError,
    PolicyCheckError,
    PolicyError,
    PolicyNotFoundError,
    PolicySyntaxError,
    RefusedInputError,
    UnknownActionError,
)
from .loader import load_file, load_text
from .model import Model
from .reference import ReferencePolicy

__all__ = [
    "AccountError", "Blocked", "Contact", "Decision", "Diagnostic", "HistoryError", "InputTypeError",
    "InputValueError", "Policy", "PolicyCheckError", "PolicyError", "PolicyNotFoundError", "PolicySyntaxError",
    "ReferencePolicy", "RefusedInputError", "RuleInfo", "UnknownActionError", "compile_policy", "load_policy",
]

__version__ = "0.1.0"


Engine = Literal["compiled", "reference"]
ENGINES: tuple[Engine, ...] = ("compiled", "reference")


@overload
def load_policy(path: str | os.PathLike[str], include_roots: Sequence[str | os.PathLike[str]] = (), *,
                engine: Literal["compiled"] = "compiled") -> Policy: ...
@overload
def load_policy(path: str | os.PathLike[str], include_roots: Sequence[str | os.PathLike[str]] = (), *,
                engine: Literal["reference"]) -> ReferencePolicy: ...
@overload
def load_policy(path: str | os.PathLike[str], include_roots: Sequence[str | os.PathLike[str]] = (), *,
                engine: str) -> Policy | ReferencePolicy: ...
def load_policy(path: str | os.PathLike[str], include_roots: Sequence[str | os.PathLike[str]] = (), *,
                engine: str = "compiled") -> Policy | ReferencePolicy:
    """Read, check and compile the policy at `path` (and its includes).
    `engine="reference"` gives the tree-walking reference interpreter
    (same decisions, much slower: for cross-checking)."""
    return _compiled(check(load_file(path, include_roots)), engine)


@overload
def compile_policy(source: str, path: str = "<policy>", include_roots: Sequence[str | os.PathLike[str]] = (), *,
                   engine: Literal["compiled"] = "compiled") -> Policy: ...
@overload
def compile_policy(source: str, path: str = "<policy>", include_roots: Sequence[str | os.PathLike[str]] = (), *,
                   engine: Literal["reference"]) -> ReferencePolicy: ...
@overload
def compile_policy(source: str, path: str = "<policy>", include_roots: Sequence[str | os.PathLike[str]] = (), *,
                   engine: str) -> Policy | ReferencePolicy: ...
def compile_policy(source: str, path: str = "<policy>",
                   include_roots: Sequence[str | os.PathLike[str]] = (), *,
                   engine: str = "compiled") -> Policy | ReferencePolicy:
    """Check and compile policy text; includes resolve against `path`'s directory."""
    return _compiled(check(load_text(source, path, include_roots)), engine)


def _compiled(checked: tuple[Model, list[Diagnostic]], engine: str = "compiled") -> Policy | ReferencePolicy:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    model, diagnostics = checked
    if any(d.severity == "error" for d in diagnostics):
        raise PolicyCheckError(diagnostics, model.sources)
    return ReferencePolicy(model) if engine == "reference" else Policy(model)
