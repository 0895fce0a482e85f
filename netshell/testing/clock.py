"""Clock: virtual time for tests, so nothing waits on a real sleep.

It offers the reactor's ``call_later`` / ``call_soon`` / ``seconds`` and
hands out the same :class:`~netshell.DelayedCall` objects, but time only moves
when the test calls :meth:`Clock.advance` or :meth:`Clock.pump`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from netshell.reactor import DelayedCall

__all__ = ["Clock"]


class Clock:
    """A scheduler whose time moves only when told to.

    Example::

        >>> from netshell.testing import Clock
        >>> clock = Clock()
        >>> seen = []
        >>> _ = clock.call_later(2, seen.append, "two")
        >>> clock.advance(1); seen
        []
        >>> clock.advance(1); seen
        ['two']
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        # (time, order, call): calls due at the same time run in the order made
        self._calls: list[tuple[float, int, DelayedCall]] = []
        self._order = itertools.count()

    def seconds(self) -> float:
        """The virtual time now."""
        return self.now

    def call_later(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Schedule ``f(*args, **kw)`` ``delay`` virtual seconds from now."""
        call = DelayedCall(self, self.now + delay, f, args, kw)
        self._schedule(call)
        return call

    def call_soon(self, f: Callable[..., Any], *args: Any) -> DelayedCall:
        """Schedule ``f(*args)`` for the next :meth:`advance` (even ``advance(0)``)."""
        return self.call_later(0, f, *args)

    def _schedule(self, call: DelayedCall) -> None:
        entry = (call.time, next(self._order), call)
        call._handle = entry
        bisect.insort(self._calls, entry, key=lambda e: (e[0], e[1]))

    def _unschedule(self, call: DelayedCall) -> None:
        entry = call._handle
        call._handle = None
        if entry is not None:
            try:
                self._calls.remove(entry)
            except ValueError:
                pass

    @property
    def calls(self) -> list[DelayedCall]:
        """The calls still to run, soonest first."""
        return [e[2] for e in self._calls]

    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` and run every call that became due, in order.

        Calls scheduled by those calls run too, if due by the new time.
        Raises ValueError for a negative amount.
        """
        if amount < 0:
            raise ValueError("time cannot go backwards")
        target = self.now + amount
        while self._calls and self._calls[0][0] <= target:
            when, _, call = self._calls[0]
            self.now = max(self.now, when)
            call.context.run(call._run)  # in its maker's context, as on the reactor
        self.now = target

    def pump(self, timings: Iterable[float]) -> None:
        """Advance by each amount in turn, e.g. ``clock.pump([1] * 10)``."""
        for amount in timings:
            self.advance(amount)

    def __repr__(self) -> str:
        return f"<Clock at {self.now}s, {len(self._calls)} calls pending>"
