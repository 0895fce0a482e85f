"""SEARCH (RFC 3501 6.4.4) evaluated over a mailbox's messages, sans I/O but for reading
the messages it has to look inside (through :class:`~.fetch.MessageCache`).

A :class:`Candidate` is one message as the session sees it (sequence number, UID, flags,
internal date, RFC822.SIZE) plus loaders for its header fields and text;
:func:`matches` walks the :class:`~.values.SearchKey` tree. Strings match as RFC 3501
says: case-insensitive substrings, of the decoded header values (RFC 2047 words decoded)
or of the message's text. Dates ignore time and zone: BEFORE/ON/SINCE use the internal
date's day in the server's zone, SENT* the Date header's own day (1 January 1970 when a
message has no readable Date, as Dovecot answers).

>>> from datetime import date
>>> from protocols.mail.imap.values import SearchKey
>>> c = Candidate(1, 7, frozenset({"\\\\Seen"}), date(2024, 1, 2), 100, lambda: {},
...               lambda: b"", lambda: None)
>>> matches(SearchKey("AND", (SearchKey("SEEN"), SearchKey("LARGER", (50,)))), c, 1, 7, set())
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocols.mail.imap.values import SearchKey

__all__ = ["Candidate", "matches"]

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
}
_NO_DATE = date(1970, 1, 1)
_ADDRESS_KEYS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}


@dataclass
class Candidate:
    """One message for :func:`matches`: its numbers and flags, and loaders for the rest
    (``fields()``: lower-case header name -> decoded values; ``text()``: the whole
    message, CRLF; ``sent()``: the Date header's day or None)."""

    seq: int
    uid: int
    flags: frozenset[str]
    internal: date
    size: int
    fields: Callable[[], dict[str, list[str]]]
    text: Callable[[], bytes]
    sent: Callable[[], date | None]
    _body: str | None = None
    _whole: str | None = None

    def whole(self) -> str:
        if self._whole is None:
            self._whole = self.text().decode("utf-8", "replace").casefold()
        return self._whole

    def body(self) -> str:
        if self._body is None:
            raw = self.text()
            i = raw.find(b"\r\n\r\n")
            body = b"" if i < 0 else raw[i + 4:]
            self._body = body.decode("utf-8", "replace").casefold()
        return self._body


def matches(key: SearchKey, c: Candidate, largest_seq: int, largest_uid: int,
            recent: set[int]) -> bool:
    """Whether message ``c`` matches ``key``; ``largest_*`` are what ``*`` stands for,
    ``recent`` the UIDs that are \\Recent in the session."""
    name, args = key.name, key.args
    if name == "ALL":
        return True
    if name == "AND":
        return all(matches(k, c, largest_seq, largest_uid, recent) for k in args)
    if name == "OR":
        return (matches(args[0], c, largest_seq, largest_uid, recent)
                or matches(args[1], c, largest_seq, largest_uid, recent))
    if name == "NOT":
        return not matches(args[0], c, largest_seq, largest_uid, recent)
    flag = _FLAG_KEYS.get(name)
    if flag is not None:
        return (flag[0] in c.flags) == flag[1]
    if name == "RECENT":
        return c.uid in recent
    if name == "NEW":
        return c.uid in recent and "\\Seen" not in c.flags
    if name == "OLD":
        return c.uid not in recent
    if name == "KEYWORD":
        return _has_keyword(c.flags, args[0])
    if name == "UNKEYWORD":
        return not _has_keyword(c.flags, args[0])
    if name == "SET":
        return args[0].contains(c.seq, largest_seq)
    if name == "UID":
        return args[0].contains(c.uid, largest_uid)
    if name == "LARGER":
        return c.size > args[0]
    if name == "SMALLER":
        return c.size < args[0]
    if name in ("BEFORE", "ON", "SINCE"):
        return _compare(name, c.internal, args[0])
    if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        sent = c.sent()
        return _compare(name[4:], sent if sent is not None else _NO_DATE, args[0])
    if name in _ADDRESS_KEYS:
        return _in_header(c, _ADDRESS_KEYS[name], args[0])
    if name == "HEADER":
        return _in_header(c, args[0].lower(), args[1])
    if name == "BODY":
        return args[0].casefold() in c.body()
    if name == "TEXT":
        return args[0].casefold() in c.whole()
    raise ValueError(f"unknown search key {name}")


def _has_keyword(flags: frozenset[str], keyword: str) -> bool:
    wanted = keyword.casefold()
    return any(f.casefold() == wanted for f in flags)


def _compare(how: str, day: date, wanted: Any) -> bool:
    if how == "BEFORE":
        return day < wanted
    if how == "ON":
        return day == wanted
    return day >= wanted


def _in_header(c: Candidate, field: str, text: str) -> bool:
    values = c.fields().get(field)
    if values is None:
        return False
    wanted = text.casefold()
    return any(wanted in v.casefold() for v in values)
