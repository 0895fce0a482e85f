"""The FTP client against Twisted's FTP server (another process, tests/ftp_peers.py).

Twisted's server is the small one: no MLSD (LIST is parsed), no REST, APPE, MDTM or FEAT
worth the name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ftp_peers import twisted_ftp_server

from protocols import ftp

pytestmark = pytest.mark.timeout(60)


async def test_twisted_ftp_server(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello from twisted\n")
    (root / "dir").mkdir()
    async with twisted_ftp_server(root) as server:
        client = await ftp.connect(
            server.host, server.port, user=server.user, password=server.password
        )
        entries = {e.name: e for e in await client.list()}
        assert set(entries) == {"hello.txt", "dir"}
        assert entries["dir"].is_dir and entries["hello.txt"].size == 19
        assert await client.retrieve("hello.txt") == b"hello from twisted\n"
        payload = os.urandom(100_000)
        await client.store("up.bin", payload)
        assert (root / "up.bin").read_bytes() == payload
        await client.rename("up.bin", "dir/moved.bin")
        assert (root / "dir" / "moved.bin").read_bytes() == payload
        await client.delete("dir/moved.bin")
        assert not (root / "dir" / "moved.bin").exists()
        with pytest.raises(ftp.FTPPermanentError) as missing:
            await client.retrieve("nothing")
        assert missing.value.code == 550
        await client.quit()
