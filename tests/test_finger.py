"""The finger tutorial (docs/finger.md): each step in scripts/examples/finger, run headless
with ``netsh run`` as a person would, and checked by talking to it over the network:
the finger protocol (RFC 1288) over a plain TCP socket, curl for the web front end, and
a real IRC client (the ``irc`` library) for the bot, against the script's own IRC server
and against ngIRCd.

Each script is started on port 0 and says where it listens; the test waits for that line
(with a deadline), talks to it, then stops it with SIGINT and checks it exits as
``netsh run`` promises (130), with nothing on stderr that looks like an error.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import irc.client
import pytest
from irc_peers import ngircd_server
from peers import require
from terminal import netsh_argv

ROOT = Path(__file__).resolve().parent.parent
STEPS = ROOT / "scripts" / "examples" / "finger"
WAIT = 30.0  # seconds: generous, a loaded machine is slow, and a pass returns at once

ALICE = b"alice: Alice Liddell\r\n"
ALICE_W = b"alice: Alice Liddell\r\n  Plan: Follow the white rabbit.\r\n"
BOB = b"bob: Bob Hacker\r\n"
BOB_W = b"bob: Bob Hacker\r\n  Plan: Fix the printer, again.\r\n"
DENIED = b"Finger forwarding service denied\r\n"
BAD = b"Bad query: a finger query is printable ASCII\r\n"
TOO_LONG = b"Query too long: at most 256 bytes\r\n"


class Step:
    """``netsh run STEP ARGS`` in the background, running this checkout's code.

    Threads read its stdout and stderr line by line into queues; ``wait_for`` takes the
    lines of one of them with a deadline, so a test waits on what the script says."""

    def __init__(self, name: str, *args: str, cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            netsh_argv("run", str(STEPS / name), *args), cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.queues: dict[str, queue.Queue[str | None]] = {}
        self.seen: dict[str, list[str]] = {}
        self.readers = []
        for stream_name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            self.queues[stream_name] = queue.Queue()
            self.seen[stream_name] = []
            reader = threading.Thread(target=self._read, args=(stream, stream_name), daemon=True)
            reader.start()
            self.readers.append(reader)

    def _read(self, stream: Any, stream_name: str) -> None:
        for line in stream:
            self.queues[stream_name].put(line.rstrip("\n"))
        self.queues[stream_name].put(None)

    def wait_for(self, pattern: str, stream: str = "stdout") -> re.Match[str]:
        """The next line of ``stream`` that matches ``pattern`` (whole line), within WAIT."""
        deadline = time.monotonic() + WAIT
        lines, seen = self.queues[stream], self.seen[stream]
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line like {pattern!r} on {stream} in {WAIT}s; saw {seen}")
            if line is None:
                lines.put(None)
                pytest.fail(f"{stream} ended before a line like {pattern!r}; saw {seen}; "
                            f"stderr so far: {self.seen['stderr']}")
            seen.append(line)
            m = re.fullmatch(pattern, line)
            if m:
                return m

    def port(self, what: str = "finger server") -> int:
        return int(self.wait_for(rf"{what} on 127\.0\.0\.1:(\d+)").group(1))

    def stop(self) -> tuple[int, str]:
        """SIGINT, as Ctrl-C; the exit status and all it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for reader in self.readers:
            reader.join(WAIT)
        errors = self.queues["stderr"]
        while (line := errors.get_nowait()) is not None:
            self.seen["stderr"].append(line)
        return code, "\n".join(self.seen["stderr"])


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Step]]:
    """Start steps in ``tmp_path``; each is stopped after the test, also when it fails."""
    started: list[Step] = []

    def start(name: str, *args: str) -> Step:
        step = Step(name, *args, cwd=tmp_path)
        started.append(step)
        return step

    yield start
    for step in started:
        if step.proc.poll() is None:
            step.stop()


def stops_cleanly(step: Step) -> None:
    code, err = step.stop()
    assert code == 130, f"exit {code}; stderr:\n{err}"
    assert "netsh: SIGINT: stopping" in err, err
    for bad in ("Traceback", "ERROR", "WARNING"):
        assert bad not in err, err


def read_all(s: socket.socket) -> bytes:
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    return reply


def finger(port: int, *pieces: bytes, half_close: bool = False) -> bytes:
    """Send ``pieces`` (each its own write), then read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        for piece in pieces:
            s.sendall(piece)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_all(s)


def check_rfc1288(port: int, users: list[tuple[bytes, bytes]], missing: bytes = b"carol",
                  half_close: bool = False) -> None:
    """The rules of RFC 1288 as the tutorial applies them from step 4 on; ``users`` is each
    user's (answer, verbose answer) in login order. The server must still answer at the
    end, whatever it was sent before."""
    assert finger(port, b"\r\n") == b"".join(short for short, _ in users)
    assert finger(port, b"/W\r\n") == b"".join(long for _, long in users)
    first, first_w = users[0]
    login = first.split(b":")[0]
    assert finger(port, login + b"\r\n") == first
    if half_close:  # the client shuts its side once the query is sent: still answered
        for _ in range(3):
            assert finger(port, login + b"\r\n", half_close=True) == first
            assert finger(port, b"\r\n", half_close=True) == b"".join(s for s, _ in users)
    assert finger(port, b"/W " + login + b"\r\n") == first_w
    assert finger(port, b"/w   " + login + b"\r\n") == first_w
    assert finger(port, login[:2], login[2:] + b"\r\n") == first  # however the bytes come
    assert finger(port, missing + b"\r\n") == b"No such user: " + missing + b"\r\n"
    for forwarded in (login + b"@example.org", b"@example.org", b"/W " + login + b"@a@b"):
        assert finger(port, forwarded + b"\r\n") == DENIED, forwarded
    assert finger(port, "zoë\r\n".encode()) == BAD
    assert finger(port, b"al\x1b[2Jice\r\n") == BAD
    assert finger(port, b"a" * 259) == TOO_LONG  # no end of line in 256 bytes + CR LF
    assert finger(port, b"a" * 300 + b"\r\n") == TOO_LONG
    # one query per connection: a second line is not answered (nor does it break anything)
    assert finger(port, login + b"\r\n" + missing + b"\r\n") == first
    assert finger(port, login + b"\r\n") == first  # still serving


# ---- steps 1 to 3: the protocol takes shape


def test_step1_refuses_every_connection(run):
    step = run("01_refuse.py", "--port", "0")
    port = step.port()
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            assert s.recv(100) == b""  # closed, not a byte said
    stops_cleanly(step)


def test_step2_reads_the_query_then_hangs_up(run):
    step = run("02_hang_up.py", "--port", "0")
    port = step.port()
    assert finger(port, b"alice\r\n") == b""
    assert finger(port, b"ali", b"ce\r\n") == b""
    stops_cleanly(step)


def test_step3_answers_no_such_user(run):
    step = run("03_no_such_user.py", "--port", "0")
    port = step.port()
    assert finger(port, b"alice\r\n") == b"No such user\r\n"
    assert finger(port, b"\r\n") == b"No such user\r\n"
    stops_cleanly(step)


# ---- steps 4 to 7: RFC 1288, over a dict, Deferreds, a file, a database


def test_step4_answers_from_a_dict_by_rfc1288(run):
    step = run("04_users.py", "--port", "0")
    check_rfc1288(step.port(), [(ALICE, ALICE_W), (BOB, BOB_W)])
    stops_cleanly(step)


def test_step5_answers_through_deferreds(run):
    step = run("05_deferred.py", "--port", "0")
    check_rfc1288(step.port(), [(ALICE, ALICE_W), (BOB, BOB_W)])
    stops_cleanly(step)


def test_step6_reads_the_users_file_again_when_it_changes(run, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# who is here\nalice:Alice Liddell:Follow the white rabbit.\n"
                     "bob:Bob Hacker:Fix the printer, again.\n")
    step = run("06_users_file.py", "--port", "0", "--users", str(users), "--every", "0.1")
    step.wait_for(rf"2 users from {re.escape(str(users))}")
    port = step.port()
    check_rfc1288(port, [(ALICE, ALICE_W), (BOB, BOB_W)])
    users.write_text(users.read_text() + "carol:Carol Shaw:River Raid\nnot a user line\n")
    step.wait_for(rf"3 users from {re.escape(str(users))}")
    assert finger(port, b"/W carol\r\n") == b"carol: Carol Shaw\r\n  Plan: River Raid\r\n"
    step.wait_for(r".* WARNING finger: .*users.txt, line 5: not login:name:plan, skipped",
                  "stderr")
    users.unlink()  # unreadable: the users read last stay
    step.wait_for(r".* ERROR finger: cannot read the users \(the 3 read last stay\): .*",
                  "stderr")
    assert finger(port, b"carol\r\n") == b"carol: Carol Shaw\r\n"
    users.write_text("dora:Dora Explorer:Map the cave.\n")
    step.wait_for(rf"1 users from {re.escape(str(users))}")
    assert finger(port, b"\r\n") == b"dora: Dora Explorer\r\n"
    code, err = step.stop()
    assert code == 130, err


def make_db(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (login TEXT PRIMARY KEY, name TEXT, plan TEXT)")
        db.executemany("INSERT INTO users VALUES (?, ?, ?)", rows)
    db.close()


DORA = b"dora: Dora Explorer\r\n"
DORA_W = b"dora: Dora Explorer\r\n  Plan: Map the cave.\r\n"
ERIC = b"eric: Eric Idle\r\n"
ERIC_W = b"eric: Eric Idle\r\n  Plan: Look on the bright side.\r\n"
DB_ROWS = [("eric", "Eric Idle", "Look on the bright side."), ("dora", "Dora Explorer",
                                                                 "Map the cave.")]


def test_step7_looks_users_up_in_the_database(run, tmp_path):
    make_db(tmp_path / "people.sqlite3", DB_ROWS)
    step = run("07_database.py", "--port", "0", "--db", "people.sqlite3")
    port = step.port()
    check_rfc1288(port, [(DORA, DORA_W), (ERIC, ERIC_W)], missing=b"alice", half_close=True)
    # Many clients at once: each lookup runs in the pool's threads, each gets its answer.
    answers: list[bytes] = []
    clients = [threading.Thread(target=lambda: answers.append(finger(port, b"dora\r\n")))
               for _ in range(20)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(WAIT)
    assert answers == [DORA] * 20
    stops_cleanly(step)


@pytest.mark.parametrize("script, more", [("07_database.py", []),
                                          ("10_everything.py", ["--http-port", "0"])])
def test_steps_7_to_10_answer_a_client_that_shut_its_side_while_the_lookup_waits(
        run, tmp_path, script, more):
    make_db(tmp_path / "people.sqlite3", DB_ROWS)
    step = run(script, "--port", "0", "--db", "people.sqlite3", *more)
    port = step.port()
    assert finger(port, b"dora\r\n") == DORA
    lock = sqlite3.connect(tmp_path / "people.sqlite3", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # from now on, lookups wait for the database
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as waiting:
            waiting.sendall(b"eric\r\n")
            waiting.shutdown(socket.SHUT_WR)
            # A query answered without the database: by the time its answer is here, the
            # server has long read the end of file that came before it on the other one.
            assert finger(port, b"eric@elsewhere\r\n") == DENIED
            lock.execute("COMMIT")
            assert read_all(waiting) == ERIC
    finally:
        lock.close()
    stops_cleanly(step)


def test_step7_makes_its_database_when_there_is_none(run, tmp_path):
    step = run("07_database.py", "--port", "0")
    assert finger(step.port(), b"\r\n") == ALICE + BOB
    stops_cleanly(step)
    with sqlite3.connect(tmp_path / "finger.sqlite3") as db:
        assert db.execute("SELECT login FROM users ORDER BY login").fetchall() == [
            ("alice",), ("bob",)]
    db.close()


def test_step7_a_failing_lookup_is_told_and_logged(run, tmp_path):
    with sqlite3.connect(tmp_path / "old.sqlite3") as db:
        db.execute("CREATE TABLE users (login TEXT, name TEXT)")  # no plan column
    db.close()
    step = run("07_database.py", "--port", "0", "--db", "old.sqlite3")
    port = step.port()
    assert finger(port, b"alice\r\n") == b"Sorry: the lookup failed\r\n"
    assert finger(port, b"alice@elsewhere\r\n") == DENIED  # still serving
    code, err = step.stop()
    assert code == 130, err
    assert "finger lookup failed" in err and "no such column: plan" in err, err


# ---- steps 8 to 10: front ends


def curl(url: str) -> tuple[int, dict[str, str], str]:
    done = subprocess.run([require("curl"), "-sS", "-i", url], capture_output=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.decode().partition("\r\n\r\n")
    status_line, *fields = head.split("\r\n")
    headers = {k.lower(): v for k, v in (f.split(": ", 1) for f in fields)}
    return int(status_line.split()[1]), headers, body


def check_web(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    status, headers, body = curl(f"{base}/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert re.findall(r'<li><a href="/([^"]+)">([^<]+)</a>: ([^<]+)</li>', body) == [
        ("dora", "dora", "Dora Explorer"), ("eric", "eric", "Eric Idle"),
        ("mallory", "mallory", "&lt;script&gt;alert(1)&lt;/script&gt;")]
    status, _, body = curl(f"{base}/dora")
    assert status == 200
    assert "<h1>dora</h1><p>Dora Explorer</p><p>Plan: Map the cave.</p>" in body
    status, _, body = curl(f"{base}/mallory")
    assert "<script>" not in body and "&lt;script&gt;" in body
    status, _, body = curl(f"{base}/alice")
    assert (status, body) == (404, "404 Not Found: no such user: alice\n")


WEB_ROWS = [*DB_ROWS, ("mallory", "<script>alert(1)</script>", "<b>bold</b>")]


def test_step8_serves_the_users_as_web_pages(run, tmp_path):
    make_db(tmp_path / "people.sqlite3", WEB_ROWS)
    step = run("08_web.py", "--port", "0", "--http-port", "0", "--db", "people.sqlite3")
    finger_port, web_port = step.port(), step.port("web server")
    check_web(web_port)
    assert finger(finger_port, b"/W dora\r\n") == DORA_W
    stops_cleanly(step)


class IRCUser:
    """A real IRC client (the ``irc`` library) driven from the test: it records what it
    hears, and ``wait_for`` turns its loop (select on the socket) until a wanted event."""

    def __init__(self, port: int, nick: str) -> None:
        self.reactor = irc.client.Reactor()
        self.events: list[Any] = []
        for kind in ("welcome", "join", "pubmsg", "privmsg", "quit", "privnotice"):
            self.reactor.add_global_handler(kind, lambda c, e: self.events.append(e))
        self.connection = self.reactor.server().connect("127.0.0.1", port, nick)
        self.wait_for(lambda e: e.type == "welcome", "the welcome (001)")

    def wait_for(self, wanted: Callable[[Any], bool], what: str) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for e in self.events:
                if wanted(e):
                    self.events.remove(e)
                    return e
            self.reactor.process_once(0.1)
        pytest.fail(f"no {what} in {WAIT}s; heard {[(e.type, e.arguments) for e in self.events]}")

    def said(self, kind: str, target: str) -> str:
        e = self.wait_for(lambda e: e.type == kind and e.source.nick == "fingerbot"
                          and e.target == target, f"{kind} from fingerbot to {target}")
        return e.arguments[0]

    def close(self) -> None:
        self.connection.disconnect("done")


def check_bot(port: int) -> IRCUser:
    """Ask the bot in #finger and in private, as a person on IRC would."""
    user = IRCUser(port, "tester")
    user.connection.join("#finger")
    user.wait_for(lambda e: e.type == "join" and e.source.nick == "tester", "our join")
    user.connection.privmsg("#finger", "!finger /W dora")
    assert [user.said("pubmsg", "#finger") for _ in range(2)] == [
        "dora: Dora Explorer", "  Plan: Map the cave."]
    user.connection.privmsg("#finger", "!finger")
    assert [user.said("pubmsg", "#finger") for _ in range(2)] == [
        "dora: Dora Explorer", "eric: Eric Idle"]
    user.connection.privmsg("fingerbot", "finger dora@elsewhere.example")
    assert user.said("privmsg", "tester") == "Finger forwarding service denied"
    user.connection.privmsg("fingerbot", "finger alice")
    assert user.said("privmsg", "tester") == "No such user: alice"
    return user


def test_step9_the_bot_answers_on_its_own_irc_server(run, tmp_path):
    make_db(tmp_path / "people.sqlite3", DB_ROWS)
    step = run("09_irc_bot.py", "--port", "0", "--db", "people.sqlite3")
    finger_port = step.port()
    irc_port = step.port("IRC server")
    step.wait_for(rf"fingerbot in #finger on 127\.0\.0\.1:{irc_port}")
    check_bot(irc_port).close()
    assert finger(finger_port, b"eric\r\n") == ERIC
    stops_cleanly(step)


def test_step10_finger_web_and_irc_share_one_service_on_ngircd(run, tmp_path):
    make_db(tmp_path / "people.sqlite3", WEB_ROWS)
    with ngircd_server() as ngircd:
        step = run("10_everything.py", "--port", "0", "--http-port", "0", "--db",
                   "people.sqlite3", "--irc", f"127.0.0.1:{ngircd.port}", "--nick", "fingerbot",
                   "--channel", "#finger")
        finger_port, web_port = step.port(), step.port("web server")
        step.wait_for(rf"fingerbot in #finger on 127\.0\.0\.1:{ngircd.port}")
        user = check_bot(ngircd.port)
        check_web(web_port)
        check_rfc1288(finger_port, [(DORA, DORA_W), (ERIC, ERIC_W),
                                    (b"mallory: <script>alert(1)</script>\r\n",
                                     b"mallory: <script>alert(1)</script>\r\n"
                                     b"  Plan: <b>bold</b>\r\n")],
                      missing=b"alice", half_close=True)
        stops_cleanly(step)
        user.wait_for(lambda e: e.type == "quit" and e.source.nick == "fingerbot",
                      "fingerbot leaving IRC")
        user.close()


def test_step10_lets_go_of_a_silent_client_after_its_timeout_and_at_shutdown(run):
    step = run("10_everything.py", "--port", "0", "--http-port", "0", "--timeout", "0.2")
    port = step.port()
    step.wait_for(r"fingerbot in #finger on .*")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as silent:
        assert silent.recv(100) == b""  # closed by the server once its timeout ran out
    assert finger(port, b"bob\r\n") == BOB
    step2 = run("10_everything.py", "--port", "0", "--http-port", "0", "--db", "other.sqlite3")
    port = step2.port()
    step2.wait_for(r"fingerbot in #finger on .*")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as silent:
        assert finger(port, b"alice\r\n") == ALICE  # the silent one is accepted, and open
        code, err = step2.stop()
        assert silent.recv(100) == b""
    assert code == 130, err
    # Closed at once, not given the grace (netsh run would say it waits for it).
    assert "waiting up to" not in err, err
    stops_cleanly(step)
