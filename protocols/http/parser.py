"""The sans-I/O core of HTTP/1.1: bytes in, events out, and the writers for heads and chunks.

``RequestParser`` (for servers) and ``ResponseParser`` (for clients) take whatever bytes
arrive, in pieces of any size, and return a list of events: a ``RequestHead`` or
``ResponseHead``, then ``Body`` pieces, then ``EndOfMessage``. Several pipelined messages
fed at once come back in order. Nothing here does I/O, knows about sockets, or keeps time.

Parsing is strict (RFC 9110 and RFC 9112): a whole head is parsed at once, and anything
that could let two parsers disagree about where a message ends is refused with a
``ParseError`` whose ``status`` is the answer to send: 400 for a malformed message or a
smuggling attempt (both Content-Length and Transfer-Encoding, duplicate or non-numeric
Content-Length, a transfer coding other than ``chunked``, obsolete line folding, whitespace
before a colon, bare CR or LF, control characters), 414 for a long request line, 431 for
a large head, 413 for a large body, 505 for an HTTP major version other than 1.
How a body is delimited (Content-Length, chunked, until the close, or none: RFC 9112
section 6.3) is decided by :mod:`protocols.http.framing` (``read_request_framing``,
``read_response_framing``), which raises those framing errors; the parser reads the
fields and follows its answer. ``encode_chunk`` and ``LAST_CHUNK`` live there too and are
importable from here as well.

Where RFC 9112 leaves a choice, this parser takes the strict one (and so refuses some
messages h11 accepts): bare LF line ends, obs-fold, equal duplicate Content-Length,
Content-Length with Transfer-Encoding, Transfer-Encoding in HTTP/1.0, controls other than
HTAB in field values, malformed chunk extensions. It does ignore empty lines before a
request line (RFC 9112 section 2.2) and keeps an HTTP/1.0 connection alive when asked with
``Connection: keep-alive``. tests/protocols/http/test_parser_h11.py lists each difference.

After a parse error the parser is dead: every later call raises the same error. The error's
``events`` holds what the same ``feed`` had parsed before it (complete earlier pipelined
requests that may still be answered). After a message that does not keep the connection
alive (``Connection: close``, HTTP/1.0), the parser ignores anything that follows.

Example::

    >>> p = RequestParser()
    >>> head, end = p.feed(b"GET /hi HTTP/1.1\\r\\nHost: example.org\\r\\n\\r\\n")
    >>> head.method, head.target, head.headers["host"], head.keep_alive
    ('GET', '/hi', 'example.org', True)
    >>> p.feed(b"POST /up HTTP/1.1\\r\\nHost: a\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
    ...        b"5\\r\\nhello\\r\\n0\\r\\n\\r\\n")[1:]
    [Body(data=b'hello'), EndOfMessage(trailers=Headers([]))]
    >>> p.feed(b"GET / HTTP/1.1\\r\\n\\r\\n")
    Traceback (most recent call last):
      ...
    protocols.http.message.ParseError: missing Host header
    >>> rp = ResponseParser()
    >>> rp.expect("GET")
    >>> rp.feed(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")[1:]
    [Body(data=b'ok'), EndOfMessage(trailers=Headers([]))]
    >>> serialize_request_head("GET", "/", Headers([("Host", "a")]))
    b'GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n'
    >>> encode_chunk(b"hello") + LAST_CHUNK
    b'5\\r\\nhello\\r\\n0\\r\\n\\r\\n'
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from protocols.http.framing import LAST_CHUNK as LAST_CHUNK
from protocols.http.framing import encode_chunk as encode_chunk
from protocols.http.framing import read_request_framing, read_response_framing
from protocols.http.message import Headers, Limits, ParseError

__all__ = [
    "LAST_CHUNK",
    "Body",
    "EndOfMessage",
    "Event",
    "RequestHead",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "encode_chunk",
    "serialize_request_head",
    "serialize_response_head",
]

# --- events ------------------------------------------------------------------------------


@dataclass(slots=True)
class RequestHead:
    """A request line and its header fields, with the framing the parser worked out."""

    method: str
    target: str
    version: tuple[int, int]
    headers: Headers
    keep_alive: bool  # may the connection carry another request after this one?
    expect_continue: bool  # HTTP/1.1 "Expect: 100-continue": answer 100 before reading the body
    body_kind: Literal["none", "length", "chunked"]
    content_length: int | None
    has_expect: bool = False  # an Expect field of any kind was sent (100-continue or not)


@dataclass(slots=True)
class ResponseHead:
    """A status line and its header fields. 1xx interim heads are followed by EndOfMessage."""

    version: tuple[int, int]
    status: int
    reason: str
    headers: Headers
    keep_alive: bool
    body_kind: Literal["none", "length", "chunked", "close"]
    content_length: int | None


@dataclass(slots=True)
class Body:
    """A piece of a message body, as it arrived (chunked framing removed)."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The message is complete; ``trailers`` holds the chunked trailer fields, if any."""

    trailers: Headers = field(default_factory=Headers)


Event = RequestHead | ResponseHead | Body | EndOfMessage

# --- the grammar (RFC 9110 section 5.6, RFC 9112 sections 3, 4, 5, 7) -------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
# request-target: visible ASCII only (RFC 9112 section 3.2); never a space, a control or
# raw non-ASCII, which is where parsers start to disagree about what the target is.
_REQUEST_LINE_RE = re.compile(rf"({_TOKEN}) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
# The reason phrase may be empty, and some servers leave out the space before it.
_STATUS_LINE_RE = re.compile(r"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
# field-value octets are HTAB, SP, VCHAR and obs-text: anything else (NUL, CR, LF, DEL,
# other controls) is refused.
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_QUOTED = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_CHUNK_LINE_RE = re.compile(
    rf"([0-9A-Fa-f]+)((?:[ \t]*;[ \t]*{_TOKEN}(?:[ \t]*=[ \t]*(?:{_TOKEN}|{_QUOTED}))?)*)".encode(
        "latin-1"
    )
)
# For the writers: CR, LF and other controls must never reach the wire from a header.
_UNSAFE_OUT_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)
_NEED_MORE = -1


def _fail(status: int, message: str) -> ParseError:
    return ParseError(status, message)


# Field kinds the framing logic needs to see; every other field is just passed on.
_CONTENT_LENGTH, _TRANSFER_ENCODING, _HOST, _CONNECTION, _EXPECT = 1, 2, 3, 4, 5
_KINDS = {
    "content-length": _CONTENT_LENGTH,
    "transfer-encoding": _TRANSFER_ENCODING,
    "host": _HOST,
    "connection": _CONNECTION,
    "expect": _EXPECT,
}
# Clients send the same header lines again and again ("Host: ...", "User-Agent: ..."), so
# each short line, once validated, is remembered with its parsed pair: a dict lookup instead
# of a regex and three string operations. Bounded: cleared when full, short lines only.
_FIELD_CACHE: dict[str, tuple[tuple[str, str], int]] = {}
_FIELD_CACHE_SIZE = 1024
_FIELD_CACHE_LINE = 200


def _parse_field(line: str) -> tuple[tuple[str, str], int]:
    name, colon, value = line.partition(":")
    if not colon or _TOKEN_RE.fullmatch(name) is None:
        if line[:1] in (" ", "\t"):
            raise _fail(400, "obsolete line folding in header")
        if colon and name.rstrip(" \t") != name:
            raise _fail(400, "whitespace between header name and colon")
        if "\r" in line or "\n" in line:
            raise _fail(400, "bare CR or LF in head")
        raise _fail(400, f"malformed header line {line[:40]!r}")
    value = value.strip(" \t")
    if _BAD_VALUE_RE.search(value) is not None:
        if "\r" in value or "\n" in value:
            raise _fail(400, "bare CR or LF in head")
        raise _fail(400, f"control character in value of header {name!r}")
    kind = _KINDS.get(name.lower(), 0)
    if kind == _HOST and _HOST_RE.fullmatch(value) is None:
        # RFC 9112 section 3.2: a Host field with an invalid value MUST get a 400.
        raise _fail(400, f"invalid Host {value[:40]!r}")
    return (name, value), kind


# uri-host [ ":" port ] (RFC 3986 section 3.2.2): an IP-literal, or a reg-name / IPv4.
_AUTHORITY = (
    r"(?:\[[0-9A-Fa-f:.]+(?:%25[0-9A-Za-z._~-]+)?\]|[0-9A-Za-z\-._~!$&'()*+,;=%]*)"
    r"(?::[0-9]*)?"
)
_HOST_RE = re.compile(_AUTHORITY)
# absolute-form (RFC 9112 section 3.2.2): scheme "://" authority, then path and query.
_ABSOLUTE_RE = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*://({_AUTHORITY})(?:[/?][\x21-\x7e]*)?")
_AUTHORITY_FORM_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]+):[0-9]+")


def _check_target(method: str, target: str) -> None:
    """Refuse a request-target that is none of the four forms of RFC 9112 section 3.2.

    Origin-form (``/path``) is checked by the caller; this sees the others.
    """
    if target == "*":
        if method != "OPTIONS":
            raise _fail(400, "the asterisk form is for OPTIONS only")
    elif method == "CONNECT":
        if _AUTHORITY_FORM_RE.fullmatch(target) is None:
            raise _fail(400, f"CONNECT needs host:port, not {target[:60]!r}")
    elif _ABSOLUTE_RE.fullmatch(target) is None:
        raise _fail(400, f"invalid request target {target[:60]!r}")


_HTTP10, _HTTP11 = (1, 0), (1, 1)
# Bound once: the request path calls it per message without looking it up on the class.
_headers_from_pairs = Headers.from_pairs


def _remember_field(line: str) -> tuple[tuple[str, str], int]:
    hit = _parse_field(line)
    if len(line) <= _FIELD_CACHE_LINE:
        if len(_FIELD_CACHE) >= _FIELD_CACHE_SIZE:
            _FIELD_CACHE.clear()
        _FIELD_CACHE[line] = hit
    return hit


def _parse_fields(
    lines: list[str], first: int, limits: Limits
) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """The (name, value) pairs of ``lines[first:]``, and the (kind, value) of framing fields.

    Raises ParseError on a malformed line (400) or too many fields (431).
    """
    if len(lines) - first > limits.max_headers:
        raise _fail(431, f"more than {limits.max_headers} header fields")
    pairs = []
    special = []
    cached = _FIELD_CACHE.get
    for i in range(first, len(lines)):
        line = lines[i]
        hit = cached(line)
        if hit is None:
            hit = _remember_field(line)
        pair, kind = hit
        pairs.append(pair)
        if kind:
            special.append((kind, pair[1]))
    return pairs, special


def _connection_tokens(values: list[str]) -> set[str]:
    return {t.strip().lower() for v in values for t in v.split(",")}


# --- the parsers ---------------------------------------------------------------------------


class _MessageParser:
    """The framing shared by requests and responses: heads, bodies, chunks, trailers."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits if limits is not None else Limits()
        self._buf = bytearray()  # bytes received and not yet parsed
        self._scan = 0  # where in _buf the search for the end of a head resumes
        self._state = _HEAD
        self._remaining = 0  # body bytes left: the whole body (length) or this chunk
        self._received = 0  # chunked body bytes so far, for max_body
        self._keep_alive = True
        self._error: ParseError | None = None
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed (after a complete message: what followed it)."""
        return len(self._buf)

    @property
    def done(self) -> bool:
        """True once the connection can carry no further message (closed, or not kept alive)."""
        return self._state == _DONE or self._eof

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` (with whatever came before); return the events it completes.

        Raises ParseError (with ``status``) if the bytes break the protocol or a limit.
        """
        if self._error is not None:
            raise self._error
        if not data or self._state == _DONE or self._eof:
            return []
        if type(data) is not bytes:
            data = bytes(data)
        if self._buf:
            self._buf += data
            buf: bytes | bytearray = self._buf
        else:
            buf = data  # the common case: no copy at all
        events: list[Event] = []
        try:
            pos = self._run(buf, 0, events)
        except ParseError as e:
            self._error = e
            e.events = events
            self._buf = bytearray()
            raise
        if pos >= len(buf) or self._state == _DONE:
            if self._buf:
                self._buf = bytearray()
            self._scan = 0
        elif buf is data:
            self._buf = bytearray(data[pos:])
            self._scan = max(0, self._scan - pos)
        elif pos:
            del self._buf[:pos]
            self._scan = max(0, self._scan - pos)
        return events

    def feed_eof(self) -> list[Event]:
        """The peer closed its side: return the final events, or raise if a message was cut."""
        if self._error is not None:
            raise self._error
        if self._eof:
            return []
        self._eof = True
        state = self._state
        if state == _DONE:
            return []
        if state == _UNTIL_CLOSE:
            self._state = _DONE
            return [EndOfMessage(Headers())]
        if state == _HEAD and not self._buf.strip(b"\r\n"):
            self._state = _DONE
            return []
        self._error = _fail(400, "connection closed in the middle of a message")
        raise self._error

    # The loop: each step returns the new position, or _NEED_MORE to wait for bytes.
    def _run(self, buf: bytes | bytearray, pos: int, events: list[Event]) -> int:
        end = len(buf)
        while pos < end:
            state = self._state
            if state == _HEAD:
                new = self._head(buf, pos, events)
            elif state == _LENGTH:
                take = min(end - pos, self._remaining)
                events.append(
                    Body(
                        buf[pos : pos + take]
                        if type(buf) is bytes
                        else bytes(buf[pos : pos + take])
                    )
                )
                new = pos + take
                self._remaining -= take
                if not self._remaining:
                    self._end_message(events, Headers())
            elif state == _CHUNK_SIZE:
                new = self._chunk_size(buf, pos)
            elif state == _CHUNK_DATA:
                take = min(end - pos, self._remaining)
                events.append(Body(bytes(buf[pos : pos + take])))
                new = pos + take
                self._remaining -= take
                self._received += take
                if not self._remaining:
                    self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if end - pos < 2:
                    if buf[pos] != 13:
                        raise _fail(400, "chunk data not followed by CRLF")
                    return pos
                if buf[pos] != 13 or buf[pos + 1] != 10:
                    raise _fail(400, "chunk data not followed by CRLF")
                new = pos + 2
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                new = self._trailers(buf, pos, events)
            elif state == _UNTIL_CLOSE:
                events.append(Body(bytes(buf[pos:])))
                new = end
            else:  # _DONE: whatever follows a message that closes the connection is ignored
                return end
            if new == _NEED_MORE:
                return pos
            pos = new
        return pos

    def _end_message(self, events: list[Event], trailers: Headers) -> None:
        events.append(EndOfMessage(trailers))
        self._state = _HEAD if self._keep_alive else _DONE

    def _find_head_end(
        self, buf: bytes | bytearray, pos: int, max_line: int, line_status: int = 431
    ) -> int:
        """Index of the CRLFCRLF ending the head that starts at ``pos``, or _NEED_MORE.

        Raises ParseError(line_status) if the first line alone exceeds ``max_line``, and
        431 if the head exceeds max_header_bytes.
        """
        end = buf.find(b"\r\n\r\n", max(pos, self._scan))
        if end >= 0:
            return end
        size = len(buf) - pos
        if size > max_line and buf.find(b"\r\n", pos, pos + max_line + 2) < 0:
            raise _fail(line_status, f"first line longer than {max_line} bytes")
        if size > self.limits.max_header_bytes:
            raise _fail(431, f"head larger than {self.limits.max_header_bytes} bytes")
        # A LF that no CR precedes can never be part of the CRLFCRLF we wait for: refuse
        # it now rather than wait for a head that will not come.
        start = max(pos, self._scan)
        if buf.find(b"\n\n", start) >= 0 or buf.find(b"\n\r\n", start) >= 0:
            raise _fail(400, "bare LF in head")
        self._scan = max(pos, len(buf) - 3)
        return _NEED_MORE

    def _head(self, buf: bytes | bytearray, pos: int, events: list[Event]) -> int:
        raise NotImplementedError

    def _chunk_size(self, buf: bytes | bytearray, pos: int) -> int:
        limit = self.limits.max_chunk_line
        nl = buf.find(b"\r\n", pos, pos + limit + 2)
        if nl < 0:
            if len(buf) - pos > limit:
                raise _fail(400, f"chunk-size line longer than {limit} bytes")
            if buf.find(b"\n", pos) >= 0:
                raise _fail(400, "bare LF in chunk-size line")
            return _NEED_MORE
        m = _CHUNK_LINE_RE.fullmatch(buf, pos, nl)
        if m is None:
            raise _fail(400, "malformed chunk-size line")
        digits = m.group(1).lstrip(b"0")
        if len(digits) > 15 or self._received + int(digits or b"0", 16) > self.limits.max_body:
            raise _fail(413, f"body larger than {self.limits.max_body} bytes")
        size = int(digits or b"0", 16)
        if size:
            self._remaining = size
            self._state = _CHUNK_DATA
        else:
            self._state = _TRAILERS
            self._scan = nl
        return nl + 2

    def _trailers(self, buf: bytes | bytearray, pos: int, events: list[Event]) -> int:
        if len(buf) - pos < 2:
            if buf[pos] == 10:
                raise _fail(400, "bare LF after the last chunk")
            return _NEED_MORE
        if buf[pos] == 13 and buf[pos + 1] == 10:
            self._end_message(events, Headers())
            return pos + 2
        if buf[pos] in (10, 13):
            raise _fail(400, "bare CR or LF after the last chunk")
        end = self._find_head_end(buf, pos, self.limits.max_header_bytes)
        if end == _NEED_MORE:
            return end
        if end + 4 - pos > self.limits.max_header_bytes:
            raise _fail(431, f"trailers larger than {self.limits.max_header_bytes} bytes")
        lines = buf[pos:end].decode("latin-1").split("\r\n")
        trailers = Headers.from_pairs(_parse_fields(lines, 0, self.limits)[0])
        self._end_message(events, trailers)
        return end + 4


class RequestParser(_MessageParser):
    """Parses the requests a client sends a server (see the module docstring).

    ``feed(data)`` returns events, several requests' worth when they are pipelined;
    ``feed_eof()`` returns ``[]`` at a message boundary and raises ParseError(400) if the
    close cut a request short.
    """

    def _head(self, buf: bytes | bytearray, pos: int, events: list[Event]) -> int:
        # RFC 9112 section 2.2: a server SHOULD ignore empty lines before a request line
        # (old clients send a CRLF after a POST body).
        start = pos
        while buf.startswith(b"\r\n", pos):
            pos += 2
        if pos == len(buf):
            return pos
        limits = self.limits
        end = buf.find(b"\r\n\r\n", pos if pos > self._scan else self._scan)
        if end < 0:
            end = self._find_head_end(buf, pos, limits.max_request_line, 414)
            if end == _NEED_MORE:
                return pos if pos != start else _NEED_MORE
        lines = buf[pos:end].decode("latin-1").split("\r\n")
        line = lines[0]
        if len(line) > limits.max_request_line:
            raise _fail(414, "request line too long")
        if end + 4 - pos > limits.max_header_bytes:
            raise _fail(431, f"head larger than {limits.max_header_bytes} bytes")
        m = _REQUEST_LINE_RE.fullmatch(line)
        if m is None:
            raise _fail(400, f"malformed request line {line[:60]!r}")
        method, target, major, minor = m.groups()
        if major != "1":
            raise _fail(505, f"HTTP/{major}.{minor} is not supported")
        if target[0] != "/" or method == "CONNECT":  # CONNECT takes authority-form only
            _check_target(method, target)
        if len(lines) > limits.max_headers + 1:
            raise _fail(431, f"more than {limits.max_headers} header fields")
        # The fields, inline (this is the hot path of every request): each line is
        # checked once and remembered, since clients repeat the same lines.
        pairs = []
        lengths: list[str] | None = None
        codings: list[str] | None = None
        connection: list[str] | None = None
        expect = has_expect = False
        hosts = 0
        cached = _FIELD_CACHE.get
        for i in range(1, len(lines)):
            field_line = lines[i]
            hit = cached(field_line)
            if hit is None:
                hit = _remember_field(field_line)
            pair, kind = hit
            pairs.append(pair)
            if not kind:
                continue
            value = pair[1]
            if kind == _HOST:
                hosts += 1
            elif kind == _CONTENT_LENGTH:
                lengths = [value] if lengths is None else [*lengths, value]
            elif kind == _TRANSFER_ENCODING:
                codings = [value] if codings is None else [*codings, value]
            elif kind == _CONNECTION:
                connection = [value] if connection is None else [*connection, value]
            else:
                has_expect = True
                expect = expect or "100-continue" in _connection_tokens([value])
        http11 = minor != "0"
        if hosts > 1:
            raise _fail(400, "more than one Host header")
        if http11 and not hosts:
            raise _fail(400, "missing Host header")
        # How the body is delimited is framing.py's to say (smuggling refused there). A
        # request with neither field has none, as read_request_framing says too: the
        # commonest case is not worth its call (3% of this feed, measured).
        body_kind: Literal["none", "length", "chunked"]
        if codings is None and lengths is None:
            body_kind, length = "none", None
        else:
            body_kind, length = read_request_framing(codings, lengths, http11, limits.max_body)
        if connection is None:
            keep_alive = http11
        else:
            tokens = _connection_tokens(connection)
            keep_alive = "close" not in tokens and (http11 or "keep-alive" in tokens)
        self._keep_alive = keep_alive
        headers = _headers_from_pairs(pairs)
        events.append(
            RequestHead(
                method,
                target,
                _HTTP11 if minor == "1" else _HTTP10 if minor == "0" else (1, int(minor)),
                headers,
                keep_alive,
                expect and http11,
                body_kind,
                length,
                has_expect,
            )
        )
        if body_kind == "chunked":
            self._received = 0
            self._state = _CHUNK_SIZE
        elif length:
            self._remaining = length
            self._state = _LENGTH
        else:
            events.append(EndOfMessage(_headers_from_pairs([])))
            self._state = _HEAD if keep_alive else _DONE
        self._scan = end + 4
        return end + 4


class ResponseParser(_MessageParser):
    """Parses the responses a server sends a client.

    Call ``expect(method)`` once per request sent, in order, before its response arrives:
    the method decides whether the response has a body (HEAD does not). Interim 1xx
    responses come as a ResponseHead followed at once by EndOfMessage, then the final
    response follows. A body with no length ends when the server closes: ``feed_eof()``.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self._methods: deque[str] = deque()

    def expect(self, method: str) -> None:
        """Say that a request with ``method`` was sent, so a response to it is due."""
        self._methods.append(method.upper())

    def _head(self, buf: bytes | bytearray, pos: int, events: list[Event]) -> int:
        # Some servers send a stray CRLF after a body; like h11, skip empty lines here.
        start = pos
        while buf.startswith(b"\r\n", pos):
            pos += 2
        if pos == len(buf):
            return pos
        limits = self.limits
        end = self._find_head_end(buf, pos, limits.max_header_bytes)
        if end == _NEED_MORE:
            return pos if pos != start else _NEED_MORE
        if end + 4 - pos > limits.max_header_bytes:
            raise _fail(431, f"head larger than {limits.max_header_bytes} bytes")
        if not self._methods:
            raise _fail(400, "a response arrived with no request waiting for it")
        lines = buf[pos:end].decode("latin-1").split("\r\n")
        m = _STATUS_LINE_RE.fullmatch(lines[0])
        if m is None:
            raise _fail(400, f"malformed status line {lines[0][:60]!r}")
        major, minor, code, reason = m.groups()
        if major != "1":
            raise _fail(505, f"HTTP/{major}.{minor} is not supported")
        status = int(code)
        if status < 100:
            raise _fail(400, f"invalid status code {code}")
        pairs = _parse_fields(lines, 1, limits)[0]
        headers = Headers.from_pairs(pairs)
        http11 = minor != "0"
        version = (1, int(minor))
        lengths = headers.get_all("content-length") or None
        codings = headers.get_all("transfer-encoding") or None
        if 100 <= status < 200 and status != 101:
            # Interim: the request still waits for its final response.
            body_kind, length, _ = read_response_framing(
                self._methods[0], status, codings, lengths, http11, limits.max_body
            )
            events.append(ResponseHead(version, status, reason or "", headers, True, body_kind,
                                       length))
            events.append(EndOfMessage(Headers()))
            self._scan = end + 4
            return end + 4
        method = self._methods.popleft()
        tokens = _connection_tokens(headers.get_all("connection"))
        keep_alive = "close" not in tokens and (http11 or "keep-alive" in tokens)
        # framing.py decides; ``last``: the body runs to the close, or the connection
        # now carries another protocol (101, CONNECT): no more HTTP on it.
        body_kind, length, last = read_response_framing(
            method, status, codings, lengths, http11, limits.max_body
        )
        if last:
            keep_alive = False
        self._keep_alive = keep_alive
        events.append(
            ResponseHead(version, status, reason or "", headers, keep_alive, body_kind, length)
        )
        if body_kind == "chunked":
            self._received = 0
            self._state = _CHUNK_SIZE
        elif body_kind == "close":
            self._state = _UNTIL_CLOSE
        elif length:
            self._remaining = length
            self._state = _LENGTH
        else:
            self._end_message(events, Headers())
        self._scan = end + 4
        return end + 4


# --- the writers -------------------------------------------------------------------------

# Controls other than CR and LF (those are counted: each must be part of a line's CRLF).
_UNSAFE_OUT_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _head_bytes(first_line: str, headers: Headers | Iterable[tuple[str, str]]) -> bytes:
    items = headers.items() if isinstance(headers, Headers) else list(headers)
    token = _TOKEN_RE.fullmatch
    parts = [first_line]
    for name, value in items:
        if token(name) is None:
            raise ValueError(f"invalid header name {name!r}")
        parts.append(f"{name}: {value}\r\n")
    parts.append("\r\n")
    text = "".join(parts)
    # Exactly one CRLF per line and no other control: no value can start a new field or
    # end the head early (header injection, response splitting).
    lines = len(items) + 2
    if (
        text.count("\r\n") != lines
        or text.count("\r") != lines
        or text.count("\n") != lines
        or _UNSAFE_OUT_RE.search(text) is not None
    ):
        raise ValueError("CR, LF or a control character inside a start line or header")
    return text.encode("latin-1")


def serialize_request_head(
    method: str,
    target: str,
    headers: Headers | Iterable[tuple[str, str]],
    version: tuple[int, int] = (1, 1),
) -> bytes:
    """The bytes of a request line and header fields, ending with the blank line.

    Raises ValueError if the method or a name is not a token, the target is empty or holds
    a space, or anything holds CR, LF or another control character.
    """
    if _TOKEN_RE.fullmatch(method) is None or not target or " " in target:
        raise ValueError(f"invalid request line: {method!r} {target!r}")
    return _head_bytes(f"{method} {target} HTTP/{version[0]}.{version[1]}\r\n", headers)


def serialize_response_head(
    status: int,
    reason: str,
    headers: Headers | Iterable[tuple[str, str]],
    version: tuple[int, int] = (1, 1),
) -> bytes:
    """The bytes of a status line and header fields, ending with the blank line.

    Raises ValueError if the status is not three digits, a name is not a token, or
    anything holds CR, LF or another control character.
    """
    if not 100 <= status <= 999:
        raise ValueError(f"invalid status code {status!r}")
    return _head_bytes(f"HTTP/{version[0]}.{version[1]} {status} {reason}\r\n", headers)
