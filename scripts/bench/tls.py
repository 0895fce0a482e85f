"""TLS benchmark: netshell against Twisted's TLS and asyncio's ssl transport, in one run.

Each echo server runs in its own process, pinned to CPU 0, with the same
certificate (an EC P-256 leaf from ``netshell.tls.self_signed("localhost")``):

- netshell: ``reactor.listen_tls`` with ``tls.server_context(cert, key)``;
- Twisted: ``reactor.listenSSL`` on the epoll reactor, with
  ``ssl.PrivateCertificate.loadPEM(cert + key).options()``, and TCP_NODELAY
  set in ``connectionMade`` as asyncio does for every TCP connection
  (``--twisted-nagle`` leaves Twisted's default, Nagle on);
- asyncio-ssl: ``loop.create_server(..., ssl=context)`` with the stdlib ``ssl``
  module (``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)``).

netshell and asyncio-ssl run on asyncio's default event loop. The load
generator runs in this process, pinned to CPU 1, and is the same for all
three: raw asyncio with the stdlib ``ssl`` module, on uvloop when installed.
Two measures, each on a fresh server process:

- handshakes/s: 8 workers, each in a loop for a fixed time (5 s): connect,
  complete the TLS handshake, send 1 byte, read the echo, close
  (close_notify both ways), wait until the connection is gone. Every
  connection must present the server's certificate and echo its byte;
- bulk MiB/s: 256 MiB (``--bulk-mib``) streamed through the echo over one TLS
  connection and back. Every echoed byte is compared with what was sent
  (``--check sha256`` hashes the stream instead, at a third of the load
  generator's CPU).

Before the handshakes are timed, one connection that verifies the chain and
the host name checks the server and notes what was negotiated (version,
cipher, whether a session ticket came); each server also prints that on its
stderr once. The timed connections skip chain verification (they compare
the certificate's bytes instead). Even so, a TLS 1.3 client costs more CPU
per handshake than the server (it verifies the server's signature, which is
dearer than making it), so the load generator may be the limit: the
server's CPU time per handshake and per GiB (as the server process reports
its own ``time.process_time()``) is reported next to each rate, with how busy
each CPU was.

Usage::

    python scripts/bench/tls.py                # the full run (about a minute)
    python scripts/bench/tls.py --quick        # seconds: a smoke test
    python scripts/bench/tls.py --json out.json
    python scripts/bench/tls.py --profile DIR  # cProfile each server; numbers not comparable

The servers run with the levelled allocator of scripts/bench/common.py
(``--allocator both`` adds the default one): glibc's mmap threshold must not
decide the result. ``NETSHELL_BENCH_PROFILE=DIR`` in the environment does the
same as ``--profile DIR``: each server process writes a cProfile dump
``DIR/<server>-<measure>-<pid>.prof`` when it is stopped.

It prints ratios netshell/Twisted (goal >= 1.0 on both measures, and on the
server CPU per handshake and per GiB) and netshell/asyncio-ssl (no goal). It
is a measurement: it exits 0 whatever the ratios, and 1 only if a server
echoes wrongly or presents another certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import os
import platform
import random
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any, NamedTuple

from common import (
    ALLOCATORS,
    PROFILE_ENV,
    add_allocator_option,
    add_profile_option,
    pin_load,
    python_env,
    ratio_line,
    stop_process,
    write_json,
)

WORKERS = 8  # concurrent handshake loops
CHUNK = 64 * 1024  # bulk: bytes per client write
MIB, GIB = 1 << 20, 1 << 30  # rates and costs are in binary units

# Run first in every server: pin to its CPU (0), read the certificate's paths, say
# once on stderr what was negotiated, and (when asked) profile the serving part.
PRELUDE = """
import os, signal, sys, time
os.sched_setaffinity(0, {int(os.environ["BENCH_TLS_CPU"])})
CERT, KEY = os.environ["BENCH_TLS_CERT"], os.environ["BENCH_TLS_KEY"]
NAME = os.environ["BENCH_TLS_NAME"]
# SIGUSR1: print the CPU time used so far (to the nanosecond; /proc counts in 10 ms ticks).
signal.signal(signal.SIGUSR1, lambda *_: print(time.process_time(), flush=True))
_told = []
def tell(version, cipher):
    if not _told:
        _told.append(1)
        print(f"{NAME} negotiated {version} {cipher}", file=sys.stderr, flush=True)
def serving():
    path = os.environ.get("BENCH_TLS_PROFILE_PATH")
    if not path:
        return
    path = path.replace("{pid}", str(os.getpid()))
    import cProfile
    profile = cProfile.Profile()
    def dump(*_):
        profile.disable()
        profile.dump_stats(path)
        os._exit(0)
    signal.signal(signal.SIGUSR2, dump)  # SIGTERM is the reactors' own
    profile.enable()
"""

# Each server prints its port on its first line, then serves until stopped.
SERVERS = {
    "netshell": """
        import netshell as ns
        from netshell import reactor, tls
        class Echo(ns.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                if not _told:
                    info = transport.tls
                    tell(info.version, info.cipher)
            def data_received(self, data):
                self.transport.write(data)
        listener = reactor.listen_tls(
            0, ns.Factory.for_protocol(Echo), tls.server_context(CERT, KEY), backlog=4096
        )
        print(listener.port, flush=True)
        serving()
        reactor.run()
    """,
    "twisted": """
        from twisted.internet import epollreactor
        epollreactor.install()
        from twisted.internet import reactor, protocol, ssl
        with open(CERT, "rb") as f:
            cert = f.read()
        with open(KEY, "rb") as f:
            key = f.read()
        options = ssl.PrivateCertificate.loadPEM(cert + key).options()
        nodelay = os.environ.get("BENCH_TLS_NODELAY") == "1"
        class Echo(protocol.Protocol):
            def connectionMade(self):
                if nodelay:  # what asyncio does for every TCP connection
                    self.transport.setTcpNoDelay(True)
            def dataReceived(self, data):
                if not _told:
                    conn = self.transport.getHandle()
                    tell(conn.get_protocol_version_name(), conn.get_cipher_name())
                self.transport.write(data)
        factory = protocol.Factory.forProtocol(Echo)
        port = reactor.listenSSL(0, factory, options, backlog=4096, interface="127.0.0.1")
        print(port.getHost().port, flush=True)
        serving()
        reactor.run()
    """,
    "asyncio-ssl": """
        import asyncio, ssl
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(CERT, KEY)
        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                if not _told:
                    obj = transport.get_extra_info("ssl_object")
                    tell(obj.version(), obj.cipher()[0])
            def data_received(self, data):
                self.transport.write(data)
        async def main():
            loop = asyncio.get_running_loop()
            server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=context, backlog=4096)
            print(server.sockets[0].getsockname()[1], flush=True)
            serving()
            await asyncio.Event().wait()
        asyncio.run(main())
    """,
}

LABELS = {"netshell": "netshell", "twisted": "Twisted", "asyncio-ssl": "asyncio ssl"}


class WrongEcho(Exception):
    """A server echoed other bytes than it was sent, or presented another certificate."""


class Cert(NamedTuple):
    """The one certificate all servers use: file paths, the CA to trust, the leaf's DER."""

    cert: str
    key: str
    ca_pem: bytes
    leaf_der: bytes


# ---- the server processes


class Server:
    """One server process, pinned to its CPU; killed when done (asked first, with SIGUSR2,
    to write its profile when profiling)."""

    def __init__(
        self, name: str, cert: Cert, env: dict[str, str], profile: str | None, tag: str
    ) -> None:
        self.name = name
        # asyncio's default loop for every server
        full = python_env({**env, "BENCH_TLS_CERT": cert.cert, "BENCH_TLS_KEY": cert.key,
                           "BENCH_TLS_NAME": name}, drop=("NETSHELL_LOOP", PROFILE_ENV))
        self.profiling = bool(profile)
        if profile:
            os.makedirs(profile, exist_ok=True)
            full["BENCH_TLS_PROFILE_PATH"] = os.path.join(profile, f"{name}-{tag}-{{pid}}.prof")
        code = textwrap.dedent(PRELUDE) + textwrap.dedent(SERVERS[name])
        # Open for the process's life: what it says is read after it is stopped.
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=full,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip():
            self.stop()
            raise RuntimeError(f"the {name} server did not start:\n{self.said()}")
        self.port = int(line)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far, as it tells it."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        line = self.proc.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"the {self.name} server died:\n{self.said()}")
        return float(line)

    def said(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self) -> None:
        # With a profile to write, ask for it; otherwise (and if that fails) kill.
        stop_process(self.proc, self.profiling)


# ---- the load generator


class OneByte(asyncio.Protocol):
    """Send one byte once connected (the handshake is done by then), wait for its echo."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.echo: asyncio.Future[bytes] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.got = b""

    def data_received(self, data: bytes) -> None:
        self.got += data
        if not self.echo.done():
            self.echo.set_result(self.got)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.echo.done():
            self.echo.set_exception(ConnectionError(f"closed before the echo ({exc!r})"))
        if not self.gone.done():
            self.gone.set_result(None)


async def one_connection(
    port: int, context: ssl.SSLContext, byte: bytes, leaf: bytes | None
) -> ssl.SSLObject:
    """Connect, handshake, echo ``byte``, close and wait until closed; returns the SSL object.

    With ``leaf``, the server must present that certificate (DER bytes).
    """
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(
        lambda: OneByte(loop), "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    if leaf is not None and transport.get_extra_info("ssl_object").getpeercert(True) != leaf:
        raise WrongEcho(f"port {port} presented another certificate")
    transport.write(byte)
    echoed = await proto.echo
    if echoed != byte:
        raise WrongEcho(f"sent {byte!r}, the echo was {echoed!r}")
    info = transport.get_extra_info("ssl_object")
    transport.close()
    await proto.gone
    return info


async def probe(port: int, ca: bytes) -> dict[str, Any]:
    """One fully verified connection: what was negotiated, and is the echo right."""
    context = ssl.create_default_context(cadata=ca.decode())
    obj = await asyncio.wait_for(one_connection(port, context, b"?", None), 30)
    session, cipher = obj.session, obj.cipher()
    return {
        "version": obj.version(),
        "cipher": cipher[0] if cipher else None,
        "session_ticket": bool(session is not None and session.has_ticket),
    }


def bare_client_context() -> ssl.SSLContext:
    """A client context that trusts nothing and checks nothing (the timed connections).

    Without a trust store OpenSSL gives up on the chain at once; with the system's
    (``create_default_context()``) it searches /etc/ssl/certs for our throwaway CA on
    every handshake, which made the load generator the bottleneck. The leaf's bytes
    are compared instead, and the probe verifies everything once.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def handshakes(port: int, leaf: bytes, seconds: float) -> tuple[int, float]:
    """WORKERS loops of connect/handshake/echo/close for ``seconds``: (connections, elapsed)."""
    context = bare_client_context()
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(i: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            await one_connection(port, context, bytes([(i * 31 + done) % 256]), leaf)
            done += 1
        return done

    counts = await asyncio.wait_for(
        asyncio.gather(*(worker(i) for i in range(WORKERS))), seconds + 60
    )
    return sum(counts), time.perf_counter() - start


class Pattern:
    """What the bulk measure sends: 1 MiB of seeded random bytes, repeated to ``total``."""

    def __init__(self, mib: int, check: str) -> None:
        self.block = random.Random(2026).randbytes(1 << 20)
        self.doubled = self.block + self.block  # any slice up to 1 MiB long, at any offset
        self.chunks = [self.block[i : i + CHUNK] for i in range(0, len(self.block), CHUNK)]
        self.total = mib << 20
        self.check = check
        self.sha256 = ""
        if check == "sha256":
            expected = hashlib.sha256()
            for _ in range(mib):
                expected.update(self.block)
            self.sha256 = expected.hexdigest()


class BulkClient(asyncio.Protocol):
    """Stream the pattern with flow control; check every byte that comes back.

    ``check="bytes"`` compares each echoed piece with the pattern where it should
    be (a memcmp: about 28 GiB/s); ``check="sha256"`` hashes the echoed stream
    and compares digests at the end, which costs the load generator about a
    third of its CPU at these rates (SHA-256 runs at 1.7 GiB/s here).
    """

    def __init__(self, pattern: Pattern, done: asyncio.Future[None]) -> None:
        self.pattern = pattern
        self.total = pattern.total
        self.size = len(pattern.block)
        self.done = done
        self.sent = 0
        self.received = 0
        self.hash = hashlib.sha256() if pattern.check == "sha256" else None
        self.paused = False
        self.next = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.pump()

    def pump(self) -> None:
        chunks = self.pattern.chunks
        while not self.paused and self.sent < self.total:
            chunk = chunks[self.next]
            self.next = (self.next + 1) % len(chunks)
            self.transport.write(chunk)
            self.sent += len(chunk)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        n = len(data)
        if self.received + n > self.total:
            self.fail(f"{self.received + n - self.total} bytes more than were sent")
            return
        if self.hash is not None:
            self.hash.update(data)
        else:
            doubled, size, pos = self.pattern.doubled, self.size, 0
            while pos < n:
                offset = (self.received + pos) % size
                take = min(n - pos, size)
                piece = data if take == n else data[pos : pos + take]
                if piece != doubled[offset : offset + take]:
                    self.fail(f"the echo differs from what was sent after byte {self.received}")
                    return
                pos += take
        self.received += n
        if self.received == self.total:
            if self.hash is not None and self.hash.hexdigest() != self.pattern.sha256:
                self.fail("the SHA-256 of the echoed stream is not that of what was sent")
            else:
                self.done.set_result(None)

    def fail(self, why: str) -> None:
        self.done.set_exception(WrongEcho(why))
        self.transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.fail(f"closed after {self.received} of {self.total} bytes ({exc!r})")


async def bulk(port: int, leaf: bytes, pattern: Pattern) -> tuple[float, float]:
    """Stream the pattern through the echo and back: (MiB/s, elapsed). WrongEcho if it differs."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    start = time.perf_counter()
    transport, _ = await loop.create_connection(
        lambda: BulkClient(pattern, done),
        "127.0.0.1",
        port,
        ssl=bare_client_context(),
        server_hostname="localhost",
    )
    if transport.get_extra_info("ssl_object").getpeercert(True) != leaf:
        raise WrongEcho(f"port {port} presented another certificate")
    await asyncio.wait_for(done, 600)
    elapsed = time.perf_counter() - start
    transport.close()
    return (pattern.total / MIB) / elapsed, elapsed


# ---- one measurement


async def measure(
    name: str,
    step: str,
    args: argparse.Namespace,
    cert: Cert,
    env: dict[str, str],
    pattern: Pattern,
) -> dict[str, Any]:
    """One measure (``"handshakes"`` or ``"bulk"``) of one server, on a fresh server process."""
    server = Server(name, cert, env, args.profile, step)
    result: dict[str, Any] = {}
    try:
        cpu0, own0 = server.cpu_seconds(), time.process_time()
        if step == "handshakes":
            # Checked first, untimed: the chain, the host name, and the echo.
            result["negotiated"] = await probe(server.port, cert.ca_pem)
            cpu0, own0 = server.cpu_seconds(), time.process_time()
            count, elapsed = await handshakes(server.port, cert.leaf_der, args.seconds)
            cpu = server.cpu_seconds() - cpu0
            result["handshakes_per_s"] = count / elapsed
            result["handshakes"] = count
            result["server_cpu_us_per_handshake"] = cpu / count * 1e6
        else:
            rate, elapsed = await bulk(server.port, cert.leaf_der, pattern)
            cpu = server.cpu_seconds() - cpu0
            result["bulk_mib_per_s"] = rate
            result["server_cpu_s_per_gib"] = cpu / (pattern.total / GIB)
        result[f"server_cpu_busy_{step}"] = cpu / elapsed
        result[f"client_cpu_busy_{step}"] = (time.process_time() - own0) / elapsed
    finally:
        server.stop()
        said = server.said().strip()
        server.stderr.close()
    if said:
        result[f"server_said_{step}"] = said
    return result


# measure -> (its rate, the server's CPU cost per unit)
MEASURES = {
    "handshakes": ("handshakes_per_s", "server_cpu_us_per_handshake"),
    "bulk": ("bulk_mib_per_s", "server_cpu_s_per_gib"),
}


# ---- reporting

# (label, the other server, key, goal); for server CPU per unit the ratio is the
# other's cost over netshell's, so above 1 means netshell is cheaper there too.
GOALS = [
    ("handshakes/s: netshell / Twisted", "twisted", "handshakes_per_s", 1.0),
    ("bulk MiB/s: netshell / Twisted", "twisted", "bulk_mib_per_s", 1.0),
    ("server CPU per handshake: Twisted / netshell", "twisted", "server_cpu_us_per_handshake", 1.0),
    ("server CPU per GiB: Twisted / netshell", "twisted", "server_cpu_s_per_gib", 1.0),
    ("handshakes/s: netshell / asyncio ssl", "asyncio-ssl", "handshakes_per_s", None),
    ("bulk MiB/s: netshell / asyncio ssl", "asyncio-ssl", "bulk_mib_per_s", None),
    (
        "server CPU per handshake: asyncio ssl / netshell",
        "asyncio-ssl",
        "server_cpu_us_per_handshake",
        None,
    ),
    ("server CPU per GiB: asyncio ssl / netshell", "asyncio-ssl", "server_cpu_s_per_gib", None),
]


def limit(server: float, client: float) -> str:
    """Which side a rate was limited by, from how busy each CPU was."""
    if client >= 0.9 and client >= server:
        return "the load generator"
    if server >= 0.9:
        return "the server"
    return "neither CPU (waiting)"


def report(title: str, best: dict[str, dict[str, Any]]) -> dict[str, float]:
    print(f"\n== {title}")
    print(
        f"{'server':12} {'handshakes/s':>12} {'srv CPU us/hs':>13} "
        f"{'bulk MiB/s':>10} {'srv CPU s/GiB':>13}  negotiated"
    )
    for name, res in best.items():
        neg = res["negotiated"]
        ticket = "ticket" if neg["session_ticket"] else "no ticket"
        print(
            f"{LABELS[name]:12} {res['handshakes_per_s']:12,.0f} "
            f"{res['server_cpu_us_per_handshake']:13,.0f} {res['bulk_mib_per_s']:10,.0f} "
            f"{res['server_cpu_s_per_gib']:13.2f}  {neg['version']} {neg['cipher']}, {ticket}"
        )
    print("CPU busy, server / load generator, and what limited the rate:")
    for name, res in best.items():
        line = f"  {LABELS[name]:12}"
        for step in ("handshakes", "bulk"):
            srv, cli = res[f"server_cpu_busy_{step}"], res[f"client_cpu_busy_{step}"]
            res[f"limited_by_{step}"] = limit(srv, cli)
            line += f" {step} {srv:4.0%} / {cli:4.0%} ({limit(srv, cli)});"
        print(line.rstrip(";"))
    ratios = {}
    for label, other, key, goal in GOALS:
        if "netshell" not in best or other not in best:
            continue
        ours, theirs = best["netshell"][key], best[other][key]
        value = theirs / ours if key.startswith("server_cpu_") else ours / theirs
        print(ratio_line(label, value, goal, width=48))
        ratios[label] = value
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    parser.add_argument("--seconds", type=float, help="handshake loop time (default 5, quick 0.3)")
    parser.add_argument(
        "--bulk-mib",
        "--megabytes",
        dest="bulk_mib",
        type=int,
        metavar="N",
        help="bulk size in MiB (default 256, quick 4); --megabytes is the old name",
    )
    parser.add_argument(
        "--check",
        choices=["bytes", "sha256"],
        default="bytes",
        help="bulk: compare every echoed byte with the pattern, or hash the stream",
    )
    parser.add_argument(
        "--twisted-nagle",
        action="store_true",
        help="leave Nagle's algorithm on for Twisted, its default (asyncio turns it off)",
    )
    add_allocator_option(parser, ("levelled", "default", "both"))
    add_profile_option(parser)
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="comma-separated subset of " + ",".join(SERVERS),
    )
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 5.0
    if args.bulk_mib is None:
        args.bulk_mib = 4 if args.quick else 256
    rounds = 1 if args.quick else args.rounds
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # CPU 0 for the servers and CPU 1 for us, or the first two this process may use.
    server_cpu, client_cpu = pin_load()

    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = set(names) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if "twisted" in names and importlib.util.find_spec("twisted") is None:
        print("Twisted is not installed (pip install -e '.[bench]'): left out")
        names.remove("twisted")

    allocators = ALLOCATORS  # [default, levelled]
    if args.allocator == "levelled":
        allocators = allocators[-1:]
    elif args.allocator == "default":
        allocators = allocators[:1]

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from OpenSSL import SSL

    from netshell import tls

    workdir = tempfile.mkdtemp(prefix="netshell-tls-bench-")
    cert_path, key_path, ca_path = tls.self_signed_files(workdir, "localhost")
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert = Cert(
        str(cert_path),
        str(key_path),
        ca_path.read_bytes(),
        leaf.public_bytes(serialization.Encoding.DER),
    )
    pattern = Pattern(args.bulk_mib, args.check)

    run = uvloop.run if uvloop is not None else asyncio.run
    pyopenssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    client_loop = "uvloop" if uvloop is not None else "asyncio"
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores; servers on CPU "
        f"{server_cpu}, load generator (asyncio + ssl on {client_loop}) on CPU {client_cpu}\n"
        f"stdlib ssl: {ssl.OPENSSL_VERSION}; pyOpenSSL: {pyopenssl}\n"
        f"handshakes: {WORKERS} workers x {args.seconds:g} s; bulk: {args.bulk_mib} MiB; "
        f"{rounds} round(s), best kept"
    )
    if args.profile:
        print(f"profiling the servers into {args.profile}: these numbers are not comparable")
    out: dict[str, Any] = {
        "quick": args.quick,
        "python": platform.python_version(),
        "stdlib_openssl": ssl.OPENSSL_VERSION,
        "pyopenssl_openssl": pyopenssl,
        "client_loop": client_loop,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "workers": WORKERS,
        "seconds": args.seconds,
        "bulk_mib": args.bulk_mib,
        "bulk_check": args.check,
        "twisted_tcp_nodelay": not args.twisted_nagle,
        "rounds": rounds,
        "allocators": {},
    }
    status = 0
    try:
        for title, allocator_env in allocators:
            env = dict(
                allocator_env,
                BENCH_TLS_NODELAY="0" if args.twisted_nagle else "1",
                BENCH_TLS_CPU=str(server_cpu),
            )
            # Per server and measure: the best rate (with how busy the CPUs were in
            # that round) and, separately, the least server CPU per unit of any round.
            kept: dict[tuple[str, str], dict[str, Any]] = {}
            for _ in range(rounds):
                for name in names:
                    for step, (rate, cost) in MEASURES.items():
                        res = run(measure(name, step, args, cert, env, pattern))
                        prev = kept.get((name, step))
                        if prev is None:
                            kept[name, step] = res
                            continue
                        least = min(prev[cost], res[cost])
                        if res[rate] > prev[rate]:
                            kept[name, step] = prev = res
                        prev[cost] = least
            best = {n: {**kept[n, "handshakes"], **kept[n, "bulk"]} for n in names}
            out["allocators"][title] = {"results": best, "ratios": report(title, best)}
    except WrongEcho as e:
        print(f"\nCORRECTNESS CHECK FAILED: {e}")
        status = 1
    finally:
        for p in (cert_path, key_path, ca_path):
            p.unlink(missing_ok=True)
        os.rmdir(workdir)
    write_json(args.json, out)
    return status


if __name__ == "__main__":
    sys.exit(main())
