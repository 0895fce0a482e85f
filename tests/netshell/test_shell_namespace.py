"""The prompt's namespace: the names a person finds, and the helpers among them.

Built with :func:`namespace.build` on a Console, as the prompt builds it; the
helpers' output goes to a list. The ``names`` fixture stops any tracing a test
started, so no transport class stays patched.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import netshell as ns
from netshell.shell import chains, namespace
from netshell.shell.console import Console
from netshell.shell.display import Table
from netshell.testing import RecordingEcho, RecordingFactory, RecordingProtocol

ISSUE_NAMES = [
    "reactor", "Deferred", "succeed", "fail", "gather", "sleep", "listen", "connect",
    "defer_to_thread", "Protocol", "Factory", "basic", "wire", "tls", "listeners", "conns",
    "conn", "listener", "trace", "untrace", "explain", "notify", "help",
]


class Shell:
    """A console with the prompt's names; what the helpers print lands in ``shown``."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.console = Console({}, out=self.shown.append)
        self.names = namespace.build(self.console, out=self.shown.append)

    def __getitem__(self, name: str) -> Any:
        return self.names[name]


@pytest.fixture
def shell() -> Iterator[Shell]:
    s = Shell()
    try:
        yield s
    finally:
        s["_helpers"].tracer.stop()


def exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(namespace.module_path(module)) is not None
    except ModuleNotFoundError:  # protocols.mail not there either
        return False


# ---- the names


def test_the_names_the_issue_lists_are_there(shell: Shell) -> None:
    missing = [name for name in ISSUE_NAMES if name not in shell.names]
    assert missing == []


def test_the_core_names_are_the_core_objects(shell: Shell) -> None:
    assert shell["reactor"] is ns.reactor
    assert shell["Deferred"] is ns.Deferred
    assert shell["succeed"] is ns.succeed
    assert shell["fail"] is ns.fail
    assert shell["gather"] is ns.gather
    assert shell["sleep"] is ns.sleep
    assert shell["defer_to_thread"] is ns.defer_to_thread
    assert shell["Protocol"] is ns.Protocol
    assert shell["Factory"] is ns.Factory


def test_the_protocol_modules_are_the_real_ones(shell: Shell) -> None:
    assert shell["wire"].echo_factory is importlib.import_module("protocols.wire").echo_factory
    assert shell["basic"].LineReceiver is importlib.import_module("protocols.basic").LineReceiver
    assert shell["tls"].self_signed is importlib.import_module("netshell.tls").self_signed


def test_a_protocol_module_is_there_only_if_it_exists(shell: Shell) -> None:
    for module in namespace.PROTOCOL_MODULES:
        assert (module in shell.names) == exists(module), module


def test_the_namespace_is_the_consoles(shell: Shell) -> None:
    assert shell.names is shell.console.namespace


# ---- help


def tour_modules(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if "protocol modules:" in line)
    return [m.strip() for m in line.split("protocol modules:", 1)[1].split(",")]


def test_help_prints_the_tour_with_the_protocol_modules_present(shell: Shell) -> None:
    assert shell["help"]() is None
    (tour,) = shell.shown
    assert tour.startswith("netsh: a Python prompt with a live reactor.")
    present = [m for m in namespace.PROTOCOL_MODULES if exists(m)]
    assert tour_modules(tour) == [*present, "tls"]
    assert {"basic", "wire"} <= set(present)
    for helper in ("listeners()", "conns()", "trace()", "untrace()", "explain(d)", "notify"):
        assert helper in tour


def test_help_leaves_out_a_module_the_namespace_lacks(shell: Shell) -> None:
    del shell.names["wire"]
    shell["help"]()
    assert "wire" not in tour_modules(shell.shown[0])


def test_help_with_an_argument_is_pythons_help(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell["help"](len)
    assert "len(obj, /)" in capsys.readouterr().out
    assert shell.shown == []


# ---- listeners(), conns(), conn(n), listener(n)


async def echo_pair(reactor: ns.Reactor) -> tuple[Any, Any, Any]:
    factory = RecordingFactory(RecordingEcho)
    listener = reactor.listen_tcp(0, factory)
    client = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    return listener, client, await factory.accepted()


async def test_listeners_and_conns_are_tables_of_the_live_objects(
    reactor: ns.Reactor, shell: Shell
) -> None:
    listener, client, server = await echo_pair(reactor)
    listeners, conns = shell["listeners"](), shell["conns"]()
    assert isinstance(listeners, Table) and isinstance(conns, Table)
    assert list(listeners) == [listener]
    assert {id(c) for c in conns} == {id(client.transport), id(server.transport)}
    assert repr(listeners).splitlines()[0].split() == [
        "id", "kind", "local", "peer", "protocol", "state", "conns", "in", "out", "age", "tls"]


async def test_a_listeners_byte_counts_keep_what_its_closed_connections_did(
    reactor: ns.Reactor, shell: Shell
) -> None:
    listener, client, server = await echo_pair(reactor)
    client.transport.write(b"x" * 1234)
    assert len(await client.wait_for_bytes(1234)) == 1234
    second = await reactor.connect_tcp(
        "127.0.0.1", listener.port, ns.ClientFactory.for_protocol(RecordingProtocol))
    second.transport.write(b"y" * 10)
    await second.wait_for_bytes(10)
    client.transport.close()
    await client.done
    await server.done  # the server's side of the first one is gone too
    assert len(listener.connections) == 1
    assert (listener.bytes_received, listener.bytes_sent) == (1244, 1244)
    row = repr(shell["listeners"]()).splitlines()[1]
    assert row.split()[6:9] == ["1", "1,244", "1,244"], row  # conns, in, out


def test_empty_tables(reactor: ns.Reactor, shell: Shell) -> None:
    assert repr(shell["listeners"]()) == "(no listeners)"
    assert repr(shell["conns"]()) == "(no connections)"


async def test_conn_finds_a_connection_by_its_number(reactor: ns.Reactor, shell: Shell) -> None:
    _, client, server = await echo_pair(reactor)
    assert shell["conn"](server.transport.number) is server.transport
    assert shell["conn"](client.transport.number) is client.transport


async def test_a_connection_reached_by_number_is_live(reactor: ns.Reactor, shell: Shell) -> None:
    _, client, server = await echo_pair(reactor)
    shell["conn"](server.transport.number).write(b"hi")
    assert await client.wait_for_bytes(2) == b"hi"
    shell["conns"]()[0].close()
    await client.done


async def test_conn_of_an_unknown_number_says_where_to_look(
    reactor: ns.Reactor, shell: Shell
) -> None:
    _, client, _ = await echo_pair(reactor)
    gone = client.transport.number
    client.transport.close()
    await client.done
    with pytest.raises(LookupError, match=f"no open connection #{gone}; conns\\(\\) lists"):
        shell["conn"](gone)


async def test_listener_finds_a_listener_by_its_number(reactor: ns.Reactor, shell: Shell) -> None:
    first = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    udp = reactor.listen_udp(0, ns.DatagramProtocol())
    assert shell["listener"](first.number) is first
    assert shell["listener"](udp.number) is udp


async def test_listener_of_a_closed_one_is_a_lookup_error(
    reactor: ns.Reactor, shell: Shell
) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    await shell["listener"](listener.number).close()
    with pytest.raises(LookupError, match=f"no open listener #{listener.number}; listeners\\(\\)"):
        shell["listener"](listener.number)


# ---- listen() and connect()


async def test_listen_a_port_number_with_a_protocol_class_and_connect_to_it(
    reactor: ns.Reactor, shell: Shell
) -> None:
    listener = shell["listen"](0, shell["wire"].Echo)
    assert listener in reactor.listeners
    assert listener.factory.protocol is shell["wire"].Echo
    assert listener.address.host == "127.0.0.1"  # safe by default
    client = await shell["connect"](f"tcp:127.0.0.1:{listener.port}", RecordingProtocol)
    assert isinstance(client, RecordingProtocol)
    client.transport.write(b"round trip")
    assert await client.wait_for_bytes(10) == b"round trip"


async def test_listen_and_connect_take_factories_too(reactor: ns.Reactor, shell: Shell) -> None:
    listener = shell["listen"]("tcp:0", shell["wire"].echo_factory())
    client = await shell["connect"](
        f"tcp:127.0.0.1:{listener.port}", ns.ClientFactory.for_protocol(RecordingProtocol)
    )
    client.transport.write(b"x")
    assert await client.wait_for_bytes(1) == b"x"


async def test_the_whole_tour_at_the_console(reactor: ns.Reactor, shell: Shell) -> None:
    run = shell.console.run
    await run("srv = listen(0, wire.Echo)")
    await run("p = await connect(f'tcp:127.0.0.1:{srv.port}', Protocol)")
    entry = await run("p.transport.write(b'abc')\nlistener(srv.number) is srv")
    assert entry["error"] is None and shell.shown[-1] == "True"
    await run("conns()")
    table = shell.console.namespace["_"]
    assert len(table) == 2
    assert shell.shown[-1] == table.render()


# ---- trace(), untrace(), explain(), notify()


async def test_trace_says_what_it_traces_and_untrace_stops(
    reactor: ns.Reactor, shell: Shell
) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    shell["trace"](listener)
    assert shell.shown == [f"tracing Listener #{listener.number}; untrace() stops"]
    shell["trace"](RecordingProtocol)
    assert shell.shown[-1] == "tracing every RecordingProtocol; untrace() stops"
    shell["untrace"](listener)
    assert shell["_helpers"].tracer.targets == [RecordingProtocol]
    shell["untrace"]()
    assert not shell["_helpers"].tracer.active


async def test_trace_everything_prints_through_the_helpers_output(
    reactor: ns.Reactor, shell: Shell
) -> None:
    shell["trace"]()
    assert shell.shown == ["tracing everything; untrace() stops"]
    d: ns.Deferred[int] = ns.Deferred()
    d.callback(5)
    assert shell.shown[-1].endswith(f" Deferred #{d.number} fired: 5")


async def test_trace_a_connection_with_payload_off(reactor: ns.Reactor, shell: Shell) -> None:
    _, client, server = await echo_pair(reactor)
    shell["trace"](server.transport, payload=False)
    client.transport.write(b"secret")
    await client.wait_for_bytes(6)
    n = server.transport.number
    assert [line.split(" ", 1)[1] for line in shell.shown[1:]] == [
        f"#{n} in  6 B", f"#{n} out 6 B"]


def test_trace_of_something_untraceable_is_a_type_error(shell: Shell) -> None:
    with pytest.raises(TypeError):
        shell["trace"](3.5)
    assert shell.shown == []


def test_explain_displays_without_quotes(shell: Shell) -> None:
    d: ns.Deferred[int] = ns.Deferred()
    text = shell["explain"](d)
    assert text == chains.explain(d)
    assert repr(text) == chains.explain(d)


async def test_notify_false_silences_the_notes(shell: Shell) -> None:
    await shell.console.run("d = Deferred()\nd")
    shell["notify"](False)
    shell.names["d"].callback(1)
    assert not any("fired" in line for line in shell.shown)
    shell["notify"]()
    await shell.console.run("e = Deferred()\ne")
    shell.names["e"].callback(2)
    assert shell.shown[-1] == f"Deferred #{shell.names['e'].number} fired: 2"


def test_the_toolbar_counts_pending_deferreds_less_often_on_a_big_heap(monkeypatch):
    from netshell.shell import prompt as prompt_module

    now = [100.0]
    walks = []

    class SlowReactor:
        def pending_deferreds(self):
            walks.append(now[0])
            now[0] += 0.2  # a walk of a big heap: 0.2 s
            return [1, 2, 3]

    monkeypatch.setattr(prompt_module.time, "monotonic", lambda: now[0])
    p = prompt_module.Prompt.__new__(prompt_module.Prompt)
    p.reactor = SlowReactor()
    p._pending, p._pending_every = (0.0, 0), 1.0
    assert p._pending_count() == 3
    for _ in range(10):
        now[0] += 1.0  # the toolbar asks every second
        p._pending_count()
    assert len(walks) == 2  # every 10 s (50 x 0.2 s), not every second


# ---- help typed bare, and the tour's table (issue 13)


async def test_bare_help_at_the_prompt_prints_the_tour(shell: Shell) -> None:
    await shell.console.run("help")
    (shown,) = shell.shown
    assert shown.startswith("netsh: a Python prompt with a live reactor.")
    assert "bound method" not in shown
    assert shown == shell["_helpers"].tour()


def tour_table(text: str) -> list[str]:
    """The lines of the tour's table: those after the blank line, up to the list of names."""
    lines = text.splitlines()
    start = lines.index("") + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("  reactor,"))
    return lines[start:end]


def test_the_tours_table_is_aligned(shell: Shell) -> None:
    shell["help"]()
    table = tour_table(shell.shown[0])
    assert len(table) >= 8
    # every description, and each of its continuation lines, starts in one column
    columns = {line.rindex(text) for line, text in _descriptions(table)}
    assert len(columns) == 1, table


def _descriptions(table: list[str]) -> list[tuple[str, str]]:
    texts = [part for _, right in namespace.TOUR_ROWS for part in right.splitlines()]
    assert len(texts) == len(table)
    return list(zip(table, texts, strict=True))


def test_the_tour_stays_aligned_whatever_the_name_lengths(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    rows = [("x", "short"), ("a_much_longer_name(with, args)", "long"), ("mid()", "two\nlines")]
    monkeypatch.setattr(namespace, "TOUR_ROWS", rows)
    table = tour_table(namespace.tour("protocol modules: -"))
    assert [line.rindex(word) for line, word in zip(table, ["short", "long", "two", "lines"],
                                                   strict=True)] == [34] * 4


# ---- deferreds() (issue 13)


def deferreds_rows(shell: Shell, *ds: Any) -> dict[int, dict[str, str]]:
    table = shell["deferreds"]()
    titles = [title for title, _ in table.columns]
    return {d.number: dict(zip(titles, cells, strict=True))
            for d, cells in zip(table, table.cells(), strict=True) if d in ds}


def test_deferreds_lists_a_pending_deferred_with_its_callbacks(shell: Shell) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    d.add_callback(str).add_callback(len)
    fired = ns.succeed(1)
    table = shell["deferreds"]()
    assert isinstance(table, Table)
    assert d in table and fired not in table
    row = deferreds_rows(shell, d)[d.number]
    assert row["id"] == f"#{d.number}"
    assert (row["waits on"], row["callbacks"]) == ("pending", "2")
    assert row["created at"] == "-"  # debugging off: no site recorded, nothing paid
    assert row["age"] == "0s"


def test_deferreds_shows_what_a_deferred_waits_on(shell: Shell) -> None:
    inner: ns.Deferred[Any] = ns.Deferred()
    outer = ns.succeed(1).add_callback(lambda _: inner).add_callback(str)
    rows = deferreds_rows(shell, inner, outer)
    assert rows[outer.number]["waits on"] == f"#{inner.number}"
    assert rows[inner.number]["waits on"] == "pending"
    # the core's link back to ``outer`` is no callback of ``inner``'s
    assert (rows[outer.number]["callbacks"], rows[inner.number]["callbacks"]) == ("1", "0")


def test_deferreds_says_where_a_deferred_was_made_when_debugging(shell: Shell) -> None:
    ns.set_debugging(True)
    try:
        line = _line() + 1
        d: ns.Deferred[Any] = ns.Deferred()
    finally:
        ns.set_debugging(False)
    row = deferreds_rows(shell, d)[d.number]
    assert row["created at"] == f"{__file__}:{line}"


def _line() -> int:
    import inspect

    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_the_age_counts_from_when_it_was_first_seen(shell: Shell, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    d: ns.Deferred[Any] = ns.Deferred()
    now = [1000.0]
    monkeypatch.setattr(namespace.time, "time", lambda: now[0])
    shell["deferreds"]()
    now[0] += 75
    assert deferreds_rows(shell, d)[d.number]["age"] == "1m15s"


def test_deferreds_lists_exactly_what_the_toolbar_counts(shell: Shell) -> None:
    import gc

    from netshell.shell import prompt as prompt_module

    kept = [ns.Deferred() for _ in range(3)]
    kept.append(ns.succeed(1).add_callback(lambda _: kept[0]))
    gc.collect()
    p = prompt_module.Prompt(ns.reactor)
    counted = p._pending_count()
    listed = shell["deferreds"]()
    assert counted == len(listed)
    assert set(map(id, kept)) <= set(map(id, listed))
    assert f"pending Deferreds {counted} |" in p.toolbar_text()


async def test_log_shows_and_hushes_the_http_access_log(
    reactor: ns.Reactor, shell: Shell, caplog: pytest.LogCaptureFixture
) -> None:
    access = logging.getLogger(namespace.ACCESS_LOGGER)
    before = {name: logging.getLogger(name).level for name in namespace.REQUEST_LOGGERS}
    from protocols import http

    app = http.App()

    @app.route("/")
    def hello(request: Any) -> str:
        return "hi"

    server = http.serve(app)
    url = f"http://127.0.0.1:{server.port}/"
    try:
        with caplog.at_level(logging.NOTSET, logger=namespace.ACCESS_LOGGER):
            said = shell["log"]()
            assert access.level == logging.INFO
            assert repr(said) == ("request log on: each HTTP request, FTP login and "
                                  "transfer, and what IRC clients hear is shown; "
                                  "log(False) hushes it")
            assert logging.getLogger("netshell.ftp").level == logging.INFO
            assert logging.getLogger("netshell.irc.client").level == logging.INFO
            assert repr(shell["log"](False)) == "request log off; log() shows it again"
            assert access.level == logging.WARNING
            assert logging.getLogger("netshell.irc.client").level == logging.WARNING
            shell["log"]()
            await http.get(url)
            assert [r.getMessage() for r in caplog.records
                    if r.name == namespace.ACCESS_LOGGER][-1].endswith('"GET / HTTP/1.1" 200 2')
            caplog.clear()
            shell["log"](False)
            await http.get(url)
            assert [r for r in caplog.records if r.name == namespace.ACCESS_LOGGER] == []
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
        await server.close()


async def test_await_listen_gives_the_listener_as_a_person_writes_it(
    reactor: ns.Reactor, shell: Shell
) -> None:
    srv = await shell["listen"](0, shell["wire"].Echo)
    assert isinstance(srv, ns.Listener) and srv in reactor.listeners
    client = await reactor.connect_tcp(
        "127.0.0.1", srv.port, ns.ClientFactory.for_protocol(RecordingProtocol))
    client.transport.write(b"hi")
    assert await client.wait_for_bytes(2) == b"hi"  # serving once awaited
    udp = await shell["listen"]("udp:0", ns.DatagramProtocol())
    assert udp in reactor.listeners and udp.port > 0
    closed = reactor.listen_tcp(0, ns.Factory.for_protocol(ns.Protocol))
    await closed.close()
    assert await closed is closed  # awaiting one closed before it started is no error


def test_trace_returns_its_capture_and_explain_its_explanation(shell: Shell) -> None:
    from netshell.shell.chains import Explanation
    from netshell.shell.tracing import Capture

    cap = shell["trace"]()
    assert isinstance(cap, Capture) and cap.active  # DESIGN: cap = trace(target=None)
    shell["untrace"]()
    assert not cap.active
    d = shell["Deferred"]()
    d.callback(1)
    explained = shell["explain"](d)
    assert isinstance(explained, Explanation) and repr(explained) == str(explained)


def test_watch_is_for_jupyter_and_says_so_at_the_prompt(shell: Shell) -> None:
    with pytest.raises(RuntimeError, match=r"in Jupyter; at the netsh prompt, conns\(\)"):
        shell["watch"](shell["conns"])
