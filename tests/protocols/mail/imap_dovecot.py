"""Dovecot for the IMAP tests: a temp configuration (PEERS.md's), a passwd-file with
alice:secret, STARTTLS with a throwaway certificate, and alice's Maildir seeded with
:data:`MESSAGES` (a plain one, multiparts nested three ways with a message/rfc822 inside,
groups and encoded words in the addresses, a message with no MIME headers stored with
bare LF line ends).

``with dovecot() as peer:`` starts it (waits until it logs that it is up and its port
accepts a connection: no sleep), yields a :class:`Dovecot`, stops it after come what may.
A missing dovecot fails the test: it never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
UID = 12345

CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{dir}/tls/cert.pem
ssl_key = <{dir}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = /dev/stderr
mail_location = maildir:{dir}/mail/%u
default_internal_user = dovecot
default_login_user = dovenull
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
  }}
}}
"""

PLAIN = b"""\
Return-Path: <ann@example.org>\r
Date: Mon, 7 Feb 1994 21:52:25 -0800\r
From: Ann Example <ann@example.org>\r
To: alice@example.com\r
Subject: afternoon meeting\r
Message-ID: <m1@example.org>\r
\r
Shall we meet at three?\r
Bring the notes.\r
"""

MULTIPART = b"""\
Date: Tue, 8 Feb 1994 10:00:00 +0100\r
From: "Bob Q. Builder" <bob@example.net>\r
Sender: list-bounce@example.net\r
Reply-To: Team <team@example.net>\r
To: Alice <alice@example.com>, carol@example.com (Carol C)\r
Cc: undisclosed-recipients:;\r
Subject: =?utf-8?q?caf=C3=A9_report?=\r
In-Reply-To: <m1@example.org>\r
Message-ID: <m2@example.net>\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary="outer"\r
\r
This is the preamble.\r
--outer\r
Content-Type: multipart/alternative; boundary=inner\r
\r
--inner\r
Content-Type: text/plain; charset=utf-8\r
Content-Transfer-Encoding: quoted-printable\r
\r
caf=C3=A9 report attached\r
--inner\r
Content-Type: text/html; charset="utf-8"\r
Content-Language: en, de\r
\r
<p>caf&eacute; report attached</p>\r
--inner--\r
--outer\r
Content-Type: application/pdf; name="report.pdf"\r
Content-Disposition: attachment; filename="report.pdf"; size=12\r
Content-Transfer-Encoding: base64\r
Content-ID: <pdf1@example.net>\r
Content-Description: the report\r
Content-Location: http://example.net/report.pdf\r
\r
JVBERi0xLjQKJcOkw7w=\r
--outer\r
Content-Type: message/rfc822\r
\r
From: Dan <dan@example.org>\r
To: Group One: eve@example.org, Frank <frank@example.org>;, gina@example.org\r
Subject: inner message\r
Date: Wed, 9 Feb 1994 08:00:00 +0000\r
Content-Type: multipart/mixed; boundary=deep\r
\r
--deep\r
Content-Type: text/plain\r
\r
inner text\r
--deep--\r
--outer--\r
The epilogue.\r
"""

# no MIME headers at all, LF line ends on disk (IMAP counts them as CRLF)
BARE = b"""\
From: root@localhost
Subject: no mime
To: "Quoted, Name" <q@example.com>

one line
another line
"""

DIGEST = b"""\
From: digest@example.org
Subject: digest
Content-Type: multipart/digest; boundary=d

--d

From: x@example.org
Subject: in digest

digest body
--d--
"""

#: the seeded messages, in the order of their UIDs (1, 2, ...)
MESSAGES = (PLAIN, MULTIPART, BARE, DIGEST)


def _require(cmd: str) -> str:
    path = shutil.which(cmd) or (f"/usr/sbin/{cmd}" if os.path.exists(f"/usr/sbin/{cmd}")
                                 else None)
    if path is None:
        pytest.fail(f"test peer {cmd!r} is not installed: apt-get install -y "
                    "dovecot-imapd (shared/PEERS.md); a missing peer fails, never skips")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Dovecot:
    """A running Dovecot: ``host``, ``port`` (IMAP with STARTTLS), ``tls_port`` (IMAP in
    TLS from the first byte), ``directory``, ``maildir`` (alice's), ``ca`` (the PEM file
    its certificate is signed by), and what it logged."""

    host: str
    port: int
    directory: Path
    maildir: Path
    ca: Path
    tls_port: int
    lines: list[str] = field(default_factory=list)
    up: threading.Event = field(default_factory=threading.Event)
    user: str = "alice"
    password: str = "secret"

    def log(self) -> str:
        return "".join(self.lines[-40:])

    def message_files(self) -> list[Path]:
        """The files of INBOX's messages, in UID order as seeded."""
        return sorted((self.maildir / "cur").iterdir())


def seed(maildir: Path, messages: tuple[bytes, ...] = MESSAGES) -> None:
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(messages, 1):
        # seen but for the last; time-ordered names give UIDs in this order
        flags = "S" if n < len(messages) else ""
        (maildir / "cur" / f"{1000000000 + n}.M{n}P1.test:2,{flags}").write_bytes(data)


def _accepts(port: int, deadline: float) -> None:
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=max(0.1, deadline -
                                                                    time.monotonic())):
                return
        except ConnectionRefusedError as e:
            last = e
    raise TimeoutError(f"dovecot never accepted on {HOST}:{port} ({last})")


@contextlib.contextmanager
def dovecot() -> Iterator[Dovecot]:
    program = _require("dovecot")
    directory = Path(tempfile.mkdtemp(prefix="netshell-dovecot-"))
    directory.chmod(0o755)
    try:
        from netshell.tls import self_signed_files

        _, _, ca = self_signed_files(directory / "tls", "localhost", HOST)
        (directory / "users").write_text("alice:{PLAIN}secret\n")
        maildir = directory / "mail" / "alice"
        seed(maildir)
        for root, dirs, files in os.walk(directory / "mail"):
            for name in dirs + files:
                os.chown(os.path.join(root, name), UID, UID)
        os.chown(directory / "mail", UID, UID)
        # Two free ports are picked, then Dovecot binds them: another process may take one
        # in between, so a start that fails is tried again on fresh ports (twice more).
        for attempt in range(3):
            port, tls_port = free_port(), free_port()
            (directory / "dovecot.conf").write_text(
                CONF.format(dir=directory, port=port, tls_port=tls_port, uid=UID))
            peer = Dovecot(HOST, port, directory, maildir, ca, tls_port)
            proc, reader = _start(program, directory, peer)
            try:
                deadline = time.monotonic() + START_TIMEOUT
                if not peer.up.wait(START_TIMEOUT) or proc.poll() is not None:
                    raise RuntimeError(f"dovecot did not start ({proc.poll()}): {peer.log()}")
                _accepts(port, deadline)
                _accepts(tls_port, deadline)
                break
            except (RuntimeError, TimeoutError):
                _stop(proc, reader)
                if attempt == 2:
                    raise
        try:
            yield peer
        finally:
            _stop(proc, reader)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _start(program: str, directory: Path, peer: Dovecot
           ) -> tuple[subprocess.Popen[str], threading.Thread]:
    """Start Dovecot; a thread reads its log into ``peer.lines`` and sets ``peer.up``."""
    proc = subprocess.Popen(
        [program, "-F", "-c", str(directory / "dovecot.conf")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            peer.lines.append(line)
            if "starting up" in line:
                peer.up.set()
        peer.up.set()

    reader = threading.Thread(target=drain, name="dovecot-log", daemon=True)
    reader.start()
    return proc, reader


def _stop(proc: subprocess.Popen[str], reader: threading.Thread) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(5)
    if proc.stdout is not None:
        proc.stdout.close()
