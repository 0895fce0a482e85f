"""Limits and request smuggling at the server: each bad request gets its status (400, 413,
414, 431, 505), a short text body and Connection: close, and nothing after it on that
connection is ever answered.
"""

from __future__ import annotations

import pytest
from http_raw_client import RawClient, get_request

from protocols import http
from protocols.http import App, Request


def echo_app() -> App:
    app = App()
    app.add_route("/", lambda request: "root")
    app.add_route("/admin", lambda request: "ADMIN")

    @app.route("/echo", methods=["POST"])
    def echo(request: Request) -> bytes:
        return request.body

    return app


async def refused(port: int, data: bytes, status: int) -> bytes:
    """Send ``data``; the answer must be ``status`` with Connection: close, then the end."""
    client = await RawClient.connect(port)
    client.send(data)
    answer = await client.answer()
    assert answer.status == status, answer
    assert answer.headers["Connection"] == "close"
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.body.startswith(f"{status} ".encode())
    rest = await client.rest()
    client.close()
    return rest


# ---- request smuggling and malformed requests: 400 and close

SMUGGLING = {
    "content-length and transfer-encoding": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: t\r\n\r\n"
    ),
    "transfer-encoding then content-length": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 3\r\n\r\n0\r\n\r\n"
    ),
    "two different content-lengths": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"
    ),
    "two equal content-lengths": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    ),
    "a content-length list": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc",
    "a non-numeric content-length": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n"
    ),
    "a signed content-length": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc",
    "a negative content-length": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    "a hex content-length": b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0x3\r\n\r\nabc",
    "an unknown transfer coding": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n"
    ),
    "chunked not the only coding": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    ),
    "chunked twice": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "a misspelled chunked": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding in http/1.0": (
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "obsolete line folding": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
    "folded transfer-encoding": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
    ),
    "a space before the colon": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length : 3\r\n\r\nabc"
    ),
    "a tab before the colon": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"
    ),
    "a bare cr in a value": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
    "bare lf line ends": b"GET / HTTP/1.1\nHost: t\n\n",
    "a nul in a value": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
    "a space in a header name": b"GET / HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n",
    "no host in http/1.1": b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "a malformed request line": b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
    "a request line without a version": b"GET /\r\nHost: t\r\n\r\n",
    "a bad chunk size": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
    ),
    "chunk data longer than its size": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("data", SMUGGLING.values(), ids=SMUGGLING.keys())
async def test_smuggling_and_malformed_requests_get_400_and_close(data: bytes) -> None:
    listener = http.serve(echo_app())
    rest = await refused(listener.port, data, 400)
    assert b"ADMIN" not in rest
    assert rest == b""


async def test_the_smuggled_request_is_never_answered_even_after_a_pause() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answer = await client.answer()
    assert answer.status == 400
    client.send(b"0\r\n\r\n" + get_request("/admin"))
    assert b"ADMIN" not in await client.rest()


async def test_a_good_request_before_a_bad_one_in_the_same_write_is_answered() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(get_request("/") + b"GET / HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n")
    first = await client.answer()
    assert (first.status, first.body) == (200, b"root")
    second = await client.answer()
    assert (second.status, second.headers["Connection"]) == (400, "close")
    assert await client.rest() == b""


async def test_the_400_body_says_what_was_wrong() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n")
    assert (await client.answer()).body == b"400 Bad Request: missing Host header\n"
    client.close()


async def test_http_2_is_505() -> None:
    listener = http.serve(echo_app())
    await refused(listener.port, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505)


# ---- size limits


async def test_a_long_request_line_is_414() -> None:
    listener = http.serve(echo_app(), max_request_line=200)
    await refused(listener.port, get_request("/" + "a" * 300), 414)


async def test_a_request_line_at_the_limit_is_served() -> None:
    listener = http.serve(lambda request: "ok", max_request_line=200)
    line = b"GET /" + b"a" * (200 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == 200
    client = await RawClient.connect(listener.port)
    client.send(line + b"\r\nHost: t\r\n\r\n")
    assert (await client.answer()).status == 200
    client.close()


async def test_a_large_head_is_431() -> None:
    listener = http.serve(echo_app(), max_header_bytes=1000)
    await refused(listener.port, get_request("/", "X-Big: " + "b" * 2000), 431)


async def test_too_many_headers_is_431() -> None:
    listener = http.serve(echo_app(), max_headers=10)
    extra = [f"X-{i}: {i}" for i in range(11)]
    await refused(listener.port, get_request("/", *extra), 431)


async def test_a_declared_body_over_the_limit_is_413_even_while_it_is_being_sent() -> None:
    listener = http.serve(echo_app(), max_body=1000)
    # The whole body is on its way: the server answers without reading it, and must not
    # reset the connection before the client has the 413.
    data = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200000
    await refused(listener.port, data, 413)


async def test_a_chunked_body_over_the_limit_is_413() -> None:
    listener = http.serve(echo_app(), max_body=1000)
    chunks = b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(5))
    data = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    await refused(listener.port, data, 413)


async def test_a_body_at_the_limit_is_served() -> None:
    listener = http.serve(echo_app(), max_body=1000)
    client = await RawClient.connect(listener.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"z" * 1000)
    assert (await client.answer()).body == b"z" * 1000
    client.close()


async def test_expect_100_continue_with_a_body_over_the_limit_is_413_without_100() -> None:
    listener = http.serve(echo_app(), max_body=1000)
    client = await RawClient.connect(listener.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = await client.answer()
    assert answer.status == 413
    client.close()


async def test_limits_can_be_given_as_a_limits_object() -> None:
    listener = http.serve(echo_app(), limits=http.Limits(max_headers=2))
    await refused(listener.port, get_request("/", "A: 1", "B: 2"), 431)


async def test_an_unknown_limit_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="max_bodies"):
        http.serve(echo_app(), max_bodies=3)


# ---- requests per connection


async def test_the_last_request_a_connection_may_carry_gets_connection_close() -> None:
    listener = http.serve(echo_app(), max_requests=3)
    client = await RawClient.connect(listener.port)
    client.send(b"".join(get_request("/") for _ in range(5)))
    answers = [await client.answer() for _ in range(3)]
    assert [a.headers.get("Connection") for a in answers] == [None, None, "close"]
    assert await client.rest() == b""
