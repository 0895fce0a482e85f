"""The command writer against a real IMAP parser: random commands (hypothesis, the same
strategies as the round-trip tests) written by our writer and sent to Dovecot over a
plain socket, synchronising literals waiting for its ``+``; Dovecot must never answer
BAD (it may say NO: a mailbox that does not exist is no syntax error).

What is drawn: SEARCH with any keys (nested AND/OR/NOT, strings with quotes, backslashes
and 8-bit text as literals, dates, sizes, headers, keywords, UID sets; CHARSET UTF-8),
UID FETCH with any items (sections, partials, header lists) and sets, STATUS and LIST
with mailbox names in any script (modified UTF-7), APPEND of any bytes with flags and a
date. Left out, each with its reason: FETCH by message number (a number beyond the
mailbox is a semantic refusal Dovecot spells BAD "Invalid messageset": we fetch by UID,
where it is not), flags of the flag-extension form other than the system flags
(``\\Foo``: Dovecot answers BAD "Invalid system flag"), and control characters in
mailbox names (Dovecot echoes a LF in one raw in its answer). All three seen so.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from imap_dovecot import Dovecot, dovecot
from imap_strategies import (
    ascii_search_keys,
    datetimes,
    fetch_items,
    flag_lists,
    search_keys,
    sequence_sets,
)

from protocols.mail.imap.parser import ResponseReader
from protocols.mail.imap.values import (
    SYSTEM_FLAGS,
    Command,
    Continuation,
    Response,
    SearchKey,
)

pytestmark = pytest.mark.timeout(120)


class RawIMAP:
    """A blocking IMAP connection that sends what our writer writes, as it is."""

    def __init__(self, server: Dovecot) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.reader = ResponseReader()
        self.tags = 0
        self.next()  # the greeting

    def next(self) -> Response | Continuation:
        while (r := self.reader.next_response()) is None:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Dovecot closed the connection")
            self.reader.receive(data)
        return r

    def run(self, name: str, args: tuple[object, ...] = (), uid: bool = False,
            literal_plus: bool = False) -> Response:
        from protocols.mail.imap.writer import format_command

        self.tags += 1
        cmd = Command(f"w{self.tags}", name, args, uid)
        pieces = format_command(cmd, literal_plus=literal_plus)
        for i, piece in enumerate(pieces):
            self.sock.sendall(piece)
            if i < len(pieces) - 1:
                r = self.next()
                while isinstance(r, Response) and r.tag == "*":
                    r = self.next()
                if isinstance(r, Response):
                    return r  # refused before the literal
        while True:
            r = self.next()
            if isinstance(r, Response) and r.tag == cmd.tag:
                return r

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def connection() -> Iterator[RawIMAP]:
    with dovecot() as server:
        conn = RawIMAP(server)
        try:
            assert conn.run("LOGIN", (server.user, server.password)).kind == "OK"
            assert conn.run("CREATE", ("Target",)).kind == "OK"
            assert conn.run("EXAMINE", ("INBOX",)).kind == "OK"
            yield conn
        finally:
            conn.close()


# (no control characters: Dovecot 2.3 echoes the decoded name in its NO text, a LF in it
# raw, b"b NO Mailbox doesn't exist: \n (0.002 ...)": its bug, which breaks the line)
_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=15)
SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(search_keys, ascii_search_keys), st.booleans())
@example(SearchKey("AND", (SearchKey("SUBJECT", ('say "hi" \\o/',)),
                           SearchKey("HEADER", ("X-A", "{3}\r\n")))), False)
def test_dovecot_reads_any_search_we_write(connection: RawIMAP, key: SearchKey,
                                           literal_plus: bool) -> None:
    r = connection.run("SEARCH", ("UTF-8", key), literal_plus=literal_plus)
    assert r.kind == "OK", (key, r)


@SETTINGS
@given(sequence_sets, st.lists(fetch_items, min_size=1, max_size=4).map(tuple))
def test_dovecot_reads_any_uid_fetch_we_write(connection: RawIMAP, uids: object,
                                              items: tuple[object, ...]) -> None:
    r = connection.run("FETCH", (uids, items), uid=True)
    assert r.kind == "OK", (uids, items, r)


@SETTINGS
@given(_names, st.booleans())
def test_dovecot_reads_any_mailbox_name_we_write(connection: RawIMAP, name: str,
                                                 literal_plus: bool) -> None:
    r = connection.run("STATUS", (name, ("MESSAGES",)), literal_plus=literal_plus)
    assert r.kind in ("OK", "NO"), (name, r)
    r = connection.run("LIST", ("", name + "*"), literal_plus=literal_plus)
    assert r.kind == "OK", (name, r)


@SETTINGS
@given(st.binary(min_size=1, max_size=300).map(lambda b: b.replace(b"\0", b"-")),
       flag_lists.map(lambda fs: tuple(f for f in fs if f in SYSTEM_FLAGS or f[:1] != "\\")),
       st.one_of(st.none(), datetimes),
       st.booleans())
def test_dovecot_reads_any_append_we_write(connection: RawIMAP, message: bytes,
                                           flags: tuple[str, ...], when: object,
                                           literal_plus: bool) -> None:
    r = connection.run("APPEND", ("Target", flags, when, message),
                       literal_plus=literal_plus)
    assert r.kind == "OK", (flags, when, r)
