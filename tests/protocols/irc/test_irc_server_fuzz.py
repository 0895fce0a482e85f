"""The IRC server fed odd and random commands, in memory: every answer can be written
(nothing a client sent breaks a reply), no handler raises, and the state stays consistent."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from irc_test_helpers import Fake, by_command, memory_server


def test_odd_parameters_are_answered(caplog: Any) -> None:
    factory, _ = memory_server()
    c = Fake(factory)
    assert [line.params for line in by_command(c.take("NICK :a b"), "432")] == [
        ["*", "*", "Erroneus nickname"]]
    assert [line.params for line in by_command(c.take("CAP ::"), "410")] == [
        ["*", "*", "Invalid CAP command"]]
    c.register("alice")
    assert [line.params for line in by_command(c.take("WHO :a b"), "315")] == [
        ["alice", "*", "End of WHO list"]]
    c.take("JOIN #x")
    assert c.take("MODE #x +b :a b") == [] and c.take("MODE #x +b ::x") == []
    assert [line.command for line in c.take("MODE #x b")] == ["368"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


WORDS = ["#a", "#b", "a", "b", "c", "*", "0", "+o", "-o", "+b", "+k", "+l", "-l", "+imnst",
         "+v", "x", "LS", "REQ", "END", "LIST", "302", "PLAIN", "+", "@#a", "a,b,#a",
         "#a,#b", "k", "5", "-1", "%tcnuhr,1", "*!*@*", "+e", "+I", "b", "e", "I", "-", "C",
         "L", "S", "\u00e9", "+B", "+iwxo", "::", ":a b"]
COMMANDS = ["NICK", "USER", "JOIN", "PART", "PRIVMSG", "NOTICE", "TAGMSG", "TOPIC", "NAMES",
            "LIST", "KICK", "INVITE", "MODE", "WHO", "WHOIS", "WHOWAS", "AWAY", "ISON",
            "USERHOST", "OPER", "KILL", "CAP", "PING", "PONG", "QUIT", "MONITOR", "SETNAME",
            "AUTHENTICATE", "LUSERS", "MOTD", "TIME", "VERSION", "ADMIN", "INFO", "PASS"]


@pytest.mark.parametrize("seed", range(4))
def test_random_commands(seed: int, caplog: Any) -> None:
    rnd = random.Random(seed)
    factory, clock = memory_server(opers={"o": "p"}, accounts={"a": "p"})
    conns: list[Fake] = []
    for _ in range(2500):
        if not conns or rnd.random() < 0.03:
            fresh = Fake(factory)
            conns.append(fresh)
            if rnd.random() < 0.8:
                fresh.register(rnd.choice("abcd") + str(rnd.randrange(3)))
        c = rnd.choice(conns)
        if c.transport.closed:
            c.lost()
            conns.remove(c)
            continue
        command = rnd.choice(COMMANDS)
        if command in ("QUIT", "KILL") and rnd.random() < 0.8:
            command = "PING"
        words = [w for w in (rnd.choice(WORDS) for _ in range(rnd.randrange(4)))
                 if not w.startswith(":")]
        line = " ".join([command, *words])
        if rnd.random() < 0.5:
            line += " :" + rnd.choice([*WORDS, "hello world", ""])
        if rnd.random() < 0.05:
            line = "@label=x;+t=1 " + line
        c.send(line)
        # everything written is whole lines of at most 512 bytes (tags aside)
        for raw in c.transport.value().split(b"\r\n")[:-1]:
            body = raw.split(b" ", 1)[1] if raw.startswith(b"@") else raw
            assert len(body) + 2 <= 512, raw[:100]
        c.transport.clear()
        if rnd.random() < 0.01:
            clock.advance(rnd.choice([1, 30, 200]))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:2000]
    state = factory.state
    for channel in state.channels.values():
        assert channel.members
        for user in channel.members:
            assert state.find_user(user.nick) is user
            assert user.channels[state.fold(channel.name)] is channel
    for key, user in state.users.items():
        assert state.fold(user.nick) == key
        for name, channel in user.channels.items():
            assert state.channels[name] is channel and user in channel.members
    assert state.registered_count() == sum(1 for u in state.users.values() if u.registered)
