"""The FTP server's view of the disk: a root that is a jail, and the only FTP code touching disk.

The server speaks in *virtual paths*: ``str``, absolute, ``/`` being the root, always
normalised (no ``.``, ``..``, empty or trailing parts). :meth:`FileSystem.resolve` turns what
a client typed (relative to its working directory) into one; every other method takes a
virtual path and maps it to the disk under the root, refusing whatever would lead outside it:
``..`` past the root (it stays at ``/``, as ``cd ..`` at ``/`` does), NUL, a backslash-
separated escape, a name over 255 bytes or a path over 4096, and symlinks whose target is
outside the root (checked on the real path, at use, so a link made later cannot slip
through; files are opened without following a last-component symlink out).

Names on disk that are not valid UTF-8 are listed with each undecodable byte written
``\\xNN`` (a backslash, ``x``, two hex digits), so a listing is always valid UTF-8 that any
client decodes; such a name given back by a client reaches the same file.

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

from collections.abc import Iterator
from typing import BinaryIO

from protocols.ftp.core import FileInfo

__all__ = ["MAX_NAME", "MAX_PATH", "FSError", "FileSystem", "Upload"]

#: the longest name (bytes, UTF-8) and the longest virtual path accepted
MAX_NAME = 255
MAX_PATH = 4096


class FSError(OSError):
    """A file operation refused or failed: ``code`` is the FTP reply code to send.

    ``str()`` is the reply's text: ``No such file or directory: /x.txt``.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class Upload:
    """A file being written by STOR/APPE/STOU: ``write`` chunks, then ``commit`` or ``abort``.

    ``path`` is the virtual path the file will have; ``offset`` where writing started.
    ``written`` counts bytes written so far.
    """

    path: str
    offset: int
    written: int

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        """Flush, close and put the file in place (atomic rename for a fresh upload)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Give up: a fresh upload's temp file is removed; a resumed one keeps what arrived."""
        raise NotImplementedError


class FileSystem:
    """The files under ``root`` as an FTP session sees them; ``writable`` allows changes.

    Every changing method raises FSError(550, "Permission denied: ...") when not writable.
    """

    def __init__(self, root: str, writable: bool = False) -> None:
        raise NotImplementedError

    #: the root's real, absolute path (symlinks resolved)
    root: str
    writable: bool

    def resolve(self, cwd: str, path: str) -> str:
        """The virtual path ``path`` names, seen from the virtual directory ``cwd``.

        ``""`` is ``cwd``; an absolute ``path`` starts at the root; ``//`` and ``\\``-free
        parts normalise as POSIX does; ``..`` never climbs above ``/``. Raises FSError (553)
        for NUL or a name/path over the limits. Does not touch the disk.
        """
        raise NotImplementedError

    def real_path(self, path: str) -> str:
        """The real path on disk of the virtual ``path``, checked to be inside the root
        (symlinks resolved); FSError(550) if it leads outside."""
        raise NotImplementedError

    def stat(self, path: str) -> FileInfo:
        """The entry at ``path`` (a symlink inside the root is followed); FSError(550) if none."""
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def is_file(self, path: str) -> bool:
        raise NotImplementedError

    def listdir(self, path: str) -> list[FileInfo]:
        """The entries of the directory ``path``, sorted by name, names escaped as above.

        Entries whose symlink leads outside the root are left out; upload temp files too.
        FSError(550) if ``path`` is not a directory.
        """
        raise NotImplementedError

    def iter_tree(self, path: str) -> Iterator[tuple[str, FileInfo]]:
        """Every entry under ``path`` (virtual path, info), depth first; not used by commands
        that a client can make expensive (kept for STAT and tools)."""
        raise NotImplementedError

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        """The file at ``path`` opened for reading, positioned at ``offset``.

        FSError(550) for a directory, a missing file or one outside the root; FSError(554)
        (RFC 3659 REST) when ``offset`` is past its end.
        """
        raise NotImplementedError

    def open_upload(self, path: str, offset: int = 0, append: bool = False) -> Upload:
        """Start writing the file ``path``: fresh (atomic, via a temp file) when ``offset``
        is 0 and not ``append``; else into the file itself from ``offset`` (truncated there)
        or from its end. FSError(550) when the directory is missing or ``path`` is a
        directory; FSError(554) when ``offset`` is past the file's size."""
        raise NotImplementedError

    def unique_name(self, directory: str, hint: str | None = None) -> str:
        """A virtual path in ``directory`` that no file has (STOU), based on ``hint``."""
        raise NotImplementedError

    def delete(self, path: str) -> None:
        raise NotImplementedError

    def mkdir(self, path: str) -> None:
        raise NotImplementedError

    def rmdir(self, path: str) -> None:
        """Remove an empty directory; FSError(550) if not empty, or if it is the root."""
        raise NotImplementedError

    def rename(self, source: str, target: str) -> None:
        """Rename (files or directories) within the root; FSError(550/553) when refused."""
        raise NotImplementedError

    def chmod(self, path: str, mode: int) -> None:
        """SITE CHMOD: permission bits only (0o7777 at most)."""
        raise NotImplementedError

    def display(self, path: str) -> str:
        """``path`` as shown to clients (undecodable bytes escaped), for replies and logs."""
        raise NotImplementedError
