"""``trace()``: every event of a listener, a connection, a protocol class, or everything.

A Tracer is an observer of the core (:mod:`netshell.observe`), registered
while it follows something and removed when the last trace stops: nothing is
patched, and a reactor that is not traced pays nothing. Events are connect and
disconnect with addresses, bytes in and out (an escaped preview, or a
hexdump), and, when everything is traced, timed calls firing and Deferreds
being fired. Data is traced as the protocol sees it (plaintext on TLS).

Each target followed has a :class:`Capture` (what :meth:`Tracer.start` returns) that
keeps the conversation, connections opened and closed and the bytes between them: it
parses them with each protocol's parser, draws them as a sequence diagram (text, or SVG in
Jupyter), dumps them and saves them as pcapng (:mod:`netshell.teach.wire`,
:mod:`netshell.teach.pcap`). A connection that serves a followed one (an FTP data
connection, whose protocol's ``control`` is the control connection's) is followed too.

Example::

    >>> import netshell as ns
    >>> lines = []
    >>> tracer = Tracer(lines.append, clock=lambda: "12:00:00.000")
    >>> capture = tracer.start(None)
    >>> _ = ns.Deferred().callback(7)
    >>> tracer.stop()
    >>> lines
    ['12:00:00.000 Deferred #... fired: 7']
    >>> capture
    capture of everything (ended): 0 messages, 0 connections
"""

from __future__ import annotations

import contextvars
import os
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from netshell import Listener, StreamTransport, observe
from netshell.defer import CancelledError, Deferred
from netshell.errors import ConnectionDone
from netshell.failure import Failure
from netshell.interfaces import format_hostport
from netshell.reactor import DelayedCall
from netshell.shell.display import hexdump, preview, short_repr
from netshell.udp import DatagramListener, DatagramTransport

__all__ = ["UNSEEN_IN", "UNSEEN_OUT", "Capture", "CaptureEvent", "Tracer"]


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
        #: the captures being filled: one per target followed (see :meth:`start`)
        self.captures: list[Capture] = []
        self._connections = _ConnectionEvents(self)
        self._everything = _EverythingEvents(self)

    # ---- what is followed

    @property
    def active(self) -> bool:
        return bool(self.targets)

    def start(self, target: Any = None, payload: bool | None = None, hexdump: bool | None = None,
              context: contextvars.Context | None = None) -> Capture:
        """Follow ``target``; returns the :class:`Capture` that keeps what it does (the same
        one while ``target`` stays followed). The lines about ``target`` are printed in
        ``context`` when given (in Jupyter, into the cell that asked for this trace)."""
        _check_target(target)
        if payload is not None:
            self.payload = payload
        if hexdump is not None:
            self.hexdump = hexdump
        if target not in self.targets:
            self.targets.append(target)
        capture = next((c for c in self.captures if c.target is target), None)
        if capture is None:
            capture = Capture(target)
            self.captures.append(capture)
        if context is not None:
            capture.context = context
        self._register()
        return capture

    def stop(self, target: Any = None, everything: bool = True) -> None:
        """Stop following ``target``; with the defaults, stop following anything."""
        if everything and target is None:
            self.targets.clear()
        elif target in self.targets:
            self.targets.remove(target)
        for capture in [c for c in self.captures if c.target not in self.targets]:
            capture.active = False
            self.captures.remove(capture)
        self._register()

    def follows(self, t: Any) -> bool:
        """True if connection (or datagram transport) ``t`` is traced."""
        return _follows(self.targets, t)

    def captures_of(self, t: Any) -> list[Capture]:
        """The captures that keep what connection (or datagram transport) ``t`` does."""
        return [c for c in self.captures if _follows((c.target,), t)]

    # ---- output

    def emit(self, text: str, t: Any = None) -> None:
        """Print a line about connection ``t`` (None: about no connection), in the context
        of the trace that follows it (the latest asked for, of those that do)."""
        line = f"{self.clock()} {text}"
        captures = self.captures_of(t) if t is not None else [
            c for c in self.captures if c.target is None]
        context = next((c.context for c in reversed(captures) if c.context is not None), None)
        if context is None:
            self.out(line)
            return
        try:
            context.run(self.out, line)
        except RuntimeError:  # that context is running already (a trace inside the trace)
            self.out(line)

    def data(self, t: Any, direction: str, data: bytes, addr: Any = None) -> None:
        where = f" {'to' if direction == 'out' else 'from'} {_addr(addr)}" if addr else ""
        head = f"#{t.number} {direction:<3} {len(data)} B{where}" if hasattr(t, "number") else (
            f"udp {t.host} {direction:<3} {len(data)} B{where}"
        )
        if not self.payload:
            self.emit(head, t)
        elif self.hexdump:
            self.emit(head + "\n" + hexdump(data), t)
        else:
            self.emit(f"{head}  {preview(data)}", t)

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
                f"{type(t.protocol).__name__}", t
            )
            for capture in tracer.captures_of(t):
                capture.opened(t)

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
            tracer.emit(f"#{t.number} {how} ({t.bytes_received} B in, {t.bytes_sent} B out)", t)
            for capture in tracer.captures_of(t):
                capture.closed(t, how)

    def data_in(self, t: Any, data: bytes, addr: Any) -> None:
        if self.tracer.follows(t):
            self.tracer.data(t, "in", data, addr)
            for capture in self.tracer.captures_of(t):
                capture.data(t, "in", data, addr)

    def data_out(self, t: Any, data: bytes, addr: Any) -> None:
        if self.tracer.follows(t):
            self.tracer.data(t, "out", data, addr)
            for capture in self.tracer.captures_of(t):
                capture.data(t, "out", data, addr)


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


def _follows(targets: Iterable[Any], t: Any) -> bool:
    for target in targets:
        if target is None or target is t or target is t.protocol:
            return True
        if isinstance(target, (Listener, DatagramListener)) and t.listener is target:
            return True
        if isinstance(target, type) and isinstance(t.protocol, target):
            return True
    # A connection that serves another one (an FTP data connection: its protocol's
    # ``control`` is the control connection's) is followed with it.
    control = getattr(getattr(getattr(t, "protocol", None), "control", None), "transport", None)
    if control is not None and control is not t:
        return _follows(targets, control)
    return False


# ---- captures


class CaptureEvent(NamedTuple):
    """One thing a :class:`Capture` kept: a connection opened or closed, or bytes sent."""

    time: float  #: ``time.time()`` when it happened
    kind: str  #: "open", "close" or "data"
    number: int | None  #: the connection's number (None for a datagram)
    source: str  #: the address the bytes (or the connection) came from
    dest: str  #: the address they went to
    #: the bytes ("data"): all of them while the capture's budget lasts (``len(data) <
    #: size`` after it, or for bytes the trace could not see)
    data: bytes
    size: int  #: how many bytes there were
    #: "connect" (or "already open" for a connection first seen open), "closed",
    #: "aborted", "lost: ..."; for data, "" or why bytes are missing
    note: str
    #: "in" or "out" as the traced end saw it; for "open", "accepted" or "connected"
    direction: str
    tls: bool = False  #: "open": the connection is TLS (the data is the plaintext)
    #: "open": the protocol's class, ``module.QualName`` (how :meth:`Capture.messages`
    #: knows which parser reads it)
    protocol: str = ""
    #: "open": the control connection's number for an FTP data connection (its
    #: protocol's ``control``), else None
    control: int | None = None


#: The notes of bytes a trace could not see, in a data event that has none of them.
UNSEEN_OUT = "not seen: sent by the kernel (sendfile)"
UNSEEN_IN = "not seen: received by the kernel (splice)"


class Capture:
    """What a trace saw, kept: connections opened and closed and the bytes between them.

    ``trace(target)`` fills one while ``target`` is followed; ``untrace`` ends it
    (``active`` turns False) and it stays readable. Its text is the conversation, one line
    per message; in Jupyter it is drawn as a sequence diagram (SVG, and mermaid text).

    It is bounded: it keeps at most ``limit`` events (``dropped`` counts those past it),
    and the bytes of every message whole until ``max_bytes`` (16 MiB) are kept in all;
    after that, the first ``snap`` bytes of each (``size`` says how many there were).
    Bytes the kernel moved without the protocol seeing them (a file sent with
    sendfile(2)) are a data event with no bytes, whose ``size`` says how many there
    were (known from the transport's counters, asked at each event of the capture: they
    show before the next event that follows them).

    :meth:`messages` parses the conversation with each protocol's own parser,
    :meth:`diagram` draws it as text, :meth:`hexdump` dumps its bytes and :meth:`save`
    writes it as a pcapng file that Wireshark and tshark read.
    """

    limit = 10_000
    max_bytes = 16 * 1024 * 1024
    snap = 256

    def __init__(self, target: Any = None) -> None:
        self.target = target
        #: where this trace's lines are printed (the context of the code that asked for it)
        self.context: contextvars.Context | None = None
        self.events: list[CaptureEvent] = []
        self.dropped = 0
        self.active = True
        #: connection number -> (local address, peer address), for what the diagram shows
        self.ends: dict[int, tuple[str, str]] = {}
        # the numbers of accepted Unix connections whose client is another process
        self._foreign: set[int] = set()
        #: bytes of payload kept so far (against ``max_bytes``)
        self.kept = 0
        # connection number -> [bytes sent, bytes received] as the transport counted them
        # when last heard of: what it counts beyond that and no event brought, the trace
        # did not see (sendfile(2) copies a file with no data_out event)
        self._counted: dict[int, list[int]] = {}
        # the connections open, weakly: when any event comes, each is asked whether it
        # sent or received bytes unseen since (so a file sent by sendfile(2) shows before
        # the "226 Transfer complete" written after it, not when its connection closes)
        self._live: dict[int, weakref.ref[Any]] = {}

    @property
    def what(self) -> str:
        """What it follows, in words: "everything", "Listener #1", "every Echo"."""
        if self.target is None:
            return "everything"
        if isinstance(self.target, type):
            return f"every {self.target.__name__}"
        number = getattr(self.target, "number", None)
        return f"{type(self.target).__name__} #{number}" if number is not None else (
            type(self.target).__name__)

    def _add(self, event: CaptureEvent) -> None:
        if len(self.events) >= self.limit:
            self.dropped += 1
            return
        self.events.append(event)

    def _keep(self, data: bytes) -> bytes:
        room = self.max_bytes - self.kept
        take = len(data) if len(data) <= room else min(len(data), self.snap)
        if take > 0 and room > 0:
            self.kept += min(take, room)
        return bytes(data[:take])

    def opened(self, t: Any, note: str = "connect") -> None:
        host, peer = str(t.host), str(t.peer)
        self.ends[t.number] = (host, peer)
        accepted = t.listener is not None
        source, dest = (peer, host) if accepted else (host, peer)
        protocol = getattr(t, "protocol", None)
        cls = type(protocol)
        control = getattr(getattr(getattr(protocol, "control", None), "transport", None),
                          "number", None)
        self._counted[t.number] = [_count(t, "bytes_sent"), _count(t, "bytes_received")]
        if accepted and host.startswith("unix:"):
            ask = getattr(t, "peer_credentials", None)
            peer_process = ask() if callable(ask) else None
            if peer_process is not None and peer_process.pid != os.getpid():
                self._foreign.add(t.number)  # its other end is not in this process
        try:
            self._live[t.number] = weakref.ref(t)
        except TypeError:
            pass  # a stand-in with no weak references: checked on its own events only
        self._add(CaptureEvent(time.time(), "open", t.number, source, dest, b"", 0, note,
                               "accepted" if accepted else "connected",
                               getattr(t, "tls", None) is not None,
                               f"{cls.__module__}.{cls.__qualname__}" if protocol else "",
                               control if isinstance(control, int) else None))

    def _seen(self, t: Any, sent: int = 0, received: int = 0) -> None:
        """Account for the bytes of the connections open up to now, ``sent``/``received``
        of ``t``'s by the event being added: first a data event with none of the bytes
        (note :data:`UNSEEN_OUT` or :data:`UNSEEN_IN`) for those a transport counted and
        no event brought."""
        if t.number not in self.ends:
            self.opened(t, "already open")
            counted = self._counted[t.number]
            counted[0] -= sent
            counted[1] -= received
        for number, ref in list(self._live.items()):
            other = ref()
            if other is None:
                del self._live[number]
            elif other is not t:
                self._unseen(other)
        self._unseen(t, sent, received)

    def _unseen(self, t: Any, sent: int = 0, received: int = 0) -> None:
        counted = self._counted.get(t.number)
        if counted is None or getattr(t, "tls", None) is not None:
            return  # TLS counts the bytes on the wire, not the plaintext the trace sees
        host, peer = self.ends[t.number]
        now = _count(t, "bytes_sent"), _count(t, "bytes_received")
        for i, (direction, source, dest, note) in enumerate(
                (("out", host, peer, UNSEEN_OUT), ("in", peer, host, UNSEEN_IN))):
            missed = now[i] - (sent, received)[i] - counted[i]
            if missed > 0:
                self._add(CaptureEvent(time.time(), "data", t.number, source, dest, b"",
                                       missed, note, direction))
                counted[i] = now[i] - (sent, received)[i]

    def closed(self, t: Any, how: str) -> None:
        self._seen(t)
        self._live.pop(t.number, None)
        host, peer = self.ends[t.number]
        self._add(CaptureEvent(time.time(), "close", t.number, host, peer, b"", 0, how, ""))

    def data(self, t: Any, direction: str, data: bytes, addr: Any = None) -> None:
        number = getattr(t, "number", None)
        if number is not None:
            out = direction == "out"
            self._seen(t, len(data) if out else 0, 0 if out else len(data))
            counted = self._counted.get(number)
            if counted is not None:
                counted[0 if out else 1] += len(data)
            host, peer = self.ends[number]
        else:  # a datagram: the other end is the sender or the destination
            host, peer = str(t.host), _addr(addr) if addr else "?"
        source, dest = (host, peer) if direction == "out" else (peer, host)
        self._add(CaptureEvent(time.time(), "data", number, source, dest,
                               self._keep(data), len(data), "", direction))

    def conversation(self) -> list[CaptureEvent]:
        """The events to draw: each message once, though both of its ends are traced.

        When both ends of a connection are in this process (a loopback) and traced, a
        message is seen leaving one and arriving at the other; the arrival is left out. The
        connection is opened at both ends too: the first of the two "open" events stays
        (the listening end may accept, and even write, before the connecting end hears it
        is connected; both name the connecting end as ``source``), and the other end's
        events take its number. The two ends of a Unix connection have the same names
        (the path, and no name): the first opened at one end is the first opened at the
        other, and an end whose peer is another process has no twin here. A datagram
        sent by a traced transport is shown as it left, not again as it arrived.
        """
        shown = []
        # (client, server, side) -> the numbers of opens shown, whose other end may open
        waiting: dict[tuple[str, str, str], list[int]] = {}
        twin_of: dict[int, int] = {}  # an end's number -> its other end's, shown for both
        both: set[int] = set()  # the ends whose other end is traced too
        senders = {e.source for e in self.events
                   if e.kind == "data" and e.number is None and e.direction == "out"}
        any_address = {_port(a) for a in senders if a.rpartition(":")[0].strip("[]") in (
            "0.0.0.0", "::", "")}  # a sender bound to every address: its port
        for e in self.events:
            number = e.number
            if number is None:
                if e.kind == "data" and e.direction == "in" and (
                        e.source in senders or _port(e.source) in any_address):
                    continue  # sent by a traced transport: its "out" shows this datagram
                shown.append(e)
                continue
            if e.kind == "open" and number not in self._foreign:
                twin = "connected" if e.direction == "accepted" else "accepted"
                firsts = waiting.get((e.source, e.dest, twin))
                if firsts:
                    twin_of[number] = firsts.pop(0)
                    both.update((number, twin_of[number]))
                    continue  # the other end's open of this connection is shown
                # (kept after its close: the other end may accept a connection that the
                # connecting end has closed already)
                waiting.setdefault((e.source, e.dest, e.direction), []).append(number)
            if e.kind == "data" and e.direction == "in" and number in both:
                continue  # the sending end is traced too: its "out" shows this message
            shown.append(e._replace(number=twin_of[number]) if number in twin_of else e)
        return shown

    def messages(self, protocol: str | None = None) -> Any:
        """The messages of the conversation, in order, parsed by their protocol's parser.

        HTTP requests and responses, FTP commands and replies, IRC messages; bytes of an
        FTP data connection or of a protocol not known as chunks. Bytes split across
        writes, or several messages in one, are put together per connection and
        direction. The protocol of a connection is its protocol class's (a server or
        client of the protocol library), else guessed from its first bytes, else from the
        port (80, 8000, 8080: HTTP; 21: FTP; 6667, 6697: IRC); ``protocol`` ("http",
        "ftp", "irc", "raw") says it for every connection instead. Each message keeps
        its time, connection number, source, destination and direction;
        ``show(msg)`` prints its fields.
        """
        from netshell.teach.wire import parse_capture

        return parse_capture(self, protocol)

    def diagram(self, width: int | None = None) -> Any:
        """The conversation as a text sequence diagram: a column per address, a row per
        message (an arrow, its time and a summary in the protocol's words), connections
        opened and closed. In Jupyter it is drawn as SVG."""
        from netshell.teach.wire import diagram

        return diagram(self, width)

    def hexdump(self, each: int | None = 1024, total: int | None = 64 * 1024) -> Any:
        """Every message's bytes as a hexdump, each under a line that says when, from where
        to where and how many bytes (and how many of them were kept). The first ``each``
        bytes of a message, ``total`` in all (None: no bound); it says what it left out."""
        from netshell.teach.wire import hexdump_capture

        return hexdump_capture(self, each, total)

    def save(self, path: Any) -> Any:
        """Write the capture as a pcapng file (Wireshark and tshark read it): Ethernet,
        IPv4/IPv6 and TCP/UDP headers synthesized around the bytes seen, with consistent
        handshakes, sequence numbers and closes. Returns what was written, in words."""
        from netshell.teach.pcap import save_capture

        return save_capture(self, path)

    def lines(self) -> list[str]:
        """The conversation as text, one line per message or connection event."""
        from netshell.teach.wire import capture_lines

        return capture_lines(self)

    def __repr__(self) -> str:
        count = len(self.messages()) if any(e.kind == "data" for e in self.events) else 0
        state = "" if self.active else " (ended)"
        connections = len({e.number for e in self.conversation() if e.number is not None})
        head = (f"capture of {self.what}{state}: {count} messages, "
                f"{connections} connections")
        if self.dropped:
            head += f", {self.dropped} events past the limit not kept"
        lines = self.lines() if self.events else []
        return "\n".join([head, *("  " + line for line in lines)])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter's display: the sequence diagram as SVG and as mermaid text, and the text."""
        from netshell.kernel.displays import capture_mermaid, capture_svg

        return {"text/plain": repr(self), "image/svg+xml": capture_svg(self),
                "text/vnd.mermaid": capture_mermaid(self)}


def _count(t: Any, name: str) -> int:
    value = getattr(t, name, 0)
    return value if isinstance(value, int) else 0


def _call_text(call: DelayedCall) -> str:
    name = getattr(call.func, "__qualname__", None) or short_repr(call.func)
    args = ", ".join([*(short_repr(a) for a in call.args or ()),
                      *(f"{k}={short_repr(v)}" for k, v in (call.kw or {}).items())])
    return f"{name}({args})"


def _port(address: str) -> int | None:
    tail = address.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


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
