"""Python's imaplib against the IMAP server: every command of RFC 3501 and the extensions,
STARTTLS (verified, LOGINDISABLED before it), literals, and IDLE watched by one connection
while a second appends, flags and expunges.

imaplib runs in a thread (ns.defer_to_thread) while the reactor serves.
"""

from __future__ import annotations

import imaplib
import re
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imap_dovecot import MESSAGES, PLAIN
from imapd_helpers import USERS, seed, server_tls

import netshell as ns
from netshell import tls
from protocols.mail.imap.server import serve
from protocols.mail.maildir import Maildir

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.fixture
def box(tmp_path: Path) -> Maildir:
    return seed(tmp_path)


@pytest.fixture
def server(tmp_path: Path, box: Maildir, certs: Any, reactor: Any) -> Iterator[Any]:
    listener = serve(tmp_path, USERS, tls=server_tls(certs), fsync=False)
    yield listener
    listener.close()


def connect(server: Any) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
    c.login("alice", "secret")
    return c


async def test_session_commands(server: Any, box: Maildir) -> None:
    def work() -> dict[str, Any]:
        c = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
        got: dict[str, Any] = {"caps": c.capabilities}
        got["noop"] = c.noop()
        got["id"] = c.xatom("ID", '("name" "imaplib")')
        got["id data"] = c.response("ID")
        got["login"] = c.login("alice", "secret")
        got["namespace"] = c.namespace()
        got["enable"] = c.xatom("ENABLE", "CONDSTORE")
        got["select"] = c.select("INBOX")
        got["exists"] = c.response("EXISTS")
        got["uidvalidity"] = c.response("UIDVALIDITY")
        got["examine"] = c.select("INBOX", readonly=True)
        got["read-only"] = c.response("READ-ONLY")
        got["store ro"] = c.store("1", "+FLAGS", "(\\Flagged)")
        got["unselect"] = c._simple_command("UNSELECT")
        got["fetch unselected"] = _error(lambda: c.fetch("1", "FLAGS"))
        got["logout"] = c.logout()
        return got

    got = await ns.defer_to_thread(work)
    caps = set(got["caps"])
    assert {"IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "UNSELECT", "ENABLE",
            "LITERAL+", "SPECIAL-USE", "ID", "STARTTLS", "AUTH=PLAIN", "SASL-IR"} <= caps
    assert got["noop"][0] == "OK"
    assert got["id data"][1][0].startswith(b'("name" "netshell"')
    assert got["namespace"] == ("OK", [b'(("" ".")) NIL NIL'])
    assert got["select"] == ("OK", [str(len(MESSAGES)).encode()])
    assert got["uidvalidity"][1] == [str(box.uidvalidity).encode()]
    assert got["read-only"][1] != [None]
    assert got["store ro"][0] == "NO"
    assert got["unselect"][0] == "OK"
    assert "needs a selected mailbox" in got["fetch unselected"]
    assert got["logout"][0] == "BYE"


def _error(call: Any) -> str:
    try:
        call()
    except imaplib.IMAP4.error as e:
        return str(e)
    raise AssertionError("no error")


async def test_mailboxes(server: Any, box: Maildir, tmp_path: Path) -> None:
    def work() -> dict[str, Any]:
        c = connect(server)
        got: dict[str, Any] = {}
        for name in ("Sent", "Trash", "Archive.2024", "Entw\u00fcrfe"):
            got["create " + name] = c.create(
                name if name.isascii() else '"' + "Entw&APw-rfe" + '"')
        got["create again"] = c.create("Sent")
        got["create INBOX"] = c.create("inbox")
        got["list"] = c.list()
        got["list %"] = c.list('""', "%")
        got["list Archive.%"] = c.list("Archive.", "%")
        got["list empty"] = c.list('""', '""')
        got["subscribe"] = c.subscribe("Sent"), c.subscribe("Archive.2024")
        got["lsub"] = c.lsub()
        got["lsub %"] = c.lsub('""', "%")
        got["unsubscribe"] = c.unsubscribe("Sent")
        got["lsub after"] = c.lsub()
        got["rename"] = c.rename("Archive", "Old")
        got["list after rename"] = c.list('""', "Old*")
        got["rename missing"] = c.rename("Nope", "Other")
        got["delete"] = c.delete("Trash")
        got["delete missing"] = c.delete("Trash")
        got["delete inbox"] = c.delete("INBOX")
        got["status"] = c.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
        got["status missing"] = c.status("Nope", "(MESSAGES)")
        got["rename inbox"] = c.rename("INBOX", "Saved")
        got["status saved"] = c.status("Saved", "(MESSAGES)")
        got["status inbox"] = c.status("INBOX", "(MESSAGES)")
        c.logout()
        return got

    uidnext = box.uidnext
    got = await ns.defer_to_thread(work)
    assert all(got[f"create {n}"][0] == "OK" for n in ("Sent", "Trash", "Archive.2024"))
    assert got["create again"][0] == "NO" and b"ALREADYEXISTS" in got["create again"][1][0]
    assert got["create INBOX"][0] == "NO"
    listed = got["list"][1]
    assert b'(\\HasNoChildren) "." INBOX' in listed
    assert b'(\\HasNoChildren \\Sent) "." Sent' in listed
    assert b'(\\HasNoChildren \\Trash) "." Trash' in listed
    assert b'(\\HasChildren \\Archive) "." Archive' in listed
    assert b'(\\HasNoChildren) "." Archive.2024' in listed
    assert b'(\\HasNoChildren) "." Entw&APw-rfe' in listed
    assert (tmp_path / "alice" / ".Entw&APw-rfe" / "cur").is_dir()  # stored as Dovecot does
    assert b"Archive.2024" not in b" ".join(got["list %"][1])
    assert got["list Archive.%"][1] == [b'(\\HasNoChildren) "." Archive.2024']
    assert got["list empty"][1] == [b'(\\Noselect) "." ""']
    assert sorted(got["lsub"][1]) == [b'() "." Archive.2024', b'() "." Sent']
    assert set(got["lsub %"][1]) == {b'(\\Noselect) "." Archive', b'() "." Sent'}
    assert got["lsub after"][1] == [b'() "." Archive.2024']
    assert got["list after rename"][1] == [b'(\\HasChildren \\Archive) "." Old'.replace(
        b" \\Archive", b""), b'(\\HasNoChildren) "." Old.2024']
    assert got["rename missing"][0] == "NO"
    assert got["delete"][0] == "OK" and got["delete missing"][0] == "NO"
    assert got["delete inbox"][0] == "NO"
    assert got["status"][1] == [
        b"INBOX (MESSAGES %d RECENT 0 UIDNEXT %d UIDVALIDITY %d UNSEEN 1)"
        % (len(MESSAGES), uidnext, box.uidvalidity)]
    assert got["status missing"][0] == "NO"
    assert got["rename inbox"][0] == "OK"
    assert got["status saved"][1] == [b"Saved (MESSAGES %d)" % len(MESSAGES)]
    assert got["status inbox"][1] == [b"INBOX (MESSAGES 0)"]  # INBOX stays, emptied


async def test_fetch(server: Any, box: Maildir) -> None:
    def work() -> dict[str, Any]:
        c = connect(server)
        c.select("INBOX")
        got: dict[str, Any] = {}
        got["all"] = c.fetch("1:*", "ALL")
        got["fast"] = c.fetch("2", "FAST")
        got["full"] = c.fetch("2", "FULL")
        got["body[]"] = c.fetch("1", "(BODY.PEEK[])")
        got["partial"] = c.fetch("1", "(BODY.PEEK[]<6.10>)")
        got["header.fields"] = c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
        got["header.fields.not"] = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (Subject)])")
        got["parts"] = c.fetch("2", "(BODY.PEEK[1.1] BODY.PEEK[1.2.MIME] BODY.PEEK[3.TEXT] "
                                    "BODY.PEEK[3.1])")
        got["rfc822"] = c.fetch("3", "(RFC822.HEADER RFC822.TEXT)")
        got["flags after rfc822.text"] = c.fetch("3", "FLAGS")
        got["last unseen"] = c.fetch(str(len(MESSAGES)), "FLAGS")
        got["body[text]"] = c.fetch(str(len(MESSAGES)), "(BODY[TEXT])")
        got["uid fetch"] = c.uid("FETCH", "1:*", "(RFC822.SIZE)")
        got["bad set"] = _error(lambda: c.fetch("99", "FLAGS"))
        c.logout()
        return got

    got = await ns.defer_to_thread(work)
    assert len(got["all"][1]) == len(MESSAGES)
    first = got["all"][1][0]
    assert re.match(rb'1 \(FLAGS \(\\Seen\) INTERNALDATE "\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d '
                    rb'[+-]\d{4}" RFC822.SIZE %d ENVELOPE \("Mon, 7 Feb 1994 21:52:25 -0800" '
                    rb'"afternoon meeting" \(\("Ann Example" NIL "ann" "example.org"\)\)'
                    % len(PLAIN), first), first
    assert b"BODY (" in got["full"][1][0] and b"BODYSTRUCTURE" not in got["full"][1][0]
    assert got["body[]"][1][0] == (b"1 (BODY[] {%d}" % len(PLAIN), PLAIN)
    assert got["partial"][1][0] == (b"1 (BODY[]<6> {10}", PLAIN[6:16])
    assert got["header.fields"][1][0][1] == (
        b'From: "Bob Q. Builder" <bob@example.net>\r\n'
        b"Subject: =?utf-8?q?caf=C3=A9_report?=\r\n\r\n")
    assert b"Subject" not in got["header.fields.not"][1][0][1]
    parts = got["parts"][1]
    assert parts[0][1] == b"caf=C3=A9 report attached"
    assert parts[1][1] == (b'Content-Type: text/html; charset="utf-8"\r\n'
                           b"Content-Language: en, de\r\n\r\n")
    assert parts[2][1].startswith(b"--deep\r\nContent-Type: text/plain")
    assert parts[3][1] == b"inner text"
    header, text = got["rfc822"][1][0], got["rfc822"][1][1]
    assert header[1] == (b"From: root@localhost\r\nSubject: no mime\r\n"
                         b'To: "Quoted, Name" <q@example.com>\r\n\r\n')
    assert text[1] == b"one line\r\nanother line\r\n"  # bare LF on disk, CRLF on the wire
    assert b"\\Seen" not in got["last unseen"][1][0]
    assert b"FLAGS (\\Seen" in b" ".join(x if isinstance(x, bytes) else x[0]
                                          for x in got["body[text]"][1])
    sizes = [int(re.search(rb"RFC822.SIZE (\d+)", x).group(1)) for x in got["uid fetch"][1]]
    assert sizes == [len(m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")) for m in MESSAGES]
    assert b"UID 1 " in got["uid fetch"][1][0]
    assert "Invalid message sequence number" in got["bad set"]
    flags = {m.uid: m.flags for m in box.messages()}
    assert "\\Seen" in flags[len(MESSAGES)]  # BODY[TEXT] (not PEEK) set it on disk


async def test_store_copy_move_expunge_append(server: Any, box: Maildir, tmp_path: Path) -> None:
    def work() -> dict[str, Any]:
        c = connect(server)
        c.create("Archive")
        got: dict[str, Any] = {"select": c.select("INBOX")}
        got["store"] = c.store("1:2", "+FLAGS", "(\\Flagged $Work)")
        got["store silent"] = c.store("3", "+FLAGS.SILENT", "(\\Answered)")
        got["store minus"] = c.store("1", "-FLAGS", "(\\Seen)")
        got["store set"] = c.uid("STORE", "2", "FLAGS", "(\\Draft)")
        got["copy"] = c.copy("1:2", "Archive")
        got["copy missing"] = c.copy("1", "Nope")
        got["uid copy"] = c.uid("COPY", "3", "Archive")
        got["move"] = c._simple_command("MOVE", "4", "Archive")
        got["move untagged"] = c.response("EXPUNGE"), c.response("COPYUID")
        got["store deleted"] = c.store("1", "+FLAGS.SILENT", "(\\Deleted)")
        got["expunge"] = c.expunge()
        got["append"] = c.append("INBOX", "(\\Seen $Label)", '"01-Jan-2020 10:00:00 +0000"',
                                  b"Subject: appended\r\n\r\nbody\r\n")
        got["noop"] = c.noop()
        got["exists"] = c.response("EXISTS")
        got["appended"] = c.fetch("*", "(FLAGS INTERNALDATE UID)")
        got["search"] = c.search(None, "ALL")
        got["uid expunge"] = c.store("1:2", "+FLAGS", "(\\Deleted)"), c.uid(
            "EXPUNGE", "1:2")
        got["close"] = c.close()
        got["archive"] = c.select("Archive")
        got["archive flags"] = c.fetch("1:*", "(UID FLAGS)")
        c.logout()
        return got

    got = await ns.defer_to_thread(work)
    assert got["store"][1] == [b"1 (FLAGS (\\Flagged \\Seen $Work))",
                               b"2 (FLAGS (\\Flagged \\Seen $Work))"]
    assert got["store silent"][1] == [None]
    assert got["store minus"][1] == [b"1 (FLAGS (\\Flagged $Work))"]
    assert got["store set"][1] == [b"2 (UID 2 FLAGS (\\Draft))"]
    assert got["copy"][0] == "OK" and re.match(rb"\[COPYUID \d+ 1:2 1:2\]", got["copy"][1][0])
    assert got["copy missing"][0] == "NO" and b"TRYCREATE" in got["copy missing"][1][0]
    assert got["uid copy"][0] == "OK"  # (imaplib's uid() drops the tagged text)
    assert got["move"][0] == "OK"
    assert got["move untagged"][0][1] == [b"4"]
    assert re.match(rb"\d+ 4 4\Z", got["move untagged"][1][1][-1])
    assert got["expunge"][1] == [b"1"]
    assert got["append"][0] == "OK"
    assert re.match(rb"\[APPENDUID \d+ 5\]", got["append"][1][0])
    assert got["exists"][1][-1] == b"3"
    appended = got["appended"][1][0]
    assert re.match(rb'3 \(FLAGS \(\\Seen \$Label \\Recent\) INTERNALDATE "(.*)" UID 5\)\Z',
                    appended), appended
    when = re.search(rb'INTERNALDATE "(.*)"', appended).group(1).decode()
    assert imaplib.Internaldate2tuple(b'INTERNALDATE "%s"' % when.encode())[:6] == (
        time.localtime(1577872800)[:6])
    assert got["search"][1] == [b"1 2 3"]
    assert got["uid expunge"][1][0] == "OK"
    assert got["close"][0] == "OK"
    assert got["archive"][1] == [b"4"]
    flags = got["archive flags"][1]
    assert flags[0] == b"1 (UID 1 FLAGS (\\Flagged $Work \\Recent))"
    assert flags[1] == b"2 (UID 2 FLAGS (\\Draft \\Recent))"  # after UID STORE FLAGS
    inbox = box.messages()
    assert [m.uid for m in inbox] == [5]  # 1 expunged, 2-3 by UID EXPUNGE, 4 moved


async def test_search(server: Any, box: Maildir) -> None:
    def work() -> dict[str, Any]:
        c = connect(server)
        c.select("INBOX")
        c.store("2", "+FLAGS", "(\\Flagged)")
        got: dict[str, Any] = {}
        queries = {
            "seen": ("SEEN",), "unseen": ("UNSEEN",), "flagged": ("FLAGGED",),
            "from": ("FROM", "bob"), "subject decoded": ("SUBJECT", "caf\u00e9"),
            "to": ("TO", "q@example"), "cc": ("CC", "undisclosed"),
            "header": ("HEADER", "Message-ID", "m1@"),
            "header any": ("HEADER", "In-Reply-To", '""'),
            "body": ("BODY", "notes"), "text": ("TEXT", "return-path"),
            "larger": ("LARGER", "1000"), "smaller": ("SMALLER", "200"),
            "or": ("OR", "FROM", "ann", "FROM", "digest"),
            "not": ("NOT", "SEEN"), "set": ("2:3",), "uid": ("UID", "3:*"),
            "and": ("SEEN", "NOT", "FLAGGED", "LARGER", "100"),
            "sentbefore": ("SENTBEFORE", "8-Feb-1994"), "senton": ("SENTON", "8-Feb-1994"),
            "sentsince": ("SENTSINCE", "9-Feb-1994"),
            "since": ("SINCE", "1-Jan-2001"), "before": ("BEFORE", "1-Jan-2000"),
            "keyword": ("KEYWORD", "$Work"), "recent": ("RECENT",), "new": ("NEW",),
            "old": ("OLD",), "all": ("ALL",),
        }
        for name, q in queries.items():
            charset = "UTF-8" if name == "subject decoded" else None
            if charset:
                c.literal = q[1].encode()
                got[name] = c.search(charset, q[0])
            else:
                got[name] = c.search(None, *q)
        got["uid search"] = c.uid("SEARCH", "FROM", "bob")
        got["bad charset"] = c.search("KOI8-Z", "ALL")
        c.logout()
        return got

    got = await ns.defer_to_thread(work)
    r = {k: v[1][0].decode() for k, v in got.items() if v[0] == "OK"}
    assert r["seen"] == "1 2 3" and r["unseen"] == "4" and r["flagged"] == "2"
    assert r["from"] == "2" and r["subject decoded"] == "2" and r["to"] == "3"
    assert r["cc"] == "2" and r["header"] == "1" and r["header any"] == "2"
    assert r["body"] == "1" and r["text"] == "1"
    assert r["larger"] == "2" and r["smaller"] == "3 4"
    assert r["or"] == "1 4" and r["not"] == "4" and r["set"] == "2 3" and r["uid"] == "3 4"
    assert r["and"] == "1 3"
    # 3 and 4 have no Date: 1 January 1970 stands in (as with Dovecot)
    assert r["sentbefore"] == "1 3 4" and r["senton"] == "2" and r["sentsince"] == ""
    assert r["since"] == "1 2 3 4" and r["before"] == ""  # internal dates are 2001-09-09
    assert r["keyword"] == "" and r["all"] == "1 2 3 4"
    # appended straight into cur before any session looked: none is \\Recent
    assert r["recent"] == "" and r["new"] == "" and r["old"] == "1 2 3 4"
    assert r["uid search"] == "2"
    assert got["bad charset"][0] == "NO" and b"BADCHARSET" in got["bad charset"][1][0]


async def test_starttls_and_logindisabled(tmp_path: Path, box: Maildir, certs: Any,
                                          reactor: Any) -> None:
    listener = serve(tmp_path, USERS, tls=server_tls(certs), require_tls=True)
    try:
        def work() -> dict[str, Any]:
            c = imaplib.IMAP4("127.0.0.1", listener.port, timeout=10)
            got: dict[str, Any] = {"before": c.capabilities}
            got["login in clear"] = _error(lambda: c.login("alice", "secret"))
            context = ssl.create_default_context(cadata=certs[2].decode())
            got["starttls"] = c.starttls(context)
            got["after"] = c.capabilities
            got["login"] = c.login("alice", "secret")
            got["select"] = c.select("INBOX")
            c.logout()
            return got

        got = await ns.defer_to_thread(work)
    finally:
        await listener.close()
    assert "LOGINDISABLED" in got["before"] and "STARTTLS" in got["before"]
    assert "AUTH=PLAIN" not in got["before"]
    assert "PRIVACYREQUIRED" in got["login in clear"]
    assert got["starttls"][0] == "OK"
    assert "STARTTLS" not in got["after"] and "LOGINDISABLED" not in got["after"]
    assert "AUTH=PLAIN" in got["after"]
    assert got["login"][0] == "OK" and got["select"][0] == "OK"


async def test_authenticate_plain_and_literals(server: Any) -> None:
    def work() -> dict[str, Any]:
        got: dict[str, Any] = {}
        c = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
        got["bad password"] = _error(
            lambda: c.authenticate("PLAIN", lambda _: b"\0alice\0wrong"))
        got["auth"] = c.authenticate("PLAIN", lambda _: b"\0alice\0secret")
        c.logout()
        c = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
        c.literal = b"secret"  # the password as a synchronising literal
        got["login literal"] = c._simple_command("LOGIN", "alice")
        c.state = "AUTH"
        c.literal = b"Subject: lit\r\n\r\nsent as a literal\r\n"
        got["append literal"] = c._simple_command("APPEND", "INBOX")
        c.logout()
        return got

    got = await ns.defer_to_thread(work)
    assert "AUTHENTICATIONFAILED" in got["bad password"]
    assert got["auth"][0] == "OK" and got["login literal"][0] == "OK"
    assert got["append literal"][0] == "OK"


async def test_sasl_ir_and_literal_plus_raw(server: Any) -> None:
    from imapd_helpers import RawIMAP

    raw = await RawIMAP.connect(server.port, login=False)
    lines = await raw.cmd(b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==")  # SASL-IR
    assert lines[-1].startswith(b"a OK [CAPABILITY IMAP4rev1")
    message = b"Subject: plus\r\n\r\nno wait\r\n"
    raw.send(b"b APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(message), message))
    lines = await raw.until(b"b")
    assert lines == [b"b OK [APPENDUID %s] APPEND completed"
                     % lines[0].split(b"APPENDUID ")[1].split(b"]")[0]]
    raw.close()


async def test_idle_sees_another_sessions_changes(server: Any, box: Maildir) -> None:
    watcher_ready = threading.Event()
    changes_made = threading.Event()

    def watcher() -> list[bytes]:
        c = connect(server)
        c.select("INBOX")
        tag = c._new_tag()
        c.send(tag + b" IDLE\r\n")
        assert c.readline().startswith(b"+")
        watcher_ready.set()
        seen: list[bytes] = []
        while len(seen) < 5:
            seen.append(c.readline().rstrip(b"\r\n"))
        changes_made.wait(10)
        c.send(b"DONE\r\n")
        while True:
            line = c.readline().rstrip(b"\r\n")
            if line.startswith(tag):
                seen.append(line)
                break
            seen.append(line)
        c.logout()
        return seen

    def changer() -> None:
        watcher_ready.wait(10)
        c = connect(server)
        c.select("INBOX")
        c.append("INBOX", None, None, b"Subject: new\r\n\r\nhi\r\n")
        c.store("2", "+FLAGS", "(\\Flagged)")
        c.store("1", "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        changes_made.set()

    watching = ns.defer_to_thread(watcher)
    await ns.defer_to_thread(changer)
    seen = await watching
    assert seen[0] == b"* 5 EXISTS" and seen[1] == b"* 1 RECENT"
    assert seen[2] == b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Seen))"
    assert seen[3] == b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Seen))"
    assert seen[4] == b"* 1 EXPUNGE"
    assert re.match(rb"\w+ OK IDLE terminated", seen[-1])
