"""Our IRC client's IRCv3 against InspIRCd (its IRCv3 modules loaded) and netshell's own
server (``netsh serve irc``): the capabilities asked for are the ones enabled, and each
does what its specification says as the client sees it (server-time, message-tags and
msgid, echo-message, multi-prefix, away-notify, batch, account-tag with SASL); WHOX gives
the account; MONITOR tells who comes and goes (ngIRCd has neither: plain WHO there, and
monitor() says the server lacks it)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from irc_peers import IRCPeer, inspircd_server, netshell_server, ngircd_server

from protocols import irc
from protocols.irc.client import DEFAULT_CAPS, IRCClient, IRCNotSupported, server_time
from protocols.irc.core import Message

pytestmark = pytest.mark.timeout(60)

_names = itertools.count()
ACCOUNT, PASSWORD = "carolacct", "s3cret"
#: what the client asks for, all of which both servers offer
ASKED = set(DEFAULT_CAPS)


@pytest.fixture(scope="module", params=["inspircd", "netshell"])
def server(request: pytest.FixtureRequest) -> Iterator[IRCPeer]:
    if request.param == "inspircd":
        with inspircd_server() as peer:
            yield peer
    else:
        with netshell_server(accounts={ACCOUNT: PASSWORD}) as peer:
            yield peer


def nick(base: str) -> str:
    return f"{base}{next(_names)}"


async def connect(server: IRCPeer, base: str, **kw: object) -> IRCClient:
    return await irc.connect(server.host, server.port, nick(base), rate=None, timeout=10,
                             **kw)  # type: ignore[arg-type]


async def test_the_caps_asked_for_are_enabled(server: IRCPeer) -> None:
    client = await connect(server, "cap")
    try:
        # server-time, message-tags, multi-prefix, echo-message, batch, away-notify,
        # account-tag: each offered, each asked for (CAP REQ) and acknowledged
        assert set(client.server_caps) >= ASKED
        # and cap-notify, which CAP LS 302 turns on without a REQ (IRCv3 cap-notify)
        assert client.caps == ASKED | {"cap-notify"}
        assert "sasl" not in client.caps  # not asked for without an account
        # what the server says is on: the same
        assert await client_cap_list(client) == client.caps
    finally:
        await client.quit()


async def client_cap_list(client: IRCClient) -> set[str]:
    """What the server says is enabled (CAP LIST)."""
    got = client.wait_for("raw", lambda e: e.message.command == "CAP"
                          and len(e.message.params) >= 3 and e.message.params[1] == "LIST",
                          timeout=10)
    client.send(Message("CAP", ["LIST"]))
    return set((await got).message.params[-1].split())


async def test_messages_carry_server_time_and_msgid_and_come_back_to_the_sender(
    server: IRCPeer,
) -> None:
    a = await connect(server, "t")
    b = await connect(server, "t")
    try:
        await a.join("#time")
        joined = a.wait_for("join", lambda e: e.nick == b.nick, timeout=10)
        await b.join("#time")
        await joined
        heard = b.wait_for("message", lambda e: e.nick == a.nick, timeout=10)
        echoed = a.wait_for("message", lambda e: e.own, timeout=10)
        before = datetime.now(UTC)
        a.msg("#time", "what time is it")
        event, echo = await heard, await echoed
        # server-time: the time tag, ISO 8601 in UTC with milliseconds, is the event's time
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.tags["time"])
        assert event.time == server_time(event.message)
        assert abs(event.time - before) < timedelta(seconds=30)
        # message-tags (msgid): the same id for the message and its echo
        assert event.msgid and event.msgid == echo.msgid
        # echo-message: the sender gets its own message back, marked as its own
        assert echo.own and echo.text == "what time is it" and echo.channel == "#time"
    finally:
        await a.quit()
        await b.quit()


async def test_multi_prefix_gives_every_prefix(server: IRCPeer) -> None:
    a = await connect(server, "m")
    b = await connect(server, "m")
    try:
        await a.join("#prefix")
        joined = a.wait_for("join", lambda e: e.nick == b.nick, timeout=10)
        await b.join("#prefix")
        await joined
        await a.mode("#prefix", "+v", b.nick)
        await a.mode("#prefix", "+o", b.nick)
        # without multi-prefix only the highest (@) would be listed
        assert f"@+{b.nick}" in await a.names("#prefix")
        entries = {e.nick: e for e in await a.who("#prefix")}
        assert entries[b.nick].flags.startswith("H@+")
    finally:
        await a.quit()
        await b.quit()


async def test_away_notify_tells_who_shares_a_channel(server: IRCPeer) -> None:
    a = await connect(server, "w")
    b = await connect(server, "w")
    try:
        await a.join("#away")
        joined = a.wait_for("join", lambda e: e.nick == b.nick, timeout=10)
        await b.join("#away")
        await joined
        gone = a.wait_for("away", lambda e: e.nick == b.nick, timeout=10)
        b.send(Message("AWAY", ["lunch"]))
        assert (await gone).text == "lunch"
        back = a.wait_for("away", lambda e: e.nick == b.nick, timeout=10)
        b.send(Message("AWAY"))
        assert (await back).text is None
    finally:
        await a.quit()
        await b.quit()


async def test_batch_of_a_labeled_response(server: IRCPeer) -> None:
    # labeled-response (asked for here) answers a labeled command with its replies in one
    # batch: the client gathers them and gives a "batch" event at its end
    client = await connect(server, "b", caps=(*DEFAULT_CAPS, "labeled-response"))
    try:
        assert {"batch", "labeled-response"} <= client.caps
        done = client.wait_for("batch", timeout=10)
        client.send(Message("WHOIS", [client.nick], tags={"label": "whois1"}))
        event = await done
        batch = event.batch_done
        assert batch is not None and batch.type == "labeled-response"
        assert event.tags.get("label") is None  # the label is on the BATCH + line
        commands = [m.command for m in batch.messages]
        assert "311" in commands and commands[-1] == "318", commands
        assert client.batches == {}  # closed and forgotten
    finally:
        await client.quit()


async def test_account_tag_and_whox_account(server: IRCPeer) -> None:
    if server.kind == "inspircd":
        # no services linked: no SASL, no account; the tag and WHOX's account say none
        carol = await connect(server, "c")
    else:
        carol = await connect(server, "c", sasl=(ACCOUNT, PASSWORD))
        assert carol.account == ACCOUNT and "sasl" in carol.caps
    dave = await connect(server, "d")
    try:
        await carol.join("#acct")
        joined = carol.wait_for("join", lambda e: e.nick == dave.nick, timeout=10)
        await dave.join("#acct")
        await joined
        heard = dave.wait_for("message", lambda e: e.nick == carol.nick, timeout=10)
        carol.msg("#acct", "who am I")
        event = await heard
        entries = {e.nick: e for e in await dave.who("#acct")}
        assert dave.isupport.whox  # so who() used WHOX: entries carry the account
        if server.kind == "inspircd":
            assert event.account is None
            assert entries[carol.nick].account is None
        else:
            assert event.account == ACCOUNT  # account-tag
            assert entries[carol.nick].account == ACCOUNT
        assert entries[dave.nick].account is None
        assert entries[carol.nick].realname == carol.nick
    finally:
        await carol.quit()
        await dave.quit()


async def test_monitor_tells_who_comes_and_goes(server: IRCPeer) -> None:
    watcher = await connect(server, "mw")
    here = await connect(server, "mh")
    later = nick("ml")
    try:
        assert watcher.isupport.monitor  # InspIRCd: 30, ours: 100
        status = await watcher.monitor(here.nick, later)
        assert status == {here.nick: True, later: False}
        assert watcher.fold(here.nick) in watcher.online
        assert sorted(n.lower() for n in await watcher.monitor_list()) == sorted(
            [here.nick.lower(), later.lower()])
        # `later` connects: online; `here` quits: offline
        came = watcher.wait_for("online", lambda e: e.nick.lower() == later.lower(),
                                timeout=10)
        newcomer = await irc.connect(server.host, server.port, later, rate=None, timeout=10)
        await came
        went = watcher.wait_for("offline", lambda e: e.nick.lower() == here.nick.lower(),
                                timeout=10)
        await here.quit()
        await went
        assert watcher.fold(here.nick) not in watcher.online
        assert watcher.fold(later) in watcher.online
        # no more news of `later` once unmonitored
        watcher.unmonitor(later)
        # (InspIRCd lists the nicks in lower case)
        assert [n.lower() for n in await watcher.monitor_list()] == [here.nick.lower()]
        await newcomer.quit()
    finally:
        await watcher.quit()
        await here.quit()


async def test_ngircd_has_neither_whox_nor_monitor() -> None:
    with ngircd_server() as peer:
        client = await irc.connect(peer.host, peer.port, "plain", rate=None, timeout=10)
        try:
            assert not client.isupport.whox and client.isupport.monitor is None
            await client.join("#plain")
            (entry,) = await client.who("#plain")  # plain WHO: no account to give
            assert entry.nick == "plain" and entry.account is None
            with pytest.raises(IRCNotSupported):
                await client.monitor("x")
        finally:
            await client.quit()
