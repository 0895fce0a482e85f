"""The transport contracts: what a protocol may rely on, whichever transport it is given.

A protocol talks to its transport through the methods and attributes named here
and nothing else, so the socket transports (:class:`~netshell.StreamTransport`,
:class:`~netshell.udp.DatagramTransport`) and the testing kit's fakes
(:class:`~netshell.testing.StringTransport`, the loopback transports,
:class:`~netshell.testing.StringDatagramTransport`) are interchangeable.
:class:`StreamTransportLike` and :class:`DatagramTransportLike` are
:class:`typing.Protocol` classes: a transport satisfies one by having its
members, not by inheriting from it, and mypy checks that it does.

Also here, because every transport uses them: :class:`Address`, one end of a
connection, :func:`format_hostport`, how an address is written, and
:func:`bind_context`, what each transport's ``in_context`` does.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, Protocol, TypeVar

if TYPE_CHECKING:
    from netshell.defer import Deferred
    from netshell.tls_layer import TLSInfo

__all__ = [
    "Address",
    "DatagramTransportLike",
    "ProducerLike",
    "StreamTransportLike",
    "bind_context",
    "format_hostport",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def format_hostport(host: str, port: int) -> str:
    """``host:port``, with the host in brackets when it is an IPv6 address.

    Example::

        >>> format_hostport("127.0.0.1", 80), format_hostport("::1", 8080)
        ('127.0.0.1:80', '[::1]:8080')
    """
    host = str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_context(context: contextvars.Context, f: Callable[_P, _R]) -> Callable[_P, _R]:
    """``f``, wrapped to run in a fresh copy of ``context`` (:mod:`contextvars`) each time
    it is called, whoever calls it: what a transport's ``in_context`` returns.

    ``context`` itself is never entered, so the wrapper may be called from code that runs
    in ``context`` (or in another copy of it) without ``Context.run``'s RuntimeError.

    Example::

        >>> import contextvars
        >>> var = contextvars.ContextVar("var", default="unset")
        >>> def made_in(value):
        ...     var.set(value)
        ...     return contextvars.copy_context()
        >>> read = bind_context(contextvars.Context().run(made_in, "cell 1"), var.get)
        >>> var.get(), read()
        ('unset', 'cell 1')
    """

    def in_context(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return context.copy().run(f, *args, **kwargs)

    return functools.update_wrapper(in_context, f)


class Address(NamedTuple):
    """One end of a connection: ``kind`` is "tcp", "tcp6", "udp", "udp6", "unix"...

    For Unix sockets ``host`` is the path and ``port`` is 0.
    """

    kind: str
    host: str
    port: int

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.host or '(unnamed)'}"
        return format_hostport(self.host, self.port)


class ProducerLike(Protocol):
    """What a transport calls on a producer registered with ``register_producer``.

    A streaming producer writes on its own and is told to pause and resume as the
    transport's buffer fills and drains; a pull producer writes one chunk each
    time ``resume_producing`` is called. Both are told ``stop_producing`` when the
    connection goes away.
    """

    def pause_producing(self) -> None: ...

    def resume_producing(self) -> None: ...

    def stop_producing(self) -> None: ...


class StreamTransportLike(Protocol):
    """The transport a stream protocol (:class:`~netshell.Protocol`) talks through.

    ``write``/``write_sequence`` send bytes (str raises TypeError) and never block;
    ``write_eof`` half-closes; ``close`` closes after flushing what was written,
    ``abort`` at once; ``is_closing`` is true from ``close``/``abort`` on. ``peer``
    and ``host`` are the two ends (:class:`Address`). ``pause_reading`` and
    ``resume_reading`` stop and restart ``data_received``. A producer registered
    with ``register_producer`` is paused and resumed as the write buffer fills and
    drains. ``start_tls`` upgrades the connection (the Deferred fires once the
    handshake is done) and ``tls`` then tells its details (None without TLS).
    ``send_file`` sends a part of an open binary file. ``bytes_sent``,
    ``bytes_received`` and ``connected_at`` (a ``time.time()``) count.
    ``in_context(f)`` wraps ``f`` to run in the context (:mod:`contextvars`) the
    connection was made in, as its own callbacks do, whoever calls it: for a callback
    on a Deferred that other code fires.

    Example::

        >>> from netshell.interfaces import StreamTransportLike
        >>> from netshell.testing import StringTransport
        >>> t: StreamTransportLike = StringTransport()
        >>> t.is_closing(), str(t.peer)
        (False, '127.0.0.1:54321')
    """

    def write(self, data: bytes) -> None: ...

    def write_sequence(self, chunks: Iterable[bytes]) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    @property
    def peer(self) -> Address: ...

    @property
    def host(self) -> Address: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def register_producer(self, producer: ProducerLike, streaming: bool) -> None: ...

    def unregister_producer(self) -> None: ...

    def start_tls(self, context: Any, server_side: bool | None = None) -> Deferred[Any]: ...

    def send_file(self, file: Any, offset: int = 0, count: int | None = None) -> Deferred[int]: ...

    def in_context(self, f: Callable[_P, _R]) -> Callable[_P, _R]: ...

    @property
    def tls(self) -> TLSInfo | None: ...

    @property
    def bytes_sent(self) -> int: ...

    @property
    def bytes_received(self) -> int: ...

    @property
    def connected_at(self) -> float: ...


class DatagramTransportLike(Protocol):
    """The transport a datagram protocol (:class:`~netshell.DatagramProtocol`) talks through.

    ``write(data, addr)`` sends one datagram to ``addr``, an ``(ip, port)`` pair (no
    address once ``connect``-ed); ``close`` closes after sending what is buffered,
    ``abort`` at once; ``is_closing`` is true from either on. ``host`` is the bound
    address, ``peer`` the connected one (port 0 until ``connect``). The counters
    count bytes and datagrams each way. ``in_context(f)`` wraps ``f`` to run in the
    context the transport was made in, as the stream transports' does.

    Example::

        >>> from netshell.interfaces import DatagramTransportLike
        >>> from netshell.testing import StringDatagramTransport
        >>> t: DatagramTransportLike = StringDatagramTransport()
        >>> t.write(b"ping", ("127.0.0.1", 9)); t.datagrams_sent
        1
    """

    def write(self, data: bytes, addr: tuple[Any, ...] | None = None) -> None: ...

    def connect(self, host: str, port: int) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    def in_context(self, f: Callable[_P, _R]) -> Callable[_P, _R]: ...

    @property
    def host(self) -> Address: ...

    @property
    def peer(self) -> Address: ...

    @property
    def bytes_sent(self) -> int: ...

    @property
    def bytes_received(self) -> int: ...

    @property
    def datagrams_sent(self) -> int: ...

    @property
    def datagrams_received(self) -> int: ...
