"""Wildcard masks (``*`` and ``?``) as the IRC server matches them: the same answers as a
regular expression ``.*``/``.`` would give, in time linear in the name times the mask.

A mask made a backtracking regular expression (``*a*a*a*a*b`` -> ``.*a.*a.*a.*a.*b``) let
one WHO, or one ban against every message in a channel, hold the server for seconds; the
hostile cases here are sized so that such a matcher would not finish before
pytest-timeout stops the test (no clock is read: a linear matcher answers at once).
"""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from irc_test_helpers import Fake, by_command, memory_server, numerics

from protocols.irc.core import casefold
from protocols.irc.server_state import Mask, compile_mask, mask_matches


def regex_matches(mask: str, name: str, casemapping: str = "rfc1459") -> bool:
    """The matcher the server had: right, but exponential on masks of many stars."""
    pattern = re.escape(casefold(mask, casemapping)).replace(r"\*", ".*").replace(r"\?", ".")
    return re.match(pattern + r"\Z", casefold(name, casemapping), re.DOTALL) is not None


def two_pointer_matches(mask: str, name: str) -> bool:
    """The textbook matcher (backtrack only to the last star), on folded text."""
    m, n = 0, 0
    star, mark = -1, 0
    while n < len(name):
        if m < len(mask) and mask[m] == "*":
            star, mark = m, n
            m += 1
        elif m < len(mask) and mask[m] in ("?", name[n]):
            m += 1
            n += 1
        elif star >= 0:
            m = star + 1
            mark += 1
            n = mark
        else:
            return False
    return all(c == "*" for c in mask[m:])


# characters the folding maps onto each other, the two wildcards, '.' and '\' (not
# special) and a few plain ones
MASK_CHARS = "ab*?*?[{A.\\"
NAME_CHARS = "ab[{A.\\*?"


@settings(max_examples=600, deadline=None)
@given(st.text(MASK_CHARS, max_size=9), st.text(NAME_CHARS, max_size=12),
       st.sampled_from(["rfc1459", "ascii", "strict-rfc1459"]))
@example("a*a*b", "aab", "rfc1459")
@example("*", "", "rfc1459")
@example("?*", "", "rfc1459")
@example("**a**", "a", "rfc1459")
@example("a?", "a", "rfc1459")
@example("*ab*ab", "abab", "rfc1459")
@example("[*", "{x", "rfc1459")
def test_mask_answers_as_the_regular_expression(mask: str, name: str, cm: str) -> None:
    want = regex_matches(mask, name, cm)
    assert mask_matches(mask, name, cm) == want
    assert two_pointer_matches(casefold(mask, cm), casefold(name, cm)) == want


@given(st.text("ab", max_size=6), st.text("ab", min_size=0, max_size=30))
def test_a_mask_that_is_the_name_with_stars_matches(mask_seed: str, name: str) -> None:
    # take some characters of the name, in order, with stars between: it must match
    picked = "*".join(name[i] for i in range(0, len(name), 3)) if name else ""
    assert mask_matches("*" + picked + "*", name)
    assert mask_matches(f"*{mask_seed}*", name) == (mask_seed in name)


def test_hostile_masks_are_answered() -> None:
    # each of these held a backtracking matcher for far longer than the test timeout
    name = "a" * 3000
    assert not mask_matches("*a" * 20 + "*b", name)
    assert not mask_matches("*a" * 20 + "*b*", name)  # the suffix check cannot save it
    assert mask_matches("*a" * 20 + "*", name)
    assert not mask_matches("*" + "a?" * 40 + "b*", name)
    assert not mask_matches("*a*a*a*a*a*a*a*a*a*a*a*a*c!*@*", "a" * 200 + "!u@h")
    assert Mask("*a" * 20 + "*b").match(name + "b")
    assert compile_mask("X*") is compile_mask("X*")  # kept: bans are matched per message


def test_who_with_a_hostile_mask_answers() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    a.send("NICK attacker")
    a.send("USER u 0 * :" + "a" * 390)
    a.lines()
    got = a.take("WHO " + "*a" * 30 + "*b")
    assert numerics(got) == ["315"]
    got = a.take("WHO " + "*a" * 30 + "*")
    assert [line.params[5] for line in by_command(got, "352")] == ["attacker"]


def test_a_hostile_ban_costs_a_message_nothing() -> None:
    factory, _ = memory_server()
    op = Fake(factory)
    op.register("op")
    op.take("JOIN #c")
    member = Fake(factory)
    member.send("NICK " + "a" * 30)
    member.send("USER aaaaaaaaa 0 * :x")
    member.take("JOIN #c")
    op.take("MODE #c +b " + "*a" * 40 + "*c")  # matches no one here
    member.lines()
    for _ in range(20):
        assert member.take("PRIVMSG #c :hi") == []
    assert len(by_command(op.lines(), "PRIVMSG")) == 20
    op.take("MODE #c +b " + "*a" * 25 + "*")  # this one (*a..*!*@*) matches the member
    member.lines()
    assert numerics(member.take("PRIVMSG #c :hi")) == ["404"]
    assert numerics(member.take("PART #c")) == ["PART"]
    assert numerics(member.take("JOIN #c")) == ["474"]


def test_list_with_a_hostile_mask_answers() -> None:
    factory, _ = memory_server()
    a = Fake(factory)
    a.register("alice")
    a.take("JOIN #" + "a" * 45)
    got = a.take("LIST " + "#" + "*a" * 40 + "*b")
    assert numerics(got) == ["321", "323"]
    got = a.take("LIST " + "#" + "*a" * 20 + "*")
    assert numerics(got) == ["321", "322", "323"]
