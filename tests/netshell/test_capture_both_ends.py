"""Conversations whose two ends are both traced (both in this process): each message once,
the end that connected as the client, whichever end heard of the connection first."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import netshell as ns
from netshell.shell.tracing import Capture, Tracer
from netshell.teach.pcap import write_pcapng
from netshell.teach.wire import Chunk, FTPCommand, FTPData, FTPReply, assemble
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol
from protocols import ftp

SERVER = "127.0.0.1:21"
CLIENT = "127.0.0.1:50000"


def end(number: int, accepted: bool) -> Any:
    """A stand-in for one end of a loopback connection: the server's (accepted) or the
    client's."""
    host, peer = (SERVER, CLIENT) if accepted else (CLIENT, SERVER)
    return SimpleNamespace(number=number, host=host, peer=peer,
                           listener=object() if accepted else None, protocol=None, tls=None,
                           bytes_sent=0, bytes_received=0)


def send(cap: Capture, source: Any, dest: Any, data: bytes) -> None:
    """``data`` written by one end and read by the other (both traced)."""
    source.bytes_sent += len(data)
    cap.data(source, "out", data)
    dest.bytes_received += len(data)
    cap.data(dest, "in", data)


def summaries(messages: Any) -> list[tuple[str, str, str]]:
    return [(type(m).__name__, m.source, m.summary()) for m in messages]


def test_the_server_end_heard_first_is_still_the_server() -> None:
    # The listening end accepts and writes its greeting before the connecting end hears
    # that it is connected (what netshell's own FTP server and client do in one process).
    server, client = end(2, accepted=True), end(1, accepted=False)
    cap = Capture()
    cap.opened(server)
    server.bytes_sent += 8
    cap.data(server, "out", b"220 hi\r\n")
    cap.opened(client)
    client.bytes_received += 8
    cap.data(client, "in", b"220 hi\r\n")
    send(cap, client, server, b"USER a\r\n")
    send(cap, server, client, b"331 p\r\n")
    cap.closed(client, "closed")
    cap.closed(server, "closed")
    [flow] = assemble(cap.conversation())
    assert (flow.client, flow.server) == (CLIENT, SERVER)
    assert summaries(cap.messages()) == [
        ("FTPReply", SERVER, "220 hi"), ("FTPCommand", CLIENT, "USER a"),
        ("FTPReply", SERVER, "331 p")]
    assert [e.kind for e in cap.conversation()].count("open") == 1


def test_a_connection_closed_before_the_other_end_accepted_it_is_one_connection() -> None:
    server, client = end(2, accepted=True), end(1, accepted=False)
    cap = Capture()
    cap.opened(client)
    client.bytes_sent += 4
    cap.data(client, "out", b"ping")
    cap.closed(client, "closed")
    cap.opened(server)  # accepted once the connecting end had closed
    server.bytes_received += 4
    cap.data(server, "in", b"ping")
    cap.closed(server, "closed")
    assert [(m.number, m.source, m.data) for m in cap.messages()] == [  # type: ignore[attr-defined]
        (1, CLIENT, b"ping")]
    assert len(assemble(cap.conversation())) == 1


def test_bad_command_lines_in_one_write_are_its_bytes_once() -> None:
    server = end(1, accepted=True)
    cap = Capture()
    cap.opened(server)
    cap.data(server, "out", b"220 hi\r\n")
    cap.data(server, "in", b"\x01\r\n\x02\r\nUSER a\r\n")
    greeting, bad, user = cap.messages()
    assert isinstance(greeting, FTPReply) and isinstance(user, FTPCommand)
    assert isinstance(bad, Chunk)
    assert (bad.data, bad.size) == (b"\x01\r\n\x02\r\nUSER a\r\n", 14)
    assert bad.note.startswith("not an FTP command: ") and bad.note.endswith("(and 1 more)")


async def test_netshell_ftp_client_and_server_traced_at_both_ends(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"x" * 5000)
    tracer = Tracer(lambda line: None)
    cap = tracer.start(None)
    srv = ftp.serve(str(tmp_path))
    client = await ftp.connect("127.0.0.1", srv.port)
    assert await client.retrieve("data.bin") == b"x" * 5000
    await client.quit()
    await srv.close(drain=True, timeout=20)
    tracer.stop()

    messages = cap.messages()
    server = f"127.0.0.1:{srv.port}"
    control = [m for m in messages if not isinstance(m, FTPData)]
    assert control and all(isinstance(m, FTPCommand | FTPReply) for m in control), messages
    # commands go to the server, replies come from it; each once
    assert {m.dest for m in control if isinstance(m, FTPCommand)} == {server}
    assert {m.source for m in control if isinstance(m, FTPReply)} == {server}
    said = [(type(m).__name__, m.summary().split()[0]) for m in control]
    assert said[:3] == [("FTPReply", "220"), ("FTPCommand", "USER"), ("FTPReply", "331")]
    assert said[-2:] == [("FTPCommand", "QUIT"), ("FTPReply", "221")]
    commands = [verb for kind, verb in said if kind == "FTPCommand"]
    assert len(commands) == len(set(commands))  # each once (this client sends none twice)
    # a reply to each, the greeting, and RETR's two (125 then 226)
    assert len(said) - len(commands) == len(commands) + 2
    [data] = [m for m in messages if isinstance(m, FTPData)]
    assert (data.size, len(data.data), data.data[:3]) == (5000, 4096, b"xxx")
    retr = next(i for i, m in enumerate(control) if m.summary() == "RETR data.bin")
    assert [m.summary()[:3] for m in control[retr + 1: retr + 3]] == ["125", "226"]


class Datagrams(ns.DatagramProtocol):
    def __init__(self) -> None:
        self.got: ns.DeferredQueue[bytes] = ns.DeferredQueue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put(data)


async def test_a_datagram_between_two_traced_transports_is_shown_once(
        reactor: ns.Reactor) -> None:
    tracer = Tracer(lambda line: None)
    cap = tracer.start(None)
    a, b = Datagrams(), Datagrams()
    sender = reactor.listen_udp(0, a, interface="127.0.0.1")
    receiver = reactor.listen_udp(0, b, interface="127.0.0.1")
    sender.transport.write(b"ping", ("127.0.0.1", receiver.port))
    assert await b.got.get() == b"ping"
    receiver.transport.write(b"pong", ("127.0.0.1", sender.port))
    assert await a.got.get() == b"pong"
    tracer.stop()
    assert [(m.source, m.data) for m in cap.messages()] == [
        (f"127.0.0.1:{sender.port}", b"ping"), (f"127.0.0.1:{receiver.port}", b"pong")]
    assert write_pcapng(cap.conversation(), io.BytesIO()).datagrams == 2


@pytest.fixture
def path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="ns-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield os.path.join(d, "s.sock")
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def test_a_unix_connection_traced_at_both_ends_is_one_connection(
        reactor: ns.Reactor, path: str) -> None:
    tracer = Tracer(lambda line: None)
    cap = tracer.start(None)
    factory = RecordingFactory(RecordingEcho)
    reactor.listen_unix(path, factory)
    client = await reactor.connect_unix(path, ns.ClientFactory.for_protocol(RecordingProtocol))
    client.transport.write(b"hello")
    assert await client.wait_for_bytes(5) == b"hello"
    client.transport.close()
    server = await factory.accepted()
    await server.done
    tracer.stop()
    messages = cap.messages()
    assert [(m.source, m.data) for m in messages] == [  # type: ignore[attr-defined]
        ("unix:(unnamed)", b"hello"), (f"unix:{path}", b"hello")]
    assert {m.number for m in messages} == {client.transport.number}
    assert len(assemble(cap.conversation())) == 1
    assert write_pcapng(cap.conversation(), io.BytesIO()).connections == 1
    assert repr(cap).startswith("capture of everything (ended): 2 messages, 1 connections")


def unix_end(number: int, accepted: bool, pid: int = 0) -> Any:
    host, peer = ("unix:/s", "unix:(unnamed)") if accepted else ("unix:(unnamed)", "unix:/s")
    return SimpleNamespace(number=number, host=host, peer=peer,
                           listener=object() if accepted else None, protocol=None, tls=None,
                           bytes_sent=0, bytes_received=0,
                           peer_credentials=lambda: SimpleNamespace(pid=pid or os.getpid()))


def test_a_unix_client_of_another_process_is_no_twin_of_one_of_this_process() -> None:
    # socat connected first (only the server's end of it is here), then a client of this
    # process: its connection is not socat's.
    socat, ours, theirs = unix_end(5, True, pid=1), unix_end(6, False), unix_end(7, True)
    cap = Capture()
    cap.opened(socat)
    cap.opened(ours)
    cap.opened(theirs)
    cap.data(socat, "in", b"from socat")
    send(cap, ours, theirs, b"from us")
    assert [(m.number, m.data) for m in cap.messages()] == [  # type: ignore[attr-defined]
        (5, b"from socat"), (6, b"from us")]
