"""Finger, step 2: read the query, then hang up.

    netsh run scripts/examples/finger/02_hang_up.py [--port 7979]

A finger query is one line ended by CR LF (RFC 1288, section 2.1). A LineReceiver
gathers the bytes, however the network splits them, into lines: this server waits for
the first one, and closes the connection without an answer.
"""

import argparse

from netshell import Factory, reactor
from protocols.basic import LineReceiver


class HangUp(LineReceiver):
    def line_received(self, line):
        self.transport.close()


parser = argparse.ArgumentParser(prog="02_hang_up.py")
parser.add_argument("--port", type=int, default=7979)
args = parser.parse_args()

listener = reactor.listen_tcp(args.port, Factory.for_protocol(HangUp))
print(f"finger server on {listener.address}", flush=True)
