"""What one input makes the server send goes out as one write per connection.

A registration's burst (001 to 005, LUSERS, the MOTD) is one write; the messages a client
sends to a channel in one go reach each member in one write; a client closed meanwhile
gets what it was sent (ERROR last) before its connection closes.
"""

from __future__ import annotations

from typing import Any

from irc_test_helpers import Fake, memory_server, split_line

import netshell as ns
from netshell.interfaces import Address
from netshell.testing.transports import StringTransport
from protocols.irc.server import IRCServerFactory


def counting(fake: Fake) -> list[bytes]:
    """The writes made on ``fake``'s transport from now on, each as one item."""
    writes: list[bytes] = []
    real = fake.transport.write

    def write(data: bytes) -> None:
        writes.append(bytes(data))
        real(data)

    fake.transport.write = write  # type: ignore[method-assign]
    return writes


def commands(data: bytes) -> list[str]:
    return [split_line(raw).command for raw in data.decode().split("\r\n") if raw]


class OnReactor:
    """A connection of a factory on the reactor, over a StringTransport; what the
    client sends is given to the server as it would come off the socket."""

    def __init__(self, factory: IRCServerFactory, nick: str) -> None:
        self.protocol = factory.build_protocol(None)
        self.transport = StringTransport(peer=Address("tcp", "127.0.0.1", 40000))
        self.protocol.connection_made(self.transport)
        self.protocol.data_received(f"NICK {nick}\r\nUSER u 0 * :R\r\n".encode())


def on_reactor(factory: IRCServerFactory, nick: str) -> OnReactor:
    return OnReactor(factory, nick)


def test_a_registration_burst_is_one_write() -> None:
    factory, _clock = memory_server(motd=["one", "two"])
    c = Fake(factory)
    writes = counting(c)
    c.send("NICK alice")
    c.send("USER u 0 * :Alice")
    assert len(writes) == 1
    got = commands(writes[0])
    assert got[:5] == ["001", "002", "003", "004", "005"]
    assert got[-1] == "376" and got.count("372") == 2


def test_messages_sent_in_one_go_reach_each_member_in_one_write() -> None:
    factory, _clock = memory_server()
    members = [Fake(factory) for _ in range(3)]
    for i, m in enumerate(members):
        m.register(f"user{i}")
        m.send("JOIN #c")
    for m in members:
        m.lines()
    writes = [counting(m) for m in members[1:]]
    members[0].protocol.data_received(b"".join(b"PRIVMSG #c :line %d\r\n" % i
                                               for i in range(5)))
    for w in writes:
        assert len(w) == 1
        lines = [split_line(raw) for raw in w[0].decode().split("\r\n") if raw]
        assert [line.params[-1] for line in lines] == [f"line {i}" for i in range(5)]


def test_a_client_closed_meanwhile_gets_its_lines_then_error_before_the_close() -> None:
    factory, _clock = memory_server()
    c = Fake(factory)
    c.register("alice")
    c.lines()
    c.protocol.data_received(b"PING a\r\nQUIT :bye\r\nPING b\r\n")
    got = c.lines()
    assert [line.command for line in got] == ["PONG", "ERROR"]
    assert c.transport.closed


def test_writes_outside_an_input_are_not_held() -> None:
    factory, clock = memory_server(ping_interval=10, ping_timeout=5)
    c = Fake(factory)
    c.register("alice")
    c.lines()
    writes = counting(c)
    clock.advance(11)  # a timer's PING: written at once, nothing holds it
    assert [commands(w) for w in writes] == [["PING"]]
    assert factory._batch is None


async def test_on_the_reactor_a_turn_of_the_loop_is_one_write_per_member(reactor: Any) -> None:
    """Three clients join in one turn of the loop: a member already there gets their
    three JOINs in one write, made at the start of the next turn (a thousand clients
    joining at once cost each member a write per turn, not one per join)."""
    factory = IRCServerFactory(flood_burst=0)  # no clock given: the reactor's
    old = on_reactor(factory, "old")
    await ns.sleep(0)
    old.protocol.data_received(b"JOIN #c\r\n")
    await ns.sleep(0)
    writes = counting(old)
    joiners = [on_reactor(factory, f"new{i}") for i in range(3)]
    for j in joiners:
        j.protocol.data_received(b"JOIN #c\r\n")
    assert writes == []  # held until the turn ends
    await ns.sleep(0)
    assert [commands(w) for w in writes] == [["JOIN", "JOIN", "JOIN"]]
    assert all(b" 366 " in j.transport.value() for j in joiners)


async def test_what_a_connection_gone_meanwhile_was_sent_is_not_written(reactor: Any) -> None:
    from netshell.errors import ConnectionDone
    from netshell.failure import Failure

    factory = IRCServerFactory(flood_burst=0)
    old = on_reactor(factory, "old")
    old.protocol.data_received(b"JOIN #c\r\n")
    await ns.sleep(0)
    writes = counting(old)
    new = on_reactor(factory, "new")
    new.protocol.data_received(b"JOIN #c\r\n")  # old is sent the JOIN, held
    old.protocol.connection_lost(Failure(ConnectionDone()))  # and is gone before the turn ends
    await ns.sleep(0)
    assert writes == []
    assert b" 366 " in new.transport.value()
