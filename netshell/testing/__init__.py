"""The testing kit: virtual time, in-memory transports, and helpers for Deferreds.

Everything here lets a protocol or a Deferred chain be tested with no socket
and no real waiting: :class:`Clock`, :class:`StringTransport`,
:class:`StringDatagramTransport`, :func:`loopback`, :func:`success_result_of`,
:func:`failure_result_of` and :func:`no_result`. The pytest plugin
(``netshell.testing.pytest_plugin``, registered by entry point) adds the
``reactor`` and ``clock`` fixtures.
"""

from netshell.testing.clock import Clock
from netshell.testing.recording import (
    PausedReader,
    RecordingEcho,
    RecordingFactory,
    RecordingProtocol,
)
from netshell.testing.results import failure_result_of, no_result, success_result_of
from netshell.testing.transports import (
    Loopback,
    StringDatagramTransport,
    StringTransport,
    loopback,
)

__all__ = [
    "Clock",
    "Loopback",
    "PausedReader",
    "RecordingEcho",
    "RecordingFactory",
    "RecordingProtocol",
    "StringDatagramTransport",
    "StringTransport",
    "failure_result_of",
    "loopback",
    "no_result",
    "success_result_of",
]
