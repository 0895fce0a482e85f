"""explain(d) from recorded chain steps, and the notes printed when a shown Deferred fires.

Recording is an observer of the core (netshell.observe): the ``recording`` fixture turns
it on and always turns it off again, and the suite checks after every test that no
observer is left registered (tests/conftest.py).
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
from netshell import observe
from netshell.defer import Deferred
from netshell.failure import Failure
from netshell.shell import chains

ADDERS = ("add_callback", "add_errback", "add_both", "add_callbacks")


@pytest.fixture
def recording() -> Iterator[None]:
    chains.record()
    try:
        yield
    finally:
        chains.stop_recording()


@pytest.fixture
def notes(recording: None) -> tuple[chains.Notes, list[str]]:
    shown: list[str] = []
    return chains.Notes(shown.append), shown


def double(x: int) -> int:
    return x * 2


def boom(x: Any) -> Any:
    raise ValueError("bad")


def handle(f: Failure) -> str:
    return "handled"


def steps(d: Deferred[Any]) -> list[str]:
    """explain(d)'s step lines, without their indent."""
    return [line.strip() for line in chains.explain(d).splitlines()[1:]]


def head(d: Deferred[Any]) -> str:
    return chains.explain(d).splitlines()[0]


# ---- recording on and off


def test_record_registers_an_observer_and_patches_nothing() -> None:
    before = {name: Deferred.__dict__[name] for name in ADDERS}
    chains.record()
    try:
        assert chains.recording()
        assert len(observe.observers()) == 1
        assert observe.deferreds == observe.observers()
        assert {name: Deferred.__dict__[name] for name in ADDERS} == before
    finally:
        chains.stop_recording()
    assert observe.observers() == ()
    assert not chains.recording()


def test_record_twice_then_stop_once_leaves_no_observer() -> None:
    chains.record()
    chains.record()
    assert len(observe.observers()) == 1
    chains.stop_recording()
    assert observe.observers() == ()
    assert not chains.recording()


def test_steps_recorded_before_stop_keep_the_recorder_until_they_ran() -> None:
    chains.record()
    d: Deferred[int] = Deferred()
    d.add_callback(double)
    chains.stop_recording()
    assert not chains.recording()
    assert len(observe.observers()) == 1  # one recorded step has not run yet
    d.callback(3)
    assert observe.observers() == ()
    assert steps(d) == ["1. callback double  got 3, returned 6"]


def test_the_recorder_leaves_when_a_deferred_with_pending_steps_is_collected() -> None:
    chains.record()
    d: Deferred[int] = Deferred()
    d.add_callback(double)
    chains.stop_recording()
    assert len(observe.observers()) == 1
    del d
    gc.collect()
    assert observe.observers() == ()


def test_nothing_is_recorded_after_stop_recording() -> None:
    chains.record()
    chains.stop_recording()
    d: Deferred[int] = Deferred()
    d.add_callback(double)
    d.callback(1)
    assert steps(d) == ["(no callbacks recorded)"]
    assert d.result == 2


def test_what_was_recorded_stays_readable_after_stop_recording() -> None:
    chains.record()
    try:
        d: Deferred[int] = Deferred()
        d.add_callback(double)
    finally:
        chains.stop_recording()
    d.callback(4)
    assert steps(d) == ["1. callback double  got 4, returned 8"]


def test_recording_leaves_the_chain_results_alone(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double).add_callbacks(double, handle).add_both(double)
    d.add_callback(lambda x, y, z=0: x + y + z, 1, z=2)
    d.callback(1)
    assert d.result == 11


# ---- explain


def test_explain_a_callback_that_ran(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double)
    d.callback(21)
    assert head(d) == f"Deferred #{d.number} fired: 42"
    assert steps(d) == ["1. callback double  got 21, returned 42"]


def test_explain_an_errback_that_ran(recording: None) -> None:
    d: Deferred[str] = Deferred()
    d.add_errback(handle)
    d.errback(ValueError("x"))
    assert steps(d) == ["1. errback handle  got Failure(ValueError('x')), returned 'handled'"]
    assert head(d) == f"Deferred #{d.number} fired: 'handled'"


def test_explain_a_callback_passed_by_on_a_failure(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double).add_errback(handle)
    d.errback(ValueError("x"))
    assert steps(d)[0] == "1. callback double  passed by (the result was a Failure)"


def test_explain_an_errback_passed_by_on_a_value(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_errback(handle).add_callback(double)
    d.callback(3)
    assert steps(d) == [
        "1. errback handle  passed by (the result was a value)",
        "2. callback double  got 3, returned 6",
    ]


def test_explain_a_trailing_step_passed_by(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double).add_errback(handle)
    d.callback(1)
    assert steps(d)[-1] == "2. errback handle  passed by (the result was a value)"


def test_explain_a_step_that_raised(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(boom).add_callback(double)
    d.callback(1)
    assert head(d) == f"Deferred #{d.number} failed: ValueError('bad')"
    assert steps(d) == [
        "1. callback boom  got 1, raised ValueError('bad')",
        "2. callback double  passed by (the result was a Failure)",
    ]
    d.add_errback(lambda f: None)  # handled: not logged when collected


def test_explain_add_both_on_a_value(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_both(double)
    d.callback(5)
    assert steps(d) == ["1. both double  ran as callback: got 5, returned 10"]


def test_explain_add_both_on_a_failure(recording: None) -> None:
    d: Deferred[str] = Deferred()
    d.add_both(handle)
    d.errback(KeyError("k"))
    assert steps(d) == [
        "1. both handle  ran as errback: got Failure(KeyError('k')), returned 'handled'"
    ]


def test_explain_add_callbacks_says_which_of_the_pair_ran(recording: None) -> None:
    ok: Deferred[int] = Deferred()
    ok.add_callbacks(double, handle)
    ok.callback(2)
    bad: Deferred[int] = Deferred()
    bad.add_callbacks(double, handle)
    bad.errback(ValueError("x"))
    assert steps(ok) == ["1. callbacks double / handle  ran as callback: got 2, returned 4"]
    assert steps(bad) == [
        "1. callbacks double / handle  ran as errback: got Failure(ValueError('x')), "
        "returned 'handled'"
    ]


def test_explain_names_a_lambda_by_where_it_was_written(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(lambda x: x + 1)
    line = steps(d)[0]
    assert line.startswith("1. callback test_explain_names_a_lambda_by_where_it_was_written."
                           "<locals>.<lambda> (line ")
    assert f"of {__file__})" in line


def test_explain_a_chain_waiting_on_an_inner_deferred(recording: None) -> None:
    inner: Deferred[int] = Deferred()
    d: Deferred[int] = Deferred()
    d.add_callback(lambda _: inner).add_callback(double)
    d.callback(None)
    assert head(d) == f"Deferred #{d.number} waiting on #{inner.number}"
    lines = steps(d)
    assert lines[0].endswith(f"returned Deferred #{inner.number} (the chain waits on it)")
    assert lines[1] == "2. callback double  not run yet"
    assert lines[2] == f"now waiting on Deferred #{inner.number} (pending)"


def test_explain_after_the_inner_deferred_fired(recording: None) -> None:
    inner: Deferred[int] = Deferred()
    d: Deferred[int] = Deferred()
    d.add_callback(lambda _: inner).add_callback(double)
    d.callback(None)
    inner.callback(21)
    assert head(d) == f"Deferred #{d.number} fired: 42"
    assert steps(d)[1] == "2. callback double  got 21, returned 42"
    assert "now waiting" not in chains.explain(d)


def test_explain_an_unfired_deferred(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double).add_errback(handle)
    assert head(d) == f"Deferred #{d.number} pending"
    assert steps(d) == [
        "1. callback double  not run yet",
        "2. errback handle  not run yet",
        "now waiting to be fired",
    ]


def test_explain_a_deferred_with_no_steps(recording: None) -> None:
    d: Deferred[int] = Deferred()
    assert steps(d) == ["(no callbacks recorded)", "now waiting to be fired"]


def test_explain_steps_added_after_firing(recording: None) -> None:
    d = ns.succeed(3)
    d.add_callback(double)
    d.add_errback(handle)
    assert head(d) == f"Deferred #{d.number} fired: 6"
    assert steps(d) == [
        "1. callback double  got 3, returned 6",
        "2. errback handle  passed by (the result was a value)",
    ]


def test_explain_a_paused_deferred(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double)
    d.pause()
    d.callback(1)
    assert steps(d)[-2:] == ["1. callback double  not run yet", "now paused"]
    d.unpause()
    assert steps(d) == ["1. callback double  got 1, returned 2"]


def test_explain_takes_only_a_deferred() -> None:
    with pytest.raises(TypeError, match="explain\\(\\) takes a Deferred, not int"):
        chains.explain(7)  # type: ignore[arg-type]


def test_recording_does_not_keep_a_deferred_alive_through_its_callbacks(
    recording: None, caplog: pytest.LogCaptureFixture
) -> None:
    class Owner:
        """A protocol-like object whose own method is a step of its own Deferred."""

        def __init__(self) -> None:
            self.done: Deferred[None] = Deferred()
            self.done.add_callback(self.fails)

        def fails(self, _: Any) -> None:
            raise ValueError("nobody handles this")

    owner = Owner()
    owner.done.callback(None)
    gone = weakref.ref(owner.done)
    del owner
    with caplog.at_level(logging.ERROR, logger="netshell.defer"):
        gc.collect()
    assert gone() is None
    assert "Unhandled error in Deferred" in caplog.text  # errors are never silent


# ---- notes


def test_a_note_when_a_watched_deferred_fires(notes: tuple[chains.Notes, list[str]]) -> None:
    n, shown = notes
    d: Deferred[int] = Deferred()
    n.watch(d)
    assert shown == []
    d.callback(200)
    assert shown == [f"Deferred #{d.number} fired: 200"]
    assert not n.watching(d)


def test_the_note_shows_the_final_result_of_callbacks_added_after_watch(
    notes: tuple[chains.Notes, list[str]],
) -> None:
    n, shown = notes
    d: Deferred[int] = Deferred()
    n.watch(d)
    d.add_callback(double).add_callback(double)
    d.callback(5)
    assert shown == [f"Deferred #{d.number} fired: 20"]
    assert d.result == 20


def test_the_note_stays_last_while_the_chain_waits_on_an_inner_deferred(
    notes: tuple[chains.Notes, list[str]],
) -> None:
    n, shown = notes
    inner: Deferred[int] = Deferred()
    d: Deferred[int] = Deferred()
    d.add_callback(lambda _: inner)
    d.callback(None)
    n.watch(d)
    d.add_callback(double)  # added while the chain waits
    assert shown == []
    inner.callback(4)
    assert shown == [f"Deferred #{d.number} fired: 8"]


def test_a_failed_note(notes: tuple[chains.Notes, list[str]]) -> None:
    n, shown = notes
    d: Deferred[int] = Deferred()
    n.watch(d)
    d.errback(ConnectionRefusedError("no one there"))
    assert shown == [f"Deferred #{d.number} failed: ConnectionRefusedError('no one there')"]
    d.add_errback(lambda f: None)


def test_format_note() -> None:
    assert chains.format_note(7, 200) == "Deferred #7 fired: 200"
    assert chains.format_note(7, Failure(KeyError("k"))) == "Deferred #7 failed: KeyError('k')"


def test_disabled_notes_print_nothing(notes: tuple[chains.Notes, list[str]]) -> None:
    n, shown = notes
    n.enabled = False
    d: Deferred[int] = Deferred()
    n.watch(d)
    d.callback(1)
    assert shown == []
    assert d.result == 1


def test_watching_twice_gives_one_note(notes: tuple[chains.Notes, list[str]]) -> None:
    n, shown = notes
    d: Deferred[int] = Deferred()
    n.watch(d)
    n.watch(d)
    d.callback(1)
    assert shown == [f"Deferred #{d.number} fired: 1"]


def test_the_note_is_not_a_recorded_step(notes: tuple[chains.Notes, list[str]]) -> None:
    n, _ = notes
    d: Deferred[int] = Deferred()
    n.watch(d)
    d.add_callback(double)
    d.callback(1)
    assert steps(d) == ["1. callback double  got 1, returned 2"]


async def next_turn(reactor: ns.Reactor) -> None:
    """Wait until what was call_soon'ed before now has run."""
    turned: Deferred[None] = Deferred()
    reactor.call_soon(turned.callback, None)
    await turned


async def test_a_failure_shown_by_a_note_is_not_logged_as_unhandled(
    reactor: ns.Reactor,
    notes: tuple[chains.Notes, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    n, shown = notes
    d: Deferred[int] = Deferred()
    n.watch(d)
    d.errback(ValueError("seen at the prompt"))
    await next_turn(reactor)
    gone = weakref.ref(d)
    del d
    with caplog.at_level(logging.ERROR, logger="netshell.defer"):
        gc.collect()
    assert gone() is None
    assert len(shown) == 1 and "failed: ValueError('seen at the prompt')" in shown[0]
    assert "Unhandled error" not in caplog.text


async def test_a_failure_is_noted_even_with_notes_off(
    reactor: ns.Reactor,
    notes: tuple[chains.Notes, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # notify(False) quiets the "fired" notes, never an error: errors are not silent.
    n, shown = notes
    n.enabled = False
    d: Deferred[int] = Deferred()
    n.watch(d)
    d.errback(ValueError("still shown"))
    await next_turn(reactor)
    del d
    with caplog.at_level(logging.ERROR, logger="netshell.defer"):
        gc.collect()
    assert len(shown) == 1 and "failed: ValueError('still shown')" in shown[0]
    assert "Unhandled error" not in caplog.text  # shown once, not twice


async def test_explain_leaves_out_the_adapter_of_an_await(recording: None) -> None:
    d: Deferred[int] = Deferred()
    d.add_callback(double)
    future = d.as_future()
    d.callback(4)
    assert await future == 8
    assert steps(d) == ["1. callback double  got 4, returned 8"]
