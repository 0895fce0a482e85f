"""The Console: what the prompt does with an input, with no terminal.

Compile with top-level await, run plain input directly and awaiting input as a
task, display the last expression, bind unfired Deferreds as ``_dN`` with a
note when they fire, and record every input in the transcript.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
from netshell.shell import chains
from netshell.shell import console as console_module
from netshell.shell.console import Console, classify, close_everything, input_entry
from netshell.shell.display import Table
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol


def names() -> dict[str, Any]:
    return {
        "Deferred": ns.Deferred,
        "succeed": ns.succeed,
        "fail": ns.fail,
        "sleep": ns.sleep,
    }


@pytest.fixture
def console() -> Iterator[Console]:
    c = Console(names())
    yield c
    c.close()


@pytest.fixture
def shown() -> list[str]:
    return []


@pytest.fixture
def quiet(shown: list[str]) -> Iterator[Console]:
    """A console whose displays and notes go to the ``shown`` list."""
    c = Console(names(), out=shown.append)
    yield c
    c.close()


# ---- running and displaying


async def test_plain_input_displays_the_last_expression(console: Console) -> None:
    entry = await console.run("x = 6 * 7\nx")
    assert entry["output"] == "42\n"
    assert entry["error"] is None
    assert console.namespace["x"] == 42


async def test_the_last_value_is_kept_in_underscore(console: Console) -> None:
    await console.run("[1, 2]")
    assert console.namespace["_"] == [1, 2]
    await console.run("_ + [3]")
    assert console.namespace["_"] == [1, 2, 3]


async def test_none_is_not_displayed_and_leaves_underscore_alone(console: Console) -> None:
    await console.run("'kept'")
    entry = await console.run("None")
    assert entry["output"] == ""
    assert console.namespace["_"] == "kept"


async def test_a_statement_displays_nothing(console: Console) -> None:
    entry = await console.run("y = 1")
    assert entry["output"] == ""
    assert "_" not in console.namespace


async def test_multi_statement_input(console: Console) -> None:
    entry = await console.run("a = 1\nb = a + 1\nif b:\n    c = b * 10\nc")
    assert entry["output"] == "20\n"
    assert (console.namespace["a"], console.namespace["b"]) == (1, 2)


async def test_only_the_last_expression_is_displayed(console: Console) -> None:
    entry = await console.run("'first'\n'second'")
    assert entry["output"] == "'second'\n"


async def test_top_level_await_runs_as_a_task_and_its_value_is_displayed(
    reactor: ns.Reactor, console: Console
) -> None:
    seen: list[Any] = []

    def look() -> None:
        seen.append(console.task)

    d: ns.Deferred[int] = ns.Deferred()
    console.namespace["d"] = d
    reactor.call_later(0, look)
    reactor.call_later(0, d.callback, 7)
    entry = await console.run("v = await d\nv * 6")
    assert entry["output"] == "42\n"
    assert isinstance(seen[0], asyncio.Task)  # the input ran as a task, while the loop ran
    assert console.task is None
    assert console.namespace["v"] == 7


async def test_an_awaited_last_expression_is_displayed(console: Console) -> None:
    entry = await console.run("await succeed('done')")
    assert entry["output"] == "'done'\n"
    assert console.namespace["_"] == "done"


async def test_a_coroutine_defined_and_awaited_in_one_input(console: Console) -> None:
    entry = await console.run("async def f(x):\n    await sleep(0)\n    return x + 1\n\nawait f(1)")
    assert entry["output"] == "2\n"


async def test_plain_input_runs_directly_without_a_task(console: Console) -> None:
    tasks: list[Any] = []
    console.task_started = tasks.append  # type: ignore[method-assign]
    await console.run("1 + 1")
    assert tasks == []
    await console.run("await sleep(0)")
    assert len(tasks) == 1


async def test_a_table_is_displayed_rendered(shown: list[str]) -> None:
    table = Table([1, 22], [("n", lambda x: x)])
    plain = Console({"t": table}, out=shown.append)
    coloured = Console({"t": table}, out=shown.append, color=True)
    await plain.run("t")
    await coloured.run("t")
    assert shown == [table.render(), table.render(color=True)]
    assert "\x1b[" in shown[1] and "\x1b[" not in shown[0]


# ---- errors


async def test_a_syntax_error_is_printed_and_recorded(console: Console) -> None:
    entry = await console.run("1 +")
    assert "SyntaxError" in entry["output"]
    assert '"<netsh-1>", line 1' in entry["output"]
    assert entry["error"].endswith("SyntaxError: invalid syntax")
    after = await console.run("2")
    assert after["n"] == 2 and after["error"] is None


async def test_a_traceback_shows_the_input_line_not_the_console(console: Console) -> None:
    entry = await console.run("def f():\n    raise ValueError('boom')\n\nf()")
    out = entry["output"]
    assert out.startswith("Traceback (most recent call last):\n")
    assert 'File "<netsh-1>", line 4, in <module>\n    f()' in out
    assert 'File "<netsh-1>", line 2, in f\n    raise ValueError(\'boom\')' in out
    assert out.endswith("ValueError: boom\n")
    assert console_module.__file__ not in out
    assert entry["error"] == "ValueError: boom"


async def test_a_traceback_of_an_awaiting_input_hides_the_console_too(console: Console) -> None:
    await console.run("x = 1")
    entry = await console.run("await sleep(0)\n{}['missing']")
    out = entry["output"]
    assert 'File "<netsh-2>", line 2, in <module>' in out
    assert console_module.__file__ not in out
    assert entry["error"] == "KeyError: 'missing'"


async def test_an_error_leaves_the_console_usable(console: Console) -> None:
    await console.run("raise RuntimeError('x')")
    entry = await console.run("'still here'")
    assert entry["output"] == "'still here'\n"


async def test_a_value_whose_repr_raises_is_an_error_of_the_input(console: Console) -> None:
    source = "class Odd:\n    def __repr__(self):\n        raise ValueError('no repr')\n\nOdd()"
    entry = await console.run(source)  # not raised: the prompt would die of it
    assert entry["error"] == "ValueError: no repr"
    assert "ValueError: no repr" in entry["output"]


async def test_system_exit_propagates(console: Console) -> None:
    stdout = sys.stdout
    with pytest.raises(SystemExit) as raised:
        await console.run("raise SystemExit(3)")
    assert raised.value.code == 3
    assert sys.stdout is stdout  # the capture of output is undone


def test_system_exit_in_an_awaiting_input_propagates_from_run(reactor: ns.Reactor) -> None:
    console = Console(names())
    stdout = sys.stdout

    async def run_it() -> str:
        try:
            await console.run("await sleep(0)\nraise SystemExit(4)")
        except SystemExit:
            return "propagated from run()"
        return "swallowed"

    task = reactor.loop.create_task(run_it())
    try:
        outcome = reactor.run_until(task)
    except SystemExit:
        outcome = "escaped the event loop"
        reactor.run_until(task)  # let the console finish: it puts sys.stdout back
    finally:
        if sys.stdout is not stdout:
            sys.stdout = stdout
    assert outcome == "propagated from run()"


async def test_cancelling_the_awaiting_task_records_cancelled(
    reactor: ns.Reactor, console: Console
) -> None:
    def cancel() -> None:
        assert console.task is not None
        console.task.cancel()

    reactor.call_later(0, cancel)
    entry = await console.run("await sleep(30)")
    assert entry["error"] == "Cancelled"
    assert entry["output"] == "Cancelled\n"
    assert console.task is None
    assert (await console.run("'next'"))["output"] == "'next'\n"


async def test_keyboard_interrupt_in_plain_code_is_printed(console: Console) -> None:
    entry = await console.run("raise KeyboardInterrupt")
    assert entry["error"] == "KeyboardInterrupt"
    assert "KeyboardInterrupt" in entry["output"]


# ---- Deferreds at the prompt


async def test_an_unfired_deferred_is_bound_as_d_n(quiet: Console, shown: list[str]) -> None:
    await quiet.run("d = Deferred()\nd")
    d = quiet.namespace["d"]
    assert quiet.namespace[f"_d{d.number}"] is d
    assert shown == [f"<Deferred #{d.number} pending>"]


async def test_a_note_prints_when_a_shown_deferred_fires(quiet: Console, shown: list[str]) -> None:
    await quiet.run("d = Deferred()\nd")
    d = quiet.namespace["d"]
    d.callback(200)
    assert shown[-1] == f"Deferred #{d.number} fired: 200"
    assert quiet.namespace[f"_d{d.number}"].result == 200
    note = quiet.transcript[-1]
    assert (note["type"], note["text"]) == ("note", f"Deferred #{d.number} fired: 200")


async def test_a_note_for_a_failure(quiet: Console, shown: list[str]) -> None:
    await quiet.run("d = Deferred()\nd")
    d = quiet.namespace["d"]
    d.errback(ConnectionRefusedError("refused"))
    assert shown[-1] == f"Deferred #{d.number} failed: ConnectionRefusedError('refused')"
    d.add_errback(lambda f: None)


async def test_a_fired_deferred_is_not_bound(quiet: Console, shown: list[str]) -> None:
    await quiet.run("d = succeed(3)\nd")
    d = quiet.namespace["d"]
    assert f"_d{d.number}" not in quiet.namespace
    assert shown == [f"<Deferred #{d.number} fired: 3>"]
    assert not quiet.notes.watching(d)


async def test_a_deferred_waiting_on_another_is_bound(quiet: Console, shown: list[str]) -> None:
    await quiet.run("inner = Deferred()\nd = succeed(1)\nd.add_callback(lambda _: inner)")
    d, inner = quiet.namespace["d"], quiet.namespace["inner"]
    assert quiet.namespace[f"_d{d.number}"] is d
    inner.callback("late")
    assert shown[-1] == f"Deferred #{d.number} fired: 'late'"


async def test_notes_off_print_nothing(quiet: Console, shown: list[str]) -> None:
    await quiet.run("d = Deferred()\nd")
    quiet.notes.enabled = False
    quiet.namespace["d"].callback(1)
    assert len(shown) == 1
    assert quiet.transcript[-1]["type"] == "input"


# ---- the transcript


async def test_a_transcript_entry_per_input(console: Console) -> None:
    before = time.time()
    entry = await console.run("print('hello')\n1 + 1")
    after = time.time()
    assert console.transcript == [entry]
    assert entry["type"] == "input"
    assert entry["n"] == 1
    assert entry["input"] == "print('hello')\n1 + 1"
    assert entry["kind"] == "code"
    assert entry["output"] == "hello\n2\n"
    assert entry["error"] is None
    assert before <= entry["time"] <= after
    assert 0 <= entry["duration"] <= after - before + 1e-6


async def test_output_printed_by_an_awaiting_input_is_captured(console: Console) -> None:
    entry = await console.run("await sleep(0)\nprint('from the task')")
    assert entry["output"] == "from the task\n"


async def test_captured_output_also_reaches_the_terminal(
    console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    await console.run("print('both places')")
    assert capsys.readouterr().out == "both places\n"


async def test_inputs_are_numbered_and_named_in_order(console: Console) -> None:
    entries = [await console.run(src) for src in ("1", "1 +", "raise ValueError", "2")]
    assert [e["n"] for e in entries] == [1, 2, 3, 4]
    assert console.count == 4
    assert "<netsh-3>" in entries[2]["output"]


async def test_the_console_name_names_the_inputs() -> None:
    c = Console({}, name="cell")
    entry = await c.run("1/0")
    assert 'File "<cell-1>"' in entry["output"]


async def test_the_kind_of_an_inspecting_input(console: Console) -> None:
    console.namespace["conns"] = list
    entry = await console.run("conns()")
    assert entry["kind"] == "inspect"


async def test_the_transcript_file_gets_json_lines(shown: list[str]) -> None:
    f = io.StringIO()
    c = Console(names(), out=shown.append, transcript_file=f)
    await c.run("d = Deferred()\nd")
    await c.run("oops(")
    c.namespace["d"].callback("ok")
    lines = f.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == c.transcript
    assert [e["type"] for e in c.transcript] == ["input", "input", "note"]
    assert c.transcript[1]["error"].startswith("File \"<netsh-2>\"")


# ---- classify


@pytest.mark.parametrize(
    "source",
    ["x", "d.result", "conns()", "listeners()", "conn(3)", "explain(d)", "conns()[0]",
     "help()", "print(x)", "conns(); listeners()", "'text'", "deferreds()"],
)
def test_classify_inspecting_inputs(source: str) -> None:
    assert classify(source) == "inspect"


@pytest.mark.parametrize(
    "source",
    ["x = 1", "d = connect('tcp:h:1', P)", "f()", "conn(3).close()", "reactor.stop()",
     "import os", "await d", "x + 1", "def f(): pass", "x +"],
)
def test_classify_code(source: str) -> None:
    assert classify(source) == "code"


# ---- is_complete


@pytest.mark.parametrize(
    "source",
    ["x = 1", "print('hi')", "f(1, 2)", "x = (1,\n2)", "", "   ", "x = 1 + \\\n2",
     "def f():\n    return 1\n\n", "def f():\n    return 1\n    ",
     "for i in range(3):\n    print(i)\n\n", "@dec\ndef f():\n    pass\n\n",
     "a = 1\nb = 2", "1 +",  # a plain error is complete: running it shows the error
     # A last line back at column 0, or emptied (Backspace over the auto-indent), ends the
     # block, as in IPython; a colon in a comment opens nothing.
     "@deco\ndef h(): return 21", "class B:\n    x = 1\n", "if x:\n    a()\nelse: b()",
     "x = 1  # note:", "def f():\n    return 1\nf()"],
)
def test_is_complete(console: Console, source: str) -> None:
    assert console.is_complete(source)


@pytest.mark.parametrize(
    "source",
    ["foo(", "x = [1,\n2", "d = {", "def f():", "def f():\n    return 1",
     "for i in range(3):", "for i in range(3):\n    print(i)", "if x:\n    y = 1",
     "if x:\n    y = 1\nelse:", "class A:\n    pass", "async def f():\n    await x",
     "with open(p) as f:\n    f.read()", "try:\n    x\nexcept E:\n    y",
     "@dec\ndef f():\n    pass", "x = 1 + \\"],
)
def test_is_not_complete(console: Console, source: str) -> None:
    assert not console.is_complete(source)


def test_a_lone_decorator_is_not_complete(console: Console) -> None:
    assert not console.is_complete("@dec")


def test_an_open_triple_quoted_string_is_not_complete(console: Console) -> None:
    assert not console.is_complete('text = """first line')


# ---- close_everything


async def test_close_everything_closes_and_says_what(
    reactor: ns.Reactor, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tcp(0, factory)
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    server = await factory.accepted()
    await close_everything(reactor, 5)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Closing listener #{listener.number} (127.0.0.1:{listener.port}), " \
        "2 connections ..."
    assert out[1].startswith("Closed 1 listener and 2 connections in ")
    assert listener.closed
    assert client.transport.state == server.transport.state == "closed"


async def test_close_everything_with_nothing_open_says_nothing(
    reactor: ns.Reactor, capsys: pytest.CaptureFixture[str]
) -> None:
    await close_everything(reactor, 5)
    assert capsys.readouterr().out == ""
    assert reactor.closed


# ---- notes and await (found by review)


@pytest.fixture
def recording() -> Iterator[None]:
    chains.record()
    yield
    chains.stop_recording()


async def test_awaiting_a_shown_deferred_notes_its_value(
    quiet: Console, shown: list[str], recording: None
) -> None:
    await quiet.run("d = sleep(0.01).add_callback(lambda _: 200); d")
    await quiet.run("value = await d")
    notes = [s for s in shown if s.startswith("Deferred #")]
    assert len(notes) == 1 and notes[0].endswith("fired: 200"), shown
    assert quiet.namespace["value"] == 200


async def test_callbacks_added_after_showing_are_in_the_note(
    quiet: Console, shown: list[str], recording: None
) -> None:
    await quiet.run("d = Deferred(); d")
    await quiet.run("d.add_callback(lambda x: x * 2)")
    await quiet.run("d.callback(21)")
    assert [s for s in shown if s.endswith("fired: 42")], shown


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("conns()", "inspect"),
        ("explain(d)", "inspect"),
        ("print(x)", "inspect"),
        ("x.y", "inspect"),
        ("print(await d)", "code"),  # the await does something
        ("(await http.get(u)).status", "code"),
        ("print(x.pop())", "code"),
        ("repr(L.close())", "code"),
        ("items[f()]", "code"),
    ],
)
def test_an_inspection_whose_arguments_act_is_code(source: str, kind: str) -> None:
    assert classify(source) == kind


def test_input_entry_is_the_prompt_format() -> None:
    e = input_entry(3, "conns()", started=0.0, output="x\n")
    assert set(e) == {"type", "n", "input", "kind", "output", "error", "time", "duration"}
    assert (e["type"], e["n"], e["kind"], e["output"], e["error"]) == (
        "input", 3, "inspect", "x\n", None
    )
    assert input_entry(1, "conns()", started=0.0, kind="code", error="E")["kind"] == "code"


async def test_record_appends_and_writes_a_json_line() -> None:
    out = io.StringIO()
    c = Console({}, transcript_file=out)
    c.record({"type": "note", "text": "hi", "time": 0.0})
    assert c.transcript[-1]["text"] == "hi"
    assert json.loads(out.getvalue()) == {"type": "note", "text": "hi", "time": 0.0}
