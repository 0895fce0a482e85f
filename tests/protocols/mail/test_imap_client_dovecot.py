"""Our IMAP client against Dovecot (a server no one here wrote), started once for the
module on a seeded Maildir (imap_dovecot.MESSAGES: a plain message, a multipart with a
nested alternative, an attachment and a message/rfc822 inside, one stored with bare LF,
a digest).

- login (LOGIN, AUTHENTICATE PLAIN with SASL-IR and without, STARTTLS verifying
  Dovecot's throwaway certificate), capabilities, LIST/LSUB, NAMESPACE, ID, STATUS,
  SELECT/EXAMINE;
- SEARCH (built keys, raw text, UTF-8 text sent as a literal, UID SEARCH);
- FETCH of ENVELOPE, BODYSTRUCTURE, BODY[] and sections, compared with what Python's
  email parser says of the same files;
- STORE, COPY (COPYUID), MOVE and its COPY+STORE+UID EXPUNGE fallback, APPEND (APPENDUID,
  LITERAL+ and synchronising), EXPUNGE, CLOSE/UNSELECT, CREATE/RENAME/DELETE/SUBSCRIBE;
- IDLE seeing a message that imaplib (a second client) appends;
- commands asked for all at once (they queue, each gets its own answer);
- NO and BAD as IMAPNo/IMAPBad with the response code;
- the writer's ENVELOPE, BODYSTRUCTURE and BODY[section] of the seeded files against
  Dovecot's answers for them: the same, but for deliberate differences (see those tests).
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import imaplib
import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from imap_dovecot import BARE, MESSAGES, MULTIPART, Dovecot, dovecot

import netshell as ns
from protocols.mail import imap
from protocols.mail.imap.client import (
    IMAPBad,
    IMAPClient,
    IMAPNo,
    IMAPNotSupported,
    fetch_items,
)
from protocols.mail.imap.values import Multipart, Response, SearchKey, SinglePart
from protocols.mail.imap.writer import body_structure, envelope, section_bytes

pytestmark = pytest.mark.timeout(60)

_names = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    with dovecot() as peer:
        yield peer


async def login(server: Dovecot, **kw: Any) -> IMAPClient:
    return await imap.connect(server.host, server.port, user=server.user,
                              password=server.password, timeout=10, **kw)


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def fresh_mailbox(client: IMAPClient, copy_inbox: bool = True) -> str:
    """A mailbox of this test's own, with a copy of INBOX's messages (UIDs 1...)."""
    name = f"work{next(_names)}"
    await client.create(name)
    if copy_inbox:
        await client.select("INBOX")
        await client.copy("1:*", name)
    return name


async def test_login_capabilities_list_namespace_id(server: Dovecot) -> None:
    client = await login(server)
    try:
        assert client.state == "authenticated"
        assert {"IMAP4REV1", "IDLE", "MOVE", "UIDPLUS", "LITERAL+"} <= client.capabilities
        boxes = await client.list()
        assert {b.name for b in boxes} >= {"INBOX", "Sent"}
        sent = next(b for b in boxes if b.name == "Sent")
        assert "\\Sent" in sent.flags and sent.delimiter == "/"
        assert await client.namespace() == ([("", "/")], None, None)
        ident = await client.id({"name": "netshell"})
        assert ident is not None and ident["name"] == "Dovecot"
        assert await client.enable("CONDSTORE") == ("CONDSTORE",)
        status = await client.status("INBOX")
        assert status["MESSAGES"] >= len(MESSAGES) and status["UIDVALIDITY"] > 0
    finally:
        await client.logout()
    assert client.state == "logout"


async def test_select_and_examine(server: Dovecot) -> None:
    client = await login(server)
    try:
        box = await client.examine("INBOX")
        assert box.read_only and box.exists == len(MESSAGES)
        assert box.uidvalidity and box.uidnext and box.uidnext > len(MESSAGES)
        assert "\\Seen" in box.flags
        box = await client.select("INBOX")
        assert not box.read_only and "\\*" in box.permanent_flags
        assert client.state == "selected" and client.mailbox is box
        await client.unselect()
        assert client.state == "authenticated" and client.mailbox is None
    finally:
        await client.logout()


async def test_search_built_raw_utf8_and_by_uid(server: Dovecot) -> None:
    client = await login(server)
    try:
        await client.examine("INBOX")
        assert await client.search() == [1, 2, 3, 4]
        assert await client.search(("FROM", "bob")) == [2]
        assert await client.search("UNSEEN") == [4]  # seeded: all seen but the last
        assert await client.search(("NOT", ("SEEN",)), ("SUBJECT", "digest")) == [4]
        assert await client.search(raw="OR FROM ann FROM bob") == [1, 2]
        # "café" is in an encoded word of message 2's subject: sent as UTF-8 in a literal
        assert await client.search(("SUBJECT", "caf\u00e9")) == [2]
        # SENT* go by the Date header (SINCE/BEFORE by INTERNALDATE: today here)
        assert await client.search(("SENTSINCE", datetime(1994, 2, 8).date()),
                                   ("SENTBEFORE", datetime(1994, 2, 9).date()),
                                   ("HEADER", "Message-ID", "m2")) == [2]
        assert await client.uid_search(SearchKey("UID", (imap.message_set("2:3"),))) == [2, 3]
        with pytest.raises(IMAPBad):
            await client.search(raw="NOTAKEY")
    finally:
        await client.logout()


async def test_fetch_matches_what_the_email_package_says(server: Dovecot) -> None:
    client = await login(server)
    try:
        await client.examine("INBOX")
        got = await client.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE "
                                        "BODY.PEEK[])")
        assert sorted(got) == [1, 2, 3, 4]
        for n, raw in enumerate(MESSAGES, 1):
            item = got[n]
            assert item["BODY[]"] == crlf(raw)
            assert item["RFC822.SIZE"] == len(crlf(raw))
            assert item["UID"] == n
            parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
            env = item["ENVELOPE"]
            assert env.subject == parsed["Subject"]
            assert env.message_id == parsed["Message-ID"]
            for field in ("From", "To"):
                addresses = getattr(env, "from_" if field == "From" else "to")
                if parsed[field] is None:
                    assert addresses is None
                    continue
                expected = [a for a in email.utils.getaddresses([parsed[field]]) if a[1]]
                got_addresses = [(a.name or "", a.email) for a in addresses if a.email]
                assert [e for _, e in got_addresses] == [e for _, e in expected]
            # the body structure's leaves are the email package's, in order
            ours = [f"{p.type}/{p.subtype}".lower() for p in leaves(item["BODYSTRUCTURE"])]
            theirs = [p.get_content_type() for p in walk_leaves(parsed)]
            assert ours == theirs
        assert got[4]["FLAGS"] == () or "\\Seen" not in got[4]["FLAGS"]
        # sections and partials
        parts = await client.fetch(2, ["BODY.PEEK[1.1]", "BODY.PEEK[2.MIME]",
                                       "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]",
                                       "BODY.PEEK[3.1]<2.5>"])
        assert parts[2]["BODY[1.1]"] == b"caf=C3=A9 report attached"
        assert parts[2]["BODY[2.MIME]"].startswith(b"Content-Type: application/pdf;")
        assert parts[2]["BODY[HEADER.FIELDS (SUBJECT FROM)]"] == (
            b'From: "Bob Q. Builder" <bob@example.net>\r\n'
            b"Subject: =?utf-8?q?caf=C3=A9_report?=\r\n\r\n")
        assert parts[2]["BODY[3.1]<2>"] == b"ner t"
    finally:
        await client.logout()


def leaves(bs: Any) -> list[SinglePart]:
    if isinstance(bs, Multipart):
        return [leaf for p in bs.parts for leaf in leaves(p)]
    if bs.body is not None:
        return [bs, *leaves(bs.body)]
    return [bs]


def walk_leaves(msg: email.message.Message) -> list[email.message.Message]:
    out = []
    for part in msg.walk():
        if not part.is_multipart() or part.get_content_type() == "message/rfc822":
            out.append(part)
    return out


async def test_store_copy_move_append_expunge(server: Dovecot) -> None:
    client = await login(server)
    try:
        work = await fresh_mailbox(client)
        box = await client.select(work)
        assert box.exists == len(MESSAGES)
        flags = await client.store(1, ["\\Flagged", "$Important"])
        assert set(flags[1]) >= {"\\Flagged", "$Important", "\\Seen"}
        assert await client.store("1:2", ["\\Seen"], "-", silent=True) == {}
        assert "\\Seen" not in (await client.fetch(1, "FLAGS"))[1]["FLAGS"]
        flags = await client.store(2, ["\\Answered"], "", uid=True)
        assert list(flags) == [2] and set(flags[2]) - {"\\Recent"} == {"\\Answered"}
        # COPY with UIDPLUS's COPYUID
        other = await fresh_mailbox(client, copy_inbox=False)
        await client.select(work)
        code = await client.copy("1:2", other)
        assert code is not None and code.name == "COPYUID"
        _uidvalidity, source, dest = code.value
        assert source.numbers(0) == [1, 2] and len(dest.numbers(0)) == 2
        assert (await client.status(other))["MESSAGES"] == 2
        # MOVE (RFC 6851)
        await client.move(3, other)
        assert client.mailbox is not None and client.mailbox.exists == len(MESSAGES) - 1
        assert (await client.status(other))["MESSAGES"] == 3
        # APPEND with flags and a date; APPENDUID
        when = datetime(2020, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
        message = b"From: z@example.org\r\nSubject: appended\r\n\r\nhello\r\n"
        appended = await client.append(work, message, ["\\Draft"], when)
        assert appended is not None
        found = await client.fetch(appended[1], "(FLAGS INTERNALDATE BODY.PEEK[])", uid=True)
        assert found[appended[1]]["BODY[]"] == message
        assert found[appended[1]]["INTERNALDATE"] == when
        assert "\\Draft" in found[appended[1]]["FLAGS"]
        # EXPUNGE
        await client.store(1, ["\\Deleted"])
        assert await client.expunge() == [1]
        assert client.mailbox.exists == len(MESSAGES) - 1
        await client.close()
        assert client.state == "authenticated"
        # CREATE / RENAME / SUBSCRIBE / LSUB / DELETE
        await client.rename(other, other + "-renamed")
        await client.subscribe(other + "-renamed")
        assert [b.name for b in await client.lsub(pattern=other + "*")] == [other + "-renamed"]
        await client.unsubscribe(other + "-renamed")
        await client.delete(other + "-renamed")
        assert other + "-renamed" not in {b.name for b in await client.list()}
        # a mailbox name in any script goes as modified UTF-7 and comes back
        await client.create("Entw\u00fcrfe/\u65e5\u672c")
        assert "Entw\u00fcrfe/\u65e5\u672c" in {b.name for b in await client.list()}
    finally:
        await client.logout()


async def test_move_without_move_falls_back_to_copy_store_uid_expunge(server: Dovecot) -> None:
    client = await login(server)
    try:
        work = await fresh_mailbox(client)
        other = await fresh_mailbox(client, copy_inbox=False)
        await client.select(work)
        await client.store(4, ["\\Deleted"])  # marked, and must survive the fallback
        client.capabilities = client.capabilities - {"MOVE"}
        code = await client.move("1:2", other)
        assert code is not None and code.name == "COPYUID"
        left = await client.fetch("1:*", "(UID FLAGS)")
        assert sorted(d["UID"] for d in left.values()) == [3, 4]  # UID EXPUNGE of 1 and 2 only
        assert (await client.status(other))["MESSAGES"] == 2
    finally:
        await client.logout()


async def test_append_with_and_without_literal_plus(server: Dovecot) -> None:
    client = await login(server)
    try:
        work = await fresh_mailbox(client, copy_inbox=False)
        big = b"Subject: big\r\n\r\n" + b"0123456789abcdef\r\n" * 1000
        assert await client.append(work, big) is not None  # {n+}
        client.capabilities = client.capabilities - {"LITERAL+"}
        assert await client.append(work, BARE) is not None  # {n}: waits for "+"
        await client.examine(work)
        bodies = await client.fetch("1:*", "BODY.PEEK[]")
        assert [bodies[n]["BODY[]"] for n in (1, 2)] == [big, crlf(BARE)]
    finally:
        await client.logout()


async def test_commands_asked_for_at_once_each_get_their_answer(server: Dovecot) -> None:
    client = await login(server)
    try:
        results = await ns.gather(
            client.examine("INBOX"), client.search(("FROM", "bob")), client.list(),
            client.fetch(1, "UID"), client.status("INBOX", ["MESSAGES"]),
            client.search("ALL"),
        )
        assert results[1] == [2] and results[5] == [1, 2, 3, 4]
        assert results[3] == {1: {"UID": 1}}
        assert results[4] == {"MESSAGES": len(MESSAGES)}
    finally:
        await client.logout()


async def test_idle_sees_a_message_appended_by_imaplib(server: Dovecot) -> None:
    client = await login(server)
    try:
        box = await fresh_mailbox(client, copy_inbox=False)
        await client.select(box)
        seen: list[Response] = []
        arrived: ns.Deferred[None] = ns.Deferred()

        def heard(response: Response) -> None:
            seen.append(response)
            if response.kind == "EXISTS" and not arrived.called:
                arrived.callback(None)

        idling = client.idle(heard)
        await idling.started

        def append_with_imaplib() -> None:
            other = imaplib.IMAP4(server.host, server.port)
            try:
                other.login(server.user, server.password)
                other.append(box, "", None, b"Subject: from imaplib\r\n\r\nhi\r\n")
            finally:
                other.logout()

        await ns.defer_to_thread(append_with_imaplib)
        await arrived.add_timeout(10)
        await idling.stop()
        assert [r.number for r in seen if r.kind == "EXISTS"] == [1]
        # after IDLE the connection takes commands again
        got = await client.fetch(1, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        assert got[1]["BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: from imaplib\r\n\r\n"
    finally:
        await client.logout()


async def test_no_and_bad_carry_the_response_code(server: Dovecot) -> None:
    with pytest.raises(IMAPNo) as refused:
        await imap.connect(server.host, server.port, user="alice", password="wrong",
                           timeout=10)
    assert refused.value.code is not None and refused.value.code.name == "AUTHENTICATIONFAILED"
    client = await login(server)
    try:
        with pytest.raises(IMAPNo, match="SELECT"):
            await client.select("NoSuchBox")
        assert client.state == "authenticated"
        await client.examine("INBOX")
        with pytest.raises(IMAPNo) as copy_error:
            await client.copy(1, "NoSuchBox")
        assert copy_error.value.code is not None and copy_error.value.code.name == "TRYCREATE"
        with pytest.raises(IMAPNotSupported):
            client.capabilities = client.capabilities - {"IDLE"}
            client.idle(lambda r: None)
    finally:
        await client.logout()


async def test_starttls_then_authenticate_plain(server: Dovecot) -> None:
    client = await imap.connect(server.host, server.port, tls="starttls", ca=server.ca,
                                timeout=10)
    try:
        assert client.protocol is not None and client.protocol.transport.tls is not None
        await client.authenticate_plain(server.user, server.password)  # with SASL-IR
        assert client.state == "authenticated"
    finally:
        await client.logout()
    # without SASL-IR: the answer goes after the server's "+"
    client = await imap.connect(server.host, server.port, timeout=10)
    try:
        client.capabilities = client.capabilities - {"SASL-IR"}
        await client.authenticate_plain(server.user, server.password)
        assert (await client.examine("INBOX")).exists == len(MESSAGES)
    finally:
        await client.logout()
    # TLS from the first byte
    client = await imap.connect(server.host, server.tls_port, tls="implicit", ca=server.ca,
                                user=server.user, password=server.password, timeout=10)
    try:
        assert client.protocol is not None and client.protocol.transport.tls is not None
        assert client.state == "authenticated"
    finally:
        await client.logout()
    # a certificate nobody vouches for is refused
    with pytest.raises(ns.TLSError):
        await imap.connect(server.host, server.port, tls="starttls", timeout=10)


def without_extension(bs: Any) -> Any:
    if isinstance(bs, Multipart):
        return Multipart(tuple(without_extension(p) for p in bs.parts), bs.subtype,
                         extended=False)
    return replace(bs, md5=None, disposition=None, language=None, location=None,
                   extended=False, body=None if bs.body is None else without_extension(bs.body))


async def test_the_writer_agrees_with_dovecot_on_envelope_and_bodystructure(
    server: Dovecot,
) -> None:
    """Our ENVELOPE and BODYSTRUCTURE of each seeded file against Dovecot's for it.

    One deliberate difference: a message/rfc822 part whose inner message ends with a
    multipart's close delimiter (MULTIPART's part 3). RFC 2046 5.1.1 gives the CRLF
    before the outer boundary to the boundary, so the part ends at ``--deep--``; Dovecot
    counts that CRLF in the part (2 octets more, one line more). We follow the RFC."""
    client = await login(server)
    try:
        await client.examine("INBOX")
        got = await client.fetch("1:*", "(ENVELOPE BODYSTRUCTURE BODY)")
        for n, raw in enumerate(MESSAGES, 1):
            assert envelope(raw) == got[n]["ENVELOPE"], n
            ours = body_structure(raw)
            theirs = got[n]["BODYSTRUCTURE"]
            if raw is MULTIPART:
                dovecot_part = theirs.parts[2]
                assert isinstance(ours, Multipart)
                our_part = ours.parts[2]
                assert (dovecot_part.size - our_part.size,
                        dovecot_part.lines - our_part.lines) == (2, 1)
                theirs = replace(theirs, parts=(*theirs.parts[:2], replace(
                    dovecot_part, size=our_part.size, lines=our_part.lines)))
            assert ours == theirs, n
            # BODY is BODYSTRUCTURE without the extension data, read as such
            assert got[n]["BODY"] == without_extension(got[n]["BODYSTRUCTURE"]), n
    finally:
        await client.logout()


SECTIONS = (
    "[]", "[HEADER]", "[TEXT]", "[1]", "[1.MIME]", "[2]", "[2.MIME]", "[1.1]", "[1.2]",
    "[1.2.MIME]", "[3]", "[3.MIME]", "[3.HEADER]", "[3.TEXT]", "[3.1]", "[3.1.MIME]",
    "[HEADER.FIELDS (SUBJECT FROM)]", "[HEADER.FIELDS.NOT (subject)]", "[5]", "[1.1.1]",
    "[2.HEADER]", "[1.TEXT]", "[1.1]<3.4>", "[3.1.HEADER]", "[1]<0.5>", "[]<9999.9>",
)


async def test_the_writer_cuts_body_sections_as_dovecot_does(server: Dovecot) -> None:
    """section_bytes of each seeded file against Dovecot's BODY[section] for it, for
    every section above. Two deliberate differences, both in MULTIPART:

    - parts 1 and 3 (and 3.TEXT) end with a nested multipart's close delimiter: we end
      them there (RFC 2046 5.1.1: the CRLF before the next boundary is the boundary's),
      Dovecot adds that CRLF (as its BODYSTRUCTURE sizes do: see the test above);
    - 1.1.1, a part of the leaf 1.1: a leaf has no parts, we answer empty (as Dovecot
      does for 1.1 of a single-part message); Dovecot answers the leaf itself."""
    client = await login(server)
    try:
        await client.examine("INBOX")
        for text in SECTIONS:
            (item,) = fetch_items(f"BODY.PEEK{text}")
            assert item.section is not None
            got = await client.fetch("1:*", [item])
            for n, raw in enumerate(MESSAGES, 1):
                theirs = got[n][item.response_name.upper()]
                ours = section_bytes(raw, item.section, item.partial)
                if raw is MULTIPART and text in ("[1]", "[3]", "[3.TEXT]"):
                    assert theirs == ours + b"\r\n", text
                elif raw is MULTIPART and text == "[1.1.1]":
                    assert (ours, theirs) == (b"", b"caf=C3=A9 report attached")
                else:
                    assert ours == theirs, (n, text)
    finally:
        await client.logout()
