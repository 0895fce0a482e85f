"""FTP benchmark: netshell's FTP server against pyftpdlib and Twisted's, side by side.

Servers. Each runs in its own process, pinned to CPU 0, serving one directory
(made afresh, 0755) to the user ``u`` (password ``p``) with every write right, on
127.0.0.1, with no log line per command:

- netshell: ``ftp.serve(root, users={"u": "p"}, writable=True,
  max_connections=0, max_connections_per_ip=0, backlog=4096)`` on asyncio's
  default loop (every client here comes from 127.0.0.1: no limit per address, as
  pyftpdlib by default, and none overall, for the idle measure);
- pyftpdlib: ``FTPServer`` with ``FTPHandler`` and a ``DummyAuthorizer``
  (``perm="elradfmwMT"``), its defaults otherwise (``sendfile`` on, logging at
  WARNING: it logs every command at INFO when nothing configured logging);
- twisted: ``FTPFactory`` over a ``Portal`` with an in-memory checker and a realm
  whose home directory is the root, on the epoll reactor.

Each server says its port on its first line of stdout once it listens; the
netshell server says ``UNAVAILABLE`` instead when ``ftp.serve`` is not written
yet (a tree before issue 14): its row says "not available" and the run goes on.

Before anything is timed, each server is checked: ``LIST`` shows the big file, a
download of it (curl) has its size and sha256, an upload (curl ``-T``) arrives
whole with its sha256. Then, all from curl pinned to CPU 1 with taskset, passive
mode, binary:

- RETR: ``curl -s -o /dev/null ftp://u:p@127.0.0.1:PORT/big.bin`` of a ``--size``
  MiB file (200 by default), one client (the best of ``--repeat``), then 10 at once
  (their bytes over the wall time from the first start to the last end); MiB/s one
  client is curl's own: bytes over its ``time_total``, the whole session (connect,
  login, EPSV, RETR, 226);
- STOR: ``curl -s -T big.bin ftp://u:p@127.0.0.1:PORT/up-N.bin`` the same way;
- every transfer's exit status and byte count (``size_download``/``size_upload``)
  are checked, and every uploaded file's size on disk; uploads are removed after
  each run, outside the timing;
- logins: ``--logins`` (300) clients at once, from this process (pinned to CPU 1; bare
  non-blocking sockets on epoll: asyncio's streams cost more CPU per login than
  pyftpdlib's server, and a bare asyncio Protocol on uvloop about as much as netshell's,
  so either set the pace), each connects, reads the banner, ``USER u`` (331), ``PASS p``
  (230), ``QUIT`` (221) and closes; every reply code is checked; logins/s is their count
  over the wall time, the best of ``--repeat`` such batches after one to warm up. The
  client's own CPU per login is printed beside the servers';
- idle memory: on a fresh server process (measured first), after one login to warm it
  up, its RSS (VmRSS) with ``--idle`` (10,000) connections logged in and idle (50
  logging in at a time, asyncio Protocols on uvloop when installed), minus its RSS with
  none, divided by their number. Few connections fit in the heap's slack after start-up
  and look free: netshell's figure was 0.9 KB with 300, 3.6 KB with 2,000 and 5.0 KB
  with 10,000. The count is lowered to what the file descriptor limit allows, and said
  so. No server limits the connections here (pyftpdlib's ``max_cons`` and netshell's
  ``max_connections``, 512 by default, lifted; Twisted has none).

Next to them, the server's CPU time (from /proc, in ns) per GiB moved by one
client (near 0 when the kernel's sendfile does the work) and per login: measures
that hold when the load, not the server, sets the pace, or the machine is busy.
Each round starts every server afresh; rounds are interleaved, the best kept (the
lowest for memory; the CPU figures are those of the best run). Servers run with the levelled
glibc allocator of scripts/bench/common.py (``--allocator default`` for glibc as it
comes).

Usage::

    python scripts/bench/ftp.py                       # the full run
    python scripts/bench/ftp.py --quick --json out.json   # seconds: a smoke test
    python scripts/bench/ftp.py --size 50 --only netshell,pyftpdlib
    # a change side by side with the tree before it:
    python scripts/bench/ftp.py --only netshell,netshell-baseline --baseline ../before

It prints the ratios the issue names, with its goals: RETR netshell/pyftpdlib
(>= 1x), STOR netshell/pyftpdlib (>= 1.2x), logins netshell / the better of the two
(>= 1.5x), idle memory per connection netshell/pyftpdlib (<= 1x), and the others
without a goal. It is a measurement: it exits 0 whatever the ratios, and 1 only if a
server answered wrongly, lost or mangled a transfer, or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import hashlib
import os
import platform
import resource
import select as select_module  # (select, from common, picks servers)
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any, cast

from common import (
    SAY_READY,
    Failed,
    ServerCase,
    ServerProcess,
    Unavailable,
    add_allocator_option,
    add_baseline_option,
    allocator,
    have,
    machine,
    measure_all,
    not_installed,
    pin_load,
    print_ratios,
    print_table,
    python_env,
    rss_bytes,
    select,
    use_baseline,
)

USER, PASSWORD = "u", "p"
BIG = "big.bin"
PARALLEL = 10
IDLE_GATE = 50  # idle connections logging in at a time

# Run first in every server: pin it; then SAY_READY (common.py) gives it ready(port, what)
# and unavailable(why), for the first line of its stdout.
SERVER_PRELUDE = """
import os
os.sched_setaffinity(0, {int(os.environ["BENCH_FTP_CPU"])})
ROOT = os.environ["BENCH_FTP_ROOT"]
USER, PASSWORD = "u", "p"
"""

SERVERS = {
    "netshell": """
        import inspect
        from netshell import reactor
        from protocols import ftp
        # Every client here comes from 127.0.0.1: no limit per address (pyftpdlib's
        # default), nor overall (the idle measure holds 10,000 connections).
        accepted = inspect.signature(ftp.serve).parameters
        lifted = {k: v for k, v in (("max_connections_per_ip", 0), ("max_connections", 0),
                                    ("backlog", 4096)) if k in accepted}
        try:
            listener = ftp.serve(ROOT, port=0, users={USER: PASSWORD}, writable=True,
                                 **lifted)
        except NotImplementedError as e:
            unavailable(f"protocols.ftp.serve is not written in this tree "
                        f"(NotImplementedError{': ' + str(e) if str(e) else ''})")
        ready(listener.port, "asyncio " + ",".join(f"{k}={v}" for k, v in lifted.items()))
        reactor.run()
    """,
    "pyftpdlib": """
        import logging
        logging.basicConfig(level=logging.WARNING)  # no line per command
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, ROOT, perm="elradfmwMT")
        FTPHandler.authorizer = authorizer
        FTPServer.max_cons = 0  # no limit overall (512 by default), as for the others
        server = FTPServer(("127.0.0.1", 0), FTPHandler, backlog=4096)
        ready(server.address[1], "sendfile" if FTPHandler.use_sendfile else "no-sendfile")
        server.serve_forever(handle_exit=True)
    """,
    "twisted": """
        from twisted.internet import epollreactor
        epollreactor.install()
        from twisted.internet import reactor
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
        from twisted.cred.portal import Portal
        from twisted.protocols.ftp import BaseFTPRealm, FTPFactory
        from twisted.python.filepath import FilePath
        class Realm(BaseFTPRealm):
            def getHomeDirectory(self, avatarId):
                return FilePath(ROOT)
        checker = InMemoryUsernamePasswordDatabaseDontUse()
        checker.addUser(USER, PASSWORD)  # str, not bytes: bytes fail the login
        factory = FTPFactory(Portal(Realm(ROOT), [checker]))
        port = reactor.listenTCP(0, factory, backlog=4096, interface="127.0.0.1")
        ready(port.getHost().port, "EPollReactor")
        reactor.run()
    """,
}


SERVER_CASES = [
    ServerCase("netshell", "netshell", "netshell", []),
    ServerCase("pyftpdlib", "pyftpdlib", "pyftpdlib", ["pyftpdlib"]),
    ServerCase("twisted", "Twisted FTP", "twisted", ["twisted"]),
    # Only when named in --only: the tree before a change (--baseline DIR).
    ServerCase("netshell-baseline", "netshell baseline", "netshell", []),
]
OPTIONAL_SERVERS = {"netshell-baseline"}

# measure key -> (column title, format, higher is better)
MEASURES: dict[str, tuple[str, str, bool]] = {
    "retr_mib_per_s": ("RETR MiB/s", ",.0f", True),
    "retr_parallel_mib_per_s": (f"RETR x{PARALLEL}", ",.0f", True),
    "stor_mib_per_s": ("STOR MiB/s", ",.0f", True),
    "stor_parallel_mib_per_s": (f"STOR x{PARALLEL}", ",.0f", True),
    "logins_per_s": ("logins/s", ",.0f", True),
    "idle_bytes_per_conn": ("idle B/conn", ",.0f", False),
}
# kept with the best of their transfer measure
CPU_KEYS = {
    "retr_mib_per_s": "retr_server_cpu_s_per_gib",
    "stor_mib_per_s": "stor_server_cpu_s_per_gib",
    "logins_per_s": "login_server_cpu_us",
}
MEASURE_GROUPS = {
    "retr": ("retr_mib_per_s", "retr_parallel_mib_per_s"),
    "stor": ("stor_mib_per_s", "stor_parallel_mib_per_s"),
    "logins": ("logins_per_s",),
    "idle": ("idle_bytes_per_conn",),
}

# (label, measure, numerator, denominators (the better of them), goal, op); the ratio
# is numerator / best denominator.
GOALS: list[tuple[str, str, str, tuple[str, ...], float | None, str]] = [
    ("RETR: netshell / pyftpdlib", "retr_mib_per_s", "netshell", ("pyftpdlib",), 1.0, ">="),
    ("RETR: netshell / Twisted", "retr_mib_per_s", "netshell", ("twisted",), None, ">="),
    (f"RETR x{PARALLEL}: netshell / pyftpdlib", "retr_parallel_mib_per_s", "netshell",
     ("pyftpdlib",), None, ">="),
    (f"RETR x{PARALLEL}: netshell / Twisted", "retr_parallel_mib_per_s", "netshell",
     ("twisted",), None, ">="),
    ("STOR: netshell / pyftpdlib", "stor_mib_per_s", "netshell", ("pyftpdlib",), 1.2, ">="),
    ("STOR: netshell / Twisted", "stor_mib_per_s", "netshell", ("twisted",), None, ">="),
    (f"STOR x{PARALLEL}: netshell / pyftpdlib", "stor_parallel_mib_per_s", "netshell",
     ("pyftpdlib",), None, ">="),
    (f"STOR x{PARALLEL}: netshell / Twisted", "stor_parallel_mib_per_s", "netshell",
     ("twisted",), None, ">="),
    ("logins: netshell / the better of the two", "logins_per_s", "netshell",
     ("pyftpdlib", "twisted"), 1.5, ">="),
    ("logins: netshell / pyftpdlib", "logins_per_s", "netshell", ("pyftpdlib",), None, ">="),
    ("logins: netshell / Twisted", "logins_per_s", "netshell", ("twisted",), None, ">="),
    ("idle memory: netshell / pyftpdlib", "idle_bytes_per_conn", "netshell", ("pyftpdlib",),
     1.0, "<="),
    ("idle memory: netshell / Twisted", "idle_bytes_per_conn", "netshell", ("twisted",), None,
     "<="),
    # server CPU (lower is better): it holds when curl or a busy machine sets the pace
    ("CPU/GiB RETR: netshell / pyftpdlib", "retr_server_cpu_s_per_gib", "netshell",
     ("pyftpdlib",), None, "<="),
    ("CPU/GiB RETR: netshell / Twisted", "retr_server_cpu_s_per_gib", "netshell",
     ("twisted",), None, "<="),
    ("CPU/GiB STOR: netshell / pyftpdlib", "stor_server_cpu_s_per_gib", "netshell",
     ("pyftpdlib",), None, "<="),
    ("CPU/GiB STOR: netshell / Twisted", "stor_server_cpu_s_per_gib", "netshell",
     ("twisted",), None, "<="),
    ("CPU/login: netshell / pyftpdlib", "login_server_cpu_us", "netshell", ("pyftpdlib",),
     None, "<="),
    ("CPU/login: netshell / Twisted", "login_server_cpu_us", "netshell", ("twisted",), None,
     "<="),
    ("RETR: netshell / netshell baseline", "retr_mib_per_s", "netshell",
     ("netshell-baseline",), None, ">="),
    ("STOR: netshell / netshell baseline", "stor_mib_per_s", "netshell",
     ("netshell-baseline",), None, ">="),
    ("logins: netshell / netshell baseline", "logins_per_s", "netshell",
     ("netshell-baseline",), None, ">="),
    ("idle memory: netshell / netshell baseline", "idle_bytes_per_conn", "netshell",
     ("netshell-baseline",), None, "<="),
]


# ---- servers


class Server(ServerProcess):
    """One server process on its CPU, listening when constructed; stop() kills it."""

    def __init__(self, case: ServerCase, cpu: int, root: str, allocator_env: dict[str, str]):
        super().__init__(case.label)
        self.case = case
        env = python_env({**allocator_env, **case.env, "BENCH_FTP_ROOT": root,
                          "BENCH_FTP_CPU": str(cpu)})
        code = (textwrap.dedent(SERVER_PRELUDE) + SAY_READY
                + textwrap.dedent(SERVERS[case.program]))
        self.port, self.what = self.start_python(
            code, env, case.cwd, "the {label} server did not start:\n{said}")

    def url(self, path: str) -> str:
        return f"ftp://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{path}"


# ---- curl


def curl_command(args: argparse.Namespace, *curl_args: str) -> list[str]:
    cmd = [args.curl, "-sS", "--max-time", "300", *curl_args]
    # Without taskset curl still runs on the load's CPU: it inherits this process's affinity.
    return [args.taskset, "-c", str(args.client_cpu), *cmd] if args.taskset else cmd


def start_curl(args: argparse.Namespace, *curl_args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        curl_command(args, *curl_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_curl(proc: subprocess.Popen[str], what: str, size: int) -> float:
    """Wait for a curl started with ``-w '%{size_...} %{time_total}'``; its seconds.

    Fails unless it exited 0 having moved exactly ``size`` bytes."""
    out, err = proc.communicate(timeout=330)
    fields = out.split()
    if proc.returncode != 0 or len(fields) != 2:
        raise Failed(f"curl {what} failed (exit {proc.returncode}): {err.strip()} {out!r}")
    moved, seconds = int(fields[0]), float(fields[1])
    if moved != size:
        raise Failed(f"curl {what} moved {moved:,} bytes, not {size:,}")
    return seconds


def retrieve_args(server: Server, to: str = os.devnull) -> list[str]:
    return ["-o", to, "-w", "%{size_download} %{time_total}", server.url(BIG)]


def store_args(server: Server, source: str, name: str) -> list[str]:
    return ["-T", source, "-w", "%{size_upload} %{time_total}", server.url(name)]


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(server: Server, args: argparse.Namespace) -> None:
    """LIST shows the file; a download and an upload arrive whole, with their sha256."""
    label = server.case.label
    listing = subprocess.run(
        curl_command(args, server.url("")), capture_output=True, text=True, timeout=60
    )
    if listing.returncode != 0 or not any(
        line.split()[-1:] == [BIG] and str(args.size_bytes) in line.split()
        for line in listing.stdout.splitlines()
    ):
        raise Failed(f"{label}: LIST does not show {BIG} with its size:\n{listing.stdout}")
    with tempfile.TemporaryDirectory(prefix="bench-ftp-got-") as got:
        target = os.path.join(got, BIG)
        finish_curl(start_curl(args, *retrieve_args(server, target)), f"RETR from {label}",
                    args.size_bytes)
        if sha256_file(target) != args.sha256:
            raise Failed(f"{label}: the downloaded file's sha256 differs from the original")
    name = "verify-upload.bin"
    finish_curl(start_curl(args, *store_args(server, args.source, name)), f"STOR to {label}",
                args.size_bytes)
    uploaded = os.path.join(args.root, name)
    try:
        if sha256_file(uploaded) != args.sha256:
            raise Failed(f"{label}: the uploaded file's sha256 differs from the original")
    except FileNotFoundError:
        raise Failed(f"{label}: the upload is not in the root after 226") from None
    finally:
        remove_uploads(args.root)


def remove_uploads(root: str) -> None:
    for name in os.listdir(root):
        if name != BIG:
            path = os.path.join(root, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)


def transfers(server: Server, args: argparse.Namespace, kind: str) -> dict[str, float]:
    """One client (best of --repeat; its server CPU per GiB), then PARALLEL at once."""
    size = args.size_bytes
    label = server.case.label
    best_rate, cpu_per_gib = 0.0, 0.0
    for i in range(args.repeat):
        cpu0 = server.cpu_seconds()
        if kind == "retr":
            proc = start_curl(args, *retrieve_args(server))
        else:
            proc = start_curl(args, *store_args(server, args.source, f"up-{i}.bin"))
        seconds = finish_curl(proc, f"{kind.upper()} with {label}", size)
        cpu = server.cpu_seconds() - cpu0
        if kind == "stor":
            check_uploads(args, [f"up-{i}.bin"], label)
        rate = size / (1 << 20) / seconds
        if rate > best_rate:
            best_rate, cpu_per_gib = rate, cpu / (size / (1 << 30))
    names = [f"par-{i}.bin" for i in range(PARALLEL)]
    start = time.perf_counter()
    if kind == "retr":
        procs = [start_curl(args, *retrieve_args(server)) for _ in names]
    else:
        procs = [start_curl(args, *store_args(server, args.source, n)) for n in names]
    for proc in procs:
        finish_curl(proc, f"{kind.upper()} x{PARALLEL} with {label}", size)
    wall = time.perf_counter() - start
    if kind == "stor":
        check_uploads(args, names, label)
    server.alive()
    return {
        f"{kind}_mib_per_s": best_rate,
        f"{kind}_parallel_mib_per_s": PARALLEL * size / (1 << 20) / wall,
        f"{kind}_server_cpu_s_per_gib": cpu_per_gib,
    }


def check_uploads(args: argparse.Namespace, names: list[str], label: str) -> None:
    """Every upload is in the root with its full size (then all uploads are removed)."""
    try:
        for name in names:
            path = os.path.join(args.root, name)
            if not os.path.isfile(path) or os.path.getsize(path) != args.size_bytes:
                got = f"{os.path.getsize(path):,} bytes" if os.path.exists(path) else "missing"
                raise Failed(f"{label}: upload {name} is {got}, not {args.size_bytes:,} bytes")
    finally:
        remove_uploads(args.root)


# ---- logins and idle connections (in this process on the load's CPU)
#
# The client must outpace the servers: asyncio's streams spent about 250 µs of CPU per
# login (more than pyftpdlib's server), so logins/s measured the client. A bare Protocol
# on uvloop (when installed) spends a fraction of that.


def take_reply(buffer: bytes) -> tuple[int, bytes, bytes] | None:
    """The first whole reply in ``buffer`` (multi-line ones too): (code, its first line,
    what follows it), or None while it is not all there."""
    end = buffer.find(b"\r\n")
    if end < 0:
        return None
    first = buffer[:end]
    code = first[:3]
    if first[3:4] == b"-":
        closing = b"\r\n" + code + b" "
        last = buffer.find(closing, end)
        if last < 0:
            return None
        end = buffer.find(b"\r\n", last + 2)
        if end < 0:
            return None
    return (int(code) if code.isdigit() else -1), first, buffer[end + 2:]


# (reply code expected, what it answers, what the client sends then)
LOGIN_STEPS = (
    (220, "banner", f"USER {USER}\r\n".encode()),
    (331, "USER", f"PASS {PASSWORD}\r\n".encode()),
    (230, "PASS", b"QUIT\r\n"),
    (221, "QUIT", b""),
)


def epoll_logins(port: int, count: int, timeout: float = 300.0) -> tuple[float, float]:
    """``count`` clients at once connect, log in and quit (see LoginClient), on bare
    non-blocking sockets and epoll: (logins per second, this process's CPU µs per login).

    The load must outpace the servers: the asyncio Protocol on uvloop spent about 130 µs
    of CPU per login, near netshell's server, so it set the pace; this spends about half.
    """
    ep = select_module.epoll()
    conns: dict[int, list[Any]] = {}  # fd -> [socket, step, bytes held]
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + timeout
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                raise Failed(f"connect: {os.strerror(err)}")
            conns[sock.fileno()] = [sock, 0, b""]
            ep.register(sock.fileno(), select_module.EPOLLIN)
        while conns:
            if time.perf_counter() > deadline:
                raise Failed(f"the login clients were not done after {timeout:.0f} s "
                              f"({len(conns)} left)")
            for fd, _events in ep.poll(1.0):
                conn = conns[fd]
                sock, step, held = conn
                try:
                    data = sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise Failed(f"after {step} replies: {e!r}") from e
                if not data:
                    raise Failed(f"closed by the server after {step} replies")
                held += data
                while fd in conns:
                    taken = take_reply(held)
                    if taken is None:
                        break
                    code, line, held = taken
                    want, what, then = LOGIN_STEPS[step]
                    if code != want:
                        raise Failed(f"{what}: expected {want}, got {line[:200]!r}")
                    step += 1
                    if not then:  # 221: done
                        ep.unregister(fd)
                        sock.close()
                        del conns[fd]
                    elif sock.send(then) != len(then):
                        raise Failed(f"{what}: a command of {len(then)} bytes went out short")
                conn[1], conn[2] = step, held
        elapsed = time.perf_counter() - start
        return count / elapsed, 1e6 * (time.process_time() - cpu0) / count
    finally:
        for sock, _step, _held in conns.values():
            sock.close()
        ep.close()


class Hold:
    """Keeps logged-in clients waiting until released (then each sends its QUIT)."""

    def __init__(self) -> None:
        self.released = False
        self.waiting: list[Any] = []

    def then(self, fn: Any) -> None:
        if self.released:
            fn()
        else:
            self.waiting.append(fn)

    def release(self) -> None:
        self.released = True
        waiting, self.waiting = self.waiting, []
        for fn in waiting:
            fn()


class LoginClient(asyncio.Protocol):
    """Banner 220, USER/331, PASS/230, (held until ``hold`` is released), QUIT/221, close.

    ``done`` gets None when the server said 221, or a Failed. ``on_login`` is called
    at the 230."""

    STEPS = LOGIN_STEPS

    def __init__(self, done: asyncio.Future[None], hold: Hold | None = None,
                 on_login: Any = None) -> None:
        self.done = done
        self.hold = hold
        self.on_login = on_login
        self.step = 0
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.done.done():
            reply = self._take_reply()
            if reply is None:
                return
            code, line = reply
            want, what, then = self.STEPS[self.step]
            if code != want:
                self._fail(f"{what}: expected {want}, got {line[:200]!r}")
                return
            self.step += 1
            assert self.transport is not None
            if want == 230:
                if self.on_login is not None:
                    self.on_login()
                if self.hold is not None:
                    self.hold.then(functools.partial(self._write, then))
                    continue
            if then:
                self._write(then)
            else:
                self.transport.close()
                self.done.set_result(None)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _take_reply(self) -> tuple[int, bytes] | None:
        """The next whole reply (multi-line ones too): (code, first line), or None."""
        taken = take_reply(self.buffer)
        if taken is None:
            return None
        code, first, self.buffer = taken
        return code, first

    def _fail(self, why: str) -> None:
        if not self.done.done():
            self.done.set_exception(Failed(why))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self._fail(f"closed by the server after {self.step} replies ({exc!r})")


async def login(port: int, hold: Hold | None = None, on_login: Any = None,
                gate: asyncio.Semaphore | None = None) -> None:
    """One client's login (see LoginClient); with ``gate``, up to the 230 holds a place."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    logged_in: asyncio.Future[None] = loop.create_future()

    def at_230() -> None:
        logged_in.set_result(None)
        if on_login is not None:
            on_login()

    if gate is not None:
        await gate.acquire()
    try:
        await loop.create_connection(
            lambda: LoginClient(done, hold, at_230), "127.0.0.1", port
        )
        if gate is not None:
            await asyncio.wait([logged_in, done], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if gate is not None:
            gate.release()
    await done


def run_client(coro: Any, timeout: float = 300) -> Any:
    """Run a coroutine of the login client on uvloop when installed, else asyncio; a
    client still waiting after ``timeout`` seconds is a failure, not a hang."""

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(coro, timeout)
        except TimeoutError:
            raise Failed(f"the login clients were not done after {timeout:.0f} s") from None

    if have("uvloop"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(bounded())
    return asyncio.run(bounded())


def client_loop() -> str:
    return "uvloop" if have("uvloop") else "asyncio"


async def idle_rss(server: Server, count: int) -> float:
    """RSS growth of the server per idle logged-in connection, with ``count`` of them."""
    await login(server.port)  # warm: the login's code paths loaded once
    before = rss_bytes(server.proc.pid)
    hold = Hold()
    all_in = asyncio.Event()
    logged_in = 0

    def one_more() -> None:
        nonlocal logged_in
        logged_in += 1
        if logged_in == count:
            all_in.set()

    # IDLE_GATE logins at a time: the steady cost of a connection, not a burst's high water
    gate = asyncio.Semaphore(IDLE_GATE)
    tasks = [
        asyncio.ensure_future(login(server.port, hold, one_more, gate)) for _ in range(count)
    ]
    try:
        waiter = asyncio.ensure_future(all_in.wait())
        # all logged in, or the first client that fails
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            if t.done():
                t.result()  # a failed login raises here
        await waiter
        after = rss_bytes(server.proc.pid)
    finally:
        hold.release()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        t.result()
    return (after - before) / count


# ---- one server, one round


def measure_server(
    case: ServerCase, args: argparse.Namespace, allocator_env: dict[str, str]
) -> dict[str, Any]:
    server = Server(case, args.server_cpu, args.root, allocator_env)
    result: dict[str, Any] = {"label": case.label, "what": server.what}
    try:
        if "idle" in args.measures:
            result["idle_bytes_per_conn"] = run_client(idle_rss(server, args.idle))
            server.alive()
        verify(server, args)
        result["verified"] = True
        for kind in ("retr", "stor"):
            if kind in args.measures:
                result.update(transfers(server, args, kind))
        if "logins" in args.measures:
            epoll_logins(server.port, args.logins)  # warm-up, not counted
            best_rate, best_cpu, best_client = 0.0, 0.0, 0.0
            for _ in range(args.repeat):
                cpu0 = server.cpu_seconds()
                rate, client_us = epoll_logins(server.port, args.logins)
                cpu = server.cpu_seconds() - cpu0
                if rate > best_rate:
                    best_rate, best_cpu, best_client = rate, cpu, client_us
            result["logins_per_s"] = best_rate
            result["login_server_cpu_us"] = 1e6 * best_cpu / args.logins
            result["login_client_cpu_us"] = best_client
        server.alive()
    except (Failed, Unavailable):
        raise
    except Exception as e:
        raise Failed(f"{case.label}: {type(e).__name__}: {e}\n{server.said()}") from e
    finally:
        server.stop()
        remove_uploads(args.root)
    return result


# ---- the report


def report(
    cases: list[ServerCase], results: dict[str, dict[str, Any]], unavailable: dict[str, str]
) -> dict[str, float]:
    print_table(cases, results, unavailable, MEASURES)
    cpu_rows = [(c, results[c.name]) for c in cases if c.name in results
                and any(k in results[c.name] for k in CPU_KEYS.values())]
    if cpu_rows:
        print(f"\n{'server CPU':18} {'RETR s/GiB':>12} {'STOR s/GiB':>12} {'µs/login':>12}"
              f" {'client µs':>12}")
        for case, res in cpu_rows:
            cells = "".join(
                f" {res[k]:12.{2 if 'gib' in k else 0}f}" if k in res else f" {'-':>12}"
                for k in (*CPU_KEYS.values(), "login_client_cpu_us")
            )
            print(f"{case.label:18}{cells}")
    return print_ratios(GOALS, MEASURES, results)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--size", type=int, help="the file's size in MiB (default 200, quick 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    parser.add_argument(
        "--repeat", type=int, help="one-client transfers per round, best kept (default 3)"
    )
    parser.add_argument("--logins", type=int, help="clients logging in at once (default 300)")
    parser.add_argument(
        "--idle", type=int,
        help="idle logged-in connections for the memory measure (default 10000, quick 200)"
    )
    parser.add_argument(
        "--measures",
        default="retr,stor,logins,idle",
        help="comma-separated: retr, stor, logins, idle (default all)",
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated servers: " + ", ".join(c.name for c in SERVER_CASES),
    )
    add_allocator_option(parser)
    add_baseline_option(parser)
    args = parser.parse_args()
    args.size = args.size if args.size is not None else (1 if args.quick else 200)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    args.logins = args.logins if args.logins is not None else (30 if args.quick else 300)
    args.idle = args.idle if args.idle is not None else (200 if args.quick else 10_000)
    rounds = 1 if args.quick else max(1, args.rounds)
    args.measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    if set(args.measures) - set(MEASURE_GROUPS) or not args.measures:
        parser.error(f"--measures: choose among {', '.join(MEASURE_GROUPS)}")
    if min(args.size, args.repeat, args.logins, args.idle) < 1:
        parser.error("--size, --repeat, --logins and --idle must be positive")
    cases = select(SERVER_CASES, OPTIONAL_SERVERS, args.only)
    use_baseline(cases, args.baseline, parser, "protocols.ftp")

    args.server_cpu, args.client_cpu = pin_load()
    # Every connection is a descriptor here and one in the server (which inherits this
    # limit); the idle measure is lowered to what the hard limit allows, and says so.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.logins, args.idle) + 200
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = min(want, hard) if hard != resource.RLIM_INFINITY else want
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    args.idle_asked = args.idle
    if soft != resource.RLIM_INFINITY and args.idle + 200 > soft:
        args.idle = max(1, soft - 200)
    args.fd_limit = soft

    args.curl = shutil.which("curl")
    args.taskset = shutil.which("taskset")
    skipped: dict[str, str] = {}
    for case in cases:
        why = not_installed(case.needs, "bench,test")
        if why:
            skipped[case.name] = why
    cases = [c for c in cases if c.name not in skipped]
    if args.curl is None:
        print("scripts/bench/ftp.py: curl is not installed (apt-get install curl)",
              file=sys.stderr)
        return 1

    # The served directory: 0755, holding the big file of random bytes.
    with tempfile.TemporaryDirectory(prefix="bench-ftp-") as work:
        args.root = os.path.join(work, "root")
        os.mkdir(args.root, 0o755)
        os.chmod(work, 0o755)
        args.source = os.path.join(args.root, BIG)
        args.size_bytes = args.size << 20
        digest = hashlib.sha256()
        with open(args.source, "wb") as f:
            for _ in range(args.size):
                chunk = os.urandom(1 << 20)
                digest.update(chunk)
                f.write(chunk)
        os.chmod(args.source, 0o644)
        args.sha256 = digest.hexdigest()
        return run(args, cases, skipped, rounds)


def run(
    args: argparse.Namespace, cases: list[ServerCase], skipped: dict[str, str], rounds: int
) -> int:
    allocator_title, allocator_env = allocator(args.allocator)
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores; servers on CPU "
        f"{args.server_cpu}, load (curl, login clients) on CPU {args.client_cpu}; "
        f"{rounds} round(s), best kept\n"
        f"file {args.size:,} MiB; one client (best of {args.repeat}) and {PARALLEL} at once; "
        f"{args.logins} logins at once (clients on epoll, bare sockets); "
        f"{args.idle:,} idle connections"
        + (f" (lowered from {args.idle_asked:,}: fd limit {args.fd_limit:,})"
           if args.idle != args.idle_asked else "")
        + f"; {allocator_title}"
    )
    for name, why in skipped.items():
        print(f"left out {name}: {why}")

    out: dict[str, Any] = {
        **machine(args),
        "size_mib": args.size,
        "sha256": args.sha256,
        "parallel": PARALLEL,
        "repeat": args.repeat,
        "logins": args.logins,
        "client_loop": client_loop(),  # the idle measure's clients
        "login_client": "epoll",
        "idle_connections": args.idle,
        "idle_connections_asked": args.idle_asked,
        "fd_limit": args.fd_limit,
        "rounds": rounds,
        "measures": args.measures,
        "allocator": allocator_title,
        "skipped": skipped,
    }
    return measure_all(
        out, cases, rounds, lambda case: measure_server(case, args, allocator_env), MEASURES,
        {k: (v,) for k, v in CPU_KEYS.items()}, report, args.json,
    )

if __name__ == "__main__":
    sys.exit(main())
