"""The throttle against a server that closes flooders: InspIRCd with tight flood control
closes a client that sends as fast as it can ("Excess Flood"); ours, throttled, sends the
same lines and lives on."""

from __future__ import annotations

import pytest
from irc_peers import inspircd_server

import netshell as ns
from protocols import irc

pytestmark = pytest.mark.timeout(60)

LINES = 14


async def test_throttled_client_is_not_killed_for_flooding() -> None:
    # InspIRCd's own defaults: 10 commands at once, then one a second
    with inspircd_server(threshold=10, commandrate=1000) as server:
        # no throttle: closed by the server
        flooder = await irc.connect(server.host, server.port, "flooder", rate=None,
                                    timeout=10, reconnect=False)
        gone = flooder.wait_for("disconnected", timeout=10)
        for i in range(LINES):
            flooder.msg("flooder", f"line {i}")
        await gone
        # the ERROR ("Excess Flood") may be lost to the reset that follows it
        assert flooder.closed
        why = flooder.why_closed or ""
        assert "Excess Flood" in why or "Broken pipe" in why or "reset" in why.lower(), why

        # the default throttle: every line arrives, the connection stays
        careful = await irc.connect(server.host, server.port, "careful", timeout=10)
        seen: list[str] = []
        careful.add_listener("message", lambda e: seen.append(e.text or ""))
        last = careful.wait_for("message", lambda e: e.text == f"line {LINES - 1}",
                                timeout=30)
        lost = careful.wait_for("disconnected")
        for i in range(LINES):
            careful.msg("careful", f"line {i}")
        await ns.race(last, lost)  # the one that fires first (the other is cancelled)
        assert not careful.closed, careful.why_closed
        # (with echo-message each comes twice: the echo and the delivery to us)
        assert set(seen) == {f"line {i}" for i in range(LINES)}
        assert not careful.closed
        await careful.quit()
