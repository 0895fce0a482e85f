"""Streaming one response body to a transport: iterables, async iterables and files.

A :class:`BodyStreamer` sends what :func:`protocols.http.framing.frame_response` left
to stream after the head: a synchronous iterable is pumped while the transport takes it
(a burst of pieces per turn of the loop, then the loop breathes), an async iterable is
awaited piece by piece and waits for the transport to drain when it is full, and a
:class:`~protocols.http.static.FileBody` goes with the transport's ``send_file``.
Each piece is framed by a :class:`~protocols.http.framing.BodyFramer`. The streamer
owns no connection state: the server tells it when writing pauses and resumes and when
the connection is lost, and it calls back once the body is sent. A body that fails
(raises, is not bytes, is shorter or longer than its Content-Length) is logged and the
connection aborted, since its framing can no longer be kept.

:func:`close_body` releases a body that will not be sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from protocols.http.framing import BodyFramer
from protocols.http.message import Request
from protocols.http.static import FileBody

__all__ = ["BodyStreamer", "close_body"]

log = logging.getLogger("netshell.http")

_STREAM_BURST = 64  # pieces of a synchronous iterable written per turn of the loop


def close_body(body: Any) -> None:
    """Release a body that will not be sent (a file, a generator)."""
    if isinstance(body, FileBody):
        body.close()
        return
    close = getattr(body, "close", None)
    if close is not None and not isinstance(body, bytes | bytearray | memoryview | str):
        try:
            close()
        except Exception:
            log.exception("Error closing the response body %r", body)
        return
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        ensure_deferred(aclose()).add_errback(
            lambda f: log.error("Error closing the response body %r: %s", body, f.value)
        )


class BodyStreamer:
    """Sends one streamed body of the answer to ``request``; ``on_done(sent, was_file)``
    is called once it is all written (not if it fails or the connection is lost).

    ``paused`` mirrors the transport's back-pressure (set it with :meth:`pause`, clear it
    with :meth:`resume`); :meth:`stop` is for a lost connection. Sending a file takes the
    transport's producer slot: the owner registers itself again in ``on_done``.
    """

    __slots__ = (
        "transport", "reactor", "request", "peer", "on_done", "paused", "stopped",
        "_stream", "_framer", "_writable",
    )

    def __init__(
        self,
        transport: Any,
        reactor: Any,
        request: Request,
        peer: str,
        on_done: Callable[[int, bool], None],
        paused: bool = False,
    ) -> None:
        self.transport = transport
        self.reactor = reactor
        self.request = request
        self.peer = peer
        self.on_done = on_done
        self.paused = paused
        self.stopped = False
        self._stream: Any = None  # an iterator, or the Deferred of an async pump
        self._framer: BodyFramer | None = None
        self._writable: Deferred[None] | None = None

    def start(self, body: Any, framer: BodyFramer | None) -> None:
        """Send ``body`` as :func:`~protocols.http.framing.frame_response` left it: a
        FileBody when ``framer`` is None (:meth:`send_file`), else an iterable or async
        iterable whose pieces ``framer`` frames (:meth:`send`)."""
        if framer is None:
            self.send_file(body)
        else:
            self.send(body, framer)

    # ---- files

    def send_file(self, body: FileBody) -> None:
        transport = self.transport
        # send_file registers its own producer when it cannot use sendfile(2).
        transport.unregister_producer()
        d = transport.send_file(body.file, body.offset, body.count)
        d.add_callbacks(self._file_sent, self._file_failed, (body,), None, (body,))

    def _file_sent(self, sent: int, body: FileBody) -> None:
        body.close()
        if self.stopped:
            return
        self.on_done(sent, True)

    def _file_failed(self, failure: Failure, body: FileBody) -> None:
        body.close()
        if not self.stopped:
            log.info("sending %r to %s failed: %s", body, self.peer, failure.value)
            self.transport.abort()

    # ---- iterables

    def send(self, body: Any, framer: BodyFramer) -> None:
        self._framer = framer
        if hasattr(body, "__aiter__"):
            d = ensure_deferred(self._pump_async(body))
            self._stream = d
            d.add_callbacks(self._stream_done, self._stream_failed)
            return
        try:
            self._stream = iter(body)
        except TypeError as e:
            self._stream = None
            log.error("a response body must be bytes or an iterable of bytes: %s", e)
            self.transport.abort()
            return
        self._pump()

    def _write_piece(self, piece: Any) -> None:
        framer = self._framer
        assert framer is not None
        data = framer.piece(piece)
        if data:
            self.transport.write(data)

    def _pump(self) -> None:
        """Write pieces of a synchronous iterable while the transport takes them."""
        it = self._stream
        burst = _STREAM_BURST
        while not self.paused and it is self._stream and it is not None:
            if not burst:
                self.reactor.call_soon(self._pump)  # let the loop breathe
                return
            burst -= 1
            try:
                piece = next(it)
                self._write_piece(piece)
            except StopIteration:
                self._stream_done(None)
                return
            except Exception:
                self._stream_failed(Failure())
                return

    async def _pump_async(self, body: Any) -> None:
        async for piece in body:
            if self.stopped:
                break
            self._write_piece(piece)
            if self.paused:
                self._writable = Deferred()
                await self._writable

    def _stream_done(self, _: Any) -> None:
        stream, self._stream = self._stream, None
        framer = self._framer
        self._framer = None
        if self.stopped or framer is None:
            return
        if not isinstance(stream, Deferred):
            close_body(stream)
        if framer.short():
            log.error(
                "the streamed body of %s %s ended after %d of its %d bytes; connection aborted",
                self.request.method,
                self.request.target,
                framer.sent,
                framer.length,
            )
            self.transport.abort()
            return
        end = framer.end()
        if end:
            self.transport.write(end)
        self.on_done(framer.sent, False)

    def _stream_failed(self, failure: Failure) -> None:
        stream, self._stream = self._stream, None
        framer = self._framer
        self._framer = None
        if stream is not None and not isinstance(stream, Deferred):
            close_body(stream)
        if self.stopped or framer is None:
            return
        log.error(
            "Error while streaming the body of %s %s to %s; connection aborted:\n%s",
            self.request.method,
            self.request.target,
            self.peer,
            failure.get_traceback(),
        )
        self.transport.abort()

    # ---- what the owner tells it

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """The transport takes more: go on writing."""
        self.paused = False
        stream = self._stream
        if stream is None:
            return
        if isinstance(stream, Deferred):
            writable, self._writable = self._writable, None
            if writable is not None and not writable.called:
                writable.callback(None)
        else:
            self._pump()

    def stop(self) -> None:
        """The connection is lost: release the body, write nothing more."""
        self.stopped = True
        stream, self._stream = self._stream, None
        if isinstance(stream, Deferred):
            stream.cancel()
        elif stream is not None:
            close_body(stream)
        writable, self._writable = self._writable, None
        if writable is not None and not writable.called:
            writable.cancel()
