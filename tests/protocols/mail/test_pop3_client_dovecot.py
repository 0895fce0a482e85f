"""Our POP3 client against Dovecot (a subprocess, `dovecot -F` with a temp config): every
verb over a Maildir our store seeded (and Dovecot's deletions seen by our store after), STLS
verified with AUTH PLAIN, APOP, and Dovecot's [AUTH] and [IN-USE] codes as POP3ReplyError."""

from __future__ import annotations

from typing import Any

import pytest
from pop3_dovecot import dovecot_server
from pop3_helpers import MESSAGES, crlf

import netshell as ns
from protocols.mail import pop3


async def connect(port: int, **kw: Any) -> pop3.POP3Client:
    """pop3.connect, tried again at once while Dovecot is not listening yet."""
    for _ in range(200):
        try:
            return await pop3.connect("127.0.0.1" if "tls" not in kw else "localhost", port,
                                      **kw)
        except ns.ConnectionRefused:
            continue
    raise AssertionError(f"Dovecot never listened on {port}")


async def test_every_verb_against_dovecot() -> None:
    async with dovecot_server() as dovecot:
        client = await connect(dovecot.port)
        assert client.greeting.startswith("Dovecot")
        caps = await client.capa()
        assert {"TOP", "UIDL", "USER", "STLS", "SASL", "RESP-CODES"} <= set(caps)
        await client.login("alice", "secret")
        sizes = [len(crlf(m)) for m in MESSAGES]
        assert await client.stat() == (3, sum(sizes))
        assert await client.list() == dict(enumerate(sizes, 1))
        assert await client.list(3) == {3: sizes[2]}
        uids = await client.uidl()
        assert sorted(uids) == [1, 2, 3] and len(set(uids.values())) == 3
        assert await client.uidl(2) == {2: uids[2]}
        for n, message in enumerate(MESSAGES, 1):
            assert await client.retr(n) == crlf(message)  # Dovecot stuffs, we un-stuff
        assert await client.top(2, 1) == b"From: b@x.test\r\nSubject: two\r\n\r\nline 1\r\n"
        await client.noop()
        await client.dele(1)
        with pytest.raises(pop3.POP3ReplyError) as e:
            await client.retr(1)
        assert e.value.command == "RETR"
        await client.rset()
        assert (await client.stat())[0] == 3
        await client.dele(2)
        await client.quit()
        assert client.closed
        # our store reads Dovecot's Maildir: message 2 gone, 1 and 3 left
        assert [dovecot.box.read(m.uid) for m in dovecot.box.messages()] == [MESSAGES[0],
                                                                              MESSAGES[2]]


async def test_stls_and_auth_plain_against_dovecot() -> None:
    async with dovecot_server() as dovecot:
        client = await connect(dovecot.port, tls="stls", ca=dovecot.ca)
        assert client.tls
        assert "STLS" not in await client.capa()
        await client.auth_plain("alice", "secret")
        assert (await client.stat())[0] == 3
        await client.quit()


async def test_apop_against_dovecot() -> None:
    async with dovecot_server() as dovecot:
        client = await connect(dovecot.port)
        assert client.timestamp is not None  # Dovecot offers APOP with apop in auth_mechanisms
        await client.apop("alice", "secret")
        assert (await client.stat())[0] == 3
        await client.quit()


async def test_dovecot_in_use_and_auth_codes() -> None:
    async with dovecot_server() as dovecot:
        client = await connect(dovecot.port)
        await client.login("alice", "secret")
        second = await connect(dovecot.port)
        with pytest.raises(pop3.POP3ReplyError) as e:
            await second.login("alice", "secret")  # Dovecot waits ~10 s for the lock first
        assert (e.value.command, e.value.code) == ("PASS", "IN-USE")
        await client.quit()
        second.close()  # (Dovecot hangs up after IN-USE)
        # last: after a failed login Dovecot slows that address's next logins down
        third = await connect(dovecot.port)
        with pytest.raises(pop3.POP3ReplyError) as e:
            await third.login("alice", "wrong")
        assert (e.value.command, e.value.code) == ("PASS", "AUTH")
        third.close()
