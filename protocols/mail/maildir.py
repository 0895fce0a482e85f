"""The mail store the SMTP, POP3 and IMAP servers share: Maildir folders on disk.

This module is the only mail code that touches the disk. A Maildir is a folder
with three folders inside: ``tmp`` (a message being written), ``new`` (delivered,
not yet seen by a reader) and ``cur`` (seen). A message is written whole into
``tmp`` under a unique name and then renamed into ``new`` or ``cur``: a reader never
sees half a message, and a writer that dies leaves only a file in ``tmp``.

**Folders** (Maildir++): a user's root Maildir is ``INBOX``; a folder ``Sent`` is the
Maildir ``ROOT/.Sent``, ``Archive.2024`` is ``ROOT/.Archive.2024`` ("." separates the
levels; a folder may exist without its parent). :meth:`Maildir.list_folders`,
:meth:`~Maildir.create_folder`, :meth:`~Maildir.delete_folder`,
:meth:`~Maildir.rename_folder` (children move along) and :meth:`~Maildir.folder` work
from any folder of a user, on the user's whole tree.

**UIDs.** Each folder keeps ``netshell-uidlist`` (as Dovecot keeps ``dovecot-uidlist``):
its UIDVALIDITY, UIDNEXT and the UID of every message, by the message's key (its file
name up to the ``:2,`` info). A scan (:meth:`Maildir.messages`) gives UIDs to messages
that have none, in arrival order (the time they were renamed into ``new``), and forgets
the keys whose files are gone. The list is rewritten through a temporary file and a
rename, and every read-modify-write of it (and every change of the folder the store
makes) holds ``flock`` on ``netshell-uidlist.lock``: UIDs are the same across restarts
and across processes. A lost list starts a new UIDVALIDITY.

**Flags** live in the file name's info, ``:2,`` then letters in ASCII order: D
``\\Draft``, F ``\\Flagged``, P ``$Forwarded`` (passed), R ``\\Answered``, S ``\\Seen``, T
``\\Deleted``. Keywords (any other IMAP flag, at most 26 per folder) are the letters
``a``-``z``, named in ``netshell-keywords`` (one ``index name`` a line). Changing flags
renames the file (into ``cur``). ``\\Recent`` is not stored: it is a session's notion.

**Messages** are :class:`MessageInfo` (uid, key, flags, size on disk, internal date =
the file's mtime). :meth:`~Maildir.read` gives bytes (all, or a range),
:meth:`~Maildir.append` writes a message with flags and a date (all or nothing),
:meth:`~Maildir.expunge` removes those marked ``\\Deleted`` (optionally only some UIDs),
:meth:`~Maildir.remove` removes by UID, :meth:`~Maildir.copy` and :meth:`~Maildir.move`
give the messages new UIDs in another folder.

**For IMAP** besides: :meth:`~Maildir.take_new` moves what is in ``new`` to ``cur`` and
returns those UIDs (the session that took them sees them ``\\Recent``), and
:meth:`~Maildir.subscribed_folders` / :meth:`~Maildir.set_subscribed` keep the
subscription list (``ROOT/subscriptions``, one name a line). Folder names are stored as
given (Dovecot stores IMAP's modified UTF-7 in the file names: an IMAP server should too).
A Maildir object is not thread-safe: use it from the reactor's thread (listeners run in
the thread that made the change).

**The POP3 lock.** :meth:`~Maildir.lock_session` takes an exclusive lock on the folder
(``flock`` on ``netshell-pop3.lock``, held by an open file): a second taker, in this
process or another, gets :class:`MailboxLocked`. The kernel drops it when the process
dies; :meth:`SessionLock.release` drops it at the end of a session.

**Change notification** (in-process, per folder; for IMAP's untagged EXISTS, EXPUNGE and
FETCH FLAGS)::

    sub = box.subscribe(callback)        # callback(change: Change)
    sub.close()                          # no more calls

A :class:`Change` has ``kind`` (``"exists"``, ``"expunge"`` or ``"flags"``), ``uids``
(the messages concerned, ascending; empty for ``"exists"`` after :meth:`deliver`, which
gives no UID: call :meth:`~Maildir.messages` to learn them), ``flags`` (for ``"flags"``:
uid -> the new flags) and ``origin`` (the :class:`Maildir` object the change was made
through). Every Maildir object open on the same folder (same real path) shares the
listeners; a listener is not told of changes made through the object it subscribed on,
unless it asked with ``own=True``. A scan that finds messages another process delivered
or removed, or whose flags changed since this object last looked, tells the listeners
too (so a change may be told more than once: a listener takes it as the state now, as
IMAP's FETCH FLAGS does). Callbacks run synchronously, inside the call that made the
change, once the folder's lock is free (so a callback may use the store); one that raises
is logged and the others still run.

**Sizes and speed.** Names the store writes carry Maildir++'s ``,S=<size>,W=<size with
CRLF line ends>`` (as Courier and Dovecot write), so :meth:`~Maildir.wire_size` (POP3's
sizes, IMAP's RFC822.SIZE) reads no file. A scan of a folder whose ``new`` and ``cur``
have not changed since a scan made a second after their last change answers from memory.

Example:

>>> import os, tempfile
>>> box = Maildir(os.path.join(tempfile.mkdtemp(), "alice"))   # made if missing
>>> key = box.deliver(b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
>>> [(m.uid, m.flags, box.wire_size(m)) for m in box.messages()]
[(1, frozenset(), 22)]
>>> sorted(box.add_flags(1, {"\\\\Seen"}))
['\\\\Seen']
>>> sent = box.create_folder("Sent")
>>> sent.append(b"Subject: out\\r\\n\\r\\n", flags={"\\\\Seen"}, date=1700000000)
1
>>> box.copy([1], sent)
{1: 2}
>>> box.list_folders()
['INBOX', 'Sent']
>>> import shutil; shutil.rmtree(os.path.dirname(box.root))
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import re
import shutil
import socket
import stat
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = [
    "Change",
    "FolderError",
    "MailboxLocked",
    "Maildir",
    "MaildirError",
    "MessageInfo",
    "NoSuchMessage",
    "PendingMessage",
    "SessionLock",
    "Subscription",
]

log = logging.getLogger("netshell.mail")

_serial = itertools.count(1)

UIDLIST = "netshell-uidlist"
UIDLIST_LOCK = "netshell-uidlist.lock"
KEYWORDS = "netshell-keywords"
SESSION_LOCK = "netshell-pop3.lock"
SUBSCRIPTIONS = "subscriptions"
_UIDLIST_MAGIC = "netshell-uidlist 1"

#: IMAP system flag -> Maildir info letter
FLAG_TO_LETTER = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "$Forwarded": "P",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
LETTER_TO_FLAG = {v: k for k, v in FLAG_TO_LETTER.items()}
_FLAG_BY_LOWER = {k.lower(): k for k in FLAG_TO_LETTER}
_KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_ATOM_SPECIALS = re.compile(r'[\x00-\x20\x7f(){%*"\\\]]')


class MaildirError(OSError):
    """A Maildir that cannot be used: not a folder, or a write that failed."""


class FolderError(MaildirError):
    """A folder name that is not allowed, a folder missing, or one that exists already."""


class NoSuchMessage(KeyError):
    """No message with that UID in the folder (never was, or expunged)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such message"


class MailboxLocked(MaildirError):
    """The folder is held by another session (POP3's exclusive lock)."""


@dataclass(frozen=True)
class MessageInfo:
    """One message as the store sees it: ``uid``, ``key`` (its file name up to ``:2,``),
    ``flags`` (IMAP names, keywords included), ``size`` (bytes on disk),
    ``internal_date`` (POSIX seconds: the file's mtime) and ``path`` (where it is now)."""

    uid: int
    key: str
    flags: frozenset[str]
    size: int
    internal_date: float
    path: str


@dataclass(frozen=True)
class Change:
    """What changed in a folder: see the module docstring."""

    kind: str
    uids: tuple[int, ...]
    flags: dict[int, frozenset[str]] = field(default_factory=dict)
    origin: Maildir | None = None


class Subscription:
    """A listener registered with :meth:`Maildir.subscribe`; ``close()`` removes it."""

    def __init__(self, folder: str, callback: Callable[[Change], object],
                 box: Maildir, own: bool) -> None:
        self.folder = folder
        self.callback = callback
        self._box = weakref.ref(box)
        self.own = own
        self.closed = False

    def close(self) -> None:
        """Stop telling this listener (idempotent)."""
        if self.closed:
            return
        self.closed = True
        subs = _listeners.get(self.folder)
        if subs is not None:
            with contextlib.suppress(ValueError):
                subs.remove(self)
            if not subs:
                del _listeners[self.folder]

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Subscription {self.folder!r} {state}>"


#: folder real path -> its listeners
_listeners: dict[str, list[Subscription]] = {}
#: folder real path -> the session holding its POP3 lock (for the message)
_session_holders: dict[str, str] = {}


def _notify(box: Maildir, change: Change) -> None:
    for sub in list(_listeners.get(box._real, ())):
        if sub.closed or (not sub.own and sub._box() is box):
            continue
        try:
            sub.callback(change)
        except Exception:
            log.exception("a mailbox listener failed on %r", change)


class SessionLock:
    """The exclusive lock of one folder (:meth:`Maildir.lock_session`); ``release()`` frees it."""

    def __init__(self, folder: str, fd: int, owner: str) -> None:
        self.folder = folder
        self.owner = owner
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Free the folder (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _session_holders.pop(self.folder, None)
        os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> SessionLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<SessionLock {self.folder!r} {'held' if self.held else 'released'}>"


def _check_folder_name(name: str) -> str:
    if name.upper() == "INBOX":
        return "INBOX"
    parts = name.split(".")
    if (not name or "/" in name or "\x00" in name or any(p in ("", "..") for p in parts)
            or any(ord(c) < 0x20 for c in name)):
        raise FolderError(errno.EINVAL, f"not a folder name: {name!r}")
    return name


def _flags_from_info(info: str, keywords: list[str]) -> frozenset[str]:
    flags = set()
    for letter in info:
        name = LETTER_TO_FLAG.get(letter)
        if name is None and "a" <= letter <= "z":
            index = ord(letter) - ord("a")
            if index < len(keywords) and keywords[index]:
                name = keywords[index]
        if name is not None:
            flags.add(name)
    return frozenset(flags)


_BARE_LF = re.compile(rb"(?<!\r)\n")
_WIRE_SIZE = re.compile(r",W=(\d+)(?:,|$)")
_CONVENTIONAL_KEY = re.compile(r"(\d+)\.M(\d+)P(\d+)Q(\d+)\.")


def _arrival(key: str) -> tuple[int, int, int, str]:
    """A sort key for messages renamed into new at the same (coarse) ctime: the time and
    serial our own names carry, else the name."""
    m = _CONVENTIONAL_KEY.match(key)
    if m is None:
        return (1 << 62, 0, 0, key)
    return (int(m.group(1)), int(m.group(2)), int(m.group(4)), key)


def _split_name(name: str) -> tuple[str, str]:
    """(key, info letters) of a file name in cur or new."""
    key, sep, info = name.partition(":")
    if sep and info.startswith("2,"):
        return key, info[2:]
    return key, ""


class PendingMessage:
    """A message being written into a folder's ``tmp`` (:meth:`Maildir.begin_append`)."""

    def __init__(self, box: Maildir) -> None:
        self._box = box
        self.key = box._unique_name()
        self.path = os.path.join(box.path, "tmp", self.key)
        self.size = 0
        self._lf = 0
        self._crlf = 0
        self._last = b""
        self.done = False
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                           0o600)
        except OSError as e:
            raise MaildirError(e.errno, f"cannot write into {box.path!r}: {e.strerror}") from e

    def write(self, data: bytes) -> None:
        """Add ``data`` at the end."""
        assert self._fd is not None, "the message is committed or aborted"
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:
            self.abort()
            raise MaildirError(e.errno, f"cannot write into {self._box.path!r}: "
                               f"{e.strerror}") from e
        self.size += len(data)
        self._lf += data.count(b"\n")
        self._crlf += data.count(b"\r\n") + (self._last == b"\r" and data[:1] == b"\n")
        self._last = data[-1:] or self._last

    def commit(self, folder: Maildir, flags: Iterable[str] = (),
               date: float | None = None) -> int:
        """Put the message into ``folder`` with ``flags`` and internal ``date``; its UID."""
        assert self._fd is not None, "the message is committed or aborted"
        try:
            if self._box.fsync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
        sized = f"{self.path},S={self.size},W={self.size + self._lf - self._crlf}"
        try:
            os.rename(self.path, sized)
            try:
                return folder._add([(None, sized, flags, date)])[0]
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(sized)
        finally:
            self.done = True
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def abort(self) -> None:
        """Remove what was written (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self.done:
            self.done = True
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class Maildir:
    """One Maildir folder at ``path`` (made, with tmp/new/cur, if ``create`` and missing).

    ``fsync=False`` skips flushing each message to the disk before it is renamed into place
    (about 1 ms a message on this machine's disk): for tests and benchmarks, not for mail
    someone was told was accepted.

    The user's root folder is INBOX; :meth:`folder` opens the others. Many objects may be
    open on one folder, in one process or several: they share the UIDs (on disk) and the
    listeners (in this process).
    """

    def __init__(self, path: str | os.PathLike[str], create: bool = True, *,
                 root: str | os.PathLike[str] | None = None, name: str | None = None,
                 fsync: bool = True) -> None:
        self.path = os.fspath(path)
        #: whether a message is flushed to the disk before it is renamed into place (off:
        #: faster, for tests and benchmarks; a crash may then lose mail already accepted)
        self.fsync = fsync
        missing = [sub for sub in ("tmp", "new", "cur")
                   if not os.path.isdir(os.path.join(self.path, sub))]
        if missing:
            if not create:
                raise MaildirError(f"{self.path!r} is not a Maildir (no {', '.join(missing)})")
            try:
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(self.path, sub), mode=0o700, exist_ok=True)
            except OSError as e:
                raise MaildirError(e.errno, f"cannot make a Maildir at {self.path!r}: "
                                            f"{e.strerror}") from e
        if root is None:
            base = os.path.basename(os.path.normpath(self.path))
            if base.startswith(".") and os.path.exists(os.path.join(self.path, "maildirfolder")):
                root = os.path.dirname(os.path.normpath(self.path))
                name = base[1:]
            else:
                root = self.path
                name = "INBOX"
        self.root = os.fspath(root)
        self.name = name or "INBOX"
        self._real = os.path.realpath(self.path)
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._uidvalidity = 0
        self._uidnext = 1
        self._uid_of: dict[str, int] = {}
        self._key_of: dict[int, str] = {}
        self._files: dict[str, tuple[str, str]] = {}  # key -> (subdir, file name)
        self._list_stamp: tuple[int, int, int] | None = None
        self._keywords: list[str] = []
        self._keywords_stamp: tuple[int, int, int] | None = None
        self._wire_sizes: dict[str, int] = {}
        self._pending: list[Change] = []
        self._scan_cache: tuple[tuple[int, ...], bool, tuple[MessageInfo, ...]] | None = None

    def __repr__(self) -> str:
        return f"<Maildir {self.name} at {self.path!r}>"

    # ---- delivery (SMTP)

    def deliver(self, data: bytes) -> str:
        """Write ``data`` (the message, as it goes on disk) into ``new``; return its key.

        Written to ``tmp`` and fsynced first, then renamed: all of it, or nothing. The
        message gets its UID at the next scan; listeners hear ``"exists"`` with no UIDs."""
        key = self._unique_name(data)
        tmp = self._write_tmp(key, data, None)
        try:
            os.rename(tmp, os.path.join(self.path, "new", key))
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise MaildirError(e.errno, f"cannot deliver into {self.path!r}: {e.strerror}") from e
        self._emit(Change("exists", (), origin=self))
        return key

    def _write_tmp(self, key: str, data: bytes, date: float | None) -> str:
        tmp = os.path.join(self.path, "tmp", key)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if date is not None:
                os.utime(tmp, (date, date))
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise MaildirError(e.errno, f"cannot deliver into {self.path!r}: {e.strerror}") from e
        return tmp

    @staticmethod
    def _unique_name(data: bytes | None = None) -> str:
        """``time.M<usec>P<pid>Q<serial>.host``: unique on this host (the Maildir convention);
        with ``data``, ``,S=<size>,W=<size with CRLF line ends>`` after it (Maildir++, as
        Courier and Dovecot write), so sizes are known without reading the file."""
        now = time.time()
        seconds = int(now)
        micro = int((now - seconds) * 1_000_000)
        host = (socket.gethostname().replace("/", r"\057").replace(":", r"\072")
                .replace(",", r"\054"))
        name = f"{seconds}.M{micro}P{os.getpid()}Q{next(_serial)}.{host}"
        if data is not None:
            wire = len(data) + data.count(b"\n") - data.count(b"\r\n")
            name += f",S={len(data)},W={wire}"
        return name

    # ---- the folder's lock and its UID list

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """flock on the uidlist's lock file, re-entrant for this object."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fd = os.open(os.path.join(self.path, UIDLIST_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
        finally:
            os.close(fd)
        # Listeners are told once the lock is free: one that calls into the store (another
        # Maildir object on this folder, so another flock) must not wait on us forever.
        pending, self._pending = self._pending, []
        for change in pending:
            _notify(self, change)

    def _emit(self, change: Change) -> None:
        if self._lock_depth:
            self._pending.append(change)
        else:
            _notify(self, change)

    def _read_uidlist(self) -> bool:
        """Load the UID list if it changed on disk; False when there is none."""
        path = os.path.join(self.path, UIDLIST)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._list_stamp = None
            return False
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._list_stamp:
            return True
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        if not lines or not lines[0].startswith(_UIDLIST_MAGIC + " "):
            log.warning("%s: %s is not a UID list; starting a new UIDVALIDITY", self.path, path)
            self._list_stamp = None
            return False
        try:
            fields = {w[0]: w[1:] for w in lines[0][len(_UIDLIST_MAGIC) + 1:].split() if w}
            validity, uidnext = int(fields["V"]), int(fields["N"])
            uid_of: dict[str, int] = {}
            for line in lines[1:]:
                uid_text, _, key = line.partition(" ")
                if key:
                    uid_of[key] = int(uid_text)
        except (KeyError, ValueError):
            log.warning("%s: %s is damaged; starting a new UIDVALIDITY", self.path, path)
            self._list_stamp = None
            return False
        self._uidvalidity, self._uidnext = validity, uidnext
        self._uid_of = uid_of
        self._key_of = {uid: key for key, uid in uid_of.items()}
        self._list_stamp = stamp
        return True

    def _write_uidlist(self) -> None:
        path = os.path.join(self.path, UIDLIST)
        tmp = f"{path}.{os.getpid()}.tmp"
        lines = [f"{_UIDLIST_MAGIC} V{self._uidvalidity} N{self._uidnext}\n"]
        lines += [f"{uid} {key}\n" for uid, key in sorted(self._key_of.items())]
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        st = os.stat(path)
        self._list_stamp = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _list_files(self) -> dict[str, tuple[str, str, os.stat_result]]:
        """key -> (subdir, name, stat) of every message now in new and cur."""
        found: dict[str, tuple[str, str, os.stat_result]] = {}
        # new before cur: a message moved from new to cur meanwhile is seen at least once
        for sub in ("new", "cur"):
            with os.scandir(os.path.join(self.path, sub)) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    key, _ = _split_name(entry.name)
                    found[key] = (sub, entry.name, st)
        return found

    def _dir_stamp(self) -> tuple[int, ...]:
        """What tells whether the folder may have changed since the last scan."""
        stamps: list[int] = []
        for sub in ("new", "cur"):
            st = os.stat(os.path.join(self.path, sub))
            stamps += (st.st_ino, st.st_mtime_ns)
        for name in (UIDLIST, KEYWORDS):
            try:
                st = os.stat(os.path.join(self.path, name))
                stamps += (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamps += (0, 0, 0)
        return tuple(stamps)

    def _sync(self) -> list[MessageInfo]:
        """The scan, under the lock: UIDs for new messages, the gone ones forgotten.

        A scan whose folders have not changed since the last one answers from memory. The
        folders' mtimes are trusted only once they are a second older than that scan: a
        change made within the same clock tick as it would not move them."""
        cached = self._scan_cache
        if cached is not None and not self._lock_depth:
            stamp = self._dir_stamp()
            if stamp == cached[0] and cached[1]:
                return list(cached[2])
        self._scan_cache = None
        with self._locked():
            began = time.time_ns()
            stamp_before = self._dir_stamp()
            had = self._read_uidlist()
            if not had:
                self._uidvalidity = self._new_uidvalidity()
                self._uidnext = 1
                self._uid_of, self._key_of = {}, {}
            self._read_keywords()
            found = self._list_files()
            gone = [uid for key, uid in self._uid_of.items() if key not in found]
            fresh = sorted((k for k in found if k not in self._uid_of),
                           key=lambda k: (found[k][2].st_ctime_ns, _arrival(k)))
            for uid in gone:
                del self._uid_of[self._key_of.pop(uid)]
            added = []
            for key in fresh:
                uid = self._uidnext
                self._uidnext += 1
                self._uid_of[key] = uid
                self._key_of[uid] = key
                added.append(uid)
            if gone or added or not had:
                self._write_uidlist()
            # flags changed behind this object's back (another process, another program)
            recolored: dict[int, frozenset[str]] = {}
            for key, (_, old_name) in self._files.items():
                now = found.get(key)
                if now is None or now[1] == old_name:
                    continue
                before = _flags_from_info(_split_name(old_name)[1], self._keywords)
                after = _flags_from_info(_split_name(now[1])[1], self._keywords)
                if before != after:
                    recolored[self._uid_of[key]] = after
            self._files = {key: (sub, name) for key, (sub, name, _) in found.items()}
            if gone:
                self._emit(Change("expunge", tuple(sorted(gone)), origin=self))
            if added:
                self._emit(Change("exists", tuple(added), origin=self))
            if recolored:
                self._emit(Change("flags", tuple(sorted(recolored)), recolored, origin=self))
            infos = []
            for key, (sub, name, st) in found.items():
                infos.append(self._info(key, sub, name, st))
            infos.sort(key=lambda m: m.uid)
            stamp = self._dir_stamp()
            if stamp[:4] == stamp_before[:4]:  # new and cur held still while we listed them
                newest = max(stamp[1], stamp[3])
                settled = began - newest > 1_000_000_000
                self._scan_cache = (stamp, settled, tuple(infos))
        return infos

    def _new_uidvalidity(self) -> int:
        return max(int(time.time()), 1)

    def _info(self, key: str, sub: str, name: str, st: os.stat_result) -> MessageInfo:
        _, info = _split_name(name)
        return MessageInfo(self._uid_of[key], key, _flags_from_info(info, self._keywords),
                           st.st_size, st.st_mtime, os.path.join(self.path, sub, name))

    def _ensure(self) -> None:
        if not self._uidvalidity or self._list_stamp is None:
            self._sync()

    # ---- reading

    @property
    def uidvalidity(self) -> int:
        """The folder's UIDVALIDITY (made at its first scan)."""
        self._ensure()
        return self._uidvalidity

    @property
    def uidnext(self) -> int:
        """The UID the next message will get (as of the last scan)."""
        self._ensure()
        return self._uidnext

    def messages(self) -> list[MessageInfo]:
        """Scan the folder: every message, by ascending UID (new ones get their UIDs now)."""
        return self._sync()

    scan = messages

    def take_new(self) -> list[int]:
        """Move every message still in ``new`` to ``cur`` and return their UIDs: the caller
        is the one session that sees them as ``\\Recent`` (IMAP), as with Dovecot. A
        second call (by anyone) gets only what arrived since."""
        taken = []
        with self._locked():
            self._sync()
            for key, (sub, name) in list(self._files.items()):
                if sub != "new":
                    continue
                target = name if ":" in name else f"{name}:2,"
                try:
                    os.rename(os.path.join(self.path, "new", name),
                              os.path.join(self.path, "cur", target))
                except FileNotFoundError:
                    continue
                self._files[key] = ("cur", target)
                taken.append(self._uid_of[key])
        return sorted(taken)

    def __len__(self) -> int:
        return len(self._sync())

    def _path_of(self, uid: int) -> tuple[str, str, str]:
        """(key, subdir, name) of ``uid``; rescans once if it is not known."""
        for attempt in (0, 1):
            if attempt or not self._files:
                self._sync()
            key = self._key_of.get(uid)
            if key is not None and key in self._files:
                sub, name = self._files[key]
                return key, sub, name
        raise NoSuchMessage(f"no message with UID {uid} in {self.name}")

    def _retry(self, uid: int, action: Callable[[str, str, str], object]) -> object:
        """Run ``action(key, sub, name)``; if the file moved meanwhile, rescan and retry."""
        for _ in range(3):
            key, sub, name = self._path_of(uid)
            try:
                return action(key, sub, name)
            except FileNotFoundError:
                self._files = {}
                self._scan_cache = None  # the next look is a real scan
        raise NoSuchMessage(f"no message with UID {uid} in {self.name}")

    def get(self, uid: int) -> MessageInfo:
        """The :class:`MessageInfo` of ``uid``; NoSuchMessage if there is none."""
        def info(key: str, sub: str, name: str) -> MessageInfo:
            return self._info(key, sub, name, os.stat(os.path.join(self.path, sub, name)))
        result = self._retry(uid, info)
        assert isinstance(result, MessageInfo)
        return result

    def flags(self, uid: int) -> frozenset[str]:
        """The flags of ``uid`` now."""
        return self.get(uid).flags

    def open(self, uid: int) -> BinaryIO:
        """The message's file, open for reading (valid even if it is renamed meanwhile)."""
        def do(key: str, sub: str, name: str) -> BinaryIO:
            return open(os.path.join(self.path, sub, name), "rb")
        f = self._retry(uid, do)
        return f  # type: ignore[return-value]

    def read(self, uid: int, start: int = 0, length: int | None = None, *,
             crlf: bool = False) -> bytes:
        """The message's bytes: all, or ``length`` bytes from ``start``. As stored, or with
        ``crlf`` as the wire has them (every bare LF made CRLF; ``start`` and ``length``
        then count in that form, as IMAP's ``BODY[]<start.length>`` does)."""
        if crlf:
            with self.open(uid) as f:
                data = _BARE_LF.sub(b"\r\n", f.read())
            end = None if length is None else start + max(length, 0)
            return data[start:end]
        with self.open(uid) as f:
            if start:
                f.seek(start)
            return f.read() if length is None else f.read(max(length, 0))

    def wire_size(self, message: int | MessageInfo) -> int:
        """The size of ``message`` (a UID, or a MessageInfo from :meth:`messages`) with every
        line ending CRLF: POP3's and IMAP's RFC822.SIZE. Taken from the ``,W=`` of its name
        when there is one, else counted once (and remembered)."""
        info = message if isinstance(message, MessageInfo) else self.get(message)
        m = _WIRE_SIZE.search(info.key)
        if m:
            return int(m.group(1))
        size = self._wire_sizes.get(info.key)
        if size is None:
            data = self.read(info.uid)
            size = len(data) + data.count(b"\n") - data.count(b"\r\n")
            self._wire_sizes[info.key] = size
        return size

    # ---- keywords

    def _read_keywords(self) -> None:
        path = os.path.join(self.path, KEYWORDS)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._keywords, self._keywords_stamp = [], None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._keywords_stamp:
            return
        names: list[str] = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                index, _, name = line.strip().partition(" ")
                if index.isdigit() and name:
                    i = int(index)
                    names.extend([""] * (i + 1 - len(names)))
                    names[i] = name
        self._keywords, self._keywords_stamp = names, stamp

    def _letters(self, flags: Iterable[str], create: bool) -> str:
        """The info letters for ``flags`` (under the lock when ``create``)."""
        letters = set()
        for flag in flags:
            system = _FLAG_BY_LOWER.get(flag.lower())
            if system is not None:
                letters.add(FLAG_TO_LETTER[system])
                continue
            if flag.startswith("\\"):
                if flag.lower() == "\\recent":
                    continue
                raise ValueError(f"not a flag the store keeps: {flag!r}")
            if not flag or _ATOM_SPECIALS.search(flag):
                raise ValueError(f"not a keyword: {flag!r}")
            self._read_keywords()
            lowered = [k.lower() for k in self._keywords]
            if flag.lower() in lowered:
                letters.add(_KEYWORD_LETTERS[lowered.index(flag.lower())])
                continue
            if not create:
                continue
            if len(self._keywords) >= len(_KEYWORD_LETTERS):
                raise ValueError(f"{self.name}: no room for keyword {flag!r} (26 at most)")
            self._keywords.append(flag)
            path = os.path.join(self.path, KEYWORDS)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(f"{i} {k}\n" for i, k in enumerate(self._keywords) if k)
            os.rename(tmp, path)
            self._keywords_stamp = None
            letters.add(_KEYWORD_LETTERS[len(self._keywords) - 1])
        return "".join(sorted(letters))

    def keywords(self) -> list[str]:
        """The keywords this folder has names for (IMAP's PERMANENTFLAGS beyond the system ones)."""
        self._read_keywords()
        return [k for k in self._keywords if k]

    # ---- flags

    def store_flags(self, uids: Iterable[int], flags: Iterable[str],
                    mode: str = "set") -> dict[int, frozenset[str]]:
        """Set (``mode="set"``), add (``"add"``) or remove (``"remove"``) ``flags`` on
        ``uids``; returns uid -> the new flags, for those that still exist. Listeners hear
        ``"flags"`` for the messages whose flags changed. Raises ValueError on a flag the
        store cannot keep (``\\Recent`` is ignored)."""
        if mode not in ("set", "add", "remove"):
            raise ValueError(f"mode is 'set', 'add' or 'remove', not {mode!r}")
        flags = list(flags)
        result: dict[int, frozenset[str]] = {}
        changed: dict[int, frozenset[str]] = {}
        with self._locked():
            wanted = set(self._letters(flags, create=mode != "remove"))
            for uid in uids:
                def rename(key: str, sub: str, name: str) -> frozenset[str]:
                    _, info = _split_name(name)
                    old = set(info)
                    if mode == "set":
                        # letters this store does not know (another program's) are kept
                        new = {c for c in old if c not in FLAG_TO_LETTER.values()
                               and c not in _KEYWORD_LETTERS} | wanted
                    elif mode == "add":
                        new = old | wanted
                    else:
                        new = old - wanted
                    target = f"{key}:2,{''.join(sorted(new))}"
                    if sub != "cur" or target != name:
                        os.rename(os.path.join(self.path, sub, name),
                                  os.path.join(self.path, "cur", target))
                        self._files[key] = ("cur", target)
                    return _flags_from_info("".join(sorted(new)), self._keywords)

                try:
                    before = self._path_of(uid)[2]
                    new_flags = self._retry(uid, rename)
                except NoSuchMessage:
                    continue
                assert isinstance(new_flags, frozenset)
                result[uid] = new_flags
                if _flags_from_info(_split_name(before)[1], self._keywords) != new_flags:
                    changed[uid] = new_flags
            if changed:
                self._emit(Change("flags", tuple(sorted(changed)), changed, origin=self))
        return result

    def set_flags(self, uid: int, flags: Iterable[str]) -> frozenset[str]:
        """Replace the flags of ``uid``; returns them. NoSuchMessage if it is gone."""
        return self._one(uid, flags, "set")

    def add_flags(self, uid: int, flags: Iterable[str]) -> frozenset[str]:
        """Add ``flags`` to ``uid``; returns its flags now."""
        return self._one(uid, flags, "add")

    def remove_flags(self, uid: int, flags: Iterable[str]) -> frozenset[str]:
        """Take ``flags`` off ``uid``; returns its flags now."""
        return self._one(uid, flags, "remove")

    def _one(self, uid: int, flags: Iterable[str], mode: str) -> frozenset[str]:
        result = self.store_flags([uid], flags, mode)
        if uid not in result:
            raise NoSuchMessage(f"no message with UID {uid} in {self.name}")
        return result[uid]

    # ---- append, expunge, copy, move

    def append(self, data: bytes, flags: Iterable[str] = (), date: float | None = None) -> int:
        """Add a message with ``flags`` and internal ``date`` (POSIX seconds; now if None);
        returns its UID. Written to tmp, fsynced, then renamed into cur: all or nothing.
        Listeners hear ``"exists"`` with the UID."""
        return self._add([(data, None, flags, date)])[0]

    def _add(self, items: list[tuple[bytes | None, str | None, Iterable[str], float | None]],
             ) -> list[int]:
        """Write messages (bytes, or the path of a file to link or copy) and give them UIDs."""
        uids: list[int] = []
        with self._locked():
            self._ensure()
            self._read_uidlist()
            staged: list[tuple[str, str, str]] = []
            try:
                for data, source, flags, date in items:
                    letters = self._letters(flags, create=True)
                    if source is None:
                        key = self._unique_name(data)
                    else:  # a copy keeps the sizes its name told
                        sizes = re.search(r",S=\d+,W=\d+$", os.path.basename(source)
                                          .partition(":")[0])
                        key = self._unique_name() + (sizes.group(0) if sizes else "")
                    if source is None:
                        assert data is not None
                        tmp = self._write_tmp(key, data, date)
                    else:
                        tmp = os.path.join(self.path, "tmp", key)
                        try:
                            os.link(source, tmp)
                        except OSError:
                            shutil.copy2(source, tmp)
                        if date is not None:
                            os.utime(tmp, (date, date))
                    staged.append((tmp, key, f"{key}:2,{letters}"))
            except BaseException:
                for tmp, _, _ in staged:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                raise
            for tmp, key, name in staged:
                os.rename(tmp, os.path.join(self.path, "cur", name))
                uid = self._uidnext
                self._uidnext += 1
                self._uid_of[key] = uid
                self._key_of[uid] = key
                self._files[key] = ("cur", name)
                uids.append(uid)
            self._write_uidlist()
            if uids:
                self._emit(Change("exists", tuple(uids), origin=self))
        return uids

    def begin_append(self) -> PendingMessage:
        """A message to be written a piece at a time (an IMAP APPEND's big literal) into
        this folder's ``tmp``: ``write(chunk)``, then ``commit(folder, flags, date)`` puts
        it into ``folder`` (one of this user's: the same disk) and returns its UID, or
        ``abort()`` removes it. Nothing is seen in any folder before the commit."""
        return PendingMessage(self)

    def remove(self, uids: Iterable[int]) -> list[int]:
        """Delete the messages ``uids`` whatever their flags; returns the UIDs removed."""
        return self._remove(uids, only_deleted=False)

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """Remove the messages marked ``\\Deleted`` (only those among ``uids``, if given:
        UID EXPUNGE); returns their UIDs, ascending. Listeners hear ``"expunge"``."""
        return self._remove(uids, only_deleted=True)

    def _remove(self, uids: Iterable[int] | None, only_deleted: bool) -> list[int]:
        removed = []
        with self._locked():
            current = self._sync()
            chosen = None if uids is None else set(uids)
            for info in current:
                if chosen is not None and info.uid not in chosen:
                    continue
                if only_deleted and "\\Deleted" not in info.flags:
                    continue
                sub, name = self._files[info.key]
                try:
                    os.unlink(os.path.join(self.path, sub, name))
                except FileNotFoundError:
                    pass
                del self._files[info.key]
                del self._uid_of[info.key]
                del self._key_of[info.uid]
                removed.append(info.uid)
            if removed:
                self._write_uidlist()
                self._emit(Change("expunge", tuple(removed), origin=self))
        return removed

    def copy(self, uids: Iterable[int], target: Maildir) -> dict[int, int]:
        """Copy messages (bytes, flags, date) into ``target``; returns old UID -> new UID
        (ascending, as UIDPLUS's COPYUID wants). UIDs that do not exist are skipped."""
        items: list[tuple[bytes | None, str | None, Iterable[str], float | None]] = []
        olds = []
        for uid in sorted(set(uids)):
            try:
                info = self.get(uid)
            except NoSuchMessage:
                continue
            items.append((None, info.path, info.flags, info.internal_date))
            olds.append(uid)
        news = target._add(items) if items else []
        return dict(zip(olds, news, strict=True))

    def move(self, uids: Iterable[int], target: Maildir) -> dict[int, int]:
        """Copy then remove here (MOVE); returns old UID -> new UID."""
        mapping = self.copy(uids, target)
        self.remove(mapping)
        return mapping

    # ---- POP3's exclusive lock

    def lock_session(self, owner: str = "a session") -> SessionLock:
        """Take the folder for one session; MailboxLocked if another holds it (here or in
        another process). The lock goes with :meth:`SessionLock.release` or the process."""
        path = os.path.join(self.path, SESSION_LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _session_holders.get(self._real, "another process")
            raise MailboxLocked(errno.EWOULDBLOCK,
                                f"{self.name} of {self.root!r} is in use by {holder}") from None
        _session_holders[self._real] = owner
        return SessionLock(self._real, fd, owner)

    # ---- notification

    def subscribe(self, callback: Callable[[Change], object], *, own: bool = False,
                  ) -> Subscription:
        """Tell ``callback(change)`` of changes to this folder made in this process
        (through other Maildir objects, or through this one too with ``own=True``)."""
        sub = Subscription(self._real, callback, self, own)
        _listeners.setdefault(self._real, []).append(sub)
        return sub

    # ---- folders

    def _folder_path(self, name: str) -> str:
        name = _check_folder_name(name)
        return self.root if name == "INBOX" else os.path.join(self.root, "." + name)

    def folder(self, name: str, create: bool = False) -> Maildir:
        """The user's folder ``name`` (``INBOX`` is the root); FolderError if it is missing
        (unless ``create``)."""
        name = _check_folder_name(name)
        path = self._folder_path(name)
        if not os.path.isdir(os.path.join(path, "cur")):
            if not create:
                raise FolderError(errno.ENOENT, f"no folder {name!r}")
            return self.create_folder(name)
        return Maildir(path, create=False, root=self.root, name=name, fsync=self.fsync)

    def create_folder(self, name: str) -> Maildir:
        """Make the folder ``name`` (``Archive.2024`` is ``.Archive.2024``); FolderError if
        it exists or the name is not allowed."""
        name = _check_folder_name(name)
        path = self._folder_path(name)
        if name == "INBOX" or os.path.exists(path):
            raise FolderError(errno.EEXIST, f"folder {name!r} exists already")
        staging = os.path.join(self.root, f"..creating.{os.getpid()}.{next(_serial)}")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(staging, sub), mode=0o700, exist_ok=True)
        with open(os.path.join(staging, "maildirfolder"), "wb"):
            pass
        try:
            os.rename(staging, path)
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise FolderError(e.errno, f"cannot create folder {name!r}: {e.strerror}") from e
        return Maildir(path, create=False, root=self.root, name=name, fsync=self.fsync)

    def delete_folder(self, name: str) -> None:
        """Remove the folder ``name`` and its messages (not its children); INBOX cannot go."""
        name = _check_folder_name(name)
        if name == "INBOX":
            raise FolderError(errno.EPERM, "INBOX cannot be deleted")
        path = self._folder_path(name)
        if not os.path.isdir(path):
            raise FolderError(errno.ENOENT, f"no folder {name!r}")
        # renamed away first, so no one sees a half-deleted folder
        gone = os.path.join(self.root, f"..deleting.{os.getpid()}.{next(_serial)}")
        os.rename(path, gone)
        shutil.rmtree(gone, ignore_errors=True)

    def rename_folder(self, old: str, new: str) -> None:
        """Rename folder ``old`` (and its children) to ``new``; renaming INBOX moves its
        messages into a new folder ``new`` and leaves INBOX empty (as IMAP wants)."""
        old = _check_folder_name(old)
        new = _check_folder_name(new)
        if new == "INBOX":
            raise FolderError(errno.EEXIST, "folder 'INBOX' exists already")
        if os.path.exists(self._folder_path(new)):
            raise FolderError(errno.EEXIST, f"folder {new!r} exists already")
        if old == "INBOX":
            inbox = Maildir(self.root, create=False, root=self.root, name="INBOX")
            inbox.move([m.uid for m in inbox.messages()], self.create_folder(new))
            return
        if new.startswith(old + "."):
            raise FolderError(errno.EINVAL, f"cannot move {old!r} inside itself")
        moving = [n for n in self.list_folders() if n == old or n.startswith(old + ".")]
        if not moving:
            raise FolderError(errno.ENOENT, f"no folder {old!r}")
        for name in sorted(moving, key=len):
            target = new + name[len(old):]
            os.rename(self._folder_path(name), self._folder_path(target))

    def list_folders(self) -> list[str]:
        """The user's folder names: INBOX first, then the others sorted."""
        names = []
        with os.scandir(self.root) as it:
            for entry in it:
                n = entry.name
                if (n.startswith(".") and n not in (".", "..") and not n.startswith("..")
                        and os.path.isdir(os.path.join(entry.path, "cur"))):
                    names.append(n[1:])
        return ["INBOX", *sorted(names)]

    # ---- subscriptions (IMAP's SUBSCRIBE and LSUB), in ROOT/subscriptions as Dovecot has it

    def subscribed_folders(self) -> list[str]:
        """The names in the user's subscription list (they need not exist), sorted."""
        try:
            with open(os.path.join(self.root, SUBSCRIPTIONS), encoding="utf-8") as f:
                return sorted({line.rstrip("\n") for line in f if line.strip()})
        except FileNotFoundError:
            return []

    def set_subscribed(self, name: str, subscribed: bool = True) -> None:
        """Add ``name`` to the subscription list (or take it off, with False)."""
        name = _check_folder_name(name)
        path = os.path.join(self.root, SUBSCRIPTIONS)
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            names = set(self.subscribed_folders())
            if subscribed:
                names.add(name)
            else:
                names.discard(name)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(n + "\n" for n in sorted(names))
            os.rename(tmp, path)
        finally:
            os.close(fd)
