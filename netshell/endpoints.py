r"""Endpoints: "tcp:8080"-style strings that say where to listen or what to connect to.

A description is a kind, then fields separated by colons: positional fields
first, then ``key=value`` options::

    tcp:8080                            listen on 127.0.0.1:8080
    tcp:8080:interface=0.0.0.0:backlog=50
    tcp6:8080                           listen on [::1]:8080
    unix:/tmp/s.sock:mode=0o660
    udp:5353                            (with a DatagramProtocol)
    tcp:example.org:80:timeout=5        connect
    tcp6:\:\:1:8080   or   tcp6:[::1]:8080
    tcp:example.org:80:bind=10.0.0.2\:0

A backslash makes the next character plain text, so ``\:`` is a colon inside a
field (an IPv6 address, a path) and ``\\`` a backslash; ``\=`` keeps a
positional field from being read as an option. In a connect description a
host may also be written in brackets, ``[::1]``, with its colons unescaped.

:func:`parse` turns a description into an :class:`Endpoint` without touching
the network (so it can be inspected and tested on its own) and :func:`format`
turns one back; :func:`listen` and :func:`connect` parse and then call the
reactor. Every mistake in a description raises :class:`EndpointError`, a
ValueError whose message quotes the description and names the bad part.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from netshell.current import get_reactor
from netshell.errors import NetshellError
from netshell.interfaces import format_hostport
from netshell.protocol import DatagramProtocol, Factory, Protocol

if TYPE_CHECKING:
    from netshell.defer import Deferred
    from netshell.listener import Listener
    from netshell.reactor import Reactor
    from netshell.udp import DatagramListener

__all__ = ["Endpoint", "EndpointError", "connect", "format", "listen", "parse"]

#: what each kind takes, by mode: (positional fields, allowed option keys)
_GRAMMAR: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "listen": {
        "tcp": (("port",), ("backlog", "interface")),
        "tcp6": (("port",), ("backlog", "interface")),
        "unix": (("path",), ("backlog", "mode")),
        "udp": (("port",), ("interface",)),
        "tls": (("port",), ("backlog", "cert", "interface", "key")),
    },
    "connect": {
        "tcp": (("host", "port"), ("bind", "timeout")),
        "tcp6": (("host", "port"), ("bind", "timeout")),
        "unix": (("path",), ("timeout",)),
        "tls": (("host", "port"), ("bind", "ca", "timeout", "verify")),
    },
}

_KINDS = ("tcp", "tcp6", "unix", "udp", "tls")
_USAGE = {
    ("listen", "tcp"): "tcp:PORT",
    ("listen", "tcp6"): "tcp6:PORT",
    ("listen", "unix"): "unix:PATH",
    ("listen", "udp"): "udp:PORT",
    ("listen", "tls"): "tls:PORT:cert=PATH:key=PATH",
    ("connect", "tcp"): "tcp:HOST:PORT",
    ("connect", "tcp6"): "tcp6:HOST:PORT",
    ("connect", "unix"): "unix:PATH",
    ("connect", "tls"): "tls:HOST:PORT",
}

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_OCTAL = re.compile(r"(?:0o)?([0-7]+)", re.ASCII)
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_BAD_HOST_CHARS = re.compile(r"[\s/\[\]\x00-\x1f\x7f]")
_TRUE = ("yes", "true", "on", "1")
_FALSE = ("no", "false", "off", "0")


class EndpointError(NetshellError, ValueError):
    """A description that does not parse; the message quotes it and names the bad part.

    ``description`` is the text as given, ``problem`` what is wrong with it.
    """

    def __init__(self, description: str, problem: str) -> None:
        super().__init__(f"endpoint {description!r}: {problem}")
        self.description = description
        self.problem = problem


class Endpoint:
    r"""A parsed description: ``kind``, positional ``args``, the ``options`` given.

    ``args`` is ``(port,)`` or ``(path,)`` for listening, ``(host, port)`` or
    ``(path,)`` for connecting; ``options`` holds only the options written,
    converted (``backlog`` and ``mode`` are ints, ``timeout`` a float, ``bind``
    a ``(host, port)`` pair, ``verify`` a bool). Defaults are applied by
    :func:`listen` and :func:`connect`, not here. ``str()`` gives the
    description back in canonical form.

    Example::

        >>> ep = parse("unix:/run/app.sock:mode=660")
        >>> ep.kind, ep.args, ep.options
        ('unix', ('/run/app.sock',), {'mode': 432})
        >>> str(ep)
        'unix:/run/app.sock:mode=0o660'
    """

    # A plain class, not a dataclass: the dataclasses module and the class it would make
    # cost the prompt's start-up about 2 ms; this is what @dataclass would write.
    __slots__ = ("kind", "args", "options", "mode")

    def __init__(self, kind: str, args: tuple[Any, ...], options: dict[str, Any] | None = None,
                 mode: str = "listen") -> None:
        self.kind = kind
        self.args = args
        self.options: dict[str, Any] = {} if options is None else options
        self.mode = mode

    def __repr__(self) -> str:
        return (f"Endpoint(kind={self.kind!r}, args={self.args!r}, options={self.options!r}, "
                f"mode={self.mode!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Endpoint)
        return (self.kind, self.args, self.options, self.mode) == (
            other.kind, other.args, other.options, other.mode)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq is

    def __str__(self) -> str:
        return format(self)


# ---- reading a description


class _Field(NamedTuple):
    key: str | None  # None for a positional field
    value: str  # with escapes resolved
    bracketed: bool  # the whole value was one unescaped "[...]"


def _closing_bracket(text: str, start: int) -> int:
    """Index of the unescaped ``]`` after ``text[start]``, or -1."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "]":
            return i
        else:
            i += 1
    return -1


def _split(description: str) -> list[_Field]:
    """Cut a description into fields, honouring backslash escapes and ``[...]``."""
    fields: list[_Field] = []
    key: str | None = None
    buf: list[str] = []
    at_start = True  # at the start of a value (the field's, or an option's after "=")
    bracketed = False
    i, n = 0, len(description)
    while i < n:
        c = description[i]
        if c == "\\":
            if i + 1 == n:
                raise EndpointError(description, "it ends with a lone backslash")
            buf.append(description[i + 1])
            i += 2
            at_start = bracketed = False
            continue
        if c == "[" and at_start:
            end = _closing_bracket(description, i)
            if end != -1:
                inner = re.sub(r"\\(.)", r"\1", description[i + 1 : end], flags=re.DOTALL)
                buf.append(f"[{inner}]")
                i = end + 1
                at_start, bracketed = False, True
                continue
        if c == ":":
            fields.append(_Field(key, "".join(buf), bracketed))
            key, buf, at_start, bracketed = None, [], True, False
        elif c == "=" and key is None:
            key, buf, at_start, bracketed = "".join(buf), [], True, False
        else:
            buf.append(c)
            at_start = bracketed = False
        i += 1
    fields.append(_Field(key, "".join(buf), bracketed))
    return fields


class _Reader:
    """Checks and converts the fields of one description, naming what is wrong."""

    def __init__(self, description: str, mode: str, kind: str) -> None:
        self.description = description
        self.mode = mode
        self.kind = kind

    def error(self, problem: str) -> EndpointError:
        return EndpointError(self.description, problem)

    def port(self, text: str, what: str = "port") -> int:
        if not text:
            raise self.error(f"missing {what}: expected {_USAGE[self.mode, self.kind]}")
        if text[:1] == "-" and _DIGITS.fullmatch(text[1:]):
            raise self.error(f"{what} {text} is out of range (0-65535)")
        if not _DIGITS.fullmatch(text):
            expected = f" (expected {_USAGE[self.mode, self.kind]})" if what == "port" else ""
            raise self.error(f"{what} {text!r} is not a number{expected}")
        port = int(text)
        if port > 65535:
            raise self.error(f"{what} {port} is out of range (0-65535)")
        if port == 0 and what == "port" and self.mode == "connect":
            raise self.error("port 0 cannot be connected to (0-65535 is for listening)")
        return port

    def host(self, f: _Field, what: str) -> str:
        text = f.value[1:-1] if f.bracketed else f.value
        if not text:
            raise self.error(f"missing {what}")
        if f.bracketed or ":" in text or self.kind == "tcp6":
            try:
                ipaddress.IPv6Address(text)
            except ValueError:
                if f.bracketed:
                    raise self.error(f"{what} [{text}] is not an IPv6 address") from None
                if ":" in text:
                    raise self.error(
                        f"{what} {text!r} is not an IPv6 address "
                        r"(a colon inside a field is written \:)"
                    ) from None
                raise self.error(
                    f"{what} {text!r} is not an IPv6 address, which {self.kind} needs "
                    "(use tcp: for host names and IPv4)"
                ) from None
            return text
        if _BAD_HOST_CHARS.search(text):
            raise self.error(f"{what} {text!r} is not a host name or address")
        return text

    def path(self, text: str, what: str = "path") -> str:
        if not text:
            usage = f": expected {_USAGE[self.mode, self.kind]}" if what == "path" else ""
            raise self.error(f"missing {what}{usage}")
        if "\x00" in text:
            raise self.error(f"{what} {text!r} contains a NUL character")
        return text

    def option(self, key: str, f: _Field) -> Any:
        value = f.value
        if not value:
            raise self.error(f"option {key} has no value")

        def bad(expected: str) -> EndpointError:
            return self.error(f"bad value for {key}: {value!r} ({expected})")

        if key == "interface":
            return self.host(f, "interface")
        if key == "backlog":
            if not _DIGITS.fullmatch(value) or int(value) > 2**31 - 1:
                raise bad("expected a whole number")
            return int(value)
        if key == "mode":
            m = _OCTAL.fullmatch(value)
            if not m or int(m.group(1), 8) > 0o7777:
                raise bad("expected an octal file mode such as 0o600 or 660")
            return int(m.group(1), 8)
        if key == "timeout":
            seconds = float(value) if _DECIMAL.fullmatch(value) else math.nan
            if not (0 < seconds < math.inf):
                raise bad("expected a positive number of seconds")
            return seconds
        if key == "bind":
            return self.bind(f)
        if key == "verify":
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise bad("expected yes or no")
        return self.path(value, key)  # cert, key, ca

    def bind(self, f: _Field) -> tuple[str, int]:
        # HOST, HOST:PORT, [V6] or [V6]:PORT. A bare V6 address is taken whole
        # (port 0): "::1:5" is itself an address, so a V6 host with a port needs brackets.
        value = f.value
        if value.startswith("[") and "]" in value:
            end = value.index("]")
            host, rest = value[: end + 1], value[end + 1 :]
            if rest and not rest.startswith(":"):
                raise self.error(
                    f"bad value for bind: {value!r} (expected HOST, HOST\\:PORT or [V6]\\:PORT)"
                )
            return self.host(_Field(None, host, True), "bind host"), self.port(
                rest[1:] if rest else "0", "bind port"
            )
        if value.count(":") == 1:
            host, port = value.split(":")
            return self.host(_Field(None, host, False), "bind host"), self.port(port, "bind port")
        return self.host(_Field(None, value, False), "bind host"), 0


def parse(description: str, mode: str = "listen") -> Endpoint:
    r"""Parse an endpoint description for ``mode`` ("listen" or "connect"), with no I/O.

    Returns an :class:`Endpoint`. Raises :class:`EndpointError` (a
    ValueError) naming the bad part: an unknown kind, a missing,
    non-numeric or out-of-range port, an unknown, repeated or badly valued
    option, or an empty description.

    Example::

        >>> parse("tcp:8080:backlog=50")
        Endpoint(kind='tcp', args=(8080,), options={'backlog': 50}, mode='listen')
        >>> parse(r"tcp6:\:\:1:443:timeout=2.5", mode="connect").args
        ('::1', 443)
        >>> parse("tcp6:[::1]:443", mode="connect").args
        ('::1', 443)
        >>> try:
        ...     parse("tcp:80:hue=1")
        ... except ValueError as e:
        ...     print(e)
        endpoint 'tcp:80:hue=1': unknown option 'hue' for tcp listen; allowed: backlog, interface
    """
    if not isinstance(description, str):
        raise TypeError(f"an endpoint description is a str, not {type(description).__name__}")
    if mode not in _GRAMMAR:
        raise ValueError(f"mode must be 'listen' or 'connect', not {mode!r}")
    if not description:
        raise EndpointError(description, "it is empty; expected e.g. 'tcp:8080'")
    grammar = _GRAMMAR[mode]
    fields = _split(description)
    head = fields[0]
    kind = head.value if head.key is None else f"{head.key}={head.value}"
    if head.key is not None or kind not in grammar:
        if not kind:
            raise EndpointError(
                description, f"the kind is missing; known kinds: {', '.join(_KINDS)}"
            )
        if kind == "udp" and mode == "connect":
            raise EndpointError(
                description,
                "udp is not supported for connect: UDP has no connections; "
                "listen('udp:0', protocol) and send with transport.write(data, addr)",
            )
        import difflib  # only for a mistake: not loaded at start-up

        close = difflib.get_close_matches(kind.lower(), list(grammar), n=1, cutoff=0.6)
        meant = f" (did you mean {close[0]!r}?)" if close else ""
        if _DIGITS.fullmatch(kind):
            meant = f" (did you mean 'tcp:{description}'?)"
        elif kind.lower() in ("http", "https") and mode == "connect":
            meant = f" (a URL: http.get({description!r}) fetches it)"
        elif (mode == "connect" and len(fields) == 2 and fields[1].key is None
              and _DIGITS.fullmatch(fields[1].value)):
            meant = f" (did you mean 'tcp:{description}'?)"  # host:port without its kind
        raise EndpointError(
            description, f"unknown kind {kind!r}{meant}; known kinds: {', '.join(grammar)}"
        )
    names, allowed = grammar[kind]
    r = _Reader(description, mode, kind)

    positional: list[_Field] = []
    options: dict[str, Any] = {}
    for f in fields[1:]:
        if f.key is None:
            if options:
                raise r.error(
                    f"positional field {f.value!r} comes after options; "
                    f"expected {_USAGE[mode, kind]} first"
                )
            positional.append(f)
            continue
        if f.key in options:
            raise r.error(f"option {f.key!r} is given twice")
        if not f.key:
            raise r.error(f"option {f.value!r} has no name (expected key=value)")
        if f.key not in allowed:
            raise r.error(
                f"unknown option {f.key!r} for {kind} {mode}; allowed: {', '.join(allowed)}"
            )
        options[f.key] = r.option(f.key, f)

    if len(positional) > len(names):
        extra = positional[len(names)].value
        hint = r" (a colon inside a field is written \:"
        hint += "; an IPv6 host may be written [::1])" if "host" in names else ")"
        raise r.error(f"unexpected field {extra!r}: expected {_USAGE[mode, kind]}{hint}")
    args: list[Any] = []
    for i, name in enumerate(names):
        f = positional[i] if i < len(positional) else _Field(None, "", False)
        if name == "port":
            args.append(r.port(f.value))
        elif name == "host":
            if not f.value:
                raise r.error(f"missing host: expected {_USAGE[mode, kind]}")
            args.append(r.host(f, "host"))
        else:
            args.append(r.path(f.value))
    return Endpoint(kind, tuple(args), options, mode)


# ---- writing one


def _escape(text: str, positional: bool) -> str:
    out = text.replace("\\", "\\\\").replace(":", "\\:")
    if positional:
        out = out.replace("=", "\\=")
    # A leading "[" opens a bracketed part that runs to the next "]", even across
    # fields: escape it unless its own "]" closes it within this value.
    if out.startswith("[") and "]" not in out:
        out = "\\" + out
    return out


def _format_value(key: str, value: Any) -> str:
    if key == "mode":
        return f"0o{value:o}"
    if key == "verify":
        return "yes" if value else "no"
    if key == "timeout":
        if float(value).is_integer():
            return str(int(value))
        from decimal import Decimal  # rare: not loaded at start-up

        return f"{Decimal(repr(float(value))):f}"
    if key == "bind":
        host, port = value
        return format_hostport(host, port)
    return str(value)


def format(endpoint: Endpoint) -> str:
    r"""Write ``endpoint`` as a description that :func:`parse` reads back to the same.

    Example::

        >>> format(Endpoint("tcp6", ("::1", 8080), {"timeout": 5.0}, mode="connect"))
        'tcp6:\\:\\:1:8080:timeout=5'
        >>> format(parse("unix:/tmp/a\\:b.sock"))
        'unix:/tmp/a\\:b.sock'
    """
    parts = [endpoint.kind]
    parts += [_escape(str(a), positional=True) for a in endpoint.args]
    parts += [
        f"{k}={_escape(_format_value(k, v), positional=False)}" for k, v in endpoint.options.items()
    ]
    return ":".join(parts)


# ---- acting on one


def _missing(endpoint: Endpoint, *keys: str) -> None:
    missing = [k for k in keys if k not in endpoint.options]
    if missing:
        raise EndpointError(
            format(endpoint), f"a tls listener needs {' and '.join(f'{k}=PATH' for k in missing)}"
        )


def _as_endpoint(description: str | Endpoint, mode: str) -> Endpoint:
    if isinstance(description, Endpoint):
        if description.mode != mode:
            raise ValueError(f"{description!r} was parsed for {description.mode}, not for {mode}")
        return description
    return parse(description, mode)


def listen(
    description: str | Endpoint,
    factory_or_protocol: Factory | DatagramProtocol,
    reactor: Reactor | None = None,
) -> Listener | DatagramListener:
    """Listen where ``description`` says; returns the Listener, bound at once.

    - ``tcp:PORT[:interface=HOST][:backlog=N]`` (interface 127.0.0.1 unless told)
    - ``tcp6:PORT[:interface=HOST][:backlog=N]`` (interface ::1 unless told)
    - ``unix:PATH[:mode=0o600][:backlog=N]`` (mode in octal, with or without 0o)
    - ``udp:PORT[:interface=HOST]``: the second argument is a DatagramProtocol
      and the result a DatagramListener.
    - ``tls:PORT:cert=PATH:key=PATH[:interface=HOST][:backlog=N]``: TLS from the first byte.

    ``reactor`` defaults to the current one. Raises :class:`EndpointError`
    (ValueError) for a bad description, TypeError when the second argument
    does not suit the kind, and OSError when the address cannot be bound.

    Example (port 0 picks a free port)::

        listener = listen("tcp:0", ns.Factory.for_protocol(Echo))
        listener.port
    """
    ep = _as_endpoint(description, "listen")
    r = reactor if reactor is not None else get_reactor()
    o = ep.options
    thing = factory_or_protocol
    if ep.kind == "udp":
        if not isinstance(thing, DatagramProtocol):
            raise TypeError(f"a udp endpoint takes a DatagramProtocol instance, not {thing!r}")
        return r.listen_udp(ep.args[0], thing, interface=o.get("interface", "127.0.0.1"))
    _check_factory(thing)
    assert isinstance(thing, Factory)
    backlog = o.get("backlog", 128)
    if ep.kind == "tls":
        # Imported here for start-up time: netshell.tls loads pyOpenSSL and cryptography.
        from netshell.tls import server_context

        _missing(ep, "cert", "key")
        context = server_context(o["cert"], o["key"])
        return r.listen_tls(
            ep.args[0], thing, context, interface=o.get("interface", "127.0.0.1"), backlog=backlog
        )
    if ep.kind == "unix":
        return r.listen_unix(ep.args[0], thing, mode=o.get("mode", 0o600), backlog=backlog)
    default_interface = "::1" if ep.kind == "tcp6" else "127.0.0.1"
    return r.listen_tcp(
        ep.args[0], thing, interface=o.get("interface", default_interface), backlog=backlog
    )


def connect(
    description: str | Endpoint, factory: Factory, reactor: Reactor | None = None
) -> Deferred[Protocol]:
    r"""Connect where ``description`` says; the Deferred fires with the connected protocol.

    - ``tcp:HOST:PORT[:timeout=S][:bind=HOST\:PORT]``
    - ``tcp6:HOST:PORT[...]`` (an IPv6 address: ``tcp6:\:\:1:80`` or ``tcp6:[::1]:80``)
    - ``unix:PATH[:timeout=S]``
    - ``tls:HOST:PORT[:ca=PATH][:verify=no][:timeout=S]``: TLS, verified unless ``verify=no``.

    ``bind`` is the local address: ``HOST``, ``HOST\:PORT``, or ``[V6]\:PORT`` for
    an IPv6 one with a port (``\:\:1\:5`` would itself be an address).
    ``timeout`` is 30 seconds unless told. ``reactor`` defaults to the
    current one. Raises :class:`EndpointError` (ValueError) for a bad
    description; the Deferred fails with a :class:`~netshell.ConnectError`
    when the connection cannot be made.

    Example::

        client = await connect("tcp:example.org:80", ns.ClientFactory.for_protocol(Client))
    """
    ep = _as_endpoint(description, "connect")
    _check_factory(factory)
    r = reactor if reactor is not None else get_reactor()
    o = ep.options
    timeout = o.get("timeout", 30)
    if ep.kind == "tls":
        # Imported here for start-up time: netshell.tls loads pyOpenSSL and cryptography.
        from netshell.tls import client_context

        host, port = ep.args
        context = client_context(host, ca=o.get("ca"), verify=o.get("verify", True))
        return r.connect_tls(
            host, port, factory, context, timeout=timeout, bind_address=o.get("bind")
        )
    if ep.kind == "unix":
        return r.connect_unix(ep.args[0], factory, timeout=timeout)
    host, port = ep.args
    return r.connect_tcp(host, port, factory, timeout=timeout, bind_address=o.get("bind"))


def _check_factory(thing: Any) -> None:
    if isinstance(thing, Factory):
        return
    if isinstance(thing, type) and issubclass(thing, Protocol):
        raise TypeError(
            f"a stream endpoint takes a factory, not the protocol class {thing.__qualname__}; "
            f"use ns.Factory.for_protocol({thing.__qualname__})"
        )
    raise TypeError(f"a stream endpoint takes a Factory, not {thing!r}")
