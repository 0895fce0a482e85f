"""Echo benchmark: netshell against raw asyncio and Twisted, side by side in one run.

Each server runs in its own process, pinned to CPU 0; the load generator
(raw asyncio on uvloop, the fastest client we have) runs in this process,
pinned to CPU 1. The servers: netshell, a raw asyncio ``Protocol`` and
Twisted's epoll reactor on their default loops, then netshell and raw asyncio
again on uvloop (``--servers`` picks a subset). Three measures, each on a
fresh server process (``--measures`` picks a subset):

- round-trips: 1 KiB ping-pong round trips per second over 10 connections
  for 3 s (``--seconds``);
- bulk: MiB/s (2**20 bytes per second) of one stream of 256 MiB
  (``--bulk-mib``) sent by the client over one connection and echoed back,
  timed until the last byte is back;
- idle: growth of the server's RSS per open idle connection, with 10,000 open
  (``--idle``). Each connection needs a file descriptor in this process and in
  the server: if the hard fd limit is too low for the count asked for, the
  count is lowered, and the count actually opened and the limit are printed
  and written to the JSON (``idle_connections``, ``fd_limit``).

Every server runs under both glibc allocator settings (``--allocator``, see
ALLOCATORS in common.py), and each set of measures is repeated in ``--rounds``
interleaved rounds; the best and the median of the rounds are reported.

Usage::

    python scripts/bench/echo.py --rounds 3 --json echo.json   # the full run
    python scripts/bench/echo.py --quick --json out.json       # seconds: a smoke test
    # the bulk table of docs/performance.md: 1 GiB x 7 interleaved transfers
    python scripts/bench/echo.py --measures bulk --servers netshell,asyncio \\
        --bulk-mib 1024 --rounds 7 --json echo-bulk.json

It prints, per allocator setting, ratios netshell/raw-asyncio and
netshell/Twisted, then one verdict per comparison that covers both allocator
settings, against the goals of the issue (>= 0.9x raw asyncio and >= 1.5x
Twisted on round trips, >= 0.9x raw asyncio on bulk, idle RSS <= 1.3x raw
asyncio, and the same >= 0.9x on uvloop). Verdicts use the ratio of the best
rounds. It is a measurement: it exits 0 whatever the ratios, and non-zero only
if a server echoes wrongly (or cannot be started).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Any

from common import (
    ALLOCATOR_NAMES,
    ALLOCATORS,
    ROOT,
    pin_load,
    python_env,
    rss_bytes,
    write_json,
)

MIB = 1 << 20
PING_PONG_CONNECTIONS = 10
PING_PONG_PAYLOAD = 1024
BULK_CHUNK = 64 * 1024  # bytes per client write

# Each server prints its port on its first line, then serves until killed.
PROGRAMS = {
    "netshell": """
        import netshell as ns
        from netshell import reactor
        class Echo(ns.Protocol):
            def data_received(self, data):
                self.transport.write(data)
        listener = reactor.listen_tcp(0, ns.Factory.for_protocol(Echo), backlog=4096)
        print(listener.port, flush=True)
        reactor.run()
    """,
    # netshell with an observer (netshell.observe) taking every connection and data event,
    # doing as little as an observer can: what watching costs, next to "netshell".
    "netshell-observed": """
        import netshell as ns
        from netshell import observe, reactor
        class Echo(ns.Protocol):
            def data_received(self, data):
                self.transport.write(data)
        class Counting:
            events = 0
            def connection_made(self, transport):
                self.events += 1
            def connection_lost(self, transport, reason):
                self.events += 1
            def data_in(self, transport, data, addr):
                self.events += 1
            def data_out(self, transport, data, addr):
                self.events += 1
        observe.add_observer(Counting())
        listener = reactor.listen_tcp(0, ns.Factory.for_protocol(Echo), backlog=4096)
        print(listener.port, flush=True)
        reactor.run()
    """,
    "asyncio": """
        import asyncio, os
        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
            def data_received(self, data):
                self.transport.write(data)
        async def main():
            loop = asyncio.get_running_loop()
            server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Event().wait()
        if os.environ.get("NETSHELL_LOOP") == "uvloop":
            import uvloop
            uvloop.run(main())
        else:
            asyncio.run(main())
    """,
    "twisted": """
        from twisted.internet import epollreactor
        epollreactor.install()
        from twisted.internet import reactor, protocol
        class Echo(protocol.Protocol):
            def dataReceived(self, data):
                self.transport.write(data)
        f = protocol.Factory.forProtocol(Echo)
        port = reactor.listenTCP(0, f, backlog=4096, interface="127.0.0.1")
        print(port.getHost().port, flush=True)
        reactor.run()
    """,
}

# --servers name -> (program, on uvloop, label in the tables, module it needs)
SERVERS: dict[str, tuple[str, bool, str, str | None]] = {
    "netshell": ("netshell", False, "netshell", None),
    "asyncio": ("asyncio", False, "raw asyncio", None),
    "twisted": ("twisted", False, "Twisted (epoll)", "twisted"),
    "netshell-uvloop": ("netshell", True, "netshell on uvloop", "uvloop"),
    # with --baseline DIR: the same netshell server from another source tree (an older
    # commit, e.g. a `git worktree`), to compare a change side by side in one run
    "netshell-baseline": ("netshell", False, "netshell, baseline tree", None),
    "netshell-observed": ("netshell-observed", False, "netshell, observed", None),
    "asyncio-uvloop": ("asyncio", True, "raw asyncio on uvloop", "uvloop"),
}

# --measures name -> (JSON key, column heading, format, the better of two values)
MEASURES: dict[str, tuple[str, str, str, Any]] = {
    "round-trips": ("round_trips_per_s", "round trips/s", ",.0f", max),
    "bulk": ("bulk_mib_per_s", "bulk MiB/s", ",.0f", max),
    "idle": ("idle_bytes_per_conn", "idle B/conn", ",.0f", min),
}

# The glibc allocator settings every server runs under (--allocator): ALLOCATORS in
# common.py, as a user gets it and with the mmap threshold levelled (see there).

# (label, server a, server b, measure, goal, op): the ratio is a / b.
GOALS = [
    ("round trips: netshell / asyncio", "netshell", "asyncio", "round-trips", 0.9, ">="),
    ("round trips: netshell / twisted", "netshell", "twisted", "round-trips", 1.5, ">="),
    ("bulk: netshell / asyncio", "netshell", "asyncio", "bulk", 0.9, ">="),
    ("idle RSS: netshell / asyncio", "netshell", "asyncio", "idle", 1.3, "<="),
    (
        "uvloop round trips: netshell / asyncio",
        "netshell-uvloop",
        "asyncio-uvloop",
        "round-trips",
        0.9,
        ">=",
    ),
    ("uvloop bulk: netshell / asyncio", "netshell-uvloop", "asyncio-uvloop", "bulk", 0.9, ">="),
    # A change must not slow the core beyond noise (issue 12: within 2%).
    ("round trips: netshell / baseline tree", "netshell", "netshell-baseline", "round-trips",
     0.98, ">="),
    ("bulk: netshell / baseline tree", "netshell", "netshell-baseline", "bulk", 0.98, ">="),
    # What an observer of every connection and data event costs (no goal: shown as it is).
    ("round trips: observed / netshell", "netshell-observed", "netshell", "round-trips",
     None, ">="),
    ("bulk: observed / netshell", "netshell-observed", "netshell", "bulk", None, ">="),
]


EPILOG = """\
Rates are in binary units: MiB/s = 2**20 bytes per second.

The full run of docs/performance.md:
  python scripts/bench/echo.py --rounds 3 --json echo.json
Its bulk table, 7 interleaved transfers of 1 GiB per server and allocator setting:
  python scripts/bench/echo.py --measures bulk --servers netshell,asyncio \\
      --bulk-mib 1024 --rounds 7 --json echo-bulk.json
"""


# Servers run only when asked for (--servers, or --baseline for netshell-baseline).
OPTIONAL_SERVERS = ("netshell-baseline", "netshell-observed")
BASELINE = ""  # --baseline: the source tree of the "netshell-baseline" server


def start_server(
    name: str, cpu: int, extra_env: dict[str, str]
) -> tuple[subprocess.Popen[str], int]:
    program, on_uvloop, _, _ = SERVERS[name]
    root = BASELINE if name == "netshell-baseline" and BASELINE else ROOT
    env = python_env(extra_env, root=root)
    if on_uvloop:
        env["NETSHELL_LOOP"] = "uvloop"
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n" + textwrap.dedent(PROGRAMS[program])
    # Run from the tree: "python -c" puts its working directory first on sys.path, so run
    # from elsewhere (this checkout, say) the baseline would import that netshell instead.
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True, cwd=root
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{name} server did not start")
    return proc, int(line)


class WrongEcho(Exception):
    pass


class PingPong(asyncio.Protocol):
    def __init__(self, payload: bytes, deadline: float, done: asyncio.Future[int]) -> None:
        self.payload = payload
        self.deadline = deadline
        self.done = done
        self.got = 0
        self.trips = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.payload)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(self.payload):
            return
        if self.got > len(self.payload) or data[-1:] != self.payload[-1:]:
            if not self.done.done():
                self.done.set_exception(WrongEcho("echo returned the wrong bytes"))
            return
        self.got = 0
        self.trips += 1
        if time.perf_counter() < self.deadline:
            self.transport.write(self.payload)  # type: ignore[attr-defined]
        else:
            self.transport.close()
            self.done.set_result(self.trips)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_exception(WrongEcho(f"closed by the server ({exc!r})"))


async def ping_pong(port: int, conns: int, seconds: float) -> float:
    """Round trips per second of 1 KiB messages over ``conns`` connections."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    deadline = start + seconds
    futures = []
    for i in range(conns):
        fut: asyncio.Future[int] = loop.create_future()
        payload = bytes([65 + i % 26]) * PING_PONG_PAYLOAD
        await loop.create_connection(
            functools.partial(PingPong, payload, deadline, fut), "127.0.0.1", port
        )
        futures.append(fut)
    trips = sum(await asyncio.gather(*futures))
    return trips / (time.perf_counter() - start)


class Bulk(asyncio.Protocol):
    def __init__(self, total: int, done: asyncio.Future[None]) -> None:
        self.total = total
        self.received = 0
        self.done = done
        self.chunk = b"x" * BULK_CHUNK
        self.sent = 0
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.pump()

    def pump(self) -> None:
        while not self.paused and self.sent < self.total:
            n = min(len(self.chunk), self.total - self.sent)
            data = self.chunk if n == len(self.chunk) else self.chunk[:n]
            self.transport.write(data)  # type: ignore[attr-defined]
            self.sent += n

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.done.done():
            return
        if self.received > self.total:
            self.done.set_exception(WrongEcho(f"{self.received} bytes back of {self.total} sent"))
            self.transport.close()
        elif self.received == self.total:
            self.transport.close()
            self.done.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_exception(
                WrongEcho(f"closed after {self.received} of {self.total} bytes ({exc!r})")
            )


async def bulk(port: int, mib: int) -> float:
    """MiB/s of ``mib`` MiB sent over one connection and echoed back, until the last byte."""
    loop = asyncio.get_running_loop()
    total = mib * MIB
    done: asyncio.Future[None] = loop.create_future()
    start = time.perf_counter()
    await loop.create_connection(lambda: Bulk(total, done), "127.0.0.1", port)
    await done
    return total / MIB / (time.perf_counter() - start)


async def idle_rss(pid: int, port: int, conns: int) -> tuple[float, int]:
    """(RSS growth in bytes per connection, connections opened) with ``conns`` idle ones."""
    loop = asyncio.get_running_loop()
    before = rss_bytes(pid)
    socks = []
    try:
        for _ in range(conns):
            s = socket.socket()
            socks.append(s)
            s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", port))
        # One echo over the last connection: the server has accepted everything before it.
        probe = socks[-1]
        await loop.sock_sendall(probe, b"?")
        if await loop.sock_recv(probe, 1) != b"?":
            raise WrongEcho("the probe was not echoed")
        after = rss_bytes(pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) / len(socks), len(socks)


async def measure(
    name: str, measure_name: str, args: argparse.Namespace, extra_env: dict[str, str]
) -> dict[str, float]:
    """One measure of one server, on a fresh server process.

    Memory in particular needs a fresh server: after bulk traffic the heap is full of
    freed buffers, which would hide (or invert) the per-connection cost.
    """
    proc, port = start_server(name, args.server_cpu, extra_env)
    try:
        if measure_name == "round-trips":
            return {"round_trips_per_s": await ping_pong(port, PING_PONG_CONNECTIONS, args.seconds)}
        if measure_name == "bulk":
            return {"bulk_mib_per_s": await bulk(port, args.bulk_mib)}
        per_conn, opened = await idle_rss(proc.pid, port, args.idle)
        return {"idle_bytes_per_conn": per_conn, "idle_connections": opened}
    finally:
        proc.kill()
        proc.wait()


def summarize(values: list[float], better: Any) -> dict[str, Any]:
    return {
        "best": better(values),
        "median": statistics.median(values),
        "rounds": values,
    }


def ratio_line(label: str, best: float, median: float, rounds: int) -> str:
    if rounds > 1:
        return f"  {label:40} best {best:5.2f}x  median {median:5.2f}x"
    return f"  {label:40} {best:5.2f}x"


def report(
    title: str, results: dict[str, dict[str, Any]], measures: list[str], rounds: int
) -> dict[str, dict[str, float]]:
    """Print one allocator setting's table and its ratios; return the ratios."""
    print(f"\n== {title}")
    for stat in ("best", "median") if rounds > 1 else ("best",):
        head = f"{'server (' + stat + ' of ' + str(rounds) + ')':26}"
        head += "".join(f" {MEASURES[m][1]:>14}" for m in measures)
        print(head)
        for name, res in results.items():
            line = f"{SERVERS[name][2]:26}"
            for m in measures:
                key, _, fmt, _ = MEASURES[m]
                line += f" {format(res[key][stat], fmt):>14}"
            print(line)
    ratios: dict[str, dict[str, float]] = {}
    for label, a, b, m, _, _ in GOALS:
        if a not in results or b not in results or m not in measures:
            continue
        key = MEASURES[m][0]
        value = {stat: results[a][key][stat] / results[b][key][stat] for stat in ("best", "median")}
        print(ratio_line(label, value["best"], value["median"], rounds))
        ratios[label] = value
    return ratios


def verdict(values: dict[str, float], goal: float, op: str) -> str:
    """One verdict over every allocator setting measured, e.g. 'met on default, not on
    levelled (0.83)'."""
    met = {name: (v >= goal if op == ">=" else v <= goal) for name, v in values.items()}
    if all(met.values()):
        return "met on both" if len(met) == 2 else f"met on {', '.join(met)} (only one measured)"
    if not any(met.values()):
        shown = ", ".join(f"{n} {v:.2f}" for n, v in values.items())
        return f"not met on {'either' if len(met) == 2 else 'it'} ({shown})"
    good = [n for n, ok in met.items() if ok]
    bad = [f"{n} ({values[n]:.2f})" for n, ok in met.items() if not ok]
    return f"met on {', '.join(good)}, not on {', '.join(bad)}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny run, for a smoke test (1 round, 0.3 s, 8 MiB, 200 idle connections)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results to FILE")
    parser.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds; best and median reported, verdicts on the best "
        "(default 3, quick 1)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(n for n in SERVERS if n not in OPTIONAL_SERVERS),
        help="comma-separated subset of " + ",".join(SERVERS) + " (default: all but "
        + ", ".join(OPTIONAL_SERVERS) + ")",
    )
    parser.add_argument(
        "--measures",
        default=",".join(MEASURES),
        help="comma-separated subset of " + ",".join(MEASURES) + " (default: all)",
    )
    parser.add_argument(
        "--allocator",
        choices=["both", *ALLOCATOR_NAMES],
        default="both",
        help="glibc allocator settings for the servers (default both)",
    )
    parser.add_argument(
        "--seconds", type=float, help="round-trips: seconds per measurement (default 3, quick 0.3)"
    )
    parser.add_argument(
        "--bulk-mib",
        type=int,
        metavar="N",
        help="bulk: MiB sent through the echo per transfer (default 256, quick 8)",
    )
    parser.add_argument(
        "--idle",
        type=int,
        metavar="N",
        help="idle: connections to open (default 10000, quick 200); lowered if the hard "
        "fd limit is too low, and the count opened is reported",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a netshell source tree (e.g. a git worktree of an older commit): adds the "
        "server netshell-baseline, run from it, to compare a change in one run",
    )
    args = parser.parse_args()
    global BASELINE
    if args.baseline:
        if not os.path.isfile(os.path.join(args.baseline, "netshell", "__init__.py")):
            parser.error(f"--baseline: {args.baseline} has no netshell/ package")
        BASELINE = os.path.abspath(args.baseline)
        check = subprocess.run(
            [sys.executable, "-c", "import netshell; print(netshell.__file__)"],
            env=dict(os.environ, PYTHONPATH=BASELINE), cwd=BASELINE,
            capture_output=True, text=True,
        )
        if check.returncode != 0 or not check.stdout.startswith(BASELINE + os.sep):
            parser.error(f"--baseline: {BASELINE} does not import its own netshell: "
                         f"{check.stdout}{check.stderr}")
        if "netshell-baseline" not in args.servers.split(","):
            args.servers += ",netshell-baseline"
    quick = args.quick
    rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    if args.seconds is None:
        args.seconds = 0.3 if quick else 3.0
    if args.bulk_mib is None:
        args.bulk_mib = 8 if quick else 256
    if args.idle is None:
        args.idle = 200 if quick else 10_000
    if rounds < 1 or args.bulk_mib < 1 or args.idle < 1 or args.seconds <= 0:
        parser.error("--rounds, --bulk-mib, --idle and --seconds must be positive")
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if "netshell-baseline" in names and not BASELINE:
        parser.error("the server netshell-baseline needs --baseline DIR")
    measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    for what, asked, known in (("servers", names, SERVERS), ("measures", measures, MEASURES)):
        unknown = set(asked) - set(known)
        if unknown or not asked:
            parser.error(
                f"--{what}: unknown {', '.join(sorted(unknown))}; known: {', '.join(known)}"
            )
    measures = [m for m in MEASURES if m in measures]  # table order
    allocators = [
        (short, title, env)
        for short, (title, env) in zip(ALLOCATOR_NAMES, ALLOCATORS, strict=True)
        if args.allocator in ("both", short)
    ]

    # Every idle connection is a file descriptor here and one in the server (which
    # inherits our limit); leave room for the rest.
    soft_before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle_asked = args.idle
    if "idle" in measures and args.idle + 100 > hard:
        args.idle = max(1, hard - 200)
    args.server_cpu, client_cpu = pin_load()

    left_out: dict[str, str] = {}
    for name in list(names):
        module = SERVERS[name][3]
        if module is not None and importlib.util.find_spec(module) is None:
            left_out[name] = f"{module} is not installed (pip install -e '.[bench,fast]')"
            names.remove(name)
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    run = uvloop.run if uvloop is not None else asyncio.run
    client_loop = "uvloop" if uvloop is not None else "asyncio"

    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores; servers on CPU "
        f"{args.server_cpu}, load generator (asyncio on {client_loop}) on CPU {client_cpu}"
    )
    print(f"servers: {', '.join(SERVERS[n][2] for n in names)}")
    for name, why in left_out.items():
        print(f"left out: {SERVERS[name][2]}: {why}")
    loads = []
    if "round-trips" in measures:
        loads.append(
            f"round trips: {PING_PONG_CONNECTIONS} connections x {args.seconds:g} s "
            f"of {PING_PONG_PAYLOAD} B messages"
        )
    if "bulk" in measures:
        loads.append(f"bulk: {args.bulk_mib} MiB per transfer, one connection")
    if "idle" in measures:
        lowered = f" (lowered from {idle_asked:,})" if args.idle != idle_asked else ""
        loads.append(
            f"idle: {args.idle:,} connections{lowered}, fd limit {hard:,} "
            f"(soft limit was {soft_before:,})"
        )
    print("; ".join(loads) + f"; {rounds} interleaved round(s)")

    out: dict[str, Any] = {
        "quick": quick,
        "python": platform.python_version(),
        "client_loop": client_loop,
        "server_cpu": args.server_cpu,
        "client_cpu": client_cpu,
        "rounds": rounds,
        "servers": names,
        "left_out": left_out,
        "measures": measures,
        "round_trip_seconds": args.seconds,
        "round_trip_connections": PING_PONG_CONNECTIONS,
        "bulk_mib": args.bulk_mib,
        "idle_connections_asked": idle_asked,
        "idle_connections": None,
        "fd_limit": hard,
        "fd_limit_soft_before": soft_before,
        "allocators": {},
        "verdicts": {},
    }
    opened: list[int] = []
    for short, title, extra_env in allocators:
        values: dict[str, dict[str, list[float]]] = {n: {} for n in names}
        for _ in range(rounds):
            for name in names:
                for m in measures:
                    res = run(measure(name, m, args, extra_env))
                    if "idle_connections" in res:
                        opened.append(int(res.pop("idle_connections")))
                    for key, value in res.items():
                        values[name].setdefault(key, []).append(value)
        results = {
            name: {MEASURES[m][0]: summarize(per[MEASURES[m][0]], MEASURES[m][3]) for m in measures}
            for name, per in values.items()
        }
        out["allocators"][short] = {
            "title": title,
            "env": extra_env,
            "results": results,
            "ratios": report(title, results, measures, rounds),
        }
    if opened:
        out["idle_connections"] = min(opened)
        print(f"\nidle: {min(opened):,} connections opened per measurement (fd limit {hard:,})")

    title = f"\n== verdicts (ratio of the best of {rounds} round(s), on each allocator setting)"
    for label, _, _, _, goal, op in GOALS:
        per = {
            short: out["allocators"][short]["ratios"][label]["best"]
            for short, _, _ in allocators
            if label in out["allocators"][short]["ratios"]
        }
        if not per:
            continue
        if title:
            print(title)
            title = ""
        shown = "  ".join(f"{n} {v:5.2f}x" for n, v in per.items())
        if goal is None:  # a cost shown as it is
            print(f"  {label:40} {shown}  (no goal)")
            out["verdicts"][label] = {"goal": None, **per, "verdict": None}
            continue
        text = verdict(per, goal, op)
        print(f"  {label:40} {shown}  goal {op} {goal}x: {text}")
        out["verdicts"][label] = {"goal": f"{op} {goal}", **per, "verdict": text}
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
