"""TLS as a layer over any byte stream: a pyOpenSSL connection on memory BIOs.

The layer does no I/O. ``receive(ciphertext)`` returns the plaintext it
yields; ``send(plaintext)`` hands ciphertext to the ``write`` callable it was
given. The stream transport puts one between the socket and the protocol
(``listen_tls``, ``connect_tls``, ``start_tls`` mid-stream); a test can drive
two back to back. Contexts, certificates and the typed errors are in
:mod:`netshell.tls`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from OpenSSL import SSL

__all__ = ["TLSInfo", "TLSLayer"]

_CHUNK = 256 * 1024


def _session_reused(conn: SSL.Connection) -> bool | None:
    """Whether ``conn``'s handshake resumed an earlier session; None if that cannot be told.

    pyOpenSSL has no public way to ask (none up to 26.4, nor in cryptography), so
    this is the one place netshell reaches into pyOpenSSL's internals: OpenSSL's
    ``SSL_session_reused`` through the private ``OpenSSL._util.lib`` binding, on the
    connection's private ``_ssl`` pointer. A pyOpenSSL that drops or renames either
    gives None here, never an error.
    """
    try:
        from OpenSSL._util import lib  # private: see above

        return bool(lib.SSL_session_reused(conn._ssl))
    except Exception:  # not every pyOpenSSL build exposes it
        return None


@dataclass(frozen=True)
class TLSInfo:
    """What a TLS connection negotiated, and who the peer's certificate says it is."""

    version: str
    cipher: str
    alpn: str | None
    sni: str | None
    session_reused: bool | None
    peer_subject: str | None = None
    peer_issuer: str | None = None
    peer_sans: list[str] = field(default_factory=list)
    peer_not_after: datetime.datetime | None = None


class TLSLayer:
    """One TLS connection's engine: ciphertext in and out on one side, plaintext on the other.

    ``context`` is a :class:`netshell.tls.TLSContext`; ``write`` takes the
    ciphertext to send. Plaintext sent before the handshake completes is held
    and sent, in order, right after it.
    """

    def __init__(
        self, context: Any, write: Callable[[bytes], Any], hostname: str | None = None
    ) -> None:
        self.context = context
        self.server_side: bool = context.server_side
        # The name the context was made to verify wins over the address dialled.
        self.hostname = context.hostname or hostname
        self.conn: SSL.Connection = context.connection(self.hostname)
        self._write = write
        self.established = False
        self.close_notify_sent = False
        self.close_notify_received = False
        self._pending: list[bytes] = []

    def start(self) -> None:
        """Begin the handshake (a client sends its hello now). Raises TLSError on failure."""
        if not self.server_side:  # a server can only wait for the client's hello
            self._handshake()

    def receive(self, data: bytes) -> list[bytes]:
        """Take ciphertext from the peer; return the plaintext chunks it completes.

        Raises a :class:`~netshell.TLSError` subclass when the handshake or a
        record fails; alerts for the peer have been handed to ``write`` by then.
        """
        self.conn.bio_write(data)
        if not self.established and not self._handshake():
            return []
        chunks: list[bytes] = []
        while not self.close_notify_received:
            try:
                chunks.append(self.conn.recv(_CHUNK))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self.close_notify_received = True
            except SSL.Error as e:
                self._flush()
                raise self.context.translate_error(self.conn, e) from e
        self._flush()
        return chunks

    def _handshake(self) -> bool:
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return False
        except SSL.Error as e:
            self._flush()
            raise self.context.translate_error(self.conn, e) from e
        self._flush()
        self.context.check_peer(self.conn, self.hostname)
        self.established = True
        pending, self._pending = self._pending, []
        for data in pending:
            self.send(data)
        return True

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` and hand it to ``write`` (held until the handshake is done).

        Raises TypeError for str, RuntimeError after close_notify was sent.
        """
        if isinstance(data, str):
            raise TypeError("TLS sends bytes, not str")
        if self.close_notify_sent:
            raise RuntimeError("send() after the TLS connection was shut down")
        if not self.established:
            self._pending.append(bytes(data))
            return
        view = memoryview(data)
        while view:
            n = self.conn.send(view)
            view = view[n:]
        self._flush()

    def shutdown(self) -> None:
        """Send close_notify (once): nothing more is sent after it."""
        if self.close_notify_sent:
            return
        self.close_notify_sent = True
        try:
            self.conn.shutdown()
        except SSL.Error:
            pass  # a broken connection cannot say goodbye; closing goes on
        self._flush()

    def _flush(self) -> None:
        while True:
            try:
                data = self.conn.bio_read(_CHUNK)
            except SSL.WantReadError:
                return
            if not data:
                return
            self._write(data)
            if len(data) < _CHUNK:
                return  # a memory BIO gives all it holds: a short read emptied it

    def info(self) -> TLSInfo:
        """The negotiated parameters and the peer certificate's details."""
        conn = self.conn
        alpn = conn.get_alpn_proto_negotiated()
        sni = conn.get_servername()
        reused = _session_reused(conn)
        info = TLSInfo(
            version=conn.get_protocol_version_name(),
            cipher=conn.get_cipher_name() or "",
            alpn=alpn.decode() if alpn else None,
            sni=sni.decode() if sni else None,
            session_reused=reused,
        )
        cert = conn.get_peer_certificate()
        if cert is None:
            return info
        c = cert.to_cryptography()
        sans: list[str] = []
        try:
            from cryptography import x509

            ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            sans = [str(v) for v in ext.value.get_values_for_type(x509.DNSName)]
            sans += [str(v) for v in ext.value.get_values_for_type(x509.IPAddress)]
        except Exception:
            pass
        return TLSInfo(
            version=info.version,
            cipher=info.cipher,
            alpn=info.alpn,
            sni=info.sni,
            session_reused=info.session_reused,
            peer_subject=c.subject.rfc4514_string(),
            peer_issuer=c.issuer.rfc4514_string(),
            peer_sans=sans,
            peer_not_after=c.not_valid_after_utc,
        )

    def __repr__(self) -> str:
        side = "server" if self.server_side else "client"
        state = "established" if self.established else "handshaking"
        if self.close_notify_sent or self.close_notify_received:
            state = "closing"
        return f"<TLSLayer {side} {self.hostname or ''} {state}>"
