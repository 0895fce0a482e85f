"""Our SMTP client (smtp.send) against aiosmtpd, the asyncio SMTP server, run in-process on
its own thread (aiosmtpd.controller.Controller) with a handler that records what it gets.

aiosmtpd offers no PIPELINING: these tests drive the client's one-command-at-a-time path.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from peers import free_port

import netshell as ns
from netshell import tls
from protocols.mail import smtp

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")


class Handler:
    """Records each envelope; refuses recipients whose local part starts with "no"."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.data_reply: str | None = None
        self.mail_reply: str | None = None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address.startswith("no"):
            return "550 5.1.1 No such user here"
        if address.startswith("later"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 2.0.0 Message accepted for delivery"


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


def start(handler: Handler, **kwargs: Any) -> Any:
    controller = aiosmtpd_controller.Controller(
        handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def server(handler: Handler) -> Iterator[Any]:
    controller = start(handler, enable_SMTPUTF8=True)
    yield controller
    controller.stop()


def message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Alice <alice@example.org>")
    msg["To"] = headers.pop("To", "bob@example.org")
    msg["Subject"] = headers.pop("Subject", "hi")
    for name, value in headers.items():
        msg[name] = value
    msg.set_content(".a line with a leading dot\n..two\n.\nend\n")
    return msg


async def test_an_email_message_with_cc_and_bcc(server: Any, handler: Handler) -> None:
    msg = message(Cc="carol@example.org", Bcc="dave@example.org, eve@example.org")
    result = await smtp.send(msg, "127.0.0.1", server.port, tls=None)
    assert result.accepted == ["bob@example.org", "carol@example.org", "dave@example.org",
                               "eve@example.org"]
    assert result.refused == {}
    assert str(result.reply) == "250 2.0.0 Message accepted for delivery"
    assert "PIPELINING" not in result.features
    [envelope] = handler.envelopes
    assert envelope.mail_from == "alice@example.org"
    assert envelope.rcpt_tos == result.accepted
    assert b"Bcc" not in envelope.content and b"dave" not in envelope.content
    body = envelope.content.split(b"\r\n\r\n", 1)[1]
    assert body == b".a line with a leading dot\r\n..two\r\n.\r\nend\r\n"  # unstuffed by aiosmtpd
    assert "Bcc" in msg  # the caller's message is left as it was


async def test_some_recipients_refused_is_a_result_all_refused_an_error(
    server: Any, handler: Handler
) -> None:
    result = await smtp.send(b"Subject: x\r\n\r\nhi\r\n", "127.0.0.1", server.port, tls=None,
                             sender="a@example.org",
                             recipients=["nobody@example.org", "bob@example.org",
                                         "later@example.org"])
    assert result.accepted == ["bob@example.org"]
    refused = result.refused
    assert set(refused) == {"nobody@example.org", "later@example.org"}
    assert (refused["nobody@example.org"].code, refused["nobody@example.org"].enhanced,
            refused["nobody@example.org"].text) == (550, "5.1.1", "No such user here")
    assert refused["later@example.org"].code == 450
    assert handler.envelopes[0].rcpt_tos == ["bob@example.org"]
    with pytest.raises(smtp.SMTPRecipientsRefused) as caught:
        await smtp.send(b"x\r\n", "127.0.0.1", server.port, tls=None, sender="a@example.org",
                        recipients=["no1@example.org", "no2@example.org"])
    assert caught.value.code == 550 and list(caught.value.refused) == [
        "no1@example.org", "no2@example.org"]
    assert len(handler.envelopes) == 1


async def test_refusals_are_typed_with_code_enhanced_code_and_text(
    server: Any, handler: Handler
) -> None:
    handler.mail_reply = "550 5.7.1 Sender refused by policy"
    with pytest.raises(smtp.SMTPPermanentError) as permanent:
        await smtp.send(message(), "127.0.0.1", server.port, tls=None)
    e = permanent.value
    assert (e.code, e.enhanced, e.text) == (550, "5.7.1", "Sender refused by policy")
    assert str(e) == "MAIL refused: 550 5.7.1 Sender refused by policy"
    handler.mail_reply = None
    handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(smtp.SMTPTemporaryError) as temporary:
        await smtp.send(message(), "127.0.0.1", server.port, tls=None)
    assert (temporary.value.code, temporary.value.enhanced) == (451, "4.3.0")


async def test_smtputf8_and_8bitmime_when_needed(server: Any, handler: Handler) -> None:
    msg = message(From="j\u00f6rg@b\u00fccher.test", To="\u7528\u6237@\u4f8b\u5b50.test",
                  Subject="gr\u00fc\u00dfe")
    await smtp.send(msg, "127.0.0.1", server.port, tls=None)
    await smtp.send("Subject: 8\r\n\r\ncaf\u00e9\r\n".encode(), "127.0.0.1", server.port,
                    tls=None, sender="a@example.org", recipients="b@example.org")
    utf8, eight = handler.envelopes
    assert utf8.mail_from == "j\u00f6rg@b\u00fccher.test" and utf8.smtp_utf8
    assert utf8.rcpt_tos == ["\u7528\u6237@\u4f8b\u5b50.test"]
    assert "Subject: gr\u00fc\u00dfe".encode() in utf8.content  # a UTF-8 header, not encoded
    assert "BODY=8BITMIME" in eight.mail_options and not eight.smtp_utf8
    assert eight.content == "Subject: 8\r\n\r\ncaf\u00e9\r\n".encode()


async def test_what_the_server_does_not_offer_is_a_clear_error_before_sending(
    handler: Handler,
) -> None:
    controller = start(handler, enable_SMTPUTF8=False)
    try:
        with pytest.raises(smtp.SMTPNotSupported, match="does not offer SMTPUTF8"):
            await smtp.send(b"x\r\n", "127.0.0.1", controller.port, tls=None,
                            sender="j\u00f6rg@example.org", recipients=["b@example.org"])
        with pytest.raises(smtp.SMTPNotSupported, match="does not offer STARTTLS"):
            await smtp.send(message(), "127.0.0.1", controller.port)  # tls="starttls"
        with pytest.raises(smtp.SMTPNotSupported, match="does not offer AUTH"):
            await smtp.send(message(), "127.0.0.1", controller.port, tls=None,
                            auth=("u", "p"))
    finally:
        controller.stop()
    assert handler.envelopes == []


async def test_starttls_verifies_the_certificate_and_auth_goes_under_it(
    handler: Handler, certs: Any, tmp_path: Path
) -> None:
    (tmp_path / "cert.pem").write_bytes(certs[0])
    (tmp_path / "key.pem").write_bytes(certs[1])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    logins: list[tuple[Any, Any]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> Any:
        login = tuple(x.decode() if isinstance(x, bytes) else x
                      for x in (data.login, data.password))
        logins.append(login)
        ok = login == ("alice", "s3cret")
        # handled=False: aiosmtpd answers (235 or 535) itself; with True it says nothing
        return aiosmtpd_smtp.AuthResult(success=ok, handled=False)

    controller = start(handler, tls_context=context, authenticator=authenticator,
                       auth_require_tls=True)
    try:
        result = await smtp.send(message(), "localhost", controller.port, ca=certs[2],
                                 auth=("alice", "s3cret"))
        assert result.tls and result.accepted == ["bob@example.org"]
        with pytest.raises(smtp.SMTPPermanentError) as wrong:
            await smtp.send(message(), "localhost", controller.port, ca=certs[2],
                            auth=("alice", "nope"))
        assert wrong.value.code == 535
        # verifying is the default: a certificate from an authority nobody trusts is refused
        with pytest.raises(ns.TLSError):
            await smtp.send(message(), "localhost", controller.port, auth=("alice", "s3cret"))
        other_ca = tls.self_signed("localhost")[2]
        with pytest.raises(ns.UnknownCA):
            await smtp.send(message(), "localhost", controller.port, ca=other_ca)
    finally:
        controller.stop()
    assert logins == [("alice", "s3cret"), ("alice", "nope")]
    assert len(handler.envelopes) == 1
