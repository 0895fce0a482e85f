"""Late failures at the real ``netsh`` prompt (tmux): reported above the prompt within the
second, naming the input and the chain's steps; a chain rescued in time gets no report."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from terminal import Above, Terminal, netsh_argv, rows

ROOT = Path(__file__).resolve().parents[2]  # this checkout: its netshell runs in netsh


@pytest.fixture
def netsh(tmp_path: Path) -> Iterator[Terminal]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    t = Terminal(netsh_argv(), env={"XDG_STATE_HOME": str(tmp_path / "state"),
                                    "PYTHONPATH": path}, cwd=str(tmp_path))
    yield t
    t.close()


def test_an_unhandled_failure_is_reported_above_the_prompt_within_the_second(
        netsh: Terminal) -> None:
    netsh.wait_prompt(1)
    netsh.line("import netshell; netshell.__file__")
    assert str(ROOT / "netshell") in netsh.wait_prompt(2)  # this checkout's code runs
    netsh.line("d = sleep(0.1).add_callback(lambda _: 1/0)")
    netsh.wait_prompt(3)
    done = time.monotonic()
    head = (r"Unhandled error in Deferred #\d+ \(input \[2\]\): "
            r"ZeroDivisionError: division by zero")
    # The chain fails 0.1s after the input, and is reported 0.5s (the grace) after that:
    # nothing collects d (the namespace holds it), nobody types.
    screen = netsh.wait_for(Above(head, r"\[3\]>"), timeout=1.0)
    assert time.monotonic() - done < 1.0
    lines = rows(screen)
    at = max(i for i, line in enumerate(lines) if re.fullmatch(head, line))
    assert lines[at + 1] == ("  1. callback <lambda> (line 1 of <netsh-2>)  got None, "
                             "raised ZeroDivisionError('division by zero')")
    assert sum(1 for line in lines if re.fullmatch(head, line)) == 1
    netsh.line("tb()")  # the report's error is the one tb() shows
    assert "1/0" in netsh.wait_prompt(4).split("[3]> tb()")[-1]


def test_a_chain_rescued_in_time_by_the_next_input_gets_no_report(netsh: Terminal) -> None:
    netsh.wait_prompt(1)
    netsh.line("late_failures(grace=2)")
    netsh.wait_prompt(2)
    netsh.line("d = fail(ValueError('rescued in time'))")
    netsh.wait_prompt(3)
    netsh.line("d.add_errback(lambda f: 'rescued')")  # well within the 2 seconds
    netsh.wait_for(r"^<Deferred #\d+ fired: 'rescued'>$")
    netsh.wait_prompt(4)
    netsh.line("e = fail(KeyError('not rescued'))")
    # e's grace started after d's: once e is reported, d's grace is over too.
    screen = netsh.wait_for(r"^Unhandled error in Deferred #\d+ \(input \[4\]\): "
                            r"KeyError: 'not rescued'$", timeout=5)
    assert "rescued in time" not in screen.split("[3]> d.add_errback")[-1]
    assert "ValueError" not in screen.split("[3]> d.add_errback")[-1]
