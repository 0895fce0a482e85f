"""protocols.wire: echo, discard, chargen, daytime and qotd, over streams and datagrams."""

from __future__ import annotations

import doctest
import logging
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import netshell as ns
import protocols.wire
from netshell.testing import Clock, StringTransport, loopback
from protocols.wire import (
    DEFAULT_QUOTE,
    LINE_WIDTH,
    PRINTABLE,
    QOTD,
    Chargen,
    ChargenDatagram,
    Daytime,
    DaytimeDatagram,
    Discard,
    Echo,
    EchoDatagram,
    QOTDDatagram,
    chargen_factory,
    chargen_lines,
    daytime_factory,
    daytime_string,
    discard_factory,
    echo_factory,
    qotd_factory,
    quote_message,
)

LOGGER = "netshell.protocols.wire"
CYCLE = len(PRINTABLE) * (LINE_WIDTH + 2)  # bytes in the 95 lines of one full pattern
WHEN = datetime(1982, 2, 22, 17, 37, 43, tzinfo=timezone(timedelta(hours=-8)))
ADDR = ("127.0.0.1", 40000)


class Collector(ns.Protocol):
    """A client that keeps what it receives and how the connection ended."""

    def __init__(self) -> None:
        self.received = b""
        self.reason: ns.Failure | None = None

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, reason: ns.Failure) -> None:
        self.reason = reason


class FlowControlledTransport(StringTransport):
    """A StringTransport that pauses its streaming producer past ``high_water`` bytes.

    ``drain()`` hands over (and forgets) what was written, then resumes the producer,
    as a real transport does once its buffer has gone to the socket.
    """

    def __init__(self, high_water: int) -> None:
        super().__init__()
        self.high_water = high_water
        self.producer_paused = False
        self.peak = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self.peak = max(self.peak, len(self.written))
        full = len(self.written) >= self.high_water
        if full and self.producer is not None and not self.producer_paused:
            self.producer_paused = True
            self.producer.pause_producing()

    def drain(self) -> bytes:
        data = self.value()
        self.clear()
        if self.producer_paused:
            self.producer_paused = False
            self.producer.resume_producing()
        return data


class DatagramTransport:
    """Records each ``write(data, addr)`` of a datagram protocol."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        assert isinstance(data, bytes)
        self.sent.append((data, addr))


def connected(protocol, transport=None):
    transport = transport if transport is not None else StringTransport()
    protocol.connection_made(transport)
    return protocol, transport


def check_chargen_stream(data: bytes, first_line: int = 0) -> int:
    """Assert ``data`` is whole RFC 864 lines from ``first_line`` on; return how many."""
    assert data.endswith(b"\r\n")
    lines = data[:-2].split(b"\r\n")
    for n, line in enumerate(lines, start=first_line):
        start = n % 95
        expected = bytes(PRINTABLE[(start + i) % 95] for i in range(LINE_WIDTH))
        assert line == expected, f"line {n}"
    return len(lines)


# --- echo and discard -------------------------------------------------------------------


def test_echo_writes_back_what_it_receives() -> None:
    p, t = connected(Echo())
    p.data_received(b"hello ")
    p.data_received(b"\x00\xffworld")
    assert t.value() == b"hello \x00\xffworld"


def test_echo_through_loopback() -> None:
    client = Collector()
    pair = loopback(Echo(), client)
    pair.client_transport.write(b"ping")
    pair.pump()
    assert client.received == b"ping"


def test_discard_answers_nothing_and_keeps_the_connection() -> None:
    p, t = connected(Discard())
    p.data_received(b"x" * 1000)
    assert t.value() == b""
    assert not t.disconnecting


def test_discard_through_loopback() -> None:
    client = Collector()
    pair = loopback(Discard(), client)
    pair.client_transport.write(b"into the void")
    pair.pump()
    assert client.received == b""
    assert pair.server_transport.bytes_received == 13


# --- chargen: the pattern ---------------------------------------------------------------


def test_chargen_first_line_is_space_to_lowercase_g() -> None:
    assert chargen_lines(0, 1) == bytes(range(0x20, 0x68)) + b"\r\n"


def test_chargen_line_n_starts_at_character_n_and_wraps_round() -> None:
    assert chargen_lines(1, 1).startswith(b'!"#')
    assert chargen_lines(94, 1).startswith(b"~ !")
    assert chargen_lines(23, 1).endswith(b"}~\r\n")
    assert chargen_lines(24, 1).endswith(b"~ \r\n")


def test_chargen_pattern_repeats_every_95_lines() -> None:
    assert chargen_lines(0, 190) == chargen_lines(0, 95) * 2
    assert chargen_lines(95, 1) == chargen_lines(0, 1)


def test_chargen_lines_are_72_printable_characters_then_crlf() -> None:
    lines = chargen_lines(0, 95).split(b"\r\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert len(line) == 72
        assert all(0x20 <= b <= 0x7E for b in line)


def test_chargen_sends_the_rfc864_line_format() -> None:
    p, t = connected(Chargen(clock=Clock()))
    assert check_chargen_stream(t.value()) >= 95
    p.stop_producing()


# --- chargen: flow control ---------------------------------------------------------------


def test_chargen_registers_itself_as_a_streaming_producer() -> None:
    p, t = connected(Chargen(clock=Clock()))
    assert t.producer is p
    assert t.streaming is True


def test_chargen_writes_at_most_one_burst_per_turn() -> None:
    clock = Clock()
    p, t = connected(Chargen(clock=clock))
    assert 0 < len(t.value()) <= p.burst_size + CYCLE
    assert len(clock.calls) == 1  # the next turn


def test_chargen_writes_more_on_the_next_turn() -> None:
    clock = Clock()
    _p, t = connected(Chargen(clock=clock), FlowControlledTransport(high_water=10**6))
    first = len(t.value())
    clock.advance(0)  # runs turns until the transport pauses it
    assert len(t.value()) > first
    assert t.producer_paused
    check_chargen_stream(t.value())


def test_chargen_stops_writing_when_paused() -> None:
    clock = Clock()
    p, t = connected(Chargen(clock=clock))
    p.pause_producing()
    written = len(t.value())
    assert clock.calls == []
    clock.advance(1)
    assert len(t.value()) == written


def test_chargen_resume_producing_writes_again() -> None:
    clock = Clock()
    p, t = connected(Chargen(clock=clock))
    p.pause_producing()
    t.clear()
    p.resume_producing()
    assert 0 < len(t.value()) <= p.burst_size + CYCLE
    p.stop_producing()


def test_chargen_keeps_the_buffer_bounded_when_the_reader_is_slow() -> None:
    clock = Clock()
    t = FlowControlledTransport(high_water=100_000)
    _p, _ = connected(Chargen(clock=clock), t)
    for _ in range(50):
        clock.advance(0.01)
    assert t.producer_paused
    assert t.peak < t.high_water + CYCLE


def test_chargen_stream_is_continuous_across_pauses() -> None:
    clock = Clock()
    t = FlowControlledTransport(high_water=50_000)
    connected(Chargen(clock=clock), t)
    received = b""
    for _ in range(10):
        clock.advance(0)
        received += t.drain()
    assert len(received) > 10 * 50_000
    check_chargen_stream(received)


def test_chargen_stop_producing_cancels_the_next_turn() -> None:
    clock = Clock()
    p, t = connected(Chargen(clock=clock))
    p.stop_producing()
    written = len(t.value())
    assert clock.calls == []
    p.resume_producing()  # stopped for good
    clock.advance(1)
    assert len(t.value()) == written


def test_chargen_connection_lost_stops_it() -> None:
    clock = Clock()
    p, _t = connected(Chargen(clock=clock))
    p.connection_lost(ns.Failure(ns.ConnectionDone("bye")))
    assert clock.calls == []
    assert p.stopped


def test_chargen_stops_when_the_transport_is_closing() -> None:
    clock = Clock()
    p, t = connected(Chargen(clock=clock))
    t.close()
    clock.advance(0)  # would raise RuntimeError if it wrote after close
    assert p.stopped
    assert clock.calls == []


def test_chargen_throws_received_data_away() -> None:
    clock = Clock()
    p, t = connected(Chargen(clock=clock))
    t.clear()
    p.data_received(b"hello")
    assert t.value() == b""
    p.stop_producing()


def test_chargen_without_register_producer_sends_one_burst_and_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class NoFlowControl:
        def __init__(self) -> None:
            self.written = b""
            self.closed = False

        def write(self, data: bytes) -> None:
            self.written += data

        def close(self) -> None:
            self.closed = True

    clock = Clock()
    t = NoFlowControl()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p, _ = connected(Chargen(clock=clock), t)
    assert 0 < len(t.written) <= p.burst_size + CYCLE
    assert t.closed
    assert clock.calls == []
    assert any("no register_producer" in r.getMessage() for r in caplog.records)


def test_chargen_through_loopback_until_the_client_hangs_up() -> None:
    clock = Clock()
    server, client = Chargen(clock=clock), Collector()
    pair = loopback(server, client)
    pair.pump()
    # No clock.advance() here: a loopback transport never pauses its producer, so
    # chargen would take a new turn forever.
    check_chargen_stream(client.received)
    pair.client_transport.close()
    pair.pump()
    assert client.reason is not None and client.reason.check(ns.ConnectionDone)
    assert server.stopped
    assert clock.calls == []


def test_chargen_uses_the_reactor_when_given_no_clock(reactor) -> None:
    t = FlowControlledTransport(high_water=3 * Chargen.burst_size)
    p, _ = connected(Chargen(), t)

    async def later() -> None:
        await ns.sleep(0.05)

    reactor.run_until(later(), timeout=10)
    assert p.clock is reactor
    assert t.producer_paused
    assert len(t.value()) >= 3 * Chargen.burst_size
    p.stop_producing()


def test_chargen_factory_passes_the_clock() -> None:
    clock = Clock()
    p = chargen_factory(clock=clock).build_protocol(None)
    assert isinstance(p, Chargen)
    assert p.clock is clock


# --- daytime -----------------------------------------------------------------------------


def test_daytime_sends_one_line_then_closes() -> None:
    _p, t = connected(Daytime(now=lambda: WHEN))
    assert t.value() == b"Monday, February 22, 1982 17:37:43 -0800\r\n"
    assert t.value().count(b"\r\n") == 1
    assert t.closed


def test_daytime_string_is_weekday_month_day_year_time_zone() -> None:
    line = daytime_string(datetime(2024, 12, 31, 23, 59, 5, tzinfo=UTC))
    assert line == "Tuesday, December 31, 2024 23:59:05 +0000"


def test_daytime_uses_the_current_local_time_by_default() -> None:
    _p, t = connected(Daytime())
    line = t.value().decode("ascii")
    assert re.fullmatch(
        r"[A-Z][a-z]+day, [A-Z][a-z]+ \d{1,2}, \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n", line
    )
    sent = datetime.strptime(line.split(", ", 1)[1].strip(), "%B %d, %Y %H:%M:%S %z")
    assert abs(sent - datetime.now(UTC)) < timedelta(seconds=60)


def test_daytime_string_takes_a_naive_datetime_as_local_time() -> None:
    naive = datetime(2000, 6, 1, 12, 0, 0)
    assert daytime_string(naive) == daytime_string(naive.astimezone())


def test_daytime_throws_received_data_away() -> None:
    p, t = connected(Daytime(now=lambda: WHEN))
    t.clear()
    p.data_received(b"what time is it?")
    assert t.value() == b""


def test_daytime_through_loopback() -> None:
    client = Collector()
    pair = loopback(Daytime(now=lambda: WHEN), client)
    pair.pump()
    assert client.received == b"Monday, February 22, 1982 17:37:43 -0800\r\n"
    assert client.reason is not None and client.reason.check(ns.ConnectionDone)


def test_daytime_factory_passes_now() -> None:
    p = daytime_factory(now=lambda: WHEN).build_protocol(None)
    _, t = connected(p)
    assert t.value().startswith(b"Monday, February 22, 1982")


# --- qotd ----------------------------------------------------------------------------------


def test_qotd_sends_the_quote_then_closes() -> None:
    _p, t = connected(QOTD("Hello, world"))
    assert t.value() == b"Hello, world\r\n"
    assert t.closed


def test_qotd_default_quote_is_sent() -> None:
    _p, t = connected(QOTD())
    assert t.value() == quote_message(DEFAULT_QUOTE)
    assert len(t.value()) < 512


def test_qotd_line_ends_become_crlf() -> None:
    assert quote_message("one\ntwo\r\nthree\rfour") == b"one\r\ntwo\r\nthree\r\nfour\r\n"
    assert quote_message(b"ends in newline\n") == b"ends in newline\r\n"


def test_qotd_message_of_511_bytes_is_accepted() -> None:
    _p, t = connected(QOTD("x" * 509))
    assert len(t.value()) == 511


def test_qotd_message_of_512_bytes_is_rejected() -> None:
    with pytest.raises(ValueError, match="under 512 bytes"):
        QOTD("x" * 510)


def test_qotd_rejects_non_ascii() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        QOTD("caf\u00e9")


def test_qotd_rejects_control_characters() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        QOTD(b"tab\there")


def test_qotd_rejects_a_quote_that_is_not_text() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        QOTD(42)  # type: ignore[arg-type]


def test_qotd_calls_a_callable_quote_for_each_connection() -> None:
    quotes = iter(["first", "second"])
    factory = qotd_factory(lambda: next(quotes))
    sent = []
    for _ in range(2):
        _, t = connected(factory.build_protocol(None))
        sent.append(t.value())
    assert sent == [b"first\r\n", b"second\r\n"]


def test_qotd_callable_returning_a_bad_quote_raises_from_connection_made() -> None:
    with pytest.raises(ValueError, match="under 512 bytes"):
        connected(QOTD(lambda: "x" * 600))


def test_qotd_factory_checks_the_quote_at_once() -> None:
    with pytest.raises(ValueError):
        qotd_factory("x" * 1000)


def test_qotd_through_loopback() -> None:
    client = Collector()
    pair = loopback(qotd_factory("Less is more.").build_protocol(None), client)
    pair.pump()
    assert client.received == b"Less is more.\r\n"
    assert client.reason is not None and client.reason.check(ns.ConnectionDone)


# --- datagrams -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [EchoDatagram, ChargenDatagram, DaytimeDatagram, QOTDDatagram])
def test_datagram_variants_are_datagram_protocols(cls: type) -> None:
    assert issubclass(cls, ns.DatagramProtocol)


def test_echo_datagram_sends_each_datagram_back_to_its_sender() -> None:
    p, t = connected(EchoDatagram(), DatagramTransport())
    p.datagram_received(b"ping", ADDR)
    p.datagram_received(b"", ("127.0.0.1", 40001))
    assert t.sent == [(b"ping", ADDR), (b"", ("127.0.0.1", 40001))]


def test_daytime_datagram_answers_with_the_daytime_line() -> None:
    p, t = connected(DaytimeDatagram(now=lambda: WHEN), DatagramTransport())
    p.datagram_received(b"anything", ADDR)
    assert t.sent == [(b"Monday, February 22, 1982 17:37:43 -0800\r\n", ADDR)]


def test_qotd_datagram_answers_with_the_quote() -> None:
    p, t = connected(QOTDDatagram("Short and sweet."), DatagramTransport())
    p.datagram_received(b"", ADDR)
    p.datagram_received(b"again", ADDR)
    assert t.sent == [(b"Short and sweet.\r\n", ADDR)] * 2


def test_qotd_datagram_checks_the_quote() -> None:
    with pytest.raises(ValueError):
        QOTDDatagram("x" * 600)


def test_chargen_datagram_answers_0_to_512_bytes_of_the_pattern() -> None:
    p, t = connected(ChargenDatagram(rng=random.Random(0)), DatagramTransport())
    for _ in range(300):
        p.datagram_received(b"", ADDR)
    sizes = {len(data) for data, _ in t.sent}
    assert all(0 <= n <= 512 for n in sizes)
    assert len(sizes) > 50  # random sizes, not one
    pattern = chargen_lines(0, 95)
    assert all(pattern.startswith(data) and addr == ADDR for data, addr in t.sent)


def test_chargen_datagram_sizes_reach_both_bounds() -> None:
    class Bounds(random.Random):
        def __init__(self) -> None:
            super().__init__()
            self.values = iter([0, 512])

        def randint(self, a: int, b: int) -> int:
            assert (a, b) == (0, 512)
            return next(self.values)

    p, t = connected(ChargenDatagram(rng=Bounds()), DatagramTransport())
    p.datagram_received(b"x", ADDR)
    p.datagram_received(b"x", ADDR)
    assert [len(data) for data, _ in t.sent] == [0, 512]


# --- factories and examples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "cls"),
    [
        (echo_factory, Echo),
        (discard_factory, Discard),
        (chargen_factory, Chargen),
        (daytime_factory, Daytime),
        (qotd_factory, QOTD),
    ],
)
def test_factories_are_netshell_factories_of_their_protocol(make, cls: type) -> None:
    factory = make()
    assert isinstance(factory, ns.Factory)
    p = factory.build_protocol(None)
    assert type(p) is cls
    assert p.factory is factory


def test_each_factory_call_makes_a_new_factory() -> None:
    assert echo_factory() is not echo_factory()


def test_docstring_examples_run() -> None:
    result = doctest.testmod(protocols.wire)
    assert result.attempted > 0
    assert result.failed == 0
