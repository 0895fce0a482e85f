"""Finger, step 1: a server that hangs up on everyone.

    netsh run scripts/examples/finger/01_refuse.py [--port 7979]

It listens (finger's own port is 79, which needs privileges, so 7979 by default; 0
takes any free port) and closes each connection as soon as it is made: a client sees
the connection open, then end, with not a byte said.
"""

import argparse

from netshell import Factory, Protocol, reactor


class Refuse(Protocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        transport.close()


parser = argparse.ArgumentParser(prog="01_refuse.py")
parser.add_argument("--port", type=int, default=7979)
args = parser.parse_args()

listener = reactor.listen_tcp(args.port, Factory.for_protocol(Refuse))
print(f"finger server on {listener.address}", flush=True)
