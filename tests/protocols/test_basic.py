"""protocols.basic: line, netstring and length-prefixed framing, driven in memory."""

from __future__ import annotations

import doctest
import logging
import struct

import pytest

import protocols.basic
from netshell.testing import StringTransport, loopback
from protocols.basic import (
    Int8StringReceiver,
    Int16StringReceiver,
    Int32StringReceiver,
    LineReceiver,
    NetstringReceiver,
)

LOGGER = "netshell.protocols.basic"


# --- helpers -------------------------------------------------------------------


class Lines(LineReceiver):
    """Records lines and raw data as events, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    @property
    def lines(self) -> list[bytes]:
        return [data for kind, data in self.events if kind == "line"]

    def line_received(self, line: bytes) -> None:
        self.events.append(("line", line))

    def raw_data_received(self, data: bytes) -> None:
        self.events.append(("raw", data))


class Netstrings(NetstringReceiver):
    def __init__(self) -> None:
        self.strings: list[bytes] = []

    def string_received(self, s: bytes) -> None:
        self.strings.append(s)


def recorder(cls: type) -> type:
    """A subclass of ``cls`` that records each string it receives."""

    class Recorder(cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.strings: list[bytes] = []

        def string_received(self, s: bytes) -> None:
            self.strings.append(s)

    Recorder.__name__ = f"Recording{cls.__name__}"
    return Recorder


def connected(protocol):
    transport = StringTransport()
    protocol.connection_made(transport)
    return protocol, transport


INT_RECEIVERS = [
    pytest.param(Int8StringReceiver, "!B", id="int8"),
    pytest.param(Int16StringReceiver, "!H", id="int16"),
    pytest.param(Int32StringReceiver, "!I", id="int32"),
]


# --- LineReceiver: lines ----------------------------------------------------------


def test_line_received_for_each_line_of_one_chunk() -> None:
    p, _ = connected(Lines())
    p.data_received(b"one\r\ntwo\r\nthree\r\n")
    assert p.lines == [b"one", b"two", b"three"]


def test_line_split_across_chunks_is_delivered_whole() -> None:
    p, _ = connected(Lines())
    for chunk in (b"he", b"llo wo", b"rld\r", b"\n"):
        p.data_received(chunk)
    assert p.lines == [b"hello world"]


def test_delimiter_split_across_chunks_is_found() -> None:
    p, _ = connected(Lines())
    p.data_received(b"abc\r")
    assert p.lines == []
    p.data_received(b"\ndef\r\n")
    assert p.lines == [b"abc", b"def"]


def test_unterminated_line_waits_for_its_delimiter() -> None:
    p, _ = connected(Lines())
    p.data_received(b"no end yet")
    assert p.lines == []


def test_empty_lines_are_delivered() -> None:
    p, _ = connected(Lines())
    p.data_received(b"\r\n\r\nx\r\n")
    assert p.lines == [b"", b"", b"x"]


def test_bare_lf_is_part_of_a_crlf_line() -> None:
    p, _ = connected(Lines())
    p.data_received(b"a\nb\r\n")
    assert p.lines == [b"a\nb"]


def test_cr_before_delimiter_stays_in_the_line() -> None:
    p, _ = connected(Lines())
    p.data_received(b"a\r\r\n")
    assert p.lines == [b"a\r"]


def test_delimiter_set_on_the_class() -> None:
    class LfLines(Lines):
        delimiter = b"\n"

    p, t = connected(LfLines())
    p.data_received(b"a\nb\n")
    p.send_line(b"c")
    assert p.lines == [b"a", b"b"]
    assert t.value() == b"c\n"


def test_delimiter_set_on_an_instance() -> None:
    p, _ = connected(Lines())
    p.delimiter = b"||"
    p.data_received(b"a||b|")
    p.data_received(b"|")
    assert p.lines == [b"a", b"b"]


def test_delimiter_changed_while_a_line_is_pending() -> None:
    p, _ = connected(Lines())
    p.data_received(b"abc;def")  # scanned for CRLF already
    p.delimiter = b";"
    p.data_received(b";")
    assert p.lines == [b"abc", b"def"]


def test_self_overlapping_delimiter_is_found_across_chunks() -> None:
    p, _ = connected(Lines())
    p.delimiter = b"aab"
    p.data_received(b"xa")
    p.data_received(b"a")
    p.data_received(b"ab")
    assert p.lines == [b"xa"]


def test_empty_delimiter_raises_value_error() -> None:
    p, _ = connected(Lines())
    p.delimiter = b""
    with pytest.raises(ValueError, match="delimiter is empty"):
        p.data_received(b"abc")


def test_send_line_appends_the_delimiter() -> None:
    p, t = connected(Lines())
    p.send_line(b"PING")
    p.send_line(b"")
    assert t.value() == b"PING\r\n\r\n"


def test_send_line_rejects_str() -> None:
    p, _ = connected(Lines())
    with pytest.raises(TypeError, match="bytes"):
        p.send_line("PING")  # type: ignore[arg-type]


def test_send_line_rejects_a_line_holding_the_delimiter() -> None:
    p, t = connected(Lines())
    with pytest.raises(ValueError, match="delimiter"):
        p.send_line(b"NICK a\r\nQUIT")
    assert t.value() == b""


def test_line_received_must_be_overridden() -> None:
    p, _ = connected(LineReceiver())
    with pytest.raises(NotImplementedError, match="line_received"):
        p.data_received(b"x\r\n")


def test_exception_in_line_received_propagates_and_the_line_is_not_redelivered() -> None:
    class Fussy(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            if line == b"bad":
                raise RuntimeError("boom")

    p, _ = connected(Fussy())
    with pytest.raises(RuntimeError, match="boom"):
        p.data_received(b"bad\r\nnext\r\n")
    p.data_received(b"more\r\n")
    assert p.lines == [b"bad", b"next", b"more"]


def test_data_received_inside_line_received_is_delivered_in_order() -> None:
    class Reentrant(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            if line == b"first":
                self.data_received(b"third\r\n")

    p, _ = connected(Reentrant())
    p.data_received(b"first\r\nsecond\r\n")
    assert p.lines == [b"first", b"second", b"third"]


def test_no_lines_delivered_after_line_received_closes_the_transport() -> None:
    class Quits(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            if line == b"QUIT":
                self.transport.close()

    p, _ = connected(Quits())
    p.data_received(b"a\r\nQUIT\r\nb\r\n")
    p.data_received(b"c\r\n")
    assert p.lines == [b"a", b"QUIT"]


def test_works_before_connection_made() -> None:
    p = Lines()
    p.data_received(b"x\r\n")
    assert p.lines == [b"x"]


def test_line_receivers_talk_through_loopback() -> None:
    class Server(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            self.send_line(line[::-1])

    server, client = Server(), Lines()
    pair = loopback(server, client)
    client.send_line(b"abc")
    client.send_line(b"hello")
    pair.pump()
    assert server.lines == [b"abc", b"hello"]
    assert client.lines == [b"cba", b"olleh"]


# --- LineReceiver: MAX_LENGTH ------------------------------------------------------


def test_line_max_length_default_is_16384() -> None:
    assert LineReceiver.MAX_LENGTH == 16384


def test_line_of_exactly_max_length_is_delivered() -> None:
    p, t = connected(Lines())
    p.MAX_LENGTH = 10
    p.data_received(b"x" * 10 + b"\r\n")
    assert p.lines == [b"x" * 10]
    assert not t.disconnecting


def test_line_of_max_length_with_half_a_delimiter_pending_is_not_exceeded() -> None:
    p, t = connected(Lines())
    p.MAX_LENGTH = 10
    p.data_received(b"x" * 10 + b"\r")
    assert not t.disconnecting
    p.data_received(b"\n")
    assert p.lines == [b"x" * 10]


def test_line_longer_than_max_length_calls_line_length_exceeded_with_the_buffer() -> None:
    seen: list[bytes] = []

    class Limited(Lines):
        MAX_LENGTH = 5

        def line_length_exceeded(self, buffer: bytes) -> None:
            seen.append(buffer)

    p, _ = connected(Limited())
    p.data_received(b"ok\r\n123456\r\nafter\r\n")
    assert p.lines == [b"ok"]
    assert seen == [b"123456\r\nafter\r\n"]


def test_unterminated_buffer_past_max_length_is_exceeded_before_any_delimiter() -> None:
    p, t = connected(Lines())
    p.MAX_LENGTH = 5
    p.data_received(b"12345")
    p.data_received(b"6")
    assert not t.disconnecting  # the sixth byte might have been the "\r" ending a 5-byte line
    p.data_received(b"7")
    assert t.disconnecting
    assert p.lines == []


def test_line_length_exceeded_logs_a_warning_and_closes(caplog: pytest.LogCaptureFixture) -> None:
    p, t = connected(Lines())
    p.MAX_LENGTH = 4
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p.data_received(b"too long\r\n")
    assert t.disconnecting
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert "longer than 4 bytes" in record.getMessage()


def test_no_lines_delivered_from_the_buffer_after_line_length_exceeded() -> None:
    p, _ = connected(Lines())
    p.MAX_LENGTH = 4
    p.data_received(b"toolong\r\nok\r\n")
    p.data_received(b"later\r\n")
    assert p.lines == []
    assert p.clear_line_buffer() == b""


def test_overridden_line_length_exceeded_can_keep_the_connection() -> None:
    class Skips(Lines):
        MAX_LENGTH = 4

        def line_length_exceeded(self, buffer: bytes) -> None:
            self.events.append(("too long", buffer))

    p, t = connected(Skips())
    p.data_received(b"toolong\r\nok\r\n")
    p.data_received(b"next\r\n")
    assert p.events == [("too long", b"toolong\r\nok\r\n"), ("line", b"next")]
    assert not t.disconnecting


def test_huge_chunk_of_lines_gives_every_line() -> None:
    # Half a million lines in one chunk: a quadratic parser would hang here (suite timeout).
    p, _ = connected(Lines())
    data = b"a short line\r\n" * 500_000
    p.data_received(data)
    assert len(p.lines) == 500_000


def test_long_line_in_one_byte_chunks_is_assembled_whole() -> None:
    # Rescanning the pending line for each byte would scan ~1.25e11 bytes and hang.
    p, _ = connected(Lines())
    p.MAX_LENGTH = 500_000
    for _ in range(500_000):
        p.data_received(b"x")
    p.data_received(b"\r\n")
    assert p.lines == [b"x" * 500_000]


def test_huge_chunk_without_delimiter_is_rejected() -> None:
    p, t = connected(Lines())
    p.data_received(b"x" * 20_000_000)
    assert t.disconnecting


# --- LineReceiver: modes and the buffer ---------------------------------------------


def test_set_raw_mode_from_line_received_sends_the_rest_of_the_chunk_raw() -> None:
    class Header(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            self.set_raw_mode()

    p, _ = connected(Header())
    p.data_received(b"BODY\r\nabc\r\ndef")
    p.data_received(b"ghi")
    assert p.events == [("line", b"BODY"), ("raw", b"abc\r\ndef"), ("raw", b"ghi")]


def test_set_line_mode_from_raw_data_received_parses_extra_as_lines() -> None:
    class Body(Lines):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.set_raw_mode()

        def raw_data_received(self, data: bytes) -> None:
            super().raw_data_received(data[:3])
            self.set_line_mode(data[3:])

    p, _ = connected(Body())
    p.data_received(b"abcone\r\ntwo\r\nthr")
    p.data_received(b"ee\r\n")
    assert p.events == [("raw", b"abc"), ("line", b"one"), ("line", b"two"), ("line", b"three")]


def test_switching_modes_on_every_message_keeps_every_byte_in_order() -> None:
    class Sized(Lines):
        """'n' then n raw bytes, over and over."""

        want = 0

        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            self.want = int(line)
            self.set_raw_mode()

        def raw_data_received(self, data: bytes) -> None:
            super().raw_data_received(data[: self.want])
            self.set_line_mode(data[self.want :])

    p, _ = connected(Sized())
    p.data_received(b"3\r\nabc2\r\n\r\n0\r\n1\r\nz")
    assert p.events == [
        ("line", b"3"),
        ("raw", b"abc"),
        ("line", b"2"),
        ("raw", b"\r\n"),
        ("line", b"0"),
        ("raw", b""),
        ("line", b"1"),
        ("raw", b"z"),
    ]


def test_set_raw_mode_outside_a_callback_delivers_the_buffer_at_once() -> None:
    p, _ = connected(Lines())
    p.data_received(b"line\r\npartial")
    p.set_raw_mode()
    assert p.events == [("line", b"line"), ("raw", b"partial")]


def test_set_raw_mode_with_nothing_buffered_delivers_nothing() -> None:
    p, _ = connected(Lines())
    p.set_raw_mode()
    p.data_received(b"abc\r\n")
    assert p.events == [("raw", b"abc\r\n")]


def test_set_line_mode_outside_a_callback_parses_extra_at_once() -> None:
    p, _ = connected(Lines())
    p.set_raw_mode()
    p.set_line_mode(b"a\r\nb")
    assert p.events == [("line", b"a")]
    p.data_received(b"c\r\n")
    assert p.lines == [b"a", b"bc"]


def test_set_line_mode_extra_comes_before_the_bytes_still_buffered() -> None:
    class Switch(Lines):
        def raw_data_received(self, data: bytes) -> None:
            super().raw_data_received(data)
            # Bytes arriving during the callback are buffered after extra.
            self.data_received(b"-buffered\r\n")
            self.set_line_mode(b"extra")

    p, _ = connected(Switch())
    p.set_raw_mode()
    p.data_received(b"raw")
    assert p.events == [("raw", b"raw"), ("line", b"extra-buffered")]


def test_set_line_mode_rejects_str_extra() -> None:
    p, _ = connected(Lines())
    with pytest.raises(TypeError, match="bytes"):
        p.set_line_mode("abc")  # type: ignore[arg-type]


def test_raw_data_received_must_be_overridden_to_use_raw_mode() -> None:
    class OnlyLines(LineReceiver):
        def line_received(self, line: bytes) -> None:
            self.set_raw_mode()

    p, _ = connected(OnlyLines())
    with pytest.raises(NotImplementedError, match="raw_data_received"):
        p.data_received(b"x\r\ny")


def test_clear_line_buffer_returns_and_drops_the_pending_bytes() -> None:
    p, _ = connected(Lines())
    p.data_received(b"done\r\npending")
    assert p.clear_line_buffer() == b"pending"
    assert p.clear_line_buffer() == b""
    p.data_received(b"new\r\n")
    assert p.lines == [b"done", b"new"]


def test_clear_line_buffer_inside_line_received_drops_the_rest_of_the_chunk() -> None:
    dropped: list[bytes] = []

    class Clears(Lines):
        def line_received(self, line: bytes) -> None:
            super().line_received(line)
            dropped.append(self.clear_line_buffer())

    p, _ = connected(Clears())
    p.data_received(b"a\r\nb\r\nc")
    assert p.lines == [b"a"]
    assert dropped == [b"b\r\nc"]


def test_clear_line_buffer_before_any_data_is_empty() -> None:
    assert Lines().clear_line_buffer() == b""


# --- NetstringReceiver ------------------------------------------------------------


def test_netstring_received() -> None:
    p, _ = connected(Netstrings())
    p.data_received(b"5:hello,")
    assert p.strings == [b"hello"]


def test_netstrings_split_anywhere_are_delivered_whole() -> None:
    p, _ = connected(Netstrings())
    for byte in b"12:hello world!,3:abc,":
        p.data_received(bytes([byte]))
    assert p.strings == [b"hello world!", b"abc"]


def test_empty_netstring_is_delivered() -> None:
    p, t = connected(Netstrings())
    p.data_received(b"0:,0:,")
    assert p.strings == [b"", b""]
    assert not t.disconnecting


def test_netstring_payload_may_hold_any_byte() -> None:
    p, _ = connected(Netstrings())
    p.data_received(b"4:,:\x00\xff,")
    assert p.strings == [b",:\x00\xff"]


def test_send_string_writes_a_netstring() -> None:
    p, t = connected(Netstrings())
    p.send_string(b"hello")
    p.send_string(b"")
    assert t.value() == b"5:hello,0:,"


def test_netstring_send_string_rejects_str() -> None:
    p, _ = connected(Netstrings())
    with pytest.raises(TypeError, match="bytes"):
        p.send_string("hello")  # type: ignore[arg-type]


def test_netstring_send_string_over_max_length_raises_value_error() -> None:
    p, t = connected(Netstrings())
    p.MAX_LENGTH = 3
    with pytest.raises(ValueError, match="MAX_LENGTH"):
        p.send_string(b"abcd")
    assert t.value() == b""


def test_netstring_max_length_default_is_99999() -> None:
    assert NetstringReceiver.MAX_LENGTH == 99999


def test_netstring_of_exactly_max_length_is_delivered() -> None:
    p, _ = connected(Netstrings())
    p.MAX_LENGTH = 10
    p.data_received(b"10:0123456789,")
    assert p.strings == [b"0123456789"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"x:abc,", "non-digit b'x'", id="non-digit"),
        pytest.param(b"1a:abc,", "non-digit b'a'", id="non-digit-after-digit"),
        pytest.param(b"-1:a,", "non-digit b'-'", id="minus"),
        pytest.param(b" 3:abc,", "non-digit b' '", id="space"),
        pytest.param(b"03:abc,", "leading zero", id="leading-zero"),
        pytest.param(b"00:,", "leading zero", id="zeros"),
        pytest.param(b":abc,", "empty length prefix", id="empty-prefix"),
        pytest.param(b"1234567:", "longer than 5 digits", id="prefix-too-long"),
        pytest.param(b"3:abc;", "no ',' after a 3-byte string, got b';'", id="missing-comma"),
    ],
)
def test_bad_netstring_logs_the_reason_and_closes(
    data: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    p, t = connected(Netstrings())
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p.data_received(data)
    assert t.disconnecting
    assert p.strings == []
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 1
    assert reason in messages[0]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == LOGGER)


def test_bad_netstring_hook_gets_the_reason() -> None:
    reasons: list[str] = []

    class Hooked(Netstrings):
        def bad_netstring(self, reason: str) -> None:
            reasons.append(reason)

    p, _ = connected(Hooked())
    p.data_received(b"03:abc,")
    assert reasons == ["leading zero in length prefix b'03'"]


def test_netstring_prefix_error_is_seen_before_the_colon_arrives() -> None:
    p, t = connected(Netstrings())
    p.data_received(b"12x")
    assert t.disconnecting


def test_netstring_prefix_too_long_is_seen_before_the_colon_arrives() -> None:
    p, t = connected(Netstrings())
    p.data_received(b"12345")
    assert not t.disconnecting
    p.data_received(b"6")
    assert t.disconnecting


def test_netstring_length_over_max_length_calls_length_limit_exceeded() -> None:
    seen: list[int] = []

    class Limited(Netstrings):
        MAX_LENGTH = 10

        def length_limit_exceeded(self, length: int) -> None:
            seen.append(length)

    p, _ = connected(Limited())
    p.data_received(b"11:")
    assert seen == [11]


def test_netstring_length_over_max_length_logs_and_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p, t = connected(Netstrings())
    p.MAX_LENGTH = 1000
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p.data_received(b"5000")  # four digits, like 1000: may still be fine
        assert not t.disconnecting
        p.data_received(b":")
    assert t.disconnecting
    [message] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "5000 bytes" in message and "MAX_LENGTH=1000" in message


def test_netstrings_before_a_bad_one_are_delivered() -> None:
    p, _ = connected(Netstrings())
    p.data_received(b"1:a,2:bc,x:")
    assert p.strings == [b"a", b"bc"]


def test_bytes_after_a_bad_netstring_are_discarded_even_if_the_hook_keeps_the_connection() -> None:
    class Stubborn(Netstrings):
        def bad_netstring(self, reason: str) -> None:
            pass  # does not close

    p, t = connected(Stubborn())
    p.data_received(b"3:abc!1:a,")
    p.data_received(b"1:b,")
    assert p.strings == []
    assert not t.disconnecting


def test_netstring_receivers_talk_through_loopback() -> None:
    class Echo(Netstrings):
        def string_received(self, s: bytes) -> None:
            super().string_received(s)
            self.send_string(s.upper())

    server, client = Echo(), Netstrings()
    pair = loopback(server, client)
    client.send_string(b"abc")
    client.send_string(b"")
    pair.pump()
    assert client.strings == [b"ABC", b""]


def test_netstring_in_one_byte_chunks_is_assembled_whole() -> None:
    p, _ = connected(Netstrings())
    p.MAX_LENGTH = 500_000
    data = b"500000:" + b"x" * 500_000 + b","
    for i in range(len(data)):
        p.data_received(data[i : i + 1])
    assert p.strings == [b"x" * 500_000]


def test_string_received_must_be_overridden() -> None:
    p, _ = connected(NetstringReceiver())
    with pytest.raises(NotImplementedError, match="string_received"):
        p.data_received(b"0:,")


# --- Int8/16/32StringReceiver -------------------------------------------------------


def test_int_receivers_max_length_defaults() -> None:
    assert Int8StringReceiver.MAX_LENGTH == 255
    assert Int16StringReceiver.MAX_LENGTH == 65535
    assert Int32StringReceiver.MAX_LENGTH == 99999


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_delivers_strings_after_a_big_endian_prefix(cls: type, fmt: str) -> None:
    p, _ = connected(recorder(cls)())
    p.data_received(struct.pack(fmt, 3) + b"abc" + struct.pack(fmt, 1) + b"d")
    assert p.strings == [b"abc", b"d"]


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_prefix_and_string_split_anywhere(cls: type, fmt: str) -> None:
    p, _ = connected(recorder(cls)())
    data = struct.pack(fmt, 5) + b"hello" + struct.pack(fmt, 0)
    for i in range(len(data)):
        p.data_received(data[i : i + 1])
    assert p.strings == [b"hello", b""]


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_send_string_writes_the_prefix_then_the_string(cls: type, fmt: str) -> None:
    p, t = connected(recorder(cls)())
    p.send_string(b"abc")
    assert t.value() == struct.pack(fmt, 3) + b"abc"


def test_int16_prefix_is_big_endian() -> None:
    p, t = connected(recorder(Int16StringReceiver)())
    p.send_string(b"x" * 258)
    assert t.value()[:2] == b"\x01\x02"


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_send_string_rejects_str(cls: type, fmt: str) -> None:
    p, _ = connected(recorder(cls)())
    with pytest.raises(TypeError, match="bytes"):
        p.send_string("abc")


def test_int8_send_string_too_long_for_the_prefix_raises_value_error() -> None:
    p, t = connected(recorder(Int8StringReceiver)())
    p.MAX_LENGTH = 1000  # the one-byte prefix still cannot say 256
    with pytest.raises(ValueError, match="too long"):
        p.send_string(b"x" * 256)
    assert t.value() == b""


def test_int16_send_string_too_long_for_the_prefix_raises_value_error() -> None:
    p, _ = connected(recorder(Int16StringReceiver)())
    p.MAX_LENGTH = 10**6
    with pytest.raises(ValueError, match="too long"):
        p.send_string(b"x" * 65536)


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_send_string_over_max_length_raises_value_error(cls: type, fmt: str) -> None:
    p, _ = connected(recorder(cls)())
    p.MAX_LENGTH = 3
    with pytest.raises(ValueError, match="MAX_LENGTH=3"):
        p.send_string(b"abcd")


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_string_of_max_length_is_delivered(cls: type, fmt: str) -> None:
    p, t = connected(recorder(cls)())
    p.MAX_LENGTH = 7
    p.data_received(struct.pack(fmt, 7) + b"x" * 7)
    assert p.strings == [b"x" * 7]
    assert not t.disconnecting


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_prefix_over_max_length_calls_length_limit_exceeded(
    cls: type, fmt: str
) -> None:
    seen: list[int] = []

    class Limited(recorder(cls)):  # type: ignore[misc]
        MAX_LENGTH = 7

        def length_limit_exceeded(self, length: int) -> None:
            seen.append(length)

    p, _ = connected(Limited())
    p.data_received(struct.pack(fmt, 8))
    assert seen == [8]


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_length_limit_exceeded_logs_and_closes(
    cls: type, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    p, t = connected(recorder(cls)())
    p.MAX_LENGTH = 7
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p.data_received(struct.pack(fmt, 200))
    assert t.disconnecting
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert "200 bytes" in record.getMessage() and "MAX_LENGTH=7" in record.getMessage()


def test_int32_prefix_of_4_gib_does_not_buffer() -> None:
    p, t = connected(recorder(Int32StringReceiver)())
    p.data_received(b"\xff\xff\xff\xff" + b"x" * 1000)
    assert t.disconnecting
    assert p.strings == []


@pytest.mark.parametrize(("cls", "fmt"), INT_RECEIVERS)
def test_int_receiver_bytes_after_length_limit_exceeded_are_discarded(cls: type, fmt: str) -> None:
    class Stubborn(recorder(cls)):  # type: ignore[misc]
        MAX_LENGTH = 7

        def length_limit_exceeded(self, length: int) -> None:
            pass  # does not close

    p, _ = connected(Stubborn())
    ok = struct.pack(fmt, 1) + b"a"
    p.data_received(ok + struct.pack(fmt, 8) + ok)
    p.data_received(ok)
    assert p.strings == [b"a"]


def test_int32_string_in_one_byte_chunks_is_assembled_whole() -> None:
    p, _ = connected(recorder(Int32StringReceiver)())
    p.MAX_LENGTH = 500_000
    data = struct.pack("!I", 500_000) + b"x" * 500_000
    for i in range(len(data)):
        p.data_received(data[i : i + 1])
    assert p.strings == [b"x" * 500_000]


def test_int_receivers_talk_through_loopback() -> None:
    Receiver = recorder(Int16StringReceiver)
    server, client = Receiver(), Receiver()
    pair = loopback(server, client)
    client.send_string(b"hello")
    server.send_string(b"")
    pair.pump()
    assert server.strings == [b"hello"]
    assert client.strings == [b""]


# --- the module's own examples -------------------------------------------------------


def test_docstring_examples_run() -> None:
    result = doctest.testmod(protocols.basic, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
