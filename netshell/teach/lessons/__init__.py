"""Guided lessons at the prompt: ``lessons()`` lists them, ``lesson(n)`` starts one.

Each lesson is a module here (``l01_timers`` ... ``l12_irc``), gathered in order by
:mod:`~netshell.teach.lessons.catalog`; :mod:`~netshell.teach.lessons.base` says what a
lesson and a check are, :mod:`~netshell.teach.lessons.teacher` runs them after each input,
and :mod:`~netshell.teach.lessons.progress` keeps the progress file.
"""

from netshell.teach.lessons.base import Lesson, NotYet, State, Step
from netshell.teach.lessons.teacher import LessonCommand, Teacher, all_lessons

__all__ = ["Lesson", "LessonCommand", "NotYet", "State", "Step", "Teacher", "all_lessons"]
