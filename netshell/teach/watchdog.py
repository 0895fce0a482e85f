"""The blocked-reactor watchdog: says when a callback held the loop, for how long, and where.

A callback that blocks (``time.sleep(1)`` in ``data_received``, a slow query, a
busy loop) stops everything else on the reactor: no other connection is served, no
timer fires, the prompt does not redraw. A Deferred does not change that: code
run by a callback runs on the loop, whatever it returns. The watchdog notices and
says so, once per blocking episode, when the loop runs again::

    the reactor was blocked for 1.0 s in on_data (<netsh-3>, line 2): time.sleep(1)
      nothing else ran meanwhile: run blocking work with defer_to_thread(f, *args)

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
import contextvars
import importlib.util
import linecache
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, NamedTuple

import netshell
from netshell import current

__all__ = ["DEFAULT_THRESHOLD", "HINT", "Blocked", "Watchdog", "Where", "make_helper",
           "start_watchdog", "stop_watchdog", "watchdog_on"]

log = logging.getLogger("netshell.watchdog")

#: Seconds the loop may go without turning before the watchdog speaks.
DEFAULT_THRESHOLD = 0.25
#: Heartbeats per threshold: the precision of the time reported.
BEATS_PER_THRESHOLD = 5
#: The second line of every report.
HINT = "nothing else ran meanwhile: run blocking work with defer_to_thread(f, *args)"

_HANDLE_RUN = asyncio.events.Handle._run.__code__
_NETSHELL = os.path.dirname(os.path.abspath(netshell.__file__)) + os.sep
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
_REACTOR_FILE = os.path.abspath(sys.modules["netshell.reactor"].__file__ or "")
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

    def __str__(self) -> str:
        text = f"{self.function} ({_display_name(self.filename)}, line {self.line})"
        return f"{text}: {self.source}" if self.source else text


class Blocked(NamedTuple):
    """One blocking episode: how long the loop did not turn, and where it was held."""

    seconds: float
    where: Where

    def message(self) -> str:
        """What the watchdog says: two lines, the second the hint."""
        return f"the reactor was blocked for {self.seconds:.1f} s in {self.where}\n  {HINT}"


class _Episode:
    """What was seen while the loop did not turn."""

    def __init__(self, since: float, every: float) -> None:
        self.since = since  # the last heartbeat before the loop stopped turning
        self.every = every  # the heartbeat's period then
        self.places: Counter[tuple[str, str, int]] = Counter()  # samples per place
        self.own = 0  # samples that found the prompt's own work (an input, a cell, a script)
        self.context: contextvars.Context | None = None  # the blocking callback's


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


class Watchdog:
    """Watches ``loop``; reports each time a callback holds it ``threshold`` seconds or more.

    ``report(blocked)`` is called on the loop, in the context of the callback that
    blocked (so in Jupyter it prints into the cell whose work blocked); by default it
    logs the :meth:`Blocked.message` as a warning on the ``netshell.watchdog`` logger.
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

    def _sample(self, episode: _Episode) -> None:
        assert self._thread_id is not None
        frame = sys._current_frames().get(self._thread_id)
        try:
            frames, run = _callback_frames(frame)
            for f in frames:
                if f.f_code.co_name == "<module>" and any(f.f_globals is g for g in self.own):
                    episode.own += 1
                    return
            found = [f for f in frames if _is_yours(f.f_code.co_filename)]
            if not found:
                return
            culprit = found[0]
            code = culprit.f_code
            episode.places[(code.co_name, code.co_filename, culprit.f_lineno)] += 1
            if episode.context is None and run is not None:
                # The context the blocking callback runs in: the report is made in it.
                handle = run.f_locals.get("self")
                context = getattr(handle, "_context", None)
                if isinstance(context, contextvars.Context):
                    episode.context = context
        finally:
            del frame

    def _finish(self, episode: _Episode, resumed: float) -> None:
        # The ping posted about ``every`` after ``since`` was answered at ``resumed``: the
        # loop did not turn from (at latest) then until ``resumed``, and (at earliest)
        # from ``since``. The middle.
        seconds = resumed - episode.since - episode.every / 2
        seen = sum(episode.places.values())
        if seconds < self.threshold or not seen or episode.own >= seen:
            return
        (function, filename, line), _ = episode.places.most_common(1)[0]
        where = Where(function, filename, line, linecache.getline(filename, line).strip())
        try:
            self.loop.call_soon_threadsafe(self._emit, Blocked(seconds, where),
                                           context=episode.context)
        except RuntimeError:  # the loop was closed meanwhile
            pass


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
        Raises ValueError for a threshold that is not above 0.
        """
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
