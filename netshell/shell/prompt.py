"""The ``netsh`` prompt: prompt_toolkit on the reactor's loop, which never stops.

The reactor owns the asyncio loop; the prompt is one coroutine on it awaiting
``PromptSession.prompt_async`` inside ``patch_stdout``, so servers serve,
timers fire and Deferreds fire while the person types, and what they print
lands above an intact prompt. Ctrl-C: at the prompt it clears the line; during
an input that awaits it cancels that input's task; during plain code it raises
KeyboardInterrupt there. The reactor never stops on Ctrl-C. Ctrl-D or
``exit()`` closes listeners and connections (a bounded wait), says what it
closed, and leaves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import Completer, Completion, ThreadedCompleter
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyBindingsBase, merge_key_bindings
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

import netshell
from netshell.reactor import Reactor, install
from netshell.shell import chains, namespace, progress
from netshell.shell.console import Console, close_everything
from netshell.shell.display import human_bytes
from netshell.shell.keys import typing_bindings
from netshell.shell.lexer import python_lexer  # pygments loads after the first prompt
from netshell.shell.session import new_transcript, state_dir
from netshell.shell.tracebacks import ShortFormatter
from netshell.teach.watchdog import start_watchdog, stop_watchdog

__all__ = ["Prompt", "history_path", "run_prompt"]

log = logging.getLogger("netshell.shell")

#: Seconds Ctrl-D waits for connections to close before aborting them.
EXIT_GRACE = 5.0


def history_path() -> Path:
    return state_dir() / "history"


class _Exit(SystemExit):
    """Raised by the prompt's ``exit()``/``quit()`` (the builtin ones close stdin)."""


def _exit(code: Any = 0) -> None:
    raise _Exit(code)


class PromptLogHandler(logging.Handler):
    """Prints log records through the current ``sys.stdout``: above the prompt.

    With a ``console``, an error logged with its exception (an error in a protocol's
    callback, an unhandled failure in a Deferred) is shown as the console shows the
    errors of inputs (:class:`~netshell.shell.tracebacks.ShortFormatter`): without
    netshell's and asyncio's frames unless ``verbose(True)``; ``tb()`` then shows it in full.
    """

    def __init__(self, console: Any = None) -> None:
        super().__init__()
        self.console = console
        verbose = (lambda: console.verbose) if console is not None else (lambda: True)
        self.setFormatter(ShortFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S", verbose=verbose,
            namespace=console.namespace if console is not None else None))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # A request-log line says what it is already: it is printed as it is, after the
            # time of day when it has none of its own (the HTTP access log has).
            if record.name in namespace.REQUEST_LOGGERS and record.levelno == logging.INFO:
                text = record.getMessage()
                if record.name != namespace.ACCESS_LOGGER:
                    text = time.strftime("%H:%M:%S ", time.localtime(record.created)) + text
            else:
                if self.console is not None and record.exc_info and record.exc_info[1]:
                    self.console.last_error = record.exc_info[1]
                text = self.format(record)
            self.write(text, record)
        except Exception:
            self.handleError(record)

    def write(self, text: str, record: logging.LogRecord) -> None:
        """Show one record's ``text``: printed above the prompt."""
        progress.make_room()  # a progress bar being drawn: the line starts at the left
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


class NamespaceCompleter(Completer):
    """Names and attributes from the live namespace (jedi, which IPython brings)."""

    def __init__(self, ns: dict[str, Any]) -> None:
        self.ns = ns

    def get_completions(self, document: Any, complete_event: Any) -> Any:
        try:
            import jedi  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - jedi comes with IPython
            yield from self._plain(document)
            return
        try:
            script = jedi.Interpreter(document.text, [self.ns])
            line, column = document.cursor_position_row + 1, document.cursor_position_col
            found = script.complete(line, column)
        except Exception:  # jedi has bad days on odd input: fall back to plain names
            yield from self._plain(document)
            return
        for c in found:
            name = c.name_with_symbols
            typed = len(name) - len(c.complete) if c.complete is not None else 0
            if name.startswith("_") and not document.get_word_before_cursor().startswith("_"):
                continue
            yield Completion(name, start_position=-typed, display_meta=c.type)

    def _plain(self, document: Any) -> Any:
        import rlcompleter

        word = document.get_word_before_cursor(pattern=_DOTTED)
        completer = rlcompleter.Completer(self.ns)
        seen = set()
        for i in range(200):
            match = completer.complete(word, i)
            if match is None:
                break
            if match not in seen:
                seen.add(match)
                yield Completion(match, start_position=-len(word))


import re  # noqa: E402 - only the fallback completer needs it

_DOTTED = re.compile(r"[\w.]+")


class InputInterrupted(Exception):
    """An awaiting input that blocked the loop, stopped by a second Ctrl-C.

    An Exception, not KeyboardInterrupt: raised in an input's task, KeyboardInterrupt
    would stop the loop (and the prompt) with it.
    """


def _ignore_signal(signum: int, frame: Any) -> None:
    pass


def _blocked_hint() -> None:
    print("Still running: the input blocks the loop. Ctrl-C again interrupts it.", flush=True)


# asyncio's and selectors' code, and (for uvloop, whose loop is compiled) the reactor's
# run_until: a signal arriving in these finds the loop waiting or dispatching, not an input.
_LOOP_FILES = (
    os.path.dirname(asyncio.__file__),
    os.path.join(os.path.dirname(os.__file__), "selectors.py"),
    sys.modules[Reactor.__module__].__file__ or "",
)


def _in_the_loop(frame: Any) -> bool:
    """True if ``frame`` is the event loop's own code (waiting, or dispatching)."""
    return str(frame.f_code.co_filename).startswith(_LOOP_FILES)


class PromptConsole(Console):
    """A Console whose Ctrl-C handling fits a prompt on the reactor's loop."""

    #: Seconds after a first Ctrl-C with the input still running (the loop blocked) before
    #: the prompt says that a second Ctrl-C interrupts it.
    blocked_hint_after = 1.0

    def __init__(self, *a: Any, loop: asyncio.AbstractEventLoop, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.loop = loop
        self._hint: threading.Timer | None = None

    def idle(self) -> None:
        """SIGINT while no input runs: nothing stops (prompt_toolkit reads Ctrl-C as a key)."""
        signal.signal(signal.SIGINT, _ignore_signal)

    def before_plain(self) -> None:
        # Plain code runs on the loop's thread: Python's own handler raises
        # KeyboardInterrupt inside it.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def after_plain(self) -> None:
        self.idle()

    def task_started(self, task: asyncio.Task[Any]) -> None:
        # Python-level, so it runs even when the input blocks the loop (time.sleep...).
        # The first Ctrl-C cancels the input's task on the loop; if the input has not
        # yielded to the loop by the next one, that one interrupts it where it runs.
        presses = 0
        loop = self.loop

        def interrupt(signum: int, frame: Any) -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                print()  # the terminal echoed ^C without a newline
                loop.call_soon_threadsafe(task.cancel)
                # A thread, as the loop may be blocked: if the input is still running by
                # then, it is not giving the loop a turn, and the person is told what to do.
                self._hint = threading.Timer(self.blocked_hint_after, _blocked_hint)
                self._hint.daemon = True
                self._hint.start()
            elif frame is not None and not _in_the_loop(frame):
                raise InputInterrupted("Ctrl-C twice: the input was not giving the loop a turn")

        signal.signal(signal.SIGINT, interrupt)

    def task_finished(self, task: asyncio.Task[Any]) -> None:
        if self._hint is not None:
            self._hint.cancel()
            self._hint = None
        self.idle()


class Prompt:
    """The netsh prompt on ``reactor`` (whose loop must be running when :meth:`main` runs)."""

    def __init__(self, reactor: Reactor, log_level: int = logging.WARNING,
                 history: Path | None = None) -> None:
        self.reactor = reactor
        self.log_level = log_level
        self.history_file = history or history_path()
        self.show_toolbar = True
        self._pending = (0.0, 0)  # (when counted, how many): the count walks the heap
        self._pending_every = 1.0  # seconds between counts
        self.console: PromptConsole | None = None
        self.exit_code = 0

    # ---- the toolbar

    def toolbar(self, on: bool = True) -> None:
        """Show or hide the bottom toolbar (F2 toggles it too)."""
        self.show_toolbar = on

    def _pending_count(self) -> int:
        # The count walks the heap (reactor.pending_deferreds), on the loop's thread: on a
        # big heap that takes a while, so it is redone less often then, keeping the walk
        # under about 2% of the time.
        when, count = self._pending
        now = time.monotonic()
        if now - when >= self._pending_every:
            count = len(namespace.pending_deferreds(self.reactor))  # what deferreds() lists
            took = time.monotonic() - now
            self._pending_every = max(1.0, took * 50)
            self._pending = (now, count)
        return count

    def toolbar_text(self) -> Any:
        if not self.show_toolbar:
            return None
        r = self.reactor
        return (
            f" listeners {len(r.listeners)} | connections {len(r.connections)} | "
            f"pending Deferreds {self._pending_count()} | in {human_bytes(r.bytes_received)} | "
            f"out {human_bytes(r.bytes_sent)} | F2 hides"
        )

    # ---- key bindings

    def _bindings(self, console: Console) -> KeyBindingsBase:
        # Enter, Tab, Backspace, space and paste: netshell.shell.keys (typing and pasting).
        kb = KeyBindings()

        @kb.add("escape", "enter")
        def _(event: Any) -> None:
            event.current_buffer.validate_and_handle()

        @kb.add("f2")
        def _(event: Any) -> None:
            self.show_toolbar = not self.show_toolbar

        return merge_key_bindings([typing_bindings(console.is_complete), kb])

    # ---- running

    def banner(self) -> str:
        return (
            f"netsh {netshell.__version__} on Python {sys.version.split()[0]}, "
            f"loop: {self.reactor.loop_name}\n"
            "help() gives a short tour; Ctrl-D or exit() leaves."
        )

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        color = sys.stdout.isatty()
        transcript_path, transcript = new_transcript("prompt")
        console = PromptConsole({}, color=color, loop=loop, transcript_file=transcript)
        self.console = console
        ns = namespace.build(console)
        ns.update(exit=_exit, quit=_exit, toolbar=self.toolbar)
        chains.record()
        session: PromptSession[str] = PromptSession(
            message=lambda: f"[{console.count + 1}]> ",
            multiline=True,
            prompt_continuation=lambda width, line, soft: "." * (width - 1) + " ",
            lexer=python_lexer(),
            history=FileHistory(str(self.history_file)),
            auto_suggest=AutoSuggestFromHistory(),
            completer=ThreadedCompleter(NamespaceCompleter(ns)),
            complete_while_typing=False,
            bottom_toolbar=self.toolbar_text,
            refresh_interval=1.0,
            key_bindings=self._bindings(console),
            style=Style.from_dict({"bottom-toolbar": "noreverse bg:#303030 #d0d0d0"}),
            enable_history_search=False,
        )
        handler = PromptLogHandler(console)
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(self.log_level)
        request_logs = [logging.getLogger(name) for name in namespace.REQUEST_LOGGERS]
        old_levels = [logger.level for logger in request_logs]
        ns["log"](True)  # the requests an HTTP server answers, above the prompt
        # Says when a callback holds the loop (the inputs themselves are the prompt's work).
        start_watchdog(loop, own=[ns])
        try:
            print(self.banner())
            console.idle()
            await self._loop(session, console)
            await self.shutdown()
        finally:
            transcript.close()
            print(f"The session's transcript: {transcript_path}")
            root.removeHandler(handler)
            root.setLevel(old_level)
            for logger, level in zip(request_logs, old_levels, strict=True):
                logger.setLevel(level)
            ns["_helpers"].tracer.stop()
            stop_watchdog(loop)
            chains.stop_recording()
            console.close()
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return self.exit_code

    async def _loop(self, session: PromptSession[str], console: PromptConsole) -> None:
        while True:
            try:
                # Output while the prompt is shown goes above it; between prompts
                # (an input running) it goes straight to the terminal, in order.
                with patch_stdout(raw=True):
                    text = await session.prompt_async()
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                print()
                return
            finally:
                # prompt_toolkit removes its SIGINT handler, and ours with it.
                console.idle()
            if not text.strip():
                continue
            try:
                await console.run(text)
            except SystemExit as e:
                code = e.code
                if code is None:
                    self.exit_code = 0
                elif isinstance(code, int):
                    self.exit_code = code
                else:
                    print(code)
                    self.exit_code = 1
                return

    async def shutdown(self) -> None:
        """Close listeners and connections (waiting at most EXIT_GRACE), saying what closed."""
        await close_everything(self.reactor, EXIT_GRACE)


def run_prompt(log_level: int = logging.WARNING, use_uvloop: bool | None = None) -> int:
    """Start the prompt on a fresh reactor; return the exit code when the person leaves."""
    r = Reactor(use_uvloop=use_uvloop)
    install(r)
    asyncio.set_event_loop(r.loop)
    prompt = Prompt(r, log_level=log_level)
    main = r.loop.create_task(prompt.main())
    try:
        return r.run_until(main)
    except SystemExit as e:
        # exit() called by a callback (a timer, a protocol): it stops the loop at once.
        # Leave as Ctrl-D would: the prompt tidies up, then everything closes in order.
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        main.cancel()
        try:
            r.run_until(main)
        except BaseException:  # it was cancelled: what it says is no news
            pass
        if not r.closed:
            r.run_until(close_everything(r, EXIT_GRACE))
        return code
    finally:
        if not r.closed:
            r.close()
        asyncio.set_event_loop(None)
