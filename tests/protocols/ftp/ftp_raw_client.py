"""Shared by the FTP server tests (no tests here): a raw FTP client on asyncio streams.

It sends command lines exactly as a test writes them and reads replies with its own small
parser (not the core's ReplyReader: the tests check the server's bytes, not our parser), so
a test sees each reply's code and lines as the server wrote them, multi-line ones included.
Data connections are opened by hand (PASV/EPSV, or a listener for PORT/EPRT).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl as _ssl
import struct
from pathlib import Path
from typing import Any, NamedTuple

#: seconds a read may take before the test fails (so a bug cannot hang the run)
READ_TIMEOUT = 10.0


class FTPReply(NamedTuple):
    """One reply as read off the wire: its code, its lines (without CRLF), the raw bytes."""

    code: int
    lines: list[str]
    raw: bytes

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class RawFTP:
    """A control connection driven by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting: FTPReply | None = None

    @classmethod
    async def connect(
        cls,
        port: int,
        host: str = "127.0.0.1",
        *,
        ssl: _ssl.SSLContext | None = None,
        local_host: str | None = None,
        greet: bool = True,
    ) -> RawFTP:
        """Connect (``ssl``: implicit TLS) and read the greeting (unless ``greet`` is False)."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=ssl, server_hostname="localhost" if ssl else None,
            local_addr=(local_host, 0) if local_host else None, limit=1 << 20,
        ), READ_TIMEOUT)
        client = cls(reader, writer)
        if greet:
            client.greeting = await client.reply()
        return client

    def send(self, line: str | bytes) -> None:
        """Send one command line (CRLF added); bytes are sent as they are, CRLF too."""
        if isinstance(line, str):
            self.writer.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        else:
            self.writer.write(line)

    async def reply(self, timeout: float = READ_TIMEOUT) -> FTPReply:
        """Read the next reply, multi-line ones to their last line."""
        return await asyncio.wait_for(self._reply(), timeout)

    async def _reply(self) -> FTPReply:
        raw = await self.reader.readuntil(b"\r\n")
        first = raw[:-2].decode("utf-8", "surrogateescape")
        if not re.match(r"^\d{3}[ -]", first + " "):
            raise AssertionError(f"not a reply line: {first!r}")
        code = int(first[:3])
        lines = [first[4:]]
        if first[3:4] == "-":
            while True:
                more = await self.reader.readuntil(b"\r\n")
                raw += more
                text = more[:-2].decode("utf-8", "surrogateescape")
                if text.startswith(f"{code} "):
                    lines.append(text[4:])
                    break
                lines.append(text)
        return FTPReply(code, lines, raw)

    async def cmd(self, line: str | bytes) -> FTPReply:
        """Send a command and read its reply."""
        self.send(line)
        return await self.reply()

    async def login(self, user: str = "anonymous", password: str = "x@y") -> FTPReply:
        """USER and PASS; the reply to PASS (230 expected, not checked)."""
        first = await self.cmd(f"USER {user}")
        assert first.code == 331, first
        return await self.cmd(f"PASS {password}")

    async def pasv(self) -> tuple[str, int]:
        """PASV: the address the 227 reply names."""
        r = await self.cmd("PASV")
        assert r.code == 227, r
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r.lines[0])
        assert m, r
        n = [int(x) for x in m.groups()]
        return ".".join(map(str, n[:4])), n[4] * 256 + n[5]

    async def epsv(self) -> int:
        """EPSV: the port the 229 reply names."""
        r = await self.cmd("EPSV")
        assert r.code == 229, r
        m = re.search(r"\(\|\|\|(\d+)\|\)", r.lines[0])
        assert m, r
        return int(m.group(1))

    async def open_data(
        self, local_host: str | None = None, ssl: _ssl.SSLContext | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """EPSV and connect to it (from ``local_host`` if given)."""
        port = await self.epsv()
        return await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, local_addr=(local_host, 0) if local_host else None,
            ssl=ssl, server_hostname="localhost" if ssl else None, limit=1 << 20,
        ), READ_TIMEOUT)

    async def transfer_out(self, command: str) -> tuple[FTPReply, bytes, FTPReply]:
        """A listing or RETR over EPSV: (preliminary reply, the data, final reply)."""
        reader, writer = await self.open_data()
        first = await self.cmd(command)
        if first.code not in (125, 150):
            writer.close()
            return first, b"", first
        data = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
        writer.close()
        last = await self.reply()
        return first, data, last

    async def transfer_in(self, command: str, data: bytes) -> tuple[FTPReply, FTPReply]:
        """STOR/APPE/STOU over EPSV: (preliminary reply, final reply)."""
        _reader, writer = await self.open_data()
        first = await self.cmd(command)
        if first.code not in (125, 150):
            writer.close()
            return first, first
        writer.write(data)
        await writer.drain()
        writer.close()
        last = await self.reply()
        return first, last

    async def closed(self, timeout: float = READ_TIMEOUT) -> bool:
        """Wait for the server to close the connection: True when it did (EOF or reset)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return rest == b"" or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


# ---- a tree to serve, shared by the server tests


def make_tree(base: Path) -> Path:
    """A served root with text, binary, nested and oddly named files; a secret beside it."""
    root = base / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "lines.txt").write_bytes(b"one\ntwo\nthree\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "sub" / "deeper" / "deep.txt").write_bytes(b"deep\n")
    (root / 'quote"d dir').mkdir()
    (root / "spaced name.txt").write_bytes(b"spaces\n")
    (base / "secret.txt").write_bytes(b"top secret")
    return root


#: the users the server tests serve: alice may write, reader may not
USERS = {"alice": "wonderland", "reader": "pw"}


def serve_tree(root: Path, **kw: object) -> object:
    """An FTP server on ``root`` for a test (close it after): alice writable, quick timers."""
    from protocols import ftp

    options: dict[str, object] = {
        "users": {"alice": ftp.User("wonderland", writable=True), "reader": "pw"},
        "login_delay": 0.05,
        "data_timeout": 5.0,
    }
    options.update(kw)
    return ftp.serve(root, **options)  # type: ignore[arg-type]


class TransferLog(logging.Handler):
    """Collects the server's transfer records (``netshell.ftp``, ``ftp_transfer``) and lets a
    test wait for the next one: how a test knows the server has finished with a transfer
    (a client that vanished, an abort) without sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []
        self.messages: list[logging.LogRecord] = []
        self._changed = asyncio.Event()
        self._logger = logging.getLogger("netshell.ftp")

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record)
        info = getattr(record, "ftp_transfer", None)
        if info is not None:
            self.records.append(info)
            self._changed.set()

    async def wait(self, count: int = 1, timeout: float = READ_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until ``count`` transfers are logged; all logged so far."""
        async def until() -> None:
            while len(self.records) < count:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)
        return self.records

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.messages if r.levelno >= logging.WARNING]

    def __enter__(self) -> TransferLog:
        self._old_level = self._logger.level
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)


def reset_on_close(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0): how a crashed client's socket may end."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
