"""The IMAP client against a scripted server (a StringTransport: the test writes the
server's bytes) and virtual time (Clock): what goes on the wire when, and what the client
makes of answers a real server seldom gives on cue.

- a synchronising literal: nothing after ``{n}`` until the server's ``+``; with LITERAL+
  everything at once;
- commands asked for together go one at a time, each answer to its command;
- IDLE: ``+``, untagged news to the callback, DONE, then the queued command;
- NO and BAD with their codes; BYE then the end of the connection fails what waits;
- no answer within the timeout: IMAPTimeoutError and the connection dropped;
- STARTTLS: bytes the server (or a man in the middle) sent after its OK, before the
  handshake, are thrown away (the STARTTLS command injection of CVE-2011-0411's kind);
- an unreadable line is skipped; untagged EXISTS/EXPUNGE/FLAGS keep the mailbox's counts.
"""

from __future__ import annotations

from typing import Any

import pytest

import netshell as ns
from netshell.testing import Clock, StringTransport
from protocols.mail.imap.client import (
    IMAPBad,
    IMAPClient,
    IMAPConnectionClosed,
    IMAPNo,
    IMAPTimeoutError,
    MailboxInfo,
    _IMAPProtocol,
)
from protocols.mail.imap.parser import ResponseReader
from protocols.mail.imap.values import Response


def wired(caps: str = "IMAP4rev1 IDLE LITERAL+ STARTTLS", timeout: float = 5
          ) -> tuple[IMAPClient, StringTransport, Clock, _IMAPProtocol]:
    clock = Clock()
    client = IMAPClient(timeout=timeout, reactor=clock)
    protocol = _IMAPProtocol(client)
    client.protocol = protocol
    transport = StringTransport()
    protocol.connection_made(transport)
    protocol.data_received(f"* OK [CAPABILITY {caps}] ready\r\n".encode())
    return client, transport, clock, protocol


def results(d: ns.Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.add_both(out.append)
    return out


def test_a_synchronising_literal_waits_for_the_continuation() -> None:
    client, t, _, server = wired(caps="IMAP4rev1")
    got = results(client.login("alice", "p\r\nw"))
    assert t.value() == b"A0001 LOGIN alice {4}\r\n"
    server.data_received(b"+ go ahead\r\n")
    assert t.value() == b"A0001 LOGIN alice {4}\r\np\r\nw\r\n"
    server.data_received(b"A0001 OK [CAPABILITY IMAP4rev1 MOVE] in\r\n")
    assert got == [client] and client.state == "authenticated"
    assert "MOVE" in client.capabilities


def test_literal_plus_sends_everything_at_once() -> None:
    client, t, _, _ = wired()
    client.login("alice", "p\r\nw")
    assert t.value() == b"A0001 LOGIN alice {4+}\r\np\r\nw\r\n"


def test_commands_go_one_at_a_time_each_answer_to_its_command() -> None:
    client, t, _, server = wired()
    first = results(client.search("ALL"))
    second = results(client.search("SEEN"))
    assert t.value() == b"A0001 SEARCH ALL\r\n"
    server.data_received(b"* SEARCH 1 2 3\r\nA0001 OK done\r\n* SEARCH 2\r\n")
    assert first == [[1, 2, 3]] and second == []
    assert t.value().endswith(b"A0002 SEARCH SEEN\r\n")
    server.data_received(b"A0002 OK done\r\n")
    assert second == [[2]]


def test_no_and_bad_fail_with_their_codes() -> None:
    client, _, _, server = wired()
    no = results(client.select("Nope"))
    bad = results(client.noop())
    server.data_received(b"A0001 NO [NONEXISTENT] Unknown Mailbox: Nope\r\n"
                         b"A0002 BAD [CLIENTBUG] what\r\n")
    assert isinstance(no[0].value, IMAPNo) and no[0].value.code.name == "NONEXISTENT"
    assert "Unknown Mailbox" in str(no[0].value)
    assert isinstance(bad[0].value, IMAPBad) and bad[0].value.code.name == "CLIENTBUG"
    assert client.mailbox is None and client.state == "not authenticated"


def test_idle_untagged_news_then_done_then_the_queued_command() -> None:
    client, t, _, server = wired()
    client.mailbox = MailboxInfo("INBOX", exists=2)
    heard: list[Response] = []
    idling = client.idle(heard.append)
    queued = results(client.noop())
    started = results(idling.started)
    assert t.value() == b"A0001 IDLE\r\n" and started == []
    server.data_received(b"+ idling\r\n* 3 EXISTS\r\n* 1 EXPUNGE\r\n")
    assert started == [None]
    assert [(r.kind, r.number) for r in heard] == [("EXISTS", 3), ("EXPUNGE", 1)]
    assert client.mailbox.exists == 2  # 3, then one expunged
    finished = results(idling.stop())
    assert t.value().endswith(b"DONE\r\n") and finished == []
    server.data_received(b"A0001 OK Idle completed\r\n")
    assert len(finished) == 1 and not isinstance(finished[0], ns.Failure)
    assert t.value().endswith(b"A0002 NOOP\r\n")
    server.data_received(b"A0002 OK\r\n")
    assert queued == [[]]


def test_stopping_an_idle_before_the_server_agreed() -> None:
    client, t, _, server = wired()
    idling = client.idle(lambda r: None)
    idling.stop()
    assert not t.value().endswith(b"DONE\r\n")  # not before the "+"
    server.data_received(b"+ idling\r\n")
    assert t.value().endswith(b"DONE\r\n")


def test_bye_then_the_end_of_the_connection_fails_what_waits() -> None:
    client, _, _, server = wired()
    waiting = results(client.noop())
    queued = results(client.list())
    server.data_received(b"* BYE shutting down\r\n")
    server.connection_lost(ns.Failure(ns.ConnectionDone()))
    for r in (waiting, queued):
        assert isinstance(r[0].value, IMAPConnectionClosed)
        assert r[0].value.bye == "shutting down"
    later = results(client.noop())
    assert isinstance(later[0].value, IMAPConnectionClosed)


def test_logout_when_the_server_closes_after_its_bye() -> None:
    client, t, _, server = wired()
    got = results(client.logout())
    assert t.value() == b"A0001 LOGOUT\r\n"
    server.data_received(b"* BYE logging out\r\n")
    server.connection_lost(ns.Failure(ns.ConnectionDone()))
    assert got == [None] and client.state == "logout"
    # with no BYE, a connection cut is an error
    client, t, _, server = wired()
    got = results(client.logout())
    server.connection_lost(ns.Failure(ns.ConnectionLost()))
    assert isinstance(got[0].value, IMAPConnectionClosed)


async def test_async_with_logs_out() -> None:
    client, t, _, server = wired()
    async with client as c:
        assert c is client
        # the server's answer, once the LOGOUT sent on the way out is on the wire
        ns.reactor.call_soon(server.data_received, b"* BYE bye\r\nA0001 OK done\r\n")
    assert t.value() == b"A0001 LOGOUT\r\n"
    assert client.state == "logout" and t.disconnecting


def test_no_answer_within_the_timeout_drops_the_connection() -> None:
    client, t, clock, server = wired(timeout=5)
    got = results(client.noop())
    clock.advance(4)
    server.data_received(b"* 1 EXISTS\r\n")  # something heard: the wait starts again
    clock.advance(4)
    assert got == []
    clock.advance(1.5)
    assert isinstance(got[0].value, IMAPTimeoutError) and t.aborted


def test_an_idle_is_not_timed_out() -> None:
    client, t, clock, server = wired(timeout=5)
    idling = client.idle(lambda r: None)
    server.data_received(b"+ idling\r\n")
    clock.advance(600)
    assert not t.aborted and not idling.finished.called


def test_an_unreadable_line_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    client, _, _, server = wired()
    got = results(client.fetch(1, "FLAGS"))
    server.data_received(b"* 1 FETCH (FLAGS (\\Seen)\r\n* 1 FETCH (FLAGS (\\Seen))\r\n"
                         b"A0001 OK\r\n")
    assert got == [{1: {"FLAGS": ("\\Seen",)}}]
    assert "unreadable response" in caplog.text


def test_a_literal_over_the_readers_limit_drops_the_connection() -> None:
    client, t, _, server = wired()
    client._reader = ResponseReader(max_literal=10)
    got = results(client.fetch(1, "BODY.PEEK[]"))
    server.data_received(b"* 1 FETCH (BODY[] {11}\r\n")
    assert isinstance(got[0].value, IMAPConnectionClosed) and t.aborted


def test_news_of_other_messages_is_no_answer_to_fetch_or_store() -> None:
    client, _, _, server = wired()
    client.mailbox = MailboxInfo("INBOX", exists=9, uidnext=50)
    heard: list[int | None] = []
    client.on_untagged(lambda r: heard.append(r.number))
    fetched = results(client.fetch("2:3", "FLAGS"))
    server.data_received(b"* 2 FETCH (FLAGS ())\r\n* 7 FETCH (FLAGS (\\Seen))\r\n"
                         b"* 3 FETCH (FLAGS ())\r\nA0001 OK\r\n")
    assert fetched == [{2: {"FLAGS": ()}, 3: {"FLAGS": ()}}] and heard == [2, 7, 3]
    stored = results(client.store("40:*", ["\\Seen"], uid=True))
    server.data_received(b"* 1 FETCH (UID 3 FLAGS ())\r\n"
                         b"* 5 FETCH (UID 45 FLAGS (\\Seen))\r\nA0002 OK\r\n")
    assert stored == [{45: ("\\Seen",)}]


def test_untagged_news_reaches_the_handlers() -> None:
    client, _, _, server = wired()
    client.mailbox = MailboxInfo("INBOX", exists=5)
    heard: list[str] = []
    remove = client.on_untagged(lambda r: heard.append(r.kind))
    server.data_received(b"* 6 EXISTS\r\n* 2 RECENT\r\n* FLAGS (\\Seen $X)\r\n")
    assert heard == ["EXISTS", "RECENT", "FLAGS"]
    assert (client.mailbox.exists, client.mailbox.recent, client.mailbox.flags) == (
        6, 2, ("\\Seen", "$X"))
    remove()
    server.data_received(b"* 7 EXISTS\r\n")
    assert heard == ["EXISTS", "RECENT", "FLAGS"]


def test_starttls_throws_away_what_came_before_the_handshake() -> None:
    client, t, _, server = wired()
    heard: list[Response] = []
    client.on_untagged(heard.append)
    done = results(client._starttls(object()))
    assert t.value() == b"A0001 STARTTLS\r\n"
    # the OK and, in the same packet, an answer to a command not yet sent
    server.data_received(b"A0001 OK Begin TLS\r\n* CAPABILITY IMAP4rev1 INJECTED\r\n"
                         b"A0002 OK [CAPABILITY INJECTED] injected\r\n")
    assert heard == []  # the injected CAPABILITY was never read
    assert t.tls_context is not None and not t.value().endswith(b"CAPABILITY\r\n")
    t.tls_started.callback(None)
    assert t.value().endswith(b"A0002 CAPABILITY\r\n")  # asked again, over TLS
    server.data_received(b"* CAPABILITY IMAP4rev1 IDLE\r\nA0002 OK\r\n")
    assert done == [None]
    assert client.capabilities == frozenset({"IMAP4REV1", "IDLE"})
