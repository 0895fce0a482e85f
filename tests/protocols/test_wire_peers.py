"""The wire services (RFC 862-867) served on real sockets, to clients no one here wrote.

socat and Python's socket module talk to netshell's Echo, Discard, Chargen,
Daytime and QOTD over TCP, UDP and Unix sockets.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from peers import require, run_peer

import netshell as ns
from protocols import wire


def _tcp_read_all(port: int, send: bytes = b"", limit: int | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if send:
            s.sendall(send)
        chunks = []
        total = 0
        while limit is None or total < limit:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)


def _udp_ask(port: int, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(payload, ("127.0.0.1", port))
        data, _ = s.recvfrom(65536)
        return data


async def test_socat_gets_its_bytes_back_from_the_echo_service_over_tcp(reactor):
    require("socat")
    listener = reactor.listen_tcp(0, wire.echo_factory())
    data = os.urandom(300_000)
    code, out, err = await run_peer(
        ["socat", "-t", "2", "-", f"TCP:127.0.0.1:{listener.port}"], stdin=data
    )
    assert code == 0, err
    assert out == data


async def test_socat_gets_its_bytes_back_from_the_echo_service_over_a_unix_socket(
    reactor, tmp_path
):
    require("socat")
    path = tmp_path / "echo.sock"
    reactor.listen_unix(path, wire.echo_factory())
    code, out, err = await run_peer(
        ["socat", "-t", "2", "-", f"UNIX-CONNECT:{path}"], stdin=b"over unix\n"
    )
    assert code == 0, err
    assert out == b"over unix\n"


async def test_socat_gets_its_datagram_back_from_the_udp_echo_service(reactor):
    require("socat")
    listener = reactor.listen_udp(0, wire.EchoDatagram())
    code, out, err = await run_peer(
        ["socat", "-t", "2", "-", f"UDP:127.0.0.1:{listener.port}"], stdin=b"datagram\n"
    )
    assert code == 0, err
    assert out == b"datagram\n"


async def test_discard_service_takes_everything_a_socat_client_sends(reactor):
    require("socat")
    listener = reactor.listen_tcp(0, wire.discard_factory())
    data = os.urandom(1_000_000)
    code, out, err = await run_peer(
        ["socat", "-t", "2", "-", f"TCP:127.0.0.1:{listener.port}"], stdin=data
    )
    assert code == 0, err
    assert out == b""


async def test_daytime_service_sends_the_time_then_closes_over_tcp(reactor):
    listener = reactor.listen_tcp(0, wire.daytime_factory())
    line = await ns.defer_to_thread(_tcp_read_all, listener.port)
    assert line.endswith(b"\r\n") and line.count(b"\r\n") == 1
    sent = datetime.strptime(line.decode().split(", ", 1)[1].strip(), "%B %d, %Y %H:%M:%S %z")
    assert abs(sent - datetime.now(UTC)) < timedelta(minutes=5)


async def test_daytime_service_answers_a_udp_datagram(reactor):
    listener = reactor.listen_udp(0, wire.DaytimeDatagram())
    reply = await ns.defer_to_thread(_udp_ask, listener.port, b"")
    assert reply.endswith(b"\r\n")
    datetime.strptime(reply.decode().split(", ", 1)[1].strip(), "%B %d, %Y %H:%M:%S %z")


async def test_chargen_service_streams_the_rfc_864_pattern_to_a_socket_client(reactor):
    listener = reactor.listen_tcp(0, wire.chargen_factory())
    data = await ns.defer_to_thread(_tcp_read_all, listener.port, b"", 200_000)
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) > 1000
    assert lines[:200] == wire.chargen_lines(0, 200).split(b"\r\n")[:-1]


async def test_chargen_service_survives_its_client_going_away(reactor):
    listener = reactor.listen_tcp(0, wire.chargen_factory())
    await ns.defer_to_thread(_tcp_read_all, listener.port, b"", 10_000)
    # The service must notice the hang-up, stop producing and drop the connection.
    while listener.connections:
        await ns.sleep(0)
    assert reactor.connections == []
    second = await ns.defer_to_thread(_tcp_read_all, listener.port, b"", 1000)
    assert second.startswith(wire.chargen_lines(0, 1)[:72])


async def test_qotd_service_sends_its_quote_then_closes_to_socat(reactor):
    require("socat")
    listener = reactor.listen_tcp(0, wire.qotd_factory("Simple is better than complex."))
    code, out, err = await run_peer(
        ["socat", "-t", "2", "-", f"TCP:127.0.0.1:{listener.port}"], stdin=b""
    )
    assert code == 0, err
    assert out == b"Simple is better than complex.\r\n"


async def test_qotd_service_answers_a_udp_datagram(reactor):
    listener = reactor.listen_udp(0, wire.QOTDDatagram("A quote over UDP."))
    reply = await ns.defer_to_thread(_udp_ask, listener.port, b"?")
    assert reply == b"A quote over UDP.\r\n"
