"""Stream transports, listeners and connectors: what protocols see of TCP and Unix sockets.

A protocol never touches a socket. It is handed a :class:`StreamTransport`
with ``connection_made`` and talks through ``write`` / ``close`` /
``abort``. The StreamTransport is itself the asyncio protocol of the
connection, so between the event loop and a protocol's ``data_received``
there is one method that counts bytes and catches errors, nothing more.

A :class:`Listener` is a bound, listening socket with its factory; a
:class:`Connector` makes (and remakes) an outgoing connection for a client
factory. The reactor's ``listen_tcp`` / ``connect_tcp`` / ``listen_unix`` /
``connect_unix`` build them.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from netshell.defer import Deferred, ensure_deferred, succeed
from netshell.errors import (
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    DNSLookupError,
    HandshakeFailed,
    TLSError,
)
from netshell.failure import Failure
from netshell.interfaces import Address, format_hostport


class TLSHandshakeCut(HandshakeFailed):
    """The connection ended during the TLS handshake."""

    def __init__(self, exc: BaseException | None = None) -> None:
        super().__init__(f"the connection ended during the TLS handshake ({exc or 'closed'})")

if TYPE_CHECKING:
    from netshell.protocol import Factory, Protocol
    from netshell.reactor import Reactor
    from netshell.tls_layer import TLSInfo, TLSLayer

__all__ = [
    "Address",
    "Connector",
    "Listener",
    "PeerCredentials",
    "StreamTransport",
    "bind_socket",
]

log = logging.getLogger("netshell.transport")


class PeerCredentials(NamedTuple):
    """The process at the other end of a Unix socket, as the kernel tells it."""

    pid: int
    uid: int
    gid: int


def _address(kind: str, sockaddr: Any) -> Address:
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


#: Numbers for connections and listeners, shown by the prompt's tables and traces.
connection_numbers = itertools.count(1)
listener_numbers = itertools.count(1)


class StreamTransport(asyncio.Protocol):
    """The transport a stream protocol talks through (TCP or Unix socket).

    It is also the asyncio protocol of the connection: the loop calls it,
    it counts bytes and calls the netshell protocol. Attributes: ``protocol``,
    ``peer`` and ``host`` (:class:`Address`), ``bytes_sent`` (bytes accepted
    for sending), ``bytes_received``, ``connected_at`` (a ``time.time()``),
    ``tls`` (TLS details, or None), ``listener`` (for accepted connections).

    An exception raised by the protocol is logged with its traceback and
    closes this connection only.
    """

    __slots__ = (
        "_aborted",
        "_connector",
        "_error",
        "_factory",
        "_held",
        "_made",
        "_producer",
        "_pull_scheduled",
        "_reactor",
        "_read_paused",
        "_streaming",
        "_t",
        "_tls",
        "_tls_timer",
        "_tls_context",
        "_tls_hostname",
        "_tls_started",
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
        self._tls: TLSLayer | None = None
        self._tls_context = tls_context
        self._tls_hostname = tls_hostname
        self._tls_started: Deferred[Any] | None = None
        self._tls_timer: Any = None
        self.lost = False
        self._aborted = False
        self._error: BaseException | None = None
        self._producer: Any = None
        self._streaming = False
        self._write_paused = False
        self._pull_scheduled = False
        self._read_paused = False
        self._held: list[bytes] | None = None

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
        sock = transport.get_extra_info("socket")
        if self.kind in ("tcp", "tcp6") and sock is not None:
            # A host name may resolve to either family: the socket tells which it was.
            self.kind = "tcp6" if sock.family == socket.AF_INET6 else "tcp"
        if self._tls_context is not None:
            # listen_tls / connect_tls: the protocol meets the connection only
            # once the handshake (and certificate check) has succeeded.
            self._reactor._add_connection(self)
            self._begin_tls(self._tls_context, self._tls_hostname)
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
        self._reactor._add_connection(self)
        if self.listener is not None:
            self.listener._connections[self] = None
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
            self._tls_received(data)
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
        try:
            self.protocol.data_received(data)
        except Exception as e:
            self._protocol_error(e, "data_received")

    def eof_received(self) -> bool | None:
        if self._tls is not None:
            # A TCP end of file is not a TLS one: connection_lost tells a clean
            # close (close_notify seen) from a truncated one.
            return None
        try:
            return bool(self.protocol.eof_received())
        except Exception as e:
            self._protocol_error(e, "eof_received")
            return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self._cancel_tls_timer()
        tls = self._tls
        if tls is not None and not tls.established:
            self._fail_tls(self._error or TLSHandshakeCut(exc))
        self._reactor._remove_connection(self)
        if self.listener is not None:
            self.listener._connection_gone(self)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.stop_producing()
            except Exception:
                log.exception("Error in %r.stop_producing", producer)
        if self.protocol is None:
            if self._connector is not None:  # our own factory refused it, or TLS failed
                self._connector.state = "disconnected"
                if tls is not None and not tls.established and not self._aborted:
                    self._connector._failed(Failure(self._error))
                self._connector._maybe_done()
            return
        cause = self._error or exc
        if (
            cause is None
            and tls is not None
            and not self._aborted
            and not tls.close_notify_received
            and not tls.close_notify_sent
        ):
            cause = ConnectionLost(
                "the peer closed the connection without a TLS close_notify: the data may "
                "have been truncated"
            )
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
        if self._connector is not None:
            self._connector._lost(reason)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._producer is not None and self._streaming:
            self._producer.pause_producing()

    def resume_writing(self) -> None:
        self._write_paused = False
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

    def write(self, data: bytes) -> None:
        """Send ``data`` (bytes-like; str raises TypeError). Never blocks."""
        if self._tls is None:
            self._t.write(data)
        elif self._tls_closing():
            return  # after close(): dropped, as a TCP transport drops it
        else:
            self._tls.send(data)
        self.bytes_sent += len(data)

    def write_sequence(self, chunks: Iterable[bytes]) -> None:
        """Send each chunk in turn, as one write."""
        chunks = list(chunks)
        if self._tls is None:
            self._t.writelines(chunks)
        elif self._tls_closing():
            return  # after close(): dropped, as a TCP transport drops it
        else:
            self._tls.send(b"".join(chunks))
        self.bytes_sent += sum(map(len, chunks))

    def write_eof(self) -> None:
        """Half-close: send what is buffered, then end our direction of the stream.

        On TLS this sends close_notify (TLS has no other half-close).
        """
        if self._tls is None:
            self._t.write_eof()
        else:
            self._tls.shutdown()

    def close(self) -> None:
        """Close after everything written so far has been sent.

        On TLS, close_notify is sent first and the peer's is awaited, at most
        ``TLS_CLOSE_TIMEOUT`` seconds.
        """
        if self._t is None:
            return
        tls = self._tls
        if tls is not None and tls.established and not tls.close_notify_sent and not self.lost:
            tls.shutdown()
            if not tls.close_notify_received:
                self._cancel_tls_timer()
                self._tls_timer = self._reactor.call_later(
                    TLS_CLOSE_TIMEOUT, self._t.close
                )
                return
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
        self._tls_started = started
        self._begin_tls(context, None)
        return started

    def _begin_tls(self, context: Any, hostname: str | None) -> None:
        # Imported here for start-up time: tls_layer loads pyOpenSSL, which only TLS pays for.
        from netshell.tls_layer import TLSLayer

        self._tls = TLSLayer(context, self._t.write, hostname)
        # A peer that never completes the handshake must not hold the connection forever.
        self._tls_timer = self._reactor.call_later(
            TLS_HANDSHAKE_TIMEOUT, self._handshake_timed_out
        )
        try:
            self._tls.start()
        except TLSError as e:
            self._fail_tls(e)

    def _handshake_timed_out(self) -> None:
        self._tls_timer = None
        self._fail_tls(
            HandshakeFailed(f"no TLS handshake within {TLS_HANDSHAKE_TIMEOUT} seconds")
        )

    def _tls_closing(self) -> bool:
        """close() was called: close_notify is sent, the peer's awaited (write_eof is not this)."""
        tls = self._tls
        return (
            tls is not None
            and tls.close_notify_sent
            and (self._tls_timer is not None or self._t.is_closing())
        )

    def _cancel_tls_timer(self) -> None:
        timer, self._tls_timer = self._tls_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _tls_received(self, data: bytes) -> None:
        tls = self._tls
        assert tls is not None
        was_established = tls.established
        try:
            chunks = tls.receive(data)
        except TLSError as e:
            self._fail_tls(e)
            return
        if tls.established and not was_established:
            self._tls_done()
            if self.protocol is None or self.lost:
                return
        if self._held or (chunks and self._read_paused):
            # Reading is paused (or older plaintext waits): keep it for resume_reading().
            if self._held is None:
                self._held = []
            self._held.extend(chunks)
            return
        self._deliver_tls(chunks)

    def _deliver_tls(self, chunks: list[bytes]) -> None:
        tls = self._tls
        assert tls is not None
        for i, chunk in enumerate(chunks):
            if self._read_paused:
                # One socket read can hold many records: what follows a pause waits.
                self._held = chunks[i:] + (self._held or [])
                return
            self.bytes_received += len(chunk)
            try:
                self.protocol.data_received(chunk)
            except Exception as e:
                self._protocol_error(e, "data_received")
                return
        if tls.close_notify_received and not self.lost:
            if tls.close_notify_sent:
                self._t.close()  # both said goodbye
            else:
                try:
                    keep_open = self.protocol.eof_received()
                except Exception as e:
                    self._protocol_error(e, "eof_received")
                    return
                if not keep_open:
                    self.close()

    def _tls_done(self) -> None:
        self._cancel_tls_timer()
        if self.protocol is None:
            self._attach_protocol()  # listen_tls / connect_tls
        started, self._tls_started = self._tls_started, None
        if started is not None:
            started.callback(self.tls)

    def _fail_tls(self, exc: BaseException) -> None:
        self._cancel_tls_timer()
        if self._error is None:
            self._error = exc
            log.info("TLS with %s failed: %s", self.peer, exc)
        elif self._error is not exc:
            return  # failed already (this is connection_lost after the failure)
        started, self._tls_started = self._tls_started, None
        if started is not None and not started.called:
            started.errback(Failure(exc))
        self._fail_made(exc)
        if self._t is not None and not self.lost:
            self._t.close()  # sends the alert the layer queued, then closes

    @property
    def tls(self) -> TLSInfo | None:
        """TLS details (version, cipher, ALPN, SNI, peer certificate), or None without TLS."""
        if self._tls is None or not self._tls.established:
            return None
        return self._tls.info()

    def abort(self) -> None:
        """Close at once, dropping anything not yet sent."""
        self._aborted = True
        if self._t is not None:
            self._t.abort()

    def pause_reading(self) -> None:
        """Stop delivering data to the protocol until :meth:`resume_reading`."""
        self._read_paused = True
        self._t.pause_reading()

    def resume_reading(self) -> None:
        """Deliver data to the protocol again."""
        self._read_paused = False
        if self._held:
            self._reactor.loop.call_soon(self._release_held)
        else:
            self._t.resume_reading()

    def _release_held(self) -> None:
        if self._tls is not None:
            held, self._held = self._held or [], None
            if not self.lost:
                self._deliver_tls(held)  # plaintext, counted as delivered
        while self._held and not self._read_paused and not self.lost:
            data = self._held.pop(0)
            self.bytes_received -= len(data)  # counted when it arrived
            self.data_received(data)
        if not self._held and not self._read_paused:
            self._t.resume_reading()

    def send_file(self, file: Any, offset: int = 0, count: int | None = None) -> Deferred[int]:
        """Send ``count`` bytes of the open binary ``file`` from ``offset`` (to its end when
        None); the Deferred fires with the number of bytes sent.

        Bytes written before go first. On a plain socket with asyncio's own loop the
        kernel copies the file (sendfile(2)); otherwise (TLS, uvloop) the file is read
        64 KiB at a time as the write buffer drains, by a pull producer. Either way the
        file is never read into memory whole. The Deferred fails with ConnectionLost if
        the connection ends first, with EOFError if the file is shorter than ``count``,
        and with RuntimeError if a producer is registered already.
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

        if self._tls is not None or self._t is None or not hasattr(loop, "sock_sendfile"):
            return by_pieces()

        async def native() -> int:
            try:
                sent = await loop.sendfile(self._t, file, offset, total, fallback=False)
            except (asyncio.SendfileNotAvailableError, NotImplementedError, RuntimeError):
                # Raised before a byte was sent: this socket or loop has no sendfile.
                return await by_pieces()
            except OSError as e:
                lost = ConnectionLost(f"the connection was lost while sending a file: {e!r}")
                raise lost from e
            self.bytes_sent += sent
            return int(sent)

        return ensure_deferred(native())

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
            self._reactor.loop.call_soon(self._pull)

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
        return _address(self.kind, info)

    @property
    def host(self) -> Address:
        """Our end of the connection."""
        info = None if self._t is None else self._t.get_extra_info("sockname")
        return _address(self.kind, info)

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return 0 if self._t is None else int(self._t.get_write_buffer_size())

    @property
    def state(self) -> str:
        """ "open", "closing" or "closed"."""
        if self.lost:
            return "closed"
        if self._t is not None and (self._t.is_closing() or self._tls_closing()):
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


# ---- listening


def bind_socket(
    interface: str,
    port: int,
    socktype: socket.SocketKind,
    what: str,
    backlog: int | None = None,
    reuse_address: bool = False,
) -> tuple[socket.socket, socket.AddressFamily]:
    """Bind a non-blocking socket of ``socktype`` on ``interface:port``; return it and its family.

    The address is the first that ``getaddrinfo`` gives (``""`` is every IPv4
    interface); an IPv6 socket is IPv6 only. ``backlog``, if given, makes it listen;
    ``reuse_address`` sets SO_REUSEADDR. Raises ValueError for a port outside 0 to
    65535, and OSError (the errno kept) whose text is ``"cannot <what> <host:port>:
    <why>"`` when the address cannot be looked up or bound.

    Example::

        >>> sock, family = bind_socket("127.0.0.1", 0, socket.SOCK_DGRAM, "bind UDP on")
        >>> family == socket.AF_INET, sock.getsockname()[0]
        (True, '127.0.0.1')
        >>> sock.close()
    """
    if not 0 <= port <= 65535:
        # getaddrinfo would keep the low 16 bits and bind some other port.
        raise ValueError(f"a port is 0 to 65535, not {port}")
    try:
        infos = socket.getaddrinfo(interface or None, port, type=socktype, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"cannot {what} {format_hostport(interface, port)}: {e.strerror}") from e
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as e:
        sock.close()
        where = format_hostport(str(sockaddr[0]), port)
        raise OSError(e.errno, f"cannot {what} {where}: {e.strerror}") from e
    sock.setblocking(False)
    return sock, family


def _bind_tcp(interface: str, port: int, backlog: int) -> tuple[socket.socket, str]:
    sock, family = bind_socket(
        interface, port, socket.SOCK_STREAM, "listen on", backlog=backlog, reuse_address=True
    )
    return sock, "tcp6" if family == socket.AF_INET6 else "tcp"


def _bind_unix(path: str, mode: int, backlog: int) -> socket.socket:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # a stale socket file: nobody listens there
        else:
            raise OSError(errno.EADDRINUSE, f"{path} is in use by a live server")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on unix:{path}: {e.strerror}") from e
    sock.setblocking(False)
    return sock


class Listener:
    """A listening socket and the factory that makes a protocol per connection.

    ``address`` (an :class:`Address`) and ``port`` tell where it listens;
    ``connections`` lists the connections it accepted that are open now.
    """

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        kind: str,
        factory: Factory,
        backlog: int = 128,
        tls_context: Any = None,
    ) -> None:
        #: this listener's number: per process, in order of creation (``listener(1)``)
        self.number = next(listener_numbers)
        #: when it started listening (a ``time.time()``)
        self.created_at = time.time()
        # asyncio calls listen() again when it starts serving: it must get the same backlog.
        self.backlog = backlog
        #: a TLS server context: every connection is TLS from its first byte
        self.tls_context = tls_context
        self.reactor = reactor
        self.factory = factory
        self.kind = kind
        self._sock = sock
        self.address = _address(kind, sock.getsockname())
        self._connections: dict[StreamTransport, None] = {}
        self._server: asyncio.AbstractServer | None = None
        self._closing: Deferred[None] | None = None
        self._drained: Deferred[None] | None = None
        self.closed = False
        factory._start_use()
        reactor._add_listener(self)
        self._starting = reactor.loop.create_task(self._serve())

    async def _serve(self) -> None:
        loop = self.reactor.loop
        kind = self.kind
        backlog = self.backlog
        # Not serving until self._server is set: close() must find the server that
        # watches the socket, or it would close the fd under the selector's feet.
        if kind == "unix":
            self._server = await loop.create_unix_server(
                lambda: StreamTransport(
                    self.reactor, kind, self.factory, self, tls_context=self.tls_context
                ),
                sock=self._sock,
                backlog=backlog,
                start_serving=False,
            )
        else:
            self._server = await loop.create_server(
                lambda: StreamTransport(
                    self.reactor, kind, self.factory, self, tls_context=self.tls_context
                ),
                sock=self._sock,
                backlog=backlog,
                start_serving=False,
            )
        await self._server.start_serving()

    @property
    def port(self) -> int:
        """The port listened on (0 for Unix sockets)."""
        return self.address.port

    @property
    def connections(self) -> list[StreamTransport]:
        """The accepted connections that are open now."""
        return list(self._connections)

    def _connection_gone(self, t: StreamTransport) -> None:
        self._connections.pop(t, None)
        if not self._connections and self._drained is not None and not self._drained.called:
            self._drained.callback(None)

    def close(self, drain: bool = False, timeout: float | None = None) -> Deferred[None]:
        """Stop listening; returns a Deferred that fires once the socket is closed.

        The accepted connections stay open, unless ``drain``: then the
        Deferred fires once they have all closed, and those still open after
        ``timeout`` seconds (if given) are closed. Calling close() again
        returns the same Deferred.
        """
        if self._closing is not None:
            return self._closing
        self.closed = True
        if self._server is not None:
            self._server.close()
        else:
            self._starting.cancel()
            self._sock.close()
        if self.kind == "unix":
            try:
                os.unlink(self.address.host)
            except OSError:
                pass
        self.reactor._remove_listener(self)
        self.factory._stop_use()
        if self.reactor.loop.is_running():
            self._closing = ensure_deferred(self._finish_close(drain, timeout))
        else:
            self._closing = succeed(None)
        return self._closing

    async def _finish_close(self, drain: bool, timeout: float | None) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        if drain and self._connections:
            self._drained = Deferred()
            try:
                await asyncio.wait_for(self._drained.as_future(), timeout)
            except TimeoutError:
                for t in list(self._connections):
                    t.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "listening"
        name = getattr(self.factory.protocol, "__qualname__", type(self.factory).__name__)
        count = len(self._connections)
        kind = f"{self.kind}+tls" if self.tls_context is not None else self.kind
        return f"<Listener {kind} {self.address} {name} {state}, {count} connections>"


# ---- connecting


def _connect_error(e: BaseException, where: str, timeout: float) -> ConnectError:
    if isinstance(e, TimeoutError):
        err: ConnectError = ConnectTimeout(f"connecting to {where} timed out after {timeout}s")
    elif isinstance(e, socket.gaierror):
        err = DNSLookupError(f"cannot look up the address of {where}: {e.strerror}")
    elif isinstance(e, ConnectionRefusedError):
        err = ConnectionRefused(f"{where} refused the connection")
    elif isinstance(e, OSError):
        err = ConnectError(f"cannot connect to {where}: {e.strerror or e}")
    else:
        err = ConnectError(f"cannot connect to {where}: {e!r}")
    err.__cause__ = e
    return err


class Connector:
    """Makes an outgoing connection for a client factory, and can make it again.

    ``state`` is "disconnected", "connecting" or "connected"; ``transport``
    is the current connection's transport. A ReconnectingClientFactory calls
    :meth:`connect` to try again; :meth:`stop_connecting` cancels an attempt.
    """

    def __init__(
        self,
        reactor: Reactor,
        kind: str,
        address: tuple[str, int] | str,
        factory: Factory,
        timeout: float = 30,
        bind_address: tuple[str, int] | None = None,
        tls_context: Any = None,
    ) -> None:
        self.reactor = reactor
        self.kind = kind
        #: with a TLS client context, the connection counts as made once the handshake is done
        self.tls_context = tls_context
        self.address = address
        self.factory = factory
        self.timeout = timeout
        self.bind_address = bind_address
        self.state = "disconnected"
        self.transport: StreamTransport | None = None
        self._attempt: Deferred[Any] | None = None
        self._started = False
        self._handshaking: StreamTransport | None = None  # connect_tls, TCP up, TLS not yet

    @property
    def where(self) -> str:
        """The address being connected to, as text."""
        if isinstance(self.address, str):
            return f"unix:{self.address}"
        host, port = self.address
        return format_hostport(host, port)

    def connect(self) -> Deferred[Protocol]:
        """Start an attempt; the Deferred fires with the connected protocol.

        It fails with a :class:`~netshell.ConnectError` subclass saying what
        happened: ConnectionRefused, ConnectTimeout, DNSLookupError.
        Cancelling it abandons the attempt.
        """
        if not self._started:
            self._started = True
            self.factory._start_use()
        self.state = "connecting"
        task: asyncio.Task[Any] | None = None

        def cancel(_: Deferred[Any]) -> None:
            if task is not None:
                task.cancel()
            if self._handshaking is not None and not self._handshaking.lost:
                self._handshaking.abort()
            self.state = "disconnected"
            self._maybe_done()

        made: Deferred[Any] = Deferred(cancel)
        self._attempt = made
        task = self.reactor.loop.create_task(self._run(made))
        return made

    async def _run(self, made: Deferred[Any]) -> None:
        loop = self.reactor.loop
        started = loop.time()
        self._handshaking = None
        hostname = None if isinstance(self.address, str) else self.address[0]
        t = StreamTransport(
            self.reactor,
            self.kind,
            self.factory,
            connector=self,
            made=made,
            tls_context=self.tls_context,
            tls_hostname=hostname,
        )
        try:
            if isinstance(self.address, str):
                coro = loop.create_unix_connection(lambda: t, self.address)
            else:
                host, port = self.address
                coro = loop.create_connection(lambda: t, host, port, local_addr=self.bind_address)
            await asyncio.wait_for(coro, self.timeout)
            tls = t._tls
            if tls is not None and not tls.established and not t.lost:
                self._handshaking = t
                left = max(0.0, self.timeout - (loop.time() - started))
                if left < TLS_HANDSHAKE_TIMEOUT:  # our timeout covers the handshake too
                    t._cancel_tls_timer()
                    late = ConnectTimeout(
                        f"the TLS handshake with {self.where} did not finish within {self.timeout}s"
                    )
                    t._tls_timer = self.reactor.call_later(left, t._fail_tls, late)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.state = "disconnected"
            err = _connect_error(e, self.where, self.timeout)
            if not made.called:
                made.errback(Failure(err))
            self._failed(Failure(err))
            self._maybe_done()

    def _failed(self, reason: Failure) -> None:
        failed = getattr(self.factory, "client_connection_failed", None)
        if failed is not None:
            try:
                failed(self, reason)
            except Exception:
                log.exception("Error in %r.client_connection_failed", self.factory)

    def _lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        lost = getattr(self.factory, "client_connection_lost", None)
        if lost is not None:
            try:
                lost(self, reason)
            except Exception:
                log.exception("Error in %r.client_connection_lost", self.factory)
        self._maybe_done()

    def _maybe_done(self) -> None:
        # The factory is done with when nothing reconnects it.
        if self.state == "disconnected" and self._started and not _will_retry(self.factory):
            self._started = False
            self.factory._stop_use()

    def stop_connecting(self) -> None:
        """Abandon the attempt in progress, if any."""
        if self.state == "connecting" and self._attempt is not None:
            self._attempt.cancel()
        self._maybe_done()  # e.g. the factory stopped trying while a retry was pending

    def disconnect(self) -> None:
        """Close the current connection, or abandon the attempt in progress."""
        if self.transport is not None:
            self.transport.close()
        else:
            self.stop_connecting()

    def __repr__(self) -> str:
        return f"<Connector {self.kind} {self.where} {self.state}>"


def _will_retry(factory: Any) -> bool:
    return bool(getattr(factory, "continue_trying", False) and getattr(factory, "_call", None))
