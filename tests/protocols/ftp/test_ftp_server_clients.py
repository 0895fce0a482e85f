"""Real clients against the FTP server: Python's ftplib, curl and lftp.

ftplib runs in a thread (ns.defer_to_thread) while the reactor serves; curl and lftp run as
subprocesses (tests/peers.py: a missing one skips locally and fails under CI=true).
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import make_tree
from peers import run_peer

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


async def test_ftplib_upload_rename_delete_mkdir_rmdir(server: Any, tree: Path) -> None:
    payload = os.urandom(1 << 20)

    def work() -> tuple[str, str, str, str, str, str]:
        f = ftplib_session(server.port)
        stored = f.storbinary("STOR new.bin", io.BytesIO(payload))
        made = f.mkd("made dir")
        renamed = f.rename("new.bin", "made dir/renamed.bin")
        size = str(f.size("made dir/renamed.bin"))
        deleted = f.delete("made dir/renamed.bin")
        removed = f.rmd("made dir")
        f.quit()
        return stored, made, renamed, size, deleted, removed

    stored, made, renamed, size, deleted, removed = await ns.defer_to_thread(work)
    assert stored.startswith("226") and renamed.startswith("250")
    assert made == "/made dir"  # ftplib parses the 257 reply's quoted path
    assert size == str(len(payload))
    assert deleted.startswith("250") and removed.startswith("250")
    assert not (tree / "made dir").exists()


async def test_ftplib_resume_both_ways(server: Any, tree: Path) -> None:
    blob = (tree / "blob.bin").read_bytes()

    def work() -> bytes:
        f = ftplib_session(server.port)
        got = io.BytesIO()
        f.retrbinary("RETR blob.bin", got.write, rest=300_000)
        f.storbinary("STOR half.bin", io.BytesIO(blob[:400_000]))
        f.storbinary("STOR half.bin", io.BytesIO(blob[400_000:]), rest=400_000)
        f.quit()
        return got.getvalue()

    tail = await ns.defer_to_thread(work)
    assert tail == blob[300_000:]
    assert (tree / "half.bin").read_bytes() == blob


async def test_ftplib_active_mode(server: Any, tree: Path) -> None:
    def work() -> tuple[bytes, list[str]]:
        f = ftplib_session(server.port)
        f.set_pasv(False)
        got = io.BytesIO()
        f.retrbinary("RETR blob.bin", got.write)
        names = f.nlst("sub")
        f.quit()
        return got.getvalue(), names

    got, names = await ns.defer_to_thread(work)
    assert got == (tree / "blob.bin").read_bytes()
    assert sorted(names) == ["deeper", "inner.txt"]


async def test_ftplib_abort_mid_transfer(server: Any, tree: Path) -> None:
    (tree / "huge.bin").write_bytes(os.urandom(48 << 20))

    def work() -> tuple[str, str, str]:
        f = ftplib_session(server.port)
        f.voidcmd("TYPE I")
        conn = f.transfercmd("RETR huge.bin")
        conn.recv(65536)
        aborted = f.abort()  # ABOR as urgent data, as ftplib sends it
        conn.close()
        after = f.getresp()
        noop = f.voidcmd("NOOP")
        f.quit()
        return aborted, after, noop

    aborted, after, noop = await ns.defer_to_thread(work)
    assert aborted.startswith("426") and after.startswith("226") and noop.startswith("200")


async def test_ftplib_stat_and_mlsd(server: Any, tree: Path) -> None:
    def work() -> tuple[str, str, list[tuple[str, dict[str, str]]]]:
        f = ftplib_session(server.port)
        status = f.sendcmd("STAT")
        listing = f.sendcmd("STAT sub")
        facts = list(f.mlsd("", ["type", "size", "modify", "perm", "unique"]))
        f.quit()
        return status, listing, facts

    status, listing, facts = await ns.defer_to_thread(work)
    assert status.startswith("211-") and "alice" in status
    assert listing.startswith("212-") and "inner.txt" in listing
    by_name = dict(facts)
    st = (tree / "blob.bin").stat()
    assert by_name["blob.bin"]["size"] == str(st.st_size)
    assert by_name["blob.bin"]["type"] == "file" and by_name["sub"]["type"] == "dir"
    assert by_name["sub"]["perm"] == "cdeflmp" and by_name["blob.bin"]["perm"] == "adfrw"
    assert by_name["blob.bin"]["unique"] == f"{st.st_dev:x}U{st.st_ino:x}"


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@pytest.mark.async_timeout(60)
async def test_200_mb_file_sha256(server: Any, tree: Path, tmp_path: Path) -> None:
    size = 200 * 1024 * 1024
    source = tree / "big.bin"
    try:
        await _200_mb(server, tree, tmp_path, size, source)
    finally:  # 600 MB of test files: not left for pytest to delete later
        for path in (source, tmp_path / "down.bin", tree / "up" / "big.bin"):
            path.unlink(missing_ok=True)


async def _200_mb(server: Any, tree: Path, tmp_path: Path, size: int, source: Path) -> None:
    with open(source, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(200):
            f.write(chunk[i:] + chunk[:i])
    expected = await ns.defer_to_thread(sha256, source)
    out = tmp_path / "down.bin"
    url = f"ftp://alice:wonderland@127.0.0.1:{server.port}"
    code, _, err = await run_peer(["curl", "-sS", "-o", str(out), f"{url}/big.bin"], timeout=30)
    assert code == 0, err
    assert out.stat().st_size == size
    got = await ns.defer_to_thread(sha256, out)
    assert got == expected
    code, _, err = await run_peer(["curl", "-sS", "-T", str(out), f"{url}/up/big.bin",
                                   "--ftp-create-dirs"], timeout=30)
    assert code == 0, err
    back = await ns.defer_to_thread(sha256, tree / "up" / "big.bin")
    assert back == expected


async def test_curl_list_download_upload_and_quote(server: Any, tree: Path,
                                                   tmp_path: Path) -> None:
    url = f"ftp://alice:wonderland@127.0.0.1:{server.port}"
    code, out, err = await run_peer(["curl", "-sS", f"{url}/sub/"])
    assert code == 0, err
    assert sorted(line.split(None, 8)[8] for line in out.decode().splitlines()) == [
        "deeper", "inner.txt"]
    code, out, err = await run_peer(["curl", "-sS", "-l", f"{url}/"])  # NLST
    assert sorted(out.decode().splitlines()) == sorted(p.name for p in tree.iterdir())
    code, out, err = await run_peer(["curl", "-sS", f"{url}/spaced%20name.txt"])
    assert (code, out) == (0, b"spaces\n"), err
    upload = tmp_path / "local.bin"
    upload.write_bytes(os.urandom(700_000))
    code, _, err = await run_peer(["curl", "-sS", "-T", str(upload),
                                   f"{url}/new/dir/remote.bin", "--ftp-create-dirs"])
    assert code == 0, err
    assert (tree / "new" / "dir" / "remote.bin").read_bytes() == upload.read_bytes()
    code, _, err = await run_peer(["curl", "-sS", f"{url}/", "-Q", "RNFR hello.txt",
                                   "-Q", "RNTO renamed.txt", "-Q", "DELE lines.txt",
                                   "-o", "/dev/null"])
    assert code == 0, err
    assert (tree / "renamed.txt").exists() and not (tree / "lines.txt").exists()
    code, _, err = await run_peer(["curl", "-sS", f"{url}/missing.txt"])
    assert code == 78 and b"does not exist" in err  # curl's code for a 550 to RETR


async def test_curl_resume_both_ways(server: Any, tree: Path, tmp_path: Path) -> None:
    url = f"ftp://alice:wonderland@127.0.0.1:{server.port}"
    blob = (tree / "blob.bin").read_bytes()
    partial = tmp_path / "partial.bin"
    partial.write_bytes(blob[:333_333])
    code, _, err = await run_peer(["curl", "-sS", "-C", "-", "-o", str(partial),
                                   f"{url}/blob.bin"])
    assert code == 0, err
    assert partial.read_bytes() == blob
    (tree / "up.bin").write_bytes(blob[:444_444])  # an upload that broke off
    whole = tmp_path / "whole.bin"
    whole.write_bytes(blob)
    code, _, err = await run_peer(["curl", "-sS", "-C", "-", "-T", str(whole), f"{url}/up.bin"])
    assert code == 0, err
    assert (tree / "up.bin").read_bytes() == blob


LFTP_SETTINGS = "set net:max-retries 1; set net:timeout 5; set cmd:fail-exit true; "


async def test_lftp_mirror_down_and_up(server: Any, tree: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    script = (LFTP_SETTINGS + f"open -u alice,wonderland ftp://127.0.0.1:{server.port}; "
              f"mirror / {local}")
    code, out, err = await run_peer(["lftp", "-c", script], timeout=30)
    assert code == 0, (out, err)
    for path in tree.rglob("*"):
        copy = local / path.relative_to(tree)
        assert copy.is_dir() if path.is_dir() else copy.read_bytes() == path.read_bytes()
    (local / "sub" / "added.txt").write_bytes(b"from lftp\n")
    (local / "newdir").mkdir()
    (local / "newdir" / "f.bin").write_bytes(os.urandom(100_000))
    script = (LFTP_SETTINGS + f"open -u alice,wonderland ftp://127.0.0.1:{server.port}; "
              f"mirror -R {local} /copy")
    code, out, err = await run_peer(["lftp", "-c", script], timeout=30)
    assert code == 0, (out, err)
    assert (tree / "copy" / "sub" / "added.txt").read_bytes() == b"from lftp\n"
    assert (tree / "copy" / "newdir" / "f.bin").read_bytes() == (
        local / "newdir" / "f.bin").read_bytes()
    assert (tree / "copy" / "blob.bin").read_bytes() == (tree / "blob.bin").read_bytes()


async def test_lftp_resume(server: Any, tree: Path, tmp_path: Path) -> None:
    blob = (tree / "blob.bin").read_bytes()
    partial = tmp_path / "blob.bin"
    partial.write_bytes(blob[:200_000])
    (tree / "put.bin").write_bytes(blob[:500_000])
    whole = tmp_path / "put.bin"
    whole.write_bytes(blob)
    script = (LFTP_SETTINGS + f"open -u alice,wonderland ftp://127.0.0.1:{server.port}; "
              f"lcd {tmp_path}; get -c blob.bin; put -c put.bin")
    code, out, err = await run_peer(["lftp", "-c", script], timeout=30)
    assert code == 0, (out, err)
    assert partial.read_bytes() == blob
    assert (tree / "put.bin").read_bytes() == blob
