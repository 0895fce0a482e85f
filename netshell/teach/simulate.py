"""``simulate(steps, value)``: draw what a chain built from ``steps`` does, running nothing real.

The steps run on a real :class:`netshell.Deferred` (the same code as any chain), with
nothing on the network and no reactor: a step that waits waits on a virtual clock
(:class:`netshell.testing.Clock`) that is moved on until the chain is done. What comes
back is the chain drawn (:class:`~netshell.teach.diagrams.ChainDiagram`), with the result.

The step language
-----------------

``steps`` is a list. Each item is one step of the chain: a pair ``(callback, errback)``
(as ``d.add_callbacks(callback, errback)``), or a single callback (as
``d.add_callback``). Each side is ``None`` (no function there: the result passes that
side by), a Python callable, or a short text:

``"return EXPR"``
    returns the Python expression ``EXPR``, where ``x`` is what the step got (a value on
    the callback side, a Failure on the errback side; ``f`` is the same)
``"raise EXC"``
    raises ``EXC``: an exception class or instance (``ValueError``, ``KeyError('id')``)
``"pass"``
    returns what it got, unchanged (it ran; a ``None`` side does not run)
``"trap EXC, ..."``
    errback side only: ``f.trap(EXC, ...)``, handling those exceptions (the chain goes
    on with ``None``) and raising any other again
``"wait SECONDS"``
    returns a Deferred that gives what the step got after ``SECONDS`` (virtual): the
    chain waits on it

``value`` is what the chain is fired with: an exception (class or instance) or a
:class:`~netshell.Failure` fires it with ``errback``, anything else with ``callback``.

Example::

    >>> sim = simulate(["return x * 2", ("raise ValueError('odd')", None),
    ...                 (None, "return 0")], 21, width=44)
    >>> sim.result
    0
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Callable, Iterable
from typing import Any

import netshell as ns
from netshell.defer import Deferred
from netshell.failure import Failure
from netshell.shell import chains
from netshell.teach.diagrams import ChainDiagram
from netshell.testing import Clock

__all__ = ["Simulation", "parse_side", "simulate"]

#: How many times the virtual clock is moved on before a simulation gives up waiting.
MAX_TURNS = 1000

_FORMS = ('"return EXPR", "raise EXC", "pass", "trap EXC, ..." (errback side), '
          '"wait SECONDS", None or a callable')

# What the expressions of a step see, besides x and f: Python's builtins (ValueError...),
# and netshell's exceptions and helpers a chain is built with.
_NAMES: dict[str, Any] = {
    "Failure": Failure,
    "TimeoutError": ns.TimeoutError,
    "CancelledError": ns.CancelledError,
    "succeed": ns.succeed,
    "fail": ns.fail,
}

_WORD = re.compile(r"\s*(return|raise|pass|trap|wait)\b\s*(.*)\Z", re.S)


def parse_side(spec: Any, side: str = "callback", clock: Any = None) -> Callable[..., Any] | None:
    """One side of a step, as a function the chain calls (None for a side with none).

    ``spec`` is None, a callable (returned as it is) or a text of the step language
    (see the module's description); ``side`` is "callback" or "errback"; ``clock``
    is what "wait" waits on (default: a fresh :class:`~netshell.testing.Clock`).
    Raises ValueError for a text that is not one of the forms (or whose expression
    is not Python), TypeError for anything else.

    Example::

        >>> parse_side("return x + 1")(41)
        42
        >>> parse_side("return x +")
        Traceback (most recent call last):
        ...
        ValueError: not a Python expression in step 'return x +': ...
    """
    if spec is None or callable(spec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a step's side is a text, a callable or None, not {spec!r}")
    m = _WORD.match(spec)
    if m is None:
        raise ValueError(f"cannot read step {spec!r}: use {_FORMS}")
    word, rest = m.group(1), m.group(2).strip()
    text = spec.strip()
    fn: Callable[..., Any]
    if word == "pass":
        if rest:
            raise ValueError(f"'pass' takes nothing after it, in step {spec!r}")

        def fn(x: Any) -> Any:
            return x

    elif word in ("return", "raise"):
        code = _expression(rest, spec)
        if word == "return":

            def fn(x: Any) -> Any:
                return eval(code, _scope(x))

        else:

            def fn(x: Any) -> Any:
                exc = eval(code, _scope(x))
                if isinstance(exc, type) and issubclass(exc, BaseException):
                    exc = exc()
                if not isinstance(exc, BaseException):
                    raise TypeError(f"step {text!r} raises {exc!r}, which is not an exception")
                raise exc

    elif word == "trap":
        if side != "errback":
            raise ValueError(f"'trap' is for the errback side (it gets a Failure): {spec!r}")
        types = _exception_types(rest, spec)

        def fn(x: Any) -> Any:
            x.trap(*types)
            return None

    else:  # wait
        try:
            seconds = float(rest)
        except ValueError:
            raise ValueError(f"'wait' takes a number of seconds, in step {spec!r}") from None
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"'wait' takes a number of seconds, 0 or more, in step {spec!r}")
        waits_on = clock if clock is not None else Clock()

        def fn(x: Any) -> Any:
            # A Deferred that gives x after the wait (its chain has no steps of its own).
            later: Deferred[Any] = Deferred(lambda _: call.cancel())
            give = later.errback if isinstance(x, Failure) else later.callback
            call = waits_on.call_later(seconds, give, x)
            return later

    fn.__qualname__ = fn.__name__ = text
    return fn


def _expression(source: str, spec: str) -> Any:
    if not source:
        raise ValueError(f"step {spec!r} needs an expression after its first word")
    try:
        return compile(ast.parse(source, "<simulate>", "eval"), "<simulate>", "eval")
    except (SyntaxError, ValueError) as e:
        raise ValueError(f"not a Python expression in step {spec!r}: {e}") from None


def _scope(x: Any) -> dict[str, Any]:
    return {"__builtins__": builtins, **_NAMES, "x": x, "f": x}


def _exception_types(source: str, spec: str) -> tuple[type[BaseException], ...]:
    names = [n.strip() for n in source.split(",")]
    types = []
    for name in names:
        found = _NAMES.get(name, getattr(builtins, name, None)) if name.isidentifier() else None
        if not (isinstance(found, type) and issubclass(found, BaseException)):
            raise ValueError(f"'trap' takes names of exceptions, not {name!r}, in step {spec!r}")
        types.append(found)
    return tuple(types)


class Simulation(ChainDiagram):
    """What :func:`simulate` returns: the chain drawn (text at the prompt, SVG in Jupyter),
    and its :attr:`result`: the value, or the Failure, it ended with."""

    def __init__(self, explanation: Any, result: Any, width: int | None = None) -> None:
        super().__init__(explanation, width=width)
        #: what the chain ended with (a Failure if it ended on the errback side)
        self.result = result


def simulate(steps: Iterable[Any], value: Any = None, *, width: int | None = None
             ) -> Simulation:
    """Run a chain built from ``steps`` on ``value`` and draw what it did.

    ``steps``: pairs ``(callback, errback)`` or single callbacks, each side None, a
    callable or a text (``"return x * 2"``, ``"raise ValueError"``, ``"pass"``,
    ``"trap KeyError"``, ``"wait 1"``: see :mod:`netshell.teach.simulate`). ``value``: what
    the chain is fired with (an exception or Failure: the errback side). ``width``: the
    text's width (default: the terminal's). Nothing touches the network or the reactor;
    waits use a virtual clock. Raises ValueError or TypeError for a step it cannot read,
    before anything runs.

    Example::

        >>> print(simulate([("raise KeyError('id')", None), (None, "trap KeyError")], 1).result)
        None
    """
    clock = Clock()
    pairs = []
    for i, item in enumerate(steps, 1):
        cb, eb = item if isinstance(item, (tuple, list)) else (item, None)
        if cb is None and eb is None:
            raise ValueError(f"step {i} has neither a callback nor an errback")
        pairs.append((parse_side(cb, "callback", clock), parse_side(eb, "errback", clock)))
    d: Deferred[Any] = Deferred()
    was_recording = chains.recording()
    chains.record()
    try:
        for cb, eb in pairs:
            d.add_callbacks(cb, eb)
        if isinstance(value, (Failure, BaseException)) or (
                isinstance(value, type) and issubclass(value, BaseException)):
            d.errback(value)
        else:
            d.callback(value)
        for _ in range(MAX_TURNS):
            if not clock.calls:
                break
            clock.advance(max(0.0, clock.calls[0].time - clock.now))
    finally:
        if not was_recording:
            chains.stop_recording()
    explanation = chains.explain(d)
    result = d.result if d.called and d.waiting_on is None else None
    # A simulation's failure is shown in its drawing: never "unhandled" later.
    d.mark_failure_seen()
    return Simulation(explanation, result, width=width)
