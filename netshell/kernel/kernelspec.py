"""The ``netshell`` Jupyter kernelspec: ``netsh kernel install`` and ``netsh kernel uninstall``.

The kernel is ipykernel's, started with the netshell extension loaded
(``--ext=netshell``, as ``%load_ext netshell`` would): the prompt's names, the
reactor on the kernel's loop, output in the cell that started the work. The
kernelspec names this Python (``sys.executable``), so the kernel imports the
netshell installed here. Its logos (32x32 and 64x64 PNG, and an SVG) are drawn
by :func:`logo_png` when installing.

Example::

    >>> spec = kernel_json("netshell", "Netshell")
    >>> spec["argv"][1:]
    ['-m', 'ipykernel_launcher', '-f', '{connection_file}', '--ext=netshell']
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_DISPLAY_NAME",
    "DEFAULT_NAME",
    "install",
    "is_ours",
    "kernel_json",
    "kernels_dir",
    "logo_png",
    "logo_svg",
    "uninstall",
]

DEFAULT_NAME = "netshell"
DEFAULT_DISPLAY_NAME = "Netshell (Python 3)"

# The logo's colours: a dark panel with a prompt, ">_", on it.
_BACKGROUND = (0x1B, 0x2B, 0x3A)
_FOREGROUND = (0x7F, 0xE0, 0xA8)


def kernel_json(name: str, display_name: str, python: str | None = None) -> dict[str, Any]:
    """The kernelspec's ``kernel.json``: ipykernel with the netshell extension loaded."""
    return {
        "argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--ext=netshell"],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": False, "netshell": {"name": name}},
    }


def _inside(x: float, y: float) -> bool:
    """Whether the point (x, y) of the unit square is drawn in the foreground: ">_"."""
    # the chevron: two strokes meeting at (0.45, 0.45)
    for (x0, y0), (x1, y1) in (((0.2, 0.2), (0.45, 0.45)), ((0.45, 0.45), (0.2, 0.7))):
        dx, dy = x1 - x0, y1 - y0
        t = max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy)))
        if (x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2 <= 0.07**2:
            return True
    # the cursor
    return 0.52 <= x <= 0.82 and 0.64 <= y <= 0.76


def logo_png(size: int) -> bytes:
    """The logo as a ``size`` x ``size`` PNG (RGB), drawn here, with no imaging library."""
    rows = []
    for row in range(size):
        line = bytearray(b"\0")  # filter type 0 (None) for each scanline
        for col in range(size):
            # 2x2 samples per pixel: smooth enough edges at 32 pixels
            hits = sum(_inside((col + dx) / size, (row + dy) / size)
                       for dx in (0.25, 0.75) for dy in (0.25, 0.75))
            line += bytes(round(b + (f - b) * hits / 4)
                          for b, f in zip(_BACKGROUND, _FOREGROUND, strict=True))
        rows.append(bytes(line))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def logo_svg() -> str:
    """The logo as SVG (what JupyterLab's launcher prefers)."""
    bg = "#" + bytes(_BACKGROUND).hex()
    fg = "#" + bytes(_FOREGROUND).hex()
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">'
        f'<rect width="64" height="64" fill="{bg}"/>'
        f'<polyline points="12.8,12.8 28.8,28.8 12.8,44.8" fill="none" stroke="{fg}" '
        'stroke-width="9" stroke-linecap="round" stroke-linejoin="round"/>'
        f'<rect x="33.3" y="41" width="19.2" height="7.7" fill="{fg}"/></svg>\n'
    )


def kernels_dir(user: bool = False, prefix: str | None = None) -> Path:
    """Where a kernelspec goes: the user's Jupyter data dir, ``PREFIX/share/jupyter``,
    or the system-wide one (as ``jupyter kernelspec install`` chooses)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_core.paths import SYSTEM_JUPYTER_PATH

    if user:
        return Path(KernelSpecManager().user_kernel_dir)
    if prefix:
        return Path(prefix).absolute() / "share" / "jupyter" / "kernels"
    return Path(SYSTEM_JUPYTER_PATH[0]) / "kernels"


def is_ours(where: Path) -> bool:
    """Whether the kernelspec directory ``where`` is one netshell installed: its
    ``kernel.json`` carries ``metadata.netshell`` (as :func:`kernel_json` writes)."""
    try:
        spec = json.loads((where / "kernel.json").read_text())
    except (OSError, ValueError):
        return False
    metadata = spec.get("metadata") if isinstance(spec, dict) else None
    return isinstance(metadata, dict) and isinstance(metadata.get("netshell"), dict)


def _target(name: str, user: bool, prefix: str | None) -> Path:
    """The directory of kernelspec ``name`` there, after checking the name."""
    from jupyter_client.kernelspec import _is_valid_kernel_name

    if not _is_valid_kernel_name(name):
        raise ValueError(f"invalid kernelspec name {name!r}: letters, digits and -._ only")
    return kernels_dir(user, prefix) / name.lower()


def install(
    name: str = DEFAULT_NAME,
    display_name: str = DEFAULT_DISPLAY_NAME,
    *,
    user: bool = False,
    prefix: str | None = None,
) -> Path:
    """Install the kernelspec (replacing netshell's own of that name there); return its
    directory.

    ``user`` puts it in the user's Jupyter data dir, ``prefix`` in
    ``PREFIX/share/jupyter/kernels``, neither in the system-wide one. Raises
    ValueError for a name Jupyter does not accept (letters, digits, ``-._`` only)
    or when a kernelspec of that name there is not netshell's (left untouched),
    ImportError when jupyter_client is not installed, OSError when the
    directory cannot be written.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    target = _target(name, user, prefix)
    if target.exists() and not is_ours(target):
        raise ValueError(f"{target} is a kernelspec netshell did not install; not replacing "
                         "it (choose another --name, or remove it with jupyter kernelspec "
                         "remove)")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / name
        source.mkdir()
        (source / "kernel.json").write_text(json.dumps(kernel_json(name, display_name),
                                                       indent=1) + "\n")
        for size in (32, 64):
            (source / f"logo-{size}x{size}.png").write_bytes(logo_png(size))
        (source / "logo-svg.svg").write_text(logo_svg())
        where = KernelSpecManager().install_kernel_spec(
            str(source), name, user=user, prefix=prefix
        )
    return Path(where)


def uninstall(name: str = DEFAULT_NAME, *, user: bool = False,
              prefix: str | None = None) -> Path:
    """Remove netshell's kernelspec ``name``; return the directory removed.

    From the place :func:`install` with the same ``user`` and ``prefix`` puts it.
    Raises LookupError when there is none there, ValueError when the one there is not
    netshell's (left untouched).
    """
    where = _target(name, user, prefix)
    if not (where / "kernel.json").is_file():
        raise LookupError(f"no kernelspec {name!r} in {where.parent}")
    if not is_ours(where):
        raise ValueError(f"{where} is a kernelspec netshell did not install; not removing "
                         "it (jupyter kernelspec remove does)")
    shutil.rmtree(where)
    return where
