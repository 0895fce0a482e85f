"""smtp.send against our own server: pipelining (MAIL, RCPTs and DATA in one write), STARTTLS
and implicit TLS verified against a throwaway CA, AUTH, per-recipient results, timeouts, and
a server that closes or breaks SMTP."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from smtp_helpers import Recorder

import netshell as ns
from netshell import tls
from protocols.mail import smtp
from protocols.mail.smtp.core import is_domain


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


class Spy(ns.Protocol):
    """A server that records what it is sent and answers with scripted bytes."""

    received: list[bytes]
    script: list[bytes]

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.received = self.factory.received
        greeting = self.factory.greeting
        if greeting:
            transport.write(greeting)

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        answer = self.factory.answer(data)
        if answer is None:
            self.transport.close()
        elif answer:
            self.transport.write(answer)

    def connection_lost(self, reason: Any) -> None:
        if not self.factory.gone.called:
            self.factory.gone.callback(None)


def spy_server(reactor: Any, greeting: bytes, answer: Any) -> Any:
    factory = ns.Factory.for_protocol(Spy)
    factory.received = []
    factory.gone = ns.Deferred()
    factory.greeting = greeting
    factory.answer = answer
    return reactor.listen_tcp(0, factory)


async def test_pipelining_sends_mail_rcpts_and_data_in_one_write(reactor: Any) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, max_recipients=2)
    seen: list[bytes] = []
    real = listener.factory.build_protocol

    def build(addr: Any) -> Any:
        protocol = real(addr)
        received = protocol.data_received

        def spying(data: bytes) -> None:
            seen.append(data)
            received(data)

        protocol.data_received = spying  # type: ignore[method-assign]
        return protocol

    listener.factory.build_protocol = build  # type: ignore[method-assign]
    try:
        result = await smtp.send(b"Subject: p\r\n\r\n.dot\r\n", "127.0.0.1", listener.port,
                                 tls=None, sender="a@x.test",
                                 recipients=["b@x.test", "c@x.test", "d@x.test"])
    finally:
        listener.close()
    assert "PIPELINING" in result.features
    assert (b"MAIL FROM:<a@x.test> SIZE=20\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\n"
            b"RCPT TO:<d@x.test>\r\nDATA\r\n") in seen
    # the third recipient is over the server's limit: a per-recipient 452, the rest sent
    assert result.accepted == ["b@x.test", "c@x.test"]
    assert {r: str(reply) for r, reply in result.refused.items()} == {
        "d@x.test": "452 4.5.3 Too many recipients"}
    assert recorder.envelopes[0].content == b"Subject: p\r\n\r\n.dot\r\n"


async def test_starttls_implicit_tls_and_auth(certs: Any) -> None:
    recorder = Recorder()
    context = tls.server_context(certs[0], certs[1])
    starttls = smtp.serve(deliver=recorder, tls=context, auth={"u": "pw"}, require_tls=True)
    implicit = smtp.serve(deliver=recorder, tls=context, implicit_tls=True, auth={"u": "pw"})
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.test", "b@x.test", "tls"
    msg.set_content("secret\n")
    try:
        one = await smtp.send(msg, "localhost", starttls.port, ca=certs[2], auth=("u", "pw"))
        two = await smtp.send(msg, "localhost", implicit.port, tls="implicit", ca=certs[2],
                              auth=("u", "pw"))
        with pytest.raises(smtp.SMTPPermanentError) as bad:
            await smtp.send(msg, "localhost", starttls.port, ca=certs[2], auth=("u", "x"))
        with pytest.raises(ns.HostnameMismatch):
            await smtp.send(msg, "127.0.0.1", starttls.port,
                            context=tls.client_context("other.test", ca=certs[2]))
        with pytest.raises(smtp.SMTPPermanentError) as clear:
            await smtp.send(msg, "localhost", starttls.port, tls=None)  # require_tls
    finally:
        starttls.close()
        implicit.close()
    assert one.tls and two.tls and one.accepted == two.accepted == ["b@x.test"]
    assert (bad.value.code, bad.value.enhanced) == (535, "5.7.8")
    assert (clear.value.code, clear.value.text) == (530, "Must issue a STARTTLS command first")
    assert [e.user for e in recorder.envelopes] == ["u", "u"]
    assert all(e.tls for e in recorder.envelopes)


async def test_a_server_that_never_answers_times_out(reactor: Any) -> None:
    listener = spy_server(reactor, b"", lambda data: b"")
    try:
        with pytest.raises(smtp.SMTPTimeoutError, match="greeting"):
            await smtp.send(b"x", "127.0.0.1", listener.port, tls=None, sender="a@x.test",
                            recipients=["b@x.test"], timeout=0.2)
    finally:
        listener.close()


async def test_a_server_that_closes_or_breaks_smtp(reactor: Any) -> None:
    closing = spy_server(reactor, b"220 mx ESMTP\r\n",
                         lambda data: b"421 4.3.2 Shutting down\r\n" if b"EHLO" in data else b"")
    broken = spy_server(reactor, b"220 mx ESMTP\r\n", lambda data: b"HTTP/1.1 400 Bad\r\n")
    busy = spy_server(reactor, b"554 5.3.2 No SMTP service here\r\n", lambda data: b"")
    try:
        with pytest.raises(smtp.SMTPTemporaryError) as said:
            await smtp.send(b"x", "127.0.0.1", closing.port, tls=None, sender="a@x.test",
                            recipients=["b@x.test"])
        with pytest.raises(smtp.SMTPProtocolError, match="not an SMTP reply line"):
            await smtp.send(b"x", "127.0.0.1", broken.port, tls=None, sender="a@x.test",
                            recipients=["b@x.test"])
        with pytest.raises(smtp.SMTPPermanentError) as refused:
            await smtp.send(b"x", "127.0.0.1", busy.port, tls=None, sender="a@x.test",
                            recipients=["b@x.test"])
    finally:
        closing.close()
        broken.close()
        busy.close()
    assert (said.value.code, said.value.enhanced) == (421, "4.3.2")
    assert (refused.value.code, refused.value.text) == (554, "No SMTP service here")


def test_bad_arguments_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="needs sender= and recipients="):
        smtp.send(b"x", "127.0.0.1", tls=None)
    msg = EmailMessage()
    msg["Subject"] = "no addresses"
    with pytest.raises(ValueError, match="no sender"):
        smtp.send(msg, "127.0.0.1")
    msg["From"] = "a@x.test"
    with pytest.raises(ValueError, match="no recipients"):
        smtp.send(msg, "127.0.0.1")
    with pytest.raises(ValueError, match="tls is"):
        smtp.send(msg, "127.0.0.1", tls="yes", recipients=["b@x.test"])
    with pytest.raises(TypeError, match="EmailMessage or bytes"):
        smtp.send("text", "127.0.0.1")  # type: ignore[arg-type]


async def test_a_refusal_is_followed_by_quit(reactor: Any) -> None:
    def answer(data: bytes) -> bytes:
        if data.startswith(b"EHLO"):
            return b"250-mx\r\n250 PIPELINING\r\n"
        if data.startswith(b"MAIL"):
            return b"550 5.7.1 Go away\r\n503 5.5.1 No MAIL\r\n503 5.5.1 No MAIL\r\n"
        return b""

    listener = spy_server(reactor, b"220 mx ESMTP\r\n", answer)
    try:
        with pytest.raises(smtp.SMTPPermanentError, match=r"MAIL refused: 550 5\.7\.1 Go away"):
            await smtp.send(b"x", "127.0.0.1", listener.port, tls=None, sender="a@x.test",
                            recipients=["b@x.test"])
        await listener.factory.gone
    finally:
        listener.close()
    assert b"".join(listener.factory.received).endswith(b"DATA\r\nQUIT\r\n")


async def test_a_size_keyword_that_is_no_number_is_ignored(reactor: Any) -> None:
    def answer(data: bytes) -> bytes:
        if data.startswith(b"EHLO"):
            return "250-mx\r\n250 SIZE \u00b2\r\n".encode()  # a digit to str.isdigit()
        return b"550 5.7.1 No\r\n" if data.startswith(b"MAIL") else b""

    listener = spy_server(reactor, b"220 mx ESMTP\r\n", answer)
    try:
        with pytest.raises(smtp.SMTPPermanentError):
            await smtp.send(b"x", "127.0.0.1", listener.port, tls=None, sender="a@x.test",
                            recipients=["b@x.test"])
    finally:
        listener.close()
    # SIZE is offered, with no limit the client can read: it says the size, and no more
    assert b"MAIL FROM:<a@x.test> SIZE=3\r\n" in b"".join(listener.factory.received)


@pytest.mark.parametrize("extra", [b"250 injected\r\n", b"250-half"])
async def test_replies_injected_after_the_starttls_reply_are_refused(
    reactor: Any, extra: bytes
) -> None:
    def answer(data: bytes) -> bytes:
        if data.startswith(b"EHLO"):
            return b"250-mx\r\n250 STARTTLS\r\n"
        return b"220 2.0.0 Go ahead\r\n" + extra if data.startswith(b"STARTTLS") else b""

    listener = spy_server(reactor, b"220 mx ESMTP\r\n", answer)
    try:
        with pytest.raises(smtp.SMTPProtocolError, match="more after its STARTTLS reply"):
            await smtp.send(b"x", "127.0.0.1", listener.port, sender="a@x.test",
                            recipients=["b@x.test"], ca=tls.self_signed()[2])
    finally:
        listener.close()


async def test_ehlo_names_a_domain_or_an_address_literal(reactor: Any) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder)
    try:
        await smtp.send(b"x\r\n", "127.0.0.1", listener.port, tls=None, sender="a@x.test",
                        recipients=["b@x.test"])
        await smtp.send(b"x\r\n", "127.0.0.1", listener.port, tls=None, sender="a@x.test",
                        recipients=["b@x.test"], local_hostname="client.example.org")
    finally:
        listener.close()
    first, second = (e.helo for e in recorder.envelopes)
    assert is_domain(first) and ("." in first)  # a full name here, or [127.0.0.1]
    assert second == "client.example.org"


@pytest.mark.parametrize("where", ["sender", "recipient", "local_hostname"])
@pytest.mark.parametrize("bad", ["\r\n", "\n", "\r", "\x00"])
def test_a_line_end_in_an_address_is_refused_before_anything_is_sent(where: str, bad: str):
    # An address from a form, "a@b.c>\r\nRCPT TO:<victim@x.test", would end MAIL FROM and
    # start a command of the attacker's: the client refuses it before it connects.
    value = f"a@b.c>{bad}RCPT TO:<victim@x.test"
    kw = {"sender": "ok@b.c", "recipients": ["x@y.z"], "local_hostname": None}
    if where == "recipient":
        kw["recipients"] = ["x@y.z", value]
    else:
        kw[where] = value
    with pytest.raises(ValueError, match="would end the SMTP command"):
        smtp.send(b"Subject: x\r\n\r\nhi\r\n", "127.0.0.1", 9, tls=None, **kw)
