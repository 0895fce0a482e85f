"""The IRC server: ``serve()`` listens, and a protocol per connection speaks IRC.

The rules are the "Modern IRC Client Protocol" document's, RFC 1459/2812's where it is
silent, and the IRCv3 specifications': numerics carry their parameters in the order written
there, the first always the client's nick (``*`` before it has one). The users, channels and
modes live in :class:`~protocols.irc.server_state.ServerState`, apart from the connections.

- Registration: PASS, NICK, USER, CAP (LS 302, REQ, ACK/NAK, LIST, END) holding it until
  CAP END, and SASL PLAIN (AUTHENTICATE, against ``accounts``); then 001-005, LUSERS
  (251-255, 265, 266) and the MOTD (375/372/376, or 422).
- Commands: PING/PONG, NICK, JOIN (keys, ``JOIN 0``), PART, QUIT, PRIVMSG/NOTICE/TAGMSG
  (several targets, ``@#chan``), TOPIC, NAMES, KICK, INVITE, MODE (channel ``b e I k l i m
  n s t o v``, user ``i w B``), WHO (and WHOX), WHOIS, WHOWAS, AWAY, ISON, USERHOST, LIST
  (ELIST U), MONITOR, SETNAME, LUSERS, MOTD, TIME, VERSION, ADMIN, INFO, LINKS, HELP, OPER,
  KILL.
- Capabilities: account-notify, account-tag, away-notify, batch, cap-notify, chghost,
  echo-message, extended-join, invite-notify, labeled-response, message-tags (with msgid),
  multi-prefix, sasl, server-time, setname, standard-replies, userhost-in-names, and sts
  on TLS listeners.
- Limits: a line over 512 bytes (or tags over 4094) is dropped and answered 417 (the
  connection lives on), bad UTF-8 is answered ``FAIL <command> INVALID_UTF8`` (UTF8ONLY;
  the connection lives on), no line sent is over 512 bytes (lists take several lines,
  relayed texts are cut to fit; lengths count bytes of UTF-8), a client idle for
  ``ping_interval`` is sent a PING and closed (``ERROR``) when it has not answered
  ``ping_timeout`` seconds later, and a client sending faster than its penalty budget is
  slowed down, then closed with ``ERROR :... (Excess Flood)`` when too much waits.

Logging (logger ``netshell.irc``): one INFO line per registration and per disconnection.

Example::

    >>> from protocols import irc
    >>> listener = irc.serve(name="irc.example", network="Example")
    >>> listener.factory.state.casemapping
    'rfc1459'
    >>> _ = listener.close()
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import itertools
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from netshell.failure import Failure
from netshell.listener import Listener
from netshell.protocol import Factory, Protocol
from netshell.reactor import get_reactor
from protocols.irc.core import (
    MAX_CLIENT_TAGS_BYTES,
    IRCParseError,
    LineReader,
    LineTooLong,
    Message,
    parse,
)
from protocols.irc.server_state import (
    CHANNEL_MODES,
    LIST_MODES,
    PARAM_MODES,
    PREFIX_MODES,
    SET_PARAM_MODES,
    Channel,
    ServerState,
    User,
    compile_mask,
    format_mode_changes,
    mask_matches,
    utf8_len,
)

__all__ = ["IRCServerFactory", "IRCServerProtocol", "serve"]

log = logging.getLogger("netshell.irc")

VERSION = "netshell-irc-0.1"

#: the capabilities offered, with their values in CAP LS 302
CAPABILITIES: dict[str, str | None] = {
    "account-notify": None,
    "account-tag": None,
    "away-notify": None,
    "batch": None,
    "cap-notify": None,
    "chghost": None,
    "echo-message": None,
    "extended-join": None,
    "invite-notify": None,
    "labeled-response": None,
    "message-tags": None,
    "multi-prefix": None,
    "sasl": "PLAIN",
    "server-time": None,
    "setname": None,
    "standard-replies": None,
    "userhost-in-names": None,
}

#: the commands a client may send before it is registered
_BEFORE_REGISTRATION = frozenset(
    {"CAP", "PASS", "NICK", "USER", "QUIT", "PING", "PONG", "AUTHENTICATE"})

#: RPL_MYINFO's channel modes, and those of them taking a parameter
_MODES_004 = "".join(sorted(CHANNEL_MODES, key=str.lower))
_PARAM_MODES_004 = "".join(sorted(LIST_MODES + PARAM_MODES + SET_PARAM_MODES + PREFIX_MODES,
                                  key=str.lower))

#: the WHOX fields, in the order RPL_WHOSPCRPL gives them
_WHOX_FIELDS = "tcuihsnfdlaor"

#: what a command costs in the flood budget (seconds of it), when not 1
_PENALTY = {"PONG": 0.0, "PING": 0.5, "CAP": 0.5}


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:max(limit, 0)].decode("utf-8", "ignore")


_NEVER = float("inf")


def _unwritable(text: str) -> bool:
    """Whether ``text`` holds what no line may (CR, LF, NUL)."""
    return "\r" in text or "\n" in text or "\0" in text


def _fit(data: bytes) -> bytes:
    """The line ``data`` (CRLF at its end) cut to 512 bytes with its CRLF, its tags aside,
    never inside a UTF-8 character: what no line sent may exceed (RFC 1459 2.3, Modern
    IRC). What is cut is the end of its last parameter; the callers cut texts to fit
    before they build a line, this is the rule's last guard."""
    start = data.index(b" ") + 1 if data[:1] == b"@" and b" " in data else 0
    if len(data) - start <= 512:
        return data
    cut = start + 510
    while cut > start and (data[cut] & 0xC0) == 0x80:  # a UTF-8 continuation byte
        cut -= 1
    return data[:cut] + b"\r\n"


def _room(*parts: str) -> int:
    """The bytes left in a line of 512 (CRLF included) after ``parts``."""
    return 510 - sum(utf8_len(p) for p in parts)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _now_tag() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# ---- the factory


class IRCServerFactory(Factory):
    """Makes an :class:`IRCServerProtocol` per connection; holds the settings and the
    :class:`ServerState` they share. The arguments are as for :func:`serve`."""

    display_name = "irc server"

    def __init__(
        self,
        name: str = "irc.local",
        network: str = "netshell",
        motd: str | Iterable[str] | None = None,
        password: str | None = None,
        opers: Mapping[str, str] | None = None,
        accounts: Mapping[str, str] | None = None,
        *,
        casemapping: str = "rfc1459",
        ping_interval: float = 120.0,
        ping_timeout: float = 60.0,
        registration_timeout: float = 60.0,
        flood_burst: float = 20.0,
        flood_rate: float = 2.0,
        flood_queue: int = 200,
        sendq: int = 1 << 20,
        max_connections: int = 10000,
        max_connections_per_ip: int = 64,
        sts_duration: float = 0,
        sts_port: int = 0,
        reactor: Any = None,
        clock: Any = None,
    ) -> None:
        self.name = name
        #: the STS duration (seconds) advertised on TLS connections (0: none)
        self.sts_duration = sts_duration
        #: the TLS port a plain connection is told to move to (STS upgrade policy; 0: none)
        self.sts_port = sts_port
        self.network = network
        if isinstance(motd, str):
            motd = motd.splitlines()
        self.motd: list[str] | None = list(motd) if motd is not None else None
        self.password = password
        self.opers = dict(opers or {})
        self.accounts = dict(accounts or {})
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        #: seconds a connection has to register before it is closed (0: forever)
        self.registration_timeout = registration_timeout
        #: connections served at most, overall and from one address (0: no limit)
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.per_ip: dict[str, int] = {}
        #: a client may be ``flood_burst`` commands ahead of ``flood_rate`` per second
        #: (0: no flood control)
        self.flood_burst = flood_burst
        self.flood_rate = flood_rate
        #: lines held for a flooding client before it is closed (Excess Flood)
        self.flood_queue = flood_queue
        #: bytes a client that does not read may owe before it is dropped (SendQ exceeded)
        self.sendq = sendq
        self.state = ServerState(casemapping)
        self.reactor = reactor if reactor is not None else get_reactor()
        #: what times PINGs and timeouts (the reactor; tests may give a Clock)
        self.clock = clock if clock is not None else self.reactor
        #: writes held for a whole turn of the loop (see hold): on the reactor only
        self._coalesce = clock is None and hasattr(self.reactor, "call_soon")
        self.created = datetime.now(UTC)
        #: the connections being served, registered or not
        self.connections: set[IRCServerProtocol] = set()
        #: nick (folded) -> the connections that MONITOR it
        self.monitors: dict[str, set[IRCServerProtocol]] = {}
        self._ids = itertools.count(1)
        #: the last message written, its bytes for each set of capabilities, and the
        #: server-time it was given (see IRCServerProtocol._write)
        self._encoded_msg: Message | None = None
        #: while a connection's input is acted on: what each connection is sent meanwhile,
        #: written as one piece at the end (a burst of replies, or many messages relayed to
        #: a channel's members, is one system call per member, not one per line)
        self._batch: dict[IRCServerProtocol, list[bytes]] | None = None
        self._encoded: dict[frozenset[str], bytes] = {}
        self._encoded_time = ""
        self._id_prefix = os.urandom(4).hex()
        self.isupport = self._isupport()
        #: the lines 002 to 005 and the MOTD as a client without capabilities gets them,
        #: split where its nick goes, and the settings they were made from
        self._welcome: tuple[list[bytes], list[bytes]] | None = None
        self._welcome_key: tuple[Any, ...] = ()
        #: PINGs and timeouts: one timer for all connections, every ``_sweep_period``
        #: seconds while there are connections, acts on those whose ``_due`` time came
        #: (a timer per connection cost more than a quarter of a registration)
        periods = [t for t in (ping_interval, ping_timeout, registration_timeout) if t > 0]
        self._sweep_period = min([1.0, *periods]) if periods else 0.0
        self._sweeper: Any = None

    def build_protocol(self, addr: Any) -> IRCServerProtocol:
        return IRCServerProtocol(self)

    def stop_factory(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and sweeper.active():
            sweeper.cancel()

    def watch(self) -> None:
        """A connection came: sweep for due PINGs and timeouts while there are any."""
        if self._sweeper is None and self._sweep_period:
            self._sweeper = self.clock.call_later(self._sweep_period, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.clock.seconds()
        for conn in [c for c in self.connections if c._due <= now]:
            if not conn._closed:
                conn._tick(now)
        if self.connections:
            self.watch()

    def hold(self) -> bool:
        """Hold what connections are sent from now on (unless held already), to be
        written by :meth:`flush`, one piece per connection. On the reactor the writes of
        every input of one turn of the loop are held together and written at the start
        of the next (a thousand clients joining at once: a member gets their JOINs in
        one write, not one each); with a test clock, and so in the tests' memory, each
        input's at its end. True: the caller flushes when its input is done."""
        if self._batch is not None:
            return False
        self._batch = {}
        if self._coalesce:
            self.reactor.call_soon(self.flush)
            return False
        return True

    def flush(self) -> None:
        """Write what each connection was sent while writes were held, one piece per
        connection, and stop holding."""
        batch, self._batch = self._batch, None
        for conn, parts in (batch or {}).items():
            if conn._closed:
                continue  # gone meanwhile (its own close writes what it was sent)
            conn.transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
            conn._check_sendq()

    def new_id(self) -> str:
        """A fresh id, for a msgid tag or a batch reference."""
        return f"{self._id_prefix}{next(self._ids):x}"

    def monitor_notify(self, nick: str, online: bool, source: str) -> None:
        """Tell the connections monitoring ``nick`` that it came (730) or went (731)."""
        watchers = self.monitors.get(self.state.fold(nick))
        if not watchers:
            return
        for conn in list(watchers):
            if online:
                conn.numeric("730", source)
            else:
                conn.numeric("731", nick)

    def welcome_parts(self) -> tuple[list[bytes], list[bytes]] | None:
        """The burst after 001 minus LUSERS, for a client with no capabilities: two lists
        of bytes, the lines 002 to 005 and the MOTD (or 422), each split where the
        client's nick goes (``nick.join(parts)`` is the lines). Made once and kept while
        the name, network, MOTD, ISUPPORT tokens and creation time stay as they are;
        None when a setting holds what a line cannot (CR, LF, NUL)."""
        motd = self.motd
        key = (self.name, self.network, self.created,
               None if motd is None else tuple(motd), tuple(self.isupport))
        if key != self._welcome_key:
            self._welcome_key = key
            self._welcome = self._make_welcome()
        return self._welcome

    def _make_welcome(self) -> tuple[list[bytes], list[bytes]] | None:
        mark = f"\0{os.urandom(8).hex()}\0"  # where the nick goes: no setting holds it
        name = self.name
        created = self.created.strftime("%a %b %d %Y at %H:%M:%S UTC")
        head = [
            ("002", [f"Your host is {name}, running version {VERSION}"]),
            ("003", [f"This server was created {created}"]),
            ("004", [name, VERSION, "Biow", _MODES_004, _PARAM_MODES_004]),
        ]
        tokens = self.isupport
        for i in range(0, len(tokens), 13):
            head.append(("005", [*tokens[i:i + 13], "are supported by this server"]))
        if self.motd is None:
            tail = [("422", ["MOTD File is missing"])]
        else:
            tail = [("375", [f"- {name} Message of the day - "])]
            tail += [("372", [f"- {line}"]) for line in self.motd]
            tail.append(("376", ["End of /MOTD command."]))
        parts = []
        for lines in (head, tail):
            text = "".join(numeric_text(name, code, mark, params) for code, params in lines)
            bare = text.replace("\r\n", "").replace(mark, "")
            if "\r" in bare or "\n" in bare or "\0" in bare:
                return None
            # each line must fit in 512 bytes with the longest nick: or the long way,
            # which cuts each line to fit
            room = 512 - self.state.nicklen + len(mark)
            if any(len(x.encode("utf-8", "surrogateescape")) + 2 > room
                   for x in text.split("\r\n")):
                return None
            parts.append([p.encode("utf-8", "surrogateescape") for p in text.split(mark)])
        return parts[0], parts[1]

    def _isupport(self) -> list[str]:
        tokens = self._isupport_tokens()
        for token in tokens:  # each one word: numeric() would make any other a '*'
            if not token or " " in token or token[0] == ":" or not token.isprintable():
                raise ValueError(f"ISUPPORT token not one word: {token!r}")
        return tokens

    def _isupport_tokens(self) -> list[str]:
        s = self.state
        return [
            f"AWAYLEN={s.awaylen}",
            "BOT=B",
            f"CASEMAPPING={s.casemapping}",
            f"CHANLIMIT=#:{s.max_channels}",
            "CHANMODES=beI,k,l,imnpst",
            f"CHANNELLEN={s.channellen}",
            "CHANTYPES=#",
            "ELIST=U",
            "EXCEPTS=e",
            "INVEX=I",
            f"KICKLEN={s.kicklen}",
            f"MAXLIST=beI:{s.max_list_entries}",
            "MONITOR=100",
            f"MODES={s.modes_per_command}",
            f"NETWORK={isupport_value(self.network)}",
            f"NICKLEN={s.nicklen}",
            "PREFIX=(ov)@+",
            "STATUSMSG=@+",
            "TARGMAX=JOIN:,KICK:4,NAMES:,NOTICE:4,PART:,PRIVMSG:4,WHOIS:1",
            f"TOPICLEN={s.topiclen}",
            "USERLEN=10",
            "UTF8ONLY",
            "WHOX",
        ]


def isupport_value(value: str) -> str:
    r"""``value`` as an ISUPPORT token's value: space, backslash and '=' as Modern IRC
    escapes them (``\x20``, ``\x5C``, ``\x3D``), and any other character that cannot be
    in a parameter (controls, DEL) the same way, so the token stays one word.

    >>> print(isupport_value("My Net=\\1"))
    My\x20Net\x3D\x5C1
    """
    return "".join(
        f"\\x{ord(c):02X}" if c in " =\\" or ord(c) < 0x20 or ord(c) == 0x7F else c
        for c in value)


#: a line's tags, source and command, its 14 middle parameters, and the rest
_FIFTEEN = re.compile(r"(?:@[^ ]+ +)?(?::[^ ]+ +)?[^ ]+(?: +[^ :][^ ]*){14} +(.*)")


def fold_params(text: str, params: list[str]) -> list[str]:
    """The parameters of a line of more than 15 read as RFC 2812 §2.3.1 reads them:
    after 14 middle parameters, the rest of the line is the last one (a 15th starting
    with ':' would have made 15)."""
    m = _FIFTEEN.fullmatch(text.rstrip("\r\n"))
    if m is None:  # cannot happen for a line parse read: keep what it read, in 15
        return [*params[:14], " ".join(params[14:])]
    return [*params[:14], m.group(1)]


def numeric_text(name: str, code: str, nick: str, params: Iterable[str]) -> str:
    """Numeric ``code`` as :meth:`IRCServerProtocol.numeric` sends it to a client without
    capabilities, as text with its CRLF (not checked for CR, LF or NUL)."""
    params = list(params)
    middle = [p if p and " " not in p and p[0] != ":" else "*" for p in params[:-1]]
    return _numeric_text(name, code, nick, middle, params[-1] if params else None) + "\r\n"


def _numeric_text(name: str, code: str, nick: str, middle: list[str],
                  last: str | None) -> str:
    if last is None:
        text = f":{name} {code} {nick}"
        if middle:
            text = f"{text} {' '.join(middle)}"
        return text
    colon = not last or " " in last or last[0] == ":"
    words = " ".join([nick, *middle])
    return f":{name} {code} {words} {':' if colon else ''}{last}"


def numeric_line(name: str, code: str, nick: str, middle: list[str],
                 last: str | None) -> bytes | None:
    """The bytes of numeric ``code`` from server ``name`` to ``nick`` with parameters
    ``middle`` (each one word, not starting with ':') and ``last``, exactly as
    ``Message(code, [nick, *middle, last], source=name).to_bytes()`` writes them; None
    when a parameter holds CR, LF or NUL (the Message refuses it)."""
    text = _numeric_text(name, code, nick, middle, last)
    if _unwritable(text):
        return None
    return (text + "\r\n").encode("utf-8", "surrogateescape")


# ---- one connection


class _DisplayName:
    """``display_name``: "irc server" on the class (what ``conns()`` shows today, as it
    reads the class), "irc server alice" on a connection whose client is alice."""

    def __get__(self, obj: Any, owner: Any = None) -> str:
        nick = obj.nick if obj is not None else None
        return f"irc server {nick}" if nick else "irc server"


class IRCServerProtocol(Protocol):
    """One client connection, server side. ``user`` is its :class:`User` once it has a
    nick; ``nick`` and ``display_name`` ("irc server alice") name it for tables."""

    display_name = _DisplayName()

    def __init__(self, factory: IRCServerFactory) -> None:
        self.factory = factory
        self.state = factory.state
        # a client's tag data takes at most 4094 bytes, 4096 with the '@' before it and the
        # space after it (IRCv3 message-tags, as irctest checks); over that, or 512 bytes
        # for the rest, the line is answered 417
        self.reader = LineReader(max_tags=MAX_CLIENT_TAGS_BYTES + 2)
        self.user: User | None = None
        self.username: str | None = None
        self.realname = ""
        self.password: str | None = None
        self.caps: set[str] = set()
        self._caps_key: frozenset[str] = frozenset()  # caps, hashable: the encoding cache's key
        self.cap_version = 0
        self.cap_negotiating = False
        self.registered = False
        self.host = "localhost"
        self._closed = False
        self._quit_reason: str | None = None
        self._last = 0.0
        self._ping_sent = False
        self._ping_at = 0.0
        self._connected_at = 0.0
        #: when the factory's sweep is next to look at this connection (see _tick)
        self._due = _NEVER
        self._flood = 0.0  # the time the client's penalty budget is spent up to
        #: the lines waiting for the penalty budget, and the timer that acts on them
        self._queue: deque[bytes | LineTooLong] = deque()
        self._drain_timer: Any = None
        self._counted = False  # in the factory's per-address count
        #: the replies held while a labeled command runs (labeled-response), or None
        self._capture: list[Message] | None = None
        self._sasl: str | None = None  # the SASL payload so far, once AUTHENTICATE PLAIN
        self.account: str | None = None
        #: the nicks this connection MONITORs (folded -> as given)
        self.monitoring: dict[str, str] = {}
        self._whox: tuple[str, str] | None = None

    @property
    def nick(self) -> str | None:
        return self.user.nick if self.user is not None else None

    def __repr__(self) -> str:
        return f"<IRCServerProtocol {self.host} {self.nick or '*'}>"

    # ---- connection events

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = getattr(transport, "peer", None)
        host = str(getattr(peer, "host", None) or "localhost").removeprefix("::ffff:")
        # a host never starts with ':' (it would read as a trailing parameter): "::1" is
        # written "0::1" (Modern IRC, RPL_WHOISUSER)
        self.host = "0" + host if host.startswith(":") else host
        factory = self.factory
        if 0 < factory.max_connections <= len(factory.connections):
            self.close("Too many connections")
            return
        count = factory.per_ip.get(self.host, 0)
        if 0 < factory.max_connections_per_ip <= count and not _loopback(self.host):
            self.close("Too many connections from this IP")
            return
        factory.per_ip[self.host] = count + 1
        self._counted = True
        factory.connections.add(self)
        self._connected_at = self._last = self._flood = factory.clock.seconds()
        self._set_due()
        factory.watch()

    def data_received(self, data: bytes) -> None:
        factory = self.factory
        if not factory.hold():
            self._data_received(data)
            return
        try:
            self._data_received(data)
        finally:
            factory.flush()

    def _data_received(self, data: bytes) -> None:
        if self._closed:
            return
        items = self.reader.feed(data)
        if not items:
            return
        self._last = self.factory.clock.seconds()
        self._ping_sent = False
        if self.factory.flood_burst:
            self._queue.extend(items)
            if len(self._queue) > self.factory.flood_queue:
                self.close("Excess Flood")
                return
            self._drain()
            return
        for item in items:
            if self._closed:
                return
            self._item(item)

    def _drain_later(self) -> None:
        factory = self.factory
        if not factory.hold():
            self._drain()
            return
        try:
            self._drain()
        finally:
            factory.flush()

    def _item(self, item: bytes | LineTooLong) -> None:
        if isinstance(item, LineTooLong):
            self.numeric("417", "Input line was too long")
        else:
            self._line(item)

    def _drain(self) -> None:
        """Act on the lines held while the client is within its penalty budget; the rest
        wait until it has earned them (RFC 1459 §8.10: flooders are slowed down, and
        closed only when they send more than ``flood_queue`` lines ahead)."""
        self._drain_timer = None
        queue = self._queue
        factory = self.factory
        clock = factory.clock
        ahead = factory.flood_burst / factory.flood_rate
        while queue and not self._closed:
            now = clock.seconds()
            if self._flood - now > ahead:
                wait = self._flood - now - ahead
                self._drain_timer = clock.call_later(wait, self._drain_later)
                return
            item = queue.popleft()
            if not isinstance(item, LineTooLong):
                self._charge(item, now)
            self._item(item)

    def eof_received(self) -> bool | None:
        return None

    def stop_gracefully(self) -> None:
        """The server shuts down: ERROR to the client, QUIT to those who see it."""
        self.close("Server shutting down")

    def connection_lost(self, reason: Failure) -> None:
        self._closed = True
        self._stop_timer()
        self.factory.connections.discard(self)
        if self._counted:
            self._counted = False
            left = self.factory.per_ip.get(self.host, 1) - 1
            if left > 0:
                self.factory.per_ip[self.host] = left
            else:
                self.factory.per_ip.pop(self.host, None)
        if self._quit_reason is None:
            self._quit_reason = "Connection closed"
        self._leave(self._quit_reason)

    # ---- lines in

    def _charge(self, line: bytes, now: float) -> None:
        """Count the line against the penalty budget."""
        command = line.split(b" ", 2)
        verb = command[0]
        if verb.startswith((b"@", b":")) and len(command) > 1:
            verb = command[1]
        cost = _PENALTY.get(verb.upper().decode("ascii", "replace"), 1.0)
        self._flood = max(self._flood, now) + cost / self.factory.flood_rate

    def _line(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            try:
                command = parse(raw).command
            except IRCParseError:
                command = "*"
            self.send(Message("FAIL", [command, "INVALID_UTF8",
                                       "Message rejected for containing invalid UTF-8"],
                              source=self.factory.name))
            return
        try:
            msg = parse(text)
        except IRCParseError:
            return  # Modern IRC: a malformed message is ignored
        if len(msg.params) > 15:
            msg.params = fold_params(text, msg.params)
        label = msg.tags.get("label")
        if label and "labeled-response" in self.caps and "batch" in self.caps:
            self._capture = []
            try:
                self._dispatch(msg)
            finally:
                self._flush_labeled(label)
        else:
            self._dispatch(msg)

    def _dispatch(self, msg: Message) -> None:
        command = msg.command
        handler: Callable[[Message], None] | None = getattr(self, "irc_" + command, None)
        if handler is None:
            if command.isdigit():
                return  # numerics from a client mean nothing
            if not self.registered:
                self.numeric("451", "You have not registered")
                return
            self.numeric("421", command, "Unknown command")
            return
        if not self.registered and command not in _BEFORE_REGISTRATION:
            self.numeric("451", "You have not registered")
            return
        if self.user is not None and self.registered and command not in ("PING", "PONG"):
            self.user.last_active = time.time()
        try:
            handler(msg)
        except Exception:
            log.exception("%r: %s failed", self, command)

    # ---- lines out

    def send(self, msg: Message) -> None:
        """Send ``msg`` to the client (nothing once the connection is closing), with the
        tags its capabilities ask for; held while a labeled command runs."""
        if self._closed:
            return
        if self._capture is not None:
            self._capture.append(msg)
            return
        self._write(msg)

    def _write(self, msg: Message, extra: dict[str, str] | None = None) -> None:
        """Write ``msg`` now, its tags filtered by the client's capabilities."""
        if self._closed:
            return
        if extra is not None:
            self._out(self._encode(msg, _now_tag(), extra))
            return
        # A message sent to a whole channel is encoded once per set of capabilities
        # among its members (and stamped with one time), not once per member.
        factory = self.factory
        if factory._encoded_msg is not msg:
            factory._encoded_msg = msg
            factory._encoded = {}
            factory._encoded_time = ""
        key = self._caps_key
        data = factory._encoded.get(key)
        if data is None:
            if not factory._encoded_time and "server-time" in self.caps:
                factory._encoded_time = _now_tag()
            data = factory._encoded[key] = self._encode(msg, factory._encoded_time, None)
        self._out(data)

    def _out(self, data: bytes) -> None:
        """Write the line ``data`` now, or at the end of the input being acted on (see
        IRCServerFactory.flush), cut to 512 bytes if it is longer."""
        if len(data) > 512:
            data = _fit(data)
        self._put(data)

    def _put(self, data: bytes) -> None:
        """Write ``data``, lines known to fit, as _out does."""
        batch = self.factory._batch
        if batch is None:
            self.transport.write(data)
            self._check_sendq()
            return
        held = batch.get(self)
        if held is None:
            batch[self] = [data]
        else:
            held.append(data)

    def _check_sendq(self) -> None:
        """Drop the client once it owes more than the factory's ``sendq`` bytes: it does
        not read, and the server would hold all it is sent (its neighbours see it quit)."""
        limit = self.factory.sendq
        if not limit or self._closed:
            return
        if getattr(self.transport, "write_buffer_size", 0) > limit:
            log.info("%s %s: SendQ exceeded", self.host, self.nick or "*")
            if self._quit_reason is None:
                self._quit_reason = "SendQ exceeded"
            self._closed = True
            self._stop_timer()
            self._leave(self._quit_reason)
            self.transport.abort()  # what it owes is dropped: it would never read it

    def _encode(self, msg: Message, now: str, extra: dict[str, str] | None) -> bytes:
        """``msg`` as this client gets it: the tags its capabilities ask for, ``now`` as
        its server-time, and ``extra`` tags (label, batch)."""
        caps = self.caps
        if not caps:
            if msg.tags:
                msg = Message(msg.command, msg.params, msg.source)
            return msg.to_bytes()
        tags: dict[str, str] = {}
        for key, value in msg.tags.items():
            if key.startswith("+") or key in ("msgid", "bot"):
                if "message-tags" not in caps:
                    continue
            elif key == "account":
                if "account-tag" not in caps:
                    continue
            elif key == "time" and "server-time" not in caps:
                continue
            tags[key] = value
        if "server-time" in caps and "time" not in tags:
            tags["time"] = now or _now_tag()
        if extra:
            tags.update(extra)
        return Message(msg.command, msg.params, msg.source, tags).to_bytes()

    def _flush_labeled(self, label: str) -> None:
        """Send the replies held for a labeled command: an ACK for none, the one reply
        labeled, or several in a labeled-response batch (IRCv3 labeled-response)."""
        held, self._capture = self._capture, None
        if held is None or self._closed:
            return
        name = self.factory.name
        if not held:
            self._write(Message("ACK", [], source=name), {"label": label})
        elif len(held) == 1:
            self._write(held[0], {"label": label})
        else:
            ref = self.factory.new_id()
            self._write(Message("BATCH", ["+" + ref, "labeled-response"], source=name),
                        {"label": label})
            for msg in held:
                self._write(msg, {"batch": ref})
            self._write(Message("BATCH", ["-" + ref], source=name))

    def numeric(self, code: str, *params: str) -> None:
        """Send numeric ``code`` with the client's nick (``*`` before it has one) first.

        A parameter before the last that could not be written as one (empty, with a
        space, or starting with ':': what a client may have sent as its last parameter)
        is given as ``*``."""
        middle = [p if p and " " not in p and p[0] != ":" else "*" for p in params[:-1]]
        if not self.caps and self._capture is None:
            # A client with no capabilities gets no tags: the line is written as
            # Message.to_bytes would write it, without building the Message.
            if self._closed:
                return
            data = numeric_line(self.factory.name, code, self.nick or "*", middle,
                                params[-1] if params else None)
            if data is not None:
                self._out(data)
                return
        self.send(Message(code, [self.nick or "*", *middle, *params[-1:]],
                          source=self.factory.name))

    def close(self, reason: str) -> None:
        """Send ``ERROR`` and close; the user leaves with ``reason`` as its QUIT message."""
        if self._closed:
            return
        if self._quit_reason is None:
            self._quit_reason = reason
        held, self._capture = self._capture, None
        for msg in held or ():
            self._write(msg)
        text = f"Closing Link: {self.host} ({reason})"
        if self.caps or _unwritable(text):
            self._write(Message("ERROR", [text]))
        else:  # what the Message would be, for a client with no tags to get
            self._out(f"ERROR :{text}\r\n".encode("utf-8", "surrogateescape"))
        self._closed = True
        self._stop_timer()
        self._leave(self._quit_reason)
        batch = self.factory._batch
        held_out = batch.pop(self, None) if batch is not None else None
        if held_out:
            self.transport.write(b"".join(held_out))  # before the close, in order
        self.transport.close()

    def _leave(self, reason: str) -> None:
        """The user goes: QUIT to everyone sharing a channel, forgotten by the state."""
        factory = self.factory
        if self.monitoring:
            for key in self.monitoring:
                watchers = factory.monitors.get(key)
                if watchers is not None:
                    watchers.discard(self)
                    if not watchers:
                        del factory.monitors[key]
            self.monitoring = {}
        user, self.user = self.user, None
        if user is None:
            return
        if user.registered:
            if user.channels:
                msg = Message("QUIT", [reason], source=user.source)
                for other in self.state.neighbours(user):
                    other.conn.send(msg)
            log.info("%s %s left: %s", self.host, user.nick, reason)
        self.state.remove_user(user)
        if user.registered and factory.monitors:
            factory.monitor_notify(user.nick, False, user.source)

    # ---- timers: PING on idle, the ping timeout

    def _set_due(self) -> None:
        """When _tick is next to run: the PING on idle or its timeout, or the end of the
        time to register (the sweep may run it up to a sweep period late)."""
        factory = self.factory
        due = _NEVER
        if self._ping_sent:
            if factory.ping_timeout > 0:
                due = self._ping_at + factory.ping_timeout
        elif factory.ping_interval > 0:
            due = self._last + factory.ping_interval
        if not self.registered and factory.registration_timeout > 0:
            due = min(due, self._connected_at + factory.registration_timeout)
        self._due = due

    def _stop_timer(self) -> None:
        self._due = _NEVER
        timer, self._drain_timer = self._drain_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        self._queue.clear()

    def _tick(self, now: float) -> None:
        """The sweep's look at this connection, once its ``_due`` time came."""
        factory = self.factory
        timeout = factory.registration_timeout
        if not self.registered and timeout > 0 and now - self._connected_at >= timeout:
            self.close("Registration timed out")
            return
        if self._ping_sent:
            waited = now - self._ping_at
            if factory.ping_timeout > 0 and waited >= factory.ping_timeout:
                self.close(f"Ping timeout: {int(factory.ping_interval + waited)} seconds")
                return
        elif factory.ping_interval > 0 and now - self._last >= factory.ping_interval:
            self._ping_sent = True
            self._ping_at = now
            self.send(Message("PING", [factory.name]))
        self._set_due()

    # ---- registration

    def irc_PASS(self, msg: Message) -> None:
        if self.registered:
            self.numeric("462", "You may not reregister")
            return
        if not msg.params:
            self.numeric("461", "PASS", "Not enough parameters")
            return
        self.password = msg.params[0]

    def irc_NICK(self, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.numeric("431", "No nickname given")
            return
        nick = msg.params[0]
        state = self.state
        if not state.valid_nick(nick):
            self.numeric("432", nick, "Erroneus nickname")
            return
        user = self.user
        other = state.find_user(nick)
        if other is not None and other is not user:
            self.numeric("433", nick, "Nickname is already in use")
            return
        if user is None:
            self.user = state.add_user(nick, self)
            self.user.hostname = self.host
            # SASL may come before NICK (irctest's order: CAP REQ, AUTHENTICATE, NICK)
            self.user.account = self.account
            self._maybe_register()
            return
        if user.nick == nick:
            return
        source = user.source
        state.rename(user, nick)
        if self.registered:
            out = Message("NICK", [nick], source=source)
            self.send(out)
            for other in state.neighbours(user):
                other.conn.send(out)
            old = source.split("!", 1)[0]
            if state.fold(old) != state.fold(nick):
                self.factory.monitor_notify(old, False, source)
                self.factory.monitor_notify(nick, True, user.source)

    def irc_USER(self, msg: Message) -> None:
        if self.registered or self.username is not None:
            self.numeric("462", "You may not reregister")
            return
        # an empty username or real name is refused (Modern IRC: username; InspIRCd and
        # irctest's testEmptyRealname: the real name too)
        if len(msg.params) < 4 or not msg.params[0] or not msg.params[3]:
            self.numeric("461", "USER", "Not enough parameters")
            return
        # USERLEN=10 with the '~' (no ident) in front
        username = msg.params[0]
        if not username.isalnum():
            username = "".join(c for c in username if c.isalnum() or c in "-_.")
        username = username[:9]
        self.username = "~" + (username or "user")
        self.realname = _truncate(msg.params[3], 390)  # as SETNAME allows
        self._maybe_register()

    def _maybe_register(self) -> None:
        user = self.user
        if self.registered or user is None or self.username is None or self.cap_negotiating:
            return
        factory = self.factory
        if factory.password is not None and not (
            self.password is not None
            and hmac.compare_digest(self.password.encode(), factory.password.encode())
        ):
            self.numeric("464", "Password incorrect")
            self.close("Bad password")
            return
        user.username = self.username
        user.realname = self.realname
        user.hostname = self.host
        self.registered = True
        self.state.register(user)
        source = user.source
        log.info("%s registered as %s", self.host, source)
        welcome = f"Welcome to the {factory.network} Network, {source}"
        parts = factory.welcome_parts() if not self.caps and self._capture is None else None
        line = parts and numeric_line(factory.name, "001", user.nick, [], welcome)
        if parts and line and len(line) <= 512:
            # A client with no capabilities (most, and every benchmark's) gets the burst
            # the slow way below would send, made from the factory's cached lines.
            nick = user.nick.encode("utf-8", "surrogateescape")
            self._put(b"".join((line, nick.join(parts[0]), self._lusers_bytes(user.nick),
                                nick.join(parts[1]))))
        else:
            self.numeric("001", welcome)
            self.numeric("002", f"Your host is {factory.name}, running version {VERSION}")
            created = factory.created.strftime("%a %b %d %Y at %H:%M:%S UTC")
            self.numeric("003", f"This server was created {created}")
            self.numeric("004", factory.name, VERSION, "Biow", _MODES_004, _PARAM_MODES_004)
            tokens = factory.isupport
            for i in range(0, len(tokens), 13):
                self.numeric("005", *tokens[i:i + 13], "are supported by this server")
            self._lusers()
            self._motd()
        if factory.monitors:
            factory.monitor_notify(user.nick, True, source)

    # ---- CAP

    def _offered(self) -> dict[str, str | None]:
        """The capabilities this server offers: sasl only with accounts to log in to."""
        offered = dict(CAPABILITIES)
        if not self.factory.accounts:
            del offered["sasl"]
        return offered

    def irc_CAP(self, msg: Message) -> None:
        if not msg.params:
            self.numeric("461", "CAP", "Not enough parameters")
            return
        sub = msg.params[0].upper()
        client = self.nick or "*"
        name = self.factory.name
        if sub == "LS":
            if not self.registered:
                self.cap_negotiating = True
            version = 0
            if len(msg.params) > 1 and msg.params[1].isdigit():
                version = int(msg.params[1])
            self.cap_version = max(self.cap_version, version)
            if version >= 302:
                self.caps.add("cap-notify")
                self._caps_key = frozenset(self.caps)
            offered = self._offered()
            secure = getattr(self.transport, "tls", None) is not None
            if secure and self.factory.sts_duration:
                # STS: the persistence policy, on a secure connection
                offered["sts"] = f"duration={int(self.factory.sts_duration)}"
            elif not secure and self.factory.sts_port:
                # STS: the upgrade policy, on a plain one (where TLS is served)
                offered["sts"] = f"port={int(self.factory.sts_port)}"
            items = [k if v is None or self.cap_version < 302 else f"{k}={v}"
                     for k, v in sorted(offered.items())]
            # CAP LS 302 may take several lines, each but the last marked with '*'
            lines: list[list[str]] = [[]]
            for item in items:
                if lines[-1] and len(" ".join([*lines[-1], item])) > 400 - len(client):
                    lines.append([])
                lines[-1].append(item)
            if self.cap_version < 302:
                lines = [items]
            for i, chunk in enumerate(lines):
                more = ["*"] if i < len(lines) - 1 else []
                self.send(Message("CAP", [client, "LS", *more, " ".join(chunk)], source=name))
        elif sub == "LIST":
            self.send(Message("CAP", [client, "LIST", " ".join(sorted(self.caps))],
                              source=name))
        elif sub == "REQ":
            if not self.registered:
                self.cap_negotiating = True
            asked = msg.params[1] if len(msg.params) > 1 else ""
            wanted = asked.split()
            offered = self._offered()
            ok = bool(wanted) and all(w.removeprefix("-") in offered for w in wanted)
            if ok:
                for w in wanted:
                    if w.startswith("-"):
                        self.caps.discard(w[1:])
                    else:
                        self.caps.add(w)
                self._caps_key = frozenset(self.caps)
            self.send(Message("CAP", [client, "ACK" if ok else "NAK", asked], source=name))
        elif sub == "END":
            if not self.registered and self.cap_negotiating:
                self.cap_negotiating = False
                self._maybe_register()
        else:
            self.numeric("410", msg.params[0], "Invalid CAP command")

    # ---- connection upkeep

    def irc_PING(self, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.numeric("461", "PING", "Not enough parameters")
            return
        name = self.factory.name
        self.send(Message("PONG", [name, msg.params[0]], source=name))

    def irc_PONG(self, msg: Message) -> None:
        pass  # any line counts as activity

    def irc_QUIT(self, msg: Message) -> None:
        reason = msg.params[0] if msg.params else ""
        user = self.user
        # the QUIT relayed and the ERROR fit 512 bytes
        reason = _truncate(reason, min(
            _room(f":{user.source if user else '*'} QUIT :Quit: "),
            _room(f"ERROR :Closing Link: {self.host} (Quit: )")))
        # Modern IRC: "Quit: " before the reason, even an empty one
        self._quit_reason = f"Quit: {reason}"
        self.close(self._quit_reason)

    # ---- server information

    def irc_LUSERS(self, msg: Message) -> None:
        self._lusers()

    def _lusers_counts(self) -> tuple[int, int, int, int, int, int]:
        """(users, invisible, operators, unknown connections, channels, most users)."""
        state = self.state
        total = state.registered_count()
        counts = state.mode_counts
        return (total, counts.get("i", 0), counts.get("o", 0),
                max(0, len(self.factory.connections) - total), len(state.channels),
                state.max_users)

    def _lusers(self) -> None:
        total, invisible, ops, unknown, channels, top = self._lusers_counts()
        self.numeric("251", f"There are {total - invisible} users and {invisible} invisible "
                            "on 1 servers")
        self.numeric("252", str(ops), "operator(s) online")
        self.numeric("253", str(unknown), "unknown connection(s)")
        self.numeric("254", str(channels), "channels formed")
        self.numeric("255", f"I have {total} clients and 0 servers")
        self.numeric("265", str(total), str(top), f"Current local users {total}, max {top}")
        self.numeric("266", str(total), str(top), f"Current global users {total}, max {top}")

    def _lusers_bytes(self, nick: str) -> bytes:
        """The lines _lusers sends a client with no capabilities, as one piece."""
        total, invisible, ops, unknown, channels, top = self._lusers_counts()
        p = f":{self.factory.name} "
        return (
            f"{p}251 {nick} :There are {total - invisible} users and {invisible} invisible "
            f"on 1 servers\r\n"
            f"{p}252 {nick} {ops} :operator(s) online\r\n"
            f"{p}253 {nick} {unknown} :unknown connection(s)\r\n"
            f"{p}254 {nick} {channels} :channels formed\r\n"
            f"{p}255 {nick} :I have {total} clients and 0 servers\r\n"
            f"{p}265 {nick} {total} {top} :Current local users {total}, max {top}\r\n"
            f"{p}266 {nick} {total} {top} :Current global users {total}, max {top}\r\n"
        ).encode("utf-8", "surrogateescape")

    def irc_MOTD(self, msg: Message) -> None:
        self._motd()

    def _motd(self) -> None:
        motd = self.factory.motd
        if motd is None:
            self.numeric("422", "MOTD File is missing")
            return
        self.numeric("375", f"- {self.factory.name} Message of the day - ")
        for line in motd:
            self.numeric("372", f"- {line}")
        self.numeric("376", "End of /MOTD command.")

    def irc_VERSION(self, msg: Message) -> None:
        self.numeric("351", VERSION, self.factory.name, "netshell IRC server")
        tokens = self.factory.isupport
        for i in range(0, len(tokens), 13):
            self.numeric("005", *tokens[i:i + 13], "are supported by this server")

    def irc_TIME(self, msg: Message) -> None:
        now = datetime.now(UTC)
        self.numeric("391", self.factory.name, now.strftime("%A %B %d %Y -- %H:%M:%S UTC"))

    def irc_ADMIN(self, msg: Message) -> None:
        name = self.factory.name
        self.numeric("256", name, "Administrative info")
        self.numeric("257", f"{self.factory.network} IRC network")
        self.numeric("258", f"Server {name}")
        self.numeric("259", f"admin@{name}")

    def irc_LINKS(self, msg: Message) -> None:
        name = self.factory.name
        self.numeric("364", "*", name, f"0 {self.factory.network} IRC server")
        self.numeric("365", "*", "End of /LINKS list")

    def irc_HELP(self, msg: Message) -> None:
        subject = msg.params[0].upper() if msg.params and msg.params[0] else "*"
        commands = sorted(n[4:] for n in dir(self) if n.startswith("irc_"))
        if subject != "*" and subject not in commands:
            self.numeric("524", subject, "I do not know anything about this")
            return
        if subject == "*":
            self.numeric("704", "*", "** Help System **")
            self.numeric("705", "*", "")
            self.numeric("706", "*", "Commands: " + " ".join(commands))
        else:
            self.numeric("704", subject, f"** The {subject} command **")
            self.numeric("706", subject, f"{subject}: see the Modern IRC Client Protocol")

    def irc_INFO(self, msg: Message) -> None:
        self.numeric("371", f"{VERSION}: the netshell IRC server")
        self.numeric("374", "End of INFO list")

    # ---- nick queries

    def irc_ISON(self, msg: Message) -> None:
        if not msg.params:
            self.numeric("461", "ISON", "Not enough parameters")
            return
        found = []
        for param in msg.params:
            for nick in param.split():
                user = self.state.find_user(nick)
                if user is not None and user.registered:
                    found.append(user.nick)
        if found:
            self._numeric_list("303", [], found)
        else:
            self.numeric("303", "")

    def irc_USERHOST(self, msg: Message) -> None:
        if not msg.params:
            self.numeric("461", "USERHOST", "Not enough parameters")
            return
        replies = []
        for nick in msg.params[:5]:
            user = self.state.find_user(nick)
            if user is None or not user.registered:
                continue
            star = "*" if user.oper else ""
            away = "-" if user.away is not None else "+"
            replies.append(f"{user.nick}{star}={away}{user.username}@{user.hostname}")
        if replies:
            self._numeric_list("302", [], replies)
        else:
            self.numeric("302", "")

    def irc_AWAY(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        text = msg.params[0] if msg.params else ""
        if text:
            user.away = _truncate(text, self.state.awaylen)
            self.numeric("306", "You have been marked as being away")
            params = [user.away]
        else:
            user.away = None
            self.numeric("305", "You are no longer marked as being away")
            params = []
        out = Message("AWAY", params, source=user.source)
        for other in self.state.neighbours(user):
            if "away-notify" in other.conn.caps:
                other.conn.send(out)

    def irc_WHOIS(self, msg: Message) -> None:
        params = msg.params
        if not params or not params[-1]:
            self.numeric("431", "No nickname given")
            return
        me = self.user
        assert me is not None
        asked = params[-1]  # RPL_ENDOFWHOIS gives it back exactly as sent
        nick = asked.split(",")[0]
        user = self.state.find_user(nick)
        if user is None or not user.registered:
            self.numeric("401", nick, "No such nick/channel")
            self.numeric("318", asked, "End of /WHOIS list")
            return
        n = user.nick
        self.numeric("311", n, user.username, user.hostname, "*", user.realname)
        multi = "multi-prefix" in self.caps
        # a secret or private channel only to those on it (RFC 2811 4.2.6); as many 319
        # lines as it takes
        self._numeric_list("319", [n], [c.prefixes(user, multi) + c.name
                                        for c in user.channels.values() if c.public(me)])
        self.numeric("312", n, self.factory.name, f"{self.factory.network} IRC server")
        if getattr(getattr(user.conn, "transport", None), "tls", None) is not None:
            self.numeric("671", n, "is using a secure connection")
        if user.oper:
            self.numeric("313", n, "is an IRC operator")
        if user.away is not None:
            self.numeric("301", n, user.away)
        if "B" in user.modes:
            self.numeric("335", n, "is a bot")
        if user.account is not None:
            self.numeric("330", n, user.account, "is logged in as")
        idle = max(0, int(time.time() - user.last_active))
        self.numeric("317", n, str(idle), str(int(user.signon)), "seconds idle, signon time")
        self.numeric("318", asked, "End of /WHOIS list")

    def irc_WHOWAS(self, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.numeric("431", "No nickname given")
            return
        nick = msg.params[0]
        entries = self.state.whowas.get(self.state.fold(nick), [])
        if len(msg.params) > 1 and msg.params[1].isdigit() and int(msg.params[1]) > 0:
            entries = entries[: int(msg.params[1])]
        if not entries:
            # the appendix leaves <nick> out, the WHOWAS section's example (and every
            # server) gives it
            self.numeric("406", nick, "There was no such nickname")
        for old, username, host, realname, _when in entries:
            self.numeric("314", old, username, host, "*", realname)
            self.numeric("312", old, self.factory.name, f"{self.factory.network} IRC server")
        self.numeric("369", nick, "End of WHOWAS")

    def irc_WHO(self, msg: Message) -> None:
        me = self.user
        assert me is not None
        mask = msg.params[0] if msg.params and msg.params[0] else "*"
        self._whox = None
        # WHO <mask> [o][%<fields>[,<token>]]: 'o' asks for operators only (RFC 2812)
        flags = ""
        if len(msg.params) > 1:
            flags, percent, rest = msg.params[1].partition("%")
            if percent:
                fields, _, token = rest.partition(",")
                self._whox = (fields, token or "0")
        opers_only = "o" in flags
        state = self.state
        multi = "multi-prefix" in self.caps
        name = self.factory.name
        if mask.startswith("#"):
            channel = state.find_channel(mask)
            if channel is not None and state.visible(channel, me):
                for user in list(channel.members):
                    if "i" in user.modes and me not in channel.members:
                        continue
                    if opers_only and not user.oper:
                        continue
                    self._who_line(channel.name, user, channel.prefixes(user, multi), name)
        else:
            # the mask is matched against the nick, the username, the host, the server
            # and the real name (RFC 2812 3.6.1; Modern IRC: servers MAY); "0" is all
            # (matched in time linear in each value times the mask: see Mask)
            pattern = compile_mask("*" if mask == "0" else mask, state.casemapping)
            all_match = pattern.match(state.fold(name))  # the server's name
            near = state.neighbours(me)
            for user in list(state.users.values()):
                if not user.registered or (opers_only and not user.oper):
                    continue
                if not all_match and not any(pattern.match(state.fold(value)) for value in (
                        user.nick, user.username, user.hostname, user.realname)):
                    continue
                if ("i" in user.modes and user is not me and user not in near
                        and state.fold(mask) != state.fold(user.nick)):
                    continue
                # the channel shown is one the asker may know of
                shared = next((c for c in user.channels.values() if c.public(me)), None)
                self._who_line(shared.name if shared else "*", user,
                               shared.prefixes(user, multi) if shared else "", name)
        self.numeric("315", mask, "End of WHO list")

    def _who_line(self, channel: str, user: User, prefix: str, server: str) -> None:
        flags = ("G" if user.away is not None else "H") + ("*" if user.oper else "") + prefix
        if "B" in user.modes:
            flags += "B"
        whox = self._whox
        if whox is None:
            self.numeric("352", channel, user.username, user.hostname, server, user.nick,
                         flags, f"0 {user.realname}")
            return
        fields, token = whox
        values = {
            "t": token, "c": channel, "u": user.username, "i": "255.255.255.255",
            "h": user.hostname, "s": server, "n": user.nick, "f": flags, "d": "0",
            "l": str(max(0, int(time.time() - user.last_active))),
            "a": user.account or "0", "o": "n/a", "r": user.realname,
        }
        self.numeric("354", *[values[f] for f in _WHOX_FIELDS if f in fields])

    # ---- channels

    def irc_JOIN(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if not msg.params or not msg.params[0]:
            self.numeric("461", "JOIN", "Not enough parameters")
            return
        if msg.params[0] == "0":
            for left in list(user.channels.values()):
                self._part(user, left, None)
            return
        names = msg.params[0].split(",")
        keys = msg.params[1].split(",") if len(msg.params) > 1 else []
        state = self.state
        for i, name in enumerate(names):
            if not name:
                continue
            key = keys[i] if i < len(keys) else None
            if not state.valid_channel(name):
                self.numeric("476", name, "Bad Channel Mask")
                continue
            channel = state.find_channel(name)
            if channel is not None and user in channel.members:
                continue
            if len(user.channels) >= state.max_channels:
                self.numeric("405", name, "You have joined too many channels")
                continue
            if channel is not None:
                refused = state.may_join(user, channel, key)
                if refused is not None:
                    text = {"471": "Cannot join channel (+l)", "473": "Cannot join channel (+i)",
                            "474": "Cannot join channel (+b)",
                            "475": "Cannot join channel (+k)"}[refused]
                    self.numeric(refused, channel.name, text)
                    continue
            joined, _created = state.join(user, name)
            plain = Message("JOIN", [joined.name], source=user.source)
            extended = Message("JOIN", [joined.name, user.account or "*", user.realname],
                               source=user.source)
            if user.away is None:
                self._broadcast(list(joined.members), plain, extended, "extended-join")
            else:
                away = Message("AWAY", [user.away], source=user.source)
                for member in list(joined.members):
                    conn = member.conn
                    conn.send(extended if "extended-join" in conn.caps else plain)
                    if member is not user and "away-notify" in conn.caps:
                        conn.send(away)
            if joined.topic:
                self._topic_reply(joined)
            self._names(joined)

    def irc_PART(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if not msg.params or not msg.params[0]:
            self.numeric("461", "PART", "Not enough parameters")
            return
        reason = msg.params[1] if len(msg.params) > 1 else None
        for name in msg.params[0].split(","):
            if not name:
                continue
            channel = self.state.find_channel(name)
            if channel is None:
                self.numeric("403", name, "No such channel")
            elif user not in channel.members:
                self.numeric("442", channel.name, "You're not on that channel")
            else:
                self._part(user, channel, reason)

    def _part(self, user: User, channel: Channel, reason: str | None) -> None:
        if reason is not None:
            reason = _truncate(reason, _room(f":{user.source} PART {channel.name} :"))
        params = [channel.name] if reason is None else [channel.name, reason]
        out = Message("PART", params, source=user.source)
        for member in list(channel.members):
            member.conn.send(out)
        self.state.part(user, channel)

    def irc_TOPIC(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if not msg.params or not msg.params[0]:
            self.numeric("461", "TOPIC", "Not enough parameters")
            return
        channel = self.state.find_channel(msg.params[0])
        if channel is None:
            self.numeric("403", msg.params[0], "No such channel")
            return
        member = user in channel.members
        if len(msg.params) < 2:
            if not member and "s" in channel.modes:
                # a secret channel is as if it did not exist to those not on it (RFC 2811)
                self.numeric("403", msg.params[0], "No such channel")
                return
            if channel.topic:
                self._topic_reply(channel)
            else:
                self.numeric("331", channel.name, "No topic is set")
            return
        if not member:
            self.numeric("442", channel.name, "You're not on that channel")
            return
        if "t" in channel.modes and not channel.is_op(user):
            self.numeric("482", channel.name, "You're not channel operator")
            return
        # TOPICLEN in bytes, and the TOPIC relayed fits 512 bytes
        channel.topic = _truncate(msg.params[1], min(
            self.state.topiclen, _room(f":{user.source} TOPIC {channel.name} :")))
        channel.topic_by = user.source
        channel.topic_at = int(time.time())
        out = Message("TOPIC", [channel.name, channel.topic], source=user.source)
        for m in list(channel.members):
            m.conn.send(out)

    def _topic_reply(self, channel: Channel) -> None:
        self.numeric("332", channel.name, channel.topic)
        self.numeric("333", channel.name, channel.topic_by, str(channel.topic_at))

    def irc_NAMES(self, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.numeric("366", "*", "End of /NAMES list")
            return
        me = self.user
        assert me is not None
        for name in msg.params[0].split(","):
            channel = self.state.find_channel(name)
            if channel is not None and self.state.visible(channel, me):
                self._names(channel)
            else:
                self.numeric("366", name, "End of /NAMES list")

    def _names(self, channel: Channel) -> None:
        me = self.user
        multi = "multi-prefix" in self.caps
        full = "userhost-in-names" in self.caps
        # each 353 fits in 512 bytes with the prefix and parameters around it
        budget = _room(f":{self.factory.name} 353 {self.nick or '*'} {channel.symbol} "
                       f"{channel.name} :")
        if me in channel.members:
            texts = channel.names(multi, full, budget)
        else:
            texts = channel.names(multi, full, budget, lambda u: "i" in u.modes)
        for text in texts:
            self.numeric("353", channel.symbol, channel.name, text)
        self.numeric("366", channel.name, "End of /NAMES list")

    def irc_LIST(self, msg: Message) -> None:
        me = self.user
        assert me is not None
        state = self.state
        self.numeric("321", "Channel", "Users  Name")
        wanted: list[str] | None = None
        least, most = 0, None
        # LIST [<channel>{,<channel>}] [<elistcond>{,<elistcond>}]: either may come alone
        for item in ",".join(msg.params[:2]).split(","):
            if item[:1] in "<>" and item[1:].isdigit():
                if item[0] == ">":
                    least = int(item[1:]) + 1
                else:
                    most = int(item[1:]) - 1
            elif item:
                wanted = [*(wanted or []), item]
        for channel in state.iter_channels():
            if not state.visible(channel, me):
                continue
            if "p" in channel.modes and me not in channel.members:
                continue  # a private channel is not listed to outsiders
            count = len(channel.members)
            if count < least or (most is not None and count > most):
                continue
            if wanted is not None and not any(
                mask_matches(w, channel.name, state.casemapping) for w in wanted
            ):
                continue
            self.numeric("322", channel.name, str(len(channel.members)), channel.topic)
        self.numeric("323", "End of /LIST")

    def irc_KICK(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if len(msg.params) < 2:
            self.numeric("461", "KICK", "Not enough parameters")
            return
        channel = self.state.find_channel(msg.params[0])
        if channel is None:
            self.numeric("403", msg.params[0], "No such channel")
            return
        if user not in channel.members:
            self.numeric("442", channel.name, "You're not on that channel")
            return
        if not channel.is_op(user):
            self.numeric("482", channel.name, "You're not channel operator")
            return
        nicks = msg.params[1].split(",")
        if len(nicks) > 4:
            # TARGMAX KICK:4: more is refused whole, as PRIVMSG's are (ERR_TOOMANYTARGETS),
            # rather than dropped unsaid
            self.numeric("407", msg.params[1], "Too many targets")
            return
        reason = msg.params[2] if len(msg.params) > 2 and msg.params[2] else user.nick
        reason = _truncate(reason, self.state.kicklen)  # KICKLEN counts bytes
        for nick in nicks:
            target = self.state.find_user(nick)
            if target is None or target not in channel.members:
                self.numeric("441", nick, channel.name, "They aren't on that channel")
                continue
            # the KICK relayed fits 512 bytes
            text = _truncate(reason, _room(f":{user.source} KICK {channel.name} "
                                           f"{target.nick} :"))
            out = Message("KICK", [channel.name, target.nick, text], source=user.source)
            for m in list(channel.members):
                m.conn.send(out)
            self.state.part(target, channel)

    def irc_INVITE(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if not msg.params:
            # the channels this client is invited to (RPL_INVITELIST, RPL_ENDOFINVITELIST)
            for invited in sorted(user.invites, key=lambda c: self.state.fold(c.name)):
                self.numeric("336", invited.name)
            self.numeric("337", "End of /INVITE list")
            return
        if len(msg.params) < 2:
            self.numeric("461", "INVITE", "Not enough parameters")
            return
        nick, name = msg.params[0], msg.params[1]
        target = self.state.find_user(nick)
        if target is None or not target.registered:
            self.numeric("401", nick, "No such nick/channel")
            return
        channel = self.state.find_channel(name)
        if channel is None:
            self.numeric("403", name, "No such channel")
            return
        if user not in channel.members:
            self.numeric("442", channel.name, "You're not on that channel")
            return
        if "i" in channel.modes and not channel.is_op(user):
            self.numeric("482", channel.name, "You're not channel operator")
            return
        if target in channel.members:
            self.numeric("443", target.nick, channel.name, "is already on channel")
            return
        self.state.invite(target, channel)
        self.numeric("341", target.nick, channel.name)
        if target.away is not None:  # RFC 2812 3.2.7 lists RPL_AWAY (InspIRCd, ngIRCd)
            self.numeric("301", target.nick, target.away)
        out = Message("INVITE", [target.nick, channel.name], source=user.source)
        target.conn.send(out)
        for m in list(channel.members):
            if m is not user and channel.is_op(m) and "invite-notify" in m.conn.caps:
                m.conn.send(out)

    # ---- messages

    def irc_PRIVMSG(self, msg: Message) -> None:
        self._message(msg, notice=False)

    def irc_NOTICE(self, msg: Message) -> None:
        self._message(msg, notice=True)

    def _message(self, msg: Message, notice: bool) -> None:
        user = self.user
        assert user is not None
        command = msg.command
        # NOTICE is never answered with an error (RFC 2812 §3.3.2)
        numeric = self._no_reply if notice else self.numeric
        if not msg.params or not msg.params[0]:
            numeric("411", f"No recipient given ({command})")
            return
        if len(msg.params) < 2 or not msg.params[1]:
            numeric("412", "No text to send")
            return
        text = msg.params[1]
        tags = self._outgoing_tags(msg, user)
        # a target named twice (in any case) gets the message once
        targets = list({self.state.fold(t): t for t in msg.params[0].split(",")}.values())
        # what is relayed fits in 512 bytes with the sender's source in front of it
        room = _room(f":{user.source} {command} {max(targets, key=utf8_len)} :")
        text = _truncate(text, room)
        if len(targets) > 4:
            numeric("407", msg.params[0], "Too many recipients")
            return
        state = self.state
        for target in targets:
            if not target:
                continue
            status = ""
            name = target
            while name[:1] in ("@", "+") and len(name) > 1:
                status += name[0]
                name = name[1:]
            if name.startswith("#"):
                channel = state.find_channel(name)
                if channel is None:
                    numeric("403", name, "No such channel")
                    continue
                if not state.may_speak(user, channel):
                    numeric("404", channel.name, "Cannot send to channel")
                    continue
                out = Message(command, [status + channel.name, text], source=user.source,
                              tags=tags)
                if status:
                    self._broadcast([m for m in channel.members if m is not user
                                     and self._status_ok(channel, m, status)], out)
                else:
                    self._broadcast([m for m in channel.members if m is not user], out)
                if "echo-message" in self.caps:
                    self.send(out)
                continue
            other = state.find_user(target)
            if other is None or not other.registered:
                numeric("401", target, "No such nick/channel")
                continue
            out = Message(command, [other.nick, text], source=user.source, tags=tags)
            if other is user:
                self._write(out)  # what one sends oneself is delivered unlabeled
            else:
                other.conn.send(out)
            if "echo-message" in self.caps:
                self.send(out)
            if not notice and other.away is not None:
                self.numeric("301", other.nick, other.away)

    def irc_TAGMSG(self, msg: Message) -> None:
        if "message-tags" not in self.caps:
            self.numeric("421", "TAGMSG", "Unknown command")
            return
        user = self.user
        assert user is not None
        if not msg.params or not msg.params[0]:
            self.numeric("411", "No recipient given (TAGMSG)")
            return
        tags = self._outgoing_tags(msg, user)
        target = msg.params[0]
        channel = self.state.find_channel(target) if target.startswith("#") else None
        if target.startswith("#"):
            if channel is None:
                self.numeric("403", target, "No such channel")
                return
            if not self.state.may_speak(user, channel):
                self.numeric("404", channel.name, "Cannot send to channel")
                return
            out = Message("TAGMSG", [channel.name], source=user.source, tags=tags)
            for member in list(channel.members):
                if member is not user and "message-tags" in member.conn.caps:
                    member.conn.send(out)
        else:
            other = self.state.find_user(target)
            if other is None or not other.registered:
                self.numeric("401", target, "No such nick/channel")
                return
            out = Message("TAGMSG", [other.nick], source=user.source, tags=tags)
            if "message-tags" in other.conn.caps:
                if other is user:
                    self._write(out)
                else:
                    other.conn.send(out)
        if "echo-message" in self.caps:
            self.send(out)

    def _no_reply(self, code: str, *params: str) -> None:
        pass

    def _numeric_list(self, code: str, middle: list[str], items: Iterable[str],
                      sep: str = " ") -> None:
        """Numeric ``code`` with ``middle``, then ``items`` joined by ``sep`` as its last
        parameter: as many lines as it takes for each to fit 512 bytes (none without
        items). A list is split this way, never cut (e.g. RPL_WHOISCHANNELS, RPL_MONLIST)."""
        budget = _room(f":{self.factory.name} {code} {self.nick or '*'} ",
                       *[f"{m} " for m in middle], ":")
        chunk: list[str] = []
        size = 0
        for item in items:
            n = utf8_len(item)
            if chunk and size + len(sep) + n > budget:
                self.numeric(code, *middle, sep.join(chunk))
                chunk, size = [], 0
            size += n + (len(sep) if chunk else 0)
            chunk.append(item)
        if chunk:
            self.numeric(code, *middle, sep.join(chunk))

    def _broadcast(self, users: Iterable[User], msg: Message,
                   alt: Message | None = None, alt_cap: str = "") -> None:
        """Send ``msg`` to each of ``users`` (``alt`` instead to those with capability
        ``alt_cap``): what :meth:`send` does for each, with the work per member kept to a
        look-up, as one line reaches the whole channel."""
        batch = self.factory._batch
        encoded: dict[frozenset[str], bytes] = {}
        stamp = ""
        for user in users:
            conn = user.conn
            if conn._closed:
                continue
            if batch is None or conn._capture is not None:
                conn.send(alt if alt is not None and alt_cap in conn.caps else msg)
                continue
            key = conn._caps_key
            data = encoded.get(key)
            if data is None:
                out = alt if alt is not None and alt_cap in conn.caps else msg
                if not stamp and "server-time" in conn.caps:
                    stamp = _now_tag()
                data = conn._encode(out, stamp, None)
                if len(data) > 512:
                    data = _fit(data)
                encoded[key] = data
            held = batch.get(conn)
            if held is None:
                batch[conn] = [data]
            else:
                held.append(data)

    def change_host(self, username: str, hostname: str) -> None:
        """Give this user a new username and visible host (a cloak, a virtual host: for
        the application serving IRC; no command here changes a host). Those sharing a
        channel with it, and itself, are told ``CHGHOST`` when they have the chghost
        capability; the others see it quit and join again, with its channel modes
        (IRCv3 chghost)."""
        user = self.user
        if user is None or not self.registered:
            raise ValueError("change_host: the client has not registered")
        old = user.source
        if (user.username, user.hostname) == (username, hostname):
            return
        self.state.set_host(user, username, hostname)
        change = Message("CHGHOST", [username, hostname], source=old)
        if "chghost" in self.caps:
            self.send(change)
        quit_ = Message("QUIT", ["Changing host"], source=old)
        others = self.state.neighbours(user)
        told = [o for o in others if "chghost" in o.conn.caps]
        self._broadcast(told, change)
        rejoin = [o for o in others if "chghost" not in o.conn.caps]
        self._broadcast(rejoin, quit_)
        name = self.factory.name
        for channel in user.channels.values():
            members = [m for m in channel.members if m in others and m not in told]
            join = Message("JOIN", [channel.name], source=user.source)
            extended = Message("JOIN", [channel.name, user.account or "*", user.realname],
                               source=user.source)
            self._broadcast(members, join, extended, "extended-join")
            modes = channel.members[user]
            if modes:
                self._broadcast(members, Message(
                    "MODE", [channel.name, "+" + modes, *[user.nick] * len(modes)],
                    source=name))
            if user.away is not None:
                self._broadcast([m for m in members if "away-notify" in m.conn.caps],
                                Message("AWAY", [user.away], source=user.source))

    def _outgoing_tags(self, msg: Message, user: User) -> dict[str, str]:
        """The tags a message from ``user`` goes out with: the client-only tags it gave,
        a msgid, its account and the bot tag (each kept only for those whose capabilities
        ask for it)."""
        tags = {k: v for k, v in msg.tags.items() if k.startswith("+")}
        tags["msgid"] = self.factory.new_id()
        if user.account is not None:
            tags["account"] = user.account
        if "B" in user.modes:
            tags["bot"] = ""
        return tags

    @staticmethod
    def _status_ok(channel: Channel, member: User, status: str) -> bool:
        # '@#chan' reaches operators; '+#chan' voiced users and operators
        if channel.is_op(member):
            return True
        return "@" not in status and channel.is_voiced(member)

    # ---- modes

    def irc_MODE(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if not msg.params or not msg.params[0]:
            self.numeric("461", "MODE", "Not enough parameters")
            return
        target = msg.params[0]
        if target.startswith("#"):
            self._channel_mode(user, target, msg.params[1:])
        else:
            self._user_mode(user, target, msg.params[1:])

    def _channel_mode(self, user: User, name: str, params: list[str]) -> None:
        state = self.state
        channel = state.find_channel(name)
        if channel is None:
            self.numeric("403", name, "No such channel")
            return
        if not params:
            modes, args = channel.mode_string(show_key=user in channel.members)
            self.numeric("324", channel.name, modes, *args)
            self.numeric("329", channel.name, str(channel.created))
            return
        modestring, args = params[0], params[1:]
        # a list asked for (MODE #c b) needs no operator
        only_lists = all(c in "+beI" for c in modestring) and not args
        if not only_lists and not channel.is_op(user):
            if user not in channel.members:
                self.numeric("442", channel.name, "You're not on that channel")
            else:
                self.numeric("482", channel.name, "You're not channel operator")
            return
        changes, errors, lists = state.apply_channel_modes(user, channel, modestring, args)
        for error in errors:
            self.numeric(error.numeric, *error.params)
        for mode in lists:
            # a secret or private channel's lists only to its members (as InspIRCd: the
            # end of the list alone to the others)
            self._mode_list(channel, mode, shown=channel.public(user))
        if changes:
            out = Message("MODE", [channel.name, *format_mode_changes(changes)],
                          source=user.source)
            for m in list(channel.members):
                m.conn.send(out)

    _LIST_NUMERICS = {
        "b": ("367", "368", "End of channel ban list"),
        "e": ("348", "349", "End of channel exception list"),
        "I": ("346", "347", "End of Channel Invite Exception List"),
    }

    def _mode_list(self, channel: Channel, mode: str, shown: bool = True) -> None:
        entry, end, text = self._LIST_NUMERICS[mode]
        for mask, who, when in channel.lists[mode] if shown else ():
            if mode == "b":  # RPL_BANLIST has who set it and when; the others the mask only
                self.numeric(entry, channel.name, mask, who, str(when))
            else:
                self.numeric(entry, channel.name, mask)
        self.numeric(end, channel.name, text)

    def _user_mode(self, user: User, nick: str, params: list[str]) -> None:
        target = self.state.find_user(nick)
        if target is None:
            self.numeric("401", nick, "No such nick/channel")
            return
        if target is not user:
            self.numeric("502", "Cant change mode for other users")
            return
        if not params:
            self.numeric("221", "+" + "".join(sorted(user.modes)))
            return
        sign = "+"
        changed: list[tuple[str, str]] = []
        unknown = False
        for c in params[0]:
            if c in "+-":
                sign = c
            elif c in "iwB":
                if self.state.set_user_mode(user, c, sign == "+"):
                    changed.append((sign, c))
            elif c == "o":
                if sign == "-" and self.state.set_user_mode(user, "o", False):
                    changed.append(("-", "o"))
            else:
                unknown = True
        if unknown:
            self.numeric("501", "Unknown MODE flag")
        if changed:
            out, last = "", ""
            for s, c in changed:
                out += (s if s != last else "") + c
                last = s
            self.send(Message("MODE", [user.nick, out], source=user.source))

    # ---- SASL (PLAIN, against ``accounts``)

    def irc_AUTHENTICATE(self, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.numeric("461", "AUTHENTICATE", "Not enough parameters")
            return
        if "sasl" not in self.caps:
            self.numeric("904", "SASL authentication failed")
            return
        if self.account is not None:
            self.numeric("907", "You have already authenticated using SASL")
            return
        arg = msg.params[0]
        if arg == "*":
            self._sasl = None
            self.numeric("906", "SASL authentication aborted")
            return
        if self._sasl is None:
            if arg.upper() != "PLAIN":
                self.numeric("908", "PLAIN", "are available SASL mechanisms")
                self.numeric("904", "SASL authentication failed")
                return
            self._sasl = ""
            self.send(Message("AUTHENTICATE", ["+"]))
            return
        if len(arg) > 400:
            self._sasl = None
            self.numeric("905", "SASL message too long")
            return
        if arg != "+":
            self._sasl += arg
        if len(arg) == 400:
            if len(self._sasl) > 4096:
                self._sasl = None
                self.numeric("905", "SASL message too long")
            return  # more to come
        payload, self._sasl = self._sasl, None
        account = self._sasl_plain(payload)
        if account is None:
            self.numeric("904", "SASL authentication failed")
            return
        self.account = account
        user = self.user
        source = user.source if user is not None and self.registered else (
            f"{self.nick or '*'}!{self.username or '*'}@{self.host}")
        self.numeric("900", source, account, f"You are now logged in as {account}")
        self.numeric("903", "SASL authentication successful")
        if user is not None:
            user.account = account
            if self.registered:
                out = Message("ACCOUNT", [account], source=user.source)
                for other in self.state.neighbours(user):
                    if "account-notify" in other.conn.caps:
                        other.conn.send(out)

    def _sasl_plain(self, payload: str) -> str | None:
        """The account a PLAIN payload (authzid NUL authcid NUL password) logs in to."""
        try:
            raw = base64.b64decode(payload, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        parts = raw.split("\0")
        if len(parts) != 3:
            return None
        authzid, authcid, password = parts
        expected = self.factory.accounts.get(authcid)
        if expected is None or authzid not in ("", authcid):
            return None
        if not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return authcid

    # ---- MONITOR

    def irc_MONITOR(self, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.numeric("461", "MONITOR", "Not enough parameters")
            return
        sub = msg.params[0]
        targets = [t for t in (msg.params[1] if len(msg.params) > 1 else "").split(",") if t]
        state = self.state
        monitors = self.factory.monitors
        if sub == "+":
            if len(msg.params) < 2:
                self.numeric("461", "MONITOR", "Not enough parameters")
                return
            online: list[str] = []
            offline: list[str] = []
            for i, nick in enumerate(targets):
                key = state.fold(nick)
                if key not in self.monitoring and len(self.monitoring) >= 100:
                    self.numeric("734", "100", ",".join(targets[i:]), "Monitor list is full.")
                    break
                self.monitoring[key] = nick
                monitors.setdefault(key, set()).add(self)
                user = state.find_user(nick)
                if user is not None and user.registered:
                    online.append(user.source)
                else:
                    offline.append(nick)
            self._numeric_list("730", [], online, ",")
            self._numeric_list("731", [], offline, ",")
        elif sub == "-":
            for nick in targets:
                key = state.fold(nick)
                if self.monitoring.pop(key, None) is not None:
                    watchers = monitors.get(key)
                    if watchers is not None:
                        watchers.discard(self)
                        if not watchers:
                            del monitors[key]
        elif sub.upper() == "C":
            for key in list(self.monitoring):
                watchers = monitors.get(key)
                if watchers is not None:
                    watchers.discard(self)
                    if not watchers:
                        del monitors[key]
            self.monitoring = {}
        elif sub.upper() == "L":
            self._numeric_list("732", [], self.monitoring.values(), ",")
            self.numeric("733", "End of MONITOR list")
        elif sub.upper() == "S":
            online, offline = [], []
            for nick in self.monitoring.values():
                user = state.find_user(nick)
                if user is not None and user.registered:
                    online.append(user.source)
                else:
                    offline.append(nick)
            self._numeric_list("730", [], online, ",")
            self._numeric_list("731", [], offline, ",")

    # ---- SETNAME

    def irc_SETNAME(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if not msg.params or not msg.params[0]:
            self.numeric("461", "SETNAME", "Not enough parameters")
            return
        realname = msg.params[0]
        if utf8_len(realname) > 390:
            self.send(Message("FAIL", ["SETNAME", "INVALID_REALNAME",
                                       "Realname is not valid"], source=self.factory.name))
            return
        user.realname = realname
        self.realname = realname
        out = Message("SETNAME", [realname], source=user.source)
        if "setname" in self.caps:
            self.send(out)
        for other in self.state.neighbours(user):
            if "setname" in other.conn.caps:
                other.conn.send(out)

    # ---- operators

    def irc_OPER(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if len(msg.params) < 2:
            self.numeric("461", "OPER", "Not enough parameters")
            return
        name, password = msg.params[0], msg.params[1]
        expected = self.factory.opers.get(name)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            self.numeric("464", "Password incorrect")
            return
        self.state.set_user_mode(user, "o", True)
        self.numeric("381", "You are now an IRC operator")
        self.send(Message("MODE", [user.nick, "+o"], source=user.source))

    def irc_KILL(self, msg: Message) -> None:
        user = self.user
        assert user is not None
        if len(msg.params) < 2:
            self.numeric("461", "KILL", "Not enough parameters")
            return
        if not user.oper:
            self.numeric("481", "Permission Denied- You're not an IRC operator")
            return
        target = self.state.find_user(msg.params[0])
        if target is None or not target.registered:
            self.numeric("401", msg.params[0], "No such nick/channel")
            return
        comment = _truncate(msg.params[1], min(  # what is relayed fits 512 bytes
            _room(f":{user.source} KILL {target.nick} :"),
            _room(f":{target.source} QUIT :Killed ({user.nick} ())"),
            _room(f"ERROR :Closing Link: {target.conn.host} (Killed ({user.nick} ()))")))
        reason = f"Killed ({user.nick} ({comment}))"
        # Modern IRC: the victim gets KILL from the operator, its own QUIT, then ERROR
        victim = target.conn
        victim.send(Message("KILL", [target.nick, comment], source=user.source))
        victim.send(Message("QUIT", [reason], source=target.source))
        victim.close(reason)


# ---- serve


def serve(
    port: int = 0,
    interface: str = "127.0.0.1",
    name: str = "irc.local",
    network: str = "netshell",
    motd: str | Iterable[str] | None = None,
    password: str | None = None,
    opers: Mapping[str, str] | None = None,
    accounts: Mapping[str, str] | None = None,
    tls: Any = None,
    reactor: Any = None,
    *,
    casemapping: str = "rfc1459",
    ping_interval: float = 120.0,
    ping_timeout: float = 60.0,
    registration_timeout: float = 60.0,
    max_connections: int = 10000,
    max_connections_per_ip: int = 64,
    flood_burst: float = 20.0,
    flood_rate: float = 2.0,
    flood_queue: int = 200,
    sendq: int = 1 << 20,
    sts_duration: float = 2592000,
    sts_port: int = 0,
    clock: Any = None,
    backlog: int = 1024,
) -> Listener:
    """Serve IRC on ``interface:port`` (0: a free port); returns the Listener.

    ``name`` is the server's name (the source of its numerics), ``network`` the NETWORK it
    announces, ``motd`` the message of the day (a string or lines; None: 422), ``password``
    the connection password PASS must give (464 and ERROR otherwise), ``opers`` maps OPER
    names to passwords, ``accounts`` maps account names to passwords (for SASL, to come).
    ``tls`` is a server context (``tls.server_context(...)``): the listener speaks TLS, and
    its connections are offered the ``sts`` capability with ``sts_duration`` (IRCv3 STS); a
    plain listener given ``sts_port`` (where a TLS listener serves) offers ``sts=port=``.
    A client idle for ``ping_interval`` seconds is sent a PING, and closed when it has not
    answered ``ping_timeout`` seconds later; one not registered after
    ``registration_timeout`` seconds is closed. Beyond ``max_connections``, or
    ``max_connections_per_ip`` from one address (64; 0: no limit; loopback addresses, the
    machine's own clients, are not limited), a connection is told ERROR and closed at
    once (ngIRCd allows 5 by default, InspIRCd's example configuration 3; 64 lets a
    household or an office behind one address on). A client may send ``flood_burst`` commands
    ahead of ``flood_rate`` per second; what it sends beyond waits until it has earned it,
    and more than ``flood_queue`` lines waiting close it (Excess Flood; burst 0: no limit).
    A client that does not read what it is sent is dropped once more than ``sendq`` bytes
    wait for it (SendQ exceeded, as InspIRCd's hardsendq and Ergo's sendq; 0: no limit).
    Raises OSError when the port is taken.

    >>> from protocols import irc
    >>> listener = irc.serve(motd="hello")
    >>> listener.factory.motd
    ['hello']
    >>> _ = listener.close()
    """
    reactor = reactor if reactor is not None else get_reactor()
    factory = IRCServerFactory(
        name, network, motd, password, opers, accounts,
        casemapping=casemapping, ping_interval=ping_interval, ping_timeout=ping_timeout,
        registration_timeout=registration_timeout, max_connections=max_connections,
        max_connections_per_ip=max_connections_per_ip,
        flood_burst=flood_burst, flood_rate=flood_rate, flood_queue=flood_queue,
        sendq=sendq, reactor=reactor, clock=clock,
        sts_duration=sts_duration if tls is not None else 0,
        sts_port=sts_port if tls is None else 0,
    )
    if tls is not None:
        return reactor.listen_tls(port, factory, tls, interface=interface, backlog=backlog)
    return reactor.listen_tcp(port, factory, interface=interface, backlog=backlog)

