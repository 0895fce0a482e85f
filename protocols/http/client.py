"""The HTTP/1.1 client: requests, a keep-alive connection pool, redirects and downloads.

``request(method, url, ...)`` answers with a Deferred that fires with a
:class:`~protocols.http.message.Response` (``status``, ``reason``, ``headers``, ``body``,
``text()``, ``json()``, ``url``, ``history``); ``get``, ``post``, ``put``, ``delete`` and
``head`` are its shortcuts, and ``download(url, path)`` streams a body into a file. A 4xx
or 5xx answer is a Response like any other; failures to get one are errors:

- :class:`HTTPClientError` (a :class:`netshell.NetshellError`), the root of the client's own:
  :class:`InvalidURL`, :class:`TooManyRedirects`, :class:`RemoteProtocolError` (the server
  broke HTTP), :class:`ServerDisconnected` (it closed before the response was complete),
  :class:`RequestTimeout` (also a ``TimeoutError``) and, from ``download``,
  :class:`HTTPStatusError`;
- the core's :class:`netshell.ConnectError` (ConnectionRefused, DNSLookupError,
  ConnectTimeout) and :class:`netshell.TLSError` (UnknownCA, HostnameMismatch...) as they are.

HTTPS is verified by default (``netshell.tls.client_context``: the system's trust store and
the host name); ``context=`` gives another TLS client context. Connections are kept alive
and reused per (scheme, host, port), at most ``max_connections`` at once for each; a reused
connection that the server had closed is retried once on a fresh one when the request is
idempotent and nothing of the response had come.

The module functions use one :class:`HTTPClient` per reactor; make your own for other limits.

Example::

    >>> from netshell import reactor
    >>> from protocols.http import client
    >>> client.get("ftp://example.org/")
    Traceback (most recent call last):
      ...
    protocols.http.client.InvalidURL: only http and https URLs are supported, not 'ftp://...'
    >>> u = client.URL.parse("https://example.org/a b?q=1#top")
    >>> u.scheme, u.host, u.port, u.target
    ('https', 'example.org', 443, '/a%20b?q=1')
"""

from __future__ import annotations

import json as _json
import logging
import os
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

import netshell as ns
from netshell.defer import Deferred, ensure_deferred
from netshell.errors import NetshellError
from netshell.failure import Failure
from netshell.reactor import Reactor, get_reactor
from protocols.http.message import Headers, Limits, ParseError, Response
from protocols.http.parser import (
    LAST_CHUNK,
    Body,
    EndOfMessage,
    ResponseHead,
    ResponseParser,
    encode_chunk,
    serialize_request_head,
)

__all__ = [
    "URL",
    "HTTPClient",
    "HTTPClientError",
    "HTTPStatusError",
    "InvalidURL",
    "RemoteProtocolError",
    "RequestTimeout",
    "ServerDisconnected",
    "TooManyRedirects",
    "delete",
    "download",
    "get",
    "head",
    "post",
    "put",
    "request",
]

log = logging.getLogger("netshell.protocols.http.client")

USER_AGENT = f"netshell/{ns.__version__}"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SEND_PIECE = 64 * 1024  # file bodies are read and sent this much at a time


# --- errors ------------------------------------------------------------------------------


class HTTPClientError(NetshellError):
    """The root of the HTTP client's own errors."""


class InvalidURL(HTTPClientError, ValueError):
    """The URL cannot be requested (not http/https, no host, a bad port...)."""


class TooManyRedirects(HTTPClientError):
    """More redirects than ``max_redirects``; ``response`` is the last one (with history)."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


class RemoteProtocolError(HTTPClientError):
    """The server's response broke HTTP/1.1 (the parser's error is the ``__cause__``)."""


class ServerDisconnected(HTTPClientError, ConnectionError):
    """The server closed the connection before the response was complete."""


class RequestTimeout(HTTPClientError, TimeoutError):
    """No complete response within the timeout (connecting included)."""


class HTTPStatusError(HTTPClientError):
    """``download`` got a final response that is not 2xx; ``response`` holds it."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


class _Stale(Exception):
    """A connection failed before a byte of the response came: maybe safe to retry."""


# --- URLs --------------------------------------------------------------------------------

# Characters left as they are in a request target: the unreserved and reserved sets of
# RFC 3986, and "%" so that what is encoded already stays as it is.
_SAFE_TARGET = "/%:@!$&'()*+,;=-._~?"


@dataclass(frozen=True)
class URL:
    """An http(s) URL split into what a request needs."""

    scheme: str
    host: str  # without brackets for IPv6, IDNA-encoded for non-ASCII names
    port: int
    target: str  # origin form: path and query, percent-encoded

    @classmethod
    def parse(cls, url: str) -> URL:
        """Split ``url``; raises InvalidURL if it cannot be requested."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as e:
            raise InvalidURL(f"{url!r} is not a valid URL: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise InvalidURL(f"only http and https URLs are supported, not {url!r}")
        host = parts.hostname
        if not host:
            raise InvalidURL(f"no host in {url!r}")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as e:
                raise InvalidURL(f"bad host name in {url!r}: {e}") from None
        path = quote(parts.path or "/", safe=_SAFE_TARGET)
        query = quote(parts.query, safe=_SAFE_TARGET) if parts.query else ""
        target = f"{path}?{query}" if query else path
        return cls(scheme, host, port or (443 if scheme == "https" else 80), target)

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): where a connection goes."""
        return (self.scheme, self.host, self.port)

    @property
    def authority(self) -> str:
        """host[:port] as the Host header wants it (the port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


# Connections are pooled by origin and by the TLS context they were verified with: a
# connection made with one context is never lent to a request that asked for another.
PoolKey = tuple[str, str, int, Any]

# --- one connection ----------------------------------------------------------------------


class _Connection(ns.Protocol):
    """One HTTP/1.1 connection: one exchange (request, response) at a time."""

    def __init__(self, key: PoolKey, limits: Limits) -> None:
        self.key = key
        self.parser = ResponseParser(limits)
        self.closed: Deferred[None] = Deferred()  # fires when the connection is gone
        self.lost = False
        self.exchanges = 0  # how many requests this connection has carried
        self.on_lost: Callable[[_Connection], None] | None = None  # the pool's hook
        self._done: Deferred[tuple[ResponseHead, Headers]] | None = None
        self._head: ResponseHead | None = None
        self._choose_sink: Callable[[ResponseHead], Callable[[bytes], None]] | None = None
        self._sink: Callable[[bytes], None] | None = None
        self._interim = False
        self._got_bytes = False
        self._sending = False  # a streamed body is still being sent
        self._write_paused = False
        self._drained: Deferred[None] | None = None
        self.reusable = False

    # ---- the transport's side

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # As a streaming producer we hear when the write buffer is full and drained again.
        transport.register_producer(self, True)

    def pause_producing(self) -> None:
        self._write_paused = True

    def resume_producing(self) -> None:
        self._write_paused = False
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.callback(None)

    def stop_producing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.errback(ServerDisconnected("the connection closed while sending the body"))

    def data_received(self, data: bytes) -> None:
        if self._done is None:
            # Nothing was asked: a server talking out of turn cannot be trusted again.
            self.transport.abort()
            return
        self._got_bytes = True
        try:
            events = self.parser.feed(data)
        except ParseError as e:
            self._fail(self._protocol_error(e))
            self.transport.abort()
            return
        self._handle(events)

    def connection_lost(self, reason: Failure) -> None:
        self.lost = True
        self.reusable = False
        if self._done is not None:
            try:
                events = self.parser.feed_eof()
            except ParseError:
                events = None
            if events:
                self._handle(events)
            if self._done is not None:
                if not self._got_bytes:
                    exc: BaseException = _Stale(reason.value)
                else:
                    exc = ServerDisconnected(
                        "the server closed the connection before the response was complete"
                    )
                exc.__cause__ = reason.value
                self._fail(exc)
        self.stop_producing()
        if self.on_lost is not None:
            self.on_lost(self)
        self.closed.callback(None)

    # ---- the client's side

    def exchange(
        self,
        method: str,
        head: bytes,
        body: bytes | Iterable[bytes] | None,
        choose_sink: Callable[[ResponseHead], Callable[[bytes], None]],
        length: int | None = None,
    ) -> Deferred[tuple[ResponseHead, Headers]]:
        """Send a request (``head`` serialized already); fires with (head, trailers) at the
        end of the response, whose body went piece by piece to ``choose_sink(head)``.

        A streamed body goes chunked, or as it is when its ``length`` (the Content-Length
        in ``head``) is given: then it must yield exactly that many bytes."""
        assert self._done is None, "one exchange at a time"
        self.exchanges += 1
        self.reusable = False
        self._head = None
        self._interim = False
        self._got_bytes = False
        self._choose_sink = choose_sink
        done: Deferred[tuple[ResponseHead, Headers]] = Deferred()
        self._done = done
        self.parser.expect(method)
        if body is None or isinstance(body, bytes):
            self.transport.write(head + body if body else head)
        else:
            self.transport.write(head)
            self._sending = True
            sent = ensure_deferred(self._send_streamed(body, length))
            sent.add_errback(self._send_failed)
        return done

    async def _send_streamed(self, pieces: Iterable[bytes], length: int | None) -> None:
        sent = 0
        for piece in pieces:
            if self.lost or self._done is None:
                return
            if not isinstance(piece, (bytes, bytearray, memoryview)):
                raise TypeError(f"a streamed body yields bytes, not {type(piece).__name__}")
            if piece:
                sent += len(piece)
                if length is None:
                    self.transport.write(encode_chunk(bytes(piece)))
                elif sent > length:
                    # Not a byte past the length: the server would read it as a request.
                    raise HTTPClientError(
                        f"the streamed body yields more than its Content-Length of {length} bytes"
                    )
                else:
                    self.transport.write(bytes(piece))
            if self._write_paused:
                self._drained = Deferred()
                await self._drained
        if length is None:
            if not self.lost:
                self.transport.write(LAST_CHUNK)
        elif sent < length and not self.lost and self._done is not None:
            raise HTTPClientError(
                f"the streamed body yields only {sent} bytes, not its Content-Length of {length}"
            )
        self._sending = False

    def _send_failed(self, failure: Failure) -> None:
        self._sending = False
        self._fail(failure.value)
        if not self.lost:
            self.transport.abort()

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            if self._done is None:
                return
            if isinstance(event, Body):
                if self._interim:
                    continue
                try:
                    assert self._sink is not None
                    self._sink(event.data)
                except Exception as e:
                    self._fail(e)
                    self.transport.abort()
                    return
            elif isinstance(event, ResponseHead):
                if 100 <= event.status < 200 and event.status != 101:
                    self._interim = True  # 100 Continue and friends: the answer is still to come
                    continue
                self._head = event
                try:
                    assert self._choose_sink is not None
                    self._sink = self._choose_sink(event)
                except Exception as e:
                    self._fail(e)
                    self.transport.abort()
                    return
            elif isinstance(event, EndOfMessage):
                if self._interim:
                    self._interim = False
                    continue
                head, done = self._head, self._done
                assert head is not None
                self._done = None
                self._sink = self._choose_sink = None
                # A body still being sent when the answer is complete leaves the stream
                # in an unknown state, and so do bytes the server sent after its answer
                # (the next response would be read after them): no reuse for either.
                self.reusable = (
                    head.keep_alive
                    and not self._sending
                    and not self.lost
                    and not self.parser.buffered
                )
                if done.called:  # the request was cancelled meanwhile
                    self.reusable = False
                else:
                    done.callback((head, event.trailers))

    def _fail(self, exc: BaseException) -> None:
        done, self._done = self._done, None
        self._sink = self._choose_sink = None
        self.reusable = False
        if done is not None and not done.called:
            done.errback(Failure(exc))

    def _protocol_error(self, e: ParseError) -> RemoteProtocolError:
        err = RemoteProtocolError(f"invalid response from the server: {e.message}")
        err.__cause__ = e
        return err

    def abort(self) -> None:
        """Drop the connection at once (after a failure or a cancelled request)."""
        self.reusable = False
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def __repr__(self) -> str:
        scheme, host, port, _ = self.key
        state = "lost" if self.lost else ("busy" if self._done is not None else "idle")
        return f"<HTTP connection to {scheme}://{host}:{port} {state}, {self.exchanges} requests>"


# --- the pool ----------------------------------------------------------------------------


class _Pool:
    """Keep-alive connections per (scheme, host, port), at most ``limit`` of them per key."""

    def __init__(self, reactor: Reactor, limit: int, idle_timeout: float) -> None:
        self.reactor = reactor
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.idle: dict[PoolKey, list[_Connection]] = {}
        self.count: dict[PoolKey, int] = {}  # open or opening, busy or idle
        self.waiting: dict[PoolKey, deque[Deferred[None]]] = {}
        self._timers: dict[_Connection, Any] = {}

    def take_idle(self, key: PoolKey) -> _Connection | None:
        """The most recently used idle connection for ``key``, if any."""
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()
            timer = self._timers.pop(conn, None)
            if timer is not None and timer.active():
                timer.cancel()
            if not conn.lost:
                return conn
        return None

    async def acquire(self, key: PoolKey, fresh: bool = False) -> _Connection | None:
        """An idle connection for ``key``, or None when the caller may open a new one.

        None counts the new connection in (``opened_failed`` takes it out again if it is
        never made). At the bound, waits for a connection to be released or to close.
        With ``fresh``, an idle connection is closed to make room rather than handed out.
        """
        while True:
            conn = self.take_idle(key)
            if conn is not None:
                if not fresh:
                    return conn
                self._discard(conn)
            if self.count.get(key, 0) < self.limit:
                self.count[key] = self.count.get(key, 0) + 1
                return None
            turn: Deferred[None] = Deferred()
            self.waiting.setdefault(key, deque()).append(turn)
            try:
                await turn
            except BaseException:
                queue = self.waiting.get(key)
                if queue and turn in queue:
                    queue.remove(turn)
                elif turn.called:
                    self._wake(key)  # our turn came as we were cancelled: pass it on
                raise

    def opened_failed(self, key: PoolKey) -> None:
        """A connection counted in by ``acquire`` was never made."""
        self._gone(key)

    def release(self, conn: _Connection) -> None:
        """The exchange on ``conn`` is over: keep it for reuse if it can be, else close it."""
        if not conn.reusable or conn.lost:
            self._discard(conn)
            return
        self.idle.setdefault(conn.key, []).append(conn)
        self._timers[conn] = self.reactor.call_later(self.idle_timeout, self._expire, conn)
        self._wake(conn.key)

    def _expire(self, conn: _Connection) -> None:
        self._timers.pop(conn, None)
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._discard(conn)

    def _discard(self, conn: _Connection) -> None:
        if conn.on_lost is None:
            return  # counted out already
        conn.on_lost = None
        if not conn.lost and conn.transport is not None:
            conn.transport.close()
        self._gone(conn.key)

    def lost(self, conn: _Connection) -> None:
        """``conn`` closed (the server, or us): forget it."""
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            timer = self._timers.pop(conn, None)
            if timer is not None and timer.active():
                timer.cancel()
        if conn.on_lost is not None:
            conn.on_lost = None
            self._gone(conn.key)

    def _gone(self, key: PoolKey) -> None:
        self.count[key] = self.count.get(key, 1) - 1
        self._wake(key)

    def _wake(self, key: PoolKey) -> None:
        queue = self.waiting.get(key)
        while queue:
            turn = queue.popleft()
            if not turn.called:
                turn.callback(None)
                return

    def connections(self) -> list[_Connection]:
        return [c for conns in self.idle.values() for c in conns]

    def close(self) -> None:
        for conns in list(self.idle.values()):
            for conn in list(conns):
                self._discard(conn)
        self.idle.clear()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()


# --- the client --------------------------------------------------------------------------

Sink = Callable[[bytes], None]
Progress = Callable[[int, "int | None"], None]
BodyType = bytes | bytearray | memoryview | str | Iterable[bytes] | IO[bytes] | None


class HTTPClient:
    """An HTTP/1.1 client with its own connection pool (see the module docstring).

    ``max_connections`` bounds the connections per (scheme, host, port); an idle one is
    closed after ``idle_timeout`` seconds; a response body read into memory may be at most
    ``max_body`` bytes (``download`` has no such bound); ``headers`` are sent with every
    request (a request's own headers override them).
    """

    def __init__(
        self,
        *,
        max_connections: int = 10,
        idle_timeout: float = 30.0,
        max_body: int = 1024**3,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        reactor: Reactor | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._reactor = reactor
        self._pool_: _Pool | None = None
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_body = max_body
        self.headers = Headers([("User-Agent", USER_AGENT), ("Accept", "*/*")])
        for name, value in _header_pairs(headers):
            self.headers.set(name, value)
        self._contexts: dict[str, Any] = {}

    @property
    def reactor(self) -> Reactor:
        if self._reactor is None:
            self._reactor = get_reactor()
        return self._reactor

    @property
    def _pool(self) -> _Pool:
        if self._pool_ is None:
            self._pool_ = _Pool(self.reactor, self.max_connections, self.idle_timeout)
        return self._pool_

    @property
    def idle_connections(self) -> list[_Connection]:
        """The kept-alive connections waiting for a request."""
        return self._pool.connections()

    def close(self) -> None:
        """Close the idle connections (busy ones finish their request first)."""
        if self._pool_ is not None:
            self._pool_.close()

    # ---- requests

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: BodyType = None,
        json: Any = None,
        timeout: float | None = 30,
        follow_redirects: bool = True,
        max_redirects: int = 10,
        context: Any = None,
    ) -> Deferred[Response]:
        """Send a request; the Deferred fires with the final Response (after redirects).

        ``body`` is bytes (sent with Content-Length), str (UTF-8), or an iterable of bytes
        or a binary file (sent chunked); ``json`` is encoded as the body instead. The
        client sets Content-Length and Transfer-Encoding itself and drops those given in
        ``headers``, with one exception: a streamed body given with a Content-Length is
        sent as it is, not chunked, and must yield exactly that many bytes; else the
        Deferred fails with HTTPClientError and the connection is closed (a Content-Length
        that is not a number of bytes raises ValueError at once).
        ``timeout`` bounds the whole request: connecting, sending, every redirect and the
        response (None: no bound). A redirect whose Location is empty is not followed: it
        is the final response; one whose Location is not a URL fails with
        RemoteProtocolError. ``context`` is the TLS client context for https URLs.
        A redirect to another origin (scheme, host or port) drops the Authorization and
        Cookie headers and ``context``: the client's default context verifies that origin.
        Raises InvalidURL at once for a URL that cannot be requested; the Deferred fails
        with the errors listed in the module docstring.
        """
        method, first, request_headers, payload = self._prepare(method, url, headers, body, json)
        work = self._fetch(
            method,
            first,
            request_headers,
            payload,
            follow_redirects,
            max_redirects,
            context,
            None,
        )
        return _with_timeout(ensure_deferred(work), timeout, f"{method} {first}")

    def get(self, url: str, **kw: Any) -> Deferred[Response]:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> Deferred[Response]:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> Deferred[Response]:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **kw)

    def delete(self, url: str, **kw: Any) -> Deferred[Response]:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **kw)

    def head(self, url: str, **kw: Any) -> Deferred[Response]:
        """``request("HEAD", url, ...)``."""
        return self.request("HEAD", url, **kw)

    def download(
        self,
        url: str,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        timeout: float | None = 30,
        context: Any = None,
    ) -> Deferred[Path]:
        """GET ``url`` into the file ``path``, a piece at a time; fires with the Path.

        The body goes to a temporary file next to ``path``, renamed to ``path`` once
        complete and removed on any failure, so ``path`` is never left half-written.
        ``progress(received, total)`` is called as bytes arrive (``total`` is None when
        the server does not say); by default a one-line bar is drawn on stderr when it is
        a terminal. ``timeout`` is how long the server may send nothing (the download
        itself may take longer). Fails with HTTPStatusError for a final response that is
        not 2xx, and with the errors of ``request``.
        """
        first, request_headers = self._prepare("GET", url, headers, None, None)[1:3]
        target = Path(path)
        if progress is None:
            progress = make_progress(str(first))
        return ensure_deferred(
            self._download(first, request_headers, target, progress, timeout, context)
        )

    # ---- the work

    def _prepare(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
        body: BodyType,
        json: Any,
    ) -> tuple[str, URL, Headers, bytes | Iterable[bytes] | None]:
        method = method.upper()
        first = URL.parse(url)
        request_headers = self.headers.copy()
        for name, value in _header_pairs(headers):
            request_headers.set(name, value)
        if json is not None:
            if body is not None:
                raise ValueError("give body or json, not both")
            body = _json.dumps(json).encode()
            request_headers.setdefault("Content-Type", "application/json")
        payload = _payload(body)
        lengths = request_headers.get_all("content-length")
        if lengths and payload is not None and not isinstance(payload, bytes):
            # Kept for a streamed body (see request()): it must be one number of bytes.
            value = lengths[0].strip()
            if len(lengths) > 1 or not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise ValueError(
                    f"the Content-Length of a streamed body is a number of bytes, not {lengths!r}"
                )
            request_headers.set("Content-Length", str(int(value)))
        return method, first, request_headers, payload

    async def _fetch(
        self,
        method: str,
        url: URL,
        headers: Headers,
        body: bytes | Iterable[bytes] | None,
        follow_redirects: bool,
        max_redirects: int,
        context: Any,
        final_sink: Callable[[ResponseHead], Sink | None] | None,
    ) -> Response:
        history: list[Response] = []
        while True:
            collector = _Collector(self.max_body)

            def choose(head: ResponseHead, collector: _Collector = collector) -> Sink:
                # A redirect we will follow is read into memory (it is small), and so is
                # any response the caller does not stream.
                if final_sink is None or (follow_redirects and _is_redirect(head)):
                    return collector.add
                return final_sink(head) or collector.add

            head, _trailers = await self._exchange(method, url, headers, body, context, choose)
            response = Response(
                bytes(collector.data),
                head.status,
                head.headers,
                head.reason,
                head.version,
                url=str(url),
                history=list(history),
            )
            if not (follow_redirects and _is_redirect(head)):
                return response
            location = _location(head.headers["location"])
            history.append(response)
            if len(history) > max_redirects:
                raise TooManyRedirects(
                    f"more than {max_redirects} redirects, the last from {url} to {location}",
                    response,
                )
            try:
                joined = urljoin(str(url), location)
            except ValueError as e:  # "http://[::1" and the like
                raise RemoteProtocolError(
                    f"{head.status} redirect from {url} to a Location that is not a URL: "
                    f"{location!r} ({e})"
                ) from e
            next_url = URL.parse(joined)
            if head.status in (301, 302, 303) and method != "HEAD":
                method, body = "GET", None
                for name in ("Content-Length", "Transfer-Encoding", "Content-Type"):
                    headers.remove(name)
            elif body is not None and not isinstance(body, bytes):
                raise HTTPClientError(
                    f"{head.status} redirect to {next_url}: the streamed body cannot be sent again"
                )
            if next_url.origin != url.origin:
                # Credentials were meant for the first origin only, and so was the TLS
                # context (the authorities it trusts, a client certificate in it): another
                # origin, even on the same host, gets none of them, and neither does the
                # first one again when a later redirect leads back there. A Host header
                # given for the first does not fit another either.
                for name in ("Authorization", "Cookie", "Host"):
                    headers.remove(name)
                context = None
            url = next_url

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: Headers,
        body: bytes | Iterable[bytes] | None,
        context: Any,
        choose: Callable[[ResponseHead], Sink],
    ) -> tuple[ResponseHead, Headers]:
        request_headers = headers.copy()
        request_headers.setdefault("Host", url.authority)
        # The framing headers are ours: one of the caller's next to the one we set would
        # make a request that two servers may read two ways (RFC 9112 section 6.2: never
        # Content-Length with Transfer-Encoding). Only a streamed body's Content-Length
        # is kept (checked in _prepare), and the body is then sent as it is, not chunked.
        length = None
        if body is not None and not isinstance(body, bytes) and "content-length" in headers:
            length = int(headers["content-length"])
        request_headers.remove("Content-Length")
        request_headers.remove("Transfer-Encoding")
        if isinstance(body, bytes):
            request_headers.set("Content-Length", str(len(body)))
        elif length is not None:
            request_headers.set("Content-Length", str(length))
        elif body is not None:
            request_headers.set("Transfer-Encoding", "chunked")
        elif method in ("POST", "PUT", "PATCH"):
            request_headers.set("Content-Length", "0")
        head = serialize_request_head(method, url.target, request_headers)
        replayable = body is None or isinstance(body, bytes)
        key = (*url.origin, context if url.scheme == "https" else None)
        fresh = False
        while True:
            conn = await self._pool.acquire(key, fresh)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(url, key, context)
            try:
                return await conn.exchange(method, head, body, choose, length)
            except _Stale as e:
                if reused and not fresh and replayable and method in IDEMPOTENT:
                    log.debug("%r was closed by the server; trying %s again", conn, url)
                    fresh = True
                    continue
                raise ServerDisconnected(
                    f"the server closed the connection without answering {method} {url}"
                ) from e.__cause__
            except BaseException:
                conn.abort()
                raise
            finally:
                self._pool.release(conn)

    async def _connect(self, url: URL, key: PoolKey, context: Any) -> _Connection:
        pool = self._pool
        factory = ns.ClientFactory.for_protocol(_Connection, key, self._limits())
        try:
            if url.scheme == "https":
                if context is None:
                    context = self._context_for(url.host)
                conn = await self.reactor.connect_tls(url.host, url.port, factory, context)
            else:
                conn = await self.reactor.connect_tcp(url.host, url.port, factory)
        except BaseException:
            pool.opened_failed(key)
            raise
        assert isinstance(conn, _Connection)
        if conn.lost:
            pool.opened_failed(key)
            raise ServerDisconnected(f"{url.authority} closed the connection at once")
        conn.on_lost = pool.lost
        return conn

    def _context_for(self, host: str) -> Any:
        # Building a verifying context loads the system's trust store: once per host.
        context = self._contexts.get(host)
        if context is None:
            from netshell.tls import client_context

            context = self._contexts[host] = client_context(host)
        return context

    def _limits(self) -> Limits:
        # A client accepts big bodies (download has no bound; request() checks max_body
        # itself as the body arrives), and the server's heads within the usual limits.
        return Limits(max_body=2**62)

    async def _download(
        self,
        url: URL,
        headers: Headers,
        target: Path,
        progress: Progress | None,
        timeout: float | None,
        context: Any,
    ) -> Path:
        part = target.with_name(f".{target.name}.{os.getpid()}.{id(self):x}.part")
        received = 0
        total: int | None = None
        file: IO[bytes] | None = None
        watchdog = _Watchdog(self.reactor, timeout)

        def open_file(head: ResponseHead) -> Sink | None:
            nonlocal file, total
            if not 200 <= head.status < 300:
                return None  # kept in memory, for the error
            total = head.content_length
            file = open(part, "wb")  # noqa: SIM115 - closed below, whatever happens
            if progress is not None:
                progress(0, total)
            return write

        def write(data: bytes) -> None:
            nonlocal received
            assert file is not None
            file.write(data)
            received += len(data)
            watchdog.kick()
            if progress is not None:
                progress(received, total)

        try:
            work = ensure_deferred(
                self._fetch("GET", url, headers, None, True, 10, context, open_file)
            )
            response = await watchdog.watch(work, f"GET {url}")
            if file is None:
                raise HTTPStatusError(
                    f"GET {url} answered {response.status} {response.reason}", response
                )
            file.close()
            os.replace(part, target)
            return target
        finally:
            if file is not None and not file.closed:
                file.close()
            if part.exists():
                part.unlink()
            if progress is not None and hasattr(progress, "finish"):
                progress.finish()


class _Collector:
    """Collects a body in memory, up to a bound."""

    __slots__ = ("data", "limit")

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit

    def add(self, piece: bytes) -> None:
        self.data += piece
        if len(self.data) > self.limit:
            raise HTTPClientError(f"response body larger than {self.limit} bytes")


class _Watchdog:
    """Fails a download when nothing arrives for ``timeout`` seconds."""

    def __init__(self, reactor: Reactor, timeout: float | None) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.timer: Any = None
        self.work: Deferred[Any] | None = None
        self.expired = False

    def kick(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.reset(self.timeout)

    async def watch(self, work: Deferred[Any], what: str) -> Any:
        if self.timeout is None:
            return await work
        self.work = work
        self.timer = self.reactor.call_later(self.timeout, self._expire)
        try:
            return await work
        except ns.CancelledError:
            if self.expired:
                raise RequestTimeout(
                    f"{what}: nothing received for {self.timeout} seconds"
                ) from None
            raise
        finally:
            if self.timer.active():
                self.timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        assert self.work is not None
        self.work.cancel()


def _with_timeout(work: Deferred[Response], timeout: float | None, what: str) -> Deferred[Response]:
    if timeout is None:
        return work
    work.add_timeout(timeout)

    def typed(failure: Failure) -> Any:
        if failure.check(ns.TimeoutError) and not failure.check(RequestTimeout):
            raise RequestTimeout(f"{what}: no complete response within {timeout} seconds")
        return failure

    work.add_errback(typed)
    return work


def _is_redirect(head: ResponseHead) -> bool:
    # An empty Location (nginx sends one for a bare "return 302;") leads nowhere but back
    # to the same URL: such a response is final, not a redirect to follow.
    return head.status in REDIRECTS and bool((head.headers.get("location") or "").strip())


def _location(value: str) -> str:
    """A Location value as the server meant it, ready for urljoin and URL.parse.

    Header values are decoded ISO-8859-1, so the raw UTF-8 many servers send in a Location
    arrives as mojibake (the two bytes of an "e" with an acute accent as two characters),
    which URL.parse would encode a second time. Its bytes are taken back: as UTF-8 when
    they are (URL.parse encodes the path again to the very same bytes, and IDNA-encodes a
    host), else with each non-ASCII byte percent-encoded as it is, as curl does.
    """
    value = value.strip()
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value  # characters beyond Latin-1: not bytes off the wire
    if raw.isascii():
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


def _header_pairs(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | Headers | None,
) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.items()
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _payload(body: BodyType) -> bytes | Iterable[bytes] | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    read = getattr(body, "read", None)
    if read is not None:
        return iter(lambda: read(_SEND_PIECE), b"")
    if isinstance(body, Iterable):
        return body
    raise TypeError(f"body is bytes, str, an iterable of bytes or a file, not {type(body)}")


# --- progress -------------------------------------------------------------------------------


class TerminalProgress:
    """A one-line progress bar redrawn with "\\r" on a terminal stream (stderr by default).

    Call it with (received, total); ``finish()`` ends the line. Redraws at most ten times
    a second, and always for the last call.
    """

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 30) -> None:
        self.label = label if len(label) <= 40 else "..." + label[-37:]
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, received: int, total: int | None) -> None:
        now = time.monotonic()
        if self._drawn and now - self._last < 0.1 and received != total:
            return
        self._last = now
        self._drawn = True
        if total:
            done = min(received / total, 1.0)
            filled = int(done * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            line = f"{self.label} [{bar}] {done:4.0%} {_size(received)}/{_size(total)}"
        else:
            line = f"{self.label} {_size(received)}"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _terminal_progress(label: str) -> Progress | None:
    stream = sys.stderr
    if stream is not None and hasattr(stream, "isatty") and stream.isatty():
        return TerminalProgress(label, stream)
    return None


#: How ``download`` makes its progress display when none is given: called with the URL,
#: returns a callable(received, total) or None. The prompt replaces it with its own.
make_progress: Callable[[str], Progress | None] = _terminal_progress


# --- the module functions -----------------------------------------------------------------

_clients: weakref.WeakKeyDictionary[Reactor, HTTPClient] = weakref.WeakKeyDictionary()


def default_client() -> HTTPClient:
    """The HTTPClient the module functions use: one per reactor."""
    reactor = get_reactor()
    client = _clients.get(reactor)
    if client is None:
        client = _clients[reactor] = HTTPClient(reactor=reactor)
    return client


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: BodyType = None,
    json: Any = None,
    timeout: float | None = 30,
    follow_redirects: bool = True,
    max_redirects: int = 10,
    context: Any = None,
) -> Deferred[Response]:
    """Send a request with the default client; see :meth:`HTTPClient.request`."""
    return default_client().request(
        method,
        url,
        headers=headers,
        body=body,
        json=json,
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        context=context,
    )


def get(url: str, **kw: Any) -> Deferred[Response]:
    """GET ``url``; fires with the Response. Keywords as for :func:`request`."""
    return request("GET", url, **kw)


def post(url: str, **kw: Any) -> Deferred[Response]:
    """POST to ``url`` (``body=`` or ``json=``); fires with the Response."""
    return request("POST", url, **kw)


def put(url: str, **kw: Any) -> Deferred[Response]:
    """PUT to ``url`` (``body=`` or ``json=``); fires with the Response."""
    return request("PUT", url, **kw)


def delete(url: str, **kw: Any) -> Deferred[Response]:
    """DELETE ``url``; fires with the Response."""
    return request("DELETE", url, **kw)


def head(url: str, **kw: Any) -> Deferred[Response]:
    """HEAD ``url``: the Response has the headers and an empty body."""
    return request("HEAD", url, **kw)


def download(
    url: str, path: str | os.PathLike[str], *, progress: Progress | None = None, **kw: Any
) -> Deferred[Path]:
    """Stream ``url`` into the file ``path``; see :meth:`HTTPClient.download`."""
    return default_client().download(url, path, progress=progress, **kw)
