"""Python's "Did you mean" hints for names and attributes, on every Python we support.

From Python 3.12 the :mod:`traceback` module adds ``Did you mean: 'listen'?`` to a
NameError or AttributeError it formats; on 3.11 only the interpreter's own error
display does, so a console that formats tracebacks itself loses the hint. This
module finds the same kind of near miss: the candidate names (the namespace,
then the builtins, for a name; the object's attributes, for an attribute) closest
to the mistyped one by an edit distance in which a change of case costs half of
any other edit, within a limit that grows with the names' lengths.

Example::

    >>> hint(NameError("name 'lisen' is not defined", name="lisen"), {"listen": 1})
    'listen'
    >>> hint(NameError("name 'zzzz' is not defined", name="zzzz"), {"listen": 1}) is None
    True
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["hint", "with_hint"]

_EDIT = 2  # the cost of inserting, deleting or replacing a character
_CASE = 1  # the cost of replacing a character by itself in the other case
_MAX_CANDIDATES = 750  # more names than this: no hint (as Python does)
_MAX_LENGTH = 40  # names longer than this are not compared


def _distance(a: str, b: str, limit: int) -> int:
    """The edit distance from ``a`` to ``b`` (costs above), or ``limit + 1`` once over it."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) * _EDIT > limit:
        return limit + 1
    previous = [i * _EDIT for i in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        row = [i * _EDIT]
        best = row[0]
        for j, cb in enumerate(b, 1):
            if ca == cb:
                change = 0
            elif ca.lower() == cb.lower():
                change = _CASE
            else:
                change = _EDIT
            cost = min(previous[j - 1] + change, previous[j] + _EDIT, row[j - 1] + _EDIT)
            row.append(cost)
            best = min(best, cost)
        if best > limit:
            return limit + 1
        previous = row
    return previous[-1]


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    names = [c for c in candidates if isinstance(c, str)]
    if len(names) > _MAX_CANDIDATES or len(name) > _MAX_LENGTH:
        return None
    found: str | None = None
    found_distance = 0
    for candidate in names:
        if candidate == name or len(candidate) > _MAX_LENGTH:
            continue
        # the limit grows with the lengths: a third of what replacing both names would cost
        limit = (len(name) + len(candidate) + 3) * _EDIT // 6
        if found is not None:
            limit = min(limit, found_distance - 1)
        d = _distance(name, candidate, limit)
        if d <= limit:
            found, found_distance = candidate, d
    return found


def hint(exc: BaseException, namespace: Mapping[str, Any] | None = None) -> str | None:
    """The name ``exc`` probably meant, or None.

    For a NameError the names of ``namespace`` are tried first, then the builtins;
    for an AttributeError the attributes of the object it was raised on.
    """
    if isinstance(exc, NameError) and not isinstance(exc, UnboundLocalError):
        name = getattr(exc, "name", None)
        if not isinstance(name, str):
            return None
        found = _closest(name, namespace or {})
        return found if found is not None else _closest(name, dir(builtins))
    if isinstance(exc, AttributeError):
        name = getattr(exc, "name", None)
        obj = getattr(exc, "obj", None)
        if not isinstance(name, str) or obj is None:
            return None
        try:
            attributes = dir(obj)
        except Exception:
            return None
        return _closest(name, attributes)
    return None


def with_hint(text: str, exc: BaseException, namespace: Mapping[str, Any] | None = None) -> str:
    """``text`` (a formatted traceback or error line) with the hint added to its last line,
    as Python writes it: ``NameError: name 'lisen' is not defined. Did you mean: 'listen'?``

    Nothing is added when there is no hint, or when the text has one already (Python 3.12
    and newer format it themselves).
    """
    if "Did you mean" in text:
        return text
    found = hint(exc, namespace)
    if found is None:
        return text
    body = text.rstrip("\n")
    return f"{body}. Did you mean: {found!r}?" + text[len(body):]
