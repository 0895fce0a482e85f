"""The errors of connections, shared by transports and protocols.

They form a tree, so a caller can catch at the depth it cares about:
``NetshellError`` > ``ConnectionClosed`` > ``ConnectionDone`` (a clean close)
or ``ConnectionLost`` (anything else); ``NetshellError`` > ``ConnectError`` >
``ConnectionRefused``, ``ConnectTimeout`` or ``DNSLookupError``. Each is also
a subclass of the matching builtin (``ConnectionError``,
``ConnectionRefusedError``, ``TimeoutError``), so code that catches those works.
"""

from __future__ import annotations

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionRefused",
    "DNSLookupError",
    "NetshellError",
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
