"""Helpers for the SMTP tests: a recording deliver callable, a raw asyncio client, Maildir reads.

The raw client speaks bytes on an asyncio stream, so a test can send what no real client
would (bare LF, smuggling probes, lines too long, a BDAT chunk) and read each reply.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netshell as ns
from protocols.mail.smtp.server import Envelope

_REPLY_LINE = re.compile(rb"([0-9]{3})([ -])(.*)")


class Recorder:
    """A ``deliver`` callable that keeps every Envelope it is given; ``fail`` makes it
    raise, ``hold`` makes it answer with a Deferred the test fires."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.fail: BaseException | None = None
        self.hold = False
        self.held: list[ns.Deferred[Any]] = []
        self.called = 0
        self.arrived: asyncio.Event = asyncio.Event()

    def __call__(self, envelope: Envelope) -> Any:
        self.called += 1
        self.arrived.set()
        if self.fail is not None:
            raise self.fail
        if self.hold:
            d: ns.Deferred[Any] = ns.Deferred()
            d.add_callback(lambda _: self.envelopes.append(envelope))
            self.held.append(d)
            return d
        self.envelopes.append(envelope)
        return None


@dataclass
class RawReply:
    code: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class RawSMTP:
    """A raw client on asyncio streams: ``send(bytes)``, ``reply()``, ``cmd(line)``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, greet: bool = True) -> RawSMTP:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        client = cls(reader, writer)
        if greet:
            greeting = await client.reply()
            assert greeting.code == 220, greeting
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def reply(self, timeout: float = 10) -> RawReply:
        lines: list[str] = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError(f"closed by the server (after {lines!r})")
            m = _REPLY_LINE.match(line.rstrip(b"\r\n")) or re.match(
                rb"([0-9]{3})()()$", line.rstrip(b"\r\n"))
            assert m is not None, line
            lines.append(m.group(3).decode())
            if m.group(2) != b"-":
                return RawReply(int(m.group(1)), lines)

    async def cmd(self, line: str | bytes) -> RawReply:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return await self.reply()

    async def closed(self, timeout: float = 10) -> bytes:
        """Everything the server still says until it closes the connection (then closed
        here too)."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        finally:
            self.close()

    async def starttls(self, ca: bytes) -> None:
        ctx = ssl.create_default_context(cadata=ca.decode())
        await self.writer.start_tls(ctx, server_hostname="localhost")

    def close(self) -> None:
        self.writer.close()


async def ehlo(client: RawSMTP, name: str = "client.test") -> RawReply:
    r = await client.cmd(f"EHLO {name}")
    assert r.code == 250, r
    return r


def maildir_messages(path: Path | str) -> list[bytes]:
    """The messages delivered into the Maildir at ``path`` (new/), oldest name first."""
    new = Path(path) / "new"
    if not new.is_dir():
        return []
    return [(new / name).read_bytes() for name in sorted(os.listdir(new))]


def body_of(stored: bytes) -> bytes:
    """A stored message without the Return-Path and Received lines the server put on top."""
    lines = stored.split(b"\r\n")
    i = 0
    while i < len(lines) and (lines[i].startswith((b"Return-Path:", b"Received:", b"\t"))):
        i += 1
    return b"\r\n".join(lines[i:])
