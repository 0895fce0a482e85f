"""The IRC benchmark (scripts/bench/irc.py) runs: ngIRCd and Twisted's IRC server measured,
every delivery and registration checked by the bench itself, and netshell's server either
measured or said to be unavailable (while ``protocols.irc.serve`` is being written).

A smoke test only: ``--quick`` counts are far too small to mean anything, so nothing here
looks at speed, only that each server ran and gave positive numbers, and no server failed.
ngIRCd or Twisted missing fails the test under CI (which installs both), never skips it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench" / "irc.py"
NGIRCD = "/usr/sbin/ngircd"
# server -> how its table row is labelled
LABELS = {"netshell": "netshell", "ngircd": "ngIRCd", "twisted": "Twisted IRC"}
MEASURES = ("fanout_deliveries_per_s", "registrations_per_s")
CPU = ("fanout_server_cpu_us", "fanout_client_cpu_us", "registration_server_cpu_us",
       "registration_client_cpu_us")


def require_peers() -> None:
    missing = []
    if not (shutil.which("ngircd") or os.access(NGIRCD, os.X_OK)):
        missing.append("ngircd (apt-get install -y ngircd)")
    if importlib.util.find_spec("twisted") is None:
        missing.append("twisted (pip install -e '.[bench]')")
    if not missing:
        return
    message = "not installed: " + ", ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + ", but CI installs them: a missing peer is a failure")
    pytest.skip(message)


@pytest.mark.timeout(90)
def test_irc_bench_quick_runs(tmp_path: Path) -> None:
    require_peers()
    out = tmp_path / "irc.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out),
         "--only", "netshell,ngircd,twisted"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=80,
    )
    stdout = proc.stdout
    assert proc.returncode == 0, f"benchmark failed (exit {proc.returncode}):\n{stdout}"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert data["skipped"] == {}
    assert data["failed"] == {}, data["failed"]
    assert "FAILED" not in stdout
    assert data["members"] == 50 and data["messages"] == 20 and data["registrations"] == 30
    assert data["rounds"] == 1 and data["client"] == "epoll"
    # netshell: measured, or unavailable while its serve is not written; nothing else
    measured = set(data["servers"])
    assert measured | set(data["unavailable"]) == set(LABELS), (measured, data["unavailable"])
    assert not measured & set(data["unavailable"])
    assert {"ngircd", "twisted"} <= measured
    if "netshell" in data["unavailable"]:
        assert re.search(r"^netshell +not available: ", stdout, re.M)
    for name, result in data["servers"].items():
        assert result["label"] == LABELS[name]
        for key in (*MEASURES, *CPU):
            assert 0 < result[key] < math.inf, f"{name}: {key} is {result[key]!r}"
        for key in MEASURES:
            assert result[key + "_rounds"] == [result[key]], (name, key)
        assert re.search(rf"^{re.escape(LABELS[name])}( +[0-9,]+){{2}}$", stdout, re.M), name
        assert re.search(rf"^{re.escape(LABELS[name])}( +[0-9.]+){{4}}$", stdout, re.M), name
    assert data["servers"]["ngircd"]["registration_in_flight"] == 10
    assert data["servers"]["twisted"]["registration_in_flight"] == 0
    assert "registration: ngIRCd 10 at a time; the others all at once" in stdout
    # the ratios of netshell to each peer, the goals among them, when it ran
    if "netshell" in measured:
        assert set(data["ratios"]) == {
            f"{what}: netshell / {peer}"
            for what in ("fan-out", "registration", "CPU/delivery", "CPU/registration")
            for peer in ("Twisted", "ngIRCd")
        }
        for label, ratio in data["ratios"].items():
            assert 0 < ratio < math.inf, label
            assert re.search(rf"^{re.escape(label)} +[0-9.]+x  ", stdout, re.M), label
        assert stdout.count("goal >= 3.0x") == 1 and stdout.count("goal >= 0.5x") == 1
        assert stdout.count("goal >= 2.0x") == 1
    else:
        assert data["ratios"] == {}
