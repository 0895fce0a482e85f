"""HTTP/1.1: a sans-I/O parser, a server (apps and static files) and a client.

The names most people need are here: ``serve``, ``App``, ``Request``, ``Response``,
``request`` and its shortcuts ``get``, ``post``, ``put``, ``delete``, ``head``,
and ``download``.
"""

from protocols.http.message import Headers, HTTPError, Limits, ParseError, Request, Response

__all__ = ["Headers", "HTTPError", "Limits", "ParseError", "Request", "Response"]
