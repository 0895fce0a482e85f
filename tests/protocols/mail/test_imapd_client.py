"""Our IMAP client (protocols.mail.imap.client) against our IMAP server: login both ways
(LOGIN, AUTHENTICATE PLAIN; over STARTTLS verifying the throwaway certificate), LIST,
NAMESPACE, ID, STATUS, SELECT, SEARCH, FETCH (parsed), STORE, COPY (COPYUID), MOVE,
APPEND (APPENDUID), EXPUNGE, and IDLE seeing a second client's APPEND, flag change and
EXPUNGE as they happen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imap_dovecot import MESSAGES, PLAIN
from imapd_helpers import USERS, seed, server_tls

import netshell as ns
from netshell import tls
from protocols.mail import imap
from protocols.mail.imap.server import serve
from protocols.mail.imap.values import Response
from protocols.mail.maildir import Maildir

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.fixture
def box(tmp_path: Path) -> Maildir:
    return seed(tmp_path)


@pytest.fixture
def server(tmp_path: Path, box: Maildir, certs: Any, reactor: Any) -> Iterator[Any]:
    listener = serve(tmp_path, USERS, tls=server_tls(certs), fsync=False)
    yield listener
    listener.close()


async def test_the_client_does_everything(server: Any, box: Maildir) -> None:
    c = await imap.connect("127.0.0.1", server.port, user="alice", password="secret",
                           timeout=10)
    try:
        assert {"IDLE", "MOVE", "UIDPLUS"} <= c.capabilities
        assert (await c.namespace())[0] == [("", ".")]
        assert (await c.id({"name": "ours"}))["name"] == "netshell"
        await c.create("Work")
        names = [e.name for e in await c.list()]
        assert names == ["INBOX", "Work"]
        status = await c.status("INBOX", ["MESSAGES", "UNSEEN"])
        assert status == {"MESSAGES": len(MESSAGES), "UNSEEN": 1}
        info = await c.select("INBOX")
        assert (info.exists, info.uidvalidity, info.unseen) == (
            len(MESSAGES), box.uidvalidity, len(MESSAGES))
        assert await c.search("UNSEEN") == [len(MESSAGES)]
        got = await c.fetch("1", "(ENVELOPE BODY.PEEK[] FLAGS)")
        assert got[1]["BODY[]"] == PLAIN
        assert got[1]["ENVELOPE"].subject == "afternoon meeting"
        assert await c.store("2", ["\\Flagged"]) == {2: ("\\Flagged", "\\Seen")}
        code = await c.copy("1:2", "Work")
        assert code is not None and code.name == "COPYUID"
        moved = await c.move("3", "Work")
        assert moved is not None and moved.name == "COPYUID"
        assert c.mailbox is not None and c.mailbox.exists == len(MESSAGES) - 1
        appended = await c.append("INBOX", b"Subject: new\r\n\r\nhi\r\n", flags=["\\Seen"])
        assert appended == (box.uidvalidity, len(MESSAGES) + 1)
        await c.store("1", ["\\Deleted"])
        assert await c.expunge() == [1]
        uids = await c.search("ALL", uid=True)
        assert uids == [m.uid for m in box.messages()] == [2, 4, 5]
    finally:
        await c.logout()


async def test_starttls_and_authenticate_plain(server: Any, certs: Any) -> None:
    c = await imap.connect("127.0.0.1", server.port, tls="starttls", ca=certs[2],
                           user="alice", password="secret", auth="plain", timeout=10)
    try:
        assert "STARTTLS" not in c.capabilities
        assert c.state == "authenticated"
        assert (await c.examine("INBOX")).read_only
    finally:
        await c.logout()


async def test_idle_hears_another_client(server: Any) -> None:
    watcher = await imap.connect("127.0.0.1", server.port, user="alice",
                                 password="secret", timeout=10)
    other = await imap.connect("127.0.0.1", server.port, user="alice",
                               password="secret", timeout=10)
    heard: list[Response] = []
    expunged = ns.Deferred()

    def hear(response: Response) -> None:
        heard.append(response)
        if response.kind == "EXPUNGE" and not expunged.called:
            expunged.callback(None)

    try:
        await watcher.select("INBOX")
        idle = watcher.idle(hear)
        await idle.started
        await other.select("INBOX")
        await other.append("INBOX", b"Subject: pushed\r\n\r\nnow\r\n")
        await other.store("2", ["\\Flagged"])
        await other.store("1", ["\\Deleted"])
        await other.expunge()
        await expunged
        await idle.stop()
        kinds = [(r.kind, r.number) for r in heard]
        assert ("EXISTS", len(MESSAGES) + 1) in kinds
        assert ("FETCH", 2) in kinds and ("EXPUNGE", 1) in kinds
        assert kinds.index(("EXISTS", len(MESSAGES) + 1)) < kinds.index(("EXPUNGE", 1))
        assert watcher.mailbox is not None and watcher.mailbox.exists == len(MESSAGES)
    finally:
        await watcher.logout()
        await other.logout()
