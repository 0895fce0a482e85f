"""Finger, step 3: answer every query "No such user".

    netsh run scripts/examples/finger/03_no_such_user.py [--port 7979]

The server now answers: one line, ended by CR LF as the query was, and then it closes
the connection, which is how a finger client knows the answer is complete.
"""

import argparse

from netshell import Factory, reactor
from protocols.basic import LineReceiver


class NoSuchUser(LineReceiver):
    def line_received(self, line):
        self.send_line(b"No such user")
        self.transport.close()


parser = argparse.ArgumentParser(prog="03_no_such_user.py")
parser.add_argument("--port", type=int, default=7979)
args = parser.parse_args()

listener = reactor.listen_tcp(args.port, Factory.for_protocol(NoSuchUser))
print(f"finger server on {listener.address}", flush=True)
