"""tests/docs_runner.py: which blocks of a page it runs, and how it fails."""

from __future__ import annotations

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
