"""Lesson 5: blocking the loop, and ``defer_to_thread`` instead."""

from __future__ import annotations

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


async def _threaded(state: State) -> str:
    def fired() -> str:
        for s in reversed(state.settled()):
            if s.result == 42:
                return f"Deferred #{s.number} fired with 42"
        for d in state.deferreds():  # succeed(...) is fired as it is made: no chain ran
            if d.number >= state.first_deferred and d.called and d.result == 42:
                return f"Deferred #{d.number} fired with 42"
        raise NotYet("no Deferred fired with 42 in this step yet")

    pending = [d for d in state.deferreds()
               if d.number >= state.first_deferred and not d.called]
    try:
        line = await state.eventually(fired, within=15.0 if pending else 0.5)
    except NotYet:
        _not_blocked(state)  # the better reason, when the loop stood still
        raise
    _not_blocked(state)
    pause = state.longest_pause()
    if not state.reactor.thread_pool.workers:
        raise NotYet("the result is 42, but no worker thread ran anything")
    return (f"{line} from a worker thread; the loop never paused more than {pause:.2f} s "
            "meanwhile")


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
        ),
    ],
    "reactor.call_from_thread(f) is the way back: a thread asks the loop to run f.",
)

__all__ = ["LESSON"]
