"""Conversations whose two ends are both traced (both in this process): each message once,
the end that connected as the client, whichever end heard of the connection first."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from netshell.shell.tracing import Capture, Tracer
from netshell.teach.wire import Chunk, FTPCommand, FTPData, FTPReply, assemble
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
