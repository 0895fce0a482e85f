"""``netsh --ipython`` in a real terminal: the reactor runs while IPython's prompt is idle."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest
from peers import free_port, require
from terminal import WAIT, Above, Terminal, last_row, netsh_argv, when_go


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


def test_a_timed_call_prints_above_a_half_typed_ipython_line(ipython, tmp_path):
    # The timer prints "fired 42", which it computes: no line typed here holds that text.
    cell(ipython, 1, when_go('print("fi" + "red", 6 * 7)'))
    ipython.type("y = 'typed before")
    ipython.wait_for(r"^In \[2\]: y = 'typed before$")
    (tmp_path / "go").touch()  # now the timer fires, while the line is half typed
    screen = ipython.wait_for(Above("fired 42", r"In \[2\]: y = 'typed before"))
    assert last_row(screen, r"In \[2\]: .*") == last_row(screen, r"In \[2\]: y = 'typed before")
    ipython.type(" and after'")
    ipython.key("Enter")
    cell(ipython, 3, "y")
    ipython.wait_for(r"^Out\[3\]: 'typed before and after'$")


def test_deferred_notes_and_tables_work_in_ipython(ipython):
    port = free_port()
    cell(ipython, 1, f'srv = listen("tcp:{port}", wire.echo_factory())')
    cell(ipython, 2, "d = Deferred(); d.add_callback(lambda x: x + 1)")
    number = re.search(r"^Out\[2\]: <Deferred #(\d+) pending>$", ipython.screen(), re.M).group(1)
    cell(ipython, 3, "d.callback(41)")
    ipython.wait_for(rf"^Deferred #{number} fired: 42$")
    cell(ipython, 4, f"_d{number}.result")
    ipython.wait_for(r"^Out\[4\]: 42$")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
        client.sendall(b"hello")
        assert client.recv(100) == b"hello"  # served while IPython is idle
        mine = client.getsockname()[1]
        cell(ipython, 5, "listeners()")
        screen = ipython.wait_for(r"^Out\[5\]:")
        table = screen.split("Out[5]:", 1)[1].splitlines()
        assert re.fullmatch(r"\s*", table[0])  # a table starts on the line below Out[5]:
        assert table[1].split() == ["id", "kind", "local", "peer", "protocol", "state",
                                    "conns", "in", "out", "age", "tls"]
        assert re.fullmatch(rf"#\d+\s+tcp\s+127\.0\.0\.1:{port}\s+-\s+Echo\s+listening\s+1"
                            r"\s+5\s+5\s+\d+s\s+no\s*", table[2]), table
        cell(ipython, 6, "conns()")
        screen = ipython.wait_for(r"^Out\[6\]:")
        table = screen.split("Out[6]:", 1)[1].splitlines()
        assert table[1].split() == ["id", "kind", "local", "peer", "protocol", "state", "in",
                                    "out", "age", "tls"]
        assert re.fullmatch(rf"#\d+\s+tcp\s+127\.0\.0\.1:{port}\s+127\.0\.0\.1:{mine}\s+Echo"
                            r"\s+open\s+5\s+5\s+\d+s\s+no\s*", table[2]), table


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


def test_an_http_server_in_ipython_logs_each_request_above_the_prompt(ipython, tmp_path):
    (tmp_path / "hello.txt").write_text("hello" * 3)
    cell(ipython, 1, f"site = http.serve({str(tmp_path)!r})")
    cell(ipython, 2, 'r = await http.get(f"http://127.0.0.1:{site.port}/hello.txt")')
    ipython.wait_for(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /hello\.txt HTTP/1\.1" 200 15$')
    cell(ipython, 3, "log(False)")
    cell(ipython, 4, 'r = await http.get(f"http://127.0.0.1:{site.port}/hello.txt")')
    cell(ipython, 5, "r.status")
    screen = ipython.wait_for(r"^Out\[5\]: 200$")
    assert len(re.findall(r'"GET /hello\.txt HTTP/1\.1" 200 15', screen)) == 1
