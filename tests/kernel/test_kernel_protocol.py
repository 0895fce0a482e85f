"""The ``netshell`` kernelspec speaks Jupyter's messaging protocol as a Python kernel does.

jupyter_kernel_test's KernelTests start the kernel by its kernelspec name (installed in a
temporary prefix by tests/kernel/conftest.py) and check execute, stdout and stderr, errors,
results, display data, completion, is_complete, inspect, history and the pager. The
completion and inspect samples use netshell's own names, which only a kernel that loaded
the extension has.
"""

from __future__ import annotations

from typing import Any

import jupyter_kernel_test


class TestNetshellKernel(jupyter_kernel_test.KernelTests):
    kernel_name = "netshell"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    # a name only the extension puts in the namespace
    completion_samples = [{"text": "defer_to_th", "matches": {"defer_to_thread"}}]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "help?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        # a Deferred shows as at the netsh prompt
        {"code": "succeed(42)", "result": "<Deferred #"},
    ]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
         "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
         "mime": "text/latex"},
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "listen"
    code_clear_output = "from IPython.display import clear_output; clear_output()"

    def history_helper(self, execute_first: Any, timeout: float | None = 15,
                       **histargs: Any) -> dict[str, Any]:
        reply = super().history_helper(execute_first, timeout, **histargs)
        if histargs.get("hist_access_type") == "range":
            # IPython numbers the running session 0 in a range reply (relative, as its
            # %history does), KernelTests compares with the absolute number a tail reply
            # gave: the same session either way (so the python3 kernel fails it too).
            history = reply["content"]["history"]
            assert all(entry[0] == 0 for entry in history), history
            reply["content"]["history"] = [[histargs["session"], *entry[1:]]
                                           for entry in history]
        return reply

    def test_execute_result(self) -> None:
        # KernelTests compares the whole text; a Deferred's text holds its number, so
        # compare the start.
        for sample in self.code_execute_result:
            reply, output_msgs = self.execute_helper(sample["code"])
            self.assertEqual(reply["content"]["status"], "ok")
            results = [m for m in output_msgs if m["msg_type"] == "execute_result"]
            self.assertEqual(len(results), 1)
            self.assertTrue(results[0]["content"]["data"]["text/plain"].startswith(
                sample["result"]), results[0]["content"]["data"])
