"""Sessions as code: transcripts (JSON lines), ``save()`` as a cell-form script, ``netsh diff``.

A transcript holds one JSON object per line: a ``session`` header, then an
``input`` entry per input that ran (source, output, error, time) and a ``note``
entry per Deferred note. The prompt writes one per session under the XDG state
directory; ``netsh run --transcript`` writes the same format, so a replay can be
compared with the original session by :func:`diff`.

Example::

    >>> entries = [
    ...     {"type": "input", "n": 1, "input": "x = 1", "kind": "code", "error": None},
    ...     {"type": "input", "n": 2, "input": "conns()", "kind": "inspect", "error": None},
    ...     {"type": "input", "n": 3, "input": "1/0", "kind": "code", "error": "ZeroDivisionError"},
    ... ]
    >>> print(script_text(entries, stamp="2026-11-24 12:00"), end="")
    # netsh session saved 2026-11-24 12:00
    # run it again with: netsh run FILE
    <BLANKLINE>
    # %%
    x = 1
    <BLANKLINE>
    # %%
    # conns()
"""

from __future__ import annotations

import ast
import io
import itertools
import json
import os
import re
import time
import tokenize
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import netshell

__all__ = [
    "diff",
    "load",
    "new_transcript",
    "save",
    "script_text",
    "split_cells",
    "state_dir",
]

CELL = "# %%"


def state_dir() -> Path:
    """Where netsh keeps history and transcripts: ``$XDG_STATE_HOME/netshell``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    path = Path(base) / "netshell"
    path.mkdir(parents=True, exist_ok=True)
    return path


def header(kind: str) -> str:
    """The first line of a transcript: what wrote it (``prompt``, ``run``...) and when."""
    entry = {"type": "session", "kind": kind, "version": netshell.__version__,
             "time": time.time()}
    return json.dumps(entry) + "\n"


def new_transcript(kind: str = "prompt") -> tuple[Path, Any]:
    """Open a new transcript file in the state directory; returns (path, file)."""
    folder = state_dir() / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"
    f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the session
    f.write(header(kind))
    f.flush()
    return path, f


def load(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of a transcript file (ValueError naming the line if one is not JSON)."""
    entries = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a transcript (not UTF-8 text: {e.reason})") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {i}: not a transcript entry: {e}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ValueError(f"{path}, line {i}: not a transcript entry (an object with a type)")
        kind = entry["type"]
        if (kind == "input" and not isinstance(entry.get("input"), str)) or (
            kind == "note" and not isinstance(entry.get("text"), str)
        ):
            field = "input" if kind == "input" else "text"
            raise ValueError(f"{path}, line {i}: a {kind} entry without its {field!r}")
        entries.append(entry)
    return entries


def script_text(entries: Iterable[dict[str, Any]], stamp: str | None = None) -> str:
    """The inputs that ran without error, as a cell-form script; inspections as comments."""
    stamp = stamp or time.strftime("%Y-%m-%d %H:%M")
    out = [f"# netsh session saved {stamp}", "# run it again with: netsh run FILE"]
    for e in entries:
        if e.get("type") != "input" or e.get("error"):
            continue
        source = _without_blank_indents(e["input"])
        if e.get("kind") == "inspect":
            source = "\n".join(f"# {line}" if line else "#" for line in source.split("\n"))
        out += ["", CELL, source]
    return "\n".join(out) + "\n"


def _without_blank_indents(source: str) -> str:
    """``source`` without the whitespace-only lines auto-indent leaves (made empty) and
    without trailing blank lines, unless that would change what the code means (a
    whitespace-only line inside a multi-line string stays as it was typed).

    Example::

        >>> _without_blank_indents("class A:\\n    x = 1\\n    \\n    y = 2\\n    ")
        'class A:\\n    x = 1\\n\\n    y = 2'
    """
    cleaned = "\n".join("" if not line.strip() else line for line in source.split("\n"))
    cleaned = cleaned.strip("\n")
    try:
        same = ast.dump(ast.parse(cleaned)) == ast.dump(ast.parse(source))
    except SyntaxError:
        same = False
    return cleaned if same else source.rstrip("\n")


def save(entries: Iterable[dict[str, Any]], path: str | os.PathLike[str] | None = None) -> Path:
    """Write :func:`script_text` to ``path`` (default ``session-YYYYmmdd-HHMMSS.py``)."""
    target = Path(path) if path is not None else Path(
        f"session-{time.strftime('%Y%m%d-%H%M%S')}.py"
    )
    target.write_text(script_text(entries), encoding="utf-8")
    return target


def split_cells(source: str) -> list[tuple[int, str]] | None:
    """A cell-form script's cells as (first line number, source); None if it has no cells.

    Text before the first marker is a cell of its own when it holds code.
    """
    lines = source.splitlines(True)
    starts = _cell_markers(source, lines)
    if not starts:
        return None
    cells = []
    bounds = [-1, *starts, len(lines)]
    for a, b in itertools.pairwise(bounds):
        body = lines[a + 1 : b]
        text = "".join(body)
        if any(line.strip() and not line.lstrip().startswith("#") for line in body):
            cells.append((a + 2, text))
    return cells


def _cell_markers(source: str, lines: list[str]) -> list[int]:
    """Indexes of the lines that are ``# %%`` comments (not text inside a string)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Not Python a tokenizer can read to the end: the lines as they are.
        return [i for i, line in enumerate(lines) if line.lstrip().startswith(CELL)]
    return [
        t.start[0] - 1
        for t in tokens
        if t.type == tokenize.COMMENT and t.string.startswith(CELL)
        and not lines[t.start[0] - 1][: t.start[1]].strip()
    ]


# ---- diff

_NORMALISE = [
    (re.compile(r"Deferred #\d+"), "Deferred #N"),
    (re.compile(r"\b_d\d+\b"), "_dN"),
    (re.compile(r"#\d+\b"), "#N"),
    (re.compile(r"((?:\d{1,3}\.){3}\d{1,3}|localhost|\]|::1):\d{1,5}\b"), r"\1:PORT"),
    (re.compile(r"\b(tcp6?|udp6?|tls):\d{1,5}(?![.\d])"), r"\1:PORT"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "Ns"),
    (re.compile(r"at 0x[0-9a-f]+"), "at 0x..."),
]


def normalise(text: str) -> str:
    """Text with what differs between runs (times, ports, numbers of things) replaced."""
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def _comparable(entries: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    inputs, notes = [], []
    for e in entries:
        if e.get("type") == "input" and e.get("kind") != "inspect" and not e.get("error"):
            inputs.append(normalise(e["input"].strip()))
            inputs.append(normalise(str(e.get("output") or "")).rstrip("\n"))
        elif e.get("type") == "note":
            notes.append(normalise(e["text"]))
    return inputs, sorted(notes)


def diff(a: Iterable[dict[str, Any]], b: Iterable[dict[str, Any]], names: tuple[str, str] = (
        "session", "replay")) -> list[str]:
    """Where two transcripts differ (unified diff lines); empty when they agree.

    Compared: the code inputs that ran without error with their output, in order,
    and the Deferred notes; ignored: times, ports, numbers of Deferreds and
    connections, inputs that only inspected.
    """
    ia, na = _comparable(a)
    ib, nb = _comparable(b)
    import difflib  # only diff() needs it: not loaded at start-up

    lines = list(difflib.unified_diff(_lines(ia), _lines(ib), *names, lineterm=""))
    lines += list(difflib.unified_diff(na, nb, f"{names[0]} notes", f"{names[1]} notes",
                                       lineterm=""))
    return lines


def _lines(items: list[str]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(items), 2):
        out += [f">>> {line}" for line in items[i].split("\n")]
        if items[i + 1]:
            out += items[i + 1].split("\n")
    return out
