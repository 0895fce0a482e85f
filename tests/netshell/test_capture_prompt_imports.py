"""A capture read at the netsh prompt, where the protocol modules are loaded lazily.

The prompt offers ``http``, ``ftp``... as modules that run on first use
(:func:`netshell.shell.namespace.lazy_module`). Reading a capture imports modules of those
packages (``protocols.http.message``, ``protocols.http.parser``) while the packages have not
run: each module must run once, or a module has two ``ParseError`` classes and ``except``
misses the one the parser raised. These run in a fresh interpreter, where nothing was
imported before the prompt's namespace was built (as at the prompt).
"""

from __future__ import annotations

import subprocess
import sys

#: The prompt's namespace, built as netsh builds it, then a capture of a peer that is not
#: HTTP read from it (the wire module imported then, as ``cap.messages()`` imports it).
PROMPT = """
from types import SimpleNamespace
from netshell.reactor import Reactor, install
from netshell.shell import namespace
from netshell.shell.console import Console
install(Reactor())
names = namespace.build(Console({}))
from netshell.shell.tracing import Capture

def capture(pieces, port=80):
    t = SimpleNamespace(number=1, host=f"127.0.0.1:{port}", peer="127.0.0.1:50000",
                        listener=object(), protocol=None, tls=None, bytes_sent=0,
                        bytes_received=0)
    cap = Capture()
    cap.opened(t)
    for direction, data in pieces:
        if direction == "in":
            t.bytes_received += len(data)
        else:
            t.bytes_sent += len(data)
        cap.data(t, direction, data)
    cap.closed(t, "closed")
    return cap
"""


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_peer_that_is_not_http_is_bytes_that_say_so_at_the_prompt() -> None:
    # The review's case: an echo server traced, a request written to it; the echo is not
    # a response. Then every class of the protocol library and of netshell is the one its
    # module holds: no module ran twice.
    out = run_python(PROMPT + """
request = b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"
cap = capture([("in", request), ("out", request)])
print("MESSAGES", repr(cap.messages()).splitlines()[-1])
str(cap.diagram())
import sys
twice = []
for name, module in list(sys.modules.items()):
    if not name.startswith(("protocols.", "netshell.")) or module is None:
        continue
    for value in list(vars(module).values()):
        home = sys.modules.get(getattr(value, "__module__", None) or "")
        if isinstance(value, type) and home is not None and "." not in value.__qualname__:
            if vars(home).get(value.__qualname__, value) is not value:
                twice.append(f"{name}.{value.__qualname__}")
print("TWICE", sorted(twice))
""")
    assert "(not HTTP: malformed status line 'GET / HTTP/1.1')" in out, out
    assert "TWICE []" in out, out


def test_any_bytes_read_as_any_protocol_at_the_prompt_never_raise() -> None:
    out = run_python(PROMPT + """
from hypothesis import given, settings, HealthCheck, strategies as st
WORDS = [b"GET / HTTP/1.1\\r\\n", b"HTTP/1.1 200 OK\\r\\n", b"Content-Length: 5\\r\\n",
         b"Transfer-Encoding: chunked\\r\\n", b"\\r\\n", b"zz\\r\\n", b"220 hi\\r\\n",
         b"227 (1,2,3,4,5,6)\\r\\n", b"123-", b":s 001 n :w\\r\\n", b"\\xff\\xf4", b"\\x00"]

@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.sampled_from([None, "http", "ftp", "irc", "ftp-data", "raw"]),
       st.sampled_from([80, 21, 6667, 9999]),
       st.lists(st.tuples(st.sampled_from(["in", "out"]),
                          st.binary(max_size=40) | st.sampled_from(WORDS)), max_size=20))
def read(protocol, port, pieces):
    cap = capture(pieces, port)
    messages = cap.messages(protocol)
    assert sum(len(m.data) for m in cap.messages("raw")) == sum(len(d) for _, d in pieces)
    [m.summary() for m in messages]
    str(cap.diagram())
    str(cap.hexdump())

read()
print("READ")
""")
    assert "READ" in out, out
