"""Our POP3 client against our POP3 server: every verb, STLS and implicit TLS (verified),
AUTH PLAIN (with and without an initial response), -ERR replies as POP3ReplyError with
their response codes, calls made at once answered in order, a large message, and a
server that goes away."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pop3_helpers import MESSAGES, USERS, crlf, seed, server_tls

import netshell as ns
from netshell import tls
from netshell.testing import Clock
from protocols.mail import pop3
from protocols.mail.maildir import Maildir


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.fixture
def box(tmp_path: Path) -> Maildir:
    return seed(tmp_path)


@pytest.fixture
def server(tmp_path: Path, box: Maildir, certs: Any, reactor: Any) -> Iterator[Any]:
    users = dict(USERS, long="p" * 300)
    listener = pop3.serve(tmp_path, users, tls=server_tls(certs), login_delay=0)
    yield listener
    listener.close()


async def test_every_verb(server: Any, box: Maildir) -> None:
    client = await pop3.connect("127.0.0.1", server.port)
    assert client.timestamp is not None and client.greeting.startswith("netshell")
    caps = await client.capa()
    assert caps["SASL"] == ["PLAIN"] and "STLS" in caps and "TOP" in caps
    assert "maildrop has 3 messages" in await client.login("alice", "secret")
    sizes = [len(crlf(m)) for m in MESSAGES]
    assert await client.stat() == (3, sum(sizes))
    assert await client.list() == dict(enumerate(sizes, 1))
    assert await client.list(2) == {2: sizes[1]}
    uids = await client.uidl()
    assert uids == {n: f"{m.uid:08X}{box.uidvalidity:08X}"
                    for n, m in enumerate(box.messages(), 1)}
    assert await client.uidl(1) == {1: uids[1]}
    for n, message in enumerate(MESSAGES, 1):
        assert await client.retr(n) == crlf(message)  # un-stuffed: the dot lines come back
    assert await client.top(2, 2) == b"From: b@x.test\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\n"
    assert await client.noop() == ""
    assert "deleted" in await client.dele(3)
    with pytest.raises(pop3.POP3ReplyError) as e:
        await client.retr(3)
    assert (e.value.command, e.value.code) == ("RETR", None) and "deleted" in e.value.text
    await client.rset()
    await client.dele(1)
    assert "signing off" in await client.quit()
    assert client.closed
    assert [box.read(m.uid) for m in box.messages()] == MESSAGES[1:]


async def test_calls_made_at_once_are_answered_in_order(server: Any) -> None:
    client = await pop3.connect("127.0.0.1", server.port)
    calls: list[Any] = [client.login("alice", "secret"), client.stat(), client.retr(2),
                        client.top(3, 0), client.list(1), client.noop()]
    login, stat, two, top, one, noop = await ns.gather(*calls)
    assert "maildrop" in login and noop == ""
    assert stat[0] == 3 and two == crlf(MESSAGES[1]) and top == b"Subject: three\r\n\r\n"
    assert one == {1: len(crlf(MESSAGES[0]))}
    await client.quit()


async def test_err_replies_carry_their_response_codes(server: Any) -> None:
    first = await pop3.connect("127.0.0.1", server.port)
    await first.apop("alice", "secret")
    second = await pop3.connect("127.0.0.1", server.port)
    with pytest.raises(pop3.POP3ReplyError) as e:
        await second.login("alice", "secret")
    assert (e.value.command, e.value.code) == ("PASS", "IN-USE")
    with pytest.raises(pop3.POP3ReplyError) as e:
        await second.auth_plain("alice", "wrong")
    assert (e.value.command, e.value.code) == ("AUTH", "AUTH")
    assert str(e.value).startswith("AUTH: -ERR [AUTH] ")
    await first.quit()
    await second.login("alice", "secret")  # free now
    await second.quit()


async def test_auth_plain_with_a_long_password_goes_by_continuation(server: Any) -> None:
    client = await pop3.connect("127.0.0.1", server.port)
    assert "maildrop" in await client.auth_plain("long", "p" * 300)  # > 255 octets: "+ " first
    assert await client.stat() == (0, 0)
    await client.quit()
    client = await pop3.connect("127.0.0.1", server.port)
    await client.auth_plain("alice", "secret")
    assert (await client.stat())[0] == 3
    await client.quit()


async def test_stls_verifies_the_certificate(server: Any, certs: Any) -> None:
    client = await pop3.connect("localhost", server.port, tls="stls", ca=certs[2])
    assert client.tls
    caps = await client.capa()
    assert "STLS" not in caps
    await client.login("alice", "secret")
    assert (await client.stat())[0] == 3
    await client.quit()
    with pytest.raises(ns.TLSError):
        await pop3.connect("localhost", server.port, tls="stls")  # not in the system's store


async def test_stls_refused_by_a_server_without_tls(tmp_path: Path, box: Maildir,
                                                    certs: Any) -> None:
    listener = pop3.serve(tmp_path, USERS)
    try:
        with pytest.raises(pop3.POP3ReplyError) as e:
            await pop3.connect("localhost", listener.port, tls="stls", ca=certs[2])
        assert e.value.command == "STLS"
    finally:
        await listener.close()


async def test_implicit_tls(tmp_path: Path, box: Maildir, certs: Any) -> None:
    listener = pop3.serve(tmp_path, USERS, tls=server_tls(certs), implicit_tls=True)
    try:
        client = await pop3.connect("localhost", listener.port, tls="implicit", ca=certs[2])
        await client.login("alice", "secret")
        assert await client.retr(1) == crlf(MESSAGES[0])
        await client.quit()
    finally:
        await listener.close()


async def test_a_large_message_round_trips(tmp_path: Path, reactor: Any) -> None:
    line = b".leading dot and then some text to make a long enough line of mail\r\n"
    big = (b"Subject: big\r\n\r\n" + line * (8 * 1024 * 1024 // len(line))
           + os.urandom(64).hex().encode() + b"\r\n")
    seed(tmp_path, "carol", [big])
    listener = pop3.serve(tmp_path, {"carol": "pw"})
    try:
        client = await pop3.connect("127.0.0.1", listener.port)
        await client.login("carol", "pw")
        assert await client.list() == {1: len(big)}
        assert await client.retr(1) == big
        await client.quit()
    finally:
        await listener.close()


async def test_a_server_that_goes_away_fails_the_call(server: Any) -> None:
    client = await pop3.connect("127.0.0.1", server.port)
    await client.login("alice", "secret")
    for session in list(server.factory.sessions):
        session.transport.abort()
    with pytest.raises(pop3.POP3ConnectionLost):
        await client.stat()
    with pytest.raises(pop3.POP3ConnectionLost):
        await client.noop()  # and every call after
    with pytest.raises(ValueError):
        pop3.connect("127.0.0.1", server.port, tls="ssl")


async def test_a_reply_that_never_comes_times_out_and_drops_the_connection(reactor: Any) -> None:
    loop = asyncio.get_running_loop()
    asked: asyncio.Future[bytes] = loop.create_future()
    heard: asyncio.Future[bytes] = loop.create_future()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK mute server\r\n")
        got = await reader.readline()
        asked.set_result(got)
        while chunk := await reader.read(1024):  # until the client hangs up
            got += chunk
        heard.set_result(got)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        client = await pop3.connect("127.0.0.1", port)
        clock = Clock()
        client.reactor, client.timeout = clock, 5  # virtual time for the reply's timeout
        stat = client.stat()
        assert await asyncio.wait_for(asked, 10) == b"STAT\r\n"  # sent: its timer runs
        clock.advance(5)
        with pytest.raises(pop3.POP3Error, match="no reply within 5 s"):
            await stat
        assert await asyncio.wait_for(heard, 10) == b"STAT\r\n"  # then it hung up
    finally:
        server.close()


async def test_async_with_quits_and_an_error_inside_deletes_nothing(server: Any,
                                                                    box: Maildir) -> None:
    with pytest.raises(RuntimeError):
        async with await pop3.connect("127.0.0.1", server.port) as client:
            await client.login("alice", "secret")
            await client.dele(1)
            raise RuntimeError("changed my mind")
    assert client.closed
    async with await pop3.connect("127.0.0.1", server.port) as client:
        # the first session may still be ending on the server: IN-USE until it has
        for _ in range(100):
            try:
                await client.login("alice", "secret")
                break
            except pop3.POP3ReplyError as e:
                assert e.code == "IN-USE"
        assert (await client.stat())[0] == 3  # nothing deleted by the failed block
        await client.dele(1)
        assert "POP3ServerProtocol" in repr(next(iter(server.factory.sessions)))
    assert client.closed
    assert len(box.messages()) == 2  # QUIT at the end of the block


async def test_a_line_end_in_an_argument_is_refused_and_nothing_is_sent(
        server: Any, box: Maildir) -> None:
    client = await pop3.connect("127.0.0.1", server.port)
    with pytest.raises(ValueError, match="would end the command"):
        await client.login("alice", "secret\r\nDELE 1\r\nQUIT")
    await client.login("alice", "secret")  # the session is as it was: nothing was sent
    assert (await client.stat())[0] == 3
    await client.quit()
    assert len(box.messages()) == 3


class _Endless(ns.Protocol):
    """A hostile server: greets, then answers CAPA with lines that never end."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        transport.write(b"+OK hostile\r\n")

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"CAPA"):
            self.transport.write(b"+OK\r\n" + b"X" * 998 + b"\r\n")
            self.pump()

    def pump(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"Y" * 998 + b"\r\n" * 64)
            ns.reactor.call_soon(self.pump)


async def test_a_reply_that_never_ends_is_cut_off_at_its_limit(reactor: Any) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(_Endless))
    try:
        client = await pop3.connect("127.0.0.1", listener.port, timeout=30)
        client._reader.max_body = 1 << 20  # 1 MiB here; 256 MiB by default
        with pytest.raises(pop3.POP3ProtocolError, match="longer than 1048576 octets"):
            await client.capa()
        assert client.closed or client._protocol.transport.is_closing()
    finally:
        listener.close()
