"""netshell.db.ConnectionPool: sqlite3 for real, and a fake DB-API module that records calls."""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from netshell.db import ConnectionPool, PoolClosedError
from netshell.reactor import Reactor

WAIT = 5  # seconds any blocking wait in a test may take before it counts as a hang


# ---- a fake DB-API 2 module


class FakeCursor:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.rows: list[Any] = []

    def execute(self, sql: str, params: Any = None) -> None:
        conn = self.connection
        conn.record("execute", sql)
        if conn.closed:
            raise conn.module.InterfaceError("connection is closed")
        if conn.dead:
            raise conn.module.OperationalError("server closed the connection")
        if conn.module.break_on == "execute" and sql != "SELECT 1":
            conn.module.break_on = None
            conn.dead = True
            raise conn.module.OperationalError("server closed the connection unexpectedly")
        if sql.startswith("BAD"):
            raise conn.module.OperationalError("no such table: nowhere")
        self.rows = [(sql, params, conn.number)] if sql != "SELECT 1" else [(1,)]

    def fetchall(self) -> list[Any]:
        rows, self.rows = self.rows, []
        return rows

    def close(self) -> None:
        self.connection.record("cursor.close")


class FakeConnection:
    def __init__(self, module: FakeModule, number: int) -> None:
        self.module = module
        self.number = number
        self.thread = threading.get_ident()
        self.closed = False
        self.dead = False

    def record(self, what: str, *extra: Any) -> None:
        with self.module.lock:
            self.module.calls.append((what, self.number, threading.get_ident(), *extra))

    def cursor(self) -> FakeCursor:
        self.record("cursor")
        return FakeCursor(self)

    def commit(self) -> None:
        self.record("commit")
        if self.dead:
            raise self.module.OperationalError("server closed the connection")
        if self.module.break_on == "commit":
            self.module.break_on = None
            self.dead = True
            raise self.module.OperationalError("connection lost during commit")

    def rollback(self) -> None:
        self.record("rollback")
        if self.module.rollback_fails:
            raise self.module.OperationalError("rollback failed")

    def close(self) -> None:
        self.record("close")
        self.closed = True
        if self.module.close_fails:
            raise self.module.InterfaceError(f"close of connection {self.number} failed")


class FakeModule(types.ModuleType):
    """A DB-API 2 module in miniature: every call on its connections is recorded."""

    apilevel = "2.0"
    threadsafety = 1
    paramstyle = "qmark"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.Error = type("Error", (Exception,), {})
        self.OperationalError = type("OperationalError", (self.Error,), {})
        self.InterfaceError = type("InterfaceError", (self.Error,), {})
        self.lock = threading.Lock()
        self.calls: list[tuple[Any, ...]] = []
        self.connections: list[FakeConnection] = []
        self.connect_args: list[tuple[Any, ...]] = []
        self.break_on: str | None = None  # "execute" or "commit": the next one kills the connection
        self.rollback_fails = False
        self.close_fails = False
        self.connect_fails = False

    def connect(self, *args: Any, **kw: Any) -> FakeConnection:
        with self.lock:
            if self.connect_fails:
                raise self.OperationalError("could not connect to server")
            conn = FakeConnection(self, len(self.connections) + 1)
            self.connections.append(conn)
            self.connect_args.append((args, kw))
        conn.record("connect")
        return conn

    def events(self, *kinds: str) -> list[tuple[str, int]]:
        """The recorded calls as (what, connection number), optionally of some kinds only."""
        with self.lock:
            return [(c[0], c[1]) for c in self.calls if not kinds or c[0] in kinds]


@pytest.fixture
def fakedb(monkeypatch: pytest.MonkeyPatch) -> FakeModule:
    module = FakeModule("netshell_test_fakedb")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


@pytest.fixture
def pools(reactor: Reactor) -> Iterator[list[ConnectionPool]]:
    """Pools a test makes; any it left open is closed afterwards (no thread leaks)."""
    made: list[ConnectionPool] = []
    yield made
    for pool in made:
        if not pool.closed:
            reactor.run_until(pool.close(), timeout=WAIT)


@pytest.fixture
def db_file(tmp_path: Path) -> str:
    return str(tmp_path / "test.sqlite3")


def failure_of(reactor: Reactor, d: ns.Deferred[Any]) -> BaseException:
    """Run the reactor until ``d`` fails; return the exception it failed with."""
    with pytest.raises(BaseException) as info:
        reactor.run_until(d, timeout=WAIT)
    return info.value


# ---- sqlite3


async def test_sqlite_file_create_insert_query(db_file: str, pools: list[ConnectionPool]) -> None:
    pool = ConnectionPool("sqlite3", db_file)
    pools.append(pool)
    assert await pool.run_operation("CREATE TABLE people (name TEXT, age INTEGER)") is None
    await pool.run_operation("INSERT INTO people VALUES (?, ?)", ("ada", 36))
    await pool.run_operation("INSERT INTO people VALUES (:name, :age)", {"name": "alan", "age": 41})
    rows = await pool.run_query("SELECT name, age FROM people ORDER BY age")
    assert rows == [("ada", 36), ("alan", 41)]
    assert await pool.run_query("SELECT name FROM people WHERE age > ?", (40,)) == [("alan",)]
    # committed: another connection, outside the pool, sees the rows
    with sqlite3.connect(db_file) as other:
        assert other.execute("SELECT count(*) FROM people").fetchone() == (2,)
    other.close()


def test_results_fire_in_the_reactors_thread(
    reactor: Reactor, db_file: str, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool("sqlite3", db_file)
    pools.append(pool)
    fired_in: list[int] = []

    def in_worker(cursor: sqlite3.Cursor) -> int:
        cursor.execute("SELECT 42")
        return threading.get_ident()

    def on_result(worker: int) -> int:
        fired_in.append(threading.get_ident())
        return worker

    d = pool.run_interaction(in_worker).add_callback(on_result)
    worker = reactor.run_until(d, timeout=WAIT)
    assert fired_in == [threading.get_ident()]  # the reactor's thread (this one)
    assert worker != threading.get_ident()


async def test_run_interaction_commits_on_success(
    db_file: str, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool("sqlite3", db_file)
    pools.append(pool)
    await pool.run_operation("CREATE TABLE t (x INTEGER)")

    def fill(cursor: sqlite3.Cursor, n: int, *, start: int) -> int:
        cursor.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(start, start + n)])
        cursor.execute("SELECT sum(x) FROM t")
        return int(cursor.fetchone()[0])

    assert await pool.run_interaction(fill, 4, start=1) == 10
    other = sqlite3.connect(db_file)
    try:
        assert other.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,), (3,), (4,)]
    finally:
        other.close()


async def test_run_interaction_rolls_back_on_exception(
    db_file: str, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool("sqlite3", db_file)
    pools.append(pool)
    await pool.run_operation("CREATE TABLE t (x INTEGER)")
    boom = ValueError("changed my mind")

    def insert_then_fail(cursor: sqlite3.Cursor) -> None:
        cursor.execute("INSERT INTO t VALUES (1)")
        cursor.execute("INSERT INTO t VALUES (2)")
        raise boom

    with pytest.raises(ValueError) as info:
        await pool.run_interaction(insert_then_fail)
    assert info.value is boom
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "insert_then_fail" in frames
    assert await pool.run_query("SELECT x FROM t") == []


async def test_run_with_connection_gets_the_connection(
    db_file: str, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool("sqlite3", db_file)
    pools.append(pool)

    def use(conn: sqlite3.Connection, table: str) -> str:
        assert isinstance(conn, sqlite3.Connection)
        conn.execute(f"CREATE TABLE {table} (x)")
        conn.execute(f"INSERT INTO {table} VALUES ('kept')")
        return table

    assert await pool.run_with_connection(use, "t") == "t"
    assert await pool.run_query("SELECT x FROM t") == [("kept",)]


async def test_sql_errors_fail_the_deferred(db_file: str, pools: list[ConnectionPool]) -> None:
    pool = ConnectionPool("sqlite3", db_file)
    pools.append(pool)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await pool.run_query("SELECT * FROM nowhere")
    # the pool goes on
    assert await pool.run_query("SELECT 1") == [(1,)]


def test_each_worker_thread_has_its_own_connection(
    reactor: Reactor, db_file: str, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool("sqlite3", db_file, min=1, max=3)
    pools.append(pool)
    barrier = threading.Barrier(3, timeout=WAIT)  # three calls at once: three threads
    seen: list[tuple[int, int]] = []

    def where(cursor: sqlite3.Cursor) -> None:
        seen.append((threading.get_ident(), id(cursor.connection)))
        barrier.wait()

    for _ in range(2):
        reactor.run_until(ns.gather(*(pool.run_interaction(where) for _ in range(3))), timeout=WAIT)
    threads = {t for t, _ in seen}
    connections = {c for _, c in seen}
    assert len(threads) == 3 and len(connections) == 3
    assert threading.get_ident() not in threads
    by_thread: dict[int, set[int]] = {}
    for t, c in seen:
        by_thread.setdefault(t, set()).add(c)
    assert all(len(cs) == 1 for cs in by_thread.values()), by_thread
    assert pool.connections == 3 and pool.workers == 3


def test_concurrency_is_bounded_by_max(
    reactor: Reactor, db_file: str, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool("sqlite3", db_file, min=0, max=3)
    pools.append(pool)
    release = threading.Event()
    started = threading.Semaphore(0)
    lock = threading.Lock()
    running = peak = 0

    def block(cursor: sqlite3.Cursor, i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        started.release()
        try:
            assert release.wait(WAIT), "never released"
        finally:
            with lock:
                running -= 1
        return i

    ds = [pool.run_interaction(block, i) for i in range(10)]
    for _ in range(3):
        assert started.acquire(timeout=WAIT)
    # three run, seven wait: none of those is in a thread yet
    assert pool.busy == 3 and pool.queued == 7
    assert "3 busy, 7 queued" in repr(pool)
    release.set()
    assert reactor.run_until(ns.gather(*ds), timeout=WAIT) == list(range(10))
    assert peak == 3
    assert pool.workers == 3 and pool.busy == 0 and pool.queued == 0


def test_memory_database_with_one_thread(reactor: Reactor, pools: list[ConnectionPool]) -> None:
    # ":memory:" is one database per connection: max=1 keeps one connection.
    pool = ConnectionPool("sqlite3", ":memory:", max=1)
    pools.append(pool)
    reactor.run_until(pool.run_operation("CREATE TABLE t (x)"), timeout=WAIT)
    reactor.run_until(pool.run_operation("INSERT INTO t VALUES (?)", ("here",)), timeout=WAIT)
    assert reactor.run_until(pool.run_query("SELECT x FROM t"), timeout=WAIT) == [("here",)]


def test_module_object_works_too(
    reactor: Reactor, db_file: str, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(sqlite3, db_file, max=1)
    pools.append(pool)
    assert reactor.run_until(pool.run_query("SELECT 'ok'"), timeout=WAIT) == [("ok",)]


# ---- with the fake module: exactly which calls reach the driver


def test_module_by_name_and_connect_arguments(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool("netshell_test_fakedb", "dsn", min=1, max=2, user="me", timeout=3)
    pools.append(pool)
    assert pool.module is fakedb
    rows = reactor.run_until(pool.run_query("SELECT x FROM t WHERE y = ?", (7,)), timeout=WAIT)
    assert rows == [("SELECT x FROM t WHERE y = ?", (7,), 1)]
    assert fakedb.connect_args == [(("dsn",), {"user": "me", "timeout": 3})]


def test_commit_on_success_rollback_on_error(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1)
    pools.append(pool)
    reactor.run_until(pool.run_operation("INSERT 1"), timeout=WAIT)
    assert fakedb.events("execute", "commit", "rollback") == [("execute", 1), ("commit", 1)]
    del fakedb.calls[:]

    def fail(cursor: FakeCursor) -> None:
        cursor.execute("INSERT 2")
        raise KeyError("nope")

    exc = failure_of(reactor, pool.run_interaction(fail))
    assert isinstance(exc, KeyError)
    assert fakedb.events() == [
        ("cursor", 1),
        ("execute", 1),
        ("cursor.close", 1),
        ("rollback", 1),
    ]
    del fakedb.calls[:]
    assert reactor.run_until(pool.run_with_connection(lambda c: c.number), timeout=WAIT) == 1
    assert fakedb.events() == [("commit", 1)]


def test_params_are_left_out_when_empty(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1)
    pools.append(pool)
    assert reactor.run_until(pool.run_query("SELECT '%'"), timeout=WAIT) == [
        ("SELECT '%'", None, 1)
    ]


def test_close_closes_every_connection_in_its_own_thread(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, min=2, max=3)
    pools.append(pool)
    reactor.run_until(pool.start(), timeout=WAIT)
    assert pool.connections == 2 and len(fakedb.connections) == 2
    barrier = threading.Barrier(3, timeout=WAIT)
    ds = [pool.run_interaction(lambda cursor: barrier.wait()) for _ in range(3)]
    reactor.run_until(ns.gather(*ds), timeout=WAIT)
    assert pool.connections == 3
    assert reactor.run_until(pool.close(), timeout=WAIT) is None
    closes = [c for c in fakedb.calls if c[0] == "close"]
    assert sorted(c[1] for c in closes) == [1, 2, 3]
    for _, number, thread in closes:
        assert fakedb.connections[number - 1].thread == thread  # closed where it was made
        assert thread != threading.get_ident()
    assert len(fakedb.events("commit")) == 3 and fakedb.events("rollback") == []
    assert pool.connections == 0 and pool.workers == 0
    assert repr(pool) == "<ConnectionPool netshell_test_fakedb min=2 max=3: closed>"


def test_close_waits_for_calls_already_made(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1)
    pools.append(pool)
    release = threading.Event()
    d = pool.run_interaction(lambda cursor: release.wait(WAIT))
    queued = pool.run_query("SELECT after")
    closed = pool.close()
    assert not closed.called and "closing" in repr(pool)
    release.set()
    reactor.run_until(closed, timeout=WAIT)
    assert d.called and d.result is True
    assert queued.called and queued.result == [("SELECT after", None, 1)]
    assert fakedb.events("commit", "close") == [("commit", 1), ("commit", 1), ("close", 1)]


def test_close_reports_a_failing_close(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, min=1, max=1)
    pools.append(pool)
    reactor.run_until(pool.start(), timeout=WAIT)
    fakedb.close_fails = True
    exc = failure_of(reactor, pool.close())
    assert isinstance(exc, fakedb.InterfaceError)
    assert pool.workers == 0
    # a second close() gives the same outcome
    assert failure_of(reactor, pool.close()) is exc


def test_calls_after_close_fail_with_pool_closed_error(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb)
    pools.append(pool)
    reactor.run_until(pool.run_operation("INSERT 1"), timeout=WAIT)
    reactor.run_until(pool.close(), timeout=WAIT)
    for d in [
        pool.run_query("SELECT 1"),
        pool.run_operation("INSERT 2"),
        pool.run_interaction(lambda cursor: None),
        pool.run_with_connection(lambda conn: None),
    ]:
        exc = failure_of(reactor, d)
        assert isinstance(exc, PoolClosedError) and "closed" in str(exc)
    with pytest.raises(PoolClosedError):
        pool.start()
    assert reactor.run_until(pool.close(), timeout=WAIT) is None
    assert fakedb.events("execute") == [("execute", 1)]


def test_close_before_start_opens_nothing(reactor: Reactor, fakedb: FakeModule) -> None:
    pool = ConnectionPool(fakedb)
    assert repr(pool) == "<ConnectionPool netshell_test_fakedb min=1 max=5: not started>"
    assert reactor.run_until(pool.close(), timeout=WAIT) is None
    assert fakedb.calls == []
    assert isinstance(failure_of(reactor, pool.run_query("SELECT 1")), PoolClosedError)


async def test_reactor_shutdown_closes_the_pool(reactor: Reactor, fakedb: FakeModule) -> None:
    pool = ConnectionPool(fakedb, min=2, max=2)
    await pool.start()
    assert "2 connections open, 0 busy, 0 queued" in repr(pool)
    await reactor.stop()
    assert pool.closed and pool.connections == 0 and pool.workers == 0
    assert sorted(fakedb.events("close")) == [("close", 1), ("close", 2)]


def test_start_opens_min_connections_eagerly(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, min=3, max=4)
    pools.append(pool)
    assert fakedb.calls == []  # nothing happens when the pool is made
    reactor.run_until(pool.start(), timeout=WAIT)
    assert pool.connections == 3 and pool.workers == 3
    assert reactor.run_until(pool.start(), timeout=WAIT) is None  # again: same outcome


def test_start_fails_when_connecting_fails(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, min=1, max=1)
    pools.append(pool)
    fakedb.connect_fails = True
    assert isinstance(failure_of(reactor, pool.start()), fakedb.OperationalError)
    # each call tries again in its thread
    assert isinstance(failure_of(reactor, pool.run_query("SELECT 1")), fakedb.OperationalError)
    fakedb.connect_fails = False
    assert reactor.run_until(pool.run_query("SELECT 1"), timeout=WAIT) == [(1,)]


def test_implicit_start_logs_a_connect_error(
    reactor: Reactor,
    fakedb: FakeModule,
    pools: list[ConnectionPool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ConnectionPool(fakedb, min=1, max=1)
    pools.append(pool)
    fakedb.connect_fails = True
    with caplog.at_level(logging.ERROR, logger="netshell.db"):
        exc = failure_of(reactor, pool.run_query("SELECT 1"))
    assert isinstance(exc, fakedb.OperationalError)
    assert any("Could not open the first connections" in r.message for r in caplog.records)


def test_cancelling_a_waiting_call_skips_it(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1)
    pools.append(pool)
    release = threading.Event()
    first = pool.run_interaction(lambda cursor: release.wait(WAIT))
    second = pool.run_query("SELECT never")
    second.cancel()
    release.set()
    assert reactor.run_until(first, timeout=WAIT) is True
    assert isinstance(failure_of(reactor, second), ns.CancelledError)
    reactor.run_until(pool.close(), timeout=WAIT)
    assert ("execute", 1) not in fakedb.events("execute")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        ConnectionPool("sqlite3", max=0)
    with pytest.raises(ValueError):
        ConnectionPool("sqlite3", min=3, max=2)
    with pytest.raises(TypeError, match="no connect"):
        ConnectionPool(types.ModuleType("not_a_db"))
    with pytest.raises(ImportError):
        ConnectionPool("netshell_no_such_db_module")
    plain = types.ModuleType("plain_db")
    plain.connect = lambda: None  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="OperationalError"):
        ConnectionPool(plain, reconnect=True)


# ---- broken connections


def test_reconnect_replaces_a_broken_connection_and_runs_the_call_again(
    reactor: Reactor,
    fakedb: FakeModule,
    pools: list[ConnectionPool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ConnectionPool(fakedb, max=1, reconnect=True, good_sql="SELECT 1")
    pools.append(pool)
    reactor.run_until(pool.start(), timeout=WAIT)
    fakedb.break_on = "execute"
    with caplog.at_level(logging.WARNING, logger="netshell.db"):
        rows = reactor.run_until(pool.run_query("SELECT x"), timeout=WAIT)
    assert rows == [("SELECT x", None, 2)]  # answered by the new connection
    assert fakedb.events("connect", "execute", "rollback", "close", "commit") == [
        ("connect", 1),
        ("execute", 1),  # breaks the connection
        ("rollback", 1),
        ("execute", 1),  # good_sql: fails, so the connection is broken
        ("close", 1),
        ("connect", 2),
        ("execute", 2),
        ("commit", 2),
    ]
    assert pool.connections == 1
    assert any("is broken" in r.message for r in caplog.records)


def test_reconnect_does_not_run_again_when_commit_failed(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1, reconnect=True)
    pools.append(pool)
    fakedb.break_on = "commit"
    exc = failure_of(reactor, pool.run_operation("INSERT 1"))
    assert isinstance(exc, fakedb.OperationalError) and "during commit" in str(exc)
    assert fakedb.events("execute") == [("execute", 1), ("execute", 1)]  # the call, good_sql
    assert fakedb.events("close") == [("close", 1)]
    # the next call has a fresh connection
    assert reactor.run_until(pool.run_query("SELECT y"), timeout=WAIT) == [("SELECT y", None, 2)]


def test_reconnect_keeps_a_connection_that_passes_good_sql(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1, reconnect=True, good_sql="SELECT 1")
    pools.append(pool)
    exc = failure_of(reactor, pool.run_query("BAD query"))
    assert isinstance(exc, fakedb.OperationalError) and "no such table" in str(exc)
    assert fakedb.events("connect", "close") == [("connect", 1)]
    assert fakedb.events("execute") == [("execute", 1), ("execute", 1)]  # no second run


def test_reconnect_without_good_sql_replaces_on_any_operational_error(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1, reconnect=True, good_sql=None)
    pools.append(pool)
    exc = failure_of(reactor, pool.run_query("BAD query"))
    assert "no such table" in str(exc)  # failed again on the new connection
    assert fakedb.events("connect", "close") == [
        ("connect", 1),
        ("close", 1),
        ("connect", 2),
        ("close", 2),
    ]


def test_reconnect_gives_up_after_one_more_run(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1, reconnect=True)
    pools.append(pool)
    calls = []

    def always_broken(cursor: FakeCursor) -> None:
        calls.append(cursor.connection.number)
        cursor.connection.dead = True
        cursor.execute("UPDATE t")

    exc = failure_of(reactor, pool.run_interaction(always_broken))
    assert isinstance(exc, fakedb.OperationalError)
    assert calls == [1, 2]
    assert fakedb.events("close") == [("close", 1), ("close", 2)]
    assert pool.connections == 0
    assert reactor.run_until(pool.run_query("SELECT z"), timeout=WAIT) == [("SELECT z", None, 3)]


def test_without_reconnect_an_operational_error_just_fails(
    reactor: Reactor, fakedb: FakeModule, pools: list[ConnectionPool]
) -> None:
    pool = ConnectionPool(fakedb, max=1)
    pools.append(pool)
    fakedb.break_on = "execute"
    exc = failure_of(reactor, pool.run_query("SELECT x"))
    assert isinstance(exc, fakedb.OperationalError)
    # the connection is kept (reconnect is off): the next call meets it, dead
    assert isinstance(failure_of(reactor, pool.run_query("SELECT x")), fakedb.OperationalError)
    assert fakedb.events("connect", "close") == [("connect", 1)]


def test_a_connection_whose_rollback_fails_is_replaced(
    reactor: Reactor,
    fakedb: FakeModule,
    pools: list[ConnectionPool],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ConnectionPool(fakedb, max=1)
    pools.append(pool)
    fakedb.rollback_fails = True
    boom = RuntimeError("in the interaction")

    def fail(cursor: FakeCursor) -> None:
        raise boom

    with caplog.at_level(logging.WARNING, logger="netshell.db"):
        assert failure_of(reactor, pool.run_interaction(fail)) is boom
    assert any("rollback()" in r.message for r in caplog.records)  # logged, not lost
    fakedb.rollback_fails = False
    assert reactor.run_until(pool.run_query("SELECT q"), timeout=WAIT) == [("SELECT q", None, 2)]
    assert fakedb.events("close") == [("close", 1)]
