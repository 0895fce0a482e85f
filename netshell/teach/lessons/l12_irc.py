"""Lesson 12: IRC chat with two clients (``irc.serve``, ``irc.connect`` twice)."""

from __future__ import annotations

from typing import Any

from netshell.teach.lessons.base import TRIED_ONCE, Lesson, NotYet, State, Step


async def _serving(state: State) -> str:
    from protocols.irc.server import IRCServerFactory, IRCServerProtocol

    # Only an IRC server's listener, or one made in this step, is sent NICK/USER, and once.
    listeners = state.candidates(IRCServerFactory, IRCServerProtocol)
    if not listeners:
        raise NotYet("no IRC listener is open, and none was opened in this step")
    hello = b"NICK lessoncheck\r\nUSER lessoncheck 0 * :the lesson's check\r\n"
    said = []
    for x in listeners:
        if x.number not in state.probed:
            got = await state.exchange(x.port, hello, until=lambda b: b" 001 " in b,
                                       timeout=2.0, then=b"QUIT :checked\r\n")
            for line in got.got.split(b"\r\n"):
                if b" 001 " in line:
                    text = line.decode("utf-8", "replace")
                    return f"listener #{x.number} welcomed the check's client: '{text}'"
            state.probed[x.number] = f"#{x.number} sent no 001"
        said.append(state.probed[x.number])
    raise NotYet("no listener welcomed an IRC client (001): " + ", ".join(said)
                 + TRIED_ONCE)


def _client_class() -> Any:
    from protocols.irc.client import IRCClient

    return IRCClient


def _two(state: State) -> str:
    clients = [c for c in state.values(_client_class())
               if c.registered and not c.closed]
    nicks = sorted({c.nick for c in clients})
    if len(nicks) >= 2:
        return f"{' and '.join(nicks[:2])} are registered on the server"
    if nicks:
        raise NotYet(f"only {nicks[0]} is connected; connect a second client with another nick")
    raise NotYet("no IRC client of yours is connected and registered")


def _privmsgs(data: bytes | bytearray) -> list[tuple[str, str, str]]:
    found = []
    for raw in bytes(data).split(b"\r\n"):
        line = raw.decode("utf-8", "replace")
        if line.startswith("@"):
            line = line.split(" ", 1)[1] if " " in line else ""
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[1] == "PRIVMSG" and parts[0].startswith(":"):
            sender = parts[0][1:].split("!", 1)[0]
            found.append((sender, parts[2], parts[3].removeprefix(":")))
    return found


async def _messaged(state: State) -> str:
    def heard() -> str:
        for w in state.wires(client=True):
            t = w.live()
            client = getattr(getattr(t, "protocol", None), "client", None)
            me = getattr(client, "nick", None)
            if w.protocol != "irc client" or me is None:
                continue
            for sender, target, text in _privmsgs(w.received):
                if sender != me:
                    return f"{me} heard {sender} (to {target}): {text}"
        raise NotYet("no client has heard a message from the other in this step")

    def pending() -> bool:
        return any(b"PRIVMSG " in w.sent for w in state.wires(client=True))

    return await state.eventually(heard, within=3.0, pending=pending)


LESSON = Lesson(
    12,
    "IRC chat with two clients",
    "IRC is lines of text: a server relays each client's messages to the others. Two\n"
    "clients at one prompt show both sides; what each hears prints above the prompt.",
    [
        Step(
            "start a server:\n"
            "    srv = irc.serve()",
            _serving,
            "irc.serve() starts one on a free port",
            ["srv = irc.serve()"],
        ),
        Step(
            "connect two clients, each with its own nick:\n"
            '    alice = await irc.connect("127.0.0.1", srv.port, "alice")\n'
            '    bob = await irc.connect("127.0.0.1", srv.port, "bob")',
            _two,
            'irc.connect("127.0.0.1", srv.port, "alice") fires once the server welcomed her',
            ['alice = await irc.connect("127.0.0.1", srv.port, "alice")',
             'bob = await irc.connect("127.0.0.1", srv.port, "bob")'],
        ),
        Step(
            "one messages the other:\n"
            '    alice.msg("bob", "hello, bob")',
            _messaged,
            'alice.msg("bob", "hello, bob") sends bob a private message',
            ['alice.msg("bob", "hello, bob")'],
        ),
    ],
    "irc.Bot(nick, channels) answers !commands: a bot in ten lines (see the IRC page).",
)

__all__ = ["LESSON"]
