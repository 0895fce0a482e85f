"""The class attributes the shell patches (chain recording, tracing), to check none stays patched.

The shell's tests take a :func:`snapshot` before each test and check with
:func:`assert_unchanged` after it, so a test that forgot to stop recording or
tracing fails itself instead of leaving a patched Deferred or transport to the
tests that run after it.
"""

from __future__ import annotations

from typing import Any

from netshell.defer import Deferred
from netshell.reactor import DelayedCall
from netshell.transport import StreamTransport
from netshell.udp import DatagramTransport

PATCHABLE: list[tuple[type, str]] = [
    (Deferred, "add_callback"),
    (Deferred, "add_errback"),
    (Deferred, "add_both"),
    (Deferred, "add_callbacks"),
    (Deferred, "callback"),
    (Deferred, "errback"),
    (StreamTransport, "write"),
    (StreamTransport, "write_sequence"),
    (StreamTransport, "data_received"),
    (StreamTransport, "_deliver_tls"),
    (StreamTransport, "connection_lost"),
    (StreamTransport, "_attach_protocol"),
    (DatagramTransport, "write"),
    (DatagramTransport, "_start_reading"),
    (DelayedCall, "_run"),
]


def snapshot() -> dict[tuple[type, str], Any]:
    """The objects those attributes hold now."""
    return {(cls, name): cls.__dict__[name] for cls, name in PATCHABLE}


def assert_unchanged(before: dict[tuple[type, str], Any]) -> None:
    """Fail, naming them, if any attribute holds another object than in ``before``."""
    now = snapshot()
    changed = [f"{cls.__name__}.{name}" for (cls, name), obj in now.items()
               if obj is not before[(cls, name)]]
    assert not changed, f"left patched: {', '.join(changed)}"
