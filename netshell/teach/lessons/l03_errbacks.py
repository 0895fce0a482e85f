"""Lesson 3: errbacks, Failures and recovery."""

from __future__ import annotations

from netshell.failure import Failure
from netshell.shell.display import short_repr
from netshell.teach.lessons.base import Lesson, NotYet, State, Step, failure_of


def _failed(state: State) -> str:
    for s in reversed(state.settled()):
        if failure_of(s.result, ValueError) and s.steps_ran:
            return (f"a callback raised, and Deferred #{s.number} holds a Failure: "
                    f"{s.result.type.__name__}: {s.result.value}")
    raise NotYet("no chain failed with a ValueError raised by one of its callbacks in this "
                 "step")


def _recovered(state: State) -> str:
    for r in reversed(state.ran()):
        if failure_of(r.got, ValueError):
            if isinstance(r.result, Failure):
                raise NotYet(f"{r.name} got the Failure but the chain still fails: return a "
                             "value from the errback")
            return (f"{r.name} got the ValueError and returned {short_repr(r.result)}: Deferred "
                    f"#{r.number} is back on the callback path")
    raise NotYet("no errback has handled a ValueError in this step")


def _passed_on(state: State) -> str:
    ran = state.ran()
    through = [r for r in ran if failure_of(r.got, KeyError) and failure_of(r.result, KeyError)]
    handled = [r for r in ran if failure_of(r.got, KeyError)
               and not isinstance(r.result, Failure)]
    if through and handled:
        return (f"{through[0].name} let the KeyError through (trap re-raised it), and "
                f"{handled[-1].name} handled it")
    if through:
        raise NotYet(f"{through[0].name} let the KeyError through, as trap should; now add an "
                     "errback that handles it")
    raise NotYet("no errback has let a KeyError through in this step")


def _forty_two(state: State) -> str:
    recovered = {r.number for r in state.ran()
                 if isinstance(r.got, Failure) and not isinstance(r.result, Failure)}
    for s in reversed(state.settled()):
        if s.result == 42 and s.number in recovered:
            return f"Deferred #{s.number} failed, recovered and ended at 42"
    raise NotYet("no chain in this step failed, recovered and ended at 42")


LESSON = Lesson(
    3,
    "Errbacks and recovery",
    "When a callback raises, the chain switches to its errbacks; each gets a Failure\n"
    "(the exception and its traceback). An errback that returns a value puts the chain\n"
    "back on its callbacks.",
    [
        Step(
            "make a chain whose callback raises:\n"
            "    d = Deferred()\n"
            "    d.add_callback(int)\n"
            '    d.callback("forty-two")\n'
            'int("forty-two") raises ValueError: d holds a Failure now.',
            _failed,
            'd.add_callback(int), then d.callback("forty-two") on a fresh d',
            ["d = Deferred()", "d.add_callback(int)", 'd.callback("forty-two")'],
        ),
        Step(
            "recover: an errback that traps ValueError and returns a value:\n"
            "    def recover(failure):\n"
            "        failure.trap(ValueError)\n"
            "        return 0\n"
            "    d.add_errback(recover)",
            _recovered,
            "define recover(failure) that calls failure.trap(ValueError) and returns 0, then "
            "d.add_errback(recover)",
            ["def recover(failure):\n    failure.trap(ValueError)\n    return 0\n",
             "d.add_errback(recover)"],
        ),
        Step(
            "trap() re-raises what it does not name. A KeyError goes through recover:\n"
            '    e = fail(KeyError("user"))\n'
            "    e.add_errback(recover)\n"
            '    e.add_errback(lambda f: print("handled", f.value))',
            _passed_on,
            "fail(KeyError(...)) is a Deferred failed already; add recover, then an errback "
            "that returns None",
            ['e = fail(KeyError("user"))', "e.add_errback(recover)",
             'e.add_errback(lambda f: print("handled", f.value))'],
        ),
        Step(
            "all of it in one chain: fail, recover, go on to 42:\n"
            "    d2 = Deferred()\n"
            "    d2.add_callback(int).add_errback(recover).add_callback(lambda n: n + 42)\n"
            '    d2.callback("oops")',
            _forty_two,
            "add_callback returns the Deferred, so steps chain: int, recover, then + 42",
            ["d2 = Deferred()",
             "d2.add_callback(int).add_errback(recover).add_callback(lambda n: n + 42)",
             'd2.callback("oops")'],
        ),
    ],
    "A Failure nobody handles is logged when its Deferred is collected: errors are never "
    "silent.",
)

__all__ = ["LESSON"]
