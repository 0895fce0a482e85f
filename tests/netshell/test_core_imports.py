"""The core never imports the protocol library, IPython or prompt_toolkit (DESIGN.md).

Two checks: what the core's source says it imports (every import statement, also those
inside functions, which a run would not reach), and what importing every core module
really loads in a fresh interpreter (imports made by the packages it uses included).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import netshell

NETSHELL = Path(netshell.__file__).resolve().parent
# Above the core: the shell, and app (the command line and the headless runner), use the protocols.
ABOVE_THE_CORE = {"shell", "app", "kernel", "teach"}
FORBIDDEN = ("protocols", "IPython", "prompt_toolkit", "jedi", "pygments", "ipykernel")


def core_modules() -> list[Path]:
    return sorted(
        path
        for path in NETSHELL.rglob("*.py")
        if path.relative_to(NETSHELL).parts[0].removesuffix(".py") not in ABOVE_THE_CORE
    )


def module_name(path: Path) -> str:
    parts = ("netshell", *path.relative_to(NETSHELL).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``source``, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_the_core_modules_are_found() -> None:
    names = {module_name(p) for p in core_modules()}
    assert {"netshell.defer", "netshell.reactor", "netshell.transport", "netshell.tls"} <= names
    assert {"netshell.testing.pytest_plugin"} <= names
    assert not any(n.startswith(("netshell.shell", "netshell.app")) for n in names)


def test_no_core_module_imports_protocols_ipython_or_prompt_toolkit() -> None:
    offences = [
        f"{path.relative_to(NETSHELL.parent)}:{line} imports {name}"
        for path in core_modules()
        for line, name in imported_names(path.read_text(encoding="utf-8"))
        if name in FORBIDDEN
    ]
    assert offences == []


def test_the_source_check_sees_an_import_inside_a_function() -> None:
    source = "import os\n\ndef later():\n    from protocols import http\n    import IPython\n"
    assert imported_names(source) == [(1, "os"), (4, "protocols"), (5, "IPython")]


def test_importing_the_core_loads_none_of_them() -> None:
    # The pytest plugin imports pytest, which loads pygments itself: its source is checked above.
    modules = [
        name
        for name in map(module_name, core_modules())
        if name != "netshell.testing.pytest_plugin"
    ]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []


# Above the core, the shell and the command line may use these, but only once they are needed:
# importing any of their modules loads none of them (the netsh prompt offers tls and http by
# name, loaded on first use; pygments comes after the first prompt, IPython with --ipython).
# tests/netshell/test_startup_imports.py checks the drawn prompt itself.
LOADED_ON_USE = ("OpenSSL", "cryptography", "IPython", "jedi", "pygments", "hypothesis",
                 "ipykernel", "protocols.http.server", "protocols.http.client")


def test_importing_the_shell_and_the_command_line_loads_none_of_the_heavy_modules() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import netshell.app, netshell.shell\n"
        "for pkg in (netshell.shell, netshell.app):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        f"heavy = {LOADED_ON_USE!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if any(m == h or m.startswith(h + '.') for h in heavy))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []
