"""The FTP server's fast paths give exactly what the general paths give.

- ``parse_command`` looks the verbs clients send up in a dict (``_KNOWN_VERBS``) before the
  regular expression: for any line the result (Command or 500) is the general path's.
- ``CommandReader.feed`` takes one whole short line with nothing held, no Telnet byte, at
  once: fed any stream split at any points (CRLF, LF, lone CR, IAC, over-long lines,
  bytes that are not UTF-8), it gives what the general ``_feed`` gives, call by call, and
  is left in the same state.
- The server's login against a dict of users, with the User of a password made once, still
  follows the dict as it changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netshell.errors import ConnectionDone
from netshell.failure import Failure
from netshell.interfaces import Address
from netshell.testing import Clock, StringTransport
from protocols.ftp import core
from protocols.ftp.core import Command, CommandError, CommandReader, parse_command
from protocols.ftp.server import FTPServerFactory, User

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(f: Any, *args: Any) -> tuple[Any, ...]:
    """What ``f(*args)`` gives, comparable: the Command, or the CommandError's reply."""
    try:
        result = f(*args)
    except CommandError as error:
        return ("error", error.reply)
    return ("ok", type(result), result)


def general_parse(line: bytes) -> Command:
    verb, _, arg = line.partition(b" ")
    return core._parse_command(verb, arg)


def items(results: list[Command | CommandError]) -> list[tuple[Any, ...]]:
    return [("error", r.reply) if isinstance(r, CommandError) else ("ok", type(r), r)
            for r in results]


def state(reader: CommandReader) -> tuple[Any, ...]:
    return (bytes(reader._line), reader._skipping, reader._telnet, reader.buffered, reader._clean)


KNOWN = sorted(core._KNOWN_VERBS)
verbs = st.one_of(
    st.sampled_from(KNOWN),
    # any mix of cases of a known verb (most are not in the dict)
    st.sampled_from(KNOWN).flatmap(
        lambda v: st.lists(st.booleans(), min_size=len(v), max_size=len(v)).map(
            lambda ups: bytes(c ^ 0x20 if up else c for c, up in zip(v, ups, strict=True)))),
    st.binary(max_size=6),
    st.text(alphabet="abcXYZ\xe9", max_size=5).map(lambda t: t.encode("utf-8")),
)
args = st.one_of(st.binary(max_size=20), st.text(max_size=10).map(
    lambda t: t.encode("utf-8", "surrogatepass")))
lines = st.builds(lambda v, sep, a: v + sep + a, verbs,
                  st.sampled_from([b"", b" ", b"  ", b"\t"]), args)


@SETTINGS
@given(lines)
def test_parse_command_is_the_general_path(line: bytes) -> None:
    assert outcome(parse_command, line) == outcome(general_parse, line)


def test_every_known_verb_is_what_the_general_path_makes_of_it() -> None:
    for spelling, name in core._KNOWN_VERBS.items():
        assert core._VERB.fullmatch(spelling)
        assert name == spelling.decode("ascii").upper()
        assert parse_command(spelling + b" x") == general_parse(spelling + b" x") == (name, "x")


def test_every_known_line_is_what_the_general_path_makes_of_it() -> None:
    assert len(core._KNOWN_LINES) == 2 * len(core._KNOWN_VERBS)
    for line, command in core._KNOWN_LINES.items():
        assert items([command]) == items(CommandReader()._feed(line))
        for limit in (1, len(line) - 2, len(line) - 1, len(line)):  # too long, or not
            assert items(CommandReader(limit).feed(line)) == items(CommandReader(limit)._feed(line))


def test_parse_command_takes_a_bytearray_as_before() -> None:
    assert parse_command(bytearray(b"retr a"))  # type: ignore[arg-type] == Command("RETR", "a")
    with pytest.raises(CommandError):
        parse_command(bytearray(b"R3TR a"))  # type: ignore[arg-type]


# a stream: command lines, line ends of each kind, Telnet bytes, long runs, any bytes
pieces = st.one_of(
    lines,
    st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n", b"\xff", b"\xff\xff", b"\xff\xf4\xff\xf2",
                     b"\xff\xfb", b"\xff\xfd\x01", b"\xffA", b"\x80\xfe", b"\xc3\xa9"]),
    st.integers(1, 80).map(lambda n: b"x" * n),
    st.binary(max_size=12),
)


@st.composite
def streams(draw: Any) -> tuple[int, list[bytes]]:
    limit = draw(st.sampled_from([1, 2, 8, 16, 40, 4096]))
    data = b"".join(draw(st.lists(pieces, max_size=20)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return limit, chunks


def compare(limit: int, chunks: list[bytes]) -> None:
    fast, general = CommandReader(max_line=limit), CommandReader(max_line=limit)
    for chunk in chunks:
        assert items(fast.feed(chunk)) == items(general._feed(chunk)), chunk
        assert state(fast) == state(general)


@SETTINGS
@given(streams())
def test_feed_is_the_general_path_in_any_split(stream: tuple[int, list[bytes]]) -> None:
    compare(*stream)


# what the fast path is for: a line per feed, often one of its exact edge cases, between
# feeds that leave the reader inside a Telnet command (IAC, IAC DO) or a line
one_line = st.one_of(
    st.builds(
        lambda line, end: line + end,
        st.one_of(lines, st.integers(0, 42).map(lambda n: b"A" * n)),
        st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b"\n\r\n", b"\r", b""]),
    ),
    st.sampled_from([b"\xff", b"\xff\xfd", b"NO", b"\xf4NOOP\r\n", b"\x01NOOP\n"]),
)


@SETTINGS
@given(st.sampled_from([1, 2, 3, 8, 16, 40, 41, 42, 4096]), st.lists(one_line, max_size=10))
@example(8, [b"\xff", b"\xf4NOOP\r\n"])  # IAC IP split across two feeds
@example(8, [b"\xff\xfd", b"\x01NOOP\n"])  # IAC DO, its option byte in the next feed
def test_feed_is_the_general_path_a_line_at_a_time(limit: int, chunks: list[bytes]) -> None:
    compare(limit, chunks)


def test_the_fast_path_is_taken_for_one_whole_line() -> None:
    reader = CommandReader(max_line=10)

    def general(data: bytes) -> list[Command | CommandError]:
        raise AssertionError(f"the general path took {data!r}")

    reader._feed = general  # type: ignore[method-assign]
    assert reader.feed(b"USER u\r\n") == [Command("USER", "u")]
    assert reader.feed(b"pass \xe9\n") == [Command("PASS", "\udce9")]
    assert reader.feed(b"ABCDEFGH\r\n") == [Command("ABCDEFGH", "")]  # max_line bytes
    for bad in (b"\r\n", b"\n", b"R3TR x\n", b" NOOP\r\n"):
        [error] = reader.feed(bad)
        assert isinstance(error, CommandError) and error.reply.code == 500
    assert reader.buffered == 0


def test_the_general_path_keeps_what_the_fast_path_does_not_take() -> None:
    reader = CommandReader(max_line=10)
    seen: list[bytes] = []
    general = reader._feed

    def spy(data: bytes) -> list[Command | CommandError]:
        seen.append(data)
        return general(data)

    reader._feed = spy  # type: ignore[method-assign]
    assert reader.feed(b"NOOP") == []  # no line end: held
    assert reader.feed(b"\r\n") == [Command("NOOP", "")]  # something was held
    assert reader.feed(b"CWD \xff\xff\r\n") == [Command("CWD", "\udcff")]  # IAC IAC
    assert [type(x) for x in reader.feed(b"ABCDEFGHIJK\r\n")] == [CommandError]  # too long
    assert reader.feed(b"NOOP\r\nNOOP\r\n") == [Command("NOOP", "")] * 2  # two lines
    assert seen == [b"NOOP", b"\r\n", b"CWD \xff\xff\r\n", b"ABCDEFGHIJK\r\n",
                    b"NOOP\r\nNOOP\r\n"]


# ---- the server's login against a dict of users

ADDR = Address("tcp", "127.0.0.1", 40000)


def login(factory: FTPServerFactory, name: bytes, password: bytes) -> bytes:
    protocol = factory.build_protocol(ADDR)
    transport = StringTransport(peer=ADDR)
    protocol.connection_made(transport)
    protocol.data_received(b"USER " + name + b"\r\n")
    protocol.data_received(b"PASS " + password + b"\r\n")
    protocol.data_received(b"QUIT\r\n")
    protocol.connection_lost(Failure(ConnectionDone()))
    return transport.value()


def test_a_dict_of_passwords_is_followed_as_it_changes(tmp_path: Any) -> None:
    clock = Clock()
    users: dict[str, Any] = {"u": "p"}
    factory = FTPServerFactory(tmp_path, reactor=clock, clock=clock, users=users,
                               login_delay=0)
    assert b"230 " in login(factory, b"u", b"p")
    assert factory._check("u", "p") == User("p")
    users["u"] = "q"  # a new password: the old one no longer logs in
    assert b"530 " in login(factory, b"u", b"p")
    assert b"230 " in login(factory, b"u", b"q")
    users["u"] = 1234  # not a str: taken as str() of it, as before
    assert b"230 " in login(factory, b"u", b"1234")
    users["u"] = User("r", writable=False)
    assert b"230 " in login(factory, b"u", b"r")
    assert factory._check("u", "r") is users["u"]
    del users["u"]
    assert b"530 " in login(factory, b"u", b"r")
    assert not factory.sessions and not factory.per_ip
