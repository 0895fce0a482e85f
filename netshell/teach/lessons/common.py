"""Checks several lessons share: a protocol tried in memory, a listener that echoes."""

from __future__ import annotations

from typing import Any

from netshell.protocol import Protocol
from netshell.teach.lessons.base import TRIED_ONCE, NotYet, State

__all__ = ["echoing_listener", "short", "try_in_memory"]


def short(data: bytes | bytearray, limit: int = 40) -> str:
    """``data`` as a short bytes literal."""
    text = repr(bytes(data[:limit]))
    return text + ("..." if len(data) > limit else "")


def try_in_memory(cls: type, *chunks: bytes) -> bytes:
    """Make a ``cls`` on an in-memory transport, connect it, feed it ``chunks``; return what
    it wrote. Raises NotYet when it cannot be made or raises."""
    from netshell.testing import StringTransport

    try:
        p = cls()
        t = StringTransport()
        p.connection_made(t)
        for chunk in chunks:
            p.data_received(chunk)
    except Exception as e:
        raise NotYet(f"{cls.__name__} raised {type(e).__name__}: {e} when tried in memory "
                     "(on a StringTransport)") from None
    return bytes(t.value())


async def echoing_listener(state: State, protocol: type | None = None) -> str:
    """The newest listener that echoes what the check sends it: the line that says so, or
    NotYet. Only candidates are connected to, once each per step: listeners made since the
    step began, and those serving ``protocol`` (if given) or one of the person's Protocol
    classes."""
    kinds = (protocol,) if protocol is not None else tuple(state.classes(Protocol))
    listeners = state.candidates(*kinds)
    if not listeners:
        what = f"serving {protocol.__name__} " if protocol is not None else ""
        raise NotYet(f"no listener {what}was opened in this step, and none serves a "
                     "protocol of yours")
    payload = b"hello from the check\r\n"
    tried = []
    for x in listeners:
        if x.number not in state.probed:
            got = await state.exchange(x.port, payload,
                                       until=lambda b: len(b) >= len(payload), timeout=2.0)
            if got.got == payload:
                state.memo["listener"] = x
                return (f"listener #{x.number} on 127.0.0.1:{x.port} echoed the check's "
                        f"{len(payload)} bytes")
            state.probed[x.number] = f"#{x.number} answered {short(got.got)}"
        tried.append(state.probed[x.number])
    raise NotYet(f"the check sent {short(payload)}; " + ", ".join(tried) + TRIED_ONCE)


def mine(state: State, base: type = Protocol) -> list[type]:
    """The person's classes that subclass ``base``, newest first; NotYet if none."""
    found = state.classes(base)
    if not found:
        raise NotYet(f"no {base.__name__} subclass of yours is defined yet")
    return found


def protocol_names(state: State) -> set[str]:
    """The names of the person's Protocol classes (as a connection shows its protocol)."""
    return {c.__name__ for c in state.classes(Protocol)}


def peer_port(wire: Any) -> int | None:
    t = wire.live()
    peer = getattr(t, "peer", None) if t is not None else None
    return getattr(peer, "port", None)


__all__ += ["mine", "peer_port", "protocol_names"]
