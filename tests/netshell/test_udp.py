"""UDP: listen_udp, listen_multicast, the datagram transport, with real sockets and peers.

No test sleeps: each awaits the Deferred (or queue item) that its protocol
fires when a datagram or an error arrives. Where a test proves that
something did *not* arrive, it sends a later datagram over the same path
and checks that this later one is the next to arrive.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from netshell.reactor import Reactor
from netshell.udp import DatagramListener, DatagramTransport

REPO = Path(__file__).resolve().parents[2]
WAIT = 5.0


# ---- helpers


class Recorder(ns.DatagramProtocol):
    """Queues what happens to it, for the test to await."""

    def __init__(self) -> None:
        self.received: ns.DeferredQueue[tuple[bytes, Any]] = ns.DeferredQueue()
        self.errors: ns.DeferredQueue[Exception] = ns.DeferredQueue()
        self.reason: ns.Failure | None = None
        self.lost: ns.Deferred[None] = ns.Deferred()  # fires once connection_lost has run

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put(exc)

    def connection_lost(self, reason: ns.Failure) -> None:
        self.reason = reason
        self.lost.callback(None)


class Echo(Recorder):
    def datagram_received(self, data: bytes, addr: Any) -> None:
        super().datagram_received(data, addr)
        self.transport.write(data, addr)


async def next_item(queue: ns.DeferredQueue[Any]) -> Any:
    return await asyncio.wait_for(queue.get().as_future(), WAIT)


async def next_data(protocol: Recorder) -> bytes:
    data, _ = await next_item(protocol.received)
    return bytes(data)


def client_socket(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    return sock


async def receive(sock: socket.socket) -> tuple[bytes, Any]:
    """The next datagram on a non-blocking socket, read when the loop says it is readable.

    (Not ``loop.sock_recvfrom``: uvloop does not have it.)
    """
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[tuple[bytes, Any]] = loop.create_future()

    def readable() -> None:
        if arrived.done():
            return
        try:
            arrived.set_result(sock.recvfrom(65535))
        except BlockingIOError:
            pass
        except OSError as e:
            arrived.set_exception(e)

    loop.add_reader(sock.fileno(), readable)
    try:
        return await asyncio.wait_for(arrived, WAIT)
    finally:
        loop.remove_reader(sock.fileno())


def multicast_sender() -> socket.socket:
    """A plain socket that sends multicast out of the loopback interface."""
    sock = client_socket()
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    return sock


def closed_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to (just now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        # Under CI the suite's conftest turns this skip into a failure.
        pytest.skip(f"{program} is not installed (apt-get install -y {program})")
    return path


# ---- unicast


async def test_echo_round_trip_with_a_python_socket_client(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Echo())

    def client() -> tuple[bytes, Any]:
        # A blocking client, in a worker thread, while the loop serves.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(WAIT)
            sock.sendto(b"hello", ("127.0.0.1", listener.port))
            return sock.recvfrom(100)

    data, addr = await ns.defer_to_thread(client)
    assert data == b"hello"
    assert addr == ("127.0.0.1", listener.port)


async def test_echo_round_trip_with_socat(reactor: Reactor) -> None:
    socat = need("socat")
    listener = reactor.listen_udp(0, Echo())
    proc = await asyncio.create_subprocess_exec(
        socat,
        "-t",
        "1",
        "-",
        f"UDP:127.0.0.1:{listener.port}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(b"hello from socat\n"), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert out == b"hello from socat\n", err
    assert listener.protocol.received.pending[0][0] == b"hello from socat\n"


async def test_datagram_received_gets_the_senders_address(reactor: Reactor) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol)
    with client_socket() as client:
        client.bind(("127.0.0.1", 0))
        client.sendto(b"x", ("127.0.0.1", listener.port))
        _, addr = await next_item(protocol.received)
        assert addr == client.getsockname()


async def test_write_to_an_address_sends_one_datagram_there(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Recorder())
    with client_socket() as client:
        client.bind(("127.0.0.1", 0))
        listener.transport.write(b"to you", client.getsockname())
        data, addr = await receive(client)
    assert (data, addr) == (b"to you", ("127.0.0.1", listener.port))


async def test_ipv6_echo_on_loopback(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Echo(), interface="::1")
    assert listener.address.kind == "udp6"
    assert listener.address.host == "::1"
    with client_socket(socket.AF_INET6) as client:
        client.sendto(b"six", ("::1", listener.port))
        data, addr = await receive(client)
    assert data == b"six"
    assert addr[:2] == ("::1", listener.port)


def test_binding_a_taken_port_raises_oserror_naming_the_address(reactor: Reactor) -> None:
    first = reactor.listen_udp(0, Recorder())
    with pytest.raises(OSError, match=rf"127\.0\.0\.1:{first.port}") as info:
        reactor.listen_udp(first.port, Recorder())
    assert info.value.errno == errno.EADDRINUSE


def test_binding_an_unknown_interface_raises_oserror(reactor: Reactor) -> None:
    with pytest.raises(OSError, match=re.escape("203.0.113.7")):
        reactor.listen_udp(0, Recorder(), interface="203.0.113.7")


def test_connection_made_is_called_before_listen_udp_returns(reactor: Reactor) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol)
    assert protocol.transport is listener.transport
    assert isinstance(listener.transport, DatagramTransport)


async def test_protocol_exception_is_logged_and_the_listener_keeps_serving(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    class Fussy(Echo):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if data == b"boom":
                raise RuntimeError("the protocol broke")
            super().datagram_received(data, addr)

    protocol = Fussy()
    listener = reactor.listen_udp(0, protocol)
    with caplog.at_level(logging.ERROR, logger="netshell.udp"), client_socket() as client:
        client.sendto(b"boom", ("127.0.0.1", listener.port))
        client.sendto(b"still there?", ("127.0.0.1", listener.port))
        assert await next_data(protocol) == b"still there?"
    records = [r for r in caplog.records if r.name == "netshell.udp"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is RuntimeError
    assert listener.transport.state == "open"


async def test_counters_count_datagrams_and_bytes_both_ways(reactor: Reactor) -> None:
    protocol = Echo()
    listener = reactor.listen_udp(0, protocol)
    with client_socket() as client:
        for payload in (b"abc", b"defgh"):
            client.sendto(payload, ("127.0.0.1", listener.port))
            await receive(client)
    t = listener.transport
    assert (t.datagrams_received, t.bytes_received) == (2, 8)
    assert (t.datagrams_sent, t.bytes_sent) == (2, 8)
    assert "2 in (8B) / 2 out (8B)" in repr(t)


async def test_datagrams_longer_than_max_size_are_cut(reactor: Reactor) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol, max_size=4)
    with client_socket() as client:
        client.sendto(b"123456789", ("127.0.0.1", listener.port))
        assert await next_data(protocol) == b"1234"


def test_write_without_an_address_on_an_unconnected_transport_raises(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Recorder())
    with pytest.raises(ValueError, match="address"):
        listener.transport.write(b"where to?")


def test_write_of_str_raises_type_error(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Recorder())
    with pytest.raises(TypeError, match="bytes"):
        listener.transport.write("text", ("127.0.0.1", 9))  # type: ignore[arg-type]


async def test_send_errors_go_to_error_received(reactor: Reactor) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol)
    listener.transport.write(b"x" * 70000, ("127.0.0.1", 9))  # larger than any datagram
    exc = await next_item(protocol.errors)
    assert isinstance(exc, OSError)
    assert listener.transport.datagrams_sent == 0


# ---- the send buffer


class _Blockable:
    """Stands in for a transport's socket: sends raise BlockingIOError while blocked."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.blocked = True

    def sendto(self, data: bytes, addr: Any) -> int:
        if self.blocked:
            raise BlockingIOError
        return self._sock.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def test_send_buffer_is_bounded_and_drops_beyond_it_with_a_warning(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Recorder()
    target = reactor.listen_udp(0, receiver)
    sender = reactor.listen_udp(0, Recorder())
    t = sender.transport
    real = t._sock
    assert real is not None
    blockable = _Blockable(real)
    t._sock = blockable  # type: ignore[assignment]
    t.max_buffered = 3
    with caplog.at_level(logging.WARNING, logger="netshell.udp"):
        for n in range(5):
            t.write(b"%d" % n, ("127.0.0.1", target.port))
    assert len(t._buffer) == 3
    assert t.datagrams_dropped == 2
    assert t.write_buffer_size == 3
    warnings = [r for r in caplog.records if "send buffer full" in r.getMessage()]
    assert len(warnings) == 1
    blockable.blocked = False
    got = [await next_data(receiver) for _ in range(3)]
    assert got == [b"0", b"1", b"2"]
    assert t.datagrams_sent == 3
    assert t.write_buffer_size == 0


async def test_close_sends_buffered_datagrams_first(reactor: Reactor) -> None:
    receiver = Recorder()
    target = reactor.listen_udp(0, receiver)
    protocol = Recorder()
    sender = reactor.listen_udp(0, protocol)
    real = sender.transport._sock
    assert real is not None
    blockable = _Blockable(real)
    sender.transport._sock = blockable  # type: ignore[assignment]
    sender.transport.write(b"last words", ("127.0.0.1", target.port))
    closed = sender.close()
    assert sender.transport.state == "closing"
    blockable.blocked = False
    await closed
    assert await next_data(receiver) == b"last words"
    await protocol.lost
    assert protocol.reason is not None
    assert protocol.reason.check(ns.ConnectionDone)


async def test_abort_drops_the_buffer_and_reports_connection_lost(reactor: Reactor) -> None:
    protocol = Recorder()
    sender = reactor.listen_udp(0, protocol)
    real = sender.transport._sock
    assert real is not None
    sender.transport._sock = _Blockable(real)  # type: ignore[assignment]
    sender.transport.write(b"never sent", ("127.0.0.1", 9))
    sender.transport.abort()
    await asyncio.wait_for(protocol.lost.as_future(), WAIT)
    assert protocol.reason is not None
    assert protocol.reason.check(ns.ConnectionLost)
    assert sender.transport.datagrams_sent == 0
    assert sender.transport.state == "closed"


# ---- connected UDP


async def test_connected_transport_writes_to_its_peer_without_an_address(
    reactor: Reactor,
) -> None:
    peer = Recorder()
    peer_listener = reactor.listen_udp(0, peer)
    listener = reactor.listen_udp(0, Recorder())
    listener.transport.connect("127.0.0.1", peer_listener.port)
    assert listener.transport.peer == ns.Address("udp", "127.0.0.1", peer_listener.port)
    listener.transport.write(b"no address needed")
    data, addr = await next_item(peer.received)
    assert data == b"no address needed"
    assert addr == ("127.0.0.1", listener.port)


async def test_connected_transport_receives_only_from_its_peer(reactor: Reactor) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol)
    with client_socket() as peer, client_socket() as stranger:
        peer.bind(("127.0.0.1", 0))
        listener.transport.connect(*peer.getsockname())
        stranger.sendto(b"from a stranger", ("127.0.0.1", listener.port))
        peer.sendto(b"from the peer", ("127.0.0.1", listener.port))
        # Sent later on the same path: had the stranger's arrived, it would come first.
        assert await next_data(protocol) == b"from the peer"


def test_connected_transport_refuses_a_write_to_another_address(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Recorder())
    listener.transport.connect("127.0.0.1", 9)
    with pytest.raises(ValueError, match="connected"):
        listener.transport.write(b"x", ("127.0.0.1", 10))


async def test_error_received_gets_connection_refused_on_a_connected_socket_to_a_closed_port(
    reactor: Reactor,
) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol)
    listener.transport.connect("127.0.0.1", closed_port())
    listener.transport.write(b"anyone there?")
    exc = await next_item(protocol.errors)
    assert isinstance(exc, ConnectionRefusedError)
    assert listener.transport.state == "open"


# ---- the registry and closing


def test_listener_is_in_the_reactors_registry_until_closed(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Recorder())
    assert listener in reactor.listeners
    reactor.run_until(listener.close(), timeout=WAIT)
    assert listener not in reactor.listeners


def test_close_calls_connection_lost_with_connection_done(reactor: Reactor) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol)
    reactor.run_until(listener.close(), timeout=WAIT)
    assert protocol.lost.called
    assert protocol.reason is not None
    assert protocol.reason.check(ns.ConnectionDone)
    assert listener.transport.get_extra_info("socket") is None
    assert listener.closed


async def test_close_from_inside_datagram_received_reports_lost_after_it_returns(
    reactor: Reactor,
) -> None:
    events: list[str] = []

    class Quitter(Recorder):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.close()
            events.append("received")

        def connection_lost(self, reason: ns.Failure) -> None:
            events.append("lost")
            super().connection_lost(reason)

    protocol = Quitter()
    listener = reactor.listen_udp(0, protocol)
    with client_socket() as client:
        client.sendto(b"bye", ("127.0.0.1", listener.port))
        await asyncio.wait_for(protocol.lost.as_future(), WAIT)
    assert events == ["received", "lost"]
    assert listener not in reactor.listeners


def test_closing_twice_gives_a_deferred_that_has_fired(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Recorder())
    reactor.run_until(listener.close(), timeout=WAIT)
    assert listener.close().called


def test_reactor_shutdown_closes_udp_listeners(reactor: Reactor) -> None:
    protocol = Recorder()
    listener = reactor.listen_udp(0, protocol)
    reactor.close()
    assert protocol.lost.called
    assert listener.transport.state == "closed"


def test_repr_tells_kind_address_protocol_and_state(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Echo())
    text = repr(listener)
    assert text.startswith(f"<DatagramListener udp 127.0.0.1:{listener.port} Echo listening")
    reactor.run_until(listener.close(), timeout=WAIT)
    assert "closed" in repr(listener)


# ---- multicast


GROUP = "239.255.42.1"


async def test_multicast_two_receivers_on_one_port_both_receive(reactor: Reactor) -> None:
    a, b = Recorder(), Recorder()
    first = reactor.listen_multicast(0, a, GROUP)
    second = reactor.listen_multicast(first.port, b, GROUP)
    assert isinstance(second, DatagramListener)
    assert second.port == first.port
    with multicast_sender() as sender:
        sender.sendto(b"to everyone", (GROUP, first.port))
        assert await next_data(a) == b"to everyone"
        assert await next_data(b) == b"to everyone"


async def test_leave_group_stops_delivery_to_that_listener(reactor: Reactor) -> None:
    a, b = Recorder(), Recorder()
    first = reactor.listen_multicast(0, a, GROUP)
    reactor.listen_multicast(first.port, b, GROUP)
    with multicast_sender() as sender:
        sender.sendto(b"one", (GROUP, first.port))
        assert [await next_data(a), await next_data(b)] == [b"one", b"one"]

        first.transport.leave_group(GROUP)
        sender.sendto(b"two", (GROUP, first.port))
        assert await next_data(b) == b"two"

        # The sentinel: join again and send; had "two" reached a, it would come first.
        first.transport.join_group(GROUP)
        sender.sendto(b"three", (GROUP, first.port))
        assert await next_data(a) == b"three"
        assert await next_data(b) == b"three"


async def test_multicast_listener_does_not_receive_unicast_to_its_port(
    reactor: Reactor,
) -> None:
    protocol = Recorder()
    listener = reactor.listen_multicast(0, protocol, GROUP)
    with multicast_sender() as sender:
        sender.sendto(b"unicast", ("127.0.0.1", listener.port))
        sender.sendto(b"multicast", (GROUP, listener.port))
        assert await next_data(protocol) == b"multicast"


async def test_multicast_listener_does_not_receive_another_group_on_its_port(
    reactor: Reactor,
) -> None:
    mine, other = Recorder(), Recorder()
    listener = reactor.listen_multicast(0, mine, GROUP)
    reactor.listen_multicast(listener.port, other, "239.255.42.2")
    with multicast_sender() as sender:
        sender.sendto(b"other group", ("239.255.42.2", listener.port))
        assert await next_data(other) == b"other group"
        sender.sendto(b"my group", (GROUP, listener.port))
        assert await next_data(mine) == b"my group"


async def test_multicast_listener_sends_to_its_group(reactor: Reactor) -> None:
    receiver = Recorder()
    listener = reactor.listen_multicast(0, receiver, GROUP)
    sender = reactor.listen_multicast(listener.port, Recorder(), GROUP)
    sender.transport.write(b"from a listener", (GROUP, listener.port))
    assert await next_data(receiver) == b"from a listener"


async def test_multicast_reaches_a_receiver_in_another_process(
    reactor: Reactor, tmp_path: Path
) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys

            import netshell as ns
            from netshell import reactor


            class Printer(ns.DatagramProtocol):
                def datagram_received(self, data, addr):
                    print("got", data.decode(), flush=True)
                    reactor.stop()


            listener = reactor.listen_multicast(0, Printer(), sys.argv[1])
            print("ready", listener.port, flush=True)
            reactor.run()
            """
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        GROUP,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        ready = await asyncio.wait_for(proc.stdout.readline(), 30)
        word, port = ready.decode().split()
        assert word == "ready"
        with multicast_sender() as sender:
            sender.sendto(b"across processes", (GROUP, int(port)))
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line == b"got across processes\n"
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_ttl_and_loopback_setters_reflect_in_the_getters(reactor: Reactor) -> None:
    listener = reactor.listen_multicast(0, Recorder(), GROUP, ttl=3, loopback=False)
    t = listener.transport
    assert (t.get_ttl(), t.get_loopback()) == (3, False)
    t.set_ttl(7)
    t.set_loopback(True)
    assert (t.get_ttl(), t.get_loopback()) == (7, True)


def test_ttl_out_of_range_raises_value_error(reactor: Reactor) -> None:
    listener = reactor.listen_udp(0, Recorder())
    with pytest.raises(ValueError, match="TTL"):
        listener.transport.set_ttl(256)


def test_listen_multicast_rejects_an_address_that_is_not_multicast(reactor: Reactor) -> None:
    with pytest.raises(ValueError, match="not a multicast address"):
        reactor.listen_multicast(0, Recorder(), "127.0.0.1")


def test_joining_a_group_twice_raises_oserror_naming_it(reactor: Reactor) -> None:
    listener = reactor.listen_multicast(0, Recorder(), GROUP)
    with pytest.raises(OSError, match=re.escape(GROUP)):
        listener.transport.join_group(GROUP)


def test_multicast_listener_address_is_the_group(reactor: Reactor) -> None:
    listener = reactor.listen_multicast(0, Recorder(), GROUP)
    assert listener.address == ns.Address("udp", GROUP, listener.port)
    assert listener.group == GROUP
    assert f"group {GROUP}" in repr(listener)
