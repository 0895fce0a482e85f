"""A bot in a few lines: commands as decorated functions, on the IRC client.

Example (a script: ``netsh run bot.py``, or ``python bot.py``)::

    from protocols import irc

    bot = irc.Bot("hellobot", ["#netshell"])

    @bot.command("hello")
    def hello(ctx):
        return f"hello, {ctx.nick}!"

    @bot.command("add")
    async def add(ctx):
        return str(sum(int(a) for a in ctx.args))

    bot.run("127.0.0.1", 6667)

A command is said as ``!hello`` (the ``prefix``) in a channel or in private, as
``hellobot: hello`` in a channel, or as ``hello`` alone in private. The handler gets a
:class:`CommandContext` (``nick``, ``channel``, ``args``, ``rest``, ``event``, ``reply``);
what it returns (a string, or what its coroutine or Deferred gives) is the reply, sent
where the command came from, one line per line (a command said to a channel's ops
only, ``PRIVMSG @#chan``, is answered to its ops only: to ``@#chan``). An error in a
handler is logged and told in one line; the bot goes on. ``help`` lists the commands.
``@bot.on("join")`` adds a hook for any client event (see
:class:`~protocols.irc.client.IRCClient`).

At the prompt or in a running script: ``client = await bot.start(host, port)``; then
``await bot.stop()``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import netshell as ns
from netshell.defer import Deferred, ensure_deferred
from netshell.failure import Failure
from netshell.reactor import get_reactor
from protocols.irc.client import Event, IRCClient, connect

__all__ = ["Bot", "CommandContext"]

log = logging.getLogger("netshell.irc.bot")

Handler = Callable[["CommandContext"], Any]

#: the line breaks of a reply (not str.splitlines()'s others: \x1d, \x1e are formatting)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class CommandContext:
    """One command said to the bot: who (``nick``), where (``channel``, None in
    private), the command ``name``, its ``args`` (split on spaces) and ``rest`` (the text
    after the command, as typed), the :class:`~protocols.irc.client.Event` and the bot."""

    bot: Bot
    event: Event
    name: str
    args: list[str]
    rest: str

    @property
    def nick(self) -> str:
        return self.event.nick or ""

    @property
    def channel(self) -> str | None:
        return self.event.channel

    @property
    def client(self) -> IRCClient:
        assert self.bot.client is not None
        return self.bot.client

    @property
    def status_prefix(self) -> str | None:
        """The status prefix the command was said to (``"@"`` of ``@#chan``: ops only),
        else None."""
        return self.event.status_prefix

    def reply(self, text: str) -> None:
        """Answer where the command came from: the channel (its ops only, ``@#chan``, for
        a command said to them), else the nick."""
        self.bot.say(self.event.reply_to or self.nick, text)


class Bot:
    """A bot named ``nick`` that joins ``channels`` and answers commands (see the
    module's docstring). ``prefix`` starts a command in a channel (default ``"!"``);
    ``connect_options`` go to :func:`protocols.irc.connect` (``sasl``, ``tls``,
    ``password``, ``rate``...)."""

    def __init__(
        self,
        nick: str,
        channels: Iterable[str] = (),
        *,
        prefix: str = "!",
        **connect_options: Any,
    ) -> None:
        self.nick = nick
        self.channels = list(channels)
        self.prefix = prefix
        self.connect_options = connect_options
        self.commands: dict[str, Handler] = {}
        self.hooks: dict[str, list[Callable[[Event], Any]]] = {}
        self.client: IRCClient | None = None

    def __repr__(self) -> str:
        state = repr(self.client) if self.client is not None else "not connected"
        return f"<Bot {self.nick} {sorted(self.commands)}: {state}>"

    def command(self, name: str) -> Callable[[Handler], Handler]:
        """Decorate a handler for the command ``name`` (case does not matter)."""
        if not name or " " in name:
            raise ValueError(f"a command is one word: {name!r}")

        def register(handler: Handler) -> Handler:
            self.commands[name.lower()] = handler
            return handler

        return register

    def on(self, kind: str) -> Callable[[Callable[[Event], Any]], Callable[[Event], Any]]:
        """Decorate a hook for the client's events of ``kind`` ("join", "message"...)."""

        def register(hook: Callable[[Event], Any]) -> Callable[[Event], Any]:
            self.hooks.setdefault(kind, []).append(hook)
            if self.client is not None:
                self.client.add_listener(kind, hook)
            return hook

        return register

    def say(self, target: str, text: str) -> None:
        """Send ``text`` to a channel or nick."""
        if self.client is None:
            raise RuntimeError("the bot is not connected: start() it first")
        self.client.msg(target, text)

    # -- running

    def start(self, host: str, port: int = 6667, **options: Any) -> Deferred[IRCClient]:
        """Connect, join the channels, and fire with the client (the bot now answers)."""
        return ensure_deferred(self._start(host, port, {**self.connect_options, **options}))

    async def _start(self, host: str, port: int, options: dict[str, Any]) -> IRCClient:
        client = await connect(host, port, self.nick, **options)
        self.client = client
        client.add_listener("message", self._on_message)
        for kind, hooks in self.hooks.items():
            for hook in hooks:
                client.add_listener(kind, hook)
        for channel in self.channels:
            try:
                await client.join(channel)
            except Exception as e:  # one channel refused is no reason to stop
                log.warning("the bot could not join %s: %s", channel, e)
        return client

    def stop(self, reason: str = "bye") -> Deferred[None]:
        """Quit the server."""
        if self.client is None:
            return ns.succeed(None)
        return self.client.quit(reason)

    def run(self, host: str, port: int = 6667, **options: Any) -> Deferred[IRCClient] | None:
        """For scripts: start, and run the reactor until the bot quits (or Ctrl-C).
        Where the reactor runs already (the prompt, ``netsh run``), it only starts, and
        returns the Deferred of :meth:`start`."""
        reactor = get_reactor()
        d = self.start(host, port, **options)
        if reactor.running:
            return d

        def started(client: IRCClient) -> IRCClient:
            client.when_closed().add_callback(lambda _: _stop(reactor))
            return client

        def failed(f: Failure) -> None:
            log.error("the bot could not connect to %s:%s: %s", host, port, f.value)
            _stop(reactor)

        d.add_callbacks(started, failed)
        reactor.run()
        return None

    # -- commands

    def _parse(self, event: Event) -> tuple[str, str] | None:
        """(command, rest) if the message is a command to the bot."""
        text = (event.text or "").strip()
        if self.prefix and text.startswith(self.prefix):
            text = text[len(self.prefix):]
        elif event.channel is not None:  # "bot: command" in a channel
            assert event.client is not None
            head, _, tail = text.partition(" ")
            if not head.endswith((":", ",")) or not event.client.is_me(head[:-1]):
                return None
            text = tail.strip()
        name, _, rest = text.partition(" ")
        if not name:
            return None
        return name.lower(), rest.strip()

    def _on_message(self, event: Event) -> None:
        if event.own:
            return  # our own, echoed back (echo-message)
        parsed = self._parse(event)
        if parsed is None:
            return
        name, rest = parsed
        handler = self.commands.get(name)
        if handler is None:
            if name == "help":
                handler = _help
            else:
                return
        ctx = CommandContext(self, event, name, rest.split(), rest)
        try:
            result = handler(ctx)
            if inspect.isawaitable(result):
                result = ensure_deferred(result)
        except Exception as e:
            self._failed(ctx, Failure(e))
            return
        if isinstance(result, Deferred):
            # Fired by whoever answers: the reply (and a failure's log record) are the
            # connection's work, in its context.
            in_context = ctx.client.in_context
            result.add_callbacks(in_context(functools.partial(self._answer, ctx)),
                                 in_context(functools.partial(self._failed, ctx)))
        else:
            self._answer(ctx, result)

    def _answer(self, ctx: CommandContext, value: Any) -> None:
        if value is None:
            return
        if self.client is None or self.client.closed:
            return
        for line in _LINE_BREAK.split(str(value)):
            if line:
                ctx.reply(line)

    def _failed(self, ctx: CommandContext, failure: Failure) -> None:
        log.error("the bot's command %r failed:\n%s", ctx.name, failure.get_traceback())
        if self.client is not None and not self.client.closed:
            ctx.reply(f"{ctx.name} failed: {type(failure.value).__name__}: {failure.value}")


def _help(ctx: CommandContext) -> str:
    names = sorted(set(ctx.bot.commands) | {"help"})
    return "commands: " + " ".join(ctx.bot.prefix + n for n in names)


def _stop(reactor: Any) -> None:
    if reactor.running:
        reactor.stop()
