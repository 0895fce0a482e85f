"""The Deferred helpers: succeed, fail, maybe_deferred, gather, race, sleep, and the
DeferredLock, DeferredSemaphore and DeferredQueue.

Time is virtual (:class:`netshell.testing.Clock`). Tests that need an event
loop (coroutines, ``async with``, ``async for``) get a fresh reactor of their
own and run it only until what they wait for is done.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netshell as ns
from netshell import Deferred, Failure
from netshell.testing import Clock, failure_result_of, no_result, success_result_of

# Every test runs twice: unobserved, and with an observer of every Deferred event
# (the two loops a chain can run through; tests/conftest.py).
pytestmark = pytest.mark.usefixtures("each_way_observed")

# ``netshell.reactor`` as an attribute is the current-reactor proxy; the module is here.
reactor_mod = importlib.import_module("netshell.reactor")


# ---- fixtures and helpers


@pytest.fixture
def clock() -> Clock:
    return Clock()


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


class Boom(Exception):
    def __init__(self, tag: Any = None) -> None:
        super().__init__(tag)
        self.tag = tag


def handled(f: Failure) -> None:
    return None


async def returns(value: Any) -> Any:
    await asyncio.sleep(0)  # a turn of the loop, not real time
    return value


async def turns(n: int = 5) -> None:
    """Let the loop go round ``n`` times (no real time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


def cancel_recorder() -> tuple[list[Deferred[Any]], Any]:
    cancelled: list[Deferred[Any]] = []
    return cancelled, cancelled.append


# ---- succeed and fail


def test_succeed_gives_a_deferred_that_has_fired_with_the_value() -> None:
    d = ns.succeed("v")
    assert d.called
    assert success_result_of(d) == "v"


def test_succeed_runs_a_callback_added_later_at_once() -> None:
    seen: list[Any] = []
    ns.succeed(3).add_callback(seen.append)
    assert seen == [3]


def test_fail_with_an_exception_gives_a_deferred_failed_with_it() -> None:
    error = Boom("f")
    d = ns.fail(error)
    assert d.called
    assert failure_result_of(d, Boom).value is error


def test_fail_with_a_failure_gives_a_deferred_failed_with_that_failure() -> None:
    failure = Failure(Boom("given"))
    d = ns.fail(failure)
    assert failure_result_of(d) is failure


def test_fail_with_no_argument_inside_except_uses_the_current_exception() -> None:
    error = Boom("current")
    try:
        raise error
    except Boom:
        d = ns.fail()
    assert failure_result_of(d).value is error


# ---- maybe_deferred


def test_maybe_deferred_of_a_function_returning_a_value_gives_a_fired_deferred() -> None:
    d = ns.maybe_deferred(lambda: 5)
    assert success_result_of(d) == 5


def test_maybe_deferred_passes_positional_and_keyword_arguments() -> None:
    d = ns.maybe_deferred(lambda a, b, *, c: (a, b, c), 1, 2, c=3)
    assert success_result_of(d) == (1, 2, 3)


def test_maybe_deferred_of_a_function_that_raises_gives_a_failed_deferred() -> None:
    def explode() -> None:
        raise Boom("raised")

    d = ns.maybe_deferred(explode)
    assert failure_result_of(d, Boom).value.tag == "raised"


def test_maybe_deferred_of_a_function_returning_a_failure_gives_a_failed_deferred() -> None:
    failure = Failure(Boom("returned"))
    d = ns.maybe_deferred(lambda: failure)
    assert failure_result_of(d, Boom).value is failure.value


def test_maybe_deferred_of_a_function_returning_a_failure_is_logged_when_unhandled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d = ns.maybe_deferred(lambda: Failure(Boom("returned")))
    pattern = re.compile(rf"Unhandled error.*#{d.number}\b")
    del d
    gc.collect()
    assert [r for r in caplog.records if pattern.search(r.getMessage())] != []


def test_maybe_deferred_of_a_function_returning_a_deferred_gives_that_same_deferred() -> None:
    inner: Deferred[Any] = Deferred()
    assert ns.maybe_deferred(lambda: inner) is inner


def test_maybe_deferred_of_a_coroutine_function_has_no_result_before_the_loop_runs(
    reactor: ns.Reactor,
) -> None:
    d = ns.maybe_deferred(returns, "later")
    no_result(d)
    assert run(reactor, d) == "later"


def test_maybe_deferred_of_a_coroutine_function_fires_with_the_coroutine_result(
    reactor: ns.Reactor,
) -> None:
    d = ns.maybe_deferred(returns, "from coroutine")
    run(reactor, turns())
    assert success_result_of(d) == "from coroutine"


def test_maybe_deferred_of_a_coroutine_that_raises_gives_a_failed_deferred(
    reactor: ns.Reactor,
) -> None:
    async def explode() -> None:
        await asyncio.sleep(0)
        raise Boom("in coroutine")

    d = ns.maybe_deferred(explode)
    run(reactor, turns())
    assert failure_result_of(d, Boom).value.tag == "in coroutine"


# ---- gather


def test_gather_fires_with_the_list_of_results_in_argument_order() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    c: Deferred[Any] = Deferred()
    g = ns.gather(a, b, c)
    c.callback("c")
    a.callback("a")
    b.callback("b")
    assert success_result_of(g) == ["a", "b", "c"]


def test_gather_waits_until_every_deferred_has_fired() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    g = ns.gather(a, b)
    a.callback(1)
    no_result(g)
    b.callback(2)


def test_gather_of_already_fired_deferreds_fires_at_once() -> None:
    g = ns.gather(ns.succeed(1), ns.succeed(2))
    assert success_result_of(g) == [1, 2]


def test_gather_with_no_arguments_fires_with_an_empty_list() -> None:
    assert success_result_of(ns.gather()) == []


def test_gather_accepts_coroutines(reactor: ns.Reactor) -> None:
    g = ns.gather(returns("x"), ns.succeed("y"), returns("z"))
    assert run(reactor, g) == ["x", "y", "z"]


def test_gather_fails_with_the_first_failure() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    g = ns.gather(a, b)
    failure = Failure(Boom("first"))
    b.errback(failure)
    b.add_errback(handled)
    assert failure_result_of(g) is failure


def test_gather_fails_at_once_on_a_failure_while_others_are_pending() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    g = ns.gather(a, b, consume_errors=True)
    b.errback(Boom())
    assert g.called
    failure_result_of(g, Boom)


def test_gather_keeps_the_first_failure_when_a_second_one_comes() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    g = ns.gather(a, b, consume_errors=True)
    b.errback(Boom("first"))
    a.errback(Boom("second"))
    assert failure_result_of(g, Boom).value.tag == "first"


def test_gather_with_consume_errors_leaves_none_in_the_failed_inputs() -> None:
    a: Deferred[Any] = Deferred()
    g = ns.gather(a, consume_errors=True)
    a.errback(Boom())
    g.add_errback(handled)
    assert a.result is None


def test_gather_without_consume_errors_leaves_the_failure_in_the_failed_inputs() -> None:
    a: Deferred[Any] = Deferred()
    g = ns.gather(a, consume_errors=False)
    a.errback(Boom("stays"))
    g.add_errback(handled)
    assert isinstance(a.result, Failure) and a.result.value.tag == "stays"
    a.add_errback(handled)


def test_gather_leaves_the_results_of_successful_inputs_in_them() -> None:
    a: Deferred[Any] = Deferred()
    g = ns.gather(a)
    a.callback("kept")
    assert success_result_of(g) == ["kept"]
    assert a.result == "kept"


def test_cancelling_gather_cancels_the_pending_inputs() -> None:
    cancelled, canceller = cancel_recorder()
    a: Deferred[Any] = Deferred(canceller)
    b: Deferred[Any] = Deferred(canceller)
    g = ns.gather(a, b)
    g.cancel()
    g.add_errback(handled)
    assert cancelled == [a, b]


def test_cancelling_gather_leaves_fired_inputs_alone() -> None:
    cancelled, canceller = cancel_recorder()
    done: Deferred[Any] = Deferred(canceller)
    done.callback("done")
    pending: Deferred[Any] = Deferred()
    g = ns.gather(done, pending)
    g.cancel()
    g.add_errback(handled)
    assert cancelled == []
    assert done.result == "done"


def test_cancelling_gather_fails_it_with_cancelled_error() -> None:
    g = ns.gather(Deferred(), Deferred())
    g.cancel()
    failure_result_of(g, ns.CancelledError)


_outcomes = st.lists(
    st.tuples(st.sampled_from(["ok", "err"]), st.integers(0, 99)), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(outcomes=_outcomes, data=st.data())
def test_gather_result_matches_the_reference_model_for_any_firing_order(
    outcomes: list[tuple[str, int]], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(range(len(outcomes))), label="firing order")
    ds: list[Deferred[Any]] = [Deferred() for _ in outcomes]
    g = ns.gather(*ds, consume_errors=True)
    for i in order:
        kind, arg = outcomes[i]
        if kind == "ok":
            ds[i].callback(arg)
        else:
            ds[i].errback(Boom(arg))
    first_error = next((outcomes[i][1] for i in order if outcomes[i][0] == "err"), None)
    got: list[Any] = []
    g.add_both(got.append)
    if first_error is None:
        assert got == [[arg for _, arg in outcomes]]
    else:
        assert isinstance(got[0], Failure) and got[0].value.tag == first_error


# ---- race


def test_race_fires_with_the_index_and_result_of_the_first_success() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    r = ns.race(a, b)
    b.callback("b wins")
    assert success_result_of(r) == (1, "b wins")


def test_race_cancels_the_others_once_one_succeeds() -> None:
    cancelled, canceller = cancel_recorder()
    a: Deferred[Any] = Deferred(canceller)
    b: Deferred[Any] = Deferred()
    c: Deferred[Any] = Deferred(canceller)
    ns.race(a, b, c)
    b.callback("win")
    assert cancelled == [a, c]


def test_race_ignores_a_failure_while_another_may_still_succeed() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    r = ns.race(a, b)
    a.errback(Boom("lost"))
    no_result(r)
    b.callback("b")
    assert success_result_of(r) == (1, "b")


def test_race_fails_with_an_exception_group_when_all_fail() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    r = ns.race(a, b)
    a.errback(Boom("a"))
    b.errback(Boom("b"))
    group = failure_result_of(r, ExceptionGroup).value
    assert isinstance(group, ExceptionGroup)


def test_race_exception_group_holds_every_exception_in_argument_order() -> None:
    errors = [Boom("a"), Boom("b"), Boom("c")]
    ds: list[Deferred[Any]] = [Deferred() for _ in errors]
    r = ns.race(*ds)
    for i in (2, 0, 1):
        ds[i].errback(errors[i])
    group = failure_result_of(r, ExceptionGroup).value
    assert list(group.exceptions) == errors


def test_race_with_no_arguments_raises_value_error() -> None:
    with pytest.raises(ValueError):
        ns.race()


def test_race_with_an_already_fired_deferred_fires_at_once() -> None:
    r = ns.race(Deferred(), ns.succeed("ready"))
    assert success_result_of(r) == (1, "ready")


def test_race_fires_when_every_input_is_cancelled() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    r = ns.race(a, b)
    a.cancel()
    b.cancel()
    group = failure_result_of(r, BaseExceptionGroup).value
    assert [type(e) for e in group.exceptions] == [ns.CancelledError, ns.CancelledError]


def test_cancelling_race_cancels_every_input() -> None:
    cancelled, canceller = cancel_recorder()
    a: Deferred[Any] = Deferred(canceller)
    b: Deferred[Any] = Deferred(canceller)
    r = ns.race(a, b)
    r.cancel()
    r.add_errback(handled)
    assert cancelled == [a, b]


def test_cancelling_race_fails_it_with_cancelled_error() -> None:
    r = ns.race(Deferred(), Deferred())
    r.cancel()
    failure_result_of(r, ns.CancelledError)


def test_cancelling_race_leaves_no_failure_in_the_inputs() -> None:
    a: Deferred[Any] = Deferred()
    b: Deferred[Any] = Deferred()
    r = ns.race(a, b)
    r.cancel()
    r.add_errback(handled)
    assert (a.result, b.result) == (None, None)


@settings(max_examples=200, deadline=None)
@given(outcomes=_outcomes, data=st.data())
def test_race_result_matches_the_reference_model_for_any_firing_order(
    outcomes: list[tuple[str, int]], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(range(len(outcomes))), label="firing order")
    ds: list[Deferred[Any]] = [Deferred() for _ in outcomes]
    r = ns.race(*ds)
    for i in order:
        kind, arg = outcomes[i]
        # After the winner, the others were cancelled: their one late result is swallowed.
        if kind == "ok":
            ds[i].callback(arg)
        else:
            ds[i].errback(Boom(arg))
    winner = next((i for i in order if outcomes[i][0] == "ok"), None)
    got: list[Any] = []
    r.add_both(got.append)
    if winner is not None:
        assert got == [(winner, outcomes[winner][1])]
    else:
        assert isinstance(got[0], Failure)
        assert [e.tag for e in got[0].value.exceptions] == [arg for _, arg in outcomes]


# ---- sleep


def test_sleep_fires_with_none_after_the_time(clock: Clock) -> None:
    d = ns.sleep(5, clock=clock)
    clock.advance(5)
    assert success_result_of(d) is None


def test_sleep_has_not_fired_before_the_time(clock: Clock) -> None:
    d = ns.sleep(5, clock=clock)
    clock.advance(4.999)
    no_result(d)


def test_cancelling_sleep_cancels_its_timer(clock: Clock) -> None:
    d = ns.sleep(5, clock=clock)
    assert len(clock.calls) == 1
    d.cancel()
    assert clock.calls == []
    failure_result_of(d, ns.CancelledError)


def test_cancelled_sleep_stays_cancelled_after_the_time(clock: Clock) -> None:
    d = ns.sleep(5, clock=clock)
    d.cancel()
    clock.advance(10)
    failure_result_of(d, ns.CancelledError)


# ---- DeferredLock


def test_lock_acquire_when_free_fires_with_the_lock() -> None:
    lock = ns.DeferredLock()
    assert success_result_of(lock.acquire()) is lock
    assert lock.locked


def test_lock_second_acquire_waits_while_the_lock_is_held() -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    no_result(lock.acquire())


def test_lock_release_hands_the_lock_to_the_waiter() -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    second = lock.acquire()
    lock.release()
    assert success_result_of(second) is lock
    assert lock.locked


def test_lock_release_hands_over_in_fifo_order() -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    order: list[int] = []
    for i in range(3):
        lock.acquire().add_callback(lambda _, i=i: order.append(i))
    for _ in range(3):
        lock.release()
    assert order == [0, 1, 2]


def test_lock_release_with_no_waiter_unlocks_it() -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    lock.release()
    assert not lock.locked
    assert lock.acquire().called


def test_lock_release_when_unlocked_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        ns.DeferredLock().release()


def test_lock_cancelling_a_waiting_acquire_removes_it() -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    waiting = lock.acquire()
    waiting.cancel()
    failure_result_of(waiting, ns.CancelledError)
    lock.release()
    assert not lock.locked


def test_lock_cancelling_a_waiting_acquire_lets_the_next_one_have_the_lock() -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    cancelled = lock.acquire()
    third = lock.acquire()
    cancelled.cancel()
    cancelled.add_errback(handled)
    lock.release()
    assert success_result_of(third) is lock


def test_lock_run_calls_the_function_with_its_arguments_and_gives_its_result() -> None:
    lock = ns.DeferredLock()
    d = lock.run(lambda a, *, b: (a, b), 1, b=2)
    assert success_result_of(d) == (1, 2)


def test_lock_run_holds_the_lock_while_the_function_runs() -> None:
    lock = ns.DeferredLock()
    held: list[bool] = []
    lock.run(lambda: held.append(lock.locked))
    assert held == [True]


def test_lock_run_releases_the_lock_afterwards() -> None:
    lock = ns.DeferredLock()
    lock.run(lambda: None)
    assert not lock.locked


def test_lock_run_releases_the_lock_when_the_function_raises() -> None:
    def explode() -> None:
        raise Boom("in run")

    lock = ns.DeferredLock()
    d = lock.run(explode)
    assert failure_result_of(d, Boom).value.tag == "in run"
    assert not lock.locked


def test_lock_run_waits_for_the_lock() -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    calls: list[str] = []
    d = lock.run(calls.append, "ran")
    assert calls == []
    lock.release()
    assert calls == ["ran"]
    success_result_of(d)


def test_lock_run_keeps_the_lock_until_a_returned_deferred_fires() -> None:
    lock = ns.DeferredLock()
    work: Deferred[Any] = Deferred()
    d = lock.run(lambda: work)
    assert lock.locked
    work.callback("worked")
    assert not lock.locked
    assert success_result_of(d) == "worked"


def test_lock_async_with_holds_the_lock_inside_and_releases_it_after(
    reactor: ns.Reactor,
) -> None:
    lock = ns.DeferredLock()

    async def use() -> bool:
        async with lock as held:
            assert held is lock
            inside = lock.locked
        return inside

    assert run(reactor, use()) is True
    assert not lock.locked


def test_lock_async_with_waits_while_the_lock_is_held(reactor: ns.Reactor) -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    entered: list[bool] = []

    async def use() -> None:
        async with lock:
            entered.append(True)

    task = reactor.loop.create_task(use())
    run(reactor, turns())
    assert entered == []
    lock.release()
    run(reactor, task)
    assert entered == [True]
    assert not lock.locked


def test_lock_async_with_releases_when_the_body_raises(reactor: ns.Reactor) -> None:
    lock = ns.DeferredLock()

    async def use() -> None:
        async with lock:
            raise Boom("body")

    with pytest.raises(Boom):
        run(reactor, use())
    assert not lock.locked


def test_lock_is_not_lost_when_a_waiting_task_is_cancelled_as_the_lock_is_released(
    reactor: ns.Reactor,
) -> None:
    lock = ns.DeferredLock()
    lock.acquire()

    async def use() -> None:
        async with lock:
            pass

    task = reactor.loop.create_task(use())
    run(reactor, turns())
    task.cancel()
    lock.release()  # in the same turn of the loop as the cancel
    run(reactor, turns())
    assert task.cancelled()
    assert not lock.locked


# ---- DeferredSemaphore


def test_semaphore_gives_as_many_tokens_at_once_as_it_has() -> None:
    sem = ns.DeferredSemaphore(2)
    first, second = sem.acquire(), sem.acquire()
    assert success_result_of(first) is sem
    assert success_result_of(second) is sem


def test_semaphore_acquire_waits_when_no_token_is_left() -> None:
    sem = ns.DeferredSemaphore(2)
    sem.acquire()
    sem.acquire()
    no_result(sem.acquire())


def test_semaphore_release_hands_a_token_to_the_waiter() -> None:
    sem = ns.DeferredSemaphore(1)
    sem.acquire()
    waiting = sem.acquire()
    sem.release()
    assert success_result_of(waiting) is sem


def test_semaphore_release_hands_over_in_fifo_order() -> None:
    sem = ns.DeferredSemaphore(1)
    sem.acquire()
    order: list[int] = []
    for i in range(3):
        sem.acquire().add_callback(lambda _, i=i: order.append(i))
    for _ in range(3):
        sem.release()
    assert order == [0, 1, 2]


def test_semaphore_release_with_no_waiter_makes_a_token_free_again() -> None:
    sem = ns.DeferredSemaphore(1)
    sem.acquire()
    sem.release()
    assert sem.acquire().called


@pytest.mark.parametrize("tokens", [0, -1])
def test_semaphore_with_fewer_than_one_token_raises_value_error(tokens: int) -> None:
    with pytest.raises(ValueError):
        ns.DeferredSemaphore(tokens)


def test_semaphore_release_with_no_token_held_raises_runtime_error() -> None:
    sem = ns.DeferredSemaphore(2)
    sem.acquire()
    sem.release()
    with pytest.raises(RuntimeError):
        sem.release()


def test_semaphore_cancelling_a_waiting_acquire_removes_it() -> None:
    sem = ns.DeferredSemaphore(1)
    sem.acquire()
    cancelled = sem.acquire()
    third = sem.acquire()
    cancelled.cancel()
    failure_result_of(cancelled, ns.CancelledError)
    sem.release()
    assert success_result_of(third) is sem


def test_semaphore_run_gives_the_result_and_releases_the_token() -> None:
    sem = ns.DeferredSemaphore(1)
    d = sem.run(lambda a: a * 2, 21)
    assert success_result_of(d) == 42
    assert sem.acquire().called


def test_semaphore_run_releases_the_token_when_the_function_raises() -> None:
    def explode() -> None:
        raise Boom("in run")

    sem = ns.DeferredSemaphore(1)
    failure_result_of(sem.run(explode), Boom)
    assert sem.acquire().called


def test_semaphore_async_with_takes_a_token_inside_and_gives_it_back_after(
    reactor: ns.Reactor,
) -> None:
    sem = ns.DeferredSemaphore(1)

    async def use() -> tuple[bool, Deferred[Any]]:
        async with sem as held:
            assert held is sem
            inside = sem.acquire()
            waited = not inside.called
        return waited, inside

    waited, inside = run(reactor, use())
    assert waited
    # Leaving the block gave the token back, to the acquire made inside it.
    assert success_result_of(inside) is sem


def test_semaphore_async_with_gives_the_token_back(reactor: ns.Reactor) -> None:
    sem = ns.DeferredSemaphore(1)

    async def use() -> None:
        async with sem:
            pass

    run(reactor, use())
    assert sem.acquire().called


def test_semaphore_token_is_not_lost_when_a_waiting_task_is_cancelled_as_one_is_released(
    reactor: ns.Reactor,
) -> None:
    sem = ns.DeferredSemaphore(1)
    sem.acquire()

    async def use() -> None:
        async with sem:
            pass

    task = reactor.loop.create_task(use())
    run(reactor, turns())
    task.cancel()
    sem.release()  # in the same turn of the loop as the cancel
    run(reactor, turns())
    assert task.cancelled()
    assert sem.acquire().called


# ---- DeferredQueue


def test_queue_get_after_put_fires_with_the_item() -> None:
    q: ns.DeferredQueue[str] = ns.DeferredQueue()
    q.put("item")
    assert success_result_of(q.get()) == "item"


def test_queue_get_before_put_waits_for_the_item() -> None:
    q: ns.DeferredQueue[str] = ns.DeferredQueue()
    d = q.get()
    no_result(d)
    q.put("item")
    assert success_result_of(d) == "item"


def test_queue_gives_items_in_fifo_order() -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue()
    for i in range(3):
        q.put(i)
    assert [success_result_of(q.get()) for _ in range(3)] == [0, 1, 2]


def test_queue_serves_waiting_getters_in_fifo_order() -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue()
    getters = [q.get() for _ in range(3)]
    for i in range(3):
        q.put(i)
    assert [success_result_of(g) for g in getters] == [0, 1, 2]


def test_queue_put_beyond_size_raises_queue_overflow() -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue(size=2)
    q.put(1)
    q.put(2)
    with pytest.raises(ns.QueueOverflow):
        q.put(3)


def test_queue_overflow_keeps_the_items_already_held() -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue(size=1)
    q.put(1)
    with pytest.raises(ns.QueueOverflow):
        q.put(2)
    assert success_result_of(q.get()) == 1
    no_result(q.get())


def test_queue_put_to_a_waiting_getter_does_not_count_against_size() -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue(size=1)
    d = q.get()
    q.put(1)
    q.put(2)
    assert success_result_of(d) == 1
    assert success_result_of(q.get()) == 2


def test_queue_get_beyond_backlog_raises_queue_underflow() -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue(backlog=1)
    q.get()
    with pytest.raises(ns.QueueUnderflow):
        q.get()


def test_queue_get_of_a_held_item_does_not_count_against_backlog() -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue(backlog=1)
    q.put(1)
    q.put(2)
    assert success_result_of(q.get()) == 1
    assert success_result_of(q.get()) == 2


def test_queue_cancelling_a_waiting_get_removes_it() -> None:
    q: ns.DeferredQueue[str] = ns.DeferredQueue()
    d = q.get()
    d.cancel()
    failure_result_of(d, ns.CancelledError)
    q.put("kept")
    assert success_result_of(q.get()) == "kept"


def test_queue_cancelling_a_waiting_get_frees_its_backlog_slot() -> None:
    q: ns.DeferredQueue[str] = ns.DeferredQueue(backlog=1)
    d = q.get()
    d.cancel()
    d.add_errback(handled)
    no_result(q.get())


def test_queue_async_for_yields_the_items_in_order(reactor: ns.Reactor) -> None:
    q: ns.DeferredQueue[Any] = ns.DeferredQueue()

    async def consume() -> list[Any]:
        items = []
        async for item in q:
            if item is None:
                break
            items.append(item)
        return items

    task = reactor.loop.create_task(consume())
    q.put("a")
    reactor.loop.call_soon(q.put, "b")
    reactor.loop.call_soon(q.put, "c")
    reactor.loop.call_soon(q.put, None)
    assert run(reactor, task) == ["a", "b", "c"]


def test_queue_item_is_not_lost_when_a_waiting_task_is_cancelled_as_it_is_put(
    reactor: ns.Reactor,
) -> None:
    q: ns.DeferredQueue[str] = ns.DeferredQueue()

    async def consume() -> None:
        async for _ in q:
            pass

    task = reactor.loop.create_task(consume())
    run(reactor, turns())
    task.cancel()
    q.put("item")  # in the same turn of the loop as the cancel
    run(reactor, turns())
    assert task.cancelled()
    assert success_result_of(q.get()) == "item"


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.sampled_from(["put", "get"]), max_size=30))
def test_queue_nth_get_receives_the_nth_put_item_for_any_interleaving(ops: list[str]) -> None:
    q: ns.DeferredQueue[int] = ns.DeferredQueue()
    got: list[Any] = []
    puts = 0
    for op in ops:
        if op == "put":
            q.put(puts)
            puts += 1
        else:
            got.append(q.get())
    received = [success_result_of(d) for d in got if d.called]
    assert received == list(range(len(received)))
    assert len(received) == min(puts, len(got))


# ---- introspection helpers


def test_next_deferred_number_looks_without_taking() -> None:
    from netshell.defer import next_deferred_number

    n = next_deferred_number()
    assert next_deferred_number() == n
    assert ns.Deferred().number == n and ns.Deferred().number == n + 1
    assert next_deferred_number() == n + 2


def test_has_canceller_until_the_canceller_runs() -> None:
    from netshell.defer import has_canceller

    assert not has_canceller(ns.Deferred())
    d: Deferred[Any] = ns.Deferred(lambda _d: None)
    assert has_canceller(d)
    d.cancel()
    assert not has_canceller(d)
    d.add_errback(lambda f: None)
