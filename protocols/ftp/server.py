"""The FTP server: ``serve(root)`` listens, and a protocol per control connection speaks FTP.

Commands: RFC 959 (bar SMNT; ACCT is superfluous), RFC 1123's corrections, RFC 2228/4217
(AUTH TLS, PBSZ, PROT, CCC refused), RFC 2389 (FEAT, OPTS), RFC 2428 (EPRT, EPSV), RFC 2640
(UTF-8 names), RFC 3659 (SIZE, MDTM, REST STREAM, MLST, MLSD), with the RFC 2577 protections:
PORT/EPRT only to the client's own address and never to a port below 1024, a data connection
only from the control connection's address, 331 for any user name, a delay after a failed
PASS and a disconnect after ``max_login_attempts`` of them, limits on connections (421),
idle and data-connection timeouts, and on the command line's length (500, the connection
lives on).

The disk is reached only through :class:`~protocols.ftp.filesystem.FileSystem`, whose root is
a jail; uploads are atomic there. Data connections and transfers are in
:mod:`protocols.ftp.server_data`: sendfile(2) for binary downloads on plain TCP, pull
producers otherwise, so a slow client never makes the server buffer without bound.

Logging (logger ``netshell.ftp``): one INFO line per transfer, as xferlog has it (peer, user,
command, path, bytes, seconds, type, complete or incomplete; the values are also on the record
as ``ftp_transfer``), one per login and logout, and a WARNING for each refusal that smells of
an attack (a bounce, a stranger's data connection, failed logins).

Example::

    >>> from protocols import ftp
    >>> listener = ftp.serve(".", users={"alice": "secret"}, anonymous=False)
    >>> listener.port > 0
    True
    >>> _ = listener.close()
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import ipaddress
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from netshell.defer import Deferred, maybe_deferred, succeed
from netshell.failure import Failure
from netshell.listener import Listener
from netshell.protocol import Factory, Protocol
from netshell.reactor import get_reactor
from protocols.ftp.core import (
    MLST_FACTS,
    Command,
    CommandError,
    CommandReader,
    FileInfo,
    Reply,
    format_epsv,
    format_mdtm,
    format_pasv,
    list_line,
    mlsx_line,
    parse_eprt,
    parse_port,
)
from protocols.ftp.filesystem import FileSystem, FSError
from protocols.ftp.server_data import (
    DataChannel,
    DataProtocol,
    DataRefused,
    Transfer,
    peer_gone,
    same_host,
)

__all__ = ["FTPServerFactory", "FTPServerProtocol", "User", "serve"]

log = logging.getLogger("netshell.ftp")
_debug = functools.partial(log.isEnabledFor, logging.DEBUG)

DEFAULT_BANNER = "netshell FTP server ready."
#: commands read ahead while one is under way before reading pauses
MAX_PENDING = 32
#: commands acted on in one turn of the loop; the rest wait for the next turn, so that a
#: client pipelining thousands of commands does not starve the other connections
COMMANDS_PER_TURN = 16
#: the commands acted on while a transfer is under way (RFC 959 §4.1.3); others wait for it
_URGENT = frozenset({"ABOR", "STAT", "QUIT"})
_ANONYMOUS = frozenset({"anonymous", "ftp"})
#: the commands that use a data channel
_TRANSFER_VERBS = frozenset({"RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD"})
#: the commands that keep a REST offset: the transfers, and those that only prepare one
#: (ftplib sends PASV between REST and RETR). Any other command cancels it: RFC 3659 §5.3
#: wants REST immediately before the transfer, and an offset left over from an earlier
#: exchange must not silently cut a later download.
_KEEP_REST = frozenset({"REST", "RETR", "STOR", "APPE", "STOU", "PASV", "EPSV", "PORT",
                        "EPRT", "TYPE", "MODE", "STRU"})
#: shared by the sessions that have none of their own yet (never changed: a session
#: makes its own deque or list before adding to it)
_NO_PENDING: deque[Any] = deque()
_NO_DATA_CONNECTIONS: list[Any] = []
_ALL_FACTS: list[str] = list(MLST_FACTS)


@dataclass(frozen=True)
class User:
    """A user of the server: its ``password``, and optionally its own ``root`` directory
    and rights (``writable``; None takes the server's).

    ``users`` given to :func:`serve` maps names to passwords or to Users; a checker
    callable may answer a User too (then its ``password`` is not looked at).

    >>> User("secret", writable=True)
    User(password='secret', root=None, writable=True)
    """

    password: str | None = None
    root: str | os.PathLike[str] | None = None
    writable: bool | None = None


# ---- the commands: verb -> (method, needs login, argument: "none" | "optional" | "required")

_COMMANDS: dict[str, tuple[str, bool, str, str]] = {
    "ABOR": ("abor", True, "none", "ABOR (abort the transfer)"),
    "ACCT": ("acct", False, "required", "ACCT <account> (not needed here)"),
    "ALLO": ("allo", True, "required", "ALLO <bytes> (nothing to allocate)"),
    "APPE": ("appe", True, "required", "APPE <path> (append to a file)"),
    "AUTH": ("auth", False, "required", "AUTH TLS (secure the control connection)"),
    "CCC": ("ccc", False, "none", "CCC (refused: the control connection stays secure)"),
    "CDUP": ("cdup", True, "none", "CDUP (go to the parent directory)"),
    "CWD": ("cwd", True, "required", "CWD <path> (change directory)"),
    "DELE": ("dele", True, "required", "DELE <path> (delete a file)"),
    "EPRT": ("eprt", True, "required", "EPRT |proto|address|port| (active mode, RFC 2428)"),
    "EPSV": ("epsv", True, "optional", "EPSV [<proto> | ALL] (extended passive mode)"),
    "FEAT": ("feat", False, "none", "FEAT (list the extensions)"),
    "HELP": ("help", False, "optional", "HELP [<command>]"),
    "LIST": ("list", True, "optional", "LIST [<path>] (ls -l style listing)"),
    "MDTM": ("mdtm", True, "required", "MDTM <path> (modification time)"),
    "MKD": ("mkd", True, "required", "MKD <path> (make a directory)"),
    "MLSD": ("mlsd", True, "optional", "MLSD [<path>] (machine listing, RFC 3659)"),
    "MLST": ("mlst", True, "optional", "MLST [<path>] (facts of one entry)"),
    "MODE": ("mode", True, "required", "MODE S (stream mode only)"),
    "NLST": ("nlst", True, "optional", "NLST [<path>] (names only)"),
    "NOOP": ("noop", False, "optional", "NOOP"),
    "OPTS": ("opts", False, "required", "OPTS UTF8 ON | OPTS MLST <facts>"),
    "PASS": ("pass_", False, "optional", "PASS <password>"),
    "PASV": ("pasv", True, "none", "PASV (passive mode)"),
    "PBSZ": ("pbsz", False, "required", "PBSZ 0 (after AUTH TLS)"),
    "PORT": ("port", True, "required", "PORT h1,h2,h3,h4,p1,p2 (active mode)"),
    "PROT": ("prot", False, "required", "PROT P | C (data connection protection)"),
    "PWD": ("pwd", True, "none", "PWD (print the working directory)"),
    "QUIT": ("quit", False, "none", "QUIT"),
    "REIN": ("rein", False, "none", "REIN (log out, keep the connection)"),
    "REST": ("rest", True, "required", "REST <offset> (resume the next transfer there)"),
    "RETR": ("retr", True, "required", "RETR <path> (download)"),
    "RMD": ("rmd", True, "required", "RMD <path> (remove a directory)"),
    "RNFR": ("rnfr", True, "required", "RNFR <path> (rename from)"),
    "RNTO": ("rnto", True, "required", "RNTO <path> (rename to)"),
    "SITE": ("site", True, "required", "SITE CHMOD <mode> <path> | SITE HELP"),
    "SIZE": ("size", True, "required", "SIZE <path> (size in bytes)"),
    "SMNT": ("smnt", True, "required", "SMNT (not implemented)"),
    "STAT": ("stat", False, "optional", "STAT [<path>] (status, or a listing over this "
             "connection)"),
    "STOR": ("stor", True, "required", "STOR <path> (upload)"),
    "STOU": ("stou", True, "optional", "STOU (upload under a unique name)"),
    "STRU": ("stru", True, "required", "STRU F (file structure only)"),
    "SYST": ("syst", False, "none", "SYST"),
    "TYPE": ("type", True, "required", "TYPE A | I (ASCII or binary)"),
    "USER": ("user", False, "required", "USER <name>"),
    "XCUP": ("cdup", True, "none", "XCUP (as CDUP)"),
    "XCWD": ("cwd", True, "required", "XCWD <path> (as CWD)"),
    "XMKD": ("mkd", True, "required", "XMKD <path> (as MKD)"),
    "XPWD": ("pwd", True, "none", "XPWD (as PWD)"),
    "XRMD": ("rmd", True, "required", "XRMD <path> (as RMD)"),
}


#: verb -> (the method's name, needs login, takes an argument), looked up per command
_DISPATCH: dict[str, tuple[str, bool, str]] = {
    verb: ("ftp_" + name, login, takes) for verb, (name, login, takes, _) in _COMMANDS.items()
}


@functools.lru_cache(maxsize=512)
def _reply_bytes(code: int, text: str) -> bytes:
    """A one-line reply's bytes, formatted once for the replies every session sends."""
    return Reply(code, text).to_bytes()


# the replies of every login, formatted once
_PASSWORD_PLEASE = _reply_bytes(331, "Please specify the password.")
_LOGGED_IN = _reply_bytes(230, "Login successful.")
_GOODBYE = _reply_bytes(221, "Goodbye.")


def _quote(path: str) -> str:
    """A path in a 257 reply: in double quotes, each one inside doubled (RFC 959 §7)."""
    return '"' + path.replace('"', '""') + '"'


def _strip_list_options(arg: str) -> str:
    """LIST/NLST/STAT arguments without the ``ls`` options clients add (``-la``, ``-a``)."""
    rest = arg
    while rest.startswith("-"):
        option, _, after = rest.partition(" ")
        if not option[1:].isalpha():
            break
        rest = after.lstrip(" ")
    return rest


#: the pieces a ``STAT path`` listing is written in on the control connection, one more
#: only once the transport has taken the last (a big directory is never one huge reply)
STAT_PIECE = 16 * 1024


def _lines_to_chunks(lines: Iterable[str], size: int = 64 * 1024) -> Iterator[bytes]:
    """Listing lines as CRLF-ended UTF-8, in pieces of about ``size`` bytes."""
    batch: list[bytes] = []
    held = 0
    for line in lines:
        data = (line + "\r\n").encode("utf-8", "surrogateescape")
        batch.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


# ---- listings: read and formatted in the thread pool (a big directory takes seconds to
# read and stat, which on the loop would stop every session). A FileSystem keeps no state
# between calls (each opens and closes its own descriptors), so a thread may call it.


def _perm(info: FileInfo, writable: bool) -> str:
    """The MLSx ``perm`` fact of an entry for a session with (or without) write rights."""
    if info.is_dir:
        return "cdeflmp" if writable else "el"
    return "adfrw" if writable else "r"


def _prepare_listing(fs: FileSystem, verb: str, path: str, facts: list[str]) -> list[bytes]:
    """LIST/NLST/MLSD of ``path``, as the data connection's pieces (runs in a thread)."""
    info = fs.stat(path)
    now = time.time()
    lines: Iterable[str]
    if verb == "MLSD":
        if not info.is_dir:
            raise FSError(501, f"Not a directory: {fs.display(path)}")
        lines = (mlsx_line(e, facts, _perm(e, fs.writable)) for e in fs.listdir(path))
    elif info.is_dir:
        entries = fs.listdir(path)
        if verb == "LIST":
            lines = (list_line(e, now) for e in entries)
        else:
            lines = (e.name for e in entries)
    elif verb == "LIST":
        lines = [list_line(info, now)]
    else:
        lines = [fs.display(path).rsplit("/", 1)[-1]]  # NLST of a file: its name, as ls does
    return list(_lines_to_chunks(lines))


def _prepare_stat(fs: FileSystem, path: str) -> list[bytes]:
    """The reply to ``STAT path`` as pieces of bytes (runs in a thread): exactly what
    ``Reply(212 or 213, [...]).to_bytes()`` gives, without one string of it all."""
    info = fs.stat(path)
    now = time.time()
    title = f"Status of {fs.display(path)}:"
    if info.is_dir:
        code = 212
        lines: Iterable[str] = (" " + list_line(e, now) for e in fs.listdir(path))
    else:
        code = 213
        lines = [" " + list_line(info, now)]
    # Middle lines all begin with a space: Reply.to_bytes would add nothing to them.
    head = f"{code}-{title}\r\n".encode("utf-8", "surrogateescape")
    pieces = [head, *_lines_to_chunks(lines, STAT_PIECE)]
    pieces.append(_reply_bytes(code, "End of status."))
    return pieces


# ---- the factory


class FTPServerFactory(Factory):
    """Makes an :class:`FTPServerProtocol` per control connection; holds the settings,
    the users and the connection counts. The arguments are as for :func:`serve`."""

    display_name = "ftp server"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        users: Any = None,
        anonymous: bool = True,
        writable: bool = False,
        tls: Any = None,
        passive_ports: Iterable[int] | None = None,
        masquerade_address: str | None = None,
        implicit_tls: bool = False,
        require_tls: bool = False,
        require_tls_reuse: bool = False,
        max_connections: int = 512,
        max_connections_per_ip: int = 64,
        idle_timeout: float = 300.0,
        data_timeout: float = 60.0,
        max_login_attempts: int = 3,
        login_delay: float = 1.0,
        banner: str | Iterable[str] = DEFAULT_BANNER,
        reactor: Any = None,
        clock: Any = None,
    ) -> None:
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise ValueError(f"the FTP root {root!r} is not a directory")
        if (implicit_tls or require_tls or require_tls_reuse) and tls is None:
            raise ValueError("implicit_tls, require_tls and require_tls_reuse need tls= "
                             "(a server context: tls.server_context(...))")
        if users is not None and not callable(users) and not isinstance(users, Mapping):
            raise TypeError("users is a dict (name -> password or User) or a callable "
                            f"(name, password) -> bool | User | Deferred, not {users!r}")
        ports: tuple[int, ...] | None = None
        if passive_ports is not None:
            ports = tuple(int(p) for p in passive_ports)
            if not ports or not all(0 < p < 65536 for p in ports):
                raise ValueError("passive_ports must be ports between 1 and 65535")
        if masquerade_address is not None:
            try:
                ipaddress.IPv4Address(masquerade_address)
            except ValueError:
                raise ValueError("masquerade_address is the IPv4 address PASV announces, "
                                 f"not {masquerade_address!r}") from None
        self.root = root
        self.users = users
        self.anonymous = anonymous
        self.writable = writable
        self.tls = tls
        self.passive_ports = ports
        self.masquerade_address = masquerade_address
        self.implicit_tls = implicit_tls
        self.require_tls = require_tls
        self.require_tls_reuse = require_tls_reuse
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.idle_timeout = idle_timeout
        self.data_timeout = data_timeout
        self.max_login_attempts = max_login_attempts
        self.login_delay = login_delay
        self.banner = [banner] if isinstance(banner, str) else list(banner)
        #: the greeting as sent, formatted once
        self.greeting = Reply(220, self.banner).to_bytes()
        self.reactor = reactor if reactor is not None else get_reactor()
        #: what times logins, idle and data timeouts (the reactor; tests may give a Clock)
        self.clock = clock if clock is not None else self.reactor
        #: the control connections being served, and how many come from each address
        self.sessions: set[FTPServerProtocol] = set()
        #: the counted sessions, least recently active first (a command line moves one to
        #: the end): one timer per factory, due when the first of them goes idle, times
        #: them all out, instead of a timer per session
        self._by_activity: dict[FTPServerProtocol, None] = {}
        self._idle_timer: Any = None
        self.per_ip: dict[str, int] = {}
        #: the files STOU is uploading now, (real root, path): their names are taken
        #: already though no file has them until the upload commits
        self.stou_names: set[tuple[str, str]] = set()
        self._filesystems: dict[tuple[str, bool], FileSystem] = {}
        #: the User of each password given as a plain string in ``users``, and the
        #: password's bytes (see _check)
        self._password_users: dict[str, tuple[User, bytes]] = {}

    def build_protocol(self, addr: Any) -> FTPServerProtocol:
        return FTPServerProtocol(self)

    def _arm_idle_timer(self) -> None:
        """Set the idle timer for the least recently active session (none: no timer)."""
        order = self._by_activity
        if not order or not self.idle_timeout:
            return
        first = next(iter(order))
        clock = self.clock
        left = first._last + self.idle_timeout - clock.seconds()
        self._idle_timer = clock.call_later(max(left, 0.0), self._idle_sweep)

    def _stop_idle_timer(self) -> None:
        timer, self._idle_timer = self._idle_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _idle_sweep(self) -> None:
        """Time out every session idle for ``idle_timeout``, then set the timer again."""
        self._idle_timer = None
        timeout = self.idle_timeout
        if not timeout:
            return
        order = self._by_activity
        now = self.clock.seconds()
        while order:
            session = next(iter(order))
            if session._last + timeout - now > 0:
                break
            del order[session]
            if session._closed:
                continue
            if session.transfer is not None or session.busy:
                # the data connection has its own timeout: look again a timeout from now
                session._last = now
                order[session] = None
                continue
            session._idle_timed_out(timeout)
        self._arm_idle_timer()

    def filesystem(self, root: str, writable: bool) -> FileSystem:
        """The FileSystem of ``root`` with those rights, shared by the sessions that use it
        (it holds no per-session state: the working directory is the session's)."""
        key = (root, writable)
        fs = self._filesystems.get(key)
        if fs is None:
            fs = self._filesystems[key] = FileSystem(root, writable=writable)
        return fs

    def authenticate(self, name: str, password: str) -> Deferred[User | None]:
        """The User that ``name`` and ``password`` log in as, or None if they do not."""
        users = self.users
        if users is not None and not isinstance(users, Mapping):
            d = maybe_deferred(users, name, password)
            return d.add_callback(_as_user)
        return succeed(self._check(name, password))

    def _check(self, name: str, password: str) -> User | None:
        """:meth:`authenticate` without a checker callable: answered at once."""
        users = self.users
        if users is not None and name in users:
            entry = users[name]
            given = password.encode("utf-8", "surrogateescape")
            if not isinstance(entry, User):
                # a password: its User (frozen, so one may serve every login) and its bytes,
                # made once
                password_users = self._password_users
                key = str(entry)
                known = password_users.get(key)
                if known is None:
                    if len(password_users) >= 1024:
                        password_users.clear()
                    known = password_users[key] = (User(key), key.encode("utf-8",
                                                                         "surrogateescape"))
                user, expected_bytes = known
                return user if hmac.compare_digest(expected_bytes, given) else None
            expected = entry.password
            ok = expected is not None and hmac.compare_digest(
                expected.encode("utf-8", "surrogateescape"), given)
            return entry if ok else None
        if self.anonymous and name.lower() in _ANONYMOUS:
            # Anonymous is read-only beside named users, whatever ``writable`` says (as
            # vsftpd keeps anon_*_enable off): ``writable`` is meant for them. With no named
            # users anonymous is the only user, and ``writable`` is for it (pyftpdlib -w).
            return User(None, writable=False if self.named_users else None)
        return None

    @property
    def named_users(self) -> bool:
        """Whether named users may log in: a checker, or a mapping with someone in it."""
        users = self.users
        return users is not None and (not isinstance(users, Mapping) or len(users) > 0)

    def __repr__(self) -> str:
        return f"<FTPServerFactory of {self.root!r}, {len(self.sessions)} sessions>"


def _as_user(result: Any) -> User | None:
    if isinstance(result, User):
        return result
    if result is True:
        return User(None)
    if result is False or result is None:
        return None
    raise TypeError(f"the users checker answered {result!r}, not a bool or a User")


# ---- the protocol


class FTPServerProtocol(Protocol):
    """One FTP control connection, server side.

    Commands are answered in order; one that waits (a login being checked or delayed, a
    transfer) holds the ones after it, except ABOR, STAT and QUIT during a transfer
    (RFC 959 §4.1.3). ``role`` is ``"ftp-control"``; the data connections' protocols point
    back here with their ``control``.
    """

    display_name = "ftp server"
    role = "ftp-control"

    # Every attribute is a slot: a session held idle costs its slots, not a dict of them.
    __slots__ = (
        "factory", "transport", "reader", "pending", "peer_host", "peer_port", "local_host",
        "user", "username", "authenticated", "fs", "cwd", "type", "rest", "rnfr", "_rnfr",
        "channel", "transfer", "_in_use", "data_connections", "tls_control", "pbsz",
        "prot_private", "epsv_all", "mlst_facts", "failed_logins", "busy", "quitting", "lost",
        "counted", "_closed", "_running", "_paused", "_write_paused", "_run_scheduled",
        "_stat_pieces", "_stou_name", "_last", "_pasv_timer", "_login_timer",
    )

    def __init__(self, factory: FTPServerFactory) -> None:
        self.factory = factory
        self.transport: Any = None
        self.reader = CommandReader()
        #: the commands read and not yet acted on (a deque of its own only while some wait)
        self.pending: deque[Command | CommandError] = _NO_PENDING
        self.peer_host = "-"
        self.peer_port = 0
        self.local_host = "127.0.0.1"
        #: the name given by USER, waiting for PASS
        self.user: str | None = None
        #: the name logged in, once it is
        self.username: str | None = None
        self.authenticated = False
        self.fs: FileSystem | None = None
        self.cwd = "/"
        self.type = "A"  # RFC 959's default
        self.rest = 0
        self.rnfr: str | None = None
        self._rnfr: str | None = None  # RNFR's path, for the RNTO being answered
        self.channel: DataChannel | None = None
        self.transfer: Transfer | None = None
        self._in_use: DataChannel | None = None  # the channel of the transfer under way
        #: the data connections open now (for inspection; a list once there was one)
        self.data_connections: list[DataProtocol] = _NO_DATA_CONNECTIONS
        self.tls_control = False
        self.pbsz = False
        self.prot_private = False
        self.epsv_all = False
        #: the facts MLST/MLSD give (OPTS MLST replaces the list, never changes it)
        self.mlst_facts: list[str] = _ALL_FACTS
        self.failed_logins = 0
        self.busy = False  # a command waits for something: those after it wait too
        self.quitting = False
        self.lost = False
        self.counted = False
        self._closed = False
        self._running = False
        self._paused = False
        #: the control connection's write buffer is full (its transport paused us): no
        #: command is acted on until it drains, so replies never pile up without bound
        self._write_paused = False
        self._run_scheduled = False
        #: the rest of a ``STAT path`` reply, written as the control connection drains
        self._stat_pieces: Iterator[bytes] | None = None
        #: the name this session's STOU upload holds in factory.stou_names
        self._stou_name: tuple[str, str] | None = None
        #: when the last whole command line came (the idle timeout counts from it)
        self._last = 0.0
        #: closes a passive channel no transfer command took within data_timeout
        self._pasv_timer: Any = None
        self._login_timer: Any = None

    # ---- connection events

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        factory = self.factory
        peer = transport.peer
        self.peer_host = host = peer.host
        self.peer_port = peer.port
        # An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d: data connections
        # are plain IPv4 ones.
        self.local_host = transport.host.host.removeprefix("::ffff:")
        sessions = factory.sessions
        if len(sessions) >= factory.max_connections > 0:
            log.warning("refused %s: %d connections already (max_connections)",
                        host, len(sessions))
            self._send(Reply(421, "Too many connections; try again later."))
            self._close()
            return
        counts = factory.per_ip
        per_ip = counts.get(host, 0)
        if per_ip >= factory.max_connections_per_ip > 0:
            log.warning("refused %s: %d connections from it already (max_connections_per_ip)",
                        host, per_ip)
            self._send(Reply(421, "Too many connections from your address."))
            self._close()
            return
        sessions.add(self)
        counts[host] = per_ip + 1
        self.counted = True
        get_info = getattr(transport, "get_extra_info", None)
        sock = get_info("socket") if get_info is not None else None
        if sock is not None:
            try:
                # ABOR sent as urgent data (ftplib, Telnet Synch) stays in the stream.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            except (OSError, AttributeError):
                pass
        self.tls_control = getattr(transport, "tls", None) is not None
        # The transport tells (pause_producing/resume_producing) when the replies it holds
        # pass its high-water mark and when they drained.
        transport.register_producer(self, True)
        transport.write(factory.greeting)
        self._last = factory.clock.seconds()
        if factory.idle_timeout:
            factory._by_activity[self] = None
            if factory._idle_timer is None:
                factory._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        items = self.reader.feed(data)
        if not items:
            return
        # Only a whole command line counts as activity: a client trickling a byte at a
        # time, never ending its line, is idle (else it would hold its slot forever).
        factory = self.factory
        self._last = factory.clock.seconds()
        order = factory._by_activity
        if order.pop(self, 1) is None:  # it was there: now the most recently active
            order[self] = None
        pending = self.pending
        if pending:
            pending.extend(items)
        elif len(items) == 1 and not (self.busy or self._running or self._write_paused):
            # One command and nothing waiting (a client waiting for each reply): acted on
            # at once, as _run would, without a queue.
            self._running = True
            try:
                self._dispatch(items[0])
            finally:
                self._running = False
            return
        else:
            self.pending = pending = deque(items)
        if len(pending) >= MAX_PENDING and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._run()

    def eof_received(self) -> bool | None:
        return None  # the client is gone: close (a transfer under way is aborted)

    def connection_lost(self, reason: Failure) -> None:
        self.lost = True
        self._closed = True
        factory = self.factory
        if self.counted:
            self.counted = False
            factory.sessions.discard(self)
            left = factory.per_ip.get(self.peer_host, 1) - 1
            if left > 0:
                factory.per_ip[self.peer_host] = left
            else:
                factory.per_ip.pop(self.peer_host, None)
        order = factory._by_activity
        if order.pop(self, 0) is None and not order:
            factory._stop_idle_timer()  # the last session: no timer left behind
        timer, self._login_timer = self._login_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self._stou_name is not None:
            self._release_stou_name()
        if self.transfer is not None:
            self.transfer.abort(Reply(426, "Connection closed; transfer aborted."))
        if self.channel is not None or self._pasv_timer is not None:
            self._drop_channel()
        if self.authenticated:
            log.info("%s %s logged out", self.peer_host, self.username)
        self.pending = _NO_PENDING

    def stop_gracefully(self) -> None:
        """The server shuts down: close now when idle, else once the transfer is done."""
        if self._closed:
            return
        if self.transfer is None and not self.busy:
            self._send(Reply(421, "Server shutting down."))
            self._close()
        else:
            self.quitting = True

    # ---- helpers

    @property
    def display_user(self) -> str:
        """The user for logs: logged in, or given by USER, or ``-``."""
        return self.username or self.user or "-"

    def gone(self) -> bool:
        """Whether the client has gone (the control connection lost or ended)."""
        return self.lost or self._closed or peer_gone(self.transport)

    def _send(self, reply: Reply) -> None:
        if not self._closed:
            self.transport.write(reply.to_bytes())

    def reply(self, code: int, text: str | list[str]) -> None:
        """Send a reply (nothing once the connection is closing)."""
        if self._closed:
            return
        if isinstance(text, str):
            self.transport.write(_reply_bytes(code, text))
        else:
            self.transport.write(Reply(code, text).to_bytes())

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.close()

    def _idle_timed_out(self, timeout: float) -> None:
        """No command line for ``timeout`` seconds, and nothing under way (the factory's
        idle sweep calls this): 421 and close."""
        if self._write_paused:
            # It reads none of its replies: a 421 and a close would wait behind them
            # forever (close flushes first), keeping the connection and its buffer.
            log.info("%s %s: idle for %ss reading none of its replies, aborted",
                     self.peer_host, self.display_user, timeout)
            self._closed = True
            self.transport.abort()
            return
        log.info("%s %s: idle for %ss, disconnected", self.peer_host, self.display_user, timeout)
        self.reply(421, "Timeout: closing control connection.")
        self._close()

    # ---- the control transport's producer interface: backpressure on replies

    def pause_producing(self) -> None:
        self._write_paused = True

    def resume_producing(self) -> None:
        self._write_paused = False
        if self._closed:
            return
        if self._stat_pieces is not None:
            self._write_stat()
        else:
            self._run()

    def _blocking(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``f(*args)`` in the thread pool (at once when the reactor has none: a test's
        Clock)."""
        run = getattr(self.factory.reactor, "defer_to_thread", None)
        if run is None:
            return maybe_deferred(f, *args)
        d: Deferred[Any] = run(f, *args)
        return d

    def _ready_again(self) -> None:
        """What held the commands behind it (a listing being read) is done: go on."""
        self.busy = False
        if self._closed:
            return
        if self.quitting:  # the server is shutting down (stop_gracefully)
            self.reply(421, "Server shutting down.")
            self._close()
            return
        self._run()

    def _prepare_failed(self, failure: Failure, verb: str) -> None:
        if not self._closed:
            self._refused_transfer(verb)
            error = failure.value
            if isinstance(error, FSError):
                self.reply(error.code, str(error))
            else:
                log.error("Error answering %s from %s: %s", verb, self.peer_host,
                          failure.get_traceback())
                self.reply(451, "Requested action aborted: local error in processing.")
        self._ready_again()

    def stop_producing(self) -> None:
        pass  # connection_lost follows

    def _run_later(self) -> None:
        self._run_scheduled = False
        self._run()

    def _run(self) -> None:
        if self._running:
            return
        self._running = True
        done = 0
        try:
            while self.pending and not self._closed:
                if self._write_paused:
                    # The client does not read its replies: act on nothing more (and read
                    # nothing more, below, once MAX_PENDING wait) until they drain.
                    break
                if done >= COMMANDS_PER_TURN:
                    if not self._run_scheduled:
                        self._run_scheduled = True
                        self.factory.clock.call_soon(self._run_later)
                    break
                done += 1
                if self.busy:
                    if self.transfer is None:
                        break  # a login is being checked: everything waits
                    # (STAT with a path is a listing: it waits for the transfer)
                    urgent = next((c for c in self.pending
                                   if isinstance(c, Command) and c.verb in _URGENT
                                   and not (c.verb == "STAT" and c.arg.strip())), None)
                    if urgent is None:
                        break
                    self.pending.remove(urgent)
                    self._dispatch(urgent)
                    continue
                self._dispatch(self.pending.popleft())
        finally:
            self._running = False
        if not self.pending:
            self.pending = _NO_PENDING  # an idle session holds no deque
        if self._paused and len(self.pending) < MAX_PENDING // 2 and not self._closed:
            self._paused = False
            self.transport.resume_reading()

    def _dispatch(self, item: Command | CommandError) -> None:
        if isinstance(item, CommandError):
            self._send(item.reply)
            return
        verb, arg = item
        if _debug():
            log.debug("%s %s: %s", self.peer_host, self.display_user,
                      verb if verb == "PASS" else f"{verb} {arg}".rstrip())
        spec = _DISPATCH.get(verb)
        if spec is None:
            self.reply(500, "Unknown command.")
            return
        method, needs_login, takes = spec
        # (with no RNFR path and no REST offset this changes nothing: not done then)
        if self.rnfr is not None or self._rnfr is not None or self.rest:
            if verb != "RNTO":
                self._rnfr, self.rnfr = self.rnfr, None
            if self.rest and verb not in _KEEP_REST:
                self.rest = 0
            else:
                self._rnfr = self.rnfr
        if takes != "optional":
            if takes == "required":
                if not arg.strip():
                    self.reply(501, "Syntax error: command needs an argument.")
                    return
            elif arg and arg.strip():
                self.reply(501, "Syntax error: command takes no argument.")
                return
        if needs_login and not self.authenticated:
            self.reply(530, "Please log in with USER and PASS first.")
            return
        try:
            getattr(self, method)(arg)
        except FSError as e:
            self._refused_transfer(verb)
            self.reply(e.code, str(e))
        except CommandError as e:
            self._refused_transfer(verb)
            self._send(e.reply)
        except Exception:
            log.exception("Error answering %s from %s", verb, self.peer_host)
            self._refused_transfer(verb)
            self.reply(451, "Requested action aborted: local error in processing.")

    def _refused_transfer(self, verb: str) -> None:
        # A transfer command refused before it began (no such file...) gives its data
        # channel up, as vsftpd does: the client has connected it, or is about to, and
        # closes its end on the refusal; the next transfer makes a new one.
        if verb in _TRANSFER_VERBS and self.channel is not None:
            self._drop_channel()

    # ---- login

    def ftp_user(self, arg: str) -> None:
        if self.factory.require_tls and not self.tls_control:
            self.reply(534, "Policy requires TLS: send AUTH TLS first.")
            return
        if self.authenticated:
            self._logout("switching user")
        self.user = arg
        if not self._closed:
            self.transport.write(_PASSWORD_PLEASE)

    def ftp_pass_(self, arg: str) -> None:
        if self.authenticated:
            self.reply(503, "Already logged in.")
            return
        if self.user is None:
            self.reply(503, "Login with USER first.")
            return
        name, self.user = self.user, None
        self.busy = True
        factory = self.factory
        users = factory.users
        if (users is None or type(users) is dict or isinstance(users, Mapping)) and (
                type(factory).authenticate is FTPServerFactory.authenticate):
            self._login_checked(factory._check(name, arg), name)  # no Deferred to wait for
            return
        d = factory.authenticate(name, arg)
        # A checker's Deferred may be fired from anywhere (another cell in a Jupyter
        # kernel): the session goes on in the connection's context.
        in_context = self.transport.in_context
        d.add_callbacks(in_context(self._login_checked), in_context(self._login_error),
                        (name,), None, (name,))

    def _login_error(self, failure: Failure, name: str) -> None:
        log.error("checking the password of %r failed: %s", name, failure.get_traceback())
        self._login_checked(None, name)

    def _login_checked(self, user: User | None, name: str) -> None:
        if self._closed:
            return
        if user is None:
            self.failed_logins += 1
            log.warning("%s: failed login as %r (%d of %d)", self.peer_host, name,
                        self.failed_logins, self.factory.max_login_attempts)
            delay = self.factory.login_delay
            if delay > 0:
                self._login_timer = self.factory.clock.call_later(delay, self._login_refused,
                                                                  name)
            else:
                self._login_refused(name)
            return
        factory = self.factory
        root = user.root if user.root is not None else factory.root
        writable = user.writable if user.writable is not None else factory.writable
        try:
            fs = factory.filesystem(os.fspath(root), writable)
        except Exception as e:
            log.error("the root of %r (%s) cannot be served: %s", name, root, e)
            self.busy = False
            self.reply(530, "Login refused: this user's directory is not available.")
            self._run()
            return
        self.fs = fs
        self.username = name
        self.authenticated = True
        self.cwd = "/"
        log.info("%s %s logged in%s", self.peer_host, name, " (read-write)" if writable else "")
        self.busy = False
        if not self._closed:
            self.transport.write(_LOGGED_IN)
        if not self._running:  # (checked at once, from _dispatch: it goes on itself)
            self._run()

    def _login_refused(self, name: str) -> None:
        self._login_timer = None
        if self._closed:
            return
        self.reply(530, "Login incorrect.")
        limit = self.factory.max_login_attempts
        if limit and self.failed_logins >= limit:
            log.warning("%s: disconnected after %d failed logins (last as %r)", self.peer_host,
                        self.failed_logins, name)
            self._close()
            return
        self.busy = False
        self._run()

    def _logout(self, why: str) -> None:
        if self.authenticated:
            log.info("%s %s logged out (%s)", self.peer_host, self.username, why)
        self.authenticated = False
        self.username = None
        self.fs = None
        self.cwd = "/"
        self.rest = 0
        self.rnfr = None
        self._drop_channel()

    def ftp_acct(self, arg: str) -> None:
        self.reply(202, "ACCT not needed.")

    def ftp_rein(self, arg: str) -> None:
        self._logout("REIN")
        self.user = None
        self.type = "A"
        self.mlst_facts = _ALL_FACTS
        self.epsv_all = False
        self.reply(220, "Ready for new user.")

    def ftp_quit(self, arg: str) -> None:
        transfer = self.transfer
        if transfer is not None:
            self.quitting = True  # 221 once the transfer's reply is out (RFC 959 QUIT)
            if transfer.data is None:
                # Still waiting for its data connection: nothing is under way to finish,
                # so the client is not made to wait the data timeout (426, 221, closed).
                transfer.abort(Reply(426, "Transfer aborted: QUIT before the data "
                                          "connection."))
            return
        if not self._closed:
            self.transport.write(_GOODBYE)
        if self.authenticated:
            log.info("%s %s logged out (QUIT)", self.peer_host, self.username)
            self.authenticated = False
        self._close()

    # ---- TLS (RFC 4217)

    def ftp_auth(self, arg: str) -> None:
        tls = self.factory.tls
        if tls is None:
            self.reply(502, "AUTH not supported: this server has no TLS.")
            return
        if arg.strip().upper() not in ("TLS", "TLS-C", "SSL", "TLS-P"):
            self.reply(504, "AUTH type not supported; use AUTH TLS.")
            return
        if self.tls_control:
            self.reply(503, "Already using TLS.")
            return
        self.reply(234, "AUTH TLS successful.")
        # Whatever came after AUTH in clear is dropped: it must not pass for commands sent
        # under TLS (the STARTTLS command-injection attack).
        self.pending = _NO_PENDING
        self.reader = CommandReader()
        self.tls_control = True
        d = self.transport.start_tls(tls)
        d.add_errback(self._tls_failed)

    def _tls_failed(self, failure: Failure) -> None:
        log.info("%s: TLS on the control connection failed: %s", self.peer_host, failure.value)

    def ftp_pbsz(self, arg: str) -> None:
        if not self.tls_control:
            self.reply(503, "PBSZ not allowed on an insecure control connection.")
            return
        if not arg.strip().isdigit():
            self.reply(501, "PBSZ needs a number.")
            return
        self.pbsz = True
        self.reply(200, "PBSZ=0")

    def ftp_prot(self, arg: str) -> None:
        level = arg.strip().upper()
        if not self.tls_control:
            self.reply(503, "PROT not allowed on an insecure control connection.")
            return
        if not self.pbsz:
            self.reply(503, "You must issue the PBSZ command prior to PROT.")
            return
        if level == "P":
            self.prot_private = True
            self.reply(200, "Protection set to Private.")
        elif level == "C":
            if self.factory.require_tls:
                self.reply(534, "Policy requires protected data connections (PROT P).")
                return
            self.prot_private = False
            self.reply(200, "Protection set to Clear.")
        elif level in ("S", "E"):
            self.reply(536, f"PROT {level} not supported; use P or C.")
        else:
            self.reply(504, "Unknown PROT level; use P or C.")

    def ftp_ccc(self, arg: str) -> None:
        self.reply(534, "CCC refused: the control connection stays encrypted.")

    # ---- directories and paths

    def _fs(self) -> FileSystem:
        assert self.fs is not None
        return self.fs

    def _path(self, arg: str) -> str:
        return self._fs().resolve(self.cwd, arg)

    def ftp_pwd(self, arg: str) -> None:
        self.reply(257, f"{_quote(self._fs().display(self.cwd))} is the current directory.")

    def ftp_cwd(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        if not fs.is_dir(path):
            fs.stat(path)  # 550 no such file, if that is why
            self.reply(550, f"Not a directory: {fs.display(path)}")
            return
        self.cwd = path
        self.reply(250, f"Directory changed to {fs.display(path)}.")

    def ftp_cdup(self, arg: str) -> None:
        self.cwd = self._path("..")
        self.reply(200, f"Directory changed to {self._fs().display(self.cwd)}.")

    def ftp_mkd(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        fs.mkdir(path)
        self.reply(257, f"{_quote(fs.display(path))} created.")

    def ftp_rmd(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        if path == "/":
            self.reply(550, "Can't remove the root directory.")
            return
        fs.rmdir(path)
        if self.cwd == path or self.cwd.startswith(path + "/"):
            self.cwd = "/"
        self.reply(250, f"Directory removed: {fs.display(path)}.")

    def ftp_dele(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        fs.delete(path)
        self.reply(250, f"File deleted: {fs.display(path)}.")

    def ftp_rnfr(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        fs.stat(path)
        if not fs.writable:
            self.reply(550, f"Permission denied: {fs.display(path)}")
            return
        self.rnfr = path
        self.reply(350, "Ready for destination name.")

    def ftp_rnto(self, arg: str) -> None:
        source = self._rnfr
        self.rnfr = self._rnfr = None
        if source is None:
            self.reply(503, "Bad sequence of commands: send RNFR first.")
            return
        fs = self._fs()
        target = self._path(arg)
        fs.rename(source, target)
        self.reply(250, f"Renamed {fs.display(source)} to {fs.display(target)}.")

    def ftp_size(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        info = fs.stat(path)
        if info.is_dir:
            self.reply(550, f"Not a regular file: {fs.display(path)}")
            return
        if self.type == "A":
            # RFC 3659 §4: the size must be the size of the transfer, which in ASCII would
            # mean reading the whole file.
            self.reply(550, "SIZE not allowed in ASCII mode; send TYPE I first.")
            return
        self.reply(213, str(info.size))

    def ftp_mdtm(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        info = fs.stat(path)
        if info.is_dir or info.mtime is None:
            self.reply(550, f"Not a regular file: {fs.display(path)}")
            return
        self.reply(213, format_mdtm(info.mtime))

    def _perm(self, info: FileInfo) -> str:
        return _perm(info, self._fs().writable)

    def ftp_mlst(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        info = fs.stat(path)
        shown = dataclasses.replace(info, name=fs.display(path))
        entry = " " + mlsx_line(shown, self.mlst_facts, self._perm(info))
        self.reply(250, [f"Listing {fs.display(path)}", entry, "End."])

    def ftp_site(self, arg: str) -> None:
        what, _, rest = arg.strip().partition(" ")
        what = what.upper()
        if what == "HELP":
            self.reply(214, ["SITE commands:", " CHMOD <mode> <path>", " HELP", "End."])
            return
        if what != "CHMOD":
            self.reply(500, "Unknown SITE command.")
            return
        mode, _, name = rest.lstrip(" ").partition(" ")
        if not name or not mode or len(mode) > 4 or any(c not in "01234567" for c in mode):
            self.reply(501, "Syntax: SITE CHMOD <octal mode> <path>.")
            return
        if int(mode, 8) & 0o7000:
            # Refused, not masked: a user must not make set-user-ID, set-group-ID or sticky
            # files on the server's disk (a setuid file is a way to the server's account),
            # and a silently different mode would mislead the client.
            self.reply(550, "SITE CHMOD: setuid, setgid and sticky bits are not allowed.")
            return
        fs = self._fs()
        path = self._path(name)
        fs.chmod(path, int(mode, 8))
        self.reply(200, "SITE CHMOD successful.")

    # ---- settings

    def ftp_type(self, arg: str) -> None:
        words = arg.upper().split()
        if words in (["A"], ["A", "N"]):
            self.type = "A"
            self.reply(200, "Type set to A.")
        elif words in (["I"], ["L", "8"]):
            self.type = "I"
            self.reply(200, "Type set to I.")
        elif words and words[0] in ("A", "E", "I", "L"):
            self.reply(504, f"Type {arg.strip()} not implemented; use A or I.")
        else:
            self.reply(501, f"Unknown type {arg.strip()!r}.")

    def ftp_mode(self, arg: str) -> None:
        mode = arg.strip().upper()
        if mode == "S":
            self.reply(200, "Mode set to S.")
        elif mode in ("B", "C"):
            self.reply(504, f"Mode {mode} not implemented; only S.")
        else:
            self.reply(501, "Unknown mode.")

    def ftp_stru(self, arg: str) -> None:
        stru = arg.strip().upper()
        if stru == "F":
            self.reply(200, "Structure set to F.")
        elif stru in ("R", "P"):
            self.reply(504, f"Structure {stru} not implemented; only F.")
        else:
            self.reply(501, "Unknown structure.")

    def ftp_rest(self, arg: str) -> None:
        text = arg.strip()
        if not text.isdigit():
            self.reply(501, "REST needs a byte offset (0 or more).")
            return
        self.rest = int(text)
        self.reply(350, f"Restarting at {self.rest}. Send STORE or RETRIEVE.")

    def ftp_allo(self, arg: str) -> None:
        self.reply(202, "No storage allocation necessary.")

    def ftp_noop(self, arg: str) -> None:
        self.reply(200, "NOOP ok.")

    def ftp_syst(self, arg: str) -> None:
        self.reply(215, "UNIX Type: L8")

    def ftp_smnt(self, arg: str) -> None:
        self.reply(502, "SMNT not implemented.")

    def ftp_feat(self, arg: str) -> None:
        facts = "".join(f"{f}{'*' if f in self.mlst_facts else ''};" for f in MLST_FACTS)
        features = ["EPRT", "EPSV", "MDTM", f"MLST {facts}", "REST STREAM", "SIZE", "TVFS",
                    "UTF8"]
        if self.factory.tls is not None:
            features += ["AUTH TLS", "PBSZ", "PROT"]
        self.reply(211, ["Features:", *(" " + f for f in sorted(features)), "End"])

    def ftp_opts(self, arg: str) -> None:
        name, _, value = arg.strip().partition(" ")
        name = name.upper()
        value = value.strip()
        if name == "UTF8":
            if value.upper() in ("ON", ""):
                self.reply(200, "Always in UTF8 mode.")
            elif value.upper() == "OFF":
                self.reply(504, "UTF8 cannot be turned off.")
            else:
                self.reply(501, "OPTS UTF8 takes ON.")
        elif name == "MLST":
            asked = {f.strip().lower() for f in value.split(";") if f.strip()}
            self.mlst_facts = [f for f in MLST_FACTS if f in asked]
            self.reply(200, "MLST OPTS " + "".join(f + ";" for f in self.mlst_facts))
        else:
            self.reply(501, "Option not understood.")

    def ftp_help(self, arg: str) -> None:
        verb = arg.strip().upper()
        if verb:
            spec = _COMMANDS.get(verb)
            if spec is None:
                self.reply(501, "Unknown command.")
            else:
                self.reply(214, f"Syntax: {spec[3]}")
            return
        verbs = sorted(_COMMANDS)
        rows = [" " + " ".join(f"{v:<5}" for v in verbs[i:i + 10]).rstrip()
                for i in range(0, len(verbs), 10)]
        self.reply(214, ["The following commands are recognized:", *rows, "Help OK."])

    def ftp_stat(self, arg: str) -> None:
        if arg.strip():
            if not self.authenticated:
                self.reply(530, "Please log in with USER and PASS first.")
                return
            self._stat_path(_strip_list_options(arg))
            return
        lines = ["netshell FTP server status:",
                 f" Connected from {self.peer_host}:{self.peer_port}"]
        lines.append(f" Logged in as {self.username}" if self.authenticated
                     else " Not logged in")
        lines.append(f" TYPE: {'ASCII' if self.type == 'A' else 'BINARY'}; STRUcture: File; "
                     "MODE: Stream")
        tls = "TLS" if self.tls_control else "clear"
        prot = "P (private)" if self.prot_private else "C (clear)"
        lines.append(f" Control connection: {tls}; data protection: {prot}")
        transfer = self.transfer
        if transfer is not None:
            data = transfer.data
            count = transfer.bytes if data is None or transfer.direction == "in" else int(
                getattr(data.transport, "bytes_sent", 0))
            lines.append(f" Transferring: {transfer.verb} {transfer.path}, {count} bytes so far")
        elif self.channel is not None:
            where = (f"passive on port {self.channel.port}" if self.channel.passive
                     else f"active to {self.channel.address}")
            lines.append(f" Data connection: {where}")
        else:
            lines.append(" Data connection: none")
        self.reply(211, [*lines, "End of status."])

    def _stat_path(self, arg: str) -> None:
        fs = self._fs()
        path = self._path(arg)
        self.busy = True  # the commands after it wait for the whole reply
        d = self._blocking(_prepare_stat, fs, path)
        d.add_callbacks(self._stat_ready, self._prepare_failed, (), None, ("STAT",))

    def _stat_ready(self, pieces: list[bytes]) -> None:
        if self._closed:
            self.busy = False
            return
        self._stat_pieces = iter(pieces)
        self._write_stat()

    def _write_stat(self) -> None:
        """Write the STAT listing's next pieces while the control connection takes them."""
        pieces = self._stat_pieces
        while pieces is not None and not self._write_paused and not self._closed:
            piece = next(pieces, None)
            if piece is None:
                self._stat_pieces = None
                self._ready_again()
                return
            self.transport.write(piece)

    # ---- data connections

    def _drop_channel(self) -> None:
        self._stop_pasv_timer()
        channel, self.channel = self.channel, None
        if channel is not None:
            channel.close()

    def data_connection_made(self, protocol: DataProtocol) -> None:
        """A data connection of this session is up (called by its channel)."""
        if self.data_connections is _NO_DATA_CONNECTIONS:
            self.data_connections = []
        self.data_connections.append(protocol)

    def data_connection_lost(self, protocol: DataProtocol) -> None:
        """A data connection of this session is gone (called by its protocol)."""
        if protocol in self.data_connections:
            self.data_connections.remove(protocol)

    def _family_ok(self, family: int) -> bool:
        return family == (2 if ":" in self.local_host else 1)

    def _family_unsupported(self) -> None:
        """522 with the one family this connection's data connections use (RFC 2428 §2):
        the same list whatever family was asked for."""
        ours = 2 if ":" in self.local_host else 1
        self.reply(522, f"Network protocol not supported, use ({ours})")

    def ftp_pasv(self, arg: str) -> None:
        if self.epsv_all:
            self.reply(503, "PASV not allowed after EPSV ALL.")
            return
        if not self._family_ok(1):
            self.reply(425, "PASV is for IPv4; use EPSV.")
            return
        if self._listen():
            assert self.channel is not None
            host = self.factory.masquerade_address or self.local_host
            self.reply(227, format_pasv(host, self.channel.port))

    def ftp_epsv(self, arg: str) -> None:
        value = arg.strip().upper()
        if value == "ALL":
            self.epsv_all = True
            self.reply(200, "EPSV ALL ok.")
            return
        if value:
            if not value.isdigit():
                self.reply(501, "EPSV takes 1, 2 or ALL.")
                return
            if not self._family_ok(int(value)):
                self._family_unsupported()
                return
        if self._listen():
            assert self.channel is not None
            self.reply(229, format_epsv(self.channel.port))

    def _listen(self) -> bool:
        self._drop_channel()
        try:
            self.channel = DataChannel.listen(self, self.local_host, self.factory.passive_ports)
        except OSError as e:
            log.warning("%s: no passive port could be had: %s", self.peer_host, e)
            self.reply(425, "Can't open passive connection.")
            return False
        timeout = self.factory.data_timeout
        if timeout:
            self._pasv_timer = self.factory.clock.call_later(timeout, self._pasv_expired,
                                                             self.channel)
        return True

    def _stop_pasv_timer(self) -> None:
        timer, self._pasv_timer = self._pasv_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _pasv_expired(self, channel: DataChannel) -> None:
        """No transfer command took the passive channel within data_timeout: give its port
        back (PASV and NOOPs forever would hold ports until passive_ports ran out).

        Closed quietly, as vsftpd's accept_timeout and pure-ftpd do, not with pyftpdlib's
        unasked 421 that also ends the control connection: a reply nobody asked for would
        be read as the answer to the client's next command. The session lives on; a
        transfer command after this gets 425 "Use PORT or PASV first."."""
        self._pasv_timer = None
        if self.channel is not channel or self._closed:
            return
        log.info("%s %s: passive data channel on port %d unused for %ss: closed",
                 self.peer_host, self.display_user, channel.port, self.factory.data_timeout)
        self._drop_channel()

    def ftp_port(self, arg: str) -> None:
        if self.epsv_all:
            self.reply(503, "PORT not allowed after EPSV ALL.")
            return
        if not self._family_ok(1):
            self._family_unsupported()
            return
        host, port = parse_port(arg)
        self._active(host, port, "PORT")

    def ftp_eprt(self, arg: str) -> None:
        if self.epsv_all:
            self.reply(503, "EPRT not allowed after EPSV ALL.")
            return
        try:
            family, host, port = parse_eprt(arg)
        except CommandError as e:
            if e.reply.code == 522:  # a family we have not: this connection's, as below
                self._family_unsupported()
                return
            raise
        if not self._family_ok(family):
            self._family_unsupported()
            return
        self._active(host, port, "EPRT")

    def _active(self, host: str, port: int, verb: str) -> None:
        # RFC 2577 §3: no bounce. Only the client's own address, never a privileged port.
        if not same_host(host, self.peer_host):
            log.warning("%s %s: refused %s to %s:%d (not the client's address: a bounce)",
                        self.peer_host, self.display_user, verb, host, port)
            self.reply(500, f"Illegal {verb} command: not your address.")
            return
        if port < 1024:
            log.warning("%s %s: refused %s to privileged port %d", self.peer_host,
                        self.display_user, verb, port)
            self.reply(504, f"Illegal {verb} command: privileged port refused.")
            return
        self._drop_channel()
        self.channel = DataChannel.connect_to(self, host, port)
        self.reply(200, f"{verb} command successful.")

    # ---- transfers

    def _take_channel(self) -> DataChannel | None:
        if self.factory.require_tls and not self.prot_private:
            self.reply(522, "Data connections must be encrypted: send PROT P.")
            return None
        channel = self.channel
        if channel is None:
            self.reply(425, "Use PORT or PASV first.")
            return None
        return channel

    def _start(
        self,
        channel: DataChannel,
        transfer: Transfer,
        begin: Callable[[Transfer, DataProtocol], None],
        preliminary: str | None = None,
    ) -> None:
        if self.channel is channel:
            self._stop_pasv_timer()
        self.channel = None
        self._in_use = channel
        self.transfer = transfer
        self.busy = True
        if channel.connected:
            self.reply(125, preliminary or "Data connection already open. Transfer starting.")
        else:
            self.reply(150, preliminary or "File status okay. About to open data connection.")

        def connected(protocol: DataProtocol) -> None:
            if transfer.finished:
                if not protocol.lost:
                    protocol.transport.abort()
                return
            begin(transfer, protocol)

        def refused(failure: Failure) -> None:
            reason = failure.value
            reply = (reason.reply if isinstance(reason, DataRefused)
                     else Reply(425, "Can't open data connection."))
            transfer.abort(reply)

        d = channel.connection(self.factory.data_timeout)
        d.add_callbacks(connected, refused)

    def _transfer_done(self, reply: Reply, transfer: Transfer) -> None:
        if self.transfer is transfer:
            self.transfer = None
            self.busy = False
            self._release_stou_name()
        channel, self._in_use = self._in_use, None
        if channel is not None:
            channel.close()
        self._log_transfer(transfer)
        if self._closed:
            return
        self._send(reply)
        if self.quitting:
            self.reply(221, "Goodbye.")
            self._close()
            return
        self._run()

    def _log_transfer(self, transfer: Transfer) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        record = {
            "peer": self.peer_host,
            "user": self.display_user,
            "command": transfer.verb,
            "direction": transfer.direction,
            "path": transfer.path,
            "bytes": transfer.bytes,
            "seconds": round(transfer.seconds, 3),
            "type": "ascii" if transfer.ascii else "binary",
            "complete": transfer.complete,
        }
        log.info(
            "%s %s %s %s %s bytes in %.3f s (%s, %s) %s",
            self.peer_host, self.display_user, transfer.verb, transfer.path,
            f"{transfer.bytes:,}",
            transfer.seconds, "out" if transfer.direction == "out" else "in", record["type"],
            "complete" if transfer.complete else "incomplete",
            extra={"ftp_transfer": record},
        )

    def _take_rest(self) -> int:
        rest, self.rest = self.rest, 0
        return rest

    def ftp_retr(self, arg: str) -> None:
        channel = self._take_channel()
        if channel is None:
            return
        fs = self._fs()
        path = self._path(arg)
        rest = self._take_rest()
        file = fs.open_read(path, rest)
        ascii = self.type == "A"
        transfer = Transfer(self, "RETR", fs.display(path), "out", self._transfer_done)
        transfer._file = file
        transfer.ascii = ascii
        self._start(channel, transfer,
                    lambda t, data: t.send_file(data, file, rest, ascii))

    def _upload(self, verb: str, arg: str) -> None:
        if verb in ("STOU", "APPE") and self.rest:
            # APPE writes at the end, STOU a new file: an offset means nothing to them
            # (pyftpdlib refuses them the same way); the offset is dropped.
            self.rest = 0
            self.reply(450, f"Can't {verb} while REST request is pending.")
            return
        channel = self._take_channel()
        if channel is None:
            return
        fs = self._fs()
        preliminary = None
        if verb == "STOU":
            hint = arg.strip()
            path = self._unique_name(fs, hint)
            name = (fs.root, path)
            self.factory.stou_names.add(name)
            self._stou_name = name
            try:
                upload = fs.open_upload(path)
            except BaseException:
                self._release_stou_name()
                raise
            # RFC 1123 §4.1.2.9: "FILE: name"; the path when the hint named a directory
            shown = fs.display(path)
            preliminary = f"FILE: {shown if '/' in hint else shown.rsplit('/', 1)[-1]}"
        else:
            path = self._path(arg)
            rest = self._take_rest()
            if verb == "APPE":
                upload = fs.open_upload(path, append=True)
            else:
                upload = fs.open_upload(path, offset=rest)
        ascii = self.type == "A"
        transfer = Transfer(self, verb, fs.display(path), "in", self._transfer_done)
        transfer.upload = upload
        transfer.ascii = ascii
        self._start(channel, transfer, lambda t, data: t.receive(data, upload, ascii),
                    preliminary)

    def _unique_name(self, fs: FileSystem, hint: str) -> str:
        """A path for STOU that no file has and no other STOU upload is writing: the
        hint's name (in the hint's directory, else the working directory), else
        ``name.1``, ``name.2``... (``file`` without a hint)."""
        if hint:
            target = self._path(hint)
            directory, _, base = target.rpartition("/")
            directory = directory or "/"
        else:
            directory, base = self.cwd, "file"
        taken = self.factory.stou_names
        path = fs.unique_name(directory, base)
        n = 0
        while (fs.root, path) in taken:
            n += 1
            path = fs.unique_name(directory, f"{base}.{n}")
        return path

    def _release_stou_name(self) -> None:
        name, self._stou_name = self._stou_name, None
        if name is not None:
            self.factory.stou_names.discard(name)

    def ftp_stor(self, arg: str) -> None:
        self._upload("STOR", arg)

    def ftp_appe(self, arg: str) -> None:
        self._upload("APPE", arg)

    def ftp_stou(self, arg: str) -> None:
        self._upload("STOU", arg)

    def _listing(self, verb: str, arg: str) -> None:
        channel = self._take_channel()
        if channel is None:
            return
        fs = self._fs()
        path = self._path(_strip_list_options(arg) if verb != "MLSD" else arg)
        # Read and formatted in the thread pool; the commands after it wait (busy), as
        # they would for the transfer.
        self.busy = True
        d = self._blocking(_prepare_listing, fs, verb, path, list(self.mlst_facts))
        d.add_callbacks(self._listing_ready, self._prepare_failed,
                        (verb, channel, fs.display(path)), None, (verb,))

    def _listing_ready(self, chunks: list[bytes], verb: str, channel: DataChannel,
                       shown: str) -> None:
        if self._closed:
            self.busy = False
            return
        if channel.closed or self.channel is not channel:
            self.reply(425, "Use PORT or PASV first.")  # the channel was given up meanwhile
            self._ready_again()
            return
        self.busy = False
        transfer = Transfer(self, verb, shown, "out", self._transfer_done)
        transfer.ascii = True  # listings are text (for the log)
        self._start(channel, transfer, lambda t, data: t.send_chunks(data, chunks))
        self._run()

    def ftp_list(self, arg: str) -> None:
        self._listing("LIST", arg)

    def ftp_nlst(self, arg: str) -> None:
        self._listing("NLST", arg)

    def ftp_mlsd(self, arg: str) -> None:
        self._listing("MLSD", arg)

    def ftp_abor(self, arg: str) -> None:
        transfer = self.transfer
        if transfer is not None:
            transfer.abort(Reply(426, "Transfer aborted."))
            self.reply(226, "ABOR command successful.")
            return
        if self.channel is not None:
            self._drop_channel()
            self.reply(225, "ABOR command successful; data channel closed.")
            return
        self.reply(225, "No transfer to abort.")

    def __repr__(self) -> str:
        return f"<FTPServerProtocol {self.peer_host} {self.display_user}>"


# ---- serve


def serve(
    root: str | os.PathLike[str],
    port: int = 0,
    interface: str = "127.0.0.1",
    users: Any = None,
    anonymous: bool = True,
    writable: bool = False,
    tls: Any = None,
    passive_ports: Iterable[int] | None = None,
    masquerade_address: str | None = None,
    *,
    implicit_tls: bool = False,
    require_tls: bool = False,
    require_tls_reuse: bool = False,
    max_connections: int = 512,
    max_connections_per_ip: int = 64,
    idle_timeout: float = 300.0,
    data_timeout: float = 60.0,
    max_login_attempts: int = 3,
    login_delay: float = 1.0,
    banner: str | Iterable[str] = DEFAULT_BANNER,
    backlog: int = 1024,
) -> Listener:
    """Serve the directory ``root`` over FTP on ``interface:port``; returns the Listener.

    ``users`` maps names to passwords (``{"alice": "secret"}``) or to :class:`User` values
    (a root and rights of their own), or is a callable ``(name, password)`` answering a
    bool, a User or a Deferred of either. ``anonymous`` lets ``anonymous``/``ftp`` in with
    any password. ``writable`` gives write rights (upload, delete, rename, MKD/RMD, SITE
    CHMOD) to the named users, except those whose User says ``writable=False``; a User
    with ``writable=True`` has them even when ``writable`` is False. Anonymous sessions are
    read-only whenever named users are given (``users`` a callable or a non-empty dict),
    whatever ``writable`` says; with no named users, anonymous is the only user and
    ``writable=True`` applies to it.

    FTPS: ``tls`` is a server context (``tls.server_context(cert, key)``, or one made from
    ``tls.self_signed()``); clients secure the control connection with AUTH TLS and data
    connections with PROT P. ``implicit_tls`` speaks TLS from the first byte instead
    (port 990's way); ``require_tls`` refuses USER before AUTH TLS and data connections
    without PROT P; ``require_tls_reuse`` refuses a data connection whose TLS handshake does
    not resume the session (as vsftpd's ``require_ssl_reuse``).

    ``passive_ports`` (a range) are the ports PASV/EPSV pick from at random;
    ``masquerade_address`` is the address PASV announces (behind NAT). Limits:
    ``max_connections`` overall and ``max_connections_per_ip`` (0: no limit; beyond them 421),
    ``idle_timeout`` seconds without a command (421), ``data_timeout`` seconds for a data
    connection to come or to make progress (425/426), ``max_login_attempts`` failed PASS
    before the connection is dropped, each answered only after ``login_delay`` seconds.
    ``banner`` is the 220 greeting. Raises ValueError when ``root`` is not a directory or
    a TLS option lacks ``tls``, OSError when the port is taken.

    >>> from protocols import ftp
    >>> listener = ftp.serve(".", users={"bob": ftp.User("pw", writable=True)})
    >>> listener.factory.users["bob"].writable
    True
    >>> _ = listener.close()
    """
    reactor = get_reactor()
    factory = FTPServerFactory(
        root,
        users=users,
        anonymous=anonymous,
        writable=writable,
        tls=tls,
        passive_ports=passive_ports,
        masquerade_address=masquerade_address,
        implicit_tls=implicit_tls,
        require_tls=require_tls,
        require_tls_reuse=require_tls_reuse,
        max_connections=max_connections,
        max_connections_per_ip=max_connections_per_ip,
        idle_timeout=idle_timeout,
        data_timeout=data_timeout,
        max_login_attempts=max_login_attempts,
        login_delay=login_delay,
        banner=banner,
        reactor=reactor,
    )
    if implicit_tls:
        return reactor.listen_tls(port, factory, tls, interface=interface, backlog=backlog)
    return reactor.listen_tcp(port, factory, interface=interface, backlog=backlog)
