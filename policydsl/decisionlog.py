"""The decision log: one JSON line per decision the service gives, so that a
compliance team can show, for any contact, what the service was asked, what
it answered and under which policy.

Three promises shape this module:

* Personal data named with `--mask` never reaches the log in clear: each
  such account field is erased (None) or replaced by a keyed hash, which
  still lets the lines of one account be joined without revealing it.
* A line is handed to the operating system before `write` returns, so the
  HTTP answer never goes out for a decision that a SIGTERM of the server
  could then lose (no fsync: the guarantee is against the process dying,
  not the machine).
* The log does not fill the disk: the file is rotated by size.

One process writes a log file; threads of that process share a `DecisionLog`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO

HASH_PREFIX = "hmac-sha256:"
_MODES = ("erase", "hash")

# A masked text this long is also searched for inside the entry's other
# texts (an error message quoting a bad phone number, another field copying
# it); a shorter one recurs by chance in unrelated text (a two-letter id in
# every word), so it is replaced only where quoted as Python quotes it.
SCRUB_MIN = 6


class MaskError(ValueError):
    """A bad `--mask` spec, or hashing requested without a key."""


_NO_KEY = "hashing needs a key: --mask-key-file FILE"


@dataclass(frozen=True)
class Masking:
    """Which account fields are masked, and how: erased (replaced by None)
    or hashed (keyed HMAC-SHA256).

    A field is masked at `input.account[field]`. The account's `id` is
    repeated by the service, so when `id` is masked it is masked the same
    way at every place it is put: `input.account.id`,
    `input.history[*].account_id`, `decision.account_id` and a top-level
    `account_id`. Besides, any other text of the entry (a decision's error
    quoting a bad value, say) has a masked text value replaced by its masked
    form: see `SCRUB_MIN`.
    """

    erase: frozenset[str]
    hash: frozenset[str]
    key: bytes | None = field(default=None, repr=False)  # a secret: never in a repr or a traceback

    def __post_init__(self) -> None:
        both = self.erase & self.hash
        if both:
            raise MaskError(f"--mask: {', '.join(sorted(both))} cannot be both erased and hashed")
        if self.hash and not self.key:
            raise MaskError(_NO_KEY)

    @classmethod
    def parse(cls, spec: str | None, key: bytes | None = None) -> Masking:
        """The masking a `--mask` spec asks for: comma-separated field names,
        each optionally suffixed ":erase" (the default) or ":hash", e.g.
        "phone,email,id:hash". None or "" masks nothing. A typo here would
        leave personal data in clear, so anything doubtful is refused."""
        modes: dict[str, str] = {}
        for number, item in enumerate(spec.split(",") if spec and spec.strip() else [], 1):
            name, mode = _parse_item(item, number)
            if name in modes:
                raise MaskError(f"--mask: {name!r} is listed twice")
            modes[name] = mode
        return cls(erase=frozenset(name for name, mode in modes.items() if mode == "erase"),
                   hash=frozenset(name for name, mode in modes.items() if mode == "hash"), key=key)

    @property
    def fields(self) -> frozenset[str]:
        return self.erase | self.hash

    def hashed(self, value: Any) -> str:
        """`value`'s keyed hash: the same value (and key) always gives the
        same text, so an auditor can still follow one account; without the
        key it cannot be reversed by trying likely phone numbers."""
        if not self.key:
            raise MaskError(_NO_KEY)
        digest = hmac.new(self.key, _canonical(value).encode(), hashlib.sha256).hexdigest()
        return HASH_PREFIX + digest

    def apply(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A new entry (the argument is left as it was: the service still
        answers with it) with the masking applied, and `masked` set to the
        sorted names of the fields that were present and masked, so that an
        auditor sees what is missing and why. A null stays null either way:
        hashed, every account without an id would seem to be one account."""
        present = sorted(name for name in self.fields if next(_places(entry, name), None))
        if not present:  # nothing to hide: no copy of the whole entry (it is serialised, never changed)
            return {**entry, "masked": present}
        result: dict[str, Any] = _scrubbed(entry, self._scrubs(entry, present))
        for name in present:
            for (original, key), (copy, _) in zip(_places(entry, name), _places(result, name), strict=True):
                copy[key] = self._masked(name, original[key])
        result["masked"] = present
        return result

    def _masked(self, name: str, value: Any) -> Any:
        return self.hashed(value) if name in self.hash and value is not None else None

    def _scrubs(self, entry: dict[str, Any], present: list[str]) -> list[tuple[str, str]]:
        """(text, replacement) for each masked text value of the entry,
        longest first so that a text is replaced before any part of it."""
        scrubs: dict[str, str] = {}
        for name in present:
            for container, key in _places(entry, name):
                value = container[key]
                if isinstance(value, str) and value:
                    shown = self.hashed(value) if name in self.hash else f"[{name} erased]"
                    scrubs[repr(value)] = repr(shown)
                    if len(value) >= SCRUB_MIN:
                        scrubs[value] = shown
        return sorted(scrubs.items(), key=lambda pair: -len(pair[0]))


def _parse_item(item: str, number: int) -> tuple[str, str]:
    """One item of a `--mask` spec as (field name, mode)."""
    if not item.strip():
        raise MaskError(f"--mask: item {number} is empty (a stray comma?)")
    name, colon, mode = (part.strip() for part in item.partition(":"))
    if not name:
        raise MaskError(f"--mask: item {number} ({item.strip()!r}) names no field")
    if any(character.isspace() for character in name):
        raise MaskError(f"--mask: {name!r} is no field name (a missing comma?)")
    if colon and mode not in _MODES:
        raise MaskError(f"--mask: {name!r} has the unknown mode {mode!r}; expected :erase or :hash")
    return name, mode if colon else "erase"


def _account(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's account, or an empty one (a malformed entry is logged as
    it is rather than refused: the log must not lose a line)."""
    inputs = entry.get("input")
    account = inputs.get("account") if isinstance(inputs, dict) else None
    return account if isinstance(account, dict) else {}


def _places(entry: dict[str, Any], name: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Each (container, key) holding field `name` of the account, in a fixed
    order so that the places of an entry and of its copy pair up."""
    account = _account(entry)
    if name in account:
        yield account, name
    if name != "id":
        return
    inputs = entry.get("input")
    history = inputs.get("history") if isinstance(inputs, dict) else None
    for contact in history if isinstance(history, list) else []:
        if isinstance(contact, dict) and "account_id" in contact:
            yield contact, "account_id"
    decision = entry.get("decision")
    if isinstance(decision, dict) and "account_id" in decision:
        yield decision, "account_id"
    if "account_id" in entry:
        yield entry, "account_id"


def _scrubbed(value: Any, scrubs: list[tuple[str, str]]) -> Any:
    """A deep copy of `value` with each scrub's text replaced in every text."""
    if isinstance(value, dict):
        return {key: _scrubbed(item, scrubs) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(item, scrubs) for item in value]
    if isinstance(value, str):
        for text, replacement in scrubs:
            value = value.replace(text, replacement)
    return value


def _plain(value: Any) -> Any:
    """JSON for what `json` cannot write itself: a Decimal as its exact text."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"a {type(value).__name__} cannot be written to the decision log")


def _canonical(value: Any) -> str:
    """One text per value, whatever the key order of a mapping."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_plain)


# Characters that JSON leaves raw in a string but that many readers (Python's
# str.splitlines, older JavaScript) take for line ends: escaped, so one
# decision is one line to every reader.
_LINE_BREAKS = (("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _line(entry: dict[str, Any]) -> str:
    """The entry as one JSON line; NaN is refused (it is no JSON)."""
    text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain)
    for raw, escaped in _LINE_BREAKS:  # str.replace, not translate: 20 µs on a 5 KB line, not 500
        if raw in text:
            text = text.replace(raw, escaped)
    return text + "\n"


def _open(path: str) -> int:
    """The log file opened for append; created readable by its owner only,
    as it holds personal data."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _write_all(fd: int, data: bytes, size: int) -> None:
    """All of `data`, or OSError with the file cut back to `size`: a line
    half-written (disk full) would otherwise run into the next one."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


class DecisionLog:
    """Writes masked entries as JSON lines to a file (rotated by size) or to
    stdout ("-", never rotated: whoever reads it keeps it)."""

    def __init__(self, target: str, *, masking: Masking | None = None, max_bytes: int = 100 * 2**20,
                 backups: int = 5) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if backups < 0:
            raise ValueError(f"backups must be 0 or more, not {backups}")
        self.target = target
        self.masking = masking if masking is not None else Masking.parse(None)
        self.max_bytes = max_bytes
        self.backups = backups
        self.lines_written = 0
        self.rotations = 0
        self._lock = threading.Lock()
        self._closed = False
        self._stream: TextIO | None = sys.stdout if target == "-" else None
        self._fd: int | None = None if target == "-" else _open(target)

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, entry: dict[str, Any]) -> None:
        """Mask `entry` and write it as one line, handed to the OS before
        returning. OSError (disk full) reaches the caller: a line is never
        dropped silently. Lines of concurrent writers never interleave."""
        line = _line(self.masking.apply(entry))
        with self._lock:
            if self._closed:
                raise ValueError(f"the decision log {self.target} is closed")
            if self._fd is not None:
                self._write_file(self._fd, line.encode())
            elif self._stream is not None:
                self._stream.write(line)
                self._stream.flush()
            self.lines_written += 1

    def _write_file(self, fd: int, data: bytes) -> None:
        """Rotate first when this line would take the file past max_bytes,
        so no line is split across files; a line larger than max_bytes
        alone is still written whole, to a file of its own."""
        size = os.fstat(fd).st_size  # not a counter: someone may have emptied the file
        if size and size + len(data) > self.max_bytes:
            fd, size = self._rotate(fd), 0
        _write_all(fd, data, size)

    def _rotate(self, fd: int) -> int:
        """path -> path.1 -> path.2 … path.<backups> (the oldest dropped);
        a fresh file opened at path. The old file is closed only once the
        new one is open, so a failed rename leaves the log writable."""
        path = self.target
        for number in range(self.backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{path}.{number}", f"{path}.{number + 1}")
        if self.backups:
            os.replace(path, f"{path}.1")
        else:
            os.unlink(path)
        self._fd = _open(path)
        os.close(fd)
        self.rotations += 1
        return self._fd

    def close(self) -> None:
        """Flush and close; closing again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            elif self._stream is not None:
                self._stream.flush()
