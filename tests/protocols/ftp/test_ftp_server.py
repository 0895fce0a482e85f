"""The FTP server at the protocol level: exact reply codes and texts' shapes, over real sockets.

A raw client (ftp_raw_client.py) sends command lines as written here and reads replies with
its own parser, so these tests see the server's bytes. Each command's success and refusal
codes are checked as RFC 959, 2389, 2428, 3659 and 4217 give them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftp_raw_client import RawFTP, make_tree, serve_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def server(tree: Path, reactor: Any) -> Iterator[Any]:
    listener = serve_tree(tree)
    yield listener
    listener.close()


async def login_alice(server: Any) -> RawFTP:
    client = await RawFTP.connect(server.port)
    r = await client.login("alice", "wonderland")
    assert r.code == 230, r
    return client


async def test_greeting_and_login(server: Any) -> None:
    client = await RawFTP.connect(server.port)
    assert client.greeting is not None and client.greeting.code == 220
    assert (await client.cmd("USER alice")).code == 331
    assert (await client.cmd("PASS wonderland")).code == 230
    assert (await client.cmd("PASS again")).code == 503  # logged in already
    client.close()
    other = await RawFTP.connect(server.port)
    assert (await other.cmd("PASS first")).code == 503  # USER first
    other.close()


async def test_commands_before_login_get_530(server: Any) -> None:
    client = await RawFTP.connect(server.port)
    for line in ("PWD", "CWD sub", "CDUP", "LIST", "NLST", "MLSD", "MLST hello.txt",
                 "RETR hello.txt", "STOR x", "APPE x", "STOU", "DELE hello.txt", "MKD d",
                 "RMD empty", "RNFR hello.txt", "RNTO y", "SIZE hello.txt", "MDTM hello.txt",
                 "PASV", "EPSV", "PORT 127,0,0,1,200,10", "EPRT |1|127.0.0.1|5000|",
                 "TYPE I", "MODE S", "STRU F", "REST 5", "SITE CHMOD 600 hello.txt",
                 "ALLO 10", "ABOR", "STAT hello.txt"):
        r = await client.cmd(line)
        assert r.code == 530, (line, r)
    # what a client may ask before logging in
    for line, code in (("NOOP", 200), ("SYST", 215), ("FEAT", 211), ("HELP", 214),
                       ("STAT", 211), ("OPTS UTF8 ON", 200)):
        assert (await client.cmd(line)).code == code, line
    client.close()


async def test_unknown_and_malformed_commands(server: Any) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("FOO")).code == 500
    assert (await alice.cmd("R3TR x")).code == 500  # not a verb
    assert (await alice.cmd("SMNT /mnt")).code == 502
    assert (await alice.cmd("CWD")).code == 501  # needs an argument
    assert (await alice.cmd("PWD extra")).code == 501  # takes none
    assert (await alice.cmd("REST abc")).code == 501
    assert (await alice.cmd("REST -5")).code == 501
    assert (await alice.cmd("TYPE X")).code == 501
    assert (await alice.cmd("TYPE E")).code == 504
    assert (await alice.cmd("TYPE L 7")).code == 504
    assert (await alice.cmd("TYPE L 8")).code == 200
    assert (await alice.cmd("TYPE A N")).code == 200
    assert (await alice.cmd("MODE S")).code == 200
    assert (await alice.cmd("MODE B")).code == 504
    assert (await alice.cmd("MODE Q")).code == 501
    assert (await alice.cmd("STRU F")).code == 200
    assert (await alice.cmd("STRU R")).code == 504
    assert (await alice.cmd("STRU Z")).code == 501
    assert (await alice.cmd("ACCT x")).code == 202
    assert (await alice.cmd("ALLO 1000")).code == 202
    assert (await alice.cmd("NOOP")).code == 200  # the connection lived through all that


async def test_pwd_cwd_and_quotes_doubled(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    r = await alice.cmd("PWD")
    assert r.code == 257 and r.lines[0].startswith('"/" ')
    assert (await alice.cmd('CWD quote"d dir')).code == 250
    r = await alice.cmd("PWD")
    assert r.code == 257 and r.lines[0].startswith('"/quote""d dir" '), r
    r = await alice.cmd('MKD in"side')
    assert r.code == 257 and r.lines[0].startswith('"/quote""d dir/in""side" '), r
    assert (tree / 'quote"d dir' / 'in"side').is_dir()
    assert (await alice.cmd("CDUP")).code == 200
    assert (await alice.cmd("PWD")).lines[0].startswith('"/" ')
    assert (await alice.cmd("CWD nowhere")).code == 550
    assert (await alice.cmd("CWD hello.txt")).code == 550
    assert (await alice.cmd("XCWD sub")).code == 250
    assert (await alice.cmd("XPWD")).lines[0].startswith('"/sub" ')


async def test_feat_and_opts(server: Any) -> None:
    alice = await login_alice(server)
    r = await alice.cmd("FEAT")
    assert r.code == 211
    assert r.raw.startswith(b"211-") and r.raw.endswith(b"211 End\r\n")
    features = r.lines[1:-1]
    assert all(f.startswith(" ") for f in features)  # RFC 2389: each line one space in
    names = [f.strip() for f in features]
    assert "MLST type*;size*;modify*;perm*;unique*;" in names
    assert not any(n.startswith("MLSD") for n in names)  # no separate MLSD line
    for feature in ("EPRT", "EPSV", "MDTM", "REST STREAM", "SIZE", "UTF8"):
        assert feature in names
    assert "AUTH TLS" not in names  # no TLS configured
    r = await alice.cmd("OPTS MLST size;TYPE;bogus;")
    assert (r.code, r.lines[0]) == (200, "MLST OPTS type;size;")
    names = [f.strip() for f in (await alice.cmd("FEAT")).lines[1:-1]]
    assert "MLST type*;size*;modify;perm;unique;" in names
    r = await alice.cmd("MLST hello.txt")
    assert r.lines[1] == " type=file;size=13; /hello.txt"
    assert (await alice.cmd("OPTS UTF8 ON")).code == 200
    assert (await alice.cmd("OPTS UTF8 OFF")).code == 504
    assert (await alice.cmd("OPTS NOPE")).code == 501


async def test_mlst_and_mlsd_facts(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    r = await alice.cmd("MLST sub/inner.txt")
    assert r.code == 250 and len(r.lines) == 3
    entry = r.lines[1]
    assert entry.startswith(" ") and entry.endswith("; /sub/inner.txt")
    facts = dict(f.split("=", 1) for f in entry.strip().split("; ")[0].split(";") if f)
    st = os.stat(tree / "sub" / "inner.txt")
    assert facts["type"] == "file" and facts["size"] == str(st.st_size)
    assert facts["perm"] == "adfrw"
    assert facts["unique"] == f"{st.st_dev:x}U{st.st_ino:x}"
    assert (await alice.cmd("MLST missing")).code == 550
    _, data, last = await alice.transfer_out("MLSD")
    assert last.code == 226
    listing = {}
    for line in data.decode().split("\r\n")[:-1]:
        fact_text, name = line.split("; ", 1)
        listing[name] = dict(f.split("=", 1) for f in fact_text.split(";") if f)
    assert set(listing) == {p.name for p in tree.iterdir()}
    assert listing["sub"]["type"] == "dir" and "size" not in listing["sub"]
    assert listing["blob.bin"]["size"] == str((tree / "blob.bin").stat().st_size)
    first, _, _ = await alice.transfer_out("MLSD hello.txt")
    assert first.code == 501  # not a directory (RFC 3659)


async def test_list_nlst_and_125_or_150(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    first, data, last = await alice.transfer_out("LIST -la")
    assert (first.code, last.code) == (125, 226)  # connected before the command: 125
    lines = data.decode().split("\r\n")
    assert lines[-1] == "" and len(lines) - 1 == len(list(tree.iterdir()))
    assert any(line.startswith("d") and line.endswith(" sub") for line in lines)
    # PASV, then the command, then the connection: 150
    host, port = await alice.pasv()
    first = await alice.cmd("NLST sub")
    assert first.code == 150
    reader, writer = await asyncio.open_connection(host, port)
    names = (await reader.read()).decode().split("\r\n")
    writer.close()
    assert (await alice.reply()).code == 226
    assert sorted(names[:-1]) == ["deeper", "inner.txt"]
    first, data, _ = await alice.transfer_out("LIST hello.txt")
    assert data.decode().rstrip("\r\n").endswith(" hello.txt")
    first, _, _ = await alice.transfer_out("LIST nowhere")
    assert first.code == 550


async def test_transfer_without_data_connection_setup(server: Any) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("RETR hello.txt")).code == 425
    assert (await alice.cmd("LIST")).code == 425


async def test_data_connection_never_comes(tree: Path) -> None:
    listener = serve_tree(tree, data_timeout=0.2)
    client = await RawFTP.connect(listener.port)
    await client.login("alice", "wonderland")
    await client.pasv()
    assert (await client.cmd("RETR hello.txt")).code == 150
    r = await client.reply()
    assert r.code == 425 and "data connection" in r.text.lower()
    assert (await client.cmd("NOOP")).code == 200
    client.close()
    await listener.close()


async def test_retr_type_a_and_i(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("TYPE A")).code == 200
    _, data, last = await alice.transfer_out("RETR lines.txt")
    assert last.code == 226 and data == b"one\r\ntwo\r\nthree\r\n"
    assert (await alice.cmd("TYPE I")).code == 200
    _, data, _ = await alice.transfer_out("RETR lines.txt")
    assert data == (tree / "lines.txt").read_bytes()
    _, data, _ = await alice.transfer_out("RETR blob.bin")
    assert data == (tree / "blob.bin").read_bytes()
    first, _, _ = await alice.transfer_out("RETR nowhere")
    assert first.code == 550
    first, _, _ = await alice.transfer_out("RETR sub")
    assert first.code == 550


async def test_rest_resumes_downloads(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    r = await alice.cmd("REST 100000")
    assert r.code == 350
    _, data, last = await alice.transfer_out("RETR blob.bin")
    assert last.code == 226 and data == (tree / "blob.bin").read_bytes()[100000:]
    size = (tree / "blob.bin").stat().st_size
    assert (await alice.cmd(f"REST {size + 1}")).code == 350
    first, _, _ = await alice.transfer_out("RETR blob.bin")
    assert first.code == 554  # RFC 3659: invalid REST parameter
    _, data, _ = await alice.transfer_out("RETR hello.txt")  # REST was used up
    assert data == b"hello, world\n"


async def test_stor_appe_and_rest_resume_uploads(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    payload = os.urandom(300_000)
    first, last = await alice.transfer_in("STOR up.bin", payload[:100_000])
    assert (first.code, last.code) == (125, 226)
    assert (tree / "up.bin").read_bytes() == payload[:100_000]
    assert (await alice.cmd("SIZE up.bin")).lines == ["100000"]
    assert (await alice.cmd("REST 100000")).code == 350
    _, last = await alice.transfer_in("STOR up.bin", payload[100_000:200_000])
    assert last.code == 226
    _, last = await alice.transfer_in("APPE up.bin", payload[200_000:])
    assert last.code == 226
    assert (tree / "up.bin").read_bytes() == payload
    _, last = await alice.transfer_in("STOR up.bin", b"short")  # a fresh STOR replaces
    assert (tree / "up.bin").read_bytes() == b"short"
    first, _ = await alice.transfer_in("STOR nowhere/x.bin", b"x")
    assert first.code == 550


async def test_stor_type_a_converts_line_ends(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    await alice.cmd("TYPE A")
    _, last = await alice.transfer_in("STOR text.txt", b"a\r\nb\r\nc\rd\r\n")
    assert last.code == 226
    assert (tree / "text.txt").read_bytes() == b"a\nb\nc\rd\n"


async def test_stou_names_the_file(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    names = []
    for body in (b"first", b"second"):
        first, last = await alice.transfer_in("STOU", body)
        assert last.code == 226
        m = re.fullmatch(r"FILE: (.+)", first.lines[0])  # RFC 1123 4.1.2.9
        assert first.code in (125, 150) and m, first
        names.append(m.group(1))
        assert (tree / m.group(1)).read_bytes() == body
    assert names[0] != names[1]
    assert (await alice.cmd("REST 5")).code == 350
    first, _ = await alice.transfer_in("STOU", b"x")
    assert first.code == 450


async def test_size_and_mdtm(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("SIZE blob.bin")).code == 550  # TYPE A: refused (RFC 3659 §4)
    await alice.cmd("TYPE I")
    r = await alice.cmd("SIZE blob.bin")
    assert (r.code, r.lines) == (213, [str((tree / "blob.bin").stat().st_size)])
    assert (await alice.cmd("SIZE sub")).code == 550
    assert (await alice.cmd("SIZE nowhere")).code == 550
    os.utime(tree / "hello.txt", (1_000_000_000, 1_000_000_000))
    r = await alice.cmd("MDTM hello.txt")
    assert (r.code, r.lines) == (213, ["20010909014640"])
    assert (await alice.cmd("MDTM nowhere")).code == 550


async def test_dele_mkd_rmd_rename(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("DELE hello.txt")).code == 250
    assert not (tree / "hello.txt").exists()
    assert (await alice.cmd("DELE hello.txt")).code == 550
    assert (await alice.cmd("MKD made")).code == 257
    assert (await alice.cmd("MKD made")).code == 550
    assert (await alice.cmd("RMD made")).code == 250
    assert not (tree / "made").exists()
    assert (await alice.cmd("RMD sub")).code == 550  # not empty
    assert (await alice.cmd("RMD /")).code == 550
    assert (await alice.cmd("RNFR lines.txt")).code == 350
    assert (await alice.cmd("RNTO sub/moved.txt")).code == 250
    assert (tree / "sub" / "moved.txt").read_bytes() == b"one\ntwo\nthree\n"
    assert (await alice.cmd("RNTO again.txt")).code == 503  # RNFR used up
    assert (await alice.cmd("RNFR nowhere")).code == 550
    assert (await alice.cmd("RNFR sub/moved.txt")).code == 350
    assert (await alice.cmd("NOOP")).code == 200
    assert (await alice.cmd("RNTO x.txt")).code == 503  # RNTO must follow RNFR at once


async def test_read_only_user(server: Any, tree: Path) -> None:
    client = await RawFTP.connect(server.port)
    assert (await client.login("reader", "pw")).code == 230
    for line in ("DELE hello.txt", "MKD d", "RMD empty", "RNFR hello.txt",
                 "SITE CHMOD 600 hello.txt"):
        assert (await client.cmd(line)).code == 550, line
    first, _ = await client.transfer_in("STOR new.txt", b"x")
    assert first.code == 550
    assert not (tree / "new.txt").exists()
    r = await client.cmd("MLST hello.txt")
    assert ";perm=r;" in r.lines[1]
    await client.cmd("TYPE I")
    _, data, _ = await client.transfer_out("RETR hello.txt")
    assert data == b"hello, world\n"
    client.close()


async def test_site_chmod_and_help(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("SITE CHMOD 600 hello.txt")).code == 200
    assert stat.S_IMODE((tree / "hello.txt").stat().st_mode) == 0o600
    assert (await alice.cmd("SITE CHMOD 9x hello.txt")).code == 501
    assert (await alice.cmd("SITE CHMOD 644")).code == 501
    assert (await alice.cmd("SITE CHMOD 644 nowhere")).code == 550
    assert (await alice.cmd("SITE BOGUS")).code == 500
    r = await alice.cmd("SITE HELP")
    assert r.code == 214 and any("CHMOD" in line for line in r.lines)
    r = await alice.cmd("HELP")
    assert r.code == 214 and len(r.lines) > 3
    assert any("RETR" in line for line in r.lines) and any("MLSD" in line for line in r.lines)
    r = await alice.cmd("HELP retr")
    assert r.code == 214 and "RETR" in r.text
    assert (await alice.cmd("HELP XYZZ")).code == 501


async def test_stat(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    r = await alice.cmd("STAT")
    assert r.code == 211 and len(r.lines) > 2 and "alice" in r.text
    r = await alice.cmd("STAT sub")
    assert r.code == 212
    assert any(line.endswith(" inner.txt") for line in r.lines)
    assert any(line.endswith(" deeper") and line.lstrip().startswith("d") for line in r.lines)
    r = await alice.cmd("STAT -la hello.txt")
    assert r.code == 213 and r.lines[1].endswith(" hello.txt") and " 13 " in r.lines[1]
    assert (await alice.cmd("STAT nowhere")).code == 550


async def test_rein_logs_out(server: Any) -> None:
    alice = await login_alice(server)
    await alice.cmd("CWD sub")
    assert (await alice.cmd("REIN")).code == 220
    assert (await alice.cmd("PWD")).code == 530
    assert (await alice.login("alice", "wonderland")).code == 230
    assert (await alice.cmd("PWD")).lines[0].startswith('"/" ')


async def test_quit(server: Any) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("QUIT")).code == 221
    assert await alice.closed()


async def test_abor_without_and_with_a_transfer(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    r = await alice.cmd("ABOR")
    assert r.code == 225
    host, port = await alice.pasv()
    assert (await alice.cmd("ABOR")).code == 225  # the passive listener is closed
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)
    # A transfer under way: a big file, the client reads a little and aborts.
    (tree / "huge.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    await alice.cmd("TYPE I")
    reader, writer = await alice.open_data()
    assert (await alice.cmd("RETR huge.bin")).code == 125
    await reader.readexactly(65536)
    alice.send(b"\xff\xf4\xff\xf2ABOR\r\n")  # Telnet IP and Synch before it, as RFC 959 says
    r1 = await alice.reply()
    r2 = await alice.reply()
    assert (r1.code, r2.code) == (426, 226)
    rest = await asyncio.wait_for(reader.read(), 10)
    assert len(rest) < 64 * 1024 * 1024 - 65536  # cut short
    writer.close()
    assert (await alice.cmd("NOOP")).code == 200


async def test_abor_during_upload_leaves_no_file(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    _reader, writer = await alice.open_data()
    assert (await alice.cmd("STOR partial.bin")).code == 125
    writer.write(os.urandom(100_000))
    await writer.drain()
    r1, r2 = await alice.cmd("ABOR"), await alice.reply()
    assert (r1.code, r2.code) == (426, 226)
    writer.close()
    assert not (tree / "partial.bin").exists()
    assert [p.name for p in tree.iterdir() if p.name.startswith(".")] == []


async def test_pasv_epsv_port_eprt_replies(tree: Path, server: Any) -> None:
    alice = await login_alice(server)
    host, port = await alice.pasv()
    assert host == "127.0.0.1" and port > 0
    assert (await alice.cmd("EPSV 2")).code == 522
    assert (await alice.cmd("EPSV 9")).code == 522  # RFC 2428 §3: an unknown protocol
    assert (await alice.cmd("EPSV x")).code == 501
    assert (await alice.cmd("EPRT |3|x|1|")).code == 522
    assert (await alice.cmd("EPRT |2|::1|5000|")).code == 522  # an IPv4 control connection
    assert (await alice.cmd("PORT 1,2,3")).code == 501
    assert (await alice.cmd("EPSV 1")).code == 229
    assert (await alice.cmd("EPSV ALL")).code == 200
    assert (await alice.cmd("PASV")).code == 503
    assert (await alice.cmd("PORT 127,0,0,1,200,10")).code == 503
    assert (await alice.cmd("EPSV")).code == 229


@pytest.mark.parametrize("verb", ["PORT", "EPRT"])
async def test_active_mode(server: Any, tree: Path, verb: str) -> None:
    alice = await login_alice(server)
    got: asyncio.Future[tuple[bytes, str]] = asyncio.get_running_loop().create_future()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        got.set_result((data, writer.get_extra_info("peername")[0]))
        writer.close()

    data_server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = data_server.sockets[0].getsockname()[1]
    arg = (f"127,0,0,1,{port >> 8},{port & 255}" if verb == "PORT"
           else f"|1|127.0.0.1|{port}|")
    assert (await alice.cmd(f"{verb} {arg}")).code == 200
    await alice.cmd("TYPE I")
    assert (await alice.cmd("RETR blob.bin")).code == 150
    data, peer = await asyncio.wait_for(got, 10)
    assert (await alice.reply()).code == 226
    assert data == (tree / "blob.bin").read_bytes() and peer == "127.0.0.1"
    data_server.close()


async def test_passive_ports_and_masquerade(tree: Path) -> None:
    from peers import free_port

    base = free_port()
    ports = range(base, base + 3) if base < 65530 else range(base - 3, base)
    listener = serve_tree(tree, passive_ports=ports, masquerade_address="10.1.2.3")
    client = await RawFTP.connect(listener.port)
    await client.login("alice", "wonderland")
    r = await client.cmd("PASV")
    assert r.code == 227 and "(10,1,2,3," in r.lines[0]
    port = await client.epsv()
    assert port in ports
    client.close()
    await listener.close()


async def test_undecodable_names_are_listed_and_reachable(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    os.close(os.open(os.path.join(os.fsencode(tree), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY))
    with open(os.path.join(os.fsencode(tree), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name\n")
    (tree / "na\u00efve.txt").write_bytes(b"utf-8 name\n")
    _, data, last = await alice.transfer_out("NLST")
    names = data.decode("utf-8").split("\r\n")  # valid UTF-8, whatever is on disk
    assert last.code == 226
    assert "caf\\xe9.txt" in names and "na\u00efve.txt" in names
    await alice.cmd("TYPE I")
    _, data, _ = await alice.transfer_out("RETR caf\\xe9.txt")
    assert data == b"latin-1 name\n"
    _, data, _ = await alice.transfer_out("RETR na\u00efve.txt")
    assert data == b"utf-8 name\n"


async def test_pipelined_commands_answered_in_order(server: Any) -> None:
    alice = await login_alice(server)
    alice.send(b"NOOP\r\nPWD\r\nCWD sub\r\nPWD\r\nSYST\n")  # the last with a bare LF
    codes = [(await alice.reply()) for _ in range(5)]
    assert [r.code for r in codes] == [200, 257, 250, 257, 215]
    assert codes[3].lines[0].startswith('"/sub" ')


async def test_one_log_line_per_transfer(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    alice = await login_alice(server)
    caplog.set_level(logging.INFO, logger="netshell.ftp")
    await alice.cmd("TYPE I")
    await alice.transfer_out("RETR blob.bin")
    await alice.transfer_in("STOR new.bin", b"12345")
    records = [r for r in caplog.records if hasattr(r, "ftp_transfer")]
    assert [r.ftp_transfer["command"] for r in records] == ["RETR", "STOR"]  # type: ignore[attr-defined]
    retr, stor = (r.ftp_transfer for r in records)  # type: ignore[attr-defined]
    assert (retr["user"], retr["path"], retr["bytes"], retr["complete"]) == (
        "alice", "/blob.bin", 1024 * 1024, True)
    assert (stor["direction"], stor["bytes"], stor["path"]) == ("in", 5, "/new.bin")
    assert "alice RETR /blob.bin 1,048,576 bytes" in records[0].getMessage()


async def test_auth_without_tls_configured(server: Any) -> None:
    alice = await login_alice(server)
    assert (await alice.cmd("AUTH TLS")).code == 502
    assert (await alice.cmd("PBSZ 0")).code == 503
    assert (await alice.cmd("PROT P")).code == 503
    assert (await alice.cmd("NOOP")).code == 200


async def test_abor_during_sendfile_closes_the_file_only_once_the_kernel_is_done(
        server: Any, tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The file stays open while sendfile(2) runs: closing it first made asyncio's sendfile
    # fail in lseek (EBADF, logged as an error) and left its task pending.
    (tree / "huge.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    reader, writer = await alice.open_data()
    assert (await alice.cmd("RETR huge.bin")).code == 125
    await reader.readexactly(65536)
    session = next(iter(server.factory.sessions))
    file = session.transfer._file
    assert session.transfer._sending_file and not file.closed
    with caplog.at_level(logging.DEBUG):
        alice.send(b"ABOR\r\n")
        assert [(await alice.reply()).code, (await alice.reply()).code] == [426, 226]
        writer.close()
        for _ in range(1000):  # loop turns until the transport says sendfile is over
            if file.closed:
                break
            await asyncio.sleep(0)
        assert file.closed
        assert (await alice.cmd("NOOP")).code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_binary_retr_uses_sendfile_on_plain_tcp(server: Any, tree: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from netshell.transport import StreamTransport

    calls: list[int] = []
    real = StreamTransport.send_file

    def spy(self: Any, file: Any, offset: int = 0, count: Any = None) -> Any:
        calls.append(offset)
        return real(self, file, offset, count)

    monkeypatch.setattr(StreamTransport, "send_file", spy)
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    await alice.cmd("REST 10")
    _, data, _ = await alice.transfer_out("RETR blob.bin")
    assert data == (tree / "blob.bin").read_bytes()[10:]
    assert calls == [10]
    await alice.cmd("TYPE A")
    _, data, _ = await alice.transfer_out("RETR lines.txt")  # converted: by pieces
    assert data == b"one\r\ntwo\r\nthree\r\n" and calls == [10]


async def test_a_slow_reader_does_not_make_the_server_buffer(server: Any, tree: Path) -> None:
    (tree / "text.txt").write_bytes(b"line\n" * (8 << 20))  # 40 MiB, sent by pieces (TYPE A)
    alice = await login_alice(server)
    reader, writer = await alice.open_data()
    assert (await alice.cmd("RETR text.txt")).code == 125
    session = next(iter(server.factory.sessions))
    data = session.transfer.data
    # The client reads nothing: the transport's buffer fills, and the server stops reading
    # the file (a pull producer is asked for more only below the high-water mark).
    while not data.transport._write_paused:
        await asyncio.sleep(0)
    for _ in range(50):  # loop turns, no more pieces go out
        await asyncio.sleep(0)
    assert data.transport.write_buffer_size <= 2 * (256 * 1024) + 64 * 1024
    assert data.transport.bytes_sent < 16 << 20
    got = await asyncio.wait_for(reader.read(), 30)  # and all of it comes when read
    assert len(got) == 48 << 20
    writer.close()
    assert (await alice.reply()).code == 226


async def test_stat_and_quit_during_a_transfer(server: Any, tree: Path) -> None:
    (tree / "big.bin").write_bytes(os.urandom(16 << 20))
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    reader, writer = await alice.open_data()
    assert (await alice.cmd("RETR big.bin")).code == 125
    await reader.readexactly(1 << 16)
    r = await alice.cmd("STAT")  # answered while the transfer goes on (RFC 959 4.1.3)
    assert r.code == 211 and any("RETR /big.bin" in line for line in r.lines)
    alice.send("NOOP")  # waits for the transfer to end
    alice.send("QUIT")  # acted on now, answered after the transfer's reply
    rest = await asyncio.wait_for(reader.read(), 30)
    assert len(rest) == (16 << 20) - (1 << 16)
    writer.close()
    assert [(await alice.reply()).code for _ in range(2)] == [226, 221]
    assert await alice.closed()


async def test_abor_while_waiting_for_the_data_connection(server: Any) -> None:
    alice = await login_alice(server)
    host, port = await alice.pasv()
    assert (await alice.cmd("LIST")).code == 150
    r1, r2 = await alice.cmd("ABOR"), await alice.reply()
    assert (r1.code, r2.code) == (426, 226)
    with pytest.raises(OSError):  # the passive port is given up
        await asyncio.open_connection(host, port)
    assert (await alice.cmd("NOOP")).code == 200


async def test_data_connections_name_their_control_connection(server: Any, tree: Path) -> None:
    from netshell.shell.display import display_name

    (tree / "big.bin").write_bytes(os.urandom(16 << 20))
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    reader, writer = await alice.open_data()
    assert (await alice.cmd("RETR big.bin")).code == 125
    await reader.readexactly(1 << 16)
    (session,) = server.factory.sessions
    (data,) = session.data_connections
    assert data.control is session and data.role == "ftp-data"
    assert session.role == "ftp-control"
    assert display_name(data) == "ftp data" and display_name(session) == "ftp server"
    await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert (await alice.reply()).code == 226
    assert session.data_connections == []


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_ipv6_epsv_and_eprt(tree: Path, reactor: Any) -> None:
    listener = serve_tree(tree, interface="::1")
    client = await RawFTP.connect(listener.port, host="::1")
    await client.login("alice", "wonderland")
    await client.cmd("TYPE I")
    assert (await client.cmd("PASV")).code == 425  # PASV can only name IPv4
    assert (await client.cmd("PORT 127,0,0,1,200,10")).code == 522
    assert (await client.cmd("EPSV 1")).code == 522
    port = await client.epsv()
    reader, writer = await asyncio.open_connection("::1", port)
    assert (await client.cmd("RETR hello.txt")).code == 125
    assert await asyncio.wait_for(reader.read(), 10) == b"hello, world\n"
    writer.close()
    assert (await client.reply()).code == 226
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got.set_result(await r.read())
        w.close()

    data_server = await asyncio.start_server(accept, "::1", 0)
    data_port = data_server.sockets[0].getsockname()[1]
    assert (await client.cmd(f"EPRT |2|::1|{data_port}|")).code == 200
    assert (await client.cmd("RETR hello.txt")).code == 150
    assert await asyncio.wait_for(got, 10) == b"hello, world\n"
    assert (await client.reply()).code == 226
    data_server.close()
    client.close()
    await listener.close()


async def test_data_sent_before_the_stor_command_is_kept(server: Any, tree: Path) -> None:
    alice = await login_alice(server)
    await alice.cmd("TYPE I")
    _reader, writer = await alice.open_data()
    payload = os.urandom(200_000)
    writer.write(payload)  # an eager client: the data before the command
    await writer.drain()
    writer.close()
    assert (await alice.cmd("STOR early.bin")).code == 125
    assert (await alice.reply()).code == 226
    assert (tree / "early.bin").read_bytes() == payload


async def test_a_big_listing_to_a_slow_reader_is_produced_as_it_drains(server: Any,
                                                                       tree: Path) -> None:
    import socket

    big = tree / "many"
    big.mkdir()
    for i in range(2000):  # some 600 KB of listing
        (big / f"{i:05}-{'long name ' * 23}.txt").touch()
    alice = await login_alice(server)
    reader, writer = await alice.open_data()
    (session,) = server.factory.sessions

    async def until(condition: Any) -> None:
        while not condition():
            await asyncio.sleep(0)  # loop turns, not time

    await asyncio.wait_for(until(lambda: session.channel.protocol is not None), 10)
    data = session.channel.protocol
    # Small kernel buffers on the server's side: the transport's own buffer must do the rest.
    data.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer.transport.pause_reading()  # the client reads nothing for now
    assert (await alice.cmd("LIST many")).code == 125
    await asyncio.wait_for(until(lambda: data.transport._write_paused), 10)
    for _ in range(50):
        await asyncio.sleep(0)
    assert data.transport.write_buffer_size <= 2 * 64 * 1024 + 64 * 1024  # a piece or so
    assert data.transport.bytes_sent < 450_000  # of some 600 KB
    # The usual buffer again (a 4 KB one crawls), and the client reads it all.
    data.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                       1 << 20)
    writer.transport.resume_reading()
    listing = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert listing.count(b"\r\n") == 2000
    assert (await alice.reply()).code == 226
