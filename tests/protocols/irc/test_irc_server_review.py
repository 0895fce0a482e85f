"""The IRC server's answers a hostile review found wrong, each checked here as the spec
(Modern IRC, RFC 2812, IRCv3) and the servers compared (InspIRCd, ngIRCd, Solanum) have it:

- SASL before NICK (irctest's order) keeps the account;
- an invite is its user's: it goes when they quit, a stranger taking the nick gets none,
  and it lets its user past +i and +l only (not past a ban or a key);
- USER with an empty real name is refused (461);
- MODE applies its first MODES parameter modes and every flag, after them too;
- INVITE to an away user tells the inviter so (301);
- ISUPPORT escapes a value's spaces (``NETWORK=My\\x20Net``), never a ``*`` token.
"""

from __future__ import annotations

import base64
from typing import Any

from irc_test_helpers import Fake, Line, by_command, memory_server, numerics

from protocols.irc.server_state import ServerState


def params(lines: list[Line], command: str) -> list[list[str]]:
    return [line.params for line in by_command(lines, command)]


def registered(factory: Any, nick: str, caps: str = "") -> Fake:
    c = Fake(factory)
    if caps:
        c.send("CAP LS 302")
        c.send(f"CAP REQ :{caps}")
    c.send(f"NICK {nick}")
    c.send("USER u 0 * :Real Name")
    if caps:
        c.send("CAP END")
    assert "001" in numerics(c.lines())
    return c


# ---- SASL before NICK


def test_sasl_before_nick_keeps_the_account() -> None:
    factory, _ = memory_server(accounts={"jilles": "sesame"})
    obs = registered(factory, "obs", "account-tag extended-join")
    obs.take("JOIN #c")
    s = Fake(factory)
    # irctest's connectClient: CAP LS, CAP REQ sasl, AUTHENTICATE, then NICK/USER, CAP END
    s.send("CAP LS 302")
    s.send("CAP REQ :sasl")
    assert s.take("AUTHENTICATE PLAIN")[-1].raw == "AUTHENTICATE +"
    payload = base64.b64encode(b"\0jilles\0sesame").decode()
    assert numerics(s.take(f"AUTHENTICATE {payload}")) == ["900", "903"]
    s.send("NICK foo")
    s.send("USER u 0 * :r")
    assert "001" in numerics(s.take("CAP END"))
    assert factory.state.find_user("foo").account == "jilles"
    s.take("JOIN #c")
    s.take("PRIVMSG #c :hello")
    seen = obs.lines()
    assert params(seen, "JOIN") == [["#c", "jilles", "r"]]  # extended-join: the account
    assert [line.tags for line in by_command(seen, "PRIVMSG")] == ["account=jilles"]
    assert params(obs.take("WHOIS foo"), "330") == [["obs", "foo", "jilles", "is logged in as"]]
    assert [p[1:] for p in params(obs.take("WHO foo %na"), "354")] == [["foo", "jilles"]]


def test_sasl_after_nick_before_user_keeps_the_account() -> None:
    factory, _ = memory_server(accounts={"acct": "pw"})
    s = Fake(factory)
    s.send("CAP LS 302")
    s.send("NICK early")
    s.send("CAP REQ :sasl")
    s.send("AUTHENTICATE PLAIN")
    s.send("AUTHENTICATE " + base64.b64encode(b"\0acct\0pw").decode())
    s.send("USER u 0 * :r")
    assert "001" in numerics(s.take("CAP END"))
    assert factory.state.find_user("early").account == "acct"


# ---- invites


def test_an_invite_does_not_pass_to_whoever_takes_the_nick() -> None:
    factory, _ = memory_server()
    op = registered(factory, "op")
    op.take("JOIN #priv")
    op.take("MODE #priv +i")
    bob = registered(factory, "bob")
    assert numerics(op.take("INVITE bob #priv")) == ["341"]
    bob.take("QUIT :bye")
    eve = registered(factory, "eve")
    eve.take("NICK bob")
    assert params(eve.take("JOIN #priv"), "473") == [
        ["bob", "#priv", "Cannot join channel (+i)"]]
    assert params(eve.take("INVITE"), "336") == []
    channel = factory.state.find_channel("#priv")
    assert channel.invited == set()  # nothing kept for the user gone


def test_an_invite_is_its_users_across_a_nick_change() -> None:
    factory, _ = memory_server()
    op = registered(factory, "op")
    op.take("JOIN #priv")
    op.take("MODE #priv +i")
    bob = registered(factory, "bob")
    op.take("INVITE bob #priv")
    bob.take("NICK robert")
    assert params(bob.take("INVITE"), "336") == [["robert", "#priv"]]
    assert numerics(bob.take("JOIN #priv"))[0] == "JOIN"  # the same person (InspIRCd)
    eve = registered(factory, "bob")  # the old nick, someone else
    assert numerics(eve.take("JOIN #priv")) == ["473"]


def test_an_invite_passes_invite_only_and_limit_not_ban_or_key() -> None:
    factory, _ = memory_server()
    op = registered(factory, "op")
    op.take("JOIN #x")
    bob = registered(factory, "bob")
    op.take("MODE #x +il 1")
    op.take("INVITE bob #x")
    bob.lines()
    assert numerics(bob.take("JOIN #x"))[0] == "JOIN"  # +i and a full +l
    bob.take("PART #x")
    op.take("MODE #x -l+b bob")
    op.take("INVITE bob #x")
    bob.lines()
    assert numerics(bob.take("JOIN #x")) == ["474"]  # banned, invited or not
    op.take("MODE #x +e bob!*@*")
    assert numerics(bob.take("JOIN #x"))[0] == "JOIN"  # an exception does it
    bob.take("PART #x")
    op.take("MODE #x -be+k bob!*@* bob!*@* key")
    op.take("INVITE bob #x")
    bob.lines()
    assert numerics(bob.take("JOIN #x")) == ["475"]  # the key is still asked
    assert numerics(bob.take("JOIN #x key"))[0] == "JOIN"
    bob.take("PART #x")
    assert numerics(bob.take("JOIN #x key")) == ["473"]  # an invite lets in once


def test_invites_are_forgotten_with_the_user_or_the_channel() -> None:
    state = ServerState()
    op = state.add_user("op")
    channel, _ = state.join(op, "#x")
    for i in range(50):
        guest = state.add_user(f"g{i}")
        state.invite(guest, channel)
        assert guest.invites == {channel}
        state.remove_user(guest)
        assert guest.invites == set()
    assert channel.invited == set()  # no set growing with every nick ever invited
    guest = state.add_user("guest")
    state.invite(guest, channel)
    state.part(op, channel)  # the channel goes: so does the invite to it
    assert guest.invites == set() and state.find_channel("#x") is None
    again, created = state.join(op, "#x")
    assert created and again.invited == set()


# ---- USER with an empty real name


def test_user_with_an_empty_realname_is_refused() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    a.send("NICK foo")
    assert params(a.take("USER username * * :"), "461") == [
        ["foo", "USER", "Not enough parameters"]]
    assert "001" in numerics(a.take("USER username * * :Real"))  # may try again


# ---- MODE past the MODES limit


def test_mode_applies_flags_after_the_modes_limit() -> None:
    factory, _ = memory_server()
    a = registered(factory, "alice")
    a.take("JOIN #c")
    a.take("MODE #c -t")
    lines = a.take("MODE #c +bbbbbtm a b c d e")
    assert params(lines, "MODE") == [
        ["#c", "+bbbbtm", "a!*@*", "b!*@*", "c!*@*", "d!*@*"]]
    assert params(a.take("MODE #c"), "324")[0][2] == "+mnt"
    assert [p[2] for p in params(a.take("MODE #c b"), "367")] == [
        "a!*@*", "b!*@*", "c!*@*", "d!*@*"]  # MODES=4: the fifth not set


def test_modes_over_the_limit_skip_their_own_parameter() -> None:
    state = ServerState()
    op = state.add_user("op")
    channel, _ = state.join(op, "#x")
    changes, errors, _ = state.apply_channel_modes(
        op, channel, "+bbbbkis-n", ["a", "b", "c", "d", "key"])
    # +k is a fifth parameter mode (type B): skipped with its parameter, the flags kept
    assert channel.key is None and errors == []
    assert [(c.sign, c.mode) for c in changes][-3:] == [("+", "i"), ("+", "s"), ("-", "n")]
    changes, _, _ = state.apply_channel_modes(
        op, channel, "+l-bbbb+bm", ["5", "a", "b", "c", "x", "y"])
    assert channel.limit == 5 and "m" in channel.modes
    assert [mask for mask, _, _ in channel.lists["b"]] == ["d!*@*"]  # -b x, +b y skipped
    assert "+m" in "".join(c.sign + c.mode for c in changes)


# ---- INVITE to an away user


def test_invite_to_an_away_user_says_so() -> None:
    factory, _ = memory_server()
    a = registered(factory, "alice")
    b = registered(factory, "bob")
    a.take("JOIN #c")
    b.take("AWAY :on holiday")
    lines = a.take("INVITE bob #c")
    assert [(line.command, line.params) for line in lines] == [
        ("341", ["alice", "bob", "#c"]), ("301", ["alice", "bob", "on holiday"])]
    b.take("AWAY")
    b.lines()
    a.take("MODE #c +i")
    assert numerics(a.take("INVITE bob #c")) == ["341"]  # not away: no 301


# ---- ISUPPORT values


def isupport_tokens(lines: list[Line]) -> list[str]:
    return [t for p in params(lines, "005") for t in p[1:-1]]


def test_isupport_escapes_a_network_name_with_spaces() -> None:
    factory, _ = memory_server(network="My Net=Best\\")
    plain = Fake(factory)
    tokens = isupport_tokens(plain.register("al"))  # the cached welcome
    assert "NETWORK=My\\x20Net\\x3DBest\\x5C" in tokens
    assert "*" not in tokens and all("=" not in t.split("=", 1)[1] for t in tokens if "=" in t)
    capped = registered(factory, "bo", "server-time")  # the welcome made line by line
    assert "NETWORK=My\\x20Net\\x3DBest\\x5C" in isupport_tokens(capped.take("VERSION"))
    assert "*" not in isupport_tokens(plain.take("VERSION"))
