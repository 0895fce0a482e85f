"""Running what a person types: compile with top-level await, execute, display, record.

:class:`Console` is the part of the prompt that knows nothing about terminals:
the prompt (``netsh``), ``netsh run`` and a Jupyter kernel all drive one. Input
is compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``; a trailing expression is
displayed (``_`` holds it). Input that awaits runs as a task on the reactor's
loop (:meth:`Console.run` awaits it); other input runs directly. An unfired
Deferred that is displayed is bound to ``_dN`` and watched: a note is printed
when it fires.

Every input is recorded as a transcript entry (a dict, JSON-ready): its number,
source, output, error, start time and duration; notes are entries too.

Example::

    >>> from netshell import reactor
    >>> c = Console({})
    >>> entry = reactor.run_until(c.run("x = 6 * 7\\nx"))
    42
    >>> entry["output"], entry["error"]
    ('42\\n', None)
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import codeop
import inspect
import io
import json
import linecache
import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

from netshell.defer import Deferred
from netshell.shell import chains, progress
from netshell.shell.display import Table
from netshell.shell.hints import with_hint
from netshell.shell.tracebacks import format_error

__all__ = ["Console", "Input", "classify", "close_everything", "input_entry"]

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_HERE = __file__


class Input:
    """One input, compiled: ``body`` runs, then ``last`` (an expression) is displayed."""

    def __init__(self, source: str, filename: str, display_last: bool = True) -> None:
        self.source = source
        self.filename = filename
        tree = ast.parse(source, filename, "exec")
        self.tree = tree
        last: ast.Expr | None = None
        if display_last and tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop()  # type: ignore[assignment]
        self.body = compile(tree, filename, "exec", flags=_FLAGS)
        self.last = (
            compile(ast.Expression(last.value), filename, "eval", flags=_FLAGS)
            if last is not None
            else None
        )
        if last is not None:
            tree.body.append(last)
        flags = self.body.co_flags | (self.last.co_flags if self.last else 0)
        #: True if the input awaits at top level: it runs as a task
        self.awaits = bool(flags & inspect.CO_COROUTINE)


_LOOKING = frozenset({"conns", "listeners", "conn", "listener", "deferreds", "explain",
                      "history", "help", "save", "tb", "dir", "type", "repr", "print", "vars",
                      "len"})


def input_entry(
    n: int,
    source: str,
    *,
    started: float,
    output: str = "",
    error: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The transcript entry of one input: the one place such an entry is made.

    ``n`` is the input's number, ``started`` its start (``time.time()``); the
    duration is measured up to now. ``kind`` is ``classify(source)`` unless
    given; ``error`` is the text that names what went wrong, None when nothing
    did. The prompt, ``netsh run`` and the IPython extension all record their
    inputs with it (:meth:`Console.record`).

    Example::

        >>> e = input_entry(1, "conns()", started=0.0)
        >>> e["type"], e["kind"], e["output"], e["error"]
        ('input', 'inspect', '', None)
    """
    return {
        "type": "input",
        "n": n,
        "input": source,
        "kind": classify(source) if kind is None else kind,
        "output": output,
        "error": error,
        "time": started,
        "duration": round(time.time() - started, 6),
    }


def classify(source: str) -> str:
    """``"inspect"`` for input that only looks (bare names, inspection calls), else ``"code"``.

    ``save()`` keeps inspecting inputs as comments. An inspection whose arguments do
    something themselves (``print(await d)``, ``repr(x.pop())``) is code.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "code"
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Expr) and _only_looks(stmt.value)):
            return "code"
    return "inspect"


def _only_looks(node: ast.expr) -> bool:
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.Attribute):
        return _only_looks(node.value)
    if isinstance(node, ast.Subscript):
        return _only_looks(node.value) and _only_looks(node.slice)
    if isinstance(node, ast.Call):
        return (
            isinstance(node.func, ast.Name)
            and node.func.id in _LOOKING
            and all(_only_looks(arg) for arg in node.args)
            and all(_only_looks(k.value) for k in node.keywords)
        )
    return False


class _Tee(io.TextIOBase):
    """Writes through to the stream it replaces, and keeps a copy."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.parts: list[str] = []

    def write(self, s: str) -> int:
        self.parts.append(s)
        return self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.stream.fileno()


def _print(text: str) -> None:
    # A transfer's progress bar being drawn (a download running in the background) gets
    # out of the way first: the line starts at the left, the bar comes back below it.
    progress.make_room()
    print(text)


class Console:
    """Executes inputs in ``namespace`` on the current reactor's loop.

    ``out(text)`` shows a line (default: print to ``sys.stdout``, which the
    transcript captures while an input runs). ``color`` asks tables for
    ANSI colours. ``transcript_file``, if given, receives each entry as a
    JSON line as it happens.
    """

    def __init__(
        self,
        namespace: dict[str, Any],
        out: Callable[[str], None] | None = None,
        color: bool = False,
        name: str = "netsh",
        transcript_file: IO[str] | None = None,
        err: Callable[[str], None] | None = None,
    ) -> None:
        self.namespace = namespace
        self.out = out or _print
        #: where errors are shown (``netsh run`` sends them to stderr); default: ``out``
        self.err = err or self.out
        self.color = color
        self.name = name
        self.count = 0
        self.transcript: list[dict[str, Any]] = []
        self.transcript_file = transcript_file
        self.notes = chains.Notes(self._note)
        #: the task of the awaiting input running now, if any (Ctrl-C cancels it)
        self.task: asyncio.Task[Any] | None = None
        #: show errors with every frame (``verbose(True)``), not just the person's own
        self.verbose = False
        #: the last error an input raised (``tb()`` shows it in full)
        self.last_error: BaseException | None = None
        #: called with each input's transcript entry once it has run and been recorded (at
        #: the prompt, in ``netsh run``, after each IPython cell): what follows the person's
        #: inputs (a lesson's checks, the late-failure report) hooks in here
        self.after_input: list[Callable[[dict[str, Any]], None]] = []
        namespace.setdefault("__name__", "__main__")
        namespace.setdefault("__builtins__", builtins)

    def close(self) -> None:
        """Stop the notes: no Deferred shown here is watched any more (the session ends)."""
        self.notes.close()

    # ---- running

    def is_complete(self, source: str) -> bool:
        """True if ``source`` is a whole input (Enter runs it), False if it wants more lines.

        As IPython decides: an empty (or blank) last line ends a block; otherwise the input
        is whole when Python's parser finds nothing open (no bracket, string, backslash or
        block header waiting for its body) and its last line is not inside a block (not
        indented). An input with an error is whole: Enter runs it and the error is shown.
        """
        if not source.strip():
            return True
        lines = source.split("\n")
        if len(lines) > 1 and not lines[-1].strip():
            return True  # an empty line ends a block, as in the standard REPL
        try:
            # codeop knows what wants more lines (a lone decorator, an open string...).
            if _command_compiler()(source, "<input>", "exec") is None:
                return False
        except (SyntaxError, OverflowError, ValueError):
            return True  # an error: Enter runs it, and the error is shown
        # The last line inside a block: the block may go on (a blank line ends it).
        return lines[-1][:1] not in (" ", "\t")

    async def run(self, source: str, filename: str | None = None) -> dict[str, Any]:
        """Run one input; display its value; return (and record) its transcript entry.

        SystemExit (``exit()``) propagates; every other error is printed.
        ``filename`` names a real file the input comes from (for tracebacks).
        """
        started = time.time()
        self.count += 1
        number = self.count
        stdout = sys.stdout
        tee = _Tee(stdout)
        sys.stdout = tee
        error: BaseException | None = None
        try:
            try:
                item = Input(source, filename or self._filename(number, source))
            except SyntaxError as e:
                error = e
                self._show_syntax_error(e)
            else:
                try:
                    if item.awaits:
                        value = await self._run_task(item)
                    else:
                        value = self._run_plain(item)
                    self.display(value, number)
                except SystemExit:
                    raise
                except (Exception, KeyboardInterrupt, asyncio.CancelledError) as e:
                    error = e
                    self.show_error(e)
        finally:
            sys.stdout = stdout
            entry = input_entry(
                number,
                source.lstrip("\n") if filename else source,
                started=started,
                output="".join(tee.parts),
                error=None if error is None else _error_text(error, self.namespace),
                kind=classify(source),
            )
            self.record(entry)
        return entry

    def _filename(self, number: int, source: str) -> str:
        filename = f"<{self.name}-{number}>"
        lines = source.splitlines(True)
        if lines and not lines[-1].endswith("\n"):
            # As linecache reads a file: every line ends with a newline. traceback's
            # carets count on it (without it they stand one column to the right).
            lines[-1] += "\n"
        linecache.cache[filename] = (len(source), None, lines, filename)
        return filename

    def _run_plain(self, item: Input) -> Any:
        self.before_plain()
        try:
            exec(item.body, self.namespace)
            return eval(item.last, self.namespace) if item.last is not None else None
        finally:
            self.after_plain()

    async def _run_task(self, item: Input) -> Any:
        ns = self.namespace

        async def body() -> Any:
            try:
                r = eval(item.body, ns)
                if inspect.iscoroutine(r):
                    await r
                if item.last is None:
                    return None
                v = eval(item.last, ns)
                if inspect.iscoroutine(v):
                    v = await v
                return v
            except SystemExit as e:
                return _Exit(e)

        task = asyncio.get_running_loop().create_task(body())
        self.task = task
        self.task_started(task)
        try:
            value = await task
        finally:
            self.task = None
            self.task_finished(task)
        if isinstance(value, _Exit):
            raise value.exc
        return value

    # Hooks for the prompt: signal handling around the two ways of running.
    def before_plain(self) -> None: ...
    def after_plain(self) -> None: ...
    def task_started(self, task: asyncio.Task[Any]) -> None: ...
    def task_finished(self, task: asyncio.Task[Any]) -> None: ...

    # ---- showing

    def display(self, value: Any, number: int | None = None) -> None:
        """Show an input's value the way the prompt does, and keep it in ``_``."""
        if value is None:
            return
        self.namespace["_"] = value
        if isinstance(value, Deferred):
            if not value.called or value.waiting_on is not None:
                self.namespace[f"_d{value.number}"] = value
                self.notes.watch(value)
            else:
                # Shown failed ("<Deferred #3 failed: ...>"): the person has seen the
                # failure, as a note shows it; it is neither reported late nor logged
                # when collected.
                value.mark_failure_seen()
            self.out(repr(value))
        elif isinstance(value, Table):
            self.out(value.render(color=self.color))
        else:
            self.out(repr(value))

    def show_error(self, exc: BaseException) -> None:
        """Print ``exc`` as a person reads it: a common mistake on one line, any other
        error without the frames inside netshell and asyncio (all of them when
        :attr:`verbose`); never the console's own frames. ``tb()`` shows it in full."""
        if isinstance(exc, asyncio.CancelledError):
            self.err("Cancelled")
            return
        self.last_error = exc
        self.err(format_error(exc, verbose=self.verbose, namespace=self.namespace, skip=_HERE))

    def full_error(self, exc: BaseException | None = None) -> str:
        """``exc`` (default: the last error) with every frame, as ``tb()`` shows it."""
        exc = exc if exc is not None else self.last_error
        if exc is None:
            return "(no error yet)"
        return format_error(exc, verbose=True, namespace=self.namespace, skip=_HERE)

    def _show_syntax_error(self, e: SyntaxError) -> None:
        self.last_error = e
        self.err("".join(traceback.format_exception_only(type(e), e)).rstrip("\n"))

    def _note(self, text: str) -> None:
        self.out(text)
        self.record({"type": "note", "text": text, "time": time.time()})

    # ---- the transcript

    def record(self, entry: dict[str, Any]) -> None:
        """Add ``entry`` (JSON-ready) to :attr:`transcript`, and write it to the transcript file.

        Inputs run elsewhere (a whole ``netsh run`` script, an IPython cell) are
        recorded with this and an :func:`input_entry`, in the prompt's format.
        """
        self.transcript.append(entry)
        if self.transcript_file is not None:
            self.transcript_file.write(json.dumps(entry) + "\n")
            self.transcript_file.flush()
        for f in list(self.after_input):
            try:
                f(entry)
            except Exception:
                logging.getLogger("netshell.shell").exception("Error in %r after an input", f)


def _command_compiler() -> codeop.CommandCompiler:
    compiler = codeop.CommandCompiler()
    compiler.compiler.flags |= _FLAGS
    return compiler


class _Exit:
    """SystemExit raised in an awaiting input, carried out of its task.

    A task that raises SystemExit stops the whole loop; the console must see it
    as it sees one from plain code, and let the caller leave gracefully.
    """

    def __init__(self, exc: SystemExit) -> None:
        self.exc = exc


def _error_text(e: BaseException, namespace: dict[str, Any] | None = None) -> str:
    if isinstance(e, asyncio.CancelledError):
        return "Cancelled"
    return with_hint("".join(traceback.format_exception_only(type(e), e)).strip(), e, namespace)



async def close_everything(reactor: Any, grace: float) -> None:
    """Stop ``reactor`` (hooks, listeners, connections: at most ``grace`` seconds each),
    printing what it closes."""
    listeners, connections = reactor.listeners, reactor.connections
    if listeners or connections:
        what = [f"listener #{x.number} ({x.address})" for x in listeners]
        if connections:
            what.append(_count(len(connections), "connection"))
        print("Closing " + ", ".join(what) + " ...")
    reactor.shutdown_timeout = grace
    started = time.monotonic()
    await reactor.stop()
    if listeners or connections:
        print(f"Closed {_count(len(listeners), 'listener')} and "
              f"{_count(len(connections), 'connection')} in {time.monotonic() - started:.2f}s.")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
