"""Run the examples of one documentation page, in order, in one namespace.

Usage: ``python tests/docs_runner.py PAGE.md``

The fenced code blocks whose info string is exactly ``python``, ``pycon``,
``netsh`` or ``netsh-cli`` are run; every other block (``text``, ``console``,
``bash``, ``{code-block}``, ``python title=...``) is left alone. All blocks of a
page share one namespace, so a later block sees what an earlier one defined.

- ``python`` blocks are executed like a script. An exception fails the page,
  with a traceback whose line numbers are the page's own. What a ``print(...)``
  prints is checked where the page marks it (see "Checked output" below).
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

Checked output in python blocks
-------------------------------

A comment ``# → expected`` (the arrow is U+2192) at the end of a ``print(...)``
statement says what that call prints, and the runner checks it::

    print(await http.get(url))    # → <Response 200 OK (6 bytes)>
    print(listener)               # → <Listener tcp 127.0.0.1:... Counter listening, ...>

Output of several lines continues on the comment-only lines right below, one
``# →`` per line of output (a bare ``# →`` is an empty line)::

    print("one\\ntwo")             # → one
                                  # → two

The comparison is doctest's, with ELLIPSIS (``...`` matches anything) and
NORMALIZE_WHITESPACE. The call still prints where it would have (it is run with
its own arguments; the marked calls alone are rewritten, so the block otherwise
runs exactly as written, top-level ``await`` included). A mismatch does not stop
the block (it runs on as written, so a coroutine still gets to stop the reactor);
when the block is done, the mismatch fails the page with the page's line, the
expected and the printed text. A marked print is checked every time it runs (in
a loop, in a function, in a callback run by a later block), and one that never
ran by the end of the page fails the page too.

The rules, so that no marker is silently ignored: the marker belongs to the
statement that ends on its line, which must be an expression statement whose
call is ``print`` (``print(x)``, not ``y = print(x)`` or ``log(x)``), and the
only statement ending on that line; a marker on a comment-only line must
continue a marker directly above it; the call must reach the builtin print.
Anything else is an error of the page (found before the block runs, but for the
builtin print, which is seen when the call runs). There is
one form: a comment anywhere in a python block that starts like another arrow
(``# ->``, ``# =>``, ``# ⇒`` ...) is an error that names the right one. A
comment that merely follows a print (``print(e)   # the server closed ...``) is
prose and is not checked.

The page stops at its first failing block. The exit status is 0 when every
block passed, 1 when one failed, 2 for a usage error; the last line printed
is a summary of the blocks run.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import doctest
import inspect
import io
import linecache
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tokenize
import traceback
import types
from dataclasses import dataclass, field
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


# Checked output: "print(x)  # → expected". One form; these look-alikes are errors.
MARKER = "\N{RIGHTWARDS ARROW}"
_MARKER = re.compile(r"#\s*\N{RIGHTWARDS ARROW}(.*)")
_LOOKALIKE = re.compile(  # ->  =>  and the other arrows: ⇒ ↦ ⇾ ⟶ ⟹ ➔ ➜ ➝ ➞ ⮕
    r"#\s*(-+>|=+>|[\u21d2\u21a6\u21fe\u27f6\u27f9\u2794\u279c\u279d\u279e\u2b95])"
)
CHECKER_NAME = "__docs_print__"


@dataclass
class Marker:
    """A ``print(...)  # → expected`` of a page: where, what it should print, how often it ran."""

    line: int  # the page line of the marker (the print statement's last line)
    expected: list[str] = field(default_factory=list)  # one item per "# →" line
    runs: int = 0

    def want(self) -> str:
        return "\n".join(self.expected) + "\n"


class PrintChecker:
    """Compares what marked prints print with their markers. The marked calls of a block,
    ``print(...)``, are rewritten to ``__docs_print__(LINE, print)(...)``: the same print,
    with the same arguments, whose output is checked each time it runs. A mismatch is
    recorded, and reported when the block that was running is done."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.markers: dict[int, Marker] = {}
        self.pending: list[str] = []  # failures not yet reported
        self._lock = threading.Lock()

    def _fail(self, report: str) -> None:
        # Recorded, not raised: raising would change how the block runs (a coroutine that
        # was to stop the reactor would never get there), so the block runs on as written
        # and the runner reports the mismatch when the block is done.
        with self._lock:
            self.pending.append(report)

    def __call__(self, line: int, func: Any) -> Any:
        marker = self.markers[line]
        if func is not builtins.print:
            marker.runs += 1
            self._fail(f'File "{self.filename}", line {line}: the marked call is not the '
                       f"builtin print (print is {func!r} here), so its output cannot be checked")
            return func

        def checked_print(*args: Any, **kwargs: Any) -> None:
            target = kwargs.pop("file", None)
            flush = kwargs.pop("flush", False)
            buffer = io.StringIO()
            print(*args, file=buffer, **kwargs)  # sep= and end= as given; a bad keyword raises
            printed = buffer.getvalue()
            print(printed, end="", file=target, flush=flush)  # where it would have printed
            with self._lock:
                marker.runs += 1
            want = marker.want()
            checker = doctest.OutputChecker()
            if not checker.check_output(want, printed, DOCTEST_FLAGS):
                example = doctest.Example(f"print(...)  # line {line}", want)
                self._fail(
                    f'File "{self.filename}", line {line}: the marked print printed something '
                    f"else\n{checker.output_difference(example, printed, DOCTEST_FLAGS)}"
                )

        return checked_print

    def take_pending(self) -> list[str]:
        with self._lock:
            pending, self.pending = self.pending, []
        return pending

    def never_ran(self) -> list[str]:
        return [
            f'File "{self.filename}", line {m.line}: the marked print never ran, so what it '
            f"prints was never checked"
            for m in self.markers.values() if m.runs == 0
        ]


def _simple_statements(tree: ast.AST) -> dict[int, list[ast.stmt]]:
    """The statements that hold no others (not if/for/def/...), by the line they end on."""
    ends: dict[int, list[ast.stmt]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not hasattr(node, "body") and not hasattr(node, "cases"):
            ends.setdefault(node.end_lineno or node.lineno, []).append(node)
    return ends


def _is_print(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "print")


def find_markers(source: str, tree: ast.AST) -> tuple[dict[int, Marker], list[str]]:
    """The output markers of a block's source (padded to page lines), and its marker errors."""
    markers: dict[int, Marker] = {}
    errors: list[str] = []
    ends = _simple_statements(tree)
    last: Marker | None = None  # the marker a "# →" line just below may continue
    last_line = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        found = _MARKER.match(token.string)
        if found is None:
            lookalike = _LOOKALIKE.match(token.string)
            if lookalike:
                errors.append(f"line {line}: {token.string.strip()!r} looks like an output marker, "
                              f"but the one form is '# {MARKER} expected' ({MARKER} is U+2192)")
            continue
        text = found.group(1).strip()
        if not token.line[: token.start[1]].strip():  # a comment-only line: continues a marker
            if last is not None and last_line == line - 1:
                last.expected.append(text)
                last_line = line
            else:
                errors.append(f"line {line}: a '# {MARKER}' line must continue the marker of a "
                              f"print on the line directly above")
            continue
        last = None
        statements = ends.get(line, [])
        if len(statements) != 1:
            what = "no statement ends" if not statements else f"{len(statements)} statements end"
            errors.append(f"line {line}: '# {MARKER}' must end a print(...) statement, but {what} "
                          f"on this line")
        elif not _is_print(statements[0]):
            statement = ast.get_source_segment(source, statements[0]) or token.line.strip()
            errors.append(f"line {line}: '# {MARKER}' must end a print(...) statement, but the "
                          f"statement that ends here is `{statement}`")
        else:
            last = markers[line] = Marker(line, [text])
            last_line = line
    return markers, errors


class _CheckPrints(ast.NodeTransformer):
    """print(...) -> __docs_print__(LINE, print)(...), for the marked print statements."""

    def __init__(self, lines: set[int]) -> None:
        self.lines = lines

    def visit_Expr(self, node: ast.Expr) -> ast.Expr:
        if node.end_lineno in self.lines and _is_print(node):
            call = node.value
            assert isinstance(call, ast.Call)
            call.func = ast.copy_location(
                ast.Call(
                    func=ast.Name(CHECKER_NAME, ast.Load()),
                    args=[ast.Constant(node.end_lineno), call.func],
                    keywords=[],
                ),
                call.func,
            )
        return node


def run_python(block: Block, namespace: dict[str, Any], filename: str) -> str | None:
    """Run a python block; return None, or the report of its failure."""
    # Pad so the compiled line numbers are the page's line numbers.
    source = "\n" * (block.first_line - 1) + block.code
    try:
        tree = ast.parse(source, filename)
        markers, errors = find_markers(source, tree)
        if errors:
            return (f"python block at line {block.fence_line} has bad output markers:\n"
                    + "".join(f'  File "{filename}", {error}\n' for error in errors))
        if markers:
            namespace[CHECKER_NAME].markers.update(markers)
            tree = ast.fix_missing_locations(_CheckPrints(set(markers)).visit(tree))
        code = compile(tree, filename, "exec", flags=COMPILE_FLAGS, dont_inherit=True)
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
            [sys.executable, "-m", "netshell.app.cli", "run", "--exit", "--keep-going", str(path)],
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
    namespace[CHECKER_NAME] = PrintChecker(filename)
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
        # Marked prints that printed something else while this block ran (in its own code,
        # or in a function or callback defined earlier), even if the page caught the error.
        mismatches = namespace[CHECKER_NAME].take_pending()
        if mismatches:
            failure = "\n".join(
                [f"{block.kind} block at line {block.fence_line} failed:", *mismatches,
                 *([failure] if failure else [])]
            )
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
    never_ran = namespace[CHECKER_NAME].never_ran()
    if never_ran:
        print("\n".join(never_ran), file=sys.stderr)
        print(f"docs_runner: {path.name}: FAILED: a marked print never ran; ran "
              f"{len(blocks)} blocks ({_kinds(counts)})", file=sys.stderr)
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
