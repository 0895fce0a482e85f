"""Stream transports: what protocols see of TCP and Unix sockets.

A protocol never touches a socket. It is handed a :class:`StreamTransport`
with ``connection_made`` and talks through ``write`` / ``close`` /
``abort``. The StreamTransport is itself the asyncio protocol of the
connection (of asyncio's transport, or for a listener's connections on asyncio's
own loop, of a :class:`~netshell.socket_io.SocketIO`), so between the event loop and
a protocol's ``data_received`` there is one method that counts bytes and catches
errors, nothing more.

Data reaches the protocol in ``StreamTransport.data_received`` (plain bytes: the
hottest path, written out) and ``StreamTransport._deliver`` (plaintext after TLS);
the connection is made in one place (``_attach_protocol``) and lost in one
(``connection_lost``); these places, and ``write``/``write_sequence``, tell the
observers (:mod:`netshell.observe`). While TLS is on, the transport holds a
:class:`netshell.tls_layer.TLSConnection` (the handshake and its deadline,
close_notify, held plaintext), loaded only when TLS is used.

Files go out with ``send_file`` (sendfile(2) on a plain socket) and come in with
``receive_file`` (splice(2), socket to pipe to file, on a plain socket with asyncio's
selector loop): the kernel moves the bytes, Python never holds them.

Listening and connecting are in :mod:`netshell.listener` (Listener) and
:mod:`netshell.connector` (Connector), which build StreamTransports.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import contextvars
import errno
import fcntl
import itertools
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

from netshell import observe as _observe
from netshell.defer import Deferred, succeed
from netshell.errors import ConnectError, ConnectionDone, ConnectionLost
from netshell.failure import Failure
from netshell.interfaces import Address, bind_context
from netshell.socket_io import SocketIO

if TYPE_CHECKING:
    from netshell.connector import Connector
    from netshell.listener import Listener
    from netshell.protocol import Factory
    from netshell.reactor import Reactor
    from netshell.tls_layer import TLSConnection, TLSInfo

__all__ = [
    "Address",
    "PeerCredentials",
    "StreamTransport",
    "address_of",
]

log = logging.getLogger("netshell.transport")

_P = ParamSpec("_P")
_R = TypeVar("_R")

# The observers of data in and out, mirrored from netshell.observe into this module so that
# the hottest paths (every read, every write) test one global: kept up to date by on_change.
_data_in: tuple[Any, ...] = ()
_data_out: tuple[Any, ...] = ()


def _sync_observers() -> None:
    global _data_in, _data_out
    _data_in, _data_out = _observe.data_in, _observe.data_out


_observe.on_change(_sync_observers)


class PeerCredentials(NamedTuple):
    """The process at the other end of a Unix socket, as the kernel tells it."""

    pid: int
    uid: int
    gid: int


def address_of(kind: str, sockaddr: Any) -> Address:
    """The :class:`Address` of a socket address of ``kind`` (as asyncio or a socket gives it).

    Stream transports and listeners (:mod:`netshell.listener`) name their ends with it.

    Example::

        >>> address_of("tcp", ("127.0.0.1", 8080))
        Address(kind='tcp', host='127.0.0.1', port=8080)
        >>> address_of("unix", b"/tmp/s.sock").host
        '/tmp/s.sock'
    """
    if kind == "unix":
        path = sockaddr.decode() if isinstance(sockaddr, bytes) else (sockaddr or "")
        return Address("unix", path, 0)
    if not sockaddr:
        return Address(kind, "", 0)
    return Address(kind, sockaddr[0], sockaddr[1])


#: seconds close() waits for the peer's TLS close_notify before closing the socket
TLS_CLOSE_TIMEOUT = 5.0
#: seconds a TLS handshake may take before the connection is dropped
TLS_HANDSHAKE_TIMEOUT = 30.0

_READ_SIZE = 127 * 1024  # under glibc's default mmap threshold (128 KiB), with room for headers

#: bytes per loop.sendfile call when a file goes out with sendfile(2): asyncio tells how much
#: went out only when a call ends, so ``bytes_sent`` follows a transfer this closely
SENDFILE_CHUNK = 4 * 1024 * 1024

#: the size asked for the pipe of :meth:`StreamTransport.receive_file` with splice(2) (the
#: most an unprivileged process may ask, by default), and the most it moves per splice call
SPLICE_PIPE_SIZE = 1024 * 1024
#: the most :meth:`StreamTransport.receive_file` moves with splice(2) each time the socket is
#: readable, before the loop runs other callbacks (less when the socket has less)
SPLICE_PER_WAKE = 1024 * 1024

_splice = getattr(os, "splice", None)  # Linux, Python 3.10+
_SPLICE_MOVE = getattr(os, "SPLICE_F_MOVE", 0)
_SPLICE_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 0)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SelectorLoop = asyncio.selector_events.BaseSelectorEventLoop


class _Receive:
    """A file being written with what arrives (:meth:`StreamTransport.receive_file`)."""

    __slots__ = ("d", "fd", "got", "left", "pipe", "reading", "sock_fd", "write")

    def __init__(self, d: Deferred[int], fd: int | None, write: Any, left: int | None) -> None:
        self.d = d
        #: the file's descriptor (None: written with ``write``, a file object's method)
        self.fd = fd
        self.write = write
        #: bytes written into the file so far
        self.got = 0
        #: bytes still wanted (None: to the end of the stream)
        self.left = left
        #: the pipe's (read end, write end) when the kernel moves the data with splice(2)
        self.pipe: tuple[int, int] | None = None
        #: with splice(2), a duplicate of the socket's descriptor: the splice reader's own
        #: (the loop takes no second reader on the transport's descriptor)
        self.sock_fd = -1
        #: True while the splice reader is registered on the loop
        self.reading = False

    def close_fds(self) -> None:
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            os.close(pipe[0])
            os.close(pipe[1])
        sock_fd, self.sock_fd = self.sock_fd, -1
        if sock_fd >= 0:
            os.close(sock_fd)


class _NativeSend:
    """A file on its way out with loop.sendfile (:meth:`StreamTransport.send_file`).

    It holds the task that sends it until the task ends, and tells a close or abort
    how to end it: asyncio's transport must not be closed while loop.sendfile runs
    (its ``_call_connection_lost`` then fails on the finished "empty waiter", and the
    sendfile future is left pending for ever), so the transfer is ended first, by
    shutting the socket's sending side (sendfile(2) fails at once with EPIPE), and the
    transport is closed once loop.sendfile has given the transport back.
    """

    __slots__ = ("drained", "ending", "in_sendfile", "shut", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        #: True while loop.sendfile runs (the asyncio transport is lent to it)
        self.in_sendfile = False
        #: why the transfer is being cut short: "close", "abort" or "lost" (else None)
        self.ending: str | None = None
        #: the socket's sending side is shut (to end a running loop.sendfile)
        self.shut = False
        #: set while waiting for the write buffer to empty before a loop.sendfile call
        self.drained: asyncio.Future[None] | None = None

    def wake(self) -> None:
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)


#: Numbers for connections, shown by the prompt's tables and traces.
connection_numbers = itertools.count(1)


class StreamTransport(asyncio.Protocol):
    """The transport a stream protocol talks through (TCP or Unix socket).

    It is also the asyncio protocol of the connection: the loop calls it,
    it counts bytes and calls the netshell protocol. Attributes: ``protocol``,
    ``peer`` and ``host`` (:class:`Address`), ``bytes_sent`` (bytes accepted
    for sending), ``bytes_received``, ``connected_at`` (a ``time.time()``),
    ``tls`` (TLS details, or None), ``listener`` (for accepted connections).

    An exception raised by the protocol is logged with its traceback and
    closes this connection only.

    The protocol's callbacks run in the context (:mod:`contextvars`) of the code that
    made the connection (that started the listener, or connected), also when other code
    resumes reading, closes, aborts or breaks it: in a Jupyter kernel, what the
    connection prints and logs goes to the cell that started it. :meth:`in_context`
    gives the protocol the same for its own callbacks.
    """

    __slots__ = (
        "_aborted",
        "_connector",
        "_context",
        "_error",
        "_factory",
        "_held",
        "_made",
        "_native",
        "_producer",
        "_pull_scheduled",
        "_reactor",
        "_read_paused",
        "_receiving",
        "_streaming",
        "_t",
        "_tls",
        "_tls_context",
        "_tls_hostname",
        "_write_paused",
        "__weakref__",
        "bytes_received",
        "bytes_sent",
        "connected_at",
        "kind",
        "listener",
        "lost",
        "number",
        "protocol",
    )

    def __init__(
        self,
        reactor: Reactor,
        kind: str,
        factory: Factory,
        listener: Listener | None = None,
        connector: Connector | None = None,
        made: Deferred[Any] | None = None,
        tls_context: Any = None,
        tls_hostname: str | None = None,
    ) -> None:
        self._reactor = reactor
        # The context (contextvars) of the code that made the connection: the listener's
        # maker for an accepted one (accepting runs in its context), the connecting code
        # for a client one. What this transport schedules or registers on the loop that
        # leads to the protocol is made in a copy of it, never in the context of whoever
        # resumes, closes or writes from elsewhere: in a Jupyter kernel, the connection's
        # output goes to the cell that started it. Never entered itself (only copies are:
        # Context.run refuses a context that is entered already).
        self._context = contextvars.copy_context()
        #: this connection's number: per process, in order of creation (``conn(3)`` at the prompt)
        self.number = next(connection_numbers)
        self.kind = kind
        self._factory = factory
        self.listener = listener
        self._connector = connector
        self._made = made
        self._t: Any = None
        self.protocol: Any = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connected_at = 0.0
        #: the TLS state machine while TLS is on (it drives a TLSLayer), else None
        self._tls: TLSConnection | None = None
        self._tls_context = tls_context
        self._tls_hostname = tls_hostname
        self.lost = False
        self._aborted = False
        self._error: BaseException | None = None
        self._producer: Any = None
        self._streaming = False
        self._write_paused = False
        self._pull_scheduled = False
        self._read_paused = False
        self._held: list[bytes] | None = None
        self._native: _NativeSend | None = None
        self._receiving: _Receive | None = None

    # ---- called by the event loop

    def connection_made(self, transport: Any) -> None:
        self._t = transport
        if getattr(transport, "max_size", 0) > _READ_SIZE:
            # asyncio's selector transports read into a fresh 256 KiB buffer, which
            # glibc may serve with mmap/mremap/munmap on every read (4x slower
            # ping-pong, depending on the allocator's history); reads under 128 KiB
            # stay on the heap whatever that history.
            transport.max_size = _READ_SIZE
        self.connected_at = time.time()
        if self.listener is None and self.kind in ("tcp", "tcp6"):
            # A host name may resolve to either family: the socket tells which it was.
            # (A listener's connections are of its family, which its kind tells.)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self.kind = "tcp6" if sock.family == socket.AF_INET6 else "tcp"
        if self._tls_context is not None:
            # listen_tls / connect_tls: the protocol meets the connection only
            # once the handshake (and certificate check) has succeeded.
            self._reactor.add_connection(self)
            self._begin_tls(self._tls_context, self._tls_hostname, None)
            return
        self._attach_protocol()

    def _attach_protocol(self) -> None:
        transport = self._t
        try:
            protocol = self._factory.build_protocol(self.peer)
        except Exception as e:
            log.exception("Error in %r.build_protocol; closing the connection", self._factory)
            self._error = e
            transport.abort()
            self._fail_made(e)
            return
        if protocol is None:  # the factory refused this connection
            transport.close()
            self._fail_made(
                ConnectError("the factory refused the connection (build_protocol gave None)")
            )
            return
        self.protocol = protocol
        self._reactor.add_connection(self)
        if self.listener is not None:
            self.listener.add_connection(self)
        if _observe.connection_made:
            _observe.notify("connection_made", self)
        try:
            protocol.connection_made(self)
        except Exception as e:
            self._protocol_error(e, "connection_made")
            self._fail_made(e)
            return
        if self._connector is not None:
            self._connector.transport = self
            self._connector.state = "connected"
        made, self._made = self._made, None
        if made is not None and not made.called:
            made.callback(protocol)

    def _fail_made(self, exc: BaseException) -> None:
        made, self._made = self._made, None
        if made is not None and not made.called:
            made.errback(Failure(exc))

    def data_received(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls.received(data)  # ciphertext: plaintext comes back through _deliver
            return
        self.bytes_received += len(data)
        if self._read_paused:
            # uvloop starts reading after connection_made() even if the protocol
            # paused there: keep the data until resume_reading().
            if self._held is None:
                self._held = []
            self._held.append(data)
            self._t.pause_reading()
            return
        # What _deliver does, written out: this is the path of every read on TCP and Unix.
        if _data_in:
            _observe.notify("data_in", self, data, None)
        if self._receiving is not None:
            self._receive_data(data)  # receive_file, by os.write
            return
        try:
            self.protocol.data_received(data)
        except Exception as e:
            self._protocol_error(e, "data_received")

    def _deliver(self, data: bytes) -> bool:
        """Hand plaintext to the protocol after TLS (plain reads do the same in
        :meth:`data_received`). False if the protocol raised (its connection is aborted)."""
        if _data_in:
            _observe.notify("data_in", self, data, None)
        if self._receiving is not None:
            self._receive_data(data)  # receive_file, by os.write
            return True
        try:
            self.protocol.data_received(data)
        except Exception as e:
            self._protocol_error(e, "data_received")
            return False
        return True

    def eof_received(self) -> bool | None:
        if self._tls is not None:
            # A TCP end of file is not a TLS one: connection_lost tells a clean
            # close (close_notify seen) from a truncated one.
            return None
        return self._deliver_eof()

    def _deliver_eof(self) -> bool | None:
        """Tell the protocol the peer sent all it will (a TCP end of file, or a TLS
        close_notify): the truth of its answer (keep the connection open), or None if
        it raised (its connection is aborted)."""
        if self._receiving is not None:
            self._end_receive(None)  # receive_file is done: the protocol hears of the end too
        try:
            return bool(self.protocol.eof_received())
        except Exception as e:
            self._protocol_error(e, "eof_received")
            return None

    def connection_lost(self, exc: BaseException | None) -> None:
        # Once per connection, in its own context: a close, an abort or a write error from
        # code running elsewhere (another cell, a thread's callback, a TLS timer) schedules
        # this call in that code's context.
        self._context.copy().run(self._lost, exc)

    def _lost(self, exc: BaseException | None) -> None:
        self.lost = True
        if self._receiving is not None:
            self._receive_lost(exc)
        native = self._native
        if native is not None:  # a file was waiting for the write buffer to empty
            native.ending = native.ending or "lost"
            native.wake()
        tls = self._tls
        if tls is not None:
            tls.connection_lost(exc, self._error)  # a handshake cut short fails here
        self._reactor.remove_connection(self)
        if self.listener is not None:
            self.listener.remove_connection(self)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.stop_producing()
            except Exception:
                log.exception("Error in %r.stop_producing", producer)
        if self.protocol is None:
            if self._connector is not None:  # our own factory refused it, or TLS failed
                tls_failed = tls is not None and not tls.established and not self._aborted
                self._connector.attempt_failed(Failure(self._error) if tls_failed else None)
            return
        cause = self._error or exc
        if cause is None and tls is not None and not self._aborted:
            cause = tls.truncation()  # no close_notify either way: the data may be cut
        if cause is None and not self._aborted:
            reason = Failure(ConnectionDone("the connection was closed cleanly"))
        else:
            if cause is None:
                lost = ConnectionLost("the connection was aborted")
            else:
                lost = ConnectionLost(f"the connection was lost: {cause!r}")
                lost.__cause__ = cause
            reason = Failure(lost)
        try:
            self.protocol.connection_lost(reason)
        except Exception:
            log.exception("Error in %r.connection_lost", self.protocol)
        if _observe.connection_lost:
            _observe.notify("connection_lost", self, reason)
        if self._connector is not None:
            self._connector.connection_lost(reason)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._producer is not None and self._streaming:
            self._producer.pause_producing()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._native is not None:
            self._native.wake()  # the write buffer is empty: send_file's next sendfile call
        if self._producer is not None:
            if self._streaming:
                self._producer.resume_producing()
            else:
                self._schedule_pull()

    def _protocol_error(self, exc: Exception, where: str) -> None:
        log.error(
            "Error in %r.%s; closing its connection %s",
            self.protocol,
            where,
            self,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        self._error = exc
        self.abort()

    # ---- used by the protocol

    def in_context(self, f: Callable[_P, _R]) -> Callable[_P, _R]:
        """``f``, wrapped to run in the connection's context (:mod:`contextvars`), whoever
        calls it: each call runs in a fresh copy of the context the connection was made in.

        The transport calls the protocol in that context; a callback the protocol adds to
        a Deferred that other code fires runs in the firing code's context instead, unless
        wrapped. In a Jupyter kernel, a wrapped callback's output and log records go to
        the cell that started the connection, whichever cell fires the Deferred. Returns a
        new callable (``f``'s name and docstring kept); ``f`` itself is left alone.

        Example::

            class Lookup(ns.Protocol):
                def data_received(self, data):
                    d = directory.find(data)  # fired by whoever answers, from anywhere
                    d.add_callback(self.transport.in_context(self.answer))

                def answer(self, entry):
                    self.transport.write(entry)
        """
        return bind_context(self._context, f)

    def write(self, data: bytes) -> None:
        """Send ``data`` (bytes-like; str raises TypeError). Never blocks."""
        if self._tls is None:
            self._t.write(data)
        elif self._tls.closing():
            return  # after close(): dropped, as a TCP transport drops it
        else:
            self._tls.send(data)
        self.bytes_sent += len(data)
        if _data_out:
            _observe.notify("data_out", self, data, None)

    def write_sequence(self, chunks: Iterable[bytes]) -> None:
        """Send each chunk in turn, as one write."""
        chunks = list(chunks)
        if self._tls is None:
            self._t.writelines(chunks)
        elif self._tls.closing():
            return  # after close(): dropped, as a TCP transport drops it
        else:
            self._tls.send(b"".join(chunks))
        self.bytes_sent += sum(map(len, chunks))
        if _data_out:
            _observe.notify("data_out", self, b"".join(chunks), None)

    def write_eof(self) -> None:
        """Half-close: send what is buffered, then end our direction of the stream.

        On TLS this sends close_notify (TLS has no other half-close).
        """
        if self._tls is None:
            self._t.write_eof()
        else:
            self._tls.write_eof()

    def close(self) -> None:
        """Close after everything written so far has been sent.

        On TLS, close_notify is sent first and the peer's is awaited, at most
        ``TLS_CLOSE_TIMEOUT`` seconds.
        """
        if self._t is None:
            return
        if self._native is not None and self._end_native("close"):
            return  # closed once loop.sendfile has given the transport back
        tls = self._tls
        if tls is not None and tls.close(TLS_CLOSE_TIMEOUT):
            return  # close_notify sent: the TLS connection closes once the peer's comes
        self._t.close()

    # ---- TLS

    def start_tls(self, context: Any, server_side: bool | None = None) -> Deferred[Any]:
        """Upgrade this connection to TLS; the Deferred fires with ``transport.tls`` once
        the handshake is done (and fails with a :class:`~netshell.TLSError` if it fails).

        Bytes written before go out in clear; bytes written after go encrypted
        (held until the handshake completes), in order. ``context`` comes from
        :func:`netshell.tls.client_context` or :func:`netshell.tls.server_context`;
        ``server_side``, if given, must agree with it. Raises RuntimeError if
        TLS is on already, ValueError if ``server_side`` disagrees.
        """
        if self._tls is not None:
            raise RuntimeError("this connection is using TLS already")
        if server_side is not None and bool(server_side) != bool(context.server_side):
            raise ValueError("server_side disagrees with the context (a server or client one)")
        started: Deferred[Any] = Deferred()
        self._begin_tls(context, None, started)
        return started

    def _begin_tls(self, context: Any, hostname: str | None, started: Deferred[Any] | None) -> None:
        # Imported here for start-up time: tls_layer loads pyOpenSSL, which only TLS pays for.
        from netshell.tls_layer import TLSConnection

        # Held data (a paused read before TLS began) waits in the TLSConnection from now on.
        held, self._held = self._held, None
        self._tls = tls = TLSConnection(
            self,
            context,
            hostname,
            started,
            TLS_HANDSHAKE_TIMEOUT,
            raw=self._t,
            call_later=self._call_later,
            deliver=self._deliver,
            deliver_eof=self._deliver_eof,
            attach=self._attach_protocol,
            failed=self._tls_failed,
            fail_made=self._fail_made,
            reading_paused=self._read_paused,
            held=held,
        )
        tls.start()

    def _call_later(self, delay: float, f: Any, *args: Any) -> Any:
        """The reactor's call_later, the call made in the connection's context (the TLS
        deadlines: close() may be called from anywhere)."""
        return self._context.copy().run(self._reactor.call_later, delay, f, *args)

    def _tls_failed(self, exc: BaseException) -> bool:
        """Record that the TLS handshake failed with ``exc`` (for the TLSConnection): False if
        the connection failed already with another error."""
        if self._error is None:
            self._error = exc
            log.info("TLS with %s failed: %s", self.peer, exc)
        elif self._error is not exc:
            return False
        return True

    @property
    def tls_connection(self) -> TLSConnection | None:
        """The TLS state machine (:class:`netshell.tls_layer.TLSConnection`) while TLS is on,
        else None: the handshake's deadline, close_notify, held plaintext. The connector
        shortens the handshake's deadline to its own timeout through it."""
        return self._tls

    @property
    def tls(self) -> TLSInfo | None:
        """TLS details (version, cipher, ALPN, SNI, peer certificate), or None without TLS."""
        tls = self._tls
        if tls is None or not tls.established:
            return None
        return tls.info()

    def abort(self) -> None:
        """Close at once, dropping anything not yet sent."""
        self._aborted = True
        if self._native is not None and self._end_native("abort"):
            return  # aborted once loop.sendfile has given the transport back
        if self._t is not None:
            self._t.abort()

    def _end_native(self, how: str) -> bool:
        """Cut short the file being sent with loop.sendfile, for close() or abort() (``how``):
        True if the transport must be closed later, once loop.sendfile has ended."""
        native = self._native
        assert native is not None
        if native.ending is None or how == "abort":
            native.ending = how
        native.wake()
        if not native.in_sendfile:
            return False  # waiting for the buffer to empty, or not started: close it now
        if not native.shut:
            native.shut = True
            sock = self._t.get_extra_info("socket")
            try:
                # sendfile(2) fails with EPIPE at once; bytes already in the kernel still go.
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the peer reset it: sendfile fails anyway
        return True

    def pause_reading(self) -> None:
        """Stop delivering data to the protocol until :meth:`resume_reading`."""
        self._read_paused = True
        if self._tls is not None:
            self._tls.reading_paused = True
        receiving = self._receiving
        if receiving is not None and receiving.pipe is not None:
            self._splice_off(receiving)  # receive_file's splice reader (the transport's is off)
            return
        self._t.pause_reading()

    def resume_reading(self) -> None:
        """Deliver data to the protocol again."""
        self._read_paused = False
        if self._tls is not None:
            self._tls.reading_paused = False
        if self._held or (self._tls is not None and self._tls.held):
            self._reactor.loop.call_soon(self._release_held, context=self._context.copy())
        else:
            self._resume_raw()

    def _resume_raw(self) -> None:
        """Read from the socket again: with receive_file's splice reader while it runs,
        else with the asyncio transport's own (its reader made in the connection's
        context, whoever resumes)."""
        receiving = self._receiving
        if receiving is None or receiving.pipe is None:
            self._context.copy().run(self._t.resume_reading)
        elif not self.lost and not self._t.is_closing():
            self._splice_on(receiving)

    def _release_held(self) -> None:
        if self._tls is not None:
            self._tls.release_held()  # plaintext, counted as delivered
        while self._held and not self._read_paused and not self.lost:
            data = self._held.pop(0)
            self.bytes_received -= len(data)  # counted when it arrived
            self.data_received(data)
        if not self._held and not self._read_paused:
            self._resume_raw()

    def send_file(self, file: Any, offset: int = 0, count: int | None = None) -> Deferred[int]:
        """Send ``count`` bytes of the open binary ``file`` from ``offset`` (to its end when
        None); the Deferred fires with the number of bytes sent.

        Bytes written before go first. On a plain socket with asyncio's own loop the
        kernel copies the file (sendfile(2)); otherwise (TLS, uvloop) the file is read
        64 KiB at a time as the write buffer drains, by a pull producer. Either way the
        file is never read into memory whole. The Deferred fails with ConnectionLost if
        the connection ends first (closed or aborted by this side, or by the peer; the
        message says how many bytes went out), with EOFError if the file is shorter than
        ``count``, and with RuntimeError if a producer is registered already (or a file
        is being sent already). Cancelling it aborts the connection.

        ``bytes_sent`` counts the file as it goes: with sendfile(2), after each
        ``SENDFILE_CHUNK`` (4 MiB) and, when the connection ends part-way, what went out
        of the last one. While ``data_out`` observers watch (a trace), the file goes by
        pieces, so that they see its bytes (what the kernel copies with sendfile(2) is
        never in memory). While the kernel
        copies the file, ``close()`` and ``abort()`` end the transfer first (the bytes
        already handed to the kernel still go out), then close the connection.
        """
        if self._producer is not None:
            busy: Deferred[int] = Deferred()
            busy.errback(RuntimeError(f"a producer is registered already: {self._producer!r}"))
            return busy
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        if count <= 0:
            return succeed(0)
        total: int = count  # a name the closures below see as an int
        transport = self
        loop = self._reactor.loop

        class FilePieces:
            """A pull producer: one piece of the file each time the transport wants more."""

            def __init__(self) -> None:
                self.position = offset
                self.left = total
                self.done: Deferred[int] = Deferred()

            def resume_producing(self) -> None:
                file.seek(self.position)
                data = file.read(min(64 * 1024, self.left))
                if not data:
                    transport.unregister_producer()
                    self.done.errback(EOFError(f"the file ended {self.left} bytes early"))
                    return
                self.position += len(data)
                self.left -= len(data)
                transport.write(data)
                if not self.left:
                    transport.unregister_producer()
                    self.done.callback(total)

            def pause_producing(self) -> None:
                pass  # a pull producer is simply not asked while the buffer is full

            def stop_producing(self) -> None:
                if not self.done.called:
                    lost = ConnectionLost("the connection was lost while sending a file")
                    self.done.errback(lost)

        def by_pieces() -> Deferred[int]:
            pieces = FilePieces()
            self.register_producer(pieces, False)
            return pieces.done

        if (self._tls is not None or self._t is None or not hasattr(loop, "sock_sendfile")
                or _data_out):
            # (With data_out observers, a trace among them, by pieces: what the kernel
            # copies with sendfile(2) is never in memory, and they would not see it.)
            return by_pieces()
        if self._native is not None:
            busy = Deferred()
            busy.errback(RuntimeError("a file is being sent already"))
            return busy
        try:
            fd = file.fileno()
        except (AttributeError, OSError, ValueError):
            return by_pieces()
        return self._send_natively(file, fd, offset, total, by_pieces)

    def _send_natively(
        self, file: Any, fd: int, offset: int, total: int, by_pieces: Any
    ) -> Deferred[int]:
        """send_file with loop.sendfile (sendfile(2)), SENDFILE_CHUNK bytes per call, each
        counted in ``bytes_sent`` when it ends (and what a call cut short sent, from the
        file's position, where asyncio leaves it)."""
        native = self._native = _NativeSend()
        t = self._t
        loop = self._reactor.loop
        end = offset + total

        def cut_short(position: int, cause: BaseException | None = None) -> ConnectionLost:
            how = {"close": "closed", "abort": "aborted"}.get(native.ending or "", "lost")
            what = f"({position - offset} of {total} bytes sent)"
            if cause is None:
                return ConnectionLost(f"the connection was {how} while sending a file {what}")
            return ConnectionLost(f"the connection was lost while sending a file {what}: {cause!r}")

        async def send() -> Any:
            position = offset
            try:
                while position < end:
                    while native.ending is None and t.get_write_buffer_size():
                        await self._drain(native)
                    if native.ending is not None or t.is_closing():
                        raise cut_short(position)
                    chunk = min(end - position, SENDFILE_CHUNK)
                    os.lseek(fd, position, os.SEEK_SET)  # where asyncio leaves it tells progress
                    native.in_sendfile = True
                    try:
                        if isinstance(t, SocketIO):  # an accepted connection (listener.py)
                            sent = await t.sendfile(file, position, chunk)
                        else:
                            sent = await loop.sendfile(t, file, position, chunk, fallback=False)
                    except (OSError, RuntimeError, NotImplementedError) as e:
                        native.in_sendfile = False
                        done = min(max(os.lseek(fd, 0, os.SEEK_CUR) - position, 0), chunk)
                        position += done
                        self.bytes_sent += done
                        if native.ending is not None:
                            raise cut_short(position) from e
                        context = e.__context__
                        no_sendfile = isinstance(
                            e,
                            (asyncio.SendfileNotAvailableError, NotImplementedError, RuntimeError),
                        ) and not isinstance(context, ConnectionError)
                        if no_sendfile and position == offset:
                            # Before a byte was sent: this socket, file or loop has no sendfile.
                            self._native = None
                            return by_pieces()
                        cause = context if isinstance(context, OSError) else e
                        raise cut_short(position, cause) from e
                    finally:
                        native.in_sendfile = False
                    position += sent
                    self.bytes_sent += sent
                    if sent < chunk:
                        raise EOFError(f"the file ended {end - position} bytes early")
                return total
            finally:
                if self._native is native:
                    self._native = None
                if native.ending == "abort":
                    t.abort()
                elif native.ending == "close":
                    self.close()

        def cancel(_: Deferred[int]) -> None:
            self.abort()  # a file cut short leaves the stream unusable

        d: Deferred[int] = Deferred(cancel)

        async def run() -> None:
            # The Deferred is fired from the task itself, not from a done-callback: a loop
            # closed right after the task ends (Reactor.close) never runs those, and the
            # task's exception would be reported as never retrieved.
            try:
                result = await send()
            except asyncio.CancelledError:
                if not d.called:
                    d.errback(Failure(asyncio.CancelledError()))
                raise
            except Exception as e:
                if not d.called:
                    d.errback(Failure(e))
                return
            if d.called:
                return
            if isinstance(result, Deferred):
                result.chain_deferred(d)  # sent by pieces after all
            else:
                d.callback(result)

        # In the connection's context: the transfer resumes reading when it ends, and its
        # Deferred fires from there, as the transport's other Deferreds do.
        native.task = loop.create_task(run(), context=self._context.copy())
        return d

    async def _drain(self, native: _NativeSend) -> None:
        """Wait until the write buffer is empty (or the transfer is ended): loop.sendfile
        would wait itself, but a close in that wait breaks asyncio's transport."""
        t = self._t
        low, high = t.get_write_buffer_limits()
        native.drained = self._reactor.loop.create_future()
        t.set_write_buffer_limits(high=0, low=0)  # resume_writing() once it is empty
        try:
            await native.drained
        finally:
            native.drained = None
            if not t.is_closing():
                t.set_write_buffer_limits(high=high, low=low)

    def receive_file(self, fd_or_file: Any, count: int | None = None) -> Deferred[int]:
        """Write what arrives on this connection into the open file ``fd_or_file`` (a file
        descriptor, or an object with ``fileno()``), ``count`` bytes of it or all until the
        peer ends its side (when None); the Deferred fires with the number of bytes written.

        On a plain socket with asyncio's own loop the kernel moves the bytes (splice(2):
        socket to pipe to file, never into Python), up to ``SPLICE_PER_WAKE`` (1 MiB) each
        time the socket is readable; otherwise (TLS, uvloop, a file splice(2) cannot write:
        not a regular file, or opened to append) the bytes come as they would to
        ``data_received`` and are written with ``os.write`` (with the object's ``write``
        when it has no file descriptor). Writing starts at the file's position and moves it
        on; an object's own buffer is bypassed (flush it first). Either way reading keeps
        its flow control: ``pause_reading()`` stops the writing until ``resume_reading()``.

        Bytes the protocol got in ``data_received`` before the call are its own: it writes
        them first itself. Bytes held by a paused transport are written first. Once the
        Deferred has fired, what arrives goes to the protocol again (the rest after ``count``
        bytes, and the peer's end of file: ``eof_received``). The Deferred fails with
        ConnectionLost if the connection ends first (reset by the peer, closed or aborted by
        this side: the message says how many bytes were written), with the OSError if a
        write to the file fails (ENOSPC...; the bytes of that write are lost, the connection
        is left open), and with RuntimeError if a file is being received already. Cancelling
        it aborts the connection. Raises ValueError if ``count`` is negative.

        ``bytes_received`` counts the bytes as they come off the socket (with splice(2),
        after each wake-up). ``data_in`` observers see the bytes written with ``os.write``,
        not those the kernel moves: while an observer watches ``data_in`` (a trace, a
        capture), the bytes go the ``os.write`` way, so it sees them all.

        """
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        if self._receiving is not None:
            busy: Deferred[int] = Deferred()
            busy.errback(RuntimeError("a file is being received already"))
            return busy
        if count == 0:
            return succeed(0)
        if self.lost or self._t is None or self.is_closing():
            closed: Deferred[int] = Deferred()
            closed.errback(ConnectionLost("the connection is closed: no file can be received"))
            return closed
        fd: int | None
        if isinstance(fd_or_file, int):
            fd, write = fd_or_file, None
        else:
            try:
                fd, write = fd_or_file.fileno(), None
            except (AttributeError, OSError, ValueError):
                fd, write = None, fd_or_file.write

        def cancel(_: Deferred[int]) -> None:
            self.abort()  # the stream is cut at an unknown byte: unusable

        d: Deferred[int] = Deferred(cancel)
        receiving = self._receiving = _Receive(d, fd, write, count)
        sock = self._t.get_extra_info("socket")
        if fd is not None and sock is not None and self._can_splice(fd):
            try:
                receiving.sock_fd = os.dup(sock.fileno())
                receiving.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                receiving.close_fds()
                return d  # no descriptors to be had (EMFILE): by os.write
            try:
                fcntl.fcntl(receiving.pipe[1], _F_SETPIPE_SZ, SPLICE_PIPE_SIZE)
            except OSError:
                pass  # a smaller pipe (64 KiB by default) moves less per call
            self._t.pause_reading()  # the asyncio transport reads no more: splice(2) does
            if not self._read_paused:
                self._splice_on(receiving)
        return d

    def _can_splice(self, fd: int) -> bool:
        """Whether receive_file can move the bytes with splice(2) into ``fd``."""
        if _splice is None or self._tls is not None or _data_in:
            return False
        if not isinstance(self._reactor.loop, _SelectorLoop):
            return False  # uvloop, or another loop: its transport owns the socket
        try:
            st = os.fstat(fd)
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            return False
        # splice(2) refuses a file opened to append (EINVAL)
        return stat.S_ISREG(st.st_mode) and not flags & os.O_APPEND

    def _splice_on(self, receiving: _Receive) -> None:
        if not receiving.reading:
            receiving.reading = True
            self._context.copy().run(self._reactor.loop.add_reader, receiving.sock_fd,
                                     self._splice_ready)

    def _splice_off(self, receiving: _Receive) -> None:
        if receiving.reading:
            receiving.reading = False
            self._reactor.loop.remove_reader(receiving.sock_fd)

    def _splice_ready(self) -> None:
        """The socket is readable while receive_file runs with splice(2): move what it has
        (at most SPLICE_PER_WAKE bytes) into the file, through the pipe."""
        receiving = self._receiving
        if receiving is None or receiving.pipe is None or not receiving.reading:
            return
        if self._t.is_closing():
            # Closed or aborted (the transport's own reader is gone already): connection_lost
            # comes next and fails the Deferred; nothing more goes into the file.
            self._splice_off(receiving)
            return
        read_end, write_end = receiving.pipe
        sock_fd, fd = receiving.sock_fd, receiving.fd
        assert _splice is not None and fd is not None
        moved = 0
        while moved < SPLICE_PER_WAKE:
            left = receiving.left
            want = SPLICE_PIPE_SIZE if left is None else min(SPLICE_PIPE_SIZE, left)
            try:
                n = _splice(sock_fd, write_end, want, flags=_SPLICE_MOVE | _SPLICE_NONBLOCK)
            except BlockingIOError:
                return  # all read: wait for more
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) and not moved \
                        and not receiving.got:
                    # This socket cannot be spliced: the os.write way, from the first byte.
                    self._splice_off(receiving)
                    receiving.close_fds()
                    if not self._read_paused:
                        self._resume_raw()  # _receiving is still set: asyncio's reader
                    return
                # A reset: the connection is lost; connection_lost fails the Deferred.
                if self._error is None:
                    self._error = e
                self._t.abort()
                return
            if n == 0:  # the peer's end of file: it reaches the protocol after the Deferred
                self._end_receive(None)
                return
            self.bytes_received += n
            moved += n
            moved_now = n
            try:
                while n:
                    wrote = _splice(read_end, fd, n, flags=_SPLICE_MOVE)
                    if wrote <= 0:
                        raise OSError(errno.EIO, "splice(2) wrote nothing into the file")
                    n -= wrote
                    receiving.got += wrote
                    if left is not None:
                        receiving.left = left = left - wrote
            except OSError as e:
                self._end_receive(e)
                return
            if left == 0:
                self._end_receive(None)
                return
            if moved_now < want:
                return  # the socket had no more: wait for the next wake-up, not for EAGAIN

    def _receive_data(self, data: bytes) -> None:
        """Bytes that came while receive_file runs the os.write way: into the file (the
        rest, past ``count``, to the protocol)."""
        receiving = self._receiving
        assert receiving is not None
        view = memoryview(data)
        rest = None
        left = receiving.left
        if left is not None and len(view) >= left:
            view, rest = view[:left], view[left:]
        try:
            while view:
                if receiving.fd is not None:
                    wrote = os.write(receiving.fd, view)
                else:
                    wrote = receiving.write(view)
                    wrote = len(view) if wrote is None else wrote
                receiving.got += wrote
                if left is not None:
                    receiving.left = left = left - wrote
                view = view[wrote:]
        except OSError as e:
            self._end_receive(e)
            return
        if left == 0:
            self._end_receive(None)
            if rest:
                self._pass_on(bytes(rest))

    def _pass_on(self, data: bytes) -> None:
        """What came after receive_file's ``count``: to the next receive_file, the protocol,
        or held if the Deferred's callbacks paused reading."""
        if self._receiving is not None:
            self._receive_data(data)
        elif self._read_paused and self._tls is None:
            if self._held is None:
                self._held = []
            self._held.insert(0, data)  # counted when it arrived, as _release_held expects
        elif not self.lost:
            try:
                self.protocol.data_received(data)
            except Exception as e:
                self._protocol_error(e, "data_received")

    def _end_receive(self, exc: BaseException | None) -> None:
        """receive_file is done (``exc`` None: all written) or failed writing: reading goes
        back to the transport, then the Deferred fires."""
        receiving = self._receiving
        assert receiving is not None
        self._receiving = None
        if receiving.pipe is not None:
            self._splice_off(receiving)
            receiving.close_fds()
            if not self._read_paused and not self.lost:
                # Before the Deferred fires: its callbacks may call receive_file again.
                self._resume_raw()
        if receiving.d.called:
            return
        if exc is None:
            receiving.d.callback(receiving.got)
        else:
            receiving.d.errback(Failure(exc))

    def _receive_lost(self, exc: BaseException | None) -> None:
        """The connection ended while receive_file ran: its Deferred fails."""
        receiving = self._receiving
        assert receiving is not None
        self._receiving = None
        self._splice_off(receiving)
        receiving.close_fds()
        if receiving.d.called:
            return  # cancelled
        what = f"({receiving.got} bytes written)"
        cause = self._error or exc
        if cause is not None:
            lost = ConnectionLost(f"the connection was lost while receiving a file {what}: "
                                  f"{cause!r}")
            lost.__cause__ = cause
        else:
            how = "aborted" if self._aborted else "closed"
            lost = ConnectionLost(f"the connection was {how} while receiving a file {what}")
        receiving.d.errback(Failure(lost))

    def register_producer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed this transport with flow control.

        A streaming producer writes on its own and gets ``pause_producing()``
        when the write buffer passes its high-water mark and
        ``resume_producing()`` when it drains below the low-water mark. A
        pull producer (``streaming=False``) gets ``resume_producing()`` each
        time the transport wants one more chunk. Both get
        ``stop_producing()`` if the connection is lost. Raises RuntimeError if
        a producer is registered already.
        """
        if self._producer is not None:
            raise RuntimeError(f"a producer is registered already: {self._producer!r}")
        self._producer = producer
        self._streaming = bool(streaming)
        if self._write_paused:
            if streaming:
                producer.pause_producing()
        elif not streaming:
            self._schedule_pull()

    def unregister_producer(self) -> None:
        """Stop feeding from the registered producer."""
        self._producer = None

    def _schedule_pull(self) -> None:
        if not self._pull_scheduled:
            self._pull_scheduled = True
            self._reactor.loop.call_soon(self._pull, context=self._context.copy())

    def _pull(self) -> None:
        self._pull_scheduled = False
        producer = self._producer
        if producer is None or self._streaming or self._write_paused or self.lost:
            return
        try:
            producer.resume_producing()
        except Exception as e:
            self._protocol_error(e, "resume_producing")
            return
        if self._producer is producer and not self._write_paused:
            self._schedule_pull()

    # ---- inspection

    # Addresses are read from the socket when asked for, not stored: an idle
    # connection costs less memory, and only inspection pays for them.
    @property
    def peer(self) -> Address:
        """The other end of the connection."""
        info = None if self._t is None else self._t.get_extra_info("peername")
        return address_of(self.kind, info)

    @property
    def host(self) -> Address:
        """Our end of the connection."""
        info = None if self._t is None else self._t.get_extra_info("sockname")
        return address_of(self.kind, info)

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return 0 if self._t is None else int(self._t.get_write_buffer_size())

    @property
    def state(self) -> str:
        """ "open", "closing" or "closed"."""
        if self.lost:
            return "closed"
        if self._native is not None and self._native.ending is not None:
            return "closing"  # closed once loop.sendfile has ended
        if self._t is not None and (
            self._t.is_closing() or (self._tls is not None and self._tls.closing())
        ):
            return "closing"
        return "open"

    def is_closing(self) -> bool:
        """True once the connection is closing or closed (``state`` is not "open")."""
        return self.state != "open"

    @property
    def peer_credentials(self) -> PeerCredentials | None:
        """pid, uid and gid of the peer process on a Unix socket (None where not known)."""
        sock = None if self._t is None else self._t.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
            return None
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return PeerCredentials(*struct.unpack("3i", raw))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """What the underlying asyncio transport knows (``"socket"``, ``"peername"``...)."""
        return default if self._t is None else self._t.get_extra_info(name, default)

    def __repr__(self) -> str:
        name = type(self.protocol).__name__ if self.protocol is not None else "-"
        return (
            f"<{self.kind.upper()} {self.host} <- {self.peer} {name} {self.state}, "
            f"{self.bytes_received}B in / {self.bytes_sent}B out>"
        )
