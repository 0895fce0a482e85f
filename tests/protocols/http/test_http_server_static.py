"""Static files served over real sockets: escapes refused as they arrive on the wire
(encoded, raw, through symbolic links), large files sent without being read into memory,
ranges and validators end to end, over TCP and TLS.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from pathlib import Path

import pytest
from http_raw_client import RawClient, exchange, get_request

from netshell import tls
from netshell.transport import StreamTransport
from protocols import http
from protocols.http.static import SMALL_FILE

BIG = 8 * 1024 * 1024 + 123  # several sendfile calls, and an odd size


@pytest.fixture
def root(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "hello.txt").write_bytes(b"hello, world\n")
    (www / "sub" / "a b.txt").write_bytes(b"spaced")
    (tmp_path / "secret.txt").write_bytes(b"top secret")
    return www


@pytest.fixture
def big_file(root: Path) -> bytes:
    data = os.urandom(BIG)
    (root / "big.bin").write_bytes(data)
    return data


class SendfileSpy:
    """Records each StreamTransport.send_file call (offset, count) and passes it on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, int | None]] = []
        original = StreamTransport.send_file

        def spy(transport: StreamTransport, file, offset=0, count=None):  # type: ignore[no-untyped-def]
            self.calls.append((offset, count))
            return original(transport, file, offset, count)

        monkeypatch.setattr(StreamTransport, "send_file", spy)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---- no way out of the root


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "/%252e%252e/secret.txt",  # double encoded: a name, decoded once, that does not exist
    ],
)
async def test_a_path_out_of_the_root_is_404(root: Path, target: str) -> None:
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request(target))
    assert answer.status == 404
    assert b"secret" not in answer.body


async def test_a_nul_byte_in_the_path_is_400(root: Path) -> None:
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/hello.txt%00.png"))
    assert answer.status == 400


async def test_a_symlink_out_of_the_root_is_404_on_the_wire(root: Path) -> None:
    (root / "escape.txt").symlink_to(root.parent / "secret.txt")
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/escape.txt"))
    assert answer.status == 404
    assert b"secret" not in answer.body


async def test_a_symlinked_directory_out_of_the_root_is_404_on_the_wire(root: Path) -> None:
    (root / "up").symlink_to(root.parent, target_is_directory=True)
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/up/secret.txt"))
    assert answer.status == 404


# ---- files


async def test_a_file_is_served_with_its_content_type(root: Path) -> None:
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/hello.txt"))
    assert (answer.status, answer.body) == (200, b"hello, world\n")
    assert answer.headers["Content-Type"] == "text/plain"


async def test_an_encoded_name_is_found(root: Path) -> None:
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/sub/a%20b.txt"))
    assert answer.body == b"spaced"


async def test_a_directory_is_listed_over_the_wire(root: Path) -> None:
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/sub/"))
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<a href="a%20b.txt">a b.txt</a>' in answer.body


async def test_a_directory_without_its_slash_is_redirected(root: Path) -> None:
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/sub"))
    assert (answer.status, answer.headers["Location"]) == (301, "/sub/")


async def test_a_large_file_arrives_whole_through_sendfile(
    root: Path, big_file: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SendfileSpy(monkeypatch)
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/big.bin"))
    assert answer.headers["Content-Length"] == str(BIG)
    assert hashlib.sha256(answer.body).digest() == hashlib.sha256(big_file).digest()
    assert spy.calls == [(0, BIG)]


async def test_a_small_file_goes_out_in_the_same_write_as_its_head(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SendfileSpy(monkeypatch)
    listener = http.serve(root)
    assert (await exchange(listener.port, get_request("/hello.txt"))).status == 200
    assert spy.calls == []


async def test_a_large_file_and_then_another_request_on_the_same_connection(
    root: Path, big_file: bytes
) -> None:
    listener = http.serve(root)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/big.bin") + get_request("/hello.txt"))
    assert (await client.answer()).body == big_file
    assert (await client.answer()).body == b"hello, world\n"
    client.close()


async def test_a_large_file_over_tls_arrives_whole(root: Path, big_file: bytes) -> None:
    cert, key, ca = tls.self_signed("localhost")
    listener = http.serve(root, tls=tls.server_context(cert, key))
    client = await RawClient.connect(
        listener.port, ssl=ssl.create_default_context(cadata=ca.decode())
    )
    client.send(get_request("/big.bin"))
    answer = await client.answer()
    assert hashlib.sha256(answer.body).digest() == hashlib.sha256(big_file).digest()
    client.close()


async def test_a_range_of_a_large_file_is_sent_from_its_offset(
    root: Path, big_file: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SendfileSpy(monkeypatch)
    listener = http.serve(root)
    first, last = 1_000_000, 3_000_000
    answer = await exchange(listener.port, get_request("/big.bin", f"Range: bytes={first}-{last}"))
    assert answer.status == 206
    assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{BIG}"
    assert answer.body == big_file[first : last + 1]
    assert spy.calls == [(first, last - first + 1)]


async def test_an_unsatisfiable_range_is_416_on_the_wire(root: Path) -> None:
    listener = http.serve(root)
    answer = await exchange(listener.port, get_request("/hello.txt", "Range: bytes=50-60"))
    assert (answer.status, answer.headers["Content-Range"]) == (416, "bytes */13")


async def test_head_of_a_large_file_sends_its_length_and_closes_it(
    root: Path, big_file: bytes
) -> None:
    listener = http.serve(root)
    client = await RawClient.connect(listener.port)
    before = open_fds()
    for _ in range(5):
        client.send(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await client.answer("HEAD")
        assert (answer.headers["Content-Length"], answer.body) == (str(BIG), b"")
    client.send(get_request("/hello.txt"))
    assert (await client.answer()).body == b"hello, world\n"  # no body bytes were in between
    assert open_fds() == before
    client.close()


async def test_if_none_match_is_304_on_the_wire(root: Path) -> None:
    listener = http.serve(root)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/hello.txt"))
    etag = (await client.answer()).headers["ETag"]
    client.send(get_request("/hello.txt", f"If-None-Match: {etag}") + get_request("/sub/a%20b.txt"))
    not_modified = await client.answer()
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert (await client.answer()).body == b"spaced"
    client.close()


async def test_static_files_mounted_in_an_app(root: Path, big_file: bytes) -> None:
    app = http.App()
    app.add_route("/files/{path:path}", http.StaticFiles(root))
    app.add_route("/", lambda request: "home")
    listener = http.serve(app)
    client = await RawClient.connect(listener.port)
    client.send(get_request("/files/sub/a%20b.txt") + get_request("/files/big.bin"))
    assert (await client.answer()).body == b"spaced"
    assert len((await client.answer()).body) == len(big_file)
    client.close()


async def test_a_file_just_over_the_small_size_is_streamed_correctly(root: Path) -> None:
    data = os.urandom(SMALL_FILE + 1)
    (root / "edge.bin").write_bytes(data)
    listener = http.serve(root)
    assert (await exchange(listener.port, get_request("/edge.bin"))).body == data


# ---- remembered files: the same answers, and no way out when the tree changes


def without_date(head: bytes) -> bytes:
    return b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"Date:"))


async def test_a_remembered_file_gets_the_same_answers(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first GET reads the file; the later ones come from memory in one piece: the
    same bytes (but the Date), HEAD and 304 as well, and each is logged alike."""
    listener = http.serve(root)
    client = await RawClient.connect(listener.port)
    with caplog.at_level(logging.INFO, logger="netshell.http.access"):
        answers = []
        for _ in range(3):
            client.send(get_request("/hello.txt"))
            answers.append(await client.answer())
        assert {without_date(a.head) for a in answers} == {without_date(answers[0].head)}
        assert [a.body for a in answers] == [b"hello, world\n"] * 3
        etag = answers[0].headers["ETag"]
        heads = []
        for _ in range(2):
            client.send(b"HEAD /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n")
            heads.append(await client.answer("HEAD"))
        assert heads[0].headers["Content-Length"] == "13"
        assert without_date(heads[0].head) == without_date(heads[1].head)
        assert without_date(heads[0].head) == without_date(answers[0].head)
        client.send(get_request("/hello.txt", f"If-None-Match: {etag}"))
        not_modified = await client.answer()
        assert (not_modified.status, not_modified.body) == (304, b"")
        assert not_modified.headers["ETag"] == etag
        client.send(get_request("/hello.txt", "Range: bytes=7-"))
        ranged = await client.answer()
        assert (ranged.status, ranged.body) == (206, b"world\n")
    client.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "netshell.http.access"]
    codes = [line.split('" ', 1)[1] for line in lines]
    assert codes == ["200 13"] * 3 + ["200 -"] * 2 + ["304 -", "206 6"]


async def test_a_remembered_file_to_http_1_0_keeps_its_framing(root: Path) -> None:
    listener = http.serve(root)
    assert (await exchange(listener.port, get_request("/hello.txt"))).status == 200
    client = await RawClient.connect(listener.port)
    client.send(get_request("/hello.txt", "Connection: keep-alive", version="1.0"))
    answer = await client.answer()
    assert answer.body == b"hello, world\n"
    assert answer.headers["Connection"] == "keep-alive"  # as the server says it to 1.0
    client.send(get_request("/hello.txt", "Connection: close"))
    answer = await client.answer()
    assert answer.headers["Connection"] == "close"
    assert await client.rest() == b""
    client.close()


async def test_a_remembered_file_moved_out_of_the_root_behind_a_link_is_404(
    root: Path, tmp_path: Path
) -> None:
    listener = http.serve(root)
    client = await RawClient.connect(listener.port)
    for _ in range(2):
        client.send(get_request("/sub/a%20b.txt"))
        assert (await client.answer()).body == b"spaced"
    (root / "sub").rename(tmp_path / "outside")
    (root / "sub").symlink_to(tmp_path / "outside", target_is_directory=True)
    client.send(get_request("/sub/a%20b.txt"))
    assert (await client.answer()).status == 404
    client.close()


async def test_a_download_cut_off_by_the_client_is_still_logged(
    root: Path, big_file: bytes
) -> None:
    import netshell as ns
    from netshell.testing import PausedReader

    logged: ns.Deferred[str] = ns.Deferred()

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not logged.called:
                logged.callback(record.getMessage())

    access = logging.getLogger("netshell.http.access")
    handler, before = Catch(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    server = http.serve(str(root))
    try:
        reader = await ns.reactor.connect_tcp(
            "127.0.0.1", server.port, ns.ClientFactory.for_protocol(PausedReader))
        reader.transport.write(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.read_until(10_000)  # the head and a little of the body
        reader.transport.abort()  # the client goes away mid-body
        line = await logged.add_timeout(10)
        assert '"GET /big.bin HTTP/1.1" 200' in line, line
    finally:
        access.removeHandler(handler)
        access.setLevel(before)
        await server.close()
