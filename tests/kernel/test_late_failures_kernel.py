"""Late failures in a real ``netshell`` kernel: the report of a chain that ended with a
failure no errback handled goes into the output of the cell whose work it was, naming that
cell, while another cell runs."""

from __future__ import annotations

import re

from conftest import Kernel, parent_of


def test_the_report_goes_to_the_cell_whose_work_failed(kernel: Kernel) -> None:
    failing, _ = kernel.run("d = sleep(0.05).add_callback(lambda _: 1 / 0)")
    # the number the notebook shows for the failing cell: In [n]
    cell = kernel.wait_for(lambda m: m["msg_type"] == "execute_input"
                           and parent_of(m) == failing)["content"]["execution_count"]
    # While another cell runs, the chain fails, and its grace (0.5s) passes.
    other = kernel.execute("await sleep(1.5)\nprint('other cell done')")
    report = kernel.wait_for_text("Unhandled error in Deferred")
    assert parent_of(report) == failing
    text = kernel.output(failing)
    assert re.search(rf"Unhandled error in Deferred #\d+ \(cell \[{cell}\]\): "
                     r"ZeroDivisionError: division by zero", text), text
    assert "1. callback <lambda>" in text and "got None, raised ZeroDivisionError" in text
    kernel.wait_for_text("other cell done")
    assert kernel.output(other) == "other cell done\n"
    # Rescued within the grace: no report.
    rescued, _ = kernel.run("r = fail(KeyError('k')); r.add_errback(lambda f: None)\n"
                            "await sleep(1)\nprint('rescued cell done')")
    assert "Unhandled" not in kernel.output(rescued)
