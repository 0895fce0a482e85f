"""The server's numerics for clients without capabilities are written without building a
Message: the bytes must be exactly those Message.to_bytes writes, for any parameters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocols.irc.core import Message
from protocols.irc.server import numeric_line

word = st.text(st.characters(blacklist_characters=" \r\n\0", blacklist_categories=("Cs",)),
               min_size=1, max_size=12).filter(lambda w: not w.startswith(":"))
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(code=st.sampled_from(["001", "005", "353", "401", "421", "433"]), nick=word,
       middle=st.lists(word, max_size=5), last=st.one_of(st.none(), any_text))
def test_numeric_line_is_what_the_message_writes(code: str, nick: str, middle: list[str],
                                                  last: str | None) -> None:
    params = [nick, *middle, *([] if last is None else [last])]
    try:
        expected: bytes | None = Message(code, params, source="irc.local").to_bytes()
    except ValueError:
        expected = None  # CR, LF or NUL in the last parameter: refused either way
    assert numeric_line("irc.local", code, nick, middle, last) == expected


def test_examples() -> None:
    assert numeric_line("irc.local", "001", "ann", [], "Welcome") == (
        b":irc.local 001 ann Welcome\r\n")
    assert numeric_line("irc.local", "433", "*", ["ann"], "Nickname is already in use") == (
        b":irc.local 433 * ann :Nickname is already in use\r\n")
    assert numeric_line("irc.local", "332", "ann", ["#c"], "") == b":irc.local 332 ann #c :\r\n"
    assert numeric_line("irc.local", "401", "ann", [], ":x") == b":irc.local 401 ann ::x\r\n"
    assert numeric_line("irc.local", "401", "ann", [], "a\nb") is None
