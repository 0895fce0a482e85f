"""The FTP client against netshell's own FTP server (``ftp.serve``, in this process).

The operations once more, then what only our server offers here: implicit FTPS (its
own listener, TLS from the first byte; pyftpdlib cannot), and explicit FTPS requiring
TLS session reuse on data connections (``require_tls_reuse``, vsftpd's protection).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from netshell import tls
from protocols import ftp
from protocols.ftp import client as ftp_client
from protocols.ftp.client import FTPTransferAborted

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello from netshell\n")
    (root / "dir").mkdir()
    return root


async def test_session_against_our_server(tmp_path: Path) -> None:
    root = _root(tmp_path)
    listener = ftp.serve(root, writable=True)
    try:
        client = await ftp.connect("127.0.0.1", listener.port, timeout=10)
        entries = {e.name: e for e in await client.list()}
        assert set(entries) == {"hello.txt", "dir"}
        assert entries["dir"].is_dir and entries["hello.txt"].size == 20
        assert await client.retrieve("hello.txt") == b"hello from netshell\n"
        payload = os.urandom(300_000)
        await client.store("dir/up.bin", payload)
        assert (root / "dir" / "up.bin").read_bytes() == payload
        (root / "dir" / "up.bin").write_bytes(payload[:200_000])  # as if it broke there
        assert await client.store("dir/up.bin", payload, offset=200_000) == 100_000
        assert (root / "dir" / "up.bin").read_bytes() == payload
        await client.rename("dir/up.bin", "moved.bin")
        assert (root / "moved.bin").read_bytes() == payload
        assert await client.size("moved.bin") == len(payload)
        await client.mkdir("made")
        assert (root / "made").is_dir()
        await client.rmdir("made")
        await client.delete("moved.bin")
        assert sorted(os.listdir(root)) == ["dir", "hello.txt"]
        with pytest.raises(ftp.FTPPermanentError) as missing:
            await client.size("nothing")
        assert missing.value.code == 550
        client.passive = False
        assert sorted(await client.nlst()) == sorted(os.listdir(root))
        await client.quit()
    finally:
        await listener.close()


async def test_abort_mid_download_our_server(tmp_path: Path) -> None:
    root = _root(tmp_path)
    with open(root / "big.bin", "wb") as f:
        f.truncate(64 * MiB)
    listener = ftp.serve(root)
    try:
        client = await ftp.connect("127.0.0.1", listener.port, timeout=10)
        aborted: list[Any] = []

        def sink(data: bytes) -> None:
            if not aborted:
                aborted.append(client.abort())

        with pytest.raises(FTPTransferAborted):
            await client.retrieve("big.bin", sink)
        abor = await aborted[0]
        assert abor is not None and abor.code in (225, 226)
        assert await client.retrieve("hello.txt") == b"hello from netshell\n"
        await client.quit()
    finally:
        await listener.close()


async def test_explicit_ftps_with_session_reuse_required(tmp_path: Path) -> None:
    root = _root(tmp_path)
    cert, key, ca = tls.self_signed("localhost", "127.0.0.1")
    listener = ftp.serve(
        root,
        writable=True,
        tls=tls.server_context(cert, key),
        require_tls=True,
        require_tls_reuse=True,
    )
    try:
        with pytest.raises(ftp.FTPPermanentError):
            await ftp.connect("127.0.0.1", listener.port)  # no TLS: USER refused
        client = await ftp.connect("127.0.0.1", listener.port, tls=True, ca=ca, timeout=10)
        assert await client.retrieve("hello.txt") == b"hello from netshell\n"
        assert client.data_tls is not None and client.data_tls.session_reused is True
        await client.store("secret.bin", b"s" * 100_000)
        assert (root / "secret.bin").read_bytes() == b"s" * 100_000
        await client.quit()
    finally:
        await listener.close()


async def test_implicit_ftps(tmp_path: Path) -> None:
    root = _root(tmp_path)
    cert, key, ca = tls.self_signed("localhost", "127.0.0.1")
    listener = ftp.serve(root, tls=tls.server_context(cert, key), implicit_tls=True)
    try:
        client = await ftp.connect(f"ftps://127.0.0.1:{listener.port}/", ca=ca, timeout=10)
        assert client.tls == "implicit" and "TLS implicit" in repr(client)
        assert {e.name for e in await client.list()} == {"hello.txt", "dir"}
        assert await client.retrieve("hello.txt") == b"hello from netshell\n"
        assert client.data_tls is not None
        await client.quit()
        # Plain FTP there waits for a greeting that never comes (the server waits for TLS).
        with pytest.raises(ftp_client.FTPTimeoutError):
            await ftp.connect("127.0.0.1", listener.port, timeout=0.3)
    finally:
        await listener.close()


async def test_a_listing_shows_as_a_table_at_the_prompt(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "big.bin").write_bytes(b"z" * 123_456)
    os.utime(root / "big.bin", (0, 1_700_000_000))
    listener = ftp.serve(root)
    try:
        client = await ftp.connect("127.0.0.1", listener.port, timeout=10)
        listing = await client.list()
        assert isinstance(listing, ftp_client.Listing) and len(listing) == 3
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(1_700_000_000))
        lines = repr(listing).splitlines()
        assert lines[0].split() == ["size", "modified", "name"]
        # exact sizes with separators, local times, directories marked, sorted as listed
        assert lines[1].split() == ["123,456", *when.split(), "big.bin"]
        assert lines[2].split()[-1] == "dir/" and lines[2].split()[0] == "-"
        assert lines[3].split()[0] == "20" and lines[3].split()[-1] == "hello.txt"
        assert repr(await client.list("dir")) == "(an empty listing)"
        await client.quit()
    finally:
        await listener.close()


async def test_conns_marks_each_data_connection_with_its_control_connection(
        tmp_path: Path, reactor: Any) -> None:
    from netshell.shell.display import connection_table

    root = _root(tmp_path)
    (root / "big.bin").write_bytes(b"z" * (4 * MiB))
    listener = ftp.serve(root)
    try:
        client = await ftp.connect("127.0.0.1", listener.port, timeout=10)
        seen: list[dict[str, str]] = []

        def sink(chunk: bytes) -> None:
            if not seen:  # mid-transfer: both ends of the data connection are live
                seen.append({row[0]: row[4] for row in
                             connection_table(reactor.connections).cells()})

        await client.retrieve("big.bin", to=sink)
        rows = seen[0]
        client_control = f"#{client._control.transport.number}"
        server_control = next(n for n, name in rows.items() if name == "ftp server")
        assert rows[client_control] == "ftp client"
        data = sorted(name for name in rows.values() if name.startswith("ftp data"))
        assert data == sorted([f"ftp data for {client_control}",
                               f"ftp data for {server_control}"])
        await client.quit()
    finally:
        await listener.close()
