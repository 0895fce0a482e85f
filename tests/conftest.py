"""The suite's own rules, for every test under tests/.

**No silent skips under CI.** When ``CI=true`` (``scripts/test`` sets it, so CI and a
developer running the test command get the same rules), a skipped test fails, unless its
reason matches one entry of :data:`ALLOWED_SKIPS`: a short list of conditions of the host
that no install step can change, each with its reason. The run ends with one line that
counts the skipped tests and names every allow-listed skip. Outside CI a skip stays a skip
(a developer without a peer installed can still run the rest).

**File descriptors.** A test that opens many sockets says so with
``@pytest.mark.needs_fds(N)``; the limit is raised for it (and put back after), instead of
the test relying on an earlier one having raised it.
"""

from __future__ import annotations

import gc
import os
import re
import resource
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class AllowedSkip:
    """A skip that CI accepts: its name, the reason text it matches, and why it is allowed."""

    name: str
    pattern: re.Pattern[str]
    why: str


ALLOWED_SKIPS = (
    AllowedSkip(
        "ipv6",
        re.compile(r"no IPv6 loopback"),
        "the host has no ::1 (containers are often started without IPv6)",
    ),
)


def under_ci() -> bool:
    """Whether the run is under CI's rules (``CI=true``, as ``scripts/test`` sets)."""
    return os.environ.get("CI", "").lower() == "true"


def allowed_skip(reason: str) -> AllowedSkip | None:
    """The allow-list entry that ``reason`` matches, or None."""
    for entry in ALLOWED_SKIPS:
        if entry.pattern.search(reason):
            return entry
    return None


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    return str(longrepr)


_allowed_seen: list[tuple[str, AllowedSkip, str]] = []
_skipped_count = 0


def _judge_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Count a skip; under CI, turn one that is not allow-listed into a failure."""
    global _skipped_count
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    entry = allowed_skip(reason)
    if under_ci() and entry is None:
        report.outcome = "failed"
        report.longrepr = (
            "skipped under CI, which allows no skip but those in ALLOWED_SKIPS "
            f"(tests/conftest.py): {reason}"
        )
        return
    _skipped_count += 1
    if entry is not None:
        _allowed_seen.append((report.nodeid, entry, reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    _judge_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    # A whole module skipped at import (importorskip, allow_module_level) follows the rule too.
    report: pytest.CollectReport = yield
    _judge_skip(report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rules = "CI rules: a skip fails unless allow-listed" if under_ci() else "not under CI"
    terminalreporter.write_line(f"skips: {_skipped_count} skipped ({rules})")
    for nodeid, entry, reason in _allowed_seen:
        terminalreporter.write_line(
            f"  allowed skip [{entry.name}] {nodeid}: {reason} — {entry.why}"
        )


# ---- file descriptors


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_fds(n): the test opens up to n file descriptors; the limit is raised"
    )


def _raise_fd_limit(needed: int) -> tuple[int, int] | None:
    """Raise RLIMIT_NOFILE to at least ``needed``; return the old limits, or None if untouched.

    The soft limit goes up to the hard one; the hard one too where the process may (root).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    if soft == infinity or soft >= needed:
        return None
    new_hard = hard
    if hard != infinity and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            pytest.skip(
                f"RLIMIT_NOFILE: the test needs {needed} file descriptors, the hard limit "
                f"is {hard} and this process may not raise it"
            )
        return soft, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, new_hard))
    return soft, hard


@pytest.fixture(autouse=True)
def _fd_limit_for_marked_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("needs_fds")
    if marker is None:
        yield
        return
    (needed,) = marker.args
    old = _raise_fd_limit(int(needed))
    try:
        yield
    finally:
        if old is not None:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, old)
            except (ValueError, OSError):
                # Lowering below what is open now can fail; the higher limit then stays.
                pass


@pytest.fixture(autouse=True)
def _no_observer_left_behind() -> Iterator[None]:
    """Fail a test that leaves an observer of the core registered (netshell.observe).

    Tracing, chain recording and notes are observers; one left behind would slow, and
    print into, every test that runs after it. It is removed, so only this test fails.
    """
    from netshell import observe

    before = observe.observers()
    yield
    left = [o for o in observe.observers() if o not in before]
    if left:
        gc.collect()  # what a collected Deferred or connection held goes with it
        left = [o for o in observe.observers() if o not in before]
    for o in left:
        observe.remove_observer(o)
    assert not left, f"observers left registered: {left!r}"


class _EveryDeferredEvent:
    """An observer of every Deferred event that keeps nothing but counts (see below)."""

    def __init__(self) -> None:
        self.events = 0

    def deferred_step_added(self, d: object, step: object, callback: object,
                            errback: object) -> None:
        self.events += 1

    def deferred_step_ran(self, d: object, step: object, fn: object, got: object,
                          result: object, raised: bool) -> None:
        self.events += 1

    def deferred_fired(self, d: object, result: object) -> None:
        self.events += 1

    def deferred_settled(self, d: object, result: object) -> None:
        self.events += 1


@pytest.fixture(scope="module", params=["unobserved", "observed"])
def each_way_observed(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run a module's tests twice: as they are, and with an observer of every Deferred
    event registered. A Deferred runs its chain through one of two loops, a plain one
    and one that tells the observers (netshell.defer: _run_callbacks, _run_watched), so
    the Deferred tests run on both. Module-scoped, for hypothesis's sake."""
    if request.param == "unobserved":
        yield
        return
    from netshell import observe

    observer = _EveryDeferredEvent()
    observe.add_observer(observer)
    try:
        yield
    finally:
        observe.remove_observer(observer)
    assert observer.events > 0, "the observed run saw no Deferred event"


@pytest.fixture
def netsh(tmp_path: Any) -> Iterator[Any]:
    """``netsh(*args)`` starts the netsh prompt in a terminal (its state and cwd in
    ``tmp_path``), for the tests that drive it; each is closed after the test. (A module
    may define its own ``netsh``.)"""
    from terminal import Terminal, netsh_argv

    terms: list[Terminal] = []

    def start(*args: str) -> Terminal:
        t = Terminal(netsh_argv(*args), env={"XDG_STATE_HOME": str(tmp_path / "state")},
                     cwd=str(tmp_path))
        terms.append(t)
        return t

    yield start
    for t in terms:
        t.close()
