"""Maildir.begin_append: a message written a piece at a time (IMAP's big APPEND), seen in
no folder until its commit, gone without a trace after an abort; its ,S=/,W= sizes right
however the pieces cut the CRLFs."""

from __future__ import annotations

import os
from pathlib import Path

from protocols.mail.maildir import Maildir


def test_commit_puts_it_into_a_folder_with_its_sizes(tmp_path: Path) -> None:
    inbox = Maildir(tmp_path / "alice", fsync=False)
    archive = inbox.create_folder("Archive")
    pending = inbox.begin_append()
    message = b"Subject: pieces\r\n\r\nbare\nlf\r\nend\r"
    for piece in (message[:17], message[17:18], message[18:25], message[25:30], message[30:]):
        pending.write(piece)  # one cut falls between a CR and its LF
        assert inbox.messages() == [] and archive.messages() == []
    uid = pending.commit(archive, ["\\Seen", "$Tag"], date=1_000_000_000)
    (info,) = archive.messages()
    assert (info.uid, info.flags, info.internal_date) == (uid, {"\\Seen", "$Tag"}, 1e9)
    assert archive.read(uid) == message
    assert archive.wire_size(info) == len(archive.read(uid, crlf=True))
    assert f",W={len(archive.read(uid, crlf=True))}" in info.key  # no read needed
    assert os.listdir(tmp_path / "alice" / "tmp") == []
    assert inbox.messages() == []


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    inbox = Maildir(tmp_path / "alice", fsync=False)
    pending = inbox.begin_append()
    pending.write(b"Subject: never\r\n\r\n")
    assert os.listdir(tmp_path / "alice" / "tmp") != []
    pending.abort()
    pending.abort()
    assert os.listdir(tmp_path / "alice" / "tmp") == []
    assert inbox.messages() == []
