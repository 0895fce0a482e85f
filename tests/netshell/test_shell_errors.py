"""Errors a person can read, with the Console (no terminal): each common mistake is one line,
other errors keep only the person's own frames, ``tb()`` and ``verbose()`` show them in full;
``netsh run`` does the same on stderr."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import free_port
from terminal import netsh_argv

import netshell as ns
from netshell.shell import console as console_module
from netshell.shell import namespace
from netshell.shell.console import Console, classify
from netshell.shell.tracebacks import format_error, one_line

NETSHELL_DIR = os.path.dirname(ns.__file__)


class Shown:
    """What the console printed, one entry per print."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def __call__(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> str:
        text, self.parts = "\n".join(self.parts), []
        return text


@pytest.fixture
def shown() -> Shown:
    return Shown()


@pytest.fixture
def console(shown: Shown) -> Iterator[Console]:
    c = Console({}, out=shown)
    namespace.build(c, out=shown)
    yield c
    c.close()
    for listener in ns.reactor.listeners:
        listener.close()


async def run(console: Console, shown: Shown, source: str) -> str:
    shown.take()
    await console.run(source)
    return shown.take()


def refused_port() -> int:
    """A port that surely refuses: bound, then closed."""
    return free_port()


# ---- each common mistake, one line


async def test_a_port_held_by_this_sessions_listener_says_which(console, shown) -> None:
    await run(console, shown, "class Echo(Protocol): pass")
    await run(console, shown, "l = listen(0, Echo)")
    port, n = console.namespace["l"].port, console.namespace["l"].number
    text = await run(console, shown, "listen(l.port, Echo)")
    assert text == (f"cannot listen on 127.0.0.1:{port}: address already in use"
                    f" — held by listener #{n} — listener({n}).close()")
    # the advice works
    await run(console, shown, f"listener({n}).close()")
    assert await run(console, shown, f"l2 = listen({port}, Echo)") == ""


async def test_a_port_held_by_another_program_is_one_line(console, shown) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = await run(console, shown, f"listen('tcp:{port}', Factory.for_protocol(Protocol))")
    assert text == f"cannot listen on 127.0.0.1:{port}: address already in use"


async def test_http_serve_on_a_taken_port_is_one_line(console, shown, tmp_path) -> None:
    await run(console, shown, f"web = http.serve({str(tmp_path)!r}, port=0)")
    port, n = console.namespace["web"].port, console.namespace["web"].number
    text = await run(console, shown, f"http.serve({str(tmp_path)!r}, port={port})")
    assert text == (f"cannot listen on 127.0.0.1:{port}: address already in use"
                    f" — held by listener #{n} — listener({n}).close()")


async def test_a_refused_connection_is_one_line(console, shown) -> None:
    port = refused_port()
    text = await run(console, shown, f"await connect('tcp:127.0.0.1:{port}', Protocol)")
    assert text == f"cannot connect to 127.0.0.1:{port}: connection refused"
    text = await run(console, shown, f"await http.get('http://127.0.0.1:{port}/')")
    assert text == f"cannot connect to 127.0.0.1:{port}: connection refused"


async def test_a_protocol_librarys_refusal_is_one_line_naming_its_class(
        console, shown, tmp_path) -> None:
    # An FTP server's refusal (a NetshellError of the protocol library) says what happened
    # in its message: one line, the class by its short name (what to catch), no frames.
    await run(console, shown, f"srv = ftp.serve({str(tmp_path)!r}, users={{'bob': 'pw'}}, "
                              "anonymous=False, login_delay=0)")
    text = await run(console, shown,
                     "await ftp.connect('127.0.0.1', srv.port, user='bob', password='x')")
    assert text == "FTPPermanentError: 530 Login incorrect."
    await run(console, shown, "c = await ftp.connect('127.0.0.1', srv.port, user='bob', "
                              "password='pw')")
    text = await run(console, shown, "await c.retrieve('nothing.txt')")
    assert text == "FTPPermanentError: 550 No such file or directory: /nothing.txt"
    # the person's own frames still show when there are some worth showing
    text = await run(console, shown, "async def get():\n    return await c.size('gone')\n")
    text = await run(console, shown, "await get()")
    assert text.startswith("Traceback (most recent call last):")
    assert text.endswith("FTPPermanentError: 550 No such file or directory: /gone")
    assert "protocols/ftp" not in text


async def test_a_timed_out_connection_is_one_line(console, shown) -> None:
    # A backlog of 0 holds one connection that nobody accepts; the next SYN goes unanswered.
    with socket.socket() as full, socket.socket() as first:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        first.connect(("127.0.0.1", port))
        text = await run(console, shown,
                         f"await connect('tcp:127.0.0.1:{port}:timeout=0.5', Protocol)")
    assert text == f"cannot connect to 127.0.0.1:{port}: timed out after 0.5s"


async def test_a_bad_endpoint_string_says_what_is_wrong_and_what_is_expected(
    console, shown
) -> None:
    text = await run(console, shown, "listen('tcp:foo', Protocol)")
    assert text == "endpoint 'tcp:foo': port 'foo' is not a number (expected tcp:PORT)"
    text = await run(console, shown, "listen('tpc:80', Protocol)")
    assert text == ("endpoint 'tpc:80': unknown kind 'tpc' (did you mean 'tcp'?); "
                    "known kinds: tcp, tcp6, unix, udp, tls")
    text = await run(console, shown, "connect('tcp:example.org:http', Protocol)")
    assert text == ("endpoint 'tcp:example.org:http': port 'http' is not a number "
                    "(expected tcp:HOST:PORT)")
    text = await run(console, shown, "listen('8000', Protocol)")
    assert text == ("endpoint '8000': unknown kind '8000' (did you mean 'tcp:8000'?); "
                    "known kinds: tcp, tcp6, unix, udp, tls")


async def test_a_unix_socket_in_use_says_which_listener(console, shown, tmp_path) -> None:
    path = str(tmp_path / "s.sock")
    await run(console, shown, f"u = listen('unix:{path}', Factory.for_protocol(Protocol))")
    n = console.namespace["u"].number
    text = await run(console, shown, f"listen('unix:{path}', Factory.for_protocol(Protocol))")
    assert text == (f"cannot listen on unix:{path}: address already in use (a live server "
                    f"listens there) — held by listener #{n} — listener({n}).close()")


async def test_a_dns_failure_is_one_line(console, shown) -> None:
    text = await run(console, shown, "await connect('tcp:nosuch.invalid:80', Protocol)")
    assert "\n" not in text
    assert text.startswith("cannot resolve 'nosuch.invalid': "), text
    assert len(text) > len("cannot resolve 'nosuch.invalid': ")  # with the resolver's reason


async def test_a_tls_verification_failure_is_one_line(console, shown) -> None:
    await run(console, shown, "cert, key, ca = tls.self_signed()")
    await run(console, shown, "srv = reactor.listen_tls(0, Factory.for_protocol(Protocol), "
                              "tls.server_context(cert, key))")
    port = console.namespace["srv"].port
    text = await run(console, shown, f"await connect('tls:localhost:{port}', Protocol)")
    assert "\n" not in text
    assert text.startswith(f"TLS certificate verification failed for localhost:{port}: "), text
    assert "not signed by a trusted authority" in text
    # a host name the certificate is not for
    await run(console, shown, "good = tls.client_context('nosuch.example', ca=ca)")
    text = await run(console, shown,
                     f"await reactor.connect_tls('127.0.0.1', {port}, "
                     "ClientFactory.for_protocol(Protocol), good)")
    assert "\n" not in text
    assert text.startswith(
        f"TLS certificate verification failed for nosuch.example:{port}: "), text
    assert "not valid for 'nosuch.example'" in text


# ---- the person's own frames, and only theirs


async def test_a_mistake_inside_the_persons_function_shows_their_frames(console, shown) -> None:
    await run(console, shown, "l = listen(0, Protocol)")
    await run(console, shown, "def start(port):\n    return listen(port, Protocol)\n")
    define = console.count
    text = await run(console, shown, "start(l.port)")
    lines = text.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert f'  File "<netsh-{console.count}>", line 1, in <module>' in lines
    assert f'  File "<netsh-{define}>", line 2, in start' in lines
    assert lines[-1].startswith(f"cannot listen on 127.0.0.1:{console.namespace['l'].port}: ")
    assert NETSHELL_DIR not in text


async def test_other_errors_hide_netshell_frames_but_keep_the_persons(console, shown) -> None:
    text = await run(console, shown, "listen(8000, 5)")
    assert NETSHELL_DIR not in text
    assert text.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "<netsh-{console.count}>", line 1, in <module>',
        "    listen(8000, 5)",
        "TypeError: a stream endpoint takes a Factory, not 5",
    ]


async def test_a_chained_cause_inside_netshell_is_left_out(console, shown, tmp_path) -> None:
    missing = tmp_path / "missing.pem"
    text = await run(console, shown, f"listen('tls:0:cert={missing}:key={missing}', Protocol)")
    assert "The above exception" not in text
    assert "FileNotFoundError" not in text
    assert text.splitlines()[-1] == (
        f"ValueError: server certificate: cannot read '{missing}': No such file or directory")
    assert "FileNotFoundError" in await run(console, shown, "tb()")  # the whole story


async def test_the_did_you_mean_hint_stays(console, shown) -> None:
    text = await run(console, shown, "lisen")
    assert text.splitlines()[-1] == ("NameError: name 'lisen' is not defined. "
                                     "Did you mean: 'listen'?")


# ---- tb() and verbose()


async def test_tb_prints_the_last_error_in_full(console, shown) -> None:
    assert await run(console, shown, "tb()") == "(no error yet)"
    port = refused_port()
    short = await run(console, shown, f"await connect('tcp:127.0.0.1:{port}', Protocol)")
    assert short.count("\n") == 0
    full = await run(console, shown, "tb()")
    assert os.path.join(NETSHELL_DIR, "connector.py") in full  # netshell's frames
    assert "ConnectionRefusedError" in full  # the chained cause, from asyncio
    assert full.splitlines()[-1] == (f"netshell.errors.ConnectionRefused: cannot connect to "
                                     f"127.0.0.1:{port}: connection refused")
    assert console_module.__file__ not in full  # the console's own frames never


async def test_verbose_shows_full_tracebacks_until_turned_off(console, shown) -> None:
    assert (await run(console, shown, "verbose()")).startswith("verbose off")
    assert (await run(console, shown, "verbose(True)")).startswith("verbose on")
    assert (await run(console, shown, "verbose()")).startswith("verbose on")
    text = await run(console, shown, "listen('tcp:foo', Protocol)")
    assert os.path.join(NETSHELL_DIR, "endpoints.py") in text
    assert text.splitlines()[-1] == ("netshell.endpoints.EndpointError: endpoint 'tcp:foo': "
                                     "port 'foo' is not a number (expected tcp:PORT)")
    assert (await run(console, shown, "verbose(False)")).startswith("verbose off")
    text = await run(console, shown, "listen('tcp:foo', Protocol)")
    assert text == "endpoint 'tcp:foo': port 'foo' is not a number (expected tcp:PORT)"


def test_tb_only_looks_and_verbose_is_code() -> None:
    assert classify("tb()") == "inspect"
    assert classify("verbose(True)") == "code"


def test_help_names_tb_and_verbose(shown) -> None:
    c = Console({}, out=shown)
    namespace.build(c, out=shown)
    c.namespace["help"]()
    tour = shown.take()
    assert "tb(), verbose(True)" in tour
    assert "the last error in full; full tracebacks from now on" in tour
    c.close()


def test_format_error_of_an_error_with_no_traceback_is_its_line() -> None:
    assert format_error(ns.ConnectionRefused("cannot connect to h:1: connection refused")) == (
        "cannot connect to h:1: connection refused")
    assert one_line(ValueError("x")) is None


# ---- netsh run: stderr, the script's line numbers, --verbose


SCRIPT = """\
l = listen(0, Protocol)


def start(port):
    return listen(port, Protocol)


start(l.port)
"""


def netsh_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(netsh_argv("run", *args), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_netsh_run_shows_the_mistake_in_one_line_after_the_scripts_frames(
    tmp_path: Path,
) -> None:
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    done = netsh_run("--exit", str(script))
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[:5] == [
        "Traceback (most recent call last):",
        f'  File "{script}", line 8, in <module>',
        "    start(l.port)",
        f'  File "{script}", line 5, in start',
        "    return listen(port, Protocol)",
    ]
    assert lines[-1].startswith("cannot listen on 127.0.0.1:")
    assert lines[-1].endswith(": address already in use — held by listener #1 — "
                              "listener(1).close()")
    assert NETSHELL_DIR not in done.stderr


def test_netsh_run_verbose_shows_every_frame(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    done = netsh_run("--verbose", "--exit", str(script))
    assert done.returncode == 1
    assert os.path.join(NETSHELL_DIR, "listener.py") in done.stderr
    assert f'  File "{script}", line 8, in <module>' in done.stderr
    assert done.stderr.splitlines()[-1].startswith("netshell.errors.AddressInUse: cannot listen")


def test_a_script_may_turn_verbose_on_itself(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("verbose(True)\n" + SCRIPT)
    done = netsh_run("--exit", str(script))
    assert done.returncode == 1
    assert os.path.join(NETSHELL_DIR, "listener.py") in done.stderr


def test_netsh_run_cells_show_a_refused_connection_in_one_line(tmp_path: Path) -> None:
    port = refused_port()
    script = tmp_path / "cells.py"
    script.write_text(f"# %%\nx = 1\n# %%\nawait connect('tcp:127.0.0.1:{port}', Protocol)\n")
    done = netsh_run("--exit", str(script))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{script}", line 4, in <module>',
        f"    await connect('tcp:127.0.0.1:{port}', Protocol)",
        f"cannot connect to 127.0.0.1:{port}: connection refused",
    ]


def test_netsh_c_shows_a_bad_endpoint_in_one_line() -> None:
    done = subprocess.run(netsh_argv("-c", "listen('tpc:80', Protocol)"), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr == ("endpoint 'tpc:80': unknown kind 'tpc' (did you mean 'tcp'?); "
                           "known kinds: tcp, tcp6, unix, udp, tls\n")


CALLBACK_SCRIPT = """\
class Bad(Protocol):
    def data_received(self, data):
        raise ValueError(f"bad byte {data[0] * 2}")


class Client(Protocol):
    def __init__(self):
        self.gone = Deferred()

    def connection_lost(self, reason):
        self.gone.callback(None)


srv = listen(0, Factory.for_protocol(Bad))
c = await connect(f"tcp:127.0.0.1:{srv.port}", Client)
c.transport.write(b"!")
await c.gone  # the server aborts the connection whose protocol raised
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_netsh_run_logs_an_error_in_a_protocol_callback_as_the_prompt_shows_it(
    tmp_path: Path, verbose: bool
) -> None:
    script = tmp_path / "bad.py"
    script.write_text(CALLBACK_SCRIPT)
    done = netsh_run(*(["--verbose"] if verbose else []), "--exit", str(script))
    assert "ValueError: bad byte 66" in done.stderr, done.stderr  # 66: '!' doubled
    assert f'File "{script}", line 3, in data_received' in done.stderr
    # Short by default (no netshell frame); every frame with --verbose.
    assert (NETSHELL_DIR in done.stderr) is verbose, done.stderr
