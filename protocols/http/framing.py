"""How an HTTP/1.1 message body is delimited: the one place that decides it (sans-I/O).

A message's body ends in one of three ways on the wire: after a ``Content-Length`` of
bytes, at the last chunk of a ``Transfer-Encoding: chunked`` body, or when the sender
closes the connection (responses only). Some messages have no body at all: answers to
HEAD, 1xx, 204 and 304, and requests with neither field. Both directions are decided
here: for what is sent, like h11's writers, the functions take what is to be sent and
return bytes; for what is read, they take the framing fields of a head and say how its
body is delimited. None of them touches a transport.

Writing:

- :func:`plain_answer`: the whole of the commonest answer (a 200 of bytes or text on a
  kept-alive HTTP/1.1 connection) in one piece, or None when it is not that;
- :func:`frame_answer`: what a handler returned (a Response, or a value
  :func:`~protocols.http.app.to_response` takes) as a status and a :class:`ResponseFrame`;
- :func:`response_head_lines`: a response's status line and fields, with the framing
  fields a handler gave dropped (they are the framer's) and read for what they ask
  (``Connection: close``, the declared ``Content-Length`` of a streamed body);
- :func:`frame_response`: given that head and the body (bytes, text, a file, an iterable,
  or none for HEAD/1xx/204/304) decides ``Content-Length``, chunked or close-delimited and
  returns a :class:`ResponseFrame`: the bytes to write now, and how to frame the rest;
- :class:`BodyFramer`: each piece of a streamed body as bytes, and the end;
- :func:`request_framing`: the client's decision for a request body, the same rules
  seen from the other side (``Content-Length`` for bytes and for a streamed body of
  declared length, else chunked; ``Content-Length: 0`` for a body-less POST/PUT/PATCH);
- :func:`set_request_framing`: a request's framing fields put in its headers, the
  caller's own replaced (a streamed body's declared length, checked by
  :func:`streamed_length`, is kept);
- :func:`encode_chunk` and :data:`LAST_CHUNK`: a chunk, and the end of a chunked body.

Reading (RFC 9112 section 6.3), for :mod:`protocols.http.parser`:

- :func:`read_request_framing`: how a request's body is delimited (``none``, ``length``
  or ``chunked``), refusing with a ParseError what could let two parsers disagree;
- :func:`read_response_framing`: the same for a response, which also depends on the
  request's method and the status, and may run until the connection closes.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from protocols.http.app import to_response
from protocols.http.message import Headers, ParseError, Response
from protocols.http.static import FileBody

__all__ = [
    "BIG_BODY",
    "LAST_CHUNK",
    "SERVER",
    "SERVER_LINE",
    "BodyFramer",
    "ResponseFrame",
    "encode_chunk",
    "field_line",
    "frame_answer",
    "frame_response",
    "plain_answer",
    "plain_head_lines",
    "plain_response",
    "read_request_framing",
    "read_response_framing",
    "request_framing",
    "response_head_lines",
    "set_request_framing",
    "status_line",
    "streamed_length",
]

#: the ``Server`` header sent with every response
SERVER = "netshell"
SERVER_LINE = f"Server: {SERVER}\r\n".encode()
#: larger bodies go out in a second write rather than be copied after the head
BIG_BODY = 256 * 1024

# Fields the framer writes itself: a handler's own are dropped (or, for Connection, obeyed).
_FRAMING = frozenset(("content-length", "transfer-encoding", "connection"))
_STATUS_200 = b"HTTP/1.1 200 OK\r\n"
_PLAIN_TYPES: dict[type, bytes] = {
    bytes: b"Content-Type: application/octet-stream\r\n",
    str: b"Content-Type: text/plain; charset=utf-8\r\n",
}
# The first lines of the commonest answer (a 200 of bytes or text), joined once.
_PLAIN_HEADS: dict[type, bytes] = {kind: _STATUS_200 + line for kind, line in _PLAIN_TYPES.items()}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# CR and LF would start a new field or end the head (response splitting); other controls
# are refused by clients.
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CACHE_SIZE = 1024
_lines: dict[tuple[str, str], bytes] = {}
_status_lines: dict[tuple[int, str], bytes] = {}
_HTTP11 = (1, 1)
_CLOSE_END = b"Connection: close\r\n\r\n"
_KEEP_ALIVE_END = b"Connection: keep-alive\r\n\r\n"

#: the last chunk of a chunked body, with no trailers
LAST_CHUNK = b"0\r\n\r\n"


def encode_chunk(data: bytes) -> bytes:
    """``data`` framed as one chunk of a chunked body (empty data gives b"", not an end)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


def field_line(name: str, value: str) -> bytes:
    """``name: value`` and its CRLF, as bytes; ValueError if either could corrupt the head.

    >>> field_line("ETag", '"x"')
    b'ETag: "x"\\r\\n'
    """
    key = (name, value)
    line = _lines.get(key)
    if line is None:
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"invalid header name {name!r}")
        if _UNSAFE.search(value) is not None:
            raise ValueError(f"CR, LF or a control character in the value of header {name!r}")
        line = f"{name}: {value}\r\n".encode("latin-1")  # UnicodeEncodeError is a ValueError
        if len(_lines) >= _CACHE_SIZE:
            _lines.clear()  # ETags and dates vary without end: keep the cache small
        _lines[key] = line
    return line


def status_line(status: int, reason: str) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its CRLF; ValueError for a status outside
    100-999 or a control character in the reason."""
    key = (status, reason)
    line = _status_lines.get(key)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid status code {status!r}")
        if _UNSAFE.search(reason) is not None:
            raise ValueError(f"control character in reason phrase {reason!r}")
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
        if len(_status_lines) >= _CACHE_SIZE:
            _status_lines.clear()
        _status_lines[key] = line
    return line


def plain_response(kind: type, body: bytes, date_line: bytes) -> bytes:
    """The whole of a 200 whose body is ``bytes`` or ``str`` (``kind``), already encoded as
    ``body``, on a kept-alive HTTP/1.1 connection: the commonest answer, in one piece."""
    return b"".join(
        (_PLAIN_HEADS[kind], date_line, b"Content-Length: %d\r\n\r\n" % len(body), body)
    )


def plain_head_lines(kind: type, date_line: bytes) -> list[bytes]:
    """The head lines (as :func:`response_head_lines`) of a 200 of ``bytes`` or ``str``."""
    return [_PLAIN_HEADS[kind], date_line]


def plain_answer(
    kind: type, body: bytes, method: str, version: tuple[int, int], close: bool,
    date_line: bytes,
) -> bytes | None:
    """The whole of a 200 whose body is ``bytes`` or ``str`` (``kind``), already encoded
    as ``body``, in one piece (as :func:`plain_response`) when it can go so: to an
    HTTP/1.1 request other than HEAD, on a connection kept alive (not ``close``), with a
    body of at most :data:`BIG_BODY` bytes. None otherwise: :func:`frame_answer` frames it.

    >>> plain_answer(bytes, b"hi", "GET", (1, 1), False, b"")[-25:]
    b'\\r\\nContent-Length: 2\\r\\n\\r\\nhi'
    >>> plain_answer(bytes, b"hi", "HEAD", (1, 1), False, b"") is None
    True
    """
    if close or version != _HTTP11 or method == "HEAD":
        return None
    size = len(body)
    if size > BIG_BODY:
        return None
    return b"".join((_PLAIN_HEADS[kind], date_line, b"Content-Length: %d\r\n\r\n" % size, body))


def frame_answer(
    result: Any, method: str, version: tuple[int, int], close: bool, date_line: bytes
) -> tuple[int, ResponseFrame]:
    """What a handler returned, as a status and a framed answer to a ``method`` request
    of HTTP ``version`` (see :func:`frame_response`); ``close``: the connection ends
    after it, as it also does when the response asks (``Connection: close``).

    ``result`` is a Response, or a value :func:`~protocols.http.app.to_response` turns
    into one. Raises TypeError for a value a handler may not return, ValueError for a
    header or status that would corrupt the stream.

    >>> status, frame = frame_answer("hi", "HEAD", (1, 0), False, b"")
    >>> status, frame.head[-45:], frame.no_body
    (200, b'Content-Length: 2\\r\\nConnection: keep-alive\\r\\n\\r\\n', True)
    """
    declared: str | None = None
    kind = type(result)
    if kind is bytes or kind is str:
        # The commonest answer, with no Response to build or headers to check.
        status = 200
        body = result
        lines = plain_head_lines(kind, date_line)
    else:
        response = result if kind is Response else to_response(result)
        body = response.body
        status = response.status
        lines, declared, asked_close = response_head_lines(response, date_line)
        close = close or asked_close
    return status, frame_response(lines, body, status, method, version, declared, close)


def response_head_lines(
    response: Response, date_line: bytes
) -> tuple[list[bytes], str | None, bool]:
    """A response's status line and fields as lines of bytes, without the blank line.

    The handler's framing fields are not sent: ``Connection`` is read for ``close``
    and ``Content-Length`` kept as the declared length of a streamed body.
    ``date_line`` (``Date`` and ``Server``) is added unless the response has its own
    ``Date``, when the ``Server`` line alone is. Returns (lines, declared length or
    None, whether the handler asked to close). Raises ValueError for a field or status
    that could corrupt the head.
    """
    lines = [status_line(response.status, response.reason)]
    declared: str | None = None
    close = False
    date = False
    for name, value in response.headers.items():
        lname = name.lower()
        if lname in _FRAMING:
            # Not sent as given, but a control in it is the handler's mistake
            # all the same: a 500, as for any other field.
            if _UNSAFE.search(value) is not None:
                raise ValueError(f"a control character in the value of {name!r}")
            if lname == "connection":
                if "close" in value.lower():
                    close = True
            elif lname == "content-length":
                declared = value
            continue
        if lname == "date":
            date = True
        lines.append(field_line(name, value))
    lines.append(date_line if not date else SERVER_LINE)
    return lines, declared, close


class BodyFramer:
    """Frames the pieces of a streamed body: chunks, or bytes as they are up to a length.

    ``piece(data)`` gives the bytes to write for one piece (b"" for an empty one) and
    raises TypeError for a piece that is not bytes or text, ValueError past the
    declared length; ``end()`` gives the bytes that end the body (the last chunk).
    ``sent`` counts the body's bytes so far.

    >>> framer = BodyFramer(chunked=True, length=None)
    >>> framer.piece(b"hi") + framer.end()
    b'2\\r\\nhi\\r\\n0\\r\\n\\r\\n'
    """

    __slots__ = ("chunked", "length", "sent")

    def __init__(self, chunked: bool, length: int | None) -> None:
        self.chunked = chunked
        self.length = length
        self.sent = 0

    def piece(self, data: Any) -> bytes:
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"a streamed body gave {type(data).__name__}, not bytes")
        if not data:
            return b""
        self.sent += len(data)
        if self.length is not None and self.sent > self.length:
            raise ValueError(f"the body is longer than its Content-Length ({self.length})")
        return encode_chunk(bytes(data)) if self.chunked else data

    def end(self) -> bytes:
        return LAST_CHUNK if self.chunked else b""

    def short(self) -> bool:
        """The body ended before its declared length."""
        return self.length is not None and self.sent != self.length


class ResponseFrame:
    """What :func:`frame_response` decided.

    ``head``: the bytes to write first (the head, and a small body after it);
    ``tail``: a large body to write after them (b"" if none); ``sent``: the body bytes in
    the two; ``stream``: a FileBody or an iterable still to send (None if none), framed by
    ``framer`` when it is an iterable; ``discard``: a body that will not be sent and should
    be released (a file or generator, for HEAD/1xx/204/304); ``close``: the connection
    ends after this answer; ``no_body``: nothing follows the head.
    """

    __slots__ = ("head", "tail", "sent", "stream", "framer", "discard", "close", "no_body")

    def __init__(self) -> None:
        self.head = b""
        self.tail = b""
        self.sent = 0
        self.stream: Any = None
        self.framer: BodyFramer | None = None
        self.discard: Any = None
        self.close = False
        self.no_body = False


def frame_response(
    lines: list[bytes],
    body: Any,
    status: int,
    method: str,
    version: tuple[int, int],
    declared: str | None = None,
    close: bool = False,
) -> ResponseFrame:
    """Frame a response whose head is ``lines`` (from :func:`response_head_lines`).

    ``body`` is bytes-like or str (``Content-Length``), a FileBody (its count is the
    ``Content-Length``), or an iterable or async iterable of pieces: with a ``declared``
    length of digits it is sent as it is; else chunked to an HTTP/1.1 client and
    close-delimited to an HTTP/1.0 one. An answer to HEAD keeps the framing fields of the
    same answer to GET and sends no body; 1xx, 204 and 304 have neither. ``close``: end
    the connection after this answer (Connection: close). ``lines`` is extended in place.

    >>> frame = frame_response([b"HTTP/1.1 200 OK\\r\\n"], b"hi", 200, "GET", (1, 1))
    >>> frame.head
    b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi'
    """
    frame = ResponseFrame()
    head_only = method == "HEAD"
    no_body = status < 200 or status == 204 or status == 304
    kind = type(body)
    stream = None
    if kind is bytes or kind is bytearray or kind is memoryview:
        if not no_body:
            lines.append(b"Content-Length: %d\r\n" % len(body))
    elif isinstance(body, FileBody):
        if not no_body:
            lines.append(b"Content-Length: %d\r\n" % body.count)
        if head_only or no_body:
            frame.discard = body
        else:
            stream = body
        body = b""
    elif kind is str:
        body = body.encode()
        if not no_body:
            lines.append(b"Content-Length: %d\r\n" % len(body))
    else:
        if head_only or no_body:
            frame.discard = body
        else:
            stream = body
        body = b""
        if not no_body:
            if declared is not None and declared.isascii() and declared.isdigit():
                # (isdigit alone takes "²", which int() refuses)
                lines.append(b"Content-Length: %d\r\n" % int(declared))
            elif version >= _HTTP11:
                declared = None
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                declared = None
                close = True  # the end of the body is the end of the connection
        else:
            declared = None
    if close:
        lines.append(_CLOSE_END)
    elif version == (1, 0):
        lines.append(_KEEP_ALIVE_END)
    else:
        lines.append(b"\r\n")
    frame.close = close
    if head_only or no_body:
        frame.no_body = True
    elif stream is None:
        size = len(body)
        if size > BIG_BODY:
            frame.tail = body
        else:
            lines.append(body)
        frame.sent = size
    else:
        frame.stream = stream
        if not isinstance(stream, FileBody):
            frame.framer = BodyFramer(
                declared is None and version >= _HTTP11,
                int(declared) if declared is not None else None,
            )
    frame.head = b"".join(lines)
    return frame


def request_framing(
    method: str, body: bytes | object | None, length: int | None = None
) -> tuple[str, str] | None:
    """The framing field of a request, as (name, value), or None when it needs none.

    ``body`` is bytes (``Content-Length``), a streamed body (``Content-Length`` when its
    ``length`` is given, else ``Transfer-Encoding: chunked``), or None: no field, except
    ``Content-Length: 0`` for POST, PUT and PATCH, which servers may otherwise refuse (411).

    >>> request_framing("POST", b"abc")
    ('Content-Length', '3')
    >>> request_framing("PUT", iter([b"x"]))
    ('Transfer-Encoding', 'chunked')
    """
    if isinstance(body, bytes):
        return ("Content-Length", str(len(body)))
    if body is not None and length is not None:
        return ("Content-Length", str(length))
    if body is not None:
        return ("Transfer-Encoding", "chunked")
    if method in ("POST", "PUT", "PATCH"):
        return ("Content-Length", "0")
    return None


def set_request_framing(method: str, body: bytes | object | None, headers: Headers) -> int | None:
    """Give a request's ``headers`` (in place) the framing field its ``body`` needs.

    The caller's ``Content-Length`` and ``Transfer-Encoding`` are dropped: one of theirs
    next to the one set here would make a request that two servers may read two ways
    (RFC 9112 section 6.2: never Content-Length with Transfer-Encoding). Only a streamed
    body's ``Content-Length`` (a number, checked by the caller) is kept, and that body is
    then sent as it is, not chunked: its length is returned (else None), and the body
    must yield exactly that many bytes.

    >>> headers = Headers([("Transfer-Encoding", "gzip")])
    >>> set_request_framing("POST", b"abc", headers), headers
    (None, Headers([('Content-Length', '3')]))
    """
    length = None
    if body is not None and not isinstance(body, bytes) and "content-length" in headers:
        length = int(headers["content-length"])
    headers.remove("Content-Length")
    headers.remove("Transfer-Encoding")
    framing = request_framing(method, body, length)
    if framing is not None:
        headers.set(*framing)
    return length


def streamed_length(lengths: list[str]) -> int:
    """The length a caller declared for a streamed request body, from the values of the
    ``Content-Length`` fields it gave: one number of bytes (at most 18 digits, spaces
    around it dropped); ValueError for anything else.

    >>> streamed_length([" 0012 "])
    12
    """
    value = lengths[0].strip()
    if len(lengths) > 1 or not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ValueError(
            f"the Content-Length of a streamed body is a number of bytes, not {lengths!r}"
        )
    return int(value)


# --- reading: how the body of a received head is delimited (RFC 9112 section 6.3) ----------


def _content_length(values: list[str], max_body: int) -> int:
    if len(values) != 1:
        # Even equal duplicates: RFC 9112 section 6.3 lets a recipient reject them, and
        # accepting them is what lets a front end and a back end disagree.
        raise ParseError(400, "duplicate Content-Length")
    value = values[0]
    if not (value.isascii() and value.isdigit()):
        raise ParseError(400, f"invalid Content-Length {value[:40]!r}")
    # Guard int() (and its digit limit) against absurdly long numbers.
    if len(value.lstrip("0")) > 18 or int(value) > max_body:
        raise ParseError(413, f"body larger than {max_body} bytes")
    return int(value)


def _is_chunked(values: list[str]) -> bool:
    # Only a single "chunked" is understood: any other coding (or "chunked" twice, or a
    # list) is refused, since we could not find the end of such a body safely.
    return len(values) == 1 and values[0].lower() == "chunked"


def _body_framing(
    codings: list[str] | None, lengths: list[str] | None, http11: bool, what: str,
    max_body: int,
) -> tuple[Literal["length", "chunked"], int | None]:
    """How a body with these Transfer-Encoding / Content-Length fields is delimited.

    One place for the rules that close request smuggling (RFC 9112 section 6):
    both fields, Transfer-Encoding in HTTP/1.0, a coding other than a lone
    ``chunked``, a duplicate or malformed Content-Length: each a ParseError(400).
    """
    if codings is not None:
        if lengths is not None:
            raise ParseError(400, "both Content-Length and Transfer-Encoding")
        if not http11:
            # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            raise ParseError(400, f"Transfer-Encoding in an HTTP/1.0 {what}")
        if not _is_chunked(codings):
            raise ParseError(400, f"unsupported Transfer-Encoding {', '.join(codings)[:40]!r}")
        return "chunked", None
    assert lengths is not None
    return "length", _content_length(lengths, max_body)


def read_request_framing(
    codings: list[str] | None, lengths: list[str] | None, http11: bool, max_body: int
) -> tuple[Literal["none", "length", "chunked"], int | None]:
    """How the body of a received request is delimited: (kind, Content-Length or None).

    ``codings`` and ``lengths`` are the values of its Transfer-Encoding and
    Content-Length fields (None when it has none); ``http11``: its version is 1.1 or
    later. A request with neither field has no body (``"none"``). Raises ParseError:
    400 for framing two parsers could read two ways (both fields, Transfer-Encoding in
    HTTP/1.0, a coding other than a lone ``chunked``, a duplicate or malformed
    Content-Length), 413 for a Content-Length above ``max_body``.

    >>> read_request_framing(None, ["5"], True, 1024)
    ('length', 5)
    >>> read_request_framing(["chunked"], None, True, 1024)
    ('chunked', None)
    """
    if codings is None and lengths is None:
        return "none", None
    return _body_framing(codings, lengths, http11, "request", max_body)


def read_response_framing(
    method: str,
    status: int,
    codings: list[str] | None,
    lengths: list[str] | None,
    http11: bool,
    max_body: int,
) -> tuple[Literal["none", "length", "chunked", "close"], int | None, bool]:
    """How the body of a response to ``method`` is delimited: (kind, length, last).

    As :func:`read_request_framing`, and: an answer to HEAD, a 1xx, 204 or 304 has no
    body whatever its fields say; a 101, or a 2xx to CONNECT, has none and hands the
    connection to another protocol (``last`` is then True: no more HTTP on it); a
    response with neither field runs until the server closes (``"close"``, and
    ``last``).

    >>> read_response_framing("GET", 200, None, None, True, 1024)
    ('close', None, True)
    >>> read_response_framing("HEAD", 200, None, ["5"], True, 1024)
    ('none', None, False)
    """
    if status == 101 or (method == "CONNECT" and 200 <= status < 300):
        return "none", None, True
    if status < 200 or method == "HEAD" or status == 204 or status == 304:
        return "none", None, False
    if codings is None and lengths is None:
        return "close", None, True
    kind, length = _body_framing(codings, lengths, http11, "response", max_body)
    return kind, length, False
