"""The Console's hooks: what runs after each input."""

from __future__ import annotations


async def test_after_input_hooks_get_each_entry_once_it_is_recorded_and_a_raising_one_is_logged(
    reactor, caplog,
):
    from netshell.shell.console import Console

    c = Console({})
    seen = []

    def broken(entry):
        raise RuntimeError("hook broke")

    c.after_input.append(lambda entry: seen.append((entry["input"], len(c.transcript))))
    c.after_input.append(broken)
    await c.run("x = 41")
    await c.run("await sleep(0) if False else x + 1")
    assert seen == [("x = 41", 1), ("await sleep(0) if False else x + 1", 2)]
    assert "hook broke" in caplog.text
