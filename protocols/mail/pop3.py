"""POP3: a server over the Maildir store, and a client.

The server (:func:`serve`) speaks RFC 1939 (USER/PASS, APOP, STAT, LIST, UIDL, RETR, TOP,
DELE, RSET, NOOP, QUIT), RFC 2449 (CAPA, response codes), RFC 3206 (``[SYS/*]`` and
``[AUTH]``), RFC 2595 (STLS) and RFC 5034 (AUTH PLAIN, with or without an initial
response). Each user has one Maildir, ``maildir_root/<user>`` (made at the first login);
a session holds the store's exclusive lock on it (a second session gets ``-ERR [IN-USE]``),
sees the messages that were there when it logged in, and removes those it deleted only at
QUIT (the UPDATE state); a session that ends any other way changes nothing. Messages it
retrieved and did not delete are marked ``\\Seen`` at QUIT (Dovecot does the same), so an
IMAP client sees them read.

Limits: a command line is at most ``max_line_length`` octets with its CRLF (255 as RFC 2449
has it; an AUTH continuation line may be longer), ``max_bad_commands`` errors in a row
close the connection, ``max_login_attempts`` failed logins too (each answered only after
``login_delay`` seconds, reading nothing meanwhile), and ``idle_timeout`` seconds without a
command end the session (no UPDATE; RFC 1939 wants at least 10 minutes).

The client (:func:`connect`) has a method per verb, each answering a Deferred; an
``-ERR`` reply fails it with :class:`POP3ReplyError` (its ``code`` is the RFC 2449 response
code, e.g. ``"IN-USE"``, or None).

The parsers are sans-I/O and public: :func:`parse_command` (the server's reading of a
line), :func:`stuff` (a message as a multi-line response) and :class:`ResponseReader` (the
client's reading of replies, un-stuffing multi-line ones).

Example::

    >>> from protocols.mail import pop3
    >>> listener = pop3.serve(".", {"alice": "secret"})  # Maildirs in ./alice ...
    >>> listener.port > 0
    True
    >>> _ = listener.close()

and, in a coroutine (or at the prompt)::

    client = await pop3.connect("127.0.0.1", listener.port)
    await client.login("alice", "secret")
    count, size = await client.stat()
    message = await client.retr(1)        # bytes, CRLF lines, un-stuffed
    await client.quit()
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import inspect
import itertools
import logging
import os
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from netshell.listener import Listener
from netshell.protocol import ClientFactory, Factory, Protocol
from netshell.reactor import get_reactor
from protocols.mail.maildir import (
    MailboxLocked,
    Maildir,
    MaildirError,
    MessageInfo,
    NoSuchMessage,
)

__all__ = [
    "CommandError",
    "POP3Client",
    "POP3ConnectionLost",
    "POP3Error",
    "POP3ProtocolError",
    "POP3ReplyError",
    "POP3ServerFactory",
    "POP3ServerProtocol",
    "Response",
    "ResponseReader",
    "Stuffer",
    "TopCutter",
    "connect",
    "parse_command",
    "serve",
    "stuff",
    "unstuff",
]

log = logging.getLogger("netshell.pop3")
T = TypeVar("T")

DEFAULT_BANNER = "netshell POP3 server ready"
#: RFC 2449 §4: a command line is at most 255 octets, CRLF included
MAX_LINE_LENGTH = 255
#: an AUTH continuation line (RFC 5034 §4 lifts the 255-octet limit for those)
MAX_AUTH_LINE_LENGTH = 8192
_stamp_serial = itertools.count(1)


# ---- the sans-I/O parts


class CommandError(ValueError):
    """A command line the server cannot take: the text is the ``-ERR`` reply's."""


@dataclass(frozen=True)
class Command:
    """A parsed command line: ``verb`` (upper case) and its ``args``."""

    verb: str
    args: tuple[str, ...]


_VERB = re.compile(r"[A-Za-z]{3,4}\Z")


def parse_command(line: bytes) -> Command:
    """One command line (without its CRLF) as a :class:`Command`.

    RFC 1939: a keyword of 3 or 4 letters (any case), arguments separated by single
    spaces, each at most 40 characters (AUTH's base64 response excepted). Raises
    CommandError.

    >>> parse_command(b"top 1 10")
    Command(verb='TOP', args=('1', '10'))
    >>> parse_command(b"RETR \\xff")
    Traceback (most recent call last):
    ...
    protocols.mail.pop3.CommandError: Command is not ASCII
    """
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise CommandError("Command is not ASCII") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise CommandError("Control characters in the command")
    verb, _, rest = text.partition(" ")
    if not _VERB.match(verb):
        raise CommandError("Unknown command" if verb else "Empty command")
    verb = verb.upper()
    args = tuple(rest.split(" ")) if rest else ()
    if any(not a for a in args):
        raise CommandError("Arguments are separated by single spaces")
    if verb != "AUTH" and any(len(a) > 40 for a in args):
        raise CommandError("Argument too long (40 characters at most)")
    return Command(verb, args)


_BARE_LF = re.compile(rb"(?<!\r)\n")


def stuff(data: bytes) -> bytes:
    """``data`` as a multi-line response body: CRLF line endings (a bare LF becomes CRLF),
    a "." doubled at the start of each line that has one, a final CRLF, then ".\\r\\n".

    >>> stuff(b".hidden\\nline\\n")
    b'..hidden\\r\\nline\\r\\n.\\r\\n'
    """
    data = _BARE_LF.sub(b"\r\n", data)
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def unstuff(body: bytes) -> bytes:
    """A multi-line body as sent (CRLF lines, without the final ".\\r\\n") un-stuffed.

    >>> unstuff(b"..hidden\\r\\nline\\r\\n")
    b'.hidden\\r\\nline\\r\\n'
    """
    if body.startswith(b".."):
        body = body[1:]
    return body.replace(b"\r\n..", b"\r\n.")


class Stuffer:
    """:func:`stuff` by pieces, for a message read a chunk at a time: ``feed(chunk)``
    returns the stuffed bytes of that chunk, ``end()`` the final CRLF (if the message
    lacked one) and ".\\r\\n". The concatenation equals ``stuff(whole message)``.

    >>> s = Stuffer()
    >>> s.feed(b"a\\r") + s.feed(b"\\n.b\\n") + s.end()
    b'a\\r\\n..b\\r\\n.\\r\\n'
    """

    def __init__(self) -> None:
        self._last = b""  # the last byte fed (b"" before any)

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        head = b""
        if chunk[:1] == b"\n" and self._last == b"\r":  # a CRLF cut in two: not a bare LF
            head, chunk = b"\n", chunk[1:]
            line_start = True
        else:
            line_start = self._last in (b"", b"\n")
        self._last = (head + chunk)[-1:]
        data = _BARE_LF.sub(b"\r\n", chunk)
        if line_start and data.startswith(b"."):
            data = b"." + data
        return head + data.replace(b"\r\n.", b"\r\n..")

    def end(self) -> bytes:
        if self._last in (b"", b"\n"):
            return b".\r\n"
        return b"\r\n.\r\n"


@dataclass(frozen=True)
class Response:
    """One reply: ``status`` ``"+OK"``, ``"-ERR"`` or ``"+"`` (an AUTH challenge), its
    ``text``, the RFC 2449 response ``code`` (``"IN-USE"``...) if any, and ``body`` (the
    un-stuffed lines of a multi-line reply, CRLF-ended) or None."""

    status: str
    text: str
    code: str | None = None
    body: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.status == "+OK"

    @property
    def lines(self) -> list[str]:
        """The body's lines, as text (for CAPA, LIST, UIDL)."""
        if not self.body:
            return []
        return self.body.decode("utf-8", "replace").split("\r\n")[:-1]


_CODE = re.compile(r"\[([^\]\s]+)\]\s*")


def _parse_status(line: bytes) -> Response:
    text = line.decode("utf-8", "replace")
    if text == "+" or text.startswith("+ "):
        return Response("+", text[2:])
    for status in ("+OK", "-ERR"):
        if text == status or text.startswith(status + " "):
            rest = text[len(status) + 1:]
            m = _CODE.match(rest) if status == "-ERR" or rest.startswith("[") else None
            if m:
                return Response(status, rest[m.end():], m.group(1).upper())
            return Response(status, rest)
    raise POP3ProtocolError(f"not a POP3 reply: {text[:80]!r}")


class ResponseReader:
    """The client's reader: bytes in, :class:`Response` values out.

    Call :meth:`expect` once per command sent (``multiline``: whether a ``+OK`` reply to
    it has a body), in order; :meth:`feed` returns the replies completed so far. A
    status line longer than ``max_line_length`` raises POP3ProtocolError, as does a
    line that is no POP3 reply.

    >>> r = ResponseReader()
    >>> r.expect(True)
    >>> r.feed(b"+OK 2 messages\\r\\n..dot\\r\\nx\\r\\n.\\r\\n")
    [Response(status='+OK', text='2 messages', code=None, body=b'.dot\\r\\nx\\r\\n')]
    """

    def __init__(self, max_line_length: int = 64 * 1024,
                 max_body: int = 256 * 1024 * 1024) -> None:
        self.max_line_length = max_line_length
        #: Octets a multi-line reply may hold: a server that never ends one is cut off.
        self.max_body = max_body
        self._buffer = bytearray()
        self._expected: deque[bool] = deque()
        self._status: Response | None = None
        self._scan_from = 0

    def expect(self, multiline: bool) -> None:
        self._expected.append(multiline)

    def feed(self, data: bytes) -> list[Response]:
        buf = self._buffer
        buf += data
        out: list[Response] = []
        while True:
            if self._status is None:
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > self.max_line_length:
                        raise POP3ProtocolError(
                            f"reply line longer than {self.max_line_length} octets")
                    return out
                line = bytes(buf[:end]).rstrip(b"\r")
                del buf[:end + 1]
                status = _parse_status(line)
                multiline = self._expected.popleft() if self._expected else False
                if status.status != "+OK" or not multiline:
                    out.append(status)
                    continue
                self._status = status
                self._scan_from = 0
            # a multi-line body: ends at a line that is "." alone
            if buf.startswith(b".\r\n"):
                body_end, cut = 0, 3
            else:
                i = buf.find(b"\r\n.\r\n", max(self._scan_from - 4, 0))
                if i < 0:
                    if len(buf) > self.max_body:
                        raise POP3ProtocolError(
                            f"a multi-line reply longer than {self.max_body} octets")
                    self._scan_from = len(buf)
                    return out
                body_end, cut = i + 2, i + 5
            body = unstuff(bytes(buf[:body_end]))
            del buf[:cut]
            status, self._status = self._status, None
            out.append(Response(status.status, status.text, status.code, body))


# ---- errors (the client's)


class POP3Error(Exception):
    """Base of the POP3 client's errors."""


class POP3ReplyError(POP3Error):
    """The server answered ``-ERR``: ``command`` (the verb), ``code`` (the RFC 2449
    response code, or None) and ``text``."""

    def __init__(self, command: str, text: str, code: str | None = None) -> None:
        self.command = command
        self.text = text
        self.code = code
        shown = f"[{code}] " if code else ""
        super().__init__(f"{command}: -ERR {shown}{text}")


class POP3ProtocolError(POP3Error):
    """The server sent something that is not POP3."""


class POP3ConnectionLost(POP3Error):
    """The connection ended before the reply came."""


# ---- the server


@dataclass
class _Session:
    box: Maildir
    lock: Any
    messages: list[MessageInfo]
    sizes: list[int]
    deleted: set[int] = field(default_factory=set)  # message numbers, 1-based
    retrieved: set[int] = field(default_factory=set)


class TopCutter:
    """What TOP sends of a message fed by pieces: the header, the blank line, then
    ``body_lines`` lines of the body (all of a message that has no blank line).
    ``feed(chunk)`` returns the bytes to send (as stored: stuff them after), ``done``
    says the cut is made (feed no more), ``end()`` returns a last line with no line end.

    >>> cut = TopCutter(1)
    >>> cut.feed(b"Subject: x\\n\\nline 1\\nli") + cut.feed(b"ne 2\\n")
    b'Subject: x\\n\\nline 1\\n'
    >>> cut.done
    True
    """

    def __init__(self, body_lines: int) -> None:
        self.left = body_lines
        self.in_body = False
        self.done = False
        self._partial = b""

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        data = self._partial + chunk
        out_end = 0
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start:end].removesuffix(b"\r")
            if self.in_body:
                if self.left == 0:
                    self.done = True
                    break
                self.left -= 1
            elif not line:
                self.in_body = True
            start = end + 1
            out_end = start
        self._partial = b"" if self.done else data[out_end:]
        if not self.done and self.in_body and self.left == 0:
            self.done = True  # nothing more is wanted: no need to read on
            self._partial = b""
        return data[:out_end]

    def end(self) -> bytes:
        """The last line of a message whose end has no line break, if it is wanted."""
        partial, self._partial = self._partial, b""
        if self.done or (self.in_body and self.left == 0):
            return b""
        return partial


class _MessageProducer:
    """Sends one message (or TOP's part of it), stuffed, a chunk each time the transport
    asks (a pull producer): a slow reader never makes the server hold more than a chunk
    or two."""

    CHUNK = 256 * 1024

    def __init__(self, protocol: POP3ServerProtocol, file: Any,
                 body_lines: int | None = None) -> None:
        self.protocol = protocol
        self.file = file
        self.stuffer = Stuffer()
        self.cutter = TopCutter(body_lines) if body_lines is not None else None

    def resume_producing(self) -> None:
        transport = self.protocol.transport
        try:
            chunk = self.file.read(self.CHUNK)
        except OSError as e:
            log.warning("%s: reading a message failed: %s", self.protocol.peer, e)
            self.stop_producing()
            transport.abort()  # the reply is half sent: only a drop can tell the client
            return
        cutter = self.cutter
        if cutter is not None:
            wanted = cutter.feed(chunk) if chunk else cutter.end()
            if chunk and not cutter.done:
                transport.write(self.stuffer.feed(wanted))
                return
            transport.write(self.stuffer.feed(wanted) + self.stuffer.end())
            self.stop_producing()
            self.protocol._continue()
            return
        if chunk:
            transport.write(self.stuffer.feed(chunk))
            return
        transport.write(self.stuffer.end())
        self.stop_producing()
        self.protocol._continue()

    def pause_producing(self) -> None:
        pass

    def stop_producing(self) -> None:
        self.file.close()
        if self.protocol._sender is self:
            self.protocol._sender = None
            self.protocol.transport.unregister_producer()


class POP3ServerFactory(Factory):
    """Makes a :class:`POP3ServerProtocol` per connection; the settings of :func:`serve`."""

    def __init__(
        self,
        maildir_root: str | os.PathLike[str],
        users: Mapping[str, str],
        *,
        tls: Any = None,
        implicit_tls: bool = False,
        require_tls: bool = False,
        hostname: str | None = None,
        banner: str = DEFAULT_BANNER,
        max_line_length: int = MAX_LINE_LENGTH,
        max_bad_commands: int = 10,
        max_login_attempts: int = 3,
        login_delay: float = 1.0,
        idle_timeout: float = 600.0,
        reactor: Any = None,
    ) -> None:
        if (implicit_tls or require_tls) and tls is None:
            raise ValueError("implicit_tls and require_tls need tls= (tls.server_context(...))")
        self.maildir_root = os.fspath(maildir_root)
        if not os.path.isdir(self.maildir_root):
            raise ValueError(f"maildir_root {self.maildir_root!r} is not a directory")
        self.users = users
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.require_tls = require_tls
        self.hostname = hostname or socket.gethostname()
        self.banner = banner
        self.max_line_length = max_line_length
        self.max_bad_commands = max_bad_commands
        self.max_login_attempts = max_login_attempts
        self.login_delay = login_delay
        self.idle_timeout = idle_timeout
        self.reactor = reactor if reactor is not None else get_reactor()
        self.sessions: set[POP3ServerProtocol] = set()

    def build_protocol(self, addr: Any) -> POP3ServerProtocol:
        return POP3ServerProtocol(self)

    def __repr__(self) -> str:
        tls = ", implicit TLS" if self.implicit_tls else (", STLS" if self.tls else "")
        return (f"<POP3ServerFactory of {self.maildir_root!r}, {len(self.users)} users{tls}, "
                f"{len(self.sessions)} sessions>")


#: verb -> the states it is allowed in
_ALLOWED = {
    "USER": "A", "PASS": "A", "APOP": "A", "AUTH": "A", "STLS": "A",
    "CAPA": "AT", "QUIT": "AT", "NOOP": "T",
    "STAT": "T", "LIST": "T", "UIDL": "T", "RETR": "T", "TOP": "T", "DELE": "T", "RSET": "T",
}


@functools.cache
def _signature_of(function: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(function)


def _signature(method: Any) -> inspect.Signature:
    """The signature of a bound ``do_*`` method, without ``self`` (cached per function)."""
    full = _signature_of(method.__func__)
    return full.replace(parameters=list(full.parameters.values())[1:])


class POP3ServerProtocol(Protocol):
    """One POP3 session: the AUTHORIZATION, TRANSACTION and UPDATE states of RFC 1939."""

    def __init__(self, factory: POP3ServerFactory) -> None:
        self.factory = factory
        self.state = "AUTHORIZATION"
        self.transport: Any = None
        self.peer = "?"
        self.user: str | None = None  # given by USER, waiting for PASS
        self.authenticated: str | None = None
        self.session: _Session | None = None
        self.tls_active = False
        self.timestamp = ""
        self._buffer = bytearray()
        self._discarding = False
        self._sasl: str | None = None  # "PLAIN" while an AUTH continuation is awaited
        self._bad = 0
        self._failed_logins = 0
        self._closing = False
        self._idle: Any = None
        self._sender: _MessageProducer | None = None
        self._delay: Any = None  # the timer of a failed login's late answer
        self._reading_paused = False

    def __repr__(self) -> str:
        who = f" {self.authenticated}" if self.authenticated else ""
        return f"<POP3ServerProtocol {self.peer} {self.state}{who}>"

    # ---- connection events

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = getattr(transport, "peer", None)
        self.peer = f"{peer.host}:{peer.port}" if peer is not None else "?"
        self.tls_active = getattr(transport, "tls", None) is not None
        self.factory.sessions.add(self)
        self.timestamp = (f"<{os.getpid()}.{next(_stamp_serial)}.{int(time.time())}"
                          f"@{self.factory.hostname}>")
        self._reply(f"+OK {self.factory.banner} {self.timestamp}")
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._sender is not None or self._delay is not None:
            # a message (or a late answer) is on its way: later commands wait, so that
            # pipelined replies stay in order
            if len(self._buffer) > 64 * 1024 and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
            return
        self._process()

    def _continue(self) -> None:
        """A message went out whole, or a late answer went: on to the commands that came
        meanwhile."""
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        self._process()

    def _process(self) -> None:
        buf = self._buffer
        while not self._closing and self._sender is None and self._delay is None:
            end = buf.find(b"\n")
            limit = MAX_AUTH_LINE_LENGTH if self._sasl else self.factory.max_line_length
            if end < 0:
                if len(buf) >= limit:  # no CRLF within the limit: refuse, skip to the next
                    del buf[:]
                    if not self._discarding:
                        self._discarding = True
                        self._bad_command("Line too long")
                return
            if self._discarding:
                self._discarding = False
                del buf[:end + 1]
                continue
            if end + 1 > limit:
                del buf[:end + 1]
                self._bad_command("Line too long")
                continue
            line = bytes(buf[:end]).removesuffix(b"\r")
            del buf[:end + 1]
            self._arm_idle()
            self._line(line)

    def connection_lost(self, reason: Failure) -> None:
        self._closing = True
        if self._sender is not None:
            self._sender.stop_producing()
        if self._delay is not None and self._delay.active():
            self._delay.cancel()
        self._delay = None
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self.factory.sessions.discard(self)
        session, self.session = self.session, None
        if session is not None:
            if self.state != "UPDATE":
                log.info("%s: %s left without QUIT: nothing deleted", self.peer,
                         self.authenticated)
            session.lock.release()

    # ---- helpers

    def _reply(self, line: str) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(line.encode("utf-8") + b"\r\n")

    def _close(self) -> None:
        if not self._closing:
            self._closing = True
            self.transport.close()

    def _arm_idle(self) -> None:
        timeout = self.factory.idle_timeout
        if not timeout:
            return
        if self._idle is not None and self._idle.active():
            self._idle.reset(timeout)
        else:
            self._idle = self.factory.reactor.call_later(timeout, self._idle_out)

    def _idle_out(self) -> None:
        if self._sender is not None:  # a slow reader of a big message is not idle
            self._arm_idle()
            return
        log.info("%s: idle for %s s: autologout", self.peer, self.factory.idle_timeout)
        self._reply("-ERR Autologout; idle for too long")
        self._close()

    def _bad_command(self, text: str) -> None:
        self._bad += 1
        if self._bad >= self.factory.max_bad_commands:
            self._reply(f"-ERR {text}; too many bad commands, closing")
            self._close()
        else:
            self._reply(f"-ERR {text}")

    # ---- dispatch

    def _line(self, line: bytes) -> None:
        if self._sasl is not None:
            self._sasl_response(line)
            return
        try:
            command = parse_command(line)
        except CommandError as e:
            self._bad_command(str(e))
            return
        allowed = _ALLOWED.get(command.verb)
        if allowed is None:
            self._bad_command(f"Unknown command {command.verb}")
            return
        if self.state[0] not in allowed:
            self._bad_command(f"{command.verb} is not allowed in the {self.state} state")
            return
        handler = getattr(self, "do_" + command.verb.lower())
        try:
            _signature(handler).bind(*command.args)
        except TypeError:
            self._bad_command(f"Wrong arguments for {command.verb}")
            return
        try:
            ok = handler(*command.args)
        except NoSuchMessage:
            # removed by another program since the session began (an IMAP EXPUNGE, a
            # mail client of the disk): this command fails, the session goes on
            self._reply("-ERR [SYS/TEMP] That message is no longer in the mailbox")
            return
        except MaildirError as e:
            log.warning("%s: %s failed on the mail store: %s", self.peer, command.verb, e)
            self._reply(f"-ERR [SYS/TEMP] The mail store failed: {e.strerror or e}")
            return
        if ok is not False:
            self._bad = 0

    # ---- AUTHORIZATION

    def _plaintext_refused(self) -> bool:
        if self.factory.require_tls and not self.tls_active:
            self._reply("-ERR [AUTH] Plaintext authentication is not allowed without TLS; "
                        "use STLS first")
            return True
        return False

    def do_capa(self) -> None:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state == "AUTHORIZATION":
            if not (self.factory.require_tls and not self.tls_active):
                caps += ["USER", "SASL PLAIN"]
            if self.factory.tls is not None and not self.tls_active:
                caps.append("STLS")
        caps.append("IMPLEMENTATION netshell")
        self._reply("+OK Capability list follows\r\n" + "\r\n".join(caps) + "\r\n.")

    def do_stls(self) -> None:
        if self.factory.tls is None:
            self._bad_command("STLS is not offered: this server has no TLS")
            return
        if self.tls_active:
            self._bad_command("Command not permitted when TLS active")
            return
        self._reply("+OK Begin TLS negotiation")
        # Whatever was sent after STLS in clear is dropped: it must not pass for commands
        # sent under TLS (the STARTTLS command-injection attack).
        del self._buffer[:]
        self.tls_active = True
        self.user = None
        d = self.transport.start_tls(self.factory.tls)
        d.add_errback(self._tls_failed)

    def _tls_failed(self, failure: Failure) -> None:
        log.info("%s: STLS handshake failed: %s", self.peer, failure.value)
        self._close()

    def do_user(self, name: str) -> bool:
        if self._plaintext_refused():
            return False
        self.user = name
        self._reply("+OK Send PASS")
        return True

    def do_pass(self, *words: str) -> bool:
        # a password may hold spaces: everything after "PASS " is the password
        if self.user is None:
            self._bad_command("Send USER first")
            return False
        if self._plaintext_refused():
            return False
        user, self.user = self.user, None
        password = " ".join(words)
        expected = self.factory.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return self._login_failed(user)
        return self._open_mailbox(user)

    def do_apop(self, name: str, digest: str) -> bool:
        expected = self.factory.users.get(name)
        want = hashlib.md5((self.timestamp + (expected or "")).encode()).hexdigest()
        if expected is None or not hmac.compare_digest(want, digest.lower()):
            return self._login_failed(name)
        return self._open_mailbox(name)

    def do_auth(self, *args: str) -> bool:
        if not args:  # the list of mechanisms (RFC 1734's AUTH, which clients still send)
            self._reply("+OK\r\nPLAIN\r\n.")
            return True
        if len(args) > 2:
            self._bad_command("AUTH takes a mechanism and an initial response")
            return False
        if args[0].upper() != "PLAIN":
            self._reply("-ERR Unrecognized authentication type")
            return False
        if self._plaintext_refused():
            return False
        if len(args) == 2:
            return self._sasl_plain(args[1].encode())
        self._sasl = "PLAIN"
        self._reply("+ ")
        return True

    def _sasl_response(self, line: bytes) -> None:
        self._sasl = None
        if line == b"*":
            self._reply("-ERR AUTH cancelled")
            return
        self._sasl_plain(line)

    def _sasl_plain(self, encoded: bytes) -> bool:
        try:
            decoded = base64.b64decode(encoded, validate=True) if encoded != b"=" else b""
            authzid, authcid, password = decoded.decode("utf-8").split("\x00")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self._bad_command("Invalid base64 or PLAIN message")
            return False
        expected = self.factory.users.get(authcid)
        if (expected is None or (authzid and authzid != authcid)
                or not hmac.compare_digest(expected.encode(), password.encode())):
            return self._login_failed(authcid)
        return self._open_mailbox(authcid)

    def _login_failed(self, user: str) -> bool:
        self._failed_logins += 1
        log.warning("%s: failed login as %r", self.peer, user)
        last = self._failed_logins >= self.factory.max_login_attempts
        if self.factory.login_delay > 0:
            # the answer comes late, and nothing else is read meanwhile: guessing is slow
            self._delay = self.factory.reactor.call_later(
                self.factory.login_delay, self._answer_failed_login, last)
        else:
            self._answer_failed_login(last)
        return False

    def _answer_failed_login(self, last: bool) -> None:
        self._delay = None
        if last:
            self._reply("-ERR [AUTH] Authentication failed; too many attempts, closing")
            self._close()
            return
        self._reply("-ERR [AUTH] Authentication failed")
        if not self._closing and self.transport is not None:
            self._continue()

    def _open_mailbox(self, user: str) -> bool:
        if "/" in user or user.startswith(".") or "\x00" in user or not user:
            return self._login_failed(user)
        try:
            box = Maildir(os.path.join(self.factory.maildir_root, user))
            lock = box.lock_session(f"a POP3 session from {self.peer}")
        except MailboxLocked:
            self._reply("-ERR [IN-USE] Mailbox is locked by another POP3 session")
            return False
        except MaildirError as e:
            log.warning("%s: cannot open the mailbox of %s: %s", self.peer, user, e)
            self._reply("-ERR [SYS/TEMP] Cannot open the mailbox")
            return False
        try:
            messages = box.messages()
            sizes = [box.wire_size(m) for m in messages]
        except (OSError, KeyError) as e:
            lock.release()
            log.warning("%s: cannot read the mailbox of %s: %s", self.peer, user, e)
            self._reply("-ERR [SYS/TEMP] Cannot read the mailbox")
            return False
        self.session = _Session(box, lock, messages, sizes)
        self.authenticated = user
        self.state = "TRANSACTION"
        log.info("%s: %s logged in (%d messages)", self.peer, user, len(messages))
        self._reply(f"+OK {user}'s maildrop has {len(messages)} messages ({sum(sizes)} octets)")
        return True

    # ---- TRANSACTION

    def _number(self, arg: str) -> int | None:
        """The message number ``arg`` names, or None after an -ERR reply."""
        assert self.session is not None
        count = len(self.session.messages)
        if not arg.isdigit() or not 1 <= int(arg) <= count:
            self._reply(f"-ERR No such message, only {count} messages in maildrop")
            return None
        n = int(arg)
        if n in self.session.deleted:
            self._reply(f"-ERR Message {n} already deleted")
            return None
        return n

    def _live(self) -> list[int]:
        assert self.session is not None
        deleted = self.session.deleted
        return [n for n in range(1, len(self.session.messages) + 1) if n not in deleted]

    def do_noop(self) -> None:
        self._reply("+OK")

    def do_stat(self) -> None:
        assert self.session is not None
        live = self._live()
        size = sum(self.session.sizes[n - 1] for n in live)
        self._reply(f"+OK {len(live)} {size}")

    def do_list(self, which: str | None = None) -> bool:
        assert self.session is not None
        sizes = self.session.sizes
        if which is not None:
            n = self._number(which)
            if n is None:
                return False
            self._reply(f"+OK {n} {sizes[n - 1]}")
            return True
        live = self._live()
        lines = [f"+OK {len(live)} messages ({sum(sizes[n - 1] for n in live)} octets)"]
        lines += [f"{n} {sizes[n - 1]}" for n in live]
        self._reply("\r\n".join([*lines, "."]))
        return True

    def _uidl(self, n: int) -> str:
        assert self.session is not None
        return f"{self.session.messages[n - 1].uid:08X}{self.session.box.uidvalidity:08X}"

    def do_uidl(self, which: str | None = None) -> bool:
        if which is not None:
            n = self._number(which)
            if n is None:
                return False
            self._reply(f"+OK {n} {self._uidl(n)}")
            return True
        lines = ["+OK", *(f"{n} {self._uidl(n)}" for n in self._live()), "."]
        self._reply("\r\n".join(lines))
        return True

    def do_retr(self, which: str) -> bool:
        n = self._number(which)
        if n is None:
            return False
        assert self.session is not None
        file = self.session.box.open(self.session.messages[n - 1].uid)
        self.session.retrieved.add(n)
        self.transport.write(b"+OK %d octets\r\n" % self.session.sizes[n - 1])
        self._sender = _MessageProducer(self, file)
        self.transport.register_producer(self._sender, False)
        return True

    def do_top(self, which: str, count: str) -> bool:
        n = self._number(which)
        if n is None:
            return False
        if not count.isdigit():
            self._bad_command("TOP needs a non-negative number of lines")
            return False
        assert self.session is not None
        file = self.session.box.open(self.session.messages[n - 1].uid)
        self.transport.write(b"+OK\r\n")
        self._sender = _MessageProducer(self, file, int(count))
        self.transport.register_producer(self._sender, False)
        return True

    def do_dele(self, which: str) -> bool:
        n = self._number(which)
        if n is None:
            return False
        assert self.session is not None
        self.session.deleted.add(n)
        self._reply(f"+OK Message {n} deleted")
        return True

    def do_rset(self) -> None:
        assert self.session is not None
        self.session.deleted.clear()
        live = self._live()
        self._reply(f"+OK Maildrop has {len(live)} messages "
                    f"({sum(self.session.sizes[n - 1] for n in live)} octets)")

    def do_quit(self) -> None:
        session = self.session
        if session is None:  # AUTHORIZATION: no UPDATE
            self._reply("+OK netshell POP3 server signing off")
            self._close()
            return
        self.state = "UPDATE"
        uids = [session.messages[n - 1].uid for n in sorted(session.deleted)]
        seen = [session.messages[n - 1].uid for n in sorted(session.retrieved - session.deleted)]
        try:
            if uids:
                session.box.remove(uids)
            if seen:
                session.box.store_flags(seen, ["\\Seen"], "add")
            # what is left of them: none, also when another program removed some first
            present = {m.uid for m in session.box.messages()}
            removed: list[int] | None = [u for u in uids if u not in present]
        except (OSError, ValueError) as e:
            log.warning("%s: UPDATE failed for %s: %s", self.peer, self.authenticated, e)
            removed = None
        finally:
            self.session = None
            session.lock.release()
        left = len(session.messages) - len(session.deleted)
        if removed is None or len(removed) < len(uids):
            self._reply("-ERR [SYS/TEMP] Some deleted messages were not removed")
        else:
            self._reply(f"+OK netshell POP3 server signing off ({left} messages left)")
        log.info("%s: %s logged out, %d deleted", self.peer, self.authenticated, len(uids))
        self._close()


def serve(
    maildir_root: str | os.PathLike[str],
    users: Mapping[str, str],
    port: int = 0,
    interface: str = "127.0.0.1",
    tls: Any = None,
    *,
    implicit_tls: bool = False,
    require_tls: bool = False,
    hostname: str | None = None,
    banner: str = DEFAULT_BANNER,
    max_line_length: int = MAX_LINE_LENGTH,
    max_bad_commands: int = 10,
    max_login_attempts: int = 3,
    login_delay: float = 1.0,
    idle_timeout: float = 600.0,
) -> Listener:
    """Serve the Maildirs under ``maildir_root`` (one per user: ``maildir_root/<user>``)
    over POP3 on ``interface:port``; returns the Listener.

    ``users`` maps names to passwords (USER/PASS, APOP and AUTH PLAIN all check them).
    ``tls`` is a server context (``netshell.tls.server_context(cert, key)``): STLS is
    offered; ``implicit_tls`` speaks TLS from the first byte (pop3s, port 995's way);
    ``require_tls`` refuses to log in before STLS. ``hostname`` goes in the APOP
    timestamp of the greeting. The limits are in the module docstring. Raises ValueError
    when ``maildir_root`` is not a directory or a TLS option lacks ``tls``, OSError when
    the port is taken.

    >>> listener = serve(".", {"alice": "secret"}, idle_timeout=60)
    >>> listener.factory.idle_timeout
    60
    >>> _ = listener.close()
    """
    reactor = get_reactor()
    factory = POP3ServerFactory(
        maildir_root, users, tls=tls, implicit_tls=implicit_tls, require_tls=require_tls,
        hostname=hostname, banner=banner, max_line_length=max_line_length,
        max_bad_commands=max_bad_commands, max_login_attempts=max_login_attempts,
        login_delay=login_delay, idle_timeout=idle_timeout, reactor=reactor,
    )
    if implicit_tls:
        return reactor.listen_tls(port, factory, tls, interface=interface)
    return reactor.listen_tcp(port, factory, interface=interface)


# ---- the client


class _ClientProtocol(Protocol):
    def __init__(self, client: POP3Client) -> None:
        self.client = client
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.client._made(self)

    def data_received(self, data: bytes) -> None:
        self.client._data(data)

    def connection_lost(self, reason: Failure) -> None:
        self.client._lost(reason)


class POP3Client:
    """A POP3 session (from :func:`connect`): one method per verb, each a Deferred.

    Commands run one after the other (a call made while another is under way waits for
    it). ``async with`` sends QUIT at the end of the block (or drops the connection,
    deleting nothing, if the block raised). ``greeting`` is the server's first line,
    ``timestamp`` its APOP timestamp (or None), ``capabilities`` the last CAPA answer
    (name -> arguments), ``tls`` whether the connection is encrypted.
    """

    def __init__(self, host: str, timeout: float | None, reactor: Any) -> None:
        self.host = host
        self.timeout = timeout
        self.reactor = reactor
        self.greeting = ""
        self.timestamp: str | None = None
        self.capabilities: dict[str, list[str]] = {}
        self.tls = False
        self.closed = False
        self._protocol: _ClientProtocol | None = None
        self._reader = ResponseReader()
        self._waiters: deque[tuple[str, Deferred[Response]]] = deque()
        self._lock: asyncio.Lock | None = None
        self._greeting: Deferred[Response] = Deferred()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("TLS" if self.tls else "clear")
        return f"<POP3Client {self.host} {state}>"

    # ---- plumbing

    def _made(self, protocol: _ClientProtocol) -> None:
        self._protocol = protocol
        self._greeting = self._expect("greeting", False)

    def _expect(self, verb: str, multiline: bool) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        self._reader.expect(multiline)
        self._waiters.append((verb, d))
        return d

    def _data(self, data: bytes) -> None:
        try:
            responses = self._reader.feed(data)
        except POP3Error as e:
            self._fail_all(e)
            if self._protocol is not None:
                self._protocol.transport.abort()
            return
        for response in responses:
            if not self._waiters:
                self._fail_all(POP3ProtocolError(f"a reply nobody asked for: {response}"))
                return
            _, d = self._waiters.popleft()
            if not d.called:
                d.callback(response)

    def _lost(self, reason: Failure) -> None:
        self.closed = True
        self._fail_all(POP3ConnectionLost(f"the connection to {self.host} ended: "
                                          f"{reason.value}"))

    def _fail_all(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, deque()
        for verb, d in waiters:
            if not d.called:
                d.errback(type(error)(f"{verb}: {error}"))

    async def _wait(self, d: Deferred[T], what: str) -> T:
        if self.timeout is not None:
            d.add_timeout(self.timeout, clock=self.reactor)
        try:
            return await d
        except TimeoutError as e:  # netshell's TimeoutError is the builtin's subclass
            # where the session stands is unknown now: a late reply must not pass for the
            # answer to the next command
            self.close()
            raise POP3Error(f"{what}: no reply within {self.timeout} s") from e

    async def _send(self, verb: str, line: str, multiline: bool = False,
                    check: bool = True) -> Response:
        if self.closed or self._protocol is None:
            raise POP3ConnectionLost(f"{verb}: the connection to {self.host} is closed")
        bad = next((c for c in line if c in "\r\n\x00"), None)
        if bad is not None:
            # a password "pw\r\nDELE 1" would send a command of its own
            raise ValueError(f"{verb}: {bad!r} in an argument: refused, it would end the "
                             "command and start another")
        d = self._expect(verb, multiline)
        self._protocol.transport.write(line.encode("utf-8") + b"\r\n")
        response = await self._wait(d, verb)
        if check and response.status == "-ERR":
            raise POP3ReplyError(verb, response.text, response.code)
        if check and response.status == "+":
            raise POP3ProtocolError(f"{verb}: an unexpected continuation '+ {response.text}'")
        return response

    def _run(self, work: Callable[[], Awaitable[T]]) -> Deferred[T]:
        async def serialised() -> T:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                return await work()
        return ensure_deferred(serialised())

    async def _greet(self) -> None:
        response = await self._wait(self._greeting, "the greeting")
        if response.status != "+OK":
            raise POP3ReplyError("greeting", response.text, response.code)
        self.greeting = response.text
        m = re.search(r"<[^<>@\s]+@[^<>\s]+>", response.text)
        self.timestamp = m.group(0) if m else None

    async def _stls(self, context: Any) -> None:
        await self._send("STLS", "STLS")
        assert self._protocol is not None
        started = self._protocol.transport.start_tls(context)
        await self._wait(started, "the TLS handshake")
        self.tls = True
        self.capabilities = {}  # RFC 2595 §4: forget what was learnt in clear

    # ---- the verbs

    def stls(self, context: Any) -> Deferred[None]:
        """STLS, then the TLS handshake with ``context`` (a client context)."""
        return self._run(lambda: self._stls(context))

    def capa(self) -> Deferred[dict[str, list[str]]]:
        """CAPA: the capabilities, name (upper case) -> arguments."""
        async def work() -> dict[str, list[str]]:
            response = await self._send("CAPA", "CAPA", multiline=True)
            caps = {}
            for line in response.lines:
                words = line.split()
                if words:
                    caps[words[0].upper()] = words[1:]
            self.capabilities = caps
            return caps
        return self._run(work)

    def login(self, user: str, password: str) -> Deferred[str]:
        """USER then PASS; fires with the server's text (``-ERR`` fails: POP3ReplyError,
        ``code`` ``"AUTH"`` or ``"IN-USE"``)."""
        async def work() -> str:
            await self._send("USER", f"USER {user}")
            return (await self._send("PASS", f"PASS {password}")).text
        return self._run(work)

    def apop(self, user: str, password: str) -> Deferred[str]:
        """APOP with the greeting's timestamp (POP3Error if the greeting had none)."""
        async def work() -> str:
            if self.timestamp is None:
                raise POP3Error("APOP: the server's greeting has no timestamp")
            digest = hashlib.md5((self.timestamp + password).encode()).hexdigest()
            return (await self._send("APOP", f"APOP {user} {digest}")).text
        return self._run(work)

    def auth_plain(self, user: str, password: str, authzid: str = "") -> Deferred[str]:
        """AUTH PLAIN (RFC 5034): with the initial response when the line fits 255 octets."""
        async def work() -> str:
            token = base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()
            line = f"AUTH PLAIN {token}"
            if len(line) + 2 <= MAX_LINE_LENGTH:
                return (await self._send("AUTH", line)).text
            challenge = await self._send("AUTH", "AUTH PLAIN", check=False)
            if challenge.status != "+":
                if challenge.status == "-ERR":
                    raise POP3ReplyError("AUTH", challenge.text, challenge.code)
                raise POP3ProtocolError("AUTH: +OK before any credentials")
            return (await self._send("AUTH", token)).text
        return self._run(work)

    def stat(self) -> Deferred[tuple[int, int]]:
        """STAT: (number of messages, total octets)."""
        async def work() -> tuple[int, int]:
            response = await self._send("STAT", "STAT")
            try:
                count, size = response.text.split()[:2]
                return int(count), int(size)
            except ValueError:
                raise POP3ProtocolError(f"STAT: not a count and size: {response.text!r}") \
                    from None
        return self._run(work)

    def _listing(self, verb: str, which: int | None, value: Callable[[str], T],
                 ) -> Deferred[dict[int, T]]:
        async def work() -> dict[int, T]:
            if which is not None:
                response = await self._send(verb, f"{verb} {which}")
                lines = [response.text]
            else:
                lines = (await self._send(verb, verb, multiline=True)).lines
            result = {}
            for line in lines:
                words = line.split()
                try:
                    result[int(words[0])] = value(words[1])
                except (IndexError, ValueError):
                    raise POP3ProtocolError(f"{verb}: a line that is no listing: {line!r}") \
                        from None
            return result
        return self._run(work)

    def list(self, which: int | None = None) -> Deferred[dict[int, int]]:
        """LIST: message number -> size (only ``which``'s when given)."""
        return self._listing("LIST", which, int)

    def uidl(self, which: int | None = None) -> Deferred[dict[int, str]]:
        """UIDL: message number -> unique id (only ``which``'s when given)."""
        return self._listing("UIDL", which, str)

    def retr(self, which: int) -> Deferred[bytes]:
        """RETR: the message, un-stuffed, with CRLF line endings."""
        async def work() -> bytes:
            body = (await self._send("RETR", f"RETR {which}", multiline=True)).body
            return body or b""
        return self._run(work)

    def top(self, which: int, lines: int = 0) -> Deferred[bytes]:
        """TOP: the message's header and the first ``lines`` lines of its body."""
        async def work() -> bytes:
            body = (await self._send("TOP", f"TOP {which} {lines}", multiline=True)).body
            return body or b""
        return self._run(work)

    def _simple(self, verb: str, line: str) -> Deferred[str]:
        async def work() -> str:
            return (await self._send(verb, line)).text
        return self._run(work)

    def dele(self, which: int) -> Deferred[str]:
        """DELE: mark message ``which`` deleted (removed at QUIT)."""
        return self._simple("DELE", f"DELE {which}")

    def rset(self) -> Deferred[str]:
        """RSET: unmark every deleted message."""
        return self._simple("RSET", "RSET")

    def noop(self) -> Deferred[str]:
        """NOOP."""
        return self._simple("NOOP", "NOOP")

    def quit(self) -> Deferred[str]:
        """QUIT: the server removes the deleted messages (UPDATE); fires with its text, and
        the connection is closed."""
        async def work() -> str:
            response = await self._send("QUIT", "QUIT")
            if self._protocol is not None and not self.closed:
                self.closed = True
                self._protocol.transport.close()
            return response.text
        return self._run(work)

    def close(self) -> None:
        """Drop the connection without QUIT (the server deletes nothing)."""
        if self._protocol is not None and not self.closed:
            self.closed = True
            self._protocol.transport.abort()

    async def __aenter__(self) -> POP3Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """QUIT (so the server removes what was deleted) when the block ends well; a drop
        (nothing removed) when it raised."""
        if self.closed:
            return
        if exc[0] is None:
            await self.quit()
        else:
            self.close()


def connect(
    host: str,
    port: int = 110,
    *,
    tls: str | None = None,
    ca: Any = None,
    verify: bool = True,
    context: Any = None,
    timeout: float | None = 30,
    reactor: Any = None,
) -> Deferred[POP3Client]:
    """Connect to a POP3 server; fires with a :class:`POP3Client` once it has greeted.

    ``tls``: None (clear), ``"stls"`` (STLS before anything else; fails with
    POP3ReplyError if the server refuses it) or ``"implicit"`` (TLS from the first byte,
    port 995's way). The server's certificate is verified for ``host`` (``ca``: PEM or a
    path to trust instead of the system's store; ``verify=False`` turns that off;
    ``context`` gives a :func:`netshell.tls.client_context`). ``timeout`` bounds the
    connection and each reply. Fails with ``ns.ConnectError`` (refused...),
    POP3ReplyError (an ``-ERR`` greeting), POP3Error (timeout), ``ns.TLSError``.
    """
    if tls not in (None, "stls", "implicit"):
        raise ValueError(f"tls is None, 'stls' or 'implicit', not {tls!r}")
    reactor = reactor if reactor is not None else get_reactor()
    if tls is not None and context is None:
        from netshell.tls import client_context  # pyOpenSSL only for those who use TLS

        context = client_context(host, ca=ca, verify=verify)
    client = POP3Client(host, timeout, reactor)
    factory = ClientFactory.for_protocol(_ClientProtocol, client)

    async def start() -> POP3Client:
        wait = timeout if timeout is not None else 30
        if tls == "implicit":
            await reactor.connect_tls(host, port, factory, context, timeout=wait)
            client.tls = True
        else:
            await reactor.connect_tcp(host, port, factory, timeout=wait)
        try:
            await client._greet()
            if tls == "stls":
                await client._stls(context)
        except BaseException:
            client.close()
            raise
        return client

    return ensure_deferred(start())
