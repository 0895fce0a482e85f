"""The HTTP/1.1 client: requests, redirects and downloads, over a keep-alive pool.

``request(method, url, ...)`` answers with a Deferred that fires with a
:class:`~protocols.http.message.Response` (``status``, ``reason``, ``headers``, ``body``,
``text()``, ``json()``, ``url``, ``history``); ``get``, ``post``, ``put``, ``delete`` and
``head`` are its shortcuts, and ``download(url, path)`` streams a body into a file (with a
progress hook). A 4xx or 5xx answer is a Response like any other; failures to get one are
errors:

- :class:`HTTPClientError` (a :class:`netshell.NetshellError`), the root of the client's own:
  :class:`InvalidURL`, :class:`TooManyRedirects`, :class:`RemoteProtocolError` (the server
  broke HTTP), :class:`ServerDisconnected` (it closed before the response was complete),
  :class:`RequestTimeout` (also a ``TimeoutError``) and, from ``download``,
  :class:`HTTPStatusError` (all defined in :mod:`protocols.http.errors`);
- the core's :class:`netshell.ConnectError` (ConnectionRefused, DNSLookupError,
  ConnectTimeout) and :class:`netshell.TLSError` (UnknownCA, HostnameMismatch...) as they are.

HTTPS is verified by default (``netshell.tls.client_context``: the system's trust store and
the host name); ``context=`` gives another TLS client context. Connections are kept alive
and reused per (scheme, host, port), at most ``max_connections`` at once for each; a reused
connection that the server had closed is retried once on a fresh one when the request is
idempotent and nothing of the response had come.

The module functions use one :class:`HTTPClient` per reactor; make your own for other limits.
The parts live beside this module: :mod:`~protocols.http.errors` (the error tree),
:mod:`~protocols.http.url` (URLs and redirect Locations), :mod:`~protocols.http.connection`
(one connection) and :mod:`~protocols.http.pool` (the keep-alive pool); their public names
are importable from here too.

Example::

    >>> from netshell import reactor
    >>> from protocols.http import client
    >>> client.get("ftp://example.org/")
    Traceback (most recent call last):
      ...
    protocols.http.errors.InvalidURL: only http and https URLs are supported, not 'ftp://...'
    >>> u = client.URL.parse("https://example.org/a b?q=1#top")
    >>> u.scheme, u.host, u.port, u.target
    ('https', 'example.org', 443, '/a%20b?q=1')
"""

from __future__ import annotations

import json as _json
import logging
import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import netshell as ns
from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from netshell.reactor import Reactor, get_reactor
from protocols.http.connection import Connection, PoolKey, Stale
from protocols.http.errors import (
    HTTPClientError,
    HTTPStatusError,
    InvalidURL,
    RemoteProtocolError,
    RequestTimeout,
    ServerDisconnected,
    TooManyRedirects,
)
from protocols.http.framing import set_request_framing, streamed_length
from protocols.http.message import Headers, Limits, Response
from protocols.http.parser import ResponseHead, serialize_request_head
from protocols.http.pool import Pool
from protocols.http.url import URL, decode_location, join

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
        self._pool_: Pool | None = None
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
    def _pool(self) -> Pool:
        if self._pool_ is None:
            self._pool_ = Pool(self.reactor, self.max_connections, self.idle_timeout)
        return self._pool_

    @property
    def idle_connections(self) -> list[Connection]:
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
        the server does not say), first with (0, total) once the response head came; if it
        has a ``finish()`` method, that is called once at the end, whether the download
        succeeded or failed. Without ``progress``, ``make_progress(url)`` gives one (the
        library's default gives none; the netsh prompt and ``netsh run`` draw a bar on a
        terminal, see :data:`make_progress`). ``timeout`` is how long the server may send
        nothing (the download itself may take longer). Fails with HTTPStatusError for a
        final response that is not 2xx, and with the errors of ``request``.
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
            request_headers.set("Content-Length", str(streamed_length(lengths)))
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
            location = decode_location(head.headers["location"])
            history.append(response)
            if len(history) > max_redirects:
                raise TooManyRedirects(
                    f"more than {max_redirects} redirects, the last from {url} to {location}",
                    response,
                )
            try:
                next_url = join(url, location)
            except InvalidURL:
                raise
            except ValueError as e:  # "http://[::1" and the like
                raise RemoteProtocolError(
                    f"{head.status} redirect from {url} to a Location that is not a URL: "
                    f"{location!r} ({e})"
                ) from e
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
        # The framing fields are framing.py's (a streamed body's Content-Length was
        # checked in _prepare).
        length = set_request_framing(method, body, request_headers)
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
            except Stale as e:
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

    async def _connect(self, url: URL, key: PoolKey, context: Any) -> Connection:
        pool = self._pool
        factory = ns.ClientFactory.for_protocol(Connection, key, self._limits())
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
        assert isinstance(conn, Connection)
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


def no_progress(url: str) -> Progress | None:
    """The library's own ``make_progress``: no progress display (it draws nothing)."""
    return None


#: How ``download`` makes its progress display when none is given: called with the URL,
#: returns a callable(received, total), optionally with a ``finish()`` method, or None.
#: The library draws nothing itself; the shell (the netsh prompt, ``netsh run``) sets
#: this to its own terminal bar, ``netshell.shell.progress.terminal_progress``.
make_progress: Callable[[str], Progress | None] = no_progress


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
