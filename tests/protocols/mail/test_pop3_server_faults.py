"""The POP3 server against what real clients never send: a client that drops mid-session
(nothing deleted, the lock freed), malformed and oversize lines, commands in the wrong
state, AUTH PLAIN's corners, commands injected behind STLS, the autologout timer (on a
Clock, in memory) and a flood of bad commands (only that connection closes)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pop3_helpers import USERS, RawPOP3, client_ssl, seed, server_tls

from netshell import tls
from netshell.failure import Failure
from netshell.testing import Clock, StringTransport
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
    listener = pop3.serve(tmp_path, USERS, tls=server_tls(certs), max_bad_commands=10,
                          login_delay=0)
    yield listener
    listener.close()


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


async def test_a_client_that_drops_mid_session_deletes_nothing(server: Any, box: Maildir) -> None:
    client = await RawPOP3.connect(server.port)
    assert (await client.login()).startswith(b"+OK")
    assert (await client.cmd("DELE 1")).startswith(b"+OK")
    assert (await client.cmd("DELE 2")).startswith(b"+OK")
    client.writer.transport.abort()  # gone, no QUIT
    # the lock is free again once the server saw it go: a new session gets in and sees all
    again = await RawPOP3.connect(server.port)
    # the server may see the drop after our login: try again, as a client would (each
    # round trip lets the server's loop run)
    reply = await again.login()
    for _ in range(100):
        if not reply.startswith(b"-ERR [IN-USE]"):
            break
        assert (await again.cmd("USER alice")).startswith(b"+OK")
        reply = await again.cmd("PASS secret")
    assert reply.startswith(b"+OK")
    assert (await again.cmd("STAT")).startswith(b"+OK 3 ")
    assert (await again.cmd("QUIT")).startswith(b"+OK")
    assert len(box.messages()) == 3


async def test_malformed_commands_get_err_and_the_connection_lives(server: Any) -> None:
    client = await RawPOP3.connect(server.port)
    await client.line()
    for bad in (b"", b"FROB", b"RETRIEVE 1", b"USER  alice", b"\xff\xfe", b"US\x00R a"):
        reply = await client.cmd(bad)
        assert reply.startswith(b"-ERR "), (bad, reply)
    assert (await client.cmd("STAT")).startswith(b"-ERR")  # not in AUTHORIZATION
    assert (await client.cmd("NOOP")).startswith(b"-ERR")
    assert (await client.cmd("PASS secret")).startswith(b"-ERR")  # no USER yet
    assert (await client.cmd("USER alice")).startswith(b"+OK")  # bad count reset by a good one
    assert (await client.cmd("PASS secret")).startswith(b"+OK")
    for command in ("USER alice", "APOP x y", "RETR", "RETR x", "RETR 0", "NOOP", "RETR 99",
                    "TOP 1", "TOP 1 -1", "LIST 1 2", "DELE 4"):
        if command == "NOOP":  # a good command between: the count of bad ones starts again
            assert (await client.cmd(command)) == b"+OK"
            continue
        reply = await client.cmd(command)
        assert reply.startswith(b"-ERR"), (command, reply)
    assert (await client.cmd("LIST 3")).startswith(b"+OK 3 ")
    assert (await client.cmd("quit")).startswith(b"+OK")  # verbs in any case
    assert await client.eof()


async def test_an_oversize_line_is_refused_and_the_next_command_works(server: Any) -> None:
    client = await RawPOP3.connect(server.port)
    await client.line()
    assert await client.cmd(b"USER " + b"a" * 300) == b"-ERR Line too long"
    # a line that never ends within the limit is refused once, then skipped to its end
    client.send(b"NOOP " + b"b" * 5000)
    assert await client.line() == b"-ERR Line too long"
    # the rest of that line is skipped, not taken for a command: CAPA's is the next reply
    client.send(b"b" * 100 + b" tail\r\n")
    assert (await client.cmd("CAPA")).startswith(b"+OK")
    assert b"TOP" in b" ".join(await client.multiline())
    client.close()


async def test_a_flood_of_bad_commands_closes_that_connection_only(server: Any) -> None:
    bystander = await RawPOP3.connect(server.port)
    assert (await bystander.login()).startswith(b"+OK")
    client = await RawPOP3.connect(server.port)
    await client.line()
    client.send(b"BOGUS\r\n" * 12)
    replies = [await client.line() for _ in range(10)]
    assert all(r.startswith(b"-ERR") for r in replies)
    assert b"too many bad commands" in replies[-1]
    assert await client.eof()
    assert (await bystander.cmd("STAT")).startswith(b"+OK 3 ")
    bystander.close()


async def test_three_failed_logins_close_the_connection(server: Any) -> None:
    client = await RawPOP3.connect(server.port)
    await client.line()
    for _ in range(3):
        await client.cmd("USER alice")
        reply = await client.cmd("PASS wrong")
        assert reply.startswith(b"-ERR [AUTH]")
    assert b"too many" in reply
    assert await client.eof()


async def test_pipelined_commands_are_answered_in_order(server: Any) -> None:
    client = await RawPOP3.connect(server.port)
    await client.line()
    client.send(b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST 2\r\nDELE 2\r\nRSET\r\nNOOP\r\n")
    replies = [await client.line() for _ in range(7)]
    assert all(r.startswith(b"+OK") for r in replies), replies
    assert replies[2].startswith(b"+OK 3 ") and replies[3].startswith(b"+OK 2 ")
    client.close()


async def test_auth_plain_initial_response_continuation_cancel_and_bad_base64(
    server: Any,
) -> None:
    client = await RawPOP3.connect(server.port)
    await client.line()
    assert await client.cmd("AUTH") == b"+OK"
    assert await client.multiline() == [b"PLAIN"]
    assert (await client.cmd("AUTH CRAM-MD5")).startswith(b"-ERR")
    assert await client.cmd("AUTH PLAIN") == b"+ "
    assert await client.cmd("*") == b"-ERR AUTH cancelled"
    assert await client.cmd("AUTH PLAIN") == b"+ "
    assert (await client.cmd("not base64!")).startswith(b"-ERR")
    assert (await client.cmd(f"AUTH PLAIN {plain('alice', 'bad')}")).startswith(b"-ERR [AUTH]")
    assert (await client.cmd(f"AUTH PLAIN {plain('alice', 'secret', 'bob')}")).startswith(
        b"-ERR [AUTH]")  # no acting as someone else
    assert await client.cmd("AUTH PLAIN") == b"+ "
    assert (await client.cmd(plain("alice", "secret"))).startswith(b"+OK")
    assert (await client.cmd("STAT")).startswith(b"+OK 3")
    client.close()


async def test_commands_sent_with_stls_in_clear_are_dropped(server: Any, certs: Any) -> None:
    client = await RawPOP3.connect(server.port)
    await client.line()
    client.send(b"STLS\r\nUSER alice\r\n")  # an injected USER, in clear behind STLS
    assert (await client.line()).startswith(b"+OK")
    await client.writer.start_tls(client_ssl(certs[2]), server_hostname="localhost")
    assert (await client.cmd("PASS secret")) == b"-ERR Send USER first"
    assert (await client.cmd("STLS")).startswith(b"-ERR")
    assert (await client.cmd("USER alice")).startswith(b"+OK")
    assert (await client.cmd("PASS secret")).startswith(b"+OK")
    client.close()


async def test_require_tls_refuses_plaintext_logins(tmp_path: Path, box: Maildir,
                                                    certs: Any) -> None:
    listener = pop3.serve(tmp_path, USERS, tls=server_tls(certs), require_tls=True)
    try:
        client = await RawPOP3.connect(listener.port)
        await client.line()
        assert (await client.cmd("CAPA")).startswith(b"+OK")
        caps = await client.multiline()
        assert b"STLS" in caps and b"USER" not in caps
        assert (await client.cmd("USER alice")).startswith(b"-ERR [AUTH]")
        assert (await client.cmd(f"AUTH PLAIN {plain('alice', 'secret')}")).startswith(
            b"-ERR [AUTH]")
        client.close()
    finally:
        await listener.close()
    with pytest.raises(ValueError):
        pop3.serve(tmp_path, USERS, require_tls=True)


def test_the_autologout_timer_ends_an_idle_session_without_update(tmp_path: Path) -> None:
    box = seed(tmp_path)
    clock = Clock()
    factory = pop3.POP3ServerFactory(tmp_path, USERS, idle_timeout=600, reactor=clock)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"USER alice\r\nPASS secret\r\nDELE 1\r\n")
    clock.advance(599)
    protocol.data_received(b"NOOP\r\n")  # activity: the timer starts again
    clock.advance(599)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.value().endswith(b"-ERR Autologout; idle for too long\r\n")
    assert transport.disconnecting
    protocol.connection_lost(Failure(ConnectionResetError()))
    assert len(box.messages()) == 3  # DELE without QUIT: nothing removed
    box.lock_session().release()  # and the lock went with the session


def test_a_store_failure_at_login_is_a_sys_temp_error(tmp_path: Path) -> None:
    (tmp_path / "alice").write_bytes(b"not a folder")
    factory = pop3.POP3ServerFactory(tmp_path, USERS, reactor=Clock())
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"USER alice\r\nPASS secret\r\n")
    assert transport.value().endswith(b"-ERR [SYS/TEMP] Cannot open the mailbox\r\n")


def test_retr_sends_a_chunk_at_a_time_and_later_commands_wait_for_it(tmp_path: Path) -> None:
    line = b".a line that starts with a dot, to be stuffed\n"
    big = b"Subject: big\n\n" + line * 40_000  # ~1.8 MB, LF lines
    seed(tmp_path, "carol", [big])
    factory = pop3.POP3ServerFactory(tmp_path, {"carol": "pw"}, reactor=Clock())
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"USER carol\r\nPASS pw\r\n")
    transport.clear()
    protocol.data_received(b"RETR 1\r\nNOOP\r\n")  # pipelined: NOOP's reply after the body
    assert transport.value().startswith(b"+OK ") and transport.value().count(b"\r\n") == 1
    producer = transport.producer
    assert producer is not None and transport.streaming is False
    sent = [transport.value()]
    transport.clear()
    while transport.producer is not None:
        producer.resume_producing()  # the transport asks for one more chunk
        assert len(transport.value()) <= 2 * producer.CHUNK + 16
        sent.append(transport.value())
        transport.clear()
    wire = b"".join(sent)
    body = wire.split(b"\r\n", 1)[1]
    assert body.endswith(b"\r\n.\r\n+OK\r\n")  # the message, its end, then NOOP's reply
    assert body[: -len(b".\r\n+OK\r\n")] == pop3.stuff(big)[: -len(b".\r\n")]
    protocol.connection_lost(Failure(ConnectionResetError()))


async def test_a_failed_stls_handshake_closes_that_connection_only(server: Any) -> None:
    bystander = await RawPOP3.connect(server.port)
    assert (await bystander.login()).startswith(b"+OK")
    client = await RawPOP3.connect(server.port)
    await client.line()
    assert (await client.cmd("STLS")).startswith(b"+OK")
    client.send(b"this is no TLS ClientHello\r\n" * 10)
    assert await client.eof()
    assert (await bystander.cmd("STAT")).startswith(b"+OK 3 ")
    bystander.close()


async def test_a_client_gone_in_the_middle_of_a_big_retr_changes_nothing(
    tmp_path: Path, reactor: Any
) -> None:
    big = b"Subject: big\r\n\r\n" + b"0123456789" * 1_000_000 + b"\r\n"
    box = seed(tmp_path, "carol", [big, b"Subject: small\r\n\r\n"])
    listener = pop3.serve(tmp_path, {"carol": "pw"})
    try:
        client = await RawPOP3.connect(listener.port)
        assert (await client.login("carol", "pw")).startswith(b"+OK")
        assert (await client.cmd("DELE 2")).startswith(b"+OK")
        assert (await client.cmd("RETR 1")).startswith(b"+OK")
        assert await client.reader.readexactly(100_000)  # part of it, then gone
        client.writer.transport.abort()
        again = await RawPOP3.connect(listener.port)
        reply = await again.login("carol", "pw")
        for _ in range(100):  # until the server has seen the drop (each try a round trip)
            if not reply.startswith(b"-ERR [IN-USE]"):
                break
            assert (await again.cmd("USER carol")).startswith(b"+OK")
            reply = await again.cmd("PASS pw")
        assert reply.startswith(b"+OK")
        assert (await again.cmd("STAT")).startswith(b"+OK 2 ")
        again.close()
        assert len(box.messages()) == 2
    finally:
        await listener.close()


def test_top_streams_too_and_a_line_longer_than_a_chunk_is_not_cut(tmp_path: Path) -> None:
    long_header = b"X-Long: " + b"h" * 600_000 + b"\r\n"  # more than two chunks
    message = b"Subject: long\r\n" + long_header + b"\r\n" + b"body line\r\n" * 10
    seed(tmp_path, "carol", [message])
    factory = pop3.POP3ServerFactory(tmp_path, {"carol": "pw"}, reactor=Clock())
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"USER carol\r\nPASS pw\r\n")
    transport.clear()
    protocol.data_received(b"TOP 1 2\r\nNOOP\r\n")
    while transport.producer is not None:
        transport.producer.resume_producing()
    head, _, rest = transport.value().partition(b"\r\n")
    assert head == b"+OK"
    wanted = b"Subject: long\r\n" + long_header + b"\r\n" + b"body line\r\n" * 2
    assert rest == wanted + b".\r\n+OK\r\n"
    protocol.connection_lost(Failure(ConnectionResetError()))


def test_a_failed_login_is_answered_late_and_what_follows_waits(tmp_path: Path) -> None:
    seed(tmp_path)
    clock = Clock()
    factory = pop3.POP3ServerFactory(tmp_path, USERS, login_delay=1.0, reactor=clock)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    transport.clear()
    protocol.data_received(b"USER alice\r\nPASS guess\r\nUSER alice\r\nPASS secret\r\n")
    assert transport.value() == b"+OK Send PASS\r\n"  # the failure not told yet
    clock.advance(0.99)
    assert transport.value() == b"+OK Send PASS\r\n"
    clock.advance(0.01)
    lines = transport.value().split(b"\r\n")
    assert lines[1] == b"-ERR [AUTH] Authentication failed"
    assert lines[2] == b"+OK Send PASS" and lines[3].startswith(b"+OK alice's maildrop")
    protocol.connection_lost(Failure(ConnectionResetError()))
    assert all(not c.active() for c in clock.calls)  # no timer left behind


async def test_a_message_another_program_removed_gets_err_and_the_session_goes_on(
        server: Any, box: Maildir) -> None:
    client = await RawPOP3.connect(server.port)
    assert (await client.login()).startswith(b"+OK")
    assert (await client.cmd("DELE 3")).startswith(b"+OK")
    first, second = box.messages()[:2]
    Maildir(box.path).remove([first.uid, second.uid])  # another program, mid-session
    for command in ("RETR 1", "TOP 2 0"):
        reply = await client.cmd(command)
        assert reply.startswith(b"-ERR [SYS/TEMP] "), (command, reply)
    assert (await client.cmd("NOOP")).startswith(b"+OK")  # the session lives
    assert (await client.cmd("DELE 2")).startswith(b"+OK")
    # UPDATE: 2 (gone already) and 3 are both gone now: that is success
    assert (await client.cmd("QUIT")).startswith(b"+OK")
    assert box.messages() == []
