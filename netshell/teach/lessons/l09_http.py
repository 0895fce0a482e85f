"""Lesson 9: HTTP by hand (a raw request over TCP), then ``http.get``."""

from __future__ import annotations

from typing import Any

from netshell.teach.lessons.base import TRIED_ONCE, Lesson, NotYet, State, Step

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def _first_line(data: bytes | bytearray) -> str:
    return bytes(data).split(b"\r\n", 1)[0].decode("latin-1")


async def _serving(state: State) -> str:
    from protocols.http.server import HTTPServerFactory, HTTPServerProtocol

    # Only an HTTP server's listener, or one made in this step, is sent a GET, and once.
    listeners = state.candidates(HTTPServerFactory, HTTPServerProtocol)
    if not listeners:
        raise NotYet("no HTTP listener is open, and none was opened in this step")
    said = []
    for x in listeners:
        if x.number not in state.probed:
            got = await state.exchange(x.port, REQUEST, until=lambda b: b"\r\n\r\n" in b,
                                       timeout=2.0)
            if got.got.startswith(b"HTTP/1.1 200"):
                state.memo["port"] = x.port
                return (f"listener #{x.number} answered the check's GET / with "
                        f"'{_first_line(got.got)}'")
            state.probed[x.number] = (f"#{x.number} answered "
                                      f"{_first_line(got.got) or 'nothing'!r}")
        said.append(state.probed[x.number])
    raise NotYet("no listener answered the check's GET / with HTTP/1.1 200 ("
                 + ", ".join(said) + ")" + TRIED_ONCE)


async def _by_hand(state: State) -> str:
    def answered() -> str:
        for w in reversed(state.wires(client=True)):
            if w.protocol == "http client" or not w.sent:
                continue
            if w.received.startswith(b"HTTP/1.1 200"):
                return (f"connection #{w.number} sent '{_first_line(w.sent)}' by hand and got "
                        f"'{_first_line(w.received)}' back")
            if w.received.startswith(b"HTTP/"):
                raise NotYet(f"the server answered '{_first_line(w.received)}': a request is "
                             "a request line, headers (Host: is required), and an empty line")
        raise NotYet("no connection of yours has had an HTTP answer in this step")

    def pending() -> bool:
        return any(w.sent and not w.received for w in state.wires(client=True))

    return await state.eventually(answered, within=3.0, pending=pending)


def _response_class() -> Any:
    from protocols.http import Response

    return Response


def _client(state: State) -> str:
    responses = [r for r in state.values(_response_class()) if r.status == 200]
    wires = [w for w in state.wires(client=True)
             if w.protocol == "http client" and w.received.startswith(b"HTTP/1.1 200")]
    if responses and wires:
        return (f"http.get sent '{_first_line(wires[-1].sent)}' on connection "
                f"#{wires[-1].number}, and gave you {responses[0]!r}")
    if wires:
        raise NotYet("http.get got its answer; keep the Response: r = await http.get(...)")
    raise NotYet("no http.get has been answered in this step")


LESSON = Lesson(
    9,
    "HTTP by hand",
    "HTTP/1.1 is text over TCP: a request line, headers, an empty line; then the answer,\n"
    "a status line, headers, an empty line and the body. protocols.http speaks it for\n"
    "you, but you can speak it yourself.",
    [
        Step(
            "serve a handler (any callable that takes a request) in one line:\n"
            '    srv = http.serve(lambda request: "hello, web\\n")\n'
            "The check sends it a GET; the request log shows that above the prompt.",
            _serving,
            'http.serve(lambda request: "hello, web\\n") serves on a free port',
            ['srv = http.serve(lambda request: "hello, web\\n")'],
        ),
        Step(
            "send a request by hand, with a protocol that prints the answer:\n"
            "    class Raw(Protocol):\n"
            "        def data_received(self, data):\n"
            "            print(data.decode())\n"
            '    p = await connect(f"tcp:127.0.0.1:{srv.port}", Raw)\n'
            '    p.transport.write(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n")',
            _by_hand,
            "the request is b\"GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n\": each line "
            "ends in \\r\\n, and an empty line ends the headers",
            ["class Raw(Protocol):\n    def data_received(self, data):\n"
             "        print(data.decode())\n",
             'p = await connect(f"tcp:127.0.0.1:{srv.port}", Raw)',
             'p.transport.write(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n")'],
        ),
        Step(
            "now let the client do it: http.get builds the request, reads the answer and\n"
            "fires with a Response:\n"
            '    r = await http.get(f"http://127.0.0.1:{srv.port}/")\n'
            "    r.status, r.text()",
            _client,
            'r = await http.get(f"http://127.0.0.1:{srv.port}/")',
            ['r = await http.get(f"http://127.0.0.1:{srv.port}/")', "r.status, r.text()"],
        ),
    ],
    "trace(srv) shows both requests' bytes: the same words, whoever wrote them.",
)

__all__ = ["LESSON"]
