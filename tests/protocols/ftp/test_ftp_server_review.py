"""Regressions for the FTP server bugs a hostile review found (issue 14's bar).

Most run in memory (a StringTransport and a Clock, as test_ftp_server_memory.py does);
those about the event loop (a flooding client, a big directory) run a real server and
raw clients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import make_tree

from netshell.interfaces import Address
from netshell.testing import Clock, StringTransport
from protocols.ftp.server import FTPServerFactory, FTPServerProtocol


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def session(factory: FTPServerFactory, buffer_limit: int | None = None
            ) -> tuple[FTPServerProtocol, StringTransport]:
    protocol = factory.build_protocol(Address("tcp", "127.0.0.1", 40000))
    transport = StringTransport(peer=Address("tcp", "127.0.0.1", 40000),
                                buffer_limit=buffer_limit)
    protocol.connection_made(transport)
    return protocol, transport


def replies(transport: StringTransport) -> list[str]:
    """The reply lines written since the last call."""
    text = transport.value().decode()
    transport.clear()
    return [line for line in text.split("\r\n") if line]


def codes(transport: StringTransport) -> list[str]:
    return [line[:3] for line in replies(transport)]


def make_factory(root: Path, clock: Clock, **kw: Any) -> FTPServerFactory:
    options: dict[str, Any] = {"login_delay": 0}
    options.update(kw)
    return FTPServerFactory(root, reactor=clock, clock=clock, **options)


# ---- 1. anonymous rights


def test_anonymous_is_read_only_beside_named_users_even_when_writable(tree: Path) -> None:
    clock = Clock()
    factory = make_factory(tree, clock, users={"u": "p"}, writable=True)
    protocol, t = session(factory)
    replies(t)
    protocol.data_received(b"USER anonymous\r\nPASS me@example.org\r\n"
                           b"MKD made\r\nDELE hello.txt\r\nRNFR hello.txt\r\n"
                           b"SITE CHMOD 600 hello.txt\r\n")
    assert codes(t) == ["331", "230", "550", "550", "550", "550"]
    assert not (tree / "made").exists() and (tree / "hello.txt").exists()
    # the named user has the rights writable gives
    protocol, t = session(factory)
    replies(t)
    protocol.data_received(b"USER u\r\nPASS p\r\nMKD made\r\n")
    assert codes(t) == ["331", "230", "257"]


def test_anonymous_alone_gets_writable(tree: Path) -> None:
    clock = Clock()
    for users in (None, {}):
        protocol, t = session(make_factory(tree, clock, users=users, writable=True))
        replies(t)
        protocol.data_received(b"USER ftp\r\nPASS x\r\nMKD made\r\nRMD made\r\n")
        assert codes(t) == ["331", "230", "257", "250"]
