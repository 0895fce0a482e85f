"""Lesson 2: Deferreds and their callbacks."""

from __future__ import annotations

from netshell.shell.display import short_repr
from netshell.teach.lessons.base import Lesson, NotYet, State, Step


def _made(state: State) -> str:
    new = [d for d in state.deferreds() if d.number >= state.first_deferred]
    pending = [d for d in new if not d.called]
    if pending:
        state.memo["d"] = pending[0]
        return f"Deferred #{pending[0].number} is pending: no result yet"
    if new:
        raise NotYet(f"Deferred #{new[0].number} has fired already; keep one that has not")
    raise NotYet("no name of yours holds a Deferred made in this step")


def _doubled(state: State) -> str:
    settled = state.settled()
    for s in reversed(settled):
        if s.result == 42 and s.steps_ran:
            return f"Deferred #{s.number} fired with 21; its callback made it {s.result!r}"
    newest = max((s.number for s in settled), default=-1)
    waiting = [d for d in state.deferreds() if not d.called and d.number > newest]
    if waiting:
        raise NotYet(f"Deferred #{waiting[0].number} has not fired yet")
    if any(s.result == 42 for s in settled):
        raise NotYet("a Deferred fired with 42 itself: no callback ran. Fire 21, and let a "
                     "callback double it")
    if settled:
        s = settled[-1]
        raise NotYet(f"Deferred #{s.number} ended with {short_repr(s.result)}, not 42")
    raise NotYet("no Deferred has fired in this step yet")


def _after(state: State) -> str:
    for r in reversed(state.ran()):
        if r.got == 42 and r.result == "42":
            return (f"{r.name} ran at once, as it was added: Deferred #{r.number} "
                    "holds '42' now")
    raise NotYet("no callback has turned 42 into '42' in this step")


async def _loop_fired(state: State) -> str:
    def fired() -> str:
        timed = [name for name in state.timed_runs() if name.endswith("callback")]
        ok = [s for s in state.settled() if s.result == 42]
        if timed and ok:
            return f"the loop fired Deferred #{ok[-1].number} with 42 ({timed[-1]})"
        if ok:
            raise NotYet(f"Deferred #{ok[-1].number} has 42, but no timed call fired it")
        raise NotYet("no Deferred fired with 42 from a timed call in this step yet")

    pending = [d for d in state.deferreds() if not d.called]
    return await state.eventually(fired, within=5.0 if pending else 0.5)


LESSON = Lesson(
    2,
    "Deferreds: callbacks",
    "A Deferred stands for a result that is not there yet. You chain callbacks on it;\n"
    "when it fires, the result goes through them in order, each getting what the one\n"
    "before returned.",
    [
        Step(
            "make a Deferred and keep it:\n"
            "    d = Deferred()\n"
            "The prompt shows it pending.",
            _made,
            "Deferred() makes one; bind it to a name: d = Deferred()",
            ["d = Deferred()"],
        ),
        Step(
            "chain a callback that doubles, then fire the Deferred with 21:\n"
            "    d.add_callback(lambda n: n * 2)\n"
            "    d.callback(21)\n"
            "The value goes through the chain: d.result is 42.",
            _doubled,
            "add the callback first (d.add_callback(lambda n: n * 2)), then d.callback(21); "
            "a Deferred fires once, so make a new one if it fired already",
            ["d.add_callback(lambda n: n * 2)", "d.callback(21)"],
        ),
        Step(
            "a callback added after the Deferred fired runs at once, with the result so far:\n"
            "    d.add_callback(str)",
            _after,
            "d.add_callback(str) on the Deferred that holds 42",
            ["d.add_callback(str)"],
        ),
        Step(
            "let the loop fire one, and wait for it (top-level await works at the prompt):\n"
            "    later = Deferred()\n"
            "    dc = reactor.call_later(1, later.callback, 42)\n"
            "    answer = await later",
            _loop_fired,
            "reactor.call_later(1, later.callback, 42) has the loop fire it in a second",
            ["later = Deferred()", "dc = reactor.call_later(1, later.callback, 42)",
             "answer = await later"],
        ),
    ],
    "Every network operation in netshell gives a Deferred: connect, http.get, ftp.connect...",
)

__all__ = ["LESSON"]
