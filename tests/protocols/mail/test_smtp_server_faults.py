"""Faults on the SMTP server: deliveries that fail (451 4.3.0, and the client is never told
250 for mail not stored), a 50 MB message, hostile bytes, an idle client."""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from smtp_helpers import RawSMTP, Recorder, ehlo, maildir_messages

import netshell as ns
from netshell.testing import Clock
from protocols.mail import smtp
from protocols.mail.smtp.server import SMTPServerFactory


async def send_one(port: int, body: bytes = b"Subject: x\r\n\r\nhi\r\n") -> tuple[int, str]:
    c = await RawSMTP.connect(port)
    await ehlo(c)
    for line in ("MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA"):
        await c.cmd(line)
    c.send(body + b".\r\n")
    r = await c.reply()
    assert (await c.cmd("NOOP")).code == 250  # the session goes on after a failed delivery
    c.close()
    return r.code, r.text


@pytest.mark.parametrize("how", ["raise", "deferred"])
async def test_a_failing_deliver_callable_gives_451(how: str) -> None:
    seen: list[smtp.Envelope] = []

    def deliver(envelope: smtp.Envelope) -> Any:
        seen.append(envelope)
        if how == "raise":
            raise OSError("disk full")
        return ns.fail(OSError("disk full"))

    listener = smtp.serve(deliver=deliver)
    try:
        assert await send_one(listener.port) == (
            451, "4.3.0 Requested action aborted: local error in processing")
    finally:
        listener.close()
    assert len(seen) == 1 and listener.factory.failed == 1 and listener.factory.delivered == 0


async def test_a_deliver_callable_may_refuse_with_its_own_reply() -> None:
    def deliver(envelope: smtp.Envelope) -> None:
        raise smtp.SMTPPermanentError(smtp.Reply(550, "Mailbox unavailable", "5.1.1"))

    listener = smtp.serve(deliver=deliver)
    try:
        assert await send_one(listener.port) == (550, "5.1.1 Mailbox unavailable")
    finally:
        listener.close()


async def test_the_reply_waits_for_the_deliver_deferred() -> None:
    recorder = Recorder()
    recorder.hold = True
    listener = smtp.serve(deliver=recorder)
    try:
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        c.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n")
        assert [(await c.reply()).code for _ in range(3)] == [250, 250, 354]
        c.send(b"Subject: held\r\n\r\n.\r\nNOOP\r\n")
        await recorder.arrived.wait()
        assert recorder.envelopes == []  # not stored yet: no reply yet, NOOP waits behind
        recorder.held[0].callback(None)
        assert (await c.reply()).code == 250
        assert (await c.reply()).code == 250
        c.close()
    finally:
        listener.close()
    assert len(recorder.envelopes) == 1


async def test_a_maildir_that_fails_gives_451_and_the_next_message_is_stored(
    tmp_path: Path,
) -> None:
    box = tmp_path / "box"
    listener = smtp.serve(deliver=box)
    try:
        shutil.rmtree(box / "tmp")
        assert await send_one(listener.port) == (
            451, "4.3.0 Requested action aborted: local error in processing")
        os.mkdir(box / "tmp")
        code, _ = await send_one(listener.port, b"Subject: again\r\n\r\n")
        assert code == 250
    finally:
        listener.close()
    [stored] = maildir_messages(box)
    assert stored.endswith(b"Subject: again\r\n\r\n")


async def test_a_50_mb_message_is_accepted_or_refused_by_max_size(tmp_path: Path) -> None:
    line = b"0123456789" * 7 + b"abcdef\r\n"  # 78 octets a line
    body = b"Subject: big\r\n\r\n" + line * (50 * 1024 * 1024 // len(line))
    assert len(body) > 50_000_000
    box = tmp_path / "box"
    big = smtp.serve(deliver=box, max_size=64 * 1024 * 1024)
    small = smtp.serve(deliver=box, max_size=50_000_000)
    try:
        result = await smtp.send(body, "127.0.0.1", big.port, sender="a@x.test",
                                 recipients=["b@x.test"], tls=None)
        assert result.reply is not None and result.reply.code == 250
        # the client sees SIZE and refuses before sending; a raw client that does not say
        # SIZE= has it refused after the data
        with pytest.raises(smtp.SMTPNotSupported, match=r"over 127\.0\.0\.1's limit"):
            await smtp.send(body, "127.0.0.1", small.port, sender="a@x.test",
                            recipients=["b@x.test"], tls=None)
        c = await RawSMTP.connect(small.port)
        await ehlo(c)
        refused = await c.cmd(f"MAIL FROM:<a@x.test> SIZE={len(body)}")
        for cmd in ("MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA"):
            await c.cmd(cmd)
        c.send(body + b".\r\n")
        after = await c.reply(timeout=60)
        c.close()
    finally:
        big.close()
        small.close()
    assert (refused.code, refused.text) == (
        552, "5.3.4 Message size exceeds fixed maximum message size")
    assert (after.code, after.text) == (
        552, "5.3.4 Message size exceeds fixed maximum message size")
    [stored] = maildir_messages(box)
    assert stored.endswith(body) and len(stored) - len(body) < 300


async def test_hostile_bytes_cost_only_their_own_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, max_bad_commands=0)
    rng = random.Random(1234)
    try:
        for _ in range(20):
            c = await RawSMTP.connect(listener.port)
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
            c.send(b"EHLO x\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n" + junk
                   + b"\r\n.\r\n" + junk + b"\r\nQUIT\r\n")
            await c.closed(timeout=10)  # QUIT or not, it ends; the server did not crash
        code, _ = await send_one(listener.port)
    finally:
        listener.close()
    assert code == 250
    # answered as SMTP, never by an exception in the server's code (which the transport
    # would log as an error, closing that connection)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_idle_session_is_timed_out(reactor: Any) -> None:
    clock = Clock()
    factory = SMTPServerFactory(Recorder(), idle_timeout=60, clock=clock, hostname="mx.test")
    listener = reactor.listen_tcp(0, factory)
    try:
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        clock.advance(59)
        assert (await c.cmd("NOOP")).code == 250  # a command starts the count again
        clock.advance(59)
        assert (await c.cmd("NOOP")).code == 250  # 118 s in all, never 60 idle
        clock.advance(61)
        r = await c.reply()
        assert (r.code, r.text) == (421, "4.4.2 mx.test Timeout; closing the connection")
        assert await c.closed() == b""
    finally:
        listener.close()
