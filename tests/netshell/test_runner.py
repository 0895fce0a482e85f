"""``netsh run``, ``-c``, ``serve`` and ``diff`` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import textwrap

import pytest
from peers import free_port, require
from terminal import netsh_argv

WAIT = 30


def netsh(*args: str, stdin: str | None = None, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(netsh_argv(*args), input=stdin, capture_output=True, text=True,
                          timeout=WAIT, cwd=cwd, env=env)


def write(path, text: str):
    path.write_text(textwrap.dedent(text))
    return path


def test_run_gives_the_script_its_argv_and_exits_0(tmp_path):
    script = write(tmp_path / "argv.py", "import sys\nprint(sys.argv)\n")
    done = netsh("run", str(script), "one", "--two")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr([str(script), "one", "--two"])


def test_top_level_await_works_in_a_script(tmp_path):
    script = write(tmp_path / "aw.py", """\
        value = await gather(sleep(0.01), succeed(5))
        print("awaited", value[1])
    """)
    done = netsh("run", str(script))
    assert (done.returncode, done.stdout) == (0, "awaited 5\n"), done.stderr


def test_a_script_that_raises_exits_1_with_its_own_line_number(tmp_path):
    script = write(tmp_path / "boom.py", """\
        x = 1

        def explode():
            raise ValueError("boom at line 4")

        explode()
    """)
    done = netsh("run", str(script))
    assert done.returncode == 1
    assert f'File "{script}", line 4, in explode' in done.stderr
    assert f'File "{script}", line 6, in <module>' in done.stderr
    assert "ValueError: boom at line 4" in done.stderr
    assert "runner.py" not in done.stderr  # no frames of ours


def test_a_cell_script_that_raises_exits_1_with_the_files_line_number(tmp_path):
    script = write(tmp_path / "cells.py", """\
        # %%
        a = 1
        # %%
        b = 2
        # %%
        c = undefined_name
        # %%
        print("never")
    """)
    done = netsh("run", "--exit", str(script))
    assert done.returncode == 1
    assert f'File "{script}", line 6' in done.stdout + done.stderr
    assert "never" not in done.stdout


def test_a_syntax_error_exits_1_and_names_the_line(tmp_path):
    script = write(tmp_path / "bad.py", "x = 1\ny = (\n")
    done = netsh("run", str(script))
    assert done.returncode == 1
    assert "SyntaxError" in done.stderr and "line 2" in done.stderr


def test_exit_with_a_code_in_a_script(tmp_path):
    script = write(tmp_path / "ex.py", "raise SystemExit(7)\n")
    assert netsh("run", str(script)).returncode == 7


def test_usage_errors_exit_2():
    assert netsh("run").returncode == 2
    assert netsh("--no-such-option").returncode == 2
    done = netsh("run", "/nonexistent/script.py")
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_run_dash_reads_the_script_from_stdin():
    done = netsh("run", "-", "x", stdin="import sys\nprint('from stdin', sys.argv)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from stdin ['-', 'x']\n"


def test_dash_c_runs_code_with_top_level_await():
    done = netsh("-c", "await sleep(0.01); print('c works', wire.Echo.__name__)")
    assert (done.returncode, done.stdout) == (0, "c works Echo\n"), done.stderr


def test_dash_c_errors_exit_1():
    done = netsh("-c", "1/0")
    assert done.returncode == 1 and "ZeroDivisionError" in done.stderr


def test_the_headless_path_imports_neither_ipython_nor_prompt_toolkit(tmp_path):
    script = write(tmp_path / "mods.py", """\
        import sys
        print(sorted(m for m in ("IPython", "prompt_toolkit", "jedi", "pygments")
                     if m in sys.modules))
    """)
    done = netsh("run", str(script))
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
    done = netsh("-c", "import sys; print('IPython' in sys.modules, "
                       "'prompt_toolkit' in sys.modules)")
    assert done.stdout.strip() == "False False"


def test_exit_flag_stops_with_listeners_open(tmp_path):
    script = write(tmp_path / "l.py", "srv = listen('tcp:0', wire.echo_factory())\nprint('up')\n")
    done = netsh("run", "--exit", str(script))
    assert (done.returncode, done.stdout) == (0, "up\n"), done.stderr


def test_cells_settle_so_a_timed_note_appears_as_at_the_prompt(tmp_path):
    script = write(tmp_path / "notes.py", """\
        # %%
        d = Deferred()
        # %%
        d.add_callback(lambda x: x * 3)
        # %%
        dc = reactor.call_later(0.2, d.callback, 5)
        # %%
        print("after", d.result)
    """)
    done = netsh("run", "--exit", str(script))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"<Deferred #\d+ pending>", lines[0])
    assert re.fullmatch(r"Deferred #\d+ fired: 15", lines[1])
    assert lines[2] == "after 15"


def start(script, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen(netsh_argv("run", *args, str(script)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


SLOW_SERVER = """\
    class Slow(Protocol):
        # Answers the question when the client says "go": the answer comes once the test
        # has seen the shutdown notice, whatever the machine's load.
        question = b""

        def data_received(self, data):
            if data == b"go\\n":
                self.transport.write(b"answer:" + self.question)
                self.transport.close()
                return
            self.question = data
            print("GOT", data.decode().strip(), flush=True)

    reactor.on_shutdown(print, "HOOK RAN", flush=True)
    srv = listen("tcp:0", Slow)
    print("PORT", srv.port, flush=True)
"""


def read_port(proc) -> int:
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line + proc.stderr.read()
    return int(line.split()[1])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_serving_closes_the_listener_and_lets_a_request_finish(tmp_path, sig,
                                                                                code):
    script = write(tmp_path / "slow.py", SLOW_SERVER)
    proc = start(script, "--grace", "10")
    try:
        port = read_port(proc)
        assert "serving on" in proc.stderr.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
            client.sendall(b"question\n")
            assert proc.stdout.readline() == "GOT question\n"
            proc.send_signal(sig)
            assert "send it again to leave at once" in proc.stderr.readline()
            notice = proc.stderr.readline()
            assert "stopped listening" in notice and "1 connection" in notice, notice
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            client.sendall(b"go\n")  # the request under way finishes within the grace
            answer = b""
            while chunk := client.recv(100):
                answer += chunk
        assert answer == b"answer:question\n"
        assert proc.wait(WAIT) == code
        assert "HOOK RAN" in proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()


def test_serve_echo_prints_its_address_serves_and_stops_on_sigint():
    require("socat")
    port = free_port()
    proc = subprocess.Popen(netsh_argv("serve", "echo", "--port", str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == f"Serving ECHO on 127.0.0.1 port {port} ..."
        done = subprocess.run(["socat", "-t", "2", "-", f"TCP:127.0.0.1:{port}"],
                              input=b"served\n", capture_output=True, timeout=WAIT)
        assert done.stdout == b"served\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("service", ["daytime", "qotd", "chargen", "discard"])
def test_serve_knows_the_small_services(service):
    proc = subprocess.Popen(netsh_argv("serve", service, "--port", "0"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(rf"Serving {service.upper()} on 127\.0\.0\.1 port (\d+) \.\.\.\n", line)
        assert m, line + proc.stderr.read()
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=WAIT) as s:
            if service == "discard":
                s.sendall(b"gone")
            else:
                assert s.recv(100)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 143
    finally:
        proc.kill()
        proc.wait()


def test_serve_http_serves_a_directory_to_curl(tmp_path):
    require("curl")
    (tmp_path / "page.txt").write_text("static page\n")
    proc = subprocess.Popen(netsh_argv("serve", "http", str(tmp_path), "--port", "0"),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"Serving HTTP on 127\.0\.0\.1 port (\d+) \(http://\S+/\) \.\.\.\n", line)
        assert m, line + proc.stderr.read()
        base = f"http://127.0.0.1:{m.group(1)}"
        done = subprocess.run(["curl", "-sS", f"{base}/page.txt", f"{base}/"],
                              capture_output=True, text=True, timeout=WAIT)
        assert done.stdout.startswith("static page\n")
        assert '<a href="page.txt">page.txt</a>' in done.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 143
    finally:
        proc.kill()
        proc.wait()


def test_serve_http_refuses_a_missing_directory(tmp_path):
    done = netsh("serve", "http", str(tmp_path / "nope"))
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_serve_rejects_an_unknown_service():
    done = netsh("serve", "gopher")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_log_level_shows_records_with_timestamps_on_stderr(tmp_path):
    script = write(tmp_path / "log.py", """\
        import logging
        logging.getLogger("netshell.demo").info("an info record")
        logging.getLogger("netshell.demo").debug("a debug record")
    """)
    done = netsh("run", "--log-level", "INFO", str(script))
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO netshell\.demo: an info record$",
                     done.stderr, re.M), done.stderr
    assert "a debug record" not in done.stderr
    assert "an info record" not in netsh("run", str(script)).stderr


def test_quiet_leaves_only_errors(tmp_path):
    script = write(tmp_path / "q.py", """\
        import logging
        logging.getLogger("netshell.demo").warning("a warning")
        logging.getLogger("netshell.demo").error("an error")
    """)
    done = netsh("run", "--quiet", str(script))
    assert "a warning" not in done.stderr and "an error" in done.stderr


def test_help_has_an_example_per_subcommand():
    out = netsh("--help").stdout
    for example in ("netsh run", "netsh -c", "netsh serve", "netsh diff", "netsh --ipython"):
        assert example in out
    for sub in ("run", "serve", "diff"):
        assert re.search(rf"examples?: netsh {sub}", netsh(sub, "--help").stdout)


def test_version():
    import netshell

    assert netsh("--version").stdout.strip() == f"netsh {netshell.__version__}"


def test_transcript_and_diff(tmp_path):
    script = write(tmp_path / "t.py", """\
        # %%
        x = 20 + 1
        # %%
        x * 2
    """)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert netsh("run", "--transcript", str(first), str(script)).returncode == 0
    entries = [json.loads(line) for line in first.read_text().splitlines()]
    inputs = [e for e in entries if e["type"] == "input"]
    assert [e["input"] for e in inputs] == ["x = 20 + 1\n", "x * 2\n"]
    assert inputs[1]["output"] == "42\n" and inputs[1]["error"] is None
    assert {"time", "duration", "n", "kind"} <= set(inputs[0])
    assert netsh("run", "--transcript", str(second), str(script)).returncode == 0
    same = netsh("diff", str(first), str(second))
    assert same.returncode == 0 and "agree" in same.stdout
    write(script, "# %%\nx = 20 + 1\n# %%\nx * 3\n")
    assert netsh("run", "--transcript", str(second), str(script)).returncode == 0
    differ = netsh("diff", str(first), str(second))
    assert differ.returncode == 1
    assert "->>> x * 2" in differ.stdout and "+>>> x * 3" in differ.stdout
    assert "-42" in differ.stdout and "+63" in differ.stdout


def test_diff_of_a_broken_transcript_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    done = netsh("diff", str(bad), str(bad))
    assert done.returncode == 2 and "line 1" in done.stderr


def test_uvloop_flag_runs_on_uvloop():
    pytest.importorskip("uvloop")
    done = netsh("--uvloop", "-c", "print(reactor.loop_name)")
    assert done.stdout.strip() == "uvloop", done.stderr


SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "..", "scripts")


# ---- found by review


def test_a_script_that_blocks_the_loop_still_stops_on_a_second_sigint(tmp_path):
    script = write(tmp_path / "busy.py", """\
        import time
        print("busy", flush=True)
        while True:
            time.sleep(0.05)
    """)
    proc = subprocess.Popen(netsh_argv("run", str(script)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "busy\n"
        proc.send_signal(signal.SIGINT)  # asks the loop, which is not listening...
        assert "stopping" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)  # ...so the second one leaves from where it runs
        assert proc.wait(WAIT) == 130
    finally:
        proc.kill()
        proc.wait()


def test_sys_exit_after_an_await_still_shuts_down_gracefully(tmp_path):
    script = write(tmp_path / "ex.py", """\
        import sys
        async def hook():
            await sleep(0.05)
            print("hook finished", flush=True)
        reactor.on_shutdown(hook)
        await sleep(0.01)
        sys.exit(4)
    """)
    done = netsh("run", str(script))
    assert done.returncode == 4
    assert done.stdout == "hook finished\n"
    assert "destroyed" not in done.stderr


def test_a_cells_traceback_goes_to_stderr(tmp_path):
    script = write(tmp_path / "c.py", "# %%\nx = 1\n# %%\nraise ValueError('in a cell')\n")
    done = netsh("run", "--exit", str(script))
    assert done.returncode == 1
    assert "ValueError: in a cell" in done.stderr and "ValueError" not in done.stdout


def test_a_syntax_error_shows_none_of_netshs_frames(tmp_path):
    script = write(tmp_path / "bad.py", "x = (\n")
    done = netsh("run", str(script))
    assert done.returncode == 1
    assert "netshell" not in done.stderr and "SyntaxError" in done.stderr


def test_a_plain_scripts_transcript_has_a_header_and_one_entry(tmp_path):
    script = write(tmp_path / "p.py", "print('plain')\n")
    out = tmp_path / "t.jsonl"
    assert netsh("run", "--transcript", str(out), str(script)).returncode == 0
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["type"] for e in entries] == ["session", "input"]
    assert entries[0]["kind"] == "run" and entries[1]["input"] == "print('plain')\n"


def test_notes_in_a_replay_match_the_prompt_when_callbacks_come_later(tmp_path):
    script = write(tmp_path / "n.py", """\
        # %%
        d = Deferred(); d
        # %%
        d.add_callback(lambda x: x * 2)
        # %%
        d.callback(21)
    """)
    done = netsh("run", "--exit", str(script))
    assert re.search(r"^Deferred #\d+ fired: 42$", done.stdout, re.M), done.stdout


@pytest.mark.parametrize("before", [True, False])
def test_options_count_before_and_after_the_subcommand(tmp_path, before):
    script = write(tmp_path / "lvl.py", """\
        import logging
        logging.getLogger("netshell.demo").info("info shown")
        print(reactor.loop_name)
    """)
    options = ["--log-level", "INFO", "--uvloop"]
    argv = [*options, "run", str(script)] if before else ["run", *options, str(script)]
    done = netsh(*argv)
    assert "info shown" in done.stderr and done.stdout.strip() == "uvloop", done


def test_serve_on_a_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = netsh("serve", "echo", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"netsh serve echo: cannot listen on 127.0.0.1:{port}: address already in use"
        "; --port 0 picks any free port"
    ]


def test_serve_refuses_a_port_out_of_range():
    done = netsh("serve", "echo", "--port", "99999")
    assert done.returncode == 2 and "0 to 65535" in done.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "not a transcript entry"),
        ('{"type": "input"}', "without its 'input'"),
        ('{"type": "note"}', "without its 'text'"),
    ],
)
def test_diff_of_valid_json_that_is_no_transcript_is_a_usage_error(tmp_path, line, message):
    bad = tmp_path / "odd.jsonl"
    bad.write_text(line + "\n")
    done = netsh("diff", str(bad), str(bad))
    assert done.returncode == 2 and message in done.stderr and "odd.jsonl" in done.stderr


def test_diff_accepts_a_null_output(tmp_path):
    t = tmp_path / "t.jsonl"
    t.write_text('{"type": "input", "input": "x = 1", "output": null, "kind": "code"}\n')
    assert netsh("diff", str(t), str(t)).returncode == 0


def test_a_cell_marker_inside_a_string_is_not_a_cell(tmp_path):
    script = write(tmp_path / "s.py", '# %%\ns = """\n# %% not a cell\n"""\n# %%\nprint(s)\n')
    done = netsh("run", "--exit", str(script))
    assert done.returncode == 0, done.stderr
    assert "# %% not a cell" in done.stdout


@pytest.mark.parametrize(
    "data",
    ['# -*- coding: latin-1 -*-\nprint("caf\xe9")\n'.encode("latin-1"),
     b'\xef\xbb\xbfprint("caf\xc3\xa9")\n'],
)
def test_scripts_are_read_as_python_reads_them(tmp_path, data):
    script = tmp_path / "enc.py"
    script.write_bytes(data)
    done = netsh("run", str(script))
    assert (done.returncode, done.stdout) == (0, "café\n"), done.stderr


def test_sys_exit_in_a_callback_still_shuts_down_gracefully(tmp_path):
    script = write(tmp_path / "cb.py", """\
        import sys
        reactor.on_shutdown(print, "hook ran", flush=True)
        srv = listen("tcp:0", wire.echo_factory())
        dc = reactor.call_later(0.05, sys.exit, 3)
    """)
    done = netsh("run", str(script))
    assert done.returncode == 3 and done.stdout == "hook ran\n", done
