r"""The small services of the early Internet: echo, discard, chargen, daytime, qotd.

Each is a :class:`netshell.Protocol` with a factory function for a listener,
and a :class:`netshell.DatagramProtocol` where the RFC defines a UDP form:

=========  ========  =====================  ==========================
service    RFC       stream                 datagram
=========  ========  =====================  ==========================
echo       862       :class:`Echo`          :class:`EchoDatagram`
discard    863       :class:`Discard`       (nothing to answer)
chargen    864       :class:`Chargen`       :class:`ChargenDatagram`
qotd       865       :class:`QOTD`          :class:`QOTDDatagram`
daytime    867       :class:`Daytime`       :class:`DaytimeDatagram`
=========  ========  =====================  ==========================

Example::

    >>> from netshell.testing import StringTransport
    >>> p, t = Echo(), StringTransport()
    >>> p.connection_made(t)
    >>> p.data_received(b"ping\r\n")
    >>> t.value()
    b'ping\r\n'

The UDP services answer whoever a datagram claims to come from, and chargen
answers one byte with up to 512: on a public address they can be used to
flood a third party. netshell binds to 127.0.0.1 unless told otherwise; keep
it that way for these unless you know the network.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from netshell.failure import Failure
from netshell.protocol import DatagramProtocol, Factory, Protocol

__all__ = [
    "DEFAULT_QUOTE",
    "LINE_WIDTH",
    "MAX_QUOTE_LENGTH",
    "PRINTABLE",
    "QOTD",
    "Chargen",
    "ChargenDatagram",
    "Daytime",
    "DaytimeDatagram",
    "Discard",
    "Echo",
    "EchoDatagram",
    "QOTDDatagram",
    "chargen_factory",
    "chargen_lines",
    "daytime_factory",
    "daytime_string",
    "discard_factory",
    "echo_factory",
    "qotd_factory",
    "quote_message",
]

log = logging.getLogger("netshell.protocols.wire")


# --- echo and discard --------------------------------------------------------


class Echo(Protocol):
    """RFC 862: send back every byte received.

    Example::

        >>> from netshell.testing import StringTransport
        >>> p, t = Echo(), StringTransport()
        >>> p.connection_made(t)
        >>> p.data_received(b"hello")
        >>> t.value()
        b'hello'
    """

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Discard(Protocol):
    """RFC 863: throw away every byte received, answer nothing.

    Example::

        >>> from netshell.testing import StringTransport
        >>> p, t = Discard(), StringTransport()
        >>> p.connection_made(t)
        >>> p.data_received(b"into the void")
        >>> t.value()
        b''
    """

    def data_received(self, data: bytes) -> None:
        pass


class EchoDatagram(DatagramProtocol):
    """RFC 862 over UDP: send each datagram back to where it came from.

    Example::

        >>> class Sent:
        ...     def write(self, data, addr):
        ...         print(data, addr)
        >>> p = EchoDatagram()
        >>> p.connection_made(Sent())
        >>> p.datagram_received(b"ping", ("127.0.0.1", 5000))
        b'ping' ('127.0.0.1', 5000)
    """

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.transport.write(data, addr)


# --- chargen -----------------------------------------------------------------

#: The 95 printable ASCII characters, space to tilde, in the order chargen rotates them.
PRINTABLE = bytes(range(0x20, 0x7F))
#: Characters on one chargen line, before its CRLF.
LINE_WIDTH = 72


def chargen_lines(start: int = 0, count: int = len(PRINTABLE)) -> bytes:
    r"""Lines ``start`` to ``start + count - 1`` of the RFC 864 pattern, each ending in CRLF.

    Line ``n`` is the 72 characters of :data:`PRINTABLE` starting at
    character ``n`` (wrapping round), so the pattern repeats every 95 lines.

    Example::

        >>> chargen_lines(0, 1)[:10], len(chargen_lines(0, 1))
        (b' !"#$%&\'()', 74)
        >>> chargen_lines(94, 1)[:4]
        b'~ !"'
    """
    n = len(PRINTABLE)
    ring = PRINTABLE * 2
    return b"".join(
        ring[(start + i) % n : (start + i) % n + LINE_WIDTH] + b"\r\n" for i in range(count)
    )


# One whole cycle of the pattern: the stream is this, over and over.
_CYCLE = chargen_lines(0, len(PRINTABLE))


class Chargen(Protocol):
    """RFC 864: send the rotating lines of printable ASCII until the client hangs up.

    Received bytes are thrown away. Chargen registers itself as a streaming
    producer (``transport.register_producer(self, True)``) and writes whole
    pattern cycles (7030 bytes), at most ``burst_size`` bytes per turn of
    the loop, until the transport calls :meth:`pause_producing`; it goes on
    at the next turn (``clock.call_later(0, ...)``) while not paused, and
    again from :meth:`resume_producing`. So at most ``burst_size`` bytes plus
    the transport's high-water mark are ever buffered. A transport with no
    ``register_producer`` cannot tell it to stop, so it gets one burst and
    is closed (with a warning).

    ``clock`` is what schedules the next turn: the reactor unless given (a
    :class:`~netshell.testing.Clock` in tests).

    Example::

        >>> from netshell.testing import Clock, StringTransport
        >>> p, t = Chargen(clock=Clock()), StringTransport()
        >>> p.connection_made(t)
        >>> t.producer is p, t.streaming
        (True, True)
        >>> t.value()[:8], len(t.value()) <= p.burst_size + 7030
        (b' !"#$%&\\'', True)
        >>> p.stop_producing()
    """

    burst_size = 64 * 1024

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock
        self.paused = False
        self.stopped = False
        self._call: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if not hasattr(transport, "register_producer"):
            # A transport outside the contract (netshell.interfaces): no flow control.
            log.warning(
                "%r: %r has no register_producer (no flow control): one burst, then closing",
                self,
                transport,
            )
            for _ in range(0, self.burst_size, len(_CYCLE)):
                transport.write(_CYCLE)
            self.stopped = True
            transport.close()
            return
        transport.register_producer(self, True)
        self._produce()

    def data_received(self, data: bytes) -> None:
        pass  # RFC 864: "Data received is thrown away"

    def pause_producing(self) -> None:
        """The transport is full: stop writing until :meth:`resume_producing`."""
        self.paused = True
        self._cancel()

    def resume_producing(self) -> None:
        """The transport can take more: write again."""
        if self.stopped:
            return
        self.paused = False
        if self._call is None:
            self._produce()

    def stop_producing(self) -> None:
        """Stop for good (the connection is going away)."""
        self.stopped = True
        self._cancel()

    def connection_lost(self, reason: Failure) -> None:
        self.stop_producing()

    def _cancel(self) -> None:
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _write_burst(self) -> None:
        sent = 0
        while sent < self.burst_size and not (self.paused or self.stopped):
            if self.transport is None or self.transport.is_closing():
                self.stopped = True
                return
            # Writing may call pause_producing() at once (past the high-water mark).
            self.transport.write(_CYCLE)
            sent += len(_CYCLE)

    def _produce(self) -> None:
        self._call = None
        self._write_burst()
        if not (self.paused or self.stopped):
            clock = self.clock
            if clock is None:
                from netshell.reactor import get_reactor

                clock = self.clock = get_reactor()
            self._call = clock.call_later(0, self._produce)


class ChargenDatagram(DatagramProtocol):
    """RFC 864 over UDP: answer each datagram with 0 to 512 bytes of the pattern.

    The length is random (``rng``, a :class:`random.Random`, decides; give
    one to make it repeatable). As the RFC says, the service keeps no state:
    each answer starts at the first line.

    Example::

        >>> import random
        >>> class Sent:
        ...     def write(self, data, addr):
        ...         print(len(data) <= 512, data[:5], addr)
        >>> p = ChargenDatagram(rng=random.Random(7))
        >>> p.connection_made(Sent())
        >>> p.datagram_received(b"", ("127.0.0.1", 5000))
        True b' !"#$' ('127.0.0.1', 5000)
    """

    #: RFC 864: "a random number (between 0 and 512) of characters".
    MAX_REPLY = 512

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        size = self.rng.randint(0, self.MAX_REPLY)
        self.transport.write(_CYCLE[:size], addr)


# --- daytime -----------------------------------------------------------------

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def daytime_string(now: datetime | None = None) -> str:
    """The date and time in the style RFC 867 suggests, with the UTC offset.

    ``now`` defaults to the current local time; a naive datetime is taken
    as local time. Names are in English whatever the locale.

    Example::

        >>> from datetime import datetime, timedelta, timezone
        >>> daytime_string(datetime(1982, 2, 22, 17, 37, 43, tzinfo=timezone(timedelta(hours=-8))))
        'Monday, February 22, 1982 17:37:43 -0800'
    """
    now = datetime.now().astimezone() if now is None else now
    if now.tzinfo is None:
        now = now.astimezone()
    weekday, month = _WEEKDAYS[now.weekday()], _MONTHS[now.month - 1]
    return f"{weekday}, {month} {now.day}, {now.year} {now:%H:%M:%S} {now:%z}"


def _daytime_line(now: Callable[[], datetime] | None) -> bytes:
    return daytime_string(now() if now is not None else None).encode("ascii") + b"\r\n"


class Daytime(Protocol):
    r"""RFC 867: send the date and time as one line, then close.

    ``now`` (a function returning a datetime) replaces the clock, for tests.

    Example::

        >>> from datetime import datetime, timezone
        >>> from netshell.testing import StringTransport
        >>> p = Daytime(now=lambda: datetime(2000, 1, 1, tzinfo=timezone.utc))
        >>> t = StringTransport()
        >>> p.connection_made(t)
        >>> t.value(), t.closed
        (b'Saturday, January 1, 2000 00:00:00 +0000\r\n', True)
    """

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self.now = now

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        transport.write(_daytime_line(self.now))
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass  # RFC 867: "Any data received is thrown away"


class DaytimeDatagram(DatagramProtocol):
    """RFC 867 over UDP: answer each datagram with the date and time line."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self.now = now

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.transport.write(_daytime_line(self.now), addr)


# --- quote of the day --------------------------------------------------------

#: What :class:`QOTD` says when given no quote.
DEFAULT_QUOTE = (
    "Be conservative in what you do, be liberal in what you accept from others.\n"
    "    -- Jon Postel, RFC 793"
)

#: RFC 865: the message "should be limited to ... less than 512 characters".
MAX_QUOTE_LENGTH = 511

Quote = str | bytes | Callable[[], str | bytes]


def quote_message(quote: str | bytes) -> bytes:
    r"""``quote`` as RFC 865 wants it on the wire: ASCII, CRLF line ends, under 512 bytes.

    Line ends (LF, CR or CRLF) become CRLF, and a final CRLF is added.
    Raises ValueError if it has a character other than printable ASCII,
    space, CR and LF, or if the message would be 512 bytes or more.

    Example::

        >>> quote_message("To be\nor not")
        b'To be\r\nor not\r\n'
    """
    if isinstance(quote, str):
        try:
            quote = quote.encode("ascii")
        except UnicodeEncodeError as e:
            raise ValueError(f"a quote must be ASCII (RFC 865): {quote!r:.60}") from e
    elif not isinstance(quote, bytes | bytearray):
        raise TypeError(f"a quote is str or bytes, not {type(quote).__name__}")
    message = b"".join(line + b"\r\n" for line in bytes(quote).splitlines())
    bad = message.translate(None, PRINTABLE + b"\r\n")
    if bad:
        raise ValueError(
            f"a quote may hold only printable ASCII, space, CR and LF; got {bad[:1]!r}"
        )
    if len(message) > MAX_QUOTE_LENGTH:
        raise ValueError(
            f"a quote must be under 512 bytes with its line ends (RFC 865); this is {len(message)}"
        )
    return message


class QOTD(Protocol):
    r"""RFC 865: send a short message, then close.

    ``quote`` is a str or bytes (checked now, by :func:`quote_message`: a
    bad one raises ValueError here), or a function returning one, called for
    each connection (a bad result raises from ``connection_made``, so the
    transport logs it and closes). None means :data:`DEFAULT_QUOTE`.

    Example::

        >>> from netshell.testing import StringTransport
        >>> p, t = QOTD("Hello, world"), StringTransport()
        >>> p.connection_made(t)
        >>> t.value(), t.closed
        (b'Hello, world\r\n', True)
    """

    def __init__(self, quote: Quote | None = None) -> None:
        self.quote = _check_quote(quote)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        transport.write(_message(self.quote))
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass  # RFC 865: "Any data received is thrown away"


class QOTDDatagram(DatagramProtocol):
    """RFC 865 over UDP: answer each datagram with the quote."""

    def __init__(self, quote: Quote | None = None) -> None:
        self.quote = _check_quote(quote)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.transport.write(_message(self.quote), addr)


def _check_quote(quote: Quote | None) -> bytes | Callable[[], str | bytes]:
    if quote is None:
        quote = DEFAULT_QUOTE
    if callable(quote):
        return quote
    return quote_message(quote)


def _message(quote: bytes | Callable[[], str | bytes]) -> bytes:
    return quote_message(quote()) if callable(quote) else quote


# --- factories ---------------------------------------------------------------


def echo_factory() -> Factory:
    """A factory of :class:`Echo`, for a listener: ``reactor.listen_tcp(7, echo_factory())``."""
    return Factory.for_protocol(Echo)


def discard_factory() -> Factory:
    """A factory of :class:`Discard`."""
    return Factory.for_protocol(Discard)


def chargen_factory(clock: Any = None) -> Factory:
    """A factory of :class:`Chargen`; ``clock`` schedules its writes (the reactor by default)."""
    return Factory.for_protocol(Chargen, clock=clock)


def daytime_factory(now: Callable[[], datetime] | None = None) -> Factory:
    """A factory of :class:`Daytime`; ``now`` replaces the clock, for tests."""
    return Factory.for_protocol(Daytime, now=now)


def qotd_factory(quote: Quote | None = None) -> Factory:
    r"""A factory of :class:`QOTD` saying ``quote`` (see there).

    The quote is checked here: a bad one raises ValueError at once.

    Example::

        >>> from netshell.testing import StringTransport
        >>> f = qotd_factory("Less is more.")
        >>> p, t = f.build_protocol(None), StringTransport()
        >>> p.connection_made(t)
        >>> t.value()
        b'Less is more.\r\n'
    """
    checked = _check_quote(quote)
    return Factory.for_protocol(QOTD, quote=checked)
