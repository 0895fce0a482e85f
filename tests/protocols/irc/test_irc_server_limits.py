"""The IRC server's limits, in memory: no line sent over 512 bytes (tags aside) whatever the
names and texts, lengths counted in bytes of UTF-8, lists split rather than cut, what a
secret or private channel hides from those outside it, and the connection limits.

Each connection is a server protocol over a StringTransport; time is a Clock.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from irc_test_helpers import Fake, Line, by_command, memory_server, numerics

from netshell.interfaces import Address
from netshell.testing import StringTransport
from protocols.irc.server import IRCServerFactory, IRCServerProtocol, _fit

SERVER = "irc.a-rather-long-server-name.example.net"


def registered(factory: Any, nick: str, host: str = "127.0.0.1") -> Fake:
    c = Fake(factory, host=host)
    c.send(f"NICK {nick}")
    c.send("USER u 0 * :Real Name")
    assert "001" in numerics(c.lines())
    return c


def params(lines: list[Line], command: str) -> list[list[str]]:
    return [line.params for line in by_command(lines, command)]


def raw_lines(c: Fake) -> list[bytes]:
    """What the server wrote to ``c`` since last asked, line by line, as bytes."""
    data = c.transport.value()
    c.transport.clear()
    assert not data or data.endswith(b"\r\n")
    return [line for line in data.split(b"\r\n") if line]


def assert_fits(lines: list[bytes]) -> None:
    """Each line at most 512 bytes with its CRLF (its tags aside), whole UTF-8."""
    for line in lines:
        body = line.split(b" ", 1)[1] if line.startswith(b"@") else line
        assert len(body) + 2 <= 512, (len(body), line[:80])
        line.decode("utf-8")  # never cut inside a character


# ---- no line over 512 bytes


# long names and texts: what the limits are about (short ones fit anyway)
nicks = st.from_regex(r"[a-z][a-z0-9]{9,29}", fullmatch=True)
channel_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp", "Cf"),
                  blacklist_characters=",:\x07#"),
    min_size=10, max_size=49,
).map(lambda t: "#" + t)
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=120, max_size=400)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nick_a=nicks, nick_b=nicks, channels=st.lists(channel_names, min_size=1, max_size=12),
       text=texts, caps=st.booleans())
def test_no_line_sent_exceeds_512_bytes(nick_a: str, nick_b: str, channels: list[str],
                                        text: str, caps: bool) -> None:
    nick_a, nick_b = "a" + nick_a[1:], "b" + nick_b[1:]  # two nicks
    factory, _ = memory_server(name=SERVER)
    a = Fake(factory)
    if caps:
        a.send("CAP REQ :multi-prefix userhost-in-names extended-join away-notify "
               "server-time message-tags")
    a.send(f"NICK {nick_a}")
    a.send("USER " + "u" * 12 + " 0 * :" + text[:300])
    a.send("CAP END")
    b = registered(factory, nick_b)
    text = text.replace("\r", "").replace("\n", "").replace("\0", "")
    words = text.replace(" ", "_")
    joined = []
    for name in channels:
        a.send(f"JOIN {name}")
        b.send(f"JOIN {name}")
        if factory.state.find_channel(name) is not None:
            joined.append(name)
    every = ",".join(joined) or "#none"
    commands = [
        f"TOPIC {every.split(',')[0]} :{text}", f"AWAY :{text}", f"PRIVMSG {nick_a} :{text}",
        f"NOTICE {every.split(',')[0]} :{text}", f"WHOIS {nick_a}", f"WHO {nick_a}",
        f"WHO {every.split(',')[0]}", f"NAMES {every}", "LIST", f"ISON {nick_a} {nick_b}",
        f"USERHOST {nick_a} {nick_b}", f"MONITOR + {nick_a},{nick_b}," + "m" * 30,
        "MONITOR L", "MONITOR S", f"MODE {every.split(',')[0]} +b {words[:180]}!*@*",
        f"MODE {every.split(',')[0]} b", f"SETNAME :{text}", f"TOPIC {every.split(',')[0]}",
        f"KICK {every.split(',')[0]} {nick_b} :{text}", f"PART {every} :{text}",
        f"QUIT :{text}",
    ]
    for command in commands:
        for c in (a, b):
            line = command.encode("utf-8")[:500].decode("utf-8", "ignore")
            c.send(line)
            assert_fits(raw_lines(a))
            assert_fits(raw_lines(b))


def test_whois_channels_are_split_over_lines_that_fit() -> None:
    factory, _ = memory_server(name=SERVER)
    factory.state.max_channels = 60
    a = registered(factory, "a" * 30)
    b = registered(factory, "b" * 30)
    names = [f"#{i:02d}" + "é" * 23 for i in range(40)]  # 49 bytes each
    for name in names:
        a.send(f"JOIN {name}")
    a.lines()
    b.send("WHOIS " + "a" * 30)
    lines = raw_lines(b)
    assert_fits(lines)
    got = params([_split(line) for line in lines], "319")
    assert len(got) > 1
    assert all(p[:2] == ["b" * 30, "a" * 30] for p in got)
    assert sorted(n.lstrip("@") for p in got for n in p[2].split()) == sorted(names)


def _split(raw: bytes) -> Line:
    from irc_test_helpers import split_line

    return split_line(raw.decode("utf-8"))


def test_monitor_list_and_statuses_are_split() -> None:
    factory, _ = memory_server(name=SERVER)
    c = registered(factory, "watcher")
    wanted = [f"m{i:02d}" + "x" * 27 for i in range(100)]
    for i in range(0, 100, 12):
        c.send("MONITOR + " + ",".join(wanted[i:i + 12]))
    c.lines()
    assert_fits(raw_lines(c))
    c.send("MONITOR L")
    lines = raw_lines(c)
    assert_fits(lines)
    listed = [_split(line) for line in lines]
    assert len(params(listed, "732")) > 1
    assert sorted(n for p in params(listed, "732") for n in p[1].split(",")) == wanted
    assert numerics(listed)[-1] == "733"


def test_ison_and_userhost_replies_fit() -> None:
    factory, _ = memory_server(name="s" * 200)
    users = [registered(factory, f"n{i:02d}" + "z" * 27) for i in range(15)]
    asker = users[0]
    asker.lines()
    asker.send("ISON " + " ".join(f"n{i:02d}" + "z" * 27 for i in range(15)))
    lines = raw_lines(asker)
    assert_fits(lines)
    found = [n for p in params([_split(x) for x in lines], "303") for n in p[1].split()]
    assert len(found) == 15
    asker.send("USERHOST " + " ".join(f"n{i:02d}" + "z" * 27 for i in range(5)))
    lines = raw_lines(asker)
    assert_fits(lines)
    assert len([r for p in params([_split(x) for x in lines], "302") for r in p[1].split()]) == 5


def test_relays_are_cut_to_fit() -> None:
    factory, _ = memory_server(name=SERVER)
    host = "2001:db8:85a3:1234:5678:8a2e:370:7334"
    a = registered(factory, "a" * 30, host)
    b = registered(factory, "b" * 30, host)
    channel = "#" + "c" * 49
    for c in (a, b):
        c.send(f"JOIN {channel}")
    for c in (a, b):
        c.lines()
    a.send(f"TOPIC {channel} :" + "t" * 390)  # TOPICLEN, but with the source: too long
    for lines in (raw_lines(a), raw_lines(b)):
        assert_fits(lines)
        topic = _split(lines[0])
        assert topic.command == "TOPIC" and 300 < len(topic.params[1]) < 390
        assert len(lines[0]) + 2 >= 511  # as much as fits
    a.send(f"KICK {channel} {'b' * 30} :" + "k" * 390)
    for lines in (raw_lines(a), raw_lines(b)):
        assert_fits(lines)
    b.send(f"JOIN {channel}")
    b.send(f"PART {channel} :" + "p" * 400)
    b.send(f"JOIN {channel}")
    b.send("QUIT :" + "q" * 400)
    assert_fits(raw_lines(a))
    lines = raw_lines(b)
    assert_fits(lines)
    assert _split(lines[-1]).command == "ERROR"


def test_fit_cuts_at_a_character_boundary() -> None:
    line = b":s PRIVMSG xy :" + "é".encode() * 300 + b"\r\n"  # 511th byte: inside an é
    cut = _fit(line)
    assert len(cut) <= 512 and cut.endswith(b"\r\n")
    cut[:-2].decode("utf-8")
    tagged = b"@time=x " + line
    assert _fit(tagged).startswith(b"@time=x ") and len(_fit(tagged)) <= 512 + 8
    short = b":s PING x\r\n"
    assert _fit(short) is short


# ---- lengths in bytes


def test_lengths_count_utf8_bytes() -> None:
    factory, _ = memory_server()
    a = registered(factory, "alice")
    b = registered(factory, "bob")
    # CHANNELLEN=50 bytes: 1 + 24 * 2 = 49 fits, 1 + 25 * 2 = 51 does not
    assert params(a.take("JOIN #" + "é" * 25), "476")
    assert by_command(a.take("JOIN #" + "é" * 24), "JOIN")
    channel = "#t"
    a.take(f"JOIN {channel}")
    b.take(f"JOIN {channel}")
    a.lines()
    # TOPICLEN=390 bytes, cut between characters
    topic = by_command(a.take(f"TOPIC {channel} :" + "é" * 220), "TOPIC")[0].params[1]
    assert topic == "é" * 195
    # KICKLEN=390 bytes; the KICK relayed fits 512 with the source and channel
    kick = by_command(a.take(f"KICK {channel} bob :" + "€" * 150), "KICK")[0].params[2]
    assert kick == "€" * 130
    # AWAYLEN=390 bytes
    a.take("AWAY :" + "€" * 160)
    assert factory.state.find_user("alice").away == "€" * 130
    # SETNAME: 390 bytes at most
    fail = a.take("SETNAME :" + "é" * 200)
    assert params(fail, "FAIL") == [["SETNAME", "INVALID_REALNAME", "Realname is not valid"]]


# ---- secret and private channels


def test_secret_and_private_channels_hidden_from_outsiders() -> None:
    factory, _ = memory_server()
    a = registered(factory, "alice")
    b = registered(factory, "bob")
    a.take("JOIN #s")
    a.take("MODE #s +s")
    a.take("JOIN #p")
    a.take("MODE #p +p")
    a.take("MODE #s +b evil!*@*")
    a.take("MODE #p +b evil!*@*")
    # WHOIS: neither channel to bob; both to alice herself
    assert params(b.take("WHOIS alice"), "319") == []
    assert sorted(params(a.take("WHOIS alice"), "319")[0][2].split()) == ["@#p", "@#s"]
    # WHO by nick: no channel named
    assert params(b.take("WHO alice"), "352")[0][1] == "*"
    # WHO #s: nothing; NAMES #s: the end alone; LIST: neither; TOPIC #s: no such channel
    assert numerics(b.take("WHO #s")) == ["315"]
    assert numerics(b.take("NAMES #s")) == ["366"]
    assert params(b.take("LIST"), "322") == []
    assert params(b.take("TOPIC #s"), "403") == [["bob", "#s", "No such channel"]]
    # the ban lists: the end alone, for both (as InspIRCd); members see them
    for name in ("#s", "#p"):
        assert params(b.take(f"MODE {name} b"), "368") == [
            ["bob", name, "End of channel ban list"]]
        assert by_command(b.take(f"MODE {name} b"), "367") == []
        assert params(a.take(f"MODE {name} b"), "367")[0][2] == "evil!*@*"
    # once bob is on #p, it is no secret to him
    b.take("JOIN #p")
    assert "#p" in params(b.take("WHOIS alice"), "319")[0][2].split()[0]
    assert params(b.take("MODE #p b"), "367")[0][2] == "evil!*@*"


# ---- KICK and PRIVMSG/NOTICE targets beyond TARGMAX


def test_too_many_message_targets() -> None:
    factory, _ = memory_server()
    a = registered(factory, "alice")
    others = [registered(factory, f"t{i}") for i in range(5)]
    targets = ",".join(f"t{i}" for i in range(5))
    assert params(a.take(f"PRIVMSG {targets} :hi"), "407") == [
        ["alice", targets, "Too many recipients"]]
    assert a.take(f"NOTICE {targets} :hi") == []  # NOTICE is never answered
    assert all(o.lines() == [] for o in others)
    a.take("PRIVMSG t0,t1,t2,t3 :hi")
    assert [len(by_command(o.lines(), "PRIVMSG")) for o in others] == [1, 1, 1, 1, 0]


# ---- WHO masks


def test_who_mask_matches_user_host_server_and_realname() -> None:
    factory, _ = memory_server(name="irc.test", opers={"root": "pw"})
    a = registered(factory, "alice")
    b = Fake(factory, host="10.1.2.3")
    b.send("NICK bob")
    b.send("USER bobby 0 * :Robert Paulson")
    b.lines()
    found = lambda mask: sorted(p[5] for p in params(a.take(f"WHO {mask}"), "352"))  # noqa: E731
    assert found("10.1.*") == ["bob"]  # host
    assert found("~bobby") == ["bob"]  # username
    assert found("*Paulson") == ["bob"]  # real name
    assert found("irc.test") == ["alice", "bob"]  # server
    assert found("b*") == ["bob"]  # nick
    assert found("nothing*") == []
    # 'o': operators only
    assert found("* o") == []
    b.take("OPER root pw")
    assert found("* o") == ["bob"]
    assert [p[1:] for p in params(a.take("WHO 10.1.* o%tn,7"), "354")] == [["7", "bob"]]


# ---- WHOIS on TLS


def test_whois_secure_connection() -> None:
    factory, _ = memory_server(name="irc.test")
    a = registered(factory, "alice")
    b = registered(factory, "bob")
    assert by_command(a.take("WHOIS bob"), "671") == []
    b.transport.tls = object()
    lines = a.take("WHOIS bob")
    assert params(lines, "671") == [["alice", "bob", "is using a secure connection"]]
    assert numerics(lines).index("671") == numerics(lines).index("312") + 1


# ---- CAP: chghost, standard-replies


def test_cap_ls_offers_chghost_and_standard_replies() -> None:
    factory, _ = memory_server()
    c = Fake(factory)
    offered = " ".join(line.params[-1] for line in c.take("CAP LS 302")).split()
    assert "chghost" in offered and "standard-replies" in offered
    assert c.take("CAP REQ :chghost standard-replies")[0].params[1] == "ACK"


def test_change_host_is_chghost_or_quit_and_join() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    a.send("CAP REQ chghost")
    a.send("NICK alice")
    a.send("USER al 0 * :A")
    a.send("CAP END")
    b = Fake(factory)
    b.send("CAP REQ chghost")
    b.send("NICK bob")
    b.send("USER b 0 * :B")
    b.send("CAP END")
    c = registered(factory, "carol")
    for x in (a, b, c):
        x.send("JOIN #x")
    for x in (a, b, c):
        x.lines()
    a.protocol.change_host("cloak", "user/alice")
    expected = [("alice!~al@127.0.0.1", "CHGHOST", ["cloak", "user/alice"])]
    assert [(x.source, x.command, x.params) for x in a.lines()] == expected
    assert [(x.source, x.command, x.params) for x in b.lines()] == expected
    assert [(x.source, x.command, x.params) for x in c.lines()] == [
        ("alice!~al@127.0.0.1", "QUIT", ["Changing host"]),
        ("alice!cloak@user/alice", "JOIN", ["#x"]),
        (factory.name, "MODE", ["#x", "+o", "alice"]),
    ]
    assert "@alice" in [n for p in params(c.take("NAMES #x"), "353") for n in p[3].split()]
    c.take("CAP REQ userhost-in-names")
    names = [n for p in params(c.take("NAMES #x"), "353") for n in p[3].split()]
    assert "@alice!cloak@user/alice" in names


def test_standard_replies_forms() -> None:
    # FAIL <command> <code> [<context>...] <description>: a command (or *), a code in
    # capitals, a description last
    factory, _ = memory_server()
    a = registered(factory, "alice")
    for sent in (b"PRIVMSG alice :\xff", b"\xff\xfe", "SETNAME :" + "x" * 400):
        for line in by_command(a.take(sent), "FAIL"):
            command, code, *_context, description = line.params
            assert command == "*" or command.isalpha()
            assert code.replace("_", "").isupper() and description


# ---- 1,000 clients on one channel


def test_a_thousand_clients_join_one_channel() -> None:
    factory, _ = memory_server()
    clients = [registered(factory, f"user{i:04d}") for i in range(1000)]
    for c in clients:
        c.send("JOIN #big")
    # everyone saw every JOIN after its own, and the last joiner's NAMES lists all
    for i, c in enumerate(clients):
        lines = raw_lines(c)
        assert_fits(lines)
        parsed = [_split(x) for x in lines]
        assert len(by_command(parsed, "JOIN")) == 1000 - i
        listed = [n for p in params(parsed, "353") for n in p[3].split()]
        assert len(listed) == i + 1
    # the NAMES kept follow an op, a part and a nick change
    expected = {"@user0000"} | {f"user{i:04d}" for i in range(1, 1000)}
    for change, before, after in (("MODE #big +o user0001", "user0001", "@user0001"),
                                  ("PART #big", "user0002", None),
                                  ("NICK renamed", "user0003", "renamed")):
        clients[{"M": 0, "P": 2, "N": 3}[change[0]]].send(change)
        expected = (expected - {before}) | ({after} if after else set())
        clients[0].lines()
        clients[0].send("NAMES #big")
        got = [_split(x) for x in raw_lines(clients[0])]
        assert {n for p in params(got, "353") for n in p[3].split()} == expected
    # and each member gets the NAMES listing all
    for c in clients:
        c.lines()
    for c in clients[:2] + clients[3:]:
        c.send("NAMES #big")
        lines = raw_lines(c)
        assert_fits(lines)
        names = {n for p in params([_split(x) for x in lines], "353") for n in p[3].split()}
        assert names == expected


# ---- connection limits


def connect(factory: IRCServerFactory, host: str) -> tuple[IRCServerProtocol, StringTransport]:
    address = Address("tcp", host, 40000)
    protocol = factory.build_protocol(address)
    transport = StringTransport(peer=address)
    protocol.connection_made(transport)
    return protocol, transport


def test_default_connections_per_address() -> None:
    factory, _ = memory_server()
    assert factory.max_connections_per_ip == 64
    remote = [connect(factory, "192.0.2.7") for _ in range(65)]
    assert [t.closed for _, t in remote] == [False] * 64 + [True]
    assert b"Too many connections from this IP" in remote[-1][1].value()
    assert factory.per_ip["192.0.2.7"] == 64
    # loopback: the person running the server may run many clients
    local = [connect(factory, host) for host in ("127.0.0.1", "::1") for _ in range(100)]
    assert not any(t.closed for _, t in local)
    # 0: no limit anywhere
    free, _ = memory_server(max_connections_per_ip=0)
    assert not any(connect(free, "192.0.2.7")[1].closed for _ in range(100))


def test_unregistered_connections_close_after_the_registration_timeout() -> None:
    factory, clock = memory_server()
    assert factory.registration_timeout == 60
    c = Fake(factory)
    c.send("NICK lurker")
    clock.advance(59)
    assert not c.transport.closed
    clock.advance(1)
    assert c.transport.closed
    assert "Registration timed out" in c.lines()[-1].params[0]


def test_list_masks_are_bounded_so_their_lines_fit() -> None:
    factory, _ = memory_server(name=SERVER)
    a = registered(factory, "a" * 30, "2001:db8:85a3:1234:5678:8a2e:370:7334")
    channel = "#" + "c" * 49
    a.send(f"JOIN {channel}")
    a.lines()
    a.send(f"MODE {channel} +b " + "m" * 250 + "!*@*")  # over 200 bytes: not taken
    a.send(f"MODE {channel} +b " + "m" * 190 + "!*@*")
    a.lines()
    a.send(f"MODE {channel} b")
    lines = raw_lines(a)
    assert_fits(lines)
    bans = params([_split(x) for x in lines], "367")
    assert [p[2] for p in bans] == ["m" * 190 + "!*@*"]
    assert bans[0][4].isdigit()  # the time it was set, whole


def test_privmsg_to_a_channel_of_many_bytes_fits() -> None:
    # the room for the text is counted with the longest target in bytes, not characters
    factory, _ = memory_server(name="irc.test")
    a = registered(factory, "a" * 30, "2001:db8:85a3:1234:5678:8a2e:370:7334")
    b = registered(factory, "b" * 30)
    wide, narrow = "#" + "€" * 16, "#" + "n" * 20  # 49 bytes in 17 characters; 21 bytes
    for c in (a, b):
        c.send(f"JOIN {wide}")
    b.lines()
    a.send(f"PRIVMSG {narrow},{wide} :" + "x" * 420)
    lines = [_split(x) for x in raw_lines(b)]
    text = by_command(lines, "PRIVMSG")[0].params[1]
    assert text == "x" * len(text)  # whole characters, cut before the guard must cut
    line = f":{'a' * 30}!~u@2001:db8:85a3:1234:5678:8a2e:370:7334 PRIVMSG {wide} :{text}"
    assert len(line.encode()) <= 510
