"""Run the examples of one documentation page, in order, in one namespace.

Usage: ``python tests/docs_runner.py PAGE.md``

The fenced code blocks whose info string is exactly ``python`` or ``pycon``
are run; every other block (``text``, ``console``, ``bash``, ``{code-block}``,
``python title=...``) is left alone. All blocks of a page share one namespace,
so a later block sees what an earlier one defined.

- ``python`` blocks are executed like a script. An exception fails the page,
  with a traceback whose line numbers are the page's own.
- ``netsh`` blocks are recorded sessions at the netsh prompt: ``[1]> `` starts an
  input, ``....`` lines continue it, every other line is output. The block is
  replayed by the real ``netsh run --exit`` (each input a cell, inspections
  included) in a fresh process and a temporary directory; a page's netsh blocks
  are one session, replayed once. What each block's inputs print must match
  its recorded output (ELLIPSIS, NORMALIZE_WHITESPACE).
- ``netsh-cli`` blocks are shell sessions: ``$ `` starts a command, ``> `` lines
  continue it (a here-document), every other line is output (stdout and stderr
  together). Commands run with bash, in order, in one temporary directory per
  page, and print what the block shows (ELLIPSIS, NORMALIZE_WHITESPACE).
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
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

RUNNABLE = ("python", "pycon", "netsh", "netsh-cli")
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


_INPUT = re.compile(r"^\[\d+\]> ?(.*)$")
_MORE = re.compile(r"^\.{4,}(?: (.*))?$")  # "...." continues an input; "..." is an ellipsis


def netsh_script(code: str) -> tuple[str, str]:
    """A recorded session as (a cell script of its inputs, the output it shows)."""
    cells: list[list[str]] = []
    output: list[str] = []
    in_input = False  # after a prompt line, before any output line
    for line in code.splitlines():
        prompt = _INPUT.match(line)
        more = _MORE.match(line)
        if prompt:
            cells.append([prompt.group(1)])
            in_input = True
        elif more and in_input:
            cells[-1].append(more.group(1) or "")
        else:
            output.append(line)
            in_input = False
    script = [line for cell in cells for line in ("# %%", *cell)]
    return "\n".join(script) + "\n", "\n".join(output) + ("\n" if output else "")


_SEPARATOR = "----- netsh block -----"


def replay_sessions(blocks: list[Block]) -> list[tuple[int, str]]:
    """Replay a page's netsh blocks as ONE session (a tutorial builds on what came
    before); returns, per block, the exit status and what it printed."""
    script = []
    for block in blocks:
        cells, _ = netsh_script(block.code)
        script.append(cells)
        script.append(f"# %%\nprint({_SEPARATOR!r})\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "session.py"
        path.write_text("".join(script), encoding="utf-8")
        # Errors go to stderr in a headless run; at the prompt they share the screen with
        # the rest, so the replay merges the two, unbuffered to keep their order.
        env = dict(os.environ, XDG_STATE_HOME=str(Path(tmp) / "state"), PYTHONUNBUFFERED="1")
        done = subprocess.run(
            [sys.executable, "-m", "netshell.cli", "run", "--exit", "--keep-going", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp, env=env,
            timeout=240,
        )
    parts = done.stdout.split(_SEPARATOR + "\n")
    results = []
    # Errors shown at the prompt are part of a session (--keep-going): what fails the
    # page is output that differs, or a replay that did not get through its blocks.
    complete = len(parts) == len(blocks) + 1
    for i in range(len(blocks)):
        printed = parts[i] if i < len(parts) else ""
        if complete:
            results.append((0, printed))
        else:
            results.append((done.returncode or 1, printed))
    return results


def run_netsh(block: Block, namespace: dict[str, Any], filename: str) -> str | None:
    """Check a recorded netsh session block against the page's replay; None, or the mismatch."""
    results = namespace.setdefault("__netsh_replay__", {})
    if not results:
        blocks = namespace["__netsh_blocks__"]
        results.update(zip([b.fence_line for b in blocks], replay_sessions(blocks), strict=True))
    status, printed = results[block.fence_line]
    _, expected = netsh_script(block.code)
    if status == 0 and doctest.OutputChecker().check_output(expected, printed, DOCTEST_FLAGS):
        return None
    return (
        f"netsh block at line {block.fence_line}: the replay (exit {status}) printed\n"
        f"{printed}\n--- expected ---\n{expected}"
    )


def run_cli(block: Block, namespace: dict[str, Any], filename: str) -> str | None:
    """Run a netsh-cli block's commands; None, or the first mismatch."""
    workdir = namespace.get("__cli_dir__")
    if workdir is None:
        workdir = namespace["__cli_dir__"] = tempfile.mkdtemp(prefix="netsh-docs-")
    env = dict(os.environ, XDG_STATE_HOME=str(Path(workdir) / "state"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    commands: list[tuple[list[str], list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            commands.append(([line[2:]], []))
        elif line.startswith("> ") or line == ">":
            commands[-1][0].append(line[2:])
        elif commands:
            commands[-1][1].append(line)
    for command, expected_lines in commands:
        script = "\n".join(command)
        done = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=workdir, env=env,
                              timeout=120)
        printed = done.stdout
        expected = "\n".join(expected_lines) + ("\n" if expected_lines else "")
        if not doctest.OutputChecker().check_output(expected, printed, DOCTEST_FLAGS):
            return (f"netsh-cli block at line {block.fence_line}: `{command[0]}` printed\n"
                    f"{printed}\n--- expected ---\n{expected}")
    return None


def run_page(path: Path) -> int:
    """Run every runnable block of the page at ``path``; return the exit status."""
    text = path.read_text(encoding="utf-8")
    filename = str(path)
    # Tracebacks show the page's lines.
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    blocks = find_blocks(text)
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename}
    namespace["__netsh_blocks__"] = [b for b in blocks if b.kind == "netsh"]
    sys.argv = [filename]
    asyncio.set_event_loop(asyncio.new_event_loop())
    doctest.exec = _run_code  # doctest looks exec up in its module globals first

    counts = {kind: 0 for kind in RUNNABLE}
    try:
        return _run_blocks(path, blocks, namespace, filename, counts)
    finally:
        if "__cli_dir__" in namespace:
            shutil.rmtree(namespace["__cli_dir__"], ignore_errors=True)


def _run_blocks(path: Path, blocks: list[Block], namespace: dict[str, Any], filename: str,
                counts: dict[str, int]) -> int:
    for block in blocks:
        run = {"python": run_python, "pycon": run_pycon, "netsh": run_netsh,
               "netsh-cli": run_cli}[block.kind]
        failure = run(block, namespace, filename)
        counts[block.kind] += 1
        sys.stdout.flush()
        if failure is not None:
            print(failure, file=sys.stderr)
            print(
                f"docs_runner: {path.name}: FAILED at line {block.fence_line}; "
                f"ran {sum(counts.values())} of {len(blocks)} blocks "
                f"({_kinds(counts)})",
                file=sys.stderr,
            )
            return 1
    print(
        f"docs_runner: {path.name}: ok, ran {len(blocks)} blocks "
        f"({_kinds(counts)})"
    )
    return 0


def _kinds(counts: dict[str, int]) -> str:
    text = f"{counts['python']} python, {counts['pycon']} pycon"
    for kind in ("netsh", "netsh-cli"):
        text += f", {counts[kind]} {kind}" if counts[kind] else ""
    return text


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
