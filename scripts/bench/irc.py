"""IRC benchmark: netshell's IRC server against ngIRCd (C) and Twisted's, side by side.

Servers. Each runs in its own process, pinned to CPU 0, on 127.0.0.1, with no log line
per command, and accepts the flood of this bench (nothing throttled, penalised or
limited per address):

- netshell: ``irc.serve(port=0, interface="127.0.0.1", name="irc.test", motd="test",
  flood_burst=0, backlog=4096, max_connections_per_ip=0)`` (each keyword only when
  ``serve`` takes it; flood control and the per-address limit off, as ngIRCd's are) on
  asyncio's default loop; its row says "not available" when ``protocols.irc`` has no
  working ``serve`` yet (ImportError, AttributeError or NotImplementedError);
- ngircd: Debian's ``/usr/sbin/ngircd --nodaemon`` with a temp configuration (as
  shared/PEERS.md shows: the directory 0755, ``run/`` owned by ``nobody``). ``[Global]
  Password = p``: with no ``Password`` it refuses any PASS ("ERROR :Access denied: Bad
  password?"). ``[Limits] MaxPenaltyTime = 0``: no penalty (without it ngIRCd delays each
  client's commands by penalty seconds; the quick run did 30 registrations/s and 160
  deliveries/s). ``MaxConnectionsIP = 0`` (5 from one address by default),
  ``MaxConnections = 0``, ``MaxJoins = 0``, ``MaxNickLength = 30``, ``PingTimeout = 600``;
  DNS, ident and PAM off. Its log (a few lines per connection) goes to a file. Its listen
  backlog is 10, hard-coded: see the registration measure below;
- twisted: ``twisted.words.service.IRCFactory(realm, Portal(realm, [checker]))`` with
  ``InMemoryWordsRealm("irc.test")``, ``createGroupOnRequest = True``, on the epoll
  reactor. Its ``IRCUser`` logs in at NICK, with the password of the PASS before it (with
  no PASS it asks NickServ for one and sends no 001), the nick as the user name: the checker,
  an ``InMemoryUsernamePasswordDatabaseDontUse``, holds every nick this bench uses, added as
  str (bytes fail), each with the password ``p``. It sends its 375/376 before 001, and
  closes on QUIT without ERROR.

Every client sends ``PASS p``, ``NICK n``, ``USER n 0 * :bench`` to every server.

The load runs in this process, pinned to CPU 1: bare non-blocking sockets on epoll (as
``epoll_logins`` in scripts/bench/ftp.py), cheaper per line than the servers. Measures:

- fan-out: ``--members`` (500) registered clients join ``#bench`` (50 JOINs outstanding at
  a time; every member reads the JOINs of the others), the sender last; its NAMES must list
  every member, and every other member must see its JOIN before anything is timed. Then the
  sender sends ``--messages`` (500) PRIVMSGs to ``#bench``, at most ``--window`` (256) ahead
  of the last one every member has received: each server's send queue to a member stays
  under ~25 KB, as a real sender is paced by its readers (a small window measures latency
  instead: ngIRCd did 220,000 deliveries/s with a window of 16, its CPU mostly idle). The
  time runs until every member received every message. Each member checks that each line it
  gets is the next message, byte for byte, from the sender's own prefix (PING is answered;
  anything else is a failure; after the last run every member PINGs, and nothing but its
  PONG may come). Deliveries/s = (members - 1) x messages over that time, the
  best of ``--repeat`` (3) such runs after one to warm up, all on the same members;
- registration: ``--registrations`` (300) clients at once (ngIRCd: 10 at a time, see
  below; ``--in-flight`` sets it for all) connect, send PASS, NICK, USER, wait for their
  001 (every line before it must be a numeric below 400, 422, a NOTICE or a PING), send
  ``QUIT`` and wait for the server to close (ERROR allowed); a 4xx/5xx numeric, an
  unexpected line or an early close is a failure. Nicks are new in every batch.
  Registrations/s is their count over the wall time, the best of ``--repeat`` batches after
  one to warm up. ngIRCd listens with a backlog of 10 (hard-coded; ``ss -ltn`` shows it):
  300 connections at once overflow its accept queue, SYNs are dropped and retried a second
  later, and some clients are reset ("Connection reset by peer" before their 001, after two
  minutes of retries). So no more than 10 of its clients are between connect and 001 at a
  time: its figure is not "all at once" (fewer in flight leave a server waiting on the load
  more often), and no goal compares with it.

Next to them, each server's CPU time (from /proc/PID/task/*/schedstat, in ns) per delivery
and per registration, and this process's own: measures that hold when the load, not the
server, sets the pace. Each round starts every server afresh; rounds are interleaved, the
best kept (with its CPU figures). Servers run with the levelled glibc allocator of
scripts/bench/common.py (``--allocator default`` for glibc as it comes). The load's CPU per
delivery depends on how a server writes: a server that sends each line on its own costs
it a ``recv`` per line (about 4 µs; 0.5 µs when lines come batched, as from Twisted). When
the load's µs per delivery nears the wall time per delivery (1e6 / deliveries/s), the
load, not the server, sets the pace.

Two more servers run only when ``--only`` names them, registrations only:
``netshell-core`` and ``twisted-core``, each framework's own TCP server and transport
with a protocol that answers PASS/NICK/USER with a fixed 16-line burst of netshell's
size and QUIT with ERROR and the close (``CANNED_PROTOCOL``): what a registration costs a
framework before any IRC is done. Their ratios say how much of each server's cost is its
core and how much its IRC.

Usage::

    python scripts/bench/irc.py                           # the full run
    python scripts/bench/irc.py --quick --json out.json   # seconds: a smoke test
    python scripts/bench/irc.py --only netshell,ngircd --members 1000
    # the cost of the cores under the IRC servers:
    python scripts/bench/irc.py --only netshell,netshell-core,twisted,twisted-core \\
        --measures registration
    # a change side by side with the tree before it:
    python scripts/bench/irc.py --only netshell,netshell-baseline --baseline ../before

It prints the ratios the issue names, with its goals: fan-out netshell/Twisted (>= 3x) and
netshell/ngIRCd (>= 0.5x), registration netshell/Twisted (>= 2x), and the others without a
goal. It is a measurement: it exits 0 whatever the ratios, and 1 ("FAILED server: why") only
if a server answered wrongly, lost a message, closed a client, or failed.
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import re
import resource
import select as select_module  # (select, from common, picks servers)
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

import common
from common import (
    SAY_READY,
    Failed,
    ServerProcess,
    Unavailable,
    add_allocator_option,
    add_baseline_option,
    allocator,
    machine,
    measure_all,
    not_installed,
    pin_load,
    print_ratios,
    print_table,
    python_env,
    select,
    use_baseline,
)

PASSWORD = "p"
CHANNEL = b"#bench"
SERVER_NAME = "irc.test"
JOIN_GATE = 50  # JOINs outstanding at a time while the channel fills
CONNECT_GATE = 100  # members registering at a time while the channel fills

# Run first in every Python server: pin it; then SAY_READY (common.py) gives it
# ready(port, what) and unavailable(why), for the first line of its stdout.
SERVER_PRELUDE = """
import os
os.sched_setaffinity(0, {int(os.environ["BENCH_IRC_CPU"])})
PASSWORD = "p"
# every nick the bench uses (as member_nick and registration_nick make them)
_members, _batches, _registrations = map(int, os.environ["BENCH_IRC_NICKS"].split(","))
NICKS = [f"m{i}" for i in range(_members)] + [
    f"r{b}x{i}" for b in range(_batches) for i in range(_registrations)]
"""

# The "core" cases: each framework's own TCP server and transport, with a protocol that
# answers PASS/NICK/USER with a fixed burst of 16 lines (1,286 bytes for a 4-letter nick,
# the size of netshell's IRC server's), and QUIT with ERROR and the close: what a
# registration costs a framework before any IRC is done. Registrations only.
CANNED_PROTOCOL = """
BURST = b"".join(
    b":irc.test %s NICKMARK %s\\r\\n" % (code, text) for code, text in [
        (b"001", b":Welcome to the netshell Network, NICKMARK!~NICKMARK@127.0.0.1"),
        (b"002", b":Your host is irc.test, running version netshell-irc-0.1"),
        (b"003", b":This server was created Sat Dec 05 2026 at 14:16:18 UTC"),
        (b"004", b"irc.test netshell-irc-0.1 Biow Ibeiklmnopstv Ibehkov"),
        (b"005", b"AWAYLEN=200 BOT=B CASEMAPPING=rfc1459 CHANLIMIT=#:50 CHANMODES=beI,k,l,"
                 b"imnpst CHANNELLEN=50 CHANTYPES=# ELIST=U EXCEPTS=e INVEX=I KICKLEN=300 "
                 b"MAXLIST=beI:100 MONITOR=100 :are supported by this server"),
        (b"005", b"MODES=4 NETWORK=netshell NICKLEN=30 PREFIX=(ov)@+ STATUSMSG=@+ "
                 b"TARGMAX=JOIN:,KICK:4,NAMES:,NOTICE:4,PART:,PRIVMSG:4,WHOIS:1 TOPICLEN=300 "
                 b"USERLEN=10 UTF8ONLY WHOX :are supported by this server"),
        (b"251", b":There are 1 users and 0 invisible on 1 servers"),
        (b"252", b"0 :operator(s) online"),
        (b"253", b"0 :unknown connection(s)"),
        (b"254", b"0 :channels formed"),
        (b"255", b":I have 1 clients and 0 servers"),
        (b"265", b"1 1 :Current local users 1, max 1"),
        (b"266", b"1 1 :Current global users 1, max 1"),
        (b"375", b":- irc.test Message of the day - "),
        (b"372", b":- test"),
        (b"376", b":End of /MOTD command."),
    ])
ERROR = b"ERROR :Closing Link: 127.0.0.1 (Quit: bench)\\r\\n"


def answer(conn, data):
    \"\"\"What the canned server says to ``data``; True once the client has quit.\"\"\"
    conn.held += data
    while b"\\n" in conn.held:
        line, _, conn.held = conn.held.partition(b"\\n")
        line = line.rstrip(b"\\r")
        if line.startswith(b"NICK "):
            conn.nick = line[5:]
        elif line.startswith(b"USER "):
            conn.write(BURST.replace(b"NICKMARK", conn.nick))
        elif line.startswith(b"QUIT"):
            conn.write(ERROR)
            return True
    return False
"""

SERVERS = {
    "netshell-core": CANNED_PROTOCOL + """
from netshell import reactor
from netshell.protocol import Factory, Protocol


class Canned(Protocol):
    held = b""
    nick = b"*"

    def write(self, data):
        self.transport.write(data)

    def data_received(self, data):
        if answer(self, data):
            self.transport.close()


listener = reactor.listen_tcp(0, Factory.for_protocol(Canned), interface="127.0.0.1",
                              backlog=4096)
ready(listener.port, "asyncio, canned answers")
reactor.run()
""",
    "twisted-core": CANNED_PROTOCOL + """
from twisted.internet import epollreactor
epollreactor.install()
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol


class Canned(Protocol):
    held = b""
    nick = b"*"

    def write(self, data):
        self.transport.write(data)

    def dataReceived(self, data):
        if answer(self, data):
            self.transport.loseConnection()


port = reactor.listenTCP(0, Factory.forProtocol(Canned), backlog=4096, interface="127.0.0.1")
ready(port.getHost().port, "EPollReactor, canned answers")
reactor.run()
""",
    "netshell": """
        import inspect
        from netshell import reactor
        try:
            from protocols import irc
            serve = irc.serve
            accepted = inspect.signature(serve).parameters
            # flood control off (ngIRCd's penalties are off too); a deep accept queue
            lifted = {k: v for k, v in (("flood_burst", 0), ("backlog", 4096),
                                        ("max_connections_per_ip", 0),
                                        ("motd", "test")) if k in accepted}
            listener = serve(port=0, interface="127.0.0.1", name="irc.test", **lifted)
        except (ImportError, AttributeError, NotImplementedError) as e:
            unavailable(f"protocols.irc has no working serve in this tree "
                        f"({type(e).__name__}{': ' + str(e) if str(e) else ''})")
        ready(listener.port, "asyncio " + ",".join(f"{k}={v}" for k, v in lifted.items()))
        reactor.run()
    """,
    "twisted": """
        from twisted.internet import epollreactor
        epollreactor.install()
        from twisted.internet import reactor
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
        from twisted.cred.portal import Portal
        from twisted.words.service import InMemoryWordsRealm, IRCFactory
        realm = InMemoryWordsRealm("irc.test")
        realm.createGroupOnRequest = True
        checker = InMemoryUsernamePasswordDatabaseDontUse()
        for nick in NICKS:
            checker.addUser(nick, PASSWORD)  # str, not bytes: bytes fail the login
        factory = IRCFactory(realm, Portal(realm, [checker]))
        port = reactor.listenTCP(0, factory, backlog=4096, interface="127.0.0.1")
        ready(port.getHost().port, "EPollReactor")
        reactor.run()
    """,
}

NGIRCD_CONF = """\
[Global]
Name = irc.test
Info = bench
Listen = 127.0.0.1
Ports = {port}
PidFile = {dir}/run/ngircd.pid
MotdPhrase = test
AdminInfo1 = bench
AdminInfo2 = bench
AdminEMail = a@irc.test
Password = {password}
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxPenaltyTime = 0
MaxJoins = 0
MaxNickLength = 30
PingTimeout = 600
PongTimeout = 600
[Options]
PAM = no
Ident = no
DNS = no
"""
NGIRCD = "/usr/sbin/ngircd"


class ServerCase(common.ServerCase):
    """One server; ``command``: a program it runs (ngircd) rather than Python."""

    def __init__(self, name: str, label: str, program: str, needs: list[str],
                 command: str | None = None) -> None:
        super().__init__(name, label, program, needs)
        self.command = command
        # registering clients at a time, by default (0: all at once)
        self.in_flight = 10 if command is not None else 0


SERVER_CASES = [
    ServerCase("netshell", "netshell", "netshell", []),
    ServerCase("ngircd", "ngIRCd", "ngircd", [], NGIRCD),
    ServerCase("twisted", "Twisted IRC", "twisted", ["twisted"]),
    # Only when named in --only: the tree before a change (--baseline DIR), and each
    # framework's core with canned answers (registrations only: see CANNED_PROTOCOL).
    ServerCase("netshell-baseline", "netshell baseline", "netshell", []),
    ServerCase("netshell-core", "netshell core", "netshell-core", []),
    ServerCase("twisted-core", "Twisted core", "twisted-core", ["twisted"]),
]
OPTIONAL_SERVERS = {"netshell-baseline", "netshell-core", "twisted-core"}
#: cases that answer registrations only
REGISTRATION_ONLY = {"netshell-core", "twisted-core"}

# measure key -> (column title, format, higher is better)
MEASURES: dict[str, tuple[str, str, bool]] = {
    "fanout_deliveries_per_s": ("deliveries/s", ",.0f", True),
    "registrations_per_s": ("registr./s", ",.0f", True),
}
# kept with the best of their measure
CPU_KEYS = {
    "fanout_deliveries_per_s": ("fanout_server_cpu_us", "fanout_client_cpu_us"),
    "registrations_per_s": ("registration_server_cpu_us", "registration_client_cpu_us"),
}
MEASURE_GROUPS = {
    "fanout": ("fanout_deliveries_per_s",),
    "registration": ("registrations_per_s",),
}

# (label, measure, numerator, denominators (the better of them), goal, op); the ratio
# is numerator / best denominator.
GOALS: list[tuple[str, str, str, tuple[str, ...], float | None, str]] = [
    ("fan-out: netshell / Twisted", "fanout_deliveries_per_s", "netshell", ("twisted",),
     3.0, ">="),
    ("fan-out: netshell / ngIRCd", "fanout_deliveries_per_s", "netshell", ("ngircd",),
     0.5, ">="),
    ("registration: netshell / Twisted", "registrations_per_s", "netshell", ("twisted",),
     2.0, ">="),
    ("registration: netshell / ngIRCd", "registrations_per_s", "netshell", ("ngircd",),
     None, ">="),
    # server CPU (lower is better): it holds when the load or a busy machine sets the pace
    ("CPU/delivery: netshell / Twisted", "fanout_server_cpu_us", "netshell", ("twisted",),
     None, "<="),
    ("CPU/delivery: netshell / ngIRCd", "fanout_server_cpu_us", "netshell", ("ngircd",),
     None, "<="),
    ("CPU/registration: netshell / Twisted", "registration_server_cpu_us", "netshell",
     ("twisted",), None, "<="),
    ("CPU/registration: netshell / ngIRCd", "registration_server_cpu_us", "netshell",
     ("ngircd",), None, "<="),
    ("fan-out: netshell / netshell baseline", "fanout_deliveries_per_s", "netshell",
     ("netshell-baseline",), None, ">="),
    ("registration: netshell / netshell baseline", "registrations_per_s", "netshell",
     ("netshell-baseline",), None, ">="),
    # the frameworks' cores with canned answers: what a registration costs before IRC
    ("CPU/registration, core only: netshell / Twisted", "registration_server_cpu_us",
     "netshell-core", ("twisted-core",), None, "<="),
    ("CPU/registration: netshell IRC / netshell core", "registration_server_cpu_us",
     "netshell", ("netshell-core",), None, "<="),
    ("CPU/registration: Twisted IRC / Twisted core", "registration_server_cpu_us",
     "twisted", ("twisted-core",), None, "<="),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nicks_used(args: argparse.Namespace) -> str:
    """The nicks a round uses, for SERVER_PRELUDE's NICKS (Twisted's checker holds each):
    "members,batches,registrations"."""
    return f"{args.members},{args.repeat + 1},{args.registrations}"


def member_nick(i: int) -> str:
    return f"m{i}"  # m0 sends (SERVER_PRELUDE makes the same)


def registration_nick(batch: int, i: int) -> str:
    return f"r{batch}x{i}"  # (SERVER_PRELUDE makes the same)


# ---- servers


class Server(ServerProcess):
    """One server process on its CPU, listening when constructed; stop() kills it."""

    def __init__(self, case: ServerCase, args: argparse.Namespace,
                 allocator_env: dict[str, str]) -> None:
        super().__init__(case.label)
        self.case = case
        self.workdir: str | None = None
        env = python_env({**allocator_env, **case.env, "BENCH_IRC_NICKS": args.nicks,
                          "BENCH_IRC_CPU": str(args.server_cpu)})
        if case.command is not None:
            self._start_ngircd(case, args, env)
            return
        code = (textwrap.dedent(SERVER_PRELUDE) + SAY_READY
                + textwrap.dedent(SERVERS[case.program]))
        self.port, self.what = self.start_python(
            code, env, case.cwd, "{label} did not start: {words!r}\n{said}")

    def _start_ngircd(self, case: ServerCase, args: argparse.Namespace,
                      env: dict[str, str]) -> None:
        assert case.command is not None
        self.workdir = tempfile.mkdtemp(prefix="bench-ngircd-")
        os.chmod(self.workdir, 0o755)  # it drops to nobody: it must read its files
        self.port = free_port()
        run_dir = os.path.join(self.workdir, "run")
        os.mkdir(run_dir, 0o755)
        if os.geteuid() == 0:  # it drops to nobody before writing its pid there
            shutil.chown(run_dir, "nobody")
        conf = os.path.join(self.workdir, "ngircd.conf")
        with open(conf, "w") as f:
            f.write(NGIRCD_CONF.format(port=self.port, dir=self.workdir, password=PASSWORD))
        os.chmod(conf, 0o644)
        cpu = args.server_cpu
        self.proc = subprocess.Popen(
            [case.command, "--nodaemon", "--config", conf], stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, env=env, text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        self.what = args.ngircd_version
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                said = self.said()
                self.stop()
                raise Failed(f"ngIRCd exited {self.proc.returncode} at start:\n{said}")
            if "Now listening on" in self.said():
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                    return
                except ConnectionRefusedError:
                    pass
            if time.monotonic() > deadline:
                said = self.said()
                self.stop()
                raise Failed(f"ngIRCd did not listen on {self.port} in 15 s:\n{said}")
            time.sleep(0.02)

    def stop(self) -> None:
        super().stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---- the load: bare non-blocking sockets on epoll, in this process (on the load's CPU)


def parse(line: bytes) -> tuple[bytes, bytes, list[bytes]]:
    """(source, command, parameters) of a line (tags dropped: no capability is asked)."""
    if line.startswith(b"@"):
        line = line.partition(b" ")[2]
    source = b""
    if line.startswith(b":"):
        source, _, line = line[1:].partition(b" ")
    trailing = None
    if b" :" in line:
        line, _, trailing = line.partition(b" :")
    words = line.split()
    if not words:
        return source, b"", []
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return source, words[0].upper(), params


#: a numeric from a server (no tags), and its first parameter
_NUMERIC_TO = re.compile(rb":[^ ]+ ([0-9]{3}) ([^ ]+)")


def command_and_target(line: bytes) -> tuple[bytes, bytes]:
    """The command of a line and its first parameter (b"" if none), as ``parse`` reads
    them, for less: a registration's burst is checked line by line."""
    if line[:1] == b"@":
        line = line.partition(b" ")[2]
    if line[:1] == b":":
        line = line.partition(b" ")[2]
    words = line.split(b" ", 2)
    if len(words) < 2 or b"" in words[:2]:  # spaces doubled, or no parameter: the long way
        _, command, params = parse(line)
        return command, params[0] if params else b""
    target = words[1]
    if target[:1] == b":":  # the first parameter is the trailing one
        target = line.partition(b" :")[2]
    return words[0].upper(), target


def is_numeric(command: bytes) -> bool:
    return len(command) == 3 and command.isdigit()


# connection states
CONNECTING, REGISTERING, REGISTERED, QUITTING, JOINING, JOINED, READY, GONE = range(8)


class Conn:
    __slots__ = ("sock", "fd", "nick", "held", "state", "index", "out", "names", "events")

    def __init__(self, sock: socket.socket, nick: bytes) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.nick = nick
        self.held = b""
        self.state = CONNECTING
        self.index = 0  # the next message expected (fan-out)
        self.out = b""  # bytes not sent yet (the sender's)
        self.names: list[bytes] = []  # from 353 (the sender's)
        self.events = select_module.EPOLLOUT  # what epoll watches it for


class Load:
    """Clients of one server on one epoll; subclasses say what each line means."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.ep = select_module.epoll()
        self.conns: dict[int, Conn] = {}

    def open(self, nick: str) -> Conn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise Failed(f"connect: {os.strerror(err)}")
        conn = Conn(sock, nick.encode())
        self.conns[conn.fd] = conn
        self.ep.register(conn.fd, select_module.EPOLLOUT)
        return conn

    def connected(self, conn: Conn) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise Failed(f"{conn.nick.decode()}: connect: {os.strerror(err)}")
        conn.state = REGISTERING
        n = conn.nick
        self.send(conn, b"PASS %s\r\nNICK %s\r\nUSER %s 0 * :bench\r\n"
                  % (PASSWORD.encode(), n, n))

    def send(self, conn: Conn, data: bytes) -> None:
        conn.out += data
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        if not conn.out:
            return
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            raise Failed(f"{conn.nick.decode()}: send: {e!r}") from e
        conn.out = conn.out[sent:]
        events = select_module.EPOLLIN | (select_module.EPOLLOUT if conn.out else 0)
        if events != conn.events:  # an epoll_ctl only when it changes
            conn.events = events
            self.ep.modify(conn.fd, events)

    def close(self, conn: Conn) -> None:
        conn.state = GONE
        self.ep.unregister(conn.fd)
        conn.sock.close()
        del self.conns[conn.fd]

    def close_all(self) -> None:
        for conn in list(self.conns.values()):
            self.close(conn)
        self.ep.close()

    def run_until(self, done: Any, what: str) -> None:
        """Serve events until ``done()``; a failure after ``self.timeout`` seconds."""
        deadline = time.perf_counter() + self.timeout
        conns = self.conns
        while not done():
            if time.perf_counter() > deadline:
                raise Failed(f"{what}: not done after {self.timeout:.0f} s "
                             f"({self.progress()})")
            for fd, events in self.ep.poll(1.0):
                conn = conns.get(fd)
                if conn is None:
                    continue
                if conn.state == CONNECTING:
                    self.connected(conn)
                    continue
                if events & select_module.EPOLLOUT:
                    self.flush(conn)
                if not events & (select_module.EPOLLIN | select_module.EPOLLERR
                                 | select_module.EPOLLHUP):
                    continue
                try:
                    data = conn.sock.recv(262144)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise Failed(f"{conn.nick.decode()}: {e!r} ({self.progress()})") from e
                if not data:
                    self.eof(conn)
                    continue
                lines = (conn.held + data).split(b"\r\n")
                conn.held = lines.pop()
                self.lines(conn, lines)
            self.tick()

    def tick(self) -> None:
        """After each batch of events."""

    def progress(self) -> str:
        return ""

    def eof(self, conn: Conn) -> None:
        raise Failed(f"{conn.nick.decode()} was closed by the server "
                     f"(state {conn.state}, {conn.held[:200]!r} held)")

    def lines(self, conn: Conn, lines: list[bytes]) -> None:
        raise NotImplementedError

    def setup_line(self, conn: Conn, line: bytes) -> tuple[bytes, bytes, list[bytes]]:
        """check_line, and the line parsed for the caller to look further."""
        self.check_line(conn, line)
        return parse(line)

    def check_line(self, conn: Conn, line: bytes) -> None:
        """A line during registration or after it: PING answered, 001 checked, errors
        fail."""
        command, target = command_and_target(line)
        nick = conn.nick
        if command == b"PING":
            params = parse(line)[2]
            self.send(conn, b"PONG :%s\r\n" % (params[-1] if params else b""))
        elif is_numeric(command):
            if command >= b"400" and command != b"422":  # 422: no MOTD
                raise Failed(f"{nick.decode()}: an error numeric: {line[:300]!r}")
            if target != nick and conn.state != REGISTERING:
                raise Failed(f"{nick.decode()}: a numeric not to its nick: {line[:300]!r}")
            if command == b"001":
                if conn.state != REGISTERING or target != nick:
                    raise Failed(f"{nick.decode()}: a wrong 001: {line[:300]!r}")
                conn.state = REGISTERED
        elif command == b"ERROR" and conn.state == QUITTING:
            pass
        elif command not in (b"NOTICE", b"MODE") and not (
                command == b"JOIN" and conn.state in (JOINING, JOINED)):
            raise Failed(f"{nick.decode()} (state {conn.state}): unexpected {line[:300]!r}")


class Registrations(Load):
    """``count`` clients at once: connect, PASS/NICK/USER, 001, QUIT, closed by the server."""

    def __init__(self, port: int, timeout: float, nicks: list[str], in_flight: int) -> None:
        super().__init__(port, timeout)
        self.nicks = nicks
        self.in_flight = in_flight  # 0: all at once
        self.to_open = list(reversed(nicks))
        self.before_001 = 0
        self.done = 0

    def open_more(self) -> None:
        while self.to_open and (not self.in_flight or self.before_001 < self.in_flight):
            self.open(self.to_open.pop())
            self.before_001 += 1

    def measure(self) -> tuple[float, float]:
        """(registrations per second, this process's CPU µs per registration)."""
        cpu0 = time.process_time()
        start = time.perf_counter()
        try:
            self.open_more()
            self.run_until(lambda: self.done == len(self.nicks), "registrations")
        finally:
            self.close_all()
        elapsed = time.perf_counter() - start
        count = len(self.nicks)
        return count / elapsed, 1e6 * (time.process_time() - cpu0) / count

    def progress(self) -> str:
        states = [c.state for c in self.conns.values()]
        return (f"{len(self.nicks) - self.done} left: {states.count(CONNECTING)} connecting, "
                f"{states.count(REGISTERING)} waiting for 001, "
                f"{states.count(QUITTING)} for the close, {len(self.to_open)} not started")

    def lines(self, conn: Conn, lines: list[bytes]) -> None:
        nick = conn.nick
        for line in lines:
            # Most of a burst is numerics below 400 to the client's nick once it has its
            # 001: those pass here, for less; every other line is checked in full.
            m = _NUMERIC_TO.match(line)
            if (m is not None and m[2] == nick and m[1] < b"400" and m[1] != b"001"
                    and conn.state != REGISTERING):
                continue
            self.check_line(conn, line)
            if conn.state == REGISTERED:
                conn.state = QUITTING
                self.send(conn, b"QUIT :bench\r\n")
                self.before_001 -= 1
                self.open_more()

    def eof(self, conn: Conn) -> None:
        if conn.state != QUITTING:
            super().eof(conn)
        if conn.held:
            raise Failed(f"{conn.nick.decode()}: a partial line at the close: {conn.held!r}")
        self.close(conn)
        self.done += 1


class FanOut(Load):
    """``members`` clients in #bench; the first (m0) sends, the others receive."""

    def __init__(self, port: int, timeout: float, members: int, window: int) -> None:
        super().__init__(port, timeout)
        self.members = members
        self.window = window
        self.sender: Conn | None = None
        self.receivers: list[Conn] = []
        self.waiting: list[Conn] = []  # registered, not joining yet
        self.to_open: list[str] = []
        self.registering = 0
        self.joining = 0
        self.ready = 0
        self.prefix = b""  # the sender's, as the server writes it
        # the timed part
        self.expected: list[bytes] = []
        self.got: list[int] = []
        self.low = 0  # messages every receiver has
        self.sent = 0
        self.texts: list[bytes] = []
        self.pongs = -1  # PONGs to the last check's PINGs (-1: none asked)

    def progress(self) -> str:
        return (f"{self.registering} registering, {self.joining} joining, {self.ready} "
                f"of {len(self.receivers)} ready; message {self.low} of {len(self.expected)} "
                f"received by all, {self.sent} sent")

    # -- the channel fills

    def setup(self) -> None:
        self.to_open = [member_nick(i) for i in range(1, self.members)]
        self.open_more()
        self.run_until(lambda: self.ready == len(self.receivers) == self.members - 1
                       and self.sender is not None and self.sender.state == READY,
                       "the channel filling")

    def open_more(self) -> None:
        while self.to_open and self.registering < CONNECT_GATE:
            self.receivers.append(self.open(self.to_open.pop(0)))
            self.registering += 1
        while self.waiting and self.joining < JOIN_GATE:
            conn = self.waiting.pop(0)
            conn.state = JOINING
            self.joining += 1
            self.send(conn, b"JOIN %s\r\n" % CHANNEL)
        if (self.sender is None and not self.to_open and not self.waiting
                and self.registering == 0 and self.joining == 0):
            self.sender = self.open(member_nick(0))

    def setup_lines(self, conn: Conn, lines: list[bytes]) -> None:
        for line in lines:
            if conn.state == READY:  # (the sender's own JOIN seen)
                self.timed_line(conn, line)
                continue
            was = conn.state
            source, command, params = self.setup_line(conn, line)
            if was == REGISTERING and conn.state == REGISTERED:
                if conn is self.sender:
                    conn.state = JOINING
                    self.send(conn, b"JOIN %s\r\n" % CHANNEL)
                else:
                    self.registering -= 1
                    self.waiting.append(conn)
            elif command == b"JOIN":
                if (params[:1] != [CHANNEL]) or not source:
                    raise Failed(f"{conn.nick.decode()}: a JOIN elsewhere: {line[:300]!r}")
                who = source.partition(b"!")[0]
                if who == b"m0" and conn is not self.sender:
                    if conn.state != JOINED:
                        raise Failed(f"{conn.nick.decode()}: m0's JOIN before its own 366")
                    if self.prefix and source != self.prefix:
                        raise Failed(f"two prefixes of m0: {self.prefix!r}, {source!r}")
                    self.prefix = source
                    conn.state = READY
                    self.ready += 1
            elif command == b"353" and conn is self.sender and conn.state == JOINING:
                conn.names.extend(n.lstrip(b"@+%&~") for n in params[-1].split())
            elif command == b"366" and conn.state == JOINING:
                if params[1:2] != [CHANNEL]:
                    raise Failed(f"{conn.nick.decode()}: 366 of another channel: {line!r}")
                conn.state = JOINED
                if conn is self.sender:
                    want = {member_nick(i).encode() for i in range(self.members)}
                    if set(conn.names) != want or len(conn.names) != self.members:
                        raise Failed(
                            f"NAMES {CHANNEL.decode()} lists {len(conn.names)} nicks, "
                            f"not the {self.members} members (missing: "
                            f"{sorted(want - set(conn.names))[:10]}, extra: "
                            f"{sorted(set(conn.names) - want)[:10]})")
                    conn.state = READY
                else:
                    self.joining -= 1
        if self.sender is None or self.sender.state != READY:
            self.open_more()

    # -- the timed part

    def lines(self, conn: Conn, lines: list[bytes]) -> None:
        if conn.state != READY:
            self.setup_lines(conn, lines)
            return
        if conn is self.sender:
            for line in lines:
                self.timed_line(conn, line)
            return
        expected = self.expected
        got = self.got
        index = conn.index
        for line in lines:
            if index < len(expected) and line == expected[index]:
                got[index] += 1
                index += 1
            else:
                conn.index = index
                self.timed_line(conn, line)
        conn.index = index

    def timed_line(self, conn: Conn, line: bytes) -> None:
        _source, command, params = parse(line)
        if command == b"PING":
            self.send(conn, b"PONG :%s\r\n" % (params[-1] if params else b""))
            return
        if command == b"PONG" and self.pongs >= 0 and not self.expected:
            self.pongs += 1  # (Twisted's PONG does not repeat the token)
            return
        if conn is self.sender:
            raise Failed(f"the sender got {line[:300]!r}")
        if conn.index < len(self.expected):
            raise Failed(f"{conn.nick.decode()} expected message {conn.index} "
                         f"{self.expected[conn.index][:120]!r}, got {line[:300]!r}")
        raise Failed(f"{conn.nick.decode()} got {line[:300]!r} after the last message")

    def tick(self) -> None:
        if not self.expected:
            return
        got, low, total = self.got, self.low, len(self.expected)
        want = len(self.receivers)
        while low < total and got[low] == want:
            low += 1
        self.low = low
        top = min(total, low + self.window)
        if self.sent < top and self.sender is not None:
            self.send(self.sender, b"".join(self.texts[self.sent:top]))
            self.sent = top

    def check_quiet(self) -> None:
        """Every member PINGs and gets its PONG with nothing else before it: no message
        came twice or late after the last run, and the sender got none."""
        self.pongs = 0
        members = [*self.receivers, *([self.sender] if self.sender else [])]
        for conn in members:
            self.send(conn, b"PING :quiet\r\n")
        self.run_until(lambda: self.pongs == len(members), "PING after the last run")

    def run(self, tag: int, messages: int) -> tuple[float, float]:
        """One timed run: (seconds, this process's CPU seconds)."""
        for conn in self.receivers:
            conn.index = 0
        texts = [b"%d.%d bench message from m0 to every member of the channel" % (tag, i)
                 for i in range(messages)]
        self.texts = [b"PRIVMSG %s :%s\r\n" % (CHANNEL, t) for t in texts]
        head = b":%s PRIVMSG %s :" % (self.prefix, CHANNEL)
        self.got = [0] * messages
        self.low = self.sent = 0
        cpu0 = time.process_time()
        start = time.perf_counter()
        self.expected = [head + t for t in texts]
        self.tick()
        self.run_until(lambda: self.low == messages, "the fan-out")
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        if any(c.index != messages or c.held for c in self.receivers):
            raise Failed("a receiver has more than the messages sent")
        self.expected = []
        return elapsed, cpu


# ---- one server, one round


def measure_server(case: ServerCase, args: argparse.Namespace,
                   allocator_env: dict[str, str]) -> dict[str, Any]:
    try:
        server = Server(case, args, allocator_env)
    except (Failed, Unavailable):
        raise
    except Exception as e:
        raise Failed(f"{case.label} did not start: {type(e).__name__}: {e}") from e
    result: dict[str, Any] = {"label": case.label, "what": server.what}
    try:
        if "registration" in args.measures:
            in_flight = case.in_flight if args.in_flight is None else args.in_flight
            result["registration_in_flight"] = in_flight
            best: tuple[float, float, float] = (0.0, 0.0, 0.0)
            for batch in range(args.repeat + 1):  # the first warms up, not counted
                nicks = [registration_nick(batch, i) for i in range(args.registrations)]
                cpu0 = server.cpu_seconds()
                rate, client_us = Registrations(server.port, args.timeout, nicks,
                                                 in_flight).measure()
                cpu = server.cpu_seconds() - cpu0
                server.alive()
                if batch and rate > best[0]:
                    best = (rate, 1e6 * cpu / args.registrations, client_us)
            (result["registrations_per_s"], result["registration_server_cpu_us"],
             result["registration_client_cpu_us"]) = best
        if "fanout" in args.measures and case.name not in REGISTRATION_ONLY:
            load = FanOut(server.port, args.timeout, args.members, args.window)
            try:
                load.setup()
                server.alive()
                deliveries = (args.members - 1) * args.messages
                best = (0.0, 0.0, 0.0)
                for tag in range(args.repeat + 1):  # the first warms up, not counted
                    cpu0 = server.cpu_seconds()
                    seconds, client_cpu = load.run(tag, args.messages)
                    cpu = server.cpu_seconds() - cpu0
                    server.alive()
                    if tag and deliveries / seconds > best[0]:
                        best = (deliveries / seconds, 1e6 * cpu / deliveries,
                                1e6 * client_cpu / deliveries)
                load.check_quiet()
            finally:
                load.close_all()
            (result["fanout_deliveries_per_s"], result["fanout_server_cpu_us"],
             result["fanout_client_cpu_us"]) = best
        server.alive()
    except (Failed, Unavailable) as e:
        raise Failed(f"{case.label}: {e}\n{server.said()}".rstrip()) from e
    except Exception as e:
        raise Failed(f"{case.label}: {type(e).__name__}: {e}\n{server.said()}") from e
    finally:
        server.stop()
    return result


# ---- the report


def report(cases: list[ServerCase], results: dict[str, dict[str, Any]],
           unavailable: dict[str, str]) -> dict[str, float]:
    keys = print_table(cases, results, unavailable, MEASURES)
    cpu_keys = [k for m in keys for k in CPU_KEYS[m]]
    if cpu_keys:
        titles = {"fanout_server_cpu_us": "µs/delivery", "fanout_client_cpu_us": "client µs",
                  "registration_server_cpu_us": "µs/registr.",
                  "registration_client_cpu_us": "client µs"}
        print(f"\n{'CPU':18}" + "".join(f" {titles[k]:>12}" for k in cpu_keys))
        for case in cases:
            res = results.get(case.name)
            if res is None:
                continue
            print(f"{case.label:18}" + "".join(
                f" {res[k]:12.{2 if 'fanout' in k else 1}f}" if k in res else f" {'-':>12}"
                for k in cpu_keys))
    paced = [f"{c.label} {results[c.name]['registration_in_flight']} at a time"
             for c in cases if results.get(c.name, {}).get("registration_in_flight")]
    if paced:
        print("registration: " + ", ".join(paced) + "; the others all at once")
    return print_ratios(GOALS, MEASURES, results)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    parser.add_argument("--repeat", type=int,
                        help="timed runs per round after a warm-up, best kept (default 3)")
    parser.add_argument("--members", type=int,
                        help="members of the channel, the sender among them (default 500)")
    parser.add_argument("--messages", type=int,
                        help="PRIVMSGs to the channel per run (default 500)")
    parser.add_argument("--window", type=int, default=256,
                        help="messages the sender may be ahead of the slowest member")
    parser.add_argument("--registrations", type=int,
                        help="clients registering at once (default 300)")
    parser.add_argument("--in-flight", type=int,
                        help="registering clients (connected, no 001 yet) at a time; 0: all "
                        "at once (default: all at once, 10 for ngIRCd: its accept queue "
                        "holds 10)")
    parser.add_argument("--timeout", type=float,
                        help="seconds a step may take before it is a failure (default 120, "
                        "quick 20)")
    parser.add_argument("--measures", default="fanout,registration",
                        help="comma-separated: fanout, registration (default both)")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated servers: " + ", ".join(c.name for c in SERVER_CASES))
    add_allocator_option(parser)
    add_baseline_option(parser)
    args = parser.parse_args()
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    args.members = args.members if args.members is not None else (50 if args.quick else 500)
    args.messages = args.messages if args.messages is not None else (20 if args.quick else 500)
    args.registrations = (args.registrations if args.registrations is not None
                          else (30 if args.quick else 300))
    args.timeout = args.timeout if args.timeout is not None else (20.0 if args.quick else 120.0)
    rounds = 1 if args.quick else max(1, args.rounds)
    args.measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    if set(args.measures) - set(MEASURE_GROUPS) or not args.measures:
        parser.error(f"--measures: choose among {', '.join(MEASURE_GROUPS)}")
    if min(args.repeat, args.messages, args.registrations, args.window) < 1:
        parser.error("--repeat, --messages, --registrations and --window must be positive")
    if args.members < 2:
        parser.error("--members must be at least 2 (a sender and a receiver)")
    cases = select(SERVER_CASES, OPTIONAL_SERVERS, args.only)
    use_baseline(cases, args.baseline, parser, "protocols.irc")
    args.nicks = nicks_used(args)

    args.server_cpu, args.client_cpu = pin_load()
    # Every client is a descriptor here and one in the server (which inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.members, args.registrations) + 200
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            parser.error(f"{want} descriptors are needed; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    skipped: dict[str, str] = {}
    for case in cases:
        why = not_installed(case.needs, "bench,test")
        if why:
            skipped[case.name] = why
        if case.command is not None and not os.access(case.command, os.X_OK):
            skipped[case.name] = f"not installed: {case.command} (apt-get install -y ngircd)"
    cases = [c for c in cases if c.name not in skipped]
    args.ngircd_version = ""
    if any(c.command is not None for c in cases):
        version = subprocess.run([NGIRCD, "--version"], capture_output=True, text=True)
        args.ngircd_version = (version.stdout.split("\n")[0].split("-")[0]).strip()
    return run(args, cases, skipped, rounds)


def run(args: argparse.Namespace, cases: list[ServerCase], skipped: dict[str, str],
        rounds: int) -> int:
    allocator_title, allocator_env = allocator(args.allocator)
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores; servers on CPU "
        f"{args.server_cpu}, load (clients on epoll, bare sockets, this process) on CPU "
        f"{args.client_cpu}; {rounds} round(s), best kept\n"
        f"fan-out: {args.members} members, {args.messages} messages per run, window "
        f"{args.window}, best of {args.repeat} after a warm-up; registration: "
        f"{args.registrations} per batch, "
        + ("all at once (ngIRCd: 10 at a time)" if args.in_flight is None
           else f"{args.in_flight or 'all'} at a time")
        + f", best of {args.repeat} after a warm-up; "
        f"{allocator_title}"
    )
    for name, why in skipped.items():
        print(f"left out {name}: {why}")

    out: dict[str, Any] = {
        **machine(args),
        "members": args.members,
        "messages": args.messages,
        "window": args.window,
        "registrations": args.registrations,
        "in_flight": args.in_flight,  # None: each server's default
        "repeat": args.repeat,
        "client": "epoll",
        "rounds": rounds,
        "measures": args.measures,
        "allocator": allocator_title,
        "skipped": skipped,
    }
    return measure_all(
        out, cases, rounds, lambda case: measure_server(case, args, allocator_env), MEASURES,
        CPU_KEYS, report, args.json,
    )

if __name__ == "__main__":
    sys.exit(main())
