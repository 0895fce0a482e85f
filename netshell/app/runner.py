"""``netsh run``: scripts and saved sessions, headless, on a fresh reactor.

A script runs with the prompt's names (``listen``, ``conns``, ``wire``...) and
top-level ``await``. A cell-form script (``# %%`` markers, as ``save()`` writes)
runs cell by cell like the prompt ran it: each cell's last expression is shown,
and after each cell the reactor runs until the Deferreds the cell showed or
bound have fired and the connections it opened are quiet, at most ``settle``
seconds — so Deferred notes appear as they did at the prompt.

When the script ends with listeners open, the runner serves until SIGINT or
SIGTERM (unless ``exit_when_done``), then shuts down gracefully: it stops
accepting, runs the ``on_shutdown`` hooks (every connection still open: a hook may say
goodbye on one), closes the script's own connections, asks each served connection's
protocol to ``stop_gracefully()`` (HTTP closes the idle ones at once) and lets
connections finish within ``grace`` seconds. A second signal leaves at once,
connections aborted, with the signal's exit code. Exit codes: 0 success, 1 an uncaught exception
(on stderr: a common mistake on one line, any other error as a traceback of
the script's own frames, with its line numbers; every frame with ``verbose``),
2 usage error, 130 SIGINT,
143 SIGTERM.

Nothing here imports IPython or prompt_toolkit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import linecache
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from netshell.defer import Deferred, has_canceller, next_deferred_number
from netshell.reactor import Reactor, get_reactor, install
from netshell.shell import chains, namespace
from netshell.shell.console import Console, Input, input_entry
from netshell.shell.session import split_cells
from netshell.shell.tracebacks import format_error
from netshell.teach.watchdog import start_watchdog, stop_watchdog

__all__ = ["RunOptions", "run_source", "serve"]

log = logging.getLogger("netshell.runner")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
QUIET = 0.05  # seconds without bytes moving after which a connection counts as idle
CUT_WAIT = 0.1  # seconds a connection closed after its grace gets to close cleanly


@dataclass
class RunOptions:
    settle: float = 5.0  # seconds a cell may take to settle
    grace: float = 5.0  # seconds connections get to finish at shutdown
    exit_when_done: bool = False  # stop when the script ends, even with listeners open
    transcript: IO[str] | None = None  # JSON-lines transcript, as the prompt writes
    quiet: bool = False
    keep_going: bool = False  # after a cell raises, go on with the next (as the prompt does)
    verbose: bool = False  # errors with every frame (default: the script's own frames only)
    watch_blocking: bool = False  # say when a callback blocks the loop (teach.watchdog)


class ScriptFailed(Exception):
    """The script raised: its traceback has been printed."""


class _Runner:
    def __init__(self, reactor: Reactor, filename: str, options: RunOptions) -> None:
        self.reactor = reactor
        self.filename = filename
        self.options = options
        self.signal: int | None = None
        self.leaving = False  # a second signal: leave at once, no grace
        self.failed = False  # a cell raised (with keep_going)
        self.stop_serving: asyncio.Event = asyncio.Event()
        self.console = Console({"__file__": filename}, transcript_file=options.transcript,
                               name="cell", err=_print_stderr)
        self.console.verbose = options.verbose
        names = namespace.build(self.console)
        # A chain that ends with a failure no errback handled is reported on stderr, with
        # the script's line, shortly after (or as the script ends), not when collected.
        self.late = names["_helpers"].late
        self.late.where = self._script_line
        self.late.on_report = self._print_failure
        self.late.hint = "  (no errback handled it within {grace}s)"
        self._old_handlers: dict[int, Any] = {}

    # ---- signals

    def _on_signal(self, sig: int, frame: Any = None) -> None:
        # A Python-level handler, not loop.add_signal_handler: it runs even when the
        # script blocks the loop (time.sleep, a busy loop), where a loop callback never
        # would. The first signal asks for a graceful stop on the loop; a second one, if
        # the first has not ended things, leaves at once from wherever the code is.
        if self.signal is not None:
            log.warning("Second %s: leaving now", signal.Signals(sig).name)
            # Whoever catches this SystemExit (the script's run, _run_main) sees ``leaving``
            # and leaves without the graceful shutdown: no second grace.
            self.leaving = True
            raise SystemExit(EXIT_CODES.get(sig, 1))
        self.signal = sig
        if not self.options.quiet:
            name = signal.Signals(sig).name
            print(f"netsh: {name}: stopping (send it again to leave at once)", file=sys.stderr,
                  flush=True)
        self.reactor.loop.call_soon_threadsafe(self._stop_gracefully)

    def _stop_gracefully(self) -> None:
        self.stop_serving.set()
        task = self.console.task
        if task is not None:
            task.cancel()

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)

    # ---- running the script

    async def run(self, source: str) -> int:
        # Scripts only: `netsh serve` runs no chain of the person's, and watching every
        # Deferred has a cost.
        self.late.start()
        self.install_signals()
        try:
            return await self._run(source)
        finally:
            self.restore_signals()

    async def serve(self, start: Callable[[], Any], service: str) -> int:
        """Serve what ``start()`` listens on until a signal; print where, as ``netsh serve``."""
        self.install_signals()
        try:
            try:
                listener = start()
            except OSError as e:
                hint = "; --port 0 picks any free port" if e.errno == errno.EADDRINUSE else ""
                print(f"netsh serve {service}: {e}{hint}", file=sys.stderr)
                await self._shutdown()
                return EXIT_ERROR
            except Exception as e:
                self._print_exception(e)
                await self._shutdown()
                return EXIT_ERROR
            tls = getattr(listener, "tls_context", None) is not None
            print(serving_line(service, listener.address.host, listener.address.port, tls),
                  flush=True)
            if self.signal is None:
                await self.stop_serving.wait()
            if self.signal == signal.SIGINT:
                # As python -m http.server: Ctrl-C says so on a line of its own, exits 0.
                listener.close()
                print("\nKeyboard interrupt received, exiting.", flush=True)
                await self._shutdown()
                return EXIT_OK
            await self._shutdown()
            return EXIT_OK if self.signal is None else EXIT_CODES.get(self.signal, EXIT_ERROR)
        finally:
            self.restore_signals()

    async def _run(self, source: str) -> int:
        cells = split_cells(source)
        if cells is not None or "explain(" in source:
            # As at the prompt: a replayed session's notes stay last in their chains, and
            # explain() has steps to tell. Recording costs every Deferred a little, so a
            # plain script pays only if it asks for explain().
            chains.record()
        try:
            if cells is None:
                await self._run_whole(source)
            else:
                for first_line, cell in cells:
                    await self._run_cell(first_line, cell)
                    if self.signal is not None:
                        break
        except ScriptFailed:
            await self._shutdown()
            return EXIT_ERROR
        except SystemExit as e:
            if self.leaving:
                raise  # the second signal: _run_main leaves at once
            await self._shutdown()
            return _exit_code(e)
        if self.signal is None and self.reactor.listeners and not self.options.exit_when_done:
            if not self.options.quiet:
                where = ", ".join(str(x.address) for x in self.reactor.listeners)
                print(f"netsh: serving on {where}; Ctrl-C or SIGTERM stops", file=sys.stderr)
            await self.stop_serving.wait()
        await self._shutdown()
        if self.signal is not None:
            return EXIT_CODES.get(self.signal, EXIT_ERROR)
        return EXIT_ERROR if self.failed else EXIT_OK

    async def _run_whole(self, source: str) -> None:
        started = time.time()
        error: BaseException | None = None
        try:
            await self._exec_whole(source)
        except ScriptFailed as e:
            error = e.__cause__
            raise
        finally:
            # One transcript entry for the whole script, in the prompt's format.
            self.console.record(input_entry(
                1, source, started=started, kind="code",
                error=None if error is None else repr(error),
            ))

    async def _exec_whole(self, source: str) -> None:
        try:
            item = Input(source, self.filename, display_last=False)
        except SyntaxError as e:
            sys.stderr.write("".join(traceback.format_exception_only(type(e), e)))  # no frames
            raise ScriptFailed from e
        ns = self.console.namespace
        try:
            if item.awaits:
                task = asyncio.get_running_loop().create_task(_eval_async(item.body, ns))
                self.console.task = task
                try:
                    exit_request = await task
                finally:
                    self.console.task = None
                if exit_request is not None:
                    raise exit_request
            else:
                exec(item.body, ns)
        except SystemExit:
            raise
        except asyncio.CancelledError:
            if self.signal is None:
                raise
        except BaseException as e:
            self._print_exception(e)
            raise ScriptFailed from e

    def _script_line(self, failure: Any) -> str | None:
        """Where in the script ``failure`` was raised: its innermost frame in the file."""
        name = os.path.basename(self.filename)
        found = None
        for frame, line in traceback.walk_tb(failure.tb):
            if frame.f_code.co_filename == self.filename:
                found = f"{name}, line {line}"
        return found

    def _print_failure(self, failure: Any) -> None:
        """Below a late failure's report: its traceback, as an error of the script's."""
        if failure.tb is not None:
            self._print_exception(failure.value.with_traceback(failure.tb))

    def _print_exception(self, e: BaseException) -> None:
        """Print ``e`` on stderr as the prompt shows it: short unless ``--verbose``."""
        self.console.last_error = e
        # --verbose sets the console's switch; the script may turn it on with verbose(True)
        text = format_error(e, verbose=self.console.verbose, namespace=self.console.namespace,
                            skip=__file__)
        print(text, file=sys.stderr)

    async def _run_cell(self, first_line: int, cell: str) -> None:
        first_deferred = next_deferred_number()
        moved_before = {c: _moved(c) for c in self.reactor.connections}
        timers_before = set(self.reactor.delayed_calls)
        # Leading newlines give the cell its line numbers in the file.
        entry = await self.console.run("\n" * (first_line - 1) + cell, filename=self.filename)
        if entry["error"] is not None:
            if self.signal is not None:
                return
            if not self.options.keep_going:
                raise ScriptFailed(entry["error"])
            self.failed = True
        await self._settle(first_deferred, moved_before, timers_before)

    async def _settle(self, first_deferred: int, moved_before: dict[Any, int],
                      timers_before: set[Any]) -> None:
        """Let what the cell set in motion finish, at most ``settle`` seconds.

        In motion: timed calls the cell scheduled that fall due in that time,
        Deferreds it created and left in the namespace that stand for work under
        way (they have a canceller: a connect, a sleep, a thread...), and the
        connections it opened or wrote to, until no byte has moved on them for a
        moment. A bare ``Deferred()`` waits for a later cell to fire it, so it is not
        waited for.
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.options.settle
        loop_deadline = loop.time() + self.options.settle
        last_moved: dict[Any, tuple[int, float]] = {}
        while time.monotonic() < deadline and self.signal is None:
            timers = [c for c in self.reactor.delayed_calls
                      if c not in timers_before and c.time <= loop_deadline]
            working = [
                v for v in list(self.console.namespace.values())
                if isinstance(v, Deferred) and v.number >= first_deferred
                and (not v.called or v.waiting_on is not None)
                and (has_canceller(v) or v.waiting_on is not None)
            ]
            now = time.monotonic()
            busy = []
            for c in self.reactor.connections:
                moved = _moved(c)
                if moved_before.get(c) == moved and c not in last_moved:
                    continue  # untouched by this cell so far
                seen = last_moved.get(c)
                if seen is None or seen[0] != moved:
                    last_moved[c] = (moved, now)
                    busy.append(c)
                elif now - seen[1] < QUIET:
                    busy.append(c)
            if not timers and not working and not busy:
                return
            await asyncio.sleep(0.01)

    # ---- shutting down

    async def _shutdown(self) -> None:
        r = self.reactor
        if self.leaving:
            _abort_all(r)
            return
        closed = [str(x.address) for x in r.listeners]
        for listener in r.listeners:
            listener.close()
        r.shutdown_timeout = self.options.grace
        # The on_shutdown hooks first, while every connection is still open: a bot's hook
        # says QUIT on its own connection, a server's tells its clients goodbye.
        await r._run_shutdown_hooks()
        own: list[Any] = []
        if self.signal is not None:
            # The script's own connections (it connected out; no listener accepted them)
            # close at once, as at Ctrl-D at the prompt: the grace is for the peers served.
            own = [c for c in r.connections if c.listener is None]
            for c in own:
                c.close()
        served = [c for c in r.connections if c.listener is not None]
        if self.signal is not None and served:
            # Protocols that know when they are between requests (HTTP keep-alive) close
            # the idle ones now and the others after their answer: the grace is for work
            # under way. Any other protocol keeps its connection open for the grace.
            for c in served:
                stop = getattr(getattr(c, "protocol", None), "stop_gracefully", None)
                if stop is not None:
                    try:
                        stop()
                    except Exception:
                        log.exception("Error in %r.stop_gracefully", c.protocol)
            await asyncio.sleep(0)  # a plain close is over after one turn of the loop
            served = [c for c in r.connections if c.listener is not None]
        if self.signal is not None and not self.options.quiet:
            name = signal.Signals(self.signal).name
            closing = f"; closed {_connections(len(own))} of its own" if own else ""
            waiting = (f"; waiting up to {self.options.grace:g}s for "
                       f"{_connections(len(served))}" if served else "")
            stopped = f"stopped listening on {', '.join(closed)}" if closed else "stopping"
            print(f"netsh: {name}: {stopped}{closing}{waiting}", file=sys.stderr, flush=True)
        if r.connections and self.signal is not None:
            # Serving was interrupted: requests under way get ``grace`` seconds to finish.
            finished, _ = await asyncio.wait([r.connections_closed().as_future()],
                                             timeout=self.options.grace)
            if not finished and r.connections:
                log.warning("%s still open after %ss: closing them",
                            _connections(len(r.connections)), self.options.grace)
                await _cut(r)  # their grace is over: stop() gives them no other
        await r.stop()


def _connections(n: int) -> str:
    return f"{n} connection" if n == 1 else f"{n} connections"


def _abort_all(r: Reactor) -> None:
    """Leave at once (a second signal): stop listening, abort every connection."""
    for listener in r.listeners:
        listener.close()
    for c in r.connections:
        c.abort()


async def _cut(r: Reactor) -> None:
    """Close ``r``'s connections now: an idle one cleanly; one that cannot close within
    CUT_WAIT (a peer that reads nothing, a TLS peer that does not answer close_notify)
    is aborted."""
    for c in r.connections:
        c.close()
    closed = r.connections_closed()
    done, _ = await asyncio.wait([closed.as_future()], timeout=CUT_WAIT)
    if not done:
        closed.cancel()
        for c in r.connections:
            c.abort()


async def _eval_async(code: Any, ns: dict[str, Any]) -> SystemExit | None:
    """Run ``code``; a SystemExit it raises is returned, not raised.

    Raised in a task, SystemExit would stop the loop at once, in the middle of
    whatever else runs (the graceful shutdown included).
    """
    try:
        result = eval(code, ns)
        if asyncio.iscoroutine(result):
            await result
    except SystemExit as e:
        return e
    return None


def _print_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def _moved(c: Any) -> int:
    return int(c.bytes_received + c.bytes_sent + c.write_buffer_size)


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return EXIT_OK
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return EXIT_ERROR


def run_source(
    source: str,
    filename: str,
    argv: list[str],
    options: RunOptions | None = None,
    use_uvloop: bool | None = None,
) -> int:
    """Run ``source`` headless on a fresh reactor; return the exit code."""
    if filename.startswith("<"):  # not a file on disk: tracebacks still show its lines
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return _run_main(lambda runner: runner.run(source), filename, argv, options, use_uvloop)


def _run_main(
    main_of: Callable[[_Runner], Coroutine[Any, Any, int]],
    filename: str,
    argv: list[str],
    options: RunOptions | None,
    use_uvloop: bool | None,
) -> int:
    """Run ``main_of(runner)`` on a fresh reactor, signals handled; return the exit code."""
    options = options or RunOptions()
    r = Reactor(use_uvloop=use_uvloop)
    install(r)
    asyncio.set_event_loop(r.loop)
    old_argv = sys.argv
    sys.argv = list(argv)
    runner = _Runner(r, filename, options)
    if options.watch_blocking:
        start_watchdog(r.loop, own=[runner.console.namespace])
    main = r.loop.create_task(main_of(runner))
    try:
        return r.run_until(main)
    except SystemExit as e:
        if runner.leaving:
            # A second signal: no graceful shutdown (it may be the one under way), no
            # grace again. Connections are aborted; the loop turns only long enough for
            # the script's task to end and the sockets to close.
            _abort_all(r)
            main.cancel()
            with contextlib.suppress(BaseException):
                r.run_until(asyncio.wait([main], timeout=CUT_WAIT))
            return _exit_code(e)
        # sys.exit() in a callback (a timer, a protocol) stops the loop at once: finish
        # the way the script's own sys.exit() does, hooks and grace included.
        main.cancel()
        try:
            r.run_until(main)
        except BaseException:  # it was cancelled
            pass
        if not r.closed:
            r.run_until(runner._shutdown())
        return _exit_code(e)
    finally:
        # What waits for its grace is reported now: there is no later.
        runner.late.flush("  (no errback handled it before the script ended)")
        stop_watchdog(r.loop)
        chains.stop_recording()
        runner.console.close()
        sys.argv = old_argv
        if not r.closed:
            r.close()
        asyncio.set_event_loop(None)


def serving_line(service: str, host: str, port: int, tls: bool = False) -> str:
    """What ``netsh serve`` prints once it listens: python -m http.server's line. ``tls``:
    the listener speaks TLS from the first byte (IRC's URL is then ircs://; FTP's TLS is
    asked for on the connection, its URL stays ftp://)."""
    url_host = f"[{host}]" if ":" in host else host
    scheme = {"http": "http", "ftp": "ftp", "irc": "ircs" if tls else "irc", "smtp": "smtp",
              "pop3": "pop", "imap": "imap"}.get(service)  # pop: RFC 2384, imap: RFC 5092
    url = f" ({scheme}://{url_host}:{port}/)" if scheme else ""
    return f"Serving {service.upper()} on {host} port {port}{url} ..."


# As http.server's log_message: control characters (and the backslash) escaped.
_CONTROL_CHARS = str.maketrans(
    {c: rf"\x{c:02x}" for c in itertools.chain(range(0x20), range(0x7F, 0xA0))})
_CONTROL_CHARS[ord("\\")] = r"\\"
_MONTHS = (None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")


class AccessLogFormatter(logging.Formatter):
    """The HTTP server's access records in python -m http.server's shape.

    ``127.0.0.1 - - [05/Dec/2026 04:50:00] "GET / HTTP/1.1" 200 -``: local time as its
    log_date_time_string gives it, and ``-`` for the size, as SimpleHTTPRequestHandler logs.
    """

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5):  # not a response record
            return super().format(record)
        host, _, request_line, status, _size = args
        year, month, day, hh, mm, ss, *_ = time.localtime(record.created)
        when = f"{day:02d}/{_MONTHS[month]:>3}/{year:04d} {hh:02d}:{mm:02d}:{ss:02d}"
        message = f'"{request_line}" {status} -'.translate(_CONTROL_CHARS)
        return f"{host} - - [{when}] {message}"


@contextlib.contextmanager
def _log_on_stderr(name: str, formatter: logging.Formatter) -> Iterator[None]:
    """Logger ``name``'s INFO lines on stderr, and only there, while the block runs: the
    HTTP access log (one line per answer), an FTP server's logins and transfers."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@dataclass
class FTPOptions:
    """``netsh serve ftp``'s own options."""

    users: list[str] = field(default_factory=list)  # NAME:PASSWORD, as typed
    writable: bool = False
    tls: bool = False
    cert: str | None = None
    key: str | None = None


@dataclass
class IRCOptions:
    """``netsh serve irc``'s own options."""

    name: str | None = None
    password: str | None = None
    opers: list[str] = field(default_factory=list)  # NAME:PASSWORD, as typed
    accounts: list[str] = field(default_factory=list)
    tls: bool = False
    cert: str | None = None
    key: str | None = None


@dataclass
class MailOptions:
    """``netsh serve smtp|pop3|imap``'s own options."""

    maildir: str | None = None  # the root: DIR/<user> is each user's Maildir
    users: list[str] = field(default_factory=list)  # NAME:PASSWORD, as typed
    tls: bool = False
    cert: str | None = None
    key: str | None = None


def _name_passwords(specs: list[str], flag: str = "--user") -> dict[str, str]:
    users: dict[str, str] = {}
    for spec in specs:
        name, sep, password = spec.partition(":")
        if not sep or not name:
            raise ValueError(f"{flag} takes NAME:PASSWORD, not {spec!r}")
        users[name] = password
    return users


def _tls_context(options: FTPOptions | IRCOptions | MailOptions) -> Any:
    """The server context for ``--tls``: from --cert/--key, or a throwaway certificate
    whose SHA-256 fingerprint is printed (a client checks it, or trusts it once)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from netshell import tls

    if options.cert or options.key:
        if not (options.cert and options.key):
            raise ValueError("--cert and --key go together")
        cert: Any = options.cert
        context = tls.server_context(options.cert, options.key)
        with open(options.cert, "rb") as f:
            cert = f.read()
    else:
        cert, key, _ca = tls.self_signed("localhost", "127.0.0.1", "::1")
        context = tls.server_context(cert, key)
    digest = x509.load_pem_x509_certificate(cert).fingerprint(hashes.SHA256()).hex(":").upper()
    what = "certificate" if options.cert else "throwaway certificate"
    print(f"TLS {what}, SHA-256 fingerprint {digest}", flush=True)
    return context


SERVICES = ("echo", "discard", "chargen", "daytime", "qotd", "http", "ftp", "irc", "smtp", "pop3",
            "imap")
# The port each service listens on when no --port is given, fixed as http.server's 8000 is.
# The customary ports of the small services (echo 7, discard 9, daytime 13, qotd 17,
# chargen 19) need privileges: theirs here is that number written twice, unprivileged.
# FTP's 21 needs privileges too: 2121, as python -m pyftpdlib. IRC's own 6667 needs none.
# Mail's need privileges: SMTP 2525 (25 written twice), POP3 1110 and IMAP 1143 (a
# thousand more, as 110 or 143 twice would be no port).
DEFAULT_PORTS = {"http": 8000, "ftp": 2121, "irc": 6667, "smtp": 2525, "pop3": 1110,
                 "imap": 1143, "echo": 7007, "discard": 9009, "daytime": 13013, "qotd": 17017,
                 "chargen": 19019}


def _mail_starter(service: str, maildir: str, users: dict[str, str], context: Any,
                  port: int, interface: str) -> Callable[[], Any]:
    """What starts ``netsh serve smtp|pop3|imap``."""
    if service == "smtp":
        from protocols.mail import smtp
        from protocols.mail.maildir import Maildir

        boxes: dict[str, Maildir] = {}

        def store(stored: bytes, names: list[str]) -> None:
            for name in names:
                box = boxes.get(name)
                if box is None:
                    box = boxes[name] = Maildir(os.path.join(maildir, name))
                box.deliver(stored)

        def deliver(envelope: Any) -> Any:
            # Each recipient's copy in the Maildir named by the address's local part, as
            # pop3 and imap serve them: DIR/<user>. Written (and fsynced) in a worker
            # thread, as smtp.serve does for a Maildir of its own: not on the loop.
            stored = (f"Return-Path: <{envelope.sender}>\r\n".encode("utf-8", "surrogateescape")
                      + envelope.data)  # RFC 5321 4.4: added at final delivery
            names = list(dict.fromkeys(
                _mailbox_name(str(r).rpartition("@")[0] or str(r)) for r in envelope.recipients))
            return get_reactor().defer_to_thread(store, stored, names)

        return lambda: smtp.serve(port, interface, deliver=deliver, tls=context)
    if service == "pop3":
        from protocols.mail import pop3

        return lambda: pop3.serve(maildir, users, port, interface, tls=context,
                                  require_tls=context is not None)
    from protocols.mail.imap import server as imap_server

    return lambda: imap_server.serve(maildir, users, port, interface, tls=context,
                                     require_tls=context is not None)


def _mailbox_name(local: str) -> str:
    """A recipient's local part as a folder name: no path in it."""
    name = local.replace("/", "_").replace("\\", "_").lstrip(".")
    return name or "_"


def serve(service: str, port: int | None, interface: str, options: RunOptions,
          directory: str | None = None, use_uvloop: bool | None = None,
          ftp_options: FTPOptions | None = None, irc_options: IRCOptions | None = None,
          mail_options: MailOptions | None = None) -> int:
    """``netsh serve``: one service on ``interface:port`` until SIGINT or SIGTERM.

    ``http`` serves ``directory`` (default: the current one) as static files; ``ftp``
    serves it over FTP (anonymous and read-only unless ``ftp_options`` say otherwise); ``irc``
    is an IRC server (its name, password, operators, accounts and TLS in ``irc_options``);
    ``smtp`` delivers into ``mail_options.maildir``/<recipient's local part>, and ``pop3``
    and ``imap`` serve ``mail_options.maildir``/<user> to ``mail_options.users``.
    """
    # The protocol library is imported here, not at the top: `netsh run` does not pay for it.
    from protocols import http, wire

    if port is None:
        port = DEFAULT_PORTS[service]
    start: Callable[[], Any]
    if service in ("http", "ftp"):
        root = os.path.abspath(directory or ".")
        if not os.path.isdir(root):
            print(f"netsh serve {service}: not a directory: {root}", file=sys.stderr)
            return EXIT_USAGE
    if service == "http":

        def start() -> Any:
            return http.serve(root, port=port, interface=interface)

    elif service == "ftp":
        from protocols import ftp

        fo = ftp_options or FTPOptions()
        try:
            users = _name_passwords(fo.users)
            context = _tls_context(fo) if fo.tls else None
        except (ValueError, OSError) as e:
            print(f"netsh serve ftp: {e}", file=sys.stderr)
            return EXIT_USAGE

        def start() -> Any:
            return ftp.serve(root, port=port, interface=interface, users=users or None,
                             anonymous=not users, writable=fo.writable, tls=context,
                             require_tls=context is not None)

    elif service == "irc":
        from protocols import irc

        io_ = irc_options or IRCOptions()
        try:
            opers = _name_passwords(io_.opers, "--oper")
            accounts = _name_passwords(io_.accounts, "--account")
            irc_context = _tls_context(io_) if io_.tls else None
        except (ValueError, OSError) as e:
            print(f"netsh serve irc: {e}", file=sys.stderr)
            return EXIT_USAGE

        def start() -> Any:
            return irc.serve(port=port, interface=interface, name=io_.name or "irc.local",
                             password=io_.password, opers=opers or None,
                             accounts=accounts or None, tls=irc_context)

    elif service in ("smtp", "pop3", "imap"):
        mo = mail_options or MailOptions()
        try:
            if not mo.maildir:
                raise ValueError("--maildir DIR is needed")
            maildir = os.path.abspath(mo.maildir)
            os.makedirs(maildir, exist_ok=True)
            mail_users = _name_passwords(mo.users)
            if service != "smtp" and not mail_users:
                raise ValueError("a --user NAME:PASSWORD is needed")
            mail_context = _tls_context(mo) if mo.tls else None
        except (ValueError, OSError) as e:
            print(f"netsh serve {service}: {e}", file=sys.stderr)
            return EXIT_USAGE
        start = _mail_starter(service, maildir, mail_users, mail_context, port, interface)
    else:
        make_factory = getattr(wire, f"{service}_factory")

        def start() -> Any:
            return get_reactor().listen_tcp(port, make_factory(), interface=interface)

    log: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if not options.quiet and service == "http":
        log = _log_on_stderr(namespace.ACCESS_LOGGER, AccessLogFormatter())
    elif not options.quiet and service in ("ftp", "irc", "smtp", "pop3", "imap"):
        log = _log_on_stderr(f"netshell.{service}", logging.Formatter(
            "%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    options.exit_when_done = False
    options.quiet = True
    with log:
        return _run_main(
            lambda runner: runner.serve(start, service),
            f"<serve {service}>",
            ["netsh serve", service],
            options,
            use_uvloop,
        )
