"""Writing IMAP4rev1 (RFC 3501): commands for a client, responses for a server.

- Strings: :func:`astring`, :func:`string`, :func:`nstring` choose the form by content: an
  atom when every byte may stand in one, a quoted string for other 7-bit text without
  CR or LF, a literal (``{n}`` and the bytes) for 8-bit bytes, CR, LF, NUL or long text.
- Commands: :func:`format_command` renders a :class:`~.values.Command` as the pieces to
  send, split after each synchronising literal (the client waits for ``+`` there);
  with ``literal_plus`` (the server offers LITERAL+) literals go as ``{n+}``, one piece.
- Responses: :func:`format_status`, :func:`format_fetch` and the untagged answers;
  :func:`envelope` and :func:`body_structure` read a message (bytes or an ``email``
  message) into the values :func:`format_envelope` and :func:`format_body_structure`
  write, in RFC 3501 7.4.2's order.
- Dates: :func:`format_datetime` (INTERNALDATE, APPEND), :func:`format_date` (SEARCH);
  mailbox names: :func:`encode_mailbox` / :func:`decode_mailbox` (modified UTF-7, RFC
  3501 5.1.3); sequence sets: :func:`compress` (``[1, 2, 3, 5]`` -> ``1:3,5``).

>>> astring("INBOX"), astring("two words"), astring("caf\\u00e9")
(b'INBOX', b'"two words"', b'{5}\\r\\ncaf\\xc3\\xa9')
>>> encode_mailbox("Entw\\u00fcrfe & Co")
'Entw&APw-rfe &- Co'
>>> format_command(Command("a1", "LOGIN", ("alice", "p w")))
[b'a1 LOGIN alice "p w"\\r\\n']
>>> format_command(Command("a2", "APPEND", ("INBOX", (), None, b"Hi\\r\\n")))
[b'a2 APPEND INBOX {4}\\r\\n', b'Hi\\r\\n\\r\\n']
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import functools
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from email.message import Message
from typing import Any

from protocols.mail.imap.values import (
    MONTHS,
    Address,
    BodyStructure,
    Command,
    Envelope,
    FetchItem,
    ListEntry,
    Multipart,
    ResponseCode,
    SearchKey,
    Section,
    SequenceSet,
    SinglePart,
)

__all__ = [
    "astring",
    "body_structure",
    "compress",
    "decode_mailbox",
    "encode_mailbox",
    "envelope",
    "format_body_structure",
    "format_capability",
    "format_code",
    "format_command",
    "format_continuation",
    "format_count",
    "format_date",
    "format_datetime",
    "format_enabled",
    "format_envelope",
    "format_fetch",
    "format_fetch_item",
    "format_flags",
    "format_flags_response",
    "format_id",
    "format_list",
    "format_mailbox_status",
    "format_namespace",
    "format_search",
    "format_search_key",
    "format_section",
    "format_status",
    "nstring",
    "section_bytes",
    "string",
]

# ATOM-CHAR: any CHAR but atom-specials ( ) { SP CTL % * " \ ]; ASTRING-CHAR adds "]"
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+\Z')
# (written astrings go quoted when they hold "[": an atom may, but a reader that takes
# BODY[...] as one token would see a section in it)
_ASTRING = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\[]+\Z')
# TEXT-CHAR without the 8-bit: what a quoted string may hold (escapes for " and \)
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_QUOTE_ESCAPE = re.compile(rb'(["\\])')
#: longer text goes as a literal even when it could be quoted (easier on both sides)
MAX_QUOTED = 1024


class _Literal:
    """A literal in a command being written: where a client may have to wait for ``+``."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


_Out = list  # list[bytes | _Literal]


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _string_into(out: list[Any], data: bytes) -> None:
    if len(data) <= MAX_QUOTED and _QUOTABLE.match(data):
        out.append(b'"' + (_QUOTE_ESCAPE.sub(rb"\\\1", data) if b'"' in data or b"\\" in data
                           else data) + b'"')
    elif b"\0" in data:
        raise ValueError("an IMAP string cannot hold NUL (RFC 3501 CHAR8 is %x01-ff)")
    else:
        out.append(_Literal(data))


def _astring_into(out: list[Any], value: str | bytes) -> None:
    data = _bytes(value)
    if _ASTRING.match(data):
        out.append(data)
    else:
        _string_into(out, data)


def _nstring_into(out: list[Any], value: str | bytes | None) -> None:
    if value is None:
        out.append(b"NIL")
    else:
        _string_into(out, _bytes(value))


def _join(out: list[Any]) -> bytes:
    """Response form: every literal ``{n}`` followed at once by its bytes."""
    return b"".join(
        x if isinstance(x, bytes) else b"{%d}\r\n%s" % (len(x.data), x.data) for x in out
    )


def string(value: str | bytes) -> bytes:
    """A string: quoted when it can be, else a literal (``{n}\\r\\n`` and the bytes)."""
    out: list[Any] = []
    _string_into(out, _bytes(value))
    return _join(out)


def astring(value: str | bytes) -> bytes:
    """An astring: an atom when every byte is an ASTRING-CHAR, else :func:`string`."""
    out: list[Any] = []
    _astring_into(out, value)
    return _join(out)


def nstring(value: str | bytes | None) -> bytes:
    """``NIL`` for None, else :func:`string`."""
    out: list[Any] = []
    _nstring_into(out, value)
    return _join(out)


def is_atom(value: str) -> bool:
    """Whether ``value`` can be sent as an atom."""
    return bool(_ATOM.match(_bytes(value)))


# ---- modified UTF-7 (RFC 3501 5.1.3)

_MUTF7_RUN = re.compile(r"&|[^\x20-\x7e]+")


def _b64_run(m: re.Match[str]) -> str:
    if m.group(0) == "&":
        return "&-"
    return "&" + _b64_run_text(m.group(0).encode("utf-16-be", "surrogatepass")) + "-"


def encode_mailbox(name: str) -> str:
    """A mailbox name in modified UTF-7: ``&`` as ``&-``, other non-printable or non-ASCII
    runs as ``&`` + modified base64 of their UTF-16 + ``-``.

    >>> encode_mailbox("~peter/mail/\\u53f0\\u5317/\\u65e5\\u672c\\u8a9e")
    '~peter/mail/&U,BTFw-/&ZeVnLIqe-'
    """
    return _MUTF7_RUN.sub(_b64_run, name)


_MUTF7_DECODE = re.compile(r"&([A-Za-z0-9+,]*)-")
_MUTF7_VALID = re.compile(r"(?:[\x20-\x25\x27-\x7e]|&[A-Za-z0-9+,]*-)*\Z")


def decode_mailbox(name: str) -> str:
    """The Unicode name of a modified UTF-7 mailbox name; ValueError if it is not valid
    modified UTF-7 (a ``&`` not closed by ``-``, bad base64, ASCII that should have stood
    for itself, a stray control character).

    >>> decode_mailbox("&ZeVnLIqe-"), decode_mailbox("Tom &- Jerry")
    ('\\u65e5\\u672c\\u8a9e', 'Tom & Jerry')
    """
    if "&" not in name:
        if not _MUTF7_VALID.match(name):
            raise ValueError(f"not modified UTF-7: {name!r} (a character outside 0x20-0x7e)")
        return name
    if not _MUTF7_VALID.match(name):
        raise ValueError(f"not modified UTF-7: {name!r}")

    def run(m: re.Match[str]) -> str:
        b64 = m.group(1)
        if not b64:
            return "&"
        if len(b64) % 4 == 1:
            raise ValueError(f"not modified UTF-7: {name!r} (a base64 run cut short)")
        raw = base64.b64decode(b64.replace(",", "/") + "=" * (-len(b64) % 4))
        if len(raw) % 2 or _b64_run_text(raw) != b64:
            raise ValueError(f"not modified UTF-7: {name!r} (bad base64 in &{b64}-)")
        text = raw.decode("utf-16-be", "strict")
        if any(0x20 <= ord(c) <= 0x7E for c in text):
            raise ValueError(f"not modified UTF-7: {name!r} (encoded printable ASCII)")
        return text

    try:
        return _MUTF7_DECODE.sub(run, name)
    except UnicodeDecodeError as e:
        raise ValueError(f"not modified UTF-7: {name!r} (not UTF-16 inside)") from e


def _b64_run_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


# ---- dates


def format_datetime(when: datetime) -> str:
    """An IMAP date-time (INTERNALDATE, APPEND): ``17-Jul-1996 02:44:25 -0700``; a naive
    datetime is taken as UTC.

    >>> from datetime import timedelta, timezone
    >>> format_datetime(datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7))))
    '17-Jul-1996 02:44:25 -0700'
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (f"{when.day:02d}-{MONTHS[when.month - 1]}-{when.year:04d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
            f"{sign}{minutes // 60:02d}{minutes % 60:02d}")


def format_date(day: date) -> str:
    """An IMAP date (SEARCH): ``1-Feb-1994``."""
    return f"{day.day}-{MONTHS[day.month - 1]}-{day.year:04d}"


# ---- sequence sets, flags, search keys, fetch items


def compress(numbers: Iterable[int]) -> str:
    """The shortest sequence set for ``numbers``: ``[5, 1, 2, 3]`` -> ``'1:3,5'``."""
    return str(SequenceSet.of(numbers))


def format_flags(flags: Iterable[str]) -> bytes:
    """A flag list: ``(\\Seen $Junk)``."""
    return b"(" + b" ".join(f.encode("ascii") for f in flags) + b")"


def _search_into(out: list[Any], key: SearchKey, top: bool = False) -> None:
    name = key.name
    args = key.args
    if name == "AND":
        if not top:
            out.append(b"(")
        for i, k in enumerate(args):
            if i:
                out.append(b" ")
            _search_into(out, k)
        if not top:
            out.append(b")")
    elif name == "SET":
        out.append(str(args[0]).encode("ascii"))
    elif name == "RAW":  # the client's search(raw=...): the caller's own text
        out.append(args[0].encode("utf-8"))
    elif name in ("NOT", "OR"):
        out.append(name.encode("ascii"))
        for k in args:
            out.append(b" ")
            _search_into(out, k)
    else:
        out.append(name.encode("ascii"))
        for arg in args:
            out.append(b" ")
            if isinstance(arg, SequenceSet):
                out.append(str(arg).encode("ascii"))
            elif isinstance(arg, int):
                out.append(b"%d" % arg)
            elif isinstance(arg, date):
                out.append(format_date(arg).encode("ascii"))
            elif name in ("KEYWORD", "UNKEYWORD"):
                out.append(arg.encode("ascii"))
            else:
                _astring_into(out, arg)


def format_search_key(key: SearchKey, top: bool = False) -> bytes:
    """A search key as a SEARCH command has it (``top``: an AND's keys side by side,
    not in parentheses)."""
    out: list[Any] = []
    _search_into(out, key, top)
    return _join(out)


def format_section(section: Section) -> bytes:
    """What goes between a BODY's brackets: ``1.2.HEADER.FIELDS (From To)``."""
    return str(section).encode("ascii")


def format_fetch_item(item: FetchItem) -> bytes:
    """A fetch attribute as a FETCH command asks for it: ``BODY.PEEK[TEXT]<0.512>``."""
    return str(item).encode("ascii")


# ---- commands

_MAILBOX_COMMANDS = frozenset(
    ["SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"]
)


def _mailbox_into(out: list[Any], name: str) -> None:
    _astring_into(out, encode_mailbox(name))


def _list_mailbox_into(out: list[Any], pattern: str) -> None:
    # list-mailbox: 1*list-char (ATOM-CHAR, %, *, ]) or a string
    data = encode_mailbox(pattern).encode("ascii")
    if re.fullmatch(rb'[^\x00-\x20\x7f-\xff(){"\\]+', data):
        out.append(data)
    else:
        _string_into(out, data)


def _args_into(out: list[Any], cmd: Command) -> None:
    name, args = cmd.name, cmd.args
    if name == "LOGIN":
        out.append(b" ")
        _astring_into(out, args[0])
        out.append(b" ")
        _astring_into(out, args[1])
    elif name == "AUTHENTICATE":
        out.append(b" " + args[0].encode("ascii"))
        if len(args) > 1 and args[1] is not None:
            out.append(b" " + (args[1] or "=").encode("ascii"))
    elif name in _MAILBOX_COMMANDS:
        out.append(b" ")
        _mailbox_into(out, args[0])
    elif name == "RENAME":
        out.append(b" ")
        _mailbox_into(out, args[0])
        out.append(b" ")
        _mailbox_into(out, args[1])
    elif name in ("LIST", "LSUB"):
        out.append(b" ")
        _mailbox_into(out, args[0]) if args[0] else out.append(b'""')
        out.append(b" ")
        _list_mailbox_into(out, args[1])
    elif name == "STATUS":
        out.append(b" ")
        _mailbox_into(out, args[0])
        out.append(b" (" + " ".join(args[1]).encode("ascii") + b")")
    elif name == "APPEND":
        mailbox, flags, when, message = args
        out.append(b" ")
        _mailbox_into(out, mailbox)
        if flags:
            out.append(b" " + format_flags(flags))
        if when is not None:
            out.append(b' "' + format_datetime(when).encode("ascii") + b'"')
        out.append(b" ")
        out.append(_Literal(message))
    elif name == "SEARCH":
        charset, key = args
        if charset is not None:
            out.append(b" CHARSET ")
            _astring_into(out, charset)
        out.append(b" ")
        _search_into(out, key, top=True)
    elif name == "FETCH":
        seqset, items = args
        out.append(b" " + str(seqset).encode("ascii") + b" ")
        if len(items) == 1:
            out.append(format_fetch_item(items[0]))
        else:
            out.append(b"(" + b" ".join(format_fetch_item(i) for i in items) + b")")
    elif name == "STORE":
        seqset, mode, silent, flags = args
        what = f"{mode}FLAGS{'.SILENT' if silent else ''}"
        out.append(f" {seqset} {what} ".encode("ascii") + format_flags(flags))
    elif name in ("COPY", "MOVE"):
        out.append(b" " + str(args[0]).encode("ascii") + b" ")
        _mailbox_into(out, args[1])
    elif name == "EXPUNGE" and args:
        out.append(b" " + str(args[0]).encode("ascii"))
    elif name == "ENABLE":
        out.append(b" " + " ".join(args[0]).encode("ascii"))
    elif name == "ID":
        fields = args[0] if args else None
        if fields is None:
            out.append(b" NIL")
        else:
            out.append(b" (")
            for i, (k, v) in enumerate(fields.items()):
                if i:
                    out.append(b" ")
                _string_into(out, _bytes(k))
                out.append(b" ")
                _nstring_into(out, v)
            out.append(b")")
    elif args:
        raise ValueError(f"{name} takes no arguments here (got {args!r})")


#: the largest literal LITERAL- (RFC 7888) lets a client send without waiting
LITERAL_MINUS_MAX = 4096


def format_command(
    cmd: Command, literal_plus: bool = False, literal_minus: bool = False
) -> list[bytes]:
    """The bytes of ``cmd``, as pieces: each but the last ends with a synchronising
    literal's ``{n}\\r\\n``, after which the client waits for the server's ``+``. With
    ``literal_plus`` (the server offers LITERAL+) every literal is ``{n+}`` and there is
    one piece; with ``literal_minus`` (LITERAL-) those of 4096 octets or fewer are."""
    out: list[Any] = [cmd.tag.encode("ascii"), b" "]
    if cmd.uid:
        out.append(b"UID ")
    out.append(cmd.name.encode("ascii"))
    _args_into(out, cmd)
    out.append(b"\r\n")
    pieces: list[bytes] = []
    current: list[bytes] = []
    for x in out:
        if isinstance(x, bytes):
            current.append(x)
        elif literal_plus or (literal_minus and len(x.data) <= LITERAL_MINUS_MAX):
            current.append(b"{%d+}\r\n" % len(x.data))
            current.append(x.data)
        else:
            current.append(b"{%d}\r\n" % len(x.data))
            pieces.append(b"".join(current))
            current = [x.data]
    pieces.append(b"".join(current))
    return pieces


# ---- responses


def format_code(code: ResponseCode) -> bytes:
    """A response code's text, without brackets: ``UIDVALIDITY 3``, ``PERMANENTFLAGS (\\Seen
    \\*)``, ``COPYUID 7 1:3 10:12``."""
    name, value = code.name, code.value
    if value is None:
        return name.encode("ascii")
    if name in ("PERMANENTFLAGS", "BADCHARSET"):
        return name.encode("ascii") + b" " + format_flags(value)
    if name == "CAPABILITY":
        return b"CAPABILITY " + " ".join(value).encode("ascii")
    if name == "APPENDUID":
        return b"APPENDUID %d %s" % (value[0], str(value[1]).encode("ascii"))
    if name == "COPYUID":
        return b"COPYUID %d %s %s" % (value[0], str(value[1]).encode("ascii"),
                                      str(value[2]).encode("ascii"))
    return name.encode("ascii") + b" " + str(value).encode("utf-8")


def format_status(
    tag: str, status: str, text: str, code: ResponseCode | None = None
) -> bytes:
    """A status response: ``a1 OK [READ-WRITE] SELECT completed``, ``* BYE ...``."""
    head = f"{tag} {status} ".encode("ascii")
    if code is not None:
        head += b"[" + format_code(code) + b"] "
    return head + re.sub(r"[\r\n]", " ", text or status).encode("utf-8") + b"\r\n"


def format_list(entry: ListEntry, kind: str = "LIST") -> bytes:
    """``* LIST (\\HasNoChildren) "/" INBOX``."""
    out: list[Any] = [f"* {kind} ".encode("ascii"), format_flags(entry.flags), b" "]
    _nstring_into(out, entry.delimiter)
    out.append(b" ")
    _astring_into(out, encode_mailbox(entry.name))
    out.append(b"\r\n")
    return _join(out)


def format_continuation(text: str = "Ready") -> bytes:
    """``+ Ready``: the server asks for more (a literal, an AUTHENTICATE answer, IDLE)."""
    return b"+ " + re.sub(r"[\r\n]", " ", text).encode("utf-8") + b"\r\n"


def format_capability(capabilities: Iterable[str]) -> bytes:
    """``* CAPABILITY IMAP4rev1 IDLE ...``."""
    return b"* CAPABILITY " + " ".join(capabilities).encode("ascii") + b"\r\n"


def format_enabled(capabilities: Iterable[str]) -> bytes:
    """``* ENABLED CONDSTORE`` (RFC 5161)."""
    return (b"* ENABLED " + " ".join(capabilities).encode("ascii")).rstrip() + b"\r\n"


def format_count(number: int, kind: str) -> bytes:
    """``* 23 EXISTS``, ``* 1 RECENT``, ``* 5 EXPUNGE``."""
    return b"* %d %s\r\n" % (number, kind.encode("ascii"))


def format_flags_response(flags: Iterable[str]) -> bytes:
    """``* FLAGS (\\Seen \\Answered ...)``: the flags a mailbox knows."""
    return b"* FLAGS " + format_flags(flags) + b"\r\n"


def format_search(numbers: Iterable[int]) -> bytes:
    """``* SEARCH 2 3 5`` (``* SEARCH`` when none matched)."""
    return b" ".join([b"* SEARCH", *(b"%d" % n for n in numbers)]) + b"\r\n"


def format_mailbox_status(mailbox: str, items: dict[str, int]) -> bytes:
    """``* STATUS INBOX (MESSAGES 3 UIDNEXT 7)``."""
    out: list[Any] = [b"* STATUS "]
    _astring_into(out, encode_mailbox(mailbox))
    out.append(b" (" + " ".join(f"{k} {v}" for k, v in items.items()).encode("ascii")
               + b")\r\n")
    return _join(out)


def _namespace_into(out: list[Any], spaces: Sequence[tuple[str, str | None]] | None) -> None:
    if not spaces:
        out.append(b"NIL")
        return
    out.append(b"(")
    for prefix, delimiter in spaces:
        out.append(b"(")
        _string_into(out, _bytes(encode_mailbox(prefix)))
        out.append(b" ")
        _nstring_into(out, delimiter)
        out.append(b")")
    out.append(b")")


def format_namespace(
    personal: Sequence[tuple[str, str | None]] | None,
    other: Sequence[tuple[str, str | None]] | None = None,
    shared: Sequence[tuple[str, str | None]] | None = None,
) -> bytes:
    """``* NAMESPACE (("" "/")) NIL NIL`` (RFC 2342): each a list of (prefix, delimiter)."""
    out: list[Any] = [b"* NAMESPACE "]
    _namespace_into(out, personal)
    out.append(b" ")
    _namespace_into(out, other)
    out.append(b" ")
    _namespace_into(out, shared)
    out.append(b"\r\n")
    return _join(out)


def format_id(fields: dict[str, str | None] | None) -> bytes:
    """``* ID ("name" "netshell" ...)`` or ``* ID NIL`` (RFC 2971)."""
    if not fields:
        return b"* ID NIL\r\n"
    out: list[Any] = [b"* ID ("]
    for i, (k, v) in enumerate(fields.items()):
        if i:
            out.append(b" ")
        _string_into(out, _bytes(k))
        out.append(b" ")
        _nstring_into(out, v)
    out.append(b")\r\n")
    return _join(out)


def _params_into(out: list[Any], params: Sequence[tuple[str, str]] | None) -> None:
    if not params:
        out.append(b"NIL")
        return
    out.append(b"(")
    for i, (k, v) in enumerate(params):
        if i:
            out.append(b" ")
        _string_into(out, _bytes(k))
        out.append(b" ")
        _string_into(out, _bytes(v))
    out.append(b")")


def _addresses_into(out: list[Any], addresses: Sequence[Address] | None) -> None:
    if not addresses:
        out.append(b"NIL")
        return
    out.append(b"(")
    for a in addresses:
        out.append(b"(")
        _nstring_into(out, a.name)
        out.append(b" ")
        _nstring_into(out, a.adl)
        out.append(b" ")
        _nstring_into(out, a.mailbox)
        out.append(b" ")
        _nstring_into(out, a.host)
        out.append(b")")
    out.append(b")")


def _envelope_into(out: list[Any], env: Envelope) -> None:
    out.append(b"(")
    _nstring_into(out, env.date)
    out.append(b" ")
    _nstring_into(out, env.subject)
    for addresses in (env.from_, env.sender, env.reply_to, env.to, env.cc, env.bcc):
        out.append(b" ")
        _addresses_into(out, addresses)
    out.append(b" ")
    _nstring_into(out, env.in_reply_to)
    out.append(b" ")
    _nstring_into(out, env.message_id)
    out.append(b")")


class _NotQuotable(Exception):
    pass


def _q(value: str | None) -> bytes:
    """An nstring that must be NIL or quoted (the fast path of an ENVELOPE)."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "surrogateescape")
    if len(data) > MAX_QUOTED or not _QUOTABLE.match(data):
        raise _NotQuotable
    if b'"' in data or b"\\" in data:
        data = _QUOTE_ESCAPE.sub(rb"\\\1", data)
    return b'"' + data + b'"'


def _q_addresses(addresses: Sequence[Address] | None) -> bytes:
    if not addresses:
        return b"NIL"
    return b"(" + b"".join([b"(%s %s %s %s)" % (_q(a[0]), _q(a[1]), _q(a[2]), _q(a[3]))
                            for a in addresses]) + b")"


def _envelope_bytes(env: Envelope) -> bytes:
    try:
        return _cached_envelope(env)
    except TypeError:  # lists where tuples were meant: not hashable, not cached
        return _render_envelope(env)


@functools.lru_cache(maxsize=65536)
def _cached_envelope(env: Envelope) -> bytes:
    # (a server answers FETCH ENVELOPE for the same messages again and again, and an
    # Envelope is immutable)
    return _render_envelope(env)


def _render_envelope(env: Envelope) -> bytes:
    try:
        return b"(%s %s %s %s %s %s %s %s %s %s)" % (
            _q(env[0]), _q(env[1]), _q_addresses(env[2]), _q_addresses(env[3]),
            _q_addresses(env[4]), _q_addresses(env[5]), _q_addresses(env[6]),
            _q_addresses(env[7]), _q(env[8]), _q(env[9]))
    except _NotQuotable:  # a field needs a literal: the general way
        out: list[Any] = []
        _envelope_into(out, env)
        return _join(out)


def format_envelope(env: Envelope) -> bytes:
    """An ENVELOPE's parenthesised list (RFC 3501 7.4.2 order)."""
    return _envelope_bytes(env)


def _extension_into(out: list[Any], bs: BodyStructure) -> None:
    out.append(b" ")
    if bs.disposition is None:
        out.append(b"NIL")
    else:
        out.append(b"(")
        _string_into(out, _bytes(bs.disposition[0]))
        out.append(b" ")
        _params_into(out, bs.disposition[1])
        out.append(b")")
    out.append(b" ")
    if bs.language is None:
        out.append(b"NIL")
    else:
        out.append(b"(")
        for i, lang in enumerate(bs.language):
            if i:
                out.append(b" ")
            _string_into(out, _bytes(lang))
        out.append(b")")
    out.append(b" ")
    _nstring_into(out, bs.location)


def _body_into(out: list[Any], bs: BodyStructure, extended: bool) -> None:
    out.append(b"(")
    if isinstance(bs, Multipart):
        for part in bs.parts:
            _body_into(out, part, extended)
        out.append(b" ")
        _string_into(out, _bytes(bs.subtype))
        if extended:
            out.append(b" ")
            _params_into(out, bs.params)
            _extension_into(out, bs)
    else:
        _string_into(out, _bytes(bs.type))
        out.append(b" ")
        _string_into(out, _bytes(bs.subtype))
        out.append(b" ")
        _params_into(out, bs.params)
        out.append(b" ")
        _nstring_into(out, bs.id)
        out.append(b" ")
        _nstring_into(out, bs.description)
        out.append(b" ")
        _string_into(out, _bytes(bs.encoding))
        out.append(b" %d" % bs.size)
        if bs.envelope is not None and bs.body is not None:
            out.append(b" ")
            _envelope_into(out, bs.envelope)
            out.append(b" ")
            _body_into(out, bs.body, extended)
        if bs.lines is not None:
            out.append(b" %d" % bs.lines)
        if extended:
            out.append(b" ")
            _nstring_into(out, bs.md5)
            _extension_into(out, bs)
    out.append(b")")


def format_body_structure(bs: BodyStructure, extended: bool = True) -> bytes:
    """A BODYSTRUCTURE (``extended``, with the extension data) or BODY's list."""
    out: list[Any] = []
    _body_into(out, bs, extended)
    return _join(out)


def format_fetch(number: int, items: Iterable[tuple[str, Any]]) -> bytes:
    """``* 12 FETCH (FLAGS (\\Seen) UID 40 ...)``: ``items`` are (response name, value)
    pairs; values by name: FLAGS a flag sequence, UID / RFC822.SIZE ints, INTERNALDATE a
    datetime, ENVELOPE an Envelope, BODY / BODYSTRUCTURE a body structure (BODY without
    the extension data), MODSEQ an int, anything else bytes (or None: NIL)."""
    out: list[Any] = [b"* %d FETCH (" % number]
    first = True
    for name, value in items:
        if not first:
            out.append(b" ")
        first = False
        out.append(name.encode("ascii"))
        out.append(b" ")
        if name == "FLAGS":
            out.append(format_flags(value))
        elif name in ("UID", "RFC822.SIZE"):
            out.append(b"%d" % value)
        elif name == "MODSEQ":
            out.append(b"(%d)" % value)
        elif name == "INTERNALDATE":
            out.append(b'"' + format_datetime(value).encode("ascii") + b'"')
        elif name == "ENVELOPE":
            out.append(_envelope_bytes(value))
        elif name in ("BODY", "BODYSTRUCTURE"):
            _body_into(out, value, name == "BODYSTRUCTURE")
        else:
            _nstring_into(out, value)
    out.append(b")\r\n")
    return _join(out)


# ---- envelopes and body structures from messages


def _crlf(data: bytes) -> bytes:
    """Line ends as CRLF (what IMAP counts sizes in), whatever the file had."""
    if b"\n" not in data:
        return data
    return re.sub(rb"\r?\n", b"\r\n", data)


def _as_bytes(message: bytes | Message) -> bytes:
    if isinstance(message, (bytes, bytearray, memoryview)):
        return _crlf(bytes(message))
    return _crlf(message.as_bytes(policy=email.policy.compat32))


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        return raw, b""
    return raw[: i + 2], raw[i + 4 :]


class _Headers:
    """A part's header fields, by lower-case name, first occurrence, unfolded; the raw
    text (8-bit kept, as surrogate escapes)."""

    def __init__(self, head: bytes) -> None:
        self.fields: dict[str, str] = {}
        text = head.decode("utf-8", "surrogateescape")
        for m in re.finditer(r"^([^\s:]+)[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", text,
                             re.M):
            name = m.group(1).lower()
            if name not in self.fields:
                self.fields[name] = re.sub(r"\r\n(?=[ \t])", "", m.group(2)).strip(" \t\r")

    def get(self, name: str) -> str | None:
        return self.fields.get(name)


_TSPECIALS_TOKEN = re.compile(r'\s*([^\s;=()<>@,:\\"/\[\]?]+)\s*')


_PARAM = re.compile(r'\s*;?\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
#: multiparts nested deeper than this are taken as single parts (a message built to
#: nest thousands deep must not exhaust the recursion of whoever reads it)
MAX_MIME_DEPTH = 50


def _content_params(value: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``text/plain; charset="utf-8"`` -> ``("text/plain", (("charset", "utf-8"),))``,
    comments dropped, quoted values unquoted."""
    value = _strip_comments(value)
    head, _, rest = value.partition(";")
    params: list[tuple[str, str]] = []
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        key, val = m.group(1), m.group(2).strip()
        if val.startswith('"') and val.endswith('"') and len(val) >= 2:
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        params.append((key, val))
        pos = m.end()
    return head.strip(), tuple(params)


def _strip_comments(value: str) -> str:
    out = []
    depth = 0
    quoted = False
    i = 0
    while i < len(value):
        c = value[i]
        if quoted:
            out.append(c)
            if c == "\\" and i + 1 < len(value):
                out.append(value[i + 1])
                i += 1
            elif c == '"':
                quoted = False
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif depth:
            if c == "\\":
                i += 1
        else:
            out.append(c)
            quoted = c == '"'
        i += 1
    return "".join(out)


def _lines(body: bytes) -> int:
    # the line ends in the body (a last line without one is not counted: the CRLF before
    # a boundary belongs to the boundary), as Dovecot counts
    return body.count(b"\n")


def _structure(raw: bytes, default_type: str = "text/plain", depth: int = 0) -> BodyStructure:
    head, body = _split_head(raw)
    headers = _Headers(head)
    ctype_value = headers.get("content-type")
    if ctype_value:
        ctype, params = _content_params(ctype_value)
    else:
        ctype, params = default_type, (() if default_type != "text/plain"
                                       else (("charset", "us-ascii"),))
    maintype, _, subtype = ctype.partition("/")
    if not subtype or not maintype:
        maintype, subtype, params = "text", "plain", (("charset", "us-ascii"),)
    elif maintype.lower() == "text" and not any(k.lower() == "charset" for k, _ in params):
        params += (("charset", "us-ascii"),)  # RFC 2045 5.2's default, as Dovecot says it
    disposition = None
    dvalue = headers.get("content-disposition")
    if dvalue:
        dtype, dparams = _content_params(dvalue)
        disposition = (dtype, dparams)
    language = None
    lvalue = headers.get("content-language")
    if lvalue:
        language = tuple(x.strip() for x in _strip_comments(lvalue).split(",") if x.strip())
    location = headers.get("content-location")
    if maintype.lower() == "multipart" and depth < MAX_MIME_DEPTH:
        boundary = dict((k.lower(), v) for k, v in params).get("boundary")
        child_default = "message/rfc822" if subtype.lower() == "digest" else "text/plain"
        parts = tuple(_structure(p, child_default, depth + 1)
                      for p in _split_multipart(body, boundary))
        if not parts:
            parts = (_structure(b"\r\n"),)
        return Multipart(parts, subtype, params, disposition, language, location)
    encoding = headers.get("content-transfer-encoding") or "7bit"
    common: dict[str, Any] = dict(
        params=params, id=headers.get("content-id"),
        description=headers.get("content-description"), encoding=encoding, size=len(body),
        disposition=disposition, language=language, location=location,
        md5=headers.get("content-md5"),
    )
    if maintype.lower() == "text":
        return SinglePart(maintype, subtype, lines=_lines(body), **common)
    if (maintype.lower() == "message" and subtype.lower() in ("rfc822", "global")
            and depth < MAX_MIME_DEPTH):
        return SinglePart(maintype, subtype, envelope=_envelope(_Headers(_split_head(body)[0])),
                          body=_structure(body, depth=depth + 1), lines=_lines(body),
                          **common)
    return SinglePart(maintype, subtype, **common)


def _split_multipart(body: bytes, boundary: str | None) -> list[bytes]:
    if not boundary:
        return []
    delimiter = re.compile(
        rb"(?:\A|\r\n)--" + re.escape(boundary.encode("utf-8", "surrogateescape"))
        + rb"(--)?[ \t]*(?=\r\n|\Z)(?:\r\n)?"
    )
    parts = []
    start = None
    for m in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : m.start()])
        if m.group(1):
            start = None
            break
        start = m.end()
    if start is not None:
        parts.append(body[start:])
    return parts


def body_structure(message: bytes | Message) -> BodyStructure:
    """The BODYSTRUCTURE of a message: ``bytes`` as stored (line ends counted as CRLF),
    or an ``email`` message (written out with its own generator first).

    >>> bs = body_structure(b"Subject: x\\r\\n\\r\\nhello\\r\\n")
    >>> bs.type, bs.subtype, bs.params, bs.size, bs.lines
    ('text', 'plain', (('charset', 'us-ascii'),), 7, 1)
    """
    return _structure(_as_bytes(message))


def _content_type(head: bytes, default_type: str) -> tuple[str, dict[str, str]]:
    value = _Headers(head).get("content-type")
    if not value:
        return default_type, {}
    ctype, params = _content_params(value)
    if "/" not in ctype:
        return "text/plain", {}
    return ctype.lower(), {k.lower(): v for k, v in params}


def _parts(head: bytes, body: bytes, default_type: str) -> list[tuple[bytes, bytes, str]]:
    """The parts of a message (or of a multipart part): (head, body, default type) each;
    a message that is not multipart is its own part 1 (RFC 3501 6.4.5)."""
    ctype, params = _content_type(head, default_type)
    if ctype.startswith("multipart/"):
        child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        return [(*_split_head(p), child_default)
                for p in _split_multipart(body, params.get("boundary"))]
    return [(head, body, default_type)]


def _header_lines(head: bytes) -> list[tuple[str, bytes]]:
    """The header's fields as (lower-case name, the field's lines with their CRLF)."""
    fields: list[tuple[str, bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        elif line.strip():
            name = line.split(b":", 1)[0].strip().decode("latin-1").lower()
            fields.append((name, line))
    return fields


def section_bytes(message: bytes | Message, section: Section,
                  partial: tuple[int, int] | None = None) -> bytes:
    """What ``BODY[section]<partial>`` answers for a message (bytes as stored, line ends
    counted as CRLF, as :func:`body_structure` counts them); empty for a part the
    message does not have (as Dovecot answers). The parts are cut as
    :func:`body_structure` cuts them, so each part's size there is the length here.

    >>> raw = b"Subject: hi\\r\\nTo: a@b.c\\r\\n\\r\\nbody\\r\\n"
    >>> section_bytes(raw, Section((), "HEADER.FIELDS", ("to",)))
    b'To: a@b.c\\r\\n\\r\\n'
    >>> section_bytes(raw, Section((1,))), section_bytes(raw, Section(), (2, 3))
    (b'body\\r\\n', b'bje')
    """
    raw = _as_bytes(message)
    data = _section(raw, section)
    if partial is None:
        return data
    origin, length = partial
    return data[origin : origin + length]


def _section(raw: bytes, section: Section) -> bytes:
    head, body = _split_head(raw)
    if not section.part and section.text is None:
        return raw
    entity: tuple[bytes, bytes, str] | None = None  # the part the path names
    msg_head, msg_body, msg_default = head, body, "text/plain"  # the message it is in
    for number in section.part:
        if entity is not None:
            e_head, e_body, e_default = entity
            ctype, _ = _content_type(e_head, e_default)
            if ctype in ("message/rfc822", "message/global"):
                msg_head, msg_body = _split_head(e_body)
                msg_default = "text/plain"
            elif ctype.startswith("multipart/"):
                msg_head, msg_body, msg_default = e_head, e_body, e_default
            else:
                return b""  # a leaf has no parts
        parts = _parts(msg_head, msg_body, msg_default)
        if not 1 <= number <= len(parts):
            return b""
        entity = parts[number - 1]
    text = section.text
    if entity is not None:
        e_head, e_body, e_default = entity
        if text is None:
            return e_body
        if text == "MIME":
            return e_head + b"\r\n" if e_head else b"\r\n"
        ctype, _ = _content_type(e_head, e_default)
        if ctype not in ("message/rfc822", "message/global"):
            return b""  # HEADER and TEXT are of an encapsulated message only
        head, body = _split_head(e_body)
    if text == "TEXT":
        return body
    header = head + b"\r\n" if head else b"\r\n"
    if text == "HEADER":
        return header
    wanted = {f.lower() for f in section.fields}
    keep = text == "HEADER.FIELDS"
    return b"".join(lines for name, lines in _header_lines(head)
                    if (name in wanted) == keep) + b"\r\n"


# -- addresses (RFC 5322 3.4), as ENVELOPE wants them

_ADDR_TOKEN = re.compile(
    r'\s*(?:"((?:[^"\\]|\\.)*)"?|(\[(?:[^\]\\]|\\.)*\]?)|([<>@,;:.])|([^\s()<>@,;:."\[\]]+))',
    re.S,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens, comments gone: q quoted (unescaped), d domain literal,
    s special, a atom."""
    text = _strip_comments(text)
    out = []
    pos = 0
    while pos < len(text):
        m = _ADDR_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            pos += 1
            continue
        pos = m.end()
        if m.group(1) is not None:
            out.append(("q", re.sub(r"\\(.)", r"\1", m.group(1))))
        elif m.group(2) is not None:
            out.append(("d", m.group(2)))
        elif m.group(3) is not None:
            out.append(("s", m.group(3)))
        elif m.group(4) is not None:
            out.append(("a", m.group(4)))
    return out


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    words: list[str] = []
    for kind, text in tokens:
        if kind == "s" and text == "." and words:
            words[-1] += "."  # obs-phrase: "Joe Q. Public" unquoted
            continue
        words.append(text)
    return " ".join(words) if words else None


def _addr_spec(tokens: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    at = max((i for i, t in enumerate(tokens) if t == ("s", "@")), default=-1)
    local_tokens = tokens if at < 0 else tokens[:at]
    domain_tokens = [] if at < 0 else tokens[at + 1 :]
    local = "".join(
        (f'"{t}"' if k == "q" and not re.fullmatch(r"[^\s()<>@,;:\\\".\[\]]+", t) else t)
        for k, t in local_tokens
    )
    domain = "".join(t for _, t in domain_tokens)
    return (local or None), (domain or None)


def _comment_text(text: str) -> str | None:
    m = re.search(r"\(((?:[^()\\]|\\.)*)\)\s*$", text)
    return m.group(1).strip() if m else None


def parse_addresses(value: str | None) -> tuple[Address, ...] | None:
    """An address header's value as ENVELOPE addresses (groups as their markers).

    >>> parse_addresses('"Joe Q. Public" <john.q.public@example.com>, Mary <mary@x.test>')
    ... # doctest: +NORMALIZE_WHITESPACE
    (Address(name='Joe Q. Public', adl=None, mailbox='john.q.public', host='example.com'),
     Address(name='Mary', adl=None, mailbox='mary', host='x.test'))
    """
    if value is None:
        return None
    out: list[Address] = []
    # split the raw text at top-level commas (and group ends), keeping comments to use as
    # names of bare addresses
    tokens = _tokens(value)
    raw_items = _split_items(value)
    in_group = False
    i = 0
    item_index = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if (kind, text) == ("s", ","):
            i += 1
            item_index += 1
            continue
        if (kind, text) == ("s", ";"):
            if in_group:
                out.append(Address(None, None, None, None))
                in_group = False
            i += 1
            item_index += 1
            continue
        j = i
        while j < len(tokens) and not (tokens[j][0] == "s" and tokens[j][1] in "<:,;"):
            j += 1
        stop = tokens[j][1] if j < len(tokens) else ""
        if stop == ":" and not in_group:
            out.append(Address(None, None, _phrase(tokens[i:j]) or "", None))
            in_group = True
            i = j + 1
            continue
        if stop == "<":
            name = _phrase(tokens[i:j])
            k = j + 1
            while k < len(tokens) and tokens[k] != ("s", ">"):
                k += 1
            inner = tokens[j + 1 : k]
            adl = None
            colon = next((n for n, t in enumerate(inner) if t == ("s", ":")), -1)
            if colon >= 0:
                adl = "".join(t for _, t in inner[:colon]) or None
                inner = inner[colon + 1 :]
            mailbox, host = _addr_spec(inner)
            if mailbox is not None or host is not None:
                out.append(Address(name, adl, mailbox, host or "MISSING_DOMAIN"))
            i = k + 1
            while i < len(tokens) and tokens[i] not in (("s", ","), ("s", ";")):
                i += 1
            continue
        mailbox, host = _addr_spec(tokens[i:j])
        if mailbox is not None or host is not None:
            raw = raw_items[item_index] if item_index < len(raw_items) else ""
            out.append(Address(_comment_text(raw), None, mailbox or "MISSING_MAILBOX",
                               host or "MISSING_DOMAIN"))
        # a ":" inside a group (a group in a group, which RFC 5322 has no room for) stops
        # the scan where it began: step over it, or this would never end
        i = j if j > i else i + 1
    if in_group:
        out.append(Address(None, None, None, None))
    return tuple(out) or None


def _split_items(value: str) -> list[str]:
    """The raw text between top-level commas and semicolons (comments, quotes kept)."""
    items = []
    depth = 0
    quoted = False
    angle = False
    start = 0
    i = 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif depth:
            if c == "\\":
                i += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
        elif c == '"':
            quoted = True
        elif c == "(":
            depth += 1
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c in ",;" and not angle:
            items.append(value[start:i])
            start = i + 1
        elif c == ":" and not angle:
            start = i + 1
        i += 1
    items.append(value[start:])
    return items


def _envelope(headers: _Headers) -> Envelope:
    from_ = parse_addresses(headers.get("from"))
    sender = parse_addresses(headers.get("sender")) or from_
    reply_to = parse_addresses(headers.get("reply-to")) or from_
    return Envelope(
        headers.get("date"), headers.get("subject"), from_, sender, reply_to,
        parse_addresses(headers.get("to")), parse_addresses(headers.get("cc")),
        parse_addresses(headers.get("bcc")), headers.get("in-reply-to"),
        headers.get("message-id"),
    )


def envelope(message: bytes | Message) -> Envelope:
    """The ENVELOPE of a message (bytes as stored, or an ``email`` message): Sender and
    Reply-To default to From, as RFC 3501 7.4.2 says.

    >>> env = envelope(b"From: Ann <ann@x.test>\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n")
    >>> env.subject, env.from_[0].email, env.reply_to == env.from_, env.to
    ('hi', 'ann@x.test', True, None)
    """
    return _envelope(_Headers(_split_head(_as_bytes(message))[0]))


def parse_message(data: bytes) -> Message:
    """``data`` as an ``email`` message (compat32: headers kept as they are)."""
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
