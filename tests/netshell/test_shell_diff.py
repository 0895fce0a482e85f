"""``netsh diff``: what its normalising ignores (one rule at a time), and what still differs.

Each rule of :func:`session.normalise` has a test that the rule applies and one that
it does not swallow a real difference next to what it ignores; :func:`session.diff`
is then checked on whole transcripts.
"""

from __future__ import annotations

from typing import Any

from netshell.shell.session import diff, normalise


def agree(a: str, b: str) -> bool:
    return normalise(a) == normalise(b)


# ---- Deferred numbers


def test_deferred_numbers_are_ignored() -> None:
    assert normalise("Deferred #12 fired: 3") == "Deferred #N fired: 3"
    assert agree("<Deferred #1 pending>", "<Deferred #480 pending>")


def test_a_deferreds_value_or_state_still_differs() -> None:
    assert not agree("Deferred #12 fired: 3", "Deferred #12 fired: 4")
    assert not agree("<Deferred #1 pending>", "<Deferred #1 fired: None>")


# ---- _dN, the names the prompt binds unfired Deferreds to


def test_the_dn_names_are_ignored() -> None:
    assert normalise("_d12.result") == "_dN.result"
    assert agree("x = _d3", "x = _d417")


def test_a_name_that_only_ends_like_dn_still_differs() -> None:
    assert normalise("my_d12 + _d1x") == "my_d12 + _d1x"  # not a whole _dN name
    assert not agree("_d3.result", "_d3.called")


# ---- numbers of listeners and connections (#N)


def test_numbers_of_listeners_and_connections_are_ignored() -> None:
    assert normalise("Closing listener #3 and connection #14") == (
        "Closing listener #N and connection #N")
    assert agree("conn(5) is #5", "conn(5) is #9")


def test_a_count_without_a_hash_still_differs() -> None:
    assert normalise("Closed 1 listener and 2 connections") == (
        "Closed 1 listener and 2 connections")
    assert not agree("listener #1 (tcp)", "connection #1 (tcp)")


# ---- ports after a host


def test_ports_after_a_host_are_ignored() -> None:
    assert normalise("127.0.0.1:8080") == "127.0.0.1:PORT"
    assert normalise("localhost:80 and [::1]:443 and ::1:9") == (
        "localhost:PORT and [::1]:PORT and ::1:PORT")
    assert agree("served on 127.0.0.1:40211", "served on 127.0.0.1:37007")


def test_the_host_before_a_port_still_differs() -> None:
    assert not agree("10.0.0.1:80", "10.0.0.2:80")
    assert normalise("at 12:30") == "at 12:30"  # no host: a time of day, not a port


# ---- ports in endpoint strings


def test_ports_of_endpoint_strings_are_ignored() -> None:
    assert normalise('listen("tcp:8080", f)') == 'listen("tcp:PORT", f)'
    assert normalise("udp6:53 tls:443 tcp6:1 udp:7") == (
        "udp6:PORT tls:PORT tcp6:PORT udp:PORT")
    assert agree('connect("tcp:127.0.0.1:5000", P)', 'connect("tcp:127.0.0.1:6000", P)')


def test_the_kind_and_host_of_an_endpoint_still_differ() -> None:
    assert not agree("tcp:8080", "udp:8080")
    assert normalise("tcp:127.0.0.1") == "tcp:127.0.0.1"  # a host, not a port
    assert not agree("tcp:127.0.0.1", "tcp:128.0.0.1")


# ---- times in seconds


def test_times_in_seconds_are_ignored() -> None:
    assert normalise("Closed 1 listener in 0.52s.") == "Closed 1 listener in Ns."
    assert agree("age 3s", "age 118s")


def test_numbers_that_are_not_seconds_still_differ() -> None:
    assert normalise("fired: 42, 5 B, 2 s, h2s") == "fired: 42, 5 B, 2 s, h2s"
    assert not agree("fired: 42", "fired: 43")
    assert not agree("in 5 B", "in 6 B")


# ---- object addresses


def test_object_addresses_are_ignored() -> None:
    assert normalise("<function f at 0x7f3a2b10c0>") == "<function f at 0x...>"
    assert agree("<P object at 0x7f01>", "<P object at 0x55aa>")


def test_hex_values_that_are_no_address_still_differ() -> None:
    assert normalise("mask 0x7f") == "mask 0x7f"
    assert not agree("mask 0x7f", "mask 0xff")
    assert not agree("<P object at 0x7f01>", "<Q object at 0x7f01>")


# ---- whole transcripts


def entry(source: str, output: str = "", kind: str = "code", error: str | None = None
          ) -> dict[str, Any]:
    return {"type": "input", "input": source, "output": output, "kind": kind, "error": error}


def note(text: str) -> dict[str, Any]:
    return {"type": "note", "text": text}


SESSION = [
    {"type": "session", "kind": "prompt", "time": 1.0},
    entry('srv = listen("tcp:8080", wire.echo_factory())'),
    entry("d = connect(f'tcp:127.0.0.1:{srv.port}', P); d", "<Deferred #3 pending>\n"),
    note("Deferred #3 fired: <P object at 0x7f01>"),
    entry("conns()", "#4 tcp 127.0.0.1:8080 ... 2s\n", kind="inspect"),
    entry("1 / 0", "ZeroDivisionError\n", error="ZeroDivisionError: division by zero"),
    entry("print(_d3.result.transport.peer)", "127.0.0.1:8080\n"),
]


def test_a_replay_with_other_ports_numbers_and_times_agrees() -> None:
    replay = [
        {"type": "session", "kind": "run", "time": 99.0},
        entry('srv = listen("tcp:9090", wire.echo_factory())'),
        entry("d = connect(f'tcp:127.0.0.1:{srv.port}', P); d", "<Deferred #8 pending>\n"),
        note("Deferred #8 fired: <P object at 0x55aa>"),
        entry("print(_d8.result.transport.peer)", "127.0.0.1:9090\n"),
    ]
    assert diff(SESSION, replay) == []


def test_a_replay_whose_output_differs_shows_where() -> None:
    replay = [*SESSION[:-1], entry("print(_d3.result.transport.peer)", "10.0.0.1:8080\n")]
    lines = diff(SESSION, replay)
    assert "-127.0.0.1:PORT" in lines and "+10.0.0.1:PORT" in lines


def test_a_replay_with_another_note_differs_in_the_notes() -> None:
    replay = [*SESSION[:3], note("Deferred #3 failed: ConnectionRefusedError()"), *SESSION[4:]]
    lines = diff(SESSION, replay, names=("a", "b"))
    assert lines[:2] == ["--- a notes", "+++ b notes"]
    assert "+Deferred #N failed: ConnectionRefusedError()" in lines
