"""The FTP client (to be written: issue 14)."""

from __future__ import annotations

from typing import Any

__all__ = ["FTPClient", "connect"]


class FTPClient:
    """A logged-in FTP control connection (to be written)."""


def connect(host: str, port: int = 21, **kw: Any) -> Any:
    """Connect and log in (to be written)."""
    raise NotImplementedError
