"""Deferred chains drawn: two columns (callback, errback), one row per step, the path marked.

``explain(d).diagram()`` at the prompt returns a :class:`ChainDiagram`: text drawn with
box-drawing characters, as wide as the terminal (or ``width=``), that Jupyter shows as
SVG. ``simulate(steps, value)`` (:mod:`netshell.teach.simulate`) draws the same.

How to read the text::

    Deferred #7 fired: 'ok'
         callback                 errback
         │ fired with 21
      1  ● double
         │ 42
      2  ● check                  ┆ log
         ╰─ ValueError('big') ────╮
      3  ┆ show                   ● recover
         ╭──────────────── 'ok' ──╯
         ▼ result: 'ok'

``●`` marks the side of a step that ran, ``┆`` a function the result passed by, ``○``
one not run yet; ``│`` is the path the result took down its column, the elbows where it
changed sides (a callback raised, an errback returned a value) carry the value that
changed sides. A step that returned a Deferred says where the chain waited, with that
Deferred's own chain drawn inside.

Values and names are shortened to fit, counting wide characters (East Asian, emoji) as
the two columns a terminal gives them.
"""

from __future__ import annotations

import html
import itertools
import re
import shutil
import unicodedata
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from netshell.shell.chains import Explanation, StepView

__all__ = ["HEAD", "LEGEND", "MAX_WIDTH", "MIN_WIDTH", "TAIL", "ChainDiagram", "chain_svg",
           "chain_text", "cwidth", "fit"]

#: The narrowest a diagram is drawn (a smaller ``width`` is taken as this).
MIN_WIDTH = 30
#: The widest a diagram is drawn by default, however wide the terminal.
MAX_WIDTH = 100
#: The last line of a text diagram: what the marks mean.
LEGEND = "● ran  ┆ passed by  ○ not run yet  │ the result's path"

_CALLBACK, _ERRBACK = "callback", "errback"


# ---- display width


def _char_width(c: str) -> int:
    if unicodedata.combining(c) or unicodedata.category(c) in ("Cc", "Cf", "Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def cwidth(text: str) -> int:
    """How many terminal columns ``text`` takes: wide characters (East Asian, most emoji)
    count two, combining and control characters none.

    Example::

        >>> cwidth("abc"), cwidth("日本"), cwidth("e\\u0301")
        (3, 4, 1)
    """
    return sum(_char_width(c) for c in text)


# Control characters (C0, DEL, C1), written as escapes: a value's repr (or a step's text)
# that holds an ESC, a newline or a carriage return would break the drawing's rows, or
# drive the terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\n``)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` columns, ending in "…" when it was cut.

    Example::

        >>> fit("ValueError('too big')", 10), fit("日本語", 5), fit("ok", 5)
        ('ValueErro…', '日本…', 'ok')
    """
    text = printable(text)
    if cwidth(text) <= width:
        return text
    if width <= 0:
        return ""
    out, used = [], 0
    for c in text:
        w = _char_width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cwidth(text))


# ---- the path: what the two renderers draw


class _Step(NamedTuple):
    view: StepView
    path: str | None  # the side the result was on when the chain reached it (None: not yet)


class _Line(NamedTuple):
    """One thing drawn between steps, on the path."""

    kind: str  # "start", "value", "switch", "wait", "end"
    side: str  # the column it stands in (for "switch": the column it goes to)
    text: str
    number: int | None = None  # "wait": the number of the Deferred waited on
    #: "wait": what that Deferred handed on to the chain waiting on it (side, value), once
    #: it did (its own result is None from then on: the waiting chain took it)
    handed: tuple[str, str] | None = None


def _side_of(kind: str) -> str:
    return _ERRBACK if kind == "failure" else _CALLBACK


def _layout(e: Explanation, handed: tuple[str, str] | None = None
            ) -> list[_Step | _Line]:
    """The explanation as the renderers draw it: steps, with the path's lines between.

    ``handed``: the (side, value) ``e``'s Deferred handed on to a chain waiting on it.
    """
    views = list(e.steps)
    ended, ended_value = e.ended, e.ended_value
    if handed is not None:
        ended, ended_value = ("failure" if handed[0] == _ERRBACK else "value"), handed[1]
    paths: list[str | None] = []
    for view in views:
        if view.status in (_CALLBACK, _ERRBACK):
            paths.append(view.status)
        elif view.status == "skipped":
            paths.append(_ERRBACK if view.kind == _CALLBACK else _CALLBACK)
        else:
            paths.append(None)
    items: list[_Step | _Line] = []
    first_ran = next((v for v in views if v.status in (_CALLBACK, _ERRBACK)), None)
    start_side = next((p for p in paths if p is not None), None)
    if first_ran is not None:
        items.append(_Line("start", first_ran.status, f"fired with {first_ran.got_value}"))
    elif start_side is None and ended in ("value", "failure"):
        start_side = _side_of(ended)
    if first_ran is None and start_side is not None and ended in ("value", "failure"):
        items.append(_Line("start", start_side, f"fired with {ended_value}"))
    last = len(views) - 1
    for i, (view, path) in enumerate(zip(views, paths, strict=True)):
        items.append(_Step(view, path))
        if view.status not in (_CALLBACK, _ERRBACK):
            continue
        # Where the result went: the next step that the chain reached says, else the end.
        nxt = next((p for p in paths[i + 1:] if p is not None), None)
        if nxt is None and ended in ("value", "failure"):
            nxt = _side_of(ended)
        if view.gave == "deferred":
            got_next = next((v.got_value for v in views[i + 1:]
                             if v.status in (_CALLBACK, _ERRBACK)), None)
            if got_next is None and ended in ("value", "failure"):
                got_next = ended_value
            if nxt is None or got_next is None:
                items.append(_Line("wait", view.status, f"waits on Deferred #{view.inner}",
                                   view.inner))
                continue
            items.append(_Line("wait", view.status,
                               f"waited on Deferred #{view.inner}, which gave {got_next}",
                               view.inner, (nxt, got_next)))
            if nxt != view.status:
                items.append(_Line("switch", nxt, got_next))
            continue
        after = _ERRBACK if view.gave == "failure" else _CALLBACK
        if after != view.status:
            items.append(_Line("switch", after, view.gave_value))
        elif i < last:
            items.append(_Line("value", after, view.gave_value))
    if ended in ("value", "failure"):
        if handed is not None:
            text = f"handed on: {ended_value}"
        elif ended == "value":
            text = f"result: {ended_value}"
        else:
            text = f"unhandled: {ended_value}"
        items.append(_Line("end", _side_of(ended), text))
    elif e.waits:
        side = next((p for p in reversed(paths) if p is not None), None) or _CALLBACK
        items.append(_Line("end", side, e.waits))
    return _shortened(items, paths)


#: A long chain is drawn with its first HEAD and last TAIL steps, and a line between
#: saying how many are left out.
HEAD, TAIL = 40, 10


def _shortened(items: list[_Step | _Line], paths: list[str | None]) -> list[_Step | _Line]:
    steps = [i for i, item in enumerate(items) if isinstance(item, _Step)]
    if len(steps) <= HEAD + TAIL:
        return items
    cut_from, cut_to = steps[HEAD], steps[-TAIL]
    side = next((p for p in reversed(paths[:HEAD + 1]) if p is not None), None) or _CALLBACK
    more = len(steps) - HEAD - TAIL
    return [*items[:cut_from], _Line("more", side, f"... {more:,} more steps"),
            *items[cut_to:]]


# ---- text


def _terminal_width() -> int:
    return min(MAX_WIDTH, shutil.get_terminal_size((80, 24)).columns)


def chain_text(e: Explanation, width: int | None = None, inner: bool = True,
               legend: bool = True) -> str:
    """The chain of an :class:`~netshell.shell.chains.Explanation` drawn as text, no line
    wider than ``width`` columns (default: the terminal's, at most :data:`MAX_WIDTH`; never
    less than :data:`MIN_WIDTH`). ``inner`` draws the chains of the Deferreds it waited on
    inside it; ``legend`` adds the line saying what the marks mean."""
    w = max(MIN_WIDTH, _terminal_width() if width is None else width)
    lines = _text_lines(e, w, inner)
    if legend:
        lines.append(fit(LEGEND, w))
    return "\n".join(lines)


def _title(e: Explanation, handed: tuple[str, str] | None) -> str:
    if handed is not None:
        return f"Deferred #{e.number}, waited on: it handed on {handed[1]}"
    return f"Deferred #{e.number} {e.state}"


def _text_lines(e: Explanation, w: int, inner: bool,
                handed: tuple[str, str] | None = None) -> list[str]:
    digits = len(str(max(len(e.steps), 1)))
    gutter = digits + 3
    col = (w - gutter) // 2
    x = {_CALLBACK: gutter, _ERRBACK: gutter + col}
    lines = [fit(_title(e, handed), w),
             " " * gutter + _pad(fit("callback", col - 1), col) + fit("errback", w - x[_ERRBACK])]
    if not e.steps:
        lines.append(" " * gutter + fit("(no callbacks recorded)", w - gutter))

    def at(side: str, mark: str, text: str) -> str:
        room = w - x[side] - 2
        return " " * x[side] + mark + " " + fit(text, room)

    for item in _layout(e, handed):
        if isinstance(item, _Step):
            view = item.view
            cells = [_cell(view, item.path, side) for side in (_CALLBACK, _ERRBACK)]
            number = f"{view.number:>{digits + 1}}  "
            left = _pad(fit(cells[0], col - 1), col) if cells[1] else fit(cells[0], col - 1)
            right = fit(cells[1], w - x[_ERRBACK])
            lines.append((number + left + right).rstrip())
        elif item.kind == "switch":
            room = col - 5
            text = fit(item.text, room)
            fill = "─" * (col + 1 - 5 - cwidth(text))
            if item.side == _ERRBACK:
                line = f"╰─ {text} {fill}╮"
            else:
                line = f"╭{fill} {text} ─╯"
            lines.append(" " * gutter + line)
        elif item.kind in ("end", "more"):
            mark = "▼" if item.kind == "end" and not item.text.startswith("now") else "⋮"
            lines.append(at(item.side, mark, item.text))
        else:
            lines.append(at(item.side, "│", item.text))
            if item.kind == "wait" and inner and _drawn_inside(e, item.number):
                indent = x[item.side] + 3
                if w - indent >= MIN_WIDTH:
                    prefix = " " * x[item.side] + "│  "
                    lines.extend((prefix + line).rstrip()
                                 for line in _text_lines(e.inners[item.number or 0], w - indent,
                                                         inner, item.handed))
    return lines


def _drawn_inside(e: Explanation, number: int | None) -> bool:
    """Whether the chain of the Deferred #``number`` ``e`` waited on is drawn inside it: when
    it is known and has steps (with none, the line saying it waited tells all)."""
    found = e.inners.get(number) if number is not None else None
    return found is not None and bool(found.steps)


def _cell(view: StepView, path: str | None, side: str) -> str:
    name = view.callback if side == _CALLBACK else view.errback
    if view.status == side:
        return f"● {name}"
    if name is None:
        return "│" if path == side else ""
    if view.status == "pending":
        return f"○ {name}"
    return f"┆ {name}"


# ---- SVG

_SVG_IDS = itertools.count(1)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_GUTTER, _COLUMN, _STEP_H, _LINE_H, _TOP = 36, 230, 34, 22, 48
_COLOURS = {_CALLBACK: ("#1a7f37", "#dafbe1"), _ERRBACK: ("#cf222e", "#ffebe9")}
# A white outline under a value's letters: readable where the path crosses it.
_HALO = ' stroke="white" stroke-width="3" paint-order="stroke"'
#: characters of a value beside the path, by column (the errback's has the margin)
_VALUE_CHARS = {_CALLBACK: 44, _ERRBACK: 28}
_CHARS = 30  # characters of a name or value in a column (about 7 px each)


def _esc(text: str) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)


def chain_svg(e: Explanation, inner: bool = True) -> str:
    """The chain of an :class:`~netshell.shell.chains.Explanation` drawn as SVG: a box per
    function (``rect.fn``; ``data-role`` "ran", "passed", "pending"), the path the result
    took as lines (``line.path``, green down the callback column, red down the errback
    column), the values on it (``text.value``), and the chains waited on drawn inside."""
    body, width, height = _svg_body(e, inner, next(_SVG_IDS))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="netshell-chain" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="monospace" font-size="12">{body}</svg>')


def _svg_body(e: Explanation, inner: bool, uid: int,
              handed: tuple[str, str] | None = None) -> tuple[str, int, int]:
    marker = f"netshell-chain-end-{uid}"
    cx = {_CALLBACK: _GUTTER + _COLUMN // 2, _ERRBACK: _GUTTER + _COLUMN + _COLUMN // 2}
    out = [
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="10" '
        'markerHeight="10" markerUnits="userSpaceOnUse" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#57606a"/>'
        "</marker></defs>",
        f'<text class="title" x="4" y="16" font-weight="bold">'
        f"{_esc(fit(_title(e, handed), 60))}</text>",
        f'<text x="{cx[_CALLBACK]}" y="36" text-anchor="middle" fill="#57606a">callback</text>',
        f'<text x="{cx[_ERRBACK]}" y="36" text-anchor="middle" fill="#57606a">errback</text>',
    ]
    # Room right of the errback column for the values written beside its path.
    width = _GUTTER + 2 * _COLUMN + 150
    y = _TOP
    if not e.steps:
        out.append(f'<text class="empty" x="{_GUTTER}" y="{y + 14}" fill="#57606a">'
                   "(no callbacks recorded)</text>")
        y += _LINE_H

    def path(side: str, y1: int, y2: int, x2: int | None = None, end: bool = False) -> str:
        colour = _COLOURS[side][0]
        tip = f' marker-end="url(#{marker})"' if end else ""
        return (f'<line class="path" data-side="{side}" x1="{cx[side]}" y1="{y1}" '
                f'x2="{cx[side] if x2 is None else x2}" y2="{y2}" stroke="{colour}" '
                f'stroke-width="3" stroke-linecap="round"{tip}/>')

    def value(side: str, text: str, y0: int, cls: str = "value") -> str:
        return (f'<text class="{cls}" x="{cx[side] + 8}" y="{y0}" fill="#24292f"{_HALO}>'
                f"<title>{_esc(text)}</title>{_esc(fit(text, _VALUE_CHARS[side]))}</text>")

    for item in _layout(e, handed):
        if isinstance(item, _Step):
            view = item.view
            out.append(f'<g class="step" data-step="{view.number}" data-status="{view.status}">'
                       f'<text x="4" y="{y + 21}" fill="#57606a">{view.number}</text>')
            if item.path is not None:
                out.append(path(item.path, y, y + _STEP_H))
            for side in (_CALLBACK, _ERRBACK):
                name = view.callback if side == _CALLBACK else view.errback
                if name is None:
                    continue
                left = cx[side] - _COLUMN // 2 + 8
                line, fill = _COLOURS[side]
                if view.status == side:
                    role, style, weight = "ran", f'fill="{fill}" stroke="{line}"', "bold"
                elif view.status == "pending":
                    role = "pending"
                    style, weight = 'fill="white" stroke="#8c959f" stroke-dasharray="4 3"', ""
                else:
                    role, style, weight = "passed", 'fill="#f6f8fa" stroke="#d0d7de"', ""
                colour = "#8c959f" if role == "passed" else "#24292f"
                bold = ' font-weight="bold"' if weight else ""
                out.append(f'<rect class="fn" data-side="{side}" data-role="{role}" '
                           f'x="{left}" y="{y + 4}" width="{_COLUMN - 16}" height="{_STEP_H - 8}" '
                           f'rx="5" {style}/>'
                           f'<text x="{left + 8}" y="{y + 21}" fill="{colour}"{bold}>'
                           f"<title>{_esc(name)}</title>{_esc(fit(name, _CHARS))}</text>")
            out.append("</g>")
            y += _STEP_H
        elif item.kind == "switch":
            other = _ERRBACK if item.side == _CALLBACK else _CALLBACK
            out.append(path(item.side, y, y + _LINE_H, x2=cx[item.side]).replace(
                f'x1="{cx[item.side]}"', f'x1="{cx[other]}"', 1))
            mid = (cx[_CALLBACK] + cx[_ERRBACK]) // 2
            out.append(f'<text class="value switch" x="{mid}" y="{y + 15}" text-anchor="middle" '
                       f'fill="{_COLOURS[item.side][0]}"{_HALO}><title>{_esc(item.text)}</title>'
                       f"{_esc(fit(item.text, _CHARS))}</text>")
            y += _LINE_H
        elif item.kind == "end":
            waiting = item.text.startswith("now")
            out.append(path(item.side, y, y + _LINE_H - 6, end=not waiting)
                       if not waiting else "")
            out.append(value(item.side, item.text, y + 15, "end"))
            y += _LINE_H
        else:
            out.append(path(item.side, y, y + _LINE_H))
            out.append(value(item.side, item.text, y + 15))
            y += _LINE_H
            if item.kind == "wait" and inner and _drawn_inside(e, item.number):
                body, w, h = _svg_body(e.inners[item.number or 0], inner, next(_SVG_IDS),
                                       item.handed)
                x0 = cx[item.side] + 16
                out.append(path(item.side, y, y + h + 8))
                out.append(f'<g class="inner" data-number="{item.number}" '
                           f'transform="translate({x0},{y + 4})">'
                           f'<rect x="0" y="0" width="{w}" height="{h}" rx="6" fill="white" '
                           f'stroke="#d0d7de" stroke-dasharray="3 3"/>{body}</g>')
                width = max(width, x0 + w + 8)
                y += h + 8
    return "".join(out), width, y + 8


# ---- what the prompt and Jupyter show


class ChainDiagram:
    """A chain drawn: text at the prompt (its repr), SVG in Jupyter (``_repr_svg_``).

    ``explanation`` is the :class:`~netshell.shell.chains.Explanation` it draws; ``width``
    the text's width in columns (None: the terminal's, at most :data:`MAX_WIDTH`);
    ``inner`` False leaves out the chains of the Deferreds it waited on.
    """

    def __init__(self, explanation: Explanation, width: int | None = None,
                 inner: bool = True) -> None:
        self.explanation = explanation
        self.width = width
        self.inner = inner

    def text(self, width: int | None = None) -> str:
        """The diagram as text, ``width`` columns at most (default: :attr:`width`)."""
        return chain_text(self.explanation, width or self.width, self.inner)

    def svg(self) -> str:
        """The diagram as SVG (what Jupyter shows)."""
        return chain_svg(self.explanation, self.inner)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()

    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's terminal
        p.text(self.text())
