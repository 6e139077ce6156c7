"""Hot reload for the decision service: each served policy in a slot that a
watcher thread refills when the policy or one of its includes changes.

Why a slot and not a lock: a compiled `Policy` is immutable, so a request
takes the slot's current policy once (one attribute read) and finishes on it
whatever happens meanwhile; the watcher compiles the new version off the
request path and swaps it in with one assignment. A version that does not
compile never replaces the last good one: its error is kept for
`/v1/status` and the metrics until a later edit compiles.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import load_policy
from .compiler import Policy
from .errors import PolicyCheckError, PolicyError, PolicySyntaxError


@dataclass(frozen=True)
class Loaded:
    """A policy the slot serves, and when it was loaded."""

    policy: Policy
    loaded_at: dt.datetime


def policy_error_text(error: PolicyError) -> str:
    """A compile error as `file:line:col: error[CODE]: message` lines, the
    form `policy check` prints, for status documents and logs."""
    if isinstance(error, PolicySyntaxError):
        return error.diagnostic.render()
    if isinstance(error, PolicyCheckError):
        return "\n".join(d.render() for d in error.diagnostics if d.severity == "error")
    return str(error)


Stamp = tuple[tuple[str, int, int], ...]


def _stamp(paths: Sequence[str]) -> Stamp:
    """What the watcher compares: each file's modification time and size
    (a missing file is a change too, stamped -1)."""
    stamps = []
    for path in paths:
        try:
            status = os.stat(path)
            stamps.append((path, status.st_mtime_ns, status.st_size))
        except OSError:
            stamps.append((path, -1, -1))
    return tuple(stamps)


class PolicySlot:
    """One served policy: the current good version, the last reload error,
    and the files whose change triggers a reload."""

    def __init__(self, path: str, include_roots: Sequence[str] = ()) -> None:
        self.path = path
        self.include_roots = tuple(include_roots)
        self.current = Loaded(self._compile(), dt.datetime.now(dt.UTC))  # raises: a server never starts without it
        self.last_error: str | None = None
        self.last_error_at: dt.datetime | None = None
        self.reloads = 0
        self.failures = 0
        self._stamp = _stamp(self._watched())

    @property
    def policy(self) -> Policy:
        return self.current.policy

    def _compile(self) -> Policy:
        return load_policy(self.path, self.include_roots)

    def _watched(self) -> list[str]:
        """The policy and every file it included (as the loader read them)."""
        return [self.path, *(source for source in self.current.policy.model.sources if source != self.path)]

    def changed(self) -> bool:
        return _stamp(self._watched()) != self._stamp

    def reload(self) -> bool:
        """Compile the files as they are now; True when a new version (a
        new digest) was swapped in. A failure keeps the current version."""
        self._stamp = _stamp(self._watched())
        try:
            fresh = self._compile()
        except PolicyError as error:
            self.failures += 1
            self.last_error = policy_error_text(error)
            self.last_error_at = dt.datetime.now(dt.UTC)
            return False
        except OSError as error:  # the file vanished mid-edit: the next stamp change retries
            self.failures += 1
            self.last_error = f"{self.path}: {error.strerror or error}"
            self.last_error_at = dt.datetime.now(dt.UTC)
            return False
        self.last_error = None
        self.last_error_at = None
        if fresh.digest == self.current.policy.digest:  # reformatted, or comments changed
            return False
        self.current = Loaded(fresh, dt.datetime.now(dt.UTC))
        self.reloads += 1
        self._stamp = _stamp(self._watched())  # the new version may include other files
        return True


class Watcher:
    """A daemon thread that polls the slots' files every `interval` seconds
    and reloads those that changed; `on_reload(slot, swapped)` is told of
    each attempt (for metrics). Polling, not inotify: it works the same on
    every file system, network mounts and editors' rename-over saves included."""

    def __init__(self, slots: Sequence[PolicySlot], interval: float,
                 on_reload: Callable[[PolicySlot, bool], None]) -> None:
        self.slots = slots
        self.interval = interval
        self.on_reload = on_reload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policy-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # never started when the server could not listen
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for slot in self.slots:
                if slot.changed():
                    swapped = slot.reload()
                    self.on_reload(slot, swapped)
