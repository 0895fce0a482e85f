"""TLS limits: a peer that never completes the handshake is dropped, alone."""

from __future__ import annotations

import socket

import netshell as ns
import netshell.testing
from netshell import tls, transport
from netshell.testing import RecordingEcho, RecordingFactory


def _silent_client(port: int) -> bytes:
    # Connects, sends nothing, and waits for the server to give up on it.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return s.recv(100)


async def test_a_peer_that_never_sends_a_hello_is_dropped_after_the_handshake_timeout(
    reactor, monkeypatch
):
    monkeypatch.setattr(transport, "TLS_HANDSHAKE_TIMEOUT", 0.05)
    cert, key, _ = tls.self_signed("localhost")
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
    got = await ns.defer_to_thread(_silent_client, listener.port)
    assert got == b""  # the server closed the connection without a word
    assert factory.built == []  # the protocol never met the connection
    while reactor.connections:
        await ns.sleep(0)


async def test_the_handshake_timeout_does_not_touch_a_connection_that_completed(reactor):
    # At the default timeout: a short one would race a real handshake on a loaded machine,
    # and cancelled timers (checked below) are what keeps a finished connection safe.
    cert, key, ca = tls.self_signed("localhost")
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
    client = await reactor.connect_tls(
        "127.0.0.1",
        listener.port,
        ns.ClientFactory.for_protocol(ns.testing.RecordingProtocol),
        tls.client_context("localhost", ca=ca),
    )
    server = await factory.accepted()
    # Both sides finished their handshake: neither keeps a handshake timer running.
    assert server.transport._tls.timer is None and client.transport._tls.timer is None
    assert reactor.delayed_calls == []
    client.transport.write(b"still here")
    assert await client.wait_for_bytes(10) == b"still here"
    client.transport.close()
    await client.done
    assert client.reason.check(ns.ConnectionDone)


async def test_the_default_handshake_timeout_is_thirty_seconds_and_drops_a_silent_peer(reactor):
    # docs/tls.md: "dropped after ... TLS_HANDSHAKE_TIMEOUT seconds (30)". The timer the
    # server arms for a peer that says nothing is due 30 s after the connection came in;
    # it is then run at once instead of waited for.
    assert transport.TLS_HANDSHAKE_TIMEOUT == 30
    cert, key, _ = tls.self_signed("localhost")
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
    before = reactor.seconds()
    silent = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(ns.testing.RecordingProtocol)
    )
    while not reactor.delayed_calls:  # the server has taken the connection in
        await ns.sleep(0)
    after = reactor.seconds()
    (timer,) = reactor.delayed_calls
    assert before + 30 <= timer.time <= after + 30
    assert not silent.done.called
    timer.reset(0)
    await silent.done
    assert silent.received == b""  # closed without a word
    assert factory.built == []
    while reactor.connections:
        await ns.sleep(0)
