"""The documentation builds without a warning, and every example in it runs.

Examples are the runnable fenced blocks (``python``, ``pycon``, ``netsh``,
``netsh-cli``) of ``docs/**/*.md`` and of the README; tests/docs_runner.py says how
they are run, and how ``print(...)  # → expected`` is checked. Each page runs in a
fresh interpreter, so no reactor or loop leaks from one page to the next.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
RUNNER = Path(__file__).resolve().parent / "docs_runner.py"
PAGE_TIMEOUT = 240  # seconds for one page's examples


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


def doc_pages() -> list[Path]:
    """Every Markdown page of the docs, leaving out _build and hidden folders."""
    return sorted(
        p
        for p in DOCS.rglob("*.md")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(DOCS).parts)
    )


def example_pages() -> list[Path]:
    """The pages whose examples run: the docs, and the README (its ```console blocks are
    not runnable kinds, so only its ```python example runs)."""
    return [*doc_pages(), README]


def page_id(page: Path) -> str:
    return page.relative_to(DOCS if page.is_relative_to(DOCS) else ROOT).as_posix()


def env_with_checkout() -> dict[str, str]:
    """The environment, with this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.timeout(600)
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT,
        env=env_with_checkout(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, f"sphinx failed (exit {proc.returncode}):\n{proc.stdout}"
    assert (out / "index.html").is_file()


def test_some_page_has_runnable_examples() -> None:
    pages = doc_pages()
    assert pages, f"no Markdown pages under {DOCS}"
    runnable = {
        p.relative_to(DOCS).as_posix(): len(docs_runner.find_blocks(p.read_text(encoding="utf-8")))
        for p in pages
    }
    assert any(runnable.values()), (
        f"no page has a ```python or ```pycon block, so no example is checked: {runnable}"
    )


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.parametrize("page", example_pages(), ids=page_id)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    # The examples run in a scratch directory: whatever files they write land there.
    try:
        proc = subprocess.run(
            [sys.executable, str(RUNNER), str(page)],
            cwd=tmp_path,
            env=env_with_checkout(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=PAGE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        pytest.fail(f"examples of {page.name} still running after {PAGE_TIMEOUT}s:\n{output}")
    assert proc.returncode == 0, f"examples of {page.name} failed:\n{proc.stdout}"
    assert "docs_runner: " in proc.stdout, proc.stdout
