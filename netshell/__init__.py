"""netshell: an event-driven networking framework and interactive network shell.

The core, in the tradition of Twisted and on asyncio: Deferreds and Failures,
the reactor (``netshell.reactor``, the current loop's), threads as sources of
Deferreds, and protocols kept apart from transports.
"""

from typing import Any

from netshell.connector import Connector
from netshell.defer import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    QueueOverflow,
    QueueUnderflow,
    TimeoutError,
    ensure_deferred,
    fail,
    gather,
    maybe_deferred,
    race,
    sleep,
    succeed,
)
from netshell.endpoints import connect, listen
from netshell.errors import (
    AddressInUse,
    CertificateExpired,
    CertificateNotYetValid,
    ClientCertificateRequired,
    ConnectError,
    ConnectionClosed,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    DNSLookupError,
    HandshakeFailed,
    HostnameMismatch,
    ListenError,
    NetshellError,
    TLSError,
    TLSVerificationError,
    UnknownCA,
)
from netshell.failure import Failure, NoCurrentExceptionError, get_debugging, set_debugging
from netshell.listener import Listener
from netshell.protocol import (
    ClientFactory,
    DatagramProtocol,
    Factory,
    Protocol,
    ReconnectingClientFactory,
)
from netshell.reactor import (
    AlreadyCancelledError,
    DelayedCall,
    Reactor,
    ReactorAlreadyRunning,
    ReactorNotRestartable,
    ReactorNotRunning,
    get_reactor,
)
from netshell.reactor import reactor as _current_reactor
from netshell.threads import ThreadPool, defer_to_thread
from netshell.transport import Address, PeerCredentials, StreamTransport

__version__ = "0.1.0"

#: The reactor of the current loop (the running one, or this thread's).
reactor = _current_reactor


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext netshell``: the netsh prompt's names, displays and errors in IPython or
    Jupyter, the reactor on the kernel's loop (see :mod:`netshell.kernel.extension`)."""
    # The core never imports IPython or the shell: the extension is found by name here,
    # where IPython looks for it, and imported only when asked for.
    from netshell.kernel import extension

    extension.load_ipython_extension(shell)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext netshell``: close listeners and connections, take out what was added."""
    from netshell.kernel import extension

    extension.unload_ipython_extension(shell)

__all__ = [
    "Address",
    "AddressInUse",
    "AlreadyCalledError",
    "AlreadyCancelledError",
    "CancelledError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "ClientCertificateRequired",
    "ClientFactory",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
    "ConnectionRefused",
    "Connector",
    "DNSLookupError",
    "DatagramProtocol",
    "Deferred",
    "DeferredLock",
    "DeferredQueue",
    "DeferredSemaphore",
    "DelayedCall",
    "Factory",
    "Failure",
    "HandshakeFailed",
    "HostnameMismatch",
    "ListenError",
    "Listener",
    "NetshellError",
    "NoCurrentExceptionError",
    "PeerCredentials",
    "Protocol",
    "QueueOverflow",
    "QueueUnderflow",
    "Reactor",
    "ReactorAlreadyRunning",
    "ReactorNotRestartable",
    "ReactorNotRunning",
    "ReconnectingClientFactory",
    "StreamTransport",
    "TLSError",
    "TLSVerificationError",
    "ThreadPool",
    "TimeoutError",
    "UnknownCA",
    "connect",
    "defer_to_thread",
    "ensure_deferred",
    "fail",
    "gather",
    "get_debugging",
    "get_reactor",
    "listen",
    "load_ipython_extension",
    "maybe_deferred",
    "race",
    "reactor",
    "set_debugging",
    "sleep",
    "succeed",
    "unload_ipython_extension",
]
