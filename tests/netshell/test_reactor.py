"""The reactor: one per asyncio loop, timed calls, run/stop, shutdown hooks, what is live.

Nothing here waits on a real sleep to let something happen: a test either runs
the loop until the Deferred it cares about fires (``reactor.run_until``), or is
an ``async def`` test that awaits it. Where a short real timer is used, the
test waits for that timer's own event.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest

import netshell as ns
from netshell.reactor import (
    AlreadyCancelledError,
    DelayedCall,
    Reactor,
    ReactorAlreadyRunning,
    ReactorNotRestartable,
    ReactorNotRunning,
    get_reactor,
    install,
)

# ``netshell.reactor`` as an attribute is the proxy; the module is in sys.modules.
reactor_mod = importlib.import_module("netshell.reactor")
current_mod = importlib.import_module("netshell.current")

REPO = Path(__file__).resolve().parents[2]


# ---- helpers


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NETSHELL_LOOP", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=60,
        cwd=REPO,
    )


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line of the child's stdout, or "" if none came within ``timeout``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return ""
        chunk = os.read(fd, 1)
        if not chunk:
            return buf.decode()
        buf += chunk
    return buf.decode()


def _fire_later(r: Reactor, delay: float, value: object = None) -> ns.Deferred[object]:
    d: ns.Deferred[object] = ns.Deferred()
    r.call_later(delay, d.callback, value)
    return d


@pytest.fixture
def no_thread_reactor():
    """This thread starts with no installed reactor; whatever the test made is closed after."""
    saved = getattr(current_mod._local, "reactor", None)
    current_mod._local.reactor = None
    try:
        yield
    finally:
        current = getattr(current_mod._local, "reactor", None)
        if current is not None and not current.closed:
            current.close()
        current_mod._local.reactor = saved


# ---- nothing at import; one reactor per loop


def test_importing_netshell_creates_no_reactor_and_no_loop():
    result = _run_python(
        """
        import asyncio, gc, sys
        import netshell
        mod = sys.modules["netshell.reactor"]
        registry = sys.modules["netshell.current"]
        print("last", registry._last)
        print("installed", getattr(registry._local, "reactor", None))
        print("loop_set", asyncio.get_event_loop_policy()._local._loop)
        print("running", asyncio._get_running_loop())
        print("reactors", sum(isinstance(o, mod.Reactor) for o in gc.get_objects()))
        print("loops", sum(isinstance(o, asyncio.AbstractEventLoop) for o in gc.get_objects()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:6] == [
        "last None",
        "installed None",
        "loop_set None",
        "running None",
        "reactors 0",
        "loops 0",
    ]


def test_reactor_for_a_loop_that_has_one_raises_value_error(reactor):
    with pytest.raises(ValueError, match="has a reactor already"):
        Reactor(reactor.loop)


def test_reactor_adopts_a_loop_given_to_it():
    loop = asyncio.new_event_loop()
    try:
        r = Reactor(loop)
        assert r.loop is loop
        r.close()
        assert not loop.is_closed()
    finally:
        loop.close()


def test_closing_an_adopted_reactor_leaves_the_loop_open():
    loop = asyncio.new_event_loop()
    try:
        Reactor(loop).close()
        assert not loop.is_closed()
    finally:
        loop.close()


def test_reactor_made_without_a_loop_owns_a_new_one():
    r = Reactor()
    try:
        assert isinstance(r.loop, asyncio.AbstractEventLoop)
        assert not r.loop.is_running()
    finally:
        r.close()
    assert r.loop.is_closed()


def test_a_loop_whose_reactor_closed_can_have_a_new_one():
    loop = asyncio.new_event_loop()
    try:
        first = Reactor(loop)
        first.close()
        second = Reactor(loop)
        assert second is not first
        assert second.loop is loop
        second.close()
    finally:
        loop.close()


def test_get_reactor_inside_a_loop_gives_the_same_reactor_each_time():
    async def main():
        return get_reactor(), get_reactor()

    a, b = asyncio.run(main())
    assert a is b
    a.close()


def test_get_reactor_in_two_loops_gives_two_reactors():
    async def main():
        r = get_reactor()
        r.close()
        return r

    assert asyncio.run(main()) is not asyncio.run(main())


# ---- the proxy: netshell.reactor


def test_proxy_outside_a_loop_is_the_thread_installed_reactor(reactor):
    assert get_reactor() is reactor
    assert ns.reactor.loop is reactor.loop


def test_install_makes_a_reactor_the_threads_own(no_thread_reactor):
    r = Reactor()
    install(r)
    assert ns.reactor.loop is r.loop


def test_proxy_outside_a_loop_with_none_installed_makes_one(no_thread_reactor):
    made = get_reactor()
    assert isinstance(made, Reactor)
    assert get_reactor() is made


def test_proxy_inside_a_coroutine_is_the_running_loops_reactor(reactor):
    async def main():
        return ns.reactor.loop, asyncio.get_running_loop(), get_reactor()

    proxy_loop, running_loop, inner = asyncio.run(main())
    inner.close()
    assert proxy_loop is running_loop
    assert proxy_loop is not reactor.loop


async def test_proxy_in_an_async_test_is_the_fixture_reactor(reactor):
    assert ns.reactor.loop is asyncio.get_running_loop()
    assert get_reactor() is reactor


def test_proxy_is_thread_local(reactor):
    seen = []

    def other_thread():
        r = get_reactor()
        seen.append(r)
        r.close()

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(10)
    assert len(seen) == 1
    assert seen[0] is not reactor


def test_proxy_sets_attributes_on_the_current_reactor(reactor):
    ns.reactor.shutdown_timeout = 1.25
    assert reactor.shutdown_timeout == 1.25


def test_proxy_repr_is_the_current_reactors(reactor):
    assert repr(ns.reactor) == repr(reactor)


def test_reactor_inside_asyncio_run_adopts_asyncios_loop():
    async def main():
        r = get_reactor()
        try:
            return r.loop is asyncio.get_running_loop()
        finally:
            r.close()

    assert asyncio.run(main()) is True


def test_stop_inside_asyncio_run_does_not_close_asyncios_loop():
    async def main():
        loop = asyncio.get_running_loop()
        await get_reactor().stop()
        return loop.is_closed(), loop.is_running()

    assert asyncio.run(main()) == (False, True)


def test_stop_inside_asyncio_run_gives_a_fresh_reactor_on_the_same_loop():
    async def main():
        first = get_reactor()
        await first.stop()
        second = get_reactor()
        second.close()
        return first, second, asyncio.get_running_loop()

    first, second, loop = asyncio.run(main())
    assert first.closed
    assert second is not first
    assert second.loop is loop


# ---- run and stop


def test_run_returns_once_stop_is_called(no_thread_reactor):
    r = Reactor()
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    assert r.closed


def test_run_closes_the_loop_it_made(no_thread_reactor):
    r = Reactor()
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    assert r.loop.is_closed()


def test_run_with_signal_handlers_in_the_main_thread_returns_after_stop(no_thread_reactor):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    r = Reactor()
    r.call_soon(r.stop)
    r.run()
    assert r.closed
    assert r.exit_signal is None


def test_stop_deferred_has_fired_when_run_returns(no_thread_reactor):
    r = Reactor()
    stopped = []
    r.call_soon(lambda: stopped.append(r.stop()))
    r.run(install_signal_handlers=False)
    assert stopped[0].called


def test_running_is_true_only_while_run_runs(no_thread_reactor):
    r = Reactor()
    seen = []
    r.call_soon(lambda: (seen.append(r.running), r.stop()))
    assert not r.running
    r.run(install_signal_handlers=False)
    assert seen == [True]


def test_netshell_reactor_after_stop_is_a_fresh_one(no_thread_reactor):
    first = get_reactor()
    first.call_soon(first.stop)
    first.run(install_signal_handlers=False)
    second = get_reactor()
    assert second is not first
    assert not second.closed
    assert ns.reactor.loop is second.loop


def test_fresh_reactor_after_stop_runs_and_stops_again(no_thread_reactor):
    ran = []
    for _ in range(2):
        r = get_reactor()
        r.call_soon(ran.append, r)
        r.call_soon(r.stop)
        r.run(install_signal_handlers=False)
    assert len(ran) == 2
    assert ran[0] is not ran[1]
    assert all(r.closed for r in ran)


def test_run_on_a_stopped_reactor_raises_not_restartable(no_thread_reactor):
    r = Reactor()
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    with pytest.raises(ReactorNotRestartable):
        r.run(install_signal_handlers=False)


def test_stop_when_not_running_raises_not_running(reactor):
    with pytest.raises(ReactorNotRunning):
        reactor.stop()


async def test_run_while_the_loop_runs_raises_already_running(reactor):
    with pytest.raises(ReactorAlreadyRunning):
        reactor.run()


def test_run_in_a_thread_other_than_main_runs_and_stops(no_thread_reactor):
    r = Reactor()
    outcome = []

    def in_thread():
        try:
            r.run()  # no signal handlers outside the main thread; must not fail
            outcome.append("returned")
        except BaseException as e:
            outcome.append(e)

    r.call_soon(r.stop)
    t = threading.Thread(target=in_thread)
    t.start()
    t.join(30)
    assert outcome == ["returned"]
    assert r.closed


def _stop_in_run_until(r: Reactor) -> None:
    async def stop():
        await r.stop()

    r.run_until(stop(), timeout=5)


def test_stop_without_run_marks_the_reactor_stopped(no_thread_reactor):
    r = get_reactor()
    _stop_in_run_until(r)
    assert r.closed


def test_stop_without_run_closes_the_loop_once_run_until_returns(no_thread_reactor):
    r = get_reactor()
    _stop_in_run_until(r)
    assert r.loop.is_closed()


def test_netshell_reactor_after_stop_without_run_is_a_fresh_one(no_thread_reactor):
    r = get_reactor()
    _stop_in_run_until(r)
    assert get_reactor() is not r


def test_run_after_stop_without_run_raises_not_restartable(no_thread_reactor):
    r = get_reactor()
    _stop_in_run_until(r)
    if not r.loop.is_closed():
        r.call_later(5, r.loop.stop)  # were run() to start, it must not hang the suite
    with pytest.raises(ReactorNotRestartable):
        r.run(install_signal_handlers=False)


async def test_stop_in_an_async_test_gives_a_fresh_reactor_on_the_same_loop(reactor):
    await reactor.stop()
    fresh = get_reactor()
    assert fresh is not reactor
    assert fresh.loop is reactor.loop


def test_stop_twice_returns_the_same_deferred(no_thread_reactor):
    r = Reactor()
    both = []
    r.call_soon(lambda: both.extend([r.stop(), r.stop()]))
    r.run(install_signal_handlers=False)
    assert both[0] is both[1]


def test_stop_cancels_pending_timed_calls(no_thread_reactor):
    r = Reactor()
    later = r.call_later(3600, print, "never")
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    assert not later.active()
    assert r.delayed_calls == []


def test_run_sets_the_loop_as_asyncios_while_running(no_thread_reactor):
    r = Reactor()
    seen = []
    r.call_soon(lambda: (seen.append(asyncio.get_event_loop()), r.stop()))
    r.run(install_signal_handlers=False)
    assert seen == [r.loop]


def test_run_unsets_asyncios_loop_when_it_returns(no_thread_reactor):
    r = Reactor()
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    assert asyncio.get_event_loop_policy()._local._loop is None


# ---- signals (in a subprocess: the reactor must own the main thread)

_SIGNAL_SCRIPT = """
import signal, sys
import netshell as ns

r = ns.get_reactor()
r.on_shutdown(lambda: print("hook ran", flush=True))
r.call_soon(lambda: print("ready", flush=True))
r.run()
print("exit_signal", int(r.exit_signal) if r.exit_signal is not None else None, flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_a_running_reactor_gracefully(sig):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIGNAL_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    try:
        assert _read_line(proc, timeout=30) == "ready\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines() == ["hook ran", f"exit_signal {int(sig)}"]


_SECOND_SIGNAL_SCRIPT = """
import netshell as ns

r = ns.get_reactor()
r.shutdown_timeout = 3600

def hook():
    print("hook waiting", flush=True)
    return ns.Deferred()  # never fires: only a second signal ends the wait

r.on_shutdown(hook)
r.call_soon(lambda: print("ready", flush=True))
r.run()
print("exit_signal", int(r.exit_signal), flush=True)
"""


def test_second_signal_stops_at_once_while_hooks_wait():
    proc = subprocess.Popen(
        [sys.executable, "-c", _SECOND_SIGNAL_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    try:
        assert _read_line(proc, timeout=30) == "ready\n"
        proc.send_signal(signal.SIGINT)
        assert _read_line(proc, timeout=30) == "hook waiting\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"exit_signal {int(signal.SIGINT)}"]


# ---- the loop: asyncio or uvloop


def test_standard_loop_when_uvloop_not_asked_for(monkeypatch):
    monkeypatch.delenv("NETSHELL_LOOP", raising=False)
    r = Reactor()
    try:
        assert r.loop_name == "asyncio"
        assert type(r.loop).__module__.startswith("asyncio")
    finally:
        r.close()


def test_use_uvloop_gives_a_uvloop_loop():
    pytest.importorskip("uvloop")
    r = Reactor(use_uvloop=True)
    try:
        assert r.loop_name == "uvloop"
        assert type(r.loop).__module__.startswith("uvloop")
    finally:
        r.close()


def test_use_uvloop_false_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("NETSHELL_LOOP", "uvloop")
    r = Reactor(use_uvloop=False)
    try:
        assert r.loop_name == "asyncio"
    finally:
        r.close()


def test_netshell_loop_env_selects_uvloop():
    pytest.importorskip("uvloop")
    result = _run_python(
        """
        import netshell as ns
        r = ns.get_reactor()
        print(r.loop_name, type(r.loop).__module__.split(".")[0])
        """,
        NETSHELL_LOOP="uvloop",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "uvloop uvloop"


def test_uvloop_asked_for_but_missing_raises_runtime_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(RuntimeError, match=r"netshell\[fast\]"):
        Reactor(use_uvloop=True)


def test_uvloop_from_env_but_missing_raises_runtime_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)
    monkeypatch.setenv("NETSHELL_LOOP", "uvloop")
    with pytest.raises(RuntimeError, match=r"netshell\[fast\]"):
        Reactor()


def test_repr_names_uvloop():
    pytest.importorskip("uvloop")
    r = Reactor(use_uvloop=True)
    try:
        assert "uvloop" in repr(r)
    finally:
        r.close()


def test_adopted_uvloop_is_named_uvloop():
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        r = Reactor(loop)
        assert r.loop_name == "uvloop"
        r.close()
    finally:
        loop.close()


# ---- repr


def test_repr_names_the_loop_and_not_running(reactor):
    text = repr(reactor)
    assert "asyncio" in text
    assert "not running" in text


async def test_repr_says_running_while_the_loop_runs(reactor):
    assert ", running" in repr(reactor)


def test_repr_says_stopped_after_stop(no_thread_reactor):
    r = Reactor()
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    assert "stopped" in repr(r)


def test_repr_counts_timed_calls(reactor):
    reactor.call_later(60, print)
    reactor.call_later(61, print)
    assert "2 timed calls" in repr(reactor)


# ---- time


def test_seconds_is_the_loops_time(reactor):
    before = reactor.seconds()
    loop_now = reactor.loop.time()
    after = reactor.seconds()
    assert before <= loop_now <= after
    assert after - before < 1


def test_call_later_returns_a_delayed_call_due_at_now_plus_delay(reactor):
    before = reactor.seconds()
    dc = reactor.call_later(5, print)
    after = reactor.seconds()
    assert isinstance(dc, DelayedCall)
    assert before + 5 <= dc.time <= after + 5


def test_call_later_runs_calls_in_order_of_their_time(reactor):
    seen = []
    reactor.call_later(0.03, seen.append, "third")
    reactor.call_later(0.01, seen.append, "first")
    reactor.call_later(0.02, seen.append, "second")
    reactor.run_until(_fire_later(reactor, 0.04), timeout=5)
    assert seen == ["first", "second", "third"]


def test_call_later_passes_args_and_kwargs(reactor):
    done = ns.Deferred()
    reactor.call_later(0, lambda a, b, *, c: done.callback((a, b, c)), 1, 2, c=3)
    assert reactor.run_until(done, timeout=5) == (1, 2, 3)


def test_delayed_call_is_active_until_it_runs(reactor):
    dc = reactor.call_later(0, print, end="")
    assert dc.active()
    reactor.run_until(_fire_later(reactor, 0.01), timeout=5)
    assert not dc.active()
    assert dc.called


def test_cancel_prevents_the_call(reactor):
    seen = []
    dc = reactor.call_later(0.01, seen.append, "cancelled")
    dc.cancel()
    reactor.run_until(_fire_later(reactor, 0.02), timeout=5)
    assert seen == []
    assert not dc.active()
    assert dc.cancelled


def test_reset_moves_the_call(reactor):
    seen = []
    dc = reactor.call_later(3600, seen.append, "moved")
    marker = ns.Deferred()
    reactor.call_later(0.02, lambda: (seen.append("marker"), marker.callback(None)))
    dc.reset(0.01)
    reactor.run_until(marker, timeout=5)
    assert seen == ["moved", "marker"]


def test_reset_sets_time_from_now(reactor):
    dc = reactor.call_later(3600, print)
    before = reactor.seconds()
    dc.reset(2)
    after = reactor.seconds()
    assert before + 2 <= dc.time <= after + 2


def test_delay_pushes_the_call_back(reactor):
    seen = []
    dc = reactor.call_later(0.01, seen.append, "delayed")
    reactor.call_later(0.02, seen.append, "marker")
    done = ns.Deferred()
    reactor.call_later(0.04, done.callback, None)
    dc.delay(0.02)
    reactor.run_until(done, timeout=5)
    assert seen == ["marker", "delayed"]


def test_delay_adds_to_the_due_time(reactor):
    dc = reactor.call_later(10, print)
    due = dc.time
    dc.delay(5)
    assert dc.time == due + 5


@pytest.mark.parametrize(("method", "args"), [("cancel", ()), ("reset", (1,)), ("delay", (1,))])
def test_cancelled_call_refuses_with_already_cancelled(reactor, method, args):
    dc = reactor.call_later(10, print)
    dc.cancel()
    with pytest.raises(AlreadyCancelledError):
        getattr(dc, method)(*args)


@pytest.mark.parametrize(("method", "args"), [("cancel", ()), ("reset", (1,)), ("delay", (1,))])
def test_called_call_refuses_with_already_called(reactor, method, args):
    dc = reactor.call_later(0, lambda: None)
    reactor.run_until(_fire_later(reactor, 0.01), timeout=5)
    with pytest.raises(ns.AlreadyCalledError):
        getattr(dc, method)(*args)


def test_already_cancelled_error_is_exported():
    assert ns.AlreadyCancelledError is AlreadyCancelledError


def test_call_soon_runs_on_a_later_turn_not_at_once(reactor):
    seen = []
    reactor.call_soon(seen.append, "soon")
    assert seen == []
    reactor.run_until(_fire_later(reactor, 0), timeout=5)
    assert seen == ["soon"]


def test_call_soon_runs_calls_in_the_order_made(reactor):
    seen = []
    done = ns.Deferred()
    for i in range(5):
        reactor.call_soon(seen.append, i)
    reactor.call_soon(done.callback, None)
    reactor.run_until(done, timeout=5)
    assert seen == [0, 1, 2, 3, 4]


def test_call_soon_handle_can_be_cancelled(reactor):
    seen = []
    handle = reactor.call_soon(seen.append, "x")
    handle.cancel()
    reactor.run_until(_fire_later(reactor, 0), timeout=5)
    assert seen == []


def test_error_in_timed_call_is_logged_with_traceback(reactor, caplog):
    def explode():
        raise ValueError("kaboom")

    reactor.call_later(0, explode)
    with caplog.at_level(logging.ERROR, logger="netshell"):
        reactor.run_until(_fire_later(reactor, 0.01), timeout=5)
    records = [
        r
        for r in caplog.records
        if r.name.startswith("netshell") and r.exc_info and r.exc_info[0] is ValueError
    ]
    assert len(records) == 1
    assert "kaboom" in caplog.text
    assert "in explode" in caplog.text  # the traceback, naming the function


def test_error_in_timed_call_does_not_stop_later_calls(reactor, caplog):
    seen = []

    def explode():
        raise ValueError("kaboom")

    reactor.call_later(0, explode)
    reactor.call_later(0.01, seen.append, "after")
    with caplog.at_level(logging.CRITICAL + 1, logger="netshell"):
        reactor.run_until(_fire_later(reactor, 0.02), timeout=5)
    assert seen == ["after"]


def test_error_in_a_call_soon_callback_is_logged_under_netshell(reactor, caplog):
    def explode():
        raise ZeroDivisionError("in call_soon")

    reactor.call_soon(explode)
    with caplog.at_level(logging.ERROR, logger="netshell"):
        reactor.run_until(_fire_later(reactor, 0.01), timeout=5)
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]
    assert len(records) == 1
    assert records[0].name.startswith("netshell")


def test_delayed_call_repr_names_the_function_and_state(reactor):
    def tick():
        pass

    dc = reactor.call_later(10, tick)
    assert "tick" in repr(dc)
    dc.cancel()
    assert "cancelled" in repr(dc)


# ---- what is live: timed calls and Deferreds


def test_delayed_calls_lists_pending_calls_soonest_first(reactor):
    c = reactor.call_later(30, print)
    a = reactor.call_later(10, print)
    b = reactor.call_later(20, print)
    assert reactor.delayed_calls == [a, b, c]


def test_delayed_calls_drops_cancelled_calls(reactor):
    a = reactor.call_later(10, print)
    b = reactor.call_later(20, print)
    a.cancel()
    assert reactor.delayed_calls == [b]


def test_delayed_calls_drops_fired_calls(reactor):
    fired = reactor.call_later(0, lambda: None)
    waiting = reactor.call_later(60, print)
    reactor.run_until(_fire_later(reactor, 0.01), timeout=5)
    assert fired not in reactor.delayed_calls
    assert reactor.delayed_calls == [waiting]


def test_delayed_calls_follows_a_reset(reactor):
    a = reactor.call_later(10, print)
    b = reactor.call_later(20, print)
    a.reset(30)
    assert reactor.delayed_calls == [b, a]


def test_pending_deferreds_lists_an_unfired_deferred(reactor):
    d = ns.Deferred()
    assert d in reactor.pending_deferreds()


def test_pending_deferreds_omits_a_fired_deferred(reactor):
    d = ns.succeed(1)
    assert d not in reactor.pending_deferreds()


def test_pending_deferreds_lists_one_waiting_on_an_inner_deferred(reactor):
    inner = ns.Deferred()
    outer = ns.Deferred()
    outer.add_callback(lambda _: inner)
    outer.callback(None)
    assert outer.called
    assert outer.waiting_on is inner
    assert outer in reactor.pending_deferreds()


def test_pending_deferreds_are_in_order_of_creation(reactor):
    first, second = ns.Deferred(), ns.Deferred()
    found = [d for d in reactor.pending_deferreds() if d in (first, second)]
    assert found == [first, second]


def test_pending_deferreds_does_not_keep_a_deferred_alive(reactor):
    d = ns.Deferred()
    number = d.number
    assert number in [x.number for x in reactor.pending_deferreds()]
    ref = weakref.ref(d)
    del d
    gc.collect()
    assert ref() is None
    assert number not in [x.number for x in reactor.pending_deferreds()]


# ---- on_shutdown hooks


async def test_on_shutdown_hook_runs_on_stop(reactor):
    seen = []
    reactor.on_shutdown(seen.append, "hook")
    await reactor.stop()
    assert seen == ["hook"]


async def test_on_shutdown_hook_gets_args_and_kwargs(reactor):
    seen = []
    reactor.on_shutdown(lambda *a, **kw: seen.append((a, kw)), 1, 2, x=3)
    await reactor.stop()
    assert seen == [((1, 2), {"x": 3})]


async def test_on_shutdown_hooks_do_not_run_before_stop(reactor):
    seen = []
    reactor.on_shutdown(seen.append, "hook")
    await ns.sleep(0)
    assert seen == []


async def test_stop_waits_for_a_hooks_deferred(reactor):
    gate = ns.Deferred()
    reactor.on_shutdown(lambda: gate)
    stopping = reactor.stop()
    for _ in range(10):
        await asyncio.sleep(0)
    assert not stopping.called
    gate.callback(None)
    await stopping
    assert stopping.called


async def test_stop_waits_for_a_hooks_coroutine(reactor):
    seen = []

    async def hook():
        await ns.sleep(0)
        seen.append("hook done")

    reactor.on_shutdown(hook)
    await reactor.stop()
    assert seen == ["hook done"]


@pytest.mark.async_timeout(5)
async def test_shutdown_timeout_bounds_a_hook_that_never_fires(reactor, caplog):
    reactor.shutdown_timeout = 0.05
    reactor.on_shutdown(lambda: ns.Deferred())
    with caplog.at_level(logging.WARNING, logger="netshell"):
        await reactor.stop()
    assert reactor.stop().called


@pytest.mark.async_timeout(5)
async def test_shutdown_timeout_logs_a_warning(reactor, caplog):
    reactor.shutdown_timeout = 0.05
    reactor.on_shutdown(lambda: ns.Deferred())
    with caplog.at_level(logging.WARNING, logger="netshell"):
        await reactor.stop()
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("netshell")
    ]
    assert len(warnings) == 1
    assert "0.05" in warnings[0].getMessage()


@pytest.mark.async_timeout(5)
async def test_shutdown_timeout_warning_names_the_late_hook(reactor, caplog):
    reactor.shutdown_timeout = 0.05
    late = ns.Deferred()
    reactor.on_shutdown(lambda: late)
    with caplog.at_level(logging.WARNING, logger="netshell"):
        await reactor.stop()
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"#{late.number}" in warning.getMessage()


@pytest.mark.async_timeout(5)
async def test_shutdown_timeout_logs_no_error_for_the_late_hook(reactor, caplog):
    reactor.shutdown_timeout = 0.05
    reactor.on_shutdown(lambda: ns.Deferred())
    with caplog.at_level(logging.WARNING, logger="netshell"):
        await reactor.stop()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_error_in_a_hook_is_logged_with_traceback(reactor, caplog):
    def bad_hook():
        raise RuntimeError("hook broke")

    reactor.on_shutdown(bad_hook)
    with caplog.at_level(logging.ERROR, logger="netshell"):
        await reactor.stop()
    errors = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(errors) == 1
    assert errors[0].name.startswith("netshell")
    assert "in bad_hook" in caplog.text


@pytest.mark.parametrize("leaving", [SystemExit(130), KeyboardInterrupt()])
async def test_a_hook_interrupted_by_someone_leaving_is_no_error(reactor, caplog, leaving):
    # netsh run's second Ctrl-C raises SystemExit wherever the code is: in a hook too.
    ran = []

    def interrupted_hook():
        raise leaving

    reactor.on_shutdown(interrupted_hook)
    reactor.on_shutdown(ran.append, "the next hook")
    with caplog.at_level(logging.ERROR, logger="netshell"):
        await reactor.stop()
    assert ran == ["the next hook"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_error_in_a_hook_does_not_stop_the_other_hooks(reactor, caplog):
    seen = []

    def bad_hook():
        raise RuntimeError("hook broke")

    reactor.on_shutdown(seen.append, "before")
    reactor.on_shutdown(bad_hook)
    reactor.on_shutdown(seen.append, "after")
    with caplog.at_level(logging.CRITICAL + 1, logger="netshell"):
        await reactor.stop()
    assert seen == ["before", "after"]


async def test_failed_hook_deferred_does_not_fail_stop(reactor, caplog):
    reactor.on_shutdown(lambda: ns.fail(KeyError("late failure")))
    with caplog.at_level(logging.CRITICAL + 1, logger="netshell"):
        result = await reactor.stop()
    assert result is None


def test_hooks_run_when_run_is_stopped(no_thread_reactor):
    r = Reactor()
    seen = []
    r.on_shutdown(seen.append, "hook")
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    assert seen == ["hook"]


# ---- run_until


def test_run_until_returns_a_deferreds_result(reactor):
    assert reactor.run_until(_fire_later(reactor, 0, "value"), timeout=5) == "value"


def test_run_until_raises_a_deferreds_error(reactor):
    d = ns.Deferred()
    reactor.call_soon(d.errback, KeyError("missing"))
    with pytest.raises(KeyError, match="missing"):
        reactor.run_until(d, timeout=5)


def test_run_until_runs_a_coroutine(reactor):
    async def answer():
        await ns.sleep(0)
        return 42

    assert reactor.run_until(answer(), timeout=5) == 42


def test_run_until_timeout_raises_timeout_error(reactor):
    with pytest.raises(TimeoutError):
        reactor.run_until(ns.Deferred(), timeout=0.01)


def test_run_until_timeout_cancels_the_deferred(reactor):
    d = ns.Deferred()
    cancelled = []
    d.add_errback(lambda f: cancelled.append(f.check(ns.CancelledError)))
    with pytest.raises(TimeoutError):
        reactor.run_until(d, timeout=0.01)
    assert cancelled == [ns.CancelledError]


def test_run_until_leaves_the_reactor_usable(reactor):
    assert reactor.run_until(_fire_later(reactor, 0, 1), timeout=5) == 1
    assert reactor.run_until(_fire_later(reactor, 0, 2), timeout=5) == 2
    assert not reactor.closed


def test_run_until_on_a_stopped_reactor_raises_not_restartable(no_thread_reactor):
    r = Reactor()
    r.call_soon(r.stop)
    r.run(install_signal_handlers=False)
    with pytest.raises(ReactorNotRestartable):
        r.run_until(ns.Deferred(), timeout=1)


def test_a_finished_asyncio_run_leaves_neither_its_loop_nor_its_reactor_alive():
    import weakref

    refs = []

    async def main():
        refs.append(weakref.ref(asyncio.get_running_loop()))
        refs.append(weakref.ref(ns.get_reactor()))

    asyncio.run(main())
    gc.collect()
    assert [r() for r in refs] == [None, None]


def _in_a_fresh_thread(f):
    out = {}

    def run():
        try:
            out["value"] = f()
        except BaseException as e:  # handed to the test's thread
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_loop_set_for_the_thread_is_adopted_not_replaced():
    def check():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            r = get_reactor()
            # What asyncio code around us will run is that loop: a listener made now
            # must be served when it runs.
            return r.loop is loop, r is get_reactor()
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    assert _in_a_fresh_thread(check) == (True, True)


def test_without_a_loop_set_the_thread_gets_a_fresh_one():
    def check():
        r = get_reactor()
        try:
            return r.loop is not None and not r.loop.is_running()
        finally:
            r.close()

    assert _in_a_fresh_thread(check) is True


# ---- a timed call moved later keeps the loop's request and asks again when it comes


def test_a_call_reset_later_runs_at_its_last_time_and_leaves_one_timer_in_the_loop():
    r = Reactor(use_uvloop=False)
    ran: list[float] = []

    async def main() -> float:
        done = r.loop.create_future()
        call = r.call_later(0.02, lambda: (ran.append(r.seconds()), done.set_result(None)))
        for _ in range(1000):  # an idle timeout reset at every command
            call.reset(0.2)
        target = r.seconds() + 0.2
        assert len(r.loop._scheduled) == 1  # type: ignore[attr-defined]
        await done
        return target

    target = r.run_until(main())
    assert len(ran) == 1
    assert ran[0] >= target - 0.001  # not at the first 0.02 s


def test_a_call_moved_later_then_sooner_runs_at_the_sooner_time():
    r = Reactor(use_uvloop=False)
    ran: list[float] = []

    async def main() -> tuple[float, float]:
        done = r.loop.create_future()
        call = r.call_later(5.0, lambda: (ran.append(r.seconds()), done.set_result(None)))
        call.delay(10.0)  # later: kept lazily
        call.reset(0.05)  # then sooner: the loop is asked anew
        start = r.seconds()
        await done
        return start, call.time

    start, due = r.run_until(main())
    assert ran and start + 0.04 <= ran[0] < start + 4.0
    assert due == pytest.approx(start + 0.05, abs=0.01)
