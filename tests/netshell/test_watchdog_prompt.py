"""The watchdog at the real netsh prompt, in tmux: it names the callback that blocked the
reactor, above the prompt, and says nothing while the loop only waits or an input runs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from terminal import Terminal, netsh_argv, rows

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = r"\d\d:\d\d:\d\d WARNING netshell\.watchdog: the reactor was blocked for (\S+) s in (.*)"


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Terminal]:
    # This checkout's netshell, whichever one is installed.
    t = Terminal(netsh_argv(), env={"XDG_STATE_HOME": str(tmp_path / "state"),
                                    "PYTHONPATH": str(ROOT)}, cwd=str(tmp_path))
    yield t
    t.close()


def row_of(screen: str, pattern: str) -> int:
    found = [i for i, line in enumerate(rows(screen)) if re.match(pattern, line)]
    assert len(found) == 1, (pattern, screen)
    return found[0]


def reports(screen: str) -> list[tuple[int, str, str]]:
    """(row, seconds, where) of each watchdog report on the screen."""
    return [(i, m[1], m[2]) for i, line in enumerate(rows(screen))
            if (m := re.fullmatch(BLOCKED, line))]


def test_the_watchdog_names_the_blocking_line_and_is_silent_while_the_loop_waits(term):
    t = term
    t.wait_prompt(1)
    t.line("import time, netshell")
    t.wait_prompt(2)
    # The check that this checkout runs: the package's path is printed.
    t.line("netshell.__file__")
    t.wait_for(re.escape(str(ROOT / "netshell" / "__init__.py")))
    t.wait_prompt(3)
    t.line("await sleep(1)")  # the loop waits a second: not blocked
    t.wait_prompt(4)
    t.line("time.sleep(0.6)")  # the input's own work: the person sees it run
    t.wait_prompt(5)
    t.line("def on_data(data):")
    t.line("time.sleep(1)")  # the prompt indents it
    t.key("Enter")
    t.wait_prompt(6)
    # A callback that blocks while the input awaits: the input ends after it.
    t.line('reactor.call_soon(on_data, b"hi"); await sleep(0.1)')
    screen = t.wait_for(lambda s: len(reports(s)) == 1 and re.search(r"^\[7\]>", s, re.M))
    (row, seconds, where), = reports(screen)
    assert where == "on_data (<netsh-5>, line 2): time.sleep(1)"
    assert 0.9 <= float(seconds) <= 1.3
    assert rows(screen)[row + 1] == (
        "  nothing else ran meanwhile: run blocking work with defer_to_thread(f, *args)")
    assert row_of(screen, r"\[6\]> ") < row < row_of(screen, r"\[7\]>")

    t.line("watchdog(False)")
    t.wait_for(r"^watchdog off: a blocked reactor goes unreported; watchdog\(True\) turns it on")
    t.wait_prompt(8)
    t.line('reactor.call_soon(on_data, b"hi"); await sleep(0.1)')  # off: nothing said
    t.wait_prompt(9)
    t.line("watchdog(threshold=0.5)")
    t.wait_for(r"^watchdog on: a callback that holds the reactor 0\.5 s or more is reported")
    t.wait_prompt(10)
    t.line('reactor.call_soon(on_data, b"hi"); await sleep(0.1)')
    screen = t.wait_for(lambda s: len(reports(s)) == 2 and re.search(r"^\[11\]>", s, re.M))
    said = reports(screen)
    assert [where for _, _, where in said] == ["on_data (<netsh-5>, line 2): time.sleep(1)"] * 2
    assert row_of(screen, r"\[10\]> ") < said[1][0] < row_of(screen, r"\[11\]>")


LASTING = (r"\d\d:\d\d:\d\d WARNING netshell\.watchdog: the reactor has been blocked for "
           r"2\.\d s so far in <lambda> \(<netsh-2>, line 1\): ")


def test_a_block_that_lasts_is_shown_above_the_prompt_while_the_loop_is_held(term, tmp_path):
    t = term
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    t.wait_prompt(1)
    t.line("import time")
    t.wait_prompt(2)
    # The callback holds the loop until the test writes to the pipe: after it saw the line.
    t.line('dc = reactor.call_later(0.1, lambda: open("go").read())')
    t.wait_prompt(3)
    screen = t.wait_for(lambda s: any(re.match(LASTING, line) for line in rows(s)))
    assert reports(screen) == []  # not over yet
    with open(fifo, "w") as pipe:  # the loop goes on
        pipe.write("go")
    screen = t.wait_for(lambda s: len(reports(s)) == 1 and re.search(r"^\[3\]>", s, re.M))
    (row, seconds, where), = reports(screen)
    assert where.startswith("<lambda> (<netsh-2>, line 1): ")
    assert float(seconds) >= 2.0
    lasting = [i for i, line in enumerate(rows(screen)) if re.match(LASTING, line)]
    assert lasting == [row - 2]  # the line while it lasted, its hint, then the total
    assert row < row_of(screen, r"\[3\]>")


def test_the_prompt_process_has_another_thread_besides_the_watchdogs(term):
    # Why the watchdog's own thread costs nothing measurable while the prompt is shown
    # (docs/watchdog.md): the process has another one then (prompt_toolkit's output),
    # whose cost (a file table shared between threads) it pays with or without the
    # watchdog. A callback run while the prompt waits for typing counts them.
    t = term
    t.wait_prompt(1)
    t.line("import threading; watchdog(False)")
    t.wait_prompt(2)
    t.line('reactor.call_later(0.3, lambda: print("others:", threading.active_count() - 1))')
    screen = t.wait_for(r"^others: \d+$")
    found = [line for line in rows(screen) if line.startswith("others: ")]
    assert int(found[0].split()[1]) >= 1, screen
