"""Real FTP servers for the tests: pyftpdlib, vsftpd and Twisted's FTP, each in its own process.

Each helper is an async context manager that starts the server on a port of its own
(never 21), waits until it answers with its ``220`` banner, yields an :class:`FTPPeer`
(``host``, ``port``, ``user``, ``password``, and ``ca`` for FTPS) and always stops it,
also when the test fails::

    async with pyftpdlib_server(tmp_path, user="u", password="p") as server:
        ... ftplib.FTP().connect(server.host, server.port) ...

Nothing waits on a fixed sleep: the Python servers say ``READY`` on stdout once their
socket listens; vsftpd says nothing, so its port is tried on the loop (a refused connect
comes back at once) until its banner arrives. A missing program or module skips the
test on a developer machine and fails it under CI (tests/conftest.py).
See shared/PEERS.md for the configurations, and the pitfalls they work around.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import Peer, free_port, require, start_peer

from netshell import tls

__all__ = [
    "FTPPeer",
    "pyftpdlib_server",
    "require_module",
    "twisted_ftp_server",
    "vsftpd_server",
]

HOST = "127.0.0.1"
READY = "READY"
START_TIMEOUT = 15.0


@dataclass
class FTPPeer:
    """A running FTP server: where it listens, who may log in, and what it trusts.

    ``user``/``password`` are None for an anonymous-only server (log in as
    ``anonymous``). ``ca`` is the PEM file of the authority that signed an FTPS
    server's certificate (trust it, and the certificate is valid for ``localhost``
    and ``127.0.0.1``). ``upload`` is the directory (an FTP path) a writable vsftpd
    lets anonymous users write into ("/" elsewhere). ``name`` says which server it is.
    """

    name: str
    host: str
    port: int
    root: Path
    user: str | None = None
    password: str | None = None
    ca: Path | None = None
    tls: bool = False
    upload: str = "/"
    peer: Peer | None = None

    @property
    def login(self) -> tuple[str, str]:
        """(user, password) to log in with: the server's user, or anonymous."""
        if self.user is None:
            return "anonymous", "netshell@example.test"
        return self.user, self.password or ""

    @property
    def url(self) -> str:
        """``ftp://user:password@host:port/`` (curl's form; anonymous without credentials)."""
        who = f"{self.user}:{self.password}@" if self.user is not None else ""
        return f"ftp://{who}{self.host}:{self.port}/"


def require_module(name: str) -> None:
    """Skip unless the Python module ``name`` imports (under CI: fail, by conftest)."""
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:
        found = False
    if not found:
        pytest.skip(
            f"test peer {name!r} (Python) is not installed "
            "(pip install -e '.[test,bench]'; see shared/PEERS.md)"
        )


def _work_dir(prefix: str) -> Path:
    """A fresh directory for a server's configuration, 0755 (daemons drop privileges)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    return work


# ---- pyftpdlib

_PYFTPDLIB = """
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.servers import FTPServer
host, port, root, user, password, perm, certfile, keyfile, passive = sys.argv[1:10]
logging.basicConfig(level=logging.WARNING)
authorizer = DummyAuthorizer()
if user:
    authorizer.add_user(user, password, root, perm=perm)
else:
    authorizer.add_anonymous(root, perm=perm)
if certfile:
    from pyftpdlib.handlers import TLS_FTPHandler as Handler
    Handler.certfile = certfile
    Handler.keyfile = keyfile
    Handler.tls_control_required = True
    Handler.tls_data_required = True
else:
    from pyftpdlib.handlers import FTPHandler as Handler
Handler.authorizer = authorizer
if passive:
    low, high = map(int, passive.split("-"))
    Handler.passive_ports = list(range(low, high + 1))
Handler.permit_foreign_addresses = False
Handler.banner = "pyftpdlib ready"
Handler.auth_failed_timeout = 0.1  # not 3 s after a wrong password: tests stay fast
server = FTPServer((host, int(port)), Handler)
print("READY", server.address[1], flush=True)
server.serve_forever(handle_exit=True)
"""


@contextlib.asynccontextmanager
async def pyftpdlib_server(
    root: str | os.PathLike[str],
    user: str | None = None,
    password: str | None = None,
    writable: bool = True,
    tls: bool = False,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    passive_ports: range | None = None,
) -> AsyncIterator[FTPPeer]:
    """pyftpdlib serving ``root`` on a port of its own.

    With ``user`` (and ``password``) only that user may log in; without, anonymous
    (any password). ``writable`` gives every write right (``elradfmwMT``), else read
    only (``elr``). ``tls=True`` runs ``TLS_FTPHandler`` with ``tls_control_required``
    and ``tls_data_required`` (AUTH TLS before USER, PROT P before transfers), with
    ``certfile``/``keyfile`` or a throwaway certificate from
    :func:`netshell.tls.self_signed_files` (its authority in ``.ca``). Passive ports
    are the kernel's pick, or taken from ``passive_ports`` (a range). A wrong
    password is answered after 0.1 s, not pyftpdlib's 3 s.
    """
    require_module("pyftpdlib")
    if tls:
        require_module("OpenSSL")
    work = _work_dir("ftp-pyftpdlib-")
    ca: Path | None = None
    cert = key = ""
    try:
        if tls:
            if certfile is None:
                cert_path, key_path, ca = _certificates(work)
                cert, key = str(cert_path), str(key_path)
            else:
                cert = str(certfile)
                key = str(keyfile) if keyfile is not None else cert
        port = free_port(HOST)
        argv_tail = [
            HOST,
            str(port),
            str(root),
            user or "",
            password or "",
            "elradfmwMT" if writable else "elr",
            cert,
            key,
            f"{passive_ports[0]}-{passive_ports[-1]}" if passive_ports else "",
        ]
        script = work / "pyftpdlib_server.py"
        script.write_text(_PYFTPDLIB, encoding="utf-8")
        peer = await start_peer(
            [sys.executable, str(script), *argv_tail],
            ready=rf"^{READY}\b",
            ready_on="stdout",
            timeout=START_TIMEOUT,
        )
        try:
            yield FTPPeer(
                "pyftpdlib", HOST, port, Path(root), user, password, ca, tls, peer=peer
            )
        finally:
            await peer.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _certificates(work: Path) -> tuple[Path, Path, Path]:
    """A throwaway certificate for localhost and 127.0.0.1 in ``work``: (cert, key, ca)."""
    return tls.self_signed_files(work / "tls", "localhost", "127.0.0.1")


# ---- vsftpd

_VSFTPD_CONF = """\
listen=YES
listen_ipv6=NO
background=NO
listen_address={host}
listen_port={port}
anonymous_enable=YES
no_anon_password=YES
anon_root={root}
local_enable=NO
write_enable={write}
secure_chroot_dir={empty}
pasv_enable=YES
pasv_address={host}
seccomp_sandbox=NO
connect_from_port_20=NO
xferlog_enable=NO
vsftpd_log_file={work}/vsftpd.log
dual_log_enable=NO
use_localtime=NO
"""

_VSFTPD_WRITE = """\
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_umask=022
"""

_VSFTPD_TLS = """\
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
require_ssl_reuse={reuse}
ssl_ciphers=HIGH
rsa_cert_file={cert}
rsa_private_key_file={key}
"""

VSFTPD_UPLOAD = "upload"


@contextlib.asynccontextmanager
async def vsftpd_server(
    root: str | os.PathLike[str],
    tls: bool = False,
    require_ssl_reuse: bool = True,
    writable: bool = False,
) -> AsyncIterator[FTPPeer]:
    """vsftpd serving ``root`` to anonymous users on a port of its own, in the foreground.

    The configuration of shared/PEERS.md: anonymous (``anonymous`` or ``ftp``, no
    password asked), read-only, passive mode on 127.0.0.1. ``root`` is made 0755
    (vsftpd reads it as the ``ftp`` user after its chroot: at 0700 listings come back
    empty). ``tls=True`` adds FTPS with a throwaway certificate (its authority in
    ``.ca``): TLS required for the login and for data, and with ``require_ssl_reuse``
    (vsftpd's default) a data connection must resume the control connection's TLS
    session, which Python's ``ftplib.FTP_TLS`` does not do (``522``).

    ``writable=True``: vsftpd refuses to serve a chroot its user can write to (``500
    OOPS: refusing to run with writable root inside chroot()``), so the root stays
    not writable and anonymous users may upload, make directories, rename and delete
    in its subdirectory ``upload`` (made if missing, given to the ``ftp`` user with
    all it holds); ``.upload`` is its FTP path, ``/upload``.
    """
    vsftpd = require("vsftpd")
    root_path = Path(root)
    root_path.chmod(0o755)
    upload = "/"
    if writable:
        upload = _writable_upload_dir(root_path)
    work = _work_dir("ftp-vsftpd-")
    try:
        empty = work / "empty"
        empty.mkdir(mode=0o755)
        port = free_port(HOST)
        conf = _VSFTPD_CONF.format(
            host=HOST,
            port=port,
            root=root_path,
            write="YES" if writable else "NO",
            empty=empty,
            work=work,
        )
        if writable:
            conf += _VSFTPD_WRITE
        ca: Path | None = None
        if tls:
            cert, key, ca = _certificates(work)
            conf += _VSFTPD_TLS.format(
                reuse="YES" if require_ssl_reuse else "NO", cert=cert, key=key
            )
        conf_path = work / "vsftpd.conf"
        conf_path.write_text(conf, encoding="utf-8")
        stderr_path = work / "stderr"
        with open(stderr_path, "wb") as stderr:
            argv = [vsftpd, str(conf_path)]
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        peer = Peer(proc, argv)
        try:
            await _wait_for_banner(peer, port, stderr_path)
            yield FTPPeer(
                "vsftpd", HOST, port, root_path, None, None, ca, tls, upload, peer=peer
            )
        finally:
            await peer.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _writable_upload_dir(root: Path) -> str:
    """Make ``root/upload`` (and all in it) the ``ftp`` user's; its FTP path."""
    try:
        import pwd

        ftp = pwd.getpwnam("ftp")
    except KeyError:
        pytest.skip("test peer vsftpd: its 'ftp' user is missing (apt-get install vsftpd)")
    if os.geteuid() != 0:
        pytest.skip("a writable vsftpd needs root, to give its upload directory to 'ftp'")
    upload = root / VSFTPD_UPLOAD
    upload.mkdir(mode=0o755, exist_ok=True)
    for path in [upload, *upload.rglob("*")]:
        os.chown(path, ftp.pw_uid, ftp.pw_gid, follow_symlinks=False)
    return "/" + VSFTPD_UPLOAD


async def _wait_for_banner(peer: Peer, port: int, stderr_path: Path) -> None:
    """Try ``port`` on the loop until a ``220`` banner comes; fail if the server ends first.

    A refused connect comes back at once, so the attempts are spaced by short awaits
    on the loop (nothing else waits); after START_TIMEOUT seconds, TimeoutError.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while True:
        if peer.proc.returncode is not None:
            said = stderr_path.read_text(errors="replace")
            code = peer.proc.returncode
            raise RuntimeError(f"vsftpd exited ({code}) before it was ready: {said}")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
        except (ConnectionRefusedError, TimeoutError):
            if loop.time() > deadline:
                raise TimeoutError(f"vsftpd did not listen on port {port}") from None
            await asyncio.sleep(0.005)
            continue
        try:
            banner = await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if not banner.startswith(b"220"):
            raise RuntimeError(f"vsftpd answered {banner!r}, not a 220 banner")
        return


# ---- Twisted

_TWISTED = """
import sys
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import epollreactor
epollreactor.install()
from twisted.internet import reactor
from twisted.protocols.ftp import BaseFTPRealm, FTPFactory
from twisted.python.filepath import FilePath
host, port, root, user, password = sys.argv[1:6]
class Realm(BaseFTPRealm):
    def getHomeDirectory(self, avatarId):
        return FilePath(root)
checker = InMemoryUsernamePasswordDatabaseDontUse()
checker.addUser(user, password)  # str, not bytes: bytes fail the login
factory = FTPFactory(Portal(Realm(root), [checker]))
listening = reactor.listenTCP(int(port), factory, interface=host)
print("READY", listening.getHost().port, flush=True)
reactor.run()
"""


@contextlib.asynccontextmanager
async def twisted_ftp_server(
    root: str | os.PathLike[str], user: str = "u", password: str = "p"
) -> AsyncIterator[FTPPeer]:
    """Twisted's FTP server (``FTPFactory``, epoll reactor) serving ``root`` to one user.

    The recipe of shared/PEERS.md: a realm whose home directory is ``root`` for
    everyone, an in-memory checker with ``user``/``password`` (read-write, Twisted's
    ``FTPShell``). No anonymous login, no FTPS, no REST/APPE/MLSD (Twisted has none).
    """
    require_module("twisted")
    work = _work_dir("ftp-twisted-")
    try:
        port = free_port(HOST)
        script = work / "twisted_ftp.py"
        script.write_text(_TWISTED, encoding="utf-8")
        peer = await start_peer(
            [sys.executable, str(script), HOST, str(port), str(root), user, password],
            ready=rf"^{READY}\b",
            ready_on="stdout",
            timeout=START_TIMEOUT,
        )
        try:
            yield FTPPeer("twisted", HOST, port, Path(root), user, password, peer=peer)
        finally:
            await peer.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
