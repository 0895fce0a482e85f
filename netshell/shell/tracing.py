"""``trace()``: every event of a listener, a connection, a protocol class, or everything.

A Tracer is an observer of the core (:mod:`netshell.observe`), registered
while it follows something and removed when the last trace stops: nothing is
patched, and a reactor that is not traced pays nothing. Events are connect and
disconnect with addresses, bytes in and out (an escaped preview, or a
hexdump), and, when everything is traced, timed calls firing and Deferreds
being fired. Data is traced as the protocol sees it (plaintext on TLS).

Example::

    >>> import netshell as ns
    >>> from netshell.testing import loopback
    >>> lines = []
    >>> tracer = Tracer(lines.append, clock=lambda: "12:00:00.000")
    >>> tracer.start(None)
    >>> _ = ns.Deferred().callback(7)
    >>> tracer.stop()
    >>> lines
    ['12:00:00.000 Deferred #... fired: 7']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from netshell import Listener, StreamTransport, observe
from netshell.defer import CancelledError, Deferred
from netshell.errors import ConnectionDone
from netshell.failure import Failure
from netshell.interfaces import format_hostport
from netshell.reactor import DelayedCall
from netshell.shell.display import hexdump, preview, short_repr
from netshell.udp import DatagramListener, DatagramTransport

__all__ = ["Tracer"]


def _now() -> str:
    t = time.time()
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


class Tracer:
    """Prints trace lines through ``out`` for the targets it follows.

    A target is None (everything), a Listener or DatagramListener, a
    connection (StreamTransport), a protocol instance, or a protocol class.
    """

    def __init__(
        self,
        out: Callable[[str], None],
        payload: bool = True,
        hexdump: bool = False,
        clock: Callable[[], str] = _now,
    ) -> None:
        self.out = out
        self.payload = payload
        self.hexdump = hexdump
        self.clock = clock
        self.targets: list[Any] = []
        self._connections = _ConnectionEvents(self)
        self._everything = _EverythingEvents(self)

    # ---- what is followed

    @property
    def active(self) -> bool:
        return bool(self.targets)

    def start(self, target: Any = None, payload: bool | None = None, hexdump: bool | None = None
              ) -> None:
        _check_target(target)
        if payload is not None:
            self.payload = payload
        if hexdump is not None:
            self.hexdump = hexdump
        if target not in self.targets:
            self.targets.append(target)
        self._register()

    def stop(self, target: Any = None, everything: bool = True) -> None:
        """Stop following ``target``; with the defaults, stop following anything."""
        if everything and target is None:
            self.targets.clear()
        elif target in self.targets:
            self.targets.remove(target)
        self._register()

    def follows(self, t: Any) -> bool:
        """True if connection (or datagram transport) ``t`` is traced."""
        for target in self.targets:
            if target is None or target is t or target is t.protocol:
                return True
            if isinstance(target, (Listener, DatagramListener)) and t.listener is target:
                return True
            if isinstance(target, type) and isinstance(t.protocol, target):
                return True
        return False

    # ---- output

    def emit(self, text: str) -> None:
        self.out(f"{self.clock()} {text}")

    def data(self, t: Any, direction: str, data: bytes, addr: Any = None) -> None:
        where = f" {'to' if direction == 'out' else 'from'} {_addr(addr)}" if addr else ""
        head = f"#{t.number} {direction:<3} {len(data)} B{where}" if hasattr(t, "number") else (
            f"udp {t.host} {direction:<3} {len(data)} B{where}"
        )
        if not self.payload:
            self.emit(head)
        elif self.hexdump:
            self.emit(head + "\n" + hexdump(data))
        else:
            self.emit(f"{head}  {preview(data)}")

    # ---- the core's events (netshell.observe)

    def _register(self) -> None:
        """Observe connections while anything is followed, timers and Deferreds while
        everything is."""
        if self.targets:
            observe.add_observer(self._connections)
        else:
            observe.remove_observer(self._connections)
        if None in self.targets:
            observe.add_observer(self._everything)
        else:
            observe.remove_observer(self._everything)


class _ConnectionEvents(observe.Observer):
    """What a Tracer hears of connections and bytes."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def connection_made(self, t: StreamTransport) -> None:
        tracer = self.tracer
        if tracer.follows(t):
            side = "accepted" if t.listener is not None else "connected"
            tls = " (TLS)" if t.tls is not None else ""
            tracer.emit(
                f"#{t.number} {t.kind} {side}{tls}: {t.host} <-> {t.peer} "
                f"{type(t.protocol).__name__}"
            )

    def connection_lost(self, t: StreamTransport, reason: Failure) -> None:
        tracer = self.tracer
        if tracer.follows(t):
            cause = reason.value.__cause__
            if reason.check(ConnectionDone):
                how = "closed"
            elif cause is None:
                how = "aborted"
            else:
                how = f"lost: {short_repr(cause)}"
            tracer.emit(f"#{t.number} {how} ({t.bytes_received} B in, {t.bytes_sent} B out)")

    def data_in(self, t: Any, data: bytes, addr: Any) -> None:
        if self.tracer.follows(t):
            self.tracer.data(t, "in", data, addr)

    def data_out(self, t: Any, data: bytes, addr: Any) -> None:
        if self.tracer.follows(t):
            self.tracer.data(t, "out", data, addr)


class _EverythingEvents(observe.Observer):
    """What a Tracer that follows everything hears besides: timed calls, Deferreds fired."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def timed_call_run(self, call: DelayedCall) -> None:
        self.tracer.emit(f"timed call {_call_text(call)} fires")

    def deferred_fired(self, d: Deferred[Any], result: Any) -> None:
        if isinstance(result, Failure) and result.check(CancelledError):
            self.tracer.emit(f"Deferred #{d.number} cancelled")
            return
        shown = short_repr(result.value if isinstance(result, Failure) else result)
        verb = "failed" if isinstance(result, Failure) else "fired"
        self.tracer.emit(f"Deferred #{d.number} {verb}: {shown}")


def _call_text(call: DelayedCall) -> str:
    name = getattr(call.func, "__qualname__", None) or short_repr(call.func)
    args = ", ".join([*(short_repr(a) for a in call.args or ()),
                      *(f"{k}={short_repr(v)}" for k, v in (call.kw or {}).items())])
    return f"{name}({args})"


def _addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return format_hostport(addr[0], addr[1])
    return str(addr)


def _check_target(target: Any) -> None:
    if target is None or isinstance(
        target, (Listener, DatagramListener, StreamTransport, DatagramTransport, type)
    ):
        return
    if hasattr(target, "data_received") or hasattr(target, "datagram_received"):
        return  # a protocol instance
    raise TypeError(
        "trace() follows a listener, a connection, a protocol (instance or class) or, "
        f"with no argument, everything; not {type(target).__name__}"
    )
