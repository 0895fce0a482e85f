"""The SMTP server: ESMTP sessions that hand each accepted message to a Maildir or a callable.

``serve(deliver="/var/mail/inbox")`` delivers into that Maildir (a ``Return-Path:`` and a
``Received:`` line on top, RFC 5321 §4.4); ``serve(deliver=f)`` calls ``f(envelope)`` with
an :class:`Envelope` and answers 250 only once ``f`` returned (or its Deferred fired). A
delivery that fails is answered ``451 4.3.0``: the client keeps the message and tries again;
a ``deliver`` that raises :class:`~protocols.mail.smtp.core.SMTPError` has its own reply sent.

Extensions offered: PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152), SMTPUTF8 (6531),
CHUNKING/BDAT (3030), ENHANCEDSTATUSCODES (2034, codes of 3463), STARTTLS (3207, with
``tls=``) and AUTH PLAIN/LOGIN (4954, 4616, with ``auth=``; offered only under TLS unless
``allow_insecure_auth``). Commands: HELO, EHLO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, VRFY
(252), HELP, QUIT, STARTTLS, AUTH; EXPN and the others are 502.

Hostile input gets the protocol's own answer and costs only its own connection: lines over
their limit (500 5.5.2; 500 5.5.6 in AUTH), a message too big (552 5.3.4), too many
recipients (452 4.5.3), a bare CR or LF in a message (554 5.6.0: SMTP smuggling; see
:mod:`protocols.mail.smtp.core`), a client that speaks before the greeting when
``greeting_delay`` is set (554, closed), ``max_bad_commands`` errors (421 4.7.0, closed), a
session idle for ``idle_timeout`` seconds (421 4.4.2, closed), more than ``max_connections``
sessions at once (421 4.3.2).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import email.policy
import email.utils
import hmac
import itertools
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netshell.defer import CancelledError, Deferred, fail, maybe_deferred
from netshell.failure import Failure
from netshell.listener import Listener
from netshell.protocol import Factory, Protocol
from netshell.reactor import get_reactor
from protocols.mail.maildir import Maildir
from protocols.mail.smtp.core import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    DataReader,
    PathError,
    Reply,
    SMTPError,
    check_bare,
    is_domain,
    normalize_line_ends,
    parse_mail,
    parse_rcpt,
    reply_bytes,
)

__all__ = ["Envelope", "SMTPServerFactory", "SMTPServerProtocol", "serve"]

log = logging.getLogger("netshell.smtp")

#: the default ``max_size``: 32 MiB, as aiosmtpd
DEFAULT_MAX_SIZE = 32 * 1024 * 1024
#: replies whose commands count as bad ones (max_bad_commands)
_BAD_CODES = frozenset({500, 501, 502, 503, 504, 535, 555})
#: how many bytes the server holds unread while a command waits (a delivery, an AUTH check)
_HOLD = 256 * 1024

_ids = itertools.count(1)
#: the reply to DATA, made once
_GO_AHEAD = Reply(354, "End data with <CR><LF>.<CR><LF>").to_bytes()
#: a number as SIZE= and BDAT give it: ASCII digits only (str.isdigit() also takes '²',
#: which int() refuses)
_DIGITS = re.compile(r"[0-9]+")

_HELP = {
    "HELO": "HELO <domain>",
    "EHLO": "EHLO <domain>",
    "MAIL": "MAIL FROM:<sender> [SIZE=<n>] [BODY=7BIT|8BITMIME] [SMTPUTF8]",
    "RCPT": "RCPT TO:<recipient>",
    "DATA": "DATA (then the message, ended by a line holding only '.')",
    "BDAT": "BDAT <size> [LAST] (then <size> octets of the message)",
    "RSET": "RSET",
    "NOOP": "NOOP",
    "VRFY": "VRFY <address>",
    "HELP": "HELP [<command>]",
    "QUIT": "QUIT",
    "STARTTLS": "STARTTLS",
    "AUTH": "AUTH PLAIN|LOGIN [<initial response>]",
}


@dataclass(repr=False)
class Envelope:
    """One message as the server accepted it, handed to ``deliver``.

    ``data`` is the message with the server's ``Received:`` line on top (what to store or
    pass on); ``content`` the message as the client sent it (unstuffed). ``sender`` is
    ``""`` for the null sender ``<>``. ``mail_options`` are MAIL's parameters as given
    (``["SIZE=120", "BODY=8BITMIME"]``), ``rcpt_options`` RCPT's, one list per recipient.
    ``smtputf8`` says the client asked for SMTPUTF8, ``body`` is ``"7BIT"``,
    ``"8BITMIME"`` or None (not said). ``tls`` tells whether the session used TLS, ``user``
    who logged in with AUTH (None: nobody). ``peer`` is the client's (host, port),
    ``helo`` what it said in HELO/EHLO, ``id`` the id in the Received line.
    """

    peer: tuple[str, int]
    helo: str
    sender: str
    recipients: list[str]
    data: bytes = b""
    content: bytes = b""
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[list[str]] = field(default_factory=list)
    smtputf8: bool = False
    body: str | None = None
    tls: bool = False
    user: str | None = None
    id: str = ""
    received_at: float = 0.0

    def __repr__(self) -> str:
        count = len(self.recipients)
        to = f"<{self.recipients[0]}>" if count == 1 else f"{count} recipients"
        return (f"<Envelope {self.id or '-'} from <{self.sender}> to {to}, "
                f"{len(self.content):,} octets>")

    def message(self) -> email.message.EmailMessage:
        """The message parsed (``email.policy.default``): headers by name, the body.

        >>> envelope = Envelope(("127.0.0.1", 1), "c.test", "a@x.test", ["b@y.test"],
        ...                     content=b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
        >>> envelope.message()["Subject"]
        'hi'
        >>> envelope
        <Envelope - from <a@x.test> to <b@y.test>, 22 octets>
        """
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


class _AuthExchange:
    """An AUTH exchange under way: the mechanism and what it has been given so far."""

    __slots__ = ("mechanism", "user")

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.user: str | None = None


class SMTPServerFactory(Factory):
    """Makes an :class:`SMTPServerProtocol` per connection and holds the settings; the
    arguments are as for :func:`serve`."""

    display_name = "smtp server"

    def __init__(
        self,
        deliver: Any,
        *,
        hostname: str | None = None,
        auth: Any = None,
        tls: Any = None,
        require_tls: bool = False,
        implicit_tls: bool = False,
        require_auth: bool = False,
        allow_insecure_auth: bool = False,
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_recipients: int = 100,
        max_line_length: int | None = 1000,
        bare_line_ends: str = "refuse",
        max_bad_commands: int = 10,
        greeting_delay: float = 0.0,
        idle_timeout: float = 300.0,
        max_connections: int = 512,
        add_received: bool = True,
        banner: str = "ESMTP netshell",
        reactor: Any = None,
        delivery_timeout: float = 600.0,
        clock: Any = None,
    ) -> None:
        if isinstance(deliver, str | os.PathLike):
            self.maildir: Maildir | None = Maildir(deliver)
            self.deliver: Callable[[Envelope], Any] | None = None
        elif callable(deliver):
            self.maildir = None
            self.deliver = deliver
        else:
            raise TypeError(
                f"deliver is a Maildir path or a callable(envelope), not {deliver!r}"
            )
        if (require_tls or implicit_tls) and tls is None:
            raise ValueError("require_tls and implicit_tls need tls= "
                             "(a server context: netshell.tls.server_context(...))")
        if require_auth and auth is None:
            raise ValueError("require_auth needs auth= (a dict of passwords or a checker)")
        if auth is not None and not callable(auth) and not isinstance(auth, Mapping):
            raise TypeError("auth is a dict (user -> password) or a callable "
                            f"(user, password) -> bool | Deferred, not {auth!r}")
        if bare_line_ends not in ("refuse", "normalize"):
            raise ValueError(f"bare_line_ends is 'refuse' or 'normalize', not {bare_line_ends!r}")
        if max_size is not None and max_size < 0:
            raise ValueError("max_size is a number of octets, or None for no limit")
        self.hostname = hostname or socket.gethostname()
        self.auth = auth
        self.tls = tls
        self.require_tls = require_tls
        self.implicit_tls = implicit_tls
        self.require_auth = require_auth
        self.allow_insecure_auth = allow_insecure_auth
        self.max_size = max_size
        self.max_recipients = max_recipients
        self.max_line_length = max_line_length
        self.bare_line_ends = bare_line_ends
        self.max_bad_commands = max_bad_commands
        self.greeting_delay = greeting_delay
        self.idle_timeout = idle_timeout
        #: Seconds a delivery may take before the client is told 451 (0: no bound).
        self.delivery_timeout = delivery_timeout
        self.max_connections = max_connections
        self.add_received = add_received
        self.greeting = Reply(220, f"{self.hostname} {banner}").to_bytes()
        self.reactor = reactor if reactor is not None else get_reactor()
        #: what times the greeting delay and idle timeouts (a test may give a Clock)
        self.clock = clock if clock is not None else self.reactor
        #: the sessions open now
        self.sessions: set[SMTPServerProtocol] = set()
        #: how many messages were delivered, and how many deliveries failed
        self.delivered = 0
        self.failed = 0

    def build_protocol(self, addr: Any) -> SMTPServerProtocol:
        return SMTPServerProtocol(self)

    def check_password(self, user: str, password: str) -> Deferred[bool]:
        """Whether ``user`` logs in with ``password`` (a Deferred: a checker may take time)."""
        auth = self.auth
        if isinstance(auth, Mapping):
            expected = auth.get(user)
            ok = expected is not None and hmac.compare_digest(
                str(expected).encode("utf-8", "surrogateescape"),
                password.encode("utf-8", "surrogateescape"),
            )
            d: Deferred[bool] = Deferred()
            d.callback(ok)
            return d
        return maybe_deferred(auth, user, password).add_callback(lambda r: r is True)

    def extensions(self, session: SMTPServerProtocol) -> list[str]:
        """The EHLO keywords for ``session`` (STARTTLS and AUTH depend on its TLS)."""
        words = ["PIPELINING", f"SIZE {self.max_size or 0}", "8BITMIME", "SMTPUTF8",
                 "CHUNKING", "ENHANCEDSTATUSCODES"]
        if self.tls is not None and not session.tls_active:
            words.append("STARTTLS")
        if self.auth is not None and (session.tls_active or self.allow_insecure_auth):
            words.append("AUTH PLAIN LOGIN")
        words.append("HELP")
        return words

    def __repr__(self) -> str:
        where = self.maildir.path if self.maildir is not None else getattr(
            self.deliver, "__qualname__", repr(self.deliver))
        return f"<SMTPServerFactory delivering to {where!r}, {len(self.sessions)} sessions>"


class SMTPServerProtocol(Protocol):
    """One SMTP session, server side: commands in order, one reply each (pipelined commands
    wait while one before them is answered later: a delivery, an AUTH check)."""

    display_name = "smtp server"

    def __init__(self, factory: SMTPServerFactory) -> None:
        self.factory = factory
        self.transport: Any = None
        self.peer: tuple[str, int] = ("-", 0)
        #: the bytes received and not acted on yet; command lines are taken from ``_pos`` on
        #: (slicing the buffer once per line would copy it once per line)
        self._buffer = b""
        self._pos = 0
        #: "greeting" (not greeted yet), "command", "data", "bdat", "auth", "closed"
        self.mode = "greeting"
        self.helo: str | None = None
        self.esmtp = False
        self.tls_active = False
        self.user: str | None = None
        self.bad_commands = 0
        self.busy = False
        self._running = False  # inside _process: a reply given at once must not re-enter it
        self._write_paused = False
        self._read_paused = False
        self._skipping = False  # the rest of a command line that was too long is dropped
        self._timer: Any = None
        self._greet_timer: Any = None
        self._reader: DataReader | None = None
        self._bdat_left = 0
        self._bdat_last = False
        self._auth: _AuthExchange | None = None
        #: the start of the Received line, and what it was made from (_received)
        self._trace_from: tuple[Any, str] | None = None
        self._reset_transaction()

    # ---- the transaction

    def _reset_transaction(self) -> None:
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.mail_options: list[str] = []
        self.rcpt_options: list[list[str]] = []
        self.smtputf8 = False
        self.body: str | None = None
        self._chunks: list[bytes] = []
        self._chunk_size = 0
        self._bdat_failed: Reply | None = None
        self._bdat_started = False

    # ---- connection events

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        factory = self.factory
        peer = transport.peer
        self.peer = (peer.host, peer.port)
        self.tls_active = factory.implicit_tls
        if len(factory.sessions) >= factory.max_connections > 0:
            log.warning("refused %s: %d sessions already (max_connections)", peer.host,
                        len(factory.sessions))
            self.mode = "command"
            self._send(Reply(421, f"{factory.hostname} Too many connections; try again later",
                             "4.3.2"))
            self._close()
            return
        factory.sessions.add(self)
        transport.register_producer(self, True)
        if factory.greeting_delay > 0:
            self._greet_timer = factory.clock.call_later(factory.greeting_delay, self._greet)
        else:
            self._greet()

    def _greet(self) -> None:
        self._greet_timer = None
        if self.mode != "greeting":
            return
        self.mode = "command"
        self.transport.write(self.factory.greeting)
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self.mode == "closed":
            return
        if self.mode == "greeting":
            # RFC 5321 §4.3.1: the client waits for the greeting; one that talks first is
            # a spam engine that does not listen (an "early talker")
            log.info("%s:%d spoke before the greeting; closing", *self.peer)
            self._send(Reply(554, "Protocol error: you spoke before my greeting", "5.5.0"))
            self._close()
            return
        self._buffer += data
        if self._timer is not None and self.mode in ("data", "bdat"):
            # a message's data moves the timer (RFC 5321 §4.5.3.2.5: per block of data);
            # a command only once its line is whole (_take_line): a client sending a
            # byte now and then never finishes one (slowloris) and is still timed out
            self._timer.reset(self.factory.idle_timeout)
        self._process()

    def connection_lost(self, reason: Failure) -> None:
        if self.mode in ("data", "bdat"):
            log.info("%s:%d left during the message; nothing delivered", *self.peer)
        self.mode = "closed"
        self.factory.sessions.discard(self)
        self._cancel_timers()
        self._drop_input()
        self._reader = None
        self._chunks = []

    def stop_gracefully(self) -> None:
        if self.mode in ("command", "greeting") and not self.busy:
            self._send(Reply(421, f"{self.factory.hostname} Service shutting down", "4.3.2"))
            self._close()

    # flow control: the transport's write buffer is full, or drained
    def pause_producing(self) -> None:
        self._write_paused = True
        self._pause_reading()

    def resume_producing(self) -> None:
        self._write_paused = False
        self._maybe_resume_reading()
        self._process()

    def stop_producing(self) -> None:
        pass

    # ---- helpers

    def _arm_timer(self) -> None:
        timeout = self.factory.idle_timeout
        if timeout and self._timer is None:
            self._timer = self.factory.clock.call_later(timeout, self._idle)

    def _idle(self) -> None:
        self._timer = None
        if self.mode == "closed":
            return
        if self.busy:
            # a delivery (or an AUTH check) is under way: the client waits for us, not we
            # for it; cutting it off now would lose the reply to a message stored
            self._arm_timer()
            return
        log.info("%s:%d idle for %ss; closing", *self.peer, self.factory.idle_timeout)
        self._send(Reply(421, f"{self.factory.hostname} Timeout; closing the connection",
                         "4.4.2"))
        self._close()

    def _cancel_timers(self) -> None:
        for name in ("_timer", "_greet_timer"):
            timer = getattr(self, name)
            setattr(self, name, None)
            if timer is not None and timer.active():
                timer.cancel()

    def _send(self, reply: Reply) -> None:
        if self.mode != "closed":
            self.transport.write(reply.to_bytes())

    def reply(self, code: int, text: str, enhanced: str | None = None) -> None:
        """Answer the command being handled; a bad one counts towards max_bad_commands."""
        data = reply_bytes(code, text, enhanced)
        if self.mode != "closed":
            self.transport.write(data)
        if code in _BAD_CODES:
            self.bad_commands += 1
            limit = self.factory.max_bad_commands
            if limit and self.bad_commands >= limit and self.mode != "closed":
                log.info("%s:%d: %d bad commands; closing", *self.peer, self.bad_commands)
                self._send(Reply(421, f"{self.factory.hostname} Too many errors; closing",
                                 "4.7.0"))
                self._close()

    def _close(self) -> None:
        if self.mode == "closed":
            return
        self.mode = "closed"
        self._cancel_timers()
        self._drop_input()
        self.transport.close()

    def _drop_input(self) -> None:
        self._buffer = b""
        self._pos = 0

    def _pause_reading(self) -> None:
        if not self._read_paused and self.mode != "closed":
            self._read_paused = True
            self.transport.pause_reading()

    def _maybe_resume_reading(self) -> None:
        if (self._read_paused and not self._write_paused and len(self._buffer) < _HOLD
                and self.mode != "closed"):
            self._read_paused = False
            self.transport.resume_reading()

    # ---- the input loop

    def _process(self) -> None:
        """Act on what is buffered, in order, until it runs out or something waits.

        A delivery or AUTH check that answers at once calls this again from inside it: the
        loop already running goes on instead (else a burst of pipelined BDAT messages
        would recurse once per message)."""
        if self._running:
            return
        self._running = True
        try:
            self._process_buffer()
        finally:
            self._running = False

    def _process_buffer(self) -> None:
        while len(self._buffer) > self._pos and not self.busy and not self._write_paused:
            mode = self.mode
            if mode == "command" or mode == "auth":
                if not self._take_line():
                    break
                continue
            if self._pos:
                self._buffer = self._buffer[self._pos:]
                self._pos = 0
            if mode == "data":
                self._take_data()
            elif mode == "bdat":
                self._take_chunk()
            else:
                self._drop_input()
                return
        if self.mode == "closed":
            return
        if self._pos:
            self._buffer = self._buffer[self._pos:]
            self._pos = 0
        if len(self._buffer) >= _HOLD:
            self._pause_reading()
        elif self._read_paused:
            self._maybe_resume_reading()

    def _take_line(self) -> bool:
        buffer = self._buffer
        pos = self._pos
        end = buffer.find(b"\n", pos)
        limit = MAX_AUTH_LINE if self.mode == "auth" else MAX_COMMAND_LINE
        if end < 0:
            if len(buffer) - pos > limit + 1:
                self._skipping = True
                self._drop_input()
            return False
        line = buffer[pos:end]
        self._pos = end + 1
        if self._timer is not None:
            self._timer.reset(self.factory.idle_timeout)
        if line.endswith(b"\r"):
            line = line[:-1]
        if self._skipping or len(line) > limit:
            self._skipping = False
            if self.mode == "auth":
                self._auth = None
                self.mode = "command"
                self.reply(500, "Authentication exchange line is too long", "5.5.6")
            else:
                self.reply(500, f"Line too long (the limit is {limit} octets)", "5.5.2")
            return True
        text = line.decode("utf-8", "surrogateescape")
        if self.mode == "auth":
            self._auth_line(text)
            return True
        if "\r" in text or "\x00" in text:
            self.reply(500, "Syntax error: a bare CR or NUL in the command", "5.5.2")
            return True
        self._dispatch(text)
        return True

    def _dispatch(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        name = verb.upper()
        handler = getattr(self, "smtp_" + name, None) if name.isalpha() else None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s:%d -> %s", *self.peer, name)
        if handler is None:
            if name in ("EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"):
                self.reply(502, f"{name} not implemented", "5.5.1")
            else:
                self.reply(500, "Command unrecognized", "5.5.2")
            return
        if (self.factory.require_tls and not self.tls_active
                and name not in ("EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "QUIT", "HELP")):
            self.reply(530, "Must issue a STARTTLS command first", "5.7.0")
            return
        handler(arg.strip(" "))

    # ---- commands

    def _greeted(self) -> bool:
        if self.helo is None:
            self.reply(503, "Send HELO or EHLO first", "5.5.1")
            return False
        return True

    def smtp_HELO(self, arg: str) -> None:
        if not arg:
            self.reply(501, "Syntax: HELO <domain>", "5.5.4")
            return
        self._reset_transaction()
        self.helo = arg
        self.esmtp = False
        self._send(Reply(250, self.factory.hostname))

    def smtp_EHLO(self, arg: str) -> None:
        if not arg:
            self.reply(501, "Syntax: EHLO <domain>", "5.5.4")
            return
        self._reset_transaction()
        self.helo = arg
        self.esmtp = True
        lines = [f"{self.factory.hostname} greets {arg}", *self.factory.extensions(self)]
        self._send(Reply(250, "\n".join(lines)))

    def smtp_MAIL(self, arg: str) -> None:
        if not self._greeted():
            return
        factory = self.factory
        if factory.require_auth and self.user is None:
            self.reply(530, "Authentication required", "5.7.0")
            return
        if self.sender is not None:
            self.reply(503, "Nested MAIL command: one transaction at a time", "5.5.1")
            return
        try:
            sender, params = parse_mail(arg)
        except PathError as e:
            self.reply(e.reply.code, e.reply.text, e.reply.enhanced)
            return
        if params and not self.esmtp:
            self.reply(555, "MAIL parameters need EHLO", "5.5.4")
            return
        smtputf8 = False
        body = None
        size = None
        for key, value in params.items():
            if key == "SIZE":
                if value is None or not _DIGITS.fullmatch(value) or len(value) > 20:
                    self.reply(501, "SIZE takes a number of octets", "5.5.4")
                    return
                size = int(value)
            elif key == "BODY":
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    self.reply(555, "BODY is 7BIT or 8BITMIME", "5.5.4")
                    return
                body = value.upper()
            elif key == "SMTPUTF8":
                if value is not None:
                    self.reply(501, "SMTPUTF8 takes no value", "5.5.4")
                    return
                smtputf8 = True
            elif key == "AUTH":
                pass  # RFC 4954 §5: the submitter; trusted from nobody here, and ignored
            else:
                self.reply(555, f"MAIL parameter {key} not recognized", "5.5.4")
                return
        if not smtputf8 and not sender.isascii():
            self.reply(553, "Non-ASCII addresses need SMTPUTF8", "5.6.7")
            return
        if not _is_utf8(sender):
            self.reply(553, "The sender's address is not UTF-8", "5.1.7")
            return
        if size is not None and factory.max_size and size > factory.max_size:
            self.reply(552, "Message size exceeds fixed maximum message size", "5.3.4")
            return
        self._reset_transaction()  # what a BDAT refused before any MAIL left behind
        self.sender = sender
        self.smtputf8 = smtputf8
        self.body = body
        self.mail_options = [k if v is None else f"{k}={v}" for k, v in params.items()]
        self.reply(250, f"Sender <{sender}> OK", "2.1.0")

    def smtp_RCPT(self, arg: str) -> None:
        if not self._greeted():
            return
        if self.sender is None:
            self.reply(503, "Need MAIL command first", "5.5.1")
            return
        if self._bdat_started:
            self.reply(503, "RCPT after BDAT", "5.5.1")
            return
        try:
            recipient, params = parse_rcpt(arg)
        except PathError as e:
            self.reply(e.reply.code, e.reply.text, e.reply.enhanced)
            return
        if params:
            self.reply(555, f"RCPT parameter {next(iter(params))} not recognized", "5.5.4")
            return
        if not self.smtputf8 and not recipient.isascii():
            self.reply(553, "Non-ASCII addresses need SMTPUTF8", "5.6.7")
            return
        if not _is_utf8(recipient):
            self.reply(553, "The recipient's address is not UTF-8", "5.1.3")
            return
        if len(self.recipients) >= self.factory.max_recipients:
            self.reply(452, "Too many recipients", "4.5.3")
            return
        self.recipients.append(recipient)
        self.rcpt_options.append([])
        self.reply(250, f"Recipient <{recipient}> OK", "2.1.5")

    def _ready_for_body(self) -> Reply | None:
        if self.helo is None:
            return Reply(503, "Send HELO or EHLO first", "5.5.1")
        if self.sender is None:
            return Reply(503, "Need MAIL command first", "5.5.1")
        if not self.recipients:
            return Reply(554, "No valid recipients", "5.5.1")
        return None

    def smtp_DATA(self, arg: str) -> None:
        if arg:
            self.reply(501, "Syntax: DATA (no parameters)", "5.5.4")
            return
        refused = self._ready_for_body()
        if refused is None and self._bdat_started:
            refused = Reply(503, "DATA after BDAT: one or the other", "5.5.1")
        if refused is not None:
            self.reply(refused.code, refused.text, refused.enhanced)
            return
        factory = self.factory
        self._reader = DataReader(factory.max_size or None, factory.max_line_length,
                                  factory.bare_line_ends)
        self.mode = "data"
        self.transport.write(_GO_AHEAD)

    def _take_data(self) -> None:
        reader = self._reader
        assert reader is not None
        rest = reader.feed(self._buffer)
        if rest is None:
            self._buffer = b""
            return
        self._buffer = rest
        self._reader = None
        self.mode = "command"
        if reader.bad is not None:
            self._refuse_body(reader.bad)
            return
        self._deliver(reader.content())

    def _refuse_body(self, bad: str) -> None:
        self._reset_transaction()
        if bad == "size":
            self.reply(552, "Message size exceeds fixed maximum message size", "5.3.4")
        elif bad == "line":
            self.reply(500, f"Line too long (the limit is {self.factory.max_line_length} "
                       "octets, RFC 5321 4.5.3.1.6)", "5.5.2")
        else:
            name = "LF" if bad == "LF" else "CR"
            log.info("%s:%d sent a bare %s in a message (SMTP smuggling?); refused",
                     *self.peer, name)
            self._send(Reply(554, f"Message refused: a bare <{name}> in it (lines end with "
                                  "<CR><LF> only)", "5.6.0"))

    def smtp_BDAT(self, arg: str) -> None:
        parts = arg.split()
        if not parts or not _DIGITS.fullmatch(parts[0]) or len(parts[0]) > 18:
            # no chunk size to go by: the chunk's octets would be read as commands
            # (RFC 3030 gives no way back into step), so the session ends here
            self.reply(501, "Syntax: BDAT <size> [LAST]; closing the connection", "5.5.4")
            self._close()
            return
        size = int(parts[0])
        self._bdat_left = size
        bad_syntax = len(parts) > 2 or (len(parts) == 2 and parts[1].upper() != "LAST")
        self._bdat_last = len(parts) == 2 and not bad_syntax
        refused = self._ready_for_body()
        if bad_syntax:
            # the size is known: the chunk is read and dropped, then refused
            refused = Reply(501, "Syntax: BDAT <size> [LAST]", "5.5.4")
        if refused is None and not self.esmtp:
            refused = Reply(503, "BDAT needs EHLO", "5.5.1")
        if refused is not None and self._bdat_failed is None:
            self._bdat_failed = refused
        self._bdat_started = True
        self.mode = "bdat"
        if size == 0:
            self._end_chunk()

    def _take_chunk(self) -> None:
        buffer = self._buffer
        take = min(self._bdat_left, len(buffer))
        piece = buffer[:take]
        self._buffer = buffer[take:]
        self._bdat_left -= take
        if self._bdat_failed is None:
            max_size = self.factory.max_size
            self._chunk_size += take
            if max_size and self._chunk_size > max_size:
                self._chunks = []
                self._bdat_failed = Reply(552, "Message size exceeds fixed maximum message size",
                                          "5.3.4")
            else:
                self._chunks.append(piece)
        if self._bdat_left == 0:
            self._end_chunk()

    def _end_chunk(self) -> None:
        self.mode = "command"
        failed = self._bdat_failed
        if not self._bdat_last:
            if failed is not None:
                self.reply(failed.code, failed.text, failed.enhanced)
            else:
                self.reply(250, f"{self._chunk_size} octets received", "2.0.0")
            return
        if failed is not None:
            self._reset_transaction()  # the transaction ends with its LAST chunk, refused
            self.reply(failed.code, failed.text, failed.enhanced)
            return
        content = b"".join(self._chunks)
        self._chunks = []
        bare = check_bare(content)
        if bare is not None:
            if self.factory.bare_line_ends == "normalize":
                content = normalize_line_ends(content)
            else:
                self._refuse_body(bare)
                return
        self._deliver(content)

    def smtp_RSET(self, arg: str) -> None:
        if arg:
            self.reply(501, "Syntax: RSET (no parameters)", "5.5.4")
            return
        self._reset_transaction()
        self.reply(250, "OK", "2.0.0")

    def smtp_NOOP(self, arg: str) -> None:
        self.reply(250, "OK", "2.0.0")

    def smtp_VRFY(self, arg: str) -> None:
        if not arg:
            self.reply(501, "Syntax: VRFY <address>", "5.5.4")
            return
        # RFC 5321 §3.5.3: 252 when the server will not say whether an address exists
        self.reply(252, "Cannot VRFY user, but will accept message and attempt delivery",
                   "2.0.0")

    def smtp_HELP(self, arg: str) -> None:
        if arg:
            usage = _HELP.get(arg.upper())
            if usage is None:
                self.reply(504, f"HELP: no such command {arg[:20]!r}", "5.5.4")
            else:
                self.reply(214, usage, "2.0.0")
            return
        self.reply(214, "Commands:\n" + " ".join(_HELP) + "\nSee RFC 5321.", "2.0.0")

    def smtp_QUIT(self, arg: str) -> None:
        self._send(Reply(221, f"{self.factory.hostname} Bye", "2.0.0"))
        self._close()

    def smtp_STARTTLS(self, arg: str) -> None:
        factory = self.factory
        if factory.tls is None:
            self.reply(502, "STARTTLS not available", "5.5.1")
            return
        if arg:
            self.reply(501, "Syntax error (no parameters allowed)", "5.5.4")
            return
        if self.tls_active:
            self.reply(503, "TLS already active", "5.5.1")
            return
        self._send(Reply(220, "Ready to start TLS", "2.0.0"))
        # RFC 3207 §4.2: forget all the client said in clear; anything it sent after
        # STARTTLS before the handshake is dropped (the command injection attack)
        self._drop_input()
        self.tls_active = True
        self.helo = None
        self.esmtp = False
        self.user = None
        self._reset_transaction()
        d = self.transport.start_tls(factory.tls)
        d.add_errback(self._tls_failed)

    def _tls_failed(self, failure: Failure) -> None:
        log.info("%s:%d: the TLS handshake failed: %s", *self.peer, failure.value)

    # ---- AUTH (RFC 4954)

    def smtp_AUTH(self, arg: str) -> None:
        factory = self.factory
        if factory.auth is None:
            self.reply(502, "AUTH not available", "5.5.1")
            return
        if not self.tls_active and not factory.allow_insecure_auth:
            self.reply(538, "Encryption required for requested authentication mechanism",
                       "5.7.11")
            return
        if not self.esmtp:
            self.reply(503, "Send EHLO first", "5.5.1")
            return
        if self.user is not None:
            self.reply(503, "Already authenticated", "5.5.1")
            return
        if self.sender is not None:
            self.reply(503, "AUTH not allowed during a mail transaction", "5.5.1")
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        initial = initial.strip(" ")
        if mechanism not in ("PLAIN", "LOGIN"):
            self.reply(504, "Unrecognized authentication type", "5.5.4")
            return
        self._auth = _AuthExchange(mechanism)
        self.mode = "auth"
        if initial:
            self._auth_line(initial)
        elif mechanism == "PLAIN":
            self._send(Reply(334, ""))
        else:
            self._send(Reply(334, "VXNlcm5hbWU6"))  # "Username:"

    def _auth_line(self, line: str) -> None:
        exchange = self._auth
        assert exchange is not None
        if line == "*":
            self._end_auth()
            self.reply(501, "Authentication cancelled", "5.0.0")
            return
        try:
            decoded = base64.b64decode(line.encode("ascii"), validate=True) if line != "=" else b""
            text = decoded.decode("utf-8")
        except (binascii.Error, UnicodeError, ValueError):
            self._end_auth()
            self.reply(501, "Cannot decode the response (base64 of UTF-8)", "5.5.2")
            return
        if exchange.mechanism == "PLAIN":
            parts = text.split("\x00")
            if len(parts) != 3 or not parts[1]:
                self._end_auth()
                self.reply(501, "PLAIN takes authzid NUL authcid NUL password", "5.5.2")
                return
            authzid, user, password = parts
            if authzid and authzid != user:
                self._end_auth()
                self.reply(535, "Authentication credentials invalid", "5.7.8")
                return
            self._check(user, password)
        elif exchange.user is None:
            exchange.user = text
            self._send(Reply(334, "UGFzc3dvcmQ6"))  # "Password:"
        else:
            self._check(exchange.user, text)

    def _end_auth(self) -> None:
        self._auth = None
        if self.mode == "auth":
            self.mode = "command"

    def _check(self, user: str, password: str) -> None:
        self._end_auth()
        self.busy = True
        d = self.factory.check_password(user, password)
        d.add_callbacks(self._checked, self._check_failed, callback_args=(user,))

    def _checked(self, ok: bool, user: str) -> None:
        self.busy = False
        if self.mode == "closed":
            return
        if ok:
            self.user = user
            log.info("%s:%d authenticated as %r", *self.peer, user)
            self.reply(235, "Authentication successful", "2.7.0")
        else:
            log.info("%s:%d failed to authenticate as %r", *self.peer, user)
            self.reply(535, "Authentication credentials invalid", "5.7.8")
        self._process()

    def _check_failed(self, failure: Failure) -> None:
        log.error("the auth checker failed: %s", failure.get_traceback())
        self.busy = False
        if self.mode == "closed":
            return
        self.reply(454, "Temporary authentication failure", "4.7.0")
        self._process()

    # ---- delivery

    def _deliver(self, content: bytes) -> None:
        factory = self.factory
        now = time.time()
        # the transaction's lists are handed over, not copied: _reset_transaction makes
        # new ones for the session
        envelope = Envelope(
            peer=self.peer,
            helo=self.helo or "",
            sender=self.sender or "",
            recipients=self.recipients,
            content=content,
            mail_options=self.mail_options,
            rcpt_options=self.rcpt_options,
            smtputf8=self.smtputf8,
            body=self.body,
            tls=self.tls_active,
            user=self.user,
            id=_new_id(now),
            received_at=now,
        )
        envelope.data = (self._received(envelope) + content) if factory.add_received else content
        self._reset_transaction()
        self.busy = True
        if factory.maildir is not None:
            box = factory.maildir
            stored = _return_path(envelope) + envelope.data
            run = getattr(factory.reactor, "defer_to_thread", None)
            d: Deferred[Any] = run(box.deliver, stored) if run else maybe_deferred(
                box.deliver, stored)
        else:
            deliver = factory.deliver
            assert deliver is not None
            try:
                result = deliver(envelope)
            except BaseException:
                d = fail(Failure())
            else:
                if result is None:
                    # answered at once: no Deferred to make and fire
                    self._delivered(None, envelope)
                    return
                d = maybe_deferred(lambda: result)
        if factory.delivery_timeout:
            # A delivery that never ends would hold the session (and its client) for
            # good: cancelled at the bound, the client hears 451 and tries again later
            timer = factory.clock.call_later(factory.delivery_timeout, d.cancel)

            def stop_timer(result: Any) -> Any:
                if timer.active():
                    timer.cancel()
                return result

            d.add_both(stop_timer)
        d.add_callbacks(self._delivered, self._delivery_failed, callback_args=(envelope,),
                        errback_args=(envelope,))

    def _delivered(self, result: Any, envelope: Envelope) -> None:
        self.busy = False
        self.factory.delivered += 1
        if log.isEnabledFor(logging.INFO):
            log.info("%s:%d delivered %s from <%s> to %d recipient(s), %d octets", *self.peer,
                     envelope.id, envelope.sender, len(envelope.recipients), len(envelope.data))
        if self.mode != "closed":
            self.reply(250, f"OK: queued as {envelope.id}", "2.0.0")
            self._process()

    def _delivery_failed(self, failure: Failure, envelope: Envelope) -> None:
        self.busy = False
        self.factory.failed += 1
        error = failure.value
        if isinstance(error, SMTPError) and error.reply is not None and error.code >= 400:
            log.info("%s:%d: delivery of %s refused: %s", *self.peer, envelope.id, error)
            reply = error.reply
        elif failure.check(CancelledError):
            log.warning("%s:%d: delivery of %s took over %ss; cancelled, the client told 451",
                        *self.peer, envelope.id, self.factory.delivery_timeout)
            reply = Reply(451, "Delivery took too long; try again later", "4.4.5")
        else:
            log.error("%s:%d: delivery of %s failed:\n%s", *self.peer, envelope.id,
                      failure.get_traceback())
            reply = Reply(451, "Requested action aborted: local error in processing", "4.3.0")
        if self.mode != "closed":
            self._send(reply)
            self._process()

    def _received(self, envelope: Envelope) -> bytes:
        """The Received: trace line (RFC 5321 §4.4, with-protocols of RFC 3848 and 6531)."""
        # the Received line's syntax wants a domain or an address literal there (what
        # HELO should have said); anything else is "unknown", not copied into the header.
        # Worked out once per session and HELO, not once per message
        key = (envelope.peer, envelope.helo, envelope.smtputf8, self.factory.hostname)
        made = self._trace_from
        if made is None or made[0] != key:
            host = envelope.peer[0].removeprefix("::ffff:")
            literal = f"[IPv6:{host}]" if ":" in host else f"[{host}]"
            helo = envelope.helo
            if not is_domain(helo) or not (helo.isascii() or envelope.smtputf8):
                helo = "unknown"
            made = self._trace_from = (key, f"Received: from {helo} ({literal})\r\n\tby "
                                             f"{self.factory.hostname}")
        protocol = "ESMTP" if self.esmtp else "SMTP"
        if envelope.smtputf8:
            protocol = "UTF8SMTP"
        if self.esmtp:
            protocol += ("S" if envelope.tls else "") + ("A" if envelope.user else "")
        when = _received_date(envelope.received_at)
        line = f"{made[1]} with {protocol} id {envelope.id}"
        if len(envelope.recipients) == 1:
            line += f"\r\n\tfor <{envelope.recipients[0]}>"
        line += f"; {when}\r\n"
        return line.encode("utf-8", "surrogateescape")


def _is_utf8(address: str) -> bool:
    """Whether an address read with surrogateescape was UTF-8 (RFC 6531 addresses are):
    octets that were not are lone surrogates now."""
    if address.isascii():
        return True
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _return_path(envelope: Envelope) -> bytes:
    return f"Return-Path: <{envelope.sender}>\r\n".encode("utf-8", "surrogateescape")


#: the second of the last id made, and its id's start (the second and this process's id)
_id_start: tuple[int, str] = (-1, "")


def _new_id(now: float) -> str:
    """A message id: the second, the process id (a forked child's ids differ from its
    parent's, which shares the counter), and a counter; the start made once a second."""
    global _id_start
    second = int(now)
    if _id_start[0] != second:
        _id_start = (second, f"{second:X}{os.getpid() & 0xFFFF:04X}")
    return f"{_id_start[1]}{next(_ids):06X}"


def _forget_id_start() -> None:
    global _id_start
    _id_start = (-1, "")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_id_start)


#: the second of the last Received date made, and its text (RFC 5322 date-time, local)
_date_made: tuple[int, str] = (-1, "")


def _received_date(now: float) -> str:
    """The Received line's date for ``now``, made once a second."""
    global _date_made
    second = int(now)
    if _date_made[0] != second:
        _date_made = (second, email.utils.formatdate(second, localtime=True))
    return _date_made[1]


def serve(
    port: int = 0,
    interface: str = "127.0.0.1",
    deliver: Any = None,
    hostname: str | None = None,
    auth: Any = None,
    tls: Any = None,
    require_tls: bool = False,
    max_size: int | None = DEFAULT_MAX_SIZE,
    *,
    implicit_tls: bool = False,
    require_auth: bool = False,
    allow_insecure_auth: bool = False,
    max_recipients: int = 100,
    max_line_length: int | None = 1000,
    bare_line_ends: str = "refuse",
    max_bad_commands: int = 10,
    greeting_delay: float = 0.0,
    idle_timeout: float = 300.0,
    max_connections: int = 512,
    add_received: bool = True,
    banner: str = "ESMTP netshell",
    delivery_timeout: float = 600.0,
    backlog: int = 1024,
) -> Listener:
    """Serve SMTP on ``interface:port``, handing each message to ``deliver``; the Listener.

    ``deliver`` is a Maildir folder (a path: made if missing; each message is stored with
    ``Return-Path:`` and ``Received:`` lines on top) or a callable taking an
    :class:`Envelope` and returning anything or a Deferred; the client hears 250 only once
    it returned (fired). One that raises (fails) gives ``451 4.3.0`` (an
    :class:`~protocols.mail.smtp.core.SMTPError` gives its own reply). ``hostname`` names
    the server in its greeting and Received lines (default: this host's name).

    ``auth`` turns on AUTH PLAIN and LOGIN: a dict of user -> password, or a callable
    ``(user, password)`` answering a bool or a Deferred of one. It is offered only under TLS
    unless ``allow_insecure_auth``; ``require_auth`` refuses MAIL before AUTH (530).
    ``tls`` (a :func:`netshell.tls.server_context`) offers STARTTLS; ``require_tls``
    refuses mail before it (530 5.7.0); ``implicit_tls`` speaks TLS from the first byte
    (port 465's way, RFC 8314).

    Limits: ``max_size`` octets a message (None: none; 552 5.3.4), ``max_recipients`` a
    message (452 4.5.3), ``max_line_length`` octets a message line with its CRLF (None:
    none; 500 5.5.2), ``max_bad_commands`` (0: none; then 421 and closed), ``idle_timeout``
    seconds between commands (0: none), ``delivery_timeout`` seconds a delivery may take
    (then it is cancelled and the client told 451 4.4.5; 0: none; RFC 5321 §4.5.3.2.6
    gives a client 10 minutes for the reply), ``max_connections`` sessions at once (0: none;
    beyond, 421 4.3.2 and closed), ``greeting_delay`` seconds before the greeting
    (a client speaking before it is an early talker: 554 and closed). ``bare_line_ends``:
    ``"refuse"`` a message with a bare CR or LF (554 5.6.0), or ``"normalize"`` them to
    CRLF; neither ever ends a message (SMTP smuggling). Raises ValueError or TypeError for
    settings that do not fit, OSError when the port is taken.

    >>> from protocols.mail import smtp
    >>> listener = smtp.serve(deliver=lambda envelope: None, hostname="mx.test")
    >>> listener.factory.hostname, listener.factory.max_size
    ('mx.test', 33554432)
    >>> _ = listener.close()
    >>> smtp.serve("/tmp/mail")
    Traceback (most recent call last):
    ...
    TypeError: serve() needs deliver=: a Maildir path or a callable(envelope)
    """
    if deliver is None:
        raise TypeError("serve() needs deliver=: a Maildir path or a callable(envelope)")
    if not isinstance(port, int):
        raise TypeError(f"serve()'s first argument is the port, not {port!r} (the Maildir or "
                        "the callable goes in deliver=)")
    reactor = get_reactor()
    factory = SMTPServerFactory(
        deliver,
        hostname=hostname,
        auth=auth,
        tls=tls,
        require_tls=require_tls,
        implicit_tls=implicit_tls,
        require_auth=require_auth,
        allow_insecure_auth=allow_insecure_auth,
        max_size=max_size,
        max_recipients=max_recipients,
        max_line_length=max_line_length,
        bare_line_ends=bare_line_ends,
        max_bad_commands=max_bad_commands,
        greeting_delay=greeting_delay,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        add_received=add_received,
        banner=banner,
        delivery_timeout=delivery_timeout,
        reactor=reactor,
    )
    if implicit_tls:
        return reactor.listen_tls(port, factory, tls, interface=interface, backlog=backlog)
    return reactor.listen_tcp(port, factory, interface=interface, backlog=backlog)
