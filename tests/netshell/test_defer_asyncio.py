"""Deferreds and asyncio: await, ensure_deferred, as_future, from_future,
cancellation in both directions, and contextvars across an await.

Every test has its own reactor (a fresh loop) and runs it only until what it
waits for is done; nothing sleeps on real time. ``turns()`` lets the loop go
round a few times, which is all a done-callback or a cancellation needs.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import importlib
import logging
import traceback
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
from netshell import Deferred, Failure
from netshell.testing import failure_result_of, no_result, success_result_of

# Every test runs twice: unobserved, and with an observer of every Deferred event
# (the two loops a chain can run through; tests/conftest.py).
pytestmark = pytest.mark.usefixtures("each_way_observed")

reactor_mod = importlib.import_module("netshell.reactor")


# ---- fixtures and helpers


@pytest.fixture
def reactor() -> Iterator[ns.Reactor]:
    """A fresh reactor on its own loop, this thread's reactor for the test."""
    r = ns.Reactor()
    reactor_mod.install(r)
    try:
        yield r
    finally:
        r.close()


def run(reactor: ns.Reactor, awaitable: Any) -> Any:
    return reactor.run_until(awaitable, timeout=5)


async def turns(n: int = 5) -> None:
    """Let the loop go round ``n`` times (no real time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


class Boom(Exception):
    pass


def explode_in_callback(result: Any) -> Any:
    raise Boom("from the chain")


def handled(f: Failure) -> None:
    return None


def frame_names(exc: BaseException) -> list[str]:
    return [fs.name for fs in traceback.extract_tb(exc.__traceback__)]


# ---- await


def test_await_of_a_pending_deferred_in_a_plain_asyncio_task_gets_the_later_value(
    reactor: ns.Reactor,
) -> None:
    d: Deferred[Any] = Deferred()

    async def wait() -> Any:
        return await d

    task = reactor.loop.create_task(wait())
    reactor.loop.call_soon(d.callback, "later")
    assert run(reactor, task) == "later"


def test_await_of_a_pending_deferred_suspends_until_it_fires(reactor: ns.Reactor) -> None:
    d: Deferred[Any] = Deferred()
    steps: list[str] = []

    async def wait() -> None:
        steps.append("before")
        steps.append(await d)

    task = reactor.loop.create_task(wait())
    run(reactor, turns())
    assert steps == ["before"]
    d.callback("after")
    run(reactor, task)
    assert steps == ["before", "after"]


def test_await_of_an_already_fired_deferred_gives_its_value(reactor: ns.Reactor) -> None:
    async def wait() -> Any:
        return await ns.succeed("ready")

    assert run(reactor, reactor.loop.create_task(wait())) == "ready"


def test_await_gives_the_result_at_the_end_of_the_chain(reactor: ns.Reactor) -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda x: x * 2)

    async def wait() -> Any:
        return await d

    task = reactor.loop.create_task(wait())
    reactor.loop.call_soon(d.callback, 21)
    assert run(reactor, task) == 42


def test_await_of_an_already_failed_deferred_raises_its_exception(reactor: ns.Reactor) -> None:
    error = Boom("already failed")

    async def wait() -> BaseException | None:
        try:
            await ns.fail(error)
        except Boom as e:
            return e
        return None

    assert run(reactor, wait()) is error


def test_await_of_an_already_failed_deferred_keeps_the_original_traceback(
    reactor: ns.Reactor,
) -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(explode_in_callback)
    d.callback(None)

    async def wait() -> BaseException | None:
        try:
            await d
        except Boom as e:
            return e
        return None

    exc = run(reactor, wait())
    names = frame_names(exc)
    assert "wait" in names
    assert names[-1] == "explode_in_callback"


def test_await_of_a_deferred_failing_later_raises_its_exception_in_the_coroutine(
    reactor: ns.Reactor,
) -> None:
    d: Deferred[Any] = Deferred()
    error = Boom("later")

    async def wait() -> BaseException | None:
        try:
            await d
        except Boom as e:
            return e
        return None

    task = reactor.loop.create_task(wait())
    reactor.loop.call_soon(d.errback, error)
    assert run(reactor, task) is error


def test_await_of_a_deferred_failing_later_keeps_the_original_traceback(
    reactor: ns.Reactor,
) -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(explode_in_callback)

    async def wait() -> BaseException | None:
        try:
            await d
        except Boom as e:
            return e
        return None

    task = reactor.loop.create_task(wait())
    reactor.loop.call_soon(d.callback, None)
    names = frame_names(run(reactor, task))
    assert "wait" in names
    assert names[-1] == "explode_in_callback"


def test_await_works_in_a_coroutine_on_a_plain_asyncio_loop() -> None:
    async def main() -> Any:
        d: Deferred[Any] = Deferred()
        asyncio.get_running_loop().call_soon(d.callback, "plain")
        return await d

    assert asyncio.run(main()) == "plain"


def test_await_of_a_deferred_waiting_on_an_inner_one_gets_the_inner_value(
    reactor: ns.Reactor,
) -> None:
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)

    async def wait() -> Any:
        return await outer

    task = reactor.loop.create_task(wait())
    reactor.loop.call_soon(inner.callback, "inner")
    assert run(reactor, task) == "inner"


def test_contextvar_set_before_await_is_visible_after_it(reactor: ns.Reactor) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    d: Deferred[Any] = Deferred()

    async def wait() -> tuple[str, str]:
        var.set("mine")
        await d
        return var.get(), "done"

    task = reactor.loop.create_task(wait())
    # Fired from a callback running in another context, where var differs.
    other = contextvars.copy_context()
    other.run(var.set, "other")
    reactor.loop.call_soon(d.callback, None, context=other)
    assert run(reactor, task) == ("mine", "done")


def test_contextvar_set_before_await_of_a_fired_deferred_is_visible_after_it(
    reactor: ns.Reactor,
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var2", default="unset")

    async def wait() -> str:
        var.set("mine")
        await ns.succeed(None)
        return var.get()

    assert run(reactor, wait()) == "mine"


# ---- ensure_deferred


def test_ensure_deferred_of_a_coroutine_fires_with_its_result(reactor: ns.Reactor) -> None:
    async def compute() -> int:
        await asyncio.sleep(0)
        return 42

    d = ns.ensure_deferred(compute())
    assert isinstance(d, Deferred)
    run(reactor, turns())
    assert success_result_of(d) == 42


def test_ensure_deferred_of_a_coroutine_that_raises_fails_with_its_exception(
    reactor: ns.Reactor,
) -> None:
    async def compute() -> None:
        await asyncio.sleep(0)
        raise Boom("in coroutine")

    d = ns.ensure_deferred(compute())
    run(reactor, turns())
    assert str(failure_result_of(d, Boom).value) == "in coroutine"


def test_ensure_deferred_of_a_future_fires_with_its_result(reactor: ns.Reactor) -> None:
    fut = reactor.loop.create_future()
    d = ns.ensure_deferred(fut)
    fut.set_result("from future")
    run(reactor, turns())
    assert success_result_of(d) == "from future"


def test_ensure_deferred_of_a_deferred_gives_it_back() -> None:
    d: Deferred[Any] = Deferred()
    assert ns.ensure_deferred(d) is d


def test_ensure_deferred_of_something_not_awaitable_raises_type_error() -> None:
    with pytest.raises(TypeError):
        ns.ensure_deferred(42)  # type: ignore[arg-type]


def test_cancelling_an_ensure_deferred_deferred_cancels_the_task(reactor: ns.Reactor) -> None:
    seen: list[str] = []

    async def work() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never completes
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    d = ns.ensure_deferred(work())
    run(reactor, turns())
    assert seen == []
    d.cancel()
    run(reactor, turns())
    assert seen == ["cancelled"]


def test_cancelling_an_ensure_deferred_deferred_fails_it_with_cancelled_error(
    reactor: ns.Reactor,
) -> None:
    async def work() -> None:
        await asyncio.get_running_loop().create_future()

    d = ns.ensure_deferred(work())
    run(reactor, turns())
    d.cancel()
    run(reactor, turns())
    failure_result_of(d, ns.CancelledError)


def test_a_cancelled_task_makes_its_deferred_fail_with_cancelled_error(
    reactor: ns.Reactor,
) -> None:
    async def work() -> None:
        await asyncio.get_running_loop().create_future()

    task = reactor.loop.create_task(work())
    d = ns.ensure_deferred(task)
    run(reactor, turns())
    no_result(d)
    task.cancel()
    run(reactor, turns())
    failure_result_of(d, ns.CancelledError)


# ---- as_future


def test_as_future_completes_with_the_deferred_value(reactor: ns.Reactor) -> None:
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    assert not fut.done()
    d.callback("value")
    assert fut.result() == "value"


def test_as_future_of_a_fired_deferred_is_done_at_once(reactor: ns.Reactor) -> None:
    fut = ns.succeed("ready").as_future()
    assert fut.done() and fut.result() == "ready"


def test_as_future_of_a_failed_deferred_holds_its_exception(reactor: ns.Reactor) -> None:
    error = Boom("failed")
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    d.errback(error)
    assert fut.exception() is error


def test_as_future_result_can_be_awaited_on_the_loop(reactor: ns.Reactor) -> None:
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    reactor.loop.call_soon(d.callback, "awaited")
    assert run(reactor, fut) == "awaited"


def test_cancelling_the_future_from_as_future_cancels_the_deferred(
    reactor: ns.Reactor,
) -> None:
    cancelled: list[Deferred[Any]] = []
    d: Deferred[Any] = Deferred(cancelled.append)
    fut = d.as_future()
    fut.cancel()
    run(reactor, turns())
    assert cancelled == [d]
    assert d.called


def test_a_deferred_failing_with_cancelled_error_cancels_its_future(
    reactor: ns.Reactor,
) -> None:
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    d.cancel()
    assert fut.cancelled()


# ---- from_future


def test_from_future_fires_with_the_future_result(reactor: ns.Reactor) -> None:
    fut = reactor.loop.create_future()
    d = Deferred.from_future(fut)
    fut.set_result(7)
    run(reactor, turns())
    assert success_result_of(d) == 7


def test_from_future_fails_with_the_future_exception(reactor: ns.Reactor) -> None:
    error = Boom("future failed")
    fut = reactor.loop.create_future()
    d = Deferred.from_future(fut)
    fut.set_exception(error)
    run(reactor, turns())
    assert failure_result_of(d, Boom).value is error


def test_from_future_fails_with_cancelled_error_when_the_future_is_cancelled(
    reactor: ns.Reactor,
) -> None:
    fut = reactor.loop.create_future()
    d = Deferred.from_future(fut)
    fut.cancel()
    run(reactor, turns())
    failure_result_of(d, ns.CancelledError)


def test_cancelling_a_deferred_from_future_cancels_the_future(reactor: ns.Reactor) -> None:
    fut = reactor.loop.create_future()
    d = Deferred.from_future(fut)
    d.cancel()
    assert fut.cancelled()
    failure_result_of(d, ns.CancelledError)


# ---- cancellation from the task side


def test_cancelling_a_task_awaiting_a_deferred_cancels_the_deferred(
    reactor: ns.Reactor,
) -> None:
    cancelled: list[Deferred[Any]] = []
    d: Deferred[Any] = Deferred(cancelled.append)

    async def wait() -> None:
        await d

    task = reactor.loop.create_task(wait())
    run(reactor, turns())
    task.cancel()
    run(reactor, turns())
    assert cancelled == [d]
    assert task.cancelled()
    assert d.called


def test_cancelling_a_task_awaiting_a_deferred_cancels_the_deferred_at_once(
    reactor: ns.Reactor,
) -> None:
    # At once, not a turn of the loop later: in between, the producer could
    # fire the Deferred with a result that no one would receive.
    cancelled: list[Deferred[Any]] = []
    d: Deferred[Any] = Deferred(cancelled.append)

    async def wait() -> None:
        await d

    task = reactor.loop.create_task(wait())
    run(reactor, turns())
    task.cancel()
    assert cancelled == [d]
    run(reactor, turns())
    assert task.cancelled()


def test_cancelling_the_future_from_as_future_cancels_the_deferred_at_once(
    reactor: ns.Reactor,
) -> None:
    cancelled: list[Deferred[Any]] = []
    d: Deferred[Any] = Deferred(cancelled.append)
    fut = d.as_future()
    assert fut.cancel() is True
    assert cancelled == [d]
    assert fut.cancelled()


def test_a_deferred_cancelled_while_awaited_raises_cancelled_error_in_the_coroutine(
    reactor: ns.Reactor,
) -> None:
    d: Deferred[Any] = Deferred()
    seen: list[str] = []

    async def wait() -> None:
        try:
            await d
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = reactor.loop.create_task(wait())
    run(reactor, turns())
    d.cancel()
    run(reactor, turns())
    assert seen == ["cancelled"]
    assert task.cancelled()


# ---- the result stays in the chain (as an asyncio future keeps its result)


def unhandled_logged(caplog: pytest.LogCaptureFixture, number: int) -> list[str]:
    """The "Unhandled error in Deferred #number" records logged so far."""
    return [r.getMessage() for r in caplog.records
            if "Unhandled error" in r.getMessage() and f"#{number} " in r.getMessage()]


class Collected:
    """Keeps ``d`` weakly: once the test dropped its references, :meth:`logged` collects
    it and gives what was logged about it as unhandled."""

    def __init__(self, d: Deferred[Any]) -> None:
        self.ref = weakref.ref(d)
        self.number = d.number

    def logged(self, caplog: pytest.LogCaptureFixture) -> list[str]:
        with caplog.at_level(logging.ERROR, logger="netshell.defer"):
            gc.collect()
        assert self.ref() is None, "the Deferred is still referenced: nothing would be logged"
        return unhandled_logged(caplog, self.number)


def test_await_of_a_pending_deferred_leaves_the_value_in_the_chain(reactor: ns.Reactor) -> None:
    d: Deferred[Any] = Deferred()

    async def wait() -> Any:
        return await d

    task = reactor.loop.create_task(wait())
    reactor.loop.call_soon(d.callback, "kept")
    assert run(reactor, task) == "kept"
    assert d.result == "kept"
    assert repr(d).endswith("fired: 'kept'>")
    later: list[Any] = []
    d.add_callback(later.append)
    assert later == ["kept"]


def test_await_of_a_fired_deferred_leaves_the_value_in_the_chain(reactor: ns.Reactor) -> None:
    d = ns.succeed("kept")

    async def wait() -> Any:
        return await d

    assert run(reactor, wait()) == "kept"
    assert d.result == "kept"


def test_a_deferred_can_be_awaited_twice_in_turn_and_by_two_tasks_at_once(
    reactor: ns.Reactor,
) -> None:
    d: Deferred[Any] = Deferred()

    async def wait() -> Any:
        return await d

    first, second = reactor.loop.create_task(wait()), reactor.loop.create_task(wait())
    run(reactor, turns())
    d.callback(42)
    assert run(reactor, first) == 42 and run(reactor, second) == 42
    assert run(reactor, wait()) == 42  # and once more, after it fired
    assert d.result == 42


async def outcome_of_await(d: Deferred[Any]) -> Any:
    """``await d``: its value, or the exception it raised."""
    try:
        return await d
    except BaseException as e:
        return e


def passing_on(seen: list[Any]) -> Any:
    """An errback that records the Failure it got and passes it on as it is."""

    def errback(f: Failure) -> Failure:
        seen.append(f.value)
        return f

    return errback


@pytest.mark.parametrize("when", ["pending", "fired"])
def test_await_of_a_failing_deferred_leaves_the_failure_in_the_chain_seen_not_logged(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture, when: str,
) -> None:
    error = Boom("awaited")
    d: Deferred[Any] = ns.fail(error) if when == "fired" else Deferred()
    task = reactor.loop.create_task(outcome_of_await(d))
    if when == "pending":
        reactor.loop.call_soon(d.errback, error)
    assert run(reactor, task) is error
    assert isinstance(d.result, Failure) and d.result.value is error
    assert repr(d).endswith("failed: Boom('awaited')>")
    # Awaited twice, the same exception again.
    assert run(reactor, outcome_of_await(d)) is error
    # Later errbacks still get it; passing it on as it is keeps it seen.
    later: list[Any] = []
    d.add_errback(passing_on(later))
    assert later == [error]
    gone = Collected(d)
    del task, d, error, later  # the error's traceback holds the awaiting frame, and d
    assert gone.logged(caplog) == []


def test_a_new_failure_after_the_awaited_one_is_logged_as_unhandled(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture,
) -> None:
    # What the awaiter saw is handled; a different failure made from it later is not.
    d: Deferred[Any] = ns.fail(Boom("awaited"))
    assert isinstance(run(reactor, outcome_of_await(d)), Boom)
    d.add_errback(explode_in_callback)
    gone = Collected(d)
    del d
    assert len(gone.logged(caplog)) == 1


def test_a_failure_nobody_awaited_is_still_logged_as_unhandled(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture,
) -> None:
    d: Deferred[Any] = ns.fail(Boom("nobody saw it"))
    gone = Collected(d)
    del d
    assert len(gone.logged(caplog)) == 1


def test_cancelling_the_awaiting_task_leaves_the_deferred_cancelled(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture,
) -> None:
    # Ctrl-C during ``await d`` at the prompt cancels the input's task: this.
    d: Deferred[Any] = Deferred()
    task = reactor.loop.create_task(outcome_of_await(d))
    run(reactor, turns())
    task.cancel()
    run(reactor, turns())
    assert isinstance(task.result(), asyncio.CancelledError)  # the awaiter got it
    assert isinstance(d.result, Failure) and d.result.check(ns.CancelledError)
    assert repr(d) == f"<Deferred #{d.number} cancelled>"
    later: list[Any] = []
    d.add_errback(passing_on(later))
    assert len(later) == 1 and isinstance(later[0], ns.CancelledError)
    gone = Collected(d)
    del task, d, later
    assert gone.logged(caplog) == []  # the awaiter asked for it: not an unhandled error


def test_cancelling_the_awaiting_task_leaves_a_chain_waiting_on_an_inner_one_cancelled(
    reactor: ns.Reactor,
) -> None:
    inner: Deferred[Any] = Deferred()
    outer = ns.succeed("go").add_callback(lambda _: inner)

    async def wait() -> None:
        await outer

    task = reactor.loop.create_task(wait())
    run(reactor, turns())
    task.cancel()
    run(reactor, turns())
    assert repr(outer) == f"<Deferred #{outer.number} cancelled>"
    assert inner.called  # cancelled, its CancelledError handed on to ``outer``


def test_as_future_leaves_the_value_and_the_failure_in_the_chain(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture,
) -> None:
    d: Deferred[Any] = Deferred()
    first, second = d.as_future(), d.as_future()
    d.callback("value")
    assert first.result() == second.result() == "value"
    assert d.result == "value"
    assert ns.succeed(3).as_future().result() == 3

    error = Boom("to the future")
    failing: Deferred[Any] = Deferred()
    fut = failing.as_future()
    failing.errback(error)
    assert fut.exception() is error
    assert failing.result.value is error
    run(reactor, turns())  # the futures' done-callbacks, which hold the Deferreds
    gone = Collected(failing)
    del fut, failing
    assert gone.logged(caplog) == []  # the future has it: seen


def test_cancelling_the_future_from_as_future_leaves_the_deferred_cancelled(
    reactor: ns.Reactor, caplog: pytest.LogCaptureFixture,
) -> None:
    d: Deferred[Any] = Deferred()
    fut = d.as_future()
    fut.cancel()
    assert repr(d) == f"<Deferred #{d.number} cancelled>"
    run(reactor, turns())  # the future's done-callback, which holds the Deferred
    gone = Collected(d)
    del fut, d
    assert gone.logged(caplog) == []


def test_a_failure_marked_seen_stays_seen_when_later_steps_pass_it_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The prompt marks a failure seen once its note is shown; a callback added after
    # that (the failure passes it by) must not make it "unhandled" again.
    d: Deferred[Any] = ns.fail(Boom("noted"))
    d.mark_failure_seen()
    d.add_callback(lambda x: x)
    gone = Collected(d)
    del d
    assert gone.logged(caplog) == []


def test_a_cancelled_deferred_says_cancelled_and_other_failures_say_failed() -> None:
    d: Deferred[Any] = Deferred()
    d.cancel()
    assert repr(d) == f"<Deferred #{d.number} cancelled>"
    d.add_errback(handled)
    timed = ns.fail(ns.TimeoutError("late"))
    assert "failed: TimeoutError('late')" in repr(timed)
    timed.add_errback(handled)
