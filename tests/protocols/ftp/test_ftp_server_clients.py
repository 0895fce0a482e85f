"""Real clients against the FTP server: Python's ftplib, curl and lftp.

ftplib runs in a thread (ns.defer_to_thread) while the reactor serves; curl and lftp run as
subprocesses (tests/peers.py: a missing one skips locally and fails under CI=true).
"""

from __future__ import annotations

import ftplib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import make_tree

import netshell as ns
from protocols import ftp

USERS = {"alice": "wonderland", "reader": ftp.User("pw", writable=False)}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def server(tree: Path, reactor: Any) -> Iterator[Any]:
    listener = ftp.serve(tree, users=USERS, writable=True, login_delay=0.05)
    yield listener
    listener.close()


def ftplib_session(port: int, user: str = "alice", password: str = "wonderland") -> ftplib.FTP:
    f = ftplib.FTP()
    f.connect("127.0.0.1", port, timeout=10)
    f.login(user, password)
    return f


async def test_ftplib_list_and_retrieve(server: Any, tree: Path) -> None:
    def work() -> tuple[list[str], list[str], bytes, bytes]:
        f = ftplib_session(server.port)
        lines: list[str] = []
        f.retrlines("LIST", lines.append)
        names = f.nlst()
        got = io.BytesIO()
        f.retrbinary("RETR blob.bin", got.write)
        text: list[str] = []
        f.retrlines("RETR lines.txt", text.append)
        f.quit()
        return lines, names, got.getvalue(), "\n".join(text).encode()

    lines, names, blob, text = await ns.defer_to_thread(work)
    on_disk = sorted(p.name for p in tree.iterdir())
    assert sorted(names) == on_disk
    assert sorted(line.split(None, 8)[8] for line in lines) == on_disk
    assert all(line[0] in "-d" and line[1:10].strip("rwx-") == "" for line in lines)
    assert blob == (tree / "blob.bin").read_bytes()
    assert text + b"\n" == (tree / "lines.txt").read_bytes()
