"""How the prompt shows live things: tables whose rows are the objects themselves.

``listeners()`` and ``conns()`` return a :class:`Table`: a list of the live
listeners or connections that prints as aligned text (coloured at the
prompt). Nothing here imports prompt_toolkit, so ``netsh run`` and Jupyter
can use it too; in Jupyter a table is an HTML table (``netshell.kernel.displays``).

Example::

    >>> t = Table(["a", "bb"], [("name", str), ("size", len)])
    >>> t
    name  size
    a        1
    bb       2
    >>> t[1]
    'bb'
"""

from __future__ import annotations

import reprlib
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "Table",
    "connection_table",
    "display_name",
    "exact_bytes",
    "human_age",
    "human_bytes",
    "listener_table",
    "preview",
    "short_repr",
]

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = 5

# ANSI SGR codes for the few colours the tables use.
_COLOURS = {"title": "1", "id": "36", "open": "32", "closing": "33", "closed": "31", "dim": "2"}


def short_repr(value: Any) -> str:
    """A repr cut to about a line, for notes and traces."""
    return _short.repr(value)


def exact_bytes(n: int) -> str:
    """``1234`` -> ``'1,234'``: a byte count a person checks ("did all 1,234 arrive?").

    The tables use it; human units (:func:`human_bytes`) are for a glance (the toolbar).
    """
    return f"{int(n):,}"


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``: sizes people read at a glance (the toolbar, progress)."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        # Compare what will be shown: 1048575 is "1.0 MiB", not "1024.0 KiB".
        if round(size, 1) < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


def human_age(seconds: float) -> str:
    """``125`` -> ``'2m05s'``."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def preview(data: bytes, limit: int = 60) -> str:
    """A short escaped preview of bytes: ``b'GET / HTTP/1.1\\r\\n'...``."""
    shown = repr(bytes(data[:limit]))
    return shown + ("..." if len(data) > limit else "")


def hexdump(data: bytes, width: int = 16) -> str:
    """The classic offset / hex / ASCII dump, one line per ``width`` bytes."""
    lines = []
    for offset in range(0, len(data), width):
        row = data[offset : offset + width]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:08x}  {hexes:<{width * 3 - 1}}  {text}")
    return "\n".join(lines)


Column = tuple[str, Callable[[Any], Any]]


class Table(list[Any]):
    """A list of live objects that prints as a table, one row per object.

    ``columns`` are (title, function of the row object). Numbers are aligned
    right. Indexing, iteration and slicing give the objects themselves.
    """

    def __init__(self, rows: Iterable[Any], columns: list[Column], empty: str = "") -> None:
        super().__init__(rows)
        self.columns = columns
        self.empty = empty

    def cells(self) -> list[list[str]]:
        """The rows as text, one list of cells per object (no header)."""
        out = []
        for row in self:
            cells = []
            for _, get in self.columns:
                try:
                    value = get(row)
                except Exception as e:  # a row that closed under us still prints
                    value = f"?{type(e).__name__}"
                cells.append(str(value))
            out.append(cells)
        return out

    def render(self, color: bool = False) -> str:
        """The table as text; ``color`` adds ANSI colours (the prompt's display)."""
        if not self:
            return self.empty or "(none)"
        titles = [title for title, _ in self.columns]
        body = self.cells()
        widths = [max(len(r[i]) for r in [titles, *body]) for i in range(len(titles))]
        right = [all(_numeric(r[i]) for r in body) for i in range(len(titles))]

        def line(cells: list[str], style: str | None = None) -> str:
            parts = []
            for i, cell in enumerate(cells):
                text = cell.rjust(widths[i]) if right[i] else cell.ljust(widths[i])
                cell_style = style
                if cell_style is None and color:
                    if i == 0:
                        cell_style = "id"
                    elif cell in ("open", "listening", "closing", "closed"):
                        cell_style = "open" if cell == "listening" else cell
                if color and cell_style:
                    text = f"\x1b[{_COLOURS[cell_style]}m{text}\x1b[0m"
                parts.append(text)
            return "  ".join(parts).rstrip()

        rows = [line(titles, "title" if color else None)]
        rows.extend(line(cells) for cells in body)
        return "\n".join(rows)

    def __repr__(self) -> str:
        return self.render(color=False)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython's display
        # Coloured in a terminal; in a Jupyter kernel this is the text/plain a notebook
        # keeps (beside the HTML table), which must be plain.
        from netshell.shell.progress import in_kernel

        p.text(self.render(color=not in_kernel()))

    def _repr_html_(self) -> str:  # Jupyter's display: the same cells as an HTML table
        from netshell.kernel.displays import table_html

        return table_html(self)


def _numeric(cell: str) -> bool:
    head = cell.split(" ", 1)[0].lstrip("#").replace(",", "")
    return head.replace(".", "", 1).isdigit()


def display_name(protocol: Any) -> str:
    """The name ``conns()`` and ``listeners()`` show for a protocol (an instance or a class).

    A protocol class names itself for people with a class attribute ``display_name``
    (``"http client"`` for the HTTP client's pooled connection); without one, the class
    name is shown. An instance may name itself more closely (a property, or a descriptor
    that gives the class's name on the class: an IRC server's connection shows
    ``"irc server alice"``, its listener ``"irc server"``).

    Example::

        >>> class _Pooled:
        ...     display_name = "http client"
        >>> display_name(_Pooled()), display_name(_Pooled), display_name(object())
        ('http client', 'http client', 'object')
    """
    cls = protocol if isinstance(protocol, type) else type(protocol)
    try:
        name = getattr(protocol, "display_name", None)
    except Exception:  # a broken property must not break the table
        name = None
    return name if isinstance(name, str) and name else cls.__name__


def _protocol_name(obj: Any) -> str:
    if obj is None:
        return "-"
    name = display_name(obj)
    # A connection that serves another (an FTP data connection) says which: its protocol's
    # ``control`` is the other connection's protocol.
    control = getattr(obj, "control", None)
    number = getattr(getattr(control, "transport", None), "number", None)
    return f"{name} for #{number}" if isinstance(number, int) else name


def _listener_protocol(listener: Any) -> str:
    protocol = getattr(listener, "protocol", None)
    if protocol is not None:  # a datagram listener has one protocol
        return _protocol_name(protocol)
    factory = getattr(listener, "factory", None)
    cls = getattr(factory, "protocol", None)
    if isinstance(cls, type):
        return display_name(cls)
    # A factory that makes its protocols itself (no protocol class) may name them.
    return getattr(type(factory), "display_name", None) or type(factory).__name__


def _listener_bytes(listener: Any, attr: str) -> int:
    transport = getattr(listener, "transport", None)
    if transport is not None:  # datagram listener
        return int(getattr(transport, attr, 0))
    return int(getattr(listener, attr, 0))  # every connection it accepted, closed ones too


def _listener_state(listener: Any) -> str:
    return "closed" if getattr(listener, "closed", False) else "listening"


def _tls(obj: Any) -> str:
    return "yes" if getattr(obj, "tls", None) is not None or getattr(obj, "tls_context", None) \
        is not None else "no"


def _age(since: float) -> str:
    return human_age(time.time() - since) if since else "-"


LISTENER_COLUMNS: list[Column] = [
    ("id", lambda x: f"#{x.number}"),
    ("kind", lambda x: x.address.kind),
    ("local", lambda x: str(x.address)),
    ("peer", lambda x: "-"),
    ("protocol", _listener_protocol),
    ("state", _listener_state),
    ("conns", lambda x: len(getattr(x, "connections", []))),
    ("in", lambda x: exact_bytes(_listener_bytes(x, "bytes_received"))),
    ("out", lambda x: exact_bytes(_listener_bytes(x, "bytes_sent"))),
    ("age", lambda x: _age(getattr(x, "created_at", 0.0))),
    ("tls", _tls),
]

CONNECTION_COLUMNS: list[Column] = [
    ("id", lambda x: f"#{x.number}"),
    ("kind", lambda x: x.kind),
    ("local", lambda x: str(x.host)),
    ("peer", lambda x: str(x.peer)),
    ("protocol", lambda x: _protocol_name(x.protocol)),
    ("state", lambda x: x.state),
    ("in", lambda x: exact_bytes(x.bytes_received)),
    ("out", lambda x: exact_bytes(x.bytes_sent)),
    ("age", lambda x: _age(x.connected_at)),
    ("tls", _tls),
]


def listener_table(listeners: Iterable[Any]) -> Table:
    """The listeners as a table (``listeners()`` at the prompt)."""
    return Table(listeners, LISTENER_COLUMNS, empty="(no listeners)")


def connection_table(connections: Iterable[Any]) -> Table:
    """The connections as a table (``conns()`` at the prompt)."""
    return Table(connections, CONNECTION_COLUMNS, empty="(no connections)")
