"""``netsh serve`` behaves like ``python -m http.server``: real processes, as a user runs them.

A known default port, one line saying where it serves, one access-log line per request
(http), and Ctrl-C says so and exits 0.
"""

from __future__ import annotations

import errno
import logging
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from terminal import netsh_argv

from netshell.app.runner import AccessLogFormatter, serving_line

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


def serving_port(proc: subprocess.Popen[str], service: str, scheme: str | None = None) -> int:
    """The port ``netsh serve ftp`` or ``irc`` says it serves on, in its first line, with
    the URL's ``scheme`` (the service's name unless given)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    name, scheme = service.upper(), scheme or service.lower()
    m = re.fullmatch(rf"Serving {name} on 127\.0\.0\.1 port (\d+) "
                     rf"\({scheme}://127\.0\.0\.1:\1/\) \.\.\.\n", line)
    assert m is not None, (line, proc.stderr.read() if proc.poll() is not None else "")
    return int(m.group(1))


def hold(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port``; the test is skipped when it cannot bind."""
    s = socket.socket()
    # As a server binds: a closed connection's TIME_WAIT does not count as taken.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        "netsh serve http: cannot listen on 127.0.0.1:8000: address already in use"
        "; --port 0 picks any free port"
    ]


# ---- 2. one line saying where it serves, in http.server's words


SERVING = re.compile(
    r"Serving HTTP on 127\.0\.0\.1 port (\d+) \(http://127\.0\.0\.1:\1/\) \.\.\.\n")


def start_http(root: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``netsh serve http root --port 0 ARGS``, and its URL once it says where it serves."""
    proc = start("http", str(root), "--port", "0", *args)
    line = proc.stdout.readline()
    m = SERVING.fullmatch(line)
    if m is None:
        stop(proc)
        raise AssertionError(f"{line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}")
    return proc, f"http://127.0.0.1:{m.group(1)}/"


def test_serve_http_says_where_it_serves_as_http_server_does(tmp_path):
    (tmp_path / "page.txt").write_text("static page\n")
    proc, url = start_http(tmp_path)
    try:
        with urllib.request.urlopen(url + "page.txt", timeout=WAIT) as answer:
            assert answer.read() == b"static page\n"
    finally:
        stop(proc)


def test_the_serving_line_puts_an_ipv6_host_in_brackets_in_the_url():
    assert (serving_line("http", "::1", 8000)
            == "Serving HTTP on ::1 port 8000 (http://[::1]:8000/) ...")


# ---- 3. one access-log line per request on stderr (http.server's), --quiet without


ACCESS = re.compile(r'127\.0\.0\.1 - - \[(\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d)\] (.*)\n')


def test_serve_http_logs_each_request_on_stderr_as_http_server_does(tmp_path):
    (tmp_path / "page.txt").write_text("static page\n")
    proc, url = start_http(tmp_path)
    try:
        before = time.time()
        with urllib.request.urlopen(url + "page.txt", timeout=WAIT) as answer:
            answer.read()
        m = ACCESS.fullmatch(proc.stderr.readline())
        assert m and m.group(2) == '"GET /page.txt HTTP/1.1" 200 -', m
        logged = time.mktime(time.strptime(m.group(1), "%d/%b/%Y %H:%M:%S"))  # local time
        assert int(before) <= logged <= time.time()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "missing%01", timeout=WAIT)
        m = ACCESS.fullmatch(proc.stderr.readline())
        assert m and m.group(2) == r'"GET /missing%01 HTTP/1.1" 404 -', m
    finally:
        stop(proc)


def test_serve_http_quiet_logs_no_requests(tmp_path):
    proc, url = start_http(tmp_path, "--quiet")
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as answer:
            answer.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
        assert err == ""
    finally:
        stop(proc)


def test_the_access_log_escapes_control_characters_as_http_server_does():
    record = logging.LogRecord("netshell.http.access", logging.INFO, __file__, 1,
                               '%s - - [%s] "%s" %d %s',
                               ("::1", "x", "GET /\x1b\\ HTTP/1.1", 200, 12), None)
    line = AccessLogFormatter().format(record)
    assert line.endswith('] "GET /\\x1b\\\\ HTTP/1.1" 200 -') and line.startswith("::1 - - [")


# ---- 4. Ctrl-C says so and exits 0


def test_ctrl_c_says_so_on_its_own_line_and_exits_0(tmp_path):
    proc, url = start_http(tmp_path)
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as answer:
            answer.read()
        assert ACCESS.fullmatch(proc.stderr.readline())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert out == "\nKeyboard interrupt received, exiting.\n"
        assert err == ""  # no traceback, nothing else
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=WAIT)  # the listener is closed
    finally:
        stop(proc)


# ---- 5. every service the same way: a fixed default port, the line, Ctrl-C


SMALL = {"echo": 7007, "discard": 9009, "daytime": 13013, "qotd": 17017, "chargen": 19019}


@pytest.mark.parametrize(("service", "port"), sorted(SMALL.items()))
def test_every_small_service_serves_like_http_server_on_its_fixed_port(service, port):
    hold(port).close()  # free now (or skipped)
    proc = start(service)
    try:
        assert proc.stdout.readline() == f"Serving {service.upper()} on 127.0.0.1 port {port} ...\n"
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            if service in ("echo", "discard"):
                s.sendall(b"ping\n")
            if service != "discard":
                assert s.recv(100)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
        assert (proc.returncode, out, err) == (0, "\nKeyboard interrupt received, exiting.\n", "")
    finally:
        stop(proc)


def test_the_default_ports_are_the_documented_ones():
    from netshell.app import cli, runner

    assert runner.DEFAULT_PORTS == {"http": 8000, "ftp": 2121, "irc": 6667, "smtp": 2525,
                                    "pop3": 1110, "imap": 1143, **SMALL}
    assert set(runner.DEFAULT_PORTS) == set(runner.SERVICES)
    page = (Path(__file__).resolve().parents[2] / "docs" / "sessions.md").read_text()
    (action,) = [a for a in cli.build_parser()._subparsers._group_actions[0]
                 .choices["serve"]._actions if a.dest == "port"]
    for service, port in runner.DEFAULT_PORTS.items():
        assert f"| `{service}` | {port} |" in page, service
        assert f"{service} {port}" in action.help, service


def test_the_directory_may_come_after_the_options_as_with_http_server(tmp_path):
    (tmp_path / "where.txt").write_text("here")
    proc = start("http", "--port", "0", str(tmp_path))
    try:
        m = SERVING.fullmatch(proc.stdout.readline())
        assert m is not None, proc.stderr.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/where.txt",
                                    timeout=WAIT) as answer:
            assert answer.read() == b"here"
    finally:
        stop(proc)


def test_a_second_directory_is_still_refused(tmp_path):
    done = subprocess.run(netsh_argv("serve", "http", "--port", "0", str(tmp_path), "extra"),
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2 and "unrecognized arguments:" in done.stderr
    assert "extra" in done.stderr.splitlines()[-1]
