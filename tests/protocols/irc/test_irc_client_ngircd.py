"""Our IRC client against ngIRCd, InspIRCd (real servers no one here wrote) and netshell's
own (``netsh serve irc``), the same script on each: registration, two clients in a
channel seeing each other's messages, topic, kick, nick change, part and quit;
names/whois/who; a taken nick; CTCP; reconnect. ngIRCd alone: a bad password, TLS.

The main script records, per server, what each client observed (join, message, notice,
action, topic, nick, kick, part, quit), normalized for nicks and server wording, and
checks it against one expected sequence written from the spec: the three servers give
the same observed events."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from irc_peers import IRCPeer, free_port, irc_server, ngircd_server

import netshell as ns
from protocols import irc
from protocols.irc.client import (
    IRCClient,
    IRCCommandError,
    IRCConnectionClosed,
    NickInUse,
    server_time,
)

pytestmark = pytest.mark.timeout(60)

#: what a client observes, recorded (IRCClient events of these kinds)
OBSERVED = ("join", "message", "notice", "action", "topic", "nick", "kick", "part", "quit")

_names = itertools.count()


@pytest.fixture(scope="module", params=["ngircd", "inspircd", "netshell"])
def server(request: pytest.FixtureRequest) -> Iterator[IRCPeer]:
    """One server of each kind for the module."""
    with irc_server(request.param) as peer:
        yield peer


@pytest.fixture(autouse=True)
def no_client_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test checks, the client logged no error of its own on the way."""
    yield
    # (in teardown caplog.records is teardown's: ask for the test's own records)
    errors = [r.getMessage() for r in caplog.get_records("call")
              if r.name.startswith("netshell.irc") and r.levelname in ("ERROR", "CRITICAL")]
    assert errors == []


def nick(base: str) -> str:
    """A nick no other test of the module uses (ngIRCd's NICKLEN is 9)."""
    return f"{base}{next(_names)}"


class Observed:
    """What clients observe, per client, normalized so that servers can be compared: our
    nicks as the roles "a" and "b" (b keeps its role through a nick change), channels in
    lower case. Left out, and why:

    - our own messages, notices and actions coming back: servers with echo-message
      (InspIRCd, ours) send them, ngIRCd has no echo-message;
    - what has no nick of ours as its source (server notices: each server's own words);
    - MODE: InspIRCd sets +nt on a new channel and tells its creator, the others do not.

    A quit's reason is the client's words: InspIRCd and ours put "Quit: " before them,
    ngIRCd puts them in double quotes (each server's way of telling a client's reason
    from its own, as "Ping timeout"): both taken off."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[str, str, str, str]]] = {"a": [], "b": []}
        self.roles: dict[str, str] = {}

    def watch(self, role: str, client: IRCClient) -> None:
        self.roles[client.nick.lower()] = role
        for kind in OBSERVED:
            client.add_listener(kind, lambda e, role=role: self._seen(role, e))

    def _seen(self, observer: str, e: irc.client.Event) -> None:
        if e.kind == "nick" and e.nick and e.new_nick:
            self.roles[e.new_nick.lower()] = self.roles.get(e.nick.lower(), "?")
        actor = self.roles.get((e.nick or "").lower())
        if actor is None or (e.own and e.kind in ("message", "notice", "action")):
            return
        text = e.text or ""
        if e.kind == "quit":
            text = text.removeprefix("Quit: ")
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1]
        elif e.kind == "kick":
            text = f"{self.roles.get((e.victim or '').lower(), '?')} {text}"
        elif e.kind == "nick":
            text = self.roles.get((e.new_nick or "").lower(), "?")
        self.events[observer].append((e.kind, actor, (e.channel or "-").lower(), text))


#: what a and b observe in test_two_clients_see_each_other, from the spec: who is told
#: of a JOIN, PRIVMSG, NOTICE, TOPIC, NICK, KICK, PART and QUIT (Modern IRC), in order
EXPECTED = {
    "a": [
        ("join", "a", "#talk", ""),  # the joining client is sent its own JOIN
        ("join", "b", "#talk", ""),
        ("message", "b", "-", "psst"),  # sent to a alone
        ("topic", "a", "#talk", "the topic"),  # TOPIC goes to the setter too
        ("nick", "b", "-", "b"),  # to everyone on a shared channel
        ("kick", "a", "#talk", "b out"),  # KICK goes to the kicker too
        ("join", "b", "#talk", ""),
        ("part", "b", "#talk", "later"),
        ("join", "b", "#talk", ""),
        ("quit", "b", "-", "gone"),  # to those on a shared channel
    ],
    "b": [
        ("join", "b", "#talk", ""),  # a joined before b was in: b is not told
        ("message", "a", "#talk", "hello there"),
        ("action", "a", "#talk", "waves"),
        ("notice", "a", "#talk", "note"),
        ("topic", "a", "#talk", "the topic"),
        ("nick", "b", "-", "b"),  # the client changing its nick is told too
        ("kick", "a", "#talk", "b out"),  # the victim is told
        ("join", "b", "#talk", ""),
        ("part", "b", "#talk", "later"),
        ("join", "b", "#talk", ""),
        # (b quits: the server closes its connection, it is told no QUIT)
    ],
}


async def pair(
    server: IRCPeer, channel: str, seen: Observed | None = None,
) -> tuple[IRCClient, IRCClient]:
    a = await irc.connect(server.host, server.port, nick("a"), rate=None, timeout=10)
    b = await irc.connect(server.host, server.port, nick("b"), rate=None, timeout=10)
    if seen is not None:
        seen.watch("a", a)
        seen.watch("b", b)
    await a.join(channel)
    joined = a.wait_for("join", lambda e: e.nick == b.nick)
    await b.join(channel)
    await joined
    return a, b


async def test_registers_and_reads_isupport(server: IRCPeer) -> None:
    client = await irc.connect(server.host, server.port, nick("r"), timeout=10)
    try:
        assert client.registered
        assert client.server_name == "irc.test"
        assert not client.is_channel("bob")
        if server.kind == "ngircd":
            assert client.isupport.casemapping == "ascii"
            assert client.isupport.prefix_symbols == "~&@%+"
            assert client.is_channel("+modeless")
            # ngIRCd offers multi-prefix only: asked for and enabled
            assert client.caps == {"multi-prefix"}
        else:
            assert client.isupport.casemapping == "rfc1459"
            assert client.isupport.prefix_symbols == "@+"
            assert not client.is_channel("+modeless")
            # InspIRCd with its IRCv3 modules, and ours: all we ask for (sasl aside: not
            # asked for without an account), cap-notify (on with CAP LS 302), no more
            assert client.caps == {"multi-prefix", "server-time", "echo-message", "batch",
                                   "message-tags", "away-notify", "account-tag",
                                   "cap-notify"}
            assert "extended-join" in client.server_caps
            assert client.isupport.whox and client.isupport.monitor
    finally:
        await client.quit("bye")
    assert client.closed


async def test_two_clients_see_each_other(server: IRCPeer) -> None:
    observed = Observed()
    a, b = await pair(server, "#talk", observed)
    try:
        # members with prefixes: the first in is the operator
        chan = a.channels[a.fold("#talk")]
        assert chan.members == {a.nick: "@", b.nick: ""}
        assert b.channels[b.fold("#TALK")].members == {a.nick: "@", b.nick: ""}

        got = b.wait_for("message")
        own = a.wait_for("message", lambda e: e.own, timeout=10)
        a.msg("#talk", "hello there")
        event = await got
        assert (event.nick, event.channel, event.text) == (a.nick, "#talk", "hello there")
        assert event.message.command == "PRIVMSG" and event.time is not None
        assert not event.own
        if "server-time" in b.caps:
            assert event.tags["time"].endswith("Z")
            assert event.time == server_time(event.message)
        if "echo-message" in a.caps:  # a sees its own, marked as such
            assert (await own).text == "hello there"
        else:
            own.cancel()
            own.add_errback(lambda f: None)

        got = a.wait_for("message", lambda e: e.nick == b.nick)
        b.msg(a.nick, "psst")
        event = await got
        assert event.channel is None and event.text == "psst" and event.nick == b.nick

        got = b.wait_for("action", lambda e: e.nick == a.nick)
        a.action("#talk", "waves")
        assert (await got).text == "waves"

        got = b.wait_for("notice", lambda e: e.nick == a.nick)
        a.notice("#talk", "note")
        assert (await got).text == "note"

        # topic: set by a, seen by b, read back by b
        seen = b.wait_for("topic", lambda e: e.nick == a.nick)
        await a.topic("#talk", "the topic")
        event = await seen
        assert (event.nick, event.text) == (a.nick, "the topic")
        assert b.channels[b.fold("#talk")].topic == "the topic"
        assert await b.topic("#talk") == "the topic"

        # nick change, seen by both and kept in the member lists
        old = b.nick
        new = nick("n")
        seen_nick = a.wait_for("nick", lambda e: e.nick == old)
        await b.set_nick(new)
        event = await seen_nick
        assert (event.nick, event.new_nick) == (old, new)
        assert b.nick == new
        assert a.channels[a.fold("#talk")].members == {a.nick: "@", new: ""}

        # mode: +v for b, the prefix tracked
        await a.mode("#talk", "+v", new)
        assert a.channels[a.fold("#talk")].members[new] == "+"

        # kick: b is kicked by a
        kicked = b.wait_for("kick", lambda e: e.victim == new)
        await a.kick("#talk", new, "out")
        event = await kicked
        assert (event.nick, event.victim, event.text) == (a.nick, new, "out")
        assert b.fold("#talk") not in b.channels
        assert a.channels[a.fold("#talk")].members == {a.nick: "@"}

        # back in, then part
        joined = a.wait_for("join", lambda e: e.nick == new)
        await b.join("#talk")
        await joined
        parted = a.wait_for("part", lambda e: e.nick == new)
        await b.part("#talk", "later")
        event = await parted
        assert (event.nick, event.text) == (new, "later")
        assert new not in a.channels[a.fold("#talk")].members

        # quit, seen by a (they share a channel again)
        joined = a.wait_for("join", lambda e: e.nick == new)
        await b.join("#talk")
        await joined
        quitted = a.wait_for("quit", lambda e: e.nick == new)
        await b.quit("gone")
        event = await quitted
        assert event.nick == new and "gone" in (event.text or "")
        assert a.channels[a.fold("#talk")].members == {a.nick: "@"}

        # the same observed events on every server: those the spec says
        assert observed.events["a"] == EXPECTED["a"]
        assert observed.events["b"] == EXPECTED["b"]
    finally:
        await a.quit()
        await b.quit()


async def test_names_whois_who(server: IRCPeer) -> None:
    a, b = await pair(server, "#ask")
    try:
        assert sorted(await b.names("#ask")) == sorted([f"@{a.nick}", b.nick])
        info = await a.whois(b.nick)
        assert info.nick == b.nick and info.server == "irc.test"
        assert info.host == "127.0.0.1" and info.realname == b.nick
        assert "#ask" in info.channels
        entries = await a.who("#ask")
        assert sorted(e.nick for e in entries) == sorted([a.nick, b.nick])
        assert {e.nick: e.flags for e in entries}[a.nick] == "H@"
        with pytest.raises(IRCCommandError) as raised:
            await a.whois("nobody")
        assert raised.value.numeric == "401"
        # the 318 after the 401 did not confuse the next request
        assert (await a.whois(a.nick)).nick == a.nick
        with pytest.raises(IRCCommandError) as raised:
            await a.part("#notthere")
        assert raised.value.numeric in ("403", "442")
        with pytest.raises(IRCCommandError) as raised:
            await b.kick("#ask", a.nick)
        assert raised.value.numeric == "482"
        with pytest.raises(IRCCommandError) as raised:
            await a.kick("#ask", "nobody")
        # ngIRCd and InspIRCd say there is no such nick (401); ours that the nick is not
        # on the channel (441), the one Modern IRC lists for KICK: both refuse it
        assert raised.value.numeric == ("441" if server.kind == "netshell" else "401")
        assert await a.topic("#ask") is None
    finally:
        await a.quit()
        await b.quit()


async def test_taken_nick_gets_the_next(server: IRCPeer) -> None:
    base = nick("t")
    first = await irc.connect(server.host, server.port, base, timeout=10)
    second = await irc.connect(server.host, server.port, base, timeout=10)
    third = await irc.connect(server.host, server.port, base, timeout=10)
    try:
        assert (first.nick, second.nick, third.nick) == (base, base + "_", base + "__")
        with pytest.raises(IRCCommandError) as raised:
            await third.set_nick(base)
        assert raised.value.numeric == "433"
    finally:
        for c in (first, second, third):
            await c.quit()


async def test_no_nick_left_fails(server: IRCPeer) -> None:
    base = nick("u")
    held = [await irc.connect(server.host, server.port, base, timeout=10)]
    held.append(await irc.connect(server.host, server.port, base, timeout=10))
    try:
        with pytest.raises(NickInUse) as raised:
            await irc.connect(server.host, server.port, base, timeout=10, alt_nicks=1)
        assert raised.value.numeric == "433"
    finally:
        for c in held:
            await c.quit()


async def test_ctcp(server: IRCPeer) -> None:
    a, b = await pair(server, "#ctcp")
    try:
        asked = b.wait_for("ctcp", lambda e: e.nick == a.nick)
        version = await a.ctcp(b.nick, "VERSION")
        assert version == "netshell IRC client"
        assert (await asked).ctcp == "VERSION"
        assert await a.ctcp(b.nick, "PING", "12345") == "12345"
        assert "+0000" in await a.ctcp(b.nick, "TIME")
    finally:
        await a.quit()
        await b.quit()


async def test_refused_connection_fails() -> None:
    with pytest.raises(ns.ConnectionRefused):
        await irc.connect("127.0.0.1", free_port(), "x", timeout=5)


async def test_wrong_password_fails() -> None:
    with ngircd_server(password="sesame") as peer:
        # ngIRCd says ERROR alone (no 464): the unit tests cover 464
        with pytest.raises(IRCConnectionClosed, match="Bad password"):
            await irc.connect(peer.host, peer.port, "p", password="wrong", timeout=10)
        client = await irc.connect(peer.host, peer.port, "p", password="sesame", timeout=10)
        assert client.registered
        await client.quit()


async def test_reconnects_and_rejoins(server: IRCPeer) -> None:
    client = await irc.connect(server.host, server.port, nick("re"), rate=None, timeout=10,
                               reconnect=True)
    watcher = await irc.connect(server.host, server.port, nick("w"), rate=None, timeout=10)
    try:
        client.reconnect_initial = 0.01  # not a second: the test waits for the event
        client._reconnect_delay = 0.01
        await client.join("#again")
        await client.join("#more")
        await watcher.join("#again")
        lost = client.wait_for("disconnected", timeout=10)
        back = client.wait_for("registered", timeout=10)
        rejoined = watcher.wait_for("join", lambda e: e.nick == client.nick, timeout=10)
        more = client.wait_for("join", lambda e: e.own and e.channel == "#more", timeout=10)
        client.protocol.transport.abort()  # the connection breaks (not a quit)
        await lost
        assert client.closed and client.channels == {}
        await back
        await rejoined
        await more  # (the JOINs are answered one after the other: wait for the last)
        assert client.registered and not client.closed
        assert sorted(c.name for c in client.channels.values()) == ["#again", "#more"]
        assert client.channels[client.fold("#again")].members.keys() == {
            client.nick, watcher.nick}
        # and it still works
        got = watcher.wait_for("message", lambda e: e.nick == client.nick, timeout=10)
        client.msg("#again", "back")
        assert (await got).text == "back"
    finally:
        await client.quit()
        await watcher.quit()
    assert client.closed and client._reconnect_call is None


async def test_quit_does_not_reconnect(server: IRCPeer) -> None:
    client = await irc.connect(server.host, server.port, nick("q"), rate=None, timeout=10,
                               reconnect=True)
    await client.quit("done")
    assert client.closed and client._reconnect_call is None


async def test_tls_verifies_the_server() -> None:
    with ngircd_server(tls=True) as peer:
        assert peer.tls_port is not None and peer.ca is not None
        client = await irc.connect(peer.host, peer.tls_port, "sec", tls=True, ca=peer.ca,
                                   timeout=10)
        try:
            assert client.registered
            assert client.protocol is not None and client.protocol.transport.tls is not None
            await client.join("#tls")
        finally:
            await client.quit()
        # our own throwaway authority is not in the system's store: refused
        with pytest.raises(ns.TLSError):
            await irc.connect(peer.host, peer.tls_port, "sec2", tls=True, timeout=10)
        # a name the certificate is not for: refused
        with pytest.raises(ns.TLSError):
            await irc.connect(peer.host, peer.tls_port, "sec3", tls=True, ca=peer.ca,
                              timeout=10, context=_context_for("other.example", peer.ca))
        # verify=False: let through
        client = await irc.connect(peer.host, peer.tls_port, "sec4", tls=True, verify=False,
                                   timeout=10)
        await client.quit()


def _context_for(name: str, ca: object) -> object:
    from netshell.tls import client_context

    return client_context(name, ca=ca)  # type: ignore[arg-type]


async def test_reconnects_once_the_server_is_back() -> None:
    with ngircd_server() as first:
        client = await irc.connect(first.host, first.port, "phoenix", rate=None, timeout=5,
                                   reconnect=True)
        client.reconnect_initial = client._reconnect_delay = 0.02
        await client.join("#ashes")
        lost = client.wait_for("disconnected", timeout=10)
    # the server is gone: the client sees it and tries again, refused, backing off
    await lost
    assert client.closed
    try:
        refused = await client.wait_for("reconnect_failed", timeout=10)
        assert "refused" in (refused.text or "").lower()
        back = client.wait_for("registered", timeout=20)
        with ngircd_server(port=first.port) as second:
            await back
            assert client.registered and client.nick == "phoenix"
            await client.wait_for("join", lambda e: e.own, timeout=10) \
                if client.fold("#ashes") not in client.channels else None
            assert client.fold("#ashes") in client.channels
            assert second.port == first.port
            await client.quit()
    finally:
        client.close()


async def test_taken_nick_at_nicklen(server: IRCPeer) -> None:
    if server.kind != "ngircd":
        return  # NICKLEN 9 is ngIRCd's (InspIRCd's here is 30)
    base = nick("longnick")[:9]
    first = await irc.connect(server.host, server.port, base, timeout=10)
    second = await irc.connect(server.host, server.port, base, timeout=10)
    try:
        assert len(second.nick) == 9 and second.nick != base and second.nick.endswith("_")
    finally:
        await first.quit()
        await second.quit()


async def test_join_several_channels_at_once_with_keys(server: IRCPeer) -> None:
    a = await irc.connect(server.host, server.port, nick("j"), rate=None, timeout=10)
    b = await irc.connect(server.host, server.port, nick("k"), rate=None, timeout=10)
    try:
        # one JOIN for both; a list of Channels in the order asked
        first, second = await a.join("#one,#two")
        assert (first.name, second.name) == ("#one", "#two")
        assert first.members == {a.nick: "@"} and second.members == {a.nick: "@"}
        await a.mode("#two", "+k", "sesame")
        await a.mode("#one", "+k", "open")
        # keys given per channel, as a list: the keyless one too
        three, two, one = await b.join(["#three", "#two", "#one"], [None, "sesame", "open"])
        assert [c.name for c in (three, two, one)] == ["#three", "#two", "#one"]
        assert set(b.channels) == {b.fold(n) for n in ("#one", "#two", "#three")}
        assert one.members == {a.nick: "@", b.nick: ""}
        await b.part("#two")
        # a wrong key for one channel: that one is refused (475), the other joined
        with pytest.raises(IRCCommandError) as raised:
            await b.join("#two,#four", "wrong")
        assert raised.value.numeric == "475"
        assert b.fold("#two") not in b.channels
        await b.wait_for("join", lambda e: e.own and e.channel == "#four", timeout=10) \
            if b.fold("#four") not in b.channels else None
        assert b.fold("#four") in b.channels
    finally:
        await a.quit()
        await b.quit()


async def test_rejoins_a_keyed_channel_with_its_key(server: IRCPeer) -> None:
    op = await irc.connect(server.host, server.port, nick("ko"), rate=None, timeout=10)
    client = await irc.connect(server.host, server.port, nick("kc"), rate=None, timeout=10,
                               reconnect=True)
    try:
        client.reconnect_initial = client._reconnect_delay = 0.01
        await op.join("#keyed")
        await op.mode("#keyed", "+k", "sekrit")
        await op.join("#later")
        await client.join("#keyed", "sekrit")  # the key joined with
        await client.join("#later")
        changed = client.wait_for("mode", lambda e: e.channel == "#later", timeout=10)
        await op.mode("#later", "+k", "newkey")  # a key set while we are in
        await changed
        assert client.channels[client.fold("#later")].key == "newkey"
        back = client.wait_for("registered", timeout=10)
        keyed = client.wait_for("join", lambda e: e.own and e.channel == "#keyed", timeout=10)
        later = client.wait_for("join", lambda e: e.own and e.channel == "#later", timeout=10)
        client.protocol.transport.abort()
        await back
        await keyed
        await later
        await client.names("#later")  # (366 of the rejoins came)
        assert client.channels[client.fold("#keyed")].key == "sekrit"
        assert client.channels[client.fold("#later")].key == "newkey"
    finally:
        await client.quit()
        await op.quit()


async def test_join_of_a_channel_we_are_in_fires_at_once(server: IRCPeer) -> None:
    client = await irc.connect(server.host, server.port, nick("jj"), rate=None, timeout=10)
    try:
        a, b = client.join("#twice"), client.join("#twice")  # (the second is shared)
        chan = await a
        assert await b is chan
        clock = ns.get_reactor()
        start = clock.seconds()
        assert await client.join("#twice") is chan
        assert clock.seconds() - start < 1
        # the server has nothing to say to it: the next request is answered as usual
        assert await client.names("#twice") == [f"@{client.nick}"]
    finally:
        await client.quit()


async def test_concurrent_whois_of_a_missing_nick_both_fail(server: IRCPeer) -> None:
    client = await irc.connect(server.host, server.port, nick("wq"), rate=None, timeout=10)
    other = await irc.connect(server.host, server.port, nick("wt"), rate=None, timeout=10)
    try:
        d1, d2 = client.whois("ghost"), client.whois("ghost")
        d3 = client.whois(other.nick)
        for d in (d1, d2):
            with pytest.raises(IRCCommandError) as raised:
                await d
            assert raised.value.numeric == "401"
        assert (await d3).user is not None
        assert client._pending == []
    finally:
        await client.quit()
        await other.quit()


async def test_a_long_action_is_heard_whole(server: IRCPeer) -> None:
    a = await irc.connect(server.host, server.port, nick("aa"), rate=None, timeout=10)
    b = await irc.connect(server.host, server.port, nick("ab"), rate=None, timeout=10)
    try:
        await a.join("#act")
        await b.join("#act")
        heard: list[str] = []
        b.add_listener("action", lambda e: heard.append(e.text or ""))
        refused: list[str] = []  # (ours says 417 to a line over 512 bytes)
        a.add_listener("raw", lambda e: refused.append(str(e.message))
                       if e.message.command == "417" else None)
        text = "waves " * 100 + "\x1ditalic\x1d é" * 30
        a.action("#act", text)
        got = b.wait_for("message", lambda e: e.text == "end", timeout=10)
        a.msg("#act", "end")
        await got
        assert " ".join(heard).split() == text.split()
        assert refused == []
    finally:
        await a.quit()
        await b.quit()
