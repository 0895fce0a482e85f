"""The IMAP parser on RFC 3501's own examples (section 6's commands, section 7's and 8's
responses) and on the edges of its formal syntax (section 9): tags, case, quoted strings
and their escapes, literals synchronising and not (RFC 7888), sequence sets, dates,
search keys nested with AND/OR/NOT, sections and partials, and the limits: each bad
command answered with the error the server sends (BAD with its tag, NO [TOOBIG], BYE)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from protocols.mail.imap.parser import (
    MAX_NESTING,
    CommandReader,
    ResponseReader,
    parse_datetime,
)
from protocols.mail.imap.values import (
    Address,
    BadCharset,
    Command,
    Continuation,
    ContinuationRequest,
    Envelope,
    FetchItem,
    IMAPSyntaxError,
    LineTooLong,
    ListEntry,
    LiteralTooBig,
    Multipart,
    Response,
    ResponseCode,
    SearchKey,
    Section,
    SequenceSet,
    SinglePart,
)


def commands(data: bytes, **limits: int) -> list[object]:
    return CommandReader(**limits).feed(data)


def one(line: bytes) -> Command:
    (cmd,) = [e for e in commands(line + b"\r\n") if not isinstance(e, ContinuationRequest)]
    assert isinstance(cmd, Command), cmd
    return cmd


S = SequenceSet.parse


# ---- section 6's examples


@pytest.mark.parametrize(("line", "name", "args"), [
    (b"a001 login SMITH SESAME", "LOGIN", ("SMITH", "SESAME")),
    (b"A142 SELECT INBOX", "SELECT", ("INBOX",)),
    (b"A932 EXAMINE blurdybloop", "EXAMINE", ("blurdybloop",)),
    (b"A003 CREATE owatagusiam/", "CREATE", ("owatagusiam/",)),
    (b"A683 RENAME blurdybloop sarasoop", "RENAME", ("blurdybloop", "sarasoop")),
    (b"A002 SUBSCRIBE #news.comp.mail.mime", "SUBSCRIBE", ("#news.comp.mail.mime",)),
    (b'A101 LIST "" ""', "LIST", ("", "")),
    (b'A102 LIST #news.comp.mail.misc ""', "LIST", ("#news.comp.mail.misc", "")),
    (b"A202 LIST ~/Mail/ %", "LIST", ("~/Mail/", "%")),
    (b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)", "STATUS",
     ("blurdybloop", ("UIDNEXT", "MESSAGES"))),
    (b"A003 STORE 2:4 +FLAGS (\\Deleted)", "STORE", (S("2:4"), "+", False, ("\\Deleted",))),
    (b"A003 COPY 2:4 MEETING", "COPY", (S("2:4"), "MEETING")),
    (b"a001 CAPABILITY", "CAPABILITY", ()),
    (b"A023 LOGOUT", "LOGOUT", ()),
    (b"A001 AUTHENTICATE GSSAPI", "AUTHENTICATE", ("GSSAPI", None)),
    (b"A202 EXPUNGE", "EXPUNGE", ()),
    (b"a1 ID NIL", "ID", (None,)),
    (b"t1 ENABLE CONDSTORE utf8=accept", "ENABLE", (("CONDSTORE", "UTF8=ACCEPT"),)),
])
def test_rfc3501_command_examples(line: bytes, name: str, args: tuple[object, ...]) -> None:
    cmd = one(line)
    assert (cmd.tag, cmd.name, cmd.args, cmd.uid) == (line.split()[0].decode(), name, args,
                                                      False)


def test_search_example_with_flags_dates_and_not() -> None:
    cmd = one(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')
    assert cmd.args == (None, SearchKey("AND", (
        SearchKey("FLAGGED"), SearchKey("SINCE", (date(1994, 2, 1),)),
        SearchKey("NOT", (SearchKey("FROM", ("Smith",)),)))))


def test_search_with_a_charset_and_a_literal() -> None:
    events = commands("A284 SEARCH CHARSET UTF-8 TEXT {5}\r\nkäse\r\n".encode())
    assert events[0] == ContinuationRequest("A284", 5)
    assert events[1] == Command("A284", "SEARCH", ("UTF-8", SearchKey("TEXT", ("käse",))))


def test_fetch_example_with_header_fields() -> None:
    cmd = one(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])")
    assert cmd.args == (S("2:4"), (
        FetchItem("FLAGS"), FetchItem("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM")))))


def test_uid_fetch_example() -> None:
    cmd = one(b"A999 UID FETCH 4827313:4828442 FLAGS")
    assert (cmd.name, cmd.uid, cmd.args) == ("FETCH", True, (S("4827313:4828442"),
                                                              (FetchItem("FLAGS"),)))


def test_append_example_with_its_literal() -> None:
    message = (b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar "
               b"<foobar@Blurdybloop.COM>\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n")
    events = commands(b"A003 APPEND saved-messages (\\Seen) {%d}\r\n%s\r\n"
                      % (len(message), message))
    assert events == [ContinuationRequest("A003", len(message)),
                      Command("A003", "APPEND", ("saved-messages", ("\\Seen",), None, message))]


# ---- section 9's edges


def test_names_and_keywords_in_any_case() -> None:
    cmd = one(b"a1 uid fetch 1:* (flags body.peek[header.fields (subject)]<0.10>)")
    assert cmd == Command("a1", "FETCH", (S("1:*"), (
        FetchItem("FLAGS"),
        FetchItem("BODY", Section((), "HEADER.FIELDS", ("subject",)), (0, 10), peek=True))),
        uid=True)
    assert one(b"a2 select inbox").args == ("INBOX",)
    assert one(b"a3 store 1 flags.silent (\\SEEN)").args == (S("1"), "", True, ("\\Seen",))


def test_fetch_macros_expand() -> None:
    names = {m: [i.name for i in one(b"a FETCH 1 " + m.encode()).args[1]]
             for m in ("ALL", "FAST", "FULL")}
    assert names == {
        "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
        "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
        "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
    }


def test_sections_with_parts_mime_and_not() -> None:
    (item,) = one(b'a FETCH 1 BODY[1.2.3.HEADER.FIELDS.NOT (X-A "X(B)")]<10.20>').args[1]
    assert item == FetchItem("BODY", Section((1, 2, 3), "HEADER.FIELDS.NOT", ("X-A", "X(B)")),
                             (10, 20))
    assert item.response_name == 'BODY[1.2.3.HEADER.FIELDS.NOT (X-A "X(B)")]<10>'
    (mime,) = one(b"a FETCH 1 BODY.PEEK[4.MIME]").args[1]
    assert (mime.section, mime.peek) == (Section((4,), "MIME"), True)


def test_quoted_strings_and_their_escapes() -> None:
    assert one(b'a LOGIN "a \\"quoted\\" \\\\ name" ""').args == ('a "quoted" \\ name', "")


@pytest.mark.parametrize("line", [
    b'a LOGIN "bad \\escape" x',  # only \" and \\ may be escaped
    b'a LOGIN "never closed x',
    b"a LOGIN onlyone",
    b"a LOGIN a b c",
    b"a  NOOP",  # two spaces
    b"a NOOP ",  # a space at the end
    b"a FETCH 0 FLAGS",  # there is no message 0
    b"a FETCH 1, FLAGS",
    b"a FETCH 4294967296 FLAGS",  # numbers are 32-bit
    b"a FETCH 1 (FLAGS",
    b"a FETCH 1 BODY[0]",
    b"a FETCH 1 BODY[]<0.0>",  # a partial's length is non-zero
    b"a FETCH 1 BODY[MIME]",  # MIME needs a part
    b"a FETCH 1 NOTANITEM",
    b'a FETCH 1 BODY[HEADER.FIELDS ("Sub ject")]',  # field names are printable ASCII
    b"a FETCH 1 BODY[HEADER.FIELDS ({2+}\r\n\xc3\xa9)]",
    b"a UID LOGIN x y",
    b"a BOGUS",
    b"a SEARCH SINCE 31-Feb-2020",
    b"a SEARCH SINCE 1-Foo-2020",
    b"a SEARCH NOTAKEY",
    b"a SEARCH (ALL",
    b"a STATUS x (MESSAGES BOGUS)",
    b"a STORE 1 XFLAGS (\\Seen)",
    b"a STORE 1 +FLAGS (\\*)",  # \* only in PERMANENTFLAGS
    b'a ID ("k" NILX)',
    b"a SELECT &Jjo",  # modified UTF-7 never closed
    b"a SELECT &AGE-",  # 'a' encoded: printable ASCII stands for itself
    b'a APPEND x "40-Jul-1996 02:44:25 -0700" {1+}\r\nx',
    b"a APPEND x (\\Seen) notaliteral",
])
def test_bad_commands_are_bad_with_their_tag(line: bytes) -> None:
    events = commands(line + b"\r\nb NOOP\r\n")
    assert isinstance(events[0], IMAPSyntaxError), events
    assert events[0].response().startswith(b"a BAD ")
    assert events[-1] == Command("b", "NOOP")  # the reader went on to the next command


def test_a_line_without_a_tag_is_an_untagged_bad() -> None:
    for line in (b"+a NOOP", b"NOOP", b"a+ NOOP", b"(x) NOOP"):
        (error, after) = commands(line + b"\r\nb NOOP\r\n")
        assert isinstance(error, IMAPSyntaxError)
        assert error.tag is None and error.response().startswith(b"* BAD ")
        assert after == Command("b", "NOOP")


def test_tags_may_hold_a_bracket() -> None:
    assert one(b"a]1 NOOP").tag == "a]1"


def test_search_keys_nest_with_or_not_and_parentheses() -> None:
    cmd = one(b"a SEARCH OR (SEEN UNDRAFT) NOT (OR 1:3,7 UID 9:*) HEADER X-Y \"\" "
              b"LARGER 10 KEYWORD $Junk")
    assert cmd.args[1] == SearchKey("AND", (
        SearchKey("OR", (SearchKey("AND", (SearchKey("SEEN"), SearchKey("UNDRAFT"))),
                         SearchKey("NOT", (SearchKey("OR", (
                             SearchKey("SET", (S("1:3,7"),)),
                             SearchKey("UID", (S("9:*"),)))),)))),
        SearchKey("HEADER", ("X-Y", "")), SearchKey("LARGER", (10,)),
        SearchKey("KEYWORD", ("$Junk",))))
    # one key in parentheses is that key
    assert one(b"a SEARCH (SEEN)").args[1] == SearchKey("SEEN")
    # a date may be quoted
    assert one(b'a SEARCH ON "7-Jul-1996"').args[1] == SearchKey("ON", (date(1996, 7, 7),))


def test_search_keys_nesting_too_deep_is_bad() -> None:
    deep = b"a SEARCH " + b"NOT " * (MAX_NESTING + 2) + b"ALL\r\n"
    (error,) = commands(deep)
    assert isinstance(error, IMAPSyntaxError) and error.tag == "a"
    shallow = b"a SEARCH " + b"NOT " * (MAX_NESTING // 2) + b"ALL"
    assert one(shallow).name == "SEARCH"


def test_an_unknown_charset_is_no_badcharset() -> None:
    (error,) = commands(b"a SEARCH CHARSET X-NOPE TEXT x\r\n")
    assert isinstance(error, BadCharset)
    assert error.response() == b"a NO [BADCHARSET (US-ASCII UTF-8)] unknown charset X-NOPE\r\n"
    # 8-bit text with no charset is not US-ASCII
    (error,) = commands(b"a SEARCH TEXT {2+}\r\n\xc3\xa9\r\n")
    assert isinstance(error, IMAPSyntaxError)


def test_date_time_with_a_space_before_a_one_digit_day() -> None:
    when = parse_datetime(b" 7-Jul-1996 02:44:25 -0700")
    assert when == datetime(1996, 7, 7, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7)))
    cmd = one(b'a APPEND x " 7-Jul-1996 02:44:25 +0130" {0+}\r\n')
    assert cmd.args[2].utcoffset() == timedelta(hours=1, minutes=30)
    with pytest.raises(ValueError):
        parse_datetime(b"7-Jul-1996 02:44:25 -0700")  # date-day-fixed: two characters


def test_mailbox_names_decode_from_modified_utf7_and_inbox_in_any_case() -> None:
    assert one(b"a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-").args == ("~peter/mail/台北/日本語",)
    assert one(b'a CREATE "InBoX"').args == ("INBOX",)
    assert one(b"a CREATE inbox/sub").args == ("inbox/sub",)  # only INBOX itself


# ---- literals


def test_a_synchronising_literal_asks_for_a_continuation_once() -> None:
    reader = CommandReader()
    reader.receive(b"a LOGIN {5}\r\n")
    assert reader.next_event() == ContinuationRequest("a", 5)
    assert reader.next_event() is None
    reader.receive(b"al")
    assert reader.next_event() is None
    reader.receive(b"ice {2}\r\n")
    assert reader.next_event() == ContinuationRequest("a", 2)
    reader.receive(b"pw\r\n")
    assert reader.next_event() == Command("a", "LOGIN", ("alice", "pw"))


def test_literal_plus_needs_no_continuation_and_literals_hold_anything() -> None:
    data = b"{3}\r\n\r\n)(\"\\\x80\xff"
    events = commands(b"a LOGIN {%d+}\r\n%s {0+}\r\n\r\n" % (len(data), data))
    assert events == [Command("a", "LOGIN", (data.decode("utf-8", "surrogateescape"), ""))]


def test_a_synchronising_literal_too_big_is_refused_and_the_next_command_read() -> None:
    events = commands(b"a APPEND x {1001}\r\nb NOOP\r\n", max_literal=1000)
    assert isinstance(events[0], LiteralTooBig) and not events[0].fatal
    assert events[0].response().startswith(b"a NO [TOOBIG] ")
    assert events[1] == Command("b", "NOOP")


def test_a_non_synchronising_literal_too_big_ends_the_connection() -> None:
    reader = CommandReader(max_literal=1000)
    events = reader.feed(b"a APPEND x {1001+}\r\n" + b"x" * 1001 + b"\r\nb NOOP\r\n")
    assert len(events) == 1 and isinstance(events[0], LiteralTooBig) and events[0].fatal
    assert events[0].response().startswith(b"* BYE [TOOBIG] ")
    assert reader.feed(b"c NOOP\r\n") == [events[0]]  # it stays failed


def test_a_line_too_long_ends_the_connection_even_before_its_end_comes() -> None:
    reader = CommandReader(max_line=100)
    (error,) = reader.feed(b"a LOGIN " + b"x" * 200)
    assert isinstance(error, LineTooLong) and error.fatal
    assert error.response().startswith(b"* BYE ")
    # a long command made of literals is fine: literals do not count
    assert commands(b"a LOGIN {150+}\r\n" + b"x" * 150 + b" y\r\n", max_line=100)[0].name \
        == "LOGIN"


def test_reject_literal_drops_the_command() -> None:
    reader = CommandReader()
    reader.receive(b"a APPEND nosuch {5}\r\n")
    assert isinstance(reader.next_event(), ContinuationRequest)
    reader.reject_literal()  # the server said "a NO [TRYCREATE]": the client sends no more
    reader.receive(b"b NOOP\r\n")
    assert reader.next_event() == Command("b", "NOOP")


def test_next_line_reads_idle_done_and_the_commands_after() -> None:
    reader = CommandReader()
    reader.receive(b"a IDLE\r\nDON")
    assert reader.next_event() == Command("a", "IDLE")
    assert reader.next_line() is None
    reader.receive(b"E\r\nb NOOP\r\n")
    assert reader.next_line() == b"DONE"
    assert reader.next_event() == Command("b", "NOOP")


def test_bare_lf_ends_a_line_too() -> None:
    assert commands(b"a NOOP\nb NOOP\r\n") == [Command("a", "NOOP"), Command("b", "NOOP")]


# ---- responses: RFC 3501 7.4.2 and section 8's session


RFC_SESSION = (
    b"* OK IMAP4rev1 Service Ready\r\n"
    b"a001 OK LOGIN completed\r\n"
    b"* 18 EXISTS\r\n"
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    b"* 2 RECENT\r\n"
    b"* OK [UNSEEN 17] Message 17 is the first unseen message\r\n"
    b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    b"a002 OK [READ-WRITE] SELECT completed\r\n"
    b"* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
    b"RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" "
    b"\"IMAP4rev1 WG mtg summary and minutes\" "
    b"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
    b"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
    b"((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
    b"((NIL NIL \"imap\" \"cac.washington.edu\")) "
    b"((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")"
    b"(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
    b"\"<B27397-0100000@cac.washington.edu>\") "
    b"BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92))\r\n"
    b"a003 OK FETCH completed\r\n"
    b"* 12 FETCH (BODY[HEADER] {26}\r\nDate: Wed, 17 Jul 1996\r\n\r\n)\r\n"
    b"a004 OK FETCH completed\r\n"
    b"* 12 FETCH (FLAGS (\\Seen \\Deleted))\r\n"
    b"a005 OK +FLAGS completed\r\n"
    b"* BYE IMAP4rev1 server logging out\r\n"
    b"a006 OK LOGOUT completed\r\n"
)


def test_the_rfc3501_sample_session_in_pieces_of_every_size() -> None:
    whole = ResponseReader().feed(RFC_SESSION)
    assert [(r.tag, r.kind, r.number) for r in whole] == [  # type: ignore[union-attr]
        ("*", "OK", None), ("a001", "OK", None), ("*", "EXISTS", 18), ("*", "FLAGS", None),
        ("*", "RECENT", 2), ("*", "OK", None), ("*", "OK", None), ("a002", "OK", None),
        ("*", "FETCH", 12), ("a003", "OK", None), ("*", "FETCH", 12), ("a004", "OK", None),
        ("*", "FETCH", 12), ("a005", "OK", None), ("*", "BYE", None), ("a006", "OK", None)]
    assert whole[5].code == ResponseCode("UNSEEN", 17)  # type: ignore[union-attr]
    assert whole[6].code == ResponseCode("UIDVALIDITY", 3857529045)  # type: ignore[union-attr]
    assert whole[7].code == ResponseCode("READ-WRITE")  # type: ignore[union-attr]
    fetched = whole[8].data  # type: ignore[union-attr]
    assert fetched["FLAGS"] == ("\\Seen",)
    assert fetched["INTERNALDATE"] == datetime(1996, 7, 17, 2, 44, 25,
                                               tzinfo=timezone(-timedelta(hours=7)))
    assert fetched["ENVELOPE"] == Envelope(
        "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)", "IMAP4rev1 WG mtg summary and minutes",
        (Address("Terry Gray", None, "gray", "cac.washington.edu"),),
        (Address("Terry Gray", None, "gray", "cac.washington.edu"),),
        (Address("Terry Gray", None, "gray", "cac.washington.edu"),),
        (Address(None, None, "imap", "cac.washington.edu"),),
        (Address(None, None, "minutes", "CNRI.Reston.VA.US"),
         Address("John Klensin", None, "KLENSIN", "MIT.EDU")),
        None, None, "<B27397-0100000@cac.washington.edu>")
    assert fetched["BODY"] == SinglePart("TEXT", "PLAIN", (("CHARSET", "US-ASCII"),),
                                         encoding="7BIT", size=3028, lines=92, extended=False)
    assert whole[10].data == {  # type: ignore[union-attr]
        "BODY[HEADER]": b"Date: Wed, 17 Jul 1996\r\n\r\n"}
    for size in (1, 2, 3, 7, 50):
        reader = ResponseReader()
        got = []
        for k in range(0, len(RFC_SESSION), size):
            got += reader.feed(RFC_SESSION[k : k + size])
        assert got == whole


def test_the_rfc3501_bodystructure_example() -> None:
    line = (b'* 3 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL '
            b'"7BIT" 1152 23)("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
            b'"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) '
            b'"MIXED"))\r\n')
    (r,) = ResponseReader().feed(line)
    assert r.data["BODYSTRUCTURE"] == Multipart(  # type: ignore[union-attr]
        (SinglePart("TEXT", "PLAIN", (("CHARSET", "US-ASCII"),), encoding="7BIT", size=1152,
                    lines=23, extended=False),
         SinglePart("TEXT", "PLAIN", (("CHARSET", "US-ASCII"), ("NAME", "cc.diff")),
                    "<960723163407.20117h@cac.washington.edu>", "Compiler diff", "BASE64",
                    4554, 73, extended=False)),
        "MIXED", extended=False)


@pytest.mark.parametrize(("line", "kind", "data"), [
    (b'* LIST (\\Noselect) "/" ~/Mail/foo', "LIST", ListEntry(("\\Noselect",), "/", "~/Mail/foo")),
    (b'* LSUB () "." #news.comp.mail.misc', "LSUB", ListEntry((), ".", "#news.comp.mail.misc")),
    (b"* LIST (\\HasNoChildren) NIL {4}\r\na\"b)", "LIST",
     ListEntry(("\\HasNoChildren",), None, 'a"b)')),
    (b'* LIST () "/" "&ZeVnLIqe-"', "LIST", ListEntry((), "/", "日本語")),
    (b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)", "STATUS",
     ("blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292})),
    (b"* SEARCH 2 3 6", "SEARCH", [2, 3, 6]),
    (b"* SEARCH", "SEARCH", []),
    (b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED", "CAPABILITY",
     ("IMAP4REV1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED")),
    (b'* NAMESPACE (("" "/")) (("~" "/")) (("#shared/" "/")("#news." "."))', "NAMESPACE",
     ([("", "/")], [("~", "/")], [("#shared/", "/"), ("#news.", ".")])),
    (b'* ID ("name" "Cyrus" "version" "1.5" "os" NIL)', "ID",
     {"name": "Cyrus", "version": "1.5", "os": None}),
    (b"* ID NIL", "ID", None),
    (b"* ENABLED CONDSTORE", "ENABLED", ("CONDSTORE",)),
])
def test_untagged_data(line: bytes, kind: str, data: object) -> None:
    (r,) = ResponseReader().feed(line + b"\r\n")
    assert isinstance(r, Response)
    assert (r.tag, r.kind, r.data) == ("*", kind, data)


@pytest.mark.parametrize(("line", "code"), [
    (b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited",
     ResponseCode("PERMANENTFLAGS", ("\\Deleted", "\\Seen", "\\*"))),
    (b"* OK [UIDNEXT 4392] Predicted next UID", ResponseCode("UIDNEXT", 4392)),
    (b"A003 OK [APPENDUID 38505 3955] APPEND completed",
     ResponseCode("APPENDUID", (38505, S("3955")))),
    (b"A004 OK [COPYUID 38505 304,319:320 3956:3958] Done",
     ResponseCode("COPYUID", (38505, S("304,319:320"), S("3956:3958")))),
    (b"A005 NO [TRYCREATE] Mailbox doesn't exist", ResponseCode("TRYCREATE")),
    (b"* OK [ALERT] System shutdown in 10 minutes", ResponseCode("ALERT")),
    (b"a OK [CAPABILITY IMAP4rev1 IDLE] Logged in", ResponseCode("CAPABILITY",
                                                                 ("IMAP4REV1", "IDLE"))),
    (b"a NO [BADCHARSET (UTF-8 KOI8-R)] no", ResponseCode("BADCHARSET", ("UTF-8", "KOI8-R"))),
    (b"a NO [X-SOMETHING some words] no", ResponseCode("X-SOMETHING", "some words")),
])
def test_response_codes(line: bytes, code: ResponseCode) -> None:
    (r,) = ResponseReader().feed(line + b"\r\n")
    assert isinstance(r, Response) and r.code == code


def test_continuations_preauth_bye_and_expunge() -> None:
    got = ResponseReader().feed(b"+ Ready for additional command text\r\n+\r\n"
                                b"* PREAUTH IMAP4rev1 server logged in as Smith\r\n"
                                b"* 44 EXPUNGE\r\n* NO Disk is 98% full\r\n"
                                b"* BYE Autologout; idle for too long\r\n")
    assert got[:2] == [Continuation("Ready for additional command text"), Continuation("")]
    assert [(r.kind, r.number, r.text) for r in got[2:]] == [  # type: ignore[union-attr]
        ("PREAUTH", None, "IMAP4rev1 server logged in as Smith"), ("EXPUNGE", 44, ""),
        ("NO", None, "Disk is 98% full"), ("BYE", None, "Autologout; idle for too long")]


ENV = (b'("d" "s" (("N \\"Q\\" \\\\ x" NIL "m" "h")) NIL NIL ((NIL NIL "g" NIL)(NIL NIL NIL NIL)) '
       b'NIL NIL NIL "<id>")')


@pytest.mark.parametrize("line", [
    b"* 1 FETCH (ENVELOPE " + ENV + b")",  # escapes in an address: field by field
    b"* 1 FETCH (FLAGS (\\Seen) ENVELOPE " + ENV.replace(b'"s"', b"nil") + b" UID 3)",
    # a decoy inside a quoted string before the real one
    b'* 1 FETCH (BODY[] "x ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) y" ENVELOPE '
    + ENV + b")",
    b'* 1 FETCH (BODY[] "\\" ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)" ENVELOPE '
    + ENV + b")",
])
def test_envelopes_read_the_same_whichever_way(line: bytes) -> None:
    from protocols.mail.imap.parser import _fetch_data, _generic

    (r,) = ResponseReader().feed(line + b"\r\n")
    assert isinstance(r, Response)
    assert r.data == _fetch_data(_generic([line], 0, len(b"* 1 FETCH ")))  # the general way
    env = r.data["ENVELOPE"]
    assert env.from_ == (Address('N "Q" \\ x', None, "m", "h"),)
    assert env.to == (Address(None, None, "g", None), Address(None, None, None, None))
    assert env.message_id == "<id>"
    if b"BODY[]" in line:
        assert b"ENVELOPE (NIL" in r.data["BODY[]"]
