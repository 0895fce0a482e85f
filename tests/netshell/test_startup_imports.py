"""What the netsh prompt has loaded when it is first drawn: only what that prompt needs.

The heavy modules (pyOpenSSL and cryptography behind ``tls``, the HTTP library behind
``http``, IPython, jedi, hypothesis) wait until they are used: the namespace offers ``tls`` and
the protocol modules as lazily loaded modules. These tests fail when an eager import comes
back, or when something that looks at every object (the toolbar's count of pending
Deferreds walks the heap) makes those lazy modules load themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.lexers import Lexer, SimpleLexer
from terminal import Terminal, netsh_argv

from netshell.shell.lexer import LaterLexer, python_lexer

#: Never loaded before the first prompt is drawn (nor by the first input that uses none).
HEAVY = (
    "OpenSSL",
    "cryptography",
    "IPython",
    "jedi",
    "hypothesis",
    "protocols.http.server",
    "protocols.http.client",
    "netshell.kernel",
)

#: Loaded after the first prompt is drawn, in a thread: the highlighting.
AFTER_THE_PROMPT = ("pygments", "pygments.lexers.python")

#: In the namespace by name, loaded on first use: present in sys.modules, not yet run.
LAZY = ("netshell.tls", "protocols.http", "protocols.wire", "protocols.basic")

# One line of netsh code: for each name, what sys.modules holds ("module" once it has run,
# "_LazyModule" before, "NoneType" when absent). type() asks the object nothing, so
# looking does not load.
def state_of(names: tuple[str, ...]) -> str:
    return ('import sys as _s, json as _j; print("STATE", _j.dumps({m: type(_s.modules.get(m))'
            f'.__name__ for m in {names!r}}}))')


def states(text: str) -> dict[str, str]:
    found = re.findall(r"^STATE (\{.*\})$", text, re.M)
    assert found, text
    return dict(json.loads(found[-1]))


@pytest.fixture
def netsh(tmp_path):
    terms: list[Terminal] = []

    def start() -> Terminal:
        t = Terminal(netsh_argv(), env={"XDG_STATE_HOME": str(tmp_path / "state")},
                     cwd=str(tmp_path))
        terms.append(t)
        return t

    yield start
    for t in terms:
        t.close()


def test_the_drawn_prompt_has_loaded_none_of_the_heavy_modules(netsh):
    t = netsh()
    # The toolbar is drawn once the terminal has told prompt_toolkit its size, and drawing
    # it counts the pending Deferreds (a walk of the heap): the first prompt, complete.
    t.wait_prompt(1)
    t.wait_for(r"pending Deferreds \d+ .*F2 hides")
    t.line(state_of(HEAVY + LAZY))
    seen = states(t.wait_for(r"^STATE \{.*\}$"))
    assert {m: s for m, s in seen.items() if m in HEAVY and s != "NoneType"} == {}
    assert {m: seen[m] for m in LAZY} == dict.fromkeys(LAZY, "_LazyModule")
    # Still there by name, and the first use loads them.
    t.wait_prompt(2)
    t.line('_d = dir(); print("NAMES", sorted(n for n in ("tls", "http", "wire") if n in _d), '
           'callable(http.serve), tls.__name__)')
    # print() writes piece by piece: wait for the line's end.
    screen = t.wait_for(r"^NAMES .* netshell\.tls$")
    assert re.search(r"^NAMES \['http', 'tls', 'wire'\] True netshell\.tls$", screen, re.M), screen


def test_what_was_typed_before_the_highlighting_was_built_is_highlighted_without_a_key(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.type("def f(): return 1")  # no further key: the redraw when the lexer is built shows it
    deadline = time.monotonic() + 15
    while True:
        # -e: with the colours (Terminal.screen() leaves them out)
        screen = t._tmux("capture-pane", "-p", "-e", "-t", "main")
        if re.search(r"^\[1\]> (\x1b\[[0-9;]*m)+def(\x1b\[[0-9;]*m)* (\x1b\[[0-9;]*m)+f", screen,
                     re.M):
            break
        assert time.monotonic() < deadline, f"not highlighted after 15 s:\n{screen!r}"
        time.sleep(0.02)  # polling the screen, as Terminal.wait_for does


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_counting_pending_deferreds_does_not_load_the_lazy_modules():
    # What the toolbar does every second, without a terminal: the walk must not ask the
    # lazy modules anything (isinstance() would ask each object for its __class__).
    code = (
        "from netshell.reactor import Reactor, install\n"
        "from netshell.shell import namespace\n"
        "from netshell.shell.console import Console\n"
        "r = Reactor(); install(r)\n"
        "import netshell as ns\n"
        "pending = ns.Deferred()\n"
        "namespace.build(Console({}))\n"
        "found = namespace.pending_deferreds(r)\n"
        "assert pending in found, found\n"
        + state_of(HEAVY + LAZY) + "\n"
    )
    seen = states(run_python(code))
    assert {m: s for m, s in seen.items() if m in HEAVY and s != "NoneType"} == {}
    assert {m: seen[m] for m in LAZY} == dict.fromkeys(LAZY, "_LazyModule")


def test_importing_the_prompt_loads_none_of_the_heavy_modules():
    # What `netsh` imports before it draws the prompt: the command line, its parser, the
    # prompt module.
    code = (
        "import netshell.app.cli as cli\n"
        "cli.build_parser()\n"
        "import netshell.shell.prompt\n"
        + state_of(HEAVY + AFTER_THE_PROMPT) + "\n"
    )
    seen = states(run_python(code))
    assert {m: s for m, s in seen.items() if s != "NoneType"} == {}


# ---- the highlighting, built after the first drawing


def fragments(lexer: Lexer, text: str) -> list[tuple[str, str]]:
    return [(style, t) for style, t, *_ in lexer.lex_document(Document(text))(0)]


class Built:
    """A build function that says where it ran; it waits for ``gate`` when given one."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.threads: list[str] = []
        self.gate = gate

    def __call__(self) -> Lexer:
        self.threads.append(threading.current_thread().name)
        if self.gate is not None:
            assert self.gate.wait(30)
        return SimpleLexer(style="class:built")


def test_the_highlighting_is_plain_until_built_in_a_thread_after_the_loops_turn():
    gate = threading.Event()
    built = Built(gate)
    lexer = LaterLexer(built)
    lines: list[Callable[[int], Any]] = []

    async def first_drawing() -> tuple[list[tuple[str, str]], list[str]]:
        # The empty prompt needs no lexer: nothing starts.
        assert fragments(lexer, "") == [("", "")]
        await asyncio.sleep(0)
        assert built.threads == [] and not any(
            t.name == "netsh-highlighting" for t in threading.enumerate())
        # The first key typed.
        lines.append(lexer.lex_document(Document("x = 1")))
        plain = fragments(lexer, "x = 1")
        # Nothing is built, nor a thread started, during the drawing that asked: the
        # prompt goes out first.
        return plain, [*built.threads, *(t.name for t in threading.enumerate())]

    async def main() -> None:
        plain, during = await first_drawing()
        assert plain == [("", "x = 1")]
        assert "netsh-highlighting" not in during
        assert "MainThread" not in built.threads
        gate.set()
        assert await asyncio.to_thread(lexer.ready.wait, 30)

    asyncio.run(main())
    assert built.threads == ["netsh-highlighting"]
    assert fragments(lexer, "x = 1") == [("class:built", "x = 1")]
    # prompt_toolkit keeps what lex_document returned while the text is unchanged: that
    # too gives the highlighted line now.
    assert [(style, t) for style, t, *_ in lines[0](0)] == [("class:built", "x = 1")]
    # Once: asking again builds nothing more.
    fragments(lexer, "y")
    assert built.threads == ["netsh-highlighting"]


def test_the_redraw_after_the_build_is_asked_for_on_the_loop_not_in_the_thread(monkeypatch):
    # While a command runs, prompt_toolkit's application is not running and its
    # invalidate() looks for a running loop in the calling thread: called from the
    # highlighting thread it raised "no running event loop" over the user's screen.
    class App:
        def __init__(self) -> None:
            self.redrawn = threading.Event()
            self.threads: list[str] = []

        def invalidate(self) -> None:
            asyncio.get_running_loop()  # as prompt_toolkit does when it is not running
            self.threads.append(threading.current_thread().name)
            self.redrawn.set()

    app = App()
    monkeypatch.setattr("netshell.shell.lexer.get_app_or_none", lambda: app)
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    lexer = LaterLexer(Built())

    async def main() -> None:
        lexer.start()
        assert await asyncio.to_thread(lexer.ready.wait, 30)
        assert await asyncio.to_thread(app.redrawn.wait, 30)

    asyncio.run(main())
    assert errors == []
    assert app.threads == ["MainThread"]


def test_the_highlighting_changes_its_hash_when_built_so_the_input_is_lexed_again():
    lexer = LaterLexer(Built())
    before = lexer.invalidation_hash()
    lexer.start()  # no loop running: built here, at once
    assert lexer.ready.is_set()
    assert lexer.invalidation_hash() != before


def test_a_build_that_fails_leaves_the_input_plain(caplog):
    def broken() -> Lexer:
        raise RuntimeError("no pygments today")

    lexer = LaterLexer(broken)
    lexer.start()
    assert lexer.ready.is_set()
    assert fragments(lexer, "x = 1") == [("", "x = 1")]
    assert "highlighting failed" in caplog.text


def test_the_python_lexer_highlights_once_built():
    lexer = python_lexer()
    lexer.start()
    styles = dict((t, style) for style, t in fragments(lexer, "def f(): pass"))
    assert styles["def"] == "class:pygments.keyword"
    assert styles["f"] == "class:pygments.name.function"


# ---- the command line


def test_a_bare_netsh_goes_to_the_prompt_without_building_the_parser(monkeypatch):
    from netshell.app import cli

    def no_parser() -> None:
        raise AssertionError("a bare netsh has nothing to parse")

    started: list[tuple[int, bool | None]] = []
    monkeypatch.setattr(cli, "build_parser", no_parser)
    monkeypatch.setattr(cli, "_prompt", lambda level, uvloop: started.append((level, uvloop)) or 0)
    monkeypatch.setattr(sys, "argv", ["netsh"])
    assert cli.main() == 0
    assert cli.main([]) == 0
    assert started == [(logging.WARNING, None)] * 2


def test_what_a_bare_netsh_imports_before_its_prompt_has_no_argparse_nor_runner():
    code = (
        "import netshell.app.cli, netshell.shell.prompt\n"
        + state_of(("argparse", "netshell.app.runner", "platform")) + "\n"
    )
    seen = states(run_python(code))
    assert {m: s for m, s in seen.items() if s != "NoneType"} == {}


def test_the_small_stdlib_modules_only_a_mistake_or_a_diff_needs_wait_for_them():
    # difflib (the "did you mean" of a bad endpoint, diff()), decimal (an endpoint's
    # timeout written back) and dataclasses cost the first prompt ~4 ms together.
    code = (
        "import netshell.app.cli, netshell.shell.prompt\n"
        + state_of(("difflib", "decimal", "dataclasses")) + "\n"
    )
    seen = states(run_python(code))
    assert {m: s for m, s in seen.items() if s != "NoneType"} == {}
