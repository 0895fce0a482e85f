"""FTP's sans-I/O core, example by example: replies, commands, addresses, MDTM, TYPE A, errors.

Where an independent reader of the same bytes exists, it is the judge: Python's ftplib
parses what Reply.to_bytes writes and the 227/229 texts (parse227, parse229); its
getmultiline splits the raw control-connection transcripts of vsftpd and pyftpdlib into
replies, and ReplyReader must find the same replies in them; its abort() sends the ABOR
that CommandReader must read. The listing lines have their own file (test_ftp_listing.py),
the hypothesis round-trips theirs (test_ftp_core_properties.py).
"""

from __future__ import annotations

import ftplib
import io
import random
import socket
import time

import pytest
from ftp_peers import FTPPeer, pyftpdlib_server, vsftpd_server

import netshell as ns
from netshell.errors import NetshellError
from protocols.ftp.core import (
    MAX_COMMAND_LINE,
    AsciiDecoder,
    AsciiEncoder,
    Command,
    CommandError,
    CommandReader,
    FTPError,
    FTPPermanentError,
    FTPProtocolError,
    FTPTemporaryError,
    Reply,
    ReplyReader,
    error_for,
    format_command,
    format_eprt,
    format_epsv,
    format_mdtm,
    format_pasv,
    format_port,
    parse_command,
    parse_eprt,
    parse_epsv,
    parse_mdtm,
    parse_pasv,
    parse_port,
)


def ftplib_replies(data: bytes) -> list[str]:
    """The replies Python's ftplib reads from ``data``: each as getmultiline returns it
    (the raw lines, codes included, joined by newlines)."""
    text = data.decode("utf-8", "surrogateescape")
    reader = ftplib.FTP()
    reader.file = io.StringIO(text, newline="")
    replies = []
    while reader.file.tell() < len(text):
        replies.append(reader.getmultiline())
    return replies


def feed_in_pieces(reader: ReplyReader, data: bytes, seed: int) -> list[Reply]:
    rng = random.Random(seed)
    out: list[Reply] = []
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 7)
        out += reader.feed(data[pos : pos + step])
        pos += step
    return out


# ---- Reply


def test_a_one_line_reply_formats_as_code_space_text():
    assert Reply(226, "Transfer complete.").to_bytes() == b"226 Transfer complete.\r\n"
    assert Reply(200, "").to_bytes() == b"200 \r\n"
    assert Reply(200, []).lines == ("",)


def test_a_multi_line_reply_formats_per_rfc_959_and_ftplib_reads_it_as_one():
    reply = Reply(211, ["Features:", " MDTM", " SIZE", "End"])
    data = reply.to_bytes()
    assert data == b"211-Features:\r\n MDTM\r\n SIZE\r\n211 End\r\n"
    assert ftplib_replies(data) == ["211-Features:\n MDTM\n SIZE\n211 End"]


def test_middle_lines_that_begin_with_a_digit_get_a_space():
    # without the space, "211 x" would end the reply for every client, and "211-x" or
    # "123 x" would confuse the less careful ones
    reply = Reply(211, ["Status:", "211 not the end", "211-nor this", "7 files", "x9", "End"])
    data = reply.to_bytes()
    lines = data.split(b"\r\n")
    assert lines[1:5] == [b" 211 not the end", b" 211-nor this", b" 7 files", b"x9"]
    # ftplib (which ends a reply at "211 ") sees one reply, ending at the real end
    [one] = ftplib_replies(data)
    assert one.endswith("\n211 End") and one.count("\n") == 5
    # and the first and last lines are never padded
    assert Reply(211, ["1 first", "2 last"]).to_bytes() == b"211-1 first\r\n211 2 last\r\n"


def test_line_breaks_in_the_text_split_lines():
    assert Reply(214, "one\ntwo\r\nthree\rfour").lines == ("one", "two", "three", "four")
    assert Reply(214, ["a\nb", "c"]).lines == ("a", "b", "c")
    assert b"\n" not in Reply(550, "x\ny").to_bytes().replace(b"\r\n", b"")


def test_surrogates_go_back_to_their_bytes():
    raw = b"No such file: caf\xe9 \xff\xfe.txt"  # Latin-1 on disk, not UTF-8
    text = raw.decode("utf-8", "surrogateescape")
    assert Reply(550, text).to_bytes() == b"550 " + raw + b"\r\n"
    assert Reply(257, '"/\u00e9t\u00e9" created').to_bytes() == (
        b'257 "/\xc3\xa9t\xc3\xa9" created\r\n'
    )


def test_reply_text_kind_and_code_checks():
    reply = Reply(550, ["No such file", "or directory"])
    assert reply.text == "No such file\nor directory"
    assert [Reply(code, "x").kind for code in (150, 226, 331, 421, 550)] == [1, 2, 3, 4, 5]
    for bad in (99, 600, 0, -226, True, "226", 226.0):
        with pytest.raises(ValueError):
            Reply(bad, "x")  # type: ignore[arg-type]
    assert Reply(226, "x") == Reply(226, ["x"]) and hash(Reply(226, "x")) == hash(Reply(226, "x"))


# ---- ReplyReader

# multi-line replies as real servers write them (recorded), with ftplib as the judge
REAL_REPLIES = [
    # vsftpd 3.0: FEAT, STAT, HELP (middle lines start with a space)
    b"211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n"
    b" UTF8\r\n211 End\r\n",
    b"211-FTP server status:\r\n     Connected to 127.0.0.1\r\n     Logged in as ftp\r\n"
    b"     TYPE: ASCII\r\n     vsFTPd 3.0.3 - secure, fast, stable\r\n211 End of status\r\n",
    b"214-The following commands are recognized.\r\n ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT"
    b"\r\n XPWD XRMD\r\n214 Help OK.\r\n",
    # pyftpdlib: FEAT with the MLST facts
    b"211-Features supported:\r\n EPRT\r\n EPSV\r\n MDTM\r\n MFMT\r\n"
    b" MLST type*;perm*;size*;modify*;unique*;unix.mode;unix.uid;unix.gid;\r\n"
    b" REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End FEAT.\r\n",
    # ProFTPD: a 230 banner with "230-" on every middle line, an empty one included
    b"230-Welcome, archive user anonymous@127.0.0.1 !\r\n230-\r\n"
    b"230-The local time is: Sat Dec 05 08:17:00 2026\r\n230-\r\n"
    b"230 Anonymous access granted, restrictions apply\r\n",
    # pure-ftpd: a first line whose text starts with dashes
    b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n"
    b"220-You are user number 1 of 50 allowed.\r\n"
    b"220 You will be disconnected after 15 minutes of inactivity.\r\n",
    # IIS: bare words, code-prefixed middle lines, a one-line reply right after
    b"220-Microsoft FTP Service\r\n220-Line two\r\n220 Ready\r\n331 Password required\r\n",
    # a banner whose middle lines begin with spaces and digits (padded), and bare LF ends
    b"230-Banner\n  indented\n 230 padded, not the end\n230 Login successful.\n",
]


def ours(reply: Reply) -> str:
    return "\n".join(reply.lines)


def theirs(text: str) -> tuple[int, str]:
    """ftplib's reply as (code, lines): the code taken from the first line and a leading
    ``code-`` from the middle ones, the way ReplyReader reads them."""
    lines = text.split("\n")
    code = lines[0][:3]
    body = [lines[0][4:]]
    body += [line[4:] if line.startswith(code + "-") else line for line in lines[1:-1]]
    if len(lines) > 1:
        body.append(lines[-1][4:])
    return int(code), "\n".join(body)


@pytest.mark.parametrize("data", REAL_REPLIES, ids=range(len(REAL_REPLIES)))
def test_real_multi_line_replies_read_as_ftplib_reads_them(data):
    expected = [theirs(text) for text in ftplib_replies(data)]
    for seed in range(20):
        got = feed_in_pieces(ReplyReader(), data, seed)
        assert [(reply.code, ours(reply)) for reply in got] == expected
    whole = ReplyReader().feed(data)
    assert [(reply.code, ours(reply)) for reply in whole] == expected


def test_middle_lines_starting_with_the_code_and_a_hyphen_do_not_end_the_reply():
    reader = ReplyReader()
    assert reader.feed(b"230-Hello\r\n230-Still the banner\r\n230-\r\n") == []
    # another code's "220 " line, or "2301 ..." are middle lines as well
    assert reader.feed(b"220 not ours\r\n2301 nor this\r\n") == []
    [reply] = reader.feed(b"230 Done\r\n")
    assert reply == Reply(
        230, ["Hello", "Still the banner", "", "220 not ours", "2301 nor this", "Done"]
    )


def test_a_last_line_with_the_code_alone_ends_the_reply():
    reader = ReplyReader()
    assert reader.feed(b"226\r\n211-a\r\n211\r\n") == [Reply(226, ""), Reply(211, ["a", ""])]


def test_several_replies_in_one_feed_come_back_in_order_and_leftovers_wait():
    reader = ReplyReader()
    got = reader.feed(b"150 Opening\r\n226 Done\r\n221-Bye\r\n")
    assert got == [Reply(150, "Opening"), Reply(226, "Done")]
    assert reader.feed(b"221 Goodbye\r") == []
    assert reader.feed(b"\n") == [Reply(221, ["Bye", "Goodbye"])]


def test_reply_bytes_that_are_not_utf8_stay_as_surrogates():
    [reply] = ReplyReader().feed(b"550 caf\xe9: no\r\n")
    assert reply.text == "caf\udce9: no"
    assert reply.to_bytes() == b"550 caf\xe9: no\r\n"


@pytest.mark.parametrize(
    "garbage",
    [
        b"hello\r\n",
        b"99 short\r\n",
        b"2261 four digits\r\n",
        b"abc-def\r\n",
        b"\r\n",
        b" 226 space first\r\n",
        b"226\tTab\r\n",
        b"600 no such class\r\n",
        b"026 zero\r\n",
    ],
)
def test_a_line_that_is_not_a_reply_is_a_protocol_error(garbage):
    with pytest.raises(FTPProtocolError) as raised:
        ReplyReader().feed(garbage)
    assert raised.value.code == 0 and raised.value.reply is None


def test_reply_lines_over_the_limit_are_refused_before_their_end_arrives():
    # exactly max_line is fine, CR or not
    assert ReplyReader(max_line=10).feed(b"200 123456\r\n") == [Reply(200, "123456")]
    assert ReplyReader(max_line=10).feed(b"200 123456\n") == [Reply(200, "123456")]
    with pytest.raises(FTPProtocolError, match="longer than 10"):
        ReplyReader(max_line=10).feed(b"200 1234567\r\n")
    # a line with no end is refused once it passes the limit (nothing buffers forever)
    reader = ReplyReader(max_line=10)
    assert reader.feed(b"200 123456\r") == []
    with pytest.raises(FTPProtocolError):
        reader.feed(b"x")
    reader = ReplyReader(max_line=10)
    with pytest.raises(FTPProtocolError):
        for _ in range(100):
            reader.feed(b"2")
    # a long middle line as well
    with pytest.raises(FTPProtocolError):
        ReplyReader(max_line=10).feed(b"211-x\r\n" + b" " * 11 + b"\r\n")


def test_a_reply_of_too_many_lines_is_refused():
    ok = b"211-a\r\n b\r\n211 c\r\n"
    assert ReplyReader(max_lines=3).feed(ok) == [Reply(211, ["a", " b", "c"])]
    reader = ReplyReader(max_lines=3)
    with pytest.raises(FTPProtocolError, match="more than 3 lines"):
        reader.feed(b"211-a\r\n b\r\n c\r\n")
    # the limit holds across feeds too
    reader = ReplyReader(max_lines=50)
    reader.feed(b"211-start\r\n")
    with pytest.raises(FTPProtocolError):
        for _ in range(60):
            reader.feed(b" line\r\n")


def test_a_reply_of_too_many_bytes_is_refused_whatever_its_lines():
    # Lines under the line limit, fewer than the line limit, but more bytes than allowed in
    # all: a server cannot make a client hold max_lines * max_line bytes.
    reader = ReplyReader(max_bytes=1000)
    reader.feed(b"211-start\r\n")
    with pytest.raises(FTPProtocolError, match="more than 1,000 bytes"):
        for _ in range(20):
            reader.feed(b" " + b"x" * 98 + b"\r\n")
    line = b" " + b"x" * 98 + b"\r\n"
    assert len(ReplyReader(max_bytes=1000).feed(b"211-s\r\n" + line * 9 + b"211 e\r\n")) == 1


def test_the_default_limits_take_a_long_status_listing():
    lines = [f" -rw-r--r-- 1 0 0 {n} Dec 05 08:17 file{n}" for n in range(20_000)]
    data = Reply(213, ["Status follows:", *lines, "End of status"]).to_bytes()
    [reply] = ReplyReader().feed(data)
    assert len(reply.lines) == 20_002


COMMANDS = b"USER anonymous\r\nPASS netshell@example.test\r\nFEAT\r\nSTAT\r\nHELP\r\nSYST\r\n"
COMMANDS += b"TYPE I\r\nSTAT .\r\nMDTM nosuch\r\nQUIT\r\n"


def transcript(server: FTPPeer) -> bytes:
    """Everything the server says on a control connection, from its banner to its close,
    to commands sent all at once."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(COMMANDS)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.timeout(60)
async def test_real_servers_transcripts_read_as_ftplib_reads_them(reactor, tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    for name in ("a.txt", "b c.txt", "230 looks like a reply"):
        (root / name).write_bytes(b"x" * 10)
    (root / "sub").mkdir()
    for start in (pyftpdlib_server, vsftpd_server):
        async with start(root) as server:
            data = await ns.defer_to_thread(transcript, server)
        expected = [theirs(text) for text in ftplib_replies(data)]
        assert len(expected) >= 11, (server.name, data)  # banner and one per command
        assert expected[-1][0] == 221
        assert any(text.count("\n") > 4 for _, text in expected)  # FEAT, STAT, HELP
        for seed in range(5):
            got = feed_in_pieces(ReplyReader(), data, seed)
            assert [(reply.code, ours(reply)) for reply in got] == expected, server.name


# ---- commands


def test_parse_command_upper_cases_the_verb_and_keeps_the_argument_exactly():
    assert parse_command(b"retr  my file.txt ") == Command("RETR", " my file.txt ")
    assert parse_command(b"Stor a") == Command("STOR", "a")
    assert parse_command(b"NOOP") == Command("NOOP", "")
    assert parse_command(b"NOOP ") == Command("NOOP", "")
    assert parse_command(b"xpwd") == Command("XPWD", "")
    assert parse_command(b"SITE CHMOD 755 a b") == Command("SITE", "CHMOD 755 a b")
    assert parse_command(b"CWD  ") == Command("CWD", " ")
    assert parse_command(b"RETR a\tb") == Command("RETR", "a\tb")


def test_parse_command_keeps_bytes_that_are_not_utf8_as_surrogates():
    command = parse_command(b"RETR caf\xe9\xff.txt")
    assert command.arg == "caf\udce9\udcff.txt"
    assert command.arg.encode("utf-8", "surrogateescape") == b"caf\xe9\xff.txt"
    assert parse_command("RETR \u00e9t\u00e9".encode()).arg == "\u00e9t\u00e9"


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b" RETR a",
        b"RE-TR a",
        b"RETR\ta",
        b"1ABC",
        b"AB1 x",
        b"\xc3\x84BC",
        b"\xffRETR",
        b"RETR\x00 a",
        b"\r",
        b"\t",
    ],
)
def test_an_empty_line_or_a_verb_not_of_letters_is_a_500(line):
    with pytest.raises(CommandError) as raised:
        parse_command(line)
    assert raised.value.reply.code == 500
    assert isinstance(raised.value, ValueError)


def test_format_command():
    assert format_command("RETR", "a b.txt") == b"RETR a b.txt\r\n"
    assert format_command("NOOP") == b"NOOP\r\n"
    assert format_command("CWD", " spaced ") == b"CWD  spaced \r\n"
    assert format_command("STOR", "\u00e9t\u00e9") == "STOR \u00e9t\u00e9\r\n".encode()
    raw = "caf\udce9".encode("utf-8", "surrogateescape")
    assert raw == b"caf\xe9"
    assert format_command("RETR", "caf\udce9") == b"RETR caf\xe9\r\n"


@pytest.mark.parametrize("arg", ["a\r\nDELE b", "a\nb", "a\rb", "a\x00b", "\n"])
def test_format_command_refuses_line_ends_and_nul_in_the_argument(arg):
    with pytest.raises(ValueError):
        format_command("RETR", arg)


@pytest.mark.parametrize("verb", ["", "RE TR", "RETR\r\n", "R1", "\u00c4BC", "RETR ", "-"])
def test_format_command_refuses_a_verb_not_of_letters(verb):
    with pytest.raises(ValueError):
        format_command(verb, "x")


def test_command_reader_takes_crlf_and_bare_lf_in_any_pieces():
    data = b"USER u\r\nPASS p\nCWD /a b \r\nNOOP\n"
    expected = [
        Command("USER", "u"),
        Command("PASS", "p"),
        Command("CWD", "/a b "),
        Command("NOOP", ""),
    ]
    assert CommandReader().feed(data) == expected
    reader = CommandReader()
    got = []
    for byte in data:
        got += reader.feed(bytes([byte]))
    assert got == expected
    # a CR inside a line is kept (the CR of CRLF is not)
    assert CommandReader().feed(b"RETR a\rb\r\r\n") == [Command("RETR", "a\rb\r")]


def test_command_reader_gives_errors_in_line_and_goes_on():
    got = CommandReader().feed(b"\r\n1XY\r\nNOOP\r\n")
    assert [type(x) for x in got] == [CommandError, CommandError, Command]
    assert [x.reply.code for x in got[:2]] == [500, 500]  # type: ignore[union-attr]
    assert got[2] == Command("NOOP", "")


def test_telnet_synch_and_interrupt_before_abor_vanish():
    # IAC IP IAC DM ABOR: the RFC 959 way (and what curl and others send)
    assert CommandReader().feed(b"\xff\xf4\xff\xf2ABOR\r\n") == [Command("ABOR", "")]
    # the same with the DM gone as urgent data that the socket did not keep in line
    assert CommandReader().feed(b"\xff\xf4\xffABOR\r\n") == [Command("ABOR", "")]
    # in pieces, split inside the Telnet sequences
    reader = CommandReader()
    got = []
    for piece in (b"RETR x\r\n\xff", b"\xf4", b"\xff", b"\xf2AB", b"OR\r\nNOOP\r\n"):
        got += reader.feed(piece)
    assert got == [Command("RETR", "x"), Command("ABOR", ""), Command("NOOP", "")]


def test_telnet_negotiation_and_other_commands_vanish_and_iac_iac_is_0xff():
    data = (
        b"\xff\xfb\x01\xff\xfd\x03NO\xff\xf1OP\r\n"  # WILL ECHO, DO SGA, NOP mid-verb
        b"\xff\xfe\x0a\xff\xfc\xffRETR a\xff\xffb\r\n"  # DONT <LF>, WONT <IAC>: options
        b"\xff\xf6\xff\xf8\xff\xf9\xff\xf5\xff\xf3\xff\xf7\xff\xf0\xff\xfaSYST\r\n"
    )
    reader = CommandReader()
    expected = [Command("NOOP", ""), Command("RETR", "a\udcffb"), Command("SYST", "")]
    assert reader.feed(data) == expected
    reader = CommandReader()
    got = []
    for byte in data:
        got += reader.feed(bytes([byte]))
    assert got == expected
    assert got[1].arg.encode("utf-8", "surrogateescape") == b"a\xffb"


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


@pytest.mark.parametrize("oobinline", [True, False])
def test_ftplib_abort_is_read_when_urgent_data_stays_in_line(oobinline):
    """ftplib.abort() sends ``ABOR\\r\\n`` with MSG_OOB: its LF is the urgent byte, kept in
    the stream only with SO_OOBINLINE (which a server must set)."""
    client, server = _tcp_pair()
    with client, server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, int(oobinline))
        ftp = ftplib.FTP()
        ftp.sock = client
        ftp.file = client.makefile("r", encoding="utf-8")
        server.sendall(b"226 Abort successful\r\n")
        assert ftp.abort().startswith("226")
        reader = CommandReader()
        got: list[object] = []
        server.settimeout(5)
        seen = b""
        while len(seen) < (6 if oobinline else 5):
            chunk = server.recv(100)
            seen += chunk
            got += reader.feed(chunk)
        if oobinline:
            assert got == [Command("ABOR", "")]
        else:
            assert seen == b"ABOR\r" and got == [] and reader.buffered == 5


def test_an_over_long_line_is_one_500_skipped_to_its_end_without_buffering():
    reader = CommandReader(max_line=100)
    got: list[Command | CommandError] = reader.feed(b"NOOP\r\nRETR ")
    assert got == [Command("NOOP", "")]
    most = 0
    for _ in range(2000):  # 2 MB of one line, in 1 kB pieces
        got += reader.feed(b"x" * 1000)
        most = max(most, reader.buffered)
    assert most <= 100
    got += reader.feed(b"y\r\nSYST\r\n")
    errors = [x for x in got if isinstance(x, CommandError)]
    assert len(errors) == 1 and errors[0].reply.code == 500
    assert "too long" in errors[0].reply.text
    assert [x for x in got if isinstance(x, Command)] == [Command("NOOP", ""), Command("SYST", "")]
    assert reader.buffered == 0


def test_line_length_limit_boundaries():
    limit = 20
    exact = b"RETR " + b"a" * (limit - 5)
    assert len(exact) == limit
    assert CommandReader(limit).feed(exact + b"\r\n") == [Command("RETR", "a" * 15)]
    assert CommandReader(limit).feed(exact + b"\n") == [Command("RETR", "a" * 15)]
    # the CR of CRLF does not count, also when it arrives alone
    reader = CommandReader(limit)
    assert reader.feed(exact) == [] and reader.feed(b"\r") == []
    assert reader.buffered <= limit + 1
    assert reader.feed(b"\n") == [Command("RETR", "a" * 15)]
    # one byte more: one error, and the rest of the line (in the same feed) is skipped
    got = CommandReader(limit).feed(exact + b"b\r\nNOOP\r\n")
    assert [type(x) for x in got] == [CommandError, Command] and got[1] == Command("NOOP", "")
    # a lone CR in the middle counts
    got = CommandReader(limit).feed(exact + b"\rb\r\n")
    assert [type(x) for x in got] == [CommandError]
    # the error comes as soon as the limit is passed, before the line ends
    reader = CommandReader(limit)
    assert reader.feed(exact) == []
    [error] = reader.feed(b"c")
    assert isinstance(error, CommandError) and reader.buffered == 0
    assert reader.feed(b"more of the same line") == []
    assert reader.feed(b"\nNOOP\n") == [Command("NOOP", "")]
    assert CommandReader().max_line == MAX_COMMAND_LINE == 4096


def test_command_reader_keeps_non_utf8_names():
    [command] = CommandReader().feed(b"STOR caf\xe9.txt\r\n")
    assert command == Command("STOR", "caf\udce9.txt")


# ---- addresses


def test_pasv_formats_and_parses_back_and_ftplib_agrees():
    text = format_pasv("192.168.1.20", 50_001)
    assert text == "Entering Passive Mode (192,168,1,20,195,81)."
    assert parse_pasv(text) == ("192.168.1.20", 50_001)
    assert ftplib.parse227("227 " + text) == ("192.168.1.20", 50_001)
    assert format_port("127.0.0.1", 21) == "127,0,0,1,0,21"
    assert format_pasv("0.0.0.0", 65535).endswith("(0,0,0,0,255,255).")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Entering Passive Mode 10,0,0,1,4,1", ("10.0.0.1", 1025)),  # RFC 1123: no parens
        ("=10,0,0,1,4,1", ("10.0.0.1", 1025)),
        ("Entering Passive Mode (10, 0, 0, 1, 4, 1)", ("10.0.0.1", 1025)),
        ("Passive (10,0,0,1,4,1) ok (9,9,9,9,9,9)", ("10.0.0.1", 1025)),
        ("Entering Passive Mode (010,000,000,001,004,001).", ("10.0.0.1", 1025)),
        ("1,2 then 10,0,0,1,4,1", ("10.0.0.1", 1025)),
    ],
)
def test_parse_pasv_scans_the_text_for_the_numbers(text, expected):
    assert parse_pasv(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Entering Passive Mode",
        "(10,0,0,1,4)",
        "(256,0,0,1,4,1)",
        "(10,0,0,1,4,256)",
        "(1000,0,0,1,4,1)",
        "(10,0,0,1,4,1000)",
        "(10,0,0,-1,4,1)",
        "(10;0;0;1;4;1)",
        "",
    ],
)
def test_parse_pasv_refuses_no_address_or_numbers_over_255(text):
    with pytest.raises(FTPProtocolError):
        parse_pasv(text)


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("::1", 21),
        ("1.2.3", 21),
        ("1.2.3.4.5", 21),
        ("01.2.3.4", 21),
        ("example.org", 21),
        ("1.2.3.4", 65536),
        ("1.2.3.4", -1),
        ("1.2.3.4", True),
    ],
)
def test_pasv_and_port_formatting_refuse_what_they_cannot_write(host, port):
    with pytest.raises(ValueError):
        format_pasv(host, port)
    with pytest.raises(ValueError):
        format_port(host, port)


def test_parse_port():
    assert parse_port("127,0,0,1,4,1") == ("127.0.0.1", 1025)
    assert parse_port("10,0,0,1,0,20") == ("10.0.0.1", 20)
    assert parse_port("255,255,255,255,255,255") == ("255.255.255.255", 65535)
    assert parse_port(format_port("192.0.2.7", 50000)) == ("192.0.2.7", 50000)


@pytest.mark.parametrize(
    "arg",
    [
        "",
        "127,0,0,1,4",
        "127,0,0,1,4,1,1",
        "256,0,0,1,4,1",
        "127,0,0,1,4,256",
        " 127,0,0,1,4,1",
        "127,0,0,1,4,1 ",
        "127, 0,0,1,4,1",
        "+127,0,0,1,4,1",
        "127,0,0,1,-4,1",
        "127,0,0,1,4,0x1",
        "\u0661,0,0,1,4,1",
        "1000,0,0,1,4,1",
        "127.0.0.1,4,1",
        "127,0,0,1,,4",
    ],
)
def test_parse_port_refuses_malformed_arguments_with_501(arg):
    with pytest.raises(CommandError) as raised:
        parse_port(arg)
    assert raised.value.reply.code == 501


def test_epsv_formats_and_parses_back_and_ftplib_agrees():
    text = format_epsv(6446)
    assert text == "Entering Extended Passive Mode (|||6446|)"
    assert parse_epsv(text) == 6446
    assert ftplib.parse229("229 " + text, ("127.0.0.1", 21)) == ("127.0.0.1", 6446)
    assert parse_epsv("Entering Extended Passive Mode (!!!65535!)") == 65535
    assert parse_epsv("ok (~~~1~) done") == 1
    for bad in (0, 65536, -1, True):
        with pytest.raises(ValueError):
            format_epsv(bad)


@pytest.mark.parametrize(
    "text",
    [
        "Entering Extended Passive Mode",
        "(|||0|)",
        "(|||65536|)",
        "(||6446|)",
        "(|!|6446|)",
        "(|||6446!)",
        "(|||6446|",
        "(||||)",
        "(   6446 )",
        "(|||123456|)",
        "(|||-1|)",
        "(|||1a|)",
    ],
)
def test_parse_epsv_refuses_malformed_texts(text):
    with pytest.raises(FTPProtocolError):
        parse_epsv(text)


def test_eprt_formats_and_parses_both_families():
    assert format_eprt("132.235.1.2", 6275) == "|1|132.235.1.2|6275|"
    assert format_eprt("::1", 6275) == "|2|::1|6275|"
    assert format_eprt("2001:DB8:0:0::1", 21) == "|2|2001:db8::1|21|"
    assert parse_eprt("|1|132.235.1.2|6275|") == (1, "132.235.1.2", 6275)
    assert parse_eprt("|2|1080::8:800:200C:417A|5282|") == (2, "1080::8:800:200c:417a", 5282)
    assert parse_eprt("!2!::1!65535!") == (2, "::1", 65535)
    assert parse_eprt("~1~10.0.0.1~1~") == (1, "10.0.0.1", 1)
    for host, port in (("1.2.3", 21), ("::1", 0), ("::1", 65536), ("x", 21)):
        with pytest.raises(ValueError):
            format_eprt(host, port)


@pytest.mark.parametrize("arg", ["|3|1.2.3.4|21|", "|0|1.2.3.4|21|", "|13|x|21|", "|99|::1|1|"])
def test_eprt_with_another_family_is_522(arg):
    with pytest.raises(CommandError) as raised:
        parse_eprt(arg)
    assert raised.value.reply.code == 522
    assert raised.value.reply.text == "Network protocol not supported, use (1,2)"


@pytest.mark.parametrize(
    "arg",
    [
        "",
        "|",
        "|1|1.2.3.4|21",
        "|1|1.2.3.4|21||",
        "1|1.2.3.4|21|",
        "|1|::1|21|",
        "|2|1.2.3.4|21|",
        "|1|1.2.3.4|0|",
        "|1|1.2.3.4|65536|",
        "|1|1.2.3.4|+21|",
        "|1|1.2.3.4| 21|",
        "|1|01.2.3.4|21|",
        "|1|1.2.3.4.5|21|",
        "|x|1.2.3.4|21|",
        "||1.2.3.4|21|",
        "|1|1.2.3.4||",
        " |1|1.2.3.4|21|",
        "\x7f1\x7f1.2.3.4\x7f21\x7f",
        "|1|1.2.3.4|\u0662\u0661|",
        "|\u0661|1.2.3.4|21|",
        "|2|::1%eth0 x|21|",
        "|1|host.example|21|",
    ],
)
def test_malformed_eprt_is_501(arg):
    with pytest.raises(CommandError) as raised:
        parse_eprt(arg)
    assert raised.value.reply.code == 501


# ---- MDTM


def test_format_mdtm_is_utc_and_whole_seconds():
    assert format_mdtm(0) == "19700101000000"
    assert format_mdtm(1796458620.9) == "20261205081700"
    assert format_mdtm(-1) == "19691231235959"
    for t in (951782400, 1_000_000_000, 4102444799, 253402300799):
        assert format_mdtm(t) == time.strftime("%Y%m%d%H%M%S", time.gmtime(t))
    with pytest.raises(ValueError):
        format_mdtm(1e20)


def test_parse_mdtm():
    assert parse_mdtm("19700101000000") == 0
    assert parse_mdtm("20261205081700") == 1796458620
    assert parse_mdtm("20261205081700.25") == 1796458620.25
    assert parse_mdtm("20000229120000.000") == 951825600
    assert parse_mdtm(format_mdtm(1234567890.75)) == 1234567890


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026120508170",
        "202612050817000",
        "20261305081700",
        "20260230081700",
        "20261205241700",
        "20261205086000",
        "2026120508170a",
        " 20261205081700",
        "20261205081700 ",
        "20261205081700.",
        "20261205081700Z",
        "20261205081700.x",
        "\u0662\u0660261205081700",
        "-2026120508170",
    ],
)
def test_parse_mdtm_refuses_anything_else(text):
    with pytest.raises(ValueError):
        parse_mdtm(text)


# ---- TYPE A


def code(coder: AsciiEncoder | AsciiDecoder, pieces: list[bytes]) -> bytes:
    return b"".join(coder.feed(piece) for piece in pieces) + coder.flush()


def test_ascii_encoder_turns_lf_into_crlf_and_leaves_crlf_alone():
    assert code(AsciiEncoder(), [b"a\nb\n"]) == b"a\r\nb\r\n"
    assert code(AsciiEncoder(), [b"a\r\nb\r\n"]) == b"a\r\nb\r\n"
    assert code(AsciiEncoder(), [b"\n\n"]) == b"\r\n\r\n"
    assert code(AsciiEncoder(), [b"a\rb\r"]) == b"a\rb\r"  # a lone CR is kept
    assert code(AsciiEncoder(), [b"\r\r\n"]) == b"\r\r\n"
    # CR and LF in different chunks: still one CRLF
    assert code(AsciiEncoder(), [b"a\r", b"\nb"]) == b"a\r\nb"
    assert code(AsciiEncoder(), [b"a\r", b"", b"\nb"]) == b"a\r\nb"
    assert code(AsciiEncoder(), [b"a\n", b"\n"]) == b"a\r\n\r\n"
    assert code(AsciiEncoder(), [b"a\r", b"b", b"\n"]) == b"a\rb\r\n"
    assert code(AsciiEncoder(), [b"\r", b"\n", b"\n"]) == b"\r\n\r\n"
    assert AsciiEncoder().flush() == b""


def test_ascii_decoder_turns_crlf_into_lf_and_keeps_lone_cr():
    assert code(AsciiDecoder(), [b"a\r\nb\r\n"]) == b"a\nb\n"
    assert code(AsciiDecoder(), [b"a\nb"]) == b"a\nb"
    assert code(AsciiDecoder(), [b"a\rb\r"]) == b"a\rb\r"
    assert code(AsciiDecoder(), [b"\r\r\n"]) == b"\r\n"
    decoder = AsciiDecoder()
    assert decoder.feed(b"a\r") == b"a"  # the CR waits
    assert decoder.feed(b"\nb\r") == b"\nb"
    assert decoder.feed(b"c") == b"\rc"
    assert decoder.feed(b"\r") == b""
    assert decoder.flush() == b"\r"
    assert decoder.flush() == b""
    assert decoder.feed(b"\n") == b"\n"  # after flush, a new start


# ---- errors


def test_error_for_picks_the_class_by_the_first_digit():
    for reply, cls in [
        (Reply(421, "Service not available"), FTPTemporaryError),
        (Reply(451, "Local error"), FTPTemporaryError),
        (Reply(550, "No such file or directory: /x.txt"), FTPPermanentError),
        (Reply(530, "Not logged in."), FTPPermanentError),
        (Reply(226, "Transfer complete."), FTPProtocolError),
        (Reply(150, "Opening"), FTPProtocolError),
        (Reply(331, "Password?"), FTPProtocolError),
    ]:
        error = error_for(reply)
        assert type(error) is cls
        assert isinstance(error, FTPError) and isinstance(error, NetshellError)
        assert error.code == reply.code and error.reply is reply
    assert str(error_for(Reply(550, "No such file or directory: /x.txt"))) == (
        "550 No such file or directory: /x.txt"
    )


def test_an_error_message_is_one_line():
    error = error_for(Reply(550, ["Can't open:", "  No such file", "End"]))
    assert str(error) == "550 Can't open: No such file End"
    assert "\n" not in str(error_for(Reply(421, "a\nb\r\nc")))
    protocol = FTPProtocolError(None, "not an FTP reply")
    assert protocol.code == 0 and str(protocol) == "not an FTP reply"
