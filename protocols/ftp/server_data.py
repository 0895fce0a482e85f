"""The FTP server's data connections: setting one up (PASV/EPSV, PORT/EPRT) and transfers on it.

A :class:`DataChannel` is what PASV, EPSV, PORT or EPRT prepared for the next transfer: a
one-shot listener (passive; it takes one connection, from the control connection's peer
address only, and stops listening) or an address to connect to (active; only the client's
own address, never a port below 1024: the control protocol checks that). Its
:meth:`DataChannel.connection` gives the connection once it is there, with TLS on it when
the session asked for PROT P (the server is the TLS server on data connections too).

With ``require_tls_reuse`` the data connection's handshake must resume a TLS session, as
vsftpd's ``require_ssl_reuse`` demands (a stranger who stole the data port cannot, lacking
the control connection's session ticket or id). pyOpenSSL has no public way to ask, so the
answer is OpenSSL's ``SSL_session_reused``, read by netshell's TLS layer
(``transport.tls.session_reused``, through pyOpenSSL's private cffi binding). Like vsftpd's,
the check says that *a* session of this server was resumed, not whose: sessions and tickets
are the server context's, shared by all its connections.

A :class:`Transfer` moves one file or listing over that connection: out with sendfile(2)
(``transport.send_file``) for binary files on plain TCP, else with a pull producer that
reads the next piece only when the transport wants one (flow control: a slow client never
makes the server buffer more than a piece); in into an
:class:`~protocols.ftp.filesystem.Upload`: by the kernel (``transport.receive_file``,
splice(2) from the socket into the file) for binary uploads on plain TCP, else written as
it arrives (TYPE A converts line ends; disk writes are synchronous, so nothing piles up).
It reports to the control connection once, with the reply to send (226 complete, 426 cut,
425 no connection...), and a line for the transfer log.

Each data connection's protocol (:class:`DataProtocol`) has ``control``, the control
connection's protocol, and ``role`` ``"ftp-data"``: the prompt's ``conns()`` shows which
control connection a data connection serves.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from netshell.defer import Deferred, fail
from netshell.errors import ConnectionClosed, ConnectionDone
from netshell.failure import Failure
from netshell.protocol import Factory, Protocol
from protocols.ftp.core import AsciiDecoder, AsciiEncoder, Reply
from protocols.ftp.filesystem import FSError, Upload

__all__ = ["DataChannel", "DataProtocol", "DataRefused", "Transfer", "peer_gone", "same_host"]

log = logging.getLogger("netshell.ftp")

#: bytes read from a file per piece when it is not sent with sendfile(2)
PIECE = 256 * 1024
#: how many random ports of ``passive_ports`` are tried before PASV gives up
PASSIVE_TRIES = 50


def same_host(a: str, b: str) -> bool:
    """Whether two address strings name the same host (``::ffff:1.2.3.4`` is ``1.2.3.4``)."""
    return a.removeprefix("::ffff:").lower() == b.removeprefix("::ffff:").lower()


class DataRefused(Exception):
    """A data connection could not be had; ``reply`` is what the transfer command gets."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


class DataProtocol(Protocol):
    """One data connection's protocol: hands what it gets to the transfer using it.

    ``control`` is the control connection's protocol, ``role`` is ``"ftp-data"``.
    """

    display_name = "ftp data"
    role = "ftp-data"

    def __init__(self, control: Any) -> None:
        self.control = control
        self.transport: Any = None
        #: the transfer using this connection (it gets data, end of file, loss)
        self.transfer: Transfer | None = None
        self.lost = False
        self.lost_reason: Failure | None = None
        #: what arrived before a transfer took the connection (a client may start early)
        self._early: list[bytes] = []
        self._early_eof = False
        self._made: Callable[[DataProtocol], None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        made, self._made = self._made, None
        if made is not None:
            made(self)

    def data_received(self, data: bytes) -> None:
        transfer = self.transfer
        if transfer is None:
            self._early.append(data)
            if sum(map(len, self._early)) > PIECE:
                self.transport.pause_reading()  # no transfer yet: hold at most a piece
            return
        transfer.received(data)

    def eof_received(self) -> bool | None:
        transfer = self.transfer
        if transfer is None:
            self._early_eof = True
            return True  # kept open until a transfer takes it (it may only send)
        return transfer.eof()

    def connection_lost(self, reason: Failure) -> None:
        self.lost = True
        self.lost_reason = reason
        forget = getattr(self.control, "data_connection_lost", None)
        if forget is not None:
            forget(self)
        transfer = self.transfer
        if transfer is not None:
            transfer.lost(reason)

    def attach(self, transfer: Transfer) -> None:
        """Hand the connection to ``transfer``, with what arrived before it."""
        self.transfer = transfer
        early, self._early = self._early, []
        for data in early:
            transfer.received(data)
        if self._early_eof and not transfer.finished and not transfer.eof():
            self.transport.close()
        if self.lost and not transfer.finished:
            assert self.lost_reason is not None
            transfer.lost(self.lost_reason)
        elif not self.lost:
            self.transport.resume_reading()

    def __repr__(self) -> str:
        return f"<DataProtocol for {self.control!r}>"


class _DataFactory(Factory):
    """The factory of a data connection: the one-shot listener's, or the connector's."""

    display_name = "ftp data"

    def __init__(self, channel: DataChannel) -> None:
        self.channel = channel

    def build_protocol(self, addr: Any) -> DataProtocol | None:
        return self.channel._build(addr)


class DataChannel:
    """The data connection prepared for the next transfer: passive (a listener) or active.

    ``session`` is the control protocol (it gives the reactor, the TLS context, whether
    PROT P is on, timeouts, the peer's address). Make one with :meth:`listen` (PASV/EPSV)
    or :meth:`connect_to` (PORT/EPRT).
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.passive = False
        self.listener: Any = None
        #: where an active connection goes
        self.address: tuple[str, int] | None = None
        self.protocol: DataProtocol | None = None
        self._ready: Deferred[DataProtocol] | None = None
        self._waiters: list[Deferred[DataProtocol]] = []
        self._result: DataProtocol | DataRefused | None = None
        self._connecting: Deferred[Any] | None = None
        self.closed = False

    # ---- making one

    @classmethod
    def listen(
        cls, session: Any, interface: str, ports: Iterable[int] | None
    ) -> DataChannel:
        """A passive channel listening on ``interface`` (a random port of ``ports`` if given).

        Raises OSError when no port could be had.
        """
        channel = cls(session)
        channel.passive = True
        reactor = session.factory.reactor
        factory = _DataFactory(channel)
        if ports is None:
            channel.listener = reactor.listen_tcp(0, factory, interface=interface, backlog=4)
            return channel
        candidates = list(ports)
        random.shuffle(candidates)
        error: OSError | None = None
        for port in candidates[:PASSIVE_TRIES]:
            try:
                channel.listener = reactor.listen_tcp(port, factory, interface=interface,
                                                      backlog=4)
                return channel
            except OSError as e:
                error = e
        raise error or OSError("no passive port configured")

    @classmethod
    def connect_to(cls, session: Any, host: str, port: int) -> DataChannel:
        """An active channel: the connection is made when a transfer asks for it."""
        channel = cls(session)
        channel.address = (host, port)
        return channel

    @property
    def port(self) -> int:
        """The passive listener's port."""
        return int(self.listener.port) if self.listener is not None else 0

    @property
    def connected(self) -> bool:
        """A data connection is there already (a transfer gets 125, not 150)."""
        return self.protocol is not None and not self.protocol.lost

    # ---- the connection

    def _build(self, addr: Any) -> DataProtocol | None:
        session = self.session
        expected = session.peer_host
        host = getattr(addr, "host", "")
        if self.closed or self.protocol is not None:
            return None
        if self.passive and not same_host(host, expected):
            # RFC 2577: a data connection must come from the control connection's address;
            # the stranger is dropped and the real client may still come.
            log.warning(
                "refused a data connection from %s (the control connection of %s is from %s)",
                host, session.display_user, expected,
            )
            return None
        protocol = DataProtocol(session)
        protocol._made = self._made
        self.protocol = protocol
        return protocol

    def _made(self, protocol: DataProtocol) -> None:
        if self.listener is not None:
            self.listener.close()  # one-shot: no second connection is taken
            self.listener = None
        session = self.session
        session.data_connection_made(protocol)
        if session.prot_private:
            d = protocol.transport.start_tls(session.factory.tls)
            d.add_callbacks(self._tls_done, self._tls_failed, (protocol,), None, (protocol,))
            return
        self._settle(protocol)

    def _tls_done(self, info: Any, protocol: DataProtocol) -> None:
        if self.session.factory.require_tls_reuse:
            reused = getattr(info, "session_reused", None)
            if not reused:
                log.warning(
                    "refused a TLS data connection from %s (%s): it did not reuse the control "
                    "connection's TLS session", self.session.peer_host, self.session.display_user,
                )
                # Closed with close_notify, not reset: the client then reads the 522 on the
                # control connection instead of failing in its TLS layer.
                protocol.transport.close()
                self._settle(DataRefused(
                    Reply(522, "SSL connection failed: session reuse required.")))
                return
        self._settle(protocol)

    def _tls_failed(self, failure: Failure, protocol: DataProtocol) -> None:
        log.info("TLS on the data connection of %s failed: %s", self.session.peer_host,
                 failure.value)
        protocol.transport.abort()
        self._settle(DataRefused(Reply(522, "TLS negotiation failed on the data connection.")))

    def _settle(self, result: DataProtocol | DataRefused) -> None:
        if self._result is not None:
            return
        self._result = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if isinstance(result, DataRefused):
                d.errback(result)
            else:
                d.callback(result)

    def connection(self, timeout: float) -> Deferred[DataProtocol]:
        """The data connection once it is there (and its TLS up): made now for an active
        channel. Fails with DataRefused (425 when none comes within ``timeout`` seconds)."""
        if self._result is not None:
            if isinstance(self._result, DataRefused):
                return fail(self._result)
            d0: Deferred[DataProtocol] = Deferred()
            d0.callback(self._result)
            return d0
        d: Deferred[DataProtocol] = Deferred()
        self._waiters.append(d)
        clock = self.session.factory.clock
        timer = clock.call_later(timeout, self._timed_out)

        def stop_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        d.add_both(stop_timer)
        if self.address is not None and self._connecting is None and self.protocol is None:
            self._connect()
        return d

    def _connect(self) -> None:
        assert self.address is not None
        session = self.session
        host, port = self.address
        reactor = session.factory.reactor
        bind = (session.local_host, 0)
        try:
            self._connecting = reactor.connect_tcp(
                host, port, _DataFactory(self), timeout=session.factory.data_timeout,
                bind_address=bind,
            )
        except Exception as e:  # a bad address: refused like a failed connect
            self._settle(DataRefused(Reply(425, f"Can't open data connection: {e}")))
            return
        self._connecting.add_errback(self._connect_failed)

    def _connect_failed(self, failure: Failure) -> None:
        self._settle(DataRefused(Reply(425, "Can't open data connection.")))

    def _timed_out(self) -> None:
        self._settle(DataRefused(Reply(425, "Can't open data connection: timed out.")))
        self.close()

    def close(self) -> None:
        """Give up the channel: stop listening, and drop a connection no transfer took."""
        if self.closed:
            return
        self.closed = True
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()
        protocol = self.protocol
        if (protocol is not None and protocol.transfer is None and not protocol.lost
                and not protocol.transport.is_closing()):
            protocol.transport.abort()
        self._settle(DataRefused(Reply(426, "Data connection closed; transfer aborted.")))


# ---- transfers


def _outq(transport: Any) -> int:
    """Bytes the kernel still holds to send on ``transport``'s socket (progress of sendfile)."""
    try:
        sock = transport.get_extra_info("socket")
        if sock is None:
            return 0
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        return int(struct.unpack("i", raw)[0])
    except (OSError, AttributeError, ValueError):
        return 0


def peer_gone(transport: Any) -> bool:
    """Whether the peer of ``transport`` has ended its side already (an end of file or a
    reset waits unread on the socket): the client is gone, whatever the data connection
    said. Reads nothing (MSG_PEEK)."""
    if getattr(transport, "lost", False):
        return True
    try:
        sock = transport.get_extra_info("socket")
    except AttributeError:
        return False
    if sock is None:
        return False
    try:
        dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
    except (OSError, ValueError):
        return True  # the socket is closed already
    try:
        data = dup.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False  # nothing waits: alive
    except OSError:
        return True  # reset
    finally:
        dup.close()
    return data == b""


class Transfer:
    """One transfer on a data connection; ``done(reply, transfer)`` is called once at the end.

    ``verb`` (``RETR``, ``STOR``, ``LIST``...) and ``path`` name it for the log;
    ``direction`` is ``"out"`` (to the client) or ``"in"``.
    """

    def __init__(
        self,
        session: Any,
        verb: str,
        path: str,
        direction: str,
        done: Callable[[Reply, Transfer], None],
    ) -> None:
        self.session = session
        self.verb = verb
        self.path = path
        self.direction = direction
        self._done = done
        self.data: DataProtocol | None = None
        self._bytes = 0
        self.started = time.monotonic()
        self.finished = False
        self.complete = False
        self.ascii = False
        # out
        self._file: Any = None
        self._chunks: Iterator[bytes] | None = None
        self._sent_all = False
        self._sending_file = False
        # in
        self.upload: Upload | None = None
        self._decoder: AsciiDecoder | None = None
        #: the transport's receive_file while the kernel writes the upload
        self._receiving: Deferred[int] | None = None
        # the data connection's stall timer
        self._timer: Any = None
        self._progress: tuple[int, int] = (-1, -1)

    # ---- starting

    def send_file(self, data: DataProtocol, file: Any, offset: int, ascii: bool) -> None:
        """Send ``file`` (open, at ``offset``) on ``data``: sendfile(2) when binary on plain
        TCP, else by pieces as the transport drains."""
        self._file = file
        self._begin(data)
        transport = data.transport
        if not ascii and transport.tls is None and hasattr(transport, "send_file"):
            self._sending_file = True
            d = transport.send_file(file, offset)
            d.add_callbacks(self._file_sent, self._file_failed)
            return
        self.ascii = ascii
        self._chunks = _file_pieces(file, ascii)
        transport.register_producer(self, False)

    def send_chunks(self, data: DataProtocol, chunks: Iterable[bytes]) -> None:
        """Send ``chunks`` (a listing) on ``data``, one as the transport wants it."""
        self._begin(data)
        self._chunks = iter(chunks)
        data.transport.register_producer(self, False)

    def receive(self, data: DataProtocol, upload: Upload, ascii: bool) -> None:
        """Write what ``data`` brings into ``upload`` until the client ends it: by the
        kernel (``transport.receive_file``) when binary on plain TCP."""
        self.upload = upload
        self.ascii = ascii
        self._decoder = AsciiDecoder() if ascii else None
        self._begin(data)  # what came early is written here, through received()
        transport = data.transport
        if (ascii or self.finished or data.lost or not hasattr(transport, "receive_file")
                or getattr(transport, "tls", None) is not None):
            return
        d = self._receiving = transport.receive_file(upload.fileno())
        d.add_callbacks(self._file_received, self._receive_failed)

    def _sync_written(self) -> None:
        """Count what receive_file wrote into the upload so far: its file position, past
        where the upload started and what was counted already."""
        upload = self.upload
        if upload is None or upload.closed:
            return
        try:
            position = os.lseek(upload.fileno(), 0, os.SEEK_CUR)
        except OSError:
            return
        count = position - upload.offset - upload.written
        if count > 0:
            upload.wrote(count)
            self._bytes += count

    def _file_received(self, count: int) -> None:
        """receive_file saw the client's end of file: the data connection's eof_received,
        which comes next, commits the upload (:meth:`eof`)."""
        self._sync_written()
        self._receiving = None

    def _receive_failed(self, failure: Failure) -> None:
        self._sync_written()
        self._receiving = None
        if self.finished or failure.check(ConnectionClosed):
            return  # lost(): the data connection tells the transfer next
        e = failure.value
        if isinstance(e, OSError) and self.upload is not None:
            fs_error = self.upload.error(e)
            log.warning("writing %s for %s failed: %s", self.path, self.session.peer_host, e)
            self._finish(Reply(fs_error.code if fs_error.code >= 400 else 451,
                               f"Write failed: {_reason(fs_error)}"), False)
            return
        log.error("receiving %s for %s failed: %s", self.path, self.session.peer_host, e)
        self._finish(Reply(451, "Requested action aborted: local error in processing."), False)

    def _begin(self, data: DataProtocol) -> None:
        self.data = data
        self.started = time.monotonic()
        self._arm()
        data.attach(self)

    # ---- the stall timer: no progress for data_timeout seconds ends the transfer

    def _arm(self) -> None:
        timeout = self.session.factory.data_timeout
        if timeout:
            self._timer = self.session.factory.clock.call_later(timeout, self._check_stall)

    def _check_stall(self) -> None:
        self._timer = None
        if self.finished or self.data is None:
            return
        transport = self.data.transport
        moved = int(getattr(transport, "bytes_sent", 0))
        moved += int(getattr(transport, "bytes_received", 0))
        now = (moved, _outq(transport))
        if now == self._progress:
            log.info("data connection of %s stalled for %ss: aborted", self.session.peer_host,
                     self.session.factory.data_timeout)
            self._finish(Reply(426, "Data connection timed out; transfer aborted."), False)
            return
        self._progress = now
        self._arm()

    # ---- out: the transport's pull producer

    def resume_producing(self) -> None:
        if self.finished or self._chunks is None or self.data is None:
            return
        transport = self.data.transport
        try:
            chunk = next(self._chunks)
        except StopIteration:
            transport.unregister_producer()
            self._chunks = None
            self._all_sent()
            return
        except OSError as e:
            transport.unregister_producer()
            log.warning("reading %s for %s failed: %s", self.path, self.session.peer_host, e)
            self._finish(Reply(451, "Requested action aborted: local error in processing."),
                         False)
            return
        if chunk:
            self.bytes += len(chunk)
            transport.write(chunk)

    def pause_producing(self) -> None:
        pass  # a pull producer is not asked while the write buffer is full

    def stop_producing(self) -> None:
        pass  # connection_lost tells the transfer

    def _file_sent(self, count: int) -> None:
        self._sending_file = False
        if self.finished:
            self._close_file()  # ended meanwhile (ABOR): the kernel is done with the file now
            return
        self._all_sent()

    def _file_failed(self, failure: Failure) -> None:
        self._sending_file = False
        if not self.finished:
            self._finish(Reply(426, "Connection closed; transfer aborted."), False)
        else:
            self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _all_sent(self) -> None:
        """Everything is written: close the data connection; 226 once it is closed (the
        client has it all then)."""
        self._sent_all = True
        if self.data is not None:
            if self.data.lost:
                self._finish(Reply(226, "Transfer complete."), True)
            else:
                self.data.transport.close()

    # ---- in

    def received(self, data: bytes) -> None:
        if self.finished or self.upload is None:
            return
        if self._decoder is not None:
            data = self._decoder.feed(data)
        self.bytes += len(data)
        try:
            self.upload.write(data)
        except (FSError, OSError) as e:
            code = e.code if isinstance(e, FSError) else 451
            log.warning("writing %s for %s failed: %s", self.path, self.session.peer_host, e)
            self._finish(Reply(code if code >= 400 else 451, f"Write failed: {_reason(e)}"),
                         False)

    def eof(self) -> bool | None:
        """The client ended its data: commit the upload, unless the client is gone."""
        if self.finished:
            return None
        if self.upload is None:
            return True  # sending: the client's end of file changes nothing
        self._sync_written()
        if self.session.gone():
            # The control connection ended too: a client that vanished, not one that finished.
            self._finish(Reply(426, "Connection closed; transfer aborted."), False)
            return None
        try:
            if self._decoder is not None:
                tail = self._decoder.flush()
                if tail:
                    self.bytes += len(tail)
                    self.upload.write(tail)
            self.upload.commit()
        except (FSError, OSError) as e:
            code = e.code if isinstance(e, FSError) else 451
            log.warning("storing %s for %s failed: %s", self.path, self.session.peer_host, e)
            self._finish(Reply(code if code >= 400 else 451, f"Store failed: {_reason(e)}"),
                         False, committed=True)
            return None
        self._finish(Reply(226, "Transfer complete."), True, committed=True)
        return None

    # ---- the end

    def lost(self, reason: Failure) -> None:
        if self.finished:
            return
        if self.direction == "out" and self._sent_all:
            self._finish(Reply(226, "Transfer complete."), True)
            return
        clean = reason.check(ConnectionDone) is not None
        if self.direction == "in" and clean and self.upload is not None:
            self.eof()  # closed without a separate end of file (as a TLS close does)
            if self.finished:
                return
        self._finish(Reply(426, "Connection closed; transfer aborted."), False)

    def abort(self, reply: Reply) -> None:
        """End the transfer now (ABOR, the control connection lost): ``reply`` to the client."""
        if not self.finished:
            self._finish(reply, False)

    def _finish(self, reply: Reply, complete: bool, committed: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        self.complete = complete
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.direction == "out" and self.data is not None:
            # What the data connection took: the file sent with sendfile(2) counted too.
            self.bytes = int(getattr(self.data.transport, "bytes_sent", self.bytes))
        if self._receiving is not None:
            self._sync_written()  # before the upload closes (aborting the connection ends it)
        if self.upload is not None and not committed:
            try:
                self.upload.abort()
            except (FSError, OSError) as e:
                log.warning("cleaning up %s failed: %s", self.path, e)
        if not self._sending_file:
            # (while sendfile(2) runs, the file stays open until the transport says the
            # kernel is done with it: aborting the connection below ends that first)
            self._close_file()
        data = self.data
        if data is not None and not data.lost:
            transport = data.transport
            if complete:
                transport.close()
            else:
                transport.abort()
        self._done(reply, self)

    # (last in the class: above, ``bytes`` in annotations is the built-in type)
    @property
    def bytes(self) -> int:
        """Bytes moved so far (in: written into the upload, after TYPE A conversion)."""
        if self._receiving is not None:
            self._sync_written()  # the kernel writes: the file's position tells how far
        return self._bytes

    @bytes.setter
    def bytes(self, value: int) -> None:
        self._bytes = value

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def _reason(e: BaseException) -> str:
    if isinstance(e, FSError):
        return str(e)
    return getattr(e, "strerror", None) or str(e)


def _file_pieces(file: Any, ascii: bool) -> Iterator[bytes]:
    encoder = AsciiEncoder() if ascii else None
    while True:
        data = file.read(PIECE)
        if not data:
            break
        yield encoder.feed(data) if encoder is not None else data
    if encoder is not None:
        tail = encoder.flush()
        if tail:
            yield tail
