"""The IRC server's state, with no connection in it: users, channels and their modes.

A :class:`User` is a client known to the server (from its first accepted NICK), a
:class:`Channel` a set of members with their prefixes, and :class:`ServerState` the two
registries, keyed by the case-folded name (``casemapping``: rfc1459 or ascii). Nothing here
sends anything: the server (:mod:`protocols.irc.server`) asks this module what is true and
what changed, then tells the clients. So the rules (who may join, what a mode string does)
are tested with no socket.

Example::

    >>> state = ServerState()
    >>> alice = state.add_user("Alice", conn=None)
    >>> channel, created = state.join(alice, "#Chat")
    >>> created, channel.prefixes(alice), state.find_channel("#chat") is channel
    (True, '@', True)
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from protocols.irc.core import casefold

__all__ = [
    "CHANNEL_MODES",
    "Channel",
    "Mask",
    "ModeChange",
    "ModeError",
    "ServerState",
    "User",
    "compile_mask",
    "mask_matches",
    "utf8_len",
]

#: the channel modes, by kind as CHANMODES gives them: lists, always a parameter, a
#: parameter when set, never a parameter (ISUPPORT CHANMODES=beI,k,l,imnpst)
LIST_MODES = "beI"
PARAM_MODES = "k"
SET_PARAM_MODES = "l"
FLAG_MODES = "imnpst"
#: the membership modes and their prefixes, highest first (PREFIX=(ov)@+)
PREFIX_MODES = "ov"
PREFIX_CHARS = "@+"
CHANNEL_MODES = LIST_MODES + PARAM_MODES + SET_PARAM_MODES + FLAG_MODES + PREFIX_MODES
USER_MODES = "iow"
#: the longest mask a ban, exception or invite list holds (bytes): its RPL_BANLIST line,
#: with the server, the nick, the channel and the setter's source, fits 512 bytes
MAX_MASK_BYTES = 200

#: the characters a nick may hold (Modern IRC: no space, comma, '*', '?', '!', '@'; not
#: starting with '$', ':', a channel type or a digit; we keep to RFC 2812's set)
_NICK_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")


@dataclass(eq=False)
class User:
    """A client with a nick (registered or on its way)."""

    nick: str
    conn: Any = None  # what sends to this user (the server's protocol)
    username: str = ""
    hostname: str = "localhost"
    realname: str = ""
    modes: set[str] = field(default_factory=set)
    away: str | None = None
    account: str | None = None
    registered: bool = False
    signon: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)
    #: the channels the user is on, by folded name
    channels: dict[str, Channel] = field(default_factory=dict)
    #: the channels the user was invited to and has not joined since (the invite is the
    #: user's, not its nick's: it goes when the user quits, or the channel goes)
    invites: set[Channel] = field(default_factory=set)

    @property
    def source(self) -> str:
        """``nick!user@host``: how the user is named as the source of a message."""
        return f"{self.nick}!{self.username}@{self.hostname}"

    @property
    def oper(self) -> bool:
        return "o" in self.modes

    def __repr__(self) -> str:
        return f"<User {self.source}>"


@dataclass(frozen=True)
class ModeChange:
    """One mode changed: ``+`` or ``-``, the mode letter, its parameter (or None)."""

    sign: str
    mode: str
    param: str | None = None


@dataclass(frozen=True)
class ModeError:
    """A mode refused: the numeric and its parameters after the client's name."""

    numeric: str
    params: tuple[str, ...]


@dataclass(eq=False)
class Channel:
    """A channel: its members (user -> their membership modes, e.g. ``"o"``), modes,
    topic and lists."""

    name: str
    created: int = field(default_factory=lambda: int(time.time()))
    topic: str = ""
    topic_by: str = ""
    topic_at: int = 0
    modes: set[str] = field(default_factory=lambda: {"n", "t"})
    key: str | None = None
    limit: int | None = None
    members: dict[User, str] = field(default_factory=dict)
    #: the list modes' entries: mode -> [(mask, set by, set at)]; MAXLIST counts them all
    lists: dict[str, list[tuple[str, str, int]]] = field(
        default_factory=lambda: {m: [] for m in LIST_MODES}
    )
    #: the users invited here (each :attr:`User.invites` has this channel)
    invited: set[User] = field(default_factory=set)
    #: RPL_NAMREPLY's texts, kept while the members change only by joining (a join adds
    #: its name to each; anything else clears them): (multi-prefix, userhost-in-names,
    #: bytes a text may take) -> [[names joined by spaces, their bytes]]
    names_lines: dict[tuple[bool, bool, int], list[list[Any]]] = field(
        default_factory=dict, repr=False)

    def prefixes(self, user: User, multi: bool = True) -> str:
        """The prefix characters of ``user`` here (all of them, or the highest one)."""
        modes = self.members.get(user, "")
        chars = "".join(c for m, c in zip(PREFIX_MODES, PREFIX_CHARS, strict=True) if m in modes)
        return chars if multi else chars[:1]

    def is_op(self, user: User) -> bool:
        return "o" in self.members.get(user, "")

    def is_voiced(self, user: User) -> bool:
        return "v" in self.members.get(user, "")

    def name_entry(self, user: User, multi: bool, full: bool) -> str:
        """How RPL_NAMREPLY names ``user``: its prefixes, then its nick (or source)."""
        return self.prefixes(user, multi) + (user.source if full else user.nick)

    def names(self, multi: bool, full: bool, budget: int,
              hide: Callable[[User], bool] | None = None) -> list[str]:
        """The members' names as RPL_NAMREPLY gives them, joined by spaces into texts of
        at most ``budget`` bytes of UTF-8 each; the members for which ``hide`` is true left
        out. Without ``hide`` the texts are kept until the members change (a join adds to
        them: a thousand joins cost a thousand names, not half a million)."""
        if hide is not None:
            lines: list[list[Any]] = []
            for user in self.members:
                if not hide(user):
                    _add_name(lines, self.name_entry(user, multi, full), budget)
            return [text for text, _ in lines]
        key = (multi, full, budget)
        kept = self.names_lines.get(key)
        if kept is None:
            kept = self.names_lines[key] = []
            for user in self.members:
                _add_name(kept, self.name_entry(user, multi, full), budget)
        return [text for text, _ in kept]

    def public(self, user: User) -> bool:
        """Whether ``user`` may learn that the channel exists and who is on it: it is
        neither secret nor private (+s, +p), or ``user`` is on it (RFC 2811 4.2.6)."""
        return user in self.members or not ("s" in self.modes or "p" in self.modes)

    @property
    def symbol(self) -> str:
        """The RPL_NAMREPLY symbol: ``@`` secret, ``*`` private, ``=`` public."""
        if "s" in self.modes:
            return "@"
        return "*" if "p" in self.modes else "="

    def mode_string(self, show_key: bool = True) -> tuple[str, list[str]]:
        """The channel's modes as RPL_CHANNELMODEIS gives them: ``+ntk``, [key]."""
        letters = "".join(sorted(self.modes))
        args: list[str] = []
        if self.key is not None:
            letters += "k"
            args.append(self.key if show_key else "*")
        if self.limit is not None:
            letters += "l"
            args.append(str(self.limit))
        return "+" + letters, args

    def __repr__(self) -> str:
        return f"<Channel {self.name} {len(self.members)} members>"


def _add_name(lines: list[list[Any]], entry: str, budget: int) -> None:
    """Add ``entry`` to the last text of ``lines``, or start a new one where it would not
    fit in ``budget`` bytes."""
    size = len(entry.encode("utf-8"))
    if lines and lines[-1][1] + 1 + size <= budget:
        last = lines[-1]
        last[0] = f"{last[0]} {entry}"
        last[1] += 1 + size
    else:
        lines.append([entry, size])


def utf8_len(text: str) -> int:
    """``text``'s length in bytes of UTF-8 (what the IRC limits count)."""
    return len(text.encode("utf-8", "surrogateescape"))


class Mask:
    """A wildcard mask made ready to match many names: ``*`` any run of characters,
    ``?`` one character, everything else itself (case-folded by ``casemapping``). There
    is no escape: ``\\`` is a character of nicks (Modern IRC's ``\\*`` is not read as
    a literal ``*``, as InspIRCd's and Solanum's ``match`` do not).

    Matching takes time linear in the name times the mask, never more: the runs between
    the stars are found left to right, each where it first fits (a run that fits
    earlier leaves the rest of the name no worse off), which is what matching with
    backtracking only to the last ``*`` comes to. A regular expression ``.*a.*a.*b``
    backtracks through every way to place each ``a`` instead: ``*a*a*a*a*b`` against
    300 characters took seconds.

    >>> Mask("*!*@Host").match("bob!b@host"), Mask("a?c").match("abd")
    (True, False)
    """

    __slots__ = ("_first", "_last", "_middle", "_whole")

    def __init__(self, mask: str, casemapping: str = "rfc1459") -> None:
        runs = casefold(mask, casemapping).split("*")
        self._whole: bool = len(runs) == 1  # no star: the run is the whole name
        self._first = _run(runs[0])
        self._last = _run(runs[-1])
        self._middle = [_run(r) for r in runs[1:-1] if r]

    def match(self, name: str) -> bool:
        """Whether ``name`` (already case-folded) matches the mask."""
        first, last = self._first, self._last
        if self._whole:
            return len(name) == first[0] and _run_at(first, name, 0)
        end = len(name) - last[0]
        if end < first[0] or not _run_at(first, name, 0) or not _run_at(last, name, end):
            return False
        pos = first[0]
        for run in self._middle:
            pos = _run_find(run, name, pos, end)
            if pos < 0:
                return False
        return True


#: a run of a mask between stars: its length, and the text (no '?' in it) or the
#: pattern (literal characters and '.' for each '?', so of fixed length: it cannot
#: backtrack)
_Run = tuple[int, str | re.Pattern[str]]


def _run(text: str) -> _Run:
    if "?" not in text:
        return len(text), text
    return len(text), re.compile(
        "".join("." if c == "?" else re.escape(c) for c in text), re.DOTALL)


def _run_at(run: _Run, name: str, pos: int) -> bool:
    """Whether ``run`` is in ``name`` at ``pos``."""
    size, what = run
    if isinstance(what, str):
        return name.startswith(what, pos)
    return what.match(name, pos, pos + size) is not None


def _run_find(run: _Run, name: str, pos: int, end: int) -> int:
    """Where the first ``run`` in ``name[pos:end]`` ends, or -1."""
    size, what = run
    if isinstance(what, str):
        at = name.find(what, pos, end)
        return at + size if at >= 0 else -1
    found = what.search(name, pos, end)
    return found.end() if found is not None else -1


@functools.lru_cache(maxsize=4096)
def compile_mask(mask: str, casemapping: str = "rfc1459") -> Mask:
    """The :class:`Mask` for ``mask`` (kept: a ban is matched at every message)."""
    return Mask(mask, casemapping)


def mask_matches(mask: str, name: str, casemapping: str = "rfc1459") -> bool:
    """Whether ``name`` (e.g. ``nick!user@host``) matches ``mask`` (``*`` any run,
    ``?`` one character), names compared case-folded.

    >>> mask_matches("*!*@Host", "bob!b@host"), mask_matches("a?c", "abd")
    (True, False)
    """
    return compile_mask(mask, casemapping).match(casefold(name, casemapping))


def normalize_mask(mask: str) -> str:
    """A ban-like mask made whole: ``nick`` -> ``nick!*@*``, ``u@h`` -> ``*!u@h``."""
    if "!" not in mask and "@" not in mask:
        return mask + "!*@*"
    if "!" not in mask:
        return "*!" + mask
    if "@" not in mask:
        return mask + "@*"
    return mask


class ServerState:
    """The users and channels of one server, and the limits ISUPPORT announces."""

    def __init__(
        self,
        casemapping: str = "rfc1459",
        *,
        nicklen: int = 30,
        channellen: int = 50,
        topiclen: int = 390,
        kicklen: int = 390,
        awaylen: int = 390,
        max_channels: int = 50,
        max_list_entries: int = 100,
        whowas_nicks: int = 1000,
        modes_per_command: int = 4,
    ) -> None:
        casefold("", casemapping)  # refuses an unknown mapping
        self.casemapping = casemapping
        self.nicklen = nicklen
        self.channellen = channellen
        self.topiclen = topiclen
        self.kicklen = kicklen
        self.awaylen = awaylen
        self.max_channels = max_channels
        self.max_list_entries = max_list_entries
        self.modes_per_command = modes_per_command
        #: how many nicks WHOWAS remembers (10 entries each at most)
        self.whowas_nicks = whowas_nicks
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        #: the most registered users seen at once
        self.max_users = 0
        #: how many registered users there are, and how many of them have each user mode
        #: (kept as they change: LUSERS at every registration costs no walk over users)
        self._registered = 0
        self.mode_counts: dict[str, int] = {}
        #: nick (folded) -> the last users who had it, newest first: (nick, user, host,
        #: realname, when) for WHOWAS
        self.whowas: dict[str, list[tuple[str, str, str, str, int]]] = {}

    # ---- names

    def fold(self, name: str) -> str:
        return casefold(name, self.casemapping)

    def valid_nick(self, nick: str) -> bool:
        return 0 < utf8_len(nick) <= self.nicklen and _NICK_RE.match(nick) is not None

    def valid_channel(self, name: str) -> bool:
        return (
            1 < utf8_len(name) <= self.channellen
            and name[0] == "#"
            and not any(c in name for c in " ,\x07:")
            and name.isprintable()
        )

    def find_user(self, nick: str) -> User | None:
        return self.users.get(self.fold(nick))

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(self.fold(name))

    # ---- users

    def add_user(self, nick: str, conn: Any = None) -> User:
        """A new user holding ``nick`` (ValueError if it is taken)."""
        key = self.fold(nick)
        if key in self.users:
            raise ValueError(f"nick in use: {nick}")
        user = User(nick, conn)
        self.users[key] = user
        return user

    def rename(self, user: User, nick: str) -> None:
        """Give ``user`` the nick ``nick`` (ValueError if another user holds it)."""
        old, new = self.fold(user.nick), self.fold(nick)
        other = self.users.get(new)
        if other is not None and other is not user:
            raise ValueError(f"nick in use: {nick}")
        if user.registered:
            self._remember(user)
        del self.users[old]
        self.users[new] = user
        user.nick = nick
        for channel in user.channels.values():
            channel.names_lines.clear()

    def set_host(self, user: User, username: str, hostname: str) -> None:
        """Give ``user`` a new username and host (its source changes)."""
        user.username = username
        user.hostname = hostname
        for channel in user.channels.values():
            channel.names_lines.clear()

    def register(self, user: User) -> None:
        if user.registered:
            return
        user.registered = True
        self._registered += 1
        for mode in user.modes:
            self.mode_counts[mode] = self.mode_counts.get(mode, 0) + 1
        self.max_users = max(self.max_users, self._registered)

    def set_user_mode(self, user: User, mode: str, on: bool) -> bool:
        """Set or unset a user mode; whether it changed."""
        if on == (mode in user.modes):
            return False
        if on:
            user.modes.add(mode)
        else:
            user.modes.discard(mode)
        if user.registered:
            self.mode_counts[mode] = self.mode_counts.get(mode, 0) + (1 if on else -1)
        return True

    def remove_user(self, user: User) -> list[Channel]:
        """Forget ``user``: off every channel (empty ones go) and out of the nick table.
        Returns the channels it was on."""
        channels = list(user.channels.values())
        for channel in channels:
            self.part(user, channel)
        for channel in user.invites:
            channel.invited.discard(user)
        user.invites.clear()
        if self.users.get(self.fold(user.nick)) is user:
            del self.users[self.fold(user.nick)]
            if user.registered:
                self._remember(user)
                self._registered -= 1
                for mode in user.modes:
                    self.mode_counts[mode] -= 1
        return channels

    def _remember(self, user: User) -> None:
        key = self.fold(user.nick)
        entries = self.whowas.pop(key, [])
        self.whowas[key] = entries  # the most recently gone nick last
        if len(self.whowas) > self.whowas_nicks:  # the oldest nick's history goes
            del self.whowas[next(iter(self.whowas))]
        entries.insert(0, (user.nick, user.username, user.hostname, user.realname,
                           int(time.time())))
        del entries[10:]

    def registered_count(self) -> int:
        return self._registered

    def neighbours(self, user: User) -> set[User]:
        """The users sharing a channel with ``user`` (``user`` not included)."""
        out: set[User] = set()
        for channel in user.channels.values():
            out.update(channel.members)
        out.discard(user)
        return out

    # ---- channels

    def join(self, user: User, name: str) -> tuple[Channel, bool]:
        """Put ``user`` on channel ``name`` (made if new, ``user`` its operator); returns
        the channel and whether it was made. No checks of keys, bans or limits here:
        :meth:`may_join` says those."""
        key = self.fold(name)
        channel = self.channels.get(key)
        created = channel is None
        if channel is None:
            channel = self.channels[key] = Channel(name)
        if user not in channel.members:
            channel.members[user] = "o" if created else ""
            for (multi, full, budget), lines in channel.names_lines.items():
                _add_name(lines, channel.name_entry(user, multi, full), budget)
        user.channels[key] = channel
        if user in channel.invited:  # an invite lets its user in once
            channel.invited.discard(user)
            user.invites.discard(channel)
        return channel, created

    def invite(self, user: User, channel: Channel) -> None:
        """Invite ``user`` to ``channel`` (see :meth:`may_join`)."""
        channel.invited.add(user)
        user.invites.add(channel)

    def may_join(self, user: User, channel: Channel, key: str | None) -> str | None:
        """The numeric refusing ``user`` a place on ``channel`` (None: welcome), in the
        order servers check them: ban (474), invite only (473), key (475), limit (471).

        An invite lets its user past +i and +l, not past a ban or a key, as Solanum's
        (and ircd-ratbox's, Charybdis's) can_join: RFC 2811 4.3.1 refuses a banned user
        unless an exception (+e) matches, invited or not. (InspIRCd and ngIRCd let an
        invite past a ban too.)"""
        invited = user in channel.invited
        if self.banned(user, channel):
            return "474"
        if "i" in channel.modes and not invited and not any(
            mask_matches(m, user.source, self.casemapping) for m, _, _ in channel.lists["I"]
        ):
            return "473"
        if channel.key is not None and key != channel.key:
            return "475"
        if channel.limit is not None and len(channel.members) >= channel.limit and not invited:
            return "471"
        return None

    def banned(self, user: User, channel: Channel) -> bool:
        source = user.source
        cm = self.casemapping
        return any(mask_matches(m, source, cm) for m, _, _ in channel.lists["b"]) and not any(
            mask_matches(m, source, cm) for m, _, _ in channel.lists["e"]
        )

    def part(self, user: User, channel: Channel) -> None:
        """Take ``user`` off ``channel``; a channel left empty goes."""
        if channel.members.pop(user, None) is not None:
            channel.names_lines.clear()
        key = self.fold(channel.name)
        user.channels.pop(key, None)
        if not channel.members and self.channels.get(key) is channel:
            del self.channels[key]
            for invited in channel.invited:  # the invites to it go with it
                invited.invites.discard(channel)
            channel.invited.clear()

    def may_speak(self, user: User, channel: Channel) -> bool:
        """Whether ``user`` may send to ``channel`` (+n, +m and bans)."""
        member = user in channel.members
        if "n" in channel.modes and not member:
            return False
        if member and (channel.is_op(user) or channel.is_voiced(user)):
            return True
        if "m" in channel.modes:
            return False
        return not self.banned(user, channel)

    def visible(self, channel: Channel, user: User) -> bool:
        """Whether ``user`` may see ``channel`` (a secret one only from inside)."""
        return "s" not in channel.modes or user in channel.members

    # ---- modes

    def apply_channel_modes(
        self, user: User, channel: Channel, modestring: str, args: list[str]
    ) -> tuple[list[ModeChange], list[ModeError], list[str]]:
        """Apply a MODE command's changes, as ``user`` (an operator of ``channel``: the
        caller checked). Returns the changes made, the errors to tell, and the list modes
        asked for without a parameter (their lists are to be shown)."""
        changes: list[ModeChange] = []
        errors: list[ModeError] = []
        lists: list[str] = []
        sign = "+"
        args = list(args)
        with_param = 0
        for mode in modestring:
            if mode in "+-":
                sign = mode
                continue
            if mode not in CHANNEL_MODES:
                errors.append(ModeError("472", (mode, "is unknown mode char to me")))
                continue
            needs = (mode in LIST_MODES or mode in PARAM_MODES or mode in PREFIX_MODES
                     or (mode in SET_PARAM_MODES and sign == "+"))
            param: str | None = None
            if needs:
                if mode in LIST_MODES and not args:
                    if mode not in lists:
                        lists.append(mode)
                    continue
                if not args:
                    if mode == "k" and sign == "-":
                        param = "*"
                    else:
                        continue  # Modern IRC: a type B or C mode set without one is ignored
                else:
                    param = args.pop(0)
                    with_param += 1
                    if with_param > self.modes_per_command:
                        # ISUPPORT MODES: at most this many modes with a parameter in one
                        # command (Modern IRC: types A, B, C and the prefixes); one more is
                        # skipped, its parameter with it, as Solanum and Hybrid do, and the
                        # flags after it are still applied (InspIRCd and ngIRCd stop at
                        # the limit, dropping the flags unsaid)
                        continue
            change = self._apply_one(user, channel, sign, mode, param, errors)
            if change is not None:
                changes.append(change)
        return changes, errors, lists

    def _apply_one(
        self, user: User, channel: Channel, sign: str, mode: str, param: str | None,
        errors: list[ModeError],
    ) -> ModeChange | None:
        add = sign == "+"
        if mode in FLAG_MODES:
            if add == (mode in channel.modes):
                return None
            (channel.modes.add if add else channel.modes.discard)(mode)
            return ModeChange(sign, mode)
        if mode == "l" and not add:
            if channel.limit is None:
                return None
            channel.limit = None
            return ModeChange("-", "l")
        assert param is not None
        if mode in PREFIX_MODES:
            target = self.find_user(param)
            if target is None:
                errors.append(ModeError("401", (param, "No such nick/channel")))
                return None
            if target not in channel.members:
                errors.append(ModeError("441", (target.nick, channel.name,
                                                "They aren't on that channel")))
                return None
            have = channel.members[target]
            if add == (mode in have):
                return None
            channel.members[target] = (
                "".join(m for m in PREFIX_MODES if m in have or m == mode) if add
                else have.replace(mode, "")
            )
            channel.names_lines.clear()
            return ModeChange(sign, mode, target.nick)
        if mode == "k":
            if add:
                if channel.key is not None:
                    errors.append(ModeError("467", (channel.name, "Key already set")))
                    return None
                if not param or any(c in param for c in " ,:") or len(param) > 23:
                    errors.append(ModeError("525", (channel.name, "Key is not well-formed")))
                    return None
                channel.key = param
                return ModeChange("+", "k", param)
            if channel.key is None:
                return None
            channel.key = None
            return ModeChange("-", "k", "*")
        if mode == "l":
            try:
                limit = int(param)
            except ValueError:
                limit = 0
            if limit <= 0:
                errors.append(ModeError("696", (channel.name, "l", param,
                                                "Invalid limit")))
                return None
            channel.limit = limit
            return ModeChange("+", "l", str(limit))
        # a list mode with a mask (one word: it is given back as a parameter)
        if not param or " " in param or param[0] == ":":
            return None
        mask = normalize_mask(param)
        if utf8_len(mask) > MAX_MASK_BYTES:
            return None  # RPL_BANLIST (with the channel and who set it) must fit 512 bytes
        entries = channel.lists[mode]
        folded = self.fold(mask)
        found = next((e for e in entries if self.fold(e[0]) == folded), None)
        if add:
            if found is not None:
                return None
            if sum(len(x) for x in channel.lists.values()) >= self.max_list_entries:
                errors.append(ModeError("478", (channel.name, mask, "Channel list is full")))
                return None
            entries.append((mask, user.source, int(time.time())))
            return ModeChange("+", mode, mask)
        if found is None:
            return None
        entries.remove(found)
        return ModeChange("-", mode, found[0])

    def iter_channels(self) -> Iterator[Channel]:
        return iter(list(self.channels.values()))


def format_mode_changes(changes: list[ModeChange]) -> list[str]:
    """The changes as MODE's parameters: ``["+o-v", "alice", "bob"]``."""
    out = ""
    sign = ""
    params: list[str] = []
    for c in changes:
        if c.sign != sign:
            out += c.sign
            sign = c.sign
        out += c.mode
        if c.param is not None:
            params.append(c.param)
    return [out, *params]
