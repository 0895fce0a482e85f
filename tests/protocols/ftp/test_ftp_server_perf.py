"""What keeps an FTP session cheap, checked as behaviour (the benchmark measures the cost).

An idle logged-in session keeps its state in slots (no per-session dict), holds no queue of
pending commands of its own, and needs no timer of its own: one idle timer per factory,
due when the least recently active session goes idle, times every session out at its own
deadline. (scripts/bench/ftp.py --measures logins,idle measures what these save.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import make_tree

from netshell.defer import Deferred
from netshell.errors import ConnectionDone
from netshell.failure import Failure
from netshell.interfaces import Address
from netshell.testing import Clock, StringTransport
from protocols.ftp.server import FTPServerFactory, FTPServerProtocol


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def make_factory(root: Path, clock: Clock, **kw: Any) -> FTPServerFactory:
    options: dict[str, Any] = {"users": {"alice": "wonderland"}, "login_delay": 2.0,
                               "max_connections_per_ip": 0}
    options.update(kw)
    return FTPServerFactory(root, reactor=clock, clock=clock, **options)


def session(factory: FTPServerFactory) -> tuple[FTPServerProtocol, StringTransport]:
    protocol = factory.build_protocol(Address("tcp", "127.0.0.1", 40000))
    transport = StringTransport(peer=Address("tcp", "127.0.0.1", 40000))
    protocol.connection_made(transport)
    transport.clear()
    return protocol, transport


def lines(transport: StringTransport) -> list[str]:
    text = transport.value().decode()
    transport.clear()
    return [line for line in text.split("\r\n") if line]


def test_an_idle_logged_in_session_keeps_its_state_in_slots(tree: Path) -> None:
    clock = Clock()
    factory = make_factory(tree, clock)
    first, t1 = session(factory)
    second, t2 = session(factory)
    for protocol, t in ((first, t1), (second, t2)):
        protocol.data_received(b"USER alice\r\nPASS wonderland\r\nTYPE I\r\nCWD sub\r\n")
        assert [line[:3] for line in lines(t)] == ["331", "230", "200", "250"]
        assert vars(protocol) == {}  # every attribute is a slot
        # no queue of its own once the commands are answered
        assert not protocol.pending and first.pending is second.pending
    assert first.cwd == "/sub" and first.type == "I" and first.username == "alice"


def test_commands_read_while_one_waits_are_kept_in_order(tree: Path) -> None:
    clock = Clock()
    waiting: Deferred[bool] = Deferred()
    factory = make_factory(tree, clock, users=lambda name, password: waiting)
    protocol, t = session(factory)
    other, _ = session(factory)
    protocol.data_received(b"USER alice\r\nPASS x\r\nNOOP\r\n")
    protocol.data_received(b"PWD\r\n")
    assert [getattr(c, "verb", c) for c in protocol.pending] == ["NOOP", "PWD"]
    assert not other.pending  # the other session's queue is not this one's
    waiting.callback(True)
    assert [line[:3] for line in lines(t)] == ["331", "230", "200", "257"]
    assert not protocol.pending


def test_one_idle_timer_times_out_each_session_at_its_own_deadline(tree: Path) -> None:
    clock = Clock()
    factory = make_factory(tree, clock, idle_timeout=10.0)
    sessions = []
    for _ in range(3):
        sessions.append(session(factory))
        clock.advance(1)  # they start at 0, 1 and 2
    assert len(clock.calls) == 1  # one timer for all of them
    (_a, ta), (b, tb), (_c, tc) = sessions
    clock.advance(5)  # t=8: b is active (its deadline moves to 18)
    b.data_received(b"NOOP\r\n")
    lines(tb)
    clock.advance(2)  # t=10: a times out, exactly
    assert lines(ta) == ["421 Timeout: closing control connection."] and ta.disconnecting
    assert not tc.disconnecting and not tb.disconnecting
    clock.advance(1.75)
    assert not tc.disconnecting
    clock.advance(0.25)  # t=12 (c: 2 + 10)
    assert lines(tc) == ["421 Timeout: closing control connection."] and tc.disconnecting
    clock.advance(5.5)
    assert not tb.disconnecting
    clock.advance(0.5)  # t=18
    assert lines(tb) == ["421 Timeout: closing control connection."] and tb.disconnecting
    for protocol, _t in sessions:
        protocol.connection_lost(Failure(ConnectionDone("bye")))
    assert clock.calls == []  # no timer left behind


def test_a_session_waiting_for_its_login_is_looked_at_again_a_timeout_later(
        tree: Path) -> None:
    clock = Clock()
    waiting: Deferred[bool] = Deferred()
    factory = make_factory(tree, clock, idle_timeout=10.0, users=lambda n, p: waiting)
    protocol, t = session(factory)
    protocol.data_received(b"USER alice\r\nPASS x\r\n")  # t=0: the check takes long
    clock.advance(15)
    assert not t.disconnecting  # busy at t=10: not idle
    waiting.callback(True)
    assert [line[:3] for line in lines(t)] == ["331", "230"]
    clock.advance(4.5)
    assert not t.disconnecting
    clock.advance(0.5)  # t=20: a timeout after the look at t=10
    assert lines(t) == ["421 Timeout: closing control connection."] and t.disconnecting


def test_the_last_session_gone_leaves_no_timer(tree: Path) -> None:
    clock = Clock()
    factory = make_factory(tree, clock, idle_timeout=10.0)
    protocol, _t = session(factory)
    assert len(clock.calls) == 1
    protocol.connection_lost(Failure(ConnectionDone("bye")))
    assert clock.calls == []
    again, t = session(factory)  # and a new session has its timeout again
    clock.advance(10)
    assert lines(t) == ["421 Timeout: closing control connection."]
    again.connection_lost(Failure(ConnectionDone("bye")))
