"""IRC's sans-I/O core on examples, most of them from the specifications.

The message format is the "Modern IRC Client Protocol" document's ("Message format":
tags, source, command, parameters) and the IRCv3 message-tags specification's (tag names,
value escaping, a lone backslash at the end, the last of duplicate keys wins, client-only
``+`` tags, vendor tags); case mapping is RFC 1459's. The property tests beside this file
(test_irc_core_properties.py) check the same under hypothesis.
"""

from __future__ import annotations

import pytest

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

# ---- tags (IRCv3 message-tags)


def test_spec_example_three_tags_with_and_without_values() -> None:
    m = parse("@aaa=bbb;ccc;example.com/ddd=eee :nick!ident@host.com PRIVMSG me :Hello")
    assert m.tags == {"aaa": "bbb", "ccc": "", "example.com/ddd": "eee"}
    assert m.source == "nick!ident@host.com"
    assert m.command == "PRIVMSG"
    assert m.params == ["me", "Hello"]


def test_modern_examples_tags_as_json() -> None:
    # "@id=123AB;rose -> {"id": "123AB", "rose": ""}" and "@url=;netsplit=tur,ty"
    assert parse("@id=123AB;rose PING x").tags == {"id": "123AB", "rose": ""}
    assert parse("@url=;netsplit=tur,ty PING x").tags == {"url": "", "netsplit": "tur,ty"}


def test_client_only_and_vendor_tags() -> None:
    m = parse("@+example-client-tag=example-value PRIVMSG #channel :Message")
    assert m.tags == {"+example-client-tag": "example-value"}
    m = parse("@+example.com/foo=bar :irc.example.com NOTICE #channel :A vendor-prefixed tag")
    assert m.tags == {"+example.com/foo": "bar"}
    assert m.source == "irc.example.com"
    m = parse("@+example-client-tag=example-value TAGMSG @#channel")
    assert (m.command, m.params) == ("TAGMSG", ["@#channel"])
    assert parse_tags("znc.in/server-time=2026;xn--e1afmkfd.org/foo") == {
        "znc.in/server-time": "2026",
        "xn--e1afmkfd.org/foo": "",
    }


def test_spec_example_raw_and_escaped_value() -> None:
    # the spec's +example: raw `raw+:=,escaped; \` is sent as `raw+:=,escaped\:\s\\`
    line = r"@+example=raw+:=,escaped\:\s\\ :irc.example.com NOTICE #channel :Message"
    assert parse(line).tags == {"+example": "raw+:=,escaped; \\"}
    assert escape_tag_value("raw+:=,escaped; \\") == r"raw+:=,escaped\:\s\\"


@pytest.mark.parametrize(
    ("escaped", "value"),
    [
        (r"a\:b", "a;b"),
        (r"a\sb", "a b"),
        (r"a\\b", "a\\b"),
        (r"a\rb", "a\rb"),
        (r"a\nb", "a\nb"),
        (r"\:\s\\\r\n", "; \\\r\n"),
        (r"\s\s", "  "),  # consecutive escapes (a bug other parsers had)
        (r"a\\sb", "a\\sb"),  # an escaped backslash, then a plain s
        (r"a\bc", "abc"),  # an unknown escape: the character alone
        (r"\x\y", "xy"),
        ("test\\", "test"),  # a lone backslash at the end: nothing (spec's example)
        ("\\", ""),
        (r"a\\\\", "a\\\\"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_unescape_tag_value(escaped: str, value: str) -> None:
    assert unescape_tag_value(escaped) == value


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a;b", r"a\:b"),
        ("a b", r"a\sb"),
        ("a\\b", r"a\\b"),
        ("a\rb", r"a\rb"),
        ("a\nb", r"a\nb"),
        ("=:,+é☃", "=:,+é☃"),  # everything else goes as it is
    ],
)
def test_escape_tag_value(value: str, escaped: str) -> None:
    assert escape_tag_value(value) == escaped
    assert unescape_tag_value(escaped) == value


def test_tag_value_escapes_read_from_a_line() -> None:
    m = parse(r"@label=Newline:\s\nBackslash-n:\s\\n;semi=a\:b PING x")
    assert m.tags == {"label": "Newline: \nBackslash-n: \\n", "semi": "a;b"}


def test_duplicate_tag_keys_the_last_wins() -> None:
    assert parse("@a=1;b=2;a=3 PING x").tags == {"a": "3", "b": "2"}
    assert parse_tags("a=1;a") == {"a": ""}


def test_equals_in_a_value_and_empty_value_is_no_value() -> None:
    assert parse_tags("a=b=c") == {"a": "b=c"}
    assert parse_tags("a=") == parse_tags("a") == {"a": ""}


@pytest.mark.parametrize(
    "raw",
    ["=value", "+", "+=x", "a_b=1", "/foo=1", "vendor/=1", "ex ample.com/x", "a/b/c",
     "é=1", "a!=1"],
)
def test_bad_tag_names_are_refused(raw: str) -> None:
    with pytest.raises(IRCParseError):
        parse_tags(raw)
    with pytest.raises(IRCParseError):
        parse(f"@{raw} PING x")


def test_a_space_in_a_tag_name_is_refused_by_parse_tags() -> None:
    with pytest.raises(IRCParseError):
        parse_tags("a b=1")


def test_format_tags() -> None:
    assert format_tags({"aaa": "bbb", "ccc": None, "ddd": "", "+x.org/e": "a b;c"}) == (
        r"aaa=bbb;ccc;ddd;+x.org/e=a\sb\:c"
    )
    with pytest.raises(ValueError, match="bad tag name"):
        format_tags({"a b": "1"})
    with pytest.raises(ValueError, match="NUL"):
        format_tags({"a": "b\0c"})


# ---- source, command, parameters (Modern IRC "Message format")


def test_source_forms_and_nick() -> None:
    m = parse(":dan!d@localhost PRIVMSG #chan :Hey what's up!")
    assert (m.source, m.nick) == ("dan!d@localhost", "dan")
    m = parse(":irc.example.com CAP LS * :multi-prefix extended-join sasl")
    assert m.source == "irc.example.com"
    assert m.params == ["LS", "*", "multi-prefix extended-join sasl"]
    assert parse(":dan@localhost PING x").nick == "dan"
    assert parse(":dan PING x").nick == "dan"
    assert parse("PING x").source is None
    assert parse("PING x").nick is None
    assert Message("PING", ["x"], source="a!b@c").nick == "a"


@pytest.mark.parametrize(
    ("line", "params"),
    [
        (":irc.example.com CAP * LIST :", ["*", "LIST", ""]),
        ("CAP * LS :multi-prefix sasl", ["*", "LS", "multi-prefix sasl"]),
        ("CAP REQ :sasl message-tags foo", ["REQ", "sasl message-tags foo"]),
        (":dan!d@localhost PRIVMSG #chan :Hey!", ["#chan", "Hey!"]),
        (":dan!d@localhost PRIVMSG #chan Hey!", ["#chan", "Hey!"]),
        (":dan!d@localhost PRIVMSG #chan ::-)", ["#chan", ":-)"]),
        ("PRIVMSG #chan :a :b  c ", ["#chan", "a :b  c "]),  # the rest, as it is
        ("PRIVMSG #chan a:b", ["#chan", "a:b"]),  # a ':' inside a middle parameter
        ("PING", []),
        ("PING :", [""]),
    ],
)
def test_parameters_modern_examples(line: str, params: list[str]) -> None:
    assert parse(line).params == params


def test_leading_and_several_spaces() -> None:
    m = parse("   @a=1   :src   PRIVMSG    #chan    :hi  there")
    assert (m.tags, m.source, m.command, m.params) == (
        {"a": "1"}, "src", "PRIVMSG", ["#chan", "hi  there"]
    )
    assert parse("MODE #c +o   nick   ").params == ["#c", "+o", "nick"]


def test_line_ends_crlf_or_lf_only() -> None:
    assert parse("PING x\r\n") == parse("PING x\n") == parse("PING x") == Message("PING", ["x"])
    assert parse(b"PRIVMSG #c :caf\xc3\xa9\r\n").params == ["#c", "café"]


def test_numerics_and_lower_case_commands() -> None:
    m = parse(":irc.example.com 001 dan :Welcome to the network")
    assert (m.command, m.params) == ("001", ["dan", "Welcome to the network"])
    assert parse("privmsg #c :x").command == "PRIVMSG"
    assert parse("Cap ls 302").command == "CAP"


def test_any_number_of_parameters_is_read() -> None:
    # Modern IRC: "clients MUST parse incoming messages with any number of them"
    fifteen = " ".join(f"p{i}" for i in range(MAX_PARAMS))
    assert len(parse(f"CMD {fifteen}").params) == MAX_PARAMS
    assert len(parse(f"CMD {fifteen[:-4]} :a b c").params) == MAX_PARAMS
    assert parse(f"CMD {fifteen} p15").params[-2:] == ["p14", "p15"]
    assert parse(f"CMD {fifteen} :trailing").params[-1] == "trailing"


def test_a_005_with_many_tokens() -> None:
    tokens = [f"TOKEN{i}=v{i}" for i in range(25)]
    m = parse(":irc.example.org 005 alice " + " ".join(tokens) + " :are supported by this server")
    assert m.params == ["alice", *tokens, "are supported by this server"]


def test_max_params_refuses_more_when_asked() -> None:
    fifteen = " ".join(f"p{i}" for i in range(MAX_PARAMS))
    assert len(parse(f"CMD {fifteen}", max_params=MAX_PARAMS).params) == MAX_PARAMS
    with pytest.raises(IRCParseError, match="at most 15"):
        parse(f"CMD {fifteen} p15", max_params=MAX_PARAMS)
    with pytest.raises(IRCParseError, match="at most 15"):
        parse(f"CMD {fifteen} :trailing", max_params=MAX_PARAMS)
    with pytest.raises(IRCParseError, match="at most 2"):
        parse("CMD a b c", max_params=2)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "\r\n",
        "@a=1",  # tags and nothing else
        "@a=1 :src",
        ":src",
        ":src ",
        ": PING x",  # an empty source
        "PRIV-MSG x",
        "12 x",
        "1234 x",
        "00A x",
        "\u0661\u0662\u0663 x",  # Arabic-Indic digits: str.isdigit() says yes
        "PRIVMSG\u00e9 x",
        "P1NG x",
        "PING x\0y",
        "PING \0",
        "PING x\ry",
        "PING x\ny",
    ],
)
def test_not_a_message(line: str) -> None:
    with pytest.raises(IRCParseError):
        parse(line)


@pytest.mark.parametrize("line", ["", "  \r\n", "@a=1", "@a=1  ", ":src", "@a :src  "])
def test_no_command(line: str) -> None:
    with pytest.raises(IRCParseError, match="no command"):
        parse(line)


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(IRCParseError, ValueError)


# ---- writing messages


def test_to_line_adds_the_colon_only_when_needed() -> None:
    assert Message("PRIVMSG", ["#chan", "hi there"], source="bob!b@host").to_line() == (
        ":bob!b@host PRIVMSG #chan :hi there"
    )
    assert Message("PRIVMSG", ["#chan", "hi"]).to_line() == "PRIVMSG #chan hi"
    assert Message("PRIVMSG", ["#chan", ":-)"]).to_line() == "PRIVMSG #chan ::-)"
    assert Message("CAP", ["*", "LIST", ""]).to_line() == "CAP * LIST :"
    assert Message("PING").to_line() == "PING"
    assert Message("001", ["dan", "Welcome"], "irc.local").to_line() == ":irc.local 001 dan Welcome"


def test_to_line_with_tags_and_to_bytes() -> None:
    m = Message("PRIVMSG", ["#c", "a b"], "n!u@h", {"time": "2026-12-05T12:00:00.000Z",
                                                    "+x": "a;b c", "flag": ""})
    line = m.to_line()
    assert line == r"@time=2026-12-05T12:00:00.000Z;+x=a\:b\sc;flag :n!u@h PRIVMSG #c :a b"
    assert parse(line) == m
    assert m.to_bytes() == (line + "\r\n").encode()
    assert str(m) == line
    assert Message("PRIVMSG", ["#c", "café"]).to_bytes() == b"PRIVMSG #c caf\xc3\xa9\r\n"


@pytest.mark.parametrize(
    "message",
    [
        Message("PRIVMSG", ["#a b", "x"]),  # a space in a middle parameter
        Message("PRIVMSG", ["", "x"]),  # an empty middle parameter
        Message("PRIVMSG", [":x", "y"]),  # a middle parameter starting with ':'
        Message("PRIVMSG", ["#c", "a\r\nQUIT"]),  # CR LF: a second command
        Message("PRIVMSG", ["#c", "a\nb"]),
        Message("PRIVMSG", ["#c", "a\0b"]),
        Message("PRIVMSG", ["#c", "x"], source=""),
        Message("PRIVMSG", ["#c", "x"], source="a b"),
        Message("PRIVMSG", ["#c", "x"], source="a\r\n"),
        Message("PRIVMSG", ["#c", "x"], tags={"bad key": "1"}),
        Message("PRIVMSG", ["#c", "x"], tags={"/x": "1"}),
        Message("PRIVMSG", ["#c", "x"], tags={"a": "NUL\0"}),
        Message("", ["x"]),
        Message("PRIV MSG", ["x"]),
        Message("privmsg", ["#c", "x"]),  # would read back as PRIVMSG
        Message("Privmsg", ["#c", "x"]),
        Message("12", ["x"]),
        Message("\u0661\u0662\u0663", ["x"]),
        Message("CMD", [f"p{i}" for i in range(MAX_PARAMS + 1)]),
    ],
    ids=repr,
)
def test_to_line_refuses_what_would_not_read_back_the_same(message: Message) -> None:
    with pytest.raises(ValueError):
        message.to_line()
    with pytest.raises(ValueError):
        message.to_bytes()


def test_fifteen_parameters_are_written() -> None:
    m = Message("CMD", [f"p{i}" for i in range(MAX_PARAMS - 1)] + ["last one"])
    assert parse(m.to_line()) == m


def test_more_than_fifteen_written_only_when_asked() -> None:
    m = Message("CMD", [f"p{i}" for i in range(20)] + ["last one"])
    with pytest.raises(ValueError, match="at most 15"):
        m.to_line()
    assert parse(m.to_line(max_params=None)) == m
    assert parse(m.to_bytes(max_params=None)) == m


# ---- LineReader


def test_line_reader_crlf_lf_cr_and_empty_lines() -> None:
    r = LineReader()
    assert r.feed(b"PING a\r\nPING b\nPING c\rPING d\r\n\r\n\n\rPING e") == [
        b"PING a", b"PING b", b"PING c", b"PING d"
    ]
    assert r.pending == len(b"PING e")
    assert r.feed(b"\r\n") == [b"PING e"]
    assert r.pending == 0


def test_line_reader_crlf_split_between_cr_and_lf() -> None:
    r = LineReader()
    body = b"P" * (MAX_LINE_BYTES - 2)  # exactly the limit with its CRLF
    assert r.feed(body + b"\r") == [body]
    assert r.feed(b"\nPING x\r\n") == [b"PING x"]


def test_line_reader_limits_exactly() -> None:
    r = LineReader()
    ok = b"P" * (MAX_LINE_BYTES - 2)
    assert r.feed(ok + b"\r\n") == [ok]
    assert r.feed(ok + b"P\r\nPING x\r\n") == [LineTooLong(MAX_LINE_BYTES - 1), b"PING x"]
    tags = b"@" + b"a" * (MAX_TAGS_BYTES - 2) + b" "  # 8191 with '@' and the space
    assert r.feed(tags + ok + b"\r\n") == [tags + ok]
    long_tags = b"@" + b"a" * (MAX_TAGS_BYTES - 1) + b" "
    assert r.feed(long_tags + b"PING x\r\nPING y\r\n") == [
        LineTooLong(len(long_tags) + 6, tags=True), b"PING y"
    ]


def test_line_reader_over_long_line_in_pieces_is_skipped_as_it_comes() -> None:
    r = LineReader()
    assert r.feed(b"PRIVMSG #c :" + b"x" * 600) == []
    assert r.pending == 0
    assert r.feed(b"y" * 10_000) == []
    assert r.pending == 0
    assert r.feed(b"z\r") == [LineTooLong(12 + 600 + 10_000 + 1)]
    assert r.feed(b"\nPING after\r\n") == [b"PING after"]


def test_line_reader_lone_cr_ends_an_over_long_line_split_at_the_cr() -> None:
    r = LineReader()
    assert r.feed(b"x" * 600 + b"\r") == [LineTooLong(600)]
    assert r.feed(b"PING a\r\n") == [b"PING a"]


def test_line_reader_custom_limits() -> None:
    r = LineReader(max_line=10, max_tags=6)
    assert r.feed(b"12345678\r\n123456789\r\n@ab=c 12345678\r\n@abc=d x\n") == [
        b"12345678", LineTooLong(9), b"@ab=c 12345678", LineTooLong(8, tags=True)
    ]


def test_line_too_long_equality_and_repr() -> None:
    assert LineTooLong(5) == LineTooLong(5, tags=False)
    assert LineTooLong(5) != LineTooLong(5, tags=True)
    assert LineTooLong(5) != LineTooLong(6)
    assert repr(LineTooLong(600)) == "<LineTooLong line: 600 bytes>"
    assert repr(LineTooLong(9000, tags=True)) == "<LineTooLong tags: 9000 bytes>"


# ---- case mapping


def test_casefold_rfc1459_and_ascii() -> None:
    assert casefold("Nick[away]\\~") == "nick{away}|^"
    assert casefold("Nick[away]\\~", "rfc1459") == casefold("nick{AWAY}|^")
    assert casefold("Nick[away]\\~", "ascii") == "nick[away]\\~"
    assert casefold("#ChAn") == casefold("#chan", "ascii") == "#chan"
    assert casefold("ÉÀΣ") == "ÉÀΣ"  # only ASCII letters fold
    assert casefold("ÉÀΣ", "ascii") == "ÉÀΣ"


def test_casefold_strict_rfc1459() -> None:
    # Modern IRC: strict-rfc1459 is rfc1459 without ~ and ^ as a pair
    assert casefold("Nick[A]\\~", "strict-rfc1459") == "nick{a}|~"
    assert casefold("Nick^", "strict-rfc1459") == "nick^"
    assert casefold("A~", "strict-rfc1459") != casefold("a^", "strict-rfc1459")
    assert casefold("A~", "rfc1459") == casefold("a^", "rfc1459")


@pytest.mark.parametrize("unknown", ["rfc7613", "rfc3454", "", "RFC1459", "made-up"])
def test_casefold_an_unknown_mapping_folds_by_the_default(unknown: str) -> None:
    # a server may say anything: a client goes on with rfc1459, as with none said
    assert casefold("Nick[away]\\~", unknown, default="rfc1459") == "nick{away}|^"
    assert casefold("Nick[away]\\~", unknown, default="ascii") == "nick[away]\\~"
    # without a default it is refused (a server configured with it must not start)
    with pytest.raises(ValueError, match="unknown case mapping"):
        casefold("x", unknown)

