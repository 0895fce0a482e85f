"""The pipelining queue of one server connection: requests read ahead, answered in order.

A client may send requests before the answers to the ones before have come (HTTP/1.1
pipelining). Each request becomes an :class:`Exchange` as its head arrives; its body
is gathered, and once complete it waits in the queue until every answer before it is
written. Reading pauses while ``max_pipeline`` requests wait, or while the bodies held
for them pass ``max_body`` bytes (each body is bounded by it, and so is their sum), and
resumes as the queue shrinks. A request that cannot be read (malformed, too large, too
slow) is answered after the ones before it, and then the connection closes.

:class:`RequestPipeline` is mixed into the server protocol, like
:class:`~protocols.http.deadlines.ConnectionDeadlines`: the queue is the protocol's own
state, so the request path pays no lookup through another object. The protocol answers
each request (``_serve``) and says when an answer is written; the pipeline says which
request comes next, and what to do once none is left.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from protocols.http.deadlines import WAIT
from protocols.http.message import Headers, HTTPError, Limits, Request

__all__ = ["Exchange", "RequestPipeline"]


class Exchange:
    """A request on its way in, waiting its turn, or being answered."""

    __slots__ = (
        "request",
        "keep_alive",
        "parts",
        "handler",
        "error",
        "expect",
        "status",
        "sent",
        "close",
    )

    def __init__(self, request: Request, keep_alive: bool) -> None:
        self.request = request
        self.keep_alive = keep_alive
        self.parts: list[bytes] | None = None
        self.handler: Any = None
        self.error: HTTPError | None = None  # answered with this instead of the handler
        self.expect = False  # a 100 Continue decision is due when its turn comes
        self.status = 0
        self.sent = 0  # body bytes, for the access log
        self.close = False  # the connection closes after this answer


class RequestPipeline:
    """The queue of requests waiting for their answers, mixed into the server protocol.

    The protocol calls :meth:`_init_pipeline` once, :meth:`_on_body` and :meth:`_on_end`
    as the parser's events come, :meth:`_on_fatal` for a request that cannot be read,
    and :meth:`_serve_next` when an answer is written or writing may go on.
    """

    # Provided by the protocol this is mixed into.
    factory: Any
    transport: Any
    _limits: Limits
    _lost: bool
    _eof: bool
    _stopped: bool
    _write_paused: bool
    _in_state: int

    if TYPE_CHECKING:  # no stubs at run time: they would hide the deadlines' methods

        def _serve(self, ex: Exchange) -> None: ...
        def _send_error(self, ex: Exchange, error: HTTPError, linger: bool = False) -> None: ...
        def _decide_continue(self, ex: Exchange) -> None: ...
        def _idle(self) -> None: ...  # ConnectionDeadlines
        def _reading_resumed(self) -> None: ...  # ConnectionDeadlines

    def _init_pipeline(self) -> None:
        self._incoming: Exchange | None = None  # the request being read
        self._queue: deque[Exchange] = deque()  # read, waiting for their turn
        self._current: Exchange | None = None  # being answered
        self._fatal: HTTPError | None = None  # answered once the queue is empty, then close
        self._read_paused = False
        self._buffered = 0  # body bytes held for the incoming and the queued requests
        self._serving = False  # inside _serve_next's loop (answers complete re-entrantly)

    def _on_body(self, data: bytes) -> None:
        ex = self._incoming
        assert ex is not None and ex.parts is not None
        # The client did not wait for a 100 Continue: no decision to make any more.
        ex.expect = False
        ex.parts.append(data)
        self._buffered += len(data)
        if self._buffered > self._limits.max_body and not self._read_paused and (
            self._current is not None or self._queue
        ):
            self._pause_reading()

    def _on_end(self) -> None:
        ex = self._incoming
        assert ex is not None
        self._incoming = None
        self._in_state = WAIT
        ex.expect = False
        parts = ex.parts
        if parts:
            ex.request.body = parts[0] if len(parts) == 1 else b"".join(parts)
            ex.parts = None
        self._queue.append(ex)
        if self._current is None:
            if not self._serving:
                self._serve_next()
        elif not self._read_paused and (
            len(self._queue) >= self.factory.max_pipeline or self._buffered > self._limits.max_body
        ):
            self._pause_reading()

    def _pause_reading(self) -> None:
        """Enough waits to be answered (requests, or their bodies' bytes): stop reading
        until it shrinks. Each body is bounded by max_body; so is their sum."""
        self._read_paused = True
        self.transport.pause_reading()

    def _resume_reading(self) -> None:
        self._read_paused = False
        self.transport.resume_reading()
        self._reading_resumed()

    def _on_fatal(self, error: HTTPError) -> None:
        """A request cannot be read (malformed, too large, too slow): answer it after the
        ones before it, then close."""
        self._stopped = True
        self._fatal = error
        self._incoming = None
        self._queue_fatal()

    def _queue_fatal(self) -> None:
        if self._current is None and not self._queue and not self._serving:
            error, self._fatal = self._fatal, None
            if error is not None:
                ex = Exchange(Request("-", "-", Headers()), False)
                self._current = ex
                self._send_error(ex, error, linger=True)

    def _serve_next(self) -> None:
        """Answer the queued requests in order while nothing is being answered and the
        transport takes more; once none is left, go on with what the connection awaits."""
        if self._serving:
            return
        self._serving = True
        try:
            queue = self._queue
            while self._current is None and not self._write_paused and not self._lost:
                if not queue:
                    break
                ex = queue.popleft()
                self._buffered -= len(ex.request.body)
                if (
                    self._read_paused
                    and len(queue) < self.factory.max_pipeline
                    and self._buffered <= self._limits.max_body
                ):
                    self._resume_reading()
                self._serve(ex)
        finally:
            self._serving = False
        if self._current is not None or self._queue or self._lost:
            return
        if self._fatal is not None:
            self._queue_fatal()
        elif self._stopped:
            pass
        elif self._eof and self._incoming is None:
            self._stopped = True
            self.transport.close()
        elif self._incoming is not None and self._incoming.expect:
            self._decide_continue(self._incoming)
        elif self._in_state == WAIT:
            self._idle()
