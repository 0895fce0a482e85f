"""Typing and pasting Python at the netsh prompt.

Auto-indent after a line ending in ':' never adds up with the leading spaces a person types
(a block typed as the tutorial shows it runs), Backspace in leading spaces takes one indent
level, a bracketed paste goes in as it is and runs on one Enter, and a typed input that is
not finished still gets a new line. First the key bindings on a prompt_toolkit pipe (keys
in, the accepted text out), then the real ``netsh`` in a terminal (tmux).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from peers import free_port
from prompt_toolkit import PromptSession
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from terminal import Terminal, netsh_argv

from netshell.shell.console import Console
from netshell.shell.keys import parser_wants_more, typing_bindings

ENTER = "\r"
BACKSPACE = "\x7f"
UP = "\x1b[A"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def paste(text: str) -> str:
    """What a terminal sends for a bracketed paste of ``text`` (it sends line ends as CR)."""
    return "\x1b[200~" + text.replace("\n", "\r") + "\x1b[201~"


class Typed:
    """Keys sent to a prompt with netsh's typing bindings: ``text`` is what Enter ran, or
    ``None``; ``left`` is what the input held when the keys ran out."""

    def __init__(self, *keys: str, history: tuple[str, ...] = ()) -> None:
        console = Console({})
        self.text: str | None = None
        past = InMemoryHistory()
        for entry in history:
            past.append_string(entry)
        with create_pipe_input() as pipe:
            session: PromptSession[str] = PromptSession(
                multiline=True, key_bindings=typing_bindings(console.is_complete),
                output=DummyOutput(), input=pipe, history=past)
            pipe.send_text("".join(keys))
            pipe.close()  # the keys sent are read, then the end of input ends the prompt
            try:
                self.text = session.prompt()
            except EOFError:
                pass
        self.left = session.default_buffer.text


def run(source: str) -> dict[str, object]:
    names: dict[str, object] = {}
    exec(compile(source, "<typed>", "exec"), names)
    return names


# ---- the bindings, no terminal


def test_leading_spaces_typed_on_an_auto_indented_line_replace_the_auto_indent():
    typed = Typed("class A:", ENTER,
                  "    def f(self):", ENTER,
                  "        x = 20", ENTER,
                  "        return x + 1", ENTER,  # same level as the line above
                  "    def g(self):", ENTER,  # a dedent line, typed with its own spaces
                  "        return 2", ENTER,
                  ENTER)
    assert typed.text is not None, typed.left
    assert typed.text.rstrip() == ("class A:\n    def f(self):\n        x = 20\n"
                                   "        return x + 1\n    def g(self):\n        return 2")
    a = run(typed.text)["A"]()  # type: ignore[operator]
    assert (a.f(), a.g()) == (21, 2)


def test_relying_on_auto_indent_still_indents_and_backspace_dedents_one_level():
    typed = Typed("def f(n):", ENTER,
                  "if n:", ENTER,
                  "return n * 2", ENTER,
                  BACKSPACE, "return -1", ENTER,
                  ENTER)
    assert typed.text is not None, typed.left
    assert typed.text.rstrip() == ("def f(n):\n    if n:\n        return n * 2\n"
                                   "    return -1")
    f = run(typed.text)["f"]
    assert (f(21), f(0)) == (42, -1)  # type: ignore[operator]


TAB = "\t"


def test_tab_in_leading_whitespace_adds_a_level():
    assert Typed("x = [", ENTER, TAB, TAB).left == "x = [\n        "
    # On a line holding auto-indent too: one level further (a bracket's continuation).
    assert Typed("if x:", ENTER, "y = (", ENTER, TAB).left == "if x:\n    y = (\n        "


@pytest.mark.parametrize(("spaces", "left"), [(8, 4), (6, 4), (4, 0), (1, 0)])
def test_backspace_in_leading_spaces_goes_back_to_the_previous_level(spaces, left):
    typed = Typed("x = [", ENTER, " " * spaces, BACKSPACE)
    assert typed.left == "x = [\n" + " " * left


def test_backspace_after_text_takes_one_character():
    assert Typed("x = 12  ", BACKSPACE).left == "x = 12 "
    assert Typed("    x", BACKSPACE).left == "    "


def test_a_space_typed_after_text_on_an_auto_indented_line_is_a_space():
    typed = Typed("if True:", ENTER, "x = 1 ", "+ 1")
    assert typed.left == "if True:\n    x = 1 + 1"


def test_a_pasted_class_and_call_run_on_one_enter_as_pasted():
    block = "class B:\n    def g(self):\n        return 41 + 1\n\nvalue = B().g()\n"
    typed = Typed(paste(block), ENTER)
    assert typed.text == block  # nothing added: no auto-indent on pasted lines
    assert run(block)["value"] == 42


def test_a_pasted_block_ending_in_its_body_runs_on_one_enter():
    block = "class B:\n    def g(self):\n        return 1"
    assert Typed(paste(block), ENTER).text == block


def test_a_pasted_block_recalled_from_history_runs_on_one_enter():
    block = "class B:\n    x = 1\nB.x\n"
    assert Typed(UP, ENTER, history=("before", block)).text == block
    # Edited, it follows the typing rules: a last line at column 0 ends the input (as in
    # IPython), a last line inside a block wants more.
    changed = Typed(UP, "0", ENTER, history=("before", block))
    assert changed.text == block + "0"
    inside = "class B:\n    x = 1"
    changed = Typed(UP, "0", ENTER, history=("before", inside))
    assert changed.text is None and changed.left.startswith(inside + "0\n")


def test_a_pasted_block_header_still_wants_its_body():
    typed = Typed(paste("for i in range(3):"), ENTER)
    assert typed.text is None
    assert typed.left == "for i in range(3):\n    "


def test_a_key_typed_after_a_paste_makes_enter_a_typed_enter_again():
    typed = Typed(paste("class B:\n    x = 1"), "0", ENTER)
    assert typed.text is None  # a block typed: it wants a blank line to end it
    assert typed.left == "class B:\n    x = 10\n    "


def test_a_paste_with_its_own_indent_replaces_the_auto_indent():
    typed = Typed("class A:", ENTER, paste("    def f(self):\n        return 5\n"), ENTER)
    assert typed.text == "class A:\n    def f(self):\n        return 5\n"


def test_a_paste_without_its_first_indent_goes_after_the_auto_indent():
    # A mouse selection that starts at "def" leaves its first line's indent behind.
    typed = Typed("class A:", ENTER, paste("def f(self):\n        return 5"), ENTER)
    assert typed.text == "class A:\n    def f(self):\n        return 5"


def test_a_paste_into_an_empty_input_loses_the_indent_its_lines_share():
    typed = Typed(paste("    x = 6\n    y = x * 7\n"), ENTER)
    assert typed.text == "x = 6\ny = x * 7\n"


def test_an_unfinished_typed_input_still_gets_a_new_line():
    assert Typed("total = (1 +", ENTER).left == "total = (1 +\n"
    typed = Typed("total = (1 +", ENTER, "41)", ENTER)
    assert typed.text == "total = (1 +\n41)"


def test_parser_wants_more_only_for_unfinished_code():
    assert parser_wants_more("x = (1,")
    assert parser_wants_more("if x:")
    assert parser_wants_more("s = '''open")
    assert not parser_wants_more("class A:\n    x = 1")
    assert not parser_wants_more("await sleep(1)")  # top-level await is finished code
    assert not parser_wants_more("1 +* 2")  # an error: Enter runs it and it is shown


# ---- the real netsh in a terminal


def paste_in(t: Terminal, text: str) -> None:
    """Paste ``text`` as a terminal does: tmux's paste-buffer -p sends it between ESC[200~
    and ESC[201~ because the prompt asked for bracketed paste (line ends as CR)."""
    for args in (["set-buffer", "-b", "pasted", text],
                 ["paste-buffer", "-p", "-d", "-b", "pasted", "-t", "main"]):
        subprocess.run(["tmux", "-L", t.socket, *args], check=True, timeout=30)


@pytest.fixture
def netsh(tmp_path: Path):
    terms: list[Terminal] = []

    def start() -> Terminal:
        t = Terminal(netsh_argv(), env={"XDG_STATE_HOME": str(tmp_path / "state")},
                     cwd=str(tmp_path))
        terms.append(t)
        return t

    yield start
    for t in terms:
        t.close()


def tutorial_block(page: str, first: str) -> list[str]:
    """The lines of the block the docs page shows typed at prompt ``first`` (its ``....``
    lines, with their own leading spaces), the blank line that ends it left out."""
    lines = (DOCS / page).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    block = [lines[start][len(first):]]
    for line in lines[start + 1:]:
        if not line.startswith(".... ") or not line[5:].strip():
            break
        block.append(line[5:])
    return block


def test_a_tutorial_block_typed_with_its_own_leading_spaces_runs(netsh):
    # The page's input [3] is this session's [2].
    block = tutorial_block("tutorial-first-server.md", "[3]> ")
    assert block[0] == "class Hello(Protocol):" and block[1].startswith("    def ")
    assert any(line.startswith("        ") for line in block)  # a nested block, and
    assert sum(line.startswith("    def ") for line in block) == 2  # a dedent line
    t = netsh()
    t.wait_prompt(1)
    t.line(f'srv = listen("tcp:{free_port()}", wire.echo_factory())')
    t.wait_prompt(2)
    for line in block:
        t.line(line)  # typed as the page shows it, spaces and all
    t.key("Enter")  # the blank line that ends the block
    t.wait_prompt(3)
    t.line('d = connect(f"tcp:127.0.0.1:{srv.port}", Hello)')
    screen = t.wait_for(r"^client got b'hello\\n'$")  # the echo, computed by the server
    assert "IndentationError" not in screen
    # The block stands on the screen as it was typed: no indent doubled.
    assert f"[2]> {block[0]}" in screen.splitlines()
    shown = [line[5:] for line in screen.splitlines() if line.startswith(".... ")]
    assert shown[: len(block) - 1] == block[1:]


def test_relying_on_auto_indent_and_backspace_to_dedent(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("def f(n):")
    t.line("if n:")
    t.line("return n * 2")
    t.key("BSpace")  # one level back: four spaces, not one
    t.line("return -1")
    t.key("Enter")
    screen = t.wait_prompt(2)
    assert re.search(r"^\.\.\.\.     if n:\n\.\.\.\.         return n \* 2\n"
                     r"\.\.\.\.     return -1$", screen, re.M), screen
    t.line("f(21), f(0)")
    t.wait_for(r"^\(42, -1\)$")


def test_a_bracketed_paste_runs_on_one_enter(netsh):
    t = netsh()
    t.wait_prompt(1)
    block = ("class Counter:\n"
             "    def __init__(self):\n"
             "        self.n = 0\n"
             "\n"
             "    def bump(self, by):\n"
             "        self.n += by\n"
             "        return self\n"
             "print('counted', Counter().bump(40).bump(2).n)\n")
    paste_in(t, block)
    t.wait_for(r"^\.\.\.\. print\('counted'")  # the paste is in, as it was pasted
    t.key("Enter")  # once
    screen = t.wait_for(r"^counted 42$")
    t.wait_prompt(2)
    assert re.search(r"^\.\.\.\.         self\.n = 0$", screen, re.M), screen  # not indented more
    t.key("Up")  # the pasted block again, from history: it too runs on one Enter
    t.wait_for(r"^\[2\]> class Counter:$")
    t.key("Enter")
    t.wait_for(lambda screen: len(re.findall(r"^counted 42$", screen, re.M)) == 2)
    t.wait_prompt(3)


def test_an_unfinished_input_still_gets_a_new_line(netsh):
    t = netsh()
    t.wait_prompt(1)
    t.line("total = (1 +")
    t.wait_for(r"^\.\.\.\.\s*$")  # Enter on an open bracket: a new line, nothing run
    t.line("41)")
    t.wait_prompt(2)
    t.line("total")
    t.wait_for(r"^\[2\]> total\n42$")


def test_a_typed_block_saves_without_whitespace_only_lines(netsh, tmp_path):
    t = netsh()
    t.wait_prompt(1)
    t.line("class Pair:")  # relying on auto-indent: the line that ends it holds spaces
    t.line("def __init__(self, a, b):")
    t.line("self.total = a + b")
    t.key("Enter")
    t.wait_prompt(2)
    t.line("if True:")  # and typed with its own spaces
    t.line("    p = Pair(40, 2)")
    t.key("Enter")
    t.wait_prompt(3)
    t.line("p.total")
    t.wait_for(r"^42$")
    t.line('save("typed.py")')
    t.wait_for(r"^saved \d+ cells to typed\.py")
    script = (tmp_path / "typed.py").read_text()
    assert "class Pair:\n    def __init__(self, a, b):\n        self.total = a + b\n" in script
    assert "if True:\n    p = Pair(40, 2)\n" in script
    assert [line for line in script.splitlines() if line and not line.strip()] == []

