"""The server's short cuts give what the long way gives.

A client with no capabilities gets its registration burst (002 to 005 and the MOTD made
once per factory, LUSERS in one piece) and its ERROR written straight to bytes; a client
with a capability that adds no tags (multi-prefix) gets every line built as a Message. The
two must read the same, byte for byte, but for the nick. PINGs and timeouts run from one
timer per server (a sweep), not one per connection.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from irc_test_helpers import Fake, memory_server

from protocols.irc.core import parse
from protocols.irc.server import IRCServerFactory, fold_params


def burst(factory: IRCServerFactory, nick: str, caps: str | None = None) -> bytes:
    c = Fake(factory)
    if caps:
        c.send("CAP LS")
        c.send(f"CAP REQ :{caps}")
        c.transport.clear()
        c.send(f"NICK {nick}")
        c.send("USER u 0 * :Real Name")
        c.send("CAP END")
    else:
        c.send(f"NICK {nick}")
        c.send("USER u 0 * :Real Name")
    data: bytes = c.transport.value()
    c.transport.clear()
    return data


def test_the_cached_burst_is_the_one_built_line_by_line() -> None:
    factory, _clock = memory_server(name="irc.test", network="Net", motd=["one", ":two", ""])
    quick = burst(factory, "quick")
    slow = burst(factory, "slow", caps="multi-prefix")
    assert b"\r\n:irc.test 001 " not in quick  # 001 comes first, once
    assert quick.count(b"\r\n") == slow.count(b"\r\n") > 15
    # LUSERS counts the one more client the second time: compare all else
    quick_lines = quick.split(b"\r\n")
    slow_lines = slow.split(b"\r\n")
    for q, s in zip(quick_lines, slow_lines, strict=True):
        if b" 25" in q[:15] or b" 26" in q[:15]:
            continue
        assert q.replace(b"quick", b"NICK") == s.replace(b"slow", b"NICK")


def test_lusers_in_one_piece_is_lusers_line_by_line() -> None:
    factory, _clock = memory_server(name="irc.test")
    a = Fake(factory)
    a.register("a")
    a.send("MODE a +i")
    a.send("JOIN #x")
    a.transport.clear()
    a.send("LUSERS")
    by_command = a.transport.value()
    proto = a.protocol
    assert proto._lusers_bytes("a") == by_command


def test_a_new_motd_is_what_the_next_client_gets() -> None:
    factory, _clock = memory_server(motd=["old"])
    assert b":- old\r\n" in burst(factory, "first")
    factory.motd = ["new", "lines"]
    second = burst(factory, "second")
    assert b":- new\r\n" in second and b":- lines\r\n" in second and b"old" not in second
    factory.motd = None
    assert b" 422 third :MOTD File is missing\r\n" in burst(factory, "third")


def test_error_on_close_reads_the_same_either_way() -> None:
    factory, _clock = memory_server(name="irc.test")
    plain = Fake(factory)
    plain.register("plain")
    capped = Fake(factory)
    capped.send("CAP REQ :multi-prefix")
    capped.send("NICK capped")
    capped.send("USER u 0 * :Real")
    capped.send("CAP END")
    for c in (plain, capped):
        c.transport.clear()
        c.send("QUIT :gone: for now")
    assert plain.transport.value() == capped.transport.value() == (
        b"ERROR :Closing Link: 127.0.0.1 (Quit: gone: for now)\r\n")


def test_one_timer_for_all_connections() -> None:
    factory, clock = memory_server(ping_interval=100, ping_timeout=10,
                                   registration_timeout=30)
    fakes = [Fake(factory) for _ in range(50)]
    for i, f in enumerate(fakes[:40]):
        f.register(f"n{i}")
    assert len(clock.calls) == 1
    clock.advance(30)  # the ten unregistered ones are closed, the rest not
    assert [f.transport.closed for f in fakes] == [False] * 40 + [True] * 10
    clock.advance(70)
    assert all(b"PING" in f.transport.value() for f in fakes[:40])
    for f in fakes[:20]:
        f.send("PONG :irc.local")
    clock.advance(10)
    assert [f.transport.closed for f in fakes[:40]] == [False] * 20 + [True] * 20
    for f in fakes[:20]:
        f.send("QUIT")
    for f in fakes:
        f.lost()  # the transports tell the connections they closed
    clock.advance(1)
    assert clock.calls == []  # no connection left: no sweep


def test_stopping_the_factory_stops_the_sweep() -> None:
    factory, clock = memory_server()
    Fake(factory).register("a")
    assert clock.calls
    factory.stop_factory()
    assert clock.calls == []


def test_a_motd_line_too_long_for_512_bytes_is_cut_in_the_burst_too() -> None:
    factory, _clock = memory_server(name="irc.test", motd=["é" * 400, "short"])
    for nick in ("n", "n" * 30):
        data = burst(factory, nick)
        lines = data.split(b"\r\n")[:-1]
        assert 510 <= max(len(line) + 2 for line in lines) <= 512  # the long one, cut
        assert b":- short" in data and lines[-1].endswith(b"End of /MOTD command.")
        data.decode("utf-8")  # cut between characters, not inside one


# ---- more than 15 parameters: RFC 2812 2.3.1's grammar


def test_a_line_of_more_than_15_parameters_is_read_not_dropped() -> None:
    factory, _clock = memory_server()
    a, b = Fake(factory), Fake(factory)
    a.register("a")
    b.register("b")
    a.send("JOIN #c")
    b.send("JOIN #c")
    b.lines()
    words = " ".join(f"w{i}" for i in range(20))
    a.send(f"PRIVMSG #c hi {words}")
    got = [line for line in b.lines() if line.command == "PRIVMSG"]
    assert [line.params for line in got] == [["#c", "hi"]]


middle = st.text(alphabet="abcxyz:09", min_size=1, max_size=4).filter(
    lambda w: not w.startswith(":"))
rest = st.text(alphabet="ab :", max_size=12).filter(lambda r: r.strip() == r and " " in r)


@given(st.lists(middle, min_size=14, max_size=14), rest)
def test_fold_params_keeps_the_rest_of_the_line_after_14_middles(middles: list[str],
                                                                  tail: str) -> None:
    for text in (f"CMD {' '.join(middles)} {tail}", f"@k=v :src CMD {' '.join(middles)} {tail}"):
        parsed = parse(text)
        if len(parsed.params) <= 15:
            continue
        folded = fold_params(text, parsed.params)
        assert folded[:14] == middles
        assert folded[14] == tail
