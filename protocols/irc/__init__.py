"""IRC (issue 15): a server, a client and a bot kit, on a sans-I/O core.

- :mod:`protocols.irc.core`: messages (tags, source, command, parameters) read from a
  line and written back, lines off the wire with their limits, case mapping;
- ``serve`` (:mod:`protocols.irc.server`): an IRC server;
- ``connect``, ``IRCClient`` (:mod:`protocols.irc.client`): a client;
- ``Bot`` (:mod:`protocols.irc.bot`): a bot with commands.

The server, client and bot are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from protocols.irc.core import IRCParseError, LineReader, LineTooLong, Message, casefold, parse

#: name -> the module of protocols.irc that holds it (imported when first asked for)
_LAZY = {
    "serve": "server",
    "IRCServerFactory": "server",
    "connect": "client",
    "IRCClient": "client",
    "Bot": "bot",
}

__all__ = [
    "Bot",
    "IRCClient",
    "IRCParseError",
    "IRCServerFactory",
    "LineReader",
    "LineTooLong",
    "Message",
    "casefold",
    "connect",
    "parse",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protocols.irc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"protocols.irc.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
