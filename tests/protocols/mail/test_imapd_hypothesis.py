"""hypothesis against the IMAP server, in memory (StringTransport, a Clock):

- random commands (every command the parser knows, typed arguments written by our writer
  with LITERAL+ literals) mixed with random garbage lines, fed in random pieces: the
  server never raises, and answers every tagged command exactly once (IDLE,
  AUTHENTICATE, LOGOUT and STARTTLS, which change how the lines after them are read,
  are left out);
- SEARCH on random messages and flags equals a brute-force model (Python's email package
  reading the same messages, the flags as stored, plain Python comparisons).
"""

from __future__ import annotations

import email
import email.header
import email.policy
import io
import re
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imap_strategies import commands, fetch_items, flag_lists

from netshell.failure import Failure
from netshell.testing import Clock, StringTransport
from protocols.mail.imap.fetch import (
    _addresses,
    crlf_chunks,
    header_envelope,
    split_header,
    ungroup_nested,
)
from protocols.mail.imap.server import IMAPServerFactory
from protocols.mail.imap.values import Command, SearchKey, SequenceSet
from protocols.mail.imap.writer import (
    envelope,
    format_command,
    format_search_key,
    parse_addresses,
)
from protocols.mail.maildir import Maildir

USERS = {"alice": "secret"}
_LEFT_OUT = {"IDLE", "AUTHENTICATE", "LOGOUT", "STARTTLS"}
_SETTINGS = settings(max_examples=80, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _session(root: str) -> tuple[Any, StringTransport]:
    factory = IMAPServerFactory(root, USERS, reactor=Clock(), fsync=False,
                                max_bad_commands=10_000)
    protocol = factory.build_protocol(None)
    transport = StringTransport(protocol=protocol)
    protocol.connection_made(transport)
    protocol.data_received(b"L LOGIN alice secret\r\nS SELECT INBOX\r\n")
    return protocol, transport


garbage = st.binary(max_size=60).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"")).filter(
    lambda b: not b.rstrip().endswith(b"}")
    and b.split(b" ", 1)[0].upper() not in {w.encode() for w in _LEFT_OUT | {"UID"}})
small_sets = st.sampled_from(["1", "2", "1:*", "*", "2,1", "1:2"]).map(SequenceSet.parse)


def _small(cmd: Command, sets: SequenceSet) -> Command:
    """``cmd`` with its sequence set (if it has one) replaced by one within the mailbox."""
    if cmd.name in ("FETCH", "STORE", "COPY", "MOVE") or (cmd.name == "EXPUNGE" and cmd.uid):
        return Command(cmd.tag, cmd.name, (sets, *cmd.args[1:]), cmd.uid)
    return cmd


lines = st.lists(st.one_of(
    commands().filter(lambda c: c.name not in _LEFT_OUT),
    st.builds(_small, commands().filter(lambda c: c.name not in _LEFT_OUT), small_sets),
    # FETCH and STORE on messages that exist, often
    st.builds(lambda s, items, uid: Command("t", "FETCH", (s, items), uid), small_sets,
              st.lists(fetch_items, min_size=1, max_size=5).map(tuple), st.booleans()),
    st.builds(lambda s, mode, silent, flags, uid: Command("t", "STORE",
                                                          (s, mode, silent, flags), uid),
              small_sets, st.sampled_from(["", "+", "-"]), st.booleans(), flag_lists,
              st.booleans()),
    garbage,
), min_size=1, max_size=12)


@_SETTINGS
@given(lines, st.data())
def test_random_commands_never_crash_and_each_tag_is_answered_once(
        items: list[Command | bytes], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as root:
        box = Maildir(Path(root) / "alice", fsync=False)
        box.append(b"Subject: one\r\nFrom: a@x.test\r\n\r\nbody\r\n", ["\\Seen"])
        box.append(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n")
        protocol, transport = _session(root)
        transport.clear()
        stream = b""
        for i, item in enumerate(items):
            tag = f"Tq{i}x"
            if isinstance(item, bytes):
                stream += tag.encode() + b" " + item + b"\r\n"
            else:
                stream += b"".join(format_command(Command(tag, item.name, item.args, item.uid),
                                                  literal_plus=True))
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
        start = 0
        for cut in [*cuts, len(stream)]:
            protocol.data_received(stream[start:cut])  # raises nothing, whatever comes
            start = cut
        out = transport.value()
        assert not transport.disconnecting, out[-300:]
        assert b"SERVERBUG" not in out, out[-2000:]  # (what an exception in a command says)
        for i in range(len(items)):
            answers = re.findall(rb"(?:^|\r\n)Tq%dx (OK|NO|BAD) " % i, out)
            assert len(answers) == 1, (i, items[i], out[-2000:])
        protocol.connection_lost(Failure(ConnectionResetError()))


@_SETTINGS
@given(st.binary(max_size=300).map(lambda b: bytes(b"a\r\n"[x % 3] for x in b)),
       st.integers(0, 400), st.one_of(st.none(), st.integers(0, 400)), st.integers(1, 7))
def test_big_messages_stream_as_the_wire_has_them(raw: bytes, start: int, length: int | None,
                                                   chunk: int) -> None:
    """crlf_chunks (the streaming of messages over 1 MiB) cuts BODY[]<start.length> as
    the whole message made CRLF would, wherever the chunks end (a CR at a chunk's end)."""
    wire = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    want = wire[start:] if length is None else wire[start:start + length]
    got = b"".join(crlf_chunks(io.BytesIO(raw), start, length, chunk))
    assert got == want


_name_chars = st.sampled_from(list("AbZ09 .-'\",;:<>@()\\=?~é\t"))
_words = st.text(st.sampled_from(list("abcXYZ019-_.+")), min_size=1, max_size=6)
_specs = st.builds(lambda a, b: f"{a}@{b}", _words, _words)
_mailbox_forms = st.one_of(
    _specs,
    st.builds(lambda n, a: f"{n} <{a}>", st.text(_name_chars, max_size=12), _specs),
    st.builds(lambda n, a: f'"{n}" <{a}>', st.text(_name_chars, max_size=12), _specs),
    st.builds(lambda n, a: f"{n}<{a}>", st.text(_name_chars, max_size=12), _specs),
    st.text(_name_chars, max_size=20),
)
address_values = st.lists(_mailbox_forms, min_size=1, max_size=4).map(", ".join)


@_SETTINGS
@given(st.one_of(address_values, st.lists(_mailbox_forms, min_size=1, max_size=3).map(
    ",".join)))
def test_quick_addresses_equal_the_writers(value: str) -> None:
    """The quick ENVELOPE addresses (fetch._addresses) are the writer's parse_addresses,
    for the forms it takes and for the ones it hands over (those with a group opened
    inside a group made harmless first: the writer loops for ever on them)."""
    assert _addresses(value) == parse_addresses(ungroup_nested(value))


def test_quick_envelopes_equal_the_writers_on_the_benchmark_messages() -> None:
    import random
    import sys

    sys.path.insert(0, str(Path(__file__).parents[3] / "scripts" / "bench"))
    import mail  # scripts/bench/mail.py: realistic headers

    rng = random.Random(5)
    for n in range(300):
        header = split_header(mail.imap_message(n, rng))[0]
        assert header_envelope(header) == envelope(header), n


# ---- SEARCH against a model

WORDS = ["apple", "Berry", "cherry", "date", "\u00e9clair"]
FLAG_CHOICES = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Work"]
DAYS = [date(2024, 1, d) for d in (1, 2, 3)]

messages = st.lists(st.tuples(
    st.sampled_from(WORDS), st.sampled_from(WORDS), st.lists(st.sampled_from(WORDS),
                                                             max_size=30),
    st.sets(st.sampled_from(FLAG_CHOICES)), st.sampled_from(DAYS),
    st.sampled_from([None, *DAYS]), st.booleans(),
), min_size=1, max_size=8)


def _leaf(n: int) -> st.SearchStrategy[SearchKey]:
    return st.one_of(
        st.sampled_from(["ALL", "SEEN", "UNSEEN", "ANSWERED", "UNANSWERED", "FLAGGED",
                         "UNFLAGGED", "DELETED", "UNDELETED", "DRAFT", "UNDRAFT", "NEW",
                         "OLD", "RECENT"]).map(SearchKey),
        st.tuples(st.sampled_from(["FROM", "SUBJECT", "BODY", "TEXT", "TO"]),
                  st.sampled_from([*WORDS, "APPLE", "berry", "CHERRY", "err", "x.test",
                                   "\u00c9CLAIR"])).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON",
                                   "SENTSINCE"]), st.sampled_from(DAYS)).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(["LARGER", "SMALLER"]), st.integers(50, 300)).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(["KEYWORD", "UNKEYWORD"]), st.sampled_from(
            ["$Work", "$work", "$Other"])).map(lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(["SET", "UID"]), st.integers(1, n + 1),
                  st.one_of(st.none(), st.integers(1, n + 1))).map(
            lambda t: SearchKey(t[0], (SequenceSet(((t[1], t[2]),)),))),
        st.tuples(st.sampled_from(["X-Tag", "x-tag", "Subject"]),
                  st.sampled_from(["", *WORDS])).map(lambda t: SearchKey("HEADER", t)),
    )


def _keys(n: int) -> st.SearchStrategy[SearchKey]:
    return st.recursive(_leaf(n), lambda inner: st.one_of(
        inner.map(lambda k: SearchKey("NOT", (k,))),
        st.tuples(inner, inner).map(lambda t: SearchKey("OR", t)),
        st.lists(inner, min_size=2, max_size=3).map(lambda ks: SearchKey("AND", tuple(ks))),
    ), max_leaves=6)


def _model(key: SearchKey, m: dict[str, Any]) -> bool:
    name, args = key.name, key.args
    flags = m["flags"]

    def text_of(header: str) -> str | None:
        value = m["msg"].get(header)
        if value is None:
            return None
        return str(email.header.make_header(email.header.decode_header(value)))

    simple = {
        "ALL": True, "SEEN": "\\Seen" in flags, "UNSEEN": "\\Seen" not in flags,
        "ANSWERED": "\\Answered" in flags, "UNANSWERED": "\\Answered" not in flags,
        "FLAGGED": "\\Flagged" in flags, "UNFLAGGED": "\\Flagged" not in flags,
        "DELETED": "\\Deleted" in flags, "UNDELETED": "\\Deleted" not in flags,
        "DRAFT": "\\Draft" in flags, "UNDRAFT": "\\Draft" not in flags,
        "RECENT": False, "NEW": False, "OLD": True,  # appended before any session
    }
    if name in simple:
        return simple[name]
    if name == "NOT":
        return not _model(args[0], m)
    if name == "OR":
        return _model(args[0], m) or _model(args[1], m)
    if name == "AND":
        return all(_model(k, m) for k in args)
    if name in ("FROM", "SUBJECT", "TO"):
        value = text_of(name.title())
        return value is not None and args[0].lower() in value.lower()
    if name == "HEADER":
        value = text_of(args[0])
        return value is not None and args[1].lower() in value.lower()
    if name == "BODY":
        return args[0].lower() in m["body"].lower()
    if name == "TEXT":
        return args[0].lower() in m["raw"].decode().lower()
    if name in ("BEFORE", "ON", "SINCE"):
        day = m["internal"]
    elif name.startswith("SENT"):
        day = m["sent"] or date(1970, 1, 1)
        name = name[4:]
    else:
        day = None
    if day is not None:
        return {"BEFORE": day < args[0], "ON": day == args[0], "SINCE": day >= args[0]}[name]
    if name == "LARGER":
        return m["size"] > args[0]
    if name == "SMALLER":
        return m["size"] < args[0]
    if name == "KEYWORD":
        return args[0].lower() in {f.lower() for f in flags}
    if name == "UNKEYWORD":
        return args[0].lower() not in {f.lower() for f in flags}
    if name in ("SET", "UID"):
        (lo, hi), = args[0].ranges
        hi = m["count"] if hi is None else hi
        lo, hi = min(lo, hi), max(lo, hi)
        return lo <= m["seq"] <= hi  # (UIDs are 1... in order here: the same numbers)
    raise AssertionError(name)


@_SETTINGS
@given(messages, st.data())
def test_search_equals_a_brute_force_model(specs: list[Any], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as root:
        box = Maildir(Path(root) / "alice", fsync=False)
        model = []
        for seq, (sender, subject, words, flags, day, sent, tagged) in enumerate(specs, 1):
            head = (f"From: {sender} <{sender.encode('ascii', 'replace').decode()}@x.test>\r\n"
                    f"Subject: {email.header.Header(subject, 'utf-8').encode()}\r\n")
            if sent is not None:
                head += f"Date: {sent.day} Jan 2024 23:30:00 -0700\r\n"
            if tagged:
                head += f"X-Tag: {words[0] if words else 'none'}\r\n"
            body = " ".join(words) + "\r\n"
            raw = (head + "\r\n" + body).encode("utf-8")
            when = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()
            box.append(raw, sorted(flags), date=when)
            local_day = datetime.fromtimestamp(when, UTC).astimezone().date()
            # (8-bit header text is UTF-8, as the server takes it)
            model.append({"flags": flags, "msg": email.message_from_string(
                raw.decode(), policy=email.policy.compat32), "body": body, "raw": raw,
                "internal": local_day, "sent": sent, "size": len(raw), "seq": seq,
                "count": len(specs)})
        protocol, transport = _session(root)
        # many keys a mailbox: the leaves all come up (each SEARCH on its own)
        keys = data.draw(st.lists(_keys(len(specs)), min_size=10, max_size=20))
        simple = [SearchKey(n) for n in ("OLD", "NEW", "RECENT", "SEEN", "UNSEEN", "DRAFT")]
        for key in [*simple, *keys]:
            transport.clear()
            protocol.data_received(b"Q SEARCH CHARSET UTF-8 "
                                   + format_search_key(key, top=True).replace(b"}\r\n", b"+}\r\n")
                                   + b"\r\n")
            out = transport.value()
            assert out.endswith(b"Q OK SEARCH completed\r\n"), out
            line = next(x for x in out.split(b"\r\n") if x.startswith(b"* SEARCH"))
            got = [int(n) for n in line.split()[2:]]
            assert got == [m["seq"] for m in model if _model(key, m)], key
        protocol.connection_lost(Failure(ConnectionResetError()))
