"""CSV and JSONL in and out, row by row, losing nothing.

Accounts are streamed: one row in, one decision out, in input order, so
memory does not grow with the portfolio. A row that cannot be read becomes
an error decision naming its row and field. Contact history is streamed
too (`HistoryFile`; `policydsl.history` joins it to the accounts or indexes
it on disk, `read_history` holds it in memory for one-off lookups); a history
row that cannot be read is reported with its line and the account it
belongs to is not evaluated on a partial history. Output files are written
to a temporary file beside the target and renamed into place, so an
interrupted run leaves the previous output intact.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import json
import os
import signal
import stat
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from io import StringIO
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol

from .decision import Blocked, Contact, Decision, Provenance, format_exact_instant, format_instant
from .errors import PolicyError
from .inputs import id_text, normalise_id
from .values import ValueProblem, read_datetime

if TYPE_CHECKING:
    from .model import Model

csv.field_size_limit(16 * 1024 * 1024)

HISTORY_COLUMNS = ("account_id", "action", "at", "outcome")
# How close a history value must be to a known action or outcome to count as its misspelling (an outcome that
# does counts under --strict); stricter than for names in policies, since outcomes are free text.
SPELLING_CUTOFF = 0.75


class InputError(PolicyError):
    """A whole input file cannot be used (missing, no header, missing column)."""


@dataclass(frozen=True)
class AccountRow:
    """One data row of the accounts file: its values, or why it cannot be read."""

    number: int  # 1-based data row (the header is not counted); 0 in a source with no row order (Spark)
    line: int | None  # physical line where the row starts (None: a Parquet or Spark row has no lines)
    values: dict[str, Any] | None  # text from a CSV; typed values from Arrow (Parquet, Spark)
    problem: str | None = None
    raw: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # shared by all rows of a file
    unread_id: str | None = None  # the id of a row that could not be read, if known

    @property
    def account_id(self) -> str | None:
        if self.values is not None:
            return self.values.get("id") or None
        return self.unread_id

    @property
    def where(self) -> str:
        """Where the row is, for its error ("" for a row of an unordered source)."""
        if self.number <= 0:
            return ""
        return f"row {self.number}" if self.line is None else f"row {self.number} (line {self.line})"


def open_text(path: str) -> IO[str]:
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
    if columns is None and "".join(cells).isascii():  # the usual row, checked in one C call
        return None
    for index in range(len(cells)) if columns is None else columns:
        cell = cells[index]
        if not cell.isascii() and any("\udc80" <= char <= "\udcff" for char in cell):
            return index
    return None


# ------------------------------------------------------------ physical records


class _Record(NamedTuple):
    """One CSV record: the physical line it starts on, its cells, and why it
    cannot be used (the cells are then what could be made of its first line).
    A named tuple: one is built per row of every file read, and a tuple is
    built several times faster than a frozen dataclass."""

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
        self.bom = False  # the current record holds a byte-order mark

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
        if "\ufeff" in line:
            self.bom = True
        return line

    def begin(self) -> int:
        """Start a record; its first physical line number."""
        self.taken = []
        self.hit_end = False
        self.bom = False
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
        if lines.bom:
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


def _wide_encoding(cells: list[str]) -> str | None:
    """What a header read as UTF-8 says the file really is: a UTF-16 byte
    order mark (kept as surrogates by the reader), or the NUL bytes that
    every ASCII character of UTF-16 or UTF-32 text carries. Said outright,
    since "missing columns" would send a user looking in the wrong place."""
    start = cells[0][:4] if cells else ""
    if start == "\udcff\udcfe\0\0":
        return "UTF-32 (byte-order mark FF FE 00 00)"
    if start[:2] == "\udcff\udcfe":
        return "UTF-16 (byte-order mark FF FE)"
    if start[:2] == "\udcfe\udcff":
        return "UTF-16 (byte-order mark FE FF)"
    if any("\0" in cell for cell in cells):
        return "UTF-16 or UTF-32 (its header holds NUL bytes)"
    return None


def _header(records: Iterator[_Record], path: str, what: str) -> list[str]:
    """The header record, trimmed, or InputError. A name that appears twice
    stops the run: which of the two columns holds the value is a guess."""
    first = next(records, None)
    if first is None:
        raise InputError(f"{path}: empty file: no header row{what}")
    encoding = _wide_encoding(first.cells)
    if encoding is not None:
        raise InputError(f"{path}: the file is {encoding}, not UTF-8: save or export it as UTF-8 (\"CSV UTF-8\")")
    if first.problem is not None:
        raise InputError(f"{path}: header cannot be read: {first.problem}")
    return distinct_columns(path, [_printable(name.replace("\ufeff", "").strip()) for name in first.cells])


def distinct_columns(path: str, names: Iterable[str]) -> list[str]:
    """The column names, or InputError for one that appears twice: which of
    the two columns holds the value would be a guess (a CSV header, a
    Parquet schema)."""
    header = list(names)
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears twice (columns {seen[name]} and {number}); "
                             "rename or remove one")
        seen[name] = number
    return header


# ------------------------------------------------------------ accounts


class AccountsSource:
    """What a run needs of an accounts file whatever its format: its header
    checked against the policy (`unknown` columns, defaulted fields that are
    `absent`) and, once read, the lines where a byte-order mark was removed
    (`bom_lines`, CSV only); iterating gives its rows in order."""

    path: str
    header: list[str]
    unknown: list[str]
    absent: list[str]
    bom_lines: list[int]
    _rows: Iterator[AccountRow]
    absent_words = "have no column"

    def _check_header(self, required: set[str], fields: set[str] | None) -> list[int]:
        """InputError for a missing column; the notes for the rest. Returns
        the indexes of the columns the policy reads."""
        missing = sorted(required - set(self.header))
        if missing:
            raise InputError(f"{self.path}: missing column(s) {', '.join(missing)} (the policy has no default "
                             "for them)")
        known = set(self.header) if fields is None else fields
        self.unknown = [_unknown_column(name, number, known)
                        for number, name in enumerate(self.header, 1) if name not in known]
        self.absent = sorted(known - required - set(self.header))
        self.bom_lines = []
        return [i for i, name in enumerate(self.header) if name in known]

    def __iter__(self) -> Iterator[AccountRow]:
        return self._rows

    def __next__(self) -> AccountRow:
        return next(self._rows)

    @property
    def notes(self) -> list[str]:
        """What a run reports about this file (and `--strict` refuses)."""
        notes = [f"{self.path}: {text}" for text in self.unknown]
        if self.absent:
            fields = ", ".join(self.absent)
            notes.append(f"{self.path}: {len(self.absent)} defaulted field(s) {self.absent_words}, so their "
                         f"defaults are used for every row: {fields}")
        return notes


class AccountsFile(AccountsSource):
    """An accounts CSV with its header read and checked; iterating gives its
    rows."""

    def __init__(self, path: str, required: set[str], fields: set[str] | None) -> None:
        self.path = path
        handle = open_text(path)
        records = _records(handle)
        try:
            self.header = _header(records, path, "")
            checked = self._check_header(required, fields)
        except BaseException:
            handle.close()
            raise
        self._rows = self._read(handle, records, checked)

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


class JsonLinesAccounts(AccountsSource):
    """Accounts as JSON lines, one object per line (`{"id": "A1",
    "days_past_due": 12, "flags": ["vip"]}`): the typed values a service
    exports, read as a Parquet row's are (numbers exactly, as Decimal, and
    an int id as its text). A line that is no JSON object is an error row
    naming its row and line; blank lines are no rows.

    A JSON lines file has no header, so what a CSV header tells before the
    first row is learnt while reading: the keys that are no field
    (`unknown`) and the defaulted fields no line gives (`absent`) are
    complete, for the run's report, once the file is read. `--strict`
    cannot refuse the file before deciding, so it refuses each row that
    holds a key the policy does not read, or leaves a defaulted field to
    its default, as an error row."""

    absent_words = "are a key of no line"

    def __init__(self, path: str, required: set[str], fields: set[str] | None, strict: bool = False) -> None:
        self.path = path
        self.header = ["json"]  # a rejected row is its line (`--errors`)
        self.unknown = []
        self.absent = []
        self.bom_lines = []
        self._known = fields
        self._defaulted = set(fields or ()) - required
        self._strict = strict
        self._seen: set[str] = set()
        self._unknown_keys: dict[str, None] = {}
        self._rows = self._read(open_text(path))

    def _read(self, handle: IO[str]) -> Iterator[AccountRow]:
        with handle:
            number = 0
            for line_number, line in enumerate(handle, 1):
                if line.startswith("\ufeff") and line_number > 1:
                    self.bom_lines.append(line_number)
                    line = line[1:]
                if not line.strip():
                    continue
                number += 1
                yield self._row(number, line_number, line.rstrip("\r\n"))
        defaulted = self._defaulted - self._seen
        self.absent = sorted(defaulted)
        self.unknown = [_unknown_column(name, 0, self._known or set(), "key") for name in self._unknown_keys]

    def _row(self, number: int, line_number: int, line: str) -> AccountRow:
        """One line as a row; the usual line, an object whose keys are all
        fields, costs one `json.loads` and a pass over its keys."""
        def refused(problem: str, unread_id: str | None = None) -> AccountRow:
            return AccountRow(number, line_number, None, f"row {number} (line {line_number}): {problem}", [line],
                              self.header, unread_id)

        if _bad_bytes([line]) is not None:
            return refused("bytes that are not UTF-8")
        try:
            values = json.loads(line, parse_float=Decimal, parse_constant=_no_constant)
        except (ValueError, RecursionError) as error:
            return refused(f"not JSON ({error.msg if isinstance(error, json.JSONDecodeError) else error})")
        if not isinstance(values, dict):
            return refused(f"a JSON object with the account's fields, not {type(values).__name__}")
        account_id = id_text(values.get("id"))
        if "id" in values:
            values["id"] = account_id
        self._seen.update(values)
        unknown = [key for key in values if key not in self._known] if self._known is not None else []
        for key in unknown:
            self._unknown_keys.setdefault(key)
        if self._strict:
            unread_id = account_id if isinstance(account_id, str) and account_id else None
            if unknown:
                return refused(f"key {unknown[0]!r} is not a field of the policy; --strict decides no row with a "
                               "key the policy does not read", unread_id)
            left = sorted(self._defaulted - values.keys())
            if left:
                return refused(f"no key for the defaulted field(s) {', '.join(left)}; --strict decides no row on "
                               "a default it was not given", unread_id)
        return AccountRow(number, line_number, values, None, [line], self.header)


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON, and no account value."""
    raise ValueError(f"{name} is not a number JSON has")


def _unknown_column(name: str, number: int, fields: set[str], word: str = "column") -> str:
    from .suggest import did_you_mean_aside

    if not name:
        return f"column {number} has no name and is ignored" if word == "column" else f"an empty {word} is ignored"
    return f"{word} {name!r} is not a field of the policy and is ignored" + did_you_mean_aside(name, fields)


def read_accounts(path: str, required: set[str], fields: set[str] | None = None,
                  input_format: str | None = None, strict: bool = False) -> AccountsSource:
    """The rows of an accounts file: CSV, JSON lines or Parquet (by
    `input_format`, else by the file's name; `strict` for JSON lines, see
    `JsonLinesAccounts`). Raises InputError when the header lacks a column
    the policy needs (every row would fail the same way) or names a column
    twice. Only the columns in `fields` (default: all) are checked for
    bytes that are not UTF-8, since the others are ignored; the others are
    reported in `notes`."""
    chosen = input_format or ("parquet" if is_parquet_name(path) else "jsonl" if is_jsonl_name(path) else "csv")
    if chosen == "jsonl":
        return JsonLinesAccounts(path, required, fields, strict)
    if chosen == "parquet":
        if path == "-":
            raise InputError("standard input: Parquet cannot be read from a stream (its index is at the end); "
                             "give a file")
        from .parquet import ParquetAccounts

        return ParquetAccounts(path, required, fields)
    return AccountsFile(path, required, fields)


def is_jsonl_name(path: str) -> bool:
    """JSON lines by name (`.jsonl`, `.ndjson`)."""
    return os.path.splitext(path)[1].lower() in (".jsonl", ".ndjson")


def is_parquet_name(path: str) -> bool:
    """Parquet by name (`.parquet`, `.pq`, `.parq`), as a run chooses its formats."""
    return os.path.splitext(path)[1].lower() in (".parquet", ".pq", ".parq")


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
        if self.knows(action, outcome):
            return None
        return _unknown_name(self, action, outcome)

    def knows(self, action: str, outcome: str) -> bool:
        """Whether a row names only known names (the check every row pays)."""
        return action in self._action_set and (not outcome or outcome in self._outcome_set)

    @functools.cached_property
    def _action_set(self) -> frozenset[str]:
        return frozenset(self.actions)

    @functools.cached_property
    def _outcome_set(self) -> frozenset[str]:
        return frozenset(self.outcomes)


@lru_cache(maxsize=65536)  # a history repeats a few names on millions of rows; the spelling search is slow
def _unknown_name(vocabulary: Vocabulary, action: str, outcome: str) -> tuple[str, str, str | None, bool] | None:
    """Vocabulary.unknown, for a row that names an action or an outcome outside the vocabulary."""
    from .suggest import closest

    if action not in vocabulary.actions:
        return "action", action, closest(action, vocabulary.actions, SPELLING_CUTOFF), True
    meant = closest(outcome, vocabulary.outcomes, SPELLING_CUTOFF)
    return "outcome", outcome, meant, vocabulary.outcomes_declared or meant is not None


@dataclass
class HistoryFacts:
    """What one complete read of a contact-history file found besides its
    contacts: the ids whose history could not be read, the problems, the
    unknown vocabulary. It grows with the problems (and distinct unknown
    names), never with the readable rows."""

    broken: dict[str, str] = field(default_factory=dict)  # account id -> first problem
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    # (what, value) -> [rows, the known name meant or None]: history rows naming
    # an action or outcome the policy does not know, reported per distinct value
    unknown: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # account id -> first row `--strict` refuses
    bom_lines: list[int] = field(default_factory=list)
    path: str = ""
    outcomes_declared: bool = False  # the policy closed its outcome vocabulary
    # How a problem names its row: a CSV by file and line, Parquet by file and row (`locate`); "" for a
    # source with no row order (a Spark DataFrame), whose problems name no row.
    row_label: str = "{path}:{line}"

    def locate(self, line: int) -> str:
        return self.row_label.format(path=self.path, line=line)

    def unreadable(self, line: int, account_id: str, problem: str) -> None:
        """A history row that cannot be read: reported, and its account
        (when it names one) decided by no rule."""
        located = f"{self.locate(line)}: {problem}" if self.row_label else problem
        self.problems.append(located)
        if account_id and account_id not in self.broken:
            self.broken[account_id] = f"unreadable row {located}" if self.row_label else f"unreadable row: {problem}"

    def note_unknown(self, account_id: str, line: int, vocabulary: Vocabulary, contact: Contact) -> None:
        """Count a row naming an unknown action or outcome (`line`: where it
        starts in the file); free-text outcomes of an open vocabulary pass
        here on most rows of a history, so nothing is built unless refused."""
        found = vocabulary.unknown(contact.action, contact.outcome)
        if found is None:
            return
        what, value, meant, refused = found
        entry = self.unknown.setdefault((what, value), [0, meant])
        entry[0] += 1
        if refused and account_id not in self.refused:
            hint = f" (did you mean {meant!r}?)" if meant is not None else ""
            self.refused[account_id] = (f"row {self.locate(line)} names {what} {value!r}, which the policy does not "
                                        f"know{hint}; "
                                        "--strict decides no account on such a row")


@dataclass
class History(HistoryFacts):
    """Contacts by account id, in memory, plus what `HistoryFacts` holds
    (for `policy explain` and callers of the API; `policy run` streams)."""

    contacts: dict[str, list[Contact]] = field(default_factory=dict)

    def for_account(self, account_id: str | None) -> list[Contact]:
        return self.contacts.get(account_id or "", [])


class ContactLookup(Protocol):
    """What deciding a stream of rows asks of a contact history: each row's
    contacts (asked for in row order, so a merge join can answer) and the
    accounts whose history cannot be used."""

    @property
    def broken(self) -> dict[str, str]: ...

    def for_account(self, account_id: str | None) -> list[Contact]: ...


class HistoryFile:
    """A contact-history CSV with its header read and checked; iterating
    reads its rows once and gives the readable contacts in file order, while
    the rest of what the file holds goes into `facts`. With a `vocabulary`,
    rows naming an action or outcome the policy does not know are counted
    in `facts.unknown` (and their accounts noted in `facts.refused`)."""

    def __init__(self, path: str, vocabulary: Vocabulary | None = None, facts: HistoryFacts | None = None) -> None:
        self.facts = facts if facts is not None else HistoryFacts()
        self.facts.path = path
        self.facts.outcomes_declared = vocabulary is not None and vocabulary.outcomes_declared
        handle = open_text(path)
        records = _records(handle)
        try:
            header = _header(records, path, " (account_id,action,at,outcome)")
        except BaseException:
            handle.close()
            raise
        missing = [name for name in HISTORY_COLUMNS[:3] if name not in header]
        if missing:
            handle.close()
            raise InputError(f"{path}: contact history needs columns {', '.join(HISTORY_COLUMNS)}; "
                             f"missing {', '.join(missing)}")
        index = {name: header.index(name) for name in HISTORY_COLUMNS if name in header}
        self._contacts = self._read(handle, records, header, index, vocabulary)

    def __iter__(self) -> Iterator[Contact]:
        return self._contacts

    def close(self) -> None:
        """Stop reading (a read abandoned half-way closes its file now)."""
        self._contacts.close()

    def _read(self, handle: IO[str], records: Iterator[_Record], header: list[str], index: dict[str, int],
              vocabulary: Vocabulary | None) -> Generator[Contact, None, None]:
        facts, path = self.facts, self.facts.path
        with handle:
            for record in records:
                facts.rows += 1
                if record.bom:
                    facts.bom_lines.append(record.line)
                contact = _read_contact(facts, path, record, header, index)
                if contact is None:
                    continue
                if vocabulary is not None and not vocabulary.knows(contact.action, contact.outcome):
                    facts.note_unknown(contact.account_id, record.line, vocabulary, contact)
                yield contact


def read_history(path: str, vocabulary: Vocabulary | None = None) -> History:
    """The whole contact history (CSV, or Parquet by its name) in memory,
    indexed by (normalised) account id, with what `HistoryFile` reports."""
    history = History()
    if path != "-" and is_parquet_name(path):
        from .parquet import ParquetHistory

        contacts: Iterable[Contact] = ParquetHistory(path, vocabulary, history)
    else:
        contacts = HistoryFile(path, vocabulary, history)
    for contact in contacts:
        history.contacts.setdefault(contact.account_id, []).append(contact)
    return history


def _read_contact(facts: HistoryFacts, path: str, record: _Record, header: list[str],
                  index: dict[str, int]) -> Contact | None:
    """One CSV history record as a Contact, or its problem (see `read_contact`).
    The common, well-formed row is handled without building any message."""
    cells = record.cells
    id_at = index["account_id"]
    account_id = normalise_id(cells[id_at]) if len(cells) > id_at else ""
    problem = record.problem
    if problem is None:
        if len(cells) != len(header):
            problem = f"expected {len(header)} fields, found {len(cells)}"
        elif _bad_bytes(cells) is not None:
            problem = "bytes that are not UTF-8"
    if problem is not None:
        facts.unreadable(record.line, account_id, problem)
        return None
    outcome = cells[index["outcome"]] if "outcome" in index else ""
    return read_contact(facts, record.line, account_id, cells[index["action"]], cells[index["at"]], outcome)


_TEXT_OR_NULL = (str, type(None))  # a tuple: isinstance with it is cheaper than with `str | None`, once per row


def read_contact(facts: HistoryFacts, line: int, account_id: str, action: Any, at: Any, outcome: Any) -> Contact | None:
    """One history row as a Contact, whatever the format read it (CSV text,
    Arrow's typed values: a null is an empty cell), or None with its problem
    (at `line`, as `facts.locate` names it) in `facts.problems` and its
    account in `facts.broken`, so that no account is decided on part of its
    history."""
    problem = None
    if not account_id:
        problem = "account_id is empty"
    elif not isinstance(action, _TEXT_OR_NULL) or not isinstance(outcome, _TEXT_OR_NULL):
        name, value = ("action", action) if not isinstance(action, _TEXT_OR_NULL) else ("outcome", outcome)
        problem = f"field {name!r}: {shown_cell(value)}; expected text"
    else:
        try:
            instant = read_datetime("" if at is None else at)
        except ValueProblem as expected:
            problem = f"field 'at': {shown_cell(at)}; expected {expected}"
    if problem is not None:
        facts.unreadable(line, account_id, problem)
        return None
    return Contact(account_id, (action or "").strip(), instant, (outcome or "").strip())


def shown_cell(value: Any) -> str:
    """A cell as an error shows it: text quoted, an instant in ISO form
    (saying so when it has no time zone), anything else by its type."""
    if value is None:
        return "''"
    if isinstance(value, dt.datetime):
        return value.isoformat() + (" (no time zone)" if value.tzinfo is None else "")
    if isinstance(value, str):
        return repr(value)
    return f"{value!r} ({type(value).__name__})"


# ------------------------------------------------------------ output

CSV_COLUMNS = ("account_id", "stage", "segments", "next_action", "allowed", "error")  # then 3 per action


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_KEPT_JSON = 8192
_entry_json: dict[int, tuple[Blocked, str]] = {}  # by id(entry), the entry kept so that its id is not reused
_policy_json: dict[int, tuple[Provenance, str]] = {}


def decision_json(decision: Decision, blocked: str = "all") -> str:
    """One JSONL line: `Decision.to_dict()` as compact JSON (the tests hold
    the two equal, key order included). `blocked="actionable"` leaves out
    the fixed entries. Most blocked entries are objects the compiled policy
    built once (a stage that does not allow an action, a forbid), the same
    for every account, and so is the provenance: their JSON is kept."""
    if blocked == "actionable":
        decision = actionable(decision)
    return "".join((
        '{"account_id":', _dumps(decision.account_id), ',"stage":', _dumps(decision.stage),
        ',"segments":', _dumps(list(decision.segments)), ',"allowed":', _dumps(list(decision.allowed)),
        ',"next_action":', _dumps(decision.next_action),
        ',"blocked":[', ",".join(_kept(_entry_json, entry, Blocked.to_dict, entry.until is None)
                              for entry in decision.blocked),
        '],"error":', _dumps(decision.error), ',"now":', _dumps(format_exact_instant(decision.now)),
        ',"policy":', "null" if decision.policy is None else _kept(_policy_json, decision.policy, Provenance.to_dict),
        "}"))


def _kept(kept: dict[int, tuple[Any, str]], value: Any, to_dict: Callable[[Any], dict[str, Any]],
          recurs: bool = True) -> str:
    """The JSON of `value`, kept while the same object recurs (bounded);
    `recurs=False` for one built for its account alone (an entry with an
    `until`), which is not worth a place."""
    if not recurs:
        return _dumps(to_dict(value))
    found = kept.get(id(value))
    if found is not None and found[0] is value:
        return found[1]
    text = _dumps(to_dict(value))
    if len(kept) >= _KEPT_JSON:
        kept.clear()
    kept[id(value)] = (value, text)
    return text


def is_fixed(entry: Blocked) -> bool:
    """An entry time alone cannot lift: the stage does not allow the action,
    or a forbid holds and nothing says until when."""
    return entry.kind == "not_allowed" or (entry.kind == "forbidden" and entry.until is None)


def actionable(decision: Decision) -> Decision:
    """The decision without its fixed blocked entries (for plan consumers: the
    rest are the blocks that lift, each with its `until`)."""
    return replace(decision, blocked=tuple(entry for entry in decision.blocked if not is_fixed(entry)))


def first_reasons(decision: Decision) -> dict[str, Blocked]:
    """For each blocked action, the entry to show first: the first that
    restricts it (anything but "not allowed in this stage"), else that one."""
    shown: dict[str, Blocked] = {}
    for entry in decision.blocked:
        known = shown.get(entry.action)
        if known is None or (known.kind == "not_allowed" and entry.kind != "not_allowed"):
            shown[entry.action] = entry
    return shown


@dataclass(frozen=True)
class LineFormat:
    """How a decision becomes one line of output (`jsonl` or `csv`): what a
    `--jobs` worker is given, so that it sends back text, not a Decision to
    encode again in the parent (which reads and writes for every worker)."""

    kind: str  # jsonl or csv
    blocked: str = "all"  # jsonl: all or actionable
    actions: tuple[str, ...] = ()  # csv: the columns per action, in this order

    def header(self) -> str:
        return _csv_line(csv_header(self.actions)) if self.kind == "csv" else ""

    def line(self, decision: Decision) -> str:
        if self.kind == "jsonl":
            return decision_json(decision, self.blocked) + "\n"
        return _csv_line(decision_csv_row(decision, self.actions))


def _csv_line(cells: list[str]) -> str:
    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def csv_header(actions: Iterable[str]) -> list[str]:
    """The fixed columns, then per action its status, `until` and first reason."""
    return [*CSV_COLUMNS, *(f"{action}{suffix}" for action in actions for suffix in ("", "_until", "_reason"))]


def decision_csv_row(decision: Decision, actions: Iterable[str]) -> list[str]:
    """Flat form, one value per cell: lists `;`-separated; per action
    `allowed` or the kind of its first restricting entry (`forbidden`,
    `window`, `limit`, `quiet`, `not_allowed`), its `until` and that reason.
    Every cell is made safe to open in a spreadsheet."""
    first = first_reasons(decision)
    cells = [decision.account_id or "", decision.stage or "", ";".join(decision.segments),
             decision.next_action or "", ";".join(decision.allowed), decision.error or ""]
    for action in actions:
        entry = first.get(action)
        if entry is None:
            cells += ["allowed" if action in decision.allowed else "", "", ""]
        else:
            cells += [entry.kind, format_instant(entry.until) or "", entry.reason]
    return [spreadsheet_safe(cell) for cell in cells]


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet shows as text: one that begins like a formula
    (`=`, `+`, `-`, `@`, tab, carriage return) gets a leading `'`, as OWASP
    recommends against CSV injection."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def visible(text: str) -> str:
    """Text safe to write to a terminal: control and other unprintable
    characters (escape sequences, carriage returns, bidi overrides) are shown
    as Python-style escapes instead of acting on the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char)
    if named is not None:
        return named
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def check_outputs(outputs: dict[str, str | None], inputs: Iterable[str]) -> None:
    """InputError when an output is one of the inputs or another output:
    writing it would destroy what the run reads (or keep one of two
    outputs). Compared as files (device and inode), not by name, so
    `./in.csv`, a symlink or a hard link are caught too; outputs that do not
    exist yet are compared by their resolved path. Non-regular outputs
    (`/dev/null`, a terminal, a FIFO) are never replaced and are exempt."""
    named_inputs = [path for path in inputs if path != "-"]
    input_ids = {_identity(path): path for path in named_inputs}
    seen: dict[object, str] = {}
    for option, path in outputs.items():
        if path is None or path == "-" or _is_special(path):
            continue
        identity = _identity(path)
        if identity is not None and identity in input_ids:
            raise InputError(f"{option} {path}: is the input {input_ids[identity]}; refusing to overwrite it")
        key = identity if identity is not None else os.path.realpath(path)
        if key in seen:
            raise InputError(f"{option} {path}: is also the {seen[key]} output; give two different files")
        seen[key] = option


def _is_special(path: str) -> bool:
    """A target that exists and is no regular file (device, FIFO, socket)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def atomic_output(path: str | None, errors: str = "strict") -> Iterator[IO[str]]:
    """Standard output, or a file that appears only once fully written
    (`errors=\"surrogateescape\"`: undecodable input bytes, which the readers
    keep as surrogates, are written back as the bytes they were).

    A regular file (or a new one) is written to a temporary file beside its
    resolved target (a symlink stays a link) and renamed into place; a
    device, FIFO or the like is written directly (replacing `/dev/null` with
    a file would be wrong). A write that fails (a full disk) is an InputError
    naming the target, with the old output intact and no temporary file left."""
    with _atomic(path, sys.stdout, lambda target: open(target, "w", encoding="utf-8", errors=errors,
                                                       newline="")) as handle:
        yield handle


@contextlib.contextmanager
def atomic_binary_output(path: str | None) -> Iterator[IO[bytes]]:
    """`atomic_output` for bytes (a Parquet file)."""
    with _atomic(path, sys.stdout.buffer, lambda target: open(target, "wb")) as handle:
        yield handle


@contextlib.contextmanager
def _atomic(path: str | None, stdout: IO[Any], opener: Callable[[str | int], IO[Any]]) -> Iterator[IO[Any]]:
    if path is None or path == "-":
        try:
            yield stdout
        except OSError as exc:
            raise InputError(f"standard output: cannot write: {exc.strerror or exc}") from None
        _finish("standard output", stdout.flush)
        return
    if _is_special(path):
        with _direct(path, opener) as handle:
            yield handle
        return
    target = os.path.realpath(path)
    deferred = block_stop_signals()  # a stop signal between mkstemp and `try` would leave the file behind
    try:
        fd, temporary = tempfile.mkstemp(prefix=".policy-", suffix=".tmp", dir=os.path.dirname(target))
    except OSError as exc:
        restore_signals(deferred)
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        restore_signals(deferred)  # a pending stop signal is raised here, where the file is removed
        os.chmod(temporary, _mode_for(target))
        with opener(fd) as handle:
            try:
                yield handle
            except OSError as exc:  # the body's writes to `handle`
                raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
            _finish(path, handle.flush)
            _finish(path, lambda: os.fsync(handle.fileno()))
        if _ARRIVED:
            raise Interrupted(_ARRIVED[0])
        if _STOPS_END_AT_COMMIT and threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:  # from here on the output is replaced: a stop signal comes too late
                signal.signal(signum, signal.SIG_IGN)
        _finish(path, lambda: os.replace(temporary, target))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _direct(path: str, opener: Callable[[str | int], IO[Any]]) -> Iterator[IO[Any]]:
    try:
        handle = opener(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        try:
            yield handle
        except OSError as exc:
            raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
        _finish(path, handle.flush)
    finally:
        with contextlib.suppress(OSError):
            handle.close()


def _finish(path: str, step: Callable[[], object]) -> None:
    """Run one step of getting the bytes to `path`; its failure is an InputError."""
    try:
        step()
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None


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
def interruptible(then_ignore: bool = False) -> Iterator[None]:
    """Within the block, the first stop signal raises `Interrupted`; later
    ones are ignored, so that the cleanup they would interrupt can finish.
    Handlers can only be installed from the main thread; elsewhere (an
    application calling the CLI from a thread) signals keep their handlers.

    `then_ignore`: after the block, stop signals are ignored rather than
    given back their handlers. For a command that exits next: its work is
    done (its outputs in place) or abandoned, and a signal during the
    interpreter's shutdown (joining `--jobs` workers' threads takes a
    moment) would otherwise kill it by the default action, an exit status
    saying "stopped" about a run that finished."""
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
            signal.signal(signum, signal.SIG_IGN if then_ignore else handler)
        _ARRIVED.clear()


# Whether the first output replaced ends the process's stops (`stops_end_at_commit`).
_STOPS_END_AT_COMMIT = False


def stops_end_at_commit() -> None:
    """For a program that exits when its command is done: once it replaces
    an output, stop signals are ignored, so that a signal arriving after
    that (while it reports, or writes its other output) neither says it
    stopped "before any output was replaced" nor kills it by the default
    action. A signal before the first output is replaced stops it as
    `interruptible` says, the old outputs intact."""
    global _STOPS_END_AT_COMMIT
    _STOPS_END_AT_COMMIT = True


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
        self.writer.writerow(["row", "reason", *(spreadsheet_safe(name) for name in header)])
        # Standard output cannot take undecodable bytes back; a file opened for it can.
        self.cell = (lambda cell: cell) if getattr(handle, "errors", "strict") == "surrogateescape" else _printable

    def add(self, row: AccountRow, reason: str) -> None:
        """Cells that would start a spreadsheet formula are neutralised; bytes
        that were not UTF-8 are written back as they were (the handle
        encodes with `surrogateescape`), so the fixed row is the same row."""
        self.writer.writerow([row.number, spreadsheet_safe(reason),
                              *(spreadsheet_safe(self.cell(cell)) for cell in row.raw)])


def _printable(cell: str) -> str:
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
