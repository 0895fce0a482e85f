"""The progress bar that the shell draws for long transfers (``http.download``, FTP
transfers): on the terminal, or in Jupyter in the cell's output.

:class:`TerminalProgress` is a one-line bar redrawn in place on a terminal stream;
:func:`terminal_progress` makes one for a URL when standard error is a terminal, and
:func:`install` hands it to the protocol library as the default progress display of
``protocols.http.client.download`` (its ``make_progress`` hook). The protocol library
draws nothing itself: the bar is the shell's, and the prompt, ``netsh run`` and
``netsh --ipython`` install it when they build their namespace. Inside a Jupyter kernel
(:func:`in_kernel`) the bar is :class:`netshell.kernel.displays.NotebookProgress`
instead, an HTML ``<progress>`` updated in place.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import IO, Any

#: What the bars are to a transfer: called with (received, total); ``finish()`` at the end.
Progress = Callable[[int, Any], None]

__all__ = ["SHOW_AFTER", "TerminalProgress", "in_kernel", "install", "make_room", "progress_text",
           "terminal_progress"]


#: Seconds a transfer runs before :func:`terminal_progress`'s bar appears: one that is done
#: sooner (most at the prompt) leaves no bar behind.
SHOW_AFTER = 0.25

#: The bar on the screen now, if any: other output clears its line first (:func:`make_room`).
_shown: TerminalProgress | None = None


def make_room() -> None:
    """Clear the line of the bar being drawn, if one is, so a line printed next (a log line
    above the prompt) starts at the left; the bar is drawn again below it on its next update.
    """
    bar = _shown
    if bar is not None and bar._on_screen:
        bar.stream.write("\r\x1b[K")
        bar.stream.flush()
        bar._on_screen = False


class TerminalProgress:
    """A one-line progress bar redrawn with "\\r" on a terminal stream (stderr by default).

    Call it with (received, total); ``finish()`` ends the line. Redraws at most ten times
    a second, and always for the last call. With ``show_after``, nothing is drawn until the
    first call that many seconds after the first one.
    """

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 30,
                 show_after: float = 0.0) -> None:
        self.label = label if len(label) <= 40 else "..." + label[-37:]
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.show_after = show_after
        self._started: float | None = None
        self._last = 0.0
        self._drawn = False
        self._on_screen = False  # the bar's line is on screen (not cleared by make_room)
        self._line = ""

    def __call__(self, received: int, total: int | None) -> None:
        global _shown
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if now - self._started < self.show_after:
            return
        if self._on_screen and now - self._last < 0.1 and received != total:
            return
        self._last = now
        self._drawn = self._on_screen = True
        _shown = self
        line = progress_text(self.label, received, total, self.width)
        self._line = line
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        global _shown
        if _shown is self:
            _shown = None
        if self._drawn:
            # cleared for a line printed meanwhile: the bar's last state, once more, below it
            self.stream.write(("" if self._on_screen else "\r" + self._line + "\x1b[K") + "\n")
            self.stream.flush()
            self._on_screen = False


def progress_text(label: str, received: int, total: int | None, width: int = 30) -> str:
    """The bar's line: ``label [#####.....]  50% 1.0 KiB/2.0 KiB`` (``label 1.0 KiB`` when
    the size is not known)."""
    if total:
        done = min(received / total, 1.0)
        filled = int(done * width)
        bar = "#" * filled + "." * (width - filled)
        return f"{label} [{bar}] {done:4.0%} {_size(received)}/{_size(total)}"
    return f"{label} {_size(received)}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def in_kernel() -> bool:
    """True when running inside a Jupyter kernel (IPython's shell there has a ``kernel``).

    It imports nothing: without IPython loaded already, this is no kernel.
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def terminal_progress(label: str) -> Progress | None:
    """The shell's bar labelled ``label``: in the cell's output inside a Jupyter kernel
    (:class:`netshell.kernel.displays.NotebookProgress`, updated in place), on standard
    error when it is a terminal; else None."""
    if in_kernel():
        from netshell.kernel.displays import NotebookProgress

        return NotebookProgress(label, show_after=SHOW_AFTER)
    stream = sys.stderr
    if stream is not None and hasattr(stream, "isatty") and stream.isatty():
        return TerminalProgress(label, stream, show_after=SHOW_AFTER)
    return None


def install(module: ModuleType) -> None:
    """Make the terminal bar the default progress display of a protocol package whose client
    draws one (``protocols.http``, ``protocols.ftp``: their ``client.make_progress``)."""
    module.client.make_progress = terminal_progress
