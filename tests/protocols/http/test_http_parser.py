"""protocols.http.parser: requests and responses, framing, limits, and every smuggling case.

Each refusal is its own test and checks the status the server would answer with. The
differential tests against h11 live in test_parser_h11.py.
"""

from __future__ import annotations

import pytest

from protocols.http.message import Headers, Limits, ParseError
from protocols.http.parser import (
    LAST_CHUNK,
    Body,
    EndOfMessage,
    Event,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    encode_chunk,
    serialize_request_head,
    serialize_response_head,
)

GET = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n"


def parse(data: bytes, limits: Limits | None = None) -> list[Event]:
    return RequestParser(limits).feed(data)


def refused(data: bytes, limits: Limits | None = None) -> ParseError:
    """The ParseError that ``data`` raises, whether at once or at EOF."""
    p = RequestParser(limits)
    with pytest.raises(ParseError) as info:
        p.feed(data)
        p.feed_eof()
    return info.value


def body_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Body))


def response(data: bytes, method: str = "GET", eof: bool = False) -> list[Event]:
    p = ResponseParser()
    p.expect(method)
    events = p.feed(data)
    if eof:
        events += p.feed_eof()
    return events


# --- requests that parse -------------------------------------------------------------------


def test_simple_get_gives_head_then_end() -> None:
    head, end = parse(GET)
    assert isinstance(head, RequestHead) and isinstance(end, EndOfMessage)
    assert (head.method, head.target, head.version) == ("GET", "/index.html?q=1", (1, 1))
    assert head.headers.items() == [("Host", "example.org"), ("Accept", "*/*")]
    assert (head.body_kind, head.content_length) == ("none", None)


def test_http11_keeps_alive_by_default() -> None:
    assert parse(GET)[0].keep_alive is True


def test_http11_connection_close_ends_keep_alive() -> None:
    head = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n")[0]
    assert head.keep_alive is False


def test_http10_closes_by_default() -> None:
    head = parse(b"GET / HTTP/1.0\r\n\r\n")[0]
    assert (head.version, head.keep_alive) == ((1, 0), False)


def test_http10_keep_alive_when_asked() -> None:
    assert parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")[0].keep_alive is True


def test_http10_needs_no_host() -> None:
    assert isinstance(parse(b"GET / HTTP/1.0\r\n\r\n")[-1], EndOfMessage)


def test_higher_minor_version_is_accepted() -> None:
    # RFC 9110 section 2.5: a higher minor version is understood as the highest we speak.
    assert parse(b"GET / HTTP/1.7\r\nHost: a\r\n\r\n")[0].version == (1, 7)


def test_header_values_are_stripped_and_names_keep_spelling() -> None:
    head = parse(b"GET / HTTP/1.1\r\nhOsT:   a.b \t\r\nX-Sp:  a b \r\nX-Empty:\r\n\r\n")[0]
    assert head.headers.items() == [("hOsT", "a.b"), ("X-Sp", "a b"), ("X-Empty", "")]
    assert head.headers["host"] == "a.b"


@pytest.mark.parametrize("host", [b"a b", b"a/b@c", b"a:80x", b"[::1", b"\xe9.org"])
def test_an_invalid_host_value_is_refused(host: bytes) -> None:
    # RFC 9112 section 3.2: a Host field with an invalid value MUST get a 400.
    with pytest.raises(ParseError) as e:
        parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert e.value.status == 400


@pytest.mark.parametrize("host", [b"", b"example.org", b"a:80", b"127.0.0.1:8080", b"[::1]:443"])
def test_a_valid_host_value_is_accepted(host: bytes) -> None:
    assert parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")[0].method == "GET"


@pytest.mark.parametrize(
    "line",
    [b"GET hello.txt", b"GET http:hello.txt", b"GET http://x:notaport/h", b"GET *",
     b"CONNECT example.org", b"GET http://user@host/", b"CONNECT /", b"CONNECT /a:443",
     b"CONNECT *", b"CONNECT http://example.org:443/"],
)
def test_a_target_of_no_valid_form_is_refused(line: bytes) -> None:
    # RFC 9112 section 3.2: origin-form starts with "/", absolute-form is an absolute URI,
    # authority-form is for CONNECT, the asterisk for OPTIONS; anything else is a 400.
    with pytest.raises(ParseError) as e:
        parse(line + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert e.value.status == 400


@pytest.mark.parametrize(
    "line",
    [b"GET /a?b=c", b"GET http://example.org:8080/x?y", b"GET https://example.org",
     b"OPTIONS *", b"CONNECT example.org:443"],
)
def test_the_four_target_forms_are_accepted(line: bytes) -> None:
    assert parse(line + b" HTTP/1.1\r\nHost: a\r\n\r\n")[0].target == line.split(b" ")[1].decode()


def test_obs_text_in_values_decodes_as_latin1() -> None:
    head = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\n\r\n")[0]
    assert head.headers["x-name"] == "café"


def test_repeated_header_lines_parse_the_same_every_time() -> None:
    # The field cache must hand back the same pairs, not state from an earlier request.
    first = parse(GET)[0].headers
    second = parse(GET)[0].headers
    first.add("X-Later", "1")
    assert second.items() == [("Host", "example.org"), ("Accept", "*/*")]


def test_content_length_body() -> None:
    events = parse(b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
    head = events[0]
    assert (head.body_kind, head.content_length) == ("length", 5)
    assert body_of(events) == b"hello" and isinstance(events[-1], EndOfMessage)


def test_content_length_zero_ends_at_once() -> None:
    events = parse(b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]


def test_content_length_with_leading_zeros() -> None:
    assert (
        parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc")[0].content_length
        == 3
    )


def test_chunked_body_and_trailers() -> None:
    events = parse(
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"5\r\nhello\r\nA;name=value;flag\r\n0123456789\r\n0\r\nX-Sum: 42\r\nX-More: b\r\n\r\n"
    )
    assert events[0].body_kind == "chunked"
    assert body_of(events) == b"hello0123456789"
    assert events[-1] == EndOfMessage(Headers([("X-Sum", "42"), ("X-More", "b")]))


def test_chunk_extension_with_quoted_value() -> None:
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3 ; a = "x\\"y" ;b\r\nabc\r\n0\r\n\r\n'
    )
    assert body_of(events) == b"abc"


def test_expect_100_continue() -> None:
    head = parse(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")[
        0
    ]
    assert head.expect_continue is True


def test_expect_is_ignored_in_http10() -> None:
    # RFC 9110 section 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
    head = parse(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")[0]
    assert head.expect_continue is False


@pytest.mark.parametrize(
    ("field", "has_expect", "expect_continue"),
    [(b"", False, False), (b"Expect: 100-continue\r\n", True, True),
     (b"expect: something-else\r\n", True, False)],
)
def test_has_expect_tells_any_expect_field(field, has_expect, expect_continue) -> None:
    head = parse(b"PUT / HTTP/1.1\r\nHost: a\r\n" + field + b"Content-Length: 1\r\n\r\n")[0]
    assert (head.has_expect, head.expect_continue) == (has_expect, expect_continue)


def test_pipelined_requests_come_in_order() -> None:
    events = parse(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert [e.target for e in events if isinstance(e, RequestHead)] == ["/1", "/2", "/3"]
    assert sum(isinstance(e, EndOfMessage) for e in events) == 3


def test_pieces_of_a_body_arrive_as_they_come() -> None:
    p = RequestParser()
    head = p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab")
    assert head[1:] == [Body(b"ab")]
    assert p.feed(b"cd") == [Body(b"cd")]
    assert p.feed(b"ef") == [Body(b"ef"), EndOfMessage()]


def test_head_split_byte_by_byte() -> None:
    p = RequestParser()
    events: list[Event] = []
    for i in range(len(GET)):
        events += p.feed(GET[i : i + 1])
    assert events == parse(GET)


def test_empty_lines_before_a_request_are_ignored() -> None:
    # RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before the
    # request line (some clients send CRLF after a POST body).
    events = parse(b"\r\n\r\n" + GET)
    assert events[0].target == "/index.html?q=1"


def test_nothing_after_connection_close_is_parsed() -> None:
    p = RequestParser()
    events = p.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET)
    assert len(events) == 2 and p.done
    assert p.feed(GET) == []


def test_absolute_form_and_asterisk_targets() -> None:
    assert parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")[0].target == "*"
    target = parse(b"GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n")[0].target
    assert target == "http://a/b?c"


# --- EOF -------------------------------------------------------------------------------------


def test_eof_at_a_boundary_gives_nothing() -> None:
    p = RequestParser()
    p.feed(GET)
    assert p.feed_eof() == []


def test_eof_in_a_head_is_400() -> None:
    p = RequestParser()
    p.feed(b"GET / HTTP/1.1\r\nHo")
    with pytest.raises(ParseError) as info:
        p.feed_eof()
    assert info.value.status == 400


def test_eof_in_a_body_is_400() -> None:
    p = RequestParser()
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc")
    with pytest.raises(ParseError) as info:
        p.feed_eof()
    assert info.value.status == 400


def test_eof_in_chunked_body_is_400() -> None:
    p = RequestParser()
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
    with pytest.raises(ParseError):
        p.feed_eof()


# --- errors: the parser stays dead, earlier pipelined requests are kept -------------------------


def test_error_keeps_events_parsed_before_it() -> None:
    p = RequestParser()
    with pytest.raises(ParseError) as info:
        p.feed(GET + b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert [type(e) for e in info.value.events] == [RequestHead, EndOfMessage]


def test_parser_stays_dead_after_an_error() -> None:
    p = RequestParser()
    with pytest.raises(ParseError) as first:
        p.feed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    with pytest.raises(ParseError) as again:
        p.feed(GET)
    assert again.value is first.value


# --- malformed requests: 400 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"GET  / HTTP/1.1",  # two spaces
        b"GET / HTTP/1.1 ",  # trailing space
        b"GET /",  # HTTP/0.9
        b"GET / http/1.1",  # the version name is case-sensitive
        b"GET / HTTP/1.1.1",
        b"GET / HTTP/11",
        b"G(T / HTTP/1.1",  # not a token
        b"GET /a\tb HTTP/1.1",  # tab in the target
        b"GET /a\x7fb HTTP/1.1",  # DEL in the target
        b"GET /a\x00 HTTP/1.1",  # NUL in the target
        b" GET / HTTP/1.1",
    ],
)
def test_malformed_request_line_is_400(line: bytes) -> None:
    assert refused(line + b"\r\nHost: a\r\n\r\n").status == 400


def test_raw_non_ascii_target_is_400() -> None:
    # RFC 9112 section 3.2: the target is ASCII; raw UTF-8 must be percent-encoded.
    assert refused(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n").status == 400


def test_feed_accepts_bytearray_and_memoryview() -> None:
    p = RequestParser()
    events = p.feed(bytearray(GET[:10])) + p.feed(memoryview(GET)[10:])
    assert events == parse(GET)


def test_invalid_token_in_header_name_is_400() -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n").status == 400


def test_header_line_without_colon_is_400() -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n").status == 400


def test_empty_header_name_is_400() -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n").status == 400


@pytest.mark.parametrize("char", [b"\x00", b"\x01", b"\x1f", b"\x7f", b"\x0b", b"\x0c"])
def test_control_character_in_header_value_is_400(char: bytes) -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a" + char + b"b\r\n\r\n").status == 400


def test_malformed_chunk_size_is_400() -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    for line in (b"0x5", b"-5", b"5 ", b" 5", b"g", b"", b"5;", b"5;a=", b"5;a b"):
        assert refused(head + line + b"\r\nhello\r\n0\r\n\r\n").status == 400, line


def test_chunk_data_not_followed_by_crlf_is_400() -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert refused(head + b"3\r\nabcd\r\n0\r\n\r\n").status == 400


def test_long_chunk_extension_is_400() -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    ext = b";x=" + b"y" * 200
    assert refused(head + b"3" + ext + b"\r\nabc\r\n", Limits(max_chunk_line=100)).status == 400


def test_unterminated_long_chunk_line_is_400_before_the_end() -> None:
    p = RequestParser(Limits(max_chunk_line=64))
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(ParseError) as info:
        p.feed(b"3;" + b"a" * 100)
    assert info.value.status == 400


# --- limits: 414, 431, 413, 505 -----------------------------------------------------------------


def test_request_line_too_long_is_414() -> None:
    line = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    assert refused(line, Limits(max_request_line=100)).status == 414


def test_request_line_too_long_is_414_before_it_ends() -> None:
    p = RequestParser(Limits(max_request_line=100))
    with pytest.raises(ParseError) as info:
        p.feed(b"GET /" + b"a" * 200)
    assert info.value.status == 414


def test_head_too_large_is_431() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 300 + b"\r\n\r\n"
    assert refused(data, Limits(max_header_bytes=256)).status == 431


def test_head_too_large_is_431_before_it_ends() -> None:
    p = RequestParser(Limits(max_header_bytes=256))
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    with pytest.raises(ParseError) as info:
        for _ in range(40):
            p.feed(b"X-Pad: 0123456789\r\n")
    assert info.value.status == 431


def test_too_many_header_fields_is_431() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 10 + b"\r\n"
    assert refused(data, Limits(max_headers=10)).status == 431


def test_content_length_over_max_body_is_413_up_front() -> None:
    # Refused on the head alone: the body is never waited for.
    p = RequestParser(Limits(max_body=10))
    with pytest.raises(ParseError) as info:
        p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
    assert info.value.status == 413


def test_huge_content_length_is_413() -> None:
    assert (
        refused(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n"
        ).status
        == 413
    )


def test_chunked_body_over_max_body_is_413_as_it_comes() -> None:
    p = RequestParser(Limits(max_body=10))
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    p.feed(b"6\r\nabcdef\r\n")
    with pytest.raises(ParseError) as info:
        p.feed(b"5\r\n")
    assert info.value.status == 413


def test_huge_chunk_size_is_413() -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert refused(head + b"f" * 40 + b"\r\n").status == 413


def test_trailers_over_the_field_limit_are_431() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + b"X: 1\r\n" * 6
        + b"\r\n"
    )
    assert refused(data, Limits(max_headers=5)).status == 431


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.1"])
def test_unsupported_major_version_is_505(version: bytes) -> None:
    assert refused(b"GET / " + version + b"\r\nHost: a\r\n\r\n").status == 505


# --- request smuggling: each refused with 400 ---------------------------------------------------


def test_smuggling_content_length_and_transfer_encoding() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"
    )
    assert refused(data).status == 400


def test_smuggling_duplicate_content_length_different() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    assert refused(data).status == 400


def test_smuggling_duplicate_content_length_equal() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    assert refused(data).status == 400


def test_smuggling_content_length_list() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"
    assert refused(data).status == 400


@pytest.mark.parametrize("value", [b"+5", b"-5", b"", b"5a", b"0x5", b"5 5", b"\xb2", b"1e3"])
def test_smuggling_non_numeric_content_length(value: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\nhello"
    assert refused(data).status == 400


@pytest.mark.parametrize(
    "coding",
    [
        b"gzip",
        b"gzip, chunked",
        b"chunked, gzip",
        b"chunked, chunked",
        b"identity",
        b"xchunked",
        b"chunked;a=b",
        b"",
    ],
)
def test_smuggling_transfer_coding_other_than_chunked(coding: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n"
    assert refused(data).status == 400


def test_smuggling_two_transfer_encoding_fields() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert refused(data).status == 400


def test_smuggling_transfer_encoding_in_http10() -> None:
    data = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert refused(data).status == 400


def test_smuggling_obsolete_line_folding() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n"
    assert refused(data).status == 400


def test_smuggling_folded_transfer_encoding() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
    assert refused(data).status == 400


def test_smuggling_whitespace_before_colon() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
    assert refused(data).status == 400


def test_smuggling_tab_before_colon() -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\nhello"
    assert refused(data).status == 400


def test_smuggling_bare_cr_in_header_value() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n"
    assert refused(data).status == 400


def test_smuggling_bare_cr_in_request_line() -> None:
    assert refused(b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n").status == 400


def test_smuggling_bare_lf_line_ending() -> None:
    assert refused(b"GET / HTTP/1.1\nHost: a\r\n\r\n").status == 400


def test_smuggling_bare_lf_head_is_refused_before_it_ends() -> None:
    # A head ended by LF LF would never complete: it is refused at once, not at the timeout.
    p = RequestParser()
    with pytest.raises(ParseError) as info:
        p.feed(b"GET / HTTP/1.1\nHost: a\n\n")
    assert info.value.status == 400


def test_smuggling_nul_in_header_value() -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n").status == 400


def test_smuggling_missing_host() -> None:
    assert refused(b"GET / HTTP/1.1\r\n\r\n").status == 400


def test_smuggling_duplicate_host() -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status == 400


def test_smuggling_duplicate_host_in_http10() -> None:
    assert refused(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n").status == 400


def test_smuggling_invalid_method_token() -> None:
    assert refused(b"GE\x01T / HTTP/1.1\r\nHost: a\r\n\r\n").status == 400


def test_smuggling_space_in_header_name() -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n").status == 400


def test_smuggling_bare_lf_after_chunk_data() -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert refused(head + b"3\r\nabc\n0\r\n\r\n").status == 400


def test_smuggling_bare_lf_in_chunk_size_line() -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert refused(head + b"3\nabc\r\n0\r\n\r\n").status == 400


# --- responses ------------------------------------------------------------------------------


def test_response_with_content_length() -> None:
    events = response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.body_kind, head.keep_alive) == (
        200,
        "OK",
        "length",
        True,
    )
    assert body_of(events) == b"ok" and isinstance(events[-1], EndOfMessage)


def test_response_chunked() -> None:
    events = response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"
    )
    assert body_of(events) == b"ok" and events[-1].trailers["x-t"] == "1"


def test_response_delimited_by_close() -> None:
    p = ResponseParser()
    p.expect("GET")
    events = p.feed(b"HTTP/1.0 200 OK\r\n\r\nsome")
    events += p.feed(b" data")
    assert events[0].body_kind == "close" and events[0].keep_alive is False
    assert p.feed_eof() == [EndOfMessage()]
    assert body_of(events) == b"some data"


def test_response_to_head_has_no_body() -> None:
    events = response(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", method="HEAD")
    assert events[0].body_kind == "none" and isinstance(events[1], EndOfMessage)


@pytest.mark.parametrize("status", [204, 304])
def test_response_without_body_by_status(status: int) -> None:
    events = response(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status)
    assert [type(e) for e in events] == [ResponseHead, EndOfMessage]


def test_interim_100_then_final_response() -> None:
    events = response(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    assert [(type(e).__name__, getattr(e, "status", None)) for e in events] == [
        ("ResponseHead", 100),
        ("EndOfMessage", None),
        ("ResponseHead", 201),
        ("EndOfMessage", None),
    ]


def test_pipelined_responses_follow_their_methods() -> None:
    p = ResponseParser()
    for method in ("HEAD", "GET"):
        p.expect(method)
    events = p.feed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert [type(e) for e in events] == [
        ResponseHead,
        EndOfMessage,
        ResponseHead,
        Body,
        EndOfMessage,
    ]


def test_unsolicited_response_is_an_error() -> None:
    with pytest.raises(ParseError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def test_status_line_without_reason() -> None:
    head = response(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n")[0]
    assert (head.status, head.reason) == (404, "")


def test_http10_response_keep_alive() -> None:
    head = response(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")[0]
    assert head.keep_alive is True


def test_response_with_both_framings_is_an_error() -> None:
    with pytest.raises(ParseError):
        response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")


def test_malformed_status_line_is_an_error() -> None:
    with pytest.raises(ParseError):
        response(b"HTTP/1.1 2000 OK\r\n\r\n")


def test_response_cut_short_is_an_error_at_eof() -> None:
    p = ResponseParser()
    p.expect("GET")
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(ParseError):
        p.feed_eof()


# --- writers --------------------------------------------------------------------------------


def test_serialize_request_head_parses_back() -> None:
    data = serialize_request_head("PUT", "/x?y=1", Headers([("Host", "h"), ("X-A", "1 2")]))
    head = parse(data + b"")[0]
    assert (head.method, head.target, head.headers.items()) == (
        "PUT",
        "/x?y=1",
        [("Host", "h"), ("X-A", "1 2")],
    )


def test_serialize_request_head_accepts_pairs_and_http10() -> None:
    data = serialize_request_head("GET", "/", [("Host", "h")], version=(1, 0))
    assert data == b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"


def test_serialize_response_head() -> None:
    data = serialize_response_head(404, "Not Found", Headers([("Content-Length", "0")]))
    assert data == b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    "headers",
    [
        [("X", "a\r\nSet-Cookie: evil=1")],
        [("X", "a\nb")],
        [("X", "a\rb")],
        [("X", "a\x00")],
        [("X Y", "1")],
        [("X:Y", "1")],
        [("", "1")],
    ],
)
def test_serializers_refuse_header_injection(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        serialize_response_head(200, "OK", headers)
    with pytest.raises(ValueError):
        serialize_request_head("GET", "/", headers)


def test_serialize_refuses_crlf_in_reason_and_target() -> None:
    with pytest.raises(ValueError):
        serialize_response_head(200, "OK\r\nX: 1", [])
    with pytest.raises(ValueError):
        serialize_request_head("GET", "/\r\nX: 1", [])


def test_encode_chunk_round_trips() -> None:
    data = serialize_request_head("POST", "/", [("Host", "a"), ("Transfer-Encoding", "chunked")])
    data += encode_chunk(b"a" * 300) + encode_chunk(b"") + encode_chunk(b"bc") + LAST_CHUNK
    assert body_of(parse(data)) == b"a" * 300 + b"bc"


def test_encode_chunk_uses_hex_size() -> None:
    assert encode_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
