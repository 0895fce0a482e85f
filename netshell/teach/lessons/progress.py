"""Where a person is in the lessons, kept in ``$XDG_STATE_HOME/netshell/lessons.json``.

The file is a JSON object: ``{"version": 1, "current": N or null, "lessons": {"N":
{"step": S, "done": bool}}}`` (``step`` counts the steps passed). It is written atomically
(a temporary file, then a rename), so a crash never leaves half a file. A file that cannot
be read as that (bad JSON, another shape) is reported once, set aside as
``lessons.json.corrupt`` and replaced; a file that cannot be written is reported and the
progress is kept in memory for the session. Nothing here raises.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
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
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing saved yet (a path that cannot be written is told on saving)
        except OSError as e:
            self.warn(f"lessons: cannot read {self.path} ({e.strerror or e}); "
                      "progress starts afresh")
            return
        try:
            data = json.loads(text)
            current = data.get("current")
            lessons = {int(k): {"step": int(v["step"]), "done": bool(v["done"])}
                       for k, v in data["lessons"].items()}
            if current is not None and not isinstance(current, int):
                raise ValueError("current is not a lesson number")
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            kept = self.path.with_name(self.path.name + ".corrupt")
            try:
                os.replace(self.path, kept)
                where = f"set aside as {kept}"
            except OSError:
                where = "left as it is"
            self.warn(f"lessons: {self.path} was not a progress file ({type(e).__name__}: "
                      f"{e}); {where}, and progress starts afresh")
            self.save()
            return
        self.current = current
        self.lessons = lessons

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
        self.save()

    def save(self) -> None:
        """Write the file atomically; a failure is reported, never raised."""
        data = {"version": 1, "current": self.current,
                "lessons": {str(k): v for k, v in sorted(self.lessons.items())}}
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
