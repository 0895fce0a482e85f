"""Late failures: a chain that ends with a failure no errback handled is reported after a
grace, naming its input and its steps, once, and not logged again when collected.

Timed on netshell.testing's Clock: the grace passes when the test says so.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
from netshell import observe
from netshell.app.runner import RunOptions, run_source
from netshell.shell import chains, namespace
from netshell.shell.console import Console
from netshell.teach.late import LateFailures
from netshell.testing import Clock


class Reports:
    def __init__(self, clock: Clock, grace: float = 0.5, **kw: Any) -> None:
        self.texts: list[str] = []
        self.clock = clock
        self.late = LateFailures(self.texts.append, clock=clock, grace=grace, **kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reports(clock: Clock) -> Iterator[Reports]:
    r = Reports(clock, where=lambda f: "input [3]")
    chains.record()
    r.late.start()
    try:
        yield r
    finally:
        r.late.close()
        chains.stop_recording()


def boom(x: Any) -> Any:
    raise ZeroDivisionError("division by zero")


def failing(clock: Clock) -> ns.Deferred[Any]:
    """``sleep(1).add_callback(boom)``: fails one second from now."""
    return ns.sleep(1, clock=clock).add_callback(boom)


@pytest.fixture
def gc_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.ERROR, logger="netshell.defer")
    yield caplog


def collected_unhandled(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()
    return [r.getMessage() for r in caplog.records if "Unhandled error" in r.getMessage()]


# ---- reported, after the grace


def test_reported_when_the_grace_has_passed(reports: Reports, clock: Clock) -> None:
    d = failing(clock)
    clock.advance(1)  # the chain fails now
    clock.advance(0.49)
    assert reports.texts == []
    clock.advance(0.01)
    assert len(reports.texts) == 1
    lines = reports.texts[0].splitlines()
    assert lines[0] == (f"Unhandled error in Deferred #{d.number} (input [3]): "
                        "ZeroDivisionError: division by zero")
    assert lines[1] == ("  1. callback boom  got None, raised "
                        "ZeroDivisionError('division by zero')")
    assert lines[-1] == "  (no errback handled it within 0.5s; tb() shows where it was raised)"


def test_reported_once_and_never_logged_when_collected(
        reports: Reports, clock: Clock, gc_log: pytest.LogCaptureFixture) -> None:
    d = failing(clock)
    clock.advance(1.5)
    d.add_callback(str)  # the same failure passed on: its chain comes to rest again
    clock.advance(5)
    assert len(reports.texts) == 1
    del d
    assert collected_unhandled(gc_log) == []


def test_a_new_failure_of_the_same_chain_is_reported_too(reports: Reports,
                                                         clock: Clock) -> None:
    d = failing(clock)
    clock.advance(1.5)

    def again(f: Any) -> None:
        raise KeyError("again")

    d.add_errback(again)
    clock.advance(0.5)
    assert len(reports.texts) == 2 and "KeyError: 'again'" in reports.texts[1]


def test_a_deferred_nobody_holds_is_reported_all_the_same(reports: Reports,
                                                          clock: Clock) -> None:
    failing(clock)  # only the clock's timed call holds it, until it fires
    clock.advance(1)
    gc.collect()
    clock.advance(0.5)
    assert len(reports.texts) == 1


# ---- not reported


def test_rescued_within_the_grace(reports: Reports, clock: Clock,
                                  gc_log: pytest.LogCaptureFixture) -> None:
    d = failing(clock)
    clock.advance(1.3)
    d.add_errback(lambda f: "rescued")
    clock.advance(5)
    assert reports.texts == []
    assert d.result == "rescued"
    del d
    assert collected_unhandled(gc_log) == []


def test_a_grace_the_person_sets(reports: Reports, clock: Clock) -> None:
    reports.late.grace = 2
    d = failing(clock)
    clock.advance(2.9)
    assert reports.texts == []
    d.add_errback(lambda f: None)
    clock.advance(5)
    assert reports.texts == []
    failing(clock)
    clock.advance(3)
    assert len(reports.texts) == 1 and "within 2s" in reports.texts[0]


def test_a_failure_a_note_showed_is_not_reported(reports: Reports, clock: Clock) -> None:
    shown: list[str] = []
    notes = chains.Notes(shown.append)
    d = failing(clock)
    notes.watch(d)
    clock.advance(2)
    assert shown == [f"Deferred #{d.number} failed: ZeroDivisionError('division by zero')"]
    assert reports.texts == []
    notes.close()


async def test_a_failure_an_await_received_is_not_reported(reports: Reports,
                                                           clock: Clock) -> None:
    d = failing(clock)
    waiting = ns.ensure_deferred(_await(d))
    await asyncio.sleep(0)  # the task awaits d now
    clock.advance(2)
    await waiting
    clock.advance(2)
    assert reports.texts == []


async def _await(d: ns.Deferred[Any]) -> None:
    with pytest.raises(ZeroDivisionError):
        await d


def test_a_failure_handed_on_to_a_waiting_chain_is_reported_there(
        reports: Reports, clock: Clock) -> None:
    inner = failing(clock)
    outer = ns.succeed(1).add_callback(lambda _: inner)
    clock.advance(2)
    assert len(reports.texts) == 1
    assert reports.texts[0].startswith(f"Unhandled error in Deferred #{outer.number} ")


def test_off_leaves_it_to_the_log_when_collected(
        reports: Reports, clock: Clock, gc_log: pytest.LogCaptureFixture) -> None:
    reports.late.enabled = False
    d = failing(clock)
    clock.advance(5)
    assert reports.texts == []
    del d
    assert len(collected_unhandled(gc_log)) == 1


def test_stopped_with_recording(clock: Clock) -> None:
    r = Reports(clock)
    chains.follow_recording(r.late)
    try:
        assert r.late not in observe.observers()
        chains.record()
        assert r.late in observe.observers()
        chains.stop_recording()
        assert observe.observers() == ()
    finally:
        r.late.close()


# ---- the input's work


def test_held_while_its_input_runs_then_given_its_grace(clock: Clock) -> None:
    running: list[str | None] = ["input [3]"]
    r = Reports(clock, where=lambda f: "input [3]", busy=lambda: running[0])
    r.late.start()
    try:
        failing(clock)
        clock.advance(10)
        assert r.texts == []  # input 3 still runs
        running[0] = None
        r.late.input_done()
        clock.advance(0.4)
        assert r.texts == []
        clock.advance(0.1)
        assert len(r.texts) == 1
    finally:
        r.late.close()


def test_the_report_is_written_in_the_context_of_the_work(clock: Clock) -> None:
    cell: contextvars.ContextVar[int] = contextvars.ContextVar("cell", default=0)
    seen: list[tuple[int, str]] = []
    running: list[str | None] = [None]
    r = LateFailures(lambda text: seen.append((cell.get(), text)), clock=clock,
                     where=lambda f: f"cell [{cell.get()}]", busy=lambda: running[0])
    r.start()
    try:
        def in_cell(n: int) -> None:
            cell.set(n)
            failing(clock)  # its timer runs in this context

        contextvars.copy_context().run(in_cell, 4)
        clock.advance(1.5)
        assert [n for n, _ in seen] == [4]
        assert "(cell [4])" in seen[0][1]
        # Held while its cell runs, then timed again from elsewhere: still cell 5's.
        running[0] = "cell [5]"
        contextvars.copy_context().run(in_cell, 5)
        clock.advance(1.5)
        running[0] = None
        contextvars.copy_context().run(lambda: (cell.set(6), r.input_done()))
        clock.advance(0.5)
        assert [n for n, _ in seen] == [4, 5]
        assert "(cell [5])" in seen[1][1]
    finally:
        r.close()


async def test_at_a_console_it_names_the_input_and_keeps_the_error_for_tb(
        clock: Clock) -> None:
    shown: list[str] = []
    console = Console({"clock": clock}, out=shown.append)
    names = namespace.build(console)
    reported = names["_helpers"].late
    reported.clock = clock
    chains.record()
    try:
        await console.run("x = 1")
        await console.run("d = sleep(1, clock=clock).add_callback(lambda _: 1 / 0)")
        clock.advance(1.5)
        text = "\n".join(shown)
        assert "Unhandled error in Deferred" in text and "(input [2])" in text
        assert "1. callback <lambda> (line 1 of <netsh-2>)" in text
        assert isinstance(console.last_error, ZeroDivisionError)
        assert text.count("Unhandled error") == 1
    finally:
        chains.stop_recording()
        console.close()
    assert reported not in observe.observers()


async def test_a_deferred_shown_failed_at_a_console_is_seen_not_reported(
        clock: Clock) -> None:
    shown: list[str] = []
    console = Console({"clock": clock}, out=shown.append)
    names = namespace.build(console)
    names["_helpers"].late.clock = clock
    chains.record()
    try:
        await console.run("fail(ValueError('shown'))")  # <Deferred #n failed: ...>
        await console.run("d = fail(KeyError('held, not shown'))")
        clock.advance(1.5)
        text = "\n".join(shown)
        assert "failed: ValueError('shown')" in text
        assert text.count("Unhandled error") == 1 and "KeyError" in text.split(
            "Unhandled error")[1]
    finally:
        chains.stop_recording()
        console.close()


async def test_late_failures_sets_the_grace_and_says_so(clock: Clock) -> None:
    console = Console({}, out=lambda s: None)
    names = namespace.build(console)
    try:
        said = names["late_failures"](grace=2)
        assert "within 2s" in said and repr(said) == str(said)
        assert names["_helpers"].late.grace == 2
        assert "not reported" in names["late_failures"](False)
        assert names["_helpers"].late.enabled is False
        with pytest.raises(ValueError):
            names["late_failures"](grace=-1)
    finally:
        console.close()


# ---- netsh run


def test_netsh_run_reports_on_stderr_with_the_script_s_line(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "late.py"
    source = "x = 1\nd = succeed(1).add_callback(lambda _: 1 / 0)\nprint('done')\n"
    script.write_text(source)
    code = run_source(source, str(script), [str(script)], RunOptions(exit_when_done=True))
    out, err = capsys.readouterr()
    assert code == 0 and out == "done\n"
    assert err.count("Unhandled error in Deferred") == 1
    assert "(late.py, line 2): ZeroDivisionError: division by zero" in err
    assert "(no errback handled it before the script ended)" in err
    assert 'File "' + str(script) + '", line 2, in <lambda>' in err


def test_netsh_run_leaves_a_rescued_chain_alone(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "rescued.py"
    source = ("d = succeed(1).add_callback(lambda _: 1 / 0)\n"
              "d.add_errback(lambda f: None)\n")
    script.write_text(source)
    run_source(source, str(script), [str(script)], RunOptions(exit_when_done=True))
    assert "Unhandled" not in capsys.readouterr().err
