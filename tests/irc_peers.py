"""Real IRC servers for the tests: ngIRCd and InspIRCd (Debian's), and netshell's own
(``netsh serve irc``, this checkout's), in the foreground, each on a port of its own.

``ngircd_server()`` is a context manager (``ngircd`` below is the module-scoped fixture built
on it) that writes a temp configuration as shared/PEERS.md shows, starts
``ngircd --nodaemon`` and waits, with a deadline and no sleep, until it says it listens
and a TCP connection to it is accepted. It yields an :class:`IRCPeer` (``host``, ``port``,
``name``, ``log()``) and always stops the server, also when the test fails.

ngIRCd missing is a failure of the test (``pytest.fail``), never a skip: the suite says
the peer must be installed (``apt-get install -y ngircd``).

Use it from a test module (a fixture of the module's own, so the name is not shadowed)::

    @pytest.fixture(scope="module")
    def server():
        with ngircd_server() as peer:
            yield peer

    async def test_x(server):
        client = await irc.connect(server.host, server.port, "alice")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "IRCPeer", "free_port", "inspircd_server", "irc_server", "netshell_server", "ngircd",
    "ngircd_server",
]

HOST = "127.0.0.1"
START_TIMEOUT = 15.0

NGIRCD_CONF = """\
[Global]
Name = {name}
Info = t
Listen = {host}
Ports = {port}
PidFile = {dir}/run/ngircd.pid
MotdPhrase = test
AdminInfo1 = t
AdminInfo2 = t
AdminEMail = a@irc.test
{extra_global}
[Limits]
MaxConnectionsIP = 0
MaxPenaltyTime = 0
[Options]
PAM = no
Ident = no
DNS = no
{ssl}"""

NGIRCD_SSL = """[SSL]
CertFile = {cert}
KeyFile = {key}
Ports = {port}
"""

INSPIRCD_CONF = """\
<config format="xml">
<server name="{name}" description="t" network="TestNet">
<admin name="a" nick="a" email="a@irc.test">
<bind address="{host}" port="{port}" type="clients">
<connect name="main" allow="*" timeout="60" pingfreq="120" hardsendq="1048576"
  softsendq="65536" recvq="65536" threshold="{threshold}" commandrate="{commandrate}" fakelag="no"
  localmax="1000" globalmax="1000" resolvehostnames="no" useident="no">
<path configdir="{dir}" datadir="{dir}" logdir="{dir}" runtimedir="{dir}">
<pid file="{dir}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/ircd.log">
<dns server="127.0.0.1" timeout="1">
<module name="cap">
<module name="ircv3">
<module name="ircv3_servertime">
<module name="ircv3_echomessage">
<module name="ircv3_batch">
<module name="ircv3_msgid">
<module name="ircv3_ctctags">
<module name="ircv3_accounttag">
<module name="ircv3_capnotify">
<module name="ircv3_labeledresponse">
<module name="ircv3_invitenotify">
<module name="ircv3_chghost">
<module name="services_account">
<module name="sasl">
<sasl target="services.irc.test">
<module name="monitor">
<module name="namesx">
<module name="uhnames">
<module name="setname">
"""


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now (the kernel's pick, freed for the caller)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class IRCPeer:
    """A running IRC server: where it listens, its ``name`` (the source of its numerics),
    and what it printed so far (``log()``)."""

    name: str
    host: str
    port: int
    directory: Path
    #: which server: "ngircd", "inspircd" or "netshell"
    kind: str = "ngircd"
    lines: list[str] = field(default_factory=list)
    #: with TLS: the port that speaks it, and the PEM file of the authority to trust
    #: (the certificate is for localhost and 127.0.0.1)
    tls_port: int | None = None
    ca: Path | None = None

    def log(self) -> str:
        return "".join(self.lines)


def _require(cmd: str) -> str:
    path = shutil.which(cmd) or (f"/usr/sbin/{cmd}" if os.path.exists(f"/usr/sbin/{cmd}") else None)
    if path is None:
        pytest.fail(
            f"test peer {cmd!r} is not installed: apt-get install -y {cmd} (shared/PEERS.md); "
            "a missing peer fails the tests, it never skips them"
        )
    return path


def _accepts(host: str, port: int, deadline: float) -> None:
    """Connect to host:port until a connection is accepted (a refusal comes back at once)."""
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            left = max(0.1, deadline - time.monotonic())
            with socket.create_connection((host, port), timeout=left):
                return
        except ConnectionRefusedError as e:
            last = e
    raise TimeoutError(f"nothing accepted connections on {host}:{port} in time ({last})")


@contextlib.contextmanager
def _running(
    argv: list[str], peer: IRCPeer, ready: str, ports: list[int],
    env: dict[str, str] | None = None,
) -> Iterator[IRCPeer]:
    """Run ``argv`` while the caller needs it: wait until it prints ``ready`` and each of
    ``ports`` accepts a connection (deadline, no sleep); stop it after, come what may."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env,
    )
    listening = threading.Event()

    def drain() -> None:
        # Read all it prints, so a chatty server never blocks on a full pipe.
        assert proc.stdout is not None
        for line in proc.stdout:
            peer.lines.append(line)
            if ready in line:
                listening.set()
        listening.set()  # it exited: the wait below checks how

    reader = threading.Thread(target=drain, name=f"{peer.kind}-log", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        if not listening.wait(START_TIMEOUT) or proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} did not start (exit {proc.poll()}): {peer.log()}")
        for port in ports:
            _accepts(peer.host, port, deadline)
        yield peer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)


@contextlib.contextmanager
def ngircd_server(
    name: str = "irc.test", password: str | None = None, tls: bool = False,
    port: int | None = None,
) -> Iterator[IRCPeer]:
    """ngIRCd with a temp configuration on a free port (or ``port``: to start one again
    where another was; ``password``: its connection password, sent with PASS; ``tls``:
    also a TLS port, with a throwaway certificate)."""
    program = _require("ngircd")
    directory = Path(tempfile.mkdtemp(prefix="netshell-ngircd-"))
    directory.chmod(0o755)  # ngircd drops to nobody: it must read its files
    port = port or free_port()
    try:
        subprocess.run(["install", "-d", "-o", "nobody", str(directory / "run")], check=True)
        extra = f"Password = {password}" if password else ""
        ssl = ""
        tls_port = ca = None
        if tls:
            from netshell.tls import self_signed_files

            cert, key, ca = self_signed_files(directory / "tls", "localhost", HOST)
            key.chmod(0o644)  # throwaway; ngircd may read it as nobody
            tls_port = free_port()
            ssl = NGIRCD_SSL.format(cert=cert, key=key, port=tls_port)
        conf = directory / "ngircd.conf"
        conf.write_text(NGIRCD_CONF.format(
            name=name, host=HOST, port=port, dir=directory, extra_global=extra, ssl=ssl,
        ))
        conf.chmod(0o644)
        peer = IRCPeer(name, HOST, port, directory, "ngircd", tls_port=tls_port, ca=ca)
        ports = [port] + ([tls_port] if tls_port is not None else [])
        argv = [program, "--nodaemon", "--config", str(conf)]
        with _running(argv, peer, "Now listening on", ports):
            yield peer
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def inspircd_server(
    name: str = "irc.test", threshold: int = 1000, commandrate: int = 100000
) -> Iterator[IRCPeer]:
    """InspIRCd 3 with a temp configuration on a free port, the IRCv3 modules Debian's
    package ships loaded (cap; away-notify, account-notify, extended-join; server-time,
    echo-message, batch, msgid, message-tags, account-tag, cap-notify, labeled-response,
    invite-notify, chghost, setname, multi-prefix, userhost-in-names; MONITOR; sasl,
    which InspIRCd offers only while a services server is linked: never here). WHOX is
    in its core.
    ``threshold`` and ``commandrate`` are its flood control (fakelag off: a client over
    them is closed with "Excess Flood"); by default high enough never to matter."""
    program = _require("inspircd")
    directory = Path(tempfile.mkdtemp(prefix="netshell-inspircd-"))
    directory.chmod(0o755)
    port = free_port()
    try:
        conf = directory / "inspircd.conf"
        conf.write_text(INSPIRCD_CONF.format(
            name=name, host=HOST, port=port, dir=directory, threshold=threshold,
            commandrate=commandrate,
        ))
        peer = IRCPeer(name, HOST, port, directory, "inspircd")
        argv = [program, "--nofork", "--runasroot", "--config", str(conf)]
        with _running(argv, peer, "InspIRCd is now running", [port]):
            yield peer
    finally:
        shutil.rmtree(directory, ignore_errors=True)


#: this checkout, whose ``netshell`` the server runs (not an installed one)
CHECKOUT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def netshell_server(
    name: str = "irc.test", accounts: dict[str, str] | None = None,
) -> Iterator[IRCPeer]:
    """netshell's own server as a person starts it, ``netsh serve irc --port N --name
    NAME`` (run from this checkout), in a process of its own, like the other peers.
    ``accounts``: name -> password, the SASL accounts (``--account NAME:PASSWORD``)."""
    directory = Path(tempfile.mkdtemp(prefix="netshell-irc-"))
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    try:
        peer = IRCPeer(name, HOST, port, directory, "netshell")
        argv = [sys.executable, "-m", "netshell.app.cli", "serve", "irc", "--port", str(port),
                "--name", name]
        for account, password in (accounts or {}).items():
            argv += ["--account", f"{account}:{password}"]
        with _running(argv, peer, "Serving IRC on", [port], env=env):
            yield peer
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def irc_server(kind: str) -> contextlib.AbstractContextManager[IRCPeer]:
    """``ngircd_server()``, ``inspircd_server()`` or ``netshell_server()``, by name."""
    if kind == "ngircd":
        return ngircd_server()
    if kind == "inspircd":
        return inspircd_server()
    if kind == "netshell":
        return netshell_server()
    raise ValueError(f"no IRC peer {kind!r}: ngircd, inspircd or netshell")


@pytest.fixture(scope="module")
def ngircd() -> Iterator[IRCPeer]:
    """One ngIRCd for the test module."""
    with ngircd_server() as peer:
        yield peer
