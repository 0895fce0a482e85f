"""StreamTransport.receive_file: what arrives on a connection written into a file, by the
kernel (splice(2): socket -> pipe -> file) on a plain socket with asyncio's loop, else with
os.write as data_received brings it (TLS, no os.splice, a data_in observer watching).

Each test runs both ways where both exist ("splice" and "write", the latter forced by
taking os.splice away from the transport), and checks that the way asked for was the one
taken. The peer is a plain non-blocking socket driven with the loop's sock_* methods.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import socket
import ssl
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from netshell import observe, tls
from netshell import transport as transport_mod
from netshell.errors import ConnectionLost

KiB = 1024
MiB = 1024 * KiB


def payload(size: int) -> bytes:
    """``size`` bytes that are not all alike (a shifted or dropped byte shows)."""
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


class Spy:
    """Counts the bytes written into one file descriptor, by splice(2) or os.write, and can
    fire a Deferred once ``target`` bytes are in, or fail the ``fail_at``-th write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
        self.fd = -1
        self.written = 0
        self.splices = 0  # splice(2) calls of the transport, any direction
        self.writes = 0  # os.write calls into the file
        self.target: int | None = None
        self.reached: ns.Deferred[int] = ns.Deferred()
        self.fail_at: int | None = None
        real_splice, real_write = os.splice, os.write
        if way == "write":
            monkeypatch.setattr(transport_mod, "_splice", None)
        else:

            def splice(src: int, dst: int, count: int, *a: Any, **kw: Any) -> int:
                self.splices += 1
                if dst == self.fd:
                    self._before()
                n = real_splice(src, dst, count, *a, **kw)
                if dst == self.fd:
                    self._after(n)
                return n

            monkeypatch.setattr(transport_mod, "_splice", splice)

        def write(fd: int, data: Any) -> int:
            if fd != self.fd:
                return real_write(fd, data)
            self.writes += 1
            self._before()
            n = real_write(fd, data)
            self._after(n)
            return n

        monkeypatch.setattr(os, "write", write)

    def _before(self) -> None:
        if self.fail_at is not None:
            self.fail_at -= 1
            if self.fail_at == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _after(self, n: int) -> None:
        self.written += n
        if self.target is not None and self.written >= self.target and not self.reached.called:
            self.reached.callback(self.written)

    def when_written(self, target: int) -> ns.Deferred[int]:
        self.target = target
        if self.written >= target and not self.reached.called:
            self.reached.callback(self.written)
        return self.reached


class Receiver(ns.Protocol):
    """Calls receive_file on its factory's file once connected (unless ``start`` is False);
    keeps what comes to it afterwards."""

    def __init__(self) -> None:
        self.outcome: ns.Deferred[Any] = ns.Deferred()  # fires with [count or Failure]
        self.after: list[bytes] = []
        self.eof = ns.Deferred[None]()
        self.lost: ns.Deferred[Any] = ns.Deferred()
        self.receiving: ns.Deferred[int] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        factory = self.factory
        if factory.before is not None:
            factory.before(self)
        if factory.start:
            self.start()
        factory.accepted.put(self)

    def start(self) -> ns.Deferred[int]:
        d = self.receiving = self.transport.receive_file(self.factory.fd, self.factory.count)
        d.add_both(lambda outcome: self.outcome.callback([outcome]))
        return d

    def data_received(self, data: bytes) -> None:
        self.after.append(data)

    def eof_received(self) -> bool:
        self.eof.callback(None)
        return False

    def connection_lost(self, reason: Any) -> None:
        self.lost.callback([reason])  # a Failure kept as a value


class ReceiverFactory(ns.Factory):
    protocol = Receiver

    def __init__(self, fd: int, count: int | None = None, start: bool = True,
                 before: Callable[[Receiver], None] | None = None) -> None:
        self.fd = fd
        self.count = count
        self.start = start
        self.before = before
        self.accepted: ns.DeferredQueue[Receiver] = ns.DeferredQueue()


@pytest.fixture(params=["splice", "write"])
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def out(tmp_path: Path) -> Any:
    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    yield fd
    os.close(fd)


def contents(fd: int) -> str:
    """What the file open as ``fd`` holds: its length and sha256 (a short diff when wrong)."""
    return digest(Path(f"/proc/self/fd/{fd}").read_bytes())


def digest(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"


async def serve(
    reactor: ns.Reactor, factory: ReceiverFactory
) -> tuple[Any, socket.socket, Receiver]:
    listener = reactor.listen_tcp(0, factory)
    sock = socket.socket()
    sock.setblocking(False)
    await reactor.loop.sock_connect(sock, ("127.0.0.1", listener.port))
    receiver = await factory.accepted.get()
    return listener, sock, receiver


def reads_socket(reactor: ns.Reactor, receiver: Receiver) -> bool:
    """Whether the loop waits to read the receiver's socket, by any descriptor of it (the
    splice reader has its own duplicate)."""
    sock = receiver.transport.get_extra_info("socket")
    inode = os.fstat(sock.fileno()).st_ino
    selector = reactor.loop._selector  # type: ignore[attr-defined]
    return any(
        key.events & 1 and os.fstat(key.fd).st_ino == inode
        for key in list(selector.get_map().values())
    )


async def read_to_the_end(reactor: ns.Reactor, sock: socket.socket) -> None:
    """Read until the server's end of file, or its reset (a socket closed with unread data)."""
    try:
        while await reactor.loop.sock_recv(sock, 1 << 20):
            pass
    except ConnectionResetError:
        pass


def check_way(spy: Spy, way: str) -> None:
    if way == "splice":
        assert spy.writes == 0, "splice(2) was asked for, os.write was used"
    else:
        assert spy.splices == 0 and spy.writes > 0, "os.write was asked for"


@pytest.mark.parametrize("size", [0, 1, 64 * KiB - 1, 10 * MiB + 7])
async def test_the_file_gets_exactly_what_was_sent(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str, size: int
) -> None:
    spy = Spy(monkeypatch, way)
    spy.fd = out
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    data = payload(size)
    await reactor.loop.sock_sendall(sock, data)
    sock.shutdown(socket.SHUT_WR)
    [count] = await receiver.outcome
    assert count == size
    assert receiver.transport.bytes_received == size
    assert contents(out) == digest(data)
    # reading is the transport's again: the end of file reaches the protocol, which closes
    await receiver.eof
    assert await reactor.loop.sock_recv(sock, 1) == b""
    await receiver.lost
    assert receiver.after == []
    if size:
        check_way(spy, way)
    sock.close()
    await listener.close()


async def test_count_bytes_go_to_the_file_and_the_rest_to_the_protocol(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    spy = Spy(monkeypatch, way)
    spy.fd = out
    count = 3 * MiB + 3
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out, count=count))
    data = payload(count + 100 * KiB + 1)
    await reactor.loop.sock_sendall(sock, data)
    sock.shutdown(socket.SHUT_WR)
    [n] = await receiver.outcome
    assert n == count
    await receiver.eof
    assert contents(out) == digest(data[:count])
    assert digest(b"".join(receiver.after)) == digest(data[count:])
    assert receiver.transport.bytes_received == len(data)
    check_way(spy, way)
    sock.close()
    await listener.close()


async def test_bytes_the_protocol_got_first_are_its_own_to_write(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    """The documented way: a protocol that got data before the call writes it itself."""
    Spy(monkeypatch, way).fd = out

    class HeaderThenFile(Receiver):
        def data_received(self, data: bytes) -> None:
            if self.receiving is None:
                header, _, body = data.partition(b"\n")
                assert header == b"HEADER"
                os.write(self.factory.fd, body)
                self.first = len(body)
                self.start()
            else:
                self.after.append(data)

    factory = ReceiverFactory(out, start=False)
    factory.protocol = HeaderThenFile
    listener, sock, receiver = await serve(reactor, factory)
    data = payload(2 * MiB + 1)
    await reactor.loop.sock_sendall(sock, b"HEADER\n" + data)
    sock.shutdown(socket.SHUT_WR)
    [n] = await receiver.outcome
    assert contents(out) == digest(data)
    assert n + receiver.first == len(data)  # type: ignore[attr-defined]
    assert receiver.transport.bytes_received == len(data) + 7
    assert receiver.after == []
    sock.close()
    await listener.close()


async def test_a_reset_fails_it_with_the_bytes_so_far_written_and_counted(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    spy = Spy(monkeypatch, way)
    spy.fd = out
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    first = payload(256 * KiB)
    await reactor.loop.sock_sendall(sock, first)
    await spy.when_written(len(first))  # all of it is in the file
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset
    [failure] = await receiver.outcome
    assert isinstance(failure, ns.Failure) and failure.check(ConnectionLost)
    assert f"({len(first)} bytes written)" in str(failure.value)
    assert "ConnectionResetError" in str(failure.value)
    [reason] = await receiver.lost
    assert reason.check(ConnectionLost)
    assert receiver.transport.bytes_received == len(first)
    assert contents(out) == digest(first)
    check_way(spy, way)
    await listener.close()


async def test_a_failed_write_fails_it_with_the_oserror(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    spy = Spy(monkeypatch, way)
    spy.fd = out
    spy.fail_at = 3
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    data = payload(4 * MiB)
    sending = asyncio.ensure_future(reactor.loop.sock_sendall(sock, data))
    [failure] = await receiver.outcome
    assert isinstance(failure, ns.Failure) and failure.check(OSError)
    assert failure.value.errno == errno.ENOSPC
    assert not failure.check(ConnectionLost)
    # the connection is left to the caller: still open, reading handed back to the protocol
    assert receiver.transport.state == "open"
    assert spy.written > 0
    assert contents(out).startswith(f"{spy.written} bytes")
    receiver.transport.abort()
    await receiver.lost
    sending.cancel()
    sock.close()
    await listener.close()


async def test_cancelling_aborts_the_connection(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    spy = Spy(monkeypatch, way)
    spy.fd = out
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    await reactor.loop.sock_sendall(sock, payload(100 * KiB))
    await spy.when_written(100 * KiB)
    assert receiver.receiving is not None
    receiver.receiving.cancel()
    [failure] = await receiver.outcome
    assert failure.check(asyncio.CancelledError, ns.CancelledError)
    [reason] = await receiver.lost
    assert reason.check(ConnectionLost) and "aborted" in str(reason.value)
    await read_to_the_end(reactor, sock)  # the socket is closed, not held open
    sock.close()
    await listener.close()


async def test_closed_by_this_side_it_fails_with_connection_lost(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    spy = Spy(monkeypatch, way)
    spy.fd = out
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    await reactor.loop.sock_sendall(sock, payload(10 * KiB))
    await spy.when_written(10 * KiB)
    receiver.transport.close()
    [failure] = await receiver.outcome
    assert failure.check(ConnectionLost)
    assert "closed while receiving a file (10240 bytes written)" in str(failure.value)
    assert await reactor.loop.sock_recv(sock, 1) == b""  # the socket is closed, not held open
    sock.close()
    await listener.close()


async def test_nothing_is_written_once_close_was_asked_for(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    """close() waits for the write buffer to drain; what arrives meanwhile is not written."""
    spy = Spy(monkeypatch, way)
    spy.fd = out
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    await reactor.loop.sock_sendall(sock, payload(10 * KiB))
    await spy.when_written(10 * KiB)
    pending = payload(8 * MiB)
    receiver.transport.write(pending)  # more than the socket buffers take: the rest waits
    assert receiver.transport.write_buffer_size > 0
    receiver.transport.close()
    await reactor.loop.sock_sendall(sock, payload(64 * KiB))
    await read_to_the_end(reactor, sock)  # the server sends its buffer, then closes
    [failure] = await receiver.outcome
    assert failure.check(ConnectionLost)
    assert spy.written == 10 * KiB
    assert contents(out) == digest(payload(10 * KiB))
    sock.close()
    await listener.close()


async def test_paused_reading_writes_nothing_until_resumed(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    spy = Spy(monkeypatch, way)
    spy.fd = out
    listener, sock, receiver = await serve(
        reactor, ReceiverFactory(out, before=lambda r: r.transport.pause_reading())
    )
    data = payload(MiB + 1)
    await reactor.loop.sock_sendall(sock, data)
    sock.shutdown(socket.SHUT_WR)
    # a round trip through the peer: the data sits in the socket, nobody reads it
    sock2 = socket.socket()
    sock2.setblocking(False)
    await reactor.loop.sock_connect(sock2, ("127.0.0.1", listener.port))
    other = await receiver.factory.accepted.get()
    assert not reads_socket(reactor, receiver), "something reads the paused socket"
    assert spy.written == 0 and not receiver.outcome.called
    receiver.transport.resume_reading()
    [n] = await receiver.outcome
    assert n == len(data) and contents(out) == digest(data)
    check_way(spy, way)
    other.transport.abort()
    sock.close()
    sock2.close()
    await listener.close()


async def test_pause_inside_and_resume(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, way: str
) -> None:
    """pause_reading() while it runs stops the writing; resume_reading() goes on."""
    spy = Spy(monkeypatch, way)
    spy.fd = out
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    first = payload(64 * KiB)
    await reactor.loop.sock_sendall(sock, first)
    await spy.when_written(len(first))
    receiver.transport.pause_reading()
    assert not reads_socket(reactor, receiver), "something reads the paused socket"
    rest = payload(2 * MiB)
    await reactor.loop.sock_sendall(sock, rest)
    sock.shutdown(socket.SHUT_WR)
    assert not receiver.outcome.called
    receiver.transport.resume_reading()
    [n] = await receiver.outcome
    assert n == len(first) + len(rest) and contents(out) == digest(first + rest)
    sock.close()
    await listener.close()


async def test_data_in_observers_see_every_byte(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int
) -> None:
    spy = Spy(monkeypatch, "splice")
    spy.fd = out
    seen: list[bytes] = []

    class Watch:
        def data_in(self, transport: Any, data: bytes, addr: Any) -> None:
            seen.append(bytes(data))

    watch = Watch()
    observe.add_observer(watch)
    try:
        listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
        data = payload(MiB + 5)
        await reactor.loop.sock_sendall(sock, data)
        sock.shutdown(socket.SHUT_WR)
        [n] = await receiver.outcome
    finally:
        observe.remove_observer(watch)
    assert n == len(data) and digest(b"".join(seen)) == digest(data)
    assert contents(out) == digest(data)
    assert spy.splices == 0
    sock.close()
    await listener.close()


async def test_tls_goes_the_write_way(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch, out: int, tmp_path: Path
) -> None:
    spy = Spy(monkeypatch, "splice")
    spy.fd = out
    cert, key, ca = tls.self_signed_files(tmp_path / "server", "localhost")
    factory = ReceiverFactory(out)
    listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
    context = ssl.create_default_context(cafile=str(ca))
    _, writer = await asyncio.open_connection(
        "127.0.0.1", listener.port, ssl=context, server_hostname="localhost"
    )
    receiver = await factory.accepted.get()
    data = payload(3 * MiB + 11)
    writer.write(data)
    await writer.drain()
    writer.close()  # close_notify: the TLS end of file
    [n] = await receiver.outcome
    assert n == len(data) and contents(out) == digest(data)
    assert spy.splices == 0 and spy.writes > 0
    await receiver.lost
    await listener.close()


async def test_a_file_object_without_a_descriptor_is_written_with_its_write(
    reactor: ns.Reactor
) -> None:
    import io

    buf = io.BytesIO()
    factory = ReceiverFactory(0)
    factory.fd = buf  # type: ignore[assignment]
    listener, sock, receiver = await serve(reactor, factory)
    data = payload(300 * KiB + 3)
    await reactor.loop.sock_sendall(sock, data)
    sock.shutdown(socket.SHUT_WR)
    [n] = await receiver.outcome
    assert n == len(data) and digest(buf.getvalue()) == digest(data)
    sock.close()
    await listener.close()


async def test_misuse(reactor: ns.Reactor, out: int) -> None:
    listener, sock, receiver = await serve(reactor, ReceiverFactory(out))
    t = receiver.transport
    with pytest.raises(ValueError):
        t.receive_file(out, -1)
    busy = t.receive_file(out)
    busy.add_errback(lambda f: f)
    assert isinstance(busy.result, ns.Failure) and busy.result.check(RuntimeError)
    receiver.receiving.cancel()  # type: ignore[union-attr]
    await receiver.outcome
    await receiver.lost
    assert t.receive_file(out, 0).result == 0
    closed = t.receive_file(out)
    closed.add_errback(lambda f: f)
    assert closed.result.check(ConnectionLost)
    sock.close()
    await listener.close()
