"""The real netsh prompt in a terminal (tmux): the reactor runs while the person types."""

from __future__ import annotations

import platform
import re
import socket
import subprocess

from peers import free_port, require
from terminal import Above, Terminal, last_row, when_go

import netshell


def echo_at_prompt(t: Terminal, port: int) -> None:
    t.wait_prompt(1)
    t.line(f'srv = listen("tcp:{port}", wire.echo_factory())')
    t.wait_prompt(2)


def says_what_it_closed(screen: str, port: int) -> None:
    """The screen says the echo listener on ``port`` was closed (and no connection)."""
    closing = rf"^Closing listener #\d+ \(127\.0\.0\.1:{port}\) \.\.\.$"
    assert re.search(closing, screen, re.M), screen
    assert re.search(r"^Closed 1 listener and 0 connections in \d+\.\d\ds\.$", screen, re.M), screen


def socat_send(port: int, data: bytes) -> bytes:
    require("socat")
    done = subprocess.run(["socat", "-t", "2", "-", f"TCP:127.0.0.1:{port}"], input=data,
                          capture_output=True, timeout=20)
    return done.stdout


def test_banner_names_the_version_and_the_loop(netsh):
    t = netsh()
    screen = t.wait_prompt(1)
    assert re.search(rf"^netsh {re.escape(netshell.__version__)} on Python "
                     rf"{re.escape(platform.python_version())}, loop: asyncio$", screen, re.M)
    assert "help()" in screen


def test_an_echo_server_started_at_the_prompt_serves_another_process_while_idle(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    assert socat_send(port, b"hello from socat\n") == b"hello from socat\n"


def test_a_timed_call_prints_above_a_half_typed_line_which_stays_intact(netsh, tmp_path):
    t = netsh()
    t.wait_prompt(1)
    # The timer prints "fired 42", which it computes: no line typed here holds that text.
    t.line(when_go('print("fi" + "red", 6 * 7)'))
    t.wait_prompt(2)
    t.type("x = 'half typed")
    t.wait_for(r"^\[2\]> x = 'half typed$")
    (tmp_path / "go").touch()  # now the timer fires, while the line is half typed
    screen = t.wait_for(Above("fired 42", r"\[2\]> x = 'half typed"))
    assert last_row(screen, r"\[2\]> .*") == last_row(screen, r"\[2\]> x = 'half typed")
    t.type(" and finished'")
    t.key("Enter")
    t.wait_prompt(3)
    t.line("x")
    t.wait_for(r"^'half typed and finished'$")


def test_ctrl_c_cancels_an_awaiting_line_and_the_server_still_answers(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    # An hour's sleep: if the line ends at all, Ctrl-C ended it.
    t.line('print("sleeping", 60 * 60); await sleep(3600)')
    t.wait_for(r"^sleeping 3600$")  # the line runs as a task: Ctrl-C goes to it now
    t.key("C-c")
    t.wait_for(r"^Cancelled$", timeout=10.0)  # generous on a loaded machine; the sleep was 1 h
    t.wait_prompt(3)
    t.line("len(reactor.delayed_calls)")  # the sleep's timer went with the task
    t.wait_for(r"^\[3\]> len\(reactor\.delayed_calls\)\n0$")
    assert socat_send(port, b"still there\n") == b"still there\n"  # the reactor runs on


def test_ctrl_c_interrupts_plain_code_with_keyboardinterrupt(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("import itertools")
    t.wait_prompt(2)
    t.line('for i in itertools.count(): i or print("spin" + "ning", flush=True)')
    t.wait_for(r"^spinning$")  # the loop runs (as plain code: no await)
    t.key("C-c")
    t.wait_for(r"^KeyboardInterrupt$")
    t.wait_prompt(3)


def test_ctrl_c_at_an_idle_prompt_clears_the_line(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.type("never run this")
    t.wait_for(r"^\[1\]> never run this")
    t.key("C-c")

    def cleared(screen: str) -> bool:
        # The aborted line stays on screen; a fresh, empty [1]> prompt comes below it
        # (the bottom toolbar is the screen's last line, so look for the prompt line).
        lines = [line.rstrip() for line in screen.splitlines()]
        typed = max(i for i, line in enumerate(lines) if line == "[1]> never run this")
        return "[1]>" in lines[typed + 1:]

    t.wait_for(cleared)
    t.line("1 + 1")
    screen = t.wait_for(r"^\[1\]> 1 \+ 1\n2$")
    assert "never run this" not in screen.split("[1]> 1 + 1")[-1]


def test_a_deferred_chain_built_across_three_prompts_fires_with_a_note(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("d = Deferred()")
    t.wait_prompt(2)
    t.line("d.add_callback(lambda x: x * 10)")
    screen = t.wait_prompt(3)
    number = re.search(r"<Deferred #(\d+) pending>", screen).group(1)
    t.line("d.add_callback(lambda x: x + 5)")
    t.wait_prompt(4)
    t.line("dc = reactor.call_later(0.2, d.callback, 4)")
    t.wait_for(rf"^Deferred #{number} fired: 45$")
    t.line(f"_d{number}.result")
    t.wait_for(rf"^\[5\]> _d{number}\.result\n45$")


def test_a_failing_deferred_gives_a_failed_note(netsh):
    t = netsh()
    t.wait_prompt(1)
    port = free_port()  # nobody listens there
    t.line(f'connect("tcp:127.0.0.1:{port}", Protocol)')
    screen = t.wait_for(r"^Deferred #\d+ failed: ")
    assert "Refused" in screen


def test_conns_shows_the_connection_with_its_byte_counts(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"x" * 1234)
        got = b""
        while len(got) < 1234:
            got += s.recv(65536)
        t.line("conns()")
        screen = t.wait_for(r"Echo.*open")
    rows = [line for line in screen.splitlines() if "Echo" in line and "tcp" in line]
    assert rows, screen
    assert re.search(r"1,234\s+1,234", rows[-1]), rows[-1]  # exact: did all 1,234 arrive?
    assert "open" in rows[-1]


def test_trace_shows_a_connections_bytes_as_they_arrive(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    t.line("trace()")
    t.wait_prompt(3)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"traced bytes\r\n")
        assert s.recv(100) == b"traced bytes\r\n"
        screen = t.wait_for(r"out\s+14 B\s+b'traced bytes\\r\\n'")
    assert re.search(r"in\s+14 B\s+b'traced bytes\\r\\n'", screen)
    assert re.search(r"tcp accepted: 127\.0\.0\.1:\d+ <-> 127\.0\.0\.1:\d+ Echo", screen)


def test_explain_tells_the_chain_step_by_step(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("def double(x): return x * 2")
    t.wait_prompt(2)
    t.line("d = Deferred(); _ = d.add_callback(double).add_errback(print); d.callback(4)")
    t.wait_prompt(3)
    t.line("explain(d)")
    screen = t.wait_for(r"^  2\. ")
    assert re.search(r"^  1\. callback double  got 4, returned 8$", screen, re.M)
    assert re.search(r"^  2\. errback print  passed by", screen, re.M)


def test_ctrl_d_closes_what_is_open_exits_0_and_frees_the_port(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    t.key("C-d")
    assert t.exit_status() == 0
    says_what_it_closed(t.screen(), port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free again


def test_exit_with_a_code(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("exit(3)")
    assert t.exit_status() == 3


def test_the_toolbar_counts_listeners_and_f2_hides_it(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    t.wait_for(r"listeners 1 \| connections 0 \| pending Deferreds \d+")
    t.key("F2")
    t.wait_for(lambda s: "listeners 1 |" not in s)
    t.line("6 * 7")  # the prompt is still there, without its toolbar
    screen = t.wait_prompt(3)
    assert re.search(r"^\[2\]> 6 \* 7\n42$", screen, re.M) and "listeners 1 |" not in screen
    t.key("F2")  # and F2 shows it again
    t.wait_for(r"listeners 1 \| connections 0 \|")


def test_history_is_kept_across_sessions(netsh):
    first = netsh()
    first.wait_prompt(1)
    first.line("remembered = 'from the first session'")
    first.wait_prompt(2)
    first.key("C-d")
    assert first.exit_status() == 0
    second = netsh()
    second.wait_prompt(1)
    second.key("Up")
    second.wait_for(r"^\[1\]> remembered = 'from the first session'")


def test_tab_completes_attributes_from_the_live_namespace(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("class Thing: unusual_attribute_name = 1")
    t.wait_prompt(2)
    t.type("Thing.unusual_at")
    t.key("Tab")
    t.wait_for(r"^\[2\]> Thing\.unusual_attribute_name")


def test_help_gives_a_tour_of_the_namespace(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("help()")
    screen = t.wait_for(r"Ctrl-D or exit\(\) closes everything")
    for name in ("listeners()", "conns()", "trace()", "explain(d)", "wire", "basic"):
        assert name in screen


def test_log_records_print_above_the_prompt(netsh, tmp_path):
    t = netsh()
    t.wait_prompt(1)
    t.line(when_go('logging.getLogger("netshell.test").warning("LOGGED-%d", 6 * 7)',
                   "import logging; "))
    t.wait_prompt(2)
    t.type("y = 'typed'")
    t.wait_for(r"^\[2\]> y = 'typed'$")
    (tmp_path / "go").touch()  # the record comes while the prompt shows a typed line
    screen = t.wait_for(Above(r"\d\d:\d\d:\d\d WARNING netshell\.test: LOGGED-42",
                             r"\[2\]> y = 'typed'"))
    assert last_row(screen, r"\[2\]> .*") == last_row(screen, r"\[2\]> y = 'typed'")
    t.key("Enter")
    t.wait_prompt(3)
    t.line("y")
    t.wait_for(r"^\[3\]> y\n'typed'$")


def test_the_toolbar_refreshes_while_idle(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    t.wait_for(r"connections 0 \|")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"abc")
        assert s.recv(10) == b"abc"
        # No key is pressed: the toolbar redraws on its own.
        t.wait_for(r"listeners 1 \| connections 1 \| .*in 3 B \| out 3 B")


def test_history_suggests_a_completion_as_you_type(netsh):
    first = netsh()
    first.wait_prompt(1)
    first.line("suggested_name = 12345")
    first.wait_prompt(2)
    first.key("C-d")
    assert first.exit_status() == 0
    second = netsh()
    second.wait_prompt(1)
    second.type("sugg")
    second.wait_for(r"^\[1\]> suggested_name = 12345")  # the rest shown as a suggestion
    second.key("Right")  # takes it
    second.key("Enter")
    second.wait_prompt(2)
    second.line("suggested_name")
    second.wait_for(r"^12345$")


def test_download_draws_a_progress_bar_at_the_prompt(netsh, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "big.bin").write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    t = netsh()
    t.wait_prompt(1)
    # The bar shows once a transfer has taken SHOW_AFTER seconds (test_shell_progress.py);
    # this one over loopback takes less: drawn from the start here.
    t.line('import netshell.shell.progress; netshell.shell.progress.SHOW_AFTER = 0')
    t.wait_prompt(2)
    t.line(f'site = http.serve({str(site)!r})')
    t.wait_prompt(3)
    t.line('await http.download(f"http://127.0.0.1:{site.port}/big.bin", "copy.bin")')
    screen = t.wait_for(r"^PosixPath\('copy\.bin'\)$")
    assert re.search(r"big\.bin \[#+\] 100% 2\.0 MiB/2\.0 MiB", screen), screen
    assert (tmp_path / "copy.bin").read_bytes() == (site / "big.bin").read_bytes()
    t.wait_prompt(4)
    t.line(f"srv = ftp.serve({str(site)!r}); c = await ftp.connect('127.0.0.1', srv.port)")
    t.wait_prompt(5)
    t.line('await c.download("big.bin", "ftp-copy.bin")')
    screen = t.wait_for(r"^PosixPath\('ftp-copy\.bin'\)$")
    assert re.search(r"^RETR big\.bin \[#+\] 100% 2\.0 MiB/2\.0 MiB", screen, re.M), screen
    # the server's log line (above) says the exact count, as a person checks it
    assert re.search(r"anonymous RETR /big\.bin 2,097,152 bytes in ", screen), screen
    assert (tmp_path / "ftp-copy.bin").read_bytes() == (site / "big.bin").read_bytes()


def test_a_second_ctrl_c_stops_an_awaiting_line_that_blocks_the_loop(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    t.line('import time; await sleep(0); print("bl" + "ocking", flush=True); time.sleep(3600)')
    t.wait_for(r"^blocking$")  # the task runs, and blocks the loop
    t.key("C-c")  # cancels the task, but the task never gives the loop a turn...
    t.wait_for(r"^Still running: the input blocks the loop\. Ctrl-C again interrupts it\.$")
    t.key("C-c")  # ...so the second press interrupts it where it runs
    t.wait_for(r"InputInterrupted: Ctrl-C twice")
    t.wait_prompt(3)
    assert socat_send(port, b"after\n") == b"after\n"


def test_exit_called_by_a_timer_leaves_as_ctrl_d_does(netsh):
    t = netsh()
    port = free_port()
    echo_at_prompt(t, port)
    t.line("dc = reactor.call_later(0.2, exit, 5)")
    assert t.exit_status() == 5
    says_what_it_closed(t.screen(), port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_an_http_server_at_the_prompt_logs_each_request_above_it(netsh, tmp_path):
    (tmp_path / "hello.txt").write_text("hello")
    t = netsh()
    t.wait_prompt(1)
    t.line(f"site = http.serve({str(tmp_path)!r})")
    t.wait_prompt(2)
    t.line('r = await http.get(f"http://127.0.0.1:{site.port}/hello.txt")')
    t.wait_for(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /hello\.txt HTTP/1\.1" 200 5$')
    t.wait_prompt(3)
    t.line("log(False)")
    t.wait_prompt(4)
    t.line('r = await http.get(f"http://127.0.0.1:{site.port}/hello.txt"); r.status')
    screen = t.wait_for(r"^200$")
    assert len(re.findall(r'"GET /hello\.txt HTTP/1\.1" 200 5', screen)) == 1


def test_an_ftp_server_at_the_prompt_logs_logins_and_transfers_above_it(netsh, tmp_path):
    (tmp_path / "hello.txt").write_text("hello")
    t = netsh()
    t.wait_prompt(1)
    t.line(f"srv = ftp.serve({str(tmp_path)!r})")
    t.wait_prompt(2)
    t.line("c = await ftp.connect('127.0.0.1', srv.port); data = await c.retrieve('hello.txt')")
    # the time of day, then the line as it is (no level, no logger): the session's login,
    # then the transfer with its size, each at the start of its line (a transfer this
    # quick draws no progress bar)
    t.wait_for(r"^\d\d:\d\d:\d\d 127\.0\.0\.1 anonymous logged in$")
    t.wait_for(r"^\d\d:\d\d:\d\d 127\.0\.0\.1 anonymous RETR /hello\.txt 5 bytes in [0-9.]+ s "
               r"\(out, binary\) complete$")
    t.wait_prompt(3)
    t.line("log(False)")
    t.wait_prompt(4)
    t.line("data = await c.retrieve('hello.txt'); len(data)")
    screen = t.wait_for(r"^5$")
    assert len(re.findall(r"RETR /hello\.txt 5 bytes", screen)) == 1


def test_an_error_in_a_protocol_callback_is_logged_short_above_the_prompt(netsh, tmp_path):
    # The protocol's data_received raises; the reactor logs it above the prompt without
    # netshell's and asyncio's frames: the person's own frame and the error stay.
    port = free_port()
    t = netsh()
    t.wait_prompt(1)
    t.line("class Boom(Protocol):\n    def data_received(self, data):\n"
           "        raise ValueError(f'bad byte {data[0] * 2}')\n")
    t.wait_prompt(2)
    t.line(f"srv = listen('tcp:{port}', Factory.for_protocol(Boom))")
    t.wait_prompt(3)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"!")  # 33: the error says 66, which nothing here typed
        screen = t.wait_for(r"^ValueError: bad byte 66$")
    assert 'File "<netsh-1>", line 3, in data_received' in screen
    assert "netshell/" not in screen and "asyncio/" not in screen, screen
    t.line("tb()")
    t.wait_for(r"netshell/transport\.py")  # in full: the frames the short form left out


def test_deferreds_lists_the_pending_ones_at_the_prompt(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("a = Deferred(); b = Deferred(); b.add_callback(str); b.add_callback(len)")
    t.wait_prompt(2)
    t.line("c = Deferred(); c.add_callback(lambda _: a); c.callback(None)")
    t.wait_prompt(3)
    t.line("done = Deferred(); done.callback(1); a.number, b.number, c.number, done.number")
    screen = t.wait_for(r"^\(\d+, \d+, \d+, \d+\)$")
    a, b, c, done = map(int, re.findall(r"^\((\d+), (\d+), (\d+), (\d+)\)$", screen, re.M)[-1])
    t.wait_prompt(4)
    t.line("deferreds()")
    screen = t.wait_for(r"^id\s+created at\s+waits on\s+age\s+callbacks$")
    screen = t.wait_prompt(5)
    table = screen[screen.rindex("deferreds()"):]
    rows = {int(m.group(1)): m.group(0)
            for m in re.finditer(r"^#(\d+)\s.*$", table, re.M)}
    assert set(rows) >= {a, b, c} and done not in rows, table
    assert re.search(r"\s2$", rows[b]), rows[b]  # two callbacks wait in b
    assert re.search(rf"#{a}\b", rows[c].split(None, 1)[1]), rows[c]  # c waits on a
