"""Reading policy files from disk and following their `include`s.

Includes resolve relative to the including file; one not found there is
looked up in each include path in order. They may not leave the directory of
the top-level policy or an include path, so a policy under review cannot pull
in arbitrary files. `include "policydsl:NAME"` names a baseline installed with
the package (library.py), wherever that is. A cycle is an error that names the
include that closes it.

Each distinct file (by resolved path) is read and parsed once per load, and
the one parsed file is shared by every include that reaches it, so includes
that fan out cost the number of files, not the number of paths. A file is
read by at most the size limit plus one byte, and FIFOs, directories and
sockets are refused from `fstat` of a non-blocking open, never waited on.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import library
from . import nodes as n
from .errors import Diagnostic, PolicyNotFoundError, PolicySyntaxError
from .parser import MAX_SOURCE_BYTES, parse

MAX_INCLUDE_DEPTH = 16
MAX_NAME_BYTES = 255  # NAME_MAX of Linux and macOS file systems: one component of a path
MAX_PATH_BYTES = 4096  # PATH_MAX of Linux
_READ_CHUNK = 65536
_NOT_READ = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket"}

@dataclass
class _Loaded:
    """One load's files by resolved path: each parsed once with its includes
    resolved, and how deep the includes below it nest (0: it includes
    nothing), so that a file reached again elsewhere can be depth-checked
    unread; and the bytes of all the distinct files read, bounded like one
    file's, so that wide includes cannot multiply the limit."""

    files: dict[str, tuple[n.PolicyFile, int]] = field(default_factory=dict)
    size: int = 0


def read_source(path: str | os.PathLike[str]) -> str:
    """The text of a policy file, or a positioned error saying why not."""
    shown = str(path)
    data = _read_bounded(shown)
    if len(data) > MAX_SOURCE_BYTES:
        raise _file_error(shown, f"policy file is larger than {MAX_SOURCE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _file_error(shown, f"policy file is not UTF-8 (byte {exc.start})") from None
    if "\r" in text and "\n" not in text:  # a file with old Mac line ends: else every error is on line 1
        text = text.replace("\r", "\n")
    return text


def _read_bounded(shown: str) -> bytes:
    """At most the size limit plus one byte, so `/dev/zero` or a huge file
    costs nothing. Opened without blocking (a FIFO's open would wait for a
    writer) and refused by what `fstat` says of the open file, so it cannot
    be swapped between a check and the read."""
    try:
        fd = os.open(shown, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except ValueError:  # os.open's way of refusing a NUL byte
        raise _file_error(shown, "cannot read policy file: the path contains a NUL byte") from None
    except FileNotFoundError as exc:
        raise PolicyNotFoundError(_file_error(shown, f"cannot read policy file: {exc.strerror}").diagnostic,
                                  None) from None
    except OSError as exc:
        raise _file_error(shown, f"cannot read policy file: {exc.strerror or exc}") from None
    try:
        kind = _NOT_READ.get(stat.S_IFMT(os.fstat(fd).st_mode))
        if kind is not None:
            raise _file_error(shown, f"cannot read policy file: it is {kind}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SOURCE_BYTES:
            chunk = os.read(fd, min(_READ_CHUNK, MAX_SOURCE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _file_error(shown, f"cannot read policy file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def load_file(path: str | os.PathLike[str], include_roots: Sequence[str | os.PathLike[str]] = ()) -> n.PolicyFile:
    """Parse `path` and, recursively, the files it includes (each distinct
    file once, however many includes reach it)."""
    shown = os.path.normpath(str(path))
    top = _resolve(shown, lambda why: _file_error(shown, f"cannot read policy file: {why}"))
    roots = [top.parent, *(Path(root).resolve() for root in include_roots)]
    return _load(shown, roots, (), _Loaded())[0]


def load_text(source: str, path: str = "<policy>",
              include_roots: Sequence[str | os.PathLike[str]] = ()) -> n.PolicyFile:
    """Parse policy text; includes resolve against the directory of `path`."""
    base = Path(path).resolve().parent
    roots = [base, *(Path(root).resolve() for root in include_roots)]
    loaded = _Loaded(size=len(source.encode("utf-8", "surrogatepass")))
    return _resolve_includes(parse(source, path), roots, (str(Path(path).resolve()),), loaded)[0]


def _load(shown: str, roots: list[Path], chain: tuple[str, ...], loaded: _Loaded) -> tuple[n.PolicyFile, int]:
    """The file and the nesting of includes below it; read and parsed only
    the first time this load reaches it. Reuse cannot hide a cycle: a file
    is kept only once all its includes are resolved, and one still being
    resolved is in `chain`."""
    key = str(_resolve(shown, lambda why: _file_error(shown, f"cannot read policy file: {why}")))
    if key not in loaded.files:
        source = read_source(shown)
        loaded.size += len(source.encode("utf-8", "surrogatepass"))
        policy = parse(source, shown)
        loaded.files[key] = _resolve_includes(policy, roots, (*chain, key), loaded)
    return loaded.files[key]


def _resolve_includes(policy: n.PolicyFile, roots: list[Path], chain: tuple[str, ...],
                      loaded: _Loaded) -> tuple[n.PolicyFile, int]:
    if not policy.includes:
        return policy, 0
    included = []
    height = 0
    for include in policy.includes:
        problem = _path_problem(include.path)
        if problem is not None:
            raise _include_error(policy, include, f"include path {problem}")
        target = _locate(policy, include, roots)
        resolved = _resolve(target, functools.partial(_unreadable_include, policy, include))
        if not any(resolved.is_relative_to(root) for root in [*roots, *_library_roots(include)]):
            raise _include_error(policy, include, f"include {include.path!r} leaves the policy's directory; "
                                 "pass --include-path to allow it")
        if str(resolved) in chain:
            raise _include_error(policy, include, f"include cycle: {include.path!r} includes this file again")
        if len(chain) > MAX_INCLUDE_DEPTH:
            raise _include_error(policy, include, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
        if not resolved.is_file():
            raise _include_error(policy, include, _missing_include(include, target, resolved))
        child, below = _load(target, [*roots, *_library_roots(include)], chain, loaded)
        if loaded.size > MAX_SOURCE_BYTES:
            raise _include_error(policy, include, f"a policy and its includes are larger than {MAX_SOURCE_BYTES} "
                                 f"bytes in all (through {include.path!r})")
        if len(chain) + below > MAX_INCLUDE_DEPTH:  # a file first reached by a shallower path
            raise _include_error(policy, include, f"includes nested deeper than {MAX_INCLUDE_DEPTH} "
                                 f"through {include.path!r}")
        included.append(child)
        height = max(height, below + 1)
    return replace(policy, included=tuple(included)), height


def _resolve(path: str, error: Callable[[str], PolicySyntaxError]) -> Path:
    """`Path.resolve`, whose symlink loop (RuntimeError), NUL byte
    (ValueError) or over-long name (OSError) becomes `error(why)`."""
    try:
        return Path(path).resolve()
    except RuntimeError:
        raise error("a loop of symbolic links") from None
    except ValueError:
        raise error("the path contains a NUL byte") from None
    except OSError as exc:
        raise error(exc.strerror or str(exc)) from None


def _path_problem(path: str) -> str | None:
    """Why the OS would refuse `path` (checked before any system call, which
    would raise ValueError or ENAMETOOLONG instead of a positioned error)."""
    if "\0" in path:
        return "contains a NUL byte"
    encoded = path.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        return f"has a file or directory name longer than {MAX_NAME_BYTES} bytes"
    return None


def _missing_include(include: n.Include, target: str, resolved: Path) -> str:
    """Why an include names no regular file: nothing is there, or what is."""
    try:
        kind = _NOT_READ.get(stat.S_IFMT(resolved.stat().st_mode), "not a regular file")
    except OSError:
        return f"included file {include.path!r} not found (looked for {target})"
    return f"cannot read included file {include.path!r}: it is {kind}, not a regular file"


def _unreadable_include(policy: n.PolicyFile, include: n.Include, why: str) -> PolicySyntaxError:
    return _include_error(policy, include, f"cannot read included file {include.path!r}: {why}")


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
