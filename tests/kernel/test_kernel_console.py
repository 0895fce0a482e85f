"""``jupyter console --kernel netshell``, driven in a terminal as a person would.

jupyter-console (its ``--simple-prompt``, for a pseudo-terminal) starts the ``netshell``
kernelspec conftest installs: ``1 + 1`` shows ``Out[1]: 2``, a cell awaiting a timer shows
the timer's print, an HTTP server started in a cell serves the test process, and its
request log and a later timer's print come to the console (which shows what its own earlier
cells print when it next runs one). ``exit`` shuts the kernel down: the console exits 0
and the server's port is free again. With ``include_other_output`` the console shows such
output while it waits at the prompt too.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.request
from pathlib import Path

import pexpect
from conftest import WAIT

CONSOLE = Path(sys.executable).parent / "jupyter-console"  # jupyter-console's script


def prompt(n: int) -> str:
    return rf"In \[{n}\]: "


def test_jupyter_console_runs_the_netshell_kernel(tmp_path):
    (tmp_path / "hello.txt").write_text("hello from the console")
    child = pexpect.spawn(str(CONSOLE), ["--kernel", "netshell", "--simple-prompt"],
                          cwd=str(tmp_path), encoding="utf-8", timeout=WAIT,
                          dimensions=(50, 200))
    try:
        child.expect(prompt(1))
        child.sendline("1 + 1")
        child.expect(r"Out\[1\]: 2\r?\n")
        child.expect(prompt(2))

        # the netsh names are there, and the reactor runs on the kernel's loop
        child.sendline("reactor.call_later(0.05, print, 'timer in the cell'); await sleep(0.3)")
        child.expect(r"\ntimer in the cell\r?\n")  # the output, not the echoed input
        child.expect(prompt(3))

        child.sendline("site = http.serve('.'); "
                       "reactor.call_later(0.05, print, 'timer after the cell'); site.port")
        child.expect(r"Out\[3\]: (\d+)\r?\n")
        port = int(child.match.group(1))
        child.expect(prompt(4))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt",
                                    timeout=WAIT) as r:
            assert r.read() == b"hello from the console"

        # The console shows the kernel's output for its session as it runs a cell: run
        # empty cells until the server's log line and the later timer's print have come.
        seen, n = "", 4
        deadline = time.monotonic() + WAIT
        while not ('"GET /hello.txt HTTP/1.1" 200' in seen and "\ntimer after the cell" in seen):
            assert time.monotonic() < deadline, seen
            child.sendline("pass")
            n += 1
            child.expect(prompt(n))
            seen += child.before

        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)
    # the kernel was shut down: nothing listens on its server's port any more
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT may remain
        s.bind(("127.0.0.1", port))


def test_jupyter_console_can_show_output_between_cells(tmp_path):
    """With include_other_output, the console reads the kernel's output while it waits at
    the prompt too: a timer a cell set prints there without another cell being run."""
    child = pexpect.spawn(str(CONSOLE), ["--kernel", "netshell", "--simple-prompt",
                                         "--ZMQTerminalInteractiveShell.include_other_output=True"],
                          cwd=str(tmp_path), encoding="utf-8", timeout=WAIT,
                          dimensions=(50, 200))
    try:
        child.expect(prompt(1))
        child.sendline("reactor.call_later(0.3, print, 'timer at the prompt')")
        child.expect(prompt(2))
        child.expect(r"timer at the prompt\r?\n")  # after the prompt: not the echoed input
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)
