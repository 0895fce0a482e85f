"""What one input makes the server send goes out as one write per connection.

A registration's burst (001 to 005, LUSERS, the MOTD) is one write; the messages a client
sends to a channel in one go reach each member in one write; a client closed meanwhile
gets what it was sent (ERROR last) before its connection closes.
"""

from __future__ import annotations

from irc_test_helpers import Fake, memory_server, split_line


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
