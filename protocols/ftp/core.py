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

import ipaddress
import math
import re
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from netshell.errors import NetshellError

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_REPLY_BYTES",
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
#: the most bytes one multi-line reply may hold (a hostile server could otherwise make a
#: client keep MAX_REPLY_LINES lines of MAX_REPLY_LINE bytes: 800 MB)
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: the MLSx facts this module knows, in the order they are written (RFC 3659 §7.5)
MLST_FACTS = ("type", "size", "modify", "perm", "unique")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_REPLY_LINE = re.compile(r"([1-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)
_VERB = re.compile(rb"[A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")
_PASV_NUMBERS = re.compile(r"(?<![0-9])" + r"\s*,\s*".join([r"([0-9]+)"] * 6) + r"(?![0-9])")
_PORT_ARG = re.compile(r",".join([r"([0-9]{1,3})"] * 6))
_EPSV_ANSWER = re.compile(r"\(([!-~])\1\1([0-9]{1,5})\1\)")
_MDTM = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})(\.[0-9]+)?")

# Telnet (RFC 854): IAC starts a command; WILL/WONT/DO/DONT take one option byte more
_IAC = 255
_TN_DATA, _TN_IAC, _TN_OPTION = 0, 1, 2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.lower(): number for number, name in enumerate(_MONTHS, 1)}
#: ls's "recent": half of an average Gregorian year (GNU coreutils' 31556952 / 2 seconds)
_SIX_MONTHS = 31556952 // 2


# ---- replies


@dataclass(frozen=True, init=False)
class Reply:
    """A server's reply: a three-digit ``code`` and one or more lines of text.

    ``Reply(226, "Transfer complete.")`` is one line; ``Reply(211, ["Features:", " MDTM",
    " SIZE", "End"])`` is a multi-line reply. :meth:`to_bytes` formats it for the wire
    (RFC 959 §4.2): the first line ``211-Features:``, the middle lines as given (a middle line
    that starts with three digits gets a leading space, so no client takes it for the end),
    the last ``211 End``. Texts never hold CR or LF (a line break in ``text`` splits lines).
    RFC 959 asks for the padding only before a middle line that starts with a number; any
    leading digit gets it here, which is what the reader of the other side can least misread.
    ``code`` is 100-599 (ValueError otherwise); an empty ``text`` is one empty line.

    >>> Reply(227, "Entering Passive Mode (127,0,0,1,4,1).").to_bytes()
    b'227 Entering Passive Mode (127,0,0,1,4,1).\\r\\n'
    >>> Reply(211, ["Features:", " SIZE", "End"]).to_bytes()
    b'211-Features:\\r\\n SIZE\\r\\n211 End\\r\\n'
    """

    code: int
    lines: tuple[str, ...]

    def __init__(self, code: int, text: str | Sequence[str]) -> None:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise ValueError(f"a reply code is a number from 100 to 599, not {code!r}")
        pieces = [text] if isinstance(text, str) else list(text)
        lines: list[str] = []
        for piece in pieces:
            lines.extend(_LINE_BREAK.split(piece))
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "lines", tuple(lines) or ("",))

    @property
    def text(self) -> str:
        """The lines joined by newlines (for messages and errors)."""
        return "\n".join(self.lines)

    @property
    def kind(self) -> int:
        """The first digit: 1 preliminary, 2 done, 3 more needed, 4 try again, 5 refused."""
        return self.code // 100

    def to_bytes(self) -> bytes:
        """The reply as sent: CRLF line ends, UTF-8 (surrogates back to their bytes)."""
        code = str(self.code)
        lines = self.lines
        if len(lines) == 1:
            out = f"{code} {lines[0]}\r\n"
        else:
            middle = "".join(
                (" " + line if line[:1].isdigit() else line) + "\r\n" for line in lines[1:-1]
            )
            out = f"{code}-{lines[0]}\r\n{middle}{code} {lines[-1]}\r\n"
        return out.encode("utf-8", "surrogateescape")


class ReplyReader:
    """A client's reader of the control connection: bytes in, complete :class:`Reply` values out.

    Handles multi-line replies (``123-`` up to the line that starts ``123 ``), lines ended by
    CRLF or a bare LF, and replies split across any number of :meth:`feed` calls. A line that
    is not a reply (no three-digit code where one must be), a line over ``max_line`` bytes, or
    a reply over ``max_lines`` lines or ``max_bytes`` bytes raises :class:`FTPProtocolError`.
    Middle lines are kept as sent, except that one starting with the reply's own ``code-``
    (as ProFTPD and IIS write every line) loses that prefix.

    >>> reader = ReplyReader()
    >>> reader.feed(b"230-Welcome.\\r\\n230-Be nice.\\r\\n230 Logged")
    []
    >>> reader.feed(b" in.\\r\\n")
    [Reply(code=230, lines=('Welcome.', 'Be nice.', 'Logged in.'))]
    """

    def __init__(self, max_line: int = MAX_REPLY_LINE, max_lines: int = MAX_REPLY_LINES,
                 max_bytes: int = MAX_REPLY_BYTES) -> None:
        self.max_line = max_line
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no LF
        self._code: str | None = None  # the code of the multi-line reply being read
        self._lines: list[str] = []
        self._size = 0  # bytes of the multi-line reply being read

    def feed(self, data: bytes) -> list[Reply]:
        """The replies that ``data`` completes, in order (often none, usually one)."""
        buffer = self._buffer
        buffer += data
        replies: list[Reply] = []
        start = 0
        while True:
            end = buffer.find(b"\n", max(start, self._scanned))
            if end < 0:
                break
            stop = end - 1 if end > start and buffer[end - 1] == 0x0D else end
            if stop - start > self.max_line:
                raise FTPProtocolError(None, f"reply line longer than {self.max_line} bytes")
            line = bytes(buffer[start:stop]).decode("utf-8", "surrogateescape")
            start = end + 1
            self._scanned = start
            reply = self._line(line)
            if reply is not None:
                replies.append(reply)
        del buffer[:start]
        self._scanned = len(buffer)
        # a CR may still be followed by its LF: allow one byte beyond the longest line
        if len(buffer) > self.max_line + 1:
            raise FTPProtocolError(None, f"reply line longer than {self.max_line} bytes")
        return replies

    def _line(self, line: str) -> Reply | None:
        """Take one line; the Reply it completes, if any."""
        if self._code is None:
            match = _REPLY_LINE.fullmatch(line)
            if match is None:
                raise FTPProtocolError(None, f"not an FTP reply: {line[:80]!r}")
            code, separator, text = match.groups()
            if separator == "-":
                self._code = code
                self._lines = [text]
                self._size = len(line)
                return None
            return Reply(int(code), text or "")
        code = self._code
        if line[:3] == code and line[3:4] in ("", " "):
            self._lines.append(line[4:])
            lines, self._code, self._lines = self._lines, None, []
            return Reply(int(code), lines)
        if len(self._lines) + 1 >= self.max_lines:
            raise FTPProtocolError(None, f"a reply of more than {self.max_lines} lines")
        self._size += len(line) + 2
        if self._size > self.max_bytes:
            raise FTPProtocolError(None, f"a reply of more than {self.max_bytes:,} bytes")
        # RFC 959 lets middle lines start with the code and "-" too (ProFTPD, IIS write
        # every line so): they are text lines; only "code " ends the reply
        self._lines.append(line[4:] if line[:3] == code and line[3:4] == "-" else line)
        return None


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
    verb, _, arg = line.partition(b" ")
    # the verbs clients send, as they send them: a dict look-up instead of the regex
    name = _KNOWN_VERBS.get(verb) if type(verb) is bytes else None
    if name is not None:
        return _new_command(Command, (name, arg.decode("utf-8", "surrogateescape")))
    return _parse_command(verb, arg)


def _parse_command(verb: bytes, arg: bytes) -> Command:
    """:func:`parse_command`'s general path (any verb), from the line's two halves."""
    if not verb:
        raise CommandError(Reply(500, "Syntax error, command unrecognized."))
    if not _VERB.fullmatch(verb):
        raise CommandError(Reply(500, "Syntax error, command unrecognized."))
    return Command(verb.decode("ascii").upper(), arg.decode("utf-8", "surrogateescape"))


#: Command(verb, arg) without the Python-level __new__ of a NamedTuple
_new_command = tuple.__new__
#: the verbs of RFC 959, 2228, 2389, 2428, 3659 and the X* aliases, upper-, lower- and
#: capitalised as sent, each to its upper-case name: parse_command's fast path (any other
#: verb, and any other spelling, takes the general path, with the same result)
_KNOWN_VERBS: dict[bytes, str] = {
    spelling.encode("ascii"): name
    for name in (
        "ABOR", "ACCT", "ADAT", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CONF", "CWD", "DELE",
        "ENC", "EPRT", "EPSV", "FEAT", "HELP", "LANG", "LIST", "MDTM", "MIC", "MKD", "MLSD",
        "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS", "PASV", "PBSZ", "PORT", "PROT", "PWD",
        "QUIT", "REIN", "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE", "SIZE", "SMNT", "STAT",
        "STOR", "STOU", "STRU", "SYST", "TYPE", "USER", "XCUP", "XCWD", "XMKD", "XPWD", "XRMD",
    )
    for spelling in (name, name.lower(), name.capitalize())
}


#: those verbs alone on a line (CRLF or LF), each to its Command (a tuple: one may be shared)
_KNOWN_LINES: dict[bytes, Command] = {
    spelling + end: Command(name, "")
    for spelling, name in _KNOWN_VERBS.items()
    for end in (b"\r\n", b"\n")
}


def format_command(verb: str, arg: str = "") -> bytes:
    """A command line as a client sends it, CRLF included.

    Raises ValueError if ``verb`` is not ASCII letters or ``arg`` holds CR, LF or NUL (which
    would let a name smuggle a second command).

    >>> format_command("RETR", "a b.txt")
    b'RETR a b.txt\\r\\n'
    """
    if not _VERB.fullmatch(verb.encode("utf-8", "surrogateescape")):
        raise ValueError(f"an FTP verb is ASCII letters, not {verb!r}")
    if "\r" in arg or "\n" in arg or "\0" in arg:
        raise ValueError(f"an FTP argument cannot hold CR, LF or NUL: {arg!r}")
    line = f"{verb} {arg}\r\n" if arg else f"{verb}\r\n"
    return line.encode("utf-8", "surrogateescape")


class CommandReader:
    """A server's reader of the control connection: bytes in, commands (or errors) out.

    Lines end with CRLF; a bare LF is taken as well (as vsftpd and pyftpdlib do). Telnet
    sequences are removed: ``IAC IAC`` is a literal 0xFF byte, ``IAC`` + a command byte
    (IP, DM, AYT, ...) and ``IAC WILL/WONT/DO/DONT option`` vanish, so ``ABOR`` after the
    Telnet "Synch" (``IAC IP IAC DM``) parses. When the DM went as TCP urgent data and the
    socket dropped it, an ``IAC`` before an ordinary byte is left: the ``IAC`` goes, the byte
    stays. (Python's ftplib sends its whole ``ABOR\\r\\n`` with MSG_OOB, so its LF is the
    urgent byte: a server must read with SO_OOBINLINE on to see that line end.)
    A line over ``max_line`` bytes yields one :class:`CommandError` (reply 500, "line too
    long") and is skipped up to its end, however many feeds that takes, without holding it
    in memory; later lines parse normally. An empty line or a bad verb is a CommandError
    (500) in the list too.

    >>> reader = CommandReader()
    >>> reader.feed(b"USER anonymous\\r\\nPA")
    [Command(verb='USER', arg='anonymous')]
    >>> reader.feed(b"SS a@b\\n\\xff\\xf4\\xff\\xf2ABOR\\r\\n")
    [Command(verb='PASS', arg='a@b'), Command(verb='ABOR', arg='')]
    """

    def __init__(self, max_line: int = MAX_COMMAND_LINE) -> None:
        self.max_line = max_line
        self._line = bytearray()
        self._telnet = _TN_DATA  # where the Telnet filter stands between feeds
        self._skipping = False  # inside a line that was too long, until its LF
        #: nothing held: no bytes of a line, no line being skipped, no Telnet command begun
        #: (what feed's fast path needs; kept by _feed)
        self._clean = True

    def feed(self, data: bytes) -> list[Command | CommandError]:
        """What ``data`` completes, in order."""
        # The fast path: what a client waiting for each reply sends, one whole line (CRLF
        # or LF) and nothing before it held, no Telnet byte, shorter than max_line (so
        # "too long" cannot apply). _feed gives the same for it, in more steps.
        size = len(data)
        if not (self._clean and 0 < size <= self.max_line and type(data) is bytes):
            return self._feed(data)
        command = _KNOWN_LINES.get(data)  # QUIT, NOOP, PASV...: one look-up
        if command is not None:
            return [command]
        # (``_IAC in data``, an int, is a plain byte search: ``b"\xff" in data`` is not)
        if data.find(b"\n") == size - 1 and _IAC not in data:
            line = data[:-2] if size > 1 and data[-2] == 0x0D else data[:-1]
            verb, _, arg = line.partition(b" ")
            name = _KNOWN_VERBS.get(verb)  # parse_command's fast path, inline
            if name is not None:
                return [_new_command(Command, (name, arg.decode("utf-8", "surrogateescape")))]
            try:
                return [_parse_command(verb, arg)]
            except CommandError as error:
                return [error]
        return self._feed(data)

    def _feed(self, data: bytes) -> list[Command | CommandError]:
        """:meth:`feed`'s general path: any bytes, in any state."""
        if self._telnet != _TN_DATA or _IAC in data:
            data = self._untelnet(data)
        out: list[Command | CommandError] = []
        line = self._line
        limit = self.max_line
        pos = 0
        size = len(data)
        while pos < size:
            end = data.find(b"\n", pos)
            piece_end = size if end < 0 else end
            if self._skipping:
                if end < 0:
                    break
                self._skipping = False
            else:
                line += data[pos:piece_end]
                # a trailing CR may be the first half of CRLF: it does not count yet
                length = len(line) - (1 if line[-1:] == b"\r" else 0)
                if length > limit:
                    del line[:]
                    out.append(CommandError(Reply(500, "Command line too long.")))
                    if end < 0:
                        self._skipping = True
                        break
                elif end >= 0:
                    if line[-1:] == b"\r":
                        del line[-1:]
                    try:
                        out.append(parse_command(bytes(line)))
                    except CommandError as error:
                        out.append(error)
                    del line[:]
            if end < 0:
                break
            pos = end + 1
        self._clean = not line and not self._skipping and self._telnet == _TN_DATA
        return out

    def _untelnet(self, data: bytes) -> bytes:
        """``data`` without its Telnet commands; IAC IAC becomes one 0xFF byte."""
        out = bytearray()
        state = self._telnet
        pos, size = 0, len(data)
        while pos < size:
            if state == _TN_DATA:
                iac = data.find(b"\xff", pos)
                if iac < 0:
                    out += data[pos:]
                    break
                out += data[pos:iac]
                pos = iac + 1
                state = _TN_IAC
                continue
            byte = data[pos]
            pos += 1
            if state == _TN_OPTION:
                state = _TN_DATA
            elif byte == _IAC:
                out.append(_IAC)
                state = _TN_DATA
            elif 251 <= byte <= 254:  # WILL, WONT, DO, DONT: an option byte follows
                state = _TN_OPTION
            elif byte >= 240:  # SE NOP DM BRK IP AO AYT EC EL GA SB: one byte, gone
                state = _TN_DATA
            else:
                # an IAC before an ordinary byte: what is left of IAC DM when the DM
                # went as TCP urgent data and the socket dropped it (ftplib-style Synch)
                out.append(byte)
                state = _TN_DATA
        self._telnet = state
        return bytes(out)

    @property
    def buffered(self) -> int:
        """Bytes held for a line not yet complete: at most ``max_line``, plus one for a CR
        waiting for its LF. A line being skipped (too long) holds nothing."""
        return len(self._line)


# ---- addresses: PORT / PASV (RFC 959), EPRT / EPSV (RFC 2428)


def format_pasv(host: str, port: int) -> str:
    """The text of a 227 reply: ``Entering Passive Mode (h1,h2,h3,h4,p1,p2).``

    ``host`` is a dotted IPv4 address, ``port`` 0-65535. ValueError for anything else.

    >>> format_pasv("127.0.0.1", 1025)
    'Entering Passive Mode (127,0,0,1,4,1).'
    >>> parse_pasv("Entering Passive Mode 127,0,0,1,4,1")
    ('127.0.0.1', 1025)
    """
    return f"Entering Passive Mode ({format_port(host, port)})."


def parse_pasv(text: str) -> tuple[str, int]:
    """``(host, port)`` from a 227 reply's text: the first ``h1,h2,h3,h4,p1,p2`` in it,
    with or without parentheses (RFC 1123 §4.1.2.6 says to scan for the numbers).

    Raises FTPProtocolError when there is none, a number is over 255 or the port is 0.

    >>> parse_pasv("Entering Passive Mode (127,0,0,1,0,0)")
    Traceback (most recent call last):
    ...
    protocols.ftp.core.FTPProtocolError: port 0 in the passive mode reply: '...'
    """
    match = _PASV_NUMBERS.search(text)
    if match is None:
        raise FTPProtocolError(None, f"no address in the passive mode reply: {text!r}")
    numbers = [int(n) for n in match.groups()]
    if any(n > 255 for n in numbers):
        raise FTPProtocolError(None, f"a number over 255 in the passive mode reply: {text!r}")
    if numbers[4] == numbers[5] == 0:
        raise FTPProtocolError(None, f"port 0 in the passive mode reply: {text!r}")
    return ".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5]


def format_port(host: str, port: int) -> str:
    """The argument of PORT: ``h1,h2,h3,h4,p1,p2``."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"not a dotted IPv4 address: {host!r}") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"not a port number: {port!r}")
    return ",".join([*str(address).split("."), str(port >> 8), str(port & 0xFF)])


def parse_port(arg: str) -> tuple[str, int]:
    """``(host, port)`` from PORT's argument; CommandError (501) when it is malformed
    (not six numbers 0-255, spaces or signs included)."""
    match = _PORT_ARG.fullmatch(arg)
    numbers = [int(n) for n in match.groups()] if match else []
    if not numbers or any(n > 255 for n in numbers):
        raise CommandError(Reply(501, "Syntax error in parameters or arguments."))
    return ".".join(map(str, numbers[:4])), numbers[4] * 256 + numbers[5]


def format_epsv(port: int) -> str:
    """The text of a 229 reply: ``Entering Extended Passive Mode (|||port|)``."""
    _check_port(port)
    return f"Entering Extended Passive Mode (|||{port}|)"


def parse_epsv(text: str) -> int:
    """The port from a 229 reply's text (``(|||6446|)``, any delimiter 33-126 repeated);
    FTPProtocolError when malformed."""
    match = _EPSV_ANSWER.search(text)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise FTPProtocolError(None, f"no port in the extended passive mode reply: {text!r}")
    return int(match.group(2))


def format_eprt(host: str, port: int) -> str:
    """The argument of EPRT: ``|1|132.235.1.2|6275|`` or ``|2|::1|6275|``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address: {host!r}") from None
    _check_port(port)
    return f"|{1 if address.version == 4 else 2}|{address}|{port}|"


def parse_eprt(arg: str) -> tuple[int, str, int]:
    """``(family, host, port)`` from EPRT's argument; family 1 (IPv4) or 2 (IPv6).

    CommandError with 522 (``Network protocol not supported, use (1,2)``) for another
    family, 501 for anything malformed (bad delimiter, address not of its family, port not
    1-65535).
    """
    malformed = CommandError(Reply(501, "Syntax error in parameters or arguments."))
    if not arg or not 33 <= ord(arg[0]) <= 126:
        raise malformed
    parts = arg.split(arg[0])
    if len(parts) != 5 or parts[0] or parts[4]:
        raise malformed
    family, host, port = parts[1:4]
    if not _DIGITS.fullmatch(family) or "%" in host:  # no zone: RFC 2428 takes RFC 2373's form
        raise malformed
    if family not in ("1", "2"):
        raise CommandError(Reply(522, "Network protocol not supported, use (1,2)"))
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = (
            ipaddress.IPv4Address(host) if family == "1" else ipaddress.IPv6Address(host)
        )
    except ValueError:
        raise malformed from None
    if not _DIGITS.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise malformed
    return int(family), str(address), int(port)


# ---- listings


@dataclass(frozen=True)
class FileInfo:
    """One directory entry, as listed (server side) or as parsed from a listing (client side).

    ``mode`` is an ``st_mode`` (type and permission bits); ``mtime`` seconds since the epoch
    (UTC). ``unique`` is MLSx's unique fact (server: ``"{dev:x}U{ino:x}"``). ``facts`` holds
    every MLSx fact a parsed line carried, lower-cased names, values as sent. Fields a parsed
    listing does not give are left at their defaults (``size`` -1 when unknown, ``owner``
    and ``group`` empty).
    """

    name: str
    is_dir: bool = False
    size: int = -1
    mtime: float | None = None
    mode: int = 0
    nlink: int = 1
    owner: str = ""
    group: str = ""
    is_link: bool = False
    target: str | None = None
    unique: str | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


def _utc(t: float) -> datetime:
    return _EPOCH + timedelta(seconds=math.floor(t))


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"not a port number (1-65535): {port!r}")


def list_line(info: FileInfo, now: float) -> str:
    """One line of a LIST answer, as ``ls -l`` writes it (what every client parses).

    ``drwxr-xr-x   2 1000     1000         4096 Dec 05 08:17 name`` (an empty owner or group
    written ``-``, so the columns stay where parsers look) — the time for entries
    modified within the 6 months before ``now`` (or in the future by under an hour), else
    the year (``Jan 01  2025``), as ``ls`` does; a symlink is ``name -> target``. Month
    names are English whatever the locale. No CRLF.
    """
    mode = info.mode
    if not stat.S_IFMT(mode):
        mode |= stat.S_IFLNK if info.is_link else stat.S_IFDIR if info.is_dir else stat.S_IFREG
    mtime = info.mtime if info.mtime is not None else 0.0
    when = _utc(mtime)
    if now - _SIX_MONTHS < mtime < now + 3600:
        date = f"{_MONTHS[when.month - 1]} {when.day:02d} {when.hour:02d}:{when.minute:02d}"
    else:
        date = f"{_MONTHS[when.month - 1]} {when.day:02d}  {when.year}"
    name = info.name
    if info.is_link and info.target is not None:
        name = f"{name} -> {info.target}"
    return (
        f"{stat.filemode(mode)} {info.nlink:3d} {info.owner or '-':<8} {info.group or '-':<8} "
        f"{max(info.size, 0):8d} {date} {name}"
    )


def mlsx_line(info: FileInfo, facts: Iterable[str], perm: str) -> str:
    """One MLSD line or MLST entry (RFC 3659 §7): ``type=file;size=12;modify=...; name``.

    Writes the facts named in ``facts`` (a subset of :data:`MLST_FACTS`) that apply, in
    :data:`MLST_FACTS` order: ``type`` is ``file``, ``dir``, or ``cdir``/``pdir`` when
    ``info.facts["type"]`` says so (the server's to give), ``size`` only for files,
    ``modify`` as ``YYYYMMDDHHMMSS`` UTC, ``perm`` as given (``"adfrw"``, ``"elcmp"``...),
    ``unique`` when known. Fact names are case-insensitive. No CRLF, no leading space
    (MLST's reply adds one).

    >>> mlsx_line(FileInfo("a.txt", size=12, mtime=0), ["Type", "SIZE", "modify"], "")
    'type=file;size=12;modify=19700101000000; a.txt'
    """
    wanted = {fact.lower() for fact in facts}
    out = []
    for fact in MLST_FACTS:
        if fact not in wanted:
            continue
        if fact == "type":
            given = info.facts.get("type", "").lower()
            value = given if given in ("cdir", "pdir") else "dir" if info.is_dir else "file"
            out.append(f"type={value};")
        elif fact == "size":
            if not info.is_dir and info.size >= 0:
                out.append(f"size={info.size};")
        elif fact == "modify":
            if info.mtime is not None:
                out.append(f"modify={format_mdtm(info.mtime)};")
        elif fact == "perm":
            out.append(f"perm={perm};")
        elif fact == "unique" and info.unique:
            out.append(f"unique={info.unique};")
    return "".join(out) + " " + info.name


def parse_mlsx_line(line: str, strict: bool = True) -> FileInfo:
    """A FileInfo from an MLSD line (``facts; name``); facts kept in ``facts``.

    ``type`` sets ``is_dir`` (``dir``, ``cdir``, ``pdir``), ``size`` (or ``sizd``) the size,
    ``modify`` the mtime (fractions allowed), ``unique`` the unique fact, ``unix.mode`` the
    mode (with the type's bits), ``unix.owner``/``unix.group`` (or ``unix.ownername``/
    ``unix.groupname``) the owner and group. A line that starts with a space has no facts
    (RFC 3659 §7.2); so pass MLST's entry lines without their leading space.
    FTPProtocolError when there is no ``"; "``, a fact lacks its ``=``, or a size, modify or
    unix.mode value is not one; with ``strict=False`` a bad fact is left out (the entry
    keeps what parsed) and only a line without ``"; "`` fails.

    >>> parse_mlsx_line("type=dir;modify=bogus;size=abc; d", strict=False).is_dir
    True

    >>> info = parse_mlsx_line("type=file;Size=12;modify=20261205081700; a b.txt")
    >>> info.name, info.size, info.is_dir, format_mdtm(info.mtime), info.facts["size"]
    ('a b.txt', 12, False, '20261205081700', '12')
    """
    if line.startswith(" "):
        text, name = "", line[1:]
    else:
        cut = line.find("; ")
        if cut < 0:
            raise FTPProtocolError(None, f"not an MLSx line (no '; '): {line!r}")
        text, name = line[:cut], line[cut + 2 :]
    facts: dict[str, str] = {}
    for fact in text.split(";"):
        if not fact:
            continue
        key, equals, value = fact.partition("=")
        if not equals or not key:
            if not strict:
                continue
            raise FTPProtocolError(None, f"an MLSx fact without '=': {fact!r}")
        facts[key.lower()] = value
    kind = facts.get("type", "").lower()
    is_dir = kind in ("dir", "cdir", "pdir")
    size = -1
    mtime = None
    mode = 0

    def bad(error: ValueError) -> None:
        if strict:
            raise FTPProtocolError(None, f"a bad MLSx fact in {line!r}: {error}") from None

    for key in ("size", "sizd"):
        if key in facts:
            try:
                size = int(facts[key])
                if size < 0:
                    size = -1
                    raise ValueError(f"negative {key}")
            except ValueError as error:
                size = -1
                bad(error)
            break
    if "modify" in facts:
        try:
            mtime = parse_mdtm(facts["modify"])
        except ValueError as error:
            bad(error)
    if "unix.mode" in facts:
        try:
            mode = int(facts["unix.mode"], 8) | (stat.S_IFDIR if is_dir else stat.S_IFREG)
        except ValueError as error:
            bad(error)
    return FileInfo(
        name=name,
        is_dir=is_dir,
        size=size,
        mtime=mtime,
        mode=mode,
        owner=facts.get("unix.ownername", facts.get("unix.owner", "")),
        group=facts.get("unix.groupname", facts.get("unix.group", "")),
        unique=facts.get("unique"),
        facts=facts,
    )


def parse_list_line(line: str, now: float | None = None) -> FileInfo | None:
    """A FileInfo from one LIST line, Unix (``ls -l``) or DOS/IIS style; None if neither.

    Unix: permissions (``d``/``-``/``l``...), links, owner, group (either may be absent,
    as some servers write; a lone name is the owner), size, ``Mon DD HH:MM`` (the year
    guessed from ``now``: the latest such date no later than a day after ``now``, so the
    last 12 months with room for a server clock or time zone ahead) or ``Mon DD YYYY``,
    or ``ls --time-style=long-iso``'s ``YYYY-MM-DD HH:MM`` (full-iso's seconds, fraction
    and zone too), name (after one space, the rest of the line: spaces kept; for a link, ``name ->
    target`` split at the first arrow). A device's ``major, minor`` gives ``size`` -1.
    DOS: ``MM-DD-YY  HH:MMAM  <DIR>  name`` or with a size (thousands separators allowed)
    instead of ``<DIR>`` (2- or 4-digit years, two-digit ones as POSIX ``%y``: 69-99 are
    19xx; 12- or 24-hour times); the name starts at its first non-blank character.
    ``total N`` lines give None. Times are taken as UTC; English month names only (any
    case).

    >>> info = parse_list_line("-rw-r--r--    1 0        0            1234 Dec 05  2025 a b")
    >>> info.name, info.size, info.is_dir, format_mdtm(info.mtime)
    ('a b', 1234, False, '20251205000000')
    >>> parse_list_line("12-05-26  08:17PM       <DIR>          pub").is_dir
    True
    """
    line = line.rstrip("\r\n")
    match = _UNIX_LINE.match(line)
    if match is not None:
        return _unix_entry(match, time.time() if now is None else now)
    match = _DOS_LINE.match(line)
    if match is not None:
        return _dos_entry(match)
    return None


# ls -l: type and permissions (and an ACL/SELinux mark), links, owner and group (either may
# be missing), size (or "major, minor" for a device), date, name
_UNIX_LINE = re.compile(
    r"(?P<mode>[-bcdlpsDw?][-rwxsStTlL]{9})[+@.]?\s+"
    r"(?:(?P<nlink>[0-9]+)\s+)?"
    r"(?:(?P<owner>\S+)\s+(?:(?P<group>\S+)\s+)??)??"
    r"(?P<size>[0-9]+|[0-9]+,\s*[0-9]+)\s+"
    r"(?:(?P<month>[A-Za-z]{3})\s+(?P<day>[0-9]{1,2})\s+"
    r"(?:(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})|(?P<year>[0-9]{4}))"
    # ls --time-style=long-iso (2024-01-02 10:00) and full-iso (with seconds and a zone)
    r"|(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}) (?P<isotime>[0-9]{2}:[0-9]{2})"
    r"(?::(?P<isosecond>[0-9]{2})(?:\.[0-9]+)?)?(?: (?P<zone>[-+][0-9]{4}))?)"
    r" (?P<name>.+)",
    re.DOTALL,
)
# DOS / IIS: 12-05-26  08:17AM       <DIR>          name
_DOS_LINE = re.compile(
    r"(?P<month>[0-9]{2})-(?P<day>[0-9]{2})-(?P<year>[0-9]{4}|[0-9]{2})\s+"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})\s*(?P<ampm>[AaPp][Mm])?\s+"
    r"(?:(?P<dir><DIR>)|(?P<size>[0-9][0-9,]*))\s+(?P<name>\S.*)",
    re.DOTALL,
)
_TYPE_BITS = {
    "-": stat.S_IFREG,
    "d": stat.S_IFDIR,
    "l": stat.S_IFLNK,
    "b": stat.S_IFBLK,
    "c": stat.S_IFCHR,
    "p": stat.S_IFIFO,
    "s": stat.S_IFSOCK,
}


def _mode_bits(text: str) -> int:
    """An st_mode from ``drwxr-sr-t``."""
    mode = _TYPE_BITS.get(text[0], 0)
    for index, (char, bit) in enumerate(zip(text[1:], "rwxrwxrwx", strict=True)):
        shift = 8 - index
        if char == bit or (bit == "x" and char in "stl"):
            mode |= 1 << shift
        if bit == "x" and char in "sStTlL":
            mode |= (stat.S_ISUID, stat.S_ISGID, stat.S_ISVTX)[index // 3]
    return mode


def _unix_entry(match: re.Match[str], now: float) -> FileInfo | None:
    month: int | None = 1
    day = 1
    if match["iso"] is None:
        month = _MONTH_NUMBER.get(match["month"].lower())
        day = int(match["day"])
    if month is None or not 1 <= day <= 31:
        return None
    try:
        if match["iso"] is not None:
            when = datetime.strptime(
                f"{match['iso']} {match['isotime']}:{match['isosecond'] or '00'}",
                "%Y-%m-%d %H:%M:%S",
            ).replace(tzinfo=UTC)
            zone = match["zone"]
            if zone:
                sign = -1 if zone[0] == "-" else 1
                when -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        elif match["year"] is not None:
            when = datetime(int(match["year"]), month, day, tzinfo=UTC)
        else:
            hour, minute = int(match["hour"]), int(match["minute"])
            when = _recent_date(month, day, hour, minute, now)
    except ValueError:
        return None
    mode_text = match["mode"]
    is_link = mode_text[0] == "l"
    name, target = match["name"], None
    if is_link and " -> " in name:
        name, target = name.split(" -> ", 1)
    size_text = match["size"]
    owner, group = match["owner"], match["group"]
    return FileInfo(
        name=name,
        is_dir=mode_text[0] == "d",
        size=int(size_text) if size_text.isdigit() else -1,
        mtime=(when - _EPOCH) / timedelta(seconds=1),
        mode=_mode_bits(mode_text),
        nlink=int(match["nlink"]) if match["nlink"] else 1,
        owner=owner if owner is not None else "",
        group=group if group is not None else "",
        is_link=is_link,
        target=target,
    )


def _recent_date(month: int, day: int, hour: int, minute: int, now: float) -> datetime:
    """The latest such date no later than a day after ``now`` (ls shows no year for those)."""
    latest = _utc(now) + timedelta(days=1)
    for year in range(latest.year, latest.year - 8, -1):
        try:
            when = datetime(year, month, day, hour, minute, tzinfo=UTC)
        except ValueError:
            if month == 2 and day == 29:
                continue  # not a leap year: an earlier one
            raise
        if when <= latest:
            return when
    raise ValueError("no such date")


def _dos_entry(match: re.Match[str]) -> FileInfo | None:
    year = int(match["year"])
    if len(match["year"]) == 2:
        year += 2000 if year < 69 else 1900  # as POSIX strptime's %y
    hour, minute = int(match["hour"]), int(match["minute"])
    ampm = match["ampm"]
    if ampm is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
    try:
        when = datetime(year, int(match["month"]), int(match["day"]), hour, minute, tzinfo=UTC)
    except ValueError:
        return None
    is_dir = match["dir"] is not None
    return FileInfo(
        name=match["name"],
        is_dir=is_dir,
        size=-1 if is_dir else int(match["size"].replace(",", "")),
        mtime=(when - _EPOCH) / timedelta(seconds=1),
        mode=stat.S_IFDIR if is_dir else stat.S_IFREG,
    )


def format_mdtm(t: float) -> str:
    """A time as MDTM and MLSx write it: ``YYYYMMDDHHMMSS`` in UTC."""
    try:
        when = _EPOCH + timedelta(seconds=math.floor(t))
    except OverflowError:
        raise ValueError(f"time out of range: {t!r}") from None
    return f"{when.year:04d}{when:%m%d%H%M%S}"


def parse_mdtm(text: str) -> float:
    """Seconds since the epoch from ``YYYYMMDDHHMMSS[.sss]`` (UTC); ValueError otherwise."""
    match = _MDTM.fullmatch(text)
    if match is None:
        raise ValueError(f"not a YYYYMMDDHHMMSS time: {text!r}")
    year, month, day, hour, minute, second, fraction = match.groups()
    when = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
    )
    seconds = (when - _EPOCH) // timedelta(seconds=1)
    return seconds + float("0" + fraction) if fraction else float(seconds)


# ---- TYPE A (RFC 959 §3.1.1.1): the wire's line end is CRLF


class AsciiEncoder:
    """Server RETR / client STOR in TYPE A: local ``\\n`` becomes ``\\r\\n`` on the wire.

    A ``\\r\\n`` already in the data stays as it is (no ``\\r\\r\\n``), also when the
    ``\\r`` and ``\\n`` arrive in different chunks.
    """

    def __init__(self) -> None:
        self._cr = False  # the last byte fed was a CR

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        head = b""
        if self._cr and data[:1] == b"\n":
            head, rest = b"\n", data[1:]
        else:
            rest = data
        self._cr = data[-1:] == b"\r"
        return head + rest.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def flush(self) -> bytes:
        """What is held back at the end of the data."""
        self._cr = False
        return b""


class AsciiDecoder:
    """Server STOR / client RETR in TYPE A: the wire's ``\\r\\n`` becomes ``\\n``.

    A lone ``\\r`` not followed by ``\\n`` is kept; a ``\\r`` at the end of one chunk waits
    for the next (or :meth:`flush`).
    """

    def __init__(self) -> None:
        self._cr = False  # the last byte fed was a CR

    def feed(self, data: bytes) -> bytes:
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if data[-1:] == b"\r":
            data = data[:-1]
            self._cr = True
        return data.replace(b"\r\n", b"\n")

    def flush(self) -> bytes:
        held = b"\r" if self._cr else b""
        self._cr = False
        return held


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
        text = (
            message
            if message is not None
            else (f"{reply.code} {' '.join(line.strip() for line in reply.lines)}" if reply else "")
        )
        super().__init__(text)


class FTPTemporaryError(FTPError):
    """A 4xx reply: refused for now (busy, a transfer failed, try again)."""


class FTPPermanentError(FTPError):
    """A 5xx reply: refused (no such file, no permission, not logged in, syntax)."""


class FTPProtocolError(FTPError):
    """The server's answer breaks FTP (not a reply, or not the one expected)."""


def error_for(reply: Reply) -> FTPError:
    """The FTPError subclass that fits ``reply`` (4xx, 5xx, else FTPProtocolError)."""
    if reply.kind == 4:
        return FTPTemporaryError(reply)
    if reply.kind == 5:
        return FTPPermanentError(reply)
    return FTPProtocolError(reply)
