"""The names a person finds at the prompt, and the inspection helpers among them.

:func:`build` returns the namespace dict: the core's names (``reactor``,
``Deferred``, ``listen``, ...), the protocol modules that exist (``basic``,
``wire``, ``http``, ...) and the helpers ``listeners()``, ``conns()``, ``deferreds()``,
``conn(n)``, ``listener(n)``, ``trace()``, ``untrace()``, ``explain(d)``,
``notify()``, ``tb()``, ``verbose()``, ``help()``, ``simulate(steps, value)`` and
``late_failures()`` (the report of a failure no errback handled, :mod:`netshell.teach.late`).
The prompt, ``netsh --ipython`` and Jupyter share it.
"""

from __future__ import annotations

import builtins
import contextvars
import importlib
import importlib.abc
import importlib.util
import logging
import re
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

import netshell as ns
from netshell.protocol import ClientFactory, Factory, Protocol
from netshell.shell import chains, progress, session
from netshell.shell.display import Table, connection_table, human_age, listener_table
from netshell.shell.tracing import Tracer
from netshell.teach import late as late_failures
from netshell.teach import watchdog
from netshell.teach.lessons.teacher import LessonCommand, Teacher
from netshell.teach.simulate import simulate

__all__ = ["MODULE_PATHS", "PROTOCOL_MODULES", "Help", "Helpers", "build", "creation_site",
           "deferred_table", "module_path", "pending_deferreds", "tour"]

log = logging.getLogger("netshell.shell")

#: The logger the HTTP servers write their access log to (protocols/http/server.py).
ACCESS_LOGGER = "netshell.http.access"
#: The loggers whose INFO lines ``log()`` shows above the prompt, as they are: the HTTP
#: access log, the FTP servers' logins and transfers (protocols/ftp/server.py), and what
#: IRC clients hear: messages, joins, parts... (protocols/irc/client.py), and the mail
#: servers' deliveries and logins (protocols/mail/).
REQUEST_LOGGERS = (ACCESS_LOGGER, "netshell.ftp", "netshell.irc.client", "netshell.smtp",
                   "netshell.pop3", "netshell.imap")

#: Protocol modules put in the namespace when they exist (they land issue by issue).
PROTOCOL_MODULES = ("basic", "wire", "http", "ftp", "irc", "smtp", "pop3", "imap", "nntp", "dns",
                    "telnet", "ssh")
#: Where a protocol module lives when not at ``protocols.NAME``: the mail protocols share
#: ``protocols/mail/`` with the Maildir store.
MODULE_PATHS = {"smtp": "protocols.mail.smtp", "pop3": "protocols.mail.pop3",
                "imap": "protocols.mail.imap"}


def module_path(name: str) -> str:
    """The import path of the protocol module the prompt names ``name``."""
    return MODULE_PATHS.get(name, f"protocols.{name}")

TOUR_INTRO = ("netsh: a Python prompt with a live reactor. Servers serve and Deferreds fire "
              "while you type.")

#: The tour's table: (what to type, what it does); ``help()`` aligns the second column.
TOUR_ROWS: list[tuple[str, str]] = [
    ('listen("tcp:8000", wire.echo_factory())', "start a server (also listen(8000, MyProtocol))"),
    ('d = connect("tcp:127.0.0.1:8000", Proto)',
     "connect: a Deferred that fires with the protocol"),
    ("p = await d", "top-level await works; Ctrl-C cancels the wait"),
    ("listeners(), conns()", "what is live, as tables; each row is the object"),
    ("deferreds()", "the pending Deferreds (those the toolbar counts)"),
    ('conn(3).write(b"hi"), listener(1).close()', "reach one by its number"),
    ("trace(), trace(conn(3)), untrace()", "print events and bytes as they happen"),
    ("cap.diagram(), show(msg)",
     "what trace() saw (it returns cap), drawn; a message's fields;\n"
     'cap.messages() parsed, cap.save("x.pcapng") for Wireshark'),
    ("explain(d)", "a Deferred's chain, step by step"),
    ("explain(d).diagram(), simulate(steps, 21)",
     "the chain drawn in two columns; a chain simulated"),
    ("late_failures(grace=2)",
     "wait longer before an unhandled failure is reported"),
    ("notify(False)", 'stop the "Deferred #7 fired" notes'),
    ("tb(), verbose(True)", "the last error in full; full tracebacks from now on"),
    ("watchdog(False), watchdog(threshold=1)",
     "the warning when a callback blocks the reactor: off; after 1 s"),
    ('history(), save("demo.py")',
     "this session's inputs; save them as a script\nthat `netsh run demo.py` replays"),
    ("lessons(), lesson(1)", "guided lessons, checked against the live reactor"),
]

TOUR_NAMES = ("reactor, Deferred, succeed, fail, gather, sleep, defer_to_thread, Protocol, "
              "Factory,")

TOUR_END = "help(obj) is Python's help; Ctrl-D or exit() closes everything and leaves."


def tour(modules: str) -> str:
    """The text ``help()`` prints: the tour, its table aligned whatever the lengths.

    ``modules`` is the line naming the protocol modules present.
    """
    width = max(len(left) for left, _ in TOUR_ROWS)
    lines = [TOUR_INTRO, ""]
    for left, right in TOUR_ROWS:
        first, *more = right.splitlines()
        lines.append(f"  {left.ljust(width)}  {first}")
        lines.extend(f"  {'':{width}}  {line}" for line in more)
    lines += [f"  {TOUR_NAMES}", f"  {modules}", f"  {TOUR_END}"]
    return "\n".join(lines)


# ---- the pending Deferreds, as the toolbar counts them

# When each pending Deferred was first counted (by the toolbar's walk, or deferreds()):
# weak, so a Deferred is never kept alive by being seen, and the core pays nothing.
_first_seen: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def pending_deferreds(reactor: Any) -> list[Any]:
    """The pending Deferreds: what the toolbar counts and ``deferreds()`` lists.

    ``reactor.pending_deferreds()`` (a walk of the heap), remembering when each was
    first seen, which ``deferreds()`` shows as its age.
    """
    found = list(reactor.pending_deferreds())
    now = time.time()
    for d in found:
        try:
            _first_seen.setdefault(d, now)
        except TypeError:  # not weakly referenceable (a test's stand-in): no age
            pass
    return found


_FRAME = re.compile(r'^  File "(.+)", line (\d+), in ')
_DEFER_FILE = sys.modules[ns.Deferred.__module__].__file__ or ""


def creation_site(d: Any) -> str:
    """``file:line`` of the code that made ``d``, when known; otherwise ``"-"``.

    Known when debugging was on as ``d`` was made (``ns.set_debugging(True)``):
    the core then keeps each Deferred's creation stack. Without it nothing is
    recorded, so the Deferred's hot paths cost nothing more.
    """
    debug = getattr(d, "_debug", None) or {}
    stack = debug.get("created") if isinstance(debug, dict) else None
    if not stack:
        return "-"
    site = "-"
    for line in stack.splitlines():
        m = _FRAME.match(line)
        if m and m.group(1) != _DEFER_FILE:
            site = f"{m.group(1)}:{m.group(2)}"  # the innermost frame outside defer.py
    return site


def _waits_on(d: Any) -> str:
    inner = d.waiting_on
    if inner is not None:
        return f"#{inner.number}"
    return "fired" if d.called else "pending"


def _age_of(d: Any) -> str:
    seen = _first_seen.get(d)
    return human_age(time.time() - seen) if seen is not None else "-"


# The core's link from an inner Deferred back to the one waiting on it: not a callback.
_LINK = getattr(sys.modules[ns.Deferred.__module__], "_CONTINUE", None)


def _callbacks(d: Any) -> int:
    """The steps of ``d``'s chain still to run, leaving out links to waiting Deferreds."""
    return sum(1 for step in d._callbacks if step[0] is not _LINK)


DEFERRED_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("id", lambda d: f"#{d.number}"),
    ("created at", creation_site),
    ("waits on", _waits_on),
    ("age", _age_of),
    ("callbacks", lambda d: _callbacks(d)),
]


def deferred_table(deferreds: list[Any]) -> Table:
    """The Deferreds as a table (``deferreds()`` at the prompt); each row is the Deferred."""
    return Table(deferreds, DEFERRED_COLUMNS, empty="(no pending Deferreds)")


class _Text(str):
    """A string that displays without quotes (what ``explain`` returns)."""

    def __repr__(self) -> str:
        return str(self)


class Helpers:
    """The inspection helpers, bound to one output function and one tracer."""

    def __init__(self, console: Any, out: Callable[[str], None] | None = None) -> None:
        self.console = console
        self.out = out or (lambda text: print(text))
        # Each trace's lines are printed in the context of the trace() call that asked for
        # it, so in Jupyter they go to the cell that asked for that trace, not to the cell
        # whose listener or connection the traced events belong to.
        self.tracer = Tracer(lambda text: self.out(text))
        #: the report of late failures (set by :func:`build`)
        self.late: late_failures.LateFailures | None = None

    # ---- what is live

    def listeners(self) -> Table:
        """The open listeners, as a table; each row is the Listener itself."""
        return listener_table(ns.reactor.listeners)

    def conns(self) -> Table:
        """The open connections, as a table; each row is the connection (a transport)."""
        return connection_table(ns.reactor.connections)

    def deferreds(self) -> Table:
        """The pending Deferreds, the ones the toolbar counts, as a table; each row is the
        Deferred: its number, where it was made (when known: ``ns.set_debugging(True)``),
        what it waits on, its age (since first seen) and how many callbacks wait in it."""
        return deferred_table(pending_deferreds(ns.reactor))

    def conn(self, number: int) -> Any:
        """The open connection with that number (``conns()`` shows the numbers)."""
        for c in ns.reactor.connections:
            if c.number == number:
                return c
        raise LookupError(f"no open connection #{number}; conns() lists the open ones")

    def listener(self, number: int) -> Any:
        """The open listener with that number (``listeners()`` shows the numbers)."""
        for x in ns.reactor.listeners:
            if x.number == number:
                return x
        raise LookupError(f"no open listener #{number}; listeners() lists the open ones")

    # ---- watching

    def trace(self, target: Any = None, payload: bool = True, hexdump: bool = False) -> Any:
        """Print every event of ``target`` (a listener, a connection, a protocol or its class;
        everything when left out) as it happens; ``untrace()`` stops. Returns the
        :class:`~netshell.shell.tracing.Capture` that keeps what it saw (in Jupyter, drawn
        as a sequence diagram)."""
        capture = self.tracer.start(target, payload=payload, hexdump=hexdump,
                                    context=contextvars.copy_context())
        what = "everything" if target is None else _name(target)
        self.out(f"tracing {what}; untrace() stops")
        return capture

    def show(self, what: Any) -> None:
        """Print the fields of a message of a capture (``show(cap.messages()[0])``), of
        each of a list of them, of each message of a capture, or of an HTTP response or
        request (``show(await http.get(url))``), as scapy's ``show``."""
        from netshell.teach.wire import show_text

        self.out(show_text(what))

    def untrace(self, target: Any = None) -> None:
        """Stop tracing ``target``, or everything when left out."""
        self.tracer.stop(target)

    def explain(self, d: Any) -> chains.Explanation:
        """A Deferred's chain step by step: what ran, got and returned, what it waits on
        (text shown without quotes; in Jupyter, drawn)."""
        return chains.explain(d)

    def watch(self, what: Any, every: float = 1.0) -> Any:
        """Jupyter: show ``what`` (``conns``, ``listeners``, ``deferreds`` or any object)
        and refresh it in place every ``every`` seconds, while no cell runs too, until
        ``.stop()`` on what it returns. At the netsh prompt, call ``conns()`` itself."""
        from netshell.kernel import displays
        from netshell.shell.progress import in_kernel

        if not in_kernel():
            raise RuntimeError("watch() refreshes a display in place in Jupyter; at the netsh "
                               "prompt, conns(), listeners() or deferreds() show one now")
        return displays.watch(what, every)

    def late_failures(self, on: bool | None = None, grace: float | None = None) -> _Text:
        """The report of a Deferred whose chain ends with a failure no errback handled:
        ``grace`` seconds after, naming the input and the chain's steps (instead of
        "Unhandled error" when Python collects it). ``late_failures(grace=2)`` gives a
        later input 2 seconds to add an errback; ``late_failures(False)`` turns the report
        off (such failures are then logged when collected); says which it is."""
        late = self.late
        if late is None:
            raise RuntimeError("this namespace reports no late failures")
        if grace is not None:
            if not grace >= 0:
                raise ValueError(f"grace is a number of seconds, 0 or more, not {grace!r}")
            late.grace = float(grace)
        if on is not None:
            late.enabled = bool(on)
        if late.enabled:
            return _Text(f"late failures reported: a chain that ends with a failure no errback "
                         f"handled within {late.grace:g}s is reported; late_failures(False) "
                         "turns it off")
        return _Text("late failures not reported: they are logged when collected; "
                     "late_failures(True) reports them")

    def notify(self, on: bool = True) -> None:
        """Turn the notes printed when a shown Deferred fires on or off."""
        self.console.notes.enabled = on

    def log(self, on: bool = True) -> _Text:
        """Show (``log()``) or hush (``log(False)``) the request log above the prompt: a
        line per HTTP request, per FTP login and transfer, and per IRC message, join, part,
        kick... an IRC client hears (the prompt starts with it on); says which it is.
        Warnings (a refused bounce, failed logins) show either way."""
        for name in REQUEST_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO if on else logging.WARNING)
        if on:
            return _Text("request log on: each HTTP request, FTP login and transfer, and what "
                         "IRC clients hear is shown; log(False) hushes it")
        return _Text("request log off; log() shows it again")

    # ---- errors

    def tb(self) -> _Text:
        """The last error in full: every frame, netshell's and asyncio's included, and the
        exceptions chained to it (the prompt shows a common mistake on one line)."""
        return _Text(self.console.full_error())

    def verbose(self, on: bool | None = None) -> _Text:
        """``verbose(True)``: show every error in full from now on (as ``tb()`` does);
        ``verbose(False)``: a common mistake on one line, and only your own frames;
        ``verbose()``: say which it is."""
        if on is not None:
            self.console.verbose = bool(on)
        if self.console.verbose:
            return _Text("verbose on: errors show every frame; verbose(False) shortens them")
        return _Text("verbose off: errors show your own frames only (common mistakes one "
                     "line); tb() shows the last in full, verbose(True) all of them")

    # ---- the session

    def history(self) -> _Text:
        """The inputs of this session, numbered as they ran (``!`` marks those that raised)."""
        lines = []
        for e in self.console.transcript:
            if e.get("type") != "input":
                continue
            mark = "!" if e.get("error") else " "
            head = f"{mark}[{e['n']}]> "
            source = e["input"].rstrip("\n").replace("\n", "\n" + " " * len(head))
            lines.append(head + source)
        return _Text("\n".join(lines) or "(no inputs yet)")

    def save(self, path: str | None = None) -> _Text:
        """Write the inputs that ran without error as a cell-form script for ``netsh run``.

        Inputs that only inspected (``conns()``, ``explain(d)``, bare names) are kept
        as comments. The default name is ``session-YYYYmmdd-HHMMSS.py``.
        """
        target = session.save(self.console.transcript, path)
        cells = session.script_text(self.console.transcript).count(f"\n{session.CELL}\n")
        return _Text(f"saved {cells} cells to {target}; run them with: netsh run {target}")

    def help(self, *args: Any, **kw: Any) -> None:
        """With no argument, a short tour of the prompt; otherwise Python's help()."""
        if args or kw:
            builtins.help(*args, **kw)
            return
        self.out(self.tour())

    def tour(self) -> str:
        """The tour's text, naming the protocol modules this namespace has."""
        modules = ", ".join(m for m in PROTOCOL_MODULES if m in self.console.namespace)
        return tour(f"protocol modules: {modules}, tls")


class Help:
    """The prompt's ``help``: ``help()`` prints the tour, ``help(obj)`` is Python's help,
    and ``help`` typed bare (no call) shows the tour too, as Python's own ``help`` answers
    a bare ``help`` with a hint rather than a repr."""

    def __init__(self, helpers: Helpers) -> None:
        self._helpers = helpers

    def __call__(self, *args: Any, **kw: Any) -> None:
        self._helpers.help(*args, **kw)

    def __repr__(self) -> str:
        return self._helpers.tour()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's display
        p.text(self._helpers.tour())


def _name(target: Any) -> str:
    if isinstance(target, type):
        return f"every {target.__name__}"
    number = getattr(target, "number", None)
    if number is not None:
        return f"{type(target).__name__} #{number}"
    return repr(target)


def listen(where: Any, factory: Any, **kw: Any) -> Any:
    """``listen("tcp:8000", factory)``; also a bare port and a Protocol class."""
    if isinstance(where, int):
        where = f"tcp:{where}"
    if isinstance(factory, type) and issubclass(factory, Protocol):
        factory = Factory.for_protocol(factory)
    return ns.listen(where, factory, **kw)


def connect(where: Any, factory: Any, **kw: Any) -> Any:
    """``connect("tcp:host:port", factory)``; also a Protocol class. A Deferred[Protocol]."""
    if isinstance(factory, type) and issubclass(factory, Protocol):
        factory = ClientFactory.for_protocol(factory)
    return ns.connect(where, factory, **kw)


class _ThenLoader(importlib.abc.Loader):
    """A module's own loader, and a function to call with the module once it has run."""

    def __init__(self, loader: Any, then: Callable[[Any], None]) -> None:
        self.loader = loader
        self.then = then

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        self.then(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


def lazy_module(name: str, then: Callable[[Any], None] | None = None) -> Any:
    """``name`` as a module that is loaded on first use (None if there is no such module).

    The prompt offers every protocol module and ``tls`` by name; loading them all
    up front (pyOpenSSL, cryptography...) would cost ``netsh run`` a third of its
    start-up time. ``then(module)`` is called once the module is loaded (at once if
    it is already).
    """
    if name in sys.modules:
        if then is not None:
            then(sys.modules[name])
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return None
    if then is not None:
        spec.loader = _ThenLoader(spec.loader, then)
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _LazyModule
    sys.modules[name] = module
    return module


_LAZY_LOCK = threading.RLock()


class _LazyModule(types.ModuleType):
    """A module in sys.modules whose code runs when it is first used.

    Not importlib.util.LazyLoader's: those run when asked for anything, and the import
    system asks a package for its ``__path__`` when one of the package's modules is imported
    (``import protocols.http.message``), after it has looked for that module in sys.modules.
    The package, run then, imports the module, and the import runs it a second time
    (CPython issue 83783): two ``ParseError`` classes, which ``except`` and ``isinstance``
    tell apart. Here ``__spec__`` and ``__path__`` are answered without running anything:
    such a module runs before its package, and the package on its first use.
    """

    def __getattribute__(self, name: str) -> Any:
        if name in ("__spec__", "__path__"):
            return super().__getattribute__(name)
        with _LAZY_LOCK:
            if type(self) is _LazyModule:
                object.__setattr__(self, "__class__", types.ModuleType)
                spec = self.__spec__
                assert spec is not None and spec.loader is not None
                spec.loader.exec_module(self)
        return getattr(self, name)


def build(console: Any, out: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fill ``console.namespace`` with the prompt's names; returns it."""
    helpers = Helpers(console, out)
    teacher = Teacher(console, out)
    names: dict[str, Any] = {
        "ns": ns,
        "reactor": ns.reactor,
        "Deferred": ns.Deferred,
        "Failure": ns.Failure,
        "succeed": ns.succeed,
        "fail": ns.fail,
        "gather": ns.gather,
        "race": ns.race,
        "sleep": ns.sleep,
        "maybe_deferred": ns.maybe_deferred,
        "ensure_deferred": ns.ensure_deferred,
        "defer_to_thread": ns.defer_to_thread,
        "Protocol": ns.Protocol,
        "DatagramProtocol": ns.DatagramProtocol,
        "Factory": ns.Factory,
        "ClientFactory": ns.ClientFactory,
        "listen": listen,
        "connect": connect,
        "tls": lazy_module("netshell.tls"),
        "listeners": helpers.listeners,
        "conns": helpers.conns,
        "deferreds": helpers.deferreds,
        "conn": helpers.conn,
        "listener": helpers.listener,
        "trace": helpers.trace,
        "untrace": helpers.untrace,
        "show": helpers.show,
        "explain": helpers.explain,
        "simulate": simulate,
        "late_failures": helpers.late_failures,
        "watch": helpers.watch,
        "notify": helpers.notify,
        "log": helpers.log,
        "tb": helpers.tb,
        "verbose": helpers.verbose,
        "watchdog": watchdog.make_helper(console.namespace),
        "help": Help(helpers),
        "history": helpers.history,
        "save": helpers.save,
        "lessons": teacher.lessons,
        "lesson": LessonCommand(teacher),
        "_helpers": helpers,
    }
    for module in PROTOCOL_MODULES:
        try:
            # The shell, not the protocol library, draws the download progress bar.
            then = progress.install if module in ("http", "ftp") else None
            found = lazy_module(module_path(module), then)
        except ModuleNotFoundError:
            continue  # not written yet
        except Exception:
            log.exception("protocols.%s failed to import; the prompt goes on without it", module)
            continue
        if found is not None:
            names[module] = found
    console.namespace.update(names)
    helpers.late = late_failures.install(console)
    return console.namespace
