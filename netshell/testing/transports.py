"""In-memory transports: drive a protocol with no socket and no event loop.

:class:`StringTransport` records what a protocol writes and how it closes, and
can push back on a producer like a socket whose buffer fills (``buffer_limit``).
:class:`StringDatagramTransport` records the datagrams a datagram protocol sends,
and where to, and lets a test hand it datagrams.
:func:`loopback` joins two protocols back to back, each with a transport
that delivers to the other when :meth:`Loopback.pump` is called, so a whole
conversation (server and client) runs step by step inside a test.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from netshell.defer import Deferred, fail, succeed
from netshell.errors import ConnectionDone, ConnectionLost
from netshell.failure import Failure
from netshell.interfaces import Address, ProducerLike, bind_context, format_hostport

__all__ = ["Loopback", "StringDatagramTransport", "StringTransport", "loopback"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _check_bytes(data: Any) -> bytes:
    if isinstance(data, str) or not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"transports take bytes, not {type(data).__name__}: {data!r:.60}")
    return bytes(data)


class StringTransport:
    """A transport that keeps what is written, for tests.

    ``value()`` is everything written so far; ``clear()`` forgets it.
    ``close()`` sets ``disconnecting`` (and ``closed``); ``abort()`` also sets
    ``aborted``; ``is_closing()`` is true from either on. Neither calls the
    protocol: the test decides when to call ``connection_lost``. Writing after
    close raises RuntimeError, so a protocol that talks after hanging up is caught.

    Back-pressure: with ``buffer_limit`` set, what is written stays "in the
    buffer" until the test takes it with :meth:`drain` (or :meth:`clear`). Once
    more than ``buffer_limit`` bytes wait, ``write_paused`` becomes true and a
    registered streaming producer gets ``pause_producing()``; once draining
    brings it back to ``buffer_limit`` or less, the producer gets
    ``resume_producing()``: as a socket transport does at its high-water mark.
    A pull producer is never called by the transport: the test calls its
    ``resume_producing()`` for each chunk it wants. Without ``buffer_limit`` the
    buffer never fills.

    ``start_tls(context)`` records ``tls_context`` and returns ``tls_started``, a
    Deferred the test fires (after setting ``tls``, if the protocol looks at it).
    ``send_file`` writes the file's bytes at once. ``in_context(f)`` runs ``f`` in the
    context (:mod:`contextvars`) the transport was made in, as a socket transport does.

    Example::

        >>> from netshell.testing import StringTransport
        >>> t = StringTransport()
        >>> t.write(b"hello "); t.write_sequence([b"wor", b"ld"])
        >>> t.value()
        b'hello world'
    """

    def __init__(
        self,
        peer: Address | None = None,
        host: Address | None = None,
        protocol: Any = None,
        buffer_limit: int | None = None,
    ) -> None:
        self.peer = peer or Address("tcp", "127.0.0.1", 54321)
        self.host = host or Address("tcp", "127.0.0.1", 8080)
        self.protocol = protocol
        self.written = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connected_at = time.time()
        self.tls: Any = None
        self.tls_context: Any = None
        self.tls_started: Deferred[Any] | None = None
        self.closed = False
        self.disconnecting = False
        self.aborted = False
        self.eof_written = False
        self.reading_paused = False
        self.producer: Any = None
        self.streaming: bool | None = None
        #: bytes that may wait in the buffer before the producer is paused (None: no limit)
        self.buffer_limit = buffer_limit
        #: true while more than ``buffer_limit`` bytes wait to be drained
        self.write_paused = False
        self._context = contextvars.copy_context()

    def write(self, data: bytes) -> None:
        """Record ``data``. Raises TypeError for str, RuntimeError after close."""
        data = _check_bytes(data)
        if self.closed or self.eof_written:
            raise RuntimeError("write() on a transport that was closed or half-closed")
        self.written += data
        self.bytes_sent += len(data)
        limit = self.buffer_limit
        if limit is not None and not self.write_paused and len(self.written) > limit:
            self.write_paused = True
            if self.producer is not None and self.streaming:
                self.producer.pause_producing()

    def write_sequence(self, chunks: Iterable[bytes]) -> None:
        """Record each chunk in turn."""
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        """Record a half-close: no more writes."""
        self.eof_written = True

    def value(self) -> bytes:
        """All the bytes written so far (and not drained)."""
        return bytes(self.written)

    def drain(self, size: int | None = None) -> bytes:
        """Take the first ``size`` bytes written (all of them when None), as a socket
        would send them; resume a paused producer once ``buffer_limit`` or less wait."""
        if size is None:
            size = len(self.written)
        data = bytes(self.written[:size])
        del self.written[:size]
        self._maybe_resume()
        return data

    def clear(self) -> None:
        """Forget what was written so far (as :meth:`drain` does)."""
        self.written.clear()
        self._maybe_resume()

    def _maybe_resume(self) -> None:
        limit = self.buffer_limit
        if self.write_paused and (limit is None or len(self.written) <= limit):
            self.write_paused = False
            if self.producer is not None and self.streaming:
                self.producer.resume_producing()

    def close(self) -> None:
        """Mark the transport closed (after flushing, which is instant here)."""
        self.disconnecting = True
        self.closed = True

    def abort(self) -> None:
        """Mark the transport aborted and closed."""
        self.aborted = True
        self.close()

    def is_closing(self) -> bool:
        """True once close() or abort() was called."""
        return self.disconnecting

    def pause_reading(self) -> None:
        """Record that the protocol asked not to be given more data for now."""
        self.reading_paused = True

    def resume_reading(self) -> None:
        """Record that the protocol wants data again."""
        self.reading_paused = False

    def register_producer(self, producer: ProducerLike, streaming: bool) -> None:
        """Keep the producer; raises RuntimeError if one is registered already.

        A streaming producer registered while the buffer is over ``buffer_limit``
        is paused at once, as a socket transport does.
        """
        if self.producer is not None:
            raise RuntimeError(f"a producer is registered already: {self.producer!r}")
        self.producer, self.streaming = producer, streaming
        if streaming and self.write_paused:
            producer.pause_producing()

    def unregister_producer(self) -> None:
        """Forget the producer."""
        self.producer = self.streaming = None

    def start_tls(self, context: Any, server_side: bool | None = None) -> Deferred[Any]:
        """Record ``context`` in ``tls_context``; return ``tls_started``, for the test to fire.

        Raises RuntimeError if TLS was started already.
        """
        if self.tls_context is not None:
            raise RuntimeError("this connection is using TLS already")
        self.tls_context = context
        self.tls_started = Deferred()
        return self.tls_started

    def send_file(self, file: Any, offset: int = 0, count: int | None = None) -> Deferred[int]:
        """Write ``count`` bytes of the open binary ``file`` from ``offset`` (to its end when
        None) at once; the Deferred fires with the count.

        It fails with EOFError if the file is shorter than ``count``, and with
        RuntimeError if a producer is registered, as on a socket transport.
        """
        if self.producer is not None:
            return fail(RuntimeError(f"a producer is registered already: {self.producer!r}"))
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        if count <= 0:
            return succeed(0)
        file.seek(offset)
        data = file.read(count)
        self.write(data)
        if len(data) < count:
            return fail(EOFError(f"the file ended {count - len(data)} bytes early"))
        return succeed(len(data))

    def in_context(self, f: Callable[_P, _R]) -> Callable[_P, _R]:
        """``f``, wrapped to run in a copy of the context the transport was made in."""
        return bind_context(self._context, f)

    def __repr__(self) -> str:
        state = "aborted" if self.aborted else "closed" if self.closed else "open"
        return f"<StringTransport {state} {self.host} <-> {self.peer}, {len(self.written)} bytes>"


class StringDatagramTransport:
    """A datagram transport that keeps what is sent, for tests of datagram protocols.

    ``sent`` lists ``(data, addr)`` for each ``write(data, addr)``, ``addr`` being
    the peer's ``(host, port)`` once :meth:`connect`-ed. :meth:`receive` hands the
    protocol a datagram as if it came from ``addr``, :meth:`receive_error` an
    error. Writes are checked as on a UDP transport: str raises TypeError, a
    missing address (or another than the connected peer's) ValueError; after
    close, RuntimeError (so a protocol that talks after closing is caught).
    ``close()`` and ``abort()`` set ``closed`` (and ``aborted``) and do not call
    the protocol: the test decides when to call ``connection_lost``.

    Example::

        >>> import netshell as ns
        >>> from netshell.testing import StringDatagramTransport
        >>> class Echo(ns.DatagramProtocol):
        ...     def datagram_received(self, data, addr):
        ...         self.transport.write(data, addr)
        >>> t = StringDatagramTransport(protocol=Echo())
        >>> t.receive(b"ping", ("10.0.0.7", 5000))
        >>> t.sent
        [(b'ping', ('10.0.0.7', 5000))]
    """

    def __init__(self, host: Address | None = None, protocol: Any = None) -> None:
        self.host = host or Address("udp", "127.0.0.1", 5353)
        self.peer = Address(self.host.kind, "", 0)
        self.protocol = protocol
        self.sent: list[tuple[bytes, tuple[Any, ...]]] = []
        self.bytes_sent = 0
        self.bytes_received = 0
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.closed = False
        self.aborted = False
        self._context = contextvars.copy_context()
        if protocol is not None:
            protocol.connection_made(self)

    def write(self, data: bytes, addr: tuple[Any, ...] | None = None) -> None:
        """Record ``data`` as one datagram to ``addr``. Raises as described above."""
        if isinstance(data, str):
            raise TypeError("write() takes bytes, not str: encode it first")
        data = _check_bytes(data)
        if self.peer.port:
            if addr is not None and tuple(addr[:2]) != (self.peer.host, self.peer.port):
                raise ValueError(f"this transport is connected to {self.peer}; write(data) only")
            addr = (self.peer.host, self.peer.port)
        elif addr is None:
            raise ValueError(
                "write() needs an address (host, port) unless the transport is connected"
            )
        if self.closed:
            raise RuntimeError("write() on a datagram transport that was closed")
        self.sent.append((data, tuple(addr)))
        self.bytes_sent += len(data)
        self.datagrams_sent += 1

    def receive(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """Hand ``protocol.datagram_received`` the datagram ``data`` from ``addr``.

        Raises RuntimeError once closed, or when connected and ``addr`` is not the
        peer (the kernel would not deliver it).
        """
        if self.closed:
            raise RuntimeError("receive() on a datagram transport that was closed")
        if self.peer.port and tuple(addr[:2]) != (self.peer.host, self.peer.port):
            raise RuntimeError(
                f"connected to {self.peer}: a datagram from "
                f"{format_hostport(str(addr[0]), addr[1])} would not arrive"
            )
        data = _check_bytes(data)
        self.bytes_received += len(data)
        self.datagrams_received += 1
        self.protocol.datagram_received(data, addr)

    def receive_error(self, exc: Exception) -> None:
        """Hand ``protocol.error_received`` the error ``exc`` (an ICMP error, say)."""
        self.protocol.error_received(exc)

    def connect(self, host: str, port: int) -> None:
        """Talk to ``host:port`` only, as a connected UDP socket. RuntimeError once closed."""
        if self.closed:
            raise RuntimeError(f"{self!r} is closed")
        self.peer = Address(self.host.kind, host, port)

    def clear(self) -> None:
        """Forget the datagrams sent so far."""
        self.sent.clear()

    def close(self) -> None:
        """Mark the transport closed."""
        self.closed = True

    def abort(self) -> None:
        """Mark the transport aborted and closed."""
        self.aborted = True
        self.close()

    def is_closing(self) -> bool:
        """True once close() or abort() was called."""
        return self.closed

    def in_context(self, f: Callable[_P, _R]) -> Callable[_P, _R]:
        """``f``, wrapped to run in a copy of the context the transport was made in."""
        return bind_context(self._context, f)

    def __repr__(self) -> str:
        state = "aborted" if self.aborted else "closed" if self.closed else "open"
        peer = f" -> {self.peer}" if self.peer.port else ""
        return f"<StringDatagramTransport {state} {self.host}{peer}, {len(self.sent)} sent>"


class _LoopbackTransport(StringTransport):
    """One side of a :class:`Loopback`: what it writes waits for ``pump()``."""

    lost = False


class Loopback:
    """Two protocols joined in memory; see :func:`loopback`."""

    def __init__(self, server: Any, client: Any) -> None:
        self.server = server
        self.client = client
        s_addr = Address("memory", "server", 1)
        c_addr = Address("memory", "client", 2)
        self.server_transport = _LoopbackTransport(peer=c_addr, host=s_addr, protocol=server)
        self.client_transport = _LoopbackTransport(peer=s_addr, host=c_addr, protocol=client)
        self._sent = {id(self.server_transport): 0, id(self.client_transport): 0}
        self._eof_delivered: set[int] = set()
        server.connection_made(self.server_transport)
        client.connection_made(self.client_transport)

    def _deliver(self, src: _LoopbackTransport, dst: _LoopbackTransport) -> tuple[int, bool]:
        """Hand ``dst`` what ``src`` wrote since last time: (bytes moved, anything happened)."""
        if dst.lost or dst.reading_paused:
            return 0, False
        start = self._sent[id(src)]
        data = bytes(src.written[start:])
        if not data:
            if src.eof_written and id(src) not in self._eof_delivered:
                self._eof_delivered.add(id(src))
                dst.protocol.eof_received()
                return 0, True  # an EOF is news, but not a byte
            return 0, False
        self._sent[id(src)] = start + len(data)
        dst.bytes_received += len(data)
        dst.protocol.data_received(data)
        return len(data), True

    def _flushed(self, t: _LoopbackTransport) -> bool:
        return self._sent[id(t)] == len(t.written)

    def pump(self) -> int:
        """Deliver the bytes written on each side to the other, until nothing moves.

        Then, if a side has closed and everything it wrote was delivered, both
        protocols get ``connection_lost`` (``ConnectionDone``, or
        ``ConnectionLost`` after an abort). Returns how many bytes moved.
        """
        moved = 0
        while True:
            to_server, news_s = self._deliver(self.client_transport, self.server_transport)
            to_client, news_c = self._deliver(self.server_transport, self.client_transport)
            if not (news_s or news_c):
                break
            moved += to_server + to_client
        self._maybe_lose()
        return moved

    def _maybe_lose(self) -> None:
        s, c = self.server_transport, self.client_transport
        if s.lost:
            return
        aborted = s.aborted or c.aborted
        done = (s.closed and self._flushed(s)) or (c.closed and self._flushed(c))
        if not (aborted or done):
            return
        reason = (
            Failure(ConnectionLost("connection aborted"))
            if aborted
            else Failure(ConnectionDone("connection closed cleanly"))
        )
        s.lost = c.lost = True
        s.closed = c.closed = True
        self.server.connection_lost(reason)
        self.client.connection_lost(reason)

    def __repr__(self) -> str:
        return f"<Loopback {self.server!r} <-> {self.client!r}>"


def loopback(server: Any, client: Any) -> Loopback:
    """Connect ``server`` and ``client`` protocols in memory.

    Both get ``connection_made`` at once; bytes move when ``pump()`` is
    called, so a test sees each step.

    Example::

        >>> import netshell as ns
        >>> from netshell.testing import loopback
        >>> class Echo(ns.Protocol):
        ...     def data_received(self, data):
        ...         self.transport.write(data)
        >>> class Client(ns.Protocol):
        ...     got = b""
        ...     def data_received(self, data):
        ...         self.got += data
        >>> pair = loopback(Echo(), Client())
        >>> pair.client_transport.write(b"ping")
        >>> pair.pump()
        8
        >>> pair.client.got
        b'ping'
    """
    return Loopback(server, client)
