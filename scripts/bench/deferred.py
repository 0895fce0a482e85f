"""Benchmark: netshell's Deferred against Twisted's, side by side, in one run.

Usage::

    PYTHONPATH=. python scripts/bench/deferred.py [--quick] [--json PATH]
        [--repeats N] [--min-time SECONDS] [--loop asyncio|uvloop] [--observer]

Each case is written twice with the same shape, once per library, and timed
the way timeit does it: a tight loop of ``n`` operations (``n`` chosen so a
repeat takes at least ``--min-time``, the same ``n`` for both sides), the
cyclic garbage collector off while timing, several repeats, the best (least)
time kept per side. The repeats of the two libraries are interleaved, and
which side goes first alternates, so machine noise lands on both.

Before timing, every case is run once per library and its result checked; a
wrong result (here or after any timed repeat) stops the run with exit status 1,
so a broken Deferred is never measured. Otherwise the exit status is 0 whether
or not the goal is met: this is a measurement, not a test. The goal is
netshell/Twisted >= 1.2 in every case.

``--observer`` registers an observer of every Deferred event
(:mod:`netshell.observe`; it only counts them) for the whole run: what the
prompt's chain recording costs at the least. Without it no observer is
registered, and the core's hooks cost one test of an empty tuple each.

Twisted (the ``bench`` extra) is needed; netshell itself never imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import netshell as ns
from netshell import observe

try:
    import twisted
    from twisted.internet import defer as tw
except ImportError:  # pragma: no cover - depends on the environment
    twisted = None  # type: ignore[assignment]
    tw = None  # type: ignore[assignment]

GOAL = 1.2  # netshell ops/s divided by Twisted ops/s, in every case
AWAITS_PER_TASK = 10_000  # case 3: awaits inside one coroutine
CHAIN_DEPTH = 10  # case 2, deep variant: Deferreds in the nested chain

# (elapsed seconds, result of the last operation)
LoopFn = Callable[[int], tuple[float, Any]]


class WrongResult(Exception):
    """A case gave a result other than the expected one."""


class CountingObserver:
    """An observer of every Deferred event that only counts them (``--observer``)."""

    def __init__(self) -> None:
        self.events = 0

    def deferred_step_added(self, d: Any, step: Any, callback: Any, errback: Any) -> None:
        self.events += 1

    def deferred_step_ran(self, d: Any, step: Any, fn: Any, got: Any, result: Any,
                          raised: bool) -> None:
        self.events += 1

    def deferred_fired(self, d: Any, result: Any) -> None:
        self.events += 1

    def deferred_settled(self, d: Any, result: Any) -> None:
        self.events += 1


# ---- the steps of the chains: plain functions, shared by both libraries


def _inc(x: int) -> int:
    return x + 1


def _double(x: int) -> int:
    return x * 2


def _return_inner(_result: object, inner: Any) -> Any:
    # A callback that returns a Deferred which has not fired yet.
    return inner


async def _await_all(ds: list[Any]) -> int:
    # The same coroutine for both libraries: each Deferred has fired already.
    total = 0
    for d in ds:
        total += await d
    return total


# ---- case 1: create a Deferred, add 3 callbacks, fire it


def ns_create_fire(n: int) -> tuple[float, Any]:
    Deferred, inc, double = ns.Deferred, _inc, _double
    d = None
    t0 = perf_counter()
    for _ in itertools.repeat(None, n):
        d = Deferred()
        d.add_callback(inc)
        d.add_callback(double)
        d.add_callback(inc)
        d.callback(1)
    t1 = perf_counter()
    return t1 - t0, d.result if d is not None else None


def tw_create_fire(n: int) -> tuple[float, Any]:
    Deferred, inc, double = tw.Deferred, _inc, _double
    d = None
    t0 = perf_counter()
    for _ in itertools.repeat(None, n):
        d = Deferred()
        d.addCallback(inc)
        d.addCallback(double)
        d.addCallback(inc)
        d.callback(1)
    t1 = perf_counter()
    return t1 - t0, d.result if d is not None else None


# ---- case 2: a callback returns an unfired inner Deferred; the inner one fires


def ns_chain(n: int) -> tuple[float, Any]:
    Deferred, inc, return_inner = ns.Deferred, _inc, _return_inner
    outer = None
    t0 = perf_counter()
    for _ in itertools.repeat(None, n):
        outer = Deferred()
        inner = Deferred()
        outer.add_callback(return_inner, inner)
        outer.add_callback(inc)
        outer.callback(None)  # the outer chain now waits on inner
        inner.callback(1)  # ... and resumes: inc(1)
    t1 = perf_counter()
    return t1 - t0, outer.result if outer is not None else None


def tw_chain(n: int) -> tuple[float, Any]:
    Deferred, inc, return_inner = tw.Deferred, _inc, _return_inner
    outer = None
    t0 = perf_counter()
    for _ in itertools.repeat(None, n):
        outer = Deferred()
        inner = Deferred()
        outer.addCallback(return_inner, inner)
        outer.addCallback(inc)
        outer.callback(None)
        inner.callback(1)
    t1 = perf_counter()
    return t1 - t0, outer.result if outer is not None else None


# ---- case 2, deep: 10 nested Deferreds, each waiting on the next, resolved
# from the innermost. One operation is one whole chain built and resolved.


def ns_chain_deep(n: int) -> tuple[float, Any]:
    Deferred, inc, return_inner = ns.Deferred, _inc, _return_inner
    links = range(CHAIN_DEPTH - 1)
    outer = None
    t0 = perf_counter()
    for _ in itertools.repeat(None, n):
        # Built from the inside out, so that every Deferred has its own steps
        # before another one starts waiting on it.
        innermost = outer = Deferred()
        for _ in links:
            inner, outer = outer, Deferred()
            outer.add_callback(return_inner, inner)
            outer.callback(None)  # outer now waits on inner (itself waiting, but for one)
        outer.add_callback(inc)
        innermost.callback(1)  # the result climbs out through all of them to inc
    t1 = perf_counter()
    return t1 - t0, outer.result if outer is not None else None


def tw_chain_deep(n: int) -> tuple[float, Any]:
    Deferred, inc, return_inner = tw.Deferred, _inc, _return_inner
    links = range(CHAIN_DEPTH - 1)
    outer = None
    t0 = perf_counter()
    for _ in itertools.repeat(None, n):
        innermost = outer = Deferred()
        for _ in links:
            inner, outer = outer, Deferred()
            outer.addCallback(return_inner, inner)
            outer.callback(None)
        outer.addCallback(inc)
        innermost.callback(1)
    t1 = perf_counter()
    return t1 - t0, outer.result if outer is not None else None


# ---- case 3: await of an already-fired Deferred inside a coroutine.
# One operation is one await. The fired Deferreds are made before the clock
# starts; the coroutine (and, for netshell, the asyncio task running it) is
# made inside it, amortised over ``per_task`` awaits.


def _task_sizes(n: int, per_task: int) -> list[int]:
    full, rest = divmod(n, per_task)
    return [per_task] * full + ([rest] if rest else [])


def make_ns_await(loop: asyncio.AbstractEventLoop, per_task: int) -> LoopFn:
    def ns_await(n: int) -> tuple[float, Any]:
        succeed, run = ns.succeed, loop.run_until_complete
        elapsed, result = 0.0, None
        for size in _task_sizes(n, per_task):
            ds = [succeed(i) for i in range(size)]
            t0 = perf_counter()
            result = run(_await_all(ds))
            elapsed += perf_counter() - t0
        return elapsed, result

    return ns_await


def make_tw_await(per_task: int) -> LoopFn:
    def tw_await(n: int) -> tuple[float, Any]:
        succeed, from_coroutine = tw.succeed, tw.Deferred.fromCoroutine
        elapsed, result = 0.0, None
        for size in _task_sizes(n, per_task):
            ds = [succeed(i) for i in range(size)]
            t0 = perf_counter()
            d = from_coroutine(_await_all(ds))
            elapsed += perf_counter() - t0
            result = d.result
        return elapsed, result

    return tw_await


# ---- running


@dataclass
class Case:
    name: str
    description: str
    unit: str
    netshell: LoopFn
    twisted: LoopFn
    expected: Callable[[int], Any]  # n -> the result of the last operation
    quick_n: int
    min_n: int = 1  # the smallest n worth timing (and the one verified)


@dataclass
class Result:
    case: Case
    n: int
    ns_best: float
    tw_best: float

    @property
    def ns_ops(self) -> float:
        return self.n / self.ns_best

    @property
    def tw_ops(self) -> float:
        return self.n / self.tw_best

    @property
    def ratio(self) -> float:
        return self.ns_ops / self.tw_ops


def make_cases(loop: asyncio.AbstractEventLoop, quick: bool) -> list[Case]:
    per_task = 500 if quick else AWAITS_PER_TASK

    def await_expected(n: int) -> int:
        last = _task_sizes(n, per_task)[-1]
        return last * (last - 1) // 2  # the sum of 0 .. last-1

    return [
        Case(
            "create_3cb_fire",
            "create a Deferred, add 3 callbacks, fire it",
            "Deferreds",
            ns_create_fire,
            tw_create_fire,
            lambda n: 5,
            quick_n=500,
        ),
        Case(
            "chain_1",
            "callback returns an unfired inner Deferred; inner fires, outer resumes",
            "resolutions",
            ns_chain,
            tw_chain,
            lambda n: 2,
            quick_n=500,
        ),
        Case(
            f"chain_{CHAIN_DEPTH}",
            f"{CHAIN_DEPTH} nested Deferreds resolved from the innermost (per whole chain)",
            "resolutions",
            ns_chain_deep,
            tw_chain_deep,
            lambda n: 2,
            quick_n=100,
        ),
        Case(
            "await_fired",
            f"await an already-fired Deferred in a coroutine ({per_task:,} awaits per task)",
            "awaits",
            make_ns_await(loop, per_task),
            make_tw_await(per_task),
            await_expected,
            quick_n=1000,
            min_n=per_task,
        ),
    ]


def timed(fn: LoopFn, n: int) -> tuple[float, Any]:
    """Run ``fn(n)`` the way timeit does: collected first, no gc while timing."""
    gc.collect()
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return fn(n)
    finally:
        if gc_was_on:
            gc.enable()


def check(case: Case, side: str, n: int, result: Any) -> None:
    want = case.expected(n)
    if result != want:
        raise WrongResult(f"{case.name} ({side}): expected {want!r}, got {result!r}")


def calibrate(case: Case, min_time: float) -> int:
    """The n (1, 2, 5, 10, 20, 50, ... times min_n) making both sides take min_time."""
    n_for_side = []
    for side, fn in (("netshell", case.netshell), ("Twisted", case.twisted)):
        for n in (case.min_n * m * 10**e for e in itertools.count() for m in (1, 2, 5)):
            elapsed, result = timed(fn, n)
            check(case, side, n, result)
            if elapsed >= min_time:
                n_for_side.append(n)
                break
    return max(n_for_side)


def run_case(case: Case, repeats: int, min_time: float, quick: bool) -> Result:
    # Verify once per library before timing anything.
    for side, fn in (("netshell", case.netshell), ("Twisted", case.twisted)):
        check(case, side, case.min_n, fn(case.min_n)[1])
    n = case.quick_n if quick else calibrate(case, min_time)
    best = {"netshell": float("inf"), "Twisted": float("inf")}
    sides = [("netshell", case.netshell), ("Twisted", case.twisted)]
    for r in range(repeats):
        for side, fn in sides if r % 2 == 0 else sides[::-1]:
            elapsed, result = timed(fn, n)
            check(case, side, n, result)
            best[side] = min(best[side], elapsed)
    return Result(case, n, best["netshell"], best["Twisted"])


# ---- reporting


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="ops/s of netshell's Deferred and Twisted's, side by side, and their ratio"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny iteration counts: a smoke test, not a measurement",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
    parser.add_argument("--repeats", type=int, help="repeats per side (default 7; 2 with --quick)")
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.2,
        help="seconds one repeat takes at least; sets n (default 0.2)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop running netshell's coroutines in the await case",
    )
    parser.add_argument(
        "--observer",
        action="store_true",
        help="register an observer of every Deferred event for the run (it only counts)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    if repeats < 1:
        parser.error("--repeats must be at least 1")

    if tw is None:
        print(
            "deferred.py: Twisted is not installed; install the bench extra: "
            "pip install -e '.[bench]'",
            file=sys.stderr,
        )
        return 2

    loop = new_loop(args.loop)
    loop_name = f"{args.loop} ({type(loop).__module__}.{type(loop).__qualname__})"
    machine = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    print(f"Python   {platform.python_implementation()} {platform.python_version()}")
    print(f"netshell {ns.__version__} ({os.path.dirname(ns.__file__)})")
    print(f"Twisted  {twisted.__version__}")
    print(f"loop     {loop_name}; Twisted runs its coroutine with Deferred.fromCoroutine")
    print(f"machine  {machine['cpus']} CPUs, {machine['cpu']}, {machine['platform']}")
    mode = "QUICK (smoke test: the numbers mean nothing)" if args.quick else "full"
    print(f"mode     {mode}; best of {repeats} interleaved repeats per side, gc off while timing")
    counting = CountingObserver() if args.observer else None
    if counting is not None:
        observe.add_observer(counting)
    print(f"observer {'one, of every Deferred event (counting)' if counting else 'none'}")
    print()
    results: list[Result] = []
    try:
        for case in make_cases(loop, args.quick):
            results.append(run_case(case, repeats, args.min_time, args.quick))
    except WrongResult as e:
        print(f"deferred.py: WRONG RESULT, not measuring a broken case: {e}", file=sys.stderr)
        return 1
    finally:
        loop.close()
        if counting is not None:
            observe.remove_observer(counting)

    header = ("case", "netshell ops/s", "Twisted ops/s", "ratio", f"goal >= {GOAL}")
    rows = [
        (
            r.case.name,
            f"{r.ns_ops:,.0f}",
            f"{r.tw_ops:,.0f}",
            f"{r.ratio:.2f}",
            "yes" if r.ratio >= GOAL else "NO",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        )

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    print()
    for r in results:
        print(f"{r.case.name}: {r.case.description}; n={r.n:,} {r.case.unit} per repeat")

    if args.json:
        data = {
            "benchmark": "deferred",
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "quick": args.quick,
            "python": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "netshell": ns.__version__,
            "netshell_path": os.path.dirname(ns.__file__),
            "twisted": twisted.__version__,
            "loop": loop_name,
            "machine": machine,
            "repeats": repeats,
            "goal_ratio": GOAL,
            "cases": {
                r.case.name: {
                    "description": r.case.description,
                    "unit": r.case.unit,
                    "n": r.n,
                    "netshell_best_s": r.ns_best,
                    "twisted_best_s": r.tw_best,
                    "netshell_ops_per_s": r.ns_ops,
                    "twisted_ops_per_s": r.tw_ops,
                    "ratio": r.ratio,
                    "meets_goal": r.ratio >= GOAL,
                }
                for r in results
            },
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
