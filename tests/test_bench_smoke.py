"""The Deferred benchmark (scripts/bench/deferred.py) runs and reports every case;
the echo benchmark (scripts/bench/echo.py) measures every server on both allocator
settings and gives one verdict per comparison; the TLS benchmark
(scripts/bench/tls.py) measures every server; the HTTP benchmark
(scripts/bench/http.py) measures every server with wrk and every client; the FTP
benchmark (scripts/bench/ftp.py) measures every server with curl and its own login
client, every transfer verified.

A smoke test only: ``--quick`` counts are far too small to mean anything, so
nothing here looks at speed, only that each case ran, was verified and gave a
positive rate for every library.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
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
    "bulk_mib_per_s",
    "server_cpu_s_per_gib",
)
ECHO_BENCH = ROOT / "scripts" / "bench" / "echo.py"
# --servers name -> how the tables name it
ECHO_SERVERS = {
    "netshell": "netshell",
    "asyncio": "raw asyncio",
    "twisted": "Twisted (epoll)",
    "netshell-uvloop": "netshell on uvloop",
    "asyncio-uvloop": "raw asyncio on uvloop",
}
ECHO_MEASURES = ("round_trips_per_s", "bulk_mib_per_s", "idle_bytes_per_conn")
ECHO_COMPARISONS = {
    "round trips: netshell / asyncio",
    "round trips: netshell / twisted",
    "bulk: netshell / asyncio",
    "idle RSS: netshell / asyncio",
    "uvloop round trips: netshell / asyncio",
    "uvloop bulk: netshell / asyncio",
}
HTTP_BENCH = ROOT / "scripts" / "bench" / "http.py"
# server -> the event loop it must report running on
HTTP_SERVERS = {
    "netshell": "asyncio",
    "netshell-uvloop": "uvloop",
    "twisted": "EPollReactor",
    "aiohttp": "asyncio",
    "uvicorn-h11": "asyncio",
    "uvicorn-httptools": "uvloop",
    "static-netshell": "asyncio",
    "static-twisted": "EPollReactor",
    "static-nginx": "nginx",
}
HTTP_STATIC = {"static-netshell", "static-twisted", "static-nginx"}
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
    return run_bench(script, out, "--quick", timeout=timeout)[0]


def run_bench(
    script: Path, out: Path, *options: str, timeout: float = 50
) -> tuple[dict[str, Any], str]:
    """Run a benchmark with ``options --json out``; its exit must be 0; (the JSON, stdout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script), *options, "--json", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"benchmark failed (exit {proc.returncode}):\n{proc.stdout}"
    return json.loads(out.read_text(encoding="utf-8")), proc.stdout


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


def check_echo_ratios(data: dict[str, Any], stdout: str, labels: set[str]) -> None:
    """Every allocator run has a positive ratio per comparison, and each comparison one
    verdict over every allocator setting, printed."""
    for short, run in data["allocators"].items():
        assert set(run["ratios"]) == labels, short
        for label, ratio in run["ratios"].items():
            for stat in ("best", "median"):
                assert 0 < ratio[stat] < math.inf, f"{short}: {label} {stat} is {ratio[stat]!r}"
    assert set(data["verdicts"]) == labels
    for label, result in data["verdicts"].items():
        for short in data["allocators"]:
            assert result[short] == data["allocators"][short]["ratios"][label]["best"], label
        assert result["verdict"].startswith(("met on", "not met on")), result
        # one verdict over every allocator setting: "met on both", or each one named
        if result["verdict"] != "met on both":
            for short in data["allocators"]:
                assert short in result["verdict"], (label, result)
        assert f"{result['verdict']}\n" in stdout, label


@pytest.mark.timeout(90)
def test_echo_bench_quick_runs(tmp_path: Path) -> None:
    require_modules("twisted", "uvloop")
    data, stdout = run_bench(ECHO_BENCH, tmp_path / "echo.json", "--quick", timeout=80)
    assert data["quick"] is True
    assert data["left_out"] == {}
    assert data["servers"] == list(ECHO_SERVERS)
    assert data["client_loop"] == "uvloop"
    assert data["bulk_mib"] == 8
    # The load the idle measure used is recorded, with the fd limit that decides it.
    assert data["fd_limit"] > 0
    assert data["idle_connections_asked"] == 200
    fd_limit = data["fd_limit"]
    assert data["idle_connections"] == (200 if fd_limit >= 300 else max(1, fd_limit - 200))
    assert f"{data['idle_connections']:,} connections opened" in stdout
    assert set(data["allocators"]) == {"default", "levelled"}
    for short, run in data["allocators"].items():
        assert set(run["results"]) == set(ECHO_SERVERS), short
        for name, result in run["results"].items():
            for key in ECHO_MEASURES:
                value = result[key]
                assert len(value["rounds"]) == 1, (short, name, key)
                assert value["best"] == value["median"] == value["rounds"][0]
                # idle RSS growth can be small over 200 connections, but is never absent
                assert 0 < value["best"] < math.inf, f"{short}: {name}: {key} is {value!r}"
    for label in ECHO_SERVERS.values():
        rows = re.findall(rf"^{re.escape(label)}  +[0-9,]+ +[0-9,]+ +[0-9,]+$", stdout, re.M)
        assert len(rows) == 2, f"{label}: a table row per allocator setting, got {rows}"
    assert "bulk MiB/s" in stdout
    assert "MB/s" not in stdout.replace("MiB/s", "")
    check_echo_ratios(data, stdout, ECHO_COMPARISONS)


@pytest.mark.timeout(60)
def test_echo_bench_sizes_the_bulk_run(tmp_path: Path) -> None:
    """The one command of the documented bulk table, at a tiny size: only bulk, only the two
    servers, every round kept."""
    options = ("--measures", "bulk", "--servers", "netshell,asyncio", "--bulk-mib", "2")
    data, stdout = run_bench(ECHO_BENCH, tmp_path / "bulk.json", *options, "--rounds", "2")
    assert data["measures"] == ["bulk"]
    assert data["servers"] == ["netshell", "asyncio"]
    assert data["bulk_mib"] == 2
    assert data["rounds"] == 2
    assert data["idle_connections"] is None
    for short, run in data["allocators"].items():
        assert set(run["results"]) == {"netshell", "asyncio"}, short
        for name, result in run["results"].items():
            assert set(result) == {"bulk_mib_per_s"}, (short, name)
            value = result["bulk_mib_per_s"]
            assert len(value["rounds"]) == 2
            assert all(0 < v < math.inf for v in value["rounds"]), (short, name, value)
            assert value["best"] == max(value["rounds"])
    assert "median of 2" in stdout
    check_echo_ratios(data, stdout, {"bulk: netshell / asyncio"})


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


@pytest.mark.timeout(180)
def test_http_bench_quick_runs(tmp_path: Path) -> None:
    require("wrk")
    require("nginx")
    require_modules(*HTTP_PEER_MODULES)
    data, stdout = run_bench(HTTP_BENCH, tmp_path / "http.json", "--quick", timeout=160)
    assert data["quick"] is True
    assert data["skipped"] == {}
    assert data["failed"] == {}
    assert set(data["servers"]) == set(HTTP_SERVERS)
    for name, result in data["servers"].items():
        assert result["verified"] is True, name
        assert result["loop"] == HTTP_SERVERS[name], name
        assert result["requests"] > 0, name
        assert result["requests_per_s"] > 0, name
        assert result["server_cpu_us_per_request"] > 0, name
        if name in HTTP_STATIC:
            # the large file too, from the same server: 1 MiB in quick mode
            assert result["large_requests"] > 0, name
            assert result["large_mib_per_s"] > 0, name
            assert result["large_server_cpu_s_per_gib"] > 0, name
        else:
            assert "large_mib_per_s" not in result, name
    assert data["static_files"] == {"small.txt": 13, "large.bin": 1 << 20}
    assert set(data["server_ratios"]) >= {
        "netshell / twisted.web",
        "netshell / aiohttp",
        "netshell (uvloop) / uvicorn httptools",
        "static small: netshell / twisted.web",
        "static small: netshell / nginx",
        "static large: netshell / nginx",
        "static small: netshell / netshell app route",
        "static small CPU/req: netshell / nginx",
    }
    for label in ("nginx (1 worker)", "twisted.web File"):
        assert re.search(rf"^{re.escape(label)} +\S+ +[0-9,]+ +\d+% ", stdout, re.M), label
    assert "static small: netshell / nginx" in stdout and "goal >= 0.5x" in stdout
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
    assert set(data["headless"]) == {
        "python -c pass",
        "netsh run empty.py",
        "python -c 'import twisted.internet.reactor'",
    }
    for times in (data["prompt"], data["headless"]):
        assert all(t > 0 for t in times.values())


FTP_BENCH = ROOT / "scripts" / "bench" / "ftp.py"
# server -> how its table row is labelled
FTP_SERVERS = {"netshell": "netshell", "pyftpdlib": "pyftpdlib", "twisted": "Twisted FTP"}
FTP_MEASURES = (
    "retr_mib_per_s",
    "retr_parallel_mib_per_s",
    "stor_mib_per_s",
    "stor_parallel_mib_per_s",
    "logins_per_s",
    "idle_bytes_per_conn",
)


@pytest.mark.timeout(120)
def test_ftp_bench_quick_runs(tmp_path: Path) -> None:
    require("curl")
    require_modules("twisted", "pyftpdlib", "uvloop")
    data, stdout = run_bench(FTP_BENCH, tmp_path / "ftp.json", "--quick", timeout=100)
    assert data["quick"] is True
    assert data["skipped"] == {}
    assert data["failed"] == {}
    assert data["size_mib"] == 1 and data["parallel"] == 10
    assert data["logins"] == 30 and data["idle_connections"] == 200
    assert len(data["sha256"]) == 64
    assert data["client_loop"] == "uvloop"  # the idle clients': the bench extra installs it
    assert data["login_client"] == "epoll"
    assert data["unavailable"] == {}  # netshell's server too: ftp.serve is written
    assert set(data["servers"]) == set(FTP_SERVERS)
    for name, result in data["servers"].items():
        assert result["verified"] is True, name
        for key in FTP_MEASURES:
            # every measure of every server: a positive number, one per round (idle
            # memory may be 0: netshell's 200 quick connections fit in pages it holds)
            low = 0 if key == "idle_bytes_per_conn" else math.ulp(0)
            assert low <= result[key] < math.inf, f"{name}: {key} is {result[key]!r}"
            assert result[key + "_rounds"] == [result[key]], (name, key)
        for key in ("retr_server_cpu_s_per_gib", "stor_server_cpu_s_per_gib",
                    "login_server_cpu_us", "login_client_cpu_us"):
            assert 0 < result[key] < math.inf, f"{name}: {key} is {result[key]!r}"
        label = FTP_SERVERS[name]
        assert re.search(rf"^{re.escape(label)}( +[0-9,]+){{6}}$", stdout, re.M), label
    # every ratio of netshell to each peer, the goals among them, printed
    assert {label for label in data["ratios"] if "baseline" not in label} == {
        f"{what}: netshell / {peer}"
        for what in ("RETR", "RETR x10", "STOR", "STOR x10", "logins", "idle memory")
        for peer in ("pyftpdlib", "Twisted")
    } | {"logins: netshell / the better of the two"} | {
        f"CPU/{what}: netshell / {peer}"
        for what in ("GiB RETR", "GiB STOR", "login")
        for peer in ("pyftpdlib", "Twisted")
    }
    for label, ratio in data["ratios"].items():
        low = 0 if label.startswith("idle memory: netshell") else math.ulp(0)
        assert low <= ratio < math.inf, label
        assert re.search(rf"^{re.escape(label)} +[0-9.]+x  ", stdout, re.M), label
    assert "goal >= 1.5x" in stdout and "goal <= 1.0x" in stdout


WATCHDOG_BENCH = ROOT / "scripts" / "bench" / "watchdog.py"
WATCHDOG_SERVERS = ("netshell", "netshell-watchdog", "netshell-thread", "netshell-thread-watchdog")


@pytest.mark.timeout(120)
def test_watchdog_bench_quick_runs(tmp_path: Path) -> None:
    require_modules("uvloop")
    data, stdout = run_bench(WATCHDOG_BENCH, tmp_path / "watchdog.json", "--quick", "--only",
                             ",".join(WATCHDOG_SERVERS), timeout=100)
    assert data["quick"] is True
    assert data["failed"] == {} and data["unavailable"] == {}
    assert set(data["servers"]) == set(WATCHDOG_SERVERS)
    for name, result in data["servers"].items():
        for key in ("round_trips_per_s", "server_cpu_us_per_trip", "cpu_ns_per_turn"):
            assert 0 < result[key] < math.inf, f"{name}: {key} is {result[key]!r}"
        on = name.endswith("watchdog")
        assert result["what"].startswith("watchdog on" if on else "watchdog off"), result
        assert ("a sleeping thread" in result["what"]) == ("thread" in name), result
        if on:  # idle, the watchdog's heartbeat still costs some CPU
            assert result["idle_cpu_ms_per_s"] > 0, result
    # the goal, in both settings, with its ratio printed
    for label in ("round trips: watchdog on / off", "round trips, a thread: watchdog on / off"):
        assert 0 < data["ratios"][label] < math.inf, label
        assert re.search(rf"^{re.escape(label)} +[0-9.]+x  goal >= 0.98x", stdout, re.M), label


MAIL_BENCH = ROOT / "scripts" / "bench" / "mail.py"
MAIL_SERVERS = {"netshell": "netshell", "aiosmtpd": "aiosmtpd", "twisted": "Twisted",
                "imap-netshell": "netshell IMAP", "imap-dovecot": "Dovecot IMAP"}


@pytest.mark.timeout(150)
def test_mail_bench_quick_runs(tmp_path: Path) -> None:
    require("dovecot")
    require_modules("twisted", "aiosmtpd", "uvloop")
    data, stdout = run_bench(MAIL_BENCH, tmp_path / "mail.json", "--quick", timeout=130)
    assert data["quick"] is True
    assert data["failed"] == {} and data["unavailable"] == {}
    assert set(data["servers"]) == set(MAIL_SERVERS)
    for name, result in data["servers"].items():
        keys = (("fetch_messages_per_s",) if name.startswith("imap")
                else ("messages_per_s", "server_cpu_us_per_message"))
        for key in keys:
            assert 0 < result.get(key, 0) < math.inf, f"{name}: {key} is {result.get(key)!r}"
        assert re.search(rf"^{re.escape(MAIL_SERVERS[name])} ", stdout, re.M), name
    # the three goals, each ratio printed with its goal
    for label, goal in (("SMTP messages/s: netshell / aiosmtpd", "1.5"),
                        ("SMTP messages/s: netshell / Twisted", "2.0"),
                        ("IMAP FETCH 1:* (FLAGS ENVELOPE): netshell / Dovecot", "0.3")):
        assert 0 < data["ratios"][label] < math.inf, label
        assert re.search(rf"^{re.escape(label)} +[0-9.]+x  goal >= {goal}x", stdout, re.M), label
