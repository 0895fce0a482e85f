"""StreamTransport.send_file, which the HTTP server uses for large files: sendfile(2) on
plain sockets, a pull producer of 64 KiB pieces under TLS, failures reported.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO, Any

import pytest
from peers import connect_tls_when_ready

import netshell as ns
from netshell import tls
from netshell.testing import PausedReader, RecordingFactory

SIZE = 3 * 1024 * 1024 + 7


class FileSender(ns.Protocol):
    """Writes a preamble, then sends its factory's slice of a file; ``sent`` fires with
    send_file's result."""

    def __init__(self) -> None:
        self.sent: ns.Deferred[int] = ns.Deferred()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(b"preamble:")
        f = self.factory
        d = transport.send_file(f.file, f.offset, f.count)
        d.add_callbacks(self.sent.callback, self.sent.errback)
        f.senders.put(self)


class SenderFactory(ns.Factory):
    protocol = FileSender

    def __init__(self, file: Any, offset: int = 0, count: int | None = None) -> None:
        self.file, self.offset, self.count = file, offset, count
        self.senders: ns.DeferredQueue[FileSender] = ns.DeferredQueue()


class ReadingFile:
    """A file wrapper that records the size of each read (the producer's pieces)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.reads: list[int] = []

    def read(self, n: int) -> bytes:
        self.reads.append(n)
        return self.f.read(n)

    def seek(self, pos: int) -> int:
        return self.f.seek(pos)

    def fileno(self) -> int:
        return self.f.fileno()


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


async def test_send_file_sends_the_file_after_what_was_written_before(
    reactor: ns.Reactor, data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file
    with open(path, "rb") as f:
        factory = SenderFactory(f)
        listener = reactor.listen_tcp(0, factory)
        client = await reactor.connect_tcp("127.0.0.1", listener.port, RecordingFactory())
        await client.wait_for_bytes(len(b"preamble:") + SIZE)
        sender = await factory.senders.get()
        assert await sender.sent == SIZE
        assert bytes(client.received) == b"preamble:" + data
        assert sender.transport.bytes_sent == len(b"preamble:") + SIZE


async def test_send_file_sends_a_slice(reactor: ns.Reactor, data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    with open(path, "rb") as f:
        factory = SenderFactory(f, offset=1000, count=50_000)
        listener = reactor.listen_tcp(0, factory)
        client = await reactor.connect_tcp("127.0.0.1", listener.port, RecordingFactory())
        await client.wait_for_bytes(len(b"preamble:") + 50_000)
        assert await (await factory.senders.get()).sent == 50_000
        assert bytes(client.received) == b"preamble:" + data[1000:51_000]


async def test_send_file_of_nothing_fires_at_once(
    reactor: ns.Reactor, data_file: tuple[Path, bytes]
) -> None:
    path, _ = data_file
    with open(path, "rb") as f:
        factory = SenderFactory(f, offset=SIZE)
        listener = reactor.listen_tcp(0, factory)
        await reactor.connect_tcp("127.0.0.1", listener.port, RecordingFactory())
        assert await (await factory.senders.get()).sent == 0


async def test_send_file_over_tls_reads_pieces_of_64_kib(
    reactor: ns.Reactor, data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file
    cert, key, ca = tls.self_signed("localhost")
    with open(path, "rb") as f:
        wrapped = ReadingFile(f)
        factory = SenderFactory(wrapped)
        listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
        client = await connect_tls_when_ready(
            "127.0.0.1", listener.port, RecordingFactory(), tls.client_context("localhost", ca=ca)
        )
        await client.wait_for_bytes(len(b"preamble:") + SIZE)
        assert await (await factory.senders.get()).sent == SIZE
        assert (
            hashlib.sha256(client.received).digest() == hashlib.sha256(b"preamble:" + data).digest()
        )
        assert max(wrapped.reads) == 64 * 1024
        assert sum(wrapped.reads) == SIZE


async def test_send_file_over_tls_waits_for_a_slow_reader(
    reactor: ns.Reactor, data_file: tuple[Path, bytes]
) -> None:
    path, _ = data_file
    cert, key, ca = tls.self_signed("localhost")
    with open(path, "rb") as f:
        wrapped = ReadingFile(f)
        factory = SenderFactory(wrapped)
        listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
        reader = await connect_tls_when_ready(
            "127.0.0.1",
            listener.port,
            ns.ClientFactory.for_protocol(PausedReader),
            tls.client_context("localhost", ca=ca),
        )
        await reader.read_until(100_000)
        # The reader holds back: the producer must stop reading the file well short of it.
        sender = await factory.senders.get()
        assert not sender.sent.called
        assert sum(wrapped.reads) < SIZE
        assert sender.transport.write_buffer_size < SIZE
        await reader.read_until(len(b"preamble:") + SIZE)
        assert await sender.sent == SIZE


async def test_send_file_with_a_producer_registered_fails(
    reactor: ns.Reactor, data_file: tuple[Path, bytes]
) -> None:
    path, _ = data_file

    class Busy(ns.Protocol):
        result: ns.Deferred[Any] = ns.Deferred()

        def connection_made(self, transport: Any) -> None:
            transport.register_producer(self, True)
            with open(path, "rb") as f:
                d = transport.send_file(f)
                d.add_callbacks(Busy.result.callback, Busy.result.errback)

        def pause_producing(self) -> None: ...
        def resume_producing(self) -> None: ...
        def stop_producing(self) -> None: ...

    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(Busy))
    await reactor.connect_tcp("127.0.0.1", listener.port, RecordingFactory())
    with pytest.raises(RuntimeError, match="producer is registered"):
        await Busy.result


async def test_send_file_past_the_end_of_a_short_file_fails_over_tls(
    reactor: ns.Reactor, data_file: tuple[Path, bytes]
) -> None:
    path, _ = data_file
    cert, key, ca = tls.self_signed("localhost")
    with open(path, "rb") as f:
        factory = SenderFactory(f, offset=SIZE - 10, count=100)
        listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
        await connect_tls_when_ready(
            "127.0.0.1", listener.port, RecordingFactory(), tls.client_context("localhost", ca=ca)
        )
        with pytest.raises(EOFError, match="90 bytes early"):
            await (await factory.senders.get()).sent


async def test_send_file_to_a_client_that_goes_away_fails(
    reactor: ns.Reactor, data_file: tuple[Path, bytes]
) -> None:
    path, _ = data_file
    cert, key, ca = tls.self_signed("localhost")
    with open(path, "rb") as f:
        factory = SenderFactory(f)
        listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
        reader = await connect_tls_when_ready(
            "127.0.0.1",
            listener.port,
            ns.ClientFactory.for_protocol(PausedReader),
            tls.client_context("localhost", ca=ca),
        )
        await reader.read_until(10_000)
        reader.transport.abort()
        with pytest.raises(ns.ConnectionLost):
            await (await factory.senders.get()).sent
