"""Regression tests for the FTP client review's findings (issue 14): a failing upload
source, transfers shorter or longer than the size told, an error reply during a transfer,
replies out of step, listings with bad lines, a stalled download's timeout, and polish.

They use the scripted fake server of ``test_ftp_client_fake`` (with quirks added here by
subclassing it) and, where the server's side matters, our own server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from protocols import ftp
from tests.protocols.ftp.test_ftp_client_fake import FakeFTP, FakeServer

pytestmark = pytest.mark.timeout(30)


class Quirky(FakeServer):
    """The fake server with its protocol replaced by ``protocol`` (a FakeFTP subclass)."""

    def __init__(self, protocol: type[FakeFTP], files: dict[str, bytes] | None = None,
                 **quirks: Any) -> None:
        super().__init__(files, **quirks)
        self.listener.close()
        self.listener = ns.reactor.listen_tcp(0, ns.Factory.for_protocol(protocol, self))


class Boom:
    """A file whose read() fails after ``good`` pieces."""

    def __init__(self, good: int = 3) -> None:
        self.good = good
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > self.good:
            raise OSError("read failed (test)")
        return b"z" * 65536


# ---- 1. an upload whose local source fails partway


async def test_a_failing_source_leaves_no_file_on_our_server(tmp_path: Path) -> None:
    server = ftp.serve(str(tmp_path), writable=True)
    try:
        client = await ftp.connect("127.0.0.1", server.port)
        with pytest.raises(OSError, match="read failed"):
            await client.store("boom.bin", Boom())
        assert (await client.noop()).code == 200  # in step afterwards
        await client.quit()
        assert os.listdir(tmp_path) == []
    finally:
        await server.close()


async def test_a_failing_source_resets_the_data_connection_and_sends_abor() -> None:
    class Watch(FakeFTP):
        async def _store(self, name: str, append: bool) -> None:
            self.reply(150, "send it")
            data = await self._data()
            reasons: list[ns.Failure] = []
            lost = data.connection_lost

            def noted(reason: ns.Failure) -> None:
                reasons.append(reason)
                lost(reason)

            data.connection_lost = noted  # type: ignore[method-assign]
            await data.lost
            self.server.reset = not reasons[0].check(ns.ConnectionDone)
            self.reply(426, "aborted")

    server = Quirky(Watch)
    client = await ftp.connect("127.0.0.1", server.port)
    with pytest.raises(OSError, match="read failed"):
        await client.store("boom.bin", Boom())
    assert server.reset  # type: ignore[attr-defined]
    assert "ABOR" in server.verbs()[server.verbs().index("STOR"):]
    assert await client.pwd() == "/"
    await client.quit()
