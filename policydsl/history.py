"""Contact history for `policy run`, never held in memory.

Each account's contacts are found in one of two ways, chosen before the
first decision:

* **joined in order**: when the history file and the accounts file are both
  sorted by account id (as `normalise_id` gives it, compared as Python
  compares strings: by code point, i.e. the byte order of UTF-8), the
  history is read alongside the accounts, one account's contacts at a time
  (a merge join). Memory holds one account's contacts.
* **indexed on disk**: otherwise the history is loaded into a temporary
  SQLite database indexed by account id, and each account's contacts are
  looked up as its row comes. Memory holds SQLite's bounded page cache.

Why the path is chosen by a pre-pass rather than by noticing, mid-run, an
account out of order: a join that has already decided accounts cannot go
back to another way of finding contacts. The pre-pass reads only the id
column of both files, with the csv module alone, so it costs a fraction of
reading the history once; a row it might read differently from the full
readers (a field over several lines, a byte-order mark inside the file,
anything the csv module refuses) sends the run to the index instead. It
checks every row's id, unreadable rows included: a join reads all of an
account's rows before that account is decided, so an unreadable row or a
row `--strict` refuses is known in time and no account is ever decided on
part of its history. A file that cannot be read twice (standard input, a
pipe) is indexed.

Why SQLite rather than an external sort by id: the accounts come in any
order and their decisions must come out in that order, so a history sorted
on disk would still need a lookup by id (or the accounts sorted too, and the
decisions sorted back). SQLite is in the standard library, keeps a B-tree
on disk behind a page cache of fixed size, and counts the unmatched rows
with one query over a table of the ids that matched.

Both ways give each account exactly the contacts, in exactly the file
order, that `io.read_history` would; the facts about the file (problems,
broken accounts, unknown vocabulary, byte-order marks, row count) come from
one complete `HistoryFile` read: before the run for the index, during it
for the join (complete once `unmatched()` has read the rest).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from .decision import Contact
from .inputs import id_text, normalise_id
from .io import HistoryFacts, HistoryFile, InputError, Vocabulary, is_jsonl_name, is_parquet_name, open_text

if TYPE_CHECKING:
    from .parquet import ParquetHistory


class RunHistory:
    """The contacts of each account of a run, asked for in the accounts'
    order, and how many history rows no account asked for. This base class
    is the run without `--history`: no account has contacts."""

    how = ""  # which way the contacts were found, for the run's summary

    def __init__(self, facts: HistoryFacts | None = None) -> None:
        self.facts = facts if facts is not None else HistoryFacts()

    @property
    def broken(self) -> dict[str, str]:
        return self.facts.broken

    def for_account(self, account_id: str | None) -> list[Contact]:
        return []

    def unmatched(self) -> int:
        """Readable history rows whose account was never asked for: contact
        history that decided nothing. Called once, after the last account."""
        return 0

    def close(self) -> None:
        """Release what the lookup holds (files, a temporary directory)."""

    def __enter__(self) -> RunHistory:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def open_history(path: str, vocabulary: Vocabulary, accounts_path: str, strict: bool = False) -> RunHistory:
    """The contact history at `path` for the accounts at `accounts_path`,
    joined in order when both are sorted by account id, else indexed on disk.
    With `strict`, an account with a history row naming an unknown action or
    outcome is broken (decided by no rule). Raises InputError for a history
    that cannot be used."""
    contacts = history_reader(path, vocabulary)  # the header checked before anything else
    if not _rereadable(path):
        return _Indexed(contacts, "history not a regular file: order not checked", strict)
    why = _order(path, "account_id", "history")
    if why is None and not _rereadable(accounts_path):
        why = "accounts not a regular file: order not checked"
    elif why is None:
        why = _order(accounts_path, "id", "accounts")
    if why is not None:
        return _Indexed(contacts, why, strict)
    return _Joined(contacts, accounts_path, strict)


def _rereadable(path: str) -> bool:
    """Whether reading `path` again gives the same bytes (a regular file,
    not standard input, a pipe or a device)."""
    if path == "-":
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def history_reader(path: str, vocabulary: Vocabulary) -> HistoryFile | ParquetHistory:
    """The history file's reader for its format (Parquet by its name)."""
    if path != "-" and is_parquet_name(path):
        from .parquet import ParquetHistory

        return ParquetHistory(path, vocabulary)
    return HistoryFile(path, vocabulary)


def _order(path: str, id_column: str, what: str) -> str | None:
    """Why a file (`what`: history or accounts) cannot be joined (None: the
    ids of all its rows never decrease), read cheaply (see the module
    docstring): it is out of order, has no id column, or holds a row the full
    reader might read otherwise. A Parquet file's id column is read alone."""
    if is_jsonl_name(path):
        return None if _json_lines_in_order(path, id_column) else f"{what} not sorted by account id (or a line " \
            "the order check does not read)"
    if is_parquet_name(path):
        from .parquet import ids_in_order

        in_parquet_order = ids_in_order(path, id_column)
        if in_parquet_order is None:
            return f"{what} id column not read alone"
        return None if in_parquet_order else f"{what} not sorted by account id"
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle)
            names = [name.replace("\ufeff", "").strip() for name in next(reader, [])]
            column = names.index(id_column)
            in_order = _in_order(_plain_id(cells, column) for cells in reader if cells and cells != [""])
    except (csv.Error, InputError, OSError, ValueError, _Unusual):
        return f"{what} rows the order check does not read alone (a field over several lines, a byte-order mark)"
    return None if in_order else f"{what} not sorted by account id"


def _json_lines_in_order(path: str, id_column: str) -> bool:
    """Whether the ids of a JSON lines file never decrease; a line that is
    no object sends the run to the index, which does not care (any name
    but .jsonl/.ndjson is checked as a CSV, and so takes the index too)."""
    try:
        with open_text(path) as handle:
            ids = (id_text(json.loads(line).get(id_column)) for line in handle if line.strip())
            return _in_order(value if isinstance(value, str) else "" for value in ids)
    except (InputError, OSError, ValueError, AttributeError, RecursionError):
        return False


class _Unusual(Exception):
    """A row the cheap order check does not trust itself to read as the full reader does."""


def _plain_id(cells: list[str], column: int) -> str:
    """A row's id as both readers see it ("" for a row too short to have
    one, which both skip); _Unusual where they might differ."""
    if any("\n" in cell or "\r" in cell or "\ufeff" in cell for cell in cells):
        raise _Unusual
    return normalise_id(cells[column]) if column < len(cells) else ""


def _in_order(ids: Iterable[str | None]) -> bool:
    """Whether the non-empty ids never decrease (stops at the first that
    does). Equal ids may repeat: an account's contacts are consecutive, and
    an accounts file may hold an id twice."""
    previous = ""
    for account_id in ids:
        if account_id:
            if account_id < previous:
                return False
            previous = account_id
    return True


class _Joined(RunHistory):
    """A merge join: the history (sorted by account id) is read as the
    accounts (sorted too) ask for their contacts; rows passed over for an id
    no account has are counted as unmatched."""

    how = "joined in order (both files sorted by account id)"

    def __init__(self, contacts: HistoryFile | ParquetHistory, accounts_path: str, strict: bool) -> None:
        super().__init__(contacts.facts)
        self._strict = strict
        self._file = contacts
        self._contacts = iter(contacts)
        self._accounts_path = accounts_path
        self._next: Contact | None = next(self._contacts, None)
        self._id = ""  # the id last asked for, and its contacts
        self._group: list[Contact] = []
        self._unmatched = 0

    def for_account(self, account_id: str | None) -> list[Contact]:
        if not account_id:
            return []
        if account_id == self._id:
            return self._group
        if account_id < self._id:
            raise InputError(f"{self._accounts_path}: account {account_id!r} comes after {self._id!r}: the file "
                             "changed during the run (it was sorted by account id when the run began)")
        while self._next is not None and self._next.account_id < account_id:
            self._unmatched += 1
            self._advance()
        group = []
        while self._next is not None and self._next.account_id == account_id:
            group.append(self._next)
            self._advance()
        self._id, self._group = account_id, group
        # every row of this account has now been read (the next is another's), unreadable ones included
        if self._strict and account_id in self.facts.refused:
            self.facts.broken.setdefault(account_id, self.facts.refused[account_id])
        return group

    def _advance(self) -> None:
        assert self._next is not None
        previous = self._next.account_id
        self._next = next(self._contacts, None)
        if self._next is not None and self._next.account_id < previous:
            raise InputError(f"{self.facts.path}: account {self._next.account_id!r} comes after {previous!r}: the "
                             "file changed during the run (it was sorted by account id when the run began)")

    def unmatched(self) -> int:
        while self._next is not None:
            self._unmatched += 1
            self._advance()
        return self._unmatched

    def close(self) -> None:
        self._file.close()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class _Indexed(RunHistory):
    """The history in a temporary SQLite database, one row per contact (its
    instant as integer microseconds in UTC, which is how `read_datetime`
    gives it, so it comes back equal and in the same zone), indexed by
    account id; each account's contacts come back in file order (rowid).
    The ids that found contacts go into a table, so the unmatched rows are
    counted by a query, not by a set in memory."""

    def __init__(self, contacts: HistoryFile | ParquetHistory, why: str, strict: bool) -> None:
        super().__init__(contacts.facts)
        self.how = f"indexed on disk ({why})"
        self._directory = tempfile.TemporaryDirectory(prefix="policy-history-")
        try:
            self._db = sqlite3.connect(os.path.join(self._directory.name, "history.sqlite"), isolation_level=None)
            with self._disk():
                self._load(contacts)
        except BaseException:
            contacts.close()
            self.close()
            raise
        if strict:  # the whole file has been read: every refusal is known
            for account_id, why_refused in self.facts.refused.items():
                self.facts.broken.setdefault(account_id, why_refused)

    def _load(self, contacts: Iterable[Contact]) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode = OFF")  # a scratch database: nothing to recover after a crash
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE contact (account_id TEXT NOT NULL, action TEXT NOT NULL, at INTEGER NOT NULL, "
                   "outcome TEXT NOT NULL)")
        db.execute("CREATE TABLE matched (account_id TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("BEGIN")
        db.executemany("INSERT INTO contact VALUES (?, ?, ?, ?)",
                       ((c.account_id, c.action, (c.at - _EPOCH) // _MICROSECOND, c.outcome) for c in contacts))
        db.execute("CREATE INDEX contact_by_account ON contact (account_id)")  # after the rows: one sort
        db.execute("COMMIT")
        db.execute("BEGIN")  # the matched ids, written as the run goes, in one transaction

    def for_account(self, account_id: str | None) -> list[Contact]:
        if not account_id:
            return []
        with self._disk():
            rows = self._db.execute("SELECT action, at, outcome FROM contact WHERE account_id = ? ORDER BY rowid",
                                    (account_id,)).fetchall()
            if rows:
                self._db.execute("INSERT OR IGNORE INTO matched VALUES (?)", (account_id,))
        return [Contact(account_id, action, _EPOCH + at * _MICROSECOND, outcome) for action, at, outcome in rows]

    def unmatched(self) -> int:
        with self._disk():
            (count,) = self._db.execute("SELECT COUNT(*) FROM contact WHERE account_id NOT IN "
                                        "(SELECT account_id FROM matched)").fetchone()
        return int(count)

    @contextlib.contextmanager
    def _disk(self) -> Iterator[None]:
        """A database error (a full disk) is an InputError naming where."""
        try:
            yield
        except sqlite3.Error as exc:
            raise InputError(f"{self.facts.path}: cannot index the contact history on disk in "
                             f"{self._directory.name}: {exc}") from None

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        self._directory.cleanup()
