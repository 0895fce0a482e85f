"""The IRC server at the message level, in memory: each numeric with its parameters as the
Modern IRC document writes them (``<client>`` first: the nick, ``*`` before there is one).

Each connection is a server protocol over a StringTransport; time is a Clock.
"""

from __future__ import annotations

from typing import Any

import pytest
from irc_test_helpers import Fake, Line, by_command, memory_server, numerics, split_line


@pytest.fixture
def server() -> Any:
    factory, _clock = memory_server(name="irc.test", network="TestNet", motd=["line one"])
    return factory


def canon_line(line: Line) -> str:
    """The line with its last parameter always after ':' (either way is the same message)."""
    head = ([f"@{line.tags}"] if line.tags else []) + ([f":{line.source}"] if line.source
                                                        else [])
    words = [*head, line.command, *line.params[:-1]]
    if line.params:
        words.append(":" + line.params[-1])
    return " ".join(words)


def raws(lines: list[Line]) -> list[str]:
    return [canon_line(line) for line in lines]


def canon(texts: list[str]) -> list[str]:
    return [canon_line(split_line(t)) for t in texts]


def tag_dict(line: Line) -> dict[str, str]:
    """A line's tags (values left escaped: the tests use plain ones)."""
    out = {}
    for item in line.tags.split(";") if line.tags else []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def params(lines: list[Line], command: str) -> list[list[str]]:
    return [line.params for line in by_command(lines, command)]


def registered(factory: Any, nick: str) -> Fake:
    c = Fake(factory)
    lines = c.register(nick)
    assert "001" in numerics(lines), lines
    return c


# ---- registration


def test_registration_burst(server: Any) -> None:
    c = Fake(server)
    assert c.take("NICK alice") == []
    lines = c.take("USER al 0 * :Alice Liddell")
    got = numerics(lines)
    assert got[:4] == ["001", "002", "003", "004"]
    assert got[-3:] == ["375", "372", "376"]
    luser = ["251", "252", "253", "254", "255", "265", "266"]
    assert [n for n in got if n in luser] == luser
    welcome = lines[0]
    assert welcome.source == "irc.test"
    assert welcome.params == ["alice", "Welcome to the TestNet Network, alice!~al@127.0.0.1"]
    assert params(lines, "004") == [
        ["alice", "irc.test", "netshell-irc-0.1", "Biow", "beIiklmnopstv", "beIklov"]]
    tokens = [t for p in params(lines, "005") for t in p[1:-1]]
    assert all(p[-1] == "are supported by this server" for p in params(lines, "005"))
    assert all(len(p) - 2 <= 13 for p in params(lines, "005"))
    for token in ("CASEMAPPING=rfc1459", "CHANTYPES=#", "CHANMODES=beI,k,l,imnpst",
                  "PREFIX=(ov)@+", "NICKLEN=30", "CHANNELLEN=50", "TOPICLEN=390",
                  "KICKLEN=390", "AWAYLEN=390", "MODES=4", "STATUSMSG=@+", "NETWORK=TestNet",
                  "UTF8ONLY", "USERLEN=10"):
        assert token in tokens, token
    assert any(t.startswith("TARGMAX=") for t in tokens)
    assert params(lines, "251") == [["alice", "There are 1 users and 0 invisible on 1 servers"]]
    assert params(lines, "252") == [["alice", "0", "operator(s) online"]]
    assert params(lines, "253") == [["alice", "0", "unknown connection(s)"]]
    assert params(lines, "254") == [["alice", "0", "channels formed"]]
    assert params(lines, "255") == [["alice", "I have 1 clients and 0 servers"]]
    assert params(lines, "265") == [["alice", "1", "1", "Current local users 1, max 1"]]
    assert params(lines, "266") == [["alice", "1", "1", "Current global users 1, max 1"]]
    assert params(lines, "375") == [["alice", "- irc.test Message of the day - "]]
    assert params(lines, "372") == [["alice", "- line one"]]
    assert params(lines, "376") == [["alice", "End of /MOTD command."]]


def test_no_motd_is_422() -> None:
    factory, _ = memory_server()
    c = Fake(factory)
    lines = c.register("alice")
    assert params(lines, "422") == [["alice", "MOTD File is missing"]]
    assert "375" not in numerics(lines)
    assert params(c.take("MOTD"), "422") == [["alice", "MOTD File is missing"]]


def test_user_before_nick_and_unknown_connections(server: Any) -> None:
    c = Fake(server)
    assert c.take("USER bob 0 * :Bob") == []
    lines = c.take("NICK bob")
    assert numerics(lines)[0] == "001"
    d = Fake(server)  # not registered: an unknown connection
    lines = registered(server, "carol").take("LUSERS")
    assert params(lines, "253") == [["carol", "1", "unknown connection(s)"]]
    assert params(lines, "251") == [["carol", "There are 2 users and 0 invisible on 1 servers"]]
    d.lost()


def test_commands_before_registration_get_451(server: Any) -> None:
    c = Fake(server)
    for line in ("JOIN #a", "PRIVMSG x :y", "WHOIS x", "MODE x", "LUSERS", "MOTD", "FOOBAR"):
        assert params(c.take(line), "451") == [["*", "You have not registered"]], line
    c.send("NICK early")
    assert params(c.take("JOIN #a"), "451") == [["early", "You have not registered"]]
    # PING is answered before registration
    assert params(c.take("PING abc"), "PONG") == [["irc.test", "abc"]]


def test_reregistration_462(server: Any) -> None:
    c = registered(server, "alice")
    assert params(c.take("USER a 0 * :x"), "462") == [["alice", "You may not reregister"]]
    assert params(c.take("PASS x"), "462") == [["alice", "You may not reregister"]]


def test_unknown_command_421_and_missing_params_461(server: Any) -> None:
    c = registered(server, "alice")
    assert params(c.take("FOOBAR x"), "421") == [["alice", "FOOBAR", "Unknown command"]]
    for line, command in (("JOIN", "JOIN"), ("PART", "PART"), ("KICK #a", "KICK"),
                          ("TOPIC", "TOPIC"), ("MODE", "MODE"), ("ISON", "ISON"),
                          ("USERHOST", "USERHOST"), ("PING", "PING"), ("OPER x", "OPER"),
                          ("INVITE x", "INVITE")):
        assert params(c.take(line), "461") == [["alice", command, "Not enough parameters"]], line
    pre = Fake(server)
    assert params(pre.take("USER x"), "461") == [["*", "USER", "Not enough parameters"]]


def test_nick_errors(server: Any) -> None:
    registered(server, "alice")
    c = Fake(server)
    assert params(c.take("NICK"), "431") == [["*", "No nickname given"]]
    for bad in ("1abc", "-abc", "#chan", "a!b", "a@b", "x" * 31):
        assert params(c.take(f"NICK {bad}"), "432") == [["*", bad, "Erroneus nickname"]], bad
    # rfc1459: ALICE, and [] as {}, are the same nick
    assert params(c.take("NICK ALICE"), "433") == [["*", "ALICE", "Nickname is already in use"]]
    registered(server, "a[b]")
    assert params(c.take("NICK A{B}"), "433") == [["*", "A{B}", "Nickname is already in use"]]


def test_password() -> None:
    factory, _ = memory_server(password="sesame")
    c = Fake(factory)
    c.send("PASS wrong")
    lines = c.register("alice")
    assert params(lines, "464") == [["alice", "Password incorrect"]]
    assert lines[-1].command == "ERROR"
    assert c.transport.closed
    assert factory.state.find_user("alice") is None
    ok = Fake(factory)
    ok.send("PASS sesame")
    assert "001" in numerics(ok.register("alice"))
    nopass = Fake(factory)
    assert "464" in numerics(nopass.register("bob"))


def test_quit_before_registration(server: Any) -> None:
    c = Fake(server)
    c.send("NICK alice")
    lines = c.take("QUIT :bye")
    assert [line.command for line in lines] == ["ERROR"]
    assert c.transport.closed
    c.lost()
    assert server.state.find_user("alice") is None
    assert "001" in numerics(Fake(server).register("alice"))  # the nick is free again


# ---- CAP


def test_cap_negotiation_holds_registration(server: Any) -> None:
    c = Fake(server)
    ls = c.take("CAP LS 302")
    assert len(ls) == 1 and ls[0].params[:2] == ["*", "LS"]
    offered = ls[0].params[2].split()
    for cap in ("multi-prefix", "server-time", "message-tags", "echo-message", "away-notify",
                "extended-join", "userhost-in-names", "cap-notify"):
        assert cap in offered
    assert c.take("NICK alice") == []
    assert c.take("USER a 0 * :A") == []  # held until CAP END
    assert params(c.take("CAP REQ :multi-prefix server-time"), "CAP") == [
        ["alice", "ACK", "multi-prefix server-time"]]
    assert params(c.take("CAP REQ :multi-prefix bogus"), "CAP") == [
        ["alice", "NAK", "multi-prefix bogus"]]
    assert params(c.take("CAP LIST"), "CAP") == [
        ["alice", "LIST", "cap-notify multi-prefix server-time"]]
    assert params(c.take("CAP REQ :-server-time"), "CAP") == [["alice", "ACK", "-server-time"]]
    assert params(c.take("CAP LIST"), "CAP") == [["alice", "LIST", "cap-notify multi-prefix"]]
    assert params(c.take("CAP FOO"), "410") == [["alice", "FOO", "Invalid CAP command"]]
    lines = c.take("CAP END")
    assert numerics(lines)[0] == "001"
    assert c.take("CAP END") == []


def test_server_time_and_multi_prefix(server: Any) -> None:
    c = Fake(server)
    c.send("CAP REQ :server-time multi-prefix")
    c.send("NICK alice")
    c.send("USER a 0 * :A")
    c.take("CAP END")
    c.take("JOIN #x")
    c.take("MODE #x +v alice")
    lines = c.take("NAMES #x")
    assert params(lines, "353") == [["alice", "=", "#x", "@+alice"]]
    assert all(line.tags.startswith("time=") for line in lines)
    assert lines[0].tags.endswith("Z")
    plain = registered(server, "bob")
    plain.take("JOIN #x")
    assert params(plain.take("NAMES #x"), "353") == [["bob", "=", "#x", "@alice bob"]]
    assert all(line.tags == "" for line in plain.take("NAMES #x"))


# ---- PING, idle and limits


def test_ping_pong(server: Any) -> None:
    c = registered(server, "alice")
    lines = c.take("PING :hello there")
    assert [(line.source, line.command, line.params) for line in lines] == [
        ("irc.test", "PONG", ["irc.test", "hello there"])]
    assert c.take("PONG :irc.test") == []


def test_ping_on_idle_then_timeout() -> None:
    factory, clock = memory_server(name="irc.test", ping_interval=100, ping_timeout=30)
    a = Fake(factory)
    a.register("alice")
    b = Fake(factory)
    b.register("bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    clock.advance(99)
    assert a.lines() == []
    a.send("PONG :x")  # activity puts the PING off
    b.send("PONG :x")
    b.lines()
    clock.advance(99)
    assert a.lines() == [] and b.lines() == []
    clock.advance(1)
    assert raws(a.lines()) == canon(["PING irc.test"])
    assert raws(b.lines()) == canon(["PING irc.test"])
    b.send("PONG :irc.test")  # bob answers, alice does not
    clock.advance(30)
    lines = a.lines()
    assert [line.command for line in lines] == ["ERROR"]
    assert lines[0].params[0].startswith("Closing Link: 127.0.0.1 (Ping timeout")
    assert a.transport.closed and not b.transport.closed
    quit_lines = by_command(b.lines(), "QUIT")
    assert [(q.source, q.params[0][:12]) for q in quit_lines] == [
        ("alice!~u@127.0.0.1", "Ping timeout")]
    assert factory.state.find_user("alice") is None


def test_unregistered_client_times_out() -> None:
    factory, clock = memory_server(ping_interval=10, ping_timeout=5)
    c = Fake(factory)
    c.send("NICK lurker")
    clock.advance(10)
    assert [line.command for line in c.lines()] == ["PING"]
    clock.advance(5)
    assert [line.command for line in c.lines()] == ["ERROR"]
    assert c.transport.closed
    assert factory.state.find_user("lurker") is None


def test_line_too_long_is_417_and_the_connection_lives(server: Any) -> None:
    c = registered(server, "alice")
    lines = c.take("PRIVMSG alice :" + "x" * 600)
    assert params(lines, "417") == [["alice", "Input line was too long"]]
    assert not c.transport.closed
    assert params(c.take("PING ok"), "PONG") == [["irc.test", "ok"]]
    # exactly 512 bytes with CRLF is taken; the PONG, with the server's name twice, is cut
    # to 512 bytes too (no line sent is longer)
    line = "PING :" + "y" * (510 - len("PING :"))
    pong = c.take(line)
    assert pong[0].raw == ":irc.test PONG irc.test " + "y" * (510 - len(":irc.test PONG irc.test "))


def test_bad_utf8_is_fail_and_the_connection_lives(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    lines = a.take(b"PRIVMSG bob :caf\xe9")
    assert [(line.command, line.params) for line in lines] == [
        ("FAIL", ["PRIVMSG", "INVALID_UTF8", "Message rejected for containing invalid UTF-8"])]
    assert b.lines() == []
    a.send("PRIVMSG bob :caf\u00e9")
    assert params(b.lines(), "PRIVMSG") == [["bob", "caf\u00e9"]]


def test_flood_is_slowed_then_closed_that_connection_only() -> None:
    factory, clock = memory_server(flood_burst=10, flood_rate=1, flood_queue=20)
    a = Fake(factory)
    b = Fake(factory)
    a.register("alice")
    b.register("bob")
    clock.advance(60)  # the registration lines are paid for
    a.lines()
    for i in range(15):
        a.send(f"PRIVMSG bob :{i}")
    # the burst goes through at once, the rest waits for the budget
    assert [line.params[1] for line in b.lines()] == [str(i) for i in range(11)]
    clock.advance(1)
    assert [line.params[1] for line in b.lines()] == ["11"]
    assert params(a.take("PING x"), "PONG") == []  # queued behind the rest, in order
    clock.advance(3)
    assert [line.params[1] for line in b.lines()] == ["12", "13", "14"]
    clock.advance(1)
    assert params(a.lines(), "PONG") == [["irc.local", "x"]]
    assert not a.transport.closed
    clock.advance(60)
    # more lines ahead than flood_queue: closed, with ERROR
    a.protocol.data_received(b"PRIVMSG bob :spam\r\n" * 35)
    assert a.transport.closed
    lines = a.lines()
    assert lines[-1].command == "ERROR" and "Excess Flood" in lines[-1].params[0]
    assert not b.transport.closed
    assert len(b.lines()) <= 11
    assert params(b.take("PING x"), "PONG") == [["irc.local", "x"]]


def test_no_flood_control_when_burst_is_0() -> None:
    factory, _ = memory_server(flood_burst=0)
    a = Fake(factory)
    b = Fake(factory)
    a.register("alice")
    b.register("bob")
    a.protocol.data_received(b"PRIVMSG bob :x\r\n" * 500)
    assert len(b.lines()) == 500 and not a.transport.closed


# ---- nick changes, channels


def test_nick_change_seen_by_channel_neighbours_once(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    c = registered(server, "carol")
    for x in (a, b):
        x.take("JOIN #one")
        x.take("JOIN #two")
    a.lines()
    lines = a.take("NICK Alicia")
    assert [(line.source, line.command, line.params) for line in lines] == [
        ("alice!~u@127.0.0.1", "NICK", ["Alicia"])]
    assert raws(b.lines()) == canon([":alice!~u@127.0.0.1 NICK Alicia"])
    assert c.lines() == []  # shares no channel
    assert server.state.find_user("alicia") is not None
    assert server.state.find_user("alice") is None
    assert a.take("NICK Alicia") == []
    # a case change of one's own nick is allowed
    assert [line.params for line in a.take("NICK ALICIA")] == [["ALICIA"]]
    assert params(b.take("NICK ALICIA"), "433") == [["bob", "ALICIA", "Nickname is already in use"]]


def test_join_names_and_topic(server: Any) -> None:
    a = registered(server, "alice")
    lines = a.take("JOIN #Chat")
    assert [line.raw for line in lines] == [
        ":alice!~u@127.0.0.1 JOIN #Chat",
        ":irc.test 353 alice = #Chat @alice",
        ":irc.test 366 alice #Chat :End of /NAMES list",
    ]
    assert params(a.take("TOPIC #chat"), "331") == [["alice", "#Chat", "No topic is set"]]
    assert raws(a.take("TOPIC #chat :hello world")) == canon([
        ":alice!~u@127.0.0.1 TOPIC #Chat :hello world"])
    b = registered(server, "bob")
    lines = b.take("JOIN #CHAT")
    assert numerics(lines) == ["JOIN", "332", "333", "353", "366"]
    assert lines[0].params == ["#Chat"]
    assert lines[1].params == ["bob", "#Chat", "hello world"]
    assert lines[2].params[:3] == ["bob", "#Chat", "alice!~u@127.0.0.1"]
    assert lines[2].params[3].isdigit()
    assert lines[3].params == ["bob", "=", "#Chat", "@alice bob"]
    assert raws(a.lines()) == canon([":bob!~u@127.0.0.1 JOIN #Chat"])
    # +t: only operators set the topic
    assert params(b.take("TOPIC #chat :mine"), "482") == [
        ["bob", "#Chat", "You're not channel operator"]]
    assert params(b.take("TOPIC #nowhere"), "403") == [["bob", "#nowhere", "No such channel"]]
    c = registered(server, "carol")
    assert params(c.take("TOPIC #chat :x"), "442") == [
        ["carol", "#Chat", "You're not on that channel"]]
    assert params(c.take("TOPIC #chat"), "332") == [["carol", "#Chat", "hello world"]]
    a.take("MODE #chat -t")
    b.lines()
    assert raws(b.take("TOPIC #chat :")) == canon([
        ":bob!~u@127.0.0.1 TOPIC #Chat :"])
    assert params(b.take("TOPIC #chat"), "331") == [["bob", "#Chat", "No topic is set"]]


def test_join_several_with_keys_and_join_0(server: Any) -> None:
    a = registered(server, "alice")
    a.take("JOIN #a,#b")
    a.take("MODE #a +k secret")
    a.take("MODE #b +k other")
    b = registered(server, "bob")
    lines = b.take("JOIN #a,#b,#c secret")
    assert params(lines, "475") == [["bob", "#b", "Cannot join channel (+k)"]]
    assert [line.params for line in by_command(lines, "JOIN")] == [["#a"], ["#c"]]
    assert params(b.take("JOIN bad"), "476") == [["bob", "bad", "Bad Channel Mask"]]
    a.lines()
    lines = b.take("JOIN 0")
    assert sorted(line.params[0] for line in by_command(lines, "PART")) == ["#a", "#c"]
    assert raws(a.lines()) == canon([":bob!~u@127.0.0.1 PART #a"])
    assert server.state.find_channel("#c") is None  # empty: gone


def test_part(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    assert raws(b.take("PART #x :see you")) == canon([
        ":bob!~u@127.0.0.1 PART #x :see you"])
    assert raws(a.lines()) == canon([":bob!~u@127.0.0.1 PART #x :see you"])
    assert params(b.take("PART #x"), "442") == [["bob", "#x", "You're not on that channel"]]
    assert params(b.take("PART #nope"), "403") == [["bob", "#nope", "No such channel"]]


def test_quit_broadcast(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    lines = b.take("QUIT :gone fishing")
    assert [line.command for line in lines] == ["ERROR"]
    assert b.transport.closed
    assert raws(a.lines()) == canon([":bob!~u@127.0.0.1 QUIT :Quit: gone fishing"])
    b.lost()
    assert a.lines() == []  # told once
    c = registered(server, "carol")
    c.take("JOIN #x")
    a.lines()
    c.take("QUIT")
    assert params(a.lines(), "QUIT") == [["Quit: "]]
    assert params(a.take("NAMES #x"), "353") == [["alice", "=", "#x", "@alice"]]


def test_connection_lost_is_a_quit(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    b.lost()
    assert raws(a.lines()) == canon([":bob!~u@127.0.0.1 QUIT :Connection closed"])
    assert server.state.find_user("bob") is None


def test_privmsg_and_notice(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    c = registered(server, "carol")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    assert b.take("PRIVMSG #X :hi all") == []  # not echoed without echo-message
    assert raws(a.lines()) == canon([":bob!~u@127.0.0.1 PRIVMSG #x :hi all"])
    assert c.lines() == []
    # several targets
    lines = c.take("PRIVMSG alice,BOB,nobody,#nochan :yo")
    assert params(lines, "401") == [["carol", "nobody", "No such nick/channel"]]
    assert params(lines, "403") == [["carol", "#nochan", "No such channel"]]
    assert raws(a.lines()) == canon([":carol!~u@127.0.0.1 PRIVMSG alice :yo"])
    assert raws(b.lines()) == canon([":carol!~u@127.0.0.1 PRIVMSG bob :yo"])
    # +n: outsiders may not send
    assert params(c.take("PRIVMSG #x :let me in"), "404") == [
        ["carol", "#x", "Cannot send to channel"]]
    assert params(c.take("PRIVMSG"), "411") == [["carol", "No recipient given (PRIVMSG)"]]
    assert params(c.take("PRIVMSG alice"), "412") == [["carol", "No text to send"]]
    assert params(c.take("PRIVMSG alice :"), "412") == [["carol", "No text to send"]]
    assert params(c.take("PRIVMSG a,b,c,d,e :x"), "407")[0][:2] == ["carol", "a,b,c,d,e"]
    # NOTICE: delivered, never answered with an error
    assert c.take("NOTICE nobody,#x :x") == []
    c.take("NOTICE alice :psst")
    assert raws(a.lines()) == canon([":carol!~u@127.0.0.1 NOTICE alice :psst"])


def test_statusmsg_and_moderated(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    c = registered(server, "carol")
    for x in (a, b, c):
        x.take("JOIN #x")
    a.take("MODE #x +v bob")
    for x in (a, b, c):
        x.lines()
    c.take("PRIVMSG @#x :ops only")
    assert raws(a.lines()) == canon([":carol!~u@127.0.0.1 PRIVMSG @#x :ops only"])
    assert b.lines() == []
    c.take("PRIVMSG +#x :voiced")
    assert len(a.lines()) == 1 and len(b.lines()) == 1
    a.take("MODE #x +m")
    b.lines()
    c.lines()
    assert params(c.take("PRIVMSG #x :x"), "404") == [["carol", "#x", "Cannot send to channel"]]
    b.take("PRIVMSG #x :voiced may")
    assert [line.params for line in c.lines()] == [["#x", "voiced may"]]


def test_echo_message_and_tags(server: Any) -> None:
    a = Fake(server)
    a.send("CAP REQ :echo-message message-tags")
    a.register("alice")
    a.take("CAP END")
    b = Fake(server)
    b.send("CAP REQ message-tags")
    b.register("bob")
    b.take("CAP END")
    c = registered(server, "carol")
    a.send("@+draft/react=x;label=no :ignored!x@y PRIVMSG bob :hello")
    echo = a.lines()
    assert [(line.source, line.params) for line in echo] == [
        ("alice!~u@127.0.0.1", ["bob", "hello"])]
    got = b.lines()
    assert [(line.source, line.params) for line in got] == [
        ("alice!~u@127.0.0.1", ["bob", "hello"])]
    # the client-only tag relayed, a msgid added (the same in the echo), the label not
    tags = tag_dict(got[0])
    assert tags["+draft/react"] == "x" and tags["msgid"] and set(tags) == {"+draft/react",
                                                                            "msgid"}
    assert tag_dict(echo[0]) == tags
    a.send("@+draft/react=x PRIVMSG carol :hi")
    assert raws(c.lines()) == canon([":alice!~u@127.0.0.1 PRIVMSG carol :hi"])
    # TAGMSG reaches only those with message-tags
    a.lines()
    a.send("@+typing=active TAGMSG bob")
    got = b.lines()
    assert [(line.source, line.command, line.params) for line in got] == [
        ("alice!~u@127.0.0.1", "TAGMSG", ["bob"])]
    assert tag_dict(got[0])["+typing"] == "active"
    assert params(c.take("TAGMSG bob"), "421") == [["carol", "TAGMSG", "Unknown command"]]


def test_away(server: Any) -> None:
    a = registered(server, "alice")
    b = Fake(server)
    b.send("CAP REQ away-notify")
    b.register("bob")
    b.take("CAP END")
    a.take("JOIN #x")
    b.take("JOIN #x")
    assert params(a.take("AWAY :out to lunch"), "306") == [
        ["alice", "You have been marked as being away"]]
    assert raws(b.lines()) == canon([":alice!~u@127.0.0.1 AWAY :out to lunch"])
    lines = b.take("PRIVMSG alice :are you there")
    assert params(lines, "301") == [["bob", "alice", "out to lunch"]]
    assert b.take("NOTICE alice :x") == []  # no 301 for a NOTICE
    assert params(b.take("USERHOST alice bob nobody"), "302") == [
        ["bob", "alice=-~u@127.0.0.1 bob=+~u@127.0.0.1"]]
    whois = b.take("WHOIS alice")
    assert params(whois, "301") == [["bob", "alice", "out to lunch"]]
    assert params(b.take("WHO alice"), "352")[0][6] == "G@"
    assert params(a.take("AWAY"), "305") == [["alice", "You are no longer marked as being away"]]
    assert raws(b.lines()) == canon([":alice!~u@127.0.0.1 AWAY"])


def test_kick(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    c = registered(server, "carol")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    assert params(b.take("KICK #x alice"), "482") == [["bob", "#x", "You're not channel operator"]]
    assert params(c.take("KICK #x alice"), "442") == [["carol", "#x", "You're not on that channel"]]
    assert params(a.take("KICK #x carol"), "441") == [
        ["alice", "carol", "#x", "They aren't on that channel"]]
    assert params(a.take("KICK #y carol"), "403") == [["alice", "#y", "No such channel"]]
    assert raws(a.take("KICK #x Bob :behave")) == canon([
        ":alice!~u@127.0.0.1 KICK #x bob :behave"])
    assert raws(b.lines()) == canon([":alice!~u@127.0.0.1 KICK #x bob :behave"])
    assert params(b.take("PRIVMSG #x :hey"), "404") == [["bob", "#x", "Cannot send to channel"]]
    b.take("JOIN #x")
    a.lines()
    assert [line.params for line in a.take("KICK #x bob")] == [["#x", "bob", "alice"]]
    # several users: one KICK each, up to TARGMAX's 4; more is refused whole (407), not
    # cut short unsaid
    others = [registered(server, f"k{i}") for i in range(5)]
    for o in others:
        o.take("JOIN #x")
    for c in (a, *others):
        c.lines()
    lines = a.take("KICK #x k0,k1,k2,k3,k4 :out")
    assert [line.params for line in lines] == [["alice", "k0,k1,k2,k3,k4", "Too many targets"]]
    assert all(o.lines() == [] for o in others)
    lines = a.take("KICK #x k0,k1,k2,k3 :out")
    assert [line.params for line in lines] == [["#x", f"k{i}", "out"] for i in range(4)]


def test_names_and_secret_channels(server: Any) -> None:
    a = registered(server, "alice")
    a.take("JOIN #s")
    a.take("MODE #s +s")
    b = registered(server, "bob")
    assert b.take("NAMES #s") == [b.take("NAMES #s")[0]]
    assert params(b.take("NAMES #s"), "366") == [["bob", "#s", "End of /NAMES list"]]
    assert by_command(b.take("NAMES #s"), "353") == []
    assert params(a.take("NAMES #s"), "353") == [["alice", "@", "#s", "@alice"]]
    b.take("JOIN #p")
    assert params(b.take("NAMES #p,#s"), "366") == [
        ["bob", "#p", "End of /NAMES list"], ["bob", "#s", "End of /NAMES list"]]
    assert params(b.take("LIST"), "322") == [["bob", "#p", "1", ""]]
    lines = a.take("LIST")
    assert numerics(lines)[0] == "321" and numerics(lines)[-1] == "323"
    assert params(lines, "321") == [["alice", "Channel", "Users  Name"]]
    assert params(lines, "323") == [["alice", "End of /LIST"]]
    assert sorted(p[1] for p in params(lines, "322")) == ["#p", "#s"]
    assert params(a.take("WHOIS bob"), "319") == [["alice", "bob", "@#p"]]
    assert by_command(b.take("WHOIS alice"), "319") == []


def test_names_split_into_lines_that_fit(server: Any) -> None:
    first = registered(server, "n" + "0" * 20)
    first.take("JOIN #big")
    for i in range(1, 60):
        registered(server, f"n{i:020d}").take("JOIN #big")
    lines = first.take("NAMES #big")
    names = [n for p in params(lines, "353") for n in p[3].split()]
    assert len(names) == 60 and len(by_command(lines, "353")) > 1
    assert all(len(line.raw.encode()) + 2 <= 512 for line in lines)


# ---- modes


def test_channel_mode_query_and_changes(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    lines = a.take("MODE #x")
    assert numerics(lines) == ["324", "329"]
    assert lines[0].params == ["alice", "#x", "+nt"]
    assert lines[1].params[:2] == ["alice", "#x"] and lines[1].params[2].isdigit()
    a.lines()
    b.lines()
    lines = a.take("MODE #x +kl-t sesame 10")
    assert [line.raw for line in lines] == [":alice!~u@127.0.0.1 MODE #x +kl-t sesame 10"]
    assert raws(b.lines()) == canon([":alice!~u@127.0.0.1 MODE #x +kl-t sesame 10"])
    assert params(a.take("MODE #x"), "324") == [["alice", "#x", "+nkl", "sesame", "10"]]
    c = registered(server, "carol")
    assert params(c.take("MODE #x"), "324") == [["carol", "#x", "+nkl", "*", "10"]]
    assert params(a.take("MODE #x +k other"), "467") == [["alice", "#x", "Key already set"]]
    assert params(a.take("MODE #x +z"), "472") == [["alice", "z", "is unknown mode char to me"]]
    assert a.take("MODE #x +o") == []  # a type B/C mode without its parameter: ignored
    assert a.take("MODE #x +l") == [] and a.take("MODE #x +k") == []
    assert params(b.take("MODE #x +m"), "482") == [["bob", "#x", "You're not channel operator"]]
    assert params(a.take("MODE #nope"), "403") == [["alice", "#nope", "No such channel"]]
    assert params(a.take("MODE #x +o carol"), "441") == [
        ["alice", "carol", "#x", "They aren't on that channel"]]
    assert params(a.take("MODE #x +o nobody"), "401") == [
        ["alice", "nobody", "No such nick/channel"]]
    lines = a.take("MODE #x +ov-k bob bob *")
    assert [line.params for line in lines] == [["#x", "+ov-k", "bob", "bob", "*"]]
    assert params(a.take("NAMES #x"), "353") == [["alice", "=", "#x", "@alice @bob"]]
    assert a.take("MODE #x +n") == []  # no change, nothing said
    lines = a.take("MODE #x -o+mis-l bob")
    assert [line.params for line in lines] == [["#x", "-o+mis-l", "bob"]]


def test_invite_only_limit_and_key_refusals(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #x")
    a.take("MODE #x +i")
    assert params(b.take("JOIN #x"), "473") == [["bob", "#x", "Cannot join channel (+i)"]]
    lines = a.take("INVITE bob #x")
    assert params(lines, "341") == [["alice", "bob", "#x"]]
    assert raws(b.lines()) == canon([":alice!~u@127.0.0.1 INVITE bob #x"])
    assert [line.params for line in b.take("INVITE")] == [
        ["bob", "#x"], ["bob", "End of /INVITE list"]]
    assert numerics(b.take("JOIN #x"))[0] == "JOIN"
    assert [line.params for line in b.take("INVITE")] == [
        ["bob", "End of /INVITE list"]]  # used already
    assert params(a.take("INVITE bob #x"), "443") == [
        ["alice", "bob", "#x", "is already on channel"]]
    b.take("PART #x")
    assert params(b.take("JOIN #x"), "473") == [["bob", "#x", "Cannot join channel (+i)"]]
    a.take("MODE #x -i+l 1")
    assert params(b.take("JOIN #x"), "471") == [["bob", "#x", "Cannot join channel (+l)"]]
    a.take("MODE #x -l+k key")
    assert params(b.take("JOIN #x"), "475") == [["bob", "#x", "Cannot join channel (+k)"]]
    assert numerics(b.take("JOIN #x key"))[0] == "JOIN"


def test_bans(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #x")
    assert [line.params for line in a.take("MODE #x +b bob")] == [["#x", "+b", "bob!*@*"]]
    assert params(b.take("JOIN #x"), "474") == [["bob", "#x", "Cannot join channel (+b)"]]
    lines = b.take("MODE #x b")  # anyone may look at the list
    assert [p[:3] for p in params(lines, "367")] == [["bob", "#x", "bob!*@*"]]
    assert params(lines, "368") == [["bob", "#x", "End of channel ban list"]]
    a.take("MODE #x +e *!~u@127.0.0.1")
    assert numerics(b.take("JOIN #x"))[0] == "JOIN"  # the exception wins
    assert params(b.take("MODE #x e"), "349") == [["bob", "#x", "End of channel exception list"]]


def test_user_modes(server: Any) -> None:
    a = registered(server, "alice")
    registered(server, "bob")
    assert params(a.take("MODE alice"), "221") == [["alice", "+"]]
    assert raws(a.take("MODE alice +i")) == canon([":alice!~u@127.0.0.1 MODE alice +i"])
    assert params(a.take("MODE alice"), "221") == [["alice", "+i"]]
    assert params(a.take("MODE bob +i"), "502") == [["alice", "Cant change mode for other users"]]
    assert params(a.take("MODE nobody"), "401") == [["alice", "nobody", "No such nick/channel"]]
    assert params(a.take("MODE alice +x"), "501") == [["alice", "Unknown MODE flag"]]
    assert a.take("MODE alice +o") == []  # only OPER makes an operator
    lines = registered(server, "carol").take("LUSERS")
    assert params(lines, "251") == [["carol", "There are 2 users and 1 invisible on 1 servers"]]


# ---- queries


def test_whois(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    b.take("JOIN #x")
    a.take("JOIN #x")
    lines = a.take("WHOIS BOB")
    assert numerics(lines) == ["311", "319", "312", "317", "318"]
    assert lines[0].params == ["alice", "bob", "~u", "127.0.0.1", "*", "Real Name"]
    assert lines[1].params == ["alice", "bob", "@#x"]
    assert lines[2].params == ["alice", "bob", "irc.test", "TestNet IRC server"]
    assert lines[3].params[:2] == ["alice", "bob"] and lines[3].params[4] == (
        "seconds idle, signon time")
    assert lines[4].params == ["alice", "BOB", "End of /WHOIS list"]  # as asked
    lines = a.take("WHOIS nobody")
    assert [line.params for line in lines] == [
        ["alice", "nobody", "No such nick/channel"], ["alice", "nobody", "End of /WHOIS list"]]
    assert params(a.take("WHOIS"), "431") == [["alice", "No nickname given"]]


def test_who(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    lines = b.take("WHO #x")
    assert params(lines, "352") == [
        ["bob", "#x", "~u", "127.0.0.1", "irc.test", "alice", "H@", "0 Real Name"],
        ["bob", "#x", "~u", "127.0.0.1", "irc.test", "bob", "H", "0 Real Name"],
    ]
    assert params(lines, "315") == [["bob", "#x", "End of WHO list"]]
    lines = b.take("WHO alice")
    assert params(lines, "352") == [
        ["bob", "#x", "~u", "127.0.0.1", "irc.test", "alice", "H@", "0 Real Name"]]
    assert params(lines, "315") == [["bob", "alice", "End of WHO list"]]


def test_who_hides_invisible_strangers(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    b.take("MODE bob +i")
    assert params(a.take("WHO b*"), "352") == []  # invisible, no channel shared
    assert len(params(a.take("WHO bob"), "352")) == 1  # an exact nick is answered
    a.take("JOIN #x")
    b.take("JOIN #x")
    assert [p[5] for p in params(a.take("WHO b*"), "352")] == ["bob"]


def test_ison_userhost(server: Any) -> None:
    a = registered(server, "alice")
    registered(server, "Bob")
    assert params(a.take("ISON bob nobody ALICE"), "303") == [["alice", "Bob alice"]]
    assert params(a.take("ISON nobody"), "303") == [["alice", ""]]
    assert params(a.take("USERHOST bob"), "302") == [["alice", "Bob=+~u@127.0.0.1"]]


def test_oper_and_kill() -> None:
    factory, _ = memory_server(opers={"root": "toor"})
    a = registered(factory, "alice")
    b = registered(factory, "bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    assert params(a.take("KILL bob :spam"), "481") == [
        ["alice", "Permission Denied- You're not an IRC operator"]]
    assert params(a.take("OPER root nope"), "464") == [["alice", "Password incorrect"]]
    lines = a.take("OPER root toor")
    assert params(lines, "381") == [["alice", "You are now an IRC operator"]]
    assert params(lines, "MODE") == [["alice", "+o"]]
    assert params(a.take("USERHOST alice"), "302") == [["alice", "alice*=+~u@127.0.0.1"]]
    b.lines()
    lines = a.take("KILL bob :spam")
    assert b.transport.closed
    got = b.lines()
    assert [(line.source, line.command, line.params) for line in got] == [
        ("alice!~u@127.0.0.1", "KILL", ["bob", "spam"]),
        ("bob!~u@127.0.0.1", "QUIT", ["Killed (alice (spam))"]),
        ("", "ERROR", ["Closing Link: 127.0.0.1 (Killed (alice (spam)))"]),
    ]
    assert params(lines, "QUIT") == [["Killed (alice (spam))"]]


def test_whowas(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    b.take("QUIT")
    lines = a.take("WHOWAS bob")
    assert params(lines, "314") == [["alice", "bob", "~u", "127.0.0.1", "*", "Real Name"]]
    assert params(lines, "369") == [["alice", "bob", "End of WHOWAS"]]
    assert params(a.take("WHOWAS zed"), "406") == [["alice", "zed", "There was no such nickname"]]
    c = registered(server, "bob")
    c.take("NICK bobby")
    lines = a.take("WHOWAS bob")
    assert [p[:3] for p in params(lines, "314")] == [["alice", "bob", "~u"]] * 2
    assert len(params(a.take("WHOWAS bob 1"), "314")) == 1
    assert params(a.take("WHOWAS zed"), "369") == [["alice", "zed", "End of WHOWAS"]]


def test_ipv6_host_never_starts_with_a_colon(server: Any) -> None:
    c = Fake(server, host="::1")
    lines = c.register("alice")
    assert lines[0].params[1].endswith("alice!~u@0::1")
    assert params(c.take("WHOIS alice"), "311") == [
        ["alice", "alice", "~u", "0::1", "*", "Real Name"]]


def test_list_modes_share_one_limit() -> None:
    factory, _ = memory_server()
    factory.state.max_list_entries = 3
    a = Fake(factory)
    a.register("alice")
    a.take("JOIN #x")
    a.take("MODE #x +bb x y")
    lines = a.take("MODE #x +eI z w")
    assert [line.params for line in by_command(lines, "MODE")] == [["#x", "+e", "z!*@*"]]
    assert params(lines, "478") == [["alice", "#x", "w!*@*", "Channel list is full"]]
    lines = a.take("MODE #x I")
    assert numerics(lines) == ["347"] and lines[0].params == [
        "alice", "#x", "End of Channel Invite Exception List"]
    assert params(a.take("MODE #x e"), "348") == [["alice", "#x", "z!*@*"]]


def test_lusers_counts_follow_modes_and_departures() -> None:
    factory, _ = memory_server(opers={"root": "toor"})
    a = registered(factory, "alice")
    b = registered(factory, "bob")
    c = registered(factory, "carol")
    b.take("MODE bob +i")
    c.take("MODE carol +i")
    a.take("OPER root toor")
    pending = Fake(factory)  # an unknown connection
    lines = a.take("LUSERS")
    assert params(lines, "251") == [["alice", "There are 1 users and 2 invisible on 1 servers"]]
    assert params(lines, "252") == [["alice", "1", "operator(s) online"]]
    assert params(lines, "253") == [["alice", "1", "unknown connection(s)"]]
    c.take("MODE carol -i")
    b.take("QUIT")
    b.lost()
    a.take("MODE alice -o")
    pending.lost()
    lines = a.take("LUSERS")
    assert params(lines, "251") == [["alice", "There are 2 users and 0 invisible on 1 servers"]]
    assert params(lines, "252") == [["alice", "0", "operator(s) online"]]
    assert params(lines, "253") == [["alice", "0", "unknown connection(s)"]]
    assert params(lines, "265") == [["alice", "2", "3", "Current local users 2, max 3"]]


def test_links_help_and_server_queries(server: Any) -> None:
    a = registered(server, "alice")
    assert [line.params for line in a.take("LINKS")] == [
        ["alice", "*", "irc.test", "0 TestNet IRC server"], ["alice", "*", "End of /LINKS list"]]
    lines = a.take("HELP")
    assert numerics(lines) == ["704", "705", "706"] and lines[0].params[1] == "*"
    assert "PRIVMSG" in lines[-1].params[-1].split()
    lines = a.take("HELP privmsg")
    assert numerics(lines) == ["704", "706"] and lines[0].params[1] == "PRIVMSG"
    # a subject that is no valid parameter is given back as '*' (Modern IRC, HELP)
    assert params(a.take("HELP :no such"), "524") == [
        ["alice", "*", "I do not know anything about this"]]
    assert params(a.take("HELP nosuch"), "524") == [
        ["alice", "NOSUCH", "I do not know anything about this"]]
    assert params(a.take("VERSION"), "351")[0][1:3] == ["netshell-irc-0.1", "irc.test"]
    assert "005" in numerics(a.take("VERSION"))
    assert params(a.take("TIME"), "391")[0][1] == "irc.test"
    assert numerics(a.take("ADMIN")) == ["256", "257", "258", "259"]
    assert numerics(a.take("INFO")) == ["371", "374"]


def test_registration_timeout() -> None:
    factory, clock = memory_server(registration_timeout=30, ping_interval=1000)
    slow = Fake(factory)
    slow.send("NICK slow")
    quick = Fake(factory)
    quick.register("quick")
    quick.lines()
    clock.advance(29)
    slow.send("PING keepalive")  # activity does not stop the clock on registration
    assert not slow.transport.closed
    clock.advance(1)
    lines = slow.lines()
    assert lines[-1].command == "ERROR" and "Registration timed out" in lines[-1].params[0]
    assert slow.transport.closed and factory.state.find_user("slow") is None
    assert not quick.transport.closed and quick.lines() == []


def test_private_channel(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #p")
    a.take("MODE #p +p")
    assert params(a.take("NAMES #p"), "353") == [["alice", "*", "#p", "@alice"]]
    assert params(b.take("LIST"), "322") == []  # not listed to outsiders
    assert [p[1] for p in params(a.take("LIST"), "322")] == ["#p"]
    assert params(b.take("NAMES #p"), "353") == [["bob", "*", "#p", "@alice"]]


def test_ascii_casemapping() -> None:
    factory, _ = memory_server(casemapping="ascii")
    a = Fake(factory)
    lines = a.register("a[b]")
    assert "CASEMAPPING=ascii" in [t for p in params(lines, "005") for t in p]
    b = Fake(factory)
    assert "001" in numerics(b.register("a{b}"))  # not the same nick under ascii
    c = Fake(factory)
    assert params(c.register("A[B]"), "433") == [["*", "A[B]", "Nickname is already in use"]]


def test_length_limits_cut_topic_kick_and_away() -> None:
    factory, _ = memory_server()
    state = factory.state
    state.topiclen, state.kicklen, state.awaylen = 10, 8, 6
    a = registered(factory, "alice")
    b = registered(factory, "bob")
    a.take("JOIN #x")
    b.take("JOIN #x")
    b.lines()
    assert params(a.take("TOPIC #x :0123456789abc"), "TOPIC") == [["#x", "0123456789"]]
    assert params(a.take("AWAY :abcdefgh"), "306")
    assert params(b.take("PRIVMSG alice :hi"), "301") == [["bob", "alice", "abcdef"]]
    b.lines()
    assert params(a.take("KICK #x bob :0123456789"), "KICK") == [["#x", "bob", "01234567"]]
