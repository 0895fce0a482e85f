"""HTTP/1.1: a sans-I/O parser, a server (apps and static files) and a client.

The names most people need are here: ``serve``, ``App``, ``Request``, ``Response``,
``request`` and its shortcuts ``get``, ``post``, ``put``, ``delete``, ``head``,
and ``download``.
"""

from protocols.http.client import (
    HTTPClient,
    HTTPClientError,
    delete,
    download,
    get,
    head,
    post,
    put,
    request,
)
from protocols.http.message import Headers, HTTPError, Limits, ParseError, Request, Response
from protocols.http.server import App, StaticFiles, serve

__all__ = [
    "App",
    "HTTPClient",
    "HTTPClientError",
    "HTTPError",
    "Headers",
    "Limits",
    "ParseError",
    "Request",
    "Response",
    "StaticFiles",
    "delete",
    "download",
    "get",
    "head",
    "post",
    "put",
    "request",
    "serve",
]
