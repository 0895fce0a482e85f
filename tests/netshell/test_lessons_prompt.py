"""The lessons at the real ``netsh`` prompt, in a terminal (tmux): typed as a person types.

Each lesson is done by typing its steps' inputs, a line at a time (blocks end with an empty
line, as at the prompt); the checks' verdicts print above the prompt, and the test waits
for each step's "✓" and the next step before typing on. The first test also makes wrong
tries and waits for their hints. The prompt runs this checkout's code (PYTHONPATH), with
its state (the progress file) in the test's directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from terminal import Terminal, netsh_argv

from netshell.teach.lessons import all_lessons

ROOT = Path(__file__).resolve().parents[2]
LESSONS = all_lessons()


@pytest.fixture
def netsh(tmp_path: Path) -> Iterator[Terminal]:
    t = Terminal(netsh_argv(), env={"XDG_STATE_HOME": str(tmp_path / "state"),
                                    "PYTHONPATH": str(ROOT)},
                 cwd=str(tmp_path), height=60)
    try:
        t.wait_prompt(1)
        yield t
    finally:
        t.close()


class Typist:
    """Types inputs at the prompt, numbering them as the prompt does."""

    def __init__(self, t: Terminal) -> None:
        self.t = t
        self.n = 1

    def enter(self, source: str) -> str:
        """Type ``source`` line by line (a block ends with an empty line); wait for the
        next prompt; return the screen."""
        lines = source.split("\n")
        if len(lines) > 1 and lines[-1] != "":
            lines.append("")  # a block ends with an empty line
        for line in lines:
            if line:
                self.t.type(line)
            self.t.key("Enter")
        self.n += 1
        return self.t.wait_prompt(self.n)


def count(screen: str, pattern: str) -> int:
    return len(re.findall(pattern, screen, re.M))


def do_lesson(typist: Typist, lesson: Any) -> str:
    """Do every step of ``lesson`` at the prompt; return the screen at the end."""
    t = typist.t
    screen = typist.enter(f"lesson({lesson.number})")
    assert f"Lesson {lesson.number}: {lesson.title}" in screen
    total = len(lesson.steps)
    for i, step in enumerate(lesson.steps, 1):
        ticks = count(t.screen(), r"^✓ ")
        for source in step.solution:
            typist.enter(source)
        following = (f"^Step {i + 1} of {total}: " if i < total
                     else f"^Lesson {lesson.number} done\\.")
        screen = t.wait_for(lambda s, f=following, k=ticks: count(s, r"^✓ ") == k + 1
                            and re.search(f, s, re.M) is not None)
    return screen


def test_the_prompt_runs_this_checkout(netsh: Terminal) -> None:
    typist = Typist(netsh)
    screen = typist.enter("import netshell.teach.lessons as L; print('FROM', L.__file__)")
    assert f"FROM {ROOT}/netshell/teach/lessons/__init__.py" in screen


@pytest.mark.timeout(120)
def test_a_lesson_at_the_prompt_with_wrong_tries_and_their_hints(netsh: Terminal,
                                                                 tmp_path: Path) -> None:
    typist = Typist(netsh)
    screen = typist.enter("lessons()")
    assert re.search(r"^ 6  An echo server\s+3  not started$", screen, re.M)
    typist.enter("lesson(6)")
    # A protocol that does not echo: the check tries it and says what it wrote.
    typist.enter("class Echo(Protocol):\n    def data_received(self, data):\n"
                 "        self.transport.write(b'?')\n")
    netsh.wait_for(r"^✗ Not yet: Echo got b'ping\\r\\n' and wrote b'\?'$")
    netsh.wait_for(r"^  Hint: subclass Protocol and define data_received\(self, data\)")
    # Looking is no try: no verdict for it.
    marks = count(netsh.screen(), r"^✗ ")
    typist.enter("conns()")
    lesson = LESSONS[5]
    for source in lesson.steps[0].solution:
        typist.enter(source)
    netsh.wait_for(r"^✓ Echo sent back b'ping\\r\\n' \(tried in memory, no socket\)$")
    netsh.wait_for(r"^Step 2 of 3: serve it")
    assert count(netsh.screen(), r"^✗ ") == marks
    # The server: the check connects to it, above the prompt.
    typist.enter("srv = listen(0, Echo)")
    netsh.wait_for(r"^✓ listener #\d+ on 127\.0\.0\.1:\d+ echoed the check's 22 bytes$")
    netsh.wait_for(r"^Step 3 of 3: be its client")
    # A client that sends nothing yet: told once, with the hint.
    typist.enter("p = await connect(f'tcp:127.0.0.1:{srv.port}', Protocol)")
    netsh.wait_for(r"^✗ Not yet: no connection of yours has sent bytes to your server")
    netsh.wait_for(r"^  Hint: p = await connect\(\.\.\.\) gives the client protocol")
    typist.enter("p.transport.write(b'hi there')")
    netsh.wait_for(r"^✓ connection #\d+ sent 8 bytes and the server sent them back$")
    netsh.wait_for(r"^Lesson 6 done\. ")
    screen = typist.enter("lessons()")
    assert re.search(r"^ 6  An echo server\s+3  done$", screen, re.M)
    saved = json.loads((tmp_path / "state" / "netshell" / "lessons.json").read_text())
    assert saved["lessons"]["6"] == {"step": 3, "done": True}


# Every lesson, typed. (All twelve run: the prompt starts once per lesson, and each step's
# check reports within a second or so.)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: f"lesson{lesson.number}")
def test_each_lesson_done_at_the_prompt(netsh: Terminal, lesson: Any) -> None:
    screen = do_lesson(Typist(netsh), lesson)
    assert count(screen, r"^✓ ") == len(lesson.steps)
    assert "Traceback" not in screen and "The check of this step failed" not in screen
