"""What Jupyter shows of netshell's objects: HTML tables, Deferred chains drawn, sequence
diagrams, tables that refresh in place, progress bars.

The renderers here are plain functions that return strings (HTML, SVG, mermaid text);
nothing here imports IPython at import time, so they are tested without a kernel. The
objects people look at call them from their ``_repr_html_`` / ``_repr_mimebundle_``:
``Table`` (``conns()``, ``listeners()``, ``deferreds()``), the ``Explanation`` that
``explain(d)`` returns, the ``Capture`` that ``trace()`` fills, and the Deferred, whose
drawing this module registers with the core when it is imported
(:data:`netshell.defer.html_renderer`: the core never imports the notebook side).

Everything shown is escaped: a peer's bytes end up in these displays.

:func:`watch` shows a table (or anything) and refreshes it in place every second, driven
by the reactor's timed calls, so it goes on while no cell runs; :class:`NotebookProgress`
is the download and FTP transfer bar drawn in the cell's output.

Example::

    >>> import netshell as ns
    >>> html = deferred_html(ns.succeed(42))
    >>> "fired: 42" in html
    True
"""

from __future__ import annotations

import contextvars
import html
import itertools
import logging
import math
import re
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import netshell as ns
from netshell import defer
from netshell.defer import Deferred
from netshell.shell import chains
from netshell.shell.display import Table, _numeric, human_bytes
from netshell.shell.progress import progress_text

__all__ = [
    "NotebookProgress",
    "Watch",
    "capture_bundle",
    "capture_mermaid",
    "capture_svg",
    "capture_text",
    "chain_html",
    "deferred_html",
    "explanation_html",
    "progress_html",
    "table_html",
    "watch",
]

log = logging.getLogger("netshell.kernel")

# Characters XML does not allow in text (a peer's bytes are shown as a repr, but names and
# addresses pass through too).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def esc(value: Any) -> str:
    """``value`` as text that is safe inside HTML or SVG, in an element or an attribute."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


# ---- tables: conns(), listeners(), deferreds()

_STATE_COLOURS = {"open": "#1a7f37", "listening": "#1a7f37", "closing": "#9a6700",
                  "closed": "#cf222e"}


def table_html(table: Table) -> str:
    """``table`` as an HTML table: the same columns and cells as its text."""
    if not table:
        return f'<p class="netshell-empty"><em>{esc(table.empty or "(none)")}</em></p>'
    titles = [title for title, _ in table.columns]
    body = table.cells()
    right = [all(_numeric(row[i]) for row in body) for i in range(len(titles))]
    cell_style = "padding:2px 10px;border-bottom:1px solid #ddd;"
    head = "".join(
        f'<th style="{cell_style}text-align:{"right" if right[i] else "left"}">{esc(t)}</th>'
        for i, t in enumerate(titles)
    )
    rows = []
    for row in body:
        cells = []
        for i, cell in enumerate(row):
            style = cell_style + f"text-align:{'right' if right[i] else 'left'};"
            colour = _STATE_COLOURS.get(cell)
            if colour:
                style += f"color:{colour};"
            cells.append(f'<td style="{style}">{esc(cell)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<table class="netshell-table" style="border-collapse:collapse;font-family:monospace">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# ---- a Deferred's chain, drawn


class _Row(NamedTuple):
    view: chains.StepView
    path: str | None  # the side the result was on when the chain reached the step
    after: str | None  # the side it was on after the step ("waits": it returned a Deferred)


_SIDE_COLOURS = {"callback": ("#1a7f37", "#dafbe1"), "errback": ("#cf222e", "#ffebe9")}
_STATE_BADGE = {"pending": "#6e7781", "fired": "#1a7f37", "failed": "#cf222e",
                "cancelled": "#9a6700", "waiting": "#0969da"}


def _side_after(view: chains.StepView) -> str | None:
    if view.status in ("callback", "errback"):
        if view.outcome.startswith("raised") or view.outcome.startswith("returned Failure("):
            return "errback"
        if view.outcome.startswith("returned Deferred #"):
            return "waits"
        return "callback"
    if view.status == "skipped":
        return "errback" if view.kind == "callback" else "callback"
    return None


def _rows(views: Iterable[chains.StepView]) -> list[_Row]:
    rows = []
    for view in views:
        if view.status in ("callback", "errback"):
            path: str | None = view.status
        elif view.status == "skipped":
            path = "errback" if view.kind == "callback" else "callback"
        else:
            path = None
        rows.append(_Row(view, path, _side_after(view)))
    return rows


def _state_kind(state: str) -> str:
    for kind in ("fired", "failed", "cancelled", "waiting"):
        if state.startswith(kind):
            return kind
    return "pending"


def _side_cell(row: _Row, side: str) -> str:
    view = row.view
    name = view.callback if side == "callback" else view.errback
    line, fill = _SIDE_COLOURS[side]
    on_path = row.path == side
    if name is None:
        role = "passed" if on_path else "none"
        text = "&#183;" if on_path else "&#8212;"
    elif view.status == side:
        role, text = "ran", esc(name)
    elif view.status == "pending":
        role, text = "pending", esc(name)
    else:  # the chain reached the step with its result on the other side
        role, text = "skipped", esc(name)
    style = "padding:3px 10px;font-family:monospace;"
    style += f"border-left:4px solid {line};" if on_path else "border-left:4px solid transparent;"
    if role == "ran":
        style += f"background:{fill};font-weight:bold;"
    elif role == "skipped":
        style += "color:#8c959f;text-decoration:line-through;"
    elif role == "pending":
        style += "color:#57606a;font-style:italic;"
    else:
        style += "color:#8c959f;"
    return (f'<td class="side {side}" data-role="{role}" style="{style}">{text}'
            f'{" &#10003;" if role == "ran" else ""}</td>')


def _what(row: _Row, detail: bool) -> str:
    view = row.view
    if view.status in ("callback", "errback"):
        text = f"got {view.got}, {view.outcome}" if detail else view.outcome
        if view.kind in ("both", "callbacks"):
            text = f"ran as {view.status}: {text}"
    elif view.status == "skipped":
        text = f"passed by (the result was {'a Failure' if row.path == 'errback' else 'a value'})"
    else:
        text = "not run yet"
    shown = esc(text)
    if row.path in ("callback", "errback") and row.after in ("callback", "errback") and (
        row.after != row.path
    ):
        where = "to the errback side" if row.after == "errback" else "back to the callback side"
        colour = _SIDE_COLOURS[row.after][0]
        shown += (f' <span class="switch" style="color:{colour};font-weight:bold">'
                  f"&#8631; switched {where}</span>")
    return f'<td class="what" style="padding:3px 10px">{shown}</td>'


#: A chain drawn shows its first CHAIN_HEAD and last CHAIN_TAIL steps at most, with a row
#: (``tr.more``) saying how many are left out between.
CHAIN_HEAD = 100
CHAIN_TAIL = 20


def chain_html(number: int, state: str, views: Iterable[chains.StepView], waits: str = "",
               detail: bool = True, note: str = "") -> str:
    """A chain drawn as HTML: a line with the Deferred's state, then one row per step with its
    callback and errback sides; the side that ran is filled and ticked, a side passed by is
    struck through, and a bar down the side the result was on draws the path it took
    (green: a value, on the callback side; red: a Failure, on the errback side).

    ``views`` are :class:`netshell.shell.chains.StepView`; ``detail`` adds what each step
    got to what it returned; ``waits`` and ``note`` are lines shown under the steps. A long
    chain shows its first :data:`CHAIN_HEAD` and last :data:`CHAIN_TAIL` steps.
    """
    kind = _state_kind(state)
    badge = (f'<span class="state" data-state="{kind}" style="background:{_STATE_BADGE[kind]};'
             f'color:white;border-radius:3px;padding:1px 6px">{esc(state)}</span>')
    parts = [f'<div class="netshell-deferred" data-number="{number}" '
             'style="font-family:sans-serif;margin:4px 0">',
             f'<div style="margin-bottom:4px"><b>Deferred #{number}</b> {badge}</div>']
    rows = _rows(views)
    if rows:
        head = "".join(f'<th style="padding:2px 10px;text-align:left">{t}</th>'
                       for t in ("", "callback side", "errback side", "what happened"))
        parts.append('<table class="chain" style="border-collapse:collapse">'
                     f'<thead><tr style="border-bottom:1px solid #ddd">{head}</tr></thead><tbody>')
        more = len(rows) - CHAIN_HEAD - CHAIN_TAIL
        shown: list[_Row | None] = list(rows)
        if more > 0:  # the first and last steps, and a row saying how many between
            shown = [*rows[:CHAIN_HEAD], None, *rows[-CHAIN_TAIL:]]
        for row in shown:
            if row is None:
                parts.append(f'<tr class="more"><td></td><td colspan="3" style="padding:3px 10px;'
                             f'color:#57606a">... {more:,} more steps</td></tr>')
                continue
            view = row.view
            switch = ""
            if row.path in ("callback", "errback") and row.after in ("callback", "errback") \
                    and row.after != row.path:
                switch = row.after
            parts.append(
                f'<tr class="step" data-step="{view.number}" data-status="{view.status}" '
                f'data-path="{row.path or ""}" data-switch="{switch}">'
                f'<td style="padding:3px 6px;color:#57606a">{view.number}.</td>'
                f'{_side_cell(row, "callback")}{_side_cell(row, "errback")}{_what(row, detail)}'
                "</tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append('<div class="empty" style="color:#57606a">(no callbacks recorded)</div>')
    if waits:
        parts.append(f'<div class="waits" style="color:#0969da;margin-top:4px">{esc(waits)}</div>')
    if note:
        parts.append(f'<div class="note" style="color:#57606a;font-size:smaller;margin-top:4px">'
                     f"{esc(note)}</div>")
    parts.append("</div>")
    return "".join(parts)


# The core's link from an inner Deferred back to the one waiting on it: not a step.
_LINK = getattr(defer, "_CONTINUE", None)

NOT_RECORDED = ("steps that already ran are not shown: chains are recorded at the netsh prompt "
                "and after %load_ext netshell")


def _unrecorded_views(d: Deferred[Any]) -> list[chains.StepView]:
    """The steps still waiting in ``d``'s chain, when none of its steps was recorded."""
    views: list[chains.StepView] = []
    for item in d._callbacks:
        callback, errback = item[0], item[3]
        if callback is _LINK or getattr(callback, "internal_step", False):
            continue
        step = chains.Step(callback, errback)
        views.append(chains.StepView(len(views) + 1, step.kind, step.callback_name,
                                     step.errback_name, "pending", "", "", step.describe()))
    return views


def deferred_html(d: Deferred[Any]) -> str:
    """A Deferred as Jupyter shows it: its state, and its chain drawn (see :func:`chain_html`).

    The steps recorded for it (``explain(d)``'s) when there are; otherwise the steps still
    waiting in its chain, with a note that those that ran are not known.
    """
    views = chains.chain_steps(d)
    note = ""
    if not views:
        views = _unrecorded_views(d)
        if not chains.recording():
            note = NOT_RECORDED
    return chain_html(d.number, chains.state_text(d), views, chains.waiting_text(d),
                      detail=False, note=note)


def explanation_html(explanation: chains.Explanation) -> str:
    """What ``explain(d)`` said, drawn: the chain as it was when ``explain`` ran."""
    return chain_html(explanation.number, explanation.state, explanation.steps,
                      explanation.waits, detail=True)


# ---- trace()'s capture as a sequence diagram

_MERMAID_ESCAPES = {"#": "#35;", ";": "#59;", "<": "#60;", ">": "#62;", "&": "#38;",
                    "\n": " ", "\r": " ", '"': "#34;"}


def mermaid_text(value: Any) -> str:
    """``value`` as text inside a mermaid diagram: its own entity codes for the characters
    its grammar reads (``#``, ``;``) and for markup (``<``, ``>``, ``&``), no line breaks."""
    text = _NOT_XML.sub("\ufffd", str(value))
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


def _parties(rows: Iterable[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(row.source)
        seen.setdefault(row.dest)
    return list(seen)


def _label(row: Any, limit: int = 60) -> str:
    """What is written by a row's arrow: the message in its protocol's words (an HTTP
    request line, an FTP command or reply, an IRC line; size and first bytes for others),
    or the connection's number and what happened to it."""
    return str(row.label(limit))


#: The events a diagram draws at most (the first ones); a note says how many more there are.
DRAW_LIMIT = 200


def _drawn(capture: Any) -> tuple[list[Any], int]:
    if not capture.events:
        return [], 0
    from netshell.teach.wire import summary_rows

    rows = summary_rows(capture)
    return rows[:DRAW_LIMIT], max(len(rows) - DRAW_LIMIT, 0)


def _more(n: int) -> str:
    return f"and {n:,} more events, not drawn (the capture's events has them all)"


def capture_mermaid(capture: Any) -> str:
    """A capture as a mermaid ``sequenceDiagram``: one participant per address, an arrow per
    message (``->>``), a dashed one per connection opened (``-->>``), a note per close;
    the first :data:`DRAW_LIMIT` events."""
    events, more = _drawn(capture)
    parties = _parties(events) or ["(nothing captured yet)"]
    ids = {party: f"P{i}" for i, party in enumerate(parties, 1)}
    lines = ["sequenceDiagram"]
    lines += [f"    participant {ids[p]} as {mermaid_text(p)}" for p in parties]
    for e in events:
        a, b = ids[e.source], ids[e.dest]
        if e.kind == "message":
            lines.append(f"    {a}->>{b}: {mermaid_text(_label(e, 40))}")
        elif e.kind == "connect":
            lines.append(f"    {a}-->>{b}: {mermaid_text(_label(e))}")
        else:
            over = a if a == b else f"{a},{b}"
            lines.append(f"    Note over {over}: {mermaid_text(_label(e))}")
    if more:
        span = "P1" if len(parties) == 1 else f"P1,P{len(parties)}"
        lines.append(f"    Note over {span}: {mermaid_text(_more(more))}")
    return "\n".join(lines)


def capture_text(capture: Any) -> str:
    """A capture's text as a notebook keeps it (``text/plain``): its first line and the
    first :data:`DRAW_LIMIT` events, and a line saying how many more there are."""
    head, *lines = repr(capture).splitlines()
    more = len(lines) - DRAW_LIMIT
    if more > 0:
        lines = [*lines[:DRAW_LIMIT], f"  ... {_more(more)}"]
    return "\n".join([head, *lines])


def capture_bundle(capture: Any) -> dict[str, str]:
    """A capture's Jupyter display (its ``_repr_mimebundle_``), the text limited as the
    diagrams are (:func:`capture_text`); the extension shows captures with this."""
    return {**capture._repr_mimebundle_(), "text/plain": capture_text(capture)}


def explanation_text(explanation: str) -> str:
    """``explain(d)``'s text for a notebook to keep: a long chain's first
    :data:`CHAIN_HEAD` and last :data:`CHAIN_TAIL` steps, as its drawing shows them, and
    how many more there are (``print(explain(d))`` prints them all)."""
    lines = explanation.splitlines()
    starts = [i for i, line in enumerate(lines) if _STEP_LINE.match(line)]
    if len(starts) <= CHAIN_HEAD + CHAIN_TAIL:
        return explanation
    more = len(starts) - CHAIN_HEAD - CHAIN_TAIL
    return "\n".join([*lines[:starts[CHAIN_HEAD]],
                      f"  ... {more:,} more steps, not shown (print(explain(d)) shows them)",
                      *lines[starts[-CHAIN_TAIL]:]])


_STEP_LINE = re.compile(r"  \d+\. ")  # a step of explain's text: "  12. callback f ..."


_SVG_IDS = itertools.count(1)
_COLUMN = 240
_ROW = 34
_TOP = 56


def capture_svg(capture: Any) -> str:
    """A capture as an SVG sequence diagram: a lifeline per address (``line.lifeline``), an
    arrow per message (``g.message``), a dashed arrow per connection opened
    (``g.connect``), a note per close (``g.close``), top to bottom in order; the first
    :data:`DRAW_LIMIT` events, and a line (``text.more``) saying how many more there are."""
    events, more = _drawn(capture)
    parties = _parties(events) or ["(nothing captured yet)"]
    marker = f"netshell-arrow-{next(_SVG_IDS)}"
    width = _COLUMN * len(parties) + 20
    height = _TOP + _ROW * (max(len(events), 1) + (1 if more else 0)) + 24
    x = {p: 10 + _COLUMN // 2 + i * _COLUMN for i, p in enumerate(parties)}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="netshell-sequence" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" '
        'font-size="12">',
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#24292f"/></marker></defs>',
    ]
    for party in parties:
        cx = x[party]
        out.append(
            f'<g class="party" data-name="{esc(party)}">'
            f'<rect x="{cx - _COLUMN // 2 + 8}" y="8" width="{_COLUMN - 16}" height="26" rx="4" '
            'fill="#f6f8fa" stroke="#57606a"/>'
            f'<text x="{cx}" y="25" text-anchor="middle">{esc(_clip(party, 30))}</text>'
            f'<line class="lifeline" x1="{cx}" y1="34" x2="{cx}" y2="{height - 8}" '
            'stroke="#8c959f" stroke-dasharray="4 3"/></g>'
        )
    for i, e in enumerate(events):
        y = _TOP + i * _ROW + _ROW // 2
        x1, x2 = x[e.source], x[e.dest]
        if e.kind == "close":
            left, right = min(x1, x2) - 60, max(x1, x2) + 60
            out.append(
                f'<g class="close"><rect x="{left}" y="{y - 12}" width="{right - left}" '
                'height="20" fill="#fff8c5" stroke="#9a6700"/>'
                f'<text x="{(left + right) // 2}" y="{y + 2}" text-anchor="middle">'
                f"{esc(_clip(_label(e), (right - left) // 7))}</text></g>"
            )
            continue
        cls = "message" if e.kind == "message" else "connect"
        colour = "#24292f" if e.kind == "message" else "#0969da"
        dash = "" if e.kind == "message" else ' stroke-dasharray="6 4"'
        room = max(abs(x2 - x1) // 8, 16)
        label = _label(e)
        out.append(
            f'<g class="{cls}" data-from="{esc(e.source)}" data-to="{esc(e.dest)}">'
            f"<title>{esc(label)}</title>"
            f'<line class="arrow" x1="{x1}" y1="{y + 6}" x2="{x2}" y2="{y + 6}" '
            f'stroke="{colour}"{dash} marker-end="url(#{marker})"/>'
            f'<text x="{(x1 + x2) // 2}" y="{y}" text-anchor="middle" fill="{colour}">'
            f"{esc(_clip(label, room))}</text></g>"
        )
    if more:
        out.append(f'<text class="more" x="10" y="{_TOP + len(events) * _ROW + _ROW // 2}" '
                   f'fill="#57606a">{esc(_more(more))}</text>')
    out.append("</svg>")
    return "".join(out)


# ---- watch(conns): a display that refreshes in place


class Watch:
    """A display refreshed in place every ``every`` seconds until :meth:`stop` (see
    :func:`watch`); ``updates`` counts the refreshes."""

    def __init__(self, what: Any, every: float, clock: Any, display: Callable[..., Any]) -> None:
        if not 0 < every < math.inf:
            raise ValueError(f"watch() refreshes every so many seconds, more than 0: {every!r}")
        self.what = what
        self.every = every
        self.clock = clock
        self.updates = 0
        self.stopped = False
        # Watching the same thing again (a cell run again) replaces the earlier watch: it
        # would go on refreshing with no name left to stop it by.
        for earlier in list(_watches):
            if earlier.what == what:
                earlier.stop()
        self.handle = display(self._current(), display_id=True)
        self._call: Any = clock.call_later(every, self._refresh)
        _watches.add(self)

    @property
    def name(self) -> str:
        """What is watched, as typed: ``conns()``."""
        fn = getattr(self.what, "__name__", None)
        return f"{fn}()" if callable(self.what) and fn else type(self.what).__name__

    def _current(self) -> Any:
        return self.what() if callable(self.what) else self.what

    def _refresh(self) -> None:
        self._call = None
        if self.stopped:
            return
        try:
            now = self._current()
            # Drawn here first: IPython would swallow an error of the object's own display
            # and show it in the cell, every second, for ever.
            for method in ("_repr_mimebundle_", "_repr_html_"):
                draw = getattr(now, method, None)
                if callable(draw) and not isinstance(now, type):
                    draw()
            self.handle.update(now)
        except Exception:
            self.stopped = True
            log.exception("watch(%s) stopped: refreshing it failed", self.name)
            return
        self.updates += 1
        self._call = self.clock.call_later(self.every, self._refresh)

    def stop(self) -> None:
        """Stop refreshing; the display keeps what it showed last."""
        self.stopped = True
        _watches.discard(self)
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def __repr__(self) -> str:
        if self.stopped:
            return f"watch of {self.name}: stopped"
        return (f"watching {self.name} every {self.every:g} s, in place above; "
                "stop it with .stop() on this object (w = watch(...); w.stop())")


# The watches refreshing now.
_watches: weakref.WeakSet[Watch] = weakref.WeakSet()


def watch(what: Any, every: float = 1.0, *, clock: Any = None,
          display: Callable[..., Any] | None = None) -> Watch:
    """Show ``what`` in the cell's output and refresh it in place every ``every`` seconds,
    while the kernel is idle too, until ``.stop()`` on what it returns.

    ``what`` is a function called for each refresh (``watch(conns)``,
    ``watch(deferreds)``) or an object shown again as it is now. The refreshes are the
    reactor's timed calls (``clock``: the reactor, or a testing Clock); ``display`` is
    IPython's (``IPython.display.display``), imported only now. A refresh that raises
    (or whose display raises) is logged and ends the watch. Watching the same ``what``
    again, as a cell run a second time does, stops the earlier watch.

    Example (in a notebook)::

        w = watch(conns)      # the table of connections, kept up to date
        w.stop()
    """
    if display is None:
        from IPython.display import display as ipython_display

        display = ipython_display
    return Watch(what, every, ns.reactor if clock is None else clock, display)


# ---- progress bars in the cell's output


def progress_html(label: str, received: int, total: int | None) -> str:
    """A transfer's progress as HTML: its label, a ``<progress>`` bar, how much of how much."""
    if total:
        done = min(received / total, 1.0)
        bar = f'<progress value="{received}" max="{total}" style="width:240px"></progress>'
        amount = f"{done:4.0%} {human_bytes(received)} / {human_bytes(total)}"
    else:  # the size is not known: a bar with no value moves to and fro
        bar = '<progress style="width:240px"></progress>'
        amount = human_bytes(received)
    return (f'<div class="netshell-progress" style="font-family:monospace">'
            f'<span class="label">{esc(label)}</span> {bar} '
            f'<span class="amount">{esc(amount.strip())}</span></div>')


class _Bar:
    """One state of a bar: its HTML for the notebook, its text elsewhere."""

    def __init__(self, label: str, received: int, total: int | None) -> None:
        self.label, self.received, self.total = label, received, total

    def _repr_html_(self) -> str:
        return progress_html(self.label, self.received, self.total)

    def __repr__(self) -> str:
        return progress_text(self.label, self.received, self.total)


class NotebookProgress:
    """A transfer's progress bar drawn in the cell's output and updated in place.

    The same calls as the terminal bar: called with (received, total), ``finish()`` at
    the end. It updates at most ten times a second, and always for the last state; with
    ``show_after``, nothing is shown until a call that many seconds after the first.
    ``display`` is IPython's (imported at the first draw); ``clock`` gives the time
    in seconds (``time.monotonic``).
    """

    def __init__(self, label: str, show_after: float = 0.0,
                 display: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.show_after = show_after
        self.display = display
        self.clock = clock
        self.handle: Any = None
        self.updates = 0
        self._started: float | None = None
        self._last = 0.0
        self._pending: _Bar | None = None  # a state not drawn yet (the ten-a-second limit)
        # The bar belongs to the code that started the transfer (in a kernel: its cell),
        # not to whatever runs when bytes arrive (a reused connection's first user).
        self._context = contextvars.copy_context()

    def __call__(self, received: int, total: int | None) -> None:
        now = self.clock()
        if self._started is None:
            self._started = now
        bar = _Bar(self.label, received, total)
        if now - self._started < self.show_after:
            return
        if self.handle is not None and now - self._last < 0.1 and received != total:
            self._pending = bar
            return
        self._last = now
        self._draw(bar)

    def _draw(self, bar: _Bar) -> None:
        try:
            self._context.run(self._draw_here, bar)
        except RuntimeError as e:
            if "already entered" not in str(e):
                raise
            self._draw_here(bar)  # called from inside that very context: draw here

    def _draw_here(self, bar: _Bar) -> None:
        self._pending = None
        if self.handle is None:
            if self.display is None:
                from IPython.display import display as ipython_display

                self.display = ipython_display
            self.handle = self.display(bar, display_id=True)
        else:
            self.handle.update(bar)
            self.updates += 1

    def finish(self) -> None:
        """Draw the last state, if it was not drawn."""
        if self._pending is not None and self.handle is not None:
            self._draw(self._pending)


# The core draws a Deferred through this module (it never imports the notebook side).
defer.html_renderer = deferred_html
