"""Startup benchmark: time to a usable prompt, and time to run an empty script, in one run.

Two measures, each the median of ``--runs`` fresh processes (default 7), with
ratios against bare Python printed side by side:

- time to first prompt, in a pseudo-terminal (pexpect), for ``netsh``,
  ``netsh --ipython``, ``ipython`` and, as the floor, ``python -c pass`` (until
  it exits). A prompt counts as there when it is drawn *and takes input*: the
  clock runs from spawning until the prompt shows and then a key typed at it
  (``x``) comes back drawn by the prompt's own line editor; a prompt drawn
  before its program reads the keyboard does not count. Goal: ``netsh`` <= 0.6x
  ``ipython``. Then the first command: ``6*7`` and Enter, until ``42`` shows, so
  a prompt that puts its loading off until the first input is seen paying for it.
- headless start: ``netsh run empty.py`` against ``python -c pass`` and
  ``python -c "import twisted.internet.reactor"``, until each exits. Goal:
  ``netsh run`` at most 0.15 s over bare Python.

``--floor`` adds what no prompt on prompt_toolkit can beat: ``import prompt_toolkit``
(until exit) and a bare prompt_toolkit prompt (``PromptSession.prompt_async`` on
asyncio inside ``patch_stdout``, with a toolbar, as netsh draws it), timed as
the prompts are. ``--baseline DIR`` adds ``netsh (baseline)``: the same command run
with netshell from the source tree DIR (a worktree of an older commit), interleaved.

Every prompt runs with a throwaway ``XDG_STATE_HOME`` and ``IPYTHONDIR`` (no
history or profile of yours is read). Python's bytecode caches (kept under the
temp dir by ``PYTHONPYCACHEPREFIX``, and written even when ``PYTHONDONTWRITEBYTECODE``
is set) are warmed by one untimed run of each command first; the commands' runs are
interleaved, so drift on the machine hits every command alike.

Usage::

    python scripts/bench/startup.py --runs 21 --floor    # the full run (docs/performance.md)
    python scripts/bench/startup.py --baseline ../before  # and netsh from another tree
    python scripts/bench/startup.py --quick --json s.json  # what the smoke test runs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
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


PROBE = "x"  # typed at the prompt; in neither prompt's own text nor netsh's toolbar
CPR_REQUEST = "\x1b[6n"  # "where is the cursor?" (prompt_toolkit asks, to size what it draws)
CPR_ANSWER = "\x1b[1;1R"


def expect_answering(child: pexpect.spawn, pattern: str, exact: bool = False) -> None:
    """Wait for ``pattern``, answering cursor position requests as a terminal does.

    Unanswered, prompt_toolkit never learns the screen height: it leaves out what it
    draws only then (netsh's toolbar, and whatever that costs), and it waits a second
    for the answer when an input ends.
    """
    want = re.escape(pattern) if exact else pattern
    while child.expect([want, re.escape(CPR_REQUEST)]) == 1:
        child.send(CPR_ANSWER)


def time_to_prompt(argv: list[str], prompt: str | None,
                   env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn until ``prompt`` (a regex) shows and echoes a typed key, and
    until the first command (``6*7``) has shown its result; when ``prompt`` is None,
    seconds until the process exits (twice)."""
    started = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", timeout=60,
                          dimensions=(40, 120))
    child.delaybeforesend = None  # pexpect sleeps 50 ms before each send unless told not to
    try:
        if prompt is None:
            child.expect(pexpect.EOF)
            elapsed = time.perf_counter() - started
            return elapsed, elapsed
        expect_answering(child, prompt)
        # Drawn is not enough: the prompt must read the keyboard and draw what it gets.
        child.send(PROBE)
        expect_answering(child, PROBE, exact=True)
        ready = time.perf_counter() - started
        child.send("\x7f6*7\r")  # rub the probe out; the first command
        expect_answering(child, "42", exact=True)
        first = time.perf_counter() - started
    finally:
        child.sendcontrol("d")
        child.close(force=True)
    return ready, first


Case = tuple[list[str], "str | None"]  # argv; the prompt's regex, or None: until it exits
BASELINE = ""  # --baseline DIR: "netsh (baseline)" runs netshell from the source tree DIR


def measure(cases: dict[str, Case], runs: int,
            env: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    """Medians per case: (until the prompt takes input, until the first result)."""
    envs = {name: dict(env, PYTHONPATH=BASELINE) if name.endswith("(baseline)") else env
            for name in cases}
    for name, (argv, prompt) in cases.items():  # warm the bytecode caches, untimed
        time_to_prompt(argv, prompt, envs[name])
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(runs):  # interleaved, so drift hits every case alike
        for name, (argv, prompt) in cases.items():
            times[name].append(time_to_prompt(argv, prompt, envs[name]))
    ready = {name: statistics.median(t[0] for t in ts) for name, ts in times.items()}
    first = {name: statistics.median(t[1] for t in ts) for name, ts in times.items()}
    return ready, first


def check_baseline(env: dict[str, str], cwd: str) -> None:
    """Make sure ``PYTHONPATH=BASELINE`` runs netshell from that tree, as ``netsh`` will."""
    where = subprocess.run([PYTHON, "-c", "import netshell.app.cli as m; print(m.__file__)"],
                           env=dict(env, PYTHONPATH=BASELINE), cwd=cwd, capture_output=True,
                           text=True, check=True).stdout.strip()
    if not where.startswith(BASELINE + os.sep):
        raise SystemExit(f"--baseline {BASELINE}: netshell came from {where}")


BARE_PROMPT = """\
import asyncio
from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

async def main():
    session = PromptSession(message="[1]> ", multiline=False, refresh_interval=1.0,
                            bottom_toolbar=lambda: " listeners 0 | F2 hides")
    with patch_stdout(raw=True):
        text = await session.prompt_async()
    print(eval(text))

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one run each, for a smoke test")
    parser.add_argument("--floor", action="store_true",
                        help="also time `import prompt_toolkit` and a bare prompt_toolkit prompt")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time `netsh` from the source tree DIR (say a worktree of "
                             "an older commit), interleaved with this one's")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    args = parser.parse_args()
    global BASELINE
    BASELINE = str(Path(args.baseline).resolve()) if args.baseline else ""
    if args.quick:
        args.runs = 1

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_STATE_HOME=str(Path(tmp) / "state"),
                   IPYTHONDIR=str(Path(tmp) / "ipython"), TERM="xterm",
                   # Bytecode caches for everything, in the temp dir (the source tree stays
                   # clean); the untimed first run writes them. With PYTHONDONTWRITEBYTECODE
                   # (set on some machines) a source tree would be compiled at every start,
                   # unlike an installed netsh, or IPython, whose caches pip wrote.
                   PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        empty = Path(tmp) / "empty.py"
        empty.write_text("")
        bare_prompt = Path(tmp) / "bare_prompt.py"
        bare_prompt.write_text(BARE_PROMPT)
        prompts: dict[str, Case] = {
            "python -c pass": ([PYTHON, "-c", "pass"], None),
            "netsh": (_netsh(), r"\[1\]>"),
            "netsh --ipython": (_netsh("--ipython"), IPY_PROMPT),
        }
        if IPYTHON:
            prompts["ipython"] = ([IPYTHON, "--no-banner"], IPY_PROMPT)
        floor: dict[str, Case] = {}
        if BASELINE:
            check_baseline(env, tmp)
            floor["netsh (baseline)"] = (_netsh(), r"\[1\]>")
        if args.floor:
            floor |= {
                "import prompt_toolkit": ([PYTHON, "-c", "import prompt_toolkit"], None),
                "bare prompt_toolkit": ([PYTHON, str(bare_prompt)], r"\[1\]>"),
            }
        headless: dict[str, Case] = {
            "python -c pass": ([PYTHON, "-c", "pass"], None),
            "netsh run empty.py": (_netsh("run", str(empty)), None),
        }
        try:
            import twisted  # noqa: F401

            headless["python -c 'import twisted.internet.reactor'"] = (
                [PYTHON, "-c", "import twisted.internet.reactor"], None)
        except ImportError:
            pass
        ready, result = measure({**prompts, **floor}, args.runs, env)
        runs, _ = measure(headless, args.runs, env)

    first = {name: ready[name] for name in prompts}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"quick": args.quick, "runs": args.runs, "prompt": first,
                       "first_result": {name: result[name] for name in prompts},
                       "floor": {name: ready[name] for name in floor},
                       "floor_first_result": {name: result[name] for name in floor},
                       "headless": runs}, f)
    base = ready["python -c pass"]
    print(f"time to first prompt, drawn and echoing a key (median of {args.runs}), "
          f"Python {sys.version.split()[0]}")
    print(f"  {'':<24} {'prompt':>10}   {'':>16} {'first result':>14}")
    for name, t in ready.items():
        r = result[name]
        after = f"{r * 1000:7.0f} ms" if r != t else ""
        print(f"  {name:<24} {t * 1000:7.0f} ms   {t / base:5.1f}x bare python {after:>14}")
    if "ipython" in ready:
        for name in ("netsh", "netsh (baseline)"):
            if name in ready:
                print(f"  {name} / ipython: {ready[name] / ready['ipython']:.2f} (goal <= 0.6); "
                      f"first result: {result[name] / result['ipython']:.2f}")
    base = runs["python -c pass"]
    print(f"\nheadless start (median of {args.runs})")
    for name, t in runs.items():
        print(f"  {name:<46} {t * 1000:7.0f} ms   +{(t - base) * 1000:5.0f} ms over bare python")
    over = runs["netsh run empty.py"] - base
    print(f"  netsh run over bare python: {over:.3f} s (goal <= 0.15 s)")


if __name__ == "__main__":
    main()
