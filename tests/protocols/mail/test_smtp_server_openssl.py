"""openssl s_client against our SMTP server: its own STARTTLS (``-starttls smtp``) and TLS
from the first byte (implicit_tls), verifying our throwaway certificate
(``-verify_return_error``), then a whole session typed as text, which it sends as is: a
message line starting with a dot that nobody stuffed arrives without it (RFC 5321 4.5.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from peers import require, run_peer
from smtp_helpers import Recorder

from netshell import tls
from protocols.mail import smtp

SESSION = (b"EHLO openssl.test\nMAIL FROM:<a@x.test>\nRCPT TO:<b@x.test>\nDATA\n"
           b"Subject: o\n\n.dot\n.\nQUIT\n")


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_openssl_s_client(tmp_path: Path, certs: Any, mode: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certs[2])
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, tls=tls.server_context(certs[0], certs[1]),
                          hostname="mx.test", implicit_tls=mode == "implicit",
                          require_tls=mode == "starttls")
    starttls = ["-starttls", "smtp"] if mode == "starttls" else []
    try:
        code, out, err = await run_peer(
            [require("openssl"), "s_client", *starttls, "-connect", f"127.0.0.1:{listener.port}",
             "-CAfile", str(ca), "-verify_return_error", "-servername", "localhost", "-crlf",
             "-quiet", "-ign_eof"], stdin=SESSION)
    finally:
        listener.close()
    assert code == 0, err.decode()
    said = out.decode().splitlines()
    assert said[-5:-1] == ["250 2.1.0 Sender <a@x.test> OK", "250 2.1.5 Recipient <b@x.test> OK",
                           "354 End data with <CR><LF>.<CR><LF>",
                           f"250 2.0.0 OK: queued as {recorder.envelopes[0].id}"]
    assert said[-1] == "221 2.0.0 mx.test Bye"
    [envelope] = recorder.envelopes
    assert envelope.tls and envelope.content == b"Subject: o\r\n\r\ndot\r\n"
    assert b" with ESMTPS id " in envelope.data
