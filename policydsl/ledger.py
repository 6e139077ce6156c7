"""The contact ledger of the decision service: each account's contact history,
and the one operation that makes a cap like "7 calls in 7 days" hold when
several dialers ask at once.

`reserve` reads the account's history, decides and records the contact in
one transaction that holds the account's lock, so two dialers asking at the
same instant never both get the last slot. Every write can carry an
idempotency key: a retried request (a dialer that timed out and asked again)
is answered from what was stored the first time instead of being decided or
recorded twice.

SQLite (one file, WAL) is the embedded default; PostgreSQL serves several
service instances. Both run the same SQL and the same migrations: `Ledger`
holds all of it, and the two subclasses say only how their dialect differs
(the parameter placeholder, how a transaction begins, how a lock is taken,
the auto-numbered column, which exceptions the driver raises).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from .decision import Contact


class LedgerError(Exception):
    """The ledger cannot answer: a bad URL, an unreachable or broken store."""


class IdempotencyConflict(LedgerError):
    """An idempotency key reused for a different request (another fingerprint)."""


class UnknownReservation(LedgerError):
    """`complete()` of an id that is no reservation in this ledger."""


class ReservationClosed(LedgerError):
    """`complete()` of a reservation already completed with another outcome."""


@dataclass(frozen=True)
class Reserved:
    """What `reserve` answers. `body` is the JSON-able answer: what decide()
    returned plus "granted" and "reservation_id"; `replayed` says it was read
    from the idempotency record of an earlier request with the same key."""

    granted: bool
    reservation_id: str | None
    body: dict[str, Any]
    replayed: bool


class _Cursor(Protocol):
    """What the ledger uses of a DB-API cursor (sqlite3 and psycopg alike)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Connection(Protocol):
    """What the ledger uses of a connection: both drivers execute on it directly."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> _Cursor: ...

    def close(self) -> None: ...


# The schema, in order; a store is at version N when the first N are applied.
# `{serial}` is the one dialect difference: an auto-numbered key, which keeps
# contacts recorded at the same instant in the order they were recorded.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE contacts (
            seq {serial},
            id TEXT NOT NULL UNIQUE,
            account_id TEXT NOT NULL,
            action TEXT NOT NULL,
            at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX contacts_account_at ON contacts (account_id, at, seq)",
        """CREATE TABLE idempotency (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
    ),
)

# Statuses of a contact: recorded as a fact, or reserved and later completed.
_RECORDED, _RESERVED, _COMPLETED = "recorded", "reserved", "completed"

# The name of the lock that migrations hold, apart from every account and key lock.
_MIGRATION_LOCK = "m:schema"


def instant_text(at: dt.datetime) -> str:
    """An instant as the ledger stores it: UTC, fixed width, with microseconds
    (`2025-06-03T10:00:00.000000Z`), so that text order is time order in
    both stores."""
    return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=dt.UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _account_lock(account_id: str) -> str:
    return "a:" + account_id


def _key_lock(kind: str, key: str) -> str:
    return f"k:{kind}:{key}"


class Ledger(ABC):
    """The shared logic and SQL of both stores.

    The service calls from many threads at once, so each thread gets its own
    connection (a connection is not shared between concurrent transactions);
    all are tracked so that `close()` closes them, and those of threads that
    have ended are closed when a new one is opened, since a thread pool
    retires idle threads.

    Every write runs in an explicit transaction that first takes the named
    locks it needs (the accounts it touches, its idempotency key), always in
    sorted order, so that two transactions may queue for a lock but never
    wait for each other in a cycle.
    """

    placeholder: ClassVar[str] = "?"
    begin: ClassVar[str] = "BEGIN"
    serial: ClassVar[str]

    def __init__(self, url_for_display: str) -> None:
        self.url_for_display = url_for_display
        self._local = threading.local()
        self._guard = threading.Lock()
        self._owned: list[tuple[threading.Thread, _Connection]] = []
        self._closed = False
        try:
            self._migrate()
        except BaseException:
            self.close()  # the caller never gets the ledger to close
            raise

    # ------------------------------------------------------------ dialect

    @abstractmethod
    def _connect(self) -> _Connection:
        """A new connection in autocommit mode (transactions are explicit)."""

    @abstractmethod
    def _lock(self, connection: _Connection, names: Sequence[str]) -> None:
        """Take the named locks until the end of the current transaction."""

    @abstractmethod
    def _is_store_error(self, error: Exception) -> bool:
        """Whether the driver raised it (the store failed, not the caller)."""

    # ------------------------------------------------------------ the API

    def history(self, account_id: str) -> list[Contact]:
        """The account's contacts, oldest first; a reserved contact's outcome is ""."""
        with self._transaction([], write=False) as connection:
            return self._history(connection, account_id)

    def record(self, contacts: Sequence[Contact], *, idempotency_key: str | None = None,
               fingerprint: str = "") -> list[str]:
        """Store contacts that happened, in one transaction; the ids of the
        new entries in order. A replay (same key and fingerprint) returns the
        ids of the first request and stores nothing."""
        accounts = sorted({contact.account_id for contact in contacts})
        with self._transaction([_account_lock(a) for a in accounts], "record", idempotency_key) as connection:
            stored = self._replay(connection, "record", idempotency_key, fingerprint)
            if stored is not None:
                return list(stored["ids"])
            ids = [self._insert(connection, contact, _RECORDED) for contact in contacts]
            self._remember(connection, "record", idempotency_key, fingerprint, {"ids": ids})
            return ids

    def reserve(self, account_id: str, action: str, at: dt.datetime,
                decide: Callable[[list[Contact]], tuple[bool, dict[str, Any]]], *,
                idempotency_key: str | None = None, fingerprint: str = "") -> Reserved:
        """Decide on the account's history and, when allowed, record the
        contact as reserved, all under the account's lock, so concurrent
        reservations of one account queue and each sees the ones before.
        A replay answers the stored body without calling decide; decide
        raising rolls everything back and propagates."""
        with self._transaction([_account_lock(account_id)], "reserve", idempotency_key) as connection:
            stored = self._replay(connection, "reserve", idempotency_key, fingerprint)
            if stored is not None:
                return Reserved(bool(stored["granted"]), stored["reservation_id"], stored, replayed=True)
            allowed, answer = decide(self._history(connection, account_id))
            reservation_id = (self._insert(connection, Contact(account_id, action, at), _RESERVED)
                              if allowed else None)
            body = self._remember(connection, "reserve", idempotency_key, fingerprint,
                                  {**answer, "granted": allowed, "reservation_id": reservation_id})
            return Reserved(allowed, reservation_id, body, replayed=False)

    def complete(self, reservation_id: str, outcome: str, *, at: dt.datetime | None = None) -> Contact:
        """Set a reservation's outcome (and, when given, its actual time).
        Completing again with the same outcome returns the same contact, so a
        retry is safe; another outcome raises ReservationClosed."""
        with self._transaction([]) as connection:
            row = connection.execute(
                self._sql("UPDATE contacts SET outcome = ?, at = COALESCE(?, at), status = ? "
                          "WHERE id = ? AND status = ? RETURNING account_id, action, at, outcome"),
                (outcome, instant_text(at) if at is not None else None, _COMPLETED, reservation_id, _RESERVED),
            ).fetchone()
            if row is None:
                row = self._closed_reservation(connection, reservation_id, outcome)
            return Contact(row[0], row[1], _instant(row[2]), row[3])

    def ping(self) -> None:
        """Raise LedgerError unless the store answers (for readiness checks)."""
        with self._transaction([], write=False) as connection:
            connection.execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Close every connection of every thread; the ledger is then unusable."""
        with self._guard:
            self._closed = True
            owned, self._owned = self._owned, []
        for _, connection in owned:
            connection.close()

    # ------------------------------------------------------------ the SQL

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def _history(self, connection: _Connection, account_id: str) -> list[Contact]:
        rows = connection.execute(
            self._sql("SELECT account_id, action, at, outcome FROM contacts WHERE account_id = ? ORDER BY at, seq"),
            (account_id,),
        ).fetchall()
        return [Contact(row[0], row[1], _instant(row[2]), row[3]) for row in rows]

    def _insert(self, connection: _Connection, contact: Contact, status: str) -> str:
        entry = _new_id()
        connection.execute(
            self._sql("INSERT INTO contacts (id, account_id, action, at, outcome, status, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)"),
            (entry, contact.account_id, contact.action, instant_text(contact.at), contact.outcome, status,
             instant_text(dt.datetime.now(dt.UTC))),
        )
        return entry

    def _closed_reservation(self, connection: _Connection, reservation_id: str, outcome: str) -> Any:
        """The row of a reservation that was not open: the same contact when
        it was completed with this outcome, else the reason it cannot be."""
        row = connection.execute(
            self._sql("SELECT account_id, action, at, outcome, status FROM contacts WHERE id = ?"),
            (reservation_id,),
        ).fetchone()
        if row is None or row[4] == _RECORDED:
            raise UnknownReservation(f"no reservation {reservation_id!r} in the ledger")
        if row[3] != outcome:
            raise ReservationClosed(f"reservation {reservation_id!r} was already completed with outcome "
                                    f"{row[3]!r}, not {outcome!r}")
        return row

    def _replay(self, connection: _Connection, kind: str, key: str | None, fingerprint: str) -> dict[str, Any] | None:
        """The stored answer of an earlier request with this key, None when
        there was none; IdempotencyConflict when that request was another."""
        if key is None:
            return None
        row = connection.execute(
            self._sql("SELECT fingerprint, body FROM idempotency WHERE kind = ? AND key = ?"), (kind, key),
        ).fetchone()
        if row is None:
            return None
        if row[0] != fingerprint:
            raise IdempotencyConflict(f"idempotency key {key!r} was already used for a different {kind} request")
        body: dict[str, Any] = json.loads(row[1])
        return body

    def _remember(self, connection: _Connection, kind: str, key: str | None, fingerprint: str,
                  body: dict[str, Any]) -> dict[str, Any]:
        """Store the answer under the key (when there is one); the body as a
        replay will return it, so that first answer and replay are alike."""
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if key is not None:
            connection.execute(
                self._sql("INSERT INTO idempotency (kind, key, fingerprint, body, created_at) VALUES (?, ?, ?, ?, ?)"),
                (kind, key, fingerprint, text, instant_text(dt.datetime.now(dt.UTC))),
            )
        stored: dict[str, Any] = json.loads(text)
        return stored

    def _migrate(self) -> None:
        """Apply the migrations this store lacks, under the migration lock,
        so that two processes opening one store at once apply each once."""
        with self._transaction([_MIGRATION_LOCK]) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                               "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, statements in enumerate(_MIGRATIONS, start=1):
                if version in applied:
                    continue
                for statement in statements:
                    connection.execute(statement.format(serial=self.serial))
                connection.execute(self._sql("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
                                   (version, instant_text(dt.datetime.now(dt.UTC))))

    # ------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def _transaction(self, locks: Sequence[str], kind: str = "", key: str | None = None, *,
                     write: bool = True) -> Iterator[_Connection]:
        """One transaction on this thread's connection, holding `locks` (and
        the idempotency key's, when there is one); a read-only one begins
        plainly, so that in SQLite it does not wait for writers. Anything
        raised rolls it back; what the driver raised becomes a LedgerError,
        and the connection is dropped, since it may be broken."""
        names = sorted({*locks, *([_key_lock(kind, key)] if key is not None else [])})
        connection = self._connection()
        with self._writing() if write else contextlib.nullcontext():
            try:
                connection.execute(self.begin if write else "BEGIN")
                if names:
                    self._lock(connection, names)
                yield connection
                connection.execute("COMMIT")
            except BaseException as error:
                self._rollback(connection)
                if isinstance(error, Exception) and self._is_store_error(error):
                    self._drop(connection)
                    raise LedgerError(f"ledger {self.url_for_display}: {_first_line(error)}") from None
                raise

    def _writing(self) -> contextlib.AbstractContextManager[Any]:
        """Held around a write transaction: nothing by default (the store's
        own locks order writers)."""
        return contextlib.nullcontext()

    def _rollback(self, connection: _Connection) -> None:
        try:
            connection.execute("ROLLBACK")
        except Exception as error:  # no transaction open, or the connection is gone
            if not self._is_store_error(error):
                raise

    def _connection(self) -> _Connection:
        if self._closed:
            raise LedgerError(f"ledger {self.url_for_display} is closed")
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._guard:
            self._close_orphans()
        try:
            connection = self._connect()
        except Exception as error:
            if self._is_store_error(error):
                raise LedgerError(f"cannot open ledger {self.url_for_display}: {_first_line(error)}") from None
            raise
        with self._guard:
            self._owned.append((threading.current_thread(), connection))
        self._local.connection = connection
        return connection

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended (guard held)."""
        ended = [(thread, connection) for thread, connection in self._owned if not thread.is_alive()]
        self._owned = [entry for entry in self._owned if entry[0].is_alive()]
        for _, connection in ended:
            connection.close()

    def _drop(self, connection: _Connection) -> None:
        self._local.connection = None
        with self._guard:
            self._owned = [entry for entry in self._owned if entry[1] is not connection]
        try:
            connection.close()
        except Exception as error:
            if not self._is_store_error(error):
                raise


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class SqliteLedger(Ledger):
    """The embedded store: one file in WAL mode. `BEGIN IMMEDIATE` takes the
    file's write lock at the start of every transaction, which serialises all
    writers, across processes too, so named locks need nothing more."""

    begin = "BEGIN IMMEDIATE"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: str) -> None:
        self.path = path
        self._write_lock = threading.Lock()
        # One leading slash however many the URL had (`sqlite:////abs` is the same file).
        super().__init__("sqlite:///" + os.path.abspath(path).lstrip("/"))

    def _connect(self) -> _Connection:
        # check_same_thread=False only so that close() may close it from
        # another thread; each connection is used by the thread that opened it.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_SECONDS * 1000}")  # wait for another writer, not fail
        _use_wal(connection)
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    def _lock(self, connection: _Connection, names: Sequence[str]) -> None:
        """Nothing to take: the transaction already holds the write lock."""

    def _writing(self) -> contextlib.AbstractContextManager[Any]:
        """This process's writers queue on a lock of their own before
        `BEGIN IMMEDIATE`: SQLite's busy handler polls with sleeps of up to
        100 ms, which under 16 concurrent reservations gave a p99 of 200 ms;
        a thread lock hands the file over as soon as it is free. Other
        processes still wait in the busy handler."""
        return self._write_lock

    def _is_store_error(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.Error)


_BUSY_SECONDS = 30


def _use_wal(connection: sqlite3.Connection) -> None:
    """Put the file in WAL mode (readers then never wait for the writer).
    While another connection switches a new file to WAL, SQLite answers
    "database is locked" at once instead of calling the busy handler, so two
    processes opening a new ledger together retry here rather than fail."""
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class PostgresLedger(Ledger):
    """The store of several service instances. A named lock is a
    transaction-scoped advisory lock on the name's 64-bit hash, so a
    reservation locks its account without any row to lock yet."""

    placeholder = "%s"
    # Explicitly READ COMMITTED: each statement then sees what was committed
    # before it, so the history read after the lock includes the reservation
    # of the transaction that held it (a server defaulting to REPEATABLE READ
    # would read the snapshot taken before waiting).
    begin = "BEGIN ISOLATION LEVEL READ COMMITTED"
    serial = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise LedgerError("a postgresql ledger needs psycopg: pip install 'policydsl[postgres]'") from None
        self._psycopg = psycopg
        self.url = url
        super().__init__(_masked(url))

    def _connect(self) -> _Connection:
        conninfo = self.url
        if "connect_timeout" not in self._psycopg.conninfo.conninfo_to_dict(conninfo):
            # An unreachable host is reported in seconds, not after the system's TCP timeout.
            conninfo = self._psycopg.conninfo.make_conninfo(conninfo, connect_timeout=10)
        connection: _Connection = self._psycopg.connect(conninfo, autocommit=True)
        return connection

    def _lock(self, connection: _Connection, names: Sequence[str]) -> None:
        # The subquery keeps the names' order, so locks are taken sorted.
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(name, 0)) FROM "
            "(SELECT name FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n) ORDER BY n) AS ordered",
            (list(names),),
        ).fetchall()

    def _is_store_error(self, error: Exception) -> bool:
        return isinstance(error, self._psycopg.Error)


_PASSWORD_IN_AUTHORITY = re.compile(r"(://[^/@:]*:)[^/@]*@")
_PASSWORD_IN_QUERY = re.compile(r"([?&]password=)[^&]*")


def _masked(url: str) -> str:
    """The URL with any password replaced by ***, for logs and status pages."""
    return _PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_AUTHORITY.sub(r"\1***@", url))


def open_ledger(url: str) -> Ledger:
    """The ledger at `url`, migrated to the current schema.

    `sqlite:///abs/path.db` or `sqlite://relative.db` (relative to the
    working directory) for the embedded store; `postgresql://...` or
    `postgres://...` for PostgreSQL."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path or path == ":memory:" or path == "/:memory:":
            # Each thread has its own connection, and so would have its own in-memory database.
            raise LedgerError(f"ledger URL {url!r} names no file: use sqlite:///absolute/path.db "
                              "or sqlite://relative/path.db")
        return SqliteLedger(path)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(url)
    raise LedgerError(f"unsupported ledger URL {_masked(url)!r}: use sqlite:///absolute/path.db, "
                      "sqlite://relative/path.db, postgresql://user@host:port/database or postgres://...")
