"""IRC: a server, a client and a bot kit (issue 15). :mod:`protocols.irc.core` reads and
writes messages without I/O."""

from protocols.irc.core import IRCParseError, LineReader, LineTooLong, Message, casefold, parse

__all__ = ["IRCParseError", "LineReader", "LineTooLong", "Message", "casefold", "parse"]
