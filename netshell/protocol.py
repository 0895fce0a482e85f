"""Protocols: the objects that turn a transport's bytes into meaning.

A protocol gets ``connection_made(transport)``, then ``data_received(data)``
as bytes arrive, ``eof_received()`` when the peer half-closes, and
``connection_lost(reason)`` once at the end, where ``reason`` is a Failure of
:class:`~netshell.ConnectionDone` for a clean close and
:class:`~netshell.ConnectionLost` otherwise.
"""

from __future__ import annotations

from typing import Any

from netshell.failure import Failure

__all__ = ["Protocol"]


class Protocol:
    """Base class for stream protocols; override the methods you need.

    Example::

        >>> import netshell as ns
        >>> class Echo(ns.Protocol):
        ...     def data_received(self, data):
        ...         self.transport.write(data)
    """

    transport: Any = None
    factory: Any = None

    def connection_made(self, transport: Any) -> None:
        """The connection is up; ``transport`` is how to talk back."""
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Some bytes arrived (any split of the stream is possible)."""

    def eof_received(self) -> bool | None:
        """The peer will send nothing more. Return True to keep the connection half-open."""
        return None

    def connection_lost(self, reason: Failure) -> None:
        """The connection is gone; ``reason`` says whether it ended cleanly."""
