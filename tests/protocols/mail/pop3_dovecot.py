"""Dovecot (IMAP and POP3) as a test peer: `dovecot -F` with a temp config (PEERS.md's, plus
TLS, APOP and the POP3 session lock) over a Maildir of alice's that our store seeded."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from peers import free_port, require, start_peer
from pop3_helpers import MESSAGES

from netshell import tls
from protocols.mail.maildir import Maildir

UID = 12345  # a numeric uid with no passwd entry: Dovecot takes it (PEERS.md)

CONF = """\
base_dir = {d}/run
state_dir = {d}/state
listen = 127.0.0.1
protocols = imap pop3
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login apop
log_path = /dev/stderr
mail_location = maildir:{d}/mail/%u
pop3_lock_session = yes
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


@dataclass
class Dovecot:
    """A running Dovecot: its POP3 ``port`` and ``imap_port``, alice's Maildir as our store
    sees it (``box``), the CA of its certificate, and ``give_back()`` to hand files our store
    wrote meanwhile to Dovecot's user."""

    port: int
    imap_port: int
    box: Maildir
    ca: bytes
    root: Path

    def give_back(self) -> None:
        for folder, _, files in os.walk(self.root / "mail"):
            os.chown(folder, UID, UID)
            for name in files:
                os.chown(os.path.join(folder, name), UID, UID)


@contextlib.asynccontextmanager
async def dovecot_server(messages: list[bytes] = MESSAGES) -> AsyncIterator[Dovecot]:
    """Dovecot on a free port over a Maildir of alice's that our store seeded; stopped and
    its folder removed at the end, also when the test fails."""
    binary = require("dovecot")
    # Dovecot's mail processes run as UID: every folder above the Maildir must be
    # traversable, which pytest's 0700 tmp_path is not.
    d = Path(tempfile.mkdtemp(prefix="netshell-dovecot-", dir="/tmp"))
    try:
        os.chmod(d, 0o755)
        cert, key, ca = tls.self_signed("localhost", "127.0.0.1")
        (d / "cert.pem").write_bytes(cert)
        (d / "key.pem").write_bytes(key)
        (d / "users").write_text("alice:{PLAIN}secret\n")
        box = Maildir(d / "mail" / "alice")
        for message in messages:
            box.deliver(message)
        box.messages()
        port, imap_port = free_port(), free_port()
        dovecot = Dovecot(port, imap_port, box, ca, d)
        dovecot.give_back()
        (d / "dovecot.conf").write_text(CONF.format(d=d, uid=UID, port=port,
                                                    imap_port=imap_port))
        peer = await start_peer([binary, "-F", "-c", str(d / "dovecot.conf")],
                                ready="starting up")
        try:
            yield dovecot
        finally:
            await peer.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
