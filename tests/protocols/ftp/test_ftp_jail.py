"""The FTP root is a jail: no path, link or race reaches outside it, for any file operation.

Each attack runs against a fresh tree: ``root/`` (the jail) beside ``outside/`` and
``root-sibling/`` (a directory whose name starts like the root's), both holding a file
``SECRET``. After each attempt the test checks what matters: the operation failed, or it
acted inside the root only: nothing outside changed, nothing returned came from outside,
and no error message named a real path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.ftp.filesystem import MAX_NAME, MAX_PATH, FileSystem, FSError

SECRET = b"SECRET: outside the root\n"
INSIDE = b"inside the root\n"


def make_tree(base: Path) -> Path:
    """The jail and its neighbours; returns the root."""
    outside = base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "dir" / "secret.txt").write_bytes(SECRET)
    (outside / "f").write_bytes(SECRET)
    sibling = base / "root-sibling"
    sibling.mkdir()
    (sibling / "secret.txt").write_bytes(SECRET)
    (base / "pub").mkdir()  # where a relative link moved up one level lands
    (base / "pub" / "file.txt").write_bytes(SECRET)

    root = base / "root"
    (root / "pub" / "sub").mkdir(parents=True)
    (root / "pub" / "file.txt").write_bytes(INSIDE)
    (root / "pub" / "sub" / "f").write_bytes(INSIDE)
    (root / "victim.txt").write_bytes(INSIDE)
    (root / "emptydir").mkdir()
    links = {
        "out_abs_dir": str(outside),
        "out_rel_dir": "../outside",
        "out_abs_file": str(outside / "secret.txt"),
        "out_rel_file": "../outside/secret.txt",
        "out_sibling": "../root-sibling/secret.txt",
        "out_sibling_abs": str(sibling),
        "chain1": "chain2",
        "chain2": "chain3",
        "chain3": "pub/../../outside",
        "out_dotdot_abs": str(root / ".." / "outside"),
        "out_root_parent": "..",
        "out_etc": "/etc",
        "out_passwd": "/etc/passwd",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    os.symlink("../..", root / "pub" / "upup")  # pub/../.. is the root's parent
    os.symlink("../../../outside/secret.txt", root / "pub" / "sub" / "deep_out")
    return root


#: links (and paths through them) that lead out of the root
LINKS_OUT = [
    "out_abs_dir",
    "out_abs_dir/secret.txt",
    "out_abs_dir/dir",
    "out_abs_dir/dir/secret.txt",
    "out_rel_dir",
    "out_rel_dir/secret.txt",
    "out_abs_file",
    "out_rel_file",
    "out_sibling",
    "out_sibling_abs",
    "out_sibling_abs/secret.txt",
    "chain1",
    "chain1/secret.txt",
    "out_dotdot_abs/secret.txt",
    "out_root_parent",
    "out_root_parent/outside/secret.txt",
    "out_etc",
    "out_etc/passwd",
    "out_passwd",
    "pub/upup",
    "pub/upup/outside/secret.txt",
    "pub/sub/deep_out",
    "/pub/sub/../upup/root-sibling",
]

#: paths a client may type to climb out, or that are not allowed at all
TRICKS = [
    "..",
    "../..",
    "/..",
    "/../etc/passwd",
    "//etc",
    "//etc/passwd",
    "a/../../..",
    "../outside/secret.txt",
    "/../../outside/secret.txt",
    "pub/../../outside/secret.txt",
    "\\..\\..",
    "..\\..\\outside\\secret.txt",
    "..\\outside",
    "%2e%2e",
    "%2e%2e/%2e%2e/outside/secret.txt",
    "..%2f..%2foutside",
    "...",
    "./../.",
    "~",
    "~root",
    "a\x00b",
    "../outside/secret.txt\x00.jpg",
    "x" * (MAX_NAME + 1),
    "é" * 128,  # 256 bytes in UTF-8
    "a/" * 2500,
    "/".join(["b" * 200] * 25),  # 5,024 bytes of names each allowed
    "\udcff../outside",
    "\ud800",
]

ATTACKS = LINKS_OUT + TRICKS


def snapshot(base: Path, skip: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every entry under ``base`` except ``skip``: mode and content (or link target)."""
    seen: dict[str, tuple[int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path == skip:
                continue
            st_ = path.lstat()
            if stat.S_ISLNK(st_.st_mode):
                seen[str(path)] = (st_.st_mode, os.readlink(path))
            elif stat.S_ISREG(st_.st_mode):
                seen[str(path)] = (st_.st_mode, path.read_bytes())
            else:
                seen[str(path)] = (st_.st_mode, None)
    return seen


def outside_ids(base: Path, root: Path) -> set[str]:
    """MLSx unique ids of everything outside the root (and of the root's parent)."""
    ids = set()
    for dirpath, dirnames, filenames in os.walk(base):
        if Path(dirpath) == root or root in Path(dirpath).parents:
            continue
        for name in [".", *dirnames, *filenames]:
            if Path(dirpath) / name == root:
                continue
            st_ = os.lstat(Path(dirpath) / name)
            ids.add(f"{st_.st_dev:x}U{st_.st_ino:x}")
    for path in ("/etc", "/etc/passwd", "/"):
        st_ = os.stat(path)
        ids.add(f"{st_.st_dev:x}U{st_.st_ino:x}")
    return ids


@pytest.fixture
def jail(tmp_path: Path) -> Iterator[tuple[FileSystem, Path]]:
    root = make_tree(tmp_path)
    yield FileSystem(str(root), writable=True), tmp_path


def check_error(exc: FSError, base: Path) -> None:
    """An FSError carries an FTP code and never a real path."""
    assert exc.code in (450, 452, 501, 550, 553, 554), exc.code
    assert str(base) not in str(exc)


# ---- every operation, every attack

Op = Callable[[FileSystem, str], Any]


def op_open_read(fs: FileSystem, path: str) -> bytes:
    with fs.open_read(path) as f:
        return f.read()


def op_upload(fs: FileSystem, path: str) -> None:
    up = fs.open_upload(path)
    up.write(b"uploaded")
    up.commit()


def op_resume(fs: FileSystem, path: str) -> None:
    up = fs.open_upload(path, offset=1)
    up.write(b"resumed")
    up.commit()


def op_append(fs: FileSystem, path: str) -> None:
    up = fs.open_upload(path, append=True)
    up.write(b"appended")
    up.commit()


def op_listdir(fs: FileSystem, path: str) -> list[Any]:
    return fs.listdir(path)


def op_iter_tree(fs: FileSystem, path: str) -> list[Any]:
    return [info for _, info in fs.iter_tree(path)]


OPS: dict[str, Op] = {
    "real_path": lambda fs, p: fs.real_path(p),
    "stat": lambda fs, p: fs.stat(p),
    "listdir": op_listdir,
    "iter_tree": op_iter_tree,
    "open_read": op_open_read,
    "open_upload": op_upload,
    "open_upload_offset": op_resume,
    "open_upload_append": op_append,
    "delete": lambda fs, p: fs.delete(p),
    "mkdir": lambda fs, p: fs.mkdir(p),
    "rmdir": lambda fs, p: fs.rmdir(p),
    "rename_source": lambda fs, p: fs.rename(p, "/renamed"),
    "rename_target": lambda fs, p: fs.rename("/victim.txt", p),
    "rename_dir_target": lambda fs, p: fs.rename("/emptydir", p),
    "chmod": lambda fs, p: fs.chmod(p, 0o777),
    "unique_name": lambda fs, p: fs.unique_name(p, "x"),
    "unique_name_hint": lambda fs, p: fs.unique_name("/pub", p),
}


def assert_inside(fs: FileSystem, base: Path, result: Any, ids: set[str]) -> None:
    """What an operation returned came from inside the root."""
    root = fs.root
    if isinstance(result, str) and result.startswith(root):
        real = os.path.realpath(result)
        assert real == root or real.startswith(root + os.sep), result
    if isinstance(result, bytes):
        assert result != SECRET
    infos = result if isinstance(result, list) else [result]
    for info in infos:
        unique = getattr(info, "unique", None)
        if unique is not None:
            assert unique not in ids, info
        name = getattr(info, "name", "")
        assert "secret" not in name


def restock(root: Path) -> None:
    """Put back what an earlier attempt in the same tree may have moved away inside the root
    (each attempt then meets the same targets)."""
    if not (root / "victim.txt").exists():
        (root / "victim.txt").write_bytes(INSIDE)
    if not (root / "emptydir").is_dir():
        (root / "emptydir").mkdir()
    for name in ("renamed",):
        path = root / name
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        elif path.exists() or path.is_symlink():
            path.unlink()


@pytest.mark.parametrize("op", list(OPS))
def test_no_operation_reaches_outside(jail: tuple[FileSystem, Path], op: str) -> None:
    # One tree per operation (kept fast); every attack, typed at / and from /pub.
    fs, base = jail
    root = Path(fs.root)
    before = snapshot(base, root)
    ids = outside_ids(base, root)
    for path in ATTACKS:
        for typed in (path, "/pub/" + path):
            restock(root)
            try:
                result = OPS[op](fs, typed)
            except FSError as exc:
                check_error(exc, base)
            else:
                assert_inside(fs, base, result, ids)
            assert snapshot(base, root) == before, typed


@pytest.mark.parametrize("op", [op for op in OPS if op not in ("unique_name_hint",)])
def test_links_out_are_refused_550(jail: tuple[FileSystem, Path], op: str) -> None:
    fs, base = jail
    for path in LINKS_OUT:
        restock(Path(fs.root))
        with pytest.raises(FSError) as info:
            OPS[op](fs, path)
        assert info.value.code == 550, path
        assert str(base) not in str(info.value)
        assert info.value.message.endswith(fs.resolve("/", path)), path


def test_is_dir_and_is_file_see_nothing_through_a_link_out(
    jail: tuple[FileSystem, Path],
) -> None:
    fs, _ = jail
    for path in LINKS_OUT:
        assert not fs.is_dir(path), path
        assert not fs.is_file(path), path


def test_links_out_are_invisible_in_listings(jail: tuple[FileSystem, Path]) -> None:
    fs, _ = jail
    root = Path(fs.root)
    on_disk = {p.name for p in root.iterdir()}
    listed = {info.name for info in fs.listdir("/")}
    out = {name for name in on_disk if name.startswith(("out_", "chain"))}
    assert out and not out & listed
    assert listed == on_disk - out
    assert "upup" not in {i.name for i in fs.listdir("/pub")}
    tree = [path for path, _ in fs.iter_tree("/")]
    assert not any("out_" in p or "chain" in p or "upup" in p or "deep_out" in p for p in tree)


def test_links_inside_are_followed(jail: tuple[FileSystem, Path]) -> None:
    fs, _ = jail
    root = Path(fs.root)
    os.symlink("pub/file.txt", root / "in_rel")
    os.symlink(str(root / "pub"), root / "in_abs_dir")
    os.symlink("../pub/sub", root / "pub" / "in_up")  # climbs, but stays inside
    os.symlink("in_rel", root / "in_chain")
    for path in ("in_rel", "in_chain", "in_abs_dir/file.txt", "pub/in_up/../file.txt"):
        with fs.open_read(path) as f:
            assert f.read() == INSIDE
    assert fs.is_dir("/in_abs_dir") and fs.is_dir("/pub/in_up")
    assert fs.real_path("/in_abs_dir/sub") == str(root / "pub" / "sub")
    assert {i.name for i in fs.listdir("/pub/in_up")} == {"f"}  # deep_out leads out


def test_absolute_link_to_a_sibling_with_the_roots_name_as_prefix_is_out(
    jail: tuple[FileSystem, Path],
) -> None:
    # /x/root-sibling starts with /x/root: a string-prefix check would let it in.
    # A decoy inside the root where a prefix-cut path ("-sibling/...") would land.
    fs, base = jail
    assert str(base / "root-sibling").startswith(fs.root)
    (Path(fs.root) / "-sibling").mkdir()
    (Path(fs.root) / "-sibling" / "secret.txt").write_bytes(INSIDE)
    with pytest.raises(FSError) as info:
        fs.open_read("/out_sibling_abs/secret.txt")
    assert info.value.code == 550


# ---- races: a link swapped in after the check


def swap_for_link(path: Path, target: Path) -> None:
    """Replace ``path`` (file or directory) by a symbolic link to ``target``."""
    aside = path.with_name(path.name + ".aside")
    os.rename(path, aside)
    os.symlink(target, path)


def test_a_link_swapped_in_after_resolve_is_refused(jail: tuple[FileSystem, Path]) -> None:
    fs, base = jail
    vpath = fs.resolve("/pub", "sub/f")
    swap_for_link(Path(fs.root) / "pub" / "sub", base / "outside")
    with pytest.raises(FSError) as info:
        op_open_read(fs, vpath)
    assert info.value.code == 550
    with pytest.raises(FSError):
        fs.listdir("/pub/sub")
    with pytest.raises(FSError):
        op_upload(fs, vpath)
    assert (base / "outside" / "f").read_bytes() == SECRET


@pytest.fixture
def swap_on(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, bytes, Callable[[], None]], None]:
    """Run ``swap`` just before the first ``os.<func>`` call on a path named ``name``:
    the window between the filesystem's check and its use."""

    def install(func: str, name: bytes, swap: Callable[[], None]) -> None:
        real = getattr(os, func)
        done: list[bool] = []

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not done and args and os.path.basename(os.fsencode(args[0])) == name:
                done.append(True)
                swap()
            return real(*args, **kwargs)

        monkeypatch.setattr(os, func, wrapper)

    return install


def test_race_last_component_swapped_before_open_read(
    jail: tuple[FileSystem, Path], swap_on: Any
) -> None:
    fs, base = jail
    target = Path(fs.root) / "pub" / "sub" / "f"
    swap_on("open", b"f", lambda: swap_for_link(target, base / "outside" / "secret.txt"))
    with pytest.raises(FSError) as info:
        op_open_read(fs, "/pub/sub/f")
    assert info.value.code == 550


def test_race_directory_swapped_during_the_walk(
    jail: tuple[FileSystem, Path], swap_on: Any
) -> None:
    # checked as a directory (lstat), swapped for a link out before it is opened
    fs, base = jail
    sub = Path(fs.root) / "pub" / "sub"
    swap_on("open", b"sub", lambda: swap_for_link(sub, base / "outside"))
    with pytest.raises(FSError):
        op_open_read(fs, "/pub/sub/f")


def test_race_directory_moved_after_the_walk_keeps_the_checked_one(
    jail: tuple[FileSystem, Path], swap_on: Any
) -> None:
    # the walk holds the checked directory open: a link put in its place later is not used
    fs, base = jail
    sub = Path(fs.root) / "pub" / "sub"
    swap_on("open", b"f", lambda: swap_for_link(sub, base / "outside"))
    assert op_open_read(fs, "/pub/sub/f") == INSIDE


def test_race_upload_commits_into_the_checked_directory(
    jail: tuple[FileSystem, Path],
) -> None:
    fs, base = jail
    sub = Path(fs.root) / "pub" / "sub"
    up = fs.open_upload("/pub/sub/f")
    up.write(b"new")
    swap_for_link(sub, base / "outside")
    up.commit()
    assert (base / "outside" / "f").read_bytes() == SECRET
    assert (Path(fs.root) / "pub" / "sub.aside" / "f").read_bytes() == b"new"


@pytest.mark.parametrize(
    "op",
    [
        lambda fs: op_resume(fs, "/pub/sub/f"),
        lambda fs: op_append(fs, "/pub/sub/f"),
        lambda fs: fs.chmod("/pub/sub/f", 0o777),
    ],
    ids=["resume", "append", "chmod"],
)
def test_race_last_component_swapped_before_a_change(
    jail: tuple[FileSystem, Path], swap_on: Any, op: Callable[[FileSystem], Any]
) -> None:
    fs, base = jail
    target = Path(fs.root) / "pub" / "sub" / "f"
    secret = base / "outside" / "f"
    mode = secret.stat().st_mode
    swap_on("open", b"f", lambda: swap_for_link(target, secret))
    with pytest.raises(FSError) as info:
        op(fs)
    assert info.value.code == 550
    assert secret.read_bytes() == SECRET
    assert secret.stat().st_mode == mode


def test_race_directory_swapped_before_listdir(jail: tuple[FileSystem, Path], swap_on: Any) -> None:
    fs, base = jail
    sub = Path(fs.root) / "pub" / "sub"
    swap_on("open", b"sub", lambda: swap_for_link(sub, base / "outside"))
    with pytest.raises(FSError):
        fs.listdir("/pub/sub")


def test_moving_a_directory_up_cannot_turn_a_relative_link_into_an_escape(
    jail: tuple[FileSystem, Path],
) -> None:
    # d1/d2/lnk -> ../../pub/file.txt is inside; moved one level up it points at base/pub
    fs, _ = jail
    root = Path(fs.root)
    (root / "d1" / "d2").mkdir(parents=True)
    os.symlink("../../pub/file.txt", root / "d1" / "d2" / "lnk")
    assert op_open_read(fs, "/d1/d2/lnk") == INSIDE
    fs.rename("/d1/d2", "/d2")
    with pytest.raises(FSError) as info:
        op_open_read(fs, "/d2/lnk")
    assert info.value.code == 550
    assert "lnk" not in {i.name for i in fs.listdir("/d2")}


def test_cwd_into_a_link_out_fails_and_dotdot_stays_at_root(
    jail: tuple[FileSystem, Path],
) -> None:
    # what CWD does: resolve, then is_dir
    fs, _ = jail
    for path in ("out_etc", "out_abs_dir", "chain1", "pub/upup"):
        assert not fs.is_dir(fs.resolve("/", path))
    assert fs.resolve("/", "../../..") == "/"
    assert fs.is_dir(fs.resolve("/pub", "../.."))


def test_backslash_is_a_name_character_never_a_separator(jail: tuple[FileSystem, Path]) -> None:
    fs, base = jail
    name = "..\\..\\outside\\secret.txt"
    assert fs.resolve("/pub", name) == "/pub/" + name
    op_upload(fs, "/pub/" + name)
    assert (Path(fs.root) / "pub" / name).read_bytes() == b"uploaded"
    assert (base / "outside" / "secret.txt").read_bytes() == SECRET
    assert name in {i.name for i in fs.listdir("/pub")}


def test_limits_are_553(jail: tuple[FileSystem, Path]) -> None:
    fs, _ = jail
    for path in ("a\x00b", "x" * (MAX_NAME + 1), "é" * 128, "a/" * (MAX_PATH // 2 + 1)):
        with pytest.raises(FSError) as info:
            fs.resolve("/", path)
        assert info.value.code == 553
        with pytest.raises(FSError) as info:
            fs.stat(path)
        assert info.value.code == 553
    fs.mkdir("x" * MAX_NAME)  # the limit itself is allowed


# ---- property: whatever is typed, real_path stays inside

TOKENS = ["/", ".", "..", "\\", "a", "\x00", " ", "pub", "upup", "out_abs_dir", "chain1"]


@pytest.fixture(scope="module")
def shared_jail(tmp_path_factory: pytest.TempPathFactory) -> FileSystem:
    root = make_tree(tmp_path_factory.mktemp("jail"))
    (root / "a").mkdir()
    (root / "a" / "a").mkdir()
    return FileSystem(str(root))


@pytest.fixture(scope="module")
def outside(shared_jail: FileSystem) -> set[str]:
    root = Path(shared_jail.root)
    return outside_ids(root.parent, root)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cwd=st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
    path=st.lists(st.sampled_from(TOKENS), max_size=20).map("".join),
)
def test_property_real_path_never_leaves_the_root(
    shared_jail: FileSystem, cwd: str, path: str
) -> None:
    fs = shared_jail
    root = fs.root
    try:
        vpath = fs.resolve(cwd, path)
    except FSError as exc:
        assert exc.code == 553
        assert "\x00" in cwd + path
        return
    assert vpath.startswith("/") and ".." not in vpath.split("/")
    try:
        real = fs.real_path(vpath)
    except FSError as exc:
        assert exc.code == 550
        assert root not in str(exc)
        return
    assert real == root or real.startswith(root + os.sep)
    # and once resolved on disk (links followed by the kernel), still inside
    resolved = os.path.realpath(real)
    assert resolved == root or resolved.startswith(root + os.sep)


@pytest.mark.parametrize("op", list(OPS))
def test_names_not_allowed_are_553_for_every_operation(
    jail: tuple[FileSystem, Path], op: str
) -> None:
    fs, _ = jail
    paths = ["/pub/a\x00b", "/pub/" + "x" * (MAX_NAME + 1), "/" + "é" * 128, "a/" * 2500]
    if op == "unique_name_hint":
        paths.pop()  # a hint's last name is all it takes: "" here, so a default name
    for path in paths:
        with pytest.raises(FSError) as info:
            OPS[op](fs, path)
        assert info.value.code == 553, (op, path[:20])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.lists(st.sampled_from(TOKENS), max_size=16).map("".join))
def test_property_nothing_listed_or_read_comes_from_outside(
    shared_jail: FileSystem, outside: set[str], path: str
) -> None:
    fs = shared_jail
    for op in ("stat", "listdir", "open_read", "iter_tree"):
        try:
            result = OPS[op](fs, path)
        except FSError as exc:
            assert exc.code in (550, 553, 554)
            assert fs.root not in str(exc)
            continue
        if isinstance(result, bytes):
            assert result != SECRET
        for info in result if isinstance(result, list) else [result]:
            assert info.unique not in outside, (op, path, info)
