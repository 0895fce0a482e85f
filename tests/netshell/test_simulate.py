"""simulate(steps, value): a chain built from a small step language, run on a real Deferred
with a virtual clock, and drawn."""

from __future__ import annotations

import builtins
import gc
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netshell as ns
from netshell.failure import Failure
from netshell.shell import chains
from netshell.teach.simulate import Simulation, parse_side, simulate

# ---- the step language


@given(st.integers(), st.integers(min_value=-1000, max_value=1000))
def test_return_evaluates_its_expression_with_x(n: int, k: int) -> None:
    assert parse_side(f"return x * {k}")(n) == n * k  # type: ignore[misc]
    assert parse_side(f"  return   x + ({k})  ")(n) == n + k  # type: ignore[misc]


EXCEPTIONS = [ValueError, KeyError, TypeError, RuntimeError, ZeroDivisionError, OSError]


@given(st.sampled_from(EXCEPTIONS), st.text(max_size=30))
def test_raise_raises_what_it_names(exc: type[BaseException], message: str) -> None:
    for spec in (f"raise {exc.__name__}({message!r})", f"raise {exc.__name__}"):
        fn = parse_side(spec)
        assert fn is not None
        with pytest.raises(exc) as raised:
            fn(1)
        assert type(raised.value) is exc
        if "(" in spec:
            assert raised.value.args == (message,)


@given(st.sampled_from(EXCEPTIONS), st.sampled_from(EXCEPTIONS))
def test_trap_handles_the_exceptions_it_names_and_no_other(
        trapped: type[BaseException], raised: type[BaseException]) -> None:
    fn = parse_side(f"trap {trapped.__name__}, KeyboardInterrupt", "errback")
    assert fn is not None
    failure = Failure(raised("x"))
    if issubclass(raised, trapped):
        assert fn(failure) is None
    else:
        with pytest.raises(raised):
            fn(failure)


@given(st.text(max_size=40), st.sampled_from(["callback", "errback"]))
def test_any_text_is_read_or_refused_with_a_value_error(text: str, side: str) -> None:
    try:
        fn = parse_side(text, side)
    except ValueError as e:
        assert text.strip()[:1] == "" or str(e)  # says what it could not read
        return
    assert callable(fn)
    assert fn.__qualname__ == text.strip()  # explain() names the step by its text


@given(st.sampled_from(["return", "raise", "pass", "trap", "wait"]),
       st.text(alphabet="()[]{}+-*/%,:;=<>!@#$ \t\n\"'\\", max_size=15))
def test_a_form_with_a_broken_rest_is_refused(word: str, rest: str) -> None:
    try:
        parse_side(f"{word} {rest}", "errback")
    except ValueError:
        pass  # refused: the only exception it may raise


@pytest.mark.parametrize("spec, message", [
    ("return x +", "not a Python expression"),
    ("return", "needs an expression"),
    ("pass x", "'pass' takes nothing"),
    ("trap 3", "names of exceptions"),
    ("trap list", "names of exceptions"),
    ("wait soon", "number of seconds"),
    ("wait -1", "0 or more"),
    ("print(x)", "cannot read step"),
])
def test_what_it_refuses_and_why(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_side(spec, "errback")


def test_trap_only_on_the_errback_side() -> None:
    with pytest.raises(ValueError, match="errback side"):
        parse_side("trap KeyError", "callback")


def test_none_and_callables_are_taken_as_they_are() -> None:
    assert parse_side(None) is None
    assert parse_side(len) is len
    with pytest.raises(TypeError):
        parse_side(42)


def test_pass_returns_what_it_got() -> None:
    fn = parse_side("pass")
    assert fn is not None and fn("same") == "same"


def test_raise_of_something_not_an_exception() -> None:
    fn = parse_side("raise 42")
    assert fn is not None
    with pytest.raises(TypeError, match="not an exception"):
        fn(None)


# ---- simulate


def test_simulate_runs_the_steps_and_draws_them() -> None:
    sim = simulate(["return x * 2", ("raise ValueError('odd')", None), (None, "return 0"),
                    "return x + 1"], 21, width=60)
    assert isinstance(sim, Simulation)
    assert sim.result == 1
    lines = str(sim).splitlines()
    assert lines[2:11] == [
        "    │ fired with 21",
        " 1  ● return x * 2",
        "    │ 42",
        " 2  ● raise ValueError('odd')",
        "    ╰─ ValueError('odd') ───────╮",
        " 3                              ● return 0",
        "    ╭─────────────────────── 0 ─╯",
        " 4  ● return x + 1",
        "    ▼ result: 1",
    ]


def test_simulate_a_failure_starts_on_the_errback_side() -> None:
    for value in (KeyError("id"), KeyError, Failure(KeyError("id"))):
        sim = simulate([("pass", "trap KeyError"), "return 'after'"], value, width=60)
        assert sim.result == "after"
        assert " 1  ┆ pass" in str(sim)


def test_simulate_a_wait_shows_where_the_chain_waited() -> None:
    sim = simulate(["wait 5", "return x * 3"], 2, width=60)
    assert sim.result == 6
    waited = [line for line in str(sim).splitlines() if "waited on" in line]
    assert len(waited) == 1 and waited[0].endswith("which gave 2")


def test_simulate_with_callables() -> None:
    def halve(x: int) -> float:
        return x / 2

    sim = simulate([halve, (None, lambda f: "rescued")], 0, width=60)
    assert sim.result == 0.0


def test_simulate_touches_no_reactor(monkeypatch: Any) -> None:
    import netshell.current

    def no_reactor(*a: Any) -> Any:
        raise AssertionError("simulate asked for a reactor")

    monkeypatch.setattr(netshell.current, "get_reactor", no_reactor)
    monkeypatch.setattr(ns.defer, "get_reactor", no_reactor)
    assert simulate(["wait 1", "return x"], 1).result == 1


def test_a_step_it_cannot_read_stops_it_before_anything_runs() -> None:
    ran: list[Any] = []
    with pytest.raises(ValueError, match="step"):
        simulate([ran.append, "retrun x"], 1)
    assert ran == []
    with pytest.raises(ValueError, match="neither"):
        simulate([(None, None)], 1)


def test_a_simulated_failure_is_never_logged_as_unhandled(caplog: Any) -> None:
    sim = simulate(["raise ValueError('shown')"], 1)
    assert isinstance(sim.result, Failure)
    del sim
    with caplog.at_level(logging.ERROR, logger="netshell.defer"):
        gc.collect()
    assert "Unhandled error" not in caplog.text


def test_simulate_leaves_recording_as_it_was() -> None:
    assert not chains.recording()
    simulate(["return x"], 1)
    assert not chains.recording()
    chains.record()
    try:
        simulate(["return x"], 1)
        assert chains.recording()
    finally:
        chains.stop_recording()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from([None, "pass", "return x", "raise KeyError('k')", "wait 1"]),
    st.sampled_from([None, "pass", "return 0", "trap KeyError", "raise ValueError"])),
    max_size=6),
    st.sampled_from([1, "KeyError", "ValueError"]))
def test_simulate_agrees_with_a_chain_built_by_hand(steps: list[Any], fired: Any) -> None:
    steps = [s for s in steps if s != (None, None)]
    # A fresh exception each time: one raised again keeps its chain's frames (and the
    # chain) alive, and an example's value lives as long as the test.
    value = fired if fired == 1 else getattr(builtins, fired)("e")
    sim = simulate(steps, value)

    # The same chain by hand: what each form means, spelled out.
    def side(spec: str | None) -> Any:
        if spec is None:
            return None
        if spec == "pass" or spec == "wait 1":
            return lambda x: x
        if spec.startswith("return"):
            return lambda x, e=spec[7:]: eval(e, {"x": x, "__builtins__": builtins})
        if spec.startswith("raise"):
            def boom(x: Any, e: str = spec[6:]) -> Any:
                raise eval(e)
            return boom

        def trap(f: Failure) -> None:
            f.trap(KeyError)
            return None
        return trap

    d: ns.Deferred[Any] = ns.Deferred()
    for cb, eb in steps:
        d.add_callbacks(side(cb), side(eb))
    if isinstance(value, BaseException):
        d.errback(getattr(builtins, fired)("e"))
    else:
        d.callback(value)
    expected = d.result
    d.mark_failure_seen()
    if isinstance(expected, Failure):
        assert isinstance(sim.result, Failure) and type(sim.result.value) is expected.type
    else:
        assert sim.result == expected
