"""FTP (RFC 959 and its extensions, FTPS): a sans-I/O core, a server and a client.

The names most people need are here: ``serve`` (a server on a directory), ``connect``
(a client), ``FTPClient``, ``download`` and ``upload`` (a file by URL, resumed when a
transfer breaks), ``User``, and the errors: ``FTPError`` > ``FTPTemporaryError`` (4xx),
``FTPPermanentError`` (5xx), ``FTPProtocolError``, ``FTPConnectionClosed``,
``FTPTimeoutError``, ``FTPTransferAborted``, ``FTPDataConnectionError`` >
``FTPTransferIncomplete``.
"""

from protocols.ftp.client import (
    FTPClient,
    FTPConnectionClosed,
    FTPDataConnectionError,
    FTPTimeoutError,
    FTPTransferAborted,
    FTPTransferIncomplete,
    connect,
    download,
    upload,
)
from protocols.ftp.core import (
    FileInfo,
    FTPError,
    FTPPermanentError,
    FTPProtocolError,
    FTPTemporaryError,
    Reply,
)
from protocols.ftp.server import User, serve

__all__ = [
    "FTPClient",
    "FTPConnectionClosed",
    "FTPDataConnectionError",
    "FTPError",
    "FTPPermanentError",
    "FTPProtocolError",
    "FTPTemporaryError",
    "FTPTimeoutError",
    "FTPTransferAborted",
    "FTPTransferIncomplete",
    "FileInfo",
    "Reply",
    "User",
    "connect",
    "download",
    "serve",
    "upload",
]
