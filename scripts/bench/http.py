"""HTTP benchmark: netshell's server and client against twisted.web, aiohttp and uvicorn.

Servers. Each runs in its own process, pinned to CPU 0, and answers ``GET /``
on 127.0.0.1 with ``Hello, World!`` (``text/plain; charset=utf-8``, with a
Content-Length), keeping connections alive, with no access log:

- netshell: ``http.serve(app)`` with an ``http.App`` route returning a str, on
  asyncio's default loop; netshell-uvloop: the same with ``NETSHELL_LOOP=uvloop``;
- twisted: twisted.web ``Site`` with a leaf ``Resource``, on the epoll reactor
  (its access log, on by default, is turned off like everyone else's);
- aiohttp: ``web.Application`` with one route, ``web.run_app`` in one process,
  ``access_log=None``, on asyncio's default loop;
- uvicorn-h11 and uvicorn-httptools: a plain ASGI app, one worker,
  ``access_log=False``; ``http="h11"`` runs on ``loop="asyncio"`` and
  ``http="httptools"`` on ``loop="uvloop"``, as uvicorn picks them itself when
  both are installed. Each server names the loop it runs on when it starts.

Before anything is timed, each server's answer is checked once with urllib
(status, body, content type) and once with two requests over one http.client
connection (it must be kept alive). The load is ``wrk -t1 -c50 -d<seconds>s``,
pinned to CPU 1 with taskset, after a one-second warm-up run: Requests/sec is
parsed from its output, and a run with any non-2xx answer or socket error marks
the server failed (reported, not measured). Each round starts every server
afresh; rounds are interleaved and the best kept. Next to each rate: how busy
the server's CPU was (near 100% means the server, not wrk, was the limit).
Servers run with the levelled glibc allocator of scripts/bench/common.py
(``--allocator default`` for glibc as it comes).

Static files. Each static server serves one directory (made afresh, 0755) holding
``small.txt`` (``Hello, World!``, 13 bytes, ``text/plain``) and ``large.bin``
(``--large-mib`` MiB of random bytes, 10 by default), with no access log, keeping
connections alive; each is pinned to CPU 0 like the app servers:

- static-netshell: ``http.serve(directory)`` (a ``StaticFiles``), asyncio's loop;
- static-twisted: twisted.web ``Site(static.File(directory))`` on the epoll reactor,
  ``Site.log`` turned off;
- static-nginx: nginx with ``worker_processes 1`` under its master process,
  ``sendfile on``, ``access_log off``, its defaults otherwise (``keepalive_requests
  1000``, as netshell's ``max_requests``; ``tcp_nopush`` off); its CPU is the master's
  and the worker's together.

Both files are checked whole with urllib (status, type, body) and the small one twice
over one kept-alive connection; then, from the same server process, a one-second
warm-up and a wrk run on the small file (requests/s) and the same on the large one
(MiB/s, from wrk's Transfer/sec). Next to each: the server's CPU per request (small)
and per GiB sent (large), which stay meaningful when wrk, not the server, is the limit.
For the large file the ratio netshell / nginx has a goal of >= 0.9x; for the small
one >= 3x twisted.web and >= 0.5x nginx.

Clients. One fast server (uvicorn-httptools, else netshell-uvloop) on CPU 0;
each client in its own process on CPU 1, on asyncio's default loop (and
netshell's client on uvloop too): after a warm-up, N sequential GETs over one
kept-alive connection, then M GETs with 50 in flight (50 tasks over a pool of
50 connections). Every response's status and body is checked. The clients are
netshell's ``http.HTTPClient(max_connections=50)``, ``httpx.AsyncClient`` (50
connections, all kept alive) and ``aiohttp.ClientSession`` (``limit=50``).

Usage::

    python scripts/bench/http.py                   # the full run (about 2 min 20 s)
    python scripts/bench/http.py --quick           # seconds: a smoke test
    python scripts/bench/http.py --json out.json
    python scripts/bench/http.py --only netshell,aiohttp,client-netshell
    python scripts/bench/http.py --only servers --profile DIR   # cProfile each server
    # a change side by side with the tree before it, and an observer's cost:
    python scripts/bench/http.py --only netshell,netshell-baseline,netshell-observed \
        --baseline ../before
    # static files only, and the same from the tree before a change:
    python scripts/bench/http.py --only static,static-netshell-baseline --baseline ../before

It prints the ratios the issue names, with their goals: netshell/twisted.web
(>= 3x), netshell/aiohttp (>= 1x), netshell-uvloop/uvicorn-httptools
(>= 0.7x), the static ratios above, and the client ratios (no goal). Without wrk
the server part is skipped (said so, and recorded in the JSON); a missing peer
library or program (nginx) leaves its cases out. It is a measurement: it exits 0
whatever the ratios, and 1 only if a server or client answered wrongly or failed.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# This file is named http.py, and a script's folder comes first on sys.path: for this
# script, and for its siblings (echo.py, tls.py, ...), whose ``import http`` (urllib,
# Twisted, aiohttp and httpx all do one) would find this file. So: run as a script, it takes
# its folder off sys.path (and runs its children in ROOT); imported as ``http``, it hands
# the importer the standard library's package (the import system returns whatever
# sys.modules holds under the name once this file has run).
_PATH = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
if __name__ == "http":
    import importlib.machinery
    import importlib.util

    _spec = importlib.machinery.PathFinder.find_spec("http", _PATH)
    assert _spec is not None and _spec.loader is not None
    _stdlib = importlib.util.module_from_spec(_spec)
    sys.modules["http"] = _stdlib
    _spec.loader.exec_module(_stdlib)
else:
    import common  # (scripts/bench/common.py: imported before its folder leaves sys.path)

    sys.path[:] = _PATH

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from http.client import HTTPConnection  # noqa: E402
from typing import Any  # noqa: E402

import common  # noqa: E402
from common import (  # noqa: E402
    PROFILE_ENV,
    Failed,
    add_allocator_option,
    add_baseline_option,
    add_profile_option,
    allocator,
    finish,
    have,
    machine,
    not_installed,
    pin_load,
    python_env,
    ratio_line,
    read_line,
    stop_process,
    use_baseline,
)

BODY = b"Hello, World!"
CONNECTIONS = 50  # wrk -c, and the client's requests in flight

# Run first in every server: pin it, and say when it is ready (the port and the
# loop it runs on, on the first line of stdout). With a profile path, serving()
# starts cProfile and SIGUSR2 writes it out.
SERVER_PRELUDE = """
import os, signal, socket, sys
os.sched_setaffinity(0, {int(os.environ["BENCH_HTTP_CPU"])})
BODY = b"Hello, World!"
def ready(port, loop):
    if isinstance(loop, str):
        print(port, loop, flush=True)
        return
    name = type(loop).__module__.split(".")[0]
    print(port, name if name in ("asyncio", "uvloop") else type(loop).__name__, flush=True)
def listening_socket():
    # proto IPPROTO_TCP, as loop.create_server makes it: asyncio sets TCP_NODELAY only
    # on sockets that say so (with proto 0, h11 answers wait out the delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock
def serving():
    path = os.environ.get("BENCH_HTTP_PROFILE_PATH")
    if not path:
        return
    import cProfile
    profile = cProfile.Profile()
    def dump(*_):
        profile.disable()
        profile.dump_stats(path.replace("{pid}", str(os.getpid())))
        os._exit(0)
    signal.signal(signal.SIGUSR2, dump)
    profile.enable()
"""

SERVERS = {
    # netshell with an observer (netshell.observe) of every event, connections, bytes,
    # timers and Deferreds, that only counts them: what watching costs, next to "netshell".
    "netshell-observed": """
        from netshell import observe, reactor
        from protocols import http
        class Counting:
            events = 0
            def _count(self, *args):
                self.events += 1
            connection_made = connection_lost = data_in = data_out = _count
            timed_call_run = deferred_step_added = deferred_step_ran = _count
            deferred_fired = deferred_settled = _count
        observe.add_observer(Counting())
        app = http.App()
        @app.route("/")
        def hello(request):
            return "Hello, World!"
        listener = http.serve(app, backlog=4096)
        ready(listener.port, reactor.loop)
        serving()
        reactor.run()
    """,
    "netshell": """
        from netshell import reactor
        from protocols import http
        app = http.App()
        @app.route("/")
        def hello(request):
            return "Hello, World!"
        listener = http.serve(app, backlog=4096)
        ready(listener.port, reactor.loop)
        serving()
        reactor.run()
    """,
    "twisted": """
        from twisted.internet import epollreactor
        epollreactor.install()
        from twisted.internet import reactor
        from twisted.web import resource, server
        class Hello(resource.Resource):
            isLeaf = True
            def render_GET(self, request):
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                return BODY
        class QuietSite(server.Site):
            def log(self, request):
                pass
        port = reactor.listenTCP(0, QuietSite(Hello()), backlog=4096, interface="127.0.0.1")
        ready(port.getHost().port, reactor)
        serving()
        reactor.run()
    """,
    "aiohttp": """
        import asyncio
        from aiohttp import web
        async def hello(request):
            return web.Response(text="Hello, World!")
        sock = listening_socket()
        async def started(app):
            ready(sock.getsockname()[1], asyncio.get_running_loop())
            serving()
        app = web.Application()
        app.router.add_get("/", hello)
        app.on_startup.append(started)
        web.run_app(app, sock=sock, access_log=None, print=None, backlog=4096)
    """,
    "uvicorn": """
        import asyncio
        import uvicorn
        IMPL = os.environ["BENCH_HTTP_UVICORN"]
        HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]
        sock = listening_socket()
        async def app(scope, receive, send):
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                await send({"type": "http.response.body", "body": BODY})
            elif scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        ready(sock.getsockname()[1], asyncio.get_running_loop())
                        serving()
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
        config = uvicorn.Config(
            app,
            http=IMPL,
            loop="asyncio" if IMPL == "h11" else "uvloop",
            lifespan="on",
            access_log=False,
            log_level="warning",
            backlog=4096,
        )
        uvicorn.Server(config).run(sockets=[sock])
    """,
    # Static files: the directory BENCH_HTTP_WWW (small.txt, large.bin), no access log.
    "static-netshell": """
        from netshell import reactor
        from protocols import http
        listener = http.serve(os.environ["BENCH_HTTP_WWW"], backlog=4096)
        ready(listener.port, reactor.loop)
        serving()
        reactor.run()
    """,
    "static-twisted": """
        from twisted.internet import epollreactor
        epollreactor.install()
        from twisted.internet import reactor
        from twisted.web import server, static
        class QuietSite(server.Site):
            def log(self, request):
                pass
        site = QuietSite(static.File(os.environ["BENCH_HTTP_WWW"]))
        port = reactor.listenTCP(0, site, backlog=4096, interface="127.0.0.1")
        ready(port.getHost().port, reactor)
        serving()
        reactor.run()
    """,
    # nginx: one worker (under its master process), sendfile on, access_log off, its own
    # defaults otherwise (keepalive_requests 1000, as netshell's max_requests). This
    # process picks a free port, writes the configuration and becomes nginx (exec: the
    # same pid, pinned to the same CPU); the benchmark waits for the port to answer.
    "static-nginx": """
        work = os.environ["BENCH_HTTP_NGINX_DIR"]
        www = os.environ["BENCH_HTTP_WWW"]
        sock = listening_socket()
        port = sock.getsockname()[1]
        sock.close()
        temps = "".join(
            f"    {kind}_temp_path {work}/{kind}_temp;\\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(
                "daemon off;\\nmaster_process on;\\nworker_processes 1;\\n"
                + ("user root;\\n" if os.geteuid() == 0 else "")
                + f"pid {work}/nginx.pid;\\nerror_log {work}/error.log;\\n"
                "events { worker_connections 4096; }\\n"
                "http {\\n" + temps
                + "    access_log off;\\n    sendfile on;\\n"
                "    types { text/plain txt; application/octet-stream bin; }\\n"
                "    default_type application/octet-stream;\\n"
                f"    server {{ listen 127.0.0.1:{port} backlog=4096; root {www}; }}\\n"
                "}\\n"
            )
        ready(port, "nginx")
        nginx = os.environ["BENCH_HTTP_NGINX"]
        os.execv(nginx, [nginx, "-e", f"{work}/error.log", "-c", f"{work}/nginx.conf", "-p", work])
    """,
}


class ServerCase(common.ServerCase):
    """One server configuration: the program it runs, its environment, what it needs.

    ``static``: it serves the benchmark's directory of files (measured on a small and a
    large file) rather than answering ``GET /``; ``programs``: executables it needs.
    """

    def __init__(
        self,
        name: str,
        label: str,
        program: str,
        env: dict[str, str],
        needs: list[str],
        *,
        static: bool = False,
        programs: tuple[str, ...] = (),
    ) -> None:
        super().__init__(name, label, program, needs, env)
        self.static = static
        self.programs = programs


SERVER_CASES = [
    ServerCase("netshell", "netshell", "netshell", {}, []),
    ServerCase(
        "netshell-uvloop", "netshell (uvloop)", "netshell", {"NETSHELL_LOOP": "uvloop"}, ["uvloop"]
    ),
    ServerCase("twisted", "twisted.web", "twisted", {}, ["twisted"]),
    ServerCase("aiohttp", "aiohttp", "aiohttp", {}, ["aiohttp"]),
    ServerCase(
        "uvicorn-h11", "uvicorn h11", "uvicorn", {"BENCH_HTTP_UVICORN": "h11"}, ["uvicorn", "h11"]
    ),
    ServerCase(
        "uvicorn-httptools",
        "uvicorn httptools",
        "uvicorn",
        {"BENCH_HTTP_UVICORN": "httptools"},
        ["uvicorn", "httptools", "uvloop"],
    ),
    # Run only when named in --only (OPTIONAL_SERVERS): a change measured side by side
    # with the tree before it (--baseline DIR), and the cost of an observer.
    ServerCase("netshell-baseline", "netshell baseline", "netshell", {}, []),
    ServerCase("netshell-observed", "netshell observed", "netshell-observed", {}, []),
    # Static files: a small file (requests/s) and a large one (MiB/s, sendfile where the
    # server has it), each from the same server process.
    ServerCase("static-netshell", "netshell", "static-netshell", {}, [], static=True),
    ServerCase(
        "static-twisted", "twisted.web File", "static-twisted", {}, ["twisted"], static=True
    ),
    ServerCase("static-nginx", "nginx (1 worker)", "static-nginx", {}, [], static=True,
               programs=("nginx",)),
    ServerCase(
        "static-netshell-baseline", "netshell baseline", "static-netshell", {}, [], static=True
    ),
]
OPTIONAL_SERVERS = {"netshell-baseline", "netshell-observed", "static-netshell-baseline"}
BASELINE_SERVERS = {"netshell-baseline", "static-netshell-baseline"}

# (label, numerator, denominator, goal or None)
SERVER_GOALS: list[tuple[str, str, str, float | None]] = [
    ("netshell / twisted.web", "netshell", "twisted", 3.0),
    ("netshell / aiohttp", "netshell", "aiohttp", 1.0),
    ("netshell (uvloop) / uvicorn httptools", "netshell-uvloop", "uvicorn-httptools", 0.7),
    ("netshell / uvicorn h11", "netshell", "uvicorn-h11", None),
    ("netshell (uvloop) / netshell", "netshell-uvloop", "netshell", None),
    ("netshell / netshell baseline", "netshell", "netshell-baseline", None),
    ("netshell observed / netshell", "netshell-observed", "netshell", None),
]

# Static files: (label, numerator, denominator, measure, goal or None)
STATIC_GOALS: list[tuple[str, str, str, str, float | None]] = [
    ("static small: netshell / twisted.web", "static-netshell", "static-twisted",
     "requests_per_s", 3.0),
    ("static small: netshell / nginx", "static-netshell", "static-nginx", "requests_per_s", 0.5),
    ("static large: netshell / nginx", "static-netshell", "static-nginx", "large_mib_per_s",
     0.9),
    ("static large: netshell / twisted.web", "static-netshell", "static-twisted",
     "large_mib_per_s", None),
    ("static small: netshell / netshell baseline", "static-netshell",
     "static-netshell-baseline", "requests_per_s", None),
    ("static large: netshell / netshell baseline", "static-netshell",
     "static-netshell-baseline", "large_mib_per_s", None),
    ("static small: netshell / netshell app route", "static-netshell", "netshell",
     "requests_per_s", None),
    # server CPU per request (lower is better): robust when wrk, not the server, is the limit
    ("static small CPU/req: netshell / nginx", "static-netshell", "static-nginx",
     "server_cpu_us_per_request", None),
    ("static small CPU/req: netshell / twisted.web", "static-netshell", "static-twisted",
     "server_cpu_us_per_request", None),
    ("static small CPU/req: netshell / app route", "static-netshell", "netshell",
     "server_cpu_us_per_request", None),
    ("static large CPU/GiB: netshell / nginx", "static-netshell", "static-nginx",
     "large_server_cpu_s_per_gib", None),
]
# the measures of one wrk run on the small file (or GET /), and of one on the large file
SMALL_KEYS = ("requests_per_s", "requests", "server_cpu_percent", "server_cpu_us_per_request")
LARGE_KEYS = ("large_mib_per_s", "large_requests", "large_server_cpu_percent",
              "large_server_cpu_s_per_gib")
STATIC_SMALL = "small.txt"  # BODY, as the app servers answer it
STATIC_LARGE = "large.bin"

# Run first in every client: pin it; drive(fetch) does the warm-up, the sequential
# and the concurrent runs, checking every answer, and returns what it measured.
CLIENT_PRELUDE = """
import asyncio, json, os, sys, time
os.sched_setaffinity(0, {int(os.environ["BENCH_HTTP_CPU"])})
URL = os.environ["BENCH_HTTP_URL"]
BODY = b"Hello, World!"
WARMUP, SEQUENTIAL, CONCURRENT, IN_FLIGHT = (
    int(os.environ[k]) for k in ("BENCH_HTTP_WARMUP", "BENCH_HTTP_SEQ", "BENCH_HTTP_CONC",
                                 "BENCH_HTTP_IN_FLIGHT")
)
async def drive(fetch):
    checked = 0
    async def one():
        nonlocal checked
        status, body = await fetch()
        if status != 200 or body != BODY:
            raise SystemExit(f"wrong answer: {status} {bytes(body)[:80]!r}")
        checked += 1
    for _ in range(WARMUP):
        await one()
    start = time.perf_counter()
    for _ in range(SEQUENTIAL):
        await one()
    sequential = SEQUENTIAL / (time.perf_counter() - start)
    async def worker(count):
        for _ in range(count):
            await one()
    each, extra = divmod(CONCURRENT, IN_FLIGHT)
    start = time.perf_counter()
    await asyncio.gather(*(worker(each + (i < extra)) for i in range(IN_FLIGHT)))
    concurrent = CONCURRENT / (time.perf_counter() - start)
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    return {"sequential_per_s": sequential, "concurrent_per_s": concurrent,
            "checked": checked, "loop": loop}
def done(result):
    print(json.dumps(result), flush=True)
"""

CLIENTS = {
    "netshell": """
        from netshell import reactor
        from protocols import http
        async def main():
            client = http.HTTPClient(max_connections=IN_FLIGHT)
            async def fetch():
                response = await client.get(URL)
                return response.status, response.body
            try:
                return await drive(fetch)
            finally:
                client.close()
        done(reactor.run_until(main()))
    """,
    "httpx": """
        import httpx
        async def main():
            limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
            async with httpx.AsyncClient(limits=limits) as client:
                async def fetch():
                    response = await client.get(URL)
                    return response.status_code, response.content
                return await drive(fetch)
        done(asyncio.run(main()))
    """,
    "aiohttp": """
        import aiohttp
        async def main():
            connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
            async with aiohttp.ClientSession(connector=connector) as session:
                async def fetch():
                    async with session.get(URL) as response:
                        return response.status, await response.read()
                return await drive(fetch)
        done(asyncio.run(main()))
    """,
}


class ClientCase:
    def __init__(
        self, name: str, label: str, program: str, env: dict[str, str], needs: list[str]
    ) -> None:
        self.name = name
        self.label = label
        self.program = program
        self.env = env
        self.needs = needs


CLIENT_CASES = [
    ClientCase("client-netshell", "netshell HTTPClient", "netshell", {}, []),
    ClientCase(
        "client-netshell-uvloop",
        "netshell HTTPClient (uvloop)",
        "netshell",
        {"NETSHELL_LOOP": "uvloop"},
        ["uvloop"],
    ),
    ClientCase("client-httpx", "httpx.AsyncClient", "httpx", {}, ["httpx"]),
    ClientCase("client-aiohttp", "aiohttp.ClientSession", "aiohttp", {}, ["aiohttp"]),
]

CLIENT_RATIOS = [
    ("client netshell / httpx", "client-netshell", "client-httpx"),
    ("client netshell / aiohttp", "client-netshell", "client-aiohttp"),
]


def find_program(name: str) -> str | None:
    """An executable on PATH, or in the sbin directories (nginx lives in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path)


def base_env(cpu: int, extra: dict[str, str]) -> dict[str, str]:
    return python_env({"BENCH_HTTP_CPU": str(cpu), **extra}, drop=("NETSHELL_LOOP", PROFILE_ENV))


# ---- servers


class Server:
    """One server process on its CPU, ready when constructed; stop() kills it (after asking
    it, with SIGUSR2, to write its profile when profiling)."""

    def __init__(
        self,
        case: ServerCase,
        cpu: int,
        env: dict[str, str],
        profile: str | None,
        www: str | None = None,
    ) -> None:
        self.case = case
        full = base_env(cpu, {**env, **case.env})
        self.profiling = bool(profile) and case.program != "static-nginx"
        self.work: str | None = None
        if www is not None:
            full["BENCH_HTTP_WWW"] = www
        if case.program == "static-nginx":
            self.work = tempfile.mkdtemp(prefix="bench-nginx-")
            os.chmod(self.work, 0o755)
            full["BENCH_HTTP_NGINX_DIR"] = self.work
            full["BENCH_HTTP_NGINX"] = find_program("nginx") or "nginx"
        if self.profiling:
            assert profile is not None
            os.makedirs(profile, exist_ok=True)
            full["BENCH_HTTP_PROFILE_PATH"] = os.path.join(profile, f"{case.name}-{{pid}}.prof")
        code = textwrap.dedent(SERVER_PRELUDE) + textwrap.dedent(SERVERS[case.program])
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=full,
            cwd=case.cwd,
            text=True,
        )
        line = read_line(self.proc, 30).split()
        if len(line) != 2:
            said = self.said()
            self.stop()
            raise Failed(f"the {case.label} server did not start:\n{said}")
        self.port = int(line[0])
        self.loop = line[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        # nginx says its port before it listens (it is exec'd after): wait for it.
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    said = self.said()
                    self.stop()
                    raise Failed(f"the {case.label} server did not listen:\n{said}") from None
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its children so far (from
        /proc): nginx serves from a worker process under its master."""
        total = 0
        pids = [self.proc.pid]
        while pids:
            pid = pids.pop()
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        pids.extend(int(child) for child in f.read().split())
            except (FileNotFoundError, ProcessLookupError):
                continue  # a child that ended meanwhile
        return total / os.sysconf("SC_CLK_TCK")

    def said(self) -> str:
        self.stderr.seek(0)
        said = self.stderr.read()
        if self.work is not None and os.path.exists(os.path.join(self.work, "error.log")):
            with open(os.path.join(self.work, "error.log")) as f:
                said += f.read()
        return said

    def children(self) -> list[int]:
        pids = []
        try:
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                    pids.extend(int(child) for child in f.read().split())
        except FileNotFoundError:
            pass
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None and self.case.program == "static-nginx":
            # Its master ends its worker on SIGTERM; killed, it would leave the worker behind.
            workers = self.children()
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            for pid in workers:  # should the master not have ended them: by their pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        stop_process(self.proc, self.profiling)
        self.stderr.close()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def verify(server: Server) -> None:
    """One GET with urllib (status, type, body), two over one kept-alive connection."""
    label = server.case.label
    with urllib.request.urlopen(server.url, timeout=10) as response:
        status, body = response.status, response.read()
        ctype = response.headers.get("Content-Type", "")
    if status != 200 or body != BODY or not ctype.startswith("text/plain"):
        raise Failed(f"{label} answered {status} {ctype!r} {body[:80]!r}")
    check_kept_alive(server, "/")


def check_kept_alive(server: Server, path: str) -> None:
    """Two GETs of ``path`` (answered with BODY) over one connection: it must stay alive."""
    label = server.case.label
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        socks = []
        for _ in range(2):
            conn.request("GET", path)
            response = conn.getresponse()
            if response.status != 200 or response.read() != BODY:
                raise Failed(f"{label} answered {response.status} on a kept-alive connection")
            socks.append(conn.sock)
        if socks[0] is None or socks[0] is not socks[1]:
            raise Failed(f"{label} did not keep the connection alive")
    finally:
        conn.close()


def verify_static(server: Server, large: bytes) -> None:
    """Both files whole with urllib (status, type, body), and two GETs of the small one
    over one kept-alive connection."""
    label = server.case.label
    for name, expected, ctype_wanted in (
        (STATIC_SMALL, BODY, "text/plain"),
        (STATIC_LARGE, large, "application/octet-stream"),
    ):
        with urllib.request.urlopen(server.url + name, timeout=30) as response:
            status, body = response.status, response.read()
            ctype = response.headers.get("Content-Type", "")
        if status != 200 or body != expected or not ctype.startswith(ctype_wanted):
            raise Failed(f"{label} answered {status} {ctype!r} {len(body)} bytes for {name}")
    check_kept_alive(server, "/" + STATIC_SMALL)


WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
# wrk's units are binary: KB is 1024 bytes, MB 1024 KB
WRK_TRANSFER = re.compile(r"^Transfer/sec:\s+([\d.]+)([KMGT]?B)", re.M)
WRK_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
WRK_COUNT = re.compile(r"^\s*(\d+) requests in ", re.M)
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk_command(wrk: str, url: str, seconds: int, cpu: int) -> list[str]:
    cmd = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", url]
    taskset = shutil.which("taskset")
    # Without taskset wrk still runs on our CPU: it inherits this process's affinity.
    return [taskset, "-c", str(cpu), *cmd] if taskset else cmd


def run_wrk(wrk: str, server: Server, seconds: int, cpu: int, path: str = "") -> dict[str, Any]:
    cmd = wrk_command(wrk, server.url + path, seconds, cpu)
    cpu_before, wall_before = server.cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    cpu_used, wall = server.cpu_seconds() - cpu_before, time.perf_counter() - wall_before
    out = proc.stdout
    rate, count = WRK_RATE.search(out), WRK_COUNT.search(out)
    if proc.returncode != 0 or rate is None or count is None:
        raise Failed(
            f"wrk failed on {server.case.label} (exit {proc.returncode}):\n{out}{proc.stderr}"
        )
    socket_errors = WRK_SOCKET.search(out)
    non2xx = WRK_NON2XX.search(out)
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    bad = int(non2xx.group(1)) if non2xx else 0
    if errors or bad or int(count.group(1)) == 0:
        raise Failed(
            f"{server.case.label} erred under load: {bad} non-2xx answers, "
            f"socket errors {socket_errors.groups() if socket_errors else ()}:\n{out}"
        )
    transfer = WRK_TRANSFER.search(out)
    return {
        "requests_per_s": float(rate.group(1)),
        "requests": int(count.group(1)),
        "server_cpu_percent": 100 * cpu_used / wall,
        "server_cpu_us_per_request": 1e6 * cpu_used / int(count.group(1)),
        "mib_per_s": float(transfer.group(1)) * WRK_UNITS[transfer.group(2)] / (1 << 20)
        if transfer
        else 0.0,
    }


def measure_server(
    case: ServerCase, args: argparse.Namespace, wrk: str, env: dict[str, str]
) -> dict[str, Any]:
    server = Server(case, args.server_cpu, env, args.profile, args.www if case.static else None)
    try:
        if case.static:
            verify_static(server, args.large)
            if not args.quick:
                run_wrk(wrk, server, 1, args.client_cpu, STATIC_SMALL)  # warm-up
            result = run_wrk(wrk, server, args.seconds, args.client_cpu, STATIC_SMALL)
            if not args.quick:
                run_wrk(wrk, server, 1, args.client_cpu, STATIC_LARGE)  # warm-up
            large = run_wrk(wrk, server, args.seconds, args.client_cpu, STATIC_LARGE)
            gib = large["mib_per_s"] * args.seconds / 1024  # about what went out
            result.update(
                large_mib_per_s=large["mib_per_s"],
                large_requests=large["requests"],
                large_server_cpu_percent=large["server_cpu_percent"],
                large_server_cpu_s_per_gib=large["server_cpu_percent"] / 100 * args.seconds / gib
                if gib
                else 0.0,
            )
        else:
            verify(server)
            if not args.quick:
                run_wrk(wrk, server, 1, args.client_cpu)  # warm-up, not counted
            result = run_wrk(wrk, server, args.seconds, args.client_cpu)
        del result["mib_per_s"]
        if server.proc.poll() is not None:
            raise Failed(f"{case.label} died:\n{server.said()}")
    except Failed:
        raise
    except Exception as e:
        raise Failed(f"{case.label}: {type(e).__name__}: {e}\n{server.said()}") from e
    finally:
        server.stop()
    return {"label": case.label, "loop": server.loop, "verified": True, **result}


# ---- clients


def measure_client(case: ClientCase, url: str, args: argparse.Namespace) -> dict[str, Any]:
    env = base_env(
        args.client_cpu,
        {
            **case.env,
            "BENCH_HTTP_URL": url,
            "BENCH_HTTP_WARMUP": str(args.warmup),
            "BENCH_HTTP_SEQ": str(args.sequential),
            "BENCH_HTTP_CONC": str(args.concurrent),
            "BENCH_HTTP_IN_FLIGHT": str(CONNECTIONS),
        },
    )
    code = textwrap.dedent(CLIENT_PRELUDE) + textwrap.dedent(CLIENTS[case.program])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise Failed(f"the {case.label} client failed (exit {proc.returncode}):\n{proc.stderr}")
    result = json.loads(lines[-1])
    expected = args.warmup + args.sequential + args.concurrent
    if result["checked"] != expected:
        raise Failed(f"{case.label}: {result['checked']} answers checked, not {expected}")
    return {"label": case.label, "verified": True, **result}


# ---- the report


def report_servers(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    apps = {name: res for name, res in results.items() if "large_mib_per_s" not in res}
    static = {name: res for name, res in results.items() if "large_mib_per_s" in res}
    ratios = {}
    if apps:
        print(f"\n{'server':20} {'loop':14} {'requests/s':>11} {'server CPU':>11}")
        for res in apps.values():
            print(
                f"{res['label']:20} {res['loop']:14} {res['requests_per_s']:11,.0f} "
                f"{res['server_cpu_percent']:10.0f}%"
            )
        for label, a, b, goal in SERVER_GOALS:
            if a in apps and b in apps:
                value = apps[a]["requests_per_s"] / apps[b]["requests_per_s"]
                print(ratio_line(label, value, goal))
                ratios[label] = value
    if static:
        print(
            f"\n{'static files':18} {'loop':13} {f'{STATIC_SMALL}/s':>12} {'CPU':>5} "
            f"{'CPU µs/req':>10} {f'{STATIC_LARGE} MiB/s':>16} {'CPU':>5} {'CPU s/GiB':>9}"
        )
        for res in static.values():
            print(
                f"{res['label']:18} {res['loop']:13} {res['requests_per_s']:12,.0f} "
                f"{res['server_cpu_percent']:4.0f}% {res['server_cpu_us_per_request']:10.1f} "
                f"{res['large_mib_per_s']:16,.0f} {res['large_server_cpu_percent']:4.0f}% "
                f"{res['large_server_cpu_s_per_gib']:9.3f}"
            )
        for label, a, b, measure, goal in STATIC_GOALS:
            if a in static and b in results and measure in results[b]:
                value = static[a][measure] / results[b][measure]
                print(ratio_line(label, value, goal))
                ratios[label] = value
    return ratios


def report_clients(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    print(f"\n{'client':30} {'loop':8} {'sequential/s':>13} {f'{CONNECTIONS} in flight/s':>15}")
    for res in results.values():
        print(
            f"{res['label']:30} {res['loop']:8} {res['sequential_per_s']:13,.0f} "
            f"{res['concurrent_per_s']:15,.0f}"
        )
    ratios = {}
    for label, a, b in CLIENT_RATIOS:
        if a in results and b in results:
            for key, what in (
                ("sequential_per_s", "sequential"),
                ("concurrent_per_s", "in flight"),
            ):
                value = results[a][key] / results[b][key]
                print(ratio_line(f"{label} ({what})", value, None))
                ratios[f"{label} ({what})"] = value
    return ratios


def select(names: str | None) -> tuple[list[ServerCase], list[ClientCase]]:
    servers, clients = list(SERVER_CASES), list(CLIENT_CASES)
    if names is None:
        return [c for c in servers if c.name not in OPTIONAL_SERVERS], clients
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    known = {c.name for c in servers} | {c.name for c in clients} | {
        "servers", "clients", "static"}
    unknown = wanted - known
    if unknown:
        raise SystemExit(
            f"--only: unknown {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    servers = [
        c for c in servers
        if c.name in wanted
        or (c.name not in OPTIONAL_SERVERS and ("static" if c.static else "servers") in wanted)
    ]
    clients = [c for c in clients if "clients" in wanted or c.name in wanted]
    return servers, clients


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--seconds", type=int, help="wrk run per server (default 5, quick 1)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best kept")
    parser.add_argument(
        "--requests",
        type=int,
        help="client: sequential requests (default 5000, quick 50; 4x that with 50 in flight)",
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated cases: "
        + ", ".join(c.name for c in [*SERVER_CASES, *CLIENT_CASES])
        + ", or servers / static / clients",
    )
    add_allocator_option(parser)
    add_profile_option(parser)
    add_baseline_option(
        parser, "the servers netshell-baseline and static-netshell-baseline (name them in --only)"
    )
    parser.add_argument(
        "--large-mib",
        type=int,
        help="size of the large static file in MiB (default 10, quick 1)",
    )
    args = parser.parse_args()
    if args.large_mib is None:
        args.large_mib = 1 if args.quick else 10
    if args.seconds is None:
        args.seconds = 1 if args.quick else 5
    if args.requests is None:
        args.requests = 50 if args.quick else 5000
    args.sequential = args.requests
    args.concurrent = 4 * args.requests
    args.warmup = 20 if args.quick else 500
    rounds = 1 if args.quick else max(1, args.rounds)
    server_cases, client_cases = select(args.only)
    use_baseline(server_cases, args.baseline, parser, "protocols.http",
                 servers=BASELINE_SERVERS, need="the baseline servers need", own="netshell")

    args.server_cpu, args.client_cpu = pin_load()

    skipped: dict[str, str] = {}
    for case in [*server_cases, *client_cases]:
        why = not_installed(case.needs, "bench")
        if why:
            skipped[case.name] = why
        absent = [p for p in getattr(case, "programs", ()) if find_program(p) is None]
        if absent:
            skipped[case.name] = f"not installed: {', '.join(absent)} (apt-get install nginx-light)"
    server_cases = [c for c in server_cases if c.name not in skipped]
    client_cases = [c for c in client_cases if c.name not in skipped]
    wrk = shutil.which("wrk")
    if wrk is None and server_cases:
        for case in server_cases:
            skipped[case.name] = "wrk is not installed (apt-get install wrk)"
        server_cases = []

    www = None
    if any(c.static for c in server_cases):
        # The static servers' directory: 0755, so that nginx's worker may read it too.
        www = tempfile.TemporaryDirectory(prefix="bench-www-")
        os.chmod(www.name, 0o755)
        args.large = os.urandom(args.large_mib << 20)
        for name, data in ((STATIC_SMALL, BODY), (STATIC_LARGE, args.large)):
            with open(os.path.join(www.name, name), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(www.name, name), 0o644)
    args.www = www.name if www is not None else None
    try:
        return run(args, server_cases, client_cases, skipped, wrk, rounds)
    finally:
        if www is not None:
            www.cleanup()


def run(
    args: argparse.Namespace,
    server_cases: list[ServerCase],
    client_cases: list[ClientCase],
    skipped: dict[str, str],
    wrk: str | None,
    rounds: int,
) -> int:
    allocator_title, allocator_env = allocator(args.allocator)
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores; servers on CPU "
        f"{args.server_cpu}, load (wrk, clients) on CPU {args.client_cpu}; "
        f"{rounds} round(s), best kept\n"
        f"servers: wrk -t1 -c{CONNECTIONS} -d{args.seconds}s, {allocator_title}\n"
        f"clients: {args.sequential} sequential, {args.concurrent} with {CONNECTIONS} in flight"
    )
    for name, why in skipped.items():
        print(f"left out {name}: {why}")
    if args.profile:
        print(f"profiling the servers into {args.profile}: these numbers are not comparable")

    out: dict[str, Any] = {
        **machine(args),
        "wrk": " ".join(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{args.seconds}s"]),
        "seconds": args.seconds,
        "rounds": rounds,
        "allocator": allocator_title,
        "warmup": args.warmup,
        "sequential": args.sequential,
        "concurrent": args.concurrent,
        "in_flight": CONNECTIONS,
        "static_files": {STATIC_SMALL: len(BODY), STATIC_LARGE: args.large_mib << 20},
        "skipped": skipped,
        "failed": {},
        "servers": {},
        "server_ratios": {},
        "client_server": None,
        "clients": {},
        "client_ratios": {},
    }
    failed: dict[str, str] = out["failed"]

    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for case in server_cases:
            if case.name in failed:
                continue
            assert wrk is not None
            print(f"  {'static: ' if case.static else ''}{case.label} ...", end="", flush=True)
            try:
                res = measure_server(case, args, wrk, allocator_env)
            except Failed as e:
                print(" FAILED")
                failed[case.name] = str(e)
                best.pop(case.name, None)
                continue
            if case.static:
                print(f" {res['requests_per_s']:,.0f}/s, {res['large_mib_per_s']:,.0f} MiB/s")
            else:
                print(f" {res['requests_per_s']:,.0f}/s")
            # The best of the rounds; a static server's small and large file each their own.
            prev = best.setdefault(case.name, res)
            if res["requests_per_s"] > prev["requests_per_s"]:
                for key in SMALL_KEYS:
                    prev[key] = res[key]
            if case.static and res["large_mib_per_s"] > prev["large_mib_per_s"]:
                for key in LARGE_KEYS:
                    prev[key] = res[key]
    if best:
        out["servers"] = {c.name: best[c.name] for c in server_cases if c.name in best}
        out["server_ratios"] = report_servers(out["servers"])

    if client_cases:
        out["clients"], out["client_ratios"] = run_clients(
            client_cases, args, rounds, allocator_env, failed, out
        )

    return finish(out, failed, args.json)


def run_clients(
    cases: list[ClientCase],
    args: argparse.Namespace,
    rounds: int,
    allocator_env: dict[str, str],
    failed: dict[str, str],
    out: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, float]]:
    by_name = {c.name: c for c in SERVER_CASES}
    target = by_name["uvicorn-httptools"]
    if not all(have(m) for m in target.needs):
        target = by_name["netshell-uvloop"] if have("uvloop") else by_name["netshell"]
    best: dict[str, dict[str, Any]] = {}
    server: Server | None = None
    try:
        server = Server(target, args.server_cpu, allocator_env, None)
        out["client_server"] = f"{target.name} ({server.loop})"
        print(f"\nclients against {target.label} on {server.loop}:")
        verify(server)
        for _ in range(rounds):
            for case in cases:
                if case.name in failed:
                    continue
                print(f"  {case.label} ...", end="", flush=True)
                try:
                    res = measure_client(case, server.url, args)
                except Failed as e:
                    print(" FAILED")
                    failed[case.name] = str(e)
                    best.pop(case.name, None)
                    continue
                print(f" {res['sequential_per_s']:,.0f}/s, {res['concurrent_per_s']:,.0f}/s")
                prev = best.setdefault(case.name, res)
                for key in ("sequential_per_s", "concurrent_per_s"):
                    prev[key] = max(prev[key], res[key])
    except Failed as e:
        failed[target.name + " (client target)"] = str(e)
    finally:
        if server is not None:
            server.stop()
    results = {c.name: best[c.name] for c in cases if c.name in best}
    return results, report_clients(results) if results else {}


if __name__ == "__main__":
    sys.exit(main())
