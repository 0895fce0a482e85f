"""A real ``netshell`` kernel: servers run between cells, and output goes to the cell that
started the work, also after that cell finished and while another runs.

One kernel plays a whole session, as a person in a notebook would: cell 1 starts an HTTP
server and a TCP listener whose protocol prints, a timer and a thread job; the test process
fetches from the server while no cell runs; cell 2 awaits a Deferred a timer fires; while
cell 3 awaits, a connection to cell 1's listener prints (into cell 1) and wakes cell 3
(whose own print goes to cell 3); an interrupt cancels ``await sleep(30)`` and leaves the
servers running; a cell blocked in plain code gets KeyboardInterrupt; the kernel restarts
cleanly and the ports are free. Every wait is on a message, with a timeout.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request

from conftest import WAIT, Kernel, parent_of
from jupyter_client.manager import KernelManager, start_new_kernel

CELL_1 = """\
import threading, time
site = http.serve({root!r})

class Shout(Protocol):
    def data_received(self, data):
        print("cell 1 heard", data.decode())
        if waiting:
            waiting.pop().callback(data.decode())

waiting = []
shout = listen(0, Shout)
reactor.call_later(0.05, print, "timer of cell 1")
# work of cell 1 that cell 3 will set off: a timer moved, a thread job let go
later = reactor.call_later(3600, print, "moved timer of cell 1")
gate = threading.Event()
defer_to_thread(gate.wait, 60).add_callback(lambda _: print("thread job of cell 1"))
site.port, shout.port
"""


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=WAIT) as r:
        return r.read()


def test_work_started_in_a_cell_prints_into_that_cell(kernel: Kernel, tmp_path):
    (tmp_path / "hello.txt").write_text("hello from the notebook")
    cell1, out = kernel.run(CELL_1.format(root=str(tmp_path)))
    site_port, shout_port = eval(out.strip().splitlines()[-1])

    # No cell runs: the server answers, and its request log goes to cell 1.
    assert fetch(site_port, "/hello.txt") == b"hello from the notebook"
    log = kernel.wait_for_text('"GET /hello.txt HTTP/1.1" 200')
    assert parent_of(log) == cell1
    # the timer cell 1 started prints into cell 1, after it finished
    assert parent_of(kernel.wait_for_text("timer of cell 1")) == cell1

    # Cell 2 awaits a Deferred that a timer fires.
    _, out = kernel.run("d = Deferred()\nreactor.call_later(0.05, d.callback, 42)\nawait d")
    assert out.strip() == "42"
    # A Deferred shown unfired is watched, as at the prompt: its note comes into its cell.
    shown, out = kernel.run("sleep(0.05).add_callback(lambda _: 7)")
    number = re.fullmatch(r"<Deferred #(\d+) pending>", out.strip()).group(1)
    note = kernel.wait_for_text(f"Deferred #{number} fired: 7")
    assert parent_of(note) == shown

    # While cell 3 awaits, cell 1's work prints into cell 1: the timer and the thread job
    # that cell 3 sets off, the server's request log, and a connection to cell 1's
    # listener, which then wakes cell 3, whose own print goes to cell 3.
    cell3 = kernel.execute("d3 = Deferred(); waiting.append(d3)\n"
                           "later.reset(0); gate.set()\n"
                           "print('cell 3 waits'); got = await d3; print('cell 3 got', got)")
    kernel.wait_for(lambda m: parent_of(m) == cell3 and "cell 3 waits" in m["content"].get(
        "text", ""))
    assert parent_of(kernel.wait_for_text("moved timer of cell 1")) == cell1
    assert parent_of(kernel.wait_for_text("thread job of cell 1")) == cell1
    assert fetch(site_port, "/hello.txt?again") == b"hello from the notebook"
    assert parent_of(kernel.wait_for_text('"GET /hello.txt?again HTTP/1.1" 200')) == cell1
    with socket.create_connection(("127.0.0.1", shout_port), timeout=WAIT) as client:
        client.sendall(b"hi")
        heard = kernel.wait_for_text("cell 1 heard hi")
        assert parent_of(heard) == cell1
        assert kernel.reply(cell3)["status"] == "ok"
    assert parent_of(kernel.wait_for_text("cell 3 got hi")) == cell3
    assert kernel.output(cell3) == "cell 3 waits\ncell 3 got hi\n"

    # A trace prints into the cell that asked for it; the protocol's own print stays cell 1's.
    traced, _ = kernel.run("trace(shout)")
    with socket.create_connection(("127.0.0.1", shout_port), timeout=WAIT) as client:
        client.sendall(b"traced")
        assert parent_of(kernel.wait_for_text("cell 1 heard traced")) == cell1
        line = kernel.wait_for(lambda m: m["msg_type"] == "stream"
                               and "traced" in m["content"]["text"]
                               and "cell 1 heard" not in m["content"]["text"])
        assert parent_of(line) == traced, line


def test_an_interrupt_cancels_the_awaiting_cell_and_leaves_the_servers(kernel: Kernel, tmp_path):
    (tmp_path / "a.txt").write_text("still here")
    # The first cell awaits (ipykernel's reply then has no earlier traceback to fall back on).
    cell = kernel.execute(f"site = http.serve({str(tmp_path)!r})\n"
                          # printed once the cell awaits (the loop's next turn): an interrupt
                          # before that would stop the cell's running code instead
                          "reactor.call_soon(print, site.port, 'waiting'); await sleep(30)")
    waiting = kernel.wait_for(lambda m: parent_of(m) == cell and "waiting" in m["content"].get(
        "text", ""))
    port = int(waiting["content"]["text"].split()[0])
    started = time.monotonic()
    kernel.km.interrupt_kernel()
    reply = kernel.reply(cell, timeout=WAIT)
    assert time.monotonic() - started < 10  # cancelled, not slept through
    assert reply["status"] == "error" and reply["traceback"] == ["Cancelled"], reply
    kernel.wait_for(lambda m: parent_of(m) == cell and m["msg_type"] == "status"
                    and m["content"]["execution_state"] == "idle")
    assert kernel.output(cell).strip().splitlines()[-1] == "Cancelled"
    assert "Traceback" not in kernel.output(cell)

    assert fetch(port, "/a.txt") == b"still here"  # the reactor and its server go on
    _, out = kernel.run("6 * 7")
    assert out.strip() == "42"

    # Plain code blocking the loop gets KeyboardInterrupt.
    cell = kernel.execute("import time\nprint('blocking')\ntime.sleep(30)")
    kernel.wait_for(lambda m: parent_of(m) == cell and "blocking" in m["content"].get(
        "text", ""))
    kernel.km.interrupt_kernel()
    reply = kernel.reply(cell)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert fetch(port, "/a.txt") == b"still here"

    # A cell that awaits runs as a task: when it then blocks the loop in plain code, the
    # interrupt stops it where it runs (ipykernel alone only asks the blocked loop to
    # cancel it, which never happens), and the loop, its server and the next cell go on.
    for blocking in ("time.sleep(60)", "while True: pass"):
        cell = kernel.execute(f"await sleep(0)\nprint('blocking after an await')\n{blocking}")
        kernel.wait_for(lambda m, cell=cell: parent_of(m) == cell
                        and "blocking after an await" in m["content"].get("text", ""))
        kernel.km.interrupt_kernel()
        reply = kernel.reply(cell)
        assert reply["status"] == "error" and reply["ename"] == "InputInterrupted", reply
        assert fetch(port, "/a.txt") == b"still here"
        _, out = kernel.run("await sleep(0); 6 * 7")
        assert out.strip() == "42"

    # A restart is clean: the new kernel has netshell again, and serves on the same port.
    kernel.km.restart_kernel(now=False)
    kernel.kc.wait_for_ready(timeout=WAIT)
    kernel.messages.clear()
    _, out = kernel.run(f"site = http.serve({str(tmp_path)!r}, port={port}); site.port")
    assert out.strip() == str(port)
    assert fetch(port, "/a.txt") == b"still here"


def test_a_log_record_no_cell_started_goes_to_the_kernels_log(tmp_path):
    log = tmp_path / "kernel.log"
    km = KernelManager(kernel_name="netshell")
    with log.open("w") as stderr:
        km.start_kernel(stderr=stderr)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=WAIT)
        kernel = Kernel(km, kc)
        _, out = kernel.run(
            "import contextvars, logging, threading\n"
            "say = logging.getLogger('netshell.test').warning\n"
            "t = threading.Thread(target=say, args=('from a thread of its own',))\n"
            "contextvars.Context().run(t.start); t.join()  # started outside any cell's work\n"
            "t = threading.Thread(target=say, args=('from a thread of the cell',))\n"
            "t.start(); t.join()\n"
            "say('from the cell')")
        assert "from the cell" in out
        assert "from a thread of the cell" in out  # a thread the cell started is its work
        assert "from a thread of its own" not in out
        _, out = kernel.run("print('the next cell')")
        assert out == "the next cell\n"
        assert not any(m["msg_type"] == "stream"
                       and "from a thread of its own" in m["content"]["text"]
                       for m in kernel.messages)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert "netshell.test: from a thread of its own" in log.read_text()


def test_a_thread_a_cell_started_prints_into_that_cell(kernel: Kernel):
    """A plain print() from a thread the user's code started goes to the cell that started
    it, also after that cell finished and while another cell runs (ipykernel alone would
    send it to whichever cell ran last); a thread pool's job goes to the cell that
    submitted it, not to the one that started the pool's worker."""
    cell1, _ = kernel.run(
        "import threading\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "go, printed, pool = threading.Event(), threading.Event(), ThreadPoolExecutor(1)\n"
        "def later():\n"
        "    go.wait(60); print('thread of cell 1'); printed.set()\n"
        "threading.Thread(target=later, daemon=True).start()\n"
        "pool.submit(print, 'pool job of cell 1').result()")
    # cell 2 lets the thread go and is still running when it prints
    cell2, out = kernel.run("go.set(); printed.wait(60)\n"
                            "pool.submit(print, 'pool job of cell 2').result()\n"
                            "print('cell 2 done')")
    assert parent_of(kernel.wait_for_text("thread of cell 1")) == cell1
    assert "thread of cell 1" not in out
    assert parent_of(kernel.wait_for_text("pool job of cell 1")) == cell1
    assert parent_of(kernel.wait_for_text("pool job of cell 2")) == cell2
    assert out == "pool job of cell 2\ncell 2 done\n"

    # %unload_ext netshell puts threading back as it was
    _, out = kernel.run(
        "import threading, concurrent.futures\n"
        "before = threading.Thread.start, concurrent.futures.ThreadPoolExecutor.submit\n"
        "%unload_ext netshell\n"
        "after = threading.Thread.start, concurrent.futures.ThreadPoolExecutor.submit\n"
        "print(before != after, after[0] is threading.Thread.__dict__['start'],\n"
        "      after[0].__module__, after[1].__module__)")
    assert out == "True True threading concurrent.futures.thread\n"


def test_work_coming_back_from_threads_and_late_notes_go_to_the_cell_that_started_them(
        kernel: Kernel):
    """``reactor.call_from_thread`` from a thread a cell started (its own, the reactor's pool,
    asyncio's executor) runs on the kernel's loop and prints into that cell; a Deferred's
    note goes to the cell that showed it, not the one that fires it; "Unhandled error in
    Deferred" goes to the cell whose work failed, not the one that runs when it is collected.
    All while another cell runs."""
    cell1, _ = kernel.run(
        "import asyncio, logging, threading\n"
        "go = threading.Event()\n"
        "def where(who):\n"
        "    main = threading.current_thread() is threading.main_thread()\n"
        "    print(who, 'came back on', 'the main thread' if main else 'another thread')\n"
        "def back(who):\n"
        "    go.wait(60)\n"
        "    reactor.call_from_thread(where, who)\n"
        "    reactor.call_from_thread(logging.getLogger('netshell.test').warning,\n"
        "                             'record of %s', who)\n"
        "own = threading.Thread(target=back, args=('own thread',), daemon=True)\n"
        "own.start()\n"
        "pool_job = defer_to_thread(back, 'pool job')\n"
        "executor_job = asyncio.get_running_loop().run_in_executor(None, back, 'executor job')\n"
        "shown = Deferred(); shown")
    number = re.search(r"<Deferred #(\d+) pending>", kernel.output(cell1)).group(1)
    failing, _ = kernel.run("bad = sleep(0.01).add_callback(lambda _: 1 / 0)\n"
                            "await sleep(0.05)")
    # Cell 3 sets all of it off, and is still running while it happens.
    cell3 = kernel.execute("go.set(); shown.callback('late')\n"
                           "del bad; import gc; gc.collect()\n"
                           "print('cell 3 waits')\n"
                           "await pool_job; await executor_job; await asyncio.to_thread(own.join)\n"
                           "print('cell 3 done')")
    for who in ("own thread", "pool job", "executor job"):
        line = kernel.wait_for_text(f"{who} came back on the main thread")
        assert parent_of(line) == cell1, (who, line)
        record = kernel.wait_for_text(f"record of {who}")
        assert parent_of(record) == cell1, (who, record)
        assert record["content"]["name"] == "stderr"
    note = kernel.wait_for_text(f"Deferred #{number} fired: 'late'")
    assert parent_of(note) == cell1
    unhandled = kernel.wait_for_text("Unhandled error in Deferred")
    assert parent_of(unhandled) == failing
    assert "ZeroDivisionError" in kernel.output(failing)
    assert kernel.reply(cell3)["status"] == "ok"
    kernel.wait_for_text("cell 3 done")  # all of the above came while cell 3 ran
    assert kernel.output(cell3) == "cell 3 waits\ncell 3 done\n"


def test_an_interrupt_cancels_what_the_cell_awaits_and_shield_keeps_another_cells_deferred(
        kernel: Kernel):
    """As asyncio cancels a task awaited by a cancelled one (and as at the netsh prompt), an
    interrupted ``await d1`` cancels d1, also when an earlier cell made it; awaiting
    ``asyncio.shield(d1)`` ends only the wait."""
    kernel.run("import asyncio\nd1 = sleep(60).add_callback(lambda _: 'slept')\n"
               "d2 = sleep(60).add_callback(lambda _: 'slept')")
    for code in ("reactor.call_soon(print, 'waiting'); await asyncio.shield(d2)",
                 "reactor.call_soon(print, 'waiting'); await d1"):
        cell = kernel.execute(code)
        kernel.wait_for(lambda m, cell=cell: parent_of(m) == cell
                        and "waiting" in m["content"].get("text", ""))
        kernel.km.interrupt_kernel()
        reply = kernel.reply(cell)
        assert reply["status"] == "error" and reply["traceback"] == ["Cancelled"], reply
        # ipykernel aborts what comes while it flushes its queue after an error: the next
        # cell goes once this one is idle
        kernel.wait_for(lambda m, cell=cell: parent_of(m) == cell and m["msg_type"] == "status"
                        and m["content"]["execution_state"] == "idle")
    _, out = kernel.run("print(d1, d2, sep='\\n')")
    assert re.fullmatch(r"<Deferred #\d+ cancelled>\n<Deferred #\d+ pending>\n", out), out


def test_the_cell_that_loads_the_extension_in_a_python3_kernel_gets_its_own_output(tmp_path):
    """``%load_ext netshell`` in a plain kernel: the work of the cell that loaded it (a
    server it starts, a warning) goes to that cell, as any later cell's does."""
    (tmp_path / "a.txt").write_text("plain kernel")
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=WAIT)
    try:
        kernel = Kernel(km, kc)
        loading, out = kernel.run(
            "%load_ext netshell\n"
            "import logging\n"
            f"site = http.serve({str(tmp_path)!r})\n"
            "logging.getLogger('netshell.test').warning('a warning of the loading cell')\n"
            "site.port")
        port = int(out.strip().splitlines()[-1])
        assert "a warning of the loading cell" in kernel.output(loading)
        assert fetch(port, "/a.txt") == b"plain kernel"
        assert parent_of(kernel.wait_for_text('"GET /a.txt HTTP/1.1" 200')) == loading
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_short_error_names_the_cells_as_ipython_does(kernel: Kernel):
    defining, _ = kernel.run("def half(n):\n    return n / 0")
    number = kernel.wait_for(lambda m: m["msg_type"] == "execute_input"
                             and parent_of(m) == defining)["content"]["execution_count"]
    msg_id = kernel.execute("half(1)")
    reply = kernel.reply(msg_id)
    text = "\n".join(reply["traceback"])
    assert reply["ename"] == "ZeroDivisionError"
    assert f"Cell In[{number}], line 2" in text, text
    assert "ipykernel_" not in text, text
