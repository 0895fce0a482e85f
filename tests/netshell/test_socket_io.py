"""A listener's connections: SocketIO on asyncio's own loop, asyncio's create_server on uvloop.

On asyncio's selector loop a Listener accepts by itself and reads and writes each
connection through a :class:`netshell.socket_io.SocketIO`; on uvloop it keeps
``loop.create_server``. The behaviours a server relies on (echo, half-close, flow control
with a slow reader, close after the buffer is sent, abort, a peer's reset) run here on both
loops, on the accepted end, so neither path goes untested. Nothing sleeps: tests wait on the
Deferreds their protocols fire.
"""

from __future__ import annotations

import array
import asyncio
import errno
import hashlib
import logging
import selectors
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
from netshell import listener as listener_module
from netshell.reactor import Reactor, install
from netshell.socket_io import SocketIO
from netshell.testing import PausedReader, RecordingEcho, RecordingFactory, RecordingProtocol
from netshell.transport import StreamTransport


@pytest.fixture(params=["asyncio", "uvloop"])
def any_loop(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    """A reactor on asyncio's own loop, then on uvloop (a test dependency: never skipped)."""
    r = Reactor(use_uvloop=request.param == "uvloop")
    install(r)
    try:
        yield r
    finally:
        r.close()


async def accepted_pair(
    r: Reactor, server: Any = RecordingEcho, client: Any = RecordingProtocol
) -> tuple[Any, Any, Any]:
    factory = RecordingFactory(server)
    lst = r.listen_tcp(0, factory)
    c = await r.connect_tcp("127.0.0.1", lst.port, ns.ClientFactory.for_protocol(client))
    s = await factory.accepted()
    return lst, c, s


def raw_of(transport: StreamTransport) -> Any:
    return transport._t


def test_on_asyncios_loop_the_listener_reads_and_writes_through_socket_io(
    any_loop: Reactor,
) -> None:
    async def go() -> None:
        lst, c, s = await accepted_pair(any_loop)
        c.transport.write(b"ping")
        assert await c.wait_for_bytes(4) == b"ping"
        uses_socket_io = isinstance(raw_of(s.transport), SocketIO)
        assert uses_socket_io == (any_loop.loop_name == "asyncio")
        # the connecting side keeps asyncio's transport on either loop
        assert not isinstance(raw_of(c.transport), SocketIO)
        assert s.transport.peer == c.transport.host
        assert s.transport.host == c.transport.peer
        c.transport.close()
        await s.done
        # the addresses are still told once the connection is closed
        assert s.transport.host == c.transport.peer
        assert s.transport.state == "closed"
        lst.close()

    any_loop.run_until(go(), timeout=30)


def test_an_accepted_connection_echoes_and_half_closes(any_loop: Reactor) -> None:
    class KeepOpen(RecordingEcho):
        keep_open_on_eof = True

    async def go() -> None:
        lst, c, s = await accepted_pair(any_loop, server=KeepOpen)
        c.transport.write(b"abc")
        await c.wait_for_bytes(3)
        c.transport.write_eof()
        await s.got_eof
        s.transport.write(b"after eof")  # the server's direction is still open
        assert await c.wait_for_bytes(3 + 9) == b"abcafter eof"
        s.transport.close()
        await c.done
        await s.done
        assert s.reason.check(ns.ConnectionDone)
        lst.close()

    any_loop.run_until(go(), timeout=30)


class Streamer(RecordingProtocol):
    """Writes ``TOTAL`` bytes as fast as the transport lets it, pausing when told."""

    # More than the kernel can hold for a paused reader: loopback's receive buffer grows
    # to tcp_rmem's largest (32 MiB on Debian's defaults) besides the 4 MiB of the send
    # buffer; with 8 MiB, every byte could sit in the kernel and the writer finish early.
    TOTAL = 64 * 1024 * 1024
    CHUNK = 256 * 1024

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.sent = 0
        self.paused = 0
        self.most_buffered = 0
        self.digest = hashlib.sha256()
        self.finished: ns.Deferred[None] = ns.Deferred()
        transport.register_producer(self, True)
        self.resume_producing()

    def resume_producing(self) -> None:
        self._producing = True
        while self._producing and self.sent < self.TOTAL:
            chunk = bytes([self.sent // self.CHUNK % 251]) * self.CHUNK
            self.digest.update(chunk)
            self.transport.write(chunk)
            self.sent += len(chunk)
            self.most_buffered = max(self.most_buffered, self.transport.write_buffer_size)
        if self.sent >= self.TOTAL and not self.finished.called:
            self.transport.unregister_producer()
            self.finished.callback(None)

    def pause_producing(self) -> None:
        self.paused += 1
        self._producing = False

    def stop_producing(self) -> None:
        self._producing = False


def test_a_slow_reader_pauses_the_writer_and_gets_every_byte(any_loop: Reactor) -> None:
    async def go() -> None:
        lst, reader, s = await accepted_pair(any_loop, server=Streamer, client=PausedReader)
        # The reader reads a quarter, pauses, then reads the rest: the writer was paused
        # and its buffer stayed bounded meanwhile.
        await reader.read_until(Streamer.TOTAL // 4)
        assert s.paused >= 1
        assert not s.finished.called
        await reader.read_until(Streamer.TOTAL)
        await s.finished
        assert reader.count == Streamer.TOTAL
        assert reader.sha.hexdigest() == s.digest.hexdigest()
        # one chunk past the high-water mark at most, plus what the last write added
        assert s.most_buffered <= 64 * 1024 + 2 * Streamer.CHUNK
        lst.close()

    any_loop.run_until(go(), timeout=60)


def test_close_sends_the_buffer_first_and_abort_drops_it(any_loop: Reactor) -> None:
    async def go() -> None:
        big = b"x" * (4 * 1024 * 1024)
        lst, c, s = await accepted_pair(any_loop, server=RecordingProtocol)
        s.transport.write(big)
        s.transport.close()  # the 4 MiB go out first
        assert len(await c.wait_for_bytes(len(big))) == len(big)
        await s.done
        assert s.reason.check(ns.ConnectionDone)

        lst2, c2, s2 = await accepted_pair(any_loop, server=RecordingProtocol,
                                           client=PausedReader)
        s2.transport.write(big)
        assert s2.transport.write_buffer_size > 0  # the reader does not read
        s2.transport.abort()
        await s2.done
        assert s2.reason.check(ns.ConnectionLost)
        c2.transport.resume_reading()  # a paused reader sees the end only once it reads
        await c2.done
        assert c2.count < len(big)
        lst.close()
        lst2.close()

    any_loop.run_until(go(), timeout=30)


def test_a_peer_reset_loses_only_that_connection(any_loop: Reactor) -> None:
    async def go() -> None:
        lst, c, s = await accepted_pair(any_loop)
        other = await any_loop.connect_tcp(
            "127.0.0.1", lst.port, ns.ClientFactory.for_protocol(RecordingProtocol))
        sock = c.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.transport.abort()  # linger 0: the kernel sends RST
        await s.done
        assert s.reason.check(ns.ConnectionLost, ns.ConnectionDone)
        other.transport.write(b"still here")
        assert await other.wait_for_bytes(10) == b"still here"
        lst.close()

    any_loop.run_until(go(), timeout=30)


# ---- accepting on asyncio's loop


class ClosesItsListener(RecordingProtocol):
    """The first connection closes the listener it came through (an FTP passive channel
    takes one connection so)."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        transport.listener.close()


def test_a_connection_that_closes_its_listener_ends_the_accepting_quietly(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    factory = RecordingFactory(ClosesItsListener)
    lst = reactor.listen_tcp(0, factory)
    # Three clients wait in the backlog before the loop runs: one wake-up sees them all.
    clients = [socket.create_connection(("127.0.0.1", lst.port)) for _ in range(3)]

    async def go() -> None:
        first = await factory.accepted()
        await lst.close()
        assert first.transport.listener is lst
        assert len(factory.built) == 1

    try:
        with caplog.at_level(logging.WARNING):
            reactor.run_until(go(), timeout=30)
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        for c in clients:
            c.close()


class Flaky:
    """The listening socket, whose accept fails ``fails`` times with EMFILE first."""

    def __init__(self, real: socket.socket, fails: int) -> None:
        self.real = real
        self.fails = fails
        self.proto = real.proto

    def _accept(self) -> Any:
        if self.fails:
            self.fails -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.real._accept()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_out_of_descriptors_the_listener_waits_then_accepts_again(
    reactor: Reactor, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "ACCEPT_RETRY_DELAY", 0.0)
    factory = RecordingFactory(RecordingEcho)
    lst = reactor.listen_tcp(0, factory)
    flaky = Flaky(lst._sock, fails=1)
    lst._sock = flaky  # type: ignore[assignment]
    client = socket.create_connection(("127.0.0.1", lst.port))
    watched: list[bool] = []

    real_remove = reactor.loop.remove_reader

    def remove_reader(fd: int) -> bool:
        watched.append(fd == flaky.fileno())
        return real_remove(fd)

    monkeypatch.setattr(reactor.loop, "remove_reader", remove_reader)

    async def go() -> None:
        s = await factory.accepted()
        client.sendall(b"hi")
        assert await s.wait_for_bytes(2) == b"hi"
        await lst.close()

    try:
        with caplog.at_level(logging.ERROR, logger="netshell.listener"):
            reactor.run_until(go(), timeout=30)
        errors = [r.getMessage() for r in caplog.records if r.name == "netshell.listener"]
        assert len(errors) == 1
        assert "cannot accept a connection" in errors[0]
        assert "Too many open files" in errors[0]
        assert flaky.fails == 0
        # the listening socket stopped being watched while out of descriptors (or the loop
        # would spin on it), and its close removed it again at the end
        assert watched[:1] == [True]
    finally:
        client.close()


def test_socket_io_refuses_writes_that_asyncios_transport_refuses(reactor: Reactor) -> None:
    async def go() -> None:
        lst, c, s = await accepted_pair(reactor, server=RecordingProtocol)
        raw = raw_of(s.transport)
        assert isinstance(raw, SocketIO)
        with pytest.raises(TypeError, match="bytes-like"):
            raw.write("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            raw.set_write_buffer_limits(high=10, low=20)
        raw.write_eof()
        with pytest.raises(RuntimeError, match="write_eof"):
            raw.write(b"more")
        await c.got_eof
        c.transport.close()
        await s.done
        lst.close()

    reactor.run_until(go(), timeout=30)


def test_a_file_sent_over_socket_io_refuses_writes_meanwhile_and_arrives_whole(
    reactor: Reactor, tmp_path: Any
) -> None:
    data = bytes(range(256)) * 16 * 1024  # 4 MiB
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    async def go() -> None:
        lst, c, s = await accepted_pair(reactor, server=RecordingProtocol)
        raw = raw_of(s.transport)
        assert isinstance(raw, SocketIO)
        with path.open("rb") as f:
            sending = asyncio.ensure_future(raw.sendfile(f, 0, len(data)))
            await asyncio.sleep(0)  # one turn of the loop: the task starts (no timing)
            assert not sending.done()
            with pytest.raises(RuntimeError, match="sendfile is in progress"):
                raw.write(b"in the middle")
            sent = await sending
        assert sent == len(data)
        got = await c.wait_for_bytes(len(data))
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        raw.write(b"!")  # writing works again once the file is sent
        assert (await c.wait_for_bytes(len(data) + 1)).endswith(b"!")
        lst.close()

    reactor.run_until(go(), timeout=30)


# ---- found by review: what asyncio's transport does and SocketIO must too


def watched_for_writing(r: Reactor, raw: SocketIO) -> bool:
    key = r.loop._selector.get_map().get(raw._fd)  # type: ignore[attr-defined]
    return key is not None and bool(key.events & selectors.EVENT_WRITE)


def test_a_memoryview_of_wide_items_is_counted_in_bytes(reactor: Reactor) -> None:
    """send() counts bytes, len() of a memoryview of ints counts items: a whole send must
    not leave a writer registered (the loop would spin, and the descriptor's next owner
    fail), and a partial one must keep the right bytes."""
    small = array.array("i", range(1000))
    big = array.array("i", range(2 * 1024 * 1024))  # 8 MiB: more than the kernel takes

    async def go() -> None:
        lst, c, s = await accepted_pair(reactor, server=RecordingProtocol, client=PausedReader)
        raw = raw_of(s.transport)
        raw.write(memoryview(small))
        assert not watched_for_writing(reactor, raw)  # all sent: nothing left to watch
        raw.write(memoryview(big))
        assert watched_for_writing(reactor, raw) and raw.get_write_buffer_size() > 0
        await c.read_until(len(small.tobytes()) + len(big.tobytes()))
        expected = hashlib.sha256(small.tobytes() + big.tobytes()).hexdigest()
        assert c.sha.hexdigest() == expected
        assert raw.get_write_buffer_size() == 0 and not watched_for_writing(reactor, raw)
        lst.close()

    reactor.run_until(go(), timeout=30)


class CancelledOnData(RecordingProtocol):
    calls = 0

    def data_received(self, data: bytes) -> None:
        CancelledOnData.calls += 1
        raise asyncio.CancelledError()  # a BaseException, not an Exception


class CancelledOnEof(RecordingProtocol):
    calls = 0

    def eof_received(self) -> bool | None:
        CancelledOnEof.calls += 1
        raise asyncio.CancelledError()


def test_a_base_exception_from_the_protocol_loses_that_connection_once(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> None:
        lst, c, s = await accepted_pair(reactor, server=CancelledOnData)
        c.transport.write(b"x")
        await s.done
        assert s.reason.check(ns.ConnectionLost)
        await c.done
        assert CancelledOnData.calls == 1

        lst2, c2, s2 = await accepted_pair(reactor, server=CancelledOnEof)
        c2.transport.write_eof()
        await s2.done
        assert s2.reason.check(ns.ConnectionLost)
        assert CancelledOnEof.calls == 1  # not called again and again by a spinning loop
        # the listeners serve on
        lst3, c3, _s3 = await accepted_pair(reactor)
        c3.transport.write(b"ok")
        assert await c3.wait_for_bytes(2) == b"ok"
        for listener in (lst, lst2, lst3):
            listener.close()

    with caplog.at_level(logging.ERROR):
        reactor.run_until(go(), timeout=30)
    reported = [r for r in caplog.records if r.exc_info and r.exc_info[0] is asyncio.CancelledError]
    assert len(reported) == 2  # each reported once, with its traceback


def test_writes_after_the_connection_is_lost_are_dropped_quietly(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> None:
        lst, c, s = await accepted_pair(reactor, server=RecordingProtocol)
        raw = raw_of(s.transport)
        big = b"y" * (4 * 1024 * 1024)
        raw.write(big)
        raw.close()  # waits for the buffer, then the protocol hears of it
        await c.wait_for_bytes(len(big))
        await s.done
        raw.write(b"late")  # a timer's write after connection_lost
        raw.abort()
        await c.done
        assert len(c.received) == len(big)
        lst.close()

    with caplog.at_level(logging.WARNING):
        reactor.run_until(go(), timeout=30)
        reactor.run_until(asyncio.sleep(0), timeout=5)  # one more turn: anything queued runs
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("interface", ["127.0.0.1", "0.0.0.0"])
def test_accepted_connections_have_nagle_off_and_their_own_address(
    any_loop: Reactor, interface: str
) -> None:
    """Set once on the listening socket (Linux passes it on) or per connection: small
    writes go out at once. A listener bound to one address tells its connections their
    address; one bound to the wildcard never gives them 0.0.0.0."""

    async def go() -> None:
        factory = RecordingFactory(RecordingEcho)
        lst = any_loop.listen_tcp(0, factory, interface=interface)
        c = await any_loop.connect_tcp(
            "127.0.0.1", lst.port, ns.ClientFactory.for_protocol(RecordingProtocol))
        s = await factory.accepted()
        sock = s.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert s.transport.host == ns.Address("tcp", "127.0.0.1", lst.port)
        assert s.transport.host == c.transport.peer
        assert sock.getsockname() == ("127.0.0.1", lst.port)
        c.transport.close()
        await s.done
        lst.close()

    any_loop.run_until(go(), timeout=30)
