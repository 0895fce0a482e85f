"""The HTTP client's errors: a tree rooted at :class:`HTTPClientError`, caught at any depth.

- :class:`HTTPClientError` (a :class:`netshell.NetshellError`), the root;
- :class:`InvalidURL` (also a ``ValueError``): the URL cannot be requested;
- :class:`TooManyRedirects`: more redirects than allowed (``response`` is the last one);
- :class:`RemoteProtocolError`: the server's response broke HTTP/1.1;
- :class:`ServerDisconnected` (also a ``ConnectionError``): the server closed the
  connection before the response was complete;
- :class:`RequestTimeout` (also a ``TimeoutError``): no complete response in time;
- :class:`HTTPStatusError`: ``download`` got a final response that is not 2xx.

Failing to connect at all raises the core's own errors (:class:`netshell.ConnectError`,
:class:`netshell.TLSError`), as they are. The parser's and the server's errors,
:class:`~protocols.http.message.HTTPError` and its :class:`~protocols.http.message.ParseError`
(each carries the status to answer with), live with the messages in
:mod:`protocols.http.message`; the client turns a ParseError in a response into a
RemoteProtocolError whose ``__cause__`` it is.
"""

from __future__ import annotations

from netshell.errors import NetshellError
from protocols.http.message import Response

__all__ = [
    "HTTPClientError",
    "HTTPStatusError",
    "InvalidURL",
    "RemoteProtocolError",
    "RequestTimeout",
    "ServerDisconnected",
    "TooManyRedirects",
]


class HTTPClientError(NetshellError):
    """The root of the HTTP client's own errors."""


class InvalidURL(HTTPClientError, ValueError):
    """The URL cannot be requested (not http/https, no host, a bad port...)."""


class TooManyRedirects(HTTPClientError):
    """More redirects than ``max_redirects``; ``response`` is the last one (with history)."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


class RemoteProtocolError(HTTPClientError):
    """The server's response broke HTTP/1.1 (the parser's error is the ``__cause__``)."""


class ServerDisconnected(HTTPClientError, ConnectionError):
    """The server closed the connection before the response was complete."""


class RequestTimeout(HTTPClientError, TimeoutError):
    """No complete response within the timeout (connecting included)."""


class HTTPStatusError(HTTPClientError):
    """``download`` got a final response that is not 2xx; ``response`` holds it."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response
