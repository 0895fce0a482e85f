"""FTP's sans-I/O core: command lines in, commands out; replies as values that format themselves.

Nothing here touches a socket or the disk. The server feeds the control connection's bytes to
a :class:`CommandReader` and answers with :class:`Reply` values; the client formats commands
with :func:`format_command` and feeds the server's bytes to a :class:`ReplyReader`. The
address arguments of PORT/EPRT and the answers to PASV/EPSV, listing lines (``ls -l`` style,
MLSx facts) in both directions, MDTM times and TYPE A line-ending conversion live here too.

Specifications: RFC 959 (FTP), RFC 1123 §4.1 (its corrections), RFC 2228/4217 (FTPS),
RFC 2389 (FEAT/OPTS), RFC 2428 (EPRT/EPSV), RFC 2640 (UTF-8 names), RFC 3659 (SIZE, MDTM,
REST STREAM, MLST/MLSD), RFC 854 (the Telnet bytes a control connection may carry).

Text is UTF-8 (RFC 2640). Bytes that are not valid UTF-8 are kept as surrogates
(``errors="surrogateescape"``) when decoding and turned back into the same bytes when
encoding, so nothing a peer sent is lost or turned into an exception here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from netshell.errors import NetshellError

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_REPLY_LINE",
    "MAX_REPLY_LINES",
    "MLST_FACTS",
    "AsciiDecoder",
    "AsciiEncoder",
    "Command",
    "CommandError",
    "CommandReader",
    "FTPError",
    "FTPPermanentError",
    "FTPProtocolError",
    "FTPTemporaryError",
    "FileInfo",
    "Reply",
    "ReplyReader",
    "error_for",
    "format_command",
    "format_eprt",
    "format_epsv",
    "format_mdtm",
    "format_pasv",
    "format_port",
    "list_line",
    "mlsx_line",
    "parse_command",
    "parse_eprt",
    "parse_epsv",
    "parse_list_line",
    "parse_mdtm",
    "parse_mlsx_line",
    "parse_pasv",
    "parse_port",
]

#: the longest command line (without CRLF) a server reads; a longer one is answered 500 and
#: skipped up to its end, and the connection lives on (vsftpd reads up to 4096 as well)
MAX_COMMAND_LINE = 4096
#: the longest reply line a client reads, and the most lines in one multi-line reply
#: (a STAT listing may be long); beyond either the reply is an FTPProtocolError
MAX_REPLY_LINE = 8192
MAX_REPLY_LINES = 100_000
#: the MLSx facts this module knows, in the order they are written (RFC 3659 §7.5)
MLST_FACTS = ("type", "size", "modify", "perm", "unique")


# ---- replies


@dataclass(frozen=True, init=False)
class Reply:
    """A server's reply: a three-digit ``code`` and one or more lines of text.

    ``Reply(226, "Transfer complete.")`` is one line; ``Reply(211, ["Features:", " MDTM",
    " SIZE", "End"])`` is a multi-line reply. :meth:`to_bytes` formats it for the wire
    (RFC 959 §4.2): the first line ``211-Features:``, the middle lines as given (a middle line
    that starts with three digits gets a leading space, so no client takes it for the end),
    the last ``211 End``. Texts never hold CR or LF (a line break in ``text`` splits lines).

    >>> Reply(227, "Entering Passive Mode (127,0,0,1,4,1).").to_bytes()
    b'227 Entering Passive Mode (127,0,0,1,4,1).\\r\\n'
    >>> Reply(211, ["Features:", " SIZE", "End"]).to_bytes()
    b'211-Features:\\r\\n SIZE\\r\\n211 End\\r\\n'
    """

    code: int
    lines: tuple[str, ...]

    def __init__(self, code: int, text: str | Sequence[str]) -> None:
        raise NotImplementedError

    @property
    def text(self) -> str:
        """The lines joined by newlines (for messages and errors)."""
        raise NotImplementedError

    @property
    def kind(self) -> int:
        """The first digit: 1 preliminary, 2 done, 3 more needed, 4 try again, 5 refused."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The reply as sent: CRLF line ends, UTF-8 (surrogates back to their bytes)."""
        raise NotImplementedError


class ReplyReader:
    """A client's reader of the control connection: bytes in, complete :class:`Reply` values out.

    Handles multi-line replies (``123-`` up to the line that starts ``123 ``), lines ended by
    CRLF or a bare LF, and replies split across any number of :meth:`feed` calls. A line that
    is not a reply (no three-digit code where one must be), a line over ``max_line`` bytes or
    a reply over ``max_lines`` lines raises :class:`FTPProtocolError`.
    """

    def __init__(self, max_line: int = MAX_REPLY_LINE, max_lines: int = MAX_REPLY_LINES) -> None:
        raise NotImplementedError

    def feed(self, data: bytes) -> list[Reply]:
        """The replies that ``data`` completes, in order (often none, usually one)."""
        raise NotImplementedError


# ---- commands


class Command(NamedTuple):
    """A parsed command line: ``verb`` upper-cased (``"RETR"``), ``arg`` the rest as sent.

    ``arg`` is everything after the first space, kept exactly (a file name may start or end
    with spaces), ``""`` when there is none.
    """

    verb: str
    arg: str


class CommandError(ValueError):
    """A command line or argument the server cannot take; ``reply`` is what it answers."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


def parse_command(line: bytes) -> Command:
    """Parse one command line (without its CRLF, Telnet bytes already removed).

    The verb is 3 or 4 ASCII letters, case-insensitive (RFC 959 §5.3), followed by nothing or
    by one space and the argument; ``"XPWD"``-style verbs are letters too. Raises
    :class:`CommandError` with a 500 reply for an empty line or a verb that is not letters.

    >>> parse_command(b"retr  my file.txt ")
    Command(verb='RETR', arg=' my file.txt ')
    >>> parse_command(b"NOOP")
    Command(verb='NOOP', arg='')
    """
    raise NotImplementedError


def format_command(verb: str, arg: str = "") -> bytes:
    """A command line as a client sends it, CRLF included.

    Raises ValueError if ``verb`` is not ASCII letters or ``arg`` holds CR, LF or NUL (which
    would let a name smuggle a second command).

    >>> format_command("RETR", "a b.txt")
    b'RETR a b.txt\\r\\n'
    """
    raise NotImplementedError


class CommandReader:
    """A server's reader of the control connection: bytes in, commands (or errors) out.

    Lines end with CRLF; a bare LF is taken as well (as vsftpd and pyftpdlib do). Telnet
    sequences are removed: ``IAC IAC`` is a literal 0xFF byte, ``IAC`` + a command byte
    (IP, DM, AYT, ...) and ``IAC WILL/WONT/DO/DONT option`` vanish, so ``ABOR`` after the
    Telnet "Synch" that ftplib sends parses. A line over ``max_line`` bytes yields one
    :class:`CommandError` (reply 500, "line too long") and is skipped up to its end, however
    many feeds that takes, without holding it in memory; later lines parse normally.
    """

    def __init__(self, max_line: int = MAX_COMMAND_LINE) -> None:
        raise NotImplementedError

    def feed(self, data: bytes) -> list[Command | CommandError]:
        """What ``data`` completes, in order."""
        raise NotImplementedError

    @property
    def buffered(self) -> int:
        """Bytes held for a line not yet complete (at most ``max_line``)."""
        raise NotImplementedError


# ---- addresses: PORT / PASV (RFC 959), EPRT / EPSV (RFC 2428)


def format_pasv(host: str, port: int) -> str:
    """The text of a 227 reply: ``Entering Passive Mode (h1,h2,h3,h4,p1,p2).``

    ``host`` is a dotted IPv4 address. ValueError for anything else.
    """
    raise NotImplementedError


def parse_pasv(text: str) -> tuple[str, int]:
    """``(host, port)`` from a 227 reply's text: the first ``h1,h2,h3,h4,p1,p2`` in it,
    with or without parentheses (RFC 1123 §4.1.2.6 says to scan for the numbers).

    Raises FTPProtocolError when there is none or a number is over 255.
    """
    raise NotImplementedError


def format_port(host: str, port: int) -> str:
    """The argument of PORT: ``h1,h2,h3,h4,p1,p2``."""
    raise NotImplementedError


def parse_port(arg: str) -> tuple[str, int]:
    """``(host, port)`` from PORT's argument; CommandError (501) when it is malformed
    (not six numbers 0-255, spaces or signs included)."""
    raise NotImplementedError


def format_epsv(port: int) -> str:
    """The text of a 229 reply: ``Entering Extended Passive Mode (|||port|)``."""
    raise NotImplementedError


def parse_epsv(text: str) -> int:
    """The port from a 229 reply's text (``(|||6446|)``, any delimiter 33-126 repeated);
    FTPProtocolError when malformed."""
    raise NotImplementedError


def format_eprt(host: str, port: int) -> str:
    """The argument of EPRT: ``|1|132.235.1.2|6275|`` or ``|2|::1|6275|``."""
    raise NotImplementedError


def parse_eprt(arg: str) -> tuple[int, str, int]:
    """``(family, host, port)`` from EPRT's argument; family 1 (IPv4) or 2 (IPv6).

    CommandError with 522 (``Network protocol not supported, use (1,2)``) for another
    family, 501 for anything malformed (bad delimiter, address not of its family, port not
    1-65535).
    """
    raise NotImplementedError


# ---- listings


@dataclass(frozen=True)
class FileInfo:
    """One directory entry, as listed (server side) or as parsed from a listing (client side).

    ``mode`` is an ``st_mode`` (type and permission bits); ``mtime`` seconds since the epoch
    (UTC). ``unique`` is MLSx's unique fact (server: ``"{dev:x}U{ino:x}"``). ``facts`` holds
    every MLSx fact a parsed line carried, lower-cased names, values as sent. Fields a parsed
    listing does not give are left at their defaults (``size`` -1 when unknown).
    """

    name: str
    is_dir: bool = False
    size: int = -1
    mtime: float | None = None
    mode: int = 0
    nlink: int = 1
    owner: str = "owner"
    group: str = "group"
    is_link: bool = False
    target: str | None = None
    unique: str | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


def list_line(info: FileInfo, now: float) -> str:
    """One line of a LIST answer, as ``ls -l`` writes it (what every client parses).

    ``drwxr-xr-x   2 owner    group        4096 Dec 05 08:17 name`` — the time for entries
    modified within the 6 months before ``now`` (or in the future by under an hour), else
    the year (``Jan 01  2025``), as ``ls`` does; a symlink is ``name -> target``. Month
    names are English whatever the locale. No CRLF.
    """
    raise NotImplementedError


def mlsx_line(info: FileInfo, facts: Iterable[str], perm: str) -> str:
    """One MLSD line or MLST entry (RFC 3659 §7): ``type=file;size=12;modify=...; name``.

    Writes the facts named in ``facts`` (a subset of :data:`MLST_FACTS`) that apply, in
    :data:`MLST_FACTS` order: ``type`` is ``file``, ``dir`` (``cdir``/``pdir`` are the
    server's to give), ``size`` only for files, ``modify`` as ``YYYYMMDDHHMMSS`` UTC,
    ``perm`` as given (``"adfrw"``, ``"elcmp"``...), ``unique`` when known. No CRLF, no
    leading space (MLST's reply adds one).
    """
    raise NotImplementedError


def parse_mlsx_line(line: str) -> FileInfo:
    """A FileInfo from an MLSD line (``facts; name``); facts kept in ``facts``.

    ``type`` sets ``is_dir`` (``dir``, ``cdir``, ``pdir``), ``size`` (or ``sizd``) the size,
    ``modify`` the mtime (fractions allowed), ``unique`` the unique fact, ``unix.mode`` the
    mode. FTPProtocolError when there is no ``"; "`` or a fact lacks its ``=``.
    """
    raise NotImplementedError


def parse_list_line(line: str, now: float | None = None) -> FileInfo | None:
    """A FileInfo from one LIST line, Unix (``ls -l``) or DOS/IIS style; None if neither.

    Unix: permissions (``d``/``-``/``l``...), links, owner, group (either may be absent,
    as some servers write), size, ``Mon DD HH:MM`` (a year guessed from ``now``: the last
    12 months) or ``Mon DD YYYY``, name (spaces kept; ``name -> target`` for a link).
    DOS: ``MM-DD-YY  HH:MMAM  <DIR>  name`` or with a size instead of ``<DIR>``
    (2- or 4-digit years, 12- or 24-hour times). ``total N`` lines give None.
    """
    raise NotImplementedError


def format_mdtm(t: float) -> str:
    """A time as MDTM and MLSx write it: ``YYYYMMDDHHMMSS`` in UTC."""
    raise NotImplementedError


def parse_mdtm(text: str) -> float:
    """Seconds since the epoch from ``YYYYMMDDHHMMSS[.sss]`` (UTC); ValueError otherwise."""
    raise NotImplementedError


# ---- TYPE A (RFC 959 §3.1.1.1): the wire's line end is CRLF


class AsciiEncoder:
    """Server RETR / client STOR in TYPE A: local ``\\n`` becomes ``\\r\\n`` on the wire.

    A ``\\r\\n`` already in the data stays as it is (no ``\\r\\r\\n``), also when the
    ``\\r`` and ``\\n`` arrive in different chunks.
    """

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def flush(self) -> bytes:
        """What is held back at the end of the data."""
        raise NotImplementedError


class AsciiDecoder:
    """Server STOR / client RETR in TYPE A: the wire's ``\\r\\n`` becomes ``\\n``.

    A lone ``\\r`` not followed by ``\\n`` is kept; a ``\\r`` at the end of one chunk waits
    for the next (or :meth:`flush`).
    """

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def flush(self) -> bytes:
        raise NotImplementedError


# ---- the client's errors


class FTPError(NetshellError):
    """A reply that refused or failed a request; ``code`` and ``reply`` say which.

    Subclasses by the reply's first digit: :class:`FTPTemporaryError` (4xx: may work if
    tried again) and :class:`FTPPermanentError` (5xx). :class:`FTPProtocolError` is a reply
    that breaks FTP itself (malformed, unexpected); its ``code`` is the reply's or 0.
    ``str()`` is one line: ``550 No such file or directory: /x.txt``.
    """

    def __init__(self, reply: Reply | None, message: str | None = None) -> None:
        self.reply = reply
        self.code = reply.code if reply is not None else 0
        text = message if message is not None else (
            f"{reply.code} {' '.join(line.strip() for line in reply.lines)}" if reply else "")
        super().__init__(text)


class FTPTemporaryError(FTPError):
    """A 4xx reply: refused for now (busy, a transfer failed, try again)."""


class FTPPermanentError(FTPError):
    """A 5xx reply: refused (no such file, no permission, not logged in, syntax)."""


class FTPProtocolError(FTPError):
    """The server's answer breaks FTP (not a reply, or not the one expected)."""


def error_for(reply: Reply) -> FTPError:
    """The FTPError subclass that fits ``reply`` (4xx, 5xx, else FTPProtocolError)."""
    raise NotImplementedError
