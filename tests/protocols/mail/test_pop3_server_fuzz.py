"""hypothesis drives the POP3 server in memory with mixes of good commands and garbage, cut
anywhere: it never raises, never writes after closing, answers every complete line with a
reply, removes messages only when a QUIT follows DELE in the TRANSACTION state, and always
gives the mailbox lock back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pop3_helpers import MESSAGES, USERS, seed

from netshell.failure import Failure
from netshell.testing import Clock, StringTransport
from protocols.mail import pop3
from protocols.mail.maildir import Maildir

good = st.sampled_from([
    b"USER alice", b"PASS secret", b"APOP alice 0123", b"CAPA", b"STAT", b"LIST", b"LIST 2",
    b"UIDL", b"UIDL 1", b"RETR 1", b"RETR 3", b"TOP 2 1", b"DELE 1", b"DELE 2", b"RSET",
    b"NOOP", b"AUTH", b"AUTH PLAIN", b"*", b"STLS", b"QUIT",
    b"RETR", b"TOP 1", b"LIST 1 2", b"USER", b"PASS", b"DELE x", b"top 1 99999999",
])
garbage = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))
lines = st.lists(st.one_of(good, good, garbage), max_size=25)
cuts = st.lists(st.integers(min_value=0, max_value=5000), max_size=5)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pop3-fuzz")
    seed(path)
    return path


@settings(max_examples=150, deadline=None)
@given(commands=lines, at=cuts, crlf=st.booleans(), login=st.booleans())
def test_any_mix_of_commands_is_answered_and_changes_only_what_quit_allows(
    root: Path, commands: list[bytes], at: list[int], crlf: bool, login: bool,
) -> None:
    if login:  # half the examples start logged in, so that DELE and QUIT mean something
        commands = [b"USER alice", b"PASS secret", *commands]
    root_dir, box = root, Maildir(root / "alice")
    before = [m.uid for m in box.messages()]
    factory = pop3.POP3ServerFactory(root_dir, USERS, login_delay=0, reactor=Clock())
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    wire = b"".join(c + (b"\r\n" if crlf else b"\n") for c in commands)
    points = sorted({p % (len(wire) + 1) for p in at})
    last = 0
    for p in [*points, len(wire)]:
        protocol.data_received(wire[last:p])  # StringTransport raises on writes after close
        last = p
        while transport.producer is not None:  # a RETR under way: the transport pulls
            transport.producer.resume_producing()
    out = transport.value()
    assert out.endswith(b"\r\n")
    quit_at = None
    if not transport.disconnecting:
        replies = [line for line in out.split(b"\r\n") if line.startswith((b"+", b"-ERR"))]
        assert len(replies) >= len(commands) + 1  # the greeting, and a reply for each
    else:
        quit_at = out.rfind(b"signing off")
    event(f"logged in: {b'maildrop has' in out}, removed: {b'messages left' in out}")
    protocol.connection_lost(Failure(ConnectionResetError()))
    after = [m.uid for m in box.messages()]
    if after != before:
        # only a QUIT in TRANSACTION after a DELE removes anything
        assert quit_at is not None and quit_at >= 0
        assert b"maildrop has" in out and b"deleted" in out
        while len(after) < len(MESSAGES):  # refill for the next example
            box.deliver(MESSAGES[len(after)])
            after = [m.uid for m in box.messages()]
    box.lock_session().release()  # the session gave the lock back, however it ended
