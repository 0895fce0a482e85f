"""Deferred chains made visible: step recording for ``explain(d)``, and fire notes.

While a shell records (the prompt turns it on), every callback and errback
added to any Deferred is wrapped in a :class:`Step` that remembers which of
the pair ran, the result it got and what it returned or raised.
``explain(d)`` prints that story. Nothing is patched until :func:`record`
is called, and :func:`stop_recording` puts Deferred back as it was, so the
core pays nothing outside the shell.

:class:`Notes` prints ``Deferred #7 fired: 200`` when a Deferred shown at
the prompt fires later; its step is kept last in the chain, so the note
shows the chain's final result.

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

import weakref
from collections.abc import Callable
from typing import Any

from netshell.defer import Deferred
from netshell.failure import Failure
from netshell.shell.display import short_repr

__all__ = ["Notes", "Step", "explain", "record", "recording", "stop_recording"]

_records: weakref.WeakKeyDictionary[Deferred[Any], list[Step]] = weakref.WeakKeyDictionary()
_originals: dict[str, Callable[..., Any]] = {}


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


class Step:
    """One callback/errback pair of a chain, and what happened when the chain reached it.

    It keeps the names of the pair, not the functions: a Step outlives its
    callbacks, and a function that refers to its own Deferred (a protocol's
    method added to the protocol's Deferred) would otherwise keep that
    Deferred alive for good, and its unhandled failure unlogged.
    """

    __slots__ = ("kind", "name", "ran", "got", "outcome")

    def __init__(self, callback: Any, errback: Any) -> None:
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
            self.name = f"{callable_name(callback)} / {callable_name(errback)}"
        #: "callback", "errback", or None while it has not run
        self.ran: str | None = None
        self.got = ""
        self.outcome = ""

    def wrap(self, fn: Callable[..., Any], which: str) -> Callable[..., Any]:
        step = self

        def run_step(result: Any, *args: Any, **kw: Any) -> Any:
            step.ran = which
            step.got = _result_text(result)
            try:
                out = fn(result, *args, **kw)
            except BaseException as e:
                step.outcome = f"raised {short_repr(e)}"
                raise
            step.outcome = f"returned {_result_text(out)}"
            return out

        return run_step

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


def _recorded(d: Deferred[Any]) -> list[Step]:
    steps = _records.get(d)
    if steps is None:
        steps = _records[d] = []
    return steps


def _wrap_pair(d: Deferred[Any], cb: Any, eb: Any) -> tuple[Any, Any]:
    step = Step(cb, eb)
    _recorded(d).append(step)
    both = cb is eb and cb is not None
    wrapped_cb = step.wrap(cb, "callback") if cb is not None else None
    if both:
        # One wrapper for both sides: it tells which ran from the result it gets.
        def run_both(result: Any, *args: Any, **kw: Any) -> Any:
            step.ran = "errback" if isinstance(result, Failure) else "callback"
            step.got = _result_text(result)
            try:
                out = cb(result, *args, **kw)
            except BaseException as e:
                step.outcome = f"raised {short_repr(e)}"
                raise
            step.outcome = f"returned {_result_text(out)}"
            return out

        return run_both, run_both
    wrapped_eb = step.wrap(eb, "errback") if eb is not None else None
    return wrapped_cb, wrapped_eb


def _add_callback(self: Deferred[Any], callback: Any, *args: Any, **kw: Any) -> Deferred[Any]:
    cb, _ = _wrap_pair(self, callback, None)
    _originals["add_callback"](self, cb, *args, **kw)
    return _after_add(self, callback)


def _add_errback(self: Deferred[Any], errback: Any, *args: Any, **kw: Any) -> Deferred[Any]:
    _, eb = _wrap_pair(self, None, errback)
    _originals["add_errback"](self, eb, *args, **kw)
    return _after_add(self, errback)


def _add_both(self: Deferred[Any], callback: Any, *args: Any, **kw: Any) -> Deferred[Any]:
    cb, _ = _wrap_pair(self, callback, callback)
    _originals["add_both"](self, cb, *args, **kw)
    return _after_add(self, callback)


def _add_callbacks(
    self: Deferred[Any], callback: Any, errback: Any = None, *args: Any, **kw: Any
) -> Deferred[Any]:
    cb, eb = _wrap_pair(self, callback, errback)
    _originals["add_callbacks"](self, cb, eb, *args, **kw)
    return _after_add(self, callback)


_PATCHES = {
    "add_callback": _add_callback,
    "add_errback": _add_errback,
    "add_both": _add_both,
    "add_callbacks": _add_callbacks,
}


def record() -> None:
    """Start recording every chain step (idempotent)."""
    if _originals:
        return
    for name, patched in _PATCHES.items():
        _originals[name] = getattr(Deferred, name)
        setattr(Deferred, name, patched)


def stop_recording() -> None:
    """Put Deferred back as it was; what was recorded stays readable."""
    for name, original in _originals.items():
        setattr(Deferred, name, original)
    _originals.clear()


def recording() -> bool:
    """True while chain steps are being recorded."""
    return bool(_originals)


def explain(d: Deferred[Any]) -> str:
    """A Deferred's chain, step by step: each callback and errback, what ran, got and returned.

    Steps added while recording is on are shown with their story; the last
    line says what the chain is waiting for now, if anything.
    """
    if not isinstance(d, Deferred):
        raise TypeError(f"explain() takes a Deferred, not {type(d).__name__}")
    lines = [f"Deferred #{d.number} {_state(d)}"]
    steps = _records.get(d, [])
    last_ran = max((i for i, s in enumerate(steps) if s.ran), default=-1)
    for i, step in enumerate(steps, 1):
        text = f"  {i}. {step.describe()}"
        if step.ran:
            if step.kind in ("callback", "errback"):
                text += f"  got {step.got}, {step.outcome}"
            else:  # add_both, or add_callbacks with both sides: say which side ran
                text += f"  ran as {step.ran}: got {step.got}, {step.outcome}"
        elif i - 1 < last_ran or (d.called and not _waiting(d) and not d.paused):
            side = "a Failure" if step.kind == "callback" else "a value"
            text += f"  passed by (the result was {side})"
        else:
            text += "  not run yet"
        lines.append(text)
    if not steps:
        lines.append("  (no callbacks recorded)")
    inner = d.waiting_on
    if inner is not None:
        lines.append(f"  now waiting on Deferred #{inner.number} ({_state(inner)})")
    elif not d.called:
        lines.append("  now waiting to be fired")
    elif d.paused:
        lines.append("  now paused")
    return "\n".join(lines)


def _waiting(d: Deferred[Any]) -> bool:
    return d.waiting_on is not None


def _state(d: Deferred[Any]) -> str:
    if not d.called:
        return "pending"
    r = d.result
    if isinstance(r, Deferred):
        return f"waiting on #{r.number}"
    if isinstance(r, Failure):
        return f"failed: {short_repr(r.value)}"
    return f"fired: {short_repr(r)}"


# ---- notes


def _seen(d: Deferred[Any], failure: Failure) -> None:
    logger = d._fail_logger
    if logger is not None and logger.failure is failure:
        logger.failure = None


class Notes:
    """Prints a note when a Deferred shown at the prompt fires: ``Deferred #7 fired: 200``.

    ``out`` is called with each note's text. ``enabled`` (False) turns the
    "fired" notes off, without forgetting which Deferreds are watched; a
    failure is noted whatever ``enabled`` says.
    """

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.enabled = True
        self._watched: weakref.WeakKeyDictionary[Deferred[Any], Callable[..., Any]] = (
            weakref.WeakKeyDictionary()
        )

    def watch(self, d: Deferred[Any]) -> None:
        """Note when ``d``'s chain has run to its end (again: the note stays last)."""
        if d in self._watched:
            return
        number = d.number

        def note(result: Any) -> Any:
            self._watched.pop(d, None)
            failed = isinstance(result, Failure)
            # notify(False) quiets the "fired" notes, never a failure: errors are not silent.
            if self.enabled or failed:
                self.out(format_note(number, result))
            if failed:
                # The person has seen it: not "unhandled" when the Deferred is collected.
                # The chain records the failure as unhandled after this step returns.
                from netshell.reactor import get_reactor

                get_reactor().call_soon(_seen, d, result)
            return result

        self._watched[d] = note
        add_both = _originals.get("add_both", Deferred.add_both)
        add_both(d, note)
        _watchers.add(self)

    def keep_last(self, d: Deferred[Any], before_last: bool = False) -> None:
        """Move ``d``'s note to the end of its chain (``before_last``: just before the step
        added last, one that takes the result out, such as an await)."""
        note = self._watched.get(d)
        if note is None:
            return
        cbs = d._callbacks
        for i, entry in enumerate(cbs):
            if entry[0] is note:
                moved = cbs.pop(i)
                cbs.insert(len(cbs) - (1 if before_last else 0), moved)
                return

    def watching(self, d: Deferred[Any]) -> bool:
        return d in self._watched


_watchers: weakref.WeakSet[Notes] = weakref.WeakSet()


def _after_add(d: Deferred[Any], fn: Any = None) -> Deferred[Any]:
    consumes = getattr(fn, "consumes_result", False)
    for notes in _watchers:
        notes.keep_last(d, before_last=consumes)
    return d


def format_note(number: int, result: Any) -> str:
    """The note's text: ``Deferred #7 fired: 200`` or ``Deferred #7 failed: Error(...)``."""
    if isinstance(result, Failure):
        return f"Deferred #{number} failed: {short_repr(result.value)}"
    return f"Deferred #{number} fired: {short_repr(result)}"
