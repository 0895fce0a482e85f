"""SMTP smuggling (the 2023 attack): only <CRLF>.<CRLF> ends a message on our server.

Each probe sends a first message whose body holds a bare LF or CR, or a fake end
(``\\n.\\n``, ``\\r.\\r``, ``\\r\\n.\\n``, ``\\n.\\r\\n``, ``\\r.\\r\\n``), followed by a
second, smuggled transaction, then the real end. A server that takes the fake end for one
would deliver the smuggled message (from a sender the attacker forged); ours reads on to the
real end, refuses the whole thing with a 554 5.6.0, and delivers nothing. With
``bare_line_ends="normalize"`` it delivers exactly one message, the first, with the smuggled
text inside it as data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from smtp_helpers import RawSMTP, Recorder, ehlo, maildir_messages

from protocols.mail import smtp

SMUGGLED = (b"MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsend money\r\n")
# a bare LF and a bare CR on their own, then the fake ends built from them
FAKE_ENDS = [b"\n", b"\r", b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r"]


async def probe(port: int, fake_end: bytes) -> list[tuple[int, str]]:
    client = await RawSMTP.connect(port)
    await ehlo(client)
    assert (await client.cmd("MAIL FROM:<alice@example.org>")).code == 250
    assert (await client.cmd("RCPT TO:<bob@example.org>")).code == 250
    assert (await client.cmd("DATA")).code == 354
    client.send(b"Subject: first\r\n\r\nhello" + fake_end + SMUGGLED + b".\r\n")
    replies = [await client.reply()]
    # the server is in step: the next command gets its own reply
    replies.append(await client.cmd("NOOP"))
    client.close()
    return [(r.code, r.text) for r in replies]


@pytest.mark.parametrize("fake_end", FAKE_ENDS, ids=[repr(f) for f in FAKE_ENDS])
async def test_a_fake_end_refuses_the_message_and_smuggles_nothing(
    tmp_path: Path, fake_end: bytes
) -> None:
    box = tmp_path / "box"
    listener = smtp.serve(deliver=box)
    try:
        replies = await probe(listener.port, fake_end)
    finally:
        listener.close()
    bare = "LF" if fake_end.replace(b"\r\n", b"").count(b"\n") else "CR"
    assert replies[0] == (554, f"5.6.0 Message refused: a bare <{bare}> in it "
                               "(lines end with <CR><LF> only)")
    assert replies[1][0] == 250
    assert maildir_messages(box) == []


@pytest.mark.parametrize("fake_end", FAKE_ENDS, ids=[repr(f) for f in FAKE_ENDS])
async def test_normalized_bare_line_ends_never_end_the_message(
    tmp_path: Path, fake_end: bytes
) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, bare_line_ends="normalize")
    try:
        replies = await probe(listener.port, fake_end)
    finally:
        listener.close()
    assert replies[0][0] == 250 and replies[1][0] == 250
    [envelope] = recorder.envelopes  # one message: the smuggled one was never a message
    assert envelope.sender == "alice@example.org"
    assert envelope.recipients == ["bob@example.org"]
    assert b"MAIL FROM:<ceo@bank.test>\r\n" in envelope.content  # data, not a command
    assert b"\r\n" in envelope.content and b"\n" not in envelope.content.replace(b"\r\n", b"")
    assert b"\r" not in envelope.content.replace(b"\r\n", b"")


async def test_bare_lf_in_a_bdat_message_is_refused(tmp_path: Path) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder)
    try:
        client = await RawSMTP.connect(listener.port)
        await ehlo(client)
        assert (await client.cmd("MAIL FROM:<alice@example.org>")).code == 250
        assert (await client.cmd("RCPT TO:<bob@example.org>")).code == 250
        body = b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<ceo@bank.test>\r\n"
        reply = await client.cmd(b"BDAT %d LAST\r\n" % len(body) + body[:-2])
        client.close()
    finally:
        listener.close()
    assert reply.code == 554 and reply.text.startswith("5.6.0")
    assert recorder.called == 0
