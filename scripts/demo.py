"""A headless tour of the netshell core: Deferreds, timers, threads and asyncio on one reactor.

Run it with ``python scripts/demo.py``. Each line it prints says what just
happened and when, in seconds since the start.
"""

import hashlib

import netshell as ns
from netshell import reactor

start = reactor.seconds()


def say(what: str) -> None:
    print(f"[{reactor.seconds() - start:5.2f}s] {what}")


def hash_in_thread(data: bytes) -> str:
    # Blocking work belongs in a thread; its result comes back as a Deferred.
    return hashlib.sha256(data * 200_000).hexdigest()[:16]


async def main() -> None:
    say("reactor running on the " + reactor.loop_name + " loop")

    # A Deferred with a chain: each step gets the previous step's result.
    d = ns.Deferred()
    d.add_callback(lambda n: n * 2)
    d.add_callback(lambda n: say(f"callback chain gave {n}") or n)
    reactor.call_later(0.2, d.callback, 21)
    say(f"made {d!r}; a timer fires it in 0.2s")
    await d

    # An error switches the chain to errbacks; an errback can recover.
    def boom(_):
        raise ValueError("bad input")

    recovered = (
        await ns.succeed(1)
        .add_callback(boom)
        .add_errback(lambda f: f"recovered from {f.type.__name__}: {f.value}")
    )
    say(recovered)

    # Threads as sources of Deferreds, gathered with a plain timer.
    digest, _ = await ns.gather(ns.defer_to_thread(hash_in_thread, b"netshell"), ns.sleep(0.1))
    say(f"thread hashed 1.6 MB: sha256 {digest}...")

    # A timeout turns a Deferred that never fires into a TimeoutError.
    try:
        await ns.Deferred().add_timeout(0.3)
    except ns.TimeoutError as e:
        say(f"timed out as expected: {e}")

    say("stopping")
    reactor.stop()


ns.ensure_deferred(main()).add_errback(lambda f: (print(f.get_traceback()), reactor.stop()))
reactor.run()
print("done")
