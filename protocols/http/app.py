"""Routing for the HTTP server: an :class:`App` maps paths and methods to handlers.

A handler takes a :class:`~protocols.http.message.Request` and returns a
:class:`~protocols.http.message.Response`, ``bytes``, ``str``, a ``dict`` or
``list`` (sent as JSON), ``None`` (204 No Content), or a Deferred or coroutine
of one of those. :func:`to_response` says how each becomes a Response, and
:func:`error_response` how an HTTPError does.

Patterns are paths with parameters in braces: ``{name}`` matches one path
segment, ``{name:path}`` the rest of the path, slashes included. Values land in
``request.params``, percent-decoded. Patterns are compiled once, when added;
paths without parameters are found with one dict lookup.

Example::

    >>> app = App()
    >>> @app.route("/items/{id}", methods=["GET", "PUT"])
    ... def item(request):
    ...     return {"id": request.params["id"]}
    >>> from protocols.http.message import Request
    >>> request = Request("GET", "/items/42", path="/items/42")
    >>> to_response(app(request)).body
    b'{"id": "42"}'
    >>> app.resolve(Request("DELETE", "/items/42", path="/items/42"))
    Traceback (most recent call last):
    ...
    protocols.http.app.MethodNotAllowed: 405 Method Not Allowed (allowed: GET, HEAD, PUT)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from protocols.http.message import REASONS, Headers, HTTPError, Request, Response

__all__ = [
    "App",
    "Handler",
    "MethodNotAllowed",
    "NotFound",
    "Route",
    "error_response",
    "to_response",
]

#: What a handler is: a callable taking a Request.
Handler = Callable[[Request], Any]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class NotFound(HTTPError):
    """No route matches the path (404)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(404, message)
        self.headers = Headers()


class MethodNotAllowed(HTTPError):
    """A route matches the path but not the method (405); ``headers`` carries ``Allow``."""

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__(405)
        self.allowed = sorted(set(allowed))
        self.headers = Headers([("Allow", ", ".join(self.allowed))])

    def __str__(self) -> str:
        return f"405 Method Not Allowed (allowed: {', '.join(self.allowed)})"


class Route:
    """One pattern and its handlers, by method (``HEAD`` comes with ``GET``)."""

    __slots__ = ("pattern", "regex", "handlers")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.regex = _compile(pattern)
        self.handlers: dict[str, Handler] = {}

    def add(self, methods: Iterable[str], handler: Handler) -> None:
        for method in methods:
            if method in self.handlers:
                raise ValueError(f"{method} {self.pattern} has a handler already")
            self.handlers[method] = handler
        if "GET" in self.handlers:
            # A HEAD request is answered by the GET handler; the server sends the head only.
            self.handlers.setdefault("HEAD", self.handlers["GET"])

    def __repr__(self) -> str:
        return f"<Route {self.pattern} {' '.join(sorted(self.handlers))}>"


def _compile(pattern: str) -> re.Pattern[str] | None:
    """The regex of a pattern with parameters, or None for a plain path."""
    if not pattern.startswith("/"):
        raise ValueError(f"a route pattern starts with '/': {pattern!r}")
    parts: list[str] = []
    names: set[str] = set()
    pos = 0
    for m in _PARAM.finditer(pattern):
        literal = pattern[pos : m.start()]
        if "{" in literal or "}" in literal:
            raise ValueError(f"bad parameter in route pattern {pattern!r}")
        parts.append(re.escape(literal))
        name = m.group(1)
        if name in names:
            raise ValueError(f"parameter {name!r} appears twice in {pattern!r}")
        names.add(name)
        parts.append(f"(?P<{name}>.*)" if m.group(2) else f"(?P<{name}>[^/]+)")
        pos = m.end()
    tail = pattern[pos:]
    if "{" in tail or "}" in tail:
        raise ValueError(f"bad parameter in route pattern {pattern!r}")
    if not names:
        return None
    parts.append(re.escape(tail))
    return re.compile("".join(parts) + r"\Z")


class App:
    """A set of routes: call it with a Request, or hand it to ``http.serve``.

    ``404 Not Found`` when no pattern matches the path, ``405 Method Not
    Allowed`` (with ``Allow``) when one matches but not for this method.
    Plain paths are tried before patterns with parameters; patterns in the
    order they were added.
    """

    def __init__(self) -> None:
        self._plain: dict[str, Route] = {}
        self._patterns: list[Route] = []
        self._by_pattern: dict[str, Route] = {}

    def route(
        self, pattern: str, methods: Iterable[str] | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator: serve ``pattern`` with the function for ``methods`` (default GET).

        Raises ValueError for a malformed pattern or a method routed twice.
        """

        def register(handler: Handler) -> Handler:
            self.add_route(pattern, handler, methods)
            return handler

        return register

    def add_route(
        self, pattern: str, handler: Handler, methods: Iterable[str] | None = None
    ) -> None:
        """Serve ``pattern`` with ``handler`` for ``methods`` (default ``["GET"]``)."""
        if isinstance(methods, str):
            raise TypeError("methods is a list of method names, e.g. ['GET', 'POST']")
        wanted = [m.upper() for m in (methods or ["GET"])]
        for method in wanted:
            if not _TOKEN.match(method):
                raise ValueError(f"not a method name: {method!r}")
        route = self._by_pattern.get(pattern)
        if route is None:
            route = Route(pattern)
            self._by_pattern[pattern] = route
            if route.regex is None:
                self._plain[pattern] = route
            else:
                self._patterns.append(route)
        route.add(wanted, handler)

    @property
    def routes(self) -> list[Route]:
        """Every route, plain paths first."""
        return [*self._plain.values(), *self._patterns]

    def resolve(self, request: Request) -> Handler:
        """The handler for ``request``, with ``request.params`` filled in.

        Raises :class:`NotFound` or :class:`MethodNotAllowed`.
        """
        path = request.path
        method = request.method
        route = self._plain.get(path)
        allowed: list[str] = []
        if route is not None:
            handler = route.handlers.get(method)
            if handler is not None:
                return handler
            allowed.extend(route.handlers)
        for route in self._patterns:
            m = route.regex.match(path)  # type: ignore[union-attr]
            if m is None:
                continue
            handler = route.handlers.get(method)
            if handler is not None:
                request.params = m.groupdict()
                return handler
            allowed.extend(route.handlers)
        if allowed:
            raise MethodNotAllowed(allowed)
        raise NotFound()

    def __call__(self, request: Request) -> Any:
        return self.resolve(request)(request)

    def __repr__(self) -> str:
        return f"<App {len(self._plain) + len(self._patterns)} routes>"


_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


def to_response(value: Any) -> Response:
    """What the server sends for a handler's return value.

    - a :class:`Response`: itself;
    - ``bytes`` (or bytearray, memoryview): 200, ``application/octet-stream``;
    - ``str``: 200, ``text/plain; charset=utf-8``, UTF-8 encoded;
    - ``dict`` or ``list``: 200, ``application/json``;
    - ``None``: 204 No Content.

    Raises TypeError for anything else.

    >>> to_response("hi").headers["content-type"]
    'text/plain; charset=utf-8'
    >>> to_response([1, 2]).body
    b'[1, 2]'
    >>> to_response(None).status
    204
    """
    if isinstance(value, Response):
        return value
    if isinstance(value, bytes):
        return Response(value, 200, Headers([("Content-Type", "application/octet-stream")]))
    if isinstance(value, str):
        return Response(value.encode(), 200, Headers([("Content-Type", _TEXT)]))
    if isinstance(value, dict | list):
        body = json.dumps(value).encode()
        return Response(body, 200, Headers([("Content-Type", _JSON)]))
    if isinstance(value, bytearray | memoryview):
        return to_response(bytes(value))
    if value is None:
        return Response(b"", 204)
    raise TypeError(
        f"a handler returned {type(value).__name__}: return a Response, bytes, str, dict, "
        "list or None (or a Deferred or coroutine of one)"
    )


def error_response(error: HTTPError) -> Response:
    """What the server sends for ``error``: its status, with the reason and the error's
    message as plain text (the reason alone for a 500, whose message stays in the log),
    and the error's own ``headers`` if it has any (a 405's ``Allow``).

    >>> error_response(HTTPError(404, "no such page")).body
    b'404 Not Found: no such page\\n'
    >>> error_response(HTTPError(500, "a secret")).body
    b'500 Internal Server Error\\n'
    """
    status = error.status
    detail = "" if status == 500 else error.message
    headers = getattr(error, "headers", None)
    reason = REASONS.get(status, "Error")
    if detail and detail != reason:
        text = f"{status} {reason}: {detail}\n"
    else:
        text = f"{status} {reason}\n"
    h = headers.copy() if headers is not None else Headers()
    h.set("Content-Type", "text/plain; charset=utf-8")
    return Response(text.encode(), status, h)
