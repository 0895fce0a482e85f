"""The IRC server under faults and load, and over TLS: many clients on one channel, a client
that vanishes mid-burst, over-long lines in pieces, relayed lines kept within 512 bytes."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from irc_test_helpers import (
    Fake,
    RawIRC,
    by_command,
    connect_registered,
    memory_server,
    split_line,
)

from netshell import tls
from protocols import irc as ns_irc


def test_a_thousand_clients_join_one_channel() -> None:
    factory, _ = memory_server()
    clients = []
    for i in range(1000):
        c = Fake(factory)
        c.register(f"user{i}")
        c.send("JOIN #big")
        c.transport.clear()
        clients.append(c)
    channel = factory.state.find_channel("#big")
    assert channel is not None and len(channel.members) == 1000
    for c in clients:
        c.transport.clear()
    clients[0].send("PRIVMSG #big :hello everyone")
    for c in clients[1:]:
        assert c.transport.value() == b":user0!~u@127.0.0.1 PRIVMSG #big :hello everyone\r\n"
    assert clients[0].transport.value() == b""
    lines = clients[500].take("NAMES #big")
    names = [n for line in by_command(lines, "353") for n in line.params[3].split()]
    assert len(names) == 1000 and names.count("@user0") == 1
    assert all(len(line.raw.encode()) + 2 <= 512 for line in lines)


def test_relayed_messages_fit_in_512_bytes() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    a.register("a" * 29)  # an odd number of bytes left for the text
    b = Fake(factory)
    b.register("b")
    text = "\u00e9" * 240  # 480 bytes: fits coming in, not going out with the source
    a.send(f"PRIVMSG b :{text}")
    raw = b.transport.value()
    assert len(raw) <= 512
    line = split_line(raw.decode("utf-8").rstrip("\r\n"))  # not cut inside a character
    assert (line.source, line.command, line.params[0]) == (
        f"{'a' * 29}!~u@127.0.0.1", "PRIVMSG", "b")
    assert set(line.params[1]) == {"\u00e9"} and 200 < len(line.params[1]) < 240
    b.transport.clear()
    a.send("PRIVMSG b :short")
    assert b.transport.value().endswith(b" PRIVMSG b short\r\n")


def test_long_line_in_pieces_then_a_good_one() -> None:
    factory, _ = memory_server()
    c = Fake(factory)
    c.register("alice")
    for _ in range(10):
        c.protocol.data_received(b"x" * 100)
    c.protocol.data_received(b"yy\r\nPING :after\r\n")
    lines = c.lines()
    assert [(line.command, line.params) for line in lines] == [
        ("417", ["alice", "Input line was too long"]), ("PONG", ["irc.local", "after"])]


def test_client_vanishing_mid_burst_is_a_quit() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    a.register("alice")
    a.send("JOIN #x")
    b = Fake(factory)
    b.register("bob")
    a.lines()
    # a burst that ends half way through a line, then the connection is gone
    b.protocol.data_received(b"JOIN #x\r\nPRIVMSG #x :one\r\nPRIVMSG #x :tw")
    b.lost()
    got = [(line.command, line.params) for line in a.lines()]
    assert got == [("JOIN", ["#x"]), ("PRIVMSG", ["#x", "one"]), ("QUIT", ["Connection closed"])]
    assert factory.state.find_user("bob") is None
    b.protocol.data_received(b"o\r\nPRIVMSG #x :three\r\n")  # late bytes are ignored
    assert a.lines() == []


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.fixture
def tls_server(certs: tuple[bytes, bytes, bytes], reactor: Any) -> Iterator[Any]:
    listener = ns_irc.serve(tls=tls.server_context(certs[0], certs[1]), sts_duration=3600)
    yield listener
    listener.close()


async def test_tls_listener_offers_sts(tls_server: Any, certs: tuple[bytes, bytes, bytes]
                                       ) -> None:
    context = ssl.create_default_context(cadata=certs[2].decode())
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", tls_server.port, ssl=context, server_hostname="localhost"), 10)
    c = RawIRC(reader, writer)
    c.send("CAP LS 302")
    ls = await c.expect("CAP")
    assert "sts=duration=3600" in ls.params[2].split()
    c.send("CAP REQ sts")
    assert (await c.expect("CAP")).params[1] == "NAK"  # sts is never requested
    c.send("CAP END")
    lines = await c.register("alice")
    assert lines[0].command == "001"
    c.close()


async def test_plain_listener_offers_no_sts(reactor: Any) -> None:
    listener = ns_irc.serve()
    try:
        c = await RawIRC.connect(listener.port)
        c.send("CAP LS 302")
        ls = await c.expect("CAP")
        assert not any(cap.startswith("sts") for cap in ls.params[2].split())
        c.close()
        other = await connect_registered(listener.port, "bob")
        other.close()
    finally:
        listener.close()


def test_client_tags_over_4094_bytes_are_417() -> None:
    factory, _ = memory_server()
    c = Fake(factory)
    c.register("alice")
    c.send("@+a=" + "x" * 4000 + " PING ok")  # 4006 bytes of tags: within the limit
    assert [line.command for line in c.lines()] == ["PONG"]
    c.send("@+a=" + "x" * 4100 + " PING no")
    assert [(line.command, line.params) for line in c.lines()] == [
        ("417", ["alice", "Input line was too long"])]
    c.send("PING still")
    assert [line.params for line in c.lines()] == [["irc.local", "still"]]


def test_shutdown_says_error_and_quit() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    a.register("alice")
    b = Fake(factory)
    b.register("bob")
    a.send("JOIN #x")
    b.send("JOIN #x")
    a.lines()
    b.lines()
    b.protocol.stop_gracefully()
    assert [line.command for line in b.lines()] == ["ERROR"]
    assert b.transport.closed
    assert [(line.command, line.params) for line in a.lines()] == [
        ("QUIT", ["Server shutting down"])]


def test_connection_limits() -> None:
    factory, _ = memory_server(max_connections=3, max_connections_per_ip=2)
    a1 = Fake(factory, host="10.0.0.1")
    a2 = Fake(factory, host="10.0.0.1")
    a3 = Fake(factory, host="10.0.0.1")
    assert not a1.transport.closed and not a2.transport.closed
    assert a3.transport.closed
    assert "Too many connections from this IP" in a3.lines()[0].params[0]
    b1 = Fake(factory, host="10.0.0.2")
    b2 = Fake(factory, host="10.0.0.3")
    assert not b1.transport.closed
    assert b2.transport.closed and "Too many connections" in b2.lines()[0].params[0]
    for refused in (a3, b2):
        refused.lost()
    a1.lost()  # a place comes free, for that address too
    a4 = Fake(factory, host="10.0.0.1")
    assert not a4.transport.closed
    assert factory.per_ip == {"10.0.0.1": 2, "10.0.0.2": 1}


async def test_plain_listener_points_to_the_tls_port(reactor: Any) -> None:
    listener = ns_irc.serve(sts_port=6697)
    try:
        c = await RawIRC.connect(listener.port)
        c.send("CAP LS 302")
        ls = await c.expect("CAP")
        assert "sts=port=6697" in ls.params[2].split()
        c.close()
    finally:
        listener.close()


def test_a_clients_tags_may_take_4096_bytes_with_the_at_and_the_space() -> None:
    # irctest message_tags.testLengthLimits: 4094 bytes of tag data, 4096 with '@' and ' '
    factory, _ = memory_server()
    c = Fake(factory)
    c.register("alice")
    c.send("@foo=bar;+baz=" + "a" * 4081 + " PING ok")  # exactly 4096
    assert [line.command for line in c.lines()] == ["PONG"]
    c.send("@foo=bar;+baz=" + "a" * 4082 + " PING no")  # 4097
    assert [line.command for line in c.lines()] == ["417"]


def test_usernames_fit_userlen_with_the_tilde() -> None:
    factory, _ = memory_server()
    c = Fake(factory)
    c.send("NICK abc")
    c.send("USER abcdefghijklmnop 0 * :R")
    welcome = next(line for line in c.lines() if line.command == "001")
    assert welcome.params[-1].endswith("abc!~abcdefghi@127.0.0.1")
    assert "USERLEN=10" in " ".join(
        p for line in factory_isupport_lines(factory) for p in line)


def factory_isupport_lines(factory: object) -> list[list[str]]:
    c = Fake(factory)  # type: ignore[arg-type]
    c.send("NICK isupport")
    c.send("USER u 0 * :R")
    return [line.params for line in c.lines() if line.command == "005"]


def test_a_target_named_twice_gets_the_message_once() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    b = Fake(factory)
    a.register("alice")
    b.register("bob")
    b.lines()
    a.send("PRIVMSG bob,BOB,bob :once")
    assert [line.params for line in b.lines()] == [["bob", "once"]]


async def test_a_client_that_does_not_read_is_dropped_past_its_sendq(reactor: Any) -> None:
    # A member that never reads while another talks to the channel: the server holds at
    # most sendq bytes for it (past what the kernel holds), then drops it and its
    # neighbours see it quit; the talker and the server go on.
    server = ns_irc.serve(flood_burst=0, sendq=64 * 1024)
    try:
        slow = await connect_registered(server.port, "slow")
        await slow.join("#x")
        talker = await connect_registered(server.port, "talker")
        await talker.join("#x")
        await talker.sync()
        line = b"PRIVMSG #x :" + b"y" * 400 + b"\r\n"
        quit_line = None
        for _ in range(200):  # up to 200 x 100 lines (8 MB): far more than the buffers
            talker.writer.write(line * 100)
            await talker.writer.drain()
            seen = await talker.sync()
            quits = [x for x in seen if x.command == "QUIT"]
            if quits:
                quit_line = quits[0]
                break
        assert quit_line is not None, "the reader that never reads was never dropped"
        assert quit_line.source is not None and quit_line.source.startswith("slow!")
        assert quit_line.params == ["SendQ exceeded"]
        assert server.factory.state.find_user("slow") is None
        talker.send("PRIVMSG #x :still here")
        assert await talker.sync() == []
        slow.close()
        talker.close()
    finally:
        await server.close()
