"""The FTP client against a scripted FTP server in this process, for what real servers
cannot be told to do: refuse EPSV, hold a reply, never answer, hang up with 421, break a
data connection half-way, send DOS listings or CRLF text, connect back from elsewhere.

The fake speaks just enough FTP over real loopback sockets (data connections included)
and records every command line it receives, so the tests check what went over the wire.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from protocols import ftp
from protocols.ftp import client as ftp_client
from protocols.ftp.client import (
    FTPConnectionClosed,
    FTPTimeoutError,
    FTPTransferAborted,
)

pytestmark = pytest.mark.timeout(30)


class FakeServer:
    """The scripted server: its files, its quirks, and what it was sent.

    ``hold[verb]`` (a Deferred) delays the reply to that verb until it fires;
    ``seen(verb)`` fires when the next such command arrives. ``break_retr`` /
    ``break_stor``: the first RETR sends that many bytes / the first STOR takes that
    many, then the data connection is cut and 426 answered (later ones work).
    """

    def __init__(self, files: dict[str, bytes] | None = None, **quirks: Any) -> None:
        self.files = dict(files or {})
        self.commands: list[str] = []
        self.epsv = quirks.get("epsv", True)
        self.mlst = quirks.get("mlst", True)
        self.rest_stor = quirks.get("rest_stor", True)
        self.list_text: bytes = quirks.get("list_text", b"")
        self.connect_from: str = quirks.get("connect_from", "127.0.0.1")
        self.break_retr: int | None = quirks.get("break_retr")
        self.break_stor: int | None = quirks.get("break_stor")
        self.stall_retr: bool = quirks.get("stall_retr", False)
        self.abor_first: bool = quirks.get("abor_first", False)
        self.pasv_host: str = quirks.get("pasv_host", "127.0.0.1")
        self.hold: dict[str, ns.Deferred[None]] = {}
        self._seen: dict[str, list[ns.Deferred[str]]] = {}
        self.received: dict[str, bytes] = {}  # raw bytes of each upload, as on the wire
        self.data_peers: list[str] = []
        self.listener = ns.reactor.listen_tcp(0, ns.Factory.for_protocol(FakeFTP, self))

    @property
    def port(self) -> int:
        return self.listener.port

    def seen(self, verb: str) -> ns.Deferred[str]:
        d: ns.Deferred[str] = ns.Deferred()
        self._seen.setdefault(verb, []).append(d)
        return d

    def verbs(self) -> list[str]:
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    def note(self, line: str) -> None:
        self.commands.append(line)
        verb = line.split(" ", 1)[0].upper()
        for d in self._seen.pop(verb, []):
            d.callback(line)


class DataSide(ns.Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.made: ns.Deferred[DataSide] = ns.Deferred()
        self.lost: ns.Deferred[None] = ns.Deferred()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.made.callback(self)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, reason: ns.Failure) -> None:
        self.lost.callback(None)


class FakeFTP(ns.Protocol):
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.buffer = b""
        self.queue: ns.DeferredQueue[str] = ns.DeferredQueue()
        self.data: DataSide | None = None
        self.data_listener: Any = None
        self.rest = 0
        self.transferring: DataSide | None = None
        self.cwd = "/"

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.reply(220, "fake FTP ready")
        self.task = ns.ensure_deferred(self.serve())

    def connection_lost(self, reason: ns.Failure) -> None:
        self.task.cancel()
        self.task.add_errback(lambda f: None)

    def reply(self, code: int, text: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(f"{code} {text}\r\n".encode())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\r\n", 1)
            line = raw.decode("utf-8", "surrogateescape")
            self.server.note(line)
            if line.upper() == "ABOR" and self.transferring is not None:
                self.abort_transfer()  # out of turn, as servers do during a transfer
                continue
            self.queue.put(line)

    async def serve(self) -> None:
        while True:
            line = await self.queue.get()
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            held = self.server.hold.get(verb)
            if held is not None:
                await held
            handler = getattr(self, f"ftp_{verb}", None)
            if handler is None:
                self.reply(502, f"{verb} not implemented")
            else:
                await ns.maybe_deferred(handler, arg)

    # ---- commands

    def ftp_USER(self, arg: str) -> None:
        self.reply(331, "password please")

    def ftp_PASS(self, arg: str) -> None:
        self.reply(230, "in")

    def ftp_FEAT(self, arg: str) -> None:
        features = [" SIZE", " REST STREAM"] + ([" MLST type*;size*;"] if self.server.mlst else [])
        self.transport.write(
            ("211-Features:\r\n" + "\r\n".join(features) + "\r\n211 End\r\n").encode()
        )

    def ftp_TYPE(self, arg: str) -> None:
        self.reply(200, f"type {arg}")

    def ftp_PWD(self, arg: str) -> None:
        self.reply(257, f'"{self.cwd}" is here')

    def ftp_CWD(self, arg: str) -> None:
        self.cwd = arg if arg.startswith("/") else "/" + arg
        self.reply(250, "ok")

    def ftp_NOOP(self, arg: str) -> None:
        self.reply(200, "noop ok")

    def ftp_SYST(self, arg: str) -> None:
        self.reply(215, "UNIX Type: L8")

    def ftp_QUIT(self, arg: str) -> None:
        self.reply(221, "bye")
        self.transport.close()

    def ftp_ABOR(self, arg: str) -> None:
        self.reply(225, "no transfer to abort")

    def ftp_SIZE(self, arg: str) -> None:
        if arg in self.server.files:
            self.reply(213, str(len(self.server.files[arg])))
        else:
            self.reply(550, "no such file")

    def ftp_REST(self, arg: str) -> None:
        self.rest = int(arg)
        self.reply(350, f"restarting at {arg}")

    def _listen(self) -> int:
        self.data = data = DataSide()
        factory = ns.Factory.for_protocol(lambda: data)
        self.data_listener = ns.reactor.listen_tcp(0, factory)
        return self.data_listener.port

    def ftp_EPSV(self, arg: str) -> None:
        if not self.server.epsv:
            self.reply(502, "EPSV not implemented")
            return
        self.reply(229, f"Entering Extended Passive Mode (|||{self._listen()}|)")

    def ftp_PASV(self, arg: str) -> None:
        port = self._listen()
        host = self.server.pasv_host.replace(".", ",")
        self.reply(227, f"Entering Passive Mode ({host},{port >> 8},{port & 255}).")

    async def ftp_PORT(self, arg: str) -> None:
        numbers = [int(n) for n in arg.split(",")]
        host, port = ".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5]
        self.data = data = DataSide()
        self.reply(200, "PORT ok")
        ns.reactor.connect_tcp(
            host,
            port,
            ns.ClientFactory.for_protocol(lambda: data),
            bind_address=(self.server.connect_from, 0),
        ).add_errback(lambda f: None)

    async def _data(self) -> DataSide:
        assert self.data is not None
        data = await self.data.made
        if self.data_listener is not None:
            self.data_listener.close()
            self.data_listener = None
        self.data = None
        self.server.data_peers.append(str(data.transport.peer.host))
        return data

    async def ftp_LIST(self, arg: str) -> None:
        self.reply(150, "here it comes")
        data = await self._data()
        data.transport.write(self.server.list_text)
        data.transport.close()
        await data.lost
        self.reply(226, "listed")

    def abort_transfer(self) -> None:
        data = self.transferring
        assert data is not None
        self.transferring = None
        data.transport.abort()
        if self.server.abor_first:  # out of RFC 959's order, as a racing server may
            self.reply(226, "ABOR ok")
            self.reply(426, "transfer aborted")
        else:
            self.reply(426, "transfer aborted")
            self.reply(226, "ABOR ok")

    async def ftp_RETR(self, arg: str) -> None:
        content = self.server.files.get(arg)
        if content is None:
            self.reply(550, "no such file")
            return
        rest, self.rest = self.rest, 0
        self.reply(150, f"sending {arg} ({len(content) - rest} bytes)")
        data = await self._data()
        body = content[rest:]
        cut = self.server.break_retr
        if self.server.stall_retr:
            self.server.stall_retr = False
            self.transferring = data
            data.transport.write(body[: len(body) // 2])
            await data.lost  # waits for ABOR, or for the client to give up
            if self.transferring is data:
                self.transferring = None
                self.reply(426, "data connection closed; transfer aborted")
            return
        if cut is not None:
            self.server.break_retr = None
            data.transport.write(body[:cut])
            data.transport.abort()
            self.reply(426, "connection broken; transfer aborted")
            return
        data.transport.write(body)
        data.transport.close()
        await data.lost
        self.reply(226, "sent")

    async def _store(self, name: str, append: bool) -> None:
        rest, self.rest = self.rest, 0
        if rest and not self.server.rest_stor:
            self.reply(502, "REST not for STOR here")
            return
        self.reply(150, "send it")
        data = await self._data()
        cut = self.server.break_stor
        if cut is not None:
            self.server.break_stor = None
            while sum(map(len, data.chunks)) < cut and not data.lost.called:
                await ns.sleep(0)
            got = b"".join(data.chunks)[:cut]
            data.transport.abort()
        else:
            await data.lost
            got = b"".join(data.chunks)
        self.server.received[name] = got
        old = self.server.files.get(name, b"")
        if append:
            self.server.files[name] = old + got
        else:
            self.server.files[name] = old[:rest] + got
        if cut is not None:
            self.reply(426, "connection broken; transfer aborted")
        else:
            self.reply(226, "stored")

    async def ftp_STOR(self, arg: str) -> None:
        await self._store(arg, append=False)

    async def ftp_APPE(self, arg: str) -> None:
        await self._store(arg, append=True)


async def _client(server: FakeServer, **kw: Any) -> ftp_client.FTPClient:
    return await ftp.connect("127.0.0.1", server.port, **kw)


async def test_epsv_refused_falls_back_to_pasv_and_remembers() -> None:
    server = FakeServer({"a.txt": b"alpha"}, epsv=False)
    client = await _client(server)
    assert await client.retrieve("a.txt") == b"alpha"
    assert await client.retrieve("a.txt") == b"alpha"
    verbs = server.verbs()
    assert verbs.count("EPSV") == 1  # asked once; PASV from then on
    assert verbs.count("PASV") == 2
    assert verbs.index("EPSV") < verbs.index("PASV")
    await client.quit()


async def test_pasv_address_other_than_the_servers_is_not_followed() -> None:
    # A NATed server names its private address; a hostile one could name anyone's.
    server = FakeServer({"a.txt": b"alpha"}, epsv=False, pasv_host="192.0.2.7")
    client = await _client(server, timeout=2)
    assert await client.retrieve("a.txt") == b"alpha"
    await client.quit()


async def test_commands_go_one_at_a_time_in_order() -> None:
    server = FakeServer({"a.txt": b"12345"})
    client = await _client(server)
    held: ns.Deferred[None] = ns.Deferred()
    server.hold["SYST"] = held
    got_syst = server.seen("SYST")
    first = client.quote("SYST")
    second = client.size("a.txt")
    third = client.pwd()
    await got_syst
    assert "SIZE a.txt" not in server.commands  # waits for SYST's reply
    held.callback(None)
    assert (await first).code == 215
    assert await second == 5
    assert await third == "/"
    tail = server.commands[server.commands.index("SYST") :]
    assert tail[:2] == ["SYST", "TYPE I"] or tail[:2] == ["SYST", "SIZE a.txt"]
    await client.quit()


async def test_a_call_cancelled_while_waiting_its_turn_is_never_sent() -> None:
    server = FakeServer()
    client = await _client(server)
    held: ns.Deferred[None] = ns.Deferred()
    server.hold["SYST"] = held
    got = server.seen("SYST")
    first = client.quote("SYST")
    second = client.quote("STAT")
    third = client.noop()
    await got
    second.cancel()
    with pytest.raises(ns.CancelledError):
        await second
    held.callback(None)
    assert (await first).code == 215
    assert (await third).code == 200
    assert "STAT" not in server.commands
    await client.quit()


async def test_a_reply_too_late_is_dropped_not_given_to_the_next_command() -> None:
    server = FakeServer()
    client = await _client(server, timeout=0.3)
    held: ns.Deferred[None] = ns.Deferred()
    server.hold["SYST"] = held
    with pytest.raises(FTPTimeoutError):
        await client.quote("SYST")
    del server.hold["SYST"]
    held.callback(None)  # the late 215 comes now, then NOOP's own 200
    reply = await client.noop()
    assert reply.code == 200 and "noop" in reply.text
    await client.quit()


async def test_closed_control_connection_fails_pending_and_later_operations() -> None:
    server = FakeServer()
    client = await _client(server)
    held: ns.Deferred[None] = ns.Deferred()
    server.hold["NOOP"] = held
    got = server.seen("NOOP")
    waiting = client.noop()
    queued = client.pwd()
    await got
    conn = server.listener.connections[0]
    conn.write(b"421 Service closing, idle too long\r\n")
    conn.close()
    with pytest.raises(FTPConnectionClosed) as info:
        await waiting
    assert info.value.code == 421 and "closed" in str(info.value)
    with pytest.raises(FTPConnectionClosed):
        await queued
    with pytest.raises(FTPConnectionClosed):
        await client.list()
    assert client.closed and "closed" in repr(client)


async def test_a_connection_that_just_ends_fails_what_waits_on_it() -> None:
    server = FakeServer()
    client = await _client(server)
    server.hold["NOOP"] = ns.Deferred()
    got = server.seen("NOOP")
    waiting = client.noop()
    await got
    server.listener.connections[0].abort()  # no 421, no goodbye
    with pytest.raises(FTPConnectionClosed) as info:
        await waiting
    assert info.value.code == 0 and "closed" in str(info.value)


def test_a_sink_that_answers_with_a_deferred_pauses_reading() -> None:
    from netshell.testing import StringTransport

    pending: ns.Deferred[None] = ns.Deferred()
    chunks: list[bytes] = []

    def sink(data: bytes) -> ns.Deferred[None]:
        chunks.append(data)
        return pending

    data = ftp_client._Data(sink)
    transport = StringTransport()
    data.connection_made(transport)
    data.data_received(b"first")
    assert transport.reading_paused  # no more until the sink is done with it
    pending.callback(None)
    assert not transport.reading_paused


async def test_garbage_from_the_server_is_a_protocol_error() -> None:
    server = FakeServer()
    client = await _client(server)
    server.hold["SYST"] = ns.Deferred()
    got = server.seen("SYST")
    pending = client.quote("SYST")
    await got
    server.listener.connections[0].write(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(FTPConnectionClosed) as info:
        await pending
    assert "broke FTP" in str(info.value)


async def test_dos_listing_parsed_without_mlst() -> None:
    listing = (
        b"12-05-25  08:17AM       <DIR>          My Documents\r\n"
        b"01-31-2024  11:59PM              123456 report final.pdf\r\n"
    )
    server = FakeServer(mlst=False, list_text=listing)
    client = await _client(server)
    entries = await client.list()
    assert "LIST" in server.verbs() and "MLSD" not in server.verbs()
    assert [(e.name, e.is_dir, e.size) for e in entries] == [
        ("My Documents", True, -1),
        ("report final.pdf", False, 123456),
    ]
    await client.quit()


async def test_ascii_mode_converts_line_ends_both_ways() -> None:
    server = FakeServer({"text.txt": b"one\r\ntwo\r\n"})
    client = await _client(server)
    assert await client.retrieve("text.txt", ascii=True) == b"one\ntwo\n"
    assert "TYPE A" in server.commands
    await client.store("up.txt", b"a\nb\r\nc\n", ascii=True)
    assert server.received["up.txt"] == b"a\r\nb\r\nc\r\n"
    assert await client.retrieve("text.txt") == b"one\r\ntwo\r\n"  # TYPE I again
    assert server.commands[-3:][0] == "TYPE I" or "TYPE I" in server.commands[-4:]
    await client.quit()


async def test_active_mode_refuses_a_data_connection_from_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer({"a.txt": b"alpha"}, connect_from="127.0.0.2")
    client = await _client(server, passive=False, timeout=0.5)
    with pytest.raises(FTPTimeoutError):
        await client.retrieve("a.txt")
    assert "refused a data connection from 127.0.0.2" in caplog.text
    server.connect_from = "127.0.0.1"
    server.files["b.txt"] = b"bravo"
    client.timeout = 10
    assert await client.retrieve("b.txt") == b"bravo"
    assert "PORT" in server.verbs()
    await client.quit()


@pytest.mark.parametrize("abor_first", [False, True])
async def test_abort_answers_with_abors_reply_and_the_session_goes_on(abor_first: bool) -> None:
    server = FakeServer({"big.bin": os.urandom(100_000)}, stall_retr=True, abor_first=abor_first)
    client = await _client(server)
    got: list[bytes] = []
    first: ns.Deferred[None] = ns.Deferred()

    def sink(data: bytes) -> None:
        got.append(data)
        if not first.called:
            first.callback(None)

    transfer = client.retrieve("big.bin", sink)
    await first
    abor = await client.abort()
    assert abor is not None and abor.code == 226
    with pytest.raises(FTPTransferAborted) as info:
        await transfer
    assert info.value.code == 426
    assert await client.pwd() == "/"
    await client.quit()


async def test_a_transfer_that_stops_moving_times_out() -> None:
    server = FakeServer({"big.bin": os.urandom(100_000)}, stall_retr=True)
    client = await _client(server, timeout=0.3)
    with pytest.raises(FTPTimeoutError) as info:
        await client.retrieve("big.bin", lambda data: None)
    assert "nothing moved" in str(info.value)
    client.timeout = 10
    assert (await client.noop()).code == 200  # in step: the 426 went to the transfer
    await client.quit()


async def test_download_resumes_after_a_broken_transfer(tmp_path: Path) -> None:
    content = os.urandom(300_000)
    server = FakeServer({"f.bin": content}, break_retr=120_000)
    target = tmp_path / "f.bin"
    got = await ftp_client.download(f"ftp://127.0.0.1:{server.port}/f.bin", tmp_path)
    assert got == target and target.read_bytes() == content
    assert "REST 120000" in server.commands  # went on from where it broke
    assert server.verbs().count("USER") == 2  # on a new connection


async def test_upload_resumes_with_rest_after_a_broken_transfer(tmp_path: Path) -> None:
    content = os.urandom(300_000)
    local = tmp_path / "u.bin"
    local.write_bytes(content)
    server = FakeServer(break_stor=100_000)
    await ftp_client.upload(local, f"ftp://127.0.0.1:{server.port}/")
    assert server.files["u.bin"] == content
    assert "REST 100000" in server.commands
    assert server.received["u.bin"] == content[100_000:]


async def test_upload_resumes_with_appe_when_rest_is_refused(tmp_path: Path) -> None:
    content = os.urandom(300_000)
    local = tmp_path / "u.bin"
    local.write_bytes(content)
    server = FakeServer(break_stor=100_000, rest_stor=False)
    await ftp_client.upload(local, f"ftp://127.0.0.1:{server.port}/u.bin")
    assert server.files["u.bin"] == content
    assert "APPE u.bin" in server.commands


async def test_progress_default_comes_from_make_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int | None]] = []
    finished: list[str] = []

    class Bar:
        def __init__(self, label: str) -> None:
            self.label = label

        def __call__(self, done: int, total: int | None) -> None:
            calls.append((done, total))

        def finish(self) -> None:
            finished.append(self.label)

    monkeypatch.setattr(ftp_client, "make_progress", Bar)
    content = os.urandom(50_000)
    server = FakeServer({"p.bin": content})
    client = await _client(server)
    await client.retrieve("p.bin")
    assert calls[0] == (0, len(content)) and calls[-1] == (len(content), len(content))
    assert finished == ["RETR p.bin"]
    await client.quit()


async def test_the_shells_progress_bar_installs_on_ftp(monkeypatch: pytest.MonkeyPatch) -> None:
    from netshell.shell import progress

    monkeypatch.setattr(ftp_client, "make_progress", ftp_client.no_progress)
    progress.install(ftp)  # what the prompt does for http (namespace.py)
    assert ftp_client.make_progress is progress.terminal_progress


async def test_url_credentials_and_directory() -> None:
    server = FakeServer()
    client = await ftp.connect(f"ftp://bob:s%40cret@127.0.0.1:{server.port}/pub")
    assert "USER bob" in server.commands and "PASS s@cret" in server.commands
    assert "CWD pub" in server.commands
    assert client.user == "bob" and "bob@127.0.0.1" in repr(client)
    assert client.directory == "/pub"
    await client.quit()
