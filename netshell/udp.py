"""UDP: datagram transports and listeners, unicast and multicast.

A datagram protocol is handed a :class:`DatagramTransport` and talks
through ``write(data, addr)``; the reactor's ``listen_udp`` and
``listen_multicast`` bind the socket at once and return a
:class:`DatagramListener` that holds the transport and the protocol.

The transport drives a non-blocking socket on the loop itself
(``add_reader`` / ``add_writer``) rather than through asyncio's datagram
endpoint, because a datagram endpoint cannot be connected after it is
made, and connected UDP is what reports ICMP errors (a closed peer port
becomes ``ConnectionRefusedError`` in ``error_received``).

Multicast here is IPv4 (group management on IPv6 is not implemented).
A multicast listener binds to the group address itself, not to the
wildcard: on Linux that keeps unicast datagrams to the same port and other
groups' datagrams out of it, and a wildcard bind would make the port
reachable from every network. It also turns off Linux's
``IP_MULTICAST_ALL``, so the socket gets only the groups it joined itself
(otherwise it would get every group any socket on the machine joined, and
``leave_group`` would change nothing while another socket stays joined).
"""

from __future__ import annotations

import collections
import contextvars
import ipaddress
import logging
import socket
import sys
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from netshell import observe as _observe
from netshell.defer import Deferred, succeed
from netshell.errors import ConnectionDone, ConnectionLost
from netshell.failure import Failure
from netshell.interfaces import Address, bind_context, format_hostport
from netshell.listener import bind_socket, listener_numbers

if TYPE_CHECKING:
    from netshell.protocol import DatagramProtocol
    from netshell.reactor import Reactor

__all__ = ["DatagramListener", "DatagramTransport", "listen_multicast", "listen_udp"]

log = logging.getLogger("netshell.udp")

# Linux's IP_MULTICAST_ALL (the socket module does not name it).
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)

# Datagrams read per wakeup: enough to drain a burst cheaply, few enough that
# one busy socket cannot starve the rest of the loop.
_READS_PER_WAKEUP = 64

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _address(kind: str, sockaddr: Any) -> Address:
    if not sockaddr:
        return Address(kind, "", 0)
    return Address(kind, sockaddr[0], sockaddr[1])


class DatagramTransport:
    """The transport a datagram protocol talks through: one UDP socket.

    ``write(data, addr)`` sends one datagram (no address once
    :meth:`connect`-ed). Attributes: ``protocol``, ``host`` and ``peer``
    (:class:`~netshell.Address`; ``peer`` is empty until connected),
    ``listener``, and the counters ``bytes_sent``, ``datagrams_sent``
    (handed to the kernel), ``bytes_received``, ``datagrams_received`` and
    ``datagrams_dropped`` (over the send buffer's bound).

    Errors of sending or receiving (``ConnectionRefusedError`` from an ICMP
    port unreachable on connected UDP, ``EMSGSIZE``...) go to
    ``protocol.error_received(exc)``. An exception raised by the protocol
    is logged with its traceback and the socket goes on serving.

    The protocol is called in the context (:mod:`contextvars`) of the code that made
    the transport (``listen_udp``'s caller), also when other code writes or closes:
    in a Jupyter kernel, what it prints goes to the cell that made it.

    Example::

        >>> import netshell as ns
        >>> from netshell import reactor
        >>> class Echo(ns.DatagramProtocol):
        ...     def datagram_received(self, data, addr):
        ...         self.transport.write(data, addr)
        >>> listener = reactor.listen_udp(0, Echo())
        >>> t = listener.transport
        >>> t.host.kind, t.datagrams_sent
        ('udp', 0)
        >>> _ = listener.close()
    """

    #: at most this many datagrams wait for the kernel to take them; more are dropped
    max_buffered = 1024
    #: and at most this many bytes
    max_buffered_bytes = 4 * 1024 * 1024

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        kind: str,
        protocol: DatagramProtocol,
        max_size: int = 65535,
    ) -> None:
        self.reactor = reactor
        self.kind = kind
        self.protocol = protocol
        self.max_size = max_size
        self.listener: DatagramListener | None = None
        self.host = _address(kind, sock.getsockname())
        self.peer = Address(kind, "", 0)
        self.bytes_sent = 0
        self.bytes_received = 0
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.datagrams_dropped = 0
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._loop = reactor.loop
        # Its maker's context: the writer and the closing call are made in copies of it,
        # whoever writes or closes (the reader is made by its maker). Never entered itself.
        self._context = contextvars.copy_context()
        self._buffer: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._buffered_bytes = 0
        self._dropping = False
        self._writing = False
        self._reading = False
        self._closing = False
        self._aborted = False
        self._closed = False
        self._warned_closed = False
        self._when_closed: Deferred[None] | None = None

    # ---- reading

    def _start_reading(self) -> None:
        if not self._reading and not self._closing:
            self._loop.add_reader(self._fd, self._read_ready)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            try:
                self._loop.remove_reader(self._fd)
            except Exception:  # the loop is closed: nothing is registered any more
                pass

    def _read_ready(self) -> None:
        sock = self._sock
        for _ in range(_READS_PER_WAKEUP):
            if self._closing or sock is None:
                return
            try:
                data, addr = sock.recvfrom(self.max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._error(e)
                continue
            self.bytes_received += len(data)
            self.datagrams_received += 1
            if _observe.data_in:
                _observe.notify("data_in", self, data, addr)
            try:
                self.protocol.datagram_received(data, addr)
            except Exception:
                log.exception(
                    "Error in %r.datagram_received (datagram from %s); the socket goes on",
                    self.protocol,
                    format_hostport(str(addr[0]), addr[1]),
                )

    def _error(self, exc: OSError) -> None:
        try:
            self.protocol.error_received(exc)
        except Exception:
            log.exception("Error in %r.error_received(%r)", self.protocol, exc)

    # ---- writing

    def write(self, data: bytes, addr: tuple[Any, ...] | None = None) -> None:
        """Send ``data`` as one datagram to ``addr``, an ``(ip, port)`` pair.

        ``addr`` may be left out once the transport is connected (and must
        then be the peer, if given). Use a numeric IP address: a host name
        would be looked up on the loop, blocking it. Never blocks: when the
        kernel's buffer is full the datagram waits in the transport's own
        buffer, which is bounded (``max_buffered`` datagrams,
        ``max_buffered_bytes``): beyond it datagrams are dropped, counted
        in ``datagrams_dropped`` and warned about. Errors of sending go to
        ``protocol.error_received``. Raises TypeError for str, ValueError
        for a missing or wrong address.
        """
        if isinstance(data, str):
            raise TypeError("write() takes bytes, not str: encode it first")
        if self.peer.port:
            if addr is not None and tuple(addr[:2]) != (self.peer.host, self.peer.port):
                raise ValueError(f"this transport is connected to {self.peer}; write(data) only")
            addr = None
        elif addr is None:
            raise ValueError(
                "write() needs an address (host, port) unless the transport is connected"
            )
        if self._closing:
            if not self._warned_closed:
                self._warned_closed = True
                log.warning("%r: datagrams written after close() are dropped", self)
            return
        if _observe.data_out:
            _observe.notify("data_out", self, data, addr or (self.peer.host, self.peer.port))
        if self._buffer:
            self._enqueue(data, addr)
            return
        assert self._sock is not None
        try:
            sent = self._sock.send(data) if addr is None else self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._enqueue(data, addr)
            return
        except OSError as e:
            self._error(e)
            return
        self.bytes_sent += sent
        self.datagrams_sent += 1

    def _enqueue(self, data: bytes, addr: Any) -> None:
        data = bytes(data)  # the caller may reuse its buffer
        if (
            len(self._buffer) >= self.max_buffered
            or self._buffered_bytes + len(data) > self.max_buffered_bytes
        ):
            self.datagrams_dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "%r: send buffer full (%d datagrams, %d bytes); dropping datagrams until "
                    "it drains (datagrams_dropped counts them)",
                    self,
                    len(self._buffer),
                    self._buffered_bytes,
                )
            return
        self._buffer.append((data, addr))
        self._buffered_bytes += len(data)
        if not self._writing:
            self._context.copy().run(self._loop.add_writer, self._fd, self._write_ready)
            self._writing = True

    def _write_ready(self) -> None:
        sock = self._sock
        while self._buffer and sock is not None:
            data, addr = self._buffer[0]
            try:
                sent = sock.send(data) if addr is None else sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._buffer.popleft()
                self._buffered_bytes -= len(data)
                self._error(e)
                continue
            self._buffer.popleft()
            self._buffered_bytes -= len(data)
            self.bytes_sent += sent
            self.datagrams_sent += 1
        self._stop_writing()
        if self._dropping:
            self._dropping = False
            log.info("%r: send buffer drained", self)
        if self._closing:
            self._finish_close()

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            try:
                self._loop.remove_writer(self._fd)
            except Exception:
                pass

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return self._buffered_bytes

    # ---- connected UDP

    def connect(self, host: str, port: int) -> None:
        """Talk to ``host:port`` only: ``write(data)`` sends there, nothing else arrives.

        The kernel then delivers only datagrams from that address, and an
        ICMP port unreachable comes back as ``ConnectionRefusedError`` in
        ``protocol.error_received``. Use a numeric IP address (a host name
        would block the loop while it is looked up). Connecting again
        changes the peer. Raises OSError if the kernel refuses, RuntimeError
        once closed.

        Example::

            >>> import netshell as ns
            >>> from netshell import reactor
            >>> listener = reactor.listen_udp(0, ns.DatagramProtocol())
            >>> listener.transport.connect("127.0.0.1", 9)
            >>> str(listener.transport.peer)
            '127.0.0.1:9'
            >>> _ = listener.close()
        """
        if self._closing or self._sock is None:
            raise RuntimeError(f"{self!r} is closed")
        try:
            self._sock.connect((host, port))
        except OSError as e:
            raise OSError(
                e.errno, f"cannot connect UDP to {format_hostport(host, port)}: {e.strerror}"
            ) from e
        self.peer = _address(self.kind, self._sock.getpeername())

    # ---- multicast

    def _ipv4(self, what: str) -> socket.socket:
        if self._sock is None:
            raise RuntimeError(f"{self!r} is closed")
        if self._sock.family != socket.AF_INET:
            raise ValueError(f"{what} is implemented for IPv4 only")
        return self._sock

    def _membership(self, option: int, verb: str, group: str, interface: str) -> None:
        sock = self._ipv4(f"{verb} a multicast group")
        try:
            mreq = socket.inet_aton(group) + socket.inet_aton(interface)
        except OSError:
            raise ValueError(
                f"not IPv4 addresses: group {group!r}, interface {interface!r}"
            ) from None
        try:
            sock.setsockopt(socket.IPPROTO_IP, option, mreq)
        except OSError as e:
            raise OSError(
                e.errno, f"cannot {verb} group {group} on interface {interface}: {e.strerror}"
            ) from e

    def join_group(self, group: str, interface: str = "127.0.0.1") -> None:
        """Receive the multicast ``group`` on the interface with local address ``interface``.

        The default, 127.0.0.1, is the loopback interface: nothing leaves
        the machine. Only datagrams addressed to what the socket is bound
        to arrive, so a listener from ``listen_multicast`` (bound to its
        group) receives only that group. Raises OSError (for example when
        joined already).

        Example::

            >>> import netshell as ns
            >>> from netshell import reactor
            >>> listener = reactor.listen_multicast(0, ns.DatagramProtocol(), "239.255.0.9")
            >>> listener.transport.leave_group("239.255.0.9")
            >>> listener.transport.join_group("239.255.0.9")
            >>> _ = listener.close()
        """
        self._membership(socket.IP_ADD_MEMBERSHIP, "join", group, interface)

    def leave_group(self, group: str, interface: str = "127.0.0.1") -> None:
        """Stop receiving the multicast ``group`` on ``interface``; OSError if not joined."""
        self._membership(socket.IP_DROP_MEMBERSHIP, "leave", group, interface)

    def _option(self, what: str) -> tuple[socket.socket, int, int]:
        if self._sock is None:
            raise RuntimeError(f"{self!r} is closed")
        if self._sock.family == socket.AF_INET6:
            names = {"ttl": socket.IPV6_MULTICAST_HOPS, "loop": socket.IPV6_MULTICAST_LOOP}
            return self._sock, socket.IPPROTO_IPV6, names[what]
        names = {"ttl": socket.IP_MULTICAST_TTL, "loop": socket.IP_MULTICAST_LOOP}
        return self._sock, socket.IPPROTO_IP, names[what]

    def set_ttl(self, ttl: int) -> None:
        """How many routers the multicast datagrams sent may cross (0-255; 1: this link).

        Example::

            >>> import netshell as ns
            >>> from netshell import reactor
            >>> listener = reactor.listen_udp(0, ns.DatagramProtocol())
            >>> listener.transport.set_ttl(4); listener.transport.get_ttl()
            4
            >>> _ = listener.close()
        """
        if not 0 <= ttl <= 255:
            raise ValueError(f"a multicast TTL is 0 to 255, not {ttl}")
        sock, level, opt = self._option("ttl")
        sock.setsockopt(level, opt, ttl)

    def get_ttl(self) -> int:
        """The multicast TTL (hop limit) of datagrams sent."""
        sock, level, opt = self._option("ttl")
        return sock.getsockopt(level, opt)

    def set_loopback(self, on: bool) -> None:
        """Whether multicast datagrams sent come back to this machine's own listeners."""
        sock, level, opt = self._option("loop")
        sock.setsockopt(level, opt, 1 if on else 0)

    def get_loopback(self) -> bool:
        """True when multicast datagrams sent are looped back to this machine."""
        sock, level, opt = self._option("loop")
        return bool(sock.getsockopt(level, opt))

    # ---- closing

    def close(self) -> None:
        """Stop receiving, send what is buffered, then close the socket.

        ``protocol.connection_lost`` then gets a Failure of
        :class:`~netshell.ConnectionDone`, on a later turn of the loop.
        """
        if self._closed:
            return
        running = self._loop.is_running()
        if self._closing and running:
            return
        self._closing = True
        self._stop_reading()
        if self._buffer and running:
            return  # _write_ready finishes once the buffer is empty
        if running:
            # Not now: close() may be called from inside datagram_received.
            self._loop.call_soon(self._finish_close, context=self._context.copy())
        else:
            self._finish_close()  # the loop will not run again to do it later

    def abort(self) -> None:
        """Close at once, dropping what is buffered; connection_lost gets ConnectionLost."""
        if self._closed:
            return
        self._aborted = True
        self._buffer.clear()
        self._buffered_bytes = 0
        self._stop_writing()
        self._closing = False  # so close() does not wait for a flush
        self.close()

    def _finish_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._stop_reading()
        self._stop_writing()
        dropped = len(self._buffer)
        if dropped:
            log.warning("%r: closed with %d datagrams unsent", self, dropped)
            self._buffer.clear()
            self._buffered_bytes = 0
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self.listener is not None:
            self.reactor.remove_listener(self.listener)
        if self._aborted:
            reason = Failure(ConnectionLost("the socket was aborted"))
        else:
            reason = Failure(ConnectionDone("the socket was closed cleanly"))
        try:
            self.protocol.connection_lost(reason)
        except Exception:
            log.exception("Error in %r.connection_lost", self.protocol)
        if self._when_closed is not None and not self._when_closed.called:
            self._when_closed.callback(None)

    def _closed_deferred(self) -> Deferred[None]:
        if self._closed:
            return succeed(None)
        if self._when_closed is None:
            self._when_closed = Deferred()
        return self._when_closed

    def in_context(self, f: Callable[_P, _R]) -> Callable[_P, _R]:
        """``f``, wrapped to run in a fresh copy of the context (:mod:`contextvars`) this
        transport was made in, whoever calls it: for a callback on a Deferred that other
        code fires (as :meth:`netshell.StreamTransport.in_context`)."""
        return bind_context(self._context, f)

    # ---- inspection

    def is_closing(self) -> bool:
        """True once close() or abort() was called (``state`` is not "open")."""
        return self.state != "open"

    @property
    def state(self) -> str:
        """ "open", "closing" or "closed"."""
        if self._closed:
            return "closed"
        return "closing" if self._closing else "open"

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"socket"`` (the socket, while open), ``"sockname"`` or ``"peername"``."""
        if name == "socket":
            return self._sock if self._sock is not None else default
        if name == "sockname":
            return tuple(self.host[1:])
        if name == "peername":
            return tuple(self.peer[1:]) if self.peer.port else default
        return default

    def __repr__(self) -> str:
        name = type(self.protocol).__name__
        peer = f" -> {self.peer}" if self.peer.port else ""
        return (
            f"<{self.kind.upper()} {self.host}{peer} {name} {self.state}, "
            f"{self.datagrams_received} in ({self.bytes_received}B) / "
            f"{self.datagrams_sent} out ({self.bytes_sent}B)>"
        )


class DatagramListener:
    """A bound UDP socket with its protocol, as listen_udp / listen_multicast return it.

    ``address`` (:class:`~netshell.Address`, kind "udp" or "udp6") and
    ``port`` tell where it is bound; ``transport`` is the
    :class:`DatagramTransport`, ``protocol`` the protocol, ``group`` the
    multicast group (or None). It stays in ``reactor.listeners`` until
    closed.

    Example::

        >>> import netshell as ns
        >>> from netshell import reactor
        >>> listener = reactor.listen_udp(0, ns.DatagramProtocol())
        >>> listener in reactor.listeners, listener.address.kind
        (True, 'udp')
        >>> _ = listener.close()
        >>> listener in reactor.listeners
        False
    """

    def __init__(self, transport: DatagramTransport, group: str | None = None) -> None:
        #: this listener's number, shared with stream listeners (``listener(2)`` at the prompt)
        self.number = next(listener_numbers)
        #: when it was bound (a ``time.time()``)
        self.created_at = time.time()
        self.reactor = transport.reactor
        self.transport = transport
        self.protocol = transport.protocol
        self.address = transport.host
        self.group = group
        transport.listener = self

    def __await__(self) -> Generator[Any, None, DatagramListener]:
        """``await listener``: itself (it is bound already), as a stream Listener awaits."""
        return self
        yield  # a generator: awaiting it never suspends

    @property
    def port(self) -> int:
        """The port bound."""
        return self.address.port

    @property
    def closed(self) -> bool:
        """True once close() (or the transport's close) has been asked for."""
        return self.transport.state != "open"

    def close(self) -> Deferred[None]:
        """Close the socket; the Deferred fires once it is closed.

        What the transport has buffered is sent first, and
        ``protocol.connection_lost`` gets a Failure of
        :class:`~netshell.ConnectionDone`. Calling close() again returns
        the same Deferred (or one already fired).
        """
        d = self.transport._closed_deferred()
        self.transport.close()
        return d

    def __repr__(self) -> str:
        t = self.transport
        group = f" group {self.group}" if self.group else ""
        name = type(self.protocol).__name__
        state = {"open": "listening"}.get(t.state, t.state)
        return (
            f"<DatagramListener {self.address.kind} {self.address}{group} {name} {state}, "
            f"{t.datagrams_received} datagrams in / {t.datagrams_sent} out>"
        )


def _start(
    reactor: Reactor,
    sock: socket.socket,
    kind: str,
    protocol: DatagramProtocol,
    max_size: int,
    group: str | None = None,
) -> DatagramListener:
    sock.setblocking(False)
    transport = DatagramTransport(reactor, sock, kind, protocol, max_size)
    listener = DatagramListener(transport, group)
    try:
        protocol.connection_made(transport)
    except BaseException:
        # The caller asked for this socket just now: tell it, and keep nothing open.
        transport._sock = None
        sock.close()
        raise
    reactor.add_listener(listener)
    transport._start_reading()
    return listener


def listen_udp(
    reactor: Reactor,
    port: int,
    protocol: DatagramProtocol,
    interface: str = "127.0.0.1",
    max_size: int = 65535,
) -> DatagramListener:
    """Bind a UDP socket on ``interface:port`` now and hand it to ``protocol``.

    ``protocol.connection_made(transport)`` is called before this returns.
    An IPv6 ``interface`` (``"::1"``) binds IPv6 (IPv6 only); ``""`` binds
    every IPv4 interface. Port 0 picks a free port. Datagrams longer than
    ``max_size`` are cut to it. Raises OSError, naming the address, when
    the socket cannot be bound (a taken port: EADDRINUSE). Usually called
    as ``reactor.listen_udp``.

    Example::

        >>> import netshell as ns
        >>> from netshell import reactor
        >>> listener = reactor.listen_udp(0, ns.DatagramProtocol(), interface="::1")
        >>> listener.address.kind, listener.address.host
        ('udp6', '::1')
        >>> _ = listener.close()
    """
    sock, family = bind_socket(interface, port, socket.SOCK_DGRAM, "bind UDP on")
    kind = "udp6" if family == socket.AF_INET6 else "udp"
    return _start(reactor, sock, kind, protocol, max_size)


def listen_multicast(
    reactor: Reactor,
    port: int,
    protocol: DatagramProtocol,
    group: str,
    interface: str = "127.0.0.1",
    ttl: int = 1,
    loopback: bool = True,
    max_size: int = 65535,
) -> DatagramListener:
    """Bind a UDP socket on ``group:port`` now, join ``group`` on ``interface``.

    Several listeners may share the port, in this process or others
    (SO_REUSEADDR, and SO_REUSEPORT where there is one); each gets every
    datagram sent to the group. ``interface`` is the local IPv4 address of
    the network interface to join on, and to send multicast from: the
    default, 127.0.0.1, keeps everything on this machine. ``ttl`` and
    ``loopback`` apply to the datagrams sent (see
    :meth:`DatagramTransport.set_ttl`). The socket is bound to the group
    address, so unicast datagrams to the port do not arrive. Raises
    ValueError if ``group`` is not an IPv4 multicast address, OSError if
    binding or joining fails. Usually called as ``reactor.listen_multicast``.

    Example::

        >>> import netshell as ns
        >>> from netshell import reactor
        >>> a = reactor.listen_multicast(0, ns.DatagramProtocol(), "239.255.0.1")
        >>> b = reactor.listen_multicast(a.port, ns.DatagramProtocol(), "239.255.0.1")
        >>> a.port == b.port, a.group
        (True, '239.255.0.1')
        >>> _ = a.close(); _ = b.close()
    """
    try:
        addr = ipaddress.ip_address(group)
    except ValueError:
        raise ValueError(f"{group!r} is not an IP address") from None
    if addr.version != 4:
        raise ValueError(f"{group} is IPv6: multicast is implemented for IPv4 only")
    if not addr.is_multicast:
        raise ValueError(f"{group} is not a multicast address (224.0.0.0/4)")
    where = f"{group}:{port} (interface {interface})"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sys.platform.startswith("linux"):
            sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        # Windows cannot bind to a multicast address; elsewhere the group filters.
        sock.bind(("" if sys.platform == "win32" else group, port))
        local = socket.inet_aton(interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if loopback else 0)
        mreq = socket.inet_aton(group) + local
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    except OSError as e:
        sock.close()
        if e.errno is None:  # inet_aton: not an address
            raise ValueError(f"interface must be a local IPv4 address, not {interface!r}") from None
        raise OSError(e.errno, f"cannot listen for multicast on {where}: {e.strerror}") from e
    return _start(reactor, sock, "udp", protocol, max_size, group)
