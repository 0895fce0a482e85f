"""A real ``netshell`` kernel: a connection's output stays with the cell that started it,
whichever later cell pauses and resumes it, closes it, or fires the Deferred its HTTP
handler returned (issue 16).

Cell 1 starts a listener whose protocol prints what it hears and when it is lost, and an
HTTP app whose route answers with a Deferred it keeps. Later cells resume the paused
connection, fire the route's Deferred and close the connection: each print, and the
request's log line, is cell 1's output (its iopub message has cell 1 as parent), not the
cell that set it off. Every wait is on a message, with a timeout.
"""

from __future__ import annotations

import socket

from conftest import WAIT, Kernel, parent_of

CELL_1 = """\
class Loud(Protocol):
    def data_received(self, data):
        print("loud heard", data.decode())

    def connection_lost(self, reason):
        print("loud lost", reason.type.__name__)

answers = []
app = http.App()

@app.route("/later")
def later(request):
    d = Deferred()
    answers.append(d)
    print("later asked")
    return d

loud = listen(0, Loud)
site = http.serve(app)
loud.port, site.port
"""


def test_a_connection_prints_into_its_cell_whichever_cell_resumes_closes_or_answers(
        kernel: Kernel):
    cell1, out = kernel.run(CELL_1)
    loud_port, site_port = eval(out.strip().splitlines()[-1])
    with socket.create_connection(("127.0.0.1", loud_port), timeout=WAIT) as loud, \
            socket.create_connection(("127.0.0.1", site_port), timeout=WAIT) as web:
        loud.sendall(b"one")
        assert parent_of(kernel.wait_for_text("loud heard one")) == cell1

        # Paused in cell 2 and resumed in cell 3: what comes next is still cell 1's.
        kernel.run("c = loud.connections[0]\nc.pause_reading()")
        loud.sendall(b"two")
        cell3, _ = kernel.run("c.resume_reading()")
        assert parent_of(kernel.wait_for_text("loud heard two")) == cell1
        loud.sendall(b"three")  # and after, while no cell runs
        assert parent_of(kernel.wait_for_text("loud heard three")) == cell1

        # The route's Deferred, fired by cell 4: the answer's log line is cell 1's.
        web.sendall(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
        assert parent_of(kernel.wait_for_text("later asked")) == cell1
        cell4, _ = kernel.run("answers.pop().callback('answered later')")
        logged = kernel.wait_for_text('"GET /later HTTP/1.1" 200')
        assert parent_of(logged) == cell1
        answer = b""
        while not answer.endswith(b"answered later"):
            chunk = web.recv(4096)
            assert chunk, answer
            answer += chunk

        # Closed by cell 5: connection_lost prints into cell 1.
        cell5, _ = kernel.run("c.close()")
        assert parent_of(kernel.wait_for_text("loud lost ConnectionDone")) == cell1
        # None of it went to the cells that set it off.
        for cell in (cell3, cell4, cell5):
            assert kernel.output(cell) == "", (cell, kernel.output(cell))
