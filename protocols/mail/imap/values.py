"""The values IMAP4rev1 (RFC 3501) speaks of, shared by the parser, the writer, the client
and the server: sequence sets, search keys, fetch items and their sections, envelopes and
body structures, commands and responses, and the errors of the protocol.

They are plain immutable objects: the parser makes them from bytes, the writer makes
bytes from them, and ``parse(write(x)) == x`` (the property tests check it).

>>> SequenceSet.parse("1:3,7,9:*").contains(8, largest=20)
False
>>> list(SequenceSet.parse("4:2,9").numbers(largest=9))
[2, 3, 4, 9]
>>> str(FetchItem("BODY", Section((1,), "HEADER.FIELDS", ("Subject",)), (0, 100), peek=True))
'BODY.PEEK[1.HEADER.FIELDS (Subject)]<0.100>'
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "SYSTEM_FLAGS",
    "Address",
    "BadCharset",
    "BodyStructure",
    "Command",
    "Continuation",
    "ContinuationRequest",
    "Envelope",
    "FetchItem",
    "IMAPError",
    "IMAPParseError",
    "IMAPSyntaxError",
    "LineTooLong",
    "ListEntry",
    "LiteralTooBig",
    "Multipart",
    "Response",
    "ResponseCode",
    "ResponseParseError",
    "SearchKey",
    "Section",
    "SequenceSet",
    "SinglePart",
]


# ---- errors


class IMAPError(Exception):
    """Every error of this package's IMAP code."""


class IMAPParseError(IMAPError):
    """A command the server could not take, and what the server answers to it.

    ``tag`` is the command's tag when it could be read (else None: the answer is
    untagged), ``status`` the answer (``BAD``, ``NO`` or ``BYE``), ``code`` the response
    code to put before the text (``TOOBIG``, ``BADCHARSET (US-ASCII UTF-8)``...) or None,
    ``fatal`` whether the connection must close after the answer (the reader has lost its
    place in the stream). :meth:`response` is the line to send.
    """

    status = "BAD"
    fatal = False

    def __init__(self, message: str, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.code = code

    def response(self) -> bytes:
        """The server's answer: ``tag BAD text``, ``* BYE [TOOBIG] text``..."""
        tag = "*" if self.tag is None or self.status == "BYE" else self.tag
        code = f"[{self.code}] " if self.code else ""
        text = re.sub(r"[\x00-\x1f\x7f]", " ", self.message)
        return f"{tag} {self.status} {code}{text}\r\n".encode("utf-8", "replace")


class IMAPSyntaxError(IMAPParseError):
    """A command that breaks RFC 3501's grammar (or names no command): answered BAD."""


class BadCharset(IMAPParseError):
    """SEARCH with a charset the server does not know: ``NO [BADCHARSET (...)]``."""

    status = "NO"


class LiteralTooBig(IMAPParseError):
    """A literal over the reader's ``max_literal``.

    A synchronising one (``{n}``) is refused before the client sends it (``tag NO
    [TOOBIG]``); the client sends nothing more of that command, the reader is ready for
    the next one. A non-synchronising one (``{n+}``, already on its way) ends the
    connection (``* BYE [TOOBIG]``): the client is sending the octets already, and not
    reading them is what the limit is for.
    """

    def __init__(self, message: str, tag: str | None, size: int, synchronizing: bool) -> None:
        super().__init__(message, tag, "TOOBIG")
        self.size = size
        self.synchronizing = synchronizing
        self.status = "NO" if synchronizing else "BYE"
        self.fatal = not synchronizing


class LineTooLong(IMAPParseError):
    """A command line over the reader's ``max_line``: ``* BYE``, and the connection ends."""

    status = "BYE"
    fatal = True


class ResponseParseError(IMAPError):
    """A server's line a client cannot read; ``line`` holds it (its text parts)."""

    def __init__(self, message: str, line: bytes = b"") -> None:
        super().__init__(f"{message}: {line[:200]!r}" if line else message)
        self.line = line


# ---- flags

#: the system flags (RFC 3501 2.3.2), in their usual spelling; a flag given in any case
#: is written this way
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
_SYSTEM_BY_UPPER = {f.upper(): f for f in SYSTEM_FLAGS}


def canonical_flag(flag: str) -> str:
    """A system flag in its usual spelling (``\\SEEN`` -> ``\\Seen``); others as given.

    >>> canonical_flag("\\\\seen"), canonical_flag("$Junk")
    ('\\\\Seen', '$Junk')
    """
    if flag[:1] == "\\":
        return _SYSTEM_BY_UPPER.get(flag.upper(), flag)
    return flag


# ---- sequence sets


@dataclass(frozen=True)
class SequenceSet:
    """An RFC 3501 sequence-set: ranges of message numbers (or UIDs), ``None`` for ``*``.

    ``ranges`` holds ``(first, last)`` pairs as written (``4:2`` is ``(4, 2)``, the same
    messages as ``2:4``; a lone ``7`` is ``(7, 7)``).
    """

    ranges: tuple[tuple[int | None, int | None], ...]

    _PART = re.compile(r"(\d+|\*)(?::(\d+|\*))?\Z")

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """``"1:3,7,9:*"`` -> SequenceSet; ValueError if it is not one."""
        ranges = []
        for part in text.split(","):
            m = cls._PART.match(part)
            if m is None:
                raise ValueError(f"not a sequence set: {text!r}")
            a = None if m.group(1) == "*" else int(m.group(1))
            b = a if m.group(2) is None else None if m.group(2) == "*" else int(m.group(2))
            if a == 0 or b == 0:
                raise ValueError(f"a sequence set has no message 0: {text!r}")
            if (a or 0) > 0xFFFFFFFF or (b or 0) > 0xFFFFFFFF:
                raise ValueError(f"sequence numbers are 32-bit: {text!r}")
            ranges.append((a, b))
        return cls(tuple(ranges))

    @classmethod
    def of(cls, numbers: Iterable[int]) -> SequenceSet:
        """The shortest set holding ``numbers`` (runs become ranges): ``[1,2,3,5]`` ->
        ``1:3,5``."""
        ranges: list[tuple[int | None, int | None]] = []
        start = prev = -2
        for n in sorted(set(numbers)):
            if n <= 0:
                raise ValueError(f"message numbers and UIDs start at 1, not {n}")
            if n != prev + 1:
                if prev > 0:
                    ranges.append((start, prev))
                start = n
            prev = n
        if prev > 0:
            ranges.append((start, prev))
        if not ranges:
            raise ValueError("a sequence set holds at least one number")
        return cls(tuple(ranges))

    def __str__(self) -> str:
        out = []
        for a, b in self.ranges:
            sa = "*" if a is None else str(a)
            out.append(sa if a == b else f"{sa}:{'*' if b is None else b}")
        return ",".join(out)

    def __repr__(self) -> str:
        return f"SequenceSet({str(self)!r})"

    def bounds(self, largest: int) -> Iterator[tuple[int, int]]:
        """Each range as ``(low, high)`` with ``*`` taken as ``largest``."""
        for a, b in self.ranges:
            x = largest if a is None else a
            y = largest if b is None else b
            yield (x, y) if x <= y else (y, x)

    def merged(self, largest: int) -> list[tuple[int, int]]:
        """The ranges with ``*`` as ``largest``, sorted, overlapping and touching ones
        joined: ``5:7,1:2,3`` -> ``[(1, 3), (5, 7)]``. Kept for the last ``largest``: a
        search asks once per message."""
        cached = self.__dict__.get("_merged")
        if cached is not None and cached[0] == largest:
            return cached[1]
        out: list[tuple[int, int]] = []
        for lo, hi in sorted(self.bounds(largest)):
            if out and lo <= out[-1][1] + 1:
                if hi > out[-1][1]:
                    out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        object.__setattr__(self, "_merged", (largest, out))  # frozen: a cache, not a field
        return out

    def contains(self, n: int, largest: int) -> bool:
        """Whether ``n`` is in the set, ``*`` being ``largest`` (the highest number in use).
        A bisection over the joined ranges: a set of 10,000 ranges costs no more per
        message than one of a few."""
        ranges = self.merged(largest)
        i = bisect.bisect_right(ranges, (n, 0xFFFFFFFFFF)) - 1
        return i >= 0 and ranges[i][0] <= n <= ranges[i][1]

    def numbers(self, largest: int) -> list[int]:
        """The numbers in the set, sorted, each once (none above ``largest`` except those
        named outright, which a server checks itself)."""
        out: list[int] = []
        for lo, hi in self.merged(largest):
            out.extend(range(lo, hi + 1))
        return out


# ---- search keys

#: search keys without an argument (RFC 3501 6.4.4)
SEARCH_FLAGS_KEYS = frozenset([
    "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
    "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
])
#: search keys with one astring argument
SEARCH_STRING_KEYS = frozenset(["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"])
#: search keys with one date argument
SEARCH_DATE_KEYS = frozenset(["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"])


@dataclass(frozen=True)
class SearchKey:
    """One search key (RFC 3501 6.4.4): ``name`` upper case, ``args`` by kind:

    - no argument: ``ALL``, ``SEEN``, ``UNDRAFT``... (``args == ()``);
    - a string (str): ``FROM``, ``SUBJECT``, ``BODY``, ``TEXT``, ``TO``, ``CC``, ``BCC``;
      ``HEADER``: (field name, string); ``KEYWORD``/``UNKEYWORD``: (flag keyword,);
    - a date (:class:`datetime.date`): ``BEFORE``, ``ON``, ``SINCE``, ``SENT*``;
    - a number: ``LARGER``, ``SMALLER``;
    - a :class:`SequenceSet`: ``UID``, and ``SET`` for a bare sequence set;
    - keys: ``NOT`` (one), ``OR`` (two), ``AND`` (two or more: a parenthesised list,
      or the keys of a SEARCH command side by side).
    """

    name: str
    args: tuple[Any, ...] = ()


# ---- fetch items


@dataclass(frozen=True)
class Section:
    """A BODY[...] section: ``part`` (``(1, 2)`` for ``1.2``; ``()`` for the whole
    message), ``text`` (None, ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT``,
    ``TEXT`` or ``MIME``) and ``fields`` (the header names of the HEADER.FIELDS forms)."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = ".".join(str(n) for n in self.part)
        if self.text:
            text = f"{text}.{self.text}" if text else self.text
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            text += " (" + " ".join(_header_name(f) for f in self.fields) + ")"
        return text


# a header field name is printable US-ASCII (RFC 5322 3.6.8); one that an atom cannot
# hold goes quoted
_ATOM_NAME = re.compile(r'[^\x00-\x20\x7f-\U0010ffff(){%*"\\\[\]]+\Z')


def _header_name(name: str) -> str:
    if not name or not all(33 <= ord(c) <= 126 for c in name):
        raise ValueError(f"a header field name is printable US-ASCII, not {name!r}")
    if _ATOM_NAME.match(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FetchItem:
    """One fetch attribute: ``name`` (``FLAGS``, ``ENVELOPE``, ``BODYSTRUCTURE``, ``BODY``,
    ``RFC822.SIZE``...), for ``BODY[...]`` its ``section`` (``Section()`` is ``BODY[]``,
    None is plain ``BODY``, the body structure), ``partial`` ``(origin, length)`` and
    ``peek`` (``BODY.PEEK``: do not set \\Seen).

    ``str()`` is the request's form; :attr:`response_name` the name a server's FETCH
    answer gives it (``BODY[1.HEADER]<0>``), the key of the client's parsed FETCH dict.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def __str__(self) -> str:
        if self.section is None:
            return self.name
        text = f"{self.name}{'.PEEK' if self.peek else ''}[{self.section}]"
        if self.partial is not None:
            text += f"<{self.partial[0]}.{self.partial[1]}>"
        return text

    @property
    def response_name(self) -> str:
        """The name of this item in a FETCH response."""
        if self.section is None:
            return self.name
        text = f"{self.name}[{self.section!s}]"
        if self.partial is not None:
            text += f"<{self.partial[0]}>"
        return text


# ---- commands and responses


@dataclass(frozen=True)
class Command:
    """A client's command: ``tag``, ``name`` (upper case; ``FETCH`` for ``UID FETCH``,
    with ``uid`` True) and ``args``, typed by command:

    ==========================================  ===========================================
    LOGIN                                       (user: str, password: str)
    AUTHENTICATE                                (mechanism: str, initial response: str|None)
    SELECT EXAMINE CREATE DELETE                (mailbox: str,) — names decoded from
    SUBSCRIBE UNSUBSCRIBE                       modified UTF-7, ``INBOX`` in any case is
                                                ``"INBOX"``
    RENAME                                      (old: str, new: str)
    LIST LSUB                                   (reference: str, pattern: str)
    STATUS                                      (mailbox: str, items: tuple[str, ...])
    APPEND                                      (mailbox: str, flags: tuple[str, ...],
                                                date: datetime|None, message: bytes)
    SEARCH                                      (charset: str|None, key: SearchKey)
    FETCH                                       (set: SequenceSet, items: tuple[FetchItem])
    STORE                                       (set, mode: "" "+" "-", silent: bool,
                                                flags: tuple[str, ...])
    COPY MOVE                                   (set: SequenceSet, mailbox: str)
    EXPUNGE (UID EXPUNGE)                       () ((set: SequenceSet,))
    ENABLE                                      (capabilities: tuple[str, ...])
    ID                                          (fields: dict[str, str|None] | None,)
    others (CAPABILITY NOOP LOGOUT STARTTLS     ()
    CHECK CLOSE UNSELECT IDLE NAMESPACE)
    ==========================================  ===========================================
    """

    tag: str
    name: str
    args: tuple[Any, ...] = ()
    uid: bool = False


@dataclass(frozen=True)
class ContinuationRequest:
    """The command reader holds a synchronising literal's size: the server answers
    ``+ ...`` for the client to send it (or refuses with ``reader.reject_literal()``)."""

    tag: str | None
    size: int


@dataclass(frozen=True)
class ResponseCode:
    """A response code (``[UIDVALIDITY 3857529045]``): ``name`` upper case and ``value``:
    an int for UIDVALIDITY, UIDNEXT, UNSEEN, HIGHESTMODSEQ; a tuple of str for
    PERMANENTFLAGS, CAPABILITY, BADCHARSET; ``(uidvalidity, SequenceSet)`` for APPENDUID;
    ``(uidvalidity, SequenceSet, SequenceSet)`` for COPYUID; None when there is none
    (READ-WRITE, READ-ONLY, TRYCREATE, ALERT, PARSE...); else the text after the name."""

    name: str
    value: Any = None


@dataclass
class Response:
    """A server's response as a client reads it.

    ``tag`` is the command's tag for a tagged status (``OK``/``NO``/``BAD``), ``"*"`` for
    untagged data. ``kind`` is upper case: ``OK``, ``NO``, ``BAD``, ``BYE``, ``PREAUTH``,
    ``CAPABILITY``, ``LIST``, ``LSUB``, ``STATUS``, ``SEARCH``, ``FLAGS``, ``EXISTS``,
    ``RECENT``, ``EXPUNGE``, ``FETCH``, ``NAMESPACE``, ``ID``, ``ENABLED``... ``number``
    is the message number or count of EXISTS, RECENT, EXPUNGE and FETCH. ``data``:

    - status responses: None (``code`` and ``text`` say it);
    - CAPABILITY, FLAGS, ENABLED: tuple of str; SEARCH: list of int;
    - LIST/LSUB: :class:`ListEntry`; STATUS: ``(mailbox, {item: number})``;
    - FETCH: dict of the items by their response names (``FLAGS``: tuple, ``UID``,
      ``RFC822.SIZE``: int, ``INTERNALDATE``: datetime, ``ENVELOPE``: Envelope,
      ``BODYSTRUCTURE``/``BODY``: BodyStructure, ``BODY[...]``: bytes or None);
    - NAMESPACE: three lists of ``(prefix, delimiter)`` (or None);
    - ID: dict or None; anything else: the generic values (lists, bytes, str, int, None).
    """

    tag: str
    kind: str
    number: int | None = None
    data: Any = None
    code: ResponseCode | None = None
    text: str = ""

    @property
    def tagged(self) -> bool:
        return self.tag != "*"


@dataclass(frozen=True)
class Continuation:
    """A server's ``+`` line: ``text`` (for AUTHENTICATE, the base64 challenge)."""

    text: str


@dataclass(frozen=True)
class ListEntry:
    """A LIST or LSUB answer: ``flags`` (``\\Noselect``, ``\\HasChildren``, ``\\Sent``...),
    ``delimiter`` (None for a flat namespace) and ``name`` (decoded from modified UTF-7)."""

    flags: tuple[str, ...]
    delimiter: str | None
    name: str


# ---- envelopes and body structures


class Address(NamedTuple):
    """An ENVELOPE address: name (the phrase), adl (the source route), mailbox, host.

    A group is written as an address with host None: its start has the group's name as
    mailbox, its end mailbox None (RFC 3501 7.4.2)."""

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    @property
    def email(self) -> str | None:
        """``mailbox@host``, or None for a group marker."""
        if self.host is None or self.mailbox is None:
            return None
        return f"{self.mailbox}@{self.host}"


class Envelope(NamedTuple):
    """A message's ENVELOPE, in RFC 3501 7.4.2's order; text fields are the header's
    text as it is in the message (RFC 2047 encoded words left as they are), None when
    the header is missing; address fields a tuple of :class:`Address` or None."""

    date: str | None
    subject: str | None
    from_: tuple[Address, ...] | None
    sender: tuple[Address, ...] | None
    reply_to: tuple[Address, ...] | None
    to: tuple[Address, ...] | None
    cc: tuple[Address, ...] | None
    bcc: tuple[Address, ...] | None
    in_reply_to: str | None
    message_id: str | None


@dataclass(frozen=True)
class SinglePart:
    """A non-multipart body: ``type``/``subtype`` (as the message spells them: compare
    them case-insensitively), ``params`` (pairs, in order),
    ``id``, ``description``, ``encoding``, ``size`` (octets, as transferred), ``lines``
    (text/* and message/rfc822), ``envelope`` and ``body`` (message/rfc822), and the
    extension data BODYSTRUCTURE adds: ``md5``, ``disposition`` (``(type, params)``),
    ``language`` (tuple), ``location``. ``extended`` says whether the extension data is
    there (BODYSTRUCTURE) or not (BODY)."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...] = ()
    id: str | None = None
    description: str | None = None
    encoding: str = "7bit"
    size: int = 0
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    md5: str | None = None
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None = None
    language: tuple[str, ...] | None = None
    location: str | None = None
    extended: bool = True


@dataclass(frozen=True)
class Multipart:
    """A multipart body: its ``parts``, ``subtype`` (``MIXED``, ``ALTERNATIVE``...) and
    the extension data: ``params`` (the boundary among them), ``disposition``,
    ``language``, ``location``; ``extended`` as for :class:`SinglePart`."""

    parts: tuple[BodyStructure, ...]
    subtype: str
    params: tuple[tuple[str, str], ...] = ()
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None = None
    language: tuple[str, ...] | None = None
    location: str | None = None
    extended: bool = True


BodyStructure = SinglePart | Multipart

#: month names of IMAP dates
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
