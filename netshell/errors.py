"""The errors of connections, shared by transports and protocols.

They form a tree, so a caller can catch at the depth it cares about:
``NetshellError`` > ``ConnectionClosed`` > ``ConnectionDone`` (a clean close)
or ``ConnectionLost`` (anything else); ``NetshellError`` > ``ConnectError`` >
``ConnectionRefused``, ``ConnectTimeout`` or ``DNSLookupError``; ``NetshellError`` >
``ListenError`` > ``AddressInUse`` (a socket that cannot be bound). Each is also
a subclass of the matching builtin (``ConnectionError``,
``ConnectionRefusedError``, ``TimeoutError``, ``OSError``), so code that catches
those works.

Their messages are meant to be shown as they are, on one line: ``cannot connect
to 127.0.0.1:9: connection refused``, ``cannot listen on 127.0.0.1:8000: address
already in use``, ``cannot resolve 'nosuch.invalid': Name or service not known``.

TLS failures (raised by ``netshell.tls`` and the TLS layer) have their own
branch: ``NetshellError`` > ``TLSError`` > ``HandshakeFailed``,
``ClientCertificateRequired`` or ``TLSVerificationError`` > ``HostnameMismatch``,
``UnknownCA``, ``CertificateExpired`` or ``CertificateNotYetValid``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AddressInUse",
    "CertificateExpired",
    "CertificateNotYetValid",
    "ClientCertificateRequired",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionRefused",
    "DNSLookupError",
    "HandshakeFailed",
    "HostnameMismatch",
    "ListenError",
    "NetshellError",
    "TLSError",
    "TLSVerificationError",
    "UnknownCA",
]


class NetshellError(Exception):
    """The base of netshell's own errors."""


class ConnectionClosed(NetshellError, ConnectionError):
    """A connection ended; see its two kinds below."""


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly (by either side)."""


class ConnectionLost(ConnectionClosed):
    """The connection ended uncleanly: reset, aborted, or cut; the cause is chained."""


class ConnectError(NetshellError, ConnectionError):
    """An outgoing connection could not be made; the subclass says why.

    The original ``OSError`` (if any) is the ``__cause__``.
    """


class ConnectionRefused(ConnectError, ConnectionRefusedError):
    """Nothing listens at that address (the peer answered with a reset)."""


class ConnectTimeout(ConnectError, TimeoutError):
    """The connection was not made within the timeout."""


class DNSLookupError(ConnectError):
    """The host name could not be resolved to an address."""


class ListenError(NetshellError, OSError):
    """A socket could not be bound (or made to listen); ``errno`` says why.

    The message names the address: ``cannot listen on 127.0.0.1:8000: permission
    denied``. ``host`` and ``port`` (or ``path``, for a Unix socket) are the
    address asked for, ``kind`` "tcp", "udp" or "unix" (when known); the original
    ``OSError`` is the ``__cause__``.
    """

    def __init__(
        self,
        errno: int | None,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(errno, message)
        self.host = host
        self.port = port
        self.path = path
        self.kind = kind

    def __str__(self) -> str:
        return str(self.strerror)  # the message as written, without "[Errno 98]"

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.errno, self.strerror, self.host, self.port,
                           self.path, self.kind))


class AddressInUse(ListenError):
    """Something listens there already (EADDRINUSE): another program, or this one."""


def _rebuild(cls: type[ListenError], errno: int | None, message: str, host: str | None,
             port: int | None, path: str | None, kind: str | None) -> ListenError:
    return cls(errno, message, host=host, port=port, path=path, kind=kind)


class TLSError(NetshellError):
    """A TLS failure; the message says what went wrong, and with which host.

    The keyword arguments are kept as attributes for callers that want them
    without parsing the message: ``host`` (the name or address verified, or
    None), ``subject`` (the certificate's subject, RFC 4514, when known) and
    ``verify_code`` (OpenSSL's X509_V_ERR_* number, when the certificate chain
    was refused), and ``port`` (the peer's port, set once the failed connection
    knows it). The OpenSSL error, if any, is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        subject: str | None = None,
        verify_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.subject = subject
        self.verify_code = verify_code
        self.port: int | None = None


class HandshakeFailed(TLSError):
    """The TLS handshake failed for a reason other than the certificates.

    For example no protocol version or cipher in common, or the peer hung up;
    the message carries OpenSSL's reason.
    """


class TLSVerificationError(TLSError):
    """A certificate was refused; the subclass says why, when the reason is a common one."""


class HostnameMismatch(TLSVerificationError):
    """The certificate is valid, but not for the host name or IP address connected to."""


class UnknownCA(TLSVerificationError):
    """The certificate chain does not lead to a trusted certificate authority."""


class CertificateExpired(TLSVerificationError):
    """A certificate in the chain has expired."""


class CertificateNotYetValid(TLSVerificationError):
    """A certificate in the chain is not valid yet (its notBefore is in the future)."""


class ClientCertificateRequired(TLSError):
    """The server demands a client certificate and the client sent none.

    Raised on the server side, and on the client side when the server's alert
    says so.
    """
