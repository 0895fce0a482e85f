"""The FTP server's view of the disk: a root that is a jail, and the only FTP code touching disk.

The server speaks in *virtual paths*: ``str``, absolute, ``/`` being the root, always
normalised (no ``.``, ``..``, empty or trailing parts). :meth:`FileSystem.resolve` turns what
a client typed (relative to its working directory) into one; every other method takes a
virtual path and maps it to the disk under the root, refusing whatever would lead outside it:
``..`` past the root (it stays at ``/``, as ``cd ..`` at ``/`` does), NUL, a backslash-
separated escape, a name over 255 bytes or a path over 4096, and symlinks whose target is
outside the root (checked on the real path, at use, so a link made later cannot slip
through; files are opened without following a last-component symlink out).

How the check holds against races: each call walks down from the root one directory at a
time, holding each directory open and naming the next entry relative to it (``dir_fd``,
``O_NOFOLLOW``, ``O_PATH``, as ``openat`` does); a symbolic link met on the way is read and
followed by this code, never by the kernel, and refused if it climbs above the root or
names a place outside it. The final call (open, unlink, rename, mkdir, chmod) acts on a name
inside a directory already checked and still held, and never follows a link. So a link
swapped in after a check, or a directory moved meanwhile (a relative link moved up a level
can come to point outside), leads nowhere outside. What remains out of reach: hard links and
bind mounts that an administrator puts inside the root (they are the root's content).

A backslash is an ordinary character of a POSIX name: ``..\\..`` names one entry, inside.
Links inside the root are followed everywhere: a listing shows what they point to (as
``ls -lL`` does; ``is_link`` set), so a client never sees ``name -> target`` nor learns
a real path from a link. Owners and groups are listed as numbers, as vsftpd does by default
(``hide_ids`` off, no user database read per entry); pyftpdlib shows names, which costs a
lookup per entry and tells clients the host's account names.

Names on disk that are not valid UTF-8 are listed with each undecodable byte written
``\\xNN`` (a backslash, ``x``, two hex digits), so a listing is always valid UTF-8 that any
client decodes; such a name given back by a client reaches the same file. CR and LF in a
name are written the same way (``\\x0d``, ``\\x0a``): a name never makes a line of its own
in a listing or a reply (a file named ``"a\\r\\n-rw-r--r-- ... passwd"`` cannot fake an entry).

Errors are :class:`FSError` values carrying the reply an FTP server sends (550 for most,
553 for a name that is not allowed, 450 for a file busy), with messages that name the
virtual path, never the real one (a client must not learn where the root is on disk).

Uploads are atomic: :meth:`FileSystem.open_upload` writes into a temp file beside the target
(a dot-name that listings hide), and :meth:`Upload.commit` renames it over the target; a
broken upload (:meth:`Upload.abort`) leaves no trace. Resumed uploads (an offset, or append)
write into the target itself, so what arrived before a break is kept to resume from.

Disk calls are blocking and short (stat, open, rename); file contents are streamed by the
server from the file objects returned here, never read whole.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat as stat_mod
from collections import deque
from collections.abc import Iterator, Sequence
from typing import BinaryIO, cast

from protocols.ftp.core import FileInfo

__all__ = ["MAX_NAME", "MAX_PATH", "FSError", "FileSystem", "Upload"]

#: the longest name (bytes, UTF-8) and the longest virtual path accepted
MAX_NAME = 255
MAX_PATH = 4096

#: the prefix of upload temp files: listings hide them
_TEMP_PREFIX = b".netshell-upload-"
#: symbolic links followed while resolving one path before giving up (Linux's own limit)
_MAX_LINKS = 40
#: directories a walk holds open at once: a path 2,000 levels deep must not take 2,000
#: descriptors (the process limit is shared by every session); higher ones are closed and
#: opened again from the root, the same checked way, if a link's ".." climbs back to them
_MAX_HELD = 8

_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)  # O_PATH walks directories we may not read
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = _O_PATH | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
_READ_DIR = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC

_ESCAPED = re.compile(rb"\\x([89a-f][0-9a-f]|0[ad])")

_MESSAGES = {
    errno.ENOENT: (550, "No such file or directory"),
    errno.EACCES: (550, "Permission denied"),
    errno.EPERM: (550, "Permission denied"),
    errno.EROFS: (550, "Read-only file system"),
    errno.ENOTEMPTY: (550, "Directory not empty"),
    errno.EEXIST: (550, "File exists"),
    errno.EISDIR: (550, "Is a directory"),
    errno.ENOTDIR: (550, "Not a directory"),
    errno.ELOOP: (550, "Too many levels of symbolic links"),
    errno.EXDEV: (550, "Cannot move across file systems"),
    errno.EINVAL: (550, "Invalid argument"),
    errno.ENAMETOOLONG: (553, "File name too long"),
    errno.ENOSPC: (452, "Insufficient storage space"),
    errno.EDQUOT: (452, "Insufficient storage space"),
    errno.EFBIG: (452, "File too large"),
    errno.EBUSY: (450, "File busy"),
    errno.ETXTBSY: (450, "File busy"),
}


class FSError(OSError):
    """A file operation refused or failed: ``code`` is the FTP reply code to send.

    ``str()`` is the reply's text: ``No such file or directory: /x.txt``.

    >>> e = FSError(550, "No such file or directory: /x.txt")
    >>> e.code, str(e)
    (550, 'No such file or directory: /x.txt')
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


# CR and LF in a name are written as undecodable bytes are: a name listed on a line of its
# own (LIST, NLST, MLSD) or quoted in a reply can never make a line of its own.
_LINE_BREAKS = str.maketrans({"\r": "\\x0d", "\n": "\\x0a"})


def _listed(raw: bytes) -> str:
    """A name (or path) on disk as listings and replies write it: valid UTF-8, one line."""
    return raw.decode("utf-8", "backslashreplace").translate(_LINE_BREAKS)


def _display(path: str) -> str:
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no decoder made: show it as text
        return path.encode("utf-8", "backslashreplace").decode("utf-8").translate(_LINE_BREAKS)
    return _listed(raw)


def _error(exc: OSError, vpath: str) -> FSError:
    """The FSError for an OSError met on ``vpath``: its message never names the real path."""
    if isinstance(exc, FSError):
        return exc
    code, text = _MESSAGES.get(exc.errno or 0, (451, "Local error in processing"))
    return FSError(code, f"{text}: {_display(vpath)}")


def _no_such(vpath: str) -> FSError:
    return FSError(550, f"No such file or directory: {_display(vpath)}")


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)
    fds.clear()


class _Escape(Exception):
    """A symbolic link leads out of the root."""


class _Outside(FSError):
    """The FSError for a path whose symbolic links lead out of the root: it reads as a
    missing file (such links are invisible to clients)."""


class _Location:
    """Where a virtual path is on disk: an entry ``name`` in the open directory ``parent``.

    ``fds`` are open directories from the root down (``fds[-1]`` is ``parent``); ``names``
    their names below the root. ``name`` is None for the root itself; ``st`` is the entry's
    ``lstat`` (None when it does not exist). Close it (``with``) to close the directories.
    Only the last few of ``fds`` are open (-1 for the others), ``parent`` always.
    """

    __slots__ = ("fds", "names", "name", "st")

    def __init__(
        self, fds: list[int], names: list[bytes], name: bytes | None, st: os.stat_result | None
    ) -> None:
        self.fds = fds
        self.names = names
        self.name = name
        self.st = st

    @property
    def parent(self) -> int:
        return self.fds[-1]

    @property
    def is_root(self) -> bool:
        return self.name is None

    def close(self) -> None:
        _close_all(self.fds)

    def __enter__(self) -> _Location:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Frame:
    """One directory of :meth:`FileSystem.iter_tree`: its descriptor (-1 once closed to
    spare descriptors), names below the root, virtual path and entries left to yield."""

    __slots__ = ("entries", "fd", "names", "prefix")

    def __init__(
        self, fd: int, names: list[bytes], prefix: str, entries: list[tuple[bytes, FileInfo]]
    ) -> None:
        self.fd = fd
        self.names = names
        self.prefix = prefix
        self.entries = deque(entries)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Upload:
    """A file being written by STOR/APPE/STOU: ``write`` chunks, then ``commit`` or ``abort``.

    ``path`` is the virtual path the file will have; ``offset`` where writing started.
    ``written`` counts bytes written so far. Made by :meth:`FileSystem.open_upload`.
    A fresh upload writes into a temp file (``.netshell-upload-<random>.<name>``) in the
    target's directory, which stays open so that ``commit`` renames into that very
    directory even if it was renamed meanwhile. Collected without ``commit``, it aborts.
    """

    path: str
    offset: int
    written: int

    def __init__(
        self,
        path: str,
        offset: int,
        fd: int,
        parent_fd: int | None = None,
        temp: bytes | None = None,
        target: bytes | None = None,
    ) -> None:
        self.path = path
        self.offset = offset
        self.written = 0
        self._fd: int | None = fd
        self._parent_fd = parent_fd
        self._temp = temp
        self._target = target

    @property
    def closed(self) -> bool:
        """True once committed or aborted."""
        return self._fd is None

    def write(self, data: bytes) -> None:
        """Write ``data`` (all of it); FSError (452 when the disk is full) on failure."""
        if self._fd is None:
            raise ValueError("upload is closed")
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                self.written += n
                view = view[n:]
        except OSError as exc:
            raise _error(exc, self.path) from None

    def fileno(self) -> int:
        """The open file's descriptor, for writing into it by other means than
        :meth:`write` (splice(2), by the server): say how many bytes with :meth:`wrote`.
        Raises ValueError once the upload is closed."""
        if self._fd is None:
            raise ValueError("upload is closed")
        return self._fd

    def wrote(self, count: int) -> None:
        """Count ``count`` bytes written into :meth:`fileno` by other means than
        :meth:`write` (``written`` stays right)."""
        self.written += count

    def error(self, exc: OSError) -> FSError:
        """The FSError that :meth:`write` would raise for ``exc`` (452 when the disk is
        full), its message naming the virtual path only."""
        return _error(exc, self.path)

    def commit(self) -> None:
        """Flush, close and put the file in place (atomic rename for a fresh upload)."""
        if self._fd is None:
            raise ValueError("upload is closed")
        fd, self._fd = self._fd, None
        try:
            os.close(fd)  # unbuffered writes: nothing to flush; close reports NFS errors
            if self._temp is not None:
                assert self._target is not None and self._parent_fd is not None
                os.replace(
                    self._temp, self._target, src_dir_fd=self._parent_fd, dst_dir_fd=self._parent_fd
                )
                self._temp = None
        except OSError as exc:
            self._remove_temp()
            raise _error(exc, self.path) from None
        finally:
            self._close_parent()

    def abort(self) -> None:
        """Give up: a fresh upload's temp file is removed; a resumed one keeps what arrived."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        except OSError:
            pass
        self._remove_temp()
        self._close_parent()

    def _remove_temp(self) -> None:
        if self._temp is not None and self._parent_fd is not None:
            try:
                os.unlink(self._temp, dir_fd=self._parent_fd)
            except OSError:
                pass
            self._temp = None

    def _close_parent(self) -> None:
        if self._parent_fd is not None:
            os.close(self._parent_fd)
            self._parent_fd = None

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else "open"
        return (
            f"<Upload {_display(self.path)!r} offset={self.offset} written={self.written} {state}>"
        )


class FileSystem:
    """The files under ``root`` as an FTP session sees them; ``writable`` allows changes.

    Every changing method raises FSError(550, "Permission denied: ...") when not writable.

    Each call walks from the root one directory at a time with ``openat``-style calls
    (``dir_fd``, ``O_NOFOLLOW``): a symbolic link met on the way is read and followed by this
    code, from the directory it sits in, and refused if it leaves the root; the last
    operation (open, unlink, rename, ...) is made on a name inside a directory already
    checked and held open. So a link swapped in or a directory moved after a check leads
    nowhere outside, whatever the timing.

    Owners and groups are listed as numbers (``1000 1000``), as vsftpd does by default:
    no user database is read per entry (fast for large listings), and no account names
    of the host are shown to clients.

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> fs = FileSystem(tmp.name, writable=True)
    >>> fs.resolve("/pub", "../../hello.txt")
    '/hello.txt'
    >>> up = fs.open_upload("/hello.txt"); up.write(b"hi\\n"); up.commit()
    >>> [(i.name, i.size) for i in fs.listdir("/")]
    [('hello.txt', 3)]
    >>> fs.real_path("/hello.txt") == fs.root + "/hello.txt"
    True
    >>> fs.stat("/nope")
    Traceback (most recent call last):
    ...
    protocols.ftp.filesystem.FSError: No such file or directory: /nope
    >>> tmp.cleanup()
    """

    #: the root's real, absolute path (symlinks resolved)
    root: str
    writable: bool

    def __init__(self, root: str, writable: bool = False) -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise NotADirectoryError(errno.ENOTDIR, "FTP root is not a directory", real)
        self.root = real
        self.writable = writable
        self._root_bytes = os.fsencode(real)

    def __repr__(self) -> str:
        mode = "writable" if self.writable else "read-only"
        return f"<FileSystem {self.root!r} {mode}>"

    # ---- virtual paths

    def resolve(self, cwd: str, path: str) -> str:
        """The virtual path ``path`` names, seen from the virtual directory ``cwd``.

        ``""`` is ``cwd``; an absolute ``path`` starts at the root; ``//`` and ``\\``-free
        parts normalise as POSIX does; ``..`` never climbs above ``/``. Raises FSError (553)
        for NUL or a name/path over the limits. Does not touch the disk.

        A backslash is an ordinary character of a name, as on any POSIX system:
        ``..\\..`` names one entry inside the current directory, never a climb.

        >>> fs = FileSystem("/")
        >>> fs.resolve("/a/b", "../c//./d/")
        '/a/c/d'
        >>> fs.resolve("/", "../../..")
        '/'
        >>> fs.resolve("/a", "..\\\\..")
        '/a/..\\\\..'
        """
        return "/" + "/".join(self._parts(cwd, path))

    def _parts(self, cwd: str, path: str) -> list[str]:
        for text in (cwd, path):
            if "\x00" in text:
                raise FSError(553, "File name not allowed (NUL)")
            if len(text) > MAX_PATH and _byte_len(text) > MAX_PATH:
                raise FSError(553, "Path too long")
        parts: list[str] = []
        for text in (path,) if path.startswith("/") else (cwd, path):
            for part in text.split("/"):
                if part == "..":
                    if parts:
                        parts.pop()
                elif part and part != ".":
                    parts.append(part)
        total = 0
        for part in parts:
            n = _byte_len(part)
            if n > MAX_NAME:
                raise FSError(553, "File name too long")
            total += n + 1
        if total > MAX_PATH:
            raise FSError(553, "Path too long")
        return parts

    def display(self, path: str) -> str:
        """``path`` as shown to clients (undecodable bytes escaped), for replies and logs.

        >>> FileSystem("/").display("/caf\\udce9.txt")
        '/caf\\\\xe9.txt'
        """
        return _display(path)

    # ---- walking the disk

    def _open_root(self) -> int:
        return os.open(self.root, _DIR_FLAGS)

    def _component(self, dir_fd: int, name: str) -> bytes:
        """The name on disk of the virtual name ``name`` in the directory ``dir_fd``."""
        try:
            raw = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise FSError(553, f"File name not allowed: {_display(name)}") from None
        if b"\\x" in raw:
            # "\xNN" is how listings write an undecodable byte; a name that really has
            # those characters wins when both exist.
            escaped = _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
            same = _listed(escaped) == raw.decode("utf-8", "backslashreplace")
            if escaped != raw and same and not _exists(raw, dir_fd) and _exists(escaped, dir_fd):
                return escaped
        return raw

    def _inside(self, target: bytes) -> list[bytes]:
        """The names below the root of the absolute link target ``target``; _Escape if outside."""
        real = os.path.realpath(target)
        if real == self._root_bytes:
            return []
        prefix = self._root_bytes.rstrip(b"/") + b"/"
        if real.startswith(prefix):
            return real[len(prefix) :].split(b"/")
        raise _Escape

    def _walk(
        self, items: Sequence[tuple[bool, str | bytes]], vpath: str, follow: bool = True
    ) -> _Location:
        """Find ``items`` (virtual str names, or raw bytes names, ``..`` allowed in the
        latter) below the root, following links inside it; ``follow`` the last one too."""
        fds = [self._open_root()]
        names: list[bytes] = []
        pending: deque[tuple[bool, str | bytes]] = deque(items)
        links = 0
        try:
            while pending:
                raw, item = pending.popleft()
                if raw:
                    name = cast(bytes, item)
                    if name in (b"", b"."):
                        continue
                    if name == b"..":
                        if not names:
                            raise _Escape
                        self._up(fds, names)
                        continue
                else:
                    name = self._component(fds[-1], cast(str, item))
                last = not pending
                try:
                    st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        return _Location(fds, names, name, None)
                    raise
                if stat_mod.S_ISLNK(st.st_mode) and (follow or not last):
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(errno.ELOOP, "too many links")
                    target = os.readlink(name, dir_fd=fds[-1])
                    if target.startswith(b"/"):
                        parts = self._inside(target)
                        _close_all(fds[1:])
                        del fds[1:]
                        names.clear()
                    else:
                        parts = target.split(b"/")
                    pending.extendleft((True, p) for p in reversed(parts))
                    continue
                if last:
                    return _Location(fds, names, name, st)
                if not stat_mod.S_ISDIR(st.st_mode):
                    raise OSError(errno.ENOTDIR, "not a directory")
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
                names.append(name)
                far = len(fds) - 1 - _MAX_HELD
                if far >= 1 and fds[far] >= 0:
                    os.close(fds[far])
                    fds[far] = -1
            # Ended on a directory already opened (the root, or a link's "x/.." or "x/").
            if not names:
                return _Location(fds, names, None, None)
            name = self._up(fds, names)
            return _Location(fds, names, name, os.stat(name, dir_fd=fds[-1], follow_symlinks=False))
        except _Escape:
            _close_all(fds)
            raise _Outside(550, f"No such file or directory: {_display(vpath)}") from None
        except OSError as exc:
            _close_all(fds)
            raise _error(exc, vpath) from None
        except BaseException:
            _close_all(fds)
            raise

    def _up(self, fds: list[int], names: list[bytes]) -> bytes:
        """Leave the innermost directory of a walk; its name. The one above is opened again
        (from the root, each step checked as before) if it was closed to spare descriptors."""
        fd = fds.pop()
        if fd >= 0:
            os.close(fd)
        name = names.pop()
        if fds[-1] < 0:
            current = fds[0]
            for step in names:
                opened = os.open(step, _DIR_FLAGS, dir_fd=current)
                if current != fds[0]:
                    os.close(current)
                current = opened
            fds[-1] = current
        return name

    def _locate(self, path: str, follow: bool = True) -> tuple[str, _Location]:
        """The normalised virtual ``path`` and where it is; a last-component link that is not
        followed must still lead inside the root (else it is refused like any other)."""
        parts = self._parts("/", path)
        vpath = "/" + "/".join(parts)
        loc = self._walk([(False, p) for p in parts], vpath, follow)
        if not follow and loc.st is not None and stat_mod.S_ISLNK(loc.st.st_mode):
            try:
                self._walk(
                    [(True, n) for n in loc.names] + [(True, cast(bytes, loc.name))], vpath
                ).close()
            except _Outside:
                loc.close()
                raise
            except FSError:
                pass  # a loop inside the root: the link itself may still be removed
        return vpath, loc

    def _check_writable(self, vpath: str) -> None:
        if not self.writable:
            raise FSError(550, f"Permission denied: {_display(vpath)}")

    # ---- reading

    def real_path(self, path: str) -> str:
        """The real path on disk of the virtual ``path``, checked to be inside the root
        (symlinks resolved); FSError(550) if it leads outside."""
        _, loc = self._locate(path)
        with loc:
            names = [*loc.names] if loc.name is None else [*loc.names, loc.name]
        return os.fsdecode(os.path.join(self._root_bytes, *names)) if names else self.root

    def stat(self, path: str) -> FileInfo:
        """The entry at ``path`` (a symlink inside the root is followed); FSError(550) if none."""
        vpath, loc = self._locate(path)
        with loc:
            if loc.is_root:
                st = os.stat(loc.parent)
                name = "/"
            elif loc.st is None:
                raise _no_such(vpath)
            else:
                st = loc.st
                name = _display(vpath.rsplit("/", 1)[1])
        return _info(name, st)

    def is_dir(self, path: str) -> bool:
        """True if ``path`` is a directory inside the root (False for anything refused).

        >>> FileSystem("/").is_dir("/")
        True
        """
        try:
            return self.stat(path).is_dir
        except FSError:
            return False

    def is_file(self, path: str) -> bool:
        """True if ``path`` is a regular file inside the root (False for anything refused)."""
        try:
            return stat_mod.S_ISREG(self.stat(path).mode)
        except FSError:
            return False

    def listdir(self, path: str) -> list[FileInfo]:
        """The entries of the directory ``path``, sorted by name, names escaped as above.

        Entries whose symlink leads outside the root are left out; upload temp files too.
        FSError(550) if ``path`` is not a directory.

        A symlink inside the root is listed as what it points to (type, size, mode: it is
        followed, as everywhere, like ``ls -lL``), with ``is_link`` set; a dangling one as
        the link itself (``l`` mode) with ``target`` the virtual path it names.
        """
        vpath, loc = self._locate(path)
        with loc:
            fd, names = self._open_dir(loc, vpath)
        try:
            return [info for _, info in self._entries(fd, names, vpath)]
        except OSError as exc:
            raise _error(exc, vpath) from None
        finally:
            os.close(fd)

    def _open_dir(self, loc: _Location, vpath: str) -> tuple[int, list[bytes]]:
        """The directory at ``loc`` opened for reading (never through a link swapped in
        meanwhile), and its names below the root."""
        try:
            if loc.is_root:
                return os.open(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC), []
            if loc.st is None:
                raise _no_such(vpath)
            if not stat_mod.S_ISDIR(loc.st.st_mode):
                raise FSError(550, f"Not a directory: {_display(vpath)}")
            name = cast(bytes, loc.name)
            fd = os.open(name, _READ_DIR, dir_fd=loc.parent)
            return fd, [*loc.names, name]
        except OSError as exc:
            raise _error(exc, vpath) from None

    def _entries(self, fd: int, names: list[bytes], vpath: str) -> list[tuple[bytes, FileInfo]]:
        """(name on disk, info) of the directory open as ``fd``, sorted by listed name."""
        infos: list[tuple[bytes, FileInfo]] = []
        base = vpath.rstrip("/")
        with os.scandir(fd) as it:
            for entry in it:
                raw = os.fsencode(entry.name)
                if raw.startswith(_TEMP_PREFIX):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone since the directory was read
                name = _listed(raw)
                if not stat_mod.S_ISLNK(st.st_mode):
                    infos.append((raw, _info(name, st)))
                    continue
                try:
                    loc = self._walk([(True, n) for n in names] + [(True, raw)], f"{base}/{name}")
                except _Outside:
                    continue  # not there for a client
                except FSError:
                    infos.append((raw, _info(name, st, is_link=True)))  # a loop: as a link
                    continue
                with loc:
                    if loc.is_root:
                        infos.append((raw, _info(name, os.stat(loc.parent), is_link=True)))
                    elif loc.st is not None:
                        infos.append((raw, _info(name, loc.st, is_link=True)))
                    else:  # dangling: the link itself, with where it points
                        real = [*loc.names, cast(bytes, loc.name)]
                        target = "/" + "/".join(_listed(n) for n in real)
                        infos.append((raw, _info(name, st, is_link=True, target=target)))
        infos.sort(key=lambda pair: pair[1].name)
        return infos

    def iter_tree(self, path: str) -> Iterator[tuple[str, FileInfo]]:
        """Every entry under ``path`` (virtual path, info), depth first; not used by commands
        that a client can make expensive (kept for STAT and tools).

        Linked directories are listed but not entered (no loops); a directory removed or
        made unreadable meanwhile is skipped. Each directory is entered from its parent,
        held open (the last few levels; higher ones are opened again when needed), so the
        walk costs one open per directory, at any depth the limits allow.
        """
        vpath = self.resolve("/", path)
        _, loc = self._locate(vpath)
        with loc:
            fd, names = self._open_dir(loc, vpath)
        frames: list[_Frame] = []
        try:
            try:
                entries = self._entries(fd, names, vpath)
            except OSError as exc:
                raise _error(exc, vpath) from None
            frames.append(_Frame(fd, names, vpath.rstrip("/"), entries))
            while frames:
                top = frames[-1]
                if not top.entries:
                    frames.pop()
                    top.close()
                    continue
                raw, info = top.entries.popleft()
                child = f"{top.prefix}/{info.name}"
                yield child, info
                if not info.is_dir or info.is_link:
                    continue
                try:
                    if top.fd < 0:
                        where = top.prefix or "/"
                        with self._walk([(True, n) for n in top.names], where) as loc:
                            top.fd, _ = self._open_dir(loc, where)
                    fd = os.open(raw, _READ_DIR, dir_fd=top.fd)
                    try:
                        entries = self._entries(fd, [*top.names, raw], child)
                    except BaseException:
                        os.close(fd)
                        raise
                except OSError:
                    continue  # removed, replaced or unreadable since it was listed
                frames.append(_Frame(fd, [*top.names, raw], child, entries))
                if len(frames) > _MAX_HELD:
                    frames[-1 - _MAX_HELD].close()
        finally:
            for frame in frames:
                frame.close()

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        """The file at ``path`` opened for reading, positioned at ``offset``.

        FSError(550) for a directory, a missing file or one outside the root; FSError(554)
        (RFC 3659 REST) when ``offset`` is past its end.
        """
        vpath, loc = self._locate(path)
        with loc:
            if loc.is_root:
                raise FSError(550, f"Is a directory: {_display(vpath)}")
            if loc.st is None:
                raise _no_such(vpath)
            try:
                # O_NOFOLLOW: a link swapped in since the walk is refused, not followed;
                # O_NONBLOCK: a FIFO must not hang the server in open().
                fd = os.open(
                    cast(bytes, loc.name),
                    os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC,
                    dir_fd=loc.parent,
                )
            except OSError as exc:
                raise _error(exc, vpath) from None
        try:
            st = os.fstat(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise FSError(550, f"Is a directory: {_display(vpath)}")
            if not stat_mod.S_ISREG(st.st_mode):
                raise FSError(550, f"Not a regular file: {_display(vpath)}")
            if offset < 0 or offset > st.st_size:
                raise FSError(
                    554, f"Invalid REST offset {offset}: {_display(vpath)} has {st.st_size} bytes"
                )
            os.set_blocking(fd, True)
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            return cast(BinaryIO, os.fdopen(fd, "rb"))
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError):
                raise _error(exc, vpath) from None
            raise

    # ---- writing

    def open_upload(self, path: str, offset: int = 0, append: bool = False) -> Upload:
        """Start writing the file ``path``: fresh (atomic, via a temp file) when ``offset``
        is 0 and not ``append``; else into the file itself from ``offset`` (truncated there)
        or from its end. FSError(550) when the directory is missing or ``path`` is a
        directory; FSError(554) when ``offset`` is past the file's size.

        With ``append``, ``offset`` is ignored and the file is created if missing. A link
        inside the root is followed: the file it points to is written.
        """
        vpath = self.resolve("/", path)
        self._check_writable(vpath)
        if offset < 0:
            raise FSError(554, f"Invalid REST offset {offset}")
        _, loc = self._locate(vpath)
        with loc:
            if loc.is_root or (loc.st is not None and stat_mod.S_ISDIR(loc.st.st_mode)):
                raise FSError(550, f"Is a directory: {_display(vpath)}")
            name = cast(bytes, loc.name)
            if loc.st is not None and not stat_mod.S_ISREG(loc.st.st_mode):
                raise FSError(550, f"Not a regular file: {_display(vpath)}")
            try:
                if append or offset:
                    return self._resume(vpath, loc, name, offset, append)
                return self._fresh(vpath, loc, name)
            except OSError as exc:
                raise _error(exc, vpath) from None

    def _resume(self, vpath: str, loc: _Location, name: bytes, offset: int, append: bool) -> Upload:
        flags = os.O_WRONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC
        if append:
            flags |= os.O_CREAT
        fd = os.open(name, flags, 0o666, dir_fd=loc.parent)
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise FSError(550, f"Not a regular file: {_display(vpath)}")
            os.set_blocking(fd, True)
            if append:
                offset = st.st_size
            elif offset > st.st_size:
                raise FSError(
                    554, f"Invalid REST offset {offset}: {_display(vpath)} has {st.st_size} bytes"
                )
            else:
                os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return Upload(vpath, offset, fd)

    def _fresh(self, vpath: str, loc: _Location, name: bytes) -> Upload:
        if loc.st is not None and not os.access(
            name, os.W_OK, dir_fd=loc.parent, follow_symlinks=False
        ):
            raise FSError(550, f"Permission denied: {_display(vpath)}")
        tag = _TEMP_PREFIX + secrets.token_hex(8).encode() + b"."
        temp = tag + name[: MAX_NAME - len(tag)]
        parent = os.dup(loc.parent)
        try:
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC,
                0o666,
                dir_fd=parent,
            )
        except BaseException:
            os.close(parent)
            raise
        if loc.st is not None:
            try:  # a replaced file keeps its permissions
                os.fchmod(fd, stat_mod.S_IMODE(loc.st.st_mode))
            except OSError:
                pass
        return Upload(vpath, 0, fd, parent, temp, name)

    def unique_name(self, directory: str, hint: str | None = None) -> str:
        """A virtual path in ``directory`` that no file has (STOU), based on ``hint``.

        ``hint`` itself if free, else ``hint.1``, ``hint.2``...; ``file`` without a hint.
        """
        dpath = self.resolve("/", directory)
        base = (hint or "").rsplit("/", 1)[-1]
        if base in ("", ".", ".."):
            base = "file"
        if not self.stat(dpath).is_dir:
            raise FSError(550, f"Not a directory: {_display(dpath)}")
        prefix = dpath.rstrip("/") + "/"
        for n in range(1000):
            candidate = base if n == 0 else f"{base}.{n}"
            if n == 999:
                candidate = f"{base}.{secrets.token_hex(8)}"
            full = self.resolve("/", prefix + candidate)
            _, loc = self._locate(full, follow=False)
            with loc:
                if loc.st is None:
                    return full
        raise FSError(450, f"No unique name free in {_display(dpath)}")  # pragma: no cover

    def delete(self, path: str) -> None:
        """Remove the file ``path`` (a link is removed, not what it points to); FSError(550)
        for a directory."""
        vpath = self.resolve("/", path)
        self._check_writable(vpath)
        _, loc = self._locate(vpath, follow=False)
        with loc:
            if loc.is_root or (loc.st is not None and stat_mod.S_ISDIR(loc.st.st_mode)):
                raise FSError(550, f"Is a directory: {_display(vpath)}")
            if loc.st is None:
                raise _no_such(vpath)
            try:
                os.unlink(cast(bytes, loc.name), dir_fd=loc.parent)
            except OSError as exc:
                raise _error(exc, vpath) from None

    def mkdir(self, path: str) -> None:
        """Make the directory ``path``; FSError(550) if it exists or its parent does not."""
        vpath = self.resolve("/", path)
        self._check_writable(vpath)
        _, loc = self._locate(vpath, follow=False)
        with loc:
            if loc.is_root:
                raise FSError(550, f"File exists: {_display(vpath)}")
            try:
                os.mkdir(cast(bytes, loc.name), 0o777, dir_fd=loc.parent)
            except OSError as exc:
                raise _error(exc, vpath) from None

    def rmdir(self, path: str) -> None:
        """Remove an empty directory; FSError(550) if not empty, or if it is the root."""
        vpath = self.resolve("/", path)
        self._check_writable(vpath)
        _, loc = self._locate(vpath, follow=False)
        with loc:
            if loc.is_root:
                raise FSError(550, "Cannot remove the root directory")
            if loc.st is None:
                raise _no_such(vpath)
            if not stat_mod.S_ISDIR(loc.st.st_mode):
                raise FSError(550, f"Not a directory: {_display(vpath)}")
            try:
                os.rmdir(cast(bytes, loc.name), dir_fd=loc.parent)
            except OSError as exc:
                raise _error(exc, vpath) from None

    def rename(self, source: str, target: str) -> None:
        """Rename (files or directories) within the root; FSError(550/553) when refused.

        An existing target file is replaced (as POSIX ``rename``); a link is renamed
        itself. The root cannot be renamed or replaced, nor a directory moved into itself.
        """
        spath = self.resolve("/", source)
        tpath = self.resolve("/", target)
        self._check_writable(spath)
        if spath == "/" or tpath == "/":
            raise FSError(550, "Cannot rename the root directory")
        _, src = self._locate(spath, follow=False)
        with src:
            if src.st is None:
                raise _no_such(spath)
            _, dst = self._locate(tpath, follow=False)
            with dst:
                if dst.is_root:
                    raise FSError(550, "Cannot rename the root directory")
                try:
                    os.rename(
                        cast(bytes, src.name),
                        cast(bytes, dst.name),
                        src_dir_fd=src.parent,
                        dst_dir_fd=dst.parent,
                    )
                except OSError as exc:
                    if exc.errno == errno.EINVAL:
                        raise FSError(
                            550, f"Cannot move a directory into itself: {_display(tpath)}"
                        ) from None
                    which = (
                        tpath
                        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR)
                        else spath
                    )
                    raise _error(exc, which) from None

    def chmod(self, path: str, mode: int) -> None:
        """SITE CHMOD: permission bits only (0o7777 at most)."""
        vpath = self.resolve("/", path)
        self._check_writable(vpath)
        if not 0 <= mode <= 0o7777:
            raise FSError(501, f"Invalid mode {mode:o}")
        _, loc = self._locate(vpath)
        with loc:
            if loc.is_root:
                raise FSError(550, f"Permission denied: {_display(vpath)}")
            if loc.st is None:
                raise _no_such(vpath)
            try:
                _chmod_at(loc.parent, cast(bytes, loc.name), mode)
            except OSError as exc:
                raise _error(exc, vpath) from None


def _chmod_at(dir_fd: int, name: bytes, mode: int) -> None:
    """chmod the entry ``name`` of ``dir_fd``, never through a link swapped in meanwhile."""
    if _O_PATH != os.O_RDONLY and os.path.isdir("/proc/self/fd"):
        fd = os.open(name, _O_PATH | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
        try:
            if stat_mod.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, "a link")
            os.chmod(f"/proc/self/fd/{fd}", mode)
        finally:
            os.close(fd)
    else:  # pragma: no cover - no O_PATH: a small window remains
        os.chmod(name, mode, dir_fd=dir_fd, follow_symlinks=True)


def _byte_len(text: str) -> int:
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))


def _exists(name: bytes, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _info(
    name: str, st: os.stat_result, is_link: bool = False, target: str | None = None
) -> FileInfo:
    is_dir = stat_mod.S_ISDIR(st.st_mode)
    return FileInfo(
        name=name,
        is_dir=is_dir,
        size=st.st_size,
        mtime=st.st_mtime,
        mode=st.st_mode,
        nlink=st.st_nlink,
        owner=str(st.st_uid),
        group=str(st.st_gid),
        is_link=is_link,
        target=target,
        unique=f"{st.st_dev:x}U{st.st_ino:x}",
    )
