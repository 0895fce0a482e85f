"""An echo service: ``netsh run scripts/examples/echo_service.py [PORT]``.

Serves until Ctrl-C or SIGTERM (then closes gracefully). Port 0, the default,
takes any free port; the address is printed.
"""

import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
listener = listen(f"tcp:{port}", wire.echo_factory())
print(f"echo service on {listener.address}", flush=True)
