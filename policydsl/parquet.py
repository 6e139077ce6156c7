"""Parquet in and out of `policy run`, one row group at a time.

Why by row group: a Parquet file is cut into row groups, each of which can
be read alone, so the accounts are streamed as a CSV is (memory holds a
batch, not the file) and the decisions are written as they come, a row
group every `ROW_GROUP` decisions. The row count of every row group is in
the file's footer, so a row group that cannot be read still becomes one
error row per row it held: the output keeps one row per input row.

What Parquet changes and what it does not: values arrive typed
(`policydsl.arrow`), rows have numbers but no lines, and everything else —
the header check, the notes about ignored and defaulted columns, error
rows, the contact history's problems and broken accounts, the order check
that lets the history be joined rather than indexed — is what the CSV
path does.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import IO

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as missing:  # pragma: no cover - the extra is installed wherever the tests run
    raise ImportError("Parquet needs pyarrow: pip install 'policydsl[parquet]'") from missing

from .arrow import account_rows, contacts, decision_schema, decisions_batch
from .decision import Contact, Decision
from .inputs import normalise_id
from .io import AccountRow, AccountsSource, HistoryFacts, InputError, Vocabulary, distinct_columns

BATCH_ROWS = 4096  # rows read at a time, within a row group
ROW_GROUP = 8192  # decisions per row group written: the reasons repeat, so Arrow holds some 1.5 kB per decision


def _open(path: str) -> pq.ParquetFile:
    """The file with its footer read, or InputError naming what is wrong.
    Page checksums, where the writer stored them, are verified: a damaged
    page is an error row, not values silently read wrong."""
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror or exc}") from None
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from None


def _batches(file: pq.ParquetFile, path: str, columns: list[str] | None = None,
             ) -> Iterator[tuple[int, pa.RecordBatch | str, int]]:
    """(first row number, a batch or why its rows cannot be read, rows) for
    the whole file, in order. A row group that fails half-way gives its
    unread rows as one failed stretch."""
    first = 1
    for group in range(file.metadata.num_row_groups):
        expected = file.metadata.row_group(group).num_rows
        read = 0
        try:
            for batch in file.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=columns,
                                           use_threads=False):
                yield first + read, batch, batch.num_rows
                read += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            yield first + read, f"row group {group + 1} of {path} cannot be read: {exc}", expected - read
        first += expected


class ParquetAccounts(AccountsSource):
    """An accounts Parquet file with its columns checked as a CSV header
    is; iterating gives its rows, numbered from 1 (no lines)."""

    def __init__(self, path: str, required: set[str], fields: set[str] | None) -> None:
        self.path = path
        self._file = _open(path)
        self.header = distinct_columns(path, self._file.schema_arrow.names)
        self._check_header(required, fields)
        self._rows = self._read()

    def _read(self) -> Iterator[AccountRow]:
        with self._file:
            for first, batch, count in _batches(self._file, self.path):
                if isinstance(batch, str):
                    for number in range(first, first + count):
                        yield AccountRow(number, None, None, f"row {number}: {batch}", [], self.header)
                else:
                    yield from account_rows(batch, first, self.header)


class ParquetHistory:
    """A contact-history Parquet file (columns account_id, action, at and
    optionally outcome, `at` a timestamp with a time zone or ISO text with
    an offset), read once in file order as `io.HistoryFile` reads a CSV;
    problems name the file and row."""

    def __init__(self, path: str, vocabulary: Vocabulary | None = None, facts: HistoryFacts | None = None) -> None:
        self.facts = facts if facts is not None else HistoryFacts()
        self.facts.path = path
        self.facts.row_label = "{path}: row {line}"
        self.facts.outcomes_declared = vocabulary is not None and vocabulary.outcomes_declared
        self._file = _open(path)
        header = distinct_columns(path, self._file.schema_arrow.names)
        missing = [name for name in ("account_id", "action", "at") if name not in header]
        if missing:
            self._file.close()
            raise InputError(f"{path}: contact history needs columns account_id, action, at, outcome; "
                             f"missing {', '.join(missing)}")
        self._wanted: list[str] = [name for name in ("account_id", "action", "at", "outcome") if name in header]
        self._contacts = self._read(vocabulary)

    def __iter__(self) -> Iterator[Contact]:
        return self._contacts

    def close(self) -> None:
        self._contacts.close()

    def _read(self, vocabulary: Vocabulary | None) -> Generator[Contact, None, None]:
        with self._file:
            for first, batch, count in _batches(self._file, self.facts.path, self._wanted):
                if isinstance(batch, str):
                    self._unreadable(first, count, batch)
                    continue
                yield from contacts(batch, self.facts, first, vocabulary)

    def _unreadable(self, first: int, count: int, problem: str) -> None:
        """Rows that cannot be read: each one's account, read from the id
        column alone, is decided by no rule, as with an unreadable CSV row.
        When not even the ids can be read, no account can be known to have
        its whole history: the history cannot be used."""
        facts = self.facts
        group = self._group_of(first)
        try:
            ids = self._file.read_row_group(group, columns=["account_id"]).column(0).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{facts.path}: {problem}; not even its account ids can be read ({exc}), so no "
                             "account could be known to be decided on its whole history") from None
        for offset, value in enumerate(ids[-count:]):
            facts.rows += 1
            account_id = normalise_id(value) if isinstance(value, str) else str(value) if value is not None else ""
            facts.unreadable(first + offset, account_id, problem)

    def _group_of(self, row: int) -> int:
        metadata = self._file.metadata
        end = 0
        for group in range(metadata.num_row_groups):
            end += metadata.row_group(group).num_rows
            if row <= end:
                return group
        return int(metadata.num_row_groups) - 1


def ids_in_order(path: str, column: str) -> bool | None:
    """Whether the non-empty ids of `column` never decrease (None: the
    column cannot be read alone), for the history's merge join. Reads that
    one column, a batch at a time."""
    previous = ""
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as file:
            if column not in file.schema_arrow.names:
                return None
            for batch in file.iter_batches(batch_size=BATCH_ROWS * 16, columns=[column], use_threads=False):
                for value in batch.column(0).to_pylist():
                    account_id = value if isinstance(value, str) else str(value) if isinstance(value, int) else ""
                    account_id = normalise_id(account_id)
                    if account_id:
                        if account_id < previous:
                            return False
                        previous = account_id
    except (OSError, pa.ArrowException, ValueError):
        return None
    return True


class DecisionWriter:
    """Decisions into a Parquet file (an open binary handle: the caller
    makes it atomic), a row group at a time."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._writer = pq.ParquetWriter(handle, decision_schema("timestamp"), compression="zstd",
                                        write_page_checksum=True)
        self._pending: list[Decision] = []

    def add(self, decision: Decision) -> None:
        self._pending.append(decision)
        if len(self._pending) >= ROW_GROUP:
            self._flush()

    def close(self) -> None:
        """The last row group and the footer; a file without it is unreadable."""
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_batch(decisions_batch(self._pending, "timestamp"), row_group_size=ROW_GROUP)
            self._pending = []
