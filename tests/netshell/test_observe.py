"""netshell.observe: the core's observer hooks, event by event, and the registry's rules.

Each event is checked where the core raises it (Deferred, DelayedCall, TCP, TLS, UDP),
with its arguments; the registry's rules (once when added twice, a raising observer is
logged and removed, nothing observed after removal) are checked on their own.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import netshell as ns
from netshell import observe, tls
from netshell.defer import Deferred
from netshell.failure import Failure
from netshell.testing import Clock, RecordingEcho, RecordingFactory, RecordingProtocol


class Log(observe.Observer):
    """Records every event as a tuple (event name, arguments...)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def connection_made(self, transport: Any) -> None:
        self.events.append(("connection_made", transport))

    def connection_lost(self, transport: Any, reason: Any) -> None:
        self.events.append(("connection_lost", transport, reason))

    def data_in(self, transport: Any, data: bytes, addr: Any) -> None:
        self.events.append(("data_in", transport, bytes(data), addr))

    def data_out(self, transport: Any, data: bytes, addr: Any) -> None:
        self.events.append(("data_out", transport, bytes(data), addr))

    def timed_call_run(self, call: Any) -> None:
        self.events.append(("timed_call_run", call))

    def deferred_step_added(self, d: Any, step: Any, callback: Any, errback: Any) -> None:
        self.events.append(("deferred_step_added", d, step, callback, errback))

    def deferred_step_ran(self, d: Any, step: Any, fn: Any, got: Any, result: Any,
                          raised: bool) -> None:
        self.events.append(("deferred_step_ran", d, step, fn, got, result, raised))

    def deferred_fired(self, d: Any, result: Any) -> None:
        self.events.append(("deferred_fired", d, result))

    def deferred_settled(self, d: Any, result: Any) -> None:
        self.events.append(("deferred_settled", d, result))

    def names(self) -> list[str]:
        return [e[0] for e in self.events]

    def about(self, transport: Any) -> list[tuple[Any, ...]]:
        """The events of one transport, without the transport."""
        return [(e[0], *e[2:]) for e in self.events if len(e) > 1 and e[1] is transport]


@pytest.fixture
def log() -> Any:
    o = Log()
    observe.add_observer(o)
    yield o
    observe.remove_observer(o)


def double(x: int) -> int:
    return x * 2


def boom(x: Any) -> Any:
    raise ValueError("bad")


# ---- the registry


def test_nothing_is_registered_and_every_event_tuple_is_empty() -> None:
    assert observe.observers() == ()
    assert all(getattr(observe, e) == () for e in observe.EVENTS)
    assert observe.deferreds == ()


def test_an_observer_gets_only_the_events_it_has_methods_for() -> None:
    class OnlyFired:
        def deferred_fired(self, d: Any, result: Any) -> None:
            pass

    class InheritsTheRest(observe.Observer):
        def data_in(self, transport: Any, data: bytes, addr: Any) -> None:
            pass

    a, b = OnlyFired(), InheritsTheRest()
    observe.add_observer(a)
    observe.add_observer(b)
    try:
        taken = {e: getattr(observe, e) for e in observe.EVENTS if getattr(observe, e)}
        assert taken == {"deferred_fired": (a,), "data_in": (b,)}
        assert observe.deferreds == (a,)
    finally:
        observe.remove_observer(a)
        observe.remove_observer(b)
    assert observe.observers() == ()


def test_added_twice_is_registered_once_and_removing_twice_is_harmless() -> None:
    o = Log()
    observe.add_observer(o)
    observe.add_observer(o)
    assert observe.observers() == (o,)
    observe.remove_observer(o)
    observe.remove_observer(o)
    assert observe.observers() == ()


def test_an_object_that_observes_nothing_is_refused() -> None:
    with pytest.raises(TypeError, match="observes nothing"):
        observe.add_observer(object())
    with pytest.raises(TypeError, match="observes nothing"):
        observe.add_observer(observe.Observer())  # overrides nothing
    assert observe.observers() == ()


def test_a_raising_observer_is_logged_and_removed_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def deferred_fired(self, d: Any, result: Any) -> None:
            raise RuntimeError("observer bug")

    broken, log = Broken(), Log()
    observe.add_observer(broken)
    observe.add_observer(log)
    try:
        d: Deferred[int] = Deferred()
        d.add_callback(double)
        with caplog.at_level(logging.ERROR, logger="netshell.observe"):
            d.callback(4)
        assert d.result == 8  # the chain ran as if nothing happened
        assert observe.observers() == (log,)
        assert "observer bug" in caplog.text and "it is removed" in caplog.text
        assert ("deferred_fired", d, 4) in log.events
    finally:
        observe.remove_observer(broken)
        observe.remove_observer(log)


def test_nothing_is_observed_after_removal() -> None:
    log = Log()
    observe.add_observer(log)
    observe.remove_observer(log)
    Deferred().callback(1)
    Clock().call_later(0, print)
    assert log.events == []


# ---- Deferreds


def test_a_chain_added_ran_fired_and_settled_in_order(log: Log) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double)
    d.add_callbacks(boom, None)
    d.add_errback(lambda f: "handled")
    d.callback(5)
    added = [e for e in log.events if e[0] == "deferred_step_added"]
    assert [(e[3], e[4]) for e in added][:2] == [(double, None), (boom, None)]
    assert added[2][3] is None and callable(added[2][4])
    ran = [e for e in log.events if e[0] == "deferred_step_ran"]
    assert [(e[3], e[4], e[6]) for e in ran[:2]] == [(double, 5, False), (boom, 10, True)]
    assert ran[0][5] == 10
    failure = ran[1][5]
    assert isinstance(failure, Failure) and failure.check(ValueError)
    assert ran[2][4] is failure and ran[2][5] == "handled"
    # step identity: each run names the step added for it
    assert [e[2] for e in ran] == [e[2] for e in added]
    assert log.names()[-5:] == [
        "deferred_fired", "deferred_step_ran", "deferred_step_ran", "deferred_step_ran",
        "deferred_settled"]
    assert log.events[-1] == ("deferred_settled", d, "handled")


def test_a_step_whose_side_is_none_is_passed_by_without_an_event(log: Log) -> None:
    d: Deferred[int] = Deferred()
    d.add_errback(lambda f: None)
    d.callback(1)
    assert "deferred_step_ran" not in log.names()
    assert log.events[-1] == ("deferred_settled", d, 1)


def test_errback_fires_with_its_failure(log: Log) -> None:
    d: Deferred[int] = Deferred()
    d.add_errback(lambda f: None)
    d.errback(KeyError("k"))
    fired = [e for e in log.events if e[0] == "deferred_fired"]
    assert len(fired) == 1 and fired[0][2].check(KeyError)


def test_a_chain_waiting_on_an_inner_deferred_settles_once_the_inner_one_hands_on(
    log: Log,
) -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    outer.add_callback(lambda _: inner)
    outer.add_callback(double)
    outer.callback(None)
    assert [e for e in log.events if e[0] == "deferred_settled"] == []
    ran = [e for e in log.events if e[0] == "deferred_step_ran"]
    assert ran[-1][5] is inner  # the step gave the Deferred the chain now waits on
    inner.callback(7)
    settled = [e[1:] for e in log.events if e[0] == "deferred_settled"]
    assert settled == [(inner, 7), (outer, 14)]


def test_a_paused_chain_does_not_settle_until_unpaused(log: Log) -> None:
    d: Deferred[int] = Deferred()
    d.pause()
    d.callback(1)
    assert "deferred_settled" not in log.names()
    d.unpause()
    assert log.events[-1] == ("deferred_settled", d, 1)


def test_a_step_added_after_firing_runs_and_settles_again(log: Log) -> None:
    d: Deferred[int] = Deferred()
    d.callback(2)
    d.add_callback(double)
    assert log.names() == ["deferred_fired", "deferred_settled", "deferred_step_added",
                           "deferred_step_ran", "deferred_settled"]
    assert log.events[-1] == ("deferred_settled", d, 4)


def test_mark_failure_seen_keeps_the_failure_but_does_not_log_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import gc

    d: Deferred[int] = Deferred()
    d.errback(ValueError("seen"))
    d.mark_failure_seen()
    assert isinstance(d.result, Failure)  # still the chain's result
    with caplog.at_level(logging.ERROR):
        del d
        gc.collect()
    assert "Unhandled error in Deferred" not in caplog.text
    d2: Deferred[int] = Deferred()
    d2.errback(ValueError("not seen"))
    with caplog.at_level(logging.ERROR):
        del d2
        gc.collect()
    assert "Unhandled error in Deferred" in caplog.text


# ---- timed calls


def test_a_timed_call_is_observed_before_it_runs_and_not_when_cancelled() -> None:
    clock = Clock()
    ran: list[str] = []
    seen: list[tuple[Any, list[str]]] = []

    class Timers:
        def timed_call_run(self, call: Any) -> None:
            seen.append((call, list(ran)))  # what had run when it was observed

    call = clock.call_later(1, ran.append, "x")
    cancelled = clock.call_later(1, ran.append, "y")
    cancelled.cancel()
    timers = Timers()
    observe.add_observer(timers)
    try:
        clock.advance(1)
    finally:
        observe.remove_observer(timers)
    assert ran == ["x"]
    assert seen == [(call, [])]


# ---- stream connections


async def test_tcp_made_data_and_lost_on_both_ends(reactor: ns.Reactor, log: Log) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tcp(0, factory)
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol))
    server = await factory.accepted()
    client.transport.write(b"ping")
    await client.wait_for_bytes(4)
    client.transport.close()
    await server.done
    c, s = client.transport, server.transport
    assert [e[0] for e in log.about(s)] == ["connection_made", "data_in", "data_out",
                                            "connection_lost"]
    assert log.about(s)[1:3] == [("data_in", b"ping", None), ("data_out", b"ping", None)]
    assert log.about(c)[:3] == [("connection_made",), ("data_out", b"ping", None),
                                ("data_in", b"ping", None)]
    reason = log.about(s)[-1][1]
    assert isinstance(reason, Failure) and reason.check(ns.ConnectionDone)
    await listener.close()


async def test_connection_made_comes_before_the_protocol_writes(
    reactor: ns.Reactor, log: Log
) -> None:
    class Greeter(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.write(b"hello\r\n")

    factory = RecordingFactory(Greeter)
    listener = reactor.listen_tcp(0, factory)
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol))
    server = await factory.accepted()
    await client.wait_for_bytes(7)
    assert [e[0] for e in log.about(server.transport)][:2] == ["connection_made", "data_out"]
    client.transport.close()
    await server.done
    await listener.close()


async def test_tls_data_is_observed_as_plaintext(reactor: ns.Reactor, log: Log) -> None:
    cert, key, ca = tls.self_signed()
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
    client = await reactor.connect_tls(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol),
        tls.client_context("127.0.0.1", ca=ca),
    )
    server = await factory.accepted()
    client.transport.write(b"secret words")
    await client.wait_for_bytes(12)
    data = [e[:2] for e in log.about(server.transport) if e[0].startswith("data_")]
    assert data == [("data_in", b"secret words"), ("data_out", b"secret words")]
    assert log.about(server.transport)[0] == ("connection_made",)
    assert server.transport.tls is not None
    client.transport.close()
    await server.done
    await listener.close()


async def test_a_refused_connection_has_no_events(reactor: ns.Reactor, log: Log) -> None:
    class Refusing(ns.Factory):
        def build_protocol(self, addr: Any) -> None:
            return None

    listener = reactor.listen_tcp(0, Refusing())
    with pytest.raises(ns.ConnectError):
        await reactor.connect_tcp("127.0.0.1", listener.port, Refusing())
    assert [e for e in log.events if e[0].startswith("connection_")] == []
    await listener.close()


# ---- datagrams


async def test_udp_datagrams_in_and_out_with_their_addresses(
    reactor: ns.Reactor, log: Log
) -> None:
    class Echo(ns.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.write(data, addr)

    class Catch(ns.DatagramProtocol):
        def __init__(self) -> None:
            self.got: Deferred[bytes] = Deferred()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.got.callback(data)

    echo = reactor.listen_udp(0, Echo())
    catch = Catch()
    sender = reactor.listen_udp(0, catch)
    sender.transport.write(b"ping", ("127.0.0.1", echo.port))
    assert await catch.got == b"ping"
    to_echo, from_echo = ("127.0.0.1", echo.port), ("127.0.0.1", sender.port)
    assert log.about(sender.transport)[0] == ("data_out", b"ping", to_echo)
    assert [e[:2] for e in log.about(echo.transport)] == [("data_in", b"ping"),
                                                          ("data_out", b"ping")]
    assert tuple(log.about(echo.transport)[0][2][:2]) == from_echo
    assert tuple(log.about(echo.transport)[1][2][:2]) == from_echo
    echo.close()
    sender.close()
