"""The IMAP4rev1 client (RFC 3501, with IDLE, MOVE, UIDPLUS, LITERAL+/-, NAMESPACE, ID,
ENABLE, UNSELECT, SASL-IR) on netshell's reactor.

``client = await imap.connect(host, user="alice", password="secret")`` answers with a
logged-in :class:`IMAPClient` (``tls="starttls"`` or ``"implicit"`` for TLS, verifying
the server's certificate). Each method sends one command (a few for ``move`` without
MOVE) and returns a Deferred of its parsed result:

- ``capability``, ``login``, ``authenticate_plain``, ``logout``, ``noop``;
- ``list``/``lsub`` (:class:`~.values.ListEntry`), ``status`` (dict), ``select`` /
  ``examine`` (:class:`MailboxInfo`), ``create``, ``delete``, ``rename``, ``subscribe``,
  ``unsubscribe``, ``namespace``, ``id``, ``enable``;
- ``search`` (:class:`~.values.SearchKey` values, or raw text) and ``uid_search``;
  ``fetch`` (``{number: {item: value}}``, values typed: ENVELOPE an
  :class:`~.values.Envelope`, BODYSTRUCTURE a body structure, ``BODY[]`` bytes...);
  ``store``; ``copy``; ``move`` (MOVE when offered, else COPY + STORE + EXPUNGE);
  ``append`` (LITERAL+ when offered); ``expunge``; ``close``/``unselect``;
- ``idle(callback)``: the server's untagged responses go to ``callback`` until
  ``stop()`` (DONE).

Commands go one at a time, in the order they were asked for (a call made while another
is under way waits its turn), so each untagged answer belongs to the command under way;
untagged responses the server sends of its own accord (EXISTS, EXPUNGE, FETCH FLAGS when
another session changes the mailbox) update :attr:`IMAPClient.mailbox` and go to the
handlers of :meth:`IMAPClient.on_untagged`. A NO fails the call with :class:`IMAPNo`, a
BAD with :class:`IMAPBad` (both :class:`IMAPCommandError`, carrying the response and its
code); a lost connection with :class:`IMAPConnectionClosed`; silence for ``timeout``
seconds with :class:`IMAPTimeoutError` (and the connection is dropped).

Example (no server needed to build what a command sends)::

    >>> from datetime import date
    >>> search_key("UNSEEN", ("FROM", "ann"), ("SINCE", date(2024, 1, 31)))
    SearchKey(name='AND', args=(SearchKey(name='UNSEEN', args=()), \
SearchKey(name='FROM', args=('ann',)), SearchKey(name='SINCE', \
args=(datetime.date(2024, 1, 31),))))
"""

from __future__ import annotations

import base64
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any

import netshell as ns
from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from netshell.reactor import get_reactor
from protocols.mail.imap.parser import ResponseReader, parse_fetch_items
from protocols.mail.imap.values import (
    Command,
    Continuation,
    FetchItem,
    IMAPError,
    IMAPParseError,
    ListEntry,
    Response,
    ResponseCode,
    ResponseParseError,
    SearchKey,
    SequenceSet,
)
from protocols.mail.imap.writer import format_command, format_search_key

__all__ = [
    "IMAPBad",
    "IMAPClient",
    "IMAPCommandError",
    "IMAPConnectionClosed",
    "IMAPNo",
    "IMAPNotSupported",
    "IMAPTimeoutError",
    "Idle",
    "MailboxInfo",
    "connect",
    "fetch_items",
    "message_set",
    "search_key",
]

log = logging.getLogger("netshell.imap.client")

_List = list  # (IMAPClient.list hides the builtin in the class body)


# ---- errors


class IMAPCommandError(IMAPError):
    """The server refused a command: ``response`` is its tagged answer, ``code`` the
    response code (``TRYCREATE``, ``AUTHENTICATIONFAILED``...) or None."""

    def __init__(self, command: str, response: Response) -> None:
        code = f" [{response.code.name}]" if response.code else ""
        super().__init__(f"{command}: {response.kind}{code} {response.text}")
        self.command = command
        self.response = response
        self.code = response.code


class IMAPNo(IMAPCommandError):
    """The server said NO: the command was understood and failed."""


class IMAPBad(IMAPCommandError):
    """The server said BAD: it did not understand the command (or it came at the wrong
    time)."""


class IMAPNotSupported(IMAPError):
    """The server does not offer what the call needs (a capability it lacks)."""


class IMAPConnectionClosed(IMAPError, ns.ConnectionClosed):
    """The connection ended; ``bye`` is the server's BYE text when it said one."""

    def __init__(self, message: str, bye: str | None = None) -> None:
        super().__init__(message)
        self.bye = bye


class IMAPTimeoutError(IMAPError, ns.TimeoutError):
    """No answer within the timeout: the connection is dropped."""


# ---- helpers for building commands


def message_set(which: int | str | Iterable[int] | SequenceSet) -> SequenceSet:
    """A sequence set from a number, ``"1:*"``-style text, numbers, or a SequenceSet.

    >>> str(message_set([5, 1, 2, 3])), str(message_set("2:*")), str(message_set(7))
    ('1:3,5', '2:*', '7')
    """
    if isinstance(which, SequenceSet):
        return which
    if isinstance(which, int):
        return SequenceSet(((which, which),))
    if isinstance(which, str):
        return SequenceSet.parse(which)
    return SequenceSet.of(which)


def search_key(*criteria: str | tuple[Any, ...] | SearchKey) -> SearchKey:
    """Search keys from simple pieces: a name (``"UNSEEN"``), a tuple of a name and its
    arguments (``("FROM", "ann")``, ``("SINCE", date)``, ``("UID", "1:10")``,
    ``("NOT", ("SEEN",))``, ``("OR", a, b)``), or a SearchKey; several mean AND."""
    keys = [_key(c) for c in criteria]
    if not keys:
        return SearchKey("ALL")
    return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))


def _key(c: str | tuple[Any, ...] | SearchKey) -> SearchKey:
    if isinstance(c, SearchKey):
        return c
    if isinstance(c, str):
        return SearchKey(c.upper())
    name = str(c[0]).upper()
    args = c[1:]
    if name in ("NOT", "OR"):
        return SearchKey(name, tuple(_key(a) for a in args))
    if name in ("UID", "SET"):
        return SearchKey(name, (message_set(args[0]),))
    if name in ("LARGER", "SMALLER"):
        return SearchKey(name, (int(args[0]),))
    return SearchKey(name, tuple(args))


def fetch_items(items: str | Iterable[str | FetchItem]) -> tuple[FetchItem, ...]:
    """Fetch items from text (``"(FLAGS BODY.PEEK[HEADER])"``, ``"ALL"``) or a list of
    names and FetchItems. ValueError for what is not a fetch item.

    >>> [str(i) for i in fetch_items("(UID BODY.PEEK[1.MIME]<0.10>)")]
    ['UID', 'BODY.PEEK[1.MIME]<0.10>']
    """
    if isinstance(items, str):
        text = items.strip()
        if not text.startswith("("):
            macros = {"ALL": "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
                      "FAST": "(FLAGS INTERNALDATE RFC822.SIZE)",
                      "FULL": "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY)"}
            text = macros.get(text.upper(), f"({text})")
        try:
            return parse_fetch_items(text.encode("ascii"))
        except (IMAPParseError, UnicodeEncodeError) as e:
            raise ValueError(f"not fetch items: {items!r} ({e})") from None
    result: list[FetchItem] = []
    for item in items:
        result.extend([item] if isinstance(item, FetchItem) else fetch_items(item))
    return tuple(result)


@dataclass
class MailboxInfo:
    """What SELECT or EXAMINE told of a mailbox, kept up to date while it is selected:
    ``exists`` and ``recent`` counts, ``flags``, ``permanent_flags``, ``uidvalidity``,
    ``uidnext``, ``unseen`` (the first unseen message's number), ``read_only``."""

    name: str
    exists: int = 0
    recent: int = 0
    flags: tuple[str, ...] = ()
    permanent_flags: tuple[str, ...] = ()
    uidvalidity: int | None = None
    uidnext: int | None = None
    unseen: int | None = None
    read_only: bool = False


# ---- the command machinery


@dataclass
class _Pending:
    tag: str
    name: str
    pieces: list[bytes]
    done: Deferred[tuple[Response, list[Response]]]
    untagged: list[Response] = field(default_factory=list)
    on_continuation: Callable[[Continuation], None] | None = None
    on_untagged: Callable[[Response], None] | None = None
    sent: bool = False


class _IMAPProtocol(ns.Protocol):
    def __init__(self, client: IMAPClient) -> None:
        self.client = client
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client._data_received(data)

    def connection_lost(self, reason: Failure) -> None:
        self.client._connection_lost(reason)


class Idle:
    """An IDLE under way (:meth:`IMAPClient.idle`): ``started`` fires when the server
    agreed (``+``); :meth:`stop` sends DONE and fires when the server has finished it."""

    def __init__(self, client: IMAPClient, done: Deferred[Any]) -> None:
        self._client = client
        self.started: Deferred[None] = Deferred()
        self.finished = done
        self._stopping = False

    def stop(self) -> Deferred[Any]:
        """End the IDLE (``DONE``); the Deferred fires when the server has said OK."""
        if not self._stopping:
            self._stopping = True
            if self.started.called:
                self._client._write(b"DONE\r\n")
            else:
                self.started.add_callback(lambda _: self._client._write(b"DONE\r\n"))
        return self.finished


class IMAPClient:
    """A connection to an IMAP server (made by :func:`connect`; see the module's
    docstring for the methods). ``capabilities`` (upper case), ``state``
    (``"not authenticated"``, ``"authenticated"``, ``"selected"``, ``"logout"``),
    ``mailbox`` (the selected :class:`MailboxInfo`, or None), ``greeting``."""

    def __init__(self, *, timeout: float | None = 30, reactor: Any = None) -> None:
        self.timeout = timeout
        self.reactor = reactor if reactor is not None else get_reactor()
        self.capabilities: frozenset[str] = frozenset()
        self.state = "not authenticated"
        self.mailbox: MailboxInfo | None = None
        self.greeting: Response | None = None
        self.protocol: _IMAPProtocol | None = None
        self._reader = ResponseReader()
        self._queue: deque[_Pending] = deque()
        self._current: _Pending | None = None
        self._tags = 0
        self._handlers: list[Callable[[Response], Any]] = []
        self._greeted: Deferred[Response] = Deferred()
        self._closed: IMAPConnectionClosed | None = None
        self._bye: str | None = None
        self._timer: Any = None

    def __repr__(self) -> str:
        where = ""
        if self.protocol is not None and self.protocol.transport is not None:
            peer = self.protocol.transport.peer
            where = f" {peer}" if peer else ""
        box = f" {self.mailbox.name!r}" if self.mailbox else ""
        return f"<IMAPClient{where} {self.state}{box}>"

    # -- plumbing

    def on_untagged(self, handler: Callable[[Response], Any]) -> Callable[[], None]:
        """Call ``handler(response)`` with every untagged response; returns a function
        that removes it."""
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def _write(self, data: bytes) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.write(data)

    def _next_tag(self) -> str:
        self._tags += 1
        return f"A{self._tags:04d}"

    def _command(
        self, name: str, args: tuple[Any, ...] = (), *, uid: bool = False,
        on_continuation: Callable[[Continuation], None] | None = None,
        on_untagged: Callable[[Response], None] | None = None,
    ) -> Deferred[tuple[Response, list[Response]]]:
        """Queue a command; fires with (tagged OK, untagged responses) or fails."""
        done: Deferred[tuple[Response, list[Response]]] = Deferred()
        if self._closed is not None:
            done.errback(self._closed)
            return done
        tag = self._next_tag()
        pieces = format_command(Command(tag, name, args, uid),
                                literal_plus="LITERAL+" in self.capabilities,
                                literal_minus="LITERAL-" in self.capabilities)
        self._queue.append(_Pending(tag, name if not uid else f"UID {name}", pieces, done,
                                    on_continuation=on_continuation,
                                    on_untagged=on_untagged))
        self._pump()
        return done

    def _pump(self) -> None:
        if self._current is not None or not self._queue or self.protocol is None:
            return
        pending = self._current = self._queue.popleft()
        self._write(pending.pieces.pop(0))
        pending.sent = True
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        current = self._current
        if self.timeout is not None and current is not None and current.name != "IDLE":
            self._timer = self.reactor.call_later(self.timeout, self._timed_out)

    def _timed_out(self) -> None:
        current = self._current
        what = current.name if current else "the server"
        error = IMAPTimeoutError(f"{what}: no answer within {self.timeout} s")
        self._fail_all(error)
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.abort()

    def _data_received(self, data: bytes) -> None:
        timer = self._timer
        if timer is not None and timer.active():
            timer.reset(self.timeout)  # heard from the server: the wait starts again
        reader = self._reader
        reader.receive(data)
        while True:
            try:
                response = reader.next_response()
            except ResponseParseError as e:
                if reader.failed:
                    # over a limit: the stream cannot be followed any further
                    self._fail_all(IMAPConnectionClosed(f"unreadable server: {e}"))
                    self.abort()
                    return
                log.warning("unreadable response from the server: %s", e)
                continue
            if response is None or reader is not self._reader:
                return
            self._dispatch(response)

    def _dispatch(self, response: Response | Continuation) -> None:
        current = self._current
        if isinstance(response, Continuation):
            if current is not None and current.pieces:
                self._write(current.pieces.pop(0))
            elif current is not None and current.on_continuation is not None:
                current.on_continuation(response)
            else:
                log.warning("a continuation nobody asked for: %r", response.text)
            return
        if response.tag == "*":
            self._untagged(response)
            return
        if current is None or response.tag != current.tag:
            log.warning("a tagged response for no command under way: %r", response)
            return
        self._current = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if response.code is not None and response.code.name == "CAPABILITY":
            self.capabilities = frozenset(response.code.value)
        if response.kind == "OK":
            if current.name == "STARTTLS":
                # Whatever came after this OK, before the handshake, is an attacker's
                # (the STARTTLS command injection of CVE-2011-0411's kind): a fresh
                # reader now, so the rest of this data is never read.
                self._reader = ResponseReader()
            current.done.callback((response, current.untagged))
        elif response.kind == "NO":
            current.done.errback(IMAPNo(current.name, response))
        else:
            current.done.errback(IMAPBad(current.name, response))
        self._pump()

    def _untagged(self, response: Response) -> None:
        kind = response.kind
        box = self.mailbox
        if not self._greeted.called and kind in ("OK", "PREAUTH", "BYE"):
            self.greeting = response
            if kind == "PREAUTH":
                self.state = "authenticated"
            if response.code is not None and response.code.name == "CAPABILITY":
                self.capabilities = frozenset(response.code.value)
            if kind == "BYE":
                self._bye = response.text
                self._greeted.errback(IMAPConnectionClosed(
                    f"the server refused the connection: {response.text}", response.text))
            else:
                self._greeted.callback(response)
            return
        if kind == "CAPABILITY":
            self.capabilities = frozenset(response.data)
        elif kind == "BYE":
            self._bye = response.text
        elif box is not None:
            if kind == "EXISTS":
                box.exists = response.number or 0
            elif kind == "RECENT":
                box.recent = response.number or 0
            elif kind == "EXPUNGE":
                box.exists = max(0, box.exists - 1)
            elif kind == "FLAGS":
                box.flags = response.data
            elif kind in ("OK", "NO") and response.code is not None:
                code = response.code
                if code.name == "UIDVALIDITY":
                    box.uidvalidity = code.value
                elif code.name == "UIDNEXT":
                    box.uidnext = code.value
                elif code.name == "UNSEEN":
                    box.unseen = code.value
                elif code.name == "PERMANENTFLAGS":
                    box.permanent_flags = code.value
                elif code.name == "READ-ONLY":
                    box.read_only = True
                elif code.name == "READ-WRITE":
                    box.read_only = False
        if kind == "OK" and response.code is not None and response.code.name == "ALERT":
            log.warning("server alert: %s", response.text)
        current = self._current
        if current is not None:
            current.untagged.append(response)
            if current.on_untagged is not None:
                current.on_untagged(response)
        for handler in list(self._handlers):
            try:
                handler(response)
            except Exception:
                log.exception("an untagged-response handler failed")

    def _connection_lost(self, reason: Failure) -> None:
        if self._closed is None:
            bye = f" (the server said BYE: {self._bye})" if self._bye else ""
            self._closed = IMAPConnectionClosed(f"the connection ended{bye}", self._bye)
        self.state = "logout"
        self._fail_all(self._closed)

    def _fail_all(self, error: IMAPError) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._greeted.called:
            self._greeted.errback(error)
        pending = ([self._current] if self._current is not None else []) + list(self._queue)
        self._current = None
        self._queue.clear()
        for p in pending:
            if not p.done.called:
                p.done.errback(error)

    def abort(self) -> None:
        """Drop the connection now (the waiting calls fail with IMAPConnectionClosed)."""
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.abort()

    # -- commands

    def capability(self) -> Deferred[frozenset[str]]:
        """Ask for the capabilities again (also kept in :attr:`capabilities`)."""
        return self._command("CAPABILITY").add_callback(lambda _: self.capabilities)

    def noop(self) -> Deferred[_List[Response]]:
        """NOOP: the untagged responses it brought (news of the selected mailbox)."""
        return self._command("NOOP").add_callback(lambda r: r[1])

    def check(self) -> Deferred[None]:
        return self._command("CHECK").add_callback(lambda _: None)

    def login(self, user: str, password: str) -> Deferred[IMAPClient]:
        """LOGIN; fails with IMAPNo (``[AUTHENTICATIONFAILED]``...) or, when the server
        says LOGINDISABLED (plain text, before TLS), IMAPNotSupported."""
        if "LOGINDISABLED" in self.capabilities:
            return ns.fail(IMAPNotSupported(
                "the server refuses LOGIN here (LOGINDISABLED): use TLS"))
        return self._command("LOGIN", (user, password)).add_callback(self._authenticated)

    def _authenticated(self, result: tuple[Response, _List[Response]]) -> Any:
        self.state = "authenticated"
        tagged = result[0]
        if tagged.code is None or tagged.code.name != "CAPABILITY":
            # (capabilities change with authentication: ask again)
            return self._command("CAPABILITY").add_callback(lambda _: self)
        return self

    def authenticate_plain(
        self, user: str, password: str, authzid: str = ""
    ) -> Deferred[IMAPClient]:
        """AUTHENTICATE PLAIN (RFC 4616), the response in the command when the server
        offers SASL-IR (RFC 4959), else after its ``+``."""
        if "AUTH=PLAIN" not in self.capabilities:
            return ns.fail(IMAPNotSupported("the server does not offer AUTH=PLAIN"))
        token = base64.b64encode(
            f"{authzid}\0{user}\0{password}".encode()).decode("ascii")
        if "SASL-IR" in self.capabilities:
            d = self._command("AUTHENTICATE", ("PLAIN", token))
        else:
            sent = False

            def answer(_: Continuation) -> None:
                nonlocal sent
                # a second challenge is a failure of the exchange: cancel it with "*"
                self._write(b"*\r\n" if sent else token.encode("ascii") + b"\r\n")
                sent = True

            d = self._command("AUTHENTICATE", ("PLAIN", None), on_continuation=answer)
        return d.add_callback(self._authenticated)

    def logout(self) -> Deferred[None]:
        """LOGOUT, then the connection closes (a server that closes it after its BYE,
        before its OK, has logged out too)."""
        def done(_: Any) -> None:
            self.state = "logout"
            if self.protocol is not None and self.protocol.transport is not None:
                self.protocol.transport.close()

        def closed(f: Failure) -> None:
            f.trap(IMAPConnectionClosed)
            if self._bye is None:
                f.raise_exception()
            self.state = "logout"

        return self._command("LOGOUT").add_callbacks(done, closed)

    async def __aenter__(self) -> IMAPClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        """``async with await imap.connect(...) as client:`` logs out at the end (drops
        the connection if that fails)."""
        if self.state == "logout":
            return
        try:
            await self.logout()
        except IMAPError:
            self.abort()

    def list(self, reference: str = "", pattern: str = "*") -> Deferred[_List[ListEntry]]:
        """LIST: the mailboxes matching ``pattern`` (``*`` all, ``%`` one level)."""
        return self._command("LIST", (reference, pattern)).add_callback(
            lambda r: [u.data for u in r[1] if u.kind == "LIST"])

    def lsub(self, reference: str = "", pattern: str = "*") -> Deferred[_List[ListEntry]]:
        """LSUB: the subscribed mailboxes matching ``pattern``."""
        return self._command("LSUB", (reference, pattern)).add_callback(
            lambda r: [u.data for u in r[1] if u.kind == "LSUB"])

    def status(
        self, mailbox: str,
        items: Sequence[str] = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"),
    ) -> Deferred[dict[str, int]]:
        """STATUS: ``{"MESSAGES": 3, ...}``."""
        def found(r: tuple[Response, list[Response]]) -> dict[str, int]:
            out: dict[str, int] = {}
            for u in r[1]:
                if u.kind == "STATUS":
                    out.update(u.data[1])
            return out

        return self._command("STATUS", (mailbox, tuple(i.upper() for i in items))) \
            .add_callback(found)

    def select(self, mailbox: str = "INBOX") -> Deferred[MailboxInfo]:
        """SELECT: the mailbox's counts, flags and UIDs (a :class:`MailboxInfo`, also
        :attr:`mailbox` until another is selected)."""
        return self._select("SELECT", mailbox)

    def examine(self, mailbox: str = "INBOX") -> Deferred[MailboxInfo]:
        """EXAMINE: SELECT, read-only."""
        return self._select("EXAMINE", mailbox)

    def _select(self, command: str, mailbox: str) -> Deferred[MailboxInfo]:
        self.mailbox = MailboxInfo(mailbox, read_only=command == "EXAMINE")

        def selected(r: tuple[Response, list[Response]]) -> MailboxInfo:
            assert self.mailbox is not None
            code = r[0].code
            if code is not None and code.name in ("READ-ONLY", "READ-WRITE"):
                self.mailbox.read_only = code.name == "READ-ONLY"
            self.state = "selected"
            return self.mailbox

        def failed(f: Failure) -> Failure:
            # a failed SELECT leaves no mailbox selected (RFC 3501 6.3.1)
            self.mailbox = None
            if self.state == "selected":
                self.state = "authenticated"
            return f

        return self._command(command, (mailbox,)).add_callbacks(selected, failed)

    def create(self, mailbox: str) -> Deferred[None]:
        return self._command("CREATE", (mailbox,)).add_callback(lambda _: None)

    def delete(self, mailbox: str) -> Deferred[None]:
        return self._command("DELETE", (mailbox,)).add_callback(lambda _: None)

    def rename(self, old: str, new: str) -> Deferred[None]:
        return self._command("RENAME", (old, new)).add_callback(lambda _: None)

    def subscribe(self, mailbox: str) -> Deferred[None]:
        return self._command("SUBSCRIBE", (mailbox,)).add_callback(lambda _: None)

    def unsubscribe(self, mailbox: str) -> Deferred[None]:
        return self._command("UNSUBSCRIBE", (mailbox,)).add_callback(lambda _: None)

    def search(
        self, *criteria: str | tuple[Any, ...] | SearchKey, charset: str | None = None,
        uid: bool = False, raw: str | None = None,
    ) -> Deferred[_List[int]]:
        """SEARCH: the matching message numbers (UIDs with ``uid``), sorted. Criteria
        as :func:`search_key` takes them (text with non-ASCII goes as UTF-8), or
        ``raw="FROM ann UNSEEN"`` sent as it is."""
        if raw is not None:
            key = SearchKey("RAW", (raw,))
        else:
            key = search_key(*criteria)
            if charset is None and not format_search_key(key).isascii():
                charset = "UTF-8"
        return self._command("SEARCH", (charset, key), uid=uid).add_callback(
            lambda r: sorted({n for u in r[1] if u.kind == "SEARCH" for n in u.data}))

    def uid_search(self, *criteria: str | tuple[Any, ...] | SearchKey,
                   charset: str | None = None, raw: str | None = None) -> Deferred[_List[int]]:
        """UID SEARCH: the matching UIDs."""
        return self.search(*criteria, charset=charset, uid=True, raw=raw)

    def fetch(
        self, messages: int | str | Iterable[int] | SequenceSet,
        items: str | Iterable[str | FetchItem] = "(FLAGS)", *, uid: bool = False,
    ) -> Deferred[dict[int, dict[str, Any]]]:
        """FETCH: ``{number: {item name: value}}`` (by UID with ``uid``), the names as
        the server answers them (``BODY[]`` for ``BODY.PEEK[]``, upper case)."""
        wanted = fetch_items(items)
        seqset = message_set(messages)

        def collect(r: tuple[Response, list[Response]]) -> dict[int, dict[str, Any]]:
            out: dict[int, dict[str, Any]] = {}
            for u in r[1]:
                if u.kind != "FETCH" or u.number is None:
                    continue
                key = u.data.get("UID") if uid else u.number
                if key is None or not self._asked(seqset, key, uid):
                    continue  # news of another message, not an answer (the handlers had it)
                out.setdefault(key, {}).update(u.data)
            return out

        return self._command("FETCH", (seqset, wanted), uid=uid).add_callback(collect)

    def _asked(self, seqset: SequenceSet, key: int, uid: bool) -> bool:
        """Whether message ``key`` (a number, or a UID) is in what a command named."""
        box = self.mailbox
        largest = key  # "*" is at least as high as anything the server answered for
        if box is not None:
            largest = max(key, box.exists if not uid else (box.uidnext or 1) - 1)
        return seqset.contains(key, largest)

    def store(
        self, messages: int | str | Iterable[int] | SequenceSet, flags: Iterable[str],
        mode: str = "+", *, silent: bool = False, uid: bool = False,
    ) -> Deferred[dict[int, tuple[str, ...]]]:
        """STORE ``mode`` (``"+"`` add, ``"-"`` remove, ``""`` replace) FLAGS: the
        flags each message has now (``{}`` when ``silent``), by number or UID."""
        if mode not in ("+", "-", ""):
            raise ValueError(f"mode is '+', '-' or '', not {mode!r}")

        seqset = message_set(messages)

        def collect(r: tuple[Response, list[Response]]) -> dict[int, tuple[str, ...]]:
            out = {}
            for u in r[1]:
                if u.kind == "FETCH" and "FLAGS" in u.data:
                    key = u.data.get("UID") if uid else u.number
                    if key is not None and self._asked(seqset, key, uid):
                        out[key] = u.data["FLAGS"]
            return out

        args = (seqset, mode, silent, tuple(flags))
        return self._command("STORE", args, uid=uid).add_callback(collect)

    def copy(
        self, messages: int | str | Iterable[int] | SequenceSet, mailbox: str, *,
        uid: bool = False,
    ) -> Deferred[ResponseCode | None]:
        """COPY: the COPYUID response code (UIDPLUS: ``(uidvalidity, from, to)`` in its
        value) or None."""
        return self._command("COPY", (message_set(messages), mailbox), uid=uid) \
            .add_callback(lambda r: r[0].code if r[0].code and r[0].code.name == "COPYUID"
                          else None)

    def move(
        self, messages: int | str | Iterable[int] | SequenceSet, mailbox: str, *,
        uid: bool = False,
    ) -> Deferred[ResponseCode | None]:
        """MOVE (RFC 6851) when offered; else COPY, STORE +FLAGS.SILENT \\Deleted and
        UID EXPUNGE of those messages (UIDPLUS), or EXPUNGE without it (which expunges
        every message marked \\Deleted). The COPYUID code, when the server gave one."""
        return ensure_deferred(self._move(message_set(messages), mailbox, uid))

    async def _move(self, seqset: SequenceSet, mailbox: str, uid: bool) -> ResponseCode | None:
        if "MOVE" in self.capabilities:
            tagged, untagged = await self._command("MOVE", (seqset, mailbox), uid=uid)
            for r in [*untagged, tagged]:
                if r.code is not None and r.code.name == "COPYUID":
                    return r.code
            return None
        code = await self.copy(seqset, mailbox, uid=uid)
        if "UIDPLUS" in self.capabilities:
            uids = seqset
            if not uid:
                found = await self.fetch(seqset, "(UID)")
                uids = SequenceSet.of(d["UID"] for d in found.values())
            await self.store(uids, ("\\Deleted",), "+", silent=True, uid=True)
            await self._command("EXPUNGE", (uids,), uid=True)
        else:
            await self.store(seqset, ("\\Deleted",), "+", silent=True, uid=uid)
            await self._command("EXPUNGE")
        return code

    def append(
        self, mailbox: str, message: bytes | Message, flags: Iterable[str] = (),
        date_time: datetime | None = None,
    ) -> Deferred[tuple[int, int] | None]:
        """APPEND ``message`` (bytes, or an ``email`` message, sent with CRLF line
        ends): ``(uidvalidity, uid)`` when the server says APPENDUID, else None."""
        if isinstance(message, Message):
            message = message.as_bytes()
        data = bytes(message)
        if b"\r\n" not in data and b"\n" in data:
            data = data.replace(b"\n", b"\r\n")

        def uid_of(r: tuple[Response, list[Response]]) -> tuple[int, int] | None:
            code = r[0].code
            if code is not None and code.name == "APPENDUID" and isinstance(code.value, tuple):
                uids = code.value[1].numbers(0)
                return (code.value[0], uids[-1]) if uids else None
            return None

        return self._command("APPEND", (mailbox, tuple(flags), date_time, data)) \
            .add_callback(uid_of)

    def expunge(self, uids: int | str | Iterable[int] | SequenceSet | None = None
                ) -> Deferred[_List[int]]:
        """EXPUNGE (or UID EXPUNGE of ``uids``, UIDPLUS): the message numbers the server
        said it expunged, in its order."""
        if uids is not None:
            d = self._command("EXPUNGE", (message_set(uids),), uid=True)
        else:
            d = self._command("EXPUNGE")
        return d.add_callback(lambda r: [u.number for u in r[1] if u.kind == "EXPUNGE"])

    def close(self) -> Deferred[None]:
        """CLOSE: expunge the selected mailbox's \\Deleted messages, unselect it."""
        return self._command("CLOSE").add_callback(self._unselected)

    def unselect(self) -> Deferred[None]:
        """UNSELECT (RFC 3691): leave the mailbox without expunging."""
        if "UNSELECT" not in self.capabilities:
            return ns.fail(IMAPNotSupported("the server does not offer UNSELECT"))
        return self._command("UNSELECT").add_callback(self._unselected)

    def _unselected(self, _: Any) -> None:
        self.mailbox = None
        self.state = "authenticated"

    def namespace(self) -> Deferred[tuple[Any, Any, Any]]:
        """NAMESPACE (RFC 2342): (personal, other users', shared), each a list of
        ``(prefix, delimiter)`` or None."""
        def found(r: tuple[Response, list[Response]]) -> tuple[Any, Any, Any]:
            for u in r[1]:
                if u.kind == "NAMESPACE":
                    personal, other, shared = u.data
                    return (personal, other, shared)
            return (None, None, None)

        return self._command("NAMESPACE").add_callback(found)

    def id(self, fields: dict[str, str | None] | None = None
           ) -> Deferred[dict[str, str | None] | None]:
        """ID (RFC 2971): send ours, get the server's (a dict, or None)."""
        def found(r: tuple[Response, list[Response]]) -> dict[str, str | None] | None:
            for u in r[1]:
                if u.kind == "ID":
                    return u.data
            return None

        return self._command("ID", (fields,)).add_callback(found)

    def enable(self, *capabilities: str) -> Deferred[tuple[str, ...]]:
        """ENABLE (RFC 5161): the capabilities the server enabled."""
        def found(r: tuple[Response, list[Response]]) -> tuple[str, ...]:
            return tuple(c for u in r[1] if u.kind == "ENABLED" for c in u.data)

        return self._command("ENABLE", (tuple(c.upper() for c in capabilities),)) \
            .add_callback(found)

    def idle(self, callback: Callable[[Response], Any]) -> Idle:
        """IDLE (RFC 2177): ``callback(response)`` with each untagged response the
        server sends until :meth:`Idle.stop` (DONE). Commands asked for meanwhile wait
        until the IDLE ends. Raises IMAPNotSupported without IDLE.

        RFC 2177: a server may take a client idle for 30 minutes as gone; for longer
        waits stop and start again every 29 minutes or so."""
        if "IDLE" not in self.capabilities:
            raise IMAPNotSupported("the server does not offer IDLE")
        idle: Idle

        def went(_: Continuation) -> None:
            if not idle.started.called:
                idle.started.callback(None)

        def heard(response: Response) -> None:
            try:
                callback(response)
            except Exception:
                log.exception("the IDLE callback failed")

        done = self._command("IDLE", on_continuation=went, on_untagged=heard)
        idle = Idle(self, done)

        def ended(result: Any) -> Any:
            if not idle.started.called:
                if isinstance(result, Failure):
                    idle.started.errback(result)
                    return None  # told through started
                idle.started.callback(None)
            return result

        done.add_both(ended)
        return idle

    def _starttls(self, context: Any) -> Deferred[None]:
        """STARTTLS, the handshake, then CAPABILITY again (what was said before TLS is
        forgotten: RFC 3501 6.2.1)."""
        if "STARTTLS" not in self.capabilities:
            return ns.fail(IMAPNotSupported("the server does not offer STARTTLS"))

        def handshake(_: Any) -> Deferred[Any]:
            # (_dispatch has dropped whatever came after the OK)
            assert self.protocol is not None and self.protocol.transport is not None
            return self.protocol.transport.start_tls(context)

        def ask_again(_: Any) -> Deferred[Any]:
            self.capabilities = frozenset()
            return self._command("CAPABILITY")

        return self._command("STARTTLS").add_callback(handshake).add_callback(ask_again) \
            .add_callback(lambda _: None)

def connect(
    host: str,
    port: int | None = None,
    *,
    tls: str | None = None,
    timeout: float | None = 30,
    user: str | None = None,
    password: str | None = None,
    auth: str = "login",
    ca: Any = None,
    verify: bool = True,
    context: Any = None,
    reactor: Any = None,
) -> Deferred[IMAPClient]:
    """Connect to an IMAP server; fires with an :class:`IMAPClient` once it has greeted
    (and, with ``user`` and ``password``, logged in: ``auth="login"`` or ``"plain"``
    for AUTHENTICATE PLAIN).

    ``port`` defaults to 143 (993 for ``tls="implicit"``). ``tls="starttls"`` upgrades
    the connection with STARTTLS before anything else is said (failing with
    IMAPNotSupported if the server does not offer it), ``tls="implicit"`` speaks TLS
    from the first byte; the certificate is checked for ``host`` (``ca``: PEM or a path
    to trust instead of the system's store; ``verify=False`` turns checking off;
    ``context``: a :func:`netshell.tls.client_context` of your own).

    Fails with ns.ConnectError (refused...), IMAPConnectionClosed (a BYE greeting),
    IMAPTimeoutError, IMAPNo (a login refused), IMAPNotSupported.
    """
    if tls not in (None, "starttls", "implicit"):
        raise ValueError(f"tls is None, 'starttls' or 'implicit', not {tls!r}")
    if auth not in ("login", "plain"):
        raise ValueError(f"auth is 'login' or 'plain', not {auth!r}")
    return ensure_deferred(_connect(host, port if port is not None else
                                    (993 if tls == "implicit" else 143), tls, timeout,
                                    user, password, auth, ca, verify, context, reactor))


async def _connect(
    host: str, port: int, tls: str | None, timeout: float | None, user: str | None,
    password: str | None, auth: str, ca: Any, verify: bool, context: Any, reactor: Any,
) -> IMAPClient:
    reactor = reactor if reactor is not None else get_reactor()
    if tls is not None and context is None:
        from netshell.tls import client_context  # pyOpenSSL only for those who use TLS

        context = client_context(host, ca=ca, verify=verify)
    client = IMAPClient(timeout=timeout, reactor=reactor)

    def make() -> _IMAPProtocol:
        protocol = _IMAPProtocol(client)
        client.protocol = protocol
        return protocol

    factory = ns.ClientFactory.for_protocol(make)
    wait = timeout if timeout is not None else 30
    if tls == "implicit":
        await reactor.connect_tls(host, port, factory, context, timeout=wait)
    else:
        await reactor.connect_tcp(host, port, factory, timeout=wait)
    try:
        greeted = client._greeted
        if timeout is not None:
            greeted.add_timeout(timeout, clock=reactor)
        try:
            await greeted
        except ns.TimeoutError:
            raise IMAPTimeoutError(f"no greeting from {host}:{port} within {timeout} s") \
                from None
        if not client.capabilities:
            await client._command("CAPABILITY")
        if tls == "starttls":
            await client._starttls(context)
        if user is not None and client.state == "not authenticated":
            if auth == "plain":
                await client.authenticate_plain(user, password or "")
            else:
                await client.login(user, password or "")
    except BaseException:
        client.abort()
        raise
    return client

