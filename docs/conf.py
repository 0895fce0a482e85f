"""Sphinx configuration for the netshell documentation (Markdown pages, via MyST)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _version() -> str:
    # Read netshell.__version__ without importing the package.
    tree = ast.parse((ROOT / "netshell" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise RuntimeError("netshell/__init__.py defines no __version__")


project = "netshell"
author = "the netshell authors"
copyright = "the netshell authors"
release = _version()
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence"]
# Headings up to level 3 get anchors, so pages can link to [a section](#a-section).
myst_heading_anchors = 3

pygments_style = "sphinx"
html_theme = "alabaster"
html_title = f"netshell {release}"


def setup(app):  # type: ignore[no-untyped-def]
    # ```netsh blocks are recorded prompt sessions: "[1]> " inputs, "...." continuations,
    # and output. They are highlighted here and replayed by tests/docs_runner.py.
    from pygments.lexer import RegexLexer, bygroups, using
    from pygments.lexers.python import PythonLexer
    from pygments.token import Generic

    class NetshSessionLexer(RegexLexer):
        name = "netsh session"
        aliases = ["netsh"]
        tokens = {
            "root": [
                (r"^(\[\d+\]> ?)(.*\n?)", bygroups(Generic.Prompt, using(PythonLexer))),
                (r"^(\.{4,} ?)(.*\n?)", bygroups(Generic.Prompt, using(PythonLexer))),
                (r".+\n?|\n", Generic.Output),  # never an empty match: it would never advance
            ]
        }

    app.add_lexer("netsh", NetshSessionLexer)
    # ```netsh-cli blocks are shell sessions, run by tests/docs_runner.py too.
    from pygments.lexers.shell import BashSessionLexer

    app.add_lexer("netsh-cli", BashSessionLexer)
