r"""Endpoints: parsing descriptions (no I/O), writing them back, and acting on them.

The parser is tested on its own: every kind and option, every class of error
with its message, and hypothesis properties (what format() writes, parse()
reads back to the same; no text makes parse() raise anything but ValueError).
How parsed endpoints map onto reactor calls is checked against a recording
fake reactor; real round trips over TCP, TCP/IPv6, Unix sockets and UDP use
the ``reactor`` fixture and wait only on the events they care about.
"""

from __future__ import annotations

import doctest
import os
import socket
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import netshell as ns
from netshell import endpoints
from netshell.endpoints import Endpoint, EndpointError, connect, format, listen, parse
from netshell.listener import Listener
from netshell.udp import DatagramListener

# ---- parsing: what is accepted

VALID = [
    # listen
    ("tcp:8080", "listen", Endpoint("tcp", (8080,))),
    ("tcp:0", "listen", Endpoint("tcp", (0,))),
    ("tcp:65535", "listen", Endpoint("tcp", (65535,))),
    (
        "tcp:8080:interface=0.0.0.0:backlog=50",
        "listen",
        Endpoint("tcp", (8080,), {"interface": "0.0.0.0", "backlog": 50}),
    ),
    ("tcp:80:interface=localhost", "listen", Endpoint("tcp", (80,), {"interface": "localhost"})),
    (r"tcp:80:interface=\:\:1", "listen", Endpoint("tcp", (80,), {"interface": "::1"})),
    ("tcp6:8080", "listen", Endpoint("tcp6", (8080,))),
    (r"tcp6:8080:interface=\:\:1", "listen", Endpoint("tcp6", (8080,), {"interface": "::1"})),
    ("tcp6:8080:interface=[::]", "listen", Endpoint("tcp6", (8080,), {"interface": "::"})),
    ("tcp6:1:backlog=0", "listen", Endpoint("tcp6", (1,), {"backlog": 0})),
    ("unix:/tmp/s.sock", "listen", Endpoint("unix", ("/tmp/s.sock",))),
    ("unix:/tmp/s.sock:mode=0o660", "listen", Endpoint("unix", ("/tmp/s.sock",), {"mode": 0o660})),
    ("unix:/tmp/s.sock:mode=640", "listen", Endpoint("unix", ("/tmp/s.sock",), {"mode": 0o640})),
    (
        "unix:s.sock:mode=0:backlog=5",
        "listen",
        Endpoint("unix", ("s.sock",), {"mode": 0, "backlog": 5}),
    ),
    (r"unix:/tmp/a\:b.sock", "listen", Endpoint("unix", ("/tmp/a:b.sock",))),
    (r"unix:/tmp/back\\slash", "listen", Endpoint("unix", ("/tmp/back\\slash",))),
    (r"unix:/tmp/a\=b", "listen", Endpoint("unix", ("/tmp/a=b",))),
    ("unix:[odd]", "listen", Endpoint("unix", ("[odd]",))),
    ("udp:5353", "listen", Endpoint("udp", (5353,))),
    ("udp:0:interface=127.0.0.2", "listen", Endpoint("udp", (0,), {"interface": "127.0.0.2"})),
    (
        "tls:8443:cert=c.pem:key=k.pem",
        "listen",
        Endpoint("tls", (8443,), {"cert": "c.pem", "key": "k.pem"}),
    ),
    (
        "tls:8443:cert=/etc/c.pem:key=/etc/k.pem:interface=0.0.0.0:backlog=9",
        "listen",
        Endpoint(
            "tls",
            (8443,),
            {"cert": "/etc/c.pem", "key": "/etc/k.pem", "interface": "0.0.0.0", "backlog": 9},
        ),
    ),
    # connect
    ("tcp:example.org:80", "connect", Endpoint("tcp", ("example.org", 80), mode="connect")),
    ("tcp:127.0.0.1:1", "connect", Endpoint("tcp", ("127.0.0.1", 1), mode="connect")),
    (
        "tcp:example.org:80:timeout=5",
        "connect",
        Endpoint("tcp", ("example.org", 80), {"timeout": 5.0}, mode="connect"),
    ),
    (
        "tcp:h:80:timeout=0.25",
        "connect",
        Endpoint("tcp", ("h", 80), {"timeout": 0.25}, mode="connect"),
    ),
    (
        r"tcp:h:80:bind=10.0.0.2\:4000",
        "connect",
        Endpoint("tcp", ("h", 80), {"bind": ("10.0.0.2", 4000)}, mode="connect"),
    ),
    (
        "tcp:h:80:bind=10.0.0.2",
        "connect",
        Endpoint("tcp", ("h", 80), {"bind": ("10.0.0.2", 0)}, mode="connect"),
    ),
    ("tcp:[::1]:80", "connect", Endpoint("tcp", ("::1", 80), mode="connect")),
    (r"tcp6:\:\:1:8080", "connect", Endpoint("tcp6", ("::1", 8080), mode="connect")),
    ("tcp6:[::1]:8080", "connect", Endpoint("tcp6", ("::1", 8080), mode="connect")),
    ("tcp6:[fe80::1%lo]:22", "connect", Endpoint("tcp6", ("fe80::1%lo", 22), mode="connect")),
    (
        r"tcp6:[::1]:80:timeout=2:bind=[::1]\:5000",
        "connect",
        Endpoint("tcp6", ("::1", 80), {"timeout": 2.0, "bind": ("::1", 5000)}, mode="connect"),
    ),
    (
        r"tcp6:[::1]:80:bind=\:\:1",
        "connect",
        Endpoint("tcp6", ("::1", 80), {"bind": ("::1", 0)}, mode="connect"),
    ),
    ("unix:/tmp/s.sock", "connect", Endpoint("unix", ("/tmp/s.sock",), mode="connect")),
    (
        "unix:/tmp/s.sock:timeout=3",
        "connect",
        Endpoint("unix", ("/tmp/s.sock",), {"timeout": 3.0}, mode="connect"),
    ),
    ("tls:example.org:443", "connect", Endpoint("tls", ("example.org", 443), mode="connect")),
    (
        "tls:example.org:443:ca=ca.pem:verify=no",
        "connect",
        Endpoint("tls", ("example.org", 443), {"ca": "ca.pem", "verify": False}, mode="connect"),
    ),
    (
        "tls:h:443:verify=YES:timeout=1",
        "connect",
        Endpoint("tls", ("h", 443), {"verify": True, "timeout": 1.0}, mode="connect"),
    ),
]


@pytest.mark.parametrize(("description", "mode", "expected"), VALID, ids=[v[0] for v in VALID])
def test_parse_valid(description: str, mode: str, expected: Endpoint) -> None:
    ep = parse(description, mode)
    assert ep == expected
    assert parse(format(ep), mode) == ep


def test_parse_defaults_to_listen() -> None:
    assert parse("tcp:80").mode == "listen"


def test_options_hold_only_what_was_written() -> None:
    assert parse("tcp:80").options == {}
    assert parse("tcp:h:80", "connect").options == {}


@pytest.mark.parametrize(
    ("endpoint", "text"),
    [
        (Endpoint("tcp", (8080,)), "tcp:8080"),
        (Endpoint("tcp6", (0,), {"interface": "::1"}), r"tcp6:0:interface=\:\:1"),
        (Endpoint("tcp6", ("::1", 80), mode="connect"), r"tcp6:\:\:1:80"),
        (Endpoint("unix", ("/a:b=c",), {"mode": 0o640}), r"unix:/a\:b\=c:mode=0o640"),
        (
            Endpoint("tcp", ("h", 1), {"timeout": 30.0, "bind": ("::1", 7)}, mode="connect"),
            r"tcp:h:1:timeout=30:bind=[\:\:1]\:7",
        ),
        (Endpoint("tcp", ("h", 1), {"timeout": 1e-5}, mode="connect"), "tcp:h:1:timeout=0.00001"),
        (Endpoint("tls", ("h", 1), {"verify": False}, mode="connect"), "tls:h:1:verify=no"),
        # a leading "[" with no "]" of its own would run into the next field
        (Endpoint("tls", (0,), {"cert": "[", "key": "]"}), r"tls:0:cert=\[:key=]"),
        (Endpoint("unix", ("[a:b]",)), r"unix:[a\:b]"),
    ],
)
def test_format(endpoint: Endpoint, text: str) -> None:
    assert format(endpoint) == text
    assert str(endpoint) == text


# ---- parsing: what is refused, and what the message says


ERRORS = [
    # (description, mode, a fragment the message must hold)
    ("", "listen", "it is empty"),
    ("foo:80", "listen", "unknown kind 'foo'; known kinds: tcp, tcp6, unix, udp, tls"),
    ("TCP:80", "listen", "unknown kind 'TCP'"),
    (":80", "listen", "the kind is missing"),
    ("tcp", "listen", "missing port: expected tcp:PORT"),
    ("tcp:", "listen", "missing port"),
    ("udp", "listen", "missing port: expected udp:PORT"),
    ("tcp:example.org", "connect", "missing port: expected tcp:HOST:PORT"),
    ("tcp:8080", "connect", "missing port: expected tcp:HOST:PORT"),
    ("tcp::80", "connect", "missing host"),
    ("unix", "listen", "missing path: expected unix:PATH"),
    ("unix:", "connect", "missing path"),
    ("tcp:http", "listen", "port 'http' is not a number"),
    ("tcp:-1", "listen", "port -1 is out of range (0-65535)"),
    ("tcp:+80", "listen", "port '+80' is not a number"),
    ("tcp:\uff18\uff10", "listen", "port '\uff18\uff10' is not a number"),  # fullwidth 80
    ("tcp:65536", "listen", "port 65536 is out of range (0-65535)"),
    ("tcp:h:99999", "connect", "port 99999 is out of range"),
    ("tcp:h:0", "connect", "port 0 cannot be connected to"),
    (
        "tcp:80:colour=red",
        "listen",
        "unknown option 'colour' for tcp listen; allowed: backlog, interface",
    ),
    (
        "unix:/s:interface=x",
        "listen",
        "unknown option 'interface' for unix listen; allowed: backlog, mode",
    ),
    ("udp:53:backlog=1", "listen", "unknown option 'backlog' for udp listen; allowed: interface"),
    ("tcp:80:timeout=1", "listen", "unknown option 'timeout'"),
    (
        "tcp:h:80:backlog=1",
        "connect",
        "unknown option 'backlog' for tcp connect; allowed: bind, timeout",
    ),
    ("tls:443:verify=no", "listen", "unknown option 'verify' for tls listen"),
    ("tls:h:443:cert=c", "connect", "allowed: bind, ca, timeout, verify"),
    ("tcp:80:=5", "listen", "option '5' has no name"),
    ("tcp:80:backlog=x", "listen", "bad value for backlog: 'x'"),
    ("tcp:80:backlog=-1", "listen", "bad value for backlog: '-1'"),
    ("tcp:80:backlog=", "listen", "option backlog has no value"),
    ("unix:/s:mode=999", "listen", "bad value for mode: '999'"),
    ("unix:/s:mode=0o8", "listen", "bad value for mode: '0o8'"),
    ("unix:/s:mode=77777", "listen", "bad value for mode: '77777'"),
    ("tcp:h:1:timeout=soon", "connect", "bad value for timeout: 'soon'"),
    ("tcp:h:1:timeout=0", "connect", "bad value for timeout: '0'"),
    ("tcp:h:1:timeout=-2", "connect", "bad value for timeout: '-2'"),
    ("tcp:h:1:timeout=inf", "connect", "bad value for timeout: 'inf'"),
    ("tcp:h:1:timeout=nan", "connect", "bad value for timeout: 'nan'"),
    ("tls:h:1:verify=maybe", "connect", "bad value for verify: 'maybe'"),
    (r"tcp:h:1:bind=h\:x", "connect", "bind port 'x' is not a number"),
    (r"tcp:h:1:bind=[::1]x", "connect", "bad value for bind"),
    ("tcp:80:backlog=1:backlog=2", "listen", "option 'backlog' is given twice"),
    ("tcp:h:1:timeout=1:timeout=1", "connect", "option 'timeout' is given twice"),
    ("tcp:80:81", "listen", "unexpected field '81': expected tcp:PORT"),
    ("tcp6:::1:80", "connect", r"a colon inside a field is written \:"),
    ("tcp6:::1:80", "connect", "an IPv6 host may be written [::1]"),
    ("unix:/a:b", "listen", "unexpected field 'b'"),
    ("tcp:backlog=5:80", "listen", "positional field '80' comes after options"),
    ("tcp6:example.org:80", "connect", "host 'example.org' is not an IPv6 address"),
    ("tcp6:127.0.0.1:80", "connect", "which tcp6 needs"),
    ("tcp6:80:interface=127.0.0.1", "listen", "interface '127.0.0.1' is not an IPv6 address"),
    ("tcp:[example.org]:80", "connect", "host [example.org] is not an IPv6 address"),
    ("tcp:a b:80", "connect", "host 'a b' is not a host name or address"),
    ("tcp:http//x:80", "connect", "is not a host name or address"),
    ("unix:/tmp/x\x00y", "listen", "contains a NUL character"),
    ("unix:/tmp/x\\", "listen", "ends with a lone backslash"),
    ("udp:h:53", "connect", "udp is not supported for connect"),
]


@pytest.mark.parametrize(
    ("description", "mode", "fragment"), ERRORS, ids=[f"{e[0]!r}-{e[2]}" for e in ERRORS]
)
def test_parse_error_names_the_bad_part(description: str, mode: str, fragment: str) -> None:
    with pytest.raises(EndpointError) as info:
        parse(description, mode)
    message = str(info.value)
    assert message.startswith(f"endpoint {description!r}: ")
    assert fragment in message
    assert info.value.description == description
    assert fragment in info.value.problem


def test_endpoint_error_is_a_value_error_and_a_netshell_error() -> None:
    assert issubclass(EndpointError, ValueError)
    assert issubclass(EndpointError, ns.NetshellError)


def test_parse_rejects_bad_mode_and_non_text() -> None:
    with pytest.raises(ValueError, match="mode must be 'listen' or 'connect'"):
        parse("tcp:80", mode="serve")
    with pytest.raises(TypeError, match="not bytes"):
        parse(b"tcp:80")  # type: ignore[arg-type]


# ---- hypothesis: format and parse agree; no text breaks the parser

_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
_names = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6}){0,2}", fullmatch=True)
_any_host = st.one_of(_ipv4, _ipv6, _names)
_ports = st.integers(0, 65535)
_connect_ports = st.integers(1, 65535)
_tricky = st.sampled_from(list(":\\=[]/ .%"))
_paths = st.text(
    st.one_of(_tricky, st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
    min_size=1,
    max_size=30,
)
_timeouts = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
_backlogs = st.integers(0, 2**31 - 1)


def _listen_endpoints() -> st.SearchStrategy[Endpoint]:
    def ep(kind: str, args: st.SearchStrategy[Any], **options: Any) -> st.SearchStrategy[Endpoint]:
        return st.builds(
            Endpoint,
            st.just(kind),
            args,
            st.fixed_dictionaries({}, optional=options),
            st.just("listen"),
        )

    return st.one_of(
        ep("tcp", st.tuples(_ports), interface=_any_host, backlog=_backlogs),
        ep("tcp6", st.tuples(_ports), interface=_ipv6, backlog=_backlogs),
        ep("unix", st.tuples(_paths), mode=st.integers(0, 0o7777), backlog=_backlogs),
        ep("udp", st.tuples(_ports), interface=_any_host),
        ep("tls", st.tuples(_ports), cert=_paths, key=_paths, interface=_any_host),
    )


def _connect_endpoints() -> st.SearchStrategy[Endpoint]:
    def ep(kind: str, args: st.SearchStrategy[Any], **options: Any) -> st.SearchStrategy[Endpoint]:
        return st.builds(
            Endpoint,
            st.just(kind),
            args,
            st.fixed_dictionaries({}, optional=options),
            st.just("connect"),
        )

    return st.one_of(
        ep(
            "tcp",
            st.tuples(_any_host, _connect_ports),
            timeout=_timeouts,
            bind=st.tuples(_any_host, _ports),
        ),
        ep(
            "tcp6",
            st.tuples(_ipv6, _connect_ports),
            timeout=_timeouts,
            bind=st.tuples(_ipv6, _ports),
        ),
        ep("unix", st.tuples(_paths), timeout=_timeouts),
        ep(
            "tls",
            st.tuples(_any_host, _connect_ports),
            ca=_paths,
            verify=st.booleans(),
            timeout=_timeouts,
        ),
    )


@given(st.one_of(_listen_endpoints(), _connect_endpoints()))
@example(Endpoint("tls", (0,), {"cert": "[", "key": "]"}))
@settings(max_examples=400)
def test_parse_reads_back_what_format_writes(ep: Endpoint) -> None:
    text = format(ep)
    assert parse(text, ep.mode) == ep


_kinds = st.sampled_from(["tcp", "tcp6", "unix", "udp", "tls", "", "x"])
_near_grammar = st.builds(
    lambda kind, rest: f"{kind}:{rest}",
    _kinds,
    st.text(st.one_of(_tricky, st.sampled_from(list("0123456789abkxyz=:")), st.characters())),
)


@given(st.one_of(st.text(), _near_grammar), st.sampled_from(["listen", "connect"]))
@settings(max_examples=600)
def test_any_text_parses_or_raises_value_error(text: str, mode: str) -> None:
    try:
        ep = parse(text, mode)
    except ValueError as e:
        assert isinstance(e, EndpointError)
        assert repr(text) in str(e)
        return
    # whatever parses, format writes so that it parses back the same
    assert parse(format(ep), mode) == ep


# ---- acting, against a recording fake reactor (no sockets)


class FakeReactor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if not name.startswith(("listen_", "connect_")):
            raise AttributeError(name)

        def record(*args: Any, **kw: Any) -> str:
            self.calls.append((name, args, kw))
            return name

        return record


FACTORY = ns.Factory.for_protocol(ns.Protocol)
CLIENT = ns.ClientFactory.for_protocol(ns.Protocol)


@pytest.mark.parametrize(
    ("description", "call"),
    [
        ("tcp:8080", ("listen_tcp", (8080, FACTORY), {"interface": "127.0.0.1", "backlog": 128})),
        (
            "tcp:0:interface=0.0.0.0:backlog=7",
            ("listen_tcp", (0, FACTORY), {"interface": "0.0.0.0", "backlog": 7}),
        ),
        ("tcp6:8080", ("listen_tcp", (8080, FACTORY), {"interface": "::1", "backlog": 128})),
        (
            "tcp6:1:interface=[::]",
            ("listen_tcp", (1, FACTORY), {"interface": "::", "backlog": 128}),
        ),
        ("unix:/s", ("listen_unix", ("/s", FACTORY), {"mode": 0o600, "backlog": 128})),
        (
            "unix:/s:mode=644:backlog=3",
            ("listen_unix", ("/s", FACTORY), {"mode": 0o644, "backlog": 3}),
        ),
    ],
)
def test_listen_calls_the_reactor(description: str, call: tuple[Any, ...]) -> None:
    fake = FakeReactor()
    assert listen(description, FACTORY, reactor=fake) == call[0]  # type: ignore[arg-type]
    assert fake.calls == [call]


@pytest.mark.parametrize(
    ("description", "call"),
    [
        (
            "tcp:example.org:80",
            (
                "connect_tcp",
                ("example.org", 80, CLIENT),
                {"timeout": 30, "bind_address": None},
            ),
        ),
        (
            r"tcp:h:80:timeout=2.5:bind=10.0.0.1\:9",
            ("connect_tcp", ("h", 80, CLIENT), {"timeout": 2.5, "bind_address": ("10.0.0.1", 9)}),
        ),
        (
            "tcp6:[::1]:80",
            ("connect_tcp", ("::1", 80, CLIENT), {"timeout": 30, "bind_address": None}),
        ),
        ("unix:/s", ("connect_unix", ("/s", CLIENT), {"timeout": 30})),
        ("unix:/s:timeout=1", ("connect_unix", ("/s", CLIENT), {"timeout": 1.0})),
    ],
)
def test_connect_calls_the_reactor(description: str, call: tuple[Any, ...]) -> None:
    fake = FakeReactor()
    assert connect(description, CLIENT, reactor=fake) == call[0]  # type: ignore[arg-type]
    assert fake.calls == [call]


def test_listen_udp_passes_the_datagram_protocol() -> None:
    fake = FakeReactor()
    proto = ns.DatagramProtocol()
    listen("udp:5353:interface=127.0.0.2", proto, reactor=fake)  # type: ignore[arg-type]
    assert fake.calls == [("listen_udp", (5353, proto), {"interface": "127.0.0.2"})]


def test_listen_and_connect_take_a_parsed_endpoint() -> None:
    fake = FakeReactor()
    listen(parse("tcp:1"), FACTORY, reactor=fake)  # type: ignore[arg-type]
    connect(parse("unix:/s", "connect"), CLIENT, reactor=fake)  # type: ignore[arg-type]
    assert [c[0] for c in fake.calls] == ["listen_tcp", "connect_unix"]
    with pytest.raises(ValueError, match="parsed for connect, not for listen"):
        listen(parse("unix:/s", "connect"), FACTORY, reactor=fake)  # type: ignore[arg-type]


def test_tls_listen_builds_a_server_context_from_the_cert_and_key_files(tmp_path) -> None:
    from netshell import tls

    cert, key, _ = tls.self_signed_files(tmp_path, "localhost")
    fake = FakeReactor()
    listen(f"tls:8443:cert={cert}:key={key}:backlog=9", FACTORY, reactor=fake)  # type: ignore[arg-type]
    ((name, args, kw),) = fake.calls
    assert (name, args[0], args[1], kw) == (
        "listen_tls",
        8443,
        FACTORY,
        {"interface": "127.0.0.1", "backlog": 9},
    )
    assert isinstance(args[2], tls.TLSContext) and args[2].server_side


def test_tls_listen_without_cert_or_key_names_what_is_missing() -> None:
    with pytest.raises(EndpointError, match="needs cert=PATH and key=PATH"):
        listen("tls:8443", FACTORY, reactor=FakeReactor())  # type: ignore[arg-type]


def test_tls_connect_builds_a_verifying_client_context_unless_verify_is_no(tmp_path) -> None:
    from netshell import tls

    _, _, ca = tls.self_signed_files(tmp_path, "localhost")
    fake = FakeReactor()
    connect(f"tls:localhost:443:ca={ca}", CLIENT, reactor=fake)  # type: ignore[arg-type]
    connect("tls:example.org:443:verify=no", CLIENT, reactor=fake)  # type: ignore[arg-type]
    (n1, a1, _), (n2, a2, _) = fake.calls
    assert (n1, a1[0], a1[1]) == ("connect_tls", "localhost", 443)
    assert a1[3].verify and a1[3].hostname == "localhost"
    assert (n2, a2[0]) == ("connect_tls", "example.org")
    assert not a2[3].verify


def test_a_syntax_error_in_a_tls_description_is_about_the_syntax() -> None:
    with pytest.raises(EndpointError, match="unknown option 'ca' for tls listen"):
        listen("tls:8443:ca=x", FACTORY, reactor=FakeReactor())  # type: ignore[arg-type]


def test_udp_connect_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="udp is not supported for connect"):
        connect("udp:127.0.0.1:53", CLIENT, reactor=FakeReactor())  # type: ignore[arg-type]


def test_wrong_second_argument_is_a_type_error() -> None:
    fake = FakeReactor()
    with pytest.raises(TypeError, match="takes a DatagramProtocol"):
        listen("udp:0", FACTORY, reactor=fake)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a Factory"):
        listen("tcp:0", ns.DatagramProtocol(), reactor=fake)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Factory.for_protocol\(Protocol\)"):
        connect("tcp:h:1", ns.Protocol, reactor=fake)  # type: ignore[arg-type]
    assert fake.calls == []


def test_docstring_examples() -> None:
    result = doctest.testmod(endpoints, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# ---- acting, for real


class Echo(ns.Protocol):
    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Collect(ns.Protocol):
    """Fires ``line`` with everything received up to the first newline."""

    def __init__(self) -> None:
        self.buffer = b""
        self.line: ns.Deferred[bytes] = ns.Deferred()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer and not self.line.called:
            self.line.callback(self.buffer)


async def _echo_once(client: Collect) -> bytes:
    client.transport.write(b"ping\n")
    line = await client.line
    client.transport.close()
    return line


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def test_listen_tcp_0_gives_a_listener_on_loopback(reactor: ns.Reactor) -> None:
    listener = listen("tcp:0", ns.Factory.for_protocol(Echo))
    try:
        assert isinstance(listener, Listener)
        assert listener.reactor is reactor
        assert listener.kind == "tcp"
        assert listener.address.host == "127.0.0.1"
        assert listener.port > 0
        assert listener in reactor.listeners
    finally:
        listener.close()


async def test_tcp_round_trip(reactor: ns.Reactor) -> None:
    listener = listen("tcp:0:backlog=5", ns.Factory.for_protocol(Echo))
    client = await connect(
        f"tcp:127.0.0.1:{listener.port}:timeout=5", ns.ClientFactory.for_protocol(Collect)
    )
    assert await _echo_once(client) == b"ping\n"
    await listener.close()


async def test_tcp_connect_with_bind(reactor: ns.Reactor) -> None:
    listener = listen("tcp:0", ns.Factory.for_protocol(Echo), reactor=reactor)
    client = await connect(
        rf"tcp:localhost:{listener.port}:bind=127.0.0.1\:0",
        ns.ClientFactory.for_protocol(Collect),
        reactor=reactor,
    )
    assert client.transport.host.host == "127.0.0.1"
    assert client.transport.peer.port == listener.port
    assert await _echo_once(client) == b"ping\n"
    await listener.close()


async def test_tcp_connect_refused_fails_the_deferred(reactor: ns.Reactor) -> None:
    listener = listen("tcp:0", ns.Factory.for_protocol(Echo))
    port = listener.port
    await listener.close()
    d = connect(f"tcp:127.0.0.1:{port}", ns.ClientFactory.for_protocol(Collect))
    with pytest.raises(ns.ConnectError):
        await d


async def test_unix_round_trip(reactor: ns.Reactor, tmp_path: Any) -> None:
    path = str(tmp_path / "e:1.sock")  # a colon, to be escaped
    listener = listen(f"unix:{_escape(path)}:mode=0o640", ns.Factory.for_protocol(Echo))
    assert listener.kind == "unix"
    assert listener.address.host == path
    assert os.stat(path).st_mode & 0o777 == 0o640
    client = await connect(
        f"unix:{_escape(path)}:timeout=5", ns.ClientFactory.for_protocol(Collect)
    )
    assert await _echo_once(client) == b"ping\n"
    await listener.close()
    assert not os.path.exists(path)


async def test_unix_default_mode_is_owner_only(reactor: ns.Reactor, tmp_path: Any) -> None:
    path = str(tmp_path / "d.sock")
    listener = listen(f"unix:{path}", ns.Factory.for_protocol(Echo))
    assert os.stat(path).st_mode & 0o777 == 0o600
    await listener.close()


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")


@needs_ipv6
async def test_tcp6_round_trip(reactor: ns.Reactor) -> None:
    listener = listen("tcp6:0", ns.Factory.for_protocol(Echo))
    assert listener.kind == "tcp6"
    assert listener.address.host == "::1"
    for description in (rf"tcp6:\:\:1:{listener.port}", f"tcp6:[::1]:{listener.port}"):
        client = await connect(description, ns.ClientFactory.for_protocol(Collect))
        assert client.transport.peer.host == "::1"
        assert await _echo_once(client) == b"ping\n"
    await listener.close()


@needs_ipv6
async def test_tcp6_explicit_interface(reactor: ns.Reactor) -> None:
    listener = listen(r"tcp6:0:interface=\:\:1", ns.Factory.for_protocol(Echo))
    assert listener.address.host == "::1"
    await listener.close()


class Receive(ns.DatagramProtocol):
    def __init__(self) -> None:
        self.got: ns.Deferred[tuple[bytes, Any]] = ns.Deferred()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.got.called:
            self.got.callback((data, addr))


async def test_listen_udp_gives_a_datagram_listener(reactor: ns.Reactor) -> None:
    proto = Receive()
    listener = listen("udp:0:interface=127.0.0.1", proto)
    try:
        assert isinstance(listener, DatagramListener)
        assert listener.port > 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"hello", ("127.0.0.1", listener.port))
            data, _addr = await proto.got
        assert data == b"hello"
    finally:
        closed = listener.close()
        if isinstance(closed, ns.Deferred):
            await closed


@pytest.mark.parametrize(
    ("description", "mode", "hint"),
    [
        ("localhost:9", "connect", "(did you mean 'tcp:localhost:9'?)"),
        ("127.0.0.1:9", "connect", "(did you mean 'tcp:127.0.0.1:9'?)"),
        ("http://localhost:8000", "connect",
         "(a URL: http.get('http://localhost:8000') fetches it)"),
        ("https://example.org/", "connect", "(a URL: http.get('https://example.org/') fetches it)"),
    ],
)
def test_a_host_and_port_without_a_kind_or_a_url_gets_a_hint(
    description: str, mode: str, hint: str
) -> None:
    with pytest.raises(EndpointError) as caught:
        parse(description, mode)
    assert hint in str(caught.value)


@pytest.mark.parametrize("text", ["tcp:-1", "tcp:-80"])
def test_a_negative_port_is_out_of_range_not_a_non_number(text: str) -> None:
    with pytest.raises(EndpointError) as caught:
        parse(text)
    assert str(caught.value) == f"endpoint {text!r}: port {text[4:]} is out of range (0-65535)"
