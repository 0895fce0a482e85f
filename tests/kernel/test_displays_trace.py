"""A trace's Capture drawn as a sequence diagram: SVG (read back with xml.etree) and mermaid.

The conversations are real (an echo server on loopback, traced) or made with a stand-in
transport when only the drawing is under test (hostile bytes, a datagram). The SVG has
one lifeline per party and one arrow per message; the mermaid text is checked line by
line.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import netshell as ns
from netshell.kernel import displays
from netshell.kernel.displays import capture_mermaid, capture_svg, mermaid_text
from netshell.shell.tracing import Capture, Tracer
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol

SVG = "{http://www.w3.org/2000/svg}"


def svg_groups(markup: str, cls: str) -> list[ET.Element]:
    root = ET.fromstring(markup)
    assert root.tag == f"{SVG}svg"
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def lifelines(markup: str) -> list[ET.Element]:
    root = ET.fromstring(markup)
    return [e for e in root.iter(f"{SVG}line") if e.get("class") == "lifeline"]


def party_names(markup: str) -> list[str]:
    return [g.get("data-name") or "" for g in svg_groups(markup, "party")]


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    t = Tracer(lambda line: None)
    try:
        yield t
    finally:
        t.stop()


async def echo_conversation(reactor: ns.Reactor, tracer: Tracer, target: str
                            ) -> tuple[Capture, Any, Any, Any]:
    """A client sends b"hello" and b"bye" to an echo server and closes; ``target`` is
    "listener" (the server's side traced) or "everything" (both ends)."""
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tcp(0, factory)
    capture = tracer.start(listener if target == "listener" else None)
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol))
    server = await factory.accepted()
    for data in (b"hello", b"bye"):
        already = len(client.received)
        client.transport.write(data)
        await client.wait_for_bytes(already + len(data))
    client.transport.close()
    await server.done
    await client.done
    await listener.close()
    return capture, listener, client, server


async def test_a_traced_listener_draws_two_parties_and_an_arrow_per_message(
    reactor: ns.Reactor, tracer: Tracer
) -> None:
    capture, _listener, _client, server = await echo_conversation(reactor, tracer, "listener")
    svg = capture_svg(capture)
    server_end, client_end = str(server.transport.host), str(server.transport.peer)
    assert party_names(svg) == [client_end, server_end]  # the one who connects comes first
    assert len(lifelines(svg)) == 2
    messages = svg_groups(svg, "message")
    assert [(g.get("data-from"), g.get("data-to")) for g in messages] == [
        (client_end, server_end), (server_end, client_end),
        (client_end, server_end), (server_end, client_end)]
    assert [len([x for x in g if x.tag == f"{SVG}line"]) for g in messages] == [1, 1, 1, 1]
    labels = ["".join(t.itertext()) for g in messages for t in g.iter(f"{SVG}text")]
    assert labels == ["5 B b'hello'", "5 B b'hello'", "3 B b'bye'", "3 B b'bye'"]
    assert len(svg_groups(svg, "connect")) == 1
    assert len(svg_groups(svg, "close")) == 1


async def test_with_both_ends_traced_each_message_is_drawn_once(
    reactor: ns.Reactor, tracer: Tracer
) -> None:
    capture, _, _client, _server = await echo_conversation(reactor, tracer, "everything")
    assert len([e for e in capture.events if e.kind == "data"]) == 8  # out and in, each
    svg = capture_svg(capture)
    assert len(lifelines(svg)) == 2
    assert len(svg_groups(svg, "message")) == 4
    assert len(svg_groups(svg, "connect")) == 1  # "connected", not its "accepted" twin
    assert len(svg_groups(svg, "close")) == 2  # each end says how it closed


async def test_the_mermaid_text_is_a_sequence_diagram_line_by_line(
    reactor: ns.Reactor, tracer: Tracer
) -> None:
    capture, _, _client, server = await echo_conversation(reactor, tracer, "listener")
    a = mermaid_text(server.transport.peer)
    b = mermaid_text(server.transport.host)
    n = server.transport.number
    assert capture_mermaid(capture).splitlines() == [
        "sequenceDiagram",
        f"    participant P1 as {a}",
        f"    participant P2 as {b}",
        f"    P1-->>P2: connect #35{chr(59)}{n}",
        "    P1->>P2: 5 B b'hello'",
        "    P2->>P1: 5 B b'hello'",
        "    P1->>P2: 3 B b'bye'",
        "    P2->>P1: 3 B b'bye'",
        f"    Note over P2,P1: #35{chr(59)}{n} closed",
    ]


async def test_the_capture_is_the_traces_and_untrace_ends_it(
    reactor: ns.Reactor, tracer: Tracer
) -> None:
    capture, listener, _, server = await echo_conversation(reactor, tracer, "listener")
    assert tracer.start(listener) is capture  # the same target: the same capture
    assert capture.active
    tracer.stop(listener)
    assert not capture.active
    text = repr(capture)
    assert text.splitlines()[0] == (
        f"capture of Listener #{listener.number} (ended): 4 messages, 1 connections")
    assert f"{server.transport.peer} -> {server.transport.host} 5 B  b'hello'" in text


# ---- the drawing alone, with a stand-in transport


def stand_in(number: int | None = 1, host: str = "10.0.0.1:80", peer: str = "10.0.0.2:5000"
             ) -> Any:
    return SimpleNamespace(number=number, host=host, peer=peer, listener=object())


HOSTILE = b"<script>alert('x')</script>;#"


def test_hostile_bytes_are_text_in_the_svg_and_escaped_in_mermaid() -> None:
    capture = Capture()
    t = stand_in(host="<b>evil</b>:1")
    capture.opened(t)
    capture.data(t, "in", HOSTILE)
    svg = capture_svg(capture)
    root = ET.fromstring(svg)
    assert [e for e in root.iter() if e.tag.endswith("script")] == []
    assert "<b>" not in svg and "<script>" not in svg
    assert party_names(svg) == ["10.0.0.2:5000", "<b>evil</b>:1"]  # an attribute, as text
    lines = capture_mermaid(capture).splitlines()
    assert lines[2] == "    participant P2 as #60;b#62;evil#60;/b#62;:1"
    message = lines[-1]
    assert message.startswith("    P1->>P2: 29 B b")
    body = message.split(": ", 1)[1]
    # mermaid's grammar ends a message at a raw ";" or "#": only its entity codes remain
    assert "<" not in body and ">" not in body
    assert re.sub(r"#\d+;", "", body).count(";") == 0
    assert re.sub(r"#\d+;", "", body).count("#") == 0
    assert "#60;script#62;" in body


def test_a_datagram_draws_its_sender_and_destination() -> None:
    capture = Capture()
    udp = SimpleNamespace(host="127.0.0.1:53", peer=None, listener=None)
    capture.data(udp, "in", b"query", ("127.0.0.1", 40000))
    capture.data(udp, "out", b"answer", ("127.0.0.1", 40000))
    svg = capture_svg(capture)
    assert party_names(svg) == ["127.0.0.1:40000", "127.0.0.1:53"]
    assert [g.get("data-to") for g in svg_groups(svg, "message")] == [
        "127.0.0.1:53", "127.0.0.1:40000"]


def test_an_empty_capture_still_draws() -> None:
    capture = Capture()
    assert len(lifelines(capture_svg(capture))) == 1
    assert capture_mermaid(capture).splitlines() == [
        "sequenceDiagram", "    participant P1 as (nothing captured yet)"]


def test_a_long_conversation_draws_its_first_events_and_says_how_many_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(displays, "DRAW_LIMIT", 3)
    capture = Capture()
    t = stand_in()
    capture.opened(t)
    for _ in range(5):
        capture.data(t, "out", b"x")
    svg = capture_svg(capture)
    assert len(svg_groups(svg, "connect")) == 1
    assert len(svg_groups(svg, "message")) == 2
    (more,) = [e for e in ET.fromstring(svg).iter(f"{SVG}text") if e.get("class") == "more"]
    assert (more.text or "").startswith("and 3 more events, not drawn")
    lines = capture_mermaid(capture).splitlines()
    assert len([line for line in lines if "->>" in line]) == 3  # the connect, 2 messages
    assert lines[-1].startswith("    Note over P1,P2: and 3 more events, not drawn")


def test_a_capture_keeps_at_most_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = Capture()
    monkeypatch.setattr(capture, "limit", 3)
    t = stand_in()
    capture.opened(t)
    for _ in range(5):
        capture.data(t, "out", b"x")
    assert len(capture.events) == 3
    assert capture.dropped == 3
    assert "3 events past the limit not kept" in repr(capture)


def test_ipython_gets_svg_mermaid_and_text() -> None:
    from IPython.core.formatters import DisplayFormatter

    capture = Capture()
    capture.data(stand_in(), "out", b"hi")  # first seen open: its client end comes first
    data, _ = DisplayFormatter().format(capture)
    assert set(data) >= {"text/plain", "image/svg+xml", "text/vnd.mermaid"}
    assert len(svg_groups(data["image/svg+xml"], "message")) == 1
    assert data["text/vnd.mermaid"].splitlines()[-2:] == [
        "    P1-->>P2: already open #35;1", "    P2->>P1: 2 B b'hi'"]


def test_a_long_conversations_text_has_its_first_events_and_says_how_many_more() -> None:
    capture = Capture()
    t = stand_in()
    capture.opened(t)
    n = displays.DRAW_LIMIT + 4_800 - 1  # and the connection's opening
    for _ in range(n):
        capture.data(t, "out", b"ab")
    head, *lines = displays.capture_text(capture).splitlines()
    assert head == repr(capture).splitlines()[0]
    assert lines[:-1] == repr(capture).splitlines()[1:displays.DRAW_LIMIT + 1]
    assert lines[-1] == f"  ... and {n + 1 - displays.DRAW_LIMIT:,} more events, not drawn (the " \
        "capture's events has them all)"
    bundle = displays.capture_bundle(capture)
    assert bundle["text/plain"] == displays.capture_text(capture)
    assert len(svg_groups(bundle["image/svg+xml"], "message")) == displays.DRAW_LIMIT - 1
    assert bundle["text/vnd.mermaid"] == capture_mermaid(capture)
    short = Capture()
    short.data(t, "out", b"ab")
    assert displays.capture_text(short) == repr(short)  # a short one: all of its text
