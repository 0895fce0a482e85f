"""The Maildir store: UIDs (stable across objects, restarts and processes), flags in the info
suffix, append all-or-nothing, expunge, copy and move, folders, the POP3 lock and the
in-process change notification."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from protocols.mail import maildir as md
from protocols.mail.maildir import Change, FolderError, MailboxLocked, Maildir, NoSuchMessage

ROOT = str(Path(__file__).resolve().parents[3])


def python(code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    """Run ``code`` in another Python process that imports the project."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_uids_in_arrival_order_and_stable_across_objects(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "alice")
    keys = [box.deliver(f"Subject: {i}\r\n\r\n".encode()) for i in range(12)]
    msgs = box.messages()
    assert [m.uid for m in msgs] == list(range(1, 13))
    assert [m.key for m in msgs] == keys
    validity = box.uidvalidity
    assert box.uidnext == 13
    again = Maildir(tmp_path / "alice", create=False)  # a restart: a fresh object
    assert again.uidvalidity == validity
    assert [(m.uid, m.key) for m in again.messages()] == [(m.uid, m.key) for m in msgs]
    again.remove([2])
    box.deliver(b"late")
    assert [m.uid for m in box.messages()] == [1, *range(3, 14)]  # 2 never comes back


def test_a_lost_uid_list_starts_a_new_uidvalidity(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    box.deliver(b"x")
    box.messages()
    magic = md._UIDLIST_MAGIC
    for damaged in ("garbage\n", f"{magic} V12 Nx\n", f"{magic} V1 N2\nx k\n"):
        (tmp_path / "a" / md.UIDLIST).write_text(damaged)
        fresh = Maildir(tmp_path / "a")
        fresh._new_uidvalidity = lambda: box.uidvalidity + 1  # type: ignore[method-assign]
        assert fresh.uidvalidity == box.uidvalidity + 1
        assert [m.uid for m in fresh.messages()] == [1]


def test_two_processes_appending_at_once_get_distinct_uids(tmp_path: Path) -> None:
    path = str(tmp_path / "alice")
    Maildir(path)
    code = """
        import sys
        from protocols.mail.maildir import Maildir
        box = Maildir(sys.argv[1])
        uids = []
        for i in range(40):
            uids.append(box.append(b"m"))
            box.deliver(b"d")
            box.messages()
        print(" ".join(map(str, uids)))
    """
    procs = [python(code, path) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    appended = [set(map(int, out.split())) for out, _ in outs]
    assert not appended[0] & appended[1]
    box = Maildir(path)
    uids = [m.uid for m in box.messages()]
    assert uids == list(range(1, 161))  # every message once, no UID lost or given twice
    # the other process sees the very same UIDs
    check = python("""
        import sys
        from protocols.mail.maildir import Maildir
        box = Maildir(sys.argv[1])
        print(box.uidvalidity, " ".join(f"{m.uid}={m.key}" for m in box.messages()))
    """, path)
    out, _err = check.communicate(timeout=30)
    assert out.split() == [str(box.uidvalidity), *(f"{m.uid}={m.key}" for m in box.messages())]


def test_flags_round_trip_through_file_names(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    box.deliver(b"x")
    [msg] = box.messages()
    assert msg.flags == frozenset()
    flags = box.set_flags(1, {"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted",
                              "$Forwarded", "$Junk", "\\Recent"})
    assert flags == {"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted",
                     "$Forwarded", "$Junk"}
    [name] = os.listdir(tmp_path / "a" / "cur")
    assert name == f"{msg.key}:2,DFPRSTa"  # letters sorted; the keyword is 'a'
    assert os.listdir(tmp_path / "a" / "new") == []
    assert Maildir(tmp_path / "a").get(1).flags == flags  # a fresh object reads them back
    assert box.remove_flags(1, {"\\deleted", "$junk"}) == flags - {"\\Deleted", "$Junk"}
    assert box.add_flags(1, {"$Junk"}) == flags - {"\\Deleted"}
    with pytest.raises(ValueError):
        box.add_flags(1, {"\\Bogus"})
    with pytest.raises(NoSuchMessage):
        box.add_flags(9, {"\\Seen"})


def test_flags_set_by_another_program_are_read_and_unknown_letters_kept(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    key = box.deliver(b"x")
    os.rename(tmp_path / "a" / "new" / key, tmp_path / "a" / "cur" / f"{key}:2,SXT")
    assert box.get(1).flags == {"\\Seen", "\\Deleted"}
    box.set_flags(1, {"\\Flagged"})
    assert os.listdir(tmp_path / "a" / "cur") == [f"{key}:2,FX"]


def test_append_with_flags_and_date_and_reading_ranges(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    data = b"Subject: hi\nTo: b\n\nline\n"
    uid = box.append(data, flags={"\\Seen"}, date=1_600_000_000)
    info = box.get(uid)
    assert info.flags == {"\\Seen"}
    assert (info.internal_date, info.size) == (1_600_000_000, len(data))
    assert box.read(uid) == data
    assert box.read(uid, 9, 4) == b"hi\nT"
    assert box.read(uid, crlf=True) == data.replace(b"\n", b"\r\n")
    assert box.read(uid, 9, 5, crlf=True) == b"hi\r\nT"  # offsets count CRLF's two bytes
    assert len(box.read(uid, crlf=True)) == box.wire_size(uid)
    assert box.wire_size(uid) == len(data.replace(b"\n", b"\r\n"))
    assert os.listdir(tmp_path / "a" / "tmp") == []


def test_append_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = Maildir(tmp_path / "a")
    box.append(b"first")

    def broken(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(md.os, "write", broken)
    with pytest.raises(md.MaildirError, match="No space"):
        box.append(b"second" * 1000)
    monkeypatch.undo()
    assert os.listdir(tmp_path / "a" / "tmp") == []
    assert [box.read(m.uid) for m in box.messages()] == [b"first"]
    assert box.uidnext == 2  # no UID spent on the failure


def test_expunge_only_deleted_and_only_the_uids_asked(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    for i in range(4):
        box.append(b"%d" % i, flags={"\\Deleted"} if i != 2 else ())
    assert box.expunge([1, 3]) == [1]  # UID EXPUNGE: 3 is not deleted
    assert [m.uid for m in box.messages()] == [2, 3, 4]
    assert box.expunge() == [2, 4]
    assert [m.uid for m in box.messages()] == [3]


def test_copy_and_move_give_new_uids_and_keep_flags_and_dates(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    sent = box.create_folder("Sent")
    sent.append(b"already")
    box.append(b"one", flags={"\\Seen", "$Junk"}, date=1_500_000_000)
    box.append(b"two")
    assert box.copy([2, 1, 7], sent) == {1: 2, 2: 3}
    copied = sent.messages()[1]
    assert (copied.flags, copied.internal_date) == (frozenset({"\\Seen", "$Junk"}), 1_500_000_000)
    assert sent.read(3) == b"two"
    archive = box.create_folder("Archive.2024")
    assert box.move([1], archive) == {1: 1}
    assert [m.uid for m in box.messages()] == [2]
    assert archive.read(1) == b"one"


def test_folders_in_maildirplusplus_layout(tmp_path: Path) -> None:
    root = tmp_path / "alice"
    box = Maildir(root)
    box.create_folder("Sent")
    box.create_folder("Archive.2024")
    assert (root / ".Archive.2024" / "maildirfolder").exists()
    assert box.list_folders() == ["INBOX", "Archive.2024", "Sent"]
    with pytest.raises(FolderError):
        box.create_folder("Sent")
    for bad in ("", "a..b", ".x", "x.", "a/b", "x\x01"):
        with pytest.raises(FolderError):
            box.create_folder(bad)
    sub = Maildir(root / ".Sent")  # opened directly: knows its root and name
    assert (sub.name, sub.root) == ("Sent", str(root))
    assert sub.list_folders() == box.list_folders()
    box.folder("Archive.2024").append(b"kept")
    box.rename_folder("Archive", "Old")  # the children move along
    assert box.list_folders() == ["INBOX", "Old.2024", "Sent"]
    assert box.folder("Old.2024").read(1) == b"kept"
    box.delete_folder("Sent")
    assert box.list_folders() == ["INBOX", "Old.2024"]
    with pytest.raises(FolderError):
        box.delete_folder("INBOX")
    with pytest.raises(FolderError):
        box.folder("Sent")
    box.append(b"in inbox")
    box.rename_folder("INBOX", "Saved")
    assert box.messages() == []
    assert box.folder("Saved").read(1) == b"in inbox"


def test_the_session_lock_excludes_in_process_and_goes_with_release(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    lock = box.lock_session("pop3 session 1")
    with pytest.raises(MailboxLocked, match="pop3 session 1"):
        Maildir(tmp_path / "a").lock_session()
    lock.release()
    with Maildir(tmp_path / "a").lock_session():
        pass


def test_the_session_lock_excludes_another_process_until_it_dies(tmp_path: Path) -> None:
    path = str(tmp_path / "a")
    Maildir(path)
    holder = python("""
        import sys
        from protocols.mail.maildir import Maildir
        lock = Maildir(sys.argv[1]).lock_session()
        print("held", flush=True)
        sys.stdin.read()
    """, path)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(MailboxLocked, match="in use"):
            Maildir(path).lock_session()
    finally:
        holder.kill()  # no release: the kernel frees it
        holder.communicate(timeout=30)
    Maildir(path).lock_session().release()


def test_listeners_hear_changes_made_through_other_objects(tmp_path: Path) -> None:
    one = Maildir(tmp_path / "a")
    two = Maildir(tmp_path / "a")
    heard: list[Change] = []
    own: list[Change] = []
    sub = two.subscribe(heard.append)
    one.subscribe(own.append, own=True)
    uid = one.append(b"x")
    one.add_flags(uid, {"\\Deleted"})
    one.add_flags(uid, {"\\Deleted"})  # no change: nothing said
    one.expunge()
    assert [(c.kind, c.uids, c.flags) for c in heard] == [
        ("exists", (1,), {}),
        ("flags", (1,), {1: frozenset({"\\Deleted"})}),
        ("expunge", (1,), {}),
    ]
    assert all(c.origin is one for c in heard)
    assert len(own) == 3
    two.append(b"y")
    assert len(heard) == 3  # its own change is not told back to it
    sub.close()
    one.append(b"z")
    assert len(heard) == 3


def test_a_scan_tells_of_mail_another_process_delivered_or_removed(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    box.messages()
    other = Maildir(tmp_path / "a")
    heard: list[Change] = []
    other.subscribe(heard.append)
    key = box.deliver(b"x")
    assert [(c.kind, c.uids) for c in heard] == [("exists", ())]
    box.messages()
    os.unlink(tmp_path / "a" / "new" / key)  # gone behind the store's back
    box.messages()
    assert [(c.kind, c.uids) for c in heard] == [("exists", ()), ("exists", (1,)),
                                                 ("expunge", (1,))]
    box.deliver(b"y")
    [msg] = box.messages()
    # another program marks it seen (a rename into cur with :2,S): the next scan tells
    os.rename(msg.path, tmp_path / "a" / "cur" / f"{msg.key}:2,S")
    heard.clear()
    box.messages()
    assert [(c.kind, c.uids, c.flags) for c in heard] == [
        ("flags", (2,), {2: frozenset({"\\Seen"})})]
    box.messages()
    assert len(heard) == 1  # told once


def test_a_listener_may_use_the_store_and_one_that_raises_does_not_stop_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = Maildir(tmp_path / "a")
    two = Maildir(tmp_path / "a")
    seen: list[list[int]] = []

    def rescan(change: Change) -> None:
        seen.append([m.uid for m in two.messages()])  # takes the folder's lock itself

    def broken(change: Change) -> None:
        raise RuntimeError("listener bug")

    two.subscribe(broken)
    two.subscribe(rescan)
    one.append(b"x")
    assert seen == [[1]]
    assert "listener bug" in caplog.text


def test_take_new_hands_new_mail_to_one_session_only(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    box.deliver(b"one")
    box.append(b"appended")  # straight into cur: not new
    box.deliver(b"two")
    assert box.take_new() == [1, 3]
    assert Maildir(tmp_path / "a").take_new() == []  # taken already
    assert os.listdir(tmp_path / "a" / "new") == []
    assert [m.flags for m in box.messages()] == [frozenset()] * 3
    assert [box.read(m.uid) for m in box.messages()] == [b"one", b"appended", b"two"]
    box.deliver(b"three")
    assert Maildir(tmp_path / "a").take_new() == [4]


def test_subscriptions(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    assert box.subscribed_folders() == []
    box.set_subscribed("Sent")
    box.set_subscribed("Archive.2024")
    box.set_subscribed("Sent")
    sent = box.create_folder("Sent")
    assert sent.subscribed_folders() == ["Archive.2024", "Sent"]  # the user's, from any folder
    sent.set_subscribed("Sent", False)
    assert box.subscribed_folders() == ["Archive.2024"]
    assert (tmp_path / "a" / "subscriptions").read_text() == "Archive.2024\n"
    with pytest.raises(FolderError):
        box.set_subscribed("a/b")


def test_sizes_come_from_the_name_when_it_tells_them_else_from_the_file(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "a")
    key = box.deliver(b"a\nb\r\n")
    assert key.endswith(",S=5,W=6")  # Maildir++ sizes, as Courier and Dovecot write them
    (tmp_path / "a" / "new" / "1.other.host").write_bytes(b"x\ny\n")  # another program's
    (tmp_path / "a" / "new" / "2.liar,S=1,W=999").write_bytes(b"z")
    assert [box.wire_size(m.uid) for m in box.messages()] == [6, 6, 999]
    sent = box.create_folder("Sent")
    box.copy([1], sent)
    assert sent.messages()[0].key.endswith(",S=5,W=6")


def test_a_scan_of_a_settled_unchanged_folder_answers_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Maildir(tmp_path / "a")
    box.deliver(b"x")
    listed: list[int] = []
    real = box._list_files

    def counting() -> Any:
        listed.append(1)
        return real()

    monkeypatch.setattr(box, "_list_files", counting)
    box.messages()
    box.messages()
    assert len(listed) == 2  # just changed: mtimes of this tick are not trusted yet
    past = time.time() - 5
    for sub in ("new", "cur"):
        os.utime(tmp_path / "a" / sub, (past, past))
    box.messages()
    assert len(listed) == 3
    assert [m.uid for m in box.messages()] == [1]
    assert len(listed) == 3  # settled and unchanged: from memory
    Maildir(tmp_path / "a").add_flags(1, {"\\Seen"})  # another object renames the file
    assert box.messages()[0].flags == {"\\Seen"}
    assert len(listed) == 4


def test_expunge_and_flag_changes_racing_in_two_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "a")
    box = Maildir(path)
    for i in range(200):
        box.append(b"%d" % i, flags={"\\Deleted"} if i % 2 else ())
    expunger = python("""
        import sys
        from protocols.mail.maildir import Maildir
        sys.stdin.readline()
        print(len(Maildir(sys.argv[1]).expunge()))
    """, path)
    flagger = python("""
        import sys
        from protocols.mail.maildir import Maildir
        box = Maildir(sys.argv[1])
        sys.stdin.readline()
        for _ in range(5):
            box.store_flags([m.uid for m in box.messages()], ["\\\\Seen"], "add")
            box.store_flags(range(1, 201), ["\\\\Flagged"], "add")  # some are gone: skipped
        print("ok")
    """, path)
    for proc in (expunger, flagger):  # both go at once
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=60) for proc in (expunger, flagger)]
    assert [p.returncode for p in (expunger, flagger)] == [0, 0], outs
    assert outs[0][0].split() == ["100"] and outs[1][0].split() == ["ok"]
    left = Maildir(path).messages()
    assert [m.uid for m in left] == list(range(1, 201, 2))  # the ones never deleted
    assert all(m.flags == {"\\Seen", "\\Flagged"} for m in left)
    assert len(os.listdir(tmp_path / "a" / "cur")) == 100
    assert os.listdir(tmp_path / "a" / "tmp") == []


def test_fsync_can_be_turned_off_and_folders_inherit_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = md.os.fsync

    def recording(fd: int) -> None:
        synced.append(os.path.basename(os.path.dirname(os.readlink(f"/proc/self/fd/{fd}"))))
        real(fd)

    monkeypatch.setattr(md.os, "fsync", recording)
    Maildir(tmp_path / "a").deliver(b"x")
    assert synced == ["tmp"]  # the message, before its rename
    fast = Maildir(tmp_path / "b", fsync=False)
    fast.deliver(b"x")
    fast.create_folder("Sent").append(b"y")
    fast.folder("Sent").append(b"z")
    assert "tmp" not in synced[1:]  # no message flushed (UID lists still are: UIDs matter)
    assert [fast.folder("Sent").read(m.uid) for m in fast.folder("Sent").messages()] == [
        b"y", b"z"]
