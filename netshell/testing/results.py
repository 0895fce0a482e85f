"""Reading a Deferred's outcome in a test, synchronously, with a clear message when absent."""

from __future__ import annotations

from typing import Any

from netshell.defer import Deferred
from netshell.failure import Failure

__all__ = ["failure_result_of", "no_result", "success_result_of"]


def _take(d: Deferred[Any]) -> Any:
    if not d.called or d.paused:
        # Checked first: a callback added to a Deferred with no result would stay in
        # its chain and swallow the result when it comes.
        raise AssertionError(f"{d!r} has no result yet")
    outcome: list[Any] = []

    def grab(result: Any) -> None:
        outcome.append(result)

    d.add_both(grab)
    if not outcome:
        raise AssertionError(f"{d!r} has no result yet")
    return outcome[0]


def success_result_of(d: Deferred[Any]) -> Any:
    """The value ``d`` has fired with; AssertionError if it has not fired or failed.

    The result is taken out of the chain (later callbacks see None).

    Example::

        >>> import netshell as ns
        >>> from netshell.testing import success_result_of
        >>> success_result_of(ns.succeed(3))
        3
    """
    result = _take(d)
    if isinstance(result, Failure):
        raise AssertionError(
            f"{d!r} failed instead of succeeding:\n{result.get_traceback()}"
        ) from result.value
    return result


def failure_result_of(d: Deferred[Any], *types: type[BaseException]) -> Failure:
    """The Failure ``d`` has failed with; AssertionError if it has not fired, or succeeded.

    With ``types``, the failure must be one of them.

    Example::

        >>> import netshell as ns
        >>> from netshell.testing import failure_result_of
        >>> failure_result_of(ns.fail(KeyError("k")), KeyError).value
        KeyError('k')
    """
    result = _take(d)
    if not isinstance(result, Failure):
        raise AssertionError(f"{d!r} succeeded with {result!r} instead of failing")
    if types and not result.check(*types):
        names = ", ".join(t.__name__ for t in types)
        raise AssertionError(
            f"{d!r} failed with {result.type.__name__}, not {names}:\n{result.get_traceback()}"
        )
    return result


def no_result(d: Deferred[Any]) -> None:
    """AssertionError unless ``d`` has not fired yet (or waits on another Deferred)."""
    if d.called and d.waiting_on is None and not d.paused:
        raise AssertionError(f"{d!r} was expected to have no result yet")
