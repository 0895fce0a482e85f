"""``trace()``: every event of a listener, a connection, a protocol class, or everything.

Tracing patches the transport classes while it is on and puts them back when
the last trace stops, so a reactor that is not traced pays nothing. Events
are connect and disconnect with addresses, bytes in and out (an escaped
preview, or a hexdump), and, when everything is traced, timed calls firing and
Deferreds being fired. Data is traced as the protocol sees it (plaintext on
TLS).

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

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

from netshell.defer import Deferred
from netshell.failure import Failure
from netshell.reactor import DelayedCall, get_reactor
from netshell.shell.display import hexdump, preview, short_repr
from netshell.transport import Listener, StreamTransport
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
        self._saved: dict[tuple[type, str], Any] = {}

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
        self._patch()
        self._sync_datagrams()

    def stop(self, target: Any = None, everything: bool = True) -> None:
        """Stop following ``target``; with the defaults, stop following anything."""
        if everything and target is None:
            self.targets.clear()
        elif target in self.targets:
            self.targets.remove(target)
        if not self.targets:
            self._unpatch()
        self._sync_datagrams()

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

    # ---- patching

    def _sync_datagrams(self) -> None:
        """Wrap the protocol of each traced UDP socket (its reads bypass any class method)."""
        try:
            listeners = get_reactor().listeners
        except Exception:
            return
        tracer = self
        for listener in listeners:
            if not isinstance(listener, DatagramListener):
                continue
            t, protocol = listener.transport, listener.protocol
            wrapped = "datagram_received" in getattr(protocol, "__dict__", {})
            if self.targets and self.follows(t) and not wrapped:
                original = protocol.datagram_received

                def datagram_received(data: bytes, addr: Any, _t: Any = t,
                                      _orig: Any = original) -> None:
                    tracer.data(_t, "in", data, addr)
                    _orig(data, addr)

                try:
                    protocol.datagram_received = datagram_received  # type: ignore[method-assign]
                except AttributeError:  # a protocol with __slots__: writes are still traced
                    pass
            elif wrapped and not (self.targets and self.follows(t)):
                del protocol.datagram_received

    def _patch(self) -> None:
        if self._saved:
            return
        tracer = self
        st = StreamTransport

        def attach(orig: Any) -> Any:
            @functools.wraps(orig)
            def _attach_protocol(self: StreamTransport) -> None:
                orig(self)
                if self.protocol is not None and tracer.follows(self):
                    side = "accepted" if self.listener is not None else "connected"
                    tls = " (TLS)" if self.tls is not None else ""
                    tracer.emit(
                        f"#{self.number} {self.kind} {side}{tls}: {self.host} <-> {self.peer} "
                        f"{type(self.protocol).__name__}"
                    )
            return _attach_protocol

        def lost(orig: Any) -> Any:
            @functools.wraps(orig)
            def connection_lost(self: StreamTransport, exc: BaseException | None) -> None:
                follow = self.protocol is not None and tracer.follows(self)
                orig(self, exc)
                if follow:
                    how = "closed" if exc is None and not self._aborted else (
                        f"lost: {short_repr(exc)}" if exc is not None else "aborted"
                    )
                    tracer.emit(
                        f"#{self.number} {how} ({self.bytes_received} B in, "
                        f"{self.bytes_sent} B out)"
                    )
            return connection_lost

        def received(orig: Any) -> Any:
            @functools.wraps(orig)
            def data_received(self: StreamTransport, data: bytes) -> None:
                # Data that arrives while reading is paused is held, and comes through here
                # again when released: trace it then, once, as the protocol gets it.
                if (self._tls is None and not self._read_paused and self.protocol is not None
                        and tracer.follows(self)):
                    tracer.data(self, "in", data)
                orig(self, data)
            return data_received

        def deliver_tls(orig: Any) -> Any:
            @functools.wraps(orig)
            def _deliver_tls(self: StreamTransport, chunks: list[bytes]) -> None:
                if chunks and tracer.follows(self):
                    tracer.data(self, "in", b"".join(chunks))
                orig(self, chunks)
            return _deliver_tls

        def write(orig: Any) -> Any:
            @functools.wraps(orig)
            def write(self: StreamTransport, data: bytes) -> None:
                orig(self, data)
                if tracer.follows(self):
                    tracer.data(self, "out", data)
            return write

        def write_sequence(orig: Any) -> Any:
            @functools.wraps(orig)
            def write_sequence(self: StreamTransport, chunks: Iterable[bytes]) -> None:
                chunks = list(chunks)
                orig(self, chunks)
                if tracer.follows(self):
                    tracer.data(self, "out", b"".join(chunks))
            return write_sequence

        def datagram_out(orig: Any) -> Any:
            @functools.wraps(orig)
            def write(self: DatagramTransport, data: bytes, addr: Any = None) -> None:
                orig(self, data, addr)
                if tracer.follows(self):
                    tracer.data(self, "out", data, addr or self.peer)
            return write

        def reading(orig: Any) -> Any:
            @functools.wraps(orig)
            def _start_reading(self: DatagramTransport) -> None:
                orig(self)
                tracer._sync_datagrams()  # a UDP socket bound while tracing is on
            return _start_reading

        def timed(orig: Any) -> Any:
            @functools.wraps(orig)
            def _run(self: DelayedCall) -> None:
                if self.active() and None in tracer.targets:
                    tracer.emit(f"timed call {_call_text(self)} fires")
                orig(self)
            return _run

        def fired(orig: Any, verb: str) -> Any:
            @functools.wraps(orig)
            def fire(self: Deferred[Any], result: Any = None) -> None:
                if None in tracer.targets:
                    shown = short_repr(result.value if isinstance(result, Failure) else result)
                    tracer.emit(f"Deferred #{self.number} {verb}: {shown}")
                orig(self, result)
            return fire

        plan: list[tuple[type, str, Any]] = [
            (st, "_attach_protocol", attach),
            (st, "connection_lost", lost),
            (st, "data_received", received),
            (st, "_deliver_tls", deliver_tls),
            (st, "write", write),
            (st, "write_sequence", write_sequence),
            (DatagramTransport, "write", datagram_out),
            (DatagramTransport, "_start_reading", reading),
            (DelayedCall, "_run", timed),
            (Deferred, "callback", lambda o: fired(o, "fired")),
            (Deferred, "errback", lambda o: fired(o, "failed")),
        ]
        for cls, name, make in plan:
            orig = cls.__dict__[name]
            self._saved[(cls, name)] = orig
            setattr(cls, name, make(orig))
        _reschedule()

    def _unpatch(self) -> None:
        if not self._saved:
            return
        for (cls, name), orig in self._saved.items():
            setattr(cls, name, orig)
        self._saved.clear()
        _reschedule()


def _reschedule() -> None:
    """Re-arm the pending timed calls so the loop calls the (un)patched ``_run``.

    The loop holds the bound method it was given when the call was scheduled.
    """
    try:
        r = get_reactor()
    except Exception:
        return
    for call in r.delayed_calls:
        if call._handle is not None:
            call._handle.cancel()
            call._handle = r.loop.call_at(call.time, call._run)


def _call_text(call: DelayedCall) -> str:
    name = getattr(call.func, "__qualname__", None) or short_repr(call.func)
    args = ", ".join([*(short_repr(a) for a in call.args or ()),
                      *(f"{k}={short_repr(v)}" for k, v in (call.kw or {}).items())])
    return f"{name}({args})"


def _addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
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
