"""``netsh run`` stopped with Ctrl-C (SIGINT): the script's own connections close at once,
the grace period is for the connections a listener accepted, and it is given once.

Real processes. The peer the script connects to is a socket of the test that never
closes; what the tests wait on is what that peer sees (EOF), and what the runner prints.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator

import pytest
from terminal import netsh_argv

WAIT = 20  # far below the grace the tests give, so that waiting out the grace fails them


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    """A server of the test's that the script connects to; it never closes a connection."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(WAIT)
        yield server


def run_script(tmp_path, source: str, grace: float, *args: str) -> subprocess.Popen:
    """``netsh run --grace GRACE script.py ARGS...``"""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.Popen(netsh_argv("run", "--grace", str(grace), str(script), *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def accept(peer: socket.socket) -> socket.socket:
    conn, _ = peer.accept()
    conn.settimeout(WAIT)
    return conn


def sees_eof(conn: socket.socket) -> bool:
    """True once the other end closed (recv gives b""), False if it sent bytes instead.
    Raises TimeoutError if nothing comes within WAIT seconds."""
    return conn.recv(100) == b""


def stderr_line(proc: subprocess.Popen, starts: str) -> str:
    """The next line on the runner's stderr that starts with ``starts``."""
    while True:
        line = proc.stderr.readline()
        assert line, f"the runner ended without printing {starts!r}"
        if line.startswith(starts):
            return line


SERVES_AND_CONNECTS = """\
    import sys
    srv = listen("tcp:0", wire.echo_factory())
    mine = await connect(f"tcp:127.0.0.1:{sys.argv[1]}", Protocol)
    print("PORT", srv.port, flush=True)
"""


def test_sigint_closes_the_scripts_own_connection_at_once_while_served_ones_get_the_grace(
    tmp_path, peer,
):
    proc = run_script(tmp_path, SERVES_AND_CONNECTS, 60, str(peer.getsockname()[1]))
    try:
        own = accept(peer)  # the script's connection to the peer
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line + proc.stderr.read()
        port = int(line.split()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as served:
            served.sendall(b"served\n")
            assert served.recv(100) == b"served\n"  # accepted, and being served
            proc.send_signal(signal.SIGINT)
            notice = stderr_line(proc, "netsh: SIGINT: stopped listening")
            assert "closed 1 connection of its own" in notice, notice
            assert "waiting up to 60s for 1 connection" in notice, notice
            # The peer sees the script's connection end now, not when the grace is over:
            assert sees_eof(own)
            # ...while the connection being served still has its grace: still open, and
            # the runner still waits for it.
            served.sendall(b"still\n")
            assert served.recv(100) == b"still\n"
            assert proc.poll() is None
        # The served peer leaves: nothing is left to wait for.
        assert proc.wait(WAIT) == 130
        assert "still open" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_sigint_while_the_script_still_runs_closes_its_connection_at_once(tmp_path, peer):
    proc = run_script(tmp_path, """\
        import sys
        mine = await connect(f"tcp:127.0.0.1:{sys.argv[1]}", Protocol)
        print("CONNECTED", flush=True)
        await Deferred()  # waits for good
    """, 60, str(peer.getsockname()[1]))
    try:
        own = accept(peer)
        assert proc.stdout.readline() == "CONNECTED\n", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        assert sees_eof(own)
        assert proc.wait(WAIT) == 130
        assert "still open" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_a_connection_that_cannot_finish_gets_the_grace_once_not_twice(tmp_path):
    # chargen writes for ever; a client that never reads fills the buffers, so closing
    # the connection cannot flush it. After the grace the runner cuts it: the reactor's
    # stop() must not give it a second grace (and warn a second time).
    grace = 2.0
    proc = run_script(tmp_path, """\
        srv = listen("tcp:0", wire.chargen_factory())
        print("PORT", srv.port, flush=True)
    """, grace)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line + proc.stderr.read()
        with socket.socket() as stuck:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.connect(("127.0.0.1", int(line.split()[1])))
            stuck.recv(1)  # served: chargen is writing
            proc.send_signal(signal.SIGINT)
            stderr_line(proc, "netsh: SIGINT: stopped listening")
            started = time.monotonic()
            assert proc.wait(WAIT) == 130
            took = time.monotonic() - started
        rest = proc.stderr.read()
        assert "1 connection still open after 2.0s: closing them" in rest, rest
        assert "Connections still open" not in rest, rest  # the reactor's own warning
        assert took < 2 * grace, f"stopping took {took:.1f}s for a grace of {grace}s"
    finally:
        proc.kill()
        proc.wait()


def test_an_on_shutdown_hook_says_goodbye_on_the_scripts_own_connection(tmp_path, peer):
    proc = run_script(tmp_path, """\
        import sys
        mine = await connect(f"tcp:127.0.0.1:{sys.argv[1]}", Protocol)
        reactor.on_shutdown(mine.transport.write, b"QUIT :bye\\r\\n")
        print("CONNECTED", flush=True)
        await Deferred()  # waits for good
    """, 60, str(peer.getsockname()[1]))
    try:
        own = accept(peer)
        assert proc.stdout.readline() == "CONNECTED\n", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        said = b""
        while chunk := own.recv(100):
            said += chunk
        assert said == b"QUIT :bye\r\n"  # written before the connection closed
        assert proc.wait(WAIT) == 143
    finally:
        proc.kill()
        proc.wait()
