"""``netsh --ipython``: the prompt's namespace in IPython's terminal, reactor running while idle.

IPython runs its prompt on its own asyncio loop when ``%gui asyncio`` is on,
and runs awaiting cells (``autoawait``) on that same loop; the reactor adopts
it, so servers serve and timers fire at the idle prompt. Plain cells run with
the loop stopped, as IPython does. An unfired Deferred that is displayed is
bound to ``_dN`` and watched, as at the netsh prompt. :func:`load_into` is
what a Jupyter kernel will reuse.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from netshell.defer import Deferred
from netshell.reactor import Reactor, install
from netshell.shell import chains, namespace
from netshell.shell.console import Console, close_everything, input_entry
from netshell.shell.prompt import EXIT_GRACE, PromptLogHandler
from netshell.shell.session import new_transcript

__all__ = ["load_into", "run_ipython"]


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
    return console


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
    shell.loop_runner = "asyncio"
    shell.enable_gui("asyncio")
    loop = get_asyncio_loop()
    r = Reactor(loop)
    install(r)
    transcript_path, transcript = new_transcript("ipython")
    console = load_into(shell, r, transcript)
    handler = PromptLogHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(log_level)
    helpers = shell.user_ns["_helpers"]  # IPython empties user_ns on the way out
    try:
        shell.mainloop()
    finally:
        root.removeHandler(handler)
        helpers.tracer.stop()
        chains.stop_recording()
        console.close()
        if not r.closed:
            loop.run_until_complete(close_everything(r, EXIT_GRACE))
        transcript.close()
        print(f"The session's transcript: {transcript_path}")
    del console
    return 0
