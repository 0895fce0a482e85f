"""Drive a real program in a terminal through tmux: type, press keys, read the screen.

Each :class:`Terminal` runs on its own tmux server (``-L``), so tests never
share state. ``wait_for`` polls the rendered screen until a pattern shows (or
fails with the screen in the message): waiting on what the person would see.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from peers import require

WAIT = 15.0  # generous: a loaded CI machine is slow, and a pass returns at once


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 width: int = 160, height: int = 48, cwd: str | None = None) -> None:
        require("tmux")
        self.socket = f"netsh-test-{uuid.uuid4().hex[:10]}"
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["TERM"] = "xterm-256color"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # The shell tmux runs the command with prints its exit status when it ends.
        command = (f"env {exports} {' '.join(shlex.quote(a) for a in argv)}; "
                   "s=$?; echo; echo EXIT-STATUS=$s")
        self._tmux("new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height),
                   command, cwd=cwd, env=full_env)
        self._tmux("set-option", "-t", "main", "remain-on-exit", "on")

    def _tmux(self, *args: str, cwd: str | None = None, env: dict[str, str] | None = None
              ) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, cwd=cwd, env=env, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    # ---- input

    def type(self, text: str) -> None:
        """Type ``text`` literally (no Enter)."""
        self._tmux("send-keys", "-t", "main", "-l", text)

    def line(self, text: str) -> None:
        """Type ``text`` and press Enter."""
        self.type(text)
        self.key("Enter")

    def key(self, *names: str) -> None:
        """Press keys by tmux name: Enter, C-c, C-d, Tab, F2, Escape..."""
        self._tmux("send-keys", "-t", "main", *names)

    # ---- output

    def screen(self) -> str:
        """The visible screen plus scrollback, wrapped lines joined."""
        return self._tmux("capture-pane", "-p", "-J", "-t", "main", "-S", "-2000")

    def wait_for(self, pattern: str | Callable[[str], bool], timeout: float = WAIT) -> str:
        """Return the screen once ``pattern`` (a regex or a predicate) matches it."""
        check = (lambda s: re.search(pattern, s, re.M) is not None) if isinstance(
            pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"not on screen after {timeout}s: {pattern!r}\n"
                                     f"----- screen -----\n{text}")
            time.sleep(0.02)  # polling the screen: the wait ends on what appears

    def wait_prompt(self, number: int, timeout: float = WAIT) -> str:
        """Wait for the prompt ``[number]>`` (the netsh prompt numbers its inputs)."""
        return self.wait_for(rf"^\[{number}\]>( |$)", timeout)

    def exit_status(self, timeout: float = WAIT) -> int:
        """Wait for the program to end; return its exit status."""
        screen = self.wait_for(r"^EXIT-STATUS=\d+$", timeout)
        return int(re.findall(r"^EXIT-STATUS=(\d+)$", screen, re.M)[-1])

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def rows(screen: str) -> list[str]:
    """The screen's lines, trailing blanks of each line removed."""
    return [line.rstrip() for line in screen.rstrip("\n").splitlines()]


def last_row(screen: str, pattern: str) -> int:
    """The index of the last screen line that ``pattern`` matches whole; -1 if none does."""
    found = [i for i, line in enumerate(rows(screen)) if re.fullmatch(pattern, line)]
    return found[-1] if found else -1


def when_go(action: str, imports: str = "") -> str:
    """A line of netsh code: a timed call that does ``action`` once the file ``go`` exists.

    The call looks every 50 ms, so ``action`` happens after the test makes the file
    (in the session's directory), however slow the machine: the test decides when.
    """
    return (f'{imports}import os; go = lambda: {action} if os.path.exists("go") '
            'else reactor.call_later(0.05, go); dc = reactor.call_later(0.05, go)')


class Above:
    """A screen check: a line that ``printed`` (a regex) matches whole, above the line that
    ``below`` (a regex) matches whole; for output printed above a prompt that is redrawn
    below it, with the text typed on it."""

    def __init__(self, printed: str, below: str) -> None:
        self.printed, self.below = printed, below

    def __call__(self, screen: str) -> bool:
        return 0 <= last_row(screen, self.printed) < last_row(screen, self.below)

    def __repr__(self) -> str:
        return f"a line {self.printed!r} above a line {self.below!r}"


def netsh_argv(*args: str) -> list[str]:
    """The real ``netsh`` command: the installed script next to this interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "netsh")
    if os.path.exists(script):
        return [script, *args]
    return [sys.executable, "-m", "netshell.app.cli", *args]
