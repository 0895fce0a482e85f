"""``netsh serve http`` in a real terminal, fetched with curl: what a person sees.

The address line on stdout, one access-log line per request on stderr (both in the
terminal), Ctrl-C's message on its own line and exit status 0.
"""

from __future__ import annotations

import re
import subprocess

from peers import require
from terminal import Terminal, netsh_argv


def test_netsh_serve_http_with_curl_as_a_person_sees_it(tmp_path):
    require("curl")
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_bytes(b"hi\n" * 7)
    t = Terminal(netsh_argv("serve", "http", str(site), "--port", "0"), cwd=str(tmp_path))
    try:
        screen = t.wait_for(r"^Serving HTTP on 127\.0\.0\.1 port \d+ "
                            r"\(http://127\.0\.0\.1:\d+/\) \.\.\.$")
        found = re.search(r"^Serving HTTP on 127\.0\.0\.1 port (\d+) "
                          r"\(http://127\.0\.0\.1:(\d+)/\) \.\.\.$", screen, re.M)
        assert found is not None and found.group(1) == found.group(2)
        port = int(found.group(1))
        assert port != 0
        got = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/hello.txt"],
                             capture_output=True, timeout=30)
        assert got.stdout == b"hi\n" * 7
        t.wait_for(r'^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d\] '
                   r'"GET /hello\.txt HTTP/1\.1" 200 -$')  # "-" as http.server writes it
        t.key("C-c")
        screen = t.wait_for(r"^Keyboard interrupt received, exiting\.$")
        assert t.exit_status() == 0
        assert "Traceback" not in t.screen()
        # On its own line: the ^C the terminal echoes stays on the line above it.
        rows = screen.splitlines()
        at = rows.index("Keyboard interrupt received, exiting.")
        assert rows[at - 1].strip() in ("", "^C"), rows[at - 1]
    finally:
        t.close()
