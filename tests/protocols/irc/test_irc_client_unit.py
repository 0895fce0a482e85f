"""The IRC client with no socket: server lines fed to it through a StringTransport, what
it writes read back, time moved by a Clock. Registration, CAP and SASL, 433/464/ERROR,
PING, events with tags and server time, channel state, CTCP, and the throttle."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from netshell.failure import Failure
from netshell.testing import Clock, StringTransport, failure_result_of, success_result_of
from protocols.irc.client import (
    Event,
    IRCClient,
    IRCCommandError,
    IRCConnectionClosed,
    NickInUse,
    PasswordMismatch,
    SASLFailed,
    Throttle,
    _IRCProtocol,
)
from protocols.irc.core import parse


class Wire:
    """A client on a StringTransport: ``feed`` server lines, ``sent()`` the lines it wrote."""

    def __init__(self, **kw: Any) -> None:
        self.clock = Clock()
        kw.setdefault("rate", None)
        self.client = IRCClient(kw.pop("nick", "me"), clock=self.clock, **kw)
        self.transport = StringTransport()
        self.protocol = _IRCProtocol(self.client)
        self.ready = self.client.when_registered()
        self.protocol.connection_made(self.transport)

    def feed(self, *lines: str) -> None:
        self.protocol.data_received("".join(line + "\r\n" for line in lines).encode())

    def sent(self) -> list[str]:
        lines = self.transport.value().decode().split("\r\n")
        self.transport.clear()
        return [line for line in lines if line]

    def register(self, isupport: str = "PREFIX=(ov)@+ CHANTYPES=# CASEMAPPING=rfc1459") -> None:
        self.feed(":irc.x CAP * LS :multi-prefix", ":irc.x CAP me ACK :multi-prefix")
        self.feed(":irc.x 001 me :Welcome", f":irc.x 005 me {isupport} :are supported",
                  ":irc.x 376 me :End of MOTD")
        assert success_result_of(self.ready) is self.client
        self.sent()

    def events(self, kind: str) -> list[Event]:
        seen: list[Event] = []
        self.client.add_listener(kind, seen.append)
        return seen


def test_registration_lines_and_cap_negotiation() -> None:
    w = Wire(password="pw", user="u", realname="Real Name")
    assert w.sent() == ["CAP LS 302", "PASS pw", "NICK me", "USER u 0 * :Real Name"]
    # a multi-line LS (the "*" says more comes): nothing requested before its end
    w.feed(":irc.x CAP * LS * :multi-prefix sasl=PLAIN,EXTERNAL foo")
    assert w.sent() == []
    w.feed(":irc.x CAP * LS :server-time message-tags echo-message batch bar")
    req = w.sent()
    assert len(req) == 1 and req[0].startswith("CAP REQ :")
    assert sorted(req[0][len("CAP REQ :"):].split()) == sorted(
        ["batch", "echo-message", "message-tags", "multi-prefix", "server-time"]
    )  # sasl not asked for: not requested; unknown caps never
    assert w.client.server_caps["sasl"] == "PLAIN,EXTERNAL"
    w.feed(":irc.x CAP me ACK :multi-prefix server-time message-tags batch echo-message")
    assert w.sent() == ["CAP END"]
    assert w.client.caps == {"multi-prefix", "server-time", "message-tags", "batch",
                             "echo-message"}
    w.feed(":irc.x 001 me :Welcome", ":irc.x 005 me CHANTYPES=#& :are supported")
    assert not w.ready.called  # waits for the end of the MOTD
    w.feed(":irc.x 422 me :No MOTD")
    assert success_result_of(w.ready).registered


def test_no_cap_offered_ends_at_once() -> None:
    w = Wire()
    w.sent()
    w.feed(":irc.x CAP * LS :")
    assert w.sent() == ["CAP END"]


def test_nick_taken_tries_the_next_then_fails() -> None:
    w = Wire(nick="bob", alt_nicks=2)
    w.sent()
    w.feed(":irc.x 433 * bob :Nickname is already in use")
    assert w.sent() == ["NICK bob_"]
    w.feed(":irc.x 432 * bob_ :Erroneous nickname")  # too long: the same length now
    assert w.sent() == ["NICK b__"]
    w.feed(":irc.x 433 * b__ :Nickname is already in use")
    error = failure_result_of(w.ready, NickInUse)
    assert error.value.numeric == "433"
    assert w.transport.closed


def test_nick_taken_then_welcomed_under_the_next() -> None:
    w = Wire(nick="bob")
    w.feed(":irc.x 433 * bob :in use", ":irc.x 001 bob_ :Welcome", ":irc.x 376 bob_ :end")
    assert success_result_of(w.ready).nick == "bob_"


def test_password_mismatch_and_error() -> None:
    w = Wire(password="bad")
    w.feed(":irc.x 464 * :Password incorrect")
    assert failure_result_of(w.ready, PasswordMismatch).value.numeric == "464"
    w = Wire()
    w.feed("ERROR :Closing link: banned")
    assert "banned" in str(failure_result_of(w.ready, IRCConnectionClosed).value)


def test_lost_before_registration_fails() -> None:
    w = Wire()
    w.protocol.connection_lost(Failure(ConnectionResetError("reset")))
    failure_result_of(w.ready, IRCConnectionClosed)


def test_sasl_plain() -> None:
    w = Wire(sasl=("acct", "secret"))
    w.sent()
    w.feed(":irc.x CAP * LS :sasl=PLAIN multi-prefix")
    assert w.sent() == ["CAP REQ :multi-prefix sasl"]
    w.feed(":irc.x CAP me ACK :multi-prefix sasl")
    assert w.sent() == ["AUTHENTICATE PLAIN"]
    w.feed("AUTHENTICATE +")
    (line,) = w.sent()
    blob = parse(line).params[0]
    assert base64.b64decode(blob) == b"acct\0acct\0secret"
    w.feed(":irc.x 900 me me!u@h acct :You are now logged in as acct",
           ":irc.x 903 me :SASL authentication successful")
    assert w.sent() == ["CAP END"]
    assert w.client.account == "acct"


def test_sasl_refused_or_missing_fails() -> None:
    w = Wire(sasl=("acct", "wrong"))
    w.feed(":irc.x CAP * LS :sasl", ":irc.x CAP me ACK :sasl", "AUTHENTICATE +")
    w.feed(":irc.x 904 me :SASL authentication failed")
    assert failure_result_of(w.ready, SASLFailed).value.numeric == "904"
    w = Wire(sasl=("acct", "pw"))
    w.feed(":irc.x CAP * LS :multi-prefix")
    assert "does not offer" in str(failure_result_of(w.ready, SASLFailed).value)
    w = Wire(sasl=("acct", "pw"))
    w.feed(":irc.x CAP * LS :sasl=EXTERNAL")
    failure_result_of(w.ready, SASLFailed)


def test_ping_answered_even_when_throttled() -> None:
    w = Wire(rate=1.0, burst=1)
    w.register()
    w.client.msg("#c", "one")
    w.client.msg("#c", "two")  # no token left: waits
    assert w.sent() == ["PRIVMSG #c one"]
    w.feed("PING :abc123")
    assert w.sent() == ["PONG abc123"]
    w.clock.advance(2)
    assert w.sent() == ["PRIVMSG #c two"]


def test_message_event_carries_tags_and_server_time() -> None:
    w = Wire()
    w.register()
    got = w.events("message")
    w.feed("@time=2026-12-05T12:00:00.123Z;+example/x=1 :bob!b@h PRIVMSG #Chan :hi all")
    (event,) = got
    assert (event.nick, event.target, event.channel, event.text) == ("bob", "#Chan", "#Chan",
                                                                     "hi all")
    assert event.time == datetime(2026, 12, 5, 12, 0, 0, 123000, tzinfo=UTC)
    assert event.tags == {"time": "2026-12-05T12:00:00.123Z", "+example/x": "1"}
    assert not event.own
    w.feed(":bob!b@h PRIVMSG me :private")
    assert got[1].channel is None and got[1].text == "private"
    # without a time tag: now
    assert abs((got[1].time - datetime.now(UTC)).total_seconds()) < 60


def test_hooks_by_subclass_and_assignment() -> None:
    seen: list[str] = []

    class Mine(IRCClient):
        def on_notice(self, event: Event) -> None:
            seen.append(f"notice {event.text}")

    clock = Clock()
    client = Mine("me", clock=clock, rate=None)
    client.on_message = lambda e: seen.append(f"msg {e.text}")  # type: ignore[method-assign]
    protocol = _IRCProtocol(client)
    protocol.connection_made(StringTransport())
    protocol.data_received(b":a!b@c NOTICE me :n1\r\n:a!b@c PRIVMSG me :m1\r\n")
    assert seen == ["notice n1", "msg m1"]


def test_channel_state() -> None:
    w = Wire()
    w.register("PREFIX=(qov)~@+ CHANTYPES=#& CASEMAPPING=rfc1459 CHANMODES=beI,k,l,imnst")
    w.feed(":me!u@h JOIN #Chan[1]",
           ":irc.x 353 me = #Chan[1] :me @+bob ~carol +dave",
           ":irc.x 366 me #Chan[1] :End of NAMES")
    chan = w.client.channels[w.client.fold("#chan{1}")]  # rfc1459: [ is {
    assert chan.members == {"me": "", "bob": "@+", "carol": "~", "dave": "+"}
    w.feed(":carol!c@h MODE #chan{1} -o-v+k bob dave key")
    assert chan.members["bob"] == "+" and chan.members["dave"] == ""
    w.feed(":carol!c@h MODE #chan{1} +l-l+o 10 Dave")  # +l takes one, -l none; Dave is dave
    assert chan.members["dave"] == "@"
    w.feed(":eve!e@h JOIN #Chan[1]")
    assert chan.members["eve"] == ""
    w.feed(":BOB!b@h NICK robert")
    assert "bob" not in chan.members and chan.members["robert"] == "+"
    w.feed(":robert!b@h PART #chan[1] :bye")
    assert "robert" not in chan.members
    w.feed(":carol!c@h KICK #Chan[1] eve :out")
    assert "eve" not in chan.members
    w.feed(":dave!d@h QUIT :gone")
    assert set(chan.members) == {"me", "carol"}
    w.feed(":carol!c@h TOPIC #Chan[1] :new topic")
    assert chan.topic == "new topic"
    w.feed(":me!u@h NICK me2")
    assert w.client.nick == "me2" and "me2" in chan.members
    w.feed(":carol!c@h KICK #Chan[1] me2 :out")
    assert w.client.channels == {}


def test_join_and_names_deferreds() -> None:
    w = Wire()
    w.register()
    d = w.client.join("#c")
    assert w.sent() == ["JOIN #c"]
    w.feed(":me!u@h JOIN #c", ":irc.x 332 me #c :the topic",
           ":irc.x 353 me = #c :@me +x", ":irc.x 366 me #c :End")
    chan = success_result_of(d)
    assert chan.topic == "the topic" and chan.members == {"me": "@", "x": "+"}
    names = w.client.names("#c")
    w.feed(":irc.x 353 me = #c :@me", ":irc.x 353 me = #c :+x y", ":irc.x 366 me #c :End")
    assert success_result_of(names) == ["@me", "+x", "y"]
    bad = w.client.join("#full")
    w.feed(":irc.x 471 me #full :Cannot join channel (+l)")
    error = failure_result_of(bad, IRCCommandError).value
    assert error.numeric == "471" and error.message is not None


def test_whois_result_and_error(caplog: pytest.LogCaptureFixture) -> None:
    w = Wire()
    w.register()
    d = w.client.whois("Bob")
    w.feed(":irc.x 311 me bob ~b host.x * :Bob Real",
           ":irc.x 312 me bob irc.x :The server",
           ":irc.x 319 me bob :@#a +#b",
           ":irc.x 330 me bob bobacct :is logged in as",
           ":irc.x 317 me bob 12 1700000000 :idle",
           ":irc.x 318 me bob :End of WHOIS")
    r = success_result_of(d)
    assert (r.nick, r.user, r.host, r.realname, r.server) == ("bob", "~b", "host.x",
                                                              "Bob Real", "irc.x")
    assert r.channels == ["@#a", "+#b"] and r.account == "bobacct" and r.idle == 12
    d = w.client.whois("ghost")
    w.feed(":irc.x 401 me ghost :No such nick", ":irc.x 318 me ghost :End")
    assert failure_result_of(d, IRCCommandError).value.numeric == "401"
    assert w.client._pending == []
    # nothing went wrong inside the client on the way
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


def test_request_times_out() -> None:
    w = Wire(timeout=5)
    w.register()
    d = w.client.who("#c")
    w.clock.advance(5)
    failure_result_of(d, TimeoutError)


def test_ctcp_answered_and_action() -> None:
    w = Wire()
    w.register()
    ctcps = w.events("ctcp")
    actions = w.events("action")
    w.feed(":bob!b@h PRIVMSG me :\x01VERSION\x01", ":bob!b@h PRIVMSG me :\x01PING 42\x01",
           ":bob!b@h PRIVMSG me :\x01TIME\x01", ":bob!b@h PRIVMSG #c :\x01ACTION waves\x01")
    sent = w.sent()
    assert sent[0] == "NOTICE bob :\x01VERSION netshell IRC client\x01"
    assert sent[1] == "NOTICE bob :\x01PING 42\x01"
    assert sent[2].startswith("NOTICE bob :\x01TIME ") and sent[2].endswith("+0000\x01")
    assert [e.ctcp for e in ctcps] == ["VERSION", "PING", "TIME"]
    assert actions[0].text == "waves" and actions[0].channel == "#c"
    w.client.action("#c", "dances")
    assert w.sent() == ["PRIVMSG #c :\x01ACTION dances\x01"]


def test_long_message_split() -> None:
    w = Wire()
    w.register()
    text = " ".join(["word"] * 200) + "\nsecond line"
    w.client.msg("#c", text)
    lines = w.sent()
    assert len(lines) >= 3 and lines[-1] == "PRIVMSG #c :second line"
    assert all(len(line.encode()) + 2 + 80 <= 512 for line in lines)
    assert " ".join(parse(line).params[1] for line in lines[:-1]) == " ".join(["word"] * 200)


def test_throttle_token_bucket() -> None:
    clock = Clock()
    out: list[bytes] = []
    t = Throttle(out.append, clock, rate=2.0, burst=3)
    for i in range(7):
        t.write(b"%d" % i)
    assert out == [b"0", b"1", b"2"] and t.pending == 4
    clock.advance(0.5)  # one token a half second
    assert out[-1] == b"3" and t.pending == 3
    clock.advance(0.5)
    assert len(out) == 5
    clock.advance(10)
    assert len(out) == 7 and t.pending == 0
    # after a rest the burst is back, but never more than it
    for _ in range(5):
        t.write(b"x")
    assert len(out) == 10


def test_quote_checks_the_line() -> None:
    w = Wire()
    w.register()
    w.client.quote("PRIVMSG #c :raw text")
    assert w.sent() == ["PRIVMSG #c :raw text"]
    with pytest.raises(ValueError):
        w.client.quote("")


def test_reconnect_backs_off_and_not_after_quit() -> None:
    w = Wire(reconnect=True)
    w.register()
    w.client._connect_args = ("127.0.0.1", 1, None, 5, w.clock)
    w.feed(":me!u@h JOIN #c", ":irc.x 366 me #c :End")
    w.protocol.connection_lost(Failure(ConnectionResetError("reset")))
    assert w.client._rejoin == [("#c", None)]
    (call,) = w.clock.calls
    assert call.time == 1.0
    call.cancel()
    delays = []
    for _ in range(8):
        w.client._schedule_reconnect()
        delays.append(w.clock.calls[-1].time - w.clock.seconds())
        w.clock.calls[-1].cancel()
    assert delays == [2, 4, 8, 16, 32, 60, 60, 60]
    # a quit (or a failed registration) never reconnects
    w = Wire(reconnect=True)
    w.register()
    w.client._connect_args = ("127.0.0.1", 1, None, 5, w.clock)
    w.client.quit("bye")
    assert w.sent() == ["QUIT bye"]
    w.protocol.connection_lost(Failure(ConnectionResetError("closed")))
    assert [c for c in w.clock.calls if c.active()] == []


def test_requests_answered_in_order_each_with_its_own_replies() -> None:
    w = Wire()
    w.register()
    first = w.client.names("#c")
    second = w.client.names("#C")
    who1 = w.client.who("#c")
    who2 = w.client.who("bob")
    w.feed(":irc.x 353 me = #c :@me a", ":irc.x 366 me #c :End",
           ":irc.x 353 me = #c :@me a b", ":irc.x 366 me #c :End",
           ":irc.x 352 me #c ~m h irc.x me H@ :0 Me",
           ":irc.x 352 me #c ~a h irc.x a H :0 A",
           ":irc.x 315 me #c :End",
           ":irc.x 352 me * ~b h irc.x bob G :3 Bob B",
           ":irc.x 315 me bob :End")
    assert success_result_of(first) == ["@me", "a"]
    assert success_result_of(second) == ["@me", "a", "b"]
    assert [(e.nick, e.flags) for e in success_result_of(who1)] == [("me", "H@"), ("a", "H")]
    (bob,) = success_result_of(who2)
    assert (bob.nick, bob.hops, bob.realname, bob.channel) == ("bob", 3, "Bob B", "*")


def test_ctcp_flood_is_not_all_answered() -> None:
    w = Wire(rate=1.0, burst=2)
    w.register()
    for i in range(50):
        w.feed(f":bob!b@h PRIVMSG me :\x01PING {i}\x01")
    assert len(w.sent()) == 2
    assert w.client.throttle.pending == 8


def test_cap_new_and_del_after_registration() -> None:
    w = Wire()
    w.register()
    assert w.client.caps == {"multi-prefix"}
    w.feed(":irc.x CAP me NEW :away-notify unknown-cap sasl=PLAIN")
    assert w.sent() == ["CAP REQ away-notify"]
    w.feed(":irc.x CAP me ACK :away-notify")
    assert w.sent() == []  # no second CAP END
    assert w.client.caps == {"multi-prefix", "away-notify"}
    w.feed(":irc.x CAP me DEL :multi-prefix")
    assert w.client.caps == {"away-notify"} and "multi-prefix" not in w.client.server_caps
    away = w.events("away")
    w.feed(":bob!b@h AWAY :lunch", ":bob!b@h AWAY")
    assert [(e.nick, e.text) for e in away] == [("bob", "lunch"), ("bob", None)]


def test_next_nick_keeps_the_length_when_longer_is_refused() -> None:
    w = Wire(nick="ninechars")
    w.sent()
    w.feed(":irc.x 433 * ninechars :in use")
    assert w.sent() == ["NICK ninechars_"]
    w.feed(":irc.x 432 * ninechars_ :Erroneous nickname")  # over NICKLEN=9
    assert w.sent() == ["NICK ninecha__"]
    w.feed(":irc.x 433 * ninecha__ :in use")
    assert w.sent() == ["NICK ninech___"]


def test_batch_account_and_msgid() -> None:
    w = Wire()
    w.register()
    w.feed(":a!a@h JOIN #c", ":irc.x 366 me #c :End")
    w.feed(":me!u@h JOIN #c", ":irc.x 353 me = #c :me a b", ":irc.x 366 me #c :End")
    quits = w.events("quit")
    batches = w.events("batch")
    w.feed(":irc.x BATCH +s1 netsplit irc.a irc.b",
           "@batch=s1 :a!a@h QUIT :irc.a irc.b",
           "@batch=s1 :b!b@h QUIT :irc.a irc.b")
    assert [q.batch.type if q.batch else None for q in quits] == ["netsplit", "netsplit"]
    assert batches == []
    w.feed(":irc.x BATCH -s1")
    (done,) = batches
    assert done.batch_done is not None and done.batch_done.type == "netsplit"
    assert done.batch_done.params == ["irc.a", "irc.b"]
    assert [m.nick for m in done.batch_done.messages] == ["a", "b"]
    assert w.client.batches == {}
    assert set(w.client.channels[w.client.fold("#c")].members) == {"me"}
    got = w.events("message")
    w.feed("@account=alice;msgid=m123 :alice!a@h PRIVMSG #c :hi", ":bob!b@h PRIVMSG #c :yo")
    assert (got[0].account, got[0].msgid) == ("alice", "m123")
    assert (got[1].account, got[1].msgid, got[1].batch) == (None, None, None)


def test_wanted_nick_taken_back_when_freed() -> None:
    w = Wire(nick="bob")
    w.feed(":irc.x 433 * bob :in use", ":irc.x 001 bob_ :Welcome", ":irc.x 376 bob_ :end")
    w.sent()
    w.feed(":carol!c@h QUIT :bye")  # someone else: nothing
    assert w.sent() == []
    w.feed(":BOB!b@h QUIT :bye")  # the holder left
    assert w.sent() == ["NICK bob"]
    w.feed(":bob_!u@h NICK bob")
    assert w.client.nick == "bob"
    w.feed(":bob2!b@h NICK bobby")
    assert w.sent() == []  # we have it: nothing more
    # held by someone who renames: taken when they do
    w = Wire(nick="ann")
    w.feed(":irc.x 433 * ann :in use", ":irc.x 001 ann_ :Welcome", ":irc.x 376 ann_ :end")
    w.sent()
    w.feed(":ann!a@h NICK annie")
    assert w.sent() == ["NICK ann"]
    # a nick chosen with set_nick is the wanted one after
    d = w.client.set_nick("anna")
    w.feed(":ann_!u@h NICK anna")
    success_result_of(d)
    assert w.client.wanted_nick == "anna"


def test_keepalive_pings_a_silent_server_and_drops_a_dead_one() -> None:
    w = Wire(keepalive=100, timeout=10)
    w.register()
    w.clock.advance(99)
    w.feed(":bob!b@h PRIVMSG me :still here")  # a line: the wait starts again
    w.clock.advance(99)
    assert w.sent() == []
    w.clock.advance(1)
    assert w.sent() == ["PING netshell"]
    w.clock.advance(9)
    w.feed(":irc.x PONG irc.x netshell")
    w.clock.advance(50)
    assert not w.transport.aborted and w.sent() == []
    w.clock.advance(50)
    assert w.sent() == ["PING netshell"]
    w.clock.advance(10)  # no answer
    assert w.transport.aborted
    assert "stopped answering" in (w.client.why_closed or "")
    w.protocol.connection_lost(Failure(ConnectionResetError("aborted")))
    assert [c for c in w.clock.calls if c.active()] == []


def test_no_keepalive() -> None:
    w = Wire(keepalive=None)
    w.register()
    w.clock.advance(10_000)
    assert w.sent() == [] and not w.transport.aborted


def test_isupport_values_are_unescaped() -> None:
    """Modern IRC: a value escapes space, backslash and '=' as \\x20, \\x5C and \\x3D."""
    w = Wire()
    w.register(r"NETWORK=My\x20Net\x3D1 CHANTYPES=# EXTBAN=\x5C,b")
    assert w.client.isupport.network == "My Net=1"
    assert w.client.isupport.tokens["EXTBAN"] == "\\,b"


async def test_our_server_network_with_a_space_reads_back(reactor: Any) -> None:
    from protocols import irc

    srv = irc.serve(network="My Net")
    try:
        c = await irc.connect("127.0.0.1", srv.port, "netter", rate=None, timeout=10)
        assert c.isupport.network == "My Net"
        await c.quit()
    finally:
        await srv.close()
