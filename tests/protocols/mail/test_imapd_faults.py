"""The IMAP server under faults: a client that drops in the middle of an APPEND, two
sessions racing on EXPUNGE, a 50 MB message appended and fetched (sent from its file a
chunk at a time), malformed commands and literals, literals over the limit, a flood of
bad commands, an over-long line, and the autologout timer (on a Clock, in memory). Each
answered with IMAP's own error, and only the faulty connection closes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from imapd_helpers import USERS, RawIMAP, seed

from netshell.failure import Failure
from netshell.testing import Clock, StringTransport
from protocols.mail.imap.server import IMAPServerFactory, serve
from protocols.mail.maildir import Maildir

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def listener(tmp_path: Path, reactor: Any) -> Any:
    seed(tmp_path)
    listener = serve(tmp_path, USERS, fsync=False, max_literal=60 * 1024 * 1024)
    yield listener
    listener.close()


async def test_a_drop_during_append_leaves_nothing(listener: Any, tmp_path: Path) -> None:
    box = Maildir(tmp_path / "alice")
    before = [m.uid for m in box.messages()]
    raw = await RawIMAP.connect(listener.port)
    raw.send(b"a APPEND INBOX (\\Seen) {100000}\r\n")
    assert (await raw.line()).startswith(b"+ ")
    raw.send(b"Subject: half\r\n\r\n" + b"x" * 50000)
    await raw.writer.drain()
    raw.writer.transport.abort()
    # a second session: its answer comes after the server read the first one's end
    other = await RawIMAP.connect(listener.port)
    lines = await other.cmd(b"s STATUS INBOX (MESSAGES UIDNEXT)")
    assert lines[0] == b"* STATUS INBOX (MESSAGES %d UIDNEXT %d)" % (len(before),
                                                                   box.uidnext)
    other.close()
    assert [m.uid for m in box.messages()] == before
    assert os.listdir(tmp_path / "alice" / "tmp") == []


def _apply_expunges(uids: list[int], lines: list[bytes]) -> list[int]:
    """A client's model: each ``* n EXPUNGE`` removes the n-th message."""
    uids = list(uids)
    for line in lines:
        m = re.match(rb"\* (\d+) EXPUNGE\Z", line)
        if m:
            del uids[int(m.group(1)) - 1]
        m = re.match(rb"\* (\d+) EXISTS\Z", line)
        if m:
            assert int(m.group(1)) >= len(uids)
    return uids


async def test_two_sessions_racing_on_expunge(tmp_path: Path, reactor: Any) -> None:
    box = seed(tmp_path, "bob", tuple(b"Subject: m%d\r\n\r\nbody\r\n" % n for n in range(20)))
    listener = serve(tmp_path, USERS, fsync=False)
    try:
        a = await RawIMAP.connect(listener.port, login=False)
        b = await RawIMAP.connect(listener.port, login=False)
        for raw in (a, b):
            assert (await raw.cmd(b"l LOGIN bob hunter2"))[-1].startswith(b"l OK")
            assert (await raw.cmd(b"s SELECT INBOX"))[-1].startswith(b"s OK")
        uids = list(range(1, 21))
        await a.cmd(b"f STORE 2,4,6,8,10,19 +FLAGS.SILENT (\\Deleted)")
        await b.cmd(b"f STORE 3,4,9,10,20 +FLAGS.SILENT (\\Deleted)")
        # both at once: pipelined into the same reactor turn
        a.send(b"x EXPUNGE\r\n")
        b.send(b"x EXPUNGE\r\n")
        got_a = await a.until(b"x")
        got_b = await b.until(b"x")
        # a FETCH on A after B changed more: no EXPUNGE during FETCH (RFC 3501 7.4.1)
        await b.cmd(b"g STORE 1 +FLAGS.SILENT (\\Deleted)")
        await b.cmd(b"h EXPUNGE")
        fetch_a = await a.cmd(b"y FETCH 1:* (UID)")
        assert not any(b"EXPUNGE" in line for line in fetch_a)
        noop_a = await a.cmd(b"z NOOP")
        model_a = _apply_expunges(uids, got_a + fetch_a + noop_a)
        final_a = await a.cmd(b"u UID FETCH 1:* (UID)")
        model_b = _apply_expunges(uids, got_b)
        final_b = await b.cmd(b"u UID FETCH 1:* (UID)")
        a.close()
        b.close()
    finally:
        await listener.close()
    gone = {1, 2, 3, 4, 6, 8, 9, 10, 19, 20}
    survivors = [u for u in uids if u not in gone]
    assert [m.uid for m in box.messages()] == survivors
    assert model_a == survivors
    assert [int(n) for n in re.findall(rb"UID (\d+)", b"".join(final_a))] == survivors
    # B told about its own expunges and A's; then h EXPUNGE removed message 1
    assert model_b == [u for u in uids if u not in gone - {1}]
    assert [int(n) for n in re.findall(rb"UID (\d+)", b"".join(final_b))] == survivors
    for line in fetch_a:  # A's FETCH still numbers UID 1 as message 1 (not told yet)
        if b"UID 5)" in line:
            assert line.startswith(b"* 2 FETCH")


@pytest.mark.timeout(120)
async def test_a_50_mb_message_appended_and_fetched(listener: Any, tmp_path: Path) -> None:
    line = b"0123456789" * 7 + b"\r\n"
    body = line * (50 * 1024 * 1024 // len(line))
    message = b"Subject: big\r\nFrom: big@x.test\r\n\r\n" + body
    digest = hashlib.sha256(message).hexdigest()
    raw = await RawIMAP.connect(listener.port)
    tracemalloc.start()
    try:
        raw.send(b"a APPEND INBOX {%d}\r\n" % len(message))
        assert (await raw.line()).startswith(b"+ ")
        view = memoryview(message)
        for i in range(0, len(view), 1 << 20):  # (a client that holds no copy either)
            raw.send(view[i:i + (1 << 20)])
            await raw.writer.drain()
        raw.send(b"\r\n")
        answer = await raw.until(b"a")
        _, append_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert re.match(rb"a OK \[APPENDUID \d+ 5\]", answer[-1]), answer
    assert append_peak < 12 * 1024 * 1024, f"{append_peak:,} bytes at the peak of APPEND"
    del body, message, view
    await raw.cmd(b"s SELECT INBOX")
    tracemalloc.start()
    try:
        raw.send(b"f UID FETCH 5 (RFC822.SIZE BODY.PEEK[])\r\n")
        head = await asyncio.wait_for(raw.reader.readline(), 20)
        m = re.match(rb"\* 5 FETCH \(UID 5 RFC822.SIZE (\d+) BODY\[\] \{(\d+)\}\r\n", head)
        assert m, head
        size = int(m.group(2))
        assert int(m.group(1)) == size
        h = hashlib.sha256()
        left = size
        while left:
            chunk = await asyncio.wait_for(raw.reader.read(min(left, 1 << 20)), 20)
            assert chunk
            h.update(chunk)
            left -= len(chunk)
        assert await raw.line() == b")"
        assert (await raw.line()).startswith(b"f OK")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert h.hexdigest() == digest
    assert peak < 12 * 1024 * 1024, f"{peak:,} bytes at the peak of a 50 MB FETCH"
    raw.close()
    assert os.listdir(tmp_path / "alice" / "tmp") == []


async def test_a_drop_during_a_streamed_append_leaves_nothing(listener: Any,
                                                              tmp_path: Path) -> None:
    box = Maildir(tmp_path / "alice")
    before = [m.uid for m in box.messages()]
    raw = await RawIMAP.connect(listener.port)
    raw.send(b"a APPEND INBOX {5000000}\r\n")  # over 1 MiB: written to tmp as it comes
    assert (await raw.line()).startswith(b"+ ")
    raw.send(b"Subject: half\r\n\r\n" + b"x" * 2_000_000)
    await raw.writer.drain()
    other = await RawIMAP.connect(listener.port)
    while not os.listdir(tmp_path / "alice" / "tmp"):  # the first part is on the disk
        await other.cmd(b"n NOOP")
    raw.writer.transport.abort()
    while os.listdir(tmp_path / "alice" / "tmp"):  # until the server has heard the drop
        await other.cmd(b"n NOOP")
    lines = await other.cmd(b"s STATUS INBOX (MESSAGES)")
    assert lines[0] == b"* STATUS INBOX (MESSAGES %d)" % len(before)
    other.close()
    assert [m.uid for m in box.messages()] == before
    assert os.listdir(tmp_path / "alice" / "tmp") == []


async def test_malformed_commands_get_bad_with_their_tag(listener: Any) -> None:
    raw = await RawIMAP.connect(listener.port)
    cases = {
        b"a1 FROB": b"a1 BAD",
        b"a2 FETCH": b"a2 BAD",
        b"a3 SELECT": b"a3 BAD",
        b"a4 FETCH 1 (FLAGS": b"a4 BAD",
        b"a5 STORE 1 +FLAGS (\\Bogus": b"a5 BAD",
        b"a6 SEARCH FROM": b"a6 BAD",
        b"a7 UID FROB 1": b"a7 BAD",
        b'a8 LOGIN "unterminated': b"a8 BAD",
        b"(((": b"* BAD",
        b"a9 FETCH 1:2 BODY[1.0]": b"a9 BAD",
        b"b1 FETCH 0 FLAGS": b"b1 BAD",
    }
    for i, (line, want) in enumerate(cases.items()):
        if i == 6:  # a good command between: ten bad ones in a row would end the session
            assert (await raw.cmd(b"n NOOP"))[-1].startswith(b"n OK")
        raw.send(line + b"\r\n")
        answer = await raw.line()
        assert answer.startswith(want), (line, answer)
    lines = await raw.cmd(b"c1 SELECT INBOX")  # the connection still works
    assert lines[-1].startswith(b"c1 OK")
    lines = await raw.cmd(b"c2 FETCH 9 FLAGS")
    assert lines[-1].startswith(b"c2 BAD")
    raw.close()


async def test_literals_over_the_limit(tmp_path: Path, reactor: Any) -> None:
    seed(tmp_path)
    listener = serve(tmp_path, USERS, fsync=False, max_literal=1000)
    try:
        raw = await RawIMAP.connect(listener.port)
        raw.send(b"a APPEND INBOX {5000}\r\n")
        assert (await raw.line()).startswith(b"a NO [TOOBIG]")
        assert (await raw.cmd(b"b NOOP"))[-1].startswith(b"b OK")  # nothing was read
        raw.send(b"c APPEND INBOX {5000+}\r\n" + b"x" * 100)
        assert (await raw.line()).startswith(b"* BYE [TOOBIG]")
        assert await raw.eof()
        other = await RawIMAP.connect(listener.port)  # others are unharmed
        assert (await other.cmd(b"d NOOP"))[-1].startswith(b"d OK")
        other.close()
    finally:
        await listener.close()
    listener = serve(tmp_path, USERS, fsync=False)
    try:
        # before login, a synchronising literal is small or refused
        anon = await RawIMAP.connect(listener.port, login=False)
        anon.send(b"e LOGIN alice {9000}\r\n")
        assert (await anon.line()).startswith(b"e NO [TOOBIG]")  # over 8 KiB before login
        anon.send(b"f LOGIN alice {6}\r\n")
        assert (await anon.line()).startswith(b"+ ")
        anon.send(b"secret\r\n")
        assert (await anon.until(b"f"))[-1].startswith(b"f OK")
        anon.close()
    finally:
        await listener.close()


async def test_too_many_bad_commands_close_only_that_connection(
        tmp_path: Path, reactor: Any) -> None:
    seed(tmp_path)
    listener = serve(tmp_path, USERS, fsync=False, max_bad_commands=3)
    try:
        good = await RawIMAP.connect(listener.port)
        bad = await RawIMAP.connect(listener.port, login=False)
        bad.send(b"a FOO\r\nb BAR\r\nc BAZ\r\n")
        lines = [await bad.line() for _ in range(4)]
        assert lines[:3] == [b"a BAD unknown command FOO", b"b BAD unknown command BAR",
                             b"c BAD unknown command BAZ"]
        assert lines[3].startswith(b"* BYE")
        assert await bad.eof()
        assert (await good.cmd(b"n NOOP"))[-1].startswith(b"n OK")
        good.close()
    finally:
        await listener.close()


async def test_a_line_over_the_limit_ends_the_connection(tmp_path: Path, reactor: Any) -> None:
    seed(tmp_path)
    listener = serve(tmp_path, USERS, fsync=False, max_line=1000)
    try:
        raw = await RawIMAP.connect(listener.port)
        raw.send(b"a NOOP " + b"x" * 5000)
        assert (await raw.line()).startswith(b"* BYE")
        assert await raw.eof()
    finally:
        await listener.close()


def test_autologout_on_a_clock(tmp_path: Path) -> None:
    seed(tmp_path)
    clock = Clock()
    factory = IMAPServerFactory(tmp_path, USERS, idle_timeout=1800, reactor=clock)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"a LOGIN alice secret\r\n")
    clock.advance(1799)
    protocol.data_received(b"b NOOP\r\n")  # a command sets the timer back
    clock.advance(1799)
    assert not transport.disconnecting
    transport.clear()
    clock.advance(1)
    assert transport.value() == b"* BYE Autologout; idle for too long\r\n"
    assert transport.disconnecting
    protocol.connection_lost(Failure(ConnectionResetError()))
    assert all(not c.active() for c in clock.calls)


def test_idle_is_pushed_and_polled_on_a_clock(tmp_path: Path) -> None:
    box = seed(tmp_path)
    clock = Clock()
    factory = IMAPServerFactory(tmp_path, USERS, idle_poll=5, reactor=clock)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"a LOGIN alice secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
    transport.clear()
    # another process's change: a file renamed behind the store's back (no notification)
    info = box.messages()[0]
    os.rename(info.path, info.path.replace(":2,S", ":2,FS"))
    assert transport.value() == b""
    clock.advance(5)
    assert transport.value() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen))\r\n"
    transport.clear()
    protocol.data_received(b"DONE\r\n")
    assert transport.value() == b"c OK IDLE terminated\r\n"
    protocol.connection_lost(Failure(ConnectionResetError()))
    assert all(not c.active() for c in clock.calls)


async def test_recent_belongs_to_the_first_session_that_selects(
        tmp_path: Path, reactor: Any) -> None:
    box = seed(tmp_path)
    box.deliver(b"Subject: delivered\r\n\r\nto new/\r\n")  # as an MDA does: into new
    listener = serve(tmp_path, USERS, fsync=False)
    try:
        peek = await RawIMAP.connect(listener.port)
        first = await RawIMAP.connect(listener.port)
        second = await RawIMAP.connect(listener.port)
        # EXAMINE sees it recent but leaves it so
        assert b"* 1 RECENT" in await peek.cmd(b"e EXAMINE INBOX")
        assert b"* 1 RECENT" in await first.cmd(b"s SELECT INBOX")
        assert b"* 0 RECENT" in await second.cmd(b"s SELECT INBOX")
        assert (await first.cmd(b"f SEARCH RECENT"))[0] == b"* SEARCH 5"
        assert (await second.cmd(b"f SEARCH RECENT"))[0] == b"* SEARCH"
        # a message appended now: recent for the first session to be told of it, here
        # the appending one (its APPEND's answer tells it; the other is not idling)
        appended = await second.cmd(b"a APPEND INBOX {4+}\r\nx\r\n")
        assert appended[:2] == [b"* 6 EXISTS", b"* 1 RECENT"]
        noop = await first.cmd(b"n NOOP")
        assert noop[:2] == [b"* 6 EXISTS", b"* 1 RECENT"]  # its one is still 5
        assert (await second.cmd(b"f FETCH 6 FLAGS"))[0] == b"* 6 FETCH (FLAGS (\\Recent))"
        assert (await first.cmd(b"f FETCH 5:6 FLAGS"))[:2] == [
            b"* 5 FETCH (FLAGS (\\Recent))", b"* 6 FETCH (FLAGS ())"]
        for raw in (peek, first, second):
            raw.close()
    finally:
        await listener.close()


async def test_uids_and_uidvalidity_survive_a_restart(tmp_path: Path, reactor: Any) -> None:
    seed(tmp_path)
    answers = []
    for _ in range(2):
        listener = serve(tmp_path, USERS, fsync=False)
        try:
            raw = await RawIMAP.connect(listener.port)
            selected = await raw.cmd(b"s SELECT INBOX")
            uids = await raw.cmd(b"u UID FETCH 1:* (UID)")
            if not answers:
                await raw.cmd(b"d STORE 2 +FLAGS.SILENT (\\Deleted)")
                await raw.cmd(b"e EXPUNGE")
                uids = await raw.cmd(b"u UID FETCH 1:* (UID)")
            raw.close()
        finally:
            await listener.close()
        validity = next(x for x in selected if b"UIDVALIDITY" in x)
        answers.append((validity, uids[:-1]))
    assert answers[0] == answers[1]
    assert answers[1][1] == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)", b"* 3 FETCH (UID 4)"]


def test_commands_sent_with_starttls_in_clear_are_dropped(tmp_path: Path) -> None:
    seed(tmp_path)
    factory = IMAPServerFactory(tmp_path, USERS, tls=object(), reactor=Clock())
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    transport.clear()
    protocol.data_received(b"a STARTTLS\r\nb LOGIN alice secret\r\n")  # the injection
    assert transport.value() == b"a OK Begin TLS negotiation now\r\n"
    assert transport.tls_context is not None
    assert protocol.state == "not authenticated" and protocol.user is None
    protocol.connection_lost(Failure(ConnectionResetError()))


@pytest.mark.timeout(20)
def test_a_group_inside_a_group_does_not_hang_fetch(tmp_path: Path) -> None:
    """The writer's address parser loops for ever on ``g: x: a@b`` (RFC 5322 has no
    nested groups); the server's ENVELOPE and BODYSTRUCTURE must answer anyway."""
    seed(tmp_path, "alice", (
        b"To: g: x: a@b;\r\nSubject: nested group\r\n\r\nhi\r\n",
        b"Subject: inner\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Cc: one: two: c@d;\r\nSubject: s\r\n\r\nbody\r\n",
    ))
    factory = IMAPServerFactory(tmp_path, USERS, reactor=Clock(), fsync=False)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n")
    transport.clear()
    protocol.data_received(b"c FETCH 1:2 (ENVELOPE BODYSTRUCTURE)\r\n")
    out = transport.value()
    assert out.count(b" FETCH (") == 2 and out.endswith(b"c OK FETCH completed\r\n")
    assert b'"nested group"' in out and b'"s"' in out
    protocol.connection_lost(Failure(ConnectionResetError()))


async def test_a_big_literal_plus_before_login_ends_the_connection_at_once(
        listener: Any) -> None:
    # nobody yet may make the server hold a 60 MB literal (64 MiB is the limit after
    # login): the announcement is answered, the connection closed, nothing read
    raw = await RawIMAP.connect(listener.port, login=False)
    raw.send(b"a LOGIN {60000000+}\r\n" + b"x" * 65536)
    line = await raw.line()
    assert line.startswith(b"* BYE [TOOBIG]"), line
    assert await raw.eof()
    # a small one is fine, and after login a big synchronising one is offered a "+"
    ok = await RawIMAP.connect(listener.port, login=False)
    assert (await ok.cmd(b"b LOGIN {5+}\r\nalice secret"))[-1].startswith(b"b OK")
    ok.send(b"c APPEND INBOX {9000}\r\n")
    assert (await ok.line()).startswith(b"+")
    ok.close()


async def test_a_client_that_pipelines_and_never_reads_holds_no_more_than_a_command(
        tmp_path: Path, reactor: Any) -> None:
    from protocols.mail.imap import server as imap_server

    body = b"x" * 78 + b"\r\n"
    seed(tmp_path, messages=tuple(b"Subject: big %d\r\n\r\n" % n + body * 2600
                                  for n in range(10)))  # 10 messages of about 200 KB
    listener = serve(tmp_path, USERS, fsync=False)
    try:
        raw = await RawIMAP.connect(listener.port)
        raw.reader._transport.pause_reading()  # type: ignore[attr-defined]  # reads nothing
        (session,) = listener.factory.sessions
        raw.send(b"s SELECT INBOX\r\n" + b"".join(b"f%d FETCH 1:* BODY.PEEK[]\r\n" % i
                                                  for i in range(20)))
        await raw.writer.drain()
        deadline = asyncio.get_running_loop().time() + 20
        while not session._paused:  # the server stops taking commands...
            assert asyncio.get_running_loop().time() < deadline, "never paused"
            await asyncio.sleep(0.01)
        # ...with about one answer unsent (2 MB), not twenty (40 MB)
        held = session.transport.write_buffer_size
        assert held < imap_server.OUTPUT_HIGH + 3_000_000, held
        raw.reader._transport.resume_reading()  # type: ignore[attr-defined]
        lines = await raw.until(b"f19")
        assert sum(line.startswith(b"f") and b" OK " in line for line in lines) == 20
        raw.close()
    finally:
        await listener.close()


async def test_a_command_sent_where_done_was_due_ends_idle_and_is_answered(
        listener: Any) -> None:
    raw = await RawIMAP.connect(listener.port)
    assert (await raw.cmd(b"s SELECT INBOX"))[-1].startswith(b"s OK")
    raw.send(b"i IDLE\r\n")
    assert (await raw.line()).startswith(b"+ ")
    raw.send(b"n NOOP\r\n")  # not DONE: a client that pipelines
    lines = await raw.until(b"n")
    assert [line.split(b" ")[:2] for line in lines if not line.startswith(b"*")] == [
        [b"i", b"BAD"], [b"n", b"OK"]]
    raw.close()


async def test_recent_cannot_be_set_by_a_client(listener: Any, tmp_path: Path) -> None:
    raw = await RawIMAP.connect(listener.port)
    assert (await raw.cmd(b"s SELECT INBOX"))[-1].startswith(b"s OK")
    assert (await raw.cmd(b"t STORE 1 +FLAGS (\\Recent)"))[-1].startswith(b"t BAD")
    before = len(Maildir(tmp_path / "alice").messages())
    assert (await raw.cmd(b"a APPEND INBOX (\\Recent) {5+}\r\nhello"))[-1].startswith(b"a BAD")
    assert len(Maildir(tmp_path / "alice").messages()) == before  # nothing added
    raw.close()


async def test_an_append_date_that_cannot_be_kept_is_refused_not_changed(
        listener: Any, tmp_path: Path) -> None:
    raw = await RawIMAP.connect(listener.port)
    before = len(Maildir(tmp_path / "alice").messages())
    got = await raw.cmd(b'a APPEND INBOX "31-Dec-1899 23:59:59 +0000" {5+}\r\nhello')
    assert got[-1].startswith(b"a NO [CANNOT]"), got
    assert len(Maildir(tmp_path / "alice").messages()) == before
    ok = await raw.cmd(b'b APPEND INBOX "01-Jan-1999 00:00:00 +0100" {5+}\r\nhello')
    assert ok[-1].startswith(b"b OK"), ok
    raw.close()


async def test_inbox_in_any_case_is_inbox_in_hierarchy_names_too(listener: Any) -> None:
    raw = await RawIMAP.connect(listener.port)
    assert (await raw.cmd(b"c CREATE inbox.sub"))[-1].startswith(b"c OK")
    assert (await raw.cmd(b"s SELECT INBOX.sub"))[-1].startswith(b"s OK")
    assert (await raw.cmd(b"d CREATE InBoX.sub"))[-1].startswith(b"d NO")  # the same one
    listed = [line for line in await raw.cmd(b'l LIST "" *') if line.startswith(b"* LIST")]
    names = [line.rsplit(b" ", 1)[1].strip(b'"') for line in listed]
    assert sorted(names) == [b"INBOX", b"INBOX.sub"], listed
    raw.close()
