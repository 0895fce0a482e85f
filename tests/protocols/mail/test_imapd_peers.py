"""Real IMAP clients as subprocesses against the IMAP server:

- fetchmail (``protocol imap``, ``folder INBOX``) fetches every message (once over plain
  LOGIN, once over STARTTLS verifying the throwaway certificate) into an mbox through its
  mda; with ``keep`` the messages stay, marked \\Seen; without, they are expunged;
- offlineimap syncs the mailbox both ways with flags: a first sync brings the server's
  messages down (flags as on the server), then a flag changed on each side and a message
  added on each side appear on the other side after the second sync.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imap_dovecot import MESSAGES
from imapd_helpers import USERS, seed, server_tls
from peers import require, run_peer

from netshell import tls
from protocols.mail.imap.server import serve
from protocols.mail.maildir import Maildir

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.fixture
def box(tmp_path: Path) -> Maildir:
    return seed(tmp_path / "mail")


@pytest.fixture
def server(tmp_path: Path, box: Maildir, certs: Any, reactor: Any) -> Iterator[Any]:
    listener = serve(tmp_path / "mail", USERS, tls=server_tls(certs), fsync=False)
    yield listener
    listener.close()


async def fetchmail(home: Path, port: int, options: str) -> str:
    path = require("fetchmail")
    home.mkdir(exist_ok=True)
    rc = home / "rc"
    rc.write_text(
        "set no bouncemail\nset no syslog\n"
        f"poll 127.0.0.1 service {port} protocol imap auth password timeout 10:\n"
        '  user "alice" there with password "secret" is "root" here\n'
        f'  folder INBOX {options} no rewrite mda "cat >> {home}/imap.mbox"\n'
    )
    os.chmod(rc, 0o600)
    code, out, err = await run_peer(
        ["env", f"FETCHMAILHOME={home}", path, "-f", str(rc), "--pidfile",
         str(home / "pid"), "--nosyslog", "-v"], timeout=30)
    log = (out + err).decode(errors="replace")
    assert code in (0, 1), log  # 1: no new mail
    return log


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


async def test_fetchmail_fetches_all_and_keep_keeps_them_seen(
        server: Any, box: Maildir, tmp_path: Path) -> None:
    log = await fetchmail(tmp_path / "fm", server.port, "keep fetchall sslproto ''")
    assert f"{len(MESSAGES)} messages" in log and "IMAP> A0" in log, log
    got = lf((tmp_path / "fm" / "imap.mbox").read_bytes())
    for message in MESSAGES:
        assert lf(message).split(b"\n\n", 1)[1] in got
    assert len(box.messages()) == len(MESSAGES)  # keep
    assert all("\\Seen" in m.flags for m in box.messages())


async def test_fetchmail_over_starttls_without_keep_expunges(
        server: Any, box: Maildir, tmp_path: Path, certs: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certs[2])
    log = await fetchmail(
        tmp_path / "fm", server.port,
        f"no keep fetchall sslproto tls1.2+ sslcertck sslcertfile {ca} "
        "sslcommonname localhost")
    assert "STARTTLS" in log, log
    assert box.messages() == []
    assert lf((tmp_path / "fm" / "imap.mbox").read_bytes()).count(b"Subject: ") >= len(
        MESSAGES)


async def offlineimap(home: Path, port: int) -> str:
    path = require("offlineimap")
    home.mkdir(exist_ok=True)
    rc = home / "rc"
    rc.write_text(
        "[general]\naccounts = test\n"
        f"metadata = {home}/meta\nui = basic\n"
        "[Account test]\nlocalrepository = local\nremoterepository = remote\n"
        f"[Repository local]\ntype = Maildir\nlocalfolders = {home}/Maildir\n"
        "[Repository remote]\ntype = IMAP\nremotehost = 127.0.0.1\n"
        f"remoteport = {port}\nremoteuser = alice\nremotepass = secret\n"
        "ssl = no\nstarttls = no\nfolderfilter = lambda name: name == 'INBOX'\n"
    )
    code, out, err = await run_peer([path, "-c", str(rc), "-o", "-u", "basic"], timeout=60)
    log = (out + err).decode(errors="replace")
    assert code == 0, log
    assert "ERROR" not in log, log
    return log


def local_messages(home: Path) -> dict[bytes, str]:
    """Subject -> the flag letters of each message in offlineimap's local INBOX."""
    out = {}
    inbox = home / "Maildir" / "INBOX"
    for sub in ("cur", "new"):
        for f in (inbox / sub).iterdir():
            data = f.read_bytes()
            subject = next(line for line in data.replace(b"\r\n", b"\n").split(b"\n")
                           if line.startswith(b"Subject: "))
            out[subject[9:]] = f.name.partition(":2,")[2]
    return out


async def test_offlineimap_syncs_both_ways_with_flags(
        server: Any, box: Maildir, tmp_path: Path) -> None:
    home = tmp_path / "oi"
    await offlineimap(home, server.port)
    local = local_messages(home)
    assert local == {b"afternoon meeting": "S", b"=?utf-8?q?caf=C3=A9_report?=": "S",
                     b"no mime": "S", b"digest": ""}
    # the server side: flag one, add one; the local side: flag one, add one
    uids = {m.uid: m for m in box.messages()}
    box.add_flags(1, ["\\Flagged"])
    box.append(b"Subject: from the server\r\n\r\nhi\r\n", ["\\Answered"])
    inbox = home / "Maildir" / "INBOX"
    digest = next(f for sub in ("cur", "new") for f in (inbox / sub).iterdir()
                  if b"Subject: digest" in f.read_bytes())
    os.rename(digest, inbox / "cur" / (digest.name.partition(":2,")[0] + ":2,S"))
    (inbox / "new" / "1700000000.local.test").write_bytes(
        b"Subject: from the laptop\r\n\r\nhello\r\n")
    await offlineimap(home, server.port)
    local = local_messages(home)
    assert local[b"afternoon meeting"] == "FS"
    assert local[b"from the server"] == "R"
    assert local[b"from the laptop"] == ""
    server_side = {}
    for m in box.messages():
        data = box.read(m.uid, crlf=True)
        subject = next(line for line in data.split(b"\r\n") if line.startswith(b"Subject: "))
        server_side[subject[9:]] = m.flags
    assert server_side[b"digest"] == frozenset({"\\Seen"})
    assert server_side[b"from the laptop"] == frozenset()
    assert len(server_side) == len(uids) + 2
