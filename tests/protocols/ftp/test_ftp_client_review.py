"""Regression tests for the FTP client review's findings (issue 14): a failing upload
source, transfers shorter or longer than the size told, an error reply during a transfer,
replies out of step, listings with bad lines, a stalled download's timeout, and polish.

They use the scripted fake server of ``test_ftp_client_fake`` (with quirks added here by
subclassing it) and, where the server's side matters, our own server.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from protocols import ftp
from protocols.ftp import client as ftp_client
from protocols.ftp.core import format_mdtm
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


# ---- 2. a transfer shorter or longer than the size told


class Miscounting(FakeFTP):
    """RETR sends ``server.short`` bytes fewer (once) or ``server.extra`` bytes more, then
    226 as if all were well."""

    async def ftp_RETR(self, arg: str) -> None:
        content = self.server.files[arg]
        rest, self.rest = self.rest, 0
        body = content[rest:]
        self.reply(150, f"sending {arg} ({len(body)} bytes)")
        data = await self._data()
        short = getattr(self.server, "short", 0)
        if short:
            self.server.short = 0
            body = body[:-short]
        body += b"x" * getattr(self.server, "extra", 0)
        data.transport.write(body)
        data.transport.close()
        await data.lost
        self.reply(226, "sent")


async def test_a_short_binary_transfer_fails_with_the_counts() -> None:
    server = Quirky(Miscounting, {"f.bin": b"a" * 100_000})
    server.short = 50_000  # type: ignore[attr-defined]
    client = await ftp.connect("127.0.0.1", server.port)
    with pytest.raises(ftp_client.FTPTransferIncomplete) as info:
        await client.retrieve("f.bin", lambda data: None)  # the 150's "(N bytes)" told it
    assert "received 50,000 of 100,000 bytes" in str(info.value)
    assert isinstance(info.value, ftp_client.FTPDataConnectionError)
    assert (info.value.expected, info.value.received) == (100_000, 50_000)
    assert "SIZE" not in server.verbs()
    assert len(await client.retrieve("f.bin")) == 100_000  # in step
    await client.quit()


async def test_a_longer_binary_transfer_is_an_error() -> None:
    server = Quirky(Miscounting, {"f.bin": b"a" * 1000})
    server.extra = 10  # type: ignore[attr-defined]
    client = await ftp.connect("127.0.0.1", server.port)
    with pytest.raises(ftp.FTPProtocolError, match="1,010 bytes, more than the 1,000"):
        await client.retrieve("f.bin", size=1000)
    await client.quit()


async def test_download_resumes_a_short_transfer_and_asks_size_once(tmp_path: Path) -> None:
    content = os.urandom(200_000)
    server = Quirky(Miscounting, {"f.bin": content})
    server.short = 80_000  # type: ignore[attr-defined]
    got = await ftp_client.download(f"ftp://127.0.0.1:{server.port}/f.bin", tmp_path)
    assert got.read_bytes() == content
    assert "REST 120000" in server.commands
    verbs = server.verbs()
    assert verbs.count("USER") == 2 and verbs.count("SIZE") == 2  # once per attempt


async def test_a_short_download_on_one_connection_is_not_kept_as_done(tmp_path: Path) -> None:
    server = Quirky(Miscounting, {"f.bin": b"b" * 10_000})
    server.short = 1  # type: ignore[attr-defined]
    client = await ftp.connect("127.0.0.1", server.port)
    with pytest.raises(ftp_client.FTPTransferIncomplete):
        await client.download("f.bin", tmp_path / "f.bin", progress=lambda done, total: None)
    assert server.verbs().count("SIZE") == 1
    assert (tmp_path / "f.bin").stat().st_size == 9_999
    await client.quit()


# ---- 3. a final reply while the data connection stays open


class FailsHalfway(FakeFTP):
    """RETR: 150, some data, then ``server.final`` on the control connection while the
    data connection stays open; with ``server.rest`` after the reply (a 226 first)."""

    async def ftp_RETR(self, arg: str) -> None:
        content = self.server.files[arg]
        self.reply(150, "sending")
        data = await self._data()
        code, text = self.server.final  # type: ignore[attr-defined]
        if code == 226:
            self.reply(code, text)
            await ns.sleep(0)
            data.transport.write(content)
            data.transport.close()
            return
        data.transport.write(content[:1000])
        self.reply(code, text)
        self.server.replied.callback(None)  # type: ignore[attr-defined]
        await data.lost


async def test_an_error_reply_during_a_transfer_fails_it_at_once() -> None:
    server = Quirky(FailsHalfway, {"f.bin": b"c" * 5000})
    server.final = (550, "Failed halfway: disk error")  # type: ignore[attr-defined]
    server.replied = ns.Deferred()  # type: ignore[attr-defined]
    # A timeout longer than the test's: only acting on the reply at once can pass.
    client = await ftp.connect("127.0.0.1", server.port, timeout=60)
    with pytest.raises(ftp.FTPPermanentError) as info:
        await client.retrieve("f.bin").add_timeout(10)
    assert info.value.code == 550 and "disk error" in str(info.value)
    assert await client.pwd() == "/"  # in step
    await client.quit()


async def test_a_226_before_the_data_ends_waits_for_the_data() -> None:
    server = Quirky(FailsHalfway, {"f.bin": os.urandom(300_000)})
    server.final = (226, "done early")  # type: ignore[attr-defined]
    client = await ftp.connect("127.0.0.1", server.port)
    assert await client.retrieve("f.bin") == server.files["f.bin"]
    assert await client.pwd() == "/"
    await client.quit()


# ---- 7. a stalled download: one timeout, and the right error


class Stalls(FakeFTP):
    """RETR: half the data, then nothing (no reply either) until ABOR."""

    async def ftp_RETR(self, arg: str) -> None:
        content = self.server.files[arg]
        self.reply(150, "sending")
        data = await self._data()
        self.transferring = data
        data.transport.write(content[: len(content) // 2])
        await data.lost  # abort_transfer (ABOR) answers 426 and 226


async def test_a_stalled_download_fails_after_one_timeout_saying_nothing_moved() -> None:
    server = Quirky(Stalls, {"big.bin": os.urandom(100_000)})
    client = await ftp.connect("127.0.0.1", server.port, timeout=0.5)
    with pytest.raises(ftp_client.FTPTimeoutError) as info:
        await client.retrieve("big.bin", lambda data: None)
    # The watchdog's error at once, not a second timeout waiting for 226 ("no reply")
    assert "nothing moved for 0.5 seconds" in str(info.value)
    client.timeout = 10
    assert (await client.noop()).code == 200  # in step: ABOR's replies were read first
    assert (await client.pwd()) == "/"
    await client.quit()


# ---- 4. replies out of step


class Chatty(FakeFTP):
    """Says ``server.extra`` after its reply to ``server.after`` (a verb); keeps itself in
    ``server.sessions`` for the tests to make it speak unasked."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.server.__dict__.setdefault("sessions", []).append(self)

    def note_extra(self, verb: str) -> None:
        if getattr(self.server, "after", None) == verb:
            self.reply(*self.server.extra)  # type: ignore[attr-defined]

    def ftp_PASS(self, arg: str) -> None:
        super().ftp_PASS(arg)
        self.note_extra("PASS")

    def ftp_TYPE(self, arg: str) -> None:
        super().ftp_TYPE(arg)
        self.note_extra("TYPE")


async def test_an_extra_reply_after_login_is_caught_not_shifted_along() -> None:
    server = Quirky(Chatty)
    server.after, server.extra = "PASS", (200, "surprise")  # type: ignore[attr-defined]
    with pytest.raises(ftp.FTPProtocolError, match=r"unexpected reply 200 to .*out of step"):
        await ftp.connect("127.0.0.1", server.port)


async def test_a_reply_of_another_command_closes_the_session() -> None:
    server = Quirky(Chatty, {"f.bin": b"data"})
    client = await ftp.connect("127.0.0.1", server.port)
    server.after, server.extra = "TYPE", (257, '"/" stray')  # type: ignore[attr-defined]
    with pytest.raises(ftp.FTPProtocolError, match="unexpected reply 257 to"):
        await client.retrieve("f.bin", ascii=True)  # TYPE A, then EPSV gets the 257
    await client._control.when_lost()
    with pytest.raises(ftp_client.FTPConnectionClosed, match="out of step"):
        await client.pwd()


async def test_an_unsolicited_reply_closes_the_session_with_a_clear_reason() -> None:
    server = Quirky(Chatty)
    client = await ftp.connect("127.0.0.1", server.port)
    server.sessions[0].reply(200, "surprise")  # type: ignore[attr-defined]
    await client._control.when_lost()
    with pytest.raises(ftp_client.FTPConnectionClosed, match=r"out of step.*200"):
        await client.pwd()


async def test_an_unsolicited_421_closes_the_session_with_its_text() -> None:
    server = Quirky(Chatty)
    client = await ftp.connect("127.0.0.1", server.port)
    server.sessions[0].reply(421, "shutting down")  # type: ignore[attr-defined]
    await client._control.when_lost()
    with pytest.raises(ftp_client.FTPConnectionClosed, match="421 shutting down") as info:
        await client.pwd()
    assert info.value.code == 421


# ---- 6. listings with lines or facts that cannot be read


class Lister(FakeFTP):
    """MLSD sends ``server.mlsd_text`` (or is refused with ``server.refuse_mlsd``)."""

    async def ftp_MLSD(self, arg: str) -> None:
        refused = getattr(self.server, "refuse_mlsd", None)
        if refused:
            self.reply(refused, "MLSD not understood")
            return
        self.reply(150, "here it comes")
        data = await self._data()
        data.transport.write(self.server.mlsd_text)  # type: ignore[attr-defined]
        data.transport.close()
        await data.lost
        self.reply(226, "listed")


async def test_bad_mlsd_facts_and_lines_do_not_fail_the_listing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Quirky(Lister)
    server.mlsd_text = (  # type: ignore[attr-defined]
        b"type=dir;modify=bogus; d\r\n"
        b"type=file;size=abc; a\r\n"
        b"type=file;size=-3;modify=20240102100000; b\r\n"
        b"type=file;size=5 no separator\r\n"
        b"type=file;size=7; good\r\n"
    )
    client = await ftp.connect("127.0.0.1", server.port)
    with caplog.at_level("WARNING", logger="netshell.ftp.client"):
        entries = await client.list()
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == ["a", "b", "d", "good"]
    assert by_name["d"].is_dir and by_name["d"].mtime is None
    assert by_name["a"].size == -1 and by_name["b"].size == -1
    assert by_name["b"].mtime is not None and by_name["good"].size == 7
    assert "1 line of the listing" in caplog.text and "no separator" in caplog.text
    await client.quit()


async def test_unreadable_list_lines_are_reported_and_long_iso_lines_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer(
        mlst=False,
        list_text=(
            b"total 3\r\n"
            b"-rw-r--r-- 1 user group 5 2024-01-02 10:00 iso.txt\r\n"
            b"-rw-r--r-- 1 user group 6 2024-01-02 10:00:05.000000000 +0100 full.txt\r\n"
            b"what is this\r\n"
            b"nor this\r\n"
        ),
    )
    client = await ftp.connect("127.0.0.1", server.port)
    with caplog.at_level("WARNING", logger="netshell.ftp.client"):
        entries = await client.list()
    assert [(e.name, e.size) for e in entries] == [("iso.txt", 5), ("full.txt", 6)]
    assert format_mdtm(entries[0].mtime) == "20240102100000"
    assert format_mdtm(entries[1].mtime) == "20240102090005"
    assert "2 lines of the listing" in caplog.text and "what is this" in caplog.text
    await client.quit()


async def test_mlsd_refused_falls_back_to_list_for_the_session() -> None:
    server = Quirky(Lister, list_text=b"-rw-r--r-- 1 u g 3 Jan 01  2024 x.txt\r\n")
    server.refuse_mlsd = 500  # type: ignore[attr-defined]
    client = await ftp.connect("127.0.0.1", server.port)
    assert [e.name for e in await client.list()] == ["x.txt"]
    assert [e.name for e in await client.list()] == ["x.txt"]
    assert server.verbs().count("MLSD") == 1 and server.verbs().count("LIST") == 2
    await client.quit()


# ---- polish


def test_owner_and_group_default_to_empty_and_list_line_keeps_its_columns() -> None:
    from protocols.ftp.core import FileInfo, list_line, parse_list_line, parse_mlsx_line

    assert (FileInfo("x").owner, FileInfo("x").group) == ("", "")
    dos = parse_list_line("12-05-26  08:17PM       <DIR>          pub")
    assert dos is not None and (dos.owner, dos.group) == ("", "")
    mlsd = parse_mlsx_line("type=file;size=1; a")
    assert (mlsd.owner, mlsd.group) == ("", "")
    line = list_line(FileInfo("a b.txt", size=5, mtime=0.0), now=0.0)
    back = parse_list_line(line, now=0.0)
    assert back is not None and (back.name, back.size, back.owner) == ("a b.txt", 5, "-"), line


def test_a_pasv_reply_with_port_0_is_a_protocol_error() -> None:
    from protocols.ftp.core import FTPProtocolError, parse_pasv

    with pytest.raises(FTPProtocolError, match="port 0"):
        parse_pasv("Entering Passive Mode (127,0,0,1,0,0)")


async def test_a_failed_tls_start_logs_no_info_line_above_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class NoTLS(FakeFTP):
        def ftp_AUTH(self, arg: str) -> None:
            self.reply(234, "go ahead")
            self.transport.write(b"this is not TLS\r\n")
            self.transport.close()

    server = Quirky(NoTLS)
    logged = caplog.at_level("INFO", logger="netshell.ftp.client")
    with logged, pytest.raises(Exception) as info:
        await ftp.connect("127.0.0.1", server.port, tls=True, verify=False)
    assert isinstance(info.value, ns.ConnectionClosed | ns.TLSError | ftp.FTPError), info.value
    assert not [r for r in caplog.records if r.levelname == "INFO" and "ended" in r.message]


async def test_an_error_reply_during_an_upload_fails_it_at_once() -> None:
    class Full(FakeFTP):
        async def _store(self, name: str, append: bool) -> None:
            self.reply(150, "send it")
            data = await self._data()
            data.transport.pause_reading()  # reads nothing: the client's sending stalls
            self.reply(452, "Insufficient storage space")  # the data connection left open

    server = Quirky(Full)
    client = await ftp.connect("127.0.0.1", server.port, timeout=60)
    source = io.BytesIO(os.urandom(32 * 1024 * 1024))  # sent in pieces (no sendfile)
    with pytest.raises(ftp.FTPTemporaryError) as info:
        await client.store("big.bin", source).add_timeout(10)
    assert info.value.code == 452 and "storage" in str(info.value)
    assert await client.pwd() == "/"
    await client.quit()
