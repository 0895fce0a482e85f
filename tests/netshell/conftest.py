"""Fixtures shared by the tests that drive the real netsh prompt in a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from terminal import Terminal, netsh_argv


@pytest.fixture
def netsh(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """``netsh(*args)`` starts netsh in a terminal (its state and cwd in ``tmp_path``);
    each one is closed after the test. (A module may define its own ``netsh``.)"""
    terms: list[Terminal] = []

    def start(*args: str) -> Terminal:
        t = Terminal(netsh_argv(*args), env={"XDG_STATE_HOME": str(tmp_path / "state")},
                     cwd=str(tmp_path))
        terms.append(t)
        return t

    yield start
    for t in terms:
        t.close()
