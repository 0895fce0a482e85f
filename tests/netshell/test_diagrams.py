"""explain(d).diagram(): a chain drawn in two columns, as text (width-aware) and as SVG."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netshell as ns
from netshell.failure import Failure
from netshell.shell import chains
from netshell.teach import diagrams
from netshell.teach.diagrams import ChainDiagram, cwidth, fit

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def recording() -> Iterator[None]:
    chains.record()
    try:
        yield
    finally:
        chains.stop_recording()


def double(x: int) -> int:
    return x * 2


def check(x: int) -> int:
    raise ValueError("big")


def log(f: Failure) -> Failure:
    return f


def show(x: Any) -> Any:
    return x


def recover(f: Failure) -> str:
    return "ok"


def switching_chain() -> ns.Deferred[Any]:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(double).add_callbacks(check, log).add_callback(show)
    d.add_errback(recover).add_callback(str.upper)
    d.callback(21)
    return d


def numbered(text: str) -> str:
    # Deferred numbers depend on what ran before: "#N".
    return re.sub(r"#\d+", "#N", text)


# ---- the text


def test_the_path_a_result_took_through_both_columns(recording: None) -> None:
    drawn = chains.explain(switching_chain()).diagram(width=60)
    assert numbered(str(drawn)) == "\n".join([
        "Deferred #N fired: 'OK'",
        "    callback                    errback",
        "    │ fired with 21",
        " 1  ● double",
        "    │ 42",
        " 2  ● check                     ┆ log",
        "    ╰─ ValueError('big') ───────╮",
        " 3  ┆ show                      │",
        " 4                              ● recover",
        "    ╭──────────────────── 'ok' ─╯",
        " 5  ● str.upper",
        "    ▼ result: 'OK'",
        "● ran  ┆ passed by  ○ not run yet  │ the result's path",
    ])
    assert repr(drawn) == str(drawn)  # at the prompt: shown as it is, no quotes


def test_the_explanation_text_is_unchanged_by_the_diagram(recording: None) -> None:
    explained = chains.explain(switching_chain())
    explained.diagram(width=60)
    assert explained.splitlines()[1] == "  1. callback double  got 21, returned 42"


def test_steps_not_run_yet_and_what_the_chain_waits_for(recording: None) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(double).add_errback(log)
    lines = str(chains.explain(d).diagram(width=60, inner=False)).splitlines()
    assert lines[2:5] == [" 1  ○ double", " 2                              ○ log",
                          "    ⋮ now waiting to be fired"]


def test_a_failure_nobody_handled_ends_on_the_errback_side(recording: None) -> None:
    d = ns.fail(KeyError("id"))
    d.add_callback(show)
    lines = str(chains.explain(d).diagram(width=70)).splitlines()
    d.mark_failure_seen()
    col = lines[1].index("errback")
    assert lines[2] == " " * col + "│ fired with KeyError('id')"
    assert lines[3] == " 1  ┆ show" + " " * (col - len(" 1  ┆ show")) + "│"
    assert lines[4] == " " * col + "▼ unhandled: KeyError('id')"


def test_a_step_that_waits_on_another_deferred_draws_that_chain_inside(
        recording: None) -> None:
    inner: ns.Deferred[Any] = ns.Deferred()
    inner.add_callback(double)
    outer = ns.succeed(1).add_callback(lambda _: inner).add_callback(str)
    waiting = numbered(str(chains.explain(outer).diagram(width=70))).splitlines()
    assert "    │ waits on Deferred #N" in waiting
    at = waiting.index("    │ waits on Deferred #N")
    assert waiting[at + 1] == "    │  Deferred #N pending"
    assert waiting[at + 3] == "    │   1  ○ double"
    assert waiting[-3:-1] == [" 2  ○ str", "    ⋮ now waiting on Deferred #N (pending)"]
    inner.callback(4)
    fired = numbered(str(chains.explain(outer).diagram(width=70))).splitlines()
    assert "    │ waited on Deferred #N, which gave 8" in fired
    assert "    │  Deferred #N, waited on: it handed on 8" in fired
    assert "    │      ▼ handed on: 8" in fired
    assert fired[-2] == "    ▼ result: '8'"
    flat = numbered(str(chains.explain(outer).diagram(width=70, inner=False))).splitlines()
    assert not any("handed on" in line for line in flat)


# ---- width


def test_the_default_width_is_the_terminal_s(recording: None, monkeypatch: Any) -> None:
    d = switching_chain()
    monkeypatch.setattr(diagrams.shutil, "get_terminal_size",
                        lambda fallback=(80, 24): os.terminal_size((44, 24)))
    narrow = str(chains.explain(d).diagram()).splitlines()
    assert max(cwidth(line) for line in narrow) == 44
    monkeypatch.setattr(diagrams.shutil, "get_terminal_size",
                        lambda fallback=(80, 24): os.terminal_size((300, 24)))
    wide = str(chains.explain(d).diagram()).splitlines()
    assert max(cwidth(line) for line in wide) <= diagrams.MAX_WIDTH
    assert wide[1].index("errback") > narrow[1].index("errback")


def test_a_width_below_the_least_is_the_least(recording: None) -> None:
    lines = str(chains.explain(switching_chain()).diagram(width=5)).splitlines()
    assert max(cwidth(line) for line in lines) == diagrams.MIN_WIDTH


def test_wide_characters_count_two_columns(recording: None) -> None:
    d = ns.succeed("日本語のとても長い値です")
    d.add_callback(show)
    lines = str(chains.explain(d).diagram(width=30)).splitlines()
    assert max(cwidth(line) for line in lines) <= 30
    assert any("'日本語の" in line and line.endswith("…") for line in lines)
    assert cwidth("日本") == 4 and cwidth("🙂") == 2 and cwidth("e\u0301") == 1


@given(st.text(), st.integers(min_value=0, max_value=60))
def test_fit_never_passes_the_width(text: str, width: int) -> None:
    from netshell.teach.diagrams import printable

    cut = fit(text, width)
    shown = printable(text)  # control characters are drawn as escapes
    assert cwidth(cut) <= width
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in cut)
    if cwidth(shown) <= width:
        assert cut == shown
    elif width == 0:
        assert cut == ""
    else:
        assert cut.endswith("…") and shown.startswith(cut[:-1])


NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                max_size=40)
SIDES = st.one_of(st.none(), st.sampled_from(["return x", "return [x] * 3", "raise KeyError",
                                              "pass", "return '語' * 30"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SIDES, SIDES, NAMES), min_size=0, max_size=6),
       st.one_of(st.integers(), st.text(max_size=50), st.just(ValueError("日本"))),
       st.integers(min_value=0, max_value=140))
def test_no_line_is_wider_than_asked(steps: list[Any], value: Any, width: int) -> None:
    from netshell.teach.simulate import parse_side

    chains.record()
    try:
        d: ns.Deferred[Any] = ns.Deferred()
        for cb, eb, name in steps:
            cb_fn, eb_fn = parse_side(cb), parse_side(eb)
            for fn in (cb_fn, eb_fn):
                if fn is not None:
                    fn.__qualname__ = name
            if cb_fn is None and eb_fn is None:
                continue
            d.add_callbacks(cb_fn, eb_fn)
        if isinstance(value, BaseException):
            d.errback(value)
        else:
            d.callback(value)
    finally:
        chains.stop_recording()
    text = chains.explain(d).diagram(width=width).text()
    d.mark_failure_seen()
    assert max(cwidth(line) for line in text.splitlines()) <= max(width, diagrams.MIN_WIDTH)


# ---- SVG, for Jupyter


def test_the_svg_marks_the_sides_that_ran_and_the_path(recording: None) -> None:
    svg = chains.explain(switching_chain()).diagram().svg()
    root = ET.fromstring(svg)
    ran = [(g.get("data-step"), r.get("data-side"))
           for g in root.iter(f"{SVG}g") if g.get("class") == "step"
           for r in g.iter(f"{SVG}rect") if r.get("data-role") == "ran"]
    assert ran == [("1", "callback"), ("2", "callback"), ("4", "errback"), ("5", "callback")]
    passed = [r.get("data-side") for r in root.iter(f"{SVG}rect")
              if r.get("data-role") == "passed"]
    assert passed == ["errback", "callback"]  # log (step 2), show (step 3)
    sides = [line.get("data-side") for line in root.iter(f"{SVG}line")
             if line.get("class") == "path"]
    # down the callback column, over to the errback one at check, back at recover
    assert sides[:4] == ["callback"] * 4
    assert "errback" in sides and sides[-1] == "callback"
    values = [t[0].tail for t in root.iter(f"{SVG}text") if "value" in (t.get("class") or "")]
    assert "ValueError('big')" in values and "'ok'" in values


def test_the_svg_escapes_what_it_shows(recording: None) -> None:
    d = ns.succeed("</text><script>alert(1)</script>\x00")
    d.add_callback(show)
    svg = chains.explain(d).diagram().svg()
    ET.fromstring(svg)  # well-formed: nothing got out of its element
    assert "<script>" not in svg


def test_the_svg_draws_the_chain_waited_on_inside(recording: None) -> None:
    inner: ns.Deferred[Any] = ns.Deferred()
    inner.add_callback(double)
    outer = ns.succeed(1).add_callback(lambda _: inner)
    inner.callback(2)
    root = ET.fromstring(chains.explain(outer).diagram().svg())
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "inner"]
    assert [g.get("data-number") for g in groups] == [str(inner.number)]


def test_jupyter_shows_the_svg(recording: None) -> None:
    from IPython.core.formatters import DisplayFormatter

    drawn = chains.explain(switching_chain()).diagram(width=60)
    bundle, _ = DisplayFormatter().format(drawn)
    ids = re.compile(r"netshell-chain-end-\d+")
    assert ids.sub("", bundle["image/svg+xml"]) == ids.sub("", drawn.svg())
    assert bundle["text/plain"] == drawn.text()


def test_a_diagram_is_a_chain_diagram(recording: None) -> None:
    assert isinstance(chains.explain(ns.Deferred()).diagram(), ChainDiagram)


def test_a_long_chain_shows_its_first_and_last_steps() -> None:
    from netshell.teach.simulate import simulate

    sim = simulate(["return x + 1"] * 100, 0, width=50)
    lines = str(sim).splitlines()
    numbers = [int(line.split()[0]) for line in lines if line[:4].strip().isdigit()]
    assert numbers == [*range(1, diagrams.HEAD + 1), *range(101 - diagrams.TAIL, 101)]
    assert f"      ⋮ ... {100 - diagrams.HEAD - diagrams.TAIL} more steps" in lines
    assert lines[-2] == "      ▼ result: 100"
    svg = ET.fromstring(sim.svg())
    steps = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "step"]
    assert len(steps) == diagrams.HEAD + diagrams.TAIL


def test_control_characters_in_values_and_step_texts_are_drawn_as_escapes() -> None:
    from netshell.teach.simulate import simulate

    class Hostile:
        def __repr__(self) -> str:
            return "evil\x1b[31m\nrow\rover"

    drawn = str(simulate(["return x", "return 'a\\x1b]0;pwn\\x07b'"], Hostile(), width=80))
    assert "\x1b" not in drawn and "\r" not in drawn and "\x07" not in drawn
    assert "evil\\x1b[31m\\nrow\\rover" in drawn
    assert "\\x1b]0;pwn\\x07" in drawn
    lines = drawn.splitlines()
    assert all(not line.startswith("row") for line in lines)  # no row broken in two


def test_a_callback_that_returns_its_own_deferred_is_drawn_failing_not_waiting() -> None:
    import netshell as ns
    from netshell.shell import chains

    chains.record()
    try:
        d = ns.Deferred()
        d.add_callback(lambda _: d)
        d.callback(1)
        explained = chains.explain(d)
        drawn = str(explained.diagram(width=70))
    finally:
        chains.stop_recording()
        d.add_errback(lambda f: None)
    assert "returned its own Deferred" in explained and "waits on it" not in explained
    assert "waited on" not in drawn
    assert "╰─ TypeError" in drawn  # the path crosses to the errback side
