"""Failure: an exception kept together with its traceback.

A Failure is what travels down the errback path of a Deferred. It holds the
exception (``value``), its class (``type``) and the traceback (``tb``), so an
error raised in one callback can be inspected, trapped or re-raised several
steps later, with the traceback of the place where it happened.

Creating one is cheap: nothing is formatted and no frame locals are copied,
unless debugging is on (:func:`set_debugging`), in which case the locals of
every frame are captured as short reprs for :meth:`Failure.get_traceback`.
"""

from __future__ import annotations

import builtins
import os
import reprlib
import sys
import traceback
from types import TracebackType
from typing import Any, NoReturn

__all__ = ["Failure", "NoCurrentExceptionError", "get_debugging", "set_debugging"]

#: Whether debugging is on: read it here (Deferreds do, for each one made; a plain
#: module attribute is the cheapest test) or with :func:`get_debugging`; set it only
#: with :func:`set_debugging`.
debugging = os.environ.get("NETSHELL_DEBUG", "") not in ("", "0")

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


def set_debugging(on: bool) -> None:
    """Turn debugging on or off for Failures and Deferreds.

    With debugging on, a Failure captures the local variables of every frame of
    its traceback, and a Deferred remembers where it was created and first
    fired (named in :class:`~netshell.AlreadyCalledError`). It costs time, so it
    is off unless set here or by the ``NETSHELL_DEBUG=1`` environment variable.

    Example::

        >>> import netshell as ns
        >>> ns.set_debugging(True); ns.set_debugging(False)
    """
    global debugging
    debugging = bool(on)


def get_debugging() -> bool:
    """Tell whether debugging is on (see :func:`set_debugging`)."""
    return debugging


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called with no exception and outside an ``except`` block."""


class Failure:
    """An exception with its traceback.

    ``Failure()`` inside an ``except`` block takes the exception being handled.
    ``Failure(exc)`` wraps an exception instance (an exception class is
    instantiated with no arguments); its ``__traceback__`` is used unless ``tb``
    is given.

    Raises :class:`NoCurrentExceptionError` when called with no argument outside
    an ``except`` block, and ``TypeError`` when given something that is not an
    exception.

    Example::

        >>> from netshell import Failure
        >>> try:
        ...     1 / 0
        ... except ZeroDivisionError:
        ...     f = Failure()
        >>> f.check(ValueError, ArithmeticError)
        <class 'ArithmeticError'>
        >>> f.type.__name__, str(f.value)
        ('ZeroDivisionError', 'division by zero')
    """

    __slots__ = ("value", "type", "tb", "frames", "__weakref__")

    value: BaseException
    type: builtins.type[BaseException]
    tb: TracebackType | None
    #: with debugging on: (function, file, line, {name: short repr}) per frame
    frames: list[tuple[str, str, int, dict[str, str]]] | None

    def __init__(
        self,
        exc: BaseException | builtins.type[BaseException] | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        if exc is None:
            exc = sys.exception()
            if exc is None:
                raise NoCurrentExceptionError(
                    "Failure() with no argument must be created inside an except block"
                )
        elif isinstance(exc, Failure):
            self.value, self.type, self.tb, self.frames = exc.value, exc.type, exc.tb, exc.frames
            return
        elif isinstance(exc, type) and issubclass(exc, BaseException):
            exc = exc()
        elif not isinstance(exc, BaseException):
            raise TypeError(f"Failure needs an exception, not {type(exc).__name__}: {exc!r}")
        self.value = exc
        self.type = type(exc)
        self.tb = tb if tb is not None else exc.__traceback__
        self.frames = self._capture_locals() if debugging else None

    def _capture_locals(self) -> list[tuple[str, str, int, dict[str, str]]]:
        frames = []
        tb = self.tb
        while tb is not None:
            frame = tb.tb_frame
            code = frame.f_code
            local_reprs = {}
            for name, value in frame.f_locals.items():
                try:
                    local_reprs[name] = _short.repr(value)
                except Exception as e:  # a broken __repr__ must not hide the error
                    local_reprs[name] = f"<repr failed: {e!r}>"
            frames.append((code.co_name, code.co_filename, tb.tb_lineno, local_reprs))
            tb = tb.tb_next
        return frames

    def check(self, *types: builtins.type[BaseException]) -> builtins.type[BaseException] | None:
        """Return the first of ``types`` that the exception is an instance of, else None."""
        for t in types:
            if isinstance(self.value, t):
                return t
        return None

    def trap(self, *types: builtins.type[BaseException]) -> builtins.type[BaseException]:
        """Like :meth:`check`, but re-raise the exception when nothing matches.

        Used in an errback, this lets the expected errors be handled and passes
        any other one on down the errback path, traceback intact.
        """
        matched = self.check(*types)
        if matched is None:
            self.raise_exception()
        return matched

    def raise_exception(self) -> NoReturn:
        """Raise the wrapped exception again, with its original traceback."""
        raise self.value.with_traceback(self.tb)

    def get_error_message(self) -> str:
        """The exception's message (``str(value)``)."""
        return str(self.value)

    def get_traceback(self) -> str:
        """The formatted traceback, as Python prints it.

        With debugging on when the Failure was made, each frame is followed by
        its local variables.
        """
        if not self.frames:
            return "".join(traceback.format_exception(self.type, self.value, self.tb))
        lines = ["Traceback (most recent call last), with locals:\n"]
        for name, filename, lineno, local_reprs in self.frames:
            lines.append(f'  File "{filename}", line {lineno}, in {name}\n')
            lines.extend(f"    {k} = {v}\n" for k, v in local_reprs.items())
        lines.extend(traceback.format_exception_only(self.type, self.value))
        return "".join(lines)

    def clean(self) -> None:
        """Drop the frames' local variables, keeping the traceback printable.

        Called when a Failure comes to rest at the end of a Deferred chain, so a
        stored error does not keep every object of the failed call alive.
        """
        if self.tb is not None:
            traceback.clear_frames(self.tb)

    def __repr__(self) -> str:
        return f"<Failure {self.type.__qualname__}: {self.value}>"

    def __str__(self) -> str:
        return self.get_traceback()

    def __reduce__(self) -> Any:
        # Tracebacks cannot be pickled; keep the exception.
        return (Failure, (self.value,))
