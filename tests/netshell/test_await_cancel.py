"""Ctrl-C during ``await d`` at the prompt, and a Deferred awaited there: ``d`` stays the
person's.

An await leaves the result in the Deferred's chain (as an asyncio future keeps its
result): after ``await d`` the prompt still shows ``d`` fired with its value; Ctrl-C
cancels the input's task, which cancels ``d``, and ``d`` then says ``cancelled``;
``explain(d)`` shows the person's steps and none of the await's own. The same at
``netsh`` and at ``netsh --ipython`` (whose autoawait awaits through the same
``Deferred.__await__``). The core's side is in test_defer_asyncio.py; here the
prompt's notes and explain(), then the real shells in a terminal (tmux).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from terminal import Terminal, netsh_argv, when_go

import netshell as ns
from netshell.defer import Deferred
from netshell.shell import chains

# ---- the prompt's notes and explain(), in process


@pytest.fixture
def notes() -> Iterator[tuple[chains.Notes, list[str]]]:
    chains.record()
    shown: list[str] = []
    n = chains.Notes(shown.append)
    try:
        yield n, shown
    finally:
        n.close()
        chains.stop_recording()


async def await_it(d: Deferred[Any]) -> Any:
    return await d


def step_lines(d: Deferred[Any]) -> list[str]:
    return [line.strip() for line in chains.explain(d).splitlines()[1:]]


async def test_ctrl_c_on_an_await_notes_the_deferred_cancelled_and_explain_shows_no_await(
    reactor: ns.Reactor, notes: tuple[chains.Notes, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    n, shown = notes
    d: Deferred[Any] = Deferred()
    d.add_callback(str)
    n.watch(d)  # shown at the prompt while pending
    task = asyncio.get_running_loop().create_task(await_it(d))
    await asyncio.sleep(0)
    task.cancel()  # what Ctrl-C does to the input's task
    await asyncio.sleep(0)
    assert shown == [f"Deferred #{d.number} cancelled"]
    assert chains.explain(d).splitlines()[0] == f"Deferred #{d.number} cancelled"
    assert step_lines(d) == ["1. callback str  passed by (the result was a Failure)"]
    number = d.number
    del d, task
    with caplog.at_level(logging.ERROR, logger="netshell.defer"):
        gc.collect()
    assert f"#{number} " not in caplog.text  # noted, and asked for: not "unhandled"


async def test_an_awaited_deferred_is_noted_once_with_its_value_which_it_keeps(
    reactor: ns.Reactor, notes: tuple[chains.Notes, list[str]],
) -> None:
    n, shown = notes
    d: Deferred[int] = Deferred()
    d.add_callback(lambda x: x * 2)
    n.watch(d)
    reactor.call_soon(d.callback, 21)
    assert await d == 42
    assert await d == 42  # and again
    assert shown == [f"Deferred #{d.number} fired: 42"]
    assert chains.explain(d).splitlines()[0] == f"Deferred #{d.number} fired: 42"
    [step] = step_lines(d)  # the person's step; none of the awaits'
    assert step.startswith("1. callback ") and step.endswith("got 21, returned 42"), step


def test_a_failure_note_says_failed_and_a_cancelled_one_says_cancelled() -> None:
    assert chains.format_note(3, ns.Failure(ValueError("no"))) == (
        "Deferred #3 failed: ValueError('no')")
    assert chains.format_note(4, ns.Failure(ns.CancelledError())) == "Deferred #4 cancelled"


# ---- the real shells


@pytest.fixture
def terminal(tmp_path: Any) -> Iterator[Any]:
    terms: list[Terminal] = []

    def start(*args: str) -> Terminal:
        t = Terminal(netsh_argv(*args), env={"XDG_STATE_HOME": str(tmp_path / "state"),
                                             "IPYTHONDIR": str(tmp_path / "ipython")},
                     cwd=str(tmp_path))
        terms.append(t)
        return t

    yield start
    for t in terms:
        t.close()


class Netsh:
    """Inputs at the netsh prompt, numbered ``[n]>``."""

    def __init__(self, t: Terminal) -> None:
        self.t = t
        self.n = 1
        t.wait_prompt(1)

    def start(self, code: str) -> None:
        """Type ``code`` and Enter, not waiting for it to finish."""
        self.t.line(code)
        self.n += 1

    def run(self, code: str) -> str:
        """Type ``code``, Enter; the screen below it once the next prompt shows."""
        self.start(code)
        return self.output()

    def output(self) -> str:
        screen = self.t.wait_prompt(self.n)
        typed_and_out = screen.split(f"[{self.n - 1}]> ", 1)[1].split(f"\n[{self.n}]>")[0]
        return typed_and_out.partition("\n")[2]


class IPythonCells:
    """Cells at netsh --ipython, numbered ``In [n]:``."""

    def __init__(self, t: Terminal) -> None:
        self.t = t
        self.n = 1
        t.wait_for(r"^In \[1\]:")

    def start(self, code: str) -> None:
        self.t.line(code)
        self.n += 1

    def run(self, code: str) -> str:
        self.start(code)
        return self.output()

    def output(self) -> str:
        screen = self.t.wait_for(rf"^In \[{self.n}\]:")
        typed_and_out = screen.split(f"In [{self.n - 1}]: ", 1)[1].split(f"\nIn [{self.n}]:")[0]
        return typed_and_out.partition("\n")[2]


SHELLS = {
    "netsh": ((), Netsh),
    "ipython": (("--ipython",), IPythonCells),
}


@pytest.mark.parametrize("shell", list(SHELLS))
def test_ctrl_c_during_await_d_leaves_d_cancelled_and_explain_without_the_await(
    terminal: Any, shell: str,
) -> None:
    args, kind = SHELLS[shell]
    p = kind(terminal(*args))
    p.run("d = Deferred(); _ = d.add_callback(str)")
    # "waiting" shows once the input runs: it prints, then awaits, in one step.
    p.start('print("wai" + "ting"); await d')
    p.t.wait_for(r"^waiting$")
    p.t.key("C-c")
    out = p.output()
    assert "Cancelled" in out, out
    assert "Traceback" not in out, out
    shown = p.run("d")
    number = re.search(r"<Deferred #(\d+) (\w+)", shown)
    assert number is not None and number.group(2) == "cancelled", shown
    explained = p.run("print(explain(d))")
    lines = [line.strip() for line in explained.splitlines() if line.strip()]
    assert lines[:2] == [f"Deferred #{number.group(1)} cancelled",
                         "1. callback str  passed by (the result was a Failure)"], explained
    assert not any(re.match(r"\d+\. ", line) for line in lines[2:]), explained


@pytest.mark.parametrize("shell", list(SHELLS))
def test_a_deferred_awaited_at_the_prompt_still_shows_its_value_and_its_failure(
    terminal: Any, shell: str, tmp_path: Any,
) -> None:
    args, kind = SHELLS[shell]
    p = kind(terminal(*args))
    # d2 fires with 6 * 7 once the file "go" exists, while the await waits for it.
    p.run("d2 = Deferred()")
    p.run(when_go("d2.callback(6 * 7)"))
    p.start('print("wai" + "ting"); await d2')
    p.t.wait_for(r"^waiting$")
    (tmp_path / "go").touch()
    assert re.search(r"(^|\s)42$", p.output().strip()), "the await gives the value"
    shown = p.run("d2")
    assert re.search(r"<Deferred #\d+ fired: 42>", shown), shown
    # A failure stays too: the await raises it, and d3 still holds it.
    p.run("d3 = Deferred()")
    p.run(when_go('d3.errback(ValueError("re" + "fused"))').replace("go", "go3"))
    p.start('print("wai" + "ting 3"); await d3')
    p.t.wait_for(r"^waiting 3$")
    (tmp_path / "go3").touch()
    raised = p.output()
    assert re.search(r"ValueError: refused", raised), raised
    shown = p.run("d3")
    assert re.search(r"<Deferred #\d+ failed: ValueError\('refused'\)>", shown), shown
