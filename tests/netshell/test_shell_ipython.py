"""``netsh --ipython`` in a real terminal: the reactor runs while IPython's prompt is idle."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest
from peers import free_port, require
from terminal import Terminal, netsh_argv


@pytest.fixture
def ipython(tmp_path):
    t = Terminal(netsh_argv("--ipython"),
                 env={"XDG_STATE_HOME": str(tmp_path / "state"),
                      "IPYTHONDIR": str(tmp_path / "ipython")},
                 cwd=str(tmp_path))
    yield t
    t.close()


def cell(t: Terminal, number: int, code: str) -> None:
    t.wait_for(rf"^In \[{number}\]:")
    t.line(code)
    t.wait_for(rf"^In \[{number + 1}\]:")


def test_an_echo_server_serves_another_process_while_ipython_is_idle(ipython):
    port = free_port()
    cell(ipython, 1, f'srv = listen("tcp:{port}", wire.echo_factory())')
    require("socat")
    done = subprocess.run(["socat", "-t", "2", "-", f"TCP:127.0.0.1:{port}"],
                          input=b"ipython idle\n", capture_output=True, timeout=20)
    assert done.stdout == b"ipython idle\n"


def test_a_timed_call_prints_above_a_half_typed_ipython_line(ipython):
    cell(ipython, 1, 'dc = reactor.call_later(0.5, print, "IPY-TIMER")')
    ipython.type("y = 'typed before")
    screen = ipython.wait_for(r"^In \[2\]: y = 'typed before$")
    screen = ipython.wait_for(r"IPY-TIMER")
    screen = ipython.wait_for(r"^In \[2\]: y = 'typed before$")
    lines = screen.splitlines()
    fired = max(i for i, line in enumerate(lines) if "IPY-TIMER" in line)
    prompt = max(i for i, line in enumerate(lines) if line.startswith("In [2]: y = "))
    assert fired < prompt


def test_deferred_notes_and_tables_work_in_ipython(ipython):
    cell(ipython, 1, "d = Deferred(); d.add_callback(lambda x: x + 1)")
    screen = ipython.screen()
    number = re.search(r"<Deferred #(\d+) pending>", screen).group(1)
    cell(ipython, 2, "d.callback(41)")
    ipython.wait_for(rf"^Deferred #{number} fired: 42$")
    cell(ipython, 3, f"_d{number}.result")
    ipython.wait_for(r"^Out\[3\]: 42$")


def test_ctrl_d_leaves_ipython_with_status_0_and_frees_the_port(ipython):
    port = free_port()
    cell(ipython, 1, f'srv = listen("tcp:{port}", wire.echo_factory())')
    ipython.key("C-d")
    assert ipython.exit_status() == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_history_and_save_work_in_ipython(ipython, tmp_path):
    cell(ipython, 1, "x = 40 + 2")
    cell(ipython, 2, "1 / 0")
    cell(ipython, 3, "conns()")
    cell(ipython, 4, 'save("from_ipython.py")')
    ipython.wait_for(r"saved \d+ cells to from_ipython\.py")
    script = (tmp_path / "from_ipython.py").read_text()
    assert "# %%\nx = 40 + 2\n" in script
    assert "1 / 0" not in script and "\n# conns()\n" in script
    cell(ipython, 5, "history()")
    ipython.wait_for(r"^!\[2\]> 1 / 0$")
    ipython.key("C-d")
    assert ipython.exit_status() == 0
    (transcript,) = (tmp_path / "state" / "netshell" / "sessions").glob("*.jsonl")
    entries = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert entries[0] == {**entries[0], "type": "session", "kind": "ipython"}
    assert [e["input"] for e in entries[1:3]] == ["x = 40 + 2", "1 / 0"]
