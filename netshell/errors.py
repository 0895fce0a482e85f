"""The errors of connections, shared by transports and protocols.

They form a tree, so a caller can catch at the depth it cares about:
``NetshellError`` > ``ConnectionClosed`` > ``ConnectionDone`` (a clean close)
or ``ConnectionLost`` (anything else).
"""

from __future__ import annotations

__all__ = ["ConnectionClosed", "ConnectionDone", "ConnectionLost", "NetshellError"]


class NetshellError(Exception):
    """The base of netshell's own errors."""


class ConnectionClosed(NetshellError, ConnectionError):
    """A connection ended; see its two kinds below."""


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly (by either side)."""


class ConnectionLost(ConnectionClosed):
    """The connection ended uncleanly: reset, aborted, or cut; the cause is chained."""
