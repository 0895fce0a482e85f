"""``netsh --ipython``: the prompt's namespace in IPython's terminal, reactor running while idle.

IPython runs its prompt on its own asyncio loop when ``%gui asyncio`` is on,
and runs awaiting cells (``autoawait``) on that same loop; the reactor adopts
it, so servers serve and timers fire at the idle prompt. Plain cells run with
the loop stopped, as IPython does. An unfired Deferred that is displayed is
bound to ``_dN`` and watched, as at the netsh prompt. :func:`load_into` is
what a Jupyter kernel will reuse.

Errors look as they do at the netsh prompt: a common mistake on one line,
other errors without netshell's and asyncio's frames (``verbose(True)`` gives
IPython's own full tracebacks, ``tb()`` the last error in full). Ctrl-C during
an awaiting cell cancels it and prints "Cancelled" (:func:`run_cell_coroutine`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import Any

from netshell.defer import Deferred
from netshell.reactor import Reactor, install
from netshell.shell import chains, namespace
from netshell.shell.console import Console, close_everything, input_entry
from netshell.shell.prompt import EXIT_GRACE, PromptLogHandler
from netshell.shell.session import new_transcript
from netshell.shell.tracebacks import format_error

__all__ = ["load_into", "run_cell_coroutine", "run_ipython"]


def load_into(shell: Any, reactor: Reactor, transcript_file: Any = None) -> Console:
    """Put the netsh namespace and displays into an IPython ``shell`` running ``reactor``.

    Each cell is recorded in the console's transcript (and ``transcript_file``, if given).
    """
    console = Console(shell.user_ns, color=True, name="ipython", transcript_file=transcript_file)
    namespace.build(console)
    chains.record()
    plain = shell.display_formatter.formatters["text/plain"]

    def show_deferred(d: Deferred[Any], p: Any, cycle: bool) -> None:
        if not d.called or d.waiting_on is not None:
            shell.user_ns[f"_d{d.number}"] = d
            console.notes.watch(d)
        p.text(repr(d))

    plain.for_type(Deferred, show_deferred)

    # IPython runs the cells itself: record each in the console's transcript, so that
    # history() and save() work here as at the netsh prompt.
    started: dict[str, float] = {}

    def pre_run_cell(info: Any) -> None:
        started["time"] = time.time()

    def post_run_cell(result: Any) -> None:
        source = result.info.raw_cell
        if not source.strip():
            return
        console.count += 1
        error = result.error_before_exec or result.error_in_exec
        if error is not None:
            console.last_error = error  # a SyntaxError too, which IPython shows itself: tb()
        value = result.result
        begun = started.pop("time", time.time())
        console.record(input_entry(
            console.count,
            source,
            started=begun,
            output="" if value is None else repr(value) + "\n",
            error=None if error is None else repr(error),
        ))

    shell.events.register("pre_run_cell", pre_run_cell)
    shell.events.register("post_run_cell", post_run_cell)
    show_errors_shortly(shell, console)
    return console


# A cell's frame, named as IPython names it in its own tracebacks.
_CELL = re.compile(r'File "<ipython-input-(\d+)-[0-9a-f]+>", line (\d+)')


def show_errors_shortly(shell: Any, console: Console) -> None:
    """Make ``shell`` (IPython) show errors as the netsh prompt does.

    A common mistake is one line, any other error leaves out netshell's, asyncio's
    and IPython's frames; with ``verbose(True)`` IPython shows its own full
    traceback. A cancelled cell (Ctrl-C during an await) prints "Cancelled". The
    error is kept for ``tb()``.
    """

    def handler(ip: Any, etype: Any, value: BaseException, tb: Any,
                tb_offset: int | None = None) -> None:
        if isinstance(value, asyncio.CancelledError):
            print("Cancelled")
            return None
        console.last_error = value
        if isinstance(value, SyntaxError):
            ip.showsyntaxerror()  # IPython's own, caret and all (a failed parse comes here)
            return None
        if console.verbose:
            ip.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return None
        text = _CELL.sub(r"Cell In[\1], line \2", format_error(value, namespace=ip.user_ns))
        ip._showtraceback(etype, value, text.splitlines())  # as IPython shows one: stdout
        return None

    shell.set_custom_exc((Exception, asyncio.CancelledError), handler)


def run_cell_coroutine(coro: Any) -> Any:
    """IPython's loop runner for awaiting cells: the cell runs as a task on the loop.

    Ctrl-C cancels the task and waits for it: the cell's ``await`` sees
    CancelledError, which the error handler shows as "Cancelled", and the cell
    ends there. (IPython's own runner would leave the cell suspended: a
    KeyboardInterrupt traceback through asyncio now, GeneratorExit tracebacks
    when the session ends.)
    """
    from IPython.core.async_helpers import get_asyncio_loop

    loop = get_asyncio_loop()
    task = loop.create_task(coro)
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        if task.done():
            raise  # interrupted while the cell's own code ran: IPython says so
        if sys.stdout.isatty():
            print()  # the terminal echoed ^C: "Cancelled" goes on a line of its own
        task.cancel()
        return loop.run_until_complete(task)


def run_ipython(log_level: int = logging.WARNING) -> int:
    """Start IPython's terminal with the netsh namespace; return the exit code."""
    from IPython.core.async_helpers import get_asyncio_loop
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from prompt_toolkit.patch_stdout import patch_stdout

    class NetshIPython(TerminalInteractiveShell):
        """IPython's terminal whose prompt awaits on the reactor's loop.

        IPython 8 (before 8.18) relies on prompt_toolkit guessing that loop from the
        caller's frame; newer prompt_toolkit guesses otherwise and runs the prompt on a
        loop of its own, so the reactor would stand still while idle. Awaiting the
        prompt on the loop ourselves works with every version.
        """

        def prompt_for_code(self) -> str:
            default = self.rl_next_input or ""
            self.rl_next_input = None
            session = self.pt_app
            assert session is not None  # made by IPython's init_prompt_toolkit_cli
            with patch_stdout(raw=True):
                text: str = get_asyncio_loop().run_until_complete(
                    session.prompt_async(default=default, **self._extra_prompt_options())
                )
            return text

    shell = NetshIPython.instance(banner2="netsh namespace loaded: help() gives a tour\n")
    shell.confirm_exit = False  # Ctrl-D leaves, as at the netsh prompt
    shell.autoawait = True
    shell.loop_runner = run_cell_coroutine
    shell.enable_gui("asyncio")
    loop = get_asyncio_loop()
    r = Reactor(loop)
    install(r)
    transcript_path, transcript = new_transcript("ipython")
    console = load_into(shell, r, transcript)
    handler = PromptLogHandler(console)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(log_level)
    request_logs = [logging.getLogger(name) for name in namespace.REQUEST_LOGGERS]
    old_levels = [logger.level for logger in request_logs]
    shell.user_ns["log"](True)  # the requests an HTTP server answers, as at the netsh prompt
    helpers = shell.user_ns["_helpers"]  # IPython empties user_ns on the way out
    try:
        shell.mainloop()
    finally:
        root.removeHandler(handler)
        for logger, level in zip(request_logs, old_levels, strict=True):
            logger.setLevel(level)
        helpers.tracer.stop()
        chains.stop_recording()
        console.close()
        if not r.closed:
            loop.run_until_complete(close_everything(r, EXIT_GRACE))
        transcript.close()
        print(f"The session's transcript: {transcript_path}")
    del console
    return 0
