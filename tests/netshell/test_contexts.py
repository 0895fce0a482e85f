"""Work runs in the context (contextvars) of the code that started it.

A Jupyter kernel (ipykernel 7) sends what is printed to the cell whose parent header
is in a context variable; asyncio's call_later and tasks copy the context. These tests
hold the reactor to the same rule where it schedules or hands work on itself: timed
calls (also when moved from elsewhere), jobs in the thread pool and the Deferreds they
fire, ``call_from_thread`` from a pool thread, and the connections a listener accepts
after the code that made it has finished.
"""

from __future__ import annotations

import contextvars
import socket

import netshell as ns

WAIT = 10  # seconds: a bound for waits that should end at once

cell: contextvars.ContextVar[str] = contextvars.ContextVar("cell", default="none")


def in_cell(name: str, f, *args):
    """Run ``f(*args)`` in a fresh context where ``cell`` is ``name`` (as a kernel runs one)."""

    def run():
        cell.set(name)
        return f(*args)

    return contextvars.copy_context().run(run)


async def test_a_timed_call_runs_in_the_context_that_scheduled_it(reactor):
    seen = ns.Deferred()
    in_cell("cell 1", reactor.call_later, 0, lambda: seen.callback(cell.get()))
    assert cell.get() == "none"
    assert await seen.add_timeout(WAIT) == "cell 1"


async def test_a_timed_call_moved_from_another_context_keeps_its_own(reactor):
    seen = ns.Deferred()
    call = in_cell("cell 1", reactor.call_later, 3600, lambda: seen.callback(cell.get()))
    in_cell("cell 3", call.reset, 0)
    assert await seen.add_timeout(WAIT) == "cell 1"


def test_a_testing_clock_runs_a_call_in_its_makers_context_too():
    from netshell.testing import Clock

    clock = Clock()
    seen = []
    in_cell("cell 1", clock.call_later, 1, lambda: seen.append(cell.get()))
    in_cell("cell 3", clock.advance, 1)
    assert seen == ["cell 1"]


async def test_a_deferred_from_a_thread_fires_in_the_context_that_made_the_job(reactor):
    def start():
        d = ns.defer_to_thread(cell.get)  # the worker sees the cell too
        d.add_callback(lambda in_thread: (in_thread, cell.get()))
        return d

    d = in_cell("cell 2", start)
    assert await d.add_timeout(WAIT) == ("cell 2", "cell 2")


async def test_call_from_thread_in_a_pool_job_runs_in_the_jobs_context(reactor):
    seen = ns.Deferred()

    def job():
        reactor.call_from_thread(lambda: seen.callback(cell.get()))

    in_cell("cell 2", reactor.call_in_thread, job)
    assert await seen.add_timeout(WAIT) == "cell 2"


async def test_a_listener_runs_its_protocols_in_the_context_it_was_made_in(reactor):
    seen: list[tuple[str, str]] = []
    got = ns.Deferred()

    class Note(ns.Protocol):
        def connection_made(self, transport):
            seen.append(("made", cell.get()))

        def data_received(self, data):
            seen.append(("data", cell.get()))
            # a timed call made by the protocol belongs to the listener's cell too
            reactor.call_later(0, lambda: got.callback(cell.get()))

    listener = in_cell("cell 1", reactor.listen_tcp, 0, ns.Factory.for_protocol(Note))
    await listener
    client = socket.socket()
    client.setblocking(False)

    def connect_and_send():
        # Connecting while "cell 3" runs: what the listener does is still cell 1's.
        try:
            client.connect(("127.0.0.1", listener.port))
        except BlockingIOError:
            pass

    in_cell("cell 3", connect_and_send)
    await reactor.loop.sock_sendall(client, b"x")
    try:
        assert await got.add_timeout(WAIT) == "cell 1"
        assert seen == [("made", "cell 1"), ("data", "cell 1")]
    finally:
        client.close()
        await listener.close()
