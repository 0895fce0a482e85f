"""``netsh serve irc``: an IRC server from the shell, as a real IRC client sees it.

Real processes: the server registers a client (001 with the nick), ``--password`` is asked
for (464 otherwise), ``--oper`` makes an operator (381), ``--tls`` speaks TLS from the first
byte with a throwaway certificate whose printed fingerprint is the one presented, and each
registration is a line on stderr. Options of other services are refused with a clear line.
"""

from __future__ import annotations

import hashlib
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest
from test_serve import WAIT, start, stop
from test_serve import serving_port as serve_port


def serving_port(proc: subprocess.Popen[str], scheme: str = "irc") -> int:
    return serve_port(proc, "irc", scheme)


class Lines:
    """A blocking IRC client of a few lines: send, and read until a numeric comes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(WAIT)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def until(self, *commands: str) -> list[str]:
        """Lines up to and including the first whose command is one of ``commands``."""
        got = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            while b"\r\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\r\n", 1)
                line = raw.decode()
                got.append(line)
                words = line.split(" ")
                command = words[1] if line.startswith(":") else words[0]
                if command in commands:
                    return got
            data = self.sock.recv(4096)
            if not data:
                raise AssertionError(f"closed before {commands}: {got}")
            self.buffer += data
        raise AssertionError(f"no {commands} in {WAIT} s: {got}")


def test_a_client_registers_and_the_log_says_so() -> None:
    proc = start("irc", "--port", "0")
    try:
        port = serving_port(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            c = Lines(s)
            c.send("NICK ann")
            c.send("USER ann 0 * :Ann Example")
            lines = c.until("001")
            assert re.fullmatch(r":irc\.local 001 ann :.*ann.*", lines[-1]), lines
            c.send("QUIT :bye")
            assert c.until("ERROR")[-1].startswith("ERROR")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0
        assert out == "\nKeyboard interrupt received, exiting.\n"
        assert re.search(r"registered as ann!", err), err
    finally:
        stop(proc)


def test_name_password_and_operators_from_the_command_line() -> None:
    proc = start("irc", "--port", "0", "--name", "irc.example", "--password", "letmein",
                 "--oper", "admin:s3cret")
    try:
        port = serving_port(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            c = Lines(s)
            c.send("PASS letmein")
            c.send("NICK ann")
            c.send("USER ann 0 * :Ann")
            assert c.until("001")[-1].startswith(":irc.example 001 ann ")
            c.send("OPER admin nope")
            assert c.until("464", "491")[-1].split(" ")[1] == "464"  # ERR_PASSWDMISMATCH
            c.send("OPER admin s3cret")
            assert c.until("381")[-1].startswith(":irc.example 381 ann ")
    finally:
        stop(proc)


def test_a_wrong_password_is_refused_with_464() -> None:
    proc = start("irc", "--port", "0", "--password", "letmein")
    try:
        port = serving_port(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            c = Lines(s)
            c.send("PASS wrong")
            c.send("NICK bob")
            c.send("USER bob 0 * :Bob")
            lines = c.until("464")
            assert re.fullmatch(r":irc\.local 464 \S+ :.*", lines[-1]), lines
            assert not any(" 001 " in line for line in lines)
    finally:
        stop(proc)


def test_tls_with_a_throwaway_certificate_whose_fingerprint_is_printed_and_an_ircs_url() -> None:
    proc = start("irc", "--port", "0", "--tls")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.fullmatch(r"TLS throwaway certificate, SHA-256 fingerprint ([0-9A-F:]{95})\n",
                         first)
        assert m is not None, first
        port = serving_port(proc, "ircs")  # TLS from the first byte: an ircs:// URL
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # checked by its fingerprint below
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
            assert der is not None
            assert hashlib.sha256(der).hexdigest().upper() == m.group(1).replace(":", "")
            c = Lines(s)  # type: ignore[arg-type]
            c.send("NICK ann")
            c.send("USER ann 0 * :Ann")
            assert c.until("001")[-1].startswith(":irc.local 001 ann ")
    finally:
        stop(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["http", "--oper", "a:b"], "--oper is for `netsh serve irc` only"),
    (["echo", "--tls"], "--tls is for `netsh serve ftp`, `irc`, `smtp`, `pop3` and `imap`"),
    (["irc", "--user", "a:b"], "--user is for `netsh serve ftp`, `pop3` and `imap`"),
    (["irc", "--oper", "nocolon"], "netsh serve irc: --oper takes NAME:PASSWORD, not 'nocolon'"),
    (["irc", "--account", ":x"], "netsh serve irc: --account takes NAME:PASSWORD, not ':x'"),
])
def test_irc_options_belong_to_irc(args: list[str], message: str) -> None:
    proc = start(*args, "--port", "0")
    _out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2, err
    assert message in err
