"""Connecting: a Connector makes (and remakes) an outgoing connection for a client factory.

The reactor's ``connect_tcp`` / ``connect_unix`` / ``connect_tls`` build a
:class:`Connector` and start its first attempt; a ReconnectingClientFactory
calls :meth:`Connector.connect` again after a loss. Each attempt makes one
:class:`~netshell.transport.StreamTransport`; a failed attempt fails with a
:class:`~netshell.ConnectError` subclass that says what happened.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

from netshell.defer import Deferred
from netshell.errors import (
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    DNSLookupError,
)
from netshell.failure import Failure
from netshell.interfaces import format_hostport
from netshell.transport import StreamTransport

if TYPE_CHECKING:
    from netshell.protocol import Factory, Protocol
    from netshell.reactor import Reactor

__all__ = ["Connector"]

# Connectors log under the transport's logger, as when they lived in that module.
log = logging.getLogger("netshell.transport")


def _connect_error(e: BaseException, where: str, timeout: float) -> ConnectError:
    """The ConnectError that says why connecting to ``where`` failed with ``e``.

    One line, meant to be shown as it is: ``cannot connect to 127.0.0.1:9:
    connection refused``, ``cannot resolve 'nosuch.invalid': Name or service
    not known``.
    """
    if isinstance(e, TimeoutError):
        err: ConnectError = ConnectTimeout(
            f"cannot connect to {where}: timed out after {timeout:g}s"
        )
    elif isinstance(e, socket.gaierror):
        host = where.rsplit(":", 1)[0].strip("[]") if not where.startswith("unix:") else where
        err = DNSLookupError(f"cannot resolve {host!r}: {e.strerror}")
    elif isinstance(e, ConnectionRefusedError):
        err = ConnectionRefused(f"cannot connect to {where}: connection refused")
    elif isinstance(e, OSError):
        why = e.strerror or str(e)
        err = ConnectError(f"cannot connect to {where}: {why[:1].lower() + why[1:]}")
    else:
        err = ConnectError(f"cannot connect to {where}: {e!r}")
    err.__cause__ = e
    return err


class Connector:
    """Makes an outgoing connection for a client factory, and can make it again.

    ``state`` is "disconnected", "connecting" or "connected"; ``transport``
    is the current connection's transport. A ReconnectingClientFactory calls
    :meth:`connect` to try again; :meth:`stop_connecting` cancels an attempt.
    """

    def __init__(
        self,
        reactor: Reactor,
        kind: str,
        address: tuple[str, int] | str,
        factory: Factory,
        timeout: float = 30,
        bind_address: tuple[str, int] | None = None,
        tls_context: Any = None,
    ) -> None:
        self.reactor = reactor
        self.kind = kind
        #: with a TLS client context, the connection counts as made once the handshake is done
        self.tls_context = tls_context
        self.address = address
        self.factory = factory
        self.timeout = timeout
        self.bind_address = bind_address
        self.state = "disconnected"
        self.transport: StreamTransport | None = None
        self._attempt: Deferred[Any] | None = None
        self._started = False
        self._handshaking: StreamTransport | None = None  # connect_tls, TCP up, TLS not yet

    @property
    def where(self) -> str:
        """The address being connected to, as text."""
        if isinstance(self.address, str):
            return f"unix:{self.address}"
        host, port = self.address
        return format_hostport(host, port)

    def connect(self) -> Deferred[Protocol]:
        """Start an attempt; the Deferred fires with the connected protocol.

        It fails with a :class:`~netshell.ConnectError` subclass saying what
        happened: ConnectionRefused, ConnectTimeout, DNSLookupError.
        Cancelling it abandons the attempt.
        """
        if not self._started:
            self._started = True
            self.factory.start_use()
        self.state = "connecting"
        task: asyncio.Task[Any] | None = None

        def cancel(_: Deferred[Any]) -> None:
            if task is not None:
                task.cancel()
            if self._handshaking is not None and not self._handshaking.lost:
                self._handshaking.abort()
            self.state = "disconnected"
            self._maybe_done()

        made: Deferred[Any] = Deferred(cancel)
        self._attempt = made
        task = self.reactor.loop.create_task(self._run(made))
        return made

    async def _run(self, made: Deferred[Any]) -> None:
        loop = self.reactor.loop
        started = loop.time()
        self._handshaking = None
        hostname = None if isinstance(self.address, str) else self.address[0]
        t = StreamTransport(
            self.reactor,
            self.kind,
            self.factory,
            connector=self,
            made=made,
            tls_context=self.tls_context,
            tls_hostname=hostname,
        )
        try:
            if isinstance(self.address, str):
                coro = loop.create_unix_connection(lambda: t, self.address)
            else:
                host, port = self.address
                coro = loop.create_connection(lambda: t, host, port, local_addr=self.bind_address)
            await asyncio.wait_for(coro, self.timeout)
            tls = t.tls_connection
            if tls is not None and not tls.established and not t.lost:
                self._handshaking = t
                left = max(0.0, self.timeout - (loop.time() - started))
                if left < tls.handshake_timeout:  # our timeout covers the handshake too
                    late = ConnectTimeout(
                        f"cannot connect to {self.where}: timed out after {self.timeout:g}s "
                        "(in the TLS handshake)"
                    )
                    tls.limit_handshake(left, late)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.state = "disconnected"
            err = _connect_error(e, self.where, self.timeout)
            if not made.called:
                made.errback(Failure(err))
            self._failed(Failure(err))
            self._maybe_done()

    def _failed(self, reason: Failure) -> None:
        failed = getattr(self.factory, "client_connection_failed", None)
        if failed is not None:
            try:
                failed(self, reason)
            except Exception:
                log.exception("Error in %r.client_connection_failed", self.factory)

    def attempt_failed(self, reason: Failure | None) -> None:
        """The connection this connector made ended before its protocol met it: the factory
        refused it (``reason`` None), or its TLS handshake failed (``reason``, handed to the
        factory's ``client_connection_failed``). Called by the transport."""
        self.state = "disconnected"
        if reason is not None:
            self._failed(reason)
        self._maybe_done()

    def connection_lost(self, reason: Failure) -> None:
        """The connection ended after its protocol met it: tell the factory's
        ``client_connection_lost`` (which may reconnect). Called by the transport."""
        self.state = "disconnected"
        self.transport = None
        lost = getattr(self.factory, "client_connection_lost", None)
        if lost is not None:
            try:
                lost(self, reason)
            except Exception:
                log.exception("Error in %r.client_connection_lost", self.factory)
        self._maybe_done()

    def _maybe_done(self) -> None:
        # The factory is done with when nothing reconnects it.
        if self.state == "disconnected" and self._started and not _will_retry(self.factory):
            self._started = False
            self.factory.stop_use()

    def stop_connecting(self) -> None:
        """Abandon the attempt in progress, if any."""
        if self.state == "connecting" and self._attempt is not None:
            self._attempt.cancel()
        self._maybe_done()  # e.g. the factory stopped trying while a retry was pending

    def disconnect(self) -> None:
        """Close the current connection, or abandon the attempt in progress."""
        if self.transport is not None:
            self.transport.close()
        else:
            self.stop_connecting()

    def __repr__(self) -> str:
        return f"<Connector {self.kind} {self.where} {self.state}>"


def _will_retry(factory: Any) -> bool:
    """Whether ``factory`` (a ReconnectingClientFactory) has a retry pending."""
    return bool(
        getattr(factory, "continue_trying", False) and getattr(factory, "retry_pending", False)
    )
