"""What a person sees of a capture: the text diagram, the hexdump, show(msg), the bounds.

The captures are filled through the Capture's methods with stand-in transports; the
clock the texts show is fixed (``clock`` patched) so a whole diagram can be compared line
by line. Jupyter's drawings label their arrows with the same summaries.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from terminal import Terminal, netsh_argv

from netshell.kernel.displays import capture_mermaid, capture_svg
from netshell.shell import namespace
from netshell.shell.console import Console
from netshell.shell.tracing import UNSEEN_OUT, Capture
from netshell.teach import wire
from netshell.teach.wire import FTPReply, HTTPRequest, IRCMessage, show, show_text

SERVER = "127.0.0.1:8000"
CLIENT = "127.0.0.1:50000"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "clock", lambda t: "12:00:00.000")


def conn(number: int = 1, host: str = SERVER, peer: str = CLIENT) -> Any:
    return SimpleNamespace(number=number, host=host, peer=peer, listener=object())


def http_capture() -> Capture:
    cap = Capture()
    t = conn()
    cap.opened(t)
    cap.data(t, "in", b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
    cap.data(t, "out", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5"
                       b"\r\n\r\nhello")
    cap.closed(t, "closed")
    return cap


def test_the_diagram_has_a_column_per_address_and_a_row_per_message() -> None:
    assert str(http_capture().diagram()).splitlines() == [
        "               127.0.0.1:50000    127.0.0.1:8000",
        "                       |                 |",
        "12:00:00.000           |- - - - - - - - >|  connect #1",
        "12:00:00.000           |---------------->|  GET /index.html HTTP/1.1",
        "12:00:00.000           |<----------------|  HTTP/1.1 200 OK (5 B body)",
        "12:00:00.000           |. . . . . . . . .x  #1 closed",  # x: the traced end's close
    ]


def test_an_ftp_data_connection_is_drawn_beside_its_control_connection() -> None:
    cap = Capture()
    control = conn(1, host="127.0.0.1:21")
    data = conn(2, host="127.0.0.1:1025", peer="127.0.0.1:50001")
    cap.opened(control)
    cap.data(control, "out", b"227 Entering Passive Mode (127,0,0,1,4,1).\r\n")
    cap.opened(data)
    cap.data(control, "in", b"RETR a.txt\r\n")
    cap.data(data, "out", b"contents")
    cap.closed(data, "closed")
    cap.data(control, "out", b"226 Transfer complete.\r\n")
    lines = str(cap.diagram(width=160)).splitlines()
    assert lines[0].split() == ["127.0.0.1:50000", "127.0.0.1:21", "127.0.0.1:50001",
                                "127.0.0.1:1025"]
    rows = [line[14:] for line in lines[2:]]
    assert [row.rsplit("  ", 1)[1] for row in rows] == [
        "connect #1", "227 Entering Passive Mode (127,0,0,1,4,1).", "connect #2",
        "RETR a.txt", "data 8 B b'contents'", "#2 closed", "226 Transfer complete."]
    # the data connection's arrows run between its own two columns
    assert rows[4].index("<") > rows[1].index("|", rows[1].index("<") + 1)


def test_a_width_cuts_the_summaries() -> None:
    lines = str(http_capture().diagram(width=50)).splitlines()
    assert max(len(line) for line in lines) <= 50
    assert lines[3].endswith("|  GET...")


def test_an_empty_capture_says_so() -> None:
    assert repr(Capture().diagram()) == "(nothing captured yet: everything)"


def test_the_hexdump_has_each_message_under_a_line_saying_what_it_is() -> None:
    cap = Capture()
    t = conn()
    cap.data(t, "in", b"ABCDEFGHIJKLMNOPQ")
    cap.events.append(cap.events[-1]._replace(data=b"", size=5000, note=UNSEEN_OUT,
                                              direction="out", source=SERVER, dest=CLIENT))
    assert repr(cap.hexdump()).splitlines() == [
        f"12:00:00.000 #1 {CLIENT} -> {SERVER} 17 B",
        "00000000  41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP",
        "00000010  51                                               Q",
        f"12:00:00.000 #1 {SERVER} -> {CLIENT} 5,000 B (0 kept) ({UNSEEN_OUT})",
    ]
    assert repr(Capture().hexdump()) == "(no bytes captured)"


def test_show_prints_an_http_request_field_by_field(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    request = http_capture().messages()[0]
    assert isinstance(request, HTTPRequest)
    show(request)
    assert capsys.readouterr().out.splitlines() == [
        "###[ HTTP request ]###",
        f"  time        = 12:00:00.000 ({request.time:.6f})",
        "  connection  = #1",
        f"  from        = {CLIENT}",
        f"  to          = {SERVER}",
        "  method      = GET",
        "  target      = /index.html",
        "  version     = HTTP/1.1",
        "  headers",
        "    Host = a",
        "  body        = 0 B",
    ]


def test_show_prints_ftp_and_irc_messages_and_bytes() -> None:
    cap = Capture()
    t = conn(host="127.0.0.1:6667")
    cap.data(t, "in", b"@label=1 :me!u@h PRIVMSG #c :hi there\r\n")
    (irc,) = cap.messages()
    assert isinstance(irc, IRCMessage)
    assert show_text(irc).splitlines()[5:] == [
        "  tags", "    label = 1", "  prefix      = me!u@h", "  command     = PRIVMSG",
        "  params      = ['#c', 'hi there']"]
    cap = Capture()
    t = conn(host="127.0.0.1:21")
    cap.data(t, "out", b"211-Features:\r\n SIZE\r\n211 End\r\n")
    (reply,) = cap.messages()
    assert isinstance(reply, FTPReply)
    assert show_text(reply).splitlines()[0] == "###[ FTP reply ]###"
    assert show_text(reply).splitlines()[5:] == [
        "  code        = 211", "  text", "    [0] = Features:", "    [1] =  SIZE",
        "    [2] = End"]
    assert show_text(cap.messages("raw")).splitlines()[5:] == [
        "  size        = 31 B", "  data        = b'211-Features:\\r\\n SIZE\\r\\n211 End\\r\\n'"]


def test_show_takes_a_capture_or_a_list_and_refuses_anything_else() -> None:
    cap = http_capture()
    text = show_text(cap)
    assert text.count("###[") == 2 and "\n\n###[ HTTP response ]###" in text
    assert show_text(cap.messages()) == text
    with pytest.raises(TypeError, match=r"show\(\) prints a message of a capture"):
        show_text(b"GET /")


def test_show_is_at_the_prompt_and_prints_through_its_output() -> None:
    shown: list[str] = []
    names = namespace.build(Console({}, out=shown.append), out=shown.append)
    try:
        names["show"](http_capture().messages()[1])
    finally:
        names["_helpers"].tracer.stop()
    assert shown[0].splitlines()[0] == "###[ HTTP response ]###"
    assert "cap.diagram(), show(msg)" in names["_helpers"].tour()


def test_a_capture_keeps_whole_messages_up_to_its_budget_then_their_first_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cap = Capture()
    monkeypatch.setattr(cap, "max_bytes", 25)
    monkeypatch.setattr(cap, "snap", 4)
    t = conn()
    for data in (b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10):
        cap.data(t, "out", data)
    kept = [(e.data, e.size) for e in cap.events if e.kind == "data"]
    assert kept == [(b"a" * 10, 10), (b"b" * 10, 10), (b"cccc", 10), (b"dddd", 10)]
    assert cap.kept == 25  # the budget: spent, and no more


def test_jupyter_draws_the_same_summaries() -> None:
    cap = http_capture()
    svg = ET.fromstring(capture_svg(cap))
    titles = [g.findtext("{http://www.w3.org/2000/svg}title") for g in
              svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "message"]
    assert titles == ["GET /index.html HTTP/1.1", "HTTP/1.1 200 OK (5 B body)"]
    assert capture_mermaid(cap).splitlines()[4:6] == [
        "    P1->>P2: GET /index.html HTTP/1.1", "    P2->>P1: HTTP/1.1 200 OK (5 B body)"]
    bundle = cap.diagram()._repr_mimebundle_()
    assert bundle["text/plain"].splitlines()[0].split() == [CLIENT, SERVER]
    assert bundle["image/svg+xml"].startswith("<svg")


# ---- at the real prompt

ROOT = Path(__file__).resolve().parents[2]


def test_at_the_netsh_prompt_a_trace_is_drawn_and_its_messages_shown(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    t = Terminal(netsh_argv(), env=env, cwd=str(tmp_path))
    try:
        t.wait_prompt(1)
        t.line("import netshell; print('CODE', netshell.__file__)")
        screen = t.wait_prompt(2)
        assert f"CODE {ROOT / 'netshell' / '__init__.py'}" in screen  # this checkout's
        t.line('srv = http.serve(lambda request: "hi\\n"); log(False)')
        t.wait_prompt(3)
        t.line("cap = trace(srv, payload=False)")
        t.wait_prompt(4)
        t.line('r = await http.get(f"http://127.0.0.1:{srv.port}/wire")')
        t.wait_prompt(5)
        t.line("untrace(); cap.diagram()")
        screen = t.wait_for(r"\|<-+\|  HTTP/1\.1 200 OK \(3 B body\)$")
        assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} +\|-+>\|  GET /wire HTTP/1\.1$", screen,
                         re.M), screen
        t.wait_prompt(6)
        t.line("show(cap.messages()[0])")
        screen = t.wait_for(r"^  target      = /wire$")
        assert "###[ HTTP request ]###" in screen
        t.wait_prompt(7)
    finally:
        t.close()


def test_what_peers_said_reaches_the_terminal_escaped() -> None:
    # An IRC message, an FTP reply, an HTTP response and bytes that are not HTTP, each
    # with control characters (a terminal title set, a bell, a bidi override): escaped in
    # the diagram, the message list, each message's repr, show() and the capture's text.
    t = SimpleNamespace(number=1, host="127.0.0.1:6667", peer="127.0.0.1:50000",
                        listener=object(), protocol=None, tls=None, bytes_sent=0,
                        bytes_received=0)
    cap = Capture()
    cap.opened(t)
    cap.data(t, "in", b"NICK n\r\n")
    cap.data(t, "out", b":s PRIVMSG #t :\x1b]0;pwn\x07\r\n")
    f = SimpleNamespace(**{**vars(t), "number": 2, "host": "127.0.0.1:21"})
    cap.opened(f)
    cap.data(f, "out", b"220 \x1b[2Jhi\xe2\x80\xae\r\n")
    h = SimpleNamespace(**{**vars(t), "number": 3, "host": "127.0.0.1:80"})
    cap.opened(h)
    cap.data(h, "in", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    # (HTTP takes no C0 control in a field, but obs-text: C1 controls, as CSI \x9b)
    cap.data(h, "out", b"HTTP/1.1 200 O\x9bK\r\nX-A: \x9b31m\r\nContent-Length: 0\r\n\r\n"
                       b"\x1b]2;x\x07\r\n")
    messages = cap.messages()
    texts = [str(cap.diagram()), str(cap.diagram(width=300)), repr(messages),
             *(repr(m) for m in messages), show_text(messages), repr(cap)]
    for text in texts:
        assert not any(c in text for c in "\x1b\x07\u202e\x9b"), text
    assert "\\x1b]0;pwn\\x07" in str(cap.diagram(width=300))
    assert "220 \\x1b[2Jhi\\u202e" in repr(messages)
    assert "HTTP/1.1 200 O\\x9bK" in str(cap.diagram(width=300))
    assert re.search(r"X-A += \\x9b31m", show_text(messages[-2]))


def test_the_hexdump_is_bounded_and_says_what_it_left_out() -> None:
    t = SimpleNamespace(number=1, host="127.0.0.1:9999", peer="127.0.0.1:50000",
                        listener=object(), protocol=None, tls=None, bytes_sent=0,
                        bytes_received=0)
    cap = Capture()
    cap.opened(t)
    cap.data(t, "out", bytes(100_000))
    for _ in range(100):
        cap.data(t, "in", b"y" * 1000)
    dump = str(cap.hexdump())
    rows = [line for line in dump.splitlines() if re.match(r"[0-9a-f]{8}  ", line)]
    assert sum(len(row[10:58].split()) for row in rows) == 64 * 1024  # 64 KiB in all
    assert "... 98,976 B more of it not dumped" in dump  # 1 KiB of the 100,000
    assert "... 488 B more of it not dumped" in dump  # the last 512 B of the budget
    assert "... 35 more messages (35,000 B) not dumped" in dump
    assert dump.endswith("(134,464 B left out: hexdump(each=None, total=None) dumps every "
                         "byte kept)")
    whole = str(cap.hexdump(each=None, total=None))
    assert "left out" not in whole and "not dumped" not in whole
    assert sum(len(row[10:58].split()) for row in whole.splitlines()
               if re.match(r"[0-9a-f]{8}  ", row)) == 200_000
    assert "not dumped" not in str(cap.hexdump(each=100_000, total=200_000))


def many_parties() -> Capture:
    """Six clients of one HTTP server: seven addresses."""
    cap = Capture()
    for n in range(1, 7):
        t = conn(n, host="127.0.0.1:8000", peer=f"127.0.0.1:5000{n}")
        cap.opened(t)
        cap.data(t, "in", f"GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return cap


def test_a_diagram_too_wide_for_its_width_says_which_addresses_share_a_column() -> None:
    lines = str(many_parties().diagram(width=112)).splitlines()
    assert max(len(line) for line in lines) <= 112
    assert lines[0].split() == ["127.0.0.1:50001", "127.0.0.1:8000", "127.0.0.1:50002",
                                "(4", "more)"]
    footer = " ".join(line for line in lines if not line.startswith(("12:", " ")))
    assert footer.startswith("(4 addresses share the last column, 112 characters being too")
    assert all(f"127.0.0.1:5000{n}" in footer for n in range(3, 7))
    # a row to or from one of them names its ends
    assert any(re.search(r"<-+\|  127\.0\.0\.1:50004: GET /4 HTTP/1\.1$", line)
               for line in lines)
    assert "GET /1 HTTP/1.1" in lines[3]


def test_without_a_width_the_diagram_fits_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")  # what shutil.get_terminal_size asks first
    narrow = str(many_parties().diagram()).splitlines()
    assert max(len(line) for line in narrow) <= 60
    assert "(6 more)" in narrow[0]
    monkeypatch.setenv("COLUMNS", "200")
    wide = str(many_parties().diagram()).splitlines()
    assert len(wide[0].split()) == 7 and "more" not in wide[0]
    assert max(len(line) for line in wide) <= 200


async def test_show_prints_what_http_get_fired_with(tmp_path: Path) -> None:
    from protocols import http

    (tmp_path / "a.txt").write_text("hello\n")
    srv = http.serve(str(tmp_path))
    try:
        r = await http.get(f"http://127.0.0.1:{srv.port}/a.txt")
    finally:
        await srv.close()
    lines = show_text(r).splitlines()
    assert lines[:5] == ["###[ HTTP response ]###",
                         f"  url         = http://127.0.0.1:{srv.port}/a.txt",
                         "  version     = HTTP/1.1", "  status      = 200",
                         "  reason      = OK"]
    assert lines[5] == "  headers" and any(
        re.fullmatch(r"    Content-Length += 6", line) for line in lines)
    assert lines[-1] == "  body        = 6 B"
    from protocols.http.message import Request

    request = Request("POST", "/x", {"Host": "a"}, b"abc")  # type: ignore[arg-type]
    assert show_text(request).splitlines() == [
        "###[ HTTP request ]###", "  method      = POST", "  target      = /x",
        "  version     = HTTP/1.1", "  headers", "    Host = a", "  body        = 3 B"]
