"""The FTP server's control protocol driven in memory: a StringTransport and a Clock.

Time-based rules (the delay after a failed login, the disconnect after too many, the idle
timeout) run on virtual time here, and a users checker answering with a Deferred shows
that commands wait for the login in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import make_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netshell.defer import Deferred
from netshell.errors import ConnectionDone
from netshell.failure import Failure
from netshell.interfaces import Address
from netshell.testing import Clock, StringTransport
from protocols.ftp.server import _COMMANDS, FTPServerFactory, FTPServerProtocol, User


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def session(factory: FTPServerFactory, host: str = "127.0.0.1") -> tuple[FTPServerProtocol,
                                                                          StringTransport]:
    protocol = factory.build_protocol(Address("tcp", host, 40000))
    transport = StringTransport(peer=Address("tcp", host, 40000))
    protocol.connection_made(transport)
    return protocol, transport


def replies(transport: StringTransport) -> list[str]:
    """The reply lines written since the last call."""
    text = transport.value().decode()
    transport.clear()
    return [line for line in text.split("\r\n") if line]


def make_factory(root: Path, clock: Clock, **kw: Any) -> FTPServerFactory:
    options: dict[str, Any] = {"users": {"alice": "wonderland"}, "login_delay": 2.0}
    options.update(kw)
    return FTPServerFactory(root, reactor=clock, clock=clock, **options)


def test_failed_logins_are_answered_after_the_delay_and_the_third_disconnects(
        tree: Path) -> None:
    clock = Clock()
    factory = make_factory(tree, clock)
    protocol, t = session(factory)
    assert replies(t)[0].startswith("220 ")
    for attempt in range(1, 4):
        protocol.data_received(b"USER alice\r\nPASS nope\r\n")
        assert replies(t) == ["331 Please specify the password."]  # no 530 yet
        clock.advance(1.9)
        assert replies(t) == []
        clock.advance(0.1)
        assert replies(t) == ["530 Login incorrect."]
        assert t.disconnecting is (attempt == 3)


def test_commands_behind_a_slow_checker_wait_in_order(tree: Path) -> None:
    clock = Clock()
    pending: list[Deferred[Any]] = []

    def checker(name: str, password: str) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        pending.append(d)
        return d

    protocol, t = session(make_factory(tree, clock, users=checker))
    replies(t)
    protocol.data_received(b"USER bob\r\nPASS pw\r\nPWD\r\nNOOP\r\n")
    assert replies(t) == ["331 Please specify the password."]
    pending[0].callback(User(None, root=str(tree / "sub"), writable=True))
    assert [r[:4] for r in replies(t)] == ["230 ", "257 ", "200 "]
    protocol.data_received(b"MKD made\r\n")
    assert replies(t)[0].startswith('257 "/made"')
    assert (tree / "sub" / "made").is_dir()  # the User's own root, and its rights


@pytest.mark.parametrize("answer", [True, False, None, User("ignored")])
def test_checker_answers(tree: Path, answer: Any) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users=lambda n, p: answer, login_delay=0))
    replies(t)
    protocol.data_received(b"USER x\r\nPASS y\r\n")
    codes = [r[:3] for r in replies(t)]
    assert codes == ["331", "230" if answer not in (False, None) else "530"]


def test_a_failing_checker_refuses_the_login(tree: Path, caplog: pytest.LogCaptureFixture
                                             ) -> None:
    def checker(name: str, password: str) -> bool:
        raise RuntimeError("database down")

    clock = Clock()
    protocol, t = session(make_factory(tree, clock, users=checker, login_delay=0))
    replies(t)
    protocol.data_received(b"USER x\r\nPASS y\r\nNOOP\r\n")
    assert [r[:3] for r in replies(t)] == ["331", "530", "200"]
    assert "database down" in caplog.text


def test_anonymous_is_read_only_and_can_be_turned_off(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, anonymous=True))
    replies(t)
    protocol.data_received(b"USER anonymous\r\nPASS me@example.org\r\nMKD x\r\n")
    assert [r[:3] for r in replies(t)] == ["331", "230", "550"]
    protocol, t = session(make_factory(tree, clock, anonymous=False, login_delay=0))
    replies(t)
    protocol.data_received(b"USER anonymous\r\nPASS me@example.org\r\n")
    assert [r[:3] for r in replies(t)] == ["331", "530"]


def test_idle_timeout_on_virtual_time(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock, idle_timeout=60))
    replies(t)
    clock.advance(50)
    protocol.data_received(b"NOOP\r\n")  # activity pushes the deadline back
    clock.advance(50)
    assert replies(t) == ["200 NOOP ok."] and not t.disconnecting
    clock.advance(10)
    assert replies(t) == ["421 Timeout: closing control connection."]
    assert t.disconnecting


def test_reading_pauses_while_many_commands_wait(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock))
    replies(t)
    protocol.data_received(b"USER alice\r\nPASS bad\r\n" + b"NOOP\r\n" * 40)
    assert t.reading_paused  # the login waits for its delay: 40 commands held, no more read
    clock.advance(2)
    assert not t.reading_paused
    assert [r[:3] for r in replies(t)] == ["331", "530"] + ["200"] * 40


def test_connection_limits_answer_421(tree: Path) -> None:
    clock = Clock()
    factory = make_factory(tree, clock, max_connections=2, max_connections_per_ip=1)
    first, _t1 = session(factory, "10.0.0.1")
    _second, t2 = session(factory, "10.0.0.1")
    assert replies(t2) == ["421 Too many connections from your address."] and t2.disconnecting
    _third, _t3 = session(factory, "10.0.0.2")
    _fourth, t4 = session(factory, "10.0.0.3")
    assert replies(t4) == ["421 Too many connections; try again later."] and t4.disconnecting
    first.connection_lost(Failure(ConnectionDone("bye")))
    _fifth, t5 = session(factory, "10.0.0.1")
    assert replies(t5)[0].startswith("220 ")
    assert len(factory.sessions) == 2


def test_stop_gracefully_closes_an_idle_session(tree: Path) -> None:
    clock = Clock()
    protocol, t = session(make_factory(tree, clock))
    replies(t)
    protocol.stop_gracefully()
    assert replies(t) == ["421 Server shutting down."] and t.disconnecting


def test_serve_checks_its_arguments(tree: Path) -> None:
    clock = Clock()
    with pytest.raises(ValueError, match="not a directory"):
        make_factory(tree / "hello.txt", clock)
    with pytest.raises(ValueError, match="need tls"):
        make_factory(tree, clock, require_tls=True)
    with pytest.raises(ValueError, match="passive_ports"):
        make_factory(tree, clock, passive_ports=[0])
    with pytest.raises(ValueError, match="masquerade_address"):
        make_factory(tree, clock, masquerade_address="ftp.example.org")
    with pytest.raises(TypeError, match="users"):
        make_factory(tree, clock, users=42)


_VERBS = [*sorted(set(_COMMANDS) - {"PASV", "EPSV", "PORT", "EPRT", "QUIT"}), "XYZ", "RETR"]
_ARGS = st.one_of(
    st.just(""),
    st.sampled_from(["hello.txt", "sub", "..", "../secret.txt", "/", "-la", "A", "I", "S",
                     "F", "0", "P", "CHMOD 600 hello.txt", "UTF8 ON", "MLST type;", "x" * 300,
                     "TLS", "nowhere/deep", "a\udcffb", '"q"']),
    st.text(alphabet=st.characters(blacklist_characters="\r\n\x00",
                                   blacklist_categories=("Cs",)), max_size=40),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=st.lists(st.tuples(st.sampled_from(_VERBS), _ARGS), min_size=1, max_size=12),
       login_first=st.booleans())
def test_every_command_gets_exactly_one_reply(tmp_path: Path, commands: list[tuple[str, str]],
                                              login_first: bool) -> None:
    """Whatever a client sends, each command line gets one well-formed reply and the session
    goes on (unless the rules say close: three failed logins)."""
    root = tmp_path / "fuzz"
    if not root.exists():
        make_tree(root)
    clock = Clock()
    factory = make_factory(root / "root", clock, login_delay=0, writable=False)
    protocol, t = session(factory)
    t.clear()
    sent = 0
    if login_first:
        protocol.data_received(b"USER alice\r\nPASS wonderland\r\n")
        sent += 2
    for verb, arg in commands:
        line = f"{verb} {arg}".rstrip(" ") if arg else verb
        protocol.data_received(line.encode("utf-8", "surrogateescape") + b"\r\n")
        sent += 1
        if t.disconnecting:
            break
    answers = [line for line in t.value().decode("utf-8", "surrogateescape").split("\r\n")
               if len(line) >= 4 and line[:3].isdigit() and line[3] == " "]
    assert all(100 <= int(a[:3]) < 600 for a in answers)
    assert len(answers) == sent or t.disconnecting
    assert not any(a.startswith("451 ") for a in answers)  # no internal error on any input
