"""The IRC peers the integration tests talk to are installed and usable (shared/PEERS.md).

These assert rather than skip: a missing peer is a failure here wherever the suite runs,
so a machine that lost one (or a scripts/test that stopped installing it) is seen at once
and not as a row of quietly skipped integration tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

# scripts/test adds these to PATH: daemons such as ngircd and inspircd live in sbin.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def _which(cmd: str) -> str:
    path = shutil.which(cmd, path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN]))
    assert path is not None, (
        f"IRC test peer {cmd!r} is not installed (scripts/test installs it from apt)"
    )
    return path


@pytest.mark.parametrize(
    ("cmd", "prints"),
    [("inspircd", "InspIRCd-"), ("ngircd", "ngIRCd ")],
)
def test_irc_server_peer_runs(cmd: str, prints: str) -> None:
    done = subprocess.run(
        [_which(cmd), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done
    assert prints in done.stdout + done.stderr, done


def test_irc_client_library_jaraco() -> None:
    import irc.client

    reactor = irc.client.Reactor()
    assert reactor.server() is not None


def test_irc_client_library_pydle_with_sasl() -> None:
    import puresasl.client  # pydle's SASL PLAIN needs it (the pydle[sasl] extra)
    import pydle

    client = pydle.Client("tester", sasl_username="user", sasl_password="pass")
    assert client.nickname == "<unregistered>"
    assert puresasl.client.SASLClient is not None
