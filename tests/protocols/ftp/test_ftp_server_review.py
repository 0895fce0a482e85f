"""Regressions for the FTP server bugs a hostile review found (issue 14's bar).

Most run in memory (a StringTransport and a Clock, as test_ftp_server_memory.py does);
those about the event loop (a flooding client, a big directory) run a real server and
raw clients.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import READ_TIMEOUT, RawFTP, make_tree, serve_tree

from netshell.errors import ConnectionDone
from netshell.failure import Failure
from netshell.interfaces import Address
from netshell.testing import Clock, StringTransport
from protocols.ftp import server as ftp_server
from protocols.ftp.core import Reply, list_line
from protocols.ftp.filesystem import FileSystem
from protocols.ftp.server import FTPServerFactory, FTPServerProtocol


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def server(tree: Path, reactor: Any) -> Iterator[Any]:
    listener = serve_tree(tree)
    yield listener
    listener.close()


def session(factory: FTPServerFactory, buffer_limit: int | None = None
            ) -> tuple[FTPServerProtocol, StringTransport]:
    protocol = factory.build_protocol(Address("tcp", "127.0.0.1", 40000))
    transport = StringTransport(peer=Address("tcp", "127.0.0.1", 40000),
                                buffer_limit=buffer_limit)
    protocol.connection_made(transport)
    return protocol, transport


def replies(transport: StringTransport) -> list[str]:
    """The reply lines written since the last call."""
    text = transport.value().decode()
    transport.clear()
    return [line for line in text.split("\r\n") if line]


def codes(transport: StringTransport) -> list[str]:
    return [line[:3] for line in replies(transport)]


def make_factory(root: Path, clock: Clock, **kw: Any) -> FTPServerFactory:
    options: dict[str, Any] = {"login_delay": 0}
    options.update(kw)
    return FTPServerFactory(root, reactor=clock, clock=clock, **options)


# ---- 1. anonymous rights


def test_anonymous_is_read_only_beside_named_users_even_when_writable(tree: Path) -> None:
    clock = Clock()
    factory = make_factory(tree, clock, users={"u": "p"}, writable=True)
    protocol, t = session(factory)
    replies(t)
    protocol.data_received(b"USER anonymous\r\nPASS me@example.org\r\n"
                           b"MKD made\r\nDELE hello.txt\r\nRNFR hello.txt\r\n"
                           b"SITE CHMOD 600 hello.txt\r\n")
    assert codes(t) == ["331", "230", "550", "550", "550", "550"]
    assert not (tree / "made").exists() and (tree / "hello.txt").exists()
    # the named user has the rights writable gives
    protocol, t = session(factory)
    replies(t)
    protocol.data_received(b"USER u\r\nPASS p\r\nMKD made\r\n")
    assert codes(t) == ["331", "230", "257"]


def test_anonymous_alone_gets_writable(tree: Path) -> None:
    clock = Clock()
    for users in (None, {}):
        protocol, t = session(make_factory(tree, clock, users=users, writable=True))
        replies(t)
        protocol.data_received(b"USER ftp\r\nPASS x\r\nMKD made\r\nRMD made\r\n")
        assert codes(t) == ["331", "230", "257", "250"]


# ---- 2. a client that pipelines commands and never reads its replies


async def test_a_client_that_never_reads_is_held_and_others_are_served(server: Any) -> None:
    loop = asyncio.get_running_loop()
    flooder = socket.socket()
    flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flooder.setblocking(False)
    await loop.sock_connect(flooder, ("127.0.0.1", server.port))
    greeting = await asyncio.wait_for(loop.sock_recv(flooder, 1024), READ_TIMEOUT)
    assert greeting.startswith(b"220")
    (session,) = server.factory.sessions
    held = loop.create_future()
    pause = session.pause_producing

    def paused() -> None:
        pause()
        if not held.done():
            held.set_result(None)

    session.pause_producing = paused
    # 20,000 HELPs: 14 MB of replies, which the flooder never reads
    flood = b"HELP\r\n" * 20_000
    await loop.sock_sendall(flooder, flood)
    await asyncio.wait_for(held, READ_TIMEOUT)
    other = await RawFTP.connect(server.port)
    assert (await other.cmd("NOOP")).code == 200
    high = 64 * 1024 + ftp_server.COMMANDS_PER_TURN * 1024
    assert session.transport.write_buffer_size <= high
    assert (await other.cmd("NOOP")).code == 200
    assert session.transport.write_buffer_size <= high
    other.close()
    flooder.close()


def test_one_chunk_of_commands_is_acted_on_a_few_per_turn(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock))
    replies(t)
    protocol.data_received(b"NOOP\r\n" * 100)
    assert len(replies(t)) == ftp_server.COMMANDS_PER_TURN  # the others wait a turn
    clock.advance(0)
    assert len(replies(t)) == 100 - ftp_server.COMMANDS_PER_TURN


def test_replies_wait_while_the_write_buffer_is_full(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock), buffer_limit=4096)
    replies(t)
    protocol.data_received(b"HELP\r\n" * 40)
    clock.advance(0)
    assert 4096 < len(t.value()) < 4096 + 1024  # stopped at the first reply over the limit
    answered = t.value().count(b"214 Help OK.")
    assert len(protocol.pending) == 40 - answered > 0
    while protocol.pending:
        t.drain()  # the client reads: more is answered
        clock.advance(0)
        assert len(t.value()) < 4096 + 1024


# ---- 3. big directories are read in the thread pool; STAT path is written as it drains


class Gate:
    """Holds FileSystem.listdir until the test opens it (or 5 s pass: a listing read on
    the loop holds everything, and the test sees it was not opened in time)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.event = threading.Event()
        self.in_time: list[bool] = []
        listdir = FileSystem.listdir

        def held(fs: FileSystem, path: str) -> Any:
            self.in_time.append(self.event.wait(5))
            return listdir(fs, path)

        monkeypatch.setattr(FileSystem, "listdir", held)


async def test_others_are_served_while_a_stat_listing_is_read(
        server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    a = await RawFTP.connect(server.port)
    await a.login("alice", "wonderland")
    a.send("STAT sub")
    b = await RawFTP.connect(server.port)
    assert (await b.cmd("NOOP")).code == 200  # while the listing is being read
    gate.event.set()
    r = await a.reply()
    assert r.code == 212 and "inner.txt" in r.text
    assert gate.in_time == [True]
    assert (await a.cmd("NOOP")).code == 200
    a.close()
    b.close()


async def test_others_are_served_while_a_list_is_read(
        server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch)
    a = await RawFTP.connect(server.port)
    await a.login("alice", "wonderland")
    reader, writer = await a.open_data()
    a.send("LIST sub")
    b = await RawFTP.connect(server.port)
    assert (await b.cmd("NOOP")).code == 200
    gate.event.set()
    assert (await a.reply()).code in (125, 150)
    data = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
    assert b"inner.txt" in data
    assert (await a.reply()).code == 226
    assert gate.in_time == [True]
    writer.close()
    a.close()
    b.close()


def _old_stat_reply(fs: FileSystem, path: str) -> bytes:
    """STAT path's reply as the server built it before: one Reply of every line."""
    now = time.time()
    info = fs.stat(path)
    if info.is_dir:
        lines = [" " + list_line(e, now) for e in fs.listdir(path)]
        return Reply(212, [f"Status of {path}:", *lines, "End of status."]).to_bytes()
    return Reply(213, [f"Status of {path}:", " " + list_line(info, now),
                       "End of status."]).to_bytes()


@pytest.mark.parametrize("path", ["/", "/sub", "/empty", "/hello.txt", '/quote"d dir'])
def test_stat_path_replies_as_before(tree: Path, path: str) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users={"u": "p"}))
    protocol.data_received(b"USER u\r\nPASS p\r\n")
    replies(t)
    protocol.data_received(f"STAT {path}\r\n".encode())
    assert t.value() == _old_stat_reply(FileSystem(str(tree)), path)


def test_a_big_stat_listing_is_written_as_the_connection_drains(tree: Path) -> None:
    for i in range(600):
        (tree / "empty" / f"file-{i:04d}-{'x' * 40}").write_bytes(b"")
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users={"u": "p"}), buffer_limit=4096)
    protocol.data_received(b"USER u\r\nPASS p\r\n")
    replies(t)
    protocol.data_received(b"STAT empty\r\nNOOP\r\n")
    got = b""
    while not got.endswith(b"200 NOOP ok.\r\n"):
        assert 0 < len(t.value()) <= 4096 + ftp_server.STAT_PIECE + 200
        got += t.drain()
        clock.advance(0)
    assert got == _old_stat_reply(FileSystem(str(tree)), "/empty") + b"200 NOOP ok.\r\n"


async def test_stat_of_twenty_thousand_entries(reactor: Any) -> None:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as root:
        big = Path(root) / "big"
        big.mkdir()
        for i in range(20_000):
            (big / f"f{i:05d}").write_bytes(b"")
        listener = serve_tree(Path(root))
        try:
            a = await RawFTP.connect(listener.port)
            await a.login("alice", "wonderland")
            r = await a.cmd("STAT big")
            assert r.code == 212 and len(r.lines) == 20_002
            assert r.lines[-1] == "End of status." and r.lines[1].endswith(" f00000")
            assert (await a.cmd("NOOP")).code == 200
            a.close()
        finally:
            listener.close()


# ---- 4. STOU: a name being uploaded is taken


async def test_two_stou_at_once_with_the_same_hint_keep_both(server: Any, tree: Path) -> None:
    a = await RawFTP.connect(server.port)
    b = await RawFTP.connect(server.port)
    streams = []
    for client in (a, b):
        await client.login("alice", "wonderland")
        streams.append(await client.open_data())
    names = []
    for client in (a, b):
        r = await client.cmd("STOU up.txt")
        assert r.code in (125, 150), r
        names.append(r.lines[0].removeprefix("FILE: "))
    assert names == ["up.txt", "up.txt.1"]
    for (_, writer), data in zip(streams, (b"from a", b"from b"), strict=True):
        writer.write(data)
        await writer.drain()
        writer.close()
    assert (await a.reply()).code == 226 and (await b.reply()).code == 226
    assert (tree / "up.txt").read_bytes() == b"from a"
    assert (tree / "up.txt.1").read_bytes() == b"from b"
    assert server.factory.stou_names == set()  # given back
    # the next STOU sees the files themselves
    r, last = await a.transfer_in("STOU up.txt", b"third")
    assert r.lines[0] == "FILE: up.txt.2" and last.code == 226
    a.close()
    b.close()


async def test_stou_into_a_directory_stores_there(server: Any, tree: Path) -> None:
    a = await RawFTP.connect(server.port)
    await a.login("alice", "wonderland")
    r, last = await a.transfer_in("STOU sub/new.txt", b"new")
    assert r.lines[0] == "FILE: /sub/new.txt" and last.code == 226
    assert (tree / "sub" / "new.txt").read_bytes() == b"new"
    assert not (tree / "new.txt").exists()
    r, last = await a.transfer_in("STOU sub/inner.txt", b"other")
    assert r.lines[0] == "FILE: /sub/inner.txt.1" and last.code == 226
    r, _ = await a.transfer_in("STOU nowhere/x", b"x")
    assert r.code == 550
    a.close()


# ---- 5. a passive channel no transfer takes is closed after data_timeout
# (data channels listen on the real reactor; the timers run on a Clock)


def clocked_session(tree: Path, reactor: Any, **kw: Any
                    ) -> tuple[FTPServerProtocol, StringTransport, Clock]:
    clock = Clock()
    options: dict[str, Any] = {"users": {"u": "p"}, "data_timeout": 30.0}
    options.update(kw)
    factory = FTPServerFactory(tree, reactor=reactor, clock=clock, login_delay=0, **options)
    protocol, t = session(factory)
    protocol.data_received(b"USER u\r\nPASS p\r\n")
    replies(t)
    return protocol, t, clock


def test_an_unused_passive_channel_is_closed_after_the_data_timeout(
        tree: Path, reactor: Any) -> None:
    protocol, t, clock = clocked_session(tree, reactor)
    protocol.data_received(b"PASV\r\n")
    assert codes(t) == ["227"]
    channel = protocol.channel
    assert channel is not None and channel.listener is not None
    for _ in range(5):  # NOOPs do not keep it
        clock.advance(5)
        protocol.data_received(b"NOOP\r\n")
    assert codes(t) == ["200"] * 5 and not channel.closed
    clock.advance(5)
    assert channel.closed and channel.listener is None and protocol.channel is None
    assert replies(t) == []  # quietly
    protocol.data_received(b"RETR hello.txt\r\nNOOP\r\n")
    assert replies(t) == ["425 Use PORT or PASV first.", "200 NOOP ok."]
    # a channel taken by a transfer command is not closed by that timer
    protocol.data_received(b"EPSV\r\nRETR hello.txt\r\n")
    assert codes(t) == ["229", "150"]
    clock.advance(29)
    assert protocol.transfer is not None and replies(t) == []
    protocol.connection_lost(Failure(ConnectionDone()))


# ---- 6. QUIT while a transfer waits for its data connection


def test_quit_while_a_transfer_waits_for_its_connection_ends_at_once(
        tree: Path, reactor: Any) -> None:
    protocol, t, _clock = clocked_session(tree, reactor)
    protocol.data_received(b"PASV\r\nRETR hello.txt\r\n")
    assert codes(t) == ["227", "150"]
    protocol.data_received(b"QUIT\r\n")
    assert codes(t) == ["426", "221"]
    assert t.disconnecting
    protocol.connection_lost(Failure(ConnectionDone()))


# ---- 7. only a whole command line resets the idle timer


def test_a_client_trickling_bytes_without_a_line_end_times_out(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, idle_timeout=10.0))
    replies(t)
    for _ in range(3):
        clock.advance(3)
        protocol.data_received(b"X")
    clock.advance(1.5)
    assert replies(t) == ["421 Timeout: closing control connection."]
    assert t.disconnecting


def test_whole_command_lines_keep_the_session(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, idle_timeout=10.0))
    replies(t)
    for _ in range(10):
        clock.advance(3)
        protocol.data_received(b"NO")
        protocol.data_received(b"OP\r\n")
    assert codes(t) == ["200"] * 10 and not t.disconnecting


# ---- polish


def test_rest_then_appe_or_stou_is_refused_and_rest_dropped(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users={"u": "p"}, writable=True))
    protocol.data_received(b"USER u\r\nPASS p\r\n")
    replies(t)
    for verb in ("APPE", "STOU"):
        protocol.data_received(f"REST 2\r\n{verb} hello.txt\r\n".encode())
        assert replies(t)[1] == f"450 Can't {verb} while REST request is pending."
        assert protocol.rest == 0


def test_rest_is_cancelled_by_a_command_that_is_no_transfer(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users={"u": "p"}))
    protocol.data_received(b"USER u\r\nPASS p\r\n")
    replies(t)
    protocol.data_received(b"REST 3\r\nTYPE I\r\nMODE S\r\n")
    assert protocol.rest == 3  # what prepares the transfer keeps it
    protocol.data_received(b"NOOP\r\n")
    assert protocol.rest == 0
    protocol.data_received(b"REST 3\r\nPWD\r\n")
    assert protocol.rest == 0
    protocol.data_received(b"REST 3\r\nSIZE hello.txt\r\n")
    assert protocol.rest == 0


async def test_rest_before_pasv_and_retr_still_resumes(server: Any) -> None:
    a = await RawFTP.connect(server.port)
    await a.login("alice", "wonderland")
    await a.cmd("TYPE I")
    assert (await a.cmd("REST 7")).code == 350
    _, data, last = await a.transfer_out("RETR hello.txt")  # EPSV between: kept
    assert data == b"world\n" and last.code == 226
    assert (await a.cmd("REST 7")).code == 350
    assert (await a.cmd("NOOP")).code == 200
    _, data, last = await a.transfer_out("RETR hello.txt")  # cancelled by NOOP
    assert data == b"hello, world\n" and last.code == 226
    a.close()


async def test_nlst_of_a_file_gives_its_name(server: Any) -> None:
    a = await RawFTP.connect(server.port)
    await a.login("alice", "wonderland")
    _, data, last = await a.transfer_out("NLST sub/inner.txt")
    assert data == b"inner.txt\r\n" and last.code == 226
    a.close()


def test_family_errors_name_the_connections_family(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users={"u": "p"}))
    protocol.data_received(b"USER u\r\nPASS p\r\n")
    replies(t)
    protocol.data_received(b"EPRT |3|x|1|\r\nEPRT |2|::1|5000|\r\nEPSV 2\r\nEPSV 7\r\n")
    assert replies(t) == ["522 Network protocol not supported, use (1)"] * 4


def test_site_chmod_refuses_setuid_setgid_and_sticky(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users={"u": "p"}, writable=True))
    protocol.data_received(b"USER u\r\nPASS p\r\n")
    replies(t)
    before = (tree / "hello.txt").stat().st_mode
    for mode in ("4755", "2755", "1777", "6777"):
        protocol.data_received(f"SITE CHMOD {mode} hello.txt\r\n".encode())
        assert codes(t) == ["550"]
    assert (tree / "hello.txt").stat().st_mode == before
    protocol.data_received(b"SITE CHMOD 600 hello.txt\r\n")
    assert codes(t) == ["200"]
    assert (tree / "hello.txt").stat().st_mode & 0o7777 == 0o600


def test_a_client_reading_nothing_is_aborted_when_idle(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, idle_timeout=10.0), buffer_limit=4096)
    protocol.data_received(b"HELP\r\n" * 40)
    clock.advance(0)
    assert protocol.pending and not t.disconnecting  # held: the buffer is full
    clock.advance(10)
    assert t.aborted  # not a close that would wait for the client to read


async def test_a_refused_transfer_gives_its_data_channel_up(tree: Path, reactor: Any) -> None:
    # The client connected the passive channel, then the command was refused: the server
    # closes its end at once (it held the connection until data_timeout before).
    listener = serve_tree(tree)
    try:
        client = await RawFTP.connect(listener.port)
        assert (await client.login("alice", "wonderland")).code == 230
        session = next(iter(listener.factory.sessions))
        for command, code in (("RETR missing.txt", 550), ("MLSD hello.txt", 501),
                              ("LIST nowhere", 550)):
            reader, writer = await client.open_data()
            assert (await client.cmd(command)).code == code
            assert session.channel is None  # given up with the refusal, not at a timeout
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
            writer.close()
        assert (await client.cmd("NOOP")).code == 200
        client.close()
    finally:
        listener.close()
