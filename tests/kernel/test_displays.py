"""What Jupyter shows of tables, Deferreds and ``explain(d)``: HTML read back as a tree.

Each test parses the HTML (it is well-formed: ``xml.etree`` reads it) and asserts on its
structure: a table's header cells and one row per live object, a chain's one row per
step with the side that ran and the side passed by marked, where the path switched
sides. Hostile text (``<script>``) must come out as text, never as an element.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
from netshell import defer
from netshell.kernel import displays
from netshell.shell import chains
from netshell.shell.display import Table, connection_table, listener_table
from netshell.shell.namespace import deferred_table
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol

HOSTILE = "<script>alert('x')</script>"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def text(element: ET.Element) -> str:
    return "".join(element.itertext())


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(tag) if cls in (e.get("class") or "").split()]


def no_script(root: ET.Element) -> None:
    assert [e.tag for e in root.iter() if e.tag.lower() == "script"] == []


@pytest.fixture
def recording() -> Iterator[None]:
    chains.record()
    try:
        yield
    finally:
        chains.stop_recording()


# ---- tables


def header(root: ET.Element) -> list[str]:
    return [text(th) for th in root.iter("th")]


def body_rows(root: ET.Element) -> list[list[str]]:
    tbody = root.find("tbody")
    assert tbody is not None
    return [[text(td) for td in tr.iter("td")] for tr in tbody.iter("tr")]


async def test_conns_is_a_table_with_the_text_columns_and_a_row_per_connection(
    reactor: ns.Reactor,
) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tcp(0, factory)
    client_factory = ns.ClientFactory.for_protocol(RecordingProtocol)
    clients = [await reactor.connect_tcp("127.0.0.1", listener.port, client_factory)
               for _ in range(2)]
    for _ in clients:
        await factory.accepted()
    table = connection_table(reactor.connections)
    assert len(table) == 4  # two clients, two accepted
    root = parse(table._repr_html_())
    assert root.tag == "table"
    assert header(root) == [title for title, _ in table.columns]
    rows = body_rows(root)
    assert len(rows) == 4
    assert rows == table.cells()  # the same cells as the text table
    ids = {row[0] for row in rows}
    assert ids == {f"#{t.number}" for t in reactor.connections}
    for c in clients:
        c.transport.close()
        await c.done
    await listener.close()


async def test_listeners_is_a_table_with_a_row_per_listener(reactor: ns.Reactor) -> None:
    one = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    two = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    table = listener_table([one, two])
    root = parse(table._repr_html_())
    assert header(root)[:3] == ["id", "kind", "local"]
    rows = body_rows(root)
    assert [row[0] for row in rows] == [f"#{one.number}", f"#{two.number}"]
    assert [row[2] for row in rows] == [str(one.address), str(two.address)]
    await one.close()
    await two.close()


def test_deferreds_is_a_table_with_a_row_per_pending_deferred() -> None:
    pending: list[ns.Deferred[Any]] = [ns.Deferred(), ns.Deferred()]
    pending[1].add_callback(str)
    root = parse(deferred_table(pending)._repr_html_())
    assert header(root) == ["id", "created at", "waits on", "age", "callbacks"]
    rows = body_rows(root)
    assert [row[0] for row in rows] == [f"#{d.number}" for d in pending]
    assert [row[4] for row in rows] == ["0", "1"]


def test_an_empty_table_says_so_as_the_text_does() -> None:
    root = parse(connection_table([])._repr_html_())
    assert root.tag == "p"
    assert text(root) == "(no connections)"


def test_numbers_are_aligned_right_and_text_left() -> None:
    table = Table(["a", "bb"], [("name", str), ("size", len)])
    root = parse(table._repr_html_())
    aligns = [(td.get("style") or "").split("text-align:")[1].split(";")[0]
              for td in next(iter(root.find("tbody") or [])).iter("td")]
    assert aligns == ["left", "right"]


def test_a_hostile_cell_is_text_not_markup() -> None:
    table = Table([HOSTILE], [("peer", str), ("protocol", lambda s: f'x" onclick="{s}')])
    root = parse(table._repr_html_())
    no_script(root)
    assert body_rows(root) == [[HOSTILE, f'x" onclick="{HOSTILE}']]
    assert all("onclick" not in td.attrib for td in root.iter("td"))


# ---- a Deferred, drawn


def steps(root: ET.Element) -> list[ET.Element]:
    return by_class(root, "tr", "step")


def side(row: ET.Element, name: str) -> ET.Element:
    (cell,) = by_class(row, "td", name)
    return cell


def state(root: ET.Element) -> tuple[str, str]:
    (badge,) = by_class(root, "span", "state")
    return badge.get("data-state") or "", text(badge)


def boom(x: Any) -> Any:
    raise ValueError("bad")


def test_a_pending_deferred_says_pending_and_what_it_waits_for(recording: None) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(str)
    root = parse(d._repr_html_() or "")
    assert state(root) == ("pending", "pending")
    (row,) = steps(root)
    assert row.get("data-status") == "pending"
    assert side(row, "callback").get("data-role") == "pending"
    assert side(row, "errback").get("data-role") == "none"
    assert [text(e) for e in by_class(root, "div", "waits")] == ["now waiting to be fired"]


def test_the_chain_shows_what_ran_what_was_passed_by_and_where_it_switched(
    recording: None,
) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(lambda x: x * 2)  # 1 ran on the callback side
    d.add_callback(boom)  # 2 ran, raised: the path switches to the errback side
    d.add_callback(str)  # 3 passed by (a Failure)
    d.add_errback(lambda f: "handled")  # 4 ran as errback: back to the callback side
    d.add_errback(repr)  # 5 passed by (a value)
    d.add_both(len)  # 6 ran as callback
    d.callback(21)
    root = parse(d._repr_html_() or "")
    assert state(root) == ("fired", "fired: 7")
    rows = steps(root)
    assert [r.get("data-step") for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [r.get("data-status") for r in rows] == [
        "callback", "callback", "skipped", "errback", "skipped", "callback"]
    # the path: the side the result was on at each step
    assert [r.get("data-path") for r in rows] == [
        "callback", "callback", "errback", "errback", "callback", "callback"]
    assert [r.get("data-switch") for r in rows] == ["", "errback", "", "callback", "", ""]
    roles = [(side(r, "callback").get("data-role"), side(r, "errback").get("data-role"))
             for r in rows]
    assert roles == [("ran", "none"), ("ran", "none"), ("skipped", "passed"),
                     ("none", "ran"), ("passed", "skipped"), ("ran", "skipped")]
    assert [text(s) for r in rows for s in by_class(r, "span", "switch")] == [
        "\u21b7 switched to the errback side", "\u21b7 switched back to the callback side"]
    assert "raised ValueError('bad')" in text(rows[1])


def test_a_failed_deferred_says_failed_with_the_error(recording: None) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(boom)
    d.callback(1)
    root = parse(d._repr_html_() or "")
    assert state(root) == ("failed", "failed: ValueError('bad')")
    (row,) = steps(root)
    assert row.get("data-switch") == "errback"
    d.add_errback(lambda f: None)  # handled: nothing logged when it goes


def test_a_deferred_waiting_on_another_says_so_and_shows_no_link_step(recording: None) -> None:
    inner: ns.Deferred[Any] = ns.Deferred()
    outer = ns.succeed(1)
    outer.add_callback(lambda _: inner)
    assert state(parse(outer._repr_html_() or ""))[0] == "waiting"
    assert "now waiting on Deferred" in text(parse(outer._repr_html_() or ""))
    # the inner one's chain holds the core's link back to outer: not a step a person added
    assert steps(parse(inner._repr_html_() or "")) == []
    inner.callback(2)


def test_without_recording_the_steps_waiting_are_shown_and_the_rest_said_unknown() -> None:
    assert not chains.recording()
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(str).add_errback(repr)
    root = parse(d._repr_html_() or "")
    rows = steps(root)
    assert [r.get("data-status") for r in rows] == ["pending", "pending"]
    assert [text(side(r, n)).strip() for r, n in zip(rows, ["callback", "errback"],
                                                     strict=True)] == ["str", "repr"]
    (note,) = by_class(root, "div", "note")
    assert "not shown" in text(note)


def test_a_hostile_result_is_text_not_markup(recording: None) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(lambda s: s + "!")
    d.callback(HOSTILE)
    markup = d._repr_html_() or ""
    root = parse(markup)
    no_script(root)
    assert HOSTILE[:20] in state(root)[1]
    assert "<script>" not in markup


def test_the_core_draws_nothing_until_the_notebook_side_registers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(defer, "html_renderer", None)
    assert ns.Deferred()._repr_html_() is None  # Jupyter shows the repr then
    monkeypatch.setattr(defer, "html_renderer", lambda d: f"<b>#{d.number}</b>")
    d: ns.Deferred[Any] = ns.Deferred()
    assert d._repr_html_() == f"<b>#{d.number}</b>"


def test_importing_the_displays_registers_the_drawing() -> None:
    assert defer.html_renderer is displays.deferred_html


def test_ipython_gets_html_and_the_text_for_a_deferred_and_a_table() -> None:
    from IPython.core.formatters import DisplayFormatter

    formatter = DisplayFormatter()
    d: ns.Deferred[Any] = ns.Deferred()
    data, _ = formatter.format(d)
    assert data["text/plain"] == repr(d)
    assert parse(data["text/html"]).get("data-number") == str(d.number)
    table = Table(["a"], [("name", str)])
    data, _ = formatter.format(table)
    assert parse(data["text/html"]).tag == "table"


# ---- explain(d)


def test_explain_is_the_same_text_and_draws_its_steps_with_what_they_got(
    recording: None,
) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(lambda x: x + 1).add_callback(boom).add_errback(lambda f: 0)
    d.callback(1)
    explained = chains.explain(d)
    assert isinstance(explained, str)
    assert repr(explained) == str(explained)  # shown without quotes
    assert str(explained).splitlines()[0] == f"Deferred #{d.number} fired: 0"
    root = parse(explained._repr_html_())
    rows = steps(root)
    assert len(rows) == len(str(explained).splitlines()) - 1
    assert [r.get("data-status") for r in rows] == ["callback", "callback", "errback"]
    (what,) = by_class(rows[0], "td", "what")
    assert text(what) == "got 1, returned 2"
    assert text(by_class(rows[2], "td", "what")[0]).startswith(
        "got Failure(ValueError('bad')), returned 0")


def test_explain_draws_the_chain_as_it_was_when_asked(recording: None) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(str)
    before = chains.explain(d)
    d.callback(5)
    (row,) = steps(parse(before._repr_html_()))
    assert row.get("data-status") == "pending"
    (row,) = steps(parse(chains.explain(d)._repr_html_()))
    assert row.get("data-status") == "callback"


def test_a_long_chain_draws_its_first_and_last_steps_and_says_how_many_more(
    recording: None,
) -> None:
    """Deferred and explain() both: 10,000 steps draw CHAIN_HEAD + CHAIN_TAIL rows and one
    "... N more steps" row between them."""
    d: ns.Deferred[Any] = ns.Deferred()
    for _ in range(10_000):
        d.add_callback(lambda x: x + 1)
    d.callback(0)
    head, tail = displays.CHAIN_HEAD, displays.CHAIN_TAIL
    for markup in (displays.deferred_html(d), chains.explain(d)._repr_html_()):
        root = parse(markup)
        rows = steps(root)
        assert len(rows) == head + tail
        numbers = [int(r.get("data-step") or 0) for r in rows]
        assert numbers == [*range(1, head + 1), *range(10_001 - tail, 10_001)]
        (more,) = by_class(root, "tr", "more")
        assert text(more) == f"... {10_000 - head - tail:,} more steps"
        assert len(markup) < 100_000
