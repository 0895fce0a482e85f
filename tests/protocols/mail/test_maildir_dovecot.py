"""Our store and Dovecot on one Maildir: flags our store set are the flags Dovecot's IMAP
shows, flags, messages (with INTERNALDATE) and folders Dovecot's IMAP makes are what our
store reads, and folders our store makes are folders Dovecot lists. imaplib (in a thread)
speaks to Dovecot; Dovecot is the reference for the Maildir++ layout and the info letters."""

from __future__ import annotations

import imaplib
import re
import time
from typing import Any

from pop3_dovecot import dovecot_server
from pop3_helpers import MESSAGES

import netshell as ns


def imap_session(port: int) -> imaplib.IMAP4:
    """imaplib logged in as alice (tried again at once while Dovecot is not listening)."""
    for _ in range(200):
        try:
            imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
            break
        except ConnectionRefusedError:
            continue
    imap.login("alice", "secret")
    return imap


def flags_by_uid(imap: imaplib.IMAP4) -> dict[int, set[str]]:
    typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", data
    out = {}
    for item in data:
        text = item.decode() if isinstance(item, bytes) else item[0].decode()
        m = re.search(r"UID (\d+)", text)
        f = re.search(r"FLAGS \(([^)]*)\)", text)
        assert m and f, text
        out[int(m.group(1))] = set(f.group(1).split()) - {"\\Recent"}
    return out


async def test_flags_our_store_sets_are_what_dovecot_shows_and_back() -> None:
    async with dovecot_server() as dovecot:
        box = dovecot.box
        uids = [m.uid for m in box.messages()]
        box.set_flags(uids[0], {"\\Seen", "\\Flagged"})
        box.set_flags(uids[1], {"\\Answered", "\\Draft", "\\Deleted"})
        dovecot.give_back()

        def work() -> dict[int, set[str]]:
            imap = imap_session(dovecot.imap_port)
            imap.select("INBOX")
            shown = flags_by_uid(imap)
            # Dovecot numbers them itself (its own dovecot-uidlist), in the same order
            imap.store("3", "+FLAGS", "(\\Seen \\Answered)")
            imap.store("1", "-FLAGS", "(\\Flagged)")
            imap.logout()
            return shown

        shown = await ns.defer_to_thread(work)
        assert list(shown.values()) == [{"\\Seen", "\\Flagged"},
                                        {"\\Answered", "\\Draft", "\\Deleted"}, set()]
        assert [m.flags for m in box.messages()] == [
            {"\\Seen"}, {"\\Answered", "\\Draft", "\\Deleted"}, {"\\Answered", "\\Seen"}]


async def test_what_dovecot_appends_and_creates_our_store_reads() -> None:
    async with dovecot_server(messages=[]) as dovecot:
        when = 1_600_000_000

        def work() -> list[bytes]:
            imap = imap_session(dovecot.imap_port)
            assert imap.create("Archive.2024")[0] == "OK"
            date = imaplib.Time2Internaldate(time.localtime(when))
            typ, _ = imap.append("Archive.2024", "(\\Seen \\Flagged)", date,
                                 b"Subject: kept\r\n\r\nbody\r\n")
            assert typ == "OK"
            imap.append("INBOX", None, None, MESSAGES[0])
            typ, listing = imap.list()
            imap.logout()
            return listing

        listing = await ns.defer_to_thread(work)
        assert any(b'"." Archive.2024' in line for line in listing), listing
        box = dovecot.box
        assert box.list_folders() == ["INBOX", "Archive.2024"]
        archive = box.folder("Archive.2024")
        [kept] = archive.messages()
        assert kept.flags == {"\\Seen", "\\Flagged"}
        assert kept.internal_date == when
        assert archive.read(kept.uid).replace(b"\r\n", b"\n") == b"Subject: kept\n\nbody\n"
        [inbox] = box.messages()
        assert box.read(inbox.uid).replace(b"\r\n", b"\n") == MESSAGES[0].replace(b"\r\n", b"\n")
        assert box.wire_size(inbox) == len(MESSAGES[0])  # Dovecot's ,W= or counted


async def test_folders_and_messages_our_store_makes_dovecot_lists() -> None:
    async with dovecot_server(messages=[]) as dovecot:
        sent = dovecot.box.create_folder("Sent")
        sent.append(b"Subject: out\r\n\r\nhello\r\n", flags={"\\Seen"},
                    date=1_500_000_000)
        dovecot.box.create_folder("Archive.2024")
        dovecot.give_back()

        def work() -> tuple[list[Any], Any, list[Any]]:
            imap = imap_session(dovecot.imap_port)
            listing = imap.list()[1]
            typ, exists = imap.select("Sent")
            assert typ == "OK"
            fetched = imap.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")[1]
            imap.logout()
            return listing, exists, fetched

        listing, exists, fetched = await ns.defer_to_thread(work)
        names = {line.decode().rsplit(" ", 1)[-1].strip('"'): line.decode() for line in listing}
        # Archive has no Maildir of its own: Dovecot lists it as a parent that cannot be selected
        assert set(names) == {"INBOX", "Sent", "Archive", "Archive.2024"}
        assert "\\Noselect" in names["Archive"] or "\\NonExistent" in names["Archive"]
        assert exists == [b"1"]
        head, body = fetched[0]
        assert b"\\Seen" in head and body == b"Subject: out\r\n\r\nhello\r\n"
        date = re.search(rb'INTERNALDATE "([^"]+)"', head)
        assert date is not None
        parsed = imaplib.Internaldate2tuple(b'INTERNALDATE "' + date.group(1) + b'"')
        assert parsed is not None and time.mktime(parsed) == 1_500_000_000
