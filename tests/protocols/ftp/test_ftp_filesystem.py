"""The FTP filesystem layer: virtual paths, listings, atomic and resumed uploads, errors.

Escapes from the root are tested in test_ftp_jail.py; here, what a session sees inside it.
"""

from __future__ import annotations

import errno
import gc
import os
import posixpath
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ftp.filesystem import MAX_NAME, MAX_PATH, FileSystem, FSError, Upload

TEMP_PREFIX = ".netshell-upload-"


#: where the big trees go: memory when the host has it (their disk work is all they cost)
FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "pub" / "sub").mkdir(parents=True)
    (base / "pub" / "a.txt").write_bytes(b"alpha\n")
    (base / "pub" / "b.bin").write_bytes(bytes(range(256)))
    (base / "top.txt").write_bytes(b"0123456789")
    return base


@pytest.fixture
def fs(root: Path) -> FileSystem:
    return FileSystem(str(root), writable=True)


def names_on_disk(path: Path) -> set[str]:
    return set(os.listdir(path))


# ---- resolve


@pytest.mark.parametrize(
    ("cwd", "path", "expected"),
    [
        ("/", "", "/"),
        ("/pub", "", "/pub"),
        ("/pub", "a.txt", "/pub/a.txt"),
        ("/pub", "/a.txt", "/a.txt"),
        ("/pub", "../top.txt", "/top.txt"),
        ("/pub", "./sub/./x/", "/pub/sub/x"),
        ("/pub", "sub//x", "/pub/sub/x"),
        ("/pub", "//x", "/x"),
        ("/pub/sub", "../..", "/"),
        ("/pub/sub", "../../../../x", "/x"),
        ("/", "...", "/..."),
        ("/", ". .", "/. ."),
        ("/", "a\\b", "/a\\b"),
    ],
)
def test_resolve_normalises(fs: FileSystem, cwd: str, path: str, expected: str) -> None:
    assert fs.resolve(cwd, path) == expected


NAMES = st.sampled_from(["a", "b", ".", "..", "", "é", "x y", "\\", "\udce9"])


@settings(max_examples=300, deadline=None)
@given(cwd=st.lists(NAMES, max_size=6), path=st.lists(NAMES, max_size=8), absolute=st.booleans())
def test_resolve_matches_posix_normpath(cwd: list[str], path: list[str], absolute: bool) -> None:
    # The model: POSIX normalisation, with ".." at the top staying at the top.
    fs = FileSystem("/")
    cwd_text = "/" + "/".join(cwd)
    path_text = ("/" if absolute else "") + "/".join(path)
    got = fs.resolve(fs.resolve("/", cwd_text), path_text)
    joined = posixpath.join(cwd_text, path_text)
    model = posixpath.normpath("/" + joined.lstrip("/"))
    while model.startswith("/.."):
        model = model[3:] or "/"
    assert got == model
    assert fs.resolve("/", got) == got  # normal already


def test_resolve_does_not_touch_the_disk(tmp_path: Path) -> None:
    (tmp_path / "gone").mkdir()
    fs = FileSystem(str(tmp_path / "gone"))
    os.rmdir(tmp_path / "gone")
    assert fs.resolve("/nowhere", "../x/y") == "/x/y"


def test_resolve_limits_count_bytes_not_characters(fs: FileSystem) -> None:
    fs.resolve("/", "é" * (MAX_NAME // 2))  # 254 bytes
    with pytest.raises(FSError) as info:
        fs.resolve("/", "é" * (MAX_NAME // 2 + 1))  # 256 bytes, 128 characters
    assert info.value.code == 553
    long_path = "/".join(["d" * 100] * (MAX_PATH // 101))
    assert fs.resolve("/", long_path)
    with pytest.raises(FSError) as info:
        fs.resolve("/", long_path + "/" + "d" * 100)
    assert info.value.code == 553
    with pytest.raises(FSError) as info:
        fs.resolve("/", "ok\x00")
    assert info.value.code == 553


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        FileSystem(str(tmp_path / "file"))
    os.symlink(tmp_path, tmp_path / "link")
    assert FileSystem(str(tmp_path / "link")).root == os.path.realpath(tmp_path)


# ---- stat and listings


def test_stat_gives_the_file_facts(fs: FileSystem, root: Path) -> None:
    path = root / "pub" / "a.txt"
    os.utime(path, (1_000_000_000, 1_234_567_890.5))
    os.chown(path, 1234, 5678)
    os.chmod(path, 0o640)
    os.link(path, root / "hard")
    info = fs.stat("/pub/a.txt")
    real = os.stat(path)
    assert info.name == "a.txt"
    assert not info.is_dir and not info.is_link
    assert info.size == real.st_size == 6
    assert info.mtime == real.st_mtime
    assert info.mode == real.st_mode and stat.S_IMODE(info.mode) == 0o640
    assert info.nlink == real.st_nlink == 2
    assert (info.owner, info.group) == (str(real.st_uid), str(real.st_gid)) == ("1234", "5678")
    assert info.unique == f"{real.st_dev:x}U{real.st_ino:x}"
    assert fs.stat("/hard").unique == info.unique  # one file, two names
    assert fs.stat("/pub").unique != info.unique


def test_stat_of_directories_and_root(fs: FileSystem, root: Path) -> None:
    (root / "pub" / "sub2").mkdir()
    info = fs.stat("/pub")
    assert info.is_dir and info.name == "pub"
    assert info.nlink == os.stat(root / "pub").st_nlink == 4  # ., .., sub, sub2
    top = fs.stat("/")
    assert top.is_dir and top.unique == fs.stat("/pub/..").unique
    assert fs.is_dir("/pub") and not fs.is_file("/pub")
    assert fs.is_file("/top.txt") and not fs.is_dir("/top.txt")
    assert not fs.is_dir("/missing") and not fs.is_file("/missing")


def test_listdir_is_sorted_and_complete(fs: FileSystem, root: Path) -> None:
    for name in ("zeta", "Alpha", "beta", "é", "10", "9"):
        (root / "pub" / name).write_bytes(name.encode())
    listed = fs.listdir("/pub")
    names = [i.name for i in listed]
    assert names == sorted(names)
    assert set(names) == names_on_disk(root / "pub")
    for info in listed:
        real = os.stat(root / "pub" / info.name)
        assert (info.size, info.is_dir, info.unique) == (
            real.st_size,
            stat.S_ISDIR(real.st_mode),
            f"{real.st_dev:x}U{real.st_ino:x}",
        )


def test_listdir_of_a_file_or_missing_is_550(fs: FileSystem) -> None:
    for path in ("/top.txt", "/missing", "/pub/missing/deeper"):
        with pytest.raises(FSError) as info:
            fs.listdir(path)
        assert info.value.code == 550
        assert info.value.message.endswith(path)


def test_listdir_hides_upload_temp_files(fs: FileSystem, root: Path) -> None:
    (root / "pub" / (TEMP_PREFIX + "stale.x")).write_bytes(b"left by a crash")
    (root / "pub" / ".hidden").write_bytes(b"a dot file is listed")
    up = fs.open_upload("/pub/new.txt")
    up.write(b"partial")
    on_disk = names_on_disk(root / "pub")
    listed = {i.name for i in fs.listdir("/pub")}
    temps = {n for n in on_disk if n.startswith(TEMP_PREFIX)}
    assert len(temps) == 2
    assert listed == on_disk - temps
    assert ".hidden" in listed and "new.txt" not in listed
    up.abort()


def test_links_inside_are_listed_as_what_they_point_to(fs: FileSystem, root: Path) -> None:
    os.symlink("pub/a.txt", root / "to_file")
    os.symlink("pub", root / "to_dir")
    os.symlink("pub/nothing", root / "dangling")
    listed = {i.name: i for i in fs.listdir("/")}
    target = os.stat(root / "pub" / "a.txt")
    f = listed["to_file"]
    assert f.is_link and not f.is_dir and f.size == target.st_size
    assert stat.S_ISREG(f.mode) and f.unique == f"{target.st_dev:x}U{target.st_ino:x}"
    assert f.target is None  # shown as the file it is: no " -> x" in a LIST line
    d = listed["to_dir"]
    assert d.is_link and d.is_dir and stat.S_ISDIR(d.mode)
    dangling = listed["dangling"]
    assert dangling.is_link and stat.S_ISLNK(dangling.mode)
    assert dangling.target == "/pub/nothing"
    assert fs.stat("/to_dir/a.txt").size == target.st_size


def test_a_link_loop_is_listed_and_can_be_deleted(fs: FileSystem, root: Path) -> None:
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    assert {"loop1", "loop2"} <= {i.name for i in fs.listdir("/")}
    with pytest.raises(FSError) as info:
        fs.stat("/loop1")
    assert info.value.code == 550
    fs.delete("/loop1")
    assert not os.path.lexists(root / "loop1")


def test_listing_ten_thousand_files_is_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    base = tempfile.mkdtemp(prefix="ftp-big-", dir=FAST_TMP)
    try:
        big_listing(base, monkeypatch)
    finally:
        shutil.rmtree(base)


def big_listing(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = FileSystem(base)
    big = Path(base) / "big"
    big.mkdir()
    dir_fd = os.open(big, os.O_RDONLY)
    for i in range(10_000):
        os.close(os.open(f"f{i:05d}", os.O_CREAT | os.O_WRONLY, dir_fd=dir_fd))
    os.close(dir_fd)
    # One stat per entry, from the directory read itself (scandir): no call per entry
    # by path (os.stat / os.lstat / os.open), whose count would grow with the listing.
    calls = []
    for name in ("stat", "lstat", "open", "readlink"):
        real = getattr(os, name)

        def counting(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(args[0])
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, counting)
    start = time.perf_counter()
    listed = fs.listdir("/big")
    took = time.perf_counter() - start
    monkeypatch.undo()
    assert len(listed) == 10_000
    assert [i.name for i in listed[:2]] == ["f00000", "f00001"]
    assert len(calls) < 10, calls[:20]
    assert took < 10, took  # ~0.2 s here; the count above is the real check


def test_iter_tree_walks_depth_first_without_entering_linked_dirs(
    fs: FileSystem, root: Path
) -> None:
    (root / "pub" / "sub" / "deep.txt").write_bytes(b"d")
    os.symlink("..", root / "pub" / "sub" / "parent")  # a loop if entered
    tree = list(fs.iter_tree("/pub"))
    paths = [p for p, _ in tree]
    assert paths == [
        "/pub/a.txt",
        "/pub/b.bin",
        "/pub/sub",
        "/pub/sub/deep.txt",
        "/pub/sub/parent",
    ]
    assert dict(tree)["/pub/sub/parent"].is_link
    assert [p for p, _ in fs.iter_tree("/")][:2] == ["/pub", "/pub/a.txt"]


# ---- names that are not UTF-8

RAW = b"caf\xe9.txt"  # Latin-1 on disk


@pytest.fixture
def latin1(root: Path) -> Path:
    path = os.path.join(os.fsencode(root), b"pub", RAW)
    with open(path, "wb") as f:
        f.write(b"latin-1 name")
    return root


def test_undecodable_names_are_listed_escaped(fs: FileSystem, latin1: Path) -> None:
    names = [i.name for i in fs.listdir("/pub")]
    escaped = RAW.decode("utf-8", "backslashreplace")
    assert escaped in names
    assert escaped == "caf" + "\\" + "xe9.txt"
    for name in names:
        name.encode("utf-8")  # every listed name is valid UTF-8 (no surrogates)


def test_escaped_and_surrogate_names_reach_the_file(fs: FileSystem, latin1: Path) -> None:
    escaped = RAW.decode("utf-8", "backslashreplace")
    surrogate = RAW.decode("utf-8", "surrogateescape")  # how the server decodes a command
    for name in (escaped, surrogate):
        with fs.open_read("/pub/" + name) as f:
            assert f.read() == b"latin-1 name"
        assert fs.stat("/pub/" + name).size == len(b"latin-1 name")
        assert fs.real_path("/pub/" + name) == os.fsdecode(
            os.path.join(os.fsencode(latin1), b"pub", RAW)
        )
    fs.rename("/pub/" + escaped, "/pub/renamed.txt")
    assert (latin1 / "pub" / "renamed.txt").read_bytes() == b"latin-1 name"
    assert fs.display("/pub/" + surrogate) == "/pub/" + escaped


def test_undecodable_directory_names_in_trees(fs: FileSystem, root: Path) -> None:
    raw_dir = os.path.join(os.fsencode(root), b"d\xff\xfe")
    os.mkdir(raw_dir)
    with open(os.path.join(raw_dir, b"in"), "wb") as f:
        f.write(b"x")
    paths = [p for p, _ in fs.iter_tree("/")]
    dpath = "/" + b"d\xff\xfe".decode("utf-8", "backslashreplace")
    assert dpath + "/in" in paths
    assert fs.stat(dpath + "/in").size == 1
    assert [i.name for i in fs.listdir(dpath)] == ["in"]
    fs.delete(dpath + "/in")
    fs.rmdir(dpath)
    assert not os.path.exists(raw_dir)


def test_a_name_really_spelt_with_backslash_x_wins(fs: FileSystem, latin1: Path) -> None:
    escaped = RAW.decode("utf-8", "backslashreplace")
    (latin1 / "pub" / escaped).write_bytes(b"literal")
    with fs.open_read("/pub/" + escaped) as f:
        assert f.read() == b"literal"
    with fs.open_read("/pub/" + RAW.decode("utf-8", "surrogateescape")) as f:
        assert f.read() == b"latin-1 name"


def test_escapes_of_valid_utf8_are_not_decoded(fs: FileSystem, root: Path) -> None:
    # "\xc3\xa9" would be "é": a listing never writes it so, so it names itself
    (root / "é").write_bytes(b"e acute")
    name = "\\xc3\\xa9"
    with pytest.raises(FSError):
        fs.stat("/" + name)
    up = fs.open_upload("/" + name)
    up.commit()
    assert name in names_on_disk(root)


def test_line_breaks_in_names_are_listed_escaped_and_reach_the_file(
        fs: FileSystem, root: Path) -> None:
    # A name holding CR LF and a fake "ls -l" line after it must stay one listed name: a
    # client reading the listing line by line would otherwise see an entry that is not there.
    fake = "a\r\n-rw-r--r--   1 0 0 99 Jan 01  2025 passwd"
    (root / fake).write_bytes(b"one")
    (root / "b\nc").write_bytes(b"two")
    listed = {i.name for i in fs.listdir("/")}
    shown_fake = "a" + "\\x0d" + "\\x0a" + "-rw-r--r--   1 0 0 99 Jan 01  2025 passwd"
    assert {shown_fake, "b" + "\\x0a" + "c"} <= listed
    assert not any("\r" in name or "\n" in name for name in listed)
    with fs.open_read("/" + shown_fake) as f:  # the name as listed reaches the file
        assert f.read() == b"one"
    assert fs.display("/b\nc") == "/b" + "\\x0a" + "c"
    assert [p for p, _ in fs.iter_tree("/") if p.startswith("/b")] == ["/b" + "\\x0a" + "c"]
    # "\x41" is not how a listing writes "A": it names itself
    (root / "A").write_bytes(b"plain")
    with pytest.raises(FSError):
        fs.stat("/" + "\\x41")


# ---- reading


def test_open_read_from_an_offset(fs: FileSystem) -> None:
    with fs.open_read("/top.txt") as f:
        assert f.read() == b"0123456789"
    with fs.open_read("/top.txt", 4) as f:
        assert f.read() == b"456789"
    with fs.open_read("/top.txt", 10) as f:
        assert f.read() == b""
    with pytest.raises(FSError) as info:
        fs.open_read("/top.txt", 11)
    assert info.value.code == 554


@pytest.mark.parametrize("path", ["/", "/pub", "/missing", "/top.txt/x"])
def test_open_read_refuses_what_is_not_a_file(fs: FileSystem, path: str) -> None:
    with pytest.raises(FSError) as info:
        fs.open_read(path)
    assert info.value.code == 550
    assert info.value.message.endswith(path)


def test_open_read_of_a_fifo_fails_at_once(fs: FileSystem, root: Path) -> None:
    os.mkfifo(root / "fifo")
    outcome: list[Any] = []

    def read() -> None:
        try:
            outcome.append(fs.open_read("/fifo"))
        except FSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # blocked in open(): let it go before failing
        fd = os.open(root / "fifo", os.O_WRONLY)
        os.close(fd)
        thread.join()
        pytest.fail("open_read blocked on a FIFO")
    assert isinstance(outcome[0], FSError) and outcome[0].code == 550


# ---- uploads


def test_fresh_upload_is_invisible_until_commit(fs: FileSystem, root: Path) -> None:
    up = fs.open_upload("/pub/new.bin")
    assert isinstance(up, Upload)
    assert (up.path, up.offset, up.written) == ("/pub/new.bin", 0, 0)
    up.write(b"abc")
    up.write(memoryview(b"defg").tobytes())
    assert up.written == 7
    assert not (root / "pub" / "new.bin").exists()
    temps = [n for n in names_on_disk(root / "pub") if n.startswith(TEMP_PREFIX)]
    assert len(temps) == 1 and temps[0].endswith(".new.bin")
    up.commit()
    assert (root / "pub" / "new.bin").read_bytes() == b"abcdefg"
    assert not [n for n in names_on_disk(root / "pub") if n.startswith(TEMP_PREFIX)]
    assert up.closed
    with pytest.raises(ValueError):
        up.write(b"more")


def test_aborted_fresh_upload_leaves_nothing(fs: FileSystem, root: Path) -> None:
    before = names_on_disk(root / "pub")
    up = fs.open_upload("/pub/new.bin")
    up.write(b"x" * 100_000)
    up.abort()
    assert names_on_disk(root / "pub") == before
    up.abort()  # twice is harmless


def test_aborted_upload_over_a_file_leaves_it_unchanged(fs: FileSystem, root: Path) -> None:
    target = root / "pub" / "a.txt"
    before = (target.read_bytes(), os.stat(target).st_ino)
    up = fs.open_upload("/pub/a.txt")
    up.write(b"replacement")
    assert target.read_bytes() == before[0]  # still the old one while the upload runs
    up.abort()
    assert (target.read_bytes(), os.stat(target).st_ino) == before
    assert names_on_disk(root / "pub") == {"a.txt", "b.bin", "sub"}


def test_commit_replaces_atomically(fs: FileSystem, root: Path) -> None:
    # A reader that opened the old file keeps reading the old bytes: the new file was
    # renamed over the name, never written into the old one.
    target = root / "pub" / "a.txt"
    os.chmod(target, 0o604)
    with open(target, "rb") as reader:
        old_ino = os.fstat(reader.fileno()).st_ino
        up = fs.open_upload("/pub/a.txt")
        up.write(b"new contents")
        up.commit()
        assert reader.read() == b"alpha\n"
    assert target.read_bytes() == b"new contents"
    assert os.stat(target).st_ino != old_ino
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o604  # permissions kept


def test_a_file_we_may_not_write_is_not_replaced(
    fs: FileSystem, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rename() would replace it regardless of its mode, as an in-place write would not:
    # the permission is checked first. (Tests run as root, so the kernel is asked to say no.)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, **kw: False if p == b"a.txt" else real_access(p, m, **kw)
    )
    with pytest.raises(FSError) as info:
        fs.open_upload("/pub/a.txt")
    assert str(info.value) == "Permission denied: /pub/a.txt"
    assert (root / "pub" / "a.txt").read_bytes() == b"alpha\n"
    assert names_on_disk(root / "pub") == {"a.txt", "b.bin", "sub"}


def test_a_commit_that_cannot_rename_leaves_nothing(fs: FileSystem, root: Path) -> None:
    up = fs.open_upload("/pub/x")
    up.write(b"data")
    (root / "pub" / "x").mkdir()  # the name became a directory meanwhile
    (root / "pub" / "x" / "keep").write_bytes(b"")
    with pytest.raises(FSError) as info:
        up.commit()
    assert info.value.code == 550
    assert info.value.message.endswith("/pub/x")
    assert names_on_disk(root / "pub") == {"a.txt", "b.bin", "sub", "x"}
    assert up.closed


def test_an_upload_collected_without_commit_removes_its_temp(fs: FileSystem, root: Path) -> None:
    up = fs.open_upload("/pub/new.bin")
    up.write(b"lost")
    del up
    gc.collect()
    assert names_on_disk(root / "pub") == {"a.txt", "b.bin", "sub"}


def test_upload_with_the_longest_name(fs: FileSystem, root: Path) -> None:
    name = "n" * MAX_NAME
    up = fs.open_upload("/" + name)
    up.write(b"long")
    up.commit()
    assert (root / name).read_bytes() == b"long"


def test_resumed_upload_writes_into_the_file_from_the_offset(fs: FileSystem, root: Path) -> None:
    target = root / "top.txt"
    ino = os.stat(target).st_ino
    up = fs.open_upload("/top.txt", offset=4)
    assert up.offset == 4
    assert target.read_bytes() == b"0123"  # truncated at the offset
    up.write(b"ABC")
    up.abort()  # a break: what arrived is kept to resume from
    assert target.read_bytes() == b"0123ABC"
    assert os.stat(target).st_ino == ino
    up = fs.open_upload("/top.txt", offset=7)
    up.write(b"DEF")
    up.commit()
    assert target.read_bytes() == b"0123ABCDEF"


def test_resume_offset_limits(fs: FileSystem, root: Path) -> None:
    with pytest.raises(FSError) as info:
        fs.open_upload("/top.txt", offset=11)
    assert info.value.code == 554
    assert (root / "top.txt").read_bytes() == b"0123456789"
    up = fs.open_upload("/top.txt", offset=10)  # exactly the size: appends
    up.write(b"!")
    up.commit()
    assert (root / "top.txt").read_bytes() == b"0123456789!"
    with pytest.raises(FSError) as info:
        fs.open_upload("/missing.txt", offset=3)
    assert info.value.code == 550


def test_append_creates_or_extends(fs: FileSystem, root: Path) -> None:
    up = fs.open_upload("/log.txt", append=True)
    assert up.offset == 0
    up.write(b"one\n")
    up.commit()
    up = fs.open_upload("/log.txt", append=True)
    assert up.offset == 4
    up.write(b"two\n")
    up.abort()
    assert (root / "log.txt").read_bytes() == b"one\ntwo\n"


@pytest.mark.parametrize(
    "kwargs", [{}, {"offset": 1}, {"append": True}], ids=["fresh", "offset", "append"]
)
@pytest.mark.parametrize("path", ["/", "/pub", "/missing/x", "/top.txt/x"])
def test_upload_refuses_directories_and_missing_parents(
    fs: FileSystem, root: Path, path: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(FSError) as info:
        fs.open_upload(path, **kwargs)
    assert info.value.code == 550
    assert not os.path.exists(root / "missing")


def test_upload_follows_a_link_inside_to_its_file(fs: FileSystem, root: Path) -> None:
    os.symlink("pub/a.txt", root / "alias")
    up = fs.open_upload("/alias")
    up.write(b"via the link")
    up.commit()
    assert os.path.islink(root / "alias")
    assert (root / "pub" / "a.txt").read_bytes() == b"via the link"


def test_disk_full_is_452(fs: FileSystem, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up = fs.open_upload("/pub/new.bin")
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(FSError) as info:
        up.write(b"x")
    assert info.value.code == 452
    assert str(root) not in str(info.value)
    monkeypatch.setattr(os, "write", real_write)
    up.abort()
    assert names_on_disk(root / "pub") == {"a.txt", "b.bin", "sub"}


def test_short_writes_are_continued(
    fs: FileSystem, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    up = fs.open_upload("/pub/new.bin")
    up.write(b"0123456789")
    monkeypatch.undo()
    up.commit()
    assert (root / "pub" / "new.bin").read_bytes() == b"0123456789"
    assert up.written == 10


# ---- changes


def test_unique_name(fs: FileSystem, root: Path) -> None:
    assert fs.unique_name("/pub", "fresh.txt") == "/pub/fresh.txt"
    taken = fs.unique_name("/pub", "a.txt")
    assert taken.startswith("/pub/") and taken != "/pub/a.txt"
    assert not fs.is_file(taken)
    assert fs.unique_name("/pub", "../../x/a.txt").startswith("/pub/a.txt")
    no_hint = fs.unique_name("/pub")
    assert no_hint.startswith("/pub/") and not fs.is_file(no_hint)
    seen = set()
    for _ in range(3):
        name = fs.unique_name("/pub", "a.txt")
        assert name not in seen
        seen.add(name)
        fs.open_upload(name).commit()
    with pytest.raises(FSError):
        fs.unique_name("/missing", "x")


def test_delete(fs: FileSystem, root: Path) -> None:
    fs.delete("/pub/a.txt")
    assert not (root / "pub" / "a.txt").exists()
    os.symlink("b.bin", root / "pub" / "link")
    fs.delete("/pub/link")  # the link, not its file
    assert (root / "pub" / "b.bin").exists()
    for path in ("/pub", "/", "/pub/a.txt"):
        with pytest.raises(FSError) as info:
            fs.delete(path)
        assert info.value.code == 550


def test_mkdir_and_rmdir(fs: FileSystem, root: Path) -> None:
    fs.mkdir("/pub/new")
    assert (root / "pub" / "new").is_dir()
    for path in ("/pub/new", "/pub/a.txt", "/", "/missing/x"):
        with pytest.raises(FSError) as info:
            fs.mkdir(path)
        assert info.value.code == 550
    with pytest.raises(FSError) as info:
        fs.rmdir("/pub")
    assert info.value.code == 550 and info.value.message == "Directory not empty: /pub"
    fs.rmdir("/pub/new")
    assert not (root / "pub" / "new").exists()
    for path in ("/", "/pub/a.txt", "/missing"):
        with pytest.raises(FSError) as info:
            fs.rmdir(path)
        assert info.value.code == 550
    assert root.is_dir()


def test_rename(fs: FileSystem, root: Path) -> None:
    fs.rename("/pub/a.txt", "/moved.txt")
    assert (root / "moved.txt").read_bytes() == b"alpha\n"
    fs.rename("/moved.txt", "/top.txt")  # replaces, as POSIX rename does
    assert (root / "top.txt").read_bytes() == b"alpha\n"
    assert not (root / "moved.txt").exists()
    fs.rename("/pub/sub", "/sub2")
    assert (root / "sub2").is_dir()


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("/", "/x"),
        ("/pub", "/"),
        ("/pub", "/pub/sub/inside"),
        ("/pub", "/pub/inside"),
        ("/missing", "/x"),
        ("/top.txt", "/missing/x"),
        ("/top.txt", "/pub"),  # a file over a directory
        ("/pub", "/top.txt"),  # a directory over a file
    ],
)
def test_rename_refusals(fs: FileSystem, root: Path, source: str, target: str) -> None:
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    with pytest.raises(FSError) as info:
        fs.rename(source, target)
    assert info.value.code == 550
    assert str(root) not in str(info.value)
    if target.startswith(source + "/"):
        assert "into itself" in str(info.value)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before


def test_rename_into_itself_through_a_link_is_refused(fs: FileSystem, root: Path) -> None:
    os.symlink("pub", root / "alias")
    with pytest.raises(FSError) as info:
        fs.rename("/pub", "/alias/sub/x")
    assert info.value.code == 550
    assert str(info.value) == "Cannot move a directory into itself: /alias/sub/x"
    assert (root / "pub").is_dir()


def test_chmod(fs: FileSystem, root: Path) -> None:
    fs.chmod("/top.txt", 0o600)
    assert stat.S_IMODE(os.stat(root / "top.txt").st_mode) == 0o600
    fs.chmod("/pub", 0o750)
    assert stat.S_IMODE(os.stat(root / "pub").st_mode) == 0o750
    os.symlink("top.txt", root / "alias")
    fs.chmod("/alias", 0o644)  # followed, as chmod(1) does
    assert stat.S_IMODE(os.stat(root / "top.txt").st_mode) == 0o644
    with pytest.raises(FSError) as info:
        fs.chmod("/missing", 0o644)
    assert info.value.code == 550
    with pytest.raises(FSError):
        fs.chmod("/top.txt", 0o10000)
    assert stat.S_IMODE(os.stat(root / "top.txt").st_mode) == 0o644


# ---- errors


def test_os_errors_map_to_ftp_replies(
    fs: FileSystem, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root the kernel never says EACCES here: have it say so.
    cases = {
        errno.EACCES: (550, "Permission denied: /top.txt"),
        errno.EPERM: (550, "Permission denied: /top.txt"),
        errno.ENOENT: (550, "No such file or directory: /top.txt"),
        errno.EDQUOT: (452, "Insufficient storage space: /top.txt"),
        errno.EBUSY: (450, "File busy: /top.txt"),
        errno.EIO: (451, "Local error in processing: /top.txt"),
    }
    for code, expected in cases.items():

        def fail(*args: Any, _code: int = code, **kwargs: Any) -> None:
            raise OSError(_code, os.strerror(_code), str(root / "top.txt"))

        monkeypatch.setattr(os, "unlink", fail)
        with pytest.raises(FSError) as info:
            fs.delete("/top.txt")
        assert (info.value.code, str(info.value)) == expected
        monkeypatch.undo()


def test_errors_name_the_virtual_path_only(fs: FileSystem, root: Path) -> None:
    attempts: list[Callable[[], Any]] = [
        lambda: fs.stat("/pub/missing"),
        lambda: fs.listdir("/top.txt"),
        lambda: fs.open_read("/pub"),
        lambda: fs.delete("/pub"),
        lambda: fs.mkdir("/pub"),
        lambda: fs.rmdir("/pub"),
        lambda: fs.rename("/pub/missing", "/x"),
        lambda: fs.open_upload("/nodir/x"),
    ]
    for attempt in attempts:
        with pytest.raises(FSError) as info:
            attempt()
        assert str(root) not in str(info.value)
        assert str(root) not in repr(info.value.args)
        assert ": /" in str(info.value)


def test_read_only_refuses_every_change(root: Path) -> None:
    fs = FileSystem(str(root), writable=False)

    def snapshot() -> list[tuple[str, int, bytes | None]]:
        out = []
        for p in sorted(root.rglob("*")):
            st_ = p.lstat()
            out.append((str(p), st_.st_mode, p.read_bytes() if p.is_file() else None))
        return out

    before = snapshot()
    changes: list[Callable[[], Any]] = [
        lambda: fs.open_upload("/new.txt"),
        lambda: fs.open_upload("/top.txt"),
        lambda: fs.open_upload("/top.txt", offset=2),
        lambda: fs.open_upload("/top.txt", append=True),
        lambda: fs.delete("/top.txt"),
        lambda: fs.mkdir("/newdir"),
        lambda: fs.rmdir("/pub/sub"),
        lambda: fs.rename("/top.txt", "/renamed.txt"),
        lambda: fs.chmod("/top.txt", 0o777),
    ]
    for change in changes:
        with pytest.raises(FSError) as info:
            change()
        assert info.value.code == 550
        assert info.value.message.startswith("Permission denied: /")
    assert snapshot() == before
    # reading still works
    assert [i.name for i in fs.listdir("/pub")] == ["a.txt", "b.bin", "sub"]
    with fs.open_read("/top.txt") as f:
        assert f.read() == b"0123456789"


# ---- deep trees


def remove_deep_tree(top: bytes) -> None:
    """Remove ``top`` and all below it, however deep (shutil.rmtree recurses once a level)."""
    dirs, stack = [], [top]
    while stack:
        path = stack.pop()
        dirs.append(path)
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.unlink(entry.path)
    for path in reversed(dirs):
        os.rmdir(path)


@pytest.fixture(scope="module")
def deep() -> Iterator[tuple[FileSystem, str]]:
    """A root holding a chain of 1,500 directories (3,000 bytes of path: within the limits)
    with a file at its bottom; the virtual path of that bottom directory. The root is made
    outside pytest's tmp_path, whose clean-up could not remove a tree this deep; the tests
    sharing it only add to it."""
    base = tempfile.mkdtemp(prefix="ftp-deep-", dir=FAST_TMP)
    vpath = "/d" * 1500
    real = os.fsencode(base) + vpath.encode()
    try:
        fd = os.open(base, os.O_RDONLY)
        for _ in range(1500):
            os.mkdir("d", dir_fd=fd)
            below = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = below
        os.close(fd)
        with open(real + b"/bottom.txt", "wb") as f:
            f.write(b"at the bottom")
        (Path(base) / "pub").mkdir()
        # a link from the bottom that climbs 12 levels (past the few directories a walk
        # holds open) and comes back down to the file
        os.symlink("../" * 12 + "d/" * 12 + "bottom.txt", real + b"/climb")
        yield FileSystem(base, writable=True), vpath
    finally:
        remove_deep_tree(os.fsencode(base))


@pytest.fixture
def few_descriptors() -> Any:
    """Lower the open-file limit to what is open now plus 40, for the test's length."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 40, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_deep_paths_take_few_descriptors(
    deep: tuple[FileSystem, str], few_descriptors: Any
) -> None:
    fs, bottom = deep
    assert fs.stat(bottom + "/bottom.txt").size == len(b"at the bottom")
    with fs.open_read(bottom + "/climb") as f:
        assert f.read() == b"at the bottom"
    fs.mkdir(bottom + "/new")
    assert fs.is_dir(bottom + "/new")
    assert [i.name for i in fs.listdir(bottom)] == ["bottom.txt", "climb", "new"]
    up = fs.open_upload(bottom + "/new/up.txt")
    up.write(b"deep")
    up.commit()
    fs.rename(bottom + "/new/up.txt", "/pub/up.txt")
    assert fs.stat("/pub/up.txt").size == 4


def test_iter_tree_goes_as_deep_as_the_limits_allow(
    deep: tuple[FileSystem, str], few_descriptors: Any
) -> None:
    fs, bottom = deep
    # after the 1,500 levels below /d/d, /d/e\xff is entered from /d, long closed by then
    side = os.path.join(os.fsencode(fs.root), b"d", b"e\xff")
    os.mkdir(side)
    with open(side + b"/inside.txt", "wb") as f:
        f.write(b"x")
    paths = [p for p, _ in fs.iter_tree("/")]
    assert bottom + "/bottom.txt" in paths
    assert "/d/e" + "\\" + "xff/inside.txt" in paths
    on_disk = []
    stack = [fs.root]
    while stack:  # os.walk and Path.rglob recurse once per level
        with os.scandir(stack.pop()) as it:
            for entry in it:
                on_disk.append(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    shown = (os.fsencode(p[len(fs.root) :]).decode("utf-8", "backslashreplace") for p in on_disk)
    assert sorted(paths) == sorted(shown)
