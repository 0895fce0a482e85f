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
    """Try ``lesson``'s first step wrong, then do every step at the prompt; return the
    screen at the end."""
    t = typist.t
    screen = typist.enter(f"lesson({lesson.number})")
    assert f"Lesson {lesson.number}: {lesson.title}" in screen
    # A wrong try first: it gets the step's hint.
    typist.enter("x = 1")
    hint = f"  Hint: {lesson.steps[0].hint}"
    t.wait_for(lambda s: hint in s.splitlines() and count(s, r"^✗ Not yet: ") == 1)
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


def test_a_lesson_in_netsh_ipython(tmp_path: Path) -> None:
    # IPython records each cell in the same Console (load_into), and its loop runs while
    # the prompt is idle: the checks run after each cell, and report above the prompt.
    t = Terminal(netsh_argv("--ipython"),
                 env={"XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT),
                      "IPYTHONDIR": str(tmp_path / "ipython")},
                 cwd=str(tmp_path), height=60)
    try:
        t.wait_for(r"^In \[1\]:")
        t.line("lesson(6)")
        t.wait_for(r"^Step 1 of 3: write a protocol")
        t.line("class Echo(Protocol):")
        t.line("def data_received(self, data): self.transport.write(data)")  # IPython indents
        t.key("Enter")
        t.wait_for(r"^✓ Echo sent back b'ping\\r\\n'")
        t.wait_for(r"^In \[3\]:")
        t.line("srv = listen(0, Echo)")
        t.wait_for(r"^✓ listener #\d+ on 127\.0\.0\.1:\d+ echoed the check's 22 bytes$")
        t.wait_for(r"^In \[4\]:")
        t.line("x = 1")
        t.wait_for(r"^✗ Not yet: no connection of yours has sent bytes")
        t.wait_for(r"^  Hint: p = await connect")
    finally:
        t.close()


def _cell(kc: Any, code: str, timeout: float = 30) -> str:
    """Run ``code`` in the kernel; what the cell printed and showed, once it is idle."""
    parts: list[str] = []

    def keep(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            parts.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            parts.append(content["data"].get("text/plain", "") + "\n")
        elif msg["msg_type"] == "error":
            parts.append(f"{content['ename']}: {content['evalue']}\n")

    kc.execute_interactive(code, output_hook=keep, timeout=timeout)
    return "".join(parts)


def _later_output(kc: Any, pattern: str, timeout: float = 30) -> str:
    """Wait for a stream message matching ``pattern`` (what a check prints after the cell)."""
    import queue
    import time

    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if msg["msg_type"] == "stream":
            seen.append(msg["content"]["text"])
            if re.search(pattern, msg["content"]["text"], re.M):
                return str(msg["content"]["text"])
    raise AssertionError(f"no output matching {pattern!r} after {timeout}s: {seen!r}")


def test_a_lesson_in_a_jupyter_kernel(tmp_path: Path) -> None:
    import os

    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"),
               IPYTHONDIR=str(tmp_path / "ipython"))
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        _cell(kc, "%load_ext netshell")
        # shown as text, not as a quoted string
        assert re.search(r"^Step 1 of 3: write a protocol", _cell(kc, "lesson(6)"), re.M)
        out = _cell(kc, "class Echo(Protocol):\n    def data_received(self, data):\n"
                        "        self.transport.write(data)")
        assert "✓ Echo sent back b'ping\\r\\n'" in out and "Step 2 of 3" in out
        # This check connects to the server: it reports after the cell, into the kernel's
        # output, as the loop turns between cells.
        _cell(kc, "srv = listen(0, Echo)")
        _later_output(kc, r"^✓ listener #\d+ on 127\.0\.0\.1:\d+ echoed the check's 22 bytes")
        out = _cell(kc, "x = 1")
        assert "✗ Not yet: no connection of yours has sent bytes" in out or (
            "✗ Not yet" in _later_output(kc, r"✗ Not yet"))
        # Unloading the extension stops the lesson: its observer of the core goes too.
        watching = "from netshell import observe\nprint(sorted(type(o).__name__ for o in " \
                   "observe.observers()))"
        assert "Watch" in _cell(kc, watching)
        _cell(kc, "%unload_ext netshell")
        assert "Watch" not in _cell(kc, watching)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
