"""IRC without I/O: a line in, a :class:`Message` out; a Message out, a line.

The message format is the one the "Modern IRC Client Protocol" document describes, with
IRCv3 message tags::

    ['@' tags SPACE] [':' source SPACE] command [params] CRLF

- ``tags``: ``key[=value]`` separated by ``;``; a key starting with ``+`` is a client-only
  tag; values are escaped (``\\:`` for ``;``, ``\\s`` for a space, ``\\\\`` for a backslash,
  ``\\r`` and ``\\n``). The tags, with their ``@`` and the space after them, take at most
  8191 bytes (:data:`MAX_TAGS_BYTES`).
- the rest of the line, CRLF included, takes at most 512 bytes (:data:`MAX_LINE_BYTES`).
- ``command``: letters (kept upper-case here) or a three-digit numeric.
- ``params``: any number when read (Modern IRC: clients MUST parse incoming messages
  with any number of them); at most 15 (:data:`MAX_PARAMS`) when written, as software
  SHOULD AVOID sending more, unless told otherwise (``max_params``); the last may hold
  spaces, or be empty, after a ``:``.

Parsing is lenient where the document tells clients and servers to be (several spaces
between parameters, a bare LF ending a line); formatting is strict, and refuses what could
not be read back as it was meant (a parameter with a space that is not the last, a CR, LF
or NUL anywhere).

Example::

    >>> m = parse("@time=2026-12-05T12:00:00.000Z :alice!a@host PRIVMSG #chan :hello there")
    >>> m.command, m.params, m.nick, m.tags["time"]
    ('PRIVMSG', ['#chan', 'hello there'], 'alice', '2026-12-05T12:00:00.000Z')
    >>> Message("PRIVMSG", ["#chan", "hi there"], source="bob!b@host").to_line()
    ':bob!b@host PRIVMSG #chan :hi there'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "CASEMAPPINGS",
    "MAX_CLIENT_TAGS_BYTES",
    "MAX_LINE_BYTES",
    "MAX_PARAMS",
    "MAX_TAGS_BYTES",
    "IRCParseError",
    "LineReader",
    "LineTooLong",
    "Message",
    "casefold",
    "escape_tag_value",
    "format_tags",
    "parse",
    "parse_tags",
    "unescape_tag_value",
]

#: the most bytes of a line without its tags, CRLF included (RFC 1459 §2.3)
MAX_LINE_BYTES = 512
#: the most bytes of a line's tags, with their '@' and the space after them (IRCv3)
MAX_TAGS_BYTES = 8191
#: the most bytes of the client-only tags a client may send, '@' and ';'s included (IRCv3)
MAX_CLIENT_TAGS_BYTES = 4094
#: the most parameters a message is written with (RFC 1459 §2.3: older software reads no
#: more; Modern IRC: send no more, but read any number)
MAX_PARAMS = 15


class IRCParseError(ValueError):
    """A line that is not an IRC message (no command, a bad tag, too many parameters...)."""


# ---- tags

_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_ESCAPE_TABLE = str.maketrans(_ESCAPE)


def escape_tag_value(value: str) -> str:
    """A tag value as it is written on the wire.

    >>> escape_tag_value("a b;c\\\\")
    'a\\\\sb\\\\:c\\\\\\\\'
    """
    return value.translate(_ESCAPE_TABLE)


def unescape_tag_value(raw: str) -> str:
    """A tag value as it was meant: ``\\x`` for an unknown ``x`` is ``x``, and a lone
    backslash at the end is dropped (IRCv3 message-tags)."""
    if "\\" not in raw:
        return raw
    out = []
    i = 0
    n = len(raw)
    while i < n:
        ch = raw[i]
        if ch == "\\":
            if i + 1 < n:
                nxt = raw[i + 1]
                out.append(_UNESCAPE.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _valid_key(key: str) -> bool:
    name = key[1:] if key.startswith("+") else key
    if not name:
        return False
    vendor, slash, short = name.rpartition("/")
    if not short or (slash and not vendor):
        return False
    if not all(c.isascii() and (c.isalnum() or c == "-") for c in short):
        return False
    return all(c.isascii() and (c.isalnum() or c in "-.") for c in vendor)


def parse_tags(raw: str) -> dict[str, str]:
    """The tags of ``raw`` (the text after '@', without it): key -> value ("" when a tag
    has no value). A later tag with the same key wins (IRCv3). Raises IRCParseError for a
    key that is not a valid tag name."""
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        if not _valid_key(key):
            raise IRCParseError(f"bad tag name: {key!r}")
        tags[key] = unescape_tag_value(value)
    return tags


def format_tags(tags: Mapping[str, str | None]) -> str:
    """``tags`` written for the wire, without the '@' (a None or "" value: the key alone).
    Raises ValueError for a bad tag name or a value holding NUL (no escape writes it)."""
    parts = []
    for key, value in tags.items():
        if not _valid_key(key):
            raise ValueError(f"bad tag name: {key!r}")
        if value and "\0" in value:
            raise ValueError(f"the value of tag {key!r} holds NUL: {value!r}")
        parts.append(f"{key}={escape_tag_value(value)}" if value else key)
    return ";".join(parts)


# ---- messages


@dataclass
class Message:
    """One IRC message: ``command`` (upper-case letters or a three-digit numeric),
    ``params``, and an optional ``source`` (``nick!user@host`` or a server name) and
    ``tags``."""

    command: str
    params: list[str] = field(default_factory=list)
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def nick(self) -> str | None:
        """The nick of the source (its part before '!'), or None without a source."""
        if self.source is None:
            return None
        return self.source.split("!", 1)[0].split("@", 1)[0]

    def to_line(self, max_params: int | None = MAX_PARAMS) -> str:
        """The message as a line, without CRLF. Raises ValueError if it cannot be written
        so that it reads back the same (see :func:`parse`), or if it has more than
        ``max_params`` parameters (None: any number)."""
        command = self.command
        if not _valid_command(command) or not (command.isupper() or command.isdigit()):
            # a lower-case command would read back upper-cased: not the same message
            raise ValueError(f"bad command: {command!r} (upper-case letters or 3 digits)")
        params = self.params
        if max_params is not None and len(params) > max_params:
            raise ValueError(f"{len(params)} parameters: at most {max_params}")
        pieces = []
        if self.tags:
            pieces.append("@" + format_tags(self.tags))
        if self.source is not None:
            source = self.source
            if not source or " " in source or _bad_chars(source):
                raise ValueError(f"bad source: {source!r}")
            pieces.append(":" + source)
        pieces.append(command)
        last = len(params) - 1
        for i, p in enumerate(params):
            if _bad_chars(p):
                raise ValueError(f"parameter {i + 1} holds CR, LF or NUL: {p!r}")
            if i == last:
                if not p or " " in p or p[0] == ":":
                    p = ":" + p
            elif not p or " " in p or p[0] == ":":
                raise ValueError(
                    f"parameter {i + 1} of {len(params)} is empty, holds a space or starts "
                    f"with ':': only the last one may: {p!r}"
                )
            pieces.append(p)
        return " ".join(pieces)

    def to_bytes(self, max_params: int | None = MAX_PARAMS) -> bytes:
        """The line with its CRLF, in UTF-8 (``max_params`` as for :meth:`to_line`)."""
        return (self.to_line(max_params) + "\r\n").encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return self.to_line()


def _bad_chars(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


def _valid_command(command: str) -> bool:
    """Letters, or a three-digit numeric: ASCII only (``"١٢٣".isdigit()`` is true too)."""
    return command.isascii() and (
        command.isalpha() or (len(command) == 3 and command.isdigit())
    )


def parse(line: str | bytes, max_params: int | None = None) -> Message:
    """The :class:`Message` of one line (CRLF or LF at its end, if any, is dropped).

    Bytes are read as UTF-8 (bytes that are not stay as surrogate escapes: decide what to
    do with them before, as a server with UTF8ONLY must). Any number of parameters is
    read, as Modern IRC requires of clients (a server's 005 may carry more than 15);
    ``max_params`` refuses more than that many, for a reader that wants RFC 1459's limit.
    Raises IRCParseError for a line with no command, a bad command, bad tags or more than
    ``max_params`` parameters.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "surrogateescape")
    line = line.rstrip("\r\n")
    if "\0" in line or "\r" in line or "\n" in line:
        raise IRCParseError("NUL, CR or LF inside the line")
    rest = line.lstrip(" ")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw, _, rest = rest[1:].partition(" ")
        tags = parse_tags(raw)
        rest = rest.lstrip(" ")
    source = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        if not source:
            raise IRCParseError("an empty source")
        rest = rest.lstrip(" ")
    command, _, rest = rest.partition(" ")
    if not command:
        raise IRCParseError("no command")
    if not _valid_command(command):
        raise IRCParseError(f"bad command: {command[:50]!r}")
    params: list[str] = []
    while rest:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest[0] == ":":
            params.append(rest[1:])
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
    if max_params is not None and len(params) > max_params:
        raise IRCParseError(f"{len(params)} parameters: at most {max_params}")
    return Message(command.upper(), params, source, tags)


# ---- lines off the wire


class LineTooLong:
    """What :class:`LineReader` gives in place of a line over its limit: the line was
    dropped whole; ``length`` is how many bytes it had, without its line end, ``tags``
    whether its tags alone were over their limit. Two are equal when both are."""

    __slots__ = ("length", "tags")

    def __init__(self, length: int, tags: bool = False) -> None:
        self.length = length
        self.tags = tags

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LineTooLong):
            return NotImplemented
        return (self.length, self.tags) == (other.length, other.tags)

    def __hash__(self) -> int:
        return hash((self.length, self.tags))

    def __repr__(self) -> str:
        what = "tags" if self.tags else "line"
        return f"<LineTooLong {what}: {self.length} bytes>"


class LineReader:
    """Splits the bytes of a connection into lines (ending in CR, LF or CRLF, as the
    Modern IRC document allows), each bytes without its line end.

    A CR and a LF each end a line, and empty lines are skipped, so CRLF is one line end
    however the bytes are split. A line whose tags take more than ``max_tags`` bytes, or
    whose rest takes more than ``max_line`` (with its CRLF), is dropped whole and given as
    a :class:`LineTooLong` (the connection goes on: the server answers 417, or whatever it
    chooses). Nothing is held beyond one line's limits (:attr:`pending`): the rest of an
    over-long line is skipped as it comes. The same bytes give the same lines however
    they are split into pieces.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES, max_tags: int = MAX_TAGS_BYTES) -> None:
        self.max_line = max_line
        self.max_tags = max_tags
        self._buffer = b""
        self._skipping = False  # inside an over-long line, dropping its bytes as they come
        self._skipped = 0  # bytes of it dropped so far
        self._skip_tags = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """The lines ``data`` ends (with what came before it), in order."""
        out: list[bytes | LineTooLong] = []
        if not data:
            return out
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r", b"\n")
        *lines, rest = buffer.split(b"\n")
        for line in lines:
            if self._skipping:  # the end of an over-long line
                out.append(LineTooLong(self._skipped + len(line), self._skip_tags))
                self._skipping = False
                self._skipped = 0
                self._skip_tags = False
            elif line:
                too_long = self._too_long(line)
                out.append(line if too_long is None else too_long)
        if self._skipping:
            self._skipped += len(rest)
            rest = b""
        elif rest:
            too_long = self._too_long(rest)
            if too_long is not None:  # over the limit without its end: skip the rest
                self._skipping = True
                self._skipped = len(rest)
                self._skip_tags = too_long.tags
                rest = b""
        self._buffer = rest
        return out

    def _too_long(self, line: bytes) -> LineTooLong | None:
        """Whether ``line`` (without its line end; maybe not all there yet) is over the
        limits: its tags with '@' and a space over ``max_tags``, or the rest with a CRLF
        over ``max_line``."""
        tags_len = 0
        if line[:1] == b"@":
            space = line.find(b" ")
            if space < 0:  # tags only, so far (or a line that is nothing else: parse says)
                return LineTooLong(len(line), tags=True) if len(line) + 1 > self.max_tags \
                    else None
            tags_len = space + 1
            if tags_len > self.max_tags:
                return LineTooLong(len(line), tags=True)
        body = len(line) - tags_len + 2  # with its CRLF
        if body > self.max_line:
            return LineTooLong(len(line))
        return None

    @property
    def pending(self) -> int:
        """Bytes held of a line not yet ended."""
        return len(self._buffer)


# ---- case mapping

#: the case mappings :func:`casefold` knows (Modern IRC's CASEMAPPING values but rfc7613)
CASEMAPPINGS = ("ascii", "rfc1459", "strict-rfc1459")

_LETTERS_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERS_LOWER = "abcdefghijklmnopqrstuvwxyz"
_FOLDS = {
    # ascii: A-Z are a-z, nothing else
    "ascii": str.maketrans(_LETTERS_UPPER, _LETTERS_LOWER),
    # rfc1459: ascii, and []\\~ are the upper case of {}|^
    "rfc1459": str.maketrans(_LETTERS_UPPER + "[]\\~", _LETTERS_LOWER + "{}|^"),
    # strict-rfc1459: as rfc1459 but ~ and ^ are two characters
    "strict-rfc1459": str.maketrans(_LETTERS_UPPER + "[]\\", _LETTERS_LOWER + "{}|"),
}


def casefold(name: str, casemapping: str = "rfc1459", default: str | None = None) -> str:
    """``name`` (a nick or channel) in the one case names are compared in, by the
    server's CASEMAPPING (Modern IRC, "CASEMAPPING Parameter"):

    - ``ascii``: only the letters A-Z are the upper case of a-z;
    - ``rfc1459``: ascii, and ``[]\\~`` are the upper case of ``{}|^`` (RFC 1459 §2.2);
    - ``strict-rfc1459``: rfc1459 without ``~`` and ``^``.

    Any other value (``rfc7613``, one a server made up) is folded by ``default`` when
    given: a client passes ``default="rfc1459"``, the mapping Modern IRC tells clients to
    assume when none is said, and goes on with whatever a server says. Without
    ``default`` an unknown mapping raises ValueError (a server refuses to be configured
    with one: :data:`CASEMAPPINGS` lists those known).

    >>> casefold("Nick[away]")
    'nick{away}'
    >>> casefold("Nick[away]~", "strict-rfc1459")
    'nick{away}~'
    >>> casefold("Nick[away]", "ascii")
    'nick[away]'
    >>> casefold("Nick[away]", "rfc7613", default="rfc1459")
    'nick{away}'
    """
    table = _FOLDS.get(casemapping)
    if table is None:
        table = _FOLDS.get(default) if default is not None else None
        if table is None:
            raise ValueError(f"unknown case mapping: {casemapping!r} "
                             f"({', '.join(CASEMAPPINGS)})")
    return name.translate(table)
