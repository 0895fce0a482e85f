"""FTP's sans-I/O core under hypothesis: what is written reads back, in any pieces.

- Replies: any Reply formats to bytes that ReplyReader, fed in any split, reads back as the
  same Reply (middle lines that begin with a digit come back with the space they were
  given), and that Python's ftplib reads as one reply too.
- Commands: format_command then parse_command gives the command back (verb upper-cased);
  a CommandReader fed a stream of them in any split, with Telnet commands slipped in and
  0xFF bytes doubled (RFC 854), gives them all back; over-long lines give one 500 each
  and never grow the buffer.
- PORT/PASV/EPRT/EPSV: every address and port goes out and comes back.
- Listings: generated Unix (``ls -l``) and DOS/IIS lines parse to the fields they were made
  from; list_line and mlsx_line output parses back; MDTM both ways.
- TYPE A: any chunking gives what the whole gives, and that is the conversion stated once
  more as a regular expression.
- Parsers never raise anything but their documented errors on arbitrary input.
"""

from __future__ import annotations

import dataclasses
import ftplib
import io
import ipaddress
import itertools
import math
import re
import stat
import time
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocols.ftp.core import (
    MLST_FACTS,
    AsciiDecoder,
    AsciiEncoder,
    Command,
    CommandError,
    CommandReader,
    FileInfo,
    FTPProtocolError,
    Reply,
    ReplyReader,
    format_command,
    format_eprt,
    format_epsv,
    format_mdtm,
    format_pasv,
    format_port,
    list_line,
    mlsx_line,
    parse_command,
    parse_eprt,
    parse_epsv,
    parse_list_line,
    parse_mdtm,
    parse_mlsx_line,
    parse_pasv,
    parse_port,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SIX_MONTHS = 31556952 // 2
DAY = 86400
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def seconds(when: datetime) -> float:
    return (when - EPOCH) / timedelta(seconds=1)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, in order)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=30)

# text as a peer may send it: UTF-8, or any bytes (kept as surrogates), never CR or LF.
# Built as bytes and decoded once, so the text is what decoding its bytes gives.
line_bytes = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n")).map(
            str.encode
        ),
        st.binary(max_size=8).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        st.sampled_from([b" ", b"211", b"211-", b"211 ", b"-", b"0", b"\xff", b"\t"]),
    ),
    max_size=6,
).map(b"".join)
line_text = line_bytes.map(lambda b: b.decode("utf-8", "surrogateescape"))
codes = st.integers(min_value=100, max_value=599)
replies = st.builds(Reply, codes, st.lists(line_text, min_size=1, max_size=6))


def as_read(reply: Reply) -> Reply:
    """The reply a reader gets back: middle lines that begin with a digit were padded."""
    lines = list(reply.lines)
    middle = [(" " + line if line[:1].isdigit() else line) for line in lines[1:-1]]
    return Reply(reply.code, [*lines[:1], *middle, *lines[1:][-1:]])


# ---- replies


@SETTINGS
@given(st.lists(replies, min_size=1, max_size=5), cuts)
def test_replies_read_back_in_any_split(sent, cut):
    data = b"".join(reply.to_bytes() for reply in sent)
    reader = ReplyReader()
    got: list[Reply] = []
    for piece in pieces(data, cut):
        got += reader.feed(piece)
    assert got == [as_read(reply) for reply in sent]
    for reply in got:  # and the same bytes once more
        assert ReplyReader().feed(reply.to_bytes()) == [as_read(reply)]


def ftplib_reply_count(data: bytes) -> int:
    text = data.decode("utf-8", "surrogateescape")
    reader = ftplib.FTP()
    reader.file = io.StringIO(text, newline="")
    count = 0
    while reader.file.tell() < len(text):
        reader.getmultiline()
        count += 1
    return count


@SETTINGS
@given(
    st.lists(
        st.tuples(replies, st.lists(st.sampled_from(["code-", "space", "raw"]), min_size=6)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
    cuts,
)
def test_replies_as_other_servers_write_them_read_as_their_lines(sent, bare_lf, cut):
    """Middle lines as ProFTPD and IIS write them (``code-`` first), padded with a space,
    or bare; the last line ``code`` alone when its text is empty; LF or CRLF."""
    end = "\n" if bare_lf else "\r\n"
    wire = []
    expected = []
    for reply, styles in sent:
        code, lines = str(reply.code), reply.lines
        if len(lines) == 1:
            wire.append(f"{code} {lines[0]}{end}")
            expected.append(reply)
            continue
        out = [f"{code}-{lines[0]}{end}"]
        read = [lines[0]]
        for line, style in zip(lines[1:-1], styles, strict=False):
            if style == "raw" and not line[:1].isdigit():
                out.append(line + end)
                read.append(line)
            elif style == "space":
                out.append(" " + line + end)
                read.append(" " + line)
            else:
                out.append(f"{code}-{line}{end}")
                read.append(line)
        out.append(f"{code}{end}" if lines[-1] == "" else f"{code} {lines[-1]}{end}")
        read.append(lines[-1])
        wire += out
        expected.append(Reply(reply.code, read))
    data = "".join(wire).encode("utf-8", "surrogateescape")
    reader = ReplyReader()
    got: list[Reply] = []
    for piece in pieces(data, cut):
        got += reader.feed(piece)
    assert got == expected
    assert ftplib_reply_count(data) == len(expected)  # where ftplib sees the replies end


@SETTINGS
@given(replies)
def test_ftplib_reads_a_formatted_reply_as_one(reply):
    data = reply.to_bytes()
    text = data.decode("utf-8", "surrogateescape")
    reader = ftplib.FTP()
    reader.file = io.StringIO(text, newline="")
    whole = reader.getmultiline()
    assert reader.file.tell() == len(text)  # all of it is the one reply
    assert whole[:3] == str(reply.code)
    assert whole.count("\n") == len(reply.lines) - 1


@SETTINGS
@given(codes, st.lists(st.text(max_size=20), max_size=5))
def test_reply_lines_never_hold_line_breaks(code, texts):
    reply = Reply(code, texts)
    assert all("\r" not in line and "\n" not in line for line in reply.lines)
    body = reply.to_bytes()
    assert body.endswith(b"\r\n") and body.count(b"\n") == len(reply.lines)
    assert body.count(b"\r\n") == len(reply.lines)


@SETTINGS
@given(st.binary(max_size=300), cuts)
def test_reply_reader_takes_any_bytes_or_says_protocol_error(data, cut):
    reader = ReplyReader(max_line=40, max_lines=5)
    try:
        for piece in pieces(data, cut):
            for reply in reader.feed(piece):
                assert isinstance(reply, Reply) and 1 <= len(reply.lines) <= 5
    except FTPProtocolError as error:
        assert error.code == 0


# ---- commands

verbs = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=5
)
args = line_bytes.map(lambda b: b.replace(b"\0", b"").decode("utf-8", "surrogateescape"))


@SETTINGS
@given(verbs, args)
def test_format_then_parse_gives_the_command_back(verb, arg):
    line = format_command(verb, arg)
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1
    assert parse_command(line[:-2]) == Command(verb.upper(), arg)


@SETTINGS
@given(verbs, args, st.sampled_from(["\r", "\n", "\0"]), st.integers(min_value=0))
def test_format_command_refuses_any_line_break_or_nul(verb, arg, bad, where):
    where %= len(arg) + 1
    try:
        format_command(verb, arg[:where] + bad + arg[where:])
    except ValueError:
        return
    raise AssertionError("no ValueError")


TELNET = [
    b"\xff\xf4",
    b"\xff\xf2",
    b"\xff\xf1",
    b"\xff\xf6",
    b"\xff\xfb\x01",
    b"\xff\xfd\xff",
    b"\xff\xfe\n",
    b"\xff\xfc\r",
]


@SETTINGS
@given(
    st.lists(st.tuples(verbs, args, st.booleans()), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(TELNET)), max_size=5),
    cuts,
)
def test_command_reader_gives_back_every_command_in_any_split_with_telnet_noise(
    commands, noise, cut
):
    tokens: list[bytes] = []
    for verb, arg, bare_lf in commands:
        line = format_command(verb, arg)
        if bare_lf:
            line = line[:-2] + b"\n"
        # RFC 854: a data byte 0xFF is sent as IAC IAC
        tokens += [b"\xff\xff" if byte == 0xFF else bytes([byte]) for byte in line]
    for where, telnet in noise:  # Telnet commands between any two data bytes
        tokens.insert(where % (len(tokens) + 1), telnet)
    reader = CommandReader()
    got: list[Command | CommandError] = []
    for piece in pieces(b"".join(tokens), cut):
        got += reader.feed(piece)
    assert got == [Command(verb.upper(), arg) for verb, arg, _ in commands]
    assert reader.buffered == 0


@SETTINGS
@given(
    st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=50),
)
def test_over_long_lines_give_one_500_each_and_never_grow_the_buffer(lengths, sizes):
    limit = 30
    wire = b"".join(b"NOOP " + b"x" * n + b"\r\n" for n in lengths)
    expected = [Command("NOOP", "x" * n) if n + 5 <= limit else 500 for n in lengths]
    reader = CommandReader(max_line=limit)
    got: list[Command | int] = []
    pos = 0
    i = 0
    while pos < len(wire):
        size = sizes[i % len(sizes)]
        i += 1
        for item in reader.feed(wire[pos : pos + size]):
            got.append(item.reply.code if isinstance(item, CommandError) else item)
        pos += size
        assert reader.buffered <= limit + 1
    assert got == expected


@SETTINGS
@given(st.binary(max_size=400), cuts)
def test_command_reader_takes_any_bytes(data, cut):
    reader = CommandReader(max_line=50)
    for piece in pieces(data, cut):
        for item in reader.feed(piece):
            assert isinstance(item, Command | CommandError)
            if isinstance(item, CommandError):
                assert item.reply.code == 500
            else:
                assert re.fullmatch(r"[A-Z]+", item.verb)
        assert reader.buffered <= 51


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=60),
        st.text(st.sampled_from("aZrT09 -\t\xff\u00e9\r\n\0"), max_size=12).map(str.encode),
    )
)
def test_parse_command_gives_a_command_or_a_500(line):
    verb, _, rest = line.partition(b" ")
    try:
        command = parse_command(line)
    except CommandError as error:
        assert error.reply.code == 500
        assert not re.fullmatch(rb"[A-Za-z]+", verb)
        return
    assert re.fullmatch(rb"[A-Za-z]+", verb)
    assert command.verb.encode() == verb.upper()
    assert command.arg.encode("utf-8", "surrogateescape") == rest


# ---- addresses

ipv4 = st.ip_addresses(v=4).map(str)
ports = st.integers(min_value=0, max_value=65535)
ports1 = st.integers(min_value=1, max_value=65535)
no_digits = st.text(st.characters(exclude_categories=("Nd", "Cs")), max_size=10)


@SETTINGS
@given(ipv4, ports1, no_digits, no_digits)  # port 0 in a 227: FTPProtocolError (below)
def test_pasv_and_port_round_trip(host, port, before, after):
    assert parse_port(format_port(host, port)) == (host, port)
    assert parse_pasv(format_pasv(host, port)) == (host, port)
    # RFC 1123: the numbers are found wherever they are in the text
    assert parse_pasv(before + format_port(host, port) + after) == (host, port)
    assert ftplib.parse227("227 " + format_pasv(host, port)) == (host, port)


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=999), min_size=6, max_size=6))
def test_parse_port_takes_six_numbers_up_to_255(numbers):
    arg = ",".join(map(str, numbers))
    if max(numbers) > 255:
        try:
            parse_port(arg)
        except CommandError as error:
            assert error.reply.code == 501
            return
        raise AssertionError("no 501")
    host, port = parse_port(arg)
    assert host == ".".join(map(str, numbers[:4])) and port == numbers[4] * 256 + numbers[5]


DELIMITERS = [chr(c) for c in range(33, 127) if not chr(c).isalnum() and chr(c) not in ".:"]


@SETTINGS
@given(ports1, st.sampled_from(DELIMITERS), no_digits)
def test_epsv_round_trip(port, delimiter, before):
    assert parse_epsv(format_epsv(port)) == port
    assert parse_epsv(f"{before}({delimiter * 3}{port}{delimiter})") == port


@SETTINGS
@given(st.ip_addresses(), ports1, st.sampled_from(DELIMITERS))
def test_eprt_round_trip(address, port, delimiter):
    family = 1 if address.version == 4 else 2
    arg = format_eprt(str(address), port)
    assert parse_eprt(arg) == (family, str(address), port)
    assert parse_eprt(arg.replace("|", delimiter)) == (family, str(address), port)
    exploded = f"{delimiter}{family}{delimiter}{address.exploded}{delimiter}{port}{delimiter}"
    assert parse_eprt(exploded) == (family, str(address), port)


@SETTINGS
@given(st.text(max_size=40))
def test_address_parsers_raise_only_their_errors(text):
    for parse in (parse_port, parse_eprt):
        try:
            parse(text)
        except CommandError as error:
            assert error.reply.code in (501, 522)
    for parse_reply in (parse_pasv, parse_epsv):
        try:
            parse_reply(text)
        except FTPProtocolError:
            pass


@SETTINGS
@given(st.text(max_size=40))
def test_eprt_family_522_only_for_other_numbers(text):
    try:
        family, host, _ = parse_eprt(text)
    except CommandError as error:
        if error.reply.code == 522:
            assert text[1:].split(text[0])[0] not in ("1", "2")
        return
    assert ipaddress.ip_address(host).version == (4 if family == 1 else 6)


# ---- listings

names = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"),
    min_size=1,
    max_size=30,
).filter(lambda name: name.strip() != "" and " -> " not in name)
ids = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-"), min_size=1, max_size=10)
perm_chars = st.tuples(
    *(
        st.sampled_from(chars)
        for chars in ["-r", "-w", "-xsS", "-r", "-w", "-xsS", "-r", "-w", "-xtT"]
    )
).map("".join)
sizes = st.integers(min_value=0, max_value=10**15)
# times whole to the minute, 1970 to 2100
minutes = st.integers(min_value=0, max_value=(4102444800 // 60)).map(lambda m: m * 60.0)


@SETTINGS
@given(
    st.sampled_from("-dl"),
    perm_chars,
    st.integers(min_value=1, max_value=99999),
    st.one_of(st.none(), ids),
    st.one_of(st.none(), ids),
    sizes,
    names,
    names,
    st.sampled_from([" ", "  ", "    "]),
    minutes,
    st.booleans(),
    minutes,
    st.sampled_from(["%d", "%2d", "%02d"]),
    st.booleans(),
)
def test_generated_unix_lines_parse_to_their_fields(
    kind,
    perms,
    nlink,
    owner,
    group,
    size,
    name,
    target,
    gap,
    now,
    recent,
    when,
    day_format,
    upper,
):
    assume(not (owner is None and group is not None))  # a group is never alone
    if recent:  # a time of day: within the last year (the parser's guess), to the minute
        when = now - (when % (364 * DAY))
        moment = datetime.fromtimestamp(when, UTC)
        date = f"{MONTHS[moment.month - 1]} {day_format % moment.day} {moment:%H:%M}"
        expected = when
    else:
        moment = datetime.fromtimestamp(when, UTC)
        date = f"{MONTHS[moment.month - 1]} {day_format % moment.day}  {moment.year}"
        expected = seconds(datetime(moment.year, moment.month, moment.day, tzinfo=UTC))
    if upper:
        date = date.upper()
    who = gap.join(x for x in (owner, group) if x is not None)
    shown = f"{name} -> {target}" if kind == "l" else name
    line = f"{kind}{perms}{gap}{nlink}{gap}{who + gap if who else ''}{size} {date} {shown}"
    info = parse_list_line(line, now)
    assert info is not None, line
    assert info.name == name and info.size == size and info.mtime == expected, line
    assert info.is_dir == (kind == "d") and info.is_link == (kind == "l")
    assert info.target == (target if kind == "l" else None)
    assert stat.filemode(info.mode) == kind + perms
    assert (info.nlink, info.owner, info.group) == (nlink, owner or "", group or ""), line


dos_names = names.filter(lambda name: not name[0].isspace())


@SETTINGS
@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2099, 12, 31, 23, 59)),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), sizes),
    dos_names,
    st.sampled_from([" ", "  ", "       "]),
    st.booleans(),
)
def test_generated_dos_lines_parse_to_their_fields(
    when, four_digit_year, twelve_hour, size, name, gap, commas
):
    when = when.replace(second=0, microsecond=0, tzinfo=UTC)
    if not four_digit_year:
        assume(1969 <= when.year <= 2068)  # what a two-digit year can say (POSIX %y)
    year = f"{when.year:04d}" if four_digit_year else f"{when.year % 100:02d}"
    if twelve_hour:
        clock = f"{(when.hour % 12) or 12:02d}:{when.minute:02d}{'AM' if when.hour < 12 else 'PM'}"
    else:
        clock = f"{when.hour:02d}:{when.minute:02d}"
    column = "<DIR>" if size is None else (f"{size:,}" if commas else str(size))
    line = f"{when.month:02d}-{when.day:02d}-{year}{gap} {clock}{gap}{column:>14}{gap}{name}"
    info = parse_list_line(line)
    assert info is not None, line
    assert info.name == name and info.is_dir == (size is None), line
    assert info.size == (-1 if size is None else size)
    assert info.mtime == seconds(when), line


file_infos = st.builds(
    lambda name, kind, perms, nlink, owner, group, size, mtime, target: FileInfo(
        name=name,
        is_dir=kind == "d",
        size=size,
        mtime=mtime,
        mode=stat.S_IFDIR * (kind == "d")
        | stat.S_IFLNK * (kind == "l")
        | stat.S_IFREG * (kind == "-")
        | perms,
        nlink=nlink,
        owner=owner,
        group=group,
        is_link=kind == "l",
        target=target if kind == "l" else None,
    ),
    names,
    st.sampled_from("-dl"),
    st.integers(min_value=0, max_value=0o7777),
    st.integers(min_value=1, max_value=999),
    ids,
    ids,
    sizes,
    st.floats(min_value=0, max_value=4102444799),
    names,
)


# a time near where ls's choice between "HH:MM" and the year changes, or anywhere
near_edges = st.one_of(
    st.floats(min_value=-SIX_MONTHS - 3 * DAY, max_value=-SIX_MONTHS + 3 * DAY),
    st.floats(min_value=3600 - 120, max_value=3600 + 120),
    st.floats(min_value=-400 * DAY, max_value=400 * DAY),
)


@SETTINGS
@given(file_infos, st.floats(min_value=400 * DAY, max_value=4000000000), st.none() | near_edges)
def test_list_line_parses_back(info, now, delta):
    if delta is not None:
        info = dataclasses.replace(info, mtime=now + delta)
    line = list_line(info, now)
    assert "\n" not in line and "\r" not in line
    back = parse_list_line(line, now)
    assert back is not None, line
    assert (back.name, back.is_dir, back.is_link, back.target) == (
        info.name,
        info.is_dir,
        info.is_link,
        info.target,
    )
    assert (back.size, back.mode, back.nlink, back.owner, back.group) == (
        info.size,
        info.mode,
        info.nlink,
        info.owner,
        info.group,
    )
    assert info.mtime is not None
    if now - SIX_MONTHS < info.mtime < now + 3600:
        assert back.mtime == math.floor(info.mtime / 60) * 60, line
    else:
        assert back.mtime == math.floor(info.mtime / DAY) * DAY, line


@SETTINGS
@given(
    file_infos,
    st.lists(
        st.sampled_from([*MLST_FACTS, *(f.upper() for f in MLST_FACTS), "unix.mode"]), unique=True
    ),
    st.text(st.sampled_from("acdeflmprw"), max_size=6),
    st.one_of(st.none(), st.text(st.sampled_from("0123456789abcdefU"), min_size=1)),
    st.sampled_from([None, "cdir", "pdir"]),
)
def test_mlsx_line_parses_back(info, facts, perm, unique, special):
    info = FileInfo(
        info.name,
        is_dir=info.is_dir or special is not None,
        size=info.size,
        mtime=info.mtime,
        unique=unique,
        facts={"type": special} if special else {},
    )
    line = mlsx_line(info, facts, perm)
    back = parse_mlsx_line(line)
    asked = {fact.lower() for fact in facts}
    fact_text = "" if line.startswith(" ") else line.split("; ", 1)[0]
    written = [fact.split("=")[0] for fact in fact_text.split(";") if fact]
    assert written == [fact for fact in MLST_FACTS if fact in back.facts]  # in RFC order
    assert back.name == info.name
    if "type" in asked:
        assert back.facts["type"] == (special or ("dir" if info.is_dir else "file"))
        assert back.is_dir == info.is_dir
    else:
        assert "type" not in back.facts and not back.is_dir
    assert back.size == (info.size if "size" in asked and not info.is_dir else -1)
    assert back.mtime == (
        math.floor(info.mtime) if "modify" in asked and info.mtime is not None else None
    )
    assert back.facts.get("perm") == (perm if "perm" in asked else None)
    assert back.unique == (unique if "unique" in asked else None)


@SETTINGS
@given(st.text(max_size=80), st.floats(min_value=0, max_value=4102444799))
def test_listing_parsers_raise_only_their_errors(text, now):
    info = parse_list_line(text, now)
    assert info is None or isinstance(info, FileInfo)
    try:
        parse_mlsx_line(text)
    except FTPProtocolError:
        pass


@SETTINGS
@given(st.floats(min_value=-62135596800, max_value=253402300799.99))
def test_mdtm_round_trip(t):
    text = format_mdtm(t)
    assert re.fullmatch(r"[0-9]{14}", text)
    assert parse_mdtm(text) == math.floor(t)
    if 0 <= t < 2**31:
        assert text == time.strftime("%Y%m%d%H%M%S", time.gmtime(math.floor(t)))


@SETTINGS
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.text(st.sampled_from("0123456789"), max_size=6),
)
def test_mdtm_text_round_trip(when, fraction):
    text = f"{when:%Y%m%d%H%M%S}".rjust(14, "0")
    assert format_mdtm(parse_mdtm(text)) == text
    if fraction:
        assert parse_mdtm(f"{text}.{fraction}") == parse_mdtm(text) + float("0." + fraction)


@SETTINGS
@given(st.text(max_size=20))
def test_parse_mdtm_raises_only_value_error(text):
    try:
        parse_mdtm(text)
    except ValueError:
        pass


# ---- TYPE A

ascii_data = st.lists(
    st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"xyz", b"\n\n"]), max_size=40
).map(b"".join)


@SETTINGS
@given(ascii_data, cuts)
def test_ascii_encoder_in_any_split(data, cut):
    encoder = AsciiEncoder()
    out = b"".join(encoder.feed(piece) for piece in pieces(data, cut)) + encoder.flush()
    assert out == re.sub(rb"(?<!\r)\n", b"\r\n", data)
    assert b"\n" not in out.replace(b"\r\n", b"")


@SETTINGS
@given(ascii_data, cuts)
def test_ascii_decoder_in_any_split_and_after_the_encoder(data, cut):
    decoder = AsciiDecoder()
    out = b"".join(decoder.feed(piece) for piece in pieces(data, cut)) + decoder.flush()
    assert out == data.replace(b"\r\n", b"\n")
    encoder, decoder = AsciiEncoder(), AsciiDecoder()
    wire = b"".join(encoder.feed(piece) for piece in pieces(data, cut)) + encoder.flush()
    back = b"".join(decoder.feed(piece) for piece in pieces(wire, cut[::-1])) + decoder.flush()
    assert back == data.replace(b"\r\n", b"\n")
