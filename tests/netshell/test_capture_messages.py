"""capture.messages(): a capture's bytes read by each protocol's own parser.

The captures here are filled through the Capture's own methods (opened, data, closed)
with stand-in transports, so each test says exactly which bytes came in which pieces.
Hypothesis cuts the same conversation into any pieces: the messages must not change.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netshell.shell.tracing import UNSEEN_IN, UNSEEN_OUT, Capture
from netshell.teach.wire import (
    Chunk,
    FTPCommand,
    FTPData,
    FTPReply,
    HTTPRequest,
    HTTPResponse,
    IRCMessage,
    Messages,
)
from protocols.http.message import HTTPError
from protocols.http.parser import ResponseParser

SERVER = "127.0.0.1:8000"
CLIENT = "127.0.0.1:50000"


def conn(number: int = 1, host: str = SERVER, peer: str = CLIENT, protocol: Any = None,
         control: Any = None, **counters: int) -> Any:
    """A stand-in for a server's accepted connection (``listener`` set): number, ends,
    protocol, and the byte counters a transport keeps."""
    proto = protocol() if isinstance(protocol, type) else protocol
    if proto is not None and control is not None:
        proto.control = control
    return SimpleNamespace(number=number, host=host, peer=peer, listener=object(),
                           protocol=proto, tls=None, bytes_sent=counters.get("sent", 0),
                           bytes_received=counters.get("received", 0))


def conversation(pieces: list[tuple[str, bytes]], t: Any = None, close: bool = True
                 ) -> Capture:
    """A capture of ``t`` (an accepted connection) with ``pieces``: ("in"|"out", bytes)."""
    t = t or conn()
    cap = Capture()
    cap.opened(t)
    for direction, data in pieces:
        cap.data(t, direction, data)
    if close:
        cap.closed(t, "closed")
    return cap


def cut(stream: bytes, sizes: list[int]) -> list[bytes]:
    """``stream`` in pieces of those sizes (the last piece takes the rest)."""
    out, pos = [], 0
    for size in sizes:
        if pos >= len(stream):
            break
        out.append(stream[pos: pos + size])
        pos += size
    if pos < len(stream):
        out.append(stream[pos:])
    return out


# ---- HTTP

REQUESTS = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
            b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n")
RESPONSES = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
             b"HTTP/1.1 100 Continue\r\n\r\n"
             b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")  # HEAD: no body follows


def summaries(messages: Messages) -> list[tuple[str, str]]:
    return [(type(m).__name__, m.summary()) for m in messages]


HTTP_EXPECTED = [
    ("HTTPRequest", "GET /a HTTP/1.1"),
    ("HTTPRequest", "POST /up HTTP/1.1 (5 B body)"),
    ("HTTPRequest", "HEAD /b HTTP/1.1"),
    ("HTTPResponse", "HTTP/1.1 200 OK (3 B body)"),
    ("HTTPResponse", "HTTP/1.1 100 Continue"),
    ("HTTPResponse", "HTTP/1.1 201 Created"),
    ("HTTPResponse", "HTTP/1.1 200 OK"),
]


def test_pipelined_http_requests_and_their_responses() -> None:
    cap = conversation([("in", REQUESTS), ("out", RESPONSES)])
    messages = cap.messages()
    assert summaries(messages) == HTTP_EXPECTED
    get, post, _head, ok, *_ = messages
    assert isinstance(get, HTTPRequest) and get.headers == [("Host", "x")]
    assert isinstance(post, HTTPRequest) and post.body == b"hello" and post.complete
    assert isinstance(ok, HTTPResponse) and ok.body == b"abc"
    assert (get.source, get.dest, get.direction, get.number) == (CLIENT, SERVER, "in", 1)
    assert (ok.source, ok.dest, ok.direction) == (SERVER, CLIENT, "out")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=30), st.lists(st.integers(1, 40), max_size=30))
def test_http_messages_are_the_same_however_the_bytes_are_cut(
    request_cuts: list[int], response_cuts: list[int]
) -> None:
    pieces = [("in", p) for p in cut(REQUESTS, request_cuts)]
    pieces += [("out", p) for p in cut(RESPONSES, response_cuts)]
    assert summaries(conversation(pieces).messages()) == HTTP_EXPECTED


def test_a_body_sent_by_the_kernel_is_counted_not_seen() -> None:
    t = conn()
    cap = Capture()
    cap.opened(t)

    def comes(data: bytes) -> None:  # as a transport does: counted, then observed
        t.bytes_received += len(data)
        cap.data(t, "in", data)

    comes(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    t.bytes_sent += len(head)
    cap.data(t, "out", head)
    t.bytes_sent += 5000  # sendfile(2): no data_out event
    comes(b"GET /g HTTP/1.1\r\nHost: x\r\n\r\n")  # the next event: noted before it
    unseen = [e for e in cap.events if e.note == UNSEEN_OUT]
    assert [(e.size, e.data, e.direction) for e in unseen] == [(5000, b"", "out")]
    assert cap.events.index(unseen[0]) == len(cap.events) - 2  # before the second request
    cap.closed(t, "closed")
    assert [e.note for e in cap.events].count(UNSEEN_OUT) == 1  # noted once
    _, response, second = cap.messages()
    assert isinstance(response, HTTPResponse)
    assert (response.body_size, response.body_missing, response.complete) == (5000, 5000, True)
    assert isinstance(second, HTTPRequest) and second.target == "/g"


def test_what_is_not_http_becomes_bytes_and_says_why() -> None:
    cap = conversation([("in", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                        ("out", b"SSH-2.0-OpenSSH\r\n\r\n"), ("out", b"more")])
    request, rest, more = cap.messages()
    assert isinstance(request, HTTPRequest)
    assert isinstance(rest, Chunk)
    assert rest.note == "not HTTP: malformed status line 'SSH-2.0-OpenSSH'"
    assert rest.data == b"SSH-2.0-OpenSSH\r\n\r\n"
    assert isinstance(more, Chunk) and (more.data, more.note) == (b"more", rest.note)


def test_any_error_the_http_parser_says_is_not_http(monkeypatch: Any) -> None:
    # Caught by its base class (HTTPError), not only as the ParseError the parser raises
    # today.
    def feed(self: Any, data: bytes) -> Any:
        raise HTTPError(400, "odd")

    monkeypatch.setattr(ResponseParser, "feed", feed)
    cap = conversation([("in", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ("out", b"HTTP/1.1")])
    request, rest = cap.messages()
    assert isinstance(request, HTTPRequest)
    assert isinstance(rest, Chunk) and rest.note == "not HTTP: odd"


def test_a_reader_that_fails_leaves_the_rest_as_bytes_that_say_so(monkeypatch: Any) -> None:
    # A bug in a protocol's reader: the capture is still read, drawn and dumped.
    def feed(self: Any, data: bytes) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ResponseParser, "feed", feed)
    cap = conversation([("in", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                        ("out", b"HTTP/1.1 200 OK\r\n"), ("out", b"\r\n")])
    request, first, second = cap.messages()
    assert isinstance(request, HTTPRequest)
    why = "not read: the http reader failed (RuntimeError: a bug)"
    assert isinstance(first, Chunk) and (first.data, first.note) == (b"HTTP/1.1 200 OK\r\n", why)
    assert isinstance(second, Chunk) and (second.data, second.note) == (b"\r\n", why)
    assert why in str(cap.diagram(width=200))
    assert "HTTP/1.1 200 OK" in str(cap.hexdump())


def test_a_message_never_ended_is_bytes_at_the_end() -> None:
    cap = conversation([("in", b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HT")], close=False)
    first, rest = cap.messages()
    assert isinstance(first, HTTPRequest)
    assert isinstance(rest, Chunk)
    assert (rest.size, rest.data, rest.note) == (9, b"GET /b HT",
                                                 "the start of a message that never ended")


# ---- FTP

COMMANDS = b"USER anonymous\r\nPASS a@b\r\nPASV\r\nRETR f.txt\r\nQUIT\r\n"
REPLIES = (b"220 ready\r\n331 password\r\n230-Welcome\r\n there\r\n230 in\r\n"
           b"227 Entering Passive Mode (127,0,0,1,4,1).\r\n150 here\r\n226 done\r\n221 bye\r\n")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 12), max_size=30), st.lists(st.integers(1, 12), max_size=40))
def test_ftp_commands_and_replies_however_the_bytes_are_cut(
    command_cuts: list[int], reply_cuts: list[int]
) -> None:
    t = conn(host="127.0.0.1:2121")
    pieces = [("out", p) for p in cut(REPLIES, reply_cuts)]
    pieces += [("in", p) for p in cut(COMMANDS, command_cuts)]
    messages = conversation(pieces, t).messages()
    commands = [(m.verb, m.arg) for m in messages if isinstance(m, FTPCommand)]
    replies = [(m.code, m.lines) for m in messages if isinstance(m, FTPReply)]
    assert commands == [("USER", "anonymous"), ("PASS", "a@b"), ("PASV", ""),
                        ("RETR", "f.txt"), ("QUIT", "")]
    assert replies == [(220, ("ready",)), (331, ("password",)),
                       (230, ("Welcome", " there", "in")),
                       (227, ("Entering Passive Mode (127,0,0,1,4,1).",)),
                       (150, ("here",)), (226, ("done",)), (221, ("bye",))]
    assert len(messages) == 12


def test_what_is_not_ftp_becomes_bytes_and_a_bad_address_is_no_data_port() -> None:
    t = conn(host="127.0.0.1:2121")
    cap = conversation([("out", b"220 hi\r\n227 Entering Passive Mode (1,2).\r\n"),
                        ("in", b"PORT x\r\n"), ("out", b"not a reply\r\n"),
                        ("out", b"226 ok\r\n")], t)
    greeting, pasv, port, bad, after = cap.messages()
    assert isinstance(greeting, FTPReply) and greeting.code == 220
    assert isinstance(pasv, FTPReply) and pasv.code == 227
    assert isinstance(port, FTPCommand) and port.arg == "x"
    assert isinstance(bad, Chunk) and bad.note == "not FTP: not an FTP reply: 'not a reply'"
    assert isinstance(after, Chunk) and after.data == b"226 ok\r\n"


def test_a_data_connection_on_the_port_a_pasv_reply_gave_is_ftp_data() -> None:
    control = conn(1, host="127.0.0.1:2121")
    data = conn(2, host="127.0.0.1:1025", peer="127.0.0.1:50002")
    cap = Capture()
    cap.opened(control)
    cap.data(control, "out", b"220 ready\r\n")  # guessed: a server that greets with 220
    cap.data(control, "in", b"PASV\r\n")
    cap.data(control, "out", b"227 Entering Passive Mode (127,0,0,1,4,1).\r\n")
    cap.opened(data)
    cap.data(data, "out", b"first piece ")
    cap.data(data, "out", b"second piece")
    cap.closed(data, "closed")
    *_, transfer = cap.messages()
    assert isinstance(transfer, FTPData)
    assert (transfer.size, transfer.data, transfer.number) == (24, b"first piece second piece",
                                                               2)
    assert transfer.label() == "data 24 B b'first piece second piece'"


def test_the_protocol_class_says_which_parser_reads_a_connection() -> None:
    class FTPServerProtocol:
        __module__ = "protocols.ftp.server"

    class DataProtocol:
        __module__ = "protocols.ftp.server_data"

    control = conn(1, host="127.0.0.1:9999", protocol=FTPServerProtocol)
    control.transport = control
    data = conn(2, host="127.0.0.1:9998", protocol=DataProtocol)
    cap = Capture()
    cap.opened(control)
    cap.data(control, "in", b"NOOP\r\n")  # a client speaking first: no greeting to guess by
    cap.opened(data)
    cap.data(data, "out", b"220 not a reply, just data\r\n")
    first, second = cap.messages()
    assert isinstance(first, FTPCommand) and first.verb == "NOOP"
    assert isinstance(second, FTPData)
    assert cap.events[0].protocol.endswith("FTPServerProtocol")


# ---- IRC

CLIENT_LINES = b"CAP LS 302\r\nNICK alice\r\nUSER a 0 * :Alice A\r\nPRIVMSG #c :hi there\r\n"
SERVER_LINES = (b":irc.local 001 alice :Welcome\r\n"
                b"@time=2026-01-01T00:00:00.000Z :bob!b@h PRIVMSG #c :yo\n"
                b"PING :irc.local\r\n")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 15), max_size=30), st.lists(st.integers(1, 15), max_size=30))
def test_irc_messages_however_the_bytes_are_cut(a: list[int], b: list[int]) -> None:
    t = conn(host="127.0.0.1:6667")
    pieces = [("in", p) for p in cut(CLIENT_LINES, a)]
    pieces += [("out", p) for p in cut(SERVER_LINES, b)]
    messages = conversation(pieces, t).messages()
    assert [(m.command, m.params, m.prefix) for m in messages
            if isinstance(m, IRCMessage)] == [
        ("CAP", ["LS", "302"], None), ("NICK", ["alice"], None),
        ("USER", ["a", "0", "*", "Alice A"], None), ("PRIVMSG", ["#c", "hi there"], None),
        ("001", ["alice", "Welcome"], "irc.local"), ("PRIVMSG", ["#c", "yo"], "bob!b@h"),
        ("PING", ["irc.local"], None)]
    tagged = messages[5]
    assert isinstance(tagged, IRCMessage)
    assert tagged.tags == {"time": "2026-01-01T00:00:00.000Z"}
    assert tagged.summary() == "@time=2026-01-01T00:00:00.000Z :bob!b@h PRIVMSG #c :yo"


# ---- choosing the protocol


@pytest.mark.parametrize(("port", "first", "kind"), [
    (8000, ("in", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), HTTPRequest),  # the bytes say
    (12345, ("in", b"OPTIONS * HTTP/1.0\r\n\r\n"), HTTPRequest),
    (80, ("in", b"GET /"), type(None)),  # the port says, the request is not complete yet
    (80, ("out", b"x"), Chunk),  # port 80, but a server that speaks first: not HTTP
    (12345, ("in", b"NICK bob\r\n"), IRCMessage),
    (6667, ("in", b"PONG :x\r\n"), IRCMessage),
    (21, ("out", b"hello\r\n"), Chunk),  # port 21, but no reply code
    (12345, ("out", b"220 hi\r\n"), FTPReply),
    (12345, ("in", b"\x16\x03\x01"), Chunk),
])
def test_the_protocol_is_guessed_from_the_first_bytes_then_the_port(
    port: int, first: tuple[str, bytes], kind: type
) -> None:
    messages = conversation([first], conn(host=f"127.0.0.1:{port}"), close=False).messages()
    if kind is type(None):
        assert len(messages) == 1 and messages[0].note.startswith(  # type: ignore[attr-defined]
            "the start of a message")
        assert messages[0].kind == "http"  # type: ignore[attr-defined]
    else:
        assert type(messages[0]) is kind


def test_the_protocol_can_be_said_for_every_connection() -> None:
    cap = conversation([("in", b"NICK bob\r\n")])
    assert type(cap.messages()[0]) is IRCMessage
    assert type(cap.messages("raw")[0]) is Chunk
    assert type(cap.messages("ftp")[0]) is FTPCommand
    with pytest.raises(ValueError, match="protocol is one of http, ftp, ftp-data, irc, raw"):
        cap.messages("smtp")


def test_datagrams_are_chunks_each() -> None:
    cap = Capture()
    udp = SimpleNamespace(host="127.0.0.1:53", peer=None, listener=None)
    cap.data(udp, "in", b"GET / HTTP/1.1\r\n\r\n", ("127.0.0.1", 40000))
    cap.data(udp, "out", b"answer", ("127.0.0.1", 40000))
    first, second = cap.messages()
    assert isinstance(first, Chunk) and first.kind == "udp" and first.number is None
    assert (second.source, second.dest) == ("127.0.0.1:53", "127.0.0.1:40000")


def test_the_list_prints_one_line_per_message() -> None:
    cap = conversation([("in", b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")])
    lines = repr(cap.messages()).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("[0] ")
    assert lines[0].endswith(f" #1 {CLIENT} -> {SERVER} GET /a HTTP/1.1")
    assert repr(Capture().messages()) == "(no messages)"


def test_a_connection_first_seen_midway_is_already_open_with_nothing_unseen() -> None:
    t = conn(sent=1000, received=500)  # what went before the trace is not the trace's
    cap = Capture()
    t.bytes_sent += 10
    cap.data(t, "out", b"HTTP/1.1 2")
    t.bytes_received += 4
    cap.data(t, "in", b"more")
    t.bytes_sent += 100  # unseen
    t.bytes_received += 7  # unseen
    cap.closed(t, "closed")
    assert [(e.kind, e.size, e.note) for e in cap.events] == [
        ("open", 0, "already open"), ("data", 10, ""), ("data", 4, ""),
        ("data", 100, UNSEEN_OUT), ("data", 7, UNSEEN_IN), ("close", 0, "closed")]
    assert cap.lines()[0] == f"#1 {CLIENT} -> {SERVER} already open"


WORDS = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
         b"220 hi\r\n", b"USER a\r\n", b"NICK n\r\n", b":s 001 n :w\r\n", b"\r\n", b"\xff\xf4",
         b"abc", b"HTTP/1.1 200", b"227 Entering Passive Mode (127,0,0,1,4,1).\r\n",
         b"227 no address\r\n", b"229 (|||x|)\r\n", b"PORT 1,2\r\n", b"EPRT |9|x|1|\r\n",
         b"not a reply\r\n", b"x" * 600 + b"\r\n"]


@st.composite
def any_capture(draw: Any) -> Capture:
    """Connections on a few ports (HTTP's, FTP's, IRC's, none) with any of those words
    and random bytes, cut short or unseen now and then, opened, closed or not."""
    cap = Capture()
    transports: dict[int, Any] = {}
    for _ in range(draw(st.integers(0, 25))):
        number = draw(st.integers(1, 4))
        t = transports.get(number)
        if t is None:
            port = draw(st.sampled_from([80, 21, 6667, 1025, 9999]))
            t = transports[number] = conn(number, host=f"127.0.0.1:{port}",
                                          peer=f"127.0.0.1:{50000 + number}")
        action = draw(st.sampled_from(["open", "data", "data", "data", "gap", "close"]))
        if action == "open":
            cap.opened(t)
        elif action == "close":
            cap.closed(t, draw(st.sampled_from(["closed", "aborted"])))
        elif action == "gap":
            t.bytes_sent += draw(st.integers(1, 5000))
        else:
            data = draw(st.sampled_from(WORDS) | st.binary(max_size=30))
            direction = draw(st.sampled_from(["in", "out"]))
            if direction == "in":
                t.bytes_received += len(data)
            else:
                t.bytes_sent += len(data)
            cap.data(t, direction, data)
    return cap


@settings(max_examples=120, deadline=None)
@given(any_capture())
def test_any_capture_parses_draws_and_dumps(cap: Capture) -> None:
    for protocol in (None, "raw"):
        messages = cap.messages(protocol)
        times = [m.time for m in messages]
        assert all(isinstance(m.summary(), str) for m in messages)
        assert len(times) == len(messages)
    raw = cap.messages("raw")
    sent = [e for e in cap.conversation() if e.kind == "data"]
    assert [(m.data, m.size) for m in raw] == [  # type: ignore[attr-defined]
        (e.data, e.size) for e in sent]
    assert len(str(cap.diagram(width=400)).splitlines()) == (  # a column each
        2 + len(wire_rows(cap)) if cap.events else 1)
    assert repr(cap).startswith("capture of everything")
    cap.hexdump()
    str(cap.diagram(width=60))


def wire_rows(cap: Capture) -> list[Any]:
    from netshell.teach.wire import summary_rows

    return summary_rows(cap)
