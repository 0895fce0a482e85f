"""The deadlines of one server connection: header, body, keep-alive, linger and send timeouts.

What the incoming side of a connection is doing decides how long the client may take:

- ``WAIT`` for a request: ``header_timeout`` on a fresh connection, then
  ``keep_alive_timeout`` idle between answers; the connection is closed when it runs out;
- ``HEAD``: a request head has begun and must be complete within ``header_timeout``;
- ``BODY``: each read of a request body must come within ``body_timeout`` of the last
  (both answered 408, then the connection closes);
- ``LINGER``: after a last answer sent while the client may still be sending, its input
  is read and dropped for ``linger_timeout`` before the connection is aborted.

And on the outgoing side: a client that does not read its answers (the transport asked
the server to stop writing) is dropped after ``send_timeout``. While the server itself is
the one keeping a client waiting (answering, or reading paused), no timeout runs.

:class:`ConnectionDeadlines` is mixed into the server protocol: one timer per
connection, moved only when it would fire too late (a deadline that moves later is
looked at again when the early timer fires), so the hot path only sets ``_since``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from protocols.http.message import HTTPError

__all__ = ["BODY", "HEAD", "LINGER", "WAIT", "ConnectionDeadlines"]

log = logging.getLogger("netshell.http")

# What the incoming side of a connection is doing, for its timeouts.
WAIT, HEAD, BODY, LINGER = range(4)


class ConnectionDeadlines:
    """The timeouts of one connection, mixed into its protocol.

    The protocol sets ``_in_state`` and ``_since`` as requests come in and calls
    :meth:`_arm` with a new deadline; when the timer fires, :meth:`_deadline` works out
    which deadline holds now from the connection's state, and :meth:`_on_timer` acts on
    it if it has passed (408 through ``_on_fatal``, or closing, or aborting).
    """

    # Provided by the protocol this is mixed into.
    factory: Any
    transport: Any
    _loop_time: Callable[[], float]
    _lost: bool
    _stopped: bool
    _read_paused: bool
    _current: Any
    _queue: Any
    _peer_host: str

    def _on_fatal(self, error: HTTPError) -> None:
        raise NotImplementedError

    def _init_deadlines(self, header_timeout: float) -> None:
        self._in_state = WAIT
        self._since = 0.0  # when the incoming state began (or last progressed)
        self._wait_limit = header_timeout  # a fresh connection must send a head
        self._timer: Any = None
        self._timer_at = 0.0
        self._paused_at: float | None = None  # when the transport last asked us to stop writing

    def _arm(self, deadline: float, force: bool = False) -> None:
        timer = self._timer
        if timer is not None:
            if self._timer_at <= deadline and not force:
                return  # it fires earlier and will look again then
            timer.cancel()
        self._timer_at = deadline
        self._timer = self.factory.reactor.call_later(
            max(0.0, deadline - self._loop_time()), self._on_timer
        )

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _sending_stalled(self) -> None:
        """The transport asked us to stop writing: the client has ``send_timeout`` to read."""
        # A client that stops reading its answers holds the connection (and the file or
        # stream being sent) for as long as it likes, unless this runs out.
        self._paused_at = self._loop_time()
        self._arm(self._paused_at + self.factory.send_timeout)

    def _reading_resumed(self) -> None:
        """We paused reading and read again: a head or body under way gets its full time."""
        if self._in_state in (HEAD, BODY):
            # The wait was ours, not the client's: its timeout starts again.
            self._since = self._loop_time()
            limit = self.factory.header_timeout if self._in_state == HEAD else (
                self.factory.body_timeout)
            self._arm(self._since + limit)

    def _idle(self) -> None:
        """All answered and nothing coming in: the keep-alive timeout runs from now."""
        now = self._loop_time()
        self._since = now
        limit = self._wait_limit = self.factory.keep_alive_timeout
        if self._timer is None or self._timer_at > now + limit:
            self._arm(now + limit)

    def _deadline(self) -> float | None:
        if self._paused_at is not None:
            return self._paused_at + self.factory.send_timeout
        state = self._in_state
        factory = self.factory
        if self._read_paused and state in (HEAD, BODY):
            return None  # we stopped reading: the client is not the one keeping us waiting
        if state == HEAD:
            return self._since + factory.header_timeout
        if state == BODY:
            return self._since + factory.body_timeout
        if state == LINGER:
            return self._since + factory.linger_timeout
        if self._current is None and not self._queue and not self._stopped:
            return self._since + self._wait_limit
        return None  # answering: the client is not the one keeping us waiting

    def _on_timer(self) -> None:
        self._timer = None
        if self._lost:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if self._loop_time() + 0.001 < deadline:
            self._arm(deadline)
            return
        state = self._in_state
        if self._paused_at is not None:
            log.info("%s: not reading its answer for %ss; dropping the connection",
                     self._peer_host, self.factory.send_timeout)
            self.transport.abort()
        elif state == LINGER:
            self.transport.abort()
        elif state in (HEAD, BODY):
            what = "head" if state == HEAD else "body"
            log.info("%s: timed out reading a request %s", self._peer_host, what)
            self._in_state = WAIT
            self._on_fatal(HTTPError(408, f"the request {what} did not arrive in time"))
        else:
            self._stopped = True
            self.transport.close()  # idle

    def _linger(self) -> None:
        """Close after an answer sent while the client may still be sending.

        Closing a socket with unread input makes the kernel send a reset, which can
        destroy the answer before the client reads it: end our side instead, and read and
        drop what comes until the client closes or ``linger_timeout`` passes.
        """
        self._in_state = LINGER
        self._since = self._loop_time()
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        try:
            self.transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            self.transport.close()
            return
        self._arm(self._since + self.factory.linger_timeout, force=True)
