"""The reactor: a facade over one asyncio event loop, and the registry of what is live.

There is one reactor per loop. ``netshell.reactor`` always means the reactor
of the current loop: the running one, or else the one installed for this
thread (made on first use, with a fresh loop). Nothing is created at import.

A script uses ``reactor.run()`` and ``reactor.stop()``; inside a running
asyncio program, a Jupyter kernel or the netsh prompt, the reactor adopts the
loop that already runs and never runs or stops it itself.

The reactor keeps track of what is live: listeners and connections (added by
the transports), pending timed calls, and, on demand, the Deferreds that have
not fired. Keeping the registry costs a dict insert per timed call; finding
the unfired Deferreds walks the garbage collector's objects only when asked.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from netshell import current as _current
from netshell import observe as _observe
from netshell.connector import Connector
from netshell.current import get_reactor, install
from netshell.defer import AlreadyCalledError, Deferred, ensure_deferred, gather, maybe_deferred
from netshell.failure import Failure
from netshell.listener import Listener, bind_tcp, bind_unix
from netshell.threads import ThreadPool
from netshell.udp import DatagramListener
from netshell.udp import listen_multicast as _listen_multicast
from netshell.udp import listen_udp as _listen_udp

if TYPE_CHECKING:
    from netshell.protocol import DatagramProtocol, Factory

__all__ = [
    "AlreadyCancelledError",
    "DelayedCall",
    "Reactor",
    "ReactorAlreadyRunning",
    "ReactorNotRestartable",
    "ReactorNotRunning",
    "get_reactor",
    "install",
    "reactor",
]

log = logging.getLogger("netshell.reactor")

T = TypeVar("T")


class ReactorNotRunning(RuntimeError):
    """stop() was called on a reactor that is not running."""


class ReactorAlreadyRunning(RuntimeError):
    """run() was called on a reactor whose loop is already running."""


class ReactorNotRestartable(RuntimeError):
    """run() was called on a reactor that has stopped; ``netshell.reactor`` gives a fresh one."""


class AlreadyCancelledError(RuntimeError):
    """cancel(), reset() or delay() of a timed call that was cancelled already."""


class _Scheduler(Protocol):
    def _schedule(self, call: DelayedCall) -> None: ...
    def _unschedule(self, call: DelayedCall) -> None: ...
    def seconds(self) -> float: ...


class DelayedCall:
    """A call scheduled for later by ``call_later``, on the reactor or a testing Clock.

    ``time`` is when it will run (in the scheduler's ``seconds()``). It can
    be cancelled, moved (:meth:`reset`) or pushed back (:meth:`delay`) while
    :meth:`active`; doing so afterwards raises :class:`AlreadyCancelledError`
    or :class:`~netshell.AlreadyCalledError`. An exception raised by the
    call is logged with its traceback; the reactor goes on.

    The call runs in the context (:mod:`contextvars`) of the code that made it, also
    after a :meth:`reset` or :meth:`delay` from elsewhere, as asyncio's ``call_later``
    does: in a Jupyter kernel, what it prints goes to the cell that scheduled it.
    """

    __slots__ = ("func", "args", "kw", "time", "called", "cancelled", "context", "_scheduler",
                 "_handle", "_due")

    def __init__(
        self,
        scheduler: _Scheduler,
        time: float,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self.func = func
        self.args = args
        self.kw = kw
        self.time = time
        self.called = False
        self.cancelled = False
        #: the context (:mod:`contextvars`) the call runs in: its maker's
        self.context = contextvars.copy_context()
        self._scheduler = scheduler
        self._handle: Any = None
        #: When the reactor's loop was asked to run it: a call moved later keeps that
        #: request, and is asked again for the rest when it comes (see reset).
        self._due = time

    def active(self) -> bool:
        """True while the call has neither run nor been cancelled."""
        return not (self.called or self.cancelled)

    def _check_active(self) -> None:
        if self.cancelled:
            raise AlreadyCancelledError(f"{self!r} was cancelled already")
        if self.called:
            raise AlreadyCalledError(f"{self!r} has run already")

    def cancel(self) -> None:
        """Do not run the call."""
        self._check_active()
        self.cancelled = True
        self._scheduler._unschedule(self)
        self.func = self.args = self.kw = None  # type: ignore[assignment]

    def reset(self, seconds: float) -> None:
        """Run the call ``seconds`` from now instead of when it was due."""
        self._check_active()
        self._move(self._scheduler.seconds() + seconds)

    def delay(self, seconds: float) -> None:
        """Run the call ``seconds`` later than it was due."""
        self._check_active()
        self._move(self.time + seconds)

    def _move(self, when: float) -> None:
        if when >= self.time and self._handle is not None and isinstance(self._scheduler,
                                                                          Reactor):
            # Later: the loop keeps its earlier request, and the call asks again for the
            # rest when that comes (an idle timeout reset at every command costs no timer
            # heap work then, as Twisted's reactor defers the move of a call pushed later).
            self.time = when
            return
        self._scheduler._unschedule(self)
        self.time = self._due = when
        self._scheduler._schedule(self)

    def _run(self) -> None:
        if not self.active():
            return
        if self.time > self._due:  # moved later since the loop was asked: ask again
            self._scheduler._schedule(self)
            return
        if _observe.timed_call_run:
            _observe.notify("timed_call_run", self)
        self.called = True
        self._scheduler._unschedule(self)
        try:
            self.func(*self.args, **self.kw)
        except Exception:
            log.exception("Error in timed call %r", self)
        finally:
            self.func = self.args = self.kw = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.cancelled:
            state = "cancelled"
        elif self.called:
            state = "called"
        else:
            state = f"in {self.time - self._scheduler.seconds():.3f}s"
        name = getattr(self.func, "__qualname__", None) or repr(self.func)
        if self.func is None:
            return f"<DelayedCall {state}>"
        return f"<DelayedCall {name} {state}>"


def _new_loop(use_uvloop: bool | None) -> tuple[asyncio.AbstractEventLoop, str]:
    if use_uvloop is None:
        use_uvloop = os.environ.get("NETSHELL_LOOP", "").lower() == "uvloop"
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            raise RuntimeError(
                "uvloop was asked for (NETSHELL_LOOP=uvloop or use_uvloop=True) but is not "
                "installed; install it with: pip install 'netshell[fast]'"
            ) from None
        return uvloop.new_event_loop(), "uvloop"
    return asyncio.new_event_loop(), "asyncio"


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


class Reactor:
    """The facade over one asyncio loop: timed calls, threads, run/stop, what is live.

    Usually reached as ``netshell.reactor`` (the current loop's reactor).
    ``Reactor()`` makes one on a fresh loop (uvloop when ``use_uvloop`` or
    ``NETSHELL_LOOP=uvloop`` says so); ``Reactor(loop)`` adopts a loop.
    Raises ValueError if that loop has a reactor already.
    """

    #: True once the reactor has stopped (it cannot run again)
    closed: bool
    #: seconds stop() waits for on_shutdown hooks and threads before going on
    shutdown_timeout = 10.0

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, *, use_uvloop: bool | None = None
    ) -> None:
        if loop is None:
            loop, self.loop_name = _new_loop(use_uvloop)
            self._owns_loop = True
            loop.set_exception_handler(self._loop_exception)
        else:
            existing = _current.reactor_of(loop)
            if existing is not None and not existing.closed:
                raise ValueError("that loop has a reactor already; use netshell.reactor")
            self.loop_name = _loop_name(loop)
            self._owns_loop = False
        self.loop = loop
        self.closed = False
        #: the signal that stopped run(), if one did (signal.SIGINT or SIGTERM)
        self.exit_signal: int | None = None
        self._delayed: dict[DelayedCall, None] = {}
        self._listeners: dict[Any, None] = {}
        self._connections: dict[Any, None] = {}
        # bytes of the connections that have closed (live ones count themselves)
        self._closed_bytes_received = 0
        self._closed_bytes_sent = 0
        # connections_closed()'s Deferreds, fired when the last connection goes
        self._closed_waiters: list[Deferred[None]] = []
        self._shutdown_hooks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._pool: ThreadPool | None = None
        self._pool_size = 10
        self._stopping: Deferred[None] | None = None
        self._in_run = False
        self._set_as_event_loop = False
        _current.attach(loop, self)

    # ---- time

    def seconds(self) -> float:
        """The loop's clock (monotonic seconds), the time base of call_later."""
        return self.loop.time()

    def call_later(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Run ``f(*args, **kw)`` after ``delay`` seconds; returns a :class:`DelayedCall`.

        Example::

            >>> from netshell import reactor
            >>> dc = reactor.call_later(60, print, "a minute later")
            >>> dc.active(); dc.cancel(); dc.active()
            True
            False
        """
        call = DelayedCall(self, self.loop.time() + delay, f, args, kw)
        self._schedule(call)
        return call

    def call_soon(self, f: Callable[..., Any], *args: Any) -> asyncio.Handle:
        """Run ``f(*args)`` on the next turn of the loop (from the loop's thread)."""
        return self.loop.call_soon(f, *args)

    def _schedule(self, call: DelayedCall) -> None:
        call._handle = self.loop.call_at(call.time, call._run, context=call.context)
        call._due = call.time
        self._delayed[call] = None

    def _unschedule(self, call: DelayedCall) -> None:
        self._delayed.pop(call, None)
        if call._handle is not None:
            call._handle.cancel()
            call._handle = None

    @property
    def delayed_calls(self) -> list[DelayedCall]:
        """The timed calls still to run, soonest first."""
        return sorted(self._delayed, key=lambda c: c.time)

    # ---- what is live

    @property
    def listeners(self) -> list[Any]:
        """The listeners open now, oldest first."""
        return list(self._listeners)

    @property
    def connections(self) -> list[Any]:
        """The connections open now, oldest first."""
        return list(self._connections)

    def connections_closed(self) -> Deferred[None]:
        """A Deferred that fires (with None) once no connection is open; at once if none is.

        Each call gets its own Deferred. It asks nothing to close: pair it with a
        timeout (cancelling the Deferred stops the wait) to give connections a grace
        period, as the shutdown and ``netsh run`` do.
        """
        d: Deferred[None] = Deferred()
        if self._connections:
            self._closed_waiters.append(d)
        else:
            d.callback(None)
        return d

    @property
    def bytes_received(self) -> int:
        """Bytes received by every connection of this reactor so far, closed ones included."""
        return self._closed_bytes_received + sum(c.bytes_received for c in self._connections)

    @property
    def bytes_sent(self) -> int:
        """Bytes accepted for sending by every connection of this reactor so far."""
        return self._closed_bytes_sent + sum(c.bytes_sent for c in self._connections)

    # ---- the registry, kept by the listeners and transports themselves

    def add_listener(self, listener: Any) -> None:
        """Count ``listener`` among :attr:`listeners` (called by a Listener or a UDP port
        when it starts listening; not for applications)."""
        self._listeners[listener] = None

    def remove_listener(self, listener: Any) -> None:
        """Drop ``listener`` from :attr:`listeners` (called when it closes; not for
        applications). A listener not registered is ignored."""
        self._listeners.pop(listener, None)

    def add_connection(self, connection: Any) -> None:
        """Count ``connection`` among :attr:`connections` (called by a stream transport
        once its connection is made, or its TLS handshake begins; not for applications)."""
        self._connections[connection] = None

    def remove_connection(self, connection: Any) -> None:
        """Drop ``connection`` from :attr:`connections` once it is lost, keeping its byte
        counts in :attr:`bytes_received` / :attr:`bytes_sent` (called by the transport;
        not for applications). A connection not registered is ignored."""
        if self._connections.pop(connection, False) is None:
            self._closed_bytes_received += connection.bytes_received
            self._closed_bytes_sent += connection.bytes_sent
        if not self._connections and self._closed_waiters:
            waiters, self._closed_waiters = self._closed_waiters, []
            for waiter in waiters:
                if not waiter.called:  # a cancelled wait has fired already
                    waiter.callback(None)

    def pending_deferreds(self) -> list[Deferred[Any]]:
        """The Deferreds alive now that have not fired, or wait on another, by number.

        Found by walking the objects the garbage collector tracks, so keeping
        track costs nothing until this is called; the list holds every such
        Deferred of the process (Deferreds belong to no particular loop).
        """
        found = [
            o
            for o in gc.get_objects()
            # type(o), not isinstance(o, ...): isinstance would also ask each object for
            # its __class__, which makes a lazily loaded module (the prompt's tls, http...)
            # load itself.
            if issubclass(type(o), Deferred) and (not o.called or o.waiting_on is not None)
        ]
        found.sort(key=lambda d: d.number)
        return found

    # ---- connections

    def listen_tcp(
        self, port: int, factory: Factory, interface: str = "127.0.0.1", backlog: int = 128
    ) -> Listener:
        """Listen for TCP connections on ``interface:port``, bound at once.

        Each accepted connection gets a protocol from ``factory``. Port 0
        picks a free port (``listener.port`` tells which); an IPv6
        ``interface`` such as ``"::1"`` listens on IPv6. Raises OSError, with
        the address in the message, when the port is taken.

        Example::

            >>> import netshell as ns
            >>> from netshell import reactor
            >>> listener = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
            >>> listener.port > 0, listener.address.host
            (True, '127.0.0.1')
            >>> _ = listener.close()
        """
        sock, kind = bind_tcp(interface, port, backlog)
        return Listener(self, sock, kind, factory, backlog)

    def connect_tcp(
        self,
        host: str,
        port: int,
        factory: Factory,
        timeout: float = 30,
        bind_address: tuple[str, int] | None = None,
    ) -> Deferred[Any]:
        """Connect to ``host:port``; the Deferred fires with the connected protocol.

        It fails with ``ConnectionRefused``, ``ConnectTimeout`` or
        ``DNSLookupError`` (all :class:`~netshell.ConnectError`); cancelling
        it abandons the attempt.
        """
        kind = "tcp6" if ":" in host else "tcp"
        return Connector(self, kind, (host, port), factory, timeout, bind_address).connect()

    def listen_unix(
        self, path: str | os.PathLike[str], factory: Factory, mode: int = 0o600, backlog: int = 128
    ) -> Listener:
        """Listen on a Unix socket at ``path`` (file mode ``mode``), bound at once.

        A stale socket file (nobody listening) is replaced; a live one raises
        OSError (EADDRINUSE), and so does a path that is not a socket. The
        file is removed when the listener closes.
        """
        sock = bind_unix(os.fspath(path), mode, backlog)
        return Listener(self, sock, "unix", factory, backlog)

    def connect_unix(
        self, path: str | os.PathLike[str], factory: Factory, timeout: float = 30
    ) -> Deferred[Any]:
        """Connect to the Unix socket at ``path``; fires with the connected protocol."""
        return Connector(self, "unix", os.fspath(path), factory, timeout).connect()

    def listen_tls(
        self,
        port: int,
        factory: Factory,
        context: Any,
        interface: str = "127.0.0.1",
        backlog: int = 128,
    ) -> Listener:
        """Like :meth:`listen_tcp`, with TLS from the first byte, using a server ``context``.

        Each connection's protocol gets ``connection_made`` once the
        handshake has succeeded; a failed handshake closes that connection
        only (logged), and the listener keeps serving.

        Example::

            >>> import netshell as ns
            >>> from netshell import reactor, tls
            >>> cert, key, ca = tls.self_signed("localhost")
            >>> listener = reactor.listen_tls(
            ...     0, ns.Factory.for_protocol(ns.Protocol), tls.server_context(cert, key))
            >>> listener.tls_context.server_side
            True
            >>> _ = listener.close()
        """
        sock, kind = bind_tcp(interface, port, backlog)
        return Listener(self, sock, kind, factory, backlog, tls_context=context)

    def connect_tls(
        self,
        host: str,
        port: int,
        factory: Factory,
        context: Any = None,
        timeout: float = 30,
        bind_address: tuple[str, int] | None = None,
    ) -> Deferred[Any]:
        """Connect with TLS; fires with the protocol once the handshake and checks succeed.

        ``timeout`` bounds the TCP connection and the handshake together
        (ConnectTimeout when it runs out).

        ``context`` defaults to ``netshell.tls.client_context(host)``: the
        certificate chain is verified against the system's trust store and
        the host name against the certificate. Fails with a
        :class:`~netshell.ConnectError` or a :class:`~netshell.TLSError`
        subclass (HostnameMismatch, UnknownCA, CertificateExpired, ...).
        """
        if context is None:
            # Imported here for start-up time: netshell.tls loads pyOpenSSL and cryptography,
            # which only TLS users should pay for (netsh run must not).
            from netshell.tls import client_context

            context = client_context(host)
        kind = "tcp6" if ":" in host else "tcp"
        connector = Connector(
            self, kind, (host, port), factory, timeout, bind_address, tls_context=context
        )
        return connector.connect()

    def listen_udp(
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "127.0.0.1",
        max_size: int = 65535,
    ) -> DatagramListener:
        """Bind a UDP socket on ``interface:port`` at once and give it to ``protocol``.

        ``protocol.datagram_received(data, addr)`` gets each datagram;
        ``listener.transport.write(data, addr)`` sends. Port 0 picks a free
        port. Raises OSError, naming the address, when it cannot bind.
        """
        return _listen_udp(self, port, protocol, interface, max_size)

    def listen_multicast(
        self,
        port: int,
        protocol: DatagramProtocol,
        group: str,
        interface: str = "127.0.0.1",
        ttl: int = 1,
        loopback: bool = True,
    ) -> DatagramListener:
        """Bind a UDP socket on ``port`` that receives the multicast ``group``.

        ``interface`` is the local address of the network interface to join
        the group on (loopback by default, so nothing leaves the machine).
        Several listeners on one machine may share the port.
        """
        return _listen_multicast(self, port, protocol, group, interface, ttl, loopback)

    # ---- threads

    @property
    def thread_pool(self) -> ThreadPool:
        """The pool that runs defer_to_thread and call_in_thread (started on first use)."""
        if self._pool is None:
            # Its workers' ``reactor`` is this one: call_from_thread from a job comes back
            # here (not to a fresh reactor of the worker's own, on a loop nobody runs).
            self._pool = ThreadPool(self._pool_size, worker_init=functools.partial(install, self))
        return self._pool

    def set_thread_pool_size(self, max_workers: int) -> None:
        """Set how many worker threads may run at once (10 by default)."""
        if max_workers < 1:
            raise ValueError("the thread pool needs at least one worker")
        self._pool_size = max_workers
        if self._pool is not None:
            self._pool.resize(max_workers)

    def call_in_thread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``f(*args, **kw)`` in the thread pool; an exception is logged."""
        self.thread_pool.submit(f, args, kw)

    def call_from_thread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """From any thread: run ``f(*args, **kw)`` in the reactor's thread, soon.

        Raises RuntimeError if the reactor's loop is closed.
        """
        if kw:
            self.loop.call_soon_threadsafe(lambda: f(*args, **kw))
        else:
            self.loop.call_soon_threadsafe(f, *args)

    def defer_to_thread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Run ``f(*args, **kw)`` in the thread pool; a Deferred fires here with the outcome."""
        d: Deferred[Any] = Deferred()
        loop = self.loop

        def on_done(ok: bool, result: Any) -> None:
            fire = d.callback if ok else d.errback
            try:
                loop.call_soon_threadsafe(fire, result)
            except RuntimeError:  # the loop closed while the thread worked
                log.warning("Result of %r dropped: the reactor's loop is closed", f)

        self.thread_pool.submit(f, args, kw, on_done)
        return d

    # ---- running and stopping

    @property
    def running(self) -> bool:
        """True while the reactor's loop runs."""
        return self.loop.is_running()

    def run(self, install_signal_handlers: bool = True) -> None:
        """Run the loop until :meth:`stop` (scripts only: the prompt runs it for you).

        SIGINT and SIGTERM stop it gracefully (``exit_signal`` tells which).
        When run() returns, the reactor is closed; ``netshell.reactor`` then
        gives a fresh one. Raises :class:`ReactorAlreadyRunning` if the loop
        runs already and :class:`ReactorNotRestartable` after a stop.

        Example::

            >>> from netshell import reactor
            >>> _ = reactor.call_later(0.01, reactor.stop)
            >>> reactor.run()
        """
        if self.closed:
            raise ReactorNotRestartable(
                "this reactor has stopped; netshell.reactor gives a fresh one"
            )
        if self.loop.is_running():
            raise ReactorAlreadyRunning("the reactor's loop is running already")
        install(self)
        asyncio.set_event_loop(self.loop)
        self._set_as_event_loop = True
        signals: list[signal.Signals] = []
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self.loop.add_signal_handler(sig, self._on_signal, sig)
                    signals.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        self._in_run = True
        try:
            self.loop.run_forever()
        finally:
            self._in_run = False
            for sig in signals:
                self.loop.remove_signal_handler(sig)
            self.close()

    def run_until(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run the loop until ``awaitable`` (a Deferred, coroutine or future) completes.

        Returns its result or raises its exception; with ``timeout``, raises
        TimeoutError when it has not completed in that many seconds (and
        cancels it). Handy in tests and small scripts; the reactor stays
        usable afterwards, unless :meth:`stop` ran meanwhile (then its loop is
        closed here, and ``netshell.reactor`` gives a fresh one).
        """
        if self.closed:
            raise ReactorNotRestartable(
                "this reactor has stopped; netshell.reactor gives a fresh one"
            )
        fut = awaitable.as_future(self.loop) if isinstance(awaitable, Deferred) else awaitable
        if timeout is not None:
            fut = asyncio.wait_for(fut, timeout)
        try:
            return cast(T, self.loop.run_until_complete(fut))
        finally:
            if self.closed:  # stop() completed meanwhile: the loop can be closed now
                self.close()

    def _on_signal(self, sig: int) -> None:
        if self._stopping is not None:
            # No second grace: connections are aborted (nothing more is flushed) and the
            # graceful shutdown under way is given up; run() returns and closes the rest.
            log.warning("Second %s: stopping now", signal.Signals(sig).name)
            for t in self.connections:
                t.abort()
            if not self._stopping.called:
                self._stopping.add_errback(lambda f: f.trap(asyncio.CancelledError))
                self._stopping.cancel()
            self.loop.stop()
            return
        log.info("Received %s: shutting down", signal.Signals(sig).name)
        self.exit_signal = sig
        self.stop()

    def on_shutdown(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Call ``f(*args, **kw)`` when the reactor stops, before connections close.

        ``f`` may return a Deferred or coroutine; stop() waits for it, at most
        ``shutdown_timeout`` seconds for all hooks together. Errors are logged.
        """
        self._shutdown_hooks.append((f, args, kw))

    def stop(self) -> Deferred[None]:
        """Shut down: run the on_shutdown hooks, close listeners, connections and threads.

        When run() is running the loop, the loop then stops and run() returns.
        Returns a Deferred that fires when the shutdown is complete; calling
        stop() again returns the same one. Raises :class:`ReactorNotRunning`
        if the loop is not running.
        """
        if self._stopping is not None:
            return self._stopping
        if not self.loop.is_running():
            raise ReactorNotRunning("the reactor is not running")
        self._stopping = ensure_deferred(self._shutdown())
        return self._stopping

    async def _shutdown(self) -> None:
        await self._run_shutdown_hooks()
        self._close_live()
        if self._connections:
            # Closing flushes what each connection has buffered: wait for them, bounded.
            closed = self.connections_closed().as_future()
            done, _ = await asyncio.wait([closed], timeout=self.shutdown_timeout)
            if not done:
                log.warning(
                    "Connections still open after %ss, aborting: %r",
                    self.shutdown_timeout,
                    self.connections,
                )
                closed.cancel()
                for t in self.connections:
                    t.abort()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            if not await asyncio.to_thread(pool.stop, self.shutdown_timeout):
                log.warning("Worker threads still busy after %ss: %r", self.shutdown_timeout, pool)
        if self._in_run:
            self.loop.stop()
        else:
            # Stopped for good: netshell.reactor gives a fresh one from now on. A loop of
            # ours is busy in run_until(); run_until() closes it once it returns.
            self._forget()

    async def _run_shutdown_hooks(self) -> None:
        """Run the on_shutdown hooks now (those added meanwhile run at stop()), waiting at
        most ``shutdown_timeout`` seconds for them all. ``netsh run`` runs them before it
        closes the script's own connections, so a hook may still say goodbye on them."""
        hooks, self._shutdown_hooks = self._shutdown_hooks, []
        pending = [maybe_deferred(f, *a, **kw) for f, a, kw in hooks]
        for d in pending:
            d.add_errback(self._log_hook_error)
        if pending:
            # Not wait_for: it would cancel the hooks before we could name the late ones.
            everything = gather(*pending).as_future()
            finished, _ = await asyncio.wait([everything], timeout=self.shutdown_timeout)
            if not finished:
                late = [d for d in pending if not d.called]
                log.warning(
                    "Shutdown hooks still running after %ss: %r", self.shutdown_timeout, late
                )
                everything.cancel()

    @staticmethod
    def _log_hook_error(f: Failure) -> None:
        if f.check(asyncio.CancelledError):  # cancelled after shutdown_timeout: warned already
            return
        if f.check(SystemExit, KeyboardInterrupt):
            # Someone is leaving (a second Ctrl-C while a hook ran, sys.exit in a hook): the
            # reactor is stopping already; that is no error to show with a traceback.
            log.debug("A shutdown hook was interrupted: %r", f.value)
            return
        log.error("Error in a shutdown hook", exc_info=(f.type, f.value, f.tb))

    def _close_live(self) -> None:
        for item in [*self._listeners, *self._connections]:
            try:
                item.close()  # listeners and transports (netshell.interfaces) all close()
            except Exception:
                log.exception("Error closing %r", item)

    def _forget(self) -> None:
        self.closed = True
        _current.forget(self)

    def close(self) -> None:
        """Release everything at once, without running the loop; close the loop if it is ours.

        For when the loop is not running (a test's teardown, after ``run_until``,
        a program leaving): pending timed calls are cancelled, listeners and
        connections closed, the thread pool stopped without waiting, and the
        reactor forgotten (``netshell.reactor`` then gives a fresh one). No
        ``on_shutdown`` hook runs and nothing is flushed: for a graceful end,
        await :meth:`stop` instead. Calling it again does nothing.

        Example::

            >>> from netshell.reactor import Reactor
            >>> r = Reactor()
            >>> r.close()
            >>> r.closed
            True
        """
        if self.closed and (self.loop.is_closed() or not self._owns_loop):
            return
        for call in list(self._delayed):
            call.cancel()
        self._close_live()
        if self._pool is not None:
            self._pool.stop(timeout=0)
            self._pool = None
        if self._owns_loop and not self.loop.is_closed():
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            except RuntimeError:
                pass
            self.loop.close()
        if self._set_as_event_loop:
            self._set_as_event_loop = False
            asyncio.set_event_loop(None)
        self._forget()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = context.get("message", "Error in the event loop")
        if exc is not None:
            log.error("%s", message, exc_info=(type(exc), exc, exc.__traceback__))
        else:
            log.error("%s: %r", message, context)

    def __repr__(self) -> str:
        if self.closed:
            state = "stopped"
        elif self.loop.is_running():
            state = "running"
        else:
            state = "not running"
        return (
            f"<Reactor on {self.loop_name}, {state}: {len(self._listeners)} listeners, "
            f"{len(self._connections)} connections, {len(self._delayed)} timed calls>"
        )


# get_reactor() makes a Reactor when the current loop has none.
_current.set_reactor_type(Reactor)

class _CurrentReactor:
    """``netshell.reactor``: stands for the reactor of the current loop, whichever it is."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(get_reactor(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(get_reactor(), name, value)

    def __dir__(self) -> list[str]:
        return dir(get_reactor())

    def __repr__(self) -> str:
        return repr(get_reactor())


#: the current loop's reactor; ``from netshell import reactor`` gives this.
reactor: Reactor = cast(Reactor, _CurrentReactor())
