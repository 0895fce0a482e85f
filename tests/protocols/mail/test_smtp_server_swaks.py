"""swaks (the SMTP test tool) against our SMTP server: a plain send, --pipeline, STARTTLS
verified against a throwaway CA (-tls --tls-verify), AUTH PLAIN and LOGIN, a message from
stdin into a Maildir. swaks has no BDAT option: BDAT is driven by raw socket in
test_smtp_server_protocol.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from peers import require, run_peer
from smtp_helpers import Recorder, body_of, maildir_messages

from netshell import tls
from protocols.mail import smtp


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


def swaks(port: int, *args: str) -> list[str]:
    return [require("swaks"), "--server", "127.0.0.1", "--port", str(port),
            "--helo", "swaks.test", *args]


async def test_swaks_pipelined_to_two_recipients(tmp_path: Path) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder)
    try:
        code, out, err = await run_peer(swaks(
            listener.port, "--from", "a@x.test", "--to", "b@x.test,c@x.test", "--pipeline",
            "--header", "Subject: piped", "--body", "hello"))
    finally:
        listener.close()
    text = out.decode()
    assert code == 0, text + err.decode()
    # pipelined: MAIL, both RCPTs and DATA go out before the first reply comes back
    sent = [line.strip() for line in text.splitlines() if line.strip().startswith(("->", "<-"))]
    mail = next(i for i, line in enumerate(sent) if line.startswith("-> MAIL FROM"))
    assert [line[:12] for line in sent[mail: mail + 4]] == [
        "-> MAIL FROM", "-> RCPT TO:<", "-> RCPT TO:<", "-> DATA"]
    assert sent[mail + 4].startswith("<-  250 2.1.0")
    [envelope] = recorder.envelopes
    assert (envelope.helo, envelope.sender, envelope.recipients) == (
        "swaks.test", "a@x.test", ["b@x.test", "c@x.test"])
    assert b"Subject: piped\r\n" in envelope.content and b"\r\n\r\nhello\r\n" in envelope.content


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_swaks_starttls_verified_and_auth(
    tmp_path: Path, certs: Any, mechanism: str
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certs[2])
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, tls=tls.server_context(certs[0], certs[1]),
                          auth={"alice": "s3cret"}, require_tls=True)
    try:
        code, out, err = await run_peer(swaks(
            listener.port, "--from", "a@x.test", "--to", "b@x.test", "-tls", "--tls-verify",
            "--tls-ca-path", str(ca), "--tls-sni", "localhost", "-a", mechanism,
            "--auth-user", "alice", "--auth-password", "s3cret"))
        wrong, out2, _ = await run_peer(swaks(
            listener.port, "--from", "a@x.test", "--to", "b@x.test", "-tls",
            "-a", mechanism, "--auth-user", "alice", "--auth-password", "nope"))
    finally:
        listener.close()
    assert code == 0, out.decode() + err.decode()
    assert "<~  235 2.7.0 Authentication successful" in out.decode()  # ~: under TLS
    assert wrong != 0 and "<~* 535 5.7.8 Authentication credentials invalid" in out2.decode()
    [envelope] = recorder.envelopes
    assert envelope.tls and envelope.user == "alice"
    assert b" with ESMTPSA id " in envelope.data


async def test_swaks_message_from_stdin_into_a_maildir(tmp_path: Path) -> None:
    box = tmp_path / "box"
    listener = smtp.serve(deliver=box, hostname="mx.test")
    message = (b"From: a@x.test\r\nTo: b@x.test\r\nSubject: stdin\r\n\r\n.leading dot\r\n"
               b"..two dots\r\nlast line\r\n")
    try:
        code, out, err = await run_peer(
            swaks(listener.port, "--from", "a@x.test", "--to", "b@x.test", "--data", "-"),
            stdin=message)
    finally:
        listener.close()
    assert code == 0, out.decode() + err.decode()
    assert "-> ..leading dot" in out.decode()  # swaks stuffed it; the server unstuffs
    [stored] = maildir_messages(box)
    assert stored.startswith(b"Return-Path: <a@x.test>\r\nReceived: from swaks.test ([127.0.0.1])"
                             b"\r\n\tby mx.test with ESMTP id ")
    assert b"\r\n\tfor <b@x.test>; " in stored  # one recipient: named in the trace line
    assert body_of(stored) == message + b"\r\n"  # swaks sends an empty line before the dot
