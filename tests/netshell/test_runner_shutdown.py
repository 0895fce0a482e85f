"""Shutdown of ``netsh serve`` and ``netsh run``: an idle HTTP keep-alive connection closes
at once, a request being answered gets the grace (and ``Connection: close``), and a second
signal leaves at once instead of starting the grace again.

Real processes. Every test gives a grace (``--grace 30``) far longer than it waits
(``WAIT``): a process that ends within ``WAIT`` did so only because it did not wait out
the grace. Nothing measures time: the tests wait on what a client sees (EOF) and on what
the process prints.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from typing import IO

import pytest
from terminal import netsh_argv

WAIT = 10  # seconds; the grace given is 30
GRACE = "30"


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(netsh_argv("serve", *args, "--grace", GRACE),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_script(tmp_path, source: str) -> subprocess.Popen[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.Popen(netsh_argv("run", "--grace", GRACE, str(script)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def line_from(stream: IO[str] | None, starts: str) -> str:
    """The next line of ``stream`` that starts with ``starts`` (the process must print it)."""
    assert stream is not None
    while True:
        line = stream.readline()
        assert line, f"the process ended without printing {starts!r}"
        if line.startswith(starts):
            return line


def serving_port(proc: subprocess.Popen[str]) -> int:
    """The port of the first ``Serving HTTP on 127.0.0.1 port N`` line on stdout."""
    return int(line_from(proc.stdout, "Serving ").split(" port ")[1].split()[0])


def stdout_line(proc: subprocess.Popen[str], starts: str) -> str:
    return line_from(proc.stdout, starts)


def stderr_line(proc: subprocess.Popen[str], starts: str) -> str:
    return line_from(proc.stderr, starts)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def read_response(s: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP response with a Content-Length: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"EOF before the end of the head: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "EOF in the middle of the body"
        body += chunk
    return head, body


def idle_keep_alive(port: int) -> socket.socket:
    """A connection that had one answer and stays open, as a browser tab keeps it."""
    s = connect(port)
    s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _body = read_response(s)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"connection: close" not in head.lower(), head
    return s


def sees_eof(s: socket.socket) -> bool:
    """True once the server closed; raises TimeoutError if it does not within WAIT."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


# ---- an idle keep-alive connection does not hold up the shutdown


def test_serve_http_closes_an_idle_keep_alive_connection_at_once(tmp_path, procs):
    (tmp_path / "hello.txt").write_text("hello\n")
    proc = serve("http", str(tmp_path), "--port", "0")
    procs.append(proc)
    port = serving_port(proc)
    with idle_keep_alive(port) as s:
        proc.send_signal(signal.SIGINT)
        stdout_line(proc, "Keyboard interrupt received")
        assert sees_eof(s)  # now, not after the grace of 30 s
        assert proc.wait(WAIT) == 0
    assert proc.stderr is not None
    assert "still open" not in proc.stderr.read()


HTTP_SCRIPT = """\
    from protocols import http as _http

    async def slow(request):
        if request.target == "/slow":
            print("ANSWERING", flush=True)
            while not srv.closed:  # answered only once the shutdown has begun
                await sleep(0.01)
            return "slow done"
        return "hello"

    srv = _http.serve(slow, port=0)
    print(f"Serving HTTP on 127.0.0.1 port {srv.port}", flush=True)
"""


def test_run_script_serving_http_closes_an_idle_keep_alive_connection_at_once(
    tmp_path, procs,
):
    proc = run_script(tmp_path, HTTP_SCRIPT)
    procs.append(proc)
    port = serving_port(proc)
    with idle_keep_alive(port) as s:
        proc.send_signal(signal.SIGINT)
        assert sees_eof(s)
        assert proc.wait(WAIT) == 130
    assert proc.stderr is not None
    rest = proc.stderr.read()
    assert "still open" not in rest, rest
    assert "waiting up to" not in rest, rest  # nothing left to wait for


def test_a_request_being_answered_gets_its_answer_with_connection_close_then_eof(
    tmp_path, procs,
):
    proc = run_script(tmp_path, HTTP_SCRIPT)
    procs.append(proc)
    port = serving_port(proc)
    with connect(port) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        stdout_line(proc, "ANSWERING")  # the handler is under way
        proc.send_signal(signal.SIGINT)
        head, body = read_response(s)  # the answer still comes, within the grace
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert body == b"slow done"
        assert b"connection: close" in head.lower(), head
        assert sees_eof(s)  # and the connection ends after it, not after the grace
        assert proc.wait(WAIT) == 130
    assert proc.stderr is not None
    assert "still open" not in proc.stderr.read()


def test_a_non_http_connection_keeps_its_grace(tmp_path, procs):
    proc = serve("echo", "--port", "0")
    procs.append(proc)
    port = serving_port(proc)
    with connect(port) as s:
        s.sendall(b"one\n")
        assert s.recv(100) == b"one\n"
        proc.send_signal(signal.SIGINT)
        stdout_line(proc, "Keyboard interrupt received")
        s.sendall(b"two\n")  # still served during the grace
        assert s.recv(100) == b"two\n"
        assert proc.poll() is None
    assert proc.wait(WAIT) == 0  # the client left: nothing to wait for


# ---- a second signal leaves at once


def test_serve_second_sigint_leaves_at_once(procs):
    proc = serve("echo", "--port", "0")
    procs.append(proc)
    port = serving_port(proc)
    with connect(port) as s:
        s.sendall(b"one\n")
        assert s.recv(100) == b"one\n"
        proc.send_signal(signal.SIGINT)
        stdout_line(proc, "Keyboard interrupt received")  # in its grace now
        proc.send_signal(signal.SIGINT)
        assert sees_eof(s)  # before the grace of 30 s is over
        assert proc.wait(WAIT) == 130
    assert proc.stderr is not None
    rest = proc.stderr.read()
    assert "Second SIGINT: leaving now" in rest, rest
    assert "still open" not in rest, rest  # no grace given again


@pytest.mark.parametrize("still_running", [False, True], ids=["script-ended", "script-sleeping"])
def test_run_second_sigint_leaves_at_once(tmp_path, procs, still_running):
    proc = run_script(tmp_path, f"""\
        srv = listen("tcp:0", wire.echo_factory())
        print(f"Serving ECHO on 127.0.0.1 port {{srv.port}}", flush=True)
        {"await sleep(30)" if still_running else ""}
    """)
    procs.append(proc)
    port = serving_port(proc)
    with connect(port) as s:
        s.sendall(b"one\n")
        assert s.recv(100) == b"one\n"
        proc.send_signal(signal.SIGINT)
        notice = stderr_line(proc, "netsh: SIGINT: stopped listening")
        assert notice.rstrip().endswith("waiting up to 30s for 1 connection"), notice
        proc.send_signal(signal.SIGINT)
        assert sees_eof(s)
        assert proc.wait(WAIT) == 130
    assert proc.stderr is not None
    rest = proc.stderr.read()
    assert "Second SIGINT: leaving now" in rest, rest
    assert "waiting up to" not in rest, rest  # no second grace
    assert "still open" not in rest, rest

