"""Deferreds and asyncio: await, ensure_deferred, as_future, from_future,
cancellation in both directions, and contextvars across an await.

Every test has its own reactor (a fresh loop) and runs it only until what it
waits for is done; nothing sleeps on real time. ``turns()`` lets the loop go
round a few times, which is all a done-callback or a cancellation needs.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import traceback
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
