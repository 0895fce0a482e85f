"""The mail store the SMTP, POP3 and IMAP servers share: Maildir folders on disk.

This module is the only mail code that touches the disk. A Maildir is a folder
with three folders inside: ``tmp`` (a message being written), ``new`` (delivered,
not yet seen by a reader) and ``cur`` (seen). A message is written whole into
``tmp`` under a unique name and then renamed into ``new``: a reader never sees half
a message, and a writer that dies leaves only a file in ``tmp``.

Example::

    box = Maildir("/tmp/mail/alice")      # made if missing
    key = box.deliver(b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
"""

from __future__ import annotations

import itertools
import os
import socket
import time

__all__ = ["Maildir", "MaildirError"]

_serial = itertools.count(1)


class MaildirError(OSError):
    """A Maildir that cannot be used: not a folder, or a write that failed."""


class Maildir:
    """One Maildir folder at ``path`` (made, with tmp/new/cur, if ``create`` and missing)."""

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.path = os.fspath(path)
        missing = [sub for sub in ("tmp", "new", "cur")
                   if not os.path.isdir(os.path.join(self.path, sub))]
        if missing:
            if not create:
                raise MaildirError(f"{self.path!r} is not a Maildir (no {', '.join(missing)})")
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(self.path, sub), mode=0o700, exist_ok=True)

    def deliver(self, data: bytes) -> str:
        """Write ``data`` (the message, as it goes on disk) into ``new``; return its key.

        Written to ``tmp`` and fsynced first, then renamed: all of it, or nothing."""
        key = self._unique_name()
        tmp = os.path.join(self.path, "tmp", key)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(self.path, "new", key))
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise MaildirError(e.errno, f"cannot deliver into {self.path!r}: {e.strerror}") from e
        return key

    @staticmethod
    def _unique_name() -> str:
        """``time.M<usec>P<pid>Q<serial>.host``: unique on this host (the Maildir convention)."""
        now = time.time()
        seconds = int(now)
        micro = int((now - seconds) * 1_000_000)
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        return f"{seconds}.M{micro}P{os.getpid()}Q{next(_serial)}.{host}"
