"""Shared by the server tests (no tests here): a raw HTTP client on asyncio streams.

It sends bytes exactly as a test writes them and reads answers one at a time with the
framing they declare, so a test sees what the server wrote: pipelined answers in order,
an interim 100, the headers as sent, where the connection ends.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from typing import Any, NamedTuple

from protocols.http import Headers

#: seconds a read may take before the test fails (so a bug cannot hang the run)
READ_TIMEOUT = 10.0


class Answer(NamedTuple):
    """One response as read off the wire."""

    version: str
    status: int
    reason: str
    headers: Headers
    body: bytes
    head: bytes  # the status line and header fields, as sent


class RawClient:
    """A connection to a server, driven by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, host: str = "127.0.0.1", ssl: _ssl.SSLContext | None = None
    ) -> RawClient:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl, server_hostname="localhost" if ssl else None, limit=1 << 24
        )
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self, method: str = "GET") -> Answer:
        """Read the next response (``method`` says whether it has a body: HEAD has none)."""
        return await asyncio.wait_for(self._answer(method), READ_TIMEOUT)

    async def _answer(self, method: str) -> Answer:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        headers = Headers()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.add(name, value.strip())
        status = int(code)
        if method == "HEAD" or status < 200 or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await self.reader.read()  # close-delimited
        return Answer(version, status, reason, headers, body, head)

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers from our server
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            assert await self.reader.readexactly(2) == b"\r\n"

    async def rest(self) -> bytes:
        """Everything until the server closes the connection (a reset counts as a close)."""

        async def read_all() -> bytes:
            chunks = []
            try:
                while chunk := await self.reader.read(65536):
                    chunks.append(chunk)
            except ConnectionResetError:
                pass
            return b"".join(chunks)

        return await asyncio.wait_for(read_all(), READ_TIMEOUT)

    async def read_raw(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), READ_TIMEOUT)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        transport: Any = self.writer.transport
        transport.abort()


async def exchange(port: int, data: bytes, method: str = "GET") -> Answer:
    """Send ``data`` on a new connection and read one answer; the connection is closed."""
    client = await RawClient.connect(port)
    try:
        client.send(data)
        return await client.answer(method)
    finally:
        client.close()


def get_request(path: str = "/", *extra: str, version: str = "1.1") -> bytes:
    """A GET request with a Host header and ``extra`` header lines."""
    lines = [f"GET {path} HTTP/{version}", "Host: test", *extra, "", ""]
    return "\r\n".join(lines).encode()
