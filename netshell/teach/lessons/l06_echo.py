"""Lesson 6: an echo server (a Protocol, ``listen``, a client at the prompt)."""

from __future__ import annotations

from netshell.teach.lessons.base import Lesson, NotYet, State, Step
from netshell.teach.lessons.common import echoing_listener, mine, peer_port, short, try_in_memory


def _echo_class(state: State) -> str:
    said = []
    for cls in mine(state):
        wrote = try_in_memory(cls, b"ping\r\n")
        if wrote == b"ping\r\n":
            state.memo["class"] = cls
            return f"{cls.__name__} sent back b'ping\\r\\n' (tried in memory, no socket)"
        said.append(f"{cls.__name__} got b'ping\\r\\n' and wrote {short(wrote)}")
    raise NotYet("; ".join(said))


async def _serving(state: State) -> str:
    return await echoing_listener(state)


async def _talked(state: State) -> str:
    ports = {x.port for x in state.reactor.listeners}

    def talked() -> str:
        for w in reversed(state.wires(client=True)):
            if w.sent and w.received.startswith(bytes(w.sent)) and peer_port(w) in ports:
                return (f"connection #{w.number} sent {len(w.sent)} bytes and the server sent "
                        "them back")
        raise NotYet("no connection of yours has sent bytes to your server and had them "
                     "back in this step")

    def pending() -> bool:
        return any(len(w.received) < len(w.sent) for w in state.wires(client=True))

    return await state.eventually(talked, within=2.0, pending=pending)


LESSON = Lesson(
    6,
    "An echo server",
    "A protocol is a class whose methods the reactor calls: connection_made when a\n"
    "connection is up, data_received with each chunk of bytes. self.transport writes\n"
    "back. It never touches a socket, so it can be tried in memory too.",
    [
        Step(
            "write a protocol that sends back what it receives:\n"
            "    class Echo(Protocol):\n"
            "        def data_received(self, data):\n"
            "            self.transport.write(data)",
            _echo_class,
            "subclass Protocol and define data_received(self, data) calling "
            "self.transport.write(data)",
            ["class Echo(Protocol):\n    def data_received(self, data):\n"
             "        self.transport.write(data)\n"],
        ),
        Step(
            "serve it: listen(port, Echo) binds 127.0.0.1 (port 0 picks a free one):\n"
            "    srv = listen(0, Echo)\n"
            "The check connects to it and sees what comes back.",
            _serving,
            "listen(0, Echo) returns the Listener; srv.port is its port",
            ["srv = listen(0, Echo)"],
        ),
        Step(
            "be its client: connect gives a Deferred of the connected protocol:\n"
            '    p = await connect(f"tcp:127.0.0.1:{srv.port}", Protocol)\n'
            '    p.transport.write(b"hi there\\n")\n'
            "conns() shows both ends, with the bytes each way.",
            _talked,
            "p = await connect(...) gives the client protocol; p.transport.write(b'...') sends",
            ['p = await connect(f"tcp:127.0.0.1:{srv.port}", Protocol)',
             'p.transport.write(b"hi there\\n")'],
        ),
    ],
    "listeners() and conns() show what you made; trace(srv) prints its bytes as they go.",
)

__all__ = ["LESSON"]
