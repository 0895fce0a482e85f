"""One HTTP/1.1 client connection: a Protocol that carries one exchange at a time.

:class:`Connection` writes a request (its head serialized by the caller, its body whole or
streamed, with back-pressure from the transport), feeds what comes back to a
:class:`~protocols.http.parser.ResponseParser`, skips interim (1xx) responses, hands the
final response's body piece by piece to a sink the caller chooses from its head, and fires
with (head, trailers) at its end. It knows whether it may be reused afterwards; the
keep-alive pool (:mod:`protocols.http.pool`) decides what to do with it.

A connection that fails before a byte of the response came fails with :class:`Stale`, so
that the client may retry an idempotent request on a fresh one; the other failures are the
client's errors (:mod:`protocols.http.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import netshell as ns
from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from protocols.http.errors import HTTPClientError, RemoteProtocolError, ServerDisconnected
from protocols.http.framing import BodyFramer
from protocols.http.message import Headers, Limits, ParseError
from protocols.http.parser import Body, EndOfMessage, ResponseHead, ResponseParser

__all__ = ["Connection", "PoolKey", "Stale"]


class Stale(Exception):
    """A connection failed before a byte of the response came: maybe safe to retry."""


# Connections are pooled by origin and by the TLS context they were verified with: a
# connection made with one context is never lent to a request that asked for another.
PoolKey = tuple[str, str, int, Any]


class Connection(ns.Protocol):
    """One HTTP/1.1 connection: one exchange (request, response) at a time."""

    #: What ``conns()`` at the prompt calls it (the class is the client's private part).
    display_name = "http client"

    def __init__(self, key: PoolKey, limits: Limits) -> None:
        self.key = key
        self.parser = ResponseParser(limits)
        self.closed: Deferred[None] = Deferred()  # fires when the connection is gone
        self.lost = False
        self.exchanges = 0  # how many requests this connection has carried
        self.on_lost: Callable[[Connection], None] | None = None  # the pool's hook
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
                    exc: BaseException = Stale(reason.value)
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
        # framing.py frames each piece: chunked, or as it is up to the declared length.
        framer = BodyFramer(length is None, length)
        for piece in pieces:
            if self.lost or self._done is None:
                return
            if not isinstance(piece, (bytes, bytearray, memoryview)):
                raise TypeError(f"a streamed body yields bytes, not {type(piece).__name__}")
            if piece:
                try:
                    data: bytes | None = framer.piece(bytes(piece))
                except ValueError:
                    data = None
                if data is None:
                    # Not a byte past the length: the server would read it as a request.
                    raise HTTPClientError(
                        f"the streamed body yields more than its Content-Length of {length} bytes"
                    )
                self.transport.write(data)
            if self._write_paused:
                self._drained = Deferred()
                await self._drained
        if length is None:
            if not self.lost:
                self.transport.write(framer.end())
        elif framer.short() and not self.lost and self._done is not None:
            raise HTTPClientError(
                f"the streamed body yields only {framer.sent} bytes, not its Content-Length "
                f"of {length}"
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
