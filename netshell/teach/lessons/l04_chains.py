"""Lesson 4: chains that wait on chains (a callback that returns a Deferred)."""

from __future__ import annotations

from netshell.defer import Deferred
from netshell.teach.lessons.base import Lesson, NotYet, State, Step


def _waited(state: State) -> set[int]:
    return {r.number for r in state.watch.ran if isinstance(r.result, Deferred)}


def _waiting(state: State) -> str:
    for d in state.deferreds():
        inner = d.waiting_on
        if inner is not None and not inner.called:
            return f"Deferred #{d.number} waits on #{inner.number}"
    raise NotYet("no Deferred of yours waits on another")


def _went_on(state: State) -> str:
    waited = _waited(state)
    for s in reversed(state.settled()):
        if s.result == 42 and s.number in waited:
            return f"Deferred #{s.number} waited, went on with the inner result, and ended at 42"
    raise NotYet("no Deferred that waited on another has ended at 42 in this step")


async def _slow(state: State) -> str:
    def done() -> str:
        waited = _waited(state)
        for s in reversed(state.settled()):
            if s.result == 42 and s.number in waited and state.timed_runs():
                return (f"Deferred #{s.number} waited on a sleep the loop fired, then "
                        "ended at 42")
        raise NotYet("no chain has waited on the loop and ended at 42 in this step")

    pending = [d for d in state.deferreds() if d.waiting_on is not None]
    return await state.eventually(done, within=5.0 if pending else 0.5)


LESSON = Lesson(
    4,
    "Chains that wait on chains",
    "When a callback returns a Deferred, the chain waits for that one to fire, then goes\n"
    "on with its result. This is how one asynchronous step follows another.",
    [
        Step(
            "make a chain wait on another Deferred:\n"
            "    inner = Deferred()\n"
            "    outer = succeed(1).add_callback(lambda _: inner)\n"
            "outer shows 'waiting on #N'.",
            _waiting,
            "a callback that returns an unfired Deferred makes the chain wait on it",
            ["inner = Deferred()", "outer = succeed(1).add_callback(lambda _: inner)"],
        ),
        Step(
            "add a step after the wait, then fire the inner one:\n"
            "    outer.add_callback(lambda n: n * 2)\n"
            "    inner.callback(21)\n"
            "outer goes on with 21 and ends at 42.",
            _went_on,
            "outer.add_callback(lambda n: n * 2), then inner.callback(21)",
            ["outer.add_callback(lambda n: n * 2)", "inner.callback(21)"],
        ),
        Step(
            "wait on the loop: sleep(1) is a Deferred that fires a second later:\n"
            "    slow = succeed(21).add_callback("
            "lambda n: sleep(1).add_callback(lambda _: n * 2))\n"
            "    await slow",
            _slow,
            "a callback that returns sleep(1).add_callback(...) makes the chain wait a second",
            ["slow = succeed(21).add_callback(lambda n: sleep(1).add_callback(lambda _: n * 2))",
             "await slow"],
        ),
    ],
    "explain(d) tells a chain's story step by step, waits included.",
)

__all__ = ["LESSON"]
