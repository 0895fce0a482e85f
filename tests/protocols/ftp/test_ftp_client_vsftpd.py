"""The FTP client against vsftpd (apt's, in the foreground on a temp config: tests/ftp_peers.py).

vsftpd has no MLST, so ``list`` parses its ``LIST`` (``ls -l``) lines here: the real
test of LIST parsing. With FTPS and ``require_ssl_reuse=YES`` (vsftpd's default) every
data connection must resume the control connection's TLS session: Python's ftplib is
refused (522), this client is not.
"""

from __future__ import annotations

import ftplib
import gc
import os
import ssl
from pathlib import Path

import pytest
from ftp_peers import vsftpd_server

import netshell as ns
from protocols import ftp
from protocols.ftp.client import FTPClient

pytestmark = pytest.mark.timeout(60)


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    (root / "hello.txt").write_bytes(b"hello from vsftpd\n")
    (root / "two words.bin").write_bytes(os.urandom(12_345))
    (root / "dir").mkdir(mode=0o755)
    (root / "dir" / "deep.txt").write_bytes(b"deep")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


async def test_list_parses_vsftpd_ls_lines(tmp_path: Path) -> None:
    root = _root(tmp_path)
    async with vsftpd_server(root) as server:
        client = await ftp.connect(server.host, server.port)
        assert "MLST" not in client.features  # so list() reads LIST
        entries = {e.name: e for e in await client.list()}
        on_disk = {p.name: p for p in root.iterdir()}
        assert set(entries) == set(on_disk)
        for name, entry in entries.items():
            stat = on_disk[name].stat()
            assert entry.is_dir == on_disk[name].is_dir()
            assert entry.mode & 0o777 == stat.st_mode & 0o777
            if not entry.is_dir:
                assert entry.size == stat.st_size
            assert entry.mtime is not None and abs(entry.mtime - stat.st_mtime) < 60
        assert sorted(await client.nlst()) == sorted(on_disk)
        assert [e.name for e in await client.list("dir")] == ["deep.txt"]
        assert await client.size("two words.bin") == 12_345
        assert await client.mdtm("hello.txt") == int((root / "hello.txt").stat().st_mtime)
        assert await client.retrieve("dir/deep.txt") == b"deep"
        assert await client.cwd("dir") == "/dir"
        with pytest.raises(ftp.FTPPermanentError) as missing:
            await client.retrieve("nothing.txt")
        assert missing.value.code == 550
        client.passive = False
        assert await client.retrieve("deep.txt") == b"deep"
        await client.quit()


async def test_writable_vsftpd(tmp_path: Path) -> None:
    root = _root(tmp_path)
    async with vsftpd_server(root, writable=True) as server:
        upload = root / server.upload.strip("/")
        client = await ftp.connect(server.host, server.port)
        await client.cwd(server.upload)
        payload = os.urandom(100_000)
        assert await client.store("up.bin", payload) == len(payload)
        assert (upload / "up.bin").read_bytes() == payload
        await client.append("up.bin", b"+tail")
        assert (upload / "up.bin").read_bytes() == payload + b"+tail"
        await client.rename("up.bin", "moved.bin")
        assert (upload / "moved.bin").exists() and not (upload / "up.bin").exists()
        await client.mkdir("made")
        assert (upload / "made").is_dir()
        await client.rmdir("made")
        assert not (upload / "made").exists()
        await client.delete("moved.bin")
        assert not (upload / "moved.bin").exists()
        await client.quit()


async def test_ftps_with_required_session_reuse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _root(tmp_path)
    async with vsftpd_server(root, tls=True, require_ssl_reuse=True) as server:
        assert server.ca is not None

        # ftplib cannot: its data connection does not resume the session.
        def with_ftplib() -> str:
            context = ssl.create_default_context(cafile=str(server.ca))
            session = ftplib.FTP_TLS(context=context)
            session.connect(server.host, server.port, timeout=10)
            session.auth()
            session.login()
            session.prot_p()
            try:
                session.retrbinary("RETR hello.txt", lambda data: None)
            except ftplib.error_perm as e:
                return str(e)
            finally:
                session.close()
            return "no error"

        assert (await ns.defer_to_thread(with_ftplib)).startswith("522")

        client: FTPClient = await ftp.connect(server.host, server.port, tls=True, ca=server.ca)
        # A refused RETR: vsftpd never starts TLS on that data connection; the handshake
        # the client began is cut short with it, quietly.
        with pytest.raises(ftp.FTPPermanentError):
            await client.retrieve("missing.txt")
        assert await client.retrieve("hello.txt") == b"hello from vsftpd\n"
        gc.collect()
        assert "Unhandled error" not in caplog.text
        assert client.data_tls is not None and client.data_tls.session_reused is True
        names = {e.name for e in await client.list()}
        assert names == {p.name for p in root.iterdir()}
        assert await client.retrieve("two words.bin") == (root / "two words.bin").read_bytes()
        client.passive = False  # active mode: the TLS client on an accepted connection
        assert await client.retrieve("dir/deep.txt") == b"deep"
        assert client.data_tls.session_reused is True
        await client.quit()
