"""The watchdog woken by a timer signal (SIGALRM) instead of a thread of its own.

In a process of one thread (``netsh run --watch-blocking``) a second thread would make
each system call of the process dearer, so there the watchdog takes SIGALRM from the
real-time interval timer: its handler runs on the main thread between two bytecodes
of whatever runs, even inside ``time.sleep``, and looks at the frame it interrupted.
These tests run it for real on the test's own main thread, so pytest-timeout must not
hold SIGALRM for them (``method="thread"``).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netshell.teach import watchdog as wd
from netshell.teach.watchdog import Blocked, Watchdog

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0

pytestmark = pytest.mark.timeout(120, method="thread")


def run_with_signal(block: Callable[[asyncio.AbstractEventLoop], None],
                    threshold: float = 0.1, after: float = 0.3) -> tuple[list[Blocked], Watchdog]:
    """Run a loop watched by a signal-driven watchdog; ``block(loop)`` schedules the
    blocking work; returns the reports once one came (and ``after`` seconds more)."""
    got: list[Blocked] = []

    async def main() -> Watchdog:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, threshold, got.append, driver="signal")
        dog.start()
        assert dog.mode == "signal"
        block(loop)
        deadline = time.monotonic() + WAIT
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(after)  # a second report would come now
        dog.stop()
        return dog

    dog = asyncio.run(main())
    return got, dog


def sleeper() -> None:
    time.sleep(0.5)  # the block under test


def spinner() -> None:
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # the busy block under test
        pass


def test_a_sleep_in_a_callback_is_named_and_sigalrm_is_put_back():
    got, _ = run_with_signal(lambda loop: loop.call_later(0.02, sleeper))
    assert len(got) == 1
    assert got[0].where.function == "sleeper"
    assert got[0].where.source == "time.sleep(0.5)  # the block under test"
    assert 0.4 <= got[0].seconds <= 1.5
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_busy_loop_in_a_callback_is_named():
    got, _ = run_with_signal(lambda loop: loop.call_later(0.02, spinner))
    assert len(got) == 1
    assert got[0].where.function == "spinner"
    assert got[0].where.source.startswith("while time.monotonic() < end:")
    assert not got[0].busy


def test_a_builtin_run_as_the_callback_is_named_with_its_caller():
    got, _ = run_with_signal(lambda loop: loop.call_later(0.02, time.sleep, 0.5))
    assert len(got) == 1
    assert str(got[0].where) == "time.sleep, called by a timed call"


def test_a_waiting_loop_is_not_reported_and_its_waits_are_whole():
    got: list[Blocked] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, 0.1, got.append, driver="signal")
        dog.start()
        start = time.monotonic()
        await asyncio.sleep(0.8)  # the select() is interrupted 40 times, and resumed
        elapsed = time.monotonic() - start
        dog.stop()
        return elapsed

    assert asyncio.run(main()) >= 0.8
    assert got == []


def test_a_block_that_lasts_is_said_while_it_lasts_from_the_handler():
    done = threading.Event()
    told_while_held: list[bool] = []

    def report(blocked: Blocked) -> None:
        told_while_held.append(not done.is_set())
        got.append(blocked)

    def endless() -> None:
        end = time.monotonic() + 2.6
        while time.monotonic() < end:  # held past the 2 s after which it is said
            pass
        done.set()

    got: list[Blocked] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, 0.1, report, driver="signal")
        dog.start()
        loop.call_later(0.02, endless)
        await asyncio.sleep(0.1)
        while not done.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        dog.stop()

    asyncio.run(main())
    assert got and got[0].lasting and got[0].where.function == "endless"
    assert told_while_held[0] is True


def test_the_timer_signal_is_refused_where_it_cannot_be_had():
    loop = asyncio.new_event_loop()
    try:
        assert wd.timer_signal_refused(loop) is None
        refused: list[str | None] = []
        worker = threading.Thread(target=lambda: refused.append(wd.timer_signal_refused(loop)))
        worker.start()
        worker.join(WAIT)
        assert refused == ["signals are handled on the main thread, and this is another"]
        previous = signal.signal(signal.SIGALRM, lambda *a: None)
        try:
            assert wd.timer_signal_refused(loop) == "SIGALRM has a handler already"
            with pytest.raises(RuntimeError, match="cannot use a timer signal: SIGALRM has"):
                Watchdog(loop, driver="signal").start()
        finally:
            signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, 100.0)
        try:
            assert wd.timer_signal_refused(loop) == "the real-time interval timer is in use"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        with pytest.raises(ValueError, match="one of auto, signal, thread"):
            Watchdog(loop, driver="alarm")
    finally:
        loop.close()


def test_code_that_takes_sigalrm_ends_the_watchdog_and_keeps_its_handler():
    loop = asyncio.new_event_loop()
    mine = signal.signal  # any callable will do; this one is easy to recognise
    try:
        dog = Watchdog(loop, 0.25, driver="signal")
        dog.start()
        assert dog.running and dog.mode == "signal"
        signal.signal(signal.SIGALRM, lambda *a: None)
        taken = signal.getsignal(signal.SIGALRM)
        assert not dog.running  # noticed, and stopped
        assert signal.getsignal(signal.SIGALRM) is taken  # theirs, left alone
        assert taken is not mine
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, 0)
        loop.close()


CHOICE = """\
import asyncio, threading
from netshell.teach.watchdog import start_watchdog, stop_watchdog
loop = asyncio.new_event_loop()
print(start_watchdog(loop).mode)
stop_watchdog(loop)
threading.Thread(target=threading.Event().wait, daemon=True).start()
print(start_watchdog(loop).mode)
stop_watchdog(loop)
"""


def test_auto_takes_the_signal_in_a_process_of_one_thread_and_else_a_thread():
    done = subprocess.run([sys.executable, "-c", CHOICE], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["signal", "thread"]


SCRIPT = """\
import time
from netshell.teach.watchdog import watchdog_on

def on_timer():
    time.sleep(0.6)

print(watchdog_on(reactor.loop).mode)
reactor.call_later(0.05, on_timer)
await sleep(1)
"""


def test_netsh_run_watch_blocking_uses_the_timer_signal_and_names_the_line(tmp_path):
    (tmp_path / "blocky.py").write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, "-m", "netshell.app.cli", "run", "--watch-blocking", "blocky.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "signal\n"
    assert "the reactor was blocked for 0.6 s in on_timer (blocky.py, line 5)" in done.stderr


LEFT_RUNNING = """\
import asyncio, sys
from netshell.teach.watchdog import start_watchdog
loop = asyncio.new_event_loop()
start_watchdog(loop, 0.005)  # ticks every millisecond, and is never stopped
sys.stdout.write("x" * 1_000_000)
"""


def test_a_process_that_ends_with_the_watchdog_on_is_not_killed_by_its_tick():
    for _ in range(5):  # the tick lands while the interpreter ends, if it can
        done = subprocess.run([sys.executable, "-c", LEFT_RUNNING], capture_output=True,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                              timeout=60)
        assert done.returncode == 0, (done.returncode, done.stderr)
        assert len(done.stdout) == 1_000_000


def test_the_prompt_helper_says_off_once_sigalrm_is_taken_and_on_again_on_a_thread():
    ns: dict[str, object] = {}
    helper = wd.make_helper(ns)

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        wd.start_watchdog(loop, own=[ns])
        dog = wd.watchdog_on(loop)
        assert dog is not None
        dog.stop()
        # As at the prompt, whose process has one thread: the timer signal.
        wd._watchdogs[id(loop)] = dog = Watchdog(loop, driver="signal", own=[ns])
        dog.start()
        said = [repr(helper())]
        signal.signal(signal.SIGALRM, lambda *a: None)  # the person's own alarm
        said.append(repr(helper()))
        said.append(repr(helper(True)))
        again = wd.watchdog_on(loop)
        assert again is not None and again.mode == "thread"
        wd.stop_watchdog(loop)
        return said

    try:
        said = asyncio.run(main())
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert said[0].startswith("watchdog on:")
    assert said[1].startswith("watchdog off:")
    assert said[2].startswith("watchdog on:")
