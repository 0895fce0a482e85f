"""The prompt's display helpers: tables of live objects, human sizes and ages, previews, dumps.

The table tests at the end build real listeners and connections on loopback
(``reactor.listen_tcp`` / ``connect_tcp`` / ``listen_tls`` / ``listen_udp``)
and read the columns the prompt would show; they wait on the Deferreds the
recording protocols fire, never on time.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import netshell as ns
from netshell import tls
from netshell.shell.display import (
    Table,
    connection_table,
    exact_bytes,
    human_age,
    human_bytes,
    listener_table,
    preview,
    short_repr,
)
from netshell.shell.display import hexdump as dump
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def numbers_table() -> Table:
    return Table([1, 22, 333], [("n", lambda x: x), ("word", lambda x: "w" * len(str(x)))])


def row(table: Table, obj: Any) -> dict[str, str]:
    """The cells of ``obj``'s row, by column title."""
    titles = [title for title, _ in table.columns]
    index = next(i for i, o in enumerate(table) if o is obj)
    return dict(zip(titles, table.cells()[index], strict=True))


# ---- Table


def test_a_numeric_column_is_right_aligned() -> None:
    lines = repr(numbers_table()).splitlines()
    assert [line[:3] for line in lines] == ["  n", "  1", " 22", "333"]


def test_a_text_column_is_left_aligned_under_its_title() -> None:
    lines = repr(numbers_table()).splitlines()
    starts = {line.index("w") for line in lines[1:]}
    assert starts == {lines[0].index("word")}
    assert lines[1].endswith("  w")  # left-aligned, and trailing padding stripped


def test_columns_are_two_spaces_apart_at_their_widest() -> None:
    t = Table(["abc"], [("a", str), ("b", str)])
    assert repr(t).splitlines() == ["a    b", "abc  abc"]


def test_byte_counts_and_numbers_with_a_hash_count_as_numbers() -> None:
    t = Table([5, 2048], [("id", lambda x: f"#{x}"), ("size", human_bytes)])
    lines = repr(t).splitlines()
    assert lines[1] == "   #5      5 B"
    assert lines[2] == "#2048  2.0 KiB"


def test_a_column_with_one_non_number_is_left_aligned() -> None:
    t = Table([1, 100], [("v", lambda x: x if x > 1 else "-")])
    assert repr(t).splitlines() == ["v", "-", "100"]


def test_indexing_a_table_gives_the_row_object_itself() -> None:
    objs = [object(), object()]
    t = Table(objs, [("id", id)])
    assert t[1] is objs[1]
    assert all(a is b for a, b in zip(t, objs, strict=True))  # iteration gives them too
    assert t[:1] == [objs[0]] and t[:1][0] is objs[0]
    assert len(t) == 2


def test_the_table_is_built_from_the_live_object_at_each_display() -> None:
    class Counter:
        n = 0

    c = Counter()
    t = Table([c], [("n", lambda x: x.n)])
    assert repr(t).splitlines()[1] == "0"
    c.n = 7
    assert repr(t).splitlines()[1] == "7"


def test_plain_display_has_no_colour() -> None:
    t = Table([1], [("id", lambda x: f"#{x}"), ("state", lambda x: "open")])
    assert "\x1b[" not in repr(t)
    assert "\x1b[" not in t.render()


def test_colour_is_added_only_when_asked() -> None:
    t = Table([1], [("id", lambda x: f"#{x}"), ("state", lambda x: "closed")])
    coloured = t.render(color=True)
    assert "\x1b[1m" in coloured  # the titles are bold
    assert "\x1b[36m#1" in coloured  # ids in cyan
    assert "\x1b[31mclosed" in coloured  # a closed state in red
    assert ANSI.sub("", coloured).split() == t.render().split()


def test_listening_and_open_states_share_a_colour() -> None:
    t = Table(["listening", "open"], [("id", lambda x: "#1"), ("state", str)])
    lines = t.render(color=True).splitlines()
    assert "\x1b[32mlistening" in lines[1] and "\x1b[32mopen" in lines[2]


def test_ipython_displays_the_coloured_table() -> None:
    shown: list[str] = []

    class Printer:
        def text(self, s: str) -> None:
            shown.append(s)

    t = Table([1], [("id", lambda x: f"#{x}")])
    t._repr_pretty_(Printer(), False)
    assert shown == [t.render(color=True)]


def test_a_row_whose_getter_raises_still_prints() -> None:
    def fragile(x: int) -> str:
        if x == 2:
            raise ConnectionResetError("gone")
        return "fine"

    t = Table([1, 2, 3], [("n", lambda x: x), ("peer", fragile)])
    lines = repr(t).splitlines()
    assert len(lines) == 4
    assert lines[2].split() == ["2", "?ConnectionResetError"]
    assert lines[3].split() == ["3", "fine"]


def test_an_empty_table_says_so() -> None:
    assert repr(Table([], [("n", str)])) == "(none)"
    assert repr(Table([], [("n", str)], empty="(nothing here)")) == "(nothing here)"
    assert repr(listener_table([])) == "(no listeners)"
    assert repr(connection_table([])) == "(no connections)"


# ---- sizes, ages, previews, dumps


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1.0 MiB"),  # rounds up to the next unit, never "1024.0 KiB"
        (1024**2, "1.0 MiB"),
        (5 * 1024**3 // 2, "2.5 GiB"),
        (1024**4, "1.0 TiB"),
        (2048 * 1024**4, "2048.0 TiB"),  # TiB is the largest unit
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0s"),  # a clock that stepped back
        (0, "0s"),
        (59.99, "59s"),
        (60, "1m00s"),
        (125, "2m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3600 + 61, "1h01m"),
        (100 * 3600, "100h00m"),
    ],
)
def test_human_age(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


def test_preview_shows_escaped_bytes_whole_up_to_the_limit() -> None:
    data = b"GET / HTTP/1.1\r\n"
    assert preview(data) == repr(data)
    assert preview(b"x" * 60) == repr(b"x" * 60)


def test_preview_cuts_longer_data_and_says_so() -> None:
    data = bytes(range(256))
    assert preview(data) == repr(data[:60]) + "..."
    assert preview(b"abcdef", limit=3) == "b'abc'..."


def test_preview_takes_any_bytes_like() -> None:
    assert preview(bytearray(b"hi")) == "b'hi'"
    assert preview(memoryview(b"hi")) == "b'hi'"


def test_hexdump_lines_have_offset_hex_and_text() -> None:
    data = b"hello world, this is a hexdump\x00\x01"
    lines = dump(data).splitlines()
    assert lines[0] == (
        "00000000  68 65 6c 6c 6f 20 77 6f 72 6c 64 2c 20 74 68 69  hello world, thi"
    )
    assert lines[1] == (
        "00000010  73 20 69 73 20 61 20 68 65 78 64 75 6d 70 00 01  s is a hexdump.."
    )


def test_hexdump_pads_a_short_last_line_so_the_text_column_lines_up() -> None:
    lines = dump(bytes(range(65, 65 + 20))).splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("00000010  51 52 53 54  ")
    assert lines[1].index("QRST") == lines[0].index("ABCD")


def test_hexdump_shows_non_printable_bytes_as_dots() -> None:
    assert dump(b"\x00\x1f\x7f\xffA").endswith("  ....A")


def test_hexdump_width_and_empty_data() -> None:
    assert dump(b"abcdef", width=4).splitlines() == [
        "00000000  61 62 63 64  abcd",
        "00000004  65 66        ef",
    ]
    assert dump(b"") == ""


def test_short_repr_cuts_long_values() -> None:
    assert len(short_repr("x" * 1000)) < 80
    assert short_repr(list(range(100))).endswith("...]")
    assert short_repr(200) == "200"


# ---- listener and connection tables against real sockets


async def tcp_pair(reactor: ns.Reactor) -> tuple[Any, Any, Any]:
    """An echo listener, a client connected to it, and the server's protocol."""
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tcp(0, factory)
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    server = await factory.accepted()
    return listener, client, server


async def test_connection_table_counts_bytes_after_real_traffic(reactor: ns.Reactor) -> None:
    listener, client, server = await tcp_pair(reactor)
    client.transport.write(b"hello")
    client.transport.write(b" world")
    await client.wait_for_bytes(11)
    table = connection_table(reactor.connections)
    assert {id(x) for x in table} == {id(client.transport), id(server.transport)}
    s = row(table, server.transport)
    assert s["id"] == f"#{server.transport.number}"
    assert (s["kind"], s["protocol"], s["state"]) == ("tcp", "RecordingEcho", "open")
    assert s["tls"] == "no"
    assert (s["in"], s["out"]) == ("11", "11")
    assert s["local"] == f"127.0.0.1:{listener.port}"
    assert s["peer"] == str(client.transport.host)
    c = row(table, client.transport)
    assert (c["protocol"], c["in"], c["out"]) == ("RecordingProtocol", "11", "11")
    assert c["peer"] == f"127.0.0.1:{listener.port}"
    assert re.fullmatch(r"\d+s", c["age"])


async def test_a_row_of_the_connection_table_is_the_connection(reactor: ns.Reactor) -> None:
    _, client, server = await tcp_pair(reactor)
    table = connection_table(reactor.connections)
    mine = next(c for c in table if c is server.transport)
    mine.write(b"via the table")
    assert await client.wait_for_bytes(13) == b"via the table"


async def test_connection_table_shows_a_closed_connection_as_closed(reactor: ns.Reactor) -> None:
    _, client, server = await tcp_pair(reactor)
    table = connection_table([client.transport])
    client.transport.close()
    await client.done
    await server.done
    assert row(table, client.transport)["state"] == "closed"
    assert client.transport not in connection_table(reactor.connections)


async def test_listener_table_columns(reactor: ns.Reactor) -> None:
    listener, client, _ = await tcp_pair(reactor)
    client.transport.write(b"12345678")
    await client.wait_for_bytes(8)
    table = listener_table(reactor.listeners)
    assert list(table) == [listener]
    r = row(table, listener)
    assert r["id"] == f"#{listener.number}"
    assert (r["kind"], r["local"], r["peer"]) == ("tcp", f"127.0.0.1:{listener.port}", "-")
    assert (r["protocol"], r["state"], r["conns"], r["tls"]) == (
        "RecordingEcho", "listening", "1", "no")
    assert (r["in"], r["out"]) == ("8", "8")  # what its open connections moved
    assert re.fullmatch(r"\d+s", r["age"])


async def test_listener_table_shows_a_closed_listener(reactor: ns.Reactor) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    table = listener_table([listener])
    await listener.close()
    r = row(table, listener)
    assert (r["state"], r["conns"]) == ("closed", "0")
    assert repr(listener_table(reactor.listeners)) == "(no listeners)"


async def test_tls_listener_and_connections_say_tls_yes(reactor: ns.Reactor) -> None:
    cert, key, ca = tls.self_signed()
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, tls.server_context(cert, key))
    client = await reactor.connect_tls(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol),
        tls.client_context("127.0.0.1", ca=ca),
    )
    server = await factory.accepted()
    client.transport.write(b"private")
    await client.wait_for_bytes(7)
    assert row(listener_table(reactor.listeners), listener)["tls"] == "yes"
    conns = connection_table(reactor.connections)
    for transport in (client.transport, server.transport):
        r = row(conns, transport)
        assert r["tls"] == "yes"
        assert (r["in"], r["out"]) == ("7", "7")  # plaintext bytes, not the records


async def test_a_plain_listener_next_to_a_tls_one_says_no(reactor: ns.Reactor) -> None:
    cert, key, _ = tls.self_signed()
    plain = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    secure = reactor.listen_tls(0, ns.Factory.for_protocol(ns.Protocol),
                                tls.server_context(cert, key))
    table = listener_table(reactor.listeners)
    assert (row(table, plain)["tls"], row(table, secure)["tls"]) == ("no", "yes")


class Datagrams(ns.DatagramProtocol):
    def __init__(self) -> None:
        self.received: ns.DeferredQueue[bytes] = ns.DeferredQueue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put(data)


async def test_a_datagram_listener_has_a_row(reactor: ns.Reactor) -> None:
    receiver = Datagrams()
    listener = reactor.listen_udp(0, receiver)
    sender = reactor.listen_udp(0, ns.DatagramProtocol())
    sender.transport.write(b"ping!", ("127.0.0.1", listener.port))
    assert await receiver.received.get() == b"ping!"
    table = listener_table(reactor.listeners)
    r = row(table, listener)
    assert r["id"] == f"#{listener.number}"
    assert (r["kind"], r["local"], r["protocol"]) == (
        "udp", f"127.0.0.1:{listener.port}", "Datagrams")
    assert (r["state"], r["conns"], r["tls"]) == ("listening", "0", "no")
    assert (r["in"], r["out"]) == ("5", "0")
    assert row(table, sender)["out"] == "5"


# ---- exact byte counts in the tables (issue 13)


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0"), (999, "999"), (1234, "1,234"), (1024**3, "1,073,741,824")]
)
def test_exact_bytes_has_thousands_separators(n: int, text: str) -> None:
    assert exact_bytes(n) == text


async def test_the_tables_count_bytes_exactly_with_separators(reactor: ns.Reactor) -> None:
    listener, client, server = await tcp_pair(reactor)
    client.transport.write(b"x" * 1234)
    await client.wait_for_bytes(1234)
    c = row(connection_table(reactor.connections), server.transport)
    assert (c["in"], c["out"]) == ("1,234", "1,234")  # not "1.2 KiB": a person checks these
    r = row(listener_table(reactor.listeners), listener)
    assert (r["in"], r["out"]) == ("1,234", "1,234")


def test_a_column_of_counts_with_separators_is_aligned_right() -> None:
    t = Table([5, 1234567], [("id", lambda x: f"#{x}"), ("in", exact_bytes)])
    assert repr(t).splitlines()[1:] == ["      #5          5", "#1234567  1,234,567"]
