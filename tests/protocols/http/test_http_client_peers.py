"""The HTTP client against real servers nobody here wrote: nginx, ``python -m http.server``
(HTTP/1.0 only) and ``openssl s_server -WWW``.

nginx runs per test on a temp config (``daemon off``, everything under the test's temp
directory) with locations made for the tests: ``/conn`` answers nginx's own connection
number (``$connection``), so reuse of a kept-alive connection is seen from the server's
side; ``/r/...`` are redirect chains; ``/chunked/`` passes static files through
``sub_filter``, which makes nginx send them chunked; ``/dav/`` takes PUT uploads that a
GET reads back. Under CI a missing peer fails the test, elsewhere it skips it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import connect_when_ready, free_port, require, start_peer

import netshell as ns
from netshell import tls
from protocols.http import client
from protocols.http.client import (
    HTTPClient,
    HTTPStatusError,
    TooManyRedirects,
)

MiB = 1024 * 1024

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{ text/plain txt; application/octet-stream bin; application/json json; }}
    keepalive_timeout 60s;
    keepalive_requests 1000;
    client_max_body_size 64m;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {dir}/www;
        location = /conn {{ return 200 "$connection"; }}
        location = /short {{ keepalive_timeout 1s; return 200 "$connection"; }}
        location = /r/1 {{ return 301 /r/2; }}
        location = /r/2 {{ return 302 /r/3; }}
        location = /r/3 {{ return 303 /conn; }}
        location = /r/307 {{ return 307 /dav/replayed.txt; }}
        location = /r/308 {{ return 308 /dav/replayed.txt; }}
        location = /r/other-host {{ return 302 http://localhost:{port}/conn; }}
        location = /loop {{ return 302 /loop; }}
        location /chunked/ {{
            alias {dir}/www/;
            sub_filter "hello" "HELLO";
            sub_filter_once off;
            sub_filter_types *;
        }}
        location /dav/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    dir: Path
    port: int
    tls_port: int
    ca: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def tls_url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.tls_port}{path}"


async def wait_for_port(port: int) -> None:
    protocol = await connect_when_ready(
        "127.0.0.1", port, ns.ClientFactory.for_protocol(ns.Protocol)
    )
    protocol.transport.close()


@asynccontextmanager
async def nginx(tmp_path: Path) -> AsyncIterator[Nginx]:
    require("nginx")
    base = tmp_path / "nginx"
    for sub in ("www", "tmp", "certs"):
        (base / sub).mkdir(parents=True)
    cert, key, ca = tls.self_signed_files(base / "certs", "localhost")
    port, tls_port = free_port(), free_port()
    conf = base / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=base, port=port, tls_port=tls_port, cert=cert, key=key))
    # "start worker process" is logged once the listening sockets are bound.
    argv = ["nginx", "-c", str(conf), "-p", str(base), "-e", "stderr"]
    async with await start_peer(argv, ready="start worker process"):
        await wait_for_port(port)
        yield Nginx(base, port, tls_port, ca)


@pytest.fixture
def http_client() -> HTTPClient:
    return HTTPClient()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- nginx: plain requests -------------------------------------------------------------------


async def test_get_a_static_file_from_nginx(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        (n.dir / "www" / "hello.txt").write_bytes(b"hello from nginx\n")
        response = await http_client.get(n.url("/hello.txt"))
    assert (response.status, response.reason) == (200, "OK")
    assert response.body == b"hello from nginx\n"
    assert response.headers["content-type"] == "text/plain"
    assert response.url == n.url("/hello.txt")


async def test_404_body_from_nginx(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        response = await http_client.get(n.url("/missing"))
    assert response.status == 404
    assert b"404 Not Found" in response.body and "nginx" in response.text()


async def test_head_from_nginx_has_length_but_no_body(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    async with nginx(tmp_path) as n:
        (n.dir / "www" / "f.bin").write_bytes(b"x" * 12345)
        response = await http_client.head(n.url("/f.bin"))
        # The connection is still usable: the HEAD response had no body to wait for.
        after = await http_client.get(n.url("/conn"))
    assert response.status == 200 and response.body == b""
    assert response.headers["content-length"] == "12345"
    assert after.status == 200


async def test_chunked_response_from_nginx(tmp_path: Path, http_client: HTTPClient) -> None:
    text = b"hello world, " * 5000 + b"hello end\n"
    async with nginx(tmp_path) as n:
        (n.dir / "www" / "page.txt").write_bytes(text)
        response = await http_client.get(n.url("/chunked/page.txt"))
    assert response.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.headers
    assert response.body == text.replace(b"hello", b"HELLO")


# --- nginx: keep-alive and the pool ----------------------------------------------------------


async def test_sequential_requests_reuse_one_nginx_connection(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    async with nginx(tmp_path) as n:
        numbers = [(await http_client.get(n.url("/conn"))).text() for _ in range(5)]
    # nginx's own $connection: the same number means the same TCP connection.
    assert len(set(numbers)) == 1


async def test_keep_alive_over_chunked_and_head_responses(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    async with nginx(tmp_path) as n:
        (n.dir / "www" / "page.txt").write_bytes(b"hello\n" * 1000)
        first = (await http_client.get(n.url("/conn"))).text()
        await http_client.get(n.url("/chunked/page.txt"))
        await http_client.head(n.url("/page.txt"))
        await http_client.get(n.url("/missing"))
        last = (await http_client.get(n.url("/conn"))).text()
    assert first == last


async def test_pool_bound_holds_with_many_concurrent_requests(tmp_path: Path) -> None:
    bounded = HTTPClient(max_connections=2)
    async with nginx(tmp_path) as n:
        responses = await ns.gather(*[bounded.get(n.url("/conn")) for _ in range(12)])
        idle = len(bounded.idle_connections)
        bounded.close()
    numbers = {r.text() for r in responses}
    assert all(r.status == 200 for r in responses)
    assert len(numbers) == 2 and idle == 2


async def test_idle_connection_closed_by_nginx_is_dropped(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    async with nginx(tmp_path) as n:
        first = (await http_client.get(n.url("/short"))).text()  # keepalive_timeout 1s
        (conn,) = http_client.idle_connections
        await conn.closed  # nginx closes it after a second of idleness
        assert http_client.idle_connections == []
        second = (await http_client.get(n.url("/short"))).text()
    assert first != second


# --- nginx: redirects ------------------------------------------------------------------------


async def test_redirect_chain_301_302_303(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        response = await http_client.get(n.url("/r/1"))
    assert response.status == 200 and response.url == n.url("/conn")
    assert [(r.status, r.url) for r in response.history] == [
        (301, n.url("/r/1")),
        (302, n.url("/r/2")),
        (303, n.url("/r/3")),
    ]


async def test_redirect_not_followed_when_asked(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        response = await http_client.get(n.url("/r/1"), follow_redirects=False)
    assert response.status == 301
    assert response.headers["location"] == n.url("/r/2")


async def test_redirect_loop_is_too_many_redirects(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        with pytest.raises(TooManyRedirects) as info:
            await http_client.get(n.url("/loop"), max_redirects=4)
    assert "more than 4 redirects" in str(info.value)
    assert len(info.value.response.history) == 4


async def test_redirect_to_another_host_name(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        response = await http_client.get(n.url("/r/other-host"))
    assert response.url == f"http://localhost:{n.port}/conn" and response.status == 200


@pytest.mark.parametrize("status", [307, 308])
async def test_307_and_308_resend_method_and_body(
    tmp_path: Path, http_client: HTTPClient, status: int
) -> None:
    async with nginx(tmp_path) as n:
        put = await http_client.put(n.url(f"/r/{status}"), body=b"sent twice")
        stored = (n.dir / "www" / "dav" / "replayed.txt").read_bytes()
    assert put.status in (201, 204) and put.history[0].status == status
    assert stored == b"sent twice"


async def test_303_turns_post_into_get(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        response = await http_client.post(n.url("/r/3"), body=b"form data")
    # nginx would answer a POST to /conn with 200 too; the access log shows the method.
    log = (n.dir / "access.log").read_text()
    assert response.status == 200
    assert '"GET /conn HTTP/1.1"' in log and '"POST /conn' not in log


# --- nginx: request bodies -------------------------------------------------------------------


async def test_put_with_content_length(tmp_path: Path, http_client: HTTPClient) -> None:
    data = os.urandom(200_000)
    async with nginx(tmp_path) as n:
        response = await http_client.put(n.url("/dav/upload.bin"), body=data)
        back = await http_client.get(n.url("/dav/upload.bin"))
    assert response.status == 201 and back.body == data


async def test_put_chunked_from_an_iterable(tmp_path: Path, http_client: HTTPClient) -> None:
    pieces = [os.urandom(n) for n in (1, 1000, 70_000, 5)]
    async with nginx(tmp_path) as n:
        response = await http_client.put(n.url("/dav/chunked.bin"), body=iter(pieces))
        back = await http_client.get(n.url("/dav/chunked.bin"))
    assert response.status == 201 and back.body == b"".join(pieces)


async def test_put_a_file_object_streams_it(tmp_path: Path, http_client: HTTPClient) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * MiB))
    async with nginx(tmp_path) as n:
        with source.open("rb") as f:
            response = await http_client.put(n.url("/dav/file.bin"), body=f)
        stored = (n.dir / "www" / "dav" / "file.bin").read_bytes()
    assert response.status == 201 and sha256(stored) == sha256(source.read_bytes())


async def test_put_json(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        await http_client.put(n.url("/dav/doc.json"), json={"a": [1, 2], "b": "é"})
        back = await http_client.get(n.url("/dav/doc.json"))
    assert back.json() == {"a": [1, 2], "b": "é"}


# --- nginx: downloads --------------------------------------------------------------------------


async def test_download_a_multi_megabyte_file(tmp_path: Path, http_client: HTTPClient) -> None:
    data = os.urandom(8 * MiB + 123)
    seen: list[tuple[int, int | None]] = []
    async with nginx(tmp_path) as n:
        (n.dir / "www" / "big.bin").write_bytes(data)
        path = await http_client.download(
            n.url("/big.bin"), tmp_path / "big.bin", progress=lambda r, t: seen.append((r, t))
        )
    assert path == tmp_path / "big.bin"
    assert sha256(path.read_bytes()) == sha256(data)
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert len(seen) > 2  # it came in pieces, each reported


async def test_download_of_a_chunked_response(tmp_path: Path, http_client: HTTPClient) -> None:
    data = b"hello again\n" * 100_000
    seen: list[tuple[int, int | None]] = []
    async with nginx(tmp_path) as n:
        (n.dir / "www" / "text.txt").write_bytes(data)
        path = await http_client.download(
            n.url("/chunked/text.txt"),
            tmp_path / "out.txt",
            progress=lambda r, t: seen.append((r, t)),
        )
    assert path.read_bytes() == data.replace(b"hello", b"HELLO")
    assert {total for _, total in seen} == {None}  # no length announced


async def test_download_follows_redirects(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        path = await http_client.download(
            n.url("/r/1"), tmp_path / "conn.txt", progress=lambda r, t: None
        )
    assert path.read_text().isdigit()


async def test_download_of_a_404_leaves_no_file(tmp_path: Path, http_client: HTTPClient) -> None:
    target = tmp_path / "out" / "missing.bin"
    target.parent.mkdir()
    async with nginx(tmp_path) as n:
        with pytest.raises(HTTPStatusError) as info:
            await http_client.download(n.url("/missing.bin"), target, progress=lambda r, t: None)
    assert info.value.response.status == 404
    assert list(target.parent.iterdir()) == []


async def test_module_download_uses_the_default_client(tmp_path: Path) -> None:
    async with nginx(tmp_path) as n:
        (n.dir / "www" / "small.txt").write_bytes(b"small")
        path = await client.download(
            n.url("/small.txt"), tmp_path / "small.txt", progress=lambda r, t: None
        )
        client.default_client().close()
    assert path.read_bytes() == b"small"


# --- nginx: HTTPS ----------------------------------------------------------------------------


async def test_https_with_the_right_ca_and_keep_alive(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    async with nginx(tmp_path) as n:
        context = tls.client_context("localhost", ca=n.ca)
        first = await http_client.get(n.tls_url("/conn"), context=context)
        second = await http_client.get(n.tls_url("/conn"), context=context)
    assert first.status == 200 and first.text() == second.text()


async def test_https_verification_fails_by_default_with_a_self_signed_server(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    async with nginx(tmp_path) as n:
        with pytest.raises(ns.UnknownCA):
            await http_client.get(n.tls_url("/conn"))


async def test_https_with_the_wrong_ca_is_unknown_ca(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    other_ca = tls.self_signed_files(tmp_path / "other", "localhost")[2]
    async with nginx(tmp_path) as n:
        with pytest.raises(ns.UnknownCA):
            await http_client.get(
                n.tls_url("/conn"), context=tls.client_context("localhost", ca=other_ca)
            )


async def test_https_host_name_mismatch(tmp_path: Path, http_client: HTTPClient) -> None:
    async with nginx(tmp_path) as n:
        context = tls.client_context("127.0.0.1", ca=n.ca)
        with pytest.raises(ns.HostnameMismatch):
            await http_client.get(n.tls_url("/conn", host="127.0.0.1"), context=context)


# --- python -m http.server (HTTP/1.0) ------------------------------------------------------


@asynccontextmanager
async def http_server(root: Path) -> AsyncIterator[str]:
    port = free_port()
    argv = [require("python3"), "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(root)]  # fmt: skip
    async with await start_peer(argv, ready="Serving HTTP", ready_on="stdout"):
        yield f"http://127.0.0.1:{port}"


async def test_http10_server_get_and_no_reuse(tmp_path: Path, http_client: HTTPClient) -> None:
    (tmp_path / "a.txt").write_bytes(b"from http.server")
    async with http_server(tmp_path) as base:
        first = await http_client.get(f"{base}/a.txt")
        second = await http_client.get(f"{base}/a.txt")
        idle = http_client.idle_connections
    assert first.version == (1, 0) and first.body == second.body == b"from http.server"
    assert idle == []  # HTTP/1.0 without keep-alive: every connection closes


async def test_http10_server_404(tmp_path: Path, http_client: HTTPClient) -> None:
    async with http_server(tmp_path) as base:
        response = await http_client.get(f"{base}/nope")
    assert response.status == 404 and b"File not found" in response.body


async def test_http10_server_head(tmp_path: Path, http_client: HTTPClient) -> None:
    (tmp_path / "f.bin").write_bytes(b"z" * 777)
    async with http_server(tmp_path) as base:
        response = await http_client.head(f"{base}/f.bin")
    assert response.headers["content-length"] == "777" and response.body == b""


async def test_http10_server_directory_redirect(tmp_path: Path, http_client: HTTPClient) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_bytes(b"<p>index</p>")
    async with http_server(tmp_path) as base:
        response = await http_client.get(f"{base}/sub")
    assert response.history[0].status == 301
    assert response.url == f"{base}/sub/" and response.body == b"<p>index</p>"


async def test_http10_server_download_by_hash(tmp_path: Path, http_client: HTTPClient) -> None:
    data = os.urandom(3 * MiB)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "d.bin").write_bytes(data)
    async with http_server(tmp_path / "www") as base:
        path = await http_client.download(
            f"{base}/d.bin", tmp_path / "d.bin", progress=lambda r, t: None
        )
    assert sha256(path.read_bytes()) == sha256(data)


async def test_module_get_against_http_server(tmp_path: Path) -> None:
    (tmp_path / "j.json").write_text(json.dumps({"ok": True}))
    async with http_server(tmp_path) as base:
        response = await client.get(f"{base}/j.json")
    assert response.json() == {"ok": True}


# --- openssl s_server -WWW (HTTP/1.0 over TLS, body ended by the close) ------------------------


async def test_https_against_openssl_s_server(tmp_path: Path, http_client: HTTPClient) -> None:
    cert, key, ca = tls.self_signed_files(tmp_path / "certs", "localhost")
    www = tmp_path / "www"
    www.mkdir()
    (www / "page.txt").write_bytes(b"served by openssl\n" * 100)
    port = free_port()
    require("openssl")
    command = (
        f"cd {www} && exec openssl s_server -accept 127.0.0.1:{port} -cert {cert} -key {key} -WWW"
    )
    async with await start_peer([require("sh"), "-c", command], ready="ACCEPT", ready_on="stdout"):
        response = await http_client.get(
            f"https://localhost:{port}/page.txt", context=tls.client_context("localhost", ca=ca)
        )
    assert response.status == 200
    assert response.body == b"served by openssl\n" * 100


async def test_connection_verified_with_one_context_is_not_lent_to_another(
    tmp_path: Path, http_client: HTTPClient
) -> None:
    async with nginx(tmp_path) as n:
        trusting = tls.client_context("localhost", ca=n.ca)
        assert (await http_client.get(n.tls_url("/conn"), context=trusting)).status == 200
        # The idle connection was verified against n.ca; a request that asks for the
        # system's trust store must verify afresh (and fail), not ride on it.
        with pytest.raises(ns.UnknownCA):
            await http_client.get(n.tls_url("/conn"))
