"""FTP (RFC 959 and its extensions, FTPS): a sans-I/O core, a server and a client.

The names most people need are here: ``serve`` (a server on a directory), ``connect``
(a client), ``FTPClient``, ``User`` and the errors ``FTPError``, ``FTPTemporaryError``
(4xx), ``FTPPermanentError`` (5xx) and ``FTPProtocolError``.
"""

from protocols.ftp.client import FTPClient, connect
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
    "FTPError",
    "FTPPermanentError",
    "FTPProtocolError",
    "FTPTemporaryError",
    "FileInfo",
    "Reply",
    "User",
    "connect",
    "serve",
]
