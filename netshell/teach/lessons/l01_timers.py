"""Lesson 1: timed calls and the loop (``reactor.call_later``, ``DelayedCall``)."""

from __future__ import annotations

from netshell.reactor import DelayedCall
from netshell.teach.lessons.base import Lesson, NotYet, State, Step


def _waiting(state: State) -> str:
    now = state.reactor.seconds()
    pending = set(state.reactor.delayed_calls)
    held = [c for c in state.values(DelayedCall) if c in pending]
    if not held:
        if pending:
            raise NotYet(f"{len(pending)} timed call(s) wait in reactor.delayed_calls, but no "
                         "name of yours holds one: keep it (dc = ...) to act on it later")
        raise NotYet("no timed call waits in reactor.delayed_calls")
    call = max(held, key=lambda c: c.time)
    if call.time - now < 10:
        raise NotYet(f"your timed call is due in {call.time - now:.1f} s: it will run before "
                     "you get to the next step; give it 30 s or more")
    state.memo["call"] = call
    return f"{call!r} waits in reactor.delayed_calls"


def _cancelled(state: State) -> str:
    calls = [state.memo["call"]] if "call" in state.memo else state.values(DelayedCall)
    for call in calls:
        if call.cancelled:
            left = len(state.reactor.delayed_calls)
            return (f"cancelled: it left reactor.delayed_calls ({left} still waiting) and "
                    "will never run")
    waiting = [c for c in calls if c.active()]
    if waiting:
        raise NotYet(f"{waiting[0]!r} still waits")
    raise NotYet("no timed call of yours was cancelled")


async def _ran(state: State) -> str:
    def ran() -> str:
        runs = state.timed_runs(mine=True)
        if runs:
            return (f"the timed call {runs[-1]} ran on the loop while the prompt waited for "
                    "you")
        others = state.timed_runs()
        if others:
            raise NotYet(f"only the library's own timed calls ran in this step ({others[-1]}); "
                         "none of yours has yet")
        raise NotYet("no timed call of yours has run in this step yet")

    now = state.reactor.seconds()
    soon = [c.time - now for c in state.values(DelayedCall) if c.active() and c.time - now < 10]
    return await state.eventually(ran, within=max(soon, default=0) + 1)


LESSON = Lesson(
    1,
    "Timed calls and the loop",
    "The reactor runs one loop. Everything happens on it: connections, Deferreds firing,\n"
    "and timed calls, which run a function after a delay. The loop keeps turning while\n"
    "the prompt waits for you.",
    [
        Step(
            "schedule a call that waits a minute, and keep it:\n"
            '    dc = reactor.call_later(60, print, "a minute later")\n'
            "It returns a DelayedCall at once; reactor.delayed_calls lists those waiting.",
            _waiting,
            "reactor.call_later(seconds, function, *args) schedules function(*args); "
            "keep what it returns in a name (dc = ...)",
            ['dc = reactor.call_later(60, print, "a minute later")'],
        ),
        Step(
            "changed your mind? Cancel it before it runs:\n"
            "    dc.cancel()",
            _cancelled,
            "a DelayedCall has cancel(), reset(seconds) and active(); dc.cancel() cancels",
            ["dc.cancel()"],
        ),
        Step(
            "now one that runs soon. The prompt comes back at once, and a second later the\n"
            "call prints above it: the loop ran it while it waited for you.\n"
            '    dc2 = reactor.call_later(1, print, "tick")',
            _ran,
            'reactor.call_later(1, print, "tick") runs print a second from now',
            ['dc2 = reactor.call_later(1, print, "tick")'],
        ),
    ],
    "call_later is the loop's clock: timeouts, retries and polling are built on it.",
)

__all__ = ["LESSON"]
