"""A connected socket's reads and writes on asyncio's selector loop, for accepted connections.

A listener on asyncio's own (selector) loop accepts connections itself and gives each one a
:class:`SocketIO`, in place of the transport ``loop.create_server`` would make. It does what
asyncio's socket transport does, as the :class:`~netshell.transport.StreamTransport` above it
uses it (the same methods, the same order of calls to it), and less: no Task and no future
per accepted connection, ``connection_made`` called at once rather than on the next turn of
the loop, no registry of transports, the socket's own name read only when asked for
(docs/performance.md, "FTP", measures what it saves).

On another loop (uvloop), listeners keep asyncio's ``create_server``: the loop owns the
socket there.

Flow control is asyncio's: ``pause_writing()`` once more than the high-water mark (64 KiB by
default) waits to be sent, ``resume_writing()`` once it is down to the low-water mark (a
quarter of it). Files go out with sendfile(2) through ``loop.sock_sendfile`` (:meth:`sendfile`);
meanwhile a write raises RuntimeError, as it does on asyncio's transport.

Unlike asyncio's transport, it calls its protocol in one context (:mod:`contextvars`), the
one it was made in (a listener's accept runs in the listener's maker's): its reader, its
writer and the call of ``connection_lost`` are made in copies of it, whichever code resumes
reading, writes, closes or aborts (in a Jupyter kernel, another cell).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
from typing import Any

__all__ = ["SocketIO"]

log = logging.getLogger("netshell.transport")

#: bytes asked of each recv: under glibc's default mmap threshold (128 KiB)
READ_SIZE = 127 * 1024
#: asyncio's default write-buffer limits
HIGH_WATER = 64 * 1024


class SocketIO:
    """Reads and writes one connected, non-blocking socket for ``protocol`` (an
    asyncio-style protocol: ``connection_made``, ``data_received``, ``eof_received``,
    ``connection_lost``, ``pause_writing``, ``resume_writing``).

    ``connection_made`` is called from the constructor, then reading starts (unless the
    protocol paused it there). ``peername`` is the address accept() gave; ``nodelay``
    (for TCP) turns Nagle's algorithm off; ``sockname``, when the caller knows it (a
    listener bound to one address), spares asking the socket.
    """

    __slots__ = (
        "_buffer",
        "_closing",
        "_conn_lost",
        "_context",
        "_eof",
        "_fd",
        "_high",
        "_lent",
        "_loop",
        "_low",
        "_paused",
        "_peername",
        "_protocol",
        "_protocol_paused",
        "_sock",
        "_sockname",
        "_writing",
        "max_size",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: Any,
        peername: Any = None,
        nodelay: bool = False,
        sockname: Any = None,
    ) -> None:
        self._loop = loop
        self._context = contextvars.copy_context()  # never entered itself: copies are
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._peername = peername
        self._sockname: Any = sockname
        self._buffer = bytearray()
        self._closing = False
        self._conn_lost = 0
        self._eof = False
        self._paused = False
        self._protocol_paused = False
        self._lent = False
        #: the loop watches the socket for writing (while the buffer holds something)
        self._writing = False
        self._high = HIGH_WATER
        self._low = HIGH_WATER // 4
        self.max_size = READ_SIZE
        if nodelay:
            # Small writes go out at once, as on asyncio's TCP transports (no Nagle delay).
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            protocol.connection_made(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:  # CancelledError too: this connection only
            self._fatal_error(e, "Fatal error: protocol.connection_made() call failed.")
            return
        if not self._closing and not self._paused:
            loop.add_reader(self._fd, self._read_ready)

    # ---- reading

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        try:
            data = self._sock.recv(self.max_size)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except Exception as e:
            self._fatal_error(e, "Fatal read error on socket transport")
            return
        if not data:
            self._on_eof()
            return
        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:
            self._fatal_error(e, "Fatal error: protocol.data_received() call failed.")

    def _on_eof(self) -> None:
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:
            self._fatal_error(e, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # Still writable: only reading is over.
            self._loop.remove_reader(self._fd)
        else:
            self.close()

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._context.copy().run(self._loop.add_reader, self._fd, self._read_ready)

    # ---- writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._lent:
            raise RuntimeError("unable to write; sendfile is in progress")
        if isinstance(data, memoryview) and (data.itemsize != 1 or data.ndim != 1):
            data = data.cast("B")  # counted and cut in bytes, as send() counts
        if not data:
            return
        if self._conn_lost:
            self._conn_lost += 1  # dropped: the connection is gone
            return
        buffer = self._buffer
        if not buffer:
            try:
                n = self._sock.send(data)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                n = 0
            except Exception as e:
                self._fatal_error(e, "Fatal write error on socket transport")
                return
            if n == len(data):
                return
            data = memoryview(data)[n:]
            self._writing = True
            # not per write: once each time the kernel's buffer fills
            self._context.copy().run(self._loop.add_writer, self._fd, self._write_ready)
        buffer.extend(data)
        self._maybe_pause_protocol()

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def _write_ready(self) -> None:
        buffer = self._buffer
        if self._conn_lost or not buffer:
            return
        try:
            n = self._sock.send(buffer)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except Exception as e:
            self._stop_writing()
            buffer.clear()
            self._fatal_error(e, "Fatal write error on socket transport")
            return
        if n:
            del buffer[:n]
        self._maybe_resume_protocol()  # may write more
        if not buffer:
            self._stop_writing()
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._shutdown_write()

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and len(self._buffer) <= self._low:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except Exception:
                log.exception("Error in %r.resume_writing", self._protocol)

    def _maybe_pause_protocol(self) -> None:
        if len(self._buffer) > self._high and not self._protocol_paused:
            self._protocol_paused = True
            try:
                self._protocol.pause_writing()
            except Exception:
                log.exception("Error in %r.pause_writing", self._protocol)

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)  # type: ignore[union-attr]
        except OSError as e:
            self._fatal_error(e, "Fatal error on shutdown")

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._shutdown_write()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    async def sendfile(self, file: Any, offset: int, count: int) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` with sendfile(2) (asyncio's
        ``loop.sock_sendfile``, which leaves the file's position after the bytes sent).
        The write buffer must be empty; reading is paused meanwhile and writing refused."""
        if self._closing or self._sock is None:
            raise RuntimeError("Transport is closing")
        if self._buffer:
            raise RuntimeError("the write buffer is not empty")
        resume = self.is_reading()
        self.pause_reading()
        self._lent = True
        try:
            return await self._loop.sock_sendfile(self._sock, file, offset, count, fallback=False)
        finally:
            self._lent = False
            if resume:
                self.resume_reading()

    # ---- closing

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Close once the write buffer is sent; the protocol hears of it on the next turn."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._stop_writing()
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None, context=self._context.copy())

    def abort(self) -> None:
        """Close at once, dropping what is not yet sent."""
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            # A bug in the protocol: the loop's handler reports it (the reactor logs it).
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self,
                 "protocol": self._protocol}
            )
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        self._buffer.clear()
        self._stop_writing()
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc, context=self._context.copy())

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._protocol is None:
            return  # told already (a close that waited for the buffer, then an abort)
        self._conn_lost += 1  # what is written from now on is dropped
        try:
            self._protocol.connection_lost(exc)
        finally:
            sock, self._sock = self._sock, None
            if sock is not None:
                if self._sockname is None:
                    self._name(sock)  # still told once the connection is closed
                sock.close()
            self._protocol = None

    # ---- inspection

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sock = self._sock
        if name == "socket":
            return sock if sock is not None else default
        if name == "peername":
            if self._peername is None and sock is not None:
                try:
                    self._peername = sock.getpeername()
                except OSError:
                    return default
            return self._peername if self._peername is not None else default
        if name == "sockname":
            if self._sockname is None and sock is not None:
                self._name(sock)
            return self._sockname if self._sockname is not None else default
        return default

    def _name(self, sock: socket.socket) -> None:
        try:
            self._sockname = sock.getsockname()
        except OSError:
            pass

    def get_protocol(self) -> Any:
        return self._protocol

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else "closing" if self._closing else "open"
        return f"<SocketIO fd={self._fd} {state} buffer={len(self._buffer)}>"
