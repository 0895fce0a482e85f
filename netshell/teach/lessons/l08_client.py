"""Lesson 8: a client protocol (``connect``, ``connection_made``, closing)."""

from __future__ import annotations

from netshell.teach.lessons.base import Lesson, NotYet, State, Step
from netshell.teach.lessons.common import (
    echoing_listener,
    mine,
    protocol_names,
    short,
    try_in_memory,
)


async def _server(state: State) -> str:
    return await echoing_listener(state)


def _greeter(state: State) -> str:
    for cls in mine(state):
        wrote = try_in_memory(cls)
        if wrote:
            return f"{cls.__name__} writes {short(wrote)} as soon as it is connected"
    raise NotYet("none of your protocols writes anything in connection_made")


async def _connected(state: State) -> str:
    def heard() -> str:
        names = protocol_names(state)
        for w in reversed(state.wires(client=True)):
            if w.protocol in names and w.sent and w.received.startswith(bytes(w.sent)):
                state.memo["wire"] = w.number
                return (f"{w.protocol} on connection #{w.number} sent {short(w.sent)} and "
                        "heard it back")
        raise NotYet("no client of your class has sent its greeting and heard it back in "
                     "this step")

    def pending() -> bool:
        names = protocol_names(state)
        return any(w.protocol in names and len(w.received) < len(w.sent)
                   for w in state.wires(client=True))

    return await state.eventually(heard, within=2.0, pending=pending)


async def _closed(state: State) -> str:
    def closed() -> str:
        names = protocol_names(state)
        for w in reversed(state.wires(client=True)):
            if w.protocol in names and w.lost > state.since:
                return (f"connection #{w.number} is closed: both ends got connection_lost, "
                        "and conns() no longer lists it")
        raise NotYet("no connection of your client class has closed in this step")

    def pending() -> bool:
        names = protocol_names(state)
        return any(w.protocol in names and not w.lost for w in state.wires(client=True))

    return await state.eventually(closed, within=2.0, pending=pending)


LESSON = Lesson(
    8,
    "A client",
    "A client is a protocol too: connect makes the connection, then the reactor calls the\n"
    "same methods as on a server. connection_made is where a client speaks first.",
    [
        Step(
            "start a server to talk to; wire.Echo is the library's echo protocol:\n"
            "    srv = listen(0, wire.Echo)",
            _server,
            "listen(0, wire.Echo)",
            ["srv = listen(0, wire.Echo)"],
        ),
        Step(
            "write a client that greets as soon as it is connected, and prints what it hears:\n"
            "    class Greeter(Protocol):\n"
            "        def connection_made(self, transport):\n"
            "            super().connection_made(transport)\n"
            '            transport.write(b"hello\\n")\n'
            "        def data_received(self, data):\n"
            '            print("heard", data)',
            _greeter,
            "define connection_made(self, transport): call super().connection_made(transport) "
            "(it sets self.transport), then transport.write(...)",
            ["class Greeter(Protocol):\n    def connection_made(self, transport):\n"
             "        super().connection_made(transport)\n"
             '        transport.write(b"hello\\n")\n'
             "    def data_received(self, data):\n"
             '        print("heard", data)\n'],
        ),
        Step(
            "connect it: the Deferred fires with the protocol once the connection is up:\n"
            '    g = await connect(f"tcp:127.0.0.1:{srv.port}", Greeter)',
            _connected,
            "connect(where, Greeter) takes the class; await gives the connected Greeter",
            ['g = await connect(f"tcp:127.0.0.1:{srv.port}", Greeter)'],
        ),
        Step(
            "hang up: close() sends what is left, then closes:\n"
            "    g.transport.close()",
            _closed,
            "g.transport.close() on the Greeter you connected",
            ["g.transport.close()"],
        ),
    ],
    "ns.ReconnectingClientFactory connects again when a connection is lost.",
)

__all__ = ["LESSON"]
