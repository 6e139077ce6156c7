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
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from .errors import PolicyError
from .inputs import normalise_id
from .runtime import Contact, Decision
from .values import ValueProblem, read_datetime

if TYPE_CHECKING:
    from .checker import Model

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


# ------------------------------------------------------------ physical records


@dataclass(frozen=True)
class _Record:
    """One CSV record: the physical line it starts on, its cells, and why it
    cannot be used (the cells are then what could be made of its first line)."""

    line: int
    cells: list[str]
    problem: str | None = None
    bom: bool = False  # a byte-order mark inside the file was removed from it


class _Lines:
    """The physical lines of a file, counted. The lines of the record being
    read are kept, so an unterminated quote can give back the lines it
    swallowed to be read again as records of their own."""

    def __init__(self, handle: IO[str]) -> None:
        self._source = iter(handle)
        self._again: deque[str] = deque()
        self.taken: list[str] = []
        self.next_number = 1
        self.hit_end = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._again:
            line = self._again.popleft()
        else:
            try:
                line = next(self._source)
            except StopIteration:
                self.hit_end = True
                raise
        self.taken.append(line)
        self.next_number += 1
        return line

    def begin(self) -> int:
        """Start a record; its first physical line number."""
        self.taken = []
        self.hit_end = False
        return self.next_number

    def give_back(self, lines: list[str]) -> None:
        self._again.extendleft(reversed(lines))
        self.next_number -= len(lines)


def _records(handle: IO[str]) -> Iterator[_Record]:
    """The records of a CSV file, each with its physical line; blank lines
    are skipped. A quote that is never closed swallows the rest of the file
    in Python's csv module: that record is reported as such and the lines
    after the one it opened on are read again, so rows read stay equal to
    the physical records."""
    lines = _Lines(handle)
    reader = csv.reader(lines)
    while True:
        start = lines.begin()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Record(start, _first_cells(lines.taken), f"unreadable CSV: {exc}")
            continue
        if lines.hit_end and _unterminated(lines.taken):
            swallowed = lines.taken[1:]
            lines.give_back(swallowed)
            after = f"; the {_count(len(swallowed), 'line')} after it are read as rows of their own"
            yield _Record(start, _first_cells(lines.taken[:1]),
                          f"unterminated quote: a quoted field opened on line {start} is never closed"
                          + (after if swallowed else ""))
            continue
        if not cells or cells == [""]:
            continue  # a blank line holds no record
        if any("\ufeff" in line for line in lines.taken):
            yield _Record(start, [cell.replace("\ufeff", "") for cell in cells], None, True)
            continue
        yield _Record(start, cells)


def _unterminated(lines: list[str]) -> bool:
    """Whether these lines end inside a quoted field (checked only for the
    record that reached the end of the file, so at most once per file)."""
    if not any('"' in line for line in lines):
        return False
    try:
        for _ in csv.reader(lines, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


_GUESS_CHARS = 4096  # enough of a broken record's first line to find its id


def _first_cells(lines: list[str]) -> list[str]:
    """What the first line of a broken record says, as far as it can be read
    (its id is usually there, even when a later field is too long)."""
    if not lines:
        return []
    try:
        return next(csv.reader([lines[0][:_GUESS_CHARS].rstrip("\r\n")]), [])
    except csv.Error:
        return []


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _header(records: Iterator[_Record], path: str, what: str) -> list[str]:
    """The header record, trimmed, or InputError. A name that appears twice
    stops the run: which of the two columns holds the value is a guess."""
    first = next(records, None)
    if first is None:
        raise InputError(f"{path}: empty file: no header row{what}")
    if first.problem is not None:
        raise InputError(f"{path}: header cannot be read: {first.problem}")
    header = [_printable(name.replace("\ufeff", "").strip()) for name in first.cells]
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears twice (columns {seen[name]} and {number}); "
                             "rename or remove one")
        seen[name] = number
    return header


# ------------------------------------------------------------ accounts


class AccountsFile:
    """An accounts CSV with its header read and checked; iterating gives its
    rows. What the header says about the policy's fields (`unknown`,
    `absent`) and the lines where a byte-order mark was removed (`bom_lines`,
    filled while reading) are kept for the run's report."""

    def __init__(self, path: str, required: set[str], fields: set[str] | None) -> None:
        self.path = path
        handle = _open_text(path)
        records = _records(handle)
        try:
            self.header = _header(records, path, "")
        except BaseException:
            handle.close()
            raise
        missing = sorted(required - set(self.header))
        if missing:
            handle.close()
            raise InputError(f"{path}: missing column(s) {', '.join(missing)} (the policy has no default for them)")
        known = set(self.header) if fields is None else fields
        self.unknown: list[str] = [_unknown_column(name, number, known)
                                   for number, name in enumerate(self.header, 1) if name not in known]
        self.absent: list[str] = sorted(known - required - set(self.header))
        self.bom_lines: list[int] = []
        checked = [i for i, name in enumerate(self.header) if name in known]
        self._rows = self._read(handle, records, checked)

    def __iter__(self) -> Iterator[AccountRow]:
        return self._rows

    def __next__(self) -> AccountRow:
        return next(self._rows)

    @property
    def notes(self) -> list[str]:
        """What a run reports about this file (and `--strict` refuses)."""
        notes = [f"{self.path}: {text}" for text in self.unknown]
        notes += [f"{self.path}: field {name!r} has no column: its default is used for every row"
                  for name in self.absent]
        return notes

    def _read(self, handle: IO[str], records: Iterator[_Record], checked: list[int]) -> Iterator[AccountRow]:
        with handle:
            for number, record in enumerate(records, 1):
                if record.bom:
                    self.bom_lines.append(record.line)
                if record.problem is not None:
                    yield AccountRow(number, record.line, None, f"row {number} (line {record.line}): {record.problem}",
                                     record.cells, self.header, _guess_id(self.header, record.cells))
                else:
                    yield _account_row(number, record.line, self.header, record.cells, checked)


def _unknown_column(name: str, number: int, fields: set[str]) -> str:
    from .inputs import did_you_mean

    if not name:
        return f"column {number} has no name and is ignored"
    return f"column {name!r} is not a field of the policy and is ignored" + did_you_mean(name, sorted(fields))


def read_accounts(path: str, required: set[str], fields: set[str] | None = None) -> AccountsFile:
    """The rows of an accounts CSV. Raises InputError when the header lacks a
    column the policy needs (every row would fail the same way) or names a
    column twice. Only the columns in `fields` (default: all) are checked
    for bytes that are not UTF-8, since the others are ignored; the others
    are reported in `notes`."""
    return AccountsFile(path, required, fields)


def _account_row(number: int, line: int, header: list[str], cells: list[str], checked: list[int]) -> AccountRow:
    where = f"row {number} (line {line})"
    if len(cells) != len(header):
        return AccountRow(number, line, None, f"{where}: expected {len(header)} fields, found {len(cells)}", cells,
                          header, _guess_id(header, cells))
    bad = _bad_bytes(cells, checked)
    if bad is not None:
        return AccountRow(number, line, None, f"{where}: field {header[bad]!r}: bytes that are not UTF-8", cells,
                          header, _guess_id(header, cells))
    values = dict(zip(header, cells, strict=True))
    if "id" in values:
        values["id"] = normalise_id(values["id"])
    return AccountRow(number, line, values, None, cells, header)


def _guess_id(header: list[str], cells: list[str]) -> str | None:
    """The id of a row that cannot be read, when its id cell is still plain."""
    if "id" in header and header.index("id") < len(cells):
        value = normalise_id(cells[header.index("id")])
        if value and value.isprintable() and _bad_bytes([value]) is None:
            return value
    return None


# ------------------------------------------------------------ contact history


@dataclass(frozen=True)
class Vocabulary:
    """The names a policy knows in the history: its actions and events, and
    its outcomes (closed when the policy declares them)."""

    actions: tuple[str, ...]
    outcomes: tuple[str, ...]
    outcomes_declared: bool = False

    @classmethod
    def of(cls, model: Model) -> Vocabulary:
        return cls(tuple(model.actions) + tuple(model.events), tuple(model.outcomes), model.outcomes_declared)

    def unknown(self, action: str, outcome: str) -> tuple[str, str, str | None, bool] | None:
        """For a row naming a name the policy does not know: (what, value,
        the known name meant, whether `--strict` refuses it). An unknown action
        always counts; an unknown outcome only when the outcomes are declared
        or it is a spelling variant of a known one (other free-text outcomes
        are what history files carry and no rule reads)."""
        from .inputs import nearest

        if action not in self.actions:
            return "action", action, nearest(action, self.actions), True
        if outcome and outcome not in self.outcomes:
            meant = nearest(outcome, self.outcomes)
            return "outcome", outcome, meant, self.outcomes_declared or meant is not None
        return None


@dataclass
class History:
    """Contacts by account id, plus the ids whose history could not be read."""

    contacts: dict[str, list[Contact]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # account id -> first problem
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    # (what, value) -> [rows, the known name meant or None]: history rows naming
    # an action or outcome the policy does not know, reported per distinct value
    unknown: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # account id -> first row `--strict` refuses
    bom_lines: list[int] = field(default_factory=list)
    path: str = ""

    def for_account(self, account_id: str | None) -> list[Contact]:
        return self.contacts.get(account_id or "", [])

    def unmatched(self, seen: set[str]) -> int:
        """Readable history rows whose account is none of `seen` (the ids of
        the accounts run): contact history that decided nothing."""
        return sum(len(contacts) for account_id, contacts in self.contacts.items() if account_id not in seen)

    def note_unknown(self, account_id: str, where: str, vocabulary: Vocabulary, contact: Contact) -> None:
        found = vocabulary.unknown(contact.action, contact.outcome)
        if found is None:
            return
        what, value, meant, refused = found
        entry = self.unknown.setdefault((what, value), [0, meant])
        entry[0] += 1
        if refused and account_id not in self.refused:
            hint = f" (did you mean {meant!r}?)" if meant is not None else ""
            self.refused[account_id] = f"{where}: {what} {value!r} is not one the policy knows{hint}"


def read_history(path: str, vocabulary: Vocabulary | None = None) -> History:
    """The contact history, indexed by (normalised) account id. With a
    `vocabulary`, rows naming an action or outcome the policy does not know
    are counted in `unknown` (and their accounts noted in `refused`)."""
    history = History(path=path)
    handle = _open_text(path)
    with handle:
        records = _records(handle)
        header = _header(records, path, " (account_id,action,at,outcome)")
        missing = [name for name in HISTORY_COLUMNS[:3] if name not in header]
        if missing:
            raise InputError(f"{path}: contact history needs columns {', '.join(HISTORY_COLUMNS)}; "
                             f"missing {', '.join(missing)}")
        index = {name: header.index(name) for name in HISTORY_COLUMNS if name in header}
        for record in records:
            history.rows += 1
            if record.bom:
                history.bom_lines.append(record.line)
            contact = _add_contact(history, path, record, header, index)
            if contact is not None and vocabulary is not None:
                history.note_unknown(contact.account_id, f"{path}:{record.line}", vocabulary, contact)
    return history


def _add_contact(history: History, path: str, record: _Record, header: list[str],
                 index: dict[str, int]) -> Contact | None:
    """One history record into `history`, or its problem (with file:line)
    into `history.problems` and the account into `history.broken`. The
    common, well-formed row is handled without building any message."""
    cells = record.cells
    id_at, at_at = index["account_id"], index["at"]
    account_id = normalise_id(cells[id_at]) if len(cells) > id_at else ""
    problem = record.problem
    if problem is not None:
        pass
    elif len(cells) != len(header):
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
        problem = f"{path}:{record.line}: {problem}"
        history.problems.append(problem)
        if account_id and account_id not in history.broken:
            history.broken[account_id] = problem
        return None
    outcome = cells[index["outcome"]].strip() if "outcome" in index else ""
    contact = Contact(account_id, cells[index["action"]].strip(), at, outcome)
    history.contacts.setdefault(account_id, []).append(contact)
    return contact


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
    try:
        fd, temporary = tempfile.mkstemp(prefix=".policy-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        os.chmod(temporary, _mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


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
