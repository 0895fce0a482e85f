"""The terminal progress bar that the shell draws for long transfers (``http.download``).

:class:`TerminalProgress` is a one-line bar redrawn in place on a terminal stream;
:func:`terminal_progress` makes one for a URL when standard error is a terminal, and
:func:`install` hands it to the protocol library as the default progress display of
``protocols.http.client.download`` (its ``make_progress`` hook). The protocol library
draws nothing itself: the bar is the shell's, and the prompt, ``netsh run`` and
``netsh --ipython`` install it when they build their namespace.
"""

from __future__ import annotations

import sys
import time
from types import ModuleType
from typing import IO

__all__ = ["TerminalProgress", "install", "terminal_progress"]


class TerminalProgress:
    """A one-line progress bar redrawn with "\\r" on a terminal stream (stderr by default).

    Call it with (received, total); ``finish()`` ends the line. Redraws at most ten times
    a second, and always for the last call.
    """

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 30) -> None:
        self.label = label if len(label) <= 40 else "..." + label[-37:]
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, received: int, total: int | None) -> None:
        now = time.monotonic()
        if self._drawn and now - self._last < 0.1 and received != total:
            return
        self._last = now
        self._drawn = True
        if total:
            done = min(received / total, 1.0)
            filled = int(done * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            line = f"{self.label} [{bar}] {done:4.0%} {_size(received)}/{_size(total)}"
        else:
            line = f"{self.label} {_size(received)}"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def terminal_progress(label: str) -> TerminalProgress | None:
    """A bar labelled ``label`` on standard error when it is a terminal, else None."""
    stream = sys.stderr
    if stream is not None and hasattr(stream, "isatty") and stream.isatty():
        return TerminalProgress(label, stream)
    return None


def install(http: ModuleType) -> None:
    """Make the terminal bar the default progress display of ``http`` (``protocols.http``)."""
    http.client.make_progress = terminal_progress
