"""Real conversations, traced and saved as pcapng, read by tshark's dissectors.

A netshell HTTP server fetched by curl (three requests on one kept-alive connection, the
last a file the server sends, by pieces while it is traced), a netshell
FTP server used by Python's ftplib (a RETR and a LIST, so data connections appear beside
the control one), a netshell IRC server with two clients. tshark must find the
requests, commands and messages with their fields, and nothing in its TCP analysis (no
lost segment, retransmission, duplicate ACK, window problem...) nor any warning or error
in its expert information. tshark missing fails these tests (scripts/test installs it).
"""

from __future__ import annotations

import asyncio
import ftplib
import os
import shutil
import subprocess
from pathlib import Path

import netshell as ns
from netshell import tls
from netshell.shell.tracing import Capture, Tracer
from netshell.teach.wire import (
    FTPCommand,
    FTPData,
    FTPReply,
    HTTPRequest,
    HTTPResponse,
    IRCMessage,
)
from protocols import ftp, http, irc


def tshark(path: Path, *args: str) -> str:
    exe = shutil.which("tshark")
    assert exe is not None, "tshark is not installed: apt-get install tshark (scripts/test)"
    proc = subprocess.run([exe, "-r", str(path), *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fields(path: Path, display_filter: str, *names: str, decode: str = "",
           options: tuple[str, ...] = ()) -> list[list[str]]:
    """One row per frame that ``display_filter`` shows, one cell per field name."""
    args = ["-Y", display_filter, "-T", "fields", *options]
    if decode:
        args += ["-d", decode]
    for name in names:
        args += ["-e", name]
    return [line.split("\t") for line in tshark(path, *args).splitlines()]


def assert_tcp_is_clean(path: Path, decode: str = "") -> None:
    """No frame has a TCP analysis flag, and the expert information has no warning or
    error (it has only notes and chats: the connection closing, the handshake...)."""
    decoding = ["-d", decode] if decode else []
    assert tshark(path, *decoding, "-Y", "tcp.analysis.flags") == ""
    expert = tshark(path, *decoding, "-q", "-z", "expert")
    assert "Errors (" not in expert and "Warns (" not in expert, expert
    assert "Notes (" in expert  # the closes are there: tshark did read the connections
    # every connection complete as tshark sees it: SYN-ACK, ACK, data, FIN (2+4+8+16;
    # its SYN bit is left out of the data connections that FTP's dissector announced
    # before their SYN came), and one SYN per connection
    complete: dict[str, int] = {}
    for stream, flags in (row.split("\t") for row in tshark(
            path, *decoding, "-T", "fields", "-e", "tcp.stream", "-e", "tcp.completeness",
            "-Y", "tcp").splitlines()):
        complete[stream] = max(complete.get(stream, 0), int(flags))
    assert complete and all(flags & 30 == 30 for flags in complete.values()), complete
    syns = tshark(path, *decoding, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0")
    assert len(syns.splitlines()) == len(complete)


def traced(target: object) -> tuple[Tracer, Capture]:
    tracer = Tracer(lambda line: None)
    return tracer, tracer.start(target)


async def test_http_requests_and_responses_fetched_by_curl(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "small.txt").write_text("hello\n")
    (site / "big.bin").write_bytes(bytes(range(256)) * 400)  # 102,400 B: sendfile(2)
    srv = http.serve(str(site))
    tracer, cap = traced(srv)
    base = f"http://127.0.0.1:{srv.port}"
    exe = shutil.which("curl")
    assert exe is not None
    curl = await asyncio.create_subprocess_exec(
        exe, "-sS", "-o", os.devnull, f"{base}/small.txt", "-o", os.devnull, f"{base}/nope",
        "-o", os.devnull, f"{base}/big.bin")
    assert await asyncio.wait_for(curl.wait(), 30) == 0
    await srv.close(drain=True, timeout=20)  # curl has gone: the server's end closes
    tracer.stop()

    messages = cap.messages()
    requests = [m for m in messages if isinstance(m, HTTPRequest)]
    responses = [m for m in messages if isinstance(m, HTTPResponse)]
    assert [(m.method, m.target) for m in requests] == [
        ("GET", "/small.txt"), ("GET", "/nope"), ("GET", "/big.bin")]
    assert [(m.status, m.body_size, m.complete) for m in responses] == [
        (200, 6, True), (404, responses[1].body_size, True), (200, 102_400, True)]
    # a file the server sends goes by pieces while traced (not by sendfile(2), whose
    # bytes are never in memory): the trace sees its body
    assert responses[2].body_missing == 0

    path = tmp_path / "http.pcapng"
    cap.save(path)
    decode = f"tcp.port=={srv.port},http"
    seen = fields(path, "http", "http.request.uri", "http.response.code",
                  "http.content_length", decode=decode)
    assert [row for row in seen if row != ["", "", ""]] == [
        ["/small.txt", "", ""], ["", "200", "6"], ["/nope", "", ""],
        ["", "404", seen[3][2]], ["/big.bin", "", ""], ["", "200", "102400"]], seen
    assert_tcp_is_clean(path, decode)


def ftp_session(port: int) -> bytes:
    got: list[bytes] = []
    with ftplib.FTP() as f:
        f.connect("127.0.0.1", port, timeout=20)
        f.login()
        f.retrbinary("RETR data.bin", got.append)
        f.retrlines("LIST", lambda line: None)
        f.quit()
    return b"".join(got)


async def test_ftp_commands_replies_and_data_connections_with_ftplib(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "data.bin").write_bytes(b"x" * 5000)
    srv = ftp.serve(str(root))
    tracer, cap = traced(srv)
    got = await ns.defer_to_thread(ftp_session, srv.port)
    assert got == b"x" * 5000
    await srv.close(drain=True, timeout=20)
    tracer.stop()

    messages = cap.messages()
    commands = [(m.verb, m.arg) for m in messages if isinstance(m, FTPCommand)]
    assert commands == [("USER", "anonymous"), ("PASS", "anonymous@"), ("TYPE", "I"),
                        ("PASV", ""), ("RETR", "data.bin"), ("TYPE", "A"), ("PASV", ""),
                        ("LIST", ""), ("QUIT", "")]
    codes = [m.code for m in messages if isinstance(m, FTPReply)]
    assert codes[0] == 220 and codes[-1] == 221 and codes.count(227) == 2
    data = [m for m in messages if isinstance(m, FTPData)]
    # the file, sent by pieces while traced (not by sendfile(2)): its bytes seen
    assert data[0].size == 5000 and set(data[0].data) == {ord("x")}
    assert data[1].data.endswith(b"data.bin\r\n")  # the listing, seen
    control = messages[0].number
    assert len({m.number for m in data} - {control}) == 2  # two data connections beside

    path = tmp_path / "ftp.pcapng"
    cap.save(path)
    decode = f"tcp.port=={srv.port},ftp"
    seen = fields(path, "ftp.request.command", "ftp.request.command", "ftp.request.arg",
                  decode=decode)
    assert [tuple(row) for row in seen] == commands
    replies = fields(path, "ftp.response.code", "ftp.response.code", decode=decode)
    assert [int(row[0]) for row in replies] == codes
    # tshark follows the PASV replies to the data connections: the file and the listing
    # are FTP-DATA
    carried = fields(path, "ftp-data", "tcp.len", decode=decode)
    assert sum(int(row[0]) for row in carried) == data[0].size + data[1].size
    assert_tcp_is_clean(path, decode)


async def irc_client(port: int, nick: str) -> tuple[asyncio.StreamReader,
                                                     asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"NICK {nick}\r\nUSER {nick} 0 * :{nick} here\r\n".encode())
    await until(r, b" 422 ", b" 376 ")  # the end of the welcome: no MOTD, or its end
    return r, w


async def until(r: asyncio.StreamReader, *words: bytes) -> bytes:
    while True:
        line = await asyncio.wait_for(r.readline(), 20)
        assert line, "the server closed the connection"
        if any(word in line for word in words):
            return line


async def test_irc_messages_of_two_clients(tmp_path: Path) -> None:
    srv = irc.serve()
    tracer, cap = traced(srv)
    alice_r, alice = await irc_client(srv.port, "alice")
    bob_r, bob = await irc_client(srv.port, "bob")
    alice.write(b"JOIN #wire\r\n")
    await until(alice_r, b" JOIN ")
    bob.write(b"JOIN #wire\r\n")
    await until(alice_r, b":bob!")
    alice.write(b"PRIVMSG #wire :hello bob\r\n")
    await until(bob_r, b" PRIVMSG ")
    for r, w in ((alice_r, alice), (bob_r, bob)):
        w.write(b"QUIT :bye\r\n")
        await asyncio.wait_for(r.read(), 20)  # to the server's close
        w.close()
    await srv.close(drain=True, timeout=20)
    tracer.stop()

    messages = [m for m in cap.messages() if isinstance(m, IRCMessage)]
    sent = [(m.command, m.params) for m in messages if m.prefix is None]
    assert ("PRIVMSG", ["#wire", "hello bob"]) in sent
    relayed = [m for m in messages if m.command == "PRIVMSG" and m.prefix]
    assert [(m.prefix.split("!")[0], m.params) for m in relayed if m.prefix] == [
        ("alice", ["#wire", "hello bob"])]

    path = tmp_path / "irc.pcapng"
    cap.save(path)
    decode = f"tcp.port=={srv.port},irc"
    requests = fields(path, "irc.request.command", "irc.request.command", decode=decode)
    commands = [c for row in requests for c in row[0].split(",")]
    assert commands == ["NICK", "USER", "NICK", "USER", "JOIN", "JOIN", "PRIVMSG",
                        "QUIT", "QUIT"]
    said = fields(path, 'irc.request.command == "PRIVMSG"', "irc.request.trailer",
                  decode=decode)
    assert said == [["hello bob"]]
    responses = fields(path, "irc.response.command", "irc.response.prefix",
                       "irc.response.command",
                       decode=decode)
    pairs = [(p, c) for row in responses
             for p, c in zip(row[0].split(","), row[1].split(","), strict=True)]
    assert ("irc.local", "001") in pairs
    assert [p.split("!")[0] for p, c in pairs if c == "PRIVMSG"] == ["alice"]
    assert_tcp_is_clean(path, decode)


async def test_https_is_saved_as_the_plaintext_the_protocol_saw_and_says_so(
    tmp_path: Path,
) -> None:
    cert, key, ca = tls.self_signed_files(tmp_path / "certs", "localhost")
    srv = http.serve(lambda request: "secret\n", tls=tls.server_context(cert, key))
    tracer, cap = traced(srv)
    exe = shutil.which("curl")
    assert exe is not None
    curl = await asyncio.create_subprocess_exec(
        exe, "-sS", "-o", os.devnull, "--cacert", str(ca),
        f"https://localhost:{srv.port}/private")
    assert await asyncio.wait_for(curl.wait(), 30) == 0
    await srv.close(drain=True, timeout=20)
    tracer.stop()
    assert cap.events[0].tls
    request = next(m for m in cap.messages() if isinstance(m, HTTPRequest))
    assert request.target == "/private"

    path = tmp_path / "https.pcapng"
    cap.save(path)
    decode = f"tcp.port=={srv.port},http"
    assert fields(path, "http.request", "http.request.uri", decode=decode) == [["/private"]]
    comments = tshark(path, "-q", "-z", "expert", "-d", decode)
    assert "TLS: the payload is the plaintext the protocol saw" in comments
    capinfos = shutil.which("capinfos")  # wireshark-common's, with tshark
    assert capinfos is not None
    header = subprocess.run([capinfos, str(path)], capture_output=True, text=True).stdout
    assert "TLS connections are shown as the plaintext the protocol saw" in header
    assert_tcp_is_clean(path, decode)


async def test_udp_datagrams_are_udp(tmp_path: Path, reactor: ns.Reactor) -> None:
    from protocols import wire

    srv = reactor.listen_udp(0, wire.EchoDatagram())
    tracer, cap = traced(srv)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not answered.done():
                answered.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=("127.0.0.1", srv.port))
    transport.sendto(b"ping over udp")
    assert await asyncio.wait_for(answered, 20) == b"ping over udp"
    transport.close()
    tracer.stop()
    srv.close()

    path = tmp_path / "udp.pcapng"
    assert "2 datagrams" in repr(cap.save(path))
    rows = fields(path, "udp", "udp.srcport", "udp.dstport", "data.data")
    assert [row[2] for row in rows] == [b"ping over udp".hex()] * 2
    assert rows[0][1] == rows[1][0] == str(srv.port)
