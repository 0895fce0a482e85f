"""Properties of the SMTP core, with hypothesis: dot-stuffing round trips (the client's
stuffing, the server's unstuffing: the same bytes back, for any body, however the stream is
cut), no fake end ever ends DATA, the MAIL/RCPT parser gives back the address and parameters
it was built from, and replies survive being written and read."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import netshell as ns
from netshell.testing import Clock, StringTransport
from protocols.mail.smtp.core import (
    DataReader,
    PathError,
    Reply,
    ReplyReader,
    dot_stuff,
    normalize_line_ends,
    parse_mail,
    parse_rcpt,
)
from protocols.mail.smtp.server import SMTPServerFactory

# bodies rich in what matters: dots, CR, LF, at line starts and ends
body_bytes = st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\r\n.", b"\xff", b" "]),
    max_size=40,
).map(b"".join) | st.binary(max_size=300)


def expected(body: bytes) -> bytes:
    """What the server must hand on: line ends made CRLF, a last CRLF added if missing."""
    data = normalize_line_ends(body)
    return data + b"\r\n" if data and not data.endswith(b"\r\n") else data


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    at = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *at], [*at, len(data)], strict=True)]


@given(body_bytes, st.lists(st.integers(min_value=0), max_size=6), st.binary(max_size=20))
def test_dot_stuffing_round_trips_through_the_data_reader(
    body: bytes, points: list[int], after: bytes
) -> None:
    stream = dot_stuff(body) + after
    reader = DataReader(max_size=None, max_line=None)
    rest = None
    pieces = cuts(stream, points)
    for i, piece in enumerate(pieces):
        rest = reader.feed(piece)
        if rest is not None:
            rest += b"".join(pieces[i + 1:])
            break
    assert rest == after
    assert reader.bad is None
    assert reader.content() == expected(body)


@given(body_bytes, st.lists(st.integers(min_value=0), max_size=6))
@settings(max_examples=150)
def test_dot_stuffing_round_trips_through_the_server(body: bytes, points: list[int]) -> None:
    got: list[Any] = []
    clock = Clock()
    factory = SMTPServerFactory(got.append, reactor=clock, clock=clock, max_line_length=None)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
    for piece in cuts(dot_stuff(body), points):
        protocol.data_received(piece)
    protocol.data_received(b"QUIT\r\n")
    assert transport.value().endswith(b"\r\n221 2.0.0 " + factory.hostname.encode() + b" Bye\r\n")
    [envelope] = got
    assert envelope.content == expected(body)


fake_ends = st.lists(
    st.sampled_from([b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r",
                     b"a", b"\r\n", b".", b"\n", b"\r"]),
    max_size=20,
).map(b"".join)


@given(fake_ends.filter(lambda b: b"\r\n.\r\n" not in b"\r\n" + b))
@example(b"smuggled\n.\nMAIL FROM:<x@y.test>")
def test_nothing_but_crlf_dot_crlf_ends_data(data: bytes) -> None:
    reader = DataReader(max_size=None, max_line=None, bare="normalize")
    assert reader.feed(data) is None and not reader.done
    rest = reader.feed(b"\r\n.\r\n")  # a real end ends it (it may begin inside ``data``)
    assert rest is not None and b"\r\n.\r\n".endswith(rest) and reader.done


ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
atom = st.text(alphabet=ATEXT, min_size=1, max_size=8)
dot_string = st.lists(atom, min_size=1, max_size=4).map(".".join)
quoted = st.text(alphabet=[chr(c) for c in range(32, 127)], max_size=10).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domain = st.lists(label, min_size=1, max_size=4).map(".".join) | st.ip_addresses(v=4).map(
    lambda ip: f"[{ip}]") | st.ip_addresses(v=6).map(lambda ip: f"[IPv6:{ip}]")
local = (dot_string | quoted).filter(lambda s: len(s) <= 64)
mailbox = st.builds(lambda lp, d: f"{lp}@{d}", local, domain)
keyword = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,8}", fullmatch=True)
value = st.text(alphabet=[chr(c) for c in range(33, 127) if c != ord("=")], min_size=1,
                max_size=10)
params = st.dictionaries(keyword, st.none() | value, max_size=4).filter(
    lambda d: len({k.upper() for k in d}) == len(d))


def param_text(p: dict[str, str | None]) -> str:
    return "".join(f" {k}" if v is None else f" {k}={v}" for k, v in p.items())


@given(mailbox, params, st.sampled_from(["FROM:", "from:", "From: "]))
def test_mail_from_parses_back_what_it_was_built_from(
    address: str, p: dict[str, str | None], keyword: str
) -> None:
    sender, got = parse_mail(f"{keyword}<{address}>{param_text(p)}")
    assert sender == address
    assert got == {k.upper(): v for k, v in p.items()}


@given(mailbox, params)
def test_rcpt_to_parses_back_what_it_was_built_from(
    address: str, p: dict[str, str | None]
) -> None:
    recipient, got = parse_rcpt(f"TO:<@relay.test,@[10.0.0.1]:{address}>{param_text(p)}")
    assert recipient == address  # the source route is dropped (RFC 5321 C.)
    assert got == {k.upper(): v for k, v in p.items()}


@given(st.text(max_size=80))
def test_the_parser_answers_any_argument_with_a_path_or_a_reply(arg: str) -> None:
    for parse in (parse_mail, parse_rcpt):
        try:
            address, _ = parse(arg)
        except PathError as e:
            assert e.reply.code in (501, 555) and e.reply.enhanced is not None
        else:
            assert arg[:3].upper() in ("FRO", "TO:")
            assert address == "" or "@" in address or address.lower() == "postmaster"


reply_text = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=30),
    min_size=1, max_size=5).map("\n".join)


@given(st.integers(min_value=200, max_value=599), reply_text, st.booleans())
def test_replies_written_and_read_back(code: int, text: str, enhanced: bool) -> None:
    detail = f"{code // 100}.1.{code % 10}" if enhanced and code // 100 != 3 else None
    reply = Reply(code, text, detail)
    [back] = ReplyReader().feed(reply.to_bytes())
    assert back.code == code
    assert back.enhanced == detail
    if detail is not None or not any(_looks_enhanced(line) for line in reply.lines):
        # spaces around a line's text are not kept: the enhanced code is followed by "one
        # or more spaces" (RFC 2034), so a text's own leading ones cannot be told apart
        assert [line.strip(" ") for line in back.lines] == [
            line.strip(" ") for line in reply.lines]


def _looks_enhanced(line: str) -> bool:
    import re

    return re.match(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}", line) is not None


pieces = st.sampled_from([
    b"EHLO c.test\r\n", b"HELO c.test\r\n", b"MAIL FROM:<a@x.test>\r\n", b"RCPT TO:<b@x.test>\r\n",
    b"DATA\r\n", b"BDAT 5\r\n", b"BDAT 3 LAST\r\n", b"BDAT 0 LAST\r\n", b"RSET\r\n", b"NOOP\r\n",
    b"QUIT\r\n", b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"*\r\n", b"AGEAYg==\r\n", b"STARTTLS\r\n",
    b"VRFY x\r\n", b"HELP\r\n", b".\r\n", b"\r\n.\r\n", b"\n.\n", b"\r", b"\n", b".", b"x" * 700,
    b"\xff\x00", b"MAIL FROM:<a@x.test> SIZE=99999999999\r\n", b"RCPT TO:<\xc3\xa9@x.test>\r\n",
    "MAIL FROM:<a@x.test> SIZE=\u00b2\r\n".encode(), "BDAT \u00b3\r\n".encode(),
    "EHLO \u00e9\r\n".encode(), b"AUTH PLAIN =\r\n", b"AUTH LOGIN YQ==\r\n",
])


@given(st.lists(pieces | st.binary(max_size=50), max_size=40),
       st.lists(st.integers(min_value=0), max_size=8))
@settings(max_examples=300)
def test_the_server_survives_any_sequence_of_input(items: list[bytes], points: list[int]) -> None:
    """Whatever comes, the server answers with SMTP or closes: no exception, and nothing
    written after it closed (the StringTransport raises on that)."""
    got: list[Any] = []
    clock = Clock()
    factory = SMTPServerFactory(got.append, reactor=clock, clock=clock, max_size=2000,
                                auth={"a": "b"}, allow_insecure_auth=True, max_bad_commands=5,
                                tls=object())
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    stream = b"".join(items)
    for piece in cuts(stream, points):
        if transport.disconnecting:
            break
        protocol.data_received(piece)
    protocol.connection_lost(ns.Failure(ns.ConnectionDone("end")))
    for envelope in got:
        assert envelope.sender == "a@x.test" and envelope.recipients


reply_lines = st.builds(
    lambda *p: b"".join(p),
    st.sampled_from([b"250", b"550", b"451", b"354", b"199", b"25", b"x"]),
    st.sampled_from([b" ", b"-", b""]),
    st.sampled_from([b"", b"2.0.0 ", b"5.1.1 ", b"4.3.0", b"9.9.9 ", b"2.0.0  "]),
    st.binary(max_size=5),
    st.sampled_from([b"\r\n", b"\n", b""]),
)


@given(st.lists(reply_lines | st.binary(max_size=10), max_size=20))
@example([b"250 5.1.1 an enhanced code of another class\r\n"])
@settings(max_examples=300)
def test_the_reply_reader_answers_any_bytes_with_replies_or_a_protocol_error(
    parts: list[bytes],
) -> None:
    from protocols.mail.smtp.core import SMTPProtocolError

    reader = ReplyReader()
    try:
        for part in parts:
            for reply in reader.feed(part):
                assert 200 <= reply.code <= 599
    except SMTPProtocolError:
        pass


utf8_atom = st.text(
    alphabet=st.sampled_from(list("abcXYZ09-_\u00e9\u00fc\u00df\u7528\u6237\u0436")),
    min_size=1, max_size=8)
utf8_label = st.text(alphabet=st.sampled_from(list("abc09\u00e9\u00fc\u4f8b\u5b50\u0436")),
                     min_size=1, max_size=10)
utf8_mailbox = st.builds(lambda lp, d: f"{lp}@{d}",
                         st.lists(utf8_atom, min_size=1, max_size=3).map(".".join),
                         st.lists(utf8_label, min_size=1, max_size=3).map(".".join))


@given(utf8_mailbox)
def test_smtputf8_addresses_parse_back(address: str) -> None:
    """RFC 6531: UTF-8 in local parts and U-labels in domains (the server then asks for the
    SMTPUTF8 parameter before it takes a non-ASCII one)."""
    assert parse_mail(f"FROM:<{address}> SMTPUTF8") == (address, {"SMTPUTF8": None})
    assert parse_rcpt(f"TO:<{address}>") == (address, {})


# ---- the DataReader's fast path against a plain reader

def reference_read(stream: bytes, max_line: int | None, bare: str) -> tuple[Any, ...]:
    """What a DATA body reader must make of ``stream``, read the plainest way: the body
    ends at the first <CRLF>.<CRLF> (the CRLF of the DATA command counts), each line is
    unstuffed and checked in order, the first problem wins. (done, rest, bad, content)."""
    padded = b"\r\n" + stream
    end = padded.find(b"\r\n.\r\n")
    if end < 0:
        return (False, None, None, None)
    body, rest = padded[2:end + 2], padded[end + 5:]
    bad = None
    kept = []
    for line in body.split(b"\r\n")[:-1]:
        if line.startswith(b"."):
            line = line[1:]
        if bad is None and max_line is not None and len(line) + 2 > max_line:
            bad = "line"
        first = re.search(rb"\r|\n", line)
        if first is not None:
            if bare == "normalize":
                line = re.sub(rb"\r|\n", b"\r\n", line)
            elif bad is None:
                bad = "CR" if first.group(0) == b"\r" else "LF"
        kept.append(line + b"\r\n")
    return (True, rest, bad, b"".join(kept) if bad is None else None)


def read_with(reader: DataReader, pieces: list[bytes]) -> tuple[Any, ...]:
    for i, piece in enumerate(pieces):
        rest = reader.feed(piece)
        if rest is not None:
            rest += b"".join(pieces[i + 1:])
            content = reader.content() if reader.bad is None else None
            return (True, rest, reader.bad, content)
    return (False, None, None, None)


# lines long and short, stuffed dots, bare CR and LF where they hide best: what the fast
# path (one search for <CRLF>., a split for bare ends, a search per max_line octets for
# long lines) must take exactly as the line-by-line path does
body_lines = st.lists(
    st.sampled_from([b"a" * 9, b"a" * 10, b"a" * 11, b"a" * 30, b".", b"..", b".a" * 5,
                     b"\r", b"\n", b"\n\r", b"\r\r\n", b"x\ry", b"", b"b"]),
    max_size=12,
).map(b"".join)
data_stream = st.lists(body_lines, max_size=30).map(lambda lines: b"".join(
    line + b"\r\n" for line in lines)) | body_bytes


@given(data_stream, st.sampled_from([b".\r\n", b".\r\nQUIT\r\n", b"", b"\r\n.\r\nX"]),
       st.lists(st.integers(min_value=0), max_size=4),
       st.sampled_from([None, 3, 12, 13, 14, 32, 1000]), st.sampled_from(["refuse", "normalize"]))
@example(b"a" * 10 + b"\r\n" + b"b" * 12 + b"\r\n", b".\r\n", [], 13, "refuse")
@example(b"abc\r\r\n", b".\r\n", [], None, "refuse")
@example(b"abc\r\n\n", b".\r\n", [], None, "refuse")
@settings(max_examples=400)
def test_the_data_reader_reads_as_a_plain_reader_does(
    body: bytes, after: bytes, points: list[int], max_line: int | None, bare: str
) -> None:
    stream = body + after
    want = reference_read(stream, max_line, bare)
    assert read_with(DataReader(None, max_line, bare), [stream]) == want
    assert read_with(DataReader(None, max_line, bare), cuts(stream, points)) == want


@given(st.integers(min_value=100, max_value=700),
       st.text(max_size=30) | st.sampled_from(["", "OK", "a\rb", "a\r\nb", "a\nb\n"]),
       st.none() | st.sampled_from(["2.0.0", "5.1.1", "4.3.0", "", "2.0", "9.9.9", "2.1.5 "]))
@example(250, "OK", "2.0.0")
@example(250, "OK", "5.0.0")
def test_reply_bytes_are_those_of_a_reply(code: int, text: str, enhanced: str | None) -> None:
    """The server's replies made without a Reply (once a code pair has been checked) are
    byte for byte what Reply writes, and refused as Reply refuses them."""
    from protocols.mail.smtp.core import reply_bytes

    for _ in range(2):  # the second time, the code pair is known
        try:
            want = Reply(code, text, enhanced).to_bytes()
        except ValueError:
            with pytest.raises(ValueError):
                reply_bytes(code, text, enhanced)
        else:
            assert reply_bytes(code, text, enhanced) == want


@pytest.mark.parametrize(("arg", "want"), [
    ("FROM:<a@x.test> FOO=a>b", ("a@x.test", {"FOO": "a>b"})),  # the first '>' ends it
    ('FROM:<"a>b"@x.test> FOO=c>d', ('"a>b"@x.test', {"FOO": "c>d"})),  # not one quoted
    ("FROM:<" + "a" * 64 + "@x.test>", ("a" * 64 + "@x.test", {})),
    ("FROM:<" + "a" * 65 + "@x.test>", 501),  # a local part is 64 octets at most
    ("FROM:<" + "\u00e9" * 32 + "@x.test> SMTPUTF8", ("\u00e9" * 32 + "@x.test",
                                                       {"SMTPUTF8": None})),
    ("FROM:<" + "\u00e9" * 33 + "@x.test>", 501),  # 66 octets in UTF-8
    ("FROM:<a@" + "b" * 63 + ".test>", ("a@" + "b" * 63 + ".test", {})),
    ("FROM:<a@" + "b" * 64 + ".test>", 501),  # a label is 63 at most
    ("FROM:<a@" + "b" * 64 + ">", 501),
    ("FROM:<a@" + ".".join(["b" * 60] * 4) + ">", ("a@" + ".".join(["b" * 60] * 4), {})),
    ("FROM:<a@" + ".".join(["b" * 60] * 4) + ".cdefghijklmno>", 501),  # a domain: 255
    ("FROM:<a@" + ".".join(["\u00e9" * 30] * 4) + ">", ("a@" + ".".join(["\u00e9" * 30] * 4),
                                                        {})),
    ("FROM:<a@" + ".".join(["\u00e9" * 30] * 5) + ">", 501),  # 304 octets in UTF-8
])
def test_address_limits_and_ends(arg: str, want: Any) -> None:
    """RFC 5321 §4.5.3.1: 64 octets of local part, 255 of domain, 63 of label, 256 of path,
    counted in octets (UTF-8), not characters; the path ends at its first '>' outside a
    quoted local part."""
    if isinstance(want, int):
        with pytest.raises(PathError) as e:
            parse_mail(arg)
        assert e.value.reply.code == want
    else:
        assert parse_mail(arg) == want


@given(data_stream, st.sampled_from([b"", b"\r\n", b"\r", b"\n", b"\r\r\n", b"\n\r\n"]))
@example(b"a\rb\nc", b"\r\n")
def test_the_fast_bare_check_agrees_with_check_bare(data: bytes, end: bytes) -> None:
    from protocols.mail.smtp.core import _no_bare, check_bare

    assert _no_bare(data + end) == (check_bare(data + end) is None)


@given(st.lists(st.sampled_from(["<a@x.test>", "<>", "<Postmaster>", "<postmaster>",
                                 "<@r.test:a@x.test>", "<a@@x.test>", "a@x.test", "<a b@x>",
                                 '<"a b"@x.test>', "<\u00e9@x.test>"]), max_size=12),
       st.lists(st.booleans(), min_size=12, max_size=12))
def test_parse_path_remembers_nothing_that_changes_an_answer(
    paths: list[str], flags: list[bool]
) -> None:
    """parse_path keeps what it parsed: the same path asked again, with other settings,
    in any order, gets the answer it gets when nothing was kept."""
    from protocols.mail.smtp import core

    def fresh(path: str, null_ok: bool, postmaster_ok: bool, what: str) -> Any:
        try:
            return core._parse_path(path, null_ok, postmaster_ok, what)
        except PathError as e:
            return str(e.reply)

    for i, path in enumerate(paths):
        null_ok, postmaster_ok = flags[i], flags[-1 - i]
        what = "sender" if flags[(i + 3) % 12] else "recipient"
        try:
            got = core.parse_path(path, null_ok=null_ok, postmaster_ok=postmaster_ok, what=what)
        except PathError as e:
            got = str(e.reply)
        assert got == fresh(path, null_ok, postmaster_ok, what)


def test_parse_path_keeps_a_bounded_memory() -> None:
    from protocols.mail.smtp import core

    for i in range(3 * core._PATHS_KEPT):
        assert parse_rcpt(f"TO:<user{i}@x.test>") == (f"user{i}@x.test", {})
        assert len(core._PATHS) <= core._PATHS_KEPT
