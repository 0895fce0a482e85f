"""Unix sockets: listen_unix / connect_unix, the socket file, peer credentials, a real peer.

Socket paths live in a short temporary directory (a Unix socket path must fit
in about 100 bytes, which pytest's tmp_path may not).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import require, run_peer

import netshell as ns
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol
from netshell.transport import Address, PeerCredentials

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")


Recorder = RecordingProtocol
Echo = RecordingEcho


class Collecting(RecordingFactory):
    def __init__(self, protocol: Any = Echo) -> None:
        super().__init__(protocol)


@pytest.fixture
def path() -> Iterator[str]:
    """A socket path in a fresh, short temporary directory."""
    d = tempfile.mkdtemp(prefix="ns-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield os.path.join(d, "s.sock")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def client_factory() -> ns.ClientFactory:
    return ns.ClientFactory.for_protocol(Recorder)


async def test_echo_round_trip_over_a_unix_socket(reactor: ns.Reactor, path: str) -> None:
    factory = Collecting(Echo)
    listener = reactor.listen_unix(path, factory)
    assert listener.address == Address("unix", path, 0)
    assert listener.port == 0
    client = await reactor.connect_unix(path, client_factory())
    server = await factory.accepted()
    data = os.urandom(300_000)
    client.transport.write(data)
    assert await client.wait_for_bytes(len(data)) == data
    assert client.transport.peer == Address("unix", path, 0)
    assert server.transport.host == Address("unix", path, 0)
    assert client.transport.kind == server.transport.kind == "unix"
    assert client.transport.bytes_sent == server.transport.bytes_received == len(data)
    client.transport.close()
    await server.done
    assert server.reason.check(ns.ConnectionDone)


async def test_refuses_to_take_over_a_live_socket_path(reactor: ns.Reactor, path: str) -> None:
    live = reactor.listen_unix(path, Collecting(Echo))
    with pytest.raises(OSError) as info:
        reactor.listen_unix(path, Collecting(Echo))
    assert info.value.errno == errno.EADDRINUSE
    assert path in str(info.value)
    assert reactor.listeners == [live]
    # the live server is untouched: its file is there and it still serves
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    client = await reactor.connect_unix(path, client_factory())
    client.transport.write(b"still mine")
    assert await client.wait_for_bytes(10) == b"still mine"


async def test_replaces_a_stale_socket_file(reactor: ns.Reactor, path: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays; nobody listens on it
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    reactor.listen_unix(path, Collecting(Echo))
    client = await reactor.connect_unix(path, client_factory())
    client.transport.write(b"fresh")
    assert await client.wait_for_bytes(5) == b"fresh"


def test_a_regular_file_at_the_path_raises_file_exists_error(
    reactor: ns.Reactor, path: str
) -> None:
    Path(path).write_text("precious")
    with pytest.raises(FileExistsError) as info:
        reactor.listen_unix(path, Collecting(Echo))
    assert path in str(info.value)
    assert Path(path).read_text() == "precious"
    assert reactor.listeners == []


def test_socket_file_gets_mode_0600_by_default(reactor: ns.Reactor, path: str) -> None:
    reactor.listen_unix(path, Collecting(Echo))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_socket_file_gets_the_mode_asked_for(reactor: ns.Reactor, path: str) -> None:
    reactor.listen_unix(path, Collecting(Echo), mode=0o660)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660


async def test_socket_file_is_removed_on_close(reactor: ns.Reactor, path: str) -> None:
    listener = reactor.listen_unix(path, Collecting(Echo))
    await reactor.connect_unix(path, client_factory())  # serving
    await listener.close()
    assert not os.path.exists(path)
    assert reactor.listeners == []
    with pytest.raises(ns.ConnectError):
        await reactor.connect_unix(path, client_factory())


def test_socket_file_is_removed_on_close_before_the_loop_runs(
    reactor: ns.Reactor, path: str
) -> None:
    listener = reactor.listen_unix(path, Collecting(Echo))
    assert listener.close().called
    assert not os.path.exists(path)


async def test_listen_unix_keeps_its_backlog_once_serving(reactor: ns.Reactor, path: str) -> None:
    ss = require("ss")
    reactor.listen_unix(path, Collecting(Echo), backlog=555)
    await reactor.connect_unix(path, client_factory())  # the loop serves the listener now
    code, out, err = await run_peer([ss, "-Hlx", "src", path])
    assert code == 0, err
    fields = out.split()
    assert fields[:2] == [b"u_str", b"LISTEN"]
    assert fields[3] == b"555"  # for a listening socket, ss shows the backlog as Send-Q


async def test_peer_credentials_name_this_process(reactor: ns.Reactor, path: str) -> None:
    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("no SO_PEERCRED on this platform")
    factory = Collecting(Echo)
    reactor.listen_unix(path, factory)
    client = await reactor.connect_unix(path, client_factory())
    server = await factory.accepted()
    me = PeerCredentials(os.getpid(), os.getuid(), os.getgid())
    assert server.transport.peer_credentials == me
    assert client.transport.peer_credentials == me


async def test_peer_credentials_are_none_over_tcp(reactor: ns.Reactor) -> None:
    factory = Collecting(Echo)
    listener = reactor.listen_tcp(0, factory)
    client = await reactor.connect_tcp("127.0.0.1", listener.port, client_factory())
    assert client.transport.peer_credentials is None


async def test_connect_unix_to_a_missing_path_raises_connect_error(
    reactor: ns.Reactor, path: str
) -> None:
    with pytest.raises(ns.ConnectError) as info:
        await reactor.connect_unix(path, client_factory())
    assert path in str(info.value)


async def test_socat_client_against_an_echo_server_over_a_unix_socket(
    reactor: ns.Reactor, path: str
) -> None:
    require("socat")
    reactor.listen_unix(path, Collecting(Echo))
    data = os.urandom(100_000)
    code, out, err = await run_peer(["socat", "-t", "2", "-", f"UNIX-CONNECT:{path}"], stdin=data)
    assert code == 0, err
    assert out == data
