"""Every transport keeps the contract protocols rely on (netshell.interfaces).

mypy checks this file (it is in pyproject's list): each function below returns a
transport as the contract's type, so a transport that loses a member, or changes
a signature, fails the type check. The tests check the same at run time.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import pytest

from netshell.interfaces import (
    Address,
    DatagramTransportLike,
    StreamTransportLike,
    format_hostport,
)
from netshell.testing import StringDatagramTransport, StringTransport, loopback
from netshell.testing.transports import _LoopbackTransport
from netshell.transport import StreamTransport
from netshell.udp import DatagramTransport

# ---- checked by mypy: each transport is assignable to its contract


def _stream_transport(t: StreamTransport) -> StreamTransportLike:
    return t


def _string_transport(t: StringTransport) -> StreamTransportLike:
    return t


def _loopback_transport(t: _LoopbackTransport) -> StreamTransportLike:
    return t


def _datagram_transport(t: DatagramTransport) -> DatagramTransportLike:
    return t


def _string_datagram_transport(t: StringDatagramTransport) -> DatagramTransportLike:
    return t


# ---- checked at run time


def members(contract: type) -> set[str]:
    return {
        name
        for klass in contract.__mro__
        if klass.__module__ == "netshell.interfaces"
        for name in vars(klass)
        if not name.startswith("_")
    }


STREAM = sorted(members(StreamTransportLike))
DATAGRAM = sorted(members(DatagramTransportLike))


def test_the_contracts_name_what_protocols_use() -> None:
    assert {
        "write", "write_sequence", "close", "abort", "is_closing", "peer", "host",
        "pause_reading", "resume_reading", "register_producer", "unregister_producer",
        "start_tls", "bytes_sent", "bytes_received", "connected_at", "tls", "in_context",
    } <= set(STREAM)  # fmt: skip
    assert {"write", "close", "abort", "is_closing", "host", "peer", "in_context"} <= set(DATAGRAM)


def stream_transports() -> list[Any]:
    pair = loopback(_Quiet(), _Quiet())
    return [
        StreamTransport(None, "tcp", None),  # type: ignore[arg-type]
        StringTransport(),
        pair.client_transport,
    ]


def datagram_transports() -> list[Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    real = DatagramTransport(SimpleNamespace(loop=None), sock, "udp", None)  # type: ignore[arg-type]
    sock.close()
    return [real, StringDatagramTransport()]


def test_stream_transports_have_every_member() -> None:
    for t in stream_transports():
        assert [name for name in STREAM if not hasattr(t, name)] == [], t


def test_datagram_transports_have_every_member() -> None:
    for t in datagram_transports():
        assert [name for name in DATAGRAM if not hasattr(t, name)] == [], t


def test_is_closing_follows_close_on_the_fakes() -> None:
    t: Any = StringTransport()
    assert not t.is_closing()
    t.close()
    assert t.is_closing()
    pair = loopback(_Quiet(), _Quiet())
    assert not pair.client_transport.is_closing()
    pair.client_transport.abort()
    assert pair.client_transport.is_closing()
    d = StringDatagramTransport()
    assert not d.is_closing()
    d.close()
    assert d.is_closing()


class _Quiet:
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> None:
        pass

    def connection_lost(self, reason: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 80, "127.0.0.1:80"),
        ("example.org", 443, "example.org:443"),
        ("::1", 8080, "[::1]:8080"),
        ("fe80::1%eth0", 0, "[fe80::1%eth0]:0"),
        ("", 9, ":9"),
    ],
)
def test_format_hostport(host: str, port: int, text: str) -> None:
    assert format_hostport(host, port) == text
    assert str(Address("tcp", host, port)) == text


def test_an_address_is_still_importable_from_the_transport_module() -> None:
    import netshell
    from netshell import transport

    assert transport.Address is Address is netshell.Address
    assert str(Address("unix", "/tmp/s", 0)) == "unix:/tmp/s"
