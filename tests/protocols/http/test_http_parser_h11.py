"""Our request parser against h11, the reference, under hypothesis; and split invariance.

Hypothesis builds request messages, valid and broken (bad tokens, control characters,
malformed framing, bare CR/LF, folding, conflicting lengths...). Both parsers read the
same bytes and must agree on accept/reject and, when both accept, on the method, target,
version, headers, body bytes, trailers, keep-alive and 100-continue.

Where netshell is deliberately stricter (or, once, more lenient) than h11, the generator
tags the input with the difference, and the test checks *our* answer for that tag instead
of h11's. Each tag is listed in DIFFERENCES with the RFC text and the issue that call for
it; nothing else is excused.

Then a plain property test: any bytes, cut anywhere, give the same events as the same
bytes fed at once, and nothing but ParseError ever escapes. Last, valid responses (every
framing, HEAD, 204, 304, HTTP/1.0) must parse as h11 parses them as a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import h11
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocols.http.message import Limits, ParseError
from protocols.http.parser import (
    Body,
    EndOfMessage,
    Event,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Deliberate differences from h11 (issue 7: "strict per RFC 9110/9112"). Every key is a
# tag the generator puts on an input that has the feature; "refuse" means we answer 400
# (or the status given) where h11 accepts; "accept" means we accept where h11 refuses.
DIFFERENCES = {
    # RFC 9112 section 6.3: duplicate Content-Length fields, even with equal values, or a
    # list of them, MAY be rejected; accepting them is a classic smuggling vector, so we
    # refuse them (issue 7, "duplicate or non-numeric Content-Length"). h11 merges them.
    "duplicate_content_length": "refuse",
    # RFC 9112 section 6.1: a server MAY reject a request with both Content-Length and
    # Transfer-Encoding; issue 7 requires 400. h11 ignores the Content-Length.
    "content_length_and_chunked": "refuse",
    # RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means the framing is
    # faulty. h11 accepts it.
    "chunked_in_http10": "refuse",
    # RFC 9112 section 5.2: a server MUST reject obs-fold with 400 or replace it with SP;
    # issue 7 requires 400. h11 joins the lines.
    "obs_fold": "refuse",
    # RFC 9112 section 2.2: a bare LF MAY be taken as a line end; we do not, since a front
    # end that disagrees is a smuggling vector (issue 7, "bare CR anywhere in the head"
    # and the same reasoning). h11 accepts LF line ends.
    "bare_lf": "refuse",
    # RFC 9110 section 5.5: field values with CTL characters other than HTAB are invalid;
    # recipients MAY keep them, we refuse them (issue 7, "NUL/control chars in values").
    # h11 refuses only NUL and whitespace controls.
    "control_in_value": "refuse",
    # RFC 9110 section 15.6.6: 505 for an unsupported major version. h11 parses
    # "HTTP/2.0" or "HTTP/0.9" request lines as if they were HTTP/1.
    "major_version": "refuse",
    # RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host;
    # HTTP/1.x with x > 1 is understood as 1.1 (RFC 9110 section 2.5). h11 requires Host
    # only for exactly "1.1".
    "no_host_above_1_1": "refuse",
    # RFC 9112 section 7.1.1: chunk-ext is `*( BWS ";" BWS name [ BWS "=" BWS value ] )`
    # and nothing else may follow the size: we refuse malformed extensions and trailing
    # whitespace; h11 accepts anything after ";" and whitespace before CRLF...
    "chunk_line_garbage": "refuse",
    # ...and, by the same grammar, we accept whitespace (BWS) before ";", which h11 refuses.
    "chunk_bws_before_ext": "accept",
    # RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before the
    # request line. h11 refuses it.
    "leading_empty_line": "accept",
    # RFC 9112 section 3.2: the request-target is one of four forms (origin, absolute,
    # authority for CONNECT, asterisk for OPTIONS), and a server that receives anything
    # else answers 400 (RFC 9112 section 3: an invalid request-line). h11 accepts any
    # run of visible characters, say ":/" or "*" in a GET.
    "target_form": "refuse",
}

# What we say differently even when we agree on accepting: RFC 9112 section 9.3 and
# Appendix C.2.2: an HTTP/1.0 request with "Connection: keep-alive" asks for a
# persistent connection, and we grant it (issue brief); h11 never keeps HTTP/1.0 alive.
KEEP_ALIVE_HTTP10 = "http10_keep_alive"

# And when we wait where h11 has refused already: h11 refuses a head whose first byte
# (below "!", and not the CRLF of an empty line) cannot start a request line before the
# head has ended (its is_next_line_obviously_invalid_request_line, a heuristic); we read
# the whole head first, and refuse it then (or the header timeout ends the wait). The
# generator tags such an input; the test then checks that we refuse the head once it ends.
H11_EARLY_REFUSAL = "h11_early_refusal"

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHARS = "".join(chr(c) for c in range(0x21, 0x7F))
OBS_TEXT = "".join(chr(c) for c in range(0x80, 0x100))
FRAMING_NAMES = {"content-length", "transfer-encoding", "host", "connection", "expect"}


@dataclass
class Case:
    """A generated request, what it should parse to, and the differences it carries."""

    data: bytes
    tags: set[str] = field(default_factory=set)
    body: bytes = b""
    h11_data: bytes = b""  # the same message as h11 should read it (see DIFFERENCES)


def sometimes(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.integers(0, one_in - 1)) == 0


# The forms of a request-target (RFC 9112 section 3.2), written from the RFC and not from
# our parser: what the generator makes is tagged "target_form" when it is none of them.
# Origin-form is "/" and visible characters (both parsers take any, as servers do).
# Absolute-form is the http(s) kind (RFC 9110 section 4.2): scheme "://" authority, with
# no userinfo (RFC 9110 section 4.2.4), then a path and query.
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]*)"
ORIGIN_FORM = re.compile(r"/[\x21-\x7e]*")
ABSOLUTE_FORM = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*://{_HOST}(?::[0-9]*)?(?:[/?][\x21-\x7e]*)?")
AUTHORITY_FORM = re.compile(rf"{_HOST}:[0-9]+")


def is_a_target_form(method: str, target: str) -> bool:
    """Whether ``target`` is one of the four request-target forms, for ``method``."""
    if method == "CONNECT":  # authority-form, and only that (RFC 9112 section 3.2.3)
        return AUTHORITY_FORM.fullmatch(target) is not None
    if ORIGIN_FORM.fullmatch(target):
        return True
    if target == "*":
        return method == "OPTIONS"
    return ABSOLUTE_FORM.fullmatch(target) is not None


tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
field_names = tokens.filter(lambda n: n.lower() not in FRAMING_NAMES)
value_chars = st.sampled_from(VCHARS + OBS_TEXT + " \t")
field_values = st.text(value_chars, max_size=20)


@st.composite
def injected(draw: st.DrawFn, text: str, kind: str, tags: set[str], broken: bool) -> str:
    """``text`` with one bad character put into it (sometimes), tagging what h11 forgives."""
    if not broken or not sometimes(draw, 25):
        return text
    bad = draw(
        st.sampled_from(
            [
                " ",
                "\t",
                "\x00",
                "\x01",
                "\x1f",
                "\x7f",
                "\x0b",
                "\r",
                "\n",
                ":",
                "(",
                "\x80",
                "\xff",
            ]
        )
    )
    at = draw(st.integers(0, len(text)))
    if kind == "name" and at == 0 and bad in " \t":
        tags.add("obs_fold")  # a line that starts with whitespace continues the one before
    if kind == "value":
        if bad in "\x01\x1f\x7f":
            tags.add("control_in_value")
        elif bad == "\n":
            tags.add("bare_lf")  # h11 takes it as a line end (maybe starting a folded line)
    elif bad == "\n":
        tags.add("bare_lf")
    return text[:at] + bad + text[at:]


absolute_targets = st.builds(
    lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(["example.org", "a", "127.0.0.1", "[::1]", "xn--bcher-kva.example"]),
    st.sampled_from(["", ":80", ":8080", ":"]),
    st.one_of(st.just(""), st.text(st.sampled_from(VCHARS), max_size=20).map(lambda t: "/" + t)),
)


@st.composite
def chunked_body(draw: st.DrawFn, tags: set[str], broken: bool) -> tuple[str, str, bytes]:
    """A random body in chunked framing (latin-1 text), the same as h11 should get it, and
    the body it carries. The two framings differ only where a documented difference is."""
    ours: list[str] = []
    h11s: list[str] = []
    body = b""
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(min_size=1, max_size=20))
        size = f"{len(data):x}"
        if sometimes(draw, 3):
            size = size.upper()
        if sometimes(draw, 5):
            size = "0" * draw(st.integers(1, 3)) + size
        ext = bws = ""
        if sometimes(draw, 3):
            ext = draw(st.sampled_from([";a", ";a=b", ';name="q v"', ";a;b=1", r';q="\\"']))
            if broken and sometimes(draw, 4):
                bws = draw(st.sampled_from([" ", "\t", "  "]))
                tags.add("chunk_bws_before_ext")
        if broken and sometimes(draw, 10):
            ext += draw(st.sampled_from([" ", "; a b", ";", ";=x", "; a=b c", ';a="x']))
            tags.add("chunk_line_garbage")
        text = data.decode("latin-1")
        ours.append(f"{size}{bws}{ext}\r\n{text}\r\n")
        h11s.append(f"{size}{ext}\r\n{text}\r\n")
        body += data
    end = ["0\r\n"]
    for _ in range(draw(st.integers(0, 2))):
        end.append(f"{draw(field_names)}: {draw(field_values)}\r\n")
    end.append("\r\n")
    return "".join(ours + end), "".join(h11s + end), body


@st.composite
def requests(draw: st.DrawFn, broken: bool = True) -> Case:
    """A request message: with ``broken``, any of many faults may be put into it."""
    tags: set[str] = set()
    method = draw(st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]), tokens))
    method = draw(injected(method, "method", tags, broken))
    form = draw(st.sampled_from(["origin"] * 8 + ["absolute", "asterisk"])) if broken else "origin"
    if form == "origin":
        target = "/" + draw(st.text(st.sampled_from(VCHARS), max_size=20))
        # A bad character put first ("(/", ":/") makes a target of no form at all.
        target = draw(injected(target, "target", tags, broken))
    elif form == "absolute":
        target = draw(absolute_targets)
    else:
        target = "*"  # asterisk-form: for OPTIONS only
    if not is_a_target_form(method, target):
        tags.add("target_form")
    minor = "1"
    version = "HTTP/1.1"
    if not broken:
        version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
        minor = version[-1]
    elif sometimes(draw, 4):
        version = draw(
            st.sampled_from(
                [
                    "HTTP/1.0",
                    "HTTP/1.7",
                    "HTTP/2.0",
                    "HTTP/0.9",
                    "HTTP/1.10",
                    "HTTP/1",
                    "http/1.1",
                    "HTTP/1.x",
                ]
            )
        )
        if version in ("HTTP/2.0", "HTTP/0.9"):
            tags.add("major_version")
        minor = version[-1]
    fields: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(injected(draw(field_names), "name", tags, broken))
        fields.append((name, draw(injected(draw(field_values), "value", tags, broken))))
    hosts = draw(st.sampled_from([1] * 8 + [0, 2])) if broken else 1
    fields[:0] = [("Host", draw(st.sampled_from(["example.org", "a:80", ""])))] * hosts
    if hosts == 0 and version == "HTTP/1.7":
        tags.add("no_host_above_1_1")

    framings = ["none", "length", "chunked"] * 3 + (["both", "other"] if broken else [])
    framing = draw(st.sampled_from(framings))
    body_text = h11_body_text = ""
    body = b""
    if framing in ("length", "both"):
        body = draw(st.binary(max_size=30))
        length = str(len(body))
        spelling = (
            draw(
                st.sampled_from(
                    ["plain"] * 6 + ["dup", "list", "differ", "signed", "hex", "empty", "junk"]
                )
            )
            if broken
            else "plain"
        )
        if spelling == "dup":
            fields.append(("Content-Length", length))
            tags.add("duplicate_content_length")
        elif spelling == "list":
            length = f"{length}, {length}"
            tags.add("duplicate_content_length")
        elif spelling == "differ":
            fields.append(("Content-Length", str(len(body) + 1)))
        elif spelling == "signed":
            length = "+" + length
        elif spelling == "hex":
            length = "0x" + length
        elif spelling == "empty":
            length = ""
        elif spelling == "junk":
            length += "a"
        fields.append(("Content-Length", length))
        body_text = h11_body_text = body.decode("latin-1")
    if framing in ("chunked", "both"):
        coding = draw(st.sampled_from(["chunked", "Chunked", "CHUNKED"]))
        fields.append(("Transfer-Encoding", coding))
        body_text, h11_body_text, body = draw(chunked_body(tags, broken))
        if framing == "both":
            tags.add("content_length_and_chunked")
        if minor == "0" and version == "HTTP/1.0":
            tags.add("chunked_in_http10")
    if framing == "other":
        fields.append(
            (
                "Transfer-Encoding",
                draw(
                    st.sampled_from(
                        ["gzip", "gzip, chunked", "chunked, gzip", "identity", "chunked;q=1"]
                    )
                ),
            )
        )
        body_text = h11_body_text = "0\r\n\r\n"
    connection = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive, Upgrade"]))
    if connection:
        fields.append(("Connection", connection))
        if version == "HTTP/1.0" and "close" not in connection.lower():
            tags.add(KEEP_ALIVE_HTTP10)
    if sometimes(draw, 4):
        fields.append(("Expect", "100-continue"))
    fields = draw(st.permutations(fields))

    lines = [f"{method} {target} {version}"] + [f"{n}: {v}" for n, v in fields]
    if broken and fields and sometimes(draw, 12):
        at = draw(st.integers(1, len(lines) - 1))
        lines.insert(at + 1, draw(st.sampled_from([" folded", "\tfolded", " "])))
        tags.add("obs_fold")
    ends = ["\r\n"] * len(lines)
    if broken and sometimes(draw, 12):
        ends[draw(st.integers(0, len(ends) - 1))] = draw(st.sampled_from(["\n", "\r"]))
        if "\n" in ends:
            tags.add("bare_lf")
    head = "".join(line + end for line, end in zip(lines, ends, strict=True)) + "\r\n"
    data = (head + body_text).encode("latin-1")
    case = Case(data, tags, body, h11_data=(head + h11_body_text).encode("latin-1"))
    if broken and sometimes(draw, 10):
        case.data = b"\r\n" * draw(st.integers(1, 2)) + data
        tags.add("leading_empty_line")
    # (What h11 reads: without the leading empty lines we skip and it would refuse.)
    if case.h11_data[:1] < b"!" and not case.h11_data.startswith(b"\r\n"):
        tags.add(H11_EARLY_REFUSAL)
    return case


# --- the two parsers, reduced to comparable outcomes ---------------------------------------------


@dataclass
class Parsed:
    method: str
    target: str
    version: tuple[int, int]
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]]
    keep_alive: bool
    expect_continue: bool


Outcome = Parsed | str  # "refused" or "incomplete"


def ours(data: bytes) -> Outcome:
    p = RequestParser(Limits())
    try:
        events = p.feed(data)
    except ParseError:
        return "refused"
    head = events[0] if events else None
    if not isinstance(head, RequestHead) or not isinstance(events[-1], EndOfMessage):
        return "incomplete"
    end = next(i for i, e in enumerate(events) if isinstance(e, EndOfMessage))
    trailers = events[end]
    assert isinstance(trailers, EndOfMessage)
    return Parsed(
        head.method,
        head.target,
        head.version,
        [(n.lower(), v) for n, v in head.headers.items()],
        b"".join(e.data for e in events[:end] if isinstance(e, Body)),
        [(n.lower(), v) for n, v in trailers.trailers.items()],
        head.keep_alive,
        head.expect_continue,
    )


def theirs(data: bytes) -> Outcome:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=65536)
    conn.receive_data(data)
    body = b""
    try:
        request = conn.next_event()
        if request is h11.NEED_DATA:
            return "incomplete"
        assert isinstance(request, h11.Request)
        expect_continue = conn.they_are_waiting_for_100_continue
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return "incomplete"
            if isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError:
        return "refused"
    major, minor = request.http_version.decode().split(".")
    return Parsed(
        request.method.decode("latin-1"),
        request.target.decode("latin-1"),
        (int(major), int(minor)),
        [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers],
        body,
        [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers],
        conn.their_state is h11.DONE,
        expect_continue,
    )


def normalised(parsed: Parsed) -> Parsed:
    # h11 lowers the value of Transfer-Encoding (we keep it as sent): compare the meaning.
    parsed.headers = [(n, v.lower() if n == "transfer-encoding" else v) for n, v in parsed.headers]
    return parsed


# --- the differential test ------------------------------------------------------------------


@SETTINGS
@given(requests())
def test_agrees_with_h11_except_where_documented(case: Case) -> None:
    mine = ours(case.data)
    ref = theirs(case.h11_data)
    if H11_EARLY_REFUSAL in case.tags and mine == "incomplete" and ref == "refused":
        assert ours(case.data + b"\r\n\r\n") == "refused", case.data
        return
    refusals = {t for t in case.tags if DIFFERENCES.get(t) == "refuse"}
    if refusals:
        # Deliberately stricter: we must refuse, whatever h11 does (unless the message
        # never ends, say a bare CR for its last line end, and both wait for more).
        assert mine == "refused" or mine == ref == "incomplete", (refusals, case.data)
        return
    if isinstance(mine, Parsed) and isinstance(ref, Parsed):
        mine, ref = normalised(mine), normalised(ref)
        if KEEP_ALIVE_HTTP10 in case.tags:
            assert mine.keep_alive is True
            ref.keep_alive = True
        assert mine == ref
        assert mine.body == case.body
    else:
        assert mine == ref, (case.tags, case.data)


@SETTINGS
@given(requests(broken=False), st.data())
def test_a_cut_valid_request_is_incomplete_for_both(case: Case, data: st.DataObject) -> None:
    assume(not case.tags)
    assert isinstance(theirs(case.data), Parsed)
    cut = data.draw(st.integers(1, len(case.data) - 1))
    assert ours(case.data[:cut]) == theirs(case.data[:cut]) == "incomplete"


# Fixed examples of each documented difference, so a change in either parser shows up
# even on a run where hypothesis happens not to draw it.
@pytest.mark.parametrize(
    ("tag", "data"),
    [
        (
            "duplicate_content_length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        ),
        (
            "duplicate_content_length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
        ),
        (
            "content_length_and_chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n",
        ),
        ("chunked_in_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs_fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
        ("bare_lf", b"GET / HTTP/1.1\nHost: a\n\n"),
        ("control_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"),
        ("major_version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("target_form", b"GET :/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("target_form", b"GET (/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("target_form", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("target_form", b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("no_host_above_1_1", b"GET / HTTP/1.7\r\n\r\n"),
        (
            "chunk_line_garbage",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n",
        ),
    ],
)
def test_documented_refusal_where_h11_accepts(tag: str, data: bytes) -> None:
    assert DIFFERENCES[tag] == "refuse"
    assert isinstance(theirs(data), Parsed)
    assert ours(data) == "refused"


@pytest.mark.parametrize(
    ("tag", "data"),
    [
        (
            "chunk_bws_before_ext",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1 ;a=b\r\nx\r\n0\r\n\r\n",
        ),
        ("leading_empty_line", b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ],
)
def test_documented_acceptance_where_h11_refuses(tag: str, data: bytes) -> None:
    assert DIFFERENCES[tag] == "accept"
    assert theirs(data) == "refused"
    assert isinstance(ours(data), Parsed)


@pytest.mark.parametrize(
    ("method", "target", "valid"),
    [
        ("GET", "/a?b", True),
        ("GET", "http://example.org:80/x", True),
        ("OPTIONS", "*", True),
        ("CONNECT", "example.org:443", True),
        ("GET", ":/", False),  # the one a run found untagged: no scheme before the colon
        ("GET", "(/", False),
        ("GET", "*", False),
        ("CONNECT", "/", False),
        ("GET", "http:/x", False),
        ("GET", "http://user@host/", False),
    ],
)
def test_the_generator_knows_the_target_forms(method: str, target: str, valid: bool) -> None:
    assert is_a_target_form(method, target) is valid


@pytest.mark.parametrize(
    "data", [b" GET / HTTP/1.1\r\nHost: a\r\n", b"\x01GET / HTTP/1.1\r\n", b"\rGET / HTTP/1.1\r"]
)
def test_h11_refuses_early_where_we_wait_for_the_end_of_the_head(data: bytes) -> None:
    assert theirs(data) == "refused"
    for lead in (b"", b"\r\n"):  # after an empty line we skip, the same
        assert ours(lead + data) == "incomplete"
        assert ours(lead + data + b"\r\n\r\n") == "refused"


def test_http10_keep_alive_is_granted_where_h11_closes() -> None:
    data = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    mine, ref = ours(data), theirs(data)
    assert isinstance(mine, Parsed) and isinstance(ref, Parsed)
    assert (mine.keep_alive, ref.keep_alive) == (True, False)


# --- split invariance ------------------------------------------------------------------------


def merged(events: list[Event]) -> list[Event]:
    """Events with neighbouring Body pieces joined (how a body is cut is not an event)."""
    out: list[Event] = []
    for e in events:
        if isinstance(e, Body) and out and isinstance(out[-1], Body):
            out[-1] = Body(out[-1].data + e.data)
        elif isinstance(e, Body) and not e.data:
            continue
        else:
            out.append(e)
    return out


def run(pieces: list[bytes], limits: Limits) -> tuple[list[Event], int | None]:
    """Every event from feeding ``pieces`` then EOF, and the error status (None if none)."""
    p = RequestParser(limits)
    events: list[Event] = []
    try:
        for piece in pieces:
            events += p.feed(piece)
        events += p.feed_eof()
    except ParseError as e:
        return merged(events + list(e.events)), e.status
    return merged(events), None


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({min(p, len(data)) for p in points})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# Small limits so that the limit checks are cut across too.
SMALL = Limits(
    max_request_line=60, max_header_bytes=200, max_headers=6, max_body=80, max_chunk_line=24
)

streams = st.one_of(
    st.binary(max_size=300),
    st.lists(requests().map(lambda c: c.data), min_size=1, max_size=3).map(b"".join),
    st.lists(
        st.sampled_from(
            [
                b"GET / HTTP/1.1\r\n",
                b"Host: a\r\n",
                b"\r\n",
                b"\n",
                b"\r",
                b"Content-Length: 3\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"3\r\nabc\r\n",
                b"0\r\n",
                b"abc",
                b" x",
                b":",
            ]
        ),
        max_size=30,
    ).map(b"".join),
)


@SETTINGS
@given(streams, st.lists(st.integers(0, 400), max_size=12), st.sampled_from([Limits(), SMALL]))
def test_any_split_gives_the_same_events(data: bytes, points: list[int], limits: Limits) -> None:
    whole = run([data], limits)
    split = run(cuts(data, points), limits)
    assert split[0] == whole[0]
    # Both refuse or neither; the status may differ when two limits are broken at once
    # and the split lets one be seen before the other.
    assert (split[1] is None) == (whole[1] is None)
    if whole[1] is not None and {whole[1], split[1]} - {400, 414, 431}:
        assert split[1] == whole[1]


@SETTINGS
@given(streams)
def test_byte_by_byte_gives_the_same_events(data: bytes) -> None:
    whole = run([data], Limits())
    single = run([data[i : i + 1] for i in range(len(data))], Limits())
    assert single[0] == whole[0] and (single[1] is None) == (whole[1] is None)


# --- responses: our ResponseParser against h11 as a client ----------------------------------------


@st.composite
def responses(draw: st.DrawFn) -> tuple[str, bytes, bytes]:
    """(request method, response bytes, the body it carries): valid responses only."""
    method = draw(st.sampled_from(["GET", "GET", "POST", "HEAD"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503]))
    reason = draw(st.text(st.sampled_from(VCHARS + " "), max_size=12)).strip()
    minor = draw(st.sampled_from(["1", "1", "0"]))
    fields = [(draw(field_names), draw(field_values)) for _ in range(draw(st.integers(0, 3)))]
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if minor == "0" and framing == "chunked":
        framing = "length"
    no_body = method == "HEAD" or status in (204, 304)
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
        wire = body
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
        wire = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        wire = body
    if no_body:
        wire, body = b"", b""
    fields = draw(st.permutations(fields))
    head = f"HTTP/1.{minor} {status} {reason}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
    return method, head.encode("latin-1") + b"\r\n" + wire, body


@SETTINGS
@given(responses())
def test_responses_agree_with_h11(case: tuple[str, bytes, bytes]) -> None:
    method, data, body = case
    ours_parser = ResponseParser()
    ours_parser.expect(method)
    events = ours_parser.feed(data)
    if not events or not isinstance(events[-1], EndOfMessage):
        events += ours_parser.feed_eof()  # a body that the close ends
    head = events[0]
    assert isinstance(head, ResponseHead) and isinstance(events[-1], EndOfMessage)

    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    theirs_body = b""
    response = conn.next_event()
    assert isinstance(response, h11.Response)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(b"")  # the server closes
            continue
        if isinstance(event, h11.Data):
            theirs_body += bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            break

    assert head.status == response.status_code
    assert head.reason == response.reason.decode("latin-1")
    assert head.version == (1, int(response.http_version.decode()[-1]))
    assert [(n.lower(), v) for n, v in head.headers.items()] == [
        (
            n.decode(),
            v.decode("latin-1").lower() if n == b"transfer-encoding" else v.decode("latin-1"),
        )
        for n, v in response.headers
    ]
    ours_body = b"".join(e.data for e in events if isinstance(e, Body))
    assert ours_body == theirs_body == body
