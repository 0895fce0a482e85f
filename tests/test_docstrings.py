"""Every example in a docstring of netshell and protocols runs, each module in a fresh process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in ("netshell", "protocols")
    for path in (ROOT / package).rglob("*.py")
    if path.name != "__main__.py"
)

RUNNER = """
import doctest, importlib, sys
module = importlib.import_module(sys.argv[1])
result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
print(f"doctest {result.failed} {result.attempted}")
"""


def run_doctests(module: str) -> tuple[int, int, str]:
    proc = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", RUNNER, module],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1].split()
    return int(last[1]), int(last[2]), proc.stdout + proc.stderr


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    failed, _, output = run_doctests(module)
    assert failed == 0, output


def test_the_core_modules_have_docstring_examples() -> None:
    for module in (
        "netshell.defer",
        "netshell.reactor",
        "netshell.failure",
        "netshell.testing.clock",
    ):
        _, attempted, _ = run_doctests(module)
        assert attempted > 0, module
