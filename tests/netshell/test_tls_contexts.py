"""netshell.tls: contexts, throwaway certificates, peer checks and typed errors.

No sockets: a client and a server pyOpenSSL connection, both on memory BIOs,
hand each other their bytes until the handshake is done or has failed.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL

from netshell import errors, tls
from netshell.tls import (
    CertificateExpired,
    CertificateNotYetValid,
    ClientCertificateRequired,
    HandshakeFailed,
    HostnameMismatch,
    TLSContext,
    TLSError,
    TLSVerificationError,
    UnknownCA,
    VerifyRecord,
    client_context,
    self_signed,
    self_signed_files,
    server_context,
)

UTC = datetime.UTC

# ---- helpers


def _step(conn: SSL.Connection) -> SSL.Error | None:
    """Advance ``conn``: the handshake while it runs, then a read (to surface late alerts)."""
    try:
        if conn.get_state_string() == b"SSL negotiation finished successfully":
            conn.recv(65536)
        else:
            conn.do_handshake()
    except (SSL.WantReadError, SSL.ZeroReturnError):
        pass
    except SSL.Error as e:
        return e
    return None


def _ship(src: SSL.Connection, dst: SSL.Connection) -> int:
    try:
        data = src.bio_read(65536)
    except SSL.WantReadError:
        return 0
    dst.bio_write(data)
    return len(data)


class Pair:
    """A client and a server connection, the handshake driven to its end in memory."""

    def __init__(self, client: TLSContext, server: TLSContext, hostname: str | None = None) -> None:
        self.client_ctx, self.server_ctx = client, server
        self.client = client.connection(hostname)
        self.server = server.connection()
        self.client_error: SSL.Error | None = None
        self.server_error: SSL.Error | None = None
        for _ in range(20):
            if self.client_error is None:
                self.client_error = _step(self.client)
            moved = _ship(self.client, self.server)
            if self.server_error is None:
                self.server_error = _step(self.server)
            moved += _ship(self.server, self.client)
            if not moved and (self.client_error or self.server_error or self.done):
                # one more turn so the side that did not fail reads the alert
                if self.client_error is None:
                    self.client_error = _step(self.client)
                if self.server_error is None:
                    self.server_error = _step(self.server)
                break

    @property
    def done(self) -> bool:
        finished = b"SSL negotiation finished successfully"
        return (
            self.client.get_state_string() == finished
            and self.server.get_state_string() == finished
        )

    @property
    def ok(self) -> bool:
        return self.done and self.client_error is None and self.server_error is None

    def client_failure(self) -> TLSError:
        assert self.client_error is not None, "the client saw no error"
        return self.client_ctx.translate_error(self.client, self.client_error)

    def server_failure(self) -> TLSError:
        assert self.server_error is not None, "the server saw no error"
        return self.server_ctx.translate_error(self.server, self.server_error)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(
    cn: str = "test CA",
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An authority (self-signed, or an intermediate signed by ``issuer``)."""
    now = datetime.datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(signer_cert.subject if signer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if signer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_cert.public_key()), False
        )
    return builder.sign(signer_key, hashes.SHA256()), key


def make_leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *hostnames: str,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A leaf for ``hostnames`` signed by ``ca``, with any validity window: (cert, key) PEM."""
    ca_cert, ca_key = ca
    now = datetime.datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hostnames or ("localhost",):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name((hostnames or ("localhost",))[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return self_signed()


@pytest.fixture(scope="module")
def client_certs() -> tuple[bytes, bytes, bytes]:
    return self_signed("client.example")


def tls12_only(ctx: TLSContext) -> TLSContext:
    ctx.ssl_context.set_max_proto_version(SSL.TLS1_2_VERSION)
    return ctx


# ---- the errors


def test_error_tree() -> None:
    assert issubclass(TLSError, errors.NetshellError)
    for cls in (HandshakeFailed, TLSVerificationError, ClientCertificateRequired):
        assert issubclass(cls, TLSError)
    for cls in (HostnameMismatch, UnknownCA, CertificateExpired, CertificateNotYetValid):
        assert issubclass(cls, TLSVerificationError)
    assert tls.UnknownCA is errors.UnknownCA
    for name in (
        "TLSError",
        "HandshakeFailed",
        "TLSVerificationError",
        "HostnameMismatch",
        "UnknownCA",
        "CertificateExpired",
        "CertificateNotYetValid",
        "ClientCertificateRequired",
    ):
        assert name in errors.__all__ and name in tls.__all__


def test_error_attributes() -> None:
    e = UnknownCA("nope", host="h", subject="CN=h", verify_code=20)
    assert (str(e), e.host, e.subject, e.verify_code) == ("nope", "h", "CN=h", 20)
    plain = TLSError("plain")
    assert (plain.host, plain.subject, plain.verify_code) == (None, None, None)


# ---- self_signed


def test_self_signed_parses_and_has_the_sans(certs: tuple[bytes, bytes, bytes]) -> None:
    cert_pem, key_pem, ca_pem = certs
    leaf = x509.load_pem_x509_certificate(cert_pem)
    assert x509.load_pem_x509_certificate(ca_pem).subject != leaf.subject
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_self_signed_ca_signs_the_leaf(certs: tuple[bytes, bytes, bytes]) -> None:
    cert_pem, _, ca_pem = certs
    leaf = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf.verify_directly_issued_by(ca)  # raises if not
    ca.verify_directly_issued_by(ca)  # self-signed
    assert leaf.issuer == ca.subject
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is True
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    # another call, another authority: its leaf does not verify against this CA
    other_leaf = x509.load_pem_x509_certificate(self_signed()[0])
    with pytest.raises(ValueError):  # issued by another name
        other_leaf.verify_directly_issued_by(ca)
    assert other_leaf.issuer != ca.subject


def test_self_signed_validity_window() -> None:
    before = datetime.datetime.now(UTC)
    cert_pem, _, ca_pem = self_signed("a.example", days=3)
    after = datetime.datetime.now(UTC)
    for cert in (x509.load_pem_x509_certificate(cert_pem), x509.load_pem_x509_certificate(ca_pem)):
        one_minute = datetime.timedelta(minutes=1)
        slack = datetime.timedelta(seconds=2)
        assert before - one_minute - slack <= cert.not_valid_before_utc <= after - one_minute
        three_days = datetime.timedelta(days=3)
        assert before + three_days - slack <= cert.not_valid_after_utc <= after + three_days


def test_self_signed_host_names() -> None:
    cert_pem, _, _ = self_signed("example.test", "*.example.test", "10.0.0.1", "fe80::1")
    leaf = x509.load_pem_x509_certificate(cert_pem)
    assert leaf.subject.rfc4514_string() == "CN=example.test"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test", "*.example.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1", "fe80::1"]


def test_self_signed_bad_arguments() -> None:
    with pytest.raises(ValueError, match="days"):
        self_signed("localhost", days=0)
    with pytest.raises(ValueError, match="host names"):
        self_signed("")


def test_self_signed_files(tmp_path: Path) -> None:
    cert, key, ca = self_signed_files(tmp_path / "certs", "localhost")
    assert (cert.name, key.name, ca.name) == ("cert.pem", "key.pem", "ca.pem")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    # a key file that already existed with a wider mode is narrowed
    os.chmod(key, 0o644)
    cert, key, ca = self_signed_files(tmp_path / "certs", "localhost")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    # and the files serve, given as paths
    pair = Pair(client_context("localhost", ca=ca), server_context(cert, key))
    assert pair.ok


# ---- the handshake, verified


def test_trusted_handshake_and_host_names(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    client = client_context("localhost", ca=ca)
    pair = Pair(client, server_context(cert, key))
    assert pair.ok, (pair.client_error, pair.server_error)
    client.check_peer(pair.client)
    client.check_peer(pair.client, "localhost")
    client.check_peer(pair.client, "127.0.0.1")
    client.check_peer(pair.client, "::1")
    client.check_peer(pair.client, "[::1]")
    with pytest.raises(HostnameMismatch) as info:
        client.check_peer(pair.client, "example.org")
    message = str(info.value)
    assert "example.org" in message and "CN=localhost" in message and "127.0.0.1" in message
    assert info.value.host == "example.org"
    assert info.value.subject == "CN=localhost"
    assert info.value.__cause__ is not None
    with pytest.raises(HostnameMismatch, match=r"10\.9\.8\.7"):
        client.check_peer(pair.client, "10.9.8.7")


def test_check_peer_uses_the_connections_host_name(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    client = client_context("example.org", ca=ca)  # reused for another host
    pair = Pair(client, server_context(cert, key), hostname="127.0.0.1")
    assert pair.ok
    client.check_peer(pair.client)  # checks 127.0.0.1, what this connection was for
    pair = Pair(client, server_context(cert, key))
    assert pair.ok  # the chain is fine; the name is not
    with pytest.raises(HostnameMismatch, match=r"example\.org"):
        client.check_peer(pair.client)


def test_hostname_mismatch_for_a_certificate_without_sans() -> None:
    ca = make_ca()
    cert, key = make_leaf(ca, "other.example")
    client = client_context("localhost", ca=_pem(ca[0]))
    pair = Pair(client, server_context(cert, key))
    assert pair.ok
    with pytest.raises(HostnameMismatch, match=r"other\.example"):
        client.check_peer(pair.client)


def test_sni(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    server = server_context(cert, key)
    pair = Pair(client_context("localhost", ca=ca), server)
    assert pair.ok
    assert pair.server.get_servername() == b"localhost"
    # an IP literal is not sent as SNI
    pair = Pair(client_context("127.0.0.1", ca=ca), server)
    assert pair.ok
    assert pair.server.get_servername() is None
    pair = Pair(client_context("::1", ca=ca), server)
    assert pair.ok
    assert pair.server.get_servername() is None


def test_connection_state_and_record(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    client = client_context("localhost", ca=ca)
    conn = client.connection()
    record = conn.get_app_data()
    assert isinstance(record, VerifyRecord)
    assert record.hostname == "localhost" and record.code is None
    assert client.connection() is not conn
    server_conn = server_context(cert, key).connection()
    assert server_conn.get_app_data().hostname is None


def test_a_verifying_client_needs_a_host_name() -> None:
    with pytest.raises(ValueError, match="host name"):
        client_context(None)
    with pytest.raises(ValueError, match="host name"):
        client_context("")
    client_context(None, verify=False)  # fine: nothing to verify


# ---- the handshake, refused


def test_unknown_ca_with_the_system_store(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, _ = certs
    pair = Pair(client_context("localhost"), server_context(cert, key))
    assert not pair.ok
    err = pair.client_failure()
    assert type(err) is UnknownCA
    assert "localhost" in str(err) and "CN=localhost" in str(err)
    assert "netshell throwaway CA" in str(err)  # the issuer nobody trusts
    assert err.verify_code == 20
    assert isinstance(err.__cause__, SSL.Error)
    # the server hears the client's alert
    assert type(pair.server_failure()) is UnknownCA


def test_unknown_ca_with_another_authority(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, _ = certs
    other_ca = self_signed()[2]
    pair = Pair(client_context("localhost", ca=other_ca), server_context(cert, key))
    err = pair.client_failure()
    assert type(err) is UnknownCA
    assert err.host == "localhost"


def test_a_self_signed_leaf_is_an_unknown_ca() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(_name("localhost"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    pair = Pair(
        client_context("localhost", ca=self_signed()[2]), server_context(_pem(cert), _key_pem(key))
    )
    err = pair.client_failure()
    assert type(err) is UnknownCA
    assert err.verify_code == 18


def test_expired_certificate() -> None:
    ca = make_ca()
    now = datetime.datetime.now(UTC)
    cert, key = make_leaf(
        ca,
        "localhost",
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )
    pair = Pair(client_context("localhost", ca=_pem(ca[0])), server_context(cert, key))
    err = pair.client_failure()
    assert type(err) is CertificateExpired
    assert err.verify_code == 10
    assert "localhost" in str(err) and "expired" in str(err) and "CN=localhost" in str(err)
    assert isinstance(err.__cause__, SSL.Error)
    # the server is told, by alert, that its certificate has expired
    assert type(pair.server_failure()) is CertificateExpired


def test_expired_authority() -> None:
    now = datetime.datetime.now(UTC)
    ca = make_ca(
        "old CA",
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )
    cert, key = make_leaf(ca, "localhost")
    pair = Pair(client_context("localhost", ca=_pem(ca[0])), server_context(cert, key))
    err = pair.client_failure()
    assert type(err) is CertificateExpired
    assert "depth 1" in str(err) and "CN=old CA" in str(err)


def test_certificate_not_yet_valid() -> None:
    ca = make_ca()
    now = datetime.datetime.now(UTC)
    cert, key = make_leaf(
        ca,
        "localhost",
        not_before=now + datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=10),
    )
    pair = Pair(client_context("localhost", ca=_pem(ca[0])), server_context(cert, key))
    err = pair.client_failure()
    assert type(err) is CertificateNotYetValid
    assert err.verify_code == 9
    assert "not valid yet" in str(err) and "localhost" in str(err)


# ---- client certificates


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_client_certificate_required_and_missing(
    certs: tuple[bytes, bytes, bytes], client_certs: tuple[bytes, bytes, bytes], version: str
) -> None:
    cert, key, ca = certs
    server = server_context(cert, key, client_ca=client_certs[2])
    client = client_context("localhost", ca=ca)
    if version == "TLSv1.2":
        tls12_only(client)
    pair = Pair(client, server)
    err = pair.server_failure()
    assert type(err) is ClientCertificateRequired
    assert "no certificate" in str(err)
    # TLS 1.3: the client's handshake completes, then it reads the server's
    # "certificate required" alert; TLS 1.2: a "handshake failure" alert after
    # the server's CertificateRequest. Both come out the same.
    client_err = pair.client_failure()
    assert type(client_err) is ClientCertificateRequired
    assert "localhost" in str(client_err)


def test_handshake_failure_without_a_certificate_request_is_not_about_client_certs(
    certs: tuple[bytes, bytes, bytes],
) -> None:
    client = client_context("localhost", ca=certs[2])
    conn = client.connection()
    alert = SSL.Error([("SSL routines", "", "tls alert handshake failure")])
    assert type(client.translate_error(conn, alert)) is HandshakeFailed


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_client_certificate_given(
    certs: tuple[bytes, bytes, bytes], client_certs: tuple[bytes, bytes, bytes], version: str
) -> None:
    cert, key, ca = certs
    ccert, ckey, cca = client_certs
    server = server_context(cert, key, client_ca=cca)
    client = client_context("localhost", ca=ca, client_cert=(ccert, ckey))
    if version == "TLSv1.2":
        tls12_only(client)
    pair = Pair(client, server)
    assert pair.ok, (pair.client_error, pair.server_error)
    assert pair.client.get_protocol_version_name() == version
    server.check_peer(pair.server)
    peer = pair.server.get_peer_certificate(as_cryptography=True)
    assert peer is not None and peer.subject.rfc4514_string() == "CN=client.example"
    client.check_peer(pair.client)


def test_client_certificate_from_an_unknown_authority(
    certs: tuple[bytes, bytes, bytes], client_certs: tuple[bytes, bytes, bytes]
) -> None:
    cert, key, ca = certs
    stranger_cert, stranger_key, _ = self_signed("stranger")
    server = server_context(cert, key, client_ca=client_certs[2])
    client = client_context("localhost", ca=ca, client_cert=(stranger_cert, stranger_key))
    pair = Pair(client, server)
    err = pair.server_failure()
    assert type(err) is UnknownCA
    assert "client certificate" in str(err) and "CN=stranger" in str(err)
    assert type(pair.client_failure()) is UnknownCA  # the server's alert


def test_server_sends_the_accepted_authorities(
    certs: tuple[bytes, bytes, bytes], client_certs: tuple[bytes, bytes, bytes]
) -> None:
    cert, key, ca = certs
    cca = client_certs[2]
    ccert, ckey, _ = client_certs
    server = server_context(cert, key, client_ca=cca)
    pair = Pair(client_context("localhost", ca=ca, client_cert=(ccert, ckey)), server)
    assert pair.ok
    names = pair.client.get_client_ca_list(as_cryptography=True)
    assert names == [x509.load_pem_x509_certificate(cca).subject]


def test_check_peer_on_the_server_side_without_client_ca(
    certs: tuple[bytes, bytes, bytes],
) -> None:
    cert, key, ca = certs
    server = server_context(cert, key)
    pair = Pair(client_context("localhost", ca=ca), server)
    assert pair.ok
    server.check_peer(pair.server)  # nothing to check


# ---- verification off


def test_verify_off_warns_once_per_context(
    certs: tuple[bytes, bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key, _ = certs
    server = server_context(cert, key)
    caplog.set_level(logging.WARNING, logger="netshell.tls")
    client = client_context("untrusted.example", verify=False)
    assert not caplog.records  # nothing until it is used
    for _ in range(3):
        pair = Pair(client, server)
        assert pair.ok  # an unknown CA and the wrong name are both let through
        client.check_peer(pair.client)  # a no-op
    warnings = [r for r in caplog.records if r.name == "netshell.tls"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "untrusted.example" in warnings[0].getMessage()
    assert "OFF" in warnings[0].getMessage()
    Pair(client_context("second.example", verify=False), server)
    warnings = [r for r in caplog.records if r.name == "netshell.tls"]
    assert len(warnings) == 2
    assert "second.example" in warnings[1].getMessage()


def test_verify_on_does_not_warn(
    certs: tuple[bytes, bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key, ca = certs
    caplog.set_level(logging.DEBUG, logger="netshell.tls")
    assert Pair(client_context("localhost", ca=ca), server_context(cert, key)).ok
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---- ALPN


@pytest.mark.parametrize(
    ("server_protos", "client_protos", "expected"),
    [
        (["h2", "http/1.1"], ["http/1.1"], b"http/1.1"),
        (["h2", "http/1.1"], ["http/1.1", "h2"], b"h2"),  # the server's preference wins
        (["h2"], ["http/1.1"], b""),  # nothing in common: no ALPN, no failure
        (["h2"], None, b""),
        (None, ["h2"], b""),
    ],
)
def test_alpn(
    certs: tuple[bytes, bytes, bytes],
    server_protos: list[str] | None,
    client_protos: list[str] | None,
    expected: bytes,
) -> None:
    cert, key, ca = certs
    server = server_context(cert, key, alpn=server_protos)
    client = client_context("localhost", ca=ca, alpn=client_protos)
    assert server.alpn == server_protos and client.alpn == client_protos
    pair = Pair(client, server)
    assert pair.ok
    assert pair.client.get_alpn_proto_negotiated() == expected
    assert pair.server.get_alpn_proto_negotiated() == expected


def test_alpn_must_be_a_list(certs: tuple[bytes, bytes, bytes]) -> None:
    with pytest.raises(TypeError, match="list"):
        client_context("localhost", alpn="h2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 to 255"):
        server_context(certs[0], certs[1], alpn=[""])


# ---- versions


def test_tls13_only_server_refuses_a_tls12_client(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    server = server_context(cert, key, min_version="TLSv1.3")
    pair = Pair(tls12_only(client_context("localhost", ca=ca)), server)
    assert not pair.ok
    for err in (pair.server_failure(), pair.client_failure()):
        assert type(err) is HandshakeFailed
        assert "version" in str(err) or "protocol" in str(err)
    assert "localhost" in str(pair.client_failure())
    # and a TLS 1.3 client is served
    pair = Pair(client_context("localhost", ca=ca), server)
    assert pair.ok and pair.server.get_protocol_version_name() == "TLSv1.3"


def test_default_minimum_is_tls12(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    pair = Pair(tls12_only(client_context("localhost", ca=ca)), server_context(cert, key))
    assert pair.ok and pair.server.get_protocol_version_name() == "TLSv1.2"


def test_bad_min_version(certs: tuple[bytes, bytes, bytes]) -> None:
    with pytest.raises(ValueError, match=r"TLSv1\.2, TLSv1\.3"):
        server_context(certs[0], certs[1], min_version="TLSv1.1")


# ---- PEM in every form


@pytest.mark.parametrize("form", ["bytes", "str", "path-str", "pathlike"])
def test_pem_as_bytes_text_or_path(
    tmp_path: Path,
    certs: tuple[bytes, bytes, bytes],
    client_certs: tuple[bytes, bytes, bytes],
    form: str,
) -> None:
    def given(name: str, pem: bytes) -> object:
        if form == "bytes":
            return pem
        if form == "str":
            return pem.decode()
        path = tmp_path / name
        path.write_bytes(pem)
        return str(path) if form == "path-str" else path

    cert, key, ca = certs
    ccert, ckey, cca = client_certs
    server = server_context(given("c", cert), given("k", key), client_ca=given("cca", cca))
    client = client_context(
        "localhost", ca=given("ca", ca), client_cert=(given("cc", ccert), given("ck", ckey))
    )
    pair = Pair(client, server)
    assert pair.ok
    client.check_peer(pair.client)


def test_ca_bundle_with_several_authorities(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    bundle = self_signed()[2] + ca + self_signed()[2]
    assert Pair(client_context("localhost", ca=bundle), server_context(cert, key)).ok
    # the same authority twice is not an error
    assert Pair(client_context("localhost", ca=ca + ca), server_context(cert, key)).ok


@pytest.mark.parametrize("how", ["chain", "concatenated"])
def test_intermediate_chain(how: str) -> None:
    root = make_ca("root")
    intermediate = make_ca("intermediate", issuer=root)
    cert, key = make_leaf(intermediate, "localhost")
    if how == "chain":
        server = server_context(cert, key, chain=_pem(intermediate[0]))
    else:
        server = server_context(cert + _pem(intermediate[0]), key)
    client = client_context("localhost", ca=_pem(root[0]))
    pair = Pair(client, server)
    assert pair.ok, (pair.client_error, pair.server_error)
    client.check_peer(pair.client)
    # without the intermediate the client cannot build the chain
    pair = Pair(client, server_context(cert, key))
    assert type(pair.client_failure()) is UnknownCA


# ---- bad inputs


def test_key_not_matching_the_certificate(certs: tuple[bytes, bytes, bytes]) -> None:
    other_key = self_signed()[1]
    with pytest.raises(ValueError, match="does not match") as info:
        server_context(certs[0], other_key)
    assert "CN=localhost" in str(info.value)
    with pytest.raises(ValueError, match="does not match"):
        client_context("localhost", client_cert=(certs[0], other_key))


def test_garbage_pem(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, _ = certs
    with pytest.raises(ValueError, match="not PEM"):
        server_context(b"garbage", key)
    broken = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError, match="server certificate"):
        server_context(broken, key)
    broken_key = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError, match="server key"):
        server_context(cert, broken_key)
    with pytest.raises(ValueError, match="server key"):
        server_context(cert, cert)  # a certificate where the key should be
    with pytest.raises(ValueError, match="client_ca"):
        server_context(cert, key, client_ca=b"-----BEGIN nothing")
    with pytest.raises(ValueError, match="ca"):
        client_context("localhost", ca="-----BEGIN CERTIFICATE-----\nxx\n")
    with pytest.raises(TypeError, match="PEM"):
        server_context(42, key)  # type: ignore[arg-type]


def test_encrypted_key_is_refused(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, _ = certs
    loaded = serialization.load_pem_private_key(key, password=None)
    encrypted = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="encrypted"):
        server_context(cert, encrypted)


def test_missing_and_unreadable_files(tmp_path: Path, certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, _ = certs
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match="cannot read") as info:
        server_context(str(missing), key)
    assert "nope.pem" in str(info.value)
    with pytest.raises(ValueError, match="cannot read"):
        client_context("localhost", ca=missing)
    with pytest.raises(ValueError, match="cannot read"):
        server_context(cert, tmp_path)  # a directory
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    with pytest.raises(ValueError, match="not a PEM file"):
        server_context(not_pem, key)


# ---- translate_error and reprs


def test_translate_error_for_other_failures(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    client = client_context("localhost", ca=ca)
    conn = client.connection()
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        pass
    conn.bio_write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # not a TLS server
    with pytest.raises(SSL.Error) as info:
        conn.do_handshake()
    err = client.translate_error(conn, info.value)
    assert type(err) is HandshakeFailed
    assert "localhost" in str(err) and "TLS" in str(err)
    assert err.__cause__ is info.value

    conn = client.connection()
    eof = SSL.SysCallError(-1, "Unexpected EOF")
    err = client.translate_error(conn, eof)
    assert type(err) is HandshakeFailed and "closed" in str(err)

    server = server_context(cert, key)
    sconn = server.connection()
    sconn.bio_write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(SSL.Error) as info:
        sconn.do_handshake()
    err = server.translate_error(sconn, info.value)
    assert type(err) is HandshakeFailed and "HTTP" in str(err)

    # a failure after the handshake: a plain TLSError
    pair = Pair(client_context("localhost", ca=ca), server_context(cert, key))
    assert pair.ok
    pair.server.send(b"hello")
    record = bytearray(pair.server.bio_read(65536))
    record[-3] ^= 1  # tampered with on the way
    pair.client.bio_write(bytes(record))
    with pytest.raises(SSL.Error) as info:
        pair.client.recv(100)
    err = client.translate_error(pair.client, info.value)
    assert type(err) is TLSError
    assert str(err).startswith("TLS connection with localhost failed: ")

    already = UnknownCA("x")
    assert client.translate_error(conn, already) is already


def test_reprs(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    assert repr(server_context(cert, key)) == "<TLSContext server, no client certificates>"
    assert (
        repr(server_context(cert, key, client_ca=ca, alpn=["h2"]))
        == "<TLSContext server, client certificates required, alpn ['h2']>"
    )
    assert (
        repr(client_context("localhost", ca=ca)) == "<TLSContext client for 'localhost', verify on>"
    )
    assert (
        repr(client_context("[::1]", verify=False)) == "<TLSContext client for '::1', verify OFF>"
    )


def test_attributes(certs: tuple[bytes, bytes, bytes]) -> None:
    cert, key, ca = certs
    server = server_context(cert, key)
    assert server.server_side and server.hostname is None and not server.verify
    assert server.alpn is None and isinstance(server.ssl_context, SSL.Context)
    assert server_context(cert, key, client_ca=ca).verify
    client = client_context("localhost", ca=ca, alpn=["http/1.1"])
    assert not client.server_side and client.hostname == "localhost" and client.verify
    assert client.alpn == ["http/1.1"]
    assert client.ssl_context.get_verify_mode() == SSL.VERIFY_PEER
    assert client_context("x", verify=False).ssl_context.get_verify_mode() == SSL.VERIFY_NONE
    assert server_context(cert, key, client_ca=ca).ssl_context.get_verify_mode() == (
        SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    )
