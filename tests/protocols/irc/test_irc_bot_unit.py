"""The bot's command parsing and replies with no server: its client on a StringTransport."""

from __future__ import annotations

import pytest

import netshell as ns
from netshell.testing import Clock, StringTransport
from protocols.irc.bot import Bot, CommandContext
from protocols.irc.client import IRCClient, _IRCProtocol


def wired(bot: Bot) -> tuple[IRCClient, StringTransport, _IRCProtocol]:
    client = IRCClient(bot.nick, clock=Clock(), rate=None)
    transport = StringTransport()
    protocol = _IRCProtocol(client)
    protocol.connection_made(transport)
    protocol.data_received(b":s 001 bot :hi\r\n:s 005 bot CHANTYPES=# :ok\r\n:s 376 bot :end\r\n")
    bot.client = client
    client.add_listener("message", bot._on_message)
    transport.clear()
    return client, transport, protocol


def said(transport: StringTransport) -> list[str]:
    lines = [line for line in transport.value().decode().split("\r\n") if line]
    transport.clear()
    return lines


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (":u!u@h PRIVMSG #c :!echo a b", "PRIVMSG #c :a b"),
        (":u!u@h PRIVMSG #c :bot: echo x", "PRIVMSG #c x"),
        (":u!u@h PRIVMSG #c :BOT, echo y", "PRIVMSG #c y"),
        (":u!u@h PRIVMSG #c :!ECHO z", "PRIVMSG #c z"),
        (":u!u@h PRIVMSG bot :echo private", "PRIVMSG u private"),
        (":u!u@h PRIVMSG bot :!echo private", "PRIVMSG u private"),
        (":u!u@h PRIVMSG #c :echo not for me", None),
        (":u!u@h PRIVMSG #c :robot: echo no", None),
        (":u!u@h PRIVMSG #c :!", None),
        (":bot!b@h PRIVMSG #c :!echo my own echo", None),
        (":u!u@h NOTICE #c :!echo notices are not commands", None),
        # said to the channel's ops only (STATUSMSG): answered to them only
        (":u!u@h PRIVMSG @#c :!echo ops", "PRIVMSG @#c ops"),
        (":u!u@h PRIVMSG +#c :bot: echo voiced", "PRIVMSG +#c voiced"),
    ],
)
def test_what_is_a_command(line: str, answer: str | None) -> None:
    bot = Bot("bot", ["#c"])

    @bot.command("echo")
    def echo(ctx: CommandContext) -> str:
        return ctx.rest

    _client, transport, protocol = wired(bot)
    protocol.data_received(line.encode() + b"\r\n")
    assert said(transport) == ([answer] if answer else [])


def test_replies_of_every_kind() -> None:
    bot = Bot("bot")
    later: ns.Deferred[str] = ns.Deferred()

    @bot.command("lines")
    def lines(ctx: CommandContext) -> str:
        return "one\ntwo"

    @bot.command("later")
    def wait(ctx: CommandContext) -> ns.Deferred[str]:
        return later

    @bot.command("quiet")
    def quiet(ctx: CommandContext) -> None:
        return None

    _client, transport, protocol = wired(bot)
    protocol.data_received(b":u!u@h PRIVMSG #c :!lines\r\n:u!u@h PRIVMSG #c :!quiet\r\n"
                           b":u!u@h PRIVMSG #c :!later\r\n")
    assert said(transport) == ["PRIVMSG #c one", "PRIVMSG #c two"]
    later.callback("done")
    assert said(transport) == ["PRIVMSG #c done"]


def test_command_names_are_one_word() -> None:
    bot = Bot("bot")
    with pytest.raises(ValueError):
        bot.command("two words")
    with pytest.raises(RuntimeError):
        bot.say("#c", "not connected")


def test_statusmsg_command_context_and_formatting_kept_in_one_line() -> None:
    bot = Bot("bot")
    seen: list[CommandContext] = []

    @bot.command("fmt")
    def fmt(ctx: CommandContext) -> str:
        seen.append(ctx)
        return "\x1ditalic\x1d \x1estrike\x1e\r\nsecond"

    _client, transport, protocol = wired(bot)
    protocol.data_received(b":u!u@h PRIVMSG @#c :!fmt\r\n")
    assert said(transport) == ["PRIVMSG @#c :\x1ditalic\x1d \x1estrike\x1e",
                               "PRIVMSG @#c second"]
    (ctx,) = seen
    assert (ctx.channel, ctx.status_prefix, ctx.event.target) == ("#c", "@", "@#c")
    ctx.reply("again")
    assert said(transport) == ["PRIVMSG @#c again"]
