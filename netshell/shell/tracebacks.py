"""Errors a person can read: one line for the common mistakes, and only their own frames.

The prompt, ``netsh run`` and ``netsh --ipython`` show an error with
:func:`format_error`. A common mistake (a port already in use, a refused or
timed-out connection, a bad endpoint string, a host that does not resolve, a
certificate that fails verification) is one line that says what happened (the
first is one line too, cut here)::

    cannot listen on 127.0.0.1:8000: address already in use — held by listener #1 —
    listener(1).close()
    cannot connect to 127.0.0.1:9: connection refused

Any other error is Python's traceback without the frames inside netshell, the
protocol library and asyncio: what is left are the person's own frames (their
inputs, their script), and those of other libraries they called. With
``verbose=True`` (``verbose(True)`` at the prompt, ``netsh run --verbose``) every
frame is shown, as is every chained exception; ``tb()`` shows the last error so.

Example::

    >>> from netshell.errors import ConnectionRefused
    >>> format_error(ConnectionRefused("cannot connect to 127.0.0.1:9: connection refused"))
    'cannot connect to 127.0.0.1:9: connection refused'
"""

from __future__ import annotations

import asyncio
import linecache
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import netshell
from netshell.endpoints import EndpointError
from netshell.errors import (
    AddressInUse,
    ConnectError,
    ListenError,
    NetshellError,
    TLSError,
    TLSVerificationError,
)
from netshell.interfaces import format_hostport
from netshell.shell.hints import with_hint

__all__ = ["ShortFormatter", "format_error", "held_by", "is_hidden", "one_line"]


def _package_dir(name: str) -> str | None:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path is None:
        import importlib.util

        spec = importlib.util.find_spec(name)  # found, not imported: the core never needs it
        path = spec.origin if spec is not None else None
    return os.path.dirname(os.path.abspath(path)) + os.sep if path else None


_HIDDEN: tuple[str, ...] = tuple(
    d for d in (
        _package_dir("netshell"),
        _package_dir("protocols"),
        os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
    ) if d
)


def _in_ipython(filename: str) -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is not None and ipython.__file__:
        return filename.startswith(os.path.dirname(ipython.__file__) + os.sep)
    return False


def is_hidden(filename: str) -> bool:
    """Whether a frame in ``filename`` is hidden by default: netshell's own, the protocol
    library's, asyncio's, and IPython's (the machinery that ran the input)."""
    return filename.startswith(_HIDDEN) or _in_ipython(filename)


def held_by(exc: AddressInUse, reactor: Any = None) -> Any:
    """The listener of ``reactor`` (default: the current one) that holds the address
    ``exc`` could not bind, or None (another program holds it)."""
    if reactor is None:
        reactor = netshell.reactor
    try:
        listeners = list(reactor.listeners)
    except Exception:
        return None
    wildcard = ("", "0.0.0.0", "::", None)
    for listener in listeners:
        address = getattr(listener, "address", None)
        if address is None:
            continue
        kind = str(address.kind).rstrip("6")
        if exc.kind == "unix" or exc.path is not None:
            if kind == "unix" and address.host == exc.path:
                return listener
            continue
        if exc.kind is not None and kind != exc.kind:
            continue
        if address.port == exc.port and (
            address.host == exc.host or address.host in wildcard or exc.host in wildcard
        ):
            return listener
    return None


def one_line(exc: BaseException, reactor: Any = None) -> str | None:
    """The one line that says what went wrong, when ``exc`` is a common mistake (or any
    of netshell's own errors, :class:`~netshell.NetshellError`, which carry a message that
    says it); else None.

    An address in use held by one of this session's listeners says which, and how to
    close it (``listener(1).close()``, the prompt's helper).
    """
    if isinstance(exc, AddressInUse):
        listener = held_by(exc, reactor)
        if listener is not None:
            n = listener.number
            return f"{exc} — held by listener #{n} — listener({n}).close()"
        return str(exc)
    if isinstance(exc, (ListenError, ConnectError, EndpointError)):
        return str(exc)
    if isinstance(exc, TLSVerificationError):
        where = exc.host or "the peer"
        if exc.host and exc.port:
            where = format_hostport(exc.host, exc.port)
        return f"TLS certificate verification failed for {where}: {exc}"
    if isinstance(exc, TLSError):
        return str(exc)
    if isinstance(exc, NetshellError) and str(exc):
        # The protocol library's errors (an FTP reply that refused, an HTTP response that
        # broke the protocol) say what happened in their message: the class, by its short
        # name, tells what to catch.
        return f"{type(exc).__name__}: {exc}"
    return None


def _own_frames_matter(stack: traceback.StackSummary) -> bool:
    """Whether the person's frames add something to a one-line error: not when the
    only one is the single line they just typed (the prompt shows it above)."""
    if len(stack) != 1:
        return bool(stack)
    filename = stack[0].filename
    if not filename.startswith("<"):
        return True  # a script: its line number matters
    lines = linecache.getlines(filename)
    return len([line for line in lines if line.strip()]) > 1


def _trim(te: traceback.TracebackException, keep_chain: bool) -> bool:
    """Drop the hidden frames of ``te`` and of the exceptions chained to it.

    A chained exception with none of the person's frames left is dropped too,
    unless ``keep_chain``. Returns whether ``te`` has any frame left.
    """
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not is_hidden(f.filename)]
    )
    for attr in ("__cause__", "__context__"):
        inner = getattr(te, attr)
        if inner is not None and not _trim(inner, keep_chain) and not keep_chain:
            setattr(te, attr, None)
    return bool(te.stack)


def format_error(
    exc: BaseException,
    *,
    verbose: bool = False,
    namespace: Mapping[str, Any] | None = None,
    skip: str | None = None,
    reactor: Any = None,
) -> str:
    """``exc`` as the prompt shows it (no trailing newline).

    Short by default: a common mistake is its :func:`one_line`, after the person's
    frames when there are any worth showing; any other error is its traceback
    without the hidden frames (:func:`is_hidden`), with Python's "Did you mean"
    hint. ``verbose`` shows every frame. Leading frames in the file ``skip``
    (the console that ran the input) or in IPython are never shown. ``namespace`` is where a
    mistyped name is looked for.
    """
    tb = exc.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename == skip
                              or _in_ipython(tb.tb_frame.f_code.co_filename)):
        tb = tb.tb_next
    if verbose:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return with_hint(text.rstrip("\n"), exc, namespace)
    te = traceback.TracebackException(type(exc), exc, tb, compact=True)
    line = one_line(exc, reactor)
    if line is not None:
        stack = traceback.StackSummary.from_list(
            [f for f in te.stack if not is_hidden(f.filename)]
        )
        if not _own_frames_matter(stack):
            return line
        return "Traceback (most recent call last):\n" + "".join(stack.format()) + line
    _trim(te, keep_chain=False)
    text = "".join(te.format())
    return with_hint(text.rstrip("\n"), exc, namespace)


class ShortFormatter(logging.Formatter):
    """A logging formatter that shows a logged exception as :func:`format_error` does:
    short (the person's frames, a common mistake on one line) unless ``verbose()`` says
    otherwise. ``netsh run`` and ``netsh serve`` log through it, so an error in a protocol's
    callback reads there as it does at the prompt."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None,
                 verbose: Callable[[], bool] = lambda: False,
                 namespace: Mapping[str, Any] | None = None) -> None:
        super().__init__(fmt, datefmt)
        self.verbose = verbose
        self.namespace = namespace  # where a mistyped name is looked for

    def format(self, record: logging.LogRecord) -> str:
        # Not cached on the record: verbose() may change, and other handlers format anew.
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = None

    def formatException(self, ei: Any) -> str:
        exc = ei[1]
        if exc is None or self.verbose():
            return super().formatException(ei)
        return format_error(exc, namespace=self.namespace)
