"""The lessons at the prompt: ``lessons()``, ``lesson(n)``, and the checks after each input.

A :class:`Teacher` belongs to one Console (the netsh prompt's, ``netsh run``'s, or the one
IPython and Jupyter cells are recorded in). ``lesson(n)`` starts or resumes lesson ``n``
and hooks the teacher into ``console.after_input``: after each input it runs the current
step's check against the live state. When the step holds, a line says what the check saw
(``✓ ...``) and the next step is shown; when it does not, a line says why and gives the
step's hint (``✗ Not yet: ...``). An input that only looks (``conns()``, a bare name) may
pass a step but never earns a hint. A check that must let the loop turn (it connects to the
person's server, or waits for a timed call or a thread) reports when it is done, above the
prompt. While a lesson runs, a :class:`~netshell.teach.lessons.base.Watch` observes the core;
it is removed when the lesson ends or stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import netshell as ns
from netshell import observe
from netshell.shell.display import Table
from netshell.teach.lessons.base import Lesson, NotYet, State, Step, Watch, next_deferred_number
from netshell.teach.lessons.progress import Progress

__all__ = ["LessonCommand", "Teacher"]

log = logging.getLogger("netshell.teach")

PASSED = "✓"
FAILED = "✗"


class _Text(str):
    """Text that displays without quotes (what ``lesson()`` returns)."""

    def __repr__(self) -> str:
        return str(self)


def all_lessons() -> list[Lesson]:
    """The lessons, in order (loaded on first use: the prompt starts without them)."""
    from netshell.teach.lessons.catalog import LESSONS

    return LESSONS


class Teacher:
    """Runs the lessons for one ``console``; ``out(text)`` shows what it says."""

    #: Seconds between the heartbeats that measure how long the loop stands still.
    beat = 0.05

    def __init__(self, console: Any, out: Callable[[str], None] | None = None,
                 progress: Progress | None = None) -> None:
        self.console = console
        self.out = out or console.out
        self._progress = progress
        self.lesson_now: Lesson | None = None
        self.index = 0
        self.memo: dict[str, Any] = {}
        self.watch: Watch | None = None
        self.task: asyncio.Task[Any] | None = None
        self._since = 0
        self._first_deferred = 0
        self._called_at: float | None = None
        self._hinted = False
        self._beat: asyncio.TimerHandle | None = None
        self._undo_begin: Callable[[], None] | None = None  # what the step's begin set up
        self._listeners_before: frozenset[int] = frozenset()
        self._probed: dict[int, str] = {}
        self._last_beat = 0.0
        self._longest = 0.0

    # ---- the progress file, read on first use

    @property
    def progress(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(warn=self.out)
        return self._progress

    # ---- the commands

    def lessons(self) -> Table:
        """The lessons, as a table: number, title, steps, and your progress in each."""
        progress = self.progress
        self._called()
        return Table(all_lessons(), [
            ("#", lambda lesson: lesson.number),
            ("lesson", lambda lesson: lesson.title),
            ("steps", lambda lesson: len(lesson.steps)),
            ("progress", lambda lesson: progress.status(lesson.number, len(lesson.steps))),
        ])

    def lesson(self, number: int | None = None) -> _Text:
        """``lesson(n)`` starts lesson ``n``, or resumes it where you left it (one you
        finished starts again); ``lesson()`` shows where you are."""
        self._called()
        if number is None:
            return _Text(self._where())
        lessons = all_lessons()
        if not isinstance(number, int) or not 1 <= number <= len(lessons):
            raise ValueError(f"no lesson {number!r}: lessons() lists lessons 1 to {len(lessons)}")
        lesson = lessons[number - 1]
        p = self.progress.lessons.get(number)
        again = p is not None and p["done"]
        step = 0 if p is None or again else min(p["step"], len(lesson.steps) - 1)
        self._start(lesson, step)
        head = f"Lesson {lesson.number}: {lesson.title}"
        if again:
            head += " (done before: from the start again)"
        elif step:
            head += f" (resuming at step {step + 1} of {len(lesson.steps)})"
        return _Text(f"{head}\n{lesson.intro}\n\n{self._step_text()}")

    def skip(self) -> _Text:
        """Count the current step as done without its check, and go on to the next."""
        self._called()
        if self.lesson_now is None:
            return _Text(self._where())
        skipped = self.index + 1
        return _Text(f"Step {skipped} skipped.\n\n" + self._advance())

    def restart(self) -> _Text:
        """Start the current lesson (or the last one) again from its first step."""
        self._called()
        number = self.lesson_now.number if self.lesson_now else self._last()
        if number is None:
            return _Text(self._where())
        lesson = all_lessons()[number - 1]
        self._start(lesson, 0)
        return _Text(f"Lesson {number}: {lesson.title}, from the start\n{lesson.intro}\n\n"
                     + self._step_text())

    def hint(self) -> _Text:
        """The current step's hint."""
        self._called()
        if self.lesson_now is None:
            return _Text(self._where())
        return _Text(f"Hint: {self._step().hint}")

    def answer(self) -> _Text:
        """One way to do the current step: the inputs to type."""
        self._called()
        if self.lesson_now is None:
            return _Text(self._where())
        lines = "\n".join(self._step().solution)
        return _Text(f"One way to do step {self.index + 1}:\n{_indent(lines)}")

    def stop(self) -> _Text:
        """Stop the lesson: no more checks after your inputs. Progress is kept."""
        self._called()
        if self.lesson_now is None:
            return _Text("No lesson is running.")
        number = self.lesson_now.number
        self.close()
        return _Text(f"Lesson {number} stopped at step {self.index + 1}; lesson({number}) "
                     "resumes it.")

    # ---- the state of things

    def _called(self) -> None:
        # The input that calls a command is not a try at the step: its entry is skipped.
        self._called_at = time.time()

    def _step(self) -> Step:
        assert self.lesson_now is not None
        return self.lesson_now.steps[self.index]

    def _current(self) -> Step | None:
        return self._step() if self.lesson_now is not None else None

    def _step_text(self) -> str:
        assert self.lesson_now is not None
        n = len(self.lesson_now.steps)
        return f"Step {self.index + 1} of {n}: {self._step().text}"

    def _where(self) -> str:
        if self.lesson_now is not None:
            return (f"Lesson {self.lesson_now.number}: {self.lesson_now.title}\n\n"
                    + self._step_text())
        current = self._last()
        if current is not None:
            lesson = all_lessons()[current - 1]
            status = self.progress.status(current, len(lesson.steps))
            return (f"No lesson is running. The last was lesson {current}, {lesson.title} "
                    f"({status}): lesson({current}) goes on with it; lessons() lists them all.")
        return "No lesson started yet: lessons() lists them, lesson(1) starts the first."

    def _last(self) -> int | None:
        """The lesson the progress file says was last, if there is such a lesson here."""
        current = self.progress.current
        return current if current is not None and 1 <= current <= len(all_lessons()) else None

    def _start(self, lesson: Lesson, step: int) -> None:
        self._cancel_check()
        self.lesson_now = lesson
        self.index = step
        self.memo = {}
        if self.watch is None:
            self.watch = Watch()
            observe.add_observer(self.watch)
        if self._hook not in self.console.after_input:
            self.console.after_input.append(self._hook)
        self.progress.set(lesson.number, step)
        self._begin_step()

    def _begin_step(self) -> None:
        assert self.watch is not None
        self._since = self.watch.seq
        self._hinted = False
        self._first_deferred = next_deferred_number()
        self._listeners_before = frozenset(x.number for x in ns.reactor.listeners)
        self._probed = {}
        self._stop_beat()
        self._end_step()
        begin = self._step().begin
        if begin is not None:
            self._undo_begin = begin(self.memo)
        if self._step().watch_loop:
            loop = ns.reactor.loop
            self._last_beat = loop.time()
            self._longest = 0.0
            self._beat = loop.call_later(self.beat, self._heartbeat)

    def _heartbeat(self) -> None:
        loop = ns.reactor.loop
        now = loop.time()
        self._longest = max(self._longest, now - self._last_beat - self.beat)
        self._last_beat = now
        self._beat = loop.call_later(self.beat, self._heartbeat)

    def _pauses(self) -> float:
        if self._beat is None:
            return 0.0
        now = ns.reactor.loop.time()
        return max(self._longest, now - self._last_beat - self.beat)

    def _new_try(self) -> None:
        # The loop's pauses are counted per try: what an earlier input did is not this
        # one's. The pause the input itself just made (the heartbeat has not run since)
        # is kept.
        if self._beat is not None:
            now = ns.reactor.loop.time()
            self._longest = max(0.0, now - self._last_beat - self.beat)

    def _end_step(self) -> None:
        undo, self._undo_begin = self._undo_begin, None
        if undo is not None:
            undo()

    def _stop_beat(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    def _advance(self) -> str:
        lesson = self.lesson_now
        assert lesson is not None
        self.index += 1
        if self.index >= len(lesson.steps):
            self.progress.set(lesson.number, len(lesson.steps), done=True)
            self.close()
            self.index = len(lesson.steps) - 1
            following = lesson.number + 1
            after = (f"lesson({following}) is next: {all_lessons()[following - 1].title}."
                     if following <= len(all_lessons()) else "That was the last lesson.")
            return f"Lesson {lesson.number} done. {lesson.outro}\n{after}".replace(". \n", ".\n")
        self.progress.set(lesson.number, self.index)
        self._begin_step()
        return self._step_text()

    def close(self) -> None:
        """Stop checking: take the hook and the observer out (progress stays)."""
        self._cancel_check()
        self._stop_beat()
        self._end_step()
        self.lesson_now = None
        if self._hook in self.console.after_input:
            self.console.after_input.remove(self._hook)
        if self.watch is not None:
            observe.remove_observer(self.watch)
            self.watch = None

    # ---- checking

    def _hook(self, entry: dict[str, Any]) -> None:
        if entry.get("type") != "input" or self.lesson_now is None:
            return
        called, self._called_at = self._called_at, None
        if called is not None and called >= entry.get("time", 0.0):
            return  # the input ran a lesson command: not a try
        self._new_try()
        previous = self.task
        loop = ns.reactor.loop
        if previous is not None and not previous.done():
            # The check of an earlier input is still under way (it connects, or waits for
            # the loop): this input is checked once it has reported, against the step
            # that is current then, so typing ahead never loses a step.
            self.task = loop.create_task(self._queued(previous, entry))
            return
        later = self._check(entry)
        if later is not None:
            self.task = loop.create_task(later)

    async def _queued(self, previous: asyncio.Task[Any], entry: dict[str, Any]) -> None:
        await asyncio.wait([previous])
        if self.lesson_now is None:
            return
        later = self._check(entry)
        if later is not None:
            await later

    def _check(self, entry: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        """Run the current step's check on ``entry``; a coroutine to await when the check
        must let the loop turn before it can tell."""
        assert self.watch is not None
        state = State(ns.reactor, self.console.namespace, entry, self.memo, self.watch,
                      self._since, self._first_deferred, self._pauses,
                      self._listeners_before, self._probed)
        step = self._step()
        try:
            outcome = step.check(state)
            if not isinstance(outcome, str):
                return self._later(outcome, step, entry)
        except NotYet as e:
            self._not_yet(str(e), step, entry)
            return None
        except Exception as e:
            log.exception("The check of this step failed")
            self._not_yet(f"the check itself failed ({type(e).__name__}: {e})", step, entry)
            return None
        self._passed(outcome)
        return None

    async def _later(self, outcome: Awaitable[str], step: Step, entry: dict[str, Any]) -> None:
        try:
            line = await outcome
        except NotYet as e:
            if self._current() is step:
                self._not_yet(str(e), step, entry)
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("The check of this step failed")
            if self._current() is step:
                self._not_yet(f"the check itself failed ({type(e).__name__}: {e})", step,
                              entry)
            return
        if self._current() is step:
            self._passed(line)

    def _passed(self, line: str) -> None:
        self.out(f"{PASSED} {line}\n\n{self._advance()}")

    def _not_yet(self, why: str, step: Step, entry: dict[str, Any]) -> None:
        if entry.get("kind") == "inspect" and not entry.get("error"):
            return  # looking is not a try
        if self._hinted and not entry.get("error"):
            # A step often takes several inputs: the hint once is enough, until one fails.
            self.out(f"{FAILED} Not yet: {why} (lesson.hint() shows the hint again)")
            return
        self._hinted = True
        self.out(f"{FAILED} Not yet: {why}\n  Hint: {step.hint}")

    def _cancel_check(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()

    async def settled(self) -> None:
        """Wait until the checks under way (if any) have reported (for tests and scripts)."""
        while self.task is not None and not self.task.done():
            await asyncio.wait([self.task])


class LessonCommand:
    """``lesson``: call it (``lesson(n)``, ``lesson()``), or use ``lesson.skip()``,
    ``lesson.restart()``, ``lesson.hint()``, ``lesson.answer()``, ``lesson.stop()``."""

    def __init__(self, teacher: Teacher) -> None:
        self.teacher = teacher

    def __call__(self, number: int | None = None) -> _Text:
        return self.teacher.lesson(number)

    def skip(self) -> _Text:
        """Count the current step as done without its check; show the next."""
        return self.teacher.skip()

    def restart(self) -> _Text:
        """Start the current lesson again from its first step."""
        return self.teacher.restart()

    def hint(self) -> _Text:
        """The current step's hint."""
        return self.teacher.hint()

    def answer(self) -> _Text:
        """One way to do the current step."""
        return self.teacher.answer()

    def stop(self) -> _Text:
        """Stop checking your inputs (progress is kept; lesson(n) resumes)."""
        return self.teacher.stop()

    def __repr__(self) -> str:
        return ("lesson(n) starts or resumes lesson n, lesson() shows where you are; "
                "lesson.hint(), .answer(), .skip(), .restart(), .stop(); lessons() lists them")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
