"""The contact ledger, against both stores: every test runs on SQLite and on
a throwaway PostgreSQL server (tests/conftest.py), since the service must
behave the same on either."""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from policydsl import Contact
from policydsl.ledger import (
    IdempotencyConflict,
    Ledger,
    LedgerError,
    ReservationClosed,
    UnknownReservation,
    open_ledger,
)

T0 = dt.datetime(2025, 6, 3, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/ledger.db"
    database: str = request.getfixturevalue("postgres_database")
    return database


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    opened = open_ledger(url)
    yield opened
    opened.close()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """What the store holds, read past the ledger."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


def under_cap(cap: int) -> Callable[[list[Contact]], tuple[bool, dict[str, Any]]]:
    """A decide() that allows while the history holds fewer than `cap` contacts."""
    def decide(history: list[Contact]) -> tuple[bool, dict[str, Any]]:
        return len(history) < cap, {"seen": len(history)}
    return decide


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` in `count` threads released at once; their results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as error:  # reported by the assertion on results
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# ---------------------------------------------------------------- migrations


def test_migrations_apply_once_and_reopening_changes_nothing(url: str) -> None:
    first = open_ledger(url)
    first.record([Contact("a", "call", T0)])
    first.close()
    again = open_ledger(url)
    assert [row[0] for row in rows(url, "SELECT version FROM schema_migrations")] == [1]
    assert again.history("a") == [Contact("a", "call", T0)]
    again.close()


def test_processes_opening_a_new_store_at_once_migrate_it_once(url: str) -> None:
    opened = in_threads(4, lambda _: open_ledger(url))
    assert all(isinstance(ledger, Ledger) for ledger in opened), opened
    for ledger in opened:
        ledger.close()
    assert [row[0] for row in rows(url, "SELECT version FROM schema_migrations")] == [1]


# ---------------------------------------------------------------- record and history


def test_history_is_oldest_first_in_utc_with_outcomes(ledger: Ledger) -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    later = Contact("a", "sms", dt.datetime(2025, 6, 3, 14, 0, tzinfo=paris), "delivered")
    earlier = Contact("a", "call", T0 - dt.timedelta(days=1), "conversation")
    same_instant = [Contact("a", "email", T0), Contact("a", "letter", T0)]
    ids = ledger.record([later, earlier, *same_instant, Contact("b", "call", T0)])
    assert len(ids) == len(set(ids)) == 5
    history = ledger.history("a")
    assert [c.action for c in history] == ["call", "email", "letter", "sms"]
    assert all(c.at.tzinfo is dt.UTC for c in history)
    assert history[-1].at == dt.datetime(2025, 6, 3, 12, 0, tzinfo=dt.UTC)
    assert [c.outcome for c in history] == ["conversation", "", "", "delivered"]
    assert ledger.history("nobody") == []


def test_record_replay_returns_the_same_ids_and_stores_nothing(ledger: Ledger, url: str) -> None:
    contacts = [Contact("a", "call", T0), Contact("a", "sms", T0)]
    ids = ledger.record(contacts, idempotency_key="k1", fingerprint="f")
    assert ledger.record(contacts, idempotency_key="k1", fingerprint="f") == ids
    assert len(ledger.history("a")) == 2
    with pytest.raises(IdempotencyConflict, match="k1"):
        ledger.record(contacts[:1], idempotency_key="k1", fingerprint="other")
    assert rows(url, "SELECT kind, key, fingerprint FROM idempotency") == [("record", "k1", "f")]


# ---------------------------------------------------------------- reserve


def test_reserve_grants_and_inserts_a_reserved_contact(ledger: Ledger, url: str) -> None:
    ledger.record([Contact("a", "call", T0 - dt.timedelta(hours=1), "no_answer")])
    reserved = ledger.reserve("a", "call", T0, under_cap(7))
    assert reserved.granted and not reserved.replayed and reserved.reservation_id
    assert reserved.body == {"seen": 1, "granted": True, "reservation_id": reserved.reservation_id}
    assert ledger.history("a")[-1] == Contact("a", "call", T0, "")
    assert rows(url, f"SELECT status FROM contacts WHERE id = '{reserved.reservation_id}'") == [("reserved",)]


def test_a_denied_reservation_inserts_nothing(ledger: Ledger) -> None:
    reserved = ledger.reserve("a", "call", T0, under_cap(0))
    assert (reserved.granted, reserved.reservation_id) == (False, None)
    assert reserved.body == {"seen": 0, "granted": False, "reservation_id": None}
    assert ledger.history("a") == []


def test_a_replayed_reservation_is_the_first_one_and_does_not_decide(ledger: Ledger) -> None:
    first = ledger.reserve("a", "call", T0, under_cap(7), idempotency_key="r1", fingerprint="f")

    def never(history: list[Contact]) -> tuple[bool, dict[str, Any]]:
        raise AssertionError("a replay must not decide")

    replay = ledger.reserve("a", "call", T0, never, idempotency_key="r1", fingerprint="f")
    assert replay.replayed and replay.granted
    assert (replay.reservation_id, replay.body) == (first.reservation_id, first.body)
    assert len(ledger.history("a")) == 1
    with pytest.raises(IdempotencyConflict):
        ledger.reserve("a", "sms", T0, never, idempotency_key="r1", fingerprint="g")


def test_keys_are_scoped_per_operation(ledger: Ledger) -> None:
    ids = ledger.record([Contact("a", "sms", T0)], idempotency_key="same", fingerprint="f1")
    reserved = ledger.reserve("a", "call", T0, under_cap(7), idempotency_key="same", fingerprint="f2")
    assert reserved.granted and not reserved.replayed and reserved.reservation_id not in ids


def test_decide_raising_rolls_back_and_leaves_the_key_unused(ledger: Ledger) -> None:
    def broken(history: list[Contact]) -> tuple[bool, dict[str, Any]]:
        raise ZeroDivisionError("policy bug")

    with pytest.raises(ZeroDivisionError):
        ledger.reserve("a", "call", T0, broken, idempotency_key="r1", fingerprint="f")
    assert ledger.history("a") == []
    retried = ledger.reserve("a", "call", T0, under_cap(7), idempotency_key="r1", fingerprint="f")
    assert retried.granted and not retried.replayed


# ---------------------------------------------------------------- complete


def test_complete_sets_the_outcome_once(ledger: Ledger, url: str) -> None:
    reservation = ledger.reserve("a", "call", T0, under_cap(7)).reservation_id
    assert reservation is not None
    actual = T0 + dt.timedelta(minutes=3)
    done = ledger.complete(reservation, "conversation", at=actual)
    assert done == Contact("a", "call", actual, "conversation")
    assert ledger.complete(reservation, "conversation") == done
    with pytest.raises(ReservationClosed, match="conversation"):
        ledger.complete(reservation, "no_answer")
    assert ledger.history("a") == [done]
    assert rows(url, "SELECT status FROM contacts") == [("completed",)]


def test_complete_of_no_reservation_is_unknown(ledger: Ledger) -> None:
    with pytest.raises(UnknownReservation):
        ledger.complete("0" * 32, "conversation")
    [recorded] = ledger.record([Contact("a", "call", T0)])
    with pytest.raises(UnknownReservation):
        ledger.complete(recorded, "conversation")


# ---------------------------------------------------------------- concurrency


def test_concurrent_reservations_never_exceed_the_cap(ledger: Ledger, url: str) -> None:
    results = in_threads(64, lambda _: ledger.reserve("a", "call", T0, under_cap(7)))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.granted for r in results) == 7
    assert rows(url, "SELECT COUNT(*) FROM contacts") == [(7,)]


def test_the_cap_holds_on_a_server_defaulting_to_repeatable_read(postgres_database: str) -> None:
    ledger = open_ledger(postgres_database + "?options=-c%20default_transaction_isolation%3Drepeatable%5C%20read")
    results = in_threads(16, lambda _: ledger.reserve("a", "call", T0, under_cap(7)))
    ledger.close()
    assert sum(r.granted for r in results) == 7, results


def test_two_sqlite_ledgers_on_one_file_stay_exact(tmp_path: Any) -> None:
    url = f"sqlite://{tmp_path}/shared.db"
    ledgers = [open_ledger(url), open_ledger(url)]
    results = in_threads(32, lambda i: ledgers[i % 2].reserve("a", "call", T0, under_cap(7)))
    for ledger in ledgers:
        ledger.close()
    assert sum(r.granted for r in results) == 7, results
    assert rows(url, "SELECT COUNT(*) FROM contacts") == [(7,)]


def test_concurrent_first_uses_of_one_key_grant_once(ledger: Ledger, url: str) -> None:
    results = in_threads(16, lambda _: ledger.reserve("a", "call", T0, under_cap(7), idempotency_key="k",
                                                      fingerprint="f"))
    assert {r.reservation_id for r in results} == {results[0].reservation_id}, results
    assert sum(not r.replayed for r in results) == 1
    assert rows(url, "SELECT COUNT(*) FROM contacts") == [(1,)]


def test_concurrent_uses_of_one_key_for_different_accounts_conflict(ledger: Ledger, url: str) -> None:
    results = in_threads(8, lambda i: ledger.reserve(f"acct{i}", "call", T0, under_cap(7), idempotency_key="k",
                                                     fingerprint=f"f{i}"))
    assert sum(isinstance(r, IdempotencyConflict) for r in results) == 7, results
    assert rows(url, "SELECT COUNT(*) FROM contacts") == [(1,)]


# ---------------------------------------------------------------- configuration and failure


@pytest.mark.parametrize("bad", ["mysql://x/y", "ledger.db", "sqlite://", "sqlite:///:memory:"])
def test_an_unusable_url_is_refused_naming_the_accepted_forms(bad: str) -> None:
    with pytest.raises(LedgerError, match=r"sqlite:///absolute/path\.db"):
        open_ledger(bad)


def test_a_relative_sqlite_url_is_relative_to_the_working_directory(tmp_path: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ledger = open_ledger("sqlite://here.db")
    ledger.close()
    assert (tmp_path / "here.db").exists()
    assert ledger.url_for_display == f"sqlite://{tmp_path}/here.db"
    also_absolute = open_ledger(f"sqlite:///{tmp_path}/here.db")  # the four slashes of SQLAlchemy's form
    also_absolute.close()
    assert also_absolute.url_for_display == ledger.url_for_display


def test_a_sqlite_file_that_cannot_be_created_is_a_ledger_error(tmp_path: Any) -> None:
    with pytest.raises(LedgerError, match="cannot open ledger"):
        open_ledger(f"sqlite://{tmp_path}/no/such/dir/ledger.db")


def test_a_closed_ledger_refuses_work(ledger: Ledger) -> None:
    ledger.history("a")
    in_threads(3, lambda _: ledger.history("a"))
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.history("a")
    [in_another_thread] = in_threads(1, lambda _: ledger.history("a"))
    assert isinstance(in_another_thread, LedgerError)


def test_url_for_display_hides_the_password(postgres_database: str) -> None:
    with_password = postgres_database.replace("policydsl@", "policydsl:s3cret@") + "?password=s3cret"
    ledger = open_ledger(with_password)  # the test server trusts every connection
    ledger.close()
    assert "s3cret" not in ledger.url_for_display
    assert ledger.url_for_display.startswith("postgresql://policydsl:***@127.0.0.1:")


def test_an_unreachable_store_is_a_ledger_error_without_the_password() -> None:
    with pytest.raises(LedgerError, match="cannot open ledger") as raised:
        open_ledger("postgresql://policydsl:s3cret@127.0.0.1:9/postgres?connect_timeout=2")
    assert "s3cret" not in str(raised.value)


def test_ping_reports_a_lost_connection_and_then_reconnects(postgres_database: str) -> None:
    import psycopg

    ledger = open_ledger(postgres_database)
    ledger.ping()
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(LedgerError):
        ledger.ping()
    ledger.ping()
    ledger.close()


def test_connections_of_ended_threads_are_closed(postgres_database: str) -> None:
    """A thread pool retires idle threads; their connections must not pile up."""
    ledger = open_ledger(postgres_database)
    in_threads(8, lambda _: ledger.history("a"))
    in_threads(1, lambda _: ledger.history("a"))  # opening a connection closes those of ended threads
    backends = rows(postgres_database, "SELECT COUNT(*) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    ledger.close()
    assert backends == [(2,)]  # the opening thread's and the last one's


def test_a_postgresql_url_without_psycopg_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(LedgerError, match=r"pip install 'policydsl\[postgres\]'"):
        open_ledger("postgresql://localhost/x")
