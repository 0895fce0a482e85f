"""Real Jupyter kernels for the tests under tests/kernel/.

The ``netshell`` kernelspec is installed (with ``netsh kernel install --prefix``'s own
code) into a temporary prefix once per run, and the environment points Jupyter at it
(``JUPYTER_PATH``); ``PYTHONPATH`` puts this checkout first, so the kernel process
imports the netshell under test, not another one installed on the machine. IPython's
profile and history, and Jupyter's config, data and connection files, live in temporary
directories.

:class:`Kernel` drives one kernel with jupyter_client's blocking client: it runs
cells and collects the iopub messages, waiting on messages with timeouts (never on a
sleep). ipykernel, jupyter_client, nbclient and jupyter_kernel_test are imported
unconditionally: under CI a missing one is an error, not a skip.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from netshell.kernel import kernelspec

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30  # seconds: a bound for what should come at once (a loaded machine is slow)


@pytest.fixture(scope="session", autouse=True)
def netshell_kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The kernelspec ``netshell``, installed into a temporary prefix that Jupyter searches."""
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    where = kernelspec.install(prefix=str(prefix))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT),
                                                              os.environ.get("PYTHONPATH")])))
        mp.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        # the person's own Jupyter config, data and runtime files stay out of it
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            mp.setenv(name, str(tmp_path_factory.mktemp(name.lower())))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        yield where


def _text(msg: dict[str, Any]) -> str:
    content = msg["content"]
    if msg["msg_type"] == "stream":
        return content["text"]
    if msg["msg_type"] in ("execute_result", "display_data"):
        return content["data"].get("text/plain", "")
    if msg["msg_type"] == "error":
        return f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"])
    return ""


class Kernel:
    """One running ``netshell`` kernel, and everything it published on iopub so far."""

    def __init__(self, km: KernelManager, kc: BlockingKernelClient) -> None:
        self.km = km
        self.kc = kc
        self.messages: list[dict[str, Any]] = []

    def execute(self, code: str) -> str:
        """Send a cell; return its msg_id (its outputs' parent).

        Sent with ``stop_on_error=False``: after a cell that fails (an interrupted one
        among them) ipykernel would otherwise abort the requests that reach it before it
        has flushed its queue, and a test's next cell, sent at once, could be one."""
        return self.kc.execute(code, stop_on_error=False)

    def reply(self, msg_id: str, timeout: float = WAIT) -> dict[str, Any]:
        """The execute_reply of ``msg_id``'s cell, once the cell is done."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]

    def run(self, code: str, timeout: float = WAIT) -> tuple[str, str]:
        """Run a cell to its end: (msg_id, all the text it output, once it is idle)."""
        msg_id = self.execute(code)
        reply = self.reply(msg_id, timeout)
        self.wait_for(lambda m: m["msg_type"] == "status"
                      and m["content"]["execution_state"] == "idle"
                      and m["parent_header"].get("msg_id") == msg_id, timeout)
        assert reply["status"] == "ok", (reply, self.output(msg_id))
        return msg_id, self.output(msg_id)

    def wait_for(self, found: Callable[[dict[str, Any]], bool],
                 timeout: float = WAIT) -> dict[str, Any]:
        """The first iopub message (seen already, or coming) for which ``found`` is true."""
        for msg in self.messages:
            if found(msg):
                return msg
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.01, left))
            except queue.Empty:
                raise AssertionError(
                    f"no such message in {timeout}s; seen: "
                    f"{[(m['msg_type'], _text(m)[:80]) for m in self.messages[-20:]]}"
                ) from None
            self.messages.append(msg)
            if found(msg):
                return msg

    def wait_for_text(self, text: str, timeout: float = WAIT) -> dict[str, Any]:
        """The first output message whose text holds ``text``."""
        return self.wait_for(lambda m: text in _text(m), timeout)

    def output(self, msg_id: str) -> str:
        """All the text output so far with ``msg_id`` as parent, in order."""
        return "".join(_text(m) for m in self.messages
                       if m["parent_header"].get("msg_id") == msg_id)


def parent_of(msg: dict[str, Any]) -> str:
    return msg["parent_header"].get("msg_id", "")


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    """A fresh ``netshell`` kernel, shut down after the test."""
    km, kc = start_new_kernel(kernel_name="netshell", startup_timeout=WAIT)
    try:
        yield Kernel(km, kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
