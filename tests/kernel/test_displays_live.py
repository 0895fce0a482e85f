"""Displays that change in place: ``watch(...)`` and the transfer progress bar in a notebook.

IPython's ``display(obj, display_id=True)`` is stood in for by :class:`Display`, which keeps
what was shown and each update; the refreshes run on a testing Clock, never on real time.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import netshell as ns
from netshell.kernel.displays import NotebookProgress, Watch, progress_html, watch
from netshell.shell import progress
from netshell.shell.display import connection_table
from netshell.testing import Clock, RecordingEcho, RecordingFactory, RecordingProtocol


class Handle:
    def __init__(self, shown: Any) -> None:
        self.shown = [shown]

    def update(self, obj: Any) -> None:
        self.shown.append(obj)


class Display:
    """IPython's display(), as watch() and the bar call it: keeps the handles it gave."""

    def __init__(self) -> None:
        self.handles: list[Handle] = []

    def __call__(self, obj: Any, display_id: bool = False) -> Handle:
        assert display_id is True  # updated in place, so it needs an id
        handle = Handle(obj)
        self.handles.append(handle)
        return handle


def html_rows(table: Any) -> int:
    root = ET.fromstring(table._repr_html_())
    body = root.find("tbody")
    return 0 if body is None else len(list(body))


# ---- watch


def test_watch_shows_once_then_refreshes_in_place_each_second_until_stopped() -> None:
    clock, display = Clock(), Display()
    calls = []

    def numbers() -> list[float]:
        calls.append(clock.seconds())
        return list(calls)

    w = watch(numbers, clock=clock, display=display)
    (handle,) = display.handles
    assert handle.shown == [[0.0]]
    clock.advance(0.5)
    assert len(handle.shown) == 1
    clock.advance(0.5)
    assert handle.shown[-1] == [0.0, 1.0]
    clock.advance(1)
    clock.advance(1)
    assert w.updates == 3 and len(handle.shown) == 4
    assert len(display.handles) == 1  # updated in place, never shown again
    w.stop()
    assert clock.calls == []
    clock.advance(10)
    assert len(handle.shown) == 4


async def test_watching_conns_shows_a_new_connection_at_the_next_refresh(
    reactor: ns.Reactor,
) -> None:
    clock, display = Clock(), Display()
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tcp(0, factory)

    def conns() -> Any:
        return connection_table(reactor.connections)

    w = watch(conns, clock=clock, display=display)
    (handle,) = display.handles
    assert html_rows(handle.shown[-1]) == 0
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol))
    await factory.accepted()
    assert len(handle.shown) == 1  # not before the next refresh
    clock.advance(1)
    assert html_rows(handle.shown[-1]) == 2  # the client and the accepted end
    w.stop()
    client.transport.close()
    await client.done
    await listener.close()


def test_the_watch_says_how_to_stop_it() -> None:
    clock = Clock()

    def conns() -> str:
        return "table"

    w = watch(conns, every=2, clock=clock, display=Display())
    assert repr(w).startswith("watching conns() every 2 s")
    assert ".stop()" in repr(w)
    w.stop()
    assert repr(w) == "watch of conns(): stopped"


def test_a_refresh_that_raises_is_logged_and_ends_the_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, display = Clock(), Display()
    answers: list[Any] = ["fine"]

    def flaky() -> Any:
        if not answers:
            raise RuntimeError("gone")
        return answers.pop()

    w = watch(flaky, clock=clock, display=display)
    with caplog.at_level(logging.ERROR, logger="netshell.kernel"):
        clock.advance(1)
    assert w.stopped
    assert clock.calls == []
    assert "watch(flaky()) stopped" in caplog.text


def test_watch_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="more than 0"):
        watch(list, every=0, clock=Clock(), display=Display())


def test_watch_defaults_to_the_reactor_and_ipythons_display(reactor: ns.Reactor) -> None:
    import IPython.display

    shown = Display()
    original = IPython.display.display
    IPython.display.display = shown  # type: ignore[assignment]
    try:
        w = watch(list)
    finally:
        IPython.display.display = original
    assert isinstance(w, Watch) and w.clock is ns.reactor
    assert len(shown.handles) == 1
    w.stop()


# ---- the progress bar in a notebook


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bar_of(obj: Any) -> tuple[str | None, str | None, str]:
    """(value, max, the amount's text) of a bar's HTML."""
    root = ET.fromstring(obj._repr_html_())
    (bar,) = root.iter("progress")
    amount = next(e for e in root.iter("span") if e.get("class") == "amount")
    return bar.get("value"), bar.get("max"), "".join(amount.itertext())


def test_the_bar_is_shown_once_and_updated_in_place_ten_times_a_second_at_most() -> None:
    ticks, display = Ticks(), Display()
    bar = NotebookProgress("GET http://x/file.bin", display=display, clock=ticks)
    bar(0, 2048)
    (handle,) = display.handles
    assert bar_of(handle.shown[-1]) == ("0", "2048", "0% 0 B / 2.0 KiB")
    ticks.now = 0.05
    bar(512, 2048)  # too soon: kept for later
    assert len(handle.shown) == 1
    ticks.now = 0.2
    bar(1024, 2048)
    assert bar_of(handle.shown[-1])[:2] == ("1024", "2048")
    ticks.now = 0.21
    bar(2048, 2048)  # the last state is always drawn
    assert bar_of(handle.shown[-1]) == ("2048", "2048", "100% 2.0 KiB / 2.0 KiB")
    bar.finish()
    assert len(handle.shown) == 3 and len(display.handles) == 1


def test_finish_draws_a_state_held_back() -> None:
    ticks, display = Ticks(), Display()
    bar = NotebookProgress("RETR a.txt", display=display, clock=ticks)
    bar(0, None)
    bar(700, None)  # too soon
    bar.finish()
    (handle,) = display.handles
    value, most, amount = bar_of(handle.shown[-1])
    assert (value, most, amount) == (None, None, "700 B")  # size unknown: no value, no max
    assert repr(handle.shown[-1]) == "RETR a.txt 700 B"  # the text, outside a notebook


def test_a_quick_transfer_leaves_no_bar() -> None:
    ticks, display = Ticks(), Display()
    bar = NotebookProgress("GET /", show_after=0.25, display=display, clock=ticks)
    bar(0, 10)
    ticks.now = 0.1
    bar(10, 10)
    bar.finish()
    assert display.handles == []


def test_a_hostile_label_is_text() -> None:
    root = ET.fromstring(progress_html("<script>x</script>", 1, 2))
    assert [e.tag for e in root.iter()] == ["div", "span", "progress", "span"]
    label = next(e for e in root.iter("span") if e.get("class") == "label")
    assert label.text == "<script>x</script>"


def fake_ipython(monkeypatch: pytest.MonkeyPatch, shell: Any) -> None:
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", module)


def test_in_a_kernel_the_shells_bar_is_the_notebook_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ipython(monkeypatch, types.SimpleNamespace(kernel=object()))
    assert progress.in_kernel()
    bar = progress.terminal_progress("GET http://x/")
    assert isinstance(bar, NotebookProgress)
    assert bar.show_after == progress.SHOW_AFTER


def test_in_a_terminal_ipython_it_is_no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ipython(monkeypatch, types.SimpleNamespace())  # TerminalInteractiveShell: no kernel
    assert not progress.in_kernel()
    fake_ipython(monkeypatch, None)  # IPython imported, no shell running
    assert not progress.in_kernel()


def test_asking_whether_in_a_kernel_imports_nothing() -> None:
    code = ("import sys; from netshell.shell import progress; "
            "print(progress.in_kernel(), 'IPython' in sys.modules, "
            "'netshell.kernel' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["False", "False", "False"]


# ---- what the review found: displays that raise, odd intervals, a cell run again, contexts


def test_a_display_that_raises_when_refreshed_is_logged_and_ends_the_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, display = Clock(), Display()

    class Broken:
        def _repr_html_(self) -> str:
            raise RuntimeError("cannot draw")

    w = watch(Broken, clock=clock, display=display)  # a class: called for each refresh
    with caplog.at_level(logging.ERROR, logger="netshell.kernel"):
        clock.advance(1)
    assert w.stopped and clock.calls == []
    assert "cannot draw" in caplog.text
    assert len(display.handles[0].shown) == 1  # nothing broken was put in the cell


@pytest.mark.parametrize("every", [float("nan"), float("inf"), -1.0])
def test_watch_refuses_an_interval_that_is_not_a_positive_number(every: float) -> None:
    with pytest.raises(ValueError, match="more than 0"):
        watch(list, every=every, clock=Clock(), display=Display())


def test_watching_the_same_thing_again_stops_the_earlier_watch() -> None:
    clock, display = Clock(), Display()

    def conns() -> str:
        return "table"

    first = watch(conns, clock=clock, display=display)
    other = watch(list, clock=clock, display=display)
    again = watch(conns, clock=clock, display=display)  # the cell, run a second time
    assert first.stopped and not again.stopped and not other.stopped
    clock.advance(1)
    assert len(display.handles[0].shown) == 1  # the first one no longer refreshes
    assert len(display.handles[2].shown) == 2
    again.stop()
    other.stop()


def test_the_bar_draws_in_the_context_of_the_code_that_started_the_transfer() -> None:
    import contextvars

    cell: contextvars.ContextVar[str] = contextvars.ContextVar("cell", default="none")
    seen: list[str] = []

    class Where(Display):
        def __call__(self, obj: Any, display_id: bool = False) -> Handle:
            seen.append(cell.get())
            handle = super().__call__(obj, display_id)
            handle.update = lambda obj: seen.append(cell.get())  # type: ignore[method-assign]
            return handle

    ticks = Ticks()

    def start() -> NotebookProgress:
        cell.set("cell 2")  # the cell that asked for the download
        return NotebookProgress("GET http://x/big", display=Where(), clock=ticks)

    bar = contextvars.copy_context().run(start)

    def bytes_arrive() -> None:  # the reused connection's data_received: cell 1's context
        cell.set("cell 1")
        bar(0, 100)
        ticks.now = 1
        bar(100, 100)

    contextvars.copy_context().run(bytes_arrive)
    assert seen == ["cell 2", "cell 2"]
