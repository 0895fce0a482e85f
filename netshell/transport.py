"""The transports that protocols see: their addresses and the stream interface.

A protocol never touches a socket; it is handed a transport with
``connection_made`` and talks through ``write`` / ``close`` / ``abort``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Address"]


class Address(NamedTuple):
    """One end of a connection: ``kind`` is "tcp", "tcp6", "udp", "unix", "memory"...

    For Unix sockets ``host`` is the path and ``port`` is 0.
    """

    kind: str
    host: str
    port: int

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.host}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
