"""Run the examples of one documentation page, in order, in one namespace.

Usage: ``python tests/docs_runner.py PAGE.md``

The fenced code blocks whose info string is exactly ``python`` or ``pycon``
are run; every other block (``text``, ``console``, ``bash``, ``{code-block}``,
``python title=...``) is left alone. All blocks of a page share one namespace,
so a later block sees what an earlier one defined.

- ``python`` blocks are executed like a script. An exception fails the page,
  with a traceback whose line numbers are the page's own.
- ``pycon`` blocks are doctests (``>>> `` and ``... `` prompts, the expected
  output below), checked with :mod:`doctest` (ELLIPSIS, NORMALIZE_WHITESPACE).
  A mismatch fails the page with the doctest report.

Both kinds may use top-level ``await``: such a block (or ``>>>`` example) runs
to completion on the thread's current event loop, the way the prompt runs it.
Blocks without ``await`` run with no loop running, the way a script does. A
fresh event loop is set for the thread before the first block.

The page stops at its first failing block. The exit status is 0 when every
block passed, 1 when one failed, 2 for a usage error; the last line printed
is a summary of the blocks run.
"""

from __future__ import annotations

import ast
import asyncio
import doctest
import inspect
import linecache
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

RUNNABLE = ("python", "pycon")
COMPILE_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    """A runnable fenced block: its kind, its code, and where it sits in the page."""

    kind: str  # "python" or "pycon"
    code: str
    fence_line: int  # 1-based line of the opening fence
    first_line: int  # 1-based line of the block's first line of code


def find_blocks(text: str) -> list[Block]:
    """Return the runnable blocks of a Markdown page, in page order.

    The page is parsed as CommonMark (the parser MyST itself uses), so fences
    inside list items, longer fences and tilde fences are seen as Sphinx sees them.
    """
    blocks = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.info.strip() not in RUNNABLE or token.map is None:
            continue
        fence_line = token.map[0] + 1
        blocks.append(Block(token.info.strip(), token.content, fence_line, fence_line + 1))
    return blocks


def _current_loop() -> asyncio.AbstractEventLoop:
    # The loop set for this thread now: ours, or one the code under test installed.
    return asyncio.get_event_loop_policy().get_event_loop()


def _run_code(code: Any, namespace: dict[str, Any] | None = None, *args: Any) -> None:
    """exec(), except that code with top-level await runs on the current loop.

    Also stands in for the builtin exec() inside doctest, which would only create
    (and drop) the coroutine of an example that awaits.
    """
    if isinstance(code, types.CodeType) and code.co_flags & inspect.CO_COROUTINE:
        _current_loop().run_until_complete(eval(code, namespace))
    else:
        exec(code, namespace, *args)


def run_python(block: Block, namespace: dict[str, Any], filename: str) -> str | None:
    """Run a python block; return None, or the report of its failure."""
    # Pad so the compiled line numbers are the page's line numbers.
    source = "\n" * (block.first_line - 1) + block.code
    try:
        code = compile(source, filename, "exec", flags=COMPILE_FLAGS, dont_inherit=True)
        _run_code(code, namespace)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        # Start the traceback at the page: the runner's own frames are noise.
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next
        report = "".join(traceback.format_exception(e.with_traceback(tb)))
        return f"python block at line {block.fence_line} raised:\n{report}"
    return None


def run_pycon(block: Block, namespace: dict[str, Any], filename: str) -> str | None:
    """Check a pycon block as a doctest; return None, or the doctest report."""
    try:
        test = doctest.DocTestParser().get_doctest(
            block.code,
            namespace,
            name=f"{filename}:{block.fence_line}",
            filename=filename,
            lineno=block.first_line - 1,  # doctest counts lines from 0
        )
    except ValueError as e:  # a malformed prompt, e.g. ">>>x" or bad indentation
        return f"pycon block at line {block.fence_line} is not a valid doctest: {e}"
    test.globs = namespace  # DocTest copied it; the page's blocks share the one namespace
    out: list[str] = []
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS, verbose=False)
    result = runner.run(test, compileflags=COMPILE_FLAGS, out=out.append, clear_globs=False)
    if result.failed:
        return f"pycon block at line {block.fence_line} failed:\n{''.join(out)}"
    return None


def run_page(path: Path) -> int:
    """Run every runnable block of the page at ``path``; return the exit status."""
    text = path.read_text(encoding="utf-8")
    filename = str(path)
    # Tracebacks show the page's lines.
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    blocks = find_blocks(text)
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename}
    sys.argv = [filename]
    asyncio.set_event_loop(asyncio.new_event_loop())
    doctest.exec = _run_code  # doctest looks exec up in its module globals first

    counts = {kind: 0 for kind in RUNNABLE}
    for block in blocks:
        run = run_python if block.kind == "python" else run_pycon
        failure = run(block, namespace, filename)
        counts[block.kind] += 1
        sys.stdout.flush()
        if failure is not None:
            print(failure, file=sys.stderr)
            print(
                f"docs_runner: {path.name}: FAILED at line {block.fence_line}; "
                f"ran {sum(counts.values())} of {len(blocks)} blocks "
                f"({counts['python']} python, {counts['pycon']} pycon)",
                file=sys.stderr,
            )
            return 1
    print(
        f"docs_runner: {path.name}: ok, ran {len(blocks)} blocks "
        f"({counts['python']} python, {counts['pycon']} pycon)"
    )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/docs_runner.py PAGE.md", file=sys.stderr)
        return 2
    path = Path(argv[0]).resolve()
    if not path.is_file():
        print(f"docs_runner: no such page: {argv[0]}", file=sys.stderr)
        return 2
    return run_page(path)


if __name__ == "__main__":
    # Run as a script, Python puts tests/ first on the path, where tests/netshell/
    # would shadow the real package as a namespace package: put the checkout there.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    sys.exit(main(sys.argv[1:]))
