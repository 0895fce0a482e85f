"""The client's keep-alive pool: idle connections kept per origin, and a bound on how many.

:class:`Pool` holds the idle :class:`~protocols.http.connection.Connection` objects per
key (scheme, host, port and TLS context), hands out the most recently used one, closes one
left idle for ``idle_timeout`` seconds, and keeps at most ``limit`` connections per key,
open or opening, busy or idle: a request beyond the bound waits its turn, in order.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from netshell.defer import Deferred
from netshell.reactor import Reactor
from protocols.http.connection import Connection, PoolKey

__all__ = ["Pool"]


class Pool:
    """Keep-alive connections per (scheme, host, port), at most ``limit`` of them per key."""

    def __init__(self, reactor: Reactor, limit: int, idle_timeout: float) -> None:
        self.reactor = reactor
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.idle: dict[PoolKey, list[Connection]] = {}
        self.count: dict[PoolKey, int] = {}  # open or opening, busy or idle
        self.waiting: dict[PoolKey, deque[Deferred[None]]] = {}
        self._timers: dict[Connection, Any] = {}

    def take_idle(self, key: PoolKey) -> Connection | None:
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

    async def acquire(self, key: PoolKey, fresh: bool = False) -> Connection | None:
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

    def release(self, conn: Connection) -> None:
        """The exchange on ``conn`` is over: keep it for reuse if it can be, else close it."""
        if not conn.reusable or conn.lost:
            self._discard(conn)
            return
        self.idle.setdefault(conn.key, []).append(conn)
        self._timers[conn] = self.reactor.call_later(self.idle_timeout, self._expire, conn)
        self._wake(conn.key)

    def _expire(self, conn: Connection) -> None:
        self._timers.pop(conn, None)
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._discard(conn)

    def _discard(self, conn: Connection) -> None:
        if conn.on_lost is None:
            return  # counted out already
        conn.on_lost = None
        if not conn.lost and conn.transport is not None:
            conn.transport.close()
        self._gone(conn.key)

    def lost(self, conn: Connection) -> None:
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

    def connections(self) -> list[Connection]:
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
