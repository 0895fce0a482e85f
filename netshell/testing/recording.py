"""Protocols and a factory that record what happens and fire a Deferred for each event.

A test of real connections waits on these Deferreds (connected, some bytes
arrived, end of file, connection lost) instead of sleeping.
"""

from __future__ import annotations

import hashlib
from typing import Any

from netshell.defer import Deferred, DeferredQueue
from netshell.failure import Failure
from netshell.protocol import Factory, Protocol

__all__ = ["PausedReader", "RecordingEcho", "RecordingFactory", "RecordingProtocol"]


class RecordingProtocol(Protocol):
    """Keeps what it receives and fires ``connected``, ``got_eof`` and ``done``.

    ``received`` holds every byte so far; ``wait_for_bytes(n)`` fires once at
    least ``n`` have arrived; ``reason`` is the Failure of ``connection_lost``.
    Class attributes: ``keep_open_on_eof`` (what ``eof_received`` returns) and
    ``start_paused`` (pause reading in ``connection_made``).

    Example::

        >>> from netshell.testing import RecordingProtocol, StringTransport
        >>> p = RecordingProtocol()
        >>> p.connection_made(StringTransport())
        >>> arrived = p.wait_for_bytes(4)
        >>> p.data_received(b"ping")
        >>> arrived
        <Deferred #... fired: b'ping'>
    """

    keep_open_on_eof = False
    start_paused = False

    def __init__(self) -> None:
        self.connected: Deferred[Any] = Deferred()
        self.got_eof: Deferred[None] = Deferred()
        self.done: Deferred[None] = Deferred()
        self.received = bytearray()
        self.reason: Failure | None = None
        self._waits: list[tuple[int, Deferred[bytes]]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.start_paused:
            transport.pause_reading()
        self.connected.callback(self)

    def data_received(self, data: bytes) -> None:
        self.received += data
        for n, d in list(self._waits):
            if len(self.received) >= n:
                self._waits.remove((n, d))
                d.callback(bytes(self.received))

    def wait_for_bytes(self, n: int) -> Deferred[bytes]:
        """Fires with everything received once at least ``n`` bytes have arrived."""
        d: Deferred[bytes] = Deferred()
        self._waits.append((n, d))
        self.data_received(b"")
        return d

    def eof_received(self) -> bool | None:
        self.got_eof.callback(None)
        return self.keep_open_on_eof

    def connection_lost(self, reason: Failure) -> None:
        self.reason = reason
        self.done.callback(None)


class RecordingEcho(RecordingProtocol):
    """A RecordingProtocol that also writes back whatever it receives."""

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)
        super().data_received(data)


class PausedReader(Protocol):
    """A slow reader: starts paused, reads on only when told, counts and hashes what it gets.

    ``read_until(n)`` resumes reading until ``n`` bytes in all have arrived,
    then pauses again and fires. ``count`` and ``sha`` (a sha256 object) cover
    everything read; ``connected`` and ``done`` fire as for RecordingProtocol.
    Use it to test flow control: a writer facing it must not buffer without bound.
    """

    def __init__(self) -> None:
        self.connected: Deferred[Any] = Deferred()
        self.done: Deferred[None] = Deferred()
        self.count = 0
        self.sha = hashlib.sha256()
        self._target = 0
        self._reached: Deferred[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.pause_reading()
        self.connected.callback(self)

    def data_received(self, data: bytes) -> None:
        self.count += len(data)
        self.sha.update(data)
        if self._reached is not None and self.count >= self._target:
            self.transport.pause_reading()
            reached, self._reached = self._reached, None
            reached.callback(None)

    def read_until(self, n: int) -> Deferred[None]:
        """Resume reading until ``n`` bytes in all have arrived, then pause again."""
        self._target = n
        reached = self._reached = Deferred()
        self.transport.resume_reading()
        return reached

    def connection_lost(self, reason: Failure) -> None:
        self.done.callback(None)


class RecordingFactory(Factory):
    """Keeps every protocol it builds; ``accepted()`` fires with the next connected one.

    ``events`` records "start" and "stop" from start_factory / stop_factory.
    """

    def __init__(self, protocol: Any = RecordingProtocol) -> None:
        self.protocol = protocol
        self.built: list[Any] = []
        self.events: list[str] = []
        self._queue: DeferredQueue[Any] = DeferredQueue()

    def build_protocol(self, addr: Any) -> Any:
        p: Any = super().build_protocol(addr)
        if p is not None:
            self.built.append(p)
            p.connected.add_callback(self._put)
        return p

    def _put(self, p: Any) -> Any:
        self._queue.put(p)
        return p

    def accepted(self) -> Deferred[Any]:
        """Fires with the next protocol whose connection is made."""
        return self._queue.get()

    def start_factory(self) -> None:
        self.events.append("start")

    def stop_factory(self) -> None:
        self.events.append("stop")
