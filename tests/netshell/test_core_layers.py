"""Inside the core, imports go one way (DESIGN.md; docs/architecture.md draws the layers).

The checker reads the import statements of the core's modules (with ``ast``: at module
level and nested in functions, leaving out ``if TYPE_CHECKING:`` blocks, which never run)
and fails on:

(a) a cycle among the core's modules;
(b) an import of a module of a higher layer than the importer's (LAYERS below, bottom
    first; modules of one layer may import each other, without a cycle);
(c) an import of a core module inside a function, except the few in LAZY, which load
    pyOpenSSL only when TLS is used, for start-up time (``netsh run`` must not pay for it).

The checker is tested on small source strings, and on the real sources with an upward
import added by hand, before it is trusted with the real core.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import netshell

NETSHELL = Path(netshell.__file__).resolve().parent

#: The core's layers, bottom first (DESIGN.md, "Imports only go down").
LAYERS: list[set[str]] = [
    # failure, errors at the bottom (interfaces: the transport contracts, typing only)
    {"netshell.failure", "netshell.errors", "netshell.interfaces"},
    # the current loop's reactor: get_reactor() and the registry; the observers registered
    # (what the shell, traces and displays watch): both depend on nothing
    {"netshell.current", "netshell.observe"},
    # Deferreds (one asks for a clock, get_reactor(), only when it needs one)
    {"netshell.defer"},
    {"netshell.protocol"},
    # the transports; listener and connector build stream transports (udp shares the
    # listener's bind_socket and numbering, so they are one layer, not one above)
    {
        "netshell.socket_io",
        "netshell.transport",
        "netshell.listener",
        "netshell.connector",
        "netshell.udp",
        "netshell.tls_layer",
        "netshell.tls",
    },
    {"netshell.endpoints", "netshell.threads", "netshell.db"},
    # the Reactor facade: listen_*/connect_* call down into the transports
    {"netshell.reactor"},
    # what is built on the whole core: the package's names, the testing kit
    {
        "netshell",
        "netshell.testing",
        "netshell.testing.clock",
        "netshell.testing.pytest_plugin",
        "netshell.testing.recording",
        "netshell.testing.results",
        "netshell.testing.transports",
    },
]

#: (importer, imported) pairs allowed inside a function: for start-up time, since
#: netshell.tls and netshell.tls_layer load pyOpenSSL and cryptography at import.
LAZY = {
    ("netshell.reactor", "netshell.tls"),  # connect_tls's default client context
    ("netshell.endpoints", "netshell.tls"),  # "tls:..." endpoints
    ("netshell.transport", "netshell.tls_layer"),  # start_tls and TLS connections
}

#: (importer, imported) pairs allowed to reach above the core, inside a function only:
#: ``%load_ext netshell`` looks for its hooks on the package itself, which hands over to
#: the extension in netshell.kernel when (and only when) IPython calls them.
EXTENSION_HOOKS = {("netshell", "netshell.kernel")}

#: Subpackages built on the core (DESIGN.md: cli -> shell, runner, kernel, teach -> protocols).
ABOVE_THE_CORE = {"shell", "app", "kernel", "teach", "cli", "runner"}


class Import(NamedTuple):
    importer: str
    line: int
    target: str  # a module of the core, or another netshell.* name (above the core)
    nested: bool  # inside a function


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(
    nodes: Iterable[ast.AST], nested: bool
) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, nested
        elif isinstance(node, ast.If) and is_type_checking(node):
            yield from _statements(node.orelse, nested)
        else:
            inner = nested or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from _statements(ast.iter_child_nodes(node), inner)


def imports_of(
    source: str, module: str, known: Iterable[str], is_package: bool = False
) -> list[Import]:
    """The imports of netshell modules in ``source`` (the text of ``module``).

    ``from a import b`` names the module ``a.b`` when that is one of ``known``, else ``a``;
    relative imports are resolved; imports of anything outside netshell are left out.
    """
    known = set(known)
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node, nested in _statements(ast.parse(source).body, False):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in dict.fromkeys(targets):
            if target == "netshell" or target.startswith("netshell."):
                found.append(Import(module, node.lineno, target, nested))
    return found


def layer_of(name: str, layers: list[set[str]]) -> int:
    """The layer of a core module; anything else of netshell's lies above them all."""
    for number, modules in enumerate(layers):
        if name in modules:
            return number
    return len(layers)


def upward_imports(imports: Iterable[Import], layers: list[set[str]]) -> list[str]:
    """Rule (b): each import of a module of a higher layer than the importer's."""
    return [
        f"{i.importer}:{i.line} imports {i.target} (layer {layer_of(i.target, layers)}), "
        f"above its own layer {layer_of(i.importer, layers)}"
        for i in imports
        if layer_of(i.target, layers) > layer_of(i.importer, layers)
    ]


def nested_imports(
    imports: Iterable[Import], core: Iterable[str], lazy: set[tuple[str, str]]
) -> list[str]:
    """Rule (c): each import of a core module inside a function, but for ``lazy``."""
    core = set(core)
    return [
        f"{i.importer}:{i.line} imports {i.target} inside a function"
        for i in imports
        if i.nested and i.target in core and (i.importer, i.target) not in lazy
    ]


def cycles(imports: Iterable[Import], core: Iterable[str]) -> list[list[str]]:
    """Rule (a): the import cycles among ``core`` (strongly connected parts, Tarjan)."""
    core = set(core)
    graph: Mapping[str, set[str]] = {name: set() for name in core}
    for i in imports:
        if i.importer in core and i.target in core:
            graph[i.importer].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1 or v in graph[v]:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def check(
    sources: Mapping[str, tuple[str, bool]],
    layers: list[set[str]],
    lazy: set[tuple[str, str]],
    hooks: Collection[tuple[str, str]] = (),
) -> list[str]:
    """Every offence against rules (a), (b), (c) in ``sources`` (module -> (text, is_package)).

    ``hooks`` are the (importer, imported) pairs allowed to import upward inside a function.
    """
    imports = [
        i
        for name, (text, is_package) in sources.items()
        for i in imports_of(text, name, sources, is_package)
        if not (i.nested and (i.importer, i.target) in hooks)
    ]
    return [
        *(f"import cycle: {' <-> '.join(part)}" for part in cycles(imports, sources)),
        *upward_imports(imports, layers),
        *nested_imports(imports, sources, lazy),
    ]


# ---- the real core


def core_sources() -> dict[str, tuple[str, bool]]:
    found = {}
    for path in sorted(NETSHELL.rglob("*.py")):
        parts = path.relative_to(NETSHELL).with_suffix("").parts
        if parts[0] in ABOVE_THE_CORE:
            continue
        name = ".".join(("netshell", *parts)).removesuffix(".__init__")
        found[name] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return found


def test_every_core_module_has_its_layer() -> None:
    names = set(core_sources())
    placed = set().union(*LAYERS)
    assert names - placed == set(), "put each new core module in LAYERS (and docs/architecture.md)"
    assert placed - names == set(), "LAYERS names a module that does not exist"
    assert sum(map(len, LAYERS)) == len(placed), "a module is in two layers"


def test_the_core_imports_go_one_way() -> None:
    assert check(core_sources(), LAYERS, LAZY, EXTENSION_HOOKS) == []


def test_the_extension_hooks_reach_up_only_inside_their_functions() -> None:
    sources = core_sources()
    source = sources["netshell"][0]
    hooks = [i for i in imports_of(source, "netshell", sources, True)
             if (i.importer, i.target) in EXTENSION_HOOKS]
    assert hooks and all(i.nested for i in hooks)
    # at module level the same import is an offence
    moved = {**sources, "netshell": (source + "\nimport netshell.kernel\n", True)}
    assert any("imports netshell.kernel" in o
               for o in check(moved, LAYERS, LAZY, EXTENSION_HOOKS))


def test_the_allowed_lazy_imports_are_there_and_say_why() -> None:
    sources = core_sources()
    lazy_found = set()
    for name, (text, is_package) in sources.items():
        lines = text.splitlines()
        for i in imports_of(text, name, sources, is_package):
            if i.nested and (i.importer, i.target) in LAZY:
                lazy_found.add((i.importer, i.target))
                before = "\n".join(lines[max(0, i.line - 4) : i.line - 1])
                assert "start-up time" in before, f"{name}:{i.line}: say why it is lazy"
    assert lazy_found == LAZY  # an exception nobody needs any more goes from LAZY


def test_the_bottom_module_imports_nothing_of_netshell() -> None:
    sources = core_sources()
    text, _ = sources["netshell.current"]
    assert [i for i in imports_of(text, "netshell.current", sources) if not i.nested] == []


def test_netsh_run_without_tls_loads_no_openssl(tmp_path: Path) -> None:
    # What the lazy TLS imports are for: the headless path never loads pyOpenSSL.
    script = tmp_path / "look.py"
    script.write_text(
        "import json, sys\n"
        "heavy = {'OpenSSL', 'cryptography', 'service_identity'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    netsh = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "sys.argv = ['netsh', 'run', sys.argv[1]]\n"
        "sys.exit(entry_points(group='console_scripts')['netsh'].load()())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", netsh, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# ---- the checker itself, on small sources

TOY_LAYERS = [{"pkg.low"}, {"pkg.mid"}, {"pkg.top"}]


def toy(**modules: str) -> dict[str, tuple[str, bool]]:
    return {f"pkg.{name}": (text, False) for name, text in modules.items()}


def toy_check(
    sources: dict[str, tuple[str, bool]], lazy: frozenset[tuple[str, str]] = frozenset()
) -> list[str]:
    renamed = {name.replace("pkg.", "netshell."): v for name, v in sources.items()}
    layers = [{n.replace("pkg.", "netshell.") for n in layer} for layer in TOY_LAYERS]
    lazy = {(a.replace("pkg.", "netshell."), b.replace("pkg.", "netshell.")) for a, b in lazy}
    return [line.replace("netshell.", "pkg.") for line in check(renamed, layers, lazy)]


def test_a_clean_toy_passes() -> None:
    sources = toy(
        low="import os\n",
        mid="from netshell.low import x\n",
        top="import netshell.mid\nfrom netshell import low\n",
    )
    assert toy_check(sources) == []


def test_rule_a_finds_a_cycle_within_one_layer() -> None:
    layers = [{"netshell.a", "netshell.b"}]
    sources = {
        "netshell.a": ("from netshell.b import y\n", False),
        "netshell.b": ("from netshell import a\n", False),
    }
    assert check(sources, layers, set()) == ["import cycle: netshell.a <-> netshell.b"]


def test_rule_b_finds_an_upward_import() -> None:
    sources = toy(low="from netshell.top import T\n", mid="", top="")
    assert toy_check(sources) == ["pkg.low:1 imports pkg.top (layer 2), above its own layer 0"]


def test_rule_b_counts_netshell_above_the_core_as_highest() -> None:
    sources = toy(low="", mid="from netshell.shell.display import table\n", top="")
    assert toy_check(sources) == [
        "pkg.mid:1 imports pkg.shell.display (layer 3), above its own layer 1"
    ]


def test_a_function_level_import_to_dodge_a_cycle_breaks_all_three_rules() -> None:
    sources = toy(
        low="def later():\n    from netshell.top import T\n    return T\n",
        mid="",
        top="from netshell.low import later\n",
    )
    assert toy_check(sources) == [
        "import cycle: pkg.low <-> pkg.top",
        "pkg.low:2 imports pkg.top (layer 2), above its own layer 0",
        "pkg.low:2 imports pkg.top inside a function",
    ]


def test_rule_c_finds_an_import_inside_a_function_even_downward() -> None:
    sources = toy(
        low="",
        mid="",
        top="class A:\n    async def m(self):\n        import netshell.low\n",
    )
    assert toy_check(sources) == ["pkg.top:3 imports pkg.low inside a function"]
    assert toy_check(sources, lazy={("pkg.top", "pkg.low")}) == []


def test_rule_c_leaves_imports_from_outside_netshell_alone() -> None:
    sources = toy(low="def f():\n    import uvloop\n    from OpenSSL import SSL\n", mid="", top="")
    assert toy_check(sources) == []


def test_type_checking_blocks_are_left_out_but_their_else_is_not() -> None:
    source = (
        "import typing\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from netshell.top import T\n"
        "if typing.TYPE_CHECKING:\n    import netshell.top\n"
        "else:\n    import netshell.mid\n"
    )
    assert imports_of(source, "netshell.low", ["netshell.top", "netshell.mid"]) == [
        Import("netshell.low", 8, "netshell.mid", False)
    ]


def test_from_package_import_names_a_submodule_or_the_package() -> None:
    source = "from netshell import defer, Deferred\nfrom netshell.reactor import reactor\n"
    known = ["netshell", "netshell.defer", "netshell.reactor"]
    assert [i.target for i in imports_of(source, "netshell.x", known)] == [
        "netshell.defer",
        "netshell",
        "netshell.reactor",
    ]


def test_relative_imports_are_resolved() -> None:
    known = ["netshell.testing", "netshell.testing.clock", "netshell.defer"]
    source = "from .clock import Clock\nfrom .. import defer\n"
    assert [i.target for i in imports_of(source, "netshell.testing", known, is_package=True)] == [
        "netshell.testing.clock",
        "netshell.defer",
    ]
    assert [
        i.target for i in imports_of("from . import clock\n", "netshell.testing.results", known)
    ] == ["netshell.testing.clock"]


def test_the_real_core_with_an_upward_import_added_by_hand_fails() -> None:
    sources = core_sources()
    text, is_package = sources["netshell.defer"]
    sources["netshell.defer"] = (text + "\nfrom netshell.reactor import Reactor\n", is_package)
    offences = check(sources, LAYERS, LAZY)
    assert any(o.startswith("import cycle: ") and "netshell.defer" in o for o in offences)
    assert any(
        o.startswith("netshell.defer:") and "imports netshell.reactor (layer 6)" in o
        for o in offences
    )


def test_the_real_core_with_a_function_level_import_added_fails() -> None:
    sources = core_sources()
    text, is_package = sources["netshell.protocol"]
    dodge = "\n\ndef _later():\n    from netshell.transport import Listener\n    return Listener\n"
    sources["netshell.protocol"] = (text + dodge, is_package)
    offences = check(sources, LAYERS, LAZY)
    line = len(text.splitlines()) + 4
    assert [o for o in offences if "inside a function" in o] == [
        f"netshell.protocol:{line} imports netshell.transport inside a function"
    ]


# ---- a module's underscore names are its own
#
# No module directly in netshell/ uses another module's private names (x._name, getattr(x,
# "_name"), from m import _name): what one module offers another is public and documented
# (Reactor.add_connection, Listener.remove_connection, Factory.start_use, ...), or passed
# explicitly (a TLSConnection gets the transport's deliver, attach, ... as callables).
# The checker knows a module's own names only by name, not by class, so it errs on the
# side of passing; the few exceptions are below, each with its reason.

#: The private names of other modules (and libraries) that a core module may use, each
#: with its reason: (module, the use as the checker writes it) -> why.
PRIVATE_USES_ALLOWED = {
    ("netshell.current", "asyncio._get_running_loop"): (
        "the fast lookup of the running loop: the public asyncio.get_running_loop raises "
        "where no loop runs, and get_reactor() asks on every call"
    ),
    ("netshell.current", "local._loop"): (
        "_thread_loop(): the loop set for this thread, read from the default policy's "
        "record (its _local._loop), since asyncio.get_event_loop() would make one (its "
        "docstring says so)"
    ),
    ("netshell.tls_layer", "conn._ssl"): (
        "_session_reused(): pyOpenSSL has no public way to ask whether a session was "
        "resumed (its docstring says so; None if the internals change)"
    ),
    ("netshell.tls_layer", "from OpenSSL._util import lib"): "_session_reused(), as above",
    ("netshell.listener", "sock._accept"): (
        "Listener._accept_waiting(): what socket.accept() does (it calls _accept() itself), "
        "without asking the listening socket its family and type, two enum conversions, "
        "for every connection accepted"
    ),
}


class PrivateUse(NamedTuple):
    module: str
    line: int
    text: str  # "x._name", "from m import _name"

    def __str__(self) -> str:
        return f"{self.module}:{self.line} uses {self.text}"


def is_private(name: str) -> bool:
    """One leading underscore (``_name``, ``__name``), but not a dunder (``__name__``)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def own_names(tree: ast.Module) -> set[str]:
    """The names a module defines itself: functions, classes and methods, names assigned
    anywhere in it, attributes assigned on ``self`` or ``cls``, and ``__slots__`` entries."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__slots__" for target in node.targets
        ):
            names.update(
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
    return names


def module_aliases(tree: ast.Module, modules: Iterable[str]) -> set[str]:
    """The names a module binds to other modules: ``import a.b`` (``a``), ``import a as x``,
    and ``from netshell import observe as _observe`` when ``netshell.observe`` is a module."""
    modules = set(modules) | set(sys.modules)
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(a.asname or a.name.partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            aliases.update(
                a.asname or a.name for a in node.names if f"{node.module}.{a.name}" in modules
            )
    return aliases


def private_uses(source: str, module: str, modules: Iterable[str] = ()) -> list[PrivateUse]:
    """Where ``source`` (the text of ``module``) uses a private name of another module.

    That is ``x._name`` (or ``getattr(x, "_name")``, ``hasattr``, ``setattr``) where ``x``
    is not ``self``/``cls`` and the module does not define ``_name`` itself, or ``x`` is
    another module (an alias of it: ``_observe.notify`` is fine, ``_observe._x`` is not);
    and ``from m import _name`` or an import from a private module (``m._util``).
    """
    tree = ast.parse(source)
    own = own_names(tree)
    aliases = module_aliases(tree, modules)
    found = []

    def attribute(node: ast.AST, obj: ast.expr, name: str) -> None:
        if not is_private(name):
            return
        if isinstance(obj, ast.Name):
            if obj.id in aliases:
                found.append(PrivateUse(module, node.lineno, f"{obj.id}.{name}"))
                return
            if obj.id in ("self", "cls"):
                return
        if name not in own:
            found.append(PrivateUse(module, node.lineno, f"{ast.unparse(obj)}.{name}"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            attribute(node, node.value, node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            attribute(node, node.args[0], node.args[1].value)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            private_module = any(is_private(part) for part in (node.module or "").split("."))
            for a in node.names:
                if private_module or is_private(a.name):
                    text = f"from {node.module} import {a.name}"
                    found.append(PrivateUse(module, node.lineno, text))
    return sorted(found)


def top_level_core() -> dict[str, str]:
    """The modules directly in netshell/ (the core package, not its subpackages)."""
    return {
        name: text
        for name, (text, _) in core_sources().items()
        if name == "netshell" or name.count(".") == 1
    }


def offences(sources: Mapping[str, str]) -> list[str]:
    """Each private use in ``sources`` (module -> text) that PRIVATE_USES_ALLOWED does not
    name, as "module:line uses x._name"."""
    return [
        str(use)
        for name, text in sources.items()
        for use in private_uses(text, name, sources)
        if (use.module, use.text) not in PRIVATE_USES_ALLOWED
    ]


def test_no_core_module_uses_another_modules_private_names() -> None:
    assert offences(top_level_core()) == []


def test_the_allowed_private_uses_are_there_and_say_why() -> None:
    sources = top_level_core()
    found = {
        (use.module, use.text)
        for name, text in sources.items()
        for use in private_uses(text, name, sources)
    }
    assert set(PRIVATE_USES_ALLOWED) <= found  # an exception nobody needs any more goes
    assert all(why.strip() for why in PRIVATE_USES_ALLOWED.values())


def test_the_real_core_with_a_private_use_added_by_hand_fails() -> None:
    sources = top_level_core()
    text = sources["netshell.connector"]
    peek = "\n\ndef _peek(t):\n    return t._held, t.listener._connections\n"
    sources["netshell.connector"] = text + peek
    line = len(text.splitlines()) + 4
    assert offences(sources) == [
        f"netshell.connector:{line} uses t._held",
        f"netshell.connector:{line} uses t.listener._connections",
    ]


# ---- the private-use checker itself, on small sources


def uses(source: str, modules: Iterable[str] = ("netshell.observe",)) -> list[str]:
    return [use.text for use in private_uses(source, "netshell.x", modules)]


def test_another_objects_private_name_is_found() -> None:
    assert uses("def f(t):\n    t._held.append(t._t)\n") == ["t._held", "t._t"]
    assert uses("class A:\n    def f(self):\n        self._reactor._add(self)\n") == [
        "self._reactor._add"
    ]


def test_self_cls_dunders_and_the_modules_own_names_are_fine() -> None:
    source = (
        "class A:\n"
        "    __slots__ = ('_slot',)\n"
        "    _counter = 0\n"
        "    def __init__(self):\n"
        "        self._x = 1\n"
        "    def _run(self):\n"
        "        return type(self).__name__, self.__class__\n"
        "    @classmethod\n"
        "    def make(cls):\n"
        "        return cls._counter\n"
        "def f(a, b):\n"
        "    a._run(); return a._x + b._slot + A._counter\n"
    )
    assert uses(source) == []


def test_a_module_alias_is_judged_by_the_name_after_it() -> None:
    source = (
        "from netshell import observe as _observe\n"
        "import asyncio\n"
        "_registry = {}\n"
        "def f(t):\n"
        "    if _observe.data_in:\n"
        "        _observe.notify('data_in', t)\n"
        "    return _observe._registry, asyncio._get_running_loop\n"
    )
    # _registry is a name of this module too, but _observe._registry is observe's
    assert uses(source) == ["_observe._registry", "asyncio._get_running_loop"]


def test_getattr_with_a_private_name_and_private_imports_are_found() -> None:
    source = (
        "from netshell.transport import StreamTransport, _address\n"
        "from OpenSSL._util import lib\n"
        "from . import _relative_is_one_package\n"
        "def f(factory):\n"
        "    return getattr(factory, '_call', None), getattr(factory, 'retry_pending')\n"
    )
    assert uses(source) == [
        "from netshell.transport import _address",
        "from OpenSSL._util import lib",
        "factory._call",
    ]
