"""What the benchmarks in scripts/bench share: the allocator settings, the environment
and the process handling of the servers they start, the choice of servers, a baseline
tree, the rounds and the report of ratios.

Not a benchmark: each script is run as ``python scripts/bench/X.py``, which puts this
folder first on sys.path, and does ``import common``. The server and client programs the
scripts start (``python -c`` with the program's text, run from the source tree) do not
import it: they stay whole in their script.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import selectors
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROFILE_ENV = "NETSHELL_BENCH_PROFILE"  # --profile DIR, from the environment (tls, http)

# glibc serves a request of 128 KiB or more with mmap, unless its dynamic threshold
# was raised by an earlier free of such a block. asyncio's selector transport reads
# into a fresh 256 KiB buffer, so whether a server pays mmap/mremap/munmap on every
# read depends on the allocator's history: a 4x swing in ping-pong that has nothing
# to do with the server's code. So each set runs twice: as a user gets it, and with
# the threshold fixed for every server (both variables: fixing the mmap threshold
# alone also freezes the trim threshold, which then costs a brk per read instead).
# (title, environment) pairs: [default, levelled].
ALLOCATORS = [
    ("default allocator", {}),
    (
        "levelled allocator (MALLOC_MMAP_THRESHOLD_=4MiB, MALLOC_TRIM_THRESHOLD_=64MiB)",
        {"MALLOC_MMAP_THRESHOLD_": str(4 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)},
    ),
]
ALLOCATOR_NAMES = ("default", "levelled")  # short names of ALLOCATORS, in order


# Program text, for a Python server run with "python -c" (it cannot import this module):
# how it says it listens ("READY port what", its first line of stdout) or that it cannot
# run here ("UNAVAILABLE why"), as ServerProcess.start_python reads it.
SAY_READY = """
import sys
def ready(port, what):
    print("READY", port, what, flush=True)
def unavailable(why):
    print("UNAVAILABLE", why, flush=True)
    sys.exit(0)
"""


def allocator(name: str) -> tuple[str, dict[str, str]]:
    """``--allocator levelled`` or ``default``: (its title, its environment)."""
    return ALLOCATORS[ALLOCATOR_NAMES.index(name)]


class Failed(Exception):
    """A server or client answered wrongly, lost or mangled what it was sent, or did not
    start."""


class Unavailable(Exception):
    """The server cannot run in this tree (netshell before that server was written)."""


def have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def python_env(
    extra: dict[str, str], *, root: str = ROOT, drop: Iterable[str] = ("NETSHELL_LOOP",)
) -> dict[str, str]:
    """This process's environment for a Python child: ``root`` first on PYTHONPATH, the
    ``drop`` variables removed (asyncio's default loop unless ``extra`` says otherwise),
    then ``extra``."""
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in drop:
        env.pop(name, None)
    env.update(extra)
    return env


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """The first entries of a run's JSON: what ran where (``args.server_cpu`` and
    ``args.client_cpu`` from pin_load)."""
    return {
        "quick": args.quick,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
    }


def pin_load() -> tuple[int, int]:
    """(the servers' CPU, the load's CPU): the first two this process may use (one if it
    may use only one); this process is pinned to the load's."""
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = cpus[0], cpus[1] if len(cpus) > 1 else cpus[0]
    os.sched_setaffinity(0, {client_cpu})
    return server_cpu, client_cpu


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The process's next stdout line, or "" if it says nothing in ``timeout`` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def schedstat_seconds(pid: int) -> float:
    """CPU time of the process's threads so far, in ns steps (/proc/PID/task/*/schedstat;
    /proc/PID/stat counts 10 ms ticks, too coarse for one batch)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
    return total / 1e9


def stop_process(proc: subprocess.Popen[str], profiling: bool = False) -> None:
    """Kill the process (when profiling, first ask it with SIGUSR2 to write its profile
    and end), wait for it, close its stdout."""
    if proc.poll() is None:
        if profiling:
            proc.send_signal(signal.SIGUSR2)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


class ServerProcess:
    """A server process whose stderr goes to a temporary file (``said``); stop() kills it."""

    proc: subprocess.Popen[str]

    def __init__(self, label: str) -> None:
        self.label = label
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115

    def start_python(self, code: str, env: dict[str, str], cwd: str,
                     not_started: str) -> tuple[int, str]:
        """Run ``python -c code``, which says "READY port what" (or "UNAVAILABLE why":
        Unavailable) on its first line of stdout within 30 s: (port, what). Otherwise
        Failed with ``not_started`` formatted with the label, the words said, and stderr."""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=self.log,
            env=env, cwd=cwd, text=True,
        )
        words = read_line(self.proc, 30).split(maxsplit=2)
        if words[:1] == ["UNAVAILABLE"]:
            self.stop()
            raise Unavailable(" ".join(words[1:]).strip())
        if len(words) < 2 or words[0] != "READY":
            said = self.said()
            self.stop()
            raise Failed(not_started.format(label=self.label, words=" ".join(words), said=said))
        return int(words[1]), words[2].strip() if len(words) > 2 else ""

    def cpu_seconds(self) -> float:
        return schedstat_seconds(self.proc.pid)

    def said(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:]

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise Failed(f"{self.label} died (exit {self.proc.returncode}):\n{self.said()}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


# ---- options


def add_allocator_option(parser: argparse.ArgumentParser,
                         choices: Sequence[str] = ("levelled", "default")) -> None:
    parser.add_argument(
        "--allocator",
        choices=list(choices),
        default="levelled",
        help="glibc settings for the servers (see ALLOCATORS in scripts/bench/common.py)",
    )


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default=os.environ.get(PROFILE_ENV) or None,
        metavar="DIR",
        help=f"cProfile every server into DIR (also ${PROFILE_ENV}); slows them down",
    )


def add_baseline_option(
    parser: argparse.ArgumentParser,
    servers: str = "the server netshell-baseline (name it in --only)",
) -> None:
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a netshell source tree (e.g. a git worktree of an older commit) for "
        f"{servers}, to compare a change in one run",
    )


# ---- the servers a run measures


class ServerCase:
    """One server: the program it runs, the Python modules it needs, what it adds to its
    environment, the tree it runs from."""

    def __init__(self, name: str, label: str, program: str, needs: list[str],
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.label = label
        self.program = program
        self.needs = needs
        self.env: dict[str, str] = env if env is not None else {}
        self.cwd = ROOT  # a baseline server runs from its own tree


C = TypeVar("C", bound=ServerCase)


def select(cases: Sequence[C], optional: set[str], names: str | None) -> list[C]:
    """The cases ``--only`` names (comma-separated), or all but the optional ones."""
    if names is None:
        return [c for c in cases if c.name not in optional]
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    known = {c.name for c in cases}
    unknown = wanted - known
    if unknown:
        raise SystemExit(
            f"--only: unknown {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    return [c for c in cases if c.name in wanted]


def use_baseline(
    cases: Sequence[ServerCase],
    baseline_dir: str | None,
    parser: argparse.ArgumentParser,
    package: str,
    *,
    servers: Iterable[str] = ("netshell-baseline",),
    need: str = "the server netshell-baseline needs",
    own: str | None = None,
) -> None:
    """Run the ``servers`` among ``cases`` from the netshell tree ``--baseline DIR``
    (checked to import its own netshell and ``package``); a parser error without it."""
    servers = set(servers)
    if not any(c.name in servers for c in cases):
        return
    if not baseline_dir or not os.path.isfile(
            os.path.join(baseline_dir, "netshell", "__init__.py")):
        parser.error(f"{need} --baseline DIR (a netshell tree)")
    baseline = os.path.abspath(baseline_dir)
    for c in cases:
        if c.name in servers:
            c.env = {"PYTHONPATH": baseline + os.pathsep + os.environ.get("PYTHONPATH", "")}
            # "python -c" puts its working directory first on sys.path: run from that tree.
            c.cwd = baseline
    check = subprocess.run(
        [sys.executable, "-c", f"import netshell, {package}; "
         f"print(netshell.__file__); print({package}.__file__)"],
        env=python_env({"PYTHONPATH": baseline}), cwd=baseline, capture_output=True, text=True,
    )
    if check.returncode != 0 or any(
            not line.startswith(baseline + os.sep) for line in check.stdout.split()):
        parser.error(f"--baseline: {baseline} does not import its own "
                     f"{own or 'netshell and ' + package}: {check.stdout}{check.stderr}")


def not_installed(needs: Iterable[str], extras: str) -> str | None:
    """Why a case that needs these modules cannot run here, or None if it can."""
    missing = [m for m in needs if not have(m)]
    if not missing:
        return None
    return f"not installed: {', '.join(missing)} (pip install -e '.[{extras}]')"


# ---- rounds: every server afresh in each, interleaved, the best kept

# measure key -> (column title, format, higher is better)
Measures = dict[str, tuple[str, str, bool]]


def measure_all(
    out: dict[str, Any],
    cases: Sequence[ServerCase],
    rounds: int,
    measure: Callable[[Any], dict[str, Any]],
    measures: Measures,
    cpu_keys: Mapping[str, tuple[str, ...]],
    report: Callable[[Any, dict[str, dict[str, Any]], dict[str, str]], dict[str, float]],
    json_path: str | None,
) -> int:
    """Each round measures every case (``measure(case)``) not failed or unavailable yet,
    and says so; per case, the best of each measure over the rounds (with the ``cpu_keys``
    of that measure's best round) and every round's value (``<measure>_rounds``). Then
    ``report(cases, results, unavailable)`` and finish: the exit status. ``out`` (the
    JSON) gets "unavailable", "failed", "servers" (the results) and "ratios"."""
    out.update(unavailable={}, failed={}, servers={}, ratios={})
    failed: dict[str, str] = out["failed"]
    unavailable: dict[str, str] = out["unavailable"]
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for case in cases:
            if case.name in failed or case.name in unavailable:
                continue
            print(f"  {case.label} ...", end="", flush=True)
            try:
                res = measure(case)
            except Unavailable as e:
                print(" not available")
                unavailable[case.name] = str(e)
                continue
            except Failed as e:
                print(" FAILED")
                failed[case.name] = str(e)
                best.pop(case.name, None)
                continue
            print(" " + ", ".join(f"{measures[k][0]} {format(res[k], measures[k][1])}"
                                  for k in measures if k in res))
            prev = best.setdefault(case.name, dict(res))
            for key, (_, _, higher) in measures.items():
                if key not in res:
                    continue
                prev.setdefault(key + "_rounds", []).append(res[key])
                if res[key] > prev[key] if higher else res[key] < prev[key]:
                    prev[key] = res[key]
                    for cpu_key in cpu_keys.get(key, ()):
                        prev[cpu_key] = res[cpu_key]
    out["servers"] = {c.name: best[c.name] for c in cases if c.name in best}
    out["ratios"] = report(cases, out["servers"], unavailable)
    return finish(out, failed, json_path)


def finish(out: dict[str, Any], failed: dict[str, str], json_path: str | None) -> int:
    """Say what failed, write the JSON (with ``--json``): the exit status, 1 if any failed."""
    for name, why in failed.items():
        print(f"\nFAILED {name}: {why}")
    write_json(json_path, out)
    return 1 if failed else 0


def write_json(path: str | None, out: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=2)


# ---- the report


def ratio_line(label: str, value: float, goal: float | None, op: str = ">=",
               width: int = 44) -> str:
    if goal is None:
        verdict = "no goal"
    else:
        met = value >= goal if op == ">=" else value <= goal
        verdict = f"goal {op} {goal}x  {'met' if met else 'NOT met'}"
    return f"{label:{width}} {value:5.2f}x  {verdict}"


def print_table(cases: Sequence[ServerCase], results: dict[str, dict[str, Any]],
                unavailable: dict[str, str], measures: Measures) -> list[str]:
    """One row per server, one column per measure any of them has: those measures."""
    keys = [k for k in measures if any(k in r for r in results.values())]
    print("\n" + f"{'server':18}" + "".join(f" {measures[k][0]:>12}" for k in keys))
    for case in cases:
        if case.name in unavailable:
            print(f"{case.label:18} not available: {unavailable[case.name]}")
            continue
        res = results.get(case.name)
        if res is None:
            continue
        cells = "".join(
            f" {format(res[k], measures[k][1]):>12}" if k in res else f" {'-':>12}" for k in keys
        )
        print(f"{case.label:18}{cells}")
    return keys


# (label, measure, numerator, denominators (the better of them), goal, op); the ratio
# is numerator / best denominator.
Goals = list[tuple[str, str, str, tuple[str, ...], float | None, str]]


def print_ratios(goals: Goals, measures: Measures,
                 results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each goal's ratio whose servers were all measured, printed: {label: ratio}."""
    ratios: dict[str, float] = {}
    for label, measure, a, bs, goal, op in goals:
        if measure not in results.get(a, {}):
            continue
        others = [results[b][measure] for b in bs if measure in results.get(b, {})]
        if len(others) != len(bs):
            continue
        higher_better = measure in measures and measures[measure][2]  # CPU: lower
        best_other = max(others) if higher_better else min(others)
        if best_other <= 0:
            continue
        value = results[a][measure] / best_other
        ratios[label] = value
        print(ratio_line(label, value, goal, op))
    return ratios
