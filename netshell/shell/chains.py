"""Deferred chains made visible: step recording for ``explain(d)``, and fire notes.

While a shell records (the prompt turns it on), every callback and errback
added to any Deferred gets a :class:`Step` that remembers which of the pair
ran, the result it got and what it returned or raised. ``explain(d)`` prints
that story. Recording is an observer of the core (:mod:`netshell.observe`):
:func:`record` registers it and :func:`stop_recording` stops it taking new
steps; the core is never patched, and pays nothing outside the shell.

:class:`Notes` prints ``Deferred #7 fired: 200`` when a Deferred shown at
the prompt has run its chain to the end, with the chain's final result.

Example::

    >>> import netshell as ns
    >>> record()
    >>> d = ns.Deferred()
    >>> _ = d.add_callback(lambda x: x * 2).add_errback(print)
    >>> d.callback(21)
    >>> print(explain(d))
    Deferred #... fired: 42
      1. callback <lambda> (line 1 of <doctest ...>)  got 21, returned 42
      2. errback print  passed by (the result was a value)
    >>> stop_recording()
"""

from __future__ import annotations

import contextvars
import gc
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from netshell import observe
from netshell.defer import CancelledError, Deferred
from netshell.failure import Failure
from netshell.shell.display import short_repr
from netshell.teach.diagrams import ChainDiagram

__all__ = ["Explanation", "Notes", "Step", "StepView", "chain_steps", "explain",
           "follow_recording", "record", "recording", "stop_recording", "unfollow_recording"]

_records: weakref.WeakKeyDictionary[Deferred[Any], list[Step]] = weakref.WeakKeyDictionary()


def callable_name(fn: Any) -> str:
    """``fn``'s name for people: qualified name, and where a lambda was written."""
    if fn is None:
        return "-"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return short_repr(fn)
    code = getattr(fn, "__code__", None)
    if name.endswith("<lambda>") and code is not None:
        return f"{name} (line {code.co_firstlineno} of {code.co_filename})"
    return str(name)


def _result_text(value: Any) -> str:
    if isinstance(value, Failure):
        return f"Failure({short_repr(value.value)})"
    if isinstance(value, Deferred):
        return f"Deferred #{value.number} (the chain waits on it)"
    return short_repr(value)


def _as_result(value: Any, shortened: str) -> str:
    """:func:`_result_text` of ``value``, given its :func:`_value_text`."""
    if isinstance(value, Failure):
        return f"Failure({shortened})"
    if isinstance(value, Deferred):
        return f"{shortened} (the chain waits on it)"
    return shortened


def _value_text(value: Any) -> str:
    if isinstance(value, Failure):
        return short_repr(value.value)
    if isinstance(value, Deferred):
        return f"Deferred #{value.number}"
    return short_repr(value)


class Step:
    """One callback/errback pair of a chain, and what happened when the chain reached it.

    It keeps the names of the pair, not the functions: a Step outlives its
    callbacks, and a function that refers to its own Deferred (a protocol's
    method added to the protocol's Deferred) would otherwise keep that
    Deferred alive for good, and its unhandled failure unlogged.
    """

    __slots__ = ("kind", "name", "callback_name", "errback_name", "ran", "got", "outcome",
                 "got_value", "gave", "gave_value", "inner", "inner_number")

    def __init__(self, callback: Any, errback: Any) -> None:
        #: the names of the pair's two sides (None for a side that lets the result pass)
        self.callback_name = None if callback is None else callable_name(callback)
        self.errback_name = None if errback is None else callable_name(errback)
        #: "callback", "errback", "both" (add_both) or "callbacks" (a pair)
        self.kind: str
        if callback is errback and callback is not None:
            self.kind, self.name = "both", callable_name(callback)
        elif errback is None:
            self.kind, self.name = "callback", callable_name(callback)
        elif callback is None:
            self.kind, self.name = "errback", callable_name(errback)
        else:
            self.kind = "callbacks"
            self.name = f"{self.callback_name} / {self.errback_name}"
        #: "callback", "errback", or None while it has not run
        self.ran: str | None = None
        self.got = ""
        self.outcome = ""
        #: what the pair got, shortened: the value's repr, or the Failure's exception's
        self.got_value = ""
        #: what it gave: "value", "failure" (raised, or returned a Failure), "deferred"
        #: (returned a Deferred the chain then waited on); "" while it has not run
        self.gave = ""
        #: what it gave, shortened (the exception's repr for a failure, "#9" for a Deferred)
        self.gave_value = ""
        #: the Deferred it returned (weakly: a Step keeps nothing alive), and its number
        self.inner: weakref.ref[Deferred[Any]] | None = None
        self.inner_number: int | None = None

    def finish(self, got: Any, result: Any, raised: bool, owner: Any = None) -> None:
        """Record one run of the pair: it got ``got`` and gave (or raised into) ``result``;
        ``owner`` is the Deferred whose step it is."""
        self.ran = "errback" if isinstance(got, Failure) else "callback"
        # Each value is shortened once: the texts below are made from that.
        self.got_value = _value_text(got)
        self.got = _as_result(got, self.got_value)
        self.gave_value = _value_text(result)
        if raised:
            self.outcome = f"raised {self.gave_value}"
        else:
            self.outcome = f"returned {_as_result(result, self.gave_value)}"
        if result is owner and owner is not None:
            # Its own Deferred: a chain cannot wait on itself, and the core fails it with a
            # TypeError instead.
            self.outcome = (f"returned its own Deferred #{result.number}: a chain cannot wait "
                            "on itself, so it failed with TypeError")
            self.gave = "failure"
            self.gave_value = "TypeError"
        elif isinstance(result, Failure):
            self.gave = "failure"
        elif isinstance(result, Deferred):
            self.gave = "deferred"
            self.inner = weakref.ref(result)
            self.inner_number = result.number
        else:
            self.gave = "value"

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


class _Recorder(observe.Observer):
    """The observer that records steps: a Step for each pair added while recording is on.

    The steps of a Deferred that have not run yet are kept by ``id`` of the core's
    step (never the step itself, which holds the callables). After
    :func:`stop_recording` no new step is taken, but steps taken before still
    record how they run; the recorder leaves the core's observers once none of
    them is pending (or their Deferreds are gone).
    """

    def __init__(self) -> None:
        self.taking = False
        # id(d) -> (a weak reference to d, {id(core step): Step}) for steps not run yet
        self.pending: dict[int, tuple[weakref.ref[Deferred[Any]], dict[int, Step]]] = {}

    def deferred_step_added(self, d: Deferred[Any], step: Any, callback: Any, errback: Any
                            ) -> None:
        if not self.taking or getattr(callback, "internal_step", False):
            # An await's step (Deferred.as_future) is the await, not a step the person
            # added: explain() leaves it out. It passes the result on untouched.
            return
        recorded = Step(callback, errback)
        steps = _records.get(d)
        if steps is None:
            steps = _records[d] = []
        steps.append(recorded)
        key = id(d)
        entry = self.pending.get(key)
        if entry is None or entry[0]() is not d:
            entry = self.pending[key] = (weakref.ref(d, self._gone(key)), {})
        entry[1][id(step)] = recorded

    def deferred_step_ran(self, d: Deferred[Any], step: Any, fn: Any, got: Any, result: Any,
                          raised: bool) -> None:
        entry = self.pending.get(id(d))
        if entry is None or entry[0]() is not d:
            return
        recorded = entry[1].pop(id(step), None)
        if recorded is None:
            return
        recorded.finish(got, result, raised, d)
        if not entry[1]:
            del self.pending[id(d)]
            self._maybe_leave()

    def _gone(self, key: int) -> Callable[[Any], None]:
        def gone(ref: Any) -> None:
            entry = self.pending.get(key)
            if entry is not None and entry[0] is ref:
                del self.pending[key]
                self._maybe_leave()
        return gone

    def _maybe_leave(self) -> None:
        if not self.taking and not self.pending:
            observe.remove_observer(self)


_recorder = _Recorder()

# What starts and stops with recording: objects with start() and stop(), held weakly (the
# late-failure report of each session, netshell.teach.late).
_followers: weakref.WeakSet[Any] = weakref.WeakSet()


def record() -> None:
    """Start recording every chain step (idempotent)."""
    _recorder.taking = True
    observe.add_observer(_recorder)
    if len(_followers) > 1:
        # A session dropped without being closed may be waiting in a reference cycle:
        # collected first, it does not start again with this one. (Not with one follower,
        # the session starting now: a collection costs the prompt's start some 20 ms.)
        gc.collect()
    for follower in list(_followers):
        follower.start()


def stop_recording() -> None:
    """Take no new steps; what was recorded stays readable (and steps taken still record
    how they run)."""
    _recorder.taking = False
    _recorder._maybe_leave()
    for follower in list(_followers):
        follower.stop()


def follow_recording(follower: Any) -> None:
    """Call ``follower.start()`` whenever recording starts (now, if it is on) and
    ``follower.stop()`` whenever it stops, until ``follower`` is collected or
    :func:`unfollow_recording`. The prompt and Jupyter record for a whole session: what
    follows recording lives as long as the session."""
    _followers.add(follower)
    if recording():
        follower.start()


def unfollow_recording(follower: Any) -> None:
    """Stop calling ``follower`` when recording starts and stops."""
    _followers.discard(follower)


def recording() -> bool:
    """True while chain steps are being recorded."""
    return _recorder.taking


class StepView(NamedTuple):
    """One recorded step of a chain as ``explain`` tells it (and the notebook draws it)."""

    number: int  #: 1 for the first step added
    kind: str  #: "callback", "errback", "both" or "callbacks", as :attr:`Step.kind`
    callback: str | None  #: the callback side's name (None: the result passes by there)
    errback: str | None  #: the errback side's name
    #: "callback" or "errback" (the side that ran), "skipped" (passed by), "pending"
    status: str
    got: str  #: the result it got, as text ("" unless it ran)
    outcome: str  #: "returned ..." or "raised ..." ("" unless it ran)
    text: str  #: explain's line for it, without the number: "callback f  got 1, returned 2"
    got_value: str = ""  #: what it got, shortened (a Failure's exception's repr)
    gave: str = ""  #: "value", "failure", "deferred" (it returned one), "" unless it ran
    gave_value: str = ""  #: what it gave, shortened ("Deferred #9" for a Deferred)
    inner: int | None = None  #: the number of the Deferred it returned, if it did


def chain_steps(d: Deferred[Any]) -> list[StepView]:
    """The steps recorded for ``d``'s chain, in order, with what happened at each."""
    steps = _records.get(d, [])
    last_ran = max((i for i, s in enumerate(steps) if s.ran), default=-1)
    views = []
    for i, step in enumerate(steps, 1):
        text = step.describe()
        if step.ran:
            status = step.ran
            if step.kind in ("callback", "errback"):
                text += f"  got {step.got}, {step.outcome}"
            else:  # add_both, or add_callbacks with both sides: say which side ran
                text += f"  ran as {step.ran}: got {step.got}, {step.outcome}"
        elif i - 1 < last_ran or (d.called and not _waiting(d) and not d.paused):
            status = "skipped"
            side = "a Failure" if step.kind == "callback" else "a value"
            text += f"  passed by (the result was {side})"
        else:
            status = "pending"
            text += "  not run yet"
        views.append(StepView(i, step.kind, step.callback_name, step.errback_name, status,
                              step.got, step.outcome, text, step.got_value, step.gave,
                              step.gave_value, step.inner_number))
    return views


def _inner_deferreds(d: Deferred[Any]) -> dict[int, Deferred[Any]]:
    """The Deferreds ``d``'s recorded steps returned that are still alive, by number."""
    found: dict[int, Deferred[Any]] = {}
    for step in _records.get(d, []):
        inner = step.inner() if step.inner is not None else None
        if inner is not None:
            found[inner.number] = inner
    waiting = d.waiting_on
    if waiting is not None:
        found[waiting.number] = waiting
    return found


class Explanation(str):
    """What ``explain(d)`` returns: the text, shown without quotes; in Jupyter, a drawing.

    Besides the text it keeps what the drawing needs, as it was when ``explain`` ran:
    the Deferred's ``number``, its ``state`` ("fired: 42"), the ``steps``
    (:class:`StepView`) and what the chain ``waits`` for now ("" when nothing).
    """

    number: int
    state: str
    steps: tuple[StepView, ...]
    waits: str
    #: how the chain stands: "value" or "failure" (it ran out of steps with one),
    #: "waiting" (on another Deferred, or paused), "pending" (not fired)
    ended: str
    #: the result it ended with, shortened ("" unless ``ended`` is "value" or "failure")
    ended_value: str
    #: the explanations of the Deferreds its steps returned (still alive), by number
    inners: dict[int, Explanation]

    def __new__(cls, text: str, number: int = 0, state: str = "",
                steps: tuple[StepView, ...] = (), waits: str = "", ended: str = "",
                ended_value: str = "", inners: dict[int, Explanation] | None = None
                ) -> Explanation:
        self = super().__new__(cls, text)
        self.number, self.state, self.steps, self.waits = number, state, steps, waits
        self.ended, self.ended_value, self.inners = ended, ended_value, inners or {}
        return self

    def __repr__(self) -> str:
        return str(self)

    def diagram(self, width: int | None = None, inner: bool = True) -> ChainDiagram:
        """The chain drawn: two columns (callback, errback), one row per step, the path
        the result took marked, the value at each step, where it waited on another
        Deferred (with that one's chain drawn inside, unless ``inner`` is False).

        Text at the prompt, ``width`` columns wide (default: the terminal's, at most
        100); SVG in Jupyter. See :mod:`netshell.teach.diagrams`.
        """
        return ChainDiagram(self, width=width, inner=inner)

    def _repr_html_(self) -> str:  # Jupyter's display (netshell.kernel.displays draws it)
        from netshell.kernel.displays import explanation_html

        return explanation_html(self)


def explain(d: Deferred[Any]) -> Explanation:
    """A Deferred's chain, step by step: each callback and errback, what ran, got and returned.

    Steps added while recording is on are shown with their story; the last
    line says what the chain is waiting for now, if anything. The text is an
    :class:`Explanation` (a str), which Jupyter draws as a diagram;
    ``explain(d).diagram()`` draws it at the prompt too.
    """
    if not isinstance(d, Deferred):
        raise TypeError(f"explain() takes a Deferred, not {type(d).__name__}")
    return _explain(d, 0)


def _explain(d: Deferred[Any], depth: int) -> Explanation:
    state = _state(d)
    steps = chain_steps(d)
    lines = [f"Deferred #{d.number} {state}"]
    lines.extend(f"  {step.number}. {step.text}" for step in steps)
    if not steps:
        lines.append("  (no callbacks recorded)")
    waits = waiting_text(d)
    if waits:
        lines.append(f"  {waits}")
    ended, ended_value = _ended(d)
    inners = {}
    if depth < _INNER_DEPTH:
        inners = {n: _explain(inner, depth + 1)
                  for n, inner in _inner_deferreds(d).items() if inner is not d}
    return Explanation("\n".join(lines), d.number, state, tuple(steps), waits, ended,
                       ended_value, inners)


#: How deep ``explain`` follows the Deferreds a chain waited on, for its diagram.
_INNER_DEPTH = 3


def _ended(d: Deferred[Any]) -> tuple[str, str]:
    if not d.called:
        return "pending", ""
    if d.waiting_on is not None or d.paused:
        return "waiting", ""
    result = d.result
    if isinstance(result, Failure):
        return "failure", _value_text(result)
    return "value", _value_text(result)


def waiting_text(d: Deferred[Any]) -> str:
    """What ``d``'s chain waits for now, as ``explain`` ends: "now waiting to be fired",
    "now waiting on Deferred #5 (pending)", "now paused"; "" when it waits for nothing."""
    inner = d.waiting_on
    if inner is not None:
        return f"now waiting on Deferred #{inner.number} ({_state(inner)})"
    if not d.called:
        return "now waiting to be fired"
    if d.paused:
        return "now paused"
    return ""


def state_text(d: Deferred[Any]) -> str:
    """``d``'s state as ``explain``'s first line says it: "pending", "fired: 42",
    "failed: ValueError('bad')", "cancelled", "waiting on #5"."""
    return _state(d)


def _waiting(d: Deferred[Any]) -> bool:
    return d.waiting_on is not None


def _state(d: Deferred[Any]) -> str:
    if not d.called:
        return "pending"
    r = d.result
    if isinstance(r, Deferred):
        return f"waiting on #{r.number}"
    if isinstance(r, Failure):
        return _failed_text(r)
    return f"fired: {short_repr(r)}"


def _failed_text(f: Failure) -> str:
    if f.check(CancelledError):
        return "cancelled"
    return f"failed: {short_repr(f.value)}"


# ---- notes


class Notes(observe.Observer):
    """Prints a note when a Deferred shown at the prompt fires: ``Deferred #7 fired: 200``.

    The note comes when the Deferred's chain has run to its end, with the
    chain's final result (an ``await`` leaves the result in the chain, so
    awaiting a watched Deferred notes what it fired with; Ctrl-C during the
    await cancels it: ``Deferred #7 cancelled``). ``out`` is called with
    each note's text. ``enabled`` (False) turns the "fired" notes off,
    without forgetting which Deferreds are watched; a failure is noted
    whatever ``enabled`` says. Notes observes the core's Deferreds
    (:mod:`netshell.observe`) only while it watches at least one.
    """

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.enabled = True
        # id(d) -> a weak reference to d, for each Deferred waiting for its note
        self._watched: dict[int, weakref.ref[Deferred[Any]]] = {}
        # id(d) -> the context d was shown in: its note is written there
        self._contexts: dict[int, contextvars.Context] = {}
        #: called (each once) by :meth:`close`: what else ends with the session's notes
        #: (the late-failure report, :mod:`netshell.teach.late`)
        self.on_close: list[Callable[[], None]] = []

    def watch(self, d: Deferred[Any]) -> None:
        """Note when ``d``'s chain has run to its end.

        The note is written in the context this is called in (a copy of it), whatever
        code fires ``d``: in a Jupyter kernel, into the output of the cell that showed
        ``d``, not into the cell (or the thread) that happens to fire it.
        """
        if self.watching(d):
            return
        key = id(d)

        def gone(ref: Any) -> None:
            if self._watched.get(key) is ref:
                self._forget(key)

        self._watched[key] = weakref.ref(d, gone)
        self._contexts[key] = contextvars.copy_context()
        observe.add_observer(self)

    def watching(self, d: Deferred[Any]) -> bool:
        ref = self._watched.get(id(d))
        return ref is not None and ref() is d

    def close(self) -> None:
        """Forget every watched Deferred: no more notes (and call :attr:`on_close`)."""
        self._watched.clear()
        self._contexts.clear()
        observe.remove_observer(self)
        closing, self.on_close = self.on_close, []
        for f in closing:
            f()

    def _forget(self, key: int) -> contextvars.Context | None:
        self._watched.pop(key, None)
        context = self._contexts.pop(key, None)
        if not self._watched:
            observe.remove_observer(self)
        return context

    def _note(self, d: Deferred[Any], result: Any) -> bool:
        if not self.watching(d):
            return False
        context = self._forget(id(d))
        failed = isinstance(result, Failure)
        # notify(False) quiets the "fired" notes, never a failure: errors are not silent.
        if self.enabled or failed:
            text = format_note(d.number, result)
            if context is None:
                self.out(text)
            else:
                context.run(self.out, text)
        return failed

    # ---- the core's events

    def deferred_settled(self, d: Deferred[Any], result: Any) -> None:
        if self._note(d, result) and d.waiting_on is None and d.called:
            # The person has seen it: not "unhandled" when the Deferred is collected.
            d.mark_failure_seen()


def format_note(number: int, result: Any) -> str:
    """The note's text: ``Deferred #7 fired: 200``, ``Deferred #7 failed: Error(...)``, or
    ``Deferred #7 cancelled``."""
    if isinstance(result, Failure):
        return f"Deferred #{number} {_failed_text(result)}"
    return f"Deferred #{number} fired: {short_repr(result)}"
