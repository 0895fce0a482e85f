"""Our IMAP server against Dovecot's answers for the same Maildir messages
(imap_dovecot.MESSAGES, the same files in both: a plain message, a multipart with an
alternative, an attachment and a nested message/rfc822, non-ASCII encoded words and
groups in the headers, a message stored with bare LF, a digest). Both are read by our
client's response parser, so the comparison is of what was said, not of how it was
quoted.

Compared: ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE, FLAGS, and BODY[section]<partial>
for 26 sections of every message; SEARCH for a few keys; LIST's INBOX and the
untagged answers of SELECT (names, not numbers that differ: UIDVALIDITY).

Deliberate differences (the same as the writer's, see test_imap_client_dovecot.py):
MULTIPART's parts 1 and 3 end with a nested multipart's close delimiter; RFC 2046 5.1.1
gives the CRLF before the next boundary to that boundary, so our parts end at the close
delimiter, Dovecot's are two octets (one line) longer (in BODYSTRUCTURE and in BODY[1],
BODY[3], BODY[3.TEXT]); and BODY[1.1.1] (a part of a leaf) is empty here, Dovecot
answers the leaf itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from imap_dovecot import MESSAGES, MULTIPART, Dovecot, dovecot
from imap_dovecot import seed as seed_files

from protocols.mail import imap
from protocols.mail.imap.client import IMAPClient, fetch_items
from protocols.mail.imap.server import serve
from protocols.mail.imap.values import Multipart

pytestmark = pytest.mark.timeout(60)

SECTIONS = (
    "[]", "[HEADER]", "[TEXT]", "[1]", "[1.MIME]", "[2]", "[2.MIME]", "[1.1]", "[1.2]",
    "[1.2.MIME]", "[3]", "[3.MIME]", "[3.HEADER]", "[3.TEXT]", "[3.1]", "[3.1.MIME]",
    "[HEADER.FIELDS (SUBJECT FROM)]", "[HEADER.FIELDS.NOT (subject)]", "[5]", "[1.1.1]",
    "[2.HEADER]", "[1.TEXT]", "[1.1]<3.4>", "[3.1.HEADER]", "[1]<0.5>", "[]<9999.9>",
)


@pytest.fixture(scope="module")
def peer() -> Iterator[Dovecot]:
    with dovecot() as running:
        yield running


@pytest.fixture
def ours(tmp_path: Path, reactor: Any) -> Iterator[Any]:
    seed_files(tmp_path / "alice")  # the very files Dovecot serves
    listener = serve(tmp_path, {"alice": "secret"}, fsync=False)
    yield listener
    listener.close()


async def both(peer: Dovecot, ours: Any) -> tuple[IMAPClient, IMAPClient]:
    theirs = await imap.connect(peer.host, peer.port, user="alice", password="secret",
                                timeout=10)
    mine = await imap.connect("127.0.0.1", ours.port, user="alice", password="secret",
                              timeout=10)
    for c in (theirs, mine):
        await c.examine("INBOX")
    return theirs, mine


def _fix_multipart(ours_bs: Any, theirs_bs: Any) -> Any:
    """Dovecot's MULTIPART structure with parts 1 and 3 cut as we cut them (the one
    deliberate difference), after checking that it is exactly that difference."""
    assert isinstance(theirs_bs, Multipart) and isinstance(ours_bs, Multipart)
    parts = list(theirs_bs.parts)
    for i in (0, 2):
        a, b = parts[i], ours_bs.parts[i]
        if isinstance(a, Multipart):  # part 1: a multipart has no size of its own
            continue
        assert (a.size - b.size, a.lines - b.lines) == (2, 1)
        parts[i] = replace(a, size=b.size, lines=b.lines)
    return replace(theirs_bs, parts=tuple(parts))


async def test_fetch_structures_match_dovecot(peer: Dovecot, ours: Any) -> None:
    theirs, mine = await both(peer, ours)
    try:
        items = "(FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY UID)"
        want = await theirs.fetch("1:*", items)
        got = await mine.fetch("1:*", items)
    finally:
        await theirs.logout()
        await mine.logout()
    assert sorted(got) == sorted(want) == list(range(1, len(MESSAGES) + 1))
    for n, raw in enumerate(MESSAGES, 1):
        g, w = got[n], want[n]
        assert g["ENVELOPE"] == w["ENVELOPE"], n
        assert g["RFC822.SIZE"] == w["RFC822.SIZE"], n
        assert g["UID"] == w["UID"] == n
        assert set(g["FLAGS"]) - {"\\Recent"} == set(w["FLAGS"]) - {"\\Recent"}, n
        expected = w["BODYSTRUCTURE"]
        if raw is MULTIPART:
            expected = _fix_multipart(g["BODYSTRUCTURE"], expected)
        assert g["BODYSTRUCTURE"] == expected, n
        if raw is not MULTIPART:
            assert g["BODY"] == w["BODY"], n


async def test_body_sections_match_dovecot(peer: Dovecot, ours: Any) -> None:
    theirs, mine = await both(peer, ours)
    try:
        for text in SECTIONS:
            (item,) = fetch_items(f"BODY.PEEK{text}")
            want = await theirs.fetch("1:*", [item])
            got = await mine.fetch("1:*", [item])
            for n, raw in enumerate(MESSAGES, 1):
                key = item.response_name.upper()
                g, w = got[n][key], want[n][key]
                if raw is MULTIPART and text in ("[1]", "[3]", "[3.TEXT]"):
                    assert w == g + b"\r\n", text
                elif raw is MULTIPART and text == "[1.1.1]":
                    assert (g, w) == (b"", b"caf=C3=A9 report attached")
                else:
                    assert g == w, (n, text)
    finally:
        await theirs.logout()
        await mine.logout()


async def test_search_and_select_match_dovecot(peer: Dovecot, ours: Any) -> None:
    theirs, mine = await both(peer, ours)
    try:
        for key in ("ALL", "SEEN", "UNSEEN", "FROM bob", "SUBJECT report", "TO q@example",
                    "HEADER Message-ID m2", "BODY notes", "TEXT digest", "LARGER 1000",
                    "SMALLER 300", "OR FROM ann FROM dan", "NOT SEEN", "2:3", "UID 2:*",
                    "SENTBEFORE 8-Feb-1994", "SENTON 8-Feb-1994", "SENTSINCE 8-Feb-1994",
                    "SENTON 1-Jan-1970", "CC undisclosed",
                    ("SUBJECT", "caf\u00e9"), ("FROM", "Bob Q.")):
            how: dict[str, Any] = {"raw": key} if isinstance(key, str) else {}
            criteria = () if isinstance(key, str) else (key,)
            w = await theirs.search(*criteria, **how)
            g = await mine.search(*criteria, **how)
            assert g == w, key
        w_list = await theirs.list("", "INBOX")
        g_list = await mine.list("", "INBOX")
        assert [e.name for e in g_list] == [e.name for e in w_list] == ["INBOX"]
    finally:
        await theirs.logout()
        await mine.logout()

