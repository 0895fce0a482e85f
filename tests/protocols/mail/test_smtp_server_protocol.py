"""Our SMTP server byte by byte, with a raw client: reply codes (RFC 5321 and the enhanced
codes of RFC 3463), pipelining, BDAT (CHUNKING, driven by raw socket: neither swaks nor
smtplib can send it), the limits, STARTTLS and AUTH corner cases."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from smtp_helpers import RawSMTP, Recorder, ehlo, maildir_messages

from netshell import tls
from protocols.mail import smtp


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder, reactor: Any) -> Any:
    listener = smtp.serve(deliver=recorder, hostname="mx.test", max_recipients=3,
                          max_bad_commands=100)
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


async def codes(client: RawSMTP, *lines: str) -> list[str]:
    """Each line's reply as 'code text'."""
    out = []
    for line in lines:
        r = await client.cmd(line)
        out.append(f"{r.code} {r.text}")
    return out


async def test_reply_codes_of_the_commands(server: Any, recorder: Recorder) -> None:
    c = await RawSMTP.connect(server.port)
    assert await codes(c, "MAIL FROM:<a@example.org>", "EHLO", "HELO", "FOO bar", "EXPN x",
                       "") == [
        "503 5.5.1 Send HELO or EHLO first",
        "501 5.5.4 Syntax: EHLO <domain>",
        "501 5.5.4 Syntax: HELO <domain>",
        "500 5.5.2 Command unrecognized",
        "502 5.5.1 EXPN not implemented",
        "500 5.5.2 Command unrecognized",
    ]
    await ehlo(c)
    assert await codes(
        c, "RCPT TO:<b@example.org>", "DATA", "MAIL FROM:a@example.org", "MAIL TO:<a@x.test>",
        "MAIL FROM:<a@@x.test>", "MAIL FROM:<a@x.test> FOO=1", "MAIL FROM:<a@x.test> SIZE=x",
        "MAIL FROM:<a@x.test> BODY=BINARYMIME", "MAIL FROM:<a@x.test> SIZE=1 SIZE=2",
        "mail from:<a@x.test> size=10 body=8bitmime", "MAIL FROM:<c@x.test>",
        "RCPT TO:<>", "RCPT TO:<b@x.test> NOTIFY=NEVER", "RCPT TO:<postmaster>",
        "RCPT TO:<@relay.test:b@x.test>", "DATA x", "VRFY", "VRFY bob", "NOOP anything",
        "RSET", "DATA",
    ) == [
        "503 5.5.1 Need MAIL command first",
        "503 5.5.1 Need MAIL command first",
        "501 5.1.7 Syntax error: the sender address goes in <...>",
        "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]",
        "501 5.1.7 Bad sender address syntax",
        "555 5.5.4 MAIL parameter FOO not recognized",
        "501 5.5.4 SIZE takes a number of octets",
        "555 5.5.4 BODY is 7BIT or 8BITMIME",
        "501 5.5.4 Parameter SIZE given twice",
        "250 2.1.0 Sender <a@x.test> OK",
        "503 5.5.1 Nested MAIL command: one transaction at a time",
        "501 5.1.3 The null address <> is no recipient",
        "555 5.5.4 RCPT parameter NOTIFY not recognized",
        "250 2.1.5 Recipient <postmaster> OK",
        "250 2.1.5 Recipient <b@x.test> OK",
        "501 5.5.4 Syntax: DATA (no parameters)",
        "501 5.5.4 Syntax: VRFY <address>",
        "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
        "250 2.0.0 OK",
        "250 2.0.0 OK",
        "503 5.5.1 Need MAIL command first",
    ]
    help_all = await c.cmd("HELP")
    assert help_all.code == 214 and all(line.startswith("2.0.0 ") for line in help_all.lines)
    assert "QUIT" in help_all.text
    assert await codes(c, "HELP mail", "HELP nothing", "MAIL FROM:<a@x.test>") == [
        "214 2.0.0 MAIL FROM:<sender> [SIZE=<n>] [BODY=7BIT|8BITMIME] [SMTPUTF8]",
        "504 5.5.4 HELP: no such command 'nothing'",
        "250 2.1.0 Sender <a@x.test> OK",
    ]
    assert await codes(c, "DATA") == ["554 5.5.1 No valid recipients"]
    bye = await c.cmd("QUIT")
    assert (bye.code, bye.text) == (221, "2.0.0 mx.test Bye")
    assert await c.closed() == b""
    assert recorder.called == 0


async def test_esmtp_parameters_need_ehlo(server: Any) -> None:
    c = await RawSMTP.connect(server.port)
    assert await codes(c, "HELO client.test", "MAIL FROM:<a@x.test> SIZE=10") == [
        "250 mx.test", "555 5.5.4 MAIL parameters need EHLO"]
    c.close()


async def test_pipelined_commands_are_answered_in_order(server: Any, recorder: Recorder) -> None:
    c = await RawSMTP.connect(server.port)
    c.send(b"EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
           b"RCPT TO:<bad>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n")
    got = [(await c.reply()).code for _ in range(6)]
    assert got == [250, 250, 250, 501, 250, 354]
    # the message, its end and the next commands in one write too (RFC 2920)
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    got = [(await c.reply()).code for _ in range(4)]
    assert got == [250, 250, 250, 221]
    assert await c.closed() == b""
    [envelope] = recorder.envelopes
    assert envelope.recipients == ["b@x.test", "c@x.test"]
    assert envelope.content == b"Subject: p\r\n\r\nbody\r\n"
    assert b"\r\n\tfor" not in envelope.data


async def test_too_many_recipients(server: Any) -> None:
    c = await RawSMTP.connect(server.port)
    await ehlo(c)
    got = await codes(c, "MAIL FROM:<a@x.test>", *[f"RCPT TO:<r{i}@x.test>" for i in range(4)])
    assert got[1:4] == [f"250 2.1.5 Recipient <r{i}@x.test> OK" for i in range(3)]
    assert got[4] == "452 4.5.3 Too many recipients"
    c.close()


async def test_a_command_line_too_long_is_refused_and_the_session_goes_on(server: Any) -> None:
    c = await RawSMTP.connect(server.port)
    await ehlo(c)
    c.send(b"NOOP " + b"x" * 5000)
    c.send(b"y" * 5000 + b"\r\n")
    r = await c.reply()
    assert (r.code, r.text) == (500, "5.5.2 Line too long (the limit is 4096 octets)")
    assert (await c.cmd("NOOP")).code == 250  # the rest of the long line was not a command
    c.close()


async def test_a_message_line_too_long_is_refused_after_the_end(
    server: Any, recorder: Recorder
) -> None:
    c = await RawSMTP.connect(server.port)
    await ehlo(c)
    await codes(c, "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA")
    c.send(b"Subject: long\r\n\r\n" + b"z" * 999 + b"\r\nshort\r\n.\r\n")
    r = await c.reply()
    assert (r.code, r.text) == (
        500, "5.5.2 Line too long (the limit is 1000 octets, RFC 5321 4.5.3.1.6)")
    # 998 octets and the CRLF: the longest line RFC 5322 allows goes through
    await codes(c, "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA")
    c.send(b"Subject: ok\r\n\r\n" + b"z" * 998 + b"\r\n.\r\n")
    assert (await c.reply()).code == 250
    assert [e.content.count(b"z") for e in recorder.envelopes] == [998]
    c.close()


async def test_an_early_talker_is_refused_and_cut_off(recorder: Recorder) -> None:
    listener = smtp.serve(deliver=recorder, greeting_delay=30)
    try:
        c = await RawSMTP.connect(listener.port, greet=False)
        c.send(b"EHLO spammer.test\r\nMAIL FROM:<a@x.test>\r\n")
        r = await c.reply()
        rest = await c.closed()
    finally:
        listener.close()
    assert (r.code, r.text) == (554, "5.5.0 Protocol error: you spoke before my greeting")
    assert rest == b""  # closed, with nothing else said


async def test_bad_commands_are_counted_and_the_connection_cut_off(recorder: Recorder) -> None:
    listener = smtp.serve(deliver=recorder, max_bad_commands=3, hostname="mx.test")
    try:
        c = await RawSMTP.connect(listener.port)
        assert (await c.cmd("EHLO ok.test")).code == 250
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nMAIL FROM:<x>\r\nNOOP\r\n")
        got = [await c.reply() for _ in range(4)]
        rest = await c.closed()
    finally:
        listener.close()
    assert [r.code for r in got] == [500, 500, 501, 421]
    assert got[3].text == "4.7.0 mx.test Too many errors; closing"
    assert rest == b""  # NOOP was never answered


async def test_bdat_chunks_by_raw_socket(server: Any, recorder: Recorder) -> None:
    c = await RawSMTP.connect(server.port)
    await ehlo(c)
    await codes(c, "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>")
    first = b"Subject: chunks\r\n\r\n.leading dot stays\r\n"
    second = b"bare-free end\r\n"
    # a chunk, the next BDAT and its chunk, and a NOOP, all in one write
    c.send(b"BDAT %d\r\n" % len(first) + first + b"BDAT %d LAST\r\n" % len(second) + second
           + b"NOOP\r\n")
    got = [await c.reply() for _ in range(3)]
    assert [(r.code, r.text) for r in got[:1]] == [(250, f"2.0.0 {len(first)} octets received")]
    assert got[1].code == 250 and got[1].text.startswith("2.0.0 OK: queued as ")
    assert got[2].code == 250
    assert recorder.envelopes[0].content == first + second  # no dot-unstuffing in BDAT
    # DATA and BDAT do not mix; BDAT 0 LAST ends an empty message
    await codes(c, "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>")
    c.send(b"BDAT 3\r\nabc")
    assert (await c.reply()).code == 250
    assert await codes(c, "DATA") == ["503 5.5.1 DATA after BDAT: one or the other"]
    r = await c.cmd("BDAT 0 LAST")
    assert r.code == 250 and r.text == f"2.0.0 OK: queued as {recorder.envelopes[1].id}"
    assert recorder.envelopes[1].content == b"abc"
    c.close()


async def test_bdat_refusals_still_read_the_chunk(tmp_path: Path) -> None:
    recorder = Recorder()
    listener = smtp.serve(deliver=recorder, max_size=10)
    try:
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        # no transaction: refused, but its 5 octets are read, not taken for commands
        c.send(b"BDAT 5 LAST\r\nNOOP\r")
        r = await c.reply()
        assert (r.code, r.text) == (503, "5.5.1 Need MAIL command first")
        await codes(c, "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>")
        c.send(b"BDAT 8\r\n12345678")
        assert (await c.reply()).code == 250
        c.send(b"BDAT 8 LAST\r\n12345678")
        r = await c.reply()
        assert (r.code, r.text) == (552, "5.3.4 Message size exceeds fixed maximum message size")
        # no size to go by: what follows cannot be told from the chunk, the session ends
        c.send(b"BDAT x\r\nNOOP\r\n")
        r = await c.reply()
        assert (r.code, r.text) == (501, "5.5.4 Syntax: BDAT <size> [LAST]; closing the "
                                         "connection")
        assert await c.closed() == b""
        c.close()
    finally:
        listener.close()
    assert recorder.called == 0


async def test_starttls_drops_what_was_sent_in_clear_behind_it(
    recorder: Recorder, certs: Any
) -> None:
    listener = smtp.serve(deliver=recorder, tls=tls.server_context(certs[0], certs[1]))
    try:
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        assert (await c.cmd("MAIL FROM:<a@x.test>")).code == 250
        c.send(b"STARTTLS\r\nRCPT TO:<injected@x.test>\r\n")  # the injection
        r = await c.reply()
        assert (r.code, r.text) == (220, "2.0.0 Ready to start TLS")
        await c.starttls(certs[2])
        # all that was said in clear is forgotten: HELO, the transaction, the injected RCPT
        assert await codes(c, "MAIL FROM:<a@x.test>") == ["503 5.5.1 Send HELO or EHLO first"]
        features = (await ehlo(c)).lines
        assert "STARTTLS" not in features
        assert await codes(c, "RCPT TO:<b@x.test>", "STARTTLS", "STARTTLS x") == [
            "503 5.5.1 Need MAIL command first", "503 5.5.1 TLS already active",
            "501 5.5.4 Syntax error (no parameters allowed)"]
        c.close()
    finally:
        listener.close()


async def test_require_tls_and_require_auth(recorder: Recorder, certs: Any) -> None:
    listener = smtp.serve(deliver=recorder, tls=tls.server_context(certs[0], certs[1]),
                          require_tls=True, auth={"u": "p"}, require_auth=True)
    try:
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        assert await codes(c, "MAIL FROM:<a@x.test>", "AUTH PLAIN") == [
            "530 5.7.0 Must issue a STARTTLS command first"] * 2
        assert (await c.cmd("STARTTLS")).code == 220
        await c.starttls(certs[2])
        await ehlo(c)
        assert await codes(c, "MAIL FROM:<a@x.test>") == ["530 5.7.0 Authentication required"]
        c.close()
    finally:
        listener.close()


async def test_auth_exchanges_and_their_errors(recorder: Recorder) -> None:
    listener = smtp.serve(deliver=recorder, auth={"alice": "pw"}, allow_insecure_auth=False)
    insecure = smtp.serve(deliver=recorder, auth={"alice": "pw"}, allow_insecure_auth=True)
    plain = base64.b64encode(b"\0alice\0pw").decode()
    try:
        c = await RawSMTP.connect(listener.port)
        features = (await ehlo(c)).lines
        assert not any(f.startswith("AUTH") for f in features)
        assert await codes(c, f"AUTH PLAIN {plain}") == [
            "538 5.7.11 Encryption required for requested authentication mechanism"]
        c.close()
        c = await RawSMTP.connect(insecure.port)
        assert await codes(c, f"AUTH PLAIN {plain}") == ["503 5.5.1 Send EHLO first"]
        assert "AUTH PLAIN LOGIN" in (await ehlo(c)).lines
        assert await codes(c, "AUTH CRAM-MD5", "AUTH PLAIN", "*", "AUTH PLAIN", "not base64!",
                           "AUTH PLAIN " + base64.b64encode(b"bob\0alice\0pw").decode(),
                           "AUTH LOGIN", base64.b64encode(b"alice").decode(),
                           base64.b64encode(b"wrong").decode(),
                           "AUTH LOGIN " + base64.b64encode(b"alice").decode(),
                           base64.b64encode(b"pw").decode(),
                           f"AUTH PLAIN {plain}") == [
            "504 5.5.4 Unrecognized authentication type",
            "334 ",
            "501 5.0.0 Authentication cancelled",
            "334 ",
            "501 5.5.2 Cannot decode the response (base64 of UTF-8)",
            "535 5.7.8 Authentication credentials invalid",
            "334 VXNlcm5hbWU6",
            "334 UGFzc3dvcmQ6",
            "535 5.7.8 Authentication credentials invalid",
            "334 UGFzc3dvcmQ6",
            "235 2.7.0 Authentication successful",
            "503 5.5.1 Already authenticated",
        ]
        c.send(b"AUTH PLAIN\r\n")
        assert (await c.reply()).code == 503  # still authenticated: no new exchange
        c.close()
        # an AUTH line over RFC 4954's 12288 octets
        c = await RawSMTP.connect(insecure.port)
        await ehlo(c)
        assert (await c.cmd("AUTH PLAIN")).code == 334
        r = await c.cmd("A" * 13000)
        assert (r.code, r.text) == (500, "5.5.6 Authentication exchange line is too long")
        c.close()
    finally:
        listener.close()
        insecure.close()


async def test_a_checker_callable_may_answer_later(recorder: Recorder) -> None:
    import netshell as ns

    asked: list[tuple[str, str]] = []

    def checker(user: str, password: str) -> Any:
        asked.append((user, password))
        return ns.succeed(password == "later")

    listener = smtp.serve(deliver=recorder, auth=checker, allow_insecure_auth=True)
    try:
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        token = base64.b64encode(b"\0carol\0later").decode()
        c.send(f"AUTH PLAIN {token}\r\nMAIL FROM:<a@x.test>\r\n".encode())  # pipelined
        assert [(await c.reply()).code for _ in range(2)] == [235, 250]
        c.close()
    finally:
        listener.close()
    assert asked == [("carol", "later")]


async def test_a_client_dropping_during_data_delivers_nothing(tmp_path: Path) -> None:
    box = tmp_path / "box"
    listener = smtp.serve(deliver=box)
    try:
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        await codes(c, "MAIL FROM:<a@x.test>", "RCPT TO:<b@x.test>", "DATA")
        c.send(b"Subject: half\r\n\r\nthe first half\r\n.")  # almost an end
        await c.writer.drain()
        c.writer.transport.abort()
        for _ in range(1000):  # loop turns until the server has seen the drop
            if not listener.factory.sessions:
                break
            await asyncio.sleep(0)
        assert not listener.factory.sessions
        # the server lives on: the next client is served
        c = await RawSMTP.connect(listener.port)
        await ehlo(c)
        c.close()
    finally:
        listener.close()
    assert maildir_messages(box) == []
    assert listener.factory.delivered == 0
