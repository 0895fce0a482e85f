"""The documented defaults, at their default values: Ctrl-D's 5 s, ``netsh run --settle`` and
``--grace``'s 5 s.

Each default is checked twice: the number in the code is the one the docs state, and the
behaviour keeps to it. The behaviour runs on an asyncio loop in virtual time (its clock
jumps to the next timer whenever it would wait with nothing to do), so a 5 s bound is
measured exactly and costs no real seconds; the connections that are slow to finish are
stand-ins registered with the reactor, whose finishing the test schedules.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import selectors
import signal
from pathlib import Path
from typing import Any

import pytest

from netshell.app import cli, runner
from netshell.reactor import Reactor
from netshell.shell import chains, prompt

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented(page: str, pattern: str) -> float:
    """The number ``pattern`` (one group) finds in ``docs/page``."""
    m = re.search(pattern, (DOCS / page).read_text(encoding="utf-8"), re.M)
    assert m, f"docs/{page} no longer says {pattern!r}"
    return float(m.group(1))


# ---- an asyncio loop in virtual time


class _JumpingSelector(selectors.DefaultSelector):
    """Looks for ready I/O without waiting; where the loop would wait for its next timer,
    the clock jumps there instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer: only I/O can wake the loop
            ready = super().select(30)
            assert ready, "the loop waits for nothing: no timer and no I/O in 30 s"
            return ready
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


@pytest.fixture
def loop():
    loop = VirtualTimeLoop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


class SlowConnection:
    """A connection the reactor counts, which finishes when the test says.

    ``close()`` is noted; with ``closes_in`` set, the connection goes that many seconds
    after ``close()``, else never (as one whose peer reads nothing). ``abort()`` drops it.
    """

    bytes_received = bytes_sent = write_buffer_size = 0
    listener: Any = "accepted"  # a connection a listener accepted (not one the script made)

    def __init__(self, reactor: Reactor, closes_in: float | None = None) -> None:
        self.reactor = reactor
        self.closes_in = closes_in
        self.closed_at: float | None = None
        self.aborted_at: float | None = None
        self.gone_at: float | None = None
        reactor.add_connection(self)

    def finish(self) -> None:
        if self.gone_at is None:
            self.gone_at = self.reactor.seconds()
            self.reactor.remove_connection(self)

    def close(self) -> None:
        if self.closed_at is None:
            self.closed_at = self.reactor.seconds()
            if self.closes_in is not None:
                self.reactor.call_later(self.closes_in, self.finish)

    def abort(self) -> None:
        self.aborted_at = self.reactor.seconds()
        self.finish()


def test_the_virtual_clock_jumps_to_the_next_timer(loop: VirtualTimeLoop) -> None:
    async def nap() -> float:
        await asyncio.sleep(3600)
        return loop.time()

    assert loop.run_until_complete(nap()) == 3600.0


# ---- Ctrl-D and exit(): at most 5 s for connections to close


def test_ctrl_d_waits_at_most_5_s_in_the_docs_and_the_code() -> None:
    row = r"^\| Ctrl-D \| leaves: closes listeners and connections \(waiting at most ([\d.]+) s\)"
    assert documented("prompt.md", row) == prompt.EXIT_GRACE == 5.0


def ctrl_d(loop: VirtualTimeLoop, tmp_path: Path, closes_in: float | None) -> SlowConnection:
    """What Ctrl-D does after the prompt (Prompt.shutdown), with one slow connection open."""
    r = Reactor(loop)
    conn = SlowConnection(r, closes_in)
    p = prompt.Prompt(r, history=tmp_path / "history")
    loop.run_until_complete(p.shutdown())
    assert r.connections == [] and loop.time() == conn.gone_at
    return conn


def test_ctrl_d_aborts_a_connection_that_never_closes_after_5_s(
    loop: VirtualTimeLoop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = ctrl_d(loop, tmp_path, closes_in=None)
    assert conn.closed_at == 0.0
    assert conn.aborted_at == pytest.approx(5.0, abs=1e-6)  # not after 1 s, nor 10
    assert "Closed 0 listeners and 1 connection in" in capsys.readouterr().out


def test_ctrl_d_lets_a_connection_that_needs_4_s_to_close_close(
    loop: VirtualTimeLoop, tmp_path: Path
) -> None:
    conn = ctrl_d(loop, tmp_path, closes_in=4.0)
    assert conn.aborted_at is None
    assert conn.gone_at == pytest.approx(4.0, abs=1e-6)


def test_ctrl_d_aborts_a_connection_that_needs_6_s_to_close_at_5_s(
    loop: VirtualTimeLoop, tmp_path: Path
) -> None:
    conn = ctrl_d(loop, tmp_path, closes_in=6.0)
    assert conn.aborted_at == pytest.approx(5.0, abs=1e-6)


# ---- netsh run: --settle and --grace default to 5 s


def test_run_settle_and_grace_default_to_5_s_in_the_docs_and_the_code() -> None:
    settle = documented("sessions.md", r"at most `--settle` seconds\s+\(default ([\d.]+)\)")
    grace = documented("sessions.md", r"finish within\s+`--grace` seconds \(default ([\d.]+)\)")
    assert settle == grace == 5.0
    parser = cli.build_parser()
    run = parser.parse_args(["run", "script.py"])
    assert (run.settle, run.grace) == (settle, grace)
    assert (runner.RunOptions().settle, runner.RunOptions().grace) == (settle, grace)
    assert parser.parse_args(["serve", "echo"]).grace == grace
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, option in [("run", "settle"), ("run", "grace"), ("serve", "grace")]:
        (action,) = [a for a in commands.choices[command]._actions if a.dest == option]
        assert "(default 5)" in action.help, (command, option)  # what --help says


def cli_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str
                ) -> runner.RunOptions:
    """The RunOptions ``netsh run ARGS script.py`` gives the runner (the script not run)."""
    script = tmp_path / "script.py"
    script.write_text("pass\n")
    seen: list[runner.RunOptions] = []

    def run_source(source: str, filename: str, argv: list[str], options: runner.RunOptions,
                   use_uvloop: bool | None = None) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(runner, "run_source", run_source)
    assert cli.main(["run", *args, str(script)]) == 0
    (options,) = seen
    return options


def run_script(loop: VirtualTimeLoop, options: runner.RunOptions, source: str,
               before: Any = None) -> int:
    """Run ``source`` as ``netsh run`` does, on ``loop``; ``before(reactor, runner)`` first."""
    r = Reactor(loop)
    run = runner._Runner(r, "script.py", options)
    if before is not None:
        before(r, run)
    try:
        return loop.run_until_complete(run.run(source))
    finally:
        chains.stop_recording()  # as run_source does: a cell script records chains


SETTLE_SCRIPT = """\
# %%
fired = []
dc = reactor.call_later({delay}, lambda: fired.append(reactor.seconds()))
# %%
print("next cell at", reactor.seconds(), "fired at", fired)
"""


def next_cell(out: str) -> tuple[float, list[float]]:
    m = re.fullmatch(r"next cell at ([\d.]+) fired at \[([\d., ]*)\]\n", out)
    assert m, out
    return float(m.group(1)), [float(x) for x in m.group(2).split(",") if x.strip()]


def test_run_waits_for_a_timer_due_in_4_s_under_the_default_settle(
    loop: VirtualTimeLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = cli_options(monkeypatch, tmp_path, "--exit")
    assert run_script(loop, options, SETTLE_SCRIPT.format(delay=4)) == 0
    at, fired = next_cell(capsys.readouterr().out)
    assert fired == [pytest.approx(4.0, abs=1e-6)]
    assert at == pytest.approx(4.0, abs=0.05)  # the next cell ran once the timer had fired


def test_run_does_not_wait_for_a_timer_due_in_6_s_under_the_default_settle(
    loop: VirtualTimeLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = cli_options(monkeypatch, tmp_path, "--exit")
    assert run_script(loop, options, SETTLE_SCRIPT.format(delay=6)) == 0
    at, fired = next_cell(capsys.readouterr().out)
    assert (at, fired) == (0.0, [])  # the next cell ran at once


SERVING = 'srv = listen("tcp:0", wire.echo_factory())\n'


def sigterm_while_serving(loop: VirtualTimeLoop, options: runner.RunOptions,
                          finishes_in: float) -> SlowConnection:
    """SIGTERM at t=1 while serving, with a connection that finishes ``finishes_in`` s later
    by itself, and at once when closed."""
    made: list[SlowConnection] = []

    def before(r: Reactor, run: runner._Runner) -> None:
        conn = SlowConnection(r, closes_in=0)
        r.call_later(1 + finishes_in, conn.finish)
        r.call_later(1, run._on_signal, signal.SIGTERM)
        made.append(conn)

    assert run_script(loop, options, SERVING, before) == 143
    return made[0]


def test_sigterm_lets_a_connection_finish_in_4_s_under_the_default_grace(
    loop: VirtualTimeLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = cli_options(monkeypatch, tmp_path)
    conn = sigterm_while_serving(loop, options, finishes_in=4)
    assert (conn.closed_at, conn.aborted_at) == (None, None)  # left alone to finish
    assert conn.gone_at == pytest.approx(5.0, abs=1e-6)
    assert "waiting up to 5s for 1 connection" in capsys.readouterr().err


def test_sigterm_closes_a_connection_that_needs_6_s_after_the_default_grace(
    loop: VirtualTimeLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = cli_options(monkeypatch, tmp_path)
    conn = sigterm_while_serving(loop, options, finishes_in=6)
    assert conn.closed_at == pytest.approx(1 + 5.0, abs=1e-6)  # 5 s after the signal
    assert conn.aborted_at is None and conn.gone_at == conn.closed_at
