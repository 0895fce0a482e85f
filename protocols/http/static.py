"""Static files: a handler that serves a directory tree, and the rules it follows.

:class:`StaticFiles` answers ``GET`` and ``HEAD`` under one root directory:
files with their content type, ``ETag`` and ``Last-Modified``; ``304 Not
Modified`` for ``If-None-Match`` / ``If-Modified-Since``; ``206 Partial
Content`` for a single ``Range`` (``416`` when it cannot be satisfied); an HTML
listing for directories. Large files are not read into memory: their body is a
:class:`FileBody`, which the server sends with ``sendfile`` on plain TCP and
piece by piece otherwise.

No request leaves the root: ``..`` segments (however encoded), backslashes,
NUL bytes and symbolic links that resolve outside the root are all refused.

What a request path leads to is remembered (the file's headers, and the bytes of a
small file), bounded by :data:`CACHE_ENTRIES` paths and :data:`CACHE_BYTES` bytes.
Every request checks the memory with ``lstat`` of each name on the way: a name that
is now a symbolic link, or a file whose size, modification or change time or inode
differs, sends the request the whole way again (resolution, the root check, a read).
Paths through symbolic links (inside the root) are resolved in full every time.

Example::

    >>> parse_range("bytes=0-99", 1000), parse_range("bytes=-100", 1000)
    ((0, 99), (900, 999))
    >>> parse_range("bytes=5-", 3)
    Traceback (most recent call last):
    ...
    protocols.http.static.RangeNotSatisfiable: 416 Range Not Satisfiable (size 3)
    >>> content_type("notes.txt"), content_type("archive.tar.gz")
    ('text/plain', 'application/gzip')
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
from email.utils import formatdate, parsedate_to_datetime
from typing import IO, Any
from urllib.parse import quote

from protocols.http.message import Headers, HTTPError, Request, Response

__all__ = [
    "FileBody",
    "RangeNotSatisfiable",
    "StaticFiles",
    "content_type",
    "etag_for",
    "is_not_modified",
    "parse_range",
    "render_listing",
    "resolve_path",
]

#: files up to this size are read and sent in one write; larger ones are streamed
SMALL_FILE = 64 * 1024
#: request paths whose file is remembered, per StaticFiles (the oldest is forgotten first)
CACHE_ENTRIES = 1024
#: bytes of small files kept in memory, per StaticFiles
CACHE_BYTES = 16 * 1024 * 1024

_S_IFMT = 0o170000
_S_IFDIR = stat.S_IFDIR
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "br": "application/x-brotli",
    "compress": "application/x-compress",
}


class FileBody:
    """``count`` bytes of an open binary file from ``offset``: a response body to stream.

    The server closes the file once the body is sent (or the connection is lost).
    """

    __slots__ = ("file", "offset", "count")

    def __init__(self, file: IO[bytes], offset: int = 0, count: int | None = None) -> None:
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        if offset < 0 or count < 0:
            raise ValueError(f"offset and count must not be negative ({offset}, {count})")
        self.file = file
        self.offset = offset
        self.count = count

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        name = getattr(self.file, "name", "?")
        return f"<FileBody {name!r} {self.offset}+{self.count}>"


class RangeNotSatisfiable(HTTPError):
    """No byte of the file is in the range asked for (416, with ``Content-Range: bytes */size``)."""

    def __init__(self, size: int) -> None:
        super().__init__(416)
        self.size = size
        self.headers = Headers([("Content-Range", f"bytes */{size}")])

    def __str__(self) -> str:
        return f"416 Range Not Satisfiable (size {self.size})"


def resolve_path(root: str, url_path: str) -> str:
    """The real file system path of percent-decoded ``url_path`` under ``root``.

    ``root`` must be a real path (``os.path.realpath``). Raises HTTPError 400
    for a NUL byte, and 404 for a ``..`` segment, a backslash, or a path whose
    symbolic links lead out of the root. The path need not exist.

    >>> resolve_path("/srv/www", "/docs/./a.txt")
    '/srv/www/docs/a.txt'
    >>> resolve_path("/srv/www", "/docs/../../etc/passwd")
    Traceback (most recent call last):
    ...
    protocols.http.message.HTTPError: '..' in path
    """
    return _resolve(root, _segments(url_path))


def _segments(url_path: str) -> list[str]:
    """The names of ``url_path``, refused as :func:`resolve_path` says."""
    if "\x00" in url_path:
        raise HTTPError(400, "NUL byte in path")
    if "\\" in url_path:
        # Not a separator on POSIX, but one on Windows and to many a proxy: never a name here.
        raise HTTPError(404, "backslash in path")
    parts = []
    for segment in url_path.split("/"):
        if segment == "..":
            raise HTTPError(404, "'..' in path")
        if segment and segment != ".":
            parts.append(segment)
    return parts


def _resolve(root: str, parts: list[str]) -> str:
    real = os.path.realpath(os.path.join(root, *parts))
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        raise HTTPError(404, "path leads out of the root")  # through a symbolic link
    return real


def content_type(path: str) -> str:
    """The media type for a file name (``application/octet-stream`` when unknown)."""
    kind, encoding = mimetypes.guess_type(path, strict=False)
    if encoding is not None:
        # Served as the compressed file it is: Content-Encoding would have clients unpack it.
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    return kind or "application/octet-stream"


def etag_for(st: os.stat_result) -> str:
    """A strong entity tag from a file's modification time and size."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def _etag_listed(value: str, etag: str) -> bool:
    """Whether an If-None-Match value lists ``etag`` (weak comparison) or is ``*``."""
    if value.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in value.split(","))


def _parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def is_not_modified(headers: Headers, etag: str, mtime: float) -> bool:
    """Whether a GET with these request headers gets ``304 Not Modified``.

    ``If-None-Match`` decides when present; ``If-Modified-Since`` only
    without it (RFC 9110 section 13.2.2). A date that does not parse is ignored.
    """
    none_match = headers.get("if-none-match")
    if none_match is not None:
        return _etag_listed(none_match, etag)
    since = headers.get("if-modified-since")
    if since is None:
        return False
    when = _parse_http_date(since)
    return when is not None and int(mtime) <= when


def _if_range_holds(value: str, etag: str, mtime: float) -> bool:
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # strong comparison; a weak tag never matches
    when = _parse_http_date(value)
    return when is not None and int(mtime) == when


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) of a single-range ``Range`` header.

    None when the header is to be ignored (not bytes, malformed, or several
    ranges: the whole file is sent then). Raises :class:`RangeNotSatisfiable`
    when the range starts past the end of the file, or asks for no bytes.
    """
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first:
        if not _digits(last):
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size - 1
    if not _digits(first) or (last and not _digits(last)):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid, so ignored (RFC 9110 section 14.1.1)
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, min(end, size - 1)


def _digits(text: str) -> bool:
    # ASCII digits only: str.isdigit() also says yes to "²", which int() refuses, and to
    # no sign or space.
    return text.isascii() and text.isdigit()


def render_listing(url_path: str, names: list[tuple[str, bool]]) -> bytes:
    """An HTML page listing ``names`` (each ``(name, is_directory)``) of ``url_path``.

    Names and the path are HTML-escaped and the links percent-encoded, so a
    file called ``<script>`` is shown, never run.

    >>> page = render_listing("/a/", [("<b>.txt", False), ("sub", True)])
    >>> b'<a href="%3Cb%3E.txt">&lt;b&gt;.txt</a>' in page, b'<a href="sub/">sub/</a>' in page
    (True, True)
    """
    title = html.escape(_display(url_path))
    rows = []
    if url_path != "/":
        rows.append('<li><a href="../">../</a></li>')
    for name, is_dir in sorted(names, key=lambda item: (item[0].lower(), item[0])):
        suffix = "/" if is_dir else ""
        href = html.escape(quote(name, errors="surrogateescape") + suffix, quote=True)
        rows.append(f'<li><a href="{href}">{html.escape(_display(name))}{suffix}</a></li>')
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n"
        + "\n".join(rows)
        + "\n</ul></body></html>\n"
    )
    return page.encode("utf-8")


def _display(name: str) -> str:
    """A name for people: bytes that are not UTF-8 shown as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _error(status: int, headers: Headers | None = None) -> Response:
    exc = HTTPError(status)
    h = headers if headers is not None else Headers()
    h.set("Content-Type", "text/plain; charset=utf-8")
    return Response(f"{status} {exc.message}\n".encode(), status, h)


class _Entry:
    """A file as a request path found it, with its headers made: valid while the names on
    the way stay what they were (checked with ``lstat``) and the file keeps its ``sig``."""

    __slots__ = (
        "dirs", "path", "index", "sig", "size", "mtime", "etag", "pairs", "ok_head",
        "not_modified_head", "length_line", "body",
    )

    def __init__(self, path: str, st: os.stat_result) -> None:
        self.dirs: tuple[str, ...] = ()  # the directories on the way, each checked per request
        self.path = path
        self.index = False  # a directory's index file: only for a path that ends with "/"
        self.sig = _signature(st)
        self.size = st.st_size
        self.mtime = st.st_mtime
        self.etag = etag = etag_for(st)
        modified = formatdate(st.st_mtime, usegmt=True)
        self.pairs = (
            ("Content-Type", content_type(path)),
            ("Last-Modified", modified),
            ("ETag", etag),
            ("Accept-Ranges", "bytes"),
        )
        # The head of a 200 and of a 304 up to the Date line, as the server's framing
        # makes it from a Response with these headers (a test holds the two together).
        fields = "".join(f"{name}: {value}\r\n" for name, value in self.pairs)
        self.ok_head = ("HTTP/1.1 200 OK\r\n" + fields).encode("latin-1")
        self.not_modified_head = (
            f"HTTP/1.1 304 Not Modified\r\nLast-Modified: {modified}\r\nETag: {etag}\r\n"
        ).encode("latin-1")
        self.length_line = b"Content-Length: %d\r\n\r\n" % st.st_size
        self.body: bytes | None = None  # the contents of a small file


def _signature(st: os.stat_result) -> tuple[int, ...]:
    """What says a file is still the one read: any change to it changes one of these."""
    return (st.st_mode, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _open_nofollow(path: str, flags: int) -> int:
    # The path is a resolved one: a name that became a link since is refused, not followed.
    return os.open(path, flags | _NOFOLLOW)


def _reopen(entry: _Entry) -> IO[bytes] | None:
    """A remembered large file opened again, if it is still the one remembered."""
    try:
        f = open(entry.path, "rb", opener=_open_nofollow)  # noqa: SIM115 -- the caller's
    except OSError:
        return None
    try:
        if _signature(os.fstat(f.fileno())) == entry.sig:
            return f
    except OSError:
        pass
    f.close()
    return None


class StaticFiles:
    """A handler serving the files under ``root`` to ``GET`` and ``HEAD``.

    ``listing`` makes directories without an ``index`` file answer with an
    HTML listing (404 otherwise). Inside an :class:`~protocols.http.App`,
    route it with a ``{path:path}`` parameter, which it serves instead of
    the request path::

        app.add_route("/files/{path:path}", StaticFiles("/srv/files"))

    Raises NotADirectoryError if ``root`` is not a directory.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        listing: bool = True,
        index: str | None = "index.html",
    ) -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise NotADirectoryError(f"not a directory: {os.fspath(root)!r}")
        self.root = real
        self.listing = listing
        self.index = index
        self._cache: dict[str, _Entry] = {}
        self._cached_bytes = 0

    # ---- the cache of what request paths lead to

    def _cached(self, url_path: str, request: Request) -> _Entry | None:
        """The remembered file of ``url_path``, if every name on the way and the file
        itself are still what they were (else it is forgotten)."""
        entry = self._cache.get(url_path)
        if entry is None:
            return None
        if entry.index and not request.path.endswith("/"):
            return None  # a redirect to the path with its slash: not this entry's answer
        lstat = os.lstat
        try:
            for name in entry.dirs:
                if lstat(name).st_mode & _S_IFMT != _S_IFDIR:
                    break  # a link now, or no more a directory
            else:
                st = lstat(entry.path)
                if (
                    st.st_mode, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns,
                    st.st_ctime_ns,
                ) == entry.sig:
                    return entry
        except OSError:
            pass
        self._forget(url_path)
        return None

    def _forget(self, url_path: str) -> None:
        entry = self._cache.pop(url_path, None)
        if entry is not None and entry.body is not None:
            self._cached_bytes -= len(entry.body)

    def _remember(self, url_path: str, entry: _Entry) -> None:
        self._forget(url_path)
        cache = self._cache
        size = len(entry.body) if entry.body is not None else 0
        while cache and (len(cache) >= CACHE_ENTRIES or self._cached_bytes + size > CACHE_BYTES):
            self._forget(next(iter(cache)))  # the oldest first
        cache[url_path] = entry
        self._cached_bytes += size

    # ---- answering

    def _answer(self, request: Request, date_line: bytes) -> tuple[bytes, int, int] | None:
        """The whole answer to a ``GET`` or ``HEAD`` of a remembered small file, for the
        server to write as it is on a kept-alive HTTP/1.1 connection: (bytes, status, body
        bytes sent). ``date_line`` is the server's ``Date`` and ``Server`` lines. None when
        the request needs more (a Range, a file not remembered): ``__call__`` answers it.
        The bytes are those the server makes from ``__call__``'s Response.
        """
        method = request.method
        if method != "GET" and method != "HEAD":
            return None
        url_path = request.params.get("path")
        if url_path is None:
            url_path = request.path
        entry = self._cached(url_path, request)
        if entry is None or entry.body is None:
            return None
        conditional = False
        for name, _ in request.headers._items:
            if name[:1] in "iIrR":  # Range, If-Range, If-None-Match, If-Modified-Since
                key = name.lower()
                if key == "range":
                    if method == "GET":
                        return None
                elif key == "if-none-match" or key == "if-modified-since":
                    conditional = True
        if conditional and is_not_modified(request.headers, entry.etag, entry.mtime):
            return b"".join((entry.not_modified_head, date_line, b"\r\n")), 304, 0
        if method == "HEAD":
            return b"".join((entry.ok_head, date_line, entry.length_line)), 200, 0
        return b"".join((entry.ok_head, date_line, entry.length_line, entry.body)), 200, entry.size

    def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _error(405, Headers([("Allow", "GET, HEAD")]))
        url_path = request.params.get("path")
        if url_path is None:
            url_path = request.path
        entry = self._cached(url_path, request)
        if entry is not None:
            return self._file(request, entry, None, url_path)
        try:
            parts = _segments(url_path)
            path = _resolve(self.root, parts)
            st = os.stat(path)
        except HTTPError as e:
            return _error(e.status)
        except (FileNotFoundError, NotADirectoryError):
            return _error(404)
        except PermissionError:
            return _error(403)
        except OSError:  # a name too long, a loop of links...
            return _error(404)
        if stat.S_ISDIR(st.st_mode):
            return self._directory(request, path, parts, url_path)
        if not stat.S_ISREG(st.st_mode):
            return _error(404)  # no devices, sockets or pipes
        return self._load(request, path, parts, url_path, False)

    def _directory(
        self, request: Request, path: str, parts: list[str], url_path: str
    ) -> Response:
        if not request.path.endswith("/"):
            # Relative links in the page resolve against the URL: it must end with "/".
            # From the path as sent, never the whole target: an absolute-form target
            # or a path starting "//" would make the Location point at another host.
            target = request.target
            if not target.startswith("/"):
                target = target.partition("://")[2]
                target = target[len(target.split("/", 1)[0]) :] or "/"
            path, question, query = target.partition("?")
            location = "/" + path.lstrip("/") + "/" + question + query
            h = Headers([("Location", location)])
            return _error(301, h)
        if self.index:
            index = os.path.join(path, self.index)
            # The index may be a link: it must not lead out of the root either.
            real = os.path.realpath(index)
            try:
                st = os.stat(real)
            except OSError:
                pass
            else:
                if stat.S_ISREG(st.st_mode) and self._inside_real(real):
                    index_parts = [*parts, *filter(None, self.index.split("/"))]
                    return self._load(request, real, index_parts, url_path, True)
        if not self.listing:
            return _error(404)
        try:
            names = [
                (entry.name, entry.is_dir())
                for entry in os.scandir(path)
                if self._inside(entry.path)
            ]
        except PermissionError:
            return _error(403)
        body = render_listing(request.path, names)
        return Response(body, 200, Headers([("Content-Type", "text/html; charset=utf-8")]))

    def _inside(self, path: str) -> bool:
        return self._inside_real(os.path.realpath(path))

    def _inside_real(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def _load(
        self, request: Request, path: str, parts: list[str], url_path: str, index: bool
    ) -> Response:
        """Serve the file at the resolved ``path`` that ``url_path`` (its names ``parts``
        under the root) led to, and remember it when no symbolic link was on the way."""
        try:
            f = open(path, "rb", opener=_open_nofollow)  # noqa: SIM115 -- closed below or sent
        except PermissionError:
            return _error(403)
        except OSError:
            return _error(404)
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                f.close()
                return _error(404)
            entry = _Entry(path, st)
            if st.st_size > SMALL_FILE:
                kept: IO[bytes] | None = f
            else:
                with f:
                    body = f.read(st.st_size)
                    if len(body) != st.st_size:
                        return _error(500)  # the file shrank since fstat()
                    same = _signature(os.fstat(f.fileno())) == entry.sig
                entry.body = body
                kept = None
        except BaseException:
            f.close()
            raise
        # Remembered only when the names are the file's real path (no link on the way: each
        # is checked with lstat per request), and the file did not change while read.
        if os.path.join(self.root, *parts) == path and (kept is not None or same):
            entry.dirs = tuple(
                os.path.join(self.root, *parts[:i]) for i in range(1, len(parts))
            )
            entry.index = index
            self._remember(url_path, entry)
        return self._file(request, entry, kept, url_path)

    def _file(
        self, request: Request, entry: _Entry, f: IO[bytes] | None, url_path: str
    ) -> Response:
        """The answer from ``entry``; ``f``: the large file opened, or None."""
        headers = Headers.from_pairs(list(entry.pairs))
        etag, mtime = entry.etag, entry.mtime
        if is_not_modified(request.headers, etag, mtime):
            if f is not None:
                f.close()
            headers.remove("Content-Type")
            headers.remove("Accept-Ranges")
            return Response(b"", 304, headers)
        size = entry.size
        start, count, status = 0, size, 200
        # RFC 9110 section 14.2: Range is for GET only (a HEAD must match a plain GET).
        wanted = request.headers.get("range") if request.method == "GET" else None
        if wanted is not None:
            if_range = request.headers.get("if-range")
            if if_range is None or _if_range_holds(if_range, etag, mtime):
                try:
                    span = parse_range(wanted, size)
                except RangeNotSatisfiable as e:
                    if f is not None:
                        f.close()
                    return _error(416, e.headers)
                if span is not None:
                    start, count, status = span[0], span[1] - span[0] + 1, 206
                    headers.add("Content-Range", f"bytes {span[0]}-{span[1]}/{size}")
        body: Any
        if entry.body is not None:
            body = entry.body if count == size else entry.body[start : start + count]
            return Response(body, status, headers)
        if f is None:
            f = _reopen(entry)
            if f is None:
                self._forget(url_path)
                return self(request)  # the whole way: it opens the file as it is now
        return Response(FileBody(f, start, count), status, headers)

    def __repr__(self) -> str:
        return f"<StaticFiles {self.root!r}>"
