"""Failures reported where they happen: a chain that ends with a failure nobody handled.

Python logs "Unhandled error in Deferred" when such a Deferred is garbage collected:
maybe at once, maybe minutes later, far from its cause, or never while something holds
it. At the prompt (and in Jupyter, and in ``netsh run``) :class:`LateFailures` reports it
instead shortly after the chain ended: once the ``grace`` has passed (0.5 seconds unless
the person sets another with ``late_failures(grace=...)``) and nothing has handled the
failure in the meantime. The report names the input whose work it was and the chain's
steps::

    Unhandled error in Deferred #12 (input [3]): ZeroDivisionError: division by zero
      1. callback <lambda> (line 1 of <netsh-3>)  got None, raised ZeroDivisionError(...)
      (no errback handled it within 0.5s; tb() shows where it was raised)

A failure is reported once: it is then marked seen, and not logged again when the
Deferred is collected. One that an errback handles within the grace (a later input adds
``d.add_errback(...)``), that an ``await`` received, or that a note already showed, is not
reported at all. A chain that fails while the input that started it still runs waits for
that input to finish, and gets its grace from then.

It is an observer of the core's Deferred events (:mod:`netshell.observe`); the core is
never patched. Times are the reactor's (``call_later``), or a given ``clock``'s: tests
run it on :class:`netshell.testing.Clock`.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from netshell import observe
from netshell.current import get_reactor
from netshell.defer import Deferred
from netshell.failure import Failure
from netshell.shell import chains

__all__ = ["DEFAULT_GRACE", "HINT", "LateFailures", "current_input", "install", "report_text"]

#: Seconds a failure waits for an errback before it is reported.
DEFAULT_GRACE = 0.5

#: The number of the prompt's input whose work runs now: set for the next input after each
#: one, in the context the prompt runs its inputs in, so what an input schedules (timed
#: calls, tasks, connections) carries it.
current_input: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "netshell_current_input", default=None)


def _unhandled(d: Deferred[Any], failure: Failure) -> bool:
    """True if ``d``'s chain rests with ``failure`` and it would be logged as unhandled when
    ``d`` is collected: no errback handled it, no await received it, nobody marked it seen."""
    if not d.called or d.paused or d.waiting_on is not None or d.result is not failure:
        return False
    logger = d._fail_logger
    return logger is not None and logger.failure is failure


#: The report's last line: ``{grace}`` is the grace in seconds.
HINT = "  (no errback handled it within {grace}s; tb() shows where it was raised)"


def report_text(d: Deferred[Any], failure: Failure, where: str | None, grace: float,
                hint: str = HINT) -> str:
    """The report of ``d``'s unhandled ``failure``: a line saying what failed and where,
    the chain's steps as ``explain(d)`` tells them (when they were recorded), and
    ``hint``."""
    exc = failure.value
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    head = f"Unhandled error in Deferred #{d.number}"
    if where:
        head += f" ({where})"
    lines = [f"{head}: {what}"]
    lines.extend(line for line in str(chains.explain(d)).splitlines()[1:]
                 if line.strip() != "(no callbacks recorded)")
    if hint:
        lines.append(hint.format(grace=f"{grace:g}"))
    return "\n".join(lines)


class _Pending(NamedTuple):
    d: Deferred[Any]  # held until the report: a Deferred collected sooner is not reported
    failure: Failure
    context: contextvars.Context  # of the work that failed: the report is written there
    where: str | None
    timer: Any


class LateFailures(observe.Observer):
    """Reports the Deferreds whose chains end with a failure that nothing handled in time.

    ``out(text)`` writes a report, called in the context of the work that failed (in
    Jupyter: into the output of the cell whose work it was). ``where(failure)``, called
    in that context too, names the input for the report ("input [3]", a script's line),
    or None. ``busy()`` says which input runs now (as ``where`` names it), None while none
    does: a failure of that input's work waits for it to finish (:meth:`input_done`).
    ``clock`` is where the grace is timed (default: the reactor). ``on_report(failure)``
    is called after each report (the prompt keeps it for ``tb()``).
    """

    def __init__(self, out: Callable[[str], None], *, grace: float = DEFAULT_GRACE,
                 clock: Any = None, where: Callable[[Failure], str | None] | None = None,
                 busy: Callable[[], str | None] | None = None,
                 on_report: Callable[[Failure], None] | None = None, hint: str = HINT
                 ) -> None:
        self.out = out
        #: the report's last line (see :data:`HINT`)
        self.hint = hint
        self.grace = grace
        self.clock = clock
        self.where = where or (lambda f: None)
        self.busy = busy or (lambda: None)
        self.on_report = on_report
        #: False: no reports (an unhandled failure is logged when collected, as without)
        self.enabled = True
        #: how many reports were written
        self.reported = 0
        self._pending: dict[int, _Pending] = {}
        self._held: list[_Pending] = []
        self._home = threading.get_ident()
        self._reactor: Any = None
        self._started = False

    # ---- on and off

    def start(self) -> None:
        """Start watching the core's Deferreds (idempotent)."""
        self._home = threading.get_ident()
        self._started = True
        observe.add_observer(self)

    def close(self) -> None:
        """Stop for good (:meth:`stop`, and no longer start with chain recording)."""
        chains.unfollow_recording(self)
        self.stop()

    def stop(self) -> None:
        """Stop: no more reports; failures waiting for theirs are left to be logged when
        collected, as they would be without this. :meth:`start` starts again."""
        self._started = False
        observe.remove_observer(self)
        for entry in [*self._pending.values(), *self._held]:
            if entry.timer is not None and entry.timer.active():
                entry.timer.cancel()
        self._pending.clear()
        self._held.clear()

    def flush(self, hint: str | None = None) -> None:
        """Report now what waits for its grace or its input (``netsh run`` ends: no later),
        with ``hint`` as the reports' last line (default: :attr:`hint`)."""
        for entry in [*self._pending.values(), *self._held]:
            if entry.timer is not None and entry.timer.active():
                entry.timer.cancel()
        entries = [*self._held, *self._pending.values()]
        self._pending.clear()
        self._held.clear()
        for entry in entries:
            if self.enabled and _unhandled(entry.d, entry.failure):
                self._report(entry, hint)

    def input_done(self, entry: dict[str, Any] | None = None) -> None:
        """An input finished: the failures of its work held back get their grace from now."""
        held, self._held = self._held, []
        for pending in held:
            if _unhandled(pending.d, pending.failure):
                self._time(pending.d, pending.failure, pending.context, pending.where)

    # ---- the core's events

    def deferred_settled(self, d: Deferred[Any], result: Any) -> None:
        if not isinstance(result, Failure) or not self.enabled or not _unhandled(d, result):
            return
        context = contextvars.copy_context()
        if threading.get_ident() != self._home:
            # Fired in another thread: timed on the loop's thread, where the reports are.
            reactor = self._reactor
            if reactor is not None:
                reactor.call_from_thread(self._settled_here, d, result, context)
            return
        self._settled_here(d, result, context)

    def _settled_here(self, d: Deferred[Any], failure: Failure,
                      context: contextvars.Context) -> None:
        entry = self._pending.get(id(d))
        if entry is not None and entry.d is d and entry.failure is failure:
            return  # the same failure, passed on by steps added since: its grace goes on
        try:
            where = context.run(self.where, failure)
        except RuntimeError:  # that context is the one running now
            where = self.where(failure)
        self._time(d, failure, context, where)

    def _time(self, d: Deferred[Any], failure: Failure, context: contextvars.Context,
              where: str | None) -> None:
        old = self._pending.pop(id(d), None)
        if old is not None and old.timer is not None and old.timer.active():
            old.timer.cancel()
        clock = self.clock
        if clock is None:
            clock = self._reactor = get_reactor()
        timer = clock.call_later(self.grace, self._due, id(d))
        self._pending[id(d)] = _Pending(d, failure, context, where, timer)

    def _due(self, key: int) -> None:
        entry = self._pending.pop(key, None)
        if entry is None or not self.enabled or not _unhandled(entry.d, entry.failure):
            return
        if entry.where is not None and entry.where == self.busy():
            self._held.append(entry._replace(timer=None))  # its input still runs
            return
        self._report(entry)

    def _report(self, entry: _Pending, hint: str | None = None) -> None:
        d, failure = entry.d, entry.failure
        text = report_text(d, failure, entry.where, self.grace,
                           self.hint if hint is None else hint)
        d.mark_failure_seen()  # reported: not logged again when collected
        self.reported += 1
        try:
            entry.context.run(self.out, text)
        except RuntimeError:  # that context is the one running now
            self.out(text)
        if self.on_report is not None:
            self.on_report(failure)


def _prompt_where(failure: Failure) -> str | None:
    n = current_input.get()
    return None if n is None else f"input [{n}]"


def install(console: Any, out: Callable[[str], None] | None = None,
            where: Callable[[Failure], str | None] | None = None,
            busy: Callable[[], str | None] | None = None, clock: Any = None,
            follow: bool = True) -> LateFailures:
    """Report late failures for ``console`` (a :class:`~netshell.shell.console.Console`).

    Reports go to ``out`` (default: ``console.err``, where it shows errors) and are kept
    for ``tb()``; ``where`` and ``busy`` default to the prompt's inputs, numbered as the
    console numbers them. It follows the console's inputs (``console.after_input``) and
    stops for good when the console closes. With ``follow`` it watches while chains are
    recorded (:func:`netshell.shell.chains.record`: the prompt and Jupyter record for the
    whole session); otherwise call :meth:`LateFailures.start`.
    """
    console_ref = weakref.ref(console)

    def keep_for_tb(failure: Failure) -> None:
        c = console_ref()
        if c is not None:
            c.last_error = failure.value.with_traceback(failure.tb)

    def running() -> str | None:
        c = console_ref()
        if c is None or getattr(c, "task", None) is None:
            return None
        return f"input [{c.count}]"

    late = LateFailures(out or _weak_err(console_ref), where=where or _prompt_where,
                        busy=busy or running, on_report=keep_for_tb, clock=clock)
    current_input.set(console.count + 1)

    def after_input(entry: dict[str, Any]) -> None:
        if entry.get("type") != "input":
            return
        # What the next input schedules carries its number (this runs in the context the
        # console runs its inputs in).
        current_input.set(int(entry.get("n", 0)) + 1)
        late.input_done(entry)

    console.after_input.append(after_input)
    console.notes.on_close.append(late.close)
    if follow:
        chains.follow_recording(late)
    return late


def _weak_err(console_ref: weakref.ref[Any]) -> Callable[[str], None]:
    def err(text: str) -> None:
        c = console_ref()
        if c is not None:
            c.err(text)
    return err
