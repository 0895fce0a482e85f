"""``netsh serve smtp|pop3|imap --maildir DIR``: a mail server from the shell, as real
clients see it: smtplib sends, poplib and imaplib read what it delivered, each user's
mail in DIR/<user>.
"""

from __future__ import annotations

import imaplib
import poplib
import re
import signal
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from test_serve import WAIT, start, stop
from test_serve import serving_port as serve_port

from protocols.mail.maildir import Maildir


def serving_port(proc: subprocess.Popen[str], service: str, scheme: str) -> int:
    return serve_port(proc, service, scheme)


def a_message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "ann@example.test"
    msg["To"] = to
    msg["Subject"] = "served from the shell"
    msg.set_content("hello, mailbox\n")
    return msg


def test_smtp_delivers_into_each_recipients_maildir_and_pop3_reads_it(tmp_path: Path) -> None:
    smtp_proc = start("smtp", "--maildir", str(tmp_path), "--port", "0")
    pop_proc = start("pop3", "--maildir", str(tmp_path), "--user", "bob:pw", "--port", "0")
    try:
        smtp_port = serving_port(smtp_proc, "smtp", "smtp")
        pop_port = serving_port(pop_proc, "pop3", "pop")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=WAIT) as s:
            refused = s.send_message(a_message("bob@example.test, carol@example.test"))
        assert refused == {}
        # one copy each, in DIR/bob and DIR/carol
        assert len(Maildir(tmp_path / "carol").messages()) == 1
        box = poplib.POP3("127.0.0.1", pop_port, timeout=WAIT)
        try:
            box.user("bob")
            box.pass_("pw")
            assert box.stat()[0] == 1
            lines = box.retr(1)[1]
        finally:
            box.quit()
        text = b"\r\n".join(lines)
        assert text.startswith(b"Return-Path: <ann@example.test>\r\nReceived: from ")
        assert b"Subject: served from the shell" in text
        assert text.endswith(b"hello, mailbox")
        smtp_proc.send_signal(signal.SIGTERM)
        smtp_proc.communicate(timeout=WAIT)
        assert smtp_proc.returncode == 143
    finally:
        stop(smtp_proc)
        stop(pop_proc)


def test_imap_serves_a_users_maildir(tmp_path: Path) -> None:
    Maildir(tmp_path / "ann").deliver(bytes(a_message("ann@example.test")))
    proc = start("imap", "--maildir", str(tmp_path), "--user", "ann:pw", "--port", "0")
    try:
        port = serving_port(proc, "imap", "imap")
        with imaplib.IMAP4("127.0.0.1", port, timeout=WAIT) as m:
            m.login("ann", "pw")
            typ, data = m.select("INBOX")
            assert (typ, data) == ("OK", [b"1"])
            typ, fetched = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            assert fetched[0][1].strip() == b"Subject: served from the shell"
            m.logout()
    finally:
        stop(proc)


def test_pop3_with_tls_requires_stls_before_login(tmp_path: Path) -> None:
    proc = start("pop3", "--maildir", str(tmp_path), "--user", "ann:pw", "--tls", "--port", "0")
    try:
        fingerprint = proc.stdout.readline()
        assert re.fullmatch(r"TLS throwaway certificate, SHA-256 fingerprint [0-9A-F:]{95}\n",
                            fingerprint), fingerprint
        port = serving_port(proc, "pop3", "pop")
        box = poplib.POP3("127.0.0.1", port, timeout=WAIT)
        try:
            with pytest.raises(poplib.error_proto):
                box.user("ann")  # refused in the clear
            assert "STLS" in box.capa()
        finally:
            box.close()
    finally:
        stop(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["smtp", "--port", "0"], "`netsh serve smtp` needs --maildir DIR"),
    (["pop3", "--maildir", ".", "--port", "0"], "`netsh serve pop3` needs a --user NAME:PASSWORD"),
    (["http", "--maildir", "."], "--maildir is for `netsh serve smtp`, `pop3` and `imap`"),
    (["smtp", "--maildir", ".", "--user", "a:b"], "--user is for `netsh serve ftp`, `pop3` and"),
    (["imap", "--maildir", ".", "--user", "nocolon", "--port", "0"],
     "netsh serve imap: --user takes NAME:PASSWORD, not 'nocolon'"),
])
def test_mail_options_are_checked(args: list[str], message: str) -> None:
    proc = start(*args)
    _out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2, err
    assert message in err
