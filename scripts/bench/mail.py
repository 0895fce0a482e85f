"""Mail benchmark: SMTP messages accepted per second, netshell against its peers.

SMTP servers, each in its own process pinned to CPU 0, started afresh in every round,
the rounds interleaved: netshell's (``protocols.mail.smtp.serve``, on asyncio's default
loop), aiosmtpd's (``aiosmtpd.smtp.SMTP`` on asyncio's default loop) and Twisted's
(``twisted.mail.smtp.ESMTP`` on its default reactor). Each hands every message to a
delivery that keeps nothing (a callable, a handler, an ``IMessage``), so what is
measured is the protocol, not a disk. The load (this process, pinned to CPU 1, on uvloop
when installed) is ``--clients`` connections (20), each sending 10 KiB messages one after
the other for ``--seconds``, one transaction each (MAIL, RCPT, DATA, the message, the
final dot), every command waiting for its reply: PIPELINING is not used, since not every
server offers it. Each reply is read whole (a multi-line one to its last line) and its
code checked: a server that refuses a message fails the run. The load is a state machine
on asyncio's Protocol, not streams, so that it costs less than the servers it drives.

Measures, per server and round (the best kept, every round's value in the JSON):

- messages accepted per second;
- the server's CPU per message (its threads' schedstat time), in microseconds.

Goals (issue 18): netshell >= 1.5x aiosmtpd and >= 2x Twisted in messages per second.

IMAP (the cases ``imap-netshell`` and ``imap-dovecot``): netshell's IMAP server
(``protocols.mail.imap.server.serve``) and Dovecot serve the same Maildir of
``--imap-messages`` (10,000) messages of about 10 KiB with realistic headers (Received,
From, To, Cc, Subject, Date, Message-ID, References, MIME), made once per run in a temp
directory. One client logs in, SELECTs INBOX and times ``FETCH 1:* (FLAGS ENVELOPE)``
``--fetches`` times (5), reading every answer to the tagged OK and counting the FETCH
lines: the best time is kept, as messages per second. Goal: netshell >= 0.3x Dovecot.
Dovecot (apt: dovecot-imapd) runs as in tests/protocols/mail/imap_dovecot.py; not
installed, its case is unavailable. Run only these with ``--only imap-netshell,imap-dovecot``.

It is a measurement: it exits 0 whatever the ratios, and 1 only if a server does not
start or answers wrongly.

Usage::

    python scripts/bench/mail.py --rounds 5 --json mail.json   # docs/performance.md
    python scripts/bench/mail.py --quick                        # a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

from common import (
    ROOT,
    SAY_READY,
    Failed,
    Goals,
    ServerCase,
    ServerProcess,
    add_allocator_option,
    allocator,
    machine,
    measure_all,
    not_installed,
    pin_load,
    print_ratios,
    print_table,
    python_env,
    select,
    stop_process,
)

PIN = """
import os
os.sched_setaffinity(0, {{{cpu}}})
"""

NETSHELL = """
from netshell import reactor
from protocols.mail import smtp
accepted = 0
def deliver(envelope):
    global accepted
    accepted += 1  # kept nowhere: the protocol is what is measured
listener = smtp.serve(0, deliver=deliver, hostname="bench.test", max_size=1 << 20)
reactor.call_soon(ready, listener.port, "netshell SMTP")
reactor.run()
"""

AIOSMTPD = """
import asyncio
try:
    import aiosmtpd
    from aiosmtpd.smtp import SMTP
except ImportError:
    unavailable("aiosmtpd is not installed (pip install -e '.[test]')")
class Keep:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"  # kept nowhere
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Keep(), hostname="bench.test", data_size_limit=1 << 20),
        "127.0.0.1", 0, backlog=1024)
    ready(server.sockets[0].getsockname()[1], f"aiosmtpd {aiosmtpd.__version__}")
    await asyncio.Event().wait()
asyncio.run(main())
"""

TWISTED = """
try:
    import twisted
    from twisted.internet import defer, reactor
    from twisted.mail import smtp
    from zope.interface import implementer
except ImportError:
    unavailable("twisted is not installed (pip install -e '.[bench]')")
@implementer(smtp.IMessage)
class Message:
    def lineReceived(self, line):
        pass  # kept nowhere
    def eomReceived(self):
        return defer.succeed(None)
    def connectionLost(self):
        pass
@implementer(smtp.IMessageDelivery)
class Delivery:
    def receivedHeader(self, helo, origin, recipients):
        return None
    def validateFrom(self, helo, origin):
        return origin
    def validateTo(self, user):
        return Message
class Factory(smtp.SMTPFactory):
    protocol = smtp.ESMTP
    domain = "bench.test"
    def buildProtocol(self, addr):
        p = smtp.SMTPFactory.buildProtocol(self, addr)
        p.delivery = Delivery()
        return p
port = reactor.listenTCP(0, Factory(), backlog=1024, interface="127.0.0.1")
reactor.callWhenRunning(ready, port.getHost().port, f"Twisted {twisted.__version__} ESMTP")
reactor.run()
"""

IMAP_NETSHELL = """
import sys
from netshell import reactor
from protocols.mail.imap.server import serve
listener = serve(sys.argv[1], {"alice": "secret"}, fsync=False)
reactor.call_soon(ready, listener.port, "netshell IMAP")
reactor.run()
"""

DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {dir}/dovecot.log
mail_location = maildir:{dir}/mail/%u
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=12345 gid=12345 home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

SERVER_CASES = [
    ServerCase("netshell", "netshell", NETSHELL, []),
    ServerCase("aiosmtpd", "aiosmtpd", AIOSMTPD, ["aiosmtpd"]),
    ServerCase("twisted", "Twisted", TWISTED, ["twisted"]),
    ServerCase("imap-netshell", "netshell IMAP", IMAP_NETSHELL, []),
    ServerCase("imap-dovecot", "Dovecot IMAP", "", []),
]
OPTIONAL_SERVERS: set[str] = set()

MEASURES = {
    "messages_per_s": ("messages/s", ",.0f", True),
    "server_cpu_us_per_message": ("CPU µs/msg", ".1f", False),
    "fetch_messages_per_s": ("FETCH msg/s", ",.0f", True),
    "fetch_ms": ("FETCH ms", ",.1f", False),
}

GOALS: Goals = [
    ("SMTP messages/s: netshell / aiosmtpd", "messages_per_s", "netshell", ("aiosmtpd",),
     1.5, ">="),
    ("SMTP messages/s: netshell / Twisted", "messages_per_s", "netshell", ("twisted",),
     2.0, ">="),
    ("CPU per message: netshell / aiosmtpd", "server_cpu_us_per_message", "netshell",
     ("aiosmtpd",), None, "<="),
    ("CPU per message: netshell / Twisted", "server_cpu_us_per_message", "netshell",
     ("twisted",), None, "<="),
    ("IMAP FETCH 1:* (FLAGS ENVELOPE): netshell / Dovecot", "fetch_messages_per_s",
     "imap-netshell", ("imap-dovecot",), 0.3, ">="),
]


def message(size: int = 10 * 1024) -> bytes:
    """A plain text message of about ``size`` octets, its lines short, none starting with
    a dot (so the body goes out as it is), ending with CRLF."""
    head = (b"From: bench <a@bench.test>\r\nTo: <b@bench.test>\r\nSubject: bench\r\n"
            b"Message-ID: <bench@bench.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = b"The quick brown fox jumps over the lazy dog, and then some more words.\r\n"
    return head + line * ((size - len(head)) // len(line) + 1)


class WrongReply(Exception):
    pass


class SMTPLoad(asyncio.Protocol):
    """One client connection sending messages lock-step until ``until``: a state machine
    on asyncio's Protocol (no streams: the load should cost less than the servers)."""

    # after the reply with this code, send that (None: the message is done)
    def __init__(self, body: bytes, until: float, done: asyncio.Future[int]) -> None:
        self.data = body + b".\r\n"
        self.until = until
        self.done = done
        self.buffer = b""
        self.step = 0  # 0 greeting, 1 EHLO, 2 MAIL, 3 RCPT, 4 DATA, 5 message, 6 QUIT
        self.count = 0
        self.transport: asyncio.Transport | None = None

    EXPECT = (b"220", b"250", b"250", b"250", b"354", b"250", b"221")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            line, buffer = buffer[:end], buffer[end + 2:]
            if line[3:4] == b"-":
                continue  # a multi-line reply goes on
            self.reply(line)
        self.buffer = buffer

    def reply(self, line: bytes) -> None:
        if line[:3] != self.EXPECT[self.step]:
            self.fail(WrongReply(f"expected {self.EXPECT[self.step].decode()}, "
                                 f"got {line[:200]!r}"))
            return
        assert self.transport is not None
        step = self.step
        if step == 0:
            self.transport.write(b"EHLO load.bench.test\r\n")
        elif step in (1, 5):
            if step == 5:
                self.count += 1
            if time.perf_counter() >= self.until:
                self.transport.write(b"QUIT\r\n")
                self.step = 6
                return
            self.transport.write(b"MAIL FROM:<a@bench.test>\r\n")
            self.step = 2
            return
        elif step == 2:
            self.transport.write(b"RCPT TO:<b@bench.test>\r\n")
        elif step == 3:
            self.transport.write(b"DATA\r\n")
        elif step == 4:
            self.transport.write(self.data)
        elif step == 6:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(self.count)
            return
        self.step = step + 1

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(WrongReply(f"the server closed the connection ({exc})"))


async def load(port: int, clients: int, seconds: float) -> tuple[float, int]:
    """(messages per second, messages) from ``clients`` connections for ``seconds``."""
    loop = asyncio.get_running_loop()
    body = message()
    start = time.perf_counter()
    dones = []
    for _ in range(clients):
        done: asyncio.Future[int] = loop.create_future()
        await loop.create_connection(lambda d=done: SMTPLoad(body, start + seconds, d),
                                     "127.0.0.1", port)
        dones.append(done)
    counts = await asyncio.gather(*dones)
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed, sum(counts)


def asyncio_run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def measure(case: ServerCase, args: argparse.Namespace) -> dict[str, Any]:
    """One round of one server, on a fresh process."""
    why = not_installed(case.needs, "test,bench")
    if why:
        from common import Unavailable
        raise Unavailable(why)
    server = ServerProcess(case.label)
    code = (SAY_READY + textwrap.dedent(PIN.format(cpu=args.server_cpu))
            + textwrap.dedent(case.program))
    port, what = server.start_python(code, python_env(args.allocator_env), ROOT,
                                     "{label} did not start ({words}):\n{said}")
    try:
        cpu0 = server.cpu_seconds()
        try:
            rate, messages = asyncio_run(load(port, args.clients, args.seconds))
        except (WrongReply, OSError) as e:
            raise Failed(f"{case.label}: {e}\n{server.said()}") from e
        cpu = server.cpu_seconds() - cpu0
        server.alive()
        return {"messages_per_s": rate,
                "server_cpu_us_per_message": cpu / max(1, messages) * 1e6,
                "what": what}
    finally:
        server.stop()


# ---- IMAP

FIRST = ["Ann", "Bob", "Carol", "Dan", "Eve", "Frank", "Gina", "Hal", "Ivy", "Jon"]
LAST = ["Smith", "Jones", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Clark"]
WORDS = ["report", "meeting", "budget", "review", "quarterly", "draft", "notes", "lunch",
         "release", "plan", "update", "invoice", "travel", "agenda", "schedule"]


def imap_message(n: int, rng: random.Random) -> bytes:
    """Message ``n`` of the bench Maildir: about 10 KiB, headers as real mail has them."""
    def person() -> tuple[str, str]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = rng.choice(["com", "org", "net"])
        return f"{first} {last}", f"{first.lower()}.{last.lower()}@example.{domain}"
    sender = person()
    to = [person() for _ in range(rng.randint(1, 3))]
    cc = [person() for _ in range(rng.randint(0, 2))]
    day = 1 + n % 28
    head = (
        f"Return-Path: <{sender[1]}>\r\n"
        f"Received: from mx{n % 7}.example.net (mx{n % 7}.example.net [192.0.2.{n % 250}])\r\n"
        f"\tby mail.example.com (Postfix) with ESMTPS id {n:08X}\r\n"
        f"\tfor <alice@example.com>; Mon, {day} Jan 2024 10:{n % 60:02d}:00 +0000\r\n"
        f"Date: Mon, {day} Jan 2024 10:{n % 60:02d}:00 +0000\r\n"
        f'From: "{sender[0]}" <{sender[1]}>\r\n'
        f"To: {', '.join(f'{a} <{b}>' for a, b in to)}\r\n"
        + (f"Cc: {', '.join(f'{a} <{b}>' for a, b in cc)}\r\n" if cc else "")
        + f"Subject: Re: {' '.join(rng.choice(WORDS) for _ in range(4))} #{n}\r\n"
        f"Message-ID: <{n}.{rng.randrange(1 << 30)}@example.net>\r\n"
        f"In-Reply-To: <{n - 1}@example.net>\r\n"
        f"References: <{n - 2}@example.net> <{n - 1}@example.net>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, and then some more words.\r\n"
    return head + line * ((10 * 1024 - len(head)) // len(line) + 1)


def make_maildir(directory: str, count: int) -> str:
    """``directory/mail/alice``, a Maildir of ``count`` messages (written straight into
    cur, as a delivery agent would, a third of them \\Seen): the mail root."""
    rng = random.Random(18)
    alice = os.path.join(directory, "mail", "alice")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(alice, sub))
    for n in range(1, count + 1):
        data = imap_message(n, rng)
        wire = len(data)
        name = f"{1700000000 + n}.M{n}P1.bench,S={len(data)},W={wire}:2,{'S' if n % 3 else ''}"
        with open(os.path.join(alice, "cur", name), "wb") as f:
            f.write(data)
        t = 1700000000 + n
        os.utime(os.path.join(alice, "cur", name), (t, t))
    return os.path.join(directory, "mail")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def read_until_tagged(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    """Everything up to and with the tagged answer of ``tag`` (literals read whole)."""
    out = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        out += line
        if line.endswith(b"}\r\n"):
            size = int(line[line.rindex(b"{") + 1:-3].rstrip(b"+"))
            out += await reader.readexactly(size)
            continue
        if line.startswith(tag + b" "):
            if not line.startswith(tag + b" OK"):
                raise WrongReply(f"{line!r}")
            return bytes(out)


async def imap_fetches(port: int, fetches: int, expected: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    try:
        await reader.readuntil(b"\r\n")
        writer.write(b"l LOGIN alice secret\r\n")
        await read_until_tagged(reader, b"l")
        writer.write(b"s SELECT INBOX\r\n")
        await read_until_tagged(reader, b"s")
        times = []
        for i in range(fetches):
            tag = b"f%d" % i
            start = time.perf_counter()
            writer.write(tag + b" FETCH 1:* (FLAGS ENVELOPE)\r\n")
            data = await read_until_tagged(reader, tag)
            times.append(time.perf_counter() - start)
            got = data.count(b" FETCH (")
            if got != expected:
                raise WrongReply(f"{got} FETCH answers for {expected} messages")
        writer.write(b"o LOGOUT\r\n")
        return times
    finally:
        writer.close()


def start_dovecot(directory: str, mail_root: str) -> tuple[subprocess.Popen[str], int]:
    program = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(program):
        from common import Unavailable
        raise Unavailable("dovecot is not installed (apt-get install -y dovecot-imapd)")
    port = free_port()
    with open(os.path.join(directory, "users"), "w") as f:
        f.write("alice:{PLAIN}secret\n")
    conf = os.path.join(directory, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(DOVECOT_CONF.format(dir=directory, port=port))
    proc = subprocess.Popen([program, "-F", "-c", conf], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise Failed("dovecot did not start") from None
            time.sleep(0.05)  # (polling a port that is not up yet: nothing to wait on)


def imap_measure(case: ServerCase, args: argparse.Namespace) -> dict[str, Any]:
    mail_root = args.imap_root()
    directory = os.path.dirname(mail_root)
    if case.name == "imap-dovecot":
        proc, port = start_dovecot(directory, mail_root)
        what = "Dovecot"
        try:
            times = asyncio_run(imap_fetches(port, args.fetches, args.imap_messages))
        except (WrongReply, OSError) as e:
            raise Failed(f"{case.label}: {e}") from e
        finally:
            stop_process(proc)
    else:
        server = ServerProcess(case.label)
        code = (SAY_READY + textwrap.dedent(PIN.format(cpu=args.server_cpu))
                + "sys.argv[1:] = [" + repr(mail_root) + "]\n"
                + textwrap.dedent(case.program))
        port, what = server.start_python(code, python_env(args.allocator_env), ROOT,
                                         "{label} did not start ({words}):\n{said}")
        try:
            times = asyncio_run(imap_fetches(port, args.fetches, args.imap_messages))
            server.alive()
        except (WrongReply, OSError) as e:
            raise Failed(f"{case.label}: {e}\n{server.said()}") from e
        finally:
            server.stop()
    best = min(times)
    return {"fetch_messages_per_s": args.imap_messages / best, "fetch_ms": best * 1000,
            "fetch_ms_all": [t * 1000 for t in times], "what": what}


def report(cases: Any, results: dict[str, dict[str, Any]],
           unavailable: dict[str, str]) -> dict[str, float]:
    print_table(cases, results, unavailable, MEASURES)
    print()
    return print_ratios(GOALS, MEASURES, results)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The run of docs/performance.md:\n"
               "  python scripts/bench/mail.py --rounds 5 --json mail.json",
    )
    parser.add_argument("--quick", action="store_true", help="tiny run, for a smoke test")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best kept")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="seconds of load per server and round (default 5)")
    parser.add_argument("--clients", type=int, default=20,
                        help="client connections sending at once (default 20)")
    parser.add_argument("--imap-messages", type=int, default=10_000,
                        help="messages in the IMAP cases' Maildir (default 10,000)")
    parser.add_argument("--fetches", type=int, default=5,
                        help="FETCH 1:* (FLAGS ENVELOPE) per IMAP server and round, best "
                             "kept (default 5)")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated servers: " + ", ".join(c.name for c in SERVER_CASES))
    add_allocator_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.imap_messages, args.fetches = 1, 0.5, 500, 2
    cases = select(SERVER_CASES, OPTIONAL_SERVERS, args.only)
    title, args.allocator_env = allocator(args.allocator)
    args.server_cpu, args.client_cpu = pin_load()
    out: dict[str, Any] = machine(args)
    out.update(allocator=args.allocator, seconds=args.seconds, clients=args.clients,
               rounds=args.rounds)
    print(f"SMTP messages of 10 KiB from {args.clients} clients; {title}; {args.rounds} "
          f"rounds of {args.seconds:g} s; servers on CPU {args.server_cpu}, load on CPU "
          f"{args.client_cpu}")
    workdir = tempfile.mkdtemp(prefix="netshell-bench-mail-")
    os.chmod(workdir, 0o755)
    made: list[str] = []

    def imap_root() -> str:
        if not made:
            print(f"  (writing {args.imap_messages:,} messages for the IMAP cases ...)",
                  flush=True)
            made.append(make_maildir(workdir, args.imap_messages))
            for base, dirs, files in os.walk(made[0]):
                for name in dirs + files:
                    os.chown(os.path.join(base, name), 12345, 12345)
            os.chown(made[0], 12345, 12345)
        return made[0]

    args.imap_root = imap_root

    def one(case: ServerCase) -> dict[str, Any]:
        if case.name.startswith("imap-"):
            return imap_measure(case, args)
        return measure(case, args)

    try:
        return measure_all(out, cases, args.rounds, one, MEASURES, {}, report, args.json)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
