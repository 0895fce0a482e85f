"""The IRC server's state with no connection at all: users, channels, masks and modes."""

from __future__ import annotations

import pytest

from protocols.irc.server_state import (
    ModeChange,
    ServerState,
    format_mode_changes,
    mask_matches,
    normalize_mask,
)


def test_masks() -> None:
    assert mask_matches("*!*@host", "Bob!b@HOST")
    assert mask_matches("b?b!*", "bob!x@y") and not mask_matches("b?b!*", "boob!x@y")
    assert mask_matches("nick[a]!*@*", "NICK{A}!u@h")  # rfc1459 folding
    assert not mask_matches("nick[a]!*@*", "NICK{A}!u@h", "ascii")
    assert not mask_matches("a.c", "abc")  # '.' is no wildcard
    assert normalize_mask("bob") == "bob!*@*"
    assert normalize_mask("u@h") == "*!u@h"
    assert normalize_mask("bob!u") == "bob!u@*"
    assert normalize_mask("a!b@c") == "a!b@c"


def test_nicks_and_renames() -> None:
    state = ServerState()
    alice = state.add_user("Alice")
    with pytest.raises(ValueError):
        state.add_user("ALICE")
    bob = state.add_user("bob")
    with pytest.raises(ValueError):
        state.rename(bob, "alice")
    state.rename(alice, "ALICE")  # her own nick in another case
    assert state.find_user("alice") is alice and alice.nick == "ALICE"
    assert state.valid_nick("a[b]`_^{|}-9") and not state.valid_nick("9a")
    assert not state.valid_nick("") and not state.valid_nick("a" * 31)
    assert state.valid_channel("#ok") and not state.valid_channel("#a b")
    assert not state.valid_channel("#a,b") and not state.valid_channel("nohash")
    assert not state.valid_channel("#" + "x" * 50)
    with pytest.raises(ValueError):
        ServerState("unicode")


def test_join_part_and_empty_channels_go() -> None:
    state = ServerState()
    alice, bob = state.add_user("alice"), state.add_user("bob")
    channel, created = state.join(alice, "#Room")
    assert created and channel.is_op(alice)
    same, created = state.join(bob, "#ROOM")
    assert same is channel and not created and not channel.is_op(bob)
    assert state.neighbours(alice) == {bob}
    state.part(alice, channel)
    assert state.find_channel("#room") is channel
    assert state.remove_user(bob) == [channel]
    assert state.find_channel("#room") is None and state.find_user("bob") is None


def test_may_join_order_and_exceptions() -> None:
    state = ServerState()
    op, guest = state.add_user("op"), state.add_user("guest")
    guest.username, guest.hostname = "~g", "host"
    channel, _ = state.join(op, "#x")
    channel.modes.add("i")
    channel.key = "k"
    channel.limit = 1
    channel.lists["b"].append(("guest!*@*", "op", 0))
    assert state.may_join(guest, channel, "k") == "474"  # ban first
    channel.lists["e"].append(("*!~g@host", "op", 0))
    assert state.may_join(guest, channel, "k") == "473"  # then invite only
    channel.lists["I"].append(("*!*@host", "op", 0))
    assert state.may_join(guest, channel, None) == "475"  # then the key
    assert state.may_join(guest, channel, "k") == "471"  # then the limit
    channel.limit = None
    assert state.may_join(guest, channel, "k") is None


def test_apply_channel_modes() -> None:
    state = ServerState()
    op, bob = state.add_user("op"), state.add_user("bob")
    channel, _ = state.join(op, "#x")
    state.join(bob, "#x")
    changes, errors, lists = state.apply_channel_modes(
        op, channel, "+ovk-t+lb", ["bob", "bob", "key", "5"])
    assert changes == [ModeChange("+", "o", "bob"), ModeChange("+", "v", "bob"),
                       ModeChange("+", "k", "key"), ModeChange("-", "t"),
                       ModeChange("+", "l", "5")]
    assert errors == [] and lists == ["b"]  # a list mode without a mask: show the list
    assert format_mode_changes(changes) == ["+ovk-t+l", "bob", "bob", "key", "5"]
    assert channel.prefixes(bob) == "@+" and channel.prefixes(bob, multi=False) == "@"
    assert channel.mode_string() == ("+nkl", ["key", "5"])
    # MODES=4: a fifth parameter mode is not acted on
    changes, errors, lists = state.apply_channel_modes(
        op, channel, "+bbbbb", ["a", "b", "c", "d", "e"])
    assert [c.param for c in changes] == ["a!*@*", "b!*@*", "c!*@*", "d!*@*"]
    changes, errors, _ = state.apply_channel_modes(op, channel, "+l", ["zero"])
    assert changes == [] and errors[0].numeric == "696"
    changes, errors, _ = state.apply_channel_modes(op, channel, "-k+x", [])
    assert changes == [ModeChange("-", "k", "*")] and errors[0].numeric == "472"


def test_whowas_is_bounded() -> None:
    state = ServerState(whowas_nicks=3)
    for i in range(5):
        user = state.add_user(f"n{i}")
        state.register(user)
        for _ in range(12):  # a nick's history keeps its 10 newest entries
            state.rename(user, f"n{i}x")
            state.rename(user, f"n{i}")
        state.remove_user(user)
    assert list(state.whowas) == ["n3", "n4x", "n4"]  # the most recently gone, last
    assert len(state.whowas["n4"]) == 10
