"""Factories: building protocols, refusing connections, start/stop, client callbacks, reconnecting.

The back-off of ReconnectingClientFactory is checked in virtual time (a
testing Clock as ``factory.clock``, a stand-in connector); reconnecting for
real uses real loopback sockets and tiny delays, waiting on the Deferreds the
factory fires when it fails and when it connects again.
"""

from __future__ import annotations

import gc
import logging
import random
from typing import Any

import pytest

import netshell as ns
from netshell.connector import Connector
from netshell.testing import Clock, RecordingEcho, RecordingFactory, RecordingProtocol
from netshell.transport import Address

Recorder = RecordingProtocol
Echo = RecordingEcho


class Collecting(RecordingFactory):
    def __init__(self, protocol: Any = Echo) -> None:
        super().__init__(protocol)


class Told(ns.ClientFactory):
    """A client factory that records what it is told, each as a Deferred."""

    protocol = Recorder

    def __init__(self) -> None:
        self.events: list[str] = []
        self.failed: ns.Deferred[tuple[Any, ns.Failure]] = ns.Deferred()
        self.lost: ns.Deferred[tuple[Any, ns.Failure]] = ns.Deferred()

    def start_factory(self) -> None:
        self.events.append("start")

    def stop_factory(self) -> None:
        self.events.append("stop")

    def client_connection_failed(self, connector: Any, reason: ns.Failure) -> None:
        self.events.append("failed")
        self.failed.callback((connector, reason))

    def client_connection_lost(self, connector: Any, reason: ns.Failure) -> None:
        self.events.append("lost")
        self.lost.callback((connector, reason))


def closed_port() -> int:
    """A port nobody listens on (a listener opened and closed at once, before the loop ran)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- Factory


class Greeter(ns.Protocol):
    def __init__(self, greeting: bytes, *, times: int = 1) -> None:
        self.greeting = greeting
        self.times = times

    def connection_made(self, transport: Any) -> None:
        transport.write(self.greeting * self.times)
        transport.close()


def test_for_protocol_passes_its_arguments_to_each_protocol() -> None:
    factory = ns.Factory.for_protocol(Greeter, b"hi", times=3)
    one = factory.build_protocol(Address("tcp", "127.0.0.1", 1))
    two = factory.build_protocol(Address("tcp", "127.0.0.1", 2))
    assert isinstance(one, Greeter) and isinstance(two, Greeter)
    assert one is not two
    assert (one.greeting, one.times) == (b"hi", 3)


async def test_for_protocol_arguments_reach_protocols_of_real_connections(
    reactor: ns.Reactor,
) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(Greeter, b"hi ", times=3))
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(Recorder)
    )
    await client.done
    assert bytes(client.received) == b"hi hi hi "


def test_build_protocol_sets_the_protocols_factory() -> None:
    factory = ns.Factory.for_protocol(Recorder)
    p = factory.build_protocol(None)
    assert p.factory is factory
    client_factory = ns.ClientFactory.for_protocol(Recorder)
    assert client_factory.build_protocol(None).factory is client_factory


def test_build_protocol_without_a_protocol_raises_type_error() -> None:
    with pytest.raises(TypeError, match="for_protocol"):
        ns.Factory().build_protocol(None)


async def test_build_protocol_returning_none_refuses_the_connection(reactor: ns.Reactor) -> None:
    class Picky(Collecting):
        refuse = True

        def build_protocol(self, addr: Any) -> Any:
            if self.refuse:
                self.refuse = False
                return None
            return super().build_protocol(addr)

    factory = Picky(Echo)
    listener = reactor.listen_tcp(0, factory)
    refused = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(Recorder)
    )
    await refused.done
    assert refused.reason.check(ns.ConnectionDone)
    assert refused.received == b""
    assert listener.connections == []
    # the listener goes on serving the next one
    accepted = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(Recorder)
    )
    accepted.transport.write(b"welcome")
    assert await accepted.wait_for_bytes(7) == b"welcome"


async def test_build_protocol_raising_is_logged_and_closes_that_connection(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")

    class Broken(ns.Factory):
        def build_protocol(self, addr: Any) -> Any:
            raise RuntimeError("no protocol today")

    listener = reactor.listen_tcp(0, Broken())
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(Recorder)
    )
    await client.done
    assert client.received == b""
    assert any(
        r.name.startswith("netshell") and r.exc_info and r.exc_info[0] is RuntimeError
        for r in caplog.records
    )
    assert listener in reactor.listeners


async def test_start_and_stop_factory_wrap_the_first_and_last_listener(
    reactor: ns.Reactor,
) -> None:
    factory = Collecting(Echo)
    first = reactor.listen_tcp(0, factory)
    assert factory.events == ["start"]
    second = reactor.listen_tcp(0, factory)
    assert factory.events == ["start"]
    client = await reactor.connect_tcp(
        "127.0.0.1", second.port, ns.ClientFactory.for_protocol(Recorder)
    )
    await first.close()
    assert factory.events == ["start"]
    client.transport.write(b"x")
    await client.wait_for_bytes(1)
    await second.close()
    assert factory.events == ["start", "stop"]
    third = reactor.listen_tcp(0, factory)
    assert factory.events == ["start", "stop", "start"]
    await third.close()
    assert factory.events == ["start", "stop", "start", "stop"]


async def test_client_factory_is_started_for_a_connection_and_stopped_after_it(
    reactor: ns.Reactor,
) -> None:
    server_factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, server_factory)
    factory = Told()
    client = await reactor.connect_tcp("127.0.0.1", listener.port, factory)
    assert factory.events == ["start"]
    client.transport.close()
    await client.done
    assert factory.events == ["start", "lost", "stop"]


async def test_client_connection_failed_gets_a_failure_of_connection_refused(
    reactor: ns.Reactor,
) -> None:
    port = closed_port()
    factory = Told()
    d = reactor.connect_tcp("127.0.0.1", port, factory)
    with pytest.raises(ns.ConnectionRefused):
        await d
    connector, reason = await factory.failed
    assert isinstance(reason, ns.Failure)
    assert reason.check(ns.ConnectionRefused)
    assert isinstance(connector, Connector)
    assert connector.state == "disconnected"
    assert connector.where == f"127.0.0.1:{port}"
    assert factory.events == ["start", "failed", "stop"]


async def test_client_connection_lost_is_told_after_the_connection_ends(
    reactor: ns.Reactor,
) -> None:
    server_factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, server_factory)
    factory = Told()
    client = await reactor.connect_tcp("127.0.0.1", listener.port, factory)
    server = await server_factory.accepted()
    assert not factory.lost.called
    server.transport.close()
    connector, reason = await factory.lost
    assert client.done.called  # the protocol hears first, then the factory
    assert reason.check(ns.ConnectionDone)
    assert connector.state == "disconnected"
    assert connector.transport is None


async def test_client_factory_refusing_its_own_connection_fails_the_connect(
    reactor: ns.Reactor,
) -> None:
    class Refuses(Told):
        def build_protocol(self, addr: Any) -> Any:
            return None

    server_factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, server_factory)
    factory = Refuses()
    with pytest.raises(ns.ConnectError, match="refused"):
        await reactor.connect_tcp("127.0.0.1", listener.port, factory)
    server = await server_factory.accepted()
    await server.done  # the connection was closed
    assert factory.events == ["start", "stop"]


# ---- ReconnectingClientFactory: back-off in virtual time


class StandInConnector:
    """What a ReconnectingClientFactory needs of a connector, counting the calls."""

    def __init__(self) -> None:
        self.attempts = 0
        self.stopped = 0

    def connect(self) -> ns.Deferred[Any]:
        self.attempts += 1
        return ns.Deferred()

    def stop_connecting(self) -> None:
        self.stopped += 1


def refused() -> ns.Failure:
    return ns.Failure(ns.ConnectionRefused("127.0.0.1:1 refused the connection"))


def reconnecting(clock: Clock, **settings: Any) -> ns.ReconnectingClientFactory:
    factory = ns.ReconnectingClientFactory.for_protocol(Recorder)
    for name, value in settings.items():
        setattr(factory, name, value)
    factory.reset_delay()  # start from the initial_delay set above
    factory.clock = clock
    return factory


def next_retry_delay(
    factory: ns.ReconnectingClientFactory, connector: StandInConnector, clock: Clock
) -> float | None:
    """Fail one attempt; return the delay of the retry it schedules (running it), or None."""
    attempts = connector.attempts
    factory.client_connection_failed(connector, refused())
    if not clock.calls:
        return None
    [call] = clock.calls
    delay = call.time - clock.seconds()
    clock.advance(delay)
    assert connector.attempts == attempts + 1
    return delay


def test_back_off_doubles_from_the_initial_delay_up_to_max_delay(clock: Clock) -> None:
    factory = reconnecting(clock, jitter=0, max_delay=10)
    connector = StandInConnector()
    delays = [next_retry_delay(factory, connector, clock) for _ in range(7)]
    assert delays == [1, 2, 4, 8, 10, 10, 10]


def test_back_off_adds_jitter_proportional_to_the_delay(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[float, float]] = []

    def one_sigma_up(mu: float, sigma: float) -> float:
        asked.append((mu, sigma))
        return mu + sigma

    monkeypatch.setattr(random, "normalvariate", one_sigma_up)
    factory = reconnecting(clock, jitter=0.1, max_delay=10)
    connector = StandInConnector()
    delays = [next_retry_delay(factory, connector, clock) for _ in range(6)]
    expected = [(1, 0.1), (2, 0.2), (4, 0.4), (8, 0.8), (10, 1), (10, 1)]
    # pytest.approx takes flat sequences only (nested ones are a TypeError since pytest 9.2).
    assert [mu for mu, _ in asked] == pytest.approx([mu for mu, _ in expected])
    assert [sigma for _, sigma in asked] == pytest.approx([sigma for _, sigma in expected])
    assert delays == pytest.approx([1.1, 2.2, 4.4, 8.8, 10, 10])


def test_jittered_delays_vary_around_the_nominal_delay(clock: Clock) -> None:
    first_delays = []
    for _ in range(50):
        factory = reconnecting(clock, jitter=0.1, initial_delay=1.0)
        first_delays.append(next_retry_delay(factory, StandInConnector(), clock))
    assert len(set(first_delays)) > 1
    assert all(0.4 < d < 1.6 for d in first_delays)  # within 6 sigma


def test_losing_a_connection_also_schedules_a_retry(clock: Clock) -> None:
    factory = reconnecting(clock, jitter=0)
    connector = StandInConnector()
    factory.client_connection_lost(connector, ns.Failure(ns.ConnectionDone("closed")))
    [call] = clock.calls
    assert call.time == 1
    clock.advance(1)
    assert connector.attempts == 1


def test_max_retries_stops_the_retries(clock: Clock) -> None:
    factory = reconnecting(clock, jitter=0, max_retries=3)
    connector = StandInConnector()
    delays = [next_retry_delay(factory, connector, clock) for _ in range(5)]
    assert delays == [1, 2, 4, None, None]
    assert connector.attempts == 3


def test_stop_trying_cancels_the_pending_retry(clock: Clock) -> None:
    factory = reconnecting(clock, jitter=0)
    connector = StandInConnector()
    factory.client_connection_failed(connector, refused())
    assert len(clock.calls) == 1
    factory.stop_trying()
    assert clock.calls == []
    assert connector.stopped == 1
    clock.advance(1000)
    assert connector.attempts == 0
    factory.client_connection_failed(connector, refused())
    assert clock.calls == []


def test_reset_delay_starts_the_back_off_again(clock: Clock) -> None:
    factory = reconnecting(clock, jitter=0)
    connector = StandInConnector()
    assert [next_retry_delay(factory, connector, clock) for _ in range(3)] == [1, 2, 4]
    factory.reset_delay()
    assert factory.retries == 0
    assert next_retry_delay(factory, connector, clock) == 1


# ---- ReconnectingClientFactory: reconnecting for real


class Reconnecting(ns.ReconnectingClientFactory):
    protocol = Recorder
    initial_delay = 0.01
    max_delay = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.connections: ns.DeferredQueue[Any] = ns.DeferredQueue()
        # (reason,): a Failure itself would fail the getter's Deferred
        self.failures: ns.DeferredQueue[tuple[ns.Failure]] = ns.DeferredQueue()

    def build_protocol(self, addr: Any) -> Any:
        p = super().build_protocol(addr)
        p.connected.add_callback(lambda proto: (self.connections.put(proto), proto)[1])
        return p

    def client_connection_failed(self, connector: Any, reason: ns.Failure) -> None:
        self.failures.put((reason,))
        super().client_connection_failed(connector, reason)


@pytest.mark.async_timeout(20)
async def test_reconnects_when_the_listener_comes_back_on_the_same_port(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    server_factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, server_factory)
    port = listener.port
    factory = Reconnecting()
    reactor.connect_tcp("127.0.0.1", port, factory)
    first = await factory.connections.get()
    server = await server_factory.accepted()

    await listener.close()
    server.transport.close()
    await first.done
    # retries while nobody listens are refused...
    for _ in range(2):
        (reason,) = await factory.failures.get()
        assert reason.check(ns.ConnectionRefused)
    # ...until the listener is back
    listener = reactor.listen_tcp(port, server_factory)
    second = await factory.connections.get()
    assert second is not first
    second.transport.write(b"back again")
    assert await second.wait_for_bytes(10) == b"back again"

    factory.stop_trying()
    second.transport.close()
    await second.done
    gc.collect()  # a failed retry whose Deferred nobody handled would be logged now
    assert [r.getMessage() for r in caplog.records] == []


async def test_cancelling_a_connect_stops_the_client_factory(
    reactor: ns.Reactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = ns.Deferred()

    async def hangs(*args: Any, **kw: Any) -> Any:
        started.callback(None)
        await reactor.loop.create_future()

    monkeypatch.setattr(reactor.loop, "create_connection", hangs)
    factory = Told()
    d = reactor.connect_tcp("127.0.0.1", 9, factory)
    await started
    assert factory.events == ["start"]
    d.cancel()
    with pytest.raises(ns.CancelledError):
        await d
    assert factory.events == ["start", "stop"]


class CountingReconnecting(Reconnecting):
    initial_delay = 60.0  # the retry stays pending while the test looks

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def start_factory(self) -> None:
        self.events.append("start")

    def stop_factory(self) -> None:
        self.events.append("stop")


async def test_stop_trying_while_a_retry_is_pending_stops_the_factory(
    reactor: ns.Reactor,
) -> None:
    factory = CountingReconnecting()
    d = reactor.connect_tcp("127.0.0.1", closed_port(), factory)
    d.add_errback(lambda _: None)
    await factory.failures.get()
    assert len(reactor.delayed_calls) == 1  # the retry, in a minute
    assert factory.events == ["start"]
    factory.stop_trying()
    assert reactor.delayed_calls == []
    assert factory.events == ["start", "stop"]
