"""Reading IMAP4rev1 (RFC 3501), sans I/O: commands as a server reads them, responses as a
client reads them. Bytes go in (in any pieces: a literal may be split anywhere), typed
values come out; nothing here touches a socket or a clock.

**Commands** (:class:`CommandReader`): ``receive(data)``, then ``next_event()`` until it
gives None. An event is a :class:`~.values.Command` (tag, name, typed args: see its
docstring), or a :class:`~.values.ContinuationRequest` when a synchronising literal
``{n}`` has been announced: the server answers ``+ Ready`` (or refuses the command with
``reject_literal()``) and the client sends the bytes. ``{n+}`` (LITERAL+, RFC 7888) needs
no answer. A bad command raises an :class:`~.values.IMAPParseError` whose ``response()``
is the server's answer (``tag BAD ...``, ``tag NO [TOOBIG] ...``, ``* BYE ...``) after
the reader has put the bad command behind it; when ``fatal`` is set the connection must
close. ``next_line()`` reads one raw line instead (IDLE's ``DONE``, AUTHENTICATE's
answers).

**Responses** (:class:`ResponseReader`): ``receive(data)``, then ``next_response()``
until None: a :class:`~.values.Response` (untagged data, typed; tagged status with its
response code) or a :class:`~.values.Continuation` (``+``).

>>> r = CommandReader()
>>> r.feed(b'a1 LOGIN {5}\\r\\n')
[ContinuationRequest(tag='a1', size=5)]
>>> r.feed(b'alice "s3 cret"\\r\\na2 SELECT inbox\\r\\n')
[Command(tag='a1', name='LOGIN', args=('alice', 's3 cret'), uid=False), \
Command(tag='a2', name='SELECT', args=('INBOX',), uid=False)]
>>> ResponseReader().feed(b'* 3 FETCH (UID 17 FLAGS (\\\\Seen))\\r\\n')[0].data
{'UID': 17, 'FLAGS': ('\\\\Seen',)}
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from protocols.mail.imap.values import (
    MONTHS,
    SEARCH_DATE_KEYS,
    SEARCH_FLAGS_KEYS,
    SEARCH_STRING_KEYS,
    Address,
    BadCharset,
    BodyStructure,
    Command,
    Continuation,
    ContinuationRequest,
    Envelope,
    FetchItem,
    IMAPParseError,
    IMAPSyntaxError,
    LineTooLong,
    ListEntry,
    LiteralTooBig,
    Multipart,
    Response,
    ResponseCode,
    ResponseParseError,
    SearchKey,
    Section,
    SequenceSet,
    SinglePart,
    canonical_flag,
)
from protocols.mail.imap.writer import decode_mailbox

__all__ = [
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_LITERAL",
    "CommandReader",
    "ResponseReader",
    "parse_command",
    "parse_datetime",
    "parse_fetch_items",
    "parse_response",
]

#: the longest command line (its text, literals not counted) a reader takes by default;
#: RFC 7162 asks servers to take at least 8192 octets
DEFAULT_MAX_LINE = 65536
#: the largest literal a command reader takes by default
DEFAULT_MAX_LITERAL = 64 * 1024 * 1024
#: how deep search keys may nest in a command
MAX_NESTING = 64
#: how deep parenthesised lists may nest in a response (a BODYSTRUCTURE of multiparts
#: nested as deep as the writer goes, 50, needs about twice that)
MAX_RESPONSE_NESTING = 256

_LITERAL_END = re.compile(rb"\{(\d{1,19})(\+?)\}\Z")
_TAG = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+)')
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ASTRING = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_LIST_MAILBOX = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_UNESCAPE = re.compile(rb"\\(.)", re.S)
_NUMBER = re.compile(rb"\d{1,10}")
_SEQSET = re.compile(rb"(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*")
# a flag in a command: \\ and an atom, or a keyword (\\* is only for PERMANENTFLAGS)
_FLAG = re.compile(rb'\\?[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_MONTH = {m.upper().encode(): i for i, m in enumerate(MONTHS, 1)}
_DATE = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATETIME = re.compile(
    rb"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z"
)
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION = re.compile(
    rb"(?:(\d+(?:\.\d+)*)(?:\.(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?"
    rb"|(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT))?", re.I,
)
_PARTIAL = re.compile(rb"<(\d{1,10})\.(\d{1,10})>")


# ---- framing: lines and the literals inside them


class _Framer:
    """Splits the byte stream into logical lines: ``[text, literal, text, ..., text]``,
    each text without its CRLF (a text that ends with ``{n}`` is followed by the literal).
    """

    __slots__ = ("buf", "pos", "scan", "parts", "need", "line_bytes", "max_line",
                 "max_literal", "announced")

    def __init__(self, max_line: int, max_literal: int) -> None:
        self.buf = bytearray()
        self.pos = 0  # start of what is not consumed yet
        self.scan = 0  # where to look for the next LF
        self.parts: list[bytes] = []
        self.need = -1  # >= 0: the size of the literal being waited for
        self.line_bytes = 0
        self.max_line = max_line
        self.max_literal = max_literal
        self.announced = False  # the literal being waited for was reported

    def receive(self, data: bytes) -> None:
        if self.pos and self.pos == len(self.buf):
            self.buf.clear()
            self.pos = self.scan = 0
        elif self.pos > 65536:
            del self.buf[: self.pos]
            self.scan -= self.pos
            self.pos = 0
        self.buf += data

    def reset_line(self) -> None:
        self.parts = []
        self.need = -1
        self.line_bytes = 0
        self.announced = False

    def next(self) -> tuple[Any, ...] | None:
        """``("line", parts)``, ``("literal", size, synchronizing)`` when a literal's
        header has just been read, or None: more bytes needed."""
        buf = self.buf
        while True:
            if self.need >= 0:
                if not self.announced:
                    self.announced = True
                    sync = not self.parts[-1].endswith(b"+}")
                    return ("literal", self.need, sync)
                if len(buf) - self.pos < self.need:
                    return None
                end = self.pos + self.need
                self.parts.append(bytes(buf[self.pos : end]))
                self.pos = self.scan = end
                self.need = -1
                continue
            nl = buf.find(b"\n", self.scan)
            if nl < 0:
                if len(buf) - self.pos + self.line_bytes > self.max_line:
                    return ("too long",)
                self.scan = len(buf)
                return None
            end = nl - 1 if nl > self.pos and buf[nl - 1] == 13 else nl
            segment = bytes(buf[self.pos : end])
            self.pos = self.scan = nl + 1
            self.line_bytes += len(segment)
            if self.line_bytes > self.max_line:
                self.parts.append(segment)
                return ("too long",)
            self.parts.append(segment)
            if segment.endswith(b"}"):
                m = _LITERAL_END.search(segment)
                if m is not None:
                    self.need = int(m.group(1))
                    self.announced = False
                    continue
            parts = self.parts
            self.parts = []
            self.line_bytes = 0
            return ("line", parts)

    def raw_line(self) -> bytes | None:
        buf = self.buf
        nl = buf.find(b"\n", self.scan)
        if nl < 0:
            self.scan = len(buf)
            return None
        end = nl - 1 if nl > self.pos and buf[nl - 1] == 13 else nl
        line = bytes(buf[self.pos : end])
        self.pos = self.scan = nl + 1
        return line


def _tag_of(parts: list[bytes]) -> str | None:
    m = _TAG.match(parts[0]) if parts else None
    if m is None or m.end() >= len(parts[0]) or parts[0][m.end()] != 32:
        return None
    return m.group(1).decode("ascii")


# ---- commands


class CommandReader:
    """A server's reader of client commands (see the module's docstring).

    ``max_line`` bounds a command's text (literals apart), ``max_literal`` each literal:
    over them, :class:`~.values.LineTooLong` (fatal) and :class:`~.values.LiteralTooBig`.
    """

    def __init__(
        self, *, max_line: int = DEFAULT_MAX_LINE, max_literal: int = DEFAULT_MAX_LITERAL
    ) -> None:
        self._framer = _Framer(max_line, max_literal)
        self._failed: IMAPParseError | None = None

    def receive(self, data: bytes) -> None:
        """Take bytes from the client (any piece of the stream)."""
        if self._failed is None:
            self._framer.receive(data)

    def next_event(self) -> Command | ContinuationRequest | None:
        """The next command, a continuation to send for a synchronising literal, or None
        when more bytes are needed. Raises :class:`~.values.IMAPParseError` for a bad
        command (the reader is past it, ready for the next, unless ``fatal``)."""
        if self._failed is not None:
            raise self._failed
        framer = self._framer
        while True:
            event = framer.next()
            if event is None:
                return None
            kind = event[0]
            if kind == "line":
                return parse_command(event[1])
            if kind == "literal":
                size, sync = event[1], event[2]
                tag = _tag_of(framer.parts)
                if size > framer.max_literal:
                    framer.reset_line()
                    error = LiteralTooBig(
                        f"literal of {size:,} octets is over the limit of "
                        f"{framer.max_literal:,}", tag, size, sync)
                    if error.fatal:
                        self._failed = error
                    raise error
                if sync:
                    return ContinuationRequest(tag, size)
                continue
            # too long
            tag = _tag_of(framer.parts)
            framer.reset_line()
            self._failed = LineTooLong(
                f"command line over the limit of {framer.max_line:,} octets", tag)
            raise self._failed

    def reject_literal(self) -> None:
        """Drop the command whose synchronising literal was just announced (the server
        answered it with a tagged NO or BAD instead of ``+``: the client sends no more
        of it)."""
        if self._framer.need < 0:
            raise RuntimeError("no literal is waiting to be rejected")
        self._framer.reset_line()

    def unread_line(self, line: bytes) -> None:
        """Put back a line :meth:`next_line` gave, to be read again first (a client that
        sent a command where IDLE's ``DONE`` was due)."""
        framer = self._framer
        framer.buf[framer.pos:framer.pos] = line + b"\r\n"
        framer.scan = framer.pos

    def next_line(self) -> bytes | None:
        """One raw line (without CRLF), or None until it is complete: IDLE's ``DONE``, an
        AUTHENTICATE answer. Only between commands."""
        if self._framer.parts or self._framer.need >= 0:
            raise RuntimeError("next_line in the middle of a command")
        line = self._framer.raw_line()
        if line is None and len(self._framer.buf) - self._framer.pos > self._framer.max_line:
            self._failed = LineTooLong("line over the limit", None)
            raise self._failed
        return line

    def feed(self, data: bytes) -> list[Any]:
        """``receive(data)``, then every event it completes, errors included as values
        (an :class:`~.values.IMAPParseError` in the list; none after a fatal one)."""
        self.receive(data)
        events: list[Any] = []
        while True:
            try:
                event = self.next_event()
            except IMAPParseError as e:
                events.append(e)
                if e.fatal:
                    return events
                continue
            if event is None:
                return events
            events.append(event)


class _Cursor:
    """A position in a logical line's parts, and the grammar's small readers."""

    __slots__ = ("parts", "i", "seg", "pos", "tag")

    def __init__(self, parts: list[bytes], tag: str | None = None) -> None:
        self.parts = parts
        self.i = 0
        self.seg = parts[0]
        self.pos = 0
        self.tag = tag

    def fail(self, message: str) -> IMAPSyntaxError:
        return IMAPSyntaxError(message, self.tag)

    def peek(self) -> int:
        return self.seg[self.pos] if self.pos < len(self.seg) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.seg) and self.i == len(self.parts) - 1

    def sp(self, what: str = "") -> None:
        if self.peek() != 32:
            raise self.fail(f"expected a space{' before ' + what if what else ''} "
                            f"at {self.context()}")
        self.pos += 1

    def context(self) -> str:
        rest = self.seg[self.pos : self.pos + 20].decode("ascii", "replace")
        return f"{rest!r}" if rest else "the end of the line"

    def match(self, rx: re.Pattern[bytes]) -> re.Match[bytes] | None:
        m = rx.match(self.seg, self.pos)
        if m is not None:
            self.pos = m.end()
        return m

    def take(self, rx: re.Pattern[bytes], what: str) -> bytes:
        m = rx.match(self.seg, self.pos)
        if m is None or m.end() == self.pos:
            raise self.fail(f"expected {what} at {self.context()}")
        self.pos = m.end()
        return m.group(0)

    def atom(self, what: str = "an atom") -> str:
        return self.take(_ATOM, what).decode("ascii")

    def literal(self) -> bytes | None:
        m = _LITERAL_END.match(self.seg, self.pos)
        if m is None:
            return None
        if self.i + 1 >= len(self.parts):
            raise self.fail("a literal without its octets")
        data = self.parts[self.i + 1]
        self.i += 2
        self.seg = self.parts[self.i]
        self.pos = 0
        return data

    def string(self, what: str = "a string") -> bytes:
        c = self.peek()
        if c == 34:
            m = self.match(_QUOTED)
            if m is None:
                raise self.fail(f"a quoted string that does not end well at {self.context()}")
            data = m.group(1)
            return _UNESCAPE.sub(rb"\1", data) if b"\\" in data else data
        if c == 123:
            data = self.literal()
            if data is not None:
                return data
        raise self.fail(f"expected {what} at {self.context()}")

    def astring(self, what: str = "an astring") -> bytes:
        c = self.peek()
        if c == 34 or c == 123:
            return self.string(what)
        return self.take(_ASTRING, what)

    def nstring(self, what: str = "a string or NIL") -> bytes | None:
        if self.keyword(b"NIL"):
            return None
        return self.string(what)

    def number(self, what: str = "a number", nonzero: bool = False) -> int:
        n = int(self.take(_NUMBER, what))
        if n > 0xFFFFFFFF or (nonzero and n == 0):
            raise self.fail(f"{what} out of range: {n}")
        return n

    def expect(self, char: bytes, what: str) -> None:
        if self.seg[self.pos : self.pos + 1] != char:
            raise self.fail(f"expected {what} at {self.context()}")
        self.pos += 1

    def keyword(self, word: bytes) -> bool:
        """Whether the next atom is ``word`` (case-insensitive); taken if so."""
        end = self.pos + len(word)
        if self.seg[self.pos : end].upper() == word and (
            end == len(self.seg) or self.seg[end] in b" ()"
        ):
            self.pos = end
            return True
        return False


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _mailbox(cur: _Cursor) -> str:
    raw = cur.astring("a mailbox name")
    return _mailbox_name(cur, raw, inbox=True)


def _mailbox_name(cur: _Cursor, raw: bytes, inbox: bool) -> str:
    try:
        name = decode_mailbox(raw.decode("ascii")) if raw.isascii() else raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError) as e:
        raise cur.fail(f"mailbox name is not valid: {e}") from None
    if inbox and name.upper() == "INBOX":
        return "INBOX"
    return name


def _seqset(cur: _Cursor) -> SequenceSet:
    text = cur.take(_SEQSET, "a sequence set")
    try:
        return SequenceSet.parse(text.decode("ascii"))
    except ValueError as e:
        raise cur.fail(str(e)) from None


def _flag(cur: _Cursor) -> str:
    return canonical_flag(cur.take(_FLAG, "a flag").decode("ascii"))


def _flag_list(cur: _Cursor) -> tuple[str, ...]:
    cur.expect(b"(", "a flag list")
    flags: list[str] = []
    if cur.peek() != 41:
        flags.append(_flag(cur))
        while cur.peek() == 32:
            cur.pos += 1
            flags.append(_flag(cur))
    cur.expect(b")", "the end of the flag list")
    return tuple(flags)


def _date(cur: _Cursor) -> date:
    quoted = cur.peek() == 34
    if quoted:
        cur.pos += 1
    m = cur.match(_DATE)
    if m is None:
        raise cur.fail(f"expected a date like 1-Feb-1994 at {cur.context()}")
    if quoted:
        cur.expect(b'"', "the end of the quoted date")
    month = _MONTH.get(m.group(2).upper())
    try:
        if month is None:
            raise ValueError(f"no month {m.group(2)!r}")
        return date(int(m.group(3)), month, int(m.group(1)))
    except ValueError as e:
        raise cur.fail(f"not a date: {e}") from None


def parse_datetime(text: bytes | str) -> datetime:
    """An IMAP date-time (``" 7-Jul-1996 02:44:25 -0700"``) as an aware datetime;
    ValueError if it is not one."""
    data = text.encode("ascii") if isinstance(text, str) else text
    m = _DATETIME.match(data)
    month = _MONTH.get(m.group(2).upper()) if m else None
    if m is None or month is None:
        raise ValueError(f"not an IMAP date-time: {data!r}")
    offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
    if m.group(7) == b"-":
        offset = -offset
    return datetime(int(m.group(3)), month, int(m.group(1)), int(m.group(4)),
                    int(m.group(5)), int(m.group(6)), tzinfo=timezone(offset))


# -- each command's arguments


def _no_args(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    return ()


def _login(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the user name")
    user = _text(cur.astring("a user name"))
    cur.sp("the password")
    return (user, _text(cur.astring("a password")))


def _authenticate(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the mechanism")
    mechanism = cur.atom("a SASL mechanism").upper()
    initial = None
    if cur.peek() == 32:
        cur.pos += 1
        initial = cur.take(_BASE64, "an initial response").decode("ascii")
    return (mechanism, initial)


def _one_mailbox(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the mailbox")
    return (_mailbox(cur),)


def _rename(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the mailbox")
    old = _mailbox(cur)
    cur.sp("the new name")
    return (old, _mailbox(cur))


def _list(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the reference")
    reference = _mailbox_name(cur, cur.astring("a reference name"), inbox=False)
    cur.sp("the mailbox pattern")
    c = cur.peek()
    raw = cur.string() if c in (34, 123) else cur.take(_LIST_MAILBOX, "a mailbox pattern")
    return (reference, _mailbox_name(cur, raw, inbox=False))


_STATUS_ITEMS = frozenset(
    ["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED"])


def _status(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the mailbox")
    mailbox = _mailbox(cur)
    cur.sp("the status items")
    cur.expect(b"(", "a parenthesised list of status items")
    items = []
    while True:
        item = cur.atom("a status item").upper()
        if item not in _STATUS_ITEMS:
            raise cur.fail(f"unknown status item {item}")
        items.append(item)
        if cur.peek() != 32:
            break
        cur.pos += 1
    cur.expect(b")", "the end of the status items")
    return (mailbox, tuple(items))


def _append(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the mailbox")
    mailbox = _mailbox(cur)
    cur.sp("the message")
    flags: tuple[str, ...] = ()
    when = None
    if cur.peek() == 40:
        flags = _flag_list(cur)
        cur.sp("the message")
    if cur.peek() == 34:
        m = cur.match(_QUOTED)
        if m is None:
            raise cur.fail("a bad date-time")
        try:
            when = parse_datetime(m.group(1))
        except ValueError as e:
            raise cur.fail(str(e)) from None
        cur.sp("the message")
    message = cur.literal() if cur.peek() == 123 else None
    if message is None:
        raise cur.fail(f"expected the message as a literal at {cur.context()}")
    return (mailbox, flags, when, message)


_CHARSETS_WE_NAME = "US-ASCII UTF-8"


def _search(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the search keys")
    charset = None
    if cur.keyword(b"CHARSET"):
        cur.sp("the charset")
        charset = _text(cur.astring("a charset"))
        cur.sp("the search keys")
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            raise BadCharset(f"unknown charset {charset}", cur.tag,
                             f"BADCHARSET ({_CHARSETS_WE_NAME})") from None
    else:
        codec = "ascii"

    def decode(data: bytes) -> str:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            raise cur.fail(f"search text is not {charset or 'US-ASCII'}") from None

    keys = [_search_key(cur, decode, 0)]
    while cur.peek() == 32:
        cur.pos += 1
        keys.append(_search_key(cur, decode, 0))
    return (charset, keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys)))


def _search_key(cur: _Cursor, decode: Callable[[bytes], str], depth: int) -> SearchKey:
    if depth > MAX_NESTING:
        raise cur.fail("search keys nest too deep")
    c = cur.peek()
    if c == 40:
        cur.pos += 1
        keys = [_search_key(cur, decode, depth + 1)]
        while cur.peek() == 32:
            cur.pos += 1
            keys.append(_search_key(cur, decode, depth + 1))
        cur.expect(b")", "the end of the parenthesised search keys")
        return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
    if c == 42 or 48 <= c <= 57:
        return SearchKey("SET", (_seqset(cur),))
    name = cur.atom("a search key").upper()
    if name in SEARCH_FLAGS_KEYS:
        return SearchKey(name)
    cur.sp(f"the argument of {name}")
    if name in SEARCH_STRING_KEYS:
        return SearchKey(name, (decode(cur.astring()),))
    if name in SEARCH_DATE_KEYS:
        return SearchKey(name, (_date(cur),))
    if name in ("LARGER", "SMALLER"):
        return SearchKey(name, (cur.number(),))
    if name == "UID":
        return SearchKey(name, (_seqset(cur),))
    if name in ("KEYWORD", "UNKEYWORD"):
        return SearchKey(name, (cur.atom("a keyword"),))
    if name == "HEADER":
        field = cur.astring("a header name").decode("ascii", "replace")
        cur.sp("the header's text")
        return SearchKey(name, (field, decode(cur.astring())))
    if name == "NOT":
        return SearchKey(name, (_search_key(cur, decode, depth + 1),))
    if name == "OR":
        a = _search_key(cur, decode, depth + 1)
        cur.sp("OR's second key")
        return SearchKey(name, (a, _search_key(cur, decode, depth + 1)))
    raise cur.fail(f"unknown search key {name}")


_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE_ITEMS = frozenset([
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
    "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID",
])


def _fetch_item(cur: _Cursor) -> FetchItem:
    name = cur.take(_FETCH_NAME, "a fetch item").decode("ascii").upper()
    if cur.peek() == 91 and name in ("BODY", "BODY.PEEK"):
        cur.pos += 1
        section = _section(cur)
        cur.expect(b"]", "the end of the section")
        partial = None
        m = cur.match(_PARTIAL)
        if m is not None:
            partial = (int(m.group(1)), int(m.group(2)))
            if partial[1] == 0 or max(partial) > 0xFFFFFFFF:
                raise cur.fail("a partial's length is a non-zero 32-bit number")
        return FetchItem("BODY", section, partial, peek=name == "BODY.PEEK")
    if name not in _SIMPLE_ITEMS:
        raise cur.fail(f"unknown fetch item {name}")
    return FetchItem(name)


def _section(cur: _Cursor) -> Section:
    m = cur.match(_SECTION)
    assert m is not None
    part: tuple[int, ...] = ()
    text = None
    if m.group(1):
        part = tuple(int(n) for n in m.group(1).split(b"."))
        if 0 in part:
            raise cur.fail("section part numbers start at 1")
        text = m.group(2).decode("ascii").upper() if m.group(2) else None
    elif m.group(3):
        text = m.group(3).decode("ascii").upper()
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        cur.sp("the header list")
        cur.expect(b"(", "a parenthesised header list")
        names = [_header_field_name(cur)]
        while cur.peek() == 32:
            cur.pos += 1
            names.append(_header_field_name(cur))
        cur.expect(b")", "the end of the header list")
        fields = tuple(names)
    return Section(part, text, fields)


def parse_fetch_items(text: bytes) -> tuple[FetchItem, ...]:
    """FETCH's items as a command has them: ``(FLAGS BODY.PEEK[TEXT])``, one item, or a
    macro (ALL, FAST, FULL, expanded). Raises IMAPSyntaxError."""
    cur = _Cursor([text])
    items = _fetch_items(cur)
    if not cur.at_end():
        raise cur.fail(f"unexpected {cur.context()} after the fetch items")
    return items


def _header_field_name(cur: _Cursor) -> str:
    name = cur.astring("a header name")
    if not name or any(c < 33 or c > 126 for c in name):
        raise cur.fail(f"a header field name is printable US-ASCII, not {name!r}")
    return name.decode("ascii")


def _fetch_items(cur: _Cursor) -> tuple[FetchItem, ...]:
    if cur.peek() == 40:
        cur.pos += 1
        items = [_fetch_item(cur)]
        while cur.peek() == 32:
            cur.pos += 1
            items.append(_fetch_item(cur))
        cur.expect(b")", "the end of the fetch items")
        return tuple(items)
    for macro, names in _MACROS.items():
        if cur.keyword(macro.encode("ascii")):
            return tuple(FetchItem(n) for n in names)
    return (_fetch_item(cur),)


def _fetch(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the sequence set")
    seqset = _seqset(cur)
    cur.sp("the fetch items")
    return (seqset, _fetch_items(cur))


def _store(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the sequence set")
    seqset = _seqset(cur)
    cur.sp("what to store")
    what = cur.take(re.compile(rb"[+-]?[A-Za-z.]+"), "FLAGS, +FLAGS or -FLAGS").upper()
    m = re.fullmatch(rb"([+-]?)FLAGS(\.SILENT)?", what)
    if m is None:
        raise cur.fail(f"cannot store {what.decode('ascii')}: FLAGS, +FLAGS or -FLAGS")
    cur.sp("the flags")
    if cur.peek() == 40:
        flags = _flag_list(cur)
    else:
        found = [_flag(cur)]
        while cur.peek() == 32:
            cur.pos += 1
            found.append(_flag(cur))
        flags = tuple(found)
    return (seqset, m.group(1).decode("ascii"), bool(m.group(2)), flags)


def _copy(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the sequence set")
    seqset = _seqset(cur)
    cur.sp("the mailbox")
    return (seqset, _mailbox(cur))


def _expunge(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    if not uid:
        return ()
    cur.sp("the UID set")
    return (_seqset(cur),)


def _enable(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    caps = []
    while cur.peek() == 32:
        cur.pos += 1
        caps.append(cur.atom("a capability").upper())
    if not caps:
        raise cur.fail("ENABLE names at least one capability")
    return (tuple(caps),)


def _id(cur: _Cursor, uid: bool) -> tuple[Any, ...]:
    cur.sp("the ID parameters")
    if cur.keyword(b"NIL"):
        return (None,)
    cur.expect(b"(", "a parenthesised ID list or NIL")
    fields: dict[str, str | None] = {}
    while cur.peek() != 41:
        if fields:
            cur.sp("the next field")
        key = _text(cur.string("a field name"))
        cur.sp("the field's value")
        value = cur.nstring()
        fields[key] = None if value is None else _text(value)
        if len(fields) > 30:
            raise cur.fail("too many ID fields (30 at most, RFC 2971)")
    cur.expect(b")", "the end of the ID list")
    return (fields,)


_COMMANDS: dict[str, Callable[[_Cursor, bool], tuple[Any, ...]]] = {
    "CAPABILITY": _no_args, "NOOP": _no_args, "LOGOUT": _no_args, "STARTTLS": _no_args,
    "CHECK": _no_args, "CLOSE": _no_args, "UNSELECT": _no_args, "IDLE": _no_args,
    "NAMESPACE": _no_args, "EXPUNGE": _expunge,
    "LOGIN": _login, "AUTHENTICATE": _authenticate,
    "SELECT": _one_mailbox, "EXAMINE": _one_mailbox, "CREATE": _one_mailbox,
    "DELETE": _one_mailbox, "SUBSCRIBE": _one_mailbox, "UNSUBSCRIBE": _one_mailbox,
    "RENAME": _rename, "LIST": _list, "LSUB": _list, "STATUS": _status, "APPEND": _append,
    "SEARCH": _search, "FETCH": _fetch, "STORE": _store, "COPY": _copy, "MOVE": _copy,
    "ENABLE": _enable, "ID": _id,
}
_UID_COMMANDS = frozenset(["FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"])


def parse_command(parts: list[bytes]) -> Command:
    """A command from a logical line's parts (``[text, literal, text, ...]``, text
    without CRLF). Raises :class:`~.values.IMAPSyntaxError` (or BadCharset)."""
    cur = _Cursor(parts)
    m = cur.match(_TAG)
    if m is None:
        raise IMAPSyntaxError("a command begins with a tag", None)
    tag = m.group(1).decode("ascii")
    if cur.peek() != 32:
        raise IMAPSyntaxError("a command begins with a tag, a space and its name", None)
    cur.tag = tag
    cur.pos += 1
    name = cur.atom("a command name").upper()
    uid = False
    if name == "UID":
        cur.sp("the command UID applies to")
        name = cur.atom("a command name").upper()
        uid = True
        if name not in _UID_COMMANDS:
            raise cur.fail(f"UID {name} is no command")
    handler = _COMMANDS.get(name)
    if handler is None:
        raise cur.fail(f"unknown command {name}")
    args = handler(cur, uid)
    if not cur.at_end():
        raise cur.fail(f"unexpected {cur.context()} after the arguments of {name}")
    return Command(tag, name, args, uid)


# ---- responses

_GENERIC = re.compile(
    # quoted | atom (ASTRING-CHARs; a [section] may hold spaces and parentheses:
    # BODY[HEADER.FIELDS (A B)]<0>) | ( | ) | literal marker | anything else, an error
    rb' *(?:("[^"\\]*(?:\\.[^"\\]*)*")|((?:[^\x00-\x20()"{\[]+|\[[^\]\r\n]*\]|\[)+)'
    rb'|(\()|(\))|(\{\d{1,19}\+?\}\Z)|(\S))',
    re.S,
)


def _generic(parts: list[bytes], i: int, pos: int) -> list[Any]:
    """The values from parts[i][pos:] to the end of the line: nested lists of bytes
    (strings), str (atoms), None (NIL)."""
    top: list[Any] = []
    current = top
    stack: list[list[Any]] = []
    n = len(parts)
    unescape = _UNESCAPE.sub
    while True:
        seg = parts[i]
        literal = False
        # findall: the tokens of the whole segment in one call (the hot path of a FETCH)
        for quoted, atom, opening, closing, marker, bad in _GENERIC.findall(seg, pos):
            if quoted:
                quoted = quoted[1:-1]
                current.append(unescape(rb"\1", quoted) if b"\\" in quoted else quoted)
            elif atom:
                current.append(None if len(atom) == 3 and atom.upper() == b"NIL"
                               else atom.decode("latin-1"))
            elif opening:
                if len(stack) > MAX_RESPONSE_NESTING:
                    raise ResponseParseError("lists nest too deep", seg)
                new: list[Any] = []
                current.append(new)
                stack.append(current)
                current = new
            elif closing:
                if not stack:
                    raise ResponseParseError("a ')' with no '('", seg)
                current = stack.pop()
            elif marker:
                if i + 1 >= n:
                    raise ResponseParseError("a literal without its octets", seg)
                current.append(parts[i + 1])
                literal = True
            else:
                raise ResponseParseError(f"unexpected {bad!r}", seg)
        if not literal:
            break
        i += 2
        pos = 0
    if stack:
        raise ResponseParseError("a '(' never closed", parts[-1])
    return top


def _s(value: Any) -> str | None:
    """A string value (bytes, or an atom) as str; None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise ResponseParseError(f"expected a string, got {value!r}")


def _int(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ResponseParseError(f"expected a number, got {value!r}")


def _flags(values: list[Any]) -> tuple[str, ...]:
    # (a keyword spelled NIL came out of the tokenizer as None: it reads back as "NIL",
    # whatever its case was)
    return tuple("NIL" if f is None else canonical_flag(f) if isinstance(f, str)
                 else canonical_flag(f.decode("utf-8", "replace")) if isinstance(f, bytes)
                 else str(f) for f in values)


def _addresses(value: Any) -> tuple[Address, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ResponseParseError(f"expected a list of addresses, got {value!r}")
    try:
        return tuple([Address(*[None if x is None else x.decode("utf-8", "surrogateescape")
                                if isinstance(x, bytes) else _s(x) for x in a])
                      for a in value])
    except (TypeError, AttributeError):
        raise ResponseParseError(f"an address has four string fields: {value!r}") from None


def _envelope(value: Any) -> Envelope:
    if not isinstance(value, list) or len(value) != 10:
        raise ResponseParseError(f"an envelope has ten fields, not {value!r}")
    return Envelope(
        _s(value[0]), _s(value[1]), _addresses(value[2]), _addresses(value[3]),
        _addresses(value[4]), _addresses(value[5]), _addresses(value[6]),
        _addresses(value[7]), _s(value[8]), _s(value[9]),
    )


def _params(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) % 2:
        raise ResponseParseError(f"body parameters come in pairs, not {value!r}")
    return tuple((_s(value[k]) or "", _s(value[k + 1]) or "") for k in range(0, len(value), 2))


def _disposition(value: Any) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ResponseParseError(f"a disposition is (type params), not {value!r}")
    return (_s(value[0]) or "", _params(value[1]))


def _language(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(_s(x) or "" for x in value)
    return (_s(value) or "",)


def _body(value: Any, depth: int = 0) -> BodyStructure:
    if not isinstance(value, list) or not value:
        raise ResponseParseError(f"expected a body structure, got {value!r}")
    if depth > MAX_RESPONSE_NESTING:
        raise ResponseParseError("body structures nest too deep")
    if isinstance(value[0], list):
        i = 0
        parts = []
        while i < len(value) and isinstance(value[i], list):
            parts.append(_body(value[i], depth + 1))
            i += 1
        subtype = _s(value[i]) if i < len(value) else None
        if subtype is None:
            raise ResponseParseError("a multipart without its subtype")
        ext = value[i + 1 :]
        return Multipart(
            tuple(parts), subtype,
            _params(ext[0]) if ext else (),
            _disposition(ext[1]) if len(ext) > 1 else None,
            _language(ext[2]) if len(ext) > 2 else None,
            _s(ext[3]) if len(ext) > 3 else None,
            extended=bool(ext),
        )
    if len(value) < 7:
        raise ResponseParseError(f"a body has at least seven fields, not {value!r}")
    type_, subtype = _s(value[0]) or "", _s(value[1]) or ""
    fields: dict[str, Any] = dict(
        params=_params(value[2]), id=_s(value[3]), description=_s(value[4]),
        encoding=_s(value[5]) or "", size=_int(value[6]),
    )
    i = 7
    kind = (type_.upper(), subtype.upper())
    if kind[0] == "TEXT":
        fields["lines"] = _int(value[7]) if len(value) > 7 else None
        i = 8
    elif kind in (("MESSAGE", "RFC822"), ("MESSAGE", "GLOBAL")) and len(value) >= 10:
        fields["envelope"] = _envelope(value[7])
        fields["body"] = _body(value[8], depth + 1)
        fields["lines"] = _int(value[9])
        i = 10
    ext = value[i:]
    return SinglePart(
        type_, subtype, **fields,
        md5=_s(ext[0]) if ext else None,
        disposition=_disposition(ext[1]) if len(ext) > 1 else None,
        language=_language(ext[2]) if len(ext) > 2 else None,
        location=_s(ext[3]) if len(ext) > 3 else None,
        extended=bool(ext),
    )


def _fetch_data(values: list[Any]) -> dict[str, Any]:
    if len(values) != 1 or not isinstance(values[0], list) or len(values[0]) % 2:
        raise ResponseParseError(f"FETCH data is a list of pairs, not {values!r}")
    items = values[0]
    out: dict[str, Any] = {}
    for k in range(0, len(items), 2):
        key = items[k]
        value = items[k + 1]
        if not isinstance(key, str):
            raise ResponseParseError(f"a FETCH item name, not {key!r}")
        key = key.upper()
        if key == "FLAGS":
            if not isinstance(value, list):
                raise ResponseParseError(f"FLAGS is a list, not {value!r}")
            out[key] = _flags(value)
        elif key in ("UID", "RFC822.SIZE"):
            out[key] = _int(value)
        elif key == "ENVELOPE":
            # (None: the fast way read it apart, see _fetch_response)
            out[key] = None if value is None else _envelope(value)
        elif key in ("BODYSTRUCTURE", "BODY"):
            out[key] = _body(value)
        elif key == "INTERNALDATE":
            try:
                out[key] = parse_datetime(value)
            except (ValueError, TypeError) as e:
                raise ResponseParseError(f"INTERNALDATE: {e}") from None
        elif key == "MODSEQ":
            out[key] = _int(value[0]) if isinstance(value, list) and value else value
        else:
            out[key] = value
    return out


# The fast way through the most common FETCH answer, an ENVELOPE of quoted strings and
# NILs: one regex takes it whole (and its addresses come out of one findall), where the
# general reader would go token by token. Anything else takes the general way.
_Q = rb'(?:"[^"\\]*(?:\\.[^"\\]*)*"|NIL)'
_ADDRESS = rb"\((" + _Q + rb") (" + _Q + rb") (" + _Q + rb") (" + _Q + rb")\)"
_ALIST = rb"(NIL|\((?:" + _ADDRESS.replace(b"(" + _Q + b")", _Q) + rb")+\))"
_FAST_ENVELOPE = re.compile(
    rb"(?<=[( ])ENVELOPE \((" + _Q + rb") (" + _Q + rb") " + rb" ".join([_ALIST] * 6)
    + rb" (" + _Q + rb") (" + _Q + rb")\)"
)
_FAST_ADDRESS = re.compile(_ADDRESS)


def _qv(token: bytes) -> str | None:
    if token == b"NIL":
        return None
    token = token[1:-1]
    if b"\\" in token:
        token = _UNESCAPE.sub(rb"\1", token)
    return token.decode("utf-8", "surrogateescape")


# an address of quoted strings without escapes (or NILs), read as text: each field is
# ("content", "") or ("", "N") for NIL
_FIELD = r'(?:"([^"\\]*)"|(N)IL)'
_PLAIN_ADDRESS = re.compile(r"\(" + " ".join([_FIELD] * 4) + r"\)")


def _fast_addresses(token: bytes) -> tuple[Address, ...] | None:
    if token == b"NIL":
        return None
    text = token.decode("utf-8", "surrogateescape")
    if "\\" in text:  # escapes: field by field
        return tuple([Address(_qv(a), _qv(b), _qv(c), _qv(d))
                      for a, b, c, d in _FAST_ADDRESS.findall(token)])
    return tuple([Address(None if n1 else a, None if n2 else b, None if n3 else c,
                          None if n4 else d)
                  for a, n1, b, n2, c, n3, d, n4 in _PLAIN_ADDRESS.findall(text)])


def _fetch_response(parts: list[bytes], pos: int) -> dict[str, Any]:
    seg = parts[0]
    if len(parts) == 1 and b"ENVELOPE (" in seg:
        m = _FAST_ENVELOPE.search(seg, pos)
        # (not inside a quoted string: an even number of quotes before it, none escaped)
        if m is not None and b'\\"' not in seg[: m.start()] \
                and not seg.count(b'"', pos, m.start()) % 2:
            g = m.groups()
            a = [_fast_addresses(x) for x in g[2:8]]
            envelope = Envelope(_qv(g[0]), _qv(g[1]), a[0], a[1], a[2], a[3], a[4], a[5],
                                _qv(g[8]), _qv(g[9]))
            # the rest the general way, the envelope's place held by a NIL
            rest = seg[: m.start() + len(b"ENVELOPE ")] + b"NIL" + seg[m.end() :]
            data = _fetch_data(_generic([rest], 0, pos))
            data["ENVELOPE"] = envelope
            return data
    return _fetch_data(_generic(parts, 0, pos))


def _code(text: bytes) -> ResponseCode:
    name_b, _, rest_b = text.partition(b" ")
    name = name_b.decode("latin-1").upper()
    rest = rest_b.decode("utf-8", "surrogateescape")
    if not rest_b:
        return ResponseCode(name, None)
    try:
        if name in ("UIDVALIDITY", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ"):
            return ResponseCode(name, int(rest))
        if name in ("PERMANENTFLAGS", "BADCHARSET"):
            values = _generic([rest_b], 0, 0)
            if len(values) == 1 and isinstance(values[0], list):
                return ResponseCode(name, _flags(values[0]))
        if name == "CAPABILITY":
            return ResponseCode(name, tuple(c.upper() for c in rest.split()))
        if name == "APPENDUID":
            v, uids = rest.split()
            return ResponseCode(name, (int(v), SequenceSet.parse(uids)))
        if name == "COPYUID":
            v, a, b = rest.split()
            return ResponseCode(name, (int(v), SequenceSet.parse(a), SequenceSet.parse(b)))
    except (ValueError, ResponseParseError):
        pass
    return ResponseCode(name, rest)


def _resp_text(seg: bytes, pos: int) -> tuple[ResponseCode | None, str]:
    code = None
    if seg[pos : pos + 1] == b"[":
        end = seg.find(b"]", pos)
        if end > pos:
            code = _code(seg[pos + 1 : end])
            pos = end + 1
            if seg[pos : pos + 1] == b" ":
                pos += 1
    return code, seg[pos:].decode("utf-8", "replace")


_STATUS_KINDS = frozenset(("OK", "NO", "BAD", "BYE", "PREAUTH"))
_NUMBERED = re.compile(rb"\* (\d{1,10}) ([A-Za-z]+)(?: |\Z)")
_UNTAGGED = re.compile(rb"\* ([A-Za-z0-9.\-]+)(?: |\Z)")
_TAGGED = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+) (OK|NO|BAD)(?: |\Z)', re.I)


def parse_response(parts: list[bytes]) -> Response | Continuation:
    """A server's response from a logical line's parts (see :class:`ResponseReader`).
    Raises :class:`~.values.ResponseParseError`."""
    seg = parts[0]
    if seg[:1] == b"+":
        return Continuation(seg[2:].decode("utf-8", "replace") if seg[1:2] == b" "
                            else seg[1:].decode("utf-8", "replace"))
    m = _NUMBERED.match(seg)
    if m is not None:
        number = int(m.group(1))
        kind = m.group(2).decode("ascii").upper()
        if kind == "FETCH":
            return Response("*", kind, number, _fetch_response(parts, m.end()))
        return Response("*", kind, number)
    m = _UNTAGGED.match(seg)
    if m is not None:
        kind = m.group(1).decode("ascii").upper()
        pos = m.end()
        if kind in _STATUS_KINDS:
            code, text = _resp_text(seg, pos)
            return Response("*", kind, code=code, text=text)
        return Response("*", kind, data=_untagged_data(kind, parts, pos))
    m = _TAGGED.match(seg)
    if m is not None:
        code, text = _resp_text(seg, m.end())
        return Response(m.group(1).decode("ascii"), m.group(2).decode("ascii").upper(),
                        code=code, text=text)
    raise ResponseParseError("not an IMAP response", seg)


def _name(raw: str) -> str:
    """A mailbox name from a server: decoded from modified UTF-7 (kept as sent if it is
    not valid modified UTF-7, or 8-bit), ``INBOX`` in any case as ``INBOX``."""
    try:
        name = decode_mailbox(raw) if raw.isascii() else raw
    except ValueError:
        name = raw
    return "INBOX" if name.upper() == "INBOX" else name


def _untagged_data(kind: str, parts: list[bytes], pos: int) -> Any:
    if kind in ("CAPABILITY", "ENABLED"):
        return tuple(w.upper() for w in parts[0][pos:].decode("latin-1").split())
    values = _generic(parts, 0, pos)
    if kind == "SEARCH":
        return [_int(v) for v in values if not isinstance(v, list)]
    if kind == "FLAGS":
        if len(values) != 1 or not isinstance(values[0], list):
            raise ResponseParseError("FLAGS is a flag list", parts[0])
        return _flags(values[0])
    if kind in ("LIST", "LSUB"):
        if len(values) < 3 or not isinstance(values[0], list):
            raise ResponseParseError(f"{kind} is (flags) delimiter name", parts[0])
        name = _s(values[2])
        decoded = _name("NIL" if name is None else name)
        return ListEntry(_flags(values[0]),
                         _s(values[1]), decoded)
    if kind == "STATUS":
        if len(values) != 2 or not isinstance(values[1], list) or len(values[1]) % 2:
            raise ResponseParseError("STATUS is mailbox (item number ...)", parts[0])
        name = _name(_s(values[0]) or "NIL")
        items = values[1]
        return (name, {str(items[k]).upper(): _int(items[k + 1])
                       for k in range(0, len(items), 2)})
    if kind == "NAMESPACE":
        if len(values) != 3:
            raise ResponseParseError("NAMESPACE has three parts", parts[0])
        return tuple(None if v is None else [(_name(_s(n[0]) or ""), _s(n[1])) for n in v]
                     for v in values)
    if kind == "ID":
        if not values or values[0] is None:
            return None
        items = values[0]
        return {_s(items[k]) or "": _s(items[k + 1]) for k in range(0, len(items) - 1, 2)}
    return values


class ResponseReader:
    """A client's reader of server responses (see the module's docstring).

    ``max_line`` bounds a response's text (literals apart), ``max_literal`` each literal;
    over them :class:`~.values.ResponseParseError` is raised and the reader is done (the
    connection is not to be trusted further).
    """

    def __init__(self, *, max_line: int = 1024 * 1024,
                 max_literal: int = 1024 * 1024 * 1024) -> None:
        self._framer = _Framer(max_line, max_literal)
        self._failed: ResponseParseError | None = None

    @property
    def failed(self) -> bool:
        """Whether the reader has stopped (a line or literal over its limits)."""
        return self._failed is not None

    def receive(self, data: bytes) -> None:
        """Take bytes from the server."""
        if self._failed is None:
            self._framer.receive(data)

    def next_response(self) -> Response | Continuation | None:
        """The next response, or None until one is complete. A line that cannot be read
        raises :class:`~.values.ResponseParseError` (the reader is past it)."""
        if self._failed is not None:
            raise self._failed
        framer = self._framer
        while True:
            event = framer.next()
            if event is None:
                return None
            kind = event[0]
            if kind == "line":
                return parse_response(event[1])
            if kind == "literal":
                if event[1] > framer.max_literal:
                    self._failed = ResponseParseError(
                        f"literal of {event[1]:,} octets is over the limit")
                    raise self._failed
                continue
            self._failed = ResponseParseError("response line over the limit")
            raise self._failed

    def feed(self, data: bytes) -> list[Response | Continuation]:
        """``receive(data)`` and every response it completes (raises on a bad one)."""
        self.receive(data)
        out: list[Response | Continuation] = []
        while (r := self.next_response()) is not None:
            out.append(r)
        return out
