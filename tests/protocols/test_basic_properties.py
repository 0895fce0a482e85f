"""protocols.basic under hypothesis: any split of the stream, any garbage, any mode switch.

The framing must not care how the bytes were cut into chunks: every split of
the same stream gives the same messages and the same decision to hang up. A
switch between line and raw mode never loses or reorders a byte, and no
input makes ``data_received`` raise: it yields messages, waits for more, or
closes the connection.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from netshell.testing import StringTransport
from protocols.basic import (
    Int8StringReceiver,
    Int16StringReceiver,
    Int32StringReceiver,
    LengthPrefixedReceiver,
    LineReceiver,
    NetstringReceiver,
)

SETTINGS = settings(max_examples=200, deadline=None)

# --- receivers that record what they get ---------------------------------------------


class Lines(LineReceiver):
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def line_received(self, line: bytes) -> None:
        self.messages.append(line)


class Netstrings(NetstringReceiver):
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def string_received(self, s: bytes) -> None:
        self.messages.append(s)


def _int_recorder(cls: type[LengthPrefixedReceiver]) -> type[LengthPrefixedReceiver]:
    class Recorder(cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.messages: list[bytes] = []

        def string_received(self, s: bytes) -> None:
            self.messages.append(s)

    return Recorder


Int8s = _int_recorder(Int8StringReceiver)
Int16s = _int_recorder(Int16StringReceiver)
Int32s = _int_recorder(Int32StringReceiver)


def feed(protocol, chunks: list[bytes]) -> tuple[list[bytes], bool]:
    """Deliver ``chunks`` in turn; what was received, and whether the protocol hung up."""
    transport = StringTransport()
    protocol.connection_made(transport)
    for chunk in chunks:
        protocol.data_received(chunk)
    return protocol.messages, transport.disconnecting


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    """``stream`` cut at each of ``cuts`` (repeated cuts give empty chunks)."""
    points = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(points)]


cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=25)

# Bytes that matter to the parsers, mixed into random binary.
TOKENS = [b"\r", b"\n", b"\r\n", b":", b",", b"0", b"1", b"9", b"12", b"5:hello,", b"\x00", b"\xff"]
garbage = st.lists(st.one_of(st.binary(max_size=12), st.sampled_from(TOKENS)), max_size=40).map(
    b"".join
)


# --- any split gives the same messages ----------------------------------------------

DELIMITERS = [b"\r\n", b"\n", b"\x00", b"aab", b"--"]


def _frames_cleanly(message: bytes, delimiter: bytes) -> bool:
    return (message + delimiter).find(delimiter) == len(message)


@SETTINGS
@given(st.data(), st.sampled_from(DELIMITERS))
def test_lines_survive_any_split(data: st.DataObject, delimiter: bytes) -> None:
    pieces = st.lists(st.sampled_from([b"a", b"b", b"\r", b"\n", b"\x00", b"-", b"xyz"]))
    message = st.one_of(st.binary(max_size=40), pieces.map(b"".join)).filter(
        lambda m: _frames_cleanly(m, delimiter)
    )
    messages = data.draw(st.lists(message, max_size=20))
    stream = b"".join(m + delimiter for m in messages)
    p = Lines()
    p.delimiter = delimiter
    got, closed = feed(p, split(stream, data.draw(cuts)))
    assert got == messages
    assert not closed


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=20), cuts)
def test_netstrings_survive_any_split(messages: list[bytes], where: list[int]) -> None:
    stream = b"".join(b"%d:%b," % (len(m), m) for m in messages)
    got, closed = feed(Netstrings(), split(stream, where))
    assert got == messages
    assert not closed


@SETTINGS
@given(
    st.sampled_from([(Int8s, "!B", 255), (Int16s, "!H", 2000), (Int32s, "!I", 2000)]),
    st.data(),
)
def test_length_prefixed_strings_survive_any_split(
    case: tuple[Callable[[], LengthPrefixedReceiver], str, int], data: st.DataObject
) -> None:
    cls, fmt, longest = case
    messages = data.draw(st.lists(st.binary(max_size=longest), max_size=10))
    stream = b"".join(struct.pack(fmt, len(m)) + m for m in messages)
    got, closed = feed(cls(), split(stream, data.draw(cuts)))
    assert got == messages
    assert not closed


@SETTINGS
@given(st.lists(st.binary(max_size=80), max_size=10), cuts)
def test_what_send_string_writes_is_read_back(messages: list[bytes], where: list[int]) -> None:
    for cls in (Netstrings, Int8s, Int16s, Int32s):
        sender = cls()
        sender_transport = StringTransport()
        sender.connection_made(sender_transport)
        for m in messages:
            sender.send_string(m)
        got, closed = feed(cls(), split(sender_transport.value(), where))
        assert got == messages, cls
        assert not closed


@SETTINGS
@given(st.lists(st.binary(max_size=40).filter(lambda m: b"\r\n" not in m), max_size=10), cuts)
def test_what_send_line_writes_is_read_back(lines: list[bytes], where: list[int]) -> None:
    sender, transport = Lines(), StringTransport()
    sender.connection_made(transport)
    for line in lines:
        sender.send_line(line)
    got, _ = feed(Lines(), split(transport.value(), where))
    assert got == lines


# --- garbage: never raises, and the split does not change the outcome ---------------


def _line_rest_ok(rest: bytes, p: LineReceiver) -> bool:
    return p.delimiter not in rest and len(rest) < p.MAX_LENGTH + len(p.delimiter)


def _netstring_rest_ok(rest: bytes, p: NetstringReceiver) -> bool:
    digits = len(str(p.MAX_LENGTH))
    m = re.fullmatch(rb"(0|[1-9][0-9]{0,%d})(?::(.*))?" % (digits - 1), rest, re.S)
    if not rest:
        return True
    if m is None:
        return False
    if m.group(2) is None:
        return True
    return int(m.group(1)) <= p.MAX_LENGTH and len(m.group(2)) <= int(m.group(1))


def _int_rest_ok(rest: bytes, p: LengthPrefixedReceiver) -> bool:
    size = struct.calcsize(p.prefix_format)
    if len(rest) < size:
        return True
    (length,) = struct.unpack_from(p.prefix_format, rest)
    return length <= p.MAX_LENGTH and len(rest) - size < length


def _encode_line(m: bytes, p: LineReceiver) -> bytes:
    return m + p.delimiter


def _encode_netstring(m: bytes, p: NetstringReceiver) -> bytes:
    return b"%d:%b," % (len(m), m)


def _encode_int(m: bytes, p: LengthPrefixedReceiver) -> bytes:
    return struct.pack(p.prefix_format, len(m)) + m


def _small_lines() -> Lines:
    p = Lines()
    p.MAX_LENGTH = 20
    return p


def _small_netstrings() -> Netstrings:
    p = Netstrings()
    p.MAX_LENGTH = 30
    return p


def _small(cls: Callable[[], LengthPrefixedReceiver], limit: int) -> Callable[[], object]:
    def make() -> LengthPrefixedReceiver:
        p = cls()
        p.MAX_LENGTH = limit
        return p

    return make


GARBAGE_CASES = [
    (_small_lines, _encode_line, _line_rest_ok),
    (_small_netstrings, _encode_netstring, _netstring_rest_ok),
    (Netstrings, _encode_netstring, _netstring_rest_ok),
    (_small(Int8s, 20), _encode_int, _int_rest_ok),
    (_small(Int16s, 30), _encode_int, _int_rest_ok),
    (_small(Int32s, 30), _encode_int, _int_rest_ok),
]


@SETTINGS
@given(st.sampled_from(GARBAGE_CASES), garbage, cuts)
def test_garbage_never_raises_and_any_split_decides_alike(case, stream: bytes, where) -> None:
    make, encode, rest_ok = case
    whole, whole_closed = feed(make(), [stream])
    p = make()
    got, closed = feed(p, split(stream, where))
    # The same messages, and the same decision to hang up, however it was cut.
    assert (got, closed) == (whole, whole_closed)
    # What was delivered is exactly how the stream began...
    consumed = b"".join(encode(m, p) for m in got)
    assert stream.startswith(consumed)
    # ...and unless the peer was cut off, the rest may still become a message.
    if not closed:
        assert rest_ok(stream[len(consumed) :], p)


@SETTINGS
@given(garbage, cuts)
def test_garbage_to_default_line_receiver_yields_lines_or_waits(stream: bytes, where) -> None:
    got, closed = feed(Lines(), split(stream, where))
    assert not closed  # nothing here is 16 KiB long
    assert got == stream.split(b"\r\n")[:-1]


# --- mode switching -------------------------------------------------------------------

# A plan: lines, and raw blocks of known sizes, in some order. The protocol is
# told the plan and switches modes from inside its callbacks as it goes.
plan_item = st.one_of(
    st.binary(max_size=20).filter(lambda b: _frames_cleanly(b, b"\r\n")).map(lambda b: ("line", b)),
    st.binary(max_size=30).map(lambda b: ("raw", b)),
)


class Planned(LineReceiver):
    """Follows a plan of ("line", text) and ("raw", body) items, switching modes as it goes."""

    def __init__(self, plan: list[tuple[str, bytes]]) -> None:
        self.kinds = [kind for kind, _ in plan]
        self.sizes = [len(body) for _, body in plan]
        self.events: list[tuple[str, bytes]] = []
        self.raw = b""

    def _raw_next(self) -> bool:
        """Record any empty raw items due now; tell whether a raw item comes next."""
        while self._next_is_raw() and self.sizes[len(self.events)] == 0:
            self.events.append(("raw", b""))
        return self._next_is_raw()

    def _next_is_raw(self) -> bool:
        i = len(self.events)
        return i < len(self.kinds) and self.kinds[i] == "raw"

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self._raw_next():
            self.set_raw_mode()

    def line_received(self, line: bytes) -> None:
        self.events.append(("line", line))
        if self._raw_next():
            self.set_raw_mode()

    def raw_data_received(self, data: bytes) -> None:
        self.raw += data
        while self._next_is_raw() and len(self.raw) >= self.sizes[len(self.events)]:
            size = self.sizes[len(self.events)]
            self.events.append(("raw", self.raw[:size]))
            self.raw = self.raw[size:]
            self._raw_next()
        if not self._next_is_raw():
            rest, self.raw = self.raw, b""
            self.set_line_mode(rest)


@SETTINGS
@given(st.lists(plan_item, max_size=15), cuts)
def test_switching_modes_inside_callbacks_keeps_every_byte_in_order(plan, where) -> None:
    stream = b"".join(body + b"\r\n" if kind == "line" else body for kind, body in plan)
    p = Planned(plan)
    p.connection_made(StringTransport())
    for chunk in split(stream, where):
        p.data_received(chunk)
    assert p.events == plan


class Toggler(LineReceiver):
    """Switches mode whenever ``decide()`` says so, and hands some raw bytes back as lines."""

    def __init__(self, decide: Callable[[], int]) -> None:
        self.decide = decide
        self.out: list[bytes] = []

    def _maybe_switch(self) -> None:
        if self.decide() == 0:
            self.set_raw_mode()

    def line_received(self, line: bytes) -> None:
        self.out.append(line + self.delimiter)
        self._maybe_switch()

    def raw_data_received(self, data: bytes) -> None:
        keep = self.decide() % (len(data) + 1)
        self.out.append(data[:keep])
        if keep < len(data) or self.decide() == 0:
            self.set_line_mode(data[keep:])


@SETTINGS
@given(garbage, cuts, st.lists(st.integers(0, 3), max_size=60), st.lists(st.booleans()))
def test_switching_modes_at_random_points_loses_and_reorders_nothing(
    stream: bytes, where: list[int], choices: list[int], outside: list[bool]
) -> None:
    it = iter(choices)
    p = Toggler(lambda: next(it, 1))
    p.connection_made(StringTransport())
    for i, chunk in enumerate(split(stream, where)):
        p.data_received(chunk)
        # Also switch from outside any callback, between chunks.
        if i < len(outside) and outside[i]:
            p.set_raw_mode() if p.line_mode else p.set_line_mode()
    assert b"".join(p.out) + p.clear_line_buffer() == stream
