"""Helpers for tests that talk to real peers (socat, Python sockets...) on loopback.

Peers run as asyncio subprocesses, so the reactor's loop keeps serving while
they work; nothing here waits on a wall-clock sleep. A peer that is missing
skips the test on a developer machine and fails it under CI (``CI=true``:
tests/conftest.py turns the skip into a failure), where every peer must be installed
(``scripts/test`` installs them).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from collections.abc import Sequence
from typing import Any

import pytest

import netshell as ns

__all__ = [
    "Peer",
    "connect_tls_when_ready",
    "connect_when_ready",
    "free_port",
    "require",
    "run_peer",
    "start_peer",
]


def require(cmd: str) -> str:
    """The path of ``cmd``; a missing command skips the test (under CI: fails it, by conftest)."""
    path = shutil.which(cmd)
    if path is None:
        pytest.skip(f"test peer {cmd!r} is not installed (see scripts/test and shared/PEERS.md)")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nobody listens on now (the kernel's pick; freed for the caller)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def run_peer(
    argv: Sequence[str], stdin: bytes = b"", timeout: float = 20
) -> tuple[int, bytes, bytes]:
    """Run a peer to its end with ``stdin``; returns (exit code, stdout, stderr).

    The peer is killed if it has not finished within ``timeout`` seconds.
    """
    require(argv[0])
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


class Peer:
    """A long-running peer process (a server): ``proc``, and ``stop()`` to end it."""

    def __init__(self, proc: asyncio.subprocess.Process, argv: Sequence[str]) -> None:
        self.proc = proc
        self.argv = list(argv)
        self._drain: asyncio.Future[None] | None = None

    async def stop(self) -> None:
        """Terminate the peer (kill it if it does not go) and reap it."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            await asyncio.wait([self._drain], timeout=5)
            self._drain.cancel()

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def start_peer(
    argv: Sequence[str],
    ready: str | None = None,
    timeout: float = 10,
    ready_on: str = "stderr",
) -> Peer:
    """Start a server peer; with ``ready`` (a regex), wait until it prints a match.

    ``ready_on`` says where the peer prints it: ``"stderr"`` (the default) or
    ``"stdout"`` (``openssl s_server`` prints ``ACCEPT`` there).
    Raises RuntimeError (with what the peer printed) if it exits first, or
    TimeoutError if it prints nothing matching within ``timeout`` seconds.
    """
    if ready_on not in ("stderr", "stdout"):
        raise ValueError(f"ready_on is 'stderr' or 'stdout', not {ready_on!r}")
    require(argv[0])
    watched = asyncio.subprocess.PIPE if ready else asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=watched if ready_on == "stdout" else asyncio.subprocess.DEVNULL,
        stderr=watched if ready_on == "stderr" else asyncio.subprocess.DEVNULL,
    )
    peer = Peer(proc, argv)
    if ready is None:
        return peer
    stream = proc.stdout if ready_on == "stdout" else proc.stderr
    assert stream is not None
    pattern = re.compile(ready)
    seen: list[bytes] = []

    async def wait_ready() -> None:
        assert stream is not None
        while True:
            line = await stream.readline()
            if not line:
                await proc.wait()
                raise RuntimeError(
                    f"{argv[0]} exited ({proc.returncode}) before it was ready: "
                    f"{b''.join(seen).decode(errors='replace')}"
                )
            seen.append(line)
            if pattern.search(line.decode(errors="replace")):
                return

    try:
        await asyncio.wait_for(wait_ready(), timeout)
    except BaseException:
        await peer.stop()
        raise
    # Keep reading its log, so a chatty peer never blocks on a full pipe.
    peer._drain = asyncio.ensure_future(_discard(stream))
    return peer


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def connect_when_ready(
    host: str, port: int, factory: ns.Factory, tries: int = 200, timeout: float = 5
) -> Any:
    """connect_tcp, tried again at once (on the next loop turn) while it is refused.

    For a peer that is starting up: at most ``tries`` attempts, each a full
    round through the loop; the last ConnectionRefused is raised if all fail.
    """
    last: BaseException | None = None
    for _ in range(tries):
        try:
            return await ns.reactor.connect_tcp(host, port, factory, timeout=timeout)
        except ns.ConnectionRefused as e:
            last = e
    assert last is not None
    raise last


async def connect_tls_when_ready(
    host: str,
    port: int,
    factory: ns.Factory,
    context: Any,
    tries: int = 200,
    timeout: float = 5,
) -> Any:
    """connect_tls, tried again at once while it is refused (see connect_when_ready).

    Only ConnectionRefused is retried: a TLS error (a handshake or certificate
    failure) is raised at once.
    """
    last: BaseException | None = None
    for _ in range(tries):
        try:
            return await ns.reactor.connect_tls(host, port, factory, context, timeout=timeout)
        except ns.ConnectionRefused as e:
            last = e
    assert last is not None
    raise last
