"""Listing lines both ways: ``ls -l`` lines (LIST) and MLSx facts (MLSD/MLST).

The judges are programs that are not ours: GNU ``ls -ln`` on real files with set times
(the columns, the months, the six-months rule), ``strftime`` in the C locale for the month
names whatever the process's locale, and the listings vsftpd and pyftpdlib send for a
directory whose truth is ``os.lstat``. Recorded lines from servers that are not on this
machine (ProFTPD, IIS, ...) fill in the rest. Generated lines are in
test_ftp_core_properties.py.
"""

from __future__ import annotations

import ftplib
import os
import re
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ftp_peers import FTPPeer, pyftpdlib_server, vsftpd_server
from peers import require

import netshell as ns
from protocols.ftp.core import (
    MLST_FACTS,
    FileInfo,
    FTPProtocolError,
    format_mdtm,
    list_line,
    mlsx_line,
    parse_list_line,
    parse_mdtm,
    parse_mlsx_line,
)

SIX_MONTHS = 31556952 // 2  # GNU ls's "recent": half an average Gregorian year
DAY = 86400


def stamp(text: str) -> float:
    """Seconds since the epoch of an ISO date-time in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def info_of(path: Path) -> FileInfo:
    """What a server knows of ``path`` (lstat: a link is a link), owners as numbers."""
    st = path.lstat()
    is_link = stat.S_ISLNK(st.st_mode)
    return FileInfo(
        name=path.name,
        is_dir=stat.S_ISDIR(st.st_mode),
        size=st.st_size,
        mtime=st.st_mtime,
        mode=st.st_mode,
        nlink=st.st_nlink,
        owner=str(st.st_uid),
        group=str(st.st_gid),
        is_link=is_link,
        target=os.readlink(path) if is_link else None,
    )


# perms (and an ACL or SELinux mark), links, owner, group, size, date, name
COLUMNS = re.compile(
    r"(\S{10})\S?\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+([A-Za-z]{3}) (\d\d) ( \d{4}|\d\d:\d\d) (.*)",
    re.DOTALL,
)


def columns(line: str) -> tuple[str, ...]:
    match = COLUMNS.fullmatch(line)
    assert match is not None, line
    return match.groups()


def make_tree(root: Path, now: float) -> None:
    """Files of every kind ls shows differently, with times on both sides of six months."""
    root.mkdir(mode=0o755)
    files = {
        "plain.txt": (0o644, b"hello\n", now - 3 * DAY),
        "a name with  spaces ": (0o600, b"x" * 1234, now - 40 * DAY),
        " leading space": (0o640, b"", now - 5 * 60),
        "\u00fcn\u00efc\u00f8d\u00e9 \u65e5\u672c.txt": (0o664, b"u" * 77, now - 100 * DAY),
        "setuid": (0o4755, b"#!", now - 2 * 365 * DAY),
        "setgid-no-x": (0o2644, b"", stamp("2001-02-03T04:05:06")),
        "just recent": (0o644, b"r", now - SIX_MONTHS + 600),
        "just old": (0o644, b"o", now - SIX_MONTHS - 600),
        "big": (0o444, b"", stamp("1999-12-31T23:59:59")),
        "Dec 05 08:17 tricky": (0o644, b"t", now - 10 * DAY),
    }
    for name, (mode, data, mtime) in files.items():
        path = root / name
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    os.truncate(root / "big", 5_000_000_000)  # sparse: a size wider than 8 columns
    os.utime(root / "big", (stamp("1999-12-31T23:59:59"),) * 2)
    for month in range(1, 13):
        path = root / f"month {month:02d}"
        path.write_bytes(b"m")
        t = stamp(f"2019-{month:02d}-{month + 10:02d}T{month:02d}:{month * 4:02d}:00")
        os.utime(path, (t, t))
    sub = root / "sub dir"
    sub.mkdir(mode=0o755)
    (sub / "inner").mkdir()
    sticky = root / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    os.symlink("plain.txt", root / "link to plain")
    os.symlink("sub dir/inner", root / "dirlink")
    os.symlink("nowhere", root / "dangling")
    for path in (sub, sticky):
        os.utime(path, (now - 2 * DAY, now - 2 * DAY))
    for link in ("link to plain", "dirlink", "dangling"):
        os.utime(root / link, (now - 7 * DAY, now - 7 * DAY), follow_symlinks=False)


def test_list_line_has_the_columns_gnu_ls_shows(tmp_path):
    now = time.time()
    root = tmp_path / "tree"
    make_tree(root, now)
    ls = require("ls")
    out = subprocess.run(
        [ls, "-lna", "-N", "--time-style=+%b %d  %Y\n%b %d %H:%M", str(root)],
        capture_output=True,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
        check=True,
    ).stdout.decode("utf-8", "surrogateescape")
    theirs = {}
    for line in out.splitlines()[1:]:  # after "total N"
        cols = columns(line)
        name = cols[-1]
        if name in (".", ".."):
            continue
        if cols[0].startswith("l"):
            name = name.split(" -> ")[0]
        theirs[name] = cols
    names = sorted(os.listdir(root))
    assert sorted(theirs) == names and len(names) == 27
    for name in names:
        ours = list_line(info_of(root / name), now)
        assert columns(ours) == theirs[name], name
    # the recent/old choice was made on both sides of the limit
    assert columns(list_line(info_of(root / "just recent"), now))[7].count(":") == 1
    assert columns(list_line(info_of(root / "just old"), now))[7].strip().isdigit()


def test_list_line_format_is_fixed_width_like_ls():
    now = stamp("2026-12-05T08:17:30")
    line = list_line(
        FileInfo("name", is_dir=True, size=4096, mtime=now - 30, mode=0o40755, nlink=2), now
    )
    assert line == "drwxr-xr-x   2 -        -            4096 Dec 05 08:17 name"
    line = list_line(FileInfo("old.txt", size=7, mtime=stamp("2025-01-01T12:00:00")), now)
    assert line == "----------   1 -        -               7 Jan 01  2025 old.txt"


def test_list_line_type_from_the_flags_when_the_mode_has_none():
    now = stamp("2026-12-05T08:17:30")
    assert list_line(FileInfo("d", is_dir=True, mtime=now), now).startswith("d---------")
    assert list_line(FileInfo("f", mtime=now), now).startswith("----------")
    link = list_line(FileInfo("l", is_link=True, target="/t", mtime=now, mode=0o777), now)
    assert link.startswith("lrwxrwxrwx") and link.endswith(" l -> /t")
    # unknown size and time: 0 and the epoch
    assert " 0 Jan 01  1970 x" in list_line(FileInfo("x"), now)


def test_list_line_recent_is_six_months_back_and_an_hour_ahead():
    now = stamp("2026-12-05T08:17:30")

    def date(t: float) -> str:
        return columns(list_line(FileInfo("x", mtime=t), now))[7]

    assert date(now) == "08:17"
    assert date(now - SIX_MONTHS + 1) == stamp_hm(now - SIX_MONTHS + 1)
    assert date(now - SIX_MONTHS) == " 2026"
    assert date(now - SIX_MONTHS - 1) == " 2026"
    assert date(now + 3599) == "09:17"  # a clock a little ahead: still recent
    assert date(now + 3600) == " 2026"
    assert date(now + 400 * DAY) == " 2028"


def stamp_hm(t: float) -> str:
    return time.strftime("%H:%M", time.gmtime(t))


def test_month_names_are_english_whatever_the_locale(tmp_path):
    """In a process whose locale is German (built here with localedef), ``strftime`` says
    ``Dez`` but list_line still writes what strftime writes in the C locale."""
    localedef = require("localedef")
    locales = tmp_path / "locales"
    locales.mkdir()
    made = subprocess.run(
        [localedef, "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
        capture_output=True,
    )
    assert (locales / "de_DE.UTF-8").exists(), made.stderr
    script = (
        "import calendar, locale, time\n"
        "from protocols.ftp.core import FileInfo, list_line\n"
        "locale.setlocale(locale.LC_ALL, '')\n"
        "for month in range(1, 13):\n"
        "    t = calendar.timegm((2019, month, 15, 12, 0, 0))\n"
        "    old = list_line(FileInfo('x', mtime=t), t + 400 * 86400)\n"
        "    recent = list_line(FileInfo('x', mtime=t), t + 60)\n"
        "    print(time.strftime('%b', time.gmtime(t)), old, recent, sep='|')\n"
    )
    env = {**os.environ, "LOCPATH": str(locales), "LC_ALL": "de_DE.UTF-8", "TZ": "UTC"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        check=True,
    ).stdout.splitlines()
    localized = [line.split("|")[0] for line in out]
    assert localized[11] == "Dez" and localized[2] == "M\u00e4r"  # the locale is in force
    english = [time.strftime("%b", (2019, m, 15, 12, 0, 0, 0, 1, 0)) for m in range(1, 13)]
    old = [columns(line.split("|")[1]) for line in out]
    recent = [columns(line.split("|")[2]) for line in out]
    assert [cols[5] for cols in old] == english and {cols[7] for cols in old} == {" 2019"}
    assert [cols[5] for cols in recent] == english and {cols[7] for cols in recent} == {"12:00"}


# ---- parse_list_line: recorded lines of real servers

NOW = stamp("2026-12-05T10:00:00")
RECENT = stamp("2026-12-05T08:17:00")


@pytest.mark.parametrize(
    ("line", "name", "is_dir", "size", "mtime", "owner", "group", "nlink"),
    [
        # vsftpd (numeric ids, zero-padded day, "%8lu" size)
        (
            "-rw-r--r--    1 0        0            1234 Dec 05 08:17 a.txt",
            "a.txt",
            False,
            1234,
            RECENT,
            "0",
            "0",
            1,
        ),
        (
            "drwxr-xr-x    3 0        0            4096 Dec 05  2024 pub",
            "pub",
            True,
            4096,
            stamp("2024-12-05T00:00:00"),
            "0",
            "0",
            3,
        ),
        # pyftpdlib
        (
            "-rw-r--r--   1 root     root           10 Dec 05 08:17 b c.txt",
            "b c.txt",
            False,
            10,
            RECENT,
            "root",
            "root",
            1,
        ),
        # ProFTPD / GNU ls: day padded with a space, wide link counts
        (
            "-rw-r--r--   1 ftp      ftp          1234 Dec  5 08:17 a.txt",
            "a.txt",
            False,
            1234,
            RECENT,
            "ftp",
            "ftp",
            1,
        ),
        (
            "drwxr-xr-x  12 ftp      ftp          4096 Feb 29  2024 leap",
            "leap",
            True,
            4096,
            stamp("2024-02-29T00:00:00"),
            "ftp",
            "ftp",
            12,
        ),
        # no group column (some servers, BusyBox with -g), and neither owner nor group
        (
            "-rw-r--r--   1 ftp          1234 Dec 05 08:17 nogroup.txt",
            "nogroup.txt",
            False,
            1234,
            RECENT,
            "ftp",
            "",
            1,
        ),
        (
            "-rw-r--r--   1     1234 Dec 05 08:17 none.txt",
            "none.txt",
            False,
            1234,
            RECENT,
            "",
            "",
            1,
        ),
        # numeric owner and group that look like sizes
        (
            "-rw-r--r--   1 1000 1000 5 Jan 01  2020 n",
            "n",
            False,
            5,
            stamp("2020-01-01T00:00:00"),
            "1000",
            "1000",
            1,
        ),
        # names: spaces inside, leading and trailing; a date inside; unicode
        (
            "-rw-r--r--   1 0 0 1 Dec 05 08:17   spaced  name  ",
            "  spaced  name  ",
            False,
            1,
            RECENT,
            "0",
            "0",
            1,
        ),
        (
            "-rw-r--r--   1 0 0 1 Dec 05 08:17 Jan 01  2020 x",
            "Jan 01  2020 x",
            False,
            1,
            RECENT,
            "0",
            "0",
            1,
        ),
        (
            "-rw-r--r--   1 0 0 1 Dec 05 08:17 \u00fcn\u00efc\u00f8d\u00e9 \u65e5\u672c",
            "\u00fcn\u00efc\u00f8d\u00e9 \u65e5\u672c",
            False,
            1,
            RECENT,
            "0",
            "0",
            1,
        ),
        # an ACL mark after the permissions, owner names with odd characters
        (
            "-rw-r--r--+  1 j.doe    domain-users 99 Dec 05 08:17 acl",
            "acl",
            False,
            99,
            RECENT,
            "j.doe",
            "domain-users",
            1,
        ),
        # lower-case and upper-case month names
        ("-rw-r--r--   1 0 0 1 dec 05 08:17 lower", "lower", False, 1, RECENT, "0", "0", 1),
        ("-rw-r--r--   1 0 0 1 DEC 05 08:17 upper", "upper", False, 1, RECENT, "0", "0", 1),
        # a CRLF left on the line
        ("-rw-r--r--   1 0 0 1 Dec 05 08:17 crlf\r\n", "crlf", False, 1, RECENT, "0", "0", 1),
    ],
)
def test_parse_unix_lines_of_real_servers(line, name, is_dir, size, mtime, owner, group, nlink):
    info = parse_list_line(line, NOW)
    assert info is not None
    assert (info.name, info.is_dir, info.size, info.mtime) == (name, is_dir, size, mtime)
    assert (info.owner, info.group, info.nlink) == (owner, group, nlink)
    assert not info.is_link and info.target is None


def test_parse_unix_links_and_modes():
    info = parse_list_line(
        "lrwxrwxrwx    1 0        0               9 Dec 05 08:17 lnk -> a b/c", NOW
    )
    assert info is not None
    assert (info.name, info.is_link, info.target, info.is_dir) == ("lnk", True, "a b/c", False)
    assert stat.S_ISLNK(info.mode) and stat.S_IMODE(info.mode) == 0o777
    # " -> " in a name that is not a link stays in the name
    info = parse_list_line("-rw-r--r--   1 0 0 1 Dec 05 08:17 a -> b", NOW)
    assert info is not None and info.name == "a -> b" and info.target is None
    # special bits, each way ls writes them; the mode is what stat.filemode turns back
    for text in (
        "-rwsr-xr-x",
        "-rwSr--r--",
        "drwxr-sr-x",
        "drwxr-Sr-x",
        "drwxrwxrwt",
        "drwxrwxrwT",
        "-r--------",
        "----------",
        "prw-r--r--",
        "srwxrwxrwx",
        "brw-rw----",
        "crw-rw-rw-",
    ):
        info = parse_list_line(f"{text}   1 0 0 0 Dec 05 08:17 x", NOW)
        assert info is not None and stat.filemode(info.mode) == text
    # a device: "major, minor" where the size is
    info = parse_list_line("crw-rw-rw-   1 0 0   1,   3 Dec 05 08:17 null", NOW)
    assert info is not None and info.name == "null" and info.size == -1


def test_the_year_of_a_recent_line_is_the_last_twelve_months():
    now = stamp("2026-02-10T12:00:00")
    cases = {
        "Feb 10 11:00": stamp("2026-02-10T11:00:00"),
        "Feb 11 11:00": stamp("2026-02-11T11:00:00"),  # a day ahead: a clock or a time zone
        "Feb 12 11:00": stamp("2025-02-12T11:00:00"),
        "Dec 31 23:59": stamp("2025-12-31T23:59:00"),
        "Mar 01 00:00": stamp("2025-03-01T00:00:00"),
        "Feb 29 10:00": stamp("2024-02-29T10:00:00"),  # the last Feb 29 before
    }
    for date, expected in cases.items():
        info = parse_list_line(f"-rw-r--r-- 1 0 0 1 {date} x", now)
        assert info is not None and info.mtime == expected, date
    # without now: the present
    info = parse_list_line(time.strftime("-rw-r--r-- 1 0 0 1 %b %d %H:%M x", time.gmtime()))
    assert info is not None and info.mtime is not None
    assert time.time() - 120 < info.mtime <= time.time()


@pytest.mark.parametrize(
    ("line", "name", "is_dir", "size", "mtime"),
    [
        # IIS, MS-DOS style: 2-digit year, 12-hour clock
        (
            "12-05-26  08:17AM       <DIR>          name",
            "name",
            True,
            -1,
            stamp("2026-12-05T08:17:00"),
        ),
        (
            "12-05-26  08:17PM                 1234 a b.txt",
            "a b.txt",
            False,
            1234,
            stamp("2026-12-05T20:17:00"),
        ),
        (
            "01-01-99  12:00AM                    0 midnight",
            "midnight",
            False,
            0,
            stamp("1999-01-01T00:00:00"),
        ),
        (
            "01-01-68  12:30PM                    5 noon",
            "noon",
            False,
            5,
            stamp("2068-01-01T12:30:00"),
        ),
        # 4-digit year, 24-hour clock
        ("12-05-2026  20:17  1234 name", "name", False, 1234, stamp("2026-12-05T20:17:00")),
        (
            "02-29-2024  00:00       <DIR>          leap day",
            "leap day",
            True,
            -1,
            stamp("2024-02-29T00:00:00"),
        ),
        # sizes with thousands separators, a lower-case pm, trailing spaces in the name
        (
            "07-04-2021  09:05pm        1,234,567 big file  ",
            "big file  ",
            False,
            1234567,
            stamp("2021-07-04T21:05:00"),
        ),
    ],
)
def test_parse_dos_lines(line, name, is_dir, size, mtime):
    info = parse_list_line(line)
    assert info is not None
    assert (info.name, info.is_dir, info.size, info.mtime) == (name, is_dir, size, mtime)
    assert stat.S_ISDIR(info.mode) == is_dir


@pytest.mark.parametrize(
    "line",
    [
        "total 12",
        "total 0",
        "",
        "   ",
        "garbage",
        "226 Transfer complete.",
        "-rw-r--r--   1 0 0 1 Foo 05 08:17 badmonth",
        "-rw-r--r--   1 0 0 1 Dec 32 08:17 badday",
        "-rw-r--r--   1 0 0 1 Feb 30  2020 nosuchday",
        "-rw-r--r--   1 0 0 x Dec 05 08:17 badsize",
        "-rw-r--r--   1 0 0 1 Dec 05 08:17",
        "xrw-r--r--   1 0 0 1 Dec 05 08:17 badtype",
        "-rw-r--r-Q   1 0 0 1 Dec 05 08:17 badperm",
        "13-05-26  08:17AM       <DIR>          badmonth",
        "12-05-26  13:17PM       <DIR>          badhour",
        "12-05-26  25:17       <DIR>          badhour24",
        "12-05-26  08:17AM       <FILE>          nodir",
        "12-05-26  08:17AM       <DIR>",
        "2026-12-05  08:17       <DIR>          iso",
    ],
)
def test_lines_that_are_not_entries_give_none(line):
    assert parse_list_line(line, NOW) is None


def test_list_line_parses_back(tmp_path):
    now = time.time()
    root = tmp_path / "tree"
    make_tree(root, now)
    for name in os.listdir(root):
        truth = info_of(root / name)
        assert truth.mtime is not None
        back = parse_list_line(list_line(truth, now), now)
        assert back is not None
        assert (back.name, back.is_dir, back.size, back.mode, back.nlink) == (
            truth.name,
            truth.is_dir,
            truth.size,
            truth.mode,
            truth.nlink,
        )
        assert (back.is_link, back.target, back.owner, back.group) == (
            truth.is_link,
            truth.target,
            truth.owner,
            truth.group,
        )
        assert back.mtime == listed_time(truth.mtime, now)


def listed_time(mtime: float, now: float) -> float:
    """What a LIST line keeps of a time: the minute when recent, else the day."""
    if now - SIX_MONTHS < mtime < now + 3600:
        return mtime - mtime % 60
    return mtime - mtime % DAY


# ---- real servers' LIST and MLSD, against the disk


def fetch(server: FTPPeer, command: str) -> list[str]:
    ftp = ftplib.FTP()
    ftp.connect(server.host, server.port, timeout=10)
    try:
        ftp.login(*server.login)
        ftp.sendcmd("TYPE I")  # lines exactly as sent; retrlines strips the CRLF
        ftp.encoding = "utf-8"
        if command == "MLSD":  # every fact pyftpdlib has, not only its default ones
            ftp.sendcmd("OPTS MLST type;size;modify;perm;unique;unix.mode;unix.uid;unix.gid;")
        lines: list[str] = []
        ftp.retrlines(command, lines.append)
        return lines
    finally:
        ftp.close()


@pytest.mark.timeout(60)
async def test_list_output_of_vsftpd_and_pyftpdlib_parses_to_what_is_on_disk(reactor, tmp_path):
    now = time.time()
    root = tmp_path / "tree"
    make_tree(root, now)
    for start in (vsftpd_server, pyftpdlib_server):
        async with start(root) as server:
            lines = await ns.defer_to_thread(fetch, server, "LIST -a")
        parsed = [parse_list_line(line, now) for line in lines]
        entries = {
            info.name: (info, line)
            for info, line in zip(parsed, lines, strict=True)
            if info is not None and info.name not in (".", "..")
        }
        # pyftpdlib lists a dangling link's own lstat; vsftpd as well; every name is there
        assert sorted(entries) == sorted(os.listdir(root)), (server.name, lines)
        for name, (info, line) in entries.items():
            path = root / name
            st = path.lstat() if info.is_link else path.stat()
            assert info.is_dir == stat.S_ISDIR(st.st_mode), (server.name, line)
            assert info.size == st.st_size, (server.name, line)
            assert stat.S_IMODE(info.mode) == stat.S_IMODE(st.st_mode), (server.name, line)
            # each server has its own "recent" (vsftpd: 182 days): the line says which
            shown = (
                (st.st_mtime - st.st_mtime % 60)
                if ":" in line.split()[7]
                else (st.st_mtime - st.st_mtime % DAY)
            )
            assert info.mtime == shown, (server.name, line)
            if info.is_link:
                assert info.target == os.readlink(path), (server.name, line)


@pytest.mark.timeout(60)
async def test_mlsd_output_of_pyftpdlib_parses_to_what_is_on_disk(reactor, tmp_path):
    now = time.time()
    root = tmp_path / "tree"
    make_tree(root, now)
    async with pyftpdlib_server(root) as server:
        lines = await ns.defer_to_thread(fetch, server, "MLSD")
    entries = {info.name: info for info in map(parse_mlsx_line, lines)}
    # pyftpdlib leaves out what stat() cannot follow (the dangling link)
    assert sorted(entries) == sorted(n for n in os.listdir(root) if (root / n).exists())
    for name, info in entries.items():
        st = (root / name).stat()
        assert info.is_dir == stat.S_ISDIR(st.st_mode), name
        assert info.size == st.st_size, name  # pyftpdlib gives a directory's size too
        assert info.mtime == int(st.st_mtime), name
        assert info.unique == f"{st.st_dev:x}g{st.st_ino:x}", name
        # pyftpdlib writes unix.mode as Python's oct() of the 0o777 bits: "0o644"
        assert info.facts["unix.mode"] == oct(st.st_mode & 0o777)
        assert info.mode == (st.st_mode & 0o777) | stat.S_IFMT(st.st_mode), name
        assert info.facts["unix.uid"] == str(st.st_uid)


# ---- MLSx


def test_mlsx_line_writes_the_facts_in_rfc_order_whatever_order_asked():
    info = FileInfo("a b.txt", size=12, mtime=stamp("2026-12-05T08:17:00"), unique="fd00U2a")
    everything = "type=file;size=12;modify=20261205081700;perm=adfrw;unique=fd00U2a; a b.txt"
    assert mlsx_line(info, MLST_FACTS, "adfrw") == everything
    assert mlsx_line(info, ["UNIQUE", "Perm", "modify", "Size", "TYPE"], "adfrw") == everything
    assert mlsx_line(info, ["size", "type"], "adfrw") == "type=file;size=12; a b.txt"
    assert mlsx_line(info, ["perm"], "") == "perm=; a b.txt"
    assert mlsx_line(info, ["unix.mode", "nonsense"], "r") == " a b.txt"  # no facts: " name"
    assert mlsx_line(info, iter(["modify"]), "") == "modify=20261205081700; a b.txt"


def test_mlsx_line_types_and_what_applies():
    t = stamp("2026-12-05T08:17:00.75")
    directory = FileInfo("pub", is_dir=True, size=4096, mtime=t)
    assert mlsx_line(directory, MLST_FACTS, "elcmp") == (
        "type=dir;modify=20261205081700;perm=elcmp; pub"
    )  # no size for a directory, no unique when unknown
    cdir = FileInfo(".", is_dir=True, facts={"type": "cdir"})
    pdir = FileInfo("..", is_dir=True, facts={"type": "PDIR"})
    assert mlsx_line(cdir, ["type"], "") == "type=cdir; ."
    assert mlsx_line(pdir, ["type"], "") == "type=pdir; .."
    # a file of unknown size and time: neither fact
    assert mlsx_line(FileInfo("f"), MLST_FACTS, "r") == "type=file;perm=r; f"
    assert mlsx_line(FileInfo("empty", size=0), ["size"], "") == "size=0; empty"


def test_parse_mlsx_line():
    info = parse_mlsx_line("Type=file;Size=25730;Modify=19940728095854;Perm=; capmux.tar.z")
    assert (info.name, info.is_dir, info.size, info.mtime) == (
        "capmux.tar.z",
        False,
        25730,
        stamp("1994-07-28T09:58:54"),
    )
    assert info.facts == {"type": "file", "size": "25730", "modify": "19940728095854", "perm": ""}
    for kind in ("dir", "cdir", "pdir", "Dir", "CDIR"):
        assert parse_mlsx_line(f"type={kind}; x").is_dir
    for kind in ("file", "OS.unix=slink:/x", "weird"):
        assert not parse_mlsx_line(f"type={kind}; x").is_dir
    # ProFTPD: fractions of a second, UNIX facts, facts in its own order
    info = parse_mlsx_line(
        "modify=20261205081700.123;perm=adfrw;size=5;type=file;unique=FD00U2;"
        "UNIX.group=0;UNIX.mode=0644;UNIX.owner=0; name; with; semicolons "
    )
    assert info.name == "name; with; semicolons "
    assert info.mtime == pytest.approx(stamp("2026-12-05T08:17:00") + 0.123)
    assert (info.size, info.unique, info.mode, info.owner, info.group) == (
        5,
        "FD00U2",
        0o100644,
        "0",
        "0",
    )
    # sizd for a directory; no facts at all; a value holding "="
    assert parse_mlsx_line("type=dir;sizd=4096; d").size == 4096
    bare = parse_mlsx_line(" only a name")
    assert (bare.name, bare.facts, bare.size, bare.mtime) == ("only a name", {}, -1, None)
    assert parse_mlsx_line("x.y=a=b; n").facts == {"x.y": "a=b"}


def test_mlsx_line_parses_back():
    for info in (
        FileInfo("a", size=0, mtime=0.0, unique="1U2"),
        FileInfo(" spaced ; name ", size=10**12, mtime=stamp("2038-01-19T03:14:08")),
        FileInfo("d", is_dir=True, mtime=stamp("1999-12-31T23:59:59")),
        FileInfo("\u65e5\u672c", size=3),
    ):
        back = parse_mlsx_line(mlsx_line(info, MLST_FACTS, "adfrw"))
        assert (back.name, back.is_dir, back.size, back.mtime, back.unique) == (
            info.name,
            info.is_dir,
            info.size,
            info.mtime,
            info.unique,
        )
        assert back.facts["perm"] == "adfrw"


@pytest.mark.parametrize(
    "line",
    [
        "type=file;size=1;x",
        "type=file;size=1 x",
        "",
        "noname;",
        "type=file;size; x",
        "type=file;novalue; x",
        "perm; x",
        "type=file;=3; x",
        "type=file;size=x; n",
        "type=file;size=-1; n",
        "modify=2026; n",
        "modify=20261305081700; n",
        "unix.mode=0999; n",
        "type=file;size=1;",
    ],
)
def test_parse_mlsx_line_refuses_malformed_lines(line):
    with pytest.raises(FTPProtocolError):
        parse_mlsx_line(line)


def test_mdtm_of_listed_times():
    # MLSx's modify is format_mdtm; parse_mdtm reads it back to the second
    t = stamp("2026-12-05T08:17:00") + 0.9
    assert parse_mdtm(format_mdtm(t)) == t - 0.9
