"""A line-based chat server: ``netsh run scripts/examples/chat_server.py [PORT]``.

Each line a client sends goes to every other client, prefixed with the
sender's address. ``/who`` lists who is here; ``/quit`` leaves.
"""

import sys

from protocols.basic import LineReceiver

members: dict = {}


class Chat(LineReceiver):
    def connection_made(self, transport):
        super().connection_made(transport)
        self.name = str(transport.peer)
        members[self] = self.name
        self.broadcast(f"* {self.name} joined")
        self.send_line(f"* welcome, {self.name}; {len(members)} here".encode())

    def line_received(self, line):
        text = line.decode("utf-8", "replace")
        if text == "/who":
            self.send_line(("* here: " + ", ".join(sorted(members.values()))).encode())
        elif text == "/quit":
            self.transport.close()
        else:
            self.broadcast(f"<{self.name}> {text}")

    def connection_lost(self, reason):
        members.pop(self, None)
        self.broadcast(f"* {self.name} left")

    def broadcast(self, text):
        for member in members:
            if member is not self:
                member.send_line(text.encode())


port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
listener = listen(f"tcp:{port}", Factory.for_protocol(Chat))
print(f"chat server on {listener.address}", flush=True)
