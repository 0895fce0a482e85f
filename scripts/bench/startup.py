"""Startup benchmark: time to a usable prompt, and time to run an empty script, in one run.

Two measures, each the median of ``--runs`` fresh processes (default 7), with
ratios against bare Python printed side by side:

- time to first prompt, in a pseudo-terminal (pexpect): from spawning until
  the prompt is drawn, for ``netsh``, ``netsh --ipython``, ``ipython`` and, as
  the floor, ``python -c pass`` (until it exits). Goal: ``netsh`` <= ``ipython``.
- headless start: ``netsh run empty.py`` against ``python -c pass`` and
  ``python -c "import twisted.internet.reactor"``, until each exits. Goal:
  ``netsh run`` at most 0.15 s over bare Python.

Every prompt runs with a throwaway ``XDG_STATE_HOME`` and ``IPYTHONDIR`` (no
history or profile of yours is read). Python's bytecode caches are warmed by
one untimed run of each command first.

Usage::

    python scripts/bench/startup.py                       # the full run
    python scripts/bench/startup.py --quick --json s.json  # what the smoke test runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

PYTHON = sys.executable
BIN = Path(PYTHON).parent
NETSH = str(BIN / "netsh") if (BIN / "netsh").exists() else None
IPYTHON = str(BIN / "ipython") if (BIN / "ipython").exists() else None
IPY_PROMPT = r"In \[(\x1b\[[0-9;]*m)*1"  # IPython colours the number


def _netsh(*args: str) -> list[str]:
    return [NETSH, *args] if NETSH else [PYTHON, "-m", "netshell.app.cli", *args]


def time_to_prompt(argv: list[str], prompt: str | None, env: dict[str, str]) -> float:
    """Seconds from spawn until ``prompt`` (a regex) shows; or until exit when None."""
    started = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", timeout=60,
                          dimensions=(40, 120))
    try:
        child.expect(prompt if prompt is not None else pexpect.EOF)
        elapsed = time.perf_counter() - started
    finally:
        child.sendcontrol("d")
        child.close(force=True)
    return elapsed


def measure(cases: dict[str, tuple[list[str], str | None]], runs: int,
            env: dict[str, str]) -> dict[str, float]:
    for argv, prompt in cases.values():  # warm the bytecode caches, untimed
        time_to_prompt(argv, prompt, env)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved, so drift hits every case alike
        for name, (argv, prompt) in cases.items():
            times[name].append(time_to_prompt(argv, prompt, env))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one run each, for a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_STATE_HOME=str(Path(tmp) / "state"),
                   IPYTHONDIR=str(Path(tmp) / "ipython"), TERM="xterm")
        empty = Path(tmp) / "empty.py"
        empty.write_text("")
        prompts: dict[str, tuple[list[str], str | None]] = {
            "python -c pass": ([PYTHON, "-c", "pass"], None),
            "netsh": (_netsh(), r"\[1\]>"),
            "netsh --ipython": (_netsh("--ipython"), IPY_PROMPT),
        }
        if IPYTHON:
            prompts["ipython"] = ([IPYTHON, "--no-banner"], IPY_PROMPT)
        headless: dict[str, tuple[list[str], str | None]] = {
            "python -c pass": ([PYTHON, "-c", "pass"], None),
            "netsh run empty.py": (_netsh("run", str(empty)), None),
        }
        try:
            import twisted  # noqa: F401

            headless["python -c 'import twisted.internet.reactor'"] = (
                [PYTHON, "-c", "import twisted.internet.reactor"], None)
        except ImportError:
            pass
        first = measure(prompts, args.runs, env)
        runs = measure(headless, args.runs, env)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"quick": args.quick, "runs": args.runs, "prompt": first,
                       "headless": runs}, f)
    base = first["python -c pass"]
    print(f"time to first prompt (median of {args.runs}), Python {sys.version.split()[0]}")
    for name, t in first.items():
        print(f"  {name:<24} {t * 1000:7.0f} ms   {t / base:5.1f}x bare python")
    if "ipython" in first:
        print(f"  netsh / ipython: {first['netsh'] / first['ipython']:.2f} (goal <= 1)")
    base = runs["python -c pass"]
    print(f"\nheadless start (median of {args.runs})")
    for name, t in runs.items():
        print(f"  {name:<46} {t * 1000:7.0f} ms   +{(t - base) * 1000:5.0f} ms over bare python")
    over = runs["netsh run empty.py"] - base
    print(f"  netsh run over bare python: {over:.3f} s (goal <= 0.15 s)")


if __name__ == "__main__":
    main()
