"""The IRC client: registration, state, requests answered by numerics, and event hooks.

``client = await irc.connect("irc.example.org", 6667, "alice")`` answers with a registered
:class:`IRCClient` (after 001 and the end of the MOTD). What it does, as the "Modern IRC
Client Protocol" document and IRCv3 describe:

- Registration: ``CAP LS 302`` (the capabilities the server offers among ``caps`` are
  requested: server-time, message-tags, multi-prefix, echo-message, batch, away-notify,
  account-tag; ``sasl`` when ``sasl=(user, password)`` is given, then SASL PLAIN),
  ``PASS``, ``NICK``, ``USER``, ``CAP END``. A nick that is taken (433) or refused
  (432, 436) during registration: the next one is tried (``nick_``, ``nick__``...).
  ``connect`` fails with :class:`NickInUse`, :class:`PasswordMismatch` (464),
  :class:`SASLFailed`, :class:`IRCConnectionClosed` (an ERROR, a closed connection),
  :class:`IRCTimeoutError`, or netshell's ConnectError (refused, no such host).
- ISUPPORT (005) is read and used: PREFIX (member prefixes, multi-prefix), CASEMAPPING
  (names compared folded: rfc1459, strict-rfc1459, ascii; an unknown one as rfc1459),
  CHANTYPES (what is a channel), CHANMODES (which modes take a parameter), TARGMAX
  (channels per JOIN), WHOX, MONITOR. A line with any number of parameters is read.
- PING is answered with PONG at once (ahead of anything the throttle holds back).
- Methods: ``join``, ``part``, ``topic``, ``kick``, ``mode``, ``nick``, ``names``,
  ``whois``, ``who``, ``ctcp``, ``monitor``, ``monitor_list`` answer with Deferreds built
  from the server's replies; their errors (401, 403, 442, 482...) errback with
  :class:`IRCCommandError`, which carries the numeric. ``join("#a,#b")`` (or a list)
  joins several and gives the list of Channels; ``who`` uses WHOX when the server has it
  (each entry with its ``account``); ``monitor`` and ``unmonitor`` are IRCv3 MONITOR.
  ``msg``, ``notice``, ``action`` and ``quote`` send (long texts are split to fit the
  512-byte line); ``quit`` closes.
- Events: override (or assign on the instance) the hooks ``on_message``, ``on_notice``,
  ``on_action``, ``on_ctcp``, ``on_ctcp_reply``, ``on_join``, ``on_part``, ``on_kick``,
  ``on_quit``, ``on_nick``, ``on_topic``, ``on_mode``, ``on_invite``, ``on_away``,
  ``on_batch``, ``on_online``, ``on_offline``, ``on_monitor_full``, ``on_registered``,
  ``on_disconnected``, ``on_reconnect_failed``, ``on_raw``; each gets
  one :class:`Event` (its message with its tags, and its ``time``: the server's when
  server-time is on).
  ``add_listener(kind, f)`` adds more; ``wait_for(kind, match)`` is a Deferred of the next
  such event. Each message, notice, action, join, part, quit, kick, nick and topic is
  also logged at INFO to ``netshell.irc.client`` as one line (:meth:`IRCClient.describe`:
  ``alice: #netshell <bob> hello``), which the netsh prompt shows above its line.
- CTCP VERSION, PING, TIME and CLIENTINFO are answered; ACTION is sent and received.
- Outgoing lines pass a token bucket (:class:`Throttle`: ``burst`` lines at once, then
  ``rate`` a second) on the reactor's clock, so a server's flood control never kills us.
- State: ``channels`` (name folded -> :class:`Channel`, with ``members``: nick ->
  prefixes, and ``topic``), kept from JOIN, PART, KICK, QUIT, NICK, MODE, 353 and TOPIC.
- ``reconnect=True``: a connection lost after registration is made again with back-off
  (1 s doubling to 60 s), registering again and joining the channels it was in (each
  with its ``key``, see :class:`Channel`).

Example (no server needed)::

    >>> c = IRCClient("alice")
    >>> c.is_channel("#netshell"), c.is_channel("bob")
    (True, False)
    >>> split_prefixes("@+bob", "@+")
    ('@+', 'bob')
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import netshell as ns
from netshell.defer import Deferred
from netshell.failure import Failure
from netshell.reactor import get_reactor
from protocols.irc.core import LineReader, LineTooLong, Message, casefold, parse

__all__ = [
    "DEFAULT_CAPS",
    "Batch",
    "Channel",
    "Event",
    "IRCClient",
    "IRCCommandError",
    "IRCConnectionClosed",
    "IRCError",
    "IRCNotSupported",
    "IRCTimeoutError",
    "ISupport",
    "MonitorListFull",
    "NickInUse",
    "PasswordMismatch",
    "SASLFailed",
    "Throttle",
    "WhoEntry",
    "WhoisResult",
    "connect",
    "split_prefixes",
]

log = logging.getLogger("netshell.irc.client")

T = TypeVar("T")
_P = ParamSpec("_P")
_R = TypeVar("_R")

#: the capabilities requested when the server offers them (``sasl`` is added when asked)
DEFAULT_CAPS = (
    "server-time",
    "message-tags",
    "multi-prefix",
    "echo-message",
    "batch",
    "away-notify",
    "account-tag",
)

VERSION = "netshell IRC client"


# ---- errors


class IRCError(Exception):
    """The base of the IRC client's errors."""


class IRCCommandError(IRCError):
    """The server refused a command: ``numeric`` (e.g. ``"401"``), ``message`` (the whole
    reply as a :class:`~protocols.irc.core.Message`, or None) and ``text`` (its reason)."""

    def __init__(self, numeric: str, text: str, message: Message | None = None) -> None:
        super().__init__(f"{numeric} {text}")
        self.numeric = numeric
        self.text = text
        self.message = message


class NickInUse(IRCCommandError):
    """Registration failed: every nick tried was taken or refused (433, 432, 436)."""


class PasswordMismatch(IRCCommandError):
    """The server refused the connection password (464)."""


class SASLFailed(IRCCommandError):
    """SASL authentication failed (902, 904, 905, 906, 908, or the server lacks SASL)."""


class MonitorListFull(IRCCommandError):
    """The server's MONITOR list is full (734): ``limit`` is its size, ``nicks`` those
    not added."""

    def __init__(self, text: str, message: Message | None, limit: int | None,
                 nicks: list[str]) -> None:
        super().__init__("734", text, message)
        self.limit = limit
        self.nicks = nicks


class IRCNotSupported(IRCError):
    """The server does not offer what was asked (MONITOR without MONITOR in its 005)."""


class IRCConnectionClosed(IRCError, ns.ConnectionClosed):
    """The connection ended (``ERROR`` from the server, or lost): what waited on it fails."""


class IRCTimeoutError(IRCError, ns.TimeoutError):
    """Registration or a reply did not come within the timeout."""


# ---- small pieces


def split_prefixes(name: str, symbols: str) -> tuple[str, str]:
    """``name`` as given in a NAMES reply split into (its prefix symbols, the nick)."""
    i = 0
    while i < len(name) and name[i] in symbols:
        i += 1
    return name[:i], name[i:]


#: an escaped character in an ISUPPORT value (Modern IRC: \x20 for a space, \x5C, \x3D)
_ISUPPORT_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")


class ISupport:
    """What the server said in its 005 (RPL_ISUPPORT) lines: ``tokens`` (name -> value,
    "" for a token with none), and the parts the client uses, read from them."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    def update(self, params: Sequence[str]) -> None:
        for token in params:
            if token.startswith("-"):
                self.tokens.pop(token[1:], None)
                continue
            key, _, value = token.partition("=")
            if "\\x" in value:
                value = _ISUPPORT_ESCAPE.sub(lambda m: chr(int(m[1], 16)), value)
            self.tokens[key] = value

    @property
    def casemapping(self) -> str:
        """CASEMAPPING as the server said it (rfc1459 when it said none); names are
        folded by it, and by rfc1459 when it is one :func:`casefold` does not know."""
        return self.tokens.get("CASEMAPPING") or "rfc1459"

    @property
    def chantypes(self) -> str:
        return self.tokens.get("CHANTYPES", "#&")

    @property
    def prefix(self) -> list[tuple[str, str]]:
        """(mode, symbol) pairs, highest first (``PREFIX=(ov)@+``: ``[("o", "@"), ("v", "+")]``)."""
        value = self.tokens.get("PREFIX", "(ov)@+")
        if not value.startswith("(") or ")" not in value:
            return []
        modes, _, symbols = value[1:].partition(")")
        return list(zip(modes, symbols, strict=False))

    @property
    def prefix_symbols(self) -> str:
        return "".join(symbol for _, symbol in self.prefix)

    @property
    def chanmodes(self) -> tuple[str, str, str, str]:
        """CHANMODES' four groups: list modes, always a parameter, a parameter when set,
        never a parameter."""
        parts = (self.tokens.get("CHANMODES") or "beI,k,l,imnpst").split(",")
        parts += [""] * (4 - len(parts))
        return parts[0], parts[1], parts[2], parts[3]

    @property
    def network(self) -> str | None:
        return self.tokens.get("NETWORK")

    @property
    def whox(self) -> bool:
        """Whether the server speaks WHOX (``WHO mask %fields,token``)."""
        return "WHOX" in self.tokens

    @property
    def monitor(self) -> int | None:
        """MONITOR's limit: None without MONITOR, 0 for no limit given."""
        if "MONITOR" not in self.tokens:
            return None
        value = self.tokens["MONITOR"]
        return int(value) if value.isdigit() else 0

    def targmax(self, command: str) -> int | None:
        """How many targets ``command`` takes in one message (TARGMAX), None: no limit
        said."""
        for item in self.tokens.get("TARGMAX", "").split(","):
            name, _, value = item.partition(":")
            if name.upper() == command.upper():
                return int(value) if value.isdigit() else None
        return None


@dataclass
class Channel:
    """A channel the client is in: ``name``, ``members`` (nick -> its prefix symbols, e.g.
    ``"@"``; nicks as the server spells them), ``topic`` and ``topic_by``, and ``key``:
    the channel's key as the client knows it (the one it joined with, or one a MODE +k
    or a 324 told since; None when none), which a rejoin after a reconnect gives."""

    name: str
    members: dict[str, str] = field(default_factory=dict)
    topic: str | None = None
    topic_by: str | None = None
    key: str | None = None

    def __repr__(self) -> str:
        n = len(self.members)
        return f"<Channel {self.name} {n} member{'' if n == 1 else 's'}>"


@dataclass
class WhoisResult:
    """What WHOIS told about ``nick`` (311, 312, 319, 317, 330, 313, 301; ended by 318)."""

    nick: str
    user: str | None = None
    host: str | None = None
    realname: str | None = None
    server: str | None = None
    server_info: str | None = None
    channels: list[str] = field(default_factory=list)
    idle: int | None = None
    account: str | None = None
    operator: bool = False
    away: str | None = None


@dataclass
class WhoEntry:
    """One 352 (RPL_WHOREPLY) line, or one 354 (WHOX) line: then ``account`` is the
    account the user is logged in to (None when not)."""

    channel: str
    user: str
    host: str
    server: str
    nick: str
    flags: str
    hops: int
    realname: str
    account: str | None = None


@dataclass
class Event:
    """Something the server told: ``kind`` ("message", "join"...), the ``message`` (with
    its ``tags``), who sent it (``source``, ``nick``), ``target`` (a channel or our nick),
    ``text``, and ``time`` (the server-time tag's, else when it arrived, UTC).
    Per kind: ``channel``; ``new_nick`` (nick); ``victim`` (kick); ``ctcp`` and ``text``
    (the CTCP command and its argument); ``own`` is true for what we sent ourselves
    (echo-message, our own join...). A message sent to a channel's members of a status
    only (STATUSMSG, ``PRIVMSG @#chan``) has ``target`` as received (``"@#chan"``),
    ``channel`` the channel (``"#chan"``) and ``status_prefix`` the prefix (``"@"``;
    None for any other message); :meth:`reply` answers those members only."""

    kind: str
    message: Message
    time: datetime
    nick: str | None = None
    target: str | None = None
    text: str | None = None
    channel: str | None = None
    new_nick: str | None = None
    victim: str | None = None
    ctcp: str | None = None
    own: bool = False
    client: IRCClient | None = field(default=None, repr=False)
    #: for a "batch" event: the batch that just ended, with its messages
    batch_done: Batch | None = None
    #: the status prefix of a STATUSMSG target ("@" of "@#chan"), else None
    status_prefix: str | None = None

    @property
    def tags(self) -> dict[str, str]:
        return self.message.tags

    @property
    def source(self) -> str | None:
        return self.message.source

    @property
    def account(self) -> str | None:
        """The sender's account (IRCv3 account-tag), if the server said it."""
        return self.message.tags.get("account")

    @property
    def msgid(self) -> str | None:
        """The message's id (IRCv3 msgid), if the server gave one."""
        return self.message.tags.get("msgid")

    @property
    def batch(self) -> Batch | None:
        """The batch this message came in (IRCv3 batch), if any and still known."""
        ref = self.message.tags.get("batch")
        if ref is None or self.client is None:
            return None
        return self.client.batches.get(ref)

    @property
    def reply_to(self) -> str | None:
        """Where an answer goes: the channel (to the same members for a STATUSMSG:
        ``"@#chan"``), else the sender."""
        if self.channel:
            return (self.status_prefix or "") + self.channel
        return self.nick

    def reply(self, text: str) -> None:
        """Answer where the event came from (:attr:`reply_to`): the channel, else the
        sender; a message to a channel's ops (``@#chan``) is answered to its ops."""
        assert self.client is not None
        to = self.reply_to
        if to:
            self.client.msg(to, text)


@dataclass
class Batch:
    """An IRCv3 batch: its ``ref``, ``type`` (``netsplit``, ``chathistory``...),
    ``params`` and the ``messages`` that came in it (each also given as its own event)."""

    ref: str
    type: str
    params: list[str]
    messages: list[Message] = field(default_factory=list)
    outer: str | None = None


def server_time(message: Message) -> datetime:
    """The message's ``time`` tag (IRCv3 server-time), else now, in UTC."""
    raw = message.tags.get("time")
    if raw:
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)


class Throttle:
    """A token bucket for outgoing lines: ``burst`` lines go at once, then ``rate`` lines
    a second; the rest wait in order. ``clock`` is the reactor (or a testing Clock).
    ``rate=None`` lets everything through."""

    def __init__(
        self,
        send: Callable[[bytes], Any],
        clock: Any,
        rate: float | None = 1.0,
        burst: int = 8,
    ) -> None:
        self.send = send
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = clock.seconds()
        self.queue: list[bytes] = []
        self.timer: Any = None

    def _refill(self) -> None:
        now = self.clock.seconds()
        if self.rate is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def write(self, line: bytes, urgent: bool = False) -> None:
        """Send ``line`` now if a token is left, else queue it (``urgent``: ahead of the
        queue, and sent even without a token: for PONG)."""
        if self.rate is None:
            self.send(line)
            return
        self._refill()
        if urgent:
            self.tokens -= 1
            self.send(line)
            return
        if not self.queue and self.tokens >= 1:
            self.tokens -= 1
            self.send(line)
            return
        self.queue.append(line)
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is not None or not self.queue or self.rate is None:
            return
        wait = max(0.0, (1 - self.tokens) / self.rate)
        self.timer = self.clock.call_later(wait, self._drain)

    def _drain(self) -> None:
        self.timer = None
        self._refill()
        while self.queue and self.tokens >= 1:
            self.tokens -= 1
            self.send(self.queue.pop(0))
        self._schedule()

    def clear(self) -> None:
        """Drop what waits (the connection is gone)."""
        self.queue.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    @property
    def pending(self) -> int:
        return len(self.queue)


# ---- waiting for replies


#: what _Pending.take says of a message it kept, but that did not end it (no later
#: request sees that message: replies come in the order of the requests)
USED = "used"
#: what _Pending.feed says when it is finished without the message: the request is
#: dropped and the message goes on to the next requests
GONE = "gone"


class _Pending:
    """A request waiting for the server's reply: it looks at each message and says
    whether it is done with it (True), kept it (USED) or not (False). ``key`` is the
    folded name the replies carry."""

    #: numerics that fail the request, when their second parameter is the key
    errors: frozenset[str] = frozenset()
    #: the kind of request, for _answer_error's fallbacks
    kind = ""

    def __init__(self, client: IRCClient, key: str, also: Iterable[str] = ()) -> None:
        self.client = client
        self.key = key
        #: more folded names an error may carry (KICK's nick)
        self.also = frozenset(also)
        self.d: Deferred[Any] = Deferred()
        #: the Deferreds of the same request made again while this one waits: each
        #: gets what this one gets (see IRCClient._watch)
        self.followers: list[Deferred[Any]] = []

    def follow(self) -> Deferred[Any]:
        """A Deferred that fires as this request's does (a second, identical request)."""
        d: Deferred[Any] = Deferred()
        self.followers.append(d)
        return d

    def _fan_out(self, result: Any) -> Any:
        followers, self.followers = self.followers, []
        for d in followers:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
        return result

    def same(self, name: str) -> bool:
        return self.client.fold(name) == self.key

    def feed(self, msg: Message) -> bool | str:
        """Look at ``msg``; True when the request is finished (fired or failed)."""
        if msg.command in self.errors and len(msg.params) >= 2 and (
            self.same(msg.params[1]) or self.client.fold(msg.params[1]) in self.also
        ):
            self.fail(msg)
            return True
        return self.take(msg)

    def take(self, msg: Message) -> bool | str:
        return False

    def fail(self, msg: Message) -> None:
        if not self.d.called:
            text = msg.params[-1] if msg.params else ""
            self.d.errback(IRCCommandError(msg.command, text, msg))

    def finish(self, value: Any) -> None:
        if not self.d.called:
            self.d.callback(value)


class _Join(_Pending):
    errors = frozenset({"403", "405", "471", "473", "474", "475", "476", "477", "437", "489"})

    def __init__(self, client: IRCClient, key: str, channel_key: str | None = None) -> None:
        super().__init__(client, key)
        #: the channel key the JOIN was sent with (kept on the Channel once joined)
        self.channel_key = channel_key or None
        #: (name, key) when this is a rejoin after a reconnect (tried again after the
        #: next one if the connection is lost before it is answered)
        self.rejoin: tuple[str, str | None] | None = None

    def take(self, msg: Message) -> bool | str:
        if msg.command == "366" and len(msg.params) >= 2 and self.same(msg.params[1]):
            self.finish(self.client.channels.get(self.key))
            return True
        return False


class _Echo(_Pending):
    """Done when the server sends our own ``command`` back for the key (PART, KICK,
    TOPIC, MODE, NICK): fires with that message."""

    def __init__(
        self, client: IRCClient, key: str, command: str, errors: Iterable[str],
        replies: Iterable[str] = (), also: Iterable[str] = (), own: str | None = None,
    ) -> None:
        super().__init__(client, key, also)
        self.command = command
        self.errors = frozenset(errors)
        self.replies = frozenset(replies)
        #: the folded nick the echo comes from (ours when the request was made)
        self.own = own if own is not None else client.fold(client.nick)

    def take(self, msg: Message) -> bool | str:
        if msg.command == self.command and msg.nick is not None \
                and self.client.fold(msg.nick) == self.own \
                and msg.params and self.same(msg.params[0]):
            self.finish(msg)
            return True
        if msg.command in self.replies and len(msg.params) >= 2 and (
            msg.command == "221" or self.same(msg.params[1])
        ):
            self.finish(msg)
            return True
        return False


class _Topic(_Pending):
    errors = frozenset({"403", "442", "482", "477"})

    def take(self, msg: Message) -> bool | str:
        if len(msg.params) < 2 or not self.same(msg.params[1]):
            return False
        if msg.command == "332":
            self.finish(msg.params[-1])
            return True
        if msg.command == "331":
            self.finish(None)
            return True
        return False


class _Names(_Pending):
    errors = frozenset({"403", "402"})

    def __init__(self, client: IRCClient, key: str) -> None:
        super().__init__(client, key)
        self.names: list[str] = []

    def take(self, msg: Message) -> bool | str:
        if msg.command == "353" and len(msg.params) >= 4 and self.same(msg.params[2]):
            self.names.extend(msg.params[3].split())
            return USED
        if msg.command == "366" and len(msg.params) >= 2 and self.same(msg.params[1]):
            self.finish(self.names)
            return True
        return False


class _Whois(_Pending):
    errors = frozenset({"401", "402", "431"})

    def __init__(self, client: IRCClient, key: str, nick: str) -> None:
        super().__init__(client, key)
        self.result = WhoisResult(nick)
        #: failed on a 401/402: the 318 that servers send right after it is ours too
        self.ending = False

    def feed(self, msg: Message) -> bool | str:
        if self.ending:
            # the line right after our 401: our 318 (taken), else none comes (we go)
            if msg.command == "318" and len(msg.params) >= 2 and self.same(msg.params[1]):
                return True
            return GONE
        answer = super().feed(msg)
        if answer is True and self.d.called and msg.command in ("401", "402"):
            self.ending = True
            return USED
        return answer

    def take(self, msg: Message) -> bool | str:
        p = msg.params
        if len(p) < 2 or not self.same(p[1]):
            return False
        r = self.result
        c = msg.command
        if c == "311" and len(p) >= 6:
            r.nick, r.user, r.host, r.realname = p[1], p[2], p[3], p[5]
        elif c == "312" and len(p) >= 3:
            r.server = p[2]
            r.server_info = p[3] if len(p) >= 4 else None
        elif c == "319":
            r.channels.extend(p[-1].split())
        elif c == "317" and len(p) >= 3 and p[2].isdigit():
            r.idle = int(p[2])
        elif c == "330" and len(p) >= 3:
            r.account = p[2]
        elif c == "313":
            r.operator = True
        elif c == "301":
            r.away = p[-1]
        elif c == "318":
            self.finish(r)
            return True
        else:
            return False
        return USED


class _Who(_Pending):
    errors = frozenset({"402", "403"})

    def __init__(self, client: IRCClient, key: str) -> None:
        super().__init__(client, key)
        self.entries: list[WhoEntry] = []

    def take(self, msg: Message) -> bool | str:
        p = msg.params
        if msg.command == "352" and len(p) >= 8:
            hops, _, realname = p[7].partition(" ")
            self.entries.append(WhoEntry(
                p[1], p[2], p[3], p[4], p[5], p[6], int(hops) if hops.isdigit() else 0,
                realname,
            ))
            return USED
        if msg.command == "315" and len(p) >= 2 and self.same(p[1]):
            self.finish(self.entries)
            return True
        return False


#: the WHOX fields asked for: token, channel, user, host, server, nick, flags, hops,
#: account, realname (the reply gives them in the order of "tcuihsnfdlaor")
WHOX_FIELDS = "tcuhsnfdar"


class _WhoX(_Who):
    """WHO with WHOX: the 354 lines that carry our token, then 315."""

    def __init__(self, client: IRCClient, key: str, token: str) -> None:
        super().__init__(client, key)
        self.token = token

    def take(self, msg: Message) -> bool | str:
        p = msg.params
        if msg.command == "354" and len(p) >= 11 and p[1] == self.token:
            _, _, channel, user, host, server, nick, flags, hops, account, realname = p[:11]
            self.entries.append(WhoEntry(
                channel, user, host, server, nick, flags,
                int(hops) if hops.isdigit() else 0, realname,
                None if account in ("0", "*", "") else account,
            ))
            return USED
        if msg.command == "352":
            return False  # a server that ignored the WHOX: not ours to read
        return super().take(msg)


class _Monitor(_Pending):
    """MONITOR +: the 730/731 for the nicks added, until the PONG to the PING sent after
    it (a server answers in order; it may say nothing of a nick it refused, as InspIRCd
    does of an invalid one). Fires with {nick: online}."""

    def __init__(self, client: IRCClient, nicks: list[str], token: str) -> None:
        super().__init__(client, "")
        self.wanted = {client.fold(n): n for n in nicks}
        self.token = token
        self.status: dict[str, bool] = {}

    def take(self, msg: Message) -> bool | str:
        c = msg.command
        if c in ("730", "731") and msg.params:
            used = False
            for target in msg.params[-1].split(","):
                folded = self.client.fold(target.split("!", 1)[0])
                if folded in self.wanted:
                    self.status[self.wanted[folded]] = c == "730"
                    used = True
            return USED if used else False
        if c == "734" and len(msg.params) >= 3:
            if not self.d.called:
                self.d.errback(_monitor_full(msg))
            return True
        if c == "PONG" and msg.params and msg.params[-1] == self.token:
            self.finish(self.status)
            return True
        return False


class _MonitorList(_Pending):
    """MONITOR L: 732 lines until 733."""

    def __init__(self, client: IRCClient) -> None:
        super().__init__(client, "")
        self.nicks: list[str] = []

    def take(self, msg: Message) -> bool | str:
        if msg.command == "732" and msg.params:
            self.nicks.extend(n for n in msg.params[-1].split(",") if n)
            return USED
        if msg.command == "733":
            self.finish(self.nicks)
            return True
        return False


def _monitor_full(msg: Message) -> MonitorListFull:
    limit = msg.params[1] if len(msg.params) >= 3 else ""
    nicks = [n for n in msg.params[2].split(",") if n] if len(msg.params) >= 3 else []
    return MonitorListFull(msg.params[-1] if msg.params else "", msg,
                           int(limit) if limit.isdigit() else None, nicks)


class _CTCP(_Pending):
    def __init__(self, client: IRCClient, key: str, command: str) -> None:
        super().__init__(client, key)
        self.command = command.upper()
        self.errors = frozenset({"401"})

    def take(self, msg: Message) -> bool | str:
        if msg.command != "NOTICE" or msg.nick is None or not self.same(msg.nick):
            return False
        ctcp = _parse_ctcp(msg.params[-1] if msg.params else "")
        if ctcp is None or ctcp[0] != self.command:
            return False
        self.finish(ctcp[1])
        return True


def _parse_ctcp(text: str) -> tuple[str, str] | None:
    """(command, argument) of a CTCP message (``\\x01CMD arg\\x01``), else None."""
    if len(text) < 2 or not text.startswith("\x01"):
        return None
    body = text[1:]
    if body.endswith("\x01"):
        body = body[:-1]
    command, _, arg = body.partition(" ")
    if not command:
        return None
    return command.upper(), arg


# ---- the connection


class _IRCProtocol(ns.Protocol):
    """The bytes of one connection: split into lines, parsed, handed to the client."""

    display_name = "irc client"

    def __init__(self, client: IRCClient) -> None:
        # A server's lines may carry up to 8191 bytes of tags; the rest is read
        # generously too (some servers go past 512).
        self.reader = LineReader(max_line=4096)
        self.client = client
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.client._connection_made(self)

    def data_received(self, data: bytes) -> None:
        for line in self.reader.feed(data):
            if isinstance(line, LineTooLong):
                log.warning("dropped an over-long line from the server (%r)", line)
                continue
            try:
                msg = parse(line)
            except ValueError as e:
                log.warning("dropped a line the server sent that is not IRC (%s): %r", e, line)
                continue
            try:
                self.client._line_received(msg)
            except Exception:
                log.exception("the IRC client failed on %r", line)

    def connection_lost(self, reason: Failure) -> None:
        self.client._connection_lost(self, reason)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _handler_failed(failure: Failure) -> None:
    log.error("an IRC event handler failed: %s", failure.get_traceback())


class IRCClient:
    """One IRC session (see the module's docstring). Made by :func:`connect`; make one
    yourself (``IRCClient(nick, ...)``) and hand ``make_protocol()``'s protocol a
    transport to drive it in memory."""

    def __init__(
        self,
        nick: str,
        *,
        user: str | None = None,
        realname: str | None = None,
        password: str | None = None,
        sasl: tuple[str, str] | None = None,
        caps: Iterable[str] = DEFAULT_CAPS,
        reconnect: bool = False,
        rate: float | None = 1.0,
        burst: int = 8,
        timeout: float | None = 30,
        clock: Any = None,
        alt_nicks: int = 5,
        keepalive: float | None = 120,
    ) -> None:
        self.wanted_nick = nick
        self.nick = nick
        self.user = user or nick
        self.realname = realname or nick
        self.password = password
        self.sasl = sasl
        self.wanted_caps = set(caps) | ({"sasl"} if sasl else set())
        self.reconnect = reconnect
        self.timeout = timeout
        self.clock = clock if clock is not None else get_reactor()
        self.alt_nicks = alt_nicks
        #: seconds of silence from the server before we PING it (None: never); no
        #: line at all within ``timeout`` (60 s without one) after that: the
        #: connection is dead, it is dropped (and made again with ``reconnect``)
        self.keepalive = keepalive
        self._keepalive_call: Any = None
        self._pinged = False
        self.rate = rate
        self.burst = burst
        #: capabilities the server offers (name -> value) and those enabled
        self.server_caps: dict[str, str] = {}
        self.caps: set[str] = set()
        self.isupport = ISupport()
        #: folded name -> Channel
        self.channels: dict[str, Channel] = {}
        self.registered = False
        self.closed = False
        self.account: str | None = None
        self.server_name: str | None = None
        self.protocol: _IRCProtocol | None = None
        self.throttle = Throttle(self._write_now, self.clock, rate, burst)
        self._pending: list[_Pending] = []
        self._listeners: dict[str, list[Callable[[Event], Any]]] = {}
        self._ready: Deferred[IRCClient] | None = None
        self._registration_waiters: list[Deferred[IRCClient]] = []
        self._welcomed = False
        self._nick_tries = 0
        self._short_nicks = False
        self._cap_ls: dict[str, str] = {}
        self._cap_done = False
        self._names_buffer: dict[str, dict[str, str]] = {}
        #: the batches open now (ref -> Batch)
        self.batches: dict[str, Batch] = {}
        self._quitting = False
        self._closed_waiters: list[Deferred[None]] = []
        #: the first wait before connecting again (doubling each failure, to 60 s)
        self.reconnect_initial = 1.0
        self._reconnect_delay = 1.0
        self._connect_args: tuple[Any, ...] | None = None
        self._reconnect_call: Any = None
        #: (name, key) of the channels to join again once registered after a reconnect
        self._rejoin: list[tuple[str, str | None]] = []
        self.why_closed: str | None = None
        #: the nicks we MONITOR (folded -> as given), and those of them online (folded)
        self.monitored: dict[str, str] = {}
        self.online: set[str] = set()
        self._tokens = 0

    def __repr__(self) -> str:
        state = "registered" if self.registered else ("closed" if self.closed else "connecting")
        return f"<IRCClient {self.nick} {state}, {len(self.channels)} channels>"

    # -- names

    def fold(self, name: str) -> str:
        """``name`` folded by the server's CASEMAPPING."""
        return casefold(name, self.isupport.casemapping, default="rfc1459")

    def is_channel(self, name: str) -> bool:
        return bool(name) and name[0] in self.isupport.chantypes

    def is_me(self, nick: str | None) -> bool:
        return nick is not None and self.fold(nick) == self.fold(self.nick)

    # -- the connection

    def make_protocol(self) -> _IRCProtocol:
        return _IRCProtocol(self)

    def in_context(self, f: Callable[_P, _R]) -> Callable[_P, _R]:
        """``f``, wrapped to run in the context (:mod:`contextvars`) of the connection, as
        its transport's ``in_context`` does (for a callback on a Deferred that other code
        fires); ``f`` itself while there is no connection."""
        protocol = self.protocol
        if protocol is None or protocol.transport is None:
            return f
        wrapped: Callable[_P, _R] = protocol.transport.in_context(f)
        return wrapped

    def _connection_made(self, protocol: _IRCProtocol) -> None:
        self.protocol = protocol
        self.closed = False
        self.registered = False
        self._welcomed = False
        self._cap_done = False
        self._cap_ls = {}
        self._nick_tries = 0
        self._short_nicks = False
        self.nick = self.wanted_nick
        self.caps = set()
        self.isupport = ISupport()  # a server after a reconnect may say other things
        self._names_buffer = {}
        self.batches = {}
        self.throttle = Throttle(self._write_now, self.clock, self.rate, self.burst)
        # Registration is not throttled: a server counts it apart, and it must be quick.
        self._send_now(Message("CAP", ["LS", "302"]))
        if self.password:
            self._send_now(Message("PASS", [self.password]))
        self._send_now(Message("NICK", [self.nick]))
        self._send_now(Message("USER", [self.user, "0", "*", self.realname]))

    def _write_now(self, data: bytes) -> None:
        if self.protocol is not None:
            log.debug("-> %r", data)
            self.protocol.write(data)

    def _send_now(self, msg: Message) -> None:
        self._write_now(msg.to_bytes())

    def send(self, msg: Message, urgent: bool = False) -> None:
        """Send ``msg`` through the throttle."""
        if self.protocol is None or self.closed:
            raise IRCConnectionClosed(f"the IRC connection is closed ({self.why_closed})")
        self.throttle.write(msg.to_bytes(), urgent)

    def quote(self, raw: str) -> None:
        """Send one raw line (checked: it must parse as an IRC message)."""
        self.send(parse(raw))

    def _connection_lost(self, protocol: _IRCProtocol, reason: Failure) -> None:
        if protocol is not self.protocol:
            return
        self.closed = True
        self.throttle.clear()
        self._stop_keepalive()
        if self.why_closed is None:
            self.why_closed = "closed" if reason.check(ns.ConnectionDone) else str(reason.value)
        error = IRCConnectionClosed(f"the IRC connection is closed ({self.why_closed})")
        pending, self._pending = self._pending, []
        for p in pending:
            if not p.d.called:
                p.d.errback(error)
        self._registration_failed(error)
        was_registered = self.registered
        self.registered = False
        # the channels we are in, and those a rejoin was sent for but not yet answered
        unanswered = [p.rejoin for p in pending if isinstance(p, _Join)
                      and p.rejoin is not None and p.key not in self.channels]
        self._rejoin = [(c.name, c.key) for c in self.channels.values()] + unanswered \
            or self._rejoin
        self.channels.clear()
        waiters, self._closed_waiters = self._closed_waiters, []
        for d in waiters:
            d.callback(None)
        self._emit(Event("disconnected", Message("ERROR", [self.why_closed or ""]),
                         datetime.now(UTC), text=self.why_closed, client=self))
        if was_registered and self.reconnect and not self._quitting \
                and self._connect_args is not None:
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._reconnect_call is not None and self._reconnect_call.active():
            return  # one try at a time
        delay = self._reconnect_delay
        self._reconnect_delay = min(delay * 2, 60.0)
        log.info("IRC connection lost; connecting again in %.1f s", delay)
        self._reconnect_call = self.clock.call_later(delay, self._reconnect_now)

    def _reconnect_now(self) -> None:
        self._reconnect_call = None
        if self._quitting or self._connect_args is None:
            return
        self.why_closed = None
        d = _open(self, *self._connect_args)

        def failed(f: Failure) -> None:
            if f.check(PasswordMismatch, SASLFailed):
                log.warning("IRC reconnect refused for good (%s): not trying again", f.value)
                return
            log.info("IRC reconnect failed: %s", f.value)
            if not self._quitting:
                self._schedule_reconnect()
            self._emit(Event("reconnect_failed", Message("ERROR", [str(f.value)]),
                             datetime.now(UTC), text=str(f.value), client=self))

        d.add_errback(failed)

    def when_registered(self) -> Deferred[IRCClient]:
        """Fires with the client once registration is done (at once if it is); fails as
        :func:`connect` does."""
        if self.registered:
            return ns.succeed(self)
        d: Deferred[IRCClient] = Deferred()
        self._registration_waiters.append(d)
        return d

    def _registration_failed(self, error: Exception) -> None:
        waiters, self._registration_waiters = self._registration_waiters, []
        if self._ready is not None and not self._ready.called:
            waiters.insert(0, self._ready)
        for d in waiters:
            d.errback(error)

    def when_closed(self) -> Deferred[None]:
        """Fires once the connection is closed."""
        d: Deferred[None] = Deferred()
        if self.closed:
            d.callback(None)
        else:
            self._closed_waiters.append(d)
        return d

    def close(self) -> None:
        """Drop the connection without QUIT (no reconnect)."""
        self._quitting = True
        if self._reconnect_call is not None:
            self._reconnect_call.cancel()
            self._reconnect_call = None
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.close()

    # -- the hooks: override them, or assign a callable on the instance

    def on_message(self, event: Event) -> Any:
        """A PRIVMSG (``event.channel`` is None when it was sent to us alone)."""

    def on_notice(self, event: Event) -> Any:
        """A NOTICE."""

    def on_action(self, event: Event) -> Any:
        """A CTCP ACTION ("/me"); ``event.text`` is what was done."""

    def on_ctcp(self, event: Event) -> Any:
        """A CTCP request (``event.ctcp``: VERSION, PING...; answered already when known)."""

    def on_ctcp_reply(self, event: Event) -> Any:
        """A CTCP reply (a NOTICE)."""

    def on_join(self, event: Event) -> Any:
        """Someone (``event.own``: we) joined ``event.channel``."""

    def on_part(self, event: Event) -> Any:
        """Someone left ``event.channel`` (``event.text``: the reason)."""

    def on_kick(self, event: Event) -> Any:
        """``event.victim`` was kicked from ``event.channel`` by ``event.nick``."""

    def on_quit(self, event: Event) -> Any:
        """Someone quit (``event.text``: the reason)."""

    def on_nick(self, event: Event) -> Any:
        """``event.nick`` is now ``event.new_nick``."""

    def on_topic(self, event: Event) -> Any:
        """The topic of ``event.channel`` is now ``event.text``."""

    def on_mode(self, event: Event) -> Any:
        """Modes changed on ``event.target`` (``event.text``: the changes)."""

    def on_invite(self, event: Event) -> Any:
        """We are invited to ``event.channel``."""

    def on_away(self, event: Event) -> Any:
        """``event.nick`` went away (``event.text``) or came back (None; away-notify)."""

    def on_registered(self, event: Event) -> Any:
        """Registration is done (also after each reconnect)."""

    def on_disconnected(self, event: Event) -> Any:
        """The connection ended (``event.text``: why)."""

    def on_reconnect_failed(self, event: Event) -> Any:
        """A try to connect again failed (``event.text``: why); the next is scheduled."""

    def on_online(self, event: Event) -> Any:
        """A nick we MONITOR is online (``event.nick``; ``event.text``: its
        ``nick!user@host`` when the server said it), from 730."""

    def on_offline(self, event: Event) -> Any:
        """A nick we MONITOR is offline (``event.nick``), from 731."""

    def on_monitor_full(self, event: Event) -> Any:
        """The server's MONITOR list is full (734): ``event.text`` lists the nicks not
        added."""

    def on_batch(self, event: Event) -> Any:
        """An IRCv3 batch ended: ``event.batch_done`` has its type and its messages."""

    def on_raw(self, event: Event) -> Any:
        """Every message from the server (but PING), before it is handled."""

    # -- lines in

    def _heard(self) -> None:
        """A line came: the server is alive; wait ``keepalive`` seconds again."""
        self._pinged = False
        if self.keepalive is None:
            return
        if self._keepalive_call is not None and self._keepalive_call.active():
            self._keepalive_call.reset(self.keepalive)
        else:
            self._keepalive_call = self.clock.call_later(self.keepalive, self._silence)

    def _silence(self) -> None:
        self._keepalive_call = None
        if self.closed or self.protocol is None:
            return
        if not self._pinged:
            self._pinged = True
            self.throttle.write(Message("PING", ["netshell"]).to_bytes(), urgent=True)
            wait = self.timeout if self.timeout is not None else 60
            self._keepalive_call = self.clock.call_later(wait, self._silence)
            return
        self.why_closed = "the server stopped answering (no reply to PING)"
        log.info("IRC: %s; dropping the connection", self.why_closed)
        if self.protocol.transport is not None:
            self.protocol.transport.abort()

    def _stop_keepalive(self) -> None:
        if self._keepalive_call is not None and self._keepalive_call.active():
            self._keepalive_call.cancel()
        self._keepalive_call = None

    def _line_received(self, msg: Message) -> None:
        log.debug("<- %s", msg)
        self._heard()
        c = msg.command
        if c == "PING":
            self.throttle.write(Message("PONG", msg.params[-1:] or [""]).to_bytes(), urgent=True)
            return
        self._emit(self._event("raw", msg))
        ref = msg.tags.get("batch")
        if ref is not None and ref in self.batches and c != "BATCH":
            self.batches[ref].messages.append(msg)
        handler = getattr(self, f"_on_{c}", None)
        if not self.registered:
            self._registration(msg)
        if handler is not None:
            handler(msg)
        for p in list(self._pending):
            answer = p.feed(msg)
            if (answer is True or answer == GONE) and p in self._pending:
                self._pending.remove(p)  # ("in": a failure's errback may have taken it)
            if answer is True or answer == USED:
                break
        if self._welcomed and not self.registered and c in ("376", "422"):
            self._now_registered()

    def _registration(self, msg: Message) -> None:
        c = msg.command
        if c in ("433", "432", "436") and not self._welcomed:
            self._nick_tries += 1
            if self._nick_tries > self.alt_nicks:
                self._fail(NickInUse(c, f"no nick left to try (the last, {self.nick!r}: "
                                     f"{msg.params[-1] if msg.params else ''})", msg))
                return
            n = self._nick_tries
            if c == "432" and self.nick != self.wanted_nick:
                # the longer nick was refused (over NICKLEN, most likely): keep the length
                self._short_nicks = True
            if self._short_nicks:
                base = self.wanted_nick
                self.nick = base[:max(1, len(base) - n)] + "_" * n
            else:
                self.nick = self.wanted_nick + "_" * n
            self._send_now(Message("NICK", [self.nick]))
        elif c == "464":
            self._fail(PasswordMismatch(c, msg.params[-1] if msg.params else "", msg))
        elif c == "465":
            self._fail(IRCCommandError(c, msg.params[-1] if msg.params else "", msg))
        elif c == "001":
            self._welcomed = True
            if msg.params:
                self.nick = msg.params[0]
            self.server_name = msg.source
        elif c == "AUTHENTICATE":
            self._authenticate(msg)
        elif c in ("900",):
            self.account = msg.params[2] if len(msg.params) >= 3 else None
        elif c in ("903", "907"):
            self._cap_end()
        elif c in ("902", "904", "905", "906", "908"):
            if c == "908":
                return  # the list of mechanisms: 904 follows
            self._fail(SASLFailed(c, msg.params[-1] if msg.params else "", msg))
        elif c == "421" and len(msg.params) >= 2 and msg.params[1].upper() == "CAP":
            self._cap_done = True  # no CAP here: registration goes on without
        elif self._welcomed and c not in _WELCOME_BURST and not c.isdigit() and c != "MODE":
            self._now_registered()  # a server with no MOTD end: anything else means done

    def _fail(self, error: Exception) -> None:
        # (no _quitting here: a reconnect whose registration fails is tried again,
        # unless the error says trying again is useless: see _reconnect_now)
        self._registration_failed(error)
        self.why_closed = str(error)
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.close()

    def _on_CAP(self, msg: Message) -> None:
        p = msg.params
        if len(p) < 3:
            return
        sub = p[1].upper()
        if self._cap_done and sub in ("ACK", "NAK"):
            # after registration (a CAP NEW answered): just note what is on
            if sub == "ACK":
                self._acked(p[-1])
            return
        if sub == "NEW":  # cap-notify, implied by CAP LS 302
            offered = {}
            for item in p[-1].split():
                name, _, value = item.partition("=")
                offered[name] = value
            self.server_caps.update(offered)
            want = sorted(c for c in self.wanted_caps - self.caps if c in offered and c != "sasl")
            if want:
                self._send_now(Message("CAP", ["REQ", " ".join(want)]))
        elif sub == "DEL":
            for name in p[-1].split():
                self.server_caps.pop(name, None)
                self.caps.discard(name)
        elif sub == "LS":
            more = len(p) >= 4 and p[2] == "*"
            for item in p[-1].split():
                name, _, value = item.partition("=")
                self._cap_ls[name] = value
            if more:
                return
            self.server_caps = dict(self._cap_ls)
            if "cap-notify" in self.server_caps:
                self.caps.add("cap-notify")  # on without a REQ after CAP LS 302 (IRCv3)
            if self.sasl is not None:
                mechanisms = self.server_caps.get("sasl")
                if mechanisms is None or (mechanisms and "PLAIN" not in mechanisms.split(",")):
                    self._fail(SASLFailed("904", "the server does not offer SASL PLAIN "
                                          f"(its capabilities: {' '.join(self.server_caps)})"))
                    return
            want = sorted(c for c in self.wanted_caps if c in self.server_caps)
            if want:
                self._send_now(Message("CAP", ["REQ", " ".join(want)]))
            else:
                self._after_caps()
        elif sub == "ACK":
            self._acked(p[-1])
            self._after_caps()
        elif sub == "NAK":
            self._after_caps()

    def _acked(self, names: str) -> None:
        for name in names.split():
            if name.startswith("-"):
                self.caps.discard(name[1:])
            else:
                self.caps.add(name)

    def _after_caps(self) -> None:
        if self.sasl is not None:
            if "sasl" in self.caps:
                self._send_now(Message("AUTHENTICATE", ["PLAIN"]))
                return
            self._fail(SASLFailed("904", "the server does not offer SASL"))
            return
        self._cap_end()

    def _cap_end(self) -> None:
        if not self._cap_done:
            self._cap_done = True
            self._send_now(Message("CAP", ["END"]))

    def _authenticate(self, msg: Message) -> None:
        if self.sasl is None or not msg.params or msg.params[0] != "+":
            return
        account, password = self.sasl
        blob = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
        for i in range(0, len(blob), 400):
            self._send_now(Message("AUTHENTICATE", [blob[i:i + 400]]))
        if len(blob) % 400 == 0:
            self._send_now(Message("AUTHENTICATE", ["+"]))

    def _now_registered(self) -> None:
        self.registered = True
        self._reconnect_delay = self.reconnect_initial
        self._emit(self._event("registered", Message("001", [self.nick])))
        waiters, self._registration_waiters = self._registration_waiters, []
        if self._ready is not None and not self._ready.called:
            waiters.insert(0, self._ready)
        for d in waiters:
            d.callback(self)
        rejoin, self._rejoin = self._rejoin, []
        for name, key in rejoin:
            join = _Join(self, self.fold(name), key)
            join.rejoin = (name, key)
            self._request(join, Message("JOIN", [name] + ([key] if key else []))).add_errback(
                lambda f: log.info("rejoin failed: %s", f.value))
        if self.monitored:  # (after a reconnect) a new connection monitors nothing yet
            again = list(self.monitored.values())
            self.monitored.clear()
            self.online.clear()
            if self.isupport.monitor is not None:
                self.monitor(*again).add_errback(
                    lambda f: log.info("MONITOR again failed: %s", f.value))

    # -- state and events from the server

    def _event(self, kind: str, msg: Message, **kw: Any) -> Event:
        return Event(kind, msg, server_time(msg), nick=msg.nick, client=self,
                     own=self.is_me(msg.nick), **kw)

    def _emit(self, event: Event) -> None:
        if event.kind in _SHOWN and log.isEnabledFor(logging.INFO):
            line = self.describe(event)
            if line is not None:
                log.info("%s", line)
        hook = getattr(self, f"on_{event.kind}", None)
        for f in ([hook] if hook is not None else []) + self._listeners.get(event.kind, []):
            try:
                result = f(event)
                if isinstance(result, Deferred):
                    # fired from anywhere: the record is the connection's (its context)
                    result.add_errback(self.in_context(_handler_failed))
            except Exception:
                log.exception("an IRC event handler for %r failed", event.kind)

    def describe(self, event: Event) -> str | None:
        """``event`` in one short line, as a person reads it, our nick first (two clients
        at one prompt are told apart): ``alice: #netshell <bob> hello``. Control
        characters and IRC formatting are made visible or dropped, so what a server sends
        cannot drive the terminal. None for a kind not described.

        This line is what the client logs at INFO to ``netshell.irc.client`` for each
        message, notice, action, join, part, quit, kick, nick and topic: the netsh prompt
        shows it above the line (``log(False)`` hushes it)."""
        who = _printable(event.nick or "?")
        where = _printable(event.channel) + " " if event.channel else ""
        text = _printable(event.text) if event.text else ""
        reason = f" ({text})" if text else ""
        kind = event.kind
        if kind == "message":
            line = f"{where}<{who}> {text}"
        elif kind == "notice":
            line = f"{where}-{who}- {text}"
        elif kind == "action":
            line = f"{where}* {who} {text}"
        elif kind == "join":
            line = f"{where}{who} joined"
        elif kind == "part":
            line = f"{where}{who} left{reason}"
        elif kind == "quit":
            line = f"{who} quit{reason}"
        elif kind == "kick":
            line = f"{where}{who} kicked {_printable(event.victim or '?')}{reason}"
        elif kind == "nick":
            line = f"{who} is now {_printable(event.new_nick or '?')}"
        elif kind == "topic":
            line = f"{where}{who} " + (f"set the topic: {text}" if text else "cleared the topic")
        else:
            return None
        return f"{_printable(self.nick)}: {line}"

    def add_listener(self, kind: str, f: Callable[[Event], Any]) -> None:
        """Call ``f(event)`` for each event of ``kind`` (besides the ``on_<kind>`` hook)."""
        self._listeners.setdefault(kind, []).append(f)

    def remove_listener(self, kind: str, f: Callable[[Event], Any]) -> None:
        self._listeners.get(kind, []).remove(f)

    def wait_for(
        self, kind: str, match: Callable[[Event], bool] | None = None,
        timeout: float | None = None,
    ) -> Deferred[Event]:
        """The next event of ``kind`` for which ``match(event)`` is true."""
        d: Deferred[Event] = Deferred()

        def listener(event: Event) -> None:
            if d.called or (match is not None and not match(event)):
                return
            self.remove_listener(kind, listener)
            d.callback(event)

        self.add_listener(kind, listener)
        if timeout is not None:
            d.add_timeout(timeout, self.clock)

            def forget(f: Failure) -> Failure:
                if listener in self._listeners.get(kind, []):
                    self.remove_listener(kind, listener)
                return f

            d.add_errback(forget)
        return d

    def _on_005(self, msg: Message) -> None:
        self.isupport.update(msg.params[1:-1])
        if self.channels:  # the case mapping may have changed: fold again
            self.channels = {self.fold(c.name): c for c in self.channels.values()}

    def _on_JOIN(self, msg: Message) -> None:
        if not msg.params or msg.nick is None:
            return
        name = msg.params[0]
        key = self.fold(name)
        if self.is_me(msg.nick):
            # the key our JOIN for it was sent with, if we asked (not a forced join)
            channel_key = next((p.channel_key for p in self._pending
                                if isinstance(p, _Join) and p.key == key), None)
            self.channels[key] = Channel(name, {msg.nick: ""}, key=channel_key)
        else:
            channel = self.channels.get(key)
            if channel is not None:
                channel.members[msg.nick] = ""
        self._emit(self._event("join", msg, target=name, channel=name))

    def _remove_member(self, channel: Channel, nick: str) -> None:
        folded = self.fold(nick)
        for member in list(channel.members):
            if self.fold(member) == folded:
                del channel.members[member]

    def _on_PART(self, msg: Message) -> None:
        if not msg.params or msg.nick is None:
            return
        name = msg.params[0]
        key = self.fold(name)
        if self.is_me(msg.nick):
            self.channels.pop(key, None)
        elif key in self.channels:
            self._remove_member(self.channels[key], msg.nick)
        text = msg.params[1] if len(msg.params) > 1 else None
        self._emit(self._event("part", msg, target=name, channel=name, text=text))

    def _on_KICK(self, msg: Message) -> None:
        if len(msg.params) < 2:
            return
        name, victim = msg.params[0], msg.params[1]
        key = self.fold(name)
        if self.is_me(victim):
            self.channels.pop(key, None)
        elif key in self.channels:
            self._remove_member(self.channels[key], victim)
        text = msg.params[2] if len(msg.params) > 2 else None
        self._emit(self._event("kick", msg, target=name, channel=name, victim=victim, text=text))

    def _regain_nick(self, freed: str) -> None:
        """Registered under a next nick: when the one we wanted is freed, take it."""
        if self.registered and not self.is_me(self.wanted_nick) \
                and self.fold(freed) == self.fold(self.wanted_nick):
            self.send(Message("NICK", [self.wanted_nick]))

    def _on_QUIT(self, msg: Message) -> None:
        if msg.nick is None:
            return
        self._regain_nick(msg.nick)
        for channel in self.channels.values():
            self._remove_member(channel, msg.nick)
        self._emit(self._event("quit", msg, text=msg.params[0] if msg.params else None))

    def _on_NICK(self, msg: Message) -> None:
        if not msg.params or msg.nick is None:
            return
        old, new = msg.nick, msg.params[0]
        event = self._event("nick", msg, new_nick=new)
        if self.is_me(old):
            self.nick = new  # (set_nick made it the wanted one; a server's change did not)
        else:
            self._regain_nick(old)
        folded = self.fold(old)
        for channel in self.channels.values():
            for member, prefixes in list(channel.members.items()):
                if self.fold(member) == folded:
                    del channel.members[member]
                    channel.members[new] = prefixes
        self._emit(event)

    def _on_353(self, msg: Message) -> None:
        if len(msg.params) < 4:
            return
        key = self.fold(msg.params[2])
        if key not in self.channels:
            return
        buffer = self._names_buffer.setdefault(key, {})
        symbols = self.isupport.prefix_symbols
        for item in msg.params[3].split():
            prefixes, nick = split_prefixes(item, symbols)
            nick = nick.split("!", 1)[0]  # userhost-in-names
            buffer[nick] = prefixes

    def _on_366(self, msg: Message) -> None:
        if len(msg.params) < 2:
            return
        key = self.fold(msg.params[1])
        buffer = self._names_buffer.pop(key, None)
        if buffer is not None and key in self.channels:
            self.channels[key].members = buffer

    def _on_332(self, msg: Message) -> None:
        if len(msg.params) >= 3 and self.fold(msg.params[1]) in self.channels:
            self.channels[self.fold(msg.params[1])].topic = msg.params[2]

    def _on_333(self, msg: Message) -> None:
        if len(msg.params) >= 3 and self.fold(msg.params[1]) in self.channels:
            self.channels[self.fold(msg.params[1])].topic_by = msg.params[2]

    def _on_TOPIC(self, msg: Message) -> None:
        if not msg.params:
            return
        name = msg.params[0]
        text = msg.params[1] if len(msg.params) > 1 else ""
        channel = self.channels.get(self.fold(name))
        if channel is not None:
            channel.topic = text or None
            channel.topic_by = msg.source
        self._emit(self._event("topic", msg, target=name, channel=name, text=text))

    def _on_MODE(self, msg: Message) -> None:
        if len(msg.params) < 2:
            return
        target = msg.params[0]
        channel = self.channels.get(self.fold(target)) if self.is_channel(target) else None
        if channel is not None:
            self._apply_modes(channel, msg.params[1], msg.params[2:])
        self._emit(self._event("mode", msg, target=target,
                               channel=target if self.is_channel(target) else None,
                               text=" ".join(msg.params[1:])))

    def _apply_modes(self, channel: Channel, modes: str, args: list[str]) -> None:
        prefix = dict(self.isupport.prefix)
        order = self.isupport.prefix_symbols
        lists, always, when_set, _ = self.isupport.chanmodes
        adding = True
        args = list(args)
        for m in modes:
            if m == "+":
                adding = True
            elif m == "-":
                adding = False
            elif m in prefix:
                if not args:
                    continue
                nick = args.pop(0)
                for member, prefixes in list(channel.members.items()):
                    if self.fold(member) == self.fold(nick):
                        symbol = prefix[m]
                        have = set(prefixes)
                        if adding:
                            have.add(symbol)
                        else:
                            have.discard(symbol)
                        channel.members[member] = "".join(s for s in order if s in have)
            elif (m in lists or m in always or (m in when_set and adding)) and args:
                arg = args.pop(0)
                if m == "k":
                    channel.key = arg if adding else None
            elif m == "k" and not adding:
                channel.key = None  # "-k" said without its parameter

    def _on_324(self, msg: Message) -> None:
        # RPL_CHANNELMODEIS "me #c +knt key": the channel's modes now, its key among them
        if len(msg.params) < 3:
            return
        channel = self.channels.get(self.fold(msg.params[1]))
        if channel is None:
            return
        if "k" not in msg.params[2]:
            channel.key = None
        self._apply_modes(channel, msg.params[2], msg.params[3:])

    def _on_PRIVMSG(self, msg: Message) -> None:
        self._message(msg, "message")

    def _on_NOTICE(self, msg: Message) -> None:
        self._message(msg, "notice")

    def _message(self, msg: Message, kind: str) -> None:
        if len(msg.params) < 2:
            return
        target, text = msg.params[0], msg.params[1]
        # "@#chan" (STATUSMSG) still names the channel; the prefix is kept apart
        bare = target.lstrip(self.isupport.prefix_symbols)
        channel = bare if self.is_channel(bare) else None
        status = target[:len(target) - len(bare)] or None if channel is not None else None
        ctcp = _parse_ctcp(text)
        if ctcp is not None:
            command, arg = ctcp
            if command == "ACTION" and kind == "message":
                self._emit(self._event("action", msg, target=target, channel=channel, text=arg,
                                       ctcp=command, status_prefix=status))
                return
            event = self._event("ctcp" if kind == "message" else "ctcp_reply", msg,
                                target=target, channel=channel, text=arg, ctcp=command,
                                status_prefix=status)
            if kind == "message" and msg.nick is not None and not event.own:
                self._answer_ctcp(msg.nick, command, arg)
            self._emit(event)
            return
        self._emit(self._event(kind, msg, target=target, channel=channel, text=text,
                               status_prefix=status))

    def _answer_ctcp(self, nick: str, command: str, arg: str) -> None:
        answer: str | None = None
        if command == "VERSION":
            answer = VERSION
        elif command == "PING":
            answer = arg
        elif command == "TIME":
            answer = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        elif command == "CLIENTINFO":
            answer = "ACTION CLIENTINFO PING TIME VERSION"
        if answer is not None and self.throttle.pending < 8:  # a CTCP flood: not answered
            body = f"{command} {answer}" if answer else command
            self.send(Message("NOTICE", [nick, f"\x01{body}\x01"]))

    def _on_BATCH(self, msg: Message) -> None:
        if not msg.params or len(msg.params[0]) < 2:
            return
        sign, ref = msg.params[0][0], msg.params[0][1:]
        if sign == "+" and len(msg.params) >= 2:
            self.batches[ref] = Batch(ref, msg.params[1], msg.params[2:],
                                      outer=msg.tags.get("batch"))
        elif sign == "-":
            batch = self.batches.get(ref)
            if batch is not None:
                event = self._event("batch", msg, text=batch.type, batch_done=batch)
                del self.batches[ref]
                self._emit(event)

    def _on_730(self, msg: Message) -> None:
        self._monitor_reply(msg, True)

    def _on_731(self, msg: Message) -> None:
        self._monitor_reply(msg, False)

    def _monitor_reply(self, msg: Message, online: bool) -> None:
        if not msg.params:
            return
        for target in msg.params[-1].split(","):
            nick = target.split("!", 1)[0]
            if not nick:
                continue
            folded = self.fold(nick)
            if online:
                self.online.add(folded)
            else:
                self.online.discard(folded)
            self._emit(Event("online" if online else "offline", msg, server_time(msg),
                             nick=nick, text=target, client=self))

    def _on_734(self, msg: Message) -> None:
        error = _monitor_full(msg)
        for nick in error.nicks:
            self.monitored.pop(self.fold(nick), None)
        self._emit(Event("monitor_full", msg, server_time(msg), text=",".join(error.nicks),
                         client=self))

    def _on_INVITE(self, msg: Message) -> None:
        if len(msg.params) >= 2:
            self._emit(self._event("invite", msg, target=msg.params[0], channel=msg.params[1]))

    def _on_AWAY(self, msg: Message) -> None:
        self._emit(self._event("away", msg, text=msg.params[0] if msg.params else None))

    def _on_ERROR(self, msg: Message) -> None:
        self.why_closed = f"the server said ERROR: {msg.params[-1] if msg.params else ''}"
        self._registration_failed(IRCConnectionClosed(self.why_closed))

    # -- commands

    def _request(self, pending: _Pending, *messages: Message) -> Deferred[Any]:
        for m in messages:
            self.send(m)
        return self._watch(pending)

    def _watch(self, pending: _Pending) -> Deferred[Any]:
        """Wait for ``pending``'s replies (with the timeout)."""
        self._pending.append(pending)
        if self.timeout is not None:
            pending.d.add_timeout(self.timeout, self.clock)

            def timed_out(f: Failure) -> Failure:
                # (a request the server refused is dropped by _line_received: a WHOIS
                # refused with 401 stays for the 318 that follows)
                if pending in self._pending and not f.check(IRCCommandError):
                    self._pending.remove(pending)
                if f.check(ns.TimeoutError) and not f.check(IRCTimeoutError):
                    raise IRCTimeoutError(f"no reply from the server in {self.timeout} s")
                return f

            pending.d.add_errback(timed_out)
        pending.d.add_both(pending._fan_out)  # before any caller's callbacks
        return pending.d

    def _joining(self, folded: str, key: str | None) -> Deferred[Any] | None:
        """A join of ``folded`` that needs no JOIN sent: fires with the Channel at once
        when we are in it (a server answers nothing to a JOIN of a channel one is in),
        or as the join of it under way does (same key, or none given); else None."""
        for p in self._pending:
            if isinstance(p, _Join) and p.key == folded and not p.d.called \
                    and (not key or key == p.channel_key):
                return p.follow()
        if folded in self.channels:
            return ns.succeed(self.channels[folded])
        return None

    def join(
        self, channel: str | Sequence[str], key: str | Sequence[str | None] | None = None,
    ) -> Deferred[Any]:
        """Join a channel, or several; each is joined once its member list came (366).

        - ``join("#a")``, ``join("#a", "key")``: fires with the :class:`Channel`;
        - ``join("#a,#b")`` or ``join(["#a", "#b"])``: fires with the list of the
          Channels, in the order given. ``key``: ``"ka,kb"`` or ``["ka", None]``, a key
          per channel in the same order (None or "" for a channel without one); they are
          sent as JOIN wants them, the channels with a key first.

        Errbacks with IRCCommandError (403, 405, 471, 473, 474, 475...); with several,
        with the first channel refused (the others are still joined, and in
        ``channels``). Raises ValueError for no channel, or more keys than channels.

        Example: ``a, b = await client.join("#a,#b")``.
        """
        several = not isinstance(channel, str) or "," in channel
        names = [c for c in (channel.split(",") if isinstance(channel, str) else channel) if c]
        if not names:
            raise ValueError(f"no channel to join in {channel!r}")
        if key is None:
            keys: list[str | None] = []
        elif isinstance(key, str):
            keys = list(key.split(","))
        else:
            keys = list(key)
        if len(keys) > len(names):
            raise ValueError(f"{len(keys)} keys for {len(names)} channels: at most one each")
        keys += [None] * (len(names) - len(keys))
        if not several:
            known = self._joining(self.fold(names[0]), keys[0])
            if known is not None:
                return known
            params = [names[0]] + ([keys[0]] if keys[0] else [])
            return self._request(_Join(self, self.fold(names[0]), keys[0]),
                                 Message("JOIN", params))
        ds: list[Deferred[Any]] = []
        pairs: list[tuple[str, str | None]] = []
        for name, k in zip(names, keys, strict=True):
            known = self._joining(self.fold(name), k)  # (a name given twice: once)
            if known is None:
                pairs.append((name, k))
                known = self._watch(_Join(self, self.fold(name), k))
            ds.append(known)
        # JOIN pairs its keys with its first channels: those with a key go first
        pairs.sort(key=lambda p: not p[1])
        most = self.isupport.targmax("JOIN") or len(pairs)
        for message in _join_lines(pairs, most):
            self.send(message)
        return ns.gather(*ds, consume_errors=True)

    def part(self, channel: str, reason: str | None = None) -> Deferred[Message]:
        """Leave ``channel``; fires with the PART message (errbacks 403, 442)."""
        params = [channel] + ([reason] if reason else [])
        return self._request(_Echo(self, self.fold(channel), "PART", {"403", "442"}),
                             Message("PART", params))

    def msg(self, target: str, text: str) -> None:
        """Send a PRIVMSG to ``target`` (a channel or nick); lines and long texts are split
        into several messages."""
        for piece in self._split(target, text, "PRIVMSG"):
            self.send(Message("PRIVMSG", [target, piece]))

    def notice(self, target: str, text: str) -> None:
        """Send a NOTICE (split as :meth:`msg`)."""
        for piece in self._split(target, text, "NOTICE"):
            self.send(Message("NOTICE", [target, piece]))

    def action(self, target: str, text: str) -> None:
        """Send a CTCP ACTION ("/me"); split as :meth:`msg`, each piece its own ACTION."""
        wrap = "\x01ACTION \x01"
        for piece in self._split(target, text, "PRIVMSG", len(wrap.encode())):
            self.send(Message("PRIVMSG", [target, f"\x01ACTION {piece}\x01"]))

    def ctcp(self, target: str, command: str, arg: str = "") -> Deferred[str]:
        """Send a CTCP request to the nick ``target``; fires with the argument of its reply
        (e.g. ``await client.ctcp("bob", "VERSION")``). Raises ValueError for a request
        that does not fit one line (one request is one message: it is not split), or
        has a line break in it."""
        body = f"{command.upper()} {arg}" if arg else command.upper()
        if _LINE_BREAK.search(body) or len(body.encode()) + 2 > self._room(target, "PRIVMSG"):
            raise ValueError(f"a CTCP request must fit one line: {body[:40]!r}...")
        return self._request(_CTCP(self, self.fold(target), command),
                             Message("PRIVMSG", [target, f"\x01{body}\x01"]))

    def _room(self, target: str, command: str) -> int:
        """The bytes of text one ``command`` to ``target`` carries. The server relays
        ":nick!user@host COMMAND target :text\\r\\n": room is kept for the source it adds
        (user and host as long as they may be)."""
        room = 512 - len(f":{self.nick}!{'u' * 10}@{'h' * 63} {command} {target} :\r\n".encode())
        return max(room, 64)

    def _split(self, target: str, text: str, command: str, overhead: int = 0) -> list[str]:
        """``text`` in pieces that each fit one ``command`` line to ``target`` (with
        ``overhead`` bytes more around each: a CTCP's), cut at line breaks (CR, LF, CRLF
        only: other characters str.splitlines() breaks at are IRC formatting, \\x1d
        italics, \\x1e strikethrough), then by bytes, at a space if one is near, never
        inside a UTF-8 character."""
        room = max(self._room(target, command) - overhead, 32)
        pieces: list[str] = []
        for line in _LINE_BREAK.split(text):
            while len(line.encode()) > room:
                cut = len(line.encode()[:room].decode("utf-8", "ignore"))
                space = line.rfind(" ", 0, cut)
                if space > cut // 2:
                    cut = space
                pieces.append(line[:cut])
                line = line[cut:].lstrip(" ")
            if line:
                pieces.append(line)
        return pieces

    def topic(self, channel: str, text: str | None = None) -> Deferred[Any]:
        """With ``text``: set the topic, firing with the TOPIC message. Without: fire with
        the topic (None when there is none). Errbacks 403, 442, 482."""
        if text is None:
            return self._request(_Topic(self, self.fold(channel)),
                                 Message("TOPIC", [channel]))
        return self._request(
            _Echo(self, self.fold(channel), "TOPIC", {"403", "442", "482", "477"}),
            Message("TOPIC", [channel, text]),
        )

    def kick(self, channel: str, nick: str, reason: str | None = None) -> Deferred[Message]:
        """Kick ``nick`` from ``channel``; fires with the KICK message (errbacks 401, 403,
        441, 442, 482)."""
        params = [channel, nick] + ([reason] if reason else [])
        return self._request(
            _Echo(self, self.fold(channel), "KICK", {"401", "403", "441", "442", "482"},
                  also=[self.fold(nick)]),
            Message("KICK", params),
        )

    def mode(self, target: str, modes: str | None = None, *args: str) -> Deferred[Message]:
        """Set modes (fires with the MODE message the server sends back) or, without
        ``modes``, ask them (fires with the 324 or 221 reply). Errbacks 401, 403, 442,
        472, 482, 501, 502. A change that changes nothing is not echoed by servers: its
        Deferred then fails with IRCTimeoutError after ``timeout``."""
        errors = {"401", "403", "442", "472", "477", "482", "501", "502"}
        params = [target] + ([modes] if modes else []) + list(args)
        replies = set() if modes else ({"221"} if self.is_me(target) else {"324"})
        return self._request(_Echo(self, self.fold(target), "MODE", errors, replies=replies),
                             Message("MODE", params))

    def set_nick(self, nick: str) -> Deferred[Message]:
        """Change our nick; fires with the NICK message (errbacks 432, 433, 436). The new
        nick is the one wanted from now on (after a reconnect too)."""

        def wanted(msg: Message) -> Message:
            self.wanted_nick = nick
            return msg

        return self._request(_Echo(self, self.fold(nick), "NICK", {"432", "433", "436"}),
                             Message("NICK", [nick])).add_callback(wanted)

    def names(self, channel: str) -> Deferred[list[str]]:
        """The nicks in ``channel`` (353 ... 366), each with its prefix symbols (``@bob``)."""
        return self._request(_Names(self, self.fold(channel)), Message("NAMES", [channel]))

    def whois(self, nick: str) -> Deferred[WhoisResult]:
        """What the server tells of ``nick`` (a :class:`WhoisResult`); errbacks 401."""
        return self._request(_Whois(self, self.fold(nick), nick), Message("WHOIS", [nick]))

    def who(self, mask: str) -> Deferred[list[WhoEntry]]:
        """Who matches ``mask`` (a channel or a nick mask): a :class:`WhoEntry` each.

        When the server says WHOX in its 005, WHOX is used (``WHO mask
        %tcuhsnfdar,TOKEN``): each entry has the ``account`` too (None when not logged
        in). Without, a plain WHO (352 lines; ``account`` None)."""
        if self.isupport.whox:
            token = self._token()
            return self._request(_WhoX(self, self.fold(mask), token),
                                 Message("WHO", [mask, f"%{WHOX_FIELDS},{token}"]))
        return self._request(_Who(self, self.fold(mask)), Message("WHO", [mask]))

    def _token(self) -> str:
        """A number for a WHOX or PING token: 1 to 999 (WHOX takes three digits)."""
        self._tokens = self._tokens % 999 + 1
        return str(self._tokens)

    # -- MONITOR (IRCv3)

    def monitor(self, *nicks: str) -> Deferred[dict[str, bool]]:
        """Be told when ``nicks`` come online or go offline (IRCv3 MONITOR): the events
        ``online`` and ``offline`` (hooks ``on_online``, ``on_offline``), from now on.

        Fires with {nick: online?} for the nicks newly added, once the server has
        answered (a nick it refused silently is left out). Errbacks with
        :class:`MonitorListFull` (734: the list is full; ``nicks`` those not added) and
        with :class:`IRCNotSupported` when the server has no MONITOR. After a reconnect
        the nicks are monitored again. ``monitored`` holds them, ``online`` those known
        online (folded).

        Example: ``await client.monitor("bob", "carol")`` → ``{"bob": True, "carol": False}``.
        """
        if self.isupport.monitor is None:
            return ns.fail(IRCNotSupported(
                "the server does not offer MONITOR (no MONITOR in its 005)"))
        new: list[str] = []
        for nick in nicks:
            folded = self.fold(nick)
            if folded not in self.monitored and all(self.fold(n) != folded for n in new):
                new.append(nick)
        if not new:
            return ns.succeed({})
        for nick in new:
            self.monitored[self.fold(nick)] = nick
        token = f"netshell-{self._token()}"
        for chunk in _chunks(new, 400):
            self.send(Message("MONITOR", ["+", ",".join(chunk)]))
        self.send(Message("PING", [token]))
        return self._watch(_Monitor(self, new, token))

    def unmonitor(self, *nicks: str) -> None:
        """Stop monitoring ``nicks`` (MONITOR -; the server answers nothing)."""
        gone = [n for n in nicks if self.monitored.pop(self.fold(n), None) is not None]
        for nick in gone:
            self.online.discard(self.fold(nick))
        for chunk in _chunks(gone, 400):
            self.send(Message("MONITOR", ["-", ",".join(chunk)]))

    def monitor_list(self) -> Deferred[list[str]]:
        """The nicks the server says we monitor (MONITOR L: 732 lines, then 733)."""
        if self.isupport.monitor is None:
            return ns.fail(IRCNotSupported(
                "the server does not offer MONITOR (no MONITOR in its 005)"))
        return self._request(_MonitorList(self), Message("MONITOR", ["L"]))

    def quit(self, reason: str | None = None) -> Deferred[None]:
        """Send QUIT and fire once the server closed the connection (no reconnect)."""
        self._quitting = True
        if self._reconnect_call is not None:
            self._reconnect_call.cancel()
            self._reconnect_call = None
        if self.closed or self.protocol is None:
            return ns.succeed(None)
        self.why_closed = "we quit"
        d = self.when_closed()
        self.throttle.write(Message("QUIT", [reason] if reason else []).to_bytes(), urgent=True)
        if self.timeout is not None:
            # a server that never closes: close ourselves
            call = self.clock.call_later(self.timeout, self.close)
            d.add_both(lambda r: (call.cancel() if call.active() else None, r)[1])
        return d


_WELCOME_BURST = frozenset({"CAP", "AUTHENTICATE", "NOTICE"})

#: the events a person cares about: the client logs each at INFO (see IRCClient.describe)
_SHOWN = frozenset({"message", "notice", "action", "join", "part", "quit", "kick", "nick",
                    "topic"})

#: IRC formatting (bold, color with its digits, italics, reverse, underline, reset...)
_FORMATTING = re.compile(
    r"\x03(\d{1,2}(,\d{1,2})?)?|\x04([0-9a-fA-F]{6}(,[0-9a-fA-F]{6})?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: what ends a line in a text sent: CR, LF, CRLF (IRC's own), nothing else
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _printable(text: str) -> str:
    """``text`` safe to print on a terminal: IRC formatting dropped, any other control
    character (an escape sequence a server relays) written as ``\\xNN``."""
    text = _FORMATTING.sub("", text)
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _chunks(items: list[str], room: int) -> list[list[str]]:
    """``items`` in groups whose comma-joined text fits ``room`` bytes."""
    out: list[list[str]] = []
    size = 0
    for item in items:
        n = len(item.encode()) + 1
        if not out or size + n > room:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return out


def _join_lines(pairs: list[tuple[str, str | None]], most: int) -> list[Message]:
    """JOIN messages for (channel, key) pairs (those with a key first): at most ``most``
    channels each, and short enough for a line."""
    out: list[Message] = []
    group: list[tuple[str, str | None]] = []
    size = 0
    for pair in pairs:
        n = len(pair[0].encode()) + len((pair[1] or "").encode()) + 2
        if group and (len(group) >= most or size + n > 400):
            out.append(_join_message(group))
            group, size = [], 0
        group.append(pair)
        size += n
    if group:
        out.append(_join_message(group))
    return out


def _join_message(group: list[tuple[str, str | None]]) -> Message:
    keys = [k for _, k in group if k]
    return Message("JOIN", [",".join(c for c, _ in group)] + ([",".join(keys)] if keys else []))


# ---- connecting


def connect(
    host: str,
    port: int = 6667,
    nick: str = "netshell",
    *,
    user: str | None = None,
    realname: str | None = None,
    password: str | None = None,
    sasl: tuple[str, str] | None = None,
    tls: bool = False,
    caps: Iterable[str] = DEFAULT_CAPS,
    reconnect: bool = True,
    reactor: Any = None,
    timeout: float | None = 30,
    rate: float | None = 1.0,
    burst: int = 8,
    ca: Any = None,
    verify: bool = True,
    context: Any = None,
    client_class: type[IRCClient] = IRCClient,
    alt_nicks: int = 5,
    keepalive: float | None = 120,
) -> Deferred[IRCClient]:
    """Connect to an IRC server, register, and fire with the :class:`IRCClient`.

    ``sasl=(account, password)`` logs in with SASL PLAIN (failing with SASLFailed if the
    server refuses or lacks it). ``tls=True`` speaks TLS and verifies the server's
    certificate for ``host`` (``ca``: PEM or a path to trust instead of the system's
    store; ``verify=False`` turns checking off; ``context`` gives a
    :func:`netshell.tls.client_context`). ``rate``/``burst`` set the throttle (lines per
    second after a burst; None: none). ``timeout`` bounds the connection and
    registration, and every request's reply. ``reconnect``: after the connection is lost
    (not by ``quit``), connect again with back-off and rejoin the channels.
    ``client_class``: a subclass of IRCClient with its own ``on_*`` hooks. ``alt_nicks``:
    how many next nicks (``nick_``, ``nick__``...) to try when the nick is taken.
    ``keepalive``: after that many seconds with nothing from the server, PING it; no
    answer within ``timeout``: the connection is taken for dead and dropped (then made
    again, with ``reconnect``).

    Fails with ConnectError (refused...), NickInUse, PasswordMismatch, SASLFailed,
    IRCConnectionClosed (ERROR) or IRCTimeoutError.
    """
    clock = reactor if reactor is not None else get_reactor()
    client = client_class(
        nick, user=user, realname=realname, password=password, sasl=sasl, caps=caps,
        reconnect=reconnect, rate=rate, burst=burst, timeout=timeout, clock=clock,
        alt_nicks=alt_nicks, keepalive=keepalive,
    )
    if tls and context is None:
        from netshell.tls import client_context  # pyOpenSSL only for those who use TLS

        context = client_context(host, ca=ca, verify=verify)
    client._connect_args = (host, port, context if tls else None, timeout, clock)
    return _open(client, host, port, context if tls else None, timeout, clock)


def _open(
    client: IRCClient, host: str, port: int, context: Any, timeout: float | None, clock: Any,
) -> Deferred[IRCClient]:
    ready: Deferred[IRCClient] = Deferred()
    client._ready = ready
    client._quitting = False
    factory = ns.ClientFactory.for_protocol(client.make_protocol)
    wait = timeout if timeout is not None else 30
    if context is not None:
        connecting = clock.connect_tls(host, port, factory, context, timeout=wait)
    else:
        connecting = clock.connect_tcp(host, port, factory, timeout=wait)

    def not_connected(f: Failure) -> None:
        if not ready.called:
            ready.errback(f)

    connecting.add_errback(not_connected)
    if timeout is not None:
        timer = clock.call_later(timeout, _registration_timeout, client, ready, timeout)
        ready.add_both(lambda r: (timer.cancel() if timer.active() else None, r)[1])
    return ready


def _registration_timeout(client: IRCClient, ready: Deferred[IRCClient], timeout: float) -> None:
    if ready.called:
        return
    client._registration_failed(IRCTimeoutError(f"not registered within {timeout} s"))
    client.why_closed = "registration timed out"
    if client.protocol is not None and client.protocol.transport is not None:
        client.protocol.transport.abort()
