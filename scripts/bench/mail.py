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
code checked: a server that refuses a message fails the run.

Measures, per server and round (the best kept, every round's value in the JSON):

- messages accepted per second;
- the server's CPU per message (its threads' schedstat time), in microseconds.

Goals (issue 18): netshell >= 1.5x aiosmtpd and >= 2x Twisted in messages per second.
It is a measurement: it exits 0 whatever the ratios, and 1 only if a server does not
start or answers wrongly.

Usage::

    python scripts/bench/mail.py --rounds 5 --json mail.json   # docs/performance.md
    python scripts/bench/mail.py --quick                        # a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import sys
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

SERVER_CASES = [
    ServerCase("netshell", "netshell", NETSHELL, []),
    ServerCase("aiosmtpd", "aiosmtpd", AIOSMTPD, ["aiosmtpd"]),
    ServerCase("twisted", "Twisted", TWISTED, ["twisted"]),
]
OPTIONAL_SERVERS: set[str] = set()

MEASURES = {
    "messages_per_s": ("messages/s", ",.0f", True),
    "server_cpu_us_per_message": ("CPU µs/msg", ".1f", False),
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


async def reply(reader: asyncio.StreamReader, expect: bytes) -> None:
    """Read one reply (to its last line) and check its code."""
    while True:
        line = await reader.readline()
        if not line:
            raise WrongReply("the server closed the connection")
        if line[:3] != expect:
            raise WrongReply(f"expected {expect.decode()}, got {line[:200]!r}")
        if line[3:4] != b"-":
            return


async def client(port: int, body: bytes, until: float, counts: list[int], i: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reply(reader, b"220")
        writer.write(b"EHLO load.bench.test\r\n")
        await reply(reader, b"250")
        data = body + b".\r\n"
        while time.perf_counter() < until:
            writer.write(b"MAIL FROM:<a@bench.test>\r\n")
            await reply(reader, b"250")
            writer.write(b"RCPT TO:<b@bench.test>\r\n")
            await reply(reader, b"250")
            writer.write(b"DATA\r\n")
            await reply(reader, b"354")
            writer.write(data)
            await reply(reader, b"250")
            counts[i] += 1
        writer.write(b"QUIT\r\n")
        await reply(reader, b"221")
    finally:
        writer.close()


async def load(port: int, clients: int, seconds: float) -> tuple[float, int]:
    """(messages per second, messages) from ``clients`` connections for ``seconds``."""
    body = message()
    counts = [0] * clients
    start = time.perf_counter()
    await asyncio.gather(*(client(port, body, start + seconds, counts, i)
                           for i in range(clients)))
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
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated servers: " + ", ".join(c.name for c in SERVER_CASES))
    add_allocator_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    cases = select(SERVER_CASES, OPTIONAL_SERVERS, args.only)
    title, args.allocator_env = allocator(args.allocator)
    args.server_cpu, args.client_cpu = pin_load()
    out: dict[str, Any] = machine(args)
    out.update(allocator=args.allocator, seconds=args.seconds, clients=args.clients,
               rounds=args.rounds)
    print(f"SMTP messages of 10 KiB from {args.clients} clients; {title}; {args.rounds} "
          f"rounds of {args.seconds:g} s; servers on CPU {args.server_cpu}, load on CPU "
          f"{args.client_cpu}")
    return measure_all(out, cases, args.rounds, lambda case: measure(case, args), MEASURES,
                       {}, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
