"""Lesson 5: blocking the loop, and ``defer_to_thread`` instead."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any

from netshell.defer import Deferred
from netshell.reactor import get_reactor
from netshell.teach.lessons.base import Lesson, NotYet, State, Step


def _blocked(state: State) -> str:
    pause = state.longest_pause()
    if pause >= 1.0:
        return (f"the loop stood still for {pause:.1f} s: no timer, connection or Deferred "
                "moved meanwhile")
    raise NotYet(f"the loop paused {pause:.2f} s at most in this step; block it for a second "
                 "or more")


def _not_blocked(state: State) -> None:
    pause = state.longest_pause()
    if pause >= 0.5:
        raise NotYet(f"the loop stood still for {pause:.1f} s: the slow work ran on the "
                     "loop's thread, not in a worker")


class _Job:
    """One defer_to_thread call of this step: its Deferred, and where and with what its
    function returned (set in the worker)."""

    def __init__(self, d: Any) -> None:
        self.deferred = d
        self.thread: int | None = None  # the thread the function ran in
        self.thread_name = ""
        self.ok = False
        self.result: Any = None


def _record_threads(memo: dict[str, Any]) -> Callable[[], None]:
    """While the step lasts, each defer_to_thread records (in ``memo["jobs"]``) its Deferred
    and the thread its function ran in: a 42 counts only from work that ran in a worker."""
    reactor = get_reactor()
    original = reactor.defer_to_thread
    loop_thread = threading.get_ident()
    jobs: list[_Job] = memo.setdefault("jobs", [])
    memo["loop_thread"] = loop_thread

    def defer_to_thread(f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        here: list[_Job] = []

        def job(*a: Any, **k: Any) -> Any:
            result = f(*a, **k)
            if here:
                here[0].thread = threading.get_ident()
                here[0].thread_name = threading.current_thread().name
                here[0].ok, here[0].result = True, result
            return result

        try:
            functools.update_wrapper(job, f)  # traces and logs name the person's function
        except (AttributeError, TypeError):
            pass
        d = original(job, *args, **kw)
        here.append(_Job(d))
        jobs.append(here[0])
        return d

    reactor.defer_to_thread = defer_to_thread  # type: ignore[method-assign]

    def undo() -> None:
        if reactor.__dict__.get("defer_to_thread") is defer_to_thread:
            del reactor.defer_to_thread

    return undo


async def _threaded(state: State) -> str:
    jobs: list[_Job] = state.memo.get("jobs", [])
    loop_thread = state.memo.get("loop_thread")

    def fired() -> str:
        for job in reversed(jobs):
            d = job.deferred
            if (job.ok and job.result == 42 and job.thread not in (None, loop_thread)
                    and d.called):
                return f"Deferred #{d.number} fired with 42 from a worker thread"
        made = [d for d in state.deferreds() if d.number >= state.first_deferred]
        if any(d.called and d.result == 42 for d in made):
            raise NotYet("a Deferred fired with 42, but not from defer_to_thread: no worker "
                         "thread made that 42")
        if any(j.ok and j.deferred.called for j in jobs):
            got = [j.result for j in jobs if j.ok and j.deferred.called]
            raise NotYet(f"defer_to_thread's work gave {got[-1]!r} in a worker, not 42")
        raise NotYet("no defer_to_thread has given 42 from a worker thread in this step yet")

    def pending() -> bool:
        return (any(not j.deferred.called for j in jobs)
                or any(d.number >= state.first_deferred and not d.called
                       for d in state.deferreds()))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15.0
    while True:
        try:
            line = fired()
            break
        except NotYet:
            if not pending() or loop.time() >= deadline:
                _not_blocked(state)  # the better reason, when the loop stood still
                raise
        await asyncio.sleep(0.02)  # asyncio's, not a timed call of the reactor
    _not_blocked(state)
    pause = state.longest_pause()
    return f"{line}; the loop never paused more than {pause:.2f} s meanwhile"


LESSON = Lesson(
    5,
    "Blocking vs defer_to_thread",
    "Code at the prompt runs on the loop's thread. While it runs, nothing else does:\n"
    "servers stop answering, timers wait. Slow blocking work belongs in a thread.",
    [
        Step(
            "block the loop for two seconds:\n"
            "    import time\n"
            "    time.sleep(2)",
            _blocked,
            "time.sleep(2) at the prompt blocks the loop (await sleep(2) would not)",
            ["import time", "time.sleep(2)"],
            watch_loop=True,
        ),
        Step(
            "run the slow work in a thread: defer_to_thread gives a Deferred, and the loop\n"
            "keeps turning while the thread sleeps:\n"
            "    def slow(n):\n"
            "        time.sleep(1)\n"
            "        return n * 2\n"
            "    d = defer_to_thread(slow, 21)",
            _threaded,
            "defer_to_thread(slow, 21) calls slow(21) in a worker thread and fires with its "
            "result",
            ["def slow(n):\n    time.sleep(1)\n    return n * 2\n",
             "d = defer_to_thread(slow, 21)"],
            watch_loop=True,
            begin=_record_threads,
        ),
    ],
    "reactor.call_from_thread(f) is the way back: a thread asks the loop to run f.",
)

__all__ = ["LESSON"]
