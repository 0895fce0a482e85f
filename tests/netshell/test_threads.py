"""Threads as sources of Deferreds: defer_to_thread, call_in_thread, call_from_thread, the pool.

Jobs that must overlap block on a ``threading.Event`` the test releases; the
test waits for what it expects (a Condition, an Event, a join, or a Deferred
run to completion on the loop), never on a sleep.
"""

from __future__ import annotations

import logging
import threading

import pytest

import netshell as ns
from netshell.threads import ThreadPool

WAIT = 10  # seconds: a bound for waits that should end at once


class Gauge:
    """Counts jobs running now, and the most that ever ran at once."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.running = 0
        self.peak = 0
        self.finished = 0
        self.threads: list[threading.Thread] = []

    def enter(self) -> None:
        with self.cond:
            self.threads.append(threading.current_thread())
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.cond.notify_all()

    def leave(self) -> None:
        with self.cond:
            self.running -= 1
            self.finished += 1
            self.cond.notify_all()

    def wait_for(self, predicate) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), WAIT)


def gated_job(gauge: Gauge, gate: threading.Event):
    def job():
        gauge.enter()
        try:
            assert gate.wait(WAIT), "the test never opened the gate"
        finally:
            gauge.leave()
        return threading.current_thread()

    return job


# ---- defer_to_thread


async def test_defer_to_thread_fires_with_the_result(reactor):
    assert await ns.defer_to_thread(lambda: 42) == 42


async def test_defer_to_thread_passes_args_and_kwargs(reactor):
    def combine(a, b, *, c):
        return (a, b, c)

    assert await ns.defer_to_thread(combine, 1, 2, c=3) == (1, 2, 3)


async def test_defer_to_thread_runs_the_function_in_another_thread(reactor):
    loop_thread = threading.get_ident()
    worker_thread = await ns.defer_to_thread(threading.get_ident)
    assert worker_thread != loop_thread


async def test_defer_to_thread_runs_the_function_in_a_named_worker(reactor):
    name = await ns.defer_to_thread(lambda: threading.current_thread().name)
    assert name.startswith("netshell-worker")


def test_defer_to_thread_fires_in_the_loop_thread(reactor):
    loop_thread = threading.get_ident()
    d = ns.defer_to_thread(lambda: "x")
    d.add_callback(lambda _: threading.get_ident())
    assert reactor.run_until(d, timeout=WAIT) == loop_thread


def test_defer_to_thread_does_not_fire_before_the_loop_turns(reactor):
    done = threading.Event()
    d = ns.defer_to_thread(done.set)
    assert done.wait(WAIT)
    assert not d.called
    reactor.run_until(d, timeout=WAIT)
    assert d.called


def test_defer_to_thread_uses_the_current_reactors_pool(reactor):
    reactor.run_until(ns.defer_to_thread(lambda: None), timeout=WAIT)
    assert reactor.thread_pool.workers >= 1


def test_reactor_defer_to_thread_method_fires_with_the_result(reactor):
    assert reactor.run_until(reactor.defer_to_thread(sum, [1, 2, 3]), timeout=WAIT) == 6


def _raise_lookup(key):
    raise LookupError(key)


def _failure_of(reactor, d):
    failures = []
    d.add_errback(failures.append)
    reactor.run_until(d, timeout=WAIT)
    assert len(failures) == 1
    return failures[0]


def test_defer_to_thread_error_is_a_failure_with_the_original_exception(reactor):
    raised = []

    def compute():
        exc = ValueError("bad input")
        raised.append(exc)
        raise exc

    failure = _failure_of(reactor, ns.defer_to_thread(compute))
    assert isinstance(failure, ns.Failure)
    assert failure.value is raised[0]
    assert failure.type is ValueError


def test_defer_to_thread_failure_traceback_names_the_function(reactor):
    failure = _failure_of(reactor, ns.defer_to_thread(_raise_lookup, "k"))
    text = failure.get_traceback()
    assert "in _raise_lookup" in text
    assert "LookupError: k" in text


async def test_awaiting_defer_to_thread_raises_the_original_exception(reactor):
    with pytest.raises(LookupError, match="wanted"):
        await ns.defer_to_thread(_raise_lookup, "wanted")


def test_defer_to_thread_result_after_the_loop_closed_is_dropped_with_a_warning(caplog):
    r = ns.Reactor()
    gauge, gate = Gauge(), threading.Event()
    r.defer_to_thread(gated_job(gauge, gate))
    assert gauge.wait_for(lambda g: g.running == 1)
    with caplog.at_level(logging.WARNING, logger="netshell"):
        r.close()
        gate.set()
        gauge.threads[0].join(WAIT)
    assert not gauge.threads[0].is_alive()
    assert any("dropped" in rec.getMessage() for rec in caplog.records)


# ---- call_in_thread and call_from_thread


def test_call_in_thread_runs_the_function_in_a_worker(reactor):
    ran = threading.Event()
    where = []
    reactor.call_in_thread(lambda: (where.append(threading.get_ident()), ran.set()))
    assert ran.wait(WAIT)
    assert where[0] != threading.get_ident()


def test_call_in_thread_passes_args_and_kwargs(reactor):
    ran = threading.Event()
    got = []

    def record(a, b, *, c):
        got.append((a, b, c))
        ran.set()

    reactor.call_in_thread(record, 1, 2, c=3)
    assert ran.wait(WAIT)
    assert got == [(1, 2, 3)]


def test_call_in_thread_error_is_logged_with_traceback(reactor, caplog):
    reactor.set_thread_pool_size(1)

    def broken_job():
        raise KeyError("in the worker")

    after = threading.Event()
    with caplog.at_level(logging.ERROR, logger="netshell"):
        reactor.call_in_thread(broken_job)
        reactor.call_in_thread(after.set)  # the one worker logs the error first
        assert after.wait(WAIT)
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert len(records) == 1
    assert records[0].name.startswith("netshell")
    assert "in broken_job" in caplog.text


def test_worker_survives_an_exception(reactor, caplog):
    reactor.set_thread_pool_size(1)
    threads = []

    def broken_job():
        threads.append(threading.current_thread())
        raise RuntimeError("boom")

    with caplog.at_level(logging.CRITICAL + 1, logger="netshell"):
        reactor.call_in_thread(broken_job)
        d = ns.defer_to_thread(threading.current_thread)
        after = reactor.run_until(d, timeout=WAIT)
    assert after is threads[0]
    assert after.is_alive()


def test_call_from_thread_runs_in_the_loop_thread(reactor):
    loop_thread = threading.get_ident()
    d = ns.Deferred()
    t = threading.Thread(
        target=reactor.call_from_thread, args=(lambda: d.callback(threading.get_ident()),)
    )
    t.start()
    assert reactor.run_until(d, timeout=WAIT) == loop_thread
    t.join(WAIT)


def test_call_from_thread_passes_args(reactor):
    d = ns.Deferred()
    t = threading.Thread(target=reactor.call_from_thread, args=(d.callback, "from worker"))
    t.start()
    assert reactor.run_until(d, timeout=WAIT) == "from worker"
    t.join(WAIT)


def test_call_from_thread_passes_kwargs(reactor):
    d = ns.Deferred()

    def fire(a, *, b):
        d.callback((a, b))

    t = threading.Thread(target=reactor.call_from_thread, args=(fire, 1), kwargs={"b": 2})
    t.start()
    assert reactor.run_until(d, timeout=WAIT) == (1, 2)
    t.join(WAIT)


def test_call_from_thread_from_a_pool_worker_runs_in_the_loop_thread(reactor):
    loop_thread = threading.get_ident()
    d = ns.Deferred()
    reactor.call_in_thread(reactor.call_from_thread, lambda: d.callback(threading.get_ident()))
    assert reactor.run_until(d, timeout=WAIT) == loop_thread


def test_the_current_reactor_in_a_pool_worker_is_the_pools_own(reactor):
    # ``netshell.reactor`` in a job: the reactor that runs, not a fresh one of the
    # worker's own on a loop nobody runs (where call_from_thread would be lost).
    loop_thread = threading.get_ident()
    back = ns.Deferred()

    def job():
        ns.reactor.call_from_thread(lambda: back.callback(threading.get_ident()))
        return ns.get_reactor()

    assert reactor.run_until(ns.defer_to_thread(job), timeout=WAIT) is reactor
    assert reactor.run_until(back, timeout=WAIT) == loop_thread


def test_a_thread_in_a_context_that_carries_a_loop_gets_that_loops_reactor(reactor):
    import contextvars

    from netshell import current

    found = {}

    def which(name):
        found[name] = ns.get_reactor()

    def carried():
        current.carry_loop(reactor.loop)
        t = threading.Thread(target=contextvars.copy_context().run, args=(which, "carried"))
        t.start()
        t.join(WAIT)

    contextvars.Context().run(carried)
    t = threading.Thread(target=which, args=("own",))  # a context that carries nothing
    t.start()
    t.join(WAIT)
    assert found["carried"] is reactor
    assert found["own"] is not reactor and found["own"].loop is not reactor.loop
    found["own"].close()


def test_call_from_thread_after_the_loop_closed_raises_runtime_error():
    r = ns.Reactor()
    r.close()
    with pytest.raises(RuntimeError):
        r.call_from_thread(print)


# ---- a bounded, resizable pool


def test_pool_runs_at_most_its_size_at_once(reactor):
    reactor.set_thread_pool_size(2)
    gauge, gate = Gauge(), threading.Event()
    ds = [ns.defer_to_thread(gated_job(gauge, gate)) for _ in range(5)]
    try:
        assert gauge.wait_for(lambda g: g.running == 2)
        assert reactor.thread_pool.busy == 2
        assert reactor.thread_pool.queued == 3
    finally:
        gate.set()
    reactor.run_until(ns.gather(*ds), timeout=WAIT)
    assert gauge.peak == 2
    assert gauge.finished == 5


def test_pool_starts_no_more_workers_than_its_size(reactor):
    reactor.set_thread_pool_size(2)
    gauge, gate = Gauge(), threading.Event()
    ds = [ns.defer_to_thread(gated_job(gauge, gate)) for _ in range(5)]
    try:
        assert gauge.wait_for(lambda g: g.running == 2)
        assert reactor.thread_pool.workers == 2
    finally:
        gate.set()
    threads = reactor.run_until(ns.gather(*ds), timeout=WAIT)
    assert len(set(threads)) == 2


def test_pool_reuses_an_idle_worker(reactor):
    # One worker at most: the result reaches the loop a moment before its worker is idle
    # again, and a pool of several may start a second worker in that moment (no reuse).
    reactor.set_thread_pool_size(1)
    first = reactor.run_until(ns.defer_to_thread(threading.current_thread), timeout=WAIT)
    second = reactor.run_until(ns.defer_to_thread(threading.current_thread), timeout=WAIT)
    assert first is second


def test_growing_the_pool_while_busy_runs_queued_jobs_at_once(reactor):
    reactor.set_thread_pool_size(2)
    gauge, gate = Gauge(), threading.Event()
    ds = [ns.defer_to_thread(gated_job(gauge, gate)) for _ in range(5)]
    try:
        assert gauge.wait_for(lambda g: g.running == 2)
        reactor.set_thread_pool_size(4)
        assert gauge.wait_for(lambda g: g.running == 4), f"{gauge.running} running"
    finally:
        gate.set()
    reactor.run_until(ns.gather(*ds), timeout=WAIT)
    assert gauge.peak == 4


def test_shrinking_the_pool_while_busy_lets_surplus_workers_leave(reactor):
    reactor.set_thread_pool_size(3)
    first, first_gate = Gauge(), threading.Event()
    second, second_gate = Gauge(), threading.Event()
    ds = [ns.defer_to_thread(gated_job(first, first_gate)) for _ in range(3)]
    ds += [ns.defer_to_thread(gated_job(second, second_gate)) for _ in range(3)]
    try:
        assert first.wait_for(lambda g: g.running == 3)
        reactor.set_thread_pool_size(1)
        first_gate.set()
        assert second.wait_for(lambda g: g.running == 1)
        survivor = second.threads[0]
        for t in first.threads:
            if t is not survivor:
                t.join(WAIT)
        assert [t.is_alive() for t in first.threads].count(True) == 1
        assert reactor.thread_pool.workers == 1
        assert second.running == 1
        assert reactor.thread_pool.queued == 2
    finally:
        first_gate.set()
        second_gate.set()
    reactor.run_until(ns.gather(*ds), timeout=WAIT)
    assert second.peak == 1
    assert second.finished == 3


def test_set_thread_pool_size_below_one_raises_value_error(reactor):
    with pytest.raises(ValueError):
        reactor.set_thread_pool_size(0)


def test_set_thread_pool_size_before_first_use_sizes_the_pool(reactor):
    reactor.set_thread_pool_size(3)
    assert reactor.thread_pool.max_workers == 3


# ---- ThreadPool on its own


def test_thread_pool_of_zero_workers_raises_value_error():
    with pytest.raises(ValueError):
        ThreadPool(0)


def test_thread_pool_resize_below_one_raises_value_error():
    pool = ThreadPool(2)
    with pytest.raises(ValueError):
        pool.resize(0)
    pool.stop()


def test_thread_pool_submit_hands_the_result_to_on_done():
    pool = ThreadPool(1)
    got = []
    done = threading.Event()
    pool.submit(pow, (2, 10), None, lambda ok, result: (got.append((ok, result)), done.set()))
    assert done.wait(WAIT)
    pool.stop(WAIT)
    assert got == [(True, 1024)]


def test_thread_pool_submit_hands_a_failure_to_on_done():
    pool = ThreadPool(1)
    got = []
    done = threading.Event()
    pool.submit(
        _raise_lookup, ("k",), None, lambda ok, result: (got.append((ok, result)), done.set())
    )
    assert done.wait(WAIT)
    pool.stop(WAIT)
    [(ok, failure)] = got
    assert ok is False
    assert isinstance(failure, ns.Failure)
    assert failure.check(LookupError)


def test_thread_pool_runs_jobs_in_the_order_submitted():
    pool = ThreadPool(1)
    seen = []
    for i in range(10):
        pool.submit(seen.append, (i,))
    assert pool.stop(WAIT)
    assert seen == list(range(10))


def test_thread_pool_stop_joins_its_workers():
    pool = ThreadPool(3)
    gauge, gate = Gauge(), threading.Event()
    threads = []
    for _ in range(3):
        pool.submit(gated_job(gauge, gate), (), None, lambda ok, t: threads.append(t))
    assert gauge.wait_for(lambda g: g.running == 3)
    workers = set(pool._workers)
    gate.set()
    assert pool.stop(WAIT) is True
    assert not any(t.is_alive() for t in workers)


def test_thread_pool_stop_waits_for_the_running_job():
    pool = ThreadPool(1)
    events = []
    gauge, gate = Gauge(), threading.Event()

    def job():
        gated_job(gauge, gate)()
        events.append("job done")

    pool.submit(job)
    assert gauge.wait_for(lambda g: g.running == 1)
    stopper = threading.Thread(target=lambda: events.append(("stopped", pool.stop(WAIT))))
    stopper.start()
    gate.set()
    stopper.join(WAIT)
    assert events == ["job done", ("stopped", True)]


def test_thread_pool_stop_lets_queued_jobs_finish():
    pool = ThreadPool(1)
    gauge, gate = Gauge(), threading.Event()
    seen = []
    worker = []
    pool.submit(lambda: (worker.append(threading.current_thread()), gated_job(gauge, gate)()))
    for i in range(3):
        pool.submit(seen.append, (i,))
    assert gauge.wait_for(lambda g: g.running == 1)
    assert pool.stop(timeout=0) is False  # the worker is busy: not joined yet
    gate.set()
    worker[0].join(WAIT)
    assert not worker[0].is_alive()
    assert seen == [0, 1, 2]


def test_thread_pool_stop_returns_false_when_workers_outlive_the_timeout():
    pool = ThreadPool(1)
    gauge, gate = Gauge(), threading.Event()
    pool.submit(gated_job(gauge, gate))
    assert gauge.wait_for(lambda g: g.running == 1)
    try:
        assert pool.stop(timeout=0) is False
    finally:
        gate.set()
    assert pool.stop(WAIT) is True


def test_thread_pool_submit_after_stop_raises_runtime_error():
    pool = ThreadPool(1)
    pool.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        pool.submit(print)


def test_thread_pool_repr_tells_its_size():
    pool = ThreadPool(4)
    try:
        assert "max 4" in repr(pool)
    finally:
        pool.stop()


def test_thread_pool_workers_are_daemon_threads():
    pool = ThreadPool(1)
    got = []
    pool.submit(lambda: got.append(threading.current_thread().daemon))
    pool.stop(WAIT)
    assert got == [True]


# ---- the pool ends with the reactor


async def test_stop_joins_the_reactors_worker_threads(reactor):
    reactor.set_thread_pool_size(3)
    gauge, gate = Gauge(), threading.Event()
    ds = [ns.defer_to_thread(gated_job(gauge, gate)) for _ in range(3)]
    assert gauge.wait_for(lambda g: g.running == 3)
    workers = set(reactor.thread_pool._workers)
    gate.set()
    await ns.gather(*ds)
    await reactor.stop()
    assert [t for t in workers if t.is_alive()] == []


@pytest.mark.async_timeout(10)
async def test_stop_with_a_busy_worker_warns_after_shutdown_timeout(reactor, caplog):
    reactor.shutdown_timeout = 0.05
    gauge, gate = Gauge(), threading.Event()
    ns.defer_to_thread(gated_job(gauge, gate))
    assert gauge.wait_for(lambda g: g.running == 1)
    try:
        with caplog.at_level(logging.WARNING, logger="netshell"):
            await reactor.stop()
    finally:
        gate.set()
        gauge.threads[0].join(WAIT)
    assert any("Worker threads still busy" in r.getMessage() for r in caplog.records)


def test_run_and_stop_leave_no_worker_threads():
    r = ns.Reactor()
    workers = []

    async def main():
        jobs = [r.defer_to_thread(threading.current_thread) for _ in range(3)]
        workers.extend(await ns.gather(*jobs))
        workers.extend(r.thread_pool._workers)
        r.stop()

    r.call_soon(ns.ensure_deferred, main())
    r.run(install_signal_handlers=False)
    assert workers
    for t in set(workers):
        t.join(WAIT)
    assert [t.name for t in workers if t.is_alive()] == []
    assert all(t.name.startswith("netshell-worker") for t in workers)


def test_closing_the_reactor_ends_its_worker_threads():
    r = ns.Reactor()
    workers = set(r.run_until(ns.gather(*[r.defer_to_thread(threading.current_thread)])))
    workers |= set(r.thread_pool._workers)
    r.close()
    for t in workers:
        t.join(WAIT)
    assert [t for t in workers if t.is_alive()] == []


def test_the_default_pool_runs_ten_jobs_at_once_and_no_more(reactor):
    # docs/reactor.md: "10 workers by default". Twelve jobs held at a gate: ten run, two wait.
    gauge, gate = Gauge(), threading.Event()
    ds = [ns.defer_to_thread(gated_job(gauge, gate)) for _ in range(12)]
    try:
        assert gauge.wait_for(lambda g: g.running == 10)
        assert reactor.thread_pool.max_workers == 10
        assert reactor.thread_pool.workers == 10
        assert reactor.thread_pool.queued == 2
    finally:
        gate.set()
    reactor.run_until(ns.gather(*ds), timeout=WAIT)
    assert gauge.peak == 10
    assert gauge.finished == 12


def test_thread_pool_worker_hooks_run_in_each_worker_thread():
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(what: str) -> None:
        with lock:
            events.append((what, threading.current_thread().name))

    pool = ThreadPool(
        2, "hooked", worker_init=lambda: record("init"), worker_exit=lambda: record("exit")
    )
    assert pool.start_workers(5) == 2  # no more than max_workers
    barrier = threading.Barrier(2, timeout=WAIT)
    for _ in range(2):
        pool.submit(lambda: (barrier.wait(), record("job")))
    assert pool.stop(WAIT)
    names = {"hooked-1", "hooked-2"}
    assert {n for w, n in events if w == "init"} == names
    assert {n for w, n in events if w == "exit"} == names
    for name in names:
        mine = [w for w, n in events if n == name]
        assert mine[0] == "init" and mine[-1] == "exit" and "job" in mine
    with pytest.raises(RuntimeError):
        pool.start_workers(1)


def test_thread_pool_counts_a_job_done_before_on_done_runs():
    pool = ThreadPool(1)
    seen = []
    done = threading.Event()
    pool.submit(
        pow, (2, 3), None, lambda ok, r: (seen.append((pool.busy, pool.queued)), done.set())
    )
    assert done.wait(WAIT)
    assert pool.stop(WAIT)
    assert seen == [(0, 0)]


def test_thread_pool_logs_a_failing_hook_and_goes_on(caplog: pytest.LogCaptureFixture):
    def boom() -> None:
        raise LookupError("init")

    pool = ThreadPool(1, worker_init=boom)
    done = threading.Event()
    with caplog.at_level(logging.ERROR, logger="netshell.threads"):
        pool.submit(done.set)
        assert done.wait(WAIT)
        assert pool.stop(WAIT)
    assert any("worker_init" in r.getMessage() for r in caplog.records)
