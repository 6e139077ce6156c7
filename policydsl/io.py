"""CSV and JSONL in and out, row by row, losing nothing.

Accounts are streamed: one row in, one decision out, in input order, so
memory does not grow with the portfolio. A row that cannot be read becomes
an error decision naming its row and field. Contact history is indexed by
account id (memory grows with the history, not the portfolio); a history
row that cannot be read is reported with its line and the account it
belongs to is not evaluated on a partial history. Output files are written
to a temporary file beside the target and renamed into place, so an
interrupted run leaves the previous output intact.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from .errors import PolicyError
from .runtime import Contact, Decision
from .values import ValueProblem, read_datetime

csv.field_size_limit(16 * 1024 * 1024)

HISTORY_COLUMNS = ("account_id", "action", "at", "outcome")


class InputError(PolicyError):
    """A whole input file cannot be used (missing, no header, missing column)."""


@dataclass(frozen=True)
class AccountRow:
    """One data row of the accounts file: its values, or why it cannot be read."""

    number: int  # 1-based data row (the header is not counted)
    line: int  # physical line where the row starts
    values: dict[str, str] | None
    problem: str | None = None
    raw: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # shared by all rows of a file
    unread_id: str | None = None  # the id of a row that could not be read, if known

    @property
    def account_id(self) -> str | None:
        if self.values is not None:
            return self.values.get("id") or None
        return self.unread_id


def _open_text(path: str) -> IO[str]:
    """UTF-8 with or without BOM; undecodable bytes survive as surrogates so
    the row holding them can be reported instead of failing the file."""
    if path == "-":
        return open(sys.stdin.fileno(), encoding="utf-8-sig", errors="surrogateescape", newline="", closefd=False)
    try:
        return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from None


def _bad_bytes(cells: list[str], columns: Iterable[int] | None = None) -> int | None:
    """Index of the first cell (among `columns`) holding bytes that were not
    UTF-8; ASCII cells, the usual case, are skipped without a scan."""
    for index in range(len(cells)) if columns is None else columns:
        cell = cells[index]
        if not cell.isascii() and any("\udc80" <= char <= "\udcff" for char in cell):
            return index
    return None


def read_accounts(path: str, required: set[str], fields: set[str] | None = None) -> Iterator[AccountRow]:
    """Rows of an accounts CSV. Raises InputError when the header lacks a
    column the policy needs (every row would fail the same way). Only the
    columns in `fields` (default: all) are checked for bytes that are not
    UTF-8, since the others are ignored."""
    handle = _open_text(path)
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(f"{path}: empty file: no header row") from None
        except csv.Error as exc:
            raise InputError(f"{path}: header cannot be read: {exc}") from None
        header = [_printable(name.strip()) for name in header]
        checked = [i for i, name in enumerate(header) if fields is None or name in fields]
        missing = sorted(required - set(header))
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)} (the policy has no default for them)")
        number = 0
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield AccountRow(number, line, None, f"row {number} (line {line}): unreadable CSV: {exc}")
                line = reader.line_num + 1
                continue
            if not cells or cells == [""]:
                line = reader.line_num + 1
                continue  # a blank line holds no account
            number += 1
            yield _account_row(number, line, header, cells, checked)
            line = reader.line_num + 1


def _account_row(number: int, line: int, header: list[str], cells: list[str], checked: list[int]) -> AccountRow:
    where = f"row {number} (line {line})"
    if len(cells) != len(header):
        return AccountRow(number, line, None, f"{where}: expected {len(header)} fields, found {len(cells)}", cells,
                          header, _guess_id(header, cells))
    bad = _bad_bytes(cells, checked)
    if bad is not None:
        return AccountRow(number, line, None, f"{where}: field {header[bad]!r}: bytes that are not UTF-8", cells,
                          header, _guess_id(header, cells))
    return AccountRow(number, line, dict(zip(header, cells, strict=True)), None, cells, header)


def _guess_id(header: list[str], cells: list[str]) -> str | None:
    """The id of a row that cannot be read, when its id cell is still plain."""
    if "id" in header and header.index("id") < len(cells):
        value = cells[header.index("id")].strip()
        if value and value.isprintable() and _bad_bytes([value]) is None:
            return value
    return None


@dataclass
class History:
    """Contacts by account id, plus the ids whose history could not be read."""

    contacts: dict[str, list[Contact]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # account id -> first problem
    problems: list[str] = field(default_factory=list)
    rows: int = 0

    def for_account(self, account_id: str | None) -> list[Contact]:
        return self.contacts.get(account_id or "", [])


def read_history(path: str) -> History:
    history = History()
    handle = _open_text(path)
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: empty file: no header row (account_id,action,at,outcome)") from None
        except csv.Error as exc:
            raise InputError(f"{path}: header cannot be read: {exc}") from None
        missing = [name for name in HISTORY_COLUMNS[:3] if name not in header]
        if missing:
            raise InputError(f"{path}: contact history needs columns {', '.join(HISTORY_COLUMNS)}; "
                             f"missing {', '.join(missing)}")
        index = {name: header.index(name) for name in HISTORY_COLUMNS if name in header}
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return history
            except csv.Error as exc:
                history.problems.append(f"{path}:{line}: unreadable CSV: {exc}")
                line = reader.line_num + 1
                continue
            if cells and cells != [""]:
                history.rows += 1
                _add_contact(history, path, line, header, index, cells)
            line = reader.line_num + 1


def _add_contact(history: History, path: str, line: int, header: list[str], index: dict[str, int],
                 cells: list[str]) -> None:
    """One history row into `history`, or its problem (with file:line) into
    `history.problems` and the account into `history.broken`. The common,
    well-formed row is handled without building any message."""
    id_at, at_at = index["account_id"], index["at"]
    account_id = cells[id_at].strip() if len(cells) > id_at else ""
    problem = None
    if len(cells) != len(header):
        problem = f"expected {len(header)} fields, found {len(cells)}"
    elif _bad_bytes(cells) is not None:
        problem = "bytes that are not UTF-8"
    elif not account_id:
        problem = "account_id is empty"
    else:
        try:
            at = read_datetime(cells[at_at])
        except ValueProblem as expected:
            problem = f"field 'at': {cells[at_at]!r}; expected {expected}"
    if problem is not None:
        problem = f"{path}:{line}: {problem}"
        history.problems.append(problem)
        if account_id and account_id not in history.broken:
            history.broken[account_id] = problem
        return
    outcome = cells[index["outcome"]].strip() if "outcome" in index else ""
    contact = Contact(account_id, cells[index["action"]].strip(), at, outcome)
    history.contacts.setdefault(account_id, []).append(contact)


# ------------------------------------------------------------ output

CSV_COLUMNS = ("account_id", "stage", "segments", "allowed", "next_action", "blocked", "error")


def decision_json(decision: Decision) -> str:
    return json.dumps(decision.to_dict(), ensure_ascii=False, separators=(",", ":"))


def decision_csv_row(decision: Decision) -> list[str]:
    """Flat form: lists `;`-separated, `blocked` as compact JSON."""
    data = decision.to_dict()
    return [
        data["account_id"] or "",
        data["stage"] or "",
        ";".join(data["segments"]),
        ";".join(data["allowed"]),
        data["next_action"] or "",
        json.dumps(data["blocked"], ensure_ascii=False, separators=(",", ":")),
        data["error"] or "",
    ]


@contextlib.contextmanager
def atomic_output(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or a file that appears only once fully written."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    deferred = block_stop_signals()  # a stop signal between mkstemp and `try` would leave the file behind
    try:
        fd, temporary = tempfile.mkstemp(prefix=".policy-", suffix=".tmp", dir=directory)
    except OSError as exc:
        restore_signals(deferred)
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        restore_signals(deferred)  # a pending stop signal is raised here, where the file is removed
        os.chmod(temporary, _mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if _ARRIVED:
            raise Interrupted(_ARRIVED[0])
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# What a scheduler or a terminal sends a batch job to stop it. Each is turned into `Interrupted`, which
# unwinds through `atomic_output` (removing its temporary file) to the CLI, which exits 128 + the signal number.
STOP_SIGNALS = frozenset(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def block_stop_signals() -> set[int | signal.Signals] | None:
    """Defer the stop signals in this thread (they stay pending, and threads
    or processes started meanwhile inherit the mask); returns what
    `restore_signals` needs. None where the platform has no signal masks."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def restore_signals(previous: set[int | signal.Signals] | None) -> None:
    """Undo `block_stop_signals`; a signal that arrived meanwhile is delivered now."""
    if previous is not None and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so
    that no `except Exception` on the way up can swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal (130, 143, 129)."""
        return 128 + self.signum


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, the first stop signal raises `Interrupted`; later
    ones are ignored, so that the cleanup they would interrupt can finish.
    Handlers can only be installed from the main thread; elsewhere (an
    application calling the CLI from a thread) signals keep their handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _ARRIVED.clear()

    def stop(signum: int, frame: object) -> None:
        if not _ARRIVED:
            _ARRIVED.append(signum)
            raise Interrupted(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _ARRIVED.clear()


# The stop signal `interruptible` received, if any. Python may run a signal handler inside a finaliser,
# where the exception it raises is printed and dropped; atomic_output checks this before it replaces a file.
_ARRIVED: list[int] = []


def _mode_for(path: str) -> int:
    """The replaced file's permissions, or what a plain open() would give
    (mkstemp's 0600 would make shared outputs unreadable)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


class RejectedRows:
    """`--errors FILE`: each rejected row verbatim, with its row number and
    reason, so it can be fixed and run again."""

    def __init__(self, handle: IO[str], header: list[str]) -> None:
        """The header repeats the input's after `row` and `reason`, so the
        rejected rows can be fixed and run again as they are."""
        self.writer = csv.writer(handle, lineterminator="\n")
        self.writer.writerow(["row", "reason", *header])

    def add(self, row: AccountRow, reason: str) -> None:
        self.writer.writerow([row.number, reason, *(_printable(cell) for cell in row.raw)])


def _printable(cell: str) -> str:
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
