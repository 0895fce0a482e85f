"""What the IMAP server knows of a message beyond its file: the parsed envelope, body
structure, headers and dates, cached in memory by (folder, UID, size, mtime).

A FETCH of ENVELOPE over 10,000 messages reads each message's header once (only the
header: a big message is not read whole for it); the next FETCH answers from memory.
A message whose file changed size or mtime is parsed again (flag changes rename a file
but keep both). Nothing here writes to disk: reading goes through the message's path
(the :class:`~protocols.mail.maildir.MessageInfo` the store gave), and through the store
when the file moved meanwhile.

>>> from protocols.mail.imap.fetch import split_header
>>> split_header(b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
(b'Subject: hi\\r\\n\\r\\n', 15)
"""

from __future__ import annotations

import email.header
import email.utils
import functools
import re
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from protocols.mail.imap.values import Address, BodyStructure, Envelope
from protocols.mail.imap.writer import body_structure, format_envelope, parse_addresses
from protocols.mail.maildir import Maildir, MessageInfo, NoSuchMessage

__all__ = ["BIG_MESSAGE", "MessageCache", "Parsed", "crlf_chunks", "header_envelope",
           "split_header"]

#: messages larger than this (on disk) are streamed from their file, never held whole
BIG_MESSAGE = 1024 * 1024
_CHUNK = 64 * 1024
_BARE_LF = re.compile(rb"(?<!\r)\n")
_HEADER_LINE = re.compile(rb"^([^:\s]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.M)


def split_header(data: bytes) -> tuple[bytes, int]:
    """(the header block with its blank line, CRLF line ends; its length in the file) of
    a message's first bytes; the whole of ``data`` (made CRLF) when no blank line ends
    it there."""
    if data.startswith(b"\r\n"):
        return b"\r\n", 2
    if data.startswith(b"\n"):
        return b"\r\n", 1
    m = re.search(rb"\r?\n\r?\n", data)
    end = len(data) if m is None else m.end()
    return _BARE_LF.sub(b"\r\n", data[:end]), end


def crlf_chunks(file: Any, start: int = 0, length: int | None = None,
                chunk: int = _CHUNK) -> Iterator[bytes]:
    """The file's bytes with bare LF made CRLF, ``length`` bytes from ``start`` (both
    counted in the CRLF form), a chunk at a time."""
    pos = 0  # in the CRLF form
    end = None if length is None else start + length
    pending_cr = False
    while end is None or pos < end:
        raw = file.read(chunk)
        if not raw:
            break
        if pending_cr:
            raw = b"\r" + raw
            pending_cr = False
        if raw.endswith(b"\r"):
            raw, pending_cr = raw[:-1], True
        data = _BARE_LF.sub(b"\r\n", raw)
        lo, hi = pos, pos + len(data)
        pos = hi
        if hi <= start:
            continue
        piece = data[max(start - lo, 0):]
        if end is not None and hi > end:
            piece = piece[: len(piece) - (hi - end)]
        if piece:
            yield piece
    if pending_cr and (end is None or pos < end) and pos >= start:
        yield b"\r"


class Parsed:
    """One message's parsed facts (each computed when first asked for)."""

    __slots__ = ("header", "envelope_bytes", "_structure", "_sent", "_fields", "_env")

    def __init__(self, header: bytes) -> None:
        self.header = header  # CRLF, with the blank line
        self.envelope_bytes: bytes | None = None
        self._env: Any = None
        self._structure: BodyStructure | None = None
        self._sent: date | bool | None = False
        self._fields: dict[str, list[str]] | None = None

    def envelope(self) -> bytes:
        if self.envelope_bytes is None:
            self._env = header_envelope(self.header)
            self.envelope_bytes = format_envelope(self._env)
        return self.envelope_bytes

    def fields(self) -> dict[str, list[str]]:
        """Header name (lower case) -> the values, unfolded, RFC 2047 words decoded."""
        if self._fields is None:
            out: dict[str, list[str]] = {}
            for m in _HEADER_LINE.finditer(self.header):
                name = m.group(1).decode("ascii", "replace").lower()
                raw = re.sub(rb"\r?\n", b"", m.group(2)).strip()
                out.setdefault(name, []).append(decode_words(raw))
            self._fields = out
        return self._fields

    def sent_date(self) -> date | None:
        """The day of the Date header (in its own time zone), None if it has none."""
        if self._sent is False:
            value = self.fields().get("date")
            sent: date | None = None
            if value:
                try:
                    sent = email.utils.parsedate_to_datetime(value[0]).date()
                except (TypeError, ValueError, IndexError, OverflowError):
                    sent = None
            self._sent = sent
        return self._sent  # type: ignore[return-value]


# ---- ENVELOPE, the quick way for the common forms of addresses

_FIELD = re.compile(r"^([^\s:]+)[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.M)
_SPEC = r'([^\s<>()@,;:\\"\[\].]+(?:\.[^\s<>()@,;:\\"\[\].]+)*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)'
_ATEXT = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+"
_SIMPLE = re.compile(
    rf'(?:"([^"\\\s](?:[^"\\]*[^"\\\s])?)"|({_ATEXT}(?: {_ATEXT})*))? ?<{_SPEC}>\Z'
    rf"|{_SPEC}\Z")


def _addresses(value: str | None) -> tuple[Address, ...] | None:
    """The writer's :func:`~.writer.parse_addresses` (RFC 5322 in full), answered here
    without it for lists of ``Name <a@b>``, ``"Name" <a@b>`` and ``a@b`` (what most mail
    has): the cold FETCH ENVELOPE of a big mailbox spends its time there."""
    if value is None:
        return None
    if "=?" in value or "  " in value:
        return _parse_addresses(value)
    out = []
    for piece in value.split(","):
        m = _SIMPLE.match(piece.strip(" \t"))
        if m is None:
            return _parse_addresses(value)
        if m.group(3) is not None:
            name = m.group(1) if m.group(1) is not None else m.group(2)
            out.append(Address(name, None, m.group(3), m.group(4)))
        else:
            out.append(Address(None, None, m.group(5), m.group(6)))
    return tuple(out) or None


@functools.lru_cache(maxsize=4096)
def _parse_addresses(value: str) -> tuple[Address, ...] | None:
    return parse_addresses(ungroup_nested(value))


_ADDRESS_FIELD = re.compile(
    rb"^(?:from|to|cc|bcc|sender|reply-to)[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*",
    re.I | re.M)


def defuse(raw: bytes) -> bytes:
    """``raw`` with :func:`ungroup_nested` applied to every address field in it (nested
    messages' too), one character for one: sizes and lines stay, the writer's
    body_structure (which reads the envelopes of message/rfc822 parts) cannot loop."""
    if raw.count(b":") < 2:
        return raw

    def fix(m: re.Match[bytes]) -> bytes:
        name, _, value = m.group(0).partition(b":")
        text = value.decode("utf-8", "surrogateescape")
        fixed = ungroup_nested(text)
        if fixed == text:
            return m.group(0)
        return name + b":" + fixed.encode("utf-8", "surrogateescape")

    return _ADDRESS_FIELD.sub(fix, raw)


def ungroup_nested(value: str) -> str:
    """``value`` with each ``:`` that would open a group inside a group made a space.

    (The writer's parse_addresses loops for ever on ``g: x: a@b``, a group inside a
    group, which RFC 5322 does not allow: a message with such a header must not stop the
    server. Quoted strings, comments and ``<...>`` are left as they are.)

    >>> ungroup_nested("g: x: a@b;"), ungroup_nested('g: "x:" <r:a@b>;')
    ('g: x  a@b;', 'g: "x:" <r:a@b>;')
    """
    if value.count(":") < 2:
        return value
    out = []
    in_group = quoted = escaped = False
    depth = angle = 0
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif angle:
            pass
        elif ch == ";":
            in_group = False
        elif ch == ":":
            if in_group:
                ch = " "
            in_group = True
        out.append(ch)
    return "".join(out)


def header_envelope(header: bytes) -> Envelope:
    """The ENVELOPE of a message from its header block: the same as the writer's
    :func:`~.writer.envelope` (a test holds them equal), faster for common addresses."""
    fields: dict[str, str] = {}
    for m in _FIELD.finditer(header.decode("utf-8", "surrogateescape")):
        name = m.group(1).lower()
        if name not in fields:
            fields[name] = re.sub(r"\r\n(?=[ \t])", "", m.group(2)).strip(" \t\r")
    get = fields.get
    from_ = _addresses(get("from"))
    return Envelope(
        get("date"), get("subject"), from_, _addresses(get("sender")) or from_,
        _addresses(get("reply-to")) or from_, _addresses(get("to")), _addresses(get("cc")),
        _addresses(get("bcc")), get("in-reply-to"), get("message-id"))


def decode_words(raw: bytes) -> str:
    """A header value as text: RFC 2047 encoded words decoded, 8-bit taken as UTF-8."""
    text = raw.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        pieces = email.header.decode_header(text)
    except Exception:  # a broken encoded word: the raw text
        return text
    out = []
    for piece, charset in pieces:
        if isinstance(piece, str):
            out.append(piece)
        else:
            try:
                out.append(piece.decode(charset or "ascii", "replace"))
            except LookupError:
                out.append(piece.decode("utf-8", "replace"))
    return "".join(out)


class MessageCache:
    """Parsed messages by (folder path, UID, size, mtime), least recently used out first."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, int, float], Parsed] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, box: Maildir, info: MessageInfo) -> Parsed:
        key = (box.path, info.uid, info.size, info.internal_date)
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        entry = Parsed(read_header(box, info))
        self._entries[key] = entry
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def structure(self, box: Maildir, info: MessageInfo) -> BodyStructure:
        entry = self.get(box, info)
        if entry._structure is None:
            entry._structure = body_structure(defuse(read_all(box, info)))
        return entry._structure


def _open(box: Maildir, info: MessageInfo) -> Any:
    try:
        return open(info.path, "rb")
    except FileNotFoundError:  # renamed by a flag change since the scan
        return box.open(info.uid)


def read_header(box: Maildir, info: MessageInfo) -> bytes:
    """The header block (CRLF lines, blank line included) of a message."""
    try:
        with _open(box, info) as f:
            data = b""
            while True:
                more = f.read(_CHUNK if data else 8192)
                data += more
                if not more or re.search(rb"\r?\n\r?\n", data) or data.startswith(
                        (b"\n", b"\r\n")):
                    break
                if len(data) > 4 * _CHUNK * 16:  # a header of MBs: cut it there
                    break
    except NoSuchMessage:
        return b"\r\n"
    return split_header(data)[0]


def read_all(box: Maildir, info: MessageInfo) -> bytes:
    """The whole message, CRLF line ends."""
    with _open(box, info) as f:
        data = f.read()
    return _BARE_LF.sub(b"\r\n", data) if b"\n" in data else data


def internal_datetime(info: MessageInfo) -> datetime:
    """The INTERNALDATE of a message, in the server's local time zone."""
    return datetime.fromtimestamp(info.internal_date, UTC).astimezone()
