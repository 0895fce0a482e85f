"""The keys that type Python at the ``netsh`` prompt: Enter, Tab, Backspace, space, paste.

- Enter runs a whole input (the cursor at its end) or starts a new line, indented as the
  line before it, one level more after a line ending in ``:``.
- That indent is a guess. A person who types their own leading spaces on a line that holds
  nothing but it (as the tutorial shows its blocks) gets their own indent instead: the first
  space typed there replaces the guess, so the line is indented exactly as typed, never
  the two added up.
- Backspace in leading spaces takes one indent level (four spaces, or back to the previous
  multiple of four); Tab in leading whitespace adds one, to whatever the line holds (as in
  IPython: after auto-indent it goes one level further, as for a bracket's continuation).
- A bracketed paste (the terminal sends ``ESC[200~ ... ESC[201~``) is inserted as it is:
  no auto-indent is added to its lines (a paste into a line holding only auto-indent, when
  the pasted text brings its own leading whitespace, replaces that indent; a paste into an
  empty input loses the indent its lines all share, as IPython does). Enter right after a
  paste runs it if Python's parser says it is finished (nothing open, no block header
  waiting for its body), as in IPython: one Enter, not a blank line to end each block. So
  does Enter on an input recalled from history and not changed since (it ran whole before).
"""

from __future__ import annotations

import ast
import codeop
import textwrap
from collections.abc import Callable

from prompt_toolkit.application.current import get_app
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition, has_completions, has_selection
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys

__all__ = ["INDENT", "parser_wants_more", "typing_bindings"]

#: One indent level: what auto-indent and Tab add, and Backspace in leading spaces takes.
INDENT = "    "


def parser_wants_more(source: str) -> bool:
    """True if Python's parser says ``source`` is unfinished: an open bracket or string, a
    block header with no body yet, a trailing backslash. An error is finished (it is shown).

    The prompt's Enter after a paste asks this rather than the console's ``is_complete``,
    which also waits for a blank line after a block, as typing does.
    """
    compiler = codeop.CommandCompiler()
    compiler.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        return compiler(source, "<input>", "exec") is None
    except (SyntaxError, OverflowError, ValueError):
        return False


def typing_bindings(is_complete: Callable[[str], bool]) -> KeyBindings:
    """Key bindings for typing and pasting Python; ``is_complete(text)`` says whether Enter
    at the end of typed input runs it (the console's rule)."""
    kb = KeyBindings()
    # What auto-indent and the last paste left: (text, cursor) and text. Compared with the
    # buffer as it is now, so any other edit (a key, history, Ctrl-C) forgets them.
    auto_indented: tuple[str, int] | None = None
    pasted: str | None = None

    def holds_only_auto_indent(buf: Buffer) -> bool:
        return auto_indented == (buf.text, buf.cursor_position)

    def recalled(buf: Buffer) -> bool:
        # An input from history, unchanged: it ran as a whole before (a pasted block too).
        # The buffer's working lines are the history's strings, oldest first, then the new
        # input; a mismatch (history still loading) just means Enter goes by the typing rules.
        strings = buf.history.get_strings()
        return 0 <= buf.working_index < len(strings) and strings[buf.working_index] == buf.text

    @Condition
    def on_auto_indent() -> bool:
        return holds_only_auto_indent(get_app().current_buffer)

    @Condition
    def in_leading_spaces() -> bool:
        before = get_app().current_buffer.document.current_line_before_cursor
        return bool(before) and not before.strip(" ")

    @Condition
    def in_leading_whitespace() -> bool:
        return not get_app().current_buffer.document.current_line_before_cursor.strip()

    @kb.add("enter", filter=~has_completions)
    def _(event: KeyPressEvent) -> None:
        nonlocal auto_indented, pasted
        buf = event.current_buffer
        doc = buf.document
        whole = pasted == doc.text or recalled(buf)
        pasted = None
        if doc.is_cursor_at_the_end:
            done = (not parser_wants_more(doc.text)) if whole else is_complete(doc.text)
            if done:
                auto_indented = None
                buf.validate_and_handle()
                return
        line = doc.current_line_before_cursor
        indent = line[: len(line) - len(line.lstrip())]
        if line.rstrip().endswith(":"):
            indent += INDENT
        buf.insert_text("\n" + indent)
        auto_indented = (buf.text, buf.cursor_position) if indent else None

    @kb.add(" ", filter=on_auto_indent)
    def _(event: KeyPressEvent) -> None:
        # The person types their own indent: it replaces the one Enter guessed.
        nonlocal auto_indented
        buf = event.current_buffer
        buf.delete_before_cursor(len(buf.document.current_line_before_cursor))
        buf.insert_text(" ")
        auto_indented = None

    @kb.add("backspace", filter=in_leading_spaces & ~has_selection)
    def _(event: KeyPressEvent) -> None:
        buf = event.current_buffer
        spaces = len(buf.document.current_line_before_cursor)
        buf.delete_before_cursor(spaces % len(INDENT) or len(INDENT))

    @kb.add("tab", filter=in_leading_whitespace & ~has_completions)
    def _(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text(INDENT)

    @kb.add(Keys.BracketedPaste)
    def _(event: KeyPressEvent) -> None:
        nonlocal auto_indented, pasted
        buf = event.current_buffer
        data = event.data
        # Some terminals paste \r\n or \r line ends (prompt_toolkit's own paste does this too).
        data = data.replace("\r\n", "\n").replace("\r", "\n")
        brings_indent = data[:1] in (" ", "\t")
        if brings_indent and not buf.text:
            data = textwrap.dedent(data)
        elif brings_indent and holds_only_auto_indent(buf):
            buf.delete_before_cursor(len(buf.document.current_line_before_cursor))
        buf.insert_text(data)
        auto_indented = None
        pasted = buf.text

    return kb
