"""The guided lessons, in process: each lesson done at a Console, against a real reactor.

A Console with the prompt's names (``namespace.build``) runs each input as the prompt
does; the lesson's checks run after each (``console.after_input``) and look at the live
state: listeners they connect to, bytes that went through, chains that settled. What the
teacher says lands in ``shown``. The progress file is under a temporary
``$XDG_STATE_HOME``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import netshell as ns
from netshell import observe
from netshell.reactor import get_reactor
from netshell.shell import chains, namespace
from netshell.shell.console import Console
from netshell.teach.lessons import all_lessons
from netshell.teach.lessons.progress import Progress, progress_path
from netshell.teach.lessons.teacher import Teacher

LESSONS = all_lessons()


class Session:
    """A console with the prompt's names and a teacher; ``shown`` is what was printed."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.console = Console({}, out=self.shown.append)
        self.names = namespace.build(self.console, out=self.shown.append)
        self.teacher: Teacher = self.names["lesson"].teacher

    async def run(self, source: str) -> dict[str, Any]:
        """Run one input, then wait for the lesson's check of it to report."""
        entry = await self.console.run(source)
        await self.teacher.settled()
        return entry

    def said(self, since: int = 0) -> str:
        return "\n".join(self.shown[since:])


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # ftp.serve(".") serves this directory
    return home


@pytest.fixture
def session(state_home: Path) -> Iterator[Session]:
    s = Session()
    try:
        yield s
    finally:
        s.teacher.close()
        s.names["_helpers"].tracer.stop()
        s.console.close()


def progress_file(state_home: Path) -> dict[str, Any]:
    return dict(json.loads((state_home / "netshell" / "lessons.json").read_text()))


# ---- every lesson, done step by step


@pytest.mark.async_timeout(90)
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: f"lesson{lesson.number}")
async def test_each_lesson_is_done_by_its_steps_and_a_wrong_try_gets_the_hint(
        session: Session, state_home: Path, lesson: Any) -> None:
    opening = await session.run(f"lesson({lesson.number})")
    assert opening["error"] is None
    assert session.shown[-1].startswith(f"Lesson {lesson.number}: {lesson.title}")
    assert f"Step 1 of {len(lesson.steps)}: " in session.shown[-1]

    # An input that does nothing the step asks for is a wrong try: the hint, no tick.
    before = len(session.shown)
    await session.run("x = 1")
    wrong = session.said(before)
    assert "✗ Not yet: " in wrong and f"Hint: {lesson.steps[0].hint}" in wrong
    assert "✓" not in wrong

    for i, step in enumerate(lesson.steps, 1):
        # No step holds before it is done: an input that does nothing does not pass it.
        before = len(session.shown)
        await session.run("pass")
        assert "✗ Not yet: " in session.said(before), (i, session.said(before))
        assert "✓" not in session.said(before), (i, session.said(before))
        before = len(session.shown)
        for source in step.solution:
            entry = await session.run(source)
            # TLS's last step is a refusal: the error shown is the point of it.
            refused = lesson.number == 10 and "UnknownCA" in (entry["error"] or "")
            assert entry["error"] is None or refused, (source, entry["error"])
        said = session.said(before)
        ticks = [line for line in said.splitlines() if line.startswith("✓ ")]
        assert len(ticks) == 1, said
        if i < len(lesson.steps):
            assert f"Step {i + 1} of {len(lesson.steps)}: " in said
            status = f"started (step {i + 1} of {len(lesson.steps)})"
        else:
            assert f"Lesson {lesson.number} done." in said
            status = "done"
        table = session.names["lessons"]()
        assert table.cells()[lesson.number - 1][-1] == status

    assert "the check itself failed" not in session.said()  # a crash is no verdict
    saved = progress_file(state_home)
    assert saved["lessons"][str(lesson.number)] == {"step": len(lesson.steps), "done": True}
    # Done: no more checks, and the observer is gone.
    assert session.teacher.watch is None
    assert session.teacher._hook not in session.console.after_input
    assert not any(type(o).__name__ == "Watch" for o in observe.observers())


# ---- wrong tries that look right, and what they are told


async def test_a_timed_call_due_too_soon_is_not_the_first_step(session: Session) -> None:
    await session.run("lesson(1)")
    await session.run('dc = reactor.call_later(3, print, "x")')
    assert "✗ Not yet: your timed call is due in 3.0 s" in session.shown[-1]
    assert "Hint: reactor.call_later(seconds, function, *args)" in session.shown[-1]
    session.names["dc"].cancel()


async def test_the_librarys_own_timed_call_is_not_the_persons(session: Session) -> None:
    await session.run("lesson(1)")
    await session.run("lesson.skip()")
    await session.run("lesson.skip()")
    before = len(session.shown)
    # fail() leaves a failure nobody handles: with chains recorded (as at the prompt),
    # netshell's own timer (LateFailures._due) reports it half a second later, within the
    # check's wait; it is no call of the person's.
    chains.record()
    try:
        await session.run("x = fail(ValueError())")
    finally:
        chains.stop_recording()
    said = session.said(before)
    assert "✗ Not yet: only the library's own timed calls ran in this step (LateFailures._due)" \
        in said, said
    assert "✓" not in said
    session.names["x"].add_errback(lambda f: None)
    await session.run("def tick():\n    print('tick')\n")
    await session.run("reactor.call_later(0.1, tick)")
    assert session.shown[-1].startswith("✓ the timed call tick ran on the loop"), session.said()


async def test_a_deferred_fired_with_42_itself_is_not_a_chain(session: Session) -> None:
    await session.run("lesson(2)")
    await session.run("d = Deferred()")
    await session.run("d.callback(42)")
    assert "✗ Not yet: a Deferred fired with 42 itself: no callback ran" in session.shown[-1]
    await session.run("d2 = Deferred(); d2.add_callback(lambda n: n * 2); d2.callback(21)")
    assert session.shown[-1].startswith("✓ Deferred #")


async def test_blocking_work_on_the_loop_is_not_the_thread_step(session: Session) -> None:
    await session.run("lesson(5)")
    await session.run("lesson.skip()")
    await session.run("import time\ndef slow(n):\n    time.sleep(0.8)\n    return n * 2\n")
    await session.run("d = succeed(slow(21))")
    assert "the loop stood still for 0.8 s" in session.said()
    assert "✓" not in session.said()
    await session.run("d2 = defer_to_thread(slow, 21)")
    assert "✓ Deferred #" in session.shown[-1] and "from a worker thread" in session.shown[-1]


async def test_a_42_not_made_in_a_worker_is_not_the_thread_step(session: Session) -> None:
    await session.run("lesson(5)")
    await session.run("d0 = defer_to_thread(int)")  # a worker exists from before the step
    await session.run("lesson.skip()")
    before = len(session.shown)
    await session.run("d = succeed(42)")
    assert "✗ Not yet: a Deferred fired with 42, but not from defer_to_thread" in (
        session.said(before)), session.said(before)
    before = len(session.shown)
    await session.run("del d\nd1 = defer_to_thread(int)")  # worker work, but not the 42
    await session.run("d2 = succeed(42)")
    said = session.said(before)
    assert "✗ Not yet: defer_to_thread's work gave 0 in a worker, not 42" in said, said
    assert "✗ Not yet: a Deferred fired with 42, but not from defer_to_thread" in said, said
    assert "✓" not in said
    await session.run("d3 = defer_to_thread(int, 42)")
    assert session.shown[-1].startswith(
        "✓ Deferred #{} fired with 42 from a worker thread".format(session.names["d3"].number))
    assert "defer_to_thread" not in vars(get_reactor())  # the step's recording is undone


class Accepted(observe.Observer):
    """Counts the connections each listener accepted (the checks' own included)."""

    def __init__(self) -> None:
        self.by_listener: dict[int, int] = {}

    def connection_made(self, transport: Any) -> None:
        listener = getattr(transport, "listener", None)
        if listener is not None:
            self.by_listener[listener.number] = self.by_listener.get(listener.number, 0) + 1


@pytest.fixture
def accepted() -> Iterator[Accepted]:
    o = Accepted()
    observe.add_observer(o)
    try:
        yield o
    finally:
        observe.remove_observer(o)


async def test_the_http_check_connects_only_to_candidates_once(
        session: Session, accepted: Accepted) -> None:
    await session.run("echo = listen(0, wire.Echo)")  # open before the step: no HTTP server
    await session.run("lesson(9)")
    before = len(session.shown)
    await session.run("x = 1")
    assert accepted.by_listener.get(session.names["echo"].number, 0) == 0  # not tried
    assert "✗ Not yet: no HTTP listener is open, and none was opened in this step" in (
        session.said(before)), session.said(before)
    await session.run("quiet = listen(0, Protocol)")  # made in the step: tried, once
    await session.run("x = 2")
    said = session.said(before)
    assert said.count(f"#{session.names['quiet'].number} answered 'nothing'") == 2, said
    assert "(each listener is tried once a step: open a new one to try again)" in said
    await session.run('srv = http.serve(lambda request: "hello, web\\n")')
    assert session.shown[-1].startswith(f"✓ listener #{session.names['srv'].number} answered")
    assert accepted.by_listener.get(session.names["echo"].number, 0) == 0
    assert accepted.by_listener[session.names["quiet"].number] == 1
    assert accepted.by_listener[session.names["srv"].number] == 1


async def test_the_irc_check_does_not_greet_other_listeners(
        session: Session, accepted: Accepted) -> None:
    await session.run('web = http.serve(lambda request: "hello, web\\n")')
    await session.run("lesson(12)")
    await session.run("x = 1")
    assert accepted.by_listener.get(session.names["web"].number, 0) == 0  # not greeted
    assert "✗ Not yet: no IRC listener is open" in session.said()
    await session.run("srv = irc.serve()")
    assert session.shown[-1].startswith(f"✓ listener #{session.names['srv'].number} welcomed")
    assert accepted.by_listener.get(session.names["web"].number, 0) == 0
    assert "NICK lessoncheck" not in session.said()  # the web server's log saw no request


async def test_an_echo_server_that_does_not_echo_is_told_what_it_sent(session: Session) -> None:
    await session.run("lesson(6)")
    await session.run("class Quiet(Protocol):\n    def data_received(self, data):\n"
                      "        self.transport.write(b'no')\n")
    assert "Quiet got b'ping\\r\\n' and wrote b'no'" in session.shown[-1]
    await session.run("lesson.skip()")
    await session.run("srv = listen(0, Quiet)")
    assert "the check sent b'hello from the check\\r\\n'" in session.shown[-1]
    assert "answered b'no'" in session.shown[-1]


async def test_a_bad_request_by_hand_gets_the_status_and_the_hint(session: Session) -> None:
    await session.run("lesson(9)")
    await session.run('srv = http.serve(lambda request: "hi\\n")')
    await session.run("p = await connect(f'tcp:127.0.0.1:{srv.port}', Protocol)")
    before = len(session.shown)
    await session.run("p.transport.write(b'GET / HTTP/1.1\\r\\n\\r\\n')")  # no Host:
    said = session.said(before)
    assert "✗ Not yet: the server answered 'HTTP/1.1 400" in said
    assert "(Host: is required)" in said


async def test_looking_is_not_a_try_but_may_pass_a_step(session: Session) -> None:
    await session.run("lesson(1)")
    before = len(session.shown)
    await session.run("conns()")
    await session.run("reactor")
    assert not any("✗" in line for line in session.shown[before:])
    # The step holds already (the timed call was made by a script, say): a look passes it.
    session.names["dc"] = ns.reactor.call_later(60, print, "later")
    await session.run("listeners()")
    assert session.shown[-1].startswith("✓ <DelayedCall print in ")
    session.names["dc"].cancel()


async def test_an_input_that_raised_gets_the_hint_again(session: Session) -> None:
    await session.run("lesson(2)")
    await session.run("x = 1")
    assert "Hint:" in session.shown[-1]
    await session.run("y = 2")
    assert "Hint:" not in session.shown[-1] and "lesson.hint()" in session.shown[-1]
    await session.run("d = Deferred(")
    assert "Hint:" in session.shown[-1]


async def test_typing_ahead_of_a_check_loses_no_step(session: Session) -> None:
    await session.run("lesson(6)")
    await session.run("class Echo(Protocol):\n    def data_received(self, data):\n"
                      "        self.transport.write(data)\n")
    # The listener's check connects to it: the next inputs come before it reports.
    await session.console.run("srv = listen(0, Echo)")
    await session.console.run("p = await connect(f'tcp:127.0.0.1:{srv.port}', Protocol)")
    await session.console.run("p.transport.write(b'ahead')")
    await session.teacher.settled()
    assert "Lesson 6 done." in session.said()


# ---- the commands


async def test_lesson_without_a_number_says_where_you_are(session: Session) -> None:
    assert "lesson(1) starts the first" in session.names["lesson"]()
    await session.run("lesson(2)")
    await session.run("d = Deferred()")
    assert session.names["lesson"]().startswith("Lesson 2: Deferreds: callbacks\n\nStep 2 of 4")
    session.names["lesson"].stop()
    where = session.names["lesson"]()
    assert "No lesson is running" in where and "lesson(2) goes on with it" in where


async def test_skip_restart_hint_answer_and_stop(session: Session) -> None:
    lesson = session.names["lesson"]
    await session.run("lesson(3)")
    before = len(session.shown)
    await session.run("lesson.skip()")
    assert session.shown[-1].startswith("Step 1 skipped.\n\nStep 2 of 4: ")
    assert "✗" not in session.said(before)  # the command is no try
    assert lesson.hint() == f"Hint: {LESSONS[2].steps[1].hint}"
    assert lesson.answer().startswith("One way to do step 2:\n    def recover(failure):")
    assert lesson.restart().startswith("Lesson 3: Errbacks and recovery, from the start")
    assert "Step 1 of 4" in lesson()
    assert lesson.stop() == "Lesson 3 stopped at step 1; lesson(3) resumes it."
    before = len(session.shown)
    await session.run("x = 1")
    assert session.shown[before:] == []  # no lesson running: nothing checks
    assert session.teacher.watch is None
    with pytest.raises(ValueError, match=r"no lesson 13: lessons\(\) lists lessons 1 to 12"):
        lesson(13)


async def test_progress_is_kept_and_a_lesson_resumes_where_it_was(
        session: Session, state_home: Path) -> None:
    await session.run("lesson(4)")
    await session.run("inner = Deferred(); outer = succeed(1).add_callback(lambda _: inner)")
    assert progress_file(state_home) == {
        "version": 1, "current": 4, "lessons": {"4": {"step": 1, "done": False}}}
    session.teacher.close()
    # A new session (a new prompt) reads the file.
    other = Session()
    try:
        cells = other.names["lessons"]().cells()
        assert cells[3][1:] == ["Chains that wait on chains", "3", "started (step 2 of 3)"]
        assert cells[0][-1] == "not started"
        text = other.names["lesson"](4)
        assert text.startswith("Lesson 4: Chains that wait on chains (resuming at step 2 of 3)")
    finally:
        other.teacher.close()
        other.console.close()


def test_a_last_lesson_that_does_not_exist_here_is_not_an_error(session: Session) -> None:
    session.teacher.progress.set(99, 1)  # a file written by a later version, with more
    assert "lesson(1) starts the first" in session.names["lesson"]()
    assert "lesson(1) starts the first" in session.names["lesson"].restart()


def test_a_finished_lesson_starts_again_from_the_first_step(session: Session) -> None:
    session.teacher.progress.set(7, 3, done=True)
    text = session.names["lesson"](7)
    assert "(done before: from the start again)" in text and "Step 1 of 3" in text
    session.teacher.close()


# ---- the progress file


def test_the_progress_file_lives_under_xdg_state_home(state_home: Path) -> None:
    assert progress_path() == state_home / "netshell" / "lessons.json"


def test_without_xdg_state_home_it_is_under_local_state(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert progress_path() == tmp_path / ".local" / "state" / "netshell" / "lessons.json"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"lessons": [1]}',
                                  '{"current": "one", "lessons": {}}'])
def test_a_corrupt_file_is_reported_set_aside_and_replaced(state_home: Path, text: str) -> None:
    path = progress_path()
    path.parent.mkdir(parents=True)
    path.write_text(text)
    warned: list[str] = []
    p = Progress(warn=warned.append)
    assert p.lessons == {} and p.current is None
    (line,) = warned
    assert line.startswith(f"lessons: {path} was not a progress file (")
    assert line.endswith("; set aside as " + str(path) + ".corrupt, and progress starts afresh")
    assert (path.parent / "lessons.json.corrupt").read_text() == text
    assert json.loads(path.read_text()) == {"version": 1, "current": None, "lessons": {}}


async def test_a_corrupt_file_at_the_prompt_is_one_line_not_a_crash(
        session: Session, state_home: Path) -> None:
    path = progress_path()
    path.parent.mkdir(parents=True)
    path.write_text("\x00garbage")
    entry = await session.run("lessons()")
    assert entry["error"] is None
    assert session.shown[0].startswith("lessons: ") and "was not a progress file" in (
        session.shown[0])
    assert "not started" in session.shown[1]


def test_a_file_that_cannot_be_written_is_reported_and_progress_kept(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    warned: list[str] = []
    p = Progress(blocker / "netshell" / "lessons.json", warn=warned.append)
    p.set(2, 1)
    assert p.status(2, 4) == "started (step 2 of 4)"
    assert len(warned) == 1 and "progress is kept for this session only" in warned[0]


def test_the_file_is_written_atomically(state_home: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    p = Progress()
    p.set(1, 2)
    old = progress_path().read_text()

    def broken_dump(*a: Any, **kw: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", broken_dump)
    warned: list[str] = []
    p.warn = warned.append
    p.set(1, 3)
    assert progress_path().read_text() == old  # the old file is whole
    assert sorted(os.listdir(progress_path().parent)) == [".lessons.lock", "lessons.json"]
    assert "No space left on device" in warned[0]


def test_two_prompts_keep_each_others_lessons(state_home: Path) -> None:
    a, b = Progress(), Progress()
    a.set(1, 3, done=True)
    b.set(2, 1)
    saved = progress_file(state_home)
    assert saved["lessons"] == {"1": {"step": 3, "done": True}, "2": {"step": 1, "done": False}}
    assert saved["current"] == 2
    a.set(1, 3, done=True)  # a's save does not drop b's lesson either
    assert progress_file(state_home)["lessons"]["2"] == {"step": 1, "done": False}


def test_a_save_waits_for_another_prompts_save_and_keeps_what_it_wrote(
        state_home: Path) -> None:
    import fcntl
    import threading

    other, mine = Progress(), Progress()
    lock_path = progress_path().with_name(".lessons.lock")
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another prompt, between its read and its rename
        saver = threading.Thread(target=mine.set, args=(2, 1))
        saver.start()
        saver.join(0.5)  # the save waits for the lock (unlocked, it is over by now)
        assert saver.is_alive()
        other.lessons[1] = {"step": 3, "done": True}
        other._write(1, other.lessons)  # the other prompt's write, from what it had read
    saver.join(10)
    assert progress_file(state_home)["lessons"] == {
        "1": {"step": 3, "done": True}, "2": {"step": 1, "done": False}}


@pytest.mark.parametrize("entry", ['{"step": 1, "done": "no"}', '{"step": -7, "done": false}',
                                   '{"step": "x", "done": false}', '{"step": 1}',
                                   '{"step": true, "done": false}', '[1, 2]'])
def test_a_bad_entry_is_reported_once_and_ignored(state_home: Path, entry: str) -> None:
    path = progress_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "current": 2, "lessons": {"1": {"step": 2, "done": true}, '
                    f'"2": {entry}}}}}')
    warned: list[str] = []
    p = Progress(warn=warned.append)
    assert p.lessons == {1: {"step": 2, "done": True}}
    assert p.status(2, 3) == "not started"
    (line,) = warned
    assert line.startswith(f"lessons: {path} has a bad entry (2: ") and line.endswith(
        "; it is ignored")
    p.set(3, 1)
    p.set(3, 2)
    assert len(warned) == 1  # told once, not on every save
    assert progress_file(state_home)["lessons"] == {"1": {"step": 2, "done": True},
                                                    "3": {"step": 2, "done": False}}
    assert not (path.parent / "lessons.json.corrupt").exists()
