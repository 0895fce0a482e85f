"""``%load_ext netshell`` / ``%unload_ext netshell`` in a kernel, and ``netsh kernel
install|uninstall``.

Unloading closes the listeners and connections and takes out the names, the Deferred
display and the short errors; loading again brings them back, on the same running loop.
The kernelspec is installed with the real command line into a temporary prefix, found by
``jupyter kernelspec list``, and removed again.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, WAIT, Kernel


def test_unload_closes_servers_and_takes_the_names_out_and_load_brings_them_back(
    kernel: Kernel, tmp_path: Path
):
    (tmp_path / "f.txt").write_text("served")
    _, out = kernel.run(f"import asyncio\nloop = asyncio.get_running_loop()\n"
                        f"site = http.serve({str(tmp_path)!r}); d = Deferred(); site.port")
    port = int(out.strip())
    assert "text/html" in result_of(kernel, kernel.run("d")[0])  # a Deferred drawn
    _, out = kernel.run("import protocols.http.client as hc\n"
                        "f'_d{d.number}' in globals(), hc.make_progress is hc.no_progress")
    assert out.strip() == "(True, False)"  # bound when shown; the shell's progress bar
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/f.txt", timeout=WAIT) as r:
        assert r.read() == b"served"
    # a connection left open: unloading closes it too
    client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)

    # conns() and listeners(): the text/plain a notebook keeps is plain, no ANSI colours
    for table in ("conns()", "listeners()"):
        data = result_of(kernel, kernel.run(table)[0])
        assert "<table" in data["text/html"]
        assert data["text/plain"].split()[0] == "id", data["text/plain"]
        assert "\x1b" not in data["text/plain"], data["text/plain"]
    # A capture's text/plain in the notebook is limited as its diagrams are
    shown, _ = kernel.run(
        "from types import SimpleNamespace\nfrom netshell.shell.tracing import Capture\n"
        "cap = Capture(); t = SimpleNamespace(number=1, host='10.0.0.1:80', "
        "peer='10.0.0.2:5000', listener=object())\n"
        "for _ in range(4999): cap.data(t, 'out', b'ab')\ncap")  # and its "already open"
    lines = result_of(kernel, shown)["text/plain"].splitlines()
    assert len(lines) == 1 + 200 + 1
    assert lines[-1].startswith("  ... and 4,800 more events, not drawn")
    # and explain(d)'s text: the first 100 and last 20 of 500 steps, as its drawing
    shown, _ = kernel.run("long = Deferred()\nfor _ in range(500): long.add_callback(str)\n"
                          "explain(long)")
    data = result_of(kernel, shown)
    lines = data["text/plain"].splitlines()
    assert len(lines) == 1 + 100 + 1 + 20 + 1, lines[:3]  # and what it waits for
    assert lines[101] == "  ... 380 more steps, not shown (print(explain(d)) shows them)"
    assert lines[-2].lstrip().startswith("500. callback str")
    assert data["text/html"].count('class="step"') == 120
    _, out = kernel.run("%unload_ext netshell\n"
                        "[n for n in ('listen', 'reactor', 'conns', 'http', 'watch')"
                        " if n in globals()]")
    assert out.strip() == "[]"
    # the _dN name bound when d was shown goes too, and the progress display is the
    # library's own again
    _, out = kernel.run("f'_d{d.number}' in globals(), hc.make_progress is hc.no_progress")
    assert out.strip() == "(False, True)"
    # and a capture's text is all of it again (IPython shows its _repr_mimebundle_)
    shown, _ = kernel.run("cap")
    assert len(result_of(kernel, shown)["text/plain"].splitlines()) == 5001
    assert client.recv(10) == b""  # closed by the kernel
    client.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/f.txt", timeout=WAIT)
    # A Deferred displayed is no longer bound to _dN and watched, nor drawn.
    shown, _ = kernel.run("import netshell; d2 = netshell.Deferred(); d2")
    assert "text/html" not in result_of(kernel, shown)
    _, out = kernel.run("f'_d{d2.number}' in globals()")
    assert out.strip() == "False"
    msg_id = kernel.execute("1 / 0")
    reply = kernel.reply(msg_id)
    assert reply["status"] == "error"
    # IPython's own traceback again, with its banner of dashes
    assert any("-----" in line for line in reply["traceback"]), reply["traceback"]

    _, out = kernel.run("%load_ext netshell\n"
                        f"site = http.serve({str(tmp_path)!r}); reactor.loop is loop, d2")
    assert out.strip().startswith("(True, <Deferred #")
    _, out = kernel.run("f'_d{d2.number}' in globals()")
    assert out.strip() == "True"
    assert "text/html" in result_of(kernel, kernel.run("d2")[0])  # drawn again
    msg_id = kernel.execute("1 / 0")
    reply = kernel.reply(msg_id)
    # the short form again: no IPython frame banner
    assert reply["status"] == "error"
    assert not any("-----" in line for line in reply["traceback"]), reply["traceback"]


def result_of(kernel: Kernel, msg_id: str) -> dict[str, str]:
    """The data (mimetype -> content) of the cell's execute_result."""
    msg = kernel.wait_for(lambda m: m["msg_type"] == "execute_result"
                          and m["parent_header"].get("msg_id") == msg_id)
    return msg["content"]["data"]


def netsh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netshell.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_netsh_kernel_install_and_uninstall(tmp_path: Path):
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter")}
    done = netsh("kernel", "install", "--prefix", str(tmp_path), "--name", "ns-test",
                 "--display-name", "Netshell test", env=env)
    assert done.returncode == 0, done.stderr
    where = tmp_path / "share" / "jupyter" / "kernels" / "ns-test"
    assert done.stdout.startswith(f"Installed kernelspec ns-test in {where}")
    spec = json.loads((where / "kernel.json").read_text())
    assert spec["display_name"] == "Netshell test"
    assert spec["argv"] == [sys.executable, "-m", "ipykernel_launcher", "-f",
                            "{connection_file}", "--ext=netshell"]
    for size in (32, 64):
        png = (where / f"logo-{size}x{size}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert int.from_bytes(png[16:20], "big") == size  # IHDR width
        assert int.from_bytes(png[20:24], "big") == size  # and height

    listed = subprocess.run([sys.executable, "-m", "jupyter_client.kernelspecapp", "list",
                             "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    kernelspecs = json.loads(listed.stdout)["kernelspecs"]
    assert kernelspecs["ns-test"]["resource_dir"] == str(where)

    done = netsh("kernel", "uninstall", "--prefix", str(tmp_path), "--name", "ns-test", env=env)
    assert done.returncode == 0, done.stderr
    assert not where.exists()
    done = netsh("kernel", "uninstall", "--prefix", str(tmp_path), "--name", "ns-test", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("netsh kernel: no kernelspec 'ns-test' in ")


def foreign_spec(where: Path) -> None:
    """A kernelspec netshell did not install (ipykernel's python3, say), with an extra file."""
    where.mkdir(parents=True)
    (where / "kernel.json").write_text(json.dumps(
        {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Python 3", "language": "python", "metadata": {"debugger": True}}))
    (where / "extra.txt").write_text("theirs")


@pytest.mark.parametrize("name", ["python3", "netshell"])
def test_netsh_kernel_install_and_uninstall_leave_a_foreign_spec_alone(tmp_path: Path,
                                                                       name: str):
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter")}
    where = tmp_path / "share" / "jupyter" / "kernels" / name
    foreign_spec(where)
    before = {p.name: p.read_bytes() for p in where.iterdir()}
    for action in ("install", "uninstall"):
        done = netsh("kernel", action, "--prefix", str(tmp_path), "--name", name, env=env)
        assert done.returncode == 1, (action, done.stdout, done.stderr)
        assert done.stderr.startswith(f"netsh kernel: {where} is a kernelspec netshell did "
                                      "not install"), done.stderr
        assert {p.name: p.read_bytes() for p in where.iterdir()} == before
    # its own spec there is replaced by an install, and removed by an uninstall
    mine = tmp_path / "share" / "jupyter" / "kernels" / "mine"
    for display in ("First", "Second"):
        done = netsh("kernel", "install", "--prefix", str(tmp_path), "--name", "mine",
                     "--display-name", display, env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads((mine / "kernel.json").read_text())["display_name"] == display
    done = netsh("kernel", "uninstall", "--prefix", str(tmp_path), "--name", "mine", env=env)
    assert done.returncode == 0, done.stderr
    assert not mine.exists()


def test_netsh_kernel_uninstall_without_a_place_removes_what_install_without_one_made(
    tmp_path: Path
):
    """Both default to the user's Jupyter data dir, even when another netshell spec of that
    name comes first on Jupyter's path."""
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    done = netsh("kernel", "install", "--prefix", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    in_prefix = tmp_path / "share" / "jupyter" / "kernels" / "netshell"
    done = netsh("kernel", "install", env=env)
    assert done.returncode == 0, done.stderr
    in_user = tmp_path / "data" / "kernels" / "netshell"
    assert (in_user / "kernel.json").is_file()
    done = netsh("kernel", "uninstall", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Removed kernelspec netshell from {in_user}")
    assert not in_user.exists()
    assert (in_prefix / "kernel.json").is_file()


def test_threads_carry_the_cell_nests_and_puts_threading_back():
    """In-process: while on, a thread or pool job started with ``current_cell`` set sees
    the starter's context variables, one started outside any cell's work does not; two
    users nest, and only the last undo (in either order) restores threading."""
    import concurrent.futures
    import contextvars
    import threading

    from netshell.kernel.extension import threads_carry_the_cell
    from netshell.shell.ipython import current_cell

    start, submit = threading.Thread.start, concurrent.futures.ThreadPoolExecutor.submit
    mark: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="none")

    def seen_by_a_thread() -> str:
        got: list[str] = []
        t = threading.Thread(target=lambda: got.append(mark.get()))
        t.start()
        t.join(WAIT)
        return got[0]

    def in_a_cell() -> tuple[str, str]:
        current_cell.set(1)
        mark.set("cell 1")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return seen_by_a_thread(), pool.submit(mark.get).result(WAIT)

    def outside() -> str:
        mark.set("no cell")
        return seen_by_a_thread()

    first = threads_carry_the_cell()
    second = threads_carry_the_cell()
    try:
        assert contextvars.Context().run(in_a_cell) == ("cell 1", "cell 1")
        assert contextvars.Context().run(outside) == "none"
        first()
        first()  # twice does nothing
        assert threading.Thread.start is not start  # the second still wants it
        assert contextvars.Context().run(in_a_cell) == ("cell 1", "cell 1")
    finally:
        second()
    assert threading.Thread.start is start
    assert concurrent.futures.ThreadPoolExecutor.submit is submit
    assert contextvars.Context().run(in_a_cell) == ("none", "none")


@pytest.mark.parametrize("action", ["install", "uninstall"])
def test_an_empty_prefix_is_refused_not_taken_for_the_users_place(action: str, tmp_path: Path):
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "JUPYTER_DATA_DIR": str(home / "data")}
    done = netsh("kernel", action, "--prefix", "", "--name", "ns-empty", env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--prefix needs a directory" in done.stderr
    assert not home.exists()  # nothing installed (or removed) for the user instead
