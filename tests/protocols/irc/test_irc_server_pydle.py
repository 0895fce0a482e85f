"""The IRC server with pydle, an IRCv3 client nobody here wrote: capabilities negotiated,
SASL PLAIN against the server's accounts, and two clients that see each other's messages,
topic, modes, kick, nick change and quit as pydle reports them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pydle
import pytest
from irc_test_helpers import READ_TIMEOUT

from protocols import irc as ns_irc


class Recorder(pydle.Client):  # type: ignore[misc]
    """A pydle client that queues what it is told."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.seen: list[tuple[Any, ...]] = []
        self.changed = asyncio.Event()
        self.sasl_ok = False

    def note(self, *event: Any) -> None:
        self.seen.append(event)
        self.changed.set()

    async def wait(self, kind: str, first: Any = None) -> tuple[Any, ...]:
        """The first event of ``kind`` (whose first field is ``first``, if given)."""
        async def look() -> tuple[Any, ...]:
            while True:
                for event in self.seen:
                    if event[0] == kind and (first is None or event[1] == first):
                        self.seen.remove(event)
                        return event
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(look(), READ_TIMEOUT)

    async def on_connect(self) -> None:
        await super().on_connect()
        self.note("connect")

    async def on_raw_903(self, message: Any) -> None:
        self.sasl_ok = True
        await super().on_raw_903(message)

    async def on_join(self, channel: str, user: str) -> None:
        await super().on_join(channel, user)
        self.note("join", channel, user)

    async def on_channel_message(self, target: str, by: str, message: str) -> None:
        self.note("message", target, by, message)

    async def on_private_message(self, target: str, by: str, message: str) -> None:
        self.note("private", target, by, message)

    async def on_topic_change(self, channel: str, message: str, by: str) -> None:
        self.note("topic", channel, message, by)

    async def on_mode_change(self, channel: str, modes: Any, by: str) -> None:
        self.note("mode", channel, list(modes), by)

    async def on_kick(self, channel: str, target: str, by: str, reason: Any = None) -> None:
        await super().on_kick(channel, target, by, reason)
        self.note("kick", channel, target, by, reason)

    async def on_nick_change(self, old: str, new: str) -> None:
        self.note("nick", old, new)

    async def on_quit(self, user: str, message: Any = None) -> None:
        self.note("quit", user, message)


@pytest.fixture
def server(reactor: Any) -> Iterator[Any]:
    listener = ns_irc.serve(accounts={"alice": "wonderland"})
    yield listener
    listener.close()


async def connect(port: int, nick: str, **kw: Any) -> Recorder:
    client = Recorder(nick, **kw)
    await client.connect("127.0.0.1", port, tls=False)
    await client.wait("connect")
    return client


async def test_pydle_caps_and_sasl(server: Any) -> None:
    alice = await connect(server.port, "alice", sasl_username="alice",
                          sasl_password="wonderland", sasl_identity="")
    enabled = {name for name, on in alice._capabilities.items() if on}
    for cap in ("sasl", "message-tags", "multi-prefix", "account-tag", "echo-message",
                "away-notify", "extended-join"):
        assert cap in enabled, enabled
    assert alice.sasl_ok
    assert server.factory.state.find_user("alice").account == "alice"
    wrong = await connect(server.port, "mallory", sasl_username="alice",
                          sasl_password="guess", sasl_identity="")
    assert not wrong.sasl_ok  # refused (904), and registered without an account
    assert server.factory.state.find_user("mallory").account is None
    await alice.quit()
    await wrong.quit()


async def test_pydle_clients_in_a_channel(server: Any) -> None:
    alice = await connect(server.port, "alice")
    bob = await connect(server.port, "bob")
    await alice.join("#room")
    await alice.wait("join")
    await bob.join("#room")
    assert (await alice.wait("join"))[1:] == ("#room", "bob")
    assert sorted(alice.channels["#room"]["users"]) == ["alice", "bob"]

    await alice.message("#room", "hello bob")
    assert (await bob.wait("message"))[1:] == ("#room", "alice", "hello bob")
    await bob.message("alice", "psst")
    assert (await alice.wait("private"))[1:] == ("alice", "bob", "psst")

    await alice.set_topic("#room", "the topic")
    assert (await bob.wait("topic"))[1:] == ("#room", "the topic", "alice")
    assert bob.channels["#room"]["topic"] == "the topic"

    await alice.set_mode("#room", "+v", "bob")
    channel, modes, by = (await bob.wait("mode"))[1:]
    assert (channel, by) == ("#room", "alice") and "+v" in modes and "bob" in modes

    await bob.set_nickname("robert")
    assert (await alice.wait("nick", "bob"))[1:] == ("bob", "robert")
    assert "robert" in alice.channels["#room"]["users"]

    await alice.kick("#room", "robert", "enough")
    assert (await bob.wait("kick"))[1:] == ("#room", "robert", "alice", "enough")

    await bob.join("#room")
    await alice.wait("join")
    await bob.quit("good night")
    assert (await alice.wait("quit"))[1:] == ("robert", "Quit: good night")
    await alice.quit()
