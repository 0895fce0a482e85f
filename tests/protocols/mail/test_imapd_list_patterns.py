"""LIST's wildcards (RFC 3501 §6.3.8: ``*`` any characters, ``%`` any but the hierarchy
delimiter), matched without backtracking: a hostile pattern costs its length times the
name's, never the exponential time a regular expression can take."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mail.imap.server import _Pattern


def reference(pattern: str, name: str) -> bool:
    """The plain meaning, as a regular expression (fine on short inputs)."""
    rx = "".join(".*" if c == "*" else "[^.]*" if c == "%" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, name, re.S) is not None


@settings(max_examples=500, deadline=None)
@given(st.text("ab.*%", max_size=8), st.text("ab.", max_size=8))
def test_the_matcher_means_what_the_wildcards_mean(pattern: str, name: str) -> None:
    assert _Pattern(pattern).match(name) == reference(pattern, name)


@pytest.mark.timeout(10, method="thread")
def test_many_wildcards_against_a_long_name_answer_at_once() -> None:
    # a regular expression backtracks for hours on this (the review: 6.9 s with 9 stars
    # and 40 a's, every session of the server held meanwhile)
    assert _Pattern("*" * 30 + "z").match("a" * 200) is False
    assert _Pattern("%a" * 20 + "z").match("a" * 200) is False
    assert _Pattern("*a" * 20 + "*").match("a" * 200) is True


# ---- sequence sets: joined ranges, bisected (a set of 10,000 ranges had cost
# ranges x messages per command, every session held meanwhile)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 40)),
                          st.one_of(st.none(), st.integers(1, 40))), min_size=1, max_size=8),
       st.integers(1, 40))
def test_a_sequence_set_holds_what_its_ranges_say(ranges: list[tuple[int | None, int | None]],
                                                  largest: int) -> None:
    from protocols.mail.imap.values import SequenceSet

    seqset = SequenceSet(tuple(ranges))
    plain = set()
    for a, b in ranges:
        x, y = largest if a is None else a, largest if b is None else b
        plain.update(range(min(x, y), max(x, y) + 1))
    assert seqset.numbers(largest) == sorted(plain)
    for n in range(0, 45):
        assert seqset.contains(n, largest) == (n in plain), n
    joined = seqset.merged(largest)
    assert all(hi + 1 < lo for (_, hi), (lo, _) in itertools.pairwise(joined))
