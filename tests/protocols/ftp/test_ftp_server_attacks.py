"""Attacks and faults against the FTP server, each a test, through the protocol itself.

Jail escapes on every command that takes a path, bounce attempts (PORT/EPRT), brute force,
over-long lines, a stranger's data connection, clients vanishing mid-transfer, limits on
connections and idle time, and 500 control connections at once. The server must refuse
with the protocol's own reply, keep the connection when the rule says so, and never let
one client hurt another.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import RawFTP, TransferLog, make_tree, reset_on_close, serve_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "private.txt").write_bytes(b"PRIVATE CONTENT")
    os.symlink(tmp_path / "outside", root / "out")  # a link to a directory outside
    os.symlink(tmp_path / "secret.txt", root / "secret_link")  # and to a file outside
    os.symlink("../secret.txt", root / "sub" / "rel_link")  # relative, still inside sub
    return root


@pytest.fixture
def server(tree: Path, reactor: Any) -> Iterator[Any]:
    listener = serve_tree(tree)
    yield listener
    listener.close()


async def login(server: Any, user: str = "alice", password: str = "wonderland",
                **kw: Any) -> RawFTP:
    client = await RawFTP.connect(server.port, **kw)
    r = await client.login(user, password)
    assert r.code == 230, r
    return client


def snapshot(base: Path, root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``base`` but the served root: its mode and (files) contents."""
    seen: dict[str, tuple[int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == root:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p == root:
                continue
            st = p.lstat()
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            seen[str(p)] = (st.st_mode, data)
    return seen


ESCAPES = [
    "../secret.txt", "/../secret.txt", "../../../../../../secret.txt", "sub/../../secret.txt",
    "//..//..//secret.txt", "..\\secret.txt", "\\..\\secret.txt", "sub\\..\\..\\secret.txt",
    "out/private.txt", "out", "secret_link", "sub/rel_link", "./out/../out/private.txt",
    "x" * 300, "a/" * 2100 + "f",
]


async def test_jail_holds_for_every_path_command(server: Any, tree: Path) -> None:
    base = tree.parent
    before = snapshot(base, tree)
    client = await login(server)
    await client.cmd("TYPE I")
    leaked: list[str] = []
    for path in ESCAPES:
        for line in (f"CWD {path}", f"SIZE {path}", f"MDTM {path}", f"MLST {path}",
                     f"STAT {path}", f"DELE {path}", f"RMD {path}", f"MKD {path}/made",
                     f"SITE CHMOD 777 {path}", f"RNFR {path}"):
            r = await client.cmd(line)
            if r.code == 350:  # RNFR took it: the rename must stay inside
                r = await client.cmd("RNTO renamed")
            if "top secret" in r.text or "PRIVATE CONTENT" in r.text:
                leaked.append(line)
            assert r.code < 600, r
        for verb in ("RETR", "LIST", "NLST", "MLSD"):
            _first, data, _ = await client.transfer_out(f"{verb} {path}")
            if b"top secret" in data or b"PRIVATE CONTENT" in data:
                leaked.append(f"{verb} {path}")
        for verb in ("STOR", "APPE"):
            await client.transfer_in(f"{verb} {path}", b"OVERWRITTEN")
        r = await client.cmd("PWD")
        assert r.code == 257 and r.lines[0].startswith('"/')
        await client.cmd("CWD /")
    assert leaked == []
    assert snapshot(base, tree) == before  # nothing outside the root read-modified or made
    assert (base / "secret.txt").read_bytes() == b"top secret"
    # and the client is still served
    assert (await client.cmd("NOOP")).code == 200
    client.close()


async def test_jail_replies(server: Any) -> None:
    client = await login(server)
    assert (await client.cmd("CWD ..")).code == 250  # at the root, .. stays there
    assert (await client.cmd("PWD")).lines[0].startswith('"/" ')
    assert (await client.cmd("CWD out")).code == 550  # a link leading out
    assert (await client.cmd("SIZE secret_link")).code == 550
    assert (await client.cmd("MKD " + "x" * 300)).code == 553  # name too long
    client.send(b"SIZE a\x00b\r\n")  # NUL in a name
    assert (await client.reply()).code in (501, 553)
    client.close()


async def test_no_bounce_with_port_or_eprt(server: Any, tree: Path) -> None:
    victims: list[Any] = []

    async def victim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        victims.append(writer.get_extra_info("peername"))
        writer.close()

    target = await asyncio.start_server(victim, "127.0.0.2", 0)
    port = target.sockets[0].getsockname()[1]
    with TransferLog() as log:
        client = await login(server)
        for line in (f"PORT 127,0,0,2,{port >> 8},{port & 255}",
                     f"EPRT |1|127.0.0.2|{port}|",
                     f"PORT 10,0,0,1,{port >> 8},{port & 255}"):
            r = await client.cmd(line)
            assert r.code == 500 and "Illegal" in r.text, (line, r)
            assert (await client.cmd("RETR hello.txt")).code == 425  # no channel was set
        for line in ("PORT 127,0,0,1,0,25", "EPRT |1|127.0.0.1|80|", "PORT 127,0,0,1,3,255"):
            r = await client.cmd(line)
            assert r.code == 504, (line, r)  # RFC 2577: no port below 1024
        assert (await client.cmd("RETR hello.txt")).code == 425
        assert (await client.cmd("NOOP")).code == 200
        client.close()
    target.close()
    assert victims == []
    assert sum("bounce" in w for w in log.warnings()) == 3
    assert sum("privileged" in w for w in log.warnings()) == 3


async def test_brute_force_delay_and_disconnect(tree: Path) -> None:
    delay = 0.2
    listener = serve_tree(tree, login_delay=delay)
    loop = asyncio.get_running_loop()
    client = await RawFTP.connect(listener.port)
    unknown = await client.cmd("USER nobody")
    known = await client.cmd("USER alice")
    assert unknown.raw == known.raw and known.code == 331  # no user enumeration
    with TransferLog() as log:
        for attempt in range(3):
            if attempt:
                assert (await client.cmd("USER alice")).code == 331
            started = loop.time()
            r = await client.cmd("PASS guess")
            assert r.code == 530
            assert loop.time() - started >= delay  # every failure answered only after the delay
        assert await client.closed()  # the third one ends the connection
    assert sum("failed login as" in w for w in log.warnings()) == 3
    assert any("disconnected after 3 failed logins" in w for w in log.warnings())
    # the address is not banned: the right password still works on a new connection
    again = await login(listener)
    again.close()
    await listener.close()


async def test_commands_wait_for_the_delayed_login(tree: Path) -> None:
    listener = serve_tree(tree, login_delay=0.2)
    client = await RawFTP.connect(listener.port)
    # pipelined behind a wrong password: answered only after its delayed 530, in order
    client.send(b"USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS wonderland\r\nPWD\r\n")
    codes = [(await client.reply()).code for _ in range(5)]
    assert codes == [331, 530, 331, 230, 257]
    client.close()
    await listener.close()


async def test_over_long_lines_get_500_and_the_connection_lives(server: Any) -> None:
    client = await login(server)
    r = await client.cmd(b"NOOP " + b"x" * 5000 + b"\r\n")
    assert r.code == 500
    assert (await client.cmd("NOOP")).code == 200
    # a line of 1 MiB arriving in pieces: one 500, never held whole
    for _ in range(16):
        client.send(b"y" * 65536)
    client.send(b"\r\nPWD\r\n")
    assert (await client.reply()).code == 500
    assert (await client.reply()).code == 257
    client.close()


async def test_a_data_connection_from_another_address_is_refused(server: Any,
                                                                  tree: Path) -> None:
    with TransferLog() as log:
        client = await login(server)
        await client.cmd("TYPE I")
        port = await client.epsv()
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=("127.0.0.2", 0))
        assert await asyncio.wait_for(reader.read(), 10) == b""  # dropped at once
        writer.close()
        # the client itself may still come
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await client.cmd("RETR hello.txt")).code == 125
        assert await asyncio.wait_for(reader.read(), 10) == b"hello, world\n"
        assert (await client.reply()).code == 226
        writer.close()
        client.close()
    assert any("refused a data connection from 127.0.0.2" in w for w in log.warnings())


@pytest.mark.parametrize("how", ["reset", "closed", "closed, control end unread"])
async def test_client_vanishing_mid_upload_leaves_no_file(server: Any, tree: Path,
                                                          how: str) -> None:
    with TransferLog() as log:
        client = await login(server)
        await client.cmd("TYPE I")
        _reader, writer = await client.open_data()
        assert (await client.cmd("STOR gone.bin")).code == 125
        writer.write(os.urandom(1 << 20))
        await writer.drain()
        if how == "closed, control end unread":
            # The race a vanished client sets: the data connection's end of file is handled
            # before the control connection's. The server must look at the control
            # connection then (its end waits unread on the socket), not take the upload.
            (session,) = server.factory.sessions
            session.transport.pause_reading()
        if how == "reset":
            reset_on_close(client.writer)
            reset_on_close(writer)
        else:  # the process ended: its sockets close in order, control first
            client.writer.close()
            writer.close()
        records = await log.wait(1)
    assert records[0]["command"] == "STOR" and records[0]["complete"] is False
    assert not (tree / "gone.bin").exists()
    assert [p.name for p in tree.iterdir() if p.name.startswith(".")] == []
    other = await login(server)  # the server is fine
    assert (await other.cmd("NOOP")).code == 200
    other.close()


async def test_resumed_upload_keeps_what_arrived(server: Any, tree: Path) -> None:
    (tree / "resume.bin").write_bytes(b"a" * 1000)
    with TransferLog() as log:
        client = await login(server)
        await client.cmd("TYPE I")
        _reader, writer = await client.open_data()
        assert (await client.cmd("REST 1000")).code == 350
        assert (await client.cmd("STOR resume.bin")).code == 125
        writer.write(b"b" * 5000)
        await writer.drain()
        reset_on_close(client.writer)
        reset_on_close(writer)
        await log.wait(1)
    data = (tree / "resume.bin").read_bytes()
    assert data[:1000] == b"a" * 1000 and set(data[1000:]) <= {ord("b")}  # kept to resume from


async def test_client_vanishing_mid_download(server: Any, tree: Path) -> None:
    (tree / "huge.bin").write_bytes(os.urandom(32 << 20))
    with TransferLog() as log:
        client = await login(server)
        await client.cmd("TYPE I")
        reader, writer = await client.open_data()
        assert (await client.cmd("RETR huge.bin")).code == 125
        await reader.readexactly(1 << 16)
        reset_on_close(writer)
        reset_on_close(client.writer)
        records = await log.wait(1)
    assert records[0]["command"] == "RETR" and records[0]["complete"] is False
    other = await login(server)
    await other.cmd("TYPE I")
    _, data, last = await other.transfer_out("RETR hello.txt")
    assert (data, last.code) == (b"hello, world\n", 226)
    other.close()


async def test_max_connections_and_per_ip(tree: Path) -> None:
    listener = serve_tree(tree, max_connections=2, max_connections_per_ip=0)
    a = await RawFTP.connect(listener.port)
    b = await RawFTP.connect(listener.port)
    c = await RawFTP.connect(listener.port)
    assert c.greeting is not None and c.greeting.code == 421
    assert await c.closed()
    assert (await a.cmd("QUIT")).code == 221
    assert await a.closed()
    d = await RawFTP.connect(listener.port)  # a place is free again
    assert d.greeting is not None and d.greeting.code == 220
    for x in (b, d):
        x.close()
    await listener.close()
    per_ip = serve_tree(tree, max_connections_per_ip=1)
    a = await RawFTP.connect(per_ip.port)
    b = await RawFTP.connect(per_ip.port)
    assert b.greeting is not None and b.greeting.code == 421
    c = await RawFTP.connect(per_ip.port, local_host="127.0.0.2")  # another address
    assert c.greeting is not None and c.greeting.code == 220
    for x in (a, b, c):
        x.close()
    await per_ip.close()


async def test_idle_timeout(tree: Path) -> None:
    listener = serve_tree(tree, idle_timeout=0.3)
    client = await login(listener)
    r = await client.reply()  # nothing sent: the server speaks first
    assert r.code == 421
    assert await client.closed()
    await listener.close()


@pytest.mark.needs_fds(4096)
@pytest.mark.async_timeout(60)
async def test_500_concurrent_control_connections(tree: Path) -> None:
    listener = serve_tree(tree, max_connections=1000, max_connections_per_ip=0)
    # links that lead out of the root are not listed
    expected = sorted(p.name for p in tree.iterdir() if p.name not in ("out", "secret_link"))

    async def one(n: int) -> list[str]:
        client = await RawFTP.connect(listener.port)
        assert (await client.login("alice", "wonderland")).code == 230
        first, data, last = await client.transfer_out("NLST")
        assert (first.code, last.code) == (125, 226)
        assert (await client.cmd("QUIT")).code == 221
        client.close()
        return sorted(data.decode().split("\r\n")[:-1])

    results = await asyncio.gather(*(one(n) for n in range(500)))
    assert len(results) == 500 and all(r == expected for r in results)
    await listener.close()


async def test_a_stalled_data_connection_times_out(tree: Path) -> None:
    listener = serve_tree(tree, data_timeout=0.3)
    client = await login(listener)
    await client.cmd("TYPE I")
    _reader, writer = await client.open_data()
    assert (await client.cmd("STOR slow.bin")).code == 125
    writer.write(b"a little")  # then nothing more: no progress for data_timeout
    r = await client.reply()
    assert r.code == 426 and "timed out" in r.text
    assert not (tree / "slow.bin").exists()
    assert (await client.cmd("NOOP")).code == 200  # the control connection lives on
    writer.close()
    client.close()
    await listener.close()
