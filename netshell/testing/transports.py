"""In-memory transports: drive a protocol with no socket and no event loop.

:class:`StringTransport` records what a protocol writes and how it closes.
:func:`loopback` joins two protocols back to back, each with a transport
that delivers to the other when :meth:`Loopback.pump` is called, so a whole
conversation (server and client) runs step by step inside a test.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from netshell.errors import ConnectionDone, ConnectionLost
from netshell.failure import Failure
from netshell.transport import Address

__all__ = ["Loopback", "StringTransport", "loopback"]


def _check_bytes(data: Any) -> bytes:
    if isinstance(data, str) or not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"transports take bytes, not {type(data).__name__}: {data!r:.60}")
    return bytes(data)


class StringTransport:
    """A transport that keeps what is written, for tests.

    ``value()`` is everything written so far; ``clear()`` forgets it.
    ``close()`` sets ``disconnecting`` (and ``closed``); ``abort()`` also sets
    ``aborted``. Neither calls the protocol: the test decides when to call
    ``connection_lost``. Writing after close raises RuntimeError, so a
    protocol that talks after hanging up is caught.

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
    ) -> None:
        self.peer = peer or Address("tcp", "127.0.0.1", 54321)
        self.host = host or Address("tcp", "127.0.0.1", 8080)
        self.protocol = protocol
        self.written = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connected_at = time.time()
        self.tls: Any = None
        self.closed = False
        self.disconnecting = False
        self.aborted = False
        self.eof_written = False
        self.reading_paused = False
        self.producer: Any = None
        self.streaming: bool | None = None

    def write(self, data: bytes) -> None:
        """Record ``data``. Raises TypeError for str, RuntimeError after close."""
        data = _check_bytes(data)
        if self.closed or self.eof_written:
            raise RuntimeError("write() on a transport that was closed or half-closed")
        self.written += data
        self.bytes_sent += len(data)

    def write_sequence(self, chunks: Iterable[bytes]) -> None:
        """Record each chunk in turn."""
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        """Record a half-close: no more writes."""
        self.eof_written = True

    def value(self) -> bytes:
        """All the bytes written so far."""
        return bytes(self.written)

    def clear(self) -> None:
        """Forget what was written so far."""
        self.written.clear()

    def close(self) -> None:
        """Mark the transport closed (after flushing, which is instant here)."""
        self.disconnecting = True
        self.closed = True

    def abort(self) -> None:
        """Mark the transport aborted and closed."""
        self.aborted = True
        self.close()

    def pause_reading(self) -> None:
        """Record that the protocol asked not to be given more data for now."""
        self.reading_paused = True

    def resume_reading(self) -> None:
        """Record that the protocol wants data again."""
        self.reading_paused = False

    def register_producer(self, producer: Any, streaming: bool) -> None:
        """Keep the producer; raises RuntimeError if one is registered already."""
        if self.producer is not None:
            raise RuntimeError(f"a producer is registered already: {self.producer!r}")
        self.producer, self.streaming = producer, streaming

    def unregister_producer(self) -> None:
        """Forget the producer."""
        self.producer = self.streaming = None

    def __repr__(self) -> str:
        state = "aborted" if self.aborted else "closed" if self.closed else "open"
        return f"<StringTransport {state} {self.host} <-> {self.peer}, {len(self.written)} bytes>"


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
