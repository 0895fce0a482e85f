"""The netshell pytest plugin (registered by entry point): reactor and clock fixtures.

- ``reactor``: a fresh reactor on a fresh loop for each test, installed as
  this thread's (so ``netshell.reactor`` is it), closed after the test.
- ``clock``: a :class:`~netshell.testing.Clock` for virtual time.
- ``async def`` tests run on the ``reactor`` fixture's loop (they get the
  fixture whether they ask for it or not); ``await`` Deferreds freely there.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any, cast

import pytest

from netshell.reactor import Reactor, install
from netshell.testing.clock import Clock


@pytest.fixture
def reactor() -> Iterator[Reactor]:
    """A fresh reactor on a fresh loop, this thread's reactor for the test."""
    r = Reactor()
    install(r)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def clock() -> Clock:
    """A Clock at time 0: time moves only with ``clock.advance(seconds)``."""
    return Clock()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "async_timeout(seconds): bound for an async def test run on the reactor"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.obj):
            continue
        if "reactor" not in item.fixturenames:
            item.fixturenames.append("reactor")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    r = cast(Reactor, pyfuncitem.funcargs["reactor"])
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}
    marker = pyfuncitem.get_closest_marker("async_timeout")
    timeout = float(marker.args[0]) if marker else 60.0
    r.run_until(pyfuncitem.obj(**kwargs), timeout=timeout)
    return True
