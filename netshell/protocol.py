"""Protocols and factories: the objects that turn a transport's bytes into meaning.

A stream protocol gets ``connection_made(transport)``, then
``data_received(data)`` as bytes arrive, ``eof_received()`` when the peer
half-closes, and ``connection_lost(reason)`` once at the end, where
``reason`` is a Failure of :class:`~netshell.ConnectionDone` for a clean close
and :class:`~netshell.ConnectionLost` otherwise. A protocol never touches a
socket, so it can be driven in memory (``netshell.testing.loopback``).

A :class:`Factory` makes one protocol per connection a listener accepts; a
:class:`ClientFactory` does the same for outgoing connections, and
:class:`ReconnectingClientFactory` connects again, with back-off, when a
connection fails or is lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

from netshell.current import get_reactor
from netshell.failure import Failure
from netshell.interfaces import DatagramTransportLike, StreamTransportLike

__all__ = [
    "ClientFactory",
    "DatagramProtocol",
    "Factory",
    "Protocol",
    "ReconnectingClientFactory",
]

log = logging.getLogger("netshell.protocol")

P = TypeVar("P", bound="Protocol")
F = TypeVar("F", bound="Factory")


class Protocol:
    """Base class for stream protocols; override the methods you need.

    Example::

        >>> import netshell as ns
        >>> class Echo(ns.Protocol):
        ...     def data_received(self, data):
        ...         self.transport.write(data)
    """

    # None until connection_made; typed without None so that protocols need not
    # check for it on every write (a write before connection_made is a bug anyway).
    transport: StreamTransportLike = None  # type: ignore[assignment]
    factory: Any = None

    def connection_made(self, transport: StreamTransportLike) -> None:
        """The connection is up; ``transport`` is how to talk back.

        What a transport offers is :class:`~netshell.interfaces.StreamTransportLike`.
        """
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Some bytes arrived (any split of the stream is possible)."""

    def eof_received(self) -> bool | None:
        """The peer will send nothing more. Return True to keep the connection half-open."""
        return None

    def connection_lost(self, reason: Failure) -> None:
        """The connection is gone; ``reason`` says whether it ended cleanly."""

    def stop_gracefully(self) -> None:
        """The server is shutting down (``netsh run``/``netsh serve`` got SIGINT or SIGTERM).

        A protocol that knows when nothing is under way (HTTP between requests) closes
        the connection then: at once if idle, else once the work under way is done. The
        default does nothing: the connection keeps the shutdown's grace period.
        """


class DatagramProtocol:
    """Base class for datagram (UDP) protocols.

    Example::

        >>> import netshell as ns
        >>> class UDPEcho(ns.DatagramProtocol):
        ...     def datagram_received(self, data, addr):
        ...         self.transport.write(data, addr)
    """

    # None until connection_made, as for Protocol.
    transport: DatagramTransportLike = None  # type: ignore[assignment]

    def connection_made(self, transport: DatagramTransportLike) -> None:
        """The socket is bound; ``transport.write(data, addr)`` sends.

        What a transport offers is :class:`~netshell.interfaces.DatagramTransportLike`.
        """
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """A datagram arrived from ``addr``."""

    def error_received(self, exc: Exception) -> None:
        """A send or receive failed (e.g. ICMP port unreachable on connected UDP)."""
        log.warning("%r: %s", self, exc)

    def connection_lost(self, reason: Failure) -> None:
        """The socket was closed."""


class Factory:
    """Makes a protocol for each connection a listener accepts.

    Subclass and set ``protocol``, or use :meth:`for_protocol`.
    ``start_factory`` runs before the first connection of the first
    listener using the factory, ``stop_factory`` after the last listener
    using it has closed.

    Example::

        >>> import netshell as ns
        >>> factory = ns.Factory.for_protocol(ns.Protocol)
        >>> factory.build_protocol(None).factory is factory
        True
    """

    protocol: Callable[..., Protocol] | None = None
    _uses = 0

    @classmethod
    def for_protocol(cls: type[F], protocol: Callable[..., Protocol], *args: Any, **kw: Any) -> F:
        """A factory whose protocols are made by ``protocol(*args, **kw)``."""
        factory = cls()
        if args or kw:
            factory.protocol = lambda: protocol(*args, **kw)
        else:
            factory.protocol = protocol
        return factory

    def build_protocol(self, addr: Any) -> Protocol | None:
        """Make the protocol for a connection from ``addr``; None refuses it (closed at once)."""
        if self.protocol is None:
            raise TypeError(
                f"{type(self).__name__} has no protocol: set .protocol or use for_protocol()"
            )
        p = self.protocol()
        p.factory = self
        return p

    def start_factory(self) -> None:
        """Called once before the factory is first used."""

    def stop_factory(self) -> None:
        """Called once after the factory's last use ends."""

    def start_use(self) -> None:
        """Count one more user (a listener listening, a connector connecting with it):
        the first runs :meth:`start_factory`. Called by listeners and connectors."""
        if self._uses == 0:
            self.start_factory()
        self._uses += 1

    def stop_use(self) -> None:
        """Count one user fewer (a listener closed, a connector done): the last runs
        :meth:`stop_factory`. Called by listeners and connectors, once per
        :meth:`start_use`."""
        self._uses -= 1
        if self._uses == 0:
            self.stop_factory()

    def __repr__(self) -> str:
        name = getattr(self.protocol, "__qualname__", None) or repr(self.protocol)
        return f"<{type(self).__name__} of {name}>"


class ClientFactory(Factory):
    """A factory for outgoing connections, told when they fail or end."""

    def client_connection_failed(self, connector: Any, reason: Failure) -> None:
        """A connection attempt failed; ``reason`` is a Failure of a ConnectError."""

    def client_connection_lost(self, connector: Any, reason: Failure) -> None:
        """An established connection ended."""


class ReconnectingClientFactory(ClientFactory):
    """A client factory that connects again after a failure or a lost connection.

    The delay starts at ``initial_delay`` and grows by ``factor`` each try,
    with ``jitter`` (a fraction) of randomness, up to ``max_delay``; after
    ``max_retries`` tries (None: no limit) it gives up. :meth:`reset_delay`
    (call it once a connection is known good) starts the back-off again;
    :meth:`stop_trying` stops for good.
    """

    initial_delay = 1.0
    max_delay = 300.0
    factor = 2.0
    jitter = 0.1
    max_retries: int | None = None
    clock: Any = None

    def __init__(self) -> None:
        self.delay = self.initial_delay
        self.retries = 0
        self.continue_trying = True
        self.connector: Any = None
        self._call: Any = None

    def client_connection_failed(self, connector: Any, reason: Failure) -> None:
        if self.continue_trying:
            self.connector = connector
            self.retry()

    def client_connection_lost(self, connector: Any, reason: Failure) -> None:
        if self.continue_trying:
            self.connector = connector
            self.retry()

    def next_delay(self) -> float:
        """The delay before the next try (``delay``, jittered), advancing the back-off."""
        delay = self.delay
        if self.jitter:
            delay = random.normalvariate(delay, delay * self.jitter)
        self.delay = min(self.delay * self.factor, self.max_delay)
        return max(0.0, min(delay, self.max_delay))

    def retry(self, connector: Any = None) -> None:
        """Schedule the next connection attempt, unless told to stop or out of retries."""
        if not self.continue_trying:
            return
        connector = connector or self.connector
        self.retries += 1
        if self.max_retries is not None and self.retries > self.max_retries:
            log.info("%r: giving up after %d retries", self, self.max_retries)
            return
        delay = self.next_delay()
        clock = self.clock
        if clock is None:
            clock = get_reactor()
        self._call = clock.call_later(delay, self._reconnect, connector)

    def _reconnect(self, connector: Any) -> None:
        self._call = None
        # A failure is the factory's to handle (client_connection_failed retries);
        # nobody else holds this Deferred, so it must not log as unhandled.
        connector.connect().add_errback(lambda _: None)

    def stop_trying(self) -> None:
        """Stop reconnecting: cancel a pending try and make no more."""
        self.continue_trying = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self.connector is not None:
            stop = getattr(self.connector, "stop_connecting", None)
            if stop is not None:
                stop()

    @property
    def retry_pending(self) -> bool:
        """Whether a connection attempt is scheduled (by :meth:`retry`) and not yet made.

        A connector asks, when a connection ends, whether the factory is done with.
        """
        return self._call is not None

    def reset_delay(self) -> None:
        """Start the back-off from the beginning (after a good connection)."""
        self.delay = self.initial_delay
        self.retries = 0
        self.continue_trying = True
