"""The HTTP/1.1 server: a protocol per connection, and :func:`serve` to listen with it.

``serve(target)`` listens for HTTP (or HTTPS with ``tls=``) and answers with
``target``: a directory (static files, see :mod:`protocols.http.static`), an
:class:`~protocols.http.App`, or any callable taking a Request (see
:mod:`protocols.http.app` for what a handler may return).

Per connection: keep-alive and pipelining (answers in order, reading paused
when too many requests wait), HTTP/1.0, chunked request bodies, streamed
responses (a body that is an iterable or async iterable of bytes goes out
chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0 ones), files sent
with ``sendfile``, ``Expect: 100-continue`` (100 only once the request is
routed and its turn has come; 417 for other expectations), limits with their
status codes (414, 431, 413, 400) and timeouts for slow heads and bodies
(408) and idle connections.

A handler that raises gets the client a 500 and the log (logger
``netshell.http``) the traceback. Each response is logged in common log
format to ``netshell.http.access`` at INFO.

This module takes requests in, calls the handler and coordinates the rest:
:mod:`protocols.http.pipeline` queues the requests and answers them in order,
:mod:`protocols.http.framing` decides each answer's framing and makes its bytes,
:mod:`protocols.http.streaming` sends streamed bodies and files, and
:mod:`protocols.http.deadlines` keeps the connection's timeouts.

Example::

    >>> from protocols import http
    >>> app = http.App()
    >>> @app.route("/hello/{name}")
    ... def hello(request):
    ...     return f"hello, {request.params['name']}"
    >>> listener = http.serve(app)
    >>> listener.port > 0
    True
    >>> _ = listener.close()
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from netshell.listener import Listener
from netshell.protocol import Factory, Protocol
from netshell.reactor import get_reactor
from protocols.http.app import App, error_response
from protocols.http.deadlines import BODY as _BODY
from protocols.http.deadlines import HEAD as _HEAD
from protocols.http.deadlines import LINGER as _LINGER
from protocols.http.deadlines import WAIT as _WAIT
from protocols.http.deadlines import ConnectionDeadlines
from protocols.http.framing import SERVER as SERVER  # the Server header, public here too
from protocols.http.framing import SERVER_LINE, frame_answer, plain_answer
from protocols.http.message import HTTPError, Limits, ParseError, Request, Response

# LAST_CHUNK, encode_chunk and FileBody were importable from here before the framer and
# the streamer moved out: kept so, for whoever imported them.
from protocols.http.parser import LAST_CHUNK as LAST_CHUNK
from protocols.http.parser import Body, EndOfMessage, RequestHead, RequestParser
from protocols.http.parser import encode_chunk as encode_chunk
from protocols.http.pipeline import Exchange, RequestPipeline
from protocols.http.static import FileBody as FileBody
from protocols.http.static import StaticFiles
from protocols.http.streaming import BodyStreamer, close_body

__all__ = ["HTTPServerFactory", "HTTPServerProtocol", "serve"]

log = logging.getLogger("netshell.http")
access_log = logging.getLogger("netshell.http.access")

_INFO = logging.INFO
_HTTP11 = (1, 1)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# An error answered with one of these ends the connection: what follows cannot be trusted.
_CLOSING_ERRORS = frozenset((400, 408, 413, 414, 431, 505))


# ---- dates, computed once per second


class _Clock:
    """The Date header value and the access log time, each formatted once per second."""

    __slots__ = ("second", "date", "line", "log_second", "log_time")

    def __init__(self) -> None:
        self.second = -1
        self.date = ""
        self.line = b""
        self.log_second = -1
        self.log_time = ""

    def date_line(self) -> bytes:
        """``Date: ...`` and the ``Server`` line after it, as one piece of bytes."""
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.date = formatdate(now, usegmt=True)
            self.line = f"Date: {self.date}\r\n".encode() + SERVER_LINE
        return self.line

    def log_date(self) -> str:
        now = int(time.time())
        if now != self.log_second:
            self.log_second = now
            self.log_time = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
        return self.log_time


_clock = _Clock()

# ---- the factory


class HTTPServerFactory(Factory):
    """Makes an :class:`HTTPServerProtocol` per connection; holds the handler and the limits.

    ``handler`` takes a Request (an :class:`~protocols.http.App` is one); the
    other arguments are as for :func:`serve`.
    """

    #: what ``listeners()`` at the prompt names its protocol, as ``conns()`` names each one
    display_name = "http server"

    def __init__(
        self,
        handler: Callable[[Request], Any],
        *,
        limits: Limits | None = None,
        header_timeout: float = 20.0,
        body_timeout: float = 60.0,
        keep_alive_timeout: float = 15.0,
        max_requests: int = 1000,
        max_pipeline: int = 16,
        linger_timeout: float = 2.0,
        send_timeout: float = 60.0,
        reactor: Any = None,
    ) -> None:
        self.handler = handler
        #: App.resolve, looked up before a 100 Continue is sent
        self.resolve = handler.resolve if isinstance(handler, App) else None
        self.limits = limits if limits is not None else Limits()
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.max_requests = max_requests
        self.max_pipeline = max_pipeline
        self.linger_timeout = linger_timeout
        #: seconds an answer may wait on a client that does not read it (slow readers)
        self.send_timeout = send_timeout
        self.reactor = reactor if reactor is not None else get_reactor()

    def build_protocol(self, addr: Any) -> HTTPServerProtocol:
        p = HTTPServerProtocol(self)
        p.factory = self
        return p

    def __repr__(self) -> str:
        return f"<HTTPServerFactory of {self.handler!r}>"


# ---- one request and its answer


def _request(head: RequestHead, client: Any) -> Request:
    target = head.target
    if target[0] == "/" and "?" not in target and "%" not in target and target.isascii():
        # The commonest target: a plain path, nothing to decode.
        return Request(head.method, target, head.headers, b"", head.version, client, target,
                       {}, {})
    if target.startswith("/"):
        raw, _, qs = target.partition("?")
    elif target == "*":
        raw, qs = "*", ""
    else:  # absolute form (RFC 9112 section 3.2.2); authority form has no path
        parts = urlsplit(target)
        raw, qs = parts.path or "/", parts.query
    if not raw.isascii():
        # obs-text arrived as latin-1: back to bytes, then read as UTF-8 like the escapes are
        raw = raw.encode("latin-1").decode("utf-8", "surrogateescape")
    path = unquote(raw, errors="surrogateescape") if "%" in raw else raw
    query = parse_qs(qs, keep_blank_values=True) if qs else {}
    return Request(head.method, target, head.headers, b"", head.version, client, path, query, {})


def _log_access(peer_host: str, ex: Exchange) -> None:
    """One line in common log format for the answer to ``ex``."""
    request = ex.request
    line = (
        "-"
        if request.method == "-"
        else f"{request.method} {request.target} HTTP/{request.version[0]}."
        f"{request.version[1]}"
    )
    access_log.info(
        '%s - - [%s] "%s" %d %s',
        peer_host,
        _clock.log_date(),
        line,
        ex.status,
        ex.sent or "-",
    )


# ---- the protocol


class HTTPServerProtocol(RequestPipeline, ConnectionDeadlines, Protocol):
    """One HTTP connection, server side: parses requests, calls the handler, writes answers.

    Requests are answered one at a time, in the order they came; the next
    (pipelined) one waits until the answer before it has been written. The
    protocol is the transport's streaming producer, so a client that does not
    read its answers stops the serving of the ones after.

    It coordinates: the queue of pipelined requests is :mod:`protocols.http.pipeline`
    (mixed in), framing is decided by :mod:`protocols.http.framing`, streamed bodies
    are sent by :mod:`protocols.http.streaming`, and the timeouts are
    :mod:`protocols.http.deadlines` (mixed in).
    """

    #: What ``conns()`` at the prompt calls it.
    display_name = "http server"

    def __init__(self, factory: HTTPServerFactory) -> None:
        self.factory = factory
        self._limits = factory.limits
        self._handler = factory.handler
        self._resolve = factory.resolve
        # The loop's own clock when there is one: reactor.seconds() is the same, one call deeper.
        loop = getattr(factory.reactor, "loop", None)
        self._loop_time = loop.time if loop is not None else factory.reactor.seconds
        self._parser = RequestParser(factory.limits)
        self._init_pipeline()
        self._served = 0
        self._stopped = False  # reading no more requests: the connection ends after the queue
        self._closing = False  # stop_gracefully(): close once nothing is under way
        self._eof = False
        self._lost = False
        self._write_paused = False
        self._streamer: BodyStreamer | None = None  # sending the current answer's body
        self._init_deadlines(factory.header_timeout)
        self._peer_host = "-"
        self._client: Any = None

    # ---- connection events

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._client = transport.peer
        self._peer_host = self._client.host or "-"
        transport.register_producer(self, True)
        self._since = self._loop_time()
        self._arm(self._since + self._wait_limit)

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            if self._in_state == _LINGER and self.transport.bytes_received > (1 << 20):
                self.transport.abort()  # lingering is for a few stray bytes, not a stream
            return
        if self._in_state == _WAIT:
            self._in_state = _HEAD
            self._since = self._loop_time()
        error: ParseError | None = None
        try:
            events = self._parser.feed(data)
        except ParseError as e:
            events = e.events
            error = e
        for event in events:
            kind = type(event)
            if kind is Body:
                self._on_body(event.data)  # type: ignore[union-attr]
            elif kind is RequestHead:
                self._on_head(event)  # type: ignore[arg-type]
            elif kind is EndOfMessage:
                self._on_end()
            if self._stopped:
                return
        if error is not None:
            self._on_fatal(error)
            return
        state = self._in_state
        if state == _HEAD:
            # A head still incomplete after a read: a slow client, or slowloris.
            self._arm(self._since + self.factory.header_timeout)
        elif state == _BODY:
            self._since = self._loop_time()
            self._arm(self._since + self.factory.body_timeout)

    def eof_received(self) -> bool | None:
        if self._stopped:
            return None  # lingering ends: close
        self._eof = True
        try:
            self._parser.feed_eof()
        except ParseError as e:
            # The client ended its side in the middle of a request: nobody will read an answer
            # that completes it, but the answers before are still due.
            self._incoming = None
            self._in_state = _WAIT
            if self._current is None and not self._queue:
                return None
            log.debug("%s: %s", self._peer_host, e.message)
        if self._current is None and not self._queue and self._incoming is None:
            return None  # nothing left to answer: close
        return True  # answer what was asked, then close

    def connection_lost(self, reason: Failure) -> None:
        self._lost = True
        self._stopped = True
        self._cancel_timer()
        if self._streamer is not None:
            self._streamer.stop()
            ex = self._current
            # An answer cut off while its body was on the way is logged too (as nginx and
            # http.server log it): the request line and the status that was sent.
            if ex is not None and access_log.isEnabledFor(_INFO):
                _log_access(self._peer_host, ex)
        self._queue.clear()
        self._incoming = None

    def stop_gracefully(self) -> None:
        """The server shuts down: close now if idle between requests, else after the
        answers to the requests already begun (the last one says ``Connection: close``).

        An idle keep-alive connection (any open browser tab holds one) does not hold up
        the shutdown; a request being read or answered gets the shutdown's grace.
        """
        if self._closing or self._stopped or self._lost:
            return
        self._closing = True
        # The last request begun is the last answered: it tells the client we close.
        if self._incoming is not None:
            self._incoming.keep_alive = False
        elif self._queue:
            self._queue[-1].keep_alive = False
        elif self._current is not None and self._current.status == 0:  # not framed yet
            self._current.keep_alive = False
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if (self._closing and not self._stopped and not self._lost and self._current is None
                and not self._queue and self._incoming is None and self._in_state == _WAIT):
            self._stopped = True
            self.transport.close()

    # ---- the transport's producer interface: it tells when its write buffer is full

    def pause_producing(self) -> None:
        self._write_paused = True
        if self._streamer is not None:
            self._streamer.pause()
        self._sending_stalled()

    def resume_producing(self) -> None:
        self._write_paused = False
        self._paused_at = None
        if self._streamer is not None:
            self._streamer.resume()
        elif self._current is None:
            self._serve_next()

    def stop_producing(self) -> None:
        pass  # connection_lost follows and cleans up

    # ---- parsing

    def _on_head(self, head: RequestHead) -> None:
        request = _request(head, self._client)
        ex = Exchange(request, head.keep_alive and not self._closing)
        self._incoming = ex
        if head.body_kind != "none":
            self._in_state = _BODY
            ex.parts = []
            if head.expect_continue:
                ex.expect = True
        else:
            self._in_state = _WAIT
        if head.has_expect and not head.expect_continue and head.version != (1, 0):
            ex.error = HTTPError(417, "only 100-continue is understood in Expect")
            ex.expect = head.body_kind != "none"
        if ex.expect and self._current is None and not self._queue:
            self._decide_continue(ex)

    def _decide_continue(self, ex: Exchange) -> None:
        """The request waits for a 100 Continue and its turn has come: send it, or refuse."""
        ex.expect = False
        if ex.error is None and self._resolve is not None:
            try:
                ex.handler = self._resolve(ex.request)
            except HTTPError as e:
                ex.error = e
        if ex.error is not None:
            # Its body will not be read: answer now and close, so the body is never taken
            # for the next request.
            self._stopped = True
            self._incoming = None
            self._current = ex
            self._send_error(ex, ex.error, linger=True)
            return
        self.transport.write(_CONTINUE)

    # ---- answering, in order (the pipeline calls _serve with each request in turn)

    def _serve(self, ex: Exchange) -> None:
        self._current = ex
        self._served += 1
        if self._served >= self.factory.max_requests:
            ex.keep_alive = False
        if ex.error is not None:
            self._send_error(ex, ex.error)
            return
        request = ex.request
        try:
            handler = ex.handler
            if handler is None:
                handler = self._handler if self._resolve is None else self._resolve(request)
            if type(handler) is StaticFiles and ex.keep_alive and request.version == _HTTP11:
                # A remembered small file: its whole answer in one piece, no Response made.
                answer = handler._answer(request, _clock.date_line())
                if answer is not None:
                    self.transport.write(answer[0])
                    ex.status = answer[1]
                    ex.sent = answer[2]
                    ex.close = False
                    self._done(ex)
                    return
            result = handler(request)
        except HTTPError as e:
            self._send_error(ex, e)
            return
        except Exception:
            self._handler_failed(Failure(), ex)
            return
        kind = type(result)
        if kind is Response or kind is bytes or kind is str or kind is dict or kind is list:
            self._respond(result, ex)
        elif isinstance(result, Deferred):
            # Fired by whoever answers (another cell in a Jupyter kernel, a thread's
            # callback...): the answer, its log line and the rest of the connection's work
            # go on in the connection's context, not the firing code's.
            in_context = self.transport.in_context
            result.add_callbacks(in_context(self._respond), in_context(self._handler_failed),
                                 (ex,), None, (ex,))
        elif inspect.isawaitable(result):
            # A coroutine or future: its callbacks run in the context current now (a task,
            # or a future's done-callbacks, copies it), the connection's.
            d = ensure_deferred(result)
            d.add_callbacks(self._respond, self._handler_failed, (ex,), None, (ex,))
        else:
            self._respond(result, ex)

    def _handler_failed(self, failure: Failure, ex: Exchange) -> None:
        if isinstance(failure.value, HTTPError):
            self._send_error(ex, failure.value)
            return
        request = ex.request
        log.error(
            "Error in the handler of %s %s (from %s); answered 500:\n%s",
            request.method,
            request.target,
            self._peer_host,
            failure.get_traceback(),
        )
        self._send_error(ex, HTTPError(500))

    def _send_error(self, ex: Exchange, error: HTTPError, linger: bool = False) -> None:
        if linger or error.status in _CLOSING_ERRORS:
            ex.keep_alive = False
            linger = True
        self._respond(error_response(error), ex, linger)

    def _respond(self, result: Any, ex: Exchange, linger: bool = False) -> None:
        if self._lost:
            if type(result) is Response:
                close_body(result.body)
            return
        request = ex.request
        close = not ex.keep_alive
        kind = type(result)
        date_line = _clock.date_line()
        if kind is str or kind is bytes:
            # The commonest answer of all, in one piece if framing.py says it can go so (a
            # 200 of text or bytes on a kept-alive HTTP/1.1 connection).
            body = result if kind is bytes else result.encode()
            data = plain_answer(kind, body, request.method, request.version, close, date_line)
            if data is not None:
                self.transport.write(data)
                ex.status = 200
                ex.sent = len(body)
                ex.close = False
                self._done(ex, linger)
                return
        try:
            ex.status, frame = frame_answer(result, request.method, request.version, close,
                                            date_line)
        except (TypeError, ValueError) as e:
            # Not a value a handler may return, or a header that would corrupt the stream.
            if kind is Response:
                close_body(result.body)
            self._handler_failed(Failure(e), ex)
            return
        if frame.discard is not None:
            close_body(frame.discard)
        if frame.close:
            ex.keep_alive = False
        ex.close = frame.close
        self.transport.write(frame.head)
        stream = frame.stream
        if stream is None:
            if frame.tail:
                self.transport.write(frame.tail)
            ex.sent = frame.sent
            self._done(ex, linger)
            return
        streamer = self._streamer = BodyStreamer(
            self.transport, self.factory.reactor, request, self._peer_host,
            lambda sent, was_file: self._body_sent(ex, sent, was_file), self._write_paused,
        )
        ex.sent = 0
        streamer.start(stream, frame.framer)

    def _body_sent(self, ex: Exchange, sent: int, was_file: bool) -> None:
        """The streamed body of ``ex`` is all written (and the connection still here)."""
        self._streamer = None
        ex.sent = sent
        if was_file:
            # Sending the file took the transport's producer slot: take it back.
            self._write_paused = False
            self.transport.register_producer(self, True)
        self._done(ex)

    def _done(self, ex: Exchange, linger: bool = False) -> None:
        """The answer to ``ex`` is written: log it, then go on with the next or close."""
        if access_log.isEnabledFor(_INFO):
            _log_access(self._peer_host, ex)
        self._current = None
        if self._lost:
            return
        if ex.close:
            self._stopped = True
            self._queue.clear()
            if linger:
                self._linger()
            else:
                self.transport.close()
            return
        if not self._serving:  # inside _serve_next's loop, it goes on by itself
            self._serve_next()
        if self._closing:
            # Shutting down: an answer already framed to keep the connection open ends it.
            self._close_if_idle()

    def __repr__(self) -> str:
        return f"<HTTPServerProtocol {self._peer_host} {self._served} served>"


def _as_handler(target: Any) -> Callable[[Request], Any]:
    if isinstance(target, str | os.PathLike):
        return StaticFiles(target)
    if callable(target):
        return target
    raise TypeError(f"serve() needs a directory, an App or a handler, not {target!r}")


def serve(
    target: Any,
    port: int = 0,
    interface: str = "127.0.0.1",
    tls: Any = None,
    *,
    backlog: int = 1024,
    header_timeout: float = 20.0,
    body_timeout: float = 60.0,
    keep_alive_timeout: float = 15.0,
    max_requests: int = 1000,
    max_pipeline: int = 16,
    send_timeout: float = 60.0,
    limits: Limits | None = None,
    **limit_fields: int,
) -> Listener:
    """Serve HTTP on ``interface:port`` (HTTPS with ``tls=`` a server context); a Listener.

    ``target`` is a directory (its files, with listings), an
    :class:`~protocols.http.App`, or a callable taking a Request.

    Timeouts, in seconds: ``header_timeout`` for a request head once it
    has begun (and for the first on a new connection), ``body_timeout``
    without progress in a request body (both answered 408),
    ``keep_alive_timeout`` idle between requests, ``send_timeout`` for a
    client that does not read its answer (the connection is dropped). ``max_requests`` answers
    per connection, ``max_pipeline`` requests waiting before reading pauses.
    ``limits`` (a :class:`~protocols.http.Limits`), or its fields as
    keywords (``max_body=...``, ``max_headers=...``), bound what is read.
    Raises OSError when the port is taken, TypeError for an unknown keyword.

    >>> from protocols import http
    >>> listener = http.serve(lambda request: "hi", max_body=1024, header_timeout=5)
    >>> listener.factory.limits.max_body
    1024
    >>> _ = listener.close()
    """
    if limit_fields:
        base = limits if limits is not None else Limits()
        fields = {**base.__dict__}
        for name, value in limit_fields.items():
            if name not in fields:
                raise TypeError(f"serve() got an unexpected keyword argument {name!r}")
            fields[name] = value
        limits = Limits(**fields)
    reactor = get_reactor()
    factory = HTTPServerFactory(
        _as_handler(target),
        limits=limits,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        keep_alive_timeout=keep_alive_timeout,
        max_requests=max_requests,
        max_pipeline=max_pipeline,
        send_timeout=send_timeout,
        reactor=reactor,
    )
    if tls is not None:
        return reactor.listen_tls(port, factory, tls, interface=interface, backlog=backlog)
    return reactor.listen_tcp(port, factory, interface=interface, backlog=backlog)
