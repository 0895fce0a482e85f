"""Shared by the IMAP server tests: a seeded Maildir root (the same messages the Dovecot
tests seed), a raw IMAP connection on asyncio streams (to send what real clients never
would), and TLS material."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from imap_dovecot import MESSAGES

from protocols.mail.maildir import Maildir

USERS = {"alice": "secret", "bob": "hunter2"}


def seed(root: Path, user: str = "alice", messages: tuple[bytes, ...] = MESSAGES,
         ) -> Maildir:
    """A Maildir for ``user`` under ``root`` with ``messages`` appended (UIDs 1...), all
    \\Seen but the last, as the Dovecot tests seed theirs."""
    box = Maildir(root / user, fsync=False)
    for n, m in enumerate(messages, 1):
        box.append(m, ["\\Seen"] if n < len(messages) else [], date=1_000_000_000 + n)
    return box


class RawIMAP:
    """An IMAP connection that sends any bytes and reads the answers line by line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, login: bool = True) -> RawIMAP:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
        raw = cls(reader, writer)
        assert (await raw.line()).startswith(b"* OK")
        if login:
            lines = await raw.cmd(b"l0 LOGIN alice secret")
            assert lines[-1].startswith(b"l0 OK"), lines
        return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def line(self) -> bytes:
        """One line without CRLF (b"" at EOF); a literal's bytes are read with it."""
        line = await asyncio.wait_for(self.reader.readline(), 20)
        m = re.search(rb"\{(\d+)\}\r\n\Z", line)
        if m:
            line += await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), 20)
            line += await self.line() + b"\r\n"
        return line.removesuffix(b"\r\n")

    async def until(self, tag: bytes) -> list[bytes]:
        """The lines up to and with the tagged answer of ``tag``."""
        lines = []
        while True:
            line = await self.line()
            if not line:
                raise ConnectionError(f"closed before {tag!r} was answered: {lines}")
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    async def cmd(self, line: bytes) -> list[bytes]:
        self.send(line + b"\r\n")
        return await self.until(line.split(b" ", 1)[0])

    async def eof(self) -> bool:
        rest = await asyncio.wait_for(self.reader.read(), 20)
        return rest == b"" or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


def server_tls(certs: tuple[bytes, bytes, bytes]) -> Any:
    from netshell import tls

    return tls.server_context(certs[0], certs[1])
