"""Reading policy files from disk and following their `include`s.

Includes resolve relative to the including file; one not found there is
looked up in each include path in order. They may not leave the directory of
the top-level policy or an include path, so a policy under review cannot pull
in arbitrary files. `include "policydsl:NAME"` names a baseline installed with
the package (library.py), wherever that is. A cycle is an error that names the
include that closes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import library
from . import nodes as n
from .errors import Diagnostic, PolicyNotFoundError, PolicySyntaxError
from .parser import parse

MAX_INCLUDE_DEPTH = 16


def read_source(path: str | os.PathLike[str]) -> str:
    """The text of a policy file, or a positioned error saying why not."""
    shown = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        message = f"cannot read policy file: {exc.strerror or exc}"
        raise PolicyNotFoundError(_file_error(shown, message).diagnostic, None) from None
    except OSError as exc:
        raise _file_error(shown, f"cannot read policy file: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _file_error(shown, f"policy file is not UTF-8 (byte {exc.start})") from None


def load_file(path: str | os.PathLike[str], include_roots: Sequence[str | os.PathLike[str]] = ()) -> n.PolicyFile:
    """Parse `path` and, recursively, the files it includes."""
    shown = os.path.normpath(str(path))
    roots = [Path(shown).resolve().parent, *(Path(root).resolve() for root in include_roots)]
    return _load(shown, roots, ())


def load_text(source: str, path: str = "<policy>",
              include_roots: Sequence[str | os.PathLike[str]] = ()) -> n.PolicyFile:
    """Parse policy text; includes resolve against the directory of `path`."""
    base = Path(path).resolve().parent
    roots = [base, *(Path(root).resolve() for root in include_roots)]
    return _resolve_includes(parse(source, path), roots, (str(Path(path).resolve()),))


def _load(shown: str, roots: list[Path], chain: tuple[str, ...]) -> n.PolicyFile:
    policy = parse(read_source(shown), shown)
    return _resolve_includes(policy, roots, (*chain, str(Path(shown).resolve())))


def _resolve_includes(policy: n.PolicyFile, roots: list[Path], chain: tuple[str, ...]) -> n.PolicyFile:
    if not policy.includes:
        return policy
    included = []
    for include in policy.includes:
        target = _locate(policy, include, roots)
        resolved = Path(target).resolve()
        if not any(resolved.is_relative_to(root) for root in [*roots, *_library_roots(include)]):
            raise _include_error(policy, include, f"include {include.path!r} leaves the policy's directory; "
                                 "pass --include-path to allow it")
        if str(resolved) in chain:
            raise _include_error(policy, include, f"include cycle: {include.path!r} includes this file again")
        if len(chain) > MAX_INCLUDE_DEPTH:
            raise _include_error(policy, include, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
        if not resolved.is_file():
            raise _include_error(policy, include, f"included file {include.path!r} not found (looked for {target})")
        included.append(_load(target, [*roots, *_library_roots(include)], chain))
    return replace(policy, included=tuple(included))


def _locate(policy: n.PolicyFile, include: n.Include, roots: list[Path]) -> str:
    """The file an include names: an installed baseline for `policydsl:NAME`;
    else the file beside the including one or, when there is none, the first
    include path (`roots[1:]`, in order) that holds it."""
    if library.is_library_name(include.path):
        found = library.baseline_path(include.path)
        if found is None:
            raise _include_error(policy, include, f"no installed baseline {include.path!r}; available: "
                                 + ", ".join(library.PREFIX + name for name in library.baseline_names()))
        return str(found)
    beside = os.path.normpath(os.path.join(os.path.dirname(policy.path), include.path))
    if Path(beside).is_file() or os.path.isabs(include.path):
        return beside
    for root in roots[1:]:
        candidate = root / include.path
        if candidate.is_file():
            return os.path.normpath(candidate)
    return beside


def _library_roots(include: n.Include) -> list[Path]:
    """An installed baseline may be read, and may include its siblings."""
    directory = library.library_directory() if library.is_library_name(include.path) else None
    return [directory.resolve()] if directory is not None else []


def _include_error(policy: n.PolicyFile, include: n.Include, message: str) -> PolicySyntaxError:
    return PolicySyntaxError(Diagnostic("E002", "error", message, include.span), policy.source)


def _file_error(path: str, message: str) -> PolicySyntaxError:
    return PolicySyntaxError(Diagnostic("E002", "error", message, n.Span(path, 1, 1, 1, 1)), None)
