"""fetchmail (a real POP3 client, run as a subprocess) against the POP3 server: it fetches
every message into an mbox (through its mda) over USER/PASS and over STLS; with ``keep``
nothing is deleted, without it the messages are gone after its QUIT; with ``uidl`` a second
run fetches only what is new."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import require, run_peer
from pop3_helpers import MESSAGES, USERS, crlf, seed, server_tls

from netshell import tls
from protocols.mail import pop3
from protocols.mail.maildir import Maildir


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.fixture
def box(tmp_path: Path) -> Maildir:
    return seed(tmp_path / "mail")


@pytest.fixture
def server(tmp_path: Path, box: Maildir, certs: Any, reactor: Any) -> Iterator[Any]:
    listener = pop3.serve(tmp_path / "mail", USERS, tls=server_tls(certs))
    yield listener
    listener.close()


async def fetchmail(
    home: Path, port: int, options: str = "keep fetchall sslproto ''", extra: str = ""
) -> str:
    """Run fetchmail once against 127.0.0.1:port; its mda appends to home/pop.mbox."""
    path = require("fetchmail")
    home.mkdir(exist_ok=True)
    rc = home / "rc"
    rc.write_text(
        "set no bouncemail\nset no syslog\n"
        f"poll 127.0.0.1 service {port} protocol pop3 {extra} auth password timeout 10:\n"
        f'  user "alice" there with password "secret" is "root" here\n'
        f"  {options} no rewrite mda \"cat >> {home}/pop.mbox\"\n"
    )
    os.chmod(rc, 0o600)
    code, out, err = await run_peer(
        ["env", f"FETCHMAILHOME={home}", path, "-f", str(rc), "--pidfile", str(home / "pid"),
         "--nosyslog", "-v"], timeout=30)
    log = (out + err).decode(errors="replace")
    assert code in (0, 1), log  # 1: no new mail
    return log


def bodies_in(mbox: Path) -> bytes:
    return mbox.read_bytes().replace(b"\r\n", b"\n")


async def test_fetchmail_fetches_every_message_and_keep_keeps_them(
    server: Any, box: Maildir, tmp_path: Path,
) -> None:
    log = await fetchmail(tmp_path / "fm", server.port)
    assert "3 messages for alice" in log, log
    got = bodies_in(tmp_path / "fm" / "pop.mbox")
    for message in MESSAGES:
        # fetchmail writes LF lines and adds its own Received header; each message is whole,
        # un-stuffed (the dot lines come back as they were)
        assert crlf(message).replace(b"\r\n", b"\n").split(b"\n\n", 1)[1] in got
    assert got.count(b"\n.starts with a dot\n..two dots\n.\nend\n") == 1
    assert len(box.messages()) == 3  # keep: nothing deleted


async def test_fetchmail_without_keep_deletes_at_quit(server: Any, box: Maildir,
                                                     tmp_path: Path) -> None:
    log = await fetchmail(tmp_path / "fm", server.port, options="no keep fetchall sslproto ''")
    assert "flushed" in log or "deleting" in log.lower(), log
    assert box.messages() == []
    assert bodies_in(tmp_path / "fm" / "pop.mbox").count(b"Subject: ") == 3


async def test_fetchmail_over_stls_with_uidl_fetches_only_new_mail(
    server: Any, box: Maildir, tmp_path: Path, certs: Any,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certs[2])
    extra = "uidl"
    tls_opts = f"keep sslproto tls1.2+ sslcertck sslcertfile {ca} sslcommonname localhost"
    home = tmp_path / "fm"
    log = await fetchmail(home, server.port, options=tls_opts, extra=extra)
    assert "STLS" in log and "3 messages" in log, log
    box.deliver(b"Subject: four\r\n\r\nnew\r\n")
    log = await fetchmail(home, server.port, options=tls_opts, extra=extra)
    assert "4 messages (3 seen)" in log, log  # UIDL: the three are known
    assert "POP3> LIST 4" in log and "POP3> LIST 1" not in log, log  # (fetched with TOP)
    assert bodies_in(home / "pop.mbox").count(b"Subject: ") == 4
