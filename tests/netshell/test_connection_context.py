"""A connection's work runs in the context (contextvars) of the code that made it.

In a Jupyter kernel the cell a piece of output belongs to is a context variable, and
asyncio's handles copy the context current when they are made. So whatever a transport
schedules or registers on the loop on behalf of its protocol must be made in the
connection's own context (the listener's maker's, or the connecting code's), not in
that of the code that happens to close it, pause and resume it, write to it or fire a
Deferred its protocol waits on. Each test below sets a variable around ``listen`` or
``connect`` ("cell 1") and does the rest from other contexts ("cell 2", "cell 3"), on
real sockets; the loop's own default (no cell) is "none".
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

import netshell as ns
from netshell.socket_io import SocketIO
from netshell.testing import Clock, StringTransport
from protocols import http

WAIT = 10  # seconds: a bound for waits that should end at once

cell: contextvars.ContextVar[str] = contextvars.ContextVar("cell", default="none")


def in_cell(name: str, f: Callable[..., Any], *args: Any) -> Any:
    """Run ``f(*args)`` in a fresh context where ``cell`` is ``name`` (as a kernel runs a cell)."""

    def run() -> Any:
        cell.set(name)
        return f(*args)

    return contextvars.copy_context().run(run)


class Notes:
    """What a protocol saw, each with the cell it ran in; ``when(n)`` fires once n are in."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._waiting: list[tuple[int, ns.Deferred[list[tuple[str, str]]]]] = []

    def add(self, what: str) -> None:
        self.seen.append((what, cell.get()))
        for n, d in list(self._waiting):
            if len(self.seen) >= n:
                self._waiting.remove((n, d))
                d.callback(self.seen[:n])

    def when(self, n: int) -> ns.Deferred[list[tuple[str, str]]]:
        d: ns.Deferred[list[tuple[str, str]]] = ns.Deferred()
        if len(self.seen) >= n:
            d.callback(self.seen[:n])
        else:
            self._waiting.append((n, d))
        return d.add_timeout(WAIT)


def noting(notes: Notes) -> type[ns.Protocol]:
    class Noting(ns.Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            notes.add("made")

        def data_received(self, data: bytes) -> None:
            notes.add(f"data {data.decode()}")

        def connection_lost(self, reason: ns.Failure) -> None:
            notes.add(f"lost {reason.type.__name__}")

    return Noting


async def listening(reactor: Any, notes: Notes) -> Any:
    """A listener started in "cell 1", and a plain socket connected to it."""
    factory = ns.Factory.for_protocol(noting(notes))
    listener = await in_cell("cell 1", reactor.listen_tcp, 0, factory)
    client = socket.socket()
    client.setblocking(False)
    await reactor.loop.sock_connect(client, ("127.0.0.1", listener.port))
    await notes.when(1)
    return listener, client


async def connected(reactor: Any, notes: Notes) -> Any:
    """A connection made from "cell 1" to a plain listening socket: (transport, server side)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    factory = ns.ClientFactory.for_protocol(noting(notes))
    protocol = await in_cell("cell 1", reactor.connect_tcp, "127.0.0.1",
                             server.getsockname()[1], factory).add_timeout(WAIT)
    peer, _ = await reactor.loop.sock_accept(server)
    server.close()
    await notes.when(1)
    return protocol.transport, peer


# ---- accepted connections (the listener's SocketIO on asyncio's loop)


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_connection_lost_after_a_close_from_elsewhere_is_the_listeners(reactor, how):
    notes = Notes()
    listener, client = await listening(reactor, notes)
    try:
        (t,) = listener.connections
        in_cell("cell 2", getattr(t, how))
        lost = "ConnectionDone" if how == "close" else "ConnectionLost"
        assert await notes.when(2) == [("made", "cell 1"), (f"lost {lost}", "cell 1")]
    finally:
        client.close()
        await listener.close()


async def test_data_after_a_pause_and_a_resume_from_elsewhere_is_the_listeners(reactor):
    notes = Notes()
    listener, client = await listening(reactor, notes)
    try:
        (t,) = listener.connections
        in_cell("cell 2", t.pause_reading)
        await reactor.loop.sock_sendall(client, b"a")
        in_cell("cell 3", t.resume_reading)
        assert await notes.when(2) == [("made", "cell 1"), ("data a", "cell 1")]
        await reactor.loop.sock_sendall(client, b"b")  # and what comes after
        assert (await notes.when(3))[2] == ("data b", "cell 1")
    finally:
        client.close()
        await listener.close()


async def test_data_held_while_paused_is_delivered_in_the_listeners_context(reactor):
    # receive_file takes the first byte; the rest of the same read comes after its
    # Deferred has fired, whose callback paused reading: the transport holds it, and a
    # call it schedules on the resume hands it over.
    notes = Notes()
    listener, client = await listening(reactor, notes)
    try:
        (t,) = listener.connections
        file = io.BytesIO()  # no fileno(): written the os.write way, as the bytes come
        got = in_cell("cell 2", t.receive_file, file, 1)
        got.add_callback(lambda n: (t.pause_reading(), n)[1])
        await reactor.loop.sock_sendall(client, b"ab")
        assert await got.add_timeout(WAIT) == 1
        assert file.getvalue() == b"a" and notes.seen == [("made", "cell 1")]  # b is held
        in_cell("cell 3", t.resume_reading)
        assert await notes.when(2) == [("made", "cell 1"), ("data b", "cell 1")]
    finally:
        client.close()
        await listener.close()


async def test_a_pull_producer_registered_from_elsewhere_is_asked_in_the_listeners_context(
        reactor):
    notes = Notes()
    listener, client = await listening(reactor, notes)
    try:
        (t,) = listener.connections

        class Once:
            def resume_producing(self) -> None:
                notes.add("produce")
                t.unregister_producer()

            def pause_producing(self) -> None:
                pass

            def stop_producing(self) -> None:
                pass

        in_cell("cell 2", t.register_producer, Once(), False)
        assert await notes.when(2) == [("made", "cell 1"), ("produce", "cell 1")]
    finally:
        client.close()
        await listener.close()


async def test_a_file_sent_from_elsewhere_is_the_connections_work(reactor, tmp_path):
    # send_file from "cell 2": its Deferred fires, and reading goes on after it, in the
    # connection's context.
    notes = Notes()
    listener, client = await listening(reactor, notes)
    path = tmp_path / "file"
    path.write_bytes(b"f" * 100_000)
    try:
        (t,) = listener.connections
        with path.open("rb") as file:
            sent = in_cell("cell 2", t.send_file, file)
            sent.add_callback(lambda n: notes.add(f"sent {n}"))

            async def receive() -> None:
                got = 0
                while got < 100_000:
                    got += len(await reactor.loop.sock_recv(client, 65536))

            await asyncio.wait_for(receive(), WAIT)
            assert await notes.when(2) == [("made", "cell 1"), ("sent 100000", "cell 1")]
        await reactor.loop.sock_sendall(client, b"a")
        assert (await notes.when(3))[2] == ("data a", "cell 1")
    finally:
        client.close()
        await listener.close()


async def test_a_transports_in_context_runs_in_the_listeners_context(reactor):
    notes = Notes()
    listener, client = await listening(reactor, notes)
    try:
        (t,) = listener.connections

        def note(what: str) -> str:
            notes.add(what)
            cell.set("changed inside")  # in a copy: the connection's own is left alone
            return what

        wrapped = t.in_context(note)
        assert wrapped.__name__ == "note"
        assert in_cell("cell 2", wrapped, "wrapped") == "wrapped"
        wrapped("again")  # from outside any cell, twice: each call in a fresh copy
        in_cell("cell 2", t.abort)
        assert await notes.when(4) == [("made", "cell 1"), ("wrapped", "cell 1"),
                                       ("again", "cell 1"), ("lost ConnectionLost", "cell 1")]
    finally:
        client.close()
        await listener.close()


def test_a_string_transport_keeps_its_makers_context_too():
    t = in_cell("cell 1", StringTransport)
    assert in_cell("cell 2", t.in_context(cell.get)) == "cell 1"


async def test_socket_io_calls_its_protocol_in_its_makers_context(reactor):
    # SocketIO alone, under a plain asyncio protocol: its reader on resume, its writer
    # (made when a write fills the kernel's buffer) and its call of connection_lost.
    notes = Notes()

    class Plain(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            notes.add("made")

        def data_received(self, data: bytes) -> None:
            notes.add(f"data {data.decode()}")

        def pause_writing(self) -> None:
            pass  # in the writer's own context: the one that wrote

        def resume_writing(self) -> None:
            notes.add("resume writing")

        def connection_lost(self, exc: BaseException | None) -> None:
            notes.add("lost")

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    try:
        io = in_cell("cell 1", SocketIO, reactor.loop, ours, Plain())
        in_cell("cell 2", io.pause_reading)
        await reactor.loop.sock_sendall(theirs, b"a")
        in_cell("cell 3", io.resume_reading)
        assert (await notes.when(2))[1] == ("data a", "cell 1")
        in_cell("cell 2", io.write, b"x" * (8 * 1024 * 1024))  # more than the kernel takes

        async def drain() -> None:
            while io.get_write_buffer_size():
                await reactor.loop.sock_recv(theirs, 1024 * 1024)

        await asyncio.wait_for(drain(), WAIT)
        assert (await notes.when(3))[2] == ("resume writing", "cell 1")
        in_cell("cell 2", io.close)
        assert (await notes.when(4))[3] == ("lost", "cell 1")
    finally:
        theirs.close()


async def test_a_tls_deadline_set_from_elsewhere_runs_in_the_listeners_context(
        reactor, tmp_path, monkeypatch):
    # start_tls from "cell 2", and a peer that never answers: the handshake's deadline
    # fails it, in the connection's context (the Deferred, the log, the loss).
    from netshell import tls
    from netshell import transport as transport_module

    monkeypatch.setattr(transport_module, "TLS_HANDSHAKE_TIMEOUT", 0.05)
    cert, key, _ = tls.self_signed_files(tmp_path / "server", "localhost")
    notes = Notes()
    listener, client = await listening(reactor, notes)
    try:
        (t,) = listener.connections
        started = in_cell("cell 2", t.start_tls, tls.server_context(cert, key))
        started.add_errback(lambda f: notes.add(f"tls {f.type.__name__}"))
        assert await notes.when(3) == [("made", "cell 1"), ("tls HandshakeFailed", "cell 1"),
                                       ("lost ConnectionLost", "cell 1")]
    finally:
        client.close()
        await listener.close()


# ---- connections made with connect (asyncio's own transport)


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_a_client_connection_closed_from_elsewhere_is_lost_in_its_makers_context(
        reactor, how):
    notes = Notes()
    t, peer = await connected(reactor, notes)
    try:
        in_cell("cell 2", getattr(t, how))
        lost = "ConnectionDone" if how == "close" else "ConnectionLost"
        assert await notes.when(2) == [("made", "cell 1"), (f"lost {lost}", "cell 1")]
    finally:
        peer.close()


async def test_a_client_connection_resumed_from_elsewhere_reads_in_its_makers_context(reactor):
    notes = Notes()
    t, peer = await connected(reactor, notes)
    try:
        in_cell("cell 2", t.pause_reading)
        await reactor.loop.sock_sendall(peer, b"a")
        in_cell("cell 3", t.resume_reading)
        assert await notes.when(2) == [("made", "cell 1"), ("data a", "cell 1")]
    finally:
        t.abort()
        peer.close()


async def test_a_write_error_from_elsewhere_loses_the_connection_in_its_makers_context(reactor):
    notes = Notes()
    t, peer = await connected(reactor, notes)
    t.pause_reading()  # the reset is found by the write below, not by a read
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # a reset
    in_cell("cell 2", t.write, b"x" * 65536)
    assert await notes.when(2) == [("made", "cell 1"), ("lost ConnectionLost", "cell 1")]


# ---- HTTP: a handler that answers with a Deferred another context fires


async def test_an_http_answer_fired_from_elsewhere_goes_on_in_the_listeners_context(reactor):
    waiting: list[ns.Deferred[str]] = []  # the handler's answer, once it is asked
    asked: ns.Deferred[None] = ns.Deferred()
    handled: list[tuple[str, str]] = []
    app = http.App()

    @app.route("/later")
    def later(request: Any) -> ns.Deferred[str]:
        handled.append(("/later", cell.get()))
        d: ns.Deferred[str] = ns.Deferred()
        waiting.append(d)
        asked.callback(None)
        return d

    @app.route("/now")
    def now(request: Any) -> str:
        handled.append(("/now", cell.get()))
        return "now"

    class CellOfRecord(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[tuple[str, str]] = []
            self.two: ns.Deferred[None] = ns.Deferred()

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append((record.getMessage().split('"')[1], cell.get()))
            if len(self.records) == 2:
                self.two.callback(None)

    access = logging.getLogger("netshell.http.access")
    handler = CellOfRecord()
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    listener = await in_cell("cell 1", http.serve, app)
    client = socket.socket()
    client.setblocking(False)
    try:
        await reactor.loop.sock_connect(client, ("127.0.0.1", listener.port))
        # Pipelined: /now waits behind /later, and is answered once /later is.
        await reactor.loop.sock_sendall(
            client, b"GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /now HTTP/1.1\r\nHost: x\r\n\r\n")
        await asked.add_timeout(WAIT)
        in_cell("cell 2", waiting[0].callback, "later")
        await handler.two.add_timeout(WAIT)
        assert handled == [("/later", "cell 1"), ("/now", "cell 1")]
        assert handler.records == [("GET /later HTTP/1.1", "cell 1"),
                                   ("GET /now HTTP/1.1", "cell 1")]
        got = b""
        while got.count(b"HTTP/1.1 200") < 2:
            got += await reactor.loop.sock_recv(client, 65536)
        assert b"later" in got and got.endswith(b"now")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
        client.close()
        await listener.close()


# ---- FTP: a password checker that answers with a Deferred another context fires


class CellOfRecords(logging.Handler):
    """Each record of a logger, with the cell it was made in (as a kernel routes it)."""

    def __init__(self, logger: str, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.logger = logging.getLogger(logger)
        self.records: list[tuple[str, str, str]] = []  # (logger, message, cell)

    def __enter__(self) -> CellOfRecords:
        self.level_was = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_was)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.getMessage(), cell.get()))


async def test_an_ftp_login_checked_elsewhere_goes_on_in_the_listeners_context(
        reactor, tmp_path):
    from protocols import ftp

    checks: list[ns.Deferred[bool]] = []
    asked: ns.Deferred[None] = ns.Deferred()

    def checker(name: str, password: str) -> ns.Deferred[bool]:
        d: ns.Deferred[bool] = ns.Deferred()
        checks.append(d)
        asked.callback(None)
        return d

    listener = in_cell("cell 1", lambda: ftp.serve(str(tmp_path), users=checker,
                                                  anonymous=False))
    client = socket.socket()
    client.setblocking(False)

    async def reply() -> bytes:
        got = b""
        while not (got.endswith(b"\r\n") and got.splitlines()[-1][3:4] == b" "):
            got += await reactor.loop.sock_recv(client, 4096)
        return got

    try:
        with CellOfRecords("netshell.ftp") as records:
            await reactor.loop.sock_connect(client, ("127.0.0.1", listener.port))
            assert (await asyncio.wait_for(reply(), WAIT)).startswith(b"220")
            await reactor.loop.sock_sendall(client, b"USER alice\r\nPASS secret\r\n")
            assert (await asyncio.wait_for(reply(), WAIT)).startswith(b"331")
            await asyncio.wait_for(asked.as_future(), WAIT)
            in_cell("cell 2", checks[0].callback, True)
            assert (await asyncio.wait_for(reply(), WAIT)).startswith(b"230")
            (logged_in,) = [r for r in records.records if "logged in" in r[1]]
            assert logged_in[2] == "cell 1", logged_in
    finally:
        client.close()
        await listener.close()


# ---- IRC: a bot's command, and a client's event handler, answering with a Deferred


def test_irc_work_answered_elsewhere_is_logged_in_the_connections_context():
    from protocols.irc.bot import Bot
    from protocols.irc.client import IRCClient, _IRCProtocol

    bot = Bot("bot")
    later: ns.Deferred[str] = ns.Deferred()
    handled: ns.Deferred[None] = ns.Deferred()
    bot.command("later")(lambda ctx: later)
    client = IRCClient("bot", clock=Clock(), rate=None)
    client.add_listener("message", lambda event: handled)
    protocol = _IRCProtocol(client)
    transport = in_cell("cell 1", StringTransport)  # the connection, made in cell 1
    protocol.connection_made(transport)
    protocol.data_received(b":s 001 bot :hi\r\n:s 376 bot :end\r\n")
    bot.client = client
    client.add_listener("message", bot._on_message)
    with CellOfRecords("netshell.irc", logging.ERROR) as records:
        protocol.data_received(b":u!u@h PRIVMSG #c :!later\r\n")
        in_cell("cell 2", later.errback, RuntimeError("no answer"))
        in_cell("cell 2", handled.errback, RuntimeError("no event"))
    # each failure logged once (by the bot, by the client), as cell 1's
    assert [(name, c) for name, _, c in records.records] == [
        ("netshell.irc.bot", "cell 1"), ("netshell.irc.client", "cell 1")]


# ---- UDP


async def test_a_datagram_transport_closed_from_elsewhere_is_lost_in_its_makers_context(
        reactor):
    lost: ns.Deferred[str] = ns.Deferred()

    class Quiet(ns.DatagramProtocol):
        def connection_lost(self, reason: ns.Failure) -> None:
            lost.callback(cell.get())

    listener = in_cell("cell 1", reactor.listen_udp, 0, Quiet())
    in_cell("cell 2", listener.transport.close)
    assert await lost.add_timeout(WAIT) == "cell 1"
    assert in_cell("cell 2", listener.transport.in_context(cell.get)) == "cell 1"
