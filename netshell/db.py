"""A DB-API 2 connection pool that answers with Deferreds (sqlite3 by default).

Every database call runs in one of the pool's own worker threads (a
:class:`~netshell.threads.ThreadPool` of its own), and its outcome fires a
Deferred in the reactor's thread. Each worker thread owns one
connection, made in that thread and used only there: a connection is never
handed from one thread to another, which is what sqlite3 (and other drivers
with thread-bound connections) require. So there are as many connections as
worker threads, at most ``max``.

Each call is one transaction: commit when it succeeds, rollback when it
raises, and the exception then fails the Deferred with its traceback.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from netshell.current import get_reactor
from netshell.defer import Deferred
from netshell.errors import NetshellError
from netshell.failure import Failure
from netshell.threads import ThreadPool

__all__ = ["ConnectionPool", "PoolClosedError"]

log = logging.getLogger("netshell.db")


class PoolClosedError(NetshellError):
    """A :class:`ConnectionPool` was used after :meth:`ConnectionPool.close`."""


# How a job hands the pool's connection to the caller's function.
_WITH_CURSOR = "cursor"
_WITH_CONNECTION = "connection"


class _Job:
    """One call waiting for, or running in, a worker thread."""

    __slots__ = ("pool", "kind", "fn", "args", "kw", "deferred", "cancelled")

    def __init__(
        self,
        pool: ConnectionPool,
        kind: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        deferred: Deferred[Any],
    ) -> None:
        self.pool = pool
        self.kind = kind
        self.fn = fn
        self.args = args
        self.kw = kw
        self.deferred = deferred
        self.cancelled = False

    def deliver(self, ok: bool, result: Any) -> None:
        """In the worker, once the pool's counters say it is done: hand the outcome back."""
        self.pool._deliver(self.deferred, ok, result)


class _Outcome:
    """A result that several callers may wait for: each gets a Deferred of its own."""

    def __init__(self) -> None:
        self.done = False
        self.ok = True
        self.result: Any = None
        self._waiters: list[Deferred[Any]] = []

    def wait(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if self.done:
            self._fire(d)
        else:
            self._waiters.append(d)
        return d

    def fire(self, ok: bool, result: Any) -> None:
        self.done, self.ok, self.result = True, ok, result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._fire(d)

    def _fire(self, d: Deferred[Any]) -> None:
        if self.ok:
            d.callback(self.result)
        else:
            d.errback(self.result)


def _call_quietly(what: str, f: Callable[[], Any], connection: Any) -> bool:
    """Call ``f()``; log what it raises. Returns True when it returned."""
    try:
        f()
    except Exception:
        log.warning("Error in %s of %r", what, connection, exc_info=True)
        return False
    return True


class _Worker:
    """A worker thread's one connection, kept in that thread only.

    The pool's ThreadPool makes one of these in each worker thread when the
    thread starts (``worker_init``) and drops it when the thread leaves
    (``worker_exit``); only that thread touches ``connection``, as
    ``threading.local`` makes sure. The pool reads nothing but counters.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.name = threading.current_thread().name
        self.connection: Any = None

    def connect(self) -> Any:
        """This thread's connection, opened first if there is none."""
        if self.connection is None:
            pool = self.pool
            self.connection = pool.module.connect(*pool.connect_args, **pool.connect_kwargs)
            with pool._lock:
                pool._open += 1
        return self.connection

    def drop_connection(self) -> None:
        """Close and forget this thread's connection; the next call makes a new one."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        with self.pool._lock:
            self.pool._open -= 1
        _call_quietly("close()", connection.close, connection)

    def close(self) -> Failure | None:
        """Close this thread's connection as the thread leaves; what ``close()`` raised."""
        connection, self.connection = self.connection, None
        if connection is None:
            return None
        with self.pool._lock:
            self.pool._open -= 1
        try:
            connection.close()
        except BaseException:
            return Failure()
        return None


class ConnectionPool:
    """A pool of DB-API 2 connections, one per worker thread, answering with Deferreds.

    ``module`` is a DB-API 2 module, or the name to import it by (``"sqlite3"``,
    ``"psycopg2"``, ...). Connections are made with
    ``module.connect(*connect_args, **connect_kwargs)``, each in the worker
    thread that will use it; the keyword names ``min``, ``max``, ``reconnect``
    and ``good_sql`` belong to the pool and are not passed on.

    The pool starts on first use (any ``run_*`` call) or when :meth:`start` is
    called, not when it is made: then it binds to the current reactor, starts
    ``min`` worker threads that each open their connection at once, and
    registers :meth:`close` to run when that reactor shuts down. More workers
    (each with its connection) start when calls wait and none is idle, up to
    ``max``; a worker and its connection then live until :meth:`close`. At
    most ``max`` calls run at once; the others wait their turn, in order.

    Every call (:meth:`run_query`, :meth:`run_operation`,
    :meth:`run_interaction`, :meth:`run_with_connection`) is one transaction:
    committed when it succeeds, rolled back when it raises, and the exception
    then fails the Deferred (traceback intact). A connection whose rollback
    fails is closed and replaced on its thread's next call.

    With ``reconnect=True``, a call that fails with the module's
    ``OperationalError`` or ``InterfaceError`` has its connection checked by
    running ``good_sql`` on it (with ``good_sql=None``, such an error alone
    means the connection is broken). A broken connection is closed and a new
    one made in the same thread; then the call runs once more on the new
    connection if it failed before its commit was attempted (the transaction
    cannot have been committed), and the Deferred has the outcome of that second
    run. If the commit itself failed, the call is not run again (whether it was
    committed is unknown) and its Deferred fails with the error. Off by default.

    Call the pool's methods from the reactor's thread. Raises ValueError
    unless ``0 <= min <= max`` and ``max >= 1``, ImportError when a module
    name cannot be imported, and TypeError when the module has no ``connect``
    (or, with ``reconnect=True``, no ``OperationalError``).

    sqlite3 and ``":memory:"``: every connection to ``":memory:"`` is a
    database of its own, so each worker thread would see a different, empty
    database. Use a file, or ``max=1`` (one thread, one connection).

    Example::

        >>> from netshell import reactor
        >>> from netshell.db import ConnectionPool
        >>> pool = ConnectionPool("sqlite3", ":memory:", min=1, max=1)
        >>> reactor.run_until(pool.run_query("SELECT 1 + 1"), timeout=5)
        [(2,)]
        >>> reactor.run_until(pool.close(), timeout=5)
    """

    def __init__(
        self,
        module: str | ModuleType | Any = "sqlite3",
        *connect_args: Any,
        min: int = 1,
        max: int = 5,
        reconnect: bool = False,
        good_sql: str | None = "SELECT 1",
        **connect_kwargs: Any,
    ) -> None:
        if max < 1:
            raise ValueError(f"a ConnectionPool needs max >= 1, not {max}")
        if not 0 <= min <= max:
            raise ValueError(f"a ConnectionPool needs 0 <= min <= max, not min={min}, max={max}")
        if isinstance(module, str):
            module = importlib.import_module(module)
        if not callable(getattr(module, "connect", None)):
            raise TypeError(f"{module!r} is not a DB-API 2 module: it has no connect()")
        self.module: Any = module
        self.connect_args = connect_args
        self.connect_kwargs = connect_kwargs
        self.min = min
        self.max = max
        self.reconnect = reconnect
        self.good_sql = good_sql
        self._disconnect_errors: tuple[type[BaseException], ...] = tuple(
            e
            for e in (getattr(module, n, None) for n in ("OperationalError", "InterfaceError"))
            if isinstance(e, type) and issubclass(e, BaseException)
        )
        if reconnect and not self._disconnect_errors:
            raise TypeError(f"reconnect=True needs {module!r} to have an OperationalError")
        self._lock = threading.Lock()
        self._threads = ThreadPool(
            max, "netshell-db", worker_init=self._worker_init, worker_exit=self._worker_exit
        )
        self._local = threading.local()
        self._open = 0
        # The Deferreds of the first connections start() opens, one per worker it starts.
        self._eager: list[Deferred[None]] = []
        self._close_errors: list[Failure] = []
        self._loop: Any = None
        self._started: _Outcome | None = None
        self._closing: _Outcome | None = None

    # ---- what is going on

    @property
    def module_name(self) -> str:
        """The DB-API module's name (``"sqlite3"``)."""
        return str(getattr(self.module, "__name__", self.module))

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        return self._open

    @property
    def workers(self) -> int:
        """How many worker threads are alive now (one connection each, once opened)."""
        return self._threads.workers

    @property
    def busy(self) -> int:
        """How many calls are running now."""
        return self._threads.busy

    @property
    def queued(self) -> int:
        """How many calls wait for a free worker."""
        return self._threads.queued

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the pool takes no more calls)."""
        return self._closing is not None

    def __repr__(self) -> str:
        if self._closing is not None:
            state = "closed" if self._closing.done else "closing"
        elif self._started is None:
            state = "not started"
        else:
            state = f"{self._open} connections open, {self.busy} busy, {self.queued} queued"
        return f"<ConnectionPool {self.module_name} min={self.min} max={self.max}: {state}>"

    # ---- starting

    def start(self) -> Deferred[None]:
        """Start the pool now rather than on first use; see the class docstring.

        Returns a Deferred that fires with None once the ``min`` connections
        are open, or fails with the first error raised while opening them
        (any other is logged). Calling it again gives the same outcome. A
        failed connection is tried again on that thread's next call. Raises
        :class:`PoolClosedError` after :meth:`close`.

        Example::

            >>> from netshell import reactor
            >>> from netshell.db import ConnectionPool
            >>> pool = ConnectionPool("sqlite3", ":memory:", min=1, max=1)
            >>> reactor.run_until(pool.start(), timeout=5)
            >>> pool.connections
            1
            >>> reactor.run_until(pool.close(), timeout=5)
        """
        if self._closing is not None:
            raise PoolClosedError(f"{self!r} is closed")
        return self._ensure_started().wait()

    def _ensure_started(self) -> _Outcome:
        if self._started is not None:
            return self._started
        reactor = get_reactor()
        self._loop = reactor.loop
        started = self._started = _Outcome()
        reactor.on_shutdown(self.close)
        if self.min == 0:
            started.fire(True, None)
            return started
        eager: list[Deferred[None]] = [Deferred() for _ in range(self.min)]
        errors: list[Failure] = []
        left = len(eager)

        def one_done(result: Any) -> None:
            nonlocal left
            left -= 1
            if isinstance(result, Failure):
                if errors:
                    log.error(
                        "Could not open a connection of %r",
                        self,
                        exc_info=(result.type, result.value, result.tb),
                    )
                errors.append(result)
            if left == 0:
                started.fire(not errors, errors[0] if errors else None)

        for d in eager:
            d.add_both(one_done)
        with self._lock:
            self._eager = eager
        self._threads.start_workers(self.min)
        return started

    def _log_start_error(self, f: Failure) -> None:
        log.error(
            "Could not open the first connections of %r; each thread tries again on its next call",
            self,
            exc_info=(f.type, f.value, f.tb),
        )

    # ---- each worker thread's connection (ThreadPool hooks, in the worker)

    def _worker_init(self) -> None:
        worker = self._local.worker = _Worker(self)
        with self._lock:
            eager = self._eager.pop() if self._eager else None
        if eager is None:
            return  # a worker started for a call connects when it runs it
        try:
            worker.connect()
        except BaseException:
            self._deliver(eager, False, Failure())
        else:
            self._deliver(eager, True, None)

    def _worker_exit(self) -> None:
        error = self._local.worker.close()
        if error is not None:
            with self._lock:
                self._close_errors.append(error)

    # ---- the calls

    def run_query(self, sql: str, params: Any = ()) -> Deferred[list[Any]]:
        """Execute ``sql`` with ``params`` and fetch every row, in one transaction.

        Returns a Deferred that fires with the list of rows (what the cursor's
        ``fetchall()`` gave), or fails with the database's exception. Empty
        ``params`` call ``cursor.execute(sql)`` with no parameters at all.
        Fails with :class:`PoolClosedError` after :meth:`close`.

        Example::

            >>> from netshell import reactor
            >>> from netshell.db import ConnectionPool
            >>> pool = ConnectionPool("sqlite3", ":memory:", max=1)
            >>> reactor.run_until(pool.run_query("SELECT ?, ?", (1, "one")), timeout=5)
            [(1, 'one')]
            >>> reactor.run_until(pool.close(), timeout=5)
        """
        return self._submit(_WITH_CURSOR, _query, (sql, params), {})

    def run_operation(self, sql: str, params: Any = ()) -> Deferred[None]:
        """Execute ``sql`` with ``params`` and commit; fetch nothing.

        Returns a Deferred that fires with None once committed, or fails with
        the database's exception (after a rollback). Fails with
        :class:`PoolClosedError` after :meth:`close`.

        Example::

            >>> from netshell import reactor
            >>> from netshell.db import ConnectionPool
            >>> pool = ConnectionPool("sqlite3", ":memory:", max=1)
            >>> reactor.run_until(pool.run_operation("CREATE TABLE t (x)"), timeout=5)
            >>> reactor.run_until(pool.close(), timeout=5)
        """
        return self._submit(_WITH_CURSOR, _operation, (sql, params), {})

    def run_interaction(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Run ``fn(cursor, *args, **kw)`` in a worker thread, inside a transaction.

        The transaction is committed when ``fn`` returns and rolled back when
        it raises. Returns a Deferred that fires in the reactor's thread with
        what ``fn`` returned, or fails with what it raised (its traceback
        intact). Fails with :class:`PoolClosedError` after :meth:`close`.

        Example::

            >>> from netshell import reactor
            >>> from netshell.db import ConnectionPool
            >>> pool = ConnectionPool("sqlite3", ":memory:", max=1)
            >>> def add_two(cursor, a, b):
            ...     cursor.execute("CREATE TABLE t (x)")
            ...     cursor.executemany("INSERT INTO t VALUES (?)", [(a,), (b,)])
            ...     return cursor.rowcount
            >>> reactor.run_until(pool.run_interaction(add_two, 1, 2), timeout=5)
            2
            >>> reactor.run_until(pool.close(), timeout=5)
        """
        return self._submit(_WITH_CURSOR, fn, args, kw)

    def run_with_connection(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Run ``fn(connection, *args, **kw)`` in a worker thread, inside a transaction.

        Like :meth:`run_interaction`, but ``fn`` gets the worker's connection
        itself (to make cursors of its own, or use driver extensions). The
        pool commits when ``fn`` returns and rolls back when it raises; ``fn``
        must not close the connection. Returns a Deferred of what ``fn``
        returned. Fails with :class:`PoolClosedError` after :meth:`close`.

        Example::

            >>> from netshell import reactor
            >>> from netshell.db import ConnectionPool
            >>> pool = ConnectionPool("sqlite3", ":memory:", max=1)
            >>> d = pool.run_with_connection(lambda conn: conn.execute("SELECT 7").fetchone())
            >>> reactor.run_until(d, timeout=5)
            (7,)
            >>> reactor.run_until(pool.close(), timeout=5)
        """
        return self._submit(_WITH_CONNECTION, fn, args, kw)

    def _submit(
        self, kind: str, fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Deferred[Any]:
        if self._closing is not None:
            d: Deferred[Any] = Deferred()
            d.errback(PoolClosedError(f"{self!r} is closed: it takes no more calls"))
            return d
        if self._started is None:
            # Started by this call: nobody waits on start(), so its error is logged.
            self._ensure_started().wait().add_errback(self._log_start_error)

        def cancel(_: Deferred[Any]) -> None:
            job.cancelled = True  # skipped if not started yet; a late outcome is dropped

        d = Deferred(cancel)
        job = _Job(self, kind, fn, args, kw, d)
        self._threads.submit(self._run_in_worker, (job,), None, job.deliver)
        return d

    # ---- in the worker threads

    def _run_in_worker(self, job: _Job) -> Any:
        if job.cancelled:
            return None  # its Deferred has already failed with CancelledError
        return self._run_job(self._local.worker, job)

    def _run_job(self, worker: _Worker, job: _Job) -> Any:
        """Run one job on ``worker``'s connection, as a transaction; maybe once more."""
        retried = False
        while True:
            connection = worker.connect()
            committing = False
            try:
                if job.kind == _WITH_CURSOR:
                    cursor = connection.cursor()
                    try:
                        result = job.fn(cursor, *job.args, **job.kw)
                    finally:
                        _call_quietly("close()", cursor.close, cursor)
                else:
                    result = job.fn(connection, *job.args, **job.kw)
                committing = True
                connection.commit()
                return result
            except BaseException as e:
                rolled_back = _call_quietly("rollback()", connection.rollback, connection)
                broken = not rolled_back or (self.reconnect and self._is_broken(connection, e))
                if not broken:
                    raise
                worker.drop_connection()
                if not self.reconnect or retried or committing:
                    log.warning(
                        "Closed %r after %s; the next call on %s opens a new connection",
                        connection,
                        "a failed rollback" if not rolled_back else f"{type(e).__name__}: {e}",
                        worker.name,
                    )
                    raise
                log.warning(
                    "Connection %r is broken (%s: %s): replacing it and running %r again",
                    connection,
                    type(e).__name__,
                    e,
                    job.fn,
                )
                retried = True

    def _is_broken(self, connection: Any, error: BaseException) -> bool:
        """Tell whether ``error`` means ``connection`` is unusable (runs ``good_sql``)."""
        if not isinstance(error, self._disconnect_errors):
            return False
        if self.good_sql is None:
            return True
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self.good_sql)
                cursor.fetchall()
            finally:
                cursor.close()
            connection.rollback()
        except Exception:
            return True
        return False

    def _deliver(self, d: Deferred[Any], ok: bool, result: Any) -> None:
        """From a worker: fire ``d`` in the reactor's thread with the outcome."""

        def fire() -> None:
            if not d.called:
                (d.callback if ok else d.errback)(result)
            elif not ok:  # cancelled while it ran: the error must still be seen
                log.error(
                    "A cancelled database call failed",
                    exc_info=(result.type, result.value, result.tb),
                )

        try:
            self._loop.call_soon_threadsafe(fire)
        except RuntimeError:  # the loop closed while the thread worked
            log.warning("Outcome of a database call dropped: the reactor's loop is closed")
            if not ok:
                log.error("That call failed", exc_info=(result.type, result.value, result.tb))

    # ---- closing

    def close(self) -> Deferred[None]:
        """Stop taking calls, let those already made finish, and close every connection.

        Each connection is closed in the thread that made it; then the worker
        threads exit. Returns a Deferred that fires with None once every
        connection is closed and every worker has stopped, or fails with the
        first error a connection's ``close()`` raised (any other is logged).
        Calling it again gives the same outcome; it also runs when the
        reactor shuts down. Afterwards, every call fails with
        :class:`PoolClosedError`.

        Example::

            >>> from netshell import reactor
            >>> from netshell.db import ConnectionPool
            >>> pool = ConnectionPool()
            >>> reactor.run_until(pool.close(), timeout=5)
            >>> pool
            <ConnectionPool sqlite3 min=1 max=5: closed>
        """
        if self._closing is not None:
            return self._closing.wait()
        closing = self._closing = _Outcome()
        d = closing.wait()
        if self._started is None:
            closing.fire(True, None)
            return d
        loop = self._loop

        def stop_all() -> None:
            # Calls already made run first: the pool's stop queues behind them.
            self._threads.stop()
            with self._lock:
                errors, self._close_errors = self._close_errors, []
            for f in errors[1:]:
                log.error("Error closing a connection", exc_info=(f.type, f.value, f.tb))
            try:
                loop.call_soon_threadsafe(closing.fire, not errors, errors[0] if errors else None)
            except RuntimeError:
                log.warning("%r closed after the reactor's loop did", self)

        threading.Thread(target=stop_all, name="netshell-db-close", daemon=True).start()
        return d


def _query(cursor: Any, sql: str, params: Any) -> list[Any]:
    if params:
        cursor.execute(sql, params)
    else:
        cursor.execute(sql)
    return list(cursor.fetchall())


def _operation(cursor: Any, sql: str, params: Any) -> None:
    if params:
        cursor.execute(sql, params)
    else:
        cursor.execute(sql)
