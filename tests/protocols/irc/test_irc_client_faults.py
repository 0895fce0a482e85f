"""The client against a scripted server in this process, for what real servers will not
do on demand: say nothing, hang up at once, send lines that are not IRC or too long,
demand a PONG before welcoming, never end the MOTD."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import netshell as ns
from protocols import irc
from protocols.irc.client import IRCConnectionClosed, IRCTimeoutError

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def no_client_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test checks, the client logged no error of its own on the way."""
    yield
    errors = [r.getMessage() for r in caplog.get_records("call")
              if r.name == "netshell.irc.client" and r.levelname in ("ERROR", "CRITICAL")]
    assert errors == []

WELCOME = b":srv 001 me :Welcome\r\n:srv 005 me CHANTYPES=# :ok\r\n:srv 376 me :End\r\n"


class Scripted(ns.Protocol):
    """Answers each line the client sends with ``respond(line, self)``."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server.connections.append(self)
        if self.server.on_connect is not None:
            self.server.on_connect(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            self.server.received.append(line.decode())
            if self.server.respond is not None:
                self.server.respond(line.decode(), self)

    def connection_lost(self, reason: ns.Failure) -> None:
        self.server.lost.callback(None) if not self.server.lost.called else None


class Server:
    def __init__(
        self,
        respond: Callable[[str, Scripted], None] | None = None,
        on_connect: Callable[[Scripted], None] | None = None,
    ) -> None:
        self.respond = respond
        self.on_connect = on_connect
        self.received: list[str] = []
        self.connections: list[Scripted] = []
        self.lost: ns.Deferred[None] = ns.Deferred()
        self.listener = ns.reactor.listen_tcp(0, ns.Factory.for_protocol(Scripted, self))

    @property
    def port(self) -> int:
        return self.listener.port


def welcome_on_user(line: str, conn: Scripted) -> None:
    if line.startswith("USER"):
        conn.transport.write(WELCOME)


async def test_silent_server_times_out_and_is_hung_up_on() -> None:
    server = Server()
    with pytest.raises(IRCTimeoutError):
        await irc.connect("127.0.0.1", server.port, "me", timeout=0.3)
    await server.lost  # the client closed its side
    assert server.received[:3] == ["CAP LS 302", "NICK me", "USER me 0 * me"]
    await server.listener.close()


async def test_server_hanging_up_at_once() -> None:
    server = Server(on_connect=lambda c: c.transport.close())
    with pytest.raises(IRCConnectionClosed):
        await irc.connect("127.0.0.1", server.port, "me", timeout=5)
    await server.listener.close()


async def test_junk_and_over_long_lines_are_dropped() -> None:
    def respond(line: str, conn: Scripted) -> None:
        if line.startswith("USER"):
            conn.transport.write(
                b"\x00\x01 not irc\r\n"
                b":only-a-source\r\n"
                b"@bad tag=\r\n"
                b":srv NOTICE me :" + b"x" * 5000 + b"\r\n"
                + WELCOME
            )

    server = Server(respond)
    client = await irc.connect("127.0.0.1", server.port, "me", timeout=5, rate=None)
    assert client.registered and client.nick == "me"
    client.close()
    await server.listener.close()


async def test_ping_before_welcome_is_answered() -> None:
    def respond(line: str, conn: Scripted) -> None:
        if line.startswith("USER"):
            conn.transport.write(b"PING :cookie42\r\n")
        elif line == "PONG cookie42":
            conn.transport.write(WELCOME)

    server = Server(respond)
    client = await irc.connect("127.0.0.1", server.port, "me", timeout=5)
    assert "PONG cookie42" in server.received
    client.close()
    await server.listener.close()


async def test_no_motd_end_still_registers_on_the_next_message() -> None:
    def respond(line: str, conn: Scripted) -> None:
        if line.startswith("USER"):
            conn.transport.write(b":srv 001 me :Welcome\r\n:srv 005 me CHANTYPES=# :ok\r\n"
                                 b":srv 251 me :users\r\n:me MODE me :+i\r\n"
                                 b":bob!b@h PRIVMSG me :hi\r\n")

    server = Server(respond)
    client = await irc.connect("127.0.0.1", server.port, "me", timeout=5)
    assert client.registered
    client.close()
    await server.listener.close()


async def test_cap_unknown_to_the_server() -> None:
    def respond(line: str, conn: Scripted) -> None:
        if line.startswith("CAP"):
            conn.transport.write(b":srv 421 * CAP :Unknown command\r\n")
        if line.startswith("USER"):
            conn.transport.write(WELCOME)

    server = Server(respond)
    client = await irc.connect("127.0.0.1", server.port, "me", timeout=5)
    assert client.registered and client.caps == set()
    assert "CAP END" not in server.received
    client.close()
    await server.listener.close()
