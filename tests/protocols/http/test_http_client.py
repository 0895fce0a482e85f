"""The HTTP client's own behaviour: URLs, the pool's reuse and retry rules, faults, timeouts,
progress, and what goes on the wire.

The faults need a server that misbehaves on cue, so these tests use a scripted server on
loopback: h11 (not our parser) reads each request, and a script chooses the raw bytes to
answer with, or to close, or to stay silent. The client against real servers is in
test_client_peers.py.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import pytest

import netshell as ns
from protocols.http import client
from protocols.http.client import (
    URL,
    HTTPClient,
    HTTPClientError,
    InvalidURL,
    RemoteProtocolError,
    RequestTimeout,
    ServerDisconnected,
)

HANG = "hang"  # a script's answer: say nothing
CLOSE = "close"  # a script's answer: close the connection without a response

Answer = Callable[[int, int, h11.Request, bytes], Any]


def ok(body: bytes = b"ok", *extra: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in extra)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), fields.encode(), body)


class Seen:
    """One request as the scripted server saw it."""

    def __init__(self, connection: int, request: h11.Request, body: bytes) -> None:
        self.connection = connection
        self.method = request.method.decode()
        self.target = request.target.decode()
        self.headers = {n.decode(): v.decode() for n, v in request.headers}
        self.body = body


class ScriptedServer:
    """Listens on loopback; answers request n on connection c with ``answer(c, n, req, body)``:
    bytes to send, CLOSE, or HANG."""

    def __init__(self, reactor: ns.Reactor, answer: Answer) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        self.raw = bytearray()  # every byte received, on every connection, as it came
        self.accepted = 0
        self.closed: list[ns.Deferred[None]] = []
        self._waiting: list[ns.Deferred[Seen]] = []
        self.listener = reactor.listen_tcp(0, ns.Factory.for_protocol(_ScriptedConnection, self))

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.listener.port}{path}"

    def next_request(self) -> ns.Deferred[Seen]:
        """Fires when the next request has been read (before it is answered)."""
        d: ns.Deferred[Seen] = ns.Deferred()
        self._waiting.append(d)
        return d

    def _saw(self, seen: Seen) -> None:
        self.seen.append(seen)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(seen)


class _ScriptedConnection(ns.Protocol):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.parser = h11.Connection(h11.SERVER)
        self.count = 0
        self.body = b""
        self.request: h11.Request | None = None
        self.gone: ns.Deferred[None] = ns.Deferred()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.server.accepted += 1
        self.number = self.server.accepted
        self.server.closed.append(self.gone)

    def data_received(self, data: bytes) -> None:
        self.server.raw += data
        self.parser.receive_data(data)
        while True:
            event = self.parser.next_event()
            if event in (h11.NEED_DATA, h11.PAUSED):
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, b""
            elif isinstance(event, h11.Data):
                self.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert self.request is not None
                self.server._saw(Seen(self.number, self.request, self.body))
                reply = self.server.answer(self.number, self.count, self.request, self.body)
                self.count += 1
                if reply == CLOSE:
                    self.transport.close()
                    return
                if reply != HANG:
                    self.transport.write(reply)
                # h11 waits for us to answer through it: start afresh for the next request.
                rest = self.parser.trailing_data[0]
                self.parser = h11.Connection(h11.SERVER)
                if rest:  # (h11 takes b"" for the end of the stream)
                    self.parser.receive_data(bytes(rest))

    def connection_lost(self, reason: ns.Failure) -> None:
        self.gone.callback(None)


def framing(raw: bytes) -> list[tuple[str, str]]:
    """The Content-Length and Transfer-Encoding fields in ``raw`` (every request sent, as
    sent, and h11 cannot tell: it takes both): (lowercased name, value) pairs."""
    found = re.findall(rb"(?im)^(content-length|transfer-encoding):[ \t]*(.*?)\r$", bytes(raw))
    return [(name.decode().lower(), value.decode()) for name, value in found]


def redirect(location: bytes, status: int = 302) -> bytes:
    return b"HTTP/1.1 %d Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location)


@pytest.fixture
def http_client() -> HTTPClient:
    return HTTPClient()


# --- URLs --------------------------------------------------------------------------------


def test_url_default_ports() -> None:
    assert URL.parse("http://example.org").port == 80
    assert URL.parse("https://example.org").port == 443


def test_url_target_keeps_query_and_drops_fragment() -> None:
    assert URL.parse("http://h/a/b?x=1&y=%20#frag").target == "/a/b?x=1&y=%20"


def test_url_empty_path_is_slash() -> None:
    assert URL.parse("http://h?q").target == "/?q"


def test_url_unsafe_characters_are_percent_encoded() -> None:
    assert URL.parse("http://h/a b/é?q=ü v").target == "/a%20b/%C3%A9?q=%C3%BC%20v"


def test_url_authority_shows_only_a_non_default_port() -> None:
    assert URL.parse("http://h:80/").authority == "h"
    assert URL.parse("http://h:8080/").authority == "h:8080"


def test_url_ipv6_host() -> None:
    url = URL.parse("http://[::1]:8080/x")
    assert (url.host, url.authority, str(url)) == ("::1", "[::1]:8080", "http://[::1]:8080/x")


def test_url_international_host_name_is_idna() -> None:
    assert URL.parse("http://bücher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "bad", ["ftp://h/", "h/path", "http:///path", "http://h:99999/", "http://h:x/", "mailto:a@b"]
)
def test_invalid_urls_are_refused_at_once(bad: str) -> None:
    with pytest.raises(InvalidURL):
        HTTPClient().get(bad)


def test_body_and_json_together_are_refused(http_client: HTTPClient) -> None:
    with pytest.raises(ValueError):
        http_client.post("http://h/", body=b"x", json={})


# --- what goes on the wire -----------------------------------------------------------------


async def test_default_request_headers(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    await http_client.get(server.url("/p?q=1"))
    (seen,) = server.seen
    assert (seen.method, seen.target) == ("GET", "/p?q=1")
    assert seen.headers["host"] == f"127.0.0.1:{server.listener.port}"
    assert seen.headers["user-agent"].startswith("netshell/")
    assert "content-length" not in seen.headers and "transfer-encoding" not in seen.headers


async def test_own_headers_override_defaults(reactor: ns.Reactor) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    custom = HTTPClient(headers={"User-Agent": "probe/1"})
    await custom.get(server.url(), headers=[("X-Trace", "7"), ("Accept", "text/plain")])
    headers = server.seen[0].headers
    assert (headers["user-agent"], headers["x-trace"], headers["accept"]) == (
        "probe/1",
        "7",
        "text/plain",
    )


async def test_post_bytes_sends_content_length(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    await http_client.post(server.url(), body=b"payload")
    seen = server.seen[0]
    assert (seen.headers["content-length"], seen.body) == ("7", b"payload")


async def test_post_without_body_sends_zero_length(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    await http_client.post(server.url())
    assert server.seen[0].headers["content-length"] == "0"


async def test_generator_body_is_sent_chunked(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok(body))

    def pieces() -> Any:
        yield b"one,"
        yield b""  # an empty piece must not end the body early
        yield b"two"

    response = await http_client.put(server.url(), body=pieces())
    assert server.seen[0].headers["transfer-encoding"] == "chunked"
    assert response.body == b"one,two"


async def test_caller_framing_headers_give_way_to_a_bytes_body(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    # The client frames the body itself: a Transfer-Encoding (or a wrong Content-Length)
    # from the caller must not go out next to the real length (RFC 9112 section 6.2).
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    await http_client.post(
        server.url(), body=b"abc", headers={"Transfer-Encoding": "chunked"}, timeout=5
    )
    await http_client.post(server.url(), body=b"abc", headers=[("content-length", "10")])
    assert [s.body for s in server.seen] == [b"abc", b"abc"]
    assert framing(server.raw) == [("content-length", "3")] * 2


async def test_bodyless_request_sends_no_framing_header_of_the_caller(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    headers = {"Transfer-Encoding": "chunked", "Content-Length": "5"}
    await http_client.get(server.url(), headers=headers, timeout=5)
    assert framing(server.raw) == []


async def test_streamed_body_with_a_content_length_is_sent_unchunked(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok(body))
    response = await http_client.post(
        server.url(), body=iter([b"a", b"", b"bc"]), headers={"Content-Length": "3"}
    )
    assert response.body == b"abc"
    assert framing(server.raw) == [("content-length", "3")]
    assert bytes(server.raw).endswith(b"\r\n\r\nabc")  # as it is, not in chunks


@pytest.mark.parametrize(
    ("pieces", "message"), [([b"ab", b"cd"], "more than"), ([b"ab"], "only 2")]
)
async def test_streamed_body_not_matching_its_content_length_fails(
    reactor: ns.Reactor, http_client: HTTPClient, pieces: list[bytes], message: str
) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    with pytest.raises(HTTPClientError, match=f"{message}.*Content-Length of 3"):
        await http_client.post(
            server.url(), body=iter(pieces), headers={"Content-Length": "3"}, timeout=5
        )
    await server.closed[0]  # the request cut short was dropped with its connection
    assert server.seen == [] and http_client.idle_connections == []


@pytest.mark.parametrize("bad", ["x", "-1", "1, 1", " "])
def test_streamed_body_with_a_bad_content_length_is_refused_at_once(bad: str) -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        HTTPClient().post("http://h/", body=iter([b"x"]), headers={"Content-Length": bad})


async def test_json_body(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok(body, "Content-Type: x/json"))
    response = await http_client.post(server.url(), json={"k": [1, "v"]})
    assert server.seen[0].headers["content-type"] == "application/json"
    assert response.json() == {"k": [1, "v"]}


async def test_str_body_is_utf8(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    server = ScriptedServer(reactor, lambda c, n, req, body: ok())
    await http_client.post(server.url(), body="é")
    assert server.seen[0].body == "é".encode()


async def test_text_uses_the_charset_of_the_response(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    body = "é".encode("latin-1")
    server = ScriptedServer(
        reactor, lambda c, n, r, b: ok(body, "Content-Type: text/plain; charset=iso-8859-1")
    )
    assert (await http_client.get(server.url())).text() == "é"


# --- responses ------------------------------------------------------------------------------


async def test_interim_100_continue_is_skipped(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: b"HTTP/1.1 100 Continue\r\n\r\n" + ok())
    response = await http_client.get(server.url())
    assert (response.status, response.body) == (200, b"ok")


async def test_body_delimited_by_close(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    def answer(c: int, n: int, r: h11.Request, b: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\n\r\nuntil the end"

    server = ScriptedServer(reactor, answer)
    # The script never closes on its own: closing is what ends this body.
    requested = server.next_request()
    d = http_client.get(server.url())
    await requested
    server.listener.connections[0].close()
    response = await d
    assert response.body == b"until the end" and http_client.idle_connections == []


async def test_malformed_response_is_remote_protocol_error(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        await http_client.get(server.url())
    assert "malformed header" in str(info.value)


async def test_response_with_both_lengths_is_refused(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    server = ScriptedServer(reactor, lambda c, n, r, b: reply)
    with pytest.raises(RemoteProtocolError):
        await http_client.get(server.url())


async def test_server_closing_mid_body_is_server_disconnected(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    def answer(c: int, n: int, r: h11.Request, b: bytes) -> Any:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part"

    server = ScriptedServer(reactor, answer)
    requested = server.next_request()
    d = http_client.get(server.url())
    await requested
    server.listener.connections[0].close()
    with pytest.raises(ServerDisconnected):
        await d


async def test_bytes_after_a_response_keep_its_connection_from_reuse(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    # What follows a complete response is no response to anything: the next request on
    # that connection would read it as the start of its own.
    server = ScriptedServer(reactor, lambda c, n, r, b: ok() + b"EXTRAJUNK")
    first = await http_client.get(server.url("/1"))
    second = await http_client.get(server.url("/2"))
    assert (first.body, second.body) == (b"ok", b"ok")
    assert [s.connection for s in server.seen] == [1, 2]
    await server.closed[0]


async def test_a_stray_crlf_after_a_response_does_not_spoil_its_connection(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok() + b"\r\n")
    for _ in range(3):
        assert (await http_client.get(server.url())).body == b"ok"
    assert [s.connection for s in server.seen] == [1, 1, 1]
    assert len(http_client.idle_connections) == 1


async def test_body_larger_than_max_body_is_refused(reactor: ns.Reactor) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok(b"x" * 5000))
    small = HTTPClient(max_body=1000)
    with pytest.raises(HTTPClientError, match="larger than 1000 bytes"):
        await small.get(server.url())


# --- the pool --------------------------------------------------------------------------------


async def test_connection_is_reused(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok())
    for _ in range(3):
        await http_client.get(server.url())
    assert [s.connection for s in server.seen] == [1, 1, 1]


async def test_connection_close_response_is_not_reused(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok(b"ok", "Connection: close"))
    await http_client.get(server.url())
    await http_client.get(server.url())
    assert [s.connection for s in server.seen] == [1, 2]


async def test_requests_wait_for_the_only_connection(reactor: ns.Reactor) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok(r.target))
    single = HTTPClient(max_connections=1)
    responses = await ns.gather(*[single.get(server.url(f"/{i}")) for i in range(4)])
    assert [r.body for r in responses] == [b"/0", b"/1", b"/2", b"/3"]
    assert {s.connection for s in server.seen} == {1}


async def test_cancelled_requests_give_their_places_back(reactor: ns.Reactor) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: HANG if r.target == b"/hang" else ok())
    single = HTTPClient(max_connections=1)
    requested = server.next_request()
    hanging = single.get(server.url("/hang"))
    await requested
    waiting = single.get(server.url("/waits"))  # no connection may be opened for it
    waiting.cancel()
    hanging.cancel()
    for d in (waiting, hanging):
        with pytest.raises(ns.CancelledError):
            await d
    response = await single.get(server.url("/after"))
    assert response.status == 200
    assert [s.target for s in server.seen] == ["/hang", "/after"]


async def test_idle_connection_closed_by_server_is_dropped(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok())
    await http_client.get(server.url())
    (conn,) = http_client.idle_connections
    server.listener.connections[0].close()
    await conn.closed
    assert http_client.idle_connections == []


async def test_stale_connection_is_retried_once_for_get(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    # The second request on the first connection meets a server that has just given up
    # on it (closed without a byte of answer): the client tries again on a new one.
    server = ScriptedServer(reactor, lambda c, n, r, b: CLOSE if (c, n) == (1, 1) else ok())
    await http_client.get(server.url())
    response = await http_client.get(server.url("/again"))
    assert response.status == 200
    assert [(s.connection, s.target) for s in server.seen] == [
        (1, "/"),
        (1, "/again"),
        (2, "/again"),
    ]


async def test_stale_connection_is_not_retried_for_post(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: CLOSE if (c, n) == (1, 1) else ok())
    await http_client.get(server.url())
    with pytest.raises(ServerDisconnected):
        await http_client.post(server.url("/once"), body=b"x")
    assert [s.target for s in server.seen] == ["/", "/once"]


async def test_fresh_connection_failing_is_not_retried(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: CLOSE)
    with pytest.raises(ServerDisconnected):
        await http_client.get(server.url())
    assert len(server.seen) == 1


async def test_close_ends_idle_connections(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok())
    await http_client.get(server.url())
    http_client.close()
    await server.closed[0]
    assert http_client.idle_connections == []


async def test_streamed_body_cannot_follow_a_307(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    reply = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /other\r\nContent-Length: 0\r\n\r\n"
    server = ScriptedServer(reactor, lambda c, n, r, b: reply)
    with pytest.raises(HTTPClientError, match="cannot be sent again"):
        await http_client.put(server.url(), body=iter([b"a", b"b"]))


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "target"),
    [
        (b"/h\xc3\xa9?q=\xc3\xbc v", "/h%C3%A9?q=%C3%BC%20v"),  # raw UTF-8, as most servers send
        (b"/caf\xe9", "/caf%E9"),  # raw bytes that are not UTF-8: encoded as they are
        (b"/d%C3%A9j%C3%A0", "/d%C3%A9j%C3%A0"),  # encoded already: left alone
    ],
)
async def test_raw_non_ascii_location_is_percent_encoded_once(
    reactor: ns.Reactor, http_client: HTTPClient, location: bytes, target: str
) -> None:
    server = ScriptedServer(
        reactor, lambda c, n, r, b: redirect(location) if r.target == b"/" else ok(r.target)
    )
    response = await http_client.get(server.url())
    assert [s.target for s in server.seen] == ["/", target]
    assert (response.url, response.body) == (server.url(target), target.encode())


async def test_raw_utf8_location_with_a_whole_url(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    def answer(c: int, n: int, r: h11.Request, b: bytes) -> bytes:
        if r.target == b"/":
            return redirect(server.url("/\u00e9t\u00e9").encode("utf-8"), 301)
        return ok()

    server = ScriptedServer(reactor, answer)
    await http_client.get(server.url())
    assert [s.target for s in server.seen] == ["/", "/%C3%A9t%C3%A9"]


@pytest.mark.parametrize("location", [b"http://[::1", b"http://[::1/x", b"//[nope/"])
async def test_unparsable_location_is_remote_protocol_error(
    reactor: ns.Reactor, http_client: HTTPClient, location: bytes
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: redirect(location))
    with pytest.raises(RemoteProtocolError) as info:
        await http_client.get(server.url())
    assert repr(location.decode()) in str(info.value)
    assert len(server.seen) == 1


@pytest.mark.parametrize("location", [b"", b"  "])
async def test_empty_location_is_the_final_response(
    reactor: ns.Reactor, http_client: HTTPClient, location: bytes
) -> None:
    # nginx sends "Location:" with nothing for a bare "return 302;": there is nowhere to
    # go, and going to the same URL again would only loop.
    server = ScriptedServer(reactor, lambda c, n, r, b: redirect(location))
    response = await http_client.get(server.url())
    assert (response.status, response.history, len(server.seen)) == (302, [], 1)


# --- errors from connecting and timing out -------------------------------------------------------


async def test_connection_refused_is_the_core_error(http_client: HTTPClient) -> None:
    listener = ns.reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    port = listener.port
    await listener.close()
    with pytest.raises(ns.ConnectionRefused):
        await http_client.get(f"http://127.0.0.1:{port}/")


async def test_silent_server_times_out(reactor: ns.Reactor, http_client: HTTPClient) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: HANG)
    with pytest.raises(RequestTimeout) as info:
        await http_client.get(server.url(), timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    await server.closed[0]  # the half-done connection was dropped, not pooled
    assert http_client.idle_connections == []


async def test_cancelled_request_drops_its_connection(
    reactor: ns.Reactor, http_client: HTTPClient
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: HANG)
    requested = server.next_request()
    d = http_client.get(server.url())
    await requested
    d.cancel()
    with pytest.raises(ns.CancelledError):
        await d
    await server.closed[0]


async def test_module_functions_use_one_client_per_reactor(reactor: ns.Reactor) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok())
    await client.get(server.url())
    await client.delete(server.url())
    await client.head(server.url())
    assert [s.method for s in server.seen] == ["GET", "DELETE", "HEAD"]
    assert {s.connection for s in server.seen} == {1}
    client.default_client().close()


# --- downloads ---------------------------------------------------------------------------------


async def test_download_cut_short_leaves_no_file(reactor: ns.Reactor, tmp_path: Path) -> None:
    def answer(c: int, n: int, r: h11.Request, b: bytes) -> Any:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000

    server = ScriptedServer(reactor, answer)
    requested = server.next_request()
    d = HTTPClient().download(server.url(), tmp_path / "f.bin", progress=lambda r, t: None)
    await requested
    server.listener.connections[0].close()
    with pytest.raises(ServerDisconnected):
        await d
    assert list(tmp_path.iterdir()) == []


async def test_download_stalled_times_out(reactor: ns.Reactor, tmp_path: Path) -> None:
    def answer(c: int, n: int, r: h11.Request, b: bytes) -> Any:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000

    server = ScriptedServer(reactor, answer)
    with pytest.raises(RequestTimeout, match="nothing received"):
        await HTTPClient().download(
            server.url(), tmp_path / "f.bin", progress=lambda r, t: None, timeout=0.2
        )
    assert list(tmp_path.iterdir()) == []


async def test_download_keeps_an_existing_file_until_it_succeeds(
    reactor: ns.Reactor, tmp_path: Path
) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(b"old")
    server = ScriptedServer(
        reactor, lambda c, n, r, b: b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(client.HTTPStatusError, match="500"):
        await HTTPClient().download(server.url(), target, progress=lambda r, t: None)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.txt"]


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_download_calls_a_progress_hook_and_its_finish(
    reactor: ns.Reactor, tmp_path: Path
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok(b"z" * 2048))
    seen: list[Any] = []

    class Hook:
        def __call__(self, received: int, total: int | None) -> None:
            seen.append((received, total))

        def finish(self) -> None:
            seen.append("finish")

    await HTTPClient().download(server.url("/file.bin"), tmp_path / "file.bin", progress=Hook())
    assert seen[0] == (0, 2048) and seen[-2:] == [(2048, 2048), "finish"]


async def test_progress_finish_is_called_when_the_download_fails(
    reactor: ns.Reactor, tmp_path: Path
) -> None:
    def answer(c: int, n: int, r: h11.Request, b: bytes) -> Any:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000

    server = ScriptedServer(reactor, answer)
    finished: list[bool] = []
    hook: Any = lambda r, t: None  # noqa: E731
    hook.finish = lambda: finished.append(True)
    with pytest.raises(RequestTimeout):
        await HTTPClient().download(server.url(), tmp_path / "f.bin", progress=hook, timeout=0.2)
    assert finished == [True]


async def test_the_library_alone_draws_no_bar_even_on_a_terminal(
    reactor: ns.Reactor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bar is the shell's (netshell.shell.progress); the protocol library draws nothing.
    monkeypatch.setattr(client, "make_progress", client.no_progress)
    server = ScriptedServer(reactor, lambda c, n, r, b: ok(b"z" * 2048))
    screen = TTY()
    monkeypatch.setattr("sys.stderr", screen)
    await HTTPClient().download(server.url("/file.bin"), tmp_path / "file.bin")
    assert screen.getvalue() == ""
    assert client.no_progress("http://example.org/") is None


async def test_make_progress_is_asked_for_a_display_with_the_url(
    reactor: ns.Reactor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ScriptedServer(reactor, lambda c, n, r, b: ok(b"z" * 10))
    asked: list[str] = []
    seen: list[tuple[int, int | None]] = []

    def make(url: str) -> Any:
        asked.append(url)
        return lambda received, total: seen.append((received, total))

    monkeypatch.setattr(client, "make_progress", make)
    await client.download(server.url("/file.bin"), tmp_path / "file.bin")
    assert asked == [server.url("/file.bin")] and seen[-1] == (10, 10)
    client.default_client().close()
