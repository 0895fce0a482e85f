"""Binary uploads on plain TCP go by splice(2) (``transport.receive_file``): what the server
says about them stays exact — the bytes logged per transfer, the temp file gone and 452 when
the disk is full, the same answers and bytes when splice(2) is not there.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import RawFTP, make_tree, serve_tree

from netshell import transport as transport_mod


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def server(tree: Path, reactor: Any) -> Iterator[Any]:
    listener = serve_tree(tree)
    yield listener
    listener.close()


@pytest.fixture(params=["splice", "write"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    calls = {"n": 0}
    real = transport_mod._splice
    if request.param == "write":
        monkeypatch.setattr(transport_mod, "_splice", None)
    elif real is not None:

        def counted(*a: Any, **kw: Any) -> int:
            calls["n"] += 1
            return real(*a, **kw)

        monkeypatch.setattr(transport_mod, "_splice", counted)
    yield request.param
    # the kernel path was taken when asked for, and only then
    assert (calls["n"] > 0) == (request.param == "splice" and real is not None)


async def login(server: Any) -> RawFTP:
    client = await RawFTP.connect(server.port)
    assert (await client.login("alice", "wonderland")).code == 230
    await client.cmd("TYPE I")
    return client


def transfer_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.ftp_transfer for r in caplog.records if hasattr(r, "ftp_transfer")]


async def test_uploads_are_logged_with_their_exact_sizes(
        server: Any, tree: Path, way: str, caplog: pytest.LogCaptureFixture) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    alice = await login(server)
    with caplog.at_level(logging.INFO, logger="netshell.ftp"):
        first, final = await alice.transfer_in("STOR up.bin", payload[:1_000_000])
        assert (first.code, final.code) == (150, 226) or (first.code, final.code) == (125, 226)
        assert (await alice.cmd("REST 1000000")).code == 350
        _, final = await alice.transfer_in("STOR up.bin", payload[1_000_000:2_000_000])
        assert final.code == 226
        _, final = await alice.transfer_in("APPE up.bin", payload[2_000_000:])
        assert final.code == 226
    body = (tree / "up.bin").read_bytes()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    sizes = [(r["command"], r["bytes"], r["complete"]) for r in transfer_records(caplog)]
    assert sizes == [("STOR", 1_000_000, True), ("STOR", 1_000_000, True),
                     ("APPE", len(payload) - 2_000_000, True)]


async def test_a_full_disk_answers_452_and_leaves_no_temp_file(
        server: Any, tree: Path, way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = {"fd": -1}
    real_open = os.open

    def spy_open(path: Any, flags: int, *a: Any, **kw: Any) -> int:
        fd = real_open(path, flags, *a, **kw)
        if str(os.fsdecode(path)).startswith(".netshell-upload-"):
            target["fd"] = fd  # the upload's temp file
        return fd

    def full(fd: int) -> None:
        if fd == target["fd"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_splice, real_write = transport_mod._splice, os.write
    if real_splice is not None and way == "splice":

        def splice(src: int, dst: int, *a: Any, **kw: Any) -> int:
            full(dst)
            return real_splice(src, dst, *a, **kw)

        monkeypatch.setattr(transport_mod, "_splice", splice)

    def write(fd: int, data: Any) -> int:
        full(fd)
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "write", write)
    alice = await login(server)
    _, final = await alice.transfer_in("STOR full.bin", os.urandom(2 * 1024 * 1024))
    assert final.code == 452, final
    assert not (tree / "full.bin").exists()
    assert not [n for n in os.listdir(tree) if n.startswith(".netshell-upload-")]
    assert (await alice.cmd("NOOP")).code == 200  # the session lives on
