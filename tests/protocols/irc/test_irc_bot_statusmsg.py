"""The bot on a real server: a command said to a channel's ops only (STATUSMSG,
``PRIVMSG @#chan``) is answered to the ops only; a member without a status hears
neither. Against our server and InspIRCd (each says STATUSMSG in its 005; ngIRCd has
none, so it is not asked here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from irc_peers import IRCPeer, irc_server

from protocols import irc
from protocols.irc.bot import CommandContext
from protocols.irc.client import Event

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", params=["netshell", "inspircd"])
def server(request: pytest.FixtureRequest) -> Iterator[IRCPeer]:
    with irc_server(request.param) as peer:
        yield peer


async def test_a_command_to_the_ops_is_answered_to_the_ops(server: IRCPeer) -> None:
    op = await irc.connect(server.host, server.port, "sop", rate=None, timeout=10)
    bot = irc.Bot("sbot", ["#ops"], rate=None, timeout=10)
    plain = None
    asked: list[CommandContext] = []

    @bot.command("secret")
    def secret(ctx: CommandContext) -> str:
        asked.append(ctx)
        return "the ops-only answer"

    try:
        assert "@" in op.isupport.tokens["STATUSMSG"]
        await op.join("#ops")
        await bot.start(server.host, server.port)
        await op.mode("#ops", "+o", "sbot")
        plain = await irc.connect(server.host, server.port, "splain", rate=None, timeout=10)
        await plain.join("#ops")
        heard: list[Event] = []
        plain.add_listener("message", heard.append)
        answer = op.wait_for("message", lambda e: e.nick == "sbot", timeout=10)
        op.msg("@#ops", "!secret")
        got = await answer
        assert (got.target, got.channel, got.status_prefix) == ("@#ops", "#ops", "@")
        assert got.text == "the ops-only answer"
        (ctx,) = asked
        assert (ctx.channel, ctx.status_prefix) == ("#ops", "@")
        # the plain member heard neither: a message to everyone, after, is the first
        after = plain.wait_for("message", timeout=10)
        op.msg("#ops", "to all")
        assert (await after).text == "to all"
        assert [e.text for e in heard] == ["to all"]
    finally:
        await bot.stop()
        await op.quit()
        if plain is not None:
            await plain.quit()
