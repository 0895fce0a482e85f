"""Our POP3 client against Dovecot (a subprocess, `dovecot -F` with a temp config): every
verb over a Maildir our store seeded (and Dovecot's deletions seen by our store after), STLS
verified with AUTH PLAIN, APOP, and Dovecot's [AUTH] and [IN-USE] codes as POP3ReplyError."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from peers import free_port, require, start_peer
from pop3_helpers import MESSAGES, crlf

import netshell as ns
from netshell import tls
from protocols.mail import pop3
from protocols.mail.maildir import Maildir

UID = 12345  # a numeric uid with no passwd entry: Dovecot takes it (PEERS.md)

CONF = """\
base_dir = {d}/run
state_dir = {d}/state
listen = 127.0.0.1
protocols = pop3
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login apop
log_path = /dev/stderr
mail_location = maildir:{d}/mail/%u
pop3_lock_session = yes
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


@dataclass
class Dovecot:
    port: int
    box: Maildir
    ca: bytes


@contextlib.asynccontextmanager
async def dovecot_server() -> AsyncIterator[Dovecot]:
    """Dovecot on a free port over a Maildir of alice's that our store seeded; stopped and
    its folder removed at the end, also when the test fails."""
    binary = require("dovecot")
    # Dovecot's mail processes run as UID: every folder above the Maildir must be
    # traversable, which pytest's 0700 tmp_path is not.
    d = Path(tempfile.mkdtemp(prefix="netshell-dovecot-", dir="/tmp"))
    try:
        os.chmod(d, 0o755)
        cert, key, ca = tls.self_signed("localhost", "127.0.0.1")
        (d / "cert.pem").write_bytes(cert)
        (d / "key.pem").write_bytes(key)
        (d / "users").write_text("alice:{PLAIN}secret\n")
        box = Maildir(d / "mail" / "alice")
        for message in MESSAGES:
            box.deliver(message)
        for folder, _, files in os.walk(d / "mail"):
            os.chown(folder, UID, UID)
            for name in files:
                os.chown(os.path.join(folder, name), UID, UID)
        port = free_port()
        (d / "dovecot.conf").write_text(CONF.format(d=d, uid=UID, port=port))
        peer = await start_peer([binary, "-F", "-c", str(d / "dovecot.conf")],
                                ready="starting up")
        try:
            yield Dovecot(port, box, ca)
        finally:
            await peer.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


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
