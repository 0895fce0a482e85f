"""Shared by the IRC server tests (no tests here): a raw IRC client on asyncio streams, and
a server protocol driven in memory over a StringTransport with a Clock.

The raw client reads lines with its own small parser (not protocols.irc.core's), so a test
sees the server's bytes as written: each line's source, command and parameters.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from netshell.testing import Clock, StringTransport
from protocols.irc.server import IRCServerFactory, IRCServerProtocol

#: seconds a read may take before the test fails (so a bug cannot hang the run)
READ_TIMEOUT = 10.0


class Line(NamedTuple):
    """One line as the server wrote it, split by hand."""

    tags: str
    source: str
    command: str
    params: list[str]
    raw: str


def split_line(raw: str) -> Line:
    rest = raw
    tags = source = ""
    if rest.startswith("@"):
        tags, rest = rest[1:].split(" ", 1)
    if rest.startswith(":"):
        source, rest = rest[1:].split(" ", 1)
    trailing = None
    if " :" in rest:
        rest, trailing = rest.split(" :", 1)
    words = rest.split(" ")
    command, params = words[0], words[1:]
    if trailing is not None:
        params.append(trailing)
    return Line(tags, source, command, params, raw)


class RawIRC:
    """A client connection driven by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.nick = "*"

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> RawIRC:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=1 << 20), READ_TIMEOUT)
        return cls(reader, writer)

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.writer.write(data + b"\r\n")

    async def read(self) -> Line:
        raw = await asyncio.wait_for(self.reader.readline(), READ_TIMEOUT)
        if not raw:
            raise EOFError("the server closed the connection")
        assert raw.endswith(b"\r\n"), raw
        return split_line(raw[:-2].decode("utf-8"))

    async def until(self, *commands: str) -> list[Line]:
        """The lines read up to and including the first whose command is one of those."""
        seen = []
        while True:
            line = await self.read()
            seen.append(line)
            if line.command in commands:
                return seen

    async def expect(self, command: str) -> Line:
        """The next line, which must be ``command``."""
        line = await self.read()
        assert line.command == command, line.raw
        return line

    async def closed(self) -> list[Line]:
        """Every line until the server closes the connection."""
        seen = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), READ_TIMEOUT)
            if not raw:
                return seen
            seen.append(split_line(raw.rstrip(b"\r\n").decode("utf-8")))

    async def register(self, nick: str, user: str = "u", realname: str = "Real Name") -> list[Line]:
        self.send(f"NICK {nick}")
        self.send(f"USER {user} 0 * :{realname}")
        lines = await self.until("376", "422")
        self.nick = nick
        return lines

    async def sync(self) -> list[Line]:
        """Every line up to the answer to a PING sent now: what the server sent before."""
        self.send("PING sync")
        lines = await self.until("PONG")
        assert lines[-1].params[-1] == "sync"
        return lines[:-1]

    async def join(self, channel: str) -> list[Line]:
        self.send(f"JOIN {channel}")
        return await self.until("366")

    def close(self) -> None:
        self.writer.close()


async def connect_registered(port: int, nick: str) -> RawIRC:
    client = await RawIRC.connect(port)
    await client.register(nick)
    return client


# ---- in memory


class Fake:
    """One server connection over a StringTransport, with the server's Clock."""

    def __init__(self, factory: IRCServerFactory, host: str = "127.0.0.1") -> None:
        from netshell.interfaces import Address

        self.factory = factory
        self.protocol = factory.build_protocol(None)
        self.transport = StringTransport(peer=Address("tcp", host, 40000))
        self.protocol.connection_made(self.transport)

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.protocol.data_received(data + b"\r\n")

    def lines(self) -> list[Line]:
        """What the server wrote since last asked."""
        data = self.transport.value().decode("utf-8")
        self.transport.clear()
        return [split_line(raw) for raw in data.split("\r\n") if raw]

    def take(self, line: str | bytes) -> list[Line]:
        self.send(line)
        return self.lines()

    def register(self, nick: str) -> list[Line]:
        self.send(f"NICK {nick}")
        self.send("USER u 0 * :Real Name")
        return self.lines()

    def lost(self) -> None:
        from netshell.errors import ConnectionDone
        from netshell.failure import Failure

        self.protocol.connection_lost(Failure(ConnectionDone()))


def memory_server(**kw: Any) -> tuple[IRCServerFactory, Clock]:
    clock = Clock()
    kw.setdefault("flood_burst", 0)
    factory = IRCServerFactory(clock=clock, reactor=clock, **kw)
    return factory, clock


def numerics(lines: list[Line]) -> list[str]:
    return [line.command for line in lines]


def by_command(lines: list[Line], command: str) -> list[Line]:
    return [line for line in lines if line.command == command]


__all__ = ["Fake", "IRCServerProtocol", "Line", "RawIRC", "by_command", "connect_registered",
           "memory_server", "numerics", "split_line"]
