"""Static files without a server: path resolution, ranges, conditional requests, listings.

StaticFiles is called directly with Request objects; what the server adds (percent
decoding, HEAD, sending a FileBody) is tested in test_server_static.py.
"""

from __future__ import annotations

import os
from email.utils import formatdate
from pathlib import Path

import pytest

from protocols.http import App, Headers, HTTPError, Request
from protocols.http.static import (
    SMALL_FILE,
    FileBody,
    RangeNotSatisfiable,
    StaticFiles,
    content_type,
    etag_for,
    is_not_modified,
    parse_range,
    render_listing,
    resolve_path,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "hello.txt").write_bytes(b"hello, world\n")
    (www / "sub" / "page.html").write_bytes(b"<p>hi</p>")
    (tmp_path / "secret.txt").write_bytes(b"top secret")
    return www


def get(
    files: StaticFiles, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> object:
    request = Request(method, path, Headers(headers or {}), path=path)
    return files(request)


def body_of(response: object) -> bytes:
    body = response.body  # type: ignore[attr-defined]
    if isinstance(body, FileBody):
        body.file.seek(body.offset)
        data = body.file.read(body.count)
        body.close()
        return bytes(data)
    return bytes(body)


# ---- resolve_path


def test_resolve_path_joins_under_the_root(root: Path) -> None:
    real = os.path.realpath(root)
    assert resolve_path(real, "/sub/page.html") == os.path.join(real, "sub", "page.html")


def test_resolve_path_of_slash_is_the_root(root: Path) -> None:
    real = os.path.realpath(root)
    assert resolve_path(real, "/") == real


def test_resolve_path_refuses_dot_dot(root: Path) -> None:
    with pytest.raises(HTTPError) as info:
        resolve_path(os.path.realpath(root), "/sub/../../secret.txt")
    assert info.value.status == 404


def test_resolve_path_refuses_dot_dot_even_when_it_stays_inside(root: Path) -> None:
    with pytest.raises(HTTPError) as info:
        resolve_path(os.path.realpath(root), "/sub/../hello.txt")
    assert info.value.status == 404


def test_resolve_path_refuses_a_nul_byte_with_400(root: Path) -> None:
    with pytest.raises(HTTPError) as info:
        resolve_path(os.path.realpath(root), "/hello.txt\x00.png")
    assert info.value.status == 400


def test_resolve_path_refuses_a_backslash(root: Path) -> None:
    with pytest.raises(HTTPError) as info:
        resolve_path(os.path.realpath(root), "/..\\secret.txt")
    assert info.value.status == 404


def test_resolve_path_refuses_a_symlink_out_of_the_root(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret.txt")
    with pytest.raises(HTTPError) as info:
        resolve_path(os.path.realpath(root), "/escape")
    assert info.value.status == 404


def test_resolve_path_refuses_a_symlinked_directory_out_of_the_root(root: Path) -> None:
    (root / "up").symlink_to(root.parent, target_is_directory=True)
    with pytest.raises(HTTPError):
        resolve_path(os.path.realpath(root), "/up/secret.txt")


def test_resolve_path_follows_a_symlink_that_stays_inside(root: Path) -> None:
    (root / "alias.txt").symlink_to(root / "hello.txt")
    real = os.path.realpath(root)
    assert resolve_path(real, "/alias.txt") == os.path.join(real, "hello.txt")


def test_resolve_path_does_not_mistake_a_sibling_with_the_same_prefix(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www-private").mkdir()
    (tmp_path / "www" / "link").symlink_to(tmp_path / "www-private", target_is_directory=True)
    with pytest.raises(HTTPError):
        resolve_path(os.path.realpath(tmp_path / "www"), "/link")


# ---- parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 1000, (0, 99)),
        ("bytes=100-", 1000, (100, 999)),
        ("bytes=-100", 1000, (900, 999)),
        ("bytes=-5000", 1000, (0, 999)),  # a suffix longer than the file is the whole file
        ("bytes=900-5000", 1000, (900, 999)),  # a last byte past the end is the end
        ("bytes=5-5", 10, (5, 5)),
        ("Bytes=1-2", 10, (1, 2)),  # the unit is case-insensitive
    ],
)
def test_parse_range_satisfiable(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-6",  # several ranges: the whole file is sent
        "items=0-1",  # another unit
        "bytes=5-2",  # last before first: invalid
        "bytes=a-b",
        "bytes=1",
        "bytes=-",
        "bytes=+1-2",
        "bytes",
        "bytes=\u00b2-",  # a superscript two: isdigit() says yes, int() says no
        "bytes=1-\u00b2",
        "bytes=-\u0663",  # an Arabic-Indic three
    ],
)
def test_parse_range_ignores_what_it_cannot_use(header: str) -> None:
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=1000-", 1000), ("bytes=2000-3000", 1000), ("bytes=-0", 1000), ("bytes=0-", 0)],
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.status == 416
    assert info.value.headers["Content-Range"] == f"bytes */{size}"


# ---- content types, ETags, conditions


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html"),
        ("a.css", "text/css"),
        ("a.png", "image/png"),
        ("a.json", "application/json"),
        ("a.tar.gz", "application/gzip"),
        ("noextension", "application/octet-stream"),
    ],
)
def test_content_type(name: str, expected: str) -> None:
    assert content_type(name) == expected


def test_etag_changes_with_the_file(root: Path) -> None:
    path = root / "hello.txt"
    before = etag_for(path.stat())
    path.write_bytes(b"something longer than before\n")
    assert etag_for(path.stat()) != before


def test_if_none_match_with_the_etag_is_not_modified() -> None:
    assert is_not_modified(Headers({"If-None-Match": '"abc"'}), '"abc"', 0)


def test_if_none_match_finds_the_etag_in_a_list() -> None:
    assert is_not_modified(Headers({"If-None-Match": '"x", "abc" , "y"'}), '"abc"', 0)


def test_if_none_match_compares_weakly() -> None:
    assert is_not_modified(Headers({"If-None-Match": 'W/"abc"'}), '"abc"', 0)


def test_if_none_match_star_matches_any_file() -> None:
    assert is_not_modified(Headers({"If-None-Match": "*"}), '"abc"', 0)


def test_if_none_match_with_another_etag_is_modified() -> None:
    assert not is_not_modified(Headers({"If-None-Match": '"other"'}), '"abc"', 0)


def test_if_modified_since_after_the_file_is_not_modified() -> None:
    since = formatdate(2_000_000_000, usegmt=True)
    assert is_not_modified(Headers({"If-Modified-Since": since}), '"e"', 1_999_999_999.5)


def test_if_modified_since_before_the_file_is_modified() -> None:
    since = formatdate(1_000_000_000, usegmt=True)
    assert not is_not_modified(Headers({"If-Modified-Since": since}), '"e"', 2_000_000_000)


def test_if_modified_since_is_ignored_when_if_none_match_is_there() -> None:
    since = formatdate(2_000_000_000, usegmt=True)
    headers = Headers({"If-None-Match": '"other"', "If-Modified-Since": since})
    assert not is_not_modified(headers, '"e"', 1_000_000_000)


def test_an_if_modified_since_that_does_not_parse_is_ignored() -> None:
    assert not is_not_modified(Headers({"If-Modified-Since": "yesterday"}), '"e"', 0)


# ---- listings


def test_listing_escapes_names_and_encodes_links() -> None:
    page = render_listing("/", [('<img src=x onerror="a">', False)]).decode()
    assert "<img" not in page
    assert "&lt;img src=x onerror=&quot;a&quot;&gt;" in page
    assert 'href="%3Cimg%20src%3Dx%20onerror%3D%22a%22%3E"' in page


def test_listing_escapes_the_path_in_the_title() -> None:
    page = render_listing("/<script>/", []).decode()
    assert "<script>" not in page
    assert "Index of /&lt;script&gt;/" in page


def test_listing_marks_directories_with_a_slash_and_links_up() -> None:
    page = render_listing("/a/", [("d", True), ("f", False)]).decode()
    assert '<a href="d/">d/</a>' in page
    assert '<a href="f">f</a>' in page
    assert '<a href="../">../</a>' in page


def test_listing_of_the_root_has_no_parent_link() -> None:
    assert b"../" not in render_listing("/", [("f", False)])


def test_listing_shows_names_that_are_not_utf8() -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    page = render_listing("/", [(name, False)]).decode()
    assert 'href="caf%E9.txt"' in page
    assert "caf\ufffd.txt" in page


# ---- StaticFiles


def test_a_file_is_served_with_its_type_length_and_validators(root: Path) -> None:
    r = get(StaticFiles(root), "/hello.txt")
    assert r.status == 200  # type: ignore[attr-defined]
    assert body_of(r) == b"hello, world\n"
    headers = r.headers  # type: ignore[attr-defined]
    assert headers["Content-Type"] == "text/plain"
    assert headers["ETag"] == etag_for((root / "hello.txt").stat())
    assert headers["Last-Modified"] == formatdate((root / "hello.txt").stat().st_mtime, usegmt=True)
    assert headers["Accept-Ranges"] == "bytes"


def test_a_large_file_becomes_a_file_body_not_bytes(root: Path) -> None:
    data = os.urandom(SMALL_FILE + 1)
    (root / "big.bin").write_bytes(data)
    r = get(StaticFiles(root), "/big.bin")
    assert isinstance(r.body, FileBody)  # type: ignore[attr-defined]
    assert body_of(r) == data


def test_the_etag_gets_304(root: Path) -> None:
    files = StaticFiles(root)
    etag = get(files, "/hello.txt").headers["ETag"]  # type: ignore[attr-defined]
    r = get(files, "/hello.txt", {"If-None-Match": etag})
    assert (r.status, body_of(r)) == (304, b"")  # type: ignore[attr-defined]
    assert r.headers["ETag"] == etag  # type: ignore[attr-defined]


def test_if_modified_since_gets_304(root: Path) -> None:
    files = StaticFiles(root)
    last = get(files, "/hello.txt").headers["Last-Modified"]  # type: ignore[attr-defined]
    r = get(files, "/hello.txt", {"If-Modified-Since": last})
    assert r.status == 304  # type: ignore[attr-defined]


def test_a_range_gets_206_with_content_range(root: Path) -> None:
    r = get(StaticFiles(root), "/hello.txt", {"Range": "bytes=7-11"})
    assert r.status == 206  # type: ignore[attr-defined]
    assert body_of(r) == b"world"
    assert r.headers["Content-Range"] == "bytes 7-11/13"  # type: ignore[attr-defined]


def test_a_range_of_a_large_file_is_a_file_body_at_the_offset(root: Path) -> None:
    data = os.urandom(3 * SMALL_FILE)
    (root / "big.bin").write_bytes(data)
    r = get(StaticFiles(root), "/big.bin", {"Range": f"bytes=10-{2 * SMALL_FILE}"})
    assert isinstance(r.body, FileBody)  # type: ignore[attr-defined]
    assert (r.body.offset, r.body.count) == (10, 2 * SMALL_FILE - 9)  # type: ignore[attr-defined]
    assert body_of(r) == data[10 : 2 * SMALL_FILE + 1]


def test_an_unsatisfiable_range_gets_416(root: Path) -> None:
    r = get(StaticFiles(root), "/hello.txt", {"Range": "bytes=100-"})
    assert r.status == 416  # type: ignore[attr-defined]
    assert r.headers["Content-Range"] == "bytes */13"  # type: ignore[attr-defined]


def test_if_range_with_an_old_etag_sends_the_whole_file(root: Path) -> None:
    r = get(StaticFiles(root), "/hello.txt", {"Range": "bytes=0-1", "If-Range": '"old"'})
    assert (r.status, body_of(r)) == (200, b"hello, world\n")  # type: ignore[attr-defined]


def test_if_range_with_the_current_etag_sends_the_range(root: Path) -> None:
    files = StaticFiles(root)
    etag = get(files, "/hello.txt").headers["ETag"]  # type: ignore[attr-defined]
    r = get(files, "/hello.txt", {"Range": "bytes=0-4", "If-Range": etag})
    assert (r.status, body_of(r)) == (206, b"hello")  # type: ignore[attr-defined]


def test_a_directory_without_a_slash_redirects(root: Path) -> None:
    request = Request("GET", "/sub?x=1", path="/sub")
    r = StaticFiles(root)(request)
    assert r.status == 301
    assert r.headers["Location"] == "/sub/?x=1"


def test_a_directory_is_listed(root: Path) -> None:
    r = get(StaticFiles(root), "/")
    assert r.status == 200  # type: ignore[attr-defined]
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"  # type: ignore[attr-defined]
    page = body_of(r).decode()
    assert '<a href="hello.txt">hello.txt</a>' in page
    assert '<a href="sub/">sub/</a>' in page


def test_a_listing_leaves_out_symlinks_out_of_the_root(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret.txt")
    page = body_of(get(StaticFiles(root), "/")).decode()
    assert "escape" not in page


def test_a_directory_with_an_index_serves_it(root: Path) -> None:
    (root / "sub" / "index.html").write_bytes(b"<h1>index</h1>")
    r = get(StaticFiles(root), "/sub/")
    assert body_of(r) == b"<h1>index</h1>"
    assert r.headers["Content-Type"] == "text/html"  # type: ignore[attr-defined]


def test_listing_can_be_turned_off(root: Path) -> None:
    assert get(StaticFiles(root, listing=False), "/sub/").status == 404  # type: ignore


def test_a_missing_file_is_404(root: Path) -> None:
    assert get(StaticFiles(root), "/nope.txt").status == 404  # type: ignore[attr-defined]


def test_a_path_through_a_file_is_404(root: Path) -> None:
    assert get(StaticFiles(root), "/hello.txt/x").status == 404  # type: ignore[attr-defined]


def test_a_symlink_out_of_the_root_is_404(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret.txt")
    r = get(StaticFiles(root), "/escape")
    assert r.status == 404  # type: ignore[attr-defined]
    assert b"secret" not in body_of(r)


def test_a_fifo_is_not_served(root: Path) -> None:
    os.mkfifo(root / "pipe")
    assert get(StaticFiles(root), "/pipe").status == 404  # type: ignore[attr-defined]


def test_post_is_405_with_allow(root: Path) -> None:
    r = get(StaticFiles(root), "/hello.txt", method="POST")
    assert r.status == 405  # type: ignore[attr-defined]
    assert r.headers["Allow"] == "GET, HEAD"  # type: ignore[attr-defined]


def test_in_an_app_the_path_parameter_is_served(root: Path) -> None:
    app = App()
    app.add_route("/static/{path:path}", StaticFiles(root))
    request = Request("GET", "/static/sub/page.html", path="/static/sub/page.html")
    assert body_of(app(request)) == b"<p>hi</p>"


def test_the_root_must_be_a_directory(root: Path) -> None:
    with pytest.raises(NotADirectoryError):
        StaticFiles(root / "hello.txt")


# ---- found by review


def test_a_symlinked_index_out_of_the_root_is_not_served(root: Path, tmp_path: Path) -> None:
    (root / "idx").mkdir()
    (root / "idx" / "index.html").symlink_to(tmp_path / "secret.txt")
    response = get(StaticFiles(str(root)), "/idx/")
    assert b"top secret" not in body_of(response)
    assert response.status in (200, 404)  # a listing, or nothing: never the file


def test_a_symlinked_index_inside_the_root_is_served(root: Path) -> None:
    (root / "idx").mkdir()
    (root / "idx" / "index.html").symlink_to(root / "hello.txt")
    response = get(StaticFiles(str(root)), "/idx/")
    assert (response.status, body_of(response)) == (200, b"hello, world\n")


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/sub", "/sub/"),
        ("/sub?x=1", "/sub/?x=1"),
        ("//sub", "/sub/"),  # "//sub/" would be a link to the host "sub"
        ("http://evil.example/sub", "/sub/"),  # never another host's URL
    ],
)
def test_the_trailing_slash_redirect_stays_on_this_site(
    root: Path, target: str, location: str
) -> None:
    files = StaticFiles(str(root))
    request = Request("GET", target, Headers(), path="/" + target.split("?")[0].split("/")[-1])
    response = files(request)
    assert (response.status, response.headers["location"]) == (301, location)


def test_head_ignores_range(root: Path) -> None:
    response = get(StaticFiles(str(root)), "/hello.txt", {"Range": "bytes=0-1"}, method="HEAD")
    assert response.status == 200 and "content-range" not in response.headers


# ---- what a request path leads to is remembered, and checked on every request


def test_the_server_s_one_piece_answer_is_the_framed_response(root: Path) -> None:
    """The bytes of StaticFiles._answer (the server's shortcut for a remembered small file)
    are exactly those the server frames from the Response the handler returns."""
    from protocols.http.framing import frame_answer

    files = StaticFiles(root)
    etag = get(files, "/hello.txt").headers["ETag"]  # type: ignore[attr-defined]
    date = b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\nServer: netshell\r\n"
    since = formatdate((root / "hello.txt").stat().st_mtime + 10, usegmt=True)
    cases = [
        ("GET", {}, 200),
        ("HEAD", {}, 200),
        ("HEAD", {"Range": "bytes=0-1"}, 200),
        ("GET", {"If-None-Match": etag}, 304),
        ("GET", {"if-modified-since": since}, 304),
        ("HEAD", {"If-None-Match": etag}, 304),
        ("GET", {"If-None-Match": '"other"'}, 200),
        ("GET", {"Accept": "*/*", "Referer": "http://x/", "Cookie": "a=1"}, 200),
    ]
    for method, headers, status in cases:
        request = Request(method, "/hello.txt", Headers(headers), path="/hello.txt")
        answer = files._answer(request, date)
        assert answer is not None, (method, headers)
        framed_status, frame = frame_answer(files(request), method, (1, 1), False, date)
        assert (answer[1], framed_status) == (status, status), (method, headers)
        assert answer[0] == frame.head, (method, headers)
        assert answer[2] == (len(b"hello, world\n") if method == "GET" and status == 200 else 0)


def test_the_one_piece_answer_leaves_ranges_and_unknown_files_to_the_handler(root: Path) -> None:
    files = StaticFiles(root)
    date = b"Date: x\r\n"
    request = Request("GET", "/hello.txt", Headers(), path="/hello.txt")
    assert files._answer(request, date) is None  # not remembered yet
    get(files, "/hello.txt")
    assert files._answer(request, date) is not None
    ranged = Request("GET", "/hello.txt", Headers({"Range": "bytes=0-1"}), path="/hello.txt")
    assert files._answer(ranged, date) is None
    assert files(ranged).status == 206
    post = Request("POST", "/hello.txt", Headers(), path="/hello.txt")
    assert files._answer(post, date) is None


def test_a_changed_file_is_read_again(root: Path) -> None:
    files = StaticFiles(root)
    path = root / "hello.txt"
    first = get(files, "/hello.txt")
    assert body_of(first) == b"hello, world\n"
    path.write_bytes(b"HELLO, WORLD\n")  # the same size
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = get(files, "/hello.txt")
    assert body_of(second) == b"HELLO, WORLD\n"
    assert second.headers["ETag"] != first.headers["ETag"]  # type: ignore[attr-defined]


def test_a_file_rewritten_with_its_old_size_and_time_is_read_again(root: Path) -> None:
    """Only the change time (which no one can set back) tells this rewrite apart."""
    files = StaticFiles(root)
    path = root / "hello.txt"
    assert body_of(get(files, "/hello.txt")) == b"hello, world\n"
    before = path.stat()
    path.write_bytes(b"HELLO, WORLD\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    if after.st_ctime_ns == before.st_ctime_ns:
        pytest.skip("the file system's clock did not move between the two writes")
    assert body_of(get(files, "/hello.txt")) == b"HELLO, WORLD\n"


def test_a_remembered_file_replaced_by_a_link_out_of_the_root_is_404(
    root: Path, tmp_path: Path
) -> None:
    files = StaticFiles(root)
    assert get(files, "/hello.txt").status == 200  # type: ignore[attr-defined]
    link = root / "link.tmp"
    link.symlink_to(tmp_path / "secret.txt")
    os.replace(link, root / "hello.txt")
    response = get(files, "/hello.txt")
    assert response.status == 404  # type: ignore[attr-defined]
    assert files._answer(Request("GET", "/hello.txt", path="/hello.txt"), b"") is None


def test_a_directory_on_the_way_replaced_by_a_link_out_of_the_root_is_404(
    root: Path, tmp_path: Path
) -> None:
    """The very file, moved out with its directory: only the link on the way tells."""
    files = StaticFiles(root)
    assert body_of(get(files, "/sub/page.html")) == b"<p>hi</p>"
    outside = tmp_path / "outside"
    (root / "sub").rename(outside)
    (root / "sub").symlink_to(outside, target_is_directory=True)
    response = get(files, "/sub/page.html")
    assert response.status == 404  # type: ignore[attr-defined]
    assert files._answer(Request("GET", "/sub/page.html", path="/sub/page.html"), b"") is None


def test_a_path_through_a_link_is_resolved_every_time(root: Path, tmp_path: Path) -> None:
    files = StaticFiles(root)
    (root / "alias.txt").symlink_to(root / "hello.txt")
    assert body_of(get(files, "/alias.txt")) == b"hello, world\n"
    (root / "alias.txt").unlink()
    (root / "alias.txt").symlink_to(tmp_path / "secret.txt")
    assert get(files, "/alias.txt").status == 404  # type: ignore[attr-defined]


def test_a_removed_file_is_404(root: Path) -> None:
    files = StaticFiles(root)
    assert get(files, "/hello.txt").status == 200  # type: ignore[attr-defined]
    (root / "hello.txt").unlink()
    assert get(files, "/hello.txt").status == 404  # type: ignore[attr-defined]


def test_a_remembered_index_still_redirects_a_path_without_its_slash(root: Path) -> None:
    (root / "sub" / "index.html").write_bytes(b"<h1>index</h1>")
    files = StaticFiles(root)
    assert body_of(get(files, "/sub/")) == b"<h1>index</h1>"
    assert body_of(get(files, "/sub/")) == b"<h1>index</h1>"  # remembered
    # the same path parameter, from a request whose path has no slash at the end
    request = Request("GET", "/sub", Headers(), path="/sub", params={"path": "/sub/"})
    assert files(request).status == 301
    assert files._answer(request, b"") is None


def test_the_memory_is_bounded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import protocols.http.static as static

    monkeypatch.setattr(static, "CACHE_ENTRIES", 3)
    monkeypatch.setattr(static, "CACHE_BYTES", 250)
    for i in range(6):
        (root / f"f{i}.txt").write_bytes(bytes([65 + i]) * 100)
    files = StaticFiles(root)
    for i in range(6):
        assert body_of(get(files, f"/f{i}.txt")) == bytes([65 + i]) * 100
        assert len(files._cache) <= 3
        assert files._cached_bytes <= 250
        assert files._cached_bytes == sum(len(e.body or b"") for e in files._cache.values())
    assert list(files._cache) == ["/f4.txt", "/f5.txt"]  # the newest kept
    (root / "big.bin").write_bytes(os.urandom(SMALL_FILE + 1))
    for name in ("/hello.txt", "/sub/page.html", "/big.bin"):
        get(files, name)
    assert len(files._cache) == 3  # a large file is remembered without its bytes
    assert files._cached_bytes == sum(len(e.body or b"") for e in files._cache.values())


def test_a_remembered_large_file_replaced_is_sent_as_it_is_now(root: Path) -> None:
    files = StaticFiles(root)
    first = os.urandom(SMALL_FILE + 10)
    (root / "big.bin").write_bytes(first)
    assert body_of(get(files, "/big.bin")) == first
    second = os.urandom(SMALL_FILE + 20)
    (root / "new.bin").write_bytes(second)
    os.replace(root / "new.bin", root / "big.bin")
    response = get(files, "/big.bin")
    assert response.body.count == len(second)  # type: ignore[attr-defined]
    assert body_of(response) == second


def test_a_large_file_replaced_between_the_check_and_the_open_is_sent_as_it_is_now(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lstat still sees the old file (the race), open finds the new one: the answer is
    made from the file opened, never the old headers with the new bytes."""
    files = StaticFiles(root)
    big = root / "big.bin"
    big.write_bytes(os.urandom(SMALL_FILE + 10))
    old = os.lstat(big)
    get(files, "/big.bin").body.close()  # type: ignore[attr-defined]
    second = os.urandom(SMALL_FILE + 20)
    (root / "new.bin").write_bytes(second)
    os.replace(root / "new.bin", big)
    real_lstat = os.lstat

    def stale_lstat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        return old if os.fspath(path) == str(big) else real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", stale_lstat)
    response = get(files, "/big.bin")
    assert response.headers["ETag"] == etag_for(big.stat())  # type: ignore[attr-defined]
    assert response.body.count == len(second)  # type: ignore[attr-defined]
    assert body_of(response) == second
