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

    def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _error(405, Headers([("Allow", "GET, HEAD")]))
        url_path = request.params.get("path")
        if url_path is None:
            url_path = request.path
        try:
            path = resolve_path(self.root, url_path)
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
            return self._directory(request, path)
        if not stat.S_ISREG(st.st_mode):
            return _error(404)  # no devices, sockets or pipes
        return self._file(request, path, st)

    def _directory(self, request: Request, path: str) -> Response:
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
            try:
                st = os.stat(index)
            except OSError:
                pass
            else:
                # The index may be a link: it must not lead out of the root either.
                if stat.S_ISREG(st.st_mode) and self._inside(index):
                    return self._file(request, index, st)
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
        real = os.path.realpath(path)
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def _file(self, request: Request, path: str, st: os.stat_result) -> Response:
        etag = etag_for(st)
        headers = Headers(
            [
                ("Content-Type", content_type(path)),
                ("Last-Modified", formatdate(st.st_mtime, usegmt=True)),
                ("ETag", etag),
                ("Accept-Ranges", "bytes"),
            ]
        )
        if is_not_modified(request.headers, etag, st.st_mtime):
            headers.remove("Content-Type")
            headers.remove("Accept-Ranges")
            return Response(b"", 304, headers)
        size = st.st_size
        start, count, status = 0, size, 200
        # RFC 9110 section 14.2: Range is for GET only (a HEAD must match a plain GET).
        wanted = request.headers.get("range") if request.method == "GET" else None
        if wanted is not None:
            if_range = request.headers.get("if-range")
            if if_range is None or _if_range_holds(if_range, etag, st.st_mtime):
                try:
                    span = parse_range(wanted, size)
                except RangeNotSatisfiable as e:
                    return _error(416, e.headers)
                if span is not None:
                    start, count, status = span[0], span[1] - span[0] + 1, 206
                    headers.add("Content-Range", f"bytes {span[0]}-{span[1]}/{size}")
        try:
            f = open(path, "rb")  # noqa: SIM115 -- the server closes it once sent
        except PermissionError:
            return _error(403)
        except OSError:
            return _error(404)
        body: Any
        if count <= SMALL_FILE:
            with f:
                if start:
                    f.seek(start)
                body = f.read(count)
            if len(body) != count:
                return _error(500)  # the file shrank since stat()
        else:
            body = FileBody(f, start, count)
        return Response(body, status, headers)

    def __repr__(self) -> str:
        return f"<StaticFiles {self.root!r}>"
