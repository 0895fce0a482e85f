"""Listening: a bound socket and its factory, one StreamTransport per accepted connection.

A :class:`Listener` is a listening TCP or Unix socket with the factory that makes
a protocol for each connection it accepts (with a TLS server context, every
connection is TLS from its first byte). On asyncio's own (selector) loop it accepts
connections itself and reads and writes each through a :class:`~netshell.socket_io.SocketIO`
(a connection then costs less CPU); on another loop (uvloop) through
``loop.create_server``. :func:`bind_socket` binds the sockets
that listeners and UDP ports use; the reactor's ``listen_tcp`` / ``listen_unix``
/ ``listen_tls`` bind with :func:`bind_tcp` / :func:`bind_unix` and build the Listener.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import errno
import itertools
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from netshell.defer import Deferred, ensure_deferred, succeed
from netshell.errors import AddressInUse, ListenError
from netshell.interfaces import format_hostport
from netshell.socket_io import SocketIO
from netshell.transport import StreamTransport, address_of

if TYPE_CHECKING:
    from netshell.protocol import Factory
    from netshell.reactor import Reactor

__all__ = ["Listener", "bind_socket", "bind_tcp", "bind_unix"]

#: Numbers for listeners (stream and datagram), shown by the prompt's tables and traces.
listener_numbers = itertools.count(1)

log = logging.getLogger("netshell.listener")

_SelectorLoop = asyncio.selector_events.BaseSelectorEventLoop

#: seconds a listener waits before accepting again after running out of descriptors or
#: memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), as asyncio's servers do
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_WILDCARDS = ("0.0.0.0", "::", "")


def _set_nodelay_for_all(sock: socket.socket) -> bool:
    """Turn Nagle's algorithm off on a listening TCP socket, for the connections it
    accepts: True where they inherit it (Linux copies a listener's options to them)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return False
    return True


def bind_socket(
    interface: str,
    port: int,
    socktype: socket.SocketKind,
    what: str,
    backlog: int | None = None,
    reuse_address: bool = False,
) -> tuple[socket.socket, socket.AddressFamily]:
    """Bind a non-blocking socket of ``socktype`` on ``interface:port``; return it and its family.

    The address is the first that ``getaddrinfo`` gives (``""`` is every IPv4
    interface); an IPv6 socket is IPv6 only. ``backlog``, if given, makes it listen;
    ``reuse_address`` sets SO_REUSEADDR. Raises ValueError for a port outside 0 to
    65535, and :class:`~netshell.ListenError` (an OSError, the errno kept) whose text
    is ``"cannot <what> <host:port>: <why>"`` when the address cannot be looked up
    or bound: :class:`~netshell.AddressInUse` when something listens there already.

    Example::

        >>> sock, family = bind_socket("127.0.0.1", 0, socket.SOCK_DGRAM, "bind UDP on")
        >>> family == socket.AF_INET, sock.getsockname()[0]
        (True, '127.0.0.1')
        >>> sock.close()
    """
    if not 0 <= port <= 65535:
        # getaddrinfo would keep the low 16 bits and bind some other port.
        raise ValueError(f"a port is 0 to 65535, not {port}")
    try:
        infos = socket.getaddrinfo(interface or None, port, type=socktype, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ListenError(
            None, f"cannot {what} {format_hostport(interface, port)}: {e.strerror}",
            host=interface, port=port, kind=_KIND.get(socktype),
        ) from e
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as e:
        sock.close()
        host = str(sockaddr[0])
        raise _listen_error(e, f"cannot {what} {format_hostport(host, port)}",
                            host=host, port=port, kind=_KIND.get(socktype)) from e
    sock.setblocking(False)
    return sock, family


_KIND = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}


def _listen_error(e: OSError, doing: str, **where: Any) -> ListenError:
    """The ListenError for ``e``: ``"<doing>: <why>"``, why in lower case as in a sentence."""
    why = e.strerror or str(e)
    why = why[:1].lower() + why[1:]
    cls = AddressInUse if e.errno == errno.EADDRINUSE else ListenError
    return cls(e.errno, f"{doing}: {why}", **where)


def bind_tcp(interface: str, port: int, backlog: int) -> tuple[socket.socket, str]:
    """A listening TCP socket on ``interface:port``, and its kind ("tcp" or "tcp6").

    What the reactor's ``listen_tcp`` and ``listen_tls`` bind (with SO_REUSEADDR);
    raises as :func:`bind_socket` does.
    """
    sock, family = bind_socket(
        interface, port, socket.SOCK_STREAM, "listen on", backlog=backlog, reuse_address=True
    )
    return sock, "tcp6" if family == socket.AF_INET6 else "tcp"


def bind_unix(path: str, mode: int, backlog: int) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale socket file there is replaced).

    What the reactor's ``listen_unix`` binds; the file gets ``mode``. Raises
    FileExistsError if something other than a socket is at ``path``,
    :class:`~netshell.AddressInUse` if a live server listens there, and
    :class:`~netshell.ListenError` if it cannot be bound.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # a stale socket file: nobody listens there
        else:
            raise AddressInUse(
                errno.EADDRINUSE,
                f"cannot listen on unix:{path}: address already in use (a live server "
                "listens there)",
                path=path,
                kind="unix",
            )
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise _listen_error(e, f"cannot listen on unix:{path}", path=path, kind="unix") from e
    sock.setblocking(False)
    return sock


class Listener:
    """A listening socket and the factory that makes a protocol per connection.

    ``address`` (an :class:`Address`) and ``port`` tell where it listens;
    ``connections`` lists the connections it accepted that are open now;
    ``bytes_received`` and ``bytes_sent`` count what all of them, open and closed, did.
    """

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        kind: str,
        factory: Factory,
        backlog: int = 128,
        tls_context: Any = None,
    ) -> None:
        #: this listener's number: per process, in order of creation (``listener(1)``)
        self.number = next(listener_numbers)
        #: when it started listening (a ``time.time()``)
        self.created_at = time.time()
        # asyncio calls listen() again when it starts serving: it must get the same backlog.
        self.backlog = backlog
        #: a TLS server context: every connection is TLS from its first byte
        self.tls_context = tls_context
        self.reactor = reactor
        self.factory = factory
        self.kind = kind
        self._sock = sock
        self._family = int(sock.family)
        sockname = sock.getsockname()
        self.address = address_of(kind, sockname)
        #: every accepted connection's own address when the socket is bound to one address
        #: (not a wildcard): given to it rather than asked of each socket
        self._conn_sockname = None if kind == "unix" or self.address.host in _WILDCARDS \
            else sockname
        #: TCP_NODELAY, set on the listening socket, is inherited by the accepted ones on
        #: Linux; elsewhere each connection sets it
        self._nodelay_each = kind != "unix" and not _set_nodelay_for_all(sock)
        self._connections: dict[StreamTransport, None] = {}
        # What the connections accepted and lost since received and sent: with the open
        # ones', the listener's totals (bytes_received, bytes_sent).
        self._received_by_closed = 0
        self._sent_by_closed = 0
        self._server: asyncio.AbstractServer | None = None
        #: accepting by itself (asyncio's selector loop): the listening socket's reader is on
        self._accepting = False
        self._retry: asyncio.TimerHandle | None = None
        self._closing: Deferred[None] | None = None
        self._drained: Deferred[None] | None = None
        self.closed = False
        factory.start_use()
        reactor.add_listener(self)
        self._starting = reactor.loop.create_task(self._serve())

    async def _serve(self) -> None:
        loop = self.reactor.loop
        kind = self.kind
        backlog = self.backlog
        if isinstance(loop, _SelectorLoop):
            # The socket listens already (bind_socket): watch it and accept here.
            self._accepting = True
            loop.add_reader(self._sock.fileno(), self._accept_waiting)
            return
        # Not serving until self._server is set: close() must find the server that
        # watches the socket, or it would close the fd under the selector's feet.
        if kind == "unix":
            self._server = await loop.create_unix_server(
                lambda: StreamTransport(
                    self.reactor, kind, self.factory, self, tls_context=self.tls_context
                ),
                sock=self._sock,
                backlog=backlog,
                start_serving=False,
            )
        else:
            self._server = await loop.create_server(
                lambda: StreamTransport(
                    self.reactor, kind, self.factory, self, tls_context=self.tls_context
                ),
                sock=self._sock,
                backlog=backlog,
                start_serving=False,
            )
        await self._server.start_serving()

    def _accept_waiting(self) -> None:
        """The listening socket is readable: accept what waits (as many as the backlog
        each time, as asyncio does), one StreamTransport on a SocketIO for each."""
        sock = self._sock
        loop = self.reactor.loop
        reactor, kind, factory = self.reactor, self.kind, self.factory
        tls_context = self.tls_context
        family, proto = self._family, sock.proto
        nodelay, sockname = self._nodelay_each, self._conn_sockname
        new_socket = socket.socket
        for _ in range(self.backlog):
            try:
                # What sock.accept() does, without asking the listening socket its family
                # and type (two enum conversions) for every connection.
                fd, addr = sock._accept()  # type: ignore[attr-defined]
                conn = new_socket(family, socket.SOCK_STREAM, proto, fileno=fd)
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # none left
            except OSError as e:
                if e.errno in _OUT_OF_RESOURCES:
                    # The socket stays readable: stop watching it for a while, or the loop
                    # would spin on it.
                    log.error("%s cannot accept a connection: %s; trying again in %g s",
                              self, e, ACCEPT_RETRY_DELAY)
                    loop.remove_reader(sock.fileno())
                    self._retry = loop.call_later(ACCEPT_RETRY_DELAY, self._accept_again)
                else:
                    log.error("%s: accept() failed: %s", self, e)
                return
            SocketIO(loop, conn, StreamTransport(reactor, kind, factory, self,
                                                 tls_context=tls_context),
                     addr, nodelay, sockname)
            if not self._accepting:
                return  # the connection closed the listener (an FTP passive channel does)

    def _accept_again(self) -> None:
        self._retry = None
        if not self.closed:
            self.reactor.loop.add_reader(self._sock.fileno(), self._accept_waiting)

    def __await__(self) -> Generator[Any, None, Listener]:
        """``await listener``: itself, once it accepts connections (it is bound already).

        So ``srv = await listen(...)`` works as a person writes it, as well as without
        the ``await``.
        """
        if not self._starting.done():
            try:
                yield from asyncio.shield(self._starting).__await__()
            except asyncio.CancelledError:
                if not self._starting.cancelled():
                    raise  # the awaiter was cancelled, not the listener's start
        return self

    @property
    def port(self) -> int:
        """The port listened on (0 for Unix sockets)."""
        return self.address.port

    @property
    def connections(self) -> list[StreamTransport]:
        """The accepted connections that are open now."""
        return list(self._connections)

    @property
    def bytes_received(self) -> int:
        """Bytes received by all the connections it accepted, open and closed."""
        return self._received_by_closed + sum(t.bytes_received for t in self._connections)

    @property
    def bytes_sent(self) -> int:
        """Bytes sent by all the connections it accepted, open and closed."""
        return self._sent_by_closed + sum(t.bytes_sent for t in self._connections)

    def add_connection(self, t: StreamTransport) -> None:
        """Count ``t`` among :attr:`connections` (called by the transport once its protocol
        is attached; not for applications)."""
        self._connections[t] = None

    def remove_connection(self, t: StreamTransport) -> None:
        """Drop ``t`` from :attr:`connections` once it is lost (called by the transport; not
        for applications): the last one gone ends a draining :meth:`close`."""
        if self._connections.pop(t, 0) is None:  # it was counted among the open ones
            self._received_by_closed += t.bytes_received
            self._sent_by_closed += t.bytes_sent
        if not self._connections and self._drained is not None and not self._drained.called:
            self._drained.callback(None)

    def close(self, drain: bool = False, timeout: float | None = None) -> Deferred[None]:
        """Stop listening; returns a Deferred that fires once the socket is closed.

        The accepted connections stay open, unless ``drain``: then the
        Deferred fires once they have all closed, and those still open after
        ``timeout`` seconds (if given) are closed. Calling close() again
        returns the same Deferred.
        """
        if self._closing is not None:
            return self._closing
        self.closed = True
        if self._accepting:
            self._accepting = False
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
            loop = self.reactor.loop
            if not loop.is_closed():
                loop.remove_reader(self._sock.fileno())
            self._sock.close()
        elif self._server is not None:
            self._server.close()
        else:
            self._starting.cancel()
            self._sock.close()
        if self.kind == "unix":
            try:
                os.unlink(self.address.host)
            except OSError:
                pass
        self.reactor.remove_listener(self)
        self.factory.stop_use()
        if self.reactor.loop.is_running():
            self._closing = ensure_deferred(self._finish_close(drain, timeout))
        else:
            self._closing = succeed(None)
        return self._closing

    async def _finish_close(self, drain: bool, timeout: float | None) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        if drain and self._connections:
            self._drained = Deferred()
            try:
                await asyncio.wait_for(self._drained.as_future(), timeout)
            except TimeoutError:
                for t in list(self._connections):
                    t.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "listening"
        name = getattr(self.factory.protocol, "__qualname__", type(self.factory).__name__)
        count = len(self._connections)
        kind = f"{self.kind}+tls" if self.tls_context is not None else self.kind
        conns = "1 connection" if count == 1 else f"{count} connections"
        return f"<Listener {kind} {self.address} {name} {state}, {conns}>"
