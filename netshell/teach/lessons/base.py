"""What a lesson is made of, and what its checks look at: the live reactor and namespace.

A :class:`Lesson` is a title, an introduction and :class:`Step` s. A step tells the person
what to do (``text``), holds a ``check(state)`` that inspects the live state after each
input, and a ``hint`` shown after a wrong try. A check returns (or, when it is a coroutine
function, resolves to) a line saying what it saw, and raises :class:`NotYet` with the reason
when the step does not hold yet.

A check looks at real effects, never at what was typed: the reactor's listeners,
connections and timed calls, Deferreds and the values their chains settled with, the bytes
that went through (a :class:`Watch`, an observer of the core, records them while a lesson
runs), the person's namespace, and the transcript entry of the last input (its output and
error). It may connect to the person's server itself (:meth:`State.exchange`) to see it
answer.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

from netshell.defer import Deferred, next_deferred_number
from netshell.failure import Failure
from netshell.protocol import ClientFactory, Protocol
from netshell.reactor import DelayedCall

__all__ = ["Lesson", "NotYet", "State", "Step", "Watch"]

#: What a check gives: the line to show when the step holds (or an awaitable of it).
CheckResult = str | Awaitable[str]


class NotYet(Exception):
    """Raised by a check: the step does not hold yet; the message says why."""


# Plain classes, not dataclasses: the prompt builds its namespace with these, and the
# dataclasses module would cost its first prompt (tests/netshell/test_startup_imports.py).


class Step:
    """One step of a lesson: what to do, how it is checked, the hint after a wrong try.

    ``solution`` is one way of doing it (the inputs, in order): ``lesson.answer()`` shows
    it, and the tests type it. ``watch_loop`` keeps a heartbeat on the loop during the step,
    so a check can tell how long the loop stood still (:attr:`State.longest_pause`).
    ``begin(memo)``, when given, runs as the step begins (with the lesson's memo, which the
    checks see as :attr:`State.memo`) and returns what undoes it, run as the step ends.
    """

    def __init__(self, text: str, check: Callable[[State], CheckResult], hint: str,
                 solution: list[str] | None = None, watch_loop: bool = False,
                 begin: Callable[[dict[str, Any]], Callable[[], None]] | None = None
                 ) -> None:
        self.text = text
        self.check = check
        self.hint = hint
        self.solution = solution or []
        self.watch_loop = watch_loop
        self.begin = begin

    def __repr__(self) -> str:
        return f"<Step {self.text.splitlines()[0]!r}>"


class Lesson:
    """A numbered lesson: a title, a short introduction, its steps and a closing word."""

    def __init__(self, number: int, title: str, intro: str, steps: list[Step],
                 outro: str = "") -> None:
        self.number = number
        self.title = title
        self.intro = intro
        self.steps = steps
        self.outro = outro

    def __repr__(self) -> str:
        return f"<Lesson {self.number}: {self.title}, {len(self.steps)} steps>"


# ---- what happened: recorded while a lesson runs


class Wire:
    """The bytes one connection carried while watched (the first :data:`KEEP` each way)."""

    def __init__(self, number: int, client: bool, protocol: str, seq: int,
                 transport: Any) -> None:
        self.number = number
        self.client = client
        self.protocol = protocol
        self.sent = bytearray()
        self.received = bytearray()
        self.seq = seq  # the event count when it was first seen
        self.lost = 0  # the event count when it was lost (0 while open)
        self.transport = transport  # a weak reference to the transport

    def live(self) -> Any:
        """The transport, while it is alive (None once collected)."""
        return self.transport() if self.transport is not None else None


#: Bytes kept per connection and direction: enough to read a request line or a greeting.
KEEP = 64 * 1024


class Settled(NamedTuple):
    """A Deferred's chain that ran out of steps, and what it settled with."""

    seq: int
    number: int
    result: Any
    steps_ran: int
    deferred: Any  # a weak reference


class TimedRun(NamedTuple):
    """A timed call that ran: its callable's name and module, and the DelayedCall."""

    seq: int
    name: str
    module: str
    call: Any


def _module_of(func: Any) -> str:
    """The module a callable comes from: its function's, or for a builtin method (a list's
    append) its object's type's; a partial's function's."""
    while isinstance(func, functools.partial):
        func = func.func
    inner = getattr(func, "__func__", func)
    module = getattr(inner, "__module__", None)
    if module is None and getattr(func, "__self__", None) is not None:
        module = type(func.__self__).__module__
    return str(module or "")


class Ran(NamedTuple):
    """One callback or errback that ran in a chain: what it got, what it gave."""

    seq: int
    number: int
    name: str
    got: Any
    result: Any
    raised: bool


class Watch:
    """An observer (netshell.observe) of what a lesson's checks ask about: connections and
    their bytes, timed calls that ran, and Deferred steps and settlements. Bounded: the
    last few hundred events of each kind, the first :data:`KEEP` bytes of each connection.
    """

    def __init__(self) -> None:
        self.seq = 0
        self.wires: dict[int, Wire] = {}
        self.settled: collections.deque[Settled] = collections.deque(maxlen=400)
        self.ran: collections.deque[Ran] = collections.deque(maxlen=400)
        self.timed: collections.deque[tuple[int, str]] = collections.deque(maxlen=200)
        #: the same runs with the module their callable comes from and the DelayedCall
        self.timed_calls: collections.deque[TimedRun] = collections.deque(maxlen=200)
        self._steps: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        #: transports the checks opened themselves, left out of what they look at
        self.probes: weakref.WeakSet[Any] = weakref.WeakSet()

    def _wire(self, transport: Any) -> Wire | None:
        if transport in self.probes:
            return None
        w = self.wires.get(transport.number)
        if w is None:
            w = self.wires[transport.number] = Wire(
                transport.number, getattr(transport, "listener", None) is None,
                _protocol_name(transport.protocol), seq=self.seq,
                transport=weakref.ref(transport))
            if len(self.wires) > 400:
                del self.wires[next(iter(self.wires))]
        return w

    def connection_made(self, transport: Any) -> None:
        self.seq += 1
        self._wire(transport)

    def connection_lost(self, transport: Any, reason: Any) -> None:
        self.seq += 1
        w = self._wire(transport)
        if w is not None:
            w.lost = self.seq

    def data_in(self, transport: Any, data: bytes, addr: Any) -> None:
        if addr is not None:
            return
        self.seq += 1
        w = self._wire(transport)
        if w is not None and len(w.received) < KEEP:
            w.received += data[: KEEP - len(w.received)]

    def data_out(self, transport: Any, data: bytes, addr: Any) -> None:
        if addr is not None:
            return
        self.seq += 1
        w = self._wire(transport)
        if w is not None and len(w.sent) < KEEP:
            w.sent += data[: KEEP - len(w.sent)]

    def timed_call_run(self, call: Any) -> None:
        self.seq += 1
        name = getattr(call.func, "__qualname__", None) or repr(call.func)
        self.timed.append((self.seq, name))
        self.timed_calls.append(TimedRun(self.seq, name, _module_of(call.func), call))

    def deferred_step_ran(self, d: Any, step: Any, fn: Any, got: Any, result: Any,
                          raised: bool) -> None:
        self.seq += 1
        if str(getattr(fn, "__module__", None) or "").startswith("netshell"):
            return  # the shell's own watchers and links, not the person's chain
        name = getattr(fn, "__qualname__", None) or repr(fn)
        try:
            self._steps[d] = self._steps.get(d, 0) + 1
        except TypeError:
            pass
        self.ran.append(Ran(self.seq, d.number, name, got, result, raised))

    def deferred_settled(self, d: Any, result: Any) -> None:
        self.seq += 1
        try:
            ref: Any = weakref.ref(d)
            steps = self._steps.get(d, 0)
        except TypeError:
            ref, steps = (lambda: None), 0
        self.settled.append(Settled(self.seq, d.number, result, steps, ref))


def _protocol_name(p: Any) -> str:
    return getattr(p, "display_name", None) or type(p).__name__


# ---- what a check sees


class _Probe(Protocol):
    """The checks' own client: keeps what it receives; tells when enough has come."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.enough: Callable[[bytes], bool] = lambda b: False
        self.done: Deferred[None] = Deferred()
        self.closed_by_peer = False

    def data_received(self, data: bytes) -> None:
        self.got += data
        if not self.done.called and self.enough(bytes(self.got)):
            self.done.callback(None)

    def connection_lost(self, reason: Failure) -> None:
        self.closed_by_peer = True
        if not self.done.called:
            self.done.callback(None)


class Exchange(NamedTuple):
    """What a check's own connection got: the bytes, and whether the peer closed it."""

    got: bytes
    closed: bool
    tls: Any = None


class State:
    """What a check sees: the reactor, the namespace, the last input's transcript entry, a
    ``memo`` the lesson's steps share, and what the :class:`Watch` recorded since the
    step began."""

    def __init__(self, reactor: Any, namespace: dict[str, Any], entry: dict[str, Any],
                 memo: dict[str, Any], watch: Watch, since: int, first_deferred: int,
                 pauses: Callable[[], float], listeners_before: frozenset[int] = frozenset(),
                 probed: dict[int, str] | None = None) -> None:
        self.reactor = reactor
        #: the numbers of the listeners open when the step began
        self.listeners_before = listeners_before
        #: what each listener the step's checks connected to answered (by its number): a
        #: listener is connected to once per step, its answer kept for the later inputs
        self.probed: dict[int, str] = {} if probed is None else probed
        self.namespace = namespace
        self.entry = entry
        self.memo = memo
        self.watch = watch
        #: the Watch's event count when the step began: what came after is this step's
        self.since = since
        #: the number of the first Deferred made since the step began
        self.first_deferred = first_deferred
        self._pauses = pauses

    # ---- the namespace

    def values(self, kind: type | tuple[type, ...]) -> list[Any]:
        """The person's names' values of that type, newest binding first."""
        found = [v for k, v in self.namespace.items()
                 if not k.startswith("__") and isinstance(v, kind)]
        return list(reversed(found))

    def classes(self, base: type) -> list[type]:
        """Classes the person defined (in the namespace's module) that subclass ``base``."""
        module = self.namespace.get("__name__", "__main__")
        return [v for v in reversed(list(self.namespace.values()))
                if isinstance(v, type) and issubclass(v, base) and v is not base
                and v.__module__ == module]

    def deferreds(self) -> list[Deferred[Any]]:
        """The Deferreds the namespace holds (``_dN`` included), newest first."""
        return sorted(self.values(Deferred), key=lambda d: -d.number)

    # ---- what happened since the step began

    def settled(self) -> list[Settled]:
        """The chains that ran out of steps during this step, latest last."""
        return [s for s in self.watch.settled if s.seq > self.since]

    def ran(self) -> list[Ran]:
        """The callbacks and errbacks that ran during this step."""
        return [r for r in self.watch.ran if r.seq > self.since]

    def timed_runs(self, mine: bool = False) -> list[str]:
        """The names of the timed calls that ran during this step. With ``mine``, only the
        person's: those whose callable was defined at the prompt (or is a builtin, such as
        print), and those whose DelayedCall a name of theirs holds; not the library's own
        timers (netshell's, the standard library's)."""
        if not mine:
            return [name for seq, name in self.watch.timed if seq > self.since]
        module = self.namespace.get("__name__", "__main__")
        held = {id(c) for c in self.values(DelayedCall)}
        return [r.name for r in self.watch.timed_calls
                if r.seq > self.since
                and (r.module in (module, "builtins") or id(r.call) in held)]

    def wires(self, client: bool | None = None) -> list[Wire]:
        """Connections seen during this step (not the checks' own), oldest first."""
        return [w for w in self.watch.wires.values()
                if (client is None or w.client == client)
                and (w.seq > self.since or not w.lost or w.lost > self.since)]

    def longest_pause(self) -> float:
        """The longest time the loop stood still since the step began (seconds); only for a
        step with ``watch_loop``."""
        return self._pauses()

    # ---- the live reactor

    def listeners(self, protocol: type | None = None) -> list[Any]:
        """The open listeners, newest first; only those serving ``protocol`` (a class, or
        a subclass of it) if given."""
        found = []
        for x in reversed(self.reactor.listeners):
            served = getattr(getattr(x, "factory", None), "protocol", None)
            if protocol is None or (isinstance(served, type) and issubclass(served, protocol)):
                found.append(x)
        return found

    def candidates(self, *kinds: type) -> list[Any]:
        """The open listeners a check may connect to, newest first: those made since the
        step began, and those whose factory is one of ``kinds`` or whose protocol subclasses
        one of them. Not every listener: a check's connection shows in the person's traces
        and counters, and a listener that does not answer costs the check its timeout."""
        found = []
        for x in reversed(self.reactor.listeners):
            factory = getattr(x, "factory", None)
            served = getattr(factory, "protocol", None)
            if (x.number not in self.listeners_before
                    or any(isinstance(factory, k) for k in kinds)
                    or (isinstance(served, type) and issubclass(served, kinds))):
                found.append(x)
        return found

    def connections(self, client: bool | None = None) -> list[Any]:
        """The open connections (not the checks' own), oldest first."""
        return [c for c in self.reactor.connections if c not in self.watch.probes
                and (client is None or (c.listener is None) == client)]

    async def exchange(self, port: int, send: bytes = b"",
                       until: Callable[[bytes], bool] = lambda b: False,
                       timeout: float = 3.0, context: Any = None,
                       then: bytes = b"") -> Exchange:
        """Connect to 127.0.0.1:``port`` (with TLS when ``context`` is given), send
        ``send``, and collect what comes back until ``until(received)`` holds, the peer
        closes, or ``timeout`` seconds pass; send ``then`` and close. Raises NotYet when it
        cannot connect."""
        factory = ClientFactory.for_protocol(_Probe)
        try:
            if context is not None:
                d = self.reactor.connect_tls("127.0.0.1", port, factory, context,
                                             timeout=timeout)
            else:
                d = self.reactor.connect_tcp("127.0.0.1", port, factory, timeout=timeout)
            p = await d
        except Exception as e:
            raise NotYet(f"connecting to 127.0.0.1:{port} failed: {e}") from None
        self.watch.probes.add(p.transport)
        p.enough = until
        try:
            if until(bytes(p.got)):
                p.done.callback(None)
            if send:
                p.transport.write(send)
            # asyncio's own timer, not a timed call of the reactor: the checks' waits are
            # no timed calls of the person's
            try:
                await asyncio.wait_for(asyncio.shield(p.done.as_future()), timeout)
            except TimeoutError:
                pass
            if then and not p.closed_by_peer:
                p.transport.write(then)
            return Exchange(bytes(p.got), p.closed_by_peer, p.transport.tls)
        finally:
            p.transport.close()

    async def eventually(self, test: Callable[[], str], within: float = 3.0,
                         pending: Callable[[], bool] | None = None) -> str:
        """``test()`` (a check: it returns a line or raises NotYet), tried again on the
        loop until it holds or ``within`` seconds pass (then its last NotYet is raised).
        With ``pending``, it is tried once unless ``pending()`` says something is under
        way (bytes sent and not yet answered...): no waiting when nothing will come."""
        loop = asyncio.get_running_loop()
        if pending is not None and not pending():
            within = 0.0
        deadline = loop.time() + within
        while True:
            try:
                return test()
            except NotYet:
                if loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.02)  # not ns.sleep: that would be a timed call of the reactor


#: Said after what the listeners a check tried answered: it will not try them again.
TRIED_ONCE = " (each listener is tried once a step: open a new one to try again)"


def made_since(deferreds: Iterable[Deferred[Any]], number: int) -> list[Deferred[Any]]:
    """Those of ``deferreds`` made at or after ``number`` (a :func:`next_deferred_number`)."""
    return [d for d in deferreds if d.number >= number]


def failure_of(result: Any, kind: type[BaseException]) -> bool:
    """True if ``result`` is a Failure of ``kind``."""
    return isinstance(result, Failure) and result.check(kind) is not None


def is_awaitable(x: Any) -> bool:
    return inspect.isawaitable(x)


__all__ += ["TRIED_ONCE", "Exchange", "failure_of", "made_since", "next_deferred_number"]
