"""The lessons, in order."""

from __future__ import annotations

from netshell.teach.lessons import (
    l01_timers,
    l02_callbacks,
    l03_errbacks,
    l04_chains,
    l05_threads,
    l06_echo,
    l07_lines,
    l08_client,
    l09_http,
    l10_tls,
    l11_ftp,
    l12_irc,
)
from netshell.teach.lessons.base import Lesson

__all__ = ["LESSONS"]

LESSONS: list[Lesson] = [m.LESSON for m in (
    l01_timers, l02_callbacks, l03_errbacks, l04_chains, l05_threads, l06_echo, l07_lines,
    l08_client, l09_http, l10_tls, l11_ftp, l12_irc)]

assert [lesson.number for lesson in LESSONS] == list(range(1, len(LESSONS) + 1))
