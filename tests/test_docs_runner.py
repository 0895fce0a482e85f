"""tests/docs_runner.py: which blocks of a page it runs, and how it fails."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

RUNNER = Path(__file__).resolve().parent / "docs_runner.py"


def _load_runner() -> ModuleType:
    # By path, so it works whatever pytest's import mode.
    name = "netshell_tests_docs_runner"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, RUNNER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


docs_runner = _load_runner()

FENCE = "```"


def md(text: str) -> str:
    """Dedent a page, and let ''' stand for a backtick fence (clearer inside Python)."""
    return textwrap.dedent(text).lstrip("\n").replace("'''", FENCE)


def run_page(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    page = tmp_path / "page.md"
    page.write_text(md(text), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(RUNNER), str(page)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


def test_passing_page_shares_one_namespace(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        # A page

        '''python
        greeting = "hello"
        '''

        '''pycon
        >>> greeting.upper()
        'HELLO'
        >>> words = [greeting] * 3
        >>> print(" ".join(words))
        hello   hello
            hello
        >>> list(range(100))
        [0, 1, 2, ..., 99]
        >>> {}["missing"]
        Traceback (most recent call last):
          ...
        KeyError: 'missing'
        '''

        1. In a list item:

           '''python
           assert words == ["hello"] * 3
           print("python blocks print freely")
           '''

        ~~~python
        assert __name__ == "__main__"
        ~~~
        """,
    )
    assert proc.returncode == 0, proc.stdout
    assert "python blocks print freely" in proc.stdout
    assert "page.md: ok, ran 4 blocks (3 python, 1 pycon)" in proc.stdout


def test_raising_python_block_fails_with_its_line(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        # A page

        '''python
        x = 1
        '''

        Then:

        '''python
        def divide(n):
            return n / 0

        divide(x)
        '''

        '''python
        print("after the failure")
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "python block at line 9 raised" in proc.stdout
    # The traceback names the page's own lines: the call and the division.
    assert 'page.md", line 13, in <module>' in proc.stdout
    assert 'page.md", line 11, in divide' in proc.stdout
    assert "ZeroDivisionError" in proc.stdout
    assert "FAILED at line 9" in proc.stdout
    assert "after the failure" not in proc.stdout  # the page stops at its first failure


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    proc = run_page(tmp_path, "'''python\nok = 1\nbroken = (\n'''\n")
    assert proc.returncode == 1, proc.stdout
    assert 'page.md", line 3' in proc.stdout
    assert "SyntaxError" in proc.stdout


def test_pycon_with_wrong_output_fails_with_the_doctest_report(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        # A page

        '''pycon
        >>> 1 + 1
        2
        >>> 6 * 7
        41
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "pycon block at line 3 failed" in proc.stdout
    assert 'page.md", line 6' in proc.stdout  # the failing example's line in the page
    assert "Expected:\n    41\nGot:\n    42" in proc.stdout


def test_malformed_pycon_fails(tmp_path: Path) -> None:
    proc = run_page(tmp_path, "'''pycon\n>>>print(1)\n1\n'''\n")
    assert proc.returncode == 1, proc.stdout
    assert "not a valid doctest" in proc.stdout


def test_blocks_that_are_not_python_or_pycon_are_not_run(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        # A page

        '''text
        raise SystemExit(3)
        '''

        '''console
        $ python -c 'raise SystemExit(3)'
        '''

        '''bash
        exit 3
        '''

        '''{code-block} python
        raise SystemExit(3)
        '''

        '''python title="example.py"
        raise SystemExit(3)
        '''

        '''
        raise SystemExit(3)
        '''

            raise SystemExit(3)  # an indented code block

        ''''markdown
        '''python
        raise SystemExit(3)
        '''
        ''''
        """,
    )
    assert proc.returncode == 0, proc.stdout
    assert "page.md: ok, ran 0 blocks (0 python, 0 pycon)" in proc.stdout


def test_top_level_await_runs_on_the_current_loop(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        import asyncio
        loop = asyncio.get_event_loop_policy().get_event_loop()
        await asyncio.sleep(0)
        assert asyncio.get_running_loop() is loop
        '''

        '''pycon
        >>> await asyncio.sleep(0, result="slept")
        'slept'
        >>> asyncio.get_event_loop_policy().get_event_loop() is loop
        True
        '''

        '''python
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            print("blocks without await run with no loop running")
        '''
        """,
    )
    assert proc.returncode == 0, proc.stdout
    assert "blocks without await run with no loop running" in proc.stdout
    assert "ran 3 blocks (2 python, 1 pycon)" in proc.stdout


def test_exception_in_awaiting_block_is_reported(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        import asyncio

        async def fails():
            await asyncio.sleep(0)
            raise ValueError("from a coroutine")

        await fails()
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert 'page.md", line 6, in fails' in proc.stdout
    assert "ValueError: from a coroutine" in proc.stdout


def test_find_blocks_gives_kinds_and_lines() -> None:
    text = md(
        """
        # Title

        '''pycon
        >>> 1
        1
        '''

        '''text
        not run
        '''

        '''python
        a = 1
        b = 2
        '''
        """
    )
    blocks = docs_runner.find_blocks(text)
    assert [(b.kind, b.fence_line, b.first_line) for b in blocks] == [
        ("pycon", 3, 4),
        ("python", 12, 13),
    ]
    assert blocks[1].code == "a = 1\nb = 2\n"


@pytest.mark.parametrize("args", [[], ["a.md", "b.md"], ["does-not-exist.md"]])
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr


# Checked output: print(...)  # → expected


def test_marked_prints_that_print_what_they_say_pass(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        import sys
        print(6 * 7)                       # → 42
        print("a", "b", sep="-")           # → a-b
        print("spaced    out")             # →   spaced out
        print(list(range(100)))            # → [0, 1, 2, ..., 99]
        print(object())                    # → <object object at 0x...>
        print("one\\ntwo")                  # → one
                                           # → two
        print()                            # →
        print(
            "over", "lines",
        )                                  # → over lines
        if True: print("in an if")         # → in an if
        print("to stderr", file=sys.stderr)  # → to stderr
        print("prose follows")             # this comment is prose, not output
        '''
        """,
    )
    assert proc.returncode == 0, proc.stdout
    # The marked calls still print where they would have.
    assert "42\na-b\nspaced    out\n" in proc.stdout
    assert "one\ntwo\n\nover lines\nin an if\n" in proc.stdout
    assert "to stderr\n" in proc.stdout
    assert "prose follows" in proc.stdout
    assert "page.md: ok, ran 1 blocks" in proc.stdout


def test_marked_print_that_prints_something_else_fails_with_its_line(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        # A page

        '''python
        print(6 * 7)    # → 42
        print(6 * 7)    # → 43
        print("after the mismatch")
        '''

        '''python
        print("the next block")
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "python block at line 3 failed" in proc.stdout
    assert 'page.md", line 5: the marked print printed something else' in proc.stdout
    assert "Expected:\n    43\nGot:\n    42" in proc.stdout
    assert "FAILED at line 3" in proc.stdout
    # A mismatch does not change how the block runs: it is reported when the block is done,
    # and the page stops there.
    assert proc.stdout.index("after the mismatch") < proc.stdout.index("the marked print printed")
    assert "the next block" not in proc.stdout


@pytest.mark.parametrize(
    ("marker", "passes"),
    [
        ("# → <Listener tcp 127.0.0.1:... Counter listening, 0 connections>", True),
        ("# → <Listener tcp ...>", True),
        ("# → <Listener tcp 127.0.0.1:... Counter listening, 1 connections>", False),
        ("# → <Listener tcp 127.0.0.1:PORT Counter listening, 0 connections>", False),
    ],
)
def test_marker_ellipsis(tmp_path: Path, marker: str, passes: bool) -> None:
    page = f"""
        '''python
        print("<Listener tcp 127.0.0.1:40419 Counter listening, 0 connections>")  {marker}
        '''
        """
    proc = run_page(tmp_path, page)
    assert proc.returncode == (0 if passes else 1), proc.stdout
    if not passes:
        assert 'page.md", line 2: the marked print printed something else' in proc.stdout


@pytest.mark.parametrize(
    ("code", "marker_line", "complaint"),
    [
        ("x = print(1)   # → 1", 3, "the statement that ends here is `x = print(1)`"),
        ("log(1)   # → 1", 3, "the statement that ends here is `log(1)`"),
        ("print(1); print(2)   # → 2", 3, "2 statements end on this line"),
        ("for i in range(1):   # → 0\n    pass", 3, "no statement ends on this line"),
        ("print(\n    1,   # → 1\n)", 4, "no statement ends on this line"),
        ("x = 1\n# → 1", 4, "must continue the marker of a print on the line directly above"),
        ("print(1)   # → 1\n\n# → 2", 5, "must continue the marker of a print on the line"),
        ("print(1)   # -> 1", 3, "'# -> 1' looks like an output marker, but the one form is"),
        ("print(1)   #=> 1", 3, "'#=> 1' looks like an output marker"),
        ("print(1)   # ⇒ 1", 3, "'# ⇒ 1' looks like an output marker"),
    ],
)
def test_marker_that_marks_no_print_is_an_error(
    tmp_path: Path, code: str, marker_line: int, complaint: str
) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"{FENCE}python\nprint('before')\n{code}\n{FENCE}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(RUNNER), str(page)], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout
    assert "python block at line 1 has bad output markers" in proc.stdout
    assert f'page.md", line {marker_line}: ' in proc.stdout
    assert complaint in proc.stdout
    assert not proc.stdout.startswith("before")  # the block did not run


def test_marked_print_that_is_not_the_builtin_print_is_an_error(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        def print(*args):
            pass

        print(1)   # → 1
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert 'page.md", line 5: the marked call is not the builtin print' in proc.stdout


def test_marked_print_in_a_block_with_top_level_await(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        import asyncio
        loop = asyncio.get_event_loop_policy().get_event_loop()
        print(await asyncio.sleep(0, result="slept"))   # → slept
        print(asyncio.get_running_loop() is loop)       # → True
        '''

        '''python
        print(await asyncio.sleep(0, result="woke"))    # → slept
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "slept\nTrue\n" in proc.stdout  # the first block ran on the loop, and passed
    assert "python block at line 8 failed" in proc.stdout
    assert 'page.md", line 9: the marked print printed something else' in proc.stdout
    assert "Expected:\n    slept\nGot:\n    woke" in proc.stdout


def test_marked_print_in_a_loop_is_checked_each_time(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        for word in ["spam", "spam", "eggs"]:
            print(word)   # → spam
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "spam\nspam\neggs\n" in proc.stdout
    assert 'page.md", line 3: the marked print printed something else' in proc.stdout
    assert "Expected:\n    spam\nGot:\n    eggs" in proc.stdout


def test_marked_print_in_a_function_is_checked_where_it_is_called(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        def greet(name):
            print(f"hello {name}")   # → hello world
        greet("world")
        '''

        Later, a call that prints something else, and a page that swallows errors:

        '''python
        try:
            greet("there")
        except Exception:
            pass
        print("the block went on")
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "the block went on" in proc.stdout
    assert "python block at line 9 failed" in proc.stdout  # the block that made the call
    assert 'page.md", line 3: the marked print printed something else' in proc.stdout
    assert "Expected:\n    hello world\nGot:\n    hello there" in proc.stdout


def test_marked_print_called_from_a_pycon_block_is_checked(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        def show(n):
            print(n)   # → 1
        '''

        '''pycon
        >>> show(2)
        2
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "pycon block at line 6 failed" in proc.stdout
    assert 'page.md", line 3: the marked print printed something else' in proc.stdout


def test_mismatch_does_not_keep_a_coroutine_from_stopping_the_reactor(tmp_path: Path) -> None:
    # The README's shape: a coroutine prints, then stops the reactor that reactor.run() runs.
    proc = run_page(
        tmp_path,
        """
        '''python
        import netshell as ns
        from netshell import reactor

        async def main():
            print(await ns.succeed(42))   # → 43
            reactor.stop()

        ns.ensure_deferred(main())
        reactor.run()
        print("the reactor stopped")
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert "the reactor stopped" in proc.stdout
    assert 'page.md", line 6: the marked print printed something else' in proc.stdout
    assert "Expected:\n    43\nGot:\n    42" in proc.stdout


def test_marked_print_that_never_runs_fails_the_page(tmp_path: Path) -> None:
    proc = run_page(
        tmp_path,
        """
        '''python
        def never_called():
            print("unchecked")   # → unchecked
        '''
        """,
    )
    assert proc.returncode == 1, proc.stdout
    assert 'page.md", line 3: the marked print never ran' in proc.stdout
    assert "FAILED: a marked print never ran" in proc.stdout


def test_find_markers_gives_lines_and_expected_text() -> None:
    source = md(
        """
        x = 1  # prose
        print(x)     # → 1
        print("a\\nb")  # → a
                       # →    b
        print(x)     # not a marker
        """
    )
    markers, errors = docs_runner.find_markers(source, ast.parse(source))
    assert errors == []
    assert {line: m.expected for line, m in markers.items()} == {2: ["1"], 3: ["a", "b"]}
    assert markers[3].want() == "a\nb\n"
