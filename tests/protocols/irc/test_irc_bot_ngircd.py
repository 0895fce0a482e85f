"""The bot kit against ngIRCd: commands said with the prefix, addressed by nick and in
private, async handlers, a failing handler, help; and ``bot.run`` in a script of its own
that quits on a command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from irc_peers import IRCPeer, ngircd_server

import netshell as ns
from protocols import irc
from protocols.irc.bot import CommandContext
from protocols.irc.client import Event, IRCClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def no_client_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test checks, the client logged no error of its own on the way."""
    yield
    errors = [r.getMessage() for r in caplog.get_records("call")
              if r.name == "netshell.irc.client" and r.levelname in ("ERROR", "CRITICAL")]
    assert errors == []


@pytest.fixture(scope="module")
def server() -> Iterator[IRCPeer]:
    with ngircd_server() as peer:
        yield peer


def from_bot(client: IRCClient, bot_nick: str) -> ns.Deferred[Event]:
    return client.wait_for("message", lambda e: e.nick == bot_nick, timeout=10)


async def test_bot_answers_commands(server: IRCPeer) -> None:
    bot = irc.Bot("hellobot", ["#bots"], rate=None)

    @bot.command("hello")
    def hello(ctx: CommandContext) -> str:
        return f"hello, {ctx.nick}!"

    @bot.command("add")
    async def add(ctx: CommandContext) -> str:
        await ns.sleep(0)
        return str(sum(int(a) for a in ctx.args))

    @bot.command("boom")
    def boom(ctx: CommandContext) -> None:
        raise RuntimeError("kaboom")

    @bot.command("where")
    def where(ctx: CommandContext) -> None:
        ctx.reply(f"{ctx.channel} {ctx.rest}")

    joins: list[str] = []
    bot.on("join")(lambda e: joins.append(e.nick or ""))

    client = await bot.start(server.host, server.port)
    assert client is bot.client and client.fold("#bots") in client.channels
    user = await irc.connect(server.host, server.port, "human", rate=None, timeout=10)
    try:
        seen = client.wait_for("join", lambda e: e.nick == "human", timeout=10)
        await user.join("#bots")
        await seen
        assert joins == ["hellobot", "human"]

        said = from_bot(user, "hellobot")
        user.msg("#bots", "!hello")
        event = await said
        assert (event.text, event.channel) == ("hello, human!", "#bots")

        said = from_bot(user, "hellobot")
        user.msg("#bots", "hellobot: add 2 3 4")
        assert (await said).text == "9"

        # not for the bot: an unknown command, plain talk, another's name: no answer;
        # the next answer is the one to the next command
        user.msg("#bots", "!nosuch")
        user.msg("#bots", "hello everyone")
        user.msg("#bots", "otherbot: hello")
        said = from_bot(user, "hellobot")
        user.msg("#bots", "!where a  b")
        assert (await said).text == "#bots a  b"

        said = from_bot(user, "hellobot")
        user.msg("#bots", "!boom")
        assert (await said).text == "boom failed: RuntimeError: kaboom"

        # in private: no prefix needed; the answer comes in private
        said = from_bot(user, "hellobot")
        user.msg("hellobot", "HELLO")
        event = await said
        assert event.channel is None and event.text == "hello, human!"

        said = from_bot(user, "hellobot")
        user.msg("#bots", "!help")
        assert (await said).text == "commands: !add !boom !hello !help !where"
    finally:
        await user.quit()
        await bot.stop()
    assert bot.client is not None and bot.client.closed


BOT_SCRIPT = """
import sys
from protocols import irc

bot = irc.Bot("runbot", ["#run"], rate=None)

@bot.command("quit")
def quit(ctx):
    ctx.reply("bye now")
    bot.stop("asked to")

bot.run(sys.argv[1], int(sys.argv[2]))
print("STOPPED", flush=True)
"""


async def test_bot_run_in_a_script(server: IRCPeer, tmp_path: Path) -> None:
    script = tmp_path / "bot.py"
    script.write_text(BOT_SCRIPT)
    user = await irc.connect(server.host, server.port, "runner", rate=None, timeout=10)
    await user.join("#run")
    bot_joined = user.wait_for("join", lambda e: e.nick == "runbot", timeout=20)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), server.host, str(server.port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parents[3]),
    )
    try:
        await bot_joined
        said = from_bot(user, "runbot")
        gone = user.wait_for("quit", lambda e: e.nick == "runbot", timeout=10)
        user.msg("#run", "!quit")
        assert (await said).text == "bye now"
        assert "asked to" in ((await gone).text or "")
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == "STOPPED"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await user.quit()
