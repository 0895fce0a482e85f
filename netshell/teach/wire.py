"""The wire, read: a trace's capture parsed by each protocol's own parser, and shown.

:func:`parse_capture` (what ``capture.messages()`` returns) puts the bytes of each
connection and direction together and reads them with the protocol library's sans-I/O
parsers: HTTP requests and responses (:mod:`protocols.http.parser`), FTP commands and
replies (:mod:`protocols.ftp.core`), IRC messages (:mod:`protocols.irc.core`). Bytes of
an FTP data connection, of a datagram or of a protocol not known are :class:`Chunk`\\ s.

Which protocol a connection speaks: its protocol class's, when it is one of the protocol
library (a traced ``http.serve`` listener, an ``irc.connect`` client); else a data
connection announced on an FTP control connection (PASV, EPSV, PORT, EPRT); else guessed
from its first bytes (an HTTP request line; an FTP server's ``220``; IRC's ``NICK``,
``USER``, ``CAP`` or ``PASS``); else from the server's port (80, 8000, 8008, 8080: HTTP;
21: FTP; 6665-6669, 6697: IRC); else raw bytes.

Each message keeps its time, connection number, source and destination addresses and
direction ("in" or "out", as the traced end saw it); :func:`show` prints its fields, as
scapy's ``show`` does. :func:`diagram` draws the conversation as a text sequence diagram,
:func:`hexdump_capture` dumps its bytes, :func:`summary_rows` gives the labels that the
Jupyter drawings (:mod:`netshell.kernel.displays`) use too.

Example::

    >>> from types import SimpleNamespace
    >>> from netshell.shell.tracing import Capture
    >>> cap = Capture()
    >>> t = SimpleNamespace(number=1, host="127.0.0.1:8080", peer="127.0.0.1:50000",
    ...                     listener=object())
    >>> cap.opened(t)
    >>> cap.data(t, "in", b"GET /hi HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n")
    >>> cap.data(t, "out", b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    >>> cap.messages()
    [0] ... #1 127.0.0.1:50000 -> 127.0.0.1:8080 GET /hi HTTP/1.1
    [1] ... #1 127.0.0.1:8080 -> 127.0.0.1:50000 HTTP/1.1 200 OK (2 B body)
    >>> show(cap.messages()[1])
    ###[ HTTP response ]###
      time        = ...
      connection  = #1
      from        = 127.0.0.1:8080
      to          = 127.0.0.1:50000
      version     = HTTP/1.1
      status      = 200
      reason      = OK
      headers
        Content-Length = 2
      body        = 2 B
"""

from __future__ import annotations

import re
import shutil
import textwrap
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from netshell.shell.display import hexdump, preview
from protocols.ftp.core import (
    Command,
    CommandReader,
    FTPError,
    ReplyReader,
    parse_eprt,
    parse_epsv,
    parse_pasv,
    parse_port,
)
from protocols.http.message import HTTPError, Request, Response
from protocols.http.parser import (
    Body,
    EndOfMessage,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
)
from protocols.irc.core import LineReader, LineTooLong, parse

__all__ = [
    "Chunk",
    "Diagram",
    "FTPCommand",
    "FTPData",
    "FTPReply",
    "Flow",
    "HTTPRequest",
    "HTTPResponse",
    "IRCMessage",
    "Message",
    "Messages",
    "Row",
    "Text",
    "assemble",
    "capture_lines",
    "diagram",
    "hexdump_capture",
    "parse_capture",
    "printable",
    "show",
    "show_text",
    "summary_rows",
]

#: Body bytes a parsed HTTP message keeps (``body``); ``body_size`` counts them all.
KEEP_BODY = 4096

PROTOCOLS = ("http", "ftp", "ftp-data", "irc", "raw")


class Text(str):
    """A string that shows as itself at the prompt (no quotes, real line breaks)."""

    def __repr__(self) -> str:
        return str(self)


def clock(t: float) -> str:
    """``t`` (seconds since the epoch) as the local time of day, to the millisecond."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


# ---- connections and datagram exchanges, from the events


@dataclass(eq=False)
class Flow:
    """One connection (or one exchange of datagrams between two addresses) of a capture:
    the events that belong to it, in order (indices into the list given to
    :func:`assemble`)."""

    index: int  #: its place among the flows, in order of appearance
    number: int | None  #: the connection number (of the first end seen); None: datagrams
    client: str  #: the address that connected (or sent the first datagram)
    server: str  #: the address connected to
    datagram: bool = False
    protocol: str = ""  #: the protocol class, ``module.QualName`` ("" if not known)
    tls: bool = False  #: the connection is TLS (its bytes are the plaintext)
    control: int | None = None  #: an FTP data connection's control connection number
    opened: bool = False  #: an "open" event was seen (else it was first seen by its data)
    note: str = ""  #: the note of its "open" event ("connect", "already open")
    closed: bool = False  #: a "close" event was seen
    events: list[int] = field(default_factory=list)

    def from_client(self, source: str) -> bool:
        return source == self.client

    @property
    def server_port(self) -> int | None:
        return _port(self.server)

    @property
    def client_port(self) -> int | None:
        return _port(self.client)


def _port(address: str) -> int | None:
    head, sep, tail = address.rpartition(":")
    return int(tail) if sep and head and tail.isdigit() and not address.startswith(
        "unix:") else None


def assemble(events: Sequence[Any]) -> list[Flow]:
    """The flows of ``events`` (a capture's conversation), each with its events' indices.

    A connection whose two ends were traced (a loopback) is one flow: its second end's
    events are matched by the pair of addresses (Unix sockets, whose client ends have no
    name, by the connection number only). A new "open" between the same addresses starts
    a new flow once the last one between them closed; datagrams between two addresses are
    one flow.
    """
    flows: list[Flow] = []
    by_number: dict[int, Flow] = {}
    by_ends: dict[tuple[Any, ...], Flow] = {}

    def new(e: Any, datagram: bool = False) -> Flow:
        flow = Flow(len(flows), e.number, e.source, e.dest, datagram=datagram)
        flows.append(flow)
        return flow

    def ends_key(e: Any) -> tuple[Any, ...]:
        pair = frozenset((e.source, e.dest))
        if e.number is None:
            return ("udp", pair)
        if e.source.startswith("unix:") or e.dest.startswith("unix:"):
            return ("unix", pair, e.number)
        return ("tcp", pair)

    for i, e in enumerate(events):
        key = ends_key(e)
        if e.number is None:
            flow = by_ends.get(key)
            if flow is None:
                flow = by_ends[key] = new(e, datagram=True)
        elif e.kind == "open":
            flow = by_number.get(e.number)
            if flow is not None and flow.closed:
                flow = None  # a number seen again after its close: a new connection
            if flow is None:
                # the same ends, not closed yet: the other end's "open" of the same
                # connection (both ends traced), not a second connection
                flow = by_ends.get(key)
                if flow is None or flow.closed:
                    flow = by_ends[key] = new(e)
            flow.opened = True
            flow.note = e.note
            flow.protocol = flow.protocol or getattr(e, "protocol", "")
            flow.tls = flow.tls or bool(getattr(e, "tls", False))
            control = getattr(e, "control", None)
            flow.control = control if flow.control is None else flow.control
        else:
            flow = by_number.get(e.number) or by_ends.get(key)
            if flow is None:
                flow = by_ends[key] = new(e)
        if e.number is not None and (e.number not in by_number or e.kind == "open"):
            by_number[e.number] = flow
        if e.kind == "close":
            flow.closed = True
        flow.events.append(i)
    return flows


# ---- messages


@dataclass(eq=False)
class Message:
    """A message of a capture: when, on which connection, from where to where."""

    time: float  #: ``time.time()`` of the bytes that completed it (or began it)
    number: int | None  #: the connection's number (None for a datagram)
    source: str  #: the address it came from
    dest: str  #: the address it went to
    direction: str  #: "in" or "out", as the traced end saw it

    title: ClassVar[str] = "message"
    protocol: ClassVar[str] = "raw"

    def summary(self) -> str:
        """The message in one line, in its protocol's words."""
        return self.title

    def label(self, limit: int = 60) -> str:
        """The summary, cut to about ``limit`` characters (what the diagrams show), its
        control characters escaped (a peer's ``\\x1b]0;...`` is not for the terminal)."""
        return _clip(printable(self.summary()), limit + 20)

    def fields(self) -> list[tuple[str, Any]]:
        """(name, value) pairs that :func:`show` prints after the common ones; a value that
        is a list of pairs is printed indented, one per line."""
        return []

    def __repr__(self) -> str:
        conn = f"#{self.number} " if self.number is not None else ""
        return (f"<{self.title} {conn}{printable(self.source)} -> {printable(self.dest)}: "
                f"{self.label(60)}>")


@dataclass(eq=False, repr=False)
class Chunk(Message):
    """Bytes as they were written, for a protocol not parsed (or no longer: ``note``)."""

    data: bytes = b""  #: the bytes kept (all of them unless the capture's budget ran out)
    size: int = 0  #: how many bytes there were
    note: str = ""  #: why they are raw, or why some are missing ("" if nothing to say)
    kind: str = "raw"  #: "raw", "udp", or the protocol that could not read them

    title: ClassVar[str] = "bytes"

    def summary(self) -> str:
        return self.label(40)

    def label(self, limit: int = 60) -> str:
        text = f"{self.size:,} B {preview(self.data, limit)}" if self.data else f"{self.size:,} B"
        return f"{text} ({printable(self.note)})" if self.note else text

    def fields(self) -> list[tuple[str, Any]]:
        kept = "" if len(self.data) == self.size else f" ({len(self.data):,} kept)"
        out: list[tuple[str, Any]] = [("size", f"{self.size:,} B{kept}"),
                                      ("data", preview(self.data, 60))]
        if self.note:
            out.append(("note", self.note))
        return out


@dataclass(eq=False, repr=False)
class FTPData(Chunk):
    """What went one way on an FTP data connection, in a row (a file, a listing)."""

    title: ClassVar[str] = "FTP data"
    protocol: ClassVar[str] = "ftp-data"

    def label(self, limit: int = 60) -> str:
        return "data " + super().label(limit)


@dataclass(eq=False, repr=False)
class HTTPRequest(Message):
    """An HTTP request: its request line, header fields and body size."""

    method: str = ""
    target: str = ""
    version: str = "HTTP/1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body_size: int = 0  #: bytes of body (chunked framing removed)
    body: bytes = b""  #: the first :data:`KEEP_BODY` bytes of it that were captured
    complete: bool = False  #: the whole message was seen
    body_missing: int = 0  #: bytes of the body the trace did not see (sendfile)

    title: ClassVar[str] = "HTTP request"
    protocol: ClassVar[str] = "http"

    def summary(self) -> str:
        body = f" ({self.body_size:,} B body)" if self.body_size else ""
        return f"{self.method} {self.target} {self.version}{body}"

    def fields(self) -> list[tuple[str, Any]]:
        return [("method", self.method), ("target", self.target), ("version", self.version),
                ("headers", self.headers), ("body", _body(self))]


@dataclass(eq=False, repr=False)
class HTTPResponse(Message):
    """An HTTP response: its status line, header fields and body size."""

    version: str = "HTTP/1.1"
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body_size: int = 0
    body: bytes = b""
    complete: bool = False
    body_missing: int = 0

    title: ClassVar[str] = "HTTP response"
    protocol: ClassVar[str] = "http"

    def summary(self) -> str:
        body = f" ({self.body_size:,} B body)" if self.body_size else ""
        return f"{self.version} {self.status} {self.reason}".rstrip() + body

    def fields(self) -> list[tuple[str, Any]]:
        return [("version", self.version), ("status", self.status), ("reason", self.reason),
                ("headers", self.headers), ("body", _body(self))]


def _body(m: HTTPRequest | HTTPResponse) -> str:
    text = f"{m.body_size:,} B"
    if m.body_missing:
        text += f" ({m.body_missing:,} B of it not seen: sent by the kernel)"
    if not m.complete:
        text += " (incomplete)"
    return text


@dataclass(eq=False, repr=False)
class FTPCommand(Message):
    """An FTP command on the control connection: its verb and argument."""

    verb: str = ""
    arg: str = ""

    title: ClassVar[str] = "FTP command"
    protocol: ClassVar[str] = "ftp"

    def summary(self) -> str:
        return f"{self.verb} {self.arg}".rstrip()

    def fields(self) -> list[tuple[str, Any]]:
        return [("command", self.verb), ("argument", self.arg)]


@dataclass(eq=False, repr=False)
class FTPReply(Message):
    """An FTP reply: its code and its lines of text."""

    code: int = 0
    lines: tuple[str, ...] = ()

    title: ClassVar[str] = "FTP reply"
    protocol: ClassVar[str] = "ftp"

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def summary(self) -> str:
        more = f" (+{len(self.lines) - 1} lines)" if len(self.lines) > 1 else ""
        return f"{self.code} {self.lines[0] if self.lines else ''}".rstrip() + more

    def fields(self) -> list[tuple[str, Any]]:
        if len(self.lines) == 1:
            return [("code", self.code), ("text", self.lines[0])]
        return [("code", self.code), ("text", [(f"[{i}]", line)
                                              for i, line in enumerate(self.lines)])]


@dataclass(eq=False, repr=False)
class IRCMessage(Message):
    """An IRC message: tags, prefix (its source), command and parameters."""

    tags: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None
    command: str = ""
    params: list[str] = field(default_factory=list)
    line: str = ""  #: the line as it was sent (without its line end)

    title: ClassVar[str] = "IRC message"
    protocol: ClassVar[str] = "irc"

    def summary(self) -> str:
        return self.line

    def fields(self) -> list[tuple[str, Any]]:
        tags: Any = list(self.tags.items()) if self.tags else "(none)"
        return [("tags", tags), ("prefix", self.prefix or "(none)"),
                ("command", self.command), ("params", self.params)]


class Messages(list[Message]):
    """The messages of a capture, a list that prints one line per message:
    its index (``show(msgs[3])``), time, connection, addresses and summary."""

    def __repr__(self) -> str:
        if not self:
            return "(no messages)"
        lines = []
        for i, m in enumerate(self):
            conn = f"#{m.number} " if m.number is not None else ""
            lines.append(f"[{i}] {clock(m.time)} {conn}{printable(m.source)} -> "
                         f"{printable(m.dest)} {m.label(60)}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's display
        p.text(repr(self))


# ---- the parsers of one flow


class _Parser:
    """Reads one flow's data events; returns the messages each completes (or begins)."""

    name = "raw"

    def __init__(self, flow: Flow, ports: dict[int, int]) -> None:
        self.flow = flow
        self.ports = ports  # FTP data ports announced: port -> control connection number
        self.fed: dict[bool, bytearray] = {}  # from the client? -> the last bytes fed

    def base(self, e: Any) -> dict[str, Any]:
        return {"time": e.time, "number": self.flow.number, "source": e.source,
                "dest": e.dest, "direction": e.direction}

    def chunk(self, e: Any, note: str = "", data: bytes | None = None) -> Chunk:
        note = note or getattr(e, "note", "")
        kind = "udp" if self.flow.datagram else self.name
        return Chunk(**self.base(e), data=e.data if data is None else data, size=e.size,
                     note=note, kind=kind)

    def feed(self, e: Any) -> list[Message]:
        return [self.chunk(e)]

    def close(self, e: Any) -> list[Message]:
        return []

    def finish(self, e: Any) -> list[Message]:
        """At the end of the capture (``e`` the flow's last event): the bytes still held
        by a reader, a message begun and never completed, as a Chunk that says so."""
        out: list[Message] = []
        for from_client, held in self.held():
            if held:
                source, dest = ((self.flow.client, self.flow.server) if from_client
                                else (self.flow.server, self.flow.client))
                tail = self.fed.get(from_client, b"")
                data = bytes(tail[-held:]) if held <= len(tail) else b""
                out.append(Chunk(e.time, self.flow.number, source, dest,
                                 "out" if source == e.source else "in", data, held,
                                 "the start of a message that never ended", self.name))
        return out

    def remember(self, e: Any) -> None:
        """Keep the last bytes fed from each side (what a reader holds is among them)."""
        side = self.flow.from_client(e.source)
        tail = self.fed.setdefault(side, bytearray())
        tail += e.data
        if len(tail) > KEEP_BODY * 16:
            del tail[: len(tail) - KEEP_BODY * 16]

    def held(self) -> list[tuple[bool, int]]:
        """(from the client?, bytes held) for each direction's reader."""
        return []


class _Failed(_Parser):
    """The rest of a flow whose parser failed (a bug in a reader): bytes that say so."""

    def __init__(self, flow: Flow, ports: dict[int, int], name: str,
                 error: BaseException) -> None:
        super().__init__(flow, ports)
        self.name = name
        self.why = f"not read: the {name} reader failed ({type(error).__name__}: {error})"

    def feed(self, e: Any) -> list[Message]:
        return [self.chunk(e, self.why)]


class _FTPDataParser(_Parser):
    """An FTP data connection: what goes one way in a row is one :class:`FTPData`."""

    name = "ftp-data"

    def __init__(self, flow: Flow, ports: dict[int, int]) -> None:
        super().__init__(flow, ports)
        self.current: FTPData | None = None

    def feed(self, e: Any) -> list[Message]:
        cur = self.current
        if cur is not None and cur.source == e.source:
            cur.size += e.size
            if len(cur.data) < KEEP_BODY:
                cur.data += e.data[: KEEP_BODY - len(cur.data)]
            if e.note and e.note not in cur.note:
                cur.note = e.note
            return []
        self.current = FTPData(**self.base(e), data=e.data[:KEEP_BODY], size=e.size,
                               note=e.note, kind="ftp-data")
        return [self.current]


class _Side:
    """One direction of a parsed flow: its reader, and why it stopped reading, if it did."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.dead = ""  # why the rest of this direction is raw bytes
        self.current: Any = None  # the message being read (HTTP)
        self.body_kind = ""  # how its body is delimited (HTTP: "length", "chunked"...)
        self.body_length = 0  # its Content-Length (HTTP)

    def body_left(self) -> int:
        """Bytes of the current HTTP message's body still to come, when its length is
        known (0 otherwise)."""
        cur = self.current
        if cur is None or cur.complete or self.body_kind != "length":
            return 0
        return self.body_length - int(cur.body_size)


class _HTTPParser(_Parser):
    """HTTP/1.1 with the library's parser: requests one way, responses the other."""

    name = "http"

    def __init__(self, flow: Flow, ports: dict[int, int]) -> None:
        super().__init__(flow, ports)
        self.requests = _Side(RequestParser())
        self.responses = _Side(ResponseParser())

    def feed(self, e: Any) -> list[Message]:
        side = self.requests if self.flow.from_client(e.source) else self.responses
        if side.dead:
            return [self.chunk(e, side.dead)]
        if side.reader.done:
            side.dead = "after the HTTP exchange"
            return [self.chunk(e, side.dead)]
        out: list[Message] = []
        missing = e.size - len(e.data)
        self.remember(e)
        try:
            self._take(side, e, side.reader.feed(e.data) if e.data else [], out, True)
            if missing:
                cur = side.current
                if cur is None or side.body_left() < missing:
                    side.dead = e.note or "bytes missing: the rest is not parsed"
                    out.append(self.chunk(e, side.dead, data=b""))
                    return out
                cur.body_missing += missing
                while missing:  # the parser still counts them: fed as zeros, not kept
                    piece = min(missing, 1 << 20)
                    self._take(side, e, side.reader.feed(bytes(piece)), out, False)
                    missing -= piece
        except HTTPError as error:  # ParseError, and whatever else the parser says
            side.dead = f"not HTTP: {error}"
            out.append(self.chunk(e, side.dead))
        return out

    def _take(self, side: _Side, e: Any, events: Iterable[Any], out: list[Message],
              keep: bool) -> None:
        for ev in events:
            if isinstance(ev, RequestHead):
                side.current = HTTPRequest(**self.base(e), method=ev.method, target=ev.target,
                                           version=_version(ev.version),
                                           headers=ev.headers.items())
                side.body_kind = ev.body_kind
                side.body_length = ev.content_length or 0
                self.responses.reader.expect(ev.method)
                out.append(side.current)
            elif isinstance(ev, ResponseHead):
                side.current = HTTPResponse(**self.base(e), version=_version(ev.version),
                                            status=ev.status, reason=ev.reason,
                                            headers=ev.headers.items())
                side.body_kind = ev.body_kind
                side.body_length = ev.content_length or 0
                out.append(side.current)
            elif isinstance(ev, Body) and side.current is not None:
                cur = side.current
                cur.body_size += len(ev.data)
                if keep and len(cur.body) < KEEP_BODY:
                    cur.body += bytes(ev.data[: KEEP_BODY - len(cur.body)])
            elif isinstance(ev, EndOfMessage) and side.current is not None:
                side.current.complete = True
                if isinstance(side.current, HTTPResponse) and side.current.status < 200:
                    side.current = None

    def held(self) -> list[tuple[bool, int]]:
        return [(client, 0 if side.dead or side.reader.done else side.reader.buffered)
                for client, side in ((True, self.requests), (False, self.responses))]

    def close(self, e: Any) -> list[Message]:
        side = self.responses
        if not side.dead:
            try:
                self._take(side, e, side.reader.feed_eof(), [], True)
            except HTTPError:
                pass  # a message cut short stays incomplete
        return []


def _version(v: tuple[int, int]) -> str:
    return f"HTTP/{v[0]}.{v[1]}"


class _FTPParser(_Parser):
    """An FTP control connection: commands with the server's reader, replies with the
    client's; the data ports it announces are noted, so its data connections are known."""

    name = "ftp"

    def __init__(self, flow: Flow, ports: dict[int, int]) -> None:
        super().__init__(flow, ports)
        self.commands = _Side(CommandReader())
        self.replies = _Side(ReplyReader())

    def feed(self, e: Any) -> list[Message]:
        client = self.flow.from_client(e.source)
        side = self.commands if client else self.replies
        if side.dead:
            return [self.chunk(e, side.dead)]
        if e.size != len(e.data):
            side.dead = e.note or "bytes missing: the rest is not parsed"
            return [self.chunk(e, side.dead)]
        out: list[Message] = []
        self.remember(e)
        control = self.flow.number if self.flow.number is not None else -1
        if client:
            bad: list[str] = []
            for item in side.reader.feed(e.data):
                if isinstance(item, Command):
                    out.append(FTPCommand(**self.base(e), verb=item.verb, arg=item.arg))
                    self._announced(item.verb, item.arg, control)
                elif not bad:  # the write's bytes once, however many of its lines are bad
                    bad.append(str(item))
                    out.append(self.chunk(e, f"not an FTP command: {item}"))
                else:
                    bad.append(str(item))
            if len(bad) > 1:
                chunk = next(m for m in out if isinstance(m, Chunk))
                chunk.note += f" (and {len(bad) - 1} more)"
            return out
        try:
            replies = side.reader.feed(e.data)
        except FTPError as error:
            side.dead = f"not FTP: {error}"
            return [self.chunk(e, side.dead)]
        for reply in replies:
            out.append(FTPReply(**self.base(e), code=reply.code, lines=reply.lines))
            self._announced(str(reply.code), reply.text, control)
        return out

    def held(self) -> list[tuple[bool, int]]:
        replies = len(getattr(self.replies.reader, "_buffer", b""))
        return [(True, 0 if self.commands.dead else self.commands.reader.buffered),
                (False, 0 if self.replies.dead else replies)]

    def _announced(self, what: str, text: str, control: int) -> None:
        """Note the data port that a PASV/EPSV reply or a PORT/EPRT command gives."""
        try:
            if what == "227":
                self.ports[parse_pasv(text)[1]] = control
            elif what == "229":
                self.ports[parse_epsv(text)] = control
            elif what == "PORT":
                self.ports[parse_port(text)[1]] = control
            elif what == "EPRT":
                self.ports[parse_eprt(text)[2]] = control
        except (ValueError, FTPError):
            pass  # a malformed address: the other side answers it; nothing to note


class _IRCParser(_Parser):
    """IRC: lines with the library's line reader, each read with its parser."""

    name = "irc"

    def __init__(self, flow: Flow, ports: dict[int, int]) -> None:
        super().__init__(flow, ports)
        self.sides = {True: _Side(LineReader()), False: _Side(LineReader())}

    def feed(self, e: Any) -> list[Message]:
        side = self.sides[self.flow.from_client(e.source)]
        if side.dead:
            return [self.chunk(e, side.dead)]
        if e.size != len(e.data):
            side.dead = e.note or "bytes missing: the rest is not parsed"
            return [self.chunk(e, side.dead)]
        out: list[Message] = []
        self.remember(e)
        for line in side.reader.feed(bytes(e.data)):
            if isinstance(line, LineTooLong):
                out.append(self.chunk(e, f"an IRC line too long ({line.length:,} B)", b""))
                continue
            try:
                m = parse(line)
            except ValueError as error:  # IRCParseError's base
                out.append(self.chunk(e, f"not IRC: {error}", bytes(line)))
                continue
            out.append(IRCMessage(**self.base(e), tags=m.tags, prefix=m.source,
                                  command=m.command, params=m.params,
                                  line=bytes(line).decode("utf-8", "replace")))
        return out


    def held(self) -> list[tuple[bool, int]]:
        return [(client, 0 if side.dead else side.reader.pending)
                for client, side in self.sides.items()]


_PARSERS: dict[str, type[_Parser]] = {
    "http": _HTTPParser, "ftp": _FTPParser, "ftp-data": _FTPDataParser, "irc": _IRCParser,
    "raw": _Parser,
}

_HTTP_REQUEST = re.compile(rb"[A-Z][A-Z-]* \S+ HTTP/1\.[0-9]\r?\n")
_HTTP_RESPONSE = re.compile(rb"HTTP/1\.[0-9] [0-9]{3}[ \r]")
_FTP_GREETING = re.compile(rb"[0-9]{3}[ -]")
_IRC_CLIENT = re.compile(rb"(?:CAP|NICK|USER|PASS) ")
_IRC_SERVER = re.compile(rb"(?:@\S+ )?:\S+ (?:[0-9]{3}|NOTICE|CAP|PING) ")
_HTTP_PORTS = {80, 8000, 8008, 8080}
_IRC_PORTS = {6665, 6666, 6667, 6668, 6669, 6697}


#: Bytes of a connection's first words enough to guess its protocol by (a line ends
#: sooner, and a line is enough).
GUESS_BYTES = 64


def protocol_of(flow: Flow, ports: dict[int, int], first: Sequence[Any] = (),
                final: bool = True) -> str | None:
    """What ``flow`` speaks: "http", "ftp", "ftp-data", "irc" or "raw" (the module's
    description says how it is chosen), from its class, an FTP data port, or its
    ``first`` data events; None while those are too few to tell and more may come
    (``final`` False)."""
    if flow.datagram:
        return "raw"
    path = flow.protocol
    if path.startswith("protocols.http."):
        return "http"
    if path.startswith("protocols.ftp."):
        is_data = flow.control is not None or "data" in path.rsplit(".", 1)[-1].lower()
        return "ftp-data" if is_data else "ftp"
    if path.startswith("protocols.irc."):
        return "irc"
    if flow.server_port in ports:
        if flow.control is None:
            flow.control = ports[flow.server_port]
        return "ftp-data"
    said = {True: b"", False: b""}
    for e in first:
        said[flow.from_client(e.source)] += bytes(e.data[:512])
    c, s = said[True], said[False]
    if _HTTP_REQUEST.match(c) or _HTTP_RESPONSE.match(s):
        return "http"
    if _IRC_CLIENT.match(c) or _IRC_SERVER.match(s):
        return "irc"
    client_first = bool(first) and flow.from_client(first[0].source)
    if _FTP_GREETING.match(s) and not client_first:
        return "ftp"
    opening = c if client_first else s
    if not final and len(opening) < GUESS_BYTES and b"\n" not in opening and not any(
            e.size > len(e.data) for e in first):
        return None  # too few bytes yet to tell
    # The port, when the first bytes do not say otherwise (a line that begins as the
    # protocol's would, or no bytes seen).
    port = flow.server_port
    if port in _HTTP_PORTS and client_first and _could_be(c, rb"[A-Z]"):
        return "http"
    if port == 21 and not client_first and _could_be(s, rb"[0-9]"):
        return "ftp"
    if port in _IRC_PORTS and _could_be(opening, rb"[@:A-Z]"):
        return "irc"
    if flow.client_port == 20:
        return "ftp-data"
    return "raw"


def _could_be(data: bytes, start: bytes) -> bool:
    return not data or re.match(start, data) is not None


class _Parsed(NamedTuple):
    events: list[Any]  #: the conversation
    flows: list[Flow]
    of_event: dict[int, Flow]  #: event index -> its flow
    messages: list[tuple[int, Message]]  #: (index of the event that began it, message)


def _parse(capture: Any, protocol: str | None = None) -> _Parsed:
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol is one of {', '.join(PROTOCOLS)} (or None), not "
                         f"{protocol!r}")
    events = capture.conversation()
    flows = assemble(events)
    of_event = {i: flow for flow in flows for i in flow.events}
    ports: dict[int, int] = {}
    parsers: dict[int, _Parser] = {}
    waiting: dict[int, list[int]] = {}  # flow -> its data events before its protocol is known
    out: list[tuple[int, Message]] = []

    def run(flow: Flow, step: str, i: int) -> None:
        """The flow's parser's ``step`` ("feed", "close", "finish") on event ``i``; if
        the parser fails, the rest of the flow is bytes that say so (reading a capture
        never raises, whatever its bytes)."""
        parser = parsers[flow.index]
        try:
            out.extend((i, m) for m in getattr(parser, step)(events[i]))
        except Exception as error:  # a bug in a reader: said in the capture
            parsers[flow.index] = _Failed(flow, ports, parser.name, error)
            if step == "feed":
                run(flow, step, i)

    def start(flow: Flow, final: bool) -> _Parser | None:
        """The flow's parser, made (and fed what waited) once its protocol is known."""
        held = waiting.get(flow.index, [])
        name = protocol or protocol_of(flow, ports, [events[j] for j in held], final)
        if name is None:
            return None
        parsers[flow.index] = _PARSERS[name](flow, ports)
        for j in waiting.pop(flow.index, []):
            run(flow, "feed", j)
        return parsers[flow.index]

    for i, e in enumerate(events):
        flow = of_event[i]
        parser = parsers.get(flow.index)
        if e.kind == "data":
            if parser is None:
                waiting.setdefault(flow.index, []).append(i)
                start(flow, final=False)
            else:
                run(flow, "feed", i)
        elif e.kind == "close":
            if parser is None and flow.index in waiting:
                parser = start(flow, final=True)
            if parser is not None:
                run(flow, "close", i)
    for flow in flows:
        if flow.index in waiting:
            start(flow, final=True)
    for flow in flows:
        if flow.index in parsers:
            run(flow, "finish", flow.events[-1])
    out.sort(key=lambda item: item[0])  # stable: in order of the events that began them
    return _Parsed(events, flows, of_event, out)


def parse_capture(capture: Any, protocol: str | None = None) -> Messages:
    """``capture``'s messages, parsed (``capture.messages()``; the module says how)."""
    return Messages(m for _, m in _parse(capture, protocol).messages)


# ---- rows: what the diagrams draw, one per message or connection event


class Row(NamedTuple):
    """One row of a sequence diagram: a message, or a connection opened or closed."""

    time: float
    kind: str  #: "message", "connect" or "close"
    number: int | None
    source: str
    dest: str
    message: Message | None
    note: str  #: for "connect" and "close": what happened ("connect", "closed", ...)
    tls: bool = False

    def label(self, limit: int = 60) -> str:
        """What the diagrams write by the arrow."""
        if self.message is not None:
            return self.message.label(limit)
        conn = f"#{self.number}" if self.number is not None else ""
        note = printable(self.note)
        if self.kind == "connect":
            return f"{note} {conn}".strip() + (" (TLS)" if self.tls else "")
        return f"{conn} {note}".strip()


def summary_rows(capture: Any) -> list[Row]:
    """The rows of ``capture``'s sequence diagram, in order: its parsed messages and the
    connections opened and closed."""
    if not capture.events:
        return []
    parsed = _parse(capture)
    by_index: dict[int, list[Message]] = {}
    for i, m in parsed.messages:
        by_index.setdefault(i, []).append(m)
    rows = []
    for i, e in enumerate(parsed.events):
        if e.kind == "open":
            rows.append(Row(e.time, "connect", e.number, e.source, e.dest, None, e.note,
                            bool(getattr(e, "tls", False))))
        elif e.kind == "close":
            rows.append(Row(e.time, "close", e.number, e.source, e.dest, None, e.note))
        for m in by_index.get(i, ()):
            rows.append(Row(m.time, "message", m.number, m.source, m.dest, m, ""))
    return rows


def capture_lines(capture: Any) -> list[str]:
    """The conversation as text, one line per message or connection event (the text of
    a capture's repr)."""
    out = []
    for row in summary_rows(capture):
        conn = f"#{row.number} " if row.number is not None else ""
        m = row.message
        ends = f"{printable(row.source)} -> {printable(row.dest)}"
        if row.kind == "connect":
            tls = " (TLS)" if row.tls else ""
            out.append(f"{conn}{ends} {printable(row.note)}{tls}")
        elif row.kind == "close":
            out.append(f"{conn}{printable(row.note)}")
        elif isinstance(m, Chunk) and not isinstance(m, FTPData):
            note = f"  ({printable(m.note)})" if m.note else ""
            out.append(f"{conn}{ends} {m.size} B  {preview(m.data, 40)}{note}")
        else:
            assert m is not None
            out.append(f"{conn}{ends} {m.label(60)}")
    return out


# ---- the text sequence diagram


class Diagram:
    """A capture's sequence diagram: text at the prompt (its repr), SVG in Jupyter."""

    def __init__(self, capture: Any, text: str) -> None:
        self.capture = capture
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from netshell.kernel.displays import capture_svg

        return {"text/plain": self.text, "image/svg+xml": capture_svg(self.capture)}


def printable(text: str) -> str:
    """``text`` with what a terminal would act on escaped as Python writes it: control
    characters (``\\x1b``, ``\\r``), bidirectional overrides (``\\u202e``)... What
    peers said is shown this way, as the live trace's previews show their bytes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def parties_of(rows: Iterable[Row]) -> list[str]:
    """The addresses of the rows, in order of appearance (the diagram's columns)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row.source)
        seen.setdefault(row.dest)
    return list(seen)


#: The narrowest summary a diagram leaves room for beside its columns; fewer columns are
#: drawn rather than less of it.
MIN_LABEL = 16


def diagram(capture: Any, width: int | None = None) -> Diagram:
    """``capture.diagram()``: a column per address (its lifeline ``|``), a row per message
    (an arrow ``--->`` from its sender to its receiver), per connection opened (``- ->``)
    and closed (``x . .``, the ``x`` on the end that saw it end), each with its time on
    the left and its summary on the right.

    It fits ``width`` characters (none: the terminal's width, and summaries of 70 at
    most). When the columns do not fit, the addresses that come first have theirs and the
    others share the last one, headed ``(N more)``: their rows name them, and a line at
    the end says which they are."""
    rows = summary_rows(capture)
    parties = parties_of(rows)
    if not parties:
        return Diagram(capture, f"(nothing captured yet: {capture.what})")
    fit = width if width is not None else shutil.get_terminal_size((80, 24)).columns
    left = 14  # "12:00:00.000  "
    names = {p: printable(p) for p in parties}
    col = max(14, max(len(n) for n in names.values()) + 3)
    drawn = len(parties)
    if left + col * drawn + 2 + MIN_LABEL > fit:
        # a column each for the first, one for the rest (when that is fewer columns)
        drawn = min(len(parties), max(1, (fit - left - 2 - MIN_LABEL) // col - 1))
        if drawn + 1 >= len(parties):
            drawn = len(parties)
    others = parties[drawn:]
    columns = parties[:drawn] + ([f"({len(others)} more)"] if others else [])
    x = {p: left + i * col + col // 2 for i, p in enumerate(columns)}
    for p in others:
        x[p] = x[columns[-1]]
    span = left + col * len(columns)
    head = [" " * left]
    for p in columns:
        head.append(names.get(p, p).center(col))
    end = x[columns[-1]] + 1  # the summaries start after the last lifeline
    lines = ["".join(head).rstrip()]
    life = [" "] * span
    for p in columns:
        life[x[p]] = "|"
    lines.append("".join(life).rstrip())
    left_out = set(others)
    for row in rows:
        cells = list(life)
        a, b = x[row.source], x[row.dest]
        if a == b:
            cells[a] = "o"
        else:
            lo, hi = min(a, b), max(a, b)
            for c in range(lo + 1, hi):
                if row.kind == "message":
                    cells[c] = "-"
                elif row.kind == "connect":
                    cells[c] = "-" if (c - lo) % 2 else " "
                else:
                    cells[c] = "." if (c - lo) % 2 else " "
            if row.kind == "close":
                cells[a] = "x"  # the end whose connection ended (the traced one)
            elif b > a:
                cells[b - 1] = ">"
            else:
                cells[b + 1] = "<"
        room = fit - end - 2
        if width is None:
            room = min(70, room)
        label = row.label(max(room, 4))
        hidden = [names[p] for p in dict.fromkeys((row.source, row.dest)) if p in left_out]
        if hidden:  # which of the last column's addresses it is
            label = f"{' -> '.join(hidden)}: {label}"
        label = _clip(label, room) if room > 3 else ""
        lines.append(f"{clock(row.time)}  {''.join(cells)[left:end]}  {label}".rstrip())
    lines = [line[:fit] for line in lines]
    if others:
        lines += textwrap.wrap(
            f"({len(others)} addresses share the last column, {fit} characters being too "
            f"few for a column each: {', '.join(names[p] for p in others)}; "
            "diagram(width=...) draws it wider)", max(fit, 20))
    return Diagram(capture, "\n".join(lines))


# ---- the bytes, dumped


#: What ``capture.hexdump()`` dumps by default: the first bytes of each message, and of
#: all of them (a 16 MiB capture dumped whole is some 80 MB of text).
HEXDUMP_EACH = 1024
HEXDUMP_TOTAL = 64 * 1024


def hexdump_capture(capture: Any, each: int | None = HEXDUMP_EACH,
                    total: int | None = HEXDUMP_TOTAL) -> Text:
    """``capture.hexdump()``: each message's bytes, in order, under a line that says when,
    on which connection, from where to where and how many bytes (and how many kept).

    Bounded: the first ``each`` bytes of a message, ``total`` bytes in all (None: no
    bound); what is left out is said where it is, and at the end."""
    out = []
    budget = total
    cut = left = left_bytes = 0  # bytes cut from messages dumped; messages not dumped
    for e in capture.conversation():
        if e.kind != "data":
            continue
        if budget is not None and budget <= 0 and e.data:
            left += 1
            left_bytes += len(e.data)
            continue
        conn = f"#{e.number} " if e.number is not None else "udp "
        kept = "" if len(e.data) == e.size else f" ({len(e.data):,} kept)"
        note = f" ({printable(e.note)})" if e.note else ""
        out.append(f"{clock(e.time)} {conn}{printable(e.source)} -> {printable(e.dest)} "
                   f"{e.size:,} B{kept}{note}")
        if e.data:
            take = len(e.data) if each is None else min(len(e.data), each)
            if budget is not None:
                take = min(take, budget)
                budget -= take
            out.append(hexdump(e.data[:take]))
            if take < len(e.data):
                out.append(f"... {len(e.data) - take:,} B more of it not dumped")
                cut += len(e.data) - take
    if left:
        out.append(f"... {left:,} more messages ({left_bytes:,} B) not dumped")
    if cut or left:
        out.append(f"({cut + left_bytes:,} B left out: hexdump(each=None, total=None) dumps "
                   "every byte kept)")
    return Text("\n".join(out) if out else "(no bytes captured)")


# ---- show(msg)


def _show_lines(m: Message) -> list[str]:
    common: list[tuple[str, Any]] = [
        ("time", f"{clock(m.time)} ({m.time:.6f})"),
        ("connection", f"#{m.number}" if m.number is not None else "(datagram)"),
        ("from", m.source), ("to", m.dest),
    ]
    return _field_lines(m.title, common + m.fields())


def _http_lines(what: Request | Response) -> list[str]:
    """An HTTP request or response of the library (``http.get``'s): its first line's
    parts, its header fields and its body's size."""
    body = what.body
    size = f"{len(body):,} B" if isinstance(body, bytes | bytearray | str) else (
        f"({type(body).__name__}: sent as it comes)")
    version = f"HTTP/{what.version[0]}.{what.version[1]}"
    if isinstance(what, Request):
        return _field_lines("HTTP request", [
            ("method", what.method), ("target", what.target), ("version", version),
            ("headers", list(what.headers.items())), ("body", size)])
    pairs: list[tuple[str, Any]] = [("url", what.url)] if what.url else []
    pairs += [("version", version), ("status", what.status), ("reason", what.reason),
              ("headers", list(what.headers.items())), ("body", size)]
    if what.history:
        pairs.append(("redirects", [(f"[{i}]", f"{r.status} {r.url}".rstrip())
                                    for i, r in enumerate(what.history)]))
    return _field_lines("HTTP response", pairs)


def _field_lines(title: str, pairs: list[tuple[str, Any]]) -> list[str]:
    width = max(11, *(len(name) for name, _ in pairs))
    lines = [f"###[ {title} ]###"]
    for name, value in pairs:
        if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2
                                           for v in value) and value:
            lines.append(f"  {name}")
            inner = max(len(printable(str(k))) for k, _ in value)
            lines += [f"    {printable(str(k)).ljust(inner)} = {printable(str(v))}"
                      for k, v in value]
        elif isinstance(value, list) and not value:
            lines.append(f"  {name.ljust(width)} = (none)")
        else:
            lines.append(f"  {name.ljust(width)} = {printable(str(value))}")
    return lines


def show_text(what: Any) -> str:
    """What :func:`show` prints, as text."""
    if isinstance(what, Message):
        return "\n".join(_show_lines(what))
    if isinstance(what, Request | Response):
        return "\n".join(_http_lines(what))
    if hasattr(what, "messages") and hasattr(what, "conversation"):
        what = what.messages()
    if isinstance(what, list) and all(isinstance(m, Message) for m in what):
        return "\n\n".join("\n".join(_show_lines(m)) for m in what) or "(no messages)"
    raise TypeError(
        "show() prints a message of a capture (cap.messages()[0]), a list of them, a "
        f"capture, or an HTTP request or response; not {type(what).__name__}"
    )


def show(what: Any) -> None:
    """Print the fields of a parsed message, as scapy's ``show`` does: its kind, then one
    ``name = value`` per line (headers, tags and multi-line texts indented below their
    name). A list of messages, or a capture, shows each of its messages. An HTTP request
    or response of the library (what ``http.get`` fires with) shows its first line's
    parts, header fields and body size.

    Raises TypeError for anything else.
    """
    print(show_text(what))
