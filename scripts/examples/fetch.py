"""Fetch a URL over plain HTTP/1.0 and print the response: ``netsh run fetch.py URL``.

Written against the core (a Protocol collecting bytes until the server
closes), to show a client end to end; the ``http`` module's client does far
more (keep-alive, chunked bodies, redirects, TLS).
"""

import sys
from urllib.parse import urlsplit

if len(sys.argv) != 2:
    raise SystemExit("usage: netsh run fetch.py http://HOST[:PORT]/PATH")
url = urlsplit(sys.argv[1])
if url.scheme != "http":
    raise SystemExit(f"fetch.py speaks plain http only, not {url.scheme!r}")


class Fetch(Protocol):
    def __init__(self):
        self.chunks = []
        self.done = Deferred()

    def connection_made(self, transport):
        self.transport = transport
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        transport.write(f"GET {target} HTTP/1.0\r\nHost: {url.netloc}\r\n\r\n".encode())

    def data_received(self, data):
        self.chunks.append(data)

    def connection_lost(self, reason):
        self.done.callback(b"".join(self.chunks))


protocol = await connect(f"tcp:{url.hostname}:{url.port or 80}", Fetch)
response = await protocol.done
head, _, body = response.partition(b"\r\n\r\n")
print(head.decode("latin-1").split("\r\n")[0])
sys.stdout.write(body.decode("utf-8", "replace"))
