"""Credentials stay with their origin across redirects.

A redirect to another origin (RFC 6454: scheme, host and port) must not carry what the
caller gave for the first one: the Authorization and Cookie headers (as requests and
httpx strip Authorization, and curl drops credentials for another host unless
--location-trusted), nor the TLS context (`context=`: the authorities trusted, and a
client certificate, which authenticates like a password does). A redirect within the
origin keeps them all, which the tests check too so that "not received" means something.

Every origin here is a real server of this project (`http.serve(App)`) on loopback: two
ports of 127.0.0.1, 127.0.0.2 on the same port for another host, and HTTPS listeners;
each records the headers it received.
"""

from __future__ import annotations

import types
from typing import Any
from urllib.parse import quote

import pytest

import netshell as ns
from netshell import tls
from protocols import http
from protocols.http import App, Request, Response
from protocols.http.client import HTTPClient, ServerDisconnected

SECRET_HEADERS = {"Authorization": "Bearer s3cret", "Cookie": "session=s3cret"}


class Origin:
    """A server that records the headers of each request, and redirects on request."""

    def __init__(self, interface: str = "127.0.0.1", port: int = 0, tls_context: Any = None):
        self.seen: list[tuple[str, dict[str, str]]] = []
        app = App()

        @app.route("/{path:path}", methods=["GET", "POST"])
        def record(request: Request) -> Any:
            self.seen.append((request.path, {n.lower(): v for n, v in request.headers.items()}))
            location = request.query.get("to", [None])[0]
            if location is not None:
                status = int(request.query.get("status", ["302"])[0])
                return Response(b"", status, {"Location": location})
            return f"{request.path} reached\n"

        self.listener = http.serve(app, port=port, interface=interface, tls=tls_context)
        self.scheme = "https" if tls_context is not None else "http"
        self.base = f"{self.scheme}://{interface}:{self.listener.port}"

    def url(self, path: str, to: str | None = None, status: int = 302) -> str:
        if to is None:
            return self.base + path
        return f"{self.base}{path}?status={status}&to={quote(to, safe='')}"

    def headers_at(self, path: str) -> dict[str, str]:
        [headers] = [h for p, h in self.seen if p == path]
        return headers


@pytest.fixture
def http_client() -> Any:
    client = HTTPClient()
    yield client
    client.close()


def assert_secrets_sent(headers: dict[str, str]) -> None:
    assert headers["authorization"] == SECRET_HEADERS["Authorization"]
    assert headers["cookie"] == SECRET_HEADERS["Cookie"]


def assert_no_secrets(headers: dict[str, str]) -> None:
    assert "authorization" not in headers and "cookie" not in headers, headers
    assert "s3cret" not in repr(headers)


# ---- plain HTTP: Authorization and Cookie


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_port_drops_authorization_and_cookie(
    http_client: HTTPClient, status: int
) -> None:
    first, other = Origin(), Origin()
    headers = {**SECRET_HEADERS, "X-Trace": "kept"}
    response = await http_client.get(
        first.url("/start", to=other.url("/landing"), status=status), headers=headers
    )
    assert (response.status, response.url) == (200, other.url("/landing"))
    assert_secrets_sent(first.headers_at("/start"))
    landed = other.headers_at("/landing")
    assert_no_secrets(landed)
    assert landed["x-trace"] == "kept"  # only the credentials are dropped
    assert landed["host"] == f"127.0.0.1:{other.listener.port}"  # not the first one's Host


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_within_the_origin_keeps_authorization_and_cookie(
    http_client: HTTPClient, status: int
) -> None:
    origin = Origin()
    for location in ("/landing", origin.url("/landing")):  # relative, and absolute
        origin.seen.clear()
        response = await http_client.get(
            origin.url("/start", to=location, status=status), headers=SECRET_HEADERS
        )
        assert response.status == 200
        assert_secrets_sent(origin.headers_at("/start"))
        assert_secrets_sent(origin.headers_at("/landing"))


async def test_a_redirect_to_another_host_on_the_same_port_drops_them(
    http_client: HTTPClient,
) -> None:
    first = Origin("127.0.0.1")
    try:
        other = Origin("127.0.0.2", port=first.listener.port)
    except OSError:  # that port is taken on 127.0.0.2: any port of another host will do
        other = Origin("127.0.0.2")
    await http_client.get(first.url("/start", to=other.url("/landing")), headers=SECRET_HEADERS)
    assert_secrets_sent(first.headers_at("/start"))
    assert_no_secrets(other.headers_at("/landing"))


async def test_credentials_set_on_the_client_are_dropped_too() -> None:
    # Default headers of an HTTPClient, spelled in lower case: the same rule.
    client = HTTPClient(headers={k.lower(): v for k, v in SECRET_HEADERS.items()})
    first, other = Origin(), Origin()
    await client.get(first.url("/start", to=other.url("/landing")))
    client.close()
    assert_secrets_sent(first.headers_at("/start"))
    assert_no_secrets(other.headers_at("/landing"))


async def test_credentials_dropped_once_do_not_come_back_with_a_redirect_home(
    http_client: HTTPClient,
) -> None:
    first, other = Origin(), Origin()
    home = first.url("/home")
    await http_client.get(
        first.url("/start", to=other.url("/away", to=home)), headers=SECRET_HEADERS
    )
    assert_secrets_sent(first.headers_at("/start"))
    assert_no_secrets(other.headers_at("/away"))
    # The server at /away chose where to send the client next: it cannot have the
    # credentials sent anywhere, not even back to the origin they were given for.
    assert_no_secrets(first.headers_at("/home"))


async def test_a_post_body_follows_a_307_to_another_origin_but_not_the_credentials(
    http_client: HTTPClient,
) -> None:
    first, other = Origin(), Origin()
    response = await http_client.post(
        first.url("/start", to=other.url("/landing"), status=307),
        headers=SECRET_HEADERS,
        body=b"payload",
    )
    assert response.status == 200
    assert_no_secrets(other.headers_at("/landing"))


def causes(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def assert_not_reached(origin: Origin, path: str) -> None:
    assert [p for p, _ in origin.seen if p == path] == []  # no request got through


# ---- HTTPS: the scheme is part of the origin, and so is the TLS context


@pytest.fixture
def pki() -> Any:
    """A server certificate (for 127.0.0.1) and its CA; a client certificate and its CA."""
    cert, key, ca = tls.self_signed("127.0.0.1", "localhost")
    client_cert, client_key, client_ca = tls.self_signed("client.example")
    return types.SimpleNamespace(
        cert=cert, key=key, ca=ca, client_cert=(client_cert, client_key), client_ca=client_ca
    )


def trusting_defaults(client: HTTPClient, ca: bytes) -> list[str]:
    """Make ``client``'s own default contexts (the system's trust store) trust ``ca`` too,
    as if the test CA were installed system-wide; returns the hosts they were made for."""
    asked: list[str] = []

    def context_for(host: str) -> Any:
        asked.append(host)
        return tls.client_context(host, ca=ca)

    client._context_for = context_for  # type: ignore[method-assign]
    return asked


def contexts_used(client: HTTPClient) -> dict[int, Any]:
    """The TLS context each kept-alive connection was made with, by port."""
    return {conn.key[2]: conn.key[3] for conn in client.idle_connections}


async def test_a_redirect_to_another_https_origin_does_not_use_the_caller_s_context(
    http_client: HTTPClient, pki: Any
) -> None:
    server = tls.server_context(pki.cert, pki.key)
    first, other = Origin(tls_context=server), Origin(tls_context=server)
    mine = tls.client_context("127.0.0.1", ca=pki.ca)
    asked = trusting_defaults(http_client, pki.ca)

    # Within the origin the caller's context does it all: the default is never made.
    await http_client.get(first.url("/start", to="/landing"), context=mine)
    assert asked == [] and contexts_used(http_client) == {first.listener.port: mine}

    # To another origin (same host, another port) the client's default context is used.
    response = await http_client.get(first.url("/start", to=other.url("/landing")), context=mine)
    assert response.status == 200
    assert asked == ["127.0.0.1"]
    used = contexts_used(http_client)
    assert used[first.listener.port] is mine
    assert used[other.listener.port] is not mine


async def test_a_client_certificate_is_not_presented_to_another_origin(
    http_client: HTTPClient, pki: Any
) -> None:
    first = Origin(tls_context=tls.server_context(pki.cert, pki.key))
    # The other origin requires a client certificate from the client CA.
    other = Origin(tls_context=tls.server_context(pki.cert, pki.key, client_ca=pki.client_ca))
    mine = tls.client_context("127.0.0.1", ca=pki.ca, client_cert=pki.client_cert)
    trusting_defaults(http_client, pki.ca)
    # The certificate opens the other origin when the caller goes there with it...
    direct = await http_client.get(other.url("/direct"), context=mine)
    assert direct.status == 200
    # ...but a redirect there from the first origin does not take it along. (With TLS 1.3
    # the server's refusal comes after the client's side of the handshake: the client then
    # sees the connection closed, and the TLS error as its cause.)
    with pytest.raises((ns.TLSError, ServerDisconnected)) as failed:
        await http_client.get(first.url("/start", to=other.url("/landing")), context=mine)
    assert any(isinstance(e, ns.ClientCertificateRequired) for e in causes(failed.value))
    assert_not_reached(other, "/landing")


async def test_the_caller_s_trusted_authorities_do_not_extend_to_another_origin(
    http_client: HTTPClient, pki: Any
) -> None:
    # Without a stand-in default, the other origin is verified against the system's trust
    # store, which does not know the test CA: the redirect fails before any request.
    server = tls.server_context(pki.cert, pki.key)
    first, other = Origin(tls_context=server), Origin(tls_context=server)
    mine = tls.client_context("127.0.0.1", ca=pki.ca)
    assert (await http_client.get(other.url("/direct"), context=mine)).status == 200
    with pytest.raises(ns.UnknownCA):
        await http_client.get(first.url("/start", to=other.url("/landing")), context=mine)
    assert_not_reached(other, "/landing")


async def test_a_redirect_from_http_to_https_drops_the_credentials(
    http_client: HTTPClient, pki: Any
) -> None:
    first = Origin()
    secure = Origin(tls_context=tls.server_context(pki.cert, pki.key))
    trusting_defaults(http_client, pki.ca)
    response = await http_client.get(
        first.url("/start", to=secure.url("/landing")), headers=SECRET_HEADERS
    )
    assert response.status == 200
    assert_secrets_sent(first.headers_at("/start"))
    assert_no_secrets(secure.headers_at("/landing"))


async def test_a_redirect_from_https_to_http_on_the_same_host_drops_the_credentials(
    http_client: HTTPClient, pki: Any
) -> None:
    secure = Origin(tls_context=tls.server_context(pki.cert, pki.key))
    plain = Origin()
    mine = tls.client_context("127.0.0.1", ca=pki.ca)
    await http_client.get(
        secure.url("/start", to=plain.url("/landing")), headers=SECRET_HEADERS, context=mine
    )
    assert_secrets_sent(secure.headers_at("/start"))
    assert_no_secrets(plain.headers_at("/landing"))


async def test_an_https_redirect_within_the_origin_keeps_context_and_credentials(
    http_client: HTTPClient, pki: Any
) -> None:
    first = Origin(tls_context=tls.server_context(pki.cert, pki.key, client_ca=pki.client_ca))
    mine = tls.client_context("127.0.0.1", ca=pki.ca, client_cert=pki.client_cert)
    response = await http_client.get(
        first.url("/start", to="/landing"), headers=SECRET_HEADERS, context=mine
    )
    assert response.status == 200
    assert_secrets_sent(first.headers_at("/landing"))
