"""A session at the real prompt, saved, replayed headless, and compared with ``netsh diff``."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from terminal import Terminal, netsh_argv

WAIT = 60


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def test_a_saved_session_replays_headless_and_the_transcripts_agree(tmp_path, state):
    t = Terminal(netsh_argv(), env={"XDG_STATE_HOME": str(state)}, cwd=str(tmp_path))
    try:
        t.wait_prompt(1)
        t.line('srv = listen("tcp:0", wire.echo_factory())')
        t.wait_prompt(2)
        t.line("class Client(Protocol):")
        t.line("def data_received(self, data):")
        t.line('print("client got", data)')
        t.key("Enter")
        t.key("Enter")
        t.wait_prompt(3)
        t.line('d = connect(f"tcp:127.0.0.1:{srv.port}", Client)'
               '.add_callback(lambda p: p.transport.write(b"hello\\n") or "sent"); d')
        t.wait_for(r"^<Deferred #\d+ pending>$")
        t.wait_for(r"^Deferred #\d+ fired: 'sent'$")
        t.wait_for(r"^client got b'hello\\n'$")
        t.line("conns()")
        t.wait_for(r"Client\s+open")
        t.line("1 / 0")  # an error: not saved
        t.wait_for(r"^ZeroDivisionError")
        t.line("explain(d)")
        t.wait_for(r"^  1\. callback <lambda>")
        t.line('save("demo.py")')
        t.wait_for(r"^saved \d+ cells to demo\.py")
        t.key("C-d")
        assert t.exit_status() == 0
    finally:
        t.close()

    script = (tmp_path / "demo.py").read_text()
    assert "# %%" in script
    assert "\n# conns()\n" in script and "\n# explain(d)\n" in script  # inspections: comments
    assert "1 / 0" not in script and 'save("demo.py")' not in script.replace('# save("demo', "")
    sessions = list((state / "netshell" / "sessions").glob("*.jsonl"))
    assert len(sessions) == 1
    entries = [json.loads(line) for line in sessions[0].read_text().splitlines()]
    assert entries[0]["type"] == "session"
    assert any(e["type"] == "note" for e in entries)
    assert [e["error"] is not None for e in entries if e["type"] == "input"].count(True) == 1

    replay = tmp_path / "replay.jsonl"
    done = subprocess.run(netsh_argv("run", "--exit", "--transcript", str(replay), "demo.py"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^Deferred #\d+ fired: 'sent'$", done.stdout, re.M)
    assert "client got b'hello\\n'" in done.stdout
    agree = subprocess.run(netsh_argv("diff", str(sessions[0]), str(replay)),
                           capture_output=True, text=True, timeout=WAIT)
    assert agree.returncode == 0, agree.stdout


def _input(source: str, kind: str = "code") -> dict:
    return {"type": "input", "n": 1, "input": source, "kind": kind, "output": "",
            "error": None, "time": 0.0, "duration": 0.0}


def test_a_saved_session_has_no_whitespace_only_lines_from_auto_indent() -> None:
    from netshell.shell.session import script_text

    typed = "class Echo(Protocol):\n    def data_received(self, data):\n        pass\n    \n    \n"
    text = script_text([_input(typed)], stamp="now")
    assert [line for line in text.splitlines() if line and not line.strip()] == []
    assert text.endswith("class Echo(Protocol):\n    def data_received(self, data):\n"
                         "        pass\n")


def test_a_whitespace_only_line_inside_a_string_is_kept() -> None:
    from netshell.shell.session import script_text

    typed = 's = """one\n    \ntwo"""\n    '
    text = script_text([_input(typed)], stamp="now")
    assert 's = """one\n    \ntwo"""' in text
