"""http(s) URLs for the client: parsing into what a request needs, and redirect Locations.

:meth:`URL.parse` splits a URL into scheme, host (IDNA-encoded), port and the request
target (percent-encoded), or raises :class:`~protocols.http.errors.InvalidURL`;
``origin`` is where a connection goes and ``authority`` what the Host header says.
:func:`decode_location` takes a redirect's Location back to the characters the server
meant, and :func:`join` resolves it against the URL that was requested.

Example::

    >>> from protocols.http.url import URL, join
    >>> u = URL.parse("https://example.org/a b?q=1#top")
    >>> u.scheme, u.host, u.port, u.target, u.origin
    ('https', 'example.org', 443, '/a%20b?q=1', ('https', 'example.org', 443))
    >>> str(join(URL.parse("http://example.org:8080/a/b"), "../c"))
    'http://example.org:8080/c'
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from protocols.http.errors import InvalidURL

__all__ = ["URL", "decode_location", "join"]

# Characters left as they are in a request target: the unreserved and reserved sets of
# RFC 3986, and "%" so that what is encoded already stays as it is.
_SAFE_TARGET = "/%:@!$&'()*+,;=-._~?"


@dataclass(frozen=True)
class URL:
    """An http(s) URL split into what a request needs."""

    scheme: str
    host: str  # without brackets for IPv6, IDNA-encoded for non-ASCII names
    port: int
    target: str  # origin form: path and query, percent-encoded

    @classmethod
    def parse(cls, url: str) -> URL:
        """Split ``url``; raises InvalidURL if it cannot be requested."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as e:
            raise InvalidURL(f"{url!r} is not a valid URL: {e}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise InvalidURL(f"only http and https URLs are supported, not {url!r}")
        host = parts.hostname
        if not host:
            raise InvalidURL(f"no host in {url!r}")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as e:
                raise InvalidURL(f"bad host name in {url!r}: {e}") from None
        path = quote(parts.path or "/", safe=_SAFE_TARGET)
        query = quote(parts.query, safe=_SAFE_TARGET) if parts.query else ""
        target = f"{path}?{query}" if query else path
        return cls(scheme, host, port or (443 if scheme == "https" else 80), target)

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): where a connection goes."""
        return (self.scheme, self.host, self.port)

    @property
    def authority(self) -> str:
        """host[:port] as the Host header wants it (the port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


def join(base: URL, location: str) -> URL:
    """``location`` (a redirect's, decoded) resolved against ``base``.

    Raises ValueError when ``location`` is not a URL at all ("http://[::1" and the like),
    and InvalidURL (a ValueError too) when it is one that cannot be requested.
    """
    return URL.parse(urljoin(str(base), location))


def decode_location(value: str) -> str:
    """A Location value as the server meant it, ready for :func:`join`.

    Header values are decoded ISO-8859-1, so the raw UTF-8 many servers send in a Location
    arrives as mojibake (the two bytes of an "e" with an acute accent as two characters),
    which URL.parse would encode a second time. Its bytes are taken back: as UTF-8 when
    they are (URL.parse encodes the path again to the very same bytes, and IDNA-encodes a
    host), else with each non-ASCII byte percent-encoded as it is, as curl does.
    """
    value = value.strip()
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value  # characters beyond Latin-1: not bytes off the wire
    if raw.isascii():
        return value
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)
