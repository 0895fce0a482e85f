"""The SMTP client: :func:`send` hands one message to a server and says, per recipient, how it went.

``await smtp.send(message, "mx.example.org")`` takes an :class:`email.message.EmailMessage`
(sender and recipients from its headers when not given; ``Bcc`` stripped from what is sent)
or bytes (``sender=`` and ``recipients=`` then needed), and fires with a
:class:`SendResult`: each recipient's RCPT reply, those refused apart, and the server's
final reply. Some recipients refused is a result; all refused is an
:class:`SMTPRecipientsRefused`.

- TLS: ``tls="starttls"`` (the default) needs the server to offer STARTTLS;
  ``"implicit"`` speaks TLS from the first byte (port 465); None sends in clear. The
  certificate is verified for ``host`` (the system's trust store, or ``ca=``;
  ``context=`` gives a :func:`netshell.tls.client_context` of your own; ``verify=False``
  turns checking off).
- ``auth=(user, password)``: AUTH PLAIN, or LOGIN when PLAIN is not offered.
- PIPELINING when offered (MAIL, every RCPT and DATA in one write, RFC 2920); SIZE= when
  offered (a message over the server's limit is refused before sending); BODY=8BITMIME
  for 8-bit data and SMTPUTF8 for non-ASCII addresses or headers, when needed: a server
  that does not offer what the message needs gives :class:`SMTPNotSupported` before
  anything is sent.
- Errors: :class:`~protocols.mail.smtp.core.SMTPTemporaryError` (4xx),
  :class:`~protocols.mail.smtp.core.SMTPPermanentError` (5xx), each with ``code``,
  ``enhanced`` and ``text``; :class:`SMTPProtocolError`, :class:`SMTPConnectionClosed`,
  :class:`SMTPTimeoutError`, :class:`SMTPNotSupported`, all
  :class:`~protocols.mail.smtp.core.SMTPError`. Every wait is bounded by ``timeout``.
"""

from __future__ import annotations

import base64
import copy
import email.message
import email.policy
import email.utils
import io
import logging
import re
import socket
from collections import deque
from collections.abc import Awaitable, Iterable
from email.generator import BytesGenerator
from typing import Any, TypeVar

import netshell as ns
from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from netshell.reactor import get_reactor
from protocols.mail.smtp.core import (
    Reply,
    ReplyReader,
    SMTPError,
    SMTPProtocolError,
    dot_stuff,
    error_for,
    is_domain,
    normalize_line_ends,
)

__all__ = [
    "SMTPConnectionClosed",
    "SMTPNotSupported",
    "SMTPRecipientsRefused",
    "SMTPTimeoutError",
    "SendResult",
    "send",
]

log = logging.getLogger("netshell.smtp.client")

T = TypeVar("T")


class SMTPConnectionClosed(SMTPError, ns.ConnectionClosed):
    """The connection ended before the exchange did; ``reply`` is the server's last word
    if it said one (a 421)."""


class SMTPTimeoutError(SMTPError, ns.TimeoutError):
    """No reply (or no TLS handshake) within the timeout."""


class SMTPNotSupported(SMTPError):
    """The server does not offer what this message or these settings need (STARTTLS, AUTH,
    8BITMIME, SMTPUTF8), or its SIZE limit is smaller than the message. Nothing was sent."""


class SMTPRecipientsRefused(SMTPError):
    """Every recipient was refused: ``refused`` maps each to its reply. ``code`` is the
    first one's."""

    def __init__(self, refused: dict[str, Reply]) -> None:
        self.refused = refused
        first = next(iter(refused.values()), None)
        said = "; ".join(f"<{r}>: {reply}" for r, reply in refused.items())
        super().__init__(first, f"all recipients refused: {said}")


class SendResult(dict[str, Reply]):
    """What :func:`send` did: a dict of each recipient to its RCPT reply.

    ``accepted`` lists the recipients the server took, ``refused`` maps the others to their
    replies, ``reply`` is the server's answer to the message (``250 2.0.0 OK: queued as
    ...``), ``features`` the EHLO keywords the server offered, ``tls`` whether TLS was on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reply: Reply | None = None
        self.features: dict[str, str] = {}
        self.tls = False

    @property
    def accepted(self) -> list[str]:
        return [r for r, reply in self.items() if reply.code < 400]

    @property
    def refused(self) -> dict[str, Reply]:
        return {r: reply for r, reply in self.items() if reply.code >= 400}

    def __repr__(self) -> str:
        return (f"<SendResult {len(self.accepted)} accepted, {len(self.refused)} refused: "
                f"{self.reply}>")


class _Client(ns.Protocol):
    """The connection's protocol: replies in, handed out in order."""

    display_name = "smtp client"

    def __init__(self) -> None:
        self.reader = ReplyReader()
        self.ready: deque[Reply] = deque()
        self.waiters: deque[Deferred[Reply]] = deque()
        self.closed = False
        self.why: str | None = None
        self.last: Reply | None = None
        self.broken: SMTPProtocolError | None = None

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.reader.feed(data)
        except SMTPProtocolError as e:
            log.warning("%s broke SMTP: %s; closing", self.transport.peer, e)
            self.why = f"the server broke SMTP ({e})"
            self.broken = e
            self.transport.abort()
            return
        for reply in replies:
            log.debug("%s <- %s", self.transport.peer, reply)
            self.last = reply
            if self.waiters:
                self.waiters.popleft().callback(reply)
            else:
                self.ready.append(reply)

    def next_reply(self) -> Deferred[Reply]:
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

    def error(self) -> SMTPError:
        if self.broken is not None:
            return SMTPProtocolError(None, f"{self.transport.peer} broke SMTP: {self.broken}")
        last = self.last if self.last is not None and self.last.code == 421 else None
        said = f": {last}" if last is not None else ""
        return SMTPConnectionClosed(
            last, f"the SMTP connection closed ({self.why or 'by the server'}){said}")

    def connection_lost(self, reason: Failure) -> None:
        self.closed = True
        if self.why is None and not reason.check(ns.ConnectionDone):
            self.why = f"lost: {reason.value}"
        waiters, self.waiters = self.waiters, deque()
        for w in waiters:
            w.errback(self.error())


class _Session:
    """One exchange with a server, step by step (used by :func:`send`)."""

    def __init__(self, conn: _Client, host: str, timeout: float | None) -> None:
        self.conn = conn
        self.host = host
        self.timeout = timeout
        self.features: dict[str, str] = {}

    async def bounded(self, d: Awaitable[T], what: str) -> T:
        waited = ensure_deferred(d)
        if self.timeout is not None and not waited.called:
            waited.add_timeout(self.timeout)
        try:
            return await waited
        except ns.TimeoutError:
            raise SMTPTimeoutError(
                None, f"{what} from {self.host} took over {self.timeout} seconds") from None

    def write(self, *lines: str) -> None:
        self.conn.transport.write(
            "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape"))

    async def reply(self, what: str) -> Reply:
        return await self.bounded(self.conn.next_reply(), f"the reply to {what}")

    async def command(self, line: str, ok: Iterable[int] = (250,), what: str = "") -> Reply:
        self.write(line)
        what = what or line.split(" ", 1)[0]
        reply = await self.reply(what)
        if reply.code not in tuple(ok):
            raise error_for(reply, f"{what} refused: {reply}")
        return reply

    async def ehlo(self, name: str) -> None:
        self.write(f"EHLO {name}")
        reply = await self.reply("EHLO")
        if reply.code == 250:
            features = {}
            for line in reply.lines[1:]:
                keyword, _, params = line.strip().partition(" ")
                features[keyword.upper()] = params
            self.features = features
            return
        if reply.code // 100 == 5:  # an old server: HELO, and no extensions
            await self.command(f"HELO {name}")
            self.features = {}
            return
        raise error_for(reply, f"EHLO refused: {reply}")

    async def login(self, user: str, password: str) -> None:
        offered = self.features.get("AUTH")
        if offered is None:
            raise SMTPNotSupported(None, f"{self.host} does not offer AUTH (not over this "
                                         "connection: some servers offer it only under TLS)")
        mechanisms = offered.upper().split()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            await self.command(f"AUTH PLAIN {token}", ok=(235,), what="AUTH PLAIN")
        elif "LOGIN" in mechanisms:
            await self.command("AUTH LOGIN", ok=(334,), what="AUTH LOGIN")
            await self.command(base64.b64encode(user.encode()).decode(), ok=(334,),
                               what="AUTH LOGIN (user name)")
            await self.command(base64.b64encode(password.encode()).decode(), ok=(235,),
                               what="AUTH LOGIN (password)")
        else:
            raise SMTPNotSupported(None, f"{self.host} offers AUTH {offered}: neither PLAIN "
                                         "nor LOGIN")


def _addresses(values: Iterable[str]) -> list[str]:
    return [addr for _, addr in email.utils.getaddresses(list(values)) if addr]


def _from_message(
    message: email.message.Message, sender: str | None, recipients: list[str] | None
) -> tuple[bytes, str, list[str]]:
    resent = message.get_all("Resent-Date")
    prefix = "Resent-" if resent else ""
    if sender is None:
        found = _addresses(message.get_all(prefix + "Sender", []))
        found = found or _addresses(message.get_all(prefix + "From", []))
        if not found:
            raise ValueError("no sender: the message has no From (or Sender) header; "
                             "give sender=")
        sender = found[0]
    if recipients is None:
        recipients = _addresses(
            value for name in ("To", "Cc", "Bcc") for value in message.get_all(prefix + name, [])
        )
    outgoing = copy.copy(message)
    del outgoing["Bcc"]
    del outgoing["Resent-Bcc"]
    international = not (sender.isascii() and all(r.isascii() for r in recipients))
    policy = message.policy
    if isinstance(policy, email.policy.EmailPolicy):
        policy = policy.clone(linesep="\r\n", utf8=international)
    else:
        policy = policy.clone(linesep="\r\n")
    out = io.BytesIO()
    BytesGenerator(out, policy=policy).flatten(outgoing, linesep="\r\n")
    return out.getvalue(), sender, recipients


def send(
    message: email.message.Message | bytes,
    host: str,
    port: int = 25,
    *,
    sender: str | None = None,
    recipients: str | Iterable[str] | None = None,
    tls: str | None = "starttls",
    auth: tuple[str, str] | None = None,
    timeout: float | None = 30,
    context: Any = None,
    ca: Any = None,
    verify: bool = True,
    local_hostname: str | None = None,
) -> Deferred[SendResult]:
    """Send ``message`` to the SMTP server at ``host:port``; fires with a :class:`SendResult`.

    ``message`` is an :class:`email.message.EmailMessage` (or ``Message``) or bytes (then
    ``sender`` and ``recipients`` are needed). ``sender`` and ``recipients`` given win over
    the headers (``""`` is the null sender). ``tls``: ``"starttls"`` (default; the server
    must offer it), ``"implicit"`` or None. ``auth`` is ``(user, password)``. ``timeout``
    bounds each wait (None: none; the TCP connection is still bounded at 30 s).
    ``local_hostname`` is the name said in EHLO (default: this host's name if it is a full
    domain name, else the address literal of this end of the connection).

    Fails with :class:`SMTPRecipientsRefused` when every recipient is refused,
    SMTPTemporaryError / SMTPPermanentError when the server refuses the session, the
    sender or the message, :class:`SMTPNotSupported` when it lacks what is needed,
    ValueError for a message without sender or recipients, ConnectError / TLSError.

    >>> from email.message import EmailMessage
    >>> msg = EmailMessage()
    >>> msg["From"], msg["To"], msg["Subject"] = "a@x.test", "b@y.test", "hi"
    >>> msg.set_content("hello")
    >>> d = send(msg, "127.0.0.1", 2525, tls=None)   # doctest: +SKIP
    >>> (await d).accepted                           # doctest: +SKIP
    ['b@y.test']
    """
    if tls not in ("starttls", "implicit", None):
        raise ValueError(f"tls is 'starttls', 'implicit' or None, not {tls!r}")
    if isinstance(recipients, str):
        recipients = [recipients]
    rcpts = list(recipients) if recipients is not None else None
    if isinstance(message, email.message.Message):
        data, sender, rcpts = _from_message(message, sender, rcpts)
    elif isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
        if sender is None or rcpts is None:
            raise ValueError("a message given as bytes needs sender= and recipients=")
    else:
        raise TypeError(f"message is an email.message.EmailMessage or bytes, not "
                        f"{type(message).__name__}")
    if not rcpts:
        raise ValueError("no recipients: give recipients= (or To/Cc/Bcc headers)")
    # What goes into a command line: a CR, LF or NUL in it would end the command and start
    # another (an address from a web form turning the client into a relay for anything).
    for what, value in (("sender", sender), ("local_hostname", local_hostname or ""),
                        *(("recipient", r) for r in rcpts)):
        _check_line_safe(what, value)
    return ensure_deferred(_send(data, host, port, sender, rcpts, tls, auth, timeout, context,
                                 ca, verify, local_hostname))


def _check_line_safe(what: str, value: Any) -> None:
    """Refuse a value that would end the command it goes in (ValueError)."""
    if not isinstance(value, str):
        raise TypeError(f"the {what} is a str, not {type(value).__name__}")
    bad = next((c for c in value if c in "\r\n\x00"), None)
    if bad is not None:
        raise ValueError(f"the {what} {value!r} holds {bad!r}: refused, it would end the "
                         "SMTP command and start another")


async def _send(
    data: bytes,
    host: str,
    port: int,
    sender: str,
    recipients: list[str],
    tls: str | None,
    auth: tuple[str, str] | None,
    timeout: float | None,
    context: Any,
    ca: Any,
    verify: bool,
    local_hostname: str | None,
) -> SendResult:
    reactor = get_reactor()
    if tls is not None and context is None:
        from netshell.tls import client_context  # pyOpenSSL only for those who use TLS

        context = client_context(host, ca=ca, verify=verify)
    factory = ns.ClientFactory.for_protocol(_Client)
    wait = timeout if timeout is not None else 30
    if tls == "implicit":
        conn = await reactor.connect_tls(host, port, factory, context, timeout=wait)
    else:
        conn = await reactor.connect_tcp(host, port, factory, timeout=wait)
    assert isinstance(conn, _Client)
    session = _Session(conn, host, timeout)
    name = local_hostname or _ehlo_name(conn.transport.host.host)
    result = SendResult()
    try:
        greeting = await session.reply("the connection (greeting)")
        if greeting.code != 220:
            raise error_for(greeting, f"{host} refused the session: {greeting}")
        await session.ehlo(name)
        if tls == "starttls":
            if "STARTTLS" not in session.features:
                raise SMTPNotSupported(None, f"{host} does not offer STARTTLS (pass tls=None "
                                             "to send in clear)")
            await session.command("STARTTLS", ok=(220,))
            if conn.ready or conn.reader.pending():
                # bytes after the 220, sent in clear, would be read as if they came under
                # TLS: a man in the middle injecting replies (the reverse of RFC 3207's
                # command injection); refused rather than dropped
                raise SMTPProtocolError(None, f"{host} sent more after its STARTTLS reply, in "
                                              "clear: refused (a response injection?)")
            await session.bounded(conn.transport.start_tls(context), "the TLS handshake")
            await session.ehlo(name)
        result.tls = tls is not None
        if auth is not None:
            await session.login(*auth)
        result.features = session.features
        await _transaction(session, data, sender, recipients, result)
        try:
            session.write("QUIT")
            await session.reply("QUIT")
        except SMTPError:
            pass
    except SMTPError as e:
        # refused in step (a 4xx/5xx reply, something not offered): say goodbye properly
        # (RFC 5321 4.1.1.10) without waiting; not after a broken exchange or a timeout
        if not conn.closed and not isinstance(
            e, SMTPProtocolError | SMTPTimeoutError | SMTPConnectionClosed
        ):
            session.write("QUIT")
        raise
    finally:
        conn.transport.close()
    return result


def _ehlo_name(local_address: str) -> str:
    """What EHLO says: this host's name when it is a full domain name, else the address
    literal of the connection's own end (RFC 5321 4.1.4: a host with no usable name gives
    its address), ``[127.0.0.1]`` or ``[IPv6:::1]``."""
    name = socket.gethostname()
    if "." in name and is_domain(name):
        return name
    address = local_address.removeprefix("::ffff:")
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


async def _transaction(
    session: _Session, data: bytes, sender: str, recipients: list[str], result: SendResult
) -> None:
    features = session.features
    host = session.host
    data = normalize_line_ends(data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    params: list[str] = []
    head = data.split(b"\r\n\r\n", 1)[0]
    needs_utf8 = not (sender.isascii() and all(r.isascii() for r in recipients)
                      and head.isascii())
    eight_bit = not data.isascii()
    if needs_utf8:
        if "SMTPUTF8" not in features:
            raise SMTPNotSupported(None, f"{host} does not offer SMTPUTF8, which non-ASCII "
                                         "addresses or headers need")
        params.append("SMTPUTF8")
    if eight_bit:
        if "8BITMIME" not in features:
            raise SMTPNotSupported(None, f"{host} does not offer 8BITMIME, which this 8-bit "
                                         "message needs (encode it as 7-bit: quoted-printable "
                                         "or base64)")
        params.append("BODY=8BITMIME")
    if "SIZE" in features:
        limit = features["SIZE"].strip()
        if re.fullmatch(r"[0-9]{1,20}", limit) and int(limit) and len(data) > int(limit):
            raise SMTPNotSupported(None, f"the message ({len(data):,} octets) is over "
                                         f"{host}'s limit ({int(limit):,} octets)")
        params.append(f"SIZE={len(data)}")
    mail = f"MAIL FROM:<{sender}>" + "".join(" " + p for p in params)
    rcpts = [f"RCPT TO:<{r}>" for r in recipients]
    if "PIPELINING" in features:
        session.write(mail, *rcpts, "DATA")
        mail_reply = await session.reply("MAIL")
        for r in recipients:
            result[r] = await session.reply(f"RCPT TO:<{r}>")
        data_reply = await session.reply("DATA")
        if mail_reply.code != 250:
            raise error_for(mail_reply, f"MAIL refused: {mail_reply}")
    else:
        mail_reply = await session.command(mail, what="MAIL")
        for r, line in zip(recipients, rcpts, strict=True):
            session.write(line)
            result[r] = await session.reply(f"RCPT TO:<{r}>")
        if not result.accepted:
            raise SMTPRecipientsRefused(result.refused)
        session.write("DATA")
        data_reply = await session.reply("DATA")
    if not result.accepted:
        if data_reply.code == 354:  # a server that took DATA anyway: an empty message ends it
            session.write(".")
            await session.reply("the end of the message")
        raise SMTPRecipientsRefused(result.refused)
    if data_reply.code != 354:
        raise error_for(data_reply, f"DATA refused: {data_reply}")
    session.conn.transport.write(dot_stuff(data))
    final = await session.reply("the message")
    result.reply = final
    if final.code != 250:
        raise error_for(final, f"the message was refused: {final}")
