"""The testing kit: Clock, StringTransport, loopback, the result helpers, the pytest plugin."""

from __future__ import annotations

import gc
import logging

import pytest

import netshell as ns
from netshell.reactor import AlreadyCancelledError, DelayedCall
from netshell.testing import (
    Clock,
    Loopback,
    StringTransport,
    failure_result_of,
    loopback,
    no_result,
    success_result_of,
)
from netshell.transport import Address

pytest_plugins = ["pytester"]


# ---- Clock


def test_clock_starts_at_zero():
    assert Clock().seconds() == 0


def test_clock_starts_where_told():
    assert Clock(start=100.0).seconds() == 100.0


def test_clock_fixture_is_a_clock_at_zero(clock):
    assert isinstance(clock, Clock)
    assert clock.seconds() == 0


def test_clock_call_later_returns_a_delayed_call_due_at_now_plus_delay(clock):
    clock.advance(3)
    dc = clock.call_later(2, print)
    assert isinstance(dc, DelayedCall)
    assert dc.time == 5


def test_clock_does_not_run_a_call_before_it_is_due(clock):
    seen = []
    clock.call_later(2, seen.append, "due at 2")
    clock.advance(1.999)
    assert seen == []


def test_clock_advance_runs_a_call_that_became_due(clock):
    seen = []
    clock.call_later(2, seen.append, "due at 2")
    clock.advance(2)
    assert seen == ["due at 2"]


def test_clock_advance_moves_time_by_the_amount(clock):
    clock.advance(1.5)
    clock.advance(2)
    assert clock.seconds() == 3.5


def test_clock_advance_runs_due_calls_in_time_order(clock):
    seen = []
    clock.call_later(3, seen.append, 3)
    clock.call_later(1, seen.append, 1)
    clock.call_later(2, seen.append, 2)
    clock.advance(10)
    assert seen == [1, 2, 3]


def test_clock_runs_same_time_calls_in_the_order_made(clock):
    seen = []
    for name in "abcde":
        clock.call_later(1, seen.append, name)
    clock.advance(1)
    assert seen == list("abcde")


def test_clock_call_sees_its_own_due_time(clock):
    seen = []
    clock.call_later(2, lambda: seen.append(clock.seconds()))
    clock.call_later(5, lambda: seen.append(clock.seconds()))
    clock.advance(10)
    assert seen == [2, 5]


def test_clock_runs_a_call_scheduled_by_a_call_if_due(clock):
    seen = []
    clock.call_later(1, lambda: clock.call_later(1, seen.append, "nested"))
    clock.advance(2)
    assert seen == ["nested"]


def test_clock_does_not_run_a_call_scheduled_by_a_call_if_not_due(clock):
    seen = []
    clock.call_later(1, lambda: clock.call_later(5, seen.append, "nested"))
    clock.advance(2)
    assert seen == []
    assert len(clock.calls) == 1


def test_clock_call_later_passes_args_and_kwargs(clock):
    seen = []
    clock.call_later(0, lambda a, *, b: seen.append((a, b)), 1, b=2)
    clock.advance(0)
    assert seen == [(1, 2)]


def test_clock_call_soon_runs_on_advance_zero(clock):
    seen = []
    clock.call_soon(seen.append, "soon")
    assert seen == []
    clock.advance(0)
    assert seen == ["soon"]


def test_clock_negative_advance_raises_value_error(clock):
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_clock_negative_advance_leaves_time_alone(clock):
    clock.advance(5)
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert clock.seconds() == 5


def test_clock_pump_advances_by_each_amount(clock):
    seen = []
    for t in (1, 2, 3):
        clock.call_later(t, lambda: seen.append(clock.seconds()))
    clock.pump([1, 1, 1])
    assert seen == [1, 2, 3]
    assert clock.seconds() == 3


def test_clock_pump_of_nothing_moves_no_time(clock):
    clock.pump([])
    assert clock.seconds() == 0


def test_clock_calls_lists_pending_calls_soonest_first(clock):
    c = clock.call_later(3, print)
    a = clock.call_later(1, print)
    b = clock.call_later(2, print)
    assert clock.calls == [a, b, c]


def test_clock_calls_drops_fired_calls(clock):
    clock.call_later(1, lambda: None)
    later = clock.call_later(5, print)
    clock.advance(1)
    assert clock.calls == [later]


def test_clock_calls_drops_cancelled_calls(clock):
    a = clock.call_later(1, print)
    b = clock.call_later(2, print)
    a.cancel()
    assert clock.calls == [b]


def test_clock_cancel_prevents_the_call(clock):
    seen = []
    dc = clock.call_later(1, seen.append, "x")
    dc.cancel()
    clock.advance(5)
    assert seen == []
    assert not dc.active()


def test_clock_reset_moves_the_call_from_now(clock):
    seen = []
    dc = clock.call_later(10, seen.append, "moved")
    clock.advance(1)
    dc.reset(2)
    assert dc.time == 3
    clock.advance(2)
    assert seen == ["moved"]


def test_clock_reset_can_move_a_call_later(clock):
    seen = []
    dc = clock.call_later(1, seen.append, "moved")
    dc.reset(5)
    clock.advance(4)
    assert seen == []
    clock.advance(1)
    assert seen == ["moved"]


def test_clock_reset_reorders_calls(clock):
    a = clock.call_later(1, print)
    b = clock.call_later(2, print)
    a.reset(3)
    assert clock.calls == [b, a]


def test_clock_delay_pushes_the_call_back(clock):
    seen = []
    dc = clock.call_later(2, seen.append, "pushed")
    dc.delay(3)
    assert dc.time == 5
    clock.advance(4)
    assert seen == []
    clock.advance(1)
    assert seen == ["pushed"]


def test_clock_call_is_inactive_after_it_ran(clock):
    dc = clock.call_later(1, lambda: None)
    clock.advance(1)
    assert not dc.active()
    assert dc.called


@pytest.mark.parametrize(("method", "args"), [("cancel", ()), ("reset", (1,)), ("delay", (1,))])
def test_clock_cancelled_call_refuses_with_already_cancelled(clock, method, args):
    dc = clock.call_later(1, print)
    dc.cancel()
    with pytest.raises(AlreadyCancelledError):
        getattr(dc, method)(*args)


@pytest.mark.parametrize(("method", "args"), [("cancel", ()), ("reset", (1,)), ("delay", (1,))])
def test_clock_called_call_refuses_with_already_called(clock, method, args):
    dc = clock.call_later(1, lambda: None)
    clock.advance(1)
    with pytest.raises(ns.AlreadyCalledError):
        getattr(dc, method)(*args)


def test_clock_error_in_a_call_is_logged_and_later_calls_run(clock, caplog):
    seen = []

    def explode():
        raise ValueError("kaboom")

    clock.call_later(1, explode)
    clock.call_later(2, seen.append, "after")
    with caplog.at_level(logging.ERROR, logger="netshell"):
        clock.advance(2)
    assert seen == ["after"]
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [ValueError]


def test_clock_repr_tells_time_and_pending(clock):
    clock.call_later(1, print)
    clock.advance(0.5)
    assert repr(clock) == "<Clock at 0.5s, 1 calls pending>"


# ---- StringTransport


def test_string_transport_value_is_everything_written():
    t = StringTransport()
    t.write(b"hello ")
    t.write(b"world")
    assert t.value() == b"hello world"


def test_string_transport_clear_forgets_what_was_written():
    t = StringTransport()
    t.write(b"old")
    t.clear()
    t.write(b"new")
    assert t.value() == b"new"


def test_string_transport_accepts_bytearray_and_memoryview():
    t = StringTransport()
    t.write(bytearray(b"ab"))
    t.write(memoryview(b"cd"))
    assert t.value() == b"abcd"


def test_string_transport_write_of_str_raises_type_error():
    with pytest.raises(TypeError, match="str"):
        StringTransport().write("text")


def test_string_transport_write_of_a_non_bytes_object_raises_type_error():
    with pytest.raises(TypeError):
        StringTransport().write(42)


def test_string_transport_write_of_str_records_nothing():
    t = StringTransport()
    with pytest.raises(TypeError):
        t.write("text")
    assert t.value() == b""
    assert t.bytes_sent == 0


def test_string_transport_write_after_close_raises_runtime_error():
    t = StringTransport()
    t.close()
    with pytest.raises(RuntimeError):
        t.write(b"too late")


def test_string_transport_write_after_abort_raises_runtime_error():
    t = StringTransport()
    t.abort()
    with pytest.raises(RuntimeError):
        t.write(b"too late")


def test_string_transport_write_after_write_eof_raises_runtime_error():
    t = StringTransport()
    t.write_eof()
    with pytest.raises(RuntimeError):
        t.write(b"too late")


def test_string_transport_write_eof_is_recorded():
    t = StringTransport()
    t.write_eof()
    assert t.eof_written


def test_string_transport_write_sequence_writes_each_chunk():
    t = StringTransport()
    t.write_sequence([b"a", b"b", b"c"])
    assert t.value() == b"abc"


def test_string_transport_write_sequence_rejects_a_str_chunk():
    with pytest.raises(TypeError):
        StringTransport().write_sequence([b"ok", "not ok"])


def test_string_transport_counts_bytes_sent():
    t = StringTransport()
    t.write(b"abc")
    t.write_sequence([b"de", b"f"])
    assert t.bytes_sent == 6


def test_string_transport_clear_keeps_the_bytes_sent_counter():
    t = StringTransport()
    t.write(b"abc")
    t.clear()
    assert t.bytes_sent == 3


def test_string_transport_starts_open():
    t = StringTransport()
    assert (t.closed, t.disconnecting, t.aborted) == (False, False, False)


def test_string_transport_close_sets_closed_and_disconnecting_not_aborted():
    t = StringTransport()
    t.close()
    assert (t.closed, t.disconnecting, t.aborted) == (True, True, False)


def test_string_transport_abort_sets_aborted_closed_and_disconnecting():
    t = StringTransport()
    t.abort()
    assert (t.closed, t.disconnecting, t.aborted) == (True, True, True)


def test_string_transport_close_does_not_call_connection_lost():
    lost = []

    class P(ns.Protocol):
        def connection_lost(self, reason):
            lost.append(reason)

    p = P()
    t = StringTransport(protocol=p)
    p.connection_made(t)
    t.close()
    assert lost == []


def test_string_transport_pause_reading_sets_the_flag():
    t = StringTransport()
    t.pause_reading()
    assert t.reading_paused


def test_string_transport_resume_reading_clears_the_flag():
    t = StringTransport()
    t.pause_reading()
    t.resume_reading()
    assert not t.reading_paused


def test_string_transport_register_producer_keeps_it():
    t = StringTransport()
    producer = object()
    t.register_producer(producer, streaming=True)
    assert t.producer is producer
    assert t.streaming is True


def test_string_transport_register_producer_twice_raises_runtime_error():
    t = StringTransport()
    t.register_producer(object(), streaming=False)
    with pytest.raises(RuntimeError):
        t.register_producer(object(), streaming=False)


def test_string_transport_unregister_producer_allows_another():
    t = StringTransport()
    t.register_producer(object(), streaming=True)
    t.unregister_producer()
    second = object()
    t.register_producer(second, streaming=False)
    assert t.producer is second


def test_string_transport_has_default_addresses():
    t = StringTransport()
    assert isinstance(t.peer, Address)
    assert isinstance(t.host, Address)


def test_string_transport_takes_addresses():
    peer, host = Address("tcp", "10.0.0.1", 1234), Address("tcp", "10.0.0.2", 80)
    t = StringTransport(peer=peer, host=host)
    assert (t.peer, t.host) == (peer, host)


def test_string_transport_repr_tells_state_and_size():
    t = StringTransport()
    t.write(b"12345")
    t.abort()
    assert "aborted" in repr(t)
    assert "5 bytes" in repr(t)


# ---- loopback


class Recorder(ns.Protocol):
    """Records what happens to it, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.received = b""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.events.append(("made", transport))

    def data_received(self, data):
        self.received += data
        self.events.append(("data", data))

    def eof_received(self):
        self.events.append(("eof", None))

    def connection_lost(self, reason):
        self.events.append(("lost", reason))

    def lost(self) -> list[ns.Failure]:
        return [r for kind, r in self.events if kind == "lost"]


class Echo(Recorder):
    def data_received(self, data):
        super().data_received(data)
        self.transport.write(data)


def test_loopback_returns_a_loopback_with_both_protocols():
    server, client = Recorder(), Recorder()
    pair = loopback(server, client)
    assert isinstance(pair, Loopback)
    assert (pair.server, pair.client) == (server, client)


def test_loopback_calls_connection_made_on_both_with_their_transports():
    server, client = Recorder(), Recorder()
    pair = loopback(server, client)
    assert server.events == [("made", pair.server_transport)]
    assert client.events == [("made", pair.client_transport)]


def test_loopback_addresses_face_each_other():
    pair = loopback(Recorder(), Recorder())
    assert pair.client_transport.peer == pair.server_transport.host
    assert pair.server_transport.peer == pair.client_transport.host


def test_loopback_moves_nothing_before_pump():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.client_transport.write(b"ping")
    assert server.received == b""


def test_loopback_echo_round_trip():
    client = Recorder()
    pair = loopback(Echo(), client)
    pair.client_transport.write(b"ping")
    pair.pump()
    assert pair.server.received == b"ping"
    assert client.received == b"ping"


def test_loopback_pump_returns_bytes_moved_both_ways():
    pair = loopback(Echo(), Recorder())
    pair.client_transport.write(b"ping")
    assert pair.pump() == 8


def test_loopback_pump_with_nothing_written_returns_zero():
    pair = loopback(Echo(), Recorder())
    assert pair.pump() == 0


def test_loopback_second_pump_moves_nothing_new():
    pair = loopback(Echo(), Recorder())
    pair.client_transport.write(b"ping")
    pair.pump()
    assert pair.pump() == 0


def test_loopback_counts_bytes_received():
    pair = loopback(Echo(), Recorder())
    pair.client_transport.write(b"hello")
    pair.pump()
    assert pair.server_transport.bytes_received == 5
    assert pair.client_transport.bytes_received == 5


def test_loopback_keeps_order_of_several_writes():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.client_transport.write(b"one ")
    pair.client_transport.write_sequence([b"two ", b"three"])
    pair.pump()
    assert server.received == b"one two three"


def test_loopback_close_gives_both_sides_connection_done():
    server, client = Recorder(), Recorder()
    pair = loopback(server, client)
    pair.client_transport.close()
    pair.pump()
    assert [f.check(ns.ConnectionDone) for f in server.lost() + client.lost()] == [
        ns.ConnectionDone,
        ns.ConnectionDone,
    ]


def test_loopback_close_by_the_server_gives_both_sides_connection_done():
    server, client = Recorder(), Recorder()
    pair = loopback(server, client)
    pair.server_transport.close()
    pair.pump()
    assert [f.type for f in server.lost() + client.lost()] == [
        ns.ConnectionDone,
        ns.ConnectionDone,
    ]


def test_loopback_close_delivers_the_data_before_connection_lost():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.client_transport.write(b"last words")
    pair.client_transport.close()
    pair.pump()
    assert [kind for kind, _ in server.events] == ["made", "data", "lost"]
    assert server.received == b"last words"


def test_loopback_close_delivers_the_peers_reply_before_connection_lost():
    client = Recorder()
    pair = loopback(Echo(), client)
    pair.client_transport.write(b"bye")
    pair.client_transport.close()
    pair.pump()
    assert [kind for kind, _ in client.events] == ["made", "data", "lost"]


def test_loopback_connection_lost_comes_once_per_side():
    server, client = Recorder(), Recorder()
    pair = loopback(server, client)
    pair.client_transport.close()
    pair.pump()
    pair.pump()
    assert (len(server.lost()), len(client.lost())) == (1, 1)


def test_loopback_without_close_no_connection_lost():
    server, client = Recorder(), Recorder()
    pair = loopback(server, client)
    pair.client_transport.write(b"x")
    pair.pump()
    assert server.lost() == client.lost() == []


def test_loopback_abort_gives_both_sides_connection_lost():
    server, client = Recorder(), Recorder()
    pair = loopback(server, client)
    pair.client_transport.abort()
    pair.pump()
    assert [f.type for f in server.lost() + client.lost()] == [
        ns.ConnectionLost,
        ns.ConnectionLost,
    ]


def test_loopback_transports_are_closed_once_lost():
    pair = loopback(Recorder(), Recorder())
    pair.client_transport.close()
    pair.pump()
    with pytest.raises(RuntimeError):
        pair.server_transport.write(b"after the end")


def test_loopback_write_eof_calls_the_peers_eof_received():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.client_transport.write_eof()
    pair.pump()
    assert ("eof", None) in server.events


def test_loopback_eof_comes_after_the_data():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.client_transport.write(b"abc")
    pair.client_transport.write_eof()
    pair.pump()
    assert [kind for kind, _ in server.events] == ["made", "data", "eof"]


def test_loopback_eof_is_delivered_once():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.client_transport.write_eof()
    pair.pump()
    pair.pump()
    assert [kind for kind, _ in server.events].count("eof") == 1


def test_loopback_eof_is_not_counted_as_a_byte():
    pair = loopback(Recorder(), Recorder())
    pair.client_transport.write(b"abc")
    pair.client_transport.write_eof()
    assert pair.pump() == 3


def test_loopback_pause_reading_holds_delivery():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.server_transport.pause_reading()
    pair.client_transport.write(b"held")
    assert pair.pump() == 0
    assert server.received == b""


def test_loopback_resume_reading_and_pump_deliver_held_data():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.server_transport.pause_reading()
    pair.client_transport.write(b"held")
    pair.pump()
    pair.server_transport.resume_reading()
    assert pair.pump() == 4
    assert server.received == b"held"


def test_loopback_pause_reading_holds_connection_lost_until_data_delivered():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.server_transport.pause_reading()
    pair.client_transport.write(b"held")
    pair.client_transport.close()
    pair.pump()
    assert server.lost() == []
    pair.server_transport.resume_reading()
    pair.pump()
    assert [kind for kind, _ in server.events] == ["made", "data", "lost"]


def test_loopback_pause_reading_holds_eof():
    server = Recorder()
    pair = loopback(server, Recorder())
    pair.server_transport.pause_reading()
    pair.client_transport.write_eof()
    pair.pump()
    assert ("eof", None) not in server.events


# ---- success_result_of, failure_result_of, no_result


def test_success_result_of_gives_the_value():
    assert success_result_of(ns.succeed(3)) == 3


def test_success_result_of_unfired_raises_with_no_result_yet():
    d = ns.Deferred()
    with pytest.raises(AssertionError, match="has no result yet"):
        success_result_of(d)


def test_success_result_of_unfired_leaves_the_later_result_alone():
    d = ns.Deferred()
    with pytest.raises(AssertionError):
        success_result_of(d)
    d.callback(5)
    assert success_result_of(d) == 5


def test_success_result_of_failed_raises_with_the_failure():
    d = ns.fail(KeyError("missing key"))
    with pytest.raises(AssertionError, match="failed instead of succeeding") as info:
        success_result_of(d)
    assert "KeyError" in str(info.value)
    assert "missing key" in str(info.value)


def test_success_result_of_waiting_on_an_inner_deferred_raises():
    inner = ns.Deferred()
    outer = ns.succeed(None)
    outer.add_callback(lambda _: inner)
    with pytest.raises(AssertionError, match="has no result yet"):
        success_result_of(outer)


def test_success_result_of_paused_deferred_raises():
    d = ns.Deferred()
    d.pause()
    d.callback(1)
    with pytest.raises(AssertionError, match="has no result yet"):
        success_result_of(d)


def test_success_result_of_takes_the_result_out_of_the_chain():
    d = ns.succeed("value")
    success_result_of(d)
    later = []
    d.add_callback(later.append)
    assert later == [None]


def test_failure_result_of_gives_the_failure():
    f = failure_result_of(ns.fail(KeyError("k")))
    assert isinstance(f, ns.Failure)
    assert f.type is KeyError


def test_failure_result_of_with_a_matching_type_passes():
    f = failure_result_of(ns.fail(KeyError("k")), ValueError, LookupError)
    assert f.check(KeyError)


def test_failure_result_of_with_another_type_raises_naming_both():
    d = ns.fail(KeyError("k"))
    with pytest.raises(AssertionError, match="failed with KeyError, not ValueError, TypeError"):
        failure_result_of(d, ValueError, TypeError)


def test_failure_result_of_succeeded_raises_with_the_value():
    with pytest.raises(AssertionError, match="succeeded with 3 instead of failing"):
        failure_result_of(ns.succeed(3))


def test_failure_result_of_unfired_raises_with_no_result_yet():
    with pytest.raises(AssertionError, match="has no result yet"):
        failure_result_of(ns.Deferred())


def test_failure_result_of_handles_the_failure(caplog):
    d = ns.fail(KeyError("handled by the helper"))
    failure_result_of(d)
    with caplog.at_level(logging.ERROR, logger="netshell"):
        del d
        gc.collect()
    assert "handled by the helper" not in caplog.text


def test_no_result_passes_for_an_unfired_deferred():
    no_result(ns.Deferred())


def test_no_result_passes_for_one_waiting_on_an_inner_deferred():
    outer = ns.succeed(None)
    outer.add_callback(lambda _: ns.Deferred())
    no_result(outer)


def test_no_result_fired_raises_with_expected_no_result():
    with pytest.raises(AssertionError, match="was expected to have no result yet"):
        no_result(ns.succeed(1))


def test_no_result_failed_raises_with_expected_no_result():
    d = ns.fail(KeyError("k"))
    with pytest.raises(AssertionError, match="was expected to have no result yet"):
        no_result(d)
    d.add_errback(lambda f: None)


# ---- the pytest plugin, seen from outside with pytester


def _run_inner(pytester, source: str):
    pytester.makepyfile(test_inner=source)
    # Block the entry-point copy (when installed) and load the plugin explicitly,
    # so the inner run has it exactly once either way.
    return pytester.runpytest("-p", "no:netshell", "-p", "netshell.testing.pytest_plugin")


def test_plugin_reactor_and_clock_fixtures_and_async_test_pass(pytester):
    result = _run_inner(
        pytester,
        """
        import asyncio
        import netshell as ns
        from netshell.reactor import Reactor
        from netshell.testing import Clock

        def test_reactor_fixture(reactor):
            assert isinstance(reactor, Reactor)
            assert ns.get_reactor() is reactor

        def test_clock_fixture(clock):
            assert isinstance(clock, Clock)
            assert clock.seconds() == 0

        async def test_async_awaits_a_deferred(reactor):
            assert asyncio.get_running_loop() is reactor.loop
            d = ns.Deferred()
            reactor.call_later(0, d.callback, 42)
            assert await d == 42
        """,
    )
    result.assert_outcomes(passed=3)


def test_plugin_async_test_without_the_fixture_runs_on_a_reactor(pytester):
    result = _run_inner(
        pytester,
        """
        import asyncio
        import netshell as ns

        async def test_no_fixture_asked():
            assert ns.reactor.loop is asyncio.get_running_loop()
            assert await ns.succeed(7) == 7
        """,
    )
    result.assert_outcomes(passed=1)


def test_plugin_async_test_whose_deferred_fails_is_reported_failed(pytester):
    result = _run_inner(
        pytester,
        """
        import netshell as ns

        async def test_fails(reactor):
            d = ns.Deferred()
            reactor.call_later(0, d.errback, KeyError("inner failure"))
            await d
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*KeyError*inner failure*"])


def test_plugin_async_test_failing_assert_is_reported_failed(pytester):
    result = _run_inner(
        pytester,
        """
        import netshell as ns

        async def test_fails():
            assert await ns.succeed(1) == 2
        """,
    )
    result.assert_outcomes(failed=1)


def test_plugin_async_timeout_marker_fails_a_test_that_never_finishes(pytester):
    result = _run_inner(
        pytester,
        """
        import pytest
        import netshell as ns

        @pytest.mark.async_timeout(0.05)
        async def test_hangs():
            await ns.Deferred()
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*TimeoutError*"])


def test_plugin_reactor_fixture_closes_the_loop_after_the_test(pytester):
    result = _run_inner(
        pytester,
        """
        seen = []

        def test_first(reactor):
            seen.append(reactor)
            assert not reactor.loop.is_closed()

        def test_after():
            [r] = seen
            assert r.loop.is_closed()
            assert r.closed
        """,
    )
    result.assert_outcomes(passed=2)


def test_plugin_gives_each_test_a_fresh_reactor(pytester):
    result = _run_inner(
        pytester,
        """
        seen = []

        def test_one(reactor):
            seen.append(reactor)

        def test_two(reactor):
            assert reactor is not seen[0]
            assert reactor.loop is not seen[0].loop
        """,
    )
    result.assert_outcomes(passed=2)


def test_plugin_registers_the_async_timeout_marker(pytester):
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.async_timeout(5)
        async def test_marked():
            pass
        """
    )
    result = pytester.runpytest(
        "-p", "no:netshell", "-p", "netshell.testing.pytest_plugin", "--strict-markers"
    )
    result.assert_outcomes(passed=1)
