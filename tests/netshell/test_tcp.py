"""TCP: listen_tcp / connect_tcp, StreamTransport, Listener, and real peers on loopback.

Nothing here sleeps to let something happen: tests await the Deferreds their
protocols fire (connected, data seen, eof, connection lost), run peers as
asyncio subprocesses, and run blocking socket clients in threads
(``ns.defer_to_thread``) so the loop serves meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import threading
import time
from typing import Any

import pytest
from peers import connect_when_ready, free_port, require, run_peer, start_peer

import netshell as ns
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol
from netshell.transport import Address, StreamTransport

# ---- test protocols


Recorder = RecordingProtocol
Echo = RecordingEcho
Collecting = RecordingFactory


async def connect(
    reactor: ns.Reactor, port: int, protocol: Any = Recorder, host: str = "127.0.0.1"
) -> Any:
    return await reactor.connect_tcp(host, port, ns.ClientFactory.for_protocol(protocol))


async def pair(
    reactor: ns.Reactor, server: Any = Echo, client: Any = Recorder
) -> tuple[Any, Any, Any]:
    """A listener and one connection to it: (listener, client protocol, server protocol)."""
    factory = Collecting(server)
    listener = reactor.listen_tcp(0, factory)
    c = await connect(reactor, listener.port, client)
    s = await factory.accepted()
    return listener, c, s


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def refused_port() -> socket.socket:
    """A bound socket that does not listen: connecting to its port is refused, and no one
    else can take the port while the test holds it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


# ---- listening


def test_listen_tcp_is_connectable_before_the_loop_runs(reactor: ns.Reactor) -> None:
    factory = Collecting(Recorder)
    listener = reactor.listen_tcp(0, factory)
    assert not reactor.running
    # The kernel's backlog accepts this while the loop has never turned.
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as s:
        server = reactor.run_until(factory.accepted(), timeout=5)
        assert server.transport.peer.port == s.getsockname()[1]


def test_port_zero_gives_an_ephemeral_port(reactor: ns.Reactor) -> None:
    listener = reactor.listen_tcp(0, Collecting())
    assert listener.port > 0
    assert listener.address == Address("tcp", "127.0.0.1", listener.port)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5):
        pass


def test_taken_port_raises_oserror_naming_the_address(reactor: ns.Reactor) -> None:
    first = reactor.listen_tcp(0, Collecting())
    with pytest.raises(OSError) as info:
        reactor.listen_tcp(first.port, Collecting())
    assert info.value.errno == errno.EADDRINUSE
    assert f"127.0.0.1:{first.port}" in str(info.value)
    assert reactor.listeners == [first]


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_listen_and_connect_on_loopback(reactor: ns.Reactor) -> None:
    factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, factory, interface="::1")
    assert listener.address == Address("tcp6", "::1", listener.port)
    client = await connect(reactor, listener.port, host="::1")
    server = await factory.accepted()
    assert client.transport.peer == Address("tcp6", "::1", listener.port)
    assert server.transport.peer.kind == "tcp6"
    assert server.transport.peer.host == "::1"
    client.transport.write(b"over six")
    assert await client.wait_for_bytes(8) == b"over six"
    assert str(listener.address) == f"[::1]:{listener.port}"


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_a_name_that_resolves_to_ipv6_gives_tcp6_addresses(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    if reactor.loop_name == "uvloop":
        pytest.skip("uvloop resolves names out of reach of the test")
    listener = reactor.listen_tcp(0, Collecting(Echo), interface="::1")

    async def only_ipv6(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        assert host == "six.test"  # nothing real is looked up
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", port, 0, 0))]

    monkeypatch.setattr(reactor.loop, "getaddrinfo", only_ipv6)
    client = await connect(reactor, listener.port, host="six.test")
    assert client.transport.peer == Address("tcp6", "::1", listener.port)
    assert client.transport.host.kind == "tcp6"


def test_listen_tcp_keeps_its_backlog_once_serving(reactor: ns.Reactor) -> None:
    ss = require("ss")
    listener = reactor.listen_tcp(0, Collecting(Echo), backlog=777)

    async def backlog_while_serving() -> bytes:
        await connect(reactor, listener.port)  # the loop serves the listener now
        code, out, err = await run_peer([ss, "-Hltn", f"sport = :{listener.port}"])
        assert code == 0, err
        return out

    out = reactor.run_until(backlog_while_serving(), timeout=20)
    state, _recv_q, send_q = out.split()[:3]
    assert state == b"LISTEN"
    assert send_q == b"777"  # for a listening socket, ss shows the backlog here


# ---- connecting


async def test_connect_tcp_fires_with_the_connected_protocol(reactor: ns.Reactor) -> None:
    listener = reactor.listen_tcp(0, Collecting(Echo))
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(Recorder)
    )
    assert isinstance(client, Recorder)
    assert client.connected.called
    assert isinstance(client.transport, StreamTransport)
    assert client.transport.protocol is client
    assert client.transport.state == "open"


async def test_refused_connection_raises_connection_refused_with_the_address(
    reactor: ns.Reactor,
) -> None:
    with refused_port() as s:
        port = s.getsockname()[1]
        with pytest.raises(ns.ConnectionRefused) as info:
            await connect(reactor, port)
    assert isinstance(info.value, ConnectionRefusedError)
    assert isinstance(info.value, ns.ConnectError)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_connect_timeout_raises_connect_timeout(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    abandoned = ns.Deferred()

    async def never_connects(*args: Any, **kw: Any) -> Any:
        try:
            await reactor.loop.create_future()
        except asyncio.CancelledError:
            abandoned.callback(None)
            raise

    monkeypatch.setattr(reactor.loop, "create_connection", never_connects)
    factory = ns.ClientFactory.for_protocol(Recorder)
    with pytest.raises(ns.ConnectTimeout) as info:
        await reactor.connect_tcp("127.0.0.1", 9, factory, timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    assert "127.0.0.1:9" in str(info.value)
    assert abandoned.called


async def test_dns_failure_raises_dns_lookup_error(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []

    async def no_such_name(host: Any, *args: Any, **kw: Any) -> Any:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def no_dns(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a real DNS lookup was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    if reactor.loop_name == "uvloop":
        # uvloop resolves inside create_connection, out of reach: fail the lookup there.
        async def connect_fails_to_resolve(factory: Any, host: Any, *args: Any, **kw: Any) -> Any:
            await no_such_name(host)

        monkeypatch.setattr(reactor.loop, "create_connection", connect_fails_to_resolve)
    else:
        monkeypatch.setattr(reactor.loop, "getaddrinfo", no_such_name)
    with pytest.raises(ns.DNSLookupError) as info:
        await reactor.connect_tcp(
            "no-such-host.invalid", 80, ns.ClientFactory.for_protocol(Recorder)
        )
    assert asked == ["no-such-host.invalid"]
    assert isinstance(info.value, ns.ConnectError)
    assert str(info.value).startswith("cannot resolve 'no-such-host.invalid': ")
    assert "Name or service not known" in str(info.value)


async def test_cancelling_the_connect_deferred_abandons_the_attempt(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = ns.Deferred()
    abandoned = ns.Deferred()

    async def hangs(*args: Any, **kw: Any) -> Any:
        started.callback(None)
        try:
            await reactor.loop.create_future()
        except asyncio.CancelledError:
            abandoned.callback(None)
            raise

    monkeypatch.setattr(reactor.loop, "create_connection", hangs)
    d = reactor.connect_tcp("127.0.0.1", 9, ns.ClientFactory.for_protocol(Recorder))
    await started
    d.cancel()
    with pytest.raises(ns.CancelledError):
        await d
    await abandoned


# ---- writing, half-close, close and abort


async def test_write_and_write_sequence_reach_the_peer_in_order(reactor: ns.Reactor) -> None:
    _, client, server = await pair(reactor, server=Recorder)
    client.transport.write(b"one,")
    client.transport.write_sequence([b"two,", bytearray(b"three,"), memoryview(b"four")])
    assert await server.wait_for_bytes(18) == b"one,two,three,four"


async def test_write_of_str_raises_type_error(reactor: ns.Reactor) -> None:
    _, client, _ = await pair(reactor)
    with pytest.raises(TypeError):
        client.transport.write("text")
    assert client.transport.bytes_sent == 0


async def test_write_eof_half_closes_and_the_peer_can_still_reply(reactor: ns.Reactor) -> None:
    class HalfOpen(Recorder):
        keep_open_on_eof = True

    _, client, server = await pair(reactor, server=HalfOpen)
    client.transport.write(b"question")
    client.transport.write_eof()
    await server.got_eof
    assert bytes(server.received) == b"question"
    assert not client.done.called
    server.transport.write(b"answer")
    server.transport.close()
    assert await client.wait_for_bytes(6) == b"answer"
    await client.done
    assert client.reason.check(ns.ConnectionDone)
    await server.done
    assert server.reason.check(ns.ConnectionDone)


async def test_eof_closes_the_connection_when_the_protocol_does_not_keep_it_open(
    reactor: ns.Reactor,
) -> None:
    _, client, server = await pair(reactor, server=Recorder)
    client.transport.write_eof()
    await server.done
    assert server.got_eof.called
    assert server.reason.check(ns.ConnectionDone)
    await client.done
    assert client.reason.check(ns.ConnectionDone)


async def test_close_sends_everything_buffered_before_closing(reactor: ns.Reactor) -> None:
    payload = os.urandom(5 * 1024 * 1024)
    _, client, server = await pair(reactor, server=Recorder)
    client.transport.write(payload)
    assert client.transport.write_buffer_size > 0  # close() really has something to flush
    client.transport.close()
    await server.done
    assert len(server.received) == len(payload)
    assert bytes(server.received) == payload
    assert server.reason.check(ns.ConnectionDone)
    await client.done
    assert client.reason.check(ns.ConnectionDone)


async def test_abort_drops_buffered_data_and_the_protocol_sees_connection_lost(
    reactor: ns.Reactor,
) -> None:
    size = 32 * 1024 * 1024
    _, client, server = await pair(reactor, server=Recorder)
    client.transport.write(b"x" * size)
    assert client.transport.write_buffer_size > 0
    client.transport.abort()
    await client.done
    assert client.reason.check(ns.ConnectionLost)
    assert client.transport.write_buffer_size == 0
    assert client.transport.state == "closed"
    await server.done
    assert len(server.received) < size


async def test_peer_reset_gives_connection_lost_and_spares_other_connections(
    reactor: ns.Reactor,
) -> None:
    factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, factory)
    other = await connect(reactor, listener.port)
    other_server = await factory.accepted()
    raw = socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    victim = await factory.accepted()
    raw.sendall(b"mid-stream")
    await victim.wait_for_bytes(10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # linger 0: the kernel sends a reset
    await victim.done
    assert victim.reason.check(ns.ConnectionLost)
    assert isinstance(victim.reason.value.__cause__, ConnectionResetError)
    other.transport.write(b"still here")
    assert await other.wait_for_bytes(10) == b"still here"
    assert not other_server.done.called


# ---- errors in protocols


class Explodes(Echo):
    def data_received(self, data: bytes) -> None:
        if b"boom" in data:
            raise ValueError("the protocol blew up")
        super().data_received(data)


async def test_protocol_error_is_logged_with_its_traceback(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    _, client, server = await pair(reactor, server=Explodes)
    client.transport.write(b"boom")
    await server.done
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ValueError]
    assert len(records) == 1
    record = records[0]
    assert record.name.startswith("netshell")
    assert "data_received" in record.getMessage()
    assert "the protocol blew up" in caplog.text
    assert "Traceback" in caplog.text


async def test_protocol_error_closes_only_that_connection(reactor: ns.Reactor) -> None:
    factory = Collecting(Explodes)
    listener = reactor.listen_tcp(0, factory)
    good = await connect(reactor, listener.port)
    good_server = await factory.accepted()
    bad = await connect(reactor, listener.port)
    bad_server = await factory.accepted()
    bad.transport.write(b"boom")
    await bad_server.done
    assert bad_server.reason.check(ns.ConnectionLost)
    assert isinstance(bad_server.reason.value.__cause__, ValueError)
    await bad.done
    good.transport.write(b"unaffected")
    assert await good.wait_for_bytes(10) == b"unaffected"
    assert not good_server.done.called


async def test_listener_keeps_serving_after_a_protocol_error(reactor: ns.Reactor) -> None:
    factory = Collecting(Explodes)
    listener = reactor.listen_tcp(0, factory)
    bad = await connect(reactor, listener.port)
    bad_server = await factory.accepted()
    bad.transport.write(b"boom")
    await bad_server.done
    fresh = await connect(reactor, listener.port)
    fresh.transport.write(b"next one")
    assert await fresh.wait_for_bytes(8) == b"next one"
    assert listener in reactor.listeners


# ---- inspection: addresses, counters, time, state, registry


async def test_peer_and_host_addresses_match_on_both_sides(reactor: ns.Reactor) -> None:
    listener, client, server = await pair(reactor)
    assert client.transport.peer == Address("tcp", "127.0.0.1", listener.port)
    assert server.transport.host == Address("tcp", "127.0.0.1", listener.port)
    assert client.transport.host == server.transport.peer
    assert client.transport.host.host == "127.0.0.1"
    assert client.transport.host.port not in (0, listener.port)


async def test_byte_counters_are_exact_after_traffic(reactor: ns.Reactor) -> None:
    _, client, server = await pair(reactor, server=Echo)
    chunks = [b"a" * 1000, b"b" * 24, b"c" * 70000]
    client.transport.write(chunks[0])
    client.transport.write_sequence(chunks[1:])
    await client.wait_for_bytes(71024)
    assert client.transport.bytes_sent == 71024
    assert client.transport.bytes_received == 71024
    assert server.transport.bytes_received == 71024
    assert server.transport.bytes_sent == 71024


async def test_connected_at_is_when_the_connection_was_made(reactor: ns.Reactor) -> None:
    before = time.time()
    _, client, server = await pair(reactor)
    after = time.time()
    assert before <= client.transport.connected_at <= after
    assert before <= server.transport.connected_at <= after


async def test_state_goes_from_open_to_closing_to_closed(reactor: ns.Reactor) -> None:
    _, client, server = await pair(reactor, server=Recorder)
    assert client.transport.state == "open"
    client.transport.write(b"x" * (8 * 1024 * 1024))
    client.transport.close()
    assert client.transport.state == "closing"
    await client.done
    assert client.transport.state == "closed"
    await server.done
    assert server.transport.state == "closed"


async def test_registry_lists_live_connections_and_listeners(reactor: ns.Reactor) -> None:
    listener, client, server = await pair(reactor)
    assert reactor.listeners == [listener]
    assert set(reactor.connections) == {client.transport, server.transport}
    assert listener.connections == [server.transport]
    client.transport.close()
    await client.done
    await server.done
    assert reactor.connections == []
    assert listener.connections == []
    await listener.close()
    assert reactor.listeners == []


async def test_connections_closed_fires_when_the_last_connection_goes(reactor: ns.Reactor) -> None:
    assert reactor.connections_closed().called  # none open: at once
    listener, client, server = await pair(reactor)
    first, second, given_up = (reactor.connections_closed() for _ in range(3))
    given_up.cancel()  # stops that wait only
    with pytest.raises(ns.CancelledError):
        await given_up
    assert not first.called and not second.called
    client.transport.close()
    await client.done
    await server.done
    assert reactor.connections == []
    assert await first is None and await second is None
    await listener.close()


# ---- closing listeners


async def test_listener_close_fires_once_closed_and_frees_the_port(reactor: ns.Reactor) -> None:
    factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, factory)
    await connect(reactor, listener.port)  # the listener is serving
    port = listener.port
    d = listener.close()
    assert listener.close() is d
    await d
    assert listener.closed
    with pytest.raises(ns.ConnectionRefused):
        await connect(reactor, port)
    again = reactor.listen_tcp(port, factory)
    client = await connect(reactor, port)
    client.transport.write(b"rebound")
    assert await client.wait_for_bytes(7) == b"rebound"
    await again.close()


async def test_listener_close_keeps_accepted_connections_open(reactor: ns.Reactor) -> None:
    listener, client, server = await pair(reactor)
    await listener.close()
    client.transport.write(b"after close")
    assert await client.wait_for_bytes(11) == b"after close"
    assert not server.done.called


async def test_listener_close_right_after_it_starts_serving_frees_the_port(
    reactor: ns.Reactor,
) -> None:
    factory = Collecting(Echo)
    for turns in range(4):
        listener = reactor.listen_tcp(0, factory)
        port = listener.port
        for _ in range(turns):
            await asyncio.sleep(0)
        await listener.close()
        with pytest.raises(ns.ConnectionRefused):
            await connect(reactor, port)
        reactor.listen_tcp(port, factory).close()


async def test_close_with_drain_waits_for_the_connections(reactor: ns.Reactor) -> None:
    listener, client, server = await pair(reactor)
    port = listener.port
    d = listener.close(drain=True)
    # The listening socket goes at once; the Deferred waits for the connection.
    with pytest.raises(ns.ConnectionRefused):
        await connect(reactor, port)
    assert not d.called
    client.transport.write(b"still served")
    assert await client.wait_for_bytes(12) == b"still served"
    assert not d.called
    client.transport.close()
    await d
    assert server.done.called
    assert server.reason.check(ns.ConnectionDone)


async def test_close_with_drain_and_timeout_closes_the_stragglers(reactor: ns.Reactor) -> None:
    listener, client, server = await pair(reactor)
    started = reactor.seconds()
    await listener.close(drain=True, timeout=0.1)
    assert reactor.seconds() - started >= 0.09
    assert server.transport.state != "open"
    await server.done
    assert server.reason.check(ns.ConnectionDone)
    await client.done
    assert client.reason.check(ns.ConnectionDone)
    assert listener.connections == []


# ---- reactor.stop()


def test_reactor_stop_closes_listeners_and_connections(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, factory)
    port = listener.port
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        seen["client"] = await connect(reactor, port)
        seen["server"] = await factory.accepted()
        reactor.stop()

    def start() -> None:
        ns.ensure_deferred(scenario()).add_errback(lambda f: seen.setdefault("error", f))

    reactor.call_later(0, start)
    guard = reactor.call_later(30, reactor.stop)  # only if the scenario fails
    reactor.run(install_signal_handlers=False)
    assert "error" not in seen, seen.get("error")
    assert guard.cancelled or not guard.called
    assert seen["client"].reason.check(ns.ConnectionDone)
    assert seen["server"].reason.check(ns.ConnectionDone)
    assert reactor.listeners == [] and reactor.connections == []
    with socket.socket() as s:
        # Free again: nothing listens (SO_REUSEADDR ignores the closed connections' TIME_WAIT).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_reactor_stop_flushes_what_connections_have_buffered(reactor: ns.Reactor) -> None:
    payload = os.urandom(5 * 1024 * 1024)
    factory = Collecting(Recorder)
    listener = reactor.listen_tcp(0, factory)
    got = bytearray()
    raw = socket.create_connection(("127.0.0.1", listener.port), timeout=30)

    def read_all() -> None:
        with raw:
            while chunk := raw.recv(1 << 16):
                got.extend(chunk)

    reader = threading.Thread(target=read_all)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        server = seen["server"] = await factory.accepted()
        server.transport.write(payload)
        reader.start()
        reactor.stop()

    reactor.call_later(0, lambda: ns.ensure_deferred(scenario()))
    guard = reactor.call_later(30, reactor.stop)
    reactor.run(install_signal_handlers=False)
    reader.join(10)
    assert not reader.is_alive()
    assert not guard.called
    assert len(got) == len(payload) and bytes(got) == payload
    assert seen["server"].reason.check(ns.ConnectionDone)


# ---- real peers


async def test_socat_client_against_an_echo_server(reactor: ns.Reactor) -> None:
    require("socat")
    listener = reactor.listen_tcp(0, Collecting(Echo))
    data = os.urandom(100_000)
    code, out, err = await run_peer(
        ["socat", "-t", "2", "-", f"TCP:127.0.0.1:{listener.port}"], stdin=data
    )
    assert code == 0, err
    assert out == data


async def test_client_against_a_socat_echo_server(reactor: ns.Reactor) -> None:
    require("socat")
    port = free_port()
    argv = [
        "socat",
        "-d",
        "-d",
        f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
        "EXEC:cat",
    ]
    async with await start_peer(argv, ready=r"listening on"):
        client = await connect_when_ready(
            "127.0.0.1", port, ns.ClientFactory.for_protocol(Recorder)
        )
        data = os.urandom(200_000)
        client.transport.write(data)
        assert await client.wait_for_bytes(len(data)) == data
        assert client.transport.peer == Address("tcp", "127.0.0.1", port)
        client.transport.write_eof()  # cat ends, socat closes: a clean end
        await client.done
        assert client.reason.check(ns.ConnectionDone)


def _blocking_echo_client(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
    return bytes(got)


async def test_python_socket_clients_in_threads_against_an_echo_server(
    reactor: ns.Reactor,
) -> None:
    listener = reactor.listen_tcp(0, Collecting(Echo))
    payloads = [bytes([i]) * (10_000 + 997 * i) for i in range(8)]
    results = await ns.gather(
        *(ns.defer_to_thread(_blocking_echo_client, listener.port, p) for p in payloads)
    )
    assert results == payloads


# ---- load


@pytest.mark.async_timeout(60)
@pytest.mark.needs_fds(2 * 1000 + 100)
async def test_a_thousand_concurrent_echo_connections(reactor: ns.Reactor) -> None:
    count = 1000
    servers = Collecting(Echo)
    listener = reactor.listen_tcp(0, servers, backlog=count)
    factory = ns.ClientFactory.for_protocol(Recorder)

    async def one(i: int) -> bool:
        size = 1024 + (i * 3079) % 3073  # 1 to 4 KiB, all different
        payload = (i.to_bytes(4, "big") + os.urandom(size))[:size]
        client = await reactor.connect_tcp("127.0.0.1", listener.port, factory)
        client.transport.write(payload)
        echoed = await client.wait_for_bytes(size)
        client.transport.close()
        await client.done
        return echoed == payload

    results = await ns.gather(*(one(i) for i in range(count)))
    assert results == [True] * count
    await ns.gather(*(s.done for s in servers.built))
    assert len(servers.built) == count
    assert reactor.connections == []


@pytest.mark.parametrize("port", [-1, 65536, 70000])
def test_listen_tcp_refuses_a_port_out_of_range(reactor, port):
    # getaddrinfo would keep the low 16 bits: 70000 would bind port 4464.
    with pytest.raises(ValueError, match="0 to 65535"):
        reactor.listen_tcp(port, ns.Factory.for_protocol(ns.Protocol))


async def test_a_listeners_repr_counts_its_connections_in_words(reactor: Any) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    try:
        assert repr(listener).endswith(" listening, 0 connections>")
        first = await reactor.connect_tcp("127.0.0.1", listener.port,
                                          ns.ClientFactory.for_protocol(ns.Protocol))
        while len(listener.connections) < 1:  # accepted on a later loop turn
            await ns.sleep(0)
        assert repr(listener).endswith(" listening, 1 connection>")
        second = await reactor.connect_tcp("127.0.0.1", listener.port,
                                           ns.ClientFactory.for_protocol(ns.Protocol))
        while len(listener.connections) < 2:
            await ns.sleep(0)
        assert repr(listener).endswith(" listening, 2 connections>")
        first.transport.close()
        second.transport.close()
    finally:
        await listener.close()
