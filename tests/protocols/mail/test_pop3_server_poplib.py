"""Python's poplib against the POP3 server: every verb, STLS (verified), APOP, TOP, UIDL,
the session lock, and deletes that happen only at QUIT.

poplib runs in a thread (ns.defer_to_thread) while the reactor serves.
"""

from __future__ import annotations

import hashlib
import poplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pop3_helpers import MESSAGES, USERS, client_ssl, crlf, seed, server_tls

import netshell as ns
from netshell import tls
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
    listener = pop3.serve(tmp_path, USERS, tls=server_tls(certs), login_delay=0)
    yield listener
    listener.close()


def lines_of(data: bytes) -> list[bytes]:
    return crlf(data).split(b"\r\n")[:-1]


async def test_poplib_every_verb(server: Any, box: Maildir) -> None:
    uids = [m.uid for m in box.messages()]

    def work() -> dict[str, Any]:
        p = poplib.POP3("127.0.0.1", server.port, timeout=10)
        got: dict[str, Any] = {"welcome": p.getwelcome(), "capa": p.capa()}
        p.user("alice")
        got["pass"] = p.pass_("secret")
        got["stat"] = p.stat()
        got["list"] = p.list()
        got["list 2"] = p.list(2)
        got["uidl"] = p.uidl()
        got["uidl 3"] = p.uidl(3)
        got["retr"] = [p.retr(n)[1] for n in (1, 2, 3)]
        got["top"] = p.top(2, 1)[1]
        got["top 0"] = p.top(1, 0)[1]
        got["noop"] = p.noop()
        got["dele"] = p.dele(1)
        got["stat after dele"] = p.stat()
        with pytest.raises(poplib.error_proto) as e:
            p.retr(1)
        got["retr deleted"] = e.value.args[0]
        got["rset"] = p.rset()
        got["stat after rset"] = p.stat()
        p.dele(2)
        got["quit"] = p.quit()
        return got

    got = await ns.defer_to_thread(work)
    assert got["welcome"].startswith(b"+OK ") and b"<" in got["welcome"]
    assert {"TOP", "UIDL", "USER", "RESP-CODES", "STLS", "SASL", "PIPELINING"} <= set(got["capa"])
    assert got["capa"]["SASL"] == ["PLAIN"]
    sizes = [len(crlf(m)) for m in MESSAGES]
    assert got["stat"] == (3, sum(sizes))
    assert got["list"][1] == [b"%d %d" % (n, s) for n, s in enumerate(sizes, 1)]
    assert got["list 2"] == b"+OK 2 %d" % sizes[1]
    ids = [line.split()[1] for line in got["uidl"][1]]
    assert len(set(ids)) == 3 and all(0 < len(i) <= 70 for i in ids)
    assert got["uidl 3"].split()[1:] == [b"3", ids[2]]
    assert ids == [b"%08X%08X" % (uid, box.uidvalidity) for uid in uids]
    # poplib un-stuffs: the lines come back as the messages had them
    assert got["retr"] == [lines_of(m) for m in MESSAGES]
    assert got["top"] == [b"From: b@x.test", b"Subject: two", b"", b"line 1"]
    assert got["top 0"] == [b"From: a@x.test", b"Subject: one", b""]
    assert got["dele"].startswith(b"+OK")
    assert got["stat after dele"] == (2, sizes[1] + sizes[2])
    assert got["retr deleted"].startswith(b"-ERR")
    assert got["stat after rset"] == (3, sum(sizes))
    assert got["quit"].startswith(b"+OK")
    left = box.messages()
    assert [box.read(m.uid) for m in left] == [MESSAGES[0], MESSAGES[2]]
    # retrieved and kept: marked seen for IMAP; never retrieved: untouched
    assert [m.flags for m in left] == [{"\\Seen"}, {"\\Seen"}]


async def test_poplib_stls_verifies_the_server_and_logs_in(server: Any, certs: Any) -> None:
    def work() -> tuple[bytes, tuple[int, int], bool, dict[str, list[str]]]:
        p = poplib.POP3("127.0.0.1", server.port, timeout=10)
        p.stls(context=client_ssl(certs[2]))
        secure = isinstance(p.sock, ssl.SSLSocket)
        caps = p.capa()
        with pytest.raises(poplib.error_proto):
            p._shortcmd("STLS")  # once only
        reply = p.user("alice") + p.pass_("secret")
        stat = p.stat()
        p.quit()
        return reply, stat, secure, caps

    reply, stat, secure, caps = await ns.defer_to_thread(work)
    assert secure and reply.count(b"+OK") == 2 and stat[0] == 3
    assert "STLS" not in caps  # not offered twice


async def test_poplib_pop3_ssl_on_an_implicit_tls_server(tmp_path: Path, box: Maildir,
                                                          certs: Any) -> None:
    listener = pop3.serve(tmp_path, USERS, tls=server_tls(certs), implicit_tls=True)
    try:
        def work() -> tuple[int, int]:
            p = poplib.POP3_SSL("127.0.0.1", listener.port, timeout=10,
                                context=client_ssl(certs[2]))
            p.user("alice")
            p.pass_("secret")
            stat = p.stat()
            p.quit()
            return stat

        assert (await ns.defer_to_thread(work))[0] == 3
    finally:
        await listener.close()


async def test_poplib_apop(server: Any) -> None:
    def work() -> tuple[bytes, int]:
        p = poplib.POP3("127.0.0.1", server.port, timeout=10)
        with pytest.raises(poplib.error_proto) as e:
            p.apop("alice", "wrong")
        assert e.value.args[0].startswith(b"-ERR [AUTH]")
        reply = p.apop("alice", "secret")
        count = p.stat()[0]
        p.quit()
        return reply, count

    reply, count = await ns.defer_to_thread(work)
    assert reply.startswith(b"+OK") and count == 3


async def test_apop_digest_is_over_the_banner_timestamp(server: Any) -> None:
    def work() -> bytes:
        p = poplib.POP3("127.0.0.1", server.port, timeout=10)
        stamp = p.getwelcome().split()[-1]
        digest = hashlib.md5(stamp + b"secret").hexdigest()
        reply = p._shortcmd(f"APOP alice {digest.upper()}")  # hex digits in any case
        p.quit()
        return reply

    assert (await ns.defer_to_thread(work)).startswith(b"+OK")


async def test_a_second_session_gets_in_use_until_the_first_quits(server: Any) -> None:
    def work() -> tuple[bytes, bytes]:
        first = poplib.POP3("127.0.0.1", server.port, timeout=10)
        first.user("alice")
        first.pass_("secret")
        second = poplib.POP3("127.0.0.1", server.port, timeout=10)
        second.user("alice")
        with pytest.raises(poplib.error_proto) as e:
            second.pass_("secret")
        first.quit()
        second.user("alice")  # still in AUTHORIZATION: may try again
        again = second.pass_("secret")
        second.quit()
        return e.value.args[0], again

    refused, again = await ns.defer_to_thread(work)
    assert refused.startswith(b"-ERR [IN-USE]")
    assert again.startswith(b"+OK")


async def test_wrong_passwords_and_users_get_auth_codes(server: Any) -> None:
    def work() -> list[bytes]:
        p = poplib.POP3("127.0.0.1", server.port, timeout=10)
        errors = []
        for user, password in (("alice", "nope"), ("nobody", "secret")):
            p.user(user)
            with pytest.raises(poplib.error_proto) as e:
                p.pass_(password)
            errors.append(e.value.args[0])
        p.user("bob")
        errors.append(p.pass_("hunter2 with spaces"))  # a password with spaces
        p.quit()
        return errors

    errors = await ns.defer_to_thread(work)
    assert [e[:11] for e in errors[:2]] == [b"-ERR [AUTH]"] * 2
    assert errors[2].startswith(b"+OK")
