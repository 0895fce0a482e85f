"""An IMAP4rev1 server (RFC 3501) over the Maildir store, on netshell's reactor.

:func:`serve` serves one Maildir tree per user (``maildir_root/<user>``, made at the first
login; folders are Maildir++ ``.Name`` folders, hierarchy delimiter ``"."``, names stored
in modified UTF-7 as Dovecot stores them). Besides RFC 3501: IDLE (RFC 2177), UIDPLUS
(RFC 4315), MOVE (RFC 6851), NAMESPACE (RFC 2342), UNSELECT (RFC 3691), ENABLE (RFC 5161),
LITERAL+ (RFC 7888), SPECIAL-USE (RFC 6154), ID (RFC 2971), SASL-IR (RFC 4959) with
AUTHENTICATE PLAIN, STARTTLS (and LOGINDISABLED until then when ``require_tls``).

Commands are read by :class:`~.parser.CommandReader` and answered here; the answers to
one batch of input go out in one write. Sessions on one mailbox see each other's changes
(the store's change notification, and a rescan at each command): ``EXISTS``, ``RECENT``,
``EXPUNGE`` and ``FETCH (FLAGS ...)`` come before a command's tagged answer, or at once
during IDLE; never an EXPUNGE during FETCH, STORE or SEARCH (RFC 3501 7.4.1: the
expunged message keeps its number until a command that may tell it). ``\\Recent`` is a
session's: the first session to see a message (SELECT, not EXAMINE) has it recent.

Limits: ``max_line`` octets of command text (over it: ``* BYE``), ``max_literal`` octets a
literal (a synchronising one is refused with ``NO [TOOBIG]`` before the client sends it;
a LITERAL+ one ends the connection, RFC 7888 4); before login a synchronising literal
over 8 KiB is refused; ``max_bad_commands`` bad commands in a row end the connection;
``idle_timeout`` seconds without a command end it too (``* BYE Autologout``; RFC 3501
asks for at least 30 minutes). Messages over 1 MiB are sent from their file a chunk at a
time, and an APPEND's synchronising literal over 1 MiB is written to the folder's ``tmp``
as it comes (a LITERAL+ one is buffered by the reader, up to ``max_literal``). A command
that fails inside (a bug) is answered ``NO [SERVERBUG]`` and logged; the session goes on.

>>> listener = serve(".", {"alice": "secret"})
>>> listener.port > 0
True
>>> _ = listener.close()
"""

from __future__ import annotations

import base64
import binascii
import bisect
import logging
import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from netshell.failure import Failure
from netshell.listener import Listener
from netshell.protocol import Factory, Protocol
from netshell.reactor import get_reactor
from protocols.mail.imap.fetch import (
    BIG_MESSAGE,
    MessageCache,
    crlf_chunks,
    internal_datetime,
    read_all,
)
from protocols.mail.imap.parser import DEFAULT_MAX_LINE, CommandReader, parse_command
from protocols.mail.imap.search import Candidate, matches
from protocols.mail.imap.values import (
    Command,
    ContinuationRequest,
    FetchItem,
    IMAPParseError,
    ListEntry,
    Section,
    SequenceSet,
)
from protocols.mail.imap.writer import (
    decode_mailbox,
    encode_mailbox,
    format_body_structure,
    format_datetime,
    format_flags,
    format_id,
    format_list,
    format_mailbox_status,
    format_namespace,
    section_bytes,
)
from protocols.mail.maildir import (
    Change,
    FolderError,
    Maildir,
    MaildirError,
    MessageInfo,
    NoSuchMessage,
    PendingMessage,
    Subscription,
)

__all__ = ["IMAPServerFactory", "IMAPServerProtocol", "serve"]

log = logging.getLogger("netshell.imap")

DEFAULT_MAX_LITERAL = 64 * 1024 * 1024
#: a synchronising literal before login may be at most this big
PREAUTH_LITERAL = 8192
#: an APPEND's synchronising literal over this size goes to the disk as it comes
STREAM_LITERAL = 1024 * 1024
#: answers unsent past this many octets: the session reads no more commands until they
#: have gone (else a client that never reads makes the server hold every answer)
OUTPUT_HIGH = 1024 * 1024
_APPEND_HEAD = re.compile(rb"[^ ]+ APPEND ", re.I)
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
SPECIAL_USE = {
    "sent": "\\Sent", "sent messages": "\\Sent", "sent items": "\\Sent",
    "drafts": "\\Drafts", "trash": "\\Trash", "deleted messages": "\\Trash",
    "deleted items": "\\Trash", "junk": "\\Junk", "spam": "\\Junk", "archive": "\\Archive",
    "archives": "\\Archive",
}
_ANY = frozenset(["CAPABILITY", "NOOP", "LOGOUT", "ID"])
_NOT_AUTH = frozenset(["STARTTLS", "AUTHENTICATE", "LOGIN"])
_AUTH = frozenset(["SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE",
                   "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "NAMESPACE", "ENABLE",
                   "IDLE"])
_SELECTED = frozenset(["CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY",
                       "MOVE", "UNSELECT"])
#: commands during which an EXPUNGE must not be sent (RFC 3501 7.4.1; not the UID forms)
_NO_EXPUNGE = frozenset(["FETCH", "STORE", "SEARCH"])
#: folder real path -> the highest UID some session of this process has seen (what is
#: above it is \Recent for the first session to see it)
_recent_marks: dict[str, int] = {}


class IMAPServerFactory(Factory):
    """Makes an :class:`IMAPServerProtocol` per connection; holds :func:`serve`'s settings
    and the message cache the sessions share."""

    def __init__(
        self,
        maildir_root: str | os.PathLike[str],
        users: Mapping[str, str],
        *,
        tls: Any = None,
        require_tls: bool = False,
        max_line: int = DEFAULT_MAX_LINE,
        max_literal: int = DEFAULT_MAX_LITERAL,
        max_bad_commands: int = 10,
        idle_timeout: float = 1800.0,
        idle_poll: float = 5.0,
        fsync: bool = True,
        reactor: Any = None,
    ) -> None:
        if require_tls and tls is None:
            raise ValueError("require_tls needs tls= (tls.server_context(...))")
        self.maildir_root = os.fspath(maildir_root)
        if not os.path.isdir(self.maildir_root):
            raise ValueError(f"maildir_root {self.maildir_root!r} is not a directory")
        self.users = users
        self.tls = tls
        self.require_tls = require_tls
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_bad_commands = max_bad_commands
        self.idle_timeout = idle_timeout
        self.idle_poll = idle_poll
        self.fsync = fsync
        self.reactor = reactor if reactor is not None else get_reactor()
        self.cache = MessageCache()
        self.sessions: set[IMAPServerProtocol] = set()

    def build_protocol(self, addr: Any) -> IMAPServerProtocol:
        return IMAPServerProtocol(self)

    def __repr__(self) -> str:
        tls = ", STARTTLS" if self.tls else ""
        return (f"<IMAPServerFactory of {self.maildir_root!r}, {len(self.users)} users{tls}, "
                f"{len(self.sessions)} sessions>")


class _Stream:
    """A literal's bytes still in a file: sent a chunk at a time."""

    def __init__(self, box: Maildir, info: MessageInfo, start: int, length: int) -> None:
        self.box, self.info, self.start, self.length = box, info, start, length


class _Sender:
    """Pull producer: the pieces queued after a :class:`_Stream`, the file a chunk at a
    time, then the rest."""

    def __init__(self, protocol: IMAPServerProtocol, stream: _Stream) -> None:
        self.protocol = protocol
        try:
            self.file: Any = open(stream.info.path, "rb")  # noqa: SIM115 (closed by stop_producing)
        except FileNotFoundError:
            self.file = stream.box.open(stream.info.uid)
        self.chunks = crlf_chunks(self.file, stream.start, stream.length, 256 * 1024)
        self.left = stream.length

    def resume_producing(self) -> None:
        transport = self.protocol.transport
        chunk = next(self.chunks, b"")
        if chunk:
            self.left -= len(chunk)
            transport.write(chunk)
            return
        if self.left > 0:  # the file shrank under us: keep the literal's promised length
            transport.write(b" " * self.left)
        self.stop_producing()
        self.protocol._stream_done()

    def pause_producing(self) -> None:
        pass

    def stop_producing(self) -> None:
        self.file.close()
        if self.protocol._sender is self:
            self.protocol._sender = None
            self.protocol.transport.unregister_producer()


class _Drain:
    """Pull producer for answers that pile up unsent (a client that pipelines FETCHes and
    reads nothing): registered once the transport holds OUTPUT_HIGH octets, it is asked
    for more only when the buffer has drained, and then lets the session read again."""

    def __init__(self, protocol: IMAPServerProtocol) -> None:
        self.protocol = protocol

    def resume_producing(self) -> None:
        self.stop_producing()
        self.protocol._stream_done()

    def pause_producing(self) -> None:
        pass

    def stop_producing(self) -> None:
        if self.protocol._sender is self:
            self.protocol._sender = None
            self.protocol.transport.unregister_producer()


class _AppendSink:
    """An APPEND's big literal on its way to the disk (``pending``), then the rest of the
    command's line (``line``, once it is whole)."""

    def __init__(self, pending: PendingMessage, head: list[bytes], size: int,
                 max_line: int) -> None:
        self.pending = pending
        self.head = head
        self.left = size
        self.tail = bytearray()
        self.max_line = max_line
        self.line: bytes | None = None
        self.overflow = False

    def feed(self, data: bytes) -> bytes:
        """Take what is the literal's and the line after it; the bytes beyond."""
        if self.left:
            piece = data[: self.left]
            self.pending.write(piece)
            self.left -= len(piece)
            data = data[len(piece):]
            if self.left:
                return b""
        self.tail += data
        end = self.tail.find(b"\n")
        if end < 0:
            if len(self.tail) > self.max_line:
                self.line = b""
                self.overflow = True
            return b""
        self.line = bytes(self.tail[:end]).removesuffix(b"\r")
        return bytes(self.tail[end + 1:])


class _View:
    """The selected mailbox as one session sees it: UIDs in sequence order (an expunged
    message keeps its place until the session is told), flags, \\Recent."""

    def __init__(self, box: Maildir, name: str, readonly: bool) -> None:
        self.box = box
        self.name = name
        self.readonly = readonly
        self.real = os.path.realpath(box.path)
        infos = box.messages()
        mark = _recent_marks.get(self.real)
        if readonly:
            self.recent = {m.uid for m in infos if os.sep + "new" + os.sep in m.path}
        else:
            self.recent = set(box.take_new())
            if mark is not None:
                self.recent.update(m.uid for m in infos if m.uid > mark)
            infos = box.messages()
        if infos and not readonly:
            _recent_marks[self.real] = max(mark or 0, infos[-1].uid)
        elif mark is None:
            _recent_marks[self.real] = infos[-1].uid if infos else 0
        self.uids = [m.uid for m in infos]
        self.infos = {m.uid: m for m in infos}
        self.flags = {m.uid: m.flags for m in infos}
        self.gone: set[int] = set()
        self.dirty = False
        self.sub: Subscription | None = None

    def seq_of(self, uid: int) -> int:
        # (sequence numbers are positions; a bisect, the UIDs being ascending)
        return bisect.bisect_left(self.uids, uid) + 1

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()
            self.sub = None


class IMAPServerProtocol(Protocol):
    """One IMAP session: not authenticated, authenticated, selected, logout."""

    def __init__(self, factory: IMAPServerFactory) -> None:
        self.factory = factory
        self.transport: Any = None
        self.peer = "?"
        self.state = "not authenticated"
        self.user: str | None = None
        self.home: Maildir | None = None
        self.view: _View | None = None
        self.tls_active = False
        self.reader = self._new_reader()
        self._out: list[Any] = []
        self._sender: _Sender | _Drain | None = None
        self._paused = False
        self._sink: _AppendSink | None = None
        self._closing = False
        self._bad = 0
        self._timer: Any = None
        self._poll: Any = None
        self._idling: str | None = None  # the IDLE command's tag
        self._sasl: str | None = None  # the AUTHENTICATE command's tag, awaiting its answer
        self._command: str | None = None  # the command being answered

    def _new_reader(self) -> CommandReader:
        return CommandReader(max_line=self.factory.max_line, max_literal=self._literal_limit())

    def _literal_limit(self) -> int:
        """Octets a literal may hold: PREAUTH_LITERAL before login, for LITERAL+ ones too
        (RFC 7888 §4: a client that is nobody yet must not make us hold 64 MiB each)."""
        if getattr(self, "state", "not authenticated") == "not authenticated":
            return min(PREAUTH_LITERAL, self.factory.max_literal)
        return self.factory.max_literal

    def __repr__(self) -> str:
        who = f" {self.user}" if self.user else ""
        where = f" {self.view.name}" if self.view else ""
        return f"<IMAPServerProtocol {self.peer} {self.state}{who}{where}>"

    # ---- connection events

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = getattr(transport, "peer", None)
        self.peer = f"{peer.host}:{peer.port}" if peer is not None else "?"
        self.tls_active = getattr(transport, "tls", None) is not None
        self.factory.sessions.add(self)
        self._send(b"* OK [CAPABILITY " + " ".join(self.capabilities()).encode()
                   + b"] netshell IMAP4rev1 server ready\r\n")
        self._flush()
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._sink is not None:
            self._arm_timer()
            data = self._sink.feed(data)
            if self._sink.line is None:
                return
            sink, self._sink = self._sink, None
            self._append_streamed(sink)
        self.reader.receive(data)
        if self._sender is None:
            self._process()
            self._flush()
        elif not self._paused:
            # a message is on its way out: what comes meanwhile waits in the socket
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, reason: Failure) -> None:
        self._closing = True
        if self._sink is not None:
            self._sink.pending.abort()
            self._sink = None
        if self._sender is not None:
            self._sender.stop_producing()
        for timer in (self._timer, self._poll):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._poll = None
        if self.view is not None:
            self.view.close()
            self.view = None
        self.factory.sessions.discard(self)

    # ---- output

    def _send(self, data: bytes) -> None:
        self._out.append(data)

    def _flush(self) -> None:
        if self._closing or self.transport is None or self._sender is not None:
            return
        out = self._out
        while out:
            i = next((k for k, p in enumerate(out) if isinstance(p, _Stream)), len(out))
            if i:
                self.transport.write(b"".join(out[:i]))
            del out[:i]
            if out:
                stream = out.pop(0)
                try:
                    self._sender = _Sender(self, stream)
                except (OSError, NoSuchMessage):
                    self._send(b" " * stream.length)  # gone: its promised length, blank
                    continue
                self.transport.register_producer(self._sender, False)
                return

    def _stream_done(self) -> None:
        if self._paused and self._sender is None:
            self._paused = False
            self.transport.resume_reading()
        self._flush()
        if self._sender is None and not self._closing:
            self._process()
            self._flush()

    def _close(self) -> None:
        if not self._closing:
            self._flush()
            self._closing = True
            self.transport.close()

    def _tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        text = re.sub(r"[\r\n]", " ", text)
        self._send(f"{tag} {status} {'[' + code + '] ' if code else ''}{text}\r\n"
                   .encode())

    def _arm_timer(self) -> None:
        timeout = self.factory.idle_timeout
        if not timeout:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(timeout)
        else:
            self._timer = self.factory.reactor.call_later(timeout, self._autologout)

    def _autologout(self) -> None:
        if self._sender is not None:
            self._arm_timer()
            return
        log.info("%s: idle for %s s: autologout", self.peer, self.factory.idle_timeout)
        self._send(b"* BYE Autologout; idle for too long\r\n")
        self._close()

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE",
                "UNSELECT", "ENABLE", "SPECIAL-USE", "ID", "CHILDREN"]
        if self.state == "not authenticated":
            if self.factory.tls is not None and not self.tls_active:
                caps.append("STARTTLS")
            if self.factory.require_tls and not self.tls_active:
                caps.append("LOGINDISABLED")
            else:
                caps.append("AUTH=PLAIN")
        return caps

    # ---- reading

    def _process(self) -> None:
        while not self._closing and self._sender is None:
            reader = self.reader  # (STARTTLS puts a new one: nothing read before it counts)
            if self._idling is not None or self._sasl is not None:
                try:
                    line = reader.next_line()
                except IMAPParseError as e:
                    self._send(e.response())
                    self._close()
                    return
                if line is None:
                    return
                self._arm_timer()
                if self._idling is not None:
                    self._idle_line(line)
                else:
                    self._sasl_line(line)
                continue
            try:
                event = reader.next_event()
            except IMAPParseError as e:
                self._send(e.response())
                if e.fatal:
                    self._close()
                    return
                self._bad_command()
                continue
            if event is None:
                return
            self._arm_timer()
            if isinstance(event, ContinuationRequest):
                if self.state == "not authenticated" and event.size > PREAUTH_LITERAL:
                    reader.reject_literal()
                    self._tagged(event.tag or "*", "BAD",
                                 "Literals this big are only taken after login")
                    self._bad_command()
                    continue
                parts = reader._framer.parts  # (the command so far: read, not changed)
                if (event.size > STREAM_LITERAL and self.home is not None and parts
                        and _APPEND_HEAD.match(parts[0])):
                    head = list(parts)
                    reader.reject_literal()
                    self._sink = _AppendSink(self.home.begin_append(), head, event.size,
                                             self.factory.max_line)
                    self._send(b"+ Ready for literal data\r\n")
                    self._flush()
                    return  # what follows is the literal: data_received takes it
                self._send(b"+ Ready for literal data\r\n")
                self._flush()
                continue
            self._dispatch(event)
            if self._sender is None and not self._closing and self._out:
                self._flush()
            if (self._sender is None and not self._closing and self.transport is not None
                    and getattr(self.transport, "write_buffer_size", 0) > OUTPUT_HIGH):
                self._sender = _Drain(self)
                self.transport.register_producer(self._sender, False)
                if not self._paused:
                    self._paused = True
                    self.transport.pause_reading()
                return

    def _bad_command(self) -> None:
        self._bad += 1
        if self._bad >= self.factory.max_bad_commands:
            self._send(b"* BYE Too many bad commands\r\n")
            self._close()

    def _dispatch(self, cmd: Command) -> None:
        name = cmd.name
        if name in _ANY:
            pass
        elif name in _NOT_AUTH:
            if self.state != "not authenticated":
                return self._refuse(cmd, f"{name} is only allowed before login")
        elif name in _AUTH:
            if self.state not in ("authenticated", "selected"):
                return self._refuse(cmd, f"{name} needs a login first")
        elif name in _SELECTED and self.state != "selected":
            return self._refuse(cmd, f"{name} needs a selected mailbox")
        handler = getattr(self, "do_" + name.lower())
        self._command = name
        try:
            ok = handler(cmd)
        except FolderError as e:
            ok = True
            self._tagged(cmd.tag, "NO", f"{name} failed: {e.strerror or e}")
        except MaildirError as e:
            ok = True
            log.warning("%s: %s failed on the mail store: %s", self.peer, name, e)
            self._tagged(cmd.tag, "NO", f"{name} failed on the mail store: {e.strerror or e}",
                         "SERVERBUG")
        except Exception:
            # a bug of ours: the client still gets its answer, the session goes on
            ok = True
            log.exception("%s: %s failed", self.peer, name)
            self._tagged(cmd.tag, "NO", f"{name} failed: internal error", "SERVERBUG")
        finally:
            self._command = None
        if ok is False:
            self._bad_command()
        else:
            self._bad = 0

    def _refuse(self, cmd: Command, text: str) -> None:
        self._tagged(cmd.tag, "BAD", text)
        self._bad_command()

    def _ok(self, cmd: Command, text: str = "", code: str | None = None) -> None:
        """Untagged news for the selected mailbox (as the command allows), then OK."""
        if self.view is not None:
            self._sync(allow_expunge=cmd.uid or cmd.name not in _NO_EXPUNGE)
        self._tagged(cmd.tag, "OK", text or f"{cmd.name} completed", code)

    # ---- the selected mailbox's news

    def _on_change(self, change: Change) -> None:
        view = self.view
        if view is None:
            return
        view.dirty = True
        if self._idling is not None and not self._closing:
            self._sync(allow_expunge=True)
            self._flush()

    def _sync(self, allow_expunge: bool) -> None:
        view = self.view
        assert view is not None
        box = view.box
        current = box.messages()
        now = {m.uid: m for m in current}
        out = self._send
        if allow_expunge:
            gone = [u for u in view.uids if u not in now]
            if gone:
                removed = 0
                keep = []
                for i, uid in enumerate(view.uids):
                    if uid in now:
                        keep.append(uid)
                        continue
                    out(b"* %d EXPUNGE\r\n" % (i + 1 - removed))
                    removed += 1
                    view.flags.pop(uid, None)
                    view.infos.pop(uid, None)
                    view.recent.discard(uid)
                view.uids = keep
                view.gone.clear()
        last = view.uids[-1] if view.uids else 0
        fresh = [m for m in current if m.uid > last]
        if fresh:
            if not view.readonly:
                taken = set(box.take_new())
                mark = _recent_marks.get(view.real, 0)
                for m in fresh:
                    if m.uid > mark or m.uid in taken:
                        view.recent.add(m.uid)
                _recent_marks[view.real] = max(mark, fresh[-1].uid)
                if taken:
                    current = box.messages()
                    now = {m.uid: m for m in current}
                    fresh = [m for m in current if m.uid > last]
            else:
                view.recent.update(m.uid for m in fresh
                                   if os.sep + "new" + os.sep in m.path)
            for m in fresh:
                view.uids.append(m.uid)
                view.flags[m.uid] = m.flags
                view.infos[m.uid] = m
        flags = view.flags
        infos = view.infos
        for m in current:
            uid = m.uid
            old = flags.get(uid)
            infos[uid] = m
            if old is not None and old != m.flags:
                flags[uid] = m.flags
                out(b"* %d FETCH (UID %d FLAGS %s)\r\n"
                    % (view.seq_of(uid), uid, self._flags_of(uid)))
        if not allow_expunge:
            view.gone = {u for u in view.uids if u not in now}
        if fresh:
            out(b"* %d EXISTS\r\n* %d RECENT\r\n" % (len(view.uids), len(view.recent)))
        view.dirty = False

    def _flags_of(self, uid: int) -> bytes:
        view = self.view
        assert view is not None
        flags = view.flags.get(uid, frozenset())
        ordered = sorted(flags, key=_flag_order)
        if uid in view.recent:
            ordered.append("\\Recent")
        return format_flags(ordered)

    # ---- any state

    def do_capability(self, cmd: Command) -> None:
        self._send(b"* CAPABILITY " + " ".join(self.capabilities()).encode() + b"\r\n")
        self._ok(cmd)

    def do_noop(self, cmd: Command) -> None:
        self._ok(cmd)

    def do_logout(self, cmd: Command) -> None:
        self._send(b"* BYE netshell IMAP4rev1 server logging out\r\n")
        self._tagged(cmd.tag, "OK", "LOGOUT completed")
        self.state = "logout"
        self._close()

    def do_id(self, cmd: Command) -> None:
        self._send(format_id({"name": "netshell", "vendor": "netshell"}))
        self._ok(cmd)

    # ---- not authenticated

    def do_starttls(self, cmd: Command) -> bool:
        if self.factory.tls is None or self.tls_active:
            self._tagged(cmd.tag, "BAD", "STARTTLS is not offered here"
                         if self.factory.tls is None else "TLS is active already")
            return False
        self._tagged(cmd.tag, "OK", "Begin TLS negotiation now")
        self._flush()
        # whatever came after STARTTLS in clear is dropped (command injection)
        self.reader = self._new_reader()
        self.tls_active = True
        d = self.transport.start_tls(self.factory.tls)
        d.add_errback(self._tls_failed)
        return True

    def _tls_failed(self, failure: Failure) -> None:
        log.info("%s: STARTTLS handshake failed: %s", self.peer, failure.value)
        self._close()

    def _plaintext_refused(self, cmd: Command) -> bool:
        if self.factory.require_tls and not self.tls_active:
            self._tagged(cmd.tag, "NO", "Login is refused before STARTTLS", "PRIVACYREQUIRED")
            return True
        return False

    def do_login(self, cmd: Command) -> bool:
        if self._plaintext_refused(cmd):
            return True
        return self._login(cmd.tag, cmd.args[0], cmd.args[1])

    def do_authenticate(self, cmd: Command) -> bool:
        mechanism, initial = cmd.args
        if mechanism.upper() != "PLAIN":
            self._tagged(cmd.tag, "NO", f"Unsupported mechanism {mechanism}")
            return False
        if self._plaintext_refused(cmd):
            return True
        if initial is None:
            self._sasl = cmd.tag
            self._send(b"+ \r\n")
            return True
        return self._sasl_plain(cmd.tag, initial.encode("ascii", "replace"))

    def _sasl_line(self, line: bytes) -> None:
        tag, self._sasl = self._sasl, None
        assert tag is not None
        if line.strip() == b"*":
            self._tagged(tag, "BAD", "AUTHENTICATE cancelled")
            return
        self._sasl_plain(tag, line.strip())

    def _sasl_plain(self, tag: str, encoded: bytes) -> bool:
        try:
            raw = b"" if encoded == b"=" else base64.b64decode(encoded, validate=True)
            authzid, user, password = raw.decode("utf-8").split("\x00")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self._tagged(tag, "BAD", "Not a SASL PLAIN answer")
            self._bad_command()
            return False
        if authzid and authzid != user:
            self._tagged(tag, "NO", "Cannot act for another user", "AUTHORIZATIONFAILED")
            return False
        return self._login(tag, user, password)

    def _login(self, tag: str, user: str, password: str) -> bool:
        expected = self.factory.users.get(user)
        if expected is None or expected != password or "/" in user or user.startswith("."):
            log.info("%s: failed login as %r", self.peer, user)
            self._tagged(tag, "NO", "Authentication failed", "AUTHENTICATIONFAILED")
            self._bad_command()
            return True
        self.user = user
        self.home = Maildir(os.path.join(self.factory.maildir_root, user),
                            fsync=self.factory.fsync)
        self.state = "authenticated"
        self.reader._framer.max_literal = self._literal_limit()
        log.info("%s: %s logged in", self.peer, user)
        self._tagged(tag, "OK", "Logged in", "CAPABILITY " + " ".join(self.capabilities()))
        return True

    # ---- authenticated

    def _folder(self, name: str) -> Maildir:
        assert self.home is not None
        return self.home.folder(_disk_name(name))

    def _deselect(self) -> None:
        if self.view is not None:
            self.view.close()
        self.view = None
        self.state = "authenticated"

    def do_select(self, cmd: Command) -> None:
        self._open(cmd, readonly=False)

    def do_examine(self, cmd: Command) -> None:
        self._open(cmd, readonly=True)

    def _open(self, cmd: Command, readonly: bool) -> None:
        name = cmd.args[0]
        self._deselect()
        try:
            box = self._folder(name)
        except FolderError:
            self._tagged(cmd.tag, "NO", f"No mailbox {name}", "NONEXISTENT")
            return
        view = _View(box, name, readonly)
        view.sub = box.subscribe(self._on_change)
        self.view = view
        self.state = "selected"
        keywords = [k for k in box.keywords() if k]
        flags = [*SYSTEM_FLAGS, *keywords]
        out = self._send
        out(b"* FLAGS " + format_flags(flags) + b"\r\n")
        perm = [*SYSTEM_FLAGS, *keywords] + (["\\*"] if len(keywords) < 26 else [])
        out(b"* OK [PERMANENTFLAGS " + format_flags([] if readonly else perm)
            + b"] Flags permitted\r\n")
        out(b"* %d EXISTS\r\n* %d RECENT\r\n" % (len(view.uids), len(view.recent)))
        unseen = next((i for i, u in enumerate(view.uids, 1)
                       if "\\Seen" not in view.flags[u]), None)
        if unseen is not None:
            out(b"* OK [UNSEEN %d] First unseen\r\n" % unseen)
        out(b"* OK [UIDVALIDITY %d] UIDs valid\r\n* OK [UIDNEXT %d] Predicted next UID\r\n"
            % (box.uidvalidity, box.uidnext))
        self._tagged(cmd.tag, "OK", f"{cmd.name} completed",
                     "READ-ONLY" if readonly else "READ-WRITE")

    def do_create(self, cmd: Command) -> None:
        assert self.home is not None
        name = cmd.args[0].rstrip(".")
        if name.upper() == "INBOX" or not name:
            self._tagged(cmd.tag, "NO", "INBOX exists already", "ALREADYEXISTS")
            return
        disk = _disk_name(name)
        existing = set(self.home.list_folders())
        if disk in existing:
            self._tagged(cmd.tag, "NO", f"Mailbox {name} exists already", "ALREADYEXISTS")
            return
        parts = disk.split(".")
        try:
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent not in existing and parent.upper() != "INBOX":
                    self.home.create_folder(parent)
            self.home.create_folder(disk)
        except FolderError as e:
            self._tagged(cmd.tag, "NO", f"Cannot create {name}: {e.strerror or e}",
                         "CANNOT")
            return
        self._ok(cmd)

    def do_delete(self, cmd: Command) -> None:
        assert self.home is not None
        name = cmd.args[0]
        if name == "INBOX":
            self._tagged(cmd.tag, "NO", "INBOX cannot be deleted", "CANNOT")
            return
        disk = _disk_name(name)
        if disk not in self.home.list_folders():
            self._tagged(cmd.tag, "NO", f"No mailbox {name}", "NONEXISTENT")
            return
        if self.view is not None and self.view.box.path == self.home._folder_path(disk):
            self._deselect()
        self.home.delete_folder(disk)
        self._ok(cmd)

    def do_rename(self, cmd: Command) -> None:
        assert self.home is not None
        old, new = cmd.args
        new = new.rstrip(".")
        folders = self.home.list_folders()
        if _disk_name(old) not in folders:
            self._tagged(cmd.tag, "NO", f"No mailbox {old}", "NONEXISTENT")
            return
        if _disk_name(new) in folders or new.upper() == "INBOX":
            self._tagged(cmd.tag, "NO", f"Mailbox {new} exists already", "ALREADYEXISTS")
            return
        parts = _disk_name(new).split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent not in folders:
                self.home.create_folder(parent)
        self.home.rename_folder(_disk_name(old), _disk_name(new))
        self._ok(cmd)

    def do_subscribe(self, cmd: Command) -> None:
        assert self.home is not None
        self.home.set_subscribed(_disk_name(cmd.args[0]), True)
        self._ok(cmd)

    def do_unsubscribe(self, cmd: Command) -> None:
        assert self.home is not None
        self.home.set_subscribed(_disk_name(cmd.args[0]), False)
        self._ok(cmd)

    def do_list(self, cmd: Command) -> None:
        assert self.home is not None
        reference, pattern = cmd.args
        if pattern == "":
            self._send(b'* LIST (\\Noselect) "." ""\r\n')
            self._ok(cmd)
            return
        names = [decode_mailbox(n) for n in self.home.list_folders()]
        for entry in _list_entries(names, reference + pattern, children=True):
            self._send(format_list(entry, "LIST"))
        self._ok(cmd)

    def do_lsub(self, cmd: Command) -> None:
        assert self.home is not None
        reference, pattern = cmd.args
        existing = {decode_mailbox(n) for n in self.home.list_folders()}
        subscribed = [decode_mailbox(n) for n in self.home.subscribed_folders()]
        for entry in _list_entries(subscribed, reference + pattern, children=False):
            flags = entry.flags
            if entry.name not in existing and "\\Noselect" not in flags:
                flags = (*flags, "\\Noselect")
            self._send(format_list(ListEntry(flags, ".", entry.name), "LSUB"))
        self._ok(cmd)

    def do_status(self, cmd: Command) -> None:
        name, items = cmd.args
        try:
            box = self._folder(name)
        except FolderError:
            self._tagged(cmd.tag, "NO", f"No mailbox {name}", "NONEXISTENT")
            return
        infos = box.messages()
        real = os.path.realpath(box.path)
        mark = _recent_marks.get(real)
        values: dict[str, int] = {}
        for item in items:
            item = item.upper()
            if item == "MESSAGES":
                values[item] = len(infos)
            elif item == "RECENT":
                values[item] = sum(1 for m in infos if os.sep + "new" + os.sep in m.path
                                   or (mark is not None and m.uid > mark))
            elif item == "UIDNEXT":
                values[item] = box.uidnext
            elif item == "UIDVALIDITY":
                values[item] = box.uidvalidity
            elif item == "UNSEEN":
                values[item] = sum(1 for m in infos if "\\Seen" not in m.flags)
        self._send(format_mailbox_status(name, values))
        self._ok(cmd)

    def do_append(self, cmd: Command, pending: PendingMessage | None = None) -> None:
        name, flags, when, message = cmd.args
        try:
            box = self._folder(name)
        except FolderError:
            self._tagged(cmd.tag, "NO", f"No mailbox {name}", "TRYCREATE")
            return
        if any(f.upper() == "\\RECENT" for f in flags):
            # RFC 3501 §2.3.2: \Recent is the server's to set, never a client's
            if pending is not None:
                pending.abort()
            self._tagged(cmd.tag, "BAD", "\\Recent cannot be set by a client")
            return
        date = when.timestamp() if isinstance(when, datetime) else None
        if date is not None and not 0 <= date < 2**32:
            # kept as the file's time: a date before 1970 or past 2106 would come back
            # changed, so it is refused rather than altered
            if pending is not None:
                pending.abort()
            self._tagged(cmd.tag, "NO", "The date is out of the range this server keeps "
                         "(1970 to 2106)", "CANNOT")
            return
        _mark_before_adding(box)
        try:
            if pending is not None:
                uid = pending.commit(box, flags, date)
            else:
                uid = box.append(message, flags, date)
        except ValueError as e:
            self._tagged(cmd.tag, "NO", f"APPEND failed: {e}", "LIMIT")
            return
        self._ok(cmd, code=f"APPENDUID {box.uidvalidity} {uid}")

    def _append_streamed(self, sink: _AppendSink) -> None:
        """The end of an APPEND whose literal went to the disk: parse the command (the
        literal stands empty in it), then commit the message or throw it away."""
        assert sink.line is not None
        if sink.overflow:
            sink.pending.abort()
            self._send(b"* BYE Command line over the limit\r\n")
            self._close()
            return
        try:
            cmd = parse_command([*sink.head, b"", sink.line])
        except IMAPParseError as e:
            sink.pending.abort()
            self._send(e.response())
            self._bad_command()
            self._flush()
            return
        self._arm_timer()
        self._command = "APPEND"
        try:
            self.do_append(cmd, sink.pending)
        except MaildirError as e:
            log.warning("%s: APPEND failed on the mail store: %s", self.peer, e)
            self._tagged(cmd.tag, "NO", f"APPEND failed on the mail store: {e.strerror or e}",
                         "SERVERBUG")
        finally:
            self._command = None
            sink.pending.abort()  # (nothing left to remove after a commit)
        self._flush()

    def do_namespace(self, cmd: Command) -> None:
        self._send(format_namespace([("", ".")], None, None))
        self._ok(cmd)

    def do_enable(self, cmd: Command) -> None:
        self._send(b"* ENABLED\r\n")
        self._ok(cmd)

    def do_idle(self, cmd: Command) -> None:
        self._idling = cmd.tag
        if self.view is not None:
            self._sync(allow_expunge=True)
        self._send(b"+ idling\r\n")
        if self.view is not None and self.factory.idle_poll:
            self._poll = self.factory.reactor.call_later(self.factory.idle_poll, self._poll_idle)

    def _poll_idle(self) -> None:
        # changes another process made leave no notification here: look now and then
        self._poll = None
        if self._idling is None or self._closing or self.view is None:
            return
        self._sync(allow_expunge=True)
        self._flush()
        self._poll = self.factory.reactor.call_later(self.factory.idle_poll, self._poll_idle)

    def _idle_line(self, line: bytes) -> None:
        tag, self._idling = self._idling, None
        assert tag is not None
        if self._poll is not None and self._poll.active():
            self._poll.cancel()
        self._poll = None
        if line.strip().upper() != b"DONE":
            # IDLE ends with a BAD; the line is then read as the command it likely is (a
            # pipelining client would wait for its answer for good)
            self._tagged(tag, "BAD", "Expected DONE to end IDLE")
            self._bad_command()
            if not self._closing:
                self.reader.unread_line(line)
            return
        if self.view is not None:
            self._sync(allow_expunge=True)
        self._tagged(tag, "OK", "IDLE terminated")

    # ---- selected

    def do_check(self, cmd: Command) -> None:
        self._ok(cmd)

    def do_close(self, cmd: Command) -> None:
        view = self.view
        assert view is not None
        if not view.readonly:
            view.box.expunge(view.uids)
        self._deselect()
        self._tagged(cmd.tag, "OK", "CLOSE completed")

    def do_unselect(self, cmd: Command) -> None:
        self._deselect()
        self._tagged(cmd.tag, "OK", "UNSELECT completed")

    def do_expunge(self, cmd: Command) -> None:
        view = self.view
        assert view is not None
        if view.readonly:
            self._tagged(cmd.tag, "NO", "The mailbox is read-only", "READ-ONLY")
            return
        if cmd.uid:
            uids = self._uids(cmd.args[0], True)
        else:
            uids = list(view.uids)
        view.box.expunge(uids)
        self._ok(cmd)

    def _uids(self, seqset: SequenceSet, by_uid: bool) -> list[int]:
        """The UIDs a set names (sequence numbers or UIDs), ascending; ValueError for a
        sequence number past the mailbox's end."""
        view = self.view
        assert view is not None
        uids = view.uids
        if by_uid:
            if not uids:
                return []
            largest = uids[-1]
            bounds = list(seqset.bounds(largest))
            if len(bounds) == 1:
                lo, hi = bounds[0]
                return uids[bisect.bisect_left(uids, lo):bisect.bisect_right(uids, hi)]
            out: list[int] = []
            for lo, hi in seqset.merged(largest):  # joined ranges: no ranges x messages
                out.extend(uids[bisect.bisect_left(uids, lo):bisect.bisect_right(uids, hi)])
            return out
        count = len(uids)
        merged = seqset.merged(count)
        if merged and (merged[-1][1] > count or merged[0][0] < 1):
            raise ValueError("Invalid message sequence number")
        chosen: list[int] = []
        for lo, hi in merged:
            chosen.extend(uids[lo - 1:hi])
        return chosen

    def _select_set(self, cmd: Command, seqset: SequenceSet) -> list[int] | None:
        try:
            return self._uids(seqset, cmd.uid)
        except ValueError as e:
            self._tagged(cmd.tag, "BAD", str(e))
            return None

    def do_fetch(self, cmd: Command) -> bool:
        view = self.view
        assert view is not None
        seqset, items = cmd.args
        uids = self._select_set(cmd, seqset)
        if uids is None:
            return False
        if cmd.uid and not any(i.name == "UID" for i in items):
            items = (FetchItem("UID"), *items)
        fast = _fast_path(items)
        cache = self.factory.cache
        box = view.box
        out = self._send
        if fast is not None:  # FLAGS, UID, ENVELOPE...: one formatted line each
            for uid in uids:
                info = view.infos.get(uid)
                if info is None or uid in view.gone:
                    continue
                parts = []
                for name in fast:
                    if name == "FLAGS":
                        parts.append(b"FLAGS " + self._flags_of(uid))
                    elif name == "UID":
                        parts.append(b"UID %d" % uid)
                    elif name == "ENVELOPE":
                        try:
                            parts.append(b"ENVELOPE " + cache.get(box, info).envelope())
                        except (OSError, NoSuchMessage):
                            parts.append(b"ENVELOPE " + _EMPTY_ENVELOPE)
                    elif name == "RFC822.SIZE":
                        parts.append(b"RFC822.SIZE %d" % box.wire_size(info))
                    else:  # INTERNALDATE
                        parts.append(b'INTERNALDATE "'
                                     + format_datetime(internal_datetime(info)).encode()
                                     + b'"')
                out(b"* %d FETCH (%s)\r\n" % (view.seq_of(uid), b" ".join(parts)))
            self._ok(cmd)
            return True
        for uid in uids:
            info = view.infos.get(uid)
            if info is None or uid in view.gone:
                continue
            try:
                self._fetch_one(view, uid, info, items)
            except (OSError, NoSuchMessage):
                continue
        self._ok(cmd)
        return True

    def _fetch_one(self, view: _View, uid: int, info: MessageInfo,
                   items: tuple[FetchItem, ...]) -> None:
        box = view.box
        cache = self.factory.cache
        pieces: list[Any] = [b"* %d FETCH (" % view.seq_of(uid)]
        first = True
        raw: bytes | None = None
        mark_seen = False
        for item in items:
            name = item.name
            text: bytes | None = None
            literal: Any = None
            label = item.response_name
            if name == "FLAGS":
                text = self._flags_of(uid)
            elif name == "UID":
                text = b"%d" % uid
            elif name == "INTERNALDATE":
                text = b'"' + format_datetime(internal_datetime(info)).encode() + b'"'
            elif name == "RFC822.SIZE":
                text = b"%d" % box.wire_size(info)
            elif name == "ENVELOPE":
                text = cache.get(box, info).envelope()
            elif name in ("BODYSTRUCTURE", "BODY") and item.section is None:
                text = format_body_structure(cache.structure(box, info),
                                             name == "BODYSTRUCTURE")
            else:
                section = item.section
                partial = item.partial
                if name == "RFC822":
                    section, partial, peek = Section(), None, False
                elif name == "RFC822.HEADER":
                    section, partial, peek = Section((), "HEADER"), None, True
                elif name == "RFC822.TEXT":
                    section, partial, peek = Section((), "TEXT"), None, False
                else:
                    peek = item.peek
                    label = item.response_name
                assert section is not None
                if not peek:
                    mark_seen = True
                if (info.size > BIG_MESSAGE and section.part == ()
                        and section.text in (None, "TEXT")):
                    total = box.wire_size(info)
                    start = 0
                    if section.text == "TEXT":
                        start = len(cache.get(box, info).header)
                    length = total - start
                    if partial is not None:
                        start += min(partial[0], length)
                        length = max(0, min(partial[1], length - partial[0]))
                    literal = _Stream(box, info, start, length)
                elif section.part == () and section.text in ("HEADER", "HEADER.FIELDS",
                                                              "HEADER.FIELDS.NOT"):
                    literal = section_bytes(cache.get(box, info).header, section, partial)
                else:
                    if raw is None:
                        raw = read_all(box, info)
                    literal = section_bytes(raw, section, partial)
            if not first:
                pieces.append(b" ")
            first = False
            pieces.append(label.encode("ascii"))
            pieces.append(b" ")
            if literal is None:
                pieces.append(text)
            elif isinstance(literal, _Stream):
                pieces.append(b"{%d}\r\n" % literal.length)
                pieces.append(literal)
            else:
                pieces.append(b"{%d}\r\n" % len(literal))
                pieces.append(literal)
        if mark_seen and not view.readonly and "\\Seen" not in view.flags.get(uid, ()):
            new = box.store_flags([uid], ["\\Seen"], "add").get(uid)
            if new is not None:
                view.flags[uid] = new
                if not any(i.name == "FLAGS" for i in items):
                    pieces.append(b" FLAGS " + self._flags_of(uid))
        pieces.append(b")\r\n")
        self._out.extend(pieces)

    def do_store(self, cmd: Command) -> bool:
        view = self.view
        assert view is not None
        seqset, mode, silent, flags = cmd.args
        uids = self._select_set(cmd, seqset)
        if uids is None:
            return False
        if view.readonly:
            self._tagged(cmd.tag, "NO", "The mailbox is read-only", "READ-ONLY")
            return True
        if any(f.upper() == "\\RECENT" for f in flags):
            self._tagged(cmd.tag, "BAD", "\\Recent cannot be set by a client")
            return False
        uids = [u for u in uids if u not in view.gone]
        try:
            result = view.box.store_flags(uids, flags,
                                          {"": "set", "+": "add", "-": "remove"}[mode])
        except ValueError as e:
            self._tagged(cmd.tag, "NO", f"STORE failed: {e}", "LIMIT")
            return True
        for uid in uids:
            new = result.get(uid)
            if new is None:
                continue
            view.flags[uid] = new
            if not silent:
                uid_part = b"UID %d " % uid if cmd.uid else b""
                self._send(b"* %d FETCH (%sFLAGS %s)\r\n"
                           % (view.seq_of(uid), uid_part, self._flags_of(uid)))
        self._ok(cmd)
        return True

    def do_copy(self, cmd: Command) -> bool:
        return self._copy(cmd, move=False)

    def do_move(self, cmd: Command) -> bool:
        return self._copy(cmd, move=True)

    def _copy(self, cmd: Command, move: bool) -> bool:
        view = self.view
        assert view is not None
        seqset, target_name = cmd.args
        uids = self._select_set(cmd, seqset)
        if uids is None:
            return False
        if move and view.readonly:
            self._tagged(cmd.tag, "NO", "The mailbox is read-only", "READ-ONLY")
            return True
        try:
            target = self._folder(target_name)
        except FolderError:
            self._tagged(cmd.tag, "NO", f"No mailbox {target_name}", "TRYCREATE")
            return True
        uids = [u for u in uids if u not in view.gone]
        _mark_before_adding(target)
        if move:
            mapping = view.box.move(uids, target)
        else:
            mapping = view.box.copy(uids, target)
        code = None
        if mapping:
            code = (f"COPYUID {target.uidvalidity} {SequenceSet.of(mapping)} "
                    f"{SequenceSet.of(mapping.values())}")
            # the pairs must line up: SequenceSet.of sorts, and the new UIDs ascend with
            # the old ones (the store copies in ascending order)
        if move:
            if code:
                self._send(f"* OK [{code}] Moved\r\n".encode())
            self._ok(cmd)
        else:
            self._ok(cmd, code=code)
        return True

    def do_search(self, cmd: Command) -> bool:
        view = self.view
        assert view is not None
        charset, key = cmd.args
        if charset is not None and charset.upper() not in ("UTF-8", "US-ASCII", "UTF8"):
            self._tagged(cmd.tag, "NO", f"Unsupported charset {charset}",
                         "BADCHARSET (UTF-8 US-ASCII)")
            return True
        found = []
        largest_seq = len(view.uids)
        largest_uid = view.uids[-1] if view.uids else 0
        for seq, c in self._candidates():
            if matches(key, c, largest_seq, largest_uid, view.recent):
                found.append(c.uid if cmd.uid else seq)
        self._send(b" ".join([b"* SEARCH", *(b"%d" % n for n in found)]) + b"\r\n")
        self._ok(cmd)
        return True

    def _candidates(self) -> Iterator[tuple[int, Candidate]]:
        view = self.view
        assert view is not None
        box = view.box
        cache = self.factory.cache
        for seq, uid in enumerate(view.uids, 1):
            info = view.infos.get(uid)
            if info is None or uid in view.gone:
                continue

            def fields(info: MessageInfo = info) -> dict[str, list[str]]:
                try:
                    return cache.get(box, info).fields()
                except (OSError, NoSuchMessage):
                    return {}

            def text(info: MessageInfo = info) -> bytes:
                try:
                    return read_all(box, info)
                except (OSError, NoSuchMessage):
                    return b""

            def sent(info: MessageInfo = info) -> Any:
                try:
                    return cache.get(box, info).sent_date()
                except (OSError, NoSuchMessage):
                    return None

            yield seq, Candidate(seq, uid, view.flags[uid], internal_datetime(info).date(),
                                 box.wire_size(info), fields, text, sent)


_EMPTY_ENVELOPE = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
_FAST_ITEMS = frozenset(["FLAGS", "UID", "ENVELOPE", "RFC822.SIZE", "INTERNALDATE"])


def _mark_before_adding(box: Maildir) -> None:
    """What is added to ``box`` now is \\Recent for the first session to see it, also in a
    folder no session of this process has looked at yet."""
    _recent_marks.setdefault(os.path.realpath(box.path), box.uidnext - 1)


def _flag_order(flag: str) -> tuple[bool, str]:
    return (not flag.startswith("\\"), flag)


def _fast_path(items: tuple[FetchItem, ...]) -> list[str] | None:
    names = [i.name for i in items]
    if all(i.section is None and i.name in _FAST_ITEMS for i in items):
        return names
    return None


def _disk_name(name: str) -> str:
    """A mailbox name as the store keeps it (modified UTF-7; INBOX in any case is INBOX)."""
    if name.upper() == "INBOX":
        return "INBOX"
    if name[:6].upper() == "INBOX.":  # RFC 3501 5.1: INBOX in any case, under it too
        name = "INBOX." + name[6:]
    return encode_mailbox(name)


class _Pattern:
    """A LIST pattern (``*`` any characters, ``%`` any but the hierarchy delimiter), matched
    without backtracking: the set of pattern positions reachable after each character of
    a name, so a pattern of many wildcards costs its length times the name's, never the
    exponential time a regular expression can take (``"*********z"`` against forty
    ``a`` took seconds, the whole server held)."""

    def __init__(self, pattern: str) -> None:
        collapsed: list[str] = []
        for ch in pattern:  # a run of wildcards is one: "*" if any of it is "*"
            if ch in "*%" and collapsed and collapsed[-1] in "*%":
                if ch == "*":
                    collapsed[-1] = "*"
                continue
            collapsed.append(ch)
        self.pattern = collapsed

    def _close(self, states: set[int]) -> set[int]:
        pattern = self.pattern
        out = set(states)
        for i in sorted(states):
            j = i
            while j < len(pattern) and pattern[j] in "*%":
                j += 1
                out.add(j)
        return out

    def match(self, name: str) -> bool:
        pattern = self.pattern
        states = self._close({0})
        for c in name:
            after: set[int] = set()
            for i in states:
                if i == len(pattern):
                    continue
                p = pattern[i]
                if p == "*" or (p == "%" and c != "."):
                    after.add(i)
                elif p == c:
                    after.add(i + 1)
            if not after:
                return False
            states = self._close(after)
        return len(pattern) in states


def _pattern(pattern: str) -> _Pattern:
    return _Pattern(pattern)


def _list_entries(names: list[str], pattern: str, children: bool) -> Iterator[ListEntry]:
    """LIST's answers: the names matching ``pattern`` (INBOX in any case), with the
    parents a ``%`` reaches that do not exist as ``\\Noselect``."""
    if pattern.upper().startswith("INBOX"):
        pattern = "INBOX" + pattern[5:]
    rx = _pattern(pattern)
    have = set(names)
    implied: set[str] = set()
    for n in names if children or "%" in pattern else ():
        parts = n.split(".")
        for i in range(1, len(parts)):
            implied.add(".".join(parts[:i]))
    seen = set()
    for n in sorted(have | implied, key=lambda x: (x != "INBOX", x)):
        if not rx.match(n) or n in seen:
            continue
        seen.add(n)
        flags: list[str] = []
        if n not in have:
            flags.append("\\Noselect")
        if children:
            has = any(o.startswith(n + ".") for o in have)
            flags.append("\\HasChildren" if has else "\\HasNoChildren")
            use = SPECIAL_USE.get(n.lower())
            if use:
                flags.append(use)
        yield ListEntry(tuple(flags), ".", n)


def serve(
    maildir_root: str | os.PathLike[str],
    users: Mapping[str, str],
    port: int = 0,
    interface: str = "127.0.0.1",
    tls: Any = None,
    *,
    require_tls: bool = False,
    max_line: int = DEFAULT_MAX_LINE,
    max_literal: int = DEFAULT_MAX_LITERAL,
    max_bad_commands: int = 10,
    idle_timeout: float = 1800.0,
    idle_poll: float = 5.0,
    fsync: bool = True,
) -> Listener:
    """Serve the Maildirs under ``maildir_root`` (``maildir_root/<user>``) over IMAP4rev1
    on ``interface:port``; returns the Listener.

    ``users`` maps names to passwords (LOGIN and AUTHENTICATE PLAIN check them). ``tls``
    is a server context (``netshell.tls.server_context(cert, key)``): STARTTLS is offered;
    ``require_tls`` refuses to log in before it (LOGINDISABLED). The limits are in the
    module docstring; ``idle_poll`` is how often an IDLE session looks for changes other
    processes made. Raises ValueError when ``maildir_root`` is not a directory, OSError
    when the port is taken.

    >>> listener = serve(".", {"alice": "secret"}, idle_timeout=60)
    >>> listener.factory.idle_timeout
    60
    >>> _ = listener.close()
    """
    reactor = get_reactor()
    factory = IMAPServerFactory(
        maildir_root, users, tls=tls, require_tls=require_tls, max_line=max_line,
        max_literal=max_literal, max_bad_commands=max_bad_commands,
        idle_timeout=idle_timeout, idle_poll=idle_poll, fsync=fsync, reactor=reactor,
    )
    return reactor.listen_tcp(port, factory, interface=interface)
