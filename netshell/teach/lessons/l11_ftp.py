"""Lesson 11: FTP's two connections (control, and passive data)."""

from __future__ import annotations

from netshell.teach.lessons.base import TRIED_ONCE, Lesson, NotYet, State, Step


def _lines(data: bytes | bytearray) -> list[str]:
    return [line.decode("utf-8", "replace") for line in bytes(data).split(b"\r\n") if line]


async def _serving(state: State) -> str:
    from protocols.ftp.server import FTPServerFactory, FTPServerProtocol

    # Only an FTP server's listener, or one made in this step, is connected to, and once.
    listeners = state.candidates(FTPServerFactory, FTPServerProtocol)
    if not listeners:
        raise NotYet("no FTP listener is open, and none was opened in this step")
    said = []
    for x in listeners:
        if x.number not in state.probed:
            got = await state.exchange(x.port, until=lambda b: b"\r\n" in b, timeout=2.0,
                                       then=b"QUIT\r\n")
            if got.got.startswith(b"220"):
                return (f"listener #{x.number} greets a new connection: "
                        f"'{_lines(got.got)[0]}'")
            state.probed[x.number] = f"#{x.number} sent no 220"
        said.append(state.probed[x.number])
    raise NotYet("no listener greets a connection with an FTP 220: " + ", ".join(said)
                 + TRIED_ONCE)


async def _logged_in(state: State) -> str:
    def logged_in() -> str:
        for w in reversed(state.wires(client=True)):
            if w.protocol != "ftp client":
                continue
            done = [line for line in _lines(w.received) if line.startswith("230")]
            if done:
                return f"connection #{w.number} carried the login: '{done[0]}'"
        raise NotYet("no FTP client has logged in in this step")

    def pending() -> bool:
        return any(w.protocol == "ftp client" and not w.lost for w in state.wires(client=True))

    return await state.eventually(logged_in, within=3.0, pending=pending)


async def _listed(state: State) -> str:
    def listed() -> str:
        wires = state.wires(client=True)
        data = [w for w in wires if w.protocol == "ftp data" and w.seq > state.since]
        control = [w for w in wires if w.protocol == "ftp client"]
        if data and control:
            asked = [line.split()[0] for line in _lines(control[-1].sent)
                     if line.split()[0] in ("EPSV", "PASV")]
            how = f" ({asked[-1]} told the client where to connect)" if asked else ""
            return (f"the listing came over connection #{data[-1].number} "
                    f"({len(data[-1].received)} bytes), a second one, while "
                    f"#{control[-1].number} carried the commands{how}")
        raise NotYet("no FTP data connection in this step yet")

    def pending() -> bool:
        return any(not d.called for d in state.deferreds())

    return await state.eventually(listed, within=3.0, pending=pending)


LESSON = Lesson(
    11,
    "FTP's two connections",
    "FTP keeps commands and data apart: a control connection carries commands and\n"
    "replies, and each listing or file travels on a connection of its own, made for it.",
    [
        Step(
            "serve the current directory (anonymous, read-only):\n"
            '    srv = ftp.serve(".")',
            _serving,
            'ftp.serve(".") serves the current directory on a free port',
            ['srv = ftp.serve(".")'],
        ),
        Step(
            "log in with the client; this is the control connection:\n"
            '    c = await ftp.connect("127.0.0.1", srv.port)',
            _logged_in,
            'ftp.connect("127.0.0.1", srv.port) logs in as anonymous',
            ['c = await ftp.connect("127.0.0.1", srv.port)'],
        ),
        Step(
            "list the directory: the server opens a port, the client connects to it\n"
            "(passive mode), and the names come over that second connection:\n"
            "    await c.nlst()\n"
            "conns() shows it as 'ftp data for #N' while it lasts.",
            _listed,
            "await c.nlst() on the client you logged in with",
            ["await c.nlst()"],
        ),
    ],
    "trace(srv) shows the commands on the control connection: EPSV, then NLST.",
)

__all__ = ["LESSON"]
