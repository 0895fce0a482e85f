"""The IMAP writer: the form each string takes, commands cut at synchronising literals,
dates, sequence-set compression, modified UTF-7 (RFC 3501 5.1.3's example), and ENVELOPE
and BODYSTRUCTURE of messages built with Python's ``email`` package, checked against what
that package says of the same messages (types, parameters, sizes of each part's body,
addresses)."""

from __future__ import annotations

import email.policy
import email.utils
from datetime import UTC, date, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from protocols.mail.imap.values import (
    Address,
    Command,
    FetchItem,
    Multipart,
    SearchKey,
    Section,
    SequenceSet,
    SinglePart,
)
from protocols.mail.imap.writer import (
    MAX_MIME_DEPTH,
    MAX_QUOTED,
    astring,
    body_structure,
    compress,
    decode_mailbox,
    encode_mailbox,
    envelope,
    format_body_structure,
    format_command,
    format_date,
    format_datetime,
    format_envelope,
    format_fetch,
    nstring,
    parse_addresses,
    section_bytes,
    string,
)


@pytest.mark.parametrize(("value", "wire"), [
    ("INBOX", b"INBOX"),
    ("a]b", b"a]b"),  # ] is an ASTRING-CHAR
    ("two words", b'"two words"'),
    ("", b'""'),
    ("a[b", b'"a[b"'),  # written quoted on purpose (see writer._ASTRING)
    ('say "hi" \\o/', b'"say \\"hi\\" \\\\o/"'),
    ("%*(){", b'"%*(){"'),
    ("caf\u00e9", b"{5}\r\ncaf\xc3\xa9"),
    ("a\r\nb", b"{4}\r\na\r\nb"),
    ("x" * 2000, b"x" * 2000),  # an atom may be long
    ("x " * MAX_QUOTED, b"{%d}\r\n" % (2 * MAX_QUOTED) + b"x " * MAX_QUOTED),
])
def test_astring_picks_the_form(value: str, wire: bytes) -> None:
    assert astring(value) == wire


def test_string_and_nstring() -> None:
    assert string("INBOX") == b'"INBOX"'  # a string is never an atom
    assert nstring(None) == b"NIL" and nstring("NIL") == b'"NIL"'
    assert string(b"\x80") == b"{1}\r\n\x80"
    with pytest.raises(ValueError, match="NUL"):
        string("a\0b")


def test_commands_are_cut_after_each_synchronising_literal() -> None:
    cmd = Command("a1", "LOGIN", ("jos\u00e9", "p\r\nw"))
    assert format_command(cmd) == [b"a1 LOGIN {5}\r\n", b"jos\xc3\xa9 {4}\r\n", b"p\r\nw\r\n"]
    assert format_command(cmd, literal_plus=True) == [
        b"a1 LOGIN {5+}\r\njos\xc3\xa9 {4+}\r\np\r\nw\r\n"]
    # LITERAL-: small literals need no wait, those over 4096 octets do
    big = Command("a2", "APPEND", ("INBOX", (), None, b"x" * 4097))
    assert format_command(big, literal_minus=True) == [b"a2 APPEND INBOX {4097}\r\n",
                                                       b"x" * 4097 + b"\r\n"]
    assert format_command(cmd, literal_minus=True) == format_command(cmd, literal_plus=True)


def test_command_forms() -> None:
    s = SequenceSet.parse
    assert format_command(Command("t", "FETCH", (s("1:*"), (
        FetchItem("UID"), FetchItem("BODY", Section((1,), "HEADER.FIELDS", ("From", "X(Y)")),
                                    (0, 512), peek=True))), uid=True)) == [
        b't UID FETCH 1:* (UID BODY.PEEK[1.HEADER.FIELDS (From "X(Y)")]<0.512>)\r\n']
    assert format_command(Command("t", "SEARCH", (None, SearchKey("AND", (
        SearchKey("OR", (SearchKey("SEEN"), SearchKey("AND", (SearchKey("DRAFT"),
                                                               SearchKey("DELETED"))))),
        SearchKey("SINCE", (date(1994, 2, 1),))))))) == [
        b"t SEARCH OR SEEN (DRAFT DELETED) SINCE 1-Feb-1994\r\n"]
    assert format_command(Command("t", "STORE", (s("2:4"), "-", True, ("\\Seen",))))[0] == \
        b"t STORE 2:4 -FLAGS.SILENT (\\Seen)\r\n"
    assert format_command(Command("t", "LIST", ("", "Entw\u00fcrfe/%")))[0] == \
        b"t LIST \"\" Entw&APw-rfe/%\r\n"
    with pytest.raises(ValueError):
        format_command(Command("t", "NOOP", ("extra",)))


def test_dates() -> None:
    when = datetime(1996, 7, 7, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7)))
    assert format_datetime(when) == "07-Jul-1996 02:44:25 -0700"
    assert format_datetime(datetime(2024, 12, 31, 23, 59, 59)) == "31-Dec-2024 23:59:59 +0000"
    assert format_datetime(when.replace(tzinfo=timezone(timedelta(hours=5, minutes=45)))) \
        .endswith(" +0545")
    assert format_date(date(1994, 2, 1)) == "1-Feb-1994"


def test_compress() -> None:
    assert compress([8, 1, 2, 3, 5, 7, 3]) == "1:3,5,7:8"
    assert compress([42]) == "42"
    with pytest.raises(ValueError):
        compress([])


def test_modified_utf7_the_rfc_example_and_bad_names() -> None:
    assert encode_mailbox("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e") == \
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert decode_mailbox("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == \
        "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"
    assert encode_mailbox("Tom & Jerry") == "Tom &- Jerry"
    for bad in ("&Jjo", "&AGE-", "a\x01b", "&U,BTF-", "&2DQ-"):
        with pytest.raises(ValueError):
            decode_mailbox(bad)


# ---- envelopes and body structures of email messages


def mixed_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Example <ann@example.org>"
    msg["To"] = "bob@example.net, Carol <carol@example.com>"
    msg["Cc"] = "Team: dan@example.org, eve@example.org;"
    msg["Subject"] = "Report \u00e9t\u00e9"  # written as an RFC 2047 encoded word
    msg["Date"] = email.utils.format_datetime(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    msg["Message-ID"] = "<r1@example.org>"
    msg.set_content("Plain text\nwith two lines\n")
    msg.add_alternative("<p>html</p>\n", subtype="html")
    msg.add_attachment(b"%PDF-1.4 \x00\x01 binary", maintype="application", subtype="pdf",
                       filename="r.pdf")
    inner = EmailMessage()
    inner["From"] = "x@example.org"
    inner["Subject"] = "forwarded"
    inner.set_content("inner body\n")
    msg.add_attachment(inner)
    return msg


def _leaves(bs: object) -> list[SinglePart]:
    if isinstance(bs, Multipart):
        return [leaf for p in bs.parts for leaf in _leaves(p)]
    assert isinstance(bs, SinglePart)
    return [bs]


def test_body_structure_agrees_with_the_email_package() -> None:
    msg = mixed_message()
    raw = msg.as_bytes(policy=email.policy.SMTP)
    bs = body_structure(raw)
    assert body_structure(msg) == bs  # the message itself, or its bytes: the same
    parsed = email.message_from_bytes(raw, policy=email.policy.SMTP)
    # the tree: multipart/mixed of (alternative of (plain, html), pdf, message/rfc822)
    assert isinstance(bs, Multipart) and bs.subtype == "mixed"
    assert dict(bs.params)["boundary"] == parsed.get_boundary()
    parts = [p for p in parsed.walk() if not p.is_multipart()
             and p.get_content_type() != "message/rfc822"]
    leaves = [leaf for leaf in _leaves(bs) if leaf.type != "message"]
    assert [f"{leaf.type}/{leaf.subtype}" for leaf in leaves] == \
        [p.get_content_type() for p in parts][: len(leaves)]
    for leaf, part in zip(leaves, parts, strict=False):
        payload = part.get_payload(decode=False).encode("ascii").replace(b"\r\n", b"\n")
        payload = payload.replace(b"\n", b"\r\n")
        # (the CRLF before the next boundary belongs to the boundary, for both)
        assert leaf.size == len(payload)
        assert leaf.encoding.lower() == part.get("Content-Transfer-Encoding", "7bit").lower()
        if leaf.type == "text":
            assert dict(leaf.params)["charset"] == part.get_content_charset()
            assert leaf.lines == payload.count(b"\n")
    pdf = next(leaf for leaf in leaves if leaf.subtype == "pdf")
    assert pdf.disposition == ("attachment", (("filename", "r.pdf"),))
    assert pdf.encoding == "base64"
    # the message/rfc822 part: its envelope and body are the inner message's
    rfc822 = next(leaf for leaf in _leaves(bs) if leaf.type == "message")
    assert rfc822.envelope is not None and rfc822.envelope.subject == "forwarded"
    assert isinstance(rfc822.body, SinglePart) and rfc822.body.subtype == "plain"
    assert rfc822.body.size == len(b"inner body\r\n")


def test_envelope_agrees_with_the_email_package() -> None:
    msg = mixed_message()
    raw = msg.as_bytes(policy=email.policy.SMTP)
    env = envelope(raw)
    assert env.date == msg["Date"] and env.message_id == "<r1@example.org>"
    # the subject as the message has it: an encoded word, not decoded
    assert env.subject is not None and "=?utf-8?" in env.subject
    assert str(email.header.make_header(email.header.decode_header(env.subject))) == \
        "Report \u00e9t\u00e9"
    assert env.from_ == env.sender == env.reply_to  # default to From (RFC 3501 7.4.2)
    for field, addresses in (("To", env.to), ("From", env.from_)):
        expected = email.utils.getaddresses([msg[field]])
        assert addresses is not None
        assert [(a.name or "", a.email) for a in addresses] == expected
    # a group: its start (name as mailbox, no host) and end (all NIL) around its members
    assert env.cc == (Address(None, None, "Team", None),
                      Address(None, None, "dan", "example.org"),
                      Address(None, None, "eve", "example.org"),
                      Address(None, None, None, None))
    assert env.bcc is None and env.in_reply_to is None


@pytest.mark.parametrize(("value", "expected"), [
    ('"Joe Q. Public" <john.q.public@example.com>',
     [("Joe Q. Public", None, "john.q.public", "example.com")]),
    ("Joe Q. Public <john@example.com>", [("Joe Q. Public", None, "john", "example.com")]),
    ("john@example.com (John Doe)", [("John Doe", None, "john", "example.com")]),
    ("<@route.example:user@example.com>", [(None, "@route.example", "user", "example.com")]),
    ("undisclosed-recipients:;", [(None, None, "undisclosed-recipients", None),
                                  (None, None, None, None)]),
    ('=?utf-8?q?J=C3=B6rg?= <j@example.de>, "a, b" <ab@x.test>',
     [("=?utf-8?q?J=C3=B6rg?=", None, "j", "example.de"), ("a, b", None, "ab", "x.test")]),
    ("root", [(None, None, "root", "MISSING_DOMAIN")]),
])
def test_addresses(value: str, expected: list[tuple[str | None, ...]]) -> None:
    assert parse_addresses(value) == tuple(Address(*e) for e in expected)


def test_rendering_the_rfc_example_bodystructure() -> None:
    bs = Multipart((
        SinglePart("TEXT", "PLAIN", (("CHARSET", "US-ASCII"),), encoding="7BIT", size=1152,
                   lines=23),
        SinglePart("TEXT", "PLAIN", (("CHARSET", "US-ASCII"), ("NAME", "cc.diff")),
                   "<960723163407.20117h@cac.washington.edu>", "Compiler diff", "BASE64",
                   4554, 73)), "MIXED")
    assert format_body_structure(bs, extended=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)("TEXT" "PLAIN" '
        b'("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>"'
        b' "Compiler diff" "BASE64" 4554 73) "MIXED")')
    assert format_body_structure(bs).endswith(b'"MIXED" NIL NIL NIL NIL)')
    env = envelope(b"From: a@b.c\r\n\r\n")
    assert format_envelope(env) == (b'(NIL NIL ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) '
                                    b'((NIL NIL "a" "b.c")) NIL NIL NIL NIL NIL)')



def _leaf_paths(part: object, path: tuple[int, ...]) -> list[tuple[tuple[int, ...], object]]:
    """(section path, structure) of each non-multipart part at or under ``path``."""
    if isinstance(part, Multipart):
        return [x for i, p in enumerate(part.parts, 1) for x in _leaf_paths(p, (*path, i))]
    assert isinstance(part, SinglePart)
    if part.body is not None:  # message/rfc822: then its message's parts
        return [(path, part), *_message_paths(part.body, path)]
    return [(path, part)]


def _message_paths(bs: object, path: tuple[int, ...]) -> list[tuple[tuple[int, ...], object]]:
    # a message that is not multipart is its own part 1
    return _leaf_paths(bs, path) if isinstance(bs, Multipart) else _leaf_paths(bs, (*path, 1))


@pytest.mark.parametrize("name", ["mixed", "seeded-2", "seeded-4"])
def test_every_part_size_is_the_length_of_its_section(name: str) -> None:
    from imap_dovecot import DIGEST, MULTIPART

    raw = {"mixed": mixed_message().as_bytes(policy=email.policy.SMTP),
           "seeded-2": MULTIPART, "seeded-4": DIGEST}[name]
    paths = _message_paths(body_structure(raw), ())
    assert len(paths) >= 2
    for path, part in paths:
        assert isinstance(part, SinglePart)
        assert len(section_bytes(raw, Section(path))) == part.size, path
    assert section_bytes(raw, Section((99,))) == b""


def test_a_message_nested_thousands_deep_does_not_exhaust_recursion() -> None:
    depth = 3000
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(depth))
    raw = b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nx\r\n"
    bs = body_structure(raw)
    levels = 0
    while isinstance(bs, Multipart):
        bs = bs.parts[0]
        levels += 1
    assert levels == MAX_MIME_DEPTH  # deeper than that: one opaque part
    assert isinstance(bs, SinglePart) and bs.subtype.lower() == "mixed"


def test_the_deepest_structure_written_reads_back() -> None:
    from protocols.mail.imap.parser import ResponseReader

    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(MAX_MIME_DEPTH + 5))
    raw = b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nx\r\n"
    bs = body_structure(raw)
    (response,) = ResponseReader().feed(format_fetch(1, [("BODYSTRUCTURE", bs)]))
    assert response.data["BODYSTRUCTURE"] == bs  # type: ignore[union-attr]


@pytest.mark.timeout(10, method="thread")
@pytest.mark.parametrize("value", ["g: x: a@b", "g: :", "g: a@b, h: c@d;;", ": : :"])
def test_a_group_in_a_group_ends_and_keeps_the_addresses(value: str) -> None:
    # RFC 5322 has no groups in groups; a header that tries one once sent the scan round
    # forever (found by the IMAP server's fuzzing)
    got = parse_addresses(value) or ()
    hosts = [a.host for a in got if a.host is not None]
    assert [h for h in hosts if h in ("b", "d")] == [h for h in ("b", "d") if f"@{h}" in value]
