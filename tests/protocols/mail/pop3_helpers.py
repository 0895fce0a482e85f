"""Shared by the POP3 tests: a seeded Maildir root, a raw line client on asyncio streams
(to send what real clients never would), and TLS material."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from protocols.mail.maildir import Maildir

USERS = {"alice": "secret", "bob": "hunter2 with spaces"}

#: what the seeded INBOX of alice holds, in order: a dot line, a bare-LF message, a plain one
MESSAGES = [
    b"From: a@x.test\r\nSubject: one\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n",
    b"From: b@x.test\nSubject: two\n\nline 1\nline 2\nline 3\n",
    b"Subject: three\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100,
]


def crlf(data: bytes) -> bytes:
    """``data`` with every bare LF made CRLF (what POP3 sends)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def seed(root: Path, user: str = "alice", messages: list[bytes] = MESSAGES) -> Maildir:
    """A Maildir for ``user`` under ``root`` with ``messages`` delivered, UIDs given."""
    box = Maildir(root / user)
    for m in messages:
        box.deliver(m)
    box.messages()
    return box


class RawPOP3:
    """A POP3 connection that sends any bytes and reads replies as they come."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawPOP3:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def line(self) -> bytes:
        """One reply line, without its CRLF (b"" at EOF)."""
        return (await asyncio.wait_for(self.reader.readline(), 10)).removesuffix(b"\r\n")

    async def cmd(self, line: str | bytes) -> bytes:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return await self.line()

    async def multiline(self) -> list[bytes]:
        """The lines of a multi-line body, up to the "." (still stuffed)."""
        lines = []
        while (line := await self.line()) != b".":
            assert line or not self.reader.at_eof(), "EOF inside a multi-line reply"
            lines.append(line)
        return lines

    async def login(self, user: str = "alice", password: str = "secret") -> bytes:
        assert (await self.line()).startswith(b"+OK")  # the greeting
        assert (await self.cmd(f"USER {user}")).startswith(b"+OK")
        return await self.cmd(f"PASS {password}")

    async def eof(self) -> bool:
        """Whether the server closed (reads what is left)."""
        rest = await asyncio.wait_for(self.reader.read(), 10)
        return rest == b"" or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


def client_ssl(ca: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca.decode())


def server_tls(certs: tuple[bytes, bytes, bytes]) -> Any:
    from netshell import tls

    return tls.server_context(certs[0], certs[1])
