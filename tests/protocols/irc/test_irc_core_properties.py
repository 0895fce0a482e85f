"""IRC's sans-I/O core under hypothesis.

- Messages: any Message obeying the rules (tags with any values, escapes and non-ASCII
  included; a source; up to 15 parameters, only the last with spaces, empty or starting
  with ':') is written as a line that parses back to the same Message, as str and as
  bytes, and through a LineReader fed the bytes in any pieces. With any number of
  parameters (written with ``max_params=None``) too: a client reads them all (Modern
  IRC); ``max_params=n`` refuses exactly the lines with more than n.
- Tag values: unescape(escape(v)) == v, and what escape writes holds none of the
  characters a tag value may not hold on the wire.
- parse raises nothing but IRCParseError, whatever the text.
- LineReader: the same stream gives the same lines (and LineTooLong) whole or split at
  any points; lines over the limits come out as LineTooLong, the lines after them intact;
  nothing grows without bound, whatever comes (a line that never ends included).
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocols.irc.core import (
    MAX_LINE_BYTES,
    MAX_PARAMS,
    MAX_TAGS_BYTES,
    IRCParseError,
    LineReader,
    LineTooLong,
    Message,
    casefold,
    escape_tag_value,
    format_tags,
    parse,
    parse_tags,
    unescape_tag_value,
)

# ---- strategies

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# any character but NUL (and lone surrogates, which are not text); the escapes' own
# characters (; space \ CR LF) and non-ASCII come often enough
_VALUE_CHARS = st.one_of(
    st.sampled_from(list("; \\\r\n:s=+@,é☃\U0001f600")),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
)


def _text(alphabet: st.SearchStrategy[str], **kw: int) -> st.SearchStrategy[str]:
    """Text of ``alphabet`` (st.text with a one_of alphabet seldom puts given characters
    side by side: a backslash then 'x' never came)."""
    return st.lists(alphabet, **kw).map("".join)


tag_values = _text(_VALUE_CHARS, max_size=30)
_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
vendors = st.lists(_label, min_size=1, max_size=3).map(".".join)
tag_keys = st.builds(
    lambda plus, vendor, name: plus + (vendor + "/" if vendor else "") + name,
    st.sampled_from(["", "+"]),
    st.none() | vendors,
    st.text(_ALNUM + "-", min_size=1, max_size=12),
)
tags = st.dictionaries(tag_keys, tag_values, max_size=5)

# a source, a middle parameter: no SPACE, CR, LF or NUL
_WORD_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters=" \r\n\0")
_nick = st.text(_WORD_CHARS.filter(lambda c: c not in "!@"), min_size=1, max_size=10)
sources = st.one_of(
    st.builds(lambda n, u, h: f"{n}!{u}@{h}", _nick, _nick, _nick),
    st.builds(lambda n, h: f"{n}@{h}", _nick, _nick),
    vendors,  # a server name
    st.text(_WORD_CHARS, min_size=1, max_size=20),
)
commands = st.one_of(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10),
    st.integers(0, 999).map("{:03d}".format),
)
middles = st.text(_WORD_CHARS, min_size=1, max_size=12).filter(lambda p: p[0] != ":")
_last_text = _text(
    st.one_of(st.sampled_from(list(" :")), st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\n\0")),
    max_size=30,
)
# the cases the ':' is for come often: empty, spaces, a ':' first
lasts = st.one_of(_last_text, st.just(""), _last_text.map(lambda p: ":" + p), middles)


@st.composite
def messages(draw: st.DrawFn, most: int = MAX_PARAMS) -> Message:
    n = draw(st.integers(0, most))
    params = draw(st.lists(middles, min_size=max(n - 1, 0), max_size=max(n - 1, 0)))
    if n:
        params.append(draw(lasts))
    return Message(
        draw(commands), params, draw(st.none() | sources), draw(tags)
    )


# ---- messages


@given(messages())
@example(Message("PING", [""]))
@example(Message("PRIVMSG", ["#c", ":-)"]))
@example(Message("PRIVMSG", ["#c", "a b"], "n!u@h", {"+a": "; \\\r\n", "b": ""}))
@example(Message("CMD", [f"p{i}" for i in range(MAX_PARAMS)]))
def test_message_to_line_parses_back_the_same(m: Message) -> None:
    line = m.to_line()
    assert "\r" not in line and "\n" not in line and "\0" not in line
    assert parse(line) == m
    assert parse(m.to_bytes()) == m
    assert m.to_bytes().endswith(b"\r\n")


@given(messages(most=60))
@example(Message("005", ["alice", *[f"T{i}=v" for i in range(30)], "are supported"]))
def test_any_number_of_parameters_parses_back_the_same(m: Message) -> None:
    line = m.to_line(max_params=None)
    assert parse(line) == m
    assert parse(m.to_bytes(max_params=None)) == m
    if len(m.params) > MAX_PARAMS:
        with pytest.raises(ValueError):
            m.to_line()  # written only when asked


@given(messages(most=40), st.integers(0, 40))
def test_max_params_refuses_exactly_the_lines_over_it(m: Message, limit: int) -> None:
    line = m.to_line(max_params=None)
    if len(m.params) > limit:
        with pytest.raises(IRCParseError, match=f"at most {limit}"):
            parse(line, max_params=limit)
    else:
        assert parse(line, max_params=limit) == m


@given(st.lists(messages(), min_size=1, max_size=6), st.data())
def test_messages_through_a_line_reader_in_any_pieces(
    ms: list[Message], data: st.DataObject
) -> None:
    stream = b"".join(m.to_bytes() for m in ms)
    reader = LineReader(max_line=1 << 20, max_tags=1 << 20)
    got: list[bytes | LineTooLong] = []
    for piece in _split(stream, data):
        got += reader.feed(piece)
    assert [parse(line) for line in got if isinstance(line, bytes)] == ms
    assert reader.pending == 0


@given(tags)
def test_tags_format_then_parse(t: dict[str, str]) -> None:
    assert parse_tags(format_tags(t)) == t


@given(st.lists(st.tuples(st.sampled_from(["a", "+b", "x.org/c"]), tag_values), max_size=8))
def test_duplicate_keys_the_last_wins(pairs: list[tuple[str, str]]) -> None:
    raw = ";".join(f"{k}={escape_tag_value(v)}" for k, v in pairs)
    assert parse_tags(raw) == dict(pairs)


_KEY = re.compile(r"\+?(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9-]+")


@given(st.text("aZ9-._/+= é", max_size=10))
def test_tag_names_valid_as_the_grammar_says(key: str) -> None:
    """<key> ::= ['+'] [<vendor> '/'] <letters, digits, hyphens>; <vendor> a host name."""
    name = key.partition("=")[0]
    if name and _KEY.fullmatch(name):
        assert list(parse_tags(key)) == [name]
    elif name:
        with pytest.raises(IRCParseError):
            parse_tags(key)


@given(_text(_VALUE_CHARS))
def test_escape_then_unescape_is_the_value(value: str) -> None:
    escaped = escape_tag_value(value)
    assert not set(escaped) & set("; \r\n")
    assert unescape_tag_value(escaped) == value


_MEANS = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


@given(_text(st.one_of(st.sampled_from(list("\\:srnxS")), st.characters(
    blacklist_categories=("Cs",), blacklist_characters="; \r\n\0"))))
def test_unescape_any_wire_value(raw: str) -> None:
    value = unescape_tag_value(raw)
    # the spec's table once more: a known escape its character, an unknown one the
    # character alone, a lone backslash at the end nothing
    assert value == re.sub(r"\\(.?)", lambda m: _MEANS.get(m[1], m[1]), raw, flags=re.S)
    # an escaped value's escape reads back to what it means
    assert unescape_tag_value(escape_tag_value(value)) == value


@given(st.text(st.characters(blacklist_categories=("Cs",))) | st.binary().map(
    lambda b: b.decode("utf-8", "surrogateescape")))
def test_parse_raises_only_its_error(text: str) -> None:
    try:
        m = parse(text)
    except IRCParseError:
        return
    assert re.fullmatch(r"[A-Z]+|[0-9]{3}", m.command)


@given(messages(), st.lists(st.integers(1, 3), min_size=4, max_size=4))
def test_more_spaces_between_the_parts_mean_the_same(m: Message, spaces: list[int]) -> None:
    """Leading spaces and several spaces between tags, source, command and the middle
    parameters are read as one (not inside the last parameter after its ':')."""
    head = []
    if m.tags:
        head.append("@" + format_tags(m.tags))
    if m.source is not None:
        head.append(":" + m.source)
    line = " " * (spaces[0] - 1) + (" " * spaces[1]).join([*head, m.command])
    if m.params:
        last = m.params[-1]
        line += "".join(" " * spaces[2] + p for p in m.params[:-1])
        line += " " * spaces[3] + ":" + last
    assert parse(line) == m


@given(st.text("abcXYZ[]\\~{}|^09-_ é"))
def test_casefold(name: str) -> None:
    folded = casefold(name)
    assert casefold(folded) == folded
    upper = str.maketrans("abcxyz", "ABCXYZ")
    assert casefold(name.translate(upper)) == folded
    # RFC 1459: []\~ are the upper case of {}|^
    assert casefold(name.translate(str.maketrans("{}|^", "[]\\~"))) == folded
    assert not set(folded) & set("ABCXYZ[]\\~")
    ascii_folded = casefold(name, "ascii")
    assert ascii_folded == name.translate(str.maketrans("ABCXYZ", "abcxyz"))
    # strict-rfc1459: []\ with {}| but ~ and ^ apart (Modern IRC)
    strict = casefold(name, "strict-rfc1459")
    assert casefold(name.translate(str.maketrans("{}|", "[]\\")), "strict-rfc1459") == strict
    assert strict.count("~") == name.count("~") and strict.count("^") == name.count("^")
    # an unknown mapping with rfc1459 as the default: rfc1459, no error
    assert casefold(name, "rfc7613", default="rfc1459") == folded


# ---- LineReader


def _split(stream: bytes, data: st.DataObject) -> list[bytes]:
    """``stream`` cut at points hypothesis picks (empty pieces included)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    points = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(points)]


def _expected(stream: bytes, max_line: int, max_tags: int) -> list[bytes | LineTooLong]:
    """What a LineReader gives for ``stream``, stated another way: CR, LF or CRLF end a
    line, empty lines are skipped, the last line (no end yet) is not given; a line is too
    long when its tags ('@' to the first space, the space counted; a line of tags only,
    one more for the space) take over max_tags, or the rest and a CRLF over max_line."""
    out: list[bytes | LineTooLong] = []
    for line in re.split(rb"\r\n|\r|\n", stream)[:-1]:
        if not line:
            continue
        tags_len = 0
        if line.startswith(b"@"):
            space = line.find(b" ")
            tags_len = len(line) + 1 if space < 0 else space + 1
        if tags_len > max_tags:
            out.append(LineTooLong(len(line), tags=True))
        elif max(len(line) - tags_len, 0) + 2 > max_line:
            out.append(LineTooLong(len(line)))
        else:
            out.append(line)
    return out


_piece = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"@", b" ", b"\r", b"\n", b"\r\n", b"@a=b ", b"PRIVMSG #c :hi"]),
    st.integers(0, 80).map(lambda n: b"x" * n),
)
@st.composite
def limits_and_streams(draw: st.DrawFn) -> tuple[int, int, bytes]:
    """Small limits, and a stream with lines at them, one under and one over."""
    max_line = draw(st.integers(3, 40))
    max_tags = draw(st.integers(2, 40))
    near = st.one_of(  # whole lines: the limit, one under, one over
        st.integers(max_line - 3, max_line - 1).map(lambda n: b"\n" + b"y" * n + b"\n"),
        st.integers(max_tags - 2, max_tags).map(
            lambda n: b"\n@" + b"t" * max(n - 2, 0) + b" X\n"
        ),
    )
    pieces = draw(st.lists(st.one_of(_piece, near), max_size=25))
    return max_line, max_tags, b"".join(pieces)


@given(limits_and_streams(), st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_line_reader_any_split_same_lines(
    limits_stream: tuple[int, int, bytes], data: st.DataObject
) -> None:
    max_line, max_tags, stream = limits_stream
    whole = LineReader(max_line, max_tags)
    expected = _expected(stream, max_line, max_tags)
    assert whole.feed(stream) == expected
    split = LineReader(max_line, max_tags)
    got: list[bytes | LineTooLong] = []
    for piece in _split(stream, data):
        got += split.feed(piece)
        assert split.pending < max_line + max_tags
    assert got == expected
    assert split.pending == whole.pending


_line_ends = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def default_limit_lines(draw: st.DrawFn) -> tuple[bytes, bool | None]:
    """(a line without its end, None when it is within the default limits, else whether
    its tags are what is over)."""
    kind = draw(st.sampled_from(["ok", "body", "tags", "ok-tags"]))
    if kind == "ok":
        n = draw(st.integers(0, MAX_LINE_BYTES - 2 - 5))
        return b"PING " + b"p" * n, None
    if kind == "body":
        n = draw(st.integers(MAX_LINE_BYTES - 2 - 5 + 1, 3 * MAX_LINE_BYTES))
        return b"PING " + b"p" * n, False
    if kind == "ok-tags":
        t = draw(st.integers(1, MAX_TAGS_BYTES - 2))  # '@', t bytes, ' ': up to 8191
        n = draw(st.integers(0, MAX_LINE_BYTES - 2 - 5))
        return b"@" + b"t" * t + b" PING " + b"p" * n, None
    t = draw(st.integers(MAX_TAGS_BYTES - 1, MAX_TAGS_BYTES + 600))
    return b"@" + b"t" * t + b" PING x", True


@given(st.lists(st.tuples(default_limit_lines(), _line_ends), min_size=1, max_size=6),
       st.data())
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          max_examples=60)
def test_over_long_lines_come_out_as_line_too_long_and_the_rest_intact(
    lines: list[tuple[tuple[bytes, bool | None], bytes]], data: st.DataObject
) -> None:
    stream = b"".join(line + end for (line, _), end in lines)
    expected = [
        line if over is None else LineTooLong(len(line), tags=over) for (line, over), _ in lines
    ]
    reader = LineReader()
    got: list[bytes | LineTooLong] = []
    for piece in _split(stream, data):
        got += reader.feed(piece)
        assert reader.pending < MAX_LINE_BYTES + MAX_TAGS_BYTES
    assert got == expected
    assert LineReader().feed(stream) == expected


@given(
    st.sampled_from([b"", b"@", b"@tags ", b":src PRIVMSG #c :"]),
    st.lists(st.binary(min_size=1, max_size=3000).map(
        lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), min_size=1, max_size=30),
)
@settings(max_examples=50)
def test_a_line_that_never_ends_holds_no_more_than_the_limits(
    start: bytes, pieces: list[bytes]
) -> None:
    reader = LineReader()
    assert reader.feed(start) == []
    for piece in pieces:
        assert reader.feed(piece) == []
        assert reader.pending < MAX_LINE_BYTES + MAX_TAGS_BYTES
    line = start + b"".join(pieces)
    tail = b"\r\nPING after\r\n"
    assert reader.feed(tail) == _expected(line + tail, MAX_LINE_BYTES, MAX_TAGS_BYTES)
    assert reader.pending == 0
