"""docs/server-in-a-notebook.ipynb, "A server in a notebook", runs with the netshell kernel.

nbclient executes the notebook against the installed ``netshell`` kernelspec (the one the
notebook's metadata names), as ``jupyter execute`` does, and the outputs are checked: the
server's port, the fetched file, the table of listeners, the awaited timer, the closed
listener, and no error anywhere.
"""

from __future__ import annotations

import re

import nbformat
from conftest import ROOT, WAIT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "docs" / "server-in-a-notebook.ipynb"


def text_of(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append(f"ERROR {out['ename']}: {out['evalue']}")
    return "".join(parts)


def test_the_server_in_a_notebook_runs_with_the_netshell_kernel(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "netshell"
    NotebookClient(nb, timeout=WAIT, kernel_name="netshell",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [text_of(c) for c in code]
    assert not any("ERROR" in o for o in outputs), outputs
    serve, fetch, table, timer, close = outputs
    port = re.fullmatch(r"serving on port (\d+)\n", serve).group(1)
    assert fetch == "(200, 'Hello from a notebook\\n')"
    assert "GET /hello.txt" not in fetch  # the request log belongs to the serving cell
    header, row = re.sub(r"\x1b\[[0-9;]*m", "", table).strip("\n").splitlines()[:2]
    assert header.split()[:3] == ["id", "kind", "local"]
    assert re.match(rf"#\d+\s+tcp\s+127\.0\.0\.1:{port}\s", row), table
    assert timer == "'fired by a timer'"
    assert close == "(no listeners)"
