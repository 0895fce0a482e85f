"""The current loop's reactor: the lookup every layer of the core uses, depending on none.

``get_reactor()`` answers "which reactor is mine?": the reactor of the running
loop, or else the one installed for this thread. Deferreds, protocols,
threads, the database pool and endpoints ask it at the moment they need a
reactor, so this module sits at the bottom of the core and imports nothing of
netshell: the :class:`~netshell.reactor.Reactor` facade, on top, registers
itself here (:func:`set_reactor_type`) when ``netshell.reactor`` is imported,
which ``import netshell`` always does. ``netshell.reactor.get_reactor`` and
``netshell.get_reactor`` are this same function.

The registry: a loop's reactor hangs off the loop itself, so the two live and
die together (a registry keyed by loop would keep every loop it ever saw
alive); this thread's reactor is kept in a thread-local. A worker of a
reactor's thread pool has that reactor installed. Code can also carry a loop
along in its context (:func:`carry_loop`: a Jupyter kernel does, for each cell):
a thread that runs in a copy of that context, with no reactor of its own, finds
that loop's reactor, so ``reactor.call_from_thread`` from it reaches the loop
that runs rather than a fresh one nobody runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from netshell.reactor import Reactor

__all__ = ["carry_loop", "get_reactor", "install", "set_reactor_type"]

_ATTR = "_netshell_reactor"
_local = threading.local()
_last: weakref.ref[Any] | None = None  # the reactor found last: most lookups repeat
_get_running_loop = asyncio._get_running_loop
# The loop the code of this context belongs to, where a thread has no reactor of its own.
_carried: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "netshell_loop", default=None)
# What get_reactor() calls to make a reactor: Reactor(loop), or Reactor() for a fresh loop.
_make: Callable[[asyncio.AbstractEventLoop | None], Any] | None = None


def set_reactor_type(make: Callable[[asyncio.AbstractEventLoop | None], Any]) -> None:
    """Tell :func:`get_reactor` how to make a reactor: ``make(loop)``, or ``make(None)``.

    ``netshell.reactor`` registers its Reactor here when it is imported.
    """
    global _make
    _make = make


def _new(loop: asyncio.AbstractEventLoop | None) -> Reactor:
    if _make is None:
        raise RuntimeError("no reactor type is registered: import netshell (or netshell.reactor)")
    return cast("Reactor", _make(loop))


def reactor_of(loop: asyncio.AbstractEventLoop) -> Reactor | None:
    """The reactor attached to ``loop``, closed or not, or None."""
    return getattr(loop, _ATTR, None)


def attach(loop: asyncio.AbstractEventLoop, r: Reactor) -> None:
    """Record ``r`` as ``loop``'s reactor (the Reactor does so when it is made)."""
    setattr(loop, _ATTR, r)


def install(r: Reactor) -> None:
    """Make ``r`` this thread's reactor (what ``netshell.reactor`` means outside a running loop)."""
    _local.reactor = r


def carry_loop(loop: asyncio.AbstractEventLoop | None) -> contextvars.Token[Any]:
    """Make ``loop`` the loop of the code running in the current context, and of
    everything that runs in a copy of it (tasks, timed calls, threads started with
    the context); return the token that ``ContextVar.reset`` takes.

    In a thread with no running loop and no reactor installed, :func:`get_reactor`
    then gives ``loop``'s reactor instead of making one on a fresh loop.
    """
    return _carried.set(loop)


def forget(r: Reactor) -> None:
    """Forget ``r`` everywhere it is recorded: its loop, this thread, the last lookup."""
    global _last
    if getattr(r.loop, _ATTR, None) is r:
        delattr(r.loop, _ATTR)
    if getattr(_local, "reactor", None) is r:
        _local.reactor = None
    if _last is not None and _last() is r:
        _last = None


def get_reactor() -> Reactor:
    """The reactor of the current loop: the running one, or the one installed for this thread.

    Inside a running loop that has none yet, a reactor adopts it. With no
    loop running: the reactor installed for this thread (a thread pool's worker
    has its reactor's); else the reactor of the loop the context carries (see
    :func:`carry_loop`); else this thread's reactor is made, on first use and
    again after the previous one stopped: on the loop set for the thread with
    ``asyncio.set_event_loop()`` if there is one, else on a fresh loop.
    """
    global _last
    loop = _get_running_loop()
    if loop is not None:
        if _last is not None:
            r = _last()
            if r is not None and r.loop is loop and not r.closed:
                return cast("Reactor", r)
        r = getattr(loop, _ATTR, None)
        if r is None or r.closed:
            r = _new(loop)
        _last = weakref.ref(r)
        return cast("Reactor", r)
    r = getattr(_local, "reactor", None)
    if r is None or r.closed:
        loop = _carried.get()
        if loop is not None and not loop.is_closed():
            # Not installed for the thread: the thread may run work of other contexts.
            r = getattr(loop, _ATTR, None)
            if r is None or r.closed:
                r = _new(loop)
            return cast("Reactor", r)
        loop = _thread_loop()
        if loop is not None:
            # A loop set for this thread with asyncio.set_event_loop() is the one the
            # code around us will run: a reactor on a fresh loop would never be run.
            r = getattr(loop, _ATTR, None)
            if r is None or r.closed:
                r = _new(loop)
        else:
            r = _new(None)
        _local.reactor = r
    return cast("Reactor", r)


def _thread_loop() -> asyncio.AbstractEventLoop | None:
    """The loop set for this thread with ``asyncio.set_event_loop``, if any (never makes one).

    ``asyncio.get_event_loop()`` would create a loop where none is set (and warns or
    raises in newer Pythons), so the default policy's record is read directly.
    """
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed():
        return loop
    return None
