"""Deferred: chain semantics, firing, pausing, cancelling, timeouts, repr, logging, debugging.

Each test pins one behaviour and is named for it. Time is virtual
(:class:`netshell.testing.Clock`); nothing here needs an event loop.
"""

from __future__ import annotations

import builtins
import gc
import itertools
import logging
import re
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netshell as ns
from netshell import Deferred, Failure
from netshell.testing import Clock, failure_result_of, no_result, success_result_of

# Every test runs twice: unobserved, and with an observer of every Deferred event
# (the two loops a chain can run through; tests/conftest.py).
pytestmark = pytest.mark.usefixtures("each_way_observed")

# ---- fixtures and helpers


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def debugging() -> Iterator[None]:
    ns.set_debugging(True)
    try:
        yield
    finally:
        ns.set_debugging(False)


class Boom(Exception):
    """An exception that carries a tag, so a test can tell failures apart."""

    def __init__(self, tag: Any = None) -> None:
        super().__init__(tag)
        self.tag = tag


def raise_boom(result: Any) -> Any:
    raise Boom("raised")


def record_into(seen: list[Any], label: str | None = None) -> Callable[[Any], Any]:
    """A pass-through step that records what it saw."""

    def record(result: Any) -> Any:
        seen.append(result if label is None else (label, result))
        return result

    return record


def handled(f: Failure) -> None:
    """An errback that swallows the failure (so it is not logged)."""
    return None


def unhandled_records(caplog: pytest.LogCaptureFixture, number: int) -> list[logging.LogRecord]:
    pattern = re.compile(rf"#{number}\b")
    return [
        r
        for r in caplog.records
        if "Unhandled error" in r.getMessage() and pattern.search(r.getMessage())
    ]


# ---- adding to the chain returns the Deferred


def test_add_callback_returns_the_deferred() -> None:
    d: Deferred[Any] = Deferred()
    assert d.add_callback(lambda r: r) is d


def test_add_errback_returns_the_deferred() -> None:
    d: Deferred[Any] = Deferred()
    assert d.add_errback(lambda f: f) is d


def test_add_both_returns_the_deferred() -> None:
    d: Deferred[Any] = Deferred()
    assert d.add_both(lambda r: r) is d


def test_add_callbacks_returns_the_deferred() -> None:
    d: Deferred[Any] = Deferred()
    assert d.add_callbacks(lambda r: r, lambda f: f) is d


# ---- values along the chain


def test_callback_receives_the_value_the_deferred_fired_with() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(seen.append)
    d.callback("hello")
    assert seen == ["hello"]


def test_callback_with_no_argument_fires_with_none() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(seen.append)
    d.callback()
    assert seen == [None]


def test_each_callback_result_feeds_the_next_callback() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda x: x + 1).add_callback(lambda x: x * 10).add_callback(str)
    d.callback(4)
    assert success_result_of(d) == "50"


def test_callbacks_run_in_the_order_they_were_added() -> None:
    order: list[int] = []
    d: Deferred[Any] = Deferred()
    for i in range(5):
        d.add_callback(lambda r, i=i: order.append(i))
    d.callback(None)
    assert order == [0, 1, 2, 3, 4]


def test_callbacks_do_not_run_before_the_deferred_fires() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(seen.append)
    assert seen == []


def test_callback_raising_switches_the_chain_to_the_errback_path() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(raise_boom).add_errback(seen.append)
    d.callback(1)
    assert len(seen) == 1
    assert isinstance(seen[0], Failure)
    assert isinstance(seen[0].value, Boom)


def test_callback_returning_a_failure_switches_the_chain_to_the_errback_path() -> None:
    failure = Failure(Boom("returned"))
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: failure).add_errback(seen.append)
    d.callback(1)
    assert seen == [failure]


def test_callbacks_are_skipped_on_the_errback_path() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(raise_boom).add_callback(seen.append).add_errback(handled)
    d.callback(1)
    assert seen == []


def test_errbacks_are_skipped_on_the_callback_path() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_errback(seen.append).add_callback(lambda r: r * 2)
    d.callback(21)
    assert seen == []
    assert success_result_of(d) == 42


def test_errback_receives_a_failure_wrapping_the_exception_raised() -> None:
    error = Boom("mine")

    def raise_it(result: Any) -> None:
        raise error

    seen: list[Failure] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(raise_it).add_errback(seen.append)
    d.callback(None)
    assert seen[0].value is error


def test_errback_failure_keeps_the_traceback_of_the_callback_that_raised() -> None:
    seen: list[Failure] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(raise_boom).add_errback(seen.append)
    d.callback(None)
    assert "raise_boom" in [fs.name for fs in traceback.extract_tb(seen[0].tb)]


def test_errback_returning_value_switches_back_to_callbacks() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(raise_boom).add_errback(lambda f: "recovered").add_callback(seen.append)
    d.callback(1)
    assert seen == ["recovered"]


def test_errback_raising_keeps_the_chain_on_the_errback_path_with_the_new_exception() -> None:
    def raise_key_error(f: Failure) -> None:
        raise KeyError("second")

    seen: list[Failure] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(raise_boom).add_errback(raise_key_error).add_errback(seen.append)
    d.callback(1)
    assert seen[0].type is KeyError


def test_errback_returning_the_failure_keeps_the_chain_on_the_errback_path() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_errback(lambda f: f).add_callback(seen.append).add_errback(seen.append)
    d.errback(Boom("kept"))
    assert len(seen) == 1
    assert isinstance(seen[0], Failure) and seen[0].value.tag == "kept"


def test_trap_in_an_errback_passes_an_unmatched_failure_on_down_the_errback_path() -> None:
    seen: list[Failure] = []
    d: Deferred[Any] = Deferred()
    d.add_errback(lambda f: f.trap(KeyError)).add_errback(seen.append)
    d.errback(Boom("not a key error"))
    assert seen[0].type is Boom


def test_trap_in_an_errback_lets_a_matched_failure_switch_back_to_callbacks() -> None:
    d: Deferred[Any] = Deferred()
    d.add_errback(lambda f: f.trap(Boom) and "trapped")
    d.errback(Boom())
    assert success_result_of(d) == "trapped"


def test_add_both_step_sees_a_value() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_both(seen.append)
    d.callback(3)
    assert seen == [3]


def test_add_both_step_sees_a_failure() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_both(seen.append)
    d.errback(Boom())
    assert isinstance(seen[0], Failure) and seen[0].type is Boom


def test_add_callbacks_runs_only_the_callback_for_a_value() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callbacks(record_into(seen, "cb"), record_into(seen, "eb"))
    d.callback(7)
    assert seen == [("cb", 7)]


def test_add_callbacks_runs_only_the_errback_for_a_failure() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callbacks(record_into(seen, "cb"), lambda f: seen.append(("eb", f.type)))
    d.errback(Boom())
    assert seen == [("eb", Boom)]


def test_add_callbacks_errback_does_not_see_a_failure_raised_by_its_own_callback() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callbacks(raise_boom, record_into(seen))
    d.callback(1)
    assert seen == []
    failure_result_of(d, Boom)


def test_add_callbacks_with_none_callback_passes_a_value_through() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callbacks(None, record_into(seen)).add_callback(lambda x: x + 1)
    d.callback(1)
    assert seen == []
    assert success_result_of(d) == 2


def test_add_callbacks_with_none_errback_passes_a_failure_through() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callbacks(record_into(seen), None).add_errback(lambda f: f.value.tag)
    d.errback(Boom("through"))
    assert seen == []
    assert success_result_of(d) == "through"


# ---- extra arguments


def test_add_callback_passes_extra_positional_arguments() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r, a, b: (r, a, b), "a", "b")
    d.callback("r")
    assert success_result_of(d) == ("r", "a", "b")


def test_add_callback_passes_extra_keyword_arguments() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r, *, key: (r, key), key="k")
    d.callback("r")
    assert success_result_of(d) == ("r", "k")


def test_add_errback_passes_extra_arguments() -> None:
    d: Deferred[Any] = Deferred()
    d.add_errback(lambda f, a, key: (f.type, a, key), "a", key="k")
    d.errback(Boom())
    assert success_result_of(d) == (Boom, "a", "k")


def test_add_both_passes_extra_arguments_to_a_value() -> None:
    d: Deferred[Any] = Deferred()
    d.add_both(lambda r, a, key: (r, a, key), "a", key="k")
    d.callback("r")
    assert success_result_of(d) == ("r", "a", "k")


def test_add_both_passes_extra_arguments_to_a_failure() -> None:
    d: Deferred[Any] = Deferred()
    d.add_both(lambda r, a, key: (r.type, a, key), "a", key="k")
    d.errback(Boom())
    assert success_result_of(d) == (Boom, "a", "k")


def test_add_callbacks_passes_callback_args_and_kwargs() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callbacks(
        lambda r, a, key: (r, a, key),
        lambda f: "wrong side",
        callback_args=("a",),
        callback_kwargs={"key": "k"},
    )
    d.callback("r")
    assert success_result_of(d) == ("r", "a", "k")


def test_add_callbacks_passes_callback_kwargs_alone() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callbacks(lambda r, *, key: (r, key), None, callback_kwargs={"key": "k"})
    d.callback("r")
    assert success_result_of(d) == ("r", "k")


def test_add_callbacks_passes_errback_args_and_kwargs() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callbacks(
        lambda r: "wrong side",
        lambda f, a, key: (f.type, a, key),
        errback_args=("a",),
        errback_kwargs={"key": "k"},
    )
    d.errback(Boom())
    assert success_result_of(d) == (Boom, "a", "k")


def test_add_callbacks_keeps_callback_args_away_from_the_errback() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callbacks(lambda r, a: "wrong side", lambda f: f.type, callback_args=("a",))
    d.errback(Boom())
    assert success_result_of(d) is Boom


# ---- adding steps after firing, and while running


def test_callback_added_after_firing_runs_at_once() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.callback(5)
    d.add_callback(seen.append)
    assert seen == [5]


def test_errback_added_after_failing_runs_at_once() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.errback(Boom())
    d.add_errback(seen.append)
    assert len(seen) == 1 and seen[0].type is Boom


def test_callback_added_after_firing_sees_the_result_of_the_chain_so_far() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda x: x * 3)
    d.callback(5)
    d.add_callback(lambda x: x + 1)
    assert success_result_of(d) == 16


def test_callback_added_inside_a_running_callback_runs_after_the_current_one_returns() -> None:
    events: list[str] = []
    d: Deferred[Any] = Deferred()

    def first(result: Any) -> Any:
        d.add_callback(lambda r: events.append("added"))
        events.append("first returning")
        return result

    d.add_callback(first)
    d.callback(None)
    assert events == ["first returning", "added"]


def test_callback_added_inside_a_running_callback_goes_to_the_end_of_the_chain() -> None:
    events: list[str] = []
    d: Deferred[Any] = Deferred()

    def first(result: Any) -> str:
        d.add_callback(lambda r: events.append(f"added saw {r}"))
        return "from first"

    d.add_callback(first)
    d.add_callback(lambda r: events.append(f"second saw {r}") or "from second")
    d.callback(None)
    assert events == ["second saw from first", "added saw from second"]


# ---- firing with a Failure or an exception


def test_errback_with_an_exception_wraps_it_in_a_failure() -> None:
    error = Boom("e")
    d: Deferred[Any] = Deferred()
    d.errback(error)
    f = failure_result_of(d)
    assert f.value is error


def test_errback_with_a_failure_passes_that_failure_down_the_chain() -> None:
    failure = Failure(Boom("f"))
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_errback(seen.append)
    d.errback(failure)
    assert seen[0] is failure


def test_errback_with_no_argument_inside_except_uses_the_current_exception() -> None:
    error = Boom("current")
    d: Deferred[Any] = Deferred()
    try:
        raise error
    except Boom:
        d.errback()
    assert failure_result_of(d).value is error


def test_firing_with_a_deferred_raises_type_error() -> None:
    d: Deferred[Any] = Deferred()
    with pytest.raises(TypeError):
        d.callback(Deferred())
    assert not d.called


# ---- inner Deferreds


def test_callback_returning_a_pending_deferred_pauses_the_outer_chain() -> None:
    seen: list[Any] = []
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner).add_callback(seen.append)
    outer.callback("ignored")
    assert seen == []
    no_result(outer)


def test_outer_chain_resumes_with_the_inner_value_when_the_inner_fires() -> None:
    seen: list[Any] = []
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner).add_callback(seen.append)
    outer.callback("ignored")
    inner.callback("from inner")
    assert seen == ["from inner"]


def test_inner_failure_flows_on_in_the_outer_errback_path() -> None:
    seen: list[Any] = []
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner).add_callback(seen.append).add_errback(seen.append)
    outer.callback(None)
    inner.errback(Boom("inner"))
    assert len(seen) == 1
    assert isinstance(seen[0], Failure) and seen[0].value.tag == "inner"


def test_inner_result_becomes_none_once_passed_to_the_outer() -> None:
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    inner.callback("moved")
    assert inner.result is None
    assert outer.result == "moved"


def test_inner_failure_becomes_none_once_passed_to_the_outer() -> None:
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner).add_errback(handled)
    outer.callback(None)
    inner.errback(Boom())
    assert inner.result is None


def test_callback_added_to_the_inner_after_it_passed_its_result_sees_none() -> None:
    seen: list[Any] = []
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    inner.callback("moved")
    inner.add_callback(seen.append)
    assert seen == [None]


def test_callback_returning_an_already_fired_deferred_takes_its_result_directly() -> None:
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: ns.succeed("ready")).add_callback(lambda r: r + "!")
    outer.callback(None)
    assert outer.waiting_on is None
    assert success_result_of(outer) == "ready!"


def test_callback_returning_an_already_failed_deferred_takes_its_failure_directly() -> None:
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: ns.fail(Boom("early")))
    outer.callback(None)
    assert failure_result_of(outer, Boom).value.tag == "early"


def test_already_fired_inner_result_becomes_none_once_taken() -> None:
    inner = ns.succeed("taken")
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    assert inner.result is None


def test_callback_returning_a_fired_but_paused_deferred_waits_for_its_unpause() -> None:
    inner: Deferred[Any] = Deferred()
    inner.pause()
    inner.callback("held")
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    no_result(outer)
    inner.unpause()
    assert success_result_of(outer) == "held"


def test_inner_deferred_can_itself_wait_on_another_deferred() -> None:
    innermost: Deferred[Any] = Deferred()
    middle: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    middle.add_callback(lambda r: innermost)
    outer.add_callback(lambda r: middle)
    outer.callback(None)
    middle.callback(None)
    innermost.callback("deep")
    assert success_result_of(outer) == "deep"


def test_callback_returning_its_own_deferred_fails_the_chain_with_type_error() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda r: d)
    d.callback(None)
    assert failure_result_of(d, TypeError)


def test_waiting_on_is_the_inner_deferred_while_the_chain_waits_for_it() -> None:
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    assert outer.waiting_on is inner


def test_waiting_on_is_none_once_the_inner_has_fired() -> None:
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    inner.callback(1)
    assert outer.waiting_on is None


def test_waiting_on_is_none_for_a_pending_deferred() -> None:
    assert Deferred().waiting_on is None


def test_waiting_on_is_none_for_a_fired_deferred() -> None:
    assert ns.succeed(1).waiting_on is None


CHAIN_LENGTH = 10_000


def test_ten_thousand_deferreds_each_waiting_on_the_next_deliver_the_innermost_value() -> None:
    # ds[i]'s callback returns ds[i + 1]; fired outermost first, so every one
    # waits on the next, then the innermost fires and its value must climb
    # back up through all of them.
    ds: list[Deferred[Any]] = [Deferred() for _ in range(CHAIN_LENGTH)]
    for here, nxt in itertools.pairwise(ds):
        here.add_callback(lambda r, nxt=nxt: nxt)
    for d in ds[:-1]:
        d.callback(None)
    assert ds[0].waiting_on is ds[1]
    ds[-1].callback("bottom")
    assert success_result_of(ds[0]) == "bottom"


def test_ten_thousand_deferreds_linked_innermost_first_deliver_the_innermost_value() -> None:
    # The same chain, linked in the other direction: the Deferreds are fired
    # innermost-but-one first, so each new link is made onto a Deferred that
    # is already waiting on another.
    ds: list[Deferred[Any]] = [Deferred() for _ in range(CHAIN_LENGTH)]
    for here, nxt in itertools.pairwise(ds):
        here.add_callback(lambda r, nxt=nxt: nxt)
    for d in reversed(ds[:-1]):
        d.callback(None)
    ds[-1].callback("bottom")
    assert success_result_of(ds[0]) == "bottom"


def test_ten_thousand_nested_deferreds_deliver_the_innermost_failure() -> None:
    ds: list[Deferred[Any]] = [Deferred() for _ in range(CHAIN_LENGTH)]
    for here, nxt in itertools.pairwise(ds):
        here.add_callback(lambda r, nxt=nxt: nxt)
    for d in ds[:-1]:
        d.callback(None)
    ds[-1].errback(Boom("bottom"))
    assert failure_result_of(ds[0], Boom).value.tag == "bottom"


def test_ten_thousand_callbacks_each_returning_a_fired_deferred_run_without_recursion() -> None:
    d: Deferred[Any] = Deferred()
    for _ in range(CHAIN_LENGTH):
        d.add_callback(lambda x: ns.succeed(x + 1))
    d.callback(0)
    assert success_result_of(d) == CHAIN_LENGTH


def test_ten_thousand_deferreds_each_returning_a_new_pending_one_fired_later() -> None:
    # Each callback creates and returns a fresh unfired Deferred; firing them
    # one by one walks the chain forward.
    made: list[Deferred[Any]] = []

    def next_link(result: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        made.append(d)
        return d

    outer: Deferred[Any] = Deferred()
    for _ in range(CHAIN_LENGTH):
        outer.add_callback(next_link)
    outer.callback(None)
    i = 0
    while i < len(made):
        made[i].callback(i)
        i += 1
    assert len(made) == CHAIN_LENGTH
    assert success_result_of(outer) == CHAIN_LENGTH - 1


# ---- pause and unpause


def test_paused_is_zero_for_a_new_deferred() -> None:
    assert Deferred().paused == 0


def test_pause_counts_up_and_unpause_counts_down() -> None:
    d: Deferred[Any] = Deferred()
    d.pause()
    d.pause()
    after_two = d.paused
    d.unpause()
    assert (after_two, d.paused) == (2, 1)


def test_callbacks_do_not_run_while_paused() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(seen.append)
    d.pause()
    d.callback(1)
    assert seen == []


def test_callbacks_run_on_unpause() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(seen.append)
    d.pause()
    d.callback(1)
    d.unpause()
    assert seen == [1]


def test_callback_added_to_a_fired_paused_deferred_waits_for_unpause() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.callback(1)
    d.pause()
    d.add_callback(seen.append)
    assert seen == []
    d.unpause()
    assert seen == [1]


def test_callbacks_wait_until_every_pause_is_undone() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(seen.append)
    d.pause()
    d.pause()
    d.callback(1)
    d.unpause()
    assert seen == []
    d.unpause()
    assert seen == [1]


def test_pause_inside_a_callback_holds_the_rest_of_the_chain_until_unpause() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()

    def pause_here(result: Any) -> Any:
        d.pause()
        return result + 1

    d.add_callback(pause_here).add_callback(seen.append)
    d.callback(1)
    assert seen == []
    d.unpause()
    assert seen == [2]


def test_unpause_before_firing_does_not_run_callbacks() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_callback(seen.append)
    d.pause()
    d.unpause()
    assert seen == []
    assert not d.called


# ---- state


def test_called_is_false_before_firing() -> None:
    assert Deferred().called is False


def test_called_is_true_after_callback() -> None:
    d: Deferred[Any] = Deferred()
    d.callback(None)
    assert d.called is True


def test_called_is_true_after_errback() -> None:
    d: Deferred[Any] = Deferred()
    d.errback(Boom())
    d.add_errback(handled)
    assert d.called is True


def test_result_raises_attribute_error_before_firing() -> None:
    d: Deferred[Any] = Deferred()
    with pytest.raises(AttributeError):
        d.result  # noqa: B018


def test_result_is_the_value_fired_with_when_there_are_no_callbacks() -> None:
    d: Deferred[Any] = Deferred()
    d.callback([1, 2])
    assert d.result == [1, 2]


def test_result_is_the_output_of_the_last_callback() -> None:
    d: Deferred[Any] = Deferred()
    d.add_callback(lambda x: x * 2)
    d.callback(21)
    assert d.result == 42


def test_result_is_a_failure_after_errback() -> None:
    d: Deferred[Any] = Deferred()
    d.errback(Boom("r"))
    result = d.result
    d.add_errback(handled)
    assert isinstance(result, Failure) and result.value.tag == "r"


def test_number_is_an_int_that_increases_in_creation_order() -> None:
    first: Deferred[Any] = Deferred()
    second: Deferred[Any] = Deferred()
    third = ns.succeed(None)
    assert isinstance(first.number, int)
    assert first.number < second.number < third.number


def test_number_stays_the_same_through_the_life_of_the_deferred() -> None:
    d: Deferred[Any] = Deferred()
    before = d.number
    Deferred()
    d.add_callback(lambda r: r)
    d.callback(1)
    assert d.number == before


def test_numbers_of_deferreds_are_unique() -> None:
    ds = [Deferred() for _ in range(100)]
    assert len({d.number for d in ds}) == 100


# ---- firing twice


def test_callback_after_callback_raises_already_called_error() -> None:
    d: Deferred[Any] = Deferred()
    d.callback(1)
    with pytest.raises(ns.AlreadyCalledError):
        d.callback(2)


def test_errback_after_callback_raises_already_called_error() -> None:
    d: Deferred[Any] = Deferred()
    d.callback(1)
    with pytest.raises(ns.AlreadyCalledError):
        d.errback(Boom())


def test_callback_after_errback_raises_already_called_error() -> None:
    d: Deferred[Any] = Deferred()
    d.errback(Boom())
    d.add_errback(handled)
    with pytest.raises(ns.AlreadyCalledError):
        d.callback(2)


def test_errback_after_errback_raises_already_called_error() -> None:
    d: Deferred[Any] = Deferred()
    d.errback(Boom())
    d.add_errback(handled)
    with pytest.raises(ns.AlreadyCalledError):
        d.errback(Boom())


def test_firing_twice_keeps_the_first_result() -> None:
    d: Deferred[Any] = Deferred()
    d.callback("first")
    with pytest.raises(ns.AlreadyCalledError):
        d.callback("second")
    assert d.result == "first"


def test_firing_twice_does_not_run_the_chain_again() -> None:
    seen: list[Any] = []
    d: Deferred[Any] = Deferred()
    d.add_both(seen.append)
    d.callback("first")
    with pytest.raises(ns.AlreadyCalledError):
        d.errback(Boom())
    assert seen == ["first"]


def _make_a_deferred_here() -> Deferred[Any]:
    return Deferred()


def _fire_it_here(d: Deferred[Any]) -> None:
    d.callback("first")


def _already_called_message(d: Deferred[Any]) -> str:
    with pytest.raises(ns.AlreadyCalledError) as info:
        d.callback("again")
    return str(info.value)


def test_already_called_error_with_debugging_says_where_created_and_first_fired(
    debugging: None,
) -> None:
    d: Deferred[Any] = Deferred()
    d.callback(1)
    message = _already_called_message(d)
    assert "Created at" in message
    assert "First fired at" in message
    assert __file__ in message


def test_already_called_error_with_debugging_names_the_function_that_created_it(
    debugging: None,
) -> None:
    d = _make_a_deferred_here()
    d.callback(1)
    message = _already_called_message(d)
    created = message.split("Created at", 1)[1].split("First fired at", 1)[0]
    assert "in _make_a_deferred_here" in created


def test_already_called_error_with_debugging_names_the_test_that_created_it(
    debugging: None,
) -> None:
    d: Deferred[Any] = Deferred()
    d.callback(1)
    message = _already_called_message(d)
    created = message.split("Created at", 1)[1].split("First fired at", 1)[0]
    assert __file__ in created
    assert "in test_already_called_error_with_debugging_names_the_test_that_created_it" in created


def test_already_called_error_with_debugging_names_the_function_that_first_fired_it(
    debugging: None,
) -> None:
    d: Deferred[Any] = Deferred()
    _fire_it_here(d)
    message = _already_called_message(d)
    fired = message.split("First fired at", 1)[1]
    assert "in _fire_it_here" in fired


def test_already_called_error_with_debugging_names_where_an_errback_first_fired_it(
    debugging: None,
) -> None:
    def fail_it_here(d: Deferred[Any]) -> None:
        d.errback(Boom())

    d: Deferred[Any] = Deferred()
    fail_it_here(d)
    d.add_errback(handled)
    message = _already_called_message(d)
    fired = message.split("First fired at", 1)[1]
    assert "in fail_it_here" in fired


def test_already_called_error_with_debugging_names_where_succeed_made_it(
    debugging: None,
) -> None:
    d = ns.succeed("ready")
    message = _already_called_message(d)
    fired = message.split("First fired at", 1)[1]
    assert "in test_already_called_error_with_debugging_names_where_succeed_made_it" in fired


# ---- cancel


def test_cancel_calls_the_canceller_with_the_deferred() -> None:
    called_with: list[Any] = []
    d: Deferred[Any] = Deferred(called_with.append)
    d.cancel()
    d.add_errback(handled)
    assert called_with == [d]


def test_cancel_calls_the_canceller_only_once() -> None:
    called_with: list[Any] = []
    d: Deferred[Any] = Deferred(called_with.append)
    d.cancel()
    d.cancel()
    d.add_errback(handled)
    assert len(called_with) == 1


def test_cancel_from_inside_the_canceller_does_not_call_the_canceller_again() -> None:
    calls: list[Deferred[Any]] = []

    def canceller(d: Deferred[Any]) -> None:
        calls.append(d)
        d.cancel()

    d: Deferred[Any] = Deferred(canceller)
    d.cancel()
    assert calls == [d]
    failure_result_of(d, ns.CancelledError)


def test_cancel_errbacks_with_cancelled_error_when_the_canceller_did_not_fire_it() -> None:
    d: Deferred[Any] = Deferred(lambda d: None)
    d.cancel()
    failure_result_of(d, ns.CancelledError)


def test_cancel_without_a_canceller_errbacks_with_cancelled_error() -> None:
    d: Deferred[Any] = Deferred()
    d.cancel()
    failure_result_of(d, ns.CancelledError)


def test_cancelled_error_is_asyncio_cancelled_error() -> None:
    import asyncio

    assert ns.CancelledError is asyncio.CancelledError


def test_canceller_that_fires_the_deferred_with_a_value_prevents_cancelled_error() -> None:
    d: Deferred[Any] = Deferred(lambda d: d.callback("stopped cleanly"))
    d.cancel()
    assert success_result_of(d) == "stopped cleanly"


def test_canceller_that_errbacks_the_deferred_keeps_its_own_failure() -> None:
    d: Deferred[Any] = Deferred(lambda d: d.errback(Boom("own")))
    d.cancel()
    assert failure_result_of(d, Boom).value.tag == "own"


def test_canceller_that_raises_fails_the_deferred_with_that_exception() -> None:
    def bad_canceller(d: Deferred[Any]) -> None:
        raise Boom("from canceller")

    d: Deferred[Any] = Deferred(bad_canceller)
    d.cancel()
    assert failure_result_of(d, Boom).value.tag == "from canceller"


def test_cancel_after_firing_does_nothing() -> None:
    called: list[Any] = []
    d: Deferred[Any] = Deferred(called.append)
    d.callback("done")
    d.cancel()
    assert called == []
    assert success_result_of(d) == "done"


def test_cancel_without_a_canceller_swallows_one_late_callback() -> None:
    d: Deferred[Any] = Deferred()
    d.cancel()
    d.callback("late")
    failure_result_of(d, ns.CancelledError)


def test_cancel_without_a_canceller_swallows_one_late_errback() -> None:
    d: Deferred[Any] = Deferred()
    d.cancel()
    d.errback(Boom("late"))
    failure_result_of(d, ns.CancelledError)


def test_second_late_callback_after_cancel_raises_already_called_error() -> None:
    d: Deferred[Any] = Deferred()
    d.cancel()
    d.callback("late")
    with pytest.raises(ns.AlreadyCalledError):
        d.callback("later")
    d.add_errback(handled)


def test_second_late_errback_after_cancel_raises_already_called_error() -> None:
    d: Deferred[Any] = Deferred()
    d.cancel()
    d.errback(Boom("late"))
    with pytest.raises(ns.AlreadyCalledError):
        d.errback(Boom("later"))
    d.add_errback(handled)


def test_cancel_of_a_deferred_waiting_on_an_inner_one_cancels_the_inner_one() -> None:
    cancelled: list[Any] = []
    inner: Deferred[Any] = Deferred(cancelled.append)
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner).add_errback(handled)
    outer.callback(None)
    outer.cancel()
    assert cancelled == [inner]


def test_cancel_of_a_deferred_waiting_on_an_inner_one_fails_it_with_cancelled_error() -> None:
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    outer.cancel()
    failure_result_of(outer, ns.CancelledError)


def test_cancel_of_a_deferred_waiting_on_an_inner_one_uses_the_inner_cancellers_result() -> None:
    inner: Deferred[Any] = Deferred(lambda d: d.callback("inner stopped"))
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    outer.cancel()
    assert success_result_of(outer) == "inner stopped"


# ---- timeouts


def test_add_timeout_returns_the_deferred(clock: Clock) -> None:
    d: Deferred[Any] = Deferred()
    assert d.add_timeout(5, clock=clock) is d
    d.callback(None)


def test_timeout_errbacks_with_netshell_timeout_error_when_time_runs_out(clock: Clock) -> None:
    d: Deferred[Any] = Deferred()
    d.add_timeout(5, clock=clock)
    clock.advance(5)
    failure_result_of(d, ns.TimeoutError)


def test_netshell_timeout_error_is_a_builtin_timeout_error() -> None:
    assert issubclass(ns.TimeoutError, builtins.TimeoutError)


def test_timeout_failure_can_be_trapped_as_the_builtin_timeout_error(clock: Clock) -> None:
    d: Deferred[Any] = Deferred()
    d.add_timeout(1, clock=clock)
    clock.advance(1)
    assert failure_result_of(d).trap(builtins.TimeoutError) is builtins.TimeoutError


def test_timeout_does_not_fire_before_the_time_is_up(clock: Clock) -> None:
    d: Deferred[Any] = Deferred()
    d.add_timeout(5, clock=clock)
    clock.advance(4.999)
    no_result(d)
    d.callback(None)


def test_timeout_calls_the_canceller(clock: Clock) -> None:
    cancelled: list[Any] = []
    d: Deferred[Any] = Deferred(cancelled.append)
    d.add_timeout(2, clock=clock)
    clock.advance(2)
    d.add_errback(handled)
    assert cancelled == [d]


def test_firing_before_the_timeout_cancels_its_timer(clock: Clock) -> None:
    d: Deferred[Any] = Deferred()
    d.add_timeout(5, clock=clock)
    assert len(clock.calls) == 1
    d.callback("in time")
    assert clock.calls == []


def test_firing_before_the_timeout_keeps_the_value(clock: Clock) -> None:
    d: Deferred[Any] = Deferred()
    d.add_timeout(5, clock=clock)
    d.callback("in time")
    clock.advance(10)
    assert success_result_of(d) == "in time"


def test_failing_before_the_timeout_keeps_the_failure_and_cancels_the_timer(
    clock: Clock,
) -> None:
    d: Deferred[Any] = Deferred()
    d.add_timeout(5, clock=clock)
    d.errback(Boom("early"))
    assert clock.calls == []
    assert failure_result_of(d, Boom).value.tag == "early"


def test_add_timeout_on_a_fired_deferred_leaves_no_timer(clock: Clock) -> None:
    d = ns.succeed("already")
    d.add_timeout(5, clock=clock)
    assert clock.calls == []
    assert success_result_of(d) == "already"


def test_timeout_of_a_deferred_waiting_on_an_inner_one_cancels_the_inner_one(
    clock: Clock,
) -> None:
    cancelled: list[Any] = []
    inner: Deferred[Any] = Deferred(cancelled.append)
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    outer.add_timeout(3, clock=clock)
    clock.advance(3)
    assert cancelled == [inner]
    failure_result_of(outer, ns.TimeoutError)


# ---- repr


def test_repr_of_a_pending_deferred() -> None:
    d: Deferred[Any] = Deferred()
    assert repr(d) == f"<Deferred #{d.number} pending>"


def test_repr_of_a_fired_deferred_shows_the_value() -> None:
    d = ns.succeed(42)
    assert repr(d) == f"<Deferred #{d.number} fired: 42>"


def test_repr_of_a_failed_deferred_shows_the_exception() -> None:
    d = ns.fail(ValueError("x"))
    text = repr(d)
    d.add_errback(handled)
    assert text == f"<Deferred #{d.number} failed: ValueError('x')>"


def test_repr_of_a_deferred_waiting_on_another_names_the_inner_number() -> None:
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r: inner)
    outer.callback(None)
    assert repr(outer) == f"<Deferred #{outer.number} waiting on #{inner.number}>"


def test_repr_shows_the_same_number_in_every_state() -> None:
    d: Deferred[Any] = Deferred()
    pending = repr(d)
    d.callback(1)
    fired = repr(d)
    number = re.compile(r"#(\d+)")
    assert number.search(pending).group(1) == number.search(fired).group(1) == str(d.number)


# ---- unhandled failures are logged


def _raised_failure() -> Failure:
    try:
        raise_boom(None)
    except Boom:
        return Failure()
    raise AssertionError("raise_boom did not raise")


def _fail_with_traceback(d: Deferred[Any]) -> None:
    d.add_callback(raise_boom)
    d.callback(None)


def test_unhandled_failure_is_logged_when_the_deferred_is_collected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d: Deferred[Any] = Deferred()
    _fail_with_traceback(d)
    number = d.number
    del d
    gc.collect()
    records = unhandled_records(caplog, number)
    assert len(records) == 1


def test_unhandled_failure_log_is_an_error_under_the_netshell_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d: Deferred[Any] = Deferred()
    _fail_with_traceback(d)
    number = d.number
    del d
    gc.collect()
    (record,) = unhandled_records(caplog, number)
    assert record.levelno == logging.ERROR
    assert record.name == "netshell" or record.name.startswith("netshell.")


def test_unhandled_failure_log_carries_the_traceback_in_exc_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d: Deferred[Any] = Deferred()
    _fail_with_traceback(d)
    number = d.number
    del d
    gc.collect()
    (record,) = unhandled_records(caplog, number)
    assert record.exc_info is not None
    exc_type, exc_value, tb = record.exc_info
    assert exc_type is Boom and isinstance(exc_value, Boom)
    assert "raise_boom" in [fs.name for fs in traceback.extract_tb(tb)]


def test_unhandled_failure_is_logged_before_gc_when_nothing_else_holds_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No traceback, so no reference cycle: dropping the last reference logs it.
    caplog.set_level(logging.ERROR, logger="netshell")
    d: Deferred[Any] = Deferred()
    d.errback(Boom("no traceback"))
    number = d.number
    del d
    gc.collect()
    assert len(unhandled_records(caplog, number)) == 1


def test_handled_failure_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d: Deferred[Any] = Deferred()
    _fail_with_traceback(d)
    d.add_errback(handled)
    number = d.number
    del d
    gc.collect()
    assert unhandled_records(caplog, number) == []


def test_failure_handled_by_an_errback_added_later_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d: Deferred[Any] = Deferred()
    _fail_with_traceback(d)
    d.add_callback(lambda r: r)
    d.add_errback(handled)
    number = d.number
    del d
    gc.collect()
    assert unhandled_records(caplog, number) == []


def test_successful_deferred_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d = ns.succeed(1)
    number = d.number
    del d
    gc.collect()
    assert unhandled_records(caplog, number) == []


def test_failure_passed_from_a_pending_inner_to_an_outer_is_logged_once_from_the_outer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    inner: Deferred[Any] = Deferred()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r, inner=inner: inner)
    outer.callback(None)
    inner.errback(_raised_failure())
    numbers = (inner.number, outer.number)
    del inner, outer
    gc.collect()
    assert unhandled_records(caplog, numbers[0]) == []
    assert len(unhandled_records(caplog, numbers[1])) == 1


def test_failure_taken_from_an_already_failed_inner_is_logged_once_from_the_outer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    inner: Deferred[Any] = Deferred()
    _fail_with_traceback(inner)
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r, inner=inner: inner)
    outer.callback(None)
    numbers = (inner.number, outer.number)
    del inner, outer
    gc.collect()
    assert unhandled_records(caplog, numbers[0]) == []
    assert len(unhandled_records(caplog, numbers[1])) == 1


def test_failure_passed_from_a_paused_inner_to_an_outer_is_logged_once_from_the_outer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    inner: Deferred[Any] = Deferred()
    _fail_with_traceback(inner)
    inner.pause()
    outer: Deferred[Any] = Deferred()
    outer.add_callback(lambda r, inner=inner: inner)
    outer.callback(None)
    inner.unpause()
    numbers = (inner.number, outer.number)
    del inner, outer
    gc.collect()
    assert unhandled_records(caplog, numbers[0]) == []
    assert len(unhandled_records(caplog, numbers[1])) == 1


def test_unhandled_fail_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="netshell")
    d = ns.fail(Boom("from fail"))
    number = d.number
    del d
    gc.collect()
    (record,) = unhandled_records(caplog, number)
    assert record.exc_info is not None and record.exc_info[1].tag == "from fail"


# ---- the chain against a reference model (hypothesis)

# A step is (kind, action). kind: "cb", "eb" or "both". action:
#   ("value", n)            return n
#   ("raise", tag)          raise Boom(tag)
#   ("failure", tag)        return Failure(Boom(tag))
#   ("succeed", n)          return succeed(n)
#   ("fail", tag)           return fail(Boom(tag))
#   ("later_value", n)      return a pending Deferred, fired later with n
#   ("later_error", tag)    return a pending Deferred, failed later with Boom(tag)
# An outcome is ("ok", n) or ("err", tag).

_actions = st.one_of(
    st.tuples(st.sampled_from(["value", "succeed", "later_value"]), st.integers(-5, 5)),
    st.tuples(st.sampled_from(["raise", "failure", "fail", "later_error"]), st.integers(-5, 5)),
)
_steps = st.lists(st.tuples(st.sampled_from(["cb", "eb", "both"]), _actions), max_size=12)
_start = st.tuples(st.sampled_from(["ok", "err"]), st.integers(-5, 5))


def _model(start: tuple[str, int], steps: list[tuple[str, tuple[str, int]]]) -> Any:
    state = start
    calls = []
    for i, (kind, (action, arg)) in enumerate(steps):
        failing = state[0] == "err"
        if kind == "both" or (kind == "cb") != failing:
            calls.append((i, *state))
            ok = action in ("value", "succeed", "later_value")
            state = ("ok" if ok else "err", arg)
    return state, calls


def _outcome_of(result: Any) -> tuple[str, Any]:
    if isinstance(result, Failure):
        return ("err", result.value.tag)
    return ("ok", result)


def _run_real(
    start: tuple[str, int],
    steps: list[tuple[str, tuple[str, int]]],
    split: int,
    pause_while_firing: bool,
) -> Any:
    calls: list[tuple[Any, ...]] = []
    later: list[tuple[Deferred[Any], str, int]] = []

    def make_step(i: int, action: str, arg: int) -> Callable[[Any], Any]:
        def step(result: Any) -> Any:
            calls.append((i, *_outcome_of(result)))
            if action == "value":
                return arg
            if action == "raise":
                raise Boom(arg)
            if action == "failure":
                return Failure(Boom(arg))
            if action == "succeed":
                return ns.succeed(arg)
            if action == "fail":
                return ns.fail(Boom(arg))
            inner: Deferred[Any] = Deferred()
            later.append((inner, action, arg))
            return inner

        return step

    def add(d: Deferred[Any], i: int, kind: str, action: str, arg: int) -> None:
        fn = make_step(i, action, arg)
        if kind == "cb":
            d.add_callback(fn)
        elif kind == "eb":
            d.add_errback(fn)
        else:
            d.add_both(fn)

    d: Deferred[Any] = Deferred()
    for i, (kind, (action, arg)) in enumerate(steps[:split]):
        add(d, i, kind, action, arg)
    if pause_while_firing:
        d.pause()
    if start[0] == "ok":
        d.callback(start[1])
    else:
        d.errback(Boom(start[1]))
    if pause_while_firing:
        assert calls == []
        d.unpause()
    for i, (kind, (action, arg)) in enumerate(steps[split:], start=split):
        add(d, i, kind, action, arg)
    while later:
        inner, action, arg = later.pop(0)
        if action == "later_value":
            inner.callback(arg)
        else:
            inner.errback(Boom(arg))
    outcome: list[Any] = []
    d.add_both(outcome.append)  # takes the result out, so nothing is logged
    assert len(outcome) == 1
    return _outcome_of(outcome[0]), calls


@settings(max_examples=300, deadline=None)
@given(start=_start, steps=_steps, data=st.data())
def test_chain_outcome_and_calls_match_the_reference_model(
    start: tuple[str, int], steps: list[tuple[str, tuple[str, int]]], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(steps)), label="steps added before firing")
    pause = data.draw(st.booleans(), label="paused while firing")
    assert _run_real(start, steps, split, pause) == _model(start, steps)


def test_chain_deferred_of_twenty_thousand_runs_without_recursion_error():
    ds = [ns.Deferred() for _ in range(20_000)]
    for a, b in itertools.pairwise(ds):
        a.chain_deferred(b)
    ds[0].callback("end")
    assert ds[-1].result == "end"


def test_chain_deferred_target_shows_waiting_and_cannot_be_fired_by_another():
    source, target = ns.Deferred(), ns.Deferred()
    source.chain_deferred(target)
    assert repr(target) == f"<Deferred #{target.number} waiting on #{source.number}>"
    with pytest.raises(ns.AlreadyCalledError):
        target.callback(1)


def test_chain_deferred_to_a_fired_deferred_raises_already_called():
    with pytest.raises(ns.AlreadyCalledError):
        ns.Deferred().chain_deferred(ns.succeed(1))


# ---- a callback that raises a BaseException


@pytest.mark.parametrize(
    "exc", [ns.CancelledError(), SystemExit(3), KeyboardInterrupt(), GeneratorExit()],
    ids=lambda e: type(e).__name__,
)
def test_a_callback_raising_a_base_exception_fails_the_chain_it_does_not_escape(
    exc: BaseException,
) -> None:
    seen: list[BaseException] = []

    def raise_it(_: object) -> None:
        raise exc

    d: Deferred[int] = Deferred()
    d.add_callback(raise_it)
    d.add_errback(lambda f: seen.append(f.value) or "handled")
    try:
        d.callback(1)  # the chain catches every exception, as Twisted's does
    except BaseException as escaped:
        pytest.fail(f"{escaped!r} escaped from the callback chain")
    assert seen == [exc]
    assert success_result_of(d) == "handled"


def test_an_errback_raising_a_base_exception_passes_it_down_the_chain() -> None:
    d: Deferred[int] = Deferred()

    def raise_exit(_: Failure) -> None:
        raise SystemExit(2)

    d.add_errback(raise_exit)
    d.errback(ValueError("first"))
    f = failure_result_of(d, SystemExit)
    assert f.value.code == 2


def test_maybe_deferred_turns_a_raised_base_exception_into_a_failure() -> None:
    def leave() -> None:
        raise SystemExit(4)

    f = failure_result_of(ns.maybe_deferred(leave), SystemExit)
    assert f.value.code == 4


def test_a_canceller_raising_a_base_exception_fails_the_deferred() -> None:
    def canceller(_: Deferred[Any]) -> None:
        raise KeyboardInterrupt

    d: Deferred[Any] = Deferred(canceller=canceller)
    try:
        d.cancel()
    except BaseException as escaped:
        pytest.fail(f"{escaped!r} escaped from cancel()")
    failure_result_of(d, KeyboardInterrupt)
