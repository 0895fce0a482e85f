"""The example scripts in scripts/examples, run headless with ``netsh run`` as a user would."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from peers import free_port, run_peer, start_peer
from terminal import netsh_argv

EXAMPLES = Path(__file__).parent.parent / "scripts" / "examples"
WAIT = 30


def start(name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(netsh_argv("run", str(EXAMPLES / name), *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(WAIT)
    finally:
        proc.kill()


def address(proc: subprocess.Popen, what: str) -> int:
    line = proc.stdout.readline()
    m = re.fullmatch(rf"{what} on 127\.0\.0\.1:(\d+)\n", line)
    assert m, line + proc.stderr.read()
    return int(m.group(1))


def read_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(1)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data[:-2]


def test_echo_service_echoes_and_stops_on_sigterm():
    port = free_port()
    proc = start("echo_service.py", str(port))
    try:
        assert address(proc, "echo service") == port
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            s.sendall(b"echo me")
            assert s.recv(100) == b"echo me"
    finally:
        assert stop(proc) == 143


def test_chat_server_relays_lines_between_clients():
    proc = start("chat_server.py")
    try:
        port = address(proc, "chat server")
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as alice:
            assert read_line(alice).startswith(b"* welcome")
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as bob:
                assert read_line(bob).startswith(b"* welcome")
                assert read_line(alice).endswith(b"joined")
                bob.sendall(b"hi alice\r\n")
                assert re.fullmatch(rb"<127\.0\.0\.1:\d+> hi alice", read_line(alice))
                alice.sendall(b"/who\r\n")
                assert read_line(alice).count(b"127.0.0.1:") == 2
                bob.sendall(b"/quit\r\n")
                assert bob.recv(100) == b""
            assert read_line(alice).endswith(b"left")
    finally:
        assert stop(proc) == 143


async def test_fetch_prints_what_a_real_http_server_sends(tmp_path):
    (tmp_path / "page.txt").write_text("served by python -m http.server\n")
    port = free_port()
    peer = await start_peer([sys.executable, "-u", "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(tmp_path)],
                            ready=r"Serving HTTP", ready_on="stdout")
    async with peer:
        code, out, err = await run_peer(
            netsh_argv("run", str(EXAMPLES / "fetch.py"), f"http://127.0.0.1:{port}/page.txt"),
            timeout=WAIT)
    assert code == 0, err
    assert out.decode().splitlines() == ["HTTP/1.0 200 OK", "served by python -m http.server"]


def test_fetch_explains_its_usage():
    done = subprocess.run(netsh_argv("run", str(EXAMPLES / "fetch.py")), capture_output=True,
                          text=True, timeout=WAIT)
    assert done.returncode == 1 and "usage: netsh run fetch.py" in done.stderr


def test_the_saved_session_replays_with_its_notes():
    done = subprocess.run(netsh_argv("run", "--exit", str(EXAMPLES / "saved_session.py")),
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"<Deferred #\d+ pending>", lines[0])
    assert re.fullmatch(r"Deferred #\d+ fired: 'sent'", lines[1])
    assert lines[2] == "client got b'hello\\n'"
