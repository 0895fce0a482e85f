"""Errors a person can read, at the real ``netsh`` and ``netsh --ipython`` in a terminal (tmux):
each common mistake is one line under the input, ``tb()`` prints the whole story, and in
IPython Ctrl-C during an await prints "Cancelled" and leaves no traceback behind."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator

import pytest
from peers import free_port
from terminal import Terminal, netsh_argv, rows

import netshell

NETSHELL_DIR = os.path.dirname(netshell.__file__)


@pytest.fixture
def netsh(tmp_path) -> Iterator[Terminal]:
    t = Terminal(netsh_argv(), env={"XDG_STATE_HOME": str(tmp_path / "state")},
                 cwd=str(tmp_path))
    yield t
    t.close()


@pytest.fixture
def ipython(tmp_path) -> Iterator[Terminal]:
    t = Terminal(netsh_argv("--ipython"),
                 env={"XDG_STATE_HOME": str(tmp_path / "state"),
                      "IPYTHONDIR": str(tmp_path / "ipython")},
                 cwd=str(tmp_path))
    yield t
    t.close()


def netsh_input(t: Terminal, n: int, code: str) -> list[str]:
    """Type ``code`` at prompt ``[n]>``; the rows it printed, up to the next prompt."""
    t.wait_prompt(n)
    t.line(code)
    screen = t.wait_prompt(n + 1)
    lines = rows(screen)
    start = max(i for i, line in enumerate(lines) if line == f"[{n}]> {code}")
    end = max(i for i, line in enumerate(lines) if line.startswith(f"[{n + 1}]>"))
    return lines[start + 1:end]


def ipython_input(t: Terminal, n: int, code: str) -> list[str]:
    """Type ``code`` at ``In [n]:``; the rows it printed, up to the next prompt, blanks left
    out (IPython puts one between a cell's output and the next prompt)."""
    t.wait_for(rf"^In \[{n}\]:")
    t.line(code)
    screen = t.wait_for(rf"^In \[{n + 1}\]:")
    lines = rows(screen)
    start = max(i for i, line in enumerate(lines) if line == f"In [{n}]: {code}")
    end = max(i for i, line in enumerate(lines) if line.startswith(f"In [{n + 1}]:"))
    return [line for line in lines[start + 1:end] if line.strip()]


@pytest.fixture
def unanswered() -> Iterator[int]:
    """A port whose one-connection backlog is full: a connection to it times out."""
    with socket.socket() as full, socket.socket() as first:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        first.connect(("127.0.0.1", port))
        yield port


MISTAKES = [
    # (code, the one line it prints); {own} is the port of the session's listener #1,
    # {refused} a port that refuses, {full} one that never answers, {tls} a TLS server's
    ("listen({own}, Echo)",
     "cannot listen on 127.0.0.1:{own}: address already in use — held by listener #1 — "
     "listener(1).close()"),
    ("http.serve('.', port={own})",
     "cannot listen on 127.0.0.1:{own}: address already in use — held by listener #1 — "
     "listener(1).close()"),
    ("await connect('tcp:127.0.0.1:{refused}', Protocol)",
     "cannot connect to 127.0.0.1:{refused}: connection refused"),
    ("await http.get('http://127.0.0.1:{refused}/')",
     "cannot connect to 127.0.0.1:{refused}: connection refused"),
    ("await connect('tcp:127.0.0.1:{full}:timeout=0.5', Protocol)",
     "cannot connect to 127.0.0.1:{full}: timed out after 0.5s"),
    ("listen('tcp:foo', Echo)",
     "endpoint 'tcp:foo': port 'foo' is not a number (expected tcp:PORT)"),
    ("listen('tpc:8000', Echo)",
     "endpoint 'tpc:8000': unknown kind 'tpc' (did you mean 'tcp'?); "
     "known kinds: tcp, tcp6, unix, udp, tls"),
    ("await connect('tcp:nosuch.invalid:80', Protocol)",
     "cannot resolve 'nosuch.invalid': .+"),
    ("await connect('tls:localhost:{tls}', Protocol)",
     "TLS certificate verification failed for localhost:{tls}: the certificate of localhost "
     "is not signed by a trusted authority: .+"),
]

SETUP = [
    "class Echo(Protocol): pass",
    "own = listen(0, Echo)",
    "cert, key, ca = tls.self_signed()",
    "srv = reactor.listen_tls(0, Factory.for_protocol(Echo), tls.server_context(cert, key))",
]


def ports(namespace_line: str) -> dict[str, int]:
    own, tls_port = (int(p) for p in namespace_line.split())
    return {"own": own, "tls": tls_port}


def test_each_common_mistake_is_one_line_at_the_prompt_and_tb_tells_all(
    netsh: Terminal, unanswered: int
) -> None:
    n = 1
    for code in SETUP:
        assert netsh_input(netsh, n, code) == []
        n += 1
    (shown,) = netsh_input(netsh, n, "print(own.port, srv.port)")
    n += 1
    where = {**ports(shown), "refused": free_port(), "full": unanswered}
    for code, line in MISTAKES:
        printed = netsh_input(netsh, n, code.format(**where))
        n += 1
        assert len(printed) == 1, printed
        assert re.fullmatch(re.escape(line.format(**where)).replace(r"\.\+", ".+"),
                            printed[0]), printed
    # tb() tells the whole story of the last one: netshell's frames, the chained cause
    full = netsh_input(netsh, n, "tb()")
    text = "\n".join(full)
    assert full[0] == "Traceback (most recent call last):"
    assert os.path.join(NETSHELL_DIR, "tls") in text, text
    assert full[-1].startswith("netshell.errors.UnknownCA: the certificate of localhost")


def test_verbose_at_the_prompt_shows_every_frame_until_turned_off(netsh: Terminal) -> None:
    assert netsh_input(netsh, 1, "verbose(True)") == [
        "verbose on: errors show every frame; verbose(False) shortens them"]
    full = netsh_input(netsh, 2, "listen('tcp:foo', Protocol)")
    assert f'  File "{os.path.join(NETSHELL_DIR, "endpoints.py")}"' in "\n".join(full)
    assert netsh_input(netsh, 3, "verbose(False)")[0].startswith("verbose off")
    assert netsh_input(netsh, 4, "listen('tcp:foo', Protocol)") == [
        "endpoint 'tcp:foo': port 'foo' is not a number (expected tcp:PORT)"]


def test_each_common_mistake_is_one_line_in_ipython(ipython: Terminal, unanswered: int) -> None:
    n = 1
    for code in SETUP:
        assert ipython_input(ipython, n, code) == []
        n += 1
    (shown,) = ipython_input(ipython, n, "print(own.port, srv.port)")
    n += 1
    where = {**ports(shown), "refused": free_port(), "full": unanswered}
    for code, line in MISTAKES:
        printed = ipython_input(ipython, n, code.format(**where))
        n += 1
        assert len(printed) == 1, printed
        assert re.fullmatch(re.escape(line.format(**where)).replace(r"\.\+", ".+"),
                            printed[0]), printed
    full = ipython_input(ipython, n, "tb()")
    text = "\n".join(full)
    assert os.path.join(NETSHELL_DIR, "tls") in text, text
    assert full[-1].startswith("netshell.errors.UnknownCA: the certificate of localhost")
    n += 1
    # verbose(True): IPython's own full traceback, netshell's frames in it
    ipython_input(ipython, n, "verbose(True)")
    n += 1
    text = "\n".join(ipython_input(ipython, n, "listen('tcp:foo', Echo)"))
    assert "endpoints.py" in text and "EndpointError" in text, text


def test_ctrl_c_during_an_await_in_ipython_prints_cancelled_and_leaves_cleanly(
    ipython: Terminal,
) -> None:
    assert ipython_input(ipython, 1, "d = Deferred()") == []
    ipython.wait_for(r"^In \[2\]:")
    ipython.line('print("wait" + "ing"); await d')  # "waiting": the cell runs, and awaits
    ipython.wait_for(r"^waiting$")
    ipython.key("C-c")
    screen = ipython.wait_for(r"^In \[3\]:")
    after = rows(screen)[max(i for i, line in enumerate(rows(screen)) if line == "waiting"):]
    # the terminal echoes ^C; "Cancelled" stands on its own line, as at the netsh prompt
    assert [line for line in after if line.strip()][:4] == ["waiting", "^C", "Cancelled",
                                                           "In [3]:"]
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen
    ipython.key("C-d")
    assert ipython.exit_status() == 0
    screen = ipython.screen()
    assert "GeneratorExit" not in screen
    assert "Traceback" not in screen
    assert "Exception ignored" not in screen


def test_in_ipython_a_mistake_in_your_function_shows_your_cells(ipython: Terminal) -> None:
    assert ipython_input(ipython, 1, "first = listen(0, Protocol)") == []
    assert ipython_input(ipython, 2, "def start(port): return listen(port, Protocol)") == []
    printed = ipython_input(ipython, 3, "start(first.port)")
    assert printed[0] == "Traceback (most recent call last):"
    assert '  Cell In[3], line 1, in <module>' in printed
    assert '  Cell In[2], line 1, in start' in printed
    assert re.fullmatch(r"cannot listen on 127\.0\.0\.1:\d+: address already in use — held by "
                        r"listener #1 — listener\(1\)\.close\(\)", printed[-1]), printed
    assert NETSHELL_DIR not in "\n".join(printed)


def test_tb_in_ipython_shows_a_syntax_error_that_came_last(ipython: Terminal) -> None:
    ipython_input(ipython, 1, "lisen")  # a NameError first
    ipython_input(ipython, 2, "f = lambda: await d")  # then a SyntaxError IPython shows
    shown = "\n".join(ipython_input(ipython, 3, "tb()"))
    assert "SyntaxError" in shown and "await" in shown, shown
    assert "NameError" not in shown, shown
