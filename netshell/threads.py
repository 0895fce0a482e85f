"""Threads as sources of Deferreds: a bounded, resizable pool, and defer_to_thread.

Blocking work (a DB-API call, a DNS lookup, a large file hash) runs in a worker
thread; its result or exception comes back to the reactor's thread and fires a
Deferred there. Nothing here touches the event loop from a worker except
through ``call_soon_threadsafe``.

A job runs in the context (:mod:`contextvars`) of the code that submitted it, as
``asyncio.to_thread`` does: a Deferred fired from it, and what the thread's
``call_from_thread`` runs, belong to the submitter (in a Jupyter kernel: its cell).
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from netshell.current import get_reactor
from netshell.defer import Deferred
from netshell.failure import Failure

__all__ = ["ThreadPool", "defer_to_thread"]

log = logging.getLogger("netshell.threads")

# on_done(ok, result) runs in the worker thread: result is a value, or a Failure.
_OnDone = Callable[[bool, Any], None]
_Job = tuple[
    Callable[..., Any], tuple[Any, ...], dict[str, Any], _OnDone | None, contextvars.Context
]


class ThreadPool:
    """Worker threads started on demand, up to ``max_workers``.

    Jobs run in the order submitted. The size can change while running
    (:meth:`resize`); extra workers leave once they finish their job.

    ``worker_init`` and ``worker_exit``, when given, are called with no
    arguments in each worker thread: ``worker_init`` when the thread starts,
    before its first job, and ``worker_exit`` when it leaves (after
    :meth:`stop`, or when :meth:`resize` made it surplus). They let a user of
    the pool keep state confined to one thread, such as a database connection
    that must be made and closed in the thread that uses it. An exception from
    either is logged; the worker goes on (or leaves) all the same.

    Example::

        >>> import threading
        >>> from netshell.threads import ThreadPool
        >>> names = []
        >>> pool = ThreadPool(1, worker_init=lambda: names.append("init"))
        >>> pool.submit(names.append, ("job",))
        >>> pool.stop(5)
        True
        >>> names
        ['init', 'job']
    """

    def __init__(
        self,
        max_workers: int = 10,
        name: str = "netshell-worker",
        *,
        worker_init: Callable[[], None] | None = None,
        worker_exit: Callable[[], None] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("a ThreadPool needs at least one worker")
        self.max_workers = max_workers
        self.name = name
        self.worker_init = worker_init
        self.worker_exit = worker_exit
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: set[threading.Thread] = set()
        # Idle counts the workers started and not yet running a job, so that a
        # job submitted right after a worker starts waits for it, not for another.
        self._idle = 0
        self._queued = 0
        self._busy = 0
        self._stopped = False
        self._serial = 0

    @property
    def workers(self) -> int:
        """How many worker threads are alive now."""
        return len(self._workers)

    @property
    def busy(self) -> int:
        """How many workers are running a job now."""
        return self._busy

    @property
    def queued(self) -> int:
        """How many jobs wait for a worker."""
        return self._queued

    def resize(self, max_workers: int) -> None:
        """Set the largest number of workers. Raises ValueError below 1."""
        if max_workers < 1:
            raise ValueError("a ThreadPool needs at least one worker")
        with self._lock:
            surplus = len(self._workers) - max_workers
            self.max_workers = max_workers
            idle_to_stop = min(max(surplus, 0), self._idle)
            # Growing: jobs that wait for a worker get one now, not at the next submit.
            wanted = 0 if self._stopped else min(-surplus, self._queued - self._idle)
            started = [self._new_worker() for _ in range(max(wanted, 0))]
        for _ in range(idle_to_stop):
            self._queue.put(None)
        for t in started:
            t.start()

    def start_workers(self, count: int) -> int:
        """Start ``count`` more workers now, rather than when jobs come, up to ``max_workers``.

        Returns how many were started. Raises RuntimeError once the pool is stopped.
        """
        with self._lock:
            if self._stopped:
                raise RuntimeError("the thread pool is stopped")
            room = self.max_workers - len(self._workers)
            started = [self._new_worker() for _ in range(max(min(count, room), 0))]
        for t in started:
            t.start()
        return len(started)

    def _new_worker(self) -> threading.Thread:
        # Called with the lock held; the caller starts the thread once it is released.
        self._serial += 1
        t = threading.Thread(target=self._work, name=f"{self.name}-{self._serial}", daemon=True)
        self._workers.add(t)
        self._idle += 1
        return t

    def submit(
        self,
        f: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kw: dict[str, Any] | None = None,
        on_done: Callable[[bool, Any], None] | None = None,
    ) -> None:
        """Run ``f(*args, **kw)`` in a worker; then ``on_done(ok, result)`` in that worker.

        Both run in a copy of the caller's context (:mod:`contextvars`). Without
        ``on_done``, an exception from ``f`` is logged. Raises RuntimeError once the pool
        is stopped.
        """
        with self._lock:
            if self._stopped:
                raise RuntimeError("the thread pool is stopped")
            self._queued += 1
            start = self._queued > self._idle and len(self._workers) < self.max_workers
            if start:
                t = self._new_worker()
        self._queue.put((f, args, kw or {}, on_done, contextvars.copy_context()))
        if start:
            t.start()

    def _work(self) -> None:
        me = threading.current_thread()
        self._call_hook(self.worker_init, "worker_init")
        try:
            self._work_loop(me)
        finally:
            self._call_hook(self.worker_exit, "worker_exit")

    def _call_hook(self, hook: Callable[[], None] | None, what: str) -> None:
        if hook is None:
            return
        try:
            hook()
        except BaseException:
            log.exception("Error in the %s of %r", what, self)

    def _work_loop(self, me: threading.Thread) -> None:
        # The thread counts as idle from its start (see _new_worker) and again after each job.
        while True:
            job = self._queue.get()
            with self._lock:
                self._idle -= 1
                if job is None:
                    self._workers.discard(me)
                    return
                self._queued -= 1
                self._busy += 1
            f, args, kw, on_done, context = job
            del job
            try:
                result = context.run(f, *args, **kw)
                ok = True
            except BaseException:
                result = Failure()
                ok = False
            # The counters say "done" before whoever waits hears so, not after.
            with self._lock:
                self._busy -= 1
                leaving = len(self._workers) > self.max_workers
                if leaving:
                    self._workers.discard(me)
                else:
                    self._idle += 1
            try:
                if on_done is not None:
                    context.run(on_done, ok, result)
                elif not ok:
                    exc_info = (result.type, result.value, result.tb)
                    log.error("Error in %r run in a thread", f, exc_info=exc_info)
            except BaseException:
                log.exception("Error while handing back the result of %r", f)
            del f, args, kw, on_done, result, context
            if leaving:
                return

    def stop(self, timeout: float | None = None) -> bool:
        """Stop taking jobs, let the queued ones finish, and join the workers.

        Waits at most ``timeout`` seconds in all (None: as long as it takes).
        Returns True when every worker has exited.
        """
        with self._lock:
            self._stopped = True
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            t.join(left)
        return not any(t.is_alive() for t in workers)

    def __repr__(self) -> str:
        return (
            f"<ThreadPool {self.busy} busy / {self.workers} workers (max {self.max_workers}), "
            f"{self.queued} queued>"
        )


def defer_to_thread(f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
    """Run ``f(*args, **kw)`` in the current reactor's thread pool.

    Returns a Deferred that fires in the reactor's thread with what ``f``
    returned, or fails with what it raised (traceback included).

    Example::

        >>> import hashlib, netshell as ns
        >>> d = ns.defer_to_thread(hashlib.sha256, b"abc")
        >>> d
        <Deferred #... pending>
    """
    return get_reactor().defer_to_thread(f, *args, **kw)
