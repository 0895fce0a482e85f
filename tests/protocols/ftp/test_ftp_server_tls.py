"""FTPS on the FTP server (RFC 4217): AUTH TLS, PBSZ, PROT, implicit TLS, required TLS and
required TLS session reuse on data connections, with a raw client (Python's ssl on asyncio
streams), Python's ftplib.FTP_TLS, curl and lftp.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import RawFTP, TransferLog, make_tree, serve_tree
from peers import run_peer

import netshell as ns
from netshell import tls


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, bytes, bytes]:
    return tls.self_signed("localhost", "127.0.0.1")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def ca_file(tmp_path: Path, certs: tuple[bytes, bytes, bytes]) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(certs[2])
    return path


def client_ssl(certs: tuple[bytes, bytes, bytes]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=certs[2].decode())
    return ctx


def server_tls(certs: tuple[bytes, bytes, bytes]) -> Any:
    return tls.server_context(certs[0], certs[1])


@pytest.fixture
def server(tree: Path, certs: tuple[bytes, bytes, bytes], reactor: Any) -> Iterator[Any]:
    listener = serve_tree(tree, tls=server_tls(certs))
    yield listener
    listener.close()


async def secure(client: RawFTP, certs: tuple[bytes, bytes, bytes]) -> None:
    """AUTH TLS and the handshake on the raw client's control connection."""
    r = await client.cmd("AUTH TLS")
    assert r.code == 234, r
    await client.writer.start_tls(client_ssl(certs), server_hostname="localhost")


async def test_auth_tls_pbsz_prot_and_a_protected_listing(server: Any, tree: Path,
                                                          certs: Any) -> None:
    client = await RawFTP.connect(server.port)
    await secure(client, certs)
    assert client.writer.get_extra_info("ssl_object") is not None
    assert (await client.login("alice", "wonderland")).code == 230
    r = await client.cmd("PBSZ 0")
    assert (r.code, r.lines) == (200, ["PBSZ=0"])
    assert (await client.cmd("PROT P")).code == 200
    reader, writer = await client.open_data(ssl=client_ssl(certs))
    assert writer.get_extra_info("ssl_object") is not None  # the data connection is TLS
    assert (await client.cmd("NLST")).code == 125
    names = (await asyncio.wait_for(reader.read(), 10)).decode().split("\r\n")[:-1]
    assert sorted(names) == sorted(p.name for p in tree.iterdir())
    writer.close()
    assert (await client.reply()).code == 226
    assert (await client.cmd("PROT C")).code == 200  # back to clear data connections
    _, data, last = await client.transfer_out("RETR hello.txt")
    assert (data, last.code) == (b"hello, world\r\n", 226)  # TYPE A
    client.close()


async def test_tls_reply_codes(server: Any, certs: Any) -> None:
    client = await RawFTP.connect(server.port)
    names = [f.strip() for f in (await client.cmd("FEAT")).lines[1:-1]]
    assert {"AUTH TLS", "PBSZ", "PROT"} <= set(names)
    assert (await client.cmd("PBSZ 0")).code == 503  # not before AUTH
    assert (await client.cmd("PROT P")).code == 503
    assert (await client.cmd("AUTH KERBEROS_V4")).code == 504
    await secure(client, certs)
    assert (await client.cmd("AUTH TLS")).code == 503  # already
    assert (await client.cmd("PROT P")).code == 503  # PBSZ first
    assert (await client.cmd("PBSZ x")).code == 501
    assert (await client.cmd("PBSZ 0")).code == 200
    assert (await client.cmd("PROT S")).code == 536
    assert (await client.cmd("PROT E")).code == 536
    assert (await client.cmd("PROT Q")).code == 504
    assert (await client.cmd("CCC")).code == 534
    assert (await client.cmd("NOOP")).code == 200
    client.close()


async def test_commands_sent_with_auth_in_clear_are_dropped(server: Any, certs: Any) -> None:
    client = await RawFTP.connect(server.port)
    client.send(b"AUTH TLS\r\nUSER alice\r\n")  # an injected USER, in clear behind AUTH
    assert (await client.reply()).code == 234
    await client.writer.start_tls(client_ssl(certs), server_hostname="localhost")
    r = await client.cmd("PASS wonderland")
    assert r.code == 503  # the USER sent in clear was not taken
    client.close()


async def test_require_tls(tree: Path, certs: Any) -> None:
    listener = serve_tree(tree, tls=server_tls(certs), require_tls=True)
    client = await RawFTP.connect(listener.port)
    assert (await client.cmd("USER alice")).code == 534
    await secure(client, certs)
    assert (await client.login("alice", "wonderland")).code == 230
    assert (await client.cmd("PBSZ 0")).code == 200
    assert (await client.cmd("PROT C")).code == 534
    await client.epsv()
    assert (await client.cmd("LIST")).code == 522  # data must be protected
    assert (await client.cmd("PROT P")).code == 200
    reader, writer = await client.open_data(ssl=client_ssl(certs))
    assert (await client.cmd("RETR hello.txt")).code == 125
    assert await asyncio.wait_for(reader.read(), 10) == b"hello, world\r\n"
    writer.close()
    assert (await client.reply()).code == 226
    client.close()
    await listener.close()


async def test_implicit_tls(tree: Path, certs: Any) -> None:
    listener = serve_tree(tree, tls=server_tls(certs), implicit_tls=True)
    client = await RawFTP.connect(listener.port, ssl=client_ssl(certs))
    assert client.greeting is not None and client.greeting.code == 220
    assert (await client.login("alice", "wonderland")).code == 230
    assert (await client.cmd("AUTH TLS")).code == 503  # TLS from the first byte already
    assert (await client.cmd("PBSZ 0")).code == 200
    assert (await client.cmd("PROT P")).code == 200
    reader, writer = await client.open_data(ssl=client_ssl(certs))
    await client.cmd("TYPE I")
    assert (await client.cmd("RETR blob.bin")).code == 125
    assert await asyncio.wait_for(reader.read(), 10) == (tree / "blob.bin").read_bytes()
    writer.close()
    assert (await client.reply()).code == 226
    client.close()
    await listener.close()


async def test_ftplib_ftp_tls_with_prot_p(server: Any, tree: Path, certs: Any) -> None:
    payload = os.urandom(3 << 20)
    expected = sorted(p.name for p in tree.iterdir())

    def work() -> tuple[list[str], bytes, list[tuple[str, dict[str, str]]]]:
        f = ftplib.FTP_TLS(context=client_ssl(certs))
        f.connect("127.0.0.1", server.port, timeout=10)
        f.auth()
        f.login("alice", "wonderland")
        f.prot_p()
        names = f.nlst()
        f.storbinary("STOR tls.bin", io.BytesIO(payload))
        got = io.BytesIO()
        f.retrbinary("RETR tls.bin", got.write)
        facts = list(f.mlsd("sub"))
        f.quit()
        return names, got.getvalue(), facts

    names, got, facts = await ns.defer_to_thread(work)
    assert sorted(names) == expected
    assert got == payload and (tree / "tls.bin").read_bytes() == payload
    assert {name for name, _ in facts} == {"inner.txt", "deeper"}


async def test_require_tls_reuse(tree: Path, certs: Any, ca_file: Path) -> None:
    listener = serve_tree(tree, tls=server_tls(certs), require_tls_reuse=True)
    port = listener.port
    # Python's ssl (and so ftplib) does not resume the control connection's session: refused
    with TransferLog() as log:
        def refused() -> str:
            f = ftplib.FTP_TLS(context=client_ssl(certs))
            f.connect("127.0.0.1", port, timeout=10)
            f.auth()
            f.login("alice", "wonderland")
            f.prot_p()
            try:
                f.nlst()
            except ftplib.error_perm as e:
                return str(e)
            finally:
                f.close()
            return "accepted"

        answer = await ns.defer_to_thread(refused)
    assert answer.startswith("522 ")
    assert any("did not reuse" in w for w in log.warnings())
    # curl resumes it: served
    code, out, err = await run_peer([
        "curl", "-sS", "--ssl-reqd", "--cacert", str(ca_file),
        "--resolve", f"localhost:{port}:127.0.0.1",
        f"ftp://alice:wonderland@localhost:{port}/hello.txt",
    ])
    assert (code, out) == (0, b"hello, world\n"), err
    await listener.close()


async def test_curl_ssl_reqd(server: Any, tree: Path, ca_file: Path, tmp_path: Path) -> None:
    base = [
        "curl", "-sS", "--ssl-reqd", "--cacert", str(ca_file),
        "--resolve", f"localhost:{server.port}:127.0.0.1",
    ]
    url = f"ftp://alice:wonderland@localhost:{server.port}"
    code, out, err = await run_peer([*base, f"{url}/"])
    assert code == 0, err
    assert sorted(line.split(None, 8)[8] for line in out.decode().splitlines()) == sorted(
        p.name for p in tree.iterdir())
    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(2 << 20))
    code, _, err = await run_peer([*base, "-T", str(upload), f"{url}/sub/"])
    assert code == 0, err
    assert (tree / "sub" / "up.bin").read_bytes() == upload.read_bytes()
    code, out, err = await run_peer([*base, f"{url}/sub/up.bin"])
    assert code == 0 and out == upload.read_bytes(), err


async def test_curl_implicit_ftps(tree: Path, certs: Any, ca_file: Path) -> None:
    listener = serve_tree(tree, tls=server_tls(certs), implicit_tls=True)
    port = listener.port
    code, out, err = await run_peer([
        "curl", "-sS", "--cacert", str(ca_file), "--resolve", f"localhost:{port}:127.0.0.1",
        f"ftps://alice:wonderland@localhost:{port}/blob.bin",
    ])
    assert code == 0 and out == (tree / "blob.bin").read_bytes(), err
    await listener.close()


async def test_lftp_ftps_mirror(tree: Path, certs: Any, tmp_path: Path) -> None:
    listener = serve_tree(tree, tls=server_tls(certs), require_tls=True,
                          require_tls_reuse=True)
    local = tmp_path / "mirror"
    script = (
        "set net:max-retries 1; set net:timeout 5; set ftp:ssl-force true; "
        "set ftp:ssl-protect-data true; set ssl:verify-certificate no; "
        f"open -u alice,wonderland ftp://127.0.0.1:{listener.port}; "
        f"mirror sub {local}"
    )
    code, out, err = await run_peer(["lftp", "-c", script], timeout=30)
    assert code == 0, (out, err)
    assert (local / "inner.txt").read_bytes() == b"inner\n"
    assert (local / "deeper" / "deep.txt").read_bytes() == b"deep\n"
    await listener.close()


async def test_ftplib_active_mode_with_prot_p(server: Any, tree: Path, certs: Any) -> None:
    def work() -> bytes:
        f = ftplib.FTP_TLS(context=client_ssl(certs))
        f.connect("127.0.0.1", server.port, timeout=10)
        f.auth()
        f.login("alice", "wonderland")
        f.prot_p()
        f.set_pasv(False)  # the server connects out, and is the TLS server all the same
        got = io.BytesIO()
        f.retrbinary("RETR blob.bin", got.write)
        f.quit()
        return got.getvalue()

    assert await ns.defer_to_thread(work) == (tree / "blob.bin").read_bytes()
