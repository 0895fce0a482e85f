"""trace(): the events of a listener, a connection, a protocol class, or everything.

Real connections on loopback; each test waits on the Deferreds its protocols
fire. The ``traced`` fixture always stops tracing, so no observer is left registered for
another test (the suite checks it after every test: tests/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
import netshell.testing
from netshell import observe, tls
from netshell.defer import Deferred
from netshell.reactor import DelayedCall
from netshell.shell.display import hexdump
from netshell.shell.tracing import Tracer
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol
from netshell.udp import DatagramTransport


class Traced:
    """A Tracer whose lines land in a list, with a fixed clock."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.tracer = Tracer(self.lines.append, clock=lambda: "T")

    def text(self) -> str:
        return "\n".join(self.lines)

    def about(self, number: int) -> list[str]:
        """The lines about connection #number, without the clock."""
        return [line[2:] for line in self.lines if line.startswith(f"T #{number} ")]


@pytest.fixture
def traced() -> Iterator[Traced]:
    t = Traced()
    try:
        yield t
    finally:
        t.tracer.stop()


# The classes whose methods the tracer once swapped: it must never touch them.
WATCHED = (Deferred, DelayedCall, ns.StreamTransport, DatagramTransport)


def class_dicts() -> list[dict[str, Any]]:
    return [dict(cls.__dict__) for cls in WATCHED]


def events() -> set[str]:
    """The events some observer takes now."""
    return {e for e in observe.EVENTS if getattr(observe, e)}


async def echo_listener(reactor: ns.Reactor) -> tuple[Any, RecordingFactory]:
    factory = RecordingFactory(RecordingEcho)
    return reactor.listen_tcp(0, factory), factory


async def connect(reactor: ns.Reactor, listener: Any) -> Any:
    return await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )


async def exchange(client: Any, data: bytes) -> None:
    """Send ``data`` to an echo server and wait until it has come back."""
    already = len(client.received)
    client.transport.write(data)
    await client.wait_for_bytes(already + len(data))


# ---- costs nothing when off


def test_tracing_everything_observes_and_stop_leaves_no_observer(traced: Traced) -> None:
    before = class_dicts()
    traced.tracer.start(None)
    assert events() == set(observe.EVENTS) - {
        "deferred_step_added", "deferred_step_ran", "deferred_settled"}
    assert traced.tracer.active
    assert class_dicts() == before  # nothing patched
    traced.tracer.stop()
    assert observe.observers() == ()
    assert not traced.tracer.active


def test_tracing_one_target_observes_connections_and_bytes_only(
    reactor: ns.Reactor, traced: Traced
) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    traced.tracer.start(listener)
    # Deferreds and timed calls stay unobserved: only "trace everything" shows them.
    assert events() == {"connection_made", "connection_lost", "data_in", "data_out"}
    assert observe.deferreds == ()
    traced.tracer.stop()
    assert observe.observers() == ()
    listener.close()


def test_start_twice_registers_once(traced: Traced) -> None:
    traced.tracer.start(None)
    traced.tracer.start(None)
    assert len(observe.observers()) == 2  # connection events, and the everything events
    traced.tracer.stop()
    assert observe.observers() == ()


def test_nothing_is_observed_before_start() -> None:
    Tracer(print)
    assert observe.observers() == ()


def test_a_pending_timed_call_is_traced_when_it_fires_without_being_touched(
    traced: Traced
) -> None:
    clock = ns.testing.Clock()
    call = clock.call_later(5, print, "x")
    handle = getattr(call, "_handle", None)
    traced.tracer.start(None)
    assert getattr(call, "_handle", None) is handle
    clock.advance(5)
    assert traced.lines[-1] == "T timed call print('x') fires"
    traced.tracer.stop()


def test_a_bad_target_is_a_type_error_and_observes_nothing(traced: Traced) -> None:
    with pytest.raises(TypeError, match="not int"):
        traced.tracer.start(42)
    with pytest.raises(TypeError, match="not str"):
        traced.tracer.start("tcp:8000")
    assert not traced.tracer.active
    assert observe.observers() == ()


# ---- what is followed


async def test_tracing_a_listener_shows_only_its_connections(
    reactor: ns.Reactor, traced: Traced
) -> None:
    one, one_factory = await echo_listener(reactor)
    two, two_factory = await echo_listener(reactor)
    traced.tracer.start(one)
    c1 = await connect(reactor, one)
    s1 = await one_factory.accepted()
    c2 = await connect(reactor, two)
    s2 = await two_factory.accepted()
    await exchange(c1, b"for one")
    await exchange(c2, b"for two")
    n = s1.transport.number
    assert traced.about(n) == [
        f"#{n} tcp accepted: {s1.transport.host} <-> {s1.transport.peer} RecordingEcho",
        f"#{n} in  7 B  b'for one'",
        f"#{n} out 7 B  b'for one'",
    ]
    assert len(traced.lines) == 3  # nothing of listener two, nor of the clients
    for other in (c1.transport, c2.transport, s2.transport):
        assert traced.about(other.number) == []
    assert "for two" not in traced.text()


async def test_a_traced_connection_closing_is_shown_with_its_counts(
    reactor: ns.Reactor, traced: Traced
) -> None:
    listener, factory = await echo_listener(reactor)
    traced.tracer.start(listener)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    await exchange(client, b"abc")
    client.transport.close()
    await server.done
    n = server.transport.number
    assert traced.about(n)[-1] == f"#{n} closed (3 B in, 3 B out)"


async def test_an_aborted_connection_is_shown_as_aborted(
    reactor: ns.Reactor, traced: Traced
) -> None:
    listener, factory = await echo_listener(reactor)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    traced.tracer.start(server.transport)
    server.transport.abort()
    await server.done
    n = server.transport.number
    assert traced.about(n) == [f"#{n} aborted (0 B in, 0 B out)"]
    await client.done


async def test_tracing_a_protocol_class(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    traced.tracer.start(RecordingEcho)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    await exchange(client, b"ping")
    n = server.transport.number
    assert traced.about(n)[1:] == [f"#{n} in  4 B  b'ping'", f"#{n} out 4 B  b'ping'"]
    assert traced.about(client.transport.number) == []  # a RecordingProtocol, not an echo


async def test_tracing_a_protocol_instance(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    traced.tracer.start(client)
    await exchange(client, b"hey")
    assert traced.about(client.transport.number) == [
        f"#{client.transport.number} out 3 B  b'hey'",
        f"#{client.transport.number} in  3 B  b'hey'",
    ]
    assert traced.about(server.transport.number) == []


async def test_tracing_a_single_connection(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    first = await connect(reactor, listener)
    first_server = await factory.accepted()
    second = await connect(reactor, listener)
    second_server = await factory.accepted()
    traced.tracer.start(first_server.transport)
    await exchange(first, b"1st")
    await exchange(second, b"2nd")
    n = first_server.transport.number
    assert traced.about(n) == [f"#{n} in  3 B  b'1st'", f"#{n} out 3 B  b'1st'"]
    assert len(traced.lines) == 2
    assert traced.about(second_server.transport.number) == []


async def test_bytes_held_while_reading_is_paused_are_traced_once_when_delivered(
    reactor: ns.Reactor, traced: Traced
) -> None:
    listener, factory = await echo_listener(reactor)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    traced.tracer.start(server.transport)
    server.transport.pause_reading()
    # What uvloop does: data arrives although reading is paused; the transport holds it.
    server.transport.data_received(b"held")
    assert traced.lines == []  # not delivered yet
    server.transport.resume_reading()
    assert await client.wait_for_bytes(4) == b"held"  # delivered, and echoed
    n = server.transport.number
    assert traced.about(n) == [f"#{n} in  4 B  b'held'", f"#{n} out 4 B  b'held'"]


async def test_write_sequence_is_traced_as_one_write(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    client = await connect(reactor, listener)
    await factory.accepted()
    traced.tracer.start(client.transport)
    client.transport.write_sequence(iter([b"ab", b"cd"]))  # an iterator is read once
    await client.wait_for_bytes(4)
    n = client.transport.number
    assert traced.about(n)[0] == f"#{n} out 4 B  b'abcd'"


async def test_tracing_everything(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    traced.tracer.start(None)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    await exchange(client, b"x")
    text = traced.text()
    assert f"T #{server.transport.number} tcp accepted" in text
    assert f"T #{client.transport.number} tcp connected" in text
    assert f"T #{client.transport.number} out 1 B  b'x'" in text
    assert f"T #{server.transport.number} in  1 B  b'x'" in text


def fire_later(reactor: ns.Reactor, value: Any) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()

    def fire_it(v: Any) -> None:
        d.callback(v)

    reactor.call_later(0, fire_it, value)
    return d


async def test_tracing_everything_shows_timed_calls_and_deferreds_firing(
    reactor: ns.Reactor, traced: Traced
) -> None:
    traced.tracer.start(None)
    d = fire_later(reactor, 7)
    assert await d == 7
    failing: Deferred[None] = Deferred()
    failing.add_errback(lambda f: None)
    failing.errback(KeyError("gone"))
    assert "T timed call fire_later.<locals>.fire_it(7) fires" in traced.lines
    assert f"T Deferred #{d.number} fired: 7" in traced.lines
    assert f"T Deferred #{failing.number} failed: KeyError('gone')" in traced.lines
    fired_at = traced.lines.index(f"T Deferred #{d.number} fired: 7")
    assert traced.lines.index("T timed call fire_later.<locals>.fire_it(7) fires") < fired_at


async def test_a_cancelled_deferred_is_traced_as_cancelled(
    reactor: ns.Reactor, traced: Traced
) -> None:
    traced.tracer.start(None)
    d: Deferred[None] = Deferred()
    d.add_errback(lambda f: None)
    d.cancel()
    assert f"T Deferred #{d.number} cancelled" in traced.lines
    assert not any("CancelledError" in line for line in traced.lines)


async def test_timed_calls_and_deferreds_are_shown_only_when_tracing_everything(
    reactor: ns.Reactor, traced: Traced
) -> None:
    listener, _ = await echo_listener(reactor)
    traced.tracer.start(listener)
    assert await fire_later(reactor, 1) == 1
    assert traced.lines == []


async def test_a_timed_call_scheduled_before_trace_started_is_traced(
    reactor: ns.Reactor, traced: Traced
) -> None:
    d = fire_later(reactor, "early")
    traced.tracer.start(None)
    assert await d == "early"
    assert "T timed call fire_later.<locals>.fire_it('early') fires" in traced.lines


async def test_a_cancelled_timed_call_is_not_shown(reactor: ns.Reactor, traced: Traced) -> None:
    traced.tracer.start(None)
    reactor.call_later(0, print, "never").cancel()
    assert await fire_later(reactor, 1) == 1
    assert not any("print" in line for line in traced.lines)


async def test_payload_false_hides_the_bytes(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    traced.tracer.start(listener, payload=False)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    await exchange(client, b"top secret")
    n = server.transport.number
    assert traced.about(n)[1:] == [f"#{n} in  10 B", f"#{n} out 10 B"]
    assert "secret" not in traced.text()


async def test_hexdump_shows_the_bytes_as_a_dump(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    traced.tracer.start(listener, hexdump=True)
    client = await connect(reactor, listener)
    server = await factory.accepted()
    data = bytes(range(20))
    await exchange(client, data)
    n = server.transport.number
    assert f"T #{n} in  20 B\n{hexdump(data)}" in traced.lines


async def test_tls_is_traced_as_plaintext(reactor: ns.Reactor, traced: Traced) -> None:
    cert, key, ca = tls.self_signed()
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
    traced.tracer.start(listener)
    client = await reactor.connect_tls(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol),
        tls.client_context("127.0.0.1", ca=ca),
    )
    server = await factory.accepted()
    await exchange(client, b"plain words")
    n = server.transport.number
    lines = traced.about(n)
    assert lines[0].startswith(f"#{n} tcp accepted (TLS): ")
    assert lines[1:] == [f"#{n} in  11 B  b'plain words'", f"#{n} out 11 B  b'plain words'"]


class Datagrams(ns.DatagramProtocol):
    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.received: ns.DeferredQueue[bytes] = ns.DeferredQueue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.echo:
            self.transport.write(data, addr)
        self.received.put(data)


async def test_udp_datagrams_in_and_out_on_a_traced_datagram_listener(
    reactor: ns.Reactor, traced: Traced
) -> None:
    echo = reactor.listen_udp(0, Datagrams(echo=True))
    sender_protocol = Datagrams()
    sender = reactor.listen_udp(0, sender_protocol)
    traced.tracer.start(echo)
    sender.transport.write(b"ping", ("127.0.0.1", echo.port))
    assert await sender_protocol.received.get() == b"ping"
    here, there = f"127.0.0.1:{echo.port}", f"127.0.0.1:{sender.port}"
    assert traced.lines == [
        f"T udp {here} in  4 B from {there}  b'ping'",
        f"T udp {here} out 4 B to {there}  b'ping'",
    ]


async def test_udp_tracing_stops_with_untrace(reactor: ns.Reactor, traced: Traced) -> None:
    echo_protocol = Datagrams(echo=True)
    echo = reactor.listen_udp(0, echo_protocol)
    sender_protocol = Datagrams()
    sender = reactor.listen_udp(0, sender_protocol)
    traced.tracer.start(echo)
    traced.tracer.stop(echo)
    assert "datagram_received" not in vars(echo_protocol)
    sender.transport.write(b"ping", ("127.0.0.1", echo.port))
    assert await sender_protocol.received.get() == b"ping"
    assert traced.lines == []


async def test_tracing_everything_follows_a_datagram_listener_made_afterwards(
    reactor: ns.Reactor, traced: Traced
) -> None:
    traced.tracer.start(None)
    receiver = Datagrams()
    listener = reactor.listen_udp(0, receiver)
    sender = reactor.listen_udp(0, ns.DatagramProtocol())
    sender.transport.write(b"late", ("127.0.0.1", listener.port))
    assert await receiver.received.get() == b"late"
    assert f"T udp 127.0.0.1:{listener.port} in  4 B from 127.0.0.1:{sender.port}  b'late'" \
        in traced.lines


async def test_untrace_one_of_two_targets_keeps_the_other(
    reactor: ns.Reactor, traced: Traced
) -> None:
    one, one_factory = await echo_listener(reactor)
    two, two_factory = await echo_listener(reactor)
    traced.tracer.start(one)
    traced.tracer.start(two)
    traced.tracer.stop(one)
    assert traced.tracer.targets == [two]
    c1 = await connect(reactor, one)
    s1 = await one_factory.accepted()
    c2 = await connect(reactor, two)
    s2 = await two_factory.accepted()
    await exchange(c1, b"one")
    await exchange(c2, b"two")
    assert traced.about(s1.transport.number) == []
    assert traced.about(s2.transport.number)[1:] == [
        f"#{s2.transport.number} in  3 B  b'two'", f"#{s2.transport.number} out 3 B  b'two'"]
    assert observe.observers() != ()
    traced.tracer.stop(two)
    assert not traced.tracer.active
    assert observe.observers() == ()  # the last one out


async def test_after_stop_nothing_more_is_traced(reactor: ns.Reactor, traced: Traced) -> None:
    listener, factory = await echo_listener(reactor)
    traced.tracer.start(None)
    client = await connect(reactor, listener)
    await factory.accepted()
    traced.tracer.stop()
    seen = len(traced.lines)
    await exchange(client, b"quiet")
    assert await fire_later(reactor, 1) == 1
    assert len(traced.lines) == seen


def test_the_default_clock_is_a_wall_clock_time() -> None:
    lines: list[str] = []
    tracer = Tracer(lines.append)
    tracer.emit("hello")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d\d hello", lines[0])


# ---- each trace's lines in the context of the code that asked for it (Jupyter: its cell)


async def test_two_traces_print_each_in_the_context_that_asked_for_it(reactor: ns.Reactor) -> None:
    import contextvars

    cell: contextvars.ContextVar[str] = contextvars.ContextVar("cell", default="none")
    lines: list[tuple[str, str]] = []
    tracer = Tracer(lambda line: lines.append((cell.get(), line)), clock=lambda: "T")
    a, _ = await echo_listener(reactor)
    b, _ = await echo_listener(reactor)

    def trace_in(name: str, target: Any) -> None:
        def asked() -> None:
            cell.set(name)
            tracer.start(target, context=contextvars.copy_context())

        contextvars.copy_context().run(asked)

    try:
        trace_in("cell 2", a)
        trace_in("cell 3", b)  # a second trace does not take the first one's lines
        client_a = await connect(reactor, a)
        client_b = await connect(reactor, b)
        await exchange(client_a, b"to a")
        await exchange(client_b, b"to b")
    finally:
        tracer.stop()
    about_a = [where for where, line in lines if "to a" in line]
    about_b = [where for where, line in lines if "to b" in line]
    assert about_a and set(about_a) == {"cell 2"}, lines
    assert about_b and set(about_b) == {"cell 3"}, lines
    client_a.transport.close()
    client_b.transport.close()
    a.close()
    b.close()
