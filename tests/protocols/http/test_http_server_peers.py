"""Real clients against the HTTP server: curl, Python's urllib, httpx and h11.

curl runs as an asyncio subprocess (tests/peers.py: missing under CI=true fails, never
skips); urllib and httpx's blocking client run in threads (ns.defer_to_thread); httpx's
async client and h11 (driving a raw connection) run on the reactor's loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
from peers import run_peer

import netshell as ns
from netshell import tls
from protocols import http
from protocols.http import App, Request, Response

UPLOAD = 3 * 1024 * 1024 + 11


def make_app(seen_ports: list[int] | None = None) -> App:
    app = App()

    @app.route("/")
    def index(request: Request) -> str:
        if seen_ports is not None:
            seen_ports.append(request.client.port)
        return "hello from netshell\n"

    @app.route("/items/{id}")
    def item(request: Request) -> dict[str, Any]:
        if seen_ports is not None:
            seen_ports.append(request.client.port)
        return {"id": request.params["id"], "q": request.query}

    @app.route("/upload", methods=["POST", "PUT"])
    def upload(request: Request) -> dict[str, Any]:
        return {
            "size": len(request.body),
            "sha256": hashlib.sha256(request.body).hexdigest(),
            "type": request.headers.get("content-type"),
        }

    @app.route("/stream")
    def stream(request: Request) -> Response:
        return Response((f"line {i}\n".encode() for i in range(1000)), headers={"X-S": "1"})

    @app.route("/json", methods=["POST"])
    def echo_json(request: Request) -> Any:
        return {"got": request.json()}

    @app.route("/fail")
    def fail(request: Request) -> None:
        raise RuntimeError("internal detail")

    return app


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    (tmp_path / "secret.txt").write_bytes(b"top secret")
    return root


async def curl(*args: str, stdin: bytes = b"") -> tuple[bytes, str]:
    code, out, err = await run_peer(["curl", "-sS", *args], stdin=stdin)
    assert code == 0, err.decode(errors="replace")
    return out, err.decode(errors="replace")


# ---- curl


async def test_curl_reuses_the_connection_for_two_urls() -> None:
    ports: list[int] = []
    listener = http.serve(make_app(ports))
    base = f"http://127.0.0.1:{listener.port}"
    out, err = await curl("-v", f"{base}/", f"{base}/items/3")
    assert out == b'hello from netshell\n{"id": "3", "q": {}}'
    assert "Re-using existing connection" in err
    assert len(ports) == 2 and ports[0] == ports[1]  # one client port: one connection


async def test_curl_head_gets_headers_only() -> None:
    listener = http.serve(make_app())
    out, _ = await curl("-I", f"http://127.0.0.1:{listener.port}/")
    head = out.decode()
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Length: 20\r\n" in head
    assert head.endswith("\r\n\r\n")


async def test_curl_range_gets_206_and_the_bytes(site: Path) -> None:
    listener = http.serve(site)
    out, _ = await curl(
        "-r", "7-11", "-w", " %{http_code}", f"http://127.0.0.1:{listener.port}/hello.txt"
    )
    assert out == b"world 206"


async def test_curl_chunked_upload(tmp_path: Path) -> None:
    data = os.urandom(UPLOAD)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    listener = http.serve(make_app())
    out, err = await curl(
        "-v",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/x-test",
        "--data-binary",
        f"@{path}",
        f"http://127.0.0.1:{listener.port}/upload",
    )
    assert "Transfer-Encoding: chunked" in err  # curl said so in its request
    assert json.loads(out) == {
        "size": UPLOAD,
        "sha256": hashlib.sha256(data).hexdigest(),
        "type": "application/x-test",
    }


async def test_curl_large_upload_with_expect_100_continue(tmp_path: Path) -> None:
    data = os.urandom(UPLOAD)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    listener = http.serve(make_app())
    out, err = await curl(
        "-v",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        f"@{path}",
        f"http://127.0.0.1:{listener.port}/upload",
    )
    assert "HTTP/1.1 100 Continue" in err
    assert json.loads(out)["sha256"] == hashlib.sha256(data).hexdigest()


async def test_curl_downloads_a_large_file_whole(site: Path, tmp_path: Path) -> None:
    listener = http.serve(site)
    target = tmp_path / "download.bin"
    await curl("-o", str(target), f"http://127.0.0.1:{listener.port}/big.bin")
    assert target.read_bytes() == (site / "big.bin").read_bytes()


async def test_curl_path_as_is_cannot_leave_the_root(site: Path) -> None:
    listener = http.serve(site)
    out, _ = await curl(
        "--path-as-is", "-w", "%{http_code}", f"http://127.0.0.1:{listener.port}/../secret.txt"
    )
    assert out.endswith(b"404")
    assert b"secret" not in out


async def test_curl_streamed_response(site: Path) -> None:
    listener = http.serve(make_app())
    out, err = await curl("-v", f"http://127.0.0.1:{listener.port}/stream")
    assert "Transfer-Encoding: chunked" in err
    assert out == b"".join(f"line {i}\n".encode() for i in range(1000))


async def test_curl_over_https(tmp_path: Path) -> None:
    cert, key, ca = tls.self_signed_files(tmp_path / "certs", "localhost")
    listener = http.serve(make_app(), tls=tls.server_context(cert, key))
    out, _ = await curl("--cacert", str(ca), f"https://localhost:{listener.port}/items/7?x=y")
    assert json.loads(out) == {"id": "7", "q": {"x": ["y"]}}


async def test_curl_http_1_0(site: Path) -> None:
    listener = http.serve(site)
    out, err = await curl("-v", "--http1.0", f"http://127.0.0.1:{listener.port}/hello.txt")
    assert out == b"hello, world\n"
    assert "HTTP/1.1 200 OK" in err


# ---- urllib


async def test_urllib_get() -> None:
    listener = http.serve(make_app())

    def fetch() -> tuple[int, bytes, str]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{listener.port}/items/5?a=b", timeout=10
        ) as r:
            return r.status, r.read(), r.headers["Content-Type"]

    status, body, kind = await ns.defer_to_thread(fetch)
    assert (status, json.loads(body), kind) == (
        200,
        {"id": "5", "q": {"a": ["b"]}},
        "application/json",
    )


async def test_urllib_post() -> None:
    listener = http.serve(make_app())
    data = os.urandom(100_000)

    def post() -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{listener.port}/upload", data=data, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    result = await ns.defer_to_thread(post)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()


async def test_urllib_sees_404_and_500_as_errors_with_their_status() -> None:
    listener = http.serve(make_app())

    def status_of(path: str) -> tuple[int, bytes]:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{listener.port}{path}", timeout=10)
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        raise AssertionError("no error")

    assert await ns.defer_to_thread(status_of, "/nope") == (404, b"404 Not Found\n")
    assert await ns.defer_to_thread(status_of, "/fail") == (500, b"500 Internal Server Error\n")


async def test_urllib_head(site: Path) -> None:
    listener = http.serve(site)

    def head() -> tuple[int, str, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{listener.port}/big.bin", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers["Content-Length"], r.read()

    assert await ns.defer_to_thread(head) == (200, str(5 * 1024 * 1024), b"")


# ---- httpx


async def test_httpx_sync_client_keeps_one_connection_for_many_requests() -> None:
    ports: list[int] = []
    listener = http.serve(make_app(ports))

    def many() -> list[int]:
        with httpx.Client(base_url=f"http://127.0.0.1:{listener.port}") as client:
            return [client.get(f"/items/{i}").status_code for i in range(20)]

    assert await ns.defer_to_thread(many) == [200] * 20
    assert len(set(ports)) == 1


async def test_httpx_async_client_on_the_reactor_loop() -> None:
    listener = http.serve(make_app())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.port}") as client:
        answers = await asyncio.gather(*(client.get(f"/items/{i}") for i in range(10)))
        posted = await client.post("/json", json={"a": [1, 2]})
    assert [r.json()["id"] for r in answers] == [str(i) for i in range(10)]
    assert posted.json() == {"got": {"a": [1, 2]}}


async def test_httpx_streams_a_chunked_response() -> None:
    listener = http.serve(make_app())
    url = f"http://127.0.0.1:{listener.port}/stream"
    async with httpx.AsyncClient() as client, client.stream("GET", url) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        body = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert body.count(b"\n") == 1000


async def test_httpx_uploads_a_generator_chunked() -> None:
    listener = http.serve(make_app())
    pieces = [os.urandom(10_000) for _ in range(50)]

    def upload() -> Any:
        with httpx.Client() as client:
            r = client.post(f"http://127.0.0.1:{listener.port}/upload", content=iter(pieces))
            return r.json()

    result = await ns.defer_to_thread(upload)
    assert result["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


async def test_httpx_over_https_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key, ca = tls.self_signed_files(tmp_path / "certs", "localhost")
    listener = http.serve(make_app(), tls=tls.server_context(cert, key))
    context = ssl.create_default_context(cafile=str(ca))
    async with httpx.AsyncClient(verify=context) as client:
        r = await client.get(f"https://localhost:{listener.port}/")
    assert r.text == "hello from netshell\n"


async def test_httpx_range_and_etag_on_static_files(site: Path) -> None:
    listener = http.serve(site)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.port}") as client:
        first = await client.get("/hello.txt")
        cached = await client.get("/hello.txt", headers={"If-None-Match": first.headers["etag"]})
        part = await client.get("/big.bin", headers={"Range": "bytes=-1000"})
    assert (cached.status_code, cached.content) == (304, b"")
    assert (part.status_code, part.content) == (206, (site / "big.bin").read_bytes()[-1000:])


# ---- h11 driving a raw connection


class H11Client:
    """An h11 client connection over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conn = h11.Connection(our_role=h11.CLIENT)
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> H11Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, *events: Any) -> None:
        for event in events:
            data = self.conn.send(event)
            if data:
                self.writer.write(data)

    async def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await asyncio.wait_for(self.reader.read(65536), 10))
                continue
            return event

    async def response(self) -> tuple[Any, bytes]:
        head = await self.next_event()
        while isinstance(head, h11.InformationalResponse):
            head = await self.next_event()
        body = b""
        while not isinstance(event := await self.next_event(), h11.EndOfMessage):
            body += event.data
        return head, body


async def test_h11_keep_alive_cycles() -> None:
    listener = http.serve(make_app())
    client = await H11Client.connect(listener.port)
    for i in range(3):
        client.send(h11.Request(method="GET", target=f"/items/{i}", headers=[("Host", "t")]))
        client.send(h11.EndOfMessage())
        head, body = await client.response()
        assert head.status_code == 200
        assert json.loads(body)["id"] == str(i)
        assert client.conn.our_state is h11.DONE and client.conn.their_state is h11.DONE
        client.conn.start_next_cycle()
    client.writer.close()


async def test_h11_parses_a_chunked_response() -> None:
    listener = http.serve(make_app())
    client = await H11Client.connect(listener.port)
    client.send(h11.Request(method="GET", target="/stream", headers=[("Host", "t")]))
    client.send(h11.EndOfMessage())
    head, body = await client.response()
    assert (b"transfer-encoding", b"chunked") in head.headers
    assert body.count(b"line") == 1000
    client.writer.close()


async def test_h11_expect_100_continue() -> None:
    listener = http.serve(make_app())
    client = await H11Client.connect(listener.port)
    client.send(
        h11.Request(
            method="POST",
            target="/upload",
            headers=[("Host", "t"), ("Content-Length", "5"), ("Expect", "100-continue")],
        )
    )
    interim = await client.next_event()
    assert isinstance(interim, h11.InformationalResponse) and interim.status_code == 100
    client.send(h11.Data(data=b"12345"), h11.EndOfMessage())
    _, body = await client.response()
    assert json.loads(body)["size"] == 5
    client.writer.close()


async def test_h11_chunked_request_body() -> None:
    listener = http.serve(make_app())
    client = await H11Client.connect(listener.port)
    client.send(
        h11.Request(
            method="PUT",
            target="/upload",
            headers=[("Host", "t"), ("Transfer-Encoding", "chunked")],
        ),
        h11.Data(data=b"abc"),
        h11.Data(data=b"defg"),
        h11.EndOfMessage(),
    )
    _, body = await client.response()
    assert json.loads(body)["sha256"] == hashlib.sha256(b"abcdefg").hexdigest()
    client.writer.close()


async def test_h11_sees_the_close_after_connection_close() -> None:
    listener = http.serve(make_app())
    client = await H11Client.connect(listener.port)
    client.send(
        h11.Request(method="GET", target="/", headers=[("Host", "t"), ("Connection", "close")])
    )
    client.send(h11.EndOfMessage())
    head, body = await client.response()
    assert body == b"hello from netshell\n"
    assert (b"connection", b"close") in head.headers
    assert isinstance(await client.next_event(), h11.ConnectionClosed)
    client.writer.close()
