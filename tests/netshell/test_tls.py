"""TLS: listen_tls / connect_tls / start_tls, against real peers and Python's ssl module.

Peers: ``openssl s_client`` / ``s_server`` (STARTTLS too), curl, and
Python's ``ssl`` module in threads (``ns.defer_to_thread``) for what a
command-line tool cannot show (a truncated close, a clean EOF, the bytes in
clear before an upgrade). Certificates are throwaway ones from
``tls.self_signed``; the expired and not-yet-valid ones are built here with
``cryptography``.

Nothing sleeps: tests await their protocols' Deferreds, the peers' exits and
the threads' results.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from peers import connect_tls_when_ready, free_port, run_peer, start_peer

import netshell as ns
from netshell import tls, transport
from netshell.testing import PausedReader, RecordingEcho, RecordingFactory, RecordingProtocol
from netshell.tls_layer import TLSInfo
from protocols.basic import LineReceiver

KiB = 1024
MiB = 1024 * KiB
#: bytes each way through the integrity and flow-control tests
BULK_BYTES = int(os.environ.get("NETSHELL_TLS_BULK_BYTES", 100 * MiB))
# the issue asks for 200 MB through a slow reader with memory bounded
FLOW_BYTES = int(os.environ.get("NETSHELL_TLS_FLOW_BYTES", 200 * 1000 * 1000))
#: a blocking socket in a thread gives up after this long (so a bug cannot hang the run)
THREAD_TIMEOUT = 20


class Certs(NamedTuple):
    """Paths of a certificate (for localhost), its key and the CA that signed it."""

    cert: Path
    key: Path
    ca: Path


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(*tls.self_signed_files(tmp_path / "server", "localhost"))


@pytest.fixture
def client_certs(tmp_path: Path) -> Certs:
    return Certs(*tls.self_signed_files(tmp_path / "client", "client.test"))


def server_ctx(certs: Certs, **kw: Any) -> tls.TLSContext:
    return tls.server_context(certs.cert, certs.key, **kw)


def client_ctx(certs: Certs, hostname: str = "localhost", **kw: Any) -> tls.TLSContext:
    return tls.client_context(hostname, ca=certs.ca, **kw)


async def tls_pair(
    reactor: ns.Reactor,
    certs: Certs,
    server: Any = RecordingEcho,
    client: Any = RecordingProtocol,
    server_context: tls.TLSContext | None = None,
    client_context: tls.TLSContext | None = None,
) -> tuple[Any, Any, Any]:
    """A listen_tls listener and one connect_tls connection: (listener, client, server)."""
    factory = RecordingFactory(server)
    listener = reactor.listen_tls(0, factory, server_context or server_ctx(certs))
    c = await reactor.connect_tls(
        "127.0.0.1",
        listener.port,
        ns.ClientFactory.for_protocol(client),
        client_context or client_ctx(certs),
    )
    s = await factory.accepted()
    return listener, c, s


async def idle(turns: int = 20) -> None:
    """Let the loop go round ``turns`` times (each polls for I/O)."""
    for _ in range(turns):
        await asyncio.sleep(0)


def recv_exactly(sock: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_line(sock: Any) -> bytes:
    """Read up to and including CRLF, one byte at a time (so nothing after it is consumed)."""
    data = b""
    while not data.endswith(b"\r\n"):
        b = sock.recv(1)
        if not b:
            break
        data += b
    return data


def python_client_context(certs: Certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca))


def make_ca(name: str) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(
    ca_key: Any,
    ca_cert: x509.Certificate,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    hostname: str = "localhost",
) -> tuple[bytes, bytes]:
    """(cert_pem, key_pem) for ``hostname``, signed by the CA, valid in the window given."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# ---- 1-4: real peers


async def test_openssl_s_client_verifies_listen_tls_and_gets_its_line_echoed(
    reactor: ns.Reactor, certs: Certs
) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))
    line = b"hello over tls\n"
    # -quiet implies -ign_eof: s_client stays until the server closes (with close_notify).
    peer = asyncio.ensure_future(
        run_peer(
            [
                "openssl", "s_client", "-connect", f"127.0.0.1:{listener.port}",
                "-CAfile", str(certs.ca), "-verify_return_error",
                "-servername", "localhost", "-quiet",
            ],
            stdin=line,
        )
    )  # fmt: skip
    server = await factory.accepted()
    await server.wait_for_bytes(len(line))
    server.transport.close()
    code, out, err = await peer
    assert (code, out) == (0, line), err.decode(errors="replace")
    assert b"verify return:1" in err
    await server.done
    assert server.reason.check(ns.ConnectionDone)


async def test_connect_tls_talks_to_openssl_s_server(reactor: ns.Reactor, certs: Certs) -> None:
    port = free_port()
    argv = [
        "openssl", "s_server", "-accept", f"127.0.0.1:{port}",
        "-cert", str(certs.cert), "-key", str(certs.key), "-rev",
    ]  # fmt: skip
    async with await start_peer(argv, ready="ACCEPT", ready_on="stdout"):
        client = await connect_tls_when_ready(
            "127.0.0.1", port, ns.ClientFactory.for_protocol(RecordingProtocol), client_ctx(certs)
        )
        assert client.transport.tls.peer_subject == "CN=localhost"
        client.transport.write(b"hello tls\n")  # -rev: s_server answers each line reversed
        assert await client.wait_for_bytes(10) == b"slt olleh\n"
        client.transport.close()
        await client.done


async def test_python_ssl_client_talks_to_listen_tls(reactor: ns.Reactor, certs: Certs) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))

    def client() -> tuple[bytes, str | None]:
        context = python_client_context(certs)
        raw = socket.create_connection(("127.0.0.1", listener.port), THREAD_TIMEOUT)
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"ping from python")
            reply = recv_exactly(s, 16)
            version = s.version()
            s.unwrap()
            return reply, version

    reply, version = await ns.defer_to_thread(client)
    assert reply == b"ping from python"
    assert version in ("TLSv1.2", "TLSv1.3")
    server = factory.built[0]
    await server.done
    assert server.reason.check(ns.ConnectionDone)


async def test_connect_tls_talks_to_a_python_ssl_server(reactor: ns.Reactor, certs: Certs) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]

    def server() -> bytes:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.cert, certs.key)
        with listening:
            listening.settimeout(THREAD_TIMEOUT)
            conn, _ = listening.accept()
            conn.settimeout(THREAD_TIMEOUT)
            with context.wrap_socket(conn, server_side=True) as s:
                line = recv_line(s)
                s.sendall(line.upper())
                assert s.recv(1) == b""  # the client's close_notify
                s.unwrap()
                return line

    served = ns.defer_to_thread(server)
    client = await reactor.connect_tls(
        "127.0.0.1", port, ns.ClientFactory.for_protocol(RecordingProtocol), client_ctx(certs)
    )
    client.transport.write(b"ping\r\n")
    assert await client.wait_for_bytes(6) == b"PING\r\n"
    client.transport.close()
    assert await served == b"ping\r\n"
    await client.done
    assert client.reason.check(ns.ConnectionDone)


class TinyHTTP(ns.Protocol):
    """Reads a request up to its blank line, answers "ok" over HTTP/1.0 and closes."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.request = b""

    def data_received(self, data: bytes) -> None:
        self.request += data
        if b"\r\n\r\n" in self.request and not self.transport.lost:
            self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            self.transport.close()


async def test_curl_fetches_from_an_http_responder_on_listen_tls(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener = reactor.listen_tls(0, ns.Factory.for_protocol(TinyHTTP), server_ctx(certs))
    port = listener.port
    code, out, err = await run_peer(
        [
            "curl", "-sS", "--cacert", str(certs.ca),
            "--resolve", f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/",
        ]
    )  # fmt: skip
    assert (code, out) == (0, b"ok"), err.decode(errors="replace")


# ---- 5: typed verification failures


async def connect_failure(
    reactor: ns.Reactor, port: int, context: tls.TLSContext, host: str = "127.0.0.1"
) -> BaseException:
    client = ns.ClientFactory.for_protocol(RecordingProtocol)
    with pytest.raises(ns.TLSError) as info:
        await reactor.connect_tls(host, port, client, context)
    return info.value


async def test_a_certificate_for_another_name_fails_with_hostname_mismatch(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener = reactor.listen_tls(0, RecordingFactory(), server_ctx(certs))
    err = await connect_failure(reactor, listener.port, client_ctx(certs, "example.org"))
    assert type(err) is tls.HostnameMismatch
    assert "example.org" in str(err)


async def test_connect_tls_verifies_the_contexts_host_name_not_the_address(
    reactor: ns.Reactor, certs: Certs
) -> None:
    # The certificate names localhost only (no IP address entries); the client
    # connects to 127.0.0.1 but asked, in its context, to verify "localhost".
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))
    client = await reactor.connect_tls(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol),
        client_ctx(certs, "localhost"),
    )  # fmt: skip
    server = await factory.accepted()
    assert server.transport.tls.sni == "localhost"
    client.transport.close()
    await client.done


async def test_connect_tls_without_a_context_verifies_the_address_it_connects_to(
    reactor: ns.Reactor, certs: Certs
) -> None:
    # No context: the system's trust store, and the host name given to connect_tls.
    listener = reactor.listen_tls(0, RecordingFactory(), server_ctx(certs))
    client = ns.ClientFactory.for_protocol(RecordingProtocol)
    with pytest.raises(ns.TLSVerificationError) as info:
        await reactor.connect_tls("127.0.0.1", listener.port, client)
    assert type(info.value) is tls.UnknownCA
    assert info.value.host == "127.0.0.1"


async def test_a_certificate_from_an_untrusted_ca_fails_with_unknown_ca(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener = reactor.listen_tls(0, RecordingFactory(), server_ctx(certs))
    _, _, other_ca = tls.self_signed("localhost")
    err = await connect_failure(
        reactor, listener.port, tls.client_context("localhost", ca=other_ca)
    )
    assert type(err) is tls.UnknownCA
    assert err.verify_code is not None


async def test_an_expired_certificate_fails_with_certificate_expired(
    reactor: ns.Reactor,
) -> None:
    ca_key, ca_cert = make_ca("test CA")
    now = datetime.datetime.now(datetime.UTC)
    cert, key = make_leaf(
        ca_key, ca_cert, now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)
    )
    listener = reactor.listen_tls(0, RecordingFactory(), tls.server_context(cert, key))
    err = await connect_failure(
        reactor, listener.port, tls.client_context("localhost", ca=pem(ca_cert))
    )
    assert type(err) is tls.CertificateExpired
    assert err.verify_code == 10  # X509_V_ERR_CERT_HAS_EXPIRED


async def test_a_certificate_not_valid_yet_fails_with_certificate_not_yet_valid(
    reactor: ns.Reactor,
) -> None:
    ca_key, ca_cert = make_ca("test CA")
    now = datetime.datetime.now(datetime.UTC)
    cert, key = make_leaf(
        ca_key, ca_cert, now + datetime.timedelta(days=1), now + datetime.timedelta(days=10)
    )
    listener = reactor.listen_tls(0, RecordingFactory(), tls.server_context(cert, key))
    err = await connect_failure(
        reactor, listener.port, tls.client_context("localhost", ca=pem(ca_cert))
    )
    assert type(err) is tls.CertificateNotYetValid


def handshake_failures(caplog: pytest.LogCaptureFixture) -> list[BaseException]:
    """The exceptions of the failed handshakes the transport logged."""
    return [
        arg
        for r in caplog.records
        if r.name == "netshell.transport" and r.getMessage().startswith("TLS with")
        for arg in (r.args if isinstance(r.args, tuple) else ())
        if isinstance(arg, BaseException)
    ]


async def test_a_tls13_server_requiring_a_client_certificate_refuses_a_client_without_one(
    reactor: ns.Reactor, certs: Certs, client_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netshell.transport")
    factory = RecordingFactory(RecordingEcho)
    context = server_ctx(certs, client_ca=client_certs.ca, min_version="TLSv1.3")
    listener = reactor.listen_tls(0, factory, context)
    # In TLS 1.3 the client's handshake is over when it sends its (empty)
    # certificate and Finished: connect_tls fires, then the server's alert ends it.
    client = await reactor.connect_tls(
        "127.0.0.1",
        listener.port,
        ns.ClientFactory.for_protocol(RecordingProtocol),
        client_ctx(certs),
    )
    await client.done
    assert client.reason.check(ns.ConnectionLost)
    assert isinstance(client.reason.value.__cause__, tls.ClientCertificateRequired)
    assert client.received == b""
    assert factory.built == []  # the server's protocol never met the connection
    assert any(isinstance(e, tls.ClientCertificateRequired) for e in handshake_failures(caplog))


async def test_a_tls12_server_requiring_a_client_certificate_fails_connect_tls(
    reactor: ns.Reactor, certs: Certs, client_certs: Certs
) -> None:
    context = server_ctx(certs, client_ca=client_certs.ca)
    context.ssl_context.set_max_proto_version(SSL.TLS1_2_VERSION)
    listener = reactor.listen_tls(0, RecordingFactory(), context)
    err = await connect_failure(reactor, listener.port, client_ctx(certs))
    assert isinstance(err, tls.ClientCertificateRequired)


async def test_a_server_requiring_a_client_certificate_accepts_a_client_with_one(
    reactor: ns.Reactor, certs: Certs, client_certs: Certs
) -> None:
    _, client, server = await tls_pair(
        reactor,
        certs,
        server_context=server_ctx(certs, client_ca=client_certs.ca),
        client_context=client_ctx(certs, client_cert=(client_certs.cert, client_certs.key)),
    )
    assert server.transport.tls.peer_subject == "CN=client.test"
    client.transport.write(b"with a certificate")
    assert await client.wait_for_bytes(18) == b"with a certificate"


# ---- 6: one bad handshake, one connection


async def test_listen_tls_builds_no_protocol_before_the_handshake(
    reactor: ns.Reactor, certs: Certs
) -> None:
    factory = RecordingFactory(RecordingProtocol)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))
    raw = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    for _ in range(100):  # until the server side has accepted it
        if len(reactor.connections) == 2:
            break
        await asyncio.sleep(0)
    assert len(reactor.connections) == 2
    await idle()
    assert factory.built == []
    raw.transport.close()


async def test_a_failed_handshake_closes_that_connection_only(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener, established, _ = await tls_pair(reactor, certs)
    # A client speaking plain HTTP to the TLS port: the server's handshake fails.
    plain = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    plain.transport.write(b"GET / HTTP/1.0\r\n\r\n")
    await plain.done
    # A client that does not trust the server: its own handshake fails.
    _, _, other_ca = tls.self_signed("localhost")
    await connect_failure(reactor, listener.port, tls.client_context("localhost", ca=other_ca))
    established.transport.write(b"still here")
    assert await established.wait_for_bytes(10) == b"still here"
    fresh = await reactor.connect_tls(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol),
        client_ctx(certs),
    )  # fmt: skip
    fresh.transport.write(b"new one")
    assert await fresh.wait_for_bytes(7) == b"new one"
    assert len(listener.connections) == 2


# ---- 7: STARTTLS


class SMTPish(LineReceiver):
    """Just enough SMTP for ``openssl s_client -starttls smtp``: EHLO, STARTTLS, QUIT."""

    context: tls.TLSContext  # set on the class by each test

    def __init__(self) -> None:
        self.upgraded: ns.Deferred[Any] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.send_line(b"220 test ESMTP")

    def line_received(self, line: bytes) -> None:
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"EHLO":
            if self.transport.tls is None:
                self.transport.write(b"250-test\r\n250 STARTTLS\r\n")
            else:
                self.send_line(b"250 test")
        elif verb == b"STARTTLS":
            self.send_line(b"220 go ahead")
            self.upgraded = self.transport.start_tls(self.context)
        elif verb == b"QUIT":
            self.send_line(b"221 bye")
            self.transport.close()
        else:
            self.send_line(b"500 what?")


class LineRecorder(LineReceiver):
    """A client that keeps the lines it gets; ``next_line()`` fires with the next one."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.connected: ns.Deferred[Any] = ns.Deferred()
        self.done: ns.Deferred[None] = ns.Deferred()
        self._queue: ns.DeferredQueue[bytes] = ns.DeferredQueue()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.connected.callback(self)

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        self._queue.put(line)

    def next_line(self) -> ns.Deferred[bytes]:
        return self._queue.get()

    def connection_lost(self, reason: ns.Failure) -> None:
        self.reason = reason
        self.done.callback(None)


def smtp_factory(certs: Certs) -> ns.Factory:
    """A factory of SMTPish servers upgrading with ``certs``."""
    return ns.Factory.for_protocol(
        type("SMTPishServer", (SMTPish,), {"context": server_ctx(certs)})
    )


async def test_openssl_s_client_starttls_smtp_upgrades_a_line_receiver_server(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener = reactor.listen_tcp(0, smtp_factory(certs))
    code, out, err = await run_peer(
        [
            "openssl", "s_client", "-starttls", "smtp",
            "-connect", f"127.0.0.1:{listener.port}", "-CAfile", str(certs.ca),
            "-verify_return_error", "-servername", "localhost", "-quiet",
        ],
        stdin=b"EHLO x\r\nQUIT\r\n",
    )  # fmt: skip
    assert code == 0, err.decode(errors="replace")
    assert out == b"250 test\r\n221 bye\r\n"


async def test_start_tls_from_a_netshell_client_fires_with_tls_info(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener = reactor.listen_tcp(0, smtp_factory(certs))
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(LineRecorder)
    )
    assert await client.next_line() == b"220 test ESMTP"
    client.send_line(b"STARTTLS")
    assert await client.next_line() == b"220 go ahead"
    info = await client.transport.start_tls(client_ctx(certs))
    assert isinstance(info, TLSInfo)
    assert info.peer_subject == "CN=localhost"
    client.send_line(b"EHLO x")
    assert await client.next_line() == b"250 test"  # the encrypted answer
    client.send_line(b"QUIT")
    assert await client.next_line() == b"221 bye"
    await client.done
    assert client.reason.check(ns.ConnectionDone)


async def test_server_bytes_before_start_tls_go_in_clear_and_after_it_encrypted(
    reactor: ns.Reactor, certs: Certs
) -> None:
    context = server_ctx(certs)

    class Upgrader(ns.Protocol):
        def connection_made(self, transport: Any) -> None:
            transport.write(b"220 go ahead\r\n")
            transport.start_tls(context)
            transport.write(b"secret\r\n")  # held until the handshake is done

    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(Upgrader))

    def client() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", listener.port), THREAD_TIMEOUT) as raw:
            clear = recv_line(raw)
            with python_client_context(certs).wrap_socket(raw, server_hostname="localhost") as s:
                return clear, recv_line(s)

    clear, secret = await ns.defer_to_thread(client)
    assert clear == b"220 go ahead\r\n"
    assert secret == b"secret\r\n"


async def test_client_bytes_written_right_after_start_tls_go_encrypted_after_the_handshake(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]

    def server() -> tuple[bytes, bytes]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.cert, certs.key)
        with listening:
            listening.settimeout(THREAD_TIMEOUT)
            conn, _ = listening.accept()
            conn.settimeout(THREAD_TIMEOUT)
            clear = recv_line(conn)
            # Anything but a ClientHello next (say "EHLO" in clear) fails this handshake.
            with context.wrap_socket(conn, server_side=True) as s:
                return clear, recv_line(s)

    served = ns.defer_to_thread(server)
    client = await reactor.connect_tcp(
        "127.0.0.1", port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    client.transport.write(b"STARTTLS\r\n")
    upgraded = client.transport.start_tls(client_ctx(certs))
    client.transport.write(b"EHLO x\r\n")
    assert not upgraded.called
    assert await served == (b"STARTTLS\r\n", b"EHLO x\r\n")
    assert (await upgraded).version in ("TLSv1.2", "TLSv1.3")


async def test_start_tls_twice_raises_runtime_error(reactor: ns.Reactor, certs: Certs) -> None:
    _, client, _ = await tls_pair(reactor, certs)
    with pytest.raises(RuntimeError):
        client.transport.start_tls(client_ctx(certs))


async def test_start_tls_with_server_side_disagreeing_with_the_context_raises_value_error(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener = reactor.listen_tcp(0, RecordingFactory())
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    with pytest.raises(ValueError):
        client.transport.start_tls(client_ctx(certs), server_side=True)
    assert client.transport.tls is None


# ---- 8: integrity


class HashingEcho(ns.Protocol):
    """Echoes, hashing what it receives; reading pauses while its writes are paused."""

    def __init__(self) -> None:
        self.connected: ns.Deferred[Any] = ns.Deferred()
        self.done: ns.Deferred[None] = ns.Deferred()
        self.sha = hashlib.sha256()
        self.count = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.register_producer(self, streaming=True)
        self.connected.callback(self)

    def data_received(self, data: bytes) -> None:
        self.sha.update(data)
        self.count += len(data)
        self.transport.write(data)

    def pause_producing(self) -> None:
        self.transport.pause_reading()

    def resume_producing(self) -> None:
        self.transport.resume_reading()

    def stop_producing(self) -> None:
        pass

    def connection_lost(self, reason: ns.Failure) -> None:
        self.done.callback(None)


class BulkClient(ns.Protocol):
    """Sends ``total`` random bytes as a streaming producer, hashing what it sends and gets."""

    total = BULK_BYTES

    def __init__(self) -> None:
        self.sent_sha = hashlib.sha256()
        self.received_sha = hashlib.sha256()
        self.sent = 0
        self.received = 0
        self.paused = False
        self.echoed: ns.Deferred[None] = ns.Deferred()
        self.block = os.urandom(1 * MiB + 7)  # an odd size: chunks do not line up with records

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.register_producer(self, streaming=True)
        self.resume_producing()

    def resume_producing(self) -> None:
        self.paused = False
        while not self.paused and self.sent < self.total:
            start = self.sent % len(self.block)
            data = self.block[start : start + 64 * KiB][: self.total - self.sent]
            self.sent_sha.update(data)
            self.sent += len(data)
            self.transport.write(data)

    def pause_producing(self) -> None:
        self.paused = True

    def stop_producing(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.received_sha.update(data)
        self.received += len(data)
        if self.received >= self.total and not self.echoed.called:
            self.echoed.callback(None)


@pytest.mark.async_timeout(120)
async def test_bulk_data_through_tls_both_ways_arrives_intact_and_counters_count_plaintext(
    reactor: ns.Reactor, certs: Certs
) -> None:
    _, client, server = await tls_pair(reactor, certs, server=HashingEcho, client=BulkClient)
    await client.echoed
    total = BULK_BYTES
    assert (client.sent, server.count, client.received) == (total, total, total)
    assert server.sha.hexdigest() == client.sent_sha.hexdigest()
    assert client.received_sha.hexdigest() == client.sent_sha.hexdigest()
    assert client.transport.bytes_sent == total
    assert server.transport.bytes_received == total
    assert server.transport.bytes_sent == total
    assert client.transport.bytes_received == total


# ---- 9-10: closing: close_notify, truncation


def python_tls_client(certs: Certs, port: int) -> ssl.SSLSocket:
    """A connected, handshaken Python ssl client (ragged EOFs are errors, not b"")."""
    raw = socket.create_connection(("127.0.0.1", port), THREAD_TIMEOUT)
    return python_client_context(certs).wrap_socket(
        raw, server_hostname="localhost", suppress_ragged_eofs=False
    )


async def test_peer_closing_tcp_without_close_notify_loses_the_connection(
    reactor: ns.Reactor, certs: Certs
) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))

    def truncating_client() -> None:
        s = python_tls_client(certs, listener.port)
        s.sendall(b"x")
        # The echo comes after the server's session tickets: once it is read, nothing
        # is left unread, so closing sends a FIN (not a reset) -- and no close_notify.
        assert recv_exactly(s, 1) == b"x"
        socket.socket(fileno=s.detach()).close()

    await ns.defer_to_thread(truncating_client)
    server = factory.built[0]
    await server.done
    assert server.reason.check(ns.ConnectionLost)
    assert "close_notify" in str(server.reason.value)


async def test_peer_closing_with_close_notify_gives_connection_done(
    reactor: ns.Reactor, certs: Certs
) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))

    def clean_client() -> None:
        s = python_tls_client(certs, listener.port)
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        s.unwrap().close()  # close_notify, then the server's

    await ns.defer_to_thread(clean_client)
    server = factory.built[0]
    await server.done
    assert server.reason.check(ns.ConnectionDone)


async def test_close_sends_close_notify_so_the_peer_sees_a_clean_eof(
    reactor: ns.Reactor, certs: Certs
) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))
    accepted = factory.accepted()

    def client() -> bytes | str:
        s = python_tls_client(certs, listener.port)
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        try:
            # suppress_ragged_eofs=False: a TCP close without close_notify raises SSLEOFError
            end = s.recv(100)
        except ssl.SSLError as e:
            return repr(e)
        s.unwrap().close()
        return end

    answered = ns.defer_to_thread(client)
    server = await accepted
    await server.wait_for_bytes(1)
    server.transport.close()
    assert await answered == b""
    await server.done
    assert server.reason.check(ns.ConnectionDone)


async def test_close_stops_waiting_for_the_peers_close_notify_after_tls_close_timeout(
    reactor: ns.Reactor, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "TLS_CLOSE_TIMEOUT", 0.2)
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))
    accepted = factory.accepted()

    def silent_client() -> tuple[bytes, bytes]:
        s = python_tls_client(certs, listener.port)
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        end = s.recv(100)  # the server's close_notify; ours is never sent
        raw = socket.socket(fileno=s.detach())
        raw.settimeout(THREAD_TIMEOUT)
        with raw:
            return end, raw.recv(100)  # b"" once the server gives up and closes TCP

    answered = ns.defer_to_thread(silent_client)
    server = await accepted
    await server.wait_for_bytes(1)
    server.transport.close()
    assert await answered == (b"", b"")
    await server.done
    assert server.reason.check(ns.ConnectionDone)


# ---- 11: what transport.tls tells


async def test_tls_info_gives_version_and_cipher_on_both_sides(
    reactor: ns.Reactor, certs: Certs
) -> None:
    _, client, server = await tls_pair(reactor, certs)
    for t in (client.transport, server.transport):
        assert t.tls.version in ("TLSv1.2", "TLSv1.3")
        assert t.tls.cipher
    assert client.transport.tls.version == server.transport.tls.version
    assert client.transport.tls.cipher == server.transport.tls.cipher


async def test_tls_info_is_none_on_a_plain_connection(reactor: ns.Reactor) -> None:
    listener = reactor.listen_tcp(0, RecordingFactory())
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    assert client.transport.tls is None


async def test_alpn_is_negotiated_when_both_sides_offer_it(
    reactor: ns.Reactor, certs: Certs
) -> None:
    _, client, server = await tls_pair(
        reactor,
        certs,
        server_context=server_ctx(certs, alpn=["h2", "http/1.1"]),
        client_context=client_ctx(certs, alpn=["http/1.1"]),
    )
    assert client.transport.tls.alpn == "http/1.1"
    assert server.transport.tls.alpn == "http/1.1"


async def test_alpn_is_none_when_the_client_offers_none(reactor: ns.Reactor, certs: Certs) -> None:
    _, client, server = await tls_pair(
        reactor, certs, server_context=server_ctx(certs, alpn=["h2", "http/1.1"])
    )
    assert client.transport.tls.alpn is None
    assert server.transport.tls.alpn is None


async def test_tls_info_gives_the_sni_on_the_server_side(reactor: ns.Reactor, certs: Certs) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))
    # "localhost" resolves to 127.0.0.1 (and maybe ::1, refused: the listener is IPv4).
    client = await reactor.connect_tls(
        "localhost", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol),
        client_ctx(certs),
    )  # fmt: skip
    server = await factory.accepted()
    assert server.transport.tls.sni == "localhost"
    assert client.transport.tls.sni == "localhost"


async def test_tls_info_gives_the_peer_certificate_on_the_client_side(
    reactor: ns.Reactor, certs: Certs
) -> None:
    _, client, server = await tls_pair(reactor, certs)
    leaf = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    info = client.transport.tls
    assert info.peer_subject == "CN=localhost"
    assert info.peer_issuer == leaf.issuer.rfc4514_string()
    assert info.peer_sans == ["localhost"]
    assert info.peer_not_after == leaf.not_valid_after_utc
    assert server.transport.tls.peer_subject is None  # no client certificate


# ---- 12: flow control


Counter = PausedReader


class ChunkProducer:
    """A streaming producer: writes 64 KiB chunks as fast as it is allowed, up to ``total``."""

    def __init__(self, transport: Any, total: int) -> None:
        self.transport = transport
        self.total = total
        self.chunk = os.urandom(64 * KiB)
        self.sent = 0
        self.sha = hashlib.sha256()
        self.paused = False
        self.pauses = 0
        self.max_buffer = 0
        self.finished: ns.Deferred[None] = ns.Deferred()

    def produce(self) -> None:
        while not self.paused and self.sent < self.total:
            data = self.chunk[: self.total - self.sent]
            self.transport.write(data)
            self.sent += len(data)
            self.sha.update(data)
            self.max_buffer = max(self.max_buffer, self.transport.write_buffer_size)
        if self.sent >= self.total and not self.finished.called:
            self.transport.unregister_producer()
            self.finished.callback(None)

    def pause_producing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_producing(self) -> None:
        self.paused = False
        self.produce()

    def stop_producing(self) -> None:
        pass


@pytest.mark.async_timeout(120)
async def test_streaming_producer_over_tls_is_paused_and_the_write_buffer_stays_bounded(
    reactor: ns.Reactor, certs: Certs
) -> None:
    _, reader, writer = await tls_pair(reactor, certs, server=RecordingProtocol, client=Counter)
    total = FLOW_BYTES
    producer = ChunkProducer(writer.transport, total)
    writer.transport.register_producer(producer, streaming=True)
    producer.produce()
    assert producer.paused  # the reader is paused: the producer was stopped, not run to the end
    assert producer.sent < total
    step = 8 * MiB
    while reader.count < total:
        await reader.read_until(min(reader.count + step, total))
        await idle(5)  # the reader is paused again: the producer fills up and pauses
        assert writer.transport.write_buffer_size < 8 * MiB
    await producer.finished
    assert producer.max_buffer < 8 * MiB
    assert producer.pauses >= 2
    assert reader.count == total
    assert reader.sha.hexdigest() == producer.sha.hexdigest()
    assert writer.transport.bytes_sent == total
    assert reader.transport.bytes_received == total


async def test_pause_reading_on_tls_delivers_nothing_more_until_resumed(
    reactor: ns.Reactor, certs: Certs
) -> None:
    class PauseAfterFirst(RecordingProtocol):
        """Pauses reading from its first data_received on."""

        first = 0

        def data_received(self, data: bytes) -> None:
            if data and not self.first:
                self.transport.pause_reading()
                self.first = len(data)
            super().data_received(data)

    _, client, server = await tls_pair(reactor, certs, server=PauseAfterFirst)
    # Many TLS records in one burst: one socket read holds several of them.
    client.transport.write(os.urandom(512 * KiB))
    await server.wait_for_bytes(1)
    await idle()
    assert len(server.received) == server.first
    server.transport.resume_reading()
    assert len(await server.wait_for_bytes(512 * KiB)) == 512 * KiB


# ---- failures around the handshake, and closing


async def test_connect_tls_times_out_when_the_server_never_answers_the_handshake(
    reactor: ns.Reactor, certs: Certs
) -> None:
    silent = RecordingFactory(RecordingProtocol)  # plain TCP: accepts, says nothing
    listener = reactor.listen_tcp(0, silent)
    connecting = reactor.connect_tls(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol),
        client_ctx(certs), timeout=0.2,
    )  # fmt: skip
    with pytest.raises(ns.ConnectTimeout):
        # bounded here too: without a handshake timeout this would wait for ever
        await asyncio.wait_for(connecting.as_future(), 10)
    server = silent.built[0]
    await server.done  # the half-made connection was closed, not left open


async def test_a_server_hanging_up_during_the_handshake_fails_connect_tls_with_handshake_failed(
    reactor: ns.Reactor, certs: Certs
) -> None:
    class HangUp(RecordingProtocol):
        def data_received(self, data: bytes) -> None:
            self.transport.close()  # the ClientHello arrived: go away without a word

    listener = reactor.listen_tcp(0, RecordingFactory(HangUp))
    err = await connect_failure(reactor, listener.port, client_ctx(certs))
    assert isinstance(err, ns.HandshakeFailed)


async def test_a_failed_tls_handshake_tells_the_client_factory_the_connection_failed(
    reactor: ns.Reactor, certs: Certs
) -> None:
    listener = reactor.listen_tls(0, RecordingFactory(), server_ctx(certs))
    failures: list[ns.Failure] = []
    failed: ns.Deferred[None] = ns.Deferred()

    class Client(ns.ClientFactory):
        protocol = RecordingProtocol

        def client_connection_failed(self, connector: Any, reason: ns.Failure) -> None:
            failures.append(reason)
            failed.callback(None)  # a second call would raise AlreadyCalledError

    with pytest.raises(ns.HostnameMismatch):
        await reactor.connect_tls(
            "127.0.0.1", listener.port, Client(), client_ctx(certs, "example.org")
        )
    await asyncio.wait_for(failed.as_future(), 10)
    assert failures[0].check(ns.HostnameMismatch)


async def test_state_is_closing_while_close_waits_for_the_peers_close_notify(
    reactor: ns.Reactor, certs: Certs
) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))
    accepted = factory.accepted()
    peer_closes: ns.Deferred[None] = ns.Deferred()

    def client() -> bytes:
        s = python_tls_client(certs, listener.port)
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        end = s.recv(100)
        reactor.call_from_thread(peer_closes.callback, None)
        s.unwrap().close()
        return end

    answered = ns.defer_to_thread(client)
    server = await accepted
    await server.wait_for_bytes(1)
    server.transport.close()
    assert server.transport.state == "closing"
    await peer_closes
    assert await answered == b""
    await server.done
    assert server.transport.state == "closed"


async def test_write_after_close_on_tls_is_dropped_as_on_tcp(
    reactor: ns.Reactor, certs: Certs
) -> None:
    class CloseThenWrite(RecordingProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.write(b"bye")
            self.transport.close()
            self.transport.write(b"too late")  # TCP drops it; it must not break the close

    factory = RecordingFactory(CloseThenWrite)
    listener = reactor.listen_tls(0, factory, server_ctx(certs))

    def client() -> bytes:
        s = python_tls_client(certs, listener.port)
        s.sendall(b"x")
        got = b""
        while True:
            try:
                chunk = s.recv(100)
            except ssl.SSLError as e:
                return got + repr(e).encode()
            if not chunk:
                break
            got += chunk
        s.unwrap().close()
        return got

    assert await ns.defer_to_thread(client) == b"bye"
    server = factory.built[0]
    await server.done
    assert server.reason.check(ns.ConnectionDone)


async def test_cancelling_connect_tls_during_the_handshake_drops_the_connection(
    reactor: ns.Reactor, certs: Certs
) -> None:
    class HoldsTheHello(RecordingProtocol):
        start_paused = True  # the ClientHello waits in the kernel until the test says

    held = RecordingFactory(HoldsTheHello)
    listener = reactor.listen_tcp(0, held)
    client_factory = RecordingFactory(RecordingProtocol)
    connecting = reactor.connect_tls("127.0.0.1", listener.port, client_factory, client_ctx(certs))
    server = await held.accepted()
    await idle()  # the client's TCP connection is up, its hello sent
    connecting.cancel()
    with pytest.raises(ns.CancelledError):
        await connecting
    # Were the client still there, this would complete its handshake.
    server.transport.start_tls(server_ctx(certs))
    server.transport.resume_reading()
    await server.done
    assert client_factory.built == []


def test_a_tls_listener_says_so_in_its_repr(reactor: ns.Reactor, certs: Certs) -> None:
    listener = reactor.listen_tls(0, RecordingFactory(), server_ctx(certs))
    plain = reactor.listen_tcp(0, RecordingFactory())
    try:
        assert repr(listener).startswith("<Listener tcp+tls 127.0.0.1:")
        assert repr(plain).startswith("<Listener tcp 127.0.0.1:")
    finally:
        listener.close()
        plain.close()
