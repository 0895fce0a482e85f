"""The Deferred benchmark (scripts/bench/deferred.py) runs and reports every case;
the TLS benchmark (scripts/bench/tls.py) measures every server; the HTTP benchmark
(scripts/bench/http.py) measures every server with wrk and every client.

A smoke test only: ``--quick`` counts are far too small to mean anything, so
nothing here looks at speed, only that each case ran, was verified and gave a
positive rate for every library.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from peers import require

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench" / "deferred.py"
CASES = {"create_3cb_fire", "chain_1", "chain_10", "await_fired"}
TLS_BENCH = ROOT / "scripts" / "bench" / "tls.py"
TLS_SERVERS = {"netshell", "twisted", "asyncio-ssl"}
TLS_MEASURES = (
    "handshakes_per_s",
    "server_cpu_us_per_handshake",
    "bulk_mb_per_s",
    "server_cpu_s_per_gb",
)
HTTP_BENCH = ROOT / "scripts" / "bench" / "http.py"
# server -> the event loop it must report running on
HTTP_SERVERS = {
    "netshell": "asyncio",
    "netshell-uvloop": "uvloop",
    "twisted": "EPollReactor",
    "aiohttp": "asyncio",
    "uvicorn-h11": "asyncio",
    "uvicorn-httptools": "uvloop",
}
HTTP_CLIENTS = {
    "client-netshell": "asyncio",
    "client-netshell-uvloop": "uvloop",
    "client-httpx": "asyncio",
    "client-aiohttp": "asyncio",
}
# the bench extra (and httpx, h11 from the test extra)
HTTP_PEER_MODULES = ("twisted", "aiohttp", "uvicorn", "httptools", "uvloop", "httpx", "h11")


def _twisted_importable() -> bool:
    try:
        return importlib.util.find_spec("twisted.internet.defer") is not None
    except ImportError:
        return False


def require_twisted() -> None:
    """Skip without Twisted, except on CI, where it is installed and its absence a failure."""
    if _twisted_importable():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("Twisted is not importable, but CI installs it (the bench extra)")
    pytest.skip("Twisted is not installed (pip install -e '.[bench]')")


def require_modules(*names: str) -> None:
    """Skip unless every module is importable; under CI (which installs them) fail instead."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (pip install -e '.[bench,test]')"
    if os.environ.get("CI") == "true":
        pytest.fail(message + ", but CI installs them")
    pytest.skip(message)


def run_quick(script: Path, out: Path, timeout: float = 50) -> dict[str, Any]:
    """Run a benchmark with ``--quick --json out``; its exit must be 0; return the JSON."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"benchmark failed (exit {proc.returncode}):\n{proc.stdout}"
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.timeout(60)
def test_quick_run_reports_every_case(tmp_path: Path) -> None:
    require_twisted()
    data = run_quick(BENCH, tmp_path / "deferred.json")
    assert data["quick"] is True
    assert set(data["cases"]) == CASES
    for name, case in data["cases"].items():
        for side in ("netshell_ops_per_s", "twisted_ops_per_s"):
            assert case[side] > 0, f"{name}: {side} is {case[side]!r}"
        assert case["ratio"] > 0, name


@pytest.mark.timeout(60)
def test_tls_bench_quick_runs(tmp_path: Path) -> None:
    require_twisted()
    data = run_quick(TLS_BENCH, tmp_path / "tls.json")
    assert data["quick"] is True
    assert len(data["allocators"]) == 1  # --quick: the levelled allocator only
    (run,) = data["allocators"].values()
    assert set(run["results"]) == TLS_SERVERS
    for name, result in run["results"].items():
        for key in TLS_MEASURES:
            assert result[key] > 0, f"{name}: {key} is {result[key]!r}"
        assert result["negotiated"]["version"].startswith("TLSv"), name
    for label, ratio in run["ratios"].items():
        assert ratio > 0, label


@pytest.mark.timeout(150)
def test_http_bench_quick_runs(tmp_path: Path) -> None:
    require("wrk")
    require_modules(*HTTP_PEER_MODULES)
    data = run_quick(HTTP_BENCH, tmp_path / "http.json", timeout=130)
    assert data["quick"] is True
    assert data["skipped"] == {}
    assert data["failed"] == {}
    assert set(data["servers"]) == set(HTTP_SERVERS)
    for name, result in data["servers"].items():
        assert result["verified"] is True, name
        assert result["loop"] == HTTP_SERVERS[name], name
        assert result["requests"] > 0, name
        assert result["requests_per_s"] > 0, name
    assert set(data["server_ratios"]) >= {
        "netshell / twisted.web",
        "netshell / aiohttp",
        "netshell (uvloop) / uvicorn httptools",
    }
    assert data["client_server"] == "uvicorn-httptools (uvloop)"
    assert set(data["clients"]) == set(HTTP_CLIENTS)
    answers = data["warmup"] + data["sequential"] + data["concurrent"]
    for name, result in data["clients"].items():
        assert result["verified"] is True, name
        assert result["loop"] == HTTP_CLIENTS[name], name
        assert result["checked"] == answers, name
        assert result["sequential_per_s"] > 0, name
        assert result["concurrent_per_s"] > 0, name
    for ratios in (data["server_ratios"], data["client_ratios"]):
        for label, ratio in ratios.items():
            assert ratio > 0, label


STARTUP_BENCH = ROOT / "scripts" / "bench" / "startup.py"


def test_startup_bench_quick_runs(tmp_path: Path) -> None:
    require_twisted()
    data = run_quick(STARTUP_BENCH, tmp_path / "startup.json", timeout=120)
    assert data["quick"] is True
    assert set(data["prompt"]) == {"python -c pass", "netsh", "netsh --ipython", "ipython"}
    assert set(data["headless"]) == {"python -c pass", "netsh run empty.py",
                                     "python -c 'import twisted.internet.reactor'"}
    for times in (data["prompt"], data["headless"]):
        assert all(t > 0 for t in times.values())
