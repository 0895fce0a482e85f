"""The netsh prompt in IPython: ``netsh --ipython``, and ``%load_ext netshell`` anywhere.

:func:`load_into` is the one extension both use (``netsh --ipython`` and a Jupyter
kernel, through :mod:`netshell.kernel.extension`): the prompt's names in the
user namespace, its displays, its short errors, its request log and the
transcript that ``history()`` and ``save()`` read; :meth:`Loaded.unload` takes
all of it out again.

Where the reactor runs: in a Jupyter kernel, on the kernel's running asyncio
loop (bound on first use; no loop is ever made, run or stopped there). In
IPython's terminal, on IPython's own asyncio loop, which runs awaiting cells
(``autoawait``) and, with ``%gui asyncio`` (``netsh --ipython`` turns it on),
the idle prompt too. An unfired Deferred that is displayed is bound to ``_dN``
and watched, as at the netsh prompt.

Errors look as they do at the netsh prompt: a common mistake on one line,
other errors without netshell's and asyncio's frames (``verbose(True)`` gives
IPython's own full tracebacks, ``tb()`` the last error in full). Ctrl-C (an
interrupt, in Jupyter) during an awaiting cell cancels it and prints "Cancelled".
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from netshell import current, defer
from netshell.defer import Deferred
from netshell.reactor import Reactor, install
from netshell.shell import chains, namespace, progress
from netshell.shell.console import Console, close_everything, input_entry
from netshell.shell.prompt import EXIT_GRACE, PromptLogHandler
from netshell.shell.session import new_transcript
from netshell.shell.tracebacks import format_error
from netshell.teach.watchdog import start_watchdog, stop_watchdog

__all__ = ["Loaded", "bind_reactor", "current_cell", "load_into", "run_cell_coroutine",
           "run_ipython"]

#: The number of the cell whose work runs now: set as each cell starts, and carried by
#: everything the cell schedules (timed calls, tasks, threads, listeners), as ipykernel
#: carries the cell's output. None where no cell started the work (a foreign thread).
current_cell: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "netshell_current_cell", default=None
)


def _cell_where(failure: Any) -> str | None:
    """The cell a late failure's report names: the one whose work failed."""
    n = current_cell.get()
    return None if n is None else f"cell [{n}]"


def bind_reactor(shell: Any) -> Reactor | None:
    """The reactor for ``shell``'s session, bound to the loop its cells run on.

    A loop running now (``%load_ext`` from a cell, in Jupyter or an awaiting
    cell) gets its reactor (adopted). A Jupyter kernel whose loop does not run
    yet (the kernelspec loads the extension before the kernel starts) gets none
    now: the first cell that uses ``reactor`` binds it to the kernel's running
    loop; nothing is made here that the kernel would not run. In IPython's
    terminal, the reactor adopts IPython's asyncio loop and is installed for the
    thread, so plain cells find it too.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return current.get_reactor()
    if getattr(shell, "kernel", None) is not None:
        return None
    from IPython.core.async_helpers import get_asyncio_loop

    loop = get_asyncio_loop()
    r = current.reactor_of(loop)
    if r is None or r.closed:
        r = Reactor(loop)
    install(r)
    return r


class Loaded:
    """What :func:`load_into` put into an IPython shell; :meth:`unload` takes it out."""

    def __init__(self, shell: Any, console: Console) -> None:
        self.shell = shell
        self.console = console
        #: the reactor bound at load, if one was (see :func:`bind_reactor`)
        self.reactor: Reactor | None = None
        self._undo: list[Callable[[], None]] = []

    def on_unload(self, f: Callable[[], None]) -> None:
        """Call ``f()`` when unloading (last added, first called)."""
        self._undo.append(f)

    def unload(self) -> None:
        """Take out what :func:`load_into` added: names, displays, error handler, hooks and
        log handler; close the reactor's listeners, connections and timed calls (the
        reactor itself is forgotten: ``reactor`` then gives a fresh one on the same loop)."""
        while self._undo:
            f = self._undo.pop()
            try:
                f()
            except Exception:
                logging.getLogger("netshell.shell").exception("Error while unloading netshell")
        loop = self.reactor.loop if self.reactor is not None else None
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        r = current.reactor_of(loop) if loop is not None else None
        if r is not None and not r.closed:
            r.close()  # never closes a loop it did not make


def load_into(
    shell: Any,
    transcript_file: Any = None,
    log_handler: Callable[[Console], logging.Handler] | None = None,
    log_level: int = logging.WARNING,
) -> Loaded:
    """Put the netsh namespace, displays and errors into an IPython ``shell``.

    Each cell is recorded in the console's transcript (and ``transcript_file``, if
    given). Log records (a server's request log among them) go through
    ``log_handler(console)`` (default: printed as at the netsh prompt); the root
    logger's level is set to ``log_level`` until unloaded.
    """
    loaded = Loaded(shell, Console(shell.user_ns, color=True, name="ipython",
                                   transcript_file=transcript_file))
    console = loaded.console
    loaded.reactor = bind_reactor(shell)

    # The names, hidden from %who as IPython's own are; unloading removes those still
    # bound to what was put there (a name the person rebound is theirs).
    before = dict(shell.user_ns)
    namespace.build(console)
    # The rich displays (HTML tables, Deferred chains drawn, sequence diagrams): importing
    # netshell.kernel.displays registers the Deferred's drawing with the core; watch()
    # keeps a table up to date in a notebook cell's output.
    renderer = defer.html_renderer
    from netshell.kernel import displays

    defer.html_renderer = displays.deferred_html
    shell.user_ns["watch"] = displays.watch
    added = {k: v for k, v in shell.user_ns.items() if k not in before or before[k] is not v}
    hidden = getattr(shell, "user_ns_hidden", {})
    for k, v in added.items():
        hidden[k] = v

    def remove_names() -> None:
        for k, v in added.items():
            if shell.user_ns.get(k) is v:
                if k in before:
                    shell.user_ns[k] = before[k]
                else:
                    del shell.user_ns[k]
            if hidden.get(k) is v:
                del hidden[k]

    loaded.on_unload(remove_names)

    def restore_progress() -> None:
        # namespace.build made the terminal bar the protocol clients' progress display
        # (progress.install, when protocols.http or .ftp is first used): the library's
        # own, no display, again.
        for name in ("protocols.http.client", "protocols.ftp.client"):
            client = sys.modules.get(name)
            if client is not None and getattr(client, "make_progress", None) is (
                    progress.terminal_progress):
                setattr(client, "make_progress", client.no_progress)  # noqa: B010

    loaded.on_unload(restore_progress)

    def restore_renderer() -> None:
        defer.html_renderer = renderer

    loaded.on_unload(restore_renderer)

    helpers = shell.user_ns["_helpers"]
    # A chain that ends with a failure no errback handled is reported into the output of
    # the cell whose work it was (its context), naming that cell.
    helpers.late.where = _cell_where
    helpers.late.busy = lambda: None
    chains.record()
    loaded.on_unload(chains.stop_recording)
    loaded.on_unload(lambda: helpers.tracer.stop())
    loaded.on_unload(shell.user_ns["lesson"].teacher.close)  # a lesson running stops
    loaded.on_unload(console.close)

    # Displays: a Deferred as the prompt shows it (text); objects with _repr_html_ or
    # _repr_mimebundle_ are shown richly by IPython's own formatters wherever the
    # front end can (Jupyter).
    plain = shell.display_formatter.formatters["text/plain"]

    shown: dict[str, Deferred[Any]] = {}  # the _dN names bound below, taken out on unload

    def show_deferred(d: Deferred[Any], p: Any, cycle: bool) -> None:
        if not d.called or d.waiting_on is not None:
            shell.user_ns[f"_d{d.number}"] = shown[f"_d{d.number}"] = d
            console.notes.watch(d)
        else:
            d.mark_failure_seen()  # shown failed: seen, as at the prompt
        p.text(repr(d))

    def remove_shown() -> None:
        for k, d in shown.items():
            if shell.user_ns.get(k) is d:
                del shell.user_ns[k]
        shown.clear()

    loaded.on_unload(remove_shown)

    previous = plain.for_type(Deferred, show_deferred)
    loaded.on_unload(lambda: _restore_printer(plain, Deferred, previous))

    # The watchdog says when a callback holds the loop (a cell's own code is the cell's
    # work, not reported): on the reactor's loop now, or (a kernel whose loop does not run
    # yet) on the loop the first cell runs on.
    watched: list[asyncio.AbstractEventLoop] = []

    def watch_loop(loop: asyncio.AbstractEventLoop) -> None:
        watched.append(loop)
        start_watchdog(loop, own=[shell.user_ns])

    def unwatch() -> None:
        for loop in watched:
            stop_watchdog(loop)

    if loaded.reactor is not None:
        watch_loop(loaded.reactor.loop)
    loaded.on_unload(unwatch)

    # IPython runs the cells itself: record each in the console's transcript, so that
    # history() and save() work here as at the netsh prompt.
    started: dict[str, float] = {}

    def pre_run_cell(info: Any) -> None:
        started["time"] = time.time()
        if not watched:
            try:
                watch_loop(asyncio.get_running_loop())
            except RuntimeError:
                pass
        # What the cell starts carries its number (see current_cell).
        current_cell.set(_cell_number(shell))
        # ... and the loop the cells run on: a thread the cell starts (or a pool job it
        # submits) that asks for ``reactor`` gets that loop's, so reactor.call_from_thread
        # from it reaches the kernel's loop rather than a fresh one nobody runs.
        try:
            current.carry_loop(asyncio.get_running_loop())
        except RuntimeError:
            if loaded.reactor is not None and not loaded.reactor.closed:
                current.carry_loop(loaded.reactor.loop)

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
    if getattr(shell, "kernel", None) is not None and _loop_running():
        # Loaded by a cell (%load_ext netshell in a python3 kernel): that cell's own work
        # is a cell's work too, though its pre_run_cell came before the hook was there.
        pre_run_cell(None)
    loaded.on_unload(lambda: shell.events.unregister("pre_run_cell", pre_run_cell))
    loaded.on_unload(lambda: shell.events.unregister("post_run_cell", post_run_cell))

    custom = (shell.custom_exceptions, shell.CustomTB)
    show_errors_shortly(shell, console)

    def restore_errors() -> None:
        shell.custom_exceptions, shell.CustomTB = custom

    loaded.on_unload(restore_errors)

    # The log: records printed as at the prompt, and the servers' request log on.
    handler = (log_handler or PromptLogHandler)(console)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(log_level)
    request_logs = [logging.getLogger(name) for name in namespace.REQUEST_LOGGERS]
    old_levels = [logger.level for logger in request_logs]
    helpers.log(True)  # the requests an HTTP server answers, as at the netsh prompt

    def restore_logging() -> None:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for logger, level in zip(request_logs, old_levels, strict=True):
            logger.setLevel(level)

    loaded.on_unload(restore_logging)
    return loaded


def _cell_number(shell: Any) -> int:
    """The number of the cell IPython runs now (``In [n]``), asked from its pre_run_cell.

    IPython counts ``execution_count`` on before the cell runs since 9.8 (after it, before
    then): the number it gave the cell is the one it put on the cell's result, which the
    frame that triggers the event holds.
    """
    frame: Any = sys._getframe(1)
    for _ in range(40):  # a cell that loads the extension calls from deep inside it
        if frame is None:
            break
        result = frame.f_locals.get("result") if frame.f_code.co_name == "run_cell_async" else None
        number = getattr(result, "execution_count", None)
        if isinstance(number, int):
            return number
        frame = frame.f_back
    return int(getattr(shell, "execution_count", 0))


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _restore_printer(formatter: Any, typ: type, previous: Any) -> None:
    formatter.pop(typ, None)
    if previous is not None:
        formatter.for_type(typ, previous)


# A cell's frame, named as IPython names it in its own tracebacks.
_CELL = re.compile(r'File "<ipython-input-(\d+)-[0-9a-f]+>", line (\d+)')
_FILE = re.compile(r'File "([^"]+)", line (\d+)')


def _cells_named(ip: Any, text: str) -> str:
    """``text`` with each cell's frame named ``Cell In[3], line 2``, as IPython does: the
    terminal's cells are ``<ipython-input-3-...>``; a kernel's are files whose numbers
    IPython's compiler keeps (``/tmp/ipykernel_.../....py``)."""
    text = _CELL.sub(r"Cell In[\1], line \2", text)
    numbers = getattr(getattr(ip, "compile", None), "_filename_map", None)
    if not numbers:
        return text

    def name(m: re.Match[str]) -> str:
        number = numbers.get(m.group(1))
        return m.group(0) if number is None else f"Cell In[{number}], line {m.group(2)}"

    return _FILE.sub(name, text)


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
            # ipykernel's execute_reply carries the last traceback shown (it reads this
            # attribute, which only _showtraceback sets): this one, not an older one.
            ip._last_traceback = ["Cancelled"]
            return None
        console.last_error = value
        if isinstance(value, SyntaxError):
            ip.showsyntaxerror()  # IPython's own, caret and all (a failed parse comes here)
            return None
        if console.verbose:
            ip.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return None
        text = _cells_named(ip, format_error(value, namespace=ip.user_ns))
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
    transcript_path, transcript = new_transcript("ipython")
    loaded = load_into(shell, transcript, log_level=log_level)
    r = loaded.reactor
    assert r is not None  # IPython's terminal: bound to its asyncio loop
    try:
        shell.mainloop()
    finally:
        loop = r.loop
        if not r.closed:
            loop.run_until_complete(close_everything(r, EXIT_GRACE))
        loaded.unload()
        transcript.close()
        print(f"The session's transcript: {transcript_path}")
    del loaded
    return 0
