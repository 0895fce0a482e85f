"""Where a person is in the lessons, kept in ``$XDG_STATE_HOME/netshell/lessons.json``.

The file is a JSON object: ``{"version": 1, "current": N or null, "lessons": {"N":
{"step": S, "done": bool}}}`` (``step`` counts the steps passed). It is written atomically
(a temporary file, then a rename), so a crash never leaves half a file. A file that cannot
be read as that (bad JSON, another shape) is reported once, set aside as
``lessons.json.corrupt`` and replaced; a file that cannot be written is reported and the
progress is kept in memory for the session. An entry with a wrong type or range (``"done":
"no"``, ``"step": -7``) is reported once and ignored; the rest of the file is kept.

Several prompts may share the file: each save reads what is on disk, updates only the
lesson that changed, and writes the whole back atomically, holding a lock
(``.lessons.lock`` beside it, ``flock``) from the read to the rename, so one prompt never
drops another's progress, even when both save at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["Progress", "progress_path"]


def progress_path() -> Path:
    """``$XDG_STATE_HOME/netshell/lessons.json`` (``~/.local/state`` when it is not set)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return Path(base) / "netshell" / "lessons.json"


class Progress:
    """The lessons' progress, read from ``path`` and written back on every change.

    ``warn(text)`` is told about a file that could not be read or written.
    """

    def __init__(self, path: Path | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.path = path or progress_path()
        self.warn = warn or print
        self.current: int | None = None
        self.lessons: dict[int, dict[str, Any]] = {}
        self._told: set[str] = set()  # the bad entries reported already
        self._load()

    def _load(self) -> None:
        data = self._read(report=True)
        if data is not None:
            self.current, self.lessons = data

    def _read(self, report: bool) -> tuple[int | None, dict[int, dict[str, Any]]] | None:
        """What the file holds now: (current, lessons), or None when there is nothing to
        read. With ``report``, a file that cannot be read is told, and a corrupt one set
        aside; bad entries are told once (per Progress) either way, and left out."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None  # nothing saved yet (a path that cannot be written is told on saving)
        except OSError as e:
            if report:
                self.warn(f"lessons: cannot read {self.path} ({e.strerror or e}); "
                          "progress starts afresh")
            return None
        try:
            data = json.loads(text)
            current = data.get("current")
            entries = data["lessons"]
            if not isinstance(entries, dict):
                raise ValueError("lessons is not an object")
            if current is not None and (not isinstance(current, int)
                                        or isinstance(current, bool)):
                raise ValueError("current is not a lesson number")
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            if not report:
                return None
            kept = self.path.with_name(self.path.name + ".corrupt")
            try:
                os.replace(self.path, kept)
                where = f"set aside as {kept}"
            except OSError:
                where = "left as it is"
            self.warn(f"lessons: {self.path} was not a progress file ({type(e).__name__}: "
                      f"{e}); {where}, and progress starts afresh")
            self._write(None, {})
            return None
        lessons: dict[int, dict[str, Any]] = {}
        for k, v in entries.items():
            entry = _valid(k, v)
            if entry is None:
                bad = f"{k}: {json.dumps(v)}"
                if bad not in self._told:
                    self._told.add(bad)
                    self.warn(f"lessons: {self.path} has a bad entry ({bad[:80]}); "
                              "it is ignored")
                continue
            lessons[entry[0]] = entry[1]
        return current, lessons

    def status(self, number: int, steps: int) -> str:
        """``done``, ``started (step S of N)`` or ``not started``."""
        p = self.lessons.get(number)
        if p is None:
            return "not started"
        if p["done"]:
            return "done"
        return f"started (step {min(p['step'] + 1, steps)} of {steps})"

    def step(self, number: int) -> int:
        """How many steps of lesson ``number`` were passed (0 if not started)."""
        return self.lessons.get(number, {}).get("step", 0)

    def set(self, number: int, step: int, done: bool = False) -> None:
        """Lesson ``number`` has ``step`` steps passed (and is ``done``); it is current."""
        self.lessons[number] = {"step": step, "done": done}
        self.current = number
        self.save(number)

    def save(self, number: int | None = None) -> None:
        """Write the file atomically, merged with what is on disk now: only lesson
        ``number``'s entry (and ``current``) is this Progress's; the others are the file's.
        A failure is reported, never raised."""
        with self._locked():
            on_disk = self._read(report=False)
            if on_disk is not None:
                merged = dict(on_disk[1])
                if number is not None and number in self.lessons:
                    merged[number] = self.lessons[number]
                self.lessons = merged
            self._write(self.current, self.lessons)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock of the progress file's folder (others' saves wait). Without a
        lock to be had (no fcntl, a folder that cannot be written), go on unlocked: the
        write reports that folder's trouble itself."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            yield
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(".lessons.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # the lock goes with it

    def _write(self, current: int | None, lessons: dict[int, dict[str, Any]]) -> None:
        data = {"version": 1, "current": current,
                "lessons": {str(k): v for k, v in sorted(lessons.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".lessons-", suffix=".json",
                                       dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1)
                    f.write("\n")
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as e:
            self.warn(f"lessons: cannot write {self.path} ({e.strerror or e}); "
                      "progress is kept for this session only")


def _valid(key: Any, value: Any) -> tuple[int, dict[str, Any]] | None:
    """``(number, {"step": S, "done": D})`` for a well-formed entry, else None: the number a
    positive integer, ``step`` a whole number not below 0, ``done`` true or false."""
    if not isinstance(key, str) or not key.isdigit() or int(key) < 1:
        return None
    if not isinstance(value, dict):
        return None
    step, done = value.get("step"), value.get("done")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return None
    if not isinstance(done, bool):
        return None
    return int(key), {"step": step, "done": done}
