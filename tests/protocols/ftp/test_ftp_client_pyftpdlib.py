"""The FTP client against pyftpdlib (in its own process, tests/ftp_peers.py).

pyftpdlib has MLST (so ``list`` uses MLSD here), EPSV, REST for RETR and STOR, APPE,
active mode, ABOR during a transfer and FTPS (TLS_FTPHandler). What the client did is
checked on the server's disk (the files pyftpdlib wrote or listed), never against what
the test sent only.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from ftp_peers import FTPPeer, pyftpdlib_server

import netshell as ns
from protocols import ftp
from protocols.ftp import client as ftp_client
from protocols.ftp.client import FTPClient, FTPTransferAborted

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "sub").mkdir()
    (root / "sub" / "inner.bin").write_bytes(os.urandom(3000))
    (root / "spaced name.txt").write_bytes(b"x" * 77)
    return root


async def _connect(server: FTPPeer, **kw: Any) -> FTPClient:
    user, password = server.login
    return await ftp.connect(server.host, server.port, user=user, password=password, **kw)


async def test_commands_and_listings(tmp_path: Path) -> None:
    root = _root(tmp_path)
    async with pyftpdlib_server(root) as server:
        client = await _connect(server, timeout=10)
        assert await client.pwd() == "/"
        assert "MLST" in client.features

        entries = {e.name: e for e in await client.list()}
        on_disk = {p.name: p for p in root.iterdir()}
        assert set(entries) == set(on_disk)
        for name, entry in entries.items():
            assert entry.is_dir == on_disk[name].is_dir()
            if not entry.is_dir:
                assert entry.size == on_disk[name].stat().st_size
            assert entry.mtime == int(on_disk[name].stat().st_mtime)
        assert sorted(await client.nlst()) == sorted(os.listdir(root))
        assert [e.name for e in await client.list("sub")] == ["inner.bin"]

        assert await client.size("spaced name.txt") == 77
        assert await client.mdtm("hello.txt") == int((root / "hello.txt").stat().st_mtime)

        made = await client.mkdir("new dir")
        assert made == "/new dir" and (root / "new dir").is_dir()
        assert await client.cwd("new dir") == "/new dir"
        assert client.directory == "/new dir" and "'/new dir'" in repr(client)
        assert await client.cwd("..") == "/"
        await client.rmdir("new dir")
        assert not (root / "new dir").exists()

        await client.rename("hello.txt", "renamed.txt")
        assert (root / "renamed.txt").read_bytes() == b"hello, world\n"
        assert not (root / "hello.txt").exists()
        await client.delete("renamed.txt")
        assert not (root / "renamed.txt").exists()

        syst = await client.quote("SYST")
        assert syst.code == 215
        unknown = await client.quote("XYZZY")
        assert unknown.code == 500
        with pytest.raises(ftp.FTPPermanentError) as refused:
            await client.quote("XYZZY", check=True)
        assert refused.value.code == 500

        with pytest.raises(ftp.FTPPermanentError) as missing:
            await client.retrieve("no such file")
        assert missing.value.code == 550
        with pytest.raises(ftp.FTPPermanentError) as no_dir:
            await client.cwd("nowhere")
        assert no_dir.value.code == 550
        assert await client.pwd() == "/"  # errors leave the session in step

        reply = await client.quit()
        assert reply.code == 221
        assert client.closed and "closed" in repr(client)
        with pytest.raises(ftp.FTPError):
            await client.pwd()


async def test_retrieve_to_every_kind_of_target(tmp_path: Path) -> None:
    root = _root(tmp_path)
    content = os.urandom(300_000)
    (root / "data.bin").write_bytes(content)
    async with pyftpdlib_server(root) as server:
        client = await _connect(server)
        assert await client.retrieve("hello.txt") == (root / "hello.txt").read_bytes()

        target = tmp_path / "to_path.bin"
        assert await client.retrieve("data.bin", target) == len(content)
        assert target.read_bytes() == content

        buffer = io.BytesIO()
        assert await client.retrieve("data.bin", buffer) == len(content)
        assert buffer.getvalue() == content

        chunks: list[bytes] = []
        assert await client.retrieve("data.bin", chunks.append) == len(content)
        assert b"".join(chunks) == content and len(chunks) > 1  # streamed, piece by piece

        # A callable that answers with a Deferred holds the transfer until it fires.
        slow: list[bytes] = []

        def later(data: bytes) -> ns.Deferred[None]:
            slow.append(data)
            return ns.sleep(0)

        assert await client.retrieve("data.bin", later) == len(content)
        assert b"".join(slow) == content

        # Resume: the first part is kept, the rest (here garbage) is fetched again.
        partial = tmp_path / "partial.bin"
        partial.write_bytes(content[:100_000] + b"garbage" * 10)
        assert await client.retrieve("data.bin", partial, offset=100_000) == 200_000
        assert partial.read_bytes() == content

        seekable = io.BytesIO(content[:5] + b"?" * 10)
        await client.retrieve("data.bin", seekable, offset=5)
        assert seekable.getvalue() == content

        # A refused RETR leaves no empty file behind.
        absent = tmp_path / "absent.bin"
        with pytest.raises(ftp.FTPPermanentError):
            await client.retrieve("nope.bin", absent)
        assert not absent.exists()
        await client.quit()


async def test_store_every_kind_of_source(tmp_path: Path) -> None:
    root = _root(tmp_path)
    content = os.urandom(200_000)
    local = tmp_path / "local.bin"
    local.write_bytes(content)
    async with pyftpdlib_server(root) as server:
        client = await _connect(server)
        assert await client.store("from_bytes.bin", content) == len(content)
        assert (root / "from_bytes.bin").read_bytes() == content

        assert await client.store("from_path.bin", local) == len(content)
        assert (root / "from_path.bin").read_bytes() == content
        assert await client.store("from_str_path.bin", str(local)) == len(content)
        assert (root / "from_str_path.bin").read_bytes() == content

        with open(local, "rb") as f:
            assert await client.store("from_file.bin", f) == len(content)
        assert (root / "from_file.bin").read_bytes() == content
        assert await client.store("from_bytesio.bin", io.BytesIO(content)) == len(content)
        assert (root / "from_bytesio.bin").read_bytes() == content

        # REST + STOR: the server keeps its first 50,000 bytes and takes the rest.
        (root / "resumed.bin").write_bytes(content[:50_000])
        assert await client.store("resumed.bin", local, offset=50_000) == 150_000
        assert (root / "resumed.bin").read_bytes() == content

        await client.append("from_bytes.bin", b"tail")
        assert (root / "from_bytes.bin").read_bytes() == content + b"tail"
        await client.append("appended_new.bin", local, offset=199_990)
        assert (root / "appended_new.bin").read_bytes() == content[199_990:]

        events: list[tuple[int, int | None]] = []
        await client.store("progress.bin", local, progress=lambda d, t: events.append((d, t)))
        assert events[0] == (0, len(content)) and events[-1] == (len(content), len(content))
        await client.quit()


async def test_active_mode(tmp_path: Path) -> None:
    root = _root(tmp_path)
    async with pyftpdlib_server(root) as server:
        client = await _connect(server, passive=False)
        assert sorted(e.name for e in await client.list()) == sorted(os.listdir(root))
        assert await client.retrieve("hello.txt") == b"hello, world\n"
        await client.store("up.txt", b"active upload")
        assert (root / "up.txt").read_bytes() == b"active upload"
        await client.quit()


async def test_epsv_then_data_commands_over_many_transfers(tmp_path: Path) -> None:
    """Many transfers one after the other on one session (data connections come and go)."""
    root = _root(tmp_path)
    async with pyftpdlib_server(root) as server:
        client = await _connect(server)
        results = await ns.gather(*(client.retrieve("hello.txt") for _ in range(20)))
        assert results == [b"hello, world\n"] * 20
        await client.quit()


async def test_abort_mid_transfer(tmp_path: Path) -> None:
    root = _root(tmp_path)
    size = 64 * MiB
    with open(root / "big.bin", "wb") as f:
        f.truncate(size)  # sparse: costs no disk
    async with pyftpdlib_server(root) as server:
        client = await _connect(server)
        received = 0
        aborted: list[Any] = []

        def sink(data: bytes) -> None:
            nonlocal received
            received += len(data)
            if not aborted:
                aborted.append(client.abort())

        with pytest.raises(FTPTransferAborted) as info:
            await client.retrieve("big.bin", sink)
        assert received < size
        assert info.value.code in (426, 226, 225)  # 225 alone: ABOR beat the transfer
        abor = await aborted[0]
        assert abor is not None and abor.code in (225, 226)
        # The session goes on, in step: each command gets its own reply.
        assert await client.pwd() == "/"
        assert await client.retrieve("hello.txt") == b"hello, world\n"
        await client.quit()


async def test_cancelling_a_transfer_keeps_the_session(tmp_path: Path) -> None:
    root = _root(tmp_path)
    with open(root / "big.bin", "wb") as f:
        f.truncate(64 * MiB)
    async with pyftpdlib_server(root) as server:
        client = await _connect(server)
        first: ns.Deferred[None] = ns.Deferred()

        def sink(data: bytes) -> None:
            if not first.called:
                first.callback(None)

        transfer = client.retrieve("big.bin", sink)
        await first
        transfer.cancel()
        with pytest.raises(ns.CancelledError):
            await transfer
        assert await client.size("hello.txt") == 13
        assert await client.pwd() == "/"
        await client.quit()


async def test_fifty_mebibytes_both_ways(tmp_path: Path) -> None:
    root = _root(tmp_path)
    local = tmp_path / "50mb.bin"
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with open(local, "wb") as f:
        for i in range(50):
            piece = block[i:] + block[:i]
            f.write(piece)
            digest.update(piece)
    expected = digest.hexdigest()
    async with pyftpdlib_server(root) as server:
        client = await _connect(server)
        assert await client.store("50mb.bin", local) == 50 * MiB
        assert hashlib.sha256((root / "50mb.bin").read_bytes()).hexdigest() == expected
        back = tmp_path / "back.bin"
        assert await client.retrieve("50mb.bin", back) == 50 * MiB
        assert hashlib.sha256(back.read_bytes()).hexdigest() == expected
        await client.quit()


async def test_ftps_explicit(tmp_path: Path) -> None:
    root = _root(tmp_path)
    async with pyftpdlib_server(root, user="alice", password="secret", tls=True) as server:
        assert server.ca is not None
        # Verified by default: a certificate nobody here trusts is refused.
        with pytest.raises(ns.UnknownCA):
            await _connect(server, tls=True)

        client = await _connect(server, tls="explicit", ca=server.ca)
        assert client.tls == "explicit" and "TLS explicit" in repr(client)
        assert sorted(e.name for e in await client.list()) == sorted(os.listdir(root))
        assert client.data_tls is not None  # PROT P: the data connection was TLS
        assert await client.retrieve("sub/inner.bin") == (root / "sub/inner.bin").read_bytes()
        payload = os.urandom(500_000)
        await client.store("secret.bin", payload)
        assert (root / "secret.bin").read_bytes() == payload
        client.passive = False
        assert await client.retrieve("secret.bin") == payload
        await client.quit()

        with pytest.raises(ftp.FTPPermanentError) as wrong:
            await ftp.connect(
                server.host, server.port, user="alice", password="wrong", tls=True, ca=server.ca
            )
        assert wrong.value.code == 530

        # login=False: connected (and TLS on), logging in is the caller's, tries included.
        later = await ftp.connect(server.host, server.port, tls=True, ca=server.ca, login=False)
        assert later.user is None
        with pytest.raises(ftp.FTPPermanentError) as again:
            await later.login("alice", "wrong")
        assert again.value.code == 530
        await later.login("alice", "secret")
        assert later.user == "alice" and await later.size("hello.txt") == 13
        await later.quit()


async def test_download_and_upload_resume(tmp_path: Path) -> None:
    root = _root(tmp_path)
    content = os.urandom(2 * MiB)
    (root / "big.bin").write_bytes(content)
    local = tmp_path / "local.bin"
    local.write_bytes(content)
    async with pyftpdlib_server(root) as server:
        url = f"ftp://{server.host}:{server.port}/"

        # A download broken half-way left its first half here: it goes on from there.
        partial = tmp_path / "big.bin"
        partial.write_bytes(content[: MiB // 2])
        seen: list[int] = []
        got = await ftp_client.download(
            url + "big.bin", tmp_path, progress=lambda d, t: seen.append(d)
        )
        assert got == partial and partial.read_bytes() == content
        assert seen[0] == MiB // 2  # resumed, not started again

        # An upload broken by an abort once the server had written some of it (seen on
        # its disk): pyftpdlib keeps what came; upload() sends the rest.
        big = os.urandom(16 * MiB)
        local.write_bytes(big)
        remote = root / "up.bin"
        client = await ftp.connect(server.host, server.port)
        aborted: list[object] = []

        def progress(done: int, total: int | None) -> None:
            if not aborted and remote.exists() and remote.stat().st_size >= 64 * 1024:
                aborted.append(client.abort())

        with pytest.raises(FTPTransferAborted):
            await client.store("up.bin", local, progress=progress)
        await client.quit()
        kept = remote.stat().st_size
        assert 64 * 1024 <= kept < len(big)

        starts: list[int] = []
        await ftp_client.upload(local, url + "up.bin", progress=lambda d, t: starts.append(d))
        assert starts[0] == kept  # REST + STOR from what the server had
        assert remote.read_bytes() == big


async def test_client_download_and_upload_methods(tmp_path: Path) -> None:
    root = _root(tmp_path)
    content = os.urandom(400_000)
    (root / "f.bin").write_bytes(content)
    local_dir = tmp_path / "here"
    local_dir.mkdir()
    (local_dir / "f.bin").write_bytes(content[:150_000])
    async with pyftpdlib_server(root) as server:
        client = await _connect(server)
        starts: list[int] = []
        got = await client.download("f.bin", local_dir, progress=lambda d, t: starts.append(d))
        assert got == local_dir / "f.bin" and got.read_bytes() == content
        assert starts[0] == 150_000
        starts.clear()
        await client.download("f.bin", local_dir, progress=lambda d, t: starts.append(d))
        assert starts == []  # complete already: nothing fetched

        (root / "g.bin").write_bytes(content[:300_000])
        source = tmp_path / "g.bin"
        source.write_bytes(content)
        assert await client.upload(source) == 100_000  # the rest only
        assert (root / "g.bin").read_bytes() == content
        assert await client.upload(source, "g.bin") == 0  # the same size there: done
        await client.quit()
