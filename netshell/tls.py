"""TLS contexts for servers and clients, and throwaway certificates.

Safe by default: a client context verifies the peer's certificate chain (against
the system's trust store, or the certificates you give it) *and* the host name
or IP address it connected to; turning that off is explicit and logged. A
server context can ask for, and verify, client certificates.

:func:`server_context` and :func:`client_context` return a :class:`TLSContext`,
which makes pyOpenSSL connections on memory BIOs (the TLS layer feeds them the
bytes of any transport), checks the peer's identity after the handshake
(:meth:`TLSContext.check_peer`) and turns OpenSSL's errors into typed ones
(:meth:`TLSContext.translate_error`):

=============================  ==========================================
``HostnameMismatch``           valid certificate, but for another name
``UnknownCA``                  the chain leads to no trusted authority
``CertificateExpired``         a certificate in the chain has expired
``CertificateNotYetValid``     a certificate is not valid yet
``TLSVerificationError``       any other refusal of a certificate
``ClientCertificateRequired``  the server wanted a client certificate
``HandshakeFailed``            everything else (versions, ciphers, hang-up)
=============================  ==========================================

All of them are :class:`TLSError`, a :class:`~netshell.errors.NetshellError`.

:func:`self_signed` makes a throwaway authority and a certificate signed by it,
so a server can start in one line and a client (or a test) can trust it:

>>> cert, key, ca = self_signed("localhost")
>>> server = server_context(cert, key)
>>> client = client_context("localhost", ca=ca)
>>> client
<TLSContext client for 'localhost', verify on>
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import service_identity
import service_identity.pyopenssl
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto

from netshell.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    ClientCertificateRequired,
    HandshakeFailed,
    HostnameMismatch,
    TLSError,
    TLSVerificationError,
    UnknownCA,
)

__all__ = [
    "CertificateExpired",
    "CertificateNotYetValid",
    "ClientCertificateRequired",
    "HandshakeFailed",
    "HostnameMismatch",
    "TLSContext",
    "TLSError",
    "TLSVerificationError",
    "UnknownCA",
    "VerifyRecord",
    "client_context",
    "self_signed",
    "self_signed_files",
    "server_context",
]

log = logging.getLogger("netshell.tls")

#: PEM as bytes or text, or the path of a PEM file
PEMSource: TypeAlias = "bytes | str | os.PathLike[str]"

_VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}

# Forward secrecy and AEAD only for TLS 1.2 (TLS 1.3 suites are all fine).
_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!DSS"

# OpenSSL's X509_V_ERR_* codes that this module tells apart.
_X509_NAMES = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    24: "invalid CA certificate",
    25: "path length constraint exceeded",
    26: "unsupported certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
    62: "hostname mismatch",
    64: "IP address mismatch",
}
_UNKNOWN_CA_CODES = frozenset({2, 18, 19, 20, 21, 27})
_NOT_YET_VALID = 9
_EXPIRED = 10
_HOST_MISMATCH_CODES = frozenset({62, 63, 64})


# ---- reading PEM


def _read_pem(source: Any, what: str) -> bytes:
    """PEM bytes from PEM bytes, PEM text, or a path; ValueError naming ``what`` otherwise."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if b"-----BEGIN" not in data:
            raise ValueError(f"{what}: the bytes given are not PEM (no '-----BEGIN' line)")
        return data
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode("ascii", "replace")
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError(f"{what}: cannot read {path!r}: {e.strerror or e}") from e
        if b"-----BEGIN" not in data:
            raise ValueError(f"{what}: {path!r} is not a PEM file (no '-----BEGIN' line)")
        return data
    raise TypeError(f"{what}: expected PEM bytes or text, or a path, not {type(source).__name__}")


def _load_certs(source: Any, what: str) -> list[x509.Certificate]:
    data = _read_pem(source, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ValueError(f"{what}: no valid PEM certificate found ({e})") from e
    if not certs:  # pragma: no cover - cryptography raises instead
        raise ValueError(f"{what}: no PEM certificate found")
    return certs


def _load_key(source: Any, what: str) -> Any:
    data = _read_pem(source, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as e:  # encrypted, and no password given
        raise ValueError(f"{what}: encrypted private keys are not supported ({e})") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"{what}: not a valid PEM private key ({e})") from e
    return key


def _use_cert_and_key(
    ctx: SSL.Context, cert: Any, key: Any, chain: Any, what: str
) -> list[x509.Certificate]:
    """Load a certificate (the first of ``cert``), its chain and key into ``ctx``."""
    certs = _load_certs(cert, f"{what} certificate")
    extra = certs[1:]
    if chain is not None:
        extra += _load_certs(chain, f"{what} chain")
    private_key = _load_key(key, f"{what} key")
    try:
        ctx.use_certificate(certs[0])
        ctx.use_privatekey(private_key)
        ctx.check_privatekey()
    except (SSL.Error, TypeError, ValueError) as e:
        raise ValueError(
            f"{what} key does not match the certificate "
            f"(subject {_subject(certs[0])}): {_reason_text(e)}"
        ) from e
    for c in extra:
        ctx.add_extra_chain_cert(c)
    return certs


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string() or "(empty name)"
    except Exception:  # pragma: no cover - a name cryptography cannot print
        return "(unreadable name)"


def _subject(cert: x509.Certificate | None) -> str:
    return "(none)" if cert is None else _name(cert.subject)


# ---- verification records


class VerifyRecord:
    """What one connection's certificate verification saw; the connection's app data.

    :meth:`TLSContext.connection` attaches one to each connection
    (``conn.get_app_data()``): it holds the host name checked and SNI sent
    (``hostname``, None on the server side) and the *first* error the chain
    verification reported: ``code`` (OpenSSL's X509_V_ERR_* number, None when
    there was none), ``depth`` (0 is the peer's own certificate), ``subject``
    and ``issuer`` (of the certificate at fault, RFC 4514) and its validity
    window (``not_before``, ``not_after``). ``owner``
    is free for the TLS layer to keep its own object on (the transport).

    >>> record = VerifyRecord("localhost")
    >>> record
    <VerifyRecord for 'localhost': no error>
    >>> record.note(10, 0, None)
    >>> record.code, record.reason
    (10, 'certificate has expired')
    """

    __slots__ = (
        "hostname",
        "code",
        "depth",
        "subject",
        "issuer",
        "not_before",
        "not_after",
        "owner",
    )

    def __init__(self, hostname: str | None) -> None:
        self.hostname = hostname
        self.code: int | None = None
        self.depth: int | None = None
        self.subject: str | None = None
        self.issuer: str | None = None
        self.not_before: datetime.datetime | None = None
        self.not_after: datetime.datetime | None = None
        self.owner: Any = None

    def note(self, code: int, depth: int, cert: x509.Certificate | None) -> None:
        """Keep ``code`` at ``depth`` for ``cert``, unless an error was kept already."""
        if self.code is not None:
            return
        self.code, self.depth = code, depth
        if cert is not None:
            self.subject = _subject(cert)
            self.issuer = _name(cert.issuer)
            self.not_before = cert.not_valid_before_utc
            self.not_after = cert.not_valid_after_utc

    @property
    def reason(self) -> str | None:
        """OpenSSL's words for ``code`` (or ``"X509 error N"``), None when no error."""
        if self.code is None:
            return None
        return _X509_NAMES.get(self.code, f"X509 verification error {self.code}")

    def __repr__(self) -> str:
        what = "no error" if self.code is None else f"{self.reason} at depth {self.depth}"
        return f"<VerifyRecord for {self.hostname!r}: {what}>"


def _verify_callback(conn: SSL.Connection, cert: Any, code: int, depth: int, ok: int) -> bool:
    """OpenSSL's verdict stands; the first refusal is written down for translate_error."""
    if not ok:
        record = conn.get_app_data()
        if isinstance(record, VerifyRecord) and record.code is None:
            try:
                crypto_cert = cert.to_cryptography()
            except Exception:  # pragma: no cover - keep verifying whatever happens
                crypto_cert = None
            record.note(code, depth, crypto_cert)
    return bool(ok)


# ---- error translation helpers


def _reasons(exc: BaseException) -> list[str]:
    """The reason strings of an OpenSSL error (``SSL.Error.args[0]`` is a list of triples)."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if args and isinstance(args[0], list):
        out = []
        for item in args[0]:
            if isinstance(item, tuple) and item:
                out.append(str(item[-1]))
            else:
                out.append(str(item))
        return out
    if isinstance(exc, SSL.SysCallError):
        return [str(args[1])] if len(args) > 1 else [str(exc)]
    return [str(exc)] if str(exc) else [type(exc).__name__]


def _reason_text(exc: BaseException) -> str:
    return "; ".join(_reasons(exc)) or type(exc).__name__


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _clean_host(hostname: str | None) -> str | None:
    if hostname is None:
        return None
    host = hostname.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or None


# ---- the context


class TLSContext:
    """A pyOpenSSL context with the policy that goes with it; made by the factories.

    ``server_side`` says which end it serves, ``hostname`` is (for a client)
    the name verified and sent as SNI, ``verify`` whether the peer's
    certificate is verified (for a server: whether client certificates are
    required), ``alpn`` the application protocols offered, in preference
    order, and ``ssl_context`` the ``OpenSSL.SSL.Context`` itself.

    One context serves any number of connections. A handshake in memory:

    >>> cert, key, ca = self_signed("localhost")
    >>> server, client = server_context(cert, key), client_context("localhost", ca=ca)
    >>> s, c = server.connection(), client.connection()
    >>> for _ in range(3):
    ...     for a, b in ((c, s), (s, c)):
    ...         try:
    ...             a.do_handshake()
    ...         except SSL.WantReadError:
    ...             pass
    ...         try:
    ...             _ = b.bio_write(a.bio_read(65536))
    ...         except SSL.WantReadError:  # nothing to send
    ...             pass
    >>> c.get_protocol_version_name(), s.get_protocol_version_name()
    ('TLSv1.3', 'TLSv1.3')
    >>> client.check_peer(c)  # the host name matches: no exception
    >>> s.get_servername()
    b'localhost'
    """

    def __init__(
        self,
        ssl_context: SSL.Context,
        *,
        server_side: bool,
        hostname: str | None = None,
        verify: bool = True,
        alpn: Sequence[str] | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.server_side = server_side
        self.hostname = hostname
        self.verify = verify
        self.alpn = list(alpn) if alpn is not None else None
        self._warned = False
        self._lock = threading.Lock()
        self._own_cert = False  # a certificate of our own is loaded (the factories say)

    def __repr__(self) -> str:
        side = "server" if self.server_side else f"client for {self.hostname!r}"
        if self.server_side:
            verify = "client certificates required" if self.verify else "no client certificates"
        else:
            verify = "verify on" if self.verify else "verify OFF"
        alpn = f", alpn {self.alpn}" if self.alpn else ""
        return f"<TLSContext {side}, {verify}{alpn}>"

    # -- connections

    def connection(self, hostname: str | None = None) -> SSL.Connection:
        """A new connection on memory BIOs, ready for its handshake.

        A server's is in accept state; a client's in connect state, sending
        ``hostname`` (default: the context's) as SNI unless it is an IP
        address. The connection's app data is its :class:`VerifyRecord`.

        >>> cert, key, ca = self_signed("localhost")
        >>> conn = client_context("localhost", ca=ca).connection("127.0.0.1")
        >>> conn.get_app_data()
        <VerifyRecord for '127.0.0.1': no error>
        """
        conn = SSL.Connection(self.ssl_context, None)
        if self.server_side:
            conn.set_app_data(VerifyRecord(None))
            conn.set_accept_state()
            return conn
        host = _clean_host(hostname if hostname is not None else self.hostname)
        if self.verify and host is None:
            raise ValueError("a TLS client that verifies needs a host name to verify")
        if not self.verify:
            self._warn_once(host)
        conn.set_app_data(VerifyRecord(host))
        if host is not None and not _is_ip(host):
            sni = host.rstrip(".")
            try:
                conn.set_tlsext_host_name(sni.encode("idna"))
            except UnicodeError as e:
                raise ValueError(f"host name {host!r} cannot be sent as SNI: {e}") from e
        conn.set_connect_state()
        return conn

    def _warn_once(self, host: str | None) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        log.warning(
            "TLS certificate verification is OFF for connections to %s: "
            "anyone on the path can pretend to be that host",
            host or "(no host name)",
        )

    # -- after the handshake

    def _host_of(self, conn: SSL.Connection, hostname: str | None) -> str | None:
        if hostname is not None:
            return _clean_host(hostname)
        record = conn.get_app_data()
        if isinstance(record, VerifyRecord) and record.hostname is not None:
            return record.hostname
        return _clean_host(self.hostname)

    def check_peer(self, conn: SSL.Connection, hostname: str | None = None) -> None:
        """After the handshake, check that the peer is who it should be.

        For a client that verifies: the certificate must be valid for the
        host name or IP address (``hostname``, default the one the connection
        was made for), checked with service_identity; raises
        :class:`HostnameMismatch` otherwise. For a server requiring client
        certificates: the client must have sent one. Otherwise nothing.

        >>> client_context("example.org", verify=False).check_peer(None)  # verify off
        """
        if not self.verify:
            return
        if self.server_side:
            if conn.get_peer_certificate(as_cryptography=True) is None:
                raise ClientCertificateRequired(
                    "the client sent no certificate, and this server requires one"
                )
            return
        host = self._host_of(conn, hostname)
        cert = conn.get_peer_certificate(as_cryptography=True)
        if host is None:
            raise HostnameMismatch("no host name to check the server's certificate against")
        if cert is None:
            raise TLSVerificationError(f"{host} presented no certificate", host=host)
        try:
            if _is_ip(host):
                service_identity.pyopenssl.verify_ip_address(conn, host)
            else:
                service_identity.pyopenssl.verify_hostname(conn, host)
        except (service_identity.VerificationError, service_identity.CertificateError) as e:
            names = _san_names(cert)
            valid_for = ", ".join(names) if names else "no names (it has no subjectAltName)"
            raise HostnameMismatch(
                f"the server's certificate is not valid for {host!r}: it is for "
                f"{valid_for} (subject {_subject(cert)})",
                host=host,
                subject=_subject(cert),
            ) from e

    # -- errors

    def translate_error(self, conn: SSL.Connection, exc: BaseException) -> TLSError:
        """Turn an OpenSSL error from this connection into a typed :class:`TLSError`.

        Meant for a failed handshake, and for reads and writes after it (in
        TLS 1.3 a client learns only at its first read that the server wanted
        its certificate). A failure after the handshake that is not about
        certificates is a plain :class:`TLSError`. The result has ``exc`` as
        its ``__cause__``; the caller raises it.

        >>> ctx = client_context("localhost")
        >>> conn = ctx.connection()
        >>> failure = SSL.Error([("SSL routines", "", "wrong version number")])
        >>> err = ctx.translate_error(conn, failure)
        >>> err
        HandshakeFailed('TLS handshake with localhost failed: wrong version number (is the peer
        speaking TLS?)')
        >>> err.__cause__
        Error([('SSL routines', '', 'wrong version number')])
        """
        if isinstance(exc, TLSError):
            return exc
        err = self._translate(conn, exc)
        err.__cause__ = exc
        return err

    def _translate(self, conn: SSL.Connection, exc: BaseException) -> TLSError:
        record = conn.get_app_data() if conn is not None else None
        if not isinstance(record, VerifyRecord):
            record = VerifyRecord(None if self.server_side else _clean_host(self.hostname))
        host = record.hostname
        peer = "the client" if self.server_side else (host or "the server")
        reasons = [r.lower() for r in _reasons(exc)]
        text = _reason_text(exc)

        def has(*words: str) -> bool:
            return any(w in r for r in reasons for w in words)

        # 1. Our own verification refused the peer's certificate chain.
        if record.code is not None:
            return _verification_error(record, peer, host, self.server_side)

        # 2. The peer sent no certificate and we (a server) require one.
        if has("peer did not return a certificate"):
            return ClientCertificateRequired(
                "the client sent no certificate, and this server requires one", host=host
            )

        # 3. Alerts: the peer refused something of ours.
        if has("alert certificate required"):
            return ClientCertificateRequired(
                f"{peer} requires a client certificate"
                + ("" if self._own_cert else ", and none is configured")
                + f" ({text})",
                host=host,
            )
        if has("alert handshake failure") and self._cert_probably_wanted(conn):
            return ClientCertificateRequired(
                f"{peer} asked for a client certificate and ended the handshake when "
                f"none was sent ({text})",
                host=host,
            )
        if has("alert unknown ca"):
            return UnknownCA(
                f"{peer} does not trust the authority that signed our certificate ({text})",
                host=host,
            )
        if has("alert certificate expired"):
            return CertificateExpired(
                f"{peer} says our certificate has expired ({text})", host=host
            )
        if has(
            "alert bad certificate",
            "alert certificate unknown",
            "alert unsupported certificate",
            "alert certificate revoked",
        ):
            return TLSVerificationError(f"{peer} refused our certificate ({text})", host=host)

        # 4. OpenSSL refused the chain without our callback seeing it (not expected).
        if has("certificate verify failed"):
            return TLSVerificationError(
                f"the certificate of {peer} failed verification ({text})", host=host
            )

        # 5. Everything else: after the handshake, a plain TLSError.
        if _handshake_done(conn):
            return TLSError(f"TLS connection with {peer} failed: {text}", host=host)
        if isinstance(exc, SSL.SysCallError | SSL.ZeroReturnError):
            return HandshakeFailed(
                f"TLS handshake with {peer} failed: the connection was closed ({text})",
                host=host,
            )
        if has("http request"):
            text += " (the peer speaks plain HTTP, not TLS)"
        elif has("wrong version number", "packet length too long", "record layer failure"):
            text += " (is the peer speaking TLS?)"
        elif has("unsupported protocol", "protocol version", "no protocols available"):
            text += " (no TLS version in common)"
        return HandshakeFailed(f"TLS handshake with {peer} failed: {text}", host=host)

    def _cert_probably_wanted(self, conn: SSL.Connection | None) -> bool:
        """Client side: did the server ask for a certificate that we did not have?

        TLS 1.2 servers answer a missing client certificate with a plain
        "handshake failure" alert; a CertificateRequest had come first, which
        shows as the list of authorities the server accepts.
        """
        if self.server_side or conn is None or self._own_cert:
            return False
        try:
            return bool(conn.get_client_ca_list())
        except Exception:  # pragma: no cover - defensive
            return False


def _handshake_done(conn: SSL.Connection | None) -> bool:
    """The peer's Finished message arrived: the handshake is over (or all but over)."""
    if conn is None:
        return False
    try:
        return conn.get_peer_finished() is not None
    except Exception:  # pragma: no cover - defensive
        return False


def _verification_error(
    record: VerifyRecord, peer: str, host: str | None, server_side: bool
) -> TLSVerificationError:
    code = record.code
    assert code is not None
    subject = record.subject
    if record.depth:
        chain = "the client certificate's chain" if server_side else f"the chain of {peer}"
        whose = f"a certificate in {chain} (depth {record.depth})"
    else:
        whose = "the client certificate" if server_side else f"the certificate of {peer}"
    about = f" (subject {subject})" if subject else ""
    kw: dict[str, Any] = {"host": host, "subject": subject, "verify_code": code}
    if code == _EXPIRED:
        when = f" on {record.not_after:%Y-%m-%d %H:%M:%S} UTC" if record.not_after else ""
        return CertificateExpired(f"{whose} expired{when}{about}", **kw)
    if code == _NOT_YET_VALID:
        when = f" until {record.not_before:%Y-%m-%d %H:%M:%S} UTC" if record.not_before else ""
        return CertificateNotYetValid(f"{whose} is not valid yet{when}{about}", **kw)
    if code in _UNKNOWN_CA_CODES:
        issuer = f", issuer {record.issuer}" if record.issuer else ""
        about = f" (subject {subject}{issuer})" if subject else ""
        return UnknownCA(
            f"{whose} is not signed by a trusted authority: {record.reason}{about}", **kw
        )
    if code in _HOST_MISMATCH_CODES:
        return HostnameMismatch(f"{whose} is not valid for {host!r}{about}", **kw)
    return TLSVerificationError(f"{whose} was refused: {record.reason}{about}", **kw)


def _san_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


# ---- the factories


def _base_context(method: int, min_version: str) -> SSL.Context:
    try:
        version = _VERSIONS[min_version]
    except KeyError:
        raise ValueError(
            f"min_version must be one of {', '.join(_VERSIONS)}, not {min_version!r}"
        ) from None
    ctx = SSL.Context(method)
    ctx.set_min_proto_version(version)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    ctx.set_cipher_list(_CIPHERS)
    return ctx


def _alpn_list(alpn: Iterable[str] | None) -> list[str] | None:
    if alpn is None:
        return None
    if isinstance(alpn, str | bytes):
        raise TypeError("alpn is a list of protocol names, e.g. ['h2', 'http/1.1']")
    names = [a.decode("ascii") if isinstance(a, bytes) else str(a) for a in alpn]
    for name in names:
        if not name or len(name.encode()) > 255:
            raise ValueError(f"ALPN protocol name {name!r} must be 1 to 255 bytes")
    return names or None


def server_context(
    cert: PEMSource,
    key: PEMSource,
    *,
    chain: PEMSource | None = None,
    client_ca: PEMSource | None = None,
    alpn: Sequence[str] | None = None,
    min_version: str = "TLSv1.2",
) -> TLSContext:
    """A context for TLS servers.

    ``cert`` and ``key`` are PEM (bytes or text) or paths to PEM files; a
    ``cert`` holding several certificates is the server's followed by its
    chain, and ``chain`` adds more intermediate certificates. ``client_ca``
    (one or more authorities, same forms) makes the server require a client
    certificate signed by one of them. ``alpn`` lists the protocols spoken, in
    the server's preference order (a client offering none of them gets no
    ALPN, not an error). ``min_version`` is ``"TLSv1.2"`` or ``"TLSv1.3"``.

    A key that does not match the certificate, a file that cannot be read or
    PEM that does not parse raise ValueError.

    >>> cert, key, ca = self_signed("localhost")
    >>> server_context(cert, key, alpn=["h2", "http/1.1"])
    <TLSContext server, no client certificates, alpn ['h2', 'http/1.1']>
    >>> server_context(cert, key, client_ca=ca, min_version="TLSv1.3")
    <TLSContext server, client certificates required>
    >>> server_context(cert, self_signed()[1])
    Traceback (most recent call last):
    ...
    ValueError: server key does not match the certificate (subject CN=localhost): ...
    """
    ctx = _base_context(SSL.TLS_SERVER_METHOD, min_version)
    ctx.set_options(SSL.OP_CIPHER_SERVER_PREFERENCE)
    _use_cert_and_key(ctx, cert, key, chain, "server")
    # A session id context: OpenSSL refuses to resume sessions that verified a client
    # certificate without one.
    ctx.set_session_id(b"netshell")
    verify = client_ca is not None
    if verify:
        authorities = _load_certs(client_ca, "client_ca")
        store = ctx.get_cert_store()
        assert store is not None
        for ca in authorities:
            _add_to_store(store, ca)
            ctx.add_client_ca(ca)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback)
    else:
        ctx.set_verify(SSL.VERIFY_NONE)
    names = _alpn_list(alpn)
    if names:
        ours = [n.encode() for n in names]

        def select(conn: SSL.Connection, offered: list[bytes]) -> Any:
            for proto in ours:
                if proto in offered:
                    return proto
            return SSL.NO_OVERLAPPING_PROTOCOLS

        ctx.set_alpn_select_callback(select)
    context = TLSContext(ctx, server_side=True, hostname=None, verify=verify, alpn=names)
    context._own_cert = True
    return context


def _add_to_store(store: Any, cert: x509.Certificate) -> None:
    try:
        store.add_cert(crypto.X509.from_cryptography(cert))
    except crypto.Error as e:
        # the same authority given twice is not a mistake
        if "already in hash table" not in _reason_text(e).lower():
            raise ValueError(f"cannot trust {_subject(cert)}: {_reason_text(e)}") from e


def _load_system_trust(ctx: SSL.Context) -> None:
    """The system's trust store; certifi's bundle when the system has none and certifi is here."""
    ctx.set_default_verify_paths()
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return
    paths = ssl.get_default_verify_paths()
    have = (paths.cafile and os.path.isfile(paths.cafile)) or (
        paths.capath and os.path.isdir(paths.capath) and any(os.scandir(paths.capath))
    )
    if have:
        return
    try:
        import certifi
    except ImportError:
        log.debug("no system trust store found, and certifi is not installed")
        return
    ctx.load_verify_locations(certifi.where())


def client_context(
    hostname: str | None,
    *,
    ca: PEMSource | None = None,
    verify: bool = True,
    client_cert: tuple[PEMSource, PEMSource] | None = None,
    alpn: Sequence[str] | None = None,
) -> TLSContext:
    """A context for TLS clients that verifies the server, by default.

    With ``verify`` on, the server's chain must lead to an authority in the
    system's trust store, or, when ``ca`` is given (PEM bytes or text or a
    path, one or several certificates), to one of those only; and after the
    handshake :meth:`TLSContext.check_peer` checks the certificate is for
    ``hostname`` (a DNS name, sent as SNI, or an IP address).
    ``verify=False`` turns all of that off and logs a warning (logger
    ``netshell.tls``) on the context's first connection. ``client_cert`` is a
    ``(cert, key)`` pair for servers that ask for one; ``alpn`` the
    protocols offered, in preference order. TLS 1.2 at least.

    >>> client_context("example.org", alpn=["http/1.1"])
    <TLSContext client for 'example.org', verify on, alpn ['http/1.1']>
    >>> client_context("10.0.0.1", verify=False)
    <TLSContext client for '10.0.0.1', verify OFF>
    >>> client_context("localhost", ca=b"not a certificate")
    Traceback (most recent call last):
    ...
    ValueError: ca: the bytes given are not PEM (no '-----BEGIN' line)
    """
    host = _clean_host(hostname)
    if verify and host is None:
        raise ValueError("client_context needs the host name (or IP address) to verify")
    ctx = _base_context(SSL.TLS_CLIENT_METHOD, "TLSv1.2")
    if verify:
        if ca is None:
            _load_system_trust(ctx)
        else:
            store = ctx.get_cert_store()
            assert store is not None
            for authority in _load_certs(ca, "ca"):
                _add_to_store(store, authority)
        ctx.set_verify(SSL.VERIFY_PEER, _verify_callback)
    else:
        ctx.set_verify(SSL.VERIFY_NONE)
    if client_cert is not None:
        try:
            cert, key = client_cert
        except (TypeError, ValueError):
            raise TypeError("client_cert is a (cert, key) pair") from None
        _use_cert_and_key(ctx, cert, key, None, "client")
    names = _alpn_list(alpn)
    if names:
        ctx.set_alpn_protos([n.encode() for n in names])
    context = TLSContext(ctx, server_side=False, hostname=host, verify=verify, alpn=names)
    context._own_cert = client_cert is not None
    return context


# ---- throwaway certificates


def _host_entries(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in hostnames:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"host names must be non-empty strings, not {name!r}")
        name = _clean_host(name) or name
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        try:
            ascii_name = name.encode("ascii").decode()
        except UnicodeEncodeError:
            try:
                ascii_name = name.encode("idna").decode("ascii")
            except UnicodeError as e:
                raise ValueError(f"host name {name!r} is not valid: {e}") from e
        entries.append(x509.DNSName(ascii_name))
    return entries


def self_signed(*hostnames: str, days: float = 7) -> tuple[bytes, bytes, bytes]:
    """A throwaway authority and a certificate signed by it: ``(cert_pem, key_pem, ca_pem)``.

    The certificate is valid for each of ``hostnames`` (default
    ``"localhost", "127.0.0.1", "::1"``; IP addresses become IP address
    entries), as a server and as a client, from a minute ago for ``days``
    days. The authority is new each call (its key is thrown away), so
    trusting ``ca_pem`` trusts this one certificate. Keys are EC P-256.

    >>> cert, key, ca = self_signed()
    >>> cert.startswith(b"-----BEGIN CERTIFICATE-----"), key.startswith(b"-----BEGIN PRIVATE KEY")
    (True, True)
    >>> leaf = x509.load_pem_x509_certificate(cert)
    >>> leaf.subject.rfc4514_string()
    'CN=localhost'
    >>> san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    >>> [str(n.value) for n in san]
    ['localhost', '127.0.0.1', '::1']
    """
    if not hostnames:
        hostnames = ("localhost", "127.0.0.1", "::1")
    if not days > 0:
        raise ValueError(f"days must be positive, not {days!r}")
    entries = _host_entries(hostnames)
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=1)
    not_after = now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netshell"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"netshell throwaway CA {os.urandom(4).hex()}"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    common_name = str(hostnames[0])[:64]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return (
        leaf.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        ca_cert.public_bytes(serialization.Encoding.PEM),
    )


def self_signed_files(
    directory: str | os.PathLike[str], *hostnames: str, days: float = 7
) -> tuple[Path, Path, Path]:
    """:func:`self_signed`, written to ``cert.pem``, ``key.pem`` and ``ca.pem`` in ``directory``.

    Returns their paths; the key file is readable by its owner only (0600).
    Handy for endpoint strings:

    >>> import tempfile
    >>> cert, key, ca = self_signed_files(tempfile.mkdtemp(), "localhost")
    >>> f"tls:8443:cert={cert}:key={key}"
    'tls:8443:cert=/.../cert.pem:key=/.../key.pem'
    >>> oct(key.stat().st_mode & 0o777)
    '0o600'
    """
    cert_pem, key_pem, ca_pem = self_signed(*hostnames, days=days)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, ca_path = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        f.write(key_pem)
    cert_path.write_bytes(cert_pem)
    ca_path.write_bytes(ca_pem)
    return cert_path, key_path, ca_path
