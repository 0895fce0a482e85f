"""The shell's download progress bar: drawn on a terminal, handed to ``http.download``.

The protocol library draws nothing itself (``protocols.http.client.make_progress`` gives
no display by default); the namespace the prompt and ``netsh run`` build installs the
shell's :func:`~netshell.shell.progress.terminal_progress` there. The prompt's own bar,
seen in a real terminal, is tested in test_shell_prompt.py.
"""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

import netshell as ns
from netshell.shell import namespace, progress
from netshell.shell.console import Console
from netshell.shell.progress import TerminalProgress, make_room, terminal_progress
from protocols import http
from protocols.http import client
from protocols.http.client import HTTPClient


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def shell_bar(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The namespace built as the prompt builds it: its bar is the default, until the end,
    and drawn at once (not only for transfers that take a while)."""
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setattr(client, "make_progress", client.make_progress)
    names = namespace.build(Console({}, out=lambda s: None), out=lambda s: None)
    assert client.make_progress is terminal_progress
    try:
        yield
    finally:
        names["_helpers"].tracer.stop()


@pytest.fixture
def site(reactor: ns.Reactor) -> Iterator[str]:
    app = http.App()

    @app.route("/file.bin")
    def file(request: http.Request) -> bytes:
        return b"z" * 2048

    listener = http.serve(app)
    yield f"http://127.0.0.1:{listener.port}/file.bin"
    listener.close()


async def test_download_draws_a_bar_on_a_terminal(
    shell_bar: None, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = TTY()
    monkeypatch.setattr("sys.stderr", screen)
    await HTTPClient().download(site, tmp_path / "file.bin")
    drawn = screen.getvalue()
    assert drawn.startswith("\r") and drawn.endswith("\n")
    assert "100%" in drawn and "2.0 KiB/2.0 KiB" in drawn


async def test_download_draws_nothing_when_stderr_is_not_a_terminal(
    shell_bar: None, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    await HTTPClient().download(site, tmp_path / "file.bin")
    assert pipe.getvalue() == ""


def test_progress_bar_without_a_total_shows_the_count() -> None:
    screen = io.StringIO()
    bar = TerminalProgress("get x", screen)
    bar(3 * 1024 * 1024, None)
    bar.finish()
    assert screen.getvalue() == "\rget x 3.0 MiB\x1b[K\n"


def test_a_long_label_keeps_its_end() -> None:
    screen = io.StringIO()
    bar = TerminalProgress("http://example.org/" + "d/" * 30 + "file.bin", screen, width=4)
    bar(512, 1024)
    assert screen.getvalue() == "\r..." + ("d/" * 30 + "file.bin")[-37:] + (
        " [##..]  50% 512 B/1.0 KiB\x1b[K"
    )


def test_the_protocol_library_does_not_import_the_shell() -> None:
    for path in Path(client.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.startswith("netshell.shell") for n in names), (path, node.lineno)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bar_shows_only_once_the_transfer_has_taken_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    screen = TTY()
    monkeypatch.setattr("sys.stderr", screen)
    quick = terminal_progress("RETR /small")
    assert quick is not None
    quick(0, 10)
    clock.now += progress.SHOW_AFTER / 2
    quick(10, 10)
    quick.finish()
    assert screen.getvalue() == ""  # done before the bar was due: nothing left on screen
    slow = terminal_progress("RETR /big")
    assert slow is not None
    slow(0, 100)
    clock.now += progress.SHOW_AFTER
    slow(40, 100)
    slow.finish()
    assert screen.getvalue() == (
        "\rRETR /big [############..................]  40% 40 B/100 B\x1b[K\n")


def test_a_line_printed_meanwhile_gets_the_bar_out_of_its_way() -> None:
    screen = io.StringIO()
    bar = TerminalProgress("get x", screen, width=4)
    bar(1, 4)
    make_room()  # what the prompt's log handler does before it prints a line
    screen.write("a log line\n")
    bar.finish()  # the bar's last state again, below the line, then its newline
    assert screen.getvalue() == ("\rget x [#...]  25% 1 B/4 B\x1b[K"
                                 "\r\x1b[K"
                                 "a log line\n"
                                 "\rget x [#...]  25% 1 B/4 B\x1b[K\n")
    make_room()  # no bar now: nothing to clear
    assert screen.getvalue().endswith("\x1b[K\n")


def test_what_the_prompt_prints_meanwhile_gets_the_bar_out_of_its_way(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A transfer left running in the background draws its bar; a table the person asks for
    # (conns()) is printed on a line of its own, not after the bar.
    screen = io.StringIO()
    bar = TerminalProgress("STOR big.bin", screen, width=4)
    bar(1, 4)
    console = Console({})
    console.display(42)
    assert capsys.readouterr().out == "42\n"
    assert screen.getvalue().endswith("\x1b[K\r\x1b[K")  # the bar's line cleared first
    bar(2, 4)  # drawn again, below
    assert screen.getvalue().endswith("\rSTOR big.bin [##..]  50% 2 B/4 B\x1b[K")
    bar.finish()
