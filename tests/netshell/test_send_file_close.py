"""StreamTransport.send_file on the native path (asyncio's loop.sendfile) when the
connection ends part-way: closed or aborted by the server, or dropped by the client.

The server sends a large file to a client that reads a little and then stops reading, so
the transfer stalls with most of the file unsent. Then the connection ends. Expected: the
send_file Deferred fails cleanly with a ConnectionClosed, nothing is logged at ERROR, the
loop's exception handler is never called (asyncio reports its own errors, and "Task was
destroyed but it is pending!", through it), and ``bytes_sent`` counts exactly the bytes
that went out: the client, reading to the end, receives just that many.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from netshell.errors import ConnectionClosed
from protocols import http

HEADER = b"HEADER\r\n"
SIZE = 48 * 1024 * 1024 + 5  # far more than loopback's socket buffers hold


@pytest.fixture
def big_path(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(SIZE)  # a sparse file: sendfile reads zeros, quickly
    return path


@pytest.fixture
def loop_errors(reactor: ns.Reactor) -> list[dict[str, Any]]:
    """What reaches the loop's exception handler (recorded, never printed)."""
    calls: list[dict[str, Any]] = []
    reactor.loop.set_exception_handler(lambda loop, context: calls.append(context))
    return calls


class Sender(ns.Protocol):
    """Writes HEADER, then sends its factory's file; ``sent`` fires with ``[outcome]`` (the
    number of bytes sent, or a Failure)."""

    def __init__(self) -> None:
        self.sent: ns.Deferred[Any] = ns.Deferred()
        self.lost: ns.Deferred[Any] = ns.Deferred()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(HEADER + self.factory.preamble)
        d = transport.send_file(self.factory.file)
        d.add_both(lambda outcome: self.sent.callback([outcome]))  # a Failure kept as a value
        self.factory.senders.put(self)

    def connection_lost(self, reason: Any) -> None:
        self.reason = reason
        self.lost.callback(None)


class SenderFactory(ns.Factory):
    protocol = Sender

    def __init__(self, file: Any, preamble: bytes = b"") -> None:
        self.file = file
        self.preamble = preamble
        self.senders: ns.DeferredQueue[Sender] = ns.DeferredQueue()


async def stalled_client(loop: asyncio.AbstractEventLoop, port: int, first: int) -> socket.socket:
    """A client socket with a small receive buffer that reads ``first`` bytes and stops."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    got = 0
    while got < first:
        data = await loop.sock_recv(sock, first - got)
        assert data
        got += len(data)
    return sock


async def read_to_end(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> int:
    got = 0
    while True:
        try:
            data = await loop.sock_recv(sock, 1024 * 1024)
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += len(data)


async def settle(reactor: ns.Reactor) -> None:
    """Let callbacks run out (loop turns, each polling the sockets once), then collect
    garbage (a pending task destroyed is reported)."""
    for _ in range(20):
        await ns.sleep(0)
    gc.collect()
    await ns.sleep(0)


async def stalled_transfer(
    reactor: ns.Reactor, path: Path, preamble: bytes = b""
) -> tuple[Any, Sender, socket.socket]:
    f = open(path, "rb")  # noqa: SIM115 (closed by the test, after the transfer)
    factory = SenderFactory(f, preamble)
    listener = reactor.listen_tcp(0, factory, interface="127.0.0.1")
    sock = await stalled_client(reactor.loop, listener.port, len(HEADER) + 64 * 1024)
    # The client has read file bytes (or, with a preamble, waits in it): the transfer is
    # under way, and cannot end while the client reads no more.
    sender = await factory.senders.get()
    assert not sender.sent.called
    return f, sender, sock


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_ending_the_connection_mid_sendfile_fails_the_deferred_quietly(
    reactor: ns.Reactor,
    big_path: Path,
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    caplog.set_level(logging.ERROR)
    f, sender, sock = await stalled_transfer(reactor, big_path)
    transport = sender.transport
    try:
        getattr(transport, how)()
        (outcome,) = await asyncio.wait_for(sender.sent.as_future(), 5)
        assert isinstance(outcome, ns.Failure)
        assert isinstance(outcome.value, ConnectionClosed)
        assert "while sending a file" in str(outcome.value)
        await asyncio.wait_for(sender.lost.as_future(), 5)
        received = len(HEADER) + 64 * 1024 + await read_to_end(reactor.loop, sock)
    finally:
        sock.close()
        f.close()
    await settle(reactor)
    assert loop_errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Counted exactly: what the kernel took, which the client received.
    assert len(HEADER) < transport.bytes_sent < len(HEADER) + SIZE
    assert received == transport.bytes_sent


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_ending_the_connection_while_written_bytes_wait_before_the_file(
    reactor: ns.Reactor,
    big_path: Path,
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    # More written before the file than the socket buffers take: the file waits for the
    # write buffer to empty (asyncio's "empty waiter", which a close used to break).
    caplog.set_level(logging.ERROR)
    preamble = b"p" * (16 * 1024 * 1024)
    f, sender, sock = await stalled_transfer(reactor, big_path, preamble)
    transport = sender.transport
    assert transport.write_buffer_size > 0
    try:
        getattr(transport, how)()
        (outcome,) = await asyncio.wait_for(sender.sent.as_future(), 5)
        assert isinstance(outcome, ns.Failure)
        assert isinstance(outcome.value, ConnectionClosed)
        assert "(0 of " in str(outcome.value)
        received = len(HEADER) + 64 * 1024 + await read_to_end(reactor.loop, sock)
        await asyncio.wait_for(sender.lost.as_future(), 5)
    finally:
        sock.close()
        f.close()
    await settle(reactor)
    assert loop_errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert transport.bytes_sent == len(HEADER) + len(preamble)  # the file: nothing
    if how == "close":
        assert received == transport.bytes_sent  # what was written went out, then the end


async def test_the_client_going_away_mid_sendfile_fails_the_deferred_quietly(
    reactor: ns.Reactor,
    big_path: Path,
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    f, sender, sock = await stalled_transfer(reactor, big_path)
    try:
        # Unread data in its buffer: closing sends a reset.
        sock.close()
        (outcome,) = await asyncio.wait_for(sender.sent.as_future(), 5)
        assert isinstance(outcome, ns.Failure)
        assert isinstance(outcome.value, ConnectionClosed)
        sender.transport.abort()
        await asyncio.wait_for(sender.lost.as_future(), 5)
    finally:
        f.close()
    await settle(reactor)
    assert loop_errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert len(HEADER) < sender.transport.bytes_sent < len(HEADER) + SIZE


async def test_bytes_sent_grows_while_the_file_is_sent(
    reactor: ns.Reactor, big_path: Path, loop_errors: list[dict[str, Any]]
) -> None:
    f, sender, sock = await stalled_transfer(reactor, big_path)
    transport = sender.transport
    try:
        # Read the rest: the count grows before the Deferred fires with the file's size...
        received = len(HEADER) + 64 * 1024
        counts = set()
        while received < len(HEADER) + SIZE:
            data = await reactor.loop.sock_recv(sock, 1024 * 1024)
            assert data
            received += len(data)
            if not sender.sent.called:
                counts.add(transport.bytes_sent)
        assert len({n for n in counts if len(HEADER) < n < len(HEADER) + SIZE}) > 3
        # ... and ends exact.
        assert await sender.sent == [SIZE]
        transport.close()
        received += await read_to_end(reactor.loop, sock)
        assert transport.bytes_sent == len(HEADER) + SIZE == received
    finally:
        sock.close()
        f.close()
    await settle(reactor)
    assert loop_errors == []


async def test_http_server_closing_a_connection_mid_sendfile_logs_no_error(
    reactor: ns.Reactor,
    tmp_path: Path,
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    root = tmp_path / "www"
    root.mkdir()
    with open(root / "big.bin", "wb") as out:
        out.truncate(SIZE)
    listener = http.serve(root, port=0)
    sock = await stalled_client(reactor.loop, listener.port, 0)
    try:
        await reactor.loop.sock_sendall(sock, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += await reactor.loop.sock_recv(sock, 1)
        assert head.startswith(b"HTTP/1.1 200")
        body = 0
        while body < 64 * 1024:  # file bytes arrive: the sendfile is under way
            data = await reactor.loop.sock_recv(sock, 64 * 1024 - body)
            assert data
            body += len(data)
        (conn,) = listener.connections
        conn.close()
        await read_to_end(reactor.loop, sock)
    finally:
        sock.close()
    await settle(reactor)
    assert conn.lost
    assert loop_errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert len(head) < conn.bytes_sent < len(head) + SIZE


def test_reactor_close_mid_sendfile_leaves_nothing_pending(big_path: Path) -> None:
    # Reactor.close() with the loop stopped (a test's teardown, a program leaving): the
    # transfer ends and its Deferred fails within the loop's last turns, nothing reported.
    from netshell.reactor import Reactor

    r = Reactor()
    errors: list[dict[str, Any]] = []
    r.loop.set_exception_handler(lambda loop, context: errors.append(context))
    with open(big_path, "rb") as f:
        factory = SenderFactory(f)
        listener = r.listen_tcp(0, factory, interface="127.0.0.1")

        async def start() -> tuple[Sender, socket.socket]:
            sock = await stalled_client(r.loop, listener.port, len(HEADER) + 64 * 1024)
            return await factory.senders.get(), sock  # file bytes arrived: under way

        sender, sock = r.run_until(start())
        try:
            assert not sender.sent.called
            r.close()
        finally:
            sock.close()
    gc.collect()
    assert errors == []
    (outcome,) = sender.sent.result
    assert isinstance(outcome.value, ConnectionClosed)
