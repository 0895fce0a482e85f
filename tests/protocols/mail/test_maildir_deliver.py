"""Maildir delivery: whole messages in new/, nothing left in tmp/, unique keys."""

from __future__ import annotations

import os

import pytest

from protocols.mail.maildir import Maildir, MaildirError


def test_deliver_writes_the_message_into_new_and_nothing_stays_in_tmp(tmp_path):
    box = Maildir(tmp_path / "alice")
    first = box.deliver(b"Subject: one\r\n\r\nbody\r\n")
    second = box.deliver(b"Subject: two\r\n\r\n")
    assert first != second
    assert sorted(os.listdir(tmp_path / "alice" / "new")) == sorted([first, second])
    assert (tmp_path / "alice" / "new" / first).read_bytes() == b"Subject: one\r\n\r\nbody\r\n"
    assert os.listdir(tmp_path / "alice" / "tmp") == []
    assert ":" not in first and "/" not in first


def test_a_folder_that_is_no_maildir_is_refused_without_create(tmp_path):
    with pytest.raises(MaildirError, match="not a Maildir"):
        Maildir(tmp_path, create=False)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    box = Maildir(tmp_path / "bob")
    os.rmdir(tmp_path / "bob" / "new")
    (tmp_path / "bob" / "new").write_bytes(b"")  # a file, not a folder: the rename fails
    with pytest.raises(MaildirError, match="cannot deliver"):
        box.deliver(b"x")
    assert os.listdir(tmp_path / "bob" / "tmp") == []
