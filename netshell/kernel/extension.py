"""``%load_ext netshell``: the netsh prompt's names, displays and errors in IPython or Jupyter.

``%load_ext netshell`` (or the ``netshell`` kernelspec, which loads it as the
kernel starts) calls :func:`load_ipython_extension`; ``%unload_ext netshell``
calls :func:`unload_ipython_extension`, which closes the reactor's listeners,
connections and timed calls and takes out everything that was added. Loading
is :func:`netshell.shell.ipython.load_into`, the same as ``netsh --ipython``'s.

Where output goes in a kernel: what work prints (a Deferred's note, a protocol's
callback, a timed call, a trace, a log record) goes to the cell that started the
work, also after that cell finished and while another runs. ipykernel keeps the
cell's parent header in a context variable, and netshell runs timed calls, thread
jobs and the connections a listener accepts in the context of the code that
started them. Threads started while a cell's work runs (``threading.Thread.start``,
a thread pool's ``submit``) run in a copy of the starting context too, so their
``print()`` goes to that cell rather than to whichever cell ran last. A log record
no cell can be held to (from a thread started outside any cell's work) goes to the
kernel's log instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from netshell.shell.console import Console
from netshell.shell.ipython import Loaded, _restore_printer, current_cell, load_into
from netshell.shell.prompt import InputInterrupted, PromptLogHandler, _in_the_loop

__all__ = ["CellLogHandler", "load_ipython_extension", "unload_ipython_extension"]

# The sessions loaded, by shell (an IPython process has one shell; tests make more).
_loaded: dict[int, Loaded] = {}


class CellLogHandler(PromptLogHandler):
    """Log records into the output of the cell that started the work, in a kernel.

    Records about the work of a cell go to that cell (warnings and errors on its
    stderr, the request log on its stdout); a record no cell started (from a
    foreign thread) goes to ``kernel_log``, the kernel's own log.
    """

    def __init__(self, console: Console, kernel_log: logging.Logger) -> None:
        super().__init__(console)
        self.kernel_log = kernel_log

    def write(self, text: str, record: logging.LogRecord) -> None:
        if current_cell.get() is None:
            # The kernel's log says when and how bad itself.
            self.kernel_log.log(record.levelno, "%s: %s", record.name, record.getMessage(),
                                exc_info=record.exc_info)
            return
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        stream.write(text + "\n")
        stream.flush()


def wake_on_signals(loop: asyncio.AbstractEventLoop) -> Callable[[], None] | None:
    """Make a signal wake ``loop`` at once; return how to undo it (None if nothing done).

    An interrupt is SIGINT; ipykernel's handler for an awaiting cell cancels it by
    scheduling a callback on the loop, from the loop's own thread, which does not
    wake the loop: sleeping in ``select()``, it would see the callback only at its
    next timer, so ``await sleep(30)`` would be cancelled after its 30 seconds. A
    wakeup fd the loop watches (as asyncio sets one for its own signal handlers;
    ipykernel sets none) wakes it at once. Only in the main thread, and only where
    no wakeup fd is set already.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    try:
        old = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:
        reader.close()
        writer.close()
        return None
    if old != -1:  # someone else's (asyncio's, for its signal handlers): theirs wakes it
        signal.set_wakeup_fd(old)
        reader.close()
        writer.close()
        return None

    def drain() -> None:
        try:
            while reader.recv(4096):
                pass
        except OSError:
            pass

    loop.add_reader(reader.fileno(), drain)

    def undo() -> None:
        now = signal.set_wakeup_fd(-1)
        if now != writer.fileno():
            signal.set_wakeup_fd(now)  # someone else's since: leave it
        loop.remove_reader(reader.fileno())
        reader.close()
        writer.close()

    return undo


def load_ipython_extension(shell: Any) -> None:
    """Load netshell into ``shell`` (what ``%load_ext netshell`` calls); again does nothing."""
    if id(shell) in _loaded:
        return
    kernel = getattr(shell, "kernel", None)
    make_handler = None
    if kernel is not None:
        kernel_log = getattr(kernel, "log", None) or logging.getLogger("netshell.kernel")

        def make_handler(console: Console) -> logging.Handler:
            return CellLogHandler(console, kernel_log)

    loaded = _loaded[id(shell)] = load_into(shell, log_handler=make_handler)
    # A trace's capture: its text in the notebook limited as its diagrams are.
    from netshell.kernel.displays import capture_bundle
    from netshell.shell.tracing import Capture

    bundles = shell.display_formatter.mimebundle_formatter
    previous = bundles.for_type(Capture, capture_bundle)
    loaded.on_unload(lambda: _restore_printer(bundles, Capture, previous))
    # explain(d)'s text too (its drawing is limited already). An Explanation is a str, whose
    # text/plain printer IPython prefers to a bundle's: the text's own printer, then.
    from netshell.kernel.displays import explanation_text
    from netshell.shell.chains import Explanation

    plain = shell.display_formatter.formatters["text/plain"]
    explained = plain.for_type(
        Explanation, lambda e, p, cycle: p.text(explanation_text(e)))
    loaded.on_unload(lambda: _restore_printer(plain, Explanation, explained))
    if kernel is not None:
        _wake_when_running(shell, loaded)
        loaded.on_unload(threads_carry_the_cell())
        undo = interrupt_blocking_cells(kernel)
        if undo is not None:
            loaded.on_unload(undo)


def interrupt_blocking_cells(kernel: Any) -> Callable[[], None] | None:
    """Make an interrupt stop a cell that awaits and then blocks the loop in plain code;
    return how to undo it (None where the kernel has no such hook).

    ipykernel runs a cell that awaits as a task, and its SIGINT handler only schedules
    the task's cancellation on the loop: a cell that then runs ``time.sleep(30)`` or
    ``while True: pass`` never gives the loop the turn that would cancel it, and the
    stop button does nothing. Around each such cell, a handler of ours goes first: if
    the signal comes while the cell's own code runs (not the loop waiting, nor other
    work's callback), it raises :class:`~netshell.shell.prompt.InputInterrupted` there,
    an Exception (KeyboardInterrupt raised inside a task would stop the kernel's loop).
    Otherwise ipykernel's handler does what it does: the awaited work is cancelled.
    """
    original = getattr(kernel, "_cancel_on_sigint", None)
    if original is None or "_cancel_on_sigint" in vars(kernel):
        return None

    @contextlib.contextmanager
    def cancel_on_sigint(future: Any) -> Iterator[None]:
        with original(future):
            theirs = signal.getsignal(signal.SIGINT)
            loop = asyncio.get_running_loop()

            def interrupt(signum: int, frame: Any) -> None:
                if (frame is not None and not _in_the_loop(frame) and not future.done()
                        and asyncio.current_task(loop) is future):
                    raise InputInterrupted(
                        "interrupted: the cell kept the loop busy (it was not awaiting)")
                if callable(theirs):
                    theirs(signum, frame)

            signal.signal(signal.SIGINT, interrupt)
            try:
                yield
            finally:
                if signal.getsignal(signal.SIGINT) is interrupt:
                    signal.signal(signal.SIGINT, theirs)

    kernel._cancel_on_sigint = cancel_on_sigint

    def undo() -> None:
        if vars(kernel).get("_cancel_on_sigint") is cancel_on_sigint:
            del kernel._cancel_on_sigint

    return undo


def threads_carry_the_cell() -> Callable[[], None]:
    """Make threads and thread-pool jobs started by a cell's work run in its context;
    return how to undo it.

    ipykernel routes a ``print()`` by the parent header in a context variable, and a
    new thread starts with an empty context: its output would go to whichever cell
    ran last. While ``current_cell`` is set (a cell runs, or work it started does),
    ``Thread.start`` gives the thread a copy of the starting context to run its
    ``run()`` in, and ``ThreadPoolExecutor.submit`` (``loop.run_in_executor`` too)
    runs the job in the submitter's context, not in that of whichever cell started
    the pool's worker. Outside any cell's work both behave as before. Calls nest
    (a process may load several shells): the last undo puts both back.
    """
    _carrying["count"] += 1
    if _carrying["count"] == 1:
        _carrying["saved"] = (threading.Thread.start,
                              concurrent.futures.ThreadPoolExecutor.submit)
        threading.Thread.start = _start_in_context  # type: ignore[method-assign]
        concurrent.futures.ThreadPoolExecutor.submit = _submit_in_context  # type: ignore[method-assign, assignment]
    undone = False

    def undo() -> None:
        nonlocal undone
        if undone:
            return
        undone = True
        _carrying["count"] -= 1
        if _carrying["count"] == 0:
            start, submit = _carrying["saved"]
            threading.Thread.start = start  # type: ignore[method-assign]
            concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]

    return undo


# How many loaded kernels asked for threads_carry_the_cell, and what it replaced (what
# the wrappers below call).
_carrying: dict[str, Any] = {
    "count": 0, "saved": (threading.Thread.start, concurrent.futures.ThreadPoolExecutor.submit)}


@functools.wraps(threading.Thread.start)
def _start_in_context(self: threading.Thread) -> None:
    if current_cell.get() is not None and "run" not in vars(self):
        self.run = functools.partial(contextvars.copy_context().run,  # type: ignore[method-assign]
                                     self.run)
    _carrying["saved"][0](self)


@functools.wraps(concurrent.futures.ThreadPoolExecutor.submit)  # type: ignore[arg-type]
def _submit_in_context(self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /,
                       *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
    if current_cell.get() is not None:
        return _carrying["saved"][1](self, contextvars.copy_context().run, fn, *args, **kwargs)
    return _carrying["saved"][1](self, fn, *args, **kwargs)


def _wake_when_running(shell: Any, loaded: Loaded) -> None:
    """Call :func:`wake_on_signals` for the kernel's loop: now if it runs, else as the
    first cell starts (the kernelspec loads the extension before the loop runs)."""

    def now() -> bool:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        undo = wake_on_signals(loop)
        if undo is not None:
            loaded.on_unload(undo)
        return True

    if now():
        return

    def first_cell(info: Any) -> None:
        if now():
            shell.events.unregister("pre_run_cell", first_cell)

    shell.events.register("pre_run_cell", first_cell)
    loaded.on_unload(lambda: _unregister(shell, "pre_run_cell", first_cell))


def _unregister(shell: Any, event: str, f: Callable[..., Any]) -> None:
    try:
        shell.events.unregister(event, f)
    except ValueError:
        pass  # gone already


def unload_ipython_extension(shell: Any) -> None:
    """Take netshell out of ``shell`` (``%unload_ext netshell``): close its listeners,
    connections and timed calls, remove its names, displays and hooks."""
    loaded = _loaded.pop(id(shell), None)
    if loaded is not None:
        loaded.unload()
