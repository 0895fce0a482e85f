"""docs/server-in-a-notebook.ipynb, "A server in a notebook", runs with the netshell kernel.

nbclient executes the notebook against the installed ``netshell`` kernelspec (the one the
notebook's metadata names), as ``jupyter execute`` does, and the outputs are checked: the
server's port, the fetched file, the table of listeners, the awaited timer, the closed
listener, and no error anywhere. ``jupyter execute --kernel_name netshell`` (the CLI
nbclient installs) runs it too, into an output notebook checked the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
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
    check_server_outputs(nb)


def check_server_outputs(nb) -> None:
    """The outputs of an executed server-in-a-notebook.ipynb, cell by cell."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [text_of(c) for c in code]
    assert not any("ERROR" in o for o in outputs), outputs
    serve, fetch, table, timer, close = outputs
    port = re.fullmatch(r"serving on port (\d+)\n", serve).group(1)
    assert fetch == "(200, 'Hello from a notebook\\n')"
    # The request log belongs to the serving cell, never the fetching one. It comes after
    # the serving cell finished, and nbclient keeps only what a cell printed while it ran
    # (the notebook says so): that it reaches the serving cell of a live kernel is
    # test_kernel_output.py's to show.
    assert "GET /hello.txt" not in fetch
    header, row = re.sub(r"\x1b\[[0-9;]*m", "", table).strip("\n").splitlines()[:2]
    assert header.split()[:3] == ["id", "kind", "local"]
    assert re.match(rf"#\d+\s+tcp\s+127\.0\.0\.1:{port}\s", row), table
    assert timer == "'fired by a timer'"
    assert close == "(no listeners)"


def test_jupyter_execute_runs_the_server_in_a_notebook(tmp_path):
    """``jupyter execute --kernel_name netshell NOTEBOOK --output NAME``, the CLI nbclient
    installs, as docs/jupyter.md shows it: the output notebook holds the same outputs.
    (It runs the kernel in the notebook's folder and writes the output there: a copy in
    tmp_path keeps docs/ clean. The copy names ipykernel's plain ``python3`` kernel, so
    it is ``--kernel_name`` that picks netshell's.)"""
    notebook = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook)
    plain = nbformat.read(notebook, as_version=4)
    plain.metadata.kernelspec = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(plain, notebook)
    cli = Path(sys.executable).parent / "jupyter-execute"  # nbclient's console script
    done = subprocess.run(
        [str(cli), "--kernel_name", "netshell", f"--timeout={WAIT}",
         f"--startup_timeout={WAIT}", str(notebook), "--output", "executed"],
        capture_output=True, text=True, timeout=4 * WAIT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    executed = tmp_path / "executed.ipynb"
    assert executed.is_file(), (done.stderr, list(tmp_path.iterdir()))
    check_server_outputs(nbformat.read(executed, as_version=4))


DRAWN = ROOT / "docs" / "deferreds-drawn.ipynb"


def html_of(cell) -> str:
    return "".join(out["data"].get("text/html", "") for out in cell.get("outputs", [])
                   if out["output_type"] in ("execute_result", "display_data"))


def steps(html: str) -> list[dict[str, str]]:
    """The step rows of a drawn Deferred: their data- attributes."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(html)
    return [dict(row.attrib) for row in root.iter("tr") if row.get("class") == "step"]


@pytest.mark.parametrize("kernel_name", ["python3", "netshell"])
def test_deferreds_drawn_runs_with_the_netshell_kernel(tmp_path, kernel_name):
    """docs/deferreds-drawn.ipynb ("Deferreds, drawn"), as written for ipykernel's python3
    kernel (its first cell loads the extension), and with the netshell kernel: each shown
    Deferred is drawn (its state, a row per step, the path taken), explain(d) too."""
    nb = nbformat.read(DRAWN, as_version=4)
    NotebookClient(nb, timeout=WAIT, kernel_name=kernel_name,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [text_of(c) for c in code]
    assert not any("ERROR" in o for o in outputs), outputs
    load, pending, fired, explained_html, explained_text, waiting, done, failed, rescued = code
    if kernel_name == "python3":
        assert text_of(load) == ""  # %load_ext netshell, quietly
    else:  # the kernel loaded it as it started; loading again says so, and does nothing
        assert "already loaded" in text_of(load)
    # before firing: the steps wait
    assert 'data-state="pending"' in html_of(pending)
    # fired with 21: double and check ran, check raised, rescue handled it, len counted
    after = steps(html_of(fired))
    assert len(after) == len(steps(html_of(pending))) == 5
    assert 'data-state="fired"' in html_of(fired)
    assert "22" in text_of(fired)  # len("rescued: 42 is too big")
    drawn = steps(html_of(explained_html))  # explain(d), drawn: the same five steps
    assert [s["data-step"] for s in drawn] == [s["data-step"] for s in after]
    assert "double" in text_of(explained_text) and "rescue" in text_of(explained_text)
    assert 'data-state="waiting"' in html_of(waiting) or "waiting" in text_of(waiting)
    assert "'DONE'" in text_of(done)
    assert 'data-state="failed"' in html_of(failed)
    assert 'data-state="fired"' in html_of(rescued) and "rescued" in text_of(rescued)
