"""The IRC client in memory (server lines fed through a StringTransport), on what a review
found: a keyed channel rejoined with its key after a reconnect; texts split at CR and LF
only (never at IRC formatting); long actions split like messages; a WHOIS refused with
401 takes its own 318; a join of a channel the client is in (or is joining) fires at once;
a STATUSMSG (``@#chan``) keeps its prefix and is answered to it."""

from __future__ import annotations

import pytest
from test_irc_client_unit import Wire

from netshell.failure import Failure
from netshell.testing import failure_result_of, success_result_of
from protocols.irc.client import IRCCommandError, WhoisResult
from protocols.irc.core import parse

# ---- the key of a channel, kept for the rejoin after a reconnect


def test_rejoin_after_a_reconnect_gives_the_key_joined_with() -> None:
    w = Wire()
    w.register()
    d = w.client.join("#locked", "sekrit")
    w.client.join("#open")
    assert w.sent() == ["JOIN #locked sekrit", "JOIN #open"]
    w.feed(":me!u@h JOIN #locked", ":irc.x 366 me #locked :End",
           ":me!u@h JOIN #open", ":irc.x 366 me #open :End")
    assert success_result_of(d).key == "sekrit"
    assert w.client.channels["#open"].key is None
    w.protocol.connection_lost(Failure(ConnectionResetError("reset")))
    assert sorted(w.client._rejoin) == [("#locked", "sekrit"), ("#open", None)]


def test_rejoin_sends_the_key_and_the_channel_keeps_it() -> None:
    w = Wire()
    w.register()
    w.client.join("#locked", "sekrit")
    w.feed(":me!u@h JOIN #locked", ":irc.x 366 me #locked :End")
    w.protocol.connection_lost(Failure(ConnectionResetError("reset")))
    w.transport = type(w.transport)()
    w.protocol = type(w.protocol)(w.client)
    w.protocol.connection_made(w.transport)
    w.sent()
    w.feed(":irc.x CAP * LS :", ":irc.x 001 me :Welcome", ":irc.x 376 me :End of MOTD")
    assert w.sent() == ["CAP END", "JOIN #locked sekrit"]
    w.feed(":me!u@h JOIN #locked", ":irc.x 366 me #locked :End")
    assert w.client.channels["#locked"].key == "sekrit"  # (and again after the next)


def test_key_learned_from_mode_and_324_while_on_the_channel() -> None:
    w = Wire()
    w.register("PREFIX=(ov)@+ CHANTYPES=# CHANMODES=beI,k,l,imnpst")
    w.client.join("#c")
    w.feed(":me!u@h JOIN #c", ":irc.x 366 me #c :End")
    assert w.client.channels["#c"].key is None
    # an op sets a key (with other modes that take a parameter around it)
    w.feed(":op!o@h MODE #c +lkv 10 newkey me")
    assert w.client.channels["#c"].key == "newkey"
    assert w.client.channels["#c"].members["me"] == "+"
    w.feed(":op!o@h MODE #c -k *")
    assert w.client.channels["#c"].key is None
    # a 324 (an answer to MODE #c) tells it too, and that there is none
    w.feed(":irc.x 324 me #c +ntk other")
    assert w.client.channels["#c"].key == "other"
    w.feed(":irc.x 324 me #c +nt")
    assert w.client.channels["#c"].key is None
    w.feed(":op!o@h MODE #c +k last")
    w.protocol.connection_lost(Failure(ConnectionResetError("reset")))
    assert w.client._rejoin == [("#c", "last")]


# ---- splitting at CR and LF only


@pytest.mark.parametrize("send", ["msg", "notice"])
def test_formatting_characters_are_not_line_breaks(send: str) -> None:
    w = Wire()
    w.register()
    text = "plain \x1ditalic\x1d and \x1estrike\x1e, \x1cfs \x0bvt \x0cff \x85 \u2028 \u2029 end"
    getattr(w.client, send)("#c", text)
    command = send.upper() if send == "notice" else "PRIVMSG"
    assert [parse(line).params for line in w.sent()] == [["#c", text]]
    assert w.client._split("#c", "a\r\nb\rc\nd\n\ne", command) == ["a", "b", "c", "d", "e"]


def test_event_reply_keeps_formatting_in_one_message() -> None:
    w = Wire()
    w.register()
    seen = w.events("message")
    w.feed(":bob!b@h PRIVMSG #c :hi")
    seen[0].reply("\x1dsoft\x1d and \x1egone\x1e")
    assert w.sent() == ["PRIVMSG #c :\x1dsoft\x1d and \x1egone\x1e"]


# ---- actions split like messages


def test_long_action_is_split_each_piece_its_own_action_within_512_bytes() -> None:
    w = Wire()
    w.register()
    w.client.action("#c", "waves " * 100)
    lines = w.sent()
    assert len(lines) >= 2
    words: list[str] = []
    for line in lines:
        target, text = parse(line).params
        assert target == "#c" and text.startswith("\x01ACTION ") and text.endswith("\x01")
        # as the server relays it, with the longest user and host: within 512 bytes
        relayed = f":{w.client.nick}!{'u' * 10}@{'h' * 63} {line}\r\n"
        assert len(relayed.encode()) <= 512
        words += text[len("\x01ACTION "):-1].split()
    assert words == ["waves"] * 100
    # a line break makes another action; a short one is one line, as before
    w.client.action("#c", "one\ntwo")
    assert w.sent() == ["PRIVMSG #c :\x01ACTION one\x01", "PRIVMSG #c :\x01ACTION two\x01"]


def test_long_action_is_cut_by_bytes_never_inside_a_character() -> None:
    w = Wire()
    w.register()
    text = "é" * 300 + "😀" * 200  # 600 + 800 bytes, no space to cut at
    w.client.action("#c", text)
    lines = w.sent()
    pieces = []
    for line in lines:
        assert len(f":{w.client.nick}!{'u' * 10}@{'h' * 63} {line}\r\n".encode()) <= 512
        pieces.append(parse(line).params[1][len("\x01ACTION "):-1])
    assert "".join(pieces) == text  # (a cut inside a character would not decode)
    # a notice is split the same way
    w.client.notice("#c", text)
    assert "".join(parse(line).params[1] for line in w.sent()) == text


def test_ctcp_request_that_does_not_fit_a_line_is_refused() -> None:
    w = Wire()
    w.register()
    with pytest.raises(ValueError):
        w.client.ctcp("bob", "PING", "x" * 500)
    with pytest.raises(ValueError):
        w.client.ctcp("bob", "PING", "a\r\nQUIT")
    assert w.sent() == []
    w.client.ctcp("bob", "PING", "x" * 100)
    assert w.sent() == ["PRIVMSG bob :\x01PING " + "x" * 100 + "\x01"]


# ---- whois: a 401's 318 is its own


def test_concurrent_whois_of_a_missing_nick_both_fail() -> None:
    w = Wire()
    w.register()
    d1 = w.client.whois("ghost")
    d2 = w.client.whois("Ghost")
    assert w.sent() == ["WHOIS ghost", "WHOIS Ghost"]
    w.feed(":irc.x 401 me ghost :No such nick", ":irc.x 318 me ghost :End of WHOIS")
    assert failure_result_of(d1, IRCCommandError).value.numeric == "401"
    assert not d2.called  # the 318 was the first one's
    w.feed(":irc.x 401 me Ghost :No such nick", ":irc.x 318 me Ghost :End of WHOIS")
    assert failure_result_of(d2, IRCCommandError).value.numeric == "401"
    assert w.client._pending == []


def test_whois_asked_again_from_the_errback_of_a_401() -> None:
    w = Wire()
    w.register()
    again: list[object] = []

    def retry(f: Failure) -> None:
        again.append(w.client.whois("ghost"))

    w.client.whois("ghost").add_errback(retry)
    w.feed(":irc.x 401 me ghost :No such nick", ":irc.x 318 me ghost :End of WHOIS")
    (d,) = again
    assert not d.called  # the first 318 did not end it with nothing
    w.feed(":irc.x 311 me ghost g h * :Back Again", ":irc.x 318 me ghost :End of WHOIS")
    result = success_result_of(d)
    assert isinstance(result, WhoisResult) and result.realname == "Back Again"


def test_whois_401_without_a_318_after_it_does_not_linger() -> None:
    w = Wire()
    w.register()
    d1 = w.client.whois("ghost")
    w.feed(":irc.x 401 me ghost :No such nick")
    failure_result_of(d1, IRCCommandError)
    d2 = w.client.whois("ghost")
    # a server that sends no 318 after 401: the next line is not it, the first goes
    w.feed(":irc.x 311 me ghost g h * :Real", ":irc.x 318 me ghost :End")
    assert success_result_of(d2).realname == "Real"
    assert w.client._pending == []


# ---- join of a channel we are in, or are joining


def test_join_of_a_channel_we_are_in_fires_at_once_without_a_join() -> None:
    w = Wire()
    w.register()
    first = w.client.join("#a")
    w.feed(":me!u@h JOIN #a", ":irc.x 366 me #a :End")
    chan = success_result_of(first)
    again = w.client.join("#A")
    assert success_result_of(again) is chan
    assert w.sent() == ["JOIN #a"]
    # several: only the one we are not in is sent
    both = w.client.join("#a,#b")
    assert w.sent() == ["JOIN #b"]
    w.feed(":me!u@h JOIN #b", ":irc.x 366 me #b :End")
    assert [c.name for c in success_result_of(both)] == ["#a", "#b"]


def test_join_while_joining_shares_the_answer() -> None:
    w = Wire()
    w.register()
    d1 = w.client.join("#a")
    d2 = w.client.join("#a")
    d3 = w.client.join("#a,#a")
    assert w.sent() == ["JOIN #a"]
    w.feed(":me!u@h JOIN #a", ":irc.x 366 me #a :End")
    chan = success_result_of(d1)
    assert success_result_of(d2) is chan and success_result_of(d3) == [chan, chan]
    # a refusal is shared too
    e1 = w.client.join("#k")
    e2 = w.client.join("#k")
    w.feed(":irc.x 475 me #k :Cannot join channel (+k)")
    assert failure_result_of(e1, IRCCommandError).value.numeric == "475"
    assert failure_result_of(e2, IRCCommandError).value.numeric == "475"


def test_join_while_joining_times_out_together() -> None:
    w = Wire(timeout=5)
    w.register()
    d1 = w.client.join("#slow")
    d2 = w.client.join("#slow")
    w.clock.advance(5)
    failure_result_of(d1, TimeoutError)
    failure_result_of(d2, TimeoutError)


# ---- STATUSMSG


def test_statusmsg_keeps_its_prefix_and_is_answered_to_it() -> None:
    w = Wire()
    w.register()
    messages = w.events("message")
    actions = w.events("action")
    w.feed(":op!o@h PRIVMSG @#c :ops only", ":op!o@h PRIVMSG #c :everyone",
           ":op!o@h PRIVMSG me :private", ":op!o@h PRIVMSG +#c :\x01ACTION nods\x01")
    ops, everyone, private = messages
    assert (ops.target, ops.channel, ops.status_prefix) == ("@#c", "#c", "@")
    assert (everyone.target, everyone.channel, everyone.status_prefix) == ("#c", "#c", None)
    assert (private.channel, private.status_prefix) == (None, None)
    assert (actions[0].channel, actions[0].status_prefix) == ("#c", "+")
    for event in (ops, everyone, private, actions[0]):
        event.reply("ok")
    assert w.sent() == ["PRIVMSG @#c ok", "PRIVMSG #c ok", "PRIVMSG op ok", "PRIVMSG +#c ok"]


def test_rejoin_not_yet_answered_is_tried_again_after_the_next_reconnect() -> None:
    w = Wire()
    w.register()
    w.client.join("#locked", "sekrit")
    w.client.join("#open")
    w.feed(":me!u@h JOIN #locked", ":irc.x 366 me #locked :End",
           ":me!u@h JOIN #open", ":irc.x 366 me #open :End")
    for _ in range(2):  # lost again before the rejoins are answered: still to rejoin
        w.protocol.connection_lost(Failure(ConnectionResetError("reset")))
        assert sorted(w.client._rejoin) == [("#locked", "sekrit"), ("#open", None)]
        w.transport = type(w.transport)()
        w.protocol = type(w.protocol)(w.client)
        w.protocol.connection_made(w.transport)
        w.sent()
        w.feed(":irc.x CAP * LS :", ":irc.x 001 me :Welcome", ":irc.x 376 me :End of MOTD")
        assert w.sent() == ["CAP END", "JOIN #locked sekrit", "JOIN #open"]
    # one answered (its JOIN came, not yet its 366), one refused: nothing left over
    w.feed(":me!u@h JOIN #locked", ":irc.x 475 me #open :Cannot join channel (+k)")
    w.protocol.connection_lost(Failure(ConnectionResetError("reset")))
    assert w.client._rejoin == [("#locked", "sekrit")]
