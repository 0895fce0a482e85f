"""Python's "Did you mean" hints, kept at the prompt on every Python we support, and the
caret under an error on an input's first line standing where Python puts it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netshell.shell import hints
from netshell.shell.console import Console


def name_error(name: str) -> NameError:
    return NameError(f"name {name!r} is not defined", name=name)


def test_a_near_name_of_the_namespace_is_suggested_before_a_builtin() -> None:
    # 'lisen' is as near 'listen' (one insertion) as Python's rules allow; 'list' is further.
    assert hints.hint(name_error("lisen"), {"listen": 1}) == "listen"
    assert hints.hint(name_error("lisen"), {}) == "list"


def test_a_change_of_case_counts_half() -> None:
    assert hints.hint(name_error("Listen"), {"listen": 1, "lister": 2}) == "listen"


def test_nothing_close_gives_no_hint() -> None:
    assert hints.hint(name_error("zqxw"), {"listen": 1}) is None
    assert hints.with_hint("NameError: name 'zqxw' is not defined", name_error("zqxw"),
                           {"listen": 1}) == "NameError: name 'zqxw' is not defined"


def test_an_attribute_is_looked_for_on_its_object() -> None:
    try:
        sys.exitt  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as e:
        assert hints.hint(e) == "exit"
        assert hints.with_hint("AttributeError: module 'sys' has no attribute 'exitt'", e) == (
            "AttributeError: module 'sys' has no attribute 'exitt'. Did you mean: 'exit'?")


def test_a_text_that_has_its_hint_already_is_left_alone() -> None:
    text = "NameError: name 'lisen' is not defined. Did you mean: 'list'?"
    assert hints.with_hint(text, name_error("lisen"), {"listen": 1}) == text


def test_too_many_candidates_give_no_hint() -> None:
    namespace = {f"name{i}": i for i in range(800)}
    assert hints.hint(name_error("name1x"), namespace) is None


@given(st.text(max_size=12), st.text(max_size=12))
def test_the_distance_is_symmetric_and_zero_only_between_equal_names(a: str, b: str) -> None:
    limit = 100
    d = hints._distance(a, b, limit)
    assert d == hints._distance(b, a, limit)
    assert (d == 0) == (a == b)


@given(st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
       st.lists(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), max_size=20))
def test_a_hint_is_a_candidate_and_never_the_name_itself(name: str, names: list[str]) -> None:
    found = hints.hint(name_error(name), dict.fromkeys(names))
    assert found is None or (found != name and (found in names or hasattr(
        __import__("builtins"), found)))


# ---- at the console


async def run(source: str, namespace: dict[str, object]) -> list[str]:
    shown: list[str] = []
    console = Console(namespace, out=shown.append)
    try:
        await console.run(source)
    finally:
        console.close()
    return "\n".join(shown).splitlines()


def python_says(tmp_path: Path, source: str) -> list[str]:
    """What python itself prints for ``source`` run as a script: the last three lines."""
    script = tmp_path / "script.py"
    script.write_text(source + "\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          check=False)
    return proc.stderr.splitlines()[-3:]


async def test_the_caret_under_a_name_error_on_the_first_line_stands_where_python_puts_it(
    tmp_path: Path,
) -> None:
    lines = await run("lisen(1)", {})
    assert lines[-3:-1] == python_says(tmp_path, "lisen(1)")[:2]
    assert lines[-2] == "    ^^^^^"


@pytest.mark.parametrize("source", ["print(1 2)", "x = = 1", "1 +* 2"])
async def test_the_caret_under_a_syntax_error_stands_where_python_puts_it(
    tmp_path: Path, source: str
) -> None:
    lines = await run(source, {})
    assert lines[-3:] == python_says(tmp_path, source)


async def test_the_prompt_keeps_pythons_hint_with_the_prompts_own_names() -> None:
    lines = await run("lisen(8080)", {"listen": print})
    assert lines[-1] == "NameError: name 'lisen' is not defined. Did you mean: 'listen'?"


async def test_an_attribute_error_keeps_its_hint() -> None:
    lines = await run("import sys\nsys.exitt", {})
    assert lines[-1] == (
        "AttributeError: module 'sys' has no attribute 'exitt'. Did you mean: 'exit'?")
