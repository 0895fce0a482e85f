"""The testing kit's fakes: StringTransport's back-pressure, StringDatagramTransport,
and the rest of the stream contract on StringTransport (start_tls, send_file)."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest

import netshell as ns
from netshell.interfaces import Address
from netshell.listener import bind_socket
from netshell.testing import (
    Clock,
    StringDatagramTransport,
    StringTransport,
    failure_result_of,
    no_result,
    success_result_of,
)
from protocols import wire
from protocols.wire import Chargen, EchoDatagram, QOTDDatagram


class Producer:
    """Notes what the transport tells it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_producing(self) -> None:
        self.calls.append("pause")

    def resume_producing(self) -> None:
        self.calls.append("resume")

    def stop_producing(self) -> None:
        self.calls.append("stop")


# ---- StringTransport: back-pressure


def test_a_streaming_producer_is_paused_once_past_the_buffer_limit() -> None:
    t = StringTransport(buffer_limit=10)
    p = Producer()
    t.register_producer(p, True)
    t.write(b"x" * 10)  # at the limit: not past it
    assert (p.calls, t.write_paused) == ([], False)
    t.write(b"y")
    assert (p.calls, t.write_paused) == (["pause"], True)
    t.write(b"z" * 5)  # paused already: not told again
    assert p.calls == ["pause"]


def test_draining_to_the_limit_resumes_the_producer() -> None:
    t = StringTransport(buffer_limit=10)
    p = Producer()
    t.register_producer(p, True)
    t.write(b"0123456789abcdef")
    assert t.drain(5) == b"01234"  # 11 bytes still wait
    assert (p.calls, t.write_paused) == (["pause"], True)
    assert t.drain(1) == b"5"  # 10 wait: back at the limit
    assert (p.calls, t.write_paused) == (["pause", "resume"], False)
    assert t.value() == b"6789abcdef"
    assert t.bytes_sent == 16


def test_drain_takes_everything_by_default_and_clear_resumes_too() -> None:
    t = StringTransport(buffer_limit=3)
    p = Producer()
    t.register_producer(p, True)
    t.write(b"abcd")
    assert t.drain() == b"abcd"
    assert p.calls == ["pause", "resume"]
    t.write(b"efgh")
    t.clear()
    assert (p.calls, t.value()) == (["pause", "resume", "pause", "resume"], b"")


def test_a_producer_registered_while_the_buffer_is_full_is_paused_at_once() -> None:
    t = StringTransport(buffer_limit=2)
    t.write(b"abc")
    p = Producer()
    t.register_producer(p, True)
    assert p.calls == ["pause"]
    t.drain()
    assert p.calls == ["pause", "resume"]


def test_a_pull_producer_is_left_to_the_test() -> None:
    t = StringTransport(buffer_limit=2)
    p = Producer()
    t.register_producer(p, False)
    t.write(b"abc")
    t.drain()
    assert p.calls == []
    assert not t.write_paused


def test_without_a_buffer_limit_nothing_is_ever_paused() -> None:
    t = StringTransport()
    p = Producer()
    t.register_producer(p, True)
    t.write(b"x" * (1 << 20))
    assert (p.calls, t.write_paused) == ([], False)
    assert t.drain(3) == b"xxx"


def test_chargen_is_held_to_the_buffer_limit_and_goes_on_when_drained() -> None:
    clock = Clock()
    t = StringTransport(buffer_limit=10_000)
    p = Chargen(clock=clock)
    p.connection_made(t)
    assert p.paused and t.write_paused
    first = len(t.value())
    cycle = len(wire._CYCLE)  # chargen writes whole cycles of lines
    assert 10_000 < first < 10_000 + cycle  # one write past the limit, no more
    clock.advance(1)
    assert len(t.value()) == first  # paused: it writes nothing
    taken = t.drain()
    assert len(taken) == first
    # resumed, it wrote a new burst at once, and was paused again past the limit
    assert 10_000 < len(t.value()) < 10_000 + cycle
    assert p.paused and t.write_paused
    assert t.bytes_sent == first + len(t.value())
    p.stop_producing()


# ---- StringTransport: the rest of the contract


def test_is_closing_follows_close_and_abort() -> None:
    t = StringTransport()
    assert not t.is_closing()
    t.close()
    assert t.is_closing()
    t = StringTransport()
    t.abort()
    assert t.is_closing()


def test_start_tls_records_the_context_and_the_test_fires_it() -> None:
    t = StringTransport()
    context = object()
    d = t.start_tls(context)
    assert t.tls_context is context
    assert d is t.tls_started
    no_result(d)
    t.tls = "details"
    assert t.tls_started is not None
    t.tls_started.callback(t.tls)
    assert success_result_of(d) == "details"
    with pytest.raises(RuntimeError, match="TLS already"):
        t.start_tls(context)


def test_send_file_writes_the_part_of_the_file_asked_for() -> None:
    t = StringTransport()
    t.write(b">")
    assert success_result_of(t.send_file(io.BytesIO(b"0123456789"), 2, 5)) == 5
    assert t.value() == b">23456"


def test_send_file_of_a_short_file_fails_with_eof_error() -> None:
    t = StringTransport()
    failure = failure_result_of(t.send_file(io.BytesIO(b"0123"), 1, 10))
    assert failure.check(EOFError)
    assert t.value() == b"123"


def test_send_file_with_a_producer_registered_fails() -> None:
    t = StringTransport()
    t.register_producer(Producer(), True)
    assert failure_result_of(t.send_file(io.BytesIO(b"x"), 0, 1)).check(RuntimeError)
    assert t.value() == b""


# ---- StringDatagramTransport


class Collect(ns.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.got.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


def test_the_datagram_fake_records_each_datagram_and_its_address() -> None:
    t = StringDatagramTransport()
    t.write(b"one", ("10.0.0.1", 7))
    t.write(bytearray(b"two"), ("::1", 9))
    assert t.sent == [(b"one", ("10.0.0.1", 7)), (b"two", ("::1", 9))]
    assert (t.datagrams_sent, t.bytes_sent) == (2, 6)
    t.clear()
    assert t.sent == [] and t.datagrams_sent == 2


def test_the_datagram_fake_connects_its_protocol_and_feeds_it() -> None:
    p = Collect()
    t = StringDatagramTransport(protocol=p)
    assert p.transport is t
    t.receive(b"hello", ("192.0.2.5", 4000))
    t.receive(b"", ("192.0.2.6", 4001))
    assert p.got == [(b"hello", ("192.0.2.5", 4000)), (b"", ("192.0.2.6", 4001))]
    assert (t.datagrams_received, t.bytes_received) == (2, 5)
    err = ConnectionRefusedError("port unreachable")
    t.receive_error(err)
    assert p.errors == [err]


def test_the_datagram_fake_drives_the_wire_protocols() -> None:
    t = StringDatagramTransport(protocol=EchoDatagram())
    t.receive(b"ping", ("127.0.0.1", 5000))
    assert t.sent == [(b"ping", ("127.0.0.1", 5000))]
    t = StringDatagramTransport(protocol=QOTDDatagram(quote="Hello."))
    t.receive(b"", ("127.0.0.1", 5001))
    [(data, addr)] = t.sent
    assert b"Hello." in data and addr == ("127.0.0.1", 5001)


def test_the_datagram_fake_checks_writes_as_a_udp_transport_does() -> None:
    t = StringDatagramTransport()
    with pytest.raises(TypeError):
        t.write("text", ("127.0.0.1", 9))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs an address"):
        t.write(b"x")
    assert t.sent == []


def test_the_datagram_fake_once_connected_sends_to_its_peer_only() -> None:
    p = Collect()
    t = StringDatagramTransport(protocol=p)
    t.connect("192.0.2.1", 53)
    assert t.peer == Address("udp", "192.0.2.1", 53)
    t.write(b"q")
    t.write(b"r", ("192.0.2.1", 53))
    assert t.sent == [(b"q", ("192.0.2.1", 53)), (b"r", ("192.0.2.1", 53))]
    with pytest.raises(ValueError, match="connected to"):
        t.write(b"s", ("192.0.2.2", 53))
    t.receive(b"a", ("192.0.2.1", 53))
    with pytest.raises(RuntimeError, match="would not arrive"):
        t.receive(b"b", ("192.0.2.9", 53))
    assert p.got == [(b"a", ("192.0.2.1", 53))]


def test_the_datagram_fake_after_close() -> None:
    p = Collect()
    t = StringDatagramTransport(protocol=p)
    assert not t.is_closing()
    t.close()
    assert t.is_closing() and t.closed and not t.aborted
    with pytest.raises(RuntimeError):
        t.write(b"late", ("127.0.0.1", 9))
    with pytest.raises(RuntimeError):
        t.receive(b"late", ("127.0.0.1", 9))
    with pytest.raises(RuntimeError):
        t.connect("127.0.0.1", 9)
    assert (t.sent, p.got) == ([], [])
    t = StringDatagramTransport()
    t.abort()
    assert t.is_closing() and t.aborted
    assert "aborted" in repr(t)


# ---- the one binding helper


def test_bind_socket_binds_tcp_and_udp() -> None:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        sock, family = bind_socket("127.0.0.1", 0, kind, "bind on")
        try:
            assert family == socket.AF_INET and sock.type == kind
            assert not sock.getblocking()
        finally:
            sock.close()


def test_bind_socket_refuses_a_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="0 to 65535"):
        bind_socket("127.0.0.1", 65536, socket.SOCK_DGRAM, "bind UDP on")


def test_bind_socket_names_the_address_it_could_not_bind() -> None:
    taken, _ = bind_socket("::1", 0, socket.SOCK_DGRAM, "bind UDP on")
    try:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot bind UDP on \[::1\]:{port}: ") as info:
            bind_socket("::1", port, socket.SOCK_DGRAM, "bind UDP on")
        assert info.value.errno is not None
    finally:
        taken.close()


def test_listen_udp_refuses_a_port_out_of_range(reactor: Any) -> None:
    with pytest.raises(ValueError, match="0 to 65535"):
        reactor.listen_udp(70000, ns.DatagramProtocol())
