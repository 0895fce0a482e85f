"""``netsh serve ftp``: a directory over FTP from the shell, as real FTP clients see it.

Real processes, driven by Python's ftplib: anonymous read-only by default, ``--user`` and
``--writable`` for uploads, ``--tls`` for FTPS with a throwaway certificate whose printed
fingerprint is the one the server presents, one log line per login and transfer on stderr.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import re
import signal
import ssl
import subprocess
from pathlib import Path

import pytest
from test_serve import WAIT, start, stop
from test_serve import serving_port as serve_port


def serving_port(proc: subprocess.Popen[str]) -> int:
    return serve_port(proc, "ftp")


def test_anonymous_read_only_by_default(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello over ftp\n")
    proc = start("ftp", str(tmp_path), "--port", "0")
    try:
        port = serving_port(proc)
        with ftplib.FTP() as f:
            f.connect("127.0.0.1", port, timeout=WAIT)
            f.login()  # anonymous
            assert f.nlst() == ["hello.txt"]
            got = io.BytesIO()
            f.retrbinary("RETR hello.txt", got.write)
            assert got.getvalue() == b"hello over ftp\n"
            with pytest.raises(ftplib.error_perm) as refused:
                f.storbinary("STOR new.txt", io.BytesIO(b"x"))
            assert refused.value.args[0][:3] == "550"
        assert not (tmp_path / "new.txt").exists()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0
        assert out == "\nKeyboard interrupt received, exiting.\n"
        # one line for the transfer, naming the file and its exact size
        assert re.search(r"hello\.txt.*\b15\b", err), err
    finally:
        stop(proc)


def test_a_user_with_writable_uploads_and_anonymous_is_refused(tmp_path: Path) -> None:
    proc = start("ftp", str(tmp_path), "--port", "0", "--user", "ann:s3cret", "--writable")
    try:
        port = serving_port(proc)
        with ftplib.FTP() as f:
            f.connect("127.0.0.1", port, timeout=WAIT)
            with pytest.raises(ftplib.error_perm) as refused:
                f.login()
            assert refused.value.args[0][:3] == "530"
        payload = hashlib.sha256(b"netshell").digest() * 1000
        with ftplib.FTP() as f:
            f.connect("127.0.0.1", port, timeout=WAIT)
            f.login("ann", "s3cret")
            f.storbinary("STOR up.bin", io.BytesIO(payload))
        assert (tmp_path / "up.bin").read_bytes() == payload
    finally:
        stop(proc)


def test_tls_prints_the_fingerprint_the_server_presents(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("only over TLS\n")
    proc = start("ftp", str(tmp_path), "--port", "0", "--tls", "--user", "ann:pw")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.fullmatch(r"TLS throwaway certificate, SHA-256 fingerprint ([0-9A-F:]{95})\n", first)
        assert m is not None, first
        port = serving_port(proc)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # a throwaway certificate: checked by fingerprint
        with ftplib.FTP_TLS(context=context) as f:
            f.connect("127.0.0.1", port, timeout=WAIT)
            f.auth()
            der = f.sock.getpeercert(binary_form=True)
            assert hashlib.sha256(der).hexdigest().upper() == m.group(1).replace(":", "")
            f.login("ann", "pw")
            f.prot_p()
            got = io.BytesIO()
            f.retrbinary("RETR secret.txt", got.write)
            assert got.getvalue() == b"only over TLS\n"
        with ftplib.FTP() as plain:  # --tls requires TLS before a login
            plain.connect("127.0.0.1", port, timeout=WAIT)
            with pytest.raises(ftplib.error_perm):
                plain.login("ann", "pw")
    finally:
        stop(proc)


def test_ftp_options_belong_to_ftp(tmp_path: Path) -> None:
    proc = start("http", str(tmp_path), "--port", "0", "--writable")
    _out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2
    assert "--writable is for `netsh serve ftp` only" in err
    proc = start("ftp", str(tmp_path), "--port", "0", "--user", "nocolon")
    _out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2
    assert "netsh serve ftp: --user takes NAME:PASSWORD, not 'nocolon'" in err
