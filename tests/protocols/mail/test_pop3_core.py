"""The sans-I/O parts of POP3, with hypothesis: byte-stuffing round trips through the
client's reader however the bytes are cut, and the server's command parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.mail.pop3 import (
    Command,
    CommandError,
    POP3ProtocolError,
    Response,
    ResponseReader,
    Stuffer,
    TopCutter,
    parse_command,
    stuff,
    unstuff,
)

# message-like bytes: lines with dots, CR, LF and anything else
line_text = st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\n", b"a", b" ", b"\x00", b"\xff",
                                      b"\r\n.\r\n", b"\r"]), max_size=40).map(b"".join)
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=6)


def normal(data: bytes) -> bytes:
    """What a message becomes on the wire: bare LF -> CRLF, a final CRLF."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    # a CR that is not followed by LF stays as it is
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def pieces(data: bytes, at: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in at})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


@given(line_text, cuts)
def test_stuffed_bodies_come_back_whole_however_they_are_cut(data: bytes, at: list[int]) -> None:
    wire = b"+OK here\r\n" + stuff(data) + b"+OK next\r\n"
    reader = ResponseReader()
    reader.expect(True)
    reader.expect(False)
    got: list[Response] = []
    for piece in pieces(wire, at):
        got += reader.feed(piece)
    assert [r.status for r in got] == ["+OK", "+OK"]
    assert got[0].body == normal(data)
    assert got[1].text == "next" and got[1].body is None


@given(line_text, cuts)
def test_stuffing_by_pieces_is_stuffing_the_whole(data: bytes, at: list[int]) -> None:
    stuffer = Stuffer()
    out = b"".join(stuffer.feed(piece) for piece in pieces(data, at)) + stuffer.end()
    assert out == stuff(data)


@given(line_text)
def test_stuffing_leaves_no_line_that_is_a_lone_dot(data: bytes) -> None:
    wire = stuff(data)
    lines = wire.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in lines[:-2])
    assert unstuff(wire[:-3]) == normal(data)


def test_an_err_reply_to_a_multiline_command_has_no_body() -> None:
    reader = ResponseReader()
    reader.expect(True)
    reader.expect(True)
    got = reader.feed(b"-ERR [IN-USE] locked\r\n+OK\r\n.\r\n")
    assert got == [Response("-ERR", "locked", "IN-USE"), Response("+OK", "", None, b"")]
    with pytest.raises(POP3ProtocolError):
        ResponseReader().feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(POP3ProtocolError, match="longer"):
        ResponseReader(max_line_length=10).feed(b"+OK " + b"x" * 20)


verbs = st.text(alphabet=st.characters(min_codepoint=65, max_codepoint=122).filter(str.isalpha),
                min_size=3, max_size=4)
args = st.lists(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                        min_size=1, max_size=40), max_size=3)


@given(verbs, args)
def test_commands_parse_back(verb: str, arguments: list[str]) -> None:
    line = " ".join([verb, *arguments]).encode()
    assert parse_command(line) == Command(verb.upper(), tuple(arguments))


@given(st.binary(max_size=300))
def test_any_line_parses_or_is_a_command_error(line: bytes) -> None:
    try:
        command = parse_command(line)
    except CommandError as e:
        assert str(e)  # the text of the -ERR reply
        return
    assert 3 <= len(command.verb) <= 4 and command.verb.isupper()
    assert all(0 < len(a) <= 40 or command.verb == "AUTH" for a in command.args)


@pytest.mark.parametrize("line, error", [
    (b"", "Empty command"),
    (b"RETRIEVE 1", "Unknown command"),
    (b"RETR  1", "single spaces"),
    (b"RETR 1 ", "single spaces"),
    (b"USER " + b"a" * 41, "too long"),
    (b"USER a\x00b", "Control"),
    (b"USER \xc3\xa9", "ASCII"),
])
def test_bad_lines(line: bytes, error: str) -> None:
    with pytest.raises(CommandError, match=error):
        parse_command(line)


def cut_by_pieces(data: bytes, lines: int, at: list[int]) -> bytes:
    cutter = TopCutter(lines)
    out = b""
    for piece in pieces(data, at):
        if cutter.done:
            break
        out += cutter.feed(piece)
    return out + cutter.end()


@given(line_text, st.integers(min_value=0, max_value=8), cuts)
def test_top_cuts_the_same_however_the_message_is_read(data: bytes, lines: int,
                                                       at: list[int]) -> None:
    whole = cut_by_pieces(data, lines, [])
    assert cut_by_pieces(data, lines, at) == whole
    assert data.startswith(whole)  # a prefix of the message, cut at a line's end
    assert whole == data or whole.endswith(b"\n")
    if b"\n\n" not in data.replace(b"\r\n", b"\n") and not data.startswith((b"\n", b"\r\n")):
        assert whole == data  # no blank line: all of it is header
    assert cut_by_pieces(data, 10_000, at) == data  # more lines than it has: all of it


def test_top_counts_body_lines_after_the_blank_line() -> None:
    message = b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\nthree"
    assert cut_by_pieces(message, 0, []) == b"A: 1\r\nB: 2\r\n\r\n"
    assert cut_by_pieces(message, 2, [3, 17]) == b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\n"
    assert cut_by_pieces(message, 3, [5]) == message  # the last line has no line end
    assert cut_by_pieces(b"\r\nbody\r\n\r\nmore\r\n", 1, []) == b"\r\nbody\r\n"  # no header
