"""Every row of the limits-and-timeouts table in docs/http.md, checked at its default.

The table is read from the page itself, so the page and the server cannot drift apart: a
default changed in the code and not in the docs (or the other way) fails here, and so does
a row added without a check. Each check runs at the documented value, not at a lowered
one: a size limit is met exactly (served) and passed by one byte or one field (refused,
with the status the table names); a timeout does not fire a millisecond before its
documented number of seconds, and fires at it.

The server is the one `http.serve` makes with no keyword: its factory (every default as
serve sets it) builds the connection, on a StringTransport, with a Clock for its timers,
so the 60 seconds of a timeout pass in no time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from http_raw_client import get_request

import netshell as ns
from netshell.testing import Clock, StringTransport
from protocols import http
from protocols.http import App, Request, Response
from protocols.http.server import HTTPServerProtocol

DOCS = Path(__file__).resolve().parents[3] / "docs" / "http.md"
UNITS = {None: 1, "bytes": 1, "KiB": 1024, "MiB": 1024 * 1024, "s": 1}
EARLY = 0.001  # "not before": this much before the documented time, nothing has happened


def documented_limits() -> dict[str, tuple[int, str]]:
    """{keyword: (default, answer)} from the table under "### Limits and timeouts"."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Limits and timeouts") :]
    header = "| limit | default | keyword | answer |"
    rows = section[section.index(header) :].split("\n\n", 1)[0].splitlines()[2:]
    table = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == 4, row
        _, default, keyword, answer = cells
        m = re.fullmatch(r"([0-9]+) ?(bytes|KiB|MiB|s)?", default)
        assert m is not None, f"a default the test cannot read: {default!r}"
        table[keyword.strip("`")] = (int(m.group(1)) * UNITS[m.group(2)], answer)
    return table


DOCUMENTED = documented_limits()


def test_the_table_is_read() -> None:
    # A guard on the parsing itself: these rows, at the least, are there.
    assert {"max_body", "header_timeout", "max_requests"} <= DOCUMENTED.keys()
    assert len(DOCUMENTED) >= 11


# ---- a server with every default, in memory


def default_app() -> App:
    app = App()
    app.add_route("/", lambda request: "root")

    @app.route("/size", methods=["POST"])
    def size(request: Request) -> str:
        return f"got {len(request.body)}"

    return app


class Connection:
    """A connection to the server ``http.serve(handler)`` makes, in memory."""

    def __init__(self, handler: Any, clock: Clock) -> None:
        self.listener = http.serve(handler)  # no keyword: every default as documented
        factory = self.listener.factory
        factory.reactor = clock  # its timers (and its idea of now) on virtual time
        self.protocol: HTTPServerProtocol = factory.build_protocol(None)
        self.transport = StringTransport()
        self.protocol.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def answers(self) -> list[tuple[str, dict[str, str], bytes]]:
        """(status line, headers, body) of each answer written so far (Content-Length
        framed, as all of these are)."""
        raw = self.transport.value()
        out = []
        while raw:
            head, _, raw = raw.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            size = int(headers["Content-Length"])
            out.append((lines[0], headers, raw[:size]))
            raw = raw[size:]
        return out

    def only_answer(self) -> tuple[str, dict[str, str], bytes]:
        [answer] = self.answers()
        return answer


@pytest.fixture
def connect(reactor: ns.Reactor, clock: Clock) -> Callable[..., Connection]:
    def make(handler: Any = None) -> Connection:
        return Connection(handler if handler is not None else default_app(), clock)

    return make


def assert_refused(conn: Connection, answer: str) -> None:
    """The one answer is ``answer`` (the table's "431 Request Header Fields Too Large"),
    and the connection ends after it."""
    status_line, headers, _ = conn.only_answer()
    assert status_line == f"HTTP/1.1 {answer}"
    assert headers["Connection"] == "close"
    assert conn.transport.eof_written or conn.transport.closed


def assert_served(conn: Connection, body: bytes = b"root") -> None:
    status_line, headers, got = conn.only_answer()
    assert (status_line, got) == ("HTTP/1.1 200 OK", body)
    assert "Connection" not in headers
    assert not (conn.transport.eof_written or conn.transport.closed)


def status_of(answer: str) -> str:
    """The table's answer cell when it is a status ("413 Content Too Large")."""
    assert re.fullmatch(r"[0-9]{3} [A-Za-z ]+", answer), answer
    return answer


# ---- the size limits: met exactly is served, one more is refused


def request_line_of(length: int) -> bytes:
    line = b"GET /" + b"a" * (length - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == length
    return line


def check_max_request_line(connect: Callable[..., Connection], limit: int, answer: str) -> None:
    app = App()
    app.add_route("/{path:path}", lambda request: "root")
    at = connect(app)
    at.send(request_line_of(limit) + b"\r\nHost: t\r\n\r\n")
    assert_served(at)
    over = connect(app)
    over.send(request_line_of(limit + 1) + b"\r\nHost: t\r\n\r\n")
    assert_refused(over, status_of(answer))


def head_of(size: int) -> bytes:
    """A GET whose head (request line to the blank line after the fields) is ``size``
    bytes, in 16 fields well under every other limit."""
    start = b"GET / HTTP/1.1\r\nHost: t\r\n"
    fields = [b"X-Fill-%02d: " % i for i in range(16)]
    room = size - len(start) - sum(len(f) + 2 for f in fields) - 2
    values = [room // 16 + (1 if i < room % 16 else 0) for i in range(16)]
    head = start + b"".join(f + b"v" * n + b"\r\n" for f, n in zip(fields, values, strict=True))
    head += b"\r\n"
    assert len(head) == size
    return head


def check_max_header_bytes(connect: Callable[..., Connection], limit: int, answer: str) -> None:
    at = connect()
    at.send(head_of(limit))
    assert_served(at)
    over = connect()
    over.send(head_of(limit + 1))
    assert_refused(over, status_of(answer))


def with_fields(count: int) -> bytes:
    """A GET with ``count`` header fields, Host among them."""
    fields = [b"Host: t"] + [b"X-%d: %d" % (i, i) for i in range(count - 1)]
    return b"GET / HTTP/1.1\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def check_max_headers(connect: Callable[..., Connection], limit: int, answer: str) -> None:
    at = connect()
    at.send(with_fields(limit))
    assert_served(at)
    over = connect()
    over.send(with_fields(limit + 1))
    assert_refused(over, status_of(answer))


def check_max_body(connect: Callable[..., Connection], limit: int, answer: str) -> None:
    body = b"b" * limit
    got = f"got {limit}".encode()
    # Content-Length: the whole body at the limit is read and served...
    at = connect()
    at.send(b"POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % limit)
    at.send(body)
    assert_served(at, got)
    # ...one byte more is refused from the declaration, before any of it is read.
    over = connect()
    over.send(b"POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
    assert_refused(over, status_of(answer))
    # Chunked: the same bound on the sum of the chunks.
    chunked = b"POST /size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    at = connect()
    at.send(chunked + b"%x\r\n" % (limit - 1))
    at.send(body[:-1])
    at.send(b"\r\n1\r\nb\r\n0\r\n\r\n")
    assert_served(at, got)
    over = connect()
    over.send(chunked + b"%x\r\n" % limit)
    over.send(body)
    over.send(b"\r\n1\r\nb\r\n0\r\n\r\n")
    assert_refused(over, status_of(answer))


def chunk_line_of(length: int) -> bytes:
    """A chunk-size line (for a chunk of 1 byte) of ``length`` bytes, extensions included."""
    line = b"1;ext=" + b"e" * (length - len(b"1;ext="))
    assert len(line) == length
    return line


def check_max_chunk_line(connect: Callable[..., Connection], limit: int, answer: str) -> None:
    head = b"POST /size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    at = connect()
    at.send(head + chunk_line_of(limit) + b"\r\nx\r\n0\r\n\r\n")
    assert_served(at, b"got 1")
    over = connect()
    over.send(head + chunk_line_of(limit + 1) + b"\r\nx\r\n0\r\n\r\n")
    assert_refused(over, status_of(answer))


# ---- the timeouts: nothing a millisecond before, the answer at the documented second


def check_header_timeout(
    connect: Callable[..., Connection], seconds: int, answer: str, clock: Clock
) -> None:
    # A head begun and not finished...
    slow = connect()
    slow.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
    clock.advance(seconds - EARLY)
    assert slow.transport.value() == b"" and not slow.transport.eof_written
    clock.advance(2 * EARLY)
    assert_refused(slow, status_of(answer))
    # ...and the first head of a new connection, which is not even begun: closed then.
    silent = connect()
    clock.advance(seconds - EARLY)
    assert not silent.transport.closed
    clock.advance(2 * EARLY)
    assert silent.transport.closed and silent.transport.value() == b""


def check_body_timeout(
    connect: Callable[..., Connection], seconds: int, answer: str, clock: Clock
) -> None:
    conn = connect()
    conn.send(b"POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf")
    clock.advance(seconds - EARLY)
    assert conn.transport.value() == b""
    conn.send(b"f")  # progress: the wait starts again from here
    clock.advance(seconds - EARLY)
    assert conn.transport.value() == b""
    clock.advance(2 * EARLY)
    assert_refused(conn, status_of(answer))


def check_keep_alive_timeout(
    connect: Callable[..., Connection], seconds: int, answer: str, clock: Clock
) -> None:
    assert answer == "the connection is closed"
    conn = connect()
    conn.send(get_request("/"))
    assert_served(conn)
    clock.advance(seconds - EARLY)
    assert not conn.transport.closed
    clock.advance(2 * EARLY)
    assert conn.transport.closed
    assert len(conn.answers()) == 1  # closed quietly: nothing more written


def check_send_timeout(
    connect: Callable[..., Connection], seconds: int, answer: str, clock: Clock
) -> None:
    assert answer == "the connection is dropped"

    def endless(request: Request) -> Response:
        return Response(iter(lambda: b"x" * 65536, None))

    conn = connect(endless)
    conn.protocol.pause_producing()  # the write buffer is full: the client does not read
    conn.send(get_request("/"))
    clock.advance(seconds - EARLY)
    assert not conn.transport.aborted
    clock.advance(2 * EARLY)
    assert conn.transport.aborted


# ---- the counts


def check_max_requests(connect: Callable[..., Connection], count: int, answer: str) -> None:
    assert answer == "the last answer has `Connection: close`"
    conn = connect()
    for _ in range(count + 1):  # one more than may be answered, each its own write
        if conn.transport.eof_written or conn.transport.closed:
            break
        conn.send(get_request("/"))
    answers = conn.answers()
    assert len(answers) == count
    assert [h.get("Connection") for _, h, _ in answers[:-1]] == [None] * (count - 1)
    assert answers[-1][1]["Connection"] == "close"
    assert conn.transport.closed or conn.transport.eof_written


def check_max_pipeline(connect: Callable[..., Connection], count: int, answer: str) -> None:
    assert answer == "reading pauses"
    gate: ns.Deferred[str] = ns.Deferred()
    app = App()
    app.add_route("/slow", lambda request: gate)
    app.add_route("/{n}", lambda request: request.params["n"])
    conn = connect(app)
    conn.send(get_request("/slow"))  # being answered: the ones after it wait
    for n in range(count - 1):
        conn.send(get_request(f"/{n}"))
    assert not conn.transport.reading_paused  # count - 1 wait
    conn.send(get_request(f"/{count - 1}"))
    assert conn.transport.reading_paused  # count wait
    gate.callback("slow")
    assert not conn.transport.reading_paused
    assert [body for _, _, body in conn.answers()] == [b"slow"] + [
        str(n).encode() for n in range(count)
    ]


CHECKS: dict[str, Callable[..., None]] = {
    "max_request_line": check_max_request_line,
    "max_header_bytes": check_max_header_bytes,
    "max_headers": check_max_headers,
    "max_body": check_max_body,
    "max_chunk_line": check_max_chunk_line,
    "header_timeout": check_header_timeout,
    "body_timeout": check_body_timeout,
    "keep_alive_timeout": check_keep_alive_timeout,
    "send_timeout": check_send_timeout,
    "max_requests": check_max_requests,
    "max_pipeline": check_max_pipeline,
}
TIMED = {"header_timeout", "body_timeout", "keep_alive_timeout", "send_timeout"}


def test_every_documented_row_has_a_check_and_every_check_a_row() -> None:
    assert sorted(DOCUMENTED) == sorted(CHECKS)


@pytest.mark.parametrize("keyword", sorted(DOCUMENTED))
def test_the_documented_default(
    keyword: str, connect: Callable[..., Connection], clock: Clock
) -> None:
    default, answer = DOCUMENTED[keyword]
    check = CHECKS[keyword]
    if keyword in TIMED:
        check(connect, default, answer, clock)
    else:
        check(connect, default, answer)


@pytest.mark.parametrize("keyword", sorted(DOCUMENTED))
def test_the_default_is_a_keyword_of_serve_and_the_factory_has_it(
    keyword: str, reactor: ns.Reactor
) -> None:
    # "Every limit has ... a keyword of http.serve": the keyword sets what the check above
    # saw at its default (a size limit through http.Limits, the rest on the factory).
    default, _ = DOCUMENTED[keyword]
    listener = http.serve(lambda request: "x", **{keyword: default + 1})
    factory = listener.factory
    value = getattr(factory.limits, keyword, None)
    if value is None:
        value = getattr(factory, keyword)
    assert value == default + 1
