"""Lesson 7: a line protocol (``protocols.basic.LineReceiver``)."""

from __future__ import annotations

from typing import Any

from netshell.teach.lessons.base import Lesson, NotYet, State, Step
from netshell.teach.lessons.common import mine, short, try_in_memory


def _line_receiver() -> Any:
    from protocols.basic import LineReceiver

    return LineReceiver


def _shouts(state: State) -> str:
    said = []
    for cls in mine(state, _line_receiver()):
        wrote = try_in_memory(cls, b"hello\r\nwor", b"ld\r\n")
        if wrote == b"HELLO\r\nWORLD\r\n":
            return (f"{cls.__name__} got b'hello\\r\\nwor' and b'ld\\r\\n' and answered "
                    f"{short(wrote)}: a line at a time, whatever the pieces")
        said.append(f"{cls.__name__} answered {short(wrote)}")
    raise NotYet("fed b'hello\\r\\nwor' then b'ld\\r\\n': " + "; ".join(said))


async def _served(state: State) -> str:
    listeners = state.listeners(_line_receiver())
    if not listeners:
        raise NotYet("no listener serves a LineReceiver of yours")
    said = []
    for x in listeners:
        got = await state.exchange(x.port, b"one\r\ntwo\r\n", until=lambda b: len(b) >= 10,
                                   timeout=2.0)
        if got.got == b"ONE\r\nTWO\r\n":
            return f"listener #{x.number} answered b'one\\r\\ntwo\\r\\n' with {short(got.got)}"
        said.append(f"#{x.number} answered {short(got.got)}")
    raise NotYet("the check sent b'one\\r\\ntwo\\r\\n'; " + ", ".join(said))


async def _bye(state: State) -> str:
    listeners = state.listeners(_line_receiver())
    if not listeners:
        raise NotYet("no listener serves a LineReceiver of yours")
    said = []
    for x in listeners:
        got = await state.exchange(x.port, b"hi\r\nbye\r\n", timeout=2.0)
        if got.closed and got.got.startswith(b"HI\r\n"):
            return (f"listener #{x.number} answered b'hi' with {short(got.got)} and closed "
                    "the connection at b'bye'")
        said.append(f"#{x.number} answered {short(got.got)}"
                    + ("" if got.closed else " and kept the connection open"))
    raise NotYet("the check sent b'hi\\r\\nbye\\r\\n'; " + ", ".join(said))


LESSON = Lesson(
    7,
    "A line protocol",
    "TCP carries bytes, not messages: a line may come in pieces, or two in one chunk.\n"
    "basic.LineReceiver gathers the bytes into lines (ending in \\r\\n) and calls\n"
    "line_received with each; send_line sends one.",
    [
        Step(
            "write a protocol that answers each line in capitals:\n"
            "    class Shout(basic.LineReceiver):\n"
            "        def line_received(self, line):\n"
            "            self.send_line(line.upper())",
            _shouts,
            "subclass basic.LineReceiver and define line_received(self, line) calling "
            "self.send_line(line.upper())",
            ["class Shout(basic.LineReceiver):\n    def line_received(self, line):\n"
             "        self.send_line(line.upper())\n"],
        ),
        Step(
            "serve it:\n"
            "    srv = listen(0, Shout)",
            _served,
            "listen(0, Shout) serves the class on a free port",
            ["srv = listen(0, Shout)"],
        ),
        Step(
            "let the client end it: redefine Shout so that the line bye closes the\n"
            "connection, and serve the new class (a listener keeps the class it was given):\n"
            "    class Shout(basic.LineReceiver):\n"
            "        def line_received(self, line):\n"
            '            if line == b"bye":\n'
            "                self.transport.close()\n"
            "            else:\n"
            "                self.send_line(line.upper())\n"
            "    srv2 = listen(0, Shout)",
            _bye,
            'in line_received, if line == b"bye": self.transport.close(); then listen again',
            ['class Shout(basic.LineReceiver):\n    def line_received(self, line):\n'
             '        if line == b"bye":\n            self.transport.close()\n'
             "        else:\n            self.send_line(line.upper())\n",
             "srv2 = listen(0, Shout)"],
        ),
    ],
    "basic also has NetstringReceiver and length-prefixed framing, for binary messages.",
)

__all__ = ["LESSON"]
