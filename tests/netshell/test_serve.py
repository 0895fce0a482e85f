"""``netsh serve`` behaves like ``python -m http.server``: real processes, as a user runs them.

A known default port, one line saying where it serves, one access-log line per request
(http), and Ctrl-C says so and exits 0.
"""

from __future__ import annotations

import errno
import socket
import subprocess

import pytest
from terminal import netsh_argv

WAIT = 30


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(netsh_argv("serve", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def hold(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port``; the test is skipped when it cannot bind."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            pytest.skip(f"port {port} is taken on this machine")
        raise
    s.listen()
    return s


# ---- 1. a fixed default port; a taken one is one clear line


def test_serve_http_listens_on_8000_by_default(tmp_path):
    hold(8000).close()  # free now (or skipped)
    proc = start("http", str(tmp_path))
    try:
        assert proc.stdout.readline()  # it says where it serves once it listens
        with socket.create_connection(("127.0.0.1", 8000), timeout=WAIT) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        stop(proc)


def test_serve_http_on_a_taken_8000_says_so_in_one_line_and_suggests_port_0(tmp_path):
    with hold(8000):
        done = subprocess.run(netsh_argv("serve", "http", str(tmp_path)), capture_output=True,
                              text=True, timeout=WAIT)
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "netsh serve http: [Errno 98] cannot listen on 127.0.0.1:8000: Address already in use"
        "; --port 0 picks any free port"
    ]
