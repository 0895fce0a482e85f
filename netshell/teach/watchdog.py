"""The blocked-reactor watchdog: says when a callback held the loop, for how long, and where.

A callback that blocks (``time.sleep(1)`` in ``data_received``, a slow query, a
busy loop) stops everything else on the reactor: no other connection is served, no
timer fires, the prompt does not redraw. A Deferred does not change that: code
run by a callback runs on the loop, whatever it returns. The watchdog notices and
says so, once per blocking episode, when the loop runs again::

    the reactor was blocked for 1.0 s in on_data (<netsh-3>, line 2): time.sleep(1)
      nothing else ran meanwhile: run blocking work with defer_to_thread(f, *args)

A block that lasts (an endless loop in a callback) is said while it lasts too, once,
from the watchdog's thread, after 2 s (or 4 thresholds, if more)::

    the reactor has been blocked for 2.0 s so far in on_data (<netsh-3>, line 2): ...

A callback that is no Python function (``reactor.call_later(1, time.sleep, 5)``,
``d.add_callback(time.sleep)``) leaves no frame of its own: the callback itself is
named then, with what called it: ``time.sleep, called by a timed call`` (the running
Handle, ``self`` in the frame of asyncio's ``Handle._run``), or ``called by Deferred
#4's callback`` (the step in the frame of the Deferred's run). One turn of the loop
running many short callbacks (3,000 ``call_soon`` calls) is no block, and is said in
other words, with other advice: the samples found a different Handle running each
time::

    one turn of the loop ran 3,000 callbacks for 0.5 s, most often in small (...)
      no I/O was served meanwhile: spread the work over turns (...)

How: a daemon thread posts a call to the loop every fifth of the threshold (a
ping), and the loop stamps the time when it runs it (the heartbeat); the thread
reads the stamp. While the stamp is older than the threshold the loop is not
turning, and the thread samples the loop thread's stack (``sys._current_frames()``)
for the frame of the callback that holds it: the innermost frame in the person's
own code (not netshell's, asyncio's, the standard library's or another package's).
When the stamp moves again, the place seen most often is reported with how long the
loop was held. A turn spent in netshell's or another package's code alone is not
reported: it is not the person's to fix, and on a machine short of CPU a slow turn
of the library's own code would be reported as if it blocked.

What is never reported: a loop that waits (its heartbeat keeps beating; a stack
sampled then shows no callback running), a loop that is stopped (IPython's terminal
between prompts), and the prompt's own work: the top level of an input, a cell or a
script (code whose globals are the namespace given as ``own``), whose time the
person sees already, since the prompt comes back when it is done. A block the
thread could not sample at all (a C call holding the GIL throughout) is not
reported either: the watchdog says only what it saw.

The cost when nothing blocks: one call every ``threshold / 5`` seconds on the loop,
posted by a thread that wakes as often (docs/performance.md, "Watchdog").
"""

from __future__ import annotations

import asyncio
import asyncio.events
import contextlib
import contextvars
import importlib.util
import linecache
import logging
import os
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any, NamedTuple

import netshell
from netshell import current
from netshell.defer import Deferred
from netshell.failure import Failure

__all__ = ["BUSY_HINT", "DEFAULT_THRESHOLD", "HINT", "Blocked", "Watchdog", "Where", "make_helper",
           "start_watchdog", "stop_watchdog", "watchdog_on"]

log = logging.getLogger("netshell.watchdog")

#: Seconds the loop may go without turning before the watchdog speaks.
DEFAULT_THRESHOLD = 0.25
#: Heartbeats per threshold: the precision of the time reported.
BEATS_PER_THRESHOLD = 5
#: The second line of every report of a block.
HINT = "nothing else ran meanwhile: run blocking work with defer_to_thread(f, *args)"
#: The second line of the report of a busy turn: many callbacks, none of them long.
BUSY_HINT = ("no I/O was served meanwhile: spread the work over turns (a few calls at a "
             "time, the next batch with call_later)")
#: Seconds of a block after which it is said while it lasts (or 4 thresholds, if more):
#: 2, not 1, so that the everyday ``time.sleep(1)`` is said once, when it ends.
LASTING = 2.0
#: Samples an episode needs before it is said while it lasts.
LASTING_SAMPLES = 3

_HANDLE_RUN = asyncio.events.Handle._run.__code__
_NETSHELL = os.path.dirname(os.path.abspath(netshell.__file__)) + os.sep
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
_REACTOR_FILE = os.path.abspath(sys.modules["netshell.reactor"].__file__ or "")
#: The frame of the reactor's timed call (``reactor.call_later``): ``self.func`` is run.
_DELAYED_RUN = sys.modules["netshell.reactor"].DelayedCall._run.__code__
#: The frames that run a Deferred's steps: ``fn`` is the step being run.
_DEFER_RUNS = (Deferred._run_callbacks.__code__, Deferred._run_watched.__code__)
_protocols_dir: str | None = None


def _protocols() -> str:
    """The protocol library's folder (found on first use, without importing it)."""
    global _protocols_dir
    if _protocols_dir is None:
        spec = importlib.util.find_spec("protocols")
        places = list(spec.submodule_search_locations or []) if spec is not None else []
        _protocols_dir = os.path.abspath(places[0]) + os.sep if places else "\0"
    return _protocols_dir


def _is_yours(filename: str) -> bool:
    """Whether a file is the person's own code: not netshell's (its core, shell or
    protocol library), nor the standard library's, nor an installed package's."""
    if filename.startswith("<frozen"):
        return False
    path = filename if filename.startswith("<") else os.path.abspath(filename)
    if path.startswith((_NETSHELL, _protocols(), _STDLIB)):
        return False
    return "site-packages" not in path and "dist-packages" not in path


# NamedTuples, not dataclasses: the prompt starts without importing dataclasses.
class Where(NamedTuple):
    """A place in the code: the function, its file and the line, and that line's text."""

    function: str
    filename: str
    line: int
    source: str = ""
    #: For a callback that is no Python function (``time.sleep``, filename ""): what
    #: called it ("a timed call", "Deferred #3's callback").
    by: str = ""

    def __str__(self) -> str:
        if not self.filename:
            return f"{self.function}, called by {self.by}" if self.by else self.function
        text = f"{self.function} ({_display_name(self.filename)}, line {self.line})"
        return f"{text}: {self.source}" if self.source else text


class Blocked(NamedTuple):
    """One blocking episode: how long the loop did not turn, and where it was held.

    ``lasting``: said while it lasts (from the watchdog's thread), ``seconds`` so far.
    ``busy``: not one callback but one turn of the loop running many (``calls``, when
    known), ``where`` the place seen most often.
    """

    seconds: float
    where: Where
    lasting: bool = False
    busy: bool = False
    calls: int = 0

    def message(self) -> str:
        """What the watchdog says: two lines, the second the hint."""
        if self.busy:
            many = f"{self.calls:,} callbacks" if self.calls > 1 else "many callbacks"
            if self.lasting:
                first = (f"one turn of the loop has been running {many} for "
                         f"{self.seconds:.1f} s so far")
            else:
                first = f"one turn of the loop ran {many} for {self.seconds:.1f} s"
            return f"{first}, most often in {self.where}\n  {BUSY_HINT}"
        if self.lasting:
            return (f"the reactor has been blocked for {self.seconds:.1f} s so far in "
                    f"{self.where}\n  {HINT}")
        return f"the reactor was blocked for {self.seconds:.1f} s in {self.where}\n  {HINT}"


class _Episode:
    """What was seen while the loop did not turn."""

    def __init__(self, since: float, every: float) -> None:
        self.since = since  # the last heartbeat before the loop stopped turning
        self.every = every  # the heartbeat's period then
        self.places: Counter[tuple[str, str, int]] = Counter()  # samples per place
        self.own = 0  # samples that found the prompt's own work (an input, a cell, a script)
        self.context: contextvars.Context | None = None  # the blocking callback's
        self.by: dict[tuple[str, str, int], str] = {}  # a builtin callback's caller
        self.handles: dict[int, object] = {}  # the loop's Handles seen running (kept alive)
        self.handle_samples = 0  # samples that found the Handle running
        self.calls = 0  # the callbacks of the turn the loop was in, when known
        self.told = False  # said while it lasted


def _display_name(filename: str) -> str:
    """A file as a traceback names it: IPython's cells as "Cell In[3]"."""
    shell_module = sys.modules.get("IPython.core.interactiveshell")
    if shell_module is not None:
        try:
            shell_class = shell_module.InteractiveShell
            if shell_class.initialized():
                named = shell_class.instance().compile.format_code_name(filename)
                if named:
                    return " ".join(named)
        except Exception:  # an IPython without format_code_name: the file's own name
            pass
    return filename


def _callback_frames(frame: FrameType | None) -> tuple[list[FrameType], FrameType | None]:
    """The frames of the callback the loop runs now, innermost first, and the frame of
    asyncio's ``Handle._run`` that runs it (None under uvloop, whose loop is compiled).
    No frames: the loop is waiting or doing its own work."""
    frames: list[FrameType] = []
    while frame is not None:
        code = frame.f_code
        if code is _HANDLE_RUN:
            return frames, frame
        if code.co_name in ("run_until", "run") and code.co_filename == _REACTOR_FILE:
            return frames, None  # uvloop: the reactor's own call into the loop
        frames.append(frame)
        frame = frame.f_back
    return [], None  # no loop below: not a callback


def _callable_name(fn: Any) -> str:
    """``time.sleep``, ``socket.recv``: a callable that is no Python function, named."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        return name if "." in name else f"{type(owner).__name__}.{name}"
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module != "builtins" else name


def _is_builtin(fn: Any) -> bool:
    """A callable run in C (``time.sleep``), not asyncio's own (a Task's wakeup)."""
    return (isinstance(fn, types.BuiltinFunctionType)
            and not isinstance(getattr(fn, "__self__", None), asyncio.Future))


def _builtin_callback(frames: list[FrameType], handle: Any) -> tuple[str, str] | None:
    """The callback the loop runs when it is no Python function (so no frame of it is
    on the stack): its name and what called it. None if it is not that."""
    if frames:
        inner = frames[0]
        if inner.f_code is _DELAYED_RUN:
            fn = getattr(inner.f_locals.get("self"), "func", None)
            return (_callable_name(fn), "a timed call") if _is_builtin(fn) else None
        if inner.f_code not in _DEFER_RUNS:
            return None
        step = inner.f_locals
        fn, current = step.get("fn"), step.get("current")
        if not _is_builtin(fn) or current is None:
            return None
        kind = "errback" if isinstance(step.get("result"), Failure) else "callback"
        return _callable_name(fn), f"Deferred #{current._id}'s {kind}"
    fn = getattr(handle, "_callback", None)
    if handle is None or not _is_builtin(fn):
        return None
    by = "a timed call" if isinstance(handle, asyncio.TimerHandle) else "a call on the loop"
    return _callable_name(fn), by


class Watchdog:
    """Watches ``loop``; reports each time a callback holds it ``threshold`` seconds or more.

    ``report(blocked)`` is called on the loop, in the context of the callback that
    blocked (so in Jupyter it prints into the cell whose work blocked); by default it
    logs the :meth:`Blocked.message` as a warning on the ``netshell.watchdog`` logger.
    A block said while it lasts (``blocked.lasting``) is reported from the watchdog's
    thread instead (the loop is held), in a copy of that context.
    ``own``: the namespaces whose top-level code is the prompt's own work (not
    reported). ``clock`` is for tests. Example::

        dog = Watchdog(reactor.loop, threshold=0.5)
        dog.start()      # ... dog.stop()
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float = DEFAULT_THRESHOLD,
                 report: Callable[[Blocked], None] | None = None, *,
                 own: Iterable[dict[str, Any]] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop = loop
        self.threshold = threshold
        self.report = report or _log_report
        self.own = list(own)
        self.clock = clock
        #: How many episodes were reported.
        self.reported = 0
        self._last = clock()  # when the loop last answered a ping: the heartbeat
        self._posted = 0  # pings posted to the loop
        self._answered = 0  # the last ping it answered
        self._thread_id: int | None = None  # the loop's thread, learnt by the heartbeat
        self._episode: _Episode | None = None
        self._ignore: float | None = None  # a stamp from before the loop was stopped
        self._running = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._quiet = contextvars.Context()  # the heartbeat's: it carries no one's context

    @property
    def threshold(self) -> float:
        """Seconds without a turn of the loop that count as blocked (above 0)."""
        return self._threshold

    @threshold.setter
    def threshold(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"the threshold is a number of seconds above 0, not {seconds!r}")
        self._threshold = float(seconds)
        self._every = self._threshold / BEATS_PER_THRESHOLD

    @property
    def lasting_after(self) -> float:
        """Seconds after which a block is said while it lasts: 2 s, or 4 thresholds."""
        return max(LASTING, 4 * self._threshold)

    @property
    def running(self) -> bool:
        return self._running

    def start(self, thread: bool = True) -> None:
        """Start the heartbeat and (unless ``thread`` is false: tests call :meth:`poll`)
        the watching thread. Safe from any thread; the loop need not run yet."""
        if self._running:
            return
        self._running = True
        self._wake.clear()
        self._last = self.clock()
        self._ping()
        if thread:
            self._thread = threading.Thread(target=self._watch, name="netshell watchdog",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching (the thread ends at once)."""
        self._running = False
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)

    def _ping(self) -> None:
        """Ask the loop to stamp the time when it next turns (from any thread).

        A call posted from the thread, not a timed call the loop re-arms: a loop with a
        timed call pending works out a timeout and waits in select() with it at every
        turn, which made the smallest turn 1 us (12%) dearer on the VM of
        docs/performance.md.
        """
        self._posted += 1
        try:
            self.loop.call_soon_threadsafe(self._stamp, self._posted, context=self._quiet)
        except RuntimeError:  # the loop is closed
            pass

    # ---- on the loop

    def _stamp(self, ping: int) -> None:
        self._last = self.clock()
        self._answered = ping
        if self._thread_id is None:
            self._thread_id = threading.get_ident()

    def _emit(self, blocked: Blocked) -> None:
        self.reported += 1
        self.report(blocked)

    # ---- in the watching thread

    def _watch(self) -> None:
        wait = 0.0
        while not self._wake.wait(wait):
            try:
                wait = self.poll()
            except Exception:  # never silent, never dead: say it, and go on watching
                log.exception("The watchdog failed; it goes on")
                wait = self.threshold

    def poll(self) -> float:
        """Look once: sample the loop if it is held, report an episode that ended.
        Returns the seconds until the next look is due."""
        self._look(self.clock())
        if self._answered == self._posted and self._running:
            # Answered: the next turn of the loop stamps the time again. Posted after the
            # look, not before: the ping wakes a waiting loop, which a sample would catch
            # in the middle of that turn rather than waiting.
            self._ping()
        return self._every

    def _look(self, now: float) -> None:
        last = self._last
        episode = self._episode
        if episode is not None and last != episode.since:
            self._episode = None
            self._finish(episode, last)
            episode = None
        if now - last < self.threshold:
            return
        if not self.loop.is_running() or self._thread_id is None:
            # Stopped (IPython's terminal between prompts), not blocked: when it runs
            # again, the stamp from before is no measure of anything.
            self._episode = None
            self._ignore = last
            return
        if last == self._ignore:
            return
        if episode is None:
            episode = self._episode = _Episode(since=last, every=self._every)
        self._sample(episode)
        lasted = now - last - episode.every / 2  # as _finish measures it
        if (not episode.told and lasted >= self.lasting_after
                and sum(episode.places.values()) >= LASTING_SAMPLES):
            # Said now, from this thread: the loop may never turn again (an endless loop).
            blocked = self._blocked(episode, lasted, lasting=True)
            if blocked is not None:
                episode.told = True
                context = episode.context.copy() if episode.context is not None else None
                with _past_a_held_prompt():
                    (context or contextvars.Context()).run(self.report, blocked)

    def _sample(self, episode: _Episode) -> None:
        assert self._thread_id is not None
        frame = sys._current_frames().get(self._thread_id)
        try:
            frames, run = _callback_frames(frame)
            for f in frames:
                if f.f_code.co_name == "<module>" and any(f.f_globals is g for g in self.own):
                    episode.own += 1
                    return
            handle = run.f_locals.get("self") if run is not None else None
            found = [f for f in frames if _is_yours(f.f_code.co_filename)]
            if found:
                culprit = found[0]
                code = culprit.f_code
                place = (code.co_name, code.co_filename, culprit.f_lineno)
            else:
                # No frame of yours: a builtin (time.sleep) run as the callback itself,
                # by a timed call or a Deferred's step, is named; library code is not.
                named = _builtin_callback(frames, handle)
                if named is None:
                    return
                place = (named[0], "", 0)
                episode.by[place] = named[1]
            episode.places[place] += 1
            if handle is None:
                return
            # Several Handles seen in one episode: one turn running many callbacks.
            episode.handles.setdefault(id(handle), handle)
            episode.handle_samples += 1
            outer = run.f_back if run is not None else None
            if not episode.calls and outer is not None and outer.f_code.co_name == "_run_once":
                calls = outer.f_locals.get("ntodo")  # asyncio's: the callbacks of this turn
                episode.calls = calls if isinstance(calls, int) else 0
            if episode.context is None:
                # The context the blocking callback runs in: the report is made in it.
                context = getattr(handle, "_context", None)
                if isinstance(context, contextvars.Context):
                    episode.context = context
        finally:
            del frame

    def _finish(self, episode: _Episode, resumed: float) -> None:
        # The ping posted about ``every`` after ``since`` was answered at ``resumed``: the
        # loop did not turn from (at latest) then until ``resumed``, and (at earliest)
        # from ``since``. The middle.
        blocked = self._blocked(episode, resumed - episode.since - episode.every / 2)
        if blocked is None:
            return
        try:
            self.loop.call_soon_threadsafe(self._emit, blocked, context=episode.context)
        except RuntimeError:  # the loop was closed meanwhile
            pass

    def _blocked(self, episode: _Episode, seconds: float, lasting: bool = False
                 ) -> Blocked | None:
        """What to say of ``episode`` (None: nothing)."""
        seen = sum(episode.places.values())
        if seconds < self.threshold or not seen or episode.own >= seen:
            return None
        place, _ = episode.places.most_common(1)[0]
        function, filename, line = place
        source = linecache.getline(filename, line).strip() if filename else ""
        where = Where(function, filename, line, source, episode.by.get(place, ""))
        # A busy turn: most samples found a callback not seen before (3,000 short calls),
        # not one callback, or two long ones, held throughout.
        handles = len(episode.handles)
        busy = handles > 1 and handles * 2 >= episode.handle_samples
        return Blocked(seconds, where, lasting=lasting, busy=busy,
                       calls=episode.calls if busy else 0)


class _HeldPromptWriter:
    """``sys.stdout`` while a report is made from the watchdog's thread at a prompt whose
    loop is held: the prompt is erased and the text written where it was, as
    prompt_toolkit's ``run_in_terminal`` does; the prompt is drawn again below when the
    loop turns. (Written through ``patch_stdout``'s proxy, the text would wait for the
    held loop.)"""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.wrote = False

    def write(self, text: str) -> int:
        output = self.app.output
        if not self.wrote:
            self.wrote = True
            self.app.renderer.erase()  # the loop is held: nothing else draws meanwhile
        output.enable_autowrap()
        output.write_raw(text)
        output.flush()
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _past_a_held_prompt() -> Iterator[None]:
    """While a prompt_toolkit prompt is shown (``patch_stdout``), print past it."""
    proxy = sys.stdout
    patch = sys.modules.get("prompt_toolkit.patch_stdout")
    app = getattr(getattr(proxy, "app_session", None), "app", None)
    if patch is None or not isinstance(proxy, patch.StdoutProxy) or app is None or not (
            app.is_running):
        yield
        return
    writer = _HeldPromptWriter(app)
    sys.stdout = writer
    try:
        yield
    finally:
        if sys.stdout is writer:
            sys.stdout = proxy
        if writer.wrote:
            app.invalidate()  # drawn again when the loop turns


def _log_report(blocked: Blocked) -> None:
    log.warning("%s", blocked.message())


# ---- one watchdog per loop, and the prompt's helper

_watchdogs: dict[int, Watchdog] = {}


def watchdog_on(loop: asyncio.AbstractEventLoop) -> Watchdog | None:
    """The watchdog watching ``loop``, if one is."""
    dog = _watchdogs.get(id(loop))
    return dog if dog is not None and dog.loop is loop and dog.running else None


def start_watchdog(loop: asyncio.AbstractEventLoop, threshold: float = DEFAULT_THRESHOLD,
                   own: Iterable[dict[str, Any]] = (),
                   report: Callable[[Blocked], None] | None = None) -> Watchdog:
    """Start watching ``loop`` (instead of any watchdog watching it already)."""
    stop_watchdog(loop)
    dog = Watchdog(loop, threshold, report, own=own)
    dog.start()
    _watchdogs[id(loop)] = dog
    return dog


def stop_watchdog(loop: asyncio.AbstractEventLoop) -> None:
    """Stop the watchdog watching ``loop``, if any."""
    dog = _watchdogs.pop(id(loop), None)
    if dog is not None:
        dog.stop()


class _Said(str):
    """Text shown without quotes at the prompt."""

    def __repr__(self) -> str:
        return str(self)


def _the_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return current.get_reactor().loop


def make_helper(namespace: dict[str, Any]) -> Callable[..., str]:
    """The prompt's ``watchdog()`` for the session whose names are ``namespace``."""

    def watchdog(on: bool | None = None, threshold: float | None = None) -> str:
        """Turn the blocked-reactor watchdog on or off, or set after how many seconds
        a callback that holds the reactor is reported; say which it is.

        ``watchdog(False)`` turns it off, ``watchdog(True)`` on, ``watchdog(threshold=1)``
        reports blocks of a second or more (and turns it on), ``watchdog()`` says.
        Raises TypeError for an ``on`` that is not True, False or None (``watchdog(0)``
        is refused, not taken as off), ValueError for a threshold that is not above 0.
        """
        if on is not None and not isinstance(on, bool):
            raise TypeError(f"watchdog() takes True (on) or False (off), not {on!r}")
        if threshold is not None and not threshold > 0:
            raise ValueError(f"the threshold is a number of seconds above 0, not {threshold!r}")
        loop = _the_loop()
        dog = watchdog_on(loop)
        if on is False:
            stop_watchdog(loop)
            dog = None
        elif on is True or threshold is not None:
            if dog is None:
                dog = start_watchdog(loop, threshold or DEFAULT_THRESHOLD, own=[namespace])
            elif threshold is not None:
                dog.threshold = threshold
        if dog is None:
            return _Said("watchdog off: a blocked reactor goes unreported; watchdog(True) "
                         "turns it on")
        return _Said(f"watchdog on: a callback that holds the reactor {dog.threshold:g} s or "
                     "more is reported; watchdog(False) turns it off")

    return watchdog
