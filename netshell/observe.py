"""Observers: what traces, the prompt's notes, captures and notebook displays watch in the core.

The core calls the observers registered here at the few points worth
watching: a connection made or lost, bytes crossing the protocol boundary, a
timed call running, a Deferred's chain growing, running, firing and settling.
Nothing in the core is patched for it, and with no observer registered each
point costs one test of an empty tuple. Like trio's instruments, an observer
is any object with some of the methods of :class:`Observer` (subclassing it is
optional); only the events it has a method for are sent to it.

The events, with the arguments each method gets:

``connection_made(transport)``
    A stream connection (TCP, Unix, TLS) has its protocol, just before the
    protocol's ``connection_made`` runs. On a TLS listener or ``connect_tls``
    that is after the handshake.
``connection_lost(transport, reason)``
    A connection that had a protocol is gone; ``reason`` is the Failure the
    protocol's ``connection_lost`` got (``ConnectionDone`` for a clean close,
    ``ConnectionLost`` otherwise), called after that method ran.
``data_in(transport, data, addr)``
    Bytes handed to the protocol: plaintext on TLS, as the protocol sees
    them. ``addr`` is the sender for a datagram, None on a stream.
``data_out(transport, data, addr)``
    Bytes the protocol wrote (plaintext, before TLS); ``addr`` is the
    destination for a datagram, None on a stream.
``timed_call_run(call)``
    A :class:`~netshell.reactor.DelayedCall` is about to run.
``deferred_step_added(d, step, callback, errback)``
    A callback/errback pair was added to ``d``'s chain (``None`` for a side
    that lets the result pass). ``step`` identifies the step in
    ``deferred_step_ran``: compare it with ``is`` (or key a dict of ``d``'s
    pending steps by ``id(step)``) and do not keep it, as it holds the callables.
``deferred_step_ran(d, step, fn, got, result, raised)``
    One function of the chain ran: ``fn`` (the callback or errback of
    ``step``) got ``got`` and gave ``result`` (a value, a Failure, or a
    Deferred the chain now waits on); ``raised`` is True when it raised (the
    Failure then holds that exception). A step whose side for the result is
    ``None`` is passed by, with no event.
``deferred_fired(d, result)``
    ``d.callback(result)`` or ``d.errback(...)`` (``result`` is then a
    Failure) was called; its chain runs next.
``deferred_settled(d, result)``
    ``d``'s chain ran out of steps with ``result`` (a value or Failure), or
    handed it on to the Deferred that waits on ``d``. It comes again when
    steps added later have run.

Events arrive on the thread where they happen (the loop's, except for a
Deferred fired in another thread). An observer that raises is logged, with
its traceback, and removed: a broken trace must not break the connections it
watches.

Example::

    >>> import netshell as ns
    >>> from netshell import observe
    >>> class Fired(observe.Observer):
    ...     def deferred_fired(self, d, result):
    ...         print(f"#{d.number} fired with {result!r}")
    >>> o = Fired()
    >>> observe.add_observer(o)
    >>> ns.Deferred().callback(42)  # doctest: +ELLIPSIS
    #... fired with 42
    >>> observe.remove_observer(o)
    >>> observe.observers()
    ()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = [
    "EVENTS",
    "Observer",
    "add_observer",
    "notify",
    "observers",
    "remove_observer",
]

log = logging.getLogger("netshell.observe")


class Observer:
    """A base for observers: every event method does nothing.

    Override the events you want; an observer that does not subclass this
    works as well. Methods left as they are here are not called at all.
    """

    def connection_made(self, transport: Any) -> None:
        """A stream connection has its protocol (see the module's description)."""

    def connection_lost(self, transport: Any, reason: Any) -> None:
        """A connection that had a protocol is gone, for ``reason`` (a Failure)."""

    def data_in(self, transport: Any, data: bytes, addr: Any) -> None:
        """``data`` was handed to the protocol (plaintext); ``addr`` for datagrams."""

    def data_out(self, transport: Any, data: bytes, addr: Any) -> None:
        """The protocol wrote ``data`` (plaintext); ``addr`` for datagrams."""

    def timed_call_run(self, call: Any) -> None:
        """The timed call ``call`` is about to run."""

    def deferred_step_added(self, d: Any, step: Any, callback: Any, errback: Any) -> None:
        """A callback/errback pair was added to ``d``'s chain."""

    def deferred_step_ran(
        self, d: Any, step: Any, fn: Any, got: Any, result: Any, raised: bool
    ) -> None:
        """``fn`` of ``step`` ran with ``got`` and gave (or raised into) ``result``."""

    def deferred_fired(self, d: Any, result: Any) -> None:
        """``d`` was fired with ``result`` (a value, or a Failure)."""

    def deferred_settled(self, d: Any, result: Any) -> None:
        """``d``'s chain ran out of steps with ``result`` (or handed it on)."""


#: The names of the events, in the order the module's description gives them.
EVENTS = (
    "connection_made",
    "connection_lost",
    "data_in",
    "data_out",
    "timed_call_run",
    "deferred_step_added",
    "deferred_step_ran",
    "deferred_fired",
    "deferred_settled",
)

_DEFERRED_EVENTS = tuple(name for name in EVENTS if name.startswith("deferred_"))

# For each event, the observers that take it: what the core tests before it calls
# notify(). Rebuilt on every change; read, never mutated, by the core.
connection_made: tuple[Any, ...] = ()
connection_lost: tuple[Any, ...] = ()
data_in: tuple[Any, ...] = ()
data_out: tuple[Any, ...] = ()
timed_call_run: tuple[Any, ...] = ()
deferred_step_added: tuple[Any, ...] = ()
deferred_step_ran: tuple[Any, ...] = ()
deferred_fired: tuple[Any, ...] = ()
deferred_settled: tuple[Any, ...] = ()
#: The observers that take any Deferred event: the one test a Deferred makes per run.
deferreds: tuple[Any, ...] = ()

_registered: list[Any] = []
_on_change: list[Callable[[], None]] = []


def _takes(observer: Any, event: str) -> bool:
    method = getattr(type(observer), event, None)
    if method is None:
        return callable(getattr(observer, event, None))  # set on the instance
    return callable(method) and method is not getattr(Observer, event)


def _rebuild() -> None:
    table = globals()
    for event in EVENTS:
        table[event] = tuple(o for o in _registered if _takes(o, event))
    table["deferreds"] = tuple(
        o for o in _registered if any(_takes(o, e) for e in _DEFERRED_EVENTS)
    )
    for fn in _on_change:
        fn()


def on_change(fn: Callable[[], None]) -> None:
    """Call ``fn()`` after every change of the observers registered (and once now).

    For a core module that mirrors one of the tuples above in a global of its own, so
    its hottest path tests one name (:mod:`netshell.defer` does, for Deferreds).
    """
    _on_change.append(fn)
    fn()


def add_observer(observer: Any) -> None:
    """Start sending ``observer`` the events it has methods for (once, if added twice).

    Raises TypeError if it has a method for none of them.
    """
    if not any(_takes(observer, e) for e in EVENTS):
        raise TypeError(
            f"{type(observer).__name__} observes nothing: give it one of the methods "
            f"{', '.join(EVENTS)}"
        )
    if any(o is observer for o in _registered):
        return
    _registered.append(observer)
    _rebuild()


def remove_observer(observer: Any) -> None:
    """Stop sending events to ``observer``; nothing happens if it was not added."""
    for i, o in enumerate(_registered):
        if o is observer:
            del _registered[i]
            _rebuild()
            return


def observers() -> tuple[Any, ...]:
    """The observers registered now, in the order they were added."""
    return tuple(_registered)


def notify(event: str, *args: Any) -> None:
    """Send ``event`` with ``args`` to each observer that takes it (the core calls this).

    An observer that raises is logged and removed; the others still get the event.
    """
    for o in globals()[event]:
        try:
            getattr(o, event)(*args)
        except Exception:
            log.exception("Error in observer %r (%s); it is removed", o, event)
            remove_observer(o)
