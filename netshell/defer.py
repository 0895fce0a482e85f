"""Deferred: a result that is not there yet, with a chain of callbacks and errbacks.

A Deferred stands for the outcome of work that has started (a connection, a
query, a timer). Functions added with :meth:`Deferred.add_callback` and
:meth:`Deferred.add_errback` form a chain: when the Deferred fires, the result
passes through the chain; each step gets the previous step's result and its
return value becomes the next result. Raising (or returning a
:class:`~netshell.Failure`) switches the chain to the errback path; an errback
that returns a value switches it back.

A callback that returns another Deferred pauses the chain until that one fires,
and its result then flows on. Chains of any length and depth run iteratively,
never recursively.

Deferreds meet asyncio both ways: ``await d`` works in any coroutine on the
reactor's loop, :func:`ensure_deferred` turns a coroutine or future into a
Deferred, and :meth:`Deferred.as_future` goes the other way. Cancellation
crosses in both directions, and ``netshell.CancelledError`` *is*
``asyncio.CancelledError``.

This module also has the helpers: :func:`succeed`, :func:`fail`,
:func:`maybe_deferred`, :func:`gather`, :func:`race`, :func:`sleep`,
:class:`DeferredLock`, :class:`DeferredSemaphore` and :class:`DeferredQueue`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import inspect
import itertools
import logging
import reprlib
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Generic, Protocol, Self, TypeVar, cast

from netshell import failure as _failure_mod
from netshell import observe as _observe
from netshell.current import get_reactor
from netshell.failure import Failure

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "QueueOverflow",
    "QueueUnderflow",
    "TimeoutError",
    "ensure_deferred",
    "fail",
    "gather",
    "has_canceller",
    "maybe_deferred",
    "next_deferred_number",
    "race",
    "sleep",
    "succeed",
]

# The observers of Deferreds (netshell.observe.deferreds), mirrored in a global of this
# module so that the hot paths test one name: kept up to date by observe.on_change.
_watched: tuple[Any, ...] = ()


def _sync_watched() -> None:
    global _watched
    _watched = _observe.deferreds


_observe.on_change(_sync_watched)

log = logging.getLogger("netshell.defer")

T = TypeVar("T")

#: The exception a cancelled Deferred fails with. It is asyncio's own, so a
#: cancelled Deferred and a cancelled task mean the same thing on both sides.
CancelledError = asyncio.CancelledError


class TimeoutError(builtins.TimeoutError):  # also catchable as the builtin
    """A Deferred did not fire in the time :meth:`Deferred.add_timeout` gave it."""


class AlreadyCalledError(Exception):
    """A Deferred was fired (``callback`` or ``errback``) a second time."""


class QueueOverflow(Exception):
    """:meth:`DeferredQueue.put` on a queue already holding ``size`` items."""


class QueueUnderflow(Exception):
    """:meth:`DeferredQueue.get` with ``backlog`` getters already waiting."""


class DelayedCallLike(Protocol):
    def cancel(self) -> None: ...
    def active(self) -> bool: ...


class ClockLike(Protocol):
    """What a ``clock=`` argument must provide: the reactor, or a testing Clock."""

    def call_later(
        self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any
    ) -> DelayedCallLike: ...


_NO_RESULT: Any = object()
_CONTINUE: Any = object()  # marks the link from an inner Deferred back to the one waiting on it
_ids = itertools.count(1)

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 100
_short.maxlist = _short.maxtuple = _short.maxdict = 4


class _FailureLogger:
    """Logs a Failure that no errback handled, when its Deferred is collected.

    Kept apart from the Deferred (which has no ``__del__``) so that only a
    Deferred holding an unhandled failure pays for finalisation.
    """

    __slots__ = ("context", "deferred_id", "failure", "seen")

    def __init__(self, deferred_id: int, failure: Failure | None) -> None:
        self.deferred_id = deferred_id
        #: the failure to log, None when there is none (or it was handled, or seen)
        self.failure: Failure | None = failure
        #: a failure someone has seen (an awaiter got it, the prompt noted it): should
        #: the chain come to rest with this very Failure, it is not logged
        self.seen: Failure | None = None
        #: the context of the work that failed, where the record is made: whoever runs
        #: the garbage collection, the record belongs to that work (in a Jupyter kernel,
        #: to the cell that started it, not to whichever cell runs when it is collected)
        self.context: contextvars.Context | None = (
            None if failure is None else contextvars.copy_context())

    def set_failure(self, failure: Failure) -> None:
        """The chain came to rest with ``failure``, unhandled, in the current context."""
        self.failure = failure
        self.context = contextvars.copy_context()

    def __del__(self) -> None:
        f = self.failure
        if f is None:
            return
        try:
            context = self.context
            if context is None:
                self._log(f)
            else:
                try:
                    context.run(self._log, f)
                except RuntimeError:  # that context is running now, in this thread
                    self._log(f)
        except Exception:  # interpreter shutdown: logging may be gone
            pass

    def _log(self, f: Failure) -> None:
        log.error(
            "Unhandled error in Deferred #%d (nobody added an errback that handled it):",
            self.deferred_id,
            exc_info=(f.type, f.value, f.tb),
        )


def _stack_here(skip: int) -> str:
    """The formatted stack, without its innermost ``skip`` frames (this function's included)."""
    return "".join(traceback.format_stack()[:-skip])


class Deferred(Generic[T]):
    """A result that will arrive later, with a chain of callbacks and errbacks.

    ``canceller``, if given, is called with the Deferred when :meth:`cancel` is
    called before it fired; it should stop the work and may fire the Deferred
    itself. If it does not, the Deferred fails with ``CancelledError``.

    Example::

        >>> import netshell as ns
        >>> d = ns.Deferred()
        >>> d.add_callback(lambda x: x * 2).add_callback(print)
        <Deferred #... pending>
        >>> d.callback(21)
        42
    """

    __slots__ = (
        "_callbacks",
        "_result",
        "called",
        "paused",
        "_canceller",
        "_running",
        "_suppress",
        "_fail_logger",
        "_id",
        "_debug",
        "__weakref__",
    )

    # Twisted compatibility for code that checks the class attribute.
    debug = False

    def __init__(self, canceller: Callable[[Deferred[T]], None] | None = None) -> None:
        self._callbacks: list[tuple[Any, ...]] = []
        self._result: Any = _NO_RESULT
        #: True once callback() or errback() was called.
        self.called = False
        #: how many reasons the chain has to wait (pause() or an inner Deferred).
        self.paused = 0
        self._canceller = canceller
        self._running = False
        self._suppress = False
        self._fail_logger: _FailureLogger | None = None
        self._id = next(_ids)
        self._debug: dict[str, str] | None = (
            {"created": _stack_here(2)} if _failure_mod.debugging else None
        )

    # ---- reading the state

    @property
    def number(self) -> int:
        """This Deferred's number: per process, in order of creation, shown in its repr."""
        return self._id

    @property
    def result(self) -> Any:
        """The current result of the chain (the value, or a Failure).

        Raises AttributeError before the Deferred has fired.
        """
        if self._result is _NO_RESULT:
            raise AttributeError(f"Deferred #{self._id} has no result yet: it has not fired")
        return self._result

    @property
    def waiting_on(self) -> Deferred[Any] | None:
        """The inner Deferred this one's chain waits for, if any."""
        r = self._result
        return r if isinstance(r, Deferred) else None

    # ---- building the chain

    def add_callbacks(
        self,
        callback: Callable[..., Any] | None,
        errback: Callable[..., Any] | None = None,
        callback_args: tuple[Any, ...] = (),
        callback_kwargs: dict[str, Any] | None = None,
        errback_args: tuple[Any, ...] = (),
        errback_kwargs: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Add a callback and an errback as one step of the chain.

        Exactly one of the two runs for this step: ``callback`` if the result
        so far is a value, ``errback`` if it is a Failure. ``None`` lets the
        result pass through that side untouched. Returns this Deferred.
        """
        ca = callback_args if (callback_args or callback_kwargs) else None
        ea = errback_args if (errback_args or errback_kwargs) else None
        self._callbacks.append(
            (callback, ca, callback_kwargs or {}, errback, ea, errback_kwargs or {})
        )
        if _watched:
            _observe.notify("deferred_step_added", self, self._callbacks[-1], callback, errback)
        if self.called:
            self._run_callbacks()
        return self

    def add_callback(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Add ``callback(result, *args, **kw)`` to the chain; failures pass it by.

        Added after the Deferred fired, it runs at once. Returns this Deferred.
        """
        self._callbacks.append((callback, args if (args or kw) else None, kw, None, None, None))
        if _watched:
            _observe.notify("deferred_step_added", self, self._callbacks[-1], callback, None)
        if self.called:
            self._run_callbacks()
        return self

    def add_errback(self, errback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Add ``errback(failure, *args, **kw)`` to the chain; values pass it by.

        Return a value from it to switch the chain back to callbacks; raise
        (or ``failure.trap(...)``) to keep the error going. Returns this Deferred.
        """
        self._callbacks.append((None, None, None, errback, args if (args or kw) else None, kw))
        if _watched:
            _observe.notify("deferred_step_added", self, self._callbacks[-1], None, errback)
        if self.called:
            self._run_callbacks()
        return self

    def add_both(self, callback: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Add ``callback`` as both callback and errback (it sees values and Failures)."""
        a = args if (args or kw) else None
        self._callbacks.append((callback, a, kw, callback, a, kw))
        if _watched:
            _observe.notify("deferred_step_added", self, self._callbacks[-1], callback, callback)
        if self.called:
            self._run_callbacks()
        return self

    def chain_deferred(self, other: Deferred[Any]) -> Deferred[Any]:
        """Make ``other`` wait on this chain: it fires with this chain's result at this point.

        ``other`` counts as fired from now on (it shows ``waiting on``), so it
        must not have fired and must not be fired by anyone else. Runs
        iteratively, like a callback that returns a Deferred, so chains of
        any length are fine. Raises :class:`AlreadyCalledError` if ``other``
        has fired. Returns this Deferred.
        """
        if other.called:
            raise AlreadyCalledError(f"cannot chain to Deferred #{other._id}: it has fired")
        other.called = True
        other._result = self
        other.paused += 1
        self._callbacks.append((_CONTINUE, other, None, _CONTINUE, other, None))
        if self.called:
            self._run_callbacks()
        return self

    # ---- firing

    def callback(self, result: Any = None) -> None:
        """Fire the Deferred with a value: the callback chain starts running.

        Raises :class:`AlreadyCalledError` if it has fired already, and
        TypeError if ``result`` is a Deferred (chain it with a callback instead).
        """
        if isinstance(result, Deferred):
            raise TypeError(
                "cannot fire a Deferred with another Deferred; return it from a callback"
            )
        if self.called or self._debug is not None:
            self._start(result)
            return
        self.called = True
        self._result = result
        self._run_callbacks(True)

    def errback(self, fail: Failure | BaseException | type[BaseException] | None = None) -> None:
        """Fire the Deferred with an error: the errback chain starts running.

        ``fail`` may be a Failure or an exception; with no argument inside an
        ``except`` block, the exception being handled is used. Raises
        :class:`AlreadyCalledError` if it has fired already.
        """
        if not isinstance(fail, Failure):
            fail = Failure(fail)
        self._start(fail)

    def _start(self, result: Any) -> None:
        if self.called:
            if self._suppress:
                # The one late result of a producer that ignored cancel().
                self._suppress = False
                return
            raise AlreadyCalledError(self._already_called_message())
        if self._debug is not None:
            self._debug["fired"] = _stack_here(3)
        self.called = True
        self._result = result
        self._run_callbacks(True)

    def _already_called_message(self) -> str:
        msg = f"Deferred #{self._id} has already fired"
        if self._debug is None:
            return msg + " (netshell.set_debugging(True) shows where it was created and fired)"
        return (
            f"{msg}.\nCreated at:\n{self._debug.get('created', '?')}"
            f"First fired at:\n{self._debug.get('fired', '?')}"
        )

    def pause(self) -> None:
        """Stop running callbacks until :meth:`unpause` is called."""
        self.paused += 1

    def unpause(self) -> None:
        """Undo one :meth:`pause`; when none is left, the chain goes on."""
        self.paused -= 1
        if self.paused == 0 and self.called:
            self._run_callbacks()

    def cancel(self) -> None:
        """Cancel the work this Deferred waits for.

        Before it fired: the canceller is called (once); if that did not fire
        the Deferred, it fails with ``CancelledError`` (and one late result
        from a producer that had no canceller is ignored). While its chain
        waits on an inner Deferred: the inner one is cancelled. After it
        fired: nothing happens.
        """
        if not self.called:
            canceller = self._canceller
            if canceller is not None:
                self._canceller = None
                try:
                    canceller(self)
                except BaseException:
                    if not self.called:
                        self.errback(Failure())
                        return
                    log.exception("Error in the canceller of Deferred #%d", self._id)
            else:
                self._suppress = True
            if not self.called:
                self.errback(Failure(CancelledError()))
        elif isinstance(self._result, Deferred):
            self._result.cancel()

    def add_timeout(self, seconds: float, clock: ClockLike | None = None) -> Deferred[T]:
        """Cancel this Deferred if it has not fired within ``seconds``.

        On expiry it fails with :class:`netshell.TimeoutError` (also a builtin
        ``TimeoutError``). If it fires first, the timer is cancelled. ``clock``
        is the reactor by default; tests pass a ``Clock``. Returns this Deferred.
        """
        if clock is None:
            clock = get_reactor()
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            self.cancel()

        timer = clock.call_later(seconds, time_out)

        def after(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            if timed_out and isinstance(result, Failure) and result.check(CancelledError):
                raise TimeoutError(f"Deferred #{self._id} timed out after {seconds} seconds")
            return result

        self.add_both(after)
        return self

    # ---- running the chain

    def _run_callbacks(self, fired: bool = False) -> None:
        # ``fired``: called by callback() or errback() (observers hear of it).
        if _watched:
            # Observers are registered (netshell.observe): the same run, telling them.
            self._run_watched(fired)
            return
        if self._running:
            # A callback of this Deferred added another step: the loop below
            # picks it up after the running callback returns.
            return
        # ``chain`` holds the Deferreds whose run was interrupted to hand a
        # result on to a waiting Deferred; it makes chains of any depth
        # iterative. Most runs never need it, so it is made on first use.
        chain: list[Deferred[Any]] | None = None
        current = self
        while True:
            waiter: Deferred[Any] | None = None
            if not current.paused:
                cbs = current._callbacks
                result = current._result
                i = 0
                current._running = True
                while i < len(cbs):
                    if current.paused:
                        break
                    item = cbs[i]
                    i += 1
                    if isinstance(result, Failure):
                        fn, args, kw = item[3], item[4], item[5]
                    else:
                        fn, args, kw = item[0], item[1], item[2]
                    if fn is None:
                        continue
                    if fn is _CONTINUE:
                        # ``current`` is an inner Deferred that fired: hand its
                        # result to the Deferred waiting on it, and run that one.
                        waiter = args
                        waiter._result = result
                        result = None
                        if current._fail_logger is not None:
                            current._fail_logger.failure = None
                        waiter.paused -= 1
                        break
                    try:
                        if args is None:
                            result = fn(result)
                        else:
                            result = fn(result, *args, **kw)
                    except BaseException:
                        result = Failure()
                    if isinstance(result, Deferred):
                        inner = result
                        inner_result = inner._result
                        if inner is current:
                            result = Failure(
                                TypeError(f"a callback of Deferred #{current._id} returned it")
                            )
                        elif (
                            inner_result is _NO_RESULT
                            or inner.paused
                            or isinstance(inner_result, Deferred)
                        ):
                            # Wait for the inner one; it hands its result back via _CONTINUE.
                            current.paused += 1
                            inner._callbacks.append(
                                (_CONTINUE, current, None, _CONTINUE, current, None)
                            )
                            current._result = inner
                            break
                        else:
                            # The inner one has its result already: take it over.
                            inner._result = None
                            if inner._fail_logger is not None:
                                inner._fail_logger.failure = None
                            result = inner_result
                    current._result = result
                if not isinstance(result, Deferred):
                    current._result = result
                current._running = False
                del cbs[:i]
                if waiter is None:
                    if isinstance(result, Failure):
                        result.clean()
                        logger = current._fail_logger
                        if logger is None:
                            current._fail_logger = _FailureLogger(current._id, result)
                        elif result is logger.seen:
                            logger.failure = None
                        else:
                            logger.set_failure(result)
                    elif current._fail_logger is not None:
                        current._fail_logger.failure = None
            if waiter is not None:
                # Come back to ``current`` only if callbacks follow the hand-off.
                if cbs:
                    if chain is None:
                        chain = [current]
                    else:
                        chain.append(current)
                current = waiter
                continue
            if not chain:
                return
            current = chain.pop()

    def _run_watched(self, fired: bool) -> None:
        """_run_callbacks while observers are registered: the same run, step for step,
        telling them of the firing, each step run and the chain settling."""
        if self._running:
            # A callback of this Deferred added another step: the loop below
            # picks it up after the running callback returns.
            return
        # ``chain`` holds the Deferreds whose run was interrupted to hand a
        # result on to a waiting Deferred; it makes chains of any depth
        # iterative. Most runs never need it, so it is made on first use.
        chain: list[Deferred[Any]] | None = None
        current = self
        if fired:
            _observe.notify("deferred_fired", self, self._result)
        while True:
            waiter: Deferred[Any] | None = None
            if not current.paused:
                cbs = current._callbacks
                result = current._result
                i = 0
                current._running = True
                while i < len(cbs):
                    if current.paused:
                        break
                    item = cbs[i]
                    i += 1
                    if isinstance(result, Failure):
                        fn, args, kw = item[3], item[4], item[5]
                    else:
                        fn, args, kw = item[0], item[1], item[2]
                    if fn is None:
                        continue
                    if fn is _CONTINUE:
                        # ``current`` is an inner Deferred that fired: hand its
                        # result to the Deferred waiting on it, and run that one.
                        waiter = args
                        waiter._result = result
                        result = None
                        if current._fail_logger is not None:
                            current._fail_logger.failure = None
                        waiter.paused -= 1
                        _observe.notify("deferred_settled", current, waiter._result)
                        break
                    result = _run_observed(current, item, fn, args, kw, result)
                    if isinstance(result, Deferred):
                        inner = result
                        inner_result = inner._result
                        if inner is current:
                            result = Failure(
                                TypeError(f"a callback of Deferred #{current._id} returned it")
                            )
                        elif (
                            inner_result is _NO_RESULT
                            or inner.paused
                            or isinstance(inner_result, Deferred)
                        ):
                            # Wait for the inner one; it hands its result back via _CONTINUE.
                            current.paused += 1
                            inner._callbacks.append(
                                (_CONTINUE, current, None, _CONTINUE, current, None)
                            )
                            current._result = inner
                            break
                        else:
                            # The inner one has its result already: take it over.
                            inner._result = None
                            if inner._fail_logger is not None:
                                inner._fail_logger.failure = None
                            result = inner_result
                    current._result = result
                if not isinstance(result, Deferred):
                    current._result = result
                current._running = False
                del cbs[:i]
                if waiter is None:
                    if isinstance(result, Failure):
                        result.clean()
                        logger = current._fail_logger
                        if logger is None:
                            current._fail_logger = _FailureLogger(current._id, result)
                        elif result is logger.seen:
                            logger.failure = None
                        else:
                            logger.set_failure(result)
                    elif current._fail_logger is not None:
                        current._fail_logger.failure = None
                    if not current.paused:
                        _observe.notify("deferred_settled", current, result)
            if waiter is not None:
                # Come back to ``current`` only if callbacks follow the hand-off.
                if cbs:
                    if chain is None:
                        chain = [current]
                    else:
                        chain.append(current)
                current = waiter
                continue
            if not chain:
                return
            current = chain.pop()

    def mark_failure_seen(self) -> None:
        """Say that a person has seen the failure this chain ended with.

        It stays the chain's result (later errbacks still get it), but it is
        not logged as "Unhandled error in Deferred" when this Deferred is
        collected, even if later steps pass it on as it is. The prompt calls
        it once it has printed a failure's note. Does nothing if the chain did
        not end with a failure.
        """
        result = self._result
        logger = self._fail_logger
        if logger is not None and logger.failure is result:
            logger.failure = None
            logger.seen = result

    def _delivered(self, failure: Failure) -> None:
        # ``failure`` went to an awaiter (or the awaiter gave up and cancelled): it has been
        # seen. Called from a step of the chain, before the chain comes to rest.
        logger = self._fail_logger
        if logger is None:
            logger = self._fail_logger = _FailureLogger(self._id, None)
        elif logger.failure is failure:
            logger.failure = None
        logger.seen = failure

    # ---- asyncio

    def __await__(self) -> Generator[Any, None, T]:
        """``await d``: the value this Deferred fires with, or its exception raised.

        As with an asyncio future, the result stays in the chain: awaiting
        does not take it out, so ``d`` still shows it, later callbacks still
        get it, and ``d`` can be awaited again. A failure the awaiter received
        counts as handled (it is not logged as unhandled). Cancelling the
        awaiting task cancels ``d``. (Twisted's inlineCallbacks takes the
        result out; netshell follows asyncio here.)
        """
        if self.called and not self.paused:
            # Fired and not waiting: no need to suspend the coroutine.
            result = self._result
            if isinstance(result, Failure):
                self._delivered(result)
                raise result.value.with_traceback(result.tb)
            return cast(T, result)
        return (yield from self.as_future().__await__())

    def as_future(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[T]:
        """An asyncio Future that completes with this Deferred's result.

        As with ``await d``, the result stays in the chain: the future gets
        the value (or the exception) and later callbacks still see it. A
        failure the future received counts as handled: it is not logged as
        unhandled when the Deferred is collected (it is the future's now).
        Cancelling the future cancels the Deferred (at once), and it keeps
        that ``CancelledError`` as its result; a Deferred that fails with
        ``CancelledError`` cancels the future. ``loop`` defaults to the running
        loop, else the current reactor's.
        """
        if loop is None:
            loop = _current_loop()
        fut: asyncio.Future[T] = _DeferredFuture(self, loop)

        def settle(result: Any) -> Any:
            if isinstance(result, Failure):
                # The future has it now, or its awaiter cancelled and so asked for it.
                self._delivered(result)
                if not fut.done():
                    if isinstance(result.value, CancelledError):
                        fut.cancel()
                    else:
                        fut.set_exception(result.value)
            elif not fut.done():
                fut.set_result(result)
            return result

        def on_future_done(f: asyncio.Future[T]) -> None:
            if f.cancelled():
                self.cancel()

        # The step of an await: not one the person added. explain() leaves it out
        # (netshell.shell.chains); it passes the result on untouched.
        settle.internal_step = True  # type: ignore[attr-defined]
        self.add_both(settle)
        fut.add_done_callback(on_future_done)
        return fut

    @classmethod
    def from_future(cls, future: asyncio.Future[Any]) -> Deferred[Any]:
        """A Deferred that fires with ``future``'s outcome; cancelling it cancels the future."""

        def cancel_future(_: Deferred[Any]) -> None:
            future.cancel()

        d: Deferred[Any] = cls(cancel_future)

        def done(f: asyncio.Future[Any]) -> None:
            if d.called:  # cancelled from the Deferred side already
                return
            if f.cancelled():
                d.errback(Failure(CancelledError()))
                return
            exc = f.exception()
            if exc is not None:
                d.errback(Failure(exc))
                return
            value = f.result()
            if isinstance(value, Deferred):
                value.chain_deferred(d)
            else:
                d.callback(value)

        future.add_done_callback(done)
        return d

    @classmethod
    def from_coroutine(cls, coro: Coroutine[Any, Any, Any]) -> Deferred[Any]:
        """Run ``coro`` as a task on the current reactor's loop; see :func:`ensure_deferred`."""
        return cls.from_future(_current_loop().create_task(coro))

    # ---- display

    def __repr__(self) -> str:
        r = self._result
        if not self.called:
            state = "pending"
        elif isinstance(r, Deferred):
            state = f"waiting on #{r._id}"
        elif isinstance(r, Failure):
            if isinstance(r.value, CancelledError):
                state = "cancelled"
            else:
                state = f"failed: {_short.repr(r.value)}"
        else:
            state = f"fired: {_short.repr(r)}"
        if self.paused and not isinstance(r, Deferred):
            state += " (paused)"
        return f"<Deferred #{self._id} {state}>"

    def _repr_html_(self) -> str | None:
        """Jupyter's display: the state and the chain drawn, by :data:`html_renderer`.

        None (Jupyter then shows the repr) while no renderer is registered.
        """
        render = html_renderer
        return None if render is None else render(self)


#: How Jupyter draws a Deferred (:meth:`Deferred._repr_html_`): a function of the Deferred
#: that returns HTML. The notebook side registers it (importing netshell.kernel.displays
#: sets it): the core never imports the shell or the kernel, and knows no HTML.
html_renderer: Callable[[Deferred[Any]], str] | None = None


class _DeferredFuture(asyncio.Future[T]):
    """The future of :meth:`Deferred.as_future`: cancelling it cancels the Deferred at once.

    A future's done-callbacks run a turn of the loop later. Were the Deferred
    cancelled only then, it could fire in between (a lock handed over, a
    queue item delivered) with a result that nobody would ever receive.
    """

    def __init__(self, deferred: Deferred[T], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._deferred = deferred

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        self._deferred.cancel()
        return True


def _run_observed(
    d: Deferred[Any], step: tuple[Any, ...], fn: Callable[..., Any], args: Any, kw: Any, got: Any
) -> Any:
    """Run one function of ``d``'s chain, telling the observers what it got and gave."""
    raised = False
    try:
        result = fn(got) if args is None else fn(got, *args, **kw)
    except BaseException:
        result = Failure()
        raised = True
    _observe.notify("deferred_step_ran", d, step, fn, got, result, raised)
    return result


def _current_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return get_reactor().loop


# ---- helpers


def succeed(result: T) -> Deferred[T]:
    """A Deferred that has already fired with ``result``.

    Example::

        >>> import netshell as ns
        >>> ns.succeed(42)
        <Deferred #... fired: 42>
    """
    d: Deferred[T] = Deferred()
    d.called = True
    d._result = result
    if d._debug is not None:  # made and fired in the same place
        d._debug["fired"] = d._debug["created"]
    return d


def fail(error: Failure | BaseException | type[BaseException] | None = None) -> Deferred[Any]:
    """A Deferred that has already failed with ``error`` (a Failure or exception).

    With no argument inside an ``except`` block, the exception being handled.

    Example::

        >>> import netshell as ns
        >>> d = ns.fail(ValueError("no"))
        >>> d.add_errback(lambda f: f.value.args[0])
        <Deferred #... fired: 'no'>
    """
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d


def ensure_deferred(obj: Awaitable[T] | Deferred[T]) -> Deferred[T]:
    """Turn a coroutine, asyncio future or other awaitable into a Deferred.

    A coroutine is run as a task on the current reactor's loop. Cancelling
    the Deferred cancels the task (or future); a cancelled task fails the
    Deferred with ``CancelledError``. A Deferred is returned as it is.
    Raises TypeError for anything that cannot be awaited.

    Example::

        >>> import netshell as ns
        >>> async def answer():
        ...     await ns.sleep(0)
        ...     return 42
        >>> d = ns.ensure_deferred(answer())
        >>> d
        <Deferred #... pending>
        >>> ns.reactor.run_until(d)
        42
    """
    if isinstance(obj, Deferred):
        return obj
    if asyncio.isfuture(obj):
        return Deferred.from_future(obj)
    if inspect.iscoroutine(obj):
        return Deferred.from_coroutine(obj)
    if inspect.isawaitable(obj):
        return Deferred.from_future(asyncio.ensure_future(obj, loop=_current_loop()))
    raise TypeError(f"ensure_deferred needs a coroutine, future or Deferred, not {obj!r}")


def maybe_deferred(f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
    """Call ``f(*args, **kw)`` and give its outcome as a Deferred, whatever it was.

    A Deferred is returned as is, a coroutine or future is wrapped with
    :func:`ensure_deferred`, a Failure or a raised exception gives a failed
    Deferred, and any other value a fired one.
    """
    try:
        result = f(*args, **kw)
    except BaseException:
        return fail(Failure())
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Failure):
        return fail(result)
    if inspect.isawaitable(result):
        return ensure_deferred(result)
    return succeed(result)


def _as_deferreds(items: tuple[Any, ...]) -> list[Deferred[Any]]:
    return [x if isinstance(x, Deferred) else ensure_deferred(x) for x in items]


def gather(
    *deferreds: Deferred[Any] | Awaitable[Any], consume_errors: bool = False
) -> Deferred[list[Any]]:
    """Fire with the list of all results, in order, once every one has fired.

    The first failure fails the gathered Deferred at once (with that Failure).
    Coroutines and futures are accepted too. With ``consume_errors=True`` the
    failures are taken out of the given Deferreds, so they are not logged as
    unhandled there. Cancelling the result cancels every one still pending.

    Example::

        >>> import netshell as ns
        >>> ns.gather(ns.succeed(1), ns.succeed(2))
        <Deferred #... fired: [1, 2]>
    """
    ds = _as_deferreds(deferreds)
    if not ds:
        return succeed([])
    results: list[Any] = [None] * len(ds)
    remaining = len(ds)
    cancelling = False

    def cancel_all(_: Deferred[Any]) -> None:
        nonlocal cancelling
        cancelling = True
        for d in ds:
            d.cancel()

    out: Deferred[list[Any]] = Deferred(cancel_all)

    def ok(result: Any, index: int) -> Any:
        nonlocal remaining
        results[index] = result
        remaining -= 1
        if remaining == 0 and not out.called:
            out.callback(results)
        return result

    def bad(f: Failure, index: int) -> Failure | None:
        if not out.called:
            out.errback(f)
        return None if (consume_errors or cancelling) else f

    for i, d in enumerate(ds):
        d.add_callbacks(ok, bad, callback_args=(i,), errback_args=(i,))
    return out


def race(*deferreds: Deferred[Any] | Awaitable[Any]) -> Deferred[tuple[int, Any]]:
    """Fire with ``(index, result)`` of the first to succeed; cancel the others.

    Failures are ignored while another may still succeed; if all fail, the
    result fails with an ``ExceptionGroup`` of their exceptions, in order (a
    ``BaseExceptionGroup`` if one of them is a ``CancelledError``). Cancelling
    the result cancels them all and fails it with ``CancelledError``.

    Example::

        >>> import netshell as ns
        >>> ns.race(ns.Deferred(), ns.succeed("fast"))
        <Deferred #... fired: (1, 'fast')>
    """
    ds = _as_deferreds(deferreds)
    if not ds:
        raise ValueError("race() needs at least one Deferred")
    failures: list[BaseException | None] = [None] * len(ds)
    remaining = len(ds)
    cancelling = False

    def cancel_all(_: Deferred[Any]) -> None:
        nonlocal cancelling
        cancelling = True  # the race itself fails with CancelledError, not a group
        for d in ds:
            d.cancel()

    out: Deferred[tuple[int, Any]] = Deferred(cancel_all)

    def ok(result: Any, index: int) -> None:
        if out.called:
            return
        out.callback((index, result))
        for j, d in enumerate(ds):
            if j != index:
                d.cancel()

    def bad(f: Failure, index: int) -> None:
        nonlocal remaining
        failures[index] = f.value
        remaining -= 1
        if remaining == 0 and not out.called and not cancelling:
            # An ExceptionGroup, or a BaseExceptionGroup when one of them is
            # not an Exception (a CancelledError): ExceptionGroup refuses those.
            excs = cast(list[BaseException], failures)
            out.errback(BaseExceptionGroup("every Deferred in the race failed", excs))

    for i, d in enumerate(ds):
        d.add_callbacks(ok, bad, callback_args=(i,), errback_args=(i,))
    return out


def sleep(seconds: float, clock: ClockLike | None = None) -> Deferred[None]:
    """A Deferred that fires with None after ``seconds``; cancelling it stops the timer.

    Example::

        >>> import netshell as ns
        >>> from netshell.testing import Clock
        >>> clock = Clock()
        >>> d = ns.sleep(5, clock=clock)
        >>> clock.advance(5)
        >>> d
        <Deferred #... fired: None>
    """
    if clock is None:
        clock = get_reactor()
    d: Deferred[None] = Deferred(lambda _d: timer.cancel())
    timer = clock.call_later(seconds, d.callback, None)
    return d


# ---- introspection (the shell and the runner look at Deferreds with these)


def next_deferred_number() -> int:
    """The :attr:`Deferred.number` the next Deferred made in this process will get.

    Taking it costs nothing and takes nothing: every Deferred made from now
    on has a number at least this large, so it tells "made since" apart.

    Example::

        >>> import netshell as ns
        >>> from netshell.defer import next_deferred_number
        >>> n = next_deferred_number()
        >>> ns.Deferred().number == n
        True
    """
    # itertools.count has no way to look without taking; its repr is "count(N)".
    return int(repr(_ids)[len("count(") : -1])


def has_canceller(d: Deferred[Any]) -> bool:
    """True when ``d`` was made with a canceller that has not run yet.

    Such a Deferred stands for work under way that can be stopped (a connect,
    a sleep, a call in a thread); a bare ``Deferred()`` has none.

    Example::

        >>> import netshell as ns
        >>> from netshell.defer import has_canceller
        >>> has_canceller(ns.Deferred()), has_canceller(ns.Deferred(lambda d: None))
        (False, True)
    """
    return d._canceller is not None


# ---- synchronisation


class _TokenGate:
    """What a lock and a semaphore share: ``limit`` tokens, handed out through Deferreds.

    :meth:`acquire` takes a token at once when one is free, or queues a
    Deferred that :meth:`release` fires, first come first served; a waiter
    that is cancelled leaves the queue.
    """

    #: The RuntimeError message when :meth:`release` is called with no token held.
    _release_error = "release() with no token held"

    def __init__(self, tokens: int) -> None:
        self.limit = tokens
        self.tokens = tokens
        self.waiting: deque[Deferred[Self]] = deque()

    def acquire(self) -> Deferred[Self]:
        """A Deferred that fires with this object once a token is held; cancel to stop waiting."""
        if self.tokens > 0:
            self.tokens -= 1
            return succeed(self)
        d: Deferred[Self] = Deferred(self.waiting.remove)
        self.waiting.append(d)
        return d

    def release(self) -> None:
        """Give the token back, to the next waiter if there is one.

        Raises RuntimeError when no token is held.
        """
        if self.tokens >= self.limit:
            raise RuntimeError(self._release_error)
        if self.waiting:
            self.waiting.popleft().callback(self)
        else:
            self.tokens += 1

    def run(self, f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        """Acquire, run ``f(*args, **kw)`` (which may return a Deferred), then release."""

        def go(_: Any) -> Deferred[Any]:
            return maybe_deferred(f, *args, **kw).add_both(self._release_passing)

        return self.acquire().add_callback(go)

    def _release_passing(self, result: Any) -> Any:
        self.release()
        return result

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class DeferredLock(_TokenGate):
    """A lock whose :meth:`acquire` gives a Deferred; also ``async with lock:``.

    It is a semaphore of one token; :attr:`locked` says whether it is held.

    Example::

        >>> import netshell as ns
        >>> lock = ns.DeferredLock()
        >>> lock.acquire()
        <Deferred #... fired: <DeferredLock locked, 0 waiting>>
        >>> second = lock.acquire()
        >>> lock.release(); second.called
        True
    """

    _release_error = "release() of a DeferredLock that is not locked"

    def __init__(self) -> None:
        super().__init__(1)

    @property
    def locked(self) -> bool:
        """True while the lock is held."""
        return self.tokens == 0

    def __repr__(self) -> str:
        state = "locked" if self.locked else "free"
        return f"<DeferredLock {state}, {len(self.waiting)} waiting>"


class DeferredSemaphore(_TokenGate):
    """A semaphore of ``tokens`` slots whose :meth:`acquire` gives a Deferred.

    Also ``async with sem:``, and :meth:`run` to hold a token around a call.

    Raises ValueError when ``tokens`` is less than 1.
    """

    _release_error = "release() of a DeferredSemaphore with no token held"

    def __init__(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError("a DeferredSemaphore needs at least one token")
        super().__init__(tokens)

    def __repr__(self) -> str:
        return f"<DeferredSemaphore {self.tokens}/{self.limit} free, {len(self.waiting)} waiting>"


class DeferredQueue(Generic[T]):
    """A queue whose :meth:`get` gives a Deferred that fires when an item is there.

    ``size`` bounds the items held (``put`` beyond it raises
    :class:`QueueOverflow`); ``backlog`` bounds the getters waiting (``get``
    beyond it raises :class:`QueueUnderflow`). None means no bound.
    Also ``async for item in queue``.
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        self.size = size
        self.backlog = backlog
        self.pending: deque[T] = deque()
        self.waiting: deque[Deferred[T]] = deque()

    def put(self, item: T) -> None:
        """Hand ``item`` to the first waiting getter, or keep it."""
        if self.waiting:
            self.waiting.popleft().callback(item)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(item)
        else:
            raise QueueOverflow(f"DeferredQueue is full ({self.size} items)")

    def get(self) -> Deferred[T]:
        """A Deferred that fires with the next item; cancel it to stop waiting."""
        if self.pending:
            return succeed(self.pending.popleft())
        if self.backlog is not None and len(self.waiting) >= self.backlog:
            raise QueueUnderflow(f"DeferredQueue already has {self.backlog} getters waiting")
        d: Deferred[T] = Deferred(self.waiting.remove)
        self.waiting.append(d)
        return d

    def __len__(self) -> int:
        return len(self.pending)

    def __aiter__(self) -> DeferredQueue[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    def __repr__(self) -> str:
        return f"<DeferredQueue {len(self.pending)} items, {len(self.waiting)} waiting>"
