"""Faults and timeouts: slow heads and bodies (slowloris), idle keep-alive connections,
clients that vanish mid-body or mid-response, pipelining pressure, 1,000 clients at once.

Timeouts are shown twice: in memory under virtual time (a Clock as the server's reactor,
a StringTransport as its connection), to the second, and on real sockets with small
values. Tests wait on the server's own connection_lost (WatchedProtocol), never on a
sleep.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from http_raw_client import RawClient, get_request

import netshell as ns
from netshell.testing import Clock, StringTransport
from protocols import http
from protocols.http import App, Limits, Request, Response
from protocols.http.server import HTTPServerFactory, HTTPServerProtocol


class WatchedProtocol(HTTPServerProtocol):
    """An HTTPServerProtocol that tells its factory when its connection is gone."""

    def connection_lost(self, reason: ns.Failure) -> None:
        super().connection_lost(reason)
        self.factory.gone.put(reason.type)  # a Failure itself would fire the getter's errback


class WatchedFactory(HTTPServerFactory):
    def __init__(self, handler: Any, **kw: Any) -> None:
        super().__init__(handler, **kw)
        self.gone: ns.DeferredQueue[type] = ns.DeferredQueue()

    def build_protocol(self, addr: Any) -> WatchedProtocol:
        p = WatchedProtocol(self)
        p.factory = self
        return p


def watched(handler: Any, **kw: Any) -> tuple[ns.Listener, WatchedFactory]:
    factory = WatchedFactory(handler, **kw)
    return ns.reactor.listen_tcp(0, factory), factory


def in_memory(handler: Any, clock: Clock, **kw: Any) -> tuple[HTTPServerProtocol, StringTransport]:
    """A server protocol on a StringTransport, its timers on ``clock``."""
    factory = HTTPServerFactory(handler, reactor=clock, **kw)
    protocol = factory.build_protocol(None)
    transport = StringTransport()
    protocol.connection_made(transport)
    return protocol, transport


def app() -> App:
    a = App()
    a.add_route("/", lambda request: "root")

    @a.route("/echo", methods=["POST"])
    def echo(request: Request) -> bytes:
        return request.body

    return a


# ---- timeouts under virtual time


def test_slowloris_one_byte_a_second_gets_408_at_the_header_timeout(clock: Clock) -> None:
    protocol, transport = in_memory(app(), clock, header_timeout=10)
    head = get_request("/", "X-Padding: " + "p" * 100)
    sent = 0
    while not transport.eof_written and sent < len(head):
        protocol.data_received(head[sent : sent + 1])
        sent += 1
        clock.advance(1)
    # Ten bytes in ten seconds: the timer ran from the first byte, and bytes never reset it.
    assert (sent, clock.seconds()) == (10, 10)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close\r\n" in transport.value()


def test_after_the_408_the_connection_lingers_then_is_dropped(clock: Clock) -> None:
    protocol, transport = in_memory(app(), clock, header_timeout=10)
    protocol.data_received(b"GET / HT")
    clock.advance(10)
    assert transport.eof_written and not transport.closed
    clock.advance(2)  # linger_timeout
    assert transport.aborted


def test_a_head_that_completes_in_time_is_served(clock: Clock) -> None:
    protocol, transport = in_memory(app(), clock, header_timeout=10)
    head = get_request("/")
    for byte in head[:-1]:
        protocol.data_received(bytes([byte]))
    clock.advance(9.5)
    protocol.data_received(head[-1:])
    clock.advance(5)
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert not transport.closed


def test_a_new_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    clock: Clock,
) -> None:
    _, transport = in_memory(app(), clock, header_timeout=10, keep_alive_timeout=60)
    clock.advance(9.9)
    assert not transport.closed
    clock.advance(0.1)
    assert transport.closed
    assert transport.value() == b""


def test_an_idle_keep_alive_connection_is_closed_quietly(clock: Clock) -> None:
    protocol, transport = in_memory(app(), clock, keep_alive_timeout=15)
    clock.advance(3)
    protocol.data_received(get_request("/"))
    transport.clear()
    clock.advance(14.9)
    assert not transport.closed
    clock.advance(0.1)
    assert transport.closed and transport.value() == b""


def test_each_request_restarts_the_idle_timeout(clock: Clock) -> None:
    protocol, transport = in_memory(app(), clock, keep_alive_timeout=15)
    for _ in range(10):
        protocol.data_received(get_request("/"))
        clock.advance(14)
    assert not transport.closed
    assert transport.value().count(b"HTTP/1.1 200 OK") == 10


def test_a_stalled_body_gets_408_after_the_body_timeout(clock: Clock) -> None:
    protocol, transport = in_memory(app(), clock, body_timeout=30)
    protocol.data_received(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
    clock.advance(20)
    protocol.data_received(b"cd")  # progress: the body timeout starts again
    clock.advance(29)
    assert transport.value() == b""
    clock.advance(1)
    assert transport.value().startswith(b"HTTP/1.1 408 ")


def test_no_timeout_while_the_handler_works(clock: Clock) -> None:
    gate: ns.Deferred[str] = ns.Deferred()
    protocol, transport = in_memory(
        lambda request: gate, clock, header_timeout=1, keep_alive_timeout=1, body_timeout=1
    )
    protocol.data_received(get_request("/"))
    clock.advance(100)
    assert not transport.closed
    gate.callback("done at last")
    assert transport.value().endswith(b"done at last")


# ---- pipelining pressure, in memory


def test_reading_pauses_when_too_many_requests_wait_and_resumes_after(clock: Clock) -> None:
    gate: ns.Deferred[str] = ns.Deferred()
    calls: list[str] = []

    def handler(request: Request) -> Any:
        calls.append(request.path)
        return gate if request.path == "/slow" else request.path

    protocol, transport = in_memory(handler, clock, max_pipeline=4)
    protocol.data_received(get_request("/slow"))
    for i in range(3):
        protocol.data_received(get_request(f"/{i}"))
        assert not transport.reading_paused
    protocol.data_received(get_request("/3"))
    assert transport.reading_paused  # four wait behind /slow
    gate.callback("slow")
    assert not transport.reading_paused
    assert calls == ["/slow", "/0", "/1", "/2", "/3"]
    bodies = [
        part.rsplit(b"\r\n\r\n", 1)[-1][:5] for part in transport.value().split(b"HTTP/1.1 ")[1:]
    ]
    assert bodies == [b"slow", b"/0", b"/1", b"/2", b"/3"]


def test_a_client_that_does_not_read_stops_the_serving_of_pipelined_requests(
    clock: Clock,
) -> None:
    calls: list[str] = []

    def handler(request: Request) -> str:
        calls.append(request.path)
        return "x" * 1000

    protocol, _ = in_memory(handler, clock)
    protocol.pause_producing()  # the transport's write buffer is full
    protocol.data_received(get_request("/a") + get_request("/b"))
    assert calls == []
    protocol.resume_producing()
    assert calls == ["/a", "/b"]


def test_reading_pauses_when_queued_bodies_outgrow_max_body(clock: Clock) -> None:
    # Each body is bounded by max_body; so is what one connection makes the server hold.
    answers: list[ns.Deferred[str]] = []

    def handler(request: Request) -> Any:
        if request.method == "GET":
            answers.append(ns.Deferred())
            return answers[-1]  # a slow answer: the POSTs behind it wait
        return f"got {len(request.body)}"

    protocol, transport = in_memory(handler, clock, limits=Limits(max_body=100))
    post = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 60\r\n\r\n" + b"x" * 60
    protocol.data_received(get_request("/slow") + post)
    assert not transport.reading_paused  # 60 bytes held
    protocol.data_received(post)
    assert transport.reading_paused  # 120 > max_body
    answers[0].callback("slow")
    assert not transport.reading_paused
    assert transport.value().count(b"got 60") == 2


def test_a_body_paused_by_the_server_does_not_time_out(clock: Clock) -> None:
    answers: list[ns.Deferred[str]] = []

    def handler(request: Request) -> Any:
        answers.append(ns.Deferred())
        return answers[-1]

    protocol, transport = in_memory(handler, clock, limits=Limits(max_body=100), body_timeout=10)
    protocol.data_received(get_request("/slow"))
    head = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
    protocol.data_received(head + b"x" * 99)
    # 99 bytes held behind a busy answer: under max_body, still reading
    assert not transport.reading_paused
    protocol.data_received(b"y")  # the body is complete: 100 held, not over
    protocol.data_received(head + b"z" * 50)  # 150 held now: reading pauses mid-body
    assert transport.reading_paused
    clock.advance(60)  # far past body_timeout: the wait is the server's, no 408
    assert b"408" not in transport.value()
    answers[0].callback("done")
    assert not transport.reading_paused
    clock.advance(9)
    assert b"408" not in transport.value()
    clock.advance(2)  # now the client is late with the rest of its body
    answers[1].callback("second")  # the 408 comes after the answers before it
    assert b"408 Request Timeout" in transport.value()


def stuck_stream(request: Request) -> Response:
    def pieces():
        while True:
            yield b"x" * 65536

    return Response(pieces())


def test_a_client_that_does_not_read_its_answer_is_dropped_at_the_send_timeout(
    clock: Clock,
) -> None:
    protocol, transport = in_memory(stuck_stream, clock, send_timeout=30)
    protocol.pause_producing()  # the write buffer is full: the client is not reading
    protocol.data_received(get_request("/"))
    clock.advance(29.9)
    assert not transport.aborted
    clock.advance(0.2)
    assert transport.aborted


def test_a_client_that_reads_again_in_time_is_not_dropped(clock: Clock) -> None:
    protocol, transport = in_memory(app(), clock, send_timeout=30, keep_alive_timeout=600)
    protocol.pause_producing()
    clock.advance(20)
    protocol.resume_producing()
    clock.advance(20)  # 40 s since the pause, but it ended after 20
    protocol.data_received(get_request("/"))
    assert not transport.aborted
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")


# ---- timeouts on real sockets


async def test_a_slow_reader_on_a_socket_is_dropped_at_the_send_timeout() -> None:
    listener = http.serve(stuck_stream, send_timeout=0.3)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", listener.port))
    try:
        sock.send(get_request("/"))
        loop = asyncio.get_running_loop()
        assert (await loop.sock_recv(sock, 17)) == b"HTTP/1.1 200 OK\r\n"  # then stop reading
        assert len(listener.connections) == 1
        started = loop.time()
        # Fires once every connection has gone: the server must drop the stuck one.
        await listener.close(drain=True)
        assert loop.time() - started >= 0.3
        try:
            while await loop.sock_recv(sock, 1 << 20):
                pass  # what was in flight, then the end: the stream was endless
        except ConnectionResetError:
            pass  # or a reset, as the kernel likes
    finally:
        sock.close()


async def test_slowloris_on_a_socket_gets_408_before_its_head_is_done() -> None:
    listener = http.serve(app(), header_timeout=0.5)
    client = await RawClient.connect(listener.port)
    head = get_request("/", "X-Padding: " + "p" * 1000)
    sent = 0
    closed = asyncio.ensure_future(client.rest())
    while not closed.done() and sent < len(head):
        client.send(head[sent : sent + 1])
        sent += 1
        await ns.sleep(0.02)  # the client's pace: one byte every 20 ms
    rest = await closed
    assert sent < len(head)
    assert rest.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


async def test_an_idle_connection_is_closed_on_a_socket() -> None:
    listener, factory = watched(app(), keep_alive_timeout=0.2)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    assert (await client.answer()).body == b"root"
    started = ns.reactor.seconds()
    assert await client.rest() == b""
    assert ns.reactor.seconds() - started >= 0.15
    await factory.gone.get()
    assert listener.connections == []


async def test_a_stalled_body_on_a_socket_gets_408() -> None:
    listener = http.serve(app(), body_timeout=0.2)
    client = await RawClient.connect(listener.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this")
    answer = await client.answer()
    assert (answer.status, answer.headers["Connection"]) == (408, "close")
    client.close()


# ---- clients that vanish


async def test_a_client_gone_mid_body_leaves_the_server_serving(reactor: ns.Reactor) -> None:
    listener, factory = watched(app())
    client = await RawClient.connect(listener.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 5000)
    await client.writer.drain()
    client.abort()
    await factory.gone.get()
    assert listener.connections == []
    assert [c for c in reactor.connections if c.listener is listener] == []
    other = await RawClient.connect(listener.port)
    other.send(get_request("/"))
    assert (await other.answer()).body == b"root"
    other.close()


async def test_a_client_gone_mid_stream_stops_the_stream(reactor: ns.Reactor) -> None:
    closed: ns.Deferred[None] = ns.Deferred()

    def endless() -> Any:
        try:
            while True:
                yield b"z" * 65536
        finally:
            closed.callback(None)

    a = app()
    a.add_route("/endless", lambda request: Response(endless()))
    listener, factory = watched(a)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/endless"))
    await client.read_raw(1_000_000)
    client.abort()
    await closed
    await factory.gone.get()
    assert listener.connections == []
    other = await RawClient.connect(listener.port)
    other.send(get_request("/"))
    assert (await other.answer()).body == b"root"
    other.close()


async def test_a_client_gone_mid_async_stream_stops_it(reactor: ns.Reactor) -> None:
    closed: ns.Deferred[None] = ns.Deferred()

    async def endless() -> Any:
        try:
            while True:
                await ns.sleep(0)
                yield b"z" * 65536
        finally:
            closed.callback(None)

    a = app()
    a.add_route("/endless", lambda request: Response(endless()))
    listener, factory = watched(a)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/endless"))
    await client.read_raw(1_000_000)
    client.abort()
    await factory.gone.get()
    await closed
    assert listener.connections == []


async def test_a_client_gone_mid_file_closes_the_file(reactor: ns.Reactor, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    listener, factory = watched(http.StaticFiles(tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    client = await RawClient.connect(listener.port)
    client.send(get_request("/big.bin"))
    await client.read_raw(1_000_000)
    client.abort()
    await factory.gone.get()
    assert listener.connections == []
    assert len(os.listdir("/proc/self/fd")) <= before  # the file and the socket are closed
    other = await RawClient.connect(listener.port)
    other.send(get_request("/big.bin", "Range: bytes=0-9"))
    assert (await other.answer()).status == 206
    other.close()


def gated() -> tuple[Any, ns.Deferred[str], ns.Deferred[None]]:
    """A handler that answers when ``gate`` fires; ``entered`` fires when it is called."""
    gate: ns.Deferred[str] = ns.Deferred()
    entered: ns.Deferred[None] = ns.Deferred()

    def handler(request: Request) -> ns.Deferred[str]:
        entered.callback(None)
        return gate

    return handler, gate, entered


async def test_a_client_gone_while_its_handler_works_is_no_error(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    handler, gate, entered = gated()
    listener, factory = watched(handler)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    await entered
    client.abort()
    # A FIN looks like a half-close (the client may still read): the answer is written,
    # then the connection closes, with no error.
    gate.callback("too late")
    await factory.gone.get()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert listener.connections == []


async def test_a_client_reset_while_its_handler_works_drops_the_answer_quietly(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    handler, gate, entered = gated()
    listener, factory = watched(handler)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    await entered
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.abort()  # with a zero linger time: a reset, not a FIN
    assert await factory.gone.get() is ns.ConnectionLost
    gate.callback("too late")  # answered to nobody
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert listener.connections == []


# ---- many clients


@pytest.mark.async_timeout(120)
@pytest.mark.needs_fds(2 * 1000 + 100)
async def test_a_thousand_concurrent_keep_alive_clients_are_all_served() -> None:
    listener = http.serve(lambda request: f"hello {request.path[1:]}")
    ready = asyncio.Event()

    async def one(n: int) -> list[bytes]:
        client = await RawClient.connect(listener.port)
        await ready.wait()  # every connection is open before the first request
        bodies = []
        for i in range(3):
            client.send(get_request(f"/{n}-{i}"))
            bodies.append((await client.answer()).body)
        client.close()
        return bodies

    tasks = [asyncio.ensure_future(one(n)) for n in range(1000)]
    while len(listener.connections) < 1000 and not any(t.done() for t in tasks):
        await asyncio.sleep(0)  # no clock involved: one turn of the loop at a time
    assert len(listener.connections) == 1000
    ready.set()
    results = await asyncio.gather(*tasks)
    assert results == [[f"hello {n}-{i}".encode() for i in range(3)] for n in range(1000)]
