"""The HTTP server on real sockets, driven byte by byte: keep-alive, pipelining, HTTP/1.0,
chunked bodies both ways, Expect: 100-continue, HEAD, errors, logs, HTTPS.

The client is http_raw_client.RawClient (asyncio streams on the reactor's loop), so
each test sees exactly what the server wrote. Handlers that must wait return Deferreds
the test fires; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from http_raw_client import RawClient, exchange, get_request

import netshell as ns
from netshell import tls
from protocols import http
from protocols.http import App, HTTPError, Request, Response


def echo_app() -> App:
    app = App()

    @app.route("/")
    def index(request: Request) -> bytes:
        return b"hello"

    @app.route("/echo", methods=["POST", "PUT"])
    def echo(request: Request) -> Response:
        return Response(request.body, headers={"Content-Type": "application/octet-stream"})

    @app.route("/info")
    def info(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "agent": request.headers.get("user-agent"),
            "client": list(request.client[1:]),
        }

    @app.route("/items/{id}")
    def item(request: Request) -> str:
        return f"item {request.params['id']}"

    return app


# ---- the basics


async def test_a_get_is_answered_with_the_handler_s_body_and_length() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(listener.port, get_request("/"))
    assert (answer.version, answer.status, answer.reason) == ("HTTP/1.1", 200, "OK")
    assert answer.body == b"hello"
    assert answer.headers["Content-Length"] == "5"


async def test_every_answer_has_a_date_header_in_http_format() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(listener.port, get_request("/"))
    assert parsedate_to_datetime(answer.headers["Date"]).tzname() == "UTC"
    assert answer.headers["Date"].endswith(" GMT")


async def test_the_request_carries_path_query_headers_and_client() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(
        listener.port, get_request("/info?a=1&a=2&b=&c=%20x", "User-Agent: tester/1")
    )
    info = http.Response(answer.body).json()
    assert info["path"] == "/info"
    assert info["query"] == {"a": ["1", "2"], "b": [""], "c": [" x"]}
    assert info["agent"] == "tester/1"
    assert info["client"][0] == "127.0.0.1"


async def test_the_path_is_percent_decoded_for_routing() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(listener.port, get_request("/items/a%20b"))
    assert answer.body == b"item a b"


async def test_an_absolute_form_target_is_routed_by_its_path() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(listener.port, get_request("http://test/items/9"))
    assert answer.body == b"item 9"


async def test_a_plain_callable_is_a_handler() -> None:
    listener = http.serve(lambda request: f"you asked for {request.path}")
    answer = await exchange(listener.port, get_request("/anything"))
    assert answer.body == b"you asked for /anything"
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_a_coroutine_handler_is_awaited() -> None:
    async def handler(request: Request) -> dict[str, int]:
        await ns.sleep(0)
        return {"n": 1}

    listener = http.serve(handler)
    answer = await exchange(listener.port, get_request("/"))
    assert (answer.body, answer.headers["Content-Type"]) == (b'{"n": 1}', "application/json")


async def test_a_deferred_handler_is_answered_when_it_fires() -> None:
    gate: ns.Deferred[bytes] = ns.Deferred()
    listener = http.serve(lambda request: gate)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    pending = asyncio.ensure_future(client.answer())
    gate.callback(b"later")
    assert (await pending).body == b"later"
    client.close()


async def test_a_response_keeps_its_status_reason_and_headers() -> None:
    listener = http.serve(
        lambda request: Response(b"made", 201, {"X-Thing": "1", "Location": "/new"})
    )
    answer = await exchange(listener.port, get_request("/"))
    assert (answer.status, answer.reason) == (201, "Created")
    assert (answer.headers["X-Thing"], answer.headers["Location"]) == ("1", "/new")


async def test_a_handler_s_own_content_length_is_replaced_by_the_real_one() -> None:
    listener = http.serve(lambda request: Response(b"four", headers={"Content-Length": "100"}))
    answer = await exchange(listener.port, get_request("/"))
    assert answer.headers.get_all("Content-Length") == ["4"]


async def test_204_has_no_body_and_no_length() -> None:
    listener = http.serve(lambda request: None)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/") + get_request("/"))
    first = await client.answer()
    assert (first.status, first.body, "Content-Length" in first.headers) == (204, b"", False)
    assert (await client.answer()).status == 204  # nothing stray between the two
    client.close()


async def test_unknown_path_is_404_with_a_short_text_body() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(listener.port, get_request("/nope"))
    assert answer.status == 404
    assert answer.body == b"404 Not Found\n"
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_wrong_method_is_405_with_allow() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(listener.port, b"DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    assert answer.status == 405
    assert answer.headers["Allow"] == "POST, PUT"


async def test_a_handler_raising_http_error_gets_that_status() -> None:
    def handler(request: Request) -> None:
        raise HTTPError(403, "not yours")

    listener = http.serve(handler)
    answer = await exchange(listener.port, get_request("/"))
    assert (answer.status, answer.body) == (403, b"403 Forbidden: not yours\n")


# ---- HEAD


async def test_head_gets_the_get_headers_and_no_body() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get_request("/"))
    head = await client.answer("HEAD")
    assert (head.status, head.headers["Content-Length"], head.body) == (200, "5", b"")
    # The next answer starts right after the head: no body bytes were sent.
    assert (await client.answer()).body == b"hello"
    client.close()


async def test_head_of_a_streamed_body_sends_no_chunks() -> None:
    listener = http.serve(lambda request: Response(iter([b"a", b"b"])))
    client = await RawClient.connect(listener.port)
    client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get_request("/"))
    head = await client.answer("HEAD")
    assert head.headers["Transfer-Encoding"] == "chunked"
    assert (await client.answer()).body == b"ab"
    client.close()


# ---- keep-alive and pipelining


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    for i in range(3):
        client.send(get_request(f"/items/{i}"))
        answer = await client.answer()
        assert answer.body == f"item {i}".encode()
        assert "Connection" not in answer.headers
    assert len(listener.connections) == 1
    client.close()


async def test_pipelined_requests_are_answered_in_order_even_when_the_first_is_slow() -> None:
    gate: ns.Deferred[str] = ns.Deferred()
    entered: ns.Deferred[None] = ns.Deferred()
    app = App()

    @app.route("/slow")
    def slow(request: Request) -> ns.Deferred[str]:
        entered.callback(None)
        return gate

    app.add_route("/fast/{n}", lambda request: f"fast {request.params['n']}")
    listener = http.serve(app)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/slow") + get_request("/fast/1") + get_request("/fast/2"))
    await entered
    gate.callback("slow")
    bodies = [(await client.answer()).body for _ in range(3)]
    assert bodies == [b"slow", b"fast 1", b"fast 2"]
    client.close()


async def test_many_pipelined_requests_in_one_write_are_all_answered_in_order() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(b"".join(get_request(f"/items/{i}") for i in range(500)))
    bodies = [(await client.answer()).body for _ in range(500)]
    assert bodies == [f"item {i}".encode() for i in range(500)]
    client.close()


async def test_connection_close_from_the_client_closes_after_the_answer() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(get_request("/", "Connection: close") + get_request("/items/1"))
    answer = await client.answer()
    assert (answer.body, answer.headers["Connection"]) == (b"hello", "close")
    assert await client.rest() == b""  # the second request is never answered


async def test_connection_close_from_the_handler_closes_after_the_answer() -> None:
    listener = http.serve(lambda request: Response(b"bye", headers={"Connection": "close"}))
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    answer = await client.answer()
    assert (answer.body, answer.headers["Connection"]) == (b"bye", "close")
    assert await client.rest() == b""


async def test_a_client_that_half_closes_still_gets_its_answers() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(get_request("/") + get_request("/items/2"))
    client.writer.write_eof()
    assert (await client.answer()).body == b"hello"
    assert (await client.answer()).body == b"item 2"
    assert await client.rest() == b""


# ---- HTTP/1.0


async def test_http_1_0_closes_after_the_answer() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    answer = await client.answer()
    assert (answer.body, answer.headers["Connection"]) == (b"hello", "close")
    assert await client.rest() == b""


async def test_http_1_0_with_keep_alive_stays_open() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    for _ in range(2):
        client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        answer = await client.answer()
        assert (answer.body, answer.headers["Connection"]) == (b"hello", "keep-alive")
    client.close()


async def test_http_1_0_gets_a_streamed_body_close_delimited() -> None:
    listener = http.serve(lambda request: Response(iter([b"one ", b"two"])))
    client = await RawClient.connect(listener.port)
    client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    answer = await client.answer()
    assert "Transfer-Encoding" not in answer.headers
    assert "Content-Length" not in answer.headers
    assert answer.headers["Connection"] == "close"
    assert answer.body == b"one two"


# ---- request bodies


async def test_a_content_length_body_reaches_the_handler() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(
        listener.port, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde"
    )
    assert answer.body == b"abcde"


async def test_a_chunked_body_reaches_the_handler_joined() -> None:
    listener = http.serve(echo_app())
    answer = await exchange(
        listener.port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\nX-Trailer: 1\r\n\r\n",
    )
    assert answer.body == b"abcdefgh"


async def test_a_body_arriving_in_pieces_is_reassembled() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nab")
    await client.writer.drain()
    client.send(b"cd")
    await client.writer.drain()
    client.send(b"ef")
    assert (await client.answer()).body == b"abcdef"
    client.close()


# ---- streamed responses


async def test_an_iterable_body_goes_out_chunked() -> None:
    listener = http.serve(lambda request: Response(iter([b"a" * 10, b"", b"b" * 3])))
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    answer = await client.answer()
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert answer.body == b"a" * 10 + b"b" * 3
    client.close()


async def test_chunks_on_the_wire_are_framed_as_sent() -> None:
    listener = http.serve(lambda request: Response(iter([b"hello", b"world!"])))
    client = await RawClient.connect(listener.port)
    client.send(get_request("/", "Connection: close"))
    raw = await client.rest()
    assert raw.endswith(b"\r\n\r\n5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n")


async def test_an_async_iterable_body_goes_out_chunked() -> None:
    async def numbers() -> Any:
        for i in range(5):
            await ns.sleep(0)
            yield f"{i},".encode()

    listener = http.serve(lambda request: Response(numbers()))
    answer = await exchange(listener.port, get_request("/"))
    assert answer.body == b"0,1,2,3,4,"


async def test_a_streamed_body_with_a_declared_length_is_sent_raw() -> None:
    listener = http.serve(
        lambda request: Response(iter([b"12", b"345"]), headers={"Content-Length": "5"})
    )
    client = await RawClient.connect(listener.port)
    client.send(get_request("/") + get_request("/"))
    first = await client.answer()
    assert ("Transfer-Encoding" in first.headers, first.body) == (False, b"12345")
    assert (await client.answer()).body == b"12345"
    client.close()


async def test_a_streamed_body_shorter_than_its_length_aborts_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = http.serve(lambda request: Response(iter([b"12"]), headers={"Content-Length": "5"}))
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    raw = await client.rest()
    assert raw.endswith(b"\r\n\r\n12")
    assert "ended after 2 of its 5 bytes" in caplog.text


async def test_a_large_streamed_body_arrives_whole() -> None:
    piece = bytes(range(256)) * 256
    listener = http.serve(lambda request: Response(piece for _ in range(200)))
    answer = await exchange(listener.port, get_request("/"))
    assert answer.body == piece * 200


async def test_a_stream_that_fails_midway_aborts_the_connection_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> Any:
        yield b"start"
        raise RuntimeError("disk on fire")

    listener = http.serve(lambda request: Response(broken()))
    client = await RawClient.connect(listener.port)
    client.send(get_request("/"))
    raw = await client.rest()
    assert not raw.endswith(b"0\r\n\r\n")  # never a clean end: the client knows it is cut
    assert "disk on fire" in caplog.text


# ---- Expect: 100-continue


async def test_expect_100_continue_gets_100_before_the_body_is_sent() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await client.answer()
    assert (interim.status, interim.reason) == (100, "Continue")
    client.send(b"data")
    assert (await client.answer()).body == b"data"
    client.close()


async def test_expect_100_continue_to_an_unknown_path_gets_404_and_no_100() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(
        b"POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = await client.answer()
    assert (answer.status, answer.headers["Connection"]) == (404, "close")
    assert await client.rest() == b""


async def test_expect_100_continue_with_the_wrong_method_gets_405_and_no_100() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert (await client.answer()).status == 405
    client.close()


async def test_expect_100_continue_waits_for_the_requests_before_it() -> None:
    gate: ns.Deferred[str] = ns.Deferred()
    entered: ns.Deferred[None] = ns.Deferred()
    app = echo_app()

    @app.route("/slow")
    def slow(request: Request) -> ns.Deferred[str]:
        entered.callback(None)
        return gate

    listener = http.serve(app)
    client = await RawClient.connect(listener.port)
    client.send(
        get_request("/slow")
        + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    await entered
    gate.callback("slow done")
    assert (await client.answer()).body == b"slow done"
    assert (await client.answer()).status == 100  # only now: the interim answer is in order
    client.send(b"ok")
    assert (await client.answer()).body == b"ok"
    client.close()


async def test_an_unknown_expectation_gets_417() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: teapot\r\n\r\n")
    answer = await client.answer()
    assert (answer.status, answer.headers["Connection"]) == (417, "close")
    client.close()


async def test_an_unknown_expectation_without_a_body_gets_417_and_stays_open() -> None:
    listener = http.serve(echo_app())
    client = await RawClient.connect(listener.port)
    client.send(get_request("/", "Expect: teapot") + get_request("/"))
    assert (await client.answer()).status == 417
    assert (await client.answer()).body == b"hello"
    client.close()


# ---- errors and logs


async def test_a_handler_that_raises_gets_500_without_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: Request) -> None:
        raise ValueError("the password is hunter2")

    listener = http.serve(handler)
    answer = await exchange(listener.port, get_request("/"))
    assert answer.status == 500
    assert answer.body == b"500 Internal Server Error\n"
    assert b"hunter2" not in answer.head + answer.body


async def test_a_handler_that_raises_has_its_traceback_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: Request) -> None:
        raise ValueError("the password is hunter2")

    listener = http.serve(handler)
    with caplog.at_level(logging.ERROR, logger="netshell.http"):
        await exchange(listener.port, get_request("/broken"))
    records = [r for r in caplog.records if r.name == "netshell.http"]
    assert len(records) == 1
    assert "GET /broken" in records[0].getMessage()
    assert "Traceback" in records[0].getMessage()
    assert "ValueError: the password is hunter2" in records[0].getMessage()


async def test_a_failed_deferred_gets_500() -> None:
    listener = http.serve(lambda request: ns.fail(KeyError("gone")))
    answer = await exchange(listener.port, get_request("/"))
    assert answer.status == 500


async def test_a_coroutine_that_raises_gets_500() -> None:
    async def handler(request: Request) -> None:
        await ns.sleep(0)
        raise RuntimeError("late failure")

    listener = http.serve(handler)
    assert (await exchange(listener.port, get_request("/"))).status == 500


async def test_the_connection_serves_on_after_a_500() -> None:
    app = echo_app()

    @app.route("/boom")
    def boom(request: Request) -> None:
        raise ValueError("boom")

    listener = http.serve(app)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/boom") + get_request("/"))
    assert (await client.answer()).status == 500
    assert (await client.answer()).body == b"hello"
    client.close()


async def test_returning_an_unsendable_value_gets_500() -> None:
    listener = http.serve(lambda request: 3.14)
    assert (await exchange(listener.port, get_request("/"))).status == 500


async def test_a_header_value_with_crlf_is_never_sent() -> None:
    listener = http.serve(
        lambda request: Response(b"x", headers={"X-Evil": "a\r\nSet-Cookie: stolen=1"})
    )
    answer = await exchange(listener.port, get_request("/"))
    assert answer.status == 500
    assert b"stolen" not in answer.head


async def test_each_answer_is_logged_in_common_log_format(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = http.serve(echo_app())
    with caplog.at_level(logging.INFO, logger="netshell.http.access"):
        await exchange(listener.port, get_request("/items/7?x=1"))
        await exchange(listener.port, get_request("/missing"))
    lines = [r.getMessage() for r in caplog.records if r.name == "netshell.http.access"]
    clf = re.compile(
        r"^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
        r'"GET (\S+) HTTP/1\.1" (\d{3}) (\d+|-)$'
    )
    parsed = [clf.match(line).groups() for line in lines]  # type: ignore[union-attr]
    assert parsed == [("/items/7?x=1", "200", "6"), ("/missing", "404", "14")]


# ---- HTTPS


async def test_https_with_a_server_context() -> None:
    cert, key, ca = tls.self_signed("localhost")
    listener = http.serve(echo_app(), tls=tls.server_context(cert, key))
    context = ssl.create_default_context(cadata=ca.decode())
    client = await RawClient.connect(listener.port, ssl=context)
    client.send(get_request("/") + get_request("/items/5"))
    assert (await client.answer()).body == b"hello"
    assert (await client.answer()).body == b"item 5"
    client.close()
