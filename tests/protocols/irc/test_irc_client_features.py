"""The IRC client in memory (server lines fed through a StringTransport): joining several
channels at once, WHO with and without WHOX, MONITOR, case mapping from the 005, a 005
with more than 15 parameters, and the one-line description of each event that the client
logs for the prompt."""

from __future__ import annotations

import logging

import pytest
from test_irc_client_unit import Wire

from netshell.testing import failure_result_of, success_result_of
from protocols.irc.client import (
    Channel,
    IRCCommandError,
    IRCNotSupported,
    MonitorListFull,
)

# ---- a 005 with many tokens


def test_a_005_with_more_than_15_parameters_is_read_whole() -> None:
    w = Wire()
    w.feed(":irc.x CAP * LS :", ":irc.x 001 me :Welcome")
    tokens = [f"X{i}=v{i}" for i in range(20)] + ["CASEMAPPING=ascii", "WHOX", "MONITOR=5"]
    w.feed(":irc.x 005 me " + " ".join(tokens) + " :are supported by this server",
           ":irc.x 376 me :End")
    assert success_result_of(w.ready).registered
    c = w.client
    assert c.isupport.tokens["X19"] == "v19"
    assert c.isupport.casemapping == "ascii"  # the 21st parameter
    assert c.isupport.whox and c.isupport.monitor == 5


# ---- case mapping


@pytest.mark.parametrize(
    ("casemapping", "same", "different"),
    [
        ("rfc1459", [("Bob[x]", "bob{X}"), ("a~", "A^"), ("a\\", "A|")], []),
        ("strict-rfc1459", [("Bob[x]", "bob{X}"), ("a\\", "A|")], [("a~", "A^")]),
        ("ascii", [("Bob", "bOB")], [("Bob[x]", "bob{x}"), ("a~", "a^")]),
        # unknown (rfc7613, or one made up): as rfc1459, and no error
        ("rfc7613", [("Bob[x]", "bob{X}"), ("a~", "A^")], []),
        ("made-up", [("Bob[x]", "bob{X}")], []),
    ],
)
def test_names_are_compared_by_the_servers_casemapping(
    casemapping: str, same: list[tuple[str, str]], different: list[tuple[str, str]]
) -> None:
    w = Wire()
    w.register(f"PREFIX=(ov)@+ CHANTYPES=# CASEMAPPING={casemapping}")
    c = w.client
    for a, b in same:
        assert c.fold(a) == c.fold(b), (a, b)
    for a, b in different:
        assert c.fold(a) != c.fold(b), (a, b)
    # the state follows: a channel joined as "#Chan[1]" is found as the server names it
    joined = c.join("#Chan[1]")
    w.feed(":me!u@h JOIN #Chan[1]", ":irc.x 353 me = #chan[1] :@me",
           ":irc.x 366 me #chan[1] :End")
    channel = success_result_of(joined)
    assert isinstance(channel, Channel)
    assert c.channels[c.fold("#CHAN[1]")] is channel


# ---- join, several at once


def test_join_one_channel_gives_its_channel() -> None:
    w = Wire()
    w.register()
    d = w.client.join("#a", "sesame")
    assert w.sent() == ["JOIN #a sesame"]
    w.feed(":me!u@h JOIN #a", ":irc.x 353 me = #a :@me", ":irc.x 366 me #a :End")
    assert success_result_of(d).name == "#a"


def test_join_comma_list_gives_a_list_of_channels_in_order() -> None:
    w = Wire()
    w.register()
    d = w.client.join("#a,#b,#c")
    assert w.sent() == ["JOIN #a,#b,#c"]
    for name in ("#c", "#a", "#b"):  # answered in any order
        w.feed(f":me!u@h JOIN {name}", f":irc.x 353 me = {name} :@me",
               f":irc.x 366 me {name} :End")
    assert [ch.name for ch in success_result_of(d)] == ["#a", "#b", "#c"]
    assert set(w.client.channels) == {"#a", "#b", "#c"}


def test_join_a_list_with_keys_sends_the_keyed_channels_first() -> None:
    w = Wire()
    w.register()
    d = w.client.join(["#open", "#locked", "#other"], [None, "k1", "k2"])
    # JOIN pairs keys with its first channels: the keyed ones go first
    assert w.sent() == ["JOIN #locked,#other,#open k1,k2"]
    for name in ("#locked", "#other", "#open"):
        w.feed(f":me!u@h JOIN {name}", f":irc.x 366 me {name} :End")
    assert [ch.name for ch in success_result_of(d)] == ["#open", "#locked", "#other"]


def test_join_keys_as_a_comma_string() -> None:
    w = Wire()
    w.register()
    w.client.join("#a,#b", "ka,kb")
    assert w.sent() == ["JOIN #a,#b ka,kb"]
    w.client.join("#c,#d", ",kd")  # only #d has a key
    assert w.sent() == ["JOIN #d,#c kd"]


def test_join_several_one_refused_errbacks_with_its_numeric() -> None:
    w = Wire()
    w.register()
    d = w.client.join("#a,#b")
    w.feed(":irc.x 475 me #b :Cannot join channel (+k)")
    w.feed(":me!u@h JOIN #a", ":irc.x 366 me #a :End")
    error = failure_result_of(d, IRCCommandError)
    assert error.value.numeric == "475"
    assert "#a" in w.client.channels  # the other was joined


def test_join_follows_targmax() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# TARGMAX=JOIN:2,PRIVMSG:4")
    w.client.join("#a,#b,#c")
    assert w.sent() == ["JOIN #a,#b", "JOIN #c"]


def test_join_refuses_nonsense() -> None:
    w = Wire()
    w.register()
    with pytest.raises(ValueError, match="no channel"):
        w.client.join(",")
    with pytest.raises(ValueError, match="3 keys for 2 channels"):
        w.client.join("#a,#b", "x,y,z")


# ---- WHO and WHOX


def test_who_without_whox_is_plain_who() -> None:
    w = Wire()
    w.register()
    d = w.client.who("#a")
    assert w.sent() == ["WHO #a"]
    w.feed(":irc.x 352 me #a ~bob host irc.x bob H@ :0 Bob Real",
           ":irc.x 315 me #a :End of WHO list")
    (entry,) = success_result_of(d)
    assert (entry.nick, entry.flags, entry.realname, entry.account) == (
        "bob", "H@", "Bob Real", None)


def test_who_with_whox_asks_the_fields_with_a_token_and_reads_the_account() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# WHOX")
    d = w.client.who("#a")
    (line,) = w.sent()
    command, mask, fields = line.split(" ")
    assert (command, mask) == ("WHO", "#a")
    assert fields.startswith("%tcuhsnfdar,")
    token = fields.split(",")[1]
    assert token.isdigit() and len(token) <= 3
    w.feed(f":irc.x 354 me {token} #a ~bob host irc.x bob H@ 0 bobacct :Bob Real",
           f":irc.x 354 me 999{token} #a x x x x x 0 other :not ours",  # another token
           f":irc.x 354 me {token} #a ~eve host2 irc.x eve G 0 0 :Eve",
           ":irc.x 315 me #a :End of WHO list")
    bob, eve = success_result_of(d)
    assert (bob.nick, bob.user, bob.host, bob.server, bob.flags, bob.account, bob.realname) \
        == ("bob", "~bob", "host", "irc.x", "H@", "bobacct", "Bob Real")
    assert (eve.nick, eve.flags, eve.account) == ("eve", "G", None)  # 0: not logged in


def test_whox_tokens_differ_between_requests() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# WHOX")
    w.client.who("#a")
    w.client.who("#b")
    tokens = [line.rsplit(",", 1)[1] for line in w.sent()]
    assert tokens[0] != tokens[1]


# ---- MONITOR


def test_monitor_needs_the_server_to_offer_it() -> None:
    w = Wire()
    w.register()
    failure_result_of(w.client.monitor("bob"), IRCNotSupported)
    failure_result_of(w.client.monitor_list(), IRCNotSupported)
    assert w.sent() == []


def test_monitor_fires_with_who_is_online_and_tells_the_changes() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# MONITOR=100")
    online, offline = w.events("online"), w.events("offline")
    d = w.client.monitor("Bob", "carol", "bob")  # bob twice (folded): once
    sent = w.sent()
    assert sent[0] == "MONITOR + Bob,carol"
    assert sent[1].startswith("PING ")
    token = sent[1].split(" ", 1)[1].lstrip(":")
    w.feed(":irc.x PONG irc.x :netshell")  # the answer to another PING (keepalive)
    w.feed(":irc.x 730 me :bob!u@h", ":irc.x 731 me :carol")
    assert not d.called  # until the server has said all it says of the command
    w.feed(f":irc.x PONG irc.x :{token}")
    assert success_result_of(d) == {"Bob": True, "carol": False}
    assert [(e.nick, e.text) for e in online] == [("bob", "bob!u@h")]
    assert [e.nick for e in offline] == ["carol"]
    assert w.client.online == {"bob"} and set(w.client.monitored) == {"bob", "carol"}
    # later: carol comes, bob goes
    w.feed(":irc.x 730 * :carol!c@h", ":irc.x 731 * :bob")
    assert [e.nick for e in online][-1] == "carol" and [e.nick for e in offline][-1] == "bob"
    assert w.client.online == {"carol"}
    # asked again: nothing new to ask
    assert success_result_of(w.client.monitor("BOB")) == {}
    assert w.sent() == []
    w.client.unmonitor("bob", "nobody")
    assert w.sent() == ["MONITOR - bob"]
    assert set(w.client.monitored) == {"carol"}


def test_monitor_a_nick_the_server_says_nothing_of_is_left_out() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# MONITOR")
    d = w.client.monitor("ok", "bad!nick")
    token = w.sent()[1].split(" ", 1)[1].lstrip(":")
    w.feed(":irc.x 731 me :ok", f":irc.x PONG irc.x :{token}")
    assert success_result_of(d) == {"ok": False}


def test_monitor_list_full_errbacks_and_is_an_event() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# MONITOR=1")
    full = w.events("monitor_full")
    d = w.client.monitor("a", "b", "c")
    w.sent()
    w.feed(":irc.x 731 me :a", ":irc.x 734 me 1 b,c :Monitor list is full.")
    error = failure_result_of(d, MonitorListFull)
    assert (error.value.numeric, error.value.limit, error.value.nicks) == ("734", 1, ["b", "c"])
    assert [e.text for e in full] == ["b,c"]
    assert set(w.client.monitored) == {"a"}  # those not added are not kept


def test_monitor_list_reads_732_until_733() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# MONITOR=100")
    d = w.client.monitor_list()
    assert w.sent() == ["MONITOR L"]
    w.feed(":irc.x 732 me :a,b", ":irc.x 732 me :c", ":irc.x 733 me :End of MONITOR list")
    assert success_result_of(d) == ["a", "b", "c"]


def test_monitor_is_sent_again_on_registration() -> None:
    w = Wire()
    w.client.monitored = {"bob": "Bob"}  # as a reconnect leaves it
    w.feed(":irc.x CAP * LS :", ":irc.x 001 me :Welcome",
           ":irc.x 005 me MONITOR=100 :are supported", ":irc.x 376 me :End")
    assert success_result_of(w.ready).registered
    assert "MONITOR + Bob" in w.sent()


# ---- what the client logs for a person


def lines_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "netshell.irc.client" and r.levelno == logging.INFO]


def test_each_event_is_logged_in_one_line_our_nick_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="netshell.irc.client")
    w = Wire(nick="alice")
    w.feed(":irc.x CAP * LS :", ":irc.x 001 alice :Welcome",
           ":irc.x 005 alice PREFIX=(ov)@+ CHANTYPES=# :are supported", ":irc.x 376 alice :End")
    w.client.join("#netshell")
    w.feed(":alice!a@h JOIN #netshell", ":irc.x 366 alice #netshell :End")
    caplog.clear()
    w.feed(
        ":bob!b@h JOIN #netshell",
        ":bob!b@h PRIVMSG #netshell :hello",
        ":bob!b@h PRIVMSG alice :psst",
        ":bob!b@h NOTICE #netshell :note",
        ":bob!b@h PRIVMSG #netshell :\x01ACTION waves\x01",
        ":bob!b@h TOPIC #netshell :the topic",
        ":bob!b@h NICK bobby",
        ":alice!a@h KICK #netshell bobby :out",
        ":carol!c@h PART #netshell :later",
        ":dave!d@h QUIT :Quit: gone",
        ":bob!b@h PRIVMSG #netshell :\x1b[2J\x02bold\x02 \x0304red\x03",
        ":bob!b@h PRIVMSG alice :\x01VERSION\x01",  # a CTCP request: not a person's line
    )
    assert lines_logged(caplog) == [
        "alice: #netshell bob joined",
        "alice: #netshell <bob> hello",
        "alice: <bob> psst",
        "alice: #netshell -bob- note",
        "alice: #netshell * bob waves",
        "alice: #netshell bob set the topic: the topic",
        "alice: bob is now bobby",
        "alice: #netshell alice kicked bobby (out)",
        "alice: #netshell carol left (later)",
        "alice: dave quit (Quit: gone)",
        # an escape sequence from the network is shown, not obeyed; formatting dropped
        "alice: #netshell <bob> \\x1b[2Jbold red",
    ]


def test_nothing_is_built_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="netshell.irc.client")
    w = Wire(nick="alice")
    w.register()
    described: list[str] = []
    real = w.client.describe
    w.client.describe = lambda e: described.append(e.kind) or real(e)  # type: ignore[method-assign]
    w.feed(":bob!b@h PRIVMSG alice :psst")
    assert described == [] and lines_logged(caplog) == []
