"""Python's smtplib against our SMTP server: EHLO features, a Maildir delivery with its trace
lines, STARTTLS with a throwaway certificate, AUTH PLAIN and LOGIN, several messages in one
session, 8BITMIME, SMTPUTF8, SIZE refusal. (smtplib does not pipeline: swaks --pipeline and
the raw client do, in test_smtp_server_swaks.py and test_smtp_server_protocol.py.)

smtplib blocks, so it runs in a thread (ns.defer_to_thread) while the reactor serves.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from smtp_helpers import Recorder, body_of, maildir_messages

import netshell as ns
from netshell import tls
from protocols.mail import smtp


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


def message(subject: str = "hi", body: str = "hello\n", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "alice@example.org")
    msg["To"] = headers.pop("To", "bob@example.org")
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


async def test_ehlo_features_and_a_maildir_delivery(tmp_path: Path) -> None:
    box = tmp_path / "box"
    listener = smtp.serve(deliver=box, hostname="mx.test")
    try:
        def work() -> tuple[Any, Any, Any]:
            with smtplib.SMTP("127.0.0.1", listener.port, local_hostname="client.test") as s:
                code, _ = s.ehlo()
                features = dict(s.esmtp_features)
                refused = s.send_message(message(Cc="carol@example.org"))
                return code, features, refused

        code, features, refused = await ns.defer_to_thread(work)
    finally:
        listener.close()
    assert code == 250 and refused == {}
    assert {"pipelining", "size", "8bitmime", "smtputf8", "chunking",
            "enhancedstatuscodes"} <= set(features)
    assert features["size"] == str(32 * 1024 * 1024)
    assert "starttls" not in features and "auth" not in features  # no tls=, no auth=
    [stored] = maildir_messages(box)
    head = stored.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("Return-Path: <alice@example.org>\r\nReceived: from client.test "
                           "([127.0.0.1])\r\n\tby mx.test with ESMTP id ")
    assert "\r\n\tfor" not in head.split("Subject")[0]  # two recipients: no "for"
    assert b"Subject: hi\r\n" in stored and stored.endswith(b"\r\nhello\r\n")


async def test_starttls_then_auth_plain_and_login(tmp_path: Path, certs: Any) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, tls=tls.server_context(certs[0], certs[1]),
                          auth={"alice": "s3cret"}, hostname="mx.test")
    ctx = ssl.create_default_context(cadata=certs[2].decode())
    try:
        def work() -> tuple[Any, ...]:
            with smtplib.SMTP("localhost", listener.port) as s:
                s.ehlo()
                before = dict(s.esmtp_features)
                s.starttls(context=ctx)
                s.ehlo()
                after = dict(s.esmtp_features)
                s.login("alice", "s3cret")  # smtplib tries CRAM-MD5, PLAIN, LOGIN: PLAIN here
                s.send_message(message("plain"))
            with smtplib.SMTP("localhost", listener.port) as s:
                s.starttls(context=ctx)
                s.ehlo()
                s.user, s.password = "alice", "s3cret"
                code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
                s.send_message(message("login"))
                again = s.docmd("STARTTLS")  # smtplib would not try: not offered any more
            with smtplib.SMTP("localhost", listener.port) as s:
                s.starttls(context=ctx)
                s.ehlo()
                with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
                    s.login("alice", "nope")
            return before, after, code, again, wrong.value.smtp_code, wrong.value.smtp_error

        before, after, code, again, wrong_code, wrong_text = await ns.defer_to_thread(work)
    finally:
        listener.close()
    assert "starttls" in before and "auth" not in before  # AUTH only under TLS
    assert "starttls" not in after and after["auth"].split() == ["PLAIN", "LOGIN"]
    assert code == 235
    assert again == (503, b"5.5.1 TLS already active")  # a second STARTTLS is refused
    assert (wrong_code, wrong_text) == (535, b"5.7.8 Authentication credentials invalid")
    assert [e.content.split(b"Subject: ")[1][:5] for e in recorder.envelopes] == [
        b"plain", b"login"]
    assert all(e.tls and e.user == "alice" for e in recorder.envelopes)
    assert b"with ESMTPSA id" in recorder.envelopes[0].data


async def test_8bitmime_and_smtputf8(tmp_path: Path) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder)
    try:
        def work() -> None:
            with smtplib.SMTP("127.0.0.1", listener.port) as s:
                msg = message("caf\u00e9", "d\u00e9j\u00e0 vu\n", From="j\u00f6rg@b\u00fccher.test",
                              To="\u7528\u6237@\u4f8b\u5b50.test")
                s.send_message(msg)  # smtplib asks for SMTPUTF8 and BODY=8BITMIME
                raw = "Subject: 8bit\r\n\r\ncaf\u00e9\r\n".encode()
                s.sendmail("a@example.org", ["b@example.org"], raw,
                           mail_options=["BODY=8BITMIME"])

        await ns.defer_to_thread(work)
    finally:
        listener.close()
    utf8, eight = recorder.envelopes
    assert utf8.smtputf8 and utf8.sender == "j\u00f6rg@b\u00fccher.test"
    assert utf8.recipients == ["\u7528\u6237@\u4f8b\u5b50.test"]
    assert "SMTPUTF8" in utf8.mail_options and b"with UTF8SMTP id" in utf8.data
    assert "Subject: caf\u00e9".encode() in utf8.content
    assert eight.body == "8BITMIME" and not eight.smtputf8
    assert eight.content == "Subject: 8bit\r\n\r\ncaf\u00e9\r\n".encode()


async def test_non_ascii_address_without_smtputf8_is_refused(tmp_path: Path) -> None:
    listener = smtp.serve(deliver=Recorder())
    try:
        def work() -> Any:
            with smtplib.SMTP("127.0.0.1", listener.port) as s:
                s.ehlo()
                s.command_encoding = "utf-8"  # as smtplib does once SMTPUTF8 is asked for
                return s.docmd("MAIL", "FROM:<j\u00f6rg@example.org>")

        code, text = await ns.defer_to_thread(work)
    finally:
        listener.close()
    assert (code, text) == (553, b"5.6.7 Non-ASCII addresses need SMTPUTF8")


async def test_size_refused_at_mail_and_after_data(tmp_path: Path) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, max_size=1000)
    try:
        def work() -> tuple[Any, Any, int]:
            with smtplib.SMTP("127.0.0.1", listener.port) as s:
                s.ehlo()
                size = int(s.esmtp_features["size"])
                # smtplib sends SIZE= itself when offered: refused at MAIL
                with pytest.raises(smtplib.SMTPSenderRefused) as at_mail:
                    s.sendmail("a@example.org", ["b@example.org"], b"x" * 2000)
                # no SIZE= said: refused once the data is in
                s.rset()
                s.docmd("MAIL", "FROM:<a@example.org>")
                s.docmd("RCPT", "TO:<b@example.org>")
                at_data = s.data(b"y" * 500 + b"\r\n" + b"z" * 600)  # data() does not raise
                return at_mail.value, at_data, size

        at_mail, at_data, size = await ns.defer_to_thread(work)
    finally:
        listener.close()
    assert size == 1000
    assert (at_mail.smtp_code, at_mail.smtp_error) == (
        552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert at_data == (
        552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert recorder.envelopes == []


async def test_many_messages_in_one_session_into_a_maildir(tmp_path: Path) -> None:
    box = tmp_path / "box"
    listener = smtp.serve(deliver=box)
    try:
        def work() -> None:
            with smtplib.SMTP("127.0.0.1", listener.port) as s:
                for i in range(5):
                    s.send_message(message(f"n{i}", body=f".dot line {i}\n..two\n"))

        await ns.defer_to_thread(work)
    finally:
        listener.close()
    stored = maildir_messages(box)
    assert len(stored) == 5
    bodies = sorted(body_of(m).split(b"\r\n\r\n", 1)[1] for m in stored)
    assert bodies == [f".dot line {i}\r\n..two\r\n".encode() for i in range(5)]
