"""The IRC server's IRCv3 side, in memory: SASL PLAIN, account-notify, account-tag,
extended-join, labeled-response with batch, MONITOR, SETNAME, WHOX, LIST filters, bot mode,
each checked against the specification's numerics and message shapes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from irc_test_helpers import Fake, Line, by_command, memory_server, numerics


@pytest.fixture
def server() -> Any:
    factory, _clock = memory_server(name="irc.test", accounts={"alice": "s3cret"})
    return factory


def tag_dict(line: Line) -> dict[str, str]:
    out = {}
    for item in line.tags.split(";") if line.tags else []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def params(lines: list[Line], command: str) -> list[list[str]]:
    return [line.params for line in by_command(lines, command)]


def with_caps(factory: Any, nick: str, caps: str) -> Fake:
    c = Fake(factory)
    c.send("CAP LS 302")
    c.send(f"CAP REQ :{caps}")
    c.register(nick)
    assert "001" in numerics(c.take("CAP END"))
    return c


def registered(factory: Any, nick: str) -> Fake:
    c = Fake(factory)
    assert "001" in numerics(c.register(nick))
    return c


def plain(authzid: str, authcid: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


# ---- SASL


def test_cap_ls_302_values(server: Any) -> None:
    c = Fake(server)
    offered = c.take("CAP LS 302")[0].params[2].split()
    assert "sasl=PLAIN" in offered
    for cap in ("labeled-response", "batch", "account-notify", "account-tag", "setname"):
        assert cap in offered
    old = Fake(server)
    assert "sasl" in old.take("CAP LS")[0].params[2].split()  # no values before 302
    # no accounts, no sasl
    factory, _ = memory_server()
    none = Fake(factory)
    assert "sasl" not in none.take("CAP LS 302")[0].params[2]
    assert none.take("CAP REQ sasl")[0].params[1] == "NAK"


def test_cap_ls_302_in_several_lines(server: Any, monkeypatch: Any) -> None:
    from protocols.irc import server as server_module

    many = {**server_module.CAPABILITIES, **{f"vendor.example/cap-{i}": None for i in range(30)}}
    monkeypatch.setattr(server_module, "CAPABILITIES", many)
    c = Fake(server)
    lines = c.take("CAP LS 302")
    assert len(lines) > 1
    assert [line.params[2] for line in lines[:-1]] == ["*"] * (len(lines) - 1)
    assert len(lines[-1].params) == 3
    got = [cap for line in lines for cap in line.params[-1].split()]
    assert len(got) == len(many) and len(set(got)) == len(got)
    assert all(len(line.raw.encode()) + 2 <= 512 for line in lines)
    old = Fake(server)
    assert len(old.take("CAP LS")) == 1  # before 302: one line, whatever its length


def test_sasl_plain_success_before_registration(server: Any) -> None:
    c = Fake(server)
    c.send("CAP LS 302")
    c.take("CAP REQ :sasl")
    c.send("NICK alice")
    c.send("USER a 0 * :A")
    assert [(line.command, line.params) for line in c.take("AUTHENTICATE PLAIN")] == [
        ("AUTHENTICATE", ["+"])]
    lines = c.take("AUTHENTICATE " + plain("", "alice", "s3cret"))
    assert numerics(lines) == ["900", "903"]
    assert lines[0].params == ["alice", "alice!~a@127.0.0.1", "alice",
                               "You are now logged in as alice"]
    assert lines[1].params == ["alice", "SASL authentication successful"]
    assert numerics(c.take("CAP END"))[0] == "001"
    assert params(c.take("AUTHENTICATE PLAIN"), "907") == [
        ["alice", "You have already authenticated using SASL"]]
    # WHOIS says the account
    bob = registered(server, "bob")
    assert params(bob.take("WHOIS alice"), "330") == [["bob", "alice", "alice", "is logged in as"]]


def test_sasl_failures(server: Any) -> None:
    c = Fake(server)
    c.take("CAP REQ sasl")
    c.send("NICK x")
    assert [line.params for line in c.take("AUTHENTICATE EXTERNAL")] == [
        ["x", "PLAIN", "are available SASL mechanisms"], ["x", "SASL authentication failed"]]
    c.take("AUTHENTICATE PLAIN")
    assert params(c.take("AUTHENTICATE " + plain("", "alice", "wrong")), "904") == [
        ["x", "SASL authentication failed"]]
    c.take("AUTHENTICATE PLAIN")
    assert params(c.take("AUTHENTICATE " + plain("bob", "alice", "s3cret")), "904") == [
        ["x", "SASL authentication failed"]]  # may not act as another
    c.take("AUTHENTICATE PLAIN")
    assert params(c.take("AUTHENTICATE !!notbase64"), "904") == [
        ["x", "SASL authentication failed"]]
    c.take("AUTHENTICATE PLAIN")
    assert params(c.take("AUTHENTICATE *"), "906") == [["x", "SASL authentication aborted"]]
    c.take("AUTHENTICATE PLAIN")
    assert params(c.take("AUTHENTICATE " + "A" * 401), "905") == [["x", "SASL message too long"]]
    nocap = Fake(server)
    assert params(nocap.take("AUTHENTICATE PLAIN"), "904") == [
        ["*", "SASL authentication failed"]]


@pytest.mark.parametrize("size", [593, 300])
def test_sasl_payload_in_400_byte_chunks(size: int) -> None:
    password = "p" * size
    factory, _ = memory_server(accounts={"alice": password})
    c = Fake(factory)
    c.take("CAP REQ sasl")
    c.take("AUTHENTICATE PLAIN")
    payload = plain("", "alice", password)
    chunks = [payload[i:i + 400] for i in range(0, len(payload), 400)]
    for chunk in chunks[:-1]:
        assert c.take("AUTHENTICATE " + chunk) == []  # 400 bytes: more to come
    if len(payload) % 400 == 0:  # 800 bytes: a last '+' says it is all there
        assert len(payload) == 800
        assert c.take("AUTHENTICATE " + chunks[-1]) == []
        lines = c.take("AUTHENTICATE +")
    else:
        lines = c.take("AUTHENTICATE " + chunks[-1])
    assert numerics(lines) == ["900", "903"]


def test_sasl_after_registration_notifies_accounts(server: Any) -> None:
    a = with_caps(server, "alice", "sasl")
    b = with_caps(server, "bob", "account-notify extended-join account-tag message-tags")
    a.take("JOIN #x")
    b.take("JOIN #x")
    a.lines()
    a.take("AUTHENTICATE PLAIN")
    assert numerics(a.take("AUTHENTICATE " + plain("alice", "alice", "s3cret"))) == ["900", "903"]
    assert [(line.source, line.command, line.params) for line in b.lines()] == [
        ("alice!~u@127.0.0.1", "ACCOUNT", ["alice"])]
    # account-tag on her messages; extended-join gives her account when she joins
    a.take("PRIVMSG #x :tagged")
    got = b.lines()
    assert tag_dict(got[0])["account"] == "alice"
    a.take("PART #x")
    b.lines()
    a.take("JOIN #x")
    assert [line.params for line in by_command(b.lines(), "JOIN")] == [["#x", "alice", "Real Name"]]
    # one without account-tag sees no account
    c = with_caps(server, "carol", "message-tags")
    c.take("JOIN #x")
    a.take("PRIVMSG #x :plain")
    assert [set(tag_dict(line)) for line in c.lines()] == [{"msgid"}]


def test_extended_join_without_account(server: Any) -> None:
    a = with_caps(server, "alice", "extended-join")
    a.take("JOIN #x")
    registered(server, "bob").take("JOIN #x")
    assert [line.params for line in by_command(a.lines(), "JOIN")] == [["#x", "*", "Real Name"]]


# ---- labeled-response


def test_labeled_responses(server: Any) -> None:
    a = with_caps(server, "alice", "labeled-response batch")
    # one reply: labeled
    lines = a.take("@label=one PING x")
    assert [(line.tags, line.command) for line in lines] == [("label=one", "PONG")]
    # no reply: ACK
    lines = a.take("@label=two PONG x")
    assert [(line.tags, line.source, line.command, line.params) for line in lines] == [
        ("label=two", "irc.test", "ACK", [])]
    # several: a labeled-response batch
    registered(server, "bob")
    lines = a.take("@label=three WHOIS bob")
    start, *inner, end = lines
    assert start.command == "BATCH" and start.tags == "label=three"
    ref = start.params[0][1:]
    assert start.params == ["+" + ref, "labeled-response"]
    assert [line.tags for line in inner] == [f"batch={ref}"] * len(inner)
    assert inner[0].command == "311" and inner[-1].command == "318"
    assert (end.command, end.params, end.tags) == ("BATCH", ["-" + ref], "")
    # errors are labeled too
    lines = a.take("@label=four PRIVMSG nobody :x")
    assert [(line.tags, line.command) for line in lines] == [("label=four", "401")]
    # without batch, no labels
    plain_client = with_caps(server, "carol", "labeled-response")
    assert [line.tags for line in plain_client.take("@label=x PING y")] == [""]


def test_labeled_echo_and_self_message(server: Any) -> None:
    a = with_caps(server, "alice", "labeled-response batch echo-message")
    lines = a.take("@label=e1 PRIVMSG alice :note to self")
    # the delivery is unlabeled, the echo is the labeled response
    assert [tag_dict(line).get("label") for line in lines] == [None, "e1"]
    assert [line.params for line in lines] == [["alice", "note to self"]] * 2


# ---- MONITOR


def test_monitor(server: Any) -> None:
    a = registered(server, "alice")
    lines = a.take("MONITOR + bob,carol")
    assert params(lines, "731") == [["alice", "bob,carol"]]
    b = registered(server, "bob")
    assert params(a.lines(), "730") == [["alice", "bob!~u@127.0.0.1"]]
    assert params(a.take("MONITOR S"), "730") == [["alice", "bob!~u@127.0.0.1"]]
    assert [line.params for line in a.take("MONITOR L")] == [
        ["alice", "bob,carol"], ["alice", "End of MONITOR list"]]
    b.take("NICK carol")
    assert [(line.command, line.params) for line in a.lines()] == [
        ("731", ["alice", "bob"]), ("730", ["alice", "carol!~u@127.0.0.1"])]
    b.take("QUIT")
    assert [(line.command, line.params) for line in a.lines()] == [("731", ["alice", "carol"])]
    a.take("MONITOR - carol")
    assert [line.params for line in a.take("MONITOR L")] == [
        ["alice", "bob"], ["alice", "End of MONITOR list"]]
    a.take("MONITOR C")
    assert [line.params for line in a.take("MONITOR L")] == [["alice", "End of MONITOR list"]]
    registered(server, "bob")
    assert a.lines() == []
    assert params(a.take("MONITOR"), "461") == [["alice", "MONITOR", "Not enough parameters"]]
    many = ",".join(f"n{i}" for i in range(105))
    assert params(a.take(f"MONITOR + {many}"), "734")[0][:2] == ["alice", "100"]


# ---- SETNAME, WHOX, LIST, bot


def test_setname(server: Any) -> None:
    a = with_caps(server, "alice", "setname")
    b = with_caps(server, "bob", "setname")
    c = registered(server, "carol")
    for x in (a, b, c):
        x.take("JOIN #x")
    for x in (a, b, c):
        x.lines()
    lines = a.take("SETNAME :Alice Anew")
    assert [(line.source, line.command, line.params) for line in lines] == [
        ("alice!~u@127.0.0.1", "SETNAME", ["Alice Anew"])]
    assert [line.params for line in b.lines()] == [["Alice Anew"]]
    assert c.lines() == []
    assert params(c.take("WHOIS alice"), "311")[0][-1] == "Alice Anew"
    assert c.take("SETNAME :Carol C") == []  # no echo without the capability
    assert [line.params for line in a.lines()] == [["Carol C"]]
    lines = a.take("SETNAME :" + "x" * 400)
    assert [(line.command, line.params[:2]) for line in lines] == [
        ("FAIL", ["SETNAME", "INVALID_REALNAME"])]


def test_whox(server: Any) -> None:
    a = registered(server, "alice")
    a.take("JOIN #x")
    lines = a.take("WHO #x %rafnhiuct,42")  # the fields come in their own order
    assert params(lines, "354") == [["alice", "42", "#x", "~u", "255.255.255.255", "127.0.0.1",
                                     "alice", "H@", "0", "Real Name"]]
    assert params(lines, "315") == [["alice", "#x", "End of WHO list"]]
    lines = a.take("WHO alice %na")
    assert params(lines, "354") == [["alice", "alice", "0"]]


def test_list_filters(server: Any) -> None:
    a = registered(server, "alice")
    b = registered(server, "bob")
    a.take("JOIN #one,#two")
    b.take("JOIN #two")
    assert [p[1] for p in params(a.take("LIST >1"), "322")] == ["#two"]
    assert [p[1] for p in params(a.take("LIST <2"), "322")] == ["#one"]
    assert [p[1] for p in params(a.take("LIST #o*"), "322")] == ["#one"]
    # channels first, conditions second
    assert [p[1] for p in params(a.take("LIST #one,#two >1"), "322")] == ["#two"]
    assert [p[1] for p in params(a.take("LIST #nope"), "322")] == []


def test_bot_mode(server: Any) -> None:
    a = registered(server, "robot")
    b = with_caps(server, "bob", "message-tags")
    a.take("MODE robot +B")
    assert params(b.take("WHOIS robot"), "335") == [["bob", "robot", "is a bot"]]
    a.take("PRIVMSG bob :beep")
    assert "bot" in tag_dict(b.lines()[0])
    a.take("JOIN #x")
    assert params(b.take("WHO #x"), "352")[0][6] == "H@B"


def test_fan_out_gives_each_client_its_tags(server: Any) -> None:
    sender = registered(server, "sender")
    plain1 = registered(server, "plain1")
    plain2 = registered(server, "plain2")
    timed1 = with_caps(server, "timed1", "server-time")
    timed2 = with_caps(server, "timed2", "server-time")
    tagged = with_caps(server, "tagged", "message-tags server-time")
    everyone = [sender, plain1, plain2, timed1, timed2, tagged]
    for c in everyone:
        c.take("JOIN #x")
    for c in everyone:
        c.lines()
    sender.send("@+x=1 PRIVMSG #x :hi")
    raw = {c.protocol.nick: c.transport.value() for c in everyone[1:]}
    assert raw["plain1"] == raw["plain2"] == b":sender!~u@127.0.0.1 PRIVMSG #x hi\r\n"
    assert raw["timed1"] == raw["timed2"] and raw["timed1"].startswith(b"@time=")
    got = tag_dict(tagged.lines()[0])
    assert set(got) == {"time", "msgid", "+x"}
    assert tag_dict(timed1.lines()[0]) == {"time": got["time"]}  # one time for all
    # the next message is a new one: encoded again
    sender.send("PRIVMSG #x :again")
    assert plain1.lines()[-1].params == ["#x", "again"]
    assert [line.params for line in timed2.lines()][-1] == ["#x", "again"]


def test_invite_notify(server: Any) -> None:
    op = with_caps(server, "op", "invite-notify")
    other = with_caps(server, "other", "invite-notify")
    plain = registered(server, "plain")
    guest = registered(server, "guest")
    op.take("JOIN #x")
    other.take("JOIN #x")
    op.take("MODE #x +o other")
    plain.take("JOIN #x")
    for c in (op, other, plain):
        c.lines()
    other.take("INVITE guest #x")
    assert [(line.source, line.command, line.params) for line in op.lines()] == [
        ("other!~u@127.0.0.1", "INVITE", ["guest", "#x"])]
    assert plain.lines() == []  # no capability: not told (Modern IRC: others not notified)
    assert [line.params for line in guest.lines()] == [["guest", "#x"]]


def test_away_notify_on_join(server: Any) -> None:
    watcher = with_caps(server, "watcher", "away-notify")
    watcher.take("JOIN #x")
    away = registered(server, "away")
    away.take("AWAY :gone")
    away.take("JOIN #x")
    assert [(line.command, line.params) for line in watcher.lines()] == [
        ("JOIN", ["#x"]), ("AWAY", ["gone"])]


def test_userhost_in_names(server: Any) -> None:
    c = with_caps(server, "alice", "userhost-in-names")
    lines = c.take("JOIN #x")
    assert params(lines, "353") == [["alice", "=", "#x", "@alice!~u@127.0.0.1"]]
