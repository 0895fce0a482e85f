"""SMTP's sans-I/O core: replies, command arguments, and the message body in both directions.

Nothing here touches a socket. The server splits MAIL/RCPT arguments with
:func:`parse_mail` / :func:`parse_rcpt`, reads a DATA body with a :class:`DataReader`
(dot-unstuffing, limits, and closed against SMTP smuggling) and answers with
:class:`Reply` values; the client prepares a body with :func:`dot_stuff` and reads
replies with a :class:`ReplyReader`.

Specifications: RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
RFC 3030 (CHUNKING), RFC 2920 (PIPELINING), RFC 2034 and RFC 3463 (enhanced status codes),
RFC 3207 (STARTTLS), RFC 4954 (AUTH).

**Smuggling.** Only ``<CRLF>.<CRLF>`` ends a DATA body (RFC 5321 §4.1.1.4: a bare CR or
bare LF is no line end). A bare CR or LF inside the body makes the :class:`DataReader`
refuse the whole message (``bad`` says which), or, with ``bare="normalize"``, become CRLF
in the stored message, but it never ends the body: ``\\n.\\n``, ``\\r.\\r`` and
``\\r\\n.\\n`` are data, so a second message hidden behind them is never taken for one.

>>> reader = DataReader()
>>> reader.feed(b"Subject: hi\\r\\n\\r\\n..dot\\r\\n.\\r\\nQUIT\\r\\n")
b'QUIT\\r\\n'
>>> reader.content()
b'Subject: hi\\r\\n\\r\\n.dot\\r\\n'
>>> dot_stuff(b".dot\\nend")
b'..dot\\r\\nend\\r\\n.\\r\\n'
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from netshell.errors import NetshellError

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_REPLY_LINE",
    "MAX_REPLY_LINES",
    "DataReader",
    "Reply",
    "ReplyReader",
    "SMTPError",
    "SMTPPermanentError",
    "SMTPProtocolError",
    "SMTPTemporaryError",
    "check_bare",
    "dot_stuff",
    "error_for",
    "is_domain",
    "is_mailbox",
    "normalize_line_ends",
    "parse_mail",
    "parse_params",
    "parse_path",
    "parse_rcpt",
    "reply_bytes",
]

#: the longest command line the server reads (without CRLF). RFC 5321 §4.5.3.1.4 sets 512
#: octets and lets extensions raise it (SIZE, AUTH=, SMTPUTF8 addresses); §4.5.3.1 asks for
#: as few limits as possible, so this is generous. Longer: ``500 5.5.2``.
MAX_COMMAND_LINE = 4096
#: the longest line of an AUTH exchange (RFC 4954 §4: at least 12288 octets); longer:
#: ``500 5.5.6``
MAX_AUTH_LINE = 12288
#: the longest reply line, and the most lines in one reply, the client reads
MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 1000

_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]|$)(.*)", re.DOTALL)
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: +|$)")


# ---- errors


class SMTPError(NetshellError):
    """A reply that refused a request, or a broken exchange; ``code``, ``enhanced`` and
    ``reply`` say which (``code`` 0 and ``reply`` None when there was no reply).

    :class:`SMTPTemporaryError` is a 4xx (try again later), :class:`SMTPPermanentError` a
    5xx; :class:`SMTPProtocolError` a reply that breaks SMTP. ``str()`` is one line:
    ``550 5.1.1 No such user``. A ``deliver`` callable of the server may raise one to have
    its reply sent to the client instead of ``451 4.3.0``.

    >>> str(SMTPPermanentError(Reply(550, "No such user", "5.1.1")))
    '550 5.1.1 No such user'
    """

    def __init__(self, reply: Reply | None, message: str | None = None) -> None:
        self.reply = reply
        self.code = reply.code if reply is not None else 0
        self.enhanced = reply.enhanced if reply is not None else None
        self.text = reply.text if reply is not None else ""
        super().__init__(message if message is not None else (str(reply) if reply else ""))


class SMTPTemporaryError(SMTPError):
    """A 4xx reply: refused for now (busy, a local error, too many recipients)."""


class SMTPPermanentError(SMTPError):
    """A 5xx reply: refused (no such user, too big, syntax, policy)."""


class SMTPProtocolError(SMTPError):
    """The peer's answer breaks SMTP (not a reply, or not the one expected)."""


def error_for(reply: Reply, message: str | None = None) -> SMTPError:
    """The SMTPError subclass that fits ``reply`` (4xx, 5xx, else SMTPProtocolError)."""
    if reply.code // 100 == 4:
        return SMTPTemporaryError(reply, message)
    if reply.code // 100 == 5:
        return SMTPPermanentError(reply, message)
    return SMTPProtocolError(reply, message)


# ---- replies


@dataclass(frozen=True)
class Reply:
    """A reply: a three-digit ``code``, its ``text`` (lines joined by ``\\n``) and the
    enhanced status code (RFC 3463: ``"5.3.4"``) or None.

    :meth:`to_bytes` writes it for the wire (RFC 5321 §4.2.1): every line but the last as
    ``code-``, the last as ``code``; with an enhanced code each line's text starts with it
    (RFC 2034 §4). Texts never hold CR or LF of their own (a line break splits lines).

    >>> Reply(250, "OK", "2.0.0").to_bytes()
    b'250 2.0.0 OK\\r\\n'
    >>> Reply(214, "Commands:\\nHELO EHLO", "2.0.0").to_bytes()
    b'214-2.0.0 Commands:\\r\\n214 2.0.0 HELO EHLO\\r\\n'
    """

    code: int
    text: str = ""
    enhanced: str | None = None
    lines: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"an SMTP reply code is 200-599, not {self.code!r}")
        if self.enhanced is not None and (
            not _ENHANCED.fullmatch(self.enhanced) or self.enhanced[0] != str(self.code)[0]
        ):
            raise ValueError(f"enhanced status code {self.enhanced!r} does not fit {self.code}")
        object.__setattr__(self, "lines", tuple(re.split(r"\r\n|\r|\n", self.text)))

    def to_bytes(self) -> bytes:
        prefix = f"{self.enhanced} " if self.enhanced else ""
        lines = self.lines
        last = len(lines) - 1
        # the separator stays even before an empty text: RFC 4954's empty challenge is "334 "
        out = [f"{self.code}{' ' if i == last else '-'}{prefix}{line}\r\n"
               for i, line in enumerate(lines)]
        return "".join(out).encode("utf-8", "surrogateescape")

    @property
    def ok(self) -> bool:
        """A 2xx or 3xx reply."""
        return self.code < 400

    def __str__(self) -> str:
        text = " ".join(line.strip() for line in self.lines if line.strip())
        head = f"{self.code} {self.enhanced}" if self.enhanced else str(self.code)
        return f"{head} {text}" if text else head


#: (code, enhanced) pairs a Reply has checked already (bounded: a deliver callable's
#: SMTPError may bring any)
_CHECKED: set[tuple[int, str | None]] = set()


def reply_bytes(code: int, text: str, enhanced: str | None = None) -> bytes:
    """``Reply(code, text, enhanced).to_bytes()``, made without a Reply for a one-line text
    whose code pair has been checked before (the server's hot path: four replies a
    message). Raises ValueError as Reply does.

    >>> reply_bytes(250, "OK", "2.0.0"), reply_bytes(354, "Go on")
    (b'250 2.0.0 OK\\r\\n', b'354 Go on\\r\\n')
    """
    if (code, enhanced) not in _CHECKED or "\r" in text or "\n" in text:
        reply = Reply(code, text, enhanced)
        if len(_CHECKED) < 512:
            _CHECKED.add((code, enhanced))
        return reply.to_bytes()
    if enhanced:
        return f"{code} {enhanced} {text}\r\n".encode("utf-8", "surrogateescape")
    return f"{code} {text}\r\n".encode("utf-8", "surrogateescape")


class ReplyReader:
    """The client's reader of replies: bytes in, :class:`Reply` values out, in order.

    A line longer than :data:`MAX_REPLY_LINE`, a reply of more than :data:`MAX_REPLY_LINES`
    lines, or a line that is no reply line raises :class:`SMTPProtocolError`. Enhanced codes
    are split from the text when every line carries the same one.

    >>> ReplyReader().feed(b"250-mx.test\\r\\n250-SIZE 100\\r\\n250 8BITMIME\\r\\n")
    [Reply(code=250, text='mx.test\\nSIZE 100\\n8BITMIME', enhanced=None)]
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[str] = []
        self._code = 0

    def pending(self) -> bool:
        """Whether part of a reply has been read (bytes with no line end yet, or lines of a
        multi-line reply not ended)."""
        return bool(self._buffer or self._lines)

    def feed(self, data: bytes) -> list[Reply]:
        buffer = self._buffer + data
        replies: list[Reply] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > MAX_REPLY_LINE:
                raise SMTPProtocolError(None, f"a reply line of {len(line):,} bytes")
            m = _REPLY_LINE.fullmatch(line)
            if m is None:
                shown = line[:80].decode("utf-8", "replace")
                raise SMTPProtocolError(None, f"not an SMTP reply line: {shown!r}")
            code = int(m.group(1))
            if self._lines and code != self._code:
                raise SMTPProtocolError(
                    None, f"a multi-line reply changed its code from {self._code} to {code}"
                )
            self._code = code
            self._lines.append(m.group(3).decode("utf-8", "surrogateescape"))
            if len(self._lines) > MAX_REPLY_LINES:
                raise SMTPProtocolError(None, f"a reply of over {MAX_REPLY_LINES} lines")
            if m.group(2) != b"-":
                replies.append(_make_reply(code, self._lines))
                self._lines = []
        rest = buffer[start:]
        if len(rest) > MAX_REPLY_LINE + 2:
            raise SMTPProtocolError(None, f"a reply line of over {MAX_REPLY_LINE:,} bytes")
        self._buffer = rest
        return replies


def _make_reply(code: int, lines: Sequence[str]) -> Reply:
    enhanced = None
    if str(code)[0] in "245":
        found = [_ENHANCED.match(line) for line in lines]
        first = found[0]
        if (first is not None and first.group(1) == str(code)[0]
                and all(m is not None and m.group(0).strip() == first.group(0).strip()
                        for m in found)):
            enhanced = first.group(0).strip()
            lines = [line[m.end():] for line, m in zip(lines, found, strict=True) if m]
    return Reply(code, "\n".join(lines), enhanced)


# ---- addresses and parameters (RFC 5321 §4.1.2, RFC 6531 §3.3)

_UTF8 = "\u0080-\U0010ffff"
_ATEXT = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~"
_DOT_STRING = f"[{_ATEXT}{_UTF8}]+(?:\\.[{_ATEXT}{_UTF8}]+)*"
_QUOTED = f'"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e{_UTF8}]|\\\\[\\x20-\\x7e])*"'
_SUB_DOMAIN = f"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9\\-{_UTF8}]*[A-Za-z0-9{_UTF8}])?"
_DOMAIN = f"{_SUB_DOMAIN}(?:\\.{_SUB_DOMAIN})*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_MAILBOX = re.compile(f"({_DOT_STRING}|{_QUOTED})@({_DOMAIN}|{_LITERAL})")
_ROUTE = re.compile(f"@(?:{_DOMAIN}|{_LITERAL})(?:,@(?:{_DOMAIN}|{_LITERAL}))*:")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_VALUE = re.compile(f"[\\x21-\\x3c\\x3e-\\x7e{_UTF8}]+")
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9\-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")


def _literal_ok(literal: str) -> bool:
    inner = literal[1:-1]
    if inner[:5].lower() == "ipv6:":
        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return False
        return True
    try:
        ipaddress.IPv4Address(inner)
    except ValueError:
        return _GENERAL_LITERAL.fullmatch(inner) is not None and ":" in inner
    return True


def is_mailbox(address: str) -> bool:
    """Whether ``address`` is a Mailbox of RFC 5321 (``local@domain``; a UTF-8 local part
    and U-label domain count too: :func:`parse_path` checks SMTPUTF8 apart).

    >>> is_mailbox("alice@example.org"), is_mailbox('"a b"@[127.0.0.1]'), is_mailbox("a@b@c")
    (True, True, False)
    """
    m = _MAILBOX.fullmatch(address)
    if m is None:
        return False
    local, domain = m.group(1), m.group(2)
    if _octets(local) > 64:
        return False
    if domain.startswith("["):
        return _literal_ok(domain)
    return _octets(domain) <= 255 and (len(domain) <= 63 or all(
        len(label) <= 63 for label in domain.split(".")
    ))


def _octets(text: str) -> int:
    """The length of ``text`` in UTF-8."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def is_domain(text: str) -> bool:
    """Whether ``text`` is a Domain or an address literal of RFC 5321 §4.1.2 (what HELO and
    EHLO should name).

    >>> is_domain("mx.example.org"), is_domain("[192.0.2.1]"), is_domain("my laptop")
    (True, True, False)
    """
    if text.startswith("["):
        return re.fullmatch(_LITERAL, text) is not None and _literal_ok(text)
    return (re.fullmatch(_DOMAIN, text) is not None
            and len(text.encode("utf-8", "surrogateescape")) <= 255)


class PathError(ValueError):
    """A MAIL or RCPT argument that does not parse; ``reply`` is what to answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def parse_path(path: str, *, null_ok: bool, postmaster_ok: bool, what: str) -> str:
    """The address inside ``<...>`` (a source route dropped, RFC 5321 §4.1.1.3, C.);
    ``""`` for the null path ``<>`` when ``null_ok``; bare ``Postmaster`` when
    ``postmaster_ok``. Raises :class:`PathError` with ``501 5.1.7`` (sender) or
    ``501 5.1.3`` (recipient) when it is not one.

    >>> parse_path("<@relay.test:bob@example.org>", null_ok=False, postmaster_ok=False,
    ...            what="recipient")
    'bob@example.org'
    """
    # the paths parsed lately, and what they gave: a server sees the same few addresses
    # again and again (no refusals kept: they raise, and their reply names ``what``)
    key = (path, null_ok, postmaster_ok)
    found = _PATHS.get(key)
    if found is not None:
        return found
    address = _parse_path(path, null_ok, postmaster_ok, what)
    if len(_PATHS) >= _PATHS_KEPT:
        _PATHS.clear()
    _PATHS[key] = address
    return address


#: parse_path's memory of what it parsed: (path, null_ok, postmaster_ok) -> address
_PATHS: dict[tuple[str, bool, bool], str] = {}
_PATHS_KEPT = 1024


def _parse_path(path: str, null_ok: bool, postmaster_ok: bool, what: str) -> str:
    detail = "5.1.7" if what == "sender" else "5.1.3"
    if not (path.startswith("<") and path.endswith(">")) or len(path) < 2:
        raise PathError(Reply(501, f"Syntax error: the {what} address goes in <...>", detail))
    inner = path[1:-1]
    if inner == "":
        if null_ok:
            return ""
        raise PathError(Reply(501, f"The null address <> is no {what}", detail))
    m = _ROUTE.match(inner)
    if m is not None:
        inner = inner[m.end():]
    if postmaster_ok and inner.lower() == "postmaster":
        return inner
    if _octets(path) > 256 or not is_mailbox(inner):
        raise PathError(Reply(501, f"Bad {what} address syntax", detail))
    return inner


def parse_params(text: str) -> dict[str, str | None]:
    """``KEY=VALUE`` and ``KEY`` parameters after a path (keys upper-cased), in order.

    Raises :class:`PathError` (``501 5.5.4``) on a malformed or repeated one.

    >>> parse_params("SIZE=1000 BODY=8BITMIME SMTPUTF8")
    {'SIZE': '1000', 'BODY': '8BITMIME', 'SMTPUTF8': None}
    """
    params: dict[str, str | None] = {}
    for item in text.split(" "):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not _KEYWORD.fullmatch(key) or (eq and not _VALUE.fullmatch(value)):
            raise PathError(Reply(501, f"Malformed parameter {item[:40]!r}", "5.5.4"))
        upper = key.upper()
        if upper in params:
            raise PathError(Reply(501, f"Parameter {upper} given twice", "5.5.4"))
        params[upper] = value if eq else None
    return params


def _split_arg(arg: str, keyword: str, what: str) -> tuple[str, str]:
    detail = "5.5.4"
    if arg[: len(keyword)].upper() != keyword:
        raise PathError(Reply(501, f"Syntax: {'MAIL FROM' if what == 'sender' else 'RCPT TO'}"
                              ":<address> [parameters]", detail))
    rest = arg[len(keyword):].lstrip(" ")
    if rest.startswith("<"):
        # a quoted local part may hold '>' and spaces: find the '>' that closes the path
        end = _path_end(rest)
        if end < 0:
            raise PathError(Reply(501, f"Syntax error: the {what} address has no closing >",
                                  "5.1.7" if what == "sender" else "5.1.3"))
        return rest[: end + 1], rest[end + 1:]
    path, _, params = rest.partition(" ")
    return path, " " + params if params else ""


def _path_end(text: str) -> int:
    if '"' not in text:
        return text.find(">", 1)  # no quoted part: the first '>' closes the path
    quoted = False
    i = 1
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ">":
            return i
        i += 1
    return -1


def parse_mail(arg: str) -> tuple[str, dict[str, str | None]]:
    """``FROM:<path> params`` (MAIL's argument) -> (sender, params); ``""`` is the null
    sender. Raises :class:`PathError` carrying the reply (501).

    >>> parse_mail("FROM:<alice@example.org> SIZE=10")
    ('alice@example.org', {'SIZE': '10'})
    >>> parse_mail("FROM:<>")
    ('', {})
    """
    path, rest = _split_arg(arg, "FROM:", "sender")
    if rest and not rest.startswith(" "):
        raise PathError(Reply(501, "Syntax error after the sender address", "5.5.4"))
    return parse_path(path, null_ok=True, postmaster_ok=False, what="sender"), parse_params(rest)


def parse_rcpt(arg: str) -> tuple[str, dict[str, str | None]]:
    """``TO:<path> params`` (RCPT's argument) -> (recipient, params); ``<Postmaster>`` with
    no domain is allowed (RFC 5321 §4.1.1.3). Raises :class:`PathError` (501).

    >>> parse_rcpt("TO:<Postmaster>")
    ('Postmaster', {})
    """
    path, rest = _split_arg(arg, "TO:", "recipient")
    if rest and not rest.startswith(" "):
        raise PathError(Reply(501, "Syntax error after the recipient address", "5.5.4"))
    return parse_path(path, null_ok=False, postmaster_ok=True, what="recipient"), parse_params(
        rest
    )


# ---- message bodies

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def check_bare(data: bytes) -> str | None:
    """``"LF"`` or ``"CR"`` for the first bare LF or bare CR in ``data``, None if there is
    none (every CR and LF is part of a CRLF).

    >>> check_bare(b"a\\r\\nb"), check_bare(b"a\\nb"), check_bare(b"a\\rb")
    (None, 'LF', 'CR')
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\r") == crlf and data.count(b"\n") == crlf:
        return None
    m = _BARE.search(data)
    assert m is not None
    return "CR" if m.group(0) == b"\r" else "LF"


def _no_bare(data: bytes) -> bool:
    """Whether every CR and LF in ``data`` is part of a CRLF (:func:`check_bare` is None),
    cheaper than counting CR, LF and CRLF apart: ``splitlines`` breaks at every CRLF, bare
    CR and bare LF, so ending with a line end the data holds as many breaks as pieces, and
    all of them are CRLFs exactly when they took two octets each."""
    if not data.endswith(b"\r\n"):
        return check_bare(data) is None
    lines = data.splitlines()
    return len(data) - len(b"".join(lines)) == 2 * len(lines)


def _lines_within(region: bytes, limit: int) -> bool:
    """Whether no line of ``region`` (whole lines, each ending with CRLF) is longer than
    ``limit`` octets with its CRLF. Each step takes the last CRLF within ``limit`` octets
    of a line start: every line up to it fits, so a region of short lines costs a search
    per ``limit`` octets, not one per line."""
    if len(region) <= limit:
        return True
    at = 0
    size = len(region)
    while at < size:
        crlf = region.rfind(b"\r\n", at, at + limit)
        if crlf < 0:
            return False
        at = crlf + 2
    return True


def normalize_line_ends(data: bytes) -> bytes:
    """Every bare CR and bare LF made a CRLF; CRLF left alone.

    >>> normalize_line_ends(b"a\\nb\\rc\\r\\n")
    b'a\\r\\nb\\r\\nc\\r\\n'
    """
    if check_bare(data) is None:
        return data
    return _BARE.sub(b"\r\n", data)


def dot_stuff(data: bytes) -> bytes:
    """A message made ready for DATA: line ends made CRLF, a final CRLF added if missing,
    every line starting with ``.`` given one more (RFC 5321 §4.5.2), and ``.CRLF`` after.

    >>> dot_stuff(b"a\\r\\n.\\r\\n")
    b'a\\r\\n..\\r\\n.\\r\\n'
    >>> dot_stuff(b"")
    b'.\\r\\n'
    """
    data = normalize_line_ends(data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class DataReader:
    """Reads one DATA body: bytes in (after the 354), the message out, and what is wrong.

    :meth:`feed` takes the bytes as they come and returns None while the body goes on,
    or, once ``<CRLF>.<CRLF>`` ended it, the bytes after the end (pipelined commands).
    Lines are unstuffed (a leading ``.`` dropped). Nothing is kept once something is
    wrong; ``bad`` then says what, first seen first:

    - ``"size"``: more than ``max_size`` octets (None: no limit);
    - ``"line"``: a line longer than ``max_line`` octets with its CRLF (None: no limit;
      RFC 5321 §4.5.3.1.6 sets 1000);
    - ``"LF"`` / ``"CR"``: a bare LF or bare CR (with ``bare="normalize"`` they become CRLF
      in the message instead, and are not bad).

    Only ``<CRLF>.<CRLF>`` ends the body, whatever ``bare`` says (a line made of ``.``
    right after the 354 too: its CRLF is the DATA command's). ``size`` counts the octets
    of the message as it is kept.
    """

    def __init__(
        self, max_size: int | None = None, max_line: int | None = 1000, bare: str = "refuse"
    ) -> None:
        if bare not in ("refuse", "normalize"):
            raise ValueError(f"bare is 'refuse' or 'normalize', not {bare!r}")
        self.max_size = max_size
        self.max_line = max_line
        self.normalize = bare == "normalize"
        self.size = 0
        self.bad: str | None = None
        self.done = False
        self._chunks: list[bytes] = []
        #: the bytes of the line being read (no CRLF seen yet), and whether some of it has
        #: been dropped already (a too-long line: only its last byte is kept, for a CR)
        self._partial = b""
        self._line_cut = False

    def _fail(self, why: str) -> None:
        if self.bad is None:
            self.bad = why
        self._chunks = []

    def feed(self, data: bytes) -> bytes | None:
        if self.done:
            raise RuntimeError("this DATA body has ended already")
        partial = self._partial
        buffer = partial + data if partial else data
        # The kept partial line holds no CRLF: an end or a CRLF can only begin at its last
        # byte or after, so the searches start there (a long line, fed piece by piece, is
        # not searched again and again)
        start = max(len(partial) - 1, 0)
        if not self._line_cut and buffer.startswith(b".\r\n"):
            # the end at a line start that no CRLF in this buffer shows: the body's start,
            # or after the CRLF that ended the previous feed (a kept partial line always
            # starts at a line start)
            self._end()
            return buffer[3:]
        # One search finds both the end and the first dot-stuffed line: the first
        # "<CRLF>." is the end when "<CRLF>" follows it, and the region before it holds no
        # dot at a line start (the fast path of _take needs no other look for one)
        dot = buffer.find(b"\r\n.", start)
        if dot >= 0 and buffer.startswith(b"\r\n", dot + 3):
            self._take(buffer[: dot + 2], True)
            self._end()
            return buffer[dot + 5:]
        if dot >= 0:
            end = buffer.find(b"\r\n.\r\n", dot)
            if end >= 0:
                self._take(buffer[: end + 2], False)
                self._end()
                return buffer[end + 5:]
        last = buffer.rfind(b"\r\n", start)
        if last < 0:
            self._keep_partial(buffer)
            return None
        self._take(buffer[: last + 2], dot < 0)
        self._line_cut = False
        self._keep_partial(buffer[last + 2:])
        return None

    def _end(self) -> None:
        self._partial = b""
        self._line_cut = False
        self.done = True

    def _keep_partial(self, tail: bytes) -> None:
        """Keep the start of a line whose CRLF has not come, within the limits."""
        length = len(tail)
        # the line's content is at least length - 2 (a stuffed dot, half a CRLF)
        if self._line_cut or (self.max_line is not None and length > self.max_line):
            self._fail("line")
        elif self.max_size is not None and self.size + length > self.max_size:
            self._fail("size")
        else:
            self._partial = tail
            return
        # keep the last byte only: a CR there may start the CRLF that ends the line
        self._partial = tail[-1:]
        self._line_cut = True

    def _take(self, region: bytes, dotless: bool) -> None:
        """Whole lines, each ending in CRLF (the first may continue a cut line);
        ``dotless``: the region is known to hold no ``<CRLF>.``."""
        if not region:
            return
        cut = self._line_cut
        if (not cut and self.bad is None and not region.startswith(b".")
                and (dotless or b"\r\n." not in region) and _no_bare(region)
                and (self.max_line is None or _lines_within(region, self.max_line))):
            self._keep(region)
            return
        self._take_lines(region, cut)

    def _take_lines(self, region: bytes, cut: bool) -> None:
        lines = region.split(b"\r\n")
        lines.pop()  # the region ends with CRLF: the last piece is empty
        for i, line in enumerate(lines):
            if i == 0 and cut:
                # the rest of a line already known to be too long: only its bare bytes
                # would still matter, and the message is refused already
                continue
            if line.startswith(b"."):
                line = line[1:]
            if self.max_line is not None and len(line) + 2 > self.max_line:
                self._fail("line")
            bare = check_bare(line)
            if bare is not None:
                if self.normalize:
                    line = normalize_line_ends(line)
                else:
                    self._fail(bare)
            if self.bad is None:
                self._keep(line + b"\r\n")
            else:
                self.size += len(line) + 2

    def _keep(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.max_size is not None and self.size > self.max_size:
            self._fail("size")
            return
        if self.bad is None:
            self._chunks.append(piece)

    def content(self) -> bytes:
        """The message (unstuffed), once the body has ended with nothing bad."""
        if not self.done:
            raise RuntimeError("the DATA body has not ended yet")
        if self.bad is not None:
            raise RuntimeError(f"the DATA body was refused ({self.bad})")
        return b"".join(self._chunks)
