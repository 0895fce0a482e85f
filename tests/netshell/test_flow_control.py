"""Flow control: pause_reading / resume_reading, and producers (streaming and pull).

Both ends of each connection run on the test's loop. To show that something
does *not* happen, a test lets the loop turn a bounded number of times
(``idle()``: each ``asyncio.sleep(0)`` is one loop iteration with an I/O poll)
after making sure the bytes are waiting in the kernel; nothing waits on a
wall-clock sleep.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import struct
import termios
from typing import Any

import pytest

import netshell as ns
from netshell.testing import PausedReader, RecordingFactory, RecordingProtocol

KiB = 1024
MiB = 1024 * KiB
#: bytes through the streaming-producer test; NETSHELL_FLOW_BYTES=1073741824 for 1 GiB
FLOW_BYTES = int(os.environ.get("NETSHELL_FLOW_BYTES", 200 * MiB))
#: asyncio's default write-buffer limits (uvloop's are the same)
HIGH_WATER = 64 * KiB
LOW_WATER = 16 * KiB


Recorder = RecordingProtocol


class PausedRecorder(Recorder):
    start_paused = True


Counter = PausedReader


Collecting = RecordingFactory


async def pair(reactor: ns.Reactor, server: Any, client: Any) -> tuple[Any, Any]:
    """(client protocol, server protocol) of one loopback connection."""
    factory = Collecting(server)
    listener = reactor.listen_tcp(0, factory)
    c = await reactor.connect_tcp("127.0.0.1", listener.port, ns.ClientFactory.for_protocol(client))
    s = await factory.accepted()
    return c, s


async def idle(turns: int = 20) -> None:
    """Let the loop go round ``turns`` times (each polls for I/O)."""
    for _ in range(turns):
        await asyncio.sleep(0)


def kernel_has(transport: Any) -> int:
    """Bytes waiting in the kernel's receive buffer of ``transport``'s socket."""
    fd = transport.get_extra_info("socket").fileno()
    raw = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


# ---- reading


async def test_paused_reading_delivers_nothing_until_resumed(reactor: ns.Reactor) -> None:
    client, server = await pair(reactor, server=Recorder, client=Recorder)
    server.transport.pause_reading()
    client.transport.write(b"sent while paused")
    for _ in range(100):  # loopback delivers at once; bounded in case it does not
        if kernel_has(server.transport) >= 17:
            break
        await asyncio.sleep(0)
    assert kernel_has(server.transport) == 17
    await idle()  # turns in which an unpaused transport would have read it
    assert server.received == b""
    server.transport.resume_reading()
    assert await server.wait_for_bytes(17) == b"sent while paused"


async def test_reading_paused_from_connection_made_holds_the_first_bytes(
    reactor: ns.Reactor,
) -> None:
    client, server = await pair(reactor, server=PausedRecorder, client=Recorder)
    client.transport.write(b"first")
    for _ in range(100):  # until the bytes are at the server: in the kernel, or read and held
        if kernel_has(server.transport) + server.transport.bytes_received == 5:
            break
        await asyncio.sleep(0)
    await idle()
    assert kernel_has(server.transport) + server.transport.bytes_received == 5
    assert server.received == b""
    server.transport.resume_reading()
    assert await server.wait_for_bytes(5) == b"first"


# ---- streaming producers


class ChunkProducer:
    """A streaming producer: writes 64 KiB chunks as fast as it is allowed, up to ``total``."""

    def __init__(self, transport: Any, total: int, chunk: bytes) -> None:
        self.transport = transport
        self.total = total
        self.chunk = chunk
        self.sent = 0
        self.sha = hashlib.sha256()
        self.paused = False
        self.finished: ns.Deferred[None] = ns.Deferred()
        self.buffer_at_pause: list[int] = []
        self.buffer_at_resume: list[int] = []
        self.max_buffer = 0
        self.stopped = False

    def produce(self) -> None:
        while not self.paused and self.sent < self.total:
            data = self.chunk[: self.total - self.sent]
            self.transport.write(data)
            self.sent += len(data)
            self.sha.update(data)
            self.max_buffer = max(self.max_buffer, self.transport.write_buffer_size)
        if self.sent >= self.total and not self.finished.called:
            self.transport.unregister_producer()
            self.finished.callback(None)

    def pause_producing(self) -> None:
        self.paused = True
        self.buffer_at_pause.append(self.transport.write_buffer_size)

    def resume_producing(self) -> None:
        self.paused = False
        self.buffer_at_resume.append(self.transport.write_buffer_size)
        self.produce()

    def stop_producing(self) -> None:
        self.stopped = True


@pytest.mark.async_timeout(60)
@pytest.mark.parametrize("total", [FLOW_BYTES])
async def test_streaming_producer_is_paused_and_resumed_and_the_buffer_stays_bounded(
    reactor: ns.Reactor, total: int
) -> None:
    reader, writer = await pair(reactor, server=Recorder, client=Counter)
    producer = ChunkProducer(writer.transport, total, os.urandom(64 * KiB))
    writer.transport.register_producer(producer, streaming=True)
    producer.produce()
    # The reader is paused: the producer must have been paused, not written all of it.
    assert producer.paused
    assert producer.sent < total
    step = 8 * MiB
    while reader.count < total:
        await reader.read_until(min(reader.count + step, total))
        await idle(5)  # the reader is paused again: the producer fills up and pauses
        assert producer.max_buffer <= 4 * MiB
    await producer.finished
    assert reader.count == total
    assert reader.sha.digest() == producer.sha.digest()
    assert len(producer.buffer_at_pause) >= 2
    assert len(producer.buffer_at_resume) >= 2
    assert all(size > HIGH_WATER for size in producer.buffer_at_pause)
    assert all(size <= LOW_WATER for size in producer.buffer_at_resume)
    assert not producer.stopped


async def test_streaming_producer_registered_while_writes_are_paused_is_paused_at_once(
    reactor: ns.Reactor,
) -> None:
    _, writer = await pair(reactor, server=Recorder, client=Counter)
    writer.transport.write(b"x" * (16 * MiB))  # more than the kernel takes: writing pauses
    assert writer.transport.write_buffer_size > HIGH_WATER
    producer = ChunkProducer(writer.transport, 1, b"x")
    writer.transport.register_producer(producer, streaming=True)
    assert producer.paused
    assert producer.buffer_at_pause == [writer.transport.write_buffer_size]


async def test_streaming_producer_gets_stop_producing_when_the_connection_is_lost(
    reactor: ns.Reactor,
) -> None:
    reader, writer = await pair(reactor, server=Recorder, client=Counter)
    producer = ChunkProducer(writer.transport, 64 * MiB, b"y" * (64 * KiB))
    writer.transport.register_producer(producer, streaming=True)
    producer.produce()
    assert not producer.stopped
    reader.transport.abort()
    await writer.done
    assert producer.stopped
    assert writer.reason.check(ns.ConnectionLost)


async def test_registering_a_second_producer_raises_runtime_error(reactor: ns.Reactor) -> None:
    _, writer = await pair(reactor, server=Recorder, client=Recorder)
    first = ChunkProducer(writer.transport, 0, b"")
    writer.transport.register_producer(first, streaming=True)
    with pytest.raises(RuntimeError, match="registered already"):
        writer.transport.register_producer(ChunkProducer(writer.transport, 0, b""), streaming=True)
    writer.transport.unregister_producer()
    writer.transport.register_producer(ChunkProducer(writer.transport, 0, b""), streaming=False)


# ---- pull producers


class PullProducer:
    """A pull producer: one chunk per resume_producing() call, then it unregisters and closes."""

    def __init__(self, transport: Any, chunks: list[bytes], close: bool = True) -> None:
        self.transport = transport
        self.chunks = list(chunks)
        self.calls = 0
        self.stopped = False
        self.close = close
        self.finished: ns.Deferred[None] = ns.Deferred()

    def resume_producing(self) -> None:
        self.calls += 1
        if self.chunks:
            self.transport.write(self.chunks.pop(0))
            return
        self.transport.unregister_producer()
        if self.close:
            self.transport.close()
        self.finished.callback(None)

    def pause_producing(self) -> None:
        raise AssertionError("a pull producer is never paused")

    def stop_producing(self) -> None:
        self.stopped = True


async def test_pull_producer_gets_resume_producing_until_it_is_done(reactor: ns.Reactor) -> None:
    reader, writer = await pair(reactor, server=Recorder, client=Recorder)
    chunks = [bytes([i]) * (1000 + i) for i in range(50)]
    producer = PullProducer(writer.transport, chunks)
    writer.transport.register_producer(producer, streaming=False)
    await producer.finished
    assert producer.calls == len(chunks) + 1
    await reader.done
    assert bytes(reader.received) == b"".join(chunks)
    assert reader.reason.check(ns.ConnectionDone)
    assert not producer.stopped


async def test_pull_producer_is_not_asked_while_the_write_buffer_is_full(
    reactor: ns.Reactor,
) -> None:
    reader, writer = await pair(reactor, server=Recorder, client=Counter)
    chunks = [b"z" * MiB] * 64
    producer = PullProducer(writer.transport, chunks)
    writer.transport.register_producer(producer, streaming=False)
    for _ in range(200):  # until the paused reader makes writing pause
        if writer.transport.write_buffer_size > HIGH_WATER:
            break
        await asyncio.sleep(0)
    calls = producer.calls
    assert 0 < calls < len(chunks)
    await idle()
    assert producer.calls == calls
    await reader.read_until(64 * MiB)
    await producer.finished
    assert producer.calls == len(chunks) + 1


async def test_unregistered_pull_producer_is_asked_no_more(reactor: ns.Reactor) -> None:
    _, writer = await pair(reactor, server=Recorder, client=Recorder)
    producer = PullProducer(writer.transport, [b"a"] * 1000)
    writer.transport.register_producer(producer, streaming=False)
    await idle(3)
    writer.transport.unregister_producer()
    calls = producer.calls
    assert calls > 0
    await idle()
    assert producer.calls == calls


async def test_pull_producer_gets_stop_producing_when_the_connection_is_lost(
    reactor: ns.Reactor,
) -> None:
    reader, writer = await pair(reactor, server=Recorder, client=Counter)
    producer = PullProducer(writer.transport, [b"w" * MiB] * 1000)
    writer.transport.register_producer(producer, streaming=False)
    await idle(3)
    reader.transport.abort()
    await writer.done
    assert producer.stopped
