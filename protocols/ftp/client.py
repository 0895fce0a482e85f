"""The FTP client: one control connection, its commands in order, transfers that stream.

``await ftp.connect("ftp://user:secret@host:2121/")`` (or ``connect(host, port, user=...,
password=...)``) answers with a logged-in :class:`FTPClient`. Its methods send one command
(or one transfer) each and return a Deferred: ``pwd``, ``cwd``, ``list`` (parsed
:class:`~protocols.ftp.core.FileInfo` entries: MLSD when the server has MLST, else LIST
parsed from Unix and DOS formats), ``nlst``, ``size``, ``mdtm``, ``retrieve`` and ``store``
(to or from a path, a file, bytes or a callable, resumable with ``offset``), ``append``,
``rename``, ``delete``, ``mkdir``, ``rmdir``, ``quote`` (any command; the Reply), ``abort``
and ``quit``. The module's :func:`download` and :func:`upload` connect, transfer, and
resume a broken transfer where it stopped (REST + RETR; SIZE, then REST + STOR or APPE).

- Commands are serialised: a call made while another is under way waits for it, so the
  control connection carries one command at a time and each reply goes to its command.
- Data connections: EPSV first, PASV when the server refuses EPSV (remembered for the rest
  of the session), the address always the control connection's peer (a PASV answer cannot
  send the data connection elsewhere); ``passive=False`` listens on the control
  connection's local address and sends PORT (EPRT on IPv6), taking a connection only from
  the server's address.
- FTPS: ``tls="explicit"`` (or True) sends AUTH TLS, ``tls="implicit"`` (or an ``ftps://``
  URL) speaks TLS from the first byte; the certificate is verified
  (``netshell.tls.client_context``: the system's trust store, or ``ca=``; ``context=`` gives
  one; ``verify=False`` turns it off). PBSZ 0 and PROT P protect the data connections, each
  of which resumes the control connection's TLS session, as servers that require session
  reuse (vsftpd's ``require_ssl_reuse``) demand and Python's ftplib cannot do.
- Errors are typed and carry the reply: :class:`~protocols.ftp.core.FTPTemporaryError`
  (4xx), :class:`~protocols.ftp.core.FTPPermanentError` (5xx),
  :class:`~protocols.ftp.core.FTPProtocolError`, and this module's
  :class:`FTPConnectionClosed`, :class:`FTPTimeoutError`, :class:`FTPTransferAborted` and
  :class:`FTPDataConnectionError`, all :class:`~protocols.ftp.core.FTPError`.
- Every wait is bounded by ``timeout`` seconds: a reply, a data connection, a TLS handshake,
  and a transfer during which nothing moves (a long transfer that moves is never cut).
- Transfers are TYPE I (binary); ``ascii=True`` uses TYPE A and converts line ends.
  Nothing is read into memory whole: files go out with ``send_file`` (sendfile(2) on plain
  TCP), received bytes go to the file or callable as they come.
- Progress: a transfer's ``progress(done, total)`` callable, or ``make_progress(label)``'s
  (the library's draws nothing; the shell installs its terminal bar, as for
  ``http.download``).

Example (no server needed to see the URL handling)::

    >>> url = parse_url("ftps://bob:s%40cret@files.example.org/pub/a.txt")
    >>> url.port, url.user, url.password, url.path
    (990, 'bob', 's@cret', 'pub/a.txt')
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeAlias, TypeVar
from urllib.parse import unquote, urlsplit

import netshell as ns
from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from netshell.reactor import Reactor, get_reactor
from protocols.ftp.core import (
    AsciiDecoder,
    AsciiEncoder,
    FileInfo,
    FTPError,
    FTPPermanentError,
    FTPProtocolError,
    FTPTemporaryError,
    Reply,
    ReplyReader,
    error_for,
    format_command,
    format_eprt,
    format_port,
    parse_epsv,
    parse_list_line,
    parse_mdtm,
    parse_mlsx_line,
    parse_pasv,
)

__all__ = [
    "FTPURL",
    "FTPClient",
    "FTPConnectionClosed",
    "FTPDataConnectionError",
    "FTPTimeoutError",
    "FTPTransferAborted",
    "FTPTransferIncomplete",
    "Listing",
    "connect",
    "download",
    "make_progress",
    "parse_url",
    "upload",
]

log = logging.getLogger("netshell.ftp.client")

T = TypeVar("T")
Progress: TypeAlias = Callable[[int, "int | None"], None]
#: where ``retrieve`` puts what it receives
Target: TypeAlias = "str | os.PathLike[str] | IO[bytes] | Callable[[bytes], Any] | None"
#: what ``store`` sends
Source: TypeAlias = "bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]"



class Listing(list[FileInfo]):
    """A directory's entries (:class:`~protocols.ftp.core.FileInfo`), a list that shows as
    a table at the prompt: size (exact; ``-`` for a directory or when unknown), modification
    time (local), name (a directory's with ``/``, a link's with ``@``).

    >>> Listing([FileInfo("a.txt", size=1234, mtime=0.0), FileInfo("sub", is_dir=True)])
    ... # doctest: +ELLIPSIS
           size  modified          name
          1,234  19...  a.txt
              -  -                 sub/
    >>> Listing()
    (an empty listing)
    """

    def __repr__(self) -> str:
        if not self:
            return "(an empty listing)"
        rows = [(f"{i.size:,}" if i.size >= 0 and not i.is_dir else "-",
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(i.mtime))
                 if i.mtime is not None else "-",
                 i.name + ("/" if i.is_dir else "@" if i.is_link else "")) for i in self]
        width = max(4, *(len(size) for size, _, _ in rows))
        lines = [f"  {'size':>{width}}  {'modified':<16}  name"]
        lines += [f"  {size:>{width}}  {when:<16}  {name}" for size, when, name in rows]
        return "\n".join(lines)


Entries: TypeAlias = "Listing"  # (FTPClient.list hides the builtin in its body)
Names: TypeAlias = "list[str]"
Chunks: TypeAlias = "list[bytes]"

#: the size in a 150 reply: "Opening BINARY mode data connection for a.bin (1234 bytes)"
_TOLD_SIZE = re.compile(r"\((\d+) bytes?\)", re.IGNORECASE)

#: a LIST line that is no entry: "total 12"
_TOTAL = re.compile(r"total\s+[0-9]+\s*$", re.IGNORECASE)

_PIECE = 256 * 1024  # read and sent this much at a time when not using sendfile(2)


# ---- errors of the client (the core's tree: FTPError > ...)


class FTPConnectionClosed(FTPError, ns.ConnectionClosed):
    """The control connection ended: every operation waiting on it fails with this.

    ``reply`` is the server's last word when it said one before closing (a 421), else None
    (``code`` 0).
    """


class FTPTimeoutError(FTPError, ns.TimeoutError):
    """No reply, data connection, handshake or transfer progress within the timeout."""


class FTPTransferAborted(FTPError):
    """The transfer was stopped by :meth:`FTPClient.abort` (or by cancelling it);
    ``reply`` is the server's reply to the transfer command (426, or 226 if it was done)."""


class FTPDataConnectionError(FTPError):
    """The data connection could not be made, or ended before the transfer was complete,
    while the server's reply (if any) did not say why."""


class FTPTransferIncomplete(FTPDataConnectionError):
    """A binary transfer ended (the server said 226) with another byte count than the
    size the server gave (SIZE, or its 150 reply's "(N bytes)"): ``expected`` and
    ``received`` say how many. :func:`download` resumes a short one."""

    def __init__(
        self, reply: Reply | None, message: str, *, expected: int = 0, received: int = 0
    ) -> None:
        super().__init__(reply, message)
        self.expected = expected
        self.received = received


class _SourceFailed(Exception):
    """The local source of an upload failed to read (carried out of the producer)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


#: what a broken transfer fails with, that trying again (and resuming) may cure
_TRANSIENT = (FTPTemporaryError, FTPDataConnectionError, ConnectionError, TimeoutError)


# ---- URLs


class FTPURL(NamedTuple):
    """An ``ftp://`` or ``ftps://`` URL, split: ``path`` is relative to the login directory
    (RFC 1738: ``ftp://host/%2Fetc/x`` for an absolute one), percent-decoded."""

    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None
    path: str


def parse_url(url: str) -> FTPURL:
    """Split an ``ftp://user:password@host:port/path`` URL (``ftps://``: implicit TLS, port
    990 by default). ValueError for another scheme or no host.

    >>> parse_url("ftp://127.0.0.1:2121/")
    FTPURL(scheme='ftp', host='127.0.0.1', port=2121, user=None, password=None, path='')
    >>> parse_url("http://example.org/")
    Traceback (most recent call last):
    ...
    ValueError: not an ftp:// or ftps:// URL: 'http://example.org/'
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ftp", "ftps"):
        raise ValueError(f"not an ftp:// or ftps:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or (990 if scheme == "ftps" else 21)
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    return FTPURL(scheme, parts.hostname, port, user, password, path)


# ---- the control connection


class _Control(ns.Protocol):
    """The control connection's protocol: replies in, handed out one at a time, in order.

    A reply nobody waits for yet is kept until someone asks. After an operation gave up
    (a timeout, a cancel), the final replies it was still owed are dropped as they come
    (``swallow``), so the next command gets its own.
    """

    display_name = "ftp client"

    def __init__(self) -> None:
        self.reader = ReplyReader()
        self.waiters: deque[Deferred[Reply]] = deque()
        self.ready: deque[Reply] = deque()
        self.swallow = 0
        self.last: Reply | None = None
        self.why_closed: str | None = None
        self.closed = False
        self.on_lost: Callable[[], None] | None = None
        self.lost_waiters: list[Deferred[None]] = []
        #: how many final replies the client is owed (None: not counted)
        self.owed: Callable[[], int] | None = None

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.reader.feed(data)
        except FTPProtocolError as e:
            log.warning("%s broke FTP: %s; closing the connection", self.transport.peer, e)
            self.why_closed = f"the server broke FTP ({e})"
            self.transport.abort()
            return
        for reply in replies:
            self._dispatch(reply)

    def _dispatch(self, reply: Reply) -> None:
        log.debug("%s <- %s", self.transport.peer, reply.text)
        self.last = reply
        if self.swallow:
            if reply.code >= 200:
                self.swallow -= 1
            return
        if not self.waiters and self.owed is not None:
            kept = sum(1 for r in self.ready if r.code >= 200)
            if reply.code >= 200 and kept >= self.owed():
                self._unsolicited(reply)
                return
        if self.waiters:
            self.waiters.popleft().callback(reply)
        else:
            self.ready.append(reply)

    def _unsolicited(self, reply: Reply) -> None:
        """A final reply with no command outstanding. A 421 (closing) is the one a server
        sends on its own: the session ends with it. Any other would be taken by the next
        command for its own and shift every later reply by one: the server is out of
        step, so the session is closed (no reply can be proved harmless)."""
        said = f"{reply.code} {' '.join(line.strip() for line in reply.lines)}"
        if reply.code == 421:
            self.why_closed = "the server is closing it"
            log.info("%s closes the session: %s", self.transport.peer, said)
            self.transport.close()
            return
        log.warning(
            "%s sent a reply with no command outstanding (%s): out of step; closing the session",
            self.transport.peer,
            said,
        )
        self.why_closed = f"the server is out of step: it sent {reply.code} unasked"
        self.transport.abort()

    def next_reply(self) -> Deferred[Reply]:
        """The next reply (kept, or to come); fails with FTPConnectionClosed after the end."""
        if self.ready:
            return ns.succeed(self.ready.popleft())
        if self.closed:
            return ns.fail(self.error())
        d: Deferred[Reply] = Deferred(self._forget)
        self.waiters.append(d)
        return d

    def _forget(self, d: Deferred[Reply]) -> None:
        try:
            self.waiters.remove(d)
        except ValueError:
            pass

    def drop(self, finals: int) -> None:
        """Drop the next ``finals`` final replies (those kept already first)."""
        self.swallow += finals
        while self.swallow and self.ready:
            if self.ready.popleft().code >= 200:
                self.swallow -= 1

    def when_lost(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.closed:
            d.callback(None)
        else:
            self.lost_waiters.append(d)
        return d

    def error(self, reply: Reply | None = None) -> FTPConnectionClosed:
        """The error for operations on a closed connection (carrying ``reply``, or the
        server's last 421)."""
        last = reply or (self.last if self.last is not None and self.last.code == 421 else None)
        why = self.why_closed or "the server closed it"
        said = f": {last.code} {' '.join(line.strip() for line in last.lines)}" if last else ""
        peer = self.transport.peer if self.transport is not None else "the server"
        return FTPConnectionClosed(
            last, f"the FTP control connection to {peer} is closed ({why}){said}"
        )

    def connection_lost(self, reason: Failure) -> None:
        self.closed = True
        if self.why_closed is None and not reason.check(ns.ConnectionDone):
            self.why_closed = f"lost: {reason.value}"
        waiters, self.waiters = self.waiters, deque()
        for w in waiters:
            w.errback(self.error())
        lost, self.lost_waiters = self.lost_waiters, []
        for d in lost:
            d.callback(None)
        if self.on_lost is not None:
            self.on_lost()


# ---- data connections


class _Data(ns.Protocol):
    """One data connection: received bytes to ``sink`` (with back-pressure when the sink
    answers with an awaitable); ``done`` fires when it ends (``reason`` says how).
    ``control`` is the control connection's protocol (``conns()`` shows "ftp data for #N").
    """

    display_name = "ftp data"

    def __init__(self, sink: Callable[[bytes], Any] | None, control: Any = None) -> None:
        self.control = control
        self.sink = sink
        self.received = 0
        self.made: Deferred[_Data] = Deferred()
        self.done: Deferred[None] = Deferred()
        self.reason: Failure | None = None  # how it ended
        self.error: BaseException | None = None
        self.cut = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.cut:
            transport.abort()  # came too late: the transfer was cut meanwhile
        if not self.made.called:
            self.made.callback(self)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.sink is None or self.error is not None:
            return
        try:
            result = self.sink(data)
        except Exception as e:
            self._failed(e)
            return
        if result is not None and inspect.isawaitable(result):
            self.transport.pause_reading()
            waited = ensure_deferred(result)
            waited.add_callbacks(lambda _: self.transport.resume_reading(), self._sink_failed)

    def _sink_failed(self, failure: Failure) -> None:
        self._failed(failure.value)

    def _failed(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.transport.abort()

    def connection_lost(self, reason: Failure) -> None:
        self.reason = reason
        if not self.done.called:
            self.done.callback(None)


class _DataFactory(ns.ClientFactory):
    """Gives its one protocol to the first connection from ``expect`` (None: any), then
    refuses the rest."""

    def __init__(self, protocol: _Data, expect: str | None = None) -> None:
        self.one: _Data | None = protocol
        self.expect = expect

    def build_protocol(self, addr: Any) -> ns.Protocol | None:
        if self.expect is not None and getattr(addr, "host", None) != self.expect:
            log.warning("refused a data connection from %s (not the server)", addr)
            return None
        one, self.one = self.one, None
        if one is not None:
            one.factory = self
        return one


class _SessionReuse:
    """A TLS client context whose connections resume the control connection's session.

    It stands for the :class:`netshell.tls.TLSContext` it wraps (``start_tls`` and the TLS
    layer see the same attributes); only :meth:`connection` differs: before the handshake,
    ``set_session`` with the session the control connection holds now (TLS 1.3 tickets
    arrive after its handshake, so it is asked each time, not once).
    """

    def __init__(self, context: Any, session: Callable[[], Any]) -> None:
        self._context = context
        self._session = session

    def connection(self, hostname: str | None = None) -> Any:
        conn = self._context.connection(hostname)
        session = self._session()
        if session is not None:
            try:
                conn.set_session(session)
            except Exception as e:  # pragma: no cover - pyOpenSSL refusing is not expected
                log.debug("cannot reuse the control connection's TLS session: %s", e)
        return conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _Watchdog:
    """Calls ``expire`` when ``moved()`` (a byte count) stays the same for ``seconds``."""

    def __init__(
        self,
        reactor: Reactor,
        seconds: float | None,
        moved: Callable[[], int],
        expire: Callable[[], None],
    ) -> None:
        self.reactor = reactor
        self.seconds = seconds
        self.moved = moved
        self.expire = expire
        self.expired = False
        self.last = -1
        self.timer: Any = None
        if seconds is not None:
            self.last = moved()
            self.timer = reactor.call_later(seconds, self._check)

    def _again(self) -> None:
        assert self.seconds is not None
        self.timer = self.reactor.call_later(self.seconds, self._check)

    def _check(self) -> None:
        now = self.moved()
        if now == self.last:
            self.timer = None
            self.expired = True
            self.expire()
            return
        self.last = now
        self._again()

    def stop(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


class _Transfer:
    """What an operation's transfer has going (for abort(), and a lost control connection)."""

    def __init__(self, data: _Data) -> None:
        self.data = data
        self.listener: Any = None
        self.started = False  # the transfer command was sent
        self.first: Reply | None = None  # the server's 1xx to the transfer command
        self.aborting: Deferred[Reply | None] | None = None

    def cut(self) -> None:
        data = self.data
        data.cut = True
        if data.transport is not None:
            data.transport.abort()
        else:  # not connected (yet): whoever waits for it stops waiting
            if not data.made.called:
                data.made.callback(None)
            if not data.done.called:
                data.done.callback(None)
        if self.listener is not None:
            self.listener.close()
            self.listener = None


# ---- progress


def no_progress(label: str) -> Progress | None:
    """The library's own ``make_progress``: no progress display."""
    return None


#: How transfers make their progress display when none is given: called with a label
#: (``"RETR a.txt"``), returns a callable(done, total), optionally with ``finish()``, or
#: None. The library draws nothing; the shell sets this to its terminal bar (as it does
#: for ``protocols.http.client.make_progress``).
make_progress: Callable[[str], Progress | None] = no_progress


# ---- the client


class FTPClient:
    """A logged-in FTP session on one control connection (made by :func:`connect`).

    ``host``, ``port``, ``user``, ``tls`` (None, ``"explicit"`` or ``"implicit"``),
    ``directory`` (the working directory as the server last named it), ``passive``
    (settable), ``timeout`` (settable), ``data_tls`` (the last data connection's TLS
    details), ``features`` (FEAT's answer: upper-case name ->
    parameters), ``welcome`` (the server's greeting) and ``closed``. Every method returns a
    Deferred; calls wait for the one before to finish. See the module docstring.
    """

    def __init__(
        self,
        control: _Control,
        *,
        host: str,
        port: int,
        tls: str | None,
        context: Any,
        passive: bool,
        timeout: float | None,
        reactor: Reactor,
    ) -> None:
        self._control = control
        self.host = host
        self.port = port
        self.tls = tls
        self._context = context
        self.passive = passive
        self.timeout = timeout
        self.reactor = reactor
        self.user: str | None = None
        self.directory: str | None = None
        self.features: dict[str, str] = {}
        self.welcome: Reply | None = None
        #: the TLS details of the last data connection (``session_reused`` says whether it
        #: resumed the control connection's session), None without PROT P
        self.data_tls: Any = None
        self._owed = 1  # final replies the server owes us (its greeting first)
        self._epsv = True
        self._mlsd = True  # MLSD when FEAT says MLST, until the server refuses it
        self._type: str | None = None
        self._prot_p = False
        self._queue: deque[Deferred[None]] = deque()
        self._busy = False
        self._transfer: _Transfer | None = None
        self._quitting = False
        self._resync = False  # replies up to a NOOP's are owed (a stalled transfer)
        self._ready = False  # connect() has handed the session out
        control.on_lost = self._control_lost
        control.owed = lambda: self._owed

    # ---- state

    @property
    def closed(self) -> bool:
        """Whether the control connection has ended."""
        return self._control.closed

    def __repr__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        where = f"{who}{self.host}:{self.port}"
        parts = [where]
        if self.directory is not None:
            parts.append(repr(self.directory))
        if self.tls:
            parts.append(f"TLS {self.tls}")
        if self.closed:
            parts.append("closed")
        elif self._transfer is not None:
            parts.append("transferring")
        return f"<FTPClient {' '.join(parts)}>"

    # ---- serialising

    def _run(self, work: Callable[[], Coroutine[Any, Any, T]]) -> Deferred[T]:
        """Run ``work`` once every operation started before has finished."""

        async def run() -> T:
            await self._acquire()
            try:
                if self.closed:
                    raise self._control.error()
                if self._resync:
                    await self._resynchronise()
                try:
                    return await work()
                except BaseException:
                    # Gave up (error, timeout, cancel) with replies still owed: they are
                    # dropped as they come, so the next command gets its own.
                    if self._owed and not self._resync:
                        self._control.drop(self._owed)
                        self._owed = 0
                    raise
            finally:
                self._release()

        return ensure_deferred(run())

    async def _acquire(self) -> None:
        if not self._busy:
            self._busy = True
            return
        turn: Deferred[None] = Deferred(self._leave_queue)
        self._queue.append(turn)
        try:
            await turn  # _release hands the turn over with _busy still True
        except BaseException:
            if turn.called and not isinstance(turn.result, Failure):
                self._release()  # handed the turn, then cancelled before it woke: pass it on
            raise

    def _leave_queue(self, d: Deferred[None]) -> None:
        try:
            self._queue.remove(d)
        except ValueError:
            pass

    def _release(self) -> None:
        if self._queue:
            self._queue.popleft().callback(None)
        else:
            self._busy = False

    # ---- the control connection

    def _send(self, verb: str, arg: str = "") -> None:
        line = format_command(verb, arg)  # ValueError for a CR, LF or NUL in arg
        if self.closed:
            raise self._control.error()
        shown = "PASS ****" if verb.upper() == "PASS" else line.decode("utf-8", "replace").rstrip()
        log.debug("%s -> %s", self.host, shown)
        self._control.transport.write(line)
        self._owed += 1

    async def _reply(self, what: str, bounded: bool = True) -> Reply:
        """The next reply (1xx included), within the timeout (``bounded``)."""
        d = self._control.next_reply()
        if bounded and self.timeout is not None and not d.called:
            d.add_timeout(self.timeout)
        try:
            reply = await d
        except ns.TimeoutError:
            raise FTPTimeoutError(
                None, f"no reply to {what} from {self.host} within {self.timeout} seconds"
            ) from None
        if reply.code >= 200:
            self._owed -= 1
        if reply.code == 421:
            # "Service not available, closing control connection": whatever it answers.
            self._control.why_closed = "the server is closing it"
            self._control.transport.close()
            raise self._control.error(reply)
        return reply

    async def _final(self, what: str, bounded: bool = True) -> Reply:
        while True:
            reply = await self._reply(what, bounded)
            if reply.code >= 200:
                return reply

    def _watch_final(self, transfer: _Transfer, verb: str) -> Deferred[Reply]:
        """The transfer command's final reply, listened for while the data moves (no
        bound: a long transfer is the watchdog's business): an error reply cuts the data
        connection at once, so the transfer fails with it rather than waiting."""

        def judged(reply: Reply) -> Reply:
            if reply.kind not in (1, 2):
                transfer.cut()
            return reply

        def gone(failure: Failure) -> Failure:
            transfer.cut()  # the control connection ended (or a 421)
            return failure

        final = ensure_deferred(self._final(verb, bounded=False))
        final.add_callbacks(judged, gone)
        return final

    async def _await_final(self, final: Deferred[Reply], label: str) -> Reply:
        """The final reply watched by :meth:`_watch_final`, now that the data is done:
        within the timeout."""
        if final.called or self.timeout is None:
            return await final
        waited: Deferred[None] = Deferred()

        def wake(result: Any = None) -> Any:
            if not waited.called:
                waited.callback(None)
            return result

        final.add_both(wake)
        timer = self.reactor.call_later(self.timeout, wake)
        try:
            await waited
        finally:
            if timer.active():
                timer.cancel()
        if not final.called:
            raise FTPTimeoutError(
                None, f"no reply to {label} from {self.host} within {self.timeout} seconds"
            )
        return await final

    def _stalled(self) -> None:
        """A transfer stalled and was cut: ABOR (a server still in it ends it) and NOOP,
        whose 200 marks the end of the replies owed; the next operation reads them."""
        if self.closed:
            return
        self._send("ABOR")
        self._send("NOOP")
        self._resync = True

    async def _resynchronise(self) -> None:
        """Read the replies owed up to NOOP's 200 (see :meth:`_stalled`); a server that
        does not give them within the timeout is out of step: the session is closed."""
        self._resync = False
        try:
            while (await self._final("NOOP")).code != 200:
                pass
            self._owed = 0
        except FTPTimeoutError:
            self._control.why_closed = "the server is out of step after a stalled transfer"
            self.close()
            raise self._control.error() from None

    @staticmethod
    def _settle(final: Deferred[Reply] | None) -> None:
        """A watched final reply nobody will await: stop waiting, and its error is no news."""
        if final is None:
            return
        if not final.called:
            final.cancel()
        final.add_errback(lambda _: None)

    async def _command(self, verb: str, arg: str = "", ok: tuple[int, ...] = (2,)) -> Reply:
        """Send a command; its final reply, or its error when the first digit is not in ``ok``."""
        self._send(verb, arg)
        reply = self._in_step(verb, await self._final(verb))
        if reply.kind not in ok:
            raise error_for(reply)
        return reply

    def _in_step(self, verb: str, reply: Reply) -> Reply:
        """``reply`` if it may answer ``verb`` (RFC 959 §5.4's command-reply sequences);
        else the server is out of step (an extra reply shifted every later one): the
        session is closed and this raises FTPProtocolError."""
        if _fits(verb.upper(), reply):
            return reply
        error = FTPProtocolError(
            reply, f"unexpected reply {reply.code} to {verb}: the server is out of step"
        )
        log.warning("%s: %s; closing the session", self.host, error)
        if not self.closed:
            self._control.why_closed = f"out of step: {reply.code} to {verb}"
            self._control.transport.abort()
        raise error

    def _control_lost(self) -> None:
        if self._transfer is not None:
            self._transfer.cut()
        if not self._quitting:
            # A session that never got going (a refused TLS handshake, a failed login)
            # fails connect() with the reason: a line at INFO would only stand above it.
            log.log(
                logging.INFO if self._ready else logging.DEBUG,
                "FTP control connection to %s:%s ended",
                self.host,
                self.port,
            )

    # ---- session set-up (used by connect)

    async def _greet(self) -> None:
        reply = await self._final("the connection (greeting)")
        if reply.kind != 2:
            raise error_for(reply)
        self.welcome = reply

    async def _start_tls(self) -> None:
        reply = await self._command("AUTH", "TLS", ok=(2, 3))
        if reply.code not in (234, 334):
            raise FTPProtocolError(reply, f"AUTH TLS answered {reply.code}, not 234")
        started = self._control.transport.start_tls(self._context)
        await self._bounded(started, "the TLS handshake")

    async def _login(self, user: str, password: str, account: str) -> None:
        reply = await self._command("USER", user, ok=(2, 3))
        if reply.kind == 3:
            if not password and user.lower() in ("anonymous", "ftp"):
                password = "anonymous@"  # what ftplib sends: some servers want an address
            reply = await self._command("PASS", password, ok=(2, 3))
        if reply.kind == 3:
            if not account:
                raise FTPPermanentError(
                    reply, f"{reply.code} the server wants an account (ACCT): pass account="
                )
            await self._command("ACCT", account)
        self.user = user
        await self._setup()

    async def _setup(self) -> None:
        self._send("FEAT")
        reply = self._in_step("FEAT", await self._final("FEAT"))
        if reply.kind == 2:
            self.features = _parse_feat(reply)
        if self.tls:
            await self._command("PBSZ", "0")
            await self._command("PROT", "P")
            self._prot_p = True
        if "UTF8" in self.features:
            self._send("OPTS", "UTF8 ON")
            # names are UTF-8 either way
            self._in_step("OPTS", await self._final("OPTS UTF8 ON"))
        await self._set_type("I")
        try:
            await self._pwd()
        except FTPError as e:  # a server without PWD, or one that names no directory
            log.debug("PWD after login on %s: %s", self.host, e)

    # ---- helpers

    async def _bounded(self, d: Awaitable[T], what: str) -> T:
        waited = ensure_deferred(d)
        if self.timeout is not None and not waited.called:
            waited.add_timeout(self.timeout)
        try:
            return await waited
        except ns.TimeoutError:
            raise FTPTimeoutError(
                None, f"{what} with {self.host} took over {self.timeout} seconds"
            ) from None

    async def _set_type(self, kind: str) -> None:
        if self._type != kind:
            await self._command("TYPE", kind)
            self._type = kind

    async def _pwd(self) -> str:
        reply = await self._command("PWD")
        self.directory = _quoted_path(reply)
        return self.directory

    # ---- simple commands

    def login(
        self, user: str = "anonymous", password: str = "", account: str = ""
    ) -> Deferred[None]:
        """Log in as ``user`` (USER, PASS, ACCT when asked), then FEAT, PBSZ/PROT on TLS,
        TYPE I and PWD. :func:`connect` does it unless given ``login=False``; a refused
        login fails with FTPPermanentError 530 and may be tried again.
        """
        return self._run(lambda: self._login(user, password, account))

    def pwd(self) -> Deferred[str]:
        """The working directory (PWD); also kept as ``directory``."""
        return self._run(self._pwd)

    def cwd(self, path: str) -> Deferred[str]:
        """Change the working directory (CWD, or CDUP for ``".."``); fires with the new one
        (PWD's answer, also kept as ``directory``)."""

        async def work() -> str:
            if path == "..":
                await self._command("CDUP")
            else:
                await self._command("CWD", path)
            return await self._pwd()

        return self._run(work)

    def size(self, path: str) -> Deferred[int]:
        """The size of a file in bytes (SIZE, in TYPE I)."""

        async def work() -> int:
            await self._set_type("I")
            reply = await self._command("SIZE", path)
            try:
                return int(reply.text.split()[0])
            except (ValueError, IndexError):
                raise FTPProtocolError(reply, f"SIZE answered {reply.text!r}") from None

        return self._run(work)

    def mdtm(self, path: str) -> Deferred[float]:
        """A file's modification time (MDTM), seconds since the epoch (UTC)."""

        async def work() -> float:
            reply = await self._command("MDTM", path)
            try:
                return parse_mdtm(reply.text.strip())
            except ValueError:
                raise FTPProtocolError(reply, f"MDTM answered {reply.text!r}") from None

        return self._run(work)

    def rename(self, old: str, new: str) -> Deferred[Reply]:
        """Rename ``old`` to ``new`` (RNFR, RNTO); fires with RNTO's reply."""

        async def work() -> Reply:
            await self._command("RNFR", old, ok=(3,))
            return await self._command("RNTO", new)

        return self._run(work)

    def delete(self, path: str) -> Deferred[Reply]:
        """Delete a file (DELE)."""
        return self._run(lambda: self._command("DELE", path))

    def mkdir(self, path: str) -> Deferred[str]:
        """Make a directory (MKD); fires with its path as the server names it."""

        async def work() -> str:
            reply = await self._command("MKD", path)
            try:
                return _quoted_path(reply)
            except FTPProtocolError:
                return path  # a 257 without a quoted name: the server kept it to itself

        return self._run(work)

    def rmdir(self, path: str) -> Deferred[Reply]:
        """Remove an empty directory (RMD)."""
        return self._run(lambda: self._command("RMD", path))

    def noop(self) -> Deferred[Reply]:
        """NOOP: the server is there (and the idle timer restarts)."""
        return self._run(lambda: self._command("NOOP"))

    def quote(self, line: str, check: bool = False) -> Deferred[Reply]:
        """Send a raw command line (``"SITE CHMOD 644 a.txt"``); fires with its final Reply,
        whatever its code (with ``check=True``, a 4xx/5xx fails with its FTPError).

        It must not open a data connection (use the methods for transfers). ValueError if
        it holds a line break.
        """
        verb, _, arg = line.strip("\r\n").partition(" ")

        async def work() -> Reply:
            self._send(verb, arg)
            reply = await self._final(verb.upper())
            if check and reply.kind not in (1, 2, 3):
                raise error_for(reply)
            return reply

        return self._run(work)

    # ---- listings

    def list(self, path: str = "") -> Deferred[Entries]:
        """The entries of a directory, parsed: MLSD when the server has MLST (every fact it
        gives, in ``facts``; a fact that is not one is left out of the entry; MLSD refused
        with 500/502: LIST for the rest of the session), else LIST parsed from Unix ``ls
        -l`` (long-iso times too) or DOS lines. Lines that cannot be read are left out with
        one warning per listing (their count and the first). ``.`` and ``..`` are left out.
        """

        async def work() -> Entries:
            mlsd = "MLST" in self.features and self._mlsd
            if mlsd:
                try:
                    lines = await self._listing("MLSD", path)
                except FTPPermanentError as e:
                    if e.code not in (500, 502):
                        raise
                    log.info("%s refused MLSD (%s): LIST from now on", self.host, e.code)
                    self._mlsd = mlsd = False
            if not mlsd:
                lines = await self._listing("LIST", path)
            out: Entries = Listing()
            bad: Names = []
            for line in lines:
                if mlsd:
                    try:
                        info = parse_mlsx_line(line, strict=False)
                    except FTPProtocolError:
                        bad.append(line)
                        continue
                    if info.facts.get("type", "").lower() in ("cdir", "pdir"):
                        continue
                else:
                    parsed = parse_list_line(line)
                    if parsed is None:
                        if not _TOTAL.match(line):
                            bad.append(line)
                        continue
                    info = parsed
                if info.name in (".", ".."):
                    continue
                out.append(info)
            if bad:
                log.warning(
                    "%s: %d line%s of the listing of %r could not be read and %s left out "
                    "(the first: %r)",
                    self.host,
                    len(bad),
                    "" if len(bad) == 1 else "s",
                    path or ".",
                    "is" if len(bad) == 1 else "are",
                    bad[0],
                )
            return out

        return self._run(work)

    def nlst(self, path: str = "") -> Deferred[Names]:
        """The names in a directory (NLST)."""

        async def work() -> Names:
            return [line for line in await self._listing("NLST", path) if line]

        return self._run(work)

    async def _listing(self, verb: str, path: str) -> Names:
        chunks: Chunks = []
        try:
            await self._transfer_in(verb, path, chunks.append, 0, None, "A")
        except FTPPermanentError as e:
            # "550 No files found" is how some servers (wu-ftpd, IIS) say empty for NLST
            if verb == "NLST" and e.code == 550 and not path:
                return []
            raise
        text = b"".join(chunks).decode("utf-8", "surrogateescape")
        return [line for line in re.split(r"\r?\n", text) if line.strip()]

    # ---- transfers

    def retrieve(
        self,
        path: str,
        to: Target = None,
        offset: int = 0,
        *,
        ascii: bool = False,
        progress: Progress | None = None,
        size: int | None = None,
    ) -> Deferred[Any]:
        """Download ``path`` (RETR, after REST ``offset`` when it is not 0).

        ``to`` is a local path (written from ``offset``: 0 truncates it, more keeps the
        first ``offset`` bytes and replaces the rest), a binary file (sought to ``offset``
        when it can seek and ``offset`` is not 0, else written where it stands), or a
        callable given each chunk as it comes (an awaitable it returns pauses the transfer
        until it is done). Fires with the number of bytes received; with ``to=None`` it
        fires with the bytes themselves (in memory: for small files). A broken transfer
        leaves what arrived in the file, to be resumed with ``offset`` set to its size.
        ``ascii=True``: TYPE A, the wire's CRLF become ``\\n``.

        ``size`` is the remote file's size when known (SIZE asked already: it is not asked
        again). A binary transfer that ends with another byte count than the size known
        (``size``, SIZE asked for the progress display, or the 150 reply's "(N bytes)")
        fails: :class:`FTPTransferIncomplete` when short ("received 50,000 of 100,000
        bytes"; what arrived is kept, to be resumed), FTPProtocolError when longer.
        """
        if offset < 0:
            raise ValueError("offset must be 0 or more")

        async def work() -> Any:
            collected: Chunks | None = None
            file: Any = None
            local: _LocalFile | None = None
            sink: Callable[[bytes], Any]
            if to is None:
                collected = []
                sink = collected.append
            elif isinstance(to, str | os.PathLike):
                local = _LocalFile(Path(to), offset)
                sink = local.write
            elif hasattr(to, "write"):
                file = to
                if offset and _seekable(file):
                    file.seek(offset)
                sink = file.write
            elif callable(to):
                sink = to
            else:
                raise TypeError(f"retrieve to a path, a binary file or a callable, not {to!r}")
            try:
                count = await self._transfer_in(
                    "RETR", path, sink, offset, progress, "A" if ascii else "I", size
                )
                if local is not None:
                    local.ensure()  # an empty file is a file too
            finally:
                if local is not None:
                    local.close()
                elif file is not None and hasattr(file, "flush"):
                    file.flush()
            if collected is not None:
                return b"".join(collected)
            return count

        return self._run(work)

    def store(
        self,
        path: str,
        source: Source,
        offset: int = 0,
        *,
        ascii: bool = False,
        progress: Progress | None = None,
    ) -> Deferred[int]:
        """Upload ``source`` to ``path`` (STOR, after REST ``offset`` when it is not 0).

        ``source`` is bytes, a local path (str or Path), or a binary file; with an
        ``offset``, bytes and paths are sent from there, and a file is sought there when it
        can seek (else sent from where it stands). Fires with the number of bytes sent.
        Files are streamed (sendfile(2) on plain connections), never read whole.
        ``ascii=True``: TYPE A, local ``\\n`` become CRLF.
        """
        return self._store("STOR", path, source, offset, ascii, progress)

    def append(
        self,
        path: str,
        source: Source,
        offset: int = 0,
        *,
        ascii: bool = False,
        progress: Progress | None = None,
    ) -> Deferred[int]:
        """Append ``source`` to the file ``path`` (APPE; it is made if missing). ``offset``
        says where in ``source`` to start (nothing is sent to the server about it): the way
        to resume an upload on a server without REST for STOR."""
        return self._store("APPE", path, source, offset, ascii, progress, rest=False)

    def _store(
        self,
        verb: str,
        path: str,
        source: Source,
        offset: int,
        ascii: bool,
        progress: Progress | None,
        rest: bool = True,
    ) -> Deferred[int]:
        if offset < 0:
            raise ValueError("offset must be 0 or more")

        async def work() -> int:
            file: IO[bytes] | None = None
            data: bytes | None = None
            opened = False
            total: int | None = None
            if isinstance(source, bytes | bytearray | memoryview):
                data = bytes(source[offset:])
            elif isinstance(source, str | os.PathLike):
                file, opened = open(source, "rb"), True  # noqa: SIM115 - closed below
                file.seek(offset)
            elif hasattr(source, "read"):
                file = source
                if offset and _seekable(file):
                    file.seek(offset)
            else:
                raise TypeError(f"store bytes, a path or a binary file, not {source!r}")
            if data is not None:
                total = len(data)
            elif file is not None:
                total = _remaining(file)
            try:
                return await self._transfer_out(
                    verb,
                    path,
                    data,
                    file,
                    offset if rest else 0,
                    total,
                    progress,
                    "A" if ascii else "I",
                )
            finally:
                if opened and file is not None:
                    file.close()

        return self._run(work)

    async def _open_data(self, protocol: _Data, transfer: _Transfer) -> Callable[[], Any]:
        """Set up the data connection before the transfer command; returns what to await
        (after the command) for the connection to be made."""
        transport = self._control.transport
        peer = transport.peer
        if self.passive:
            port = await self._passive_port(peer.host)
            factory = _DataFactory(protocol)
            try:
                await self._bounded(
                    self.reactor.connect_tcp(peer.host, port, factory, timeout=self.timeout or 30),
                    "the data connection",
                )
            except ns.ConnectError as e:
                raise FTPDataConnectionError(
                    None, f"cannot open the data connection to {peer.host}:{port}: {e}"
                ) from e
            return lambda: ns.succeed(protocol)
        local = transport.host
        factory = _DataFactory(protocol, expect=peer.host)
        listener = self.reactor.listen_tcp(0, factory, interface=local.host)
        transfer.listener = listener
        if ":" in local.host:
            await self._command("EPRT", format_eprt(local.host, listener.port))
        else:
            await self._command("PORT", format_port(local.host, listener.port))
        return lambda: protocol.made

    async def _passive_port(self, host: str) -> int:
        if self._epsv:
            self._send("EPSV")
            reply = self._in_step("EPSV", await self._final("EPSV"))
            if reply.code == 229:
                return parse_epsv(reply.text)
            if reply.kind != 5:
                raise error_for(reply)
            log.info("%s refused EPSV (%s): PASV from now on", self.host, reply.code)
            self._epsv = False
        if ":" in host:
            raise FTPProtocolError(None, f"{self.host} refused EPSV, and PASV cannot do IPv6")
        reply = await self._command("PASV")
        if reply.code != 227:
            raise FTPProtocolError(reply, f"PASV answered {reply.code}, not 227")
        told_host, port = parse_pasv(reply.text)
        if told_host != host:
            # The address in a 227 is often a private or masqueraded one, and a hostile
            # server could aim the data connection anywhere: the control peer it is.
            log.debug(
                "PASV named %s; connecting to %s, the control connection's peer", told_host, host
            )
        return port

    def _secure(self, protocol: _Data) -> Deferred[Any] | None:
        """Start TLS on the data connection (PROT P), resuming the control connection's
        session; the handshake's Deferred, or None without PROT P."""
        if not self._prot_p:
            return None
        control = getattr(self._control.transport, "tls_connection", None)

        def session() -> Any:
            layer = getattr(control, "layer", None)
            conn = getattr(layer, "conn", None)
            return conn.get_session() if conn is not None else None

        return protocol.transport.start_tls(_SessionReuse(self._context, session))

    async def _begin(self, transfer: _Transfer, verb: str, arg: str, rest: int, kind: str) -> None:
        """Open the data connection and start a transfer: once this returns, the server has
        said 1xx, the data connection is made and its TLS (if any) is up."""
        protocol = transfer.data
        assert protocol is not None
        await self._set_type(kind)
        made = await self._open_data(protocol, transfer)
        # The TLS client hello goes out at once; a server that starts its side only after
        # the transfer command (vsftpd) finds it waiting.
        handshake = self._secure(protocol) if self.passive else None
        try:
            await self._start_transfer(transfer, verb, arg, rest, made, handshake)
        except BaseException:
            if handshake is not None:
                handshake.add_errback(lambda _: None)  # cut short with the transfer: not news
            raise

    async def _start_transfer(
        self,
        transfer: _Transfer,
        verb: str,
        arg: str,
        rest: int,
        made: Callable[[], Any],
        handshake: Deferred[Any] | None,
    ) -> None:
        protocol = transfer.data
        if rest:
            await self._command("REST", str(rest), ok=(3,))
        if transfer.aborting is not None:
            raise FTPTransferAborted(None, f"{verb} {arg} was aborted before it began")
        self._send(verb, arg)
        transfer.started = True
        first = await self._reply(verb)
        transfer.first = first
        if first.code >= 200 and first.code not in (226, 250):
            self._in_step(verb, first)
        if first.code >= 200:
            if first.kind == 2:
                raise FTPProtocolError(first, f"{verb} answered {first.code} with no transfer")
            raise error_for(first)
        if transfer.aborting is None:
            await self._bounded(made(), "the data connection (the server connecting back)")
        if transfer.listener is not None:
            transfer.listener.close()
            transfer.listener = None
        if transfer.aborting is not None or protocol.cut:
            return  # abort() cut it: the transfer's final replies tell the rest
        if handshake is None:
            handshake = self._secure(protocol)
        if handshake is not None:
            self.data_tls = await self._bounded(handshake, "the data connection's TLS handshake")

    def _progress(self, given: Progress | None, label: str) -> Progress | None:
        if given is not None:
            return given
        return make_progress(label)

    async def _transfer_in(
        self,
        verb: str,
        arg: str,
        sink: Callable[[bytes], Any],
        rest: int,
        progress: Progress | None,
        kind: str,
        size: int | None = None,
    ) -> int:
        label = f"{verb} {arg}".strip()
        total: int | None = size
        if verb == "RETR":
            progress = self._progress(progress, label)
            if progress is not None and total is None:
                total = await self._size_quietly(arg)
            if total is not None and kind == "A":
                total = None  # the size on the server is not the size here
        decoder = AsciiDecoder() if kind == "A" and verb == "RETR" else None
        count = 0

        def write(data: bytes) -> Any:
            nonlocal count
            if decoder is not None:
                data = decoder.feed(data)
            count += len(data)
            result = sink(data) if data else None
            if progress is not None:
                progress(rest + count, total)
            return result

        protocol = _Data(write, self._control)
        transfer = self._transfer = _Transfer(protocol)
        watched: Deferred[Reply] | None = None
        try:
            if progress is not None:
                progress(rest, total)
            await self._begin(transfer, verb, arg, rest, kind)
            watchdog = _Watchdog(
                self.reactor, self.timeout, lambda: protocol.received, transfer.cut
            )
            watched = self._watch_final(transfer, verb)
            try:
                await protocol.done
            finally:
                watchdog.stop()
            if watchdog.expired and not watched.called and transfer.aborting is None:
                # Nothing moved: the error at once, not after one more timeout for a
                # reply; ABOR and NOOP go out, and the next operation reads the replies
                # up to NOOP's before it starts (see _resynchronise).
                self._stalled()
                raise FTPTimeoutError(None, f"{label}: nothing moved for {self.timeout} seconds")
            final = await self._await_final(watched, label)
            await self._conclude(transfer, final, protocol, None, watchdog, label)
            if verb == "RETR" and kind == "I":
                self._check_size(final, label, rest, count, total, transfer.first)
            if decoder is not None:
                tail = decoder.flush()
                if tail:
                    count += len(tail)
                    sink(tail)
            return count
        except BaseException as e:
            await self._cut_on_error(e)
            raise
        finally:
            self._settle(watched)
            self._transfer = None
            if progress is not None and hasattr(progress, "finish"):
                progress.finish()

    async def _transfer_out(
        self,
        verb: str,
        arg: str,
        data: bytes | None,
        file: IO[bytes] | None,
        rest: int,
        total: int | None,
        progress: Progress | None,
        kind: str,
    ) -> int:
        label = f"{verb} {arg}"
        progress = self._progress(progress, label)
        protocol = _Data(None, self._control)
        transfer = self._transfer = _Transfer(protocol)
        start = rest if verb == "STOR" else 0
        watched: Deferred[Reply] | None = None
        try:
            if progress is not None:
                progress(start, None if total is None else start + total)
            await self._begin(transfer, verb, arg, rest, kind)
            transport = protocol.transport
            watchdog = _Watchdog(
                self.reactor,
                self.timeout,
                lambda: transport.bytes_sent if transport is not None else 0,
                transfer.cut,
            )
            watched = self._watch_final(transfer, verb)
            sent = 0
            broken: BaseException | None = None
            local: BaseException | None = None
            try:
                if transport is None or protocol.cut:
                    raise FTPDataConnectionError(None, "the data connection was cut")
                sent = await self._send_data(transport, data, file, kind, progress, start, total)
                transport.close()
            except Exception as e:
                # Cut by us (abort, the watchdog) or by the server (a full disk: its reply
                # says why): judged with the final reply.
                broken = e
                if transport is not None:
                    if isinstance(e, _SourceFailed):
                        _reset(transport)
                    transport.abort()
                if isinstance(e, _SourceFailed):
                    # The local file failed to read: a clean close (FIN) would tell the
                    # server the upload is complete. The reset above and ABOR tell it
                    # the upload is broken, so it keeps no cut-off file as a whole one.
                    local = e.error
                    if transfer.aborting is None and not self.closed:
                        transfer.aborting = Deferred()
                        transfer.aborting.add_errback(lambda _: None)
                        self._send("ABOR")
                        self._send("NOOP")
            finally:
                watchdog.stop()
            if watchdog.expired and not watched.called and transfer.aborting is None:
                self._stalled()
                raise FTPTimeoutError(None, f"{label}: nothing moved for {self.timeout} seconds")
            final = await self._await_final(watched, label)
            try:
                await self._conclude(transfer, final, protocol, broken, watchdog, label)
            except FTPTransferAborted:
                if local is None:
                    raise
            if local is not None:
                raise local
            if not protocol.done.called and transport is not None:
                transport.abort()  # a TLS peer that never answers our close_notify
            return sent
        except BaseException as e:
            await self._cut_on_error(e)
            raise
        finally:
            self._settle(watched)
            self._transfer = None
            if progress is not None and hasattr(progress, "finish"):
                progress.finish()

    async def _send_data(
        self,
        transport: Any,
        data: bytes | None,
        file: IO[bytes] | None,
        kind: str,
        progress: Progress | None,
        start: int,
        total: int | None,
    ) -> int:
        end = None if total is None else start + total
        if data is not None:
            if kind == "A":
                encoder = AsciiEncoder()
                data = encoder.feed(data) + encoder.flush()
            transport.write(data)
            if progress is not None:
                progress(start + len(data), end)
            return len(data)
        assert file is not None
        if kind == "I" and progress is None and _has_fileno(file):
            position = file.tell()
            sent = await transport.send_file(file, position)
            file.seek(position + sent)
            return int(sent)
        return await _Pieces(transport, file, kind, progress, start, end).run()

    async def _conclude(
        self,
        transfer: _Transfer,
        final: Reply,
        protocol: _Data,
        broken: BaseException | None,
        watchdog: _Watchdog,
        label: str,
    ) -> None:
        """Judge a transfer by its final reply, how its data connection went, and abort()."""
        aborting = transfer.aborting
        if aborting is not None:
            # abort() sent ABOR and then NOOP: the replies up to NOOP's 200 are the
            # transfer's and ABOR's. Servers differ in how many and in which order
            # (pyftpdlib may answer ABOR alone, 225; ours has answered ABOR before the
            # transfer's 426), so NOOP's reply, not a count, says when they are all in.
            replies = [final]
            while replies[-1].code != 200:
                replies.append(await self._final("ABOR"))
            self._owed = 0
            answers = replies[:-1] or replies
            abor = next((r for r in reversed(answers) if r.code in (225, 226)), answers[-1])
            others = [r for r in answers if r is not abor]
            final = next((r for r in others if r.kind != 2), others[0] if others else abor)
            if not aborting.called:
                aborting.callback(abor)
            raise FTPTransferAborted(final, f"{label} was aborted ({final.code})")
        self._in_step(label.split(" ", 1)[0], final)
        if protocol.error is not None:
            raise protocol.error  # ours: the file or callable receiving the data failed
        if watchdog.expired:
            raise FTPTimeoutError(None, f"{label}: nothing moved for {self.timeout} seconds")
        if final.kind != 2:
            raise error_for(final) from broken
        if broken is not None:
            raise FTPDataConnectionError(
                final,
                f"{label}: the data connection broke ({broken}), yet the server "
                f"answered {final.code}",
            ) from broken
        # A data connection that ended without TLS's close_notify is fine when the server,
        # over the protected control connection, says the transfer is complete: many
        # servers never send close_notify on data connections.

    async def _cut_on_error(self, exc: BaseException) -> None:
        """A transfer failed or was cancelled: its data connection goes. A cancelled one
        whose command went out is aborted as abort() does it (ABOR, NOOP, the replies up
        to NOOP's), before the next call may send anything: a server may answer that next
        command before it notices the data connection is gone (pyftpdlib does), so the
        transfer's reply cannot simply be dropped when it comes."""
        transfer = self._transfer
        if transfer is None:
            return
        transfer.cut()
        if (
            isinstance(exc, asyncio.CancelledError)
            and transfer.started
            and transfer.aborting is None
            and not self.closed
        ):
            # The caller has its CancelledError already (the Deferred failed at once);
            # this task goes on, holding the session's turn until the session is in step.
            try:
                self._send("ABOR")
                self._send("NOOP")
                while (await self._final("ABOR")).code != 200:
                    pass
                self._owed = 0
            except Exception as e:  # timeout, closed: _run drops what is still owed
                log.debug("resynchronising %s after a cancelled transfer: %s", self.host, e)
        aborting = transfer.aborting
        if aborting is not None and not aborting.called:
            if not transfer.started:
                aborting.callback(None)  # stopped before the server heard of it
            elif self.closed:
                aborting.errback(self._control.error())
            elif isinstance(exc, FTPError):
                aborting.errback(exc)
            else:
                aborting.errback(FTPTransferAborted(None, f"the transfer ended: {exc!r}"))

    def _check_size(
        self,
        final: Reply,
        label: str,
        rest: int,
        count: int,
        total: int | None,
        first: Reply | None,
    ) -> None:
        """A binary RETR that the server said is complete (226): the bytes must be the
        size known (SIZE, or the 150 reply's "(N bytes)" when not resumed: servers differ
        on whether that counts from REST)."""
        if total is None and not rest and first is not None:
            told = _TOLD_SIZE.search(first.text)
            if told:
                total = int(told.group(1))
        if total is None:
            return
        have = rest + count
        if have < total:
            raise FTPTransferIncomplete(
                final,
                f"{label}: received {have:,} of {total:,} bytes (a partial file, "
                f"though the server answered {final.code})",
                expected=total,
                received=have,
            )
        if have > total:
            raise FTPProtocolError(
                final, f"{label}: received {have:,} bytes, more than the {total:,} told"
            )

    async def _size_quietly(self, path: str) -> int | None:
        self._send("SIZE", path)
        reply = self._in_step("SIZE", await self._final("SIZE"))
        if reply.kind != 2:
            return None
        try:
            return int(reply.text.split()[0])
        except (ValueError, IndexError):
            return None

    # ---- abort and quit

    def abort(self) -> Deferred[Reply | None]:
        """Stop the transfer under way: its data connection is closed and ABOR sent (then
        NOOP, whose reply marks the end of those to the transfer and to ABOR); the transfer
        fails with FTPTransferAborted, and this fires with ABOR's reply (with None when the
        transfer command was not sent yet: the transfer stops before it). With no transfer
        under way, ABOR is sent as any command (after those before it) and this fires with
        its reply.
        """
        transfer = self._transfer
        if transfer is None or transfer.aborting is not None:
            return self._run(lambda: self._command("ABOR"))
        answered: Deferred[Reply | None] = Deferred()
        transfer.aborting = answered
        transfer.cut()
        if transfer.started:
            # The transfer's operation reads the replies (see _conclude); NOOP's marks
            # the end of them.
            self._send("ABOR")
            self._send("NOOP")
        return answered

    def quit(self) -> Deferred[Reply]:
        """Say goodbye (QUIT, after the commands before it) and close; fires with the reply
        (a connection the server closed already is no error: the Deferred fires with None)."""

        async def work() -> Reply:
            self._quitting = True
            lost = self._control.when_lost()
            self._send("QUIT")
            try:
                reply = self._in_step("QUIT", await self._final("QUIT"))
            finally:
                self._control.why_closed = "closed by quit()"
                self._control.transport.close()
            await self._bounded(lost, "closing the control connection")
            return reply

        if self.closed:
            return ns.succeed(None)  # type: ignore[arg-type]
        return self._run(work)

    def close(self) -> None:
        """Close the control connection at once (no QUIT); operations under way fail."""
        if not self.closed:
            self._quitting = True
            self._control.why_closed = "closed by close()"
            self._control.transport.abort()

    # ---- resuming

    def download(
        self,
        path: str,
        to: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Deferred[Path]:
        """Download ``path`` to the local file ``to`` (default: its name, here), resuming a
        partial ``to`` (REST from its size) when the remote file is bigger; fires with the
        local Path. No reconnection: see the module's :func:`download` for that."""

        async def work() -> Path:
            return await _download_once(self, path, _local_target(path, to), progress)

        return ensure_deferred(work())

    def upload(
        self,
        source: str | os.PathLike[str],
        path: str | None = None,
        *,
        progress: Progress | None = None,
    ) -> Deferred[int]:
        """Upload the local file ``source`` to ``path`` (default: its name), resuming from the
        remote file's SIZE when it is shorter (REST + STOR, or APPE when REST is refused);
        fires with the bytes sent. No reconnection: see the module's :func:`upload`."""

        async def work() -> int:
            target = path if path is not None else Path(source).name
            return await _upload_once(self, Path(source), target, progress)

        return ensure_deferred(work())


class _Pieces:
    """A pull producer sending a file (through TYPE A's encoder if asked) with progress."""

    def __init__(
        self,
        transport: Any,
        file: IO[bytes],
        kind: str,
        progress: Progress | None,
        start: int,
        end: int | None,
    ) -> None:
        self.transport = transport
        self.file = file
        self.encoder = AsciiEncoder() if kind == "A" else None
        self.progress = progress
        self.start = start
        self.end = end
        self.read = 0
        self.sent = 0
        self.done: Deferred[int] = Deferred()

    def run(self) -> Deferred[int]:
        self.transport.register_producer(self, False)
        return self.done

    def resume_producing(self) -> None:
        try:
            data = self.file.read(_PIECE)
        except Exception as e:
            self.transport.unregister_producer()
            self.done.errback(_SourceFailed(e))
            return
        if not data:
            self.transport.unregister_producer()
            if self.encoder is not None:
                tail = self.encoder.flush()
                self.transport.write(tail)
                self.sent += len(tail)
            self.done.callback(self.sent)
            return
        self.read += len(data)
        if self.encoder is not None:
            data = self.encoder.feed(data)
        self.transport.write(data)
        self.sent += len(data)
        if self.progress is not None:
            self.progress(self.start + self.read, self.end)

    def pause_producing(self) -> None:
        pass

    def stop_producing(self) -> None:
        if not self.done.called:
            self.done.errback(ns.ConnectionLost("the data connection was lost during the upload"))


# ---- small helpers


#: the 2xx/3xx replies each command may get (RFC 959 §5.4) where they are particular to it
_REPLIES: dict[str, frozenset[int]] = {
    "USER": frozenset({230, 232, 331, 332}),
    "PASS": frozenset({202, 230, 332}),
    "ACCT": frozenset({202, 230}),
    "PWD": frozenset({257}),
    "XPWD": frozenset({257}),
    "MKD": frozenset({250, 257}),
    "EPSV": frozenset({229}),
    "PASV": frozenset({227}),
    "SIZE": frozenset({213}),
    "MDTM": frozenset({213}),
    "REST": frozenset({350}),
    "RNFR": frozenset({350}),
    "AUTH": frozenset({234, 334}),
    "SYST": frozenset({215}),
    "FEAT": frozenset({211, 214}),
    "QUIT": frozenset({221, 200}),
}
#: 2xx replies particular to other commands: never a reply to the rest
_PARTICULAR = frozenset({211, 213, 214, 215, 221, 227, 229, 230, 234, 257})
#: commands that open a data connection (1xx, then 226/250 or an error)
_TRANSFERS = frozenset({"RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD"})


def _fits(verb: str, reply: Reply) -> bool:
    """Whether ``reply`` (a final one) may answer ``verb``; 4xx and 5xx answer anything.

    >>> _fits("PWD", Reply(200, "surprise")), _fits("PWD", Reply(257, '"/"'))
    (False, True)
    >>> _fits("TYPE", Reply(257, '"/"')), _fits("NOOP", Reply(550, "no"))
    (False, True)
    """
    if reply.kind in (4, 5):
        return True
    particular = _REPLIES.get(verb)
    if particular is not None:
        return reply.code in particular
    if verb in _TRANSFERS:
        return reply.code in (225, 226, 250)
    return reply.kind == 2 and reply.code not in _PARTICULAR


def _parse_feat(reply: Reply) -> dict[str, str]:
    features: dict[str, str] = {}
    for line in reply.lines[1:-1] if len(reply.lines) > 2 else ():
        name, _, params = line.strip().partition(" ")
        if name:
            features[name.upper()] = params
    return features


def _quoted_path(reply: Reply) -> str:
    """The path in a 257 reply, its doubled quotes made single (RFC 959 appendix II).

    >>> _quoted_path(Reply(257, '"/x ""y"" z" created'))
    '/x "y" z'
    """
    text = reply.text
    start = text.find('"')
    if start < 0:
        raise FTPProtocolError(reply, f"{reply.code} without a quoted path: {text!r}")
    out = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            if text[i + 1 : i + 2] == '"':
                out.append('"')
                i += 2
                continue
            return "".join(out)
        out.append(c)
        i += 1
    raise FTPProtocolError(reply, f"{reply.code} with an unterminated path: {text!r}")


def _reset(transport: Any) -> None:
    """Make the transport's coming abort() a TCP reset (SO_LINGER 0), not a clean end."""
    sock = transport.get_extra_info("socket") if hasattr(transport, "get_extra_info") else None
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # gone already


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except Exception:
        return False


def _has_fileno(file: Any) -> bool:
    try:
        file.fileno()
    except Exception:
        return False
    return True


def _remaining(file: Any) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size - file.tell()
    except Exception:
        pass
    try:
        here = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(here)
        return int(end - here)
    except Exception:
        return None


class _LocalFile:
    """The file ``retrieve`` writes to, opened at the first byte (a refused RETR leaves no
    empty file behind): from the start, or kept up to ``offset`` to resume."""

    def __init__(self, path: Path, offset: int) -> None:
        if offset and not path.exists():
            raise FileNotFoundError(f"cannot resume {str(path)!r} at {offset}: no such file")
        self.path = path
        self.offset = offset
        self.file: IO[bytes] | None = None

    def ensure(self) -> IO[bytes]:
        if self.file is None:
            if self.offset:
                self.file = open(self.path, "r+b")  # noqa: SIM115 - closed by close()
                self.file.truncate(self.offset)
                self.file.seek(self.offset)
            else:
                self.file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        return self.file

    def write(self, data: bytes) -> None:
        self.ensure().write(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _local_target(remote: str, to: str | os.PathLike[str] | None) -> Path:
    name = remote.rstrip("/").rsplit("/", 1)[-1] or "download"
    if to is None:
        return Path(name)
    target = Path(to)
    return target / name if target.is_dir() else target


# ---- connecting


def connect(
    url_or_host: str,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    tls: bool | str | None = False,
    passive: bool = True,
    timeout: float | None = 30,
    *,
    context: Any = None,
    verify: bool = True,
    ca: Any = None,
    account: str = "",
    login: bool = True,
) -> Deferred[FTPClient]:
    """Connect, log in, and fire with the :class:`FTPClient`.

    ``url_or_host`` is a host name or address, or an ``ftp://user:password@host:port/dir``
    URL (``ftps://``: implicit TLS, port 990; a path is the directory to change to);
    arguments given win over the URL's. ``user`` defaults to ``"anonymous"``. ``tls``:
    False (plain), True or ``"explicit"`` (AUTH TLS), ``"implicit"`` (TLS from the first
    byte, port 990 by default). TLS verifies the server's certificate for the host:
    ``ca`` (PEM or a path) to trust instead of the system's store, ``context`` to give a
    :func:`netshell.tls.client_context` of your own, ``verify=False`` to turn checking off.
    ``passive=False`` makes the server connect back (PORT/EPRT). ``timeout`` bounds each
    wait (None: no bound on replies, handshakes and transfers; making a TCP connection,
    control or data, is still bounded at 30 seconds). ``login=False`` stops after the
    greeting (and AUTH TLS): call :meth:`FTPClient.login` yourself. Fails with
    ConnectError, TLSError, FTPError (a refused login is an FTPPermanentError 530).
    """
    host = url_or_host
    path = ""
    mode = _tls_mode(tls)
    if "://" in url_or_host:
        url = parse_url(url_or_host)
        host, path = url.host, url.path
        if url.scheme == "ftps" and mode is None:
            mode = "implicit"
        if port is None:
            port = urlsplit(url_or_host).port  # the URL's own, if it names one
        user = user if user is not None else url.user
        password = password if password is not None else url.password
    if port is None:
        port = 990 if mode == "implicit" else 21
    return ensure_deferred(
        _connect(
            host,
            port,
            user or "anonymous",
            password or "",
            mode,
            passive,
            timeout,
            context,
            verify,
            ca,
            account,
            path if login else "",
            login,
        )
    )


def _tls_mode(tls: bool | str | None) -> str | None:
    if tls is None or tls is False:
        return None
    if tls is True or tls == "explicit":
        return "explicit"
    if tls == "implicit":
        return "implicit"
    raise ValueError(f"tls is False, True, 'explicit' or 'implicit', not {tls!r}")


async def _connect(
    host: str,
    port: int,
    user: str,
    password: str,
    mode: str | None,
    passive: bool,
    timeout: float | None,
    context: Any,
    verify: bool,
    ca: Any,
    account: str,
    path: str,
    login: bool,
) -> FTPClient:
    reactor = get_reactor()
    if mode is not None and context is None:
        from netshell.tls import client_context  # pyOpenSSL only for those who use TLS

        context = client_context(host, ca=ca, verify=verify)
    factory = ns.ClientFactory.for_protocol(_Control)
    wait = timeout if timeout is not None else 30
    if mode == "implicit":
        control = await reactor.connect_tls(host, port, factory, context, timeout=wait)
    else:
        control = await reactor.connect_tcp(host, port, factory, timeout=wait)
    assert isinstance(control, _Control)
    client = FTPClient(
        control,
        host=host,
        port=port,
        tls=mode,
        context=context,
        passive=passive,
        timeout=timeout,
        reactor=reactor,
    )

    async def set_up() -> None:
        await client._greet()
        if mode == "explicit":
            await client._start_tls()
        if login:
            await client._login(user, password, account)
        if path:
            await client._command("CWD", path)
            await client._pwd()

    try:
        await client._run(set_up)
    except BaseException:
        client.close()
        raise
    client._ready = True
    return client


# ---- download and upload, resumed


async def _download_once(
    client: FTPClient, path: str, target: Path, progress: Progress | None
) -> Path:
    size: int | None = None
    try:
        size = await client.size(path)
    except FTPPermanentError:
        size = None  # no SIZE here (or not in this TYPE): no resuming without it
    have = target.stat().st_size if target.exists() else 0
    if size is not None and have == size:
        return target  # complete already
    offset = have if size is not None and have < size else 0
    try:
        await client.retrieve(path, target, offset, progress=progress, size=size)
    except FTPPermanentError as e:
        if not offset or e.code not in (500, 501, 502, 504):
            raise
        log.info("%s refused REST (%s): downloading %s from the start", client.host, e, path)
        await client.retrieve(path, target, 0, progress=progress, size=size)
    return target


async def _upload_once(
    client: FTPClient, source: Path, path: str, progress: Progress | None
) -> int:
    local = source.stat().st_size
    try:
        remote: int | None = await client.size(path)
    except FTPPermanentError:
        remote = None  # not there (550): from the start
    if remote == local:
        return 0
    if remote is None or remote > local:
        return await client.store(path, source, progress=progress)
    try:
        return await client.store(path, source, remote, progress=progress)
    except FTPPermanentError as e:
        if e.code not in (500, 501, 502, 504, 350):
            raise
        log.info("%s refused REST for STOR (%s): appending from %d", client.host, e, remote)
        return await client.append(path, source, remote, progress=progress)


async def _with_retries(
    url: FTPURL,
    kw: dict[str, Any],
    retries: int,
    once: Callable[[FTPClient], Awaitable[T]],
) -> T:
    attempt = 0
    while True:
        client: FTPClient | None = None
        try:
            client = await connect(
                f"{url.scheme}://{url.host}:{url.port}/",
                user=url.user,
                password=url.password,
                **kw,
            )
            result = await once(client)
            try:
                await client.quit()
            except FTPError:
                client.close()
            return result
        except _TRANSIENT as e:
            if client is not None:
                client.close()
            attempt += 1
            if attempt > retries:
                raise
            log.info(
                "transfer with %s broke (%s): resuming, try %d of %d", url.host, e, attempt, retries
            )
            await ns.sleep(0.1 * 2 ** (attempt - 1))  # a server restarting gets a moment
        except BaseException:
            if client is not None:
                client.close()
            raise


def download(
    url: str,
    to: str | os.PathLike[str] | None = None,
    *,
    retries: int = 3,
    progress: Progress | None = None,
    **kw: Any,
) -> Deferred[Path]:
    """Download the file at ``url`` (``ftp://[user:password@]host[:port]/path``) to ``to``
    (a file, or a directory to put it in; default: its name, here); fires with the Path.

    A partial local file is resumed (REST from its size) when the server's file is bigger
    (SIZE); a transfer that breaks (4xx, a lost connection, a timeout) is resumed on a new
    connection where it stopped, up to ``retries`` times. Other keywords go to
    :func:`connect` (``tls``, ``ca``, ``verify``, ``passive``, ``timeout``...).
    """
    parsed = parse_url(url)
    target = _local_target(parsed.path, to)
    bar = progress if progress is not None else make_progress(f"RETR {parsed.path}")

    async def run() -> Path:
        try:
            return await _with_retries(
                parsed,
                kw,
                retries,
                lambda client: _download_once(client, parsed.path, target, _quiet(bar)),
            )
        finally:
            if bar is not None and hasattr(bar, "finish"):
                bar.finish()

    return ensure_deferred(run())


def upload(
    source: str | os.PathLike[str],
    url: str,
    *,
    retries: int = 3,
    progress: Progress | None = None,
    **kw: Any,
) -> Deferred[int]:
    """Upload the local file ``source`` to ``url`` (a URL ending in ``/`` names a directory:
    the file keeps its name); fires with the bytes sent by the last attempt.

    A remote file shorter than ``source`` (SIZE) is resumed (REST + STOR, or APPE when the
    server refuses REST); a transfer that breaks is resumed on a new connection, up to
    ``retries`` times. Other keywords go to :func:`connect`.
    """
    parsed = parse_url(url)
    local = Path(source)
    path = parsed.path + local.name if not parsed.path or parsed.path.endswith("/") else parsed.path
    bar = progress if progress is not None else make_progress(f"STOR {path}")

    async def run() -> int:
        try:
            return await _with_retries(
                parsed,
                kw,
                retries,
                lambda client: _upload_once(client, local, path, _quiet(bar)),
            )
        finally:
            if bar is not None and hasattr(bar, "finish"):
                bar.finish()

    return ensure_deferred(run())


def _quiet(bar: Progress | None) -> Progress:
    """``bar`` without its ``finish`` (the caller finishes it once, after every attempt);
    no bar stays no bar (the default hook is not asked again on each attempt)."""
    if bar is None:
        return _none
    shown = bar
    return lambda done, total: shown(done, total)


def _none(done: int, total: int | None) -> None:
    """Progress that shows nothing."""
