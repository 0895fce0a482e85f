"""The blocked-reactor watchdog (netshell.teach.watchdog), in process and under ``netsh run``.

Most tests run a real loop whose callback blocks on a ``threading.Event`` the test
releases, with the watchdog's clock faked: a helper thread moves the clock while
the loop is held and calls ``poll()`` (the watching thread's one step) itself, so
what is measured does not depend on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netshell.defer import Deferred
from netshell.reactor import DelayedCall, Reactor
from netshell.teach import watchdog as wd
from netshell.teach.watchdog import Blocked, Watchdog

WAIT = 10.0  # a bound for waits that end at once
ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def held_episode(loop: asyncio.AbstractEventLoop, dog: Watchdog, clock: FakeClock,
                 entered: threading.Event, release: threading.Event, held_for: float,
                 reported: threading.Event, finished: asyncio.Future[None],
                 failed: list[str]) -> None:
    """In a thread: once the loop is held, let ``held_for`` (fake) seconds pass, look at
    the loop, release it, then look until the episode is over: reported, or (silent)
    the heartbeat has stamped the time after it and the thread has looked since."""
    try:
        if not entered.wait(WAIT):
            failed.append("the loop was never held")
            return
        clock.now += held_for
        dog.poll()  # the loop is held: a sample
        release.set()
        deadline = time.monotonic() + WAIT
        while not reported.wait(0.005) and time.monotonic() < deadline:
            dog.poll()  # the heartbeat moves the stamp once the loop turns: the episode ends
            if dog._last == clock.now and dog._episode is None:
                break  # over, and nothing said (the report would be on its way already)
    finally:
        loop.call_soon_threadsafe(finished.set_result, None)


def run_episode(loop_work: Callable[[asyncio.AbstractEventLoop, threading.Event,
                                     threading.Event], None],
                held_for: float = 1.0, threshold: float = 0.25,
                own: list[dict[str, Any]] | None = None,
                also: Callable[[], None] = lambda: None) -> list[Blocked]:
    """Run a loop on which ``loop_work(loop, entered, release)`` schedules the blocking
    work; return what the watchdog reported (``also()`` is called in the report)."""
    clock = FakeClock()
    got: list[Blocked] = []
    failed: list[str] = []
    reported = threading.Event()

    def report(blocked: Blocked) -> None:
        also()
        got.append(blocked)
        reported.set()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, threshold, report, own=own or [], clock=clock)
        dog.start(thread=False)
        entered, release = threading.Event(), threading.Event()
        finished: asyncio.Future[None] = loop.create_future()
        await asyncio.sleep(0)  # the first heartbeat: the stamp is the clock's 0
        helper = threading.Thread(target=held_episode, args=(
            loop, dog, clock, entered, release, held_for, reported, finished, failed))
        helper.start()
        loop_work(loop, entered, release)
        await finished  # the loop waits (in select) meanwhile, but for the blocking work
        await asyncio.sleep(0)  # a report made as the thread finished
        helper.join(WAIT)
        dog.stop()

    asyncio.run(main())
    assert failed == []
    return got


def blocker(entered: threading.Event, release: threading.Event) -> None:
    entered.set()
    release.wait(WAIT)  # the line the watchdog names


BLOCKER_LINE = blocker.__code__.co_firstlineno + 2


def test_a_callback_that_holds_the_loop_is_named_with_its_line_and_how_long():
    got = run_episode(lambda loop, entered, release: loop.call_soon(blocker, entered, release))
    assert len(got) == 1
    blocked = got[0]
    assert blocked.where.function == "blocker"
    assert blocked.where.filename == __file__
    assert blocked.where.line == BLOCKER_LINE
    assert blocked.where.source == "release.wait(WAIT)  # the line the watchdog names"
    # 1 s between the stamp before and the one after, less half a heartbeat (0.05 s).
    assert blocked.seconds == pytest.approx(1.0 - 0.025)
    message = blocked.message()
    assert message.splitlines()[0] == (
        f"the reactor was blocked for 1.0 s in blocker ({__file__}, line {BLOCKER_LINE}): "
        "release.wait(WAIT)  # the line the watchdog names")
    assert "defer_to_thread(f, *args)" in message.splitlines()[1]


def test_the_innermost_frame_of_your_own_code_is_named_not_the_outer_caller():
    def outer(entered: threading.Event, release: threading.Event) -> None:
        blocker(entered, release)  # the caller: not named

    got = run_episode(lambda loop, entered, release: loop.call_soon(outer, entered, release))
    assert [(b.where.function, b.where.line) for b in got] == [("blocker", BLOCKER_LINE)]


def test_a_block_shorter_than_the_threshold_is_not_reported():
    # 0.26 s between the stamps around it (so it was sampled): 0.235 s once half a
    # heartbeat (0.025 s) is taken off, under the 0.25 s threshold.
    got = run_episode(lambda loop, entered, release: loop.call_soon(blocker, entered, release),
                      held_for=0.26)
    assert got == []


def test_a_loop_that_only_waits_is_never_reported_even_when_the_clock_jumps():
    # The loop sits in select() (awaiting an event nobody sets until the thread is done):
    # the stamp is old, so the thread samples, and finds no callback running.
    def idle(loop: asyncio.AbstractEventLoop, entered: threading.Event,
             release: threading.Event) -> None:
        # A callback of the standard library's: no frame of the test's is on the loop's
        # stack from then on, whenever the helper looks.
        loop.call_soon(entered.set)

    got = run_episode(idle, held_for=5.0)
    assert got == []


def test_a_turn_spent_in_library_code_alone_is_not_reported():
    # The callback is the standard library's own (threading.Event.wait): no frame of
    # yours to name, nothing said (under a CPU-starved machine such a turn of netshell's
    # or another package's code is no block of yours).
    def library_only(loop: asyncio.AbstractEventLoop, entered: threading.Event,
                     release: threading.Event) -> None:
        loop.call_soon(release.wait, WAIT)
        main = threading.get_ident()

        def in_wait() -> None:  # tell the helper once the loop thread is inside wait()
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                frame = sys._current_frames().get(main)
                while frame is not None and frame.f_code is not threading.Event.wait.__code__:
                    frame = frame.f_back
                # release.wait, not the wait for this thread to start in Thread.start()
                if frame is not None and frame.f_locals.get("self") is release:
                    break
                threading.Event().wait(0.001)
            entered.set()

        threading.Thread(target=in_wait).start()

    assert run_episode(library_only) == []


def test_the_prompts_own_input_is_not_reported_but_a_function_it_defined_is():
    ns: dict[str, Any] = {"blocker": blocker}
    typed = compile("blocker(entered, release)", "<netsh-1>", "exec")

    def run_input(loop: asyncio.AbstractEventLoop, entered: threading.Event,
                  release: threading.Event) -> None:
        ns.update(entered=entered, release=release)
        loop.call_soon(exec, typed, ns)

    assert run_episode(run_input, own=[ns]) == []
    # The same code as a callback (a function whose globals are the namespace) is reported.
    exec(compile("def on_data(entered, release):\n    blocker(entered, release)\n",
                 "<netsh-2>", "exec"), ns)
    got = run_episode(lambda loop, entered, release: loop.call_soon(ns["on_data"], entered,
                                                                    release), own=[ns])
    assert [b.where.function for b in got] == ["blocker"]


def test_the_report_runs_in_the_context_of_the_callback_that_blocked():
    cell: contextvars.ContextVar[int | None] = contextvars.ContextVar("cell", default=None)
    seen: list[int | None] = []

    def schedule(loop: asyncio.AbstractEventLoop, entered: threading.Event,
                 release: threading.Event) -> None:
        context = contextvars.copy_context()
        context.run(cell.set, 7)
        loop.call_soon(blocker, entered, release, context=context)

    got = run_episode(schedule, also=lambda: seen.append(cell.get()))
    assert len(got) == 1
    assert seen == [7]


def test_a_stopped_loop_is_not_blocked():
    clock = FakeClock()
    loop = asyncio.new_event_loop()
    try:
        dog = Watchdog(loop, 0.25, lambda b: None, clock=clock)
        dog.start(thread=False)
        loop.run_until_complete(asyncio.sleep(0))  # a heartbeat: the loop's thread is known
        clock.now = 10.0  # the loop is not running at all (IPython between prompts)
        assert dog.poll() == pytest.approx(0.05)
        assert dog._episode is None
        dog.stop()
    finally:
        loop.close()


# ---- with the real clock and the watching thread


def test_time_sleep_in_a_timed_call_is_reported_once_with_the_real_thread():
    got: list[Blocked] = []

    def on_timer() -> None:
        time.sleep(0.4)  # the block under test

    async def main() -> None:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, 0.1, got.append)
        dog.start()
        loop.call_later(0.01, on_timer)
        deadline = time.monotonic() + WAIT
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # a second report would come now
        dog.stop()

    asyncio.run(main())
    assert len(got) == 1
    assert got[0].where.function == "on_timer"
    assert got[0].where.source == "time.sleep(0.4)  # the block under test"
    assert 0.3 <= got[0].seconds <= 1.5


def test_awaiting_a_long_sleep_says_nothing():
    got: list[Blocked] = []

    async def main() -> None:
        dog = Watchdog(asyncio.get_running_loop(), 0.1, got.append)
        dog.start()
        await asyncio.sleep(1.0)  # the loop waits: ten thresholds, and not blocked
        dog.stop()

    asyncio.run(main())
    assert got == []


# ---- the helper and the registry


def test_the_watchdog_helper_turns_it_on_and_off_and_sets_the_threshold():
    ns: dict[str, Any] = {}
    helper = wd.make_helper(ns)

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        said = [repr(helper())]
        said.append(repr(helper(threshold=0.5)))
        dog = wd.watchdog_on(loop)
        assert dog is not None and dog.threshold == 0.5 and dog.own == [ns]
        said.append(repr(helper(False)))
        assert wd.watchdog_on(loop) is None
        said.append(repr(helper(True)))
        assert wd.watchdog_on(loop) is not None
        with pytest.raises(ValueError, match="above 0"):
            helper(threshold=0)
        wd.stop_watchdog(loop)
        return said

    said = asyncio.run(main())
    assert said == [
        "watchdog off: a blocked reactor goes unreported; watchdog(True) turns it on",
        "watchdog on: a callback that holds the reactor 0.5 s or more is reported; "
        "watchdog(False) turns it off",
        "watchdog off: a blocked reactor goes unreported; watchdog(True) turns it on",
        "watchdog on: a callback that holds the reactor 0.25 s or more is reported; "
        "watchdog(False) turns it off",
    ]


def test_the_prompts_namespace_has_the_helper_and_the_tour_names_it():
    from netshell.shell import namespace
    from netshell.shell.console import Console

    console = Console({})
    names = namespace.build(console)
    assert names["watchdog"].__name__ == "watchdog"
    assert "watchdog(False)" in names["_helpers"].tour()


# ---- netsh run --watch-blocking


SCRIPT = """\
import time

def on_timer():
    time.sleep(0.6)

reactor.call_later(0.05, on_timer)
await sleep(1)
print("done")
"""


def netsh_run(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "blocky.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "netshell.app.cli", "run", *flags, "blocky.py"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)


def test_netsh_run_watch_blocking_names_the_blocking_line_on_stderr(tmp_path):
    done = netsh_run(tmp_path, "--watch-blocking")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    lines = [line for line in done.stderr.splitlines() if "blocked" in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith(
        "WARNING netshell.watchdog: the reactor was blocked for 0.6 s in on_timer "
        "(blocky.py, line 4): time.sleep(0.6)")
    assert "defer_to_thread" in done.stderr


def test_netsh_run_without_the_flag_says_nothing(tmp_path):
    done = netsh_run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    assert done.stderr == ""


# ---- Jupyter: the report goes to the cell whose work blocked


def test_in_a_jupyter_kernel_the_report_goes_to_the_cell_that_started_the_work(
        tmp_path, monkeypatch):
    import queue

    from jupyter_client.manager import start_new_kernel

    from netshell.kernel import kernelspec

    # The netshell kernelspec in a prefix of its own, this checkout first on the path
    # (as tests/kernel/conftest.py sets up its kernels).
    prefix = tmp_path / "prefix"
    kernelspec.install(prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    km, kc = start_new_kernel(kernel_name="netshell", startup_timeout=30)
    outputs: dict[str, str] = {}

    def run(code: str) -> str:
        msg_id = kc.execute(code)
        while True:  # until this cell's kernel goes idle
            msg = kc.get_iopub_msg(timeout=30)
            parent = msg["parent_header"].get("msg_id", "")
            if msg["msg_type"] == "stream":
                outputs[parent] = outputs.get(parent, "") + msg["content"]["text"]
            if (msg["msg_type"] == "status" and parent == msg_id
                    and msg["content"]["execution_state"] == "idle"):
                return msg_id

    try:
        run("1")  # the watchdog starts with the first cell (and its thread in its context)
        # Cell 2 sets a timer whose callback blocks; it fires while cell 3 runs.
        two = run("import time\ndef on_timer():\n    time.sleep(0.6)\n\n"
                  "dc = reactor.call_later(0.3, on_timer)")
        three = run("await sleep(1.2)")
        four = run("time.sleep(0.6)")  # a cell's own code: not reported
        # Cell 5 sets a timer whose callback blocks long enough to be said while it lasts
        # (from the watchdog's thread): both lines go to cell 5.
        five = run("def on_long():\n    time.sleep(2.5)\n\ndc = reactor.call_later(0.1, on_long)")
        six = run("await sleep(3)")
        run("print('done')")
        try:  # anything still on its way
            while True:
                msg = kc.get_iopub_msg(timeout=0.5)
                if msg["msg_type"] == "stream":
                    parent = msg["parent_header"].get("msg_id", "")
                    outputs[parent] = outputs.get(parent, "") + msg["content"]["text"]
        except queue.Empty:
            pass
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert re.search(r"the reactor was blocked for \d\.\d s in on_timer \(Cell In\[2\], "
                     r"line 3\): time\.sleep\(0\.6\)", outputs.get(two, "")), outputs
    assert "blocked" not in outputs.get(three, "") + outputs.get(four, "") + outputs.get(six, "")
    assert re.search(r"the reactor has been blocked for 2\.\d s so far in on_long \(Cell In\[5\], "
                     r"line 2\): time\.sleep\(2\.5\)\n.*\n.*"
                     r"the reactor was blocked for 2\.\d s in on_long",
                     outputs.get(five, "")), outputs
    assert sum(text.count("the reactor was blocked") for text in outputs.values()) == 2


# ---- a block said while it lasts; a builtin callback named; a busy turn told apart


def loop_thread_in(main: int, code: Any, entered: threading.Event) -> None:
    """In a thread: set ``entered`` once the innermost Python frame of thread ``main``
    runs ``code`` (a C callable it called holds it there)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(main)
        if frame is not None and frame.f_code is code:
            break
        threading.Event().wait(0.001)
    entered.set()


def watch_by_hand(schedule: Callable[[asyncio.AbstractEventLoop], None],
                  while_held: Callable[[Watchdog, FakeClock, list[tuple[Blocked, bool]]],
                                       None],
                  threshold: float = 0.25) -> list[tuple[Blocked, bool]]:
    """Run a loop with a watchdog polled by hand: ``schedule(loop)`` sets up the blocking
    work; ``while_held(dog, clock)`` runs in a thread, and returns once the work is
    released. Returns each report, and whether it was made on the loop's thread."""
    clock = FakeClock()
    got: list[tuple[Blocked, bool]] = []
    ended = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def report(blocked: Blocked) -> None:
            got.append((blocked, threading.get_ident() == loop_thread))
            if not blocked.lasting:
                ended.set()

        dog = Watchdog(loop, threshold, report, clock=clock)
        dog.start(thread=False)
        await asyncio.sleep(0)  # the first heartbeat: the stamp is the clock's 0
        finished: asyncio.Future[None] = loop.create_future()

        def helper() -> None:
            try:
                while_held(dog, clock, got)
                deadline = time.monotonic() + WAIT
                while not ended.wait(0.005) and time.monotonic() < deadline:
                    dog.poll()  # the loop turns again: the episode ends, and is reported
            finally:
                loop.call_soon_threadsafe(finished.set_result, None)

        schedule(loop)
        thread = threading.Thread(target=helper)
        thread.start()
        await finished
        await asyncio.sleep(0)  # the report, made as the thread finished
        thread.join(WAIT)
        dog.stop()

    asyncio.run(main())
    return got


def test_a_long_block_is_said_once_while_it_lasts_then_with_its_total_when_it_ends():
    entered, release = threading.Event(), threading.Event()
    while_held_said: list[tuple[Blocked, bool]] = []

    def while_held(dog: Watchdog, clock: FakeClock, got: list[tuple[Blocked, bool]]) -> None:
        assert entered.wait(WAIT)
        for _ in range(60):  # 3 s held, looked at every heartbeat (0.05 s)
            clock.now += 0.05
            dog.poll()
        while_held_said.extend(got)  # what was said before the loop was let go
        release.set()

    got = watch_by_hand(lambda loop: loop.call_soon(blocker, entered, release), while_held)
    # Said once while held, from the watchdog's thread; then once on the loop, at the end.
    assert [(b.lasting, on_loop) for b, on_loop in while_held_said] == [(True, False)]
    assert [(b.lasting, on_loop) for b, on_loop in got] == [(True, False), (False, True)]
    lasting, final = got[0][0], got[1][0]
    # After 2 s (4 thresholds of 0.25 s are no more), as the end is measured: from the
    # stamp before, less half a heartbeat.
    assert 2.0 <= lasting.seconds <= 2.05
    assert lasting.message().splitlines()[0] == (
        f"the reactor has been blocked for 2.0 s so far in blocker ({__file__}, line "
        f"{BLOCKER_LINE}): release.wait(WAIT)  # the line the watchdog names")
    assert final.seconds == pytest.approx(3.0 - 0.025)
    assert final.message().startswith("the reactor was blocked for 3.0 s in blocker (")


def test_a_block_that_lasts_is_said_while_the_loop_is_still_held_with_the_real_thread():
    release = threading.Event()
    got: list[Blocked] = []

    def report(blocked: Blocked) -> None:
        got.append(blocked)
        if blocked.lasting:
            release.set()  # the loop is held until the report has been made

    def on_timer() -> None:
        release.wait(WAIT)  # held until the watchdog says so

    async def main() -> None:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, 0.1, report)
        dog.start()
        loop.call_later(0.01, on_timer)
        deadline = time.monotonic() + WAIT
        while len(got) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        dog.stop()

    asyncio.run(main())
    assert [(b.lasting, b.where.function) for b in got] == [(True, "on_timer"),
                                                            (False, "on_timer")]
    assert 1.9 <= got[0].seconds <= got[1].seconds < WAIT


@pytest.mark.parametrize("by", ["a timed call", "the reactor's timed call", "a Deferred"])
def test_a_builtin_callback_is_named_with_what_called_it(by):
    lock = threading.Lock()
    lock.acquire()  # the callback, lock.acquire, blocks until the test lets go
    entered = threading.Event()
    deferred = Deferred[bool]()
    main = threading.get_ident()

    def schedule(loop: asyncio.AbstractEventLoop) -> None:
        if by == "a timed call":
            loop.call_later(0.001, lock.acquire)
            code = asyncio.events.Handle._run.__code__  # acquire runs in C: no frame
        elif by == "the reactor's timed call":
            Reactor(loop).call_later(0.001, lock.acquire)
            code = DelayedCall._run.__code__  # the reactor's frame, calling it
        else:
            deferred.add_callback(lock.acquire)  # lock.acquire(True)
            loop.call_later(0.001, deferred.callback, True)
            code = Deferred._run_callbacks.__code__
        threading.Thread(target=loop_thread_in, args=(main, code, entered)).start()

    def while_held(dog: Watchdog, clock: FakeClock, got: list[tuple[Blocked, bool]]) -> None:
        assert entered.wait(WAIT)
        clock.now += 1.0
        dog.poll()  # a sample: the loop is in lock.acquire
        lock.release()

    got = watch_by_hand(schedule, while_held)
    assert len(got) == 1
    where = got[0][0].where
    called_by = "a timed call" if "timed" in by else f"Deferred #{deferred._id}'s callback"
    assert (where.function, where.filename, where.by) == ("lock.acquire", "", called_by)
    assert got[0][0].message().splitlines()[0] == (
        f"the reactor was blocked for 1.0 s in lock.acquire, called by {called_by}")


def test_time_sleep_as_the_callback_itself_is_reported_with_the_real_thread():
    got: list[Blocked] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, 0.1, got.append)
        dog.start()
        Reactor(loop).call_later(0.01, time.sleep, 0.4)  # reactor.call_later
        d = Deferred[float]()
        d.add_callback(time.sleep)
        deadline = time.monotonic() + WAIT
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        loop.call_later(0.01, d.callback, 0.4)
        while len(got) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        dog.stop()
        got.append(Blocked(0.0, wd.Where(f"#{d._id}", "", 0)))

    asyncio.run(main())
    assert len(got) == 3
    deferred_id = got.pop().where.function
    assert [str(b.where) for b in got] == [
        "time.sleep, called by a timed call",
        f"time.sleep, called by Deferred {deferred_id}'s callback"]
    assert all(0.3 <= b.seconds <= 1.5 for b in got)


def test_one_turn_running_many_callbacks_is_told_apart_from_a_block():
    steps = 4
    entered = [threading.Event() for _ in range(steps)]
    release = [threading.Event() for _ in range(steps)]

    def step(i: int) -> None:
        entered[i].set()
        release[i].wait(WAIT)

    def schedule(loop: asyncio.AbstractEventLoop) -> None:
        for i in range(steps):
            loop.call_soon(step, i)

    def while_held(dog: Watchdog, clock: FakeClock, got: list[tuple[Blocked, bool]]) -> None:
        for i in range(steps):  # each callback sampled once: four Handles in four samples
            assert entered[i].wait(WAIT)
            clock.now += 0.15
            dog.poll()
            release[i].set()

    got = watch_by_hand(schedule, while_held)
    assert len(got) == 1
    blocked = got[0][0]
    assert blocked.busy and blocked.where.function == "step"
    assert blocked.calls >= steps  # the turn's callbacks, asyncio's count
    first, hint = blocked.message().splitlines()
    assert first.startswith(f"one turn of the loop ran {blocked.calls:,} callbacks for 0.6 s, "
                            "most often in step (")
    assert "call_later" in hint and "defer_to_thread" not in hint


def test_two_long_callbacks_in_one_turn_are_a_block_not_a_busy_turn():
    entered = [threading.Event() for _ in range(2)]
    release = [threading.Event() for _ in range(2)]

    def step(i: int) -> None:
        entered[i].set()
        release[i].wait(WAIT)

    def while_held(dog: Watchdog, clock: FakeClock, got: list[tuple[Blocked, bool]]) -> None:
        for i in range(2):  # 0.5 s each (sampled from 0.25 s on): two Handles, 8 samples
            assert entered[i].wait(WAIT)
            for _ in range(5):
                clock.now += 0.1
                dog.poll()
            release[i].set()

    got = watch_by_hand(lambda loop: [loop.call_soon(step, i) for i in range(2)], while_held)
    assert [(b.busy, b.where.function) for b, _ in got] == [(False, "step")]


def small(i: int) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < 0.00018:  # 0.18 ms of work
        pass


def test_three_thousand_short_calls_in_one_turn_are_a_busy_turn_with_the_real_thread():
    got: list[Blocked] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        dog = Watchdog(loop, 0.1, got.append)
        dog.start()
        for i in range(3000):
            loop.call_soon(small, i)
        deadline = time.monotonic() + WAIT
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        dog.stop()

    asyncio.run(main())
    assert len(got) == 1
    assert got[0].busy and got[0].where.function == "small" and got[0].calls >= 3000
    assert got[0].message().startswith("one turn of the loop ran 3,0")


def test_the_helper_refuses_what_is_not_true_or_false():
    helper = wd.make_helper({})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for value in (0, 1, "off"):
            with pytest.raises(TypeError, match=r"takes True \(on\) or False \(off\), not"):
                helper(value)
            assert wd.watchdog_on(loop) is None  # nothing done
        helper(True)
        with pytest.raises(TypeError):
            helper(0)
        assert wd.watchdog_on(loop) is not None  # still on
        wd.stop_watchdog(loop)

    asyncio.run(main())
