"""IRC at the real netsh prompt (in tmux): a server and two clients started at the prompt;
what a client hears (a message, a join) prints above the prompt line, the hearing
client's nick first, while a half-typed line stays intact; ``log(False)`` hushes it."""

from __future__ import annotations

import re

from terminal import Above, last_row, when_go


def test_two_clients_at_the_prompt_see_each_others_lines_above_it(netsh, tmp_path):
    t = netsh()
    t.wait_prompt(1)
    t.line("srv = irc.serve()")
    t.wait_prompt(2)
    t.line('alice = await irc.connect("127.0.0.1", srv.port, "alice"); '
           'bob = await irc.connect("127.0.0.1", srv.port, "bob")')
    t.wait_prompt(3)
    t.line('await alice.join("#netshell"); await bob.join("#netshell")')
    # alice hears bob come in: a line of its own, the time of day first
    t.wait_for(r"^\d\d:\d\d:\d\d alice: #netshell bob joined$")
    t.wait_prompt(4)
    # alice speaks later, from a timer, while a line is half typed at the prompt; the
    # text is computed, so no line typed here holds it
    t.line(when_go('alice.msg("#netshell", "hel" + "lo, " + "bob")'))
    t.wait_prompt(5)
    t.type("x = 'half typed")
    t.wait_for(r"^\[5\]> x = 'half typed$")
    (tmp_path / "go").touch()
    screen = t.wait_for(Above(r"\d\d:\d\d:\d\d bob: #netshell <alice> hello, bob",
                              r"\[5\]> x = 'half typed"))
    assert last_row(screen, r"\[5\]> .*") == last_row(screen, r"\[5\]> x = 'half typed")
    t.key("C-u")  # the half-typed line is dropped
    t.line("log(False)")
    t.wait_for(r"^request log off; log\(\) shows it again$")
    t.line('heard = bob.wait_for("message"); alice.msg("#netshell", "qu" + "iet"); '
           "(await heard).text")
    screen = t.wait_for(r"^'quiet'$")
    assert not re.search(r"<alice> quiet$", screen, re.M), screen
    assert len(re.findall(r"bob: #netshell <alice> hello, bob$", screen, re.M)) == 1
