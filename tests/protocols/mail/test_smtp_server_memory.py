"""The SMTP server driven in memory (a StringTransport, a Clock): what depends on how the
bytes are cut, or on when a Deferred fires, checked without a socket."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from smtp_helpers import Recorder

import netshell as ns
from netshell.testing import Clock, StringTransport
from protocols.mail.smtp.server import SMTPServerFactory, SMTPServerProtocol


def session(deliver: Any, **settings: Any) -> tuple[SMTPServerProtocol, StringTransport]:
    clock = Clock()
    factory = SMTPServerFactory(deliver, reactor=clock, clock=clock, hostname="mx.test",
                                **settings)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    transport.clear()  # the greeting
    return protocol, transport


def replies(transport: StringTransport) -> list[str]:
    out = transport.value().decode().splitlines()
    transport.clear()
    return out


def test_no_reply_until_the_delivery_fires_and_commands_behind_it_wait() -> None:
    recorder = Recorder()
    recorder.hold = True
    protocol, transport = session(recorder)
    protocol.data_received(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                           b"DATA\r\n")
    assert replies(transport)[-1] == "354 End data with <CR><LF>.<CR><LF>"
    protocol.data_received(b"Subject: held\r\n\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert recorder.called == 1
    assert replies(transport) == []  # nothing said: not stored yet, and NOOP waits
    recorder.held[0].callback(None)
    said = replies(transport)
    assert said[0].startswith("250 2.0.0 OK: queued as ")
    assert said[1:] == ["250 2.0.0 OK", "221 2.0.0 mx.test Bye"]
    assert transport.disconnecting


def test_a_delivery_that_fails_later_is_a_451() -> None:
    recorder = Recorder()
    recorder.hold = True
    protocol, transport = session(recorder)
    protocol.data_received(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                           b"DATA\r\n")
    replies(transport)
    protocol.data_received(b"x\r\n.\r\n")
    recorder.held[0].errback(ns.Failure(OSError("the disk went away")))
    assert replies(transport) == ["451 4.3.0 Requested action aborted: local error in processing"]


def test_the_rest_of_a_command_line_too_long_is_dropped_however_it_comes() -> None:
    protocol, transport = session(Recorder())
    protocol.data_received(b"NOOP " + b"x" * 5000)  # no line end yet: over the limit
    protocol.data_received(b"y\r\nNOOP\r\n")  # its end, then a real command
    assert replies(transport) == ["500 5.5.2 Line too long (the limit is 4096 octets)",
                                  "250 2.0.0 OK"]


def test_a_message_cut_anywhere_still_arrives_whole() -> None:
    recorder = Recorder()
    protocol, transport = session(recorder)
    stream = (b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"
              b"Subject: s\r\n\r\n..one\r\n.\r\n")
    for i in range(len(stream)):
        protocol.data_received(stream[i:i + 1])  # a byte at a time
    assert recorder.envelopes[0].content == b"Subject: s\r\n\r\n.one\r\n"
    assert replies(transport)[-1].startswith("250 2.0.0 OK: queued as ")


def test_a_full_write_buffer_stops_the_commands_until_it_drains() -> None:
    recorder = Recorder()
    clock = Clock()
    factory = SMTPServerFactory(recorder, reactor=clock, clock=clock, hostname="mx.test",
                                max_bad_commands=0)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol, buffer_limit=100)
    protocol.connection_made(transport)
    protocol.data_received(b"NOOP\r\n" * 1000)  # a client that sends and never reads
    assert transport.write_paused and transport.reading_paused
    held = transport.value().count(b"250 ")
    assert held < 20  # not a thousand replies piled up
    transport.drain()
    assert transport.value().count(b"250 ") >= 1  # it goes on once drained


def test_the_empty_auth_challenge_keeps_its_space() -> None:
    protocol, transport = session(Recorder(), auth={"u": "p"}, allow_insecure_auth=True)
    protocol.data_received(b"EHLO c.test\r\n")
    transport.clear()
    protocol.data_received(b"AUTH PLAIN\r\n")
    assert transport.value() == b"334 \r\n"  # RFC 4954: "334" SP [base64]


def test_no_idle_timeout_while_a_delivery_is_under_way() -> None:
    recorder = Recorder()
    recorder.hold = True
    protocol, transport = session(recorder, idle_timeout=60, delivery_timeout=0)
    clock = protocol.factory.clock
    protocol.data_received(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                           b"DATA\r\nx\r\n.\r\n")
    transport.clear()
    clock.advance(600)  # the delivery takes long: the client waits for our reply
    assert transport.value() == b"" and not transport.disconnecting
    recorder.held[0].callback(None)
    assert transport.value().startswith(b"250 2.0.0 OK: queued as ")
    transport.clear()
    clock.advance(61)  # idle again, for real now
    assert transport.value() == b"421 4.4.2 mx.test Timeout; closing the connection\r\n"
    assert transport.disconnecting


def test_a_helo_that_is_no_domain_is_not_copied_into_the_received_line() -> None:
    recorder = Recorder()
    protocol, _ = session(recorder)
    protocol.data_received(b"EHLO my (fake) laptop\r\nMAIL FROM:<a@x.test>\r\n"
                           b"RCPT TO:<b@x.test>\r\nDATA\r\nx\r\n.\r\n")
    [envelope] = recorder.envelopes
    assert envelope.helo == "my (fake) laptop"  # kept as said, for the deliver callable
    assert envelope.data.startswith(b"Received: from unknown ([127.0.0.1])\r\n\tby mx.test ")



def test_each_message_of_a_session_gets_its_own_trace_line_and_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Received line's start is made once per session and HELO, its date once a
    second, and the transaction's lists are handed to the envelope: a second HELO, another
    second, another transaction must each show."""
    import email.utils
    import types

    from protocols.mail.smtp import server

    # the wall clock the server reads: the first two messages in one second, the third
    # in the next (a date made once a second must change then)
    times = iter([1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.5])
    monkeypatch.setattr(server, "time", types.SimpleNamespace(time=lambda: next(times)))
    recorder = Recorder()
    protocol, transport = session(recorder)
    protocol.data_received(b"EHLO a.test\r\nMAIL FROM:<a@x.test> BODY=8BITMIME\r\n"
                           b"RCPT TO:<b@x.test>\r\nDATA\r\nx\r\n.\r\n")
    protocol.data_received(b"EHLO my laptop\r\nMAIL FROM:<c@x.test>\r\nRCPT TO:<d@x.test>\r\n"
                           b"RCPT TO:<e@x.test>\r\nDATA\r\ny\r\n.\r\n")
    protocol.data_received(b"HELO b.test\r\nMAIL FROM:<f@x.test>\r\nRCPT TO:<g@x.test>\r\n"
                           b"DATA\r\nz\r\n.\r\n")
    first, second, third = recorder.envelopes
    assert first.data.startswith(b"Received: from a.test ([127.0.0.1])\r\n\tby mx.test with "
                                 b"ESMTP id " + first.id.encode() + b"\r\n\tfor <b@x.test>; ")
    assert second.data.startswith(b"Received: from unknown ([127.0.0.1])\r\n\tby mx.test "
                                  b"with ESMTP id " + second.id.encode() + b"; ")
    assert third.data.startswith(b"Received: from b.test ([127.0.0.1])\r\n\tby mx.test with "
                                 b"SMTP id " + third.id.encode())
    assert (first.recipients, second.recipients, third.recipients) == (
        ["b@x.test"], ["d@x.test", "e@x.test"], ["g@x.test"])
    assert (first.mail_options, second.mail_options) == (["BODY=8BITMIME"], [])
    assert (first.rcpt_options, second.rcpt_options) == ([[]], [[], []])
    for envelope in recorder.envelopes:  # the date is the envelope's second's
        line = envelope.data.split(b"\r\n\r\n")[0].split(b"\r\n")[0]
        when = envelope.data.split(b"; ", 1)[1].split(b"\r\n")[0].decode()
        assert when == email.utils.formatdate(int(envelope.received_at), localtime=True), line
        assert email.utils.parsedate_to_datetime(when).timestamp() == int(envelope.received_at)
    assert [int(e.received_at) for e in recorder.envelopes] == [1_700_000_000] * 2 + [
        1_700_000_001]
    assert [r for r in replies(transport) if "queued" in r] == [
        f"250 2.0.0 OK: queued as {e.id}" for e in recorder.envelopes]

def test_beyond_max_connections_a_session_gets_421() -> None:
    clock = Clock()
    factory = SMTPServerFactory(Recorder(), reactor=clock, clock=clock, hostname="mx.test",
                                max_connections=2)
    transports = []
    for _ in range(3):
        protocol = factory.build_protocol(None)
        transport = StringTransport(protocol=protocol)
        protocol.connection_made(transport)
        transports.append(transport)
    assert [t.value()[:4] for t in transports] == [b"220 ", b"220 ", b"421 "]
    assert transports[2].value() == b"421 4.3.2 mx.test Too many connections; try again later\r\n"
    assert transports[2].disconnecting and not transports[0].disconnecting
    assert len(factory.sessions) == 2


def test_thousands_of_bdat_messages_in_one_read_with_a_deliver_that_answers_at_once() -> None:
    recorder = Recorder()  # returns at once: the reply goes out while the input is read
    protocol, transport = session(recorder, max_bad_commands=0)
    one = b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT 5 LAST\r\nhello"
    protocol.data_received(b"EHLO c.test\r\n" + one * 3000 + b"QUIT\r\n")
    assert len(recorder.envelopes) == 3000
    assert transport.value().endswith(b"221 2.0.0 mx.test Bye\r\n")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_makes_ids_of_its_own() -> None:
    """Message ids carry the process id, made once a second: a child forked within that
    second shares the parent's counter, so its ids must carry its own process id."""
    from protocols.mail.smtp import server

    now = time.time()
    parent = server._new_id(now)
    assert parent[-10:-6] == f"{os.getpid() & 0xFFFF:04X}"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write one id made in the same second, and go
        try:
            os.write(w, server._new_id(now).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        child = f.read().decode()
    os.waitpid(pid, 0)
    assert child[-10:-6] == f"{pid & 0xFFFF:04X}" and child != parent
    assert server._new_id(now)[-10:-6] == parent[-10:-6]  # the parent's own, still


def test_a_command_sent_a_byte_at_a_time_does_not_keep_the_session() -> None:
    # slowloris: bytes that never make a line do not move the idle timer; lines do
    protocol, transport = session(Recorder(), idle_timeout=60)
    clock = protocol.factory.clock
    protocol.data_received(b"EHLO c.test\r\n")
    replies(transport)
    clock.advance(50)
    protocol.data_received(b"NOOP\r\n")  # a whole line: 60 s from now
    assert replies(transport) == ["250 2.0.0 OK"]
    for _ in range(6):
        assert replies(transport) == []
        clock.advance(11)
        protocol.data_received(b"N")  # a byte every 11 s, never a line end
    assert replies(transport) == ["421 4.4.2 mx.test Timeout; closing the connection"]


def test_a_delivery_that_never_ends_is_answered_451_at_its_bound() -> None:
    recorder = Recorder()
    recorder.hold = True  # deliver returns a Deferred that nobody fires
    protocol, transport = session(recorder, idle_timeout=0, delivery_timeout=600)
    protocol.data_received(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                           b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n")
    assert replies(transport)[-1] == "354 End data with <CR><LF>.<CR><LF>"
    protocol.factory.clock.advance(599)
    assert replies(transport) == []  # still waiting for the delivery
    protocol.factory.clock.advance(1)
    assert replies(transport) == ["451 4.4.5 Delivery took too long; try again later",
                                  "250 2.0.0 OK"]  # and the NOOP behind it
    assert recorder.held[0].called  # cancelled


def test_an_smtputf8_address_that_is_not_utf8_is_refused() -> None:
    recorder = Recorder()
    protocol, transport = session(recorder)
    protocol.data_received(b"EHLO c.test\r\nMAIL FROM:<a@x.test> SMTPUTF8\r\n"
                           b"RCPT TO:<\xff\xfe@y.test>\r\nRCPT TO:<b@\xc3.test>\r\n"
                           b"RCPT TO:<j\xc3\xbcrgen@y.test>\r\nRSET\r\n"
                           b"MAIL FROM:<\xe9@x.test> SMTPUTF8\r\n")
    said = replies(transport)[-5:]
    assert said[:2] == ["553 5.1.3 The recipient's address is not UTF-8"] * 2
    assert said[2].startswith("250 2.1.5 ")  # UTF-8: taken
    assert said[3].startswith("250 ")  # RSET
    assert said[4] == "553 5.1.7 The sender's address is not UTF-8"


def test_a_bdat_with_a_bad_keyword_has_its_chunk_dropped_not_run_as_commands() -> None:
    recorder = Recorder()
    protocol, transport = session(recorder)
    protocol.data_received(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n")
    replies(transport)
    protocol.data_received(b"BDAT 18 LASTX\r\nRSET\r\nNOOP\r\nQUIT\r\n")  # 18 octets of chunk
    assert replies(transport) == ["501 5.5.4 Syntax: BDAT <size> [LAST]"]  # no 250s, no 221
    assert not transport.is_closing()
    protocol.data_received(b"BDAT 1x\r\n")  # no size at all: nothing to go by
    assert replies(transport) == ["501 5.5.4 Syntax: BDAT <size> [LAST]; closing the "
                                  "connection"]
    assert transport.is_closing()
    assert recorder.called == 0
