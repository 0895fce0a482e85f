"""The FTP server (to be written: issue 14)."""

from __future__ import annotations

from typing import Any

__all__ = ["User", "serve"]


class User:
    """A user of the server (to be written)."""


def serve(root: Any, port: int = 0, **kw: Any) -> Any:
    """Serve ``root`` over FTP (to be written)."""
    raise NotImplementedError
