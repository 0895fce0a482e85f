"""HTTP messages as values: Headers, Request, Response, and the limits a parser enforces.

Shared by the sans-I/O parser (``protocols.http.parser``), the server and the
client. Nothing here does I/O.

Example::

    >>> h = Headers([("Content-Type", "text/plain"), ("Set-Cookie", "a=1")])
    >>> h.add("set-cookie", "b=2")
    >>> h["content-type"], h.get_all("SET-COOKIE")
    ('text/plain', ['a=1', 'b=2'])
    >>> Response(b"hi").status
    200
"""

from __future__ import annotations

import codecs
import json as _json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REASONS", "HTTPError", "Headers", "Limits", "ParseError", "Request", "Response"]

#: Reason phrases for the status codes netshell sends (RFC 9110 section 15).
REASONS: dict[int, str] = {
    100: "Continue", 101: "Switching Protocols",
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
    413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
    416: "Range Not Satisfiable", 417: "Expectation Failed", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


_new_object = object.__new__


class Headers:
    """A case-insensitive multi-dict of header fields that keeps order and spelling.

    Names and values are ``str`` (ISO-8859-1 decoded, as on the wire). ``h[name]``
    is the first value (KeyError if absent); ``get_all`` gives every value.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items is None:
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self._items.append((str(name), str(value)))

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Headers:
        """A Headers that holds ``pairs`` itself, trusted as given: the parsers' fast way.

        No copy and no check: ``pairs`` must be a list of ``(str, str)`` tuples, and
        it becomes the Headers' own (later changes to the list show in the Headers,
        so the caller hands it over). Anything else should use ``Headers(items)``.

        >>> Headers.from_pairs([("Host", "a")])["host"]
        'a'
        """
        headers = _new_object(cls)
        headers._items = pairs
        return headers

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any others of the same name."""
        self._items.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` with one."""
        self.remove(name)
        self._items.append((name, value))

    def setdefault(self, name: str, value: str) -> str:
        """Add the field unless one of that name is already there; return the value in force."""
        found = self.get(name)
        if found is None:
            self._items.append((name, value))
            return value
        return found

    def remove(self, name: str) -> None:
        """Drop every field called ``name`` (no error when there is none)."""
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.remove(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(n.lower() == key for n, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair in order, duplicates included."""
        return list(self._items)

    def copy(self) -> Headers:
        return Headers(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._items] == [
            (n.lower(), v) for n, v in other._items
        ]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class Limits:
    """What a parser accepts before it refuses, with the status it refuses with."""

    max_request_line: int = 8190  # longer: 414
    max_header_bytes: int = 65536  # the whole head; longer: 431
    max_headers: int = 100  # more fields: 431
    max_body: int = 64 * 1024 * 1024  # larger: 413
    max_chunk_line: int = 4096  # a chunk-size line (with extensions) longer: 400


class HTTPError(Exception):
    """An HTTP-level error with the status to answer it with."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or REASONS.get(status, "Error"))
        self.status = status
        self.message = message or REASONS.get(status, "Error")


class ParseError(HTTPError):
    """The bytes are not a valid HTTP/1.x message (or break a limit): ``status`` says which.

    ``events`` holds what the parser had produced from the same feed before the error
    (earlier pipelined messages that may still be answered).
    """

    events: list[Any] = []  # set per instance by the parser; the class default stays empty


@dataclass
class Request:
    """An HTTP request, as a server handler receives it (or a client builds it)."""

    method: str
    target: str  # as sent: origin form ("/a/b?x=1"), absolute form, or "*"
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: tuple[int, int] = (1, 1)
    client: Any = None  # the peer's netshell Address on a server
    path: str = ""  # percent-decoded path, set by the server
    query: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # route parameters

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding)

    def json(self) -> Any:
        return _json.loads(self.body)


@dataclass
class Response:
    """An HTTP response: what a handler returns, and what the client fires with.

    ``body`` is bytes, or (server side) an iterable of bytes or a Deferred-producing
    stream the server sends chunked; ``reason`` defaults to the standard phrase.
    """

    body: Any = b""
    status: int = 200
    headers: Headers = field(default_factory=Headers)
    reason: str = ""
    version: tuple[int, int] = (1, 1)
    url: str = ""  # client side: the URL this response came from (after redirects)
    history: list[Response] = field(default_factory=list)  # client side: redirects followed

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            self.headers = Headers(self.headers)
        if not self.reason:
            self.reason = REASONS.get(self.status, "")

    def text(self, encoding: str | None = None) -> str:
        if encoding is None:
            encoding = _charset(self.headers.get("content-type") or "") or "utf-8"
            try:
                codecs.lookup(encoding)
            except LookupError:  # a charset the server named but Python does not know
                encoding = "utf-8"
        return bytes(self.body).decode(encoding, errors="replace")

    def json(self) -> Any:
        return _json.loads(self.body)

    def __repr__(self) -> str:
        size = len(self.body) if isinstance(self.body, (bytes, bytearray)) else "stream"
        return f"<Response {self.status} {self.reason} ({size} bytes)>"


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return None
