"""The prompt's Python highlighting, built after the first prompt is drawn.

pygments' Python lexer costs about 45 ms to make (importing pygments, then compiling
the lexer's regular expressions on first use): a fifth of what ``netsh`` spent before
its first prompt. :class:`LaterLexer` is a prompt_toolkit lexer that shows the text
plain until the real one is ready. The first time it is asked to lex some text (the
first key typed), it asks the loop to start a thread that builds the real lexer once
that key is drawn; when the thread is done (tens of milliseconds), the input is
redrawn, highlighted. Keys typed meanwhile are read and drawn as always (the thread
lets the loop run between its bytecodes), only without colour. Started at the first
drawing instead, the build competed with the very first key for the GIL: in
``scripts/bench/startup.py``, a key typed the moment the prompt showed came back about
8 ms later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

from prompt_toolkit.application.current import get_app_or_none
from prompt_toolkit.document import Document
from prompt_toolkit.lexers import Lexer, PygmentsLexer, SimpleLexer

__all__ = ["LaterLexer", "python_lexer"]

log = logging.getLogger("netshell.shell")


class LaterLexer(Lexer):
    """Plain text until ``build()`` (run in a thread, once) has returned the real lexer."""

    def __init__(self, build: Callable[[], Lexer]) -> None:
        self._build = build
        self._plain = SimpleLexer()
        self._lexer: Lexer | None = None
        self._started = False
        #: set once the real lexer is in use (or failed to build: then it stays plain)
        self.ready = threading.Event()

    def lex_document(self, document: Document) -> Callable[[int], Any]:
        lexer = self._lexer
        if lexer is not None:
            return lexer.lex_document(document)
        if document.text:  # the first key typed; the empty prompt needs no lexer
            self.start()
        plain = self._plain.lex_document(document)
        real: list[Callable[[int], Any]] = []

        # prompt_toolkit keeps the function returned here for as long as the text stays
        # the same (its cache key has the text and the id of the session's lexer, which
        # never changes): so the function itself turns to the real lexer once it is built.
        def line(number: int) -> Any:
            lexer = self._lexer
            if lexer is None:
                return plain(number)
            if not real:
                real.append(lexer.lex_document(document))
            return real[0](number)

        return line

    def invalidation_hash(self) -> Hashable:
        # Changes when the real lexer arrives, so the buffer is lexed again.
        return (self._lexer or self._plain).invalidation_hash()

    def start(self) -> None:
        """Start building the real lexer: after the loop's current turn when a loop runs
        (the drawing that asked is written out first), else at once, here."""
        if self._started:
            return
        self._started = True
        app = get_app_or_none()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._load(app)
            return
        loop.call_soon(self._thread, app, loop)

    def _thread(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        # Not a daemon: leaving the prompt at once waits for the build (tens of ms) rather
        # than stopping the thread in the middle of an import.
        threading.Thread(
            target=self._load, args=(app, loop), name="netsh-highlighting"
        ).start()

    def _load(self, app: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        try:
            self._lexer = self._build()
        except Exception:
            log.exception("building the prompt's highlighting failed; the input stays plain")
        finally:
            self.ready.set()
        if app is None or self._lexer is None:
            return
        if loop is None:
            app.invalidate()
            return
        # Ask for the redraw on the loop that started the build. app.invalidate() from
        # this thread is not safe: while a command runs the application is not running,
        # and prompt_toolkit then looks for a running loop in the calling thread.
        try:
            loop.call_soon_threadsafe(app.invalidate)
        except RuntimeError:  # the loop has closed: nothing is left to redraw
            pass


def _build_python_lexer() -> Lexer:
    from pygments.lexers.python import PythonLexer  # type: ignore[import-untyped]

    lexer = PygmentsLexer(PythonLexer)
    # The regular expressions compile on the first lexing: do it here, in the thread.
    lexer.lex_document(Document("pass"))(0)
    return lexer


def python_lexer() -> LaterLexer:
    """The prompt's lexer: Python, highlighted by pygments once that is loaded."""
    return LaterLexer(_build_python_lexer)
