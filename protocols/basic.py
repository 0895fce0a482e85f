"""Framing: turn a byte stream into messages, and messages back into bytes.

Three ways to frame a stream, each a :class:`netshell.Protocol` subclass that
delivers whole messages to one method however the stream was split:

- :class:`LineReceiver`: lines ended by a delimiter (CRLF by default), with a
  raw mode for bytes that are not lines (a body after headers, say);
- :class:`NetstringReceiver`: D. J. Bernstein's netstrings, ``b"5:hello,"``;
- :class:`Int8StringReceiver`, :class:`Int16StringReceiver`,
  :class:`Int32StringReceiver`: a big-endian length prefix, then the string.

Every receiver has a ``MAX_LENGTH``. A peer that goes past it, or breaks the
framing, is logged (logger ``netshell.protocols.basic``) and disconnected;
the bytes it had sent and that were not yet delivered are dropped. Each
receiver works in time linear in the bytes received, whatever their split.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from netshell.interfaces import StreamTransportLike
from netshell.protocol import Protocol

__all__ = [
    "Int8StringReceiver",
    "Int16StringReceiver",
    "Int32StringReceiver",
    "LengthPrefixedReceiver",
    "LineReceiver",
    "NetstringReceiver",
]

log = logging.getLogger("netshell.protocols.basic")


def _is_closing(transport: StreamTransportLike | None) -> bool:
    """Whether the transport was asked to close (so no more messages should be delivered)."""
    return transport is not None and transport.is_closing()


def _peer(transport: StreamTransportLike | None) -> Any:
    return None if transport is None else transport.peer


def _close(transport: StreamTransportLike | None) -> None:
    if transport is not None and not _is_closing(transport):
        transport.close()


class _BufferedReceiver(Protocol):
    """The buffer and delivery loop the receivers share.

    The buffer is a bytearray and ``_pos`` marks how far it has been
    delivered; it is compacted once per ``data_received``, not once per
    message, so a large chunk holding many messages costs linear time.
    Everything is created lazily, so subclasses need not call
    ``super().__init__()``.

    A callback may call ``data_received`` again (re-entrantly): the bytes are
    appended, and the running loop delivers them in order.
    """

    _buffer: bytearray | None = None
    _pos = 0
    _busy = False
    # Set after a framing error the stream cannot recover from: from then on
    # every byte is dropped.
    _broken = False

    def data_received(self, data: bytes) -> None:
        """Buffer ``data`` and deliver every whole message in it."""
        if self._broken or _is_closing(self.transport):
            return
        buf = self._buffer
        if buf is None:
            buf = self._buffer = bytearray()
        buf += data
        if not self._busy:
            self._deliver()

    def _deliver(self) -> None:
        self._busy = True
        try:
            self._process()
        finally:
            self._busy = False
            buf = self._buffer
            if buf is not None and self._pos:
                del buf[: self._pos]
                self._pos = 0

    def _process(self) -> None:
        raise NotImplementedError

    def _drop_buffer(self) -> bytes:
        """Empty the buffer, returning the bytes not yet delivered."""
        buf = self._buffer
        if buf is None:
            return b""
        rest = bytes(buf[self._pos :])
        buf.clear()
        self._pos = 0
        return rest

    def _break(self) -> None:
        """The framing is lost: drop what is buffered and everything that follows."""
        self._broken = True
        self._drop_buffer()


class LineReceiver(_BufferedReceiver):
    r"""Delivers lines to :meth:`line_received`, or raw bytes in raw mode.

    A line is what comes before ``delimiter`` (``b"\r\n"`` unless a subclass
    or instance sets another); it is delivered without the delimiter. A line
    longer than ``MAX_LENGTH`` bytes calls :meth:`line_length_exceeded`,
    which by default logs a warning and closes the connection.

    :meth:`set_raw_mode` sends the bytes that follow to
    :meth:`raw_data_received` instead, and :meth:`set_line_mode` goes back;
    called from a callback, the switch applies to the rest of the bytes
    already received, so nothing is lost or reordered. Once the transport is
    closing no more lines are delivered. An exception raised by a callback
    goes out of ``data_received`` (the transport logs it and closes the
    connection); the line that raised it is not delivered again.

    Example::

        >>> from netshell.testing import StringTransport
        >>> class Upper(LineReceiver):
        ...     def line_received(self, line):
        ...         self.send_line(line.upper())
        >>> p, t = Upper(), StringTransport()
        >>> p.connection_made(t)
        >>> p.data_received(b"hello\r\nwor")
        >>> p.data_received(b"ld\r\n")
        >>> t.value()
        b'HELLO\r\nWORLD\r\n'
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 16384

    _line_mode = True
    # How many bytes after _pos are known to hold no delimiter (of
    # _scanned_for), so a long line arriving in small pieces is scanned once.
    _scanned = 0
    _scanned_for = b""

    def line_received(self, line: bytes) -> None:
        """A whole line arrived (without its delimiter). Override this."""
        raise NotImplementedError(f"{type(self).__name__} must define line_received()")

    def raw_data_received(self, data: bytes) -> None:
        """Bytes arrived in raw mode. Override this if you use :meth:`set_raw_mode`."""
        raise NotImplementedError(f"{type(self).__name__} must define raw_data_received()")

    def send_line(self, line: bytes) -> None:
        r"""Write ``line`` followed by the delimiter.

        Raises TypeError unless ``line`` is bytes, and ValueError if it holds
        the delimiter (it would reach the peer as two lines).

        Example::

            >>> from netshell.testing import StringTransport
            >>> p, t = LineReceiver(), StringTransport()
            >>> p.connection_made(t)
            >>> p.send_line(b"PING")
            >>> t.value()
            b'PING\r\n'
        """
        if not isinstance(line, bytes | bytearray):
            raise TypeError(f"send_line() takes bytes, not {type(line).__name__}")
        if self.delimiter in line:
            raise ValueError(f"line holds the delimiter {self.delimiter!r}: {bytes(line)!r:.80}")
        self.transport.write(bytes(line) + self.delimiter)

    def line_length_exceeded(self, buffer: bytes) -> None:
        """A line went past ``MAX_LENGTH``; ``buffer`` is every byte not yet delivered.

        The buffer has been emptied already. By default this logs a warning
        and closes the connection; an override that keeps the connection open
        gets the bytes that arrive next as the start of a new line.
        """
        log.warning(
            "%r: line longer than %d bytes from %s; closing the connection",
            self,
            self.MAX_LENGTH,
            _peer(self.transport),
        )
        _close(self.transport)

    @property
    def line_mode(self) -> bool:
        """True in line mode, False in raw mode."""
        return self._line_mode

    def set_raw_mode(self) -> None:
        r"""Deliver the bytes that follow to :meth:`raw_data_received`.

        Called from :meth:`line_received`, the rest of the bytes already
        received goes to :meth:`raw_data_received` when it returns; called
        from elsewhere, any buffered bytes are delivered at once.

        Example::

            >>> from netshell.testing import StringTransport
            >>> class Header(LineReceiver):
            ...     def line_received(self, line):
            ...         print("line", line)
            ...         self.set_raw_mode()
            ...     def raw_data_received(self, data):
            ...         print("raw", data)
            >>> p = Header()
            >>> p.connection_made(StringTransport())
            >>> p.data_received(b"SIZE 3\r\nabc\r\n")
            line b'SIZE 3'
            raw b'abc\r\n'
        """
        self._line_mode = False
        self._scanned = 0
        self._resume()

    def set_line_mode(self, extra: bytes = b"") -> None:
        r"""Deliver lines again, starting with the bytes of ``extra``.

        ``extra`` is parsed before anything still buffered: typically the
        part of the last raw chunk that did not belong to the raw data.
        Called from a callback, lines are delivered when it returns; from
        elsewhere, at once.

        Example::

            >>> from netshell.testing import StringTransport
            >>> class Body(LineReceiver):
            ...     def connection_made(self, transport):
            ...         super().connection_made(transport)
            ...         self.set_raw_mode()
            ...     def raw_data_received(self, data):
            ...         print("raw", data[:3])
            ...         self.set_line_mode(data[3:])
            ...     def line_received(self, line):
            ...         print("line", line)
            >>> p = Body()
            >>> p.connection_made(StringTransport())
            >>> p.data_received(b"abcQUIT\r\n")
            raw b'abc'
            line b'QUIT'
        """
        if not isinstance(extra, bytes | bytearray):
            raise TypeError(f"set_line_mode() takes bytes, not {type(extra).__name__}")
        self._line_mode = True
        self._scanned = 0
        if extra:
            if self._buffer is None:
                self._buffer = bytearray()
            self._buffer[self._pos : self._pos] = extra
        self._resume()

    def clear_line_buffer(self) -> bytes:
        r"""Drop the bytes received but not yet delivered, and return them.

        Example::

            >>> p = LineReceiver()
            >>> p.data_received(b"partial line")
            >>> p.clear_line_buffer()
            b'partial line'
        """
        self._scanned = 0
        return self._drop_buffer()

    def _resume(self) -> None:
        # Outside a callback, deliver what is buffered in the new mode now;
        # inside one, the running loop picks the mode up when it returns.
        buf = self._buffer
        if not self._busy and buf and self._pos < len(buf) and not _is_closing(self.transport):
            self._deliver()

    def _process(self) -> None:
        buf = self._buffer
        assert buf is not None
        while True:
            pos = self._pos
            if pos >= len(buf) or _is_closing(self.transport):
                return
            if not self._line_mode:
                data = self._drop_buffer()
                self._scanned = 0
                self.raw_data_received(data)
                continue
            delim = self.delimiter
            if not delim:
                raise ValueError(f"{type(self).__name__}.delimiter is empty")
            dlen = len(delim)
            if delim != self._scanned_for:
                self._scanned_for = delim
                self._scanned = 0
            # A line of MAX_LENGTH bytes and its delimiter end by `limit`:
            # search no further, so a flood costs no more than one line.
            limit = pos + self.MAX_LENGTH + dlen
            end = buf.find(delim, pos + self._scanned, limit)
            if end < 0:
                if len(buf) >= limit:
                    self._scanned = 0
                    self.line_length_exceeded(self._drop_buffer())
                    return
                # The last dlen - 1 bytes may start a delimiter: scan them again.
                self._scanned = max(0, len(buf) - pos - dlen + 1)
                return
            self._scanned = 0
            self._pos = end + dlen
            self.line_received(bytes(buf[pos:end]))


class NetstringReceiver(_BufferedReceiver):
    """Delivers netstrings (``<length>:<bytes>,``) to :meth:`string_received`.

    The length is ASCII decimal with no leading zeros (``0`` alone is fine).
    A prefix that is not like that (a non-digit, a leading zero, more digits
    than ``MAX_LENGTH`` has, no ``:``) or a string not followed by ``,``
    calls :meth:`bad_netstring` with the reason; a length over
    ``MAX_LENGTH`` calls :meth:`length_limit_exceeded`. Both log a warning
    and close the connection by default. Errors are seen as soon as the byte
    that shows them arrives. After either, every byte buffered or received
    later is dropped: the framing cannot be found again.

    Example::

        >>> from netshell.testing import StringTransport
        >>> class Show(NetstringReceiver):
        ...     def string_received(self, s):
        ...         print(s)
        >>> p, t = Show(), StringTransport()
        >>> p.connection_made(t)
        >>> p.data_received(b"5:hello,0:,3:ab")
        b'hello'
        b''
        >>> p.data_received(b"c,")
        b'abc'
        >>> p.send_string(b"hi"); t.value()
        b'2:hi,'
    """

    MAX_LENGTH = 99999

    def string_received(self, s: bytes) -> None:
        """A whole netstring arrived; ``s`` is its payload. Override this."""
        raise NotImplementedError(f"{type(self).__name__} must define string_received()")

    def send_string(self, s: bytes) -> None:
        """Write ``s`` as a netstring.

        Raises TypeError unless ``s`` is bytes, and ValueError if it is longer
        than ``MAX_LENGTH`` (a peer with the same limit would hang up).
        """
        if not isinstance(s, bytes | bytearray):
            raise TypeError(f"send_string() takes bytes, not {type(s).__name__}")
        if len(s) > self.MAX_LENGTH:
            raise ValueError(
                f"string of {len(s)} bytes is longer than MAX_LENGTH={self.MAX_LENGTH}"
            )
        self.transport.write(b"%d:%b," % (len(s), s))

    def bad_netstring(self, reason: str) -> None:
        """The peer broke the netstring framing; ``reason`` says how.

        By default, logs a warning and closes the connection.
        """
        log.warning(
            "%r: bad netstring from %s: %s; closing the connection",
            self,
            _peer(self.transport),
            reason,
        )
        _close(self.transport)

    def length_limit_exceeded(self, length: int) -> None:
        """A netstring announced ``length`` bytes, more than ``MAX_LENGTH``.

        By default, logs a warning and closes the connection.
        """
        log.warning(
            "%r: netstring of %d bytes from %s is over MAX_LENGTH=%d; closing the connection",
            self,
            length,
            _peer(self.transport),
            self.MAX_LENGTH,
        )
        _close(self.transport)

    def _fail(self, reason: str) -> None:
        self._break()
        self.bad_netstring(reason)

    def _process(self) -> None:
        buf = self._buffer
        assert buf is not None
        while not self._broken:
            pos = self._pos
            if pos >= len(buf) or _is_closing(self.transport):
                return
            max_length = self.MAX_LENGTH
            digits = len(str(max_length))
            colon = buf.find(b":", pos, pos + digits + 1)
            prefix = buf[pos:colon] if colon >= 0 else buf[pos : pos + digits + 1]
            # The usual case, checked here; _bad_prefix finds what is wrong otherwise.
            if not (prefix.isdigit() and (len(prefix) == 1 or prefix[0] != 0x30)):
                reason = _bad_prefix(bytes(prefix), digits)
                if reason is None and colon == pos:
                    reason = "empty length prefix"
                if reason is not None:
                    self._fail(reason)
                    return
            if colon < 0:
                if len(prefix) > digits:
                    self._fail(f"length prefix longer than {digits} digits: {bytes(prefix)!r}")
                return  # what is there may still start a netstring
            length = int(prefix)
            if length > max_length:
                self._break()
                self.length_limit_exceeded(length)
                return
            start = colon + 1
            end = start + length
            if len(buf) <= end:
                return
            if buf[end] != 0x2C:  # ","
                self._fail(
                    f"no ',' after a {length}-byte string, got {bytes(buf[end : end + 1])!r}"
                )
                return
            self._pos = end + 1
            self.string_received(bytes(buf[start:end]))


def _bad_prefix(prefix: bytes, digits: int) -> str | None:
    """Why ``prefix`` (the bytes before ":") cannot start a netstring, or None.

    The first wrong byte decides the reason, so it is the same however the
    stream was split.
    """
    if prefix.isdigit() and (len(prefix) < 2 or prefix[0] != 0x30) and len(prefix) <= digits:
        return None
    for i, byte in enumerate(prefix):
        if not 0x30 <= byte <= 0x39:
            return f"non-digit {bytes([byte])!r} in length prefix {prefix!r}"
        if i == 1 and prefix[0] == 0x30:
            return f"leading zero in length prefix {prefix!r}"
        if i == digits:
            return f"length prefix longer than {digits} digits: {prefix!r}"
    return None


class LengthPrefixedReceiver(_BufferedReceiver):
    """Delivers strings that follow a binary length prefix to :meth:`string_received`.

    ``prefix_format`` is the :mod:`struct` format of the prefix (an unsigned
    integer, network byte order); the subclasses below set it. A prefix
    announcing more than ``MAX_LENGTH`` bytes calls
    :meth:`length_limit_exceeded`, which by default logs a warning and closes
    the connection; every byte buffered or received after that is dropped.
    """

    prefix_format = "!I"
    MAX_LENGTH = 99999

    @property
    def prefix_limit(self) -> int:
        """The largest length the prefix can carry (255 for one byte, and so on)."""
        return int(2 ** (8 * struct.calcsize(self.prefix_format)) - 1)

    def string_received(self, s: bytes) -> None:
        """A whole string arrived (without its prefix). Override this."""
        raise NotImplementedError(f"{type(self).__name__} must define string_received()")

    def send_string(self, s: bytes) -> None:
        """Write the length prefix of ``s``, then ``s``.

        Raises TypeError unless ``s`` is bytes, and ValueError if it is longer
        than ``MAX_LENGTH`` or than the prefix can say.
        """
        if not isinstance(s, bytes | bytearray):
            raise TypeError(f"send_string() takes bytes, not {type(s).__name__}")
        limit = min(self.MAX_LENGTH, self.prefix_limit)
        if len(s) > limit:
            raise ValueError(
                f"string of {len(s)} bytes is too long: {type(self).__name__} sends at most"
                f" {limit} (MAX_LENGTH={self.MAX_LENGTH}, prefix {self.prefix_format!r})"
            )
        self.transport.write(struct.pack(self.prefix_format, len(s)) + s)

    def length_limit_exceeded(self, length: int) -> None:
        """A prefix announced ``length`` bytes, more than ``MAX_LENGTH``.

        By default, logs a warning and closes the connection.
        """
        log.warning(
            "%r: string of %d bytes from %s is over MAX_LENGTH=%d; closing the connection",
            self,
            length,
            _peer(self.transport),
            self.MAX_LENGTH,
        )
        _close(self.transport)

    def _process(self) -> None:
        buf = self._buffer
        assert buf is not None
        fmt = self.prefix_format
        size = struct.calcsize(fmt)
        while not self._broken:
            pos = self._pos
            if len(buf) - pos < size or _is_closing(self.transport):
                return
            (length,) = struct.unpack_from(fmt, buf, pos)
            if length > self.MAX_LENGTH:
                self._break()
                self.length_limit_exceeded(length)
                return
            start = pos + size
            end = start + length
            if len(buf) < end:
                return
            self._pos = end
            self.string_received(bytes(buf[start:end]))


class Int8StringReceiver(LengthPrefixedReceiver):
    r"""Strings after a one-byte length: at most 255 bytes each.

    Example::

        >>> from netshell.testing import StringTransport
        >>> class Show(Int8StringReceiver):
        ...     def string_received(self, s):
        ...         print(s)
        >>> p, t = Show(), StringTransport()
        >>> p.connection_made(t)
        >>> p.data_received(b"\x02hi\x00")
        b'hi'
        b''
        >>> p.send_string(b"abc"); t.value()
        b'\x03abc'
    """

    prefix_format = "!B"
    MAX_LENGTH = 255


class Int16StringReceiver(LengthPrefixedReceiver):
    r"""Strings after a two-byte big-endian length: at most 65535 bytes each.

    Example::

        >>> from netshell.testing import StringTransport
        >>> class Show(Int16StringReceiver):
        ...     def string_received(self, s):
        ...         print(s)
        >>> p, t = Show(), StringTransport()
        >>> p.connection_made(t)
        >>> p.data_received(b"\x00\x02h")
        >>> p.data_received(b"i")
        b'hi'
        >>> p.send_string(b"abc"); t.value()
        b'\x00\x03abc'
    """

    prefix_format = "!H"
    MAX_LENGTH = 65535


class Int32StringReceiver(LengthPrefixedReceiver):
    r"""Strings after a four-byte big-endian length, at most ``MAX_LENGTH`` (99999) bytes.

    The prefix could say 4 GiB; the default limit keeps one peer from making
    the process buffer that much. Raise ``MAX_LENGTH`` in a subclass if the
    protocol needs longer strings.

    Example::

        >>> from netshell.testing import StringTransport
        >>> class Show(Int32StringReceiver):
        ...     def string_received(self, s):
        ...         print(s)
        >>> p, t = Show(), StringTransport()
        >>> p.connection_made(t)
        >>> p.data_received(b"\x00\x00\x00\x02hi")
        b'hi'
        >>> p.send_string(b"abc"); t.value()
        b'\x00\x00\x00\x03abc'
    """

    prefix_format = "!I"
    MAX_LENGTH = 99999
