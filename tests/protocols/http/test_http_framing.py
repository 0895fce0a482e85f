"""The framer as a pure function: what frame_response decides, and that it parses back.

The property: a response framed by protocols.http.framing (any body given as bytes, text
or an iterable of pieces, with or without a declared length, to HTTP/1.1 or HTTP/1.0, for
GET or HEAD, any status), its pieces framed by its BodyFramer, reads back with the
project's own ResponseParser as the same status and the same body (none for HEAD, 1xx,
204 and 304), and the parser sees the end of the message exactly where the framer put it
(at the end of the bytes, or at the close for a close-delimited body).

Then the body streamer on its own, over a StringTransport and a Clock: pieces and the
end, pausing and resuming, the burst after which the loop breathes, a short body, stop.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.http.framing import (
    BIG_BODY,
    BodyFramer,
    frame_answer,
    frame_response,
    plain_answer,
    plain_response,
    read_request_framing,
    read_response_framing,
    request_framing,
    set_request_framing,
    status_line,
    streamed_length,
)
from protocols.http.message import Headers, ParseError, Response
from protocols.http.parser import Body, EndOfMessage, ResponseHead, ResponseParser

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAD = [status_line(200, "OK"), b"Date: x\r\nServer: netshell\r\n"]


def parse(data: bytes, method: str, eof: bool) -> tuple[ResponseHead, bytes, bool]:
    parser = ResponseParser()
    parser.expect(method)
    events = parser.feed(data)
    if eof:
        events += parser.feed_eof()
    heads = [e for e in events if isinstance(e, ResponseHead)]
    body = b"".join(e.data for e in events if isinstance(e, Body))
    ended = any(isinstance(e, EndOfMessage) for e in events)
    return heads[-1], body, ended


def wire(frame, pieces: list[bytes]) -> bytes:
    out = [frame.head, frame.tail]
    if frame.stream is not None:
        assert frame.framer is not None
        out += [frame.framer.piece(p) for p in pieces]
        out.append(frame.framer.end())
    return b"".join(out)


@given(
    status=st.sampled_from([200, 201, 204, 304, 404, 500]),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    version=st.sampled_from([(1, 1), (1, 0)]),
    pieces=st.lists(st.binary(max_size=40), max_size=6),
    shape=st.sampled_from(["bytes", "str", "iterable", "iterable-declared"]),
    close=st.booleans(),
)
@SETTINGS
def test_framed_output_parses_back_to_the_same_body(
    status: int, method: str, version: tuple[int, int], pieces: list[bytes], shape: str,
    close: bool,
) -> None:
    whole = b"".join(pieces)
    declared = None
    if shape == "bytes":
        body: object = whole
    elif shape == "str":
        whole = whole.decode("latin-1").encode()
        body = whole.decode()
    else:
        body = iter(pieces)
        if shape == "iterable-declared":
            declared = str(len(whole))
    lines = [status_line(status, "Some Reason"), HEAD[1]]
    frame = frame_response(lines, body, status, method, version, declared, close)
    no_body = method == "HEAD" or status in (204, 304)
    data = wire(frame, pieces)
    # A close-delimited body (an undeclared stream to HTTP/1.0) ends the connection.
    close_delimited = shape == "iterable" and version == (1, 0) and status not in (204, 304)
    assert frame.close == (close or close_delimited)
    head, got, ended = parse(data, method, eof=frame.close)
    assert head.status == status
    assert got == (b"" if no_body else whole)
    assert ended
    if not frame.close:
        # Ended by its framing, not by the close: nothing after it would be taken as body.
        assert parse(data + b"HTTP/1.1 200 OK\r\n", method, eof=False)[2]
    if no_body:
        assert frame.stream is None and frame.framer is None
        assert frame.discard is (body if shape.startswith("iterable") else None)


def test_a_stream_to_http11_is_chunked_and_to_http10_close_delimited() -> None:
    chunked = frame_response(list(HEAD), iter([b"x"]), 200, "GET", (1, 1))
    assert b"Transfer-Encoding: chunked\r\n" in chunked.head and not chunked.close
    assert chunked.framer is not None and chunked.framer.chunked
    old = frame_response(list(HEAD), iter([b"x"]), 200, "GET", (1, 0))
    assert old.close and old.head.endswith(b"Connection: close\r\n\r\n")
    assert old.framer is not None and not old.framer.chunked and old.framer.length is None


def test_a_declared_length_of_digits_only_is_kept() -> None:
    kept = frame_response(list(HEAD), iter([b"ab"]), 200, "GET", (1, 1), "2")
    assert b"Content-Length: 2\r\n" in kept.head and b"chunked" not in kept.head
    # "²" is a digit to str.isdigit, not to int(): ignored, and the body goes chunked.
    odd = frame_response(list(HEAD), iter([b"ab"]), 200, "GET", (1, 1), "²")
    assert b"Transfer-Encoding: chunked\r\n" in odd.head


def test_head_keeps_the_framing_fields_of_get_and_sends_no_body() -> None:
    frame = frame_response(list(HEAD), b"hello", 200, "HEAD", (1, 1))
    assert b"Content-Length: 5\r\n" in frame.head and frame.head.endswith(b"\r\n\r\n")
    assert frame.no_body and frame.sent == 0


def test_204_and_304_have_no_framing_fields() -> None:
    for status in (204, 304):
        frame = frame_response([status_line(status, "x")], b"", status, "GET", (1, 1))
        assert b"Content-Length" not in frame.head and b"Transfer-Encoding" not in frame.head


def test_a_large_body_is_left_for_a_second_write() -> None:
    big = b"x" * (256 * 1024 + 1)
    frame = frame_response(list(HEAD), big, 200, "GET", (1, 1))
    assert frame.tail is big and frame.sent == len(big)
    assert frame.head.endswith(b"\r\n\r\n")


def test_the_body_framer_refuses_what_is_not_bytes_and_bytes_past_the_length() -> None:
    framer = BodyFramer(chunked=False, length=3)
    assert framer.piece("ab") == b"ab"
    with pytest.raises(ValueError, match="longer than its Content-Length"):
        framer.piece(b"cd")
    with pytest.raises(TypeError, match="gave int"):
        BodyFramer(chunked=True, length=None).piece(5)
    assert BodyFramer(chunked=True, length=None).piece(b"") == b""


def test_request_framing() -> None:
    assert request_framing("GET", None) is None
    assert request_framing("POST", None) == ("Content-Length", "0")
    assert request_framing("PUT", b"abc") == ("Content-Length", "3")
    assert request_framing("PUT", iter([b"a"]), 1) == ("Content-Length", "1")
    assert request_framing("PUT", iter([b"a"])) == ("Transfer-Encoding", "chunked")


@pytest.mark.parametrize("kind", [bytes, str])
def test_plain_answer_is_the_one_piece_200_where_it_can_go_so(kind: type) -> None:
    body = b"hello"
    assert plain_answer(kind, body, "GET", (1, 1), False, b"D\r\n") == plain_response(
        kind, body, b"D\r\n"
    )
    assert plain_answer(kind, body, "HEAD", (1, 1), False, b"") is None
    assert plain_answer(kind, body, "GET", (1, 0), False, b"") is None
    assert plain_answer(kind, body, "GET", (1, 1), True, b"") is None
    assert plain_answer(kind, b"x" * (BIG_BODY + 1), "GET", (1, 1), False, b"") is None
    assert plain_answer(kind, b"x" * BIG_BODY, "GET", (1, 1), False, b"") is not None


def test_frame_answer_frames_what_a_handler_returned() -> None:
    status, frame = frame_answer("hi", "GET", (1, 1), True, b"Date: x\r\n")
    assert status == 200 and frame.close
    assert frame.head.endswith(b"Content-Length: 2\r\nConnection: close\r\n\r\nhi")
    status, frame = frame_answer(None, "GET", (1, 1), False, b"")
    assert status == 204 and frame.no_body
    asked = Response(b"", 200, Headers([("Connection", "close")]))
    assert frame_answer(asked, "GET", (1, 1), False, b"")[1].close
    with pytest.raises(TypeError, match="a handler returned object"):
        frame_answer(object(), "GET", (1, 1), False, b"")


def test_set_request_framing_replaces_the_callers_framing_fields() -> None:
    headers = Headers([("Content-Length", "9"), ("Transfer-Encoding", "gzip"), ("X", "y")])
    assert set_request_framing("PUT", b"abc", headers) is None
    assert headers.items() == [("X", "y"), ("Content-Length", "3")]
    streamed = Headers([("Content-Length", "2")])
    assert set_request_framing("PUT", iter([b"ab"]), streamed) == 2
    assert streamed.items() == [("Content-Length", "2")]
    chunked = Headers()
    assert set_request_framing("PUT", iter([b"ab"]), chunked) is None
    assert chunked.items() == [("Transfer-Encoding", "chunked")]


@pytest.mark.parametrize("lengths", [["1", "1"], ["-1"], ["1e3"], ["\u00b2"], ["9" * 19], [""]])
def test_streamed_length_is_one_number_of_bytes(lengths: list[str]) -> None:
    assert streamed_length([" 7 "]) == 7
    with pytest.raises(ValueError, match="Content-Length of a streamed body is a number"):
        streamed_length(lengths)


# ---- the reading side: how a received head's body is delimited (RFC 9112 section 6.3)


def test_read_request_framing() -> None:
    assert read_request_framing(None, None, True, 10) == ("none", None)
    assert read_request_framing(None, ["0"], False, 10) == ("length", 0)
    assert read_request_framing(["Chunked"], None, True, 10) == ("chunked", None)


@pytest.mark.parametrize(
    ("codings", "lengths", "http11", "status", "message"),
    [
        (["chunked"], ["3"], True, 400, "both Content-Length and Transfer-Encoding"),
        (["chunked"], None, False, 400, "Transfer-Encoding in an HTTP/1.0 request"),
        (["gzip"], None, True, 400, "unsupported Transfer-Encoding"),
        (["chunked", "chunked"], None, True, 400, "unsupported Transfer-Encoding"),
        (None, ["3", "3"], True, 400, "duplicate Content-Length"),
        (None, ["+3"], True, 400, "invalid Content-Length"),
        (None, ["11"], True, 413, "body larger than 10 bytes"),
        (None, ["1" * 40], True, 413, "body larger than 10 bytes"),
    ],
)
def test_read_request_framing_refuses(
    codings: list[str] | None, lengths: list[str] | None, http11: bool, status: int,
    message: str,
) -> None:
    with pytest.raises(ParseError, match=message) as info:
        read_request_framing(codings, lengths, http11, 10)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("method", "status", "codings", "lengths", "expected"),
    [
        ("GET", 200, None, ["3"], ("length", 3, False)),
        ("GET", 200, ["chunked"], None, ("chunked", None, False)),
        ("GET", 200, None, None, ("close", None, True)),
        ("HEAD", 200, None, ["3"], ("none", None, False)),
        ("GET", 204, None, None, ("none", None, False)),
        ("GET", 304, None, ["3"], ("none", None, False)),
        ("GET", 100, None, None, ("none", None, False)),
        ("GET", 101, None, ["3"], ("none", None, True)),
        ("CONNECT", 200, None, None, ("none", None, True)),
        ("CONNECT", 407, None, ["3"], ("length", 3, False)),
    ],
)
def test_read_response_framing(
    method: str, status: int, codings: list[str] | None, lengths: list[str] | None,
    expected: tuple[str, int | None, bool],
) -> None:
    assert read_response_framing(method, status, codings, lengths, True, 10) == expected


def test_read_response_framing_refuses_transfer_encoding_in_http10() -> None:
    with pytest.raises(ParseError, match=r"HTTP/1\.0 response"):
        read_response_framing("GET", 200, ["chunked"], None, False, 10)


# ---- the streamer, driven without a server: a StringTransport and a Clock


def streamer_for(chunked: bool = True, length: int | None = None):
    from netshell.testing import Clock, StringTransport
    from protocols.http.message import Request
    from protocols.http.streaming import BodyStreamer

    transport = StringTransport()
    clock = Clock()
    done: list[tuple[int, bool]] = []
    streamer = BodyStreamer(
        transport, clock, Request("GET", "/s"), "peer", lambda sent, f: done.append((sent, f))
    )
    return streamer, transport, clock, done, BodyFramer(chunked, length)


def test_the_streamer_writes_pieces_and_the_end_then_calls_back() -> None:
    streamer, transport, _, done, framer = streamer_for()
    streamer.send([b"ab", b"", "cd"], framer)
    assert transport.value() == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
    assert done == [(4, False)]


def test_the_streamer_stops_while_paused_and_goes_on_when_resumed() -> None:
    streamer, transport, _, done, framer = streamer_for(chunked=False)
    streamer.pause()
    streamer.send(iter([b"a", b"b"]), framer)
    assert transport.value() == b"" and done == []
    streamer.resume()
    assert transport.value() == b"ab" and done == [(2, False)]


def test_the_streamer_lets_the_loop_breathe_after_a_burst() -> None:
    streamer, transport, clock, done, framer = streamer_for(chunked=False)
    streamer.send(iter([b"x"] * 100), framer)
    assert len(transport.value()) == 64 and done == []
    clock.advance(0)
    assert len(transport.value()) == 100 and done == [(100, False)]


def test_a_short_body_aborts_the_connection() -> None:
    streamer, transport, _, done, framer = streamer_for(chunked=False, length=5)
    streamer.send([b"abc"], framer)
    assert transport.aborted and done == []


def test_a_stopped_streamer_closes_its_generator_and_writes_nothing_more() -> None:
    streamer, transport, _, done, framer = streamer_for(chunked=False)
    pieces = (piece for piece in [b"a", b"b"])
    streamer.pause()
    streamer.send(pieces, framer)
    streamer.stop()
    streamer.resume()
    assert pieces.gi_frame is None  # closed
    assert transport.value() == b"" and done == []
