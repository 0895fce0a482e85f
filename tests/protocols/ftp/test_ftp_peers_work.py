"""The FTP peers of tests/ftp_peers.py start and serve, to clients no one here wrote.

Against each peer (pyftpdlib plain and FTPS, vsftpd plain, writable and FTPS, Twisted),
Python's ftplib logs in, lists and downloads a file whose content it knows; the
writable ones take an upload. vsftpd with ``require_ssl_reuse=YES`` documents the
behaviour netshell's client must beat: ftplib's FTPS data connection does not resume
the control connection's TLS session, and is refused, while curl's (which does) gets
the file.
"""

from __future__ import annotations

import ftplib
import io
import os
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from ftp_peers import FTPPeer, pyftpdlib_server, twisted_ftp_server, vsftpd_server
from peers import free_port, run_peer

import netshell as ns

pytestmark = pytest.mark.timeout(60)

CONTENT = b"netshell FTP peers\r\n" + os.urandom(70_000)
NAME = "known.bin"


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    (root / NAME).write_bytes(CONTENT)
    (root / "sub").mkdir(mode=0o755)
    return root


def _ftp(server: FTPPeer) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect(server.host, server.port, timeout=10)
    ftp.login(*server.login)
    return ftp


def _ftp_tls(server: FTPPeer) -> ftplib.FTP_TLS:
    assert server.ca is not None
    context = ssl.create_default_context(cafile=str(server.ca))
    ftp = ftplib.FTP_TLS(context=context)
    ftp.connect(server.host, server.port, timeout=10)
    ftp.auth()
    ftp.login(*server.login)
    ftp.prot_p()
    return ftp


def _list_and_fetch(ftp: ftplib.FTP) -> tuple[list[str], list[str], bytes]:
    """NLST, LIST and RETR of the known file over one logged-in session; then QUIT."""
    try:
        names = sorted(ftp.nlst("."))  # Twisted wants the argument
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        got = io.BytesIO()
        ftp.retrbinary(f"RETR {NAME}", got.write)
        return names, lines, got.getvalue()
    finally:
        ftp.quit()


async def _check_serves(server: FTPPeer, connect: Callable[[FTPPeer], ftplib.FTP]) -> None:
    def work() -> tuple[list[str], list[str], bytes]:
        return _list_and_fetch(connect(server))

    names, lines, got = await ns.defer_to_thread(work)
    assert [n.rsplit("/", 1)[-1] for n in names] == [NAME, "sub"]
    assert len(lines) == 2 and any(line.endswith(" " + NAME) for line in lines), lines
    assert got == CONTENT


def _upload(server: FTPPeer, connect: Callable[[FTPPeer], ftplib.FTP], data: bytes) -> None:
    ftp = connect(server)
    try:
        ftp.cwd(server.upload)
        ftp.storbinary("STOR up.bin", io.BytesIO(data))
        assert ftp.size("up.bin") == len(data)
    finally:
        ftp.quit()


async def test_pyftpdlib_serves_a_user(reactor, tmp_path):
    root = _root(tmp_path)
    async with pyftpdlib_server(root, user="u", password="p") as server:
        assert server.port != 21 and server.login == ("u", "p")
        await _check_serves(server, _ftp)
        data = os.urandom(5000)
        await ns.defer_to_thread(_upload, server, _ftp, data)
        assert (root / "up.bin").read_bytes() == data


async def test_pyftpdlib_refuses_a_wrong_password(reactor, tmp_path):
    async with pyftpdlib_server(_root(tmp_path), user="u", password="p") as server:
        server.password = "wrong"
        with pytest.raises(ftplib.error_perm, match=r"^530"):
            await ns.defer_to_thread(_ftp, server)


async def test_pyftpdlib_ftps_serves_ftplib_with_prot_p(reactor, tmp_path):
    first = free_port()
    passive = range(first, first + 3)
    async with pyftpdlib_server(
        _root(tmp_path), user="u", password="p", tls=True, passive_ports=passive
    ) as server:
        assert server.ca is not None and server.tls
        await _check_serves(server, _ftp_tls)

        def passive_port() -> int:
            ftp = _ftp_tls(server)
            try:
                return ftp.makepasv()[1]
            finally:
                ftp.quit()

        assert await ns.defer_to_thread(passive_port) in passive

        # tls_control_required: a login in clear is refused
        def in_clear() -> None:
            ftp = ftplib.FTP()
            ftp.connect(server.host, server.port, timeout=10)
            try:
                ftp.login("u", "p")
            finally:
                ftp.close()

        with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required"):
            await ns.defer_to_thread(in_clear)


async def test_vsftpd_serves_anonymous(reactor, tmp_path):
    root = _root(tmp_path)
    async with vsftpd_server(root) as server:
        assert server.user is None and server.upload == "/"
        await _check_serves(server, _ftp)

        def upload_refused() -> None:
            _upload(server, _ftp, b"no")

        with pytest.raises(ftplib.error_perm, match=r"^550"):
            await ns.defer_to_thread(upload_refused)
    assert not (root / "up.bin").exists()


async def test_vsftpd_writable_takes_uploads_in_its_upload_directory(reactor, tmp_path):
    root = _root(tmp_path)
    async with vsftpd_server(root, writable=True) as server:
        assert server.upload == "/upload"
        data = os.urandom(3000)
        await ns.defer_to_thread(_upload, server, _ftp, data)
        assert (root / "upload" / "up.bin").read_bytes() == data


async def test_vsftpd_ftps_refuses_ftplib_without_session_reuse_and_serves_curl(
    reactor, tmp_path
):
    async with vsftpd_server(_root(tmp_path), tls=True) as server:
        assert server.ca is not None

        def ftplib_retrieve() -> bytes:
            ftp = _ftp_tls(server)  # the login over TLS works
            try:
                got = io.BytesIO()
                ftp.retrbinary(f"RETR {NAME}", got.write)
                return got.getvalue()
            finally:
                ftp.close()  # vsftpd ends the session after the 522

        # ftplib's data connection starts a new TLS session: refused
        with pytest.raises(ftplib.error_perm, match=r"^522 .*session reuse required"):
            await ns.defer_to_thread(ftplib_retrieve)

        # curl resumes the control connection's session on the data connection
        code, out, err = await run_peer(
            ["curl", "-sS", "--ssl-reqd", "-k", f"{server.url}{NAME}"], timeout=20
        )
        assert code == 0, err
        assert out == CONTENT


async def test_vsftpd_ftps_without_required_reuse_serves_ftplib(reactor, tmp_path):
    async with vsftpd_server(_root(tmp_path), tls=True, require_ssl_reuse=False) as server:
        await _check_serves(server, _ftp_tls)


async def test_twisted_serves_a_user(reactor, tmp_path):
    root = _root(tmp_path)
    async with twisted_ftp_server(root, user="u", password="p") as server:
        assert server.login == ("u", "p")
        await _check_serves(server, _ftp)
        data = os.urandom(4000)
        await ns.defer_to_thread(_upload, server, _ftp, data)
        assert (root / "up.bin").read_bytes() == data


async def test_a_peer_is_stopped_when_the_test_fails(reactor, tmp_path):
    """The context manager ends the server also when the block raises."""
    with pytest.raises(ZeroDivisionError):
        async with pyftpdlib_server(_root(tmp_path)) as server:
            assert server.peer is not None
            proc = server.peer.proc
            1 / 0  # noqa: B018
    assert proc.returncode is not None
