"""The IRC server over real loopback connections: a raw client reading the server's bytes,
and the ``irc`` PyPI library (jaraco's, asyncio flavour), a client nobody here wrote.

Two clients join a channel and see each other's messages, topic, modes, kicks, nick changes
and quits, as the library reports them (its events are built from our lines).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import irc.client
import irc.client_aio
import pytest
from irc_test_helpers import READ_TIMEOUT, RawIRC, by_command, connect_registered

from netshell.shell.display import connection_table, display_name
from protocols import irc as ns_irc
from protocols.irc.server import IRCServerProtocol

# ---- fixtures


@pytest.fixture
def server(reactor: Any) -> Iterator[Any]:
    listener = ns_irc.serve(name="irc.test", network="TestNet", motd="welcome",
                            opers={"root": "toor"})
    yield listener
    listener.close()


class Recorder:
    """One jaraco client connection, recording every event it reports."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.reactor = irc.client_aio.AioReactor(loop=loop)
        self.events: list[Any] = []
        self._changed = asyncio.Event()
        self.reactor.add_global_handler("all_events", self._record, -100)
        self.conn: Any = None

    def _record(self, connection: Any, event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    async def connect(self, port: int, nick: str) -> Recorder:
        self.conn = self.reactor.server()
        await self.conn.connect("127.0.0.1", port, nick, username=nick, ircname=f"{nick} R")
        await self.wait("welcome")
        return self

    async def wait(self, kind: str, match: Callable[[Any], bool] = lambda e: True) -> Any:
        """The first event of type ``kind`` (seen already or to come) that matches."""
        async def look() -> Any:
            while True:
                for event in self.events:
                    if event.type == kind and match(event):
                        self.events.remove(event)
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(look(), READ_TIMEOUT)


async def jaraco(port: int, nick: str) -> Recorder:
    return await Recorder().connect(port, nick)


# ---- raw client over loopback


async def test_registration_over_tcp(server: Any) -> None:
    c = await RawIRC.connect(server.port)
    c.send("CAP LS 302")
    ls = await c.expect("CAP")
    assert ls.source == "irc.test" and ls.params[:2] == ["*", "LS"]
    c.send("NICK alice")
    c.send("USER alice 0 * :Alice")
    c.send("CAP END")
    lines = await c.until("376")
    assert [line.command for line in lines][:5] == ["001", "002", "003", "004", "005"]
    assert lines[0].params == ["alice", "Welcome to the TestNet Network, alice!~alice@127.0.0.1"]
    assert by_command(lines, "372")[0].params == ["alice", "- welcome"]
    c.send("QUIT :done")
    rest = await c.closed()
    assert [line.command for line in rest] == ["ERROR"]
    c.close()


async def test_two_raw_clients_talk_and_quit(server: Any) -> None:
    a = await connect_registered(server.port, "alice")
    b = await connect_registered(server.port, "bob")
    await a.join("#room")
    await b.join("#room")
    joined = await a.expect("JOIN")
    assert joined.source == "bob!~u@127.0.0.1" and joined.params == ["#room"]
    b.send("PRIVMSG #room :hello alice")
    msg = await a.expect("PRIVMSG")
    assert (msg.source, msg.params) == ("bob!~u@127.0.0.1", ["#room", "hello alice"])
    b.send("QUIT :bye now")
    quit_line = await a.expect("QUIT")
    assert (quit_line.source, quit_line.params) == ("bob!~u@127.0.0.1", ["Quit: bye now"])
    assert [line.command for line in await b.closed()] == ["ERROR"]
    b.close()
    a.close()


async def test_long_line_and_bad_utf8_over_tcp(server: Any) -> None:
    a = await connect_registered(server.port, "alice")
    a.send("PRIVMSG alice :" + "x" * 2000)
    too_long = await a.expect("417")
    assert too_long.params == ["alice", "Input line was too long"]
    a.send(b"PRIVMSG alice :\xff\xfe")
    fail = await a.expect("FAIL")
    assert fail.params[:2] == ["PRIVMSG", "INVALID_UTF8"]
    assert await a.sync() == []  # still alive, nothing else said
    a.close()


async def test_disconnect_is_a_quit_and_conns_show_nicks(server: Any, reactor: Any) -> None:
    a = await connect_registered(server.port, "alice")
    b = await connect_registered(server.port, "bob")
    await a.join("#room")
    await b.join("#room")
    await a.expect("JOIN")
    protocols = {c.protocol.nick for c in server.connections}
    assert protocols == {"alice", "bob"}
    assert {c.protocol.display_name for c in server.connections} == {
        "irc server alice", "irc server bob"}
    # the table of connections names the protocol
    assert display_name(IRCServerProtocol) == "irc server"
    table = connection_table(reactor.connections).render(color=False)
    assert "irc server" in table
    b.writer.transport.abort()
    quit_line = await a.expect("QUIT")
    assert quit_line.source == "bob!~u@127.0.0.1"
    assert server.factory.state.find_user("bob") is None
    a.close()


# ---- jaraco's irc library


async def test_jaraco_clients_in_a_channel(server: Any) -> None:
    alice = await jaraco(server.port, "alice")
    bob = await jaraco(server.port, "bob")
    welcome = [e for e in alice.events if e.type == "featurelist"]
    assert welcome  # 005 read as the feature list
    alice.conn.join("#room")
    await alice.wait("join", lambda e: e.source.nick == "alice")
    names = await alice.wait("namreply")
    assert names.arguments == ["=", "#room", "@alice"]
    bob.conn.join("#room")
    joined = await alice.wait("join", lambda e: e.source.nick == "bob")
    assert joined.target == "#room" and joined.source == "bob!~bob@127.0.0.1"
    await bob.wait("endofnames")

    # messages, both ways
    alice.conn.privmsg("#room", "hello bob")
    msg = await bob.wait("pubmsg")
    assert (msg.source.nick, msg.target, msg.arguments) == ("alice", "#room", ["hello bob"])
    bob.conn.privmsg("alice", "hi in private")
    msg = await alice.wait("privmsg")
    assert (msg.source.nick, msg.target, msg.arguments) == ("bob", "alice", ["hi in private"])
    bob.conn.notice("#room", "a notice")
    msg = await alice.wait("pubnotice")
    assert msg.arguments == ["a notice"]

    # topic
    alice.conn.topic("#room", "the topic")
    for who in (alice, bob):
        topic = await who.wait("topic")
        assert (topic.source.nick, topic.target, topic.arguments) == (
            "alice", "#room", ["the topic"])
    carol = await jaraco(server.port, "carol")
    carol.conn.join("#room")
    current = await carol.wait("currenttopic")
    assert current.arguments == ["#room", "the topic"]
    setter = await carol.wait("topicinfo")
    assert setter.arguments[:2] == ["#room", "alice!~alice@127.0.0.1"]
    await bob.wait("join", lambda e: e.source.nick == "carol")

    # modes
    alice.conn.mode("#room", "+v bob")
    mode = await bob.wait("mode")
    assert (mode.source.nick, mode.target, mode.arguments) == ("alice", "#room", ["+v", "bob"])
    bob.conn.mode("#room", "+m")
    refused = await bob.wait("chanoprivsneeded")
    assert refused.arguments == ["#room", "You're not channel operator"]

    # nick change, seen by the others
    bob.conn.nick("robert")
    nick = await alice.wait("nick")
    assert (nick.source.nick, nick.target) == ("bob", "robert")
    await carol.wait("nick")

    # kick
    alice.conn.kick("#room", "robert", "enough")
    for who in (alice, bob, carol):
        kick = await who.wait("kick")
        assert (kick.source.nick, kick.target, kick.arguments) == (
            "alice", "#room", ["robert", "enough"])

    # quit, with its reason
    carol.conn.quit("off to bed")
    gone = await alice.wait("quit")
    assert (gone.source.nick, gone.arguments) == ("carol", ["Quit: off to bed"])
    await carol.wait("disconnect")

    alice.conn.disconnect("bye")
    bob.conn.disconnect("bye")


async def test_jaraco_whois_and_errors(server: Any) -> None:
    alice = await jaraco(server.port, "alice")
    bob = await jaraco(server.port, "bob")
    alice.conn.whois(["bob"])
    user = await alice.wait("whoisuser")
    assert user.arguments == ["bob", "~bob", "127.0.0.1", "*", "bob R"]
    await alice.wait("endofwhois")
    alice.conn.privmsg("nobody", "x")
    missing = await alice.wait("nosuchnick")
    assert missing.arguments == ["nobody", "No such nick/channel"]
    bob.conn.nick("alice")
    taken = await bob.wait("nicknameinuse")
    assert taken.arguments == ["alice", "Nickname is already in use"]
    alice.conn.disconnect()
    bob.conn.disconnect()


# ---- netshell's own client (protocols.irc.client) against this server


async def test_our_client_against_our_server(reactor: Any) -> None:
    listener = ns_irc.serve(accounts={"alice": "pw"})
    try:
        alice = await ns_irc.connect("127.0.0.1", listener.port, "alice", sasl=("alice", "pw"),
                                     reconnect=False, timeout=10)
        bob = await ns_irc.connect("127.0.0.1", listener.port, "bob", reconnect=False,
                                   timeout=10)
        await alice.join("#room")
        await bob.join("#room")
        got = bob.wait_for("message", lambda e: e.text == "hello", timeout=10)
        alice.msg("#room", "hello")
        event = await got
        assert event.tags["account"] == "alice" and event.tags["msgid"]
        assert sorted(await alice.names("#room")) == ["@alice", "bob"]
        whois = await alice.whois("bob")
        assert (whois.nick, whois.user, whois.channels) == ("bob", "~bob", ["#room"])
        kicked = bob.wait_for("kick", timeout=10)
        await alice.kick("#room", "bob", "bye")
        await kicked
        await bob.join("#room")
        gone = alice.wait_for("quit", timeout=10)
        await bob.quit("done")
        event = await gone
        assert (event.nick, event.text) == ("bob", "Quit: done")
        await alice.quit()
    finally:
        listener.close()
